//! The `okta` connector: carries out identity actions through the Okta
//! Management API.
//!
//! | action | request |
//! |---|---|
//! | `suspend-user` | `POST /api/v1/users/{id}/lifecycle/suspend` (undo: `…/unsuspend`) |
//! | `revoke-sessions` | `DELETE /api/v1/users/{id}/sessions?oauthTokens=true` |
//! | `reset-factors` | `POST /api/v1/users/{id}/lifecycle/reset_factors` |
//! | `activate-policy` | `POST /api/v1/policies/{id}/lifecycle/activate` |
//! | `restore-policy`, its undo | `GET`, then `PUT` / lifecycle calls on `/api/v1/policies/{id}` and its rules (see `policies`) |
//! | `assign-app-policy` | `PUT /api/v1/apps/{appId}/policies/{policyId}` |
//! | `vigil baseline` | `GET /api/v1/policies?type=…`, their rules, `GET /api/v1/authenticators` (see `policies`) |
//! | `add-to-group` | `PUT /api/v1/groups/{groupId}/users/{userId}` |
//! | `block-ip` | `GET` then `PUT /api/v1/zones/{blocklist_zone}` (undo: the same, address removed) |
//! | protected group members (`[protected] groups`) | `GET /api/v1/groups/{groupId}/users?limit=200`, following `Link: <…>; rel="next"` |
//! | resolving a user target (before every user action) | `GET /api/v1/users/{id, login or shortname}` |
//!
//! `notify` and `escalate` are not Okta's: a webhook serves them.
//!
//! # Permissions
//! The token is an API token (`Authorization: SSWS …`, the default) or an
//! OAuth 2.0 access token (`auth_scheme = "bearer"`). An API token acts
//! with the roles of the admin who created it; an OAuth service app needs
//! both the scopes below granted and an admin role that allows the action.
//!
//! | action | OAuth scope | admin role (standard roles) |
//! |---|---|---|
//! | `suspend-user`, its undo (unsuspend) | `okta.users.manage` | Org Admin (or Group Admin over the user's groups) |
//! | `revoke-sessions` | `okta.users.manage` | Help Desk Admin or Org Admin |
//! | `reset-factors` | `okta.users.manage` | Help Desk Admin or Org Admin |
//! | `activate-policy`, `restore-policy` | `okta.policies.manage` | Super Admin |
//! | `assign-app-policy` | `okta.apps.manage` | Super Admin (or App Admin) |
//! | `vigil baseline capture` / `diff`, restore confirmation | `okta.policies.read`, `okta.authenticators.read` | Read-only Admin |
//! | `add-to-group` | `okta.groups.manage` | Org Admin, Group Admin or Group Membership Admin over the group |
//! | `block-ip`, its undo | `okta.networkZones.manage` | Super Admin (or a custom role that manages network zones) |
//! | `vigil check` | `okta.users.read` (+ `okta.networkZones.read` with a blocklist zone) | any admin that can list users |
//! | protected group members | `okta.groups.read` | Read-only Admin (or any admin that can see the group) |
//! | resolving user targets (every user action) | `okta.users.read` | any admin that can read the user |
//!
//! Grant only what the dispatched actions need: an org that routes only
//! `revoke-sessions` and `reset-factors` to Okta needs a Help Desk Admin's
//! token, not a Super Admin's.
//!
//! # block-ip
//! Okta has no "block this address" call: the address is added as a
//! `CIDR` gateway (`/32`, or `/128` for IPv6) to the network zone named by
//! `connectors.okta.blocklist_zone`, read with `GET` and written back whole
//! with `PUT` (every other field as received). The zone must have
//! `usage: BLOCKLIST`: the same edit on a `POLICY` zone would put the
//! address in a zone that policies may *allow*, so it is refused. The edit
//! is read-modify-write with no version check (Okta offers none for zones):
//! an administrator editing the zone in the same instant could lose an
//! edit, or Vigil could. Undo removes only the exact `CIDR` gateway
//! block-ip adds; a range or an entry an administrator wrote differently is
//! left alone. When the gateway is already there, nothing is written and no
//! unblock is scheduled, whatever the duration: someone else blocked the
//! address (an administrator, or another action), and lifting their block
//! would be the worse mistake.
//!
//! # Suspending a suspended user
//! Okta refuses (400) to suspend a user that is not `ACTIVE`. The connector
//! then reads the user: if they are `SUSPENDED` the action succeeds ("was
//! already SUSPENDED") but schedules no unsuspend, whatever its duration —
//! an administrator (or an earlier attempt of ours whose answer was lost)
//! suspended them, and unsuspending an account an administrator suspended
//! is the worse mistake. Likewise the unsuspend undo succeeds when the user
//! is no longer suspended.
//!
//! # Group members
//! `[protected] groups = ["okta:00g…"]` lists a group's users page by page
//! (200 a page) and follows the `Link: <…>; rel="next"` header only while
//! it stays on the configured org URL (same scheme, host and port, a path
//! below the org URL's: [`path_below`]): the token is never sent to
//! another host, and a next link elsewhere is an error, not a silently
//! shorter list. Each member gives its `id` and `profile.login`; an entry without
//! an id is an error (a member we cannot name is one we cannot protect).
//! More than [`MAX_GROUP_MEMBERS`] members is refused as a misconfiguration.
//!
//! # Resolving user targets
//! `/api/v1/users/{id}` accepts an id, a login or a login's shortname, so
//! before a user action the executor resolves the target with
//! [`Connector::resolve_user`] (`GET /api/v1/users/{name}`): the user's
//! `id`, `profile.login`, the login's shortname, `profile.email` and
//! `profile.secondEmail` are checked against the protected accounts, and
//! the action is sent with the `id` only (see `policy::targets`).
//!
//! # Targets
//! User, group, policy and zone ids become path segments. An id that is
//! empty, is `.`, contains `..`, `/`, `\`, `?`, `#`, whitespace or a control
//! character is refused before anything is sent; anything else outside the
//! URL-unreserved characters is percent-encoded, so no target can change
//! which resource a request reaches.

