//! The `graph` connector: carries out actions in Microsoft Entra ID through
//! Microsoft Graph v1.0, as an application (OAuth 2.0 client credentials).
//!
//! | action | call | application permission |
//! |---|---|---|
//! | `suspend-user` (and its undo) | `PATCH /users/{id}` `{"accountEnabled": false}` (`true`) | `User.EnableDisableAccount.All` + `User.Read.All`, or `User.ReadWrite.All` |
//! | `revoke-sessions` | `POST /users/{id}/revokeSignInSessions` | `User.RevokeSessions.All` (or `User.ReadWrite.All`) |
//! | `reset-factors` | `GET /users/{id}/authentication/methods`, `DELETE /users/{id}/authentication/{kind}Methods/{methodId}` | `UserAuthenticationMethod.ReadWrite.All` |
//! | `activate-policy` | `PATCH /identity/conditionalAccess/policies/{id}` `{"state":"enabled"}` | `Policy.Read.All` + `Policy.ReadWrite.ConditionalAccess` |
//! | `restore-policy` (and its undo) | `GET`, then `PATCH /identity/conditionalAccess/policies/{id}` with the approved properties (see `policies`) | `Policy.Read.All` + `Policy.ReadWrite.ConditionalAccess` |
//! | `assign-app-policy` | `GET`, then `PATCH` the conditional access policy's `conditions.applications` | `Policy.Read.All` + `Policy.ReadWrite.ConditionalAccess` |
//! | `vigil baseline` | `GET /identity/conditionalAccess/policies`, `GET /policies/authenticationMethodsPolicy` | `Policy.Read.All` |
//! | `add-to-group` | `POST /groups/{id}/members/$ref` | `GroupMember.ReadWrite.All` |
//! | `block-ip` (and its undo) | `GET`, `PATCH /identity/conditionalAccess/namedLocations/{id}` | `Policy.Read.All` + `Policy.ReadWrite.ConditionalAccess` |
//! | `check` | token, `GET /users?$top=1&$select=id`, `GET` the named location | `User.Read.All` (+ `Policy.Read.All` with a named location) |
//! | protected group members (`[protected] groups`) | `GET /groups/{id}/transitiveMembers/microsoft.graph.user?$select=id,userPrincipalName&$top=999`, following `@odata.nextLink` | `GroupMember.Read.All` |
//! | resolving a user target (before every user action) | `GET /users/{id or UPN}?$select=id,userPrincipalName,mail,otherMails,proxyAddresses` | `User.Read.All` |
//!
//! Conditional access writes also need the tenant to have Entra ID P1.
//! `notify` and `escalate` are not Graph's: they go to webhooks.
//!
//! Tokens: one access token is fetched from the token endpoint
//! (`grant_type=client_credentials`) and reused until shortly before it
//! expires (`expires_in` minus 60 s, or half of it when it is shorter than
//! two minutes). A call answered 401 (the token was revoked or expired
//! early) drops the token, fetches a new one and is retried once. The
//! client secret and every token are registered with the
//! [`HttpClient`] so they never appear in an error.
//!
//! `block-ip` rewrites the named location's whole `ipRanges` list (Graph
//! has no "add one range" call), so two writers racing on the same named
//! location can lose an update; give Vigil a named location of its own.
//! Graph refuses an IP named location with no range at all: keep a
//! placeholder range in it (a documentation address such as
//! `192.0.2.1/32`) so the last unblock can succeed.
//!
//! Group members (`[protected] groups = ["graph:<object id>"]`) are the
//! group's *transitive* user members (nested groups included; devices and
//! service principals left out by the type cast), 999 a page, following
//! `@odata.nextLink` only below the configured base URL ([`path_below`];
//! the token is never sent elsewhere; a next link elsewhere is an error). The type cast
//! can thin pages out, so an empty page with a next link is followed (up
//! to [`MAX_GROUP_PAGES`]). More than [`MAX_GROUP_MEMBERS`] members is
//! refused as a misconfiguration.
//!
//! User targets: `/users/{id}` also accepts a userPrincipalName, so before
//! a user action the executor resolves the target
//! ([`Connector::resolve_user`]) and checks the protected accounts against
//! the object id, UPN, `mail`, `otherMails` and `proxyAddresses`; the
//! action is then sent with the object id only (see `policy::targets`).
//!
//! The authentication methods listing of `reset-factors` follows
//! `@odata.nextLink` under the same rule as group listings ([`path_below`]:
//! same scheme, host and port, a path below the base URL's), at most
//! [`MAX_PAGES`] pages, and deletes nothing unless the whole list was read.
//!
//! Every request goes through [`HttpClient::send`]: timeouts, retries on
//! network errors and 5xx, `Retry-After` on 429.

