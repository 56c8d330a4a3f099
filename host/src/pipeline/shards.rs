//! Parallel shards on one machine: a batch of events, each rule call run
//! on the shard that owns the event's partition under that rule's key,
//! the shards on their own threads, then everything the calls produced
//! recorded and committed in event order, exactly as one shard would.
//!
//! A batch runs in three steps:
//!
//! 1. **Plan** (pipeline thread, in event order): route each event, apply
//!    the outcome/class filters, skip quarantined rules and repeats (the
//!    judged ids, and the same id earlier in the batch), and give each
//!    call to its shard ([`RuleSet::shard_of`]). A rule's calls on one
//!    partition all land on one shard, in event order: the per-key order a
//!    single instance would see.
//! 2. **Run**: each shard calls its instances in plan order, shard 0 on
//!    the pipeline thread, the others on a pool of long-lived threads
//!    (`vigil-shard-N`). A call is told
//!    the newest event time its rule has been given, so lateness and state
//!    horizons match one instance.
//! 3. **Merge** (pipeline thread, in plan order): each call's findings,
//!    decisions and faults are recorded as `Pipeline::process_event` does,
//!    then the whole batch is committed at once — its rule state, judged
//!    ids, records and accepted actions in one transaction — and only then
//!    are its accepted actions executed (after the log sync, as ever) and
//!    the housekeeping of an event done. The audit log stays one chain in
//!    event order.
//!
//! What differs from one shard, by design:
//! - the gate decides during a call, so budgets and breakers shared by
//!   several partitions see requests in the order the shards make them,
//!   which across shards is not event order;
//! - users are observed (for the budgets' population) a batch at a time;
//! - a rule's faults are counted across its shards; once quarantined it
//!   stops on every shard before its next call, but a call already under
//!   way on another shard finishes and is recorded (at most one per shard);
//! - the watchdog is told when calls on shard 0 start and end (global
//!   rules run there); the other shards' calls are bounded by the same
//!   deadlines and counted in the metrics when merged.
//!
//! Nothing of a batch is committed before the merge, so a crash loses
//! only uncommitted work, which the service's spool replays.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{Pipeline, judged};
use crate::clock::now_ms;
use crate::model::Event;
use crate::rules::{CallOutcome, ShardInstances};

/// Events buffered before a batch runs: enough calls per shard to pay for
/// waking the threads, few enough that a batch's records follow its
/// events closely.
pub(super) const BATCH_EVENTS: usize = 256;

/// One planned rule call.
struct Call {
    /// Index into the batch.
    event: usize,
    /// Index of the rule in the rule set.
    rule: usize,
    /// The event's partition under the rule's key.
    partition: u64,
    /// The newest event time the rule has been given, this event included.
    newest: i64,
}

/// What one call produced: `None` when it was not made (its instance was
/// quarantined earlier in the batch on that shard).
type Ran = Option<(CallOutcome, Duration)>;

impl Pipeline {
    /// Runs the events waiting in `pending` (see the module docs).
    pub(super) fn run_shards(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let events: Vec<Arc<Event>> = self.pending.drain(..).map(Arc::new).collect();
        let now = now_ms();
        let (calls, per_shard) = self.plan(&events, now);
        let observer = self.observer.as_deref();
        let watch = |rule: Option<&str>| match (observer, rule) {
            (Some(o), Some(rule)) => o.rule_call_start(rule),
            (Some(o), None) => o.rule_call_end(),
            (None, _) => {}
        };
        if self.pool.is_none() {
            self.pool = Some(shard_pool(self.rules.shards())?);
        }
        let pool = self.pool.as_ref().expect("started above");
        let mut ran = run_calls(
            pool,
            self.rules.shards_mut(),
            &per_shard,
            &calls,
            &events,
            &watch,
        );
        // Step 3. The instances' state already holds every call of the
        // batch, so nothing is committed before the last record: a commit
        // between two events would store state changes of events whose
        // judgement is not yet recorded (after a crash they would be
        // judged again against state that already counts them).
        self.merging = true;
        let merged = self.merge(&events, &calls, &mut ran, now);
        self.merging = false;
        merged?;
        // One commit for a batch that recorded something (as one shard
        // commits after every call that does), then its accepted actions
        // run (after the log sync, as always); a quiet batch waits for the
        // periodic commit like quiet events do. Then the housekeeping of an
        // event.
        if !self.outbox.is_empty() || !self.jobs.is_empty() {
            self.commit()?;
        }
        self.after_event(now)
    }

