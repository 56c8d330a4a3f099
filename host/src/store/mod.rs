//! The durable store: everything Vigil must remember across restarts that
//! is not an audit record — idempotency keys of executed actions, the
//! undos of temporary actions that are not due yet, and small named values
//! such as a source's cursor, and the MFA baselines (`baselines.rs`) — plus
//! the tables that make processing an
//! event one atomic commit (`durable.rs`: the audit outbox, accepted
//! actions awaiting their result, the event ids each rule judged).
//!
//! Several connections may use the file at once (the pipeline's and a
//! poller's thread each open their own; SQLite's WAL serialises writers).
//!
//! One SQLite file (rusqlite, with SQLite compiled in, so no system library
//! is needed). Why SQLite rather than a pure-Rust key-value store: it is the
//! most tested crash-safe storage engine there is, its WAL mode gives
//! atomic, durable commits with one fsync, and an operator can inspect the
//! file with the `sqlite3` shell during an incident. Writes that must be
//! durable before an HTTP call (an execution marked in flight) are their
//! own committed transaction with `synchronous = FULL`.
//!
//! Idempotency is *at most once*: a key is marked `in-flight` durably before
//! the request is sent, so a crash between the send and the answer leaves
//! the key blocked rather than risk suspending a user twice; a key whose
//! execution `failed` may be tried again by a later request.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

use crate::actions::connector::Undo;

mod action_json;
mod approvals;
mod baselines;
mod durable;
mod guardrails;
mod integrity;
mod rule_state;