mod policies;

use std::net::IpAddr;

use anyhow::Result;
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

use crate::config::connectors::{ConnectorsConfig, HttpConfig, OktaAuthScheme, OktaConfig};
use crate::model::{Action, ActionKind};

use super::connector::{
    ActionContext, Connector, ConnectorError, Executed, GroupMember, MAX_GROUP_MEMBERS,
    MAX_GROUP_PAGES, MfaConfig, ResolvedUser, Undo, UserLookup,
};
use super::http::{HttpClient, HttpResponse, path_below};
use crate::secret::{self, Secret};

/// The usage a zone must have for block-ip to edit it.
const BLOCKLIST: &str = "BLOCKLIST";

pub struct OktaConnector {
    base_url: String,
    /// The whole `Authorization` header value.
    authorization: Secret,
    blocklist_zone: Option<String>,
    http: HttpClient,
}

impl OktaConnector {
    /// Builds the connector; reads the token (`connectors.okta.token_env`
    /// or `token_file`).
    pub fn new(config: &OktaConfig, http: &HttpConfig) -> Result<Self> {
        let token = secret::load(
            "connectors.okta.token",
            config.token_env.as_deref(),
            config.token_file.as_deref(),
        )?;
        let mut client = HttpClient::new(http.policy())?;
        client.add_secret(token.expose());
        let scheme = match config.auth_scheme {
            OktaAuthScheme::Ssws => "SSWS",
            OktaAuthScheme::Bearer => "Bearer",
        };
        Ok(OktaConnector {
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            authorization: Secret::new(format!("{scheme} {}", token.expose())),
            blocklist_zone: config.blocklist_zone.clone(),
            http: client,
        })
    }

    /// One request: `path` (with its query) below the base URL, JSON
    /// `body` when given. Returns the response and the `METHOD path → status`
    /// text audit details quote.
    fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(HttpResponse, String), ConnectorError> {
        let url = format!("{}{path}", self.base_url);
        let body = body.map(Value::to_string);
        let build = |client: &Client| -> RequestBuilder {
            let request = client
                .request(method.clone(), &url)
                .header("Authorization", self.authorization.expose())
                .header("Accept", "application/json");
            match &body {
                Some(b) => request
                    .header("Content-Type", "application/json")
                    .body(b.clone()),
                None => request,
            }
        };
        let response = self.http.send(what, build)?;
        let line = format!("{method} {path} → {}", response.status);
        Ok((response, line))
    }