mod policies;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::config::connectors::{ConnectorsConfig, GraphConfig, HttpConfig};
use crate::model::{Action, ActionKind};

use super::connector::{
    ActionContext, Connector, ConnectorError, Executed, GroupMember, MAX_GROUP_MEMBERS,
    MAX_GROUP_PAGES, MfaConfig, ResolvedUser, Undo, UserLookup,
};
use super::http::{HttpClient, HttpResponse, path_below};
use crate::secret::{self, Secret};

/// How long before its expiry a token is replaced.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Tokens living shorter than this are used for half their lifetime.
const SHORT_LIFETIME: Duration = Duration::from_secs(120);
/// The lifetime assumed when the token endpoint names none (Entra issues
/// tokens for 60–90 minutes; a 401 refreshes earlier if need be).
const DEFAULT_LIFETIME_SECS: u64 = 3599;
/// The longest lifetime believed (a day).
const MAX_LIFETIME_SECS: u64 = 86_400;
/// Pages of authentication methods followed at most.
const MAX_PAGES: usize = 10;
/// The user fields read to resolve a target (every name Graph accepts or
/// mail flows to).
const USER_NAME_FIELDS: &str = "id,userPrincipalName,mail,otherMails,proxyAddresses";

const ODATA_PREFIX: &str = "#microsoft.graph.";
const METHOD_SUFFIX: &str = "AuthenticationMethod";
const IP_NAMED_LOCATION: &str = "#microsoft.graph.ipNamedLocation";
/// What Graph answers when the member is already in the group.
const ALREADY_MEMBER: &str = "added object references already exist";

struct CachedToken {
    value: String,
    /// When to stop using it (already minus the safety margin).
    refresh_at: Instant,
}

/// The Microsoft Graph connector.
pub struct GraphConnector {
    http: HttpClient,
    /// `https://graph.microsoft.com/v1.0`, without a trailing slash.
    base: String,
    token_endpoint: String,
    client_id: String,
    client_secret: Secret,
    scope: String,
    blocked_named_location: Option<String>,
    reset_methods: Vec<String>,
    token: Option<CachedToken>,
}

