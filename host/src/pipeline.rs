//! The run loop: line → normalize → route → rule → (gate, inside the call)
//! → commit (store, then audit log) → executor (connectors) → commit.
//! With more than one shard the rule calls of a batch of events run in
//! parallel and everything after them stays in event order on this thread
//! ([`shards`]).
//!
//! Ordering guarantees:
//! - every finding, decision and fault is appended to the audit log in the
//!   order it happened;
//! - the commit point of an event is one store transaction
//!   ([`Pipeline::commit`]): the rule state it changed, the ids of the
//!   events judged, the audit records it produced (the *outbox*), its
//!   accepted actions (`pending_actions`) and the actions whose result was
//!   recorded. Only then are the records appended to the audit log. Events
//!   that produce nothing are committed in batches (every 5 s, at a sync,
//!   at the end), so after a crash state and judged ids always agree (an
//!   event replayed from the service's spool is judged again only if its
//!   judgement was lost with its state), and no counter is behind the
//!   audit log;
//! - the log is fsync'd before any accepted action is executed (never an
//!   IdP call whose `accepted` record is not durable), and the executor's
//!   result is committed and audited after (in the service, when the
//!   executor thread hands it back);
//! - at start, outbox records missing from the log are appended, then
//!   every accepted action without a result is reconciled (`recover`);
//! - a rule never judges the same event id twice (`judged`): a repeat is
//!   skipped and counted as a duplicate;
//! - an undo that comes due is performed between events and audited with
//!   the id of the action it reverses;
//! - a bad line is counted and reported with its number, never fatal; an
//!   audit log or store failure is fatal (Vigil does not act without a
//!   record), and the executor's queued jobs are then dropped unrun.

mod baseline_watch;
mod guard;
mod judged;
mod modes;
mod recover;
mod reload;
mod shards;

pub use reload::RulesChange;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use crate::audit::{AuditLog, Entry};
use crate::clock::now_ms;
use crate::executor::{ActionExecutor, ExecDone, ExecJob, ExecutionResult, UndoResult};
use crate::host_api::ActionRequest;
use crate::model::{Action, Event, Finding, PartitionKey};
use crate::normalize::Normalizer;
use crate::policy::GateDecision;
use crate::policy::targets::{Resolution, TargetDenial};
use crate::rules::{CallOutcome, RuleSet};
use crate::sources::{Line, LineReader};

/// Unsynced audit records after which the log is synced anyway, so a crash
/// loses at most this many non-action records.
const SYNC_EVERY: usize = 512;

/// Counts for the end-of-run summary.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    pub lines: u64,
    pub events: u64,
    pub rejected: u64,
    /// Rejections by reason (`invalid-json`, `unknown-format`, …).
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    /// Fields dropped from accepted events (wrong JSON type, unusable value).
    pub dropped_fields: u64,
    pub findings: u64,
    /// Action records by decision (`dry-run`, `accepted`, `denied`,
    /// `executed`, `failed`, `duplicate`).
    pub actions: BTreeMap<&'static str, u64>,
    /// Undos by result (`executed`, `retrying`, `failed`).
    pub undos: BTreeMap<&'static str, u64>,
    pub faults: u64,
    pub quarantined: Vec<String>,
    /// Rule calls skipped because the rule had already judged the event
    /// (a replay or redelivery through persisted state).
    pub duplicates: u64,
    /// Accepted actions found at start without a result record, by the
    /// result reconciliation gave them (`executed`, `failed`, `unknown`,
    /// `abandoned`).
    pub reconciled: BTreeMap<&'static str, u64>,
}

// --- Observer hook (service metrics) -------------------------------------

/// Told about every rule call and every action decision or result, for the
/// service's metrics (`service::metrics`). Called on the pipeline thread;
/// must be cheap and must not block.
pub trait PipelineObserver: Send {
    /// An `on-event` call of `rule` starts (the service's watchdog names
    /// the rule if the call does not come back).
    fn rule_call_start(&self, _rule: &str) {}
    /// The call announced by `rule_call_start` came back (on shards, where
    /// its [`PipelineObserver::rule_call`] report comes later, with the
    /// batch's merge).
    fn rule_call_end(&self) {}
    /// One `on-event` call: how long it took and the fault kind, if any.
    fn rule_call(&self, rule: &str, elapsed: std::time::Duration, fault: Option<&str>);
    /// A gate decision (`connector` None) or an execution result
    /// (`connector` Some) for an action of `kind`.
    fn action(&self, kind: &str, decision: &str, connector: Option<&str>);
    /// A rule's circuit breaker tripped (`true`) or was reset (`false`).
    fn breaker(&self, _rule: &str, _tripped: bool) {}
    /// `rule` was not called: it had already judged the event.
    fn duplicate(&self, _rule: &str) {}
}

// --------------------------------------------------------------------------