    /// `POST` a lifecycle operation on a user; returns `METHOD path → status`.
    fn user_lifecycle(&self, what: &str, user: &str, op: &str) -> Result<String, ConnectorError> {
        let path = format!("/api/v1/users/{}/lifecycle/{op}", segment("user", user)?);
        self.call(what, Method::POST, &path, None)
            .map(|(_, line)| line)
    }

    /// A user's `status` and the `GET … → 200` line, or `None` when it
    /// cannot be read.
    fn user_status(&self, user: &str) -> Option<(String, String)> {
        let path = format!("/api/v1/users/{}", segment("user", user).ok()?);
        let (response, line) = self
            .call("okta user status", Method::GET, &path, None)
            .ok()?;
        let status = response.json().ok()?.get("status")?.as_str()?.to_owned();
        Some((status, line))
    }

    fn zone_id(&self) -> Result<&str, ConnectorError> {
        self.blocklist_zone.as_deref().ok_or_else(|| {
            ConnectorError::refused(
                "connectors.okta.blocklist_zone is not set; block-ip needs a BLOCKLIST network zone",
            )
        })
    }

    /// Reads the blocklist zone and checks it is one.
    fn read_zone(&self, what: &str, zone: &str) -> Result<(String, Value, String), ConnectorError> {
        let path = format!("/api/v1/zones/{}", segment("zone", zone)?);
        let (response, line) = self
            .call(what, Method::GET, &path, None)
            .map_err(|e| context(e, &format!("GET {path}")))?;
        let body = response
            .json()
            .map_err(|e| context(e, &format!("GET {path}")))?;
        check_blocklist_zone(zone, &body)?;
        Ok((path, body, line))
    }

    /// Writes the zone back whole.
    fn write_zone(&self, what: &str, path: &str, zone: &Value) -> Result<String, ConnectorError> {
        self.call(what, Method::PUT, path, Some(zone))
            .map(|(_, line)| line)
            .map_err(|e| context(e, &format!("PUT {path}")))
    }

    /// Adds the address; the detail, and whether this call added it (so
    /// its removal may be scheduled).
    fn block_ip(&self, target: &str) -> Result<(String, bool), ConnectorError> {
        let zone_id = self.zone_id()?;
        let ip = parse_ip(target)?;
        let (path, mut zone, get) = self.read_zone("okta block-ip", zone_id)?;
        let note = inactive_note(&zone);
        if !add_gateway(&mut zone, ip)? {
            return Ok((
                format!("okta: {ip} already in blocklist zone {zone_id} ({get}){note}"),
                false,
            ));
        }
        let put = self.write_zone("okta block-ip", &path, &zone)?;
        Ok((
            format!("okta: blocked {ip} in zone {zone_id} ({get}, {put}){note}"),
            true,
        ))
    }

    fn unblock_ip(&self, target: &str) -> Result<String, ConnectorError> {
        let zone_id = self.zone_id()?;
        let ip = parse_ip(target)?;
        let (path, mut zone, get) = self.read_zone("okta unblock-ip", zone_id)?;
        if !remove_gateway(&mut zone, ip) {
            return Ok(format!(
                "okta: {ip} was not in blocklist zone {zone_id}; nothing to remove ({get})"
            ));
        }
        let put = self.write_zone("okta unblock-ip", &path, &zone)?;
        Ok(format!(
            "okta: unblocked {ip} in zone {zone_id} ({get}, {put})"
        ))
    }
}

/// The `[connectors.okta]` connector, when configured (see
/// `dispatch::REGISTRY`).
pub fn from_config(config: &ConnectorsConfig) -> anyhow::Result<Vec<Box<dyn Connector>>> {
    match &config.okta {
        Some(c) => Ok(vec![Box::new(OktaConnector::new(c, &config.http)?)]),
        None => Ok(Vec::new()),
    }
}

impl Connector for OktaConnector {
    fn name(&self) -> &str {
        "okta"
    }

