//! A fake identity provider for the connector tests: one real HTTP/1 server
//! on `127.0.0.1` (an ephemeral port) that answers like Okta's Management
//! API, Microsoft Graph v1.0 with its Entra ID token endpoint, and webhook
//! receivers.
//!
//! The server runs on a background thread with its own tokio runtime, so
//! synchronous tests (and a separate `vigil` process) can call it with any
//! HTTP client. [`FakeIdp::start`] returns once the socket is listening;
//! dropping the [`FakeIdp`] stops the server and closes its connections.
//!
//! Every request is recorded ([`FakeIdp::requests`]) before it is answered,
//! including the ones refused for bad credentials and the ones answered with
//! an injected [`Fault`] ([`FakeIdp::inject`]). The remediations change a small
//! in-memory state that the tests read back: [`FakeIdp::okta_user_status`],
//! [`FakeIdp::graph_account_enabled`], [`FakeIdp::okta_zone_gateways`], ….
//!
//! | URL | what |
//! |---|---|
//! | [`FakeIdp::base_url`] | the Okta org: `/api/v1/...`, `Authorization: SSWS` [`OKTA_TOKEN`] |
//! | [`FakeIdp::token_url`] | Entra ID client-credentials token endpoint for [`GRAPH_TENANT`] |
//! | [`FakeIdp::graph_url`] | Graph `/v1.0`, `Authorization: Bearer` a token from the token endpoint |
//! | [`FakeIdp::webhook_url`] | `POST /hooks/{name}`, answered `200 ok` |
//! | [`FakeIdp::slack_api_url`] | Slack's Web API: `GET /slack/api/usergroups.users.list?usergroup=S…`, `Authorization: Bearer` [`SLACK_BOT_TOKEN`] |
//!
//! Users: any id is a user (`GET /api/v1/users/{id}` and `GET
//! /v1.0/users/{id}` answer it, with the login `{id}@example.com`), except
//! ids starting with `missing` (404). A small directory
//! ([`FakeIdp::add_okta_user`], [`FakeIdp::add_graph_user`]) adds users
//! that, like the real services, are also found by other names: Okta by id
//! in any case, login or login shortname; Graph by object id or
//! userPrincipalName, in any case. Requests naming a directory user by
//! another name act on that user (the state is kept by canonical id).
//!
//! MFA configuration: the fake holds full policy objects, answered in the
//! vendors' JSON shapes (Okta objects carry `created`, `lastUpdated` and
//! `_links`, computed from their state when served; Graph conditional access
//! policies carry `createdDateTime` and `modifiedDateTime`), so a baseline can
//! be captured, diffed and written back. Set them up with
//! [`FakeIdp::set_okta_policy`], [`FakeIdp::set_okta_policy_rules`],
//! [`FakeIdp::set_okta_authenticators`], [`FakeIdp::set_okta_app`],
//! [`FakeIdp::set_graph_ca_policy`] and
//! [`FakeIdp::set_graph_auth_methods_policy`]; read back what a restore
//! wrote with [`FakeIdp::okta_policy`], [`FakeIdp::okta_policy_rule`],
//! [`FakeIdp::okta_app_policy`], [`FakeIdp::graph_ca_policy`] and
//! [`FakeIdp::graph_auth_methods_policy`].
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/policies?type=T[&status=S]` | the stored policies of type `T`, in insertion order (no `type`: 400 `E0000001`) |
//! | `GET /api/v1/policies/{id}` | the stored policy (404 `E0000007` when not stored) |
//! | `PUT /api/v1/policies/{id}` | replaces it: `type` must not change (400 `E0000001`); `id` is the path's, `status`, `created` and `_links` are kept, `lastUpdated` refreshed; 200 with the stored policy |
//! | `POST /api/v1/policies/{id}/lifecycle/{activate,deactivate}` | sets a stored policy's `status`; any other id not starting with `missing` gets its status recorded ([`FakeIdp::okta_policy_status`]) |
//! | `GET /api/v1/policies/{id}/rules` | the policy's rules, in the order set |
//! | `GET`, `PUT /api/v1/policies/{id}/rules/{ruleId}` | one rule; `PUT` replaces it like a policy `PUT` |
//! | `POST /api/v1/policies/{id}/rules/{ruleId}/lifecycle/{activate,deactivate}` | sets the rule's `status` |
//! | `GET /api/v1/authenticators`, `GET /api/v1/authenticators/{id}` | the authenticators set |
//! | `GET /api/v1/apps/{appId}` | the app, `_links.accessPolicy` naming its access policy if it has one |
//! | `PUT /api/v1/apps/{appId}/policies/{policyId}` | 204: the app's access policy becomes `policyId` (a stored `ACCESS_POLICY`, else 400) |
//! | `GET /api/v1/zones` | every network zone, by id (the blocklist zone and those of [`FakeIdp::set_okta_policy_zone`]) |
//! | `GET /v1.0/identity/conditionalAccess/policies` | `{"@odata.context", "value": [the stored policies]}` |
//! | `GET /v1.0/identity/conditionalAccess/policies/{id}` | the stored policy (404 when not stored) |
//! | `PATCH /v1.0/identity/conditionalAccess/policies/{id}` | 204: a stored policy gets the body's top-level properties, `modifiedDateTime` refreshed; any other id not starting with `missing` gets its `state` recorded ([`FakeIdp::graph_ca_policy_state`]) |
//! | `GET`, `PATCH /v1.0/policies/authenticationMethodsPolicy` | the tenant's authentication methods policy; `PATCH` merges top-level properties (204) |
//!
//! ```no_run
//! use vigil_test_support::fake_idp::{FakeIdp, Fault, OKTA_TOKEN};
//!
//! let idp = FakeIdp::start();
//! idp.inject("POST", "/api/v1/users/", Fault::OktaRateLimit { reset_in_secs: 1 }, 1);
//! // ... run the Okta connector against idp.base_url() with OKTA_TOKEN ...
//! let sent = idp.requests_matching("POST", "/api/v1/users/00u1/lifecycle/suspend");
//! assert_eq!(sent.len(), 2, "one 429, then the retry");
//! assert_eq!(idp.okta_user_status("00u1"), "SUSPENDED");
//! ```

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The bot token the fake Slack Web API accepts.
pub const SLACK_BOT_TOKEN: &str = "xoxb-fake-slack-bot";

/// The Okta API token the fake accepts: `Authorization: SSWS fake-okta-token`
/// (or `Bearer fake-okta-token`).
pub const OKTA_TOKEN: &str = "fake-okta-token";
/// The Entra ID tenant of the token endpoint ([`FakeIdp::token_url`]).
pub const GRAPH_TENANT: &str = "fake-tenant";
/// The client id the token endpoint accepts.
pub const GRAPH_CLIENT_ID: &str = "fake-client-id";
/// The client secret the token endpoint accepts.
pub const GRAPH_CLIENT_SECRET: &str = "fake-client-secret";
/// An Okta network zone that exists: `usage: BLOCKLIST`, no gateways at first.
pub const OKTA_BLOCKLIST_ZONE: &str = "nzoblocklist1";
/// A Graph IP named location that exists, with no IP ranges at first.
pub const GRAPH_NAMED_LOCATION: &str = "nl-blocked-1";

/// The authentication methods every Graph user has until they are deleted:
/// `(kind segment, id, JSON)`.
fn graph_methods() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "passwordMethods",
            "28c10230-6103-485e-b985-444c60001490",
            json!({
                "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
                "id": "28c10230-6103-485e-b985-444c60001490"
            }),
        ),
        (
            "microsoftAuthenticatorMethods",
            "auth-app-1",
            json!({
                "@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
                "id": "auth-app-1",
                "displayName": "Pixel"
            }),
        ),
        (
            "phoneMethods",
            "3179e48a-750b-4051-897c-87b9720928f7",
            json!({
                "@odata.type": "#microsoft.graph.phoneAuthenticationMethod",
                "id": "3179e48a-750b-4051-897c-87b9720928f7",
                "phoneType": "mobile"
            }),
        ),
    ]
}

/// The `{kind}Methods` segments Graph knows under `/users/{id}/authentication/`.
const GRAPH_METHOD_KINDS: &[&str] = &[
    "passwordMethods",
    "microsoftAuthenticatorMethods",
    "phoneMethods",
    "softwareOathMethods",
    "fido2Methods",
    "emailMethods",
    "temporaryAccessPassMethods",
    "windowsHelloForBusinessMethods",
    "platformCredentialMethods",
];

