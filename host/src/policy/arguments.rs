//! Per-argument grants: which groups `add-to-group`, which policies
//! `activate-policy` and `restore-policy`, and which application and MFA
//! policy `assign-app-policy` a rule may name, on top of the action kind
//! itself.
//!
//! Invariants:
//! - a configured rule's `add-to-group` is limited to its `groups` list
//!   (the configuration refuses the grant without one), its
//!   `activate-policy` to its `policies` list or, by default, to a policy
//!   the triggering event names as a target (`"from-event"`);
//! - ids are compared exactly (case included): an allow-list must not let
//!   through an id the operator did not write;
//! - only the no-configuration default ([`ArgumentGrants::builtin_default`],
//!   always audit-only, so nothing it allows is ever executed) lets
//!   `add-to-group` name any group, so its dry runs show what the pack
//!   would do;
//! - a denial names the argument and the key that would allow it
//!   (`group 00gadmins is not in rules[2].groups`).

use crate::config::{PolicyGrant, RuleConfig};
use crate::model::{Action, Event};

/// Which values one argument may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// Any value (the no-configuration default only).
    Any,
    /// Exactly these ids.
    Only(Vec<String>),
    /// Only an id the triggering event names as a target.
    FromEvent,
}

impl Allowed {
    fn permits(&self, value: &str, event: &Event) -> bool {
        match self {
            Allowed::Any => true,
            Allowed::Only(ids) => ids.iter().any(|id| id == value),
            Allowed::FromEvent => event.targets.iter().any(|t| t.id == value),
        }
    }
}

/// The argument grants of one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgumentGrants {
    /// Where they are configured, for denials: `rules[2]`.
    pub at: String,
    /// Groups `add-to-group` may add users to.
    pub groups: Allowed,
    /// Policies `activate-policy` may activate and `restore-policy` may
    /// write back.
    pub policies: Allowed,
    /// Policies `assign-app-policy` may put an application under (the
    /// application itself must be a target of the triggering event).
    pub app_policies: Allowed,
}

impl ArgumentGrants {
    /// No argument allowed (a rule with no grants).
    pub fn none(at: impl Into<String>) -> Self {
        ArgumentGrants {
            at: at.into(),
            groups: Allowed::Only(Vec::new()),
            policies: Allowed::Only(Vec::new()),
            app_policies: Allowed::Only(Vec::new()),
        }
    }

    /// The no-configuration default (and `vigil test`, `vigil inspect`):
    /// the rules run audit-only, so `add-to-group` may name any group —
    /// its dry run shows what the rule would do — while `activate-policy`
    /// keeps the configured default, `from-event`.
    pub fn builtin_default() -> Self {
        ArgumentGrants {
            at: "the built-in default grant".to_owned(),
            groups: Allowed::Any,
            policies: Allowed::FromEvent,
            app_policies: Allowed::Any,
        }
    }

    /// The grants of `rules[index]` (validated at load: `groups` is set
    /// whenever `add-to-group` is granted).
    pub fn from_config(index: usize, rule: &RuleConfig) -> Self {
        ArgumentGrants {
            at: format!("rules[{index}]"),
            groups: Allowed::Only(rule.groups.clone().unwrap_or_default()),
            policies: match &rule.policies {
                None | Some(PolicyGrant::FromEvent) => Allowed::FromEvent,
                Some(PolicyGrant::Only(ids)) => Allowed::Only(ids.clone()),
            },
            app_policies: Allowed::Only(rule.app_policies.clone().unwrap_or_default()),
        }
    }

