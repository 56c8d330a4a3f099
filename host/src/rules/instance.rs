//! One loaded rule: its pre-instantiated template, its long-lived instance,
//! and what happens when a call goes wrong.
//!
//! A trap, a timeout or a limit hit ends only that call. It is reported as a
//! [`RuleFault`] naming the limit; the instance is rebuilt from the template
//! (the rule's state lives in the host and survives); after
//! `quarantine_after` consecutive faults the rule is quarantined and gets no
//! more events. Faults are counted for the rule as a whole: with several
//! shards, every instance adds to one count and stops at one flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use anyhow::{Context, Result};
use vigil_sdk::state_store::{StateLimits, StateStore};
use wasmtime::{Store, Trap, UpdateDeadline};

use super::{RuleSpec, grant_for};
use crate::config::Limits;
use crate::engine::VigilEngine;
use crate::host_api::{
    ActionRequest, CallCaps, CallClock, RuleContext, RuleLimiter, RuleState, WouldBlock,
    thread_cpu_time,
};
use crate::model::{Event, Finding, Metadata};
use crate::policy::{PolicyGate, RuleGrant};
use crate::store::StoredKey;
use crate::wit::{RuleBindings, RulePre};

/// Deadline for `metadata()` at load time, which may include a language
/// runtime's start-up (Python, JavaScript).
const LOAD_DEADLINE_MS: u64 = 5_000;
/// A call may run this many times its CPU deadline in wall-clock time
/// (waiting for a core on a busy machine) before it is stopped anyway…
const WALL_CAP_FACTOR: u32 = 10;
/// …and at least this long.
const MIN_WALL_CAP: std::time::Duration = std::time::Duration::from_millis(250);
/// Shortest slice over which a call past its deadline is watched.
const MIN_GRACE: std::time::Duration = std::time::Duration::from_millis(2);
/// Longest fault message audited (a rule's error text is cut to it).
const MAX_FAULT_MESSAGE: usize = 1024;

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The call ran past `deadline_ms`.
    Timeout,
    /// The guest's call stack overflowed (deep or infinite recursion).
    StackOverflow,
    /// Linear memory or table growth past the cap.
    MemoryLimit,
    /// A state call past a state limit.
    StateLimit,
    /// A state call on a key of another partition than the event's, by a
    /// rule that declares a partition key.
    Partition,
    /// Output past a per-call cap: `max_findings`, `max_action_requests`
    /// or `max_audit_bytes_per_call`.
    OutputLimit,
    /// A WASI call that would have waited (a sleep, a poll, a blocking
    /// read): the host never blocks inside a call.
    WouldBlock,
    /// Any other trap: panic, `unreachable`, bad memory access, …
    Trap,
    /// The rule returned an error value.
    RuleError,
}

impl FaultKind {
    /// Every kind (the metrics' `kind` label takes these names).
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Timeout,
        FaultKind::StackOverflow,
        FaultKind::MemoryLimit,
        FaultKind::StateLimit,
        FaultKind::Partition,
        FaultKind::OutputLimit,
        FaultKind::WouldBlock,
        FaultKind::Trap,
        FaultKind::RuleError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Timeout => "timeout",
            FaultKind::StackOverflow => "stack-overflow",
            FaultKind::MemoryLimit => "memory-limit",
            FaultKind::StateLimit => "state-limit",
            FaultKind::Partition => "partition",
            FaultKind::OutputLimit => "output-limit",
            FaultKind::WouldBlock => "would-block",
            FaultKind::Trap => "trap",
            FaultKind::RuleError => "rule-error",
        }
    }
}

#[derive(Clone, Debug)]
pub struct RuleFault {
    pub kind: FaultKind,
    pub message: String,
    /// Faults in a row, including this one.
    pub consecutive: u32,
}

/// What one `on-event` call produced.
#[derive(Debug, Default)]
pub struct CallOutcome {
    pub findings: Vec<Finding>,
    /// Requests the gate decided during the call, in order (also when the
    /// call faulted afterwards: the decisions were made and are audited).
    pub requests: Vec<ActionRequest>,
    pub fault: Option<RuleFault>,
    /// This call's fault put the rule in quarantine.
    pub quarantined_now: bool,
    /// The event was more than `late_after_secs` behind the newest event
    /// this rule had seen: judged all the same, and its records say so.
    pub late: bool,
}

pub struct RuleInstance {
    meta: Metadata,
    origin: String,
    /// sha256 of the component's bytes (a reload tells a changed rule by it).
    digest: Arc<str>,
    limits: Limits,
    ctx: Arc<RuleContext>,
    engine: Arc<VigilEngine>,
    pre: RulePre,
    store: Store<RuleState>,
    bindings: RuleBindings,
    /// Shared by every shard's instance of the rule.
    health: Arc<RuleHealth>,
}

