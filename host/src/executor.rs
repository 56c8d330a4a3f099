//! Runs accepted actions through their connectors: at most once per
//! idempotency key, and with the undo of temporary actions kept in the
//! durable store until it is due (a `restore-policy`'s until an operator
//! asks). `restore-policy` and `assign-app-policy` are read, written and
//! read again here, through the connector's `MfaConfig` (`policies`).
//!
//! The idempotency key of one execution is the action id (a hash of rule,
//! event id, action kind and target) plus the connector's name. The key is
//! marked in flight durably before the request is sent (see
//! [`crate::store`]), so a replayed event, a redelivery or a restart never
//! sends the same action twice; the result says `duplicate` instead.
//!
//! In the service, [`ActionExecutor::start_worker`] moves executions to a
//! thread of their own (with its own store connection; the connectors are
//! shared behind a lock): the pipeline submits accepted actions and audits
//! the results when they come back, so a slow identity provider never
//! holds up the judging of new events. Undos, approvals and group
//! refreshes still call the connectors from the pipeline thread.
//!
//! Before a user action is sent, its target is resolved through the
//! connector that will carry it out and checked against the protected
//! accounts under every name the directory knows
//! ([`crate::policy::targets`]); the connector is then given the canonical
//! id only. A protected or unresolvable target is `denied` and nothing is
//! sent (no idempotency key is taken, so a later retry resolves again).
//!
//! Undos run when due while the process runs (the pipeline asks after every
//! event, and `vigil run` at start and end); overdue ones run at the next
//! start. A failing undo is retried with growing pauses, then audited
//! `failed` so an operator can reverse the action by hand.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Result;

use crate::model::Action;
use crate::store::{ScheduledUndo, Store};

use crate::actions::connector::{ActionContext, ConnectorError, Undo};
use crate::actions::dispatch::Dispatcher;
use crate::clock::now_ms;
use crate::cluster::{Claim, Claims};
use crate::policy::targets::{Resolution, TargetCheck, TargetDenial};
use crate::policy::{GroupResolver, ProtectedAccounts, TargetGuard};

mod policies;

/// The due time of an undo kept until an operator asks for it (the
/// reversal of a `restore-policy`): never due by itself.
pub const ON_DEMAND_MS: i64 = i64::MAX;

/// Tries of one undo before it is given up (and audited `failed`).
const MAX_UNDO_ATTEMPTS: u32 = 5;
/// Pause before the first retry of a failed undo; doubles each time.
const UNDO_RETRY_MS: i64 = 60_000;

/// An accepted action, ready to execute.
#[derive(Clone, Copy, Debug)]
pub struct ExecutionRequest<'a> {
    pub action_id: &'a str,
    pub rule: &'a str,
    pub event_id: &'a str,
    pub event_source: &'a str,
    pub action: &'a Action,
}

/// How one execution ended, per connector.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionResult {
    pub connector: String,
    /// `executed`, `failed`, `duplicate`, or `denied` (the target turned
    /// out protected or could not be resolved: nothing was sent).
    pub decision: &'static str,
    pub detail: String,
    pub error: Option<ConnectorError>,
    /// The undo scheduled for a temporary action: its id and due time.
    pub undo: Option<(i64, i64)>,
    /// How a user target was resolved (user actions only).
    pub resolution: Option<Resolution>,
    /// Why a `denied` result was denied.
    pub denial: Option<TargetDenial>,
    /// What a `restore-policy` changed back, or how `assign-app-policy`
    /// found the application (see `policies`).
    pub diff: Option<serde_json::Value>,
}

/// How one undo ended.
#[derive(Clone, Debug, PartialEq)]
pub struct UndoResult {
    pub scheduled: ScheduledUndo,
    /// `executed`, `failed` (given up) or `retrying`.
    pub decision: &'static str,
    pub detail: String,
    /// When `retrying`, the next try.
    pub next_due_ms: Option<i64>,
}

