//! The bounded queue between the sources (HTTP handlers, the Okta poller,
//! file followers) and the single pipeline thread, and the stop signal the
//! blocking sources poll.
//!
//! A [`Batch`] is one source delivery: the pipeline runs every event of it,
//! syncs the audit log, then calls `on_done` (where a poller saves its
//! cursor), so a delivery is acknowledged only once it is durable. The
//! queue counts batches, not events; its depth is exported as a metric.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

/// Events from one source delivery, on their way to the pipeline thread.
pub struct Batch {
    /// Where the events came from: "http", "okta-hook", "okta-poll",
    /// "tail:<path>", "file:<path>".
    pub source: String,
    pub events: Vec<crate::model::Event>,
    /// Called on the pipeline thread after every event of the batch went
    /// through the rules and the audit log was synced (poller cursors are
    /// saved here).
    pub on_done: Option<Box<dyn FnOnce() + Send>>,
    /// The delivery's row in the spool (HTTP), deleted once its events are
    /// committed.
    pub spool_id: Option<i64>,
    /// In a cluster, the events of one shard: only the rules keyed by this
    /// kind judge them (`Pipeline::set_cluster_batch`).
    pub partition: Option<crate::model::PartitionKey>,
    /// In a cluster, a takeover's replay (nothing recorded or executed).
    pub replay: bool,
}

impl Batch {
    /// A batch queued now, with no completion callback.
    pub fn new(source: impl Into<String>, events: Vec<crate::model::Event>) -> Self {
        Batch {
            source: source.into(),
            events,
            on_done: None,
            spool_id: None,
            partition: None,
            replay: false,
        }
    }

    /// Sets the callback run once the batch is processed and durable.
    pub fn on_done(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_done = Some(Box::new(f));
        self
    }
}

/// Why a batch could not be queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// The queue holds `queue_capacity` batches already (HTTP answers 503).
    #[error("the event queue is full")]
    Full,
    /// The pipeline has stopped (shutdown, or a fatal audit error).
    #[error("the event queue is closed")]
    Closed,
}

/// The queue is closed: the pipeline thread has stopped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the event queue is closed")]
pub struct Closed;

/// The sending side of the bounded queue: `try_send` (HTTP: full → 503) or
/// `send` (blocking sources: wait).
#[derive(Clone)]
pub struct QueueSender {
    tx: SyncSender<Batch>,
    depth: Arc<AtomicUsize>,
}

impl QueueSender {
    /// Queues without waiting; `Full` when the queue is at capacity.
    pub fn try_send(&self, batch: Batch) -> Result<(), SendError> {
        // Counted before the send so the receiver never decrements below 0.
        self.depth.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(batch) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => SendError::Full,
                    TrySendError::Disconnected(_) => SendError::Closed,
                })
            }
        }
    }

    /// Queues, waiting while the queue is full (backpressure for sources
    /// that can wait: pollers, file readers).
    pub fn send(&self, batch: Batch) -> Result<(), Closed> {
        self.depth.fetch_add(1, Ordering::SeqCst);
        self.tx.send(batch).map_err(|_| {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            Closed
        })
    }

    /// Batches queued and not yet taken by the pipeline thread.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }
}

/// The receiving side, owned by the pipeline thread.
pub struct QueueReceiver {
    rx: Receiver<Batch>,
    depth: Arc<AtomicUsize>,
}

/// What [`QueueReceiver::recv_timeout`] saw.
pub enum Recv {
    Batch(Batch),
    /// Nothing arrived in time.
    Timeout,
    /// Every sender is gone and the queue is empty: nothing more will come.
    Closed,
}

impl QueueReceiver {
    pub fn recv_timeout(&self, timeout: Duration) -> Recv {
        match self.rx.recv_timeout(timeout) {
            Ok(b) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                Recv::Batch(b)
            }
            Err(RecvTimeoutError::Timeout) => Recv::Timeout,
            Err(RecvTimeoutError::Disconnected) => Recv::Closed,
        }
    }

    /// A batch if one is waiting, without blocking.
    pub fn try_recv(&self) -> Option<Batch> {
        let b = self.rx.try_recv().ok()?;
        self.depth.fetch_sub(1, Ordering::SeqCst);
        Some(b)
    }
}

/// A bounded queue of `capacity` batches (at least 1).
pub fn bounded(capacity: usize) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::sync_channel(capacity.max(1));
    let depth = Arc::new(AtomicUsize::new(0));
    (
        QueueSender {
            tx,
            depth: depth.clone(),
        },
        QueueReceiver { rx, depth },
    )
}

/// The stop signal: set once at shutdown; blocking sources poll
/// [`Shutdown::is_stopping`] between reads and return (dropping their
/// `QueueSender`) when it is set.
#[derive(Clone, Default, Debug)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every source to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_stopping(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A full queue refuses try_send without blocking and the depth follows.
    #[test]
    fn full_queue_refuses_try_send() {
        let (tx, rx) = bounded(1);
        tx.try_send(Batch::new("t", vec![])).unwrap();
        assert_eq!(tx.depth(), 1);
        assert_eq!(tx.try_send(Batch::new("t", vec![])), Err(SendError::Full));
        assert_eq!(tx.depth(), 1);
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(10)),
            Recv::Batch(_)
        ));
        assert_eq!(tx.depth(), 0);
    }

    // Once every sender is dropped, the receiver drains then reports Closed.
    #[test]
    fn closed_after_senders_drop() {
        let (tx, rx) = bounded(4);
        tx.send(Batch::new("t", vec![])).unwrap();
        drop(tx);
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(10)),
            Recv::Batch(_)
        ));
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(10)),
            Recv::Closed
        ));
    }
}