pub struct Pipeline {
    observer: Option<Box<dyn PipelineObserver>>,
    rules: RuleSet,
    audit: AuditLog,
    executor: ActionExecutor,
    normalizer: Normalizer,
    pub stats: RunStats,
    unsynced: usize,
    batch: Vec<Event>,
    /// Events since rule state was last written to the store.
    events_since_persist: u64,
    /// The action whose execution results an operator waits for (an
    /// approval), and those seen so far.
    watched: Option<(String, Vec<&'static str>)>,
    last_persist: std::time::Instant,
    /// Records appended since the last commit, in order; they reach the
    /// audit log through the store's outbox (see [`Pipeline::commit`]).
    outbox: Vec<Entry>,
    /// Accepted actions waiting for the commit that makes them durable.
    jobs: Vec<ExecJob>,
    /// Actions whose result record is in `outbox`.
    resolved: Vec<String>,
    /// The event ids each rule has judged.
    judged: judged::Judged,
    /// Events waiting for the next batch on the shards (only with more
    /// than one shard).
    pending: Vec<Event>,
    /// Per rule: the newest event time it has been given (for shards).
    newest: Vec<i64>,
    /// A shard batch's records are being merged: nothing is committed
    /// until the last (see `shards`).
    merging: bool,
    /// The threads of shards 1.. (started with the first batch).
    pool: Option<rayon::ThreadPool>,
    /// Newest outbox row committed and not yet cleared (0: none).
    outbox_last: i64,
    /// Compares the MFA configuration with its approved baseline after
    /// policy changes and on a schedule.
    baseline_watch: baseline_watch::BaselineWatch,
    /// A commit without an fsync of its own (synchronous = NORMAL) was made
    /// since the last one with: the store gets a barrier before the audit
    /// log is next fsync'd.
    store_unsynced: bool,
    /// In a cluster, the partition-key kind of the shard being judged: only
    /// the rules keyed by it are called (see [`Pipeline::set_cluster_batch`]).
    partition_filter: Option<PartitionKey>,
    /// A cluster takeover's replay: rules rebuild their state, nothing is
    /// recorded or executed.
    replaying: bool,
    /// In a cluster, the claim keys of findings recorded since the last
    /// audit sync (claimed after it).
    findings_to_claim: Vec<String>,
    /// Posts parked actions to chat (`[approvals] notify`).
    approval_notifier: Option<crate::chat::request::ApprovalNotifier>,
    /// Parked actions to post once their approval is committed.
    approval_requests: Vec<crate::chat::ApprovalRequest>,
}

impl Pipeline {
    /// Wires the steps together and restores what the durable store
    /// remembers: rule state, budget usage, tripped breakers, quarantines,
    /// and approvals that expired while Vigil was stopped.
    pub fn new(rules: RuleSet, audit: AuditLog, mut executor: ActionExecutor) -> Result<Self> {
        // User targets are checked again, once resolved, against the same
        // registry the gate uses (group refreshes reach both).
        if let Some(gate) = rules.gate() {
            executor.set_protected(gate.protected().clone());
        }
        let mut pipeline = Pipeline {
            observer: None,
            rules,
            audit,
            executor,
            normalizer: Normalizer::default(),
            stats: RunStats::default(),
            unsynced: 0,
            batch: Vec::new(),
            events_since_persist: 0,
            watched: None,
            last_persist: std::time::Instant::now(),
            outbox: Vec::new(),
            jobs: Vec::new(),
            resolved: Vec::new(),
            judged: judged::Judged::default(),
            pending: Vec::new(),
            newest: Vec::new(),
            merging: false,
            pool: None,
            outbox_last: 0,
            store_unsynced: false,
            partition_filter: None,
            replaying: false,
            findings_to_claim: Vec::new(),
            approval_notifier: None,
            approval_requests: Vec::new(),
            baseline_watch: baseline_watch::BaselineWatch::new(
                crate::config::BaselineConfig::default().check_secs,
                now_ms(),
            ),
        };
        pipeline.restore()?;
        if let Some(reported) = pipeline
            .executor
            .store()
            .meta(baseline_watch::REPORTED_KEY)?
        {
            pipeline.baseline_watch.restore_reported(&reported);
        }
        // Before anything new is recorded: the records a crash left in the
        // outbox, then a result for every accepted action without one.
        pipeline.recover_outbox()?;
        pipeline.reconcile()?;
        // Modes an operator set before the stop, where the configuration
        // still gives what it gave then.
        pipeline.apply_mode_overrides()?;
        Ok(pipeline)
    }

    /// How often the MFA configuration is compared with its approved
    /// baseline besides after policy changes (`[baseline] check_secs`).
    pub fn set_baseline_check_secs(&mut self, secs: u64) {
        self.baseline_watch.set_interval(secs, now_ms());
    }