pub struct ActionExecutor {
    /// Shared with the worker thread when there is one.
    dispatch: Arc<Mutex<Dispatcher>>,
    store: Store,
    /// Executes accepted actions off the pipeline thread (the service).
    worker: Option<Worker>,
    /// Protected groups resolved through the connectors, refreshed when due.
    groups: Option<(GroupResolver, ProtectedAccounts)>,
    /// Resolves user targets and checks them against the protected
    /// accounts just before they are sent (shared with the worker).
    targets: Arc<TargetGuard>,
    /// Earliest pending undo, kept in memory so the per-event check is free.
    next_undo_ms: Option<i64>,
    /// `[cluster]`: each execution is claimed across replicas first
    /// (shared with the worker).
    claims: Option<Arc<Claims>>,
}

impl ActionExecutor {
    pub fn new(dispatch: Dispatcher, store: Store) -> Result<Self> {
        let next_undo_ms = store.next_undo_due()?;
        Ok(ActionExecutor {
            dispatch: Arc::new(Mutex::new(dispatch)),
            store,
            worker: None,
            groups: None,
            targets: Arc::new(TargetGuard::default()),
            next_undo_ms,
            claims: None,
        })
    }

    /// Claims every execution in the cluster's bucket before calling a
    /// connector (`crate::cluster`). Set before `start_worker`.
    pub fn set_claims(&mut self, claims: Claims) {
        self.claims = Some(Arc::new(claims));
    }

    /// The cluster's claim bucket, when `[cluster]` is set.
    pub fn claims(&self) -> Option<&Arc<Claims>> {
        self.claims.as_ref()
    }

    /// An executor that only logs, with an in-memory store (tests,
    /// benchmarks).
    pub fn log_only() -> Result<Self> {
        ActionExecutor::new(
            Dispatcher::new(Vec::new(), &Default::default(), &[])?,
            Store::in_memory()?,
        )
    }

    /// Resolves the protected groups of `config` through the connectors
    /// (failing closed: a group neither listable nor cached stops the
    /// start), then keeps them fresh from [`ActionExecutor::refresh_groups`].
    pub fn resolve_protected_groups(
        &mut self,
        config: &crate::config::Protected,
        protected: &ProtectedAccounts,
    ) -> Result<()> {
        let resolver = GroupResolver::start(
            config,
            &mut lock(&self.dispatch),
            &self.store,
            protected,
            now_ms(),
        )?;
        if resolver.next_due_ms().is_some() {
            self.groups = Some((resolver, protected.clone()));
        }
        Ok(())
    }

    /// Refreshes the protected groups when due (blocking HTTP calls on the
    /// pipeline thread; once per `group_refresh_secs`).
    pub fn refresh_groups(&mut self, now: i64) -> Result<()> {
        if let Some((resolver, protected)) = &mut self.groups
            && resolver.due(now)
        {
            resolver.refresh(&mut lock(&self.dispatch), &self.store, protected, now)?;
        }
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How `app` is signed in to through `provider`, and why it can be
    /// signed in to without MFA, if it can (HTTP reads on this thread).
    pub fn app_mfa_gap(
        &self,
        provider: &str,
        app: &str,
    ) -> Result<(crate::model::baseline::AppSignIn, Option<String>)> {
        let mut dispatch = lock(&self.dispatch);
        let connector = dispatch
            .by_name(provider)
            .ok_or_else(|| anyhow::anyhow!("no connector named {provider}"))?;
        let entra = connector.directory_for() == Some("entra");
        let sign_in = connector
            .mfa()
            .ok_or_else(|| anyhow::anyhow!("the {provider} connector cannot read applications"))?
            .app_sign_in(app)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let gap = crate::baseline::apps::mfa_gap(&sign_in, entra);
        Ok((sign_in, gap))
    }

    /// `provider`'s MFA configuration now, compared with its approved
    /// baseline (HTTP reads on this thread).
    pub fn baseline_drift(&self, provider: &str) -> Result<crate::baseline::Drift> {
        crate::baseline::drift(&mut lock(&self.dispatch), &self.store, provider)
    }

    /// The protected accounts user targets are checked against once
    /// resolved (the gate's registry; until set, none).
    pub fn set_protected(&mut self, protected: ProtectedAccounts) {
        self.targets.set_protected(protected);
    }

    /// The connectors (locked: a worker thread may be using them).
    pub fn dispatcher(&mut self) -> MutexGuard<'_, Dispatcher> {
        lock(&self.dispatch)
    }

