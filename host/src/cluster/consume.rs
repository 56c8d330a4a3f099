//! Judging the shards this replica owns: the lease keeper and one reader
//! per owned shard, on the cluster's runtime.
//!
//! A reader reads its shard through the shard's durable consumer (shared
//! by whichever replica holds the lease, so the acknowledged position
//! outlives any replica), one batch at a time, in stream order:
//!
//! 1. take up to [`BATCH`] messages; a message delivered more than
//!    `max_deliveries` times goes to the dead-letter subject (with why,
//!    where from and how often) and is terminated: replicas died on it, or
//!    none could read it; a message that does not decode is handed back
//!    (`nak`) to be delivered again after `retry_delay_secs` (a newer
//!    replica in a rolling upgrade may read it);
//! 2. hand the events to the pipeline (through the [`Sink`]) and wait; a
//!    long batch reports progress (`+WPI`) every third of `ack_wait_secs`
//!    so the server does not redeliver it meanwhile;
//! 3. acknowledge each message only when the pipeline says the batch's
//!    audit records are synced. If the pipeline stops instead, nothing is
//!    acknowledged: the server redelivers after `ack_wait_secs`.
//!
//! **Takeover.** Before reading a shard it did not hold, a reader replays
//! the shard's events from `rebuild_window_secs` ago up to the consumer's
//! acknowledged floor, as [`Delivery::replay`]: the rules judge them with
//! every action answered dry-run and nothing recorded, which rebuilds their
//! state (a push-bombing count that straddles the takeover is complete);
//! events this replica judged before (its judged ids) are skipped, so its
//! state never counts one twice. What the dead replica took and did not
//! acknowledge is redelivered and judged normally; the claims keep its
//! actions from being executed twice and its findings from being recorded
//! twice (but for the window described in `claims`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{oneshot, watch};

use super::Nats;
use super::ingest::decode;
use super::layout::{self, Kind, ShardKey};
use super::leases::{self, Leases};
use crate::config::ClusterConfig;
use crate::model::Event;
use crate::normalize::Normalizer;

/// Messages taken from a shard at a time.
pub const BATCH: usize = 256;
/// How long a fetch waits for messages (bounds how soon a stop is seen).
const FETCH_WAIT: Duration = Duration::from_millis(500);

/// Events of one shard for the pipeline.
pub struct Delivery {
    pub shard: ShardKey,
    pub events: Vec<Event>,
    /// Replayed to rebuild state after a takeover: judged with every action
    /// answered dry-run and nothing recorded.
    pub replay: bool,
    /// Answered once the events are judged and their audit records synced.
    pub done: oneshot::Sender<()>,
}

/// The pipeline has stopped and takes nothing more.
#[derive(Debug)]
pub struct Closed;

/// Hands a delivery to the pipeline (the service's queue), waiting while
/// its queue is full. Blocking: called on the runtime's blocking pool.
pub type Sink = Arc<dyn Fn(Delivery) -> Result<(), Closed> + Send + Sync>;

/// Whether the pipeline makes progress (the service's watchdog): a
/// replica whose pipeline is stuck hands its shards back and leaves until
/// it moves again.
pub type Healthy = Arc<dyn Fn() -> bool + Send + Sync>;

/// What a shard reader is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Run,
    /// Finish the batch in hand (acknowledge it), then end: the shard is
    /// handed back in good order (fair share, shutdown).
    Finish,
    /// End now, acknowledging nothing and reporting no more progress: the
    /// lease is lost or the pipeline stuck, and the batch in hand must be
    /// redelivered to the shard's next owner.
    Abandon,
}

/// What the cluster side counts (registered by the service's metrics).
#[derive(Clone, Default)]
pub struct ClusterMetrics {
    pub shards_owned: Gauge,
    pub takeovers: Counter,
    pub lease_losses: Counter,
    pub rebuilt_events: Counter,
    pub dead_letters: Counter,
    pub unreadable: Counter,
    /// From JetStream storing an event to its batch being judged and
    /// synced on the owning replica (the service's
    /// `vigil_ingest_to_decision_seconds`).
    pub ingest_to_decision: Option<prometheus_client::metrics::histogram::Histogram>,
}

