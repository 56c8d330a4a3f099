//! The pipeline's guardrail steps: what it restores from and writes to the
//! durable store, the escalations the host raises itself (a rule aiming at
//! a protected account, a tripped breaker), parked approvals and the
//! operator's decisions on them, breaker resets.
//!
//! Every operator decision is audited with who made it.

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::{Pipeline, action_entry};
use crate::audit::Entry;
use crate::clock::now_ms;
use crate::host_api::{ActionRequest, action_id};
use crate::model::{Action, DenialReason, Event, Message, Principal, Severity};
use crate::policy::GateDecision;
use crate::policy::budget::BreakerChange;
use crate::store::PendingApproval;

/// How often rule state is written when nothing forces it (a record, an
/// action, the end of a run); a key changed many times in between is
/// written once.
const PERSIST_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// One escalation per rule and protected target per hour.
const PROTECTED_ESCALATION_COOLDOWN_MS: i64 = 3_600_000;

/// What an operator's approval led to.
#[derive(Debug, PartialEq, Eq)]
pub struct ApprovalOutcome {
    /// The gate's decision when the request went through it again.
    pub decision: &'static str,
    /// `executed`, `failed`, `duplicate` or `denied` (protected or
    /// unresolvable once resolved) per connector (empty when the gate did
    /// not accept it).
    pub results: Vec<&'static str>,
}

impl Pipeline {
    /// Restores rule state, budgets, breakers and quarantines; expires
    /// approvals that ran out while Vigil was stopped.
    pub(super) fn restore(&mut self) -> Result<()> {
        let now = now_ms();
        if let Some(gate) = self.rules.gate() {
            gate.budgets().load(self.executor.store(), now)?;
        }
        for index in 0..self.rules.rules.len() {
            let store = self.executor.store();
            let keys = store.load_rule_state(self.rules.rules[index].id())?;
            self.rules.restore_state(index, keys);
            self.newest
                .push(self.rules.high_water(index).unwrap_or(i64::MIN));
            let rule = &self.rules.rules[index];
            let limits = rule.limits();
            self.judged.load(
                rule.id(),
                limits.judged_max_ids,
                limits.judged_window_secs,
                store.judged(rule.id())?,
            );
            if let Some((at, reason)) = store.quarantined(rule.id())? {
                tracing::warn!(
                    rule = rule.id(),
                    since = %super::rfc3339(at),
                    "rule stays quarantined ({reason}); `vigil rules release {}` lifts it",
                    rule.id()
                );
                self.rules.quarantine(index);
            }
        }
        self.expire_approvals()
    }

    /// Persists rule state every [`PERSIST_EVERY`] (checked every 256
    /// events, so the clock is not read per event).
    pub(super) fn maybe_persist(&mut self) -> Result<()> {
        if self.events_since_persist.is_multiple_of(256)
            && self.events_since_persist > 0
            && self.last_persist.elapsed() >= PERSIST_EVERY
        {
            self.commit()?;
        }
        Ok(())
    }

    /// Counts the users an event names, for the budgets' user ceiling.
    pub(super) fn observe_users(&mut self, event: &Event, now: i64) {
        let Some(gate) = self.rules.gate() else {
            return;
        };
        let mut budgets = gate.budgets();
        for p in event.actor.iter().chain(event.targets.iter()) {
            if p.kind.eq_ignore_ascii_case("user") && !p.id.is_empty() {
                budgets.observe_user(&p.id, now);
            }
        }
    }

    /// Parks a request that waits for an operator.
    pub(super) fn park(&mut self, rule: &str, event: &Event, r: &ActionRequest) -> Result<()> {
        let target = r.action.target();
        let aliases = event
            .actor
            .iter()
            .chain(event.targets.iter())
            .filter(|p| {
                p.id.eq_ignore_ascii_case(target)
                    || p.login
                        .as_deref()
                        .is_some_and(|l| l.eq_ignore_ascii_case(target))
            })
            .map(|p| (p.id.clone(), p.login.clone()))
            .collect();
        let now = now_ms();
        let expiry = self
            .rules
            .gate()
            .map_or(24 * 3_600_000, |g| g.approval_expiry_ms());
        let expires = now + expiry;
        let parked = PendingApproval {
            action_id: r.action_id.clone(),
            rule: rule.to_owned(),
            event_id: event.id.clone(),
            event_source: event.source.clone(),
            action: r.action.clone(),
            aliases,
            created_ms: now,
            expires_ms: expires,
            state: "pending".to_owned(),
            decided_by: String::new(),
        };
        let added = self.executor.store().add_approval(&parked)?;
        if added {
            if self.approval_notifier.is_some() {
                self.approval_requests.push(approval_request(&parked));
            }
            tracing::warn!(
                rule,
                action_id = %r.action_id,
                "{} on {target} awaits approval until {} (`vigil approvals approve {}`)",
                r.action.kind().name(),
                super::rfc3339(expires),
                r.action_id
            );
        }
        Ok(())
    }

