//! Rule state (windowed counters, distinct sets, TTL values) in the store:
//! one row per rule, kind and key, written in batches of changed keys.

use anyhow::{Context, Result};
use rusqlite::params;
use serde_json::Value;
use vigil_sdk::state_store::{KeyState, StateKind};

use super::Store;

/// One changed key: its snapshot, or `None` when it was removed.
pub type KeyChange = (StateKind, String, Option<KeyState>);

impl Store {
    /// Writes the changed keys of several rules in one transaction.
    pub fn save_rule_state(&self, changes: &[(String, Vec<KeyChange>)]) -> Result<()> {
        if changes.iter().all(|(_, c)| c.is_empty()) {
            return Ok(());
        }
        // Rule state is committed without an fsync of its own (WAL with
        // synchronous = NORMAL: safe against a killed process, and made
        // durable against power loss by the next FULL commit, which always
        // comes before an action is sent). It is the hot write path.
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = self.write_rule_state(changes);
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        result
    }

    fn write_rule_state(&self, changes: &[(String, Vec<KeyChange>)]) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO rule_state (rule, kind, key, data) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (rule, kind, key) DO UPDATE SET data = ?4",
            )?;
            let mut delete = tx.prepare_cached(
                "DELETE FROM rule_state WHERE rule = ?1 AND kind = ?2 AND key = ?3",
            )?;
            for (rule, keys) in changes {
                for (kind, key, state) in keys {
                    match state {
                        Some(state) => {
                            upsert.execute(params![rule, kind.name(), key, encode(state)?])?
                        }
                        None => delete.execute(params![rule, kind.name(), key])?,
                    };
                }
            }
        }
        tx.commit()
            .context("cannot write rule state to the state store")
    }

    /// Every saved key of one rule.
    pub fn load_rule_state(&self, rule: &str) -> Result<Vec<(String, KeyState)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, key, data FROM rule_state WHERE rule = ?1")?;
        let rows = stmt.query_map([rule], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, key, data) = row?;
            let kind = StateKind::from_name(&kind).with_context(|| {
                format!("state store: rule {rule} key {key:?} has kind {kind:?}")
            })?;
            let value: Value = serde_json::from_str(&data)
                .with_context(|| format!("state store: rule {rule} key {key:?} is not JSON"))?;
            let state = decode(kind, &value)
                .with_context(|| format!("state store: rule {rule} key {key:?} is not readable"))?;
            out.push((key, state));
        }
        Ok(out)
    }
}

/// The stored JSON of one key (written straight from borrowed data: this
/// runs for every changed key).
fn encode(state: &KeyState) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Windowed<'a, T: serde::Serialize> {
        w: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        e: Option<&'a T>,
        #[serde(skip_serializing_if = "Option::is_none")]
        m: Option<&'a T>,
    }
    #[derive(serde::Serialize)]
    struct Stored<'a> {
        v: &'a str,
        x: Option<i64>,
    }
    Ok(match state {
        KeyState::Counter { window_ms, entries } => serde_json::to_string(&Windowed {
            w: *window_ms,
            e: Some(entries),
            m: None,
        })?,
        KeyState::Set { window_ms, members } => serde_json::to_string(&Windowed {
            w: *window_ms,
            e: None,
            m: Some(members),
        })?,
        KeyState::Value { value, expires_at } => serde_json::to_string(&Stored {
            v: value,
            x: *expires_at,
        })?,
    })
}

fn decode(kind: StateKind, v: &Value) -> Result<KeyState> {
    Ok(match kind {
        StateKind::Counter => KeyState::Counter {
            window_ms: v["w"].as_u64().context("window")?,
            entries: serde_json::from_value(v["e"].clone())?,
        },
        StateKind::Set => KeyState::Set {
            window_ms: v["w"].as_u64().context("window")?,
            members: serde_json::from_value(v["m"].clone())?,
        },
        StateKind::Value => KeyState::Value {
            value: v["v"].as_str().context("value")?.to_owned(),
            expires_at: v["x"].as_i64(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_saved_replaced_and_deleted() {
        let s = Store::in_memory().unwrap();
        let counter = KeyState::Counter {
            window_ms: 600_000,
            entries: vec![(1, 1), (2, 3)],
        };
        let value = KeyState::Value {
            value: "x".into(),
            expires_at: Some(9),
        };
        s.save_rule_state(&[(
            "r1".into(),
            vec![
                (StateKind::Counter, "c".into(), Some(counter.clone())),
                (StateKind::Value, "v".into(), Some(value.clone())),
            ],
        )])
        .unwrap();
        let mut got = s.load_rule_state("r1").unwrap();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, vec![("c".into(), counter), ("v".into(), value)]);
        s.save_rule_state(&[("r1".into(), vec![(StateKind::Value, "v".into(), None)])])
            .unwrap();
        assert_eq!(s.load_rule_state("r1").unwrap().len(), 1);
        assert!(s.load_rule_state("r2").unwrap().is_empty());
    }
}
