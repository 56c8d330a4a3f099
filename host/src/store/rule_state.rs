//! Rule state (windowed counters, distinct sets, versioned TTL values) in
//! the store: one row per rule, kind and key, written in batches of changed
//! keys. Each row is a JSON snapshot of the key; rows written before values
//! were versioned on event time are still read (and rewritten in the new
//! shape when the key next changes).
//!
//! Each row also carries the partition of the call that last wrote it
//! (`part`, a hash of the rule's partition key): at start the host hands a
//! key to the shard that owns that partition, whatever the number of
//! shards was when it was written. Rows from before shards have no
//! partition (`NULL`); see `RuleSet::restore_state`.

use anyhow::{Context, Result};
use rusqlite::params;
use serde_json::Value;
use vigil_sdk::state_store::{KeyState, StateKind, Version};

use super::Store;

/// One changed key: its snapshot (or `None` when it was removed) and the
/// partition of the call that changed it.
pub type KeyChange = vigil_sdk::state_store::StateChange;

/// One saved key, as loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredKey {
    pub key: String,
    pub state: KeyState,
    /// The partition of its last writer; `None` for a row written before
    /// rule state was partitioned.
    pub partition: Option<u64>,
}

/// Adds the `part` column to a database created before shards.
pub(super) fn migrate(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let has_part: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('rule_state') WHERE name = 'part'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if !has_part {
        conn.execute_batch("ALTER TABLE rule_state ADD COLUMN part INTEGER")?;
    }
    Ok(())
}

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
        write_changes(&tx, changes)?;
        tx.commit().with_context(|| self.failed("write rule state"))
    }

    /// Every saved key of one rule.
    pub fn load_rule_state(&self, rule: &str) -> Result<Vec<StoredKey>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, key, data, part FROM rule_state WHERE rule = ?1")?;
        let rows = stmt.query_map([rule], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, key, data, part) = row.with_context(|| self.failed("read rule state"))?;
            let kind = StateKind::from_name(&kind).with_context(|| {
                format!("state store: rule {rule} key {key:?} has kind {kind:?}")
            })?;
            let value: Value = serde_json::from_str(&data)
                .with_context(|| format!("state store: rule {rule} key {key:?} is not JSON"))?;
            let state = decode(kind, &value)
                .with_context(|| format!("state store: rule {rule} key {key:?} is not readable"))?;
            out.push(StoredKey {
                key,
                state,
                // Stored as SQLite's signed integer, bit for bit.
                partition: part.map(|p| p as u64),
            });
        }
        Ok(out)
    }
}

/// The stored JSON of one key (written straight from borrowed data: this
/// runs for every changed key).
///
/// - counter: `{"w": window, "e": [[time, delta], …]}`
/// - set: `{"w": window, "t": thinning window, "s": [[member, [time, …]], …]}`
/// - value: `{"vs": [[set_at, value or null, expires_at or null], …]}`
///
/// Before event-time versioning (v0.1 of the state format) a set was
/// `{"w", "m": [[member, last_seen], …]}` and a value `{"v", "x"}`; [`decode`]
/// still reads both (see there), so an existing database is migrated key by
/// key as it is loaded, and each key is written in the new shape the next
/// time it changes.
/// Writes changed keys inside the caller's transaction.
pub(super) fn write_changes(
    tx: &rusqlite::Connection,
    changes: &[(String, Vec<KeyChange>)],
) -> Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO rule_state (rule, kind, key, data, part) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (rule, kind, key) DO UPDATE SET data = ?4, part = ?5",
    )?;
    let mut delete =
        tx.prepare_cached("DELETE FROM rule_state WHERE rule = ?1 AND kind = ?2 AND key = ?3")?;
    for (rule, keys) in changes {
        for change in keys {
            let kind = change.kind.name();
            match &change.state {
                Some(state) => upsert.execute(params![
                    rule,
                    kind,
                    change.key,
                    encode(state)?,
                    change.partition as i64
                ])?,
                None => delete.execute(params![rule, kind, change.key])?,
            };
        }
    }
    Ok(())
}

fn encode(state: &KeyState) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Counter<'a> {
        w: u64,
        e: &'a [(i64, u64)],
    }
    #[derive(serde::Serialize)]
    struct Set<'a> {
        w: u64,
        t: u64,
        s: &'a [(String, Vec<i64>)],
    }
    #[derive(serde::Serialize)]
    struct Values {
        vs: Vec<(i64, Option<String>, Option<i64>)>,
    }
    Ok(match state {
        KeyState::Counter { window_ms, entries } => serde_json::to_string(&Counter {
            w: *window_ms,
            e: entries,
        })?,
        KeyState::Set {
            window_ms,
            thin_ms,
            members,
        } => serde_json::to_string(&Set {
            w: *window_ms,
            t: *thin_ms,
            s: members,
        })?,
        KeyState::Value { versions } => serde_json::to_string(&Values {
            vs: versions
                .iter()
                .map(|v| (v.set_at, v.value.clone(), v.expires_at))
                .collect(),
        })?,
    })
}

