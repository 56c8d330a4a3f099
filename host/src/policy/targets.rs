//! The execution-time check of user targets: before a user action reaches
//! an identity provider, its target is resolved *through that provider* to
//! the canonical id and every name the directory knows (login, shortname,
//! e-mail addresses, UPN, proxy addresses), the protected registry is
//! checked against all of them, and the provider is sent only the
//! canonical id.
//!
//! Why: the gate sees only the name a rule wrote (and the names the event
//! gives), while Okta's and Graph's `/users/{id}` accept several names for
//! one account, so `bg.admin`, `BG.Admin@corp.example` or an alias address
//! could otherwise reach a protected account.
//!
//! Invariants:
//! - user actions are `suspend-user`, `revoke-sessions`, `reset-factors`
//!   and the member of `add-to-group`; every other action passes unchanged;
//! - fail closed: when the lookup fails (404, network error, 5xx after
//!   retries, a connector that cannot look users up) nothing is sent, and
//!   the result is `denied` (`unresolved`) with the error;
//! - a protected hit is `denied` (`protected`), nothing is sent, and the
//!   caller raises the same host escalation as a gate-time hit;
//! - the `log` connector has no directory and changes nothing outside
//!   Vigil: its target is used as given, and the result says no resolution
//!   was possible ([`Resolution::NoDirectory`]);
//! - the registry is consulted on every action (a group refresh applies at
//!   once); only lookups are cached.
//!
//! Cache: a successful lookup is reused for [`RESOLUTION_TTL`] (60 s) per
//! connector and name, at most [`RESOLUTION_CACHE_MAX`] names (the oldest
//! is dropped first); failures are never cached. So a user renamed in the
//! directory is seen under the new name within a minute, and a burst of
//! actions against one user costs one lookup.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::actions::connector::{Connector, ConnectorError, ResolvedUser, UserLookup};
use crate::model::{Action, GroupMembership, SuspendUser};

use super::ProtectedAccounts;

/// How long a lookup is reused.
pub const RESOLUTION_TTL: Duration = Duration::from_secs(60);
/// Most names whose lookup is remembered.
pub const RESOLUTION_CACHE_MAX: usize = 1024;

/// How a user target was resolved, for the audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The connector's directory knows the user under these names.
    Resolved(ResolvedUser),
    /// The connector has no directory (`log`): the target was used as
    /// given, checked only under the names the event gives it.
    NoDirectory { connector: String },
}

/// Why a user action was not sent after all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetDenial {
    /// The resolved user is protected.
    Protected,
    /// The target could not be resolved.
    Unresolved,
}

impl TargetDenial {
    /// The `reason` of the audit record.
    pub fn name(self) -> &'static str {
        match self {
            TargetDenial::Protected => "protected",
            TargetDenial::Unresolved => "unresolved",
        }
    }
}

/// The outcome of [`TargetGuard::check`].
#[derive(Clone, Debug)]
pub enum TargetCheck {
    /// Not a user action: send it as it is.
    NotUser,
    /// Send this action: the same, with the user named by canonical id.
    Proceed {
        action: Action,
        resolution: Resolution,
    },
    /// Send nothing.
    Denied {
        denial: TargetDenial,
        message: String,
        /// The user, when the lookup worked.
        resolved: Option<ResolvedUser>,
        /// The lookup's error, when it failed.
        error: Option<ConnectorError>,
    },
}

/// Resolves user targets through their connector and checks them against
/// the protected registry; shared by the pipeline thread and the
/// executor thread.
#[derive(Debug, Default)]
pub struct TargetGuard {
    protected: RwLock<ProtectedAccounts>,
    cache: Mutex<LookupCache>,
}

impl TargetGuard {
    pub fn new(protected: ProtectedAccounts) -> Self {
        TargetGuard {
            protected: RwLock::new(protected),
            cache: Mutex::default(),
        }
    }