    fn directory_for(&self) -> Option<&'static str> {
        Some("okta")
    }

    fn supports(&self, kind: ActionKind) -> bool {
        !matches!(kind, ActionKind::Notify | ActionKind::Escalate)
    }

    fn execute(
        &mut self,
        action: &Action,
        _ctx: &ActionContext<'_>,
    ) -> Result<Executed, ConnectorError> {
        match action {
            Action::SuspendUser(s) => match self.user_lifecycle("okta suspend", &s.user, "suspend")
            {
                Ok(line) => Ok(Executed {
                    detail: format!("okta: suspended {} ({line})", s.user),
                    undo: s.duration_secs.map(|_| Undo::Unsuspend {
                        user: s.user.clone(),
                    }),
                }),
                // Okta refuses to suspend a user that is not ACTIVE. When the
                // user is already SUSPENDED the goal is met; but someone else
                // (an administrator, or an earlier attempt of ours whose
                // answer was lost) suspended them, so no unsuspend is
                // scheduled: unsuspending an account an administrator
                // suspended would be worse than leaving ours suspended.
                Err(e) if e.status == Some(400) => match self.user_status(&s.user) {
                    Some((status, get)) if status == "SUSPENDED" => Ok(Executed::done(format!(
                        "okta: {} was already SUSPENDED (POST → 400, {get}); no unsuspend scheduled",
                        s.user
                    ))),
                    _ => Err(e),
                },
                Err(e) => Err(e),
            },
            Action::RevokeSessions(user) => {
                let path = format!(
                    "/api/v1/users/{}/sessions?oauthTokens=true",
                    segment("user", user)?
                );
                let (_, line) = self.call("okta revoke-sessions", Method::DELETE, &path, None)?;
                Ok(Executed::done(format!(
                    "okta: revoked sessions and OAuth tokens of {user} ({line})"
                )))
            }
            Action::ResetFactors(user) => {
                let line = self.user_lifecycle("okta reset-factors", user, "reset_factors")?;
                Ok(Executed::done(format!(
                    "okta: reset factors of {user} ({line})"
                )))
            }
            Action::ActivatePolicy(policy) => {
                let path = format!(
                    "/api/v1/policies/{}/lifecycle/activate",
                    segment("policy", policy)?
                );
                let (_, line) = self.call("okta activate-policy", Method::POST, &path, None)?;
                Ok(Executed::done(format!(
                    "okta: activated policy {policy} ({line})"
                )))
            }
            Action::AddToGroup(m) => {
                let path = format!(
                    "/api/v1/groups/{}/users/{}",
                    segment("group", &m.group)?,
                    segment("user", &m.user)?
                );
                let (_, line) = self.call("okta add-to-group", Method::PUT, &path, None)?;
                Ok(Executed::done(format!(
                    "okta: added {} to group {} ({line})",
                    m.user, m.group
                )))
            }
            Action::BlockIp(b) => {
                let (mut detail, added) = self.block_ip(&b.ip)?;
                // An address already in the zone was put there by someone
                // else: removing it later could lift their block.
                if !added && b.duration_secs.is_some() {
                    detail.push_str("; no unblock scheduled");
                }
                Ok(Executed {
                    detail,
                    undo: b
                        .duration_secs
                        .filter(|_| added)
                        .map(|_| Undo::Unblock { ip: b.ip.clone() }),
                })
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
                "the okta connector does not carry out {}; dispatch it to a webhook",
                action.kind().name()
            ))),
        }
    }

    fn mfa(&mut self) -> Option<&mut dyn MfaConfig> {
        Some(self)
    }

    fn undo(&mut self, undo: &Undo) -> Result<String, ConnectorError> {
        match undo {
            Undo::Unsuspend { user } => {
                match self.user_lifecycle("okta unsuspend", user, "unsuspend") {
                    Ok(line) => Ok(format!("okta: unsuspended {user} ({line})")),
                    // Okta refuses to unsuspend a user that is not SUSPENDED:
                    // someone already did, or the account was deactivated.
                    Err(e) if e.status == Some(400) => match self.user_status(user) {
                        Some((status, get)) if status != "SUSPENDED" => Ok(format!(
                            "okta: {user} is no longer suspended (status {status}; POST → 400, {get}); nothing to undo"
                        )),
                        _ => Err(e),
                    },
                    Err(e) => Err(e),
                }
            }
            Undo::Unblock { ip } => self.unblock_ip(ip),
            Undo::RestorePolicy { .. } => Err(ConnectorError::refused(
                "a restore is undone by the executor through read_policy and write_policy",
            )),
        }
    }

    fn check(&mut self) -> Result<Vec<String>, ConnectorError> {
        let path = "/api/v1/users?limit=1";
        let (_, line) = self
            .call("okta check", Method::GET, path, None)
            .map_err(|e| context(e, &format!("GET {path}")))?;
        let mut lines = vec![format!(
            "okta: token accepted by {} ({line})",
            self.base_url
        )];
        if let Some(zone_id) = &self.blocklist_zone {
            let (_, zone, line) = self.read_zone("okta check", zone_id)?;
            if zone.get("status").and_then(Value::as_str) == Some("INACTIVE") {
                return Err(ConnectorError {
                    status: None,
                    vendor_code: None,
                    message: format!(
                        "network zone {zone_id} is INACTIVE: addresses block-ip adds to it are not blocked ({line})"
                    ),
                    attempts: 1,
                });
            }
            let name = zone.get("name").and_then(Value::as_str).unwrap_or("?");
            let count = zone
                .get("gateways")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            lines.push(format!(
                "okta: blocklist zone {zone_id} ({name:?}, {count} gateways) has usage BLOCKLIST ({line})"
            ));
        }
        Ok(lines)
    }

    fn group_members(&mut self, group: &str) -> Result<Vec<GroupMember>, ConnectorError> {
        let mut path = format!(
            "/api/v1/groups/{}/users?limit=200",
            segment("group", group)?
        );
        let mut members = Vec::new();
        let mut requests = 0;
        loop {
            requests += 1;
            let (response, _) = self
                .call("okta group members", Method::GET, &path, None)
                .map_err(|e| context(e, &format!("GET {path}")))?;
            let page = response
                .json()
                .map_err(|e| context(e, &format!("GET {path}")))?;
            let invalid = |why: String| ConnectorError {
                status: Some(response.status),
                vendor_code: None,
                message: format!("GET {path}: {why}"),
                attempts: requests,
            };
            let Some(users) = page.as_array() else {
                return Err(invalid("the answer is not a list of users".into()));
            };
            for (i, user) in users.iter().enumerate() {
                let Some(member) = GroupMember::from_user(user, "/profile/login") else {
                    return Err(invalid(format!("user {i} of the page has no id")));
                };
                members.push(member);
            }
            if members.len() > MAX_GROUP_MEMBERS {
                return Err(ConnectorError::group_too_large("okta", group, requests));
            }
            // An empty page ends the list whatever the headers say.
            let next = if users.is_empty() {
                None
            } else {
                next_link(&response.headers)
            };
            let Some(next) = next else {
                return Ok(members);
            };
            // The token goes only to the configured org.
            let rest = match path_below(&self.base_url, &next) {
                Ok(rest) => rest,
                Err(why) => {
                    return Err(ConnectorError {
                        status: Some(response.status),
                        vendor_code: None,
                        message: format!(
                            "the member list of okta group {group} continues at {next:?}, outside {} ({why}); not followed",
                            self.base_url
                        ),
                        attempts: requests,
                    });
                }
            };
            if requests >= MAX_GROUP_PAGES as u32 {
                return Err(ConnectorError {
                    status: Some(response.status),
                    vendor_code: None,
                    message: format!(
                        "the member list of okta group {group} is longer than {MAX_GROUP_PAGES} pages; not followed further"
                    ),
                    attempts: requests,
                });
            }
            path = rest;
        }
    }

    fn resolve_user(&mut self, user: &str) -> Result<UserLookup, ConnectorError> {
        let path = format!("/api/v1/users/{}", segment("user", user)?);
        let (response, _) = self
            .call("okta resolve user", Method::GET, &path, None)
            .map_err(|e| context(e, &format!("GET {path}")))?;
        let body = response
            .json()
            .map_err(|e| context(e, &format!("GET {path}")))?;
        okta_user_names(&body)
            .map(UserLookup::Found)
            .ok_or_else(|| ConnectorError {
                status: Some(response.status),
                vendor_code: None,
                message: format!("GET {path}: the answer is not a user with an id"),
                attempts: 1,
            })
    }
}