/// A fault to answer instead of the normal response ([`FakeIdp::inject`]).
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status with an error body shaped like the vendor's that
    /// owns the path (Okta `errorCode`…, Graph `{"error":{"code",…}}`, the
    /// token endpoint's OAuth `{"error","error_description",…}`).
    Status(u16),
    /// Okta's 429: `X-Rate-Limit-Limit: 600`, `X-Rate-Limit-Remaining: 0`,
    /// `X-Rate-Limit-Reset: <now + reset_in_secs, epoch seconds>`, error
    /// `E0000047`.
    OktaRateLimit {
        /// Seconds from now until the reset the header announces.
        reset_in_secs: u64,
    },
    /// Graph's 429: `Retry-After: <retry_after_secs>`, error `TooManyRequests`.
    GraphThrottle {
        /// The `Retry-After` value.
        retry_after_secs: u64,
    },
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Close the connection without any HTTP response: the client sees a
    /// connection error, not a status.
    DropConnection,
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST`, ….
    pub method: String,
    /// The path as sent (not percent-decoded), without the query.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Every header in the order hyper lists them, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, as lossy UTF-8.
    pub body: String,
    /// When the request arrived.
    pub at: Instant,
}

impl Recorded {
    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; panics, quoting the body, when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {:?}", self.body))
    }

    /// The first value of the query parameter `name`, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The first value of the field `name` of a form-encoded body, decoded.
    pub fn form_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// The fake identity provider: a running server and its state. See the
/// [module documentation](self).
pub struct FakeIdp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeIdp").field("addr", &self.addr).finish()
    }
}

impl FakeIdp {
    /// Binds `127.0.0.1:0` and starts serving on a background thread; returns
    /// once the socket is listening.
    pub fn start() -> FakeIdp {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("fake IdP: bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("fake IdP: non-blocking listener");
        let addr = listener.local_addr().expect("fake IdP: local address");
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            state: Mutex::new(State::new()),
        });
        let (shutdown, stop) = oneshot::channel();
        let server = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("fake-idp-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake IdP: tokio runtime");
                runtime.block_on(serve(listener, server, stop));
            })
            .expect("fake IdP: spawn the server thread");
        FakeIdp {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the Okta org URL (and the root of every
    /// other URL).
    pub fn base_url(&self) -> String {
        self.shared.base.clone()
    }

    /// The Graph base URL: `base_url() + "/v1.0"`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.shared.base)
    }

    /// The token endpoint: `base_url() + "/fake-tenant/oauth2/v2.0/token"`.
    pub fn token_url(&self) -> String {
        format!("{}/{GRAPH_TENANT}/oauth2/v2.0/token", self.shared.base)
    }

    /// A webhook receiver: `base_url() + "/hooks/" + name`.
    pub fn webhook_url(&self, name: &str) -> String {
        format!("{}/hooks/{name}", self.shared.base)
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// The requests whose method is `method` (any case; `"*"` for any) and
    /// whose path starts with `path_prefix`.
    pub fn requests_matching(&self, method: &str, path_prefix: &str) -> Vec<Recorded> {
        self.state()
            .requests
            .iter()
            .filter(|r| method_matches(method, &r.method) && r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests (faults and state stay).
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Answers the next `times` requests whose method is `method` (`"*"` for
    /// any) and whose path starts with `path_prefix` with `fault` instead of
    /// the normal answer ([`Fault::Delay`] delays, then answers normally).
    /// Injections are tried in the order they were made; each request uses
    /// up at most one.
    pub fn inject(&self, method: &str, path_prefix: &str, fault: Fault, times: usize) {
        if let Fault::Status(code) = fault {
            assert!(
                (100..=599).contains(&code),
                "Fault::Status({code}) is not an HTTP status"
            );
        }
        if times == 0 {
            return;
        }
        self.state().faults.push(Injection {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            fault,
            remaining: times,
        });
    }

    /// Drops every pending injected fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// The `expires_in` of the Graph tokens issued from now on (default
    /// 3600 s); a token is refused with 401 once that time has passed.
    pub fn set_graph_token_lifetime(&self, secs: u64) {
        self.state().token_lifetime = secs;
    }

    /// Makes every Graph token issued so far invalid (as if revoked): the
    /// next Graph call with one of them gets 401.
    pub fn expire_graph_tokens(&self) {
        self.state().tokens.clear();
    }

    /// How many Graph tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        self.state().tokens_issued
    }

    /// An Okta user's status: `ACTIVE` unless changed (`SUSPENDED` after a
    /// suspend, `PASSWORD_EXPIRED` after expire_password, …).
    pub fn okta_user_status(&self, id: &str) -> String {
        self.state()
            .okta_users
            .get(id)
            .cloned()
            .unwrap_or_else(|| "ACTIVE".to_owned())
    }

    /// Sets an Okta user's status (e.g. `SUSPENDED`, `LOCKED_OUT`).
    pub fn set_okta_user_status(&self, id: &str, status: &str) {
        self.state()
            .okta_users
            .insert(id.to_owned(), status.to_owned());
    }

    /// An Okta policy's status: the `status` of the stored policy object
    /// ([`FakeIdp::set_okta_policy`]), else the status an activate/deactivate
    /// call gave that id, if any.
    pub fn okta_policy_status(&self, id: &str) -> Option<String> {
        let state = self.state();
        state
            .okta_stored_policy(id)
            .and_then(|p| p["status"].as_str())
            .map(str::to_owned)
            .or_else(|| state.okta_policies.get(id).cloned())
    }

    /// Whether a Graph user's account is enabled (`true` unless a PATCH
    /// said otherwise).
    pub fn graph_account_enabled(&self, id: &str) -> bool {
        self.state().graph_enabled.get(id).copied().unwrap_or(true)
    }

    /// The ids of the authentication methods a Graph user still has.
    pub fn graph_auth_methods(&self, user: &str) -> Vec<String> {
        let state = self.state();
        graph_methods()
            .into_iter()
            .filter(|(_, id, _)| {
                !state
                    .graph_deleted_methods
                    .contains(&(user.to_owned(), (*id).to_owned()))
            })
            .map(|(_, id, _)| id.to_owned())
            .collect()
    }

    /// A conditional access policy's `state`: that of the stored policy
    /// object ([`FakeIdp::set_graph_ca_policy`]), else the one a PATCH gave
    /// that id, if any.
    pub fn graph_ca_policy_state(&self, id: &str) -> Option<String> {
        let state = self.state();
        state
            .graph_ca_policy_index(id)
            .and_then(|i| state.graph_ca_objects[i]["state"].as_str())
            .map(str::to_owned)
            .or_else(|| state.graph_ca_policies.get(id).cloned())
    }

    /// The gateway values (e.g. `203.0.113.9/32`) of an Okta network zone;
    /// empty for an unknown zone.
    pub fn okta_zone_gateways(&self, zone: &str) -> Vec<String> {
        self.state()
            .okta_zones
            .get(zone)
            .map(|z| z.gateways.iter().map(|(_, v)| v.clone()).collect())
            .unwrap_or_default()
    }

    /// Sets an Okta `POLICY` network zone (the kind sign-on and
    /// authentication policy rules name, e.g. a trusted office network)
    /// with these CIDR gateways, replacing any zone of that id.
    pub fn set_okta_policy_zone(&self, zone: &str, name: &str, cidrs: &[&str]) {
        self.state().okta_zones.insert(
            zone.to_owned(),
            Zone {
                name: name.to_owned(),
                status: "ACTIVE".to_owned(),
                usage: "POLICY".to_owned(),
                gateways: cidrs
                    .iter()
                    .map(|c| ("CIDR".to_owned(), (*c).to_owned()))
                    .collect(),
            },
        );
    }

    /// Sets the CIDR gateways of an Okta network zone, creating a
    /// `BLOCKLIST` zone of that id if there is none.
    pub fn set_okta_zone_gateways(&self, zone: &str, cidrs: &[&str]) {
        let mut state = self.state();
        let z = state
            .okta_zones
            .entry(zone.to_owned())
            .or_insert_with(Zone::blocklist);
        z.gateways = cidrs
            .iter()
            .map(|c| ("CIDR".to_owned(), (*c).to_owned()))
            .collect();
    }

    /// The `cidrAddress` values of a Graph IP named location; empty for an
    /// unknown one.
    pub fn graph_named_location_ranges(&self, id: &str) -> Vec<String> {
        self.state()
            .graph_locations
            .get(id)
            .map(|l| l.ranges.iter().map(|(_, c)| c.clone()).collect())
            .unwrap_or_default()
    }

    /// Sets the IP ranges of a Graph named location, creating it if there is
    /// none.
    pub fn set_graph_named_location_ranges(&self, id: &str, cidrs: &[&str]) {
        let mut state = self.state();
        let l = state
            .graph_locations
            .entry(id.to_owned())
            .or_insert_with(NamedLocation::blocked);
        l.ranges = cidrs
            .iter()
            .map(|c| (range_type(c).to_owned(), (*c).to_owned()))
            .collect();
    }

    /// The user ids added to an Okta group, in order.
    pub fn okta_group_members(&self, group: &str) -> Vec<String> {
        self.state()
            .okta_groups
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// The user ids added to a Graph group, in order.
    pub fn graph_group_members(&self, group: &str) -> Vec<String> {
        self.state()
            .graph_groups
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// Appends System Log events served by `GET /api/v1/logs` (in this
    /// order; give each a `uuid` and a `published` time).
    pub fn push_okta_logs(&self, events: Vec<Value>) {
        self.state().okta_logs.extend(events);
    }

    // --- System Log poller support (sources tests) ---

    /// Makes `GET /api/v1/logs` answer with a `next` link on `base`
    /// (e.g. `https://evil.example`) instead of this server, as a hostile
    /// or misconfigured proxy might; `None` restores the normal link.
    pub fn set_okta_logs_next_base(&self, base: Option<&str>) {
        self.state().okta_logs_next_base = base.map(str::to_owned);
    }

    // --- Protected groups support (group member listings) ---

    /// Slack's Web API base (`…/slack/api`): see [`FakeIdp::set_slack_usergroup`].
    pub fn slack_api_url(&self) -> String {
        format!("{}/slack/api", self.shared.base)
    }

    /// Makes the Slack user group `id` (`S…`) hold exactly `users`, for
    /// `usergroups.users.list`.
    pub fn set_slack_usergroup(&self, id: &str, users: &[&str]) {
        self.state().slack_usergroups.insert(
            id.to_owned(),
            users.iter().map(|u| (*u).to_owned()).collect(),
        );
    }

    /// Makes the Okta group `gid` hold exactly `members` (`(user id,
    /// login)`), in this order, for `GET /api/v1/groups/{gid}/users`
    /// (paged with `limit` and an `after` cursor, `Link: <…>; rel="next"`).
    /// The group's membership is the one [`FakeIdp::okta_group_members`]
    /// reads (add-to-group appends to it; their login is `{id}@example.com`
    /// unless set here). A group never set nor added to answers 404.
    pub fn set_okta_group_members(&self, gid: &str, members: &[(&str, &str)]) {
        let mut state = self.state();
        for (id, login) in members {
            state
                .okta_logins
                .insert((*id).to_owned(), (*login).to_owned());
        }
        state.okta_groups.insert(
            gid.to_owned(),
            members.iter().map(|(id, _)| (*id).to_owned()).collect(),
        );
    }

    /// Makes the Graph group `gid` hold exactly `members` (`(object id,
    /// userPrincipalName)`), in this order, for
    /// `GET /v1.0/groups/{gid}/transitiveMembers/microsoft.graph.user`
    /// (paged with `$top` and an `@odata.nextLink` carrying a
    /// `$skiptoken`). The membership is the one
    /// [`FakeIdp::graph_group_members`] reads. A group never set nor added
    /// to answers 404.
    pub fn set_graph_group_members(&self, gid: &str, members: &[(&str, &str)]) {
        let mut state = self.state();
        for (id, upn) in members {
            state.graph_upns.insert((*id).to_owned(), (*upn).to_owned());
        }
        state.graph_groups.insert(
            gid.to_owned(),
            members.iter().map(|(id, _)| (*id).to_owned()).collect(),
        );
    }

    /// Makes the next links of both group member listings point at `base`
    /// (e.g. `https://evil.example`) instead of this server; `None`
    /// restores them.
    pub fn set_group_next_link_base(&self, base: Option<&str>) {
        self.state().group_next_base = base.map(str::to_owned);
    }

    // --- User directory (target resolution) ---

    /// Adds an Okta user found by `GET /api/v1/users/{x}` when `x` is its
    /// id (in any case), its `login` or the login's shortname (the part
    /// before `@`, any case); the answer carries `profile.login`,
    /// `profile.email` (the login unless given) and `profile.secondEmail`.
    pub fn add_okta_user(
        &self,
        id: &str,
        login: &str,
        email: Option<&str>,
        second_email: Option<&str>,
    ) {
        self.state().okta_directory.push(OktaDirectoryUser {
            id: id.to_owned(),
            login: login.to_owned(),
            email: email.unwrap_or(login).to_owned(),
            second_email: second_email.map(str::to_owned),
        });
    }

    /// Adds a Graph user found by `GET /v1.0/users/{x}` when `x` is its
    /// object id or its userPrincipalName (any case); `$select` may ask
    /// for `mail`, `otherMails` and `proxyAddresses` (e.g.
    /// `SMTP:primary@contoso.com`, `smtp:alias@contoso.com`).
    pub fn add_graph_user(
        &self,
        id: &str,
        upn: &str,
        mail: Option<&str>,
        other_mails: &[&str],
        proxy_addresses: &[&str],
    ) {
        self.state().graph_directory.push(GraphDirectoryUser {
            id: id.to_owned(),
            upn: upn.to_owned(),
            mail: mail.map(str::to_owned),
            other_mails: other_mails.iter().map(|m| (*m).to_owned()).collect(),
            proxy_addresses: proxy_addresses.iter().map(|m| (*m).to_owned()).collect(),
        });
    }

    /// Makes the first page of every `GET /v1.0/users/{id}/authentication/methods`
    /// carry this `@odata.nextLink` (a request with a `$skiptoken` query
    /// gets an empty last page); `None` restores single-page listings.
    pub fn set_graph_methods_next_link(&self, link: Option<&str>) {
        self.state().graph_methods_next = link.map(str::to_owned);
    }

    // --- MFA configuration (baseline capture, diff and restore) ---

    /// Stores a full Okta policy object (`id`, `status`, `name`, `type`,
    /// `priority`, `system`, `conditions`, `settings`, …), replacing the one
    /// with the same `id` (which keeps its place in listings). `created` and
    /// `lastUpdated` are filled in when absent; `_links` are the fake's own,
    /// computed when served. Panics when the policy has no string `id`.
    pub fn set_okta_policy(&self, policy: Value) {
        let id = required_id("set_okta_policy", "policy", &policy);
        let policy = okta_stamped(policy);
        let mut state = self.state();
        match state.okta_policy_index(&id) {
            Some(i) => state.okta_policy_objects[i] = policy,
            None => state.okta_policy_objects.push(policy),
        }
    }

    /// Makes `rules` (JSON rule objects: `id`, `status`, `name`,
    /// `priority`, `type`, `conditions`, `actions`) the rules of the Okta
    /// policy `policy_id`, listed in this order. `created` and
    /// `lastUpdated` are filled in when absent. The rule routes answer only
    /// once the policy itself is stored ([`FakeIdp::set_okta_policy`]).
    /// Panics when a rule has no string `id`.
    pub fn set_okta_policy_rules(&self, policy_id: &str, rules: Vec<Value>) {
        let rules = rules
            .into_iter()
            .map(|rule| {
                required_id("set_okta_policy_rules", "rule", &rule);
                okta_stamped(rule)
            })
            .collect();
        self.state()
            .okta_policy_rules
            .insert(policy_id.to_owned(), rules);
    }

    /// The stored Okta policy `id` as `GET /api/v1/policies/{id}` answers it
    /// now (with `_links`), e.g. to check what a restore wrote; `None` when
    /// no such policy is stored.
    pub fn okta_policy(&self, id: &str) -> Option<Value> {
        let state = self.state();
        state
            .okta_stored_policy(id)
            .map(|p| okta_policy_json(&self.shared.base, p))
    }

    /// The rule `rule_id` of the Okta policy `policy_id` as
    /// `GET /api/v1/policies/{policy_id}/rules/{rule_id}` answers it now;
    /// `None` when no such rule is stored.
    pub fn okta_policy_rule(&self, policy_id: &str, rule_id: &str) -> Option<Value> {
        let state = self.state();
        state
            .okta_policy_rules
            .get(policy_id)?
            .iter()
            .find(|rule| id_of(rule) == Some(rule_id))
            .map(|rule| okta_rule_json(&self.shared.base, policy_id, rule))
    }

    /// Makes `list` the org's authenticators (`GET /api/v1/authenticators`),
    /// in this order; each needs a string `id` (panics otherwise).
    /// `created` and `lastUpdated` are filled in when absent.
    pub fn set_okta_authenticators(&self, list: Vec<Value>) {
        let list = list
            .into_iter()
            .map(|a| {
                required_id("set_okta_authenticators", "authenticator", &a);
                okta_stamped(a)
            })
            .collect();
        self.state().okta_authenticators = list;
    }

    /// Stores an Okta app (`id`, `label`, `name`, `status`, …), replacing the
    /// one with the same `id`, whose access policy is `access_policy` (the
    /// id of a policy, served as `_links.accessPolicy`). Panics when the app
    /// has no string `id`.
    pub fn set_okta_app(&self, app: Value, access_policy: Option<&str>) {
        let id = required_id("set_okta_app", "app", &app);
        let app = OktaApp {
            body: okta_stamped(app),
            access_policy: access_policy.map(str::to_owned),
        };
        let mut state = self.state();
        match state.okta_app_index(&id) {
            Some(i) => state.okta_apps[i] = app,
            None => state.okta_apps.push(app),
        }
    }

    /// The id of the access policy of the stored Okta app `app_id`, if it
    /// is stored and has one.
    pub fn okta_app_policy(&self, app_id: &str) -> Option<String> {
        let state = self.state();
        let i = state.okta_app_index(app_id)?;
        state.okta_apps[i].access_policy.clone()
    }

    /// Stores a Graph conditional access policy (`id`, `displayName`,
    /// `state`, `conditions`, `grantControls`, `sessionControls`, …),
    /// replacing the one with the same `id` (which keeps its place in
    /// listings). `createdDateTime` is filled in when absent and
    /// `modifiedDateTime` set to `null` when absent (never modified).
    /// Panics when the policy has no string `id`.
    pub fn set_graph_ca_policy(&self, policy: Value) {
        let id = required_id("set_graph_ca_policy", "policy", &policy);
        let mut policy = policy;
        policy
            .as_object_mut()
            .expect("an object: it has an id")
            .remove("@odata.context");
        if policy.get("createdDateTime").is_none() {
            policy["createdDateTime"] = json!(graph_now());
        }
        if policy.get("modifiedDateTime").is_none() {
            policy["modifiedDateTime"] = Value::Null;
        }
        let mut state = self.state();
        match state.graph_ca_policy_index(&id) {
            Some(i) => state.graph_ca_objects[i] = policy,
            None => state.graph_ca_objects.push(policy),
        }
    }

    /// The stored conditional access policy `id` as the listing shows it
    /// now (no `@odata.context`); `None` when no such policy is stored.
    pub fn graph_ca_policy(&self, id: &str) -> Option<Value> {
        let state = self.state();
        let i = state.graph_ca_policy_index(id)?;
        Some(state.graph_ca_objects[i].clone())
    }

    /// Replaces the tenant's authentication methods policy
    /// (`/v1.0/policies/authenticationMethodsPolicy`; its `@odata.context`
    /// is added when served). Panics when `policy` is not a JSON object.
    pub fn set_graph_auth_methods_policy(&self, policy: Value) {
        let Value::Object(mut policy) = policy else {
            panic!("set_graph_auth_methods_policy: the policy must be a JSON object: {policy}");
        };
        policy.remove("@odata.context");
        self.state().graph_auth_methods_policy = Value::Object(policy);
    }

    /// The tenant's authentication methods policy as it is now (without
    /// `@odata.context`): the default one (Microsoft Authenticator, FIDO2
    /// and software OATH enabled; SMS, voice and email disabled) unless
    /// set or patched.
    pub fn graph_auth_methods_policy(&self) -> Value {
        self.state().graph_auth_methods_policy.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread has been printed already; do not
            // panic again while dropping.
            let _ = thread.join();
        }
    }
}

fn method_matches(pattern: &str, method: &str) -> bool {
    pattern == "*" || pattern.eq_ignore_ascii_case(method)
}

// ---------------------------------------------------------------------------
// State

struct Shared {
    base: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Injection {
    method: String,
    path_prefix: String,
    fault: Fault,
    remaining: usize,
}

struct Zone {
    name: String,
    status: String,
    usage: String,
    /// `(type, value)`: `CIDR` or `RANGE`.
    gateways: Vec<(String, String)>,
}

impl Zone {
    fn blocklist() -> Zone {
        Zone {
            name: "Vigil blocklist".to_owned(),
            status: "ACTIVE".to_owned(),
            usage: "BLOCKLIST".to_owned(),
            gateways: Vec::new(),
        }
    }

    fn json(&self, id: &str) -> Value {
        let gateways: Vec<Value> = self
            .gateways
            .iter()
            .map(|(t, v)| json!({"type": t, "value": v}))
            .collect();
        json!({
            "type": "IP",
            "id": id,
            "name": self.name,
            "status": self.status,
            "usage": self.usage,
            "gateways": gateways,
            "proxies": null,
            "system": false
        })
    }
}

struct NamedLocation {
    display_name: String,
    is_trusted: bool,
    /// `(@odata.type, cidrAddress)`.
    ranges: Vec<(String, String)>,
}

impl NamedLocation {
    fn blocked() -> NamedLocation {
        NamedLocation {
            display_name: "Vigil blocked".to_owned(),
            is_trusted: false,
            ranges: Vec::new(),
        }
    }

    fn json(&self, id: &str) -> Value {
        let ranges: Vec<Value> = self
            .ranges
            .iter()
            .map(|(t, c)| json!({"@odata.type": t, "cidrAddress": c}))
            .collect();
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/namedLocations/$entity",
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "id": id,
            "displayName": self.display_name,
            "isTrusted": self.is_trusted,
            "ipRanges": ranges
        })
    }
}

struct State {
    requests: Vec<Recorded>,
    faults: Vec<Injection>,
    token_lifetime: u64,
    /// Issued Graph tokens and when they expire.
    tokens: HashMap<String, Instant>,
    tokens_issued: usize,
    okta_users: HashMap<String, String>,
    okta_policies: HashMap<String, String>,
    okta_groups: HashMap<String, Vec<String>>,
    okta_zones: HashMap<String, Zone>,
    okta_logs: Vec<Value>,
    /// Replaces `base_url()` in the `next` link of `/api/v1/logs`
    /// ([`FakeIdp::set_okta_logs_next_base`]).
    okta_logs_next_base: Option<String>,
    graph_enabled: HashMap<String, bool>,
    /// `(user, method id)`.
    graph_deleted_methods: HashSet<(String, String)>,
    graph_groups: HashMap<String, Vec<String>>,
    graph_ca_policies: HashMap<String, String>,
    graph_locations: HashMap<String, NamedLocation>,
    /// Logins of Okta group members ([`FakeIdp::set_okta_group_members`]).
    okta_logins: HashMap<String, String>,
    /// userPrincipalNames of Graph group members.
    graph_upns: HashMap<String, String>,
    /// Replaces this server in group listings' next links.
    group_next_base: Option<String>,
    /// Users found by other names than their id.
    okta_directory: Vec<OktaDirectoryUser>,
    graph_directory: Vec<GraphDirectoryUser>,
    /// The `@odata.nextLink` of authentication method listings.
    graph_methods_next: Option<String>,
    /// Full Okta policy objects ([`FakeIdp::set_okta_policy`]), in
    /// insertion order, without `_links` (computed when served).
    okta_policy_objects: Vec<Value>,
    /// The rules of Okta policies, by policy id, in order.
    okta_policy_rules: HashMap<String, Vec<Value>>,
    okta_authenticators: Vec<Value>,
    okta_apps: Vec<OktaApp>,
    /// Full conditional access policies ([`FakeIdp::set_graph_ca_policy`]),
    /// in insertion order.
    graph_ca_objects: Vec<Value>,
    graph_auth_methods_policy: Value,
    /// Slack user groups ([`FakeIdp::set_slack_usergroup`]).
    slack_usergroups: HashMap<String, Vec<String>>,
    /// For request and error ids.
    serial: u64,
}

/// An Okta app ([`FakeIdp::set_okta_app`]).
struct OktaApp {
    /// Without `_links` (computed when served).
    body: Value,
    /// The id of its access policy.
    access_policy: Option<String>,
}

struct OktaDirectoryUser {
    id: String,
    login: String,
    email: String,
    second_email: Option<String>,
}

struct GraphDirectoryUser {
    id: String,
    upn: String,
    mail: Option<String>,
    other_mails: Vec<String>,
    proxy_addresses: Vec<String>,
}

impl State {
    fn new() -> State {
        State {
            requests: Vec::new(),
            faults: Vec::new(),
            token_lifetime: 3600,
            tokens: HashMap::new(),
            tokens_issued: 0,
            okta_users: HashMap::new(),
            okta_policies: HashMap::new(),
            okta_groups: HashMap::new(),
            okta_zones: HashMap::from([(OKTA_BLOCKLIST_ZONE.to_owned(), Zone::blocklist())]),
            okta_logs: Vec::new(),
            okta_logs_next_base: None,
            graph_enabled: HashMap::new(),
            graph_deleted_methods: HashSet::new(),
            graph_groups: HashMap::new(),
            graph_ca_policies: HashMap::new(),
            graph_locations: HashMap::from([(
                GRAPH_NAMED_LOCATION.to_owned(),
                NamedLocation::blocked(),
            )]),
            okta_logins: HashMap::new(),
            graph_upns: HashMap::new(),
            group_next_base: None,
            okta_directory: Vec::new(),
            graph_directory: Vec::new(),
            graph_methods_next: None,
            okta_policy_objects: Vec::new(),
            okta_policy_rules: HashMap::new(),
            okta_authenticators: Vec::new(),
            okta_apps: Vec::new(),
            graph_ca_objects: Vec::new(),
            graph_auth_methods_policy: default_auth_methods_policy(),
            slack_usergroups: HashMap::new(),
            serial: 0,
        }
    }

    /// Where the stored Okta policy `id` is in `okta_policy_objects`.
    fn okta_policy_index(&self, id: &str) -> Option<usize> {
        self.okta_policy_objects
            .iter()
            .position(|p| id_of(p) == Some(id))
    }

    /// The stored Okta policy `id`.
    fn okta_stored_policy(&self, id: &str) -> Option<&Value> {
        self.okta_policy_index(id)
            .map(|i| &self.okta_policy_objects[i])
    }

    /// Where the stored Okta app `id` is in `okta_apps`.
    fn okta_app_index(&self, id: &str) -> Option<usize> {
        self.okta_apps
            .iter()
            .position(|a| id_of(&a.body) == Some(id))
    }

    /// Where the stored conditional access policy `id` is in
    /// `graph_ca_objects`.
    fn graph_ca_policy_index(&self, id: &str) -> Option<usize> {
        self.graph_ca_objects
            .iter()
            .position(|p| id_of(p) == Some(id))
    }

    /// The Okta directory user `name` denotes (id in any case, login, or
    /// login shortname), like Okta's `/api/v1/users/{id}`.
    fn okta_user_named(&self, name: &str) -> Option<&OktaDirectoryUser> {
        self.okta_directory.iter().find(|u| {
            u.id.eq_ignore_ascii_case(name)
                || u.login.eq_ignore_ascii_case(name)
                || u.login
                    .split_once('@')
                    .is_some_and(|(short, _)| short.eq_ignore_ascii_case(name))
        })
    }