    /// Posts every action parked from now on to the `[approvals] notify`
    /// webhooks, with buttons or signed links (see `crate::chat`).
    /// Approvals parked before a stop whose request was never posted are
    /// posted now.
    pub fn set_approval_notifier(
        &mut self,
        mut notifier: crate::chat::request::ApprovalNotifier,
    ) -> Result<()> {
        for p in self.executor.store().approvals_unposted(now_ms())? {
            tracing::info!(action_id = %p.action_id, "posting the request for a decision the last run did not post");
            notifier.submit(guard::approval_request(&p));
        }
        self.approval_notifier = Some(notifier);
        Ok(())
    }

    /// Installs the observer told about rule calls and actions.
    pub fn set_observer(&mut self, observer: Box<dyn PipelineObserver>) {
        // Breakers restored from the store are tripped from the start.
        if let Some(gate) = self.rules.gate() {
            for rule in gate.budgets().tripped_rules() {
                observer.breaker(&rule, true);
            }
        }
        self.observer = Some(observer);
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// What the next events are, in a cluster (`crate::cluster::consume`):
    /// events of a shard of `partition`'s kind, judged only by the rules
    /// keyed by it (`None`: every rule, as on one machine), and whether they
    /// are a takeover's replay (rules called with every request answered
    /// dry-run; nothing recorded but faults, nothing executed; judged ids
    /// kept). The host's own per-event checks (MFA baseline, new apps) run
    /// with the `global` kind only, never in a replay. Events already
    /// waiting for shards are judged first under the previous setting.
    pub fn set_cluster_batch(
        &mut self,
        partition: Option<PartitionKey>,
        replay: bool,
    ) -> Result<()> {
        if partition != self.partition_filter || replay != self.replaying {
            self.run_shards()?;
            self.partition_filter = partition;
            self.replaying = replay;
        }
        // Always: a reload may have brought another gate.
        if let Some(gate) = self.rules.gate() {
            gate.set_replaying(replay);
        }
        Ok(())
    }

    /// Rule `i` judges the current events (see [`Pipeline::set_cluster_batch`]).
    fn in_partition(&self, i: usize) -> bool {
        self.partition_filter
            .is_none_or(|kind| self.rules.rules[i].metadata().partition == kind)
    }

    /// In a cluster, another replica already recorded this finding (it
    /// judged the event and died before acknowledging it, or both replicas
    /// received it): its name. Otherwise the finding is to be recorded, and
    /// claimed once its record is durable ([`Pipeline::claim_findings`]).
    /// Unreachable claims record it anyway: a finding twice is better than
    /// none (see `crate::cluster::claims`).
    fn finding_recorded_elsewhere(
        &mut self,
        rule: &str,
        event: &Event,
        n: usize,
    ) -> Option<String> {
        let claims = self.executor.claims()?;
        let key = format!("finding:{rule}:{}:{n}", event.id);
        match claims.owner(&key) {
            Ok(Some(owner)) if owner != claims.replica() => return Some(owner),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(rule, event_id = %event.id, "cannot read a finding's claim; recording it: {e:#}");
            }
        }
        self.findings_to_claim.push(key);
        None
    }

