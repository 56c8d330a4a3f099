//! The Microsoft Graph connector against the fake Entra ID token endpoint
//! and Graph v1.0: exact requests, resulting state, token caching and
//! refresh, throttling, errors, and refusals made before anything is sent.

use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;
use vigil_host::actions::connector::{ActionContext, Connector, ConnectorError, Undo};
use vigil_host::actions::graph::GraphConnector;
use vigil_host::config::connectors::{GraphConfig, HttpConfig};
use vigil_host::model::{
    Action, ActionKind, BlockIp, GroupMembership, Message, Severity, SuspendUser,
};
use vigil_test_support::fake_idp::{
    FakeIdp, Fault, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET, GRAPH_NAMED_LOCATION, Recorded,
};

const CTX: ActionContext<'static> = ActionContext {
    action_id: "act-1",
    rule: "test-rule",
    event_id: "evt-1",
    event_source: "entra",
};

const TOKEN_PATH: &str = "/fake-tenant/oauth2/v2.0/token";
const PASSWORD_METHOD: &str = "28c10230-6103-485e-b985-444c60001490";
const PHONE_METHOD: &str = "3179e48a-750b-4051-897c-87b9720928f7";

/// A connector wired to a fake IdP, and the temporary directory holding
/// its client secret.
struct Graph {
    idp: FakeIdp,
    conn: GraphConnector,
    _dir: TempDir,
}

fn http() -> HttpConfig {
    HttpConfig {
        timeout_ms: 1000,
        backoff_initial_ms: 20,
        backoff_max_ms: 100,
        ..HttpConfig::default()
    }
}

/// `[connectors.graph]` as an operator writes it (defaults included).
fn config(idp: &FakeIdp, dir: &TempDir, secret: &str, extra: &str) -> GraphConfig {
    let secret_file = dir.path().join("graph-secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let text = format!(
        "base_url = {:?}\ntoken_url = {:?}\nclient_id = {:?}\nclient_secret_file = {:?}\n{extra}",
        idp.graph_url(),
        idp.token_url(),
        GRAPH_CLIENT_ID,
        secret_file.display().to_string(),
    );
    toml::from_str(&text).unwrap()
}

fn graph_with(secret: &str, extra: &str) -> Graph {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let conn = GraphConnector::new(&config(&idp, &dir, secret, extra), &http()).unwrap();
    Graph {
        idp,
        conn,
        _dir: dir,
    }
}

fn graph() -> Graph {
    graph_with(
        GRAPH_CLIENT_SECRET,
        &format!("blocked_named_location = {GRAPH_NAMED_LOCATION:?}"),
    )
}

impl Graph {
    fn run(
        &mut self,
        action: Action,
    ) -> Result<vigil_host::actions::connector::Executed, ConnectorError> {
        self.conn.execute(&action, &CTX)
    }

    /// Every Graph API request (token requests excluded).
    fn api(&self) -> Vec<Recorded> {
        self.idp.requests_matching("*", "/v1.0/")
    }

    fn token_requests(&self) -> Vec<Recorded> {
        self.idp.requests_matching("*", TOKEN_PATH)
    }
}

fn suspend(user: &str, duration_secs: Option<u64>) -> Action {
    Action::SuspendUser(SuspendUser {
        user: user.into(),
        duration_secs,
    })
}

fn block(ip: &str, duration_secs: Option<u64>) -> Action {
    Action::BlockIp(BlockIp {
        ip: ip.into(),
        duration_secs,
    })
}

fn add(user: &str, group: &str) -> Action {
    Action::AddToGroup(GroupMembership {
        user: user.into(),
        group: group.into(),
    })
}

/// Asserts one API request: method, path, bearer token, and JSON body
/// (`None`: no body at all).
#[track_caller]
fn assert_call(
    r: &Recorded,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) {
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        (method, path),
        "{r:?}"
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {token}").as_str()),
        "{method} {path}"
    );
    match body {
        Some(body) => {
            assert_eq!(
                r.header("content-type"),
                Some("application/json"),
                "{method} {path}"
            );
            assert_eq!(r.json(), body, "{method} {path}");
        }
        None => {
            assert_eq!(r.body, "", "{method} {path} has no body");
            assert_eq!(r.header("content-type"), None, "{method} {path}");
        }
    }
}

