//! The Graph connector's MFA configuration: what `vigil baseline` reads,
//! what `restore-policy` writes back, and `assign-app-policy`.
//!
//! | what | requests |
//! |---|---|
//! | baseline read | `GET /identity/conditionalAccess/policies` (following `@odata.nextLink`), `GET /policies/authenticationMethodsPolicy` |
//! | `restore-policy` | `GET /identity/conditionalAccess/policies/{id}`, then `PATCH` with the approved `displayName`, `state`, `conditions`, `grantControls` and `sessionControls` when they differ; then the `GET` again to confirm |
//! | an application's sign-in | `GET /identity/conditionalAccess/policies`: the enabled ones whose `conditions.applications` include it (by id, or `All`) and do not exclude it |
//! | `assign-app-policy` | `GET` the conditional access policy, then `PATCH` its `conditions` with the application added to `applications.includeApplications` (and removed from `excludeApplications`) |
//!
//! Permissions: `Policy.Read.All` to capture; `Policy.ReadWrite.ConditionalAccess`
//! and `Policy.Read.All` to restore and assign.
//!
//! Entra has no "policy for an application": an application signs in
//! under every conditional access policy that includes it, so
//! `assign-app-policy` adds the application to the named MFA policy.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{GraphConnector, segment};
use crate::actions::connector::{ConnectorError, MAX_GROUP_PAGES, MfaConfig};
use crate::actions::http::path_below;
use crate::model::baseline::{AppSignIn, ObjectKind, PolicyObject};

/// The conditional access policy properties a restore writes (the others
/// are read-only: `id`, `templateId`, the timestamps).
const WRITABLE: [&str; 5] = [
    "displayName",
    "state",
    "conditions",
    "grantControls",
    "sessionControls",
];