    /// Executes one accepted action on every connector that serves it, on
    /// this thread. Connector failures are results; an `Err` is a store
    /// failure, which stops the pipeline (Vigil does not act without its
    /// records).
    pub fn execute(&mut self, r: &ExecutionRequest<'_>) -> Result<Vec<ExecutionResult>> {
        let results = execute_on(
            &mut lock(&self.dispatch),
            &self.store,
            &self.targets,
            self.claims.as_deref(),
            r,
        )?;
        for due in results.iter().filter_map(|x| x.undo.map(|(_, due)| due)) {
            self.note_undo(due);
        }
        Ok(results)
    }

    /// Remembers an undo scheduled at `due` (by this thread or the worker).
    pub fn note_undo(&mut self, due: i64) {
        self.next_undo_ms = Some(self.next_undo_ms.map_or(due, |n| n.min(due)));
    }

    /// Moves execution to a worker thread with its own connection to the
    /// store at `state_path`: the pipeline hands it accepted actions
    /// ([`ActionExecutor::submit`]) and audits what comes back
    /// ([`ActionExecutor::completed`]), so a slow identity provider no
    /// longer holds up detection.
    ///
    /// The queue holds at most `queue` jobs: past that, [`submit`] waits
    /// for the worker (backpressure) instead of piling up actions. When the
    /// executor is dropped with jobs still queued (the pipeline stopped on
    /// an audit or store failure), those jobs are dropped unrun: their
    /// `pending_actions` rows stay, and the next start audits them
    /// `abandoned`.
    ///
    /// [`submit`]: ActionExecutor::submit
    pub fn start_worker(&mut self, state_path: &Path, queue: usize) -> Result<()> {
        let store = Store::open(state_path)?;
        let dispatch = self.dispatch.clone();
        let targets = self.targets.clone();
        let claims = self.claims.clone();
        let (jobs, job_rx) = mpsc::sync_channel::<ExecJob>(queue.max(1));
        let (done_tx, done) = mpsc::channel::<ExecDone>();
        let cancelled = Arc::new(AtomicBool::new(false));
        let stop = cancelled.clone();
        let thread = std::thread::Builder::new()
            .name("vigil-executor".into())
            .spawn(move || {
                for job in job_rx {
                    if stop.load(Ordering::SeqCst) {
                        // Dropped unrun; the store still says it is pending.
                        continue;
                    }
                    let results = execute_on(
                        &mut lock(&dispatch),
                        &store,
                        &targets,
                        claims.as_deref(),
                        &job.request(),
                    )
                    .map_err(|e| format!("{e:#}"));
                    if done_tx.send(ExecDone { job, results }).is_err() {
                        break;
                    }
                }
            })?;
        self.worker = Some(Worker {
            jobs: Some(jobs),
            done,
            outstanding: 0,
            cancelled,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Stops the worker from starting any job still queued (the one it is
    /// running finishes). For when results can no longer be audited (the
    /// audit log or the store failed): a queued job must then not act.
    /// Their `pending_actions` rows stay, and the next start audits them
    /// `abandoned`. Dropping the executor does the same.
    pub fn cancel_queued(&self) {
        if let Some(w) = &self.worker {
            w.cancelled.store(true, Ordering::SeqCst);
        }
    }

    /// Whether accepted actions go to the worker thread.
    pub fn is_async(&self) -> bool {
        self.worker.is_some()
    }

    /// Hands an accepted action to the worker (or executes it here when
    /// there is none, returning its results at once).
    pub fn submit(&mut self, job: ExecJob) -> Result<Option<ExecDone>> {
        let Some(worker) = &mut self.worker else {
            let results = self.execute(&job.request())?;
            return Ok(Some(ExecDone {
                job,
                results: Ok(results),
            }));
        };
        let Some(jobs) = &worker.jobs else {
            anyhow::bail!("the executor worker has stopped");
        };
        jobs.send(job)
            .map_err(|_| anyhow::anyhow!("the executor worker has stopped"))?;
        worker.outstanding += 1;
        Ok(None)
    }

    /// Executions the worker finished; with `wait`, every one submitted.
    pub fn completed(&mut self, wait: bool) -> Result<Vec<ExecDone>> {
        let Some(worker) = &mut self.worker else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        while worker.outstanding > 0 {
            let next = if wait {
                worker.done.recv().ok()
            } else {
                worker.done.try_recv().ok()
            };
            let Some(done) = next else {
                if wait {
                    anyhow::bail!("the executor worker stopped with actions outstanding");
                }
                break;
            };
            worker.outstanding -= 1;
            out.push(done);
        }
        for due in out
            .iter()
            .filter_map(|d| d.results.as_ref().ok())
            .flatten()
            .filter_map(|r| r.undo.map(|(_, due)| due))
            .collect::<Vec<_>>()
        {
            self.note_undo(due);
        }
        Ok(out)
    }

    /// Whether an undo is due at `now`.
    pub fn undo_due(&self, now: i64) -> bool {
        self.next_undo_ms.is_some_and(|due| due <= now)
    }

    /// The earliest pending undo's due time.
    pub fn next_undo_due(&self) -> Option<i64> {
        self.next_undo_ms
    }

    /// Asks the connector that did the action to reverse it.
    fn undo_with_connector(&self, scheduled: &ScheduledUndo) -> Result<String, ConnectorError> {
        if let Undo::RestorePolicy { policy, previous } = &scheduled.undo {
            let mut dispatch = lock(&self.dispatch);
            if let Some(c) = dispatch.by_name(&scheduled.connector) {
                let provider = c.name().to_owned();
                if let Some(mfa) = c.mfa() {
                    return policies::put_back(&provider, mfa, policy, previous);
                }
            }
        }
        match lock(&self.dispatch).by_name(&scheduled.connector) {
            Some(c) => c.undo(&scheduled.undo),
            None => Err(ConnectorError::refused(format!(
                "connector {:?} that did the action is no longer configured",
                scheduled.connector
            ))),
        }
    }

    /// Performs one pending undo now, before it is due (an operator's
    /// `vigil actions undo ID`). A failure is returned, not retried: the
    /// undo stays scheduled for its due time.
    pub fn undo_now(&mut self, id: i64) -> Result<UndoResult> {
        let Some(scheduled) = self.store.pending_undo(id)? else {
            anyhow::bail!("no pending undo with id {id} (see `vigil actions list`)");
        };
        let outcome = self.undo_with_connector(&scheduled);
        let done = now_ms();
        let result = match outcome {
            Ok(detail) => {
                self.store.finish_undo(id, "done", &detail, done)?;
                UndoResult {
                    scheduled,
                    decision: "executed",
                    detail,
                    next_due_ms: None,
                }
            }
            Err(e) => UndoResult {
                next_due_ms: Some(scheduled.due_ms),
                scheduled,
                decision: "failed",
                detail: format!("{e}; still scheduled for its due time"),
            },
        };
        self.next_undo_ms = self.store.next_undo_due()?;
        Ok(result)
    }

    /// Performs every undo due at `now`.
    pub fn run_due_undos(&mut self, now: i64) -> Result<Vec<UndoResult>> {
        let mut results = Vec::new();
        for scheduled in self.store.due_undos(now)? {
            let outcome = self.undo_with_connector(&scheduled);
            let done = now_ms();
            let result = match outcome {
                Ok(detail) => {
                    self.store
                        .finish_undo(scheduled.id, "done", &detail, done)?;
                    UndoResult {
                        scheduled,
                        decision: "executed",
                        detail,
                        next_due_ms: None,
                    }
                }
                Err(e) if scheduled.attempts + 1 < MAX_UNDO_ATTEMPTS => {
                    let due = done + UNDO_RETRY_MS * (1 << scheduled.attempts);
                    let detail = e.to_string();
                    self.store.retry_undo(scheduled.id, &detail, due, done)?;
                    UndoResult {
                        scheduled,
                        decision: "retrying",
                        detail,
                        next_due_ms: Some(due),
                    }
                }
                Err(e) => {
                    let detail = format!(
                        "{e}; given up after {MAX_UNDO_ATTEMPTS} attempts: reverse it by hand"
                    );
                    self.store
                        .finish_undo(scheduled.id, "failed", &detail, done)?;
                    UndoResult {
                        scheduled,
                        decision: "failed",
                        detail,
                        next_due_ms: None,
                    }
                }
            };
            results.push(result);
        }
        self.next_undo_ms = self.store.next_undo_due()?;
        Ok(results)
    }
}

/// The duration of a temporary action.
fn duration_secs(action: &Action) -> Option<u64> {
    match action {
        Action::SuspendUser(s) => s.duration_secs,
        Action::BlockIp(b) => b.duration_secs,
        _ => None,
    }
}

impl Undo {
    /// For log lines: `unsuspend-user 00u1`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.name(), self.target())
    }
}

/// Executes one accepted action on every connector that serves it.
fn execute_on(
    dispatch: &mut Dispatcher,
    store: &Store,
    guard: &TargetGuard,
    claims: Option<&Claims>,
    r: &ExecutionRequest<'_>,
) -> Result<Vec<ExecutionResult>> {
    let kind = r.action.kind();
    let targets = match dispatch.resolve(r.rule, kind, r.event_source) {
        Ok(t) => t,
        Err(reason) => {
            return Ok(vec![ExecutionResult {
                connector: "none".to_owned(),
                decision: "failed",
                detail: reason.clone(),
                error: Some(ConnectorError::refused(reason)),
                undo: None,
                resolution: None,
                denial: None,
                diff: None,
            }]);
        }
    };
    let ctx = ActionContext {
        action_id: r.action_id,
        rule: r.rule,
        event_id: r.event_id,
        event_source: r.event_source,
    };
    let mut results = Vec::with_capacity(targets.len());
    for index in targets {
        let connector = dispatch.connector(index);
        let name = connector.name().to_owned();
        let key = format!("{}:{name}", r.action_id);
        if let Some(previous) = store.execution(&key)?
            && previous.state != "failed"
        {
            let when = chrono::DateTime::from_timestamp_millis(previous.updated_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            let detail = if previous.state == "in-flight" {
                format!(
                    "already sent at {when}; its result was never recorded (crash?), so it is not sent again"
                )
            } else {
                format!("already {} at {when}: {}", previous.state, previous.detail)
            };
            results.push(ExecutionResult {
                connector: name,
                decision: "duplicate",
                detail,
                error: None,
                undo: None,
                resolution: None,
                denial: None,
                diff: None,
            });
            continue;
        }
        // The name the connector is given: the canonical id of a user
        // target that is not protected; nothing when it is, or when it
        // cannot be resolved.
        let (action, resolution) = match guard.check(dispatch.connector(index), r.action) {
            TargetCheck::NotUser => (std::borrow::Cow::Borrowed(r.action), None),
            TargetCheck::Proceed { action, resolution } => {
                (std::borrow::Cow::Owned(action), Some(resolution))
            }
            TargetCheck::Denied {
                denial,
                message,
                resolved,
                error,
            } => {
                results.push(ExecutionResult {
                    connector: name,
                    decision: "denied",
                    detail: message,
                    error,
                    undo: None,
                    resolution: resolved.map(Resolution::Resolved),
                    denial: Some(denial),
                    diff: None,
                });
                continue;
            }
        };
        // Across replicas: only the one that claims the execution first
        // calls the connector; none calls it when the claim cannot be made.
        if let Some(claims) = claims {
            let lost = match claims.claim(&key) {
                Ok(Claim::Won) => None,
                Ok(Claim::Lost { owner }) => Some((
                    "duplicate",
                    format!("replica {owner} claimed it first; not executed here"),
                )),
                Err(e) => Some((
                    "failed",
                    format!("cannot claim it across replicas, so it is not executed: {e:#}"),
                )),
            };
            if let Some((decision, detail)) = lost {
                results.push(ExecutionResult {
                    connector: name,
                    decision,
                    error: (decision == "failed").then(|| ConnectorError::refused(detail.clone())),
                    detail,
                    undo: None,
                    resolution,
                    denial: None,
                    diff: None,
                });
                continue;
            }
        }
        store.begin_execution(&key, r.action_id, &name, now_ms())?;
        let connector = dispatch.connector(index);
        let outcome = match &*action {
            // Read, write, re-read: the connector only knows the calls.
            Action::RestorePolicy(policy) if connector.mfa().is_some() => {
                policies::restore_policy(connector, store, policy)
            }
            Action::AssignAppPolicy(assign) if connector.mfa().is_some() => {
                policies::assign_app_policy(connector, &action, assign, &ctx)
            }
            _ => connector.execute(&action, &ctx).map(|done| (done, None)),
        };
        let now = now_ms();
        match outcome {
            Ok((done, diff)) => {
                store.finish_execution(&key, "executed", &done.detail, now)?;
                let undo = match (&done.undo, duration_secs(&action)) {
                    // Kept until an operator asks (`vigil actions undo`).
                    (Some(undo @ Undo::RestorePolicy { .. }), _) => {
                        let id = store.schedule_undo(
                            r.action_id,
                            r.rule,
                            &name,
                            undo,
                            ON_DEMAND_MS,
                            now,
                        )?;
                        Some((id, ON_DEMAND_MS))
                    }
                    (Some(undo), Some(secs)) => {
                        let due = now.saturating_add((secs as i64).saturating_mul(1000));
                        let id = store.schedule_undo(r.action_id, r.rule, &name, undo, due, now)?;
                        Some((id, due))
                    }
                    _ => None,
                };
                results.push(ExecutionResult {
                    connector: name,
                    decision: "executed",
                    detail: done.detail,
                    error: None,
                    undo,
                    resolution,
                    denial: None,
                    diff,
                });
            }
            Err(e) => {
                let detail = e.to_string();
                store.finish_execution(&key, "failed", &detail, now)?;
                results.push(ExecutionResult {
                    connector: name,
                    decision: "failed",
                    detail,
                    error: Some(e),
                    undo: None,
                    resolution,
                    denial: None,
                    diff: None,
                });
            }
        }
    }
    Ok(results)
}

/// The dispatcher, whoever holds it (a panic while holding it cannot leave
/// it in a state worse than refusing to go on would).
fn lock(d: &Mutex<Dispatcher>) -> MutexGuard<'_, Dispatcher> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// An accepted action handed to the worker thread.
#[derive(Clone, Debug)]
pub struct ExecJob {
    pub action_id: String,
    pub rule: String,
    pub event_id: String,
    pub event_source: String,
    pub action: Action,
    /// Raised by the host, not the rule (no budget to give back).
    pub origin_host: bool,
}

impl ExecJob {
    /// As kept in the store's `pending_actions` until its result is audited.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "action_id": self.action_id,
            "rule": self.rule,
            "event_id": self.event_id,
            "event_source": self.event_source,
            "action": crate::store::action_to_json(&self.action),
            "origin_host": self.origin_host,
        })
        .to_string()
    }

    /// Reads back [`ExecJob::to_json`].
    pub fn from_json(text: &str) -> Result<ExecJob> {
        let v: serde_json::Value = serde_json::from_str(text)?;
        let s = |k: &str| -> Result<String> {
            v[k].as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("pending action: `{k}` missing in {text}"))
        };
        Ok(ExecJob {
            action_id: s("action_id")?,
            rule: s("rule")?,
            event_id: s("event_id")?,
            event_source: s("event_source")?,
            action: crate::store::action_from_json(&v["action"])?,
            origin_host: v["origin_host"].as_bool().unwrap_or(false),
        })
    }

