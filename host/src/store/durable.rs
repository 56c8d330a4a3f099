//! The tables that make an event's processing one atomic step (see the
//! ordering guarantees in `crate::pipeline`):
//!
//! - `outbox`: audit records committed here before they are appended to
//!   the audit log, so the log cannot miss a record the state already
//!   reflects (recovered at start by `pipeline::recover`);
//! - `pending_actions`: accepted actions whose result is not audited yet
//!   (reconciled at start: every `accepted` action gets an `action-result`);
//! - `judged_ids`: per rule, the ids of the events it has judged, so a replay
//!   through persisted state does not count an event twice (and a spooled
//!   delivery replayed after a crash, `service::spool`, is harmless).
//!
//! [`Store::commit`] writes one [`Commit`] in one transaction: rule state,
//! budget usage, judged ids, outbox records, pending actions, and the
//! deletion of resolved actions.

use anyhow::{Context, Result};
use rusqlite::params;

use super::{KeyChange, Store};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    record     TEXT NOT NULL      -- JSON: {kind, rule, event_id, fields}
);
CREATE TABLE IF NOT EXISTS pending_actions (
    action_id  TEXT PRIMARY KEY,
    job        TEXT NOT NULL,     -- JSON of the ExecJob (rule, event, action)
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS judged_ids (
    rule       TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,  -- when it was judged (wall clock, unix ms)
    event      INTEGER NOT NULL,  -- 64-bit digest of the event id (pipeline/judged.rs)
    PRIMARY KEY (rule, at_ms, event)
) WITHOUT ROWID;
";

/// Moves the ids of the first layout of judged ids (`judged`, keyed by
/// rule and event digest: every insert landed at a random place of a large
/// b-tree, the most expensive write of the whole pipeline) into
/// `judged_ids`, keyed in judging order so inserts append and the oldest
/// are deleted from the front. Run at open; nothing to do when the old
/// table is not there.
pub(super) fn migrate(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let old_judged: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'judged'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if old_judged {
        conn.execute_batch(MIGRATE_JUDGED)?;
    }
    Ok(())
}

const MIGRATE_JUDGED: &str = "
BEGIN;
INSERT OR IGNORE INTO judged_ids (rule, at_ms, event) SELECT rule, at_ms, event FROM judged;
DROP TABLE judged;
COMMIT;
";

/// Meta key: the audit log's `seq` when the outbox was last emptied; only
/// records after it can be outbox records already appended.
pub const OUTBOX_SEQ_KEY: &str = "audit-outbox-seq";

/// Everything one commit writes.
#[derive(Default, Debug)]
pub struct Commit {
    pub rule_state: Vec<(String, Vec<KeyChange>)>,
    pub budget_usage: Vec<(String, String, i64)>,
    pub budget_refunds: Vec<(String, String)>,
    /// (rule, event id digest, event time) judged since the last commit.
    pub judged: Vec<(String, i64, i64)>,
    /// (rule, event id digest, when it was judged) forgotten (past the
    /// rule's bound).
    pub forgotten: Vec<(String, i64, i64)>,
    /// Audit records, as JSON.
    pub outbox: Vec<String>,
    /// (action id, job JSON) accepted and not yet executed.
    pub pending: Vec<(String, String)>,
    /// Actions whose result is among `outbox`.
    pub resolved: Vec<String>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.rule_state.iter().all(|(_, c)| c.is_empty())
            && self.budget_usage.is_empty()
            && self.budget_refunds.is_empty()
            && self.judged.is_empty()
            && self.forgotten.is_empty()
            && self.outbox.is_empty()
            && self.pending.is_empty()
            && self.resolved.is_empty()
    }
}

impl Store {
    /// Writes `c` in one transaction; returns the id of the last outbox
    /// row written (0 when none). Committed with `synchronous = FULL` when
    /// it holds pending actions (they are executed right after), else
    /// NORMAL (WAL: safe against a killed process; the next FULL commit
    /// or the audit fsync's cleanup makes it durable against power loss).
    pub fn commit(&self, c: &Commit) -> Result<i64> {
        if c.is_empty() {
            return Ok(0);
        }
        let full = !c.pending.is_empty();
        if !full {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        let result = self.write_commit(c);
        if !full {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        result.with_context(|| {
            format!(
                "cannot commit to the state store {} (disk full?)",
                self.path.display()
            )
        })
    }

    fn write_commit(&self, c: &Commit) -> Result<i64> {
        let tx = self.conn.unchecked_transaction()?;
        let mut last = 0;
        super::rule_state::write_changes(&tx, &c.rule_state)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO budget_usage (scope, kind, at_ms) VALUES (?1, ?2, ?3)",
            )?;
            for (scope, kind, at) in &c.budget_usage {
                insert.execute(params![scope, kind, at])?;
            }
            let mut refund = tx.prepare_cached(
                "DELETE FROM budget_usage WHERE rowid = (SELECT rowid FROM budget_usage
                 WHERE scope = ?1 AND kind = ?2 ORDER BY at_ms DESC, rowid DESC LIMIT 1)",
            )?;
            for (scope, kind) in &c.budget_refunds {
                refund.execute(params![scope, kind])?;
            }
            let mut judged = tx.prepare_cached(
                "INSERT OR REPLACE INTO judged_ids (rule, at_ms, event) VALUES (?1, ?2, ?3)",
            )?;
            for (rule, id, at) in &c.judged {
                judged.execute(params![rule, at, id])?;
            }
            let mut forget = tx.prepare_cached(
                "DELETE FROM judged_ids WHERE rule = ?1 AND at_ms = ?2 AND event = ?3",
            )?;
            for (rule, id, at) in &c.forgotten {
                forget.execute(params![rule, at, id])?;
            }
            let mut outbox = tx.prepare_cached("INSERT INTO outbox (record) VALUES (?1)")?;
            for record in &c.outbox {
                outbox.execute([record])?;
                last = tx.last_insert_rowid();
            }
            let mut pending = tx.prepare_cached(
                "INSERT OR REPLACE INTO pending_actions (action_id, job, created_ms)
                 VALUES (?1, ?2, ?3)",
            )?;
            let now = crate::clock::now_ms();
            for (id, job) in &c.pending {
                pending.execute(params![id, job, now])?;
            }
            let mut resolved =
                tx.prepare_cached("DELETE FROM pending_actions WHERE action_id = ?1")?;
            for id in &c.resolved {
                resolved.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(last)
    }

    /// Makes every commit so far durable against power loss (one fsync of
    /// the WAL): called before the audit log is fsync'd, so the log never
    /// holds a record whose commit a power cut could undo.
    pub fn barrier(&self) -> Result<()> {
        self.set_meta("durable-barrier", "", crate::clock::now_ms())
    }

    /// Empties the outbox up to `last_id` once its records are durable in
    /// the audit log, whose newest record is then `log_seq`. Without an
    /// fsync of its own: if a power cut undoes it, the next start finds the
    /// records in the log and appends nothing twice.
    pub fn clear_outbox(&self, last_id: i64, log_seq: u64) -> Result<()> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = self.write_clear(last_id, log_seq);
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        result
    }

