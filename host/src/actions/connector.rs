//! What every connector implements, and the errors it reports.
//!
//! A connector turns one typed [`Action`] into calls to one system (Okta,
//! Microsoft Graph, a webhook). It knows nothing of rules, modes or the
//! audit log: the policy gate has decided before it is called, and the
//! [`crate::executor::ActionExecutor`] audits what it returns.

use serde::{Deserialize, Serialize};

use crate::model::baseline::{AppSignIn, PolicyObject};
use crate::model::{Action, ActionKind};

/// Where an accepted action comes from; connectors put parts of it in what
/// they send (webhook bodies, PagerDuty dedup keys).
#[derive(Clone, Copy, Debug)]
pub struct ActionContext<'a> {
    /// The idempotency key: rule, event id, action kind and target, hashed.
    pub action_id: &'a str,
    pub rule: &'a str,
    pub event_id: &'a str,
    /// The event's source (`okta`, `entra`): picks the identity provider.
    pub event_source: &'a str,
}

/// A successful execution.
#[derive(Clone, Debug, PartialEq)]
pub struct Executed {
    /// What was done, for the audit log (no secrets).
    pub detail: String,
    /// How to reverse it when the action had a duration.
    pub undo: Option<Undo>,
}

impl Executed {
    pub fn done(detail: impl Into<String>) -> Self {
        Executed {
            detail: detail.into(),
            undo: None,
        }
    }
}

/// The reversal of a temporary action, as kept in the durable store until
/// it is due (a restore's until an operator asks: `executor::ON_DEMAND_MS`).
/// The connector that did the action performs the undo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum Undo {
    /// Reverse `suspend-user` (Okta unsuspend; Graph `accountEnabled: true`).
    Unsuspend { user: String },
    /// Reverse `block-ip` (remove the address from the blocklist zone or
    /// named location).
    Unblock { ip: String },
    /// Reverse `restore-policy`: write the policy back as it was just
    /// before the restore (the executor does the read, write and re-read:
    /// `crate::executor`). Kept until an operator asks for it.
    RestorePolicy {
        policy: String,
        previous: Box<PolicyObject>,
    },
}

impl Undo {
    /// The action kind this undo reverses, for the audit log.
    pub fn reverses(&self) -> ActionKind {
        match self {
            Undo::Unsuspend { .. } => ActionKind::SuspendUser,
            Undo::Unblock { .. } => ActionKind::BlockIp,
            Undo::RestorePolicy { .. } => ActionKind::RestorePolicy,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Undo::Unsuspend { .. } => "unsuspend-user",
            Undo::Unblock { .. } => "unblock-ip",
            Undo::RestorePolicy { .. } => "unrestore-policy",
        }
    }

    pub fn target(&self) -> &str {
        match self {
            Undo::Unsuspend { user } => user,
            Undo::Unblock { ip } => ip,
            Undo::RestorePolicy { policy, .. } => policy,
        }
    }
}

/// One user in a directory group, as [`Connector::group_members`] lists it
/// (protected accounts by group membership; also the store's cache format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The directory's user id (Okta `00u…`, Entra object id).
    pub id: String,
    /// The sign-in name (Okta `profile.login`, Entra `userPrincipalName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
}

impl GroupMember {
    /// A member from a vendor's user object: a non-empty `id`, and the
    /// login found at `login_pointer` (a JSON pointer), if any.
    pub fn from_user(user: &serde_json::Value, login_pointer: &str) -> Option<GroupMember> {
        let id = user
            .get("id")
            .and_then(serde_json::Value::as_str)
            .filter(|id| !id.is_empty())?;
        let login = user
            .pointer(login_pointer)
            .and_then(serde_json::Value::as_str)
            .filter(|l| !l.is_empty())
            .map(str::to_owned);
        Some(GroupMember {
            id: id.to_owned(),
            login,
        })
    }
}

/// A user as the directory knows them ([`Connector::resolve_user`]): the
/// canonical id, and every other name the directory accepts for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    /// The directory's own id (Okta `00u…`, Entra object id): the only
    /// name sent to the identity provider afterwards.
    pub id: String,
    /// Logins, e-mail addresses, UPNs, proxy addresses (as the directory
    /// spells them, de-duplicated case-insensitively, without the id).
    pub names: Vec<String>,
}

impl ResolvedUser {
    /// A user with id `id` and the non-empty `names` (duplicates, in any
    /// case, and the id itself dropped).
    pub fn new(id: impl Into<String>, names: impl IntoIterator<Item = String>) -> Self {
        let id = id.into();
        let mut kept: Vec<String> = Vec::new();
        for name in names {
            let name = name.trim();
            if name.is_empty()
                || name.eq_ignore_ascii_case(&id)
                || kept.iter().any(|k| k.eq_ignore_ascii_case(name))
            {
                continue;
            }
            kept.push(name.to_owned());
        }
        ResolvedUser { id, names: kept }
    }
}

/// What [`Connector::resolve_user`] found out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserLookup {
    /// The directory knows the user.
    Found(ResolvedUser),
    /// This connector has no directory and changes nothing outside Vigil
    /// (`log`): the name is used as given.
    NoDirectory,
}

/// Most members a group listing returns; a bigger group is refused. A
/// protected-accounts group that large is a misconfiguration (an "all
/// staff" group listed by mistake would exempt everyone from remediation).
pub const MAX_GROUP_MEMBERS: usize = 10_000;

/// Most pages a group listing follows (a server that keeps answering with
/// a next link, or with pages thinned out by a type filter, is stopped).
pub const MAX_GROUP_PAGES: usize = 200;