    /// The canonical Okta id of `name` (itself for users outside the
    /// directory).
    fn okta_id(&self, name: &str) -> String {
        self.okta_user_named(name)
            .map_or_else(|| name.to_owned(), |u| u.id.clone())
    }

    /// The Graph directory user `name` denotes (object id or UPN, any case).
    fn graph_user_named(&self, name: &str) -> Option<&GraphDirectoryUser> {
        self.graph_directory
            .iter()
            .find(|u| u.id.eq_ignore_ascii_case(name) || u.upn.eq_ignore_ascii_case(name))
    }

    /// The canonical Graph object id of `name`.
    fn graph_id(&self, name: &str) -> String {
        self.graph_user_named(name)
            .map_or_else(|| name.to_owned(), |u| u.id.clone())
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Uses up the first injection that matches, if any.
    fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let i = self
            .faults
            .iter()
            .position(|f| method_matches(&f.method, method) && path.starts_with(&f.path_prefix))?;
        let injection = &mut self.faults[i];
        injection.remaining -= 1;
        let fault = injection.fault.clone();
        if injection.remaining == 0 {
            self.faults.remove(i);
        }
        Some(fault)
    }
}

// ---------------------------------------------------------------------------
// Server

/// The service's error: hyper closes the connection without a response.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("fake IdP: register the listener");
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors or the like: let it pass.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    // Errors are clients going away and dropped connections.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let recorded = Recorded {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at,
    };
    let fault = {
        let mut state = shared.lock();
        state.requests.push(recorded.clone());
        state.take_fault(&recorded.method, &recorded.path)
    };
    let reply = match fault {
        Some(Fault::DropConnection) => return Err(Dropped),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            route(&shared, &recorded)
        }
        Some(fault) => fault_reply(&mut shared.lock(), &recorded, &fault),
        None => route(&shared, &recorded),
    };
    Ok(reply.into_response())
}

/// An answer before it becomes a hyper response.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.to_string().into_bytes(),
        }
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn text(status: u16, text: &str) -> Reply {
        Reply {
            status,
            headers: vec![(
                "content-type".to_owned(),
                "text/plain; charset=utf-8".to_owned(),
            )],
            body: text.as_bytes().to_vec(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Replaces the content type.
    fn content_type(mut self, value: &str) -> Reply {
        if let Some(h) = self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            h.1 = value.to_owned();
        }
        self
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut builder = Response::builder()
            .status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .body(Full::new(Bytes::from(self.body)))
            .expect("fake IdP: a valid response")
    }
}

fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Which vendor a path belongs to, for the shape of its errors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Vendor {
    Okta,
    Graph,
    Token,
    Other,
}

fn vendor_of(segs: &[String]) -> Vendor {
    match segs {
        [a, b, ..] if a == "api" && b == "v1" => Vendor::Okta,
        [a, ..] if a == "v1.0" => Vendor::Graph,
        [_, a, b, c] if a == "oauth2" && b == "v2.0" && c == "token" => Vendor::Token,
        _ => Vendor::Other,
    }
}

/// The path split on `/` and percent-decoded (so `%24ref` is `$ref`).
fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn fault_reply(state: &mut State, r: &Recorded, fault: &Fault) -> Reply {
    let segs = segments(&r.path);
    match fault {
        Fault::OktaRateLimit { reset_in_secs } => okta_error(
            state,
            429,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
            Vec::new(),
        )
        .header("x-rate-limit-limit", "600")
        .header("x-rate-limit-remaining", "0")
        .header(
            "x-rate-limit-reset",
            (epoch_secs() + reset_in_secs).to_string(),
        ),
        Fault::GraphThrottle { retry_after_secs } => graph_error(
            state,
            r,
            429,
            "TooManyRequests",
            "Too many requests. Please try again later.",
        )
        .header("retry-after", retry_after_secs.to_string()),
        Fault::Status(status) => status_reply(state, r, vendor_of(&segs), *status),
        Fault::Delay(_) | Fault::DropConnection => unreachable!("handled by the caller"),
    }
}

/// An error of this status, shaped like `vendor`'s errors.
fn status_reply(state: &mut State, r: &Recorded, vendor: Vendor, status: u16) -> Reply {
    match vendor {
        Vendor::Okta => {
            let (code, summary) = match status {
                400 => ("E0000001", "Api validation failed"),
                401 => ("E0000011", "Invalid token provided"),
                403 => (
                    "E0000006",
                    "You do not have permission to perform the requested action",
                ),
                404 => ("E0000007", "Not found: Resource not found"),
                405 => (
                    "E0000022",
                    "The endpoint does not support the provided HTTP method",
                ),
                429 => (
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                ),
                500 => ("E0000009", "Internal Server Error"),
                503 => ("E0000010", "Service is in read only mode"),
                s if s >= 500 => ("E0000009", reason(s)),
                s => ("E0000001", reason(s)),
            };
            okta_error(state, status, code, summary, Vec::new())
        }
        Vendor::Graph => {
            let code = match status {
                400 => "BadRequest",
                401 => "InvalidAuthenticationToken",
                403 => "Authorization_RequestDenied",
                404 => "Request_ResourceNotFound",
                409 => "Conflict",
                412 => "PreconditionFailed",
                429 => "TooManyRequests",
                500 => "InternalServerError",
                502 => "BadGateway",
                503 => "ServiceUnavailable",
                504 => "GatewayTimeout",
                _ => "UnknownError",
            };
            graph_error(state, r, status, code, reason(status))
        }
        Vendor::Token => {
            let (error, aadsts) = match status {
                400 => ("invalid_request", 900144),
                401 => ("invalid_client", 7000215),
                429 | 503 | 504 => ("temporarily_unavailable", 90033),
                s if s >= 500 => ("server_error", 90033),
                _ => ("invalid_request", 90000),
            };
            token_error(
                state,
                status,
                error,
                &format!("AADSTS{aadsts}: {}.", reason(status)),
                aadsts,
            )
        }
        Vendor::Other => Reply::json(status, &json!({"error": reason(status)})),
    }
}

fn route(shared: &Shared, r: &Recorded) -> Reply {
    let segs = segments(&r.path);
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let mut state = shared.lock();
    let state = &mut *state;
    match segs.as_slice() {
        ["api", "v1", rest @ ..] => okta(state, &shared.base, r, rest),
        ["v1.0", rest @ ..] => graph(state, r, rest),
        [tenant, "oauth2", "v2.0", "token"] => token(state, r, tenant),
        ["slack", "api", "usergroups.users.list"] => slack_usergroup(state, r),
        ["hooks", name] if !name.is_empty() => {
            if r.method == "POST" {
                Reply::text(200, "ok")
            } else {
                Reply::text(405, "method not allowed").header("allow", "POST")
            }
        }
        _ => Reply::json(
            404,
            &json!({"error": "not_found", "message": format!("no route for {} {}", r.method, r.path)}),
        ),
    }
}

/// Slack's `usergroups.users.list`: 200 with `ok: false` and Slack's
/// error codes, as Slack answers.
fn slack_usergroup(state: &mut State, r: &Recorded) -> Reply {
    if r.header("authorization") != Some(format!("Bearer {SLACK_BOT_TOKEN}").as_str()) {
        return Reply::json(200, &json!({"ok": false, "error": "invalid_auth"}));
    }
    let group = r.query_param("usergroup").unwrap_or_default();
    match state.slack_usergroups.get(&group) {
        Some(users) => Reply::json(200, &json!({"ok": true, "users": users})),
        None => Reply::json(200, &json!({"ok": false, "error": "no_such_subteam"})),
    }
}

// ---------------------------------------------------------------------------
// Okta

fn okta_error(
    state: &mut State,
    status: u16,
    code: &str,
    summary: &str,
    causes: Vec<&str>,
) -> Reply {
    let n = state.next_serial();
    let causes: Vec<Value> = causes
        .into_iter()
        .map(|c| json!({"errorSummary": c}))
        .collect();
    Reply::json(
        status,
        &json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": format!("oae{n:022}"),
            "errorCauses": causes
        }),
    )
}

fn okta_not_found(state: &mut State, id: &str, kind: &str) -> Reply {
    okta_error(
        state,
        404,
        "E0000007",
        &format!("Not found: Resource not found: {id} ({kind})"),
        Vec::new(),
    )
}

fn okta_invalid(state: &mut State, cause: &str) -> Reply {
    okta_error(
        state,
        400,
        "E0000001",
        &format!("Api validation failed: {cause}"),
        vec![cause],
    )
}

fn okta_authorized(r: &Recorded) -> bool {
    let Some(auth) = r.header("authorization") else {
        return false;
    };
    let Some((scheme, token)) = auth.trim().split_once(' ') else {
        return false;
    };
    (scheme.eq_ignore_ascii_case("SSWS") || scheme.eq_ignore_ascii_case("Bearer"))
        && token.trim() == OKTA_TOKEN
}

fn okta(state: &mut State, base: &str, r: &Recorded, segs: &[&str]) -> Reply {
    let reply = okta_inner(state, base, r, segs);
    let n = state.next_serial();
    reply
        .header("x-okta-request-id", format!("fake{n:020}"))
        .header("x-rate-limit-limit", "600")
        .header("x-rate-limit-remaining", "599")
        .header("x-rate-limit-reset", (epoch_secs() + 60).to_string())
}

fn okta_user(id: &str, status: &str) -> Value {
    json!({
        "id": id,
        "status": status,
        "profile": {"login": format!("{id}@example.com"), "email": format!("{id}@example.com")}
    })
}

fn okta_inner(state: &mut State, base: &str, r: &Recorded, segs: &[&str]) -> Reply {
    if !okta_authorized(r) {
        return okta_error(state, 401, "E0000011", "Invalid token provided", Vec::new());
    }
    let method = r.method.as_str();
    match (method, segs) {
        ("GET", ["users"]) => Reply::json(
            200,
            &json!([{"id": "00ufake1", "status": "ACTIVE", "profile": {"login": "fake@example.com"}}]),
        ),
        (_, ["users", id, ..]) if id.starts_with("missing") => okta_not_found(state, id, "User"),
        ("GET", ["users", name]) => {
            let id = state.okta_id(name);
            let status = state
                .okta_users
                .get(&id)
                .cloned()
                .unwrap_or_else(|| "ACTIVE".to_owned());
            let mut user = okta_user(&id, &status);
            if let Some(u) = state.okta_user_named(name) {
                user["profile"] = json!({
                    "login": u.login,
                    "email": u.email,
                    "secondEmail": u.second_email,
                });
            }
            Reply::json(200, &user)
        }
        ("POST", ["users", name, "lifecycle", op]) => {
            let canonical = state.okta_id(name);
            let id = &canonical.as_str();
            let status = state
                .okta_users
                .get(*id)
                .cloned()
                .unwrap_or_else(|| "ACTIVE".to_owned());
            let set = |state: &mut State, s: &str| {
                state.okta_users.insert((*id).to_owned(), s.to_owned());
            };
            match *op {
                "suspend" if status != "ACTIVE" => {
                    okta_invalid(state, "Cannot suspend a user that is not active")
                }
                "suspend" => {
                    set(state, "SUSPENDED");
                    Reply::json(200, &json!({}))
                }
                "unsuspend" if status != "SUSPENDED" => {
                    okta_invalid(state, "Cannot unsuspend a user that is not suspended")
                }
                "unsuspend" => {
                    set(state, "ACTIVE");
                    Reply::json(200, &json!({}))
                }
                "unlock" => {
                    if status == "LOCKED_OUT" {
                        set(state, "ACTIVE");
                    }
                    Reply::json(200, &json!({}))
                }
                "reset_factors" => Reply::json(200, &json!({})),
                "expire_password" => {
                    set(state, "PASSWORD_EXPIRED");
                    Reply::json(200, &okta_user(id, "PASSWORD_EXPIRED"))
                }
                _ => okta_not_found(state, &r.path, "Path"),
            }
        }
        ("DELETE", ["users", _, "sessions"]) => Reply::empty(204),
        ("DELETE", ["users", _, "factors", _]) => Reply::empty(204),
        (
            "POST",
            [
                "policies",
                id,
                "lifecycle",
                op @ ("activate" | "deactivate"),
            ],
        ) => {
            let status = if *op == "activate" {
                "ACTIVE"
            } else {
                "INACTIVE"
            };
            if let Some(i) = state.okta_policy_index(id) {
                let policy = &mut state.okta_policy_objects[i];
                policy["status"] = json!(status);
                policy["lastUpdated"] = json!(okta_now());
                return Reply::json(200, &json!({}));
            }
            if id.starts_with("missing") {
                return okta_not_found(state, id, "Policy");
            }
            state
                .okta_policies
                .insert((*id).to_owned(), status.to_owned());
            Reply::json(200, &json!({}))
        }
        ("GET", ["policies"]) => okta_list_policies(state, base, r),
        ("GET", ["policies", id]) => match state.okta_stored_policy(id) {
            Some(policy) => Reply::json(200, &okta_policy_json(base, policy)),
            None => okta_not_found(state, id, "Policy"),
        },
        ("PUT", ["policies", id]) => okta_put_policy(state, base, r, id),
        ("GET", ["policies", id, "rules"]) => {
            if state.okta_policy_index(id).is_none() {
                return okta_not_found(state, id, "Policy");
            }
            let rules: Vec<Value> = state
                .okta_policy_rules
                .get(*id)
                .into_iter()
                .flatten()
                .map(|rule| okta_rule_json(base, id, rule))
                .collect();
            Reply::json(200, &Value::Array(rules))
        }
        ("GET", ["policies", id, "rules", rid]) => match okta_find_rule(state, id, rid) {
            Ok(i) => Reply::json(
                200,
                &okta_rule_json(base, id, &state.okta_policy_rules[*id][i]),
            ),
            Err(reply) => reply,
        },
        ("PUT", ["policies", id, "rules", rid]) => okta_put_rule(state, base, r, id, rid),
        (
            "POST",
            [
                "policies",
                id,
                "rules",
                rid,
                "lifecycle",
                op @ ("activate" | "deactivate"),
            ],
        ) => match okta_find_rule(state, id, rid) {
            Ok(i) => {
                let rule = &mut state.okta_policy_rules.get_mut(*id).expect("found above")[i];
                rule["status"] = json!(if *op == "activate" {
                    "ACTIVE"
                } else {
                    "INACTIVE"
                });
                rule["lastUpdated"] = json!(okta_now());
                Reply::json(200, &json!({}))
            }
            Err(reply) => reply,
        },
        ("GET", ["authenticators"]) => {
            let list: Vec<Value> = state
                .okta_authenticators
                .iter()
                .map(|a| okta_authenticator_json(base, a))
                .collect();
            Reply::json(200, &Value::Array(list))
        }
        ("GET", ["authenticators", id]) => {
            match state
                .okta_authenticators
                .iter()
                .find(|a| id_of(a) == Some(*id))
            {
                Some(a) => Reply::json(200, &okta_authenticator_json(base, a)),
                None => okta_not_found(state, id, "Authenticator"),
            }
        }
        ("GET", ["apps", id]) => match state.okta_app_index(id) {
            Some(i) => Reply::json(200, &okta_app_json(base, &state.okta_apps[i])),
            None => okta_not_found(state, id, "AppInstance"),
        },
        ("PUT", ["apps", app_id, "policies", policy_id]) => {
            okta_assign_app_policy(state, app_id, policy_id)
        }
        ("PUT", ["groups", gid, "users", uid]) => {
            if gid.starts_with("missing") {
                return okta_not_found(state, gid, "UserGroup");
            }
            if uid.starts_with("missing") {
                return okta_not_found(state, uid, "User");
            }
            let members = state.okta_groups.entry((*gid).to_owned()).or_default();
            if !members.iter().any(|m| m == uid) {
                members.push((*uid).to_owned());
            }
            Reply::empty(204)
        }
        ("GET", ["groups", gid, "users"]) => okta_group_users(state, base, r, gid),
        ("GET", ["zones"]) => {
            let mut ids: Vec<&String> = state.okta_zones.keys().collect();
            ids.sort();
            let zones: Vec<Value> = ids
                .into_iter()
                .map(|id| state.okta_zones[id].json(id))
                .collect();
            Reply::json(200, &Value::Array(zones))
        }
        ("GET", ["zones", id]) => match state.okta_zones.get(*id) {
            Some(zone) => Reply::json(200, &zone.json(id)),
            None => okta_not_found(state, id, "Zone"),
        },
        ("PUT", ["zones", id]) => okta_put_zone(state, r, id),
        ("GET", ["logs"]) => okta_logs(state, base, r),
        (_, ["users"])
        | (_, ["users", _])
        | (_, ["users", _, "lifecycle", _])
        | (_, ["users", _, "sessions"])
        | (_, ["users", _, "factors", _])
        | (_, ["policies", _, "lifecycle", _])
        | (_, ["policies"])
        | (_, ["policies", _])
        | (_, ["policies", _, "rules"])
        | (_, ["policies", _, "rules", _])
        | (_, ["policies", _, "rules", _, "lifecycle", _])
        | (_, ["authenticators"])
        | (_, ["authenticators", _])
        | (_, ["apps", _])
        | (_, ["apps", _, "policies", _])
        | (_, ["groups", _, "users", _])
        | (_, ["groups", _, "users"])
        | (_, ["zones"])
        | (_, ["zones", _])
        | (_, ["logs"]) => okta_error(
            state,
            405,
            "E0000022",
            "The endpoint does not support the provided HTTP method",
            Vec::new(),
        ),
        _ => okta_not_found(state, &r.path, "Path"),
    }
}

// ---------------------------------------------------------------------------
// Okta MFA configuration: policies, rules, authenticators, apps

/// Okta's timestamp format, now: `2024-05-01T12:00:00.000Z`.
fn okta_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The string `id` of a JSON object.
fn id_of(value: &Value) -> Option<&str> {
    value.get("id").and_then(Value::as_str)
}