#[test]
fn token_request_is_form_encoded_client_credentials_and_reused() {
    let mut g = graph();
    g.run(suspend("u1", None)).unwrap();
    g.run(Action::RevokeSessions("u2".into())).unwrap();
    g.run(Action::ActivatePolicy("pol-1".into())).unwrap();

    let tokens = g.token_requests();
    assert_eq!(tokens.len(), 1, "one token for every action");
    assert_eq!(g.idp.tokens_issued(), 1);
    let t = &tokens[0];
    assert_eq!(t.method, "POST");
    assert_eq!(
        t.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        t.body,
        "grant_type=client_credentials&client_id=fake-client-id&client_secret=fake-client-secret\
         &scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
    );
    assert_eq!(
        t.header("authorization"),
        None,
        "credentials go in the form only"
    );
    let api = g.api();
    assert_eq!(api.len(), 3);
    for r in &api {
        assert_eq!(r.header("authorization"), Some("Bearer fake-graph-token-1"));
        assert!(r.at >= t.at);
    }
}

#[test]
fn suspend_disables_the_account_and_its_undo_re_enables_it() {
    let mut g = graph();
    let done = g.run(suspend("u1", Some(3600))).unwrap();
    assert_eq!(done.undo, Some(Undo::Unsuspend { user: "u1".into() }));
    assert_eq!(
        done.detail,
        "graph: disabled account u1 (PATCH /users/u1 → 204)"
    );
    assert!(!g.idp.graph_account_enabled("u1"));
    let api = g.api();
    assert_eq!(api.len(), 1);
    assert_call(
        &api[0],
        "PATCH",
        "/v1.0/users/u1",
        "fake-graph-token-1",
        Some(json!({"accountEnabled": false})),
    );

    g.idp.clear_requests();
    let detail = g.conn.undo(&done.undo.unwrap()).unwrap();
    assert_eq!(
        detail,
        "graph: re-enabled account u1 (PATCH /users/u1 → 204)"
    );
    assert!(g.idp.graph_account_enabled("u1"));
    let api = g.api();
    assert_eq!(api.len(), 1);
    assert_call(
        &api[0],
        "PATCH",
        "/v1.0/users/u1",
        "fake-graph-token-1",
        Some(json!({"accountEnabled": true})),
    );
    assert!(
        g.token_requests().is_empty(),
        "the cached token served the undo"
    );

    // Without a duration there is nothing to undo.
    assert_eq!(g.run(suspend("u2", None)).unwrap().undo, None);
}

#[test]
fn revoke_sessions_posts_without_a_body() {
    let mut g = graph();
    let done = g
        .run(Action::RevokeSessions("alice@example.com".into()))
        .unwrap();
    assert_eq!(done.undo, None);
    assert_eq!(
        done.detail,
        "graph: revoked sign-in sessions of alice@example.com \
         (POST /users/alice@example.com/revokeSignInSessions → 200)"
    );
    let api = g.api();
    assert_eq!(api.len(), 1);
    assert_call(
        &api[0],
        "POST",
        "/v1.0/users/alice@example.com/revokeSignInSessions",
        "fake-graph-token-1",
        None,
    );
    assert_eq!(api[0].header("content-length"), Some("0"));
}

#[test]
fn reset_factors_deletes_the_authenticator_and_phone_but_never_the_password() {
    let mut g = graph();
    let done = g.run(Action::ResetFactors("u1".into())).unwrap();
    assert_eq!(
        done.detail,
        format!(
            "graph: reset factors of u1: deleted microsoftAuthenticator auth-app-1, \
             phone {PHONE_METHOD}; kept password {PASSWORD_METHOD} (3 methods listed)"
        )
    );
    let api = g.api();
    assert_eq!(api.len(), 3, "{api:?}");
    assert_call(
        &api[0],
        "GET",
        "/v1.0/users/u1/authentication/methods",
        "fake-graph-token-1",
        None,
    );
    assert_call(
        &api[1],
        "DELETE",
        "/v1.0/users/u1/authentication/microsoftAuthenticatorMethods/auth-app-1",
        "fake-graph-token-1",
        None,
    );
    assert_call(
        &api[2],
        "DELETE",
        &format!("/v1.0/users/u1/authentication/phoneMethods/{PHONE_METHOD}"),
        "fake-graph-token-1",
        None,
    );
    assert_eq!(g.idp.graph_auth_methods("u1"), vec![PASSWORD_METHOD]);

    // Again: only the password is left, so nothing is deleted.
    g.idp.clear_requests();
    let done = g.run(Action::ResetFactors("u1".into())).unwrap();
    assert_eq!(
        done.detail,
        format!(
            "graph: reset factors of u1: no method to delete; kept password {PASSWORD_METHOD} \
             (1 method listed)"
        )
    );
    assert_eq!(g.idp.requests_matching("DELETE", "/").len(), 0);
}

