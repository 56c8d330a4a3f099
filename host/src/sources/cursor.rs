//! Durable positions of the long-running sources (the Okta poller's next
//! link, the file tail's inode and offset), kept as `meta` values in the
//! state store.
//!
//! A position is saved only once the events before it are processed: the
//! source hands the pipeline a [`Batch`](super::queue::Batch) whose
//! `on_done` callback — run on the pipeline thread after the batch went
//! through the rules and the audit log was synced — writes the position.
//! The callback owns a handle on the source's own store connection
//! ([`SourceState`], a `Store` behind a mutex), so the write needs no
//! round trip to the source's thread, and it happens in batch order
//! because the pipeline thread is single.
//!
//! A restart thus resumes after the last fully processed batch: nothing is
//! skipped, and at most the batch that was in flight when the process died
//! is read again. Its events carry the same ids (Okta `uuid`, or the hash
//! of the line), so the executor's idempotency keys make the replay
//! harmless.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::queue::Shutdown;
use crate::store::Store;

/// A source's connection to the state store, shareable with the `on_done`
/// callbacks of its batches.
#[derive(Clone)]
pub struct SourceState {
    store: Arc<Mutex<Store>>,
}

impl SourceState {
    /// Opens a connection of its own on the state file (the pipeline holds
    /// another; SQLite's WAL serialises the writers).
    pub fn open(state_path: &Path) -> Result<Self> {
        Ok(Self::new(Store::open(state_path)?))
    }

    pub fn new(store: Store) -> Self {
        SourceState {
            store: Arc::new(Mutex::new(store)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave a SQLite connection
        // half-written: each write is its own transaction.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value saved under `key`, if any.
    pub fn load(&self, key: &str) -> Result<Option<String>> {
        self.lock().meta(key)
    }

    /// Saves `value` under `key` durably.
    pub fn save(&self, key: &str, value: &str) -> Result<()> {
        self.lock()
            .set_meta(key, value, chrono::Utc::now().timestamp_millis())
    }

    /// A callback for `Batch::on_done`: saves `value` under `key`, and logs
    /// (does not panic on) a failure — the source keeps going and the next
    /// batch's save catches up; a restart before that replays a little.
    pub fn saver(&self, key: String, value: String) -> impl FnOnce() + Send + 'static {
        let state = self.clone();
        move || {
            if let Err(e) = state.save(&key, &value) {
                tracing::error!(key, "cannot save the source position: {e:#}");
            }
        }
    }
}

/// Sleeps for `d` in short steps, returning early (`false`) as soon as
/// `shutdown` is set; `true` when the whole pause elapsed.
pub fn pause(shutdown: &Shutdown, d: Duration) -> bool {
    const STEP: Duration = Duration::from_millis(50);
    let until = Instant::now() + d;
    loop {
        if shutdown.is_stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep(STEP.min(until - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A saver writes only when called (on_done), not when made.
    #[test]
    fn saver_writes_when_called() {
        let state = SourceState::new(Store::in_memory().unwrap());
        let save = state.saver("k".into(), "v1".into());
        assert_eq!(state.load("k").unwrap(), None);
        save();
        assert_eq!(state.load("k").unwrap().as_deref(), Some("v1"));
    }

    // A pause is cut short by the shutdown signal.
    #[test]
    fn pause_stops_early_on_shutdown() {
        let shutdown = Shutdown::new();
        assert!(pause(&shutdown, Duration::from_millis(1)));
        shutdown.stop();
        let started = Instant::now();
        assert!(!pause(&shutdown, Duration::from_secs(10)));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
