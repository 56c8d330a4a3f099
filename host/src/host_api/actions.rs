//! `vigil:rule/actions` (every contract version): the policy gate decides every request during the
//! call; the decision comes back to the rule as a value. Nothing is
//! executed here: the pipeline audits the decisions after the call returns
//! and only then hands accepted actions to the executor.
//!
//! Sizes come first, before the grant (see `call_caps`): an oversized
//! request is denied `invalid` and recorded as a preview, whatever the
//! rule is granted; a request past the call's count or audit-byte cap ends
//! the call with a trap (a rule fault) and is neither decided nor recorded.

use sha2::{Digest, Sha256};

use super::RuleState;
use super::call_caps::{oversize, redact, request_record_bytes};
use crate::model::{Action, Decision, Denial, DenialReason, Receipt};
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

impl RuleState {
    /// `actions.request`: the gate decides now; an error ends the call (a
    /// per-call cap was crossed).
    pub fn request_action(&mut self, action: Action) -> wasmtime::Result<Result<Receipt, Denial>> {
        let Some(event) = self.event.clone() else {
            // Only reachable if a rule acts from `metadata()`.
            return Ok(Err(Denial {
                reason: DenialReason::Invalid,
                message: "actions can only be requested while handling an event".into(),
            }));
        };
        // Sizes before grants: what is recorded is bounded whatever the
        // gate would say.
        let (action, too_big) = match oversize(&action) {
            Some(why) => (redact(&action), Some(why)),
            None => (action, None),
        };
        let bytes = request_record_bytes(&self.ctx.rule_id, &event, &action);
        if let Err(over) = self.call_output.admit_request(&self.ctx.caps, bytes) {
            self.call_output.over = Some(over.clone());
            return Err(wasmtime::Error::msg(over));
        }
        let decision = match too_big {
            Some(message) => GateDecision::Denied {
                reason: DenialReason::Invalid,
                message,
            },
            None => self.ctx.gate.decide(&self.ctx.grant, &action, &event),
        };
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
        Ok(answer)
    }
}
