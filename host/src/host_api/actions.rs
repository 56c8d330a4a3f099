//! `vigil:rule/actions`: the policy gate decides every request during the
//! call; the decision comes back to the rule as a value. Nothing is
//! executed here: the pipeline audits the decisions after the call returns
//! and only then hands accepted actions to the executor.

use sha2::{Digest, Sha256};

use super::RuleState;
use crate::bindings::vigil::rule::actions::Host;
use crate::bindings::{Action, Decision, Denial, Receipt};
use crate::policy::GateDecision;

/// An action a rule asked for, with the gate's decision.
#[derive(Clone, Debug)]
pub struct ActionRequest {
    /// Stable id: the same rule, event, action kind and target always give
    /// the same id, so it doubles as the idempotency key.
    pub action_id: String,
    pub action: Action,
    pub decision: GateDecision,
    /// Raised by the host itself (an escalation for a protected target or
    /// a tripped breaker), not by the rule.
    pub origin_host: bool,
}

/// `act-` and 16 hex digits of SHA-256 over rule, event, kind and target.
pub fn action_id(rule: &str, event_id: &str, action: &Action) -> String {
    let mut h = Sha256::new();
    for part in [rule, event_id, action.kind().name(), action.target()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("act-{}", &hex::encode(h.finalize())[..16])
}

impl Host for RuleState {
    fn request(&mut self, action: Action) -> Result<Receipt, Denial> {
        let Some(event) = self.event.clone() else {
            // Only reachable if a rule acts from `metadata()`.
            return Err(Denial {
                reason: crate::bindings::DenialReason::Invalid,
                message: "actions can only be requested while handling an event".into(),
            });
        };
        let decision = self.ctx.gate.decide(&self.ctx.grant, &action, &event);
        let action_id = action_id(&self.ctx.rule_id, &event.id, &action);
        let answer = match &decision {
            GateDecision::Accepted => Ok(Receipt {
                action_id: action_id.clone(),
                decision: Decision::Accepted,
            }),
            GateDecision::DryRun | GateDecision::HeldByBreaker => Ok(Receipt {
                action_id: action_id.clone(),
                decision: Decision::DryRun,
            }),
            GateDecision::PendingApproval => Ok(Receipt {
                action_id: action_id.clone(),
                decision: Decision::PendingApproval,
            }),
            GateDecision::Denied { reason, message } => Err(Denial {
                reason: *reason,
                message: message.clone(),
            }),
        };
        self.requests.push(ActionRequest {
            action_id,
            action,
            decision,
            origin_host: false,
        });
        answer
    }
}