/// The running keeper; [`Runner::stop`] hands every shard back.
pub struct Runner {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

struct Ctx {
    js: jetstream::Context,
    config: ClusterConfig,
    replica: String,
    normalizer: Normalizer,
    sink: Sink,
    healthy: Healthy,
    metrics: ClusterMetrics,
}

/// One owned shard.
struct Owned {
    revision: u64,
    stop: watch::Sender<Stop>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the lease keeper for the shards of `kinds`.
pub fn start(
    nats: &Nats,
    kinds: &[Kind],
    normalizer: Normalizer,
    sink: Sink,
    healthy: Healthy,
    metrics: ClusterMetrics,
) -> Result<Runner> {
    let config = nats.config().clone();
    let ctx = Arc::new(Ctx {
        js: nats.jetstream().clone(),
        replica: nats.replica().to_owned(),
        config,
        normalizer,
        sink,
        healthy,
        metrics,
    });
    let leases = nats
        .block_on(Leases::open(
            &ctx.js,
            &ctx.config.leases_bucket,
            Duration::from_secs(ctx.config.lease_ttl_secs),
            &ctx.replica,
        ))
        .context("[cluster] leases_bucket")?;
    let all = layout::all_shards(kinds, ctx.config.shards);
    let (stop, stopped) = watch::channel(false);
    let task = nats.handle().spawn(keep(ctx, leases, all, stopped));
    Ok(Runner { stop, task })
}

impl Runner {
    /// Stops reading (each reader finishes the batch in hand), hands the
    /// leases back and leaves; waits at most `timeout`.
    pub fn stop(self, nats: &Nats, timeout: Duration) {
        let _ = self.stop.send(true);
        let task = self.task;
        if nats
            .block_on(async { tokio::time::timeout(timeout, task).await })
            .is_err()
        {
            tracing::warn!("the shard readers did not stop in time; their leases expire instead");
        }
    }
}

/// The lease keeper: heartbeat, renewals, fair share.
async fn keep(
    ctx: Arc<Ctx>,
    leases: Leases,
    all: Vec<ShardKey>,
    mut stopped: watch::Receiver<bool>,
) {
    let ttl = Duration::from_secs(ctx.config.lease_ttl_secs);
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let order = leases::preference(&ctx.replica, &all);
    let mut owned: BTreeMap<ShardKey, Owned> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => break,
        }
        if let Err(e) = keep_once(&ctx, &leases, &order, &mut owned).await {
            tracing::warn!("cluster: {e:#}");
        }
        ctx.metrics.shards_owned.set(owned.len() as i64);
    }
    // A clean stop: every reader finishes its batch, then the shards are
    // free at once (no waiting for the leases to expire).
    let owned = std::mem::take(&mut owned);
    for o in owned.values() {
        let _ = o.stop.send(Stop::Finish);
    }
    for (shard, o) in owned {
        let _ = o.task.await;
        if let Err(e) = leases.release(shard, o.revision).await {
            tracing::warn!("cluster: {e:#}");
        }
    }
    ctx.metrics.shards_owned.set(0);
    if let Err(e) = leases.leave().await {
        tracing::warn!("cluster: {e:#}");
    }
}