    fn request(&self) -> ExecutionRequest<'_> {
        ExecutionRequest {
            action_id: &self.action_id,
            rule: &self.rule,
            event_id: &self.event_id,
            event_source: &self.event_source,
            action: &self.action,
        }
    }
}

/// A finished execution: per connector, or the store error that stops the
/// pipeline.
#[derive(Debug)]
pub struct ExecDone {
    pub job: ExecJob,
    pub results: std::result::Result<Vec<ExecutionResult>, String>,
}

struct Worker {
    jobs: Option<mpsc::SyncSender<ExecJob>>,
    done: mpsc::Receiver<ExecDone>,
    outstanding: usize,
    /// Set when the worker is dropped: the jobs still queued are not run.
    cancelled: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Whoever drops the executor has stopped auditing results: a job
        // still queued must not run (it would act without a record of its
        // result). An orderly finish has drained the queue first. Closing
        // the queue ends the thread once it has finished its current job.
        self.cancelled.store(true, Ordering::SeqCst);
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::connector::{Connector, Executed};
    use crate::model::{ActionKind, Message, Severity};
    use std::sync::mpsc::{Receiver, Sender};

    /// A notifier whose first execution waits until the test releases it,
    /// and which counts what it executed.
    struct Gated {
        started: Sender<()>,
        release: Arc<Mutex<Receiver<()>>>,
        executed: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Connector for Gated {
        fn name(&self) -> &str {
            "gated"
        }
        fn supports(&self, kind: ActionKind) -> bool {
            kind == ActionKind::Escalate
        }
        fn execute(
            &mut self,
            _: &Action,
            _: &ActionContext<'_>,
        ) -> Result<Executed, ConnectorError> {
            let _ = self.started.send(());
            if self.executed.load(Ordering::SeqCst) == 0 {
                let _ = self.release.lock().unwrap().recv();
            }
            self.executed.fetch_add(1, Ordering::SeqCst);
            Ok(Executed::done("sent"))
        }
        fn undo(&mut self, _: &Undo) -> Result<String, ConnectorError> {
            unreachable!()
        }
        fn check(&mut self) -> Result<Vec<String>, ConnectorError> {
            Ok(Vec::new())
        }
    }