    /// Whether `action`'s arguments are granted, for an action caused by
    /// `event`; the denial message otherwise.
    pub fn check(&self, action: &Action, event: &Event) -> Result<(), String> {
        match action {
            Action::AddToGroup(m) if !self.groups.permits(&m.group, event) => {
                Err(format!("group {} is not in {}.groups", m.group, self.at))
            }
            Action::ActivatePolicy(policy) | Action::RestorePolicy(policy)
                if !self.policies.permits(policy, event) =>
            {
                Err(match self.policies {
                    Allowed::FromEvent => format!(
                        "policy {policy} is not a target of event {} ({}.policies is \"from-event\": \
                         only a policy the triggering event names may be activated or restored)",
                        event.id, self.at
                    ),
                    _ => format!("policy {policy} is not in {}.policies", self.at),
                })
            }
            Action::AssignAppPolicy(a)
                if !Allowed::FromEvent.permits(&a.app, event)
                    && !event.app_ids().contains(&a.app) =>
            {
                Err(format!(
                    "application {} is not a target of event {}: a rule may only move the \
                     application the event is about",
                    a.app, event.id
                ))
            }
            Action::AssignAppPolicy(a) if !self.app_policies.permits(&a.policy, event) => Err(
                format!("policy {} is not in {}.app_policies", a.policy, self.at),
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GroupMembership, Principal};

    fn event_naming(targets: &[&str]) -> Event {
        let mut e = Event::new("evt-9", "okta", "policy.lifecycle.deactivate", 0);
        e.targets = targets
            .iter()
            .map(|id| Principal {
                id: (*id).into(),
                kind: "PolicyEntity".into(),
                login: None,
                display_name: None,
            })
            .collect();
        e
    }

    fn add(group: &str) -> Action {
        Action::AddToGroup(GroupMembership {
            user: "00u1".into(),
            group: group.into(),
        })
    }

    fn grants(groups: Allowed, policies: Allowed) -> ArgumentGrants {
        ArgumentGrants {
            at: "rules[2]".into(),
            groups,
            policies,
            app_policies: Allowed::Only(vec!["rst1mfa".into()]),
        }
    }

    #[test]
    fn a_group_outside_the_list_is_named_with_the_key() {
        let g = grants(
            Allowed::Only(vec!["00g1mfaremediation".into()]),
            Allowed::FromEvent,
        );
        let e = event_naming(&[]);
        assert_eq!(g.check(&add("00g1mfaremediation"), &e), Ok(()));
        assert_eq!(
            g.check(&add("00gadmins"), &e),
            Err("group 00gadmins is not in rules[2].groups".into())
        );
        // Exact ids: another case is another id.
        assert!(g.check(&add("00G1MFAREMEDIATION"), &e).is_err());
    }

    #[test]
    fn a_policy_list_is_exact() {
        let g = grants(Allowed::Only(vec![]), Allowed::Only(vec!["00p1".into()]));
        let e = event_naming(&["00p2"]);
        assert_eq!(g.check(&Action::ActivatePolicy("00p1".into()), &e), Ok(()));
        assert_eq!(
            g.check(&Action::ActivatePolicy("00p2".into()), &e),
            Err("policy 00p2 is not in rules[2].policies".into()),
            "a list ignores what the event names"
        );
    }

    #[test]
    fn from_event_allows_only_a_target_of_the_event() {
        let g = grants(Allowed::Only(vec![]), Allowed::FromEvent);
        let e = event_naming(&["00pweakened"]);
        assert_eq!(
            g.check(&Action::ActivatePolicy("00pweakened".into()), &e),
            Ok(())
        );
        let err = g
            .check(&Action::ActivatePolicy("00pdenyall".into()), &e)
            .unwrap_err();
        assert!(
            err.starts_with("policy 00pdenyall is not a target of event evt-9")
                && err.contains("rules[2].policies"),
            "{err}"
        );
    }

    #[test]
    fn the_builtin_default_allows_any_group_and_event_policies() {
        let g = ArgumentGrants::builtin_default();
        let e = event_naming(&["00p1"]);
        assert_eq!(g.check(&add("00gadmins"), &e), Ok(()));
        assert_eq!(g.check(&Action::ActivatePolicy("00p1".into()), &e), Ok(()));
        assert!(g.check(&Action::ActivatePolicy("00p2".into()), &e).is_err());
    }

    #[test]
    fn no_grants_allow_nothing_and_other_actions_pass() {
        let g = ArgumentGrants::none("rules[0]");
        let e = event_naming(&["00p1"]);
        assert!(g.check(&add("00g1"), &e).is_err());
        assert!(g.check(&Action::ActivatePolicy("00p9".into()), &e).is_err());
        assert_eq!(g.check(&Action::RevokeSessions("00u1".into()), &e), Ok(()));
    }
}