/// The string `id` of an object given to a setter; panics naming the
/// setter when there is none.
fn required_id(setter: &str, what: &str, value: &Value) -> String {
    match id_of(value) {
        Some(id) => id.to_owned(),
        None => panic!("{setter}: the {what} needs a string \"id\": {value}"),
    }
}

/// An Okta object as stored: without `_links` (the fake computes them when
/// serving), with `created` and `lastUpdated` (now, when absent).
fn okta_stamped(mut value: Value) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.remove("_links");
        let now = okta_now();
        map.entry("created").or_insert_with(|| json!(now));
        map.entry("lastUpdated").or_insert_with(|| json!(now));
    }
    value
}

/// A `_links` entry: `{"href", "hints": {"allow": [...]}}`.
fn okta_link(href: String, allow: &[&str]) -> Value {
    json!({"href": href, "hints": {"allow": allow}})
}

/// The lifecycle link an Okta object of this status offers:
/// `("deactivate", …)` when `ACTIVE`, else `("activate", …)`.
fn okta_lifecycle_link(href: &str, status: &Value) -> (&'static str, Value) {
    let op = if status == "ACTIVE" {
        "deactivate"
    } else {
        "activate"
    };
    (op, okta_link(format!("{href}/lifecycle/{op}"), &["POST"]))
}

/// `value` (a stored Okta object) with these `_links`.
fn with_links(value: &Value, links: serde_json::Map<String, Value>) -> Value {
    let mut value = value.clone();
    if let Some(map) = value.as_object_mut() {
        map.insert("_links".to_owned(), Value::Object(links));
    }
    value
}

/// A stored Okta policy as served, with its `_links`.
fn okta_policy_json(base: &str, policy: &Value) -> Value {
    let href = format!("{base}/api/v1/policies/{}", id_of(policy).unwrap_or(""));
    let mut links = serde_json::Map::new();
    links.insert(
        "self".to_owned(),
        okta_link(href.clone(), &["GET", "PUT", "DELETE"]),
    );
    links.insert(
        "rules".to_owned(),
        okta_link(format!("{href}/rules"), &["GET", "POST"]),
    );
    let (op, link) = okta_lifecycle_link(&href, &policy["status"]);
    links.insert(op.to_owned(), link);
    with_links(policy, links)
}

/// A stored Okta policy rule as served, with its `_links`.
fn okta_rule_json(base: &str, policy_id: &str, rule: &Value) -> Value {
    let href = format!(
        "{base}/api/v1/policies/{policy_id}/rules/{}",
        id_of(rule).unwrap_or("")
    );
    let mut links = serde_json::Map::new();
    links.insert(
        "self".to_owned(),
        okta_link(href.clone(), &["GET", "PUT", "DELETE"]),
    );
    let (op, link) = okta_lifecycle_link(&href, &rule["status"]);
    links.insert(op.to_owned(), link);
    with_links(rule, links)
}

/// A stored Okta authenticator as served, with its `_links`.
fn okta_authenticator_json(base: &str, authenticator: &Value) -> Value {
    let href = format!(
        "{base}/api/v1/authenticators/{}",
        id_of(authenticator).unwrap_or("")
    );
    let mut links = serde_json::Map::new();
    links.insert("self".to_owned(), okta_link(href.clone(), &["GET", "PUT"]));
    links.insert(
        "methods".to_owned(),
        okta_link(format!("{href}/methods"), &["GET"]),
    );
    let (op, link) = okta_lifecycle_link(&href, &authenticator["status"]);
    links.insert(op.to_owned(), link);
    with_links(authenticator, links)
}

/// A stored Okta app as served: its `_links` name its users, groups, the
/// policy assignment endpoint and, when it has one, its access policy.
fn okta_app_json(base: &str, app: &OktaApp) -> Value {
    let href = format!("{base}/api/v1/apps/{}", id_of(&app.body).unwrap_or(""));
    let mut links = serde_json::Map::new();
    links.insert("users".to_owned(), json!({"href": format!("{href}/users")}));
    links.insert(
        "groups".to_owned(),
        json!({"href": format!("{href}/groups")}),
    );
    links.insert(
        "policies".to_owned(),
        okta_link(format!("{href}/policies"), &["PUT"]),
    );
    if let Some(policy) = &app.access_policy {
        links.insert(
            "accessPolicy".to_owned(),
            json!({"href": format!("{base}/api/v1/policies/{policy}")}),
        );
    }
    let (op, link) = okta_lifecycle_link(&href, &app.body["status"]);
    links.insert(op.to_owned(), link);
    with_links(&app.body, links)
}

/// `GET /api/v1/policies?type=T[&status=S]`: the stored policies of type
/// `T` (and status `S`), in insertion order; `type` is required.
fn okta_list_policies(state: &mut State, base: &str, r: &Recorded) -> Reply {
    let params = query_params(r);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let Some(kind) = param("type") else {
        return okta_error(
            state,
            400,
            "E0000001",
            "Api validation failed: type",
            vec!["type: The field cannot be left blank"],
        );
    };
    let status = param("status");
    let list: Vec<Value> = state
        .okta_policy_objects
        .iter()
        .filter(|p| p["type"] == kind && status.is_none_or(|s| p["status"] == s))
        .map(|p| okta_policy_json(base, p))
        .collect();
    Reply::json(200, &Value::Array(list))
}

/// The body of an Okta `PUT` as a JSON object, or the 400 Okta answers:
/// `E0000003` when it is not JSON, `E0000001` when it is not an object.
fn okta_body_object(state: &mut State, r: &Recorded) -> Result<Value, Reply> {
    match serde_json::from_str::<Value>(&r.body) {
        Ok(body @ Value::Object(_)) => Ok(body),
        Ok(_) => Err(okta_invalid(
            state,
            "The request body must be a JSON object",
        )),
        Err(_) => Err(okta_error(
            state,
            400,
            "E0000003",
            "The request body was not well-formed.",
            Vec::new(),
        )),
    }
}

/// What a `PUT` of `body` over `stored` keeps: the body, with `id` the
/// path's, `status`, `created` kept from `stored` (status changes only
/// through the lifecycle calls), `lastUpdated` now, no `_links`.
fn okta_replaced(stored: &Value, body: Value, id: &str) -> Value {
    let Value::Object(mut map) = body else {
        unreachable!("checked by okta_body_object")
    };
    map.remove("_links");
    map.insert("id".to_owned(), json!(id));
    for kept in ["status", "created"] {
        match stored.get(kept) {
            Some(v) => map.insert(kept.to_owned(), v.clone()),
            None => map.remove(kept),
        };
    }
    map.insert("lastUpdated".to_owned(), json!(okta_now()));
    Value::Object(map)
}

/// `PUT /api/v1/policies/{id}`: replaces a stored policy of the same
/// `type` ([`okta_replaced`]); 200 with the policy as stored.
fn okta_put_policy(state: &mut State, base: &str, r: &Recorded, id: &str) -> Reply {
    let Some(i) = state.okta_policy_index(id) else {
        return okta_not_found(state, id, "Policy");
    };
    let body = match okta_body_object(state, r) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let stored = &state.okta_policy_objects[i];
    if body.get("type") != stored.get("type") {
        return okta_invalid(state, "type: The policy type cannot be changed");
    }
    let replaced = okta_replaced(stored, body, id);
    state.okta_policy_objects[i] = replaced;
    Reply::json(200, &okta_policy_json(base, &state.okta_policy_objects[i]))
}

/// Where the rule `rid` of the stored policy `pid` is in its rules, or the
/// 404 naming what is unknown.
fn okta_find_rule(state: &mut State, pid: &str, rid: &str) -> Result<usize, Reply> {
    if state.okta_policy_index(pid).is_none() {
        return Err(okta_not_found(state, pid, "Policy"));
    }
    match state
        .okta_policy_rules
        .get(pid)
        .and_then(|rules| rules.iter().position(|rule| id_of(rule) == Some(rid)))
    {
        Some(i) => Ok(i),
        None => Err(okta_not_found(state, rid, "PolicyRule")),
    }
}

/// `PUT /api/v1/policies/{pid}/rules/{rid}`: replaces a stored rule like a
/// policy `PUT` (same `type`, `id` forced, `status` kept); 200 with it.
fn okta_put_rule(state: &mut State, base: &str, r: &Recorded, pid: &str, rid: &str) -> Reply {
    let i = match okta_find_rule(state, pid, rid) {
        Ok(i) => i,
        Err(reply) => return reply,
    };
    let body = match okta_body_object(state, r) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let stored = &state.okta_policy_rules[pid][i];
    if body.get("type") != stored.get("type") {
        return okta_invalid(state, "type: The rule type cannot be changed");
    }
    let replaced = okta_replaced(stored, body, rid);
    let rules = state.okta_policy_rules.get_mut(pid).expect("found above");
    rules[i] = replaced;
    Reply::json(200, &okta_rule_json(base, pid, &rules[i]))
}

/// `PUT /api/v1/apps/{app_id}/policies/{policy_id}`: makes a stored
/// `ACCESS_POLICY` the app's access policy (204).
fn okta_assign_app_policy(state: &mut State, app_id: &str, policy_id: &str) -> Reply {
    let Some(app) = state.okta_app_index(app_id) else {
        return okta_not_found(state, app_id, "AppInstance");
    };
    let Some(policy) = state.okta_stored_policy(policy_id) else {
        return okta_not_found(state, policy_id, "Policy");
    };
    if policy["type"] != "ACCESS_POLICY" {
        let kind = policy["type"].as_str().unwrap_or("").to_owned();
        return okta_invalid(
            state,
            &format!(
                "policyId: Policy {policy_id} is of type {kind}; an app takes an ACCESS_POLICY"
            ),
        );
    }
    let app = &mut state.okta_apps[app];
    app.access_policy = Some(policy_id.to_owned());
    app.body["lastUpdated"] = json!(okta_now());
    Reply::empty(204)
}

fn okta_put_zone(state: &mut State, r: &Recorded, id: &str) -> Reply {
    if !state.okta_zones.contains_key(id) {
        return okta_not_found(state, id, "Zone");
    }
    let Ok(body) = serde_json::from_str::<Value>(&r.body) else {
        return okta_error(
            state,
            400,
            "E0000003",
            "The request body was not well-formed.",
            Vec::new(),
        );
    };
    if body["type"] != "IP" {
        return okta_invalid(state, "type: The zone type must be IP");
    }
    let Some(name) = body["name"].as_str().filter(|n| !n.trim().is_empty()) else {
        return okta_invalid(state, "name: The field cannot be left blank");
    };
    let mut gateways = Vec::new();
    match &body["gateways"] {
        Value::Null => {}
        Value::Array(items) => {
            for g in items {
                let (Some(kind), Some(value)) = (g["type"].as_str(), g["value"].as_str()) else {
                    return okta_invalid(state, "gateways: Each gateway needs a type and a value");
                };
                let valid = match kind {
                    "CIDR" => parse_cidr(value).is_some(),
                    "RANGE" => valid_range(value),
                    _ => false,
                };
                if !valid {
                    return okta_invalid(
                        state,
                        &format!("gateways: Invalid gateway {kind} value '{value}'"),
                    );
                }
                gateways.push((kind.to_owned(), value.to_owned()));
            }
        }
        _ => return okta_invalid(state, "gateways: The field must be a list"),
    }
    let zone = state.okta_zones.get_mut(id).expect("checked above");
    zone.name = name.to_owned();
    if let Some(usage) = body["usage"].as_str() {
        zone.usage = usage.to_owned();
    }
    zone.gateways = gateways;
    Reply::json(200, &zone.json(id))
}

/// `a.b.c.d/len` or an IPv6 CIDR; `Some(is_ipv4)` when valid.
fn parse_cidr(s: &str) -> Option<bool> {
    let (ip, len) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some(ip.is_ipv4())
}

/// Okta's `RANGE` gateway: `a.b.c.d-e.f.g.h` (or one address).
fn valid_range(s: &str) -> bool {
    match s.split_once('-') {
        Some((a, b)) => a.parse::<IpAddr>().is_ok() && b.parse::<IpAddr>().is_ok(),
        None => s.parse::<IpAddr>().is_ok(),
    }
}

fn okta_logs(state: &mut State, base: &str, r: &Recorded) -> Reply {
    let params: Vec<(String, String)> = r
        .query
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = match param("limit") {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(l) if (1..=1000).contains(&l) => l,
            _ => return okta_invalid(state, "limit: Must be between 1 and 1000"),
        },
    };
    let descending = match param("sortOrder") {
        None | Some("ASCENDING") => false,
        Some("DESCENDING") => true,
        Some(_) => return okta_invalid(state, "sortOrder: Must be ASCENDING or DESCENDING"),
    };
    let since = param("since");
    let until = param("until");
    let after = param("after");
    let published = |e: &Value| e["published"].as_str().unwrap_or("").to_owned();
    let mut events: Vec<&Value> = state
        .okta_logs
        .iter()
        .filter(|e| since.is_none_or(|s| published(e).as_str() >= s))
        .filter(|e| until.is_none_or(|u| published(e).as_str() < u))
        .collect();
    if descending {
        events.reverse();
    }
    if let Some(after) = after
        && let Some(i) = events.iter().position(|e| e["uuid"] == after)
    {
        events.drain(..=i);
    }
    events.truncate(limit);
    let page: Vec<Value> = events.into_iter().cloned().collect();
    let cursor = page
        .last()
        .and_then(|e| e["uuid"].as_str())
        .map(str::to_owned)
        .or_else(|| after.map(str::to_owned));
    let self_link = match &r.query {
        Some(q) => format!("{base}{}?{q}", r.path),
        None => format!("{base}{}", r.path),
    };
    let mut next = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(k, _)| k != "after") {
        next.append_pair(k, v);
    }
    if let Some(cursor) = &cursor {
        next.append_pair("after", cursor);
    }
    let next = next.finish();
    let base = state.okta_logs_next_base.as_deref().unwrap_or(base);
    let next_link = if next.is_empty() {
        format!("{base}{}", r.path)
    } else {
        format!("{base}{}?{next}", r.path)
    };
    Reply::json(200, &Value::Array(page))
        .header("link", format!("<{self_link}>; rel=\"self\""))
        .header("link", format!("<{next_link}>; rel=\"next\""))
}

// ---------------------------------------------------------------------------
// Graph

const GRAPH_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

fn request_id(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn graph_error(state: &mut State, r: &Recorded, status: u16, code: &str, message: &str) -> Reply {
    let id = request_id(state.next_serial());
    let client_id = r.header("client-request-id").unwrap_or(&id).to_owned();
    let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    Reply::json(
        status,
        &json!({
            "error": {
                "code": code,
                "message": message,
                "innerError": {"date": date, "request-id": id, "client-request-id": client_id}
            }
        }),
    )
    .content_type(GRAPH_JSON)
}

fn graph_user_not_found(state: &mut State, r: &Recorded, id: &str) -> Reply {
    graph_error(
        state,
        r,
        404,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn graph_bad_json(state: &mut State, r: &Recorded) -> Reply {
    graph_error(
        state,
        r,
        400,
        "BadRequest",
        "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
    )
}

fn graph_authorized(state: &State, r: &Recorded) -> bool {
    let Some((scheme, token)) = r
        .header("authorization")
        .and_then(|a| a.trim().split_once(' '))
    else {
        return false;
    };
    scheme.eq_ignore_ascii_case("Bearer")
        && state
            .tokens
            .get(token.trim())
            .is_some_and(|expiry| Instant::now() < *expiry)
}

fn graph(state: &mut State, r: &Recorded, segs: &[&str]) -> Reply {
    let reply = graph_inner(state, r, segs);
    let id = request_id(state.next_serial());
    let client_id = r.header("client-request-id").unwrap_or(&id).to_owned();
    let reply = reply
        .header("request-id", id)
        .header("client-request-id", client_id);
    if reply.status == 401 {
        reply.header(
            "www-authenticate",
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        )
    } else {
        reply
    }
}

fn graph_inner(state: &mut State, r: &Recorded, segs: &[&str]) -> Reply {
    if !graph_authorized(state, r) {
        return graph_error(
            state,
            r,
            401,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        );
    }
    let method = r.method.as_str();
    match (method, segs) {
        ("GET", ["users"]) => Reply::json(
            200,
            &json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(id)",
                "value": [{"id": "fake-user"}]
            }),
        )
        .content_type(GRAPH_JSON),
        (_, ["users", id, ..]) if id.starts_with("missing") => graph_user_not_found(state, r, id),
        ("GET", ["users", name]) => graph_get_user(state, r, name),
        ("PATCH", ["users", name]) => {
            let canonical = state.graph_id(name);
            let id = &canonical.as_str();
            let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&r.body) else {
                return graph_bad_json(state, r);
            };
            if let Some(flag) = body.get("accountEnabled") {
                let Some(flag) = flag.as_bool() else {
                    return graph_error(
                        state,
                        r,
                        400,
                        "BadRequest",
                        "Invalid value specified for property 'accountEnabled' of resource 'User'.",
                    );
                };
                state.graph_enabled.insert((*id).to_owned(), flag);
            }
            Reply::empty(204)
        }
        ("POST", ["users", _, "revokeSignInSessions"]) => Reply::json(
            200,
            &json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean",
                "value": true
            }),
        )
        .content_type(GRAPH_JSON),
        ("GET", ["users", id, "authentication", "methods"]) => {
            let next = state.graph_methods_next.clone();
            let last_page = r.query.as_deref().is_some_and(|q| q.contains("skiptoken"));
            let value: Vec<Value> = graph_methods()
                .into_iter()
                .filter(|(_, mid, _)| {
                    !state
                        .graph_deleted_methods
                        .contains(&((*id).to_owned(), (*mid).to_owned()))
                })
                .map(|(_, _, v)| v)
                .filter(|_| !last_page)
                .collect();
            let mut body = json!({
                "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{id}')/authentication/methods"),
                "value": value
            });
            if let Some(next) = next.filter(|_| !last_page) {
                body["@odata.nextLink"] = json!(next);
            }
            Reply::json(200, &body).content_type(GRAPH_JSON)
        }
        ("DELETE", ["users", id, "authentication", kind, mid]) => {
            graph_delete_method(state, r, id, kind, mid)
        }
        ("GET", ["identity", "conditionalAccess", "policies"]) => Reply::json(
            200,
            &json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/policies",
                "value": state.graph_ca_objects
            }),
        )
        .content_type(GRAPH_JSON),
        ("GET", ["identity", "conditionalAccess", "policies", id]) => {
            match state.graph_ca_policy_index(id) {
                Some(i) => {
                    let mut policy = state.graph_ca_objects[i].clone();
                    policy["@odata.context"] = json!(
                        "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/policies/$entity"
                    );
                    Reply::json(200, &policy).content_type(GRAPH_JSON)
                }
                None => graph_ca_not_found(state, r, id),
            }
        }
        ("PATCH", ["identity", "conditionalAccess", "policies", id]) => {
            graph_patch_ca_policy(state, r, id)
        }
        ("GET", ["policies", "authenticationMethodsPolicy"]) => {
            let mut policy = state.graph_auth_methods_policy.clone();
            policy["@odata.context"] = json!(
                "https://graph.microsoft.com/v1.0/$metadata#policies/authenticationMethodsPolicy/$entity"
            );
            Reply::json(200, &policy).content_type(GRAPH_JSON)
        }
        ("PATCH", ["policies", "authenticationMethodsPolicy"]) => {
            let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&r.body) else {
                return graph_bad_json(state, r);
            };
            let policy = &mut state.graph_auth_methods_policy;
            graph_merge(policy, body, &["id", "lastModifiedDateTime"]);
            policy["lastModifiedDateTime"] = json!(graph_now());
            Reply::empty(204)
        }
        ("GET", ["identity", "conditionalAccess", "namedLocations", id]) => {
            match state.graph_locations.get(*id) {
                Some(l) => Reply::json(200, &l.json(id)).content_type(GRAPH_JSON),
                None => graph_location_not_found(state, r, id),
            }
        }
        ("PATCH", ["identity", "conditionalAccess", "namedLocations", id]) => {
            graph_patch_location(state, r, id)
        }
        ("POST", ["groups", gid, "members", "$ref"]) => graph_add_member(state, r, gid),
        ("GET", ["groups", gid, "transitiveMembers", "microsoft.graph.user"]) => {
            graph_group_users(state, r, gid)
        }
        (_, ["users"])
        | (_, ["users", _])
        | (_, ["users", _, "revokeSignInSessions"])
        | (_, ["users", _, "authentication", "methods"])
        | (_, ["users", _, "authentication", _, _])
        | (_, ["identity", "conditionalAccess", "policies"])
        | (_, ["identity", "conditionalAccess", "policies", _])
        | (_, ["policies", "authenticationMethodsPolicy"])
        | (_, ["identity", "conditionalAccess", "namedLocations", _])
        | (_, ["groups", _, "members", "$ref"])
        | (_, ["groups", _, "transitiveMembers", "microsoft.graph.user"]) => graph_error(
            state,
            r,
            405,
            "Request_BadRequest",
            &format!("The HTTP method '{method}' is not allowed on this resource."),
        ),
        _ => graph_error(
            state,
            r,
            404,
            "Request_ResourceNotFound",
            &format!(
                "Resource not found for the segment '{}'.",
                segs.last().unwrap_or(&"")
            ),
        ),
    }
}

