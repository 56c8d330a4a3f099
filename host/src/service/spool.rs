//! The durable spool: an HTTP delivery (`/v1/events`, the Okta hook) is
//! written to the state database before it is answered 2xx, so an event
//! answered 2xx survives `kill -9`.
//!
//! One row per delivery (its raw body, re-normalized on replay: the
//! normalizer is deterministic, event ids included), committed in its own
//! transaction with `synchronous = FULL` — one fsync per delivery, however
//! many events it carries. The pipeline deletes the row in the same store
//! transaction that commits what the delivery's events produced
//! (`store::Commit`), so a row exists exactly while its events may still
//! be unprocessed. At start, rows left by a crash are replayed before the
//! listener accepts; events a rule had already judged are skipped as
//! duplicates (`pipeline::judged`), so a replay never counts twice.
//!
//! A failed spool write (a full disk) is answered 503 with the reason,
//! never 2xx. The spool holds at most the deliveries queued for the
//! pipeline (`server.queue_capacity`) plus those being processed.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;

use super::metrics::Metrics;
use crate::normalize::Normalizer;
use crate::pipeline::Pipeline;
use crate::store::Store;

/// The HTTP side's connection to the spool table.
pub struct Spool {
    store: Mutex<Store>,
}

impl Spool {
    /// Opens its own connection to the state database at `path`.
    pub fn open(path: &Path) -> Result<Spool> {
        Ok(Spool {
            store: Mutex::new(Store::open(path)?),
        })
    }

    /// Writes one delivery durably; returns its row id. Blocking (an
    /// fsync): call it off the async workers.
    pub fn write(&self, metrics: &Metrics, source: &str, kind: &str, body: &str) -> Result<i64> {
        let started = Instant::now();
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let id = store.spool(source, kind, body)?;
        metrics.spool_write(started.elapsed());
        Ok(id)
    }

    /// Forgets a delivery that was refused after all (the queue was full:
    /// the client was answered 503 and will send it again).
    pub fn remove(&self, id: i64) -> Result<()> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        store.commit(&crate::store::Commit {
            spool_done: vec![id],
            ..Default::default()
        })?;
        Ok(())
    }
}

/// Runs the deliveries a previous run answered 2xx and did not finish,
/// oldest first, then commits and syncs. Returns how many were replayed.
pub fn replay(
    pipeline: &mut Pipeline,
    normalizer: &Normalizer,
    max_events: usize,
) -> Result<usize> {
    let rows = pipeline.executor().store().spooled()?;
    let n = rows.len();
    if n == 0 {
        return Ok(0);
    }
    tracing::warn!(
        deliveries = n,
        "replaying deliveries answered 2xx before the last stop and not yet processed"
    );
    for row in rows {
        match super::http::spooled_events(normalizer, &row.kind, &row.body, max_events) {
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
        pipeline.spool_done(row.id);
    }
    pipeline.sync()?;
    Ok(n)
}