/// Every name Okta accepts for the user object `user`: its `id`, and
/// `profile.login`, the login's shortname (the part before `@`, which
/// `/api/v1/users/{id}` also accepts), `profile.email` and
/// `profile.secondEmail`. `None` without an id.
pub fn okta_user_names(user: &Value) -> Option<ResolvedUser> {
    let id = user
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.trim().is_empty())?;
    let profile = |key: &str| {
        user.pointer(&format!("/profile/{key}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let login = profile("login");
    let shortname = login
        .as_deref()
        .and_then(|l| l.split_once('@'))
        .map(|(short, _)| short.to_owned());
    let names = [login, shortname, profile("email"), profile("secondEmail")];
    Some(ResolvedUser::new(id, names.into_iter().flatten()))
}

/// The URL of the `rel="next"` entry of the `Link` headers (RFC 8288; Okta
/// sends one header per link, others join them with commas).
pub(crate) fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.trim().split_once(';')?;
            let url = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            params
                .split(';')
                .filter_map(|p| p.trim().split_once('='))
                .any(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                })
                .then(|| url.to_owned())
        })
}

/// Prefixes an error's message with the call that failed (multi-request
/// actions).
fn context(mut e: ConnectorError, call: &str) -> ConnectorError {
    e.message = format!("{call}: {}", e.message);
    e
}

