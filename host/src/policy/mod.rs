//! The policy gate: the one place that decides whether a rule's action
//! request may go ahead.
//!
//! Checks, in order, each ending the decision when it fails:
//! 1. the rule declared the action kind in its metadata (a rule cannot ask
//!    for more than it advertised to the operator);
//! 2. the operator granted the kind to the rule (`allow`; default deny);
//! 3. the request is well-formed (non-empty target, a real IP, sane
//!    duration);
//! 4. its arguments are granted ([`arguments`]): the group of
//!    `add-to-group` is in the rule's `groups`, the policy of
//!    `activate-policy` in its `policies` (or named by the event);
//! 5. the target is not protected — a protected account (under any name
//!    the event gives it), or for `block-ip` an address in a protected
//!    network — whatever the grant says;
//! 6. the rule's mode: `audit-only` records `dry-run`;
//! 7. the blast-radius budgets ([`budget`]): over a limit → `denied`
//!    (`budget`) and the rule's breaker trips;
//! 8. a tripped breaker holds the rule in audit-only (`dry-run`);
//! 9. kinds the operator wants to approve are parked (`pending`);
//! 10. otherwise `accepted` for execution, and counted against the budgets.
//!
//! The gate reads the request, the rule's grant and the current event; its
//! only state is the budgets (shared by every rule). Auditing and executing
//! are the caller's steps, in that order. Rules cannot read or change
//! anything here.
//!
//! The gate cannot know every name an identity provider accepts for a
//! user, and must not wait for one during a rule's call; so an accepted
//! user action is checked once more just before it is sent (and again
//! when an approved one is): [`targets`] resolves the target through the
//! connector and checks every name of the account.

pub mod arguments;
pub mod budget;
mod groups;
mod protected;
pub mod targets;

pub use arguments::{Allowed, ArgumentGrants};
pub use budget::Budgets;
pub use groups::GroupResolver;
pub use protected::ProtectedAccounts;
pub use targets::TargetGuard;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Mode;
use crate::model::{Action, ActionKind, DenialReason, Event};

/// Longest duration a temporary action may ask for (30 days).
pub const MAX_DURATION_SECS: u64 = 30 * 24 * 3600;
/// Longest target or message summary accepted, in bytes.
const MAX_TEXT_LEN: usize = 4096;

/// What one rule may do, fixed when it is loaded.
#[derive(Clone, Debug)]
pub struct RuleGrant {
    pub rule_id: String,
    pub mode: Mode,
    /// Kinds the operator granted.
    pub granted: Vec<ActionKind>,
    /// Kinds the rule's metadata declares.
    pub declared: Vec<ActionKind>,
    /// Kinds parked for an operator's approval.
    pub approval: Vec<ActionKind>,
    /// The rule's own budget overrides (action kind → limit).
    pub budget: BTreeMap<String, u32>,
    /// Which groups and policies its actions may name.
    pub args: ArgumentGrants,
}

/// The gate's answer to one request.
#[derive(Clone, Debug, PartialEq)]
pub enum GateDecision {
    /// Enforce mode: execute it.
    Accepted,
    /// Audit-only mode: record it, execute nothing.
    DryRun,
    /// The rule's breaker is tripped: held in audit-only.
    HeldByBreaker,
    /// Parked until an operator approves it.
    PendingApproval,
    Denied {
        reason: DenialReason,
        message: String,
    },
}

impl GateDecision {
    /// The decision as written in the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            GateDecision::Accepted => "accepted",
            GateDecision::DryRun | GateDecision::HeldByBreaker => "dry-run",
            GateDecision::PendingApproval => "pending",
            GateDecision::Denied { .. } => "denied",
        }
    }

    /// The short reason written in the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            GateDecision::Accepted => "granted; enforce mode",
            GateDecision::DryRun => "granted; audit-only mode",
            GateDecision::HeldByBreaker => "granted; breaker tripped, held in audit-only",
            GateDecision::PendingApproval => "granted; awaiting approval",
            GateDecision::Denied { reason, .. } => denial_reason_name(*reason),
        }
    }
}

pub fn denial_reason_name(reason: DenialReason) -> &'static str {
    match reason {
        DenialReason::NotGranted => "not-granted",
        DenialReason::ProtectedTarget => "protected",
        DenialReason::BudgetExceeded => "budget",
        DenialReason::Invalid => "invalid",
    }
}

/// Decides action requests for every rule.
#[derive(Clone, Debug, Default)]
pub struct PolicyGate {
    protected: ProtectedAccounts,
    budgets: Arc<Mutex<Budgets>>,
    /// How long a parked action waits for an operator.
    approval_expiry_ms: i64,
    /// A cluster takeover is replaying events to rebuild rule state: every
    /// request is answered dry-run, nothing counted (see
    /// `crate::cluster::consume`).
    replaying: Arc<std::sync::atomic::AtomicBool>,
}