/// `GET /v1.0/users/{id or UPN}`: the user, honouring `$select` for `id`,
/// `userPrincipalName`, `accountEnabled`, `mail`, `otherMails` and
/// `proxyAddresses` (all of them without `$select`).
fn graph_get_user(state: &mut State, r: &Recorded, name: &str) -> Reply {
    let id = state.graph_id(name);
    let enabled = state.graph_enabled.get(&id).copied().unwrap_or(true);
    let (upn, mail, other_mails, proxies) = match state.graph_user_named(name) {
        Some(u) => (
            u.upn.clone(),
            u.mail.clone(),
            u.other_mails.clone(),
            u.proxy_addresses.clone(),
        ),
        None => (format!("{id}@example.com"), None, Vec::new(), Vec::new()),
    };
    let select = query_params(r)
        .into_iter()
        .find(|(k, _)| k == "$select")
        .map(|(_, v)| v);
    let wanted = |field: &str| {
        select
            .as_deref()
            .is_none_or(|s| s.split(',').any(|f| f == field))
    };
    let mut user = serde_json::Map::new();
    user.insert(
        "@odata.context".into(),
        json!("https://graph.microsoft.com/v1.0/$metadata#users/$entity"),
    );
    for (field, value) in [
        ("id", json!(id)),
        ("userPrincipalName", json!(upn)),
        ("accountEnabled", json!(enabled)),
        ("mail", json!(mail)),
        ("otherMails", json!(other_mails)),
        ("proxyAddresses", json!(proxies)),
    ] {
        if wanted(field) {
            user.insert(field.into(), value);
        }
    }
    Reply::json(200, &Value::Object(user)).content_type(GRAPH_JSON)
}

fn graph_delete_method(
    state: &mut State,
    r: &Recorded,
    user: &str,
    kind: &str,
    mid: &str,
) -> Reply {
    if !GRAPH_METHOD_KINDS.contains(&kind) {
        return graph_error(
            state,
            r,
            400,
            "BadRequest",
            &format!("Resource not found for the segment '{kind}'."),
        );
    }
    if kind == "passwordMethods" {
        return graph_error(
            state,
            r,
            400,
            "invalidRequest",
            "Deleting the password authentication method is not supported.",
        );
    }
    let known = graph_methods().into_iter().find(|(_, id, _)| *id == mid);
    let key = (user.to_owned(), mid.to_owned());
    if known.as_ref().is_some_and(|(k, _, _)| *k != kind)
        || state.graph_deleted_methods.contains(&key)
    {
        return graph_error(
            state,
            r,
            404,
            "itemNotFound",
            &format!("The requested authentication method '{mid}' was not found."),
        );
    }
    state.graph_deleted_methods.insert(key);
    Reply::empty(204)
}

/// Graph's timestamp format, now: `2024-05-01T12:00:00.1234567Z`.
fn graph_now() -> String {
    let now = chrono::Utc::now();
    format!(
        "{}.{:07}Z",
        now.format("%Y-%m-%dT%H:%M:%S"),
        now.timestamp_subsec_nanos() / 100
    )
}

/// A PATCH as Graph applies it: each top-level property of `body` replaces
/// the stored one, except the `@odata.*` annotations and the read-only
/// properties `read_only`.
fn graph_merge(stored: &mut Value, body: serde_json::Map<String, Value>, read_only: &[&str]) {
    let Some(stored) = stored.as_object_mut() else {
        return;
    };
    for (name, value) in body {
        if !name.starts_with("@odata.") && !read_only.contains(&name.as_str()) {
            stored.insert(name, value);
        }
    }
}

fn graph_ca_not_found(state: &mut State, r: &Recorded, id: &str) -> Reply {
    graph_error(
        state,
        r,
        404,
        "ResourceNotFound",
        &format!("Could not find policy with id '{id}'."),
    )
}

/// `PATCH /v1.0/identity/conditionalAccess/policies/{id}`: a `state`, if
/// given, must be one Graph knows. A stored policy gets the body's
/// top-level properties (not `id`, `createdDateTime`, `modifiedDateTime`)
/// and a new `modifiedDateTime`; for any other id (except `missing…`, 404)
/// only the `state` is recorded.
fn graph_patch_ca_policy(state: &mut State, r: &Recorded, id: &str) -> Reply {
    let stored = state.graph_ca_policy_index(id);
    if stored.is_none() && id.starts_with("missing") {
        return graph_ca_not_found(state, r, id);
    }
    let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&r.body) else {
        return graph_bad_json(state, r);
    };
    if let Some(s) = body.get("state") {
        match s.as_str() {
            Some("enabled" | "disabled" | "enabledForReportingButNotEnforced") => {}
            _ => {
                return graph_error(
                    state,
                    r,
                    400,
                    "BadRequest",
                    &format!("Requested value '{s}' was not found."),
                );
            }
        }
    }
    match stored {
        Some(i) => {
            let policy = &mut state.graph_ca_objects[i];
            graph_merge(policy, body, &["id", "createdDateTime", "modifiedDateTime"]);
            policy["modifiedDateTime"] = json!(graph_now());
        }
        None => {
            if let Some(s) = body.get("state").and_then(Value::as_str) {
                state.graph_ca_policies.insert(id.to_owned(), s.to_owned());
            }
        }
    }
    Reply::empty(204)
}

/// The authentication methods policy of a fresh tenant: Microsoft
/// Authenticator, FIDO2 and software OATH enabled for all users; SMS,
/// voice and email OTP disabled.
fn default_auth_methods_policy() -> Value {
    let all_users =
        json!([{"targetType": "group", "id": "all_users", "isRegistrationRequired": false}]);
    json!({
        "id": "authenticationMethodsPolicy",
        "displayName": "Authentication Methods Policy",
        "description": "The tenant-wide policy that controls which authentication methods are allowed in the tenant, authentication method registration requirements, and self-service password reset settings",
        "lastModifiedDateTime": "2024-01-15T09:30:00.0000000Z",
        "policyVersion": "1.5",
        "policyMigrationState": "migrationComplete",
        "registrationEnforcement": {
            "authenticationMethodsRegistrationCampaign": {
                "snoozeDurationInDays": 1,
                "enforceRegistrationAfterAllowedSnoozes": true,
                "state": "default",
                "excludeTargets": [],
                "includeTargets": [{
                    "id": "all_users",
                    "targetType": "group",
                    "targetedAuthenticationMethod": "microsoftAuthenticator"
                }]
            }
        },
        "authenticationMethodConfigurations": [
            {
                "@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethodConfiguration",
                "id": "MicrosoftAuthenticator",
                "state": "enabled",
                "isSoftwareOathEnabled": false,
                "excludeTargets": [],
                "includeTargets": [{
                    "targetType": "group",
                    "id": "all_users",
                    "isRegistrationRequired": false,
                    "authenticationMode": "any"
                }],
                "featureSettings": {
                    "displayAppInformationRequiredState": {
                        "state": "enabled",
                        "includeTarget": {"targetType": "group", "id": "all_users"},
                        "excludeTarget": {"targetType": "group", "id": "00000000-0000-0000-0000-000000000000"}
                    },
                    "displayLocationInformationRequiredState": {
                        "state": "enabled",
                        "includeTarget": {"targetType": "group", "id": "all_users"},
                        "excludeTarget": {"targetType": "group", "id": "00000000-0000-0000-0000-000000000000"}
                    }
                }
            },
            {
                "@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration",
                "id": "Fido2",
                "state": "enabled",
                "isSelfServiceRegistrationAllowed": true,
                "isAttestationEnforced": true,
                "keyRestrictions": {"isEnforced": false, "enforcementType": "block", "aaGuids": []},
                "excludeTargets": [],
                "includeTargets": all_users
            },
            {
                "@odata.type": "#microsoft.graph.smsAuthenticationMethodConfiguration",
                "id": "Sms",
                "state": "disabled",
                "excludeTargets": [],
                "includeTargets": [{
                    "targetType": "group",
                    "id": "all_users",
                    "isRegistrationRequired": false,
                    "isUsableForSignIn": true
                }]
            },
            {
                "@odata.type": "#microsoft.graph.voiceAuthenticationMethodConfiguration",
                "id": "Voice",
                "state": "disabled",
                "isOfficePhoneAllowed": false,
                "excludeTargets": [],
                "includeTargets": all_users
            },
            {
                "@odata.type": "#microsoft.graph.emailAuthenticationMethodConfiguration",
                "id": "Email",
                "state": "disabled",
                "allowExternalIdToUseEmailOtp": "default",
                "excludeTargets": [],
                "includeTargets": all_users
            },
            {
                "@odata.type": "#microsoft.graph.softwareOathAuthenticationMethodConfiguration",
                "id": "SoftwareOath",
                "state": "enabled",
                "excludeTargets": [],
                "includeTargets": all_users
            }
        ]
    })
}

fn graph_location_not_found(state: &mut State, r: &Recorded, id: &str) -> Reply {
    graph_error(
        state,
        r,
        404,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn graph_patch_location(state: &mut State, r: &Recorded, id: &str) -> Reply {
    if !state.graph_locations.contains_key(id) {
        return graph_location_not_found(state, r, id);
    }
    let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&r.body) else {
        return graph_bad_json(state, r);
    };
    if body.get("@odata.type").and_then(Value::as_str) != Some("#microsoft.graph.ipNamedLocation") {
        return graph_error(
            state,
            r,
            400,
            "BadRequest",
            "The @odata.type property '#microsoft.graph.ipNamedLocation' is required to update a named location.",
        );
    }
    let mut ranges = None;
    if let Some(items) = body.get("ipRanges") {
        let Some(items) = items.as_array() else {
            return graph_error(state, r, 400, "BadRequest", "ipRanges must be a list.");
        };
        let mut parsed = Vec::new();
        for item in items {
            let kind = item["@odata.type"].as_str().unwrap_or("");
            let cidr = item["cidrAddress"].as_str().unwrap_or("");
            let ok = matches!(
                (kind, parse_cidr(cidr)),
                ("#microsoft.graph.iPv4CidrRange", Some(true))
                    | ("#microsoft.graph.iPv6CidrRange", Some(false))
            );
            if !ok {
                return graph_error(
                    state,
                    r,
                    400,
                    "BadRequest",
                    &format!("Invalid IP range: @odata.type '{kind}', cidrAddress '{cidr}'."),
                );
            }
            parsed.push((kind.to_owned(), cidr.to_owned()));
        }
        ranges = Some(parsed);
    }
    let location = state.graph_locations.get_mut(id).expect("checked above");
    if let Some(ranges) = ranges {
        location.ranges = ranges;
    }
    if let Some(name) = body.get("displayName").and_then(Value::as_str) {
        location.display_name = name.to_owned();
    }
    if let Some(trusted) = body.get("isTrusted").and_then(Value::as_bool) {
        location.is_trusted = trusted;
    }
    Reply::empty(204)
}

fn range_type(cidr: &str) -> &'static str {
    if parse_cidr(cidr) == Some(false) {
        "#microsoft.graph.iPv6CidrRange"
    } else {
        "#microsoft.graph.iPv4CidrRange"
    }
}

fn graph_add_member(state: &mut State, r: &Recorded, gid: &str) -> Reply {
    if gid.starts_with("missing") {
        return graph_user_not_found(state, r, gid);
    }
    let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&r.body) else {
        return graph_bad_json(state, r);
    };
    let reference = body.get("@odata.id").and_then(Value::as_str).unwrap_or("");
    let uid = reference
        .split_once("/directoryObjects/")
        .or_else(|| reference.split_once("/users/"))
        .map(|(_, uid)| uid)
        .filter(|uid| !uid.is_empty() && !uid.contains('/'));
    let Some(uid) = uid else {
        return graph_error(
            state,
            r,
            400,
            "Request_BadRequest",
            &format!("Invalid object identifier '{reference}'."),
        );
    };
    if uid.starts_with("missing") {
        return graph_user_not_found(state, r, uid);
    }
    let members = state.graph_groups.entry(gid.to_owned()).or_default();
    if members.iter().any(|m| m == uid) {
        return graph_error(
            state,
            r,
            400,
            "Request_BadRequest",
            "One or more added object references already exist for the following modified properties: 'members'.",
        );
    }
    members.push(uid.to_owned());
    Reply::empty(204)
}

// ---------------------------------------------------------------------------
// Protected groups: group member listings (Okta and Graph)

/// The query parameters of a request, decoded.
fn query_params(r: &Recorded) -> Vec<(String, String)> {
    r.query
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// `GET /api/v1/groups/{gid}/users?limit=&after=`: Okta's group members,
/// `limit` (1–1000, default 1000) a page, the next page's `after` cursor
/// being the last user id of this one; a `next` link only when more
/// remain.
fn okta_group_users(state: &mut State, base: &str, r: &Recorded, gid: &str) -> Reply {
    let Some(ids) = state.okta_groups.get(gid).cloned() else {
        return okta_not_found(state, gid, "UserGroup");
    };
    let params = query_params(r);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = match param("limit") {
        None => 1000,
        Some(l) => match l.parse::<usize>() {
            Ok(l) if (1..=1000).contains(&l) => l,
            _ => return okta_invalid(state, "limit: Must be between 1 and 1000"),
        },
    };
    let start = match param("after") {
        None => 0,
        Some(after) => match ids.iter().position(|id| id == after) {
            Some(i) => i + 1,
            None => return okta_invalid(state, "after: Invalid cursor"),
        },
    };
    let end = (start + limit).min(ids.len());
    let page: Vec<Value> = ids[start..end]
        .iter()
        .map(|id| {
            let login = state
                .okta_logins
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("{id}@example.com"));
            json!({
                "id": id,
                "status": "ACTIVE",
                "type": {"id": "oty1fake"},
                "profile": {"login": login, "email": login}
            })
        })
        .collect();
    let self_link = match &r.query {
        Some(q) => format!("{base}{}?{q}", r.path),
        None => format!("{base}{}", r.path),
    };
    let mut reply = Reply::json(200, &Value::Array(page))
        .header("link", format!("<{self_link}>; rel=\"self\""));
    if end < ids.len() {
        let next_base = state.group_next_base.as_deref().unwrap_or(base);
        let cursor: String = form_urlencoded::byte_serialize(ids[end - 1].as_bytes()).collect();
        reply = reply.header(
            "link",
            format!(
                "<{next_base}{}?after={cursor}&limit={limit}>; rel=\"next\"",
                r.path
            ),
        );
    }
    reply
}