    /// Records every call's outcome in plan order.
    fn merge(
        &mut self,
        events: &[Arc<Event>],
        calls: &[Call],
        ran: &mut [Ran],
        now: i64,
    ) -> Result<()> {
        for (call, ran) in calls.iter().zip(ran.iter_mut()) {
            let Some((outcome, elapsed)) = ran.take() else {
                continue;
            };
            let event = &events[call.event];
            let rule_id = self.rules.rules[call.rule].id().to_owned();
            if let Some(o) = &self.observer {
                let fault = outcome.fault.as_ref().map(|f| f.kind.name());
                o.rule_call(&rule_id, elapsed, fault);
            }
            self.judged.insert(&rule_id, judged::digest(&event.id), now);
            let outcome = self.replayed(outcome);
            self.record(&rule_id, event, outcome)?;
        }
        Ok(())
    }

    /// Step 1: the calls of the batch, in event order, and each shard's
    /// share of them (indexes into the calls).
    fn plan(&mut self, events: &[Arc<Event>], now: i64) -> (Vec<Call>, Vec<Vec<usize>>) {
        let mut calls = Vec::new();
        let mut per_shard: Vec<Vec<usize>> = vec![Vec::new(); self.rules.shards()];
        let mut in_batch = HashSet::new();
        self.newest.resize(self.rules.rules.len(), i64::MIN);
        for (k, event) in events.iter().enumerate() {
            self.stats.events += 1;
            self.events_since_persist += 1;
            self.observe_users(event, now);
            let route = self.rules.route(event);
            if route.is_empty() {
                continue;
            }
            let id = judged::digest(&event.id);
            for &i in route.iter() {
                if !self.rules.wants(i, event)
                    || !self.in_partition(i)
                    || self.rules.rules[i].is_quarantined()
                {
                    continue;
                }
                let rule = self.rules.rules[i].id();
                if self.judged.contains(rule, id) || !in_batch.insert((i, id)) {
                    self.stats.duplicates += 1;
                    if let Some(o) = &self.observer {
                        o.duplicate(rule);
                    }
                    continue;
                }
                self.newest[i] = self.newest[i].max(event.time);
                let (partition, shard) = self.rules.shard_of(i, event);
                per_shard[shard].push(calls.len());
                calls.push(Call {
                    event: k,
                    rule: i,
                    partition,
                    newest: self.newest[i],
                });
            }
        }
        (calls, per_shard)
    }
}

/// The threads of shards 1.., started once per pipeline and kept: a
/// thread started per batch cost more (its stack's page faults and
/// unmapping, wasmtime's per-thread set-up) than the calls it took over.
fn shard_pool(shards: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(shards.saturating_sub(1).max(1))
        .thread_name(|i| format!("vigil-shard-{}", i + 1))
        .build()
        .with_context(|| format!("cannot start the threads of {shards} shards"))
}

/// Step 2: every shard's calls, shard 0 on this thread (telling `watch`
/// when each of its calls starts and ends, for the watchdog), the others on
/// the pool; the outcomes by call index. A panic on a pool thread (a bug in
/// the host) comes back here, as it would have on one thread.
fn run_calls(
    pool: &rayon::ThreadPool,
    shards: Vec<ShardInstances<'_>>,
    per_shard: &[Vec<usize>],
    calls: &[Call],
    events: &[Arc<Event>],
    watch: &dyn Fn(Option<&str>),
) -> Vec<Ran> {
    let mut ran: Vec<Ran> = Vec::with_capacity(calls.len());
    ran.resize_with(calls.len(), || None);
    let mut shards = shards.into_iter().zip(per_shard);
    let (mut first, first_calls) = shards.next().expect("at least one shard");
    let mut others: Vec<_> = shards
        .filter(|(_, mine)| !mine.is_empty())
        .map(|(instances, mine)| (instances, mine, Vec::new()))
        .collect();
    let mut results = Vec::new();
    pool.in_place_scope(|scope| {
        for (instances, mine, out) in others.iter_mut() {
            scope.spawn(move |_| *out = run_shard(instances, mine, calls, events, &|_| {}));
        }
        results = run_shard(&mut first, first_calls, calls, events, watch);
    });
    for (at, outcome) in results
        .into_iter()
        .chain(others.into_iter().flat_map(|(_, _, out)| out))
    {
        ran[at] = outcome;
    }
    ran
}

/// One shard's calls, in order.
fn run_shard(
    instances: &mut ShardInstances<'_>,
    mine: &[usize],
    calls: &[Call],
    events: &[Arc<Event>],
    watch: &dyn Fn(Option<&str>),
) -> Vec<(usize, Ran)> {
    mine.iter()
        .map(|&at| {
            let call = &calls[at];
            let instance = instances.get(call.rule);
            if instance.is_quarantined() {
                return (at, None);
            }
            watch(Some(instance.id()));
            let started = Instant::now();
            let outcome =
                instance.on_event_in_shard(&events[call.event], call.partition, call.newest);
            let elapsed = started.elapsed();
            watch(None);
            (at, Some((outcome, elapsed)))
        })
        .collect()
}