    /// Hands the parked actions waiting in `approval_requests` to the
    /// notifier's thread (after the commit that made their approvals
    /// durable).
    pub(super) fn submit_approval_requests(&mut self) {
        let requests = std::mem::take(&mut self.approval_requests);
        if let Some(notifier) = self.approval_notifier.as_mut() {
            for r in requests {
                notifier.submit(r);
            }
        }
    }

    /// Records each delivery of an approval request the notifier finished
    /// (`approval-request`: which webhook, and the status or why it
    /// failed); with `wait`, of every one submitted. A failed post leaves
    /// the approval pending (the CLI, the admin API and the console still
    /// decide it).
    pub(super) fn audit_approval_requests(&mut self, wait: bool) -> Result<()> {
        let Some(notifier) = self.approval_notifier.as_mut() else {
            return Ok(());
        };
        let posted = notifier.completed(wait);
        if posted.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = posted.iter().map(|p| p.request.action_id.clone()).collect();
        for p in posted {
            let r = &p.request;
            for d in p.deliveries {
                let entry = Entry::new("approval-request")
                    .rule(&r.rule)
                    .event(&r.event_id)
                    .field("action_id", r.action_id.as_str())
                    .field("action", r.action)
                    .field("target", r.target.as_str())
                    .field("webhook", d.webhook.as_str());
                let entry = match d.result {
                    Ok(status) => entry.field("result", "delivered").field("status", status),
                    Err(e) => {
                        tracing::warn!(webhook = %d.webhook, action_id = %r.action_id, "approval request not delivered: {e}");
                        entry.field("result", "failed").field("error", e)
                    }
                };
                self.append(entry)?;
            }
        }
        self.sync()?;
        // Only once the deliveries' records are durable: a stop before this
        // posts the request again at the next start (at least once).
        for id in ids {
            self.executor.store().mark_approval_posted(&id)?;
        }
        Ok(())
    }