/// `GET /v1.0/groups/{gid}/transitiveMembers/microsoft.graph.user`: the
/// group's users, `$top` (1–999, default 100) a page, `$select` honoured
/// for `id`, `userPrincipalName` and `displayName`; `@odata.nextLink`
/// (on the request's `Host`) carries a `$skiptoken` while more remain.
fn graph_group_users(state: &mut State, r: &Recorded, gid: &str) -> Reply {
    let Some(ids) = state.graph_groups.get(gid).cloned() else {
        return graph_error(
            state,
            r,
            404,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{gid}' does not exist or one of its queried reference-property objects are not present."
            ),
        );
    };
    let params = query_params(r);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let top = match param("$top") {
        None => 100,
        Some(t) => match t.parse::<usize>() {
            Ok(t) if (1..=999).contains(&t) => t,
            _ => {
                return graph_error(
                    state,
                    r,
                    400,
                    "Request_BadRequest",
                    &format!(
                        "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                    ),
                );
            }
        },
    };
    let start = match param("$skiptoken") {
        None => 0,
        Some(token) => match token.strip_prefix("RFNwdA").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return graph_error(
                    state,
                    r,
                    400,
                    "Directory_InvalidSkipToken",
                    "The specified page token value has expired and can no longer be included in your request.",
                );
            }
        },
    };
    let select = param("$select");
    let wanted = |field: &str| {
        select
            .as_deref()
            .is_none_or(|s| s.split(',').any(|f| f == field))
    };
    let end = (start + top).min(ids.len());
    let value: Vec<Value> = ids[start.min(end)..end]
        .iter()
        .map(|id| {
            let upn = state
                .graph_upns
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("{id}@example.com"));
            let mut user = serde_json::Map::new();
            user.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            if wanted("id") {
                user.insert("id".into(), json!(id));
            }
            if wanted("userPrincipalName") {
                user.insert("userPrincipalName".into(), json!(upn));
            }
            if wanted("displayName") {
                user.insert("displayName".into(), json!(format!("User {id}")));
            }
            Value::Object(user)
        })
        .collect();
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
        "value": value
    });
    if end < ids.len() {
        let base = match &state.group_next_base {
            Some(b) => b.clone(),
            None => format!("http://{}", r.header("host").unwrap_or("127.0.0.1")),
        };
        let select = select.map(|s| format!("$select={s}&")).unwrap_or_default();
        body["@odata.nextLink"] = json!(format!(
            "{base}/v1.0/groups/{gid}/transitiveMembers/microsoft.graph.user?{select}$top={top}&$skiptoken=RFNwdA{end}"
        ));
    }
    Reply::json(200, &body).content_type(GRAPH_JSON)
}

// ---------------------------------------------------------------------------
// Entra ID token endpoint

fn token_error(state: &mut State, status: u16, error: &str, description: &str, code: u32) -> Reply {
    let trace = request_id(state.next_serial());
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    Reply::json(
        status,
        &json!({
            "error": error,
            "error_description": format!("{description} Trace ID: {trace} Correlation ID: {trace} Timestamp: {timestamp}"),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": trace,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}")
        }),
    )
    .content_type("application/json; charset=utf-8")
    .header("cache-control", "no-store, no-cache")
}