    /// Claims the findings recorded since the last sync, now durable.
    fn claim_findings(&mut self) {
        let Some(claims) = self.executor.claims().cloned() else {
            return;
        };
        for key in self.findings_to_claim.drain(..) {
            match claims.claim(&key) {
                Ok(crate::cluster::Claim::Won) => {}
                Ok(crate::cluster::Claim::Lost { owner }) => tracing::warn!(
                    "replica {owner} recorded the same finding at the same time ({key})"
                ),
                Err(e) => tracing::warn!("cannot claim a recorded finding ({key}): {e:#}"),
            }
        }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn rules_mut(&mut self) -> &mut RuleSet {
        &mut self.rules
    }

    /// Appends an audit record the pipeline did not produce itself (an
    /// operator's change through the admin API) and syncs it.
    pub fn audit_external(&mut self, entry: Entry) -> Result<()> {
        self.append(entry)?;
        self.sync()
    }

    pub fn executor_mut(&mut self) -> &mut ActionExecutor {
        &mut self.executor
    }

    pub fn executor(&self) -> &ActionExecutor {
        &self.executor
    }

    /// Reads a whole stream. Events waiting for their shards are judged
    /// before a read that may wait for more input (a pipe fed one event at
    /// a time is judged as it comes).
    pub fn run_stream(&mut self, reader: &mut LineReader) -> Result<()> {
        self.run_stream_with(reader, &mut |_, _, _| {})
    }

    /// [`Pipeline::run_stream`], telling `progress` the stream's name, the
    /// line just read and the counts so far after every line (a progress
    /// display decides itself how often to draw).
    pub fn run_stream_with(
        &mut self,
        reader: &mut LineReader,
        progress: &mut dyn FnMut(&str, u64, &RunStats),
    ) -> Result<()> {
        let name = reader.name.clone();
        loop {
            if !reader.has_buffered_input() {
                self.run_shards()?;
            }
            let Some((line_no, line)) = reader.next_line()? else {
                return Ok(());
            };
            self.process_line(&name, line_no, line)?;
            progress(&name, line_no, &self.stats);
        }
    }

    /// Handles one input line. Errors are audit failures only.
    pub fn process_line(&mut self, source: &str, line_no: u64, line: Line) -> Result<()> {
        self.stats.lines += 1;
        let text = match line {
            Line::Text(t) => t,
            Line::TooLong { len, limit } => {
                self.reject(
                    source,
                    line_no,
                    "too-long",
                    &format!("line of {len} bytes exceeds max_line_bytes = {limit}"),
                );
                return Ok(());
            }
            Line::NotUtf8 => {
                self.reject(source, line_no, "not-utf8", "line is not valid UTF-8");
                return Ok(());
            }
        };
        if text.trim().is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        // Per element: a bad event of a multi-record line costs only itself.
        let mut report = crate::normalize::LineReport::default();
        match self
            .normalizer
            .normalize_owned_report(text, &mut batch, &mut report)
        {
            Ok(_) => {
                for e in &report.rejected {
                    self.reject(source, line_no, e.reason(), &e.to_string());
                }
                for d in &report.dropped {
                    self.stats.dropped_fields += 1;
                    tracing::warn!(source, line = line_no, field = %d.path, "dropped a field: {}", d.message);
                }
                for event in batch.drain(..) {
                    self.process_event(event)?;
                }
            }
            Err(e) => self.reject(source, line_no, e.reason(), &e.to_string()),
        }
        self.batch = batch;
        Ok(())
    }

    fn reject(&mut self, source: &str, line_no: u64, reason: &'static str, message: &str) {
        self.stats.rejected += 1;
        *self.stats.rejected_by_reason.entry(reason).or_default() += 1;
        tracing::warn!(source, line = line_no, reason, "rejected: {message}");
    }

    /// Runs one normalized event through the rules subscribed to it. With
    /// more than one shard the event waits in a batch ([`shards`]) that
    /// runs when it is full or at the next [`Pipeline::sync`],
    /// [`Pipeline::tick`] or [`Pipeline::finish`]; nothing of it is
    /// committed before then.
    pub fn process_event(&mut self, event: Event) -> Result<()> {
        let host_checks = !self.replaying
            && self
                .partition_filter
                .is_none_or(|kind| kind == PartitionKey::Global);
        // Zones are in the baseline too (`zone.update` is not a policy
        // change to the rules).
        if host_checks
            && (event.class == crate::model::EventClass::PolicyChange
                || (event.source == "okta" && event.kind.starts_with("zone.")))
        {
            self.note_policy_change(&event);
        }
        if host_checks && event.is_app_event() {
            self.check_apps(&event)?;
        }
        if self.rules.shards() > 1 {
            self.pending.push(event);
            if self.pending.len() >= shards::BATCH_EVENTS {
                self.run_shards()?;
            }
            return Ok(());
        }
        self.stats.events += 1;
        self.events_since_persist += 1;
        let now = now_ms();
        self.observe_users(&event, now);
        let route = self.rules.route(&event);
        if route.is_empty() {
            return self.maybe_persist();
        }
        let event = Arc::new(event);
        let judged_id = judged::digest(&event.id);
        for &i in route.iter() {
            if !self.rules.wants(i, &event) || !self.in_partition(i) {
                continue;
            }
            let rule = &mut self.rules.rules[i];
            if rule.is_quarantined() {
                continue;
            }
            if self.judged.contains(rule.id(), judged_id) {
                // Already judged (a replay through persisted state): its
                // state changes and records are in already.
                self.stats.duplicates += 1;
                if let Some(o) = &self.observer {
                    o.duplicate(rule.id());
                }
                continue;
            }
            if let Some(o) = &self.observer {
                o.rule_call_start(rule.id());
            }
            let started = std::time::Instant::now();
            let outcome = rule.on_event(&event);
            let rule_id = rule.id().to_owned();
            if let Some(o) = &self.observer {
                let fault = outcome.fault.as_ref().map(|f| f.kind.name());
                o.rule_call(&rule_id, started.elapsed(), fault);
            }
            // Committed with the state this call changed (same transaction).
            // Aged by when it was judged, not by event time: a replay of
            // an old stream is still a repeat.
            self.judged.insert(&rule_id, judged_id, now);
            let outcome = self.replayed(outcome);
            self.record(&rule_id, &event, outcome)?;
        }
        self.after_event(now)
    }

    /// In a takeover's replay only a call's faults are recorded (they
    /// happened here); its findings and dry-run requests were recorded by
    /// the replica that judged the event first.
    fn replayed(&self, mut outcome: CallOutcome) -> CallOutcome {
        if self.replaying {
            outcome.findings.clear();
            outcome.requests.clear();
        }
        outcome
    }

    /// What follows an event's calls: due undos, protected-group refresh,
    /// finished executions, a sync every [`SYNC_EVERY`] records, state
    /// persistence.
    fn after_event(&mut self, now: i64) -> Result<()> {
        if self.executor.undo_due(now) {
            self.run_due_undos()?;
        }
        self.executor.refresh_groups(now)?;
        self.check_baseline(now)?;
        self.drain_executions(false)?;
        self.audit_approval_requests(false)?;
        if self.unsynced >= SYNC_EVERY {
            self.sync_batch()?;
        }
        self.maybe_persist()
    }

    /// Housekeeping between events (the service calls it when idle): due
    /// undos, protected-group refresh, state persistence, approval expiry.
    pub fn tick(&mut self) -> Result<()> {
        self.run_shards()?;
        self.drain_executions(false)?;
        self.audit_approval_requests(false)?;
        let now = now_ms();
        if self.executor.undo_due(now) {
            self.run_due_undos()?;
        }
        self.executor.refresh_groups(now)?;
        self.check_baseline(now)?;
        if self.last_persist.elapsed() >= std::time::Duration::from_secs(1) {
            self.expire_approvals()?;
            self.sync()?;
        }
        Ok(())
    }

    /// Marks the provider whose directory issued a policy-change event for
    /// a baseline check.
    fn note_policy_change(&mut self, event: &Event) {
        let provider =
            crate::baseline::provider_for_source(&mut self.executor.dispatcher(), &event.source);
        if let Some(provider) = provider {
            self.baseline_watch.note_change(&provider, &event.id);
        }
    }

    /// Judges the sign-in of the applications an application event names
    /// ([`Event::is_app_event`], [`Event::app_ids`]), before the rules act
    /// on the event (so the finding describes what the event found, not
    /// what a remediation left), and audits a finding for each one
    /// reachable without MFA.
    fn check_apps(&mut self, event: &Event) -> Result<()> {
        let provider =
            crate::baseline::provider_for_source(&mut self.executor.dispatcher(), &event.source);
        let Some(provider) = provider else {
            return Ok(());
        };
        // The events before this one are judged first (on shards they may
        // wait in a batch), so the log keeps arrival order.
        self.run_shards()?;
        let mut wrote = false;
        let now = now_ms();
        for app in event.app_ids() {
            if !self.baseline_watch.app_due(&app, now) {
                continue;
            }
            let (sign_in, gap) = match self.executor.app_mfa_gap(&provider, &app) {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!("checking application {app} through {provider}: {e:#}");
                    continue;
                }
            };
            if let Some(entry) =
                self.baseline_watch
                    .app_finding(&provider, &sign_in, gap.as_deref(), &event.id)
            {
                self.stats.findings += 1;
                self.append(entry)?;
                wrote = true;
            }
        }
        if wrote {
            // Durable before it counts as reported (see `save_reported`).
            self.sync()?;
        }
        self.save_reported()
    }