impl std::fmt::Debug for GraphConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphConnector")
            .field("base", &self.base)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl GraphConnector {
    /// Builds the connector and reads its client secret (no request is
    /// made: the first action or [`Connector::check`] fetches a token).
    pub fn new(config: &GraphConfig, http: &HttpConfig) -> anyhow::Result<Self> {
        let client_secret = secret::load(
            "connectors.graph.client_secret",
            config.client_secret_env.as_deref(),
            config.client_secret_file.as_deref(),
        )?;
        let mut client = HttpClient::new(http.policy())?;
        client.add_secret(client_secret.expose());
        Ok(GraphConnector {
            http: client,
            base: config.base_url.trim_end_matches('/').to_owned(),
            token_endpoint: config.token_endpoint(),
            client_id: config.client_id.clone(),
            client_secret,
            scope: config.scope.clone(),
            blocked_named_location: config.blocked_named_location.clone(),
            reset_methods: config.reset_methods.clone(),
            token: None,
        })
    }

    /// Drops the cached token (expired or refused); it need no longer be
    /// scrubbed from errors once it is not sent any more.
    fn forget_token(&mut self) {
        if let Some(old) = self.token.take() {
            self.http.remove_secret(&old.value);
        }
    }

    /// The cached access token, or a new one.
    fn token(&mut self) -> Result<String, ConnectorError> {
        if let Some(t) = &self.token
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        self.forget_token();
        let asked_at = Instant::now();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("scope", self.scope.as_str()),
        ];
        let endpoint = &self.token_endpoint;
        let response = self
            .http
            .send("graph token", |c| c.post(endpoint).form(&form))
            .map_err(|e| ConnectorError {
                // The status belongs to the token endpoint, not to the
                // action's API call: it is quoted in the message.
                status: None,
                message: format!("token request failed: {}", describe(&e)),
                ..e
            })?;
        let failed = |why: &str| ConnectorError {
            status: None,
            vendor_code: None,
            message: format!("token request failed: {why}"),
            attempts: 1,
        };
        // Never quote this body: it holds the token.
        let json: Value = serde_json::from_str(&response.body)
            .map_err(|_| failed(&format!("HTTP {}: the answer is not JSON", response.status)))?;
        let value = json
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| failed("the answer has no access_token"))?
            .to_owned();
        let lifetime = json
            .get("expires_in")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
            .unwrap_or(DEFAULT_LIFETIME_SECS)
            // A nonsense lifetime must not overflow the clock.
            .min(MAX_LIFETIME_SECS);
        self.http.add_secret(&value);
        tracing::debug!(
            expires_in = lifetime,
            "graph: obtained an access token from {}",
            self.token_endpoint
        );
        self.token = Some(CachedToken {
            value: value.clone(),
            refresh_at: asked_at + usable_for(Duration::from_secs(lifetime)),
        });
        Ok(value)
    }

    /// One Graph call: `path` is relative to the base URL and already
    /// encoded. A 401 drops the token, and the call is made once more
    /// with a new one.
    fn call(
        &mut self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<HttpResponse, ConnectorError> {
        let url = format!("{}{path}", self.base);
        let token = self.token()?;
        match self.send(what, &method, &url, body, &token) {
            Err(e) if e.status == Some(401) => {
                tracing::info!(
                    call = what,
                    "graph: {e}; fetching a new access token and retrying once"
                );
                self.forget_token();
                let token = self.token()?;
                self.send(what, &method, &url, body, &token)
                    .map_err(|again| ConnectorError {
                        attempts: again.attempts + e.attempts,
                        ..again
                    })
            }
            other => other,
        }
    }

    fn send(
        &self,
        what: &str,
        method: &Method,
        url: &str,
        body: Option<&Value>,
        token: &str,
    ) -> Result<HttpResponse, ConnectorError> {
        self.http.send(what, |c| {
            let request = c
                .request(method.clone(), url)
                .bearer_auth(token)
                .header(reqwest::header::ACCEPT, "application/json");
            match body {
                Some(b) => request.json(b),
                // Graph (like most front ends) wants a length on a POST.
                None if *method == Method::POST => request.body(""),
                None => request,
            }
        })
    }

    fn suspend(&mut self, user: &str, enabled: bool) -> Result<String, ConnectorError> {
        let path = format!("/users/{}", segment("user id", user)?);
        let what = if enabled {
            "graph unsuspend-user"
        } else {
            "graph suspend-user"
        };
        let r = self.call(
            what,
            Method::PATCH,
            &path,
            Some(&json!({ "accountEnabled": enabled })),
        )?;
        let done = if enabled { "re-enabled" } else { "disabled" };
        Ok(format!(
            "graph: {done} account {user} (PATCH {path} → {})",
            r.status
        ))
    }

    fn revoke_sessions(&mut self, user: &str) -> Result<String, ConnectorError> {
        let path = format!("/users/{}/revokeSignInSessions", segment("user id", user)?);
        let r = self.call("graph revoke-sessions", Method::POST, &path, None)?;
        Ok(format!(
            "graph: revoked sign-in sessions of {user} (POST {path} → {})",
            r.status
        ))
    }

    fn reset_factors(&mut self, user: &str) -> Result<String, ConnectorError> {
        let user_seg = segment("user id", user)?;
        let list_path = format!("/users/{user_seg}/authentication/methods");
        let mut methods = Vec::new();
        let mut path = list_path;
        let mut pages = 0;
        loop {
            pages += 1;
            let page = self.call("graph reset-factors", Method::GET, &path, None)?;
            let json = page.json()?;
            methods.extend(
                json.get("value")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            let Some(next) = json.get("@odata.nextLink").and_then(Value::as_str) else {
                break;
            };
            // Nothing is deleted until the whole list is known: a list cut
            // short would leave factors behind while saying "reset".
            let refused = |why: String| ConnectorError {
                status: Some(page.status),
                vendor_code: None,
                message: format!("graph: the methods list of {user} {why}; nothing was deleted"),
                attempts: pages,
            };
            // Follow a next link only below the configured API (same
            // scheme, host, port and path prefix): the token must not be
            // sent anywhere else.
            let rest = path_below(&self.base, next).map_err(|why| {
                refused(format!(
                    "continues at {next:?}, outside {} ({why}); not followed",
                    self.base
                ))
            })?;
            if pages >= MAX_PAGES as u32 || rest == path {
                return Err(refused(format!(
                    "does not end (more than {MAX_PAGES} pages, or a next link to the same page)"
                )));
            }
            path = rest;
        }

        let mut deleted: Vec<String> = Vec::new();
        let mut kept: Vec<String> = Vec::new();
        for m in &methods {
            let id = m.get("id").and_then(Value::as_str).unwrap_or("?");
            let Some(kind) = m
                .get("@odata.type")
                .and_then(Value::as_str)
                .and_then(method_kind)
            else {
                kept.push(format!("unknown {id}"));
                continue;
            };
            if kind == "password" || !self.reset_methods.iter().any(|k| k == kind) {
                kept.push(format!("{kind} {id}"));
                continue;
            }
            let path = format!(
                "/users/{user_seg}/authentication/{}Methods/{}",
                segment("method kind", kind)?,
                segment("method id", id)?
            );
            if let Err(e) = self.call("graph reset-factors", Method::DELETE, &path, None) {
                let before = if deleted.is_empty() {
                    "nothing was deleted before".to_owned()
                } else {
                    format!("deleted before the failure: {}", deleted.join(", "))
                };
                return Err(ConnectorError {
                    message: format!(
                        "deleting {kind} method {id} of {user} failed ({before}): {}",
                        e.message
                    ),
                    ..e
                });
            }
            deleted.push(format!("{kind} {id}"));
        }
        let deleted = if deleted.is_empty() {
            "no method to delete".to_owned()
        } else {
            format!("deleted {}", deleted.join(", "))
        };
        let kept = if kept.is_empty() {
            String::new()
        } else {
            format!("; kept {}", kept.join(", "))
        };
        Ok(format!(
            "graph: reset factors of {user}: {deleted}{kept} ({} listed)",
            plural(methods.len(), "method")
        ))
    }

    fn activate_policy(&mut self, policy: &str) -> Result<String, ConnectorError> {
        let path = format!(
            "/identity/conditionalAccess/policies/{}",
            segment("policy id", policy)?
        );
        let r = self.call(
            "graph activate-policy",
            Method::PATCH,
            &path,
            Some(&json!({ "state": "enabled" })),
        )?;
        Ok(format!(
            "graph: enabled conditional access policy {policy} (PATCH {path} → {})",
            r.status
        ))
    }

    fn add_to_group(&mut self, user: &str, group: &str) -> Result<String, ConnectorError> {
        let user_seg = segment("user id", user)?;
        let path = format!("/groups/{}/members/$ref", segment("group id", group)?);
        let body = json!({
            "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user_seg}")
        });
        match self.call("graph add-to-group", Method::POST, &path, Some(&body)) {
            Ok(r) => Ok(format!(
                "graph: added {user} to group {group} (POST {path} → {})",
                r.status
            )),
            Err(e) if is_already_member(&e) => Ok(format!(
                "graph: {user} is already a member of group {group} (POST {path} → 400)"
            )),
            Err(e) => Err(e),
        }
    }

    fn named_location(&self) -> Result<String, ConnectorError> {
        match &self.blocked_named_location {
            Some(id) => Ok(id.clone()),
            None => Err(ConnectorError::refused(
                "graph: block-ip needs connectors.graph.blocked_named_location \
                 (the id of an IP named location that a conditional access policy blocks)",
            )),
        }
    }

    /// The named location's `ipRanges`.
    fn ranges(&mut self, what: &str, path: &str) -> Result<Vec<Value>, ConnectorError> {
        let r = self.call(what, Method::GET, path, None)?;
        let json = r.json()?;
        if let Some(t) = json.get("@odata.type").and_then(Value::as_str)
            && t != IP_NAMED_LOCATION
        {
            return Err(ConnectorError {
                status: Some(r.status),
                vendor_code: None,
                message: format!("named location at {path} is a {t}, not an IP named location"),
                attempts: 1,
            });
        }
        Ok(json
            .get("ipRanges")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    fn put_ranges(
        &mut self,
        what: &str,
        path: &str,
        ranges: Vec<Value>,
    ) -> Result<HttpResponse, ConnectorError> {
        let body = json!({ "@odata.type": IP_NAMED_LOCATION, "ipRanges": ranges });
        self.call(what, Method::PATCH, path, Some(&body))
    }

    /// Adds `ip` to the named location; `false` when it was already there.
    fn block(&mut self, ip: &str) -> Result<(bool, String), ConnectorError> {
        let location = self.named_location()?;
        let addr = parse_ip(ip)?;
        let path = format!(
            "/identity/conditionalAccess/namedLocations/{}",
            segment("named location id", &location)?
        );
        let mut ranges = self.ranges("graph block-ip", &path)?;
        if ranges.iter().any(|r| range_is(r, addr)) {
            return Ok((
                false,
                format!("graph: {addr} was already in named location {location}; nothing changed"),
            ));
        }
        ranges.push(single_range(addr));
        let count = ranges.len();
        let r = self.put_ranges("graph block-ip", &path, ranges)?;
        Ok((
            true,
            format!(
                "graph: blocked {addr} in named location {location} ({}; PATCH {path} → {})",
                plural(count, "range"),
                r.status
            ),
        ))
    }

    fn unblock(&mut self, ip: &str) -> Result<String, ConnectorError> {
        let location = self.named_location()?;
        let addr = parse_ip(ip)?;
        let path = format!(
            "/identity/conditionalAccess/namedLocations/{}",
            segment("named location id", &location)?
        );
        let ranges = self.ranges("graph unblock-ip", &path)?;
        let before = ranges.len();
        let kept: Vec<Value> = ranges.into_iter().filter(|r| !range_is(r, addr)).collect();
        if kept.len() == before {
            return Ok(format!(
                "graph: {addr} was not in named location {location}; nothing changed"
            ));
        }
        let count = kept.len();
        let r = self.put_ranges("graph unblock-ip", &path, kept)?;
        Ok(format!(
            "graph: unblocked {addr} in named location {location} ({} left; PATCH {path} → {})",
            plural(count, "range"),
            r.status
        ))
    }
}

/// The `[connectors.graph]` connector, when configured (see
/// `dispatch::REGISTRY`).
pub fn from_config(config: &ConnectorsConfig) -> anyhow::Result<Vec<Box<dyn Connector>>> {
    match &config.graph {
        Some(c) => Ok(vec![Box::new(GraphConnector::new(c, &config.http)?)]),
        None => Ok(Vec::new()),
    }
}

impl Connector for GraphConnector {
    fn name(&self) -> &str {
        "graph"
    }

    fn directory_for(&self) -> Option<&'static str> {
        Some("entra")
    }

    fn supports(&self, kind: ActionKind) -> bool {
        !matches!(kind, ActionKind::Notify | ActionKind::Escalate)
    }

    fn execute(
        &mut self,
        action: &Action,
        ctx: &ActionContext<'_>,
    ) -> Result<Executed, ConnectorError> {
        tracing::debug!(
            action_id = ctx.action_id,
            rule = ctx.rule,
            event_id = ctx.event_id,
            "graph: {} on {}",
            action.kind().name(),
            action.target()
        );
        match action {
            Action::SuspendUser(s) => {
                let detail = self.suspend(&s.user, false)?;
                Ok(Executed {
                    detail,
                    undo: s.duration_secs.map(|_| Undo::Unsuspend {
                        user: s.user.clone(),
                    }),
                })
            }
            Action::RevokeSessions(user) => self.revoke_sessions(user).map(Executed::done),
            Action::ResetFactors(user) => self.reset_factors(user).map(Executed::done),
            Action::ActivatePolicy(policy) => self.activate_policy(policy).map(Executed::done),
            Action::AddToGroup(g) => self.add_to_group(&g.user, &g.group).map(Executed::done),
            Action::BlockIp(b) => {
                let (added, detail) = self.block(&b.ip)?;
                // An address that was already blocked (by hand, or by
                // another rule) is not unblocked when this one expires.
                let undo = match b.duration_secs {
                    Some(_) if added => Some(Undo::Unblock { ip: b.ip.clone() }),
                    _ => None,
                };
                Ok(Executed { detail, undo })
            }
            Action::AssignAppPolicy(a) => self
                .assign_app_policy(&a.app, &a.policy)
                .map(Executed::done),
            // The executor reads, writes and confirms through
            // `read_policy` / `write_policy`.
            Action::RestorePolicy(_) => Err(ConnectorError::refused(
                "restore-policy is carried out by the executor through read_policy and write_policy",
            )),
            Action::Notify(_) | Action::Escalate(_) => Err(ConnectorError::refused(format!(
                "graph: {} is not a Microsoft Graph action; send it to a webhook",
                action.kind().name()
            ))),
        }
    }

    fn mfa(&mut self) -> Option<&mut dyn MfaConfig> {
        Some(self)
    }

    fn undo(&mut self, undo: &Undo) -> Result<String, ConnectorError> {
        match undo {
            Undo::Unsuspend { user } => self.suspend(user, true),
            Undo::Unblock { ip } => self.unblock(ip),
            Undo::RestorePolicy { .. } => Err(ConnectorError::refused(
                "a restore is undone by the executor through read_policy and write_policy",
            )),
        }
    }

    fn check(&mut self) -> Result<Vec<String>, ConnectorError> {
        let mut lines = Vec::new();
        self.token()?;
        lines.push(format!(
            "graph: obtained an access token for client {} from {}",
            self.client_id, self.token_endpoint
        ));
        let path = "/users?$top=1&$select=id";
        let r = self.call("graph check", Method::GET, path, None)?;
        lines.push(format!(
            "graph: GET {path} → {} (can read users: User.Read.All)",
            r.status
        ));
        if let Some(location) = self.blocked_named_location.clone() {
            let path = format!(
                "/identity/conditionalAccess/namedLocations/{}",
                segment("named location id", &location)?
            );
            let ranges = self.ranges("graph check", &path)?;
            lines.push(format!(
                "graph: named location {location} is an IP named location with {} \
                 (can read policies: Policy.Read.All)",
                plural(ranges.len(), "range")
            ));
        }
        Ok(lines)
    }

    fn group_members(&mut self, group: &str) -> Result<Vec<GroupMember>, ConnectorError> {
        let mut path = format!(
            "/groups/{}/transitiveMembers/microsoft.graph.user?$select=id,userPrincipalName&$top=999",
            segment("group id", group)?
        );
        let mut members = Vec::new();
        let mut requests: u32 = 0;
        loop {
            requests += 1;
            let r = self
                .call("graph group members", Method::GET, &path, None)
                .map_err(|e| ConnectorError {
                    message: format!("GET {path}: {}", e.message),
                    ..e
                })?;
            let page = r.json()?;
            let invalid = |why: String| ConnectorError {
                status: Some(r.status),
                vendor_code: None,
                message: format!("GET {path}: {why}"),
                attempts: requests,
            };
            let Some(users) = page.get("value").and_then(Value::as_array) else {
                return Err(invalid("the answer has no `value` list".into()));
            };
            for (i, user) in users.iter().enumerate() {
                let Some(member) = GroupMember::from_user(user, "/userPrincipalName") else {
                    return Err(invalid(format!("member {i} of the page has no id")));
                };
                members.push(member);
            }
            if members.len() > MAX_GROUP_MEMBERS {
                return Err(ConnectorError::group_too_large("graph", group, requests));
            }
            let Some(next) = page.get("@odata.nextLink").and_then(Value::as_str) else {
                return Ok(members);
            };
            // The token goes only to the configured API.
            let rest = match path_below(&self.base, next) {
                Ok(rest) => rest,
                Err(why) => {
                    return Err(ConnectorError {
                        status: Some(r.status),
                        vendor_code: None,
                        message: format!(
                            "the member list of graph group {group} continues at {next:?}, outside {} ({why}); not followed",
                            self.base
                        ),
                        attempts: requests,
                    });
                }
            };
            if requests >= MAX_GROUP_PAGES as u32 || rest == path {
                return Err(ConnectorError {
                    status: Some(r.status),
                    vendor_code: None,
                    message: format!(
                        "the member list of graph group {group} does not end (more than {MAX_GROUP_PAGES} pages, or a next link to the same page); not followed further"
                    ),
                    attempts: requests,
                });
            }
            path = rest;
        }
    }

    fn resolve_user(&mut self, user: &str) -> Result<UserLookup, ConnectorError> {
        let path = format!(
            "/users/{}?$select={USER_NAME_FIELDS}",
            segment("user id", user)?
        );
        let r = self
            .call("graph resolve user", Method::GET, &path, None)
            .map_err(|e| ConnectorError {
                message: format!("GET {path}: {}", e.message),
                ..e
            })?;
        let json = r.json()?;
        graph_user_names(&json)
            .map(UserLookup::Found)
            .ok_or_else(|| ConnectorError {
                status: Some(r.status),
                vendor_code: None,
                message: format!("GET {path}: the answer is not a user with an id"),
                attempts: 1,
            })
    }
}

/// Every name Graph knows the user object `user` by: its `id`, and
/// `userPrincipalName`, `mail`, `otherMails` and `proxyAddresses` (without
/// their `SMTP:`/`smtp:`-style type prefix). `None` without an id.
pub fn graph_user_names(user: &Value) -> Option<ResolvedUser> {
    let id = user
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.trim().is_empty())?;
    let text = |key: &str| user.get(key).and_then(Value::as_str).map(str::to_owned);
    let list = |key: &str| {
        user.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let proxies = list("proxyAddresses").into_iter().map(|p| {
        // `SMTP:alice@contoso.com` (primary), `smtp:alias@…`, `SIP:…`.
        match p.split_once(':') {
            Some((kind, address))
                if !kind.is_empty()
                    && kind.len() <= 10
                    && kind.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                address.to_owned()
            }
            _ => p,
        }
    });
    let names = text("userPrincipalName")
        .into_iter()
        .chain(text("mail"))
        .chain(list("otherMails"))
        .chain(proxies);
    Some(ResolvedUser::new(id, names))
}