const CA_POLICIES: &str = "/identity/conditionalAccess/policies";
const AUTH_METHODS_POLICY: &str = "/policies/authenticationMethodsPolicy";

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The application ids under `key` (`includeApplications`,
/// `excludeApplications`) of a policy's `conditions.applications`.
fn app_ids(applications: &Value, key: &str) -> Vec<String> {
    applications
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a conditional access policy's applications condition includes
/// `app` (by id, any case, or `All`) and does not exclude it.
fn applies_to_app(policy: &Value, app: &str) -> bool {
    let apps = policy
        .pointer("/conditions/applications")
        .unwrap_or(&Value::Null);
    let named = |ids: &[String]| ids.iter().any(|a| a.eq_ignore_ascii_case(app));
    let include = app_ids(apps, "includeApplications");
    (include.iter().any(|a| a == "All") || named(&include))
        && !named(&app_ids(apps, "excludeApplications"))
}

fn ca_object(policy: Value) -> PolicyObject {
    PolicyObject::from_json(ObjectKind::EntraCaPolicy, policy, "displayName")
}

impl GraphConnector {
    /// Every item of a `value` list, following `@odata.nextLink` while it
    /// stays on the configured API.
    fn get_values(&mut self, what: &str, first: &str) -> Result<Vec<Value>, ConnectorError> {
        let mut path = first.to_owned();
        let mut items = Vec::new();
        for _ in 0..MAX_GROUP_PAGES {
            let page = self
                .call(what, Method::GET, &path, None)
                .map_err(|e| ConnectorError {
                    message: format!("GET {path}: {}", e.message),
                    ..e
                })?
                .json()?;
            let Some(list) = page.get("value").and_then(Value::as_array) else {
                return Err(ConnectorError::refused(format!(
                    "GET {path}: the answer has no `value` list"
                )));
            };
            items.extend(list.iter().cloned());
            let Some(next) = page.get("@odata.nextLink").and_then(Value::as_str) else {
                return Ok(items);
            };
            path = path_below(&self.base, next).map_err(|why| {
                ConnectorError::refused(format!(
                    "GET {first}: the list continues at {next:?}, outside {} ({why}); not followed",
                    self.base
                ))
            })?;
        }
        Err(ConnectorError::refused(format!(
            "GET {first}: longer than {MAX_GROUP_PAGES} pages; not followed further"
        )))
    }

    pub(super) fn read_one_policy(
        &mut self,
        id: &str,
    ) -> Result<Option<PolicyObject>, ConnectorError> {
        let path = format!("{CA_POLICIES}/{}", segment("policy id", id)?);
        match self.call("graph read policy", Method::GET, &path, None) {
            Ok(r) => Ok(Some(ca_object(r.json()?))),
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(ConnectorError {
                message: format!("GET {path}: {}", e.message),
                ..e
            }),
        }
    }

    pub(super) fn assign_app_policy(
        &mut self,
        app: &str,
        policy: &str,
    ) -> Result<String, ConnectorError> {
        let Some(current) = self.read_one_policy(policy)? else {
            return Err(ConnectorError::refused(format!(
                "graph: conditional access policy {policy} does not exist"
            )));
        };
        if applies_to_app(&current.body, app) {
            return Ok(format!(
                "graph: application {app} is already covered by conditional access policy {policy}; nothing written"
            ));
        }
        let mut conditions = current
            .body
            .get("conditions")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let apps = &mut conditions["applications"];
        if !apps.is_object() {
            *apps = json!({});
        }
        let mut include = app_ids(apps, "includeApplications");
        let mut exclude = app_ids(apps, "excludeApplications");
        if !include
            .iter()
            .any(|a| a == "All" || a.eq_ignore_ascii_case(app))
        {
            include.push(app.to_owned());
        }
        exclude.retain(|a| !a.eq_ignore_ascii_case(app));
        apps["includeApplications"] = json!(include);
        apps["excludeApplications"] = json!(exclude);
        let path = format!("{CA_POLICIES}/{}", segment("policy id", policy)?);
        let r = self.call(
            "graph assign-app-policy",
            Method::PATCH,
            &path,
            Some(&json!({ "conditions": conditions })),
        )?;
        Ok(format!(
            "graph: application {app} added to conditional access policy {policy} (PATCH {path} → {})",
            r.status
        ))
    }
}

impl MfaConfig for GraphConnector {
    fn mfa_config(&mut self) -> Result<Vec<PolicyObject>, ConnectorError> {
        let mut objects: Vec<PolicyObject> = self
            .get_values("graph read conditional access", CA_POLICIES)?
            .into_iter()
            .map(ca_object)
            .collect();
        let methods = self
            .call(
                "graph read authentication methods",
                Method::GET,
                AUTH_METHODS_POLICY,
                None,
            )
            .map_err(|e| ConnectorError {
                message: format!("GET {AUTH_METHODS_POLICY}: {}", e.message),
                ..e
            })?
            .json()?;
        objects.push(PolicyObject::from_json(
            ObjectKind::EntraAuthMethodsPolicy,
            methods,
            "displayName",
        ));
        Ok(objects)
    }

    fn write_policy(
        &mut self,
        current: &PolicyObject,
        target: &PolicyObject,
    ) -> Result<Vec<String>, ConnectorError> {
        let path = format!("{CA_POLICIES}/{}", segment("policy id", &target.id)?);
        // Only what differs: a PATCH replaces each property it names.
        let mut patch = Map::new();
        for key in WRITABLE {
            let want = target.body.get(key).cloned().unwrap_or(Value::Null);
            let have = current.body.get(key).cloned().unwrap_or(Value::Null);
            if want != have {
                patch.insert(key.to_owned(), want);
            }
        }
        if patch.is_empty() {
            return Ok(Vec::new());
        }
        let r = self.call(
            "graph restore-policy",
            Method::PATCH,
            &path,
            Some(&Value::Object(patch)),
        )?;
        Ok(vec![format!("PATCH {path} → {}", r.status)])
    }

    fn app_sign_in(&mut self, app: &str) -> Result<AppSignIn, ConnectorError> {
        let policies = self
            .get_values("graph read conditional access", CA_POLICIES)?
            .into_iter()
            .filter(|p| text(p, "state") == "enabled" && applies_to_app(p, app))
            .map(ca_object)
            .collect();
        Ok(AppSignIn {
            app: app.to_owned(),
            name: app.to_owned(),
            policies,
        })
    }

    fn read_policy(&mut self, id: &str) -> Result<Option<PolicyObject>, ConnectorError> {
        self.read_one_policy(id)
    }
}