#[test]
fn reset_factors_follows_a_next_link_below_the_api() {
    let mut g = graph();
    let next = format!(
        "{}/users/u1/authentication/methods?$skiptoken=p2",
        g.idp.graph_url()
    );
    g.idp.set_graph_methods_next_link(Some(&next));
    let done = g.run(Action::ResetFactors("u1".into())).unwrap();
    assert!(
        done.detail.contains("(3 methods listed)"),
        "{}",
        done.detail
    );
    let lists = g
        .idp
        .requests_matching("GET", "/v1.0/users/u1/authentication/methods");
    assert_eq!(lists.len(), 2);
    assert_eq!(lists[1].query.as_deref(), Some("$skiptoken=p2"));
    assert_eq!(g.idp.graph_auth_methods("u1"), vec![PASSWORD_METHOD]);
}

#[test]
fn reset_factors_never_follows_a_next_link_off_the_api() {
    // Another server that would love to receive the token.
    let evil = FakeIdp::start();
    let mut g = graph();
    let api = g.idp.graph_url(); // http://127.0.0.1:PORT/v1.0
    let origin = g.idp.base_url(); // http://127.0.0.1:PORT
    let port = g.idp.addr().port();
    let hostile = [
        // Another host, another port, another scheme.
        format!(
            "{}/v1.0/users/u1/authentication/methods?$skiptoken=p2",
            evil.base_url()
        ),
        format!("https://127.0.0.1:{port}/v1.0/users/u1/authentication/methods"),
        format!("http://localhost:{port}/v1.0/users/u1/authentication/methods"),
        // The base URL as a mere string prefix of another host.
        format!("{api}.evil.example/users/u1/authentication/methods"),
        format!("{origin}0/v1.0/users/u1/authentication/methods"),
        // Same origin, outside the API's path.
        format!("{origin}/beta/users/u1/authentication/methods"),
        format!("{origin}/v1.0evil/users/u1/authentication/methods"),
        format!("{api}/../beta/users/u1"),
        format!("{api}/users/u1/x%2F..%2F..%2Fbeta"),
        // User info that a client may send as credentials elsewhere.
        format!("http://user@127.0.0.1:{port}/v1.0/users/u1/authentication/methods"),
    ];
    for link in &hostile {
        g.idp.clear_requests();
        g.idp.set_graph_methods_next_link(Some(link));
        let err = g.run(Action::ResetFactors("u1".into())).unwrap_err();
        assert!(
            err.message.contains("the methods list of u1 continues at")
                && err.message.contains("not followed")
                && err.message.contains("nothing was deleted"),
            "{link}: {err}"
        );
        // One listing, nothing deleted, nothing sent anywhere else.
        let api_calls: Vec<String> = g
            .api()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(
            api_calls,
            ["GET /v1.0/users/u1/authentication/methods"],
            "{link}"
        );
        assert_eq!(g.idp.graph_auth_methods("u1").len(), 3, "{link}");
    }
    assert!(evil.requests().is_empty(), "{:?}", evil.requests());
}

#[test]
fn reset_factors_deletes_only_the_configured_kinds() {
    let mut g = graph_with(
        GRAPH_CLIENT_SECRET,
        r#"reset_methods = ["phone", "password"]"#,
    );
    let done = g.run(Action::ResetFactors("u1".into())).unwrap();
    assert!(
        done.detail
            .contains(&format!("deleted phone {PHONE_METHOD}")),
        "{}",
        done.detail
    );
    assert_eq!(g.idp.requests_matching("DELETE", "/").len(), 1);
    assert_eq!(
        g.idp.graph_auth_methods("u1"),
        vec![PASSWORD_METHOD, "auth-app-1"],
        "the password is never deleted, even when listed"
    );
}