pub use action_json::{action_from_json, action_to_json};
pub use approvals::PendingApproval;
pub use baselines::{StoredBaseline, snapshot_digest};
pub use durable::Commit;
pub use guardrails::StoredBreaker;
pub use rule_state::{KeyChange, StoredKey};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    key        TEXT PRIMARY KEY,  -- action_id + ':' + connector
    action_id  TEXT NOT NULL,
    connector  TEXT NOT NULL,
    state      TEXT NOT NULL,     -- in-flight | executed | failed
    detail     TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS undos (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id  TEXT NOT NULL,     -- the action this undo reverses
    rule       TEXT NOT NULL,
    connector  TEXT NOT NULL,
    undo       TEXT NOT NULL,     -- JSON of actions::connector::Undo
    due_ms     INTEGER NOT NULL,
    state      TEXT NOT NULL,     -- pending | done | failed
    attempts   INTEGER NOT NULL DEFAULT 0,
    detail     TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS undos_pending ON undos (state, due_ms);
CREATE TABLE IF NOT EXISTS rule_state (
    rule       TEXT NOT NULL,
    kind       TEXT NOT NULL,     -- counter | set | value
    key        TEXT NOT NULL,
    data       TEXT NOT NULL,     -- JSON snapshot (see rule_state.rs)
    part       INTEGER,           -- partition of its last writer (NULL: written before shards)
    PRIMARY KEY (rule, kind, key)
);
CREATE TABLE IF NOT EXISTS budget_usage (
    scope      TEXT NOT NULL,     -- a rule id, or '*' for the global budget
    kind       TEXT NOT NULL,     -- action kind
    at_ms      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS budget_usage_at ON budget_usage (at_ms);
CREATE TABLE IF NOT EXISTS breakers (
    rule       TEXT PRIMARY KEY,
    tripped_ms INTEGER NOT NULL,
    reason     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rule_status (
    rule       TEXT PRIMARY KEY,
    quarantined_ms INTEGER NOT NULL,
    reason     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    action_id  TEXT PRIMARY KEY,
    rule       TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    event_source TEXT NOT NULL,
    action     TEXT NOT NULL,     -- JSON of the typed action (action_json.rs)
    aliases    TEXT NOT NULL,     -- JSON list: the target's names in the event
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    state      TEXT NOT NULL,     -- pending | approved | rejected | expired
    decided_by TEXT NOT NULL DEFAULT '',
    decided_ms INTEGER NOT NULL DEFAULT 0,
    chat_posted INTEGER NOT NULL DEFAULT 0  -- 1 once its request for a decision was posted
);
CREATE TABLE IF NOT EXISTS meta (
    key        TEXT PRIMARY KEY,  -- e.g. 'okta-poller:<base url>:cursor'
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
";

/// What the store remembers of one execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub state: String,
    pub detail: String,
    pub updated_ms: i64,
}

/// An undo waiting in the store.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledUndo {
    pub id: i64,
    pub action_id: String,
    pub rule: String,
    pub connector: String,
    pub undo: Undo,
    pub due_ms: i64,
    pub attempts: u32,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store file. The first open of a file
    /// in this process runs `PRAGMA quick_check` and refuses a damaged
    /// database (see `integrity.rs`).
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open the state store {}", path.display()))?;
        integrity::check_once(&conn, path)?;
        Self::init(conn, path)
    }

    /// A store that lives in memory only (tests, `vigil test`).
    pub fn in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?, Path::new(":memory:"))
    }

    fn init(conn: Connection, path: &Path) -> Result<Store> {
        let at = || format!("cannot initialise the state store {}", path.display());
        conn.pragma_update(None, "journal_mode", "WAL")
            .with_context(at)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .with_context(at)?;
        // Keep up to 32 MiB of pages in SQLite's own cache (the default is
        // 2 MiB): the judged-id and rule-state b-trees are touched on every
        // event, and re-reading their pages through pread showed up as a
        // third of the time of the whole pack (BENCHMARKS.md).
        conn.pragma_update(None, "cache_size", -32_768)
            .with_context(at)?;
        // Another process holding a write lock: wait rather than fail.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .with_context(at)?;
        conn.execute_batch(SCHEMA).with_context(at)?;
        conn.execute_batch(durable::SCHEMA).with_context(at)?;
        conn.execute_batch(baselines::SCHEMA).with_context(at)?;
        // Layouts of earlier versions, brought up to date in place.
        durable::migrate(&conn).with_context(at)?;
        rule_state::migrate(&conn).with_context(at)?;
        approvals::migrate(&conn).with_context(at)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The context of a failed read or write: it names the file, so an
    /// operator sees which disk is full or damaged.
    fn failed(&self, what: &str) -> String {
        format!("cannot {what} in the state store {}", self.path.display())
    }

    /// A small named value (a source's cursor, …).
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .with_context(|| self.failed("read from"))
    }

    /// Stores a small named value durably.
    pub fn set_meta(&self, key: &str, value: &str, now_ms: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = ?2, updated_ms = ?3",
                params![key, value, now_ms],
            )
            .with_context(|| self.failed("write to"))?;
        Ok(())
    }

    /// The execution recorded under `key`, if any.
    pub fn execution(&self, key: &str) -> Result<Option<ExecutionRecord>> {
        self.conn
            .query_row(
                "SELECT state, detail, updated_ms FROM executions WHERE key = ?1",
                [key],
                |r| {
                    Ok(ExecutionRecord {
                        state: r.get(0)?,
                        detail: r.get(1)?,
                        updated_ms: r.get(2)?,
                    })
                },
            )
            .optional()
            .with_context(|| self.failed("read from"))
    }

    /// Marks `key` in flight (durably) before its request is sent.
    pub fn begin_execution(
        &self,
        key: &str,
        action_id: &str,
        connector: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO executions (key, action_id, connector, state, detail, updated_ms)
                 VALUES (?1, ?2, ?3, 'in-flight', '', ?4)
                 ON CONFLICT (key) DO UPDATE SET state = 'in-flight', detail = '', updated_ms = ?4",
                params![key, action_id, connector, now_ms],
            )
            .with_context(|| self.failed("write to"))?;
        Ok(())
    }

    /// Records how an execution ended (`executed` or `failed`).
    pub fn finish_execution(
        &self,
        key: &str,
        state: &str,
        detail: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE executions SET state = ?2, detail = ?3, updated_ms = ?4 WHERE key = ?1",
                params![key, state, detail, now_ms],
            )
            .with_context(|| self.failed("write to"))?;
        Ok(())
    }

    /// Keeps an undo until `due_ms`; returns its id.
    pub fn schedule_undo(
        &self,
        action_id: &str,
        rule: &str,
        connector: &str,
        undo: &Undo,
        due_ms: i64,
        now_ms: i64,
    ) -> Result<i64> {
        let json = serde_json::to_string(undo)?;
        self.conn
            .execute(
                "INSERT INTO undos (action_id, rule, connector, undo, due_ms, state, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
                params![action_id, rule, connector, json, due_ms, now_ms],
            )
            .with_context(|| self.failed("write to"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Pending undos due at or before `now_ms`, oldest first.
    pub fn due_undos(&self, now_ms: i64) -> Result<Vec<ScheduledUndo>> {
        self.undos_where("state = 'pending' AND due_ms <= ?1", now_ms)
    }

    /// One pending undo by id.
    pub fn pending_undo(&self, id: i64) -> Result<Option<ScheduledUndo>> {
        Ok(self
            .undos_where("state = 'pending' AND id = ?1", id)?
            .into_iter()
            .next())
    }

    /// Every pending undo, soonest first.
    pub fn pending_undos(&self) -> Result<Vec<ScheduledUndo>> {
        self.undos_where("state = 'pending' AND ?1 = ?1", 0)
    }

    fn undos_where(&self, condition: &str, arg: i64) -> Result<Vec<ScheduledUndo>> {
        let sql = format!(
            "SELECT id, action_id, rule, connector, undo, due_ms, attempts FROM undos
             WHERE {condition} ORDER BY due_ms, id"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([arg], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, u32>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, action_id, rule, connector, json, due_ms, attempts) =
                row.with_context(|| self.failed("read from"))?;
            let undo = serde_json::from_str(&json)
                .with_context(|| format!("state store: undo {id} is not readable: {json}"))?;
            out.push(ScheduledUndo {
                id,
                action_id,
                rule,
                connector,
                undo,
                due_ms,
                attempts,
            });
        }
        Ok(out)
    }

    /// The earliest due time of a pending undo.
    pub fn next_undo_due(&self) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT MIN(due_ms) FROM undos WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .with_context(|| self.failed("read from"))
    }

    /// Records the end of an undo (`done` or `failed`).
    pub fn finish_undo(&self, id: i64, state: &str, detail: &str, now_ms: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE undos SET state = ?2, detail = ?3, attempts = attempts + 1, updated_ms = ?4
                 WHERE id = ?1",
                params![id, state, detail, now_ms],
            )
            .with_context(|| self.failed("write to"))?;
        Ok(())
    }

    /// Puts a failed undo back for another try at `due_ms`.
    pub fn retry_undo(&self, id: i64, detail: &str, due_ms: i64, now_ms: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE undos SET due_ms = ?2, detail = ?3, attempts = attempts + 1, updated_ms = ?4
                 WHERE id = ?1",
                params![id, due_ms, detail, now_ms],
            )
            .with_context(|| self.failed("write to"))?;
        Ok(())
    }
}

