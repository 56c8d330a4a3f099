//! Pending approvals: actions parked until an operator approves or rejects
//! them, or they expire.

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, Row, params};

use super::Store;
use super::action_json::{action_from_json, action_to_json};
use crate::model::Action;

/// One parked action.
#[derive(Clone, Debug)]
pub struct PendingApproval {
    /// The action id doubles as the approval id.
    pub action_id: String,
    pub rule: String,
    pub event_id: String,
    pub event_source: String,
    pub action: Action,
    /// The principals (id, login) of the event that name the target, so the
    /// protected-account check
    /// can be repeated at approval time exactly as at request time.
    pub aliases: Vec<(String, Option<String>)>,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// `pending`, `approved`, `rejected` or `expired`.
    pub state: String,
    pub decided_by: String,
}

const COLUMNS: &str = "action_id, rule, event_id, event_source, action, aliases, created_ms, \
                       expires_ms, state, decided_by";

fn from_row(r: &Row<'_>) -> rusqlite::Result<(PendingApproval, String, String)> {
    Ok((
        PendingApproval {
            action_id: r.get(0)?,
            rule: r.get(1)?,
            event_id: r.get(2)?,
            event_source: r.get(3)?,
            // Filled in below (JSON parsing errors are not SQLite errors).
            action: Action::RevokeSessions(String::new()),
            aliases: Vec::new(),
            created_ms: r.get(6)?,
            expires_ms: r.get(7)?,
            state: r.get(8)?,
            decided_by: r.get(9)?,
        },
        r.get(4)?,
        r.get(5)?,
    ))
}

fn finish(row: (PendingApproval, String, String)) -> Result<PendingApproval> {
    let (mut p, action, aliases) = row;
    p.action = action_from_json(&serde_json::from_str(&action)?)
        .with_context(|| format!("approval {}: unreadable action", p.action_id))?;
    p.aliases = serde_json::from_str(&aliases)?;
    Ok(p)
}

/// Stores made before approvals were posted to chat get the column that
/// says whether one was.
pub(super) fn migrate(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('approvals') WHERE name = 'chat_posted'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has {
        conn.execute_batch(
            "ALTER TABLE approvals ADD COLUMN chat_posted INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    Ok(())
}

impl Store {
    /// Parks an action; a second request with the same action id (a
    /// replayed event) is ignored. Returns whether it was new.
    pub fn add_approval(&self, p: &PendingApproval) -> Result<bool> {
        let n = self
            .conn
            .execute(
                &format!(
                    "INSERT OR IGNORE INTO approvals ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    p.action_id,
                    p.rule,
                    p.event_id,
                    p.event_source,
                    action_to_json(&p.action).to_string(),
                    serde_json::to_string(&p.aliases)?,
                    p.created_ms,
                    p.expires_ms,
                    p.state,
                    p.decided_by
                ],
            )
            .with_context(|| self.failed("write the approval"))?;
        Ok(n > 0)
    }

    pub fn approval(&self, action_id: &str) -> Result<Option<PendingApproval>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM approvals WHERE action_id = ?1"),
                [action_id],
                from_row,
            )
            .optional()
            .with_context(|| self.failed("read the approval"))?;
        row.map(finish).transpose()
    }

    /// Approvals in `state`, oldest first.
    pub fn approvals(&self, state: &str) -> Result<Vec<PendingApproval>> {
        self.approvals_where("state = ?1", [state])
    }

    /// Approvals matching `condition` (with `params`), oldest first.
    fn approvals_where(
        &self,
        condition: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<PendingApproval>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE {condition} ORDER BY created_ms, action_id"
        ))?;
        let rows = stmt.query_map(params, from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(finish(row.with_context(|| self.failed("read approvals"))?)?);
        }
        Ok(out)
    }

    /// Pending, unexpired approvals whose request for a decision was never
    /// posted to chat (the service stopped first), oldest first.
    pub fn approvals_unposted(&self, now_ms: i64) -> Result<Vec<PendingApproval>> {
        self.approvals_where(
            "state = 'pending' AND chat_posted = 0 AND expires_ms > ?1",
            [now_ms],
        )
    }

    /// Notes that an approval's request was posted (delivered or given up
    /// on, as audited).
    pub fn mark_approval_posted(&self, action_id: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE approvals SET chat_posted = 1 WHERE action_id = ?1",
                [action_id],
            )
            .with_context(|| self.failed("write the approval"))?;
        Ok(())
    }

    /// Moves a pending approval to `state`; false if it was no longer
    /// pending (someone decided first).
    pub fn decide_approval(
        &self,
        action_id: &str,
        state: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE approvals SET state = ?2, decided_by = ?3, decided_ms = ?4
                 WHERE action_id = ?1 AND state = 'pending'",
                params![action_id, state, by, now_ms],
            )
            .with_context(|| self.failed("write the approval"))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    // A store from before approvals were posted to chat gains the column;
    // its pending approvals count as not posted (the next start posts them
    // when `[approvals] notify` is set). A second migration changes nothing.
    #[test]
    fn old_stores_gain_the_posted_column() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE approvals (action_id TEXT PRIMARY KEY, state TEXT NOT NULL);
             INSERT INTO approvals VALUES ('act-1', 'pending');",
        )
        .unwrap();
        super::migrate(&conn).unwrap();
        super::migrate(&conn).unwrap();
        let posted: i64 = conn
            .query_row(
                "SELECT chat_posted FROM approvals WHERE action_id = 'act-1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(posted, 0);
    }
}