    /// Replaces the registry checked (the gate's, shared with it: group
    /// refreshes are seen by both).
    pub fn set_protected(&self, protected: ProtectedAccounts) {
        *self.protected.write().unwrap_or_else(|e| e.into_inner()) = protected;
    }

    /// Resolves the user `action` targets through `connector` and decides
    /// whether it may be sent, and with which id.
    pub fn check(&self, connector: &mut dyn Connector, action: &Action) -> TargetCheck {
        self.check_at(connector, action, Instant::now())
    }

    /// [`TargetGuard::check`] at `now` (tests move the clock).
    fn check_at(
        &self,
        connector: &mut dyn Connector,
        action: &Action,
        now: Instant,
    ) -> TargetCheck {
        let Some(user) = user_of(action) else {
            return TargetCheck::NotUser;
        };
        let name = connector.name().to_owned();
        // A cached lookup is not remembered again: its age counts from
        // the directory's answer, not from its last use.
        let lookup = match self.cached(&name, user, now) {
            Some(found) => Ok(UserLookup::Found(found)),
            None => connector.resolve_user(user).inspect(|found| {
                if let UserLookup::Found(resolved) = found {
                    self.remember(&name, user, resolved, now);
                }
            }),
        };
        let resolved = match lookup {
            Ok(UserLookup::Found(resolved)) => resolved,
            Ok(UserLookup::NoDirectory) => {
                return TargetCheck::Proceed {
                    action: action.clone(),
                    resolution: Resolution::NoDirectory { connector: name },
                };
            }
            Err(error) => {
                return TargetCheck::Denied {
                    denial: TargetDenial::Unresolved,
                    message: format!(
                        "{} on {user}: the target could not be resolved through {name} ({error}); \
                         not sent, since a name that cannot be resolved cannot be checked against \
                         the protected accounts",
                        action.kind().name()
                    ),
                    resolved: None,
                    error: Some(error),
                };
            }
        };
        let hit = self
            .protected
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .matches_resolved(&resolved);
        if let Some(hit) = hit {
            return TargetCheck::Denied {
                denial: TargetDenial::Protected,
                message: format!(
                    "{user} is {} in {name}, a protected account ({hit}); {} is never applied to it",
                    describe(&resolved),
                    action.kind().name()
                ),
                resolved: Some(resolved),
                error: None,
            };
        }
        TargetCheck::Proceed {
            action: with_user(action, &resolved.id),
            resolution: Resolution::Resolved(resolved),
        }
    }

    fn cached(&self, connector: &str, user: &str, now: Instant) -> Option<ResolvedUser> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(connector, user, now)
    }

    fn remember(&self, connector: &str, user: &str, resolved: &ResolvedUser, now: Instant) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).put(
            connector,
            user,
            resolved.clone(),
            now,
        );
    }
}

/// `00u1 (bg.admin@corp.example, bg.admin)` for messages.
pub fn describe(user: &ResolvedUser) -> String {
    if user.names.is_empty() {
        user.id.clone()
    } else {
        format!("{} ({})", user.id, user.names.join(", "))
    }
}

/// The user an action is taken against, if it is a user action.
fn user_of(action: &Action) -> Option<&str> {
    match action {
        Action::SuspendUser(s) => Some(&s.user),
        Action::RevokeSessions(u) | Action::ResetFactors(u) => Some(u),
        Action::AddToGroup(m) => Some(&m.user),
        Action::ActivatePolicy(_)
        | Action::RestorePolicy(_)
        | Action::AssignAppPolicy(_)
        | Action::BlockIp(_)
        | Action::Notify(_)
        | Action::Escalate(_) => None,
    }
}

/// `action` with its user replaced by `id`.
fn with_user(action: &Action, id: &str) -> Action {
    match action {
        Action::SuspendUser(s) => Action::SuspendUser(SuspendUser {
            user: id.to_owned(),
            duration_secs: s.duration_secs,
        }),
        Action::RevokeSessions(_) => Action::RevokeSessions(id.to_owned()),
        Action::ResetFactors(_) => Action::ResetFactors(id.to_owned()),
        Action::AddToGroup(m) => Action::AddToGroup(GroupMembership {
            user: id.to_owned(),
            group: m.group.clone(),
        }),
        other => other.clone(),
    }
}