/// Faults in a row and the quarantine, counted for the rule as a whole:
/// every shard's instance adds to one count and stops at one flag.
#[derive(Default)]
struct RuleHealth {
    consecutive_faults: AtomicU32,
    quarantined: AtomicBool,
}

impl RuleInstance {
    pub(super) fn new(
        engine: Arc<VigilEngine>,
        pre: RulePre,
        spec: RuleSpec,
        gate: Arc<PolicyGate>,
    ) -> Result<Self> {
        let limits = spec.limits.clone();
        // Until the metadata is read the rule has no id and no grant: a
        // request made from `metadata()` is refused by the gate.
        let bootstrap = Arc::new(RuleContext {
            rule_id: spec.source.origin.clone(),
            grant: RuleGrant {
                rule_id: spec.source.origin.clone(),
                mode: crate::config::Mode::AuditOnly,
                granted: Vec::new(),
                declared: Vec::new(),
                approval: Vec::new(),
                budget: Default::default(),
                args: crate::policy::ArgumentGrants::none(spec.source.origin.clone()),
            },
            gate: gate.clone(),
            config: spec.config.clone(),
            max_output_bytes: limits.max_output_bytes,
            max_raw_bytes: limits.max_raw_bytes,
            caps: call_caps(&limits),
            partition: crate::model::PartitionKey::Global,
        });
        let state = StateStore::new(state_limits(&limits));
        let (mut store, bindings) = instantiate(&engine, &pre, bootstrap, &limits, state)?;
        store.set_epoch_deadline(VigilEngine::deadline_ticks(LOAD_DEADLINE_MS));
        let meta = bindings
            .call_metadata(&mut store)
            .map_err(anyhow::Error::from)
            .context("metadata() failed")?;
        store.data_mut().flush_output();
        let ctx = Arc::new(RuleContext {
            rule_id: meta.id.clone(),
            grant: grant_for(&meta, &spec)?,
            gate,
            config: spec.config,
            max_output_bytes: limits.max_output_bytes,
            max_raw_bytes: limits.max_raw_bytes,
            caps: call_caps(&limits),
            partition: meta.partition,
        });
        store.data_mut().ctx = ctx.clone();
        use sha2::Digest as _;
        Ok(RuleInstance {
            meta,
            digest: hex::encode(sha2::Sha256::digest(&spec.source.bytes)).into(),
            origin: spec.source.origin,
            limits,
            ctx,
            engine,
            pre,
            store,
            bindings,
            health: Arc::default(),
        })
    }

