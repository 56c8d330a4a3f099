//! Executors: what carries out an accepted action.
//!
//! The pipeline hands an executor only actions the policy gate accepted and
//! whose decision is already durable in the audit log; the executor's
//! result is audited after. So far the only executor is [`LogExecutor`],
//! which logs what a connector would do; Okta, Microsoft Graph and webhook
//! executors implement the same trait.

use crate::bindings::Action;

/// An accepted action, ready to execute.
#[derive(Clone, Debug)]
pub struct ExecutionRequest<'a> {
    pub action_id: &'a str,
    pub rule: &'a str,
    pub event_id: &'a str,
    pub action: &'a Action,
}

/// A failed execution, as audited: a short reason, no secrets.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExecutionError(pub String);

pub trait Executor {
    /// Names the executor in the audit log (`log`, `okta`, `graph`, …).
    fn name(&self) -> &'static str;
    /// Carries out the action; returns a short description of what was done.
    fn execute(&mut self, request: &ExecutionRequest<'_>) -> Result<String, ExecutionError>;
}

/// Logs each action instead of calling an identity provider.
#[derive(Default)]
pub struct LogExecutor;

impl Executor for LogExecutor {
    fn name(&self) -> &'static str {
        "log"
    }

    fn execute(&mut self, r: &ExecutionRequest<'_>) -> Result<String, ExecutionError> {
        let kind = r.action.kind().name();
        let target = r.action.target();
        tracing::info!(
            action_id = r.action_id,
            rule = r.rule,
            event_id = r.event_id,
            "executed {kind} on {target} (log executor: no identity provider was called)"
        );
        Ok(format!("logged {kind} on {target}"))
    }
}