/// A failed call, as audited: the HTTP status and the vendor's error code
/// and summary when there was a response, trimmed and with secrets removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorError {
    pub status: Option<u16>,
    pub vendor_code: Option<String>,
    pub message: String,
    /// HTTP attempts made (0 when nothing was sent).
    pub attempts: u32,
}

impl ConnectorError {
    /// An error raised before anything was sent (bad target, missing
    /// configuration).
    pub fn refused(message: impl Into<String>) -> Self {
        ConnectorError {
            status: None,
            vendor_code: None,
            message: message.into(),
            attempts: 0,
        }
    }
}

impl ConnectorError {
    /// A group listing stopped at [`MAX_GROUP_MEMBERS`] after `requests`
    /// requests.
    pub fn group_too_large(connector: &str, group: &str, requests: u32) -> Self {
        ConnectorError {
            status: None,
            vendor_code: None,
            message: format!(
                "{connector} group {group} has more than {MAX_GROUP_MEMBERS} members; a protected \
                 group that large is a misconfiguration (protect a dedicated break-glass or \
                 service-account group, not a department or everyone)"
            ),
            attempts: requests,
        }
    }
}

impl std::fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(status) = self.status {
            write!(f, "HTTP {status}")?;
            if let Some(code) = &self.vendor_code {
                write!(f, " {code}")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)?;
        match self.attempts {
            0 => Ok(()),
            1 => write!(f, " (1 attempt)"),
            n => write!(f, " ({n} attempts)"),
        }
    }
}

impl std::error::Error for ConnectorError {}

/// One connector: carries out actions against one system.
pub trait Connector: Send {
    /// The connector's name in config and in the audit log (`okta`,
    /// `graph`, `log`, or a webhook's name).
    fn name(&self) -> &str;

    /// Whether this connector can carry out `kind` at all.
    fn supports(&self, kind: ActionKind) -> bool;

    /// The event source (`okta`, `entra`) whose users live in this
    /// connector's directory: identity actions on that source's events go
    /// here by default, so a user id is only ever sent to the directory
    /// that issued it. `None` (the default) for connectors without a
    /// directory, which take `notify` / `escalate` by default instead.
    fn directory_for(&self) -> Option<&'static str> {
        None
    }

    /// Carries out one accepted action.
    fn execute(
        &mut self,
        action: &Action,
        ctx: &ActionContext<'_>,
    ) -> Result<Executed, ConnectorError>;

    /// Reverses a temporary action this connector performed.
    fn undo(&mut self, undo: &Undo) -> Result<String, ConnectorError>;

    /// Checks credentials and reachability without changing anything;
    /// returns one line per thing verified.
    fn check(&mut self) -> Result<Vec<String>, ConnectorError>;

    /// Lists the users in `group` (a directory group id), for protected
    /// accounts by group membership (`[protected] groups`). Read-only; at
    /// most [`MAX_GROUP_MEMBERS`], more is an error. Connectors without a
    /// directory refuse.
    fn group_members(&mut self, group: &str) -> Result<Vec<GroupMember>, ConnectorError> {
        let _ = group;
        Err(ConnectorError::refused(format!(
            "{} cannot list group members",
            self.name()
        )))
    }

    /// The connector's access to the identity provider's MFA
    /// configuration, when it has one (`okta`, `graph`); `None` (the
    /// default) otherwise.
    fn mfa(&mut self) -> Option<&mut dyn MfaConfig> {
        None
    }

    /// Looks a user up by any name the directory accepts for them (id,
    /// login, shortname, e-mail, UPN) and returns the canonical id and all
    /// their names, so the protected registry can be checked against every
    /// one of them before a user action is sent. Read-only. A connector
    /// that cannot look users up refuses, and the action is then not sent
    /// (see `policy::targets`); only one that changes nothing outside
    /// Vigil answers [`UserLookup::NoDirectory`].
    fn resolve_user(&mut self, user: &str) -> Result<UserLookup, ConnectorError> {
        let _ = user;
        Err(ConnectorError::refused(format!(
            "{} cannot look users up, so the target cannot be checked against the protected \
             accounts under all its names",
            self.name()
        )))
    }
}

/// What a connector to an identity provider offers for its MFA
/// configuration: read it (`vigil baseline`), read and write one policy
/// (`restore-policy`, whose read, write and re-read the executor drives),
/// and how an application is signed in to (`assign-app-policy` and the
/// application checks). All reads change nothing.
pub trait MfaConfig {
    /// The MFA-relevant configuration (`crate::model::baseline`).
    fn mfa_config(&mut self) -> Result<Vec<PolicyObject>, ConnectorError>;

    /// One policy `restore-policy` can write back (an Okta policy with its
    /// rules, an Entra conditional access policy); `None` when it does not
    /// exist.
    fn read_policy(&mut self, id: &str) -> Result<Option<PolicyObject>, ConnectorError>;

    /// Makes the policy `current` (as just read) equal to `target` (the
    /// same policy as a baseline holds it), writing only what differs.
    /// Returns one `METHOD path → status` line per request. The caller
    /// re-reads the policy to confirm.
    fn write_policy(
        &mut self,
        current: &PolicyObject,
        target: &PolicyObject,
    ) -> Result<Vec<String>, ConnectorError>;

    /// How `app` is signed in to: the policies that decide whether it asks
    /// for MFA.
    fn app_sign_in(&mut self, app: &str) -> Result<AppSignIn, ConnectorError>;
}