    /// Keeps what the baseline watch reported, when it changed, so a
    /// restart does not report it again. Called after the findings are
    /// committed: a crash in between reports them once more, never loses
    /// one.
    fn save_reported(&mut self) -> Result<()> {
        match self.baseline_watch.unsaved() {
            Some(json) => {
                self.executor
                    .store()
                    .set_meta(baseline_watch::REPORTED_KEY, &json, now_ms())
            }
            None => Ok(()),
        }
    }

    /// Compares the providers that are due with their approved baselines
    /// and audits a finding for each new weakening (`baseline_watch`).
    fn check_baseline(&mut self, now: i64) -> Result<()> {
        if !self.baseline_watch.may_be_due(now) {
            return Ok(());
        }
        let providers = crate::baseline::providers(&mut self.executor.dispatcher());
        let due = self.baseline_watch.take_due(&providers, now);
        if due.is_empty() {
            return Ok(());
        }
        let mut wrote = false;
        for (provider, trigger) in due {
            let drift = match self.executor.baseline_drift(&provider) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(
                        "baseline check of {provider}: {e:#}; tried again at the next policy \
                         change or scheduled check"
                    );
                    continue;
                }
            };
            for entry in self.baseline_watch.findings(&drift, trigger.as_deref()) {
                self.stats.findings += 1;
                self.append(entry)?;
                wrote = true;
            }
        }
        if wrote {
            // Durable before it counts as reported (see `save_reported`).
            self.sync()?;
        }
        self.save_reported()
    }

    /// An operator undoes a temporary action before it expires.
    pub fn undo_now(&mut self, id: i64, by: &str) -> Result<UndoResult> {
        let r = self.executor.undo_now(id)?;
        *self.stats.undos.entry(r.decision).or_default() += 1;
        self.append(undo_entry(&r).field("by", by).field("early", true))?;
        self.sync()?;
        Ok(r)
    }

    /// Performs the undos that are due and audits each one.
    pub fn run_due_undos(&mut self) -> Result<()> {
        let results = self.executor.run_due_undos(now_ms())?;
        for r in results {
            *self.stats.undos.entry(r.decision).or_default() += 1;
            self.append(undo_entry(&r))?;
        }
        self.sync()
    }

    /// Audits what one call produced, then executes accepted actions.
    fn record(&mut self, rule: &str, event: &Event, outcome: CallOutcome) -> Result<()> {
        let produced =
            !outcome.findings.is_empty() || !outcome.requests.is_empty() || outcome.fault.is_some();
        // An event far behind the rule's newest one is judged all the same;
        // its records say it was late.
        let late = |entry: Entry| {
            if outcome.late {
                entry.field("late", true)
            } else {
                entry
            }
        };
        for (n, finding) in outcome.findings.iter().enumerate() {
            if let Some(owner) = self.finding_recorded_elsewhere(rule, event, n) {
                tracing::info!(rule, event_id = %event.id, "finding already recorded by replica {owner}");
                continue;
            }
            self.append(late(finding_entry(rule, event, finding)))?;
            self.stats.findings += 1;
        }
        let mut accepted = Vec::new();
        let mut protected_hits = Vec::new();
        for request in outcome.requests {
            self.append(late(action_entry(rule, event, &request)))?;
            *self
                .stats
                .actions
                .entry(request.decision.name())
                .or_default() += 1;
            if let Some(o) = &self.observer {
                o.action(request.action.kind().name(), request.decision.name(), None);
            }
            match &request.decision {
                GateDecision::Accepted => accepted.push(request),
                GateDecision::PendingApproval => self.park(rule, event, &request)?,
                GateDecision::Denied {
                    reason: crate::model::DenialReason::ProtectedTarget,
                    message,
                } => protected_hits.push((request.action.clone(), message.clone())),
                _ => {}
            }
        }
        self.audit_breaker_changes(event)?;
        for (action, message) in protected_hits {
            self.escalate_protected(rule, event, &action, &message, None)?;
        }
        if let Some(fault) = &outcome.fault {
            self.stats.faults += 1;
            tracing::warn!(rule, event_id = %event.id, fault = fault.kind.name(), "rule fault: {}", fault.message);
            self.append(
                Entry::new("rule-fault")
                    .rule(rule)
                    .event(&event.id)
                    .field("fault", fault.kind.name())
                    .field("message", fault.message.as_str())
                    .field("consecutive", fault.consecutive),
            )?;
        }
        if outcome.quarantined_now {
            self.stats.quarantined.push(rule.to_owned());
            tracing::error!(
                rule,
                "rule quarantined after repeated faults; it gets no more events"
            );
            let reason = "consecutive faults reached quarantine_after";
            self.executor
                .store()
                .set_quarantined(rule, now_ms(), reason)?;
            self.append(
                Entry::new("rule-quarantined")
                    .rule(rule)
                    .event(&event.id)
                    .field("reason", reason),
            )?;
        }
        if produced {
            // One commit: what the rule remembered, that it judged the
            // event, and what it concluded (then executed, if accepted).
            self.execute_accepted(rule, event, accepted)?;
        }
        Ok(())
    }

    /// Commits the accepted requests with everything recorded so far, then
    /// executes them (see [`Pipeline::commit`]) and audits each result.
    fn execute_accepted(
        &mut self,
        rule: &str,
        event: &Event,
        accepted: Vec<ActionRequest>,
    ) -> Result<()> {
        for request in accepted {
            self.jobs.push(ExecJob {
                action_id: request.action_id,
                rule: rule.to_owned(),
                event_id: event.id.clone(),
                event_source: event.source.clone(),
                action: request.action,
                origin_host: request.origin_host,
            });
        }
        if self.merging {
            // A shard batch commits once, after its last event's records:
            // rule state then already holds every call of the batch.
            return Ok(());
        }
        self.commit()
    }

    /// The commit point: one store transaction holds the rule state and
    /// budget changes, the judged event ids, the audit records produced
    /// (the outbox), the accepted actions (`pending_actions`), the actions
    /// whose result is now recorded. Then the
    /// records are appended to the audit log. Accepted actions are executed
    /// only after the log is fsync'd (and the outbox cleared), so no action
    /// runs without its `accepted` record on disk; their results come back
    /// as new records and are committed the same way.
    pub fn commit(&mut self) -> Result<()> {
        let mut executed = false;
        loop {
            let jobs = self.commit_once()?;
            if jobs.is_empty() {
                // Their approvals are committed: a decision coming back
                // finds them. The deliveries are audited when they arrive.
                self.submit_approval_requests();
                if executed {
                    // What the executions recorded is durable before the
                    // caller goes on (and visible to whoever reads the log).
                    self.sync_log()?;
                }
                return Ok(());
            }
            // The decisions (and the budget they spent) are durable in the
            // store; the `accepted` records must be durable in the log
            // before anything they announce runs.
            self.sync_log()?;
            for job in jobs {
                // Without a worker the results come back at once; with one
                // (the service) they are audited when they arrive.
                if let Some(done) = self.executor.submit(job)? {
                    self.audit_execution(done)?;
                }
            }
            executed = true;
        }
    }

    /// Writes one [`crate::store::Commit`] of everything pending and
    /// appends its records to the audit log; returns the accepted actions
    /// it made durable, for the caller to execute.
    fn commit_once(&mut self) -> Result<Vec<ExecJob>> {
        let mut c = crate::store::Commit {
            rule_state: self.rules.take_state_changes(),
            resolved: std::mem::take(&mut self.resolved),
            ..Default::default()
        };
        if let Some(gate) = self.rules.gate() {
            (c.budget_usage, c.budget_refunds) = gate.budgets().take_usage();
        }
        (c.judged, c.forgotten) = self.judged.take_changes();
        let records = std::mem::take(&mut self.outbox);
        c.outbox = records.iter().map(recover::entry_to_json).collect();
        let jobs = std::mem::take(&mut self.jobs);
        c.pending = jobs
            .iter()
            .map(|j| (j.action_id.clone(), j.to_json()))
            .collect();
        let last = self.executor.store().commit(&c)?;
        if last > 0 {
            self.outbox_last = last;
        }
        if !c.is_empty() {
            // A commit with pending actions is fsync'd, and so is all
            // before it.
            self.store_unsynced = c.pending.is_empty();
        }
        self.events_since_persist = 0;
        self.last_persist = std::time::Instant::now();
        for entry in records {
            self.audit
                .append(entry)
                .context("cannot write the audit log")?;
            self.unsynced += 1;
        }
        Ok(jobs)
    }

    /// Audits the executions the worker thread finished (all of them, with
    /// `wait`).
    pub fn drain_executions(&mut self, wait: bool) -> Result<()> {
        if !self.executor.is_async() {
            return Ok(());
        }
        let finished = self.executor.completed(wait)?;
        if finished.is_empty() {
            return Ok(());
        }
        for done in finished {
            self.audit_execution(done)?;
        }
        self.sync()
    }

    fn audit_execution(&mut self, done: ExecDone) -> Result<()> {
        let job = done.job;
        let results = done.results.map_err(|e| {
            anyhow::anyhow!("cannot record the execution of {}: {e}", job.action_id)
        })?;
        for result in results {
            *self.stats.actions.entry(result.decision).or_default() += 1;
            if matches!(result.decision, "duplicate" | "denied")
                && !job.origin_host
                && let Some(gate) = self.rules.gate()
            {
                // Nothing was done: the budget it took is given back.
                gate.budgets().refund(&job.rule, job.action.kind());
            }
            if let Some(o) = &self.observer {
                o.action(
                    job.action.kind().name(),
                    result.decision,
                    Some(&result.connector),
                );
            }
            self.append(result_entry(&job, &result))?;
            self.resolved.push(job.action_id.clone());
            if let Some((id, seen)) = &mut self.watched
                && *id == job.action_id
            {
                seen.push(result.decision);
            }
            if result.denial == Some(TargetDenial::Protected) {
                // Found protected only once resolved: the same answer as a
                // gate-time hit (one host escalation per rule and account
                // per hour).
                let event = Event::new(&job.event_id, &job.event_source, "vigil.execution", 0);
                let canonical = match &result.resolution {
                    Some(Resolution::Resolved(user)) => Some(user.id.as_str()),
                    _ => None,
                };
                self.escalate_protected(&job.rule, &event, &job.action, &result.detail, canonical)?;
            }
        }
        Ok(())
    }

    /// Queues a record for the next commit (see [`Pipeline::commit`]).
    fn append(&mut self, entry: Entry) -> Result<()> {
        self.outbox.push(entry);
        Ok(())
    }

    /// Runs the events waiting for their shards, commits pending state and
    /// records, then fsyncs the audit log.
    pub fn sync(&mut self) -> Result<()> {
        self.run_shards()?;
        self.sync_batch()
    }

    /// [`Pipeline::sync`] without running the waiting events (from inside
    /// a batch).
    fn sync_batch(&mut self) -> Result<()> {
        self.commit()?;
        self.sync_log()
    }

    /// Fsyncs the audit log, then empties the outbox rows now in it.
    fn sync_log(&mut self) -> Result<()> {
        if self.store_unsynced {
            // The store first: the log must never hold a record whose
            // commit (state, judged id) a power cut undoes.
            self.executor.store().barrier()?;
            self.store_unsynced = false;
        }
        self.audit.sync().context("cannot sync the audit log")?;
        self.claim_findings();
        if self.outbox_last > 0 {
            self.executor
                .store()
                .clear_outbox(self.outbox_last, self.audit.last_seq())?;
            self.outbox_last = 0;
        }
        self.unsynced = 0;
        Ok(())
    }

    /// Audits the last results, closes the audit log's run (a closing
    /// checkpoint when it signs, then a sync) and returns the counts.
    pub fn finish(&mut self) -> Result<RunStats> {
        self.run_shards()?;
        self.drain_executions(true)?;
        self.audit_approval_requests(true)?;
        self.expire_approvals()?;
        self.sync()?;
        self.audit
            .finish()
            .context("cannot close the audit log's run")?;
        Ok(self.stats.clone())
    }
}