impl PolicyGate {
    pub fn new(protected: ProtectedAccounts, budgets: Budgets) -> Self {
        PolicyGate {
            protected,
            budgets: Arc::new(Mutex::new(budgets)),
            approval_expiry_ms: 24 * 3_600_000,
            replaying: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// While `true`, every request is answered dry-run without being
    /// counted against budgets (a takeover's replay).
    pub fn set_replaying(&self, replaying: bool) {
        self.replaying
            .store(replaying, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets how long parked actions wait (`[approvals] expire_secs`).
    pub fn with_approval_expiry(mut self, secs: u64) -> Self {
        self.approval_expiry_ms = secs as i64 * 1000;
        self
    }

    pub fn approval_expiry_ms(&self) -> i64 {
        self.approval_expiry_ms
    }

    pub fn protected(&self) -> &ProtectedAccounts {
        &self.protected
    }

    /// The budgets and breakers (the pipeline persists their changes and
    /// resets breakers).
    pub fn budgets(&self) -> MutexGuard<'_, Budgets> {
        // A panic while holding the lock cannot leave the counts half
        // written in a way that matters more than refusing to go on.
        self.budgets.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn decide(&self, grant: &RuleGrant, action: &Action, event: &Event) -> GateDecision {
        if self.replaying.load(std::sync::atomic::Ordering::SeqCst) {
            return GateDecision::DryRun;
        }
        let kind = action.kind();
        if !grant.declared.contains(&kind) {
            return denied(
                DenialReason::NotGranted,
                format!(
                    "rule {} did not declare action {} in its metadata",
                    grant.rule_id,
                    kind.name()
                ),
            );
        }
        if !grant.granted.contains(&kind) {
            return denied(
                DenialReason::NotGranted,
                format!(
                    "action {} is not granted to rule {} (add it to the rule's `allow` list)",
                    kind.name(),
                    grant.rule_id
                ),
            );
        }
        if let Err(message) = validate(action) {
            return denied(DenialReason::Invalid, message);
        }
        if let Err(message) = grant.args.check(action, event) {
            return denied(DenialReason::NotGranted, message);
        }
        if kind.targets_user()
            && let Some(matched) = self.protected.matches(action.target(), event)
        {
            return denied(
                DenialReason::ProtectedTarget,
                format!(
                    "{} is a protected account ({matched}); {} is never applied to it",
                    action.target(),
                    kind.name()
                ),
            );
        }
        if let Action::BlockIp(b) = action
            && let Some(matched) = self.protected.matches_network(&b.ip)
        {
            return denied(
                DenialReason::ProtectedTarget,
                format!(
                    "{} is in a protected network ({matched}); block-ip is never applied to it",
                    b.ip
                ),
            );
        }
        if grant.mode == Mode::AuditOnly {
            return GateDecision::DryRun;
        }
        // Budgets count wall-clock time (see `budget`).
        let now_ms = crate::clock::now_ms();
        let mut budgets = self.budgets();
        let limit = budgets.config().rule_limit(kind, &grant.budget);
        if let Err(message) = budgets.check(&grant.rule_id, kind, limit, now_ms) {
            budgets.trip(&grant.rule_id, &message, now_ms);
            return denied(DenialReason::BudgetExceeded, message);
        }
        if budgets.tripped(&grant.rule_id, now_ms).is_some() {
            return GateDecision::HeldByBreaker;
        }
        if grant.approval.contains(&kind) {
            return GateDecision::PendingApproval;
        }
        budgets.consume(&grant.rule_id, kind, now_ms);
        GateDecision::Accepted
    }
}

fn denied(reason: DenialReason, message: String) -> GateDecision {
    GateDecision::Denied { reason, message }
}

fn validate(action: &Action) -> Result<(), String> {
    let target = action.target();
    if target.trim().is_empty() {
        return Err(format!("{}: empty target", action.kind().name()));
    }
    if target.len() > MAX_TEXT_LEN {
        return Err(format!(
            "{}: target longer than {MAX_TEXT_LEN} bytes",
            action.kind().name()
        ));
    }
    let duration = match action {
        Action::SuspendUser(s) => s.duration_secs,
        Action::BlockIp(b) => {
            if b.ip.parse::<IpAddr>().is_err() {
                return Err(format!("block-ip: {:?} is not an IP address", b.ip));
            }
            b.duration_secs
        }
        Action::AddToGroup(g) if g.group.trim().is_empty() => {
            return Err("add-to-group: empty group".into());
        }
        Action::AssignAppPolicy(a) if a.policy.trim().is_empty() => {
            return Err("assign-app-policy: empty policy".into());
        }
        Action::Notify(m) | Action::Escalate(m) => {
            if m.summary.trim().is_empty() || m.summary.len() > MAX_TEXT_LEN {
                return Err(format!(
                    "{}: summary must be 1 to {MAX_TEXT_LEN} bytes",
                    action.kind().name()
                ));
            }
            None
        }
        _ => None,
    };
    match duration {
        Some(0) => Err(format!("{}: duration of 0 seconds", action.kind().name())),
        Some(d) if d > MAX_DURATION_SECS => Err(format!(
            "{}: duration of {d} s exceeds the maximum of {MAX_DURATION_SECS} s",
            action.kind().name()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protected;
    use crate::model::{BlockIp, EventClass, GroupMembership, Outcome, Principal, SuspendUser};

    fn event_for(user_id: &str, login: &str) -> Event {
        Event {
            class: EventClass::MfaChallenge,
            actor: Some(Principal {
                id: user_id.into(),
                kind: "User".into(),
                login: Some(login.into()),
                display_name: None,
            }),
            outcome: Outcome::Failure,
            ..Event::new("e1", "okta", "user.mfa.okta_verify.deny_push", 0)
        }
    }

    fn grant(mode: Mode, granted: &[ActionKind]) -> RuleGrant {
        RuleGrant {
            rule_id: "r".into(),
            mode,
            granted: granted.to_vec(),
            declared: vec![
                ActionKind::SuspendUser,
                ActionKind::BlockIp,
                ActionKind::Escalate,
                ActionKind::AddToGroup,
                ActionKind::ActivatePolicy,
            ],
            approval: Vec::new(),
            budget: BTreeMap::new(),
            args: ArgumentGrants::none("rules[2]"),
        }
    }

    fn suspend(user: &str) -> Action {
        Action::SuspendUser(SuspendUser {
            user: user.into(),
            duration_secs: Some(1800),
        })
    }

    fn gate() -> PolicyGate {
        PolicyGate::new(
            ProtectedAccounts::new(&Protected {
                ids: vec!["00ubreakglass1".into()],
                logins: vec!["svc-*@example.com".into()],
                networks: vec![
                    "198.51.100.0/24".parse().unwrap(),
                    "2001:db8:e::/48".parse().unwrap(),
                ],
                ..Protected::default()
            }),
            Budgets::default(),
        )
    }

    #[test]
    fn granted_action_follows_the_mode() {
        let e = event_for("00u1", "a@example.com");
        let g = gate();
        assert_eq!(
            g.decide(
                &grant(Mode::AuditOnly, &[ActionKind::SuspendUser]),
                &suspend("00u1"),
                &e
            ),
            GateDecision::DryRun
        );
        assert_eq!(
            g.decide(
                &grant(Mode::Enforce, &[ActionKind::SuspendUser]),
                &suspend("00u1"),
                &e
            ),
            GateDecision::Accepted
        );
    }

    #[test]
    fn ungranted_action_is_denied_naming_it() {
        let e = event_for("00u1", "a@example.com");
        let d = gate().decide(
            &grant(Mode::Enforce, &[ActionKind::Escalate]),
            &suspend("00u1"),
            &e,
        );
        let GateDecision::Denied { reason, message } = d else {
            panic!("{d:?}")
        };
        assert_eq!(reason, DenialReason::NotGranted);
        assert!(
            message.contains("suspend-user") && message.contains("allow"),
            "{message}"
        );
    }

    #[test]
    fn undeclared_action_is_denied_even_when_granted() {
        let e = event_for("00u1", "a@example.com");
        let mut gr = grant(Mode::Enforce, &[ActionKind::ResetFactors]);
        gr.declared = vec![ActionKind::Escalate];
        let d = gate().decide(&gr, &Action::ResetFactors("00u1".into()), &e);
        assert!(
            matches!(d, GateDecision::Denied { reason: DenialReason::NotGranted, ref message } if message.contains("did not declare"))
        );
    }

    #[test]
    fn protected_id_is_never_suspended() {
        let e = event_for("00ubreakglass1", "bg@example.com");
        let d = gate().decide(
            &grant(Mode::Enforce, &[ActionKind::SuspendUser]),
            &suspend("00ubreakglass1"),
            &e,
        );
        assert_eq!(d.reason(), "protected");
    }

    #[test]
    fn protected_login_pattern_matches_through_the_event_alias() {
        // The rule targets the user id; the pattern names the login. The
        // event says which login that id has.
        let e = event_for("00usvc42", "SVC-backup@example.com");
        let d = gate().decide(
            &grant(Mode::Enforce, &[ActionKind::SuspendUser]),
            &suspend("00usvc42"),
            &e,
        );
        assert_eq!(d.reason(), "protected");
    }

    #[test]
    fn invalid_ip_and_durations_are_refused() {
        let e = event_for("00u1", "a@example.com");
        let g = gate();
        let gr = grant(
            Mode::Enforce,
            &[ActionKind::BlockIp, ActionKind::SuspendUser],
        );
        let bad_ip = Action::BlockIp(BlockIp {
            ip: "not-an-ip".into(),
            duration_secs: None,
        });
        assert_eq!(g.decide(&gr, &bad_ip, &e).reason(), "invalid");
        let zero = Action::SuspendUser(SuspendUser {
            user: "00u1".into(),
            duration_secs: Some(0),
        });
        assert_eq!(g.decide(&gr, &zero, &e).reason(), "invalid");
        let empty = suspend(" ");
        assert_eq!(g.decide(&gr, &empty, &e).reason(), "invalid");
    }

    #[test]
    fn ip_actions_are_not_checked_against_accounts() {
        let e = event_for("00ubreakglass1", "bg@example.com");
        let gr = grant(Mode::Enforce, &[ActionKind::BlockIp]);
        let block = Action::BlockIp(BlockIp {
            ip: "203.0.113.9".into(),
            duration_secs: Some(3600),
        });
        assert_eq!(gate().decide(&gr, &block, &e), GateDecision::Accepted);
    }

    fn denial(d: GateDecision) -> (DenialReason, String) {
        match d {
            GateDecision::Denied { reason, message } => (reason, message),
            other => panic!("not denied: {other:?}"),
        }
    }

    #[test]
    fn add_to_group_is_limited_to_the_granted_groups() {
        let e = event_for("00u1", "a@example.com");
        let mut gr = grant(Mode::Enforce, &[ActionKind::AddToGroup]);
        gr.args.groups = Allowed::Only(vec!["00g1mfaremediation".into()]);
        let add = |group: &str| {
            Action::AddToGroup(GroupMembership {
                user: "00u1".into(),
                group: group.into(),
            })
        };
        assert_eq!(
            gate().decide(&gr, &add("00g1mfaremediation"), &e),
            GateDecision::Accepted
        );
        assert_eq!(
            denial(gate().decide(&gr, &add("00gadmins"), &e)),
            (
                DenialReason::NotGranted,
                "group 00gadmins is not in rules[2].groups".into()
            )
        );
    }

    #[test]
    fn activate_policy_is_limited_to_the_list_or_the_event() {
        let mut e = event_for("00u1", "a@example.com");
        e.targets.push(Principal {
            id: "00pweakened".into(),
            kind: "PolicyEntity".into(),
            login: None,
            display_name: None,
        });
        let mut gr = grant(Mode::Enforce, &[ActionKind::ActivatePolicy]);
        gr.args.policies = Allowed::FromEvent;
        let activate = |p: &str| Action::ActivatePolicy(p.into());
        assert_eq!(
            gate().decide(&gr, &activate("00pweakened"), &e),
            GateDecision::Accepted
        );
        let (reason, message) = denial(gate().decide(&gr, &activate("00pdenyall"), &e));
        assert_eq!(reason, DenialReason::NotGranted);
        assert!(
            message.starts_with("policy 00pdenyall is not a target of event e1"),
            "{message}"
        );
        gr.args.policies = Allowed::Only(vec!["00psignon".into()]);
        assert_eq!(
            denial(gate().decide(&gr, &activate("00pweakened"), &e)).1,
            "policy 00pweakened is not in rules[2].policies"
        );
        assert_eq!(
            gate().decide(&gr, &activate("00psignon"), &e),
            GateDecision::Accepted
        );
    }

    #[test]
    fn block_ip_never_touches_a_protected_network() {
        let e = event_for("00u1", "a@example.com");
        let gr = grant(Mode::Enforce, &[ActionKind::BlockIp]);
        let block = |ip: &str| {
            Action::BlockIp(BlockIp {
                ip: ip.into(),
                duration_secs: Some(600),
            })
        };
        for ip in ["198.51.100.7", "::ffff:198.51.100.7", "2001:db8:e:1::9"] {
            let (reason, message) = denial(gate().decide(&gr, &block(ip), &e));
            assert_eq!(reason, DenialReason::ProtectedTarget, "{ip}");
            assert!(
                message.contains("protected network") && message.contains(ip),
                "{message}"
            );
        }
        assert_eq!(
            gate().decide(&gr, &block("203.0.113.9"), &e),
            GateDecision::Accepted
        );
    }

    #[test]
    fn argument_denials_come_before_the_mode() {
        // An audit-only rule still learns its argument is not granted.
        let e = event_for("00u1", "a@example.com");
        let gr = grant(Mode::AuditOnly, &[ActionKind::AddToGroup]);
        let add = Action::AddToGroup(GroupMembership {
            user: "00u1".into(),
            group: "00gadmins".into(),
        });
        assert_eq!(
            denial(gate().decide(&gr, &add, &e)).0,
            DenialReason::NotGranted
        );
    }
}
