//! The Okta connector's MFA configuration: what `vigil baseline` reads,
//! what `restore-policy` writes back, and `assign-app-policy`.
//!
//! | what | requests |
//! |---|---|
//! | baseline read | `GET /api/v1/policies?type=T` for `MFA_ENROLL`, `OKTA_SIGN_ON`, `ACCESS_POLICY` (following `Link: rel="next"`), `GET /api/v1/policies/{id}/rules` for each, `GET /api/v1/authenticators`, `GET /api/v1/zones` (the `POLICY` zones; the `BLOCKLIST` ones are block-ip's) |
//! | `restore-policy` | `GET /api/v1/policies/{id}` + rules; then only what differs: `PUT /api/v1/policies/{id}`, `PUT /api/v1/policies/{id}/rules/{ruleId}`, `POST …/lifecycle/activate` or `…/deactivate` (policy or rule); then the same reads again to confirm |
//! | `assign-app-policy` | `PUT /api/v1/apps/{appId}/policies/{policyId}` |
//! | an application's sign-in | `GET /api/v1/apps/{appId}`, its `_links.accessPolicy.href` (the authentication policy), `GET` that policy and its rules |
//!
//! Permissions: `okta.policies.read`, `okta.authenticators.read` and
//! `okta.networkZones.read` to capture; `okta.policies.manage` (Super Admin) to restore;
//! `okta.apps.manage` and `okta.policies.read` to assign an application.
//!
//! A restore writes the approved body whole (`PUT` replaces a policy or
//! rule); status changes go through the lifecycle calls, because Okta
//! ignores `status` in a `PUT`. A rule added since the baseline is
//! *deactivated*, not deleted (a deletion could not be undone); a rule
//! deleted since the baseline is not recreated (it would get a new id):
//! the re-read then still differs and the restore is reported failed,
//! naming the rule.

use reqwest::Method;
use serde_json::Value;

use super::{OktaConnector, context, next_link, segment};
use crate::actions::connector::{ConnectorError, MAX_GROUP_PAGES, MfaConfig};
use crate::actions::http::path_below;
use crate::model::baseline::{AppSignIn, ObjectKind, PolicyObject, PolicyRule, without_volatile};

/// The Okta policy types that decide whether MFA is asked for.
pub const MFA_POLICY_TYPES: [&str; 3] = ["MFA_ENROLL", "OKTA_SIGN_ON", "ACCESS_POLICY"];

/// A string field of a JSON object, or "".
fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `value` without `status` (set through lifecycle calls, not `PUT`).
fn without_status(value: &Value) -> Value {
    let mut v = value.clone();
    if let Value::Object(map) = &mut v {
        map.remove("status");
    }
    v
}

impl OktaConnector {
    /// Every item of a list endpoint, following `Link: rel="next"` while it
    /// stays on the org URL, at most [`MAX_GROUP_PAGES`] pages.
    fn get_list(&self, what: &str, first: &str) -> Result<Vec<Value>, ConnectorError> {
        let mut path = first.to_owned();
        let mut items = Vec::new();
        for page_no in 1..=MAX_GROUP_PAGES {
            let (response, _) = self
                .call(what, Method::GET, &path, None)
                .map_err(|e| context(e, &format!("GET {path}")))?;
            let page = response
                .json()
                .map_err(|e| context(e, &format!("GET {path}")))?;
            let Some(list) = page.as_array() else {
                return Err(ConnectorError {
                    status: Some(response.status),
                    vendor_code: None,
                    message: format!("GET {path}: the answer is not a list"),
                    attempts: page_no as u32,
                });
            };
            items.extend(list.iter().cloned());
            let next = if list.is_empty() {
                None
            } else {
                next_link(&response.headers)
            };
            let Some(next) = next else {
                return Ok(items);
            };
            path = path_below(&self.base_url, &next).map_err(|why| {
                ConnectorError::refused(format!(
                    "GET {first}: the list continues at {next:?}, outside {} ({why}); not followed",
                    self.base_url
                ))
            })?;
        }
        Err(ConnectorError::refused(format!(
            "GET {first}: longer than {MAX_GROUP_PAGES} pages; not followed further"
        )))
    }

    /// One policy and its rules, from its JSON as listed or read.
    fn policy_object(&self, policy: Value) -> Result<PolicyObject, ConnectorError> {
        let id = text(&policy, "id").to_owned();
        if id.is_empty() {
            return Err(ConnectorError::refused(
                "okta: a policy in the answer has no id",
            ));
        }
        let rules_path = format!("/api/v1/policies/{}/rules", segment("policy", &id)?);
        let rules = self
            .get_list("okta read policy rules", &rules_path)?
            .into_iter()
            .map(|rule| PolicyRule {
                id: text(&rule, "id").to_owned(),
                name: text(&rule, "name").to_owned(),
                body: without_volatile(rule),
            })
            .collect();
        Ok(PolicyObject {
            kind: ObjectKind::OktaPolicy,
            name: text(&policy, "name").to_owned(),
            id,
            body: without_volatile(policy),
            rules,
        })
    }

    pub(super) fn read_one_policy(&self, id: &str) -> Result<Option<PolicyObject>, ConnectorError> {
        let path = format!("/api/v1/policies/{}", segment("policy", id)?);
        match self.call("okta read policy", Method::GET, &path, None) {
            Ok((response, _)) => {
                let policy = response
                    .json()
                    .map_err(|e| context(e, &format!("GET {path}")))?;
                self.policy_object(policy).map(Some)
            }
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(context(e, &format!("GET {path}"))),
        }
    }

