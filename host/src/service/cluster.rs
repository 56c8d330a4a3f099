//! The service as one replica of a cluster (`[cluster]` with `[server]`).
//!
//! - Ingestion is durable in JetStream instead of the local spool: the
//!   HTTP handlers publish (`http::accept`), and the `[[sources]]` deliver
//!   into a queue of their own that the **forward thread** publishes from,
//!   saving a poller's cursor (its `on_done`) only after JetStream
//!   acknowledged the batch. While JetStream is down the forward thread
//!   retries and the sources wait (backpressure); what they had not
//!   published at a stop is read again from their cursor at the next start.
//! - Judging comes from the shards this replica owns (all of them handed
//!   back while the watchdog says the pipeline is stuck)
//!   (`crate::cluster::consume`): their deliveries are queued for the
//!   pipeline thread as batches that name their partition-key kind (and
//!   whether they are a takeover's replay), and are acknowledged from the
//!   batch's `on_done`, after the audit sync.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use super::metrics::Metrics;
use super::watchdog::Health;
use crate::cluster::consume::{self, Closed, Delivery};
use crate::cluster::ingest::Publisher;
use crate::cluster::{Nats, layout};
use crate::normalize::Normalizer;
use crate::pipeline::Pipeline;
use crate::sources::queue::{Batch, QueueReceiver, QueueSender, Recv, Shutdown};

/// Source names of the batches read from the stream.
pub const JETSTREAM: &str = "jetstream";
const REBUILD: &str = "jetstream-rebuild";

/// A replica's cluster side, running.
pub struct ClusterSide {
    pub nats: Arc<Nats>,
    pub publisher: Publisher,
    runner: Option<consume::Runner>,
}

impl ClusterSide {
    /// `None` without `[cluster]`. Opens the stream, then starts the lease
    /// keeper, whose readers queue their shards' events on `queue`.
    pub fn start(
        pipeline: &Pipeline,
        queue: &QueueSender,
        health: &Arc<Health>,
        metrics: consume::ClusterMetrics,
    ) -> Result<Option<ClusterSide>> {
        let Some(claims) = pipeline.executor().claims() else {
            return Ok(None);
        };
        let nats = claims.nats().clone();
        nats.ensure_stream()
            .with_context(|| format!("[cluster] stream {:?}", nats.config().stream))?;
        let kinds = layout::kinds(
            pipeline
                .rules()
                .rules
                .iter()
                .map(|r| r.metadata().partition),
        );
        let publisher = Publisher::new(&nats, kinds.clone());
        let sink: consume::Sink = {
            let queue = queue.clone();
            Arc::new(move |d: Delivery| {
                let Delivery {
                    shard,
                    events,
                    replay,
                    done,
                } = d;
                let source = if replay { REBUILD } else { JETSTREAM };
                let mut batch = Batch::new(source, events).on_done(move || {
                    let _ = done.send(());
                });
                batch.partition = Some(shard.kind.key());
                batch.replay = replay;
                queue.send(batch).map_err(|_| Closed)
            })
        };
        // Stuck (the watchdog's view, as `/readyz` reports it): the shards
        // go to the other replicas until the pipeline moves again.
        let healthy: consume::Healthy = {
            let (health, queue) = (health.clone(), queue.clone());
            Arc::new(move || !health.watchdog.status(queue.depth()).stalled)
        };
        let runner = consume::start(&nats, &kinds, Normalizer::default(), sink, healthy, metrics)?;
        tracing::info!(
            replica = nats.replica(),
            stream = %nats.config().stream,
            kinds = ?kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            shards = nats.config().shards,
            "cluster: ingesting through JetStream, judging the shards this replica owns"
        );
        Ok(Some(ClusterSide {
            nats,
            publisher,
            runner: Some(runner),
        }))
    }

    /// Stops reading shards (each finishes and acknowledges its batch in
    /// hand, then its lease is handed back). Call while the pipeline still
    /// runs.
    pub fn stop_reading(&mut self, timeout: Duration) {
        if let Some(runner) = self.runner.take() {
            runner.stop(&self.nats, timeout);
        }
    }

    /// Starts the forward thread: publishes what the sources deliver on
    /// `from`.
    pub fn forward(
        &self,
        from: QueueReceiver,
        shutdown: Shutdown,
        metrics: Arc<Metrics>,
    ) -> Result<JoinHandle<()>> {
        let publisher = self.publisher.clone();
        let handle = self.nats.handle();
        std::thread::Builder::new()
            .name("vigil-forward".into())
            .spawn(move || forward(from, &publisher, &handle, &shutdown, &metrics))
            .context("cannot start the forward thread")
    }
}

fn forward(
    from: QueueReceiver,
    publisher: &Publisher,
    runtime: &tokio::runtime::Handle,
    shutdown: &Shutdown,
    metrics: &Metrics,
) {
    loop {
        let batch = match from.recv_timeout(Duration::from_millis(100)) {
            Recv::Batch(b) => b,
            Recv::Timeout => continue,
            Recv::Closed => return,
        };
        let mut wait = Duration::from_millis(200);
        loop {
            match runtime.block_on(publisher.publish(&batch.events)) {
                Ok(()) => {
                    metrics.received(&batch.source, batch.events.len());
                    if let Some(on_done) = batch.on_done {
                        on_done();
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(source = %batch.source, "cannot publish: {e}; retrying in {wait:?}");
                    if shutdown.is_stopping() {
                        // Not acknowledged to the source: read again from
                        // its cursor at the next start.
                        tracing::warn!(source = %batch.source, "stopping with a batch unpublished");
                        return;
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