async fn keep_once(
    ctx: &Arc<Ctx>,
    leases: &Leases,
    order: &[ShardKey],
    owned: &mut BTreeMap<ShardKey, Owned>,
) -> Result<()> {
    if !(ctx.healthy)() {
        // Stuck (the watchdog): every shard to the others now, the batches
        // in hand redelivered to them; back when the pipeline moves again.
        if !owned.is_empty() {
            tracing::error!(
                shards = owned.len(),
                "cluster: the pipeline is stalled; handing every shard back"
            );
            for (shard, o) in std::mem::take(owned) {
                let _ = o.stop.send(Stop::Abandon);
                leases.release(shard, o.revision).await?;
            }
        }
        return leases.leave().await;
    }
    leases.heartbeat().await?;
    // Renew first: a lease lost (this replica stalled past the TTL and
    // another took the shard) stops its reader now.
    let mut lost = Vec::new();
    for (&shard, o) in owned.iter_mut() {
        if o.task.is_finished() {
            // The reader ended (the pipeline stopped, or an error it
            // logged): give the shard up so another replica reads it.
            lost.push(shard);
            continue;
        }
        match leases.renew(shard, o.revision).await? {
            Some(revision) => o.revision = revision,
            None => {
                tracing::warn!(
                    shard = %shard.label(),
                    "cluster: lost the lease of shard {} (it expired); stopping its reader",
                    shard.label()
                );
                ctx.metrics.lease_losses.inc();
                lost.push(shard);
            }
        }
    }
    for shard in lost {
        if let Some(o) = owned.remove(&shard) {
            let _ = o.stop.send(Stop::Abandon);
            if o.task.is_finished() {
                let _ = leases.release(shard, o.revision).await;
            }
        }
    }
    let (members, held) = leases.view().await?;
    let share = leases::fair_share(order.len(), members);
    if owned.len() < share {
        for &shard in order {
            if owned.len() >= share {
                break;
            }
            if owned.contains_key(&shard) || held.contains(&shard.lease_key()) {
                continue;
            }
            if let Some(revision) = leases.acquire(shard).await? {
                let (stop, stopped) = watch::channel(Stop::Run);
                let task = tokio::spawn(read_shard(ctx.clone(), shard, stopped));
                ctx.metrics.takeovers.inc();
                owned.insert(
                    shard,
                    Owned {
                        revision,
                        stop,
                        task,
                    },
                );
            }
        }
    } else if owned.len() > share {
        // Hand back the last of this replica's order first (its first
        // shards are the ones it is least likely to race for).
        let extra: Vec<ShardKey> = order
            .iter()
            .rev()
            .filter(|s| owned.contains_key(s))
            .take(owned.len() - share)
            .copied()
            .collect();
        // All told at once, then one wait for them together: the batch in
        // hand is finished and acknowledged before its shard is handed
        // back. Waiting for each in turn let the other leases lapse
        // (found by the cluster bench). One not done in time is handed
        // back at a later tick.
        for shard in &extra {
            let _ = owned[shard].stop.send(Stop::Finish);
        }
        let wait = Duration::from_secs(ctx.config.lease_ttl_secs) / 6;
        let deadline = tokio::time::Instant::now() + wait;
        for shard in extra {
            let o = owned.get_mut(&shard).expect("listed above");
            if tokio::time::timeout_at(deadline, &mut o.task).await.is_ok() {
                let o = owned.remove(&shard).expect("listed above");
                leases.release(shard, o.revision).await?;
                tracing::info!(shard = %shard.label(), members, "cluster: handed shard back for a fair share");
            }
        }
    }
    Ok(())
}

/// Reads one owned shard until told to stop (see the module docs).
async fn read_shard(ctx: Arc<Ctx>, shard: ShardKey, stopped: watch::Receiver<Stop>) {
    if let Err(e) = read_shard_inner(&ctx, shard, stopped).await {
        tracing::error!(shard = %shard.label(), "cluster: shard reader stopped: {e:#}");
    }
}

