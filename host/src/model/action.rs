//! What a rule reports and asks for, and what the policy gate answers.

/// The kinds of action a rule may ask for, as declared in its metadata and
/// granted in the operator's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionKind {
    SuspendUser,
    RevokeSessions,
    ResetFactors,
    ActivatePolicy,
    AddToGroup,
    BlockIp,
    Notify,
    Escalate,
    RestorePolicy,
    AssignAppPolicy,
}

impl ActionKind {
    /// Every action kind, in WIT order.
    pub const ALL: [ActionKind; 10] = [
        ActionKind::SuspendUser,
        ActionKind::RevokeSessions,
        ActionKind::ResetFactors,
        ActionKind::ActivatePolicy,
        ActionKind::AddToGroup,
        ActionKind::BlockIp,
        ActionKind::Notify,
        ActionKind::Escalate,
        ActionKind::RestorePolicy,
        ActionKind::AssignAppPolicy,
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
            ActionKind::RestorePolicy => "restore-policy",
            ActionKind::AssignAppPolicy => "assign-app-policy",
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
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

/// What a rule reports. The pipeline stamps the rule id and event id.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    pub title: String,
    /// Who or what the finding is about (a user id, an IP, a policy id).
    pub subject: String,
    pub details: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SuspendUser {
    pub user: String,
    /// Undo (unsuspend) after this many seconds; `None`: until a human acts.
    pub duration_secs: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupMembership {
    pub user: String,
    pub group: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BlockIp {
    pub ip: String,
    /// Remove the block after this many seconds; `None`: permanent.
    pub duration_secs: Option<u64>,
}

/// An application and the sign-in policy to put it under.
#[derive(Clone, Debug, PartialEq)]
pub struct AppPolicy {
    pub app: String,
    pub policy: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub severity: Severity,
    pub summary: String,
    pub details: Vec<(String, String)>,
}

/// A remediation request, typed so the gate and the audit log know exactly
/// what is asked and against whom.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    SuspendUser(SuspendUser),
    /// The user whose sessions (and OAuth tokens) are revoked.
    RevokeSessions(String),
    /// The user whose factors are reset.
    ResetFactors(String),
    /// The policy (or conditional access policy) id to re-activate.
    ActivatePolicy(String),
    AddToGroup(GroupMembership),
    BlockIp(BlockIp),
    Notify(Message),
    Escalate(Message),
    /// The policy (Okta policy, Entra conditional access policy) id to write
    /// back as the approved MFA baseline holds it.
    RestorePolicy(String),
    AssignAppPolicy(AppPolicy),
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
            Action::RestorePolicy(_) => ActionKind::RestorePolicy,
            Action::AssignAppPolicy(_) => ActionKind::AssignAppPolicy,
        }
    }

    /// What the action is taken against: a user, a policy, an IP, or for
    /// messages the channel (`notify` / `on-call`).
    pub fn target(&self) -> &str {
        match self {
            Action::SuspendUser(s) => &s.user,
            Action::RevokeSessions(u) | Action::ResetFactors(u) => u,
            Action::ActivatePolicy(p) | Action::RestorePolicy(p) => p,
            Action::AssignAppPolicy(a) => &a.app,
            Action::AddToGroup(g) => &g.user,
            Action::BlockIp(b) => &b.ip,
            Action::Notify(_) => "notify",
            Action::Escalate(_) => "on-call",
        }
    }
}

/// What the gate made of a granted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Granted and in enforce mode: handed to the executor.
    Accepted,
    /// Granted, but the rule runs audit-only: recorded, not executed.
    DryRun,
    /// Granted, parked until an operator approves it.
    PendingApproval,
    /// The same request was already made.
    Duplicate,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    /// Id of the action in the audit log.
    pub action_id: String,
    pub decision: Decision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DenialReason {
    /// The operator did not grant this action kind to this rule.
    NotGranted,
    /// The target is a protected account.
    ProtectedTarget,
    /// A blast-radius budget is used up.
    BudgetExceeded,
    /// The request is malformed (empty target, invalid IP, …).
    Invalid,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Denial {
    pub reason: DenialReason,
    pub message: String,
}