    fn write_clear(&self, last_id: i64, log_seq: u64) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM outbox WHERE id <= ?1", [last_id])?;
        tx.execute(
            "INSERT INTO meta (key, value, updated_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = ?2, updated_ms = ?3",
            params![OUTBOX_SEQ_KEY, log_seq.to_string(), crate::clock::now_ms()],
        )?;
        tx.commit().with_context(|| {
            format!(
                "cannot clear the audit outbox in {} (disk full?)",
                self.path.display()
            )
        })
    }

    /// The outbox rows, oldest first: (id, record JSON).
    pub fn outbox(&self) -> Result<Vec<(i64, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, record FROM outbox ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| self.failed("read the audit outbox"))
    }

    /// The log `seq` recorded when the outbox was last emptied.
    pub fn outbox_seq(&self) -> Result<u64> {
        Ok(self
            .meta(OUTBOX_SEQ_KEY)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Accepted actions whose result was never audited: (action id, job
    /// JSON), oldest first.
    pub fn pending_actions(&self) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT action_id, job FROM pending_actions ORDER BY created_ms, rowid",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| self.failed("read the pending actions"))
    }

    /// Every execution recorded for an action (one per connector):
    /// (connector, state, detail).
    pub fn executions_of(&self, action_id: &str) -> Result<Vec<(String, String, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT connector, state, detail FROM executions WHERE action_id = ?1 ORDER BY key",
        )?;
        let rows = stmt.query_map([action_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| self.failed("read the executions"))
    }

    /// The judged events of `rule`, oldest first: (event id digest, when
    /// it was judged).
    pub fn judged(&self, rule: &str) -> Result<Vec<(i64, i64)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT event, at_ms FROM judged_ids WHERE rule = ?1 ORDER BY at_ms")?;
        let rows = stmt.query_map([rule], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| self.failed("read the judged event ids"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_commit_writes_everything_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let s = Store::open(&path).unwrap();
        let c = Commit {
            judged: vec![("r".into(), 77, 5)],
            outbox: vec!["{\"kind\":\"finding\"}".into()],
            pending: vec![("a1".into(), "{}".into())],
            ..Default::default()
        };
        let last = s.commit(&c).unwrap();
        assert!(last > 0);
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.judged("r").unwrap(), vec![(77, 5)]);
        assert_eq!(s.outbox().unwrap().len(), 1);
        assert_eq!(s.pending_actions().unwrap().len(), 1);
        s.clear_outbox(last, 42).unwrap();
        assert!(s.outbox().unwrap().is_empty());
        assert_eq!(s.outbox_seq().unwrap(), 42);
        s.commit(&Commit {
            resolved: vec!["a1".into()],
            forgotten: vec![("r".into(), 77, 5)],
            ..Default::default()
        })
        .unwrap();
        assert!(s.pending_actions().unwrap().is_empty());
        assert!(s.judged("r").unwrap().is_empty());
    }

    #[test]
    fn judged_ids_of_the_first_layout_are_migrated_at_open() {
        let (_dir, path) = super::super::old_database(
            "CREATE TABLE judged (rule TEXT NOT NULL, event INTEGER NOT NULL,
               at_ms INTEGER NOT NULL, PRIMARY KEY (rule, event)) WITHOUT ROWID;
             INSERT INTO judged VALUES ('r', 77, 5), ('r', 78, 4), ('q', 1, 9);",
        );
        let s = Store::open(&path).unwrap();
        assert_eq!(s.judged("r").unwrap(), vec![(78, 4), (77, 5)]);
        assert_eq!(s.judged("q").unwrap(), vec![(1, 9)]);
        drop(s);
        // Opening again finds nothing left to move and keeps the ids.
        let s = Store::open(&path).unwrap();
        assert_eq!(s.judged("r").unwrap().len(), 2);
    }
}