/// `status code: message` of an error from the token endpoint, for the
/// `token request failed: …` message.
fn describe(e: &ConnectorError) -> String {
    match (e.status, &e.vendor_code) {
        (Some(s), Some(code)) => format!("HTTP {s} {code}: {}", e.message),
        (Some(s), None) => format!("HTTP {s}: {}", e.message),
        (None, _) => e.message.clone(),
    }
}

/// `1 range`, `2 ranges`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// How long a token living `lifetime` is used.
fn usable_for(lifetime: Duration) -> Duration {
    if lifetime < SHORT_LIFETIME {
        lifetime / 2
    } else {
        lifetime - EXPIRY_MARGIN
    }
}

/// `value` as one URL path segment, percent-encoded, or refused when it
/// could change the path (`/`, `?`, `#`, `\`, `%`, `.`, `..`), is empty or
/// holds control characters. `what` names it in the refusal.
fn segment(what: &str, value: &str) -> Result<String, ConnectorError> {
    let problem = if value.is_empty() {
        Some("is empty".to_owned())
    } else if value == "." || value == ".." {
        Some("is a relative path".to_owned())
    } else {
        value
            .chars()
            .find(|c| matches!(c, '/' | '?' | '#' | '\\' | '%') || c.is_control())
            .map(|c| format!("contains {c:?}"))
    };
    if let Some(problem) = problem {
        return Err(ConnectorError::refused(format!(
            "graph: {what} {value:?} {problem}; it cannot be used in a URL path"
        )));
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// `microsoftAuthenticator` from `#microsoft.graph.microsoftAuthenticatorAuthenticationMethod`.
fn method_kind(odata_type: &str) -> Option<&str> {
    odata_type
        .strip_prefix(ODATA_PREFIX)?
        .strip_suffix(METHOD_SUFFIX)
        .filter(|k| !k.is_empty())
}

fn parse_ip(ip: &str) -> Result<IpAddr, ConnectorError> {
    ip.trim().parse().map_err(|_| {
        ConnectorError::refused(format!(
            "graph: block-ip target {ip:?} is not an IPv4 or IPv6 address"
        ))
    })
}

/// The range entry for one address (`/32` or `/128`).
fn single_range(addr: IpAddr) -> Value {
    match addr {
        IpAddr::V4(_) => json!({
            "@odata.type": "#microsoft.graph.iPv4CidrRange",
            "cidrAddress": format!("{addr}/32"),
        }),
        IpAddr::V6(_) => json!({
            "@odata.type": "#microsoft.graph.iPv6CidrRange",
            "cidrAddress": format!("{addr}/128"),
        }),
    }
}

/// Whether a range entry is exactly `addr` (`/32`, `/128`, or no prefix).
fn range_is(range: &Value, addr: IpAddr) -> bool {
    let Some(cidr) = range.get("cidrAddress").and_then(Value::as_str) else {
        return false;
    };
    let (ip, len) = match cidr.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (cidr, None),
    };
    let full = match addr {
        IpAddr::V4(_) => "32",
        IpAddr::V6(_) => "128",
    };
    ip.trim().parse::<IpAddr>().is_ok_and(|a| a == addr) && len.is_none_or(|l| l.trim() == full)
}

/// Whether adding a member failed only because it is already one.
fn is_already_member(e: &ConnectorError) -> bool {
    e.status == Some(400) && e.message.to_ascii_lowercase().contains(ALREADY_MEMBER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded_or_refused() {
        assert_eq!(segment("user id", "u1").unwrap(), "u1");
        assert_eq!(
            segment("user id", "alice@contoso.com").unwrap(),
            "alice@contoso.com"
        );
        assert_eq!(segment("user id", "a b").unwrap(), "a%20b");
        assert_eq!(segment("user id", "é").unwrap(), "%C3%A9");
        for bad in ["", ".", "..", "a/b", "a?b", "a#b", "a\\b", "%2e%2e", "a\nb"] {
            let e = segment("user id", bad).unwrap_err();
            assert_eq!(e.attempts, 0);
            assert!(e.message.contains("user id"), "{e}");
        }
        let e = segment("group id", "../admins").unwrap_err();
        assert_eq!(
            e.message,
            r#"graph: group id "../admins" contains '/'; it cannot be used in a URL path"#
        );
    }

    #[test]
    fn method_kinds_come_from_the_odata_type() {
        assert_eq!(
            method_kind("#microsoft.graph.microsoftAuthenticatorAuthenticationMethod"),
            Some("microsoftAuthenticator")
        );
        assert_eq!(
            method_kind("#microsoft.graph.passwordAuthenticationMethod"),
            Some("password")
        );
        assert_eq!(method_kind("#microsoft.graph.AuthenticationMethod"), None);
        assert_eq!(method_kind("#other.phoneAuthenticationMethod"), None);
    }

    #[test]
    fn token_lifetimes_keep_a_margin() {
        assert_eq!(
            usable_for(Duration::from_secs(3599)),
            Duration::from_secs(3539)
        );
        assert_eq!(
            usable_for(Duration::from_secs(120)),
            Duration::from_secs(60)
        );
        assert_eq!(usable_for(Duration::from_secs(90)), Duration::from_secs(45));
        assert_eq!(
            usable_for(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(usable_for(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn ranges_match_one_address_exactly() {
        let v4: IpAddr = "203.0.113.9".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(range_is(&single_range(v4), v4));
        assert!(range_is(&json!({"cidrAddress": "203.0.113.9"}), v4));
        assert!(!range_is(&json!({"cidrAddress": "203.0.113.0/24"}), v4));
        assert!(!range_is(&json!({"cidrAddress": "203.0.113.90/32"}), v4));
        assert!(range_is(&json!({"cidrAddress": "2001:DB8:0::1/128"}), v6));
        assert_eq!(
            single_range(v6),
            json!({"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "2001:db8::1/128"})
        );
        assert!(parse_ip("not-an-ip").is_err());
        assert!(parse_ip("10.0.0.0/8").is_err());
    }

    #[test]
    fn already_member_answer_is_recognised() {
        let error = |status, body| {
            let (code, message) = crate::actions::http::vendor_error_text(body);
            ConnectorError {
                status: Some(status),
                vendor_code: code,
                message,
                attempts: 1,
            }
        };
        let body = r#"{"error":{"code":"Request_BadRequest","message":"One or more added object references already exist for the following modified properties: 'members'."}}"#;
        assert!(is_already_member(&error(400, body)));
        assert!(!is_already_member(&error(403, body)));
        assert!(!is_already_member(&error(
            400,
            r#"{"error":{"code":"Request_BadRequest","message":"Invalid object identifier"}}"#
        )));
    }

    #[test]
    fn token_errors_quote_status_and_code() {
        let e = ConnectorError {
            status: Some(401),
            vendor_code: Some("invalid_client".into()),
            message: "AADSTS7000215: Invalid client secret provided.".into(),
            attempts: 1,
        };
        assert_eq!(
            describe(&e),
            "HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided."
        );
    }
}