/// A state database file made by `sql` alone (a layout of an earlier
/// version), for the migration tests; the directory goes with the value.
#[cfg(test)]
pub(crate) fn old_database(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
    (dir, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let s = Store::open(&path).unwrap();
            assert_eq!(s.execution("a:okta").unwrap(), None);
            s.begin_execution("a:okta", "a", "okta", 10).unwrap();
            s.finish_execution("a:okta", "executed", "suspended u1", 11)
                .unwrap();
            s.begin_execution("b:okta", "b", "okta", 12).unwrap();
        }
        let s = Store::open(&path).unwrap();
        let a = s.execution("a:okta").unwrap().unwrap();
        assert_eq!(
            (a.state.as_str(), a.detail.as_str()),
            ("executed", "suspended u1")
        );
        assert_eq!(s.execution("b:okta").unwrap().unwrap().state, "in-flight");
    }

    #[test]
    fn undos_come_due_in_order_and_finish() {
        let s = Store::in_memory().unwrap();
        let late = Undo::Unblock {
            ip: "203.0.113.9".into(),
        };
        let soon = Undo::Unsuspend { user: "u1".into() };
        let id_late = s.schedule_undo("x", "r", "okta", &late, 2_000, 0).unwrap();
        let id_soon = s.schedule_undo("y", "r", "okta", &soon, 1_000, 0).unwrap();
        assert_eq!(s.next_undo_due().unwrap(), Some(1_000));
        assert!(s.due_undos(999).unwrap().is_empty());
        let due = s.due_undos(5_000).unwrap();
        assert_eq!(
            due.iter().map(|u| u.id).collect::<Vec<_>>(),
            vec![id_soon, id_late]
        );
        assert_eq!(due[0].undo, soon);
        s.finish_undo(id_soon, "done", "unsuspended u1", 5_000)
            .unwrap();
        s.retry_undo(id_late, "HTTP 503", 9_000, 5_000).unwrap();
        let pending = s.pending_undos().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].due_ms, pending[0].attempts), (9_000, 1));
    }
}