#[test]
fn a_failed_deletion_fails_the_action_and_names_what_was_deleted() {
    let mut g = graph();
    g.idp.inject(
        "DELETE",
        "/v1.0/users/u1/authentication/phoneMethods/",
        Fault::Status(403),
        1,
    );
    let e = g.run(Action::ResetFactors("u1".into())).unwrap_err();
    assert_eq!(e.status, Some(403));
    assert_eq!(
        e.vendor_code.as_deref(),
        Some("Authorization_RequestDenied")
    );
    assert_eq!(
        e.message,
        format!(
            "deleting phone method {PHONE_METHOD} of u1 failed \
             (deleted before the failure: microsoftAuthenticator auth-app-1): Forbidden"
        )
    );
    assert_eq!(
        g.idp.graph_auth_methods("u1"),
        vec![PASSWORD_METHOD, PHONE_METHOD]
    );
}

#[test]
fn activate_policy_enables_the_conditional_access_policy() {
    let mut g = graph();
    let done = g.run(Action::ActivatePolicy("pol-1".into())).unwrap();
    assert_eq!(
        done.detail,
        "graph: enabled conditional access policy pol-1 \
         (PATCH /identity/conditionalAccess/policies/pol-1 → 204)"
    );
    let api = g.api();
    assert_eq!(api.len(), 1);
    assert_call(
        &api[0],
        "PATCH",
        "/v1.0/identity/conditionalAccess/policies/pol-1",
        "fake-graph-token-1",
        Some(json!({"state": "enabled"})),
    );
    assert_eq!(
        g.idp.graph_ca_policy_state("pol-1").as_deref(),
        Some("enabled")
    );
}

#[test]
fn add_to_group_twice_is_a_success_the_second_time_too() {
    let mut g = graph();
    let done = g.run(add("u1", "g-quarantine")).unwrap();
    assert_eq!(
        done.detail,
        "graph: added u1 to group g-quarantine (POST /groups/g-quarantine/members/$ref → 204)"
    );
    let again = g.run(add("u1", "g-quarantine")).unwrap();
    assert_eq!(
        again.detail,
        "graph: u1 is already a member of group g-quarantine \
         (POST /groups/g-quarantine/members/$ref → 400)"
    );
    assert_eq!(g.idp.graph_group_members("g-quarantine"), vec!["u1"]);
    let api = g.api();
    assert_eq!(api.len(), 2, "a 400 is not retried");
    for r in &api {
        assert_call(
            r,
            "POST",
            "/v1.0/groups/g-quarantine/members/$ref",
            "fake-graph-token-1",
            Some(json!({"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/u1"})),
        );
    }
    // Any other 400 is still a failure.
    let e = g.run(add("missing-user", "g-quarantine")).unwrap_err();
    assert_eq!(e.status, Some(404));
}