impl Drop for Pipeline {
    /// Best effort, like the audit log's own drop: records appended since
    /// the last commit (an operator command that stops with an error after
    /// recording why, say) are committed and synced. Accepted actions not
    /// yet handed to the executor are committed as pending but never
    /// executed here; the next start reconciles them `abandoned`.
    fn drop(&mut self) {
        if self.outbox.is_empty() && self.jobs.is_empty() && self.resolved.is_empty() {
            return;
        }
        if self.commit_once().is_ok() {
            let _ = self.sync_log();
        }
    }
}

fn pairs(details: &[(String, String)]) -> Value {
    Value::Object(
        details
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

fn finding_entry(rule: &str, event: &Event, f: &Finding) -> Entry {
    Entry::new("finding")
        .rule(rule)
        .event(&event.id)
        .field("event_kind", event.kind.as_str())
        .field("event_time", event.time)
        .field("severity", f.severity.name())
        .field("title", f.title.as_str())
        .field("subject", f.subject.as_str())
        .field("details", pairs(&f.details))
}

fn action_entry(rule: &str, event: &Event, r: &ActionRequest) -> Entry {
    let mut entry = Entry::new("action")
        .rule(rule)
        .event(&event.id)
        .field("action_id", r.action_id.as_str())
        .field("action", r.action.kind().name())
        .field("target", r.action.target())
        .field("decision", r.decision.name())
        .field("reason", r.decision.reason())
        .field("params", action_params(&r.action));
    if let GateDecision::Denied { message, .. } = &r.decision {
        entry = entry.field("message", message.as_str());
    }
    if r.origin_host {
        entry = entry.field("origin", "host");
    }
    entry
}

fn result_entry(job: &ExecJob, result: &ExecutionResult) -> Entry {
    let mut entry = Entry::new("action-result")
        .rule(&job.rule)
        .event(&job.event_id)
        .field("action_id", job.action_id.as_str())
        .field("action", job.action.kind().name())
        .field("target", job.action.target())
        .field("decision", result.decision)
        .field("executor", result.connector.as_str());
    entry = match result.denial {
        // Like a gate denial: a short reason, the whole story in `message`.
        Some(denial) => entry
            .field("reason", denial.name())
            .field("message", result.detail.as_str()),
        None => entry.field("reason", result.detail.as_str()),
    };
    if let Some(resolution) = &result.resolution {
        entry = entry.field("resolution", resolution_value(resolution));
    }
    if let Some(e) = &result.error {
        entry = entry.field("attempts", e.attempts);
        if let Some(status) = e.status {
            entry = entry.field("http_status", status);
        }
        if let Some(code) = &e.vendor_code {
            entry = entry.field("vendor_code", code.as_str());
        }
    }
    if let Some(diff) = &result.diff {
        entry = entry.field("diff", diff.clone());
    }
    if let Some((id, due)) = result.undo {
        entry = entry.field("undo_id", id).field("undo_due", rfc3339(due));
    }
    entry
}

/// How a user target was resolved, as audited: the canonical id and names
/// the protected accounts were checked against, or why there were none.
fn resolution_value(resolution: &Resolution) -> Value {
    match resolution {
        Resolution::Resolved(user) => json!({
            "status": "resolved",
            "id": user.id,
            "names": user.names,
        }),
        Resolution::NoDirectory { connector } => json!({
            "status": "not-possible",
            "note": format!(
                "the {connector} connector has no user directory: the target was not resolved, \
                 and was checked against the protected accounts only under the names the event gives"
            ),
        }),
    }
}

fn undo_entry(r: &UndoResult) -> Entry {
    let s = &r.scheduled;
    let mut entry = Entry::new("action-undo")
        .rule(&s.rule)
        .field("undoes", s.action_id.as_str())
        .field("undo_id", s.id)
        .field("action", s.undo.name())
        .field("target", s.undo.target())
        .field("decision", r.decision)
        .field("executor", s.connector.as_str())
        .field("reason", r.detail.as_str())
        .field("due", rfc3339(s.due_ms));
    if let Some(next) = r.next_due_ms {
        entry = entry.field("next_try", rfc3339(next));
    }
    entry
}

fn rfc3339(ms: i64) -> String {
    if ms == crate::executor::ON_DEMAND_MS {
        return "on-demand".to_owned();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// The action's parameters beyond kind and target.
fn action_params(action: &Action) -> Value {
    match action {
        Action::SuspendUser(s) => json!({ "duration_secs": s.duration_secs }),
        Action::BlockIp(b) => json!({ "duration_secs": b.duration_secs }),
        Action::AddToGroup(g) => json!({ "group": g.group }),
        Action::AssignAppPolicy(a) => json!({ "policy": a.policy }),
        Action::Notify(m) | Action::Escalate(m) => json!({
            "severity": m.severity.name(),
            "summary": m.summary,
            "details": pairs(&m.details),
        }),
        Action::RevokeSessions(_)
        | Action::ResetFactors(_)
        | Action::ActivatePolicy(_)
        | Action::RestorePolicy(_) => json!({}),
    }
}