    fn job(n: usize) -> ExecJob {
        ExecJob {
            action_id: format!("action-{n}"),
            rule: "r".into(),
            event_id: format!("evt-{n}"),
            event_source: "okta".into(),
            action: Action::Escalate(Message {
                severity: Severity::High,
                summary: format!("escalation {n}"),
                details: Vec::new(),
            }),
            origin_host: false,
        }
    }

    /// What a test holds of a worker-backed executor over [`Gated`].
    struct Rig {
        executor: ActionExecutor,
        started: Receiver<()>,
        release: Sender<()>,
        executed: Arc<std::sync::atomic::AtomicUsize>,
        _dir: tempfile::TempDir,
    }

    /// An executor whose worker queue holds `queue` jobs, dispatching to a
    /// [`Gated`] notifier.
    fn rig(queue: usize) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let executed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let gated = Gated {
            started: started_tx,
            release: Arc::new(Mutex::new(release_rx)),
            executed: executed.clone(),
        };
        let dispatch = Dispatcher::new(vec![Box::new(gated)], &Default::default(), &[]).unwrap();
        let mut executor = ActionExecutor::new(dispatch, Store::open(&path).unwrap()).unwrap();
        executor.start_worker(&path, queue).unwrap();
        Rig {
            executor,
            started,
            release,
            executed,
            _dir: dir,
        }
    }

    // When results can no longer be audited, the job being run finishes
    // and every queued one is dropped unrun: nothing acts unrecorded.
    #[test]
    fn cancelled_queued_jobs_never_run() {
        let mut r = rig(8);
        for n in 0..4 {
            assert!(r.executor.submit(job(n)).unwrap().is_none());
        }
        // The first job is running (held by the connector); three wait.
        r.started.recv().unwrap();
        r.executor.cancel_queued();
        r.release.send(()).unwrap();
        drop(r.executor);
        assert_eq!(r.executed.load(Ordering::SeqCst), 1);
        assert!(r.started.try_recv().is_err(), "a queued job started");
    }

    // Without cancelling, an orderly finish runs every submitted job.
    #[test]
    fn submitted_jobs_all_run_and_come_back() {
        let mut r = rig(2);
        r.release.send(()).unwrap();
        for n in 0..4 {
            assert!(r.executor.submit(job(n)).unwrap().is_none());
        }
        let done = r.executor.completed(true).unwrap();
        assert_eq!(done.len(), 4);
        assert!(done.iter().all(|d| d.results.is_ok()));
        assert_eq!(r.executed.load(Ordering::SeqCst), 4);
    }
}