/// Successful lookups by (connector, name as written), bounded and aging.
#[derive(Debug, Default)]
struct LookupCache {
    entries: HashMap<(String, String), (ResolvedUser, Instant)>,
    /// Insertion order, for dropping the oldest.
    order: VecDeque<(String, String)>,
}

impl LookupCache {
    fn get(&mut self, connector: &str, user: &str, now: Instant) -> Option<ResolvedUser> {
        let key = (connector.to_owned(), user.to_owned());
        let (resolved, at) = self.entries.get(&key)?;
        if now.duration_since(*at) < RESOLUTION_TTL {
            return Some(resolved.clone());
        }
        self.entries.remove(&key);
        None
    }

    fn put(&mut self, connector: &str, user: &str, resolved: ResolvedUser, now: Instant) {
        let key = (connector.to_owned(), user.to_owned());
        if self.entries.insert(key.clone(), (resolved, now)).is_none() {
            self.order.push_back(key);
        }
        while self.entries.len() > RESOLUTION_CACHE_MAX {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        // Keys removed on expiry stay in `order` until their turn; keep
        // the queue from growing past the map by much.
        if self.order.len() > 2 * RESOLUTION_CACHE_MAX {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::connector::{ActionContext, Executed, Undo};
    use crate::config::Protected;
    use crate::model::ActionKind;

    /// A directory of two users; counts lookups; fails on `down*` names.
    struct Directory {
        lookups: usize,
    }

    impl Connector for Directory {
        fn name(&self) -> &str {
            "dir"
        }
        fn supports(&self, _: ActionKind) -> bool {
            true
        }
        fn execute(
            &mut self,
            _: &Action,
            _: &ActionContext<'_>,
        ) -> Result<Executed, ConnectorError> {
            unreachable!("the guard never executes")
        }
        fn undo(&mut self, _: &Undo) -> Result<String, ConnectorError> {
            unreachable!()
        }
        fn check(&mut self) -> Result<Vec<String>, ConnectorError> {
            Ok(Vec::new())
        }
        fn resolve_user(&mut self, user: &str) -> Result<UserLookup, ConnectorError> {
            self.lookups += 1;
            let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
            match user.to_ascii_lowercase().as_str() {
                "00ubg1" | "bg.admin" | "bg.admin@corp.example" => Ok(UserLookup::Found(
                    ResolvedUser::new("00ubg1", names(&["bg.admin@corp.example", "bg.admin"])),
                )),
                "alice" | "alice@corp.example" | "00ualice" => Ok(UserLookup::Found(
                    ResolvedUser::new("00ualice", names(&["alice@corp.example", "alice"])),
                )),
                _ => Err(ConnectorError {
                    status: Some(404),
                    vendor_code: Some("E0000007".into()),
                    message: format!("Not found: {user}"),
                    attempts: 1,
                }),
            }
        }
    }

    fn guard() -> TargetGuard {
        TargetGuard::new(ProtectedAccounts::new(&Protected {
            ids: vec!["00ubg1".into()],
            ..Protected::default()
        }))
    }

    fn suspend(user: &str) -> Action {
        Action::SuspendUser(SuspendUser {
            user: user.into(),
            duration_secs: Some(60),
        })
    }

    #[test]
    fn a_protected_account_is_denied_under_any_name() {
        let g = guard();
        let mut dir = Directory { lookups: 0 };
        for name in ["bg.admin", "BG.Admin@corp.example", "00UBG1"] {
            let TargetCheck::Denied {
                denial, message, ..
            } = g.check(&mut dir, &suspend(name))
            else {
                panic!("{name} was let through")
            };
            assert_eq!(denial, TargetDenial::Protected);
            assert!(
                message.contains("is 00ubg1 (bg.admin@corp.example, bg.admin) in dir")
                    && message.contains("protected id 00ubg1"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_normal_user_is_sent_by_canonical_id_and_the_lookup_is_cached() {
        let g = guard();
        let mut dir = Directory { lookups: 0 };
        let add = Action::AddToGroup(GroupMembership {
            user: "alice@corp.example".into(),
            group: "00g1".into(),
        });
        for _ in 0..3 {
            let TargetCheck::Proceed { action, resolution } = g.check(&mut dir, &add) else {
                panic!("denied")
            };
            let Action::AddToGroup(m) = action else {
                panic!("{action:?}")
            };
            assert_eq!((m.user.as_str(), m.group.as_str()), ("00ualice", "00g1"));
            assert!(matches!(resolution, Resolution::Resolved(ref u) if u.id == "00ualice"));
        }
        assert_eq!(dir.lookups, 1, "one lookup for a burst");
    }

    #[test]
    fn a_failed_lookup_denies_and_is_not_cached() {
        let g = guard();
        let mut dir = Directory { lookups: 0 };
        for _ in 0..2 {
            let TargetCheck::Denied {
                denial,
                message,
                error,
                ..
            } = g.check(&mut dir, &Action::ResetFactors("ghost".into()))
            else {
                panic!("sent")
            };
            assert_eq!(denial, TargetDenial::Unresolved);
            assert_eq!(error.unwrap().status, Some(404));
            assert!(
                message.contains("could not be resolved through dir"),
                "{message}"
            );
        }
        assert_eq!(dir.lookups, 2);
    }

    #[test]
    fn other_actions_pass_untouched() {
        let g = guard();
        let mut dir = Directory { lookups: 0 };
        assert!(matches!(
            g.check(&mut dir, &Action::ActivatePolicy("00p1".into())),
            TargetCheck::NotUser
        ));
        assert_eq!(dir.lookups, 0);
    }

    #[test]
    fn the_registry_is_read_on_every_check() {
        // A cached lookup still meets the current registry.
        let g = TargetGuard::new(ProtectedAccounts::default());
        let mut dir = Directory { lookups: 0 };
        assert!(matches!(
            g.check(&mut dir, &suspend("alice")),
            TargetCheck::Proceed { .. }
        ));
        g.set_protected(ProtectedAccounts::new(&Protected {
            logins: vec!["alice@*".into()],
            ..Protected::default()
        }));
        assert!(matches!(
            g.check(&mut dir, &suspend("alice")),
            TargetCheck::Denied {
                denial: TargetDenial::Protected,
                ..
            }
        ));
        assert_eq!(dir.lookups, 1);
    }

    #[test]
    fn a_lookup_in_constant_use_still_ages_out() {
        // Using a cached answer must not keep it alive: a rename in the
        // directory is seen within the TTL.
        let g = guard();
        let mut dir = Directory { lookups: 0 };
        let t0 = Instant::now();
        let step = RESOLUTION_TTL / 4;
        for i in 0..8 {
            g.check_at(&mut dir, &suspend("alice"), t0 + step * i);
        }
        assert_eq!(dir.lookups, 2, "looked up at 0 and again at the TTL");
    }

    #[test]
    fn the_cache_is_bounded_and_ages() {
        let mut c = LookupCache::default();
        let t0 = Instant::now();
        let user = ResolvedUser::new("00u1", Vec::new());
        for i in 0..RESOLUTION_CACHE_MAX + 10 {
            c.put("okta", &format!("u{i}"), user.clone(), t0);
        }
        assert_eq!(c.entries.len(), RESOLUTION_CACHE_MAX);
        assert!(c.get("okta", "u0", t0).is_none(), "the oldest went first");
        assert!(c.get("okta", "u20", t0).is_some());
        assert!(c.get("graph", "u20", t0).is_none(), "per connector");
        assert!(
            c.get("okta", "u20", t0 + RESOLUTION_TTL).is_none(),
            "aged out"
        );
    }
}