async fn read_shard_inner(
    ctx: &Arc<Ctx>,
    shard: ShardKey,
    mut stopped: watch::Receiver<Stop>,
) -> Result<()> {
    let started = Instant::now();
    let stream = ctx
        .js
        .get_stream(&ctx.config.stream)
        .await
        .map_err(|e| anyhow!("cannot open the stream {:?}: {e}", ctx.config.stream))?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &shard.consumer(),
            consumer::pull::Config {
                durable_name: Some(shard.consumer()),
                description: Some(format!("Vigil shard {}", shard.label())),
                filter_subject: shard.subject(),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(ctx.config.ack_wait_secs),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow!("cannot open the consumer {}: {e}", shard.consumer()))?;
    let floor = consumer
        .get_info()
        .await
        .map_err(|e| anyhow!("cannot read the consumer {}: {e}", shard.consumer()))?
        .ack_floor
        .stream_sequence;
    let rebuilt = if floor > 0 && ctx.config.rebuild_window_secs > 0 {
        rebuild(ctx, &stream, shard, floor, &mut stopped).await?
    } else {
        0
    };
    ctx.metrics.rebuilt_events.inc_by(rebuilt as u64);
    tracing::info!(
        shard = %shard.label(),
        acked_floor = floor,
        rebuilt,
        took_ms = started.elapsed().as_millis() as u64,
        "cluster: reading shard {}",
        shard.label()
    );
    let max_deliveries = i64::from(ctx.config.max_deliveries);
    let retry = Duration::from_secs(ctx.config.retry_delay_secs);
    loop {
        if *stopped.borrow() != Stop::Run {
            return Ok(());
        }
        let mut batch = fetch(&consumer)
            .await
            .map_err(|e| anyhow!("cannot fetch from {}: {e}", shard.consumer()));
        let mut held = Vec::new();
        let mut events = Vec::new();
        if let Ok(batch) = &mut batch {
            while let Some(message) = batch.next().await {
                // An error ends the fetch (async-nats terminates the batch
                // after it): what came before is in hand, nothing after
                // it was delivered.
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(shard = %shard.label(), "cluster: fetch ended early: {e}");
                        break;
                    }
                };
                let delivered = match message.info() {
                    Ok(info) => info.delivered,
                    // Said aloud: such a message escapes the count that
                    // dead-letters poison.
                    Err(e) => {
                        tracing::warn!(shard = %shard.label(), "cluster: cannot read a message's delivery count: {e}");
                        1
                    }
                };
                if delivered > max_deliveries {
                    dead_letter(ctx, shard, &message, delivered).await;
                    continue;
                }
                match decode(&ctx.normalizer, &message.payload) {
                    Ok(event) => {
                        events.push(event);
                        held.push(message);
                    }
                    Err(why) => {
                        ctx.metrics.unreadable.inc();
                        tracing::warn!(
                            shard = %shard.label(),
                            delivered,
                            "cluster: a message does not decode ({why}); handed back for {retry:?}"
                        );
                        let _ = message.ack_with(AckKind::Nak(Some(retry))).await;
                    }
                }
            }
        } else if let Err(e) = batch {
            // NATS unreachable: wait and try again (the leases expire if
            // it lasts, and the shard is someone else's then).
            tracing::warn!(shard = %shard.label(), "cluster: {e:#}");
            tokio::time::sleep(FETCH_WAIT).await;
            continue;
        }
        if held.is_empty() {
            continue;
        }
        if !deliver(ctx, shard, events, false, &held, &mut stopped).await? {
            // The pipeline stopped, or the shard was abandoned: nothing
            // acknowledged, all redelivered.
            return Ok(());
        }
        let now = chrono::Utc::now();
        for message in &held {
            if let (Some(h), Ok(info)) = (&ctx.metrics.ingest_to_decision, message.info()) {
                let waited = (now - info.published).to_std().unwrap_or_default();
                h.observe(waited.as_secs_f64());
            }
            if let Err(e) = message.ack().await {
                tracing::warn!(shard = %shard.label(), "cluster: cannot acknowledge: {e}");
            }
        }
    }
}