    /// A lifecycle call on a policy or rule path when `from` and `to`
    /// statuses differ.
    fn set_status(
        &self,
        base: &str,
        from: &Value,
        to: &Value,
        lines: &mut Vec<String>,
    ) -> Result<(), ConnectorError> {
        let (from, to) = (text(from, "status"), text(to, "status"));
        let op = match (from, to) {
            (a, b) if a == b => return Ok(()),
            (_, "ACTIVE") => "activate",
            (_, "INACTIVE") => "deactivate",
            _ => return Ok(()),
        };
        let path = format!("{base}/lifecycle/{op}");
        let (_, line) = self
            .call("okta restore-policy", Method::POST, &path, None)
            .map_err(|e| context(e, &format!("POST {path}")))?;
        lines.push(line);
        Ok(())
    }

    pub(super) fn assign_app_policy(
        &self,
        app: &str,
        policy: &str,
    ) -> Result<String, ConnectorError> {
        let path = format!(
            "/api/v1/apps/{}/policies/{}",
            segment("app", app)?,
            segment("policy", policy)?
        );
        let (_, line) = self
            .call("okta assign-app-policy", Method::PUT, &path, None)
            .map_err(|e| context(e, &format!("PUT {path}")))?;
        Ok(format!(
            "okta: application {app} now signs in under policy {policy} ({line})"
        ))
    }
}

impl MfaConfig for OktaConnector {
    fn mfa_config(&mut self) -> Result<Vec<PolicyObject>, ConnectorError> {
        let mut objects = Vec::new();
        for kind in MFA_POLICY_TYPES {
            let path = format!("/api/v1/policies?type={kind}");
            for policy in self.get_list("okta read policies", &path)? {
                objects.push(self.policy_object(policy)?);
            }
        }
        for authenticator in self.get_list("okta read authenticators", "/api/v1/authenticators")? {
            objects.push(PolicyObject::from_json(
                ObjectKind::OktaAuthenticator,
                authenticator,
                "name",
            ));
        }
        // Policy zones only: blocklist zones change with every block-ip.
        for zone in self.get_list("okta read network zones", "/api/v1/zones")? {
            if text(&zone, "usage") == "POLICY" {
                objects.push(PolicyObject::from_json(
                    ObjectKind::OktaNetworkZone,
                    zone,
                    "name",
                ));
            }
        }
        Ok(objects)
    }

    fn write_policy(
        &mut self,
        current: &PolicyObject,
        target: &PolicyObject,
    ) -> Result<Vec<String>, ConnectorError> {
        let base = format!("/api/v1/policies/{}", segment("policy", &target.id)?);
        let mut lines = Vec::new();
        if without_status(&current.body) != without_status(&target.body) {
            let (_, line) = self
                .call(
                    "okta restore-policy",
                    Method::PUT,
                    &base,
                    Some(&target.body),
                )
                .map_err(|e| context(e, &format!("PUT {base}")))?;
            lines.push(line);
        }
        self.set_status(&base, &current.body, &target.body, &mut lines)?;
        for rule in &target.rules {
            let Some(now) = current.rules.iter().find(|r| r.id == rule.id) else {
                // Deleted since the baseline: a new rule would get a new id,
                // so it is left to a human (the confirmation names it).
                continue;
            };
            let path = format!("{base}/rules/{}", segment("rule", &rule.id)?);
            if without_status(&now.body) != without_status(&rule.body) {
                let (_, line) = self
                    .call("okta restore-policy", Method::PUT, &path, Some(&rule.body))
                    .map_err(|e| context(e, &format!("PUT {path}")))?;
                lines.push(line);
            }
            self.set_status(&path, &now.body, &rule.body, &mut lines)?;
        }
        // Added since the baseline: switched off, not deleted, so the undo
        // can switch it on again.
        for extra in current
            .rules
            .iter()
            .filter(|r| !target.rules.iter().any(|t| t.id == r.id))
        {
            let path = format!("{base}/rules/{}", segment("rule", &extra.id)?);
            let inactive = serde_json::json!({ "status": "INACTIVE" });
            self.set_status(&path, &extra.body, &inactive, &mut lines)?;
        }
        Ok(lines)
    }

    fn app_sign_in(&mut self, app: &str) -> Result<AppSignIn, ConnectorError> {
        let path = format!("/api/v1/apps/{}", segment("app", app)?);
        let (response, _) = self
            .call("okta read app", Method::GET, &path, None)
            .map_err(|e| context(e, &format!("GET {path}")))?;
        let body = response
            .json()
            .map_err(|e| context(e, &format!("GET {path}")))?;
        let name = match text(&body, "label") {
            "" => app.to_owned(),
            label => label.to_owned(),
        };
        // The policy is only linked: `…/api/v1/policies/{id}`.
        let policy_id = body
            .pointer("/_links/accessPolicy/href")
            .and_then(Value::as_str)
            .and_then(|href| href.rsplit('/').next())
            .filter(|id| !id.is_empty());
        let mut policies = Vec::new();
        if let Some(id) = policy_id {
            policies.extend(self.read_one_policy(id)?);
        }
        Ok(AppSignIn {
            app: app.to_owned(),
            name,
            policies,
        })
    }

    fn read_policy(&mut self, id: &str) -> Result<Option<PolicyObject>, ConnectorError> {
        self.read_one_policy(id)
    }
}
