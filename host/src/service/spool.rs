//! The durable spool: an HTTP delivery (`/v1/events`, the Okta hook) is
//! written here before it is answered 2xx, so an event answered 2xx
//! survives `kill -9` or a power cut.
//!
//! Its own SQLite file next to the state database (`<state>.spool.db`,
//! WAL): one row per delivery (its raw body, normalized again on replay:
//! the normalizer is deterministic, event ids included), committed in its
//! own transaction with `synchronous = FULL` — one fsync per delivery,
//! however many events it carries. A file of its own, so the HTTP side's
//! fsyncs never wait for the pipeline's commits nor hold them up.
//!
//! The pipeline thread deletes a delivery's row once every event of it
//! has been committed (`Pipeline::sync`). A crash in between leaves the
//! row; at start the rows left are replayed before the listener accepts,
//! and the events a rule already judged are skipped there
//! (`pipeline::judged`, committed with the rule's state), so a replay never
//! counts twice.
//!
//! A failed spool write (a full disk) is answered 503 with the cause,
//! never 2xx. The spool holds at most the deliveries queued for the
//! pipeline (`server.queue_capacity`) plus those being processed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use rusqlite::{Connection, params};

use super::metrics::Metrics;
use crate::model::Event;
use crate::pipeline::Pipeline;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spool (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    source     TEXT NOT NULL,     -- http | okta-hook
    kind       TEXT NOT NULL,     -- how to read body: json | ndjson | hook
    body       TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
";

/// A spooled delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spooled {
    pub id: i64,
    pub source: String,
    pub kind: String,
    pub body: String,
}

/// The spool file (shared by the HTTP handlers and the pipeline thread).
pub struct Spool {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// The spool file of the state database at `state_path`:
/// `vigil-state.db` → `vigil-state.spool.db`.
pub fn path_for(state_path: &Path) -> PathBuf {
    let stem = state_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vigil-state".into());
    state_path.with_file_name(format!("{stem}.spool.db"))
}

impl Spool {
    /// Opens (creating if needed) the spool next to the state database at
    /// `state_path`.
    pub fn open(state_path: &Path) -> Result<Spool> {
        let path = path_for(state_path);
        let at = || format!("cannot open the event spool {}", path.display());
        let conn = Connection::open(&path).with_context(at)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .with_context(at)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .with_context(at)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .with_context(at)?;
        conn.execute_batch(SCHEMA).with_context(at)?;
        Ok(Spool {
            conn: Mutex::new(conn),
            path,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one delivery durably; returns its row id. Blocking (an
    /// fsync): call it off the async workers.
    pub fn write(&self, metrics: &Metrics, source: &str, kind: &str, body: &str) -> Result<i64> {
        let started = Instant::now();
        let conn = self.conn();
        conn.execute(
            "INSERT INTO spool (source, kind, body, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![source, kind, body, crate::clock::now_ms()],
        )
        .with_context(|| {
            format!(
                "cannot write the event spool {} (disk full?)",
                self.path.display()
            )
        })?;
        let id = conn.last_insert_rowid();
        drop(conn);
        metrics.spool_write(started.elapsed());
        Ok(id)
    }

    /// Forgets deliveries: processed and committed, or refused after all
    /// (the queue was full: the client was answered 503 and sends it
    /// again). Without an fsync: a row a power cut brings back is replayed,
    /// and its judged events are skipped.
    pub fn remove(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let conn = self.conn();
        let at = || format!("cannot update the event spool {}", self.path.display());
        conn.pragma_update(None, "synchronous", "NORMAL")
            .with_context(at)?;
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            {
                let mut delete = tx.prepare_cached("DELETE FROM spool WHERE id = ?1")?;
                for id in ids {
                    delete.execute([id])?;
                }
            }
            tx.commit()
        })();
        conn.pragma_update(None, "synchronous", "FULL")
            .with_context(at)?;
        result.with_context(at)
    }

    /// The deliveries left, oldest first.
    pub fn rows(&self) -> Result<Vec<Spooled>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT id, source, kind, body FROM spool ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(Spooled {
                id: r.get(0)?,
                source: r.get(1)?,
                kind: r.get(2)?,
                body: r.get(3)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| format!("cannot read the event spool {}", self.path.display()))
    }
}

/// Runs the deliveries a previous run answered 2xx and did not finish,
/// oldest first, commits and syncs, then forgets them. `decode` turns a
/// row's kind and body back into events, as the route that took it did
/// (`http::spooled_events`). Returns how many were replayed.
pub fn replay(
    pipeline: &mut Pipeline,
    spool: &Spool,
    decode: impl Fn(&str, &str) -> Result<Vec<Event>, String>,
) -> Result<usize> {
    let rows = spool.rows()?;
    let n = rows.len();
    if n == 0 {
        return Ok(0);
    }
    tracing::warn!(
        deliveries = n,
        "replaying deliveries answered 2xx before the last stop and not yet processed"
    );
    let mut ids = Vec::with_capacity(n);
    for row in rows {
        match decode(&row.kind, &row.body) {
            Ok(events) => {
                for event in events {
                    pipeline.process_event(event)?;
                }
            }
            // Accepted once, so it normalized then; only a changed
            // normalizer could refuse it now. Said loudly, then dropped.
            Err(e) => tracing::error!(
                spool_id = row.id,
                source = %row.source,
                "a spooled delivery no longer normalizes and is dropped: {e}"
            ),
        }
        ids.push(row.id);
    }
    pipeline.sync()?;
    spool.remove(&ids)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_survive_reopening_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("vigil-state.db");
        assert_eq!(path_for(&state), dir.path().join("vigil-state.spool.db"));
        let metrics = Metrics::new(&[]);
        let (a, b) = {
            let spool = Spool::open(&state).unwrap();
            (
                spool.write(&metrics, "http", "json", "[1]").unwrap(),
                spool.write(&metrics, "okta-hook", "hook", "{}").unwrap(),
            )
        };
        let spool = Spool::open(&state).unwrap();
        let rows = spool.rows().unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [a, b]);
        assert_eq!(rows[1].kind, "hook");
        spool.remove(&[a]).unwrap();
        assert_eq!(spool.rows().unwrap().len(), 1);
    }
}