fn token(state: &mut State, r: &Recorded, tenant: &str) -> Reply {
    if r.method != "POST" {
        return token_error(
            state,
            400,
            "invalid_request",
            "AADSTS900561: The endpoint only accepts POST requests. Received a GET request.",
            900561,
        );
    }
    if tenant != GRAPH_TENANT {
        return token_error(
            state,
            400,
            "invalid_request",
            &format!(
                "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
            90002,
        );
    }
    let grant = r.form_param("grant_type").unwrap_or_default();
    if grant.is_empty() {
        return token_error(
            state,
            400,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
            900144,
        );
    }
    if grant != "client_credentials" {
        return token_error(
            state,
            400,
            "unsupported_grant_type",
            &format!("AADSTS70003: The app requested an unsupported grant type '{grant}'."),
            70003,
        );
    }
    let Some(scope) = r.form_param("scope") else {
        return token_error(
            state,
            400,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'scope'.",
            900144,
        );
    };
    if r.form_param("client_id").as_deref() != Some(GRAPH_CLIENT_ID)
        || r.form_param("client_secret").as_deref() != Some(GRAPH_CLIENT_SECRET)
    {
        let client = r.form_param("client_id").unwrap_or_default();
        return token_error(
            state,
            401,
            "invalid_client",
            &format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client}'."
            ),
            7000215,
        );
    }
    if !scope.split(' ').any(|s| s.ends_with("/.default")) {
        return token_error(
            state,
            400,
            "invalid_scope",
            &format!(
                "AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
            1002012,
        );
    }
    state.tokens_issued += 1;
    let token = format!("fake-graph-token-{}", state.tokens_issued);
    let lifetime = state.token_lifetime;
    state.tokens.insert(
        token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    Reply::json(
        200,
        &json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token
        }),
    )
    .content_type("application/json; charset=utf-8")
    .header("cache-control", "no-store, no-cache")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::blocking::Client;

    fn client() -> Client {
        Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    fn okta_auth() -> String {
        format!("SSWS {OKTA_TOKEN}")
    }

    fn graph_token(idp: &FakeIdp, c: &Client) -> String {
        let resp = c
            .post(idp.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", GRAPH_CLIENT_ID),
                ("client_secret", GRAPH_CLIENT_SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    #[test]
    fn directory_users_are_found_by_every_name_the_vendor_accepts() {
        let idp = FakeIdp::start();
        idp.add_okta_user(
            "00uBg1",
            "bg.admin@corp.example",
            None,
            Some("bg@home.example"),
        );
        idp.add_graph_user(
            "obj-1",
            "ops@contoso.com",
            Some("ops@contoso.com"),
            &["ops@other.example"],
            &["smtp:alias@contoso.com"],
        );
        let c = client();
        for name in [
            "00uBg1",
            "00UBG1",
            "bg.admin@corp.example",
            "BG.Admin",
            "bg.admin",
        ] {
            let user: Value = c
                .get(format!("{}/api/v1/users/{name}", idp.base_url()))
                .header("authorization", okta_auth())
                .send()
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(user["id"], "00uBg1", "{name}");
            assert_eq!(user["profile"]["secondEmail"], "bg@home.example");
        }
        // A name that is no directory user is a user of its own.
        let other: Value = c
            .get(format!("{}/api/v1/users/bg", idp.base_url()))
            .header("authorization", okta_auth())
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(other["id"], "bg");
        // Acting by login acts on the canonical user.
        let resp = c
            .post(format!(
                "{}/api/v1/users/bg.admin/lifecycle/suspend",
                idp.base_url()
            ))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(idp.okta_user_status("00uBg1"), "SUSPENDED");

        let token = graph_token(&idp, &c);
        let user: Value = c
            .get(format!(
                "{}/users/OPS@contoso.com?$select=id,mail,otherMails,proxyAddresses",
                idp.graph_url()
            ))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(user["id"], "obj-1");
        assert_eq!(user["otherMails"], json!(["ops@other.example"]));
        assert_eq!(user["proxyAddresses"], json!(["smtp:alias@contoso.com"]));
        assert!(user.get("userPrincipalName").is_none(), "not selected");
    }

    #[test]
    fn okta_refuses_missing_or_wrong_credentials_and_records_them() {
        let idp = FakeIdp::start();
        let c = client();
        let url = format!("{}/api/v1/users/00u1/lifecycle/suspend", idp.base_url());
        for auth in [None, Some("SSWS wrong"), Some("Basic ZmFrZQ==")] {
            let mut req = c.post(&url);
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            let resp = req.send().unwrap();
            assert_eq!(resp.status(), 401);
            let body: Value = resp.json().unwrap();
            assert_eq!(body["errorCode"], "E0000011");
            assert_eq!(body["errorSummary"], "Invalid token provided");
            assert_eq!(body["errorLink"], "E0000011");
            assert!(body["errorId"].as_str().unwrap().starts_with("oae"));
            assert_eq!(body["errorCauses"], json!([]));
        }
        assert_eq!(idp.requests().len(), 3);
        assert_eq!(
            idp.requests()[1].header("Authorization"),
            Some("SSWS wrong")
        );
        assert_eq!(idp.okta_user_status("00u1"), "ACTIVE");

        // Bearer is accepted as well as SSWS.
        let resp = c
            .post(&url)
            .header("authorization", format!("Bearer {OKTA_TOKEN}"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    #[test]
    fn okta_suspend_changes_status_and_refuses_a_second_suspend() {
        let idp = FakeIdp::start();
        let c = client();
        let url = |op: &str| format!("{}/api/v1/users/00u1/lifecycle/{op}", idp.base_url());

        let resp = c
            .post(url("suspend"))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("x-rate-limit-remaining"));
        assert_eq!(resp.json::<Value>().unwrap(), json!({}));
        assert_eq!(idp.okta_user_status("00u1"), "SUSPENDED");

        let resp = c
            .post(url("suspend"))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().unwrap();
        assert_eq!(body["errorCode"], "E0000001");
        assert_eq!(
            body["errorSummary"],
            "Api validation failed: Cannot suspend a user that is not active"
        );

        let resp = c
            .post(url("unsuspend"))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(idp.okta_user_status("00u1"), "ACTIVE");
        let resp = c
            .post(url("unsuspend"))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400);

        let resp = c
            .post(format!(
                "{}/api/v1/users/missing-7/lifecycle/suspend",
                idp.base_url()
            ))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 404);
        let body: Value = resp.json().unwrap();
        assert_eq!(body["errorCode"], "E0000007");
        assert_eq!(
            body["errorSummary"],
            "Not found: Resource not found: missing-7 (User)"
        );

        let suspends = idp.requests_matching("POST", "/api/v1/users/00u1/lifecycle/suspend");
        assert_eq!(suspends.len(), 2);
        assert!(suspends[0].at <= suspends[1].at);
    }

    #[test]
    fn okta_sessions_groups_policies_and_users() {
        let idp = FakeIdp::start();
        let c = client();
        let base = idp.base_url();
        let resp = c
            .delete(format!(
                "{base}/api/v1/users/00u1/sessions?oauthTokens=true"
            ))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 204);
        let sent = &idp.requests_matching("DELETE", "/api/v1/users/00u1/sessions")[0];
        assert_eq!(sent.query.as_deref(), Some("oauthTokens=true"));
        assert_eq!(sent.query_param("oauthTokens").as_deref(), Some("true"));

        for _ in 0..2 {
            let resp = c
                .put(format!("{base}/api/v1/groups/00gquarantine/users/00u1"))
                .header("authorization", okta_auth())
                .send()
                .unwrap();
            assert_eq!(resp.status(), 204);
        }
        assert_eq!(idp.okta_group_members("00gquarantine"), ["00u1"]);

        let resp = c
            .post(format!("{base}/api/v1/policies/00p1/lifecycle/activate"))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(idp.okta_policy_status("00p1").as_deref(), Some("ACTIVE"));

        let resp = c
            .post(format!("{base}/api/v1/users/00u1/lifecycle/reset_factors"))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);

        let resp = c
            .get(format!("{base}/api/v1/users?limit=1"))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().unwrap();
        assert_eq!(body[0]["id"], "00ufake1");

        let resp = c
            .get(format!("{base}/api/v1/nothing/here"))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.json::<Value>().unwrap()["errorCode"], "E0000007");
        let resp = c
            .get(format!("{base}/api/v1/users/00u1/lifecycle/suspend"))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 405);
    }

    #[test]
    fn okta_rate_limit_fault_then_normal_answer() {
        let idp = FakeIdp::start();
        let c = client();
        idp.inject(
            "POST",
            "/api/v1/users/",
            Fault::OktaRateLimit { reset_in_secs: 30 },
            1,
        );
        let url = format!("{}/api/v1/users/00u1/lifecycle/suspend", idp.base_url());
        let resp = c
            .post(&url)
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 429);
        let h = |n: &str| resp.headers()[n].to_str().unwrap().to_owned();
        assert_eq!(h("x-rate-limit-limit"), "600");
        assert_eq!(h("x-rate-limit-remaining"), "0");
        let reset: u64 = h("x-rate-limit-reset").parse().unwrap();
        assert!(reset > epoch_secs() + 20, "reset {reset} is in the future");
        let body: Value = resp.json().unwrap();
        assert_eq!(body["errorCode"], "E0000047");
        assert_eq!(
            body["errorSummary"],
            "API call exceeded rate limit due to too many requests."
        );
        // The fault did not suspend anybody; the next call does.
        assert_eq!(idp.okta_user_status("00u1"), "ACTIVE");
        let resp = c
            .post(&url)
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(idp.okta_user_status("00u1"), "SUSPENDED");
        assert_eq!(idp.requests().len(), 2);
    }

    #[test]
    fn status_and_throttle_faults_are_vendor_shaped() {
        let idp = FakeIdp::start();
        let c = client();
        let token = graph_token(&idp, &c);
        let url = format!("{}/users/u1/revokeSignInSessions", idp.graph_url());
        idp.inject(
            "*",
            "/v1.0/users/",
            Fault::GraphThrottle {
                retry_after_secs: 7,
            },
            1,
        );
        idp.inject("POST", "/v1.0/", Fault::Status(503), 2);
        let send = || c.post(&url).bearer_auth(&token).send().unwrap();

        let resp = send();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
        assert_eq!(
            resp.json::<Value>().unwrap()["error"]["code"],
            "TooManyRequests"
        );
        for _ in 0..2 {
            let resp = send();
            assert_eq!(resp.status(), 503);
            let body: Value = resp.json().unwrap();
            assert_eq!(body["error"]["code"], "ServiceUnavailable");
            assert!(body["error"]["innerError"]["request-id"].is_string());
        }
        let resp = send();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.json::<Value>().unwrap()["value"], true);

        idp.inject("POST", "/api/v1/", Fault::Status(500), 1);
        let resp = c
            .post(format!(
                "{}/api/v1/users/00u1/lifecycle/suspend",
                idp.base_url()
            ))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 500);
        assert_eq!(resp.json::<Value>().unwrap()["errorCode"], "E0000009");

        idp.inject("POST", "/fake-tenant/", Fault::Status(503), 1);
        let resp = c.post(idp.token_url()).send().unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(
            resp.json::<Value>().unwrap()["error"],
            "temporarily_unavailable"
        );
    }

    #[test]
    fn drop_connection_is_a_connection_error_not_a_status() {
        let idp = FakeIdp::start();
        let c = client();
        let url = idp.webhook_url("slack");
        // A pooled keep-alive connection first, then the dropped one.
        assert_eq!(c.post(&url).body("one").send().unwrap().status(), 200);
        idp.inject("POST", "/hooks/slack", Fault::DropConnection, 1);
        let err = c.post(&url).body("two").send().unwrap_err();
        assert!(err.status().is_none(), "{err:?}");
        assert!(!err.is_timeout(), "{err:?}");
        // The next request gets an answer again.
        let resp = c.post(&url).body("three").send().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().unwrap(), "ok");
        let bodies: Vec<String> = idp.requests().into_iter().map(|r| r.body).collect();
        assert_eq!(bodies, ["one", "two", "three"]);
    }

    #[test]
    fn drop_connection_sends_no_bytes_at_all() {
        use std::io::{Read, Write};
        let idp = FakeIdp::start();
        idp.inject("*", "/", Fault::DropConnection, 1);
        let mut stream = std::net::TcpStream::connect(idp.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"POST /hooks/raw HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            .unwrap();
        let mut answer = Vec::new();
        // A reset is as good as an orderly close: no response either way.
        let _ = stream.read_to_end(&mut answer);
        assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
        assert_eq!(idp.requests()[0].body, "hi");
    }

    #[test]
    fn delay_answers_late_but_normally() {
        let idp = FakeIdp::start();
        let c = client();
        let url = idp.webhook_url("teams");
        idp.inject(
            "POST",
            "/hooks/",
            Fault::Delay(Duration::from_millis(300)),
            2,
        );
        let started = Instant::now();
        let resp = c.post(&url).body("{}").send().unwrap();
        assert_eq!(resp.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(300));

        // A client that gives up sooner sees a timeout.
        let impatient = Client::builder()
            .timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        let err = impatient.post(&url).body("{}").send().unwrap_err();
        assert!(err.is_timeout(), "{err:?}");

        let started = Instant::now();
        assert_eq!(c.post(&url).send().unwrap().status(), 200);
        assert!(started.elapsed() < Duration::from_millis(300));
        assert_eq!(idp.requests_matching("post", "/hooks/teams").len(), 3);
    }

    #[test]
    fn okta_zone_put_round_trip() {
        let idp = FakeIdp::start();
        let c = client();
        let url = format!("{}/api/v1/zones/{OKTA_BLOCKLIST_ZONE}", idp.base_url());
        let resp = c
            .get(&url)
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut zone: Value = resp.json().unwrap();
        assert_eq!(zone["usage"], "BLOCKLIST");
        assert_eq!(zone["gateways"], json!([]));
        assert!(idp.okta_zone_gateways(OKTA_BLOCKLIST_ZONE).is_empty());

        zone["gateways"] = json!([
            {"type": "CIDR", "value": "203.0.113.9/32"},
            {"type": "RANGE", "value": "198.51.100.1-198.51.100.9"}
        ]);
        let resp = c
            .put(&url)
            .header("authorization", okta_auth())
            .json(&zone)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.json::<Value>().unwrap()["gateways"], zone["gateways"]);
        assert_eq!(
            idp.okta_zone_gateways(OKTA_BLOCKLIST_ZONE),
            ["203.0.113.9/32", "198.51.100.1-198.51.100.9"]
        );
        let resp = c
            .get(&url)
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.json::<Value>().unwrap(), zone);
        let put = &idp.requests_matching("PUT", "/api/v1/zones/")[0];
        assert_eq!(put.json()["gateways"][0]["value"], "203.0.113.9/32");

        zone["gateways"] = json!([{"type": "CIDR", "value": "203.0.113.9"}]);
        let resp = c
            .put(&url)
            .header("authorization", okta_auth())
            .json(&zone)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(idp.okta_zone_gateways(OKTA_BLOCKLIST_ZONE).len(), 2);

        let resp = c
            .get(format!("{}/api/v1/zones/nzounknown", idp.base_url()))
            .header("authorization", okta_auth())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.json::<Value>().unwrap()["errorCode"], "E0000007");
    }

    #[test]
    fn graph_tokens_are_issued_checked_and_expire() {
        let idp = FakeIdp::start();
        let c = client();
        let resp = c
            .post(idp.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", GRAPH_CLIENT_ID),
                ("client_secret", "wrong"),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_codes"], json!([7000215]));
        assert_eq!(idp.tokens_issued(), 0);

        let token = graph_token(&idp, &c);
        assert_eq!(token, "fake-graph-token-1");
        assert_eq!(idp.tokens_issued(), 1);
        let sent = &idp.requests_matching("POST", "/fake-tenant/oauth2/v2.0/token")[1];
        assert_eq!(
            sent.form_param("client_id").as_deref(),
            Some(GRAPH_CLIENT_ID)
        );

        let url = format!("{}/users/u1/revokeSignInSessions", idp.graph_url());
        let resp = c.post(&url).bearer_auth(&token).send().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.json::<Value>().unwrap(),
            json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true})
        );

        for bad in [None, Some("not-a-token")] {
            let mut req = c.post(&url);
            if let Some(bad) = bad {
                req = req.bearer_auth(bad);
            }
            let resp = req.send().unwrap();
            assert_eq!(resp.status(), 401);
            assert!(resp.headers().contains_key("www-authenticate"));
            let body: Value = resp.json().unwrap();
            assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
            assert_eq!(
                body["error"]["message"],
                "Access token has expired or is not yet valid."
            );
        }

        idp.set_graph_token_lifetime(1);
        let resp = c
            .post(idp.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", GRAPH_CLIENT_ID),
                ("client_secret", GRAPH_CLIENT_SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .unwrap();
        let body: Value = resp.json().unwrap();
        assert_eq!(body["expires_in"], 1);
        assert_eq!(body["token_type"], "Bearer");
        let short = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(
            c.post(&url).bearer_auth(&short).send().unwrap().status(),
            200
        );
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            c.post(&url).bearer_auth(&short).send().unwrap().status(),
            401
        );
        // The long-lived token is still good until expired on purpose.
        assert_eq!(
            c.post(&url).bearer_auth(&token).send().unwrap().status(),
            200
        );
        idp.expire_graph_tokens();
        assert_eq!(
            c.post(&url).bearer_auth(&token).send().unwrap().status(),
            401
        );
        assert_eq!(idp.tokens_issued(), 2);
    }

    #[test]
    fn graph_remediations_change_state() {
        let idp = FakeIdp::start();
        let c = client();
        let token = graph_token(&idp, &c);
        let g = idp.graph_url();

        let resp = c
            .patch(format!("{g}/users/u1"))
            .bearer_auth(&token)
            .json(&json!({"accountEnabled": false}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 204);
        assert!(!idp.graph_account_enabled("u1"));
        assert!(idp.graph_account_enabled("u2"));

        let resp = c
            .patch(format!("{g}/users/missing-1"))
            .bearer_auth(&token)
            .json(&json!({"accountEnabled": false}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(
            resp.json::<Value>().unwrap()["error"]["code"],
            "Request_ResourceNotFound"
        );

        let methods = |user: &str| -> Value {
            c.get(format!("{g}/users/{user}/authentication/methods"))
                .bearer_auth(&token)
                .send()
                .unwrap()
                .json()
                .unwrap()
        };
        assert_eq!(methods("u1")["value"].as_array().unwrap().len(), 3);
        let delete = |path: &str| {
            c.delete(format!("{g}/users/u1/authentication/{path}"))
                .bearer_auth(&token)
                .send()
                .unwrap()
        };
        assert_eq!(
            delete("microsoftAuthenticatorMethods/auth-app-1").status(),
            204
        );
        assert_eq!(
            delete("microsoftAuthenticatorMethods/auth-app-1").status(),
            404
        );
        let resp = delete("passwordMethods/28c10230-6103-485e-b985-444c60001490");
        assert_eq!(resp.status(), 400);
        assert_eq!(
            resp.json::<Value>().unwrap()["error"]["code"],
            "invalidRequest"
        );
        assert_eq!(delete("fido2Methods/some-key").status(), 204);
        assert_eq!(delete("bogusMethods/x").status(), 400);
        let listed = methods("u1");
        let ids: Vec<&str> = listed["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "28c10230-6103-485e-b985-444c60001490",
                "3179e48a-750b-4051-897c-87b9720928f7"
            ]
        );
        assert_eq!(methods("u2")["value"].as_array().unwrap().len(), 3);
        assert_eq!(idp.graph_auth_methods("u1").len(), 2);

        let resp = c
            .patch(format!("{g}/identity/conditionalAccess/policies/p1"))
            .bearer_auth(&token)
            .json(&json!({"state": "enabled"}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 204);
        assert_eq!(idp.graph_ca_policy_state("p1").as_deref(), Some("enabled"));

        let member = json!({"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/u1"});
        let add = || {
            c.post(format!("{g}/groups/g1/members/$ref"))
                .bearer_auth(&token)
                .json(&member)
                .send()
                .unwrap()
        };
        assert_eq!(add().status(), 204);
        let resp = add();
        assert_eq!(resp.status(), 400);
        assert_eq!(
            resp.json::<Value>().unwrap()["error"]["message"],
            "One or more added object references already exist for the following modified properties: 'members'."
        );
        assert_eq!(idp.graph_group_members("g1"), ["u1"]);

        let resp = c
            .get(format!("{g}/users?$top=1&$select=id"))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(
            resp.json::<Value>().unwrap()["value"],
            json!([{"id": "fake-user"}])
        );
    }

    #[test]
    fn graph_named_location_round_trip() {
        let idp = FakeIdp::start();
        let c = client();
        let token = graph_token(&idp, &c);
        let url = format!(
            "{}/identity/conditionalAccess/namedLocations/{GRAPH_NAMED_LOCATION}",
            idp.graph_url()
        );
        let loc: Value = c
            .get(&url)
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(loc["@odata.type"], "#microsoft.graph.ipNamedLocation");
        assert_eq!(loc["ipRanges"], json!([]));

        let ranges = json!([
            {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.9/32"},
            {"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "2001:db8::1/128"}
        ]);
        let resp = c
            .patch(&url)
            .bearer_auth(&token)
            .json(&json!({"@odata.type": "#microsoft.graph.ipNamedLocation", "ipRanges": ranges}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 204);
        assert_eq!(
            idp.graph_named_location_ranges(GRAPH_NAMED_LOCATION),
            ["203.0.113.9/32", "2001:db8::1/128"]
        );
        let loc: Value = c
            .get(&url)
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(loc["ipRanges"], ranges);

        // Without @odata.type Graph refuses the update.
        let resp = c
            .patch(&url)
            .bearer_auth(&token)
            .json(&json!({"ipRanges": []}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(
            idp.graph_named_location_ranges(GRAPH_NAMED_LOCATION).len(),
            2
        );
    }

    fn link(resp: &reqwest::blocking::Response, rel: &str) -> Option<String> {
        resp.headers().get_all("link").iter().find_map(|v| {
            let v = v.to_str().unwrap();
            v.ends_with(&format!("rel=\"{rel}\""))
                .then(|| v[v.find('<').unwrap() + 1..v.find('>').unwrap()].to_owned())
        })
    }

    #[test]
    fn okta_logs_page_with_a_next_link() {
        let idp = FakeIdp::start();
        let c = client();
        let event = |i: u32| {
            json!({
                "uuid": format!("uuid-{i}"),
                "published": format!("2026-03-01T10:00:0{i}.000Z"),
                "eventType": "user.session.start"
            })
        };
        idp.push_okta_logs((0..5).map(event).collect());
        let get = |url: &str| {
            c.get(url)
                .header("authorization", okta_auth())
                .send()
                .unwrap()
        };
        let uuids = |resp: reqwest::blocking::Response| -> Vec<String> {
            let body: Value = resp.json().unwrap();
            body.as_array()
                .unwrap()
                .iter()
                .map(|e| e["uuid"].as_str().unwrap().to_owned())
                .collect()
        };

        let first = format!(
            "{}/api/v1/logs?since=2026-03-01T10%3A00%3A01.000Z&limit=2&sortOrder=ASCENDING",
            idp.base_url()
        );
        let resp = get(&first);
        assert_eq!(resp.status(), 200);
        assert_eq!(link(&resp, "self").unwrap(), first);
        let next = link(&resp, "next").unwrap();
        assert!(next.contains("after=uuid-2"), "{next}");
        assert!(next.contains("limit=2"), "{next}");
        assert_eq!(uuids(resp), ["uuid-1", "uuid-2"]);

        let resp = get(&next);
        let next = link(&resp, "next").unwrap();
        assert_eq!(uuids(resp), ["uuid-3", "uuid-4"]);
        let resp = get(&next);
        let next = link(&resp, "next").expect("the next link is always there");
        assert!(next.contains("after=uuid-4"), "{next}");
        assert!(uuids(resp).is_empty());

        // New events show up on the next poll.
        idp.push_okta_logs(vec![event(5)]);
        let resp = get(&next);
        assert_eq!(uuids(resp), ["uuid-5"]);

        // Default limit, no since: everything.
        let resp = get(&format!("{}/api/v1/logs", idp.base_url()));
        assert_eq!(uuids(resp).len(), 6);
        let polls = idp.requests_matching("GET", "/api/v1/logs");
        assert_eq!(polls[1].query_param("after").as_deref(), Some("uuid-2"));
    }

    #[test]
    fn webhooks_unknown_routes_and_request_bookkeeping() {
        let idp = FakeIdp::start();
        let c = client();
        let resp = c
            .post(idp.webhook_url("siem"))
            .header("x-signature", "abc")
            .json(&json!({"action": "suspend"}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().unwrap(), "ok");
        let hook = &idp.requests()[0];
        assert_eq!(hook.method, "POST");
        assert_eq!(hook.path, "/hooks/siem");
        assert_eq!(hook.header("X-Signature"), Some("abc"));
        assert_eq!(hook.header("content-type"), Some("application/json"));
        assert_eq!(hook.json(), json!({"action": "suspend"}));

        let resp = c.get(format!("{}/nowhere", idp.base_url())).send().unwrap();
        assert_eq!(resp.status(), 404);
        assert!(resp.json::<Value>().is_ok());

        assert_eq!(idp.requests().len(), 2);
        assert_eq!(idp.requests_matching("*", "/hooks/").len(), 1);
        idp.clear_requests();
        assert!(idp.requests().is_empty());
    }

    #[test]
    #[should_panic(expected = "request body is not JSON")]
    fn recorded_json_panics_with_the_body() {
        let r = Recorded {
            method: "POST".into(),
            path: "/".into(),
            query: None,
            headers: Vec::new(),
            body: "not json".into(),
            at: Instant::now(),
        };
        let _ = r.json();
    }

    // --- MFA configuration ---

    fn okta_mfa_policy(id: &str, status: &str) -> Value {
        json!({
            "id": id,
            "status": status,
            "name": format!("MFA enrollment {id}"),
            "type": "MFA_ENROLL",
            "priority": 1,
            "system": false,
            "conditions": {"people": {"groups": {"include": ["00gall"]}}},
            "settings": {
                "type": "AUTHENTICATORS",
                "authenticators": [{"key": "okta_verify", "enroll": {"self": "REQUIRED"}}]
            },
            "created": "2023-01-01T00:00:00.000Z",
            "lastUpdated": "2023-01-01T00:00:00.000Z"
        })
    }

    fn okta_rule(id: &str, priority: u32) -> Value {
        json!({
            "id": id,
            "status": "ACTIVE",
            "name": format!("Rule {id}"),
            "priority": priority,
            "system": false,
            "type": "MFA_ENROLL",
            "conditions": {"people": {"users": {"exclude": []}}},
            "actions": {"enroll": {"self": "CHALLENGE"}}
        })
    }

    #[test]
    fn okta_policies_are_listed_by_type_read_and_replaced() {
        let idp = FakeIdp::start();
        let c = client();
        let base = idp.base_url();
        idp.set_okta_policy(okta_mfa_policy("00pmfa1", "ACTIVE"));
        idp.set_okta_policy(json!({
            "id": "00psignon", "status": "ACTIVE", "name": "Default", "type": "OKTA_SIGN_ON",
            "priority": 1, "system": true, "conditions": null, "settings": {}
        }));
        idp.set_okta_policy(okta_mfa_policy("00pmfa2", "INACTIVE"));
        // Replacing keeps the place in listings.
        let mut renamed = okta_mfa_policy("00pmfa1", "ACTIVE");
        renamed["name"] = json!("First");
        idp.set_okta_policy(renamed);
        let get = |url: String| {
            c.get(url)
                .header("authorization", okta_auth())
                .send()
                .unwrap()
        };

        let resp = get(format!("{base}/api/v1/policies?type=MFA_ENROLL"));
        assert_eq!(resp.status(), 200);
        let list: Value = resp.json().unwrap();
        let ids: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["00pmfa1", "00pmfa2"]);
        assert_eq!(list[0]["name"], "First");
        assert_eq!(
            list[0]["_links"]["self"]["href"],
            format!("{base}/api/v1/policies/00pmfa1")
        );
        assert_eq!(
            list[0]["_links"]["deactivate"]["href"],
            format!("{base}/api/v1/policies/00pmfa1/lifecycle/deactivate")
        );
        assert_eq!(
            list[1]["_links"]["activate"]["href"],
            format!("{base}/api/v1/policies/00pmfa2/lifecycle/activate")
        );
        let active: Value = get(format!(
            "{base}/api/v1/policies?type=MFA_ENROLL&status=ACTIVE"
        ))
        .json()
        .unwrap();
        assert_eq!(active.as_array().unwrap().len(), 1);
        let none: Value = get(format!("{base}/api/v1/policies?type=PASSWORD"))
            .json()
            .unwrap();
        assert_eq!(none, json!([]));

        let resp = get(format!("{base}/api/v1/policies"));
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().unwrap();
        assert_eq!(body["errorCode"], "E0000001");
        assert_eq!(body["errorSummary"], "Api validation failed: type");

        let resp = get(format!("{base}/api/v1/policies/00psignon"));
        assert_eq!(resp.status(), 200);
        let policy: Value = resp.json().unwrap();
        assert_eq!(policy["system"], true);
        assert!(policy["created"].is_string() && policy["lastUpdated"].is_string());
        assert_eq!(Some(policy), idp.okta_policy("00psignon"));
        let resp = get(format!("{base}/api/v1/policies/00pnope"));
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.json::<Value>().unwrap()["errorCode"], "E0000007");
        assert_eq!(idp.okta_policy("00pnope"), None);

        // PUT: id forced to the path's, status kept, lastUpdated refreshed.
        let mut sent = okta_mfa_policy("00pother", "INACTIVE");
        sent["name"] = json!("Restored");
        sent["settings"]["authenticators"][0]["enroll"]["self"] = json!("OPTIONAL");
        sent.as_object_mut().unwrap().remove("created");
        sent.as_object_mut().unwrap().remove("lastUpdated");
        let put = |path: &str, body: &Value| {
            c.put(format!("{base}{path}"))
                .header("authorization", okta_auth())
                .json(body)
                .send()
                .unwrap()
        };
        let resp = put("/api/v1/policies/00pmfa1", &sent);
        assert_eq!(resp.status(), 200);
        let stored: Value = resp.json().unwrap();
        assert_eq!(stored["id"], "00pmfa1");
        assert_eq!(stored["status"], "ACTIVE");
        assert_eq!(stored["name"], "Restored");
        assert_eq!(
            stored["settings"]["authenticators"][0]["enroll"]["self"],
            "OPTIONAL"
        );
        assert_eq!(stored["created"], "2023-01-01T00:00:00.000Z");
        assert_ne!(stored["lastUpdated"], "2023-01-01T00:00:00.000Z");
        assert!(stored["_links"]["self"].is_object());
        assert_eq!(Some(stored), idp.okta_policy("00pmfa1"));
        assert_eq!(idp.okta_policy_status("00pmfa1").as_deref(), Some("ACTIVE"));
        let recorded = idp.requests_matching("PUT", "/api/v1/policies/00pmfa1");
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].json(), sent);

        // The type cannot change; bodies must be JSON objects.
        let mut retyped = sent.clone();
        retyped["type"] = json!("OKTA_SIGN_ON");
        let resp = put("/api/v1/policies/00pmfa1", &retyped);
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.json::<Value>().unwrap()["errorCode"], "E0000001");
        assert_eq!(idp.okta_policy("00pmfa1").unwrap()["type"], "MFA_ENROLL");
        let resp = put("/api/v1/policies/00pmfa1", &json!([1]));
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.json::<Value>().unwrap()["errorCode"], "E0000001");
        let resp = c
            .put(format!("{base}/api/v1/policies/00pmfa1"))
            .header("authorization", okta_auth())
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.json::<Value>().unwrap()["errorCode"], "E0000003");
        assert_eq!(put("/api/v1/policies/00pnope", &sent).status(), 404);

        // Other methods on the new paths: 405.
        for resp in [
            c.delete(format!("{base}/api/v1/policies/00pmfa1"))
                .header("authorization", okta_auth())
                .send()
                .unwrap(),
            c.post(format!("{base}/api/v1/policies"))
                .header("authorization", okta_auth())
                .json(&sent)
                .send()
                .unwrap(),
        ] {
            assert_eq!(resp.status(), 405);
            assert_eq!(resp.json::<Value>().unwrap()["errorCode"], "E0000022");
        }
    }

    #[test]
    fn okta_policy_lifecycle_updates_stored_policies_and_keeps_the_old_behaviour() {
        let idp = FakeIdp::start();
        let c = client();
        let base = idp.base_url();
        idp.set_okta_policy(okta_mfa_policy("00pmfa1", "ACTIVE"));
        let post = |path: &str| {
            c.post(format!("{base}{path}"))
                .header("authorization", okta_auth())
                .send()
                .unwrap()
        };
        let resp = post("/api/v1/policies/00pmfa1/lifecycle/deactivate");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.json::<Value>().unwrap(), json!({}));
        assert_eq!(
            idp.okta_policy_status("00pmfa1").as_deref(),
            Some("INACTIVE")
        );
        let policy = idp.okta_policy("00pmfa1").unwrap();
        assert_eq!(policy["status"], "INACTIVE");
        assert_ne!(policy["lastUpdated"], "2023-01-01T00:00:00.000Z");
        assert!(policy["_links"]["activate"].is_object());
        assert!(policy["_links"].get("deactivate").is_none());

        // Ids that are not stored: any id but `missing…`, status recorded.
        assert_eq!(
            post("/api/v1/policies/00pany/lifecycle/activate").status(),
            200
        );
        assert_eq!(idp.okta_policy_status("00pany").as_deref(), Some("ACTIVE"));
        assert_eq!(idp.okta_policy("00pany"), None);
        assert_eq!(
            post("/api/v1/policies/missing-1/lifecycle/activate").status(),
            404
        );
        assert_eq!(idp.okta_policy_status("missing-1"), None);
        assert_eq!(
            post("/api/v1/policies/00pany/lifecycle/bogus").status(),
            405
        );
    }

    #[test]
    fn okta_policy_rules_are_read_replaced_and_activated() {
        let idp = FakeIdp::start();
        let c = client();
        let base = idp.base_url();
        idp.set_okta_policy(okta_mfa_policy("00pmfa1", "ACTIVE"));
        idp.set_okta_policy(okta_mfa_policy("00pmfa2", "ACTIVE"));
        idp.set_okta_policy_rules("00pmfa1", vec![okta_rule("0prA", 1), okta_rule("0prB", 2)]);
        let get = |path: &str| {
            c.get(format!("{base}{path}"))
                .header("authorization", okta_auth())
                .send()
                .unwrap()
        };

        let rules: Value = get("/api/v1/policies/00pmfa1/rules").json().unwrap();
        let ids: Vec<&str> = rules
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["0prA", "0prB"]);
        assert_eq!(
            rules[1]["_links"]["self"]["href"],
            format!("{base}/api/v1/policies/00pmfa1/rules/0prB")
        );
        assert!(rules[0]["created"].is_string());
        let none: Value = get("/api/v1/policies/00pmfa2/rules").json().unwrap();
        assert_eq!(none, json!([]));
        assert_eq!(get("/api/v1/policies/00pnope/rules").status(), 404);

        let resp = get("/api/v1/policies/00pmfa1/rules/0prB");
        assert_eq!(resp.status(), 200);
        let rule: Value = resp.json().unwrap();
        assert_eq!(rule["priority"], 2);
        assert_eq!(Some(rule), idp.okta_policy_rule("00pmfa1", "0prB"));
        let resp = get("/api/v1/policies/00pmfa1/rules/0prZ");
        assert_eq!(resp.status(), 404);
        assert_eq!(
            resp.json::<Value>().unwrap()["errorSummary"],
            "Not found: Resource not found: 0prZ (PolicyRule)"
        );
        assert_eq!(get("/api/v1/policies/00pnope/rules/0prA").status(), 404);

        let mut sent = okta_rule("0prX", 5);
        sent["status"] = json!("INACTIVE");
        sent["actions"]["enroll"]["self"] = json!("LOGIN");
        let put = |path: &str, body: &Value| {
            c.put(format!("{base}{path}"))
                .header("authorization", okta_auth())
                .json(body)
                .send()
                .unwrap()
        };
        let resp = put("/api/v1/policies/00pmfa1/rules/0prA", &sent);
        assert_eq!(resp.status(), 200);
        let stored: Value = resp.json().unwrap();
        assert_eq!(stored["id"], "0prA");
        assert_eq!(stored["status"], "ACTIVE");
        assert_eq!(stored["priority"], 5);
        assert_eq!(stored["actions"]["enroll"]["self"], "LOGIN");
        assert_eq!(Some(stored), idp.okta_policy_rule("00pmfa1", "0prA"));
        assert_eq!(
            idp.requests_matching("PUT", "/api/v1/policies/00pmfa1/rules/0prA")[0].json(),
            sent
        );
        let mut retyped = sent.clone();
        retyped["type"] = json!("SIGN_ON");
        assert_eq!(
            put("/api/v1/policies/00pmfa1/rules/0prA", &retyped).status(),
            400
        );
        assert_eq!(
            put("/api/v1/policies/00pmfa1/rules/0prZ", &sent).status(),
            404
        );
        assert_eq!(
            put("/api/v1/policies/00pnope/rules/0prA", &sent).status(),
            404
        );

        let post = |path: &str| {
            c.post(format!("{base}{path}"))
                .header("authorization", okta_auth())
                .send()
                .unwrap()
        };
        let resp = post("/api/v1/policies/00pmfa1/rules/0prB/lifecycle/deactivate");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.json::<Value>().unwrap(), json!({}));
        let rule = idp.okta_policy_rule("00pmfa1", "0prB").unwrap();
        assert_eq!(rule["status"], "INACTIVE");
        assert!(rule["_links"]["activate"].is_object());
        assert_eq!(
            post("/api/v1/policies/00pmfa1/rules/0prB/lifecycle/activate").status(),
            200
        );
        assert_eq!(
            idp.okta_policy_rule("00pmfa1", "0prB").unwrap()["status"],
            "ACTIVE"
        );
        assert_eq!(
            post("/api/v1/policies/00pmfa1/rules/0prZ/lifecycle/activate").status(),
            404
        );
        assert_eq!(
            post("/api/v1/policies/00pnope/rules/0prA/lifecycle/activate").status(),
            404
        );
        assert_eq!(
            get("/api/v1/policies/00pmfa1/rules/0prB/lifecycle/activate").status(),
            405
        );
        assert_eq!(
            c.delete(format!("{base}/api/v1/policies/00pmfa1/rules/0prB"))
                .header("authorization", okta_auth())
                .send()
                .unwrap()
                .status(),
            405
        );
    }

    #[test]
    fn okta_authenticators_apps_and_access_policy_assignment() {
        let idp = FakeIdp::start();
        let c = client();
        let base = idp.base_url();
        idp.set_okta_authenticators(vec![
            json!({"id": "aut1", "key": "okta_verify", "status": "ACTIVE", "type": "app", "name": "Okta Verify"}),
            json!({"id": "aut2", "key": "phone_number", "status": "INACTIVE", "type": "phone", "name": "Phone"}),
        ]);
        idp.set_okta_policy(json!({
            "id": "rst1", "status": "ACTIVE", "name": "Admin apps", "type": "ACCESS_POLICY",
            "priority": 1, "system": false
        }));
        idp.set_okta_policy(json!({
            "id": "rst2", "status": "ACTIVE", "name": "Strict", "type": "ACCESS_POLICY",
            "priority": 2, "system": false
        }));
        idp.set_okta_policy(okta_mfa_policy("00pmfa1", "ACTIVE"));
        idp.set_okta_app(
            json!({"id": "0oa1", "label": "Admin Console", "name": "saasure", "status": "ACTIVE"}),
            Some("rst1"),
        );
        idp.set_okta_app(
            json!({"id": "0oa2", "label": "Wiki", "name": "wiki_app", "status": "ACTIVE"}),
            None,
        );
        let get = |path: &str| {
            c.get(format!("{base}{path}"))
                .header("authorization", okta_auth())
                .send()
                .unwrap()
        };
        let put = |path: &str| {
            c.put(format!("{base}{path}"))
                .header("authorization", okta_auth())
                .send()
                .unwrap()
        };

        let list: Value = get("/api/v1/authenticators").json().unwrap();
        assert_eq!(list.as_array().unwrap().len(), 2);
        assert_eq!(list[0]["key"], "okta_verify");
        assert_eq!(
            list[1]["_links"]["self"]["href"],
            format!("{base}/api/v1/authenticators/aut2")
        );
        let one: Value = get("/api/v1/authenticators/aut2").json().unwrap();
        assert_eq!(one["key"], "phone_number");
        assert_eq!(get("/api/v1/authenticators/autX").status(), 404);

        let app: Value = get("/api/v1/apps/0oa1").json().unwrap();
        assert_eq!(app["label"], "Admin Console");
        assert_eq!(
            app["_links"]["accessPolicy"]["href"],
            format!("{base}/api/v1/policies/rst1")
        );
        let app: Value = get("/api/v1/apps/0oa2").json().unwrap();
        assert!(app["_links"].get("accessPolicy").is_none());
        assert_eq!(idp.okta_app_policy("0oa2"), None);
        let resp = get("/api/v1/apps/0oaX");
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.json::<Value>().unwrap()["errorCode"], "E0000007");

        let resp = put("/api/v1/apps/0oa2/policies/rst2");
        assert_eq!(resp.status(), 204);
        assert_eq!(idp.okta_app_policy("0oa2").as_deref(), Some("rst2"));
        let app: Value = get("/api/v1/apps/0oa2").json().unwrap();
        assert_eq!(
            app["_links"]["accessPolicy"]["href"],
            format!("{base}/api/v1/policies/rst2")
        );
        assert_eq!(
            idp.requests_matching("PUT", "/api/v1/apps/0oa2/policies/rst2")
                .len(),
            1
        );

        let resp = put("/api/v1/apps/0oa1/policies/00pmfa1");
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.json::<Value>().unwrap()["errorCode"], "E0000001");
        assert_eq!(idp.okta_app_policy("0oa1").as_deref(), Some("rst1"));
        assert_eq!(put("/api/v1/apps/0oa1/policies/rstX").status(), 404);
        assert_eq!(put("/api/v1/apps/0oaX/policies/rst1").status(), 404);
        assert_eq!(get("/api/v1/apps/0oa1/policies/rst1").status(), 405);
        assert_eq!(
            c.delete(format!("{base}/api/v1/apps/0oa1"))
                .header("authorization", okta_auth())
                .send()
                .unwrap()
                .status(),
            405
        );

        // Credentials and faults apply to the new routes like to the old.
        let resp = c
            .get(format!("{base}/api/v1/policies?type=ACCESS_POLICY"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 401);
        idp.inject("GET", "/api/v1/policies", Fault::Status(503), 1);
        let resp = get("/api/v1/policies?type=ACCESS_POLICY");
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.json::<Value>().unwrap()["errorCode"], "E0000010");
        let listed: Value = get("/api/v1/policies?type=ACCESS_POLICY").json().unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 2);
    }

    #[test]
    #[should_panic(expected = "set_okta_policy: the policy needs a string \"id\"")]
    fn setting_a_policy_without_an_id_panics() {
        FakeIdp::start().set_okta_policy(json!({"name": "no id"}));
    }

    fn graph_ca(id: &str, state: &str) -> Value {
        json!({
            "id": id,
            "displayName": format!("Require MFA {id}"),
            "state": state,
            "createdDateTime": "2023-01-01T00:00:00.0000000Z",
            "modifiedDateTime": null,
            "conditions": {
                "users": {
                    "includeUsers": ["All"], "excludeUsers": [],
                    "includeGroups": [], "excludeGroups": ["grp-breakglass"],
                    "includeRoles": [], "excludeRoles": []
                },
                "applications": {"includeApplications": ["All"], "excludeApplications": []},
                "clientAppTypes": ["all"],
                "locations": null,
                "platforms": null,
                "signInRiskLevels": []
            },
            "grantControls": {
                "operator": "OR",
                "builtInControls": ["mfa"],
                "authenticationStrength": null
            },
            "sessionControls": null
        })
    }

    #[test]
    fn graph_ca_policies_are_listed_read_and_patched() {
        let idp = FakeIdp::start();
        let c = client();
        let token = graph_token(&idp, &c);
        let g = idp.graph_url();
        idp.set_graph_ca_policy(graph_ca("ca-1", "enabled"));
        idp.set_graph_ca_policy(graph_ca("ca-2", "enabledForReportingButNotEnforced"));
        let url = |id: &str| format!("{g}/identity/conditionalAccess/policies/{id}");

        let resp = c
            .get(format!("{g}/identity/conditionalAccess/policies"))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().unwrap();
        assert_eq!(
            body["@odata.context"],
            "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/policies"
        );
        assert_eq!(body["value"][0], graph_ca("ca-1", "enabled"));
        assert_eq!(body["value"][1]["id"], "ca-2");

        let policy: Value = c
            .get(url("ca-2"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(
            policy["@odata.context"]
                .as_str()
                .unwrap()
                .ends_with("/policies/$entity")
        );
        assert_eq!(policy["state"], "enabledForReportingButNotEnforced");
        let resp = c.get(url("ca-9")).bearer_auth(&token).send().unwrap();
        assert_eq!(resp.status(), 404);
        assert!(resp.json::<Value>().unwrap()["error"]["code"].is_string());

        // PATCH a stored policy: top-level properties replaced, others kept.
        let patch = json!({
            "state": "disabled",
            "conditions": {"users": {"includeUsers": ["None"]}, "applications": {"includeApplications": ["All"]}, "clientAppTypes": ["all"]},
            "id": "ignored"
        });
        let resp = c
            .patch(url("ca-1"))
            .bearer_auth(&token)
            .json(&patch)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 204);
        let stored = idp.graph_ca_policy("ca-1").unwrap();
        assert_eq!(stored["id"], "ca-1");
        assert_eq!(stored["state"], "disabled");
        assert_eq!(stored["conditions"], patch["conditions"]);
        assert_eq!(stored["displayName"], "Require MFA ca-1");
        assert_eq!(stored["grantControls"]["builtInControls"], json!(["mfa"]));
        assert_eq!(stored["createdDateTime"], "2023-01-01T00:00:00.0000000Z");
        assert!(stored["modifiedDateTime"].is_string());
        assert_eq!(
            idp.graph_ca_policy_state("ca-1").as_deref(),
            Some("disabled")
        );
        assert_eq!(
            idp.requests_matching("PATCH", "/v1.0/identity/conditionalAccess/policies/ca-1")[0]
                .json(),
            patch
        );
        let resp = c
            .patch(url("ca-1"))
            .bearer_auth(&token)
            .json(&json!({"state": "on"}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(
            idp.graph_ca_policy_state("ca-1").as_deref(),
            Some("disabled")
        );

        // Ids that are not stored keep the old behaviour.
        let resp = c
            .patch(url("p9"))
            .bearer_auth(&token)
            .json(&json!({"state": "enabled"}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 204);
        assert_eq!(idp.graph_ca_policy_state("p9").as_deref(), Some("enabled"));
        assert_eq!(idp.graph_ca_policy("p9"), None);
        let resp = c
            .patch(url("missing-1"))
            .bearer_auth(&token)
            .json(&json!({"state": "enabled"}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 404);

        let resp = c
            .post(format!("{g}/identity/conditionalAccess/policies"))
            .bearer_auth(&token)
            .json(&graph_ca("ca-3", "enabled"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 405);
        let resp = c
            .get(format!("{g}/identity/conditionalAccess/policies"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 401);
        idp.inject(
            "GET",
            "/v1.0/identity/conditionalAccess/policies",
            Fault::GraphThrottle {
                retry_after_secs: 2,
            },
            1,
        );
        let resp = c.get(url("ca-1")).bearer_auth(&token).send().unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "2");
    }

    #[test]
    fn graph_auth_methods_policy_default_patch_and_set() {
        let idp = FakeIdp::start();
        let c = client();
        let token = graph_token(&idp, &c);
        let url = format!("{}/policies/authenticationMethodsPolicy", idp.graph_url());

        let resp = c.get(&url).bearer_auth(&token).send().unwrap();
        assert_eq!(resp.status(), 200);
        let policy: Value = resp.json().unwrap();
        assert_eq!(policy["id"], "authenticationMethodsPolicy");
        assert!(policy["@odata.context"].is_string());
        let states: Vec<(String, String, String)> = policy["authenticationMethodConfigurations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_owned(),
                    m["state"].as_str().unwrap().to_owned(),
                    m["@odata.type"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for (id, state, kind) in [
            (
                "MicrosoftAuthenticator",
                "enabled",
                "#microsoft.graph.microsoftAuthenticatorAuthenticationMethodConfiguration",
            ),
            (
                "Fido2",
                "enabled",
                "#microsoft.graph.fido2AuthenticationMethodConfiguration",
            ),
            (
                "Sms",
                "disabled",
                "#microsoft.graph.smsAuthenticationMethodConfiguration",
            ),
            (
                "Voice",
                "disabled",
                "#microsoft.graph.voiceAuthenticationMethodConfiguration",
            ),
            (
                "Email",
                "disabled",
                "#microsoft.graph.emailAuthenticationMethodConfiguration",
            ),
            (
                "SoftwareOath",
                "enabled",
                "#microsoft.graph.softwareOathAuthenticationMethodConfiguration",
            ),
        ] {
            assert!(
                states.contains(&(id.to_owned(), state.to_owned(), kind.to_owned())),
                "{id} {state} {kind} in {states:?}"
            );
        }

        let patch = json!({
            "registrationEnforcement": {"authenticationMethodsRegistrationCampaign": {"state": "disabled"}},
            "authenticationMethodConfigurations": [
                {"@odata.type": "#microsoft.graph.smsAuthenticationMethodConfiguration", "id": "Sms", "state": "enabled"}
            ]
        });
        let resp = c
            .patch(&url)
            .bearer_auth(&token)
            .json(&patch)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 204);
        let now = idp.graph_auth_methods_policy();
        assert_eq!(
            now["registrationEnforcement"],
            patch["registrationEnforcement"]
        );
        assert_eq!(
            now["authenticationMethodConfigurations"],
            patch["authenticationMethodConfigurations"]
        );
        assert_eq!(now["displayName"], "Authentication Methods Policy");
        assert_ne!(now["lastModifiedDateTime"], policy["lastModifiedDateTime"]);
        let served: Value = c
            .get(&url)
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(served["authenticationMethodConfigurations"][0]["id"], "Sms");
        let resp = c.patch(&url).bearer_auth(&token).body("[]").send().unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(
            c.delete(&url).bearer_auth(&token).send().unwrap().status(),
            405
        );

        idp.set_graph_auth_methods_policy(
            json!({"id": "authenticationMethodsPolicy", "displayName": "Custom"}),
        );
        let served: Value = c
            .get(&url)
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(served["displayName"], "Custom");
        assert!(served.get("authenticationMethodConfigurations").is_none());
    }

    #[test]
    fn dropping_stops_the_server() {
        let idp = FakeIdp::start();
        let c = client();
        let url = idp.webhook_url("x");
        assert_eq!(c.post(&url).send().unwrap().status(), 200);
        drop(idp);
        let fresh = client();
        assert!(fresh.post(&url).send().is_err());
    }
}