/// `id` as one percent-encoded path segment, or refused when it could
/// never name one resource. `what` names the id in the message.
pub fn segment(what: &str, id: &str) -> Result<String, ConnectorError> {
    let problem = if id.is_empty() {
        Some("is empty")
    } else if id == "." || id.contains("..") {
        Some("contains a dot segment")
    } else if id.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if id.contains(['?', '#']) {
        Some("contains '?' or '#'")
    } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or a control character")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(ConnectorError::refused(format!(
            "okta {what} id {id:?} {problem}; refusing to build a request path from it"
        )));
    }
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// The target of block-ip as an address.
fn parse_ip(target: &str) -> Result<IpAddr, ConnectorError> {
    target.parse().map_err(|_| {
        ConnectorError::refused(format!(
            "block-ip target {target:?} is not an IPv4 or IPv6 address"
        ))
    })
}

/// Refuses a zone whose `usage` is not BLOCKLIST, or that has no gateways
/// to edit (not an IP zone).
fn check_blocklist_zone(zone_id: &str, zone: &Value) -> Result<(), ConnectorError> {
    let refused = |message: String| ConnectorError {
        status: None,
        vendor_code: None,
        message,
        attempts: 1,
    };
    match zone.get("usage").and_then(Value::as_str) {
        Some(BLOCKLIST) => {}
        other => {
            return Err(refused(format!(
                "network zone {zone_id} has usage {}, not BLOCKLIST; adding an address to it \
                 could allow the address instead of blocking it",
                other.unwrap_or("(none)")
            )));
        }
    }
    if let Some(kind) = zone.get("type").and_then(Value::as_str)
        && kind != "IP"
    {
        return Err(refused(format!(
            "network zone {zone_id} is of type {kind}, not IP; block-ip adds IP gateways"
        )));
    }
    Ok(())
}

/// " (zone is INACTIVE: …)" when the zone blocks nothing yet.
fn inactive_note(zone: &Value) -> &'static str {
    if zone.get("status").and_then(Value::as_str) == Some("INACTIVE") {
        "; the zone is INACTIVE, so nothing is blocked until it is activated"
    } else {
        ""
    }
}

/// The gateway block-ip adds for `ip`: `<ip>/32` or `<ip>/128`.
pub fn gateway_value(ip: IpAddr) -> String {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    format!("{ip}/{len}")
}

/// Whether a gateway entry is exactly the CIDR block-ip adds for `ip`
/// (compared as addresses, so `2001:DB8::1/128` matches `2001:db8::1`).
fn is_gateway_for(gateway: &Value, ip: IpAddr) -> bool {
    if gateway.get("type").and_then(Value::as_str) != Some("CIDR") {
        return false;
    }
    let Some(value) = gateway.get("value").and_then(Value::as_str) else {
        return false;
    };
    let Some((addr, len)) = value.trim().split_once('/') else {
        return false;
    };
    let full = if ip.is_ipv4() { "32" } else { "128" };
    len == full && addr.parse::<IpAddr>() == Ok(ip)
}

