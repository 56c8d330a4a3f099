//! Applications reachable without MFA: whether the policies an
//! application signs in under ([`AppSignIn`]) ask everyone for a second
//! factor.
//!
//! - **Okta**: an application signs in under one authentication policy
//!   (`ACCESS_POLICY`). It is covered when that policy is active and every
//!   active rule that lets users in (`access` not `DENY`) requires a second
//!   factor (`factorMode` `2FA`): a user matching a one-factor rule gets
//!   in with a password. No policy, or an inactive one, is a gap.
//! - **Entra**: an application is covered when an enabled conditional
//!   access policy that includes it (by id or `All`, not excluded) requires
//!   MFA or an authentication strength. Who the policy applies to is not
//!   judged (a policy for one group covers the app for everyone): a blind
//!   spot, reported by `vigil baseline diff` when that policy narrows.

use crate::model::baseline::{AppSignIn, ObjectKind};

use super::diff::{entra_policy_requires_mfa, okta_rule_requires_mfa};

/// Why `app` can be signed in to without MFA, or `None` when it cannot;
/// `entra`: the application is Entra's (else Okta's).
pub fn mfa_gap(app: &AppSignIn, entra: bool) -> Option<String> {
    if entra {
        let covered = app
            .policies
            .iter()
            .any(|p| p.kind == ObjectKind::EntraCaPolicy && entra_policy_requires_mfa(&p.body));
        return (!covered).then(|| {
            "no enabled conditional access policy that requires MFA includes it".to_owned()
        });
    }
    let Some(policy) = app
        .policies
        .iter()
        .find(|p| p.kind == ObjectKind::OktaPolicy)
    else {
        return Some("it has no authentication policy".to_owned());
    };
    let status = |v: &serde_json::Value| {
        v.get("status")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("ACTIVE")
            .to_owned()
    };
    if status(&policy.body) != "ACTIVE" {
        return Some(format!(
            "its authentication policy '{}' is {}",
            policy.name,
            status(&policy.body)
        ));
    }
    let lets_in = |r: &&crate::model::baseline::PolicyRule| {
        status(&r.body) == "ACTIVE"
            && r.body
                .pointer("/actions/appSignOn/access")
                .and_then(serde_json::Value::as_str)
                .is_none_or(|a| !a.eq_ignore_ascii_case("DENY"))
    };
    let one_factor: Vec<&str> = policy
        .rules
        .iter()
        .filter(lets_in)
        .filter(|r| !okta_rule_requires_mfa(&r.body))
        .map(|r| r.name.as_str())
        .collect();
    match one_factor.as_slice() {
        [] if policy.rules.iter().any(|r| lets_in(&r)) => None,
        [] => Some(format!(
            "its authentication policy '{}' has no active rule that lets users in",
            policy.name
        )),
        rules => Some(format!(
            "its authentication policy '{}' lets users in without a second factor (rule {})",
            policy.name,
            rules
                .iter()
                .map(|r| format!("'{r}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::baseline::{PolicyObject, PolicyRule};
    use serde_json::json;

    fn okta_app(rules: &[(&str, &str, &str)], status: &str) -> AppSignIn {
        AppSignIn {
            app: "0oa1".into(),
            name: "Payroll".into(),
            policies: vec![PolicyObject {
                kind: ObjectKind::OktaPolicy,
                id: "rst1".into(),
                name: "Payroll sign-in".into(),
                body: json!({"id": "rst1", "status": status, "type": "ACCESS_POLICY"}),
                rules: rules
                    .iter()
                    .map(|(name, mode, access)| PolicyRule {
                        id: format!("0pr{name}"),
                        name: (*name).into(),
                        body: json!({"status": "ACTIVE", "type": "ACCESS_POLICY",
                            "actions": {"appSignOn": {"access": access,
                                "verificationMethod": {"factorMode": mode}}}}),
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn okta_apps_are_covered_only_when_every_rule_that_lets_users_in_asks_for_2fa() {
        assert_eq!(
            mfa_gap(&okta_app(&[("Catch-all", "2FA", "ALLOW")], "ACTIVE"), false),
            None
        );
        assert_eq!(
            mfa_gap(
                &okta_app(
                    &[("Office", "1FA", "ALLOW"), ("Catch-all", "2FA", "ALLOW")],
                    "ACTIVE"
                ),
                false
            ),
            Some(
                "its authentication policy 'Payroll sign-in' lets users in without a second \
                 factor (rule 'Office')"
                    .into()
            )
        );
        // A one-factor rule that denies lets nobody in.
        assert_eq!(
            mfa_gap(
                &okta_app(
                    &[("Blocked", "1FA", "DENY"), ("Catch-all", "2FA", "ALLOW")],
                    "ACTIVE"
                ),
                false
            ),
            None
        );
        assert!(
            mfa_gap(
                &okta_app(&[("Catch-all", "2FA", "ALLOW")], "INACTIVE"),
                false
            )
            .unwrap()
            .contains("is INACTIVE")
        );
        let mut none = okta_app(&[], "ACTIVE");
        none.policies.clear();
        assert_eq!(
            mfa_gap(&none, false),
            Some("it has no authentication policy".into())
        );
    }

    #[test]
    fn entra_apps_need_an_enabled_mfa_policy_that_includes_them() {
        let app = |body: serde_json::Value| AppSignIn {
            app: "a1b2c3d4-0000-4000-8000-000000000001".into(),
            name: "a1b2c3d4-0000-4000-8000-000000000001".into(),
            policies: vec![PolicyObject {
                kind: ObjectKind::EntraCaPolicy,
                id: "ca1".into(),
                name: "MFA".into(),
                body,
                rules: Vec::new(),
            }],
        };
        assert_eq!(
            mfa_gap(
                &app(json!({"state": "enabled", "grantControls": {"builtInControls": ["mfa"]}})),
                true
            ),
            None
        );
        assert!(
            mfa_gap(
                &app(json!({"state": "enabled",
                            "grantControls": {"builtInControls": ["compliantDevice"]}})),
                true
            )
            .is_some()
        );
        let mut uncovered = app(json!({}));
        uncovered.policies.clear();
        assert!(mfa_gap(&uncovered, true).is_some());
    }
}