#[test]
fn block_ip_with_duration_then_undo_round_trip() {
    let mut g = graph();
    g.idp
        .set_graph_named_location_ranges(GRAPH_NAMED_LOCATION, &["198.51.100.0/24"]);
    let done = g.run(block("203.0.113.9", Some(600))).unwrap();
    assert_eq!(
        done.undo,
        Some(Undo::Unblock {
            ip: "203.0.113.9".into()
        })
    );
    assert_eq!(
        done.detail,
        "graph: blocked 203.0.113.9 in named location nl-blocked-1 \
         (2 ranges; PATCH /identity/conditionalAccess/namedLocations/nl-blocked-1 → 204)"
    );
    assert_eq!(
        g.idp.graph_named_location_ranges(GRAPH_NAMED_LOCATION),
        vec!["198.51.100.0/24", "203.0.113.9/32"]
    );
    let path = "/v1.0/identity/conditionalAccess/namedLocations/nl-blocked-1";
    let api = g.api();
    assert_eq!(api.len(), 2);
    assert_call(&api[0], "GET", path, "fake-graph-token-1", None);
    assert_call(
        &api[1],
        "PATCH",
        path,
        "fake-graph-token-1",
        Some(json!({
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "ipRanges": [
                {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "198.51.100.0/24"},
                {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.9/32"}
            ]
        })),
    );

    g.idp.clear_requests();
    let detail = g.conn.undo(&done.undo.unwrap()).unwrap();
    assert_eq!(
        detail,
        "graph: unblocked 203.0.113.9 in named location nl-blocked-1 \
         (1 range left; PATCH /identity/conditionalAccess/namedLocations/nl-blocked-1 → 204)"
    );
    assert_eq!(
        g.idp.graph_named_location_ranges(GRAPH_NAMED_LOCATION),
        vec!["198.51.100.0/24"]
    );
    let api = g.api();
    assert_eq!(api.len(), 2);
    assert_call(&api[0], "GET", path, "fake-graph-token-1", None);
    assert_call(
        &api[1],
        "PATCH",
        path,
        "fake-graph-token-1",
        Some(json!({
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "ipRanges": [
                {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "198.51.100.0/24"}
            ]
        })),
    );

    // Undoing again changes nothing (the address is gone already).
    g.idp.clear_requests();
    let detail = g
        .conn
        .undo(&Undo::Unblock {
            ip: "203.0.113.9".into(),
        })
        .unwrap();
    assert!(detail.contains("was not in named location"), "{detail}");
    assert_eq!(g.idp.requests_matching("PATCH", "/").len(), 0);
}

#[test]
fn block_ip_v6_and_an_address_already_blocked() {
    let mut g = graph();
    let done = g.run(block("2001:db8::7", None)).unwrap();
    assert_eq!(done.undo, None);
    assert_eq!(
        g.api()[1].json()["ipRanges"],
        json!([{"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "2001:db8::7/128"}])
    );
    assert_eq!(
        g.idp.graph_named_location_ranges(GRAPH_NAMED_LOCATION),
        vec!["2001:db8::7/128"]
    );

    // Already there (blocked by hand, or by another rule): nothing is
    // written, and no unblock is scheduled that would lift that block.
    g.idp.clear_requests();
    let done = g.run(block("2001:db8::7", Some(600))).unwrap();
    assert_eq!(done.undo, None);
    assert_eq!(
        done.detail,
        "graph: 2001:db8::7 was already in named location nl-blocked-1; nothing changed"
    );
    assert_eq!(g.idp.requests_matching("PATCH", "/").len(), 0);
}

#[test]
fn block_ip_refuses_a_bad_address_or_a_missing_named_location() {
    let mut g = graph_with(GRAPH_CLIENT_SECRET, "");
    let e = g.run(block("203.0.113.9", Some(60))).unwrap_err();
    assert_eq!(e.attempts, 0);
    assert!(
        e.message
            .contains("connectors.graph.blocked_named_location"),
        "{e}"
    );
    let e = g
        .conn
        .undo(&Undo::Unblock {
            ip: "203.0.113.9".into(),
        })
        .unwrap_err();
    assert!(e.message.contains("blocked_named_location"), "{e}");

    let mut g2 = graph();
    for bad in ["not-an-ip", "203.0.113.0/24", "203.0.113.256", ""] {
        let e = g2.run(block(bad, None)).unwrap_err();
        assert_eq!(e.attempts, 0, "{bad}");
        assert!(e.message.contains("is not an IPv4 or IPv6 address"), "{e}");
    }
    assert!(g.idp.requests().is_empty());
    assert!(g2.idp.requests().is_empty());
}

#[test]
fn unsafe_path_segments_are_refused_before_anything_is_sent() {
    let mut g = graph();
    let cases = [
        (
            Action::RevokeSessions("../groups/g1".into()),
            "user id \"../groups/g1\" contains '/'",
        ),
        (
            Action::ResetFactors("u1?$select=id".into()),
            "user id \"u1?$select=id\" contains '?'",
        ),
        (suspend("u1#x", None), "user id \"u1#x\" contains '#'"),
        (suspend("..", None), "user id \"..\" is a relative path"),
        (
            Action::ActivatePolicy("%2e%2e".into()),
            "policy id \"%2e%2e\" contains '%'",
        ),
        (
            add("u1", "g1/members"),
            "group id \"g1/members\" contains '/'",
        ),
        (add("u1/../u2", "g1"), "user id \"u1/../u2\" contains '/'"),
        (
            Action::RevokeSessions(String::new()),
            "user id \"\" is empty",
        ),
    ];
    for (action, problem) in cases {
        let e = g.run(action).unwrap_err();
        assert_eq!(e.attempts, 0);
        assert_eq!(e.status, None);
        assert_eq!(
            e.message,
            format!("graph: {problem}; it cannot be used in a URL path")
        );
    }
    let e = g
        .conn
        .undo(&Undo::Unsuspend { user: "a/b".into() })
        .unwrap_err();
    assert!(e.message.contains("contains '/'"), "{e}");
    assert!(
        g.idp.requests().is_empty(),
        "not even a token was asked for"
    );
}

#[test]
fn messages_are_not_graph_actions() {
    let mut g = graph();
    assert_eq!(g.conn.name(), "graph");
    for kind in ActionKind::ALL {
        let expected = !matches!(kind, ActionKind::Notify | ActionKind::Escalate);
        assert_eq!(g.conn.supports(kind), expected, "{}", kind.name());
    }
    let message = Message {
        severity: Severity::High,
        summary: "push fatigue".into(),
        details: vec![],
    };
    for action in [Action::Notify(message.clone()), Action::Escalate(message)] {
        let e = g.run(action).unwrap_err();
        assert_eq!(e.attempts, 0);
        assert!(e.message.contains("not a Microsoft Graph action"), "{e}");
    }
    assert!(g.idp.requests().is_empty());
}

#[test]
fn a_wrong_secret_fails_at_the_token_endpoint_and_calls_no_api() {
    let secret = "wrong-secret-7f3a";
    let mut g = graph_with(secret, "");
    let e = g.run(suspend("u1", None)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(
            "token request failed: HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided."
        ),
        "{text}"
    );
    assert!(
        text.ends_with("(1 attempt)"),
        "a 401 is not retried: {text}"
    );
    assert!(!text.contains(secret), "{text}");
    assert_eq!(e.vendor_code.as_deref(), Some("invalid_client"));
    assert_eq!(e.status, None, "no API call was answered");
    assert_eq!(g.token_requests().len(), 1);
    assert_eq!(
        g.token_requests()[0].form_param("client_secret").as_deref(),
        Some(secret)
    );
    assert!(g.api().is_empty());
    assert!(g.idp.graph_account_enabled("u1"));

    // check() reports the same.
    let e = g.conn.check().unwrap_err();
    assert!(e.to_string().contains("invalid_client"), "{e}");
    assert!(g.api().is_empty());
}

#[test]
fn a_token_endpoint_outage_is_retried() {
    let mut g = graph();
    g.idp.inject("POST", TOKEN_PATH, Fault::Status(503), 1);
    g.run(Action::RevokeSessions("u1".into())).unwrap();
    assert_eq!(g.token_requests().len(), 2);
    assert_eq!(g.idp.tokens_issued(), 1);
    assert_eq!(g.api().len(), 1);
}

#[test]
fn a_short_lived_token_is_replaced_before_it_expires() {
    let mut g = graph();
    // Lives 1 s: the connector uses it for half of that.
    g.idp.set_graph_token_lifetime(1);
    g.run(Action::RevokeSessions("u1".into())).unwrap();
    g.run(Action::RevokeSessions("u2".into())).unwrap();
    assert_eq!(g.idp.tokens_issued(), 1, "reused while fresh");
    std::thread::sleep(Duration::from_millis(600));
    g.run(Action::RevokeSessions("u3".into())).unwrap();
    assert_eq!(g.idp.tokens_issued(), 2, "replaced once past half its life");
    let api = g.api();
    assert_eq!(api.len(), 3, "no call was refused and retried: {api:?}");
    assert_eq!(
        api[2].header("authorization"),
        Some("Bearer fake-graph-token-2")
    );
}

#[test]
fn a_401_drops_the_token_and_retries_the_call_once() {
    let mut g = graph();
    g.run(suspend("u1", None)).unwrap();
    // The token is revoked early: the next call gets 401, a new token is
    // fetched, and the call is made again with it.
    g.idp.expire_graph_tokens();
    g.idp.clear_requests();
    g.run(Action::ActivatePolicy("pol-1".into())).unwrap();
    let seen: Vec<(String, String, Option<String>)> = g
        .idp
        .requests()
        .into_iter()
        .map(|r| {
            (
                r.method.clone(),
                r.path.clone(),
                r.header("authorization").map(str::to_owned),
            )
        })
        .collect();
    let patch = "/v1.0/identity/conditionalAccess/policies/pol-1".to_owned();
    assert_eq!(
        seen,
        vec![
            (
                "PATCH".into(),
                patch.clone(),
                Some("Bearer fake-graph-token-1".into())
            ),
            ("POST".into(), TOKEN_PATH.into(), None),
            (
                "PATCH".into(),
                patch,
                Some("Bearer fake-graph-token-2".into())
            ),
        ]
    );
    assert_eq!(
        g.idp.graph_ca_policy_state("pol-1").as_deref(),
        Some("enabled")
    );

    // A 401 that persists is retried once only, then reported.
    g.idp.clear_requests();
    g.idp
        .inject("PATCH", "/v1.0/users/u2", Fault::Status(401), 5);
    let e = g.run(suspend("u2", None)).unwrap_err();
    assert_eq!(e.status, Some(401));
    assert_eq!(e.vendor_code.as_deref(), Some("InvalidAuthenticationToken"));
    assert_eq!(e.attempts, 2);
    assert_eq!(g.idp.requests_matching("PATCH", "/v1.0/users/u2").len(), 2);
    assert_eq!(g.token_requests().len(), 1);
    assert!(!e.to_string().contains("fake-graph-token"), "{e}");
}

#[test]
fn graph_throttling_waits_for_retry_after() {
    let mut g = graph();
    g.idp.inject(
        "PATCH",
        "/v1.0/users/u1",
        Fault::GraphThrottle {
            retry_after_secs: 1,
        },
        1,
    );
    g.run(suspend("u1", None)).unwrap();
    let sent = g.idp.requests_matching("PATCH", "/v1.0/users/u1");
    assert_eq!(sent.len(), 2, "one 429, then the retry");
    let waited = sent[1].at - sent[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 honoured, not the 20 ms backoff: {waited:?}"
    );
    assert!(!g.idp.graph_account_enabled("u1"));
    assert_eq!(g.idp.tokens_issued(), 1);
}

#[test]
fn a_missing_user_is_a_404_and_is_not_retried() {
    let mut g = graph();
    let e = g.run(suspend("missing-u9", Some(60))).unwrap_err();
    assert_eq!(e.status, Some(404));
    assert_eq!(e.vendor_code.as_deref(), Some("Request_ResourceNotFound"));
    assert_eq!(e.attempts, 1);
    assert!(
        e.message
            .starts_with("Resource 'missing-u9' does not exist"),
        "{e}"
    );
    assert_eq!(g.api().len(), 1);

    let e = g
        .run(Action::ResetFactors("missing-u9".into()))
        .unwrap_err();
    assert_eq!(e.status, Some(404));
    assert_eq!(g.idp.requests_matching("DELETE", "/").len(), 0);
}

#[test]
fn check_proves_credentials_and_reads_only() {
    let mut g = graph();
    let lines = g.conn.check().unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("obtained an access token"), "{lines:?}");
    assert!(
        lines[1].contains("GET /users?$top=1&$select=id → 200"),
        "{lines:?}"
    );
    assert!(lines[2].contains("nl-blocked-1"), "{lines:?}");
    let api = g.api();
    assert_eq!(api.len(), 2);
    assert_call(&api[0], "GET", "/v1.0/users", "fake-graph-token-1", None);
    assert_eq!(api[0].query.as_deref(), Some("$top=1&$select=id"));
    assert_call(
        &api[1],
        "GET",
        "/v1.0/identity/conditionalAccess/namedLocations/nl-blocked-1",
        "fake-graph-token-1",
        None,
    );
    assert!(
        g.idp
            .requests()
            .iter()
            .all(|r| r.method == "GET" || r.path == TOKEN_PATH)
    );

    // Without a named location, two lines.
    let mut plain = graph_with(GRAPH_CLIENT_SECRET, "");
    assert_eq!(plain.conn.check().unwrap().len(), 2);

    // A named location that does not exist fails the check.
    let mut bad = graph_with(GRAPH_CLIENT_SECRET, "blocked_named_location = \"nl-gone\"");
    let e = bad.conn.check().unwrap_err();
    assert_eq!(e.status, Some(404));
    assert_eq!(e.vendor_code.as_deref(), Some("Request_ResourceNotFound"));
}