/// Reads one stored key, in the current shape or the one before
/// versioning: an old value becomes one version with `set_at` = `i64::MIN`
/// (in effect for every event, as it was), an old set member one sighting
/// at its last-seen time (thinned against the set's window).
fn decode(kind: StateKind, v: &Value) -> Result<KeyState> {
    Ok(match kind {
        StateKind::Counter => KeyState::Counter {
            window_ms: v["w"].as_u64().context("window")?,
            entries: serde_json::from_value(v["e"].clone())?,
        },
        StateKind::Set => {
            let window_ms = v["w"].as_u64().context("window")?;
            if v.get("s").is_some() {
                KeyState::Set {
                    window_ms,
                    thin_ms: v["t"].as_u64().context("thinning window")?,
                    members: serde_json::from_value(v["s"].clone())?,
                }
            } else {
                let old: Vec<(String, i64)> = serde_json::from_value(v["m"].clone())?;
                KeyState::Set {
                    window_ms,
                    thin_ms: window_ms,
                    members: old.into_iter().map(|(m, t)| (m, vec![t])).collect(),
                }
            }
        }
        StateKind::Value => {
            if let Some(vs) = v.get("vs") {
                let versions: Vec<(i64, Option<String>, Option<i64>)> =
                    serde_json::from_value(vs.clone())?;
                KeyState::Value {
                    versions: versions
                        .into_iter()
                        .map(|(set_at, value, expires_at)| Version {
                            set_at,
                            value,
                            expires_at,
                        })
                        .collect(),
                }
            } else {
                KeyState::Value {
                    versions: vec![Version {
                        set_at: i64::MIN,
                        value: Some(v["v"].as_str().context("value")?.to_owned()),
                        expires_at: v["x"].as_i64(),
                    }],
                }
            }
        }
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
            versions: vec![
                Version {
                    set_at: 3,
                    value: Some("x".into()),
                    expires_at: Some(9),
                },
                Version {
                    set_at: 5,
                    value: None,
                    expires_at: None,
                },
            ],
        };
        let set = KeyState::Set {
            window_ms: 600_000,
            thin_ms: 60_000,
            members: vec![("alice".into(), vec![1, 70_000])],
        };
        let change = |kind, key: &str, state, partition| KeyChange {
            kind,
            key: key.into(),
            state,
            partition,
        };
        s.save_rule_state(&[(
            "r1".into(),
            vec![
                change(StateKind::Counter, "c", Some(counter.clone()), 1),
                change(StateKind::Value, "v", Some(value.clone()), 2),
                // The top bit survives SQLite's signed integer.
                change(StateKind::Set, "s", Some(set.clone()), u64::MAX - 1),
            ],
        )])
        .unwrap();
        let mut got = s.load_rule_state("r1").unwrap();
        got.sort_by(|a, b| a.key.cmp(&b.key));
        let stored = |key: &str, state, partition| StoredKey {
            key: key.into(),
            state,
            partition: Some(partition),
        };
        assert_eq!(
            got,
            vec![
                stored("c", counter, 1),
                stored("s", set, u64::MAX - 1),
                stored("v", value, 2)
            ]
        );
        s.save_rule_state(&[("r1".into(), vec![change(StateKind::Value, "v", None, 2)])])
            .unwrap();
        assert_eq!(s.load_rule_state("r1").unwrap().len(), 2);
        assert!(s.load_rule_state("r2").unwrap().is_empty());
    }

    // A database from before shards has no `part` column: opening it adds
    // one, its rows load without a partition, and a rewrite tags them.
    #[test]
    fn a_store_from_before_shards_gains_the_partition_column() {
        let (_dir, path) = super::super::old_database(
            "CREATE TABLE rule_state (rule TEXT NOT NULL, kind TEXT NOT NULL,
             key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (rule, kind, key));
             INSERT INTO rule_state VALUES ('r', 'counter', 'c', '{\"w\":600000,\"e\":[[1000,2]]}');",
        );
        let s = Store::open(&path).unwrap();
        let got = s.load_rule_state("r").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].partition, None);
        s.save_rule_state(&[(
            "r".into(),
            vec![KeyChange {
                kind: StateKind::Counter,
                key: "c".into(),
                state: Some(got[0].state.clone()),
                partition: 42,
            }],
        )])
        .unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.load_rule_state("r").unwrap()[0].partition, Some(42));
    }

    // A database written before values were versioned: its rows are read
    // as they meant (a value in effect for every event, a set member seen
    // once at its last sighting) and behave the same once restored.
    #[test]
    fn rows_from_before_versioning_are_migrated_on_load() {
        let s = Store::in_memory().unwrap();
        for (kind, key, data) in [
            ("value", "v", r#"{"v":"kept","x":5000}"#),
            ("value", "forever", r#"{"v":"always","x":null}"#),
            (
                "set",
                "d",
                r#"{"w":600000,"m":[["alice",1000],["bob",2000]]}"#,
            ),
            ("counter", "c", r#"{"w":600000,"e":[[1000,2]]}"#),
        ] {
            s.conn
                .execute(
                    "INSERT INTO rule_state (rule, kind, key, data) VALUES ('r', ?1, ?2, ?3)",
                    params![kind, key, data],
                )
                .unwrap();
        }
        let mut state = vigil_sdk::state_store::StateStore::default();
        for stored in s.load_rule_state("r").unwrap() {
            assert_eq!(stored.partition, None, "written before shards");
            state.restore(stored.key, stored.state);
        }
        state.set_now(3000);
        assert_eq!(state.get("v"), Some("kept"));
        assert_eq!(state.get("forever"), Some("always"));
        assert_eq!(state.distinct_count("d", 600_000), 2);
        assert_eq!(state.counter_get("c", 600_000), 2);
        state.set_now(5000);
        assert_eq!(state.get("v"), None, "the old expiry holds");
        // Rewritten in the new shape, it loads the same.
        state.track_changes();
        state.set("v", "new", None).unwrap();
        let changes = state.take_changes();
        s.save_rule_state(&[("r".into(), changes)]).unwrap();
        let data: String = s
            .conn
            .query_row(
                "SELECT data FROM rule_state WHERE rule = 'r' AND key = 'v'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(data.starts_with(r#"{"vs":"#), "{data}");
    }
}
