//! Host-side bindings for the `vigil:rule@0.1.0` world, generated from `wit/`.
//!
//! The state and actions interfaces are trappable: a rule that exceeds its
//! state limits (keys, entries, value size) or its per-call output caps
//! (action requests, audit bytes) traps with a message naming the limit,
//! which the host audits as a rule fault.

wasmtime::component::bindgen!({
    world: "rule",
    path: "../wit/since_v0.1.0",
    imports: {
        "vigil:rule/state": trappable,
        "vigil:rule/actions": trappable,
    },
});

// `Event`, `Finding` and `Metadata` are already in scope: the world uses them.
pub use vigil::rule::types::{
    Action, ActionKind, BlockIp, Decision, Denial, DenialReason, EventClass, Geo, GroupMembership,
    Message, Outcome, Principal, Receipt, Severity, SuspendUser,
};

/// The WIT package version this host implements, as it appears in the
/// component's import names (`vigil:rule/actions@0.1.0`).
pub const WIT_PACKAGE: &str = "vigil:rule";
pub const WIT_VERSION: &str = "0.1.0";

impl ActionKind {
    /// Every action kind, in WIT order.
    pub const ALL: [ActionKind; 8] = [
        ActionKind::SuspendUser,
        ActionKind::RevokeSessions,
        ActionKind::ResetFactors,
        ActionKind::ActivatePolicy,
        ActionKind::AddToGroup,
        ActionKind::BlockIp,
        ActionKind::Notify,
        ActionKind::Escalate,
    ];

    /// The WIT (and configuration, and audit log) name: `suspend-user`, …
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::SuspendUser => "suspend-user",
            ActionKind::RevokeSessions => "revoke-sessions",
            ActionKind::ResetFactors => "reset-factors",
            ActionKind::ActivatePolicy => "activate-policy",
            ActionKind::AddToGroup => "add-to-group",
            ActionKind::BlockIp => "block-ip",
            ActionKind::Notify => "notify",
            ActionKind::Escalate => "escalate",
        }
    }

    pub fn from_name(name: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the action is taken against a user account, so protected
    /// accounts must be checked.
    pub fn targets_user(self) -> bool {
        matches!(
            self,
            ActionKind::SuspendUser
                | ActionKind::RevokeSessions
                | ActionKind::ResetFactors
                | ActionKind::AddToGroup
        )
    }
}

impl Event {
    /// An event with only its identity set (no principals, unknown
    /// outcome, nothing else): for the events the host makes itself
    /// (approvals, operator changes) and for tests.
    pub fn new(id: &str, source: &str, kind: &str, time: i64) -> Event {
        Event {
            id: id.to_owned(),
            source: source.to_owned(),
            kind: kind.to_owned(),
            class: EventClass::Other,
            time,
            actor: None,
            targets: Vec::new(),
            outcome: Outcome::Unknown,
            outcome_reason: None,
            client_ip: None,
            geo: None,
            user_agent: None,
            factor: None,
            attributes: Vec::new(),
        }
    }
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::SuspendUser(_) => ActionKind::SuspendUser,
            Action::RevokeSessions(_) => ActionKind::RevokeSessions,
            Action::ResetFactors(_) => ActionKind::ResetFactors,
            Action::ActivatePolicy(_) => ActionKind::ActivatePolicy,
            Action::AddToGroup(_) => ActionKind::AddToGroup,
            Action::BlockIp(_) => ActionKind::BlockIp,
            Action::Notify(_) => ActionKind::Notify,
            Action::Escalate(_) => ActionKind::Escalate,
        }
    }

    /// What the action is taken against: a user, a policy, an IP, or for
    /// messages the channel (`notify` / `on-call`).
    pub fn target(&self) -> &str {
        match self {
            Action::SuspendUser(s) => &s.user,
            Action::RevokeSessions(u) | Action::ResetFactors(u) => u,
            Action::ActivatePolicy(p) => p,
            Action::AddToGroup(g) => &g.user,
            Action::BlockIp(b) => &b.ip,
            Action::Notify(_) => "notify",
            Action::Escalate(_) => "on-call",
        }
    }
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn from_name(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}