/// Adds the CIDR gateway for `ip` to a zone unless it is there; `false`
/// when it was. Everything else in the zone is left as it was.
pub fn add_gateway(zone: &mut Value, ip: IpAddr) -> Result<bool, ConnectorError> {
    let Some(obj) = zone.as_object_mut() else {
        return Err(ConnectorError {
            status: None,
            vendor_code: None,
            message: "the network zone is not a JSON object".to_owned(),
            attempts: 1,
        });
    };
    let gateways = obj.entry("gateways").or_insert(Value::Null);
    if gateways.is_null() {
        *gateways = Value::Array(Vec::new());
    }
    let Some(list) = gateways.as_array_mut() else {
        return Err(ConnectorError {
            status: None,
            vendor_code: None,
            message: "the network zone's gateways is not a list".to_owned(),
            attempts: 1,
        });
    };
    if list.iter().any(|g| is_gateway_for(g, ip)) {
        return Ok(false);
    }
    list.push(json!({"type": "CIDR", "value": gateway_value(ip)}));
    Ok(true)
}

/// Removes the CIDR gateway(s) block-ip adds for `ip`; `false` when there
/// was none.
pub fn remove_gateway(zone: &mut Value, ip: IpAddr) -> bool {
    let Some(list) = zone.get_mut("gateways").and_then(Value::as_array_mut) else {
        return false;
    };
    let before = list.len();
    list.retain(|g| !is_gateway_for(g, ip));
    list.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_found_in_any_link_header() {
        use reqwest::header::{HeaderMap, HeaderValue, LINK};
        let mut h = HeaderMap::new();
        assert_eq!(next_link(&h), None);
        h.append(
            LINK,
            HeaderValue::from_static(
                "<https://o.okta.com/api/v1/groups/g/users?limit=2>; rel=\"self\"",
            ),
        );
        assert_eq!(next_link(&h), None, "self only");
        h.append(
            LINK,
            HeaderValue::from_static(
                "<https://o.okta.com/api/v1/groups/g/users?after=00u2&limit=2>; rel=\"next\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://o.okta.com/api/v1/groups/g/users?after=00u2&limit=2")
        );
        // One header, comma-joined, unquoted rel.
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static("<https://a/x>; rel=self, <https://a/y>; rel=next"),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://a/y"));
    }

    #[test]
    fn plain_ids_pass_unchanged() {
        assert_eq!(segment("user", "00u1abcD_-.~").unwrap(), "00u1abcD_-.~");
    }

    #[test]
    fn other_characters_are_percent_encoded() {
        assert_eq!(
            segment("user", "alice@example.com").unwrap(),
            "alice%40example.com"
        );
        assert_eq!(segment("user", "%2e%2e").unwrap(), "%252e%252e");
        assert_eq!(
            segment("user", "a;b=c&d+é").unwrap(),
            "a%3Bb%3Dc%26d%2B%C3%A9"
        );
    }

    #[test]
    fn ids_that_could_change_the_path_are_refused() {
        for (id, why) in [
            ("", "is empty"),
            (".", "dot segment"),
            ("..", "dot segment"),
            ("../x", "dot segment"),
            ("a..b", "dot segment"),
            ("a/b", "path separator"),
            ("a\\b", "path separator"),
            ("a?b=1", "'?' or '#'"),
            ("a#b", "'?' or '#'"),
            ("a b", "whitespace"),
            ("a\nb", "whitespace"),
            ("a\u{0}b", "control"),
        ] {
            let err = segment("user", id).unwrap_err();
            assert_eq!(err.attempts, 0, "{id:?}");
            assert_eq!(err.status, None, "{id:?}");
            assert!(err.message.contains(why), "{id:?}: {}", err.message);
            assert!(err.message.contains("okta user id"), "{}", err.message);
        }
    }

    #[test]
    fn gateway_is_added_once_and_other_fields_are_kept() {
        let mut zone = json!({
            "id": "nzo1", "name": "Blocked", "type": "IP", "usage": "BLOCKLIST",
            "status": "ACTIVE", "proxies": null, "system": false,
            "gateways": [{"type": "RANGE", "value": "10.0.0.1-10.0.0.9"}],
            "_links": {"self": {"href": "x"}}
        });
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        assert!(add_gateway(&mut zone, ip).unwrap());
        assert!(!add_gateway(&mut zone, ip).unwrap(), "already present");
        assert_eq!(
            zone,
            json!({
                "id": "nzo1", "name": "Blocked", "type": "IP", "usage": "BLOCKLIST",
                "status": "ACTIVE", "proxies": null, "system": false,
                "gateways": [
                    {"type": "RANGE", "value": "10.0.0.1-10.0.0.9"},
                    {"type": "CIDR", "value": "203.0.113.7/32"}
                ],
                "_links": {"self": {"href": "x"}}
            })
        );
    }

    #[test]
    fn ipv6_uses_128_and_compares_as_addresses() {
        let ip: IpAddr = "2001:DB8:0:0::1".parse().unwrap();
        assert_eq!(gateway_value(ip), "2001:db8::1/128");
        let mut zone = json!({"gateways": [{"type": "CIDR", "value": "2001:0db8::0001/128"}]});
        assert!(!add_gateway(&mut zone, ip).unwrap());
        assert!(remove_gateway(&mut zone, ip));
        assert_eq!(zone, json!({"gateways": []}));
    }

    #[test]
    fn null_or_missing_gateways_become_a_list() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for mut zone in [json!({"usage": "BLOCKLIST"}), json!({"gateways": null})] {
            assert!(add_gateway(&mut zone, ip).unwrap());
            assert_eq!(
                zone["gateways"],
                json!([{"type": "CIDR", "value": "192.0.2.1/32"}])
            );
        }
        let mut zone = json!({"gateways": "nonsense"});
        assert!(add_gateway(&mut zone, ip).is_err());
    }

    #[test]
    fn removal_touches_only_the_exact_cidr() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut zone = json!({"gateways": [
            {"type": "CIDR", "value": "192.0.2.0/24"},
            {"type": "RANGE", "value": "192.0.2.1-192.0.2.1"},
            {"type": "CIDR", "value": "192.0.2.1/32"},
            {"type": "CIDR", "value": "192.0.2.10/32"}
        ]});
        assert!(remove_gateway(&mut zone, ip));
        assert!(!remove_gateway(&mut zone, ip), "already gone");
        assert_eq!(
            zone["gateways"],
            json!([
                {"type": "CIDR", "value": "192.0.2.0/24"},
                {"type": "RANGE", "value": "192.0.2.1-192.0.2.1"},
                {"type": "CIDR", "value": "192.0.2.10/32"}
            ])
        );
        assert!(!remove_gateway(&mut json!({"gateways": null}), ip));
    }

    #[test]
    fn only_blocklist_ip_zones_are_edited() {
        assert!(check_blocklist_zone("z", &json!({"usage": "BLOCKLIST", "type": "IP"})).is_ok());
        assert!(check_blocklist_zone("z", &json!({"usage": "BLOCKLIST"})).is_ok());
        let err = check_blocklist_zone("z", &json!({"usage": "POLICY", "type": "IP"})).unwrap_err();
        assert!(
            err.message.contains("usage POLICY, not BLOCKLIST"),
            "{}",
            err.message
        );
        let err = check_blocklist_zone("z", &json!({"type": "IP"})).unwrap_err();
        assert!(err.message.contains("usage (none)"), "{}", err.message);
        let err = check_blocklist_zone("z", &json!({"usage": "BLOCKLIST", "type": "DYNAMIC"}))
            .unwrap_err();
        assert!(err.message.contains("type DYNAMIC"), "{}", err.message);
    }

    #[test]
    fn an_inactive_zone_is_noted() {
        assert_eq!(inactive_note(&json!({"status": "ACTIVE"})), "");
        assert!(inactive_note(&json!({"status": "INACTIVE"})).contains("INACTIVE"));
    }

    #[test]
    fn block_ip_targets_must_be_addresses() {
        assert!(parse_ip("203.0.113.7").is_ok());
        assert!(parse_ip("::1").is_ok());
        for bad in [
            "",
            "203.0.113.7/24",
            "example.com",
            "203.0.113.256",
            "1.2.3.4; rm",
        ] {
            let err = parse_ip(bad).unwrap_err();
            assert_eq!(err.attempts, 0);
            assert!(
                err.message.contains("not an IPv4 or IPv6 address"),
                "{bad:?}"
            );
        }
    }
}
