//! The `log` connector: logs what a connector would do and changes
//! nothing outside Vigil. It serves every action when no connector is
//! configured, and can be named in `[dispatch]` explicitly. It has no user
//! directory, so user targets are not resolved (the audit record says so).

use crate::model::{Action, ActionKind};

use super::connector::{ActionContext, Connector, ConnectorError, Executed, Undo, UserLookup};

#[derive(Default)]
pub struct LogConnector;

impl Connector for LogConnector {
    fn name(&self) -> &str {
        "log"
    }

    fn supports(&self, _kind: ActionKind) -> bool {
        true
    }

    fn execute(
        &mut self,
        action: &Action,
        ctx: &ActionContext<'_>,
    ) -> Result<Executed, ConnectorError> {
        let kind = action.kind().name();
        let target = action.target();
        tracing::info!(
            action_id = ctx.action_id,
            rule = ctx.rule,
            event_id = ctx.event_id,
            "executed {kind} on {target} (log connector: no identity provider was called)"
        );
        // A duration still schedules its undo, so the log shows the whole
        // life of a temporary action.
        let undo = match action {
            Action::SuspendUser(s) if s.duration_secs.is_some() => Some(Undo::Unsuspend {
                user: s.user.clone(),
            }),
            Action::BlockIp(b) if b.duration_secs.is_some() => {
                Some(Undo::Unblock { ip: b.ip.clone() })
            }
            _ => None,
        };
        Ok(Executed {
            detail: format!("logged {kind} on {target}"),
            undo,
        })
    }

    fn undo(&mut self, undo: &Undo) -> Result<String, ConnectorError> {
        tracing::info!(
            "undid {} on {} (log connector: no identity provider was called)",
            undo.reverses().name(),
            undo.target()
        );
        Ok(format!("logged {} on {}", undo.name(), undo.target()))
    }

    fn check(&mut self) -> Result<Vec<String>, ConnectorError> {
        Ok(vec![
            "log: nothing to check (actions are only logged)".to_owned(),
        ])
    }

    /// No directory to ask; nothing outside Vigil changes, so the target
    /// is used as given (the audit record says no resolution was possible).
    fn resolve_user(&mut self, _user: &str) -> Result<UserLookup, ConnectorError> {
        Ok(UserLookup::NoDirectory)
    }
}