/// Hands events to the pipeline and waits until they are durable
/// (reporting progress on `held`). `false`: the pipeline stopped, or the
/// shard was abandoned meanwhile.
async fn deliver(
    ctx: &Ctx,
    shard: ShardKey,
    events: Vec<Event>,
    replay: bool,
    held: &[jetstream::Message],
    stopped: &mut watch::Receiver<Stop>,
) -> Result<bool> {
    let (done, mut judged) = oneshot::channel();
    let delivery = Delivery {
        shard,
        events,
        replay,
        done,
    };
    let sink = ctx.sink.clone();
    match tokio::task::spawn_blocking(move || sink(delivery)).await {
        Ok(Ok(())) => {}
        Ok(Err(Closed)) => return Ok(false),
        Err(e) => bail!("handing events to the pipeline failed: {e}"),
    }
    let mut progress = tokio::time::interval(Duration::from_secs(ctx.config.ack_wait_secs) / 3);
    progress.tick().await;
    loop {
        tokio::select! {
            r = &mut judged => return Ok(r.is_ok()),
            changed = stopped.changed() => {
                // Abandoned, or the keeper gone: nothing acknowledged.
                if changed.is_err() || *stopped.borrow() == Stop::Abandon {
                    return Ok(false);
                }
            }
            _ = progress.tick() => {
                for message in held {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        }
    }
}

/// Replays the shard's recent events up to the acknowledged `floor`.
async fn rebuild(
    ctx: &Ctx,
    stream: &stream::Stream,
    shard: ShardKey,
    floor: u64,
    stopped: &mut watch::Receiver<Stop>,
) -> Result<usize> {
    let since = chrono::Utc::now()
        - chrono::Duration::seconds(ctx.config.rebuild_window_secs.min(i64::MAX as u64) as i64);
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            description: Some(format!("Vigil rebuild of shard {}", shard.label())),
            filter_subject: shard.subject(),
            deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time: since },
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("cannot replay shard {}: {e}", shard.label()))?;
    let name = consumer.cached_info().name.clone();
    let mut replayed = 0;
    let result = async {
        loop {
            let mut batch = fetch(&consumer)
                .await
                .map_err(|e| anyhow!("cannot replay shard {}: {e}", shard.label()))?;
            let mut events = Vec::new();
            let (mut any, mut reached) = (false, false);
            while let Some(message) = batch.next().await {
                let message =
                    message.map_err(|e| anyhow!("cannot replay shard {}: {e}", shard.label()))?;
                any = true;
                let seq = message
                    .info()
                    .map(|i| i.stream_sequence)
                    .unwrap_or(u64::MAX);
                if seq > floor {
                    reached = true;
                    break;
                }
                // An unreadable message was handed back or dead-lettered
                // when it was read; nothing to rebuild from it.
                if let Ok(event) = decode(&ctx.normalizer, &message.payload) {
                    events.push(event);
                }
            }
            if !events.is_empty() {
                replayed += events.len();
                if !deliver(ctx, shard, events, true, &[], stopped).await? {
                    bail!(
                        "the pipeline stopped during the rebuild of shard {}",
                        shard.label()
                    );
                }
            }
            if reached || !any {
                return Ok(replayed);
            }
        }
    }
    .await;
    let _ = stream.delete_consumer(&name).await;
    result
}

/// The next batch: up to [`BATCH`] messages, waiting at most [`FETCH_WAIT`].
async fn fetch(
    consumer: &consumer::PullConsumer,
) -> Result<consumer::pull::Batch, consumer::pull::BatchError> {
    consumer
        .fetch()
        .max_messages(BATCH)
        .expires(FETCH_WAIT)
        .messages()
        .await
}

/// Moves a message delivered too often to the dead-letter subject.
async fn dead_letter(ctx: &Ctx, shard: ShardKey, message: &jetstream::Message, delivered: i64) {
    let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
    let why = format!(
        "delivered {delivered} times (max_deliveries = {}): replicas failed on it or could not read it",
        ctx.config.max_deliveries
    );
    let mut headers = HeaderMap::new();
    headers.insert("Vigil-Reason", why.as_str());
    headers.insert("Vigil-Shard", shard.label().as_str());
    headers.insert("Vigil-Stream-Seq", seq.to_string().as_str());
    headers.insert("Vigil-Replica", ctx.replica.as_str());
    let published = async {
        ctx.js
            .publish_with_headers(shard.dead_subject(), headers, message.payload.clone())
            .await?
            .await
    }
    .await;
    match published {
        Ok(_) => {
            ctx.metrics.dead_letters.inc();
            tracing::error!(
                shard = %shard.label(),
                stream_seq = seq,
                "cluster: poison event moved to {}: {why}",
                shard.dead_subject()
            );
            let _ = message.ack_with(AckKind::Term).await;
        }
        // Not terminated: delivered again, and moved then.
        Err(e) => tracing::warn!(shard = %shard.label(), "cluster: cannot dead-letter: {e}"),
    }
}
