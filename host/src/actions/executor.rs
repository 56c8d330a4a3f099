//! Runs accepted actions through their connectors: at most once per
//! idempotency key, and with the undo of temporary actions kept in the
//! durable store until it is due.
//!
//! The idempotency key of one execution is the action id (a hash of rule,
//! event id, action kind and target) plus the connector's name. The key is
//! marked in flight durably before the request is sent (see
//! [`crate::store`]), so a replayed event, a redelivery or a restart never
//! sends the same action twice; the result says `duplicate` instead.
//!
//! Undos run when due while the process runs (the pipeline asks after every
//! event, and `vigil run` at start and end); overdue ones run at the next
//! start. A failing undo is retried with growing pauses, then audited
//! `failed` so an operator can reverse the action by hand.

use anyhow::Result;

use crate::bindings::Action;
use crate::store::{ScheduledUndo, Store};

use super::connector::{ActionContext, ConnectorError, Undo};
use super::dispatch::Dispatcher;
use crate::policy::{GroupResolver, ProtectedAccounts};

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
    /// `executed`, `failed` or `duplicate`.
    pub decision: &'static str,
    pub detail: String,
    pub error: Option<ConnectorError>,
    /// The undo scheduled for a temporary action: its id and due time.
    pub undo: Option<(i64, i64)>,
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
    dispatch: Dispatcher,
    store: Store,
    /// Protected groups resolved through the connectors, refreshed when due.
    groups: Option<(GroupResolver, ProtectedAccounts)>,
    /// Earliest pending undo, kept in memory so the per-event check is free.
    next_undo_ms: Option<i64>,
}

/// Wall-clock now in unix milliseconds (undos are due in real time, not
/// event time: a 30-minute suspension lasts 30 minutes however old the
/// event).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl ActionExecutor {
    pub fn new(dispatch: Dispatcher, store: Store) -> Result<Self> {
        let next_undo_ms = store.next_undo_due()?;
        Ok(ActionExecutor {
            dispatch,
            store,
            groups: None,
            next_undo_ms,
        })
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
        let resolver =
            GroupResolver::start(config, &mut self.dispatch, &self.store, protected, now_ms())?;
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
            resolver.refresh(&mut self.dispatch, &self.store, protected, now)?;
        }
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn dispatcher(&mut self) -> &mut Dispatcher {
        &mut self.dispatch
    }

    /// Executes one accepted action on every connector that serves it.
    /// Connector failures are results; an `Err` is a store failure, which
    /// stops the pipeline (Vigil does not act without its records).
    pub fn execute(&mut self, r: &ExecutionRequest<'_>) -> Result<Vec<ExecutionResult>> {
        let kind = r.action.kind();
        let targets = match self.dispatch.resolve(r.rule, kind, r.event_source) {
            Ok(t) => t,
            Err(reason) => {
                return Ok(vec![ExecutionResult {
                    connector: "none".to_owned(),
                    decision: "failed",
                    detail: reason.clone(),
                    error: Some(ConnectorError::refused(reason)),
                    undo: None,
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
            let connector = self.dispatch.connector(index);
            let name = connector.name().to_owned();
            let key = format!("{}:{name}", r.action_id);
            if let Some(previous) = self.store.execution(&key)?
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
                });
                continue;
            }
            self.store
                .begin_execution(&key, r.action_id, &name, now_ms())?;
            let outcome = self.dispatch.connector(index).execute(r.action, &ctx);
            let now = now_ms();
            match outcome {
                Ok(done) => {
                    self.store
                        .finish_execution(&key, "executed", &done.detail, now)?;
                    let undo = match (&done.undo, duration_secs(r.action)) {
                        (Some(undo), Some(secs)) => {
                            let due = now.saturating_add((secs as i64).saturating_mul(1000));
                            let id = self.store.schedule_undo(
                                r.action_id,
                                r.rule,
                                &name,
                                undo,
                                due,
                                now,
                            )?;
                            self.next_undo_ms = Some(self.next_undo_ms.map_or(due, |n| n.min(due)));
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
                    });
                }
                Err(e) => {
                    let detail = e.to_string();
                    self.store.finish_execution(&key, "failed", &detail, now)?;
                    results.push(ExecutionResult {
                        connector: name,
                        decision: "failed",
                        detail,
                        error: Some(e),
                        undo: None,
                    });
                }
            }
        }
        Ok(results)
    }

    /// Whether an undo is due at `now`.
    pub fn undo_due(&self, now: i64) -> bool {
        self.next_undo_ms.is_some_and(|due| due <= now)
    }

    /// The earliest pending undo's due time.
    pub fn next_undo_due(&self) -> Option<i64> {
        self.next_undo_ms
    }

    /// Performs one pending undo now, before it is due (an operator's
    /// `vigil actions undo ID`). A failure is returned, not retried: the
    /// undo stays scheduled for its due time.
    pub fn undo_now(&mut self, id: i64) -> Result<UndoResult> {
        let Some(scheduled) = self.store.pending_undo(id)? else {
            anyhow::bail!("no pending undo with id {id} (see `vigil actions list`)");
        };
        let outcome = match self.dispatch.by_name(&scheduled.connector) {
            Some(c) => c.undo(&scheduled.undo),
            None => Err(ConnectorError::refused(format!(
                "connector {:?} that did the action is not configured",
                scheduled.connector
            ))),
        };
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
            let outcome = match self.dispatch.by_name(&scheduled.connector) {
                Some(c) => c.undo(&scheduled.undo),
                None => Err(ConnectorError::refused(format!(
                    "connector {:?} that did the action is no longer configured",
                    scheduled.connector
                ))),
            };
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