    pub fn id(&self) -> &str {
        &self.meta.id
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// sha256 of the component, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The contract version the rule was built against.
    pub fn contract(&self) -> crate::wit::Contract {
        self.pre.contract()
    }

    pub fn grant(&self) -> &RuleGrant {
        &self.ctx.grant
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A second instance of this rule, for another shard: same template,
    /// grant, limits and mode, an empty state of its own.
    pub(super) fn replica(&self) -> Result<RuleInstance> {
        let state = StateStore::new(state_limits(&self.limits));
        let (store, bindings) = instantiate(
            &self.engine,
            &self.pre,
            self.ctx.clone(),
            &self.limits,
            state,
        )
        .with_context(|| format!("rule {} failed to start another shard", self.meta.id))?;
        Ok(RuleInstance {
            meta: self.meta.clone(),
            digest: self.digest.clone(),
            origin: self.origin.clone(),
            limits: self.limits.clone(),
            ctx: self.ctx.clone(),
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            store,
            bindings,
            health: self.health.clone(),
        })
    }

    /// Puts back state keys from the durable store and starts tracking
    /// changes to the state.
    pub fn restore_state(&mut self, keys: impl IntoIterator<Item = StoredKey>) {
        let state = &mut self.store.data_mut().state;
        for k in keys {
            state.restore_owned(k.key, k.state, k.partition);
        }
        state.track_changes();
    }

    /// The newest event time this instance's state has seen.
    pub fn high_water(&self) -> Option<i64> {
        self.store.data().state.high_water()
    }

    /// Whether the rule's state changed since the last
    /// [`RuleInstance::take_state_changes`].
    pub fn has_state_changes(&self) -> bool {
        self.store.data().state.has_changes()
    }

    /// The state keys changed since the last call, for the store.
    pub fn take_state_changes(&mut self) -> Vec<crate::store::KeyChange> {
        self.store.data_mut().state.take_changes()
    }

    /// The policy gate this rule's requests go through (shared by all
    /// rules loaded together).
    pub fn gate(&self) -> &Arc<PolicyGate> {
        &self.ctx.gate
    }

    /// Quarantines the rule (it gets no more events), as remembered from an
    /// earlier run.
    pub fn quarantine(&mut self) {
        self.health.quarantined.store(true, Ordering::SeqCst);
    }

    /// Switches the rule between audit-only and enforce (an operator's
    /// decision, from the admin API); takes effect from the next call.
    pub fn set_mode(&mut self, mode: crate::config::Mode) {
        let mut ctx = (*self.ctx).clone();
        ctx.grant.mode = mode;
        self.ctx = Arc::new(ctx);
        self.store.data_mut().ctx = self.ctx.clone();
    }

    /// Linear memory the current instance holds, in bytes.
    pub fn linear_memory_in_use(&self) -> usize {
        self.store.data().limiter.memory_in_use
    }

    pub fn is_quarantined(&self) -> bool {
        self.health.quarantined.load(Ordering::SeqCst)
    }

    /// Runs `on-event` for one event under the rule's deadline and limits.
    pub fn on_event(&mut self, event: &Arc<Event>) -> CallOutcome {
        let partition = self.meta.partition.partition_of(event);
        self.call(event, partition, None)
    }

    /// [`RuleInstance::on_event`] on one of several instances of the rule
    /// (a shard), for an event of `partition` (the caller chose the shard
    /// by it): `newest` is the newest event time the *rule* has been given
    /// so far, this one included, so lateness and the state's reclaiming
    /// horizon are what one instance seeing every event would have.
    pub fn on_event_in_shard(
        &mut self,
        event: &Arc<Event>,
        partition: u64,
        newest: i64,
    ) -> CallOutcome {
        self.call(event, partition, Some(newest))
    }

    fn call(&mut self, event: &Arc<Event>, partition: u64, newest: Option<i64>) -> CallOutcome {
        if self.is_quarantined() {
            return CallOutcome::default();
        }
        let late;
        {
            let data = self.store.data_mut();
            data.state.set_partition(partition);
            if let Some(newest) = newest {
                data.state.raise_high_water(newest);
            }
            data.state.set_now(event.time);
            late = data.state.behind_ms() > self.limits.late_after_secs.saturating_mul(1000);
            data.event = Some(event.clone());
            data.call_seq = data.call_seq.wrapping_add(1);
            data.limiter.hit = None;
            data.state_fault = None;
            data.partition_fault = None;
            data.call_output.reset();
        }
        let deadline = std::time::Duration::from_millis(self.limits.deadline_ms);
        self.store.data_mut().call_clock = Some(CallClock {
            wall_start: std::time::Instant::now(),
            deadline,
            wall_cap: (deadline * WALL_CAP_FACTOR).max(MIN_WALL_CAP),
            last_sample: None,
        });
        self.store
            .set_epoch_deadline(VigilEngine::deadline_ticks(self.limits.deadline_ms));
        let result = self.bindings.call_on_event(&mut self.store, event);

        let data = self.store.data_mut();
        data.call_clock = None;
        data.event = None;
        data.flush_output();
        let mut outcome = CallOutcome {
            requests: std::mem::take(&mut data.requests),
            late,
            ..CallOutcome::default()
        };
        let fault = match result {
            Ok(Ok(mut findings)) => {
                let caps = self.ctx.caps;
                let over =
                    data.call_output
                        .admit_findings(&caps, &self.ctx.rule_id, event, &mut findings);
                outcome.findings = findings;
                over.map(|message| (FaultKind::OutputLimit, message))
            }
            Ok(Err(message)) => Some((
                FaultKind::RuleError,
                crate::host_api::text::bounded_message(&message, MAX_FAULT_MESSAGE),
            )),
            Err(err) => {
                let fault = self.classify(&err);
                self.rebuild();
                Some(fault)
            }
        };
        match fault {
            None => self.health.consecutive_faults.store(0, Ordering::SeqCst),
            Some((kind, message)) => {
                let consecutive = self
                    .health
                    .consecutive_faults
                    .fetch_add(1, Ordering::SeqCst)
                    .saturating_add(1);
                // Only the instance that flips the flag reports it, so a
                // quarantine is audited once whatever the shards.
                if consecutive >= self.limits.quarantine_after
                    && !self.health.quarantined.swap(true, Ordering::SeqCst)
                {
                    outcome.quarantined_now = true;
                }
                outcome.fault = Some(RuleFault {
                    kind,
                    message,
                    consecutive,
                });
            }
        }
        outcome
    }

    /// Names what went wrong in a failed call.
    fn classify(&self, err: &wasmtime::Error) -> (FaultKind, String) {
        let (kind, message) = self.classify_unbounded(err);
        // Trap messages can quote the guest (a panic message, a WASI
        // error): bounded and escaped like a rule's own error text.
        let message = crate::host_api::text::bounded_message(&message, MAX_FAULT_MESSAGE);
        (kind, message)
    }

    fn classify_unbounded(&self, err: &wasmtime::Error) -> (FaultKind, String) {
        let data = self.store.data();
        if let Some(hit) = &data.limiter.hit {
            return (FaultKind::MemoryLimit, hit.clone());
        }
        if let Some(message) = &data.partition_fault {
            return (FaultKind::Partition, message.clone());
        }
        if let Some(e) = &data.state_fault {
            return (FaultKind::StateLimit, e.to_string());
        }
        if let Some(over) = &data.call_output.over {
            return (FaultKind::OutputLimit, over.clone());
        }
        if let Some(wait) = err.downcast_ref::<WouldBlock>() {
            return (FaultKind::WouldBlock, wait.to_string());
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => (
                FaultKind::Timeout,
                format!(
                    "deadline exceeded: the call ran past deadline_ms = {} and kept using the CPU",
                    self.limits.deadline_ms
                ),
            ),
            Some(Trap::StackOverflow) => (
                FaultKind::StackOverflow,
                "call stack exhausted (deep or infinite recursion)".into(),
            ),
            Some(trap) => (FaultKind::Trap, format!("wasm trap: {trap}")),
            None => (FaultKind::Trap, format!("{err:#}")),
        }
    }

    /// Replaces the instance after a trap (its memory may be inconsistent),
    /// keeping the rule's state. If even that fails the rule is quarantined.
    fn rebuild(&mut self) {
        let state = std::mem::take(&mut self.store.data_mut().state);
        match instantiate(
            &self.engine,
            &self.pre,
            self.ctx.clone(),
            &self.limits,
            state,
        ) {
            Ok((store, bindings)) => {
                self.store = store;
                self.bindings = bindings;
            }
            Err(e) => {
                tracing::error!(rule = %self.meta.id, "cannot rebuild the rule instance, quarantining it: {e:#}");
                self.quarantine();
            }
        }
    }
}

fn call_caps(limits: &Limits) -> CallCaps {
    CallCaps {
        max_action_requests: limits.max_action_requests,
        max_findings: limits.max_findings,
        max_audit_bytes: limits.max_audit_bytes_per_call,
    }
}

fn state_limits(limits: &Limits) -> StateLimits {
    StateLimits {
        max_keys: limits.state_max_keys,
        max_entries_per_key: limits.state_max_entries_per_key,
        max_bytes: limits.state_max_bytes,
        late_after_ms: limits.late_after_secs.saturating_mul(1000),
        ..StateLimits::default()
    }
}

fn instantiate(
    engine: &VigilEngine,
    pre: &RulePre,
    ctx: Arc<RuleContext>,
    limits: &Limits,
    state: StateStore,
) -> Result<(Store<RuleState>, RuleBindings)> {
    let limiter = RuleLimiter::new(limits.memory_mib, limits.table_elements, limits.instances);
    let mut store = Store::new(engine.engine(), RuleState::new(ctx, limiter, state));
    store.limiter(|s| &mut s.limiter);
    // A busy machine must not fault healthy rules: when the wall-clock
    // deadline passes, the call is stopped only once it is seen *using*
    // the CPU. The callback samples this thread's CPU time and grants a
    // short grace slice; at the end of the slice, a call that ran for at
    // least half of it is stopped (a genuine runaway), while one that was
    // waiting for a core goes on — up to a wall-clock cap. Outside
    // `on-event` (instantiation, metadata) the plain deadline applies.
    store.epoch_deadline_callback(|mut ctx| {
        let Some(clock) = ctx.data_mut().call_clock.as_mut() else {
            return Ok(UpdateDeadline::Interrupt);
        };
        let now = std::time::Instant::now();
        if now.duration_since(clock.wall_start) >= clock.wall_cap {
            return Ok(UpdateDeadline::Interrupt);
        }
        let cpu = thread_cpu_time();
        let grace = (clock.deadline / 4).max(MIN_GRACE);
        if let Some((last_cpu, last_wall)) = clock.last_sample {
            let ran = cpu.saturating_sub(last_cpu);
            if ran * 2 >= now.duration_since(last_wall) {
                return Ok(UpdateDeadline::Interrupt);
            }
        }
        clock.last_sample = Some((cpu, now));
        Ok(UpdateDeadline::Continue(VigilEngine::deadline_ticks(
            grace.as_millis() as u64,
        )))
    });
    store.set_epoch_deadline(VigilEngine::deadline_ticks(LOAD_DEADLINE_MS));
    let bindings = pre
        .instantiate(&mut store)
        .map_err(anyhow::Error::from)
        .context("instantiation failed")?;
    Ok((store, bindings))
}