    /// Audits breaker trips (and raises one escalation per trip) and
    /// resets, and writes them to the store.
    pub(super) fn audit_breaker_changes(&mut self, event: &Event) -> Result<()> {
        let Some(gate) = self.rules.gate() else {
            return Ok(());
        };
        let changes = gate.budgets().take_breaker_changes();
        for change in changes {
            match change {
                BreakerChange::Tripped {
                    rule: tripped,
                    trip,
                } => {
                    if let Some(o) = &self.observer {
                        o.breaker(&tripped, true);
                    }
                    self.executor
                        .store()
                        .trip_breaker(&tripped, trip.at_ms, &trip.reason)?;
                    tracing::error!(
                        rule = %tripped,
                        "breaker tripped: {}; the rule is held in audit-only until `vigil breaker reset {tripped}`",
                        trip.reason
                    );
                    self.append(
                        Entry::new("breaker-tripped")
                            .rule(&tripped)
                            .event(&event.id)
                            .field("reason", trip.reason.as_str()),
                    )?;
                    let message = Message {
                        severity: Severity::Critical,
                        summary: format!(
                            "Vigil breaker tripped for rule {tripped}: {}; the rule is held in audit-only",
                            trip.reason
                        ),
                        details: vec![
                            ("rule".into(), tripped.clone()),
                            ("reason".into(), trip.reason.clone()),
                        ],
                    };
                    self.host_escalation(&tripped, event, "breaker", message, true)?;
                }
                BreakerChange::Reset { rule: reset, by } => {
                    if let Some(o) = &self.observer {
                        o.breaker(&reset, false);
                    }
                    self.executor.store().reset_breaker(&reset)?;
                    self.append(
                        Entry::new("breaker-reset")
                            .rule(&reset)
                            .field("by", by.as_str()),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// A rule asked to act on a protected account (or network): the
    /// request was denied — by the gate, or at execution once the target
    /// resolved to `canonical` —; the attack must not be ignored, so the
    /// host escalates, once per rule and account per hour (keyed by the
    /// canonical id when known, so cycling through an account's names
    /// raises one escalation, not one per name).
    pub(super) fn escalate_protected(
        &mut self,
        rule: &str,
        event: &Event,
        action: &Action,
        message: &str,
        canonical: Option<&str>,
    ) -> Result<()> {
        let target = action.target();
        let key = format!(
            "protected-escalation:{rule}:{}",
            canonical.unwrap_or(target).to_lowercase()
        );
        let now = now_ms();
        let store = self.executor.store();
        if let Some(last) = store.meta(&key)?.and_then(|v| v.parse::<i64>().ok())
            && now - last < PROTECTED_ESCALATION_COOLDOWN_MS
        {
            return Ok(());
        }
        store.set_meta(&key, &now.to_string(), now)?;
        let enforce = self
            .rules
            .find(rule)
            .is_some_and(|r| r.grant().mode == crate::config::Mode::Enforce);
        let what = if matches!(action, Action::BlockIp(_)) {
            "protected network address"
        } else {
            "protected account"
        };
        let mut details = vec![
            ("rule".into(), rule.to_owned()),
            ("target".into(), target.to_owned()),
        ];
        if let Some(id) = canonical.filter(|id| *id != target) {
            details.push(("resolved_id".into(), id.to_owned()));
        }
        details.push(("denied".into(), message.to_owned()));
        let escalation = Message {
            severity: Severity::High,
            summary: format!(
                "rule {rule} asked to {} {what} {target}; denied — investigate",
                action.kind().name()
            ),
            details,
        };
        self.host_escalation(
            rule,
            event,
            &format!("protected/{target}"),
            escalation,
            enforce,
        )
    }

    /// An escalation raised by the host on behalf of `rule`: audited with
    /// `origin: host`, executed when `execute` (the rule enforces), else a
    /// dry run. Not subject to the rule's grant or budgets.
    fn host_escalation(
        &mut self,
        rule: &str,
        event: &Event,
        reason: &str,
        message: Message,
        execute: bool,
    ) -> Result<()> {
        let action = Action::Escalate(message);
        let request = ActionRequest {
            action_id: action_id(&format!("vigil-host/{rule}/{reason}"), &event.id, &action),
            action,
            decision: if execute {
                GateDecision::Accepted
            } else {
                GateDecision::DryRun
            },
            origin_host: true,
        };
        self.append(action_entry(rule, event, &request))?;
        *self
            .stats
            .actions
            .entry(request.decision.name())
            .or_default() += 1;
        if execute {
            self.execute_accepted(rule, event, vec![request])?;
        }
        Ok(())
    }

    /// Marks pending approvals past their expiry `expired` (audited); they
    /// are never executed.
    pub fn expire_approvals(&mut self) -> Result<()> {
        let now = now_ms();
        let pending = self.executor.store().approvals("pending")?;
        for p in pending.into_iter().filter(|p| p.expires_ms <= now) {
            if self
                .executor
                .store()
                .decide_approval(&p.action_id, "expired", "expiry", now)?
            {
                self.append(
                    Entry::new("approval-expired")
                        .rule(&p.rule)
                        .event(&p.event_id)
                        .field("action_id", p.action_id.as_str())
                        .field("action", p.action.kind().name())
                        .field("target", p.action.target())
                        .field("expired", super::rfc3339(p.expires_ms)),
                )?;
            }
        }
        Ok(())
    }

    /// An operator approves a parked action: it goes through the policy
    /// gate again (the protected-account check, the rule's current mode,
    /// budgets and breaker all apply) and executes if accepted.
    pub fn approve(&mut self, action_id: &str, by: &str) -> Result<ApprovalOutcome> {
        let p = self.pending(action_id)?;
        let Some(rule) = self.rules.find(&p.rule) else {
            bail!(
                "approval {action_id}: rule {} is not loaded, so its grant cannot be checked again",
                p.rule
            );
        };
        let mut grant = rule.grant().clone();
        // Approved now: the gate must not park it again.
        grant.approval.clear();
        let gate = rule.gate().clone();
        let event = Arc::new(approval_event(&p));
        let decision = gate.decide(&grant, &p.action, &event);
        let now = now_ms();
        if !self
            .executor
            .store()
            .decide_approval(action_id, "approved", by, now)?
        {
            bail!("approval {action_id} was decided by someone else meanwhile");
        }
        self.append(approval_entry(&p, "approved", by))?;
        let request = ActionRequest {
            action_id: p.action_id.clone(),
            action: p.action.clone(),
            decision,
            origin_host: false,
        };
        self.append(action_entry(&p.rule, &event, &request))?;
        let decision_name = request.decision.name();
        *self.stats.actions.entry(decision_name).or_default() += 1;
        self.audit_breaker_changes(&event)?;
        if let GateDecision::Denied {
            reason: DenialReason::ProtectedTarget,
            message,
        } = &request.decision
        {
            let (action, message) = (request.action.clone(), message.clone());
            self.escalate_protected(&p.rule, &event, &action, &message, None)?;
        }
        let mut results = Vec::new();
        if request.decision == GateDecision::Accepted {
            // Only this action's results, not those of other executions
            // finishing meanwhile or of an escalation it raises.
            self.watched = Some((p.action_id.clone(), Vec::new()));
            let run = self
                .execute_accepted(&p.rule, &event, vec![request])
                // The operator waits for the result, also with a worker thread.
                .and_then(|()| self.drain_executions(true));
            results = self.watched.take().map(|(_, r)| r).unwrap_or_default();
            run?;
        } else {
            self.sync()?;
        }
        Ok(ApprovalOutcome {
            decision: decision_name,
            results,
        })
    }

    /// An operator rejects a parked action: it is never executed.
    pub fn reject_approval(&mut self, action_id: &str, by: &str) -> Result<()> {
        let p = self.pending(action_id)?;
        if !self
            .executor
            .store()
            .decide_approval(action_id, "rejected", by, now_ms())?
        {
            bail!("approval {action_id} was decided by someone else meanwhile");
        }
        self.append(approval_entry(&p, "rejected", by))?;
        self.sync()
    }

    /// Why `action_id` cannot be decided now (unknown, already decided,
    /// expired, its rule not loaded), or `None` when it can. Lets the
    /// admin API answer a refusal without treating it as a failure.
    pub fn approval_refusal(&mut self, action_id: &str) -> Result<Option<String>> {
        match self.pending(action_id) {
            Ok(p) if self.rules.find(&p.rule).is_none() => Ok(Some(format!(
                "approval {action_id}: rule {} is not loaded",
                p.rule
            ))),
            Ok(_) => Ok(None),
            Err(e) => Ok(Some(format!("{e:#}"))),
        }
    }

    /// A pending, unexpired approval (an expired one is marked so first).
    fn pending(&mut self, action_id: &str) -> Result<PendingApproval> {
        self.expire_approvals()?;
        let p = self
            .executor
            .store()
            .approval(action_id)?
            .with_context(|| format!("no approval {action_id}"))?;
        if p.state != "pending" {
            let by = if p.decided_by.is_empty() {
                String::new()
            } else {
                format!(" by {}", p.decided_by)
            };
            bail!(
                "approval {action_id} is {}{by}; only pending ones can be decided",
                p.state
            );
        }
        Ok(p)
    }

    /// An operator resets a rule's breaker: it enforces again.
    pub fn reset_breaker(&mut self, rule: &str, by: &str) -> Result<bool> {
        let Some(gate) = self.rules.gate() else {
            return Ok(false);
        };
        if !gate.budgets().reset(rule, by) {
            return Ok(false);
        }
        self.audit_breaker_changes(&operator_event())?;
        self.sync()?;
        Ok(true)
    }
}

/// A parked action as chat is asked to decide it.
pub(super) fn approval_request(p: &PendingApproval) -> crate::chat::ApprovalRequest {
    crate::chat::ApprovalRequest {
        action_id: p.action_id.clone(),
        rule: p.rule.clone(),
        event_id: p.event_id.clone(),
        action: p.action.kind().name(),
        target: p.action.target().to_owned(),
        expires_ms: p.expires_ms,
    }
}

/// An operator's decision on a parked action, as audited.
fn approval_entry(p: &PendingApproval, decision: &str, by: &str) -> Entry {
    Entry::new("approval")
        .rule(&p.rule)
        .event(&p.event_id)
        .field("action_id", p.action_id.as_str())
        .field("action", p.action.kind().name())
        .field("target", p.action.target())
        .field("decision", decision)
        .field("by", by)
}

/// The event an approval is re-checked against: the principals that named
/// the target when the request was made.
fn approval_event(p: &PendingApproval) -> Event {
    let mut event = Event::new(&p.event_id, &p.event_source, "vigil.approval", p.created_ms);
    event.targets = p
        .aliases
        .iter()
        .map(|(id, login)| Principal {
            id: id.clone(),
            kind: "User".into(),
            login: login.clone(),
            display_name: None,
        })
        .collect();
    event
}

/// The stand-in event of an operator's change (no identity event caused
/// it).
fn operator_event() -> Event {
    Event::new("", "", "vigil.operator", 0)
}
