//! The Okta connector against the fake Okta org: for every action the exact
//! request (method, path, query, headers, body) and the org's resulting
//! state; undos; refusals made before anything is sent; vendor errors;
//! `check`.
//!
//! The helpers here (`okta`, `okta_with`, `http`, `CTX`) are shared with
//! `faults.rs`.

use std::net::IpAddr;

use serde_json::{Value, json};
use tempfile::TempDir;
use vigil_host::actions::connector::{ActionContext, Connector, Undo};
use vigil_host::actions::okta::OktaConnector;
use vigil_host::config::connectors::{HttpConfig, OktaAuthScheme, OktaConfig};
use vigil_host::model::{
    Action, ActionKind, BlockIp, GroupMembership, Message, Severity, SuspendUser,
};
use vigil_test_support::fake_idp::{FakeIdp, OKTA_BLOCKLIST_ZONE, OKTA_TOKEN, Recorded};

pub(crate) const CTX: ActionContext<'static> = ActionContext {
    action_id: "act-1",
    rule: "test-rule",
    event_id: "evt-1",
    event_source: "okta",
};

/// A connector wired to a fake org, and the temporary directory holding
/// its token file.
pub(crate) struct Okta {
    pub idp: FakeIdp,
    pub conn: OktaConnector,
    _dir: TempDir,
}

/// Small backoffs and timeouts, so retries cost milliseconds.
pub(crate) fn http() -> HttpConfig {
    HttpConfig {
        connect_timeout_ms: 1000,
        timeout_ms: 1000,
        max_attempts: 3,
        backoff_initial_ms: 20,
        backoff_max_ms: 100,
        max_retry_wait_secs: 5,
        max_action_secs: 30,
    }
}

fn config(
    idp: &FakeIdp,
    dir: &TempDir,
    token: &str,
    zone: Option<&str>,
    base_suffix: &str,
    auth_scheme: OktaAuthScheme,
) -> OktaConfig {
    let token_file = dir.path().join("okta-token");
    // As operators write it: with a trailing newline.
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    OktaConfig {
        base_url: format!("{}{base_suffix}", idp.base_url()),
        token_env: None,
        token_file: Some(token_file),
        auth_scheme,
        blocklist_zone: zone.map(str::to_owned),
    }
}

/// A connector with `token`, `zone` as blocklist zone and `http` limits.
pub(crate) fn okta_with(token: &str, zone: Option<&str>, http: HttpConfig) -> Okta {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&idp, &dir, token, zone, "", OktaAuthScheme::Ssws);
    let conn = OktaConnector::new(&cfg, &http).unwrap();
    Okta {
        idp,
        conn,
        _dir: dir,
    }
}

/// A connector with the right token and the fake's blocklist zone.
pub(crate) fn okta() -> Okta {
    okta_with(OKTA_TOKEN, Some(OKTA_BLOCKLIST_ZONE), http())
}

/// Asserts the one request the connector sent so far and returns it.
fn only_request(idp: &FakeIdp) -> Recorded {
    let sent = idp.requests();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    sent.into_iter().next().unwrap()
}

/// Method, path, query, the headers every Okta call carries, and the body.
fn assert_request(
    r: &Recorded,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: Option<&Value>,
) {
    assert_eq!(r.method, method, "{r:#?}");
    assert_eq!(r.path, path, "{r:#?}");
    assert_eq!(r.query.as_deref(), query, "{r:#?}");
    assert_eq!(
        r.header("authorization"),
        Some(format!("SSWS {OKTA_TOKEN}").as_str())
    );
    assert_eq!(r.header("accept"), Some("application/json"));
    assert!(
        r.header("user-agent")
            .is_some_and(|ua| ua.starts_with("vigil/")),
        "{r:#?}"
    );
    match body {
        Some(expected) => {
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(&r.json(), expected);
        }
        None => {
            assert_eq!(r.header("content-type"), None, "no body, no content type");
            assert_eq!(r.body, "");
        }
    }
}

fn suspend(user: &str, duration_secs: Option<u64>) -> Action {
    Action::SuspendUser(SuspendUser {
        user: user.to_owned(),
        duration_secs,
    })
}

fn block(ip: &str, duration_secs: Option<u64>) -> Action {
    Action::BlockIp(BlockIp {
        ip: ip.to_owned(),
        duration_secs,
    })
}

/// The zone as the fake serves it, read directly.
fn zone_as_served(idp: &FakeIdp, zone: &str) -> Value {
    reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/zones/{zone}", idp.base_url()))
        .header("Authorization", format!("SSWS {OKTA_TOKEN}"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Every action: exact request and resulting state

#[test]
fn suspend_user_posts_the_suspend_lifecycle_operation() {
    let mut o = okta();
    let done = o.conn.execute(&suspend("00u1", None), &CTX).unwrap();
    assert_eq!(
        done.detail,
        "okta: suspended 00u1 (POST /api/v1/users/00u1/lifecycle/suspend → 200)"
    );
    assert_eq!(done.undo, None, "no duration, no undo");
    let r = only_request(&o.idp);
    assert_request(
        &r,
        "POST",
        "/api/v1/users/00u1/lifecycle/suspend",
        None,
        None,
    );
    assert_eq!(o.idp.okta_user_status("00u1"), "SUSPENDED");
}

#[test]
fn suspend_with_a_duration_is_undone_by_unsuspend() {
    let mut o = okta();
    let done = o.conn.execute(&suspend("00u2", Some(3600)), &CTX).unwrap();
    assert_eq!(
        done.undo,
        Some(Undo::Unsuspend {
            user: "00u2".into()
        })
    );
    assert_eq!(o.idp.okta_user_status("00u2"), "SUSPENDED");
    o.idp.clear_requests();

    let detail = o.conn.undo(&done.undo.unwrap()).unwrap();
    assert_eq!(
        detail,
        "okta: unsuspended 00u2 (POST /api/v1/users/00u2/lifecycle/unsuspend → 200)"
    );
    let r = only_request(&o.idp);
    assert_request(
        &r,
        "POST",
        "/api/v1/users/00u2/lifecycle/unsuspend",
        None,
        None,
    );
    assert_eq!(o.idp.okta_user_status("00u2"), "ACTIVE");
}

#[test]
fn an_already_suspended_user_is_not_unsuspended_later() {
    let mut o = okta();
    o.idp.set_okta_user_status("00u3", "SUSPENDED");
    let done = o.conn.execute(&suspend("00u3", Some(600)), &CTX).unwrap();
    assert_eq!(
        done.undo, None,
        "an administrator suspended this user: Vigil must not unsuspend them"
    );
    assert_eq!(
        done.detail,
        "okta: 00u3 was already SUSPENDED (POST → 400, GET /api/v1/users/00u3 → 200); \
         no unsuspend scheduled"
    );
    let sent = o.idp.requests();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_request(
        &sent[0],
        "POST",
        "/api/v1/users/00u3/lifecycle/suspend",
        None,
        None,
    );
    assert_request(&sent[1], "GET", "/api/v1/users/00u3", None, None);
    assert_eq!(o.idp.okta_user_status("00u3"), "SUSPENDED");
}

#[test]
fn undoing_a_suspension_someone_already_lifted_succeeds() {
    let mut o = okta();
    let detail = o
        .conn
        .undo(&Undo::Unsuspend {
            user: "00u4".into(),
        })
        .unwrap();
    assert_eq!(
        detail,
        "okta: 00u4 is no longer suspended (status ACTIVE; POST → 400, GET /api/v1/users/00u4 → 200); \
         nothing to undo"
    );
    assert_eq!(o.idp.requests().len(), 2);
    assert_eq!(o.idp.okta_user_status("00u4"), "ACTIVE");
}

#[test]
fn revoke_sessions_deletes_sessions_and_oauth_tokens() {
    let mut o = okta();
    let done = o
        .conn
        .execute(&Action::RevokeSessions("00u5".into()), &CTX)
        .unwrap();
    assert_eq!(
        done.detail,
        "okta: revoked sessions and OAuth tokens of 00u5 \
         (DELETE /api/v1/users/00u5/sessions?oauthTokens=true → 204)"
    );
    assert_eq!(done.undo, None);
    let r = only_request(&o.idp);
    assert_request(
        &r,
        "DELETE",
        "/api/v1/users/00u5/sessions",
        Some("oauthTokens=true"),
        None,
    );
}

#[test]
fn reset_factors_posts_the_reset_factors_lifecycle_operation() {
    let mut o = okta();
    let done = o
        .conn
        .execute(&Action::ResetFactors("00u6".into()), &CTX)
        .unwrap();
    assert_eq!(
        done.detail,
        "okta: reset factors of 00u6 (POST /api/v1/users/00u6/lifecycle/reset_factors → 200)"
    );
    let r = only_request(&o.idp);
    assert_request(
        &r,
        "POST",
        "/api/v1/users/00u6/lifecycle/reset_factors",
        None,
        None,
    );
    assert_eq!(
        o.idp.okta_user_status("00u6"),
        "ACTIVE",
        "reset leaves the status"
    );
}

#[test]
fn activate_policy_posts_the_activate_lifecycle_operation() {
    let mut o = okta();
    let done = o
        .conn
        .execute(&Action::ActivatePolicy("00p1".into()), &CTX)
        .unwrap();
    assert_eq!(
        done.detail,
        "okta: activated policy 00p1 (POST /api/v1/policies/00p1/lifecycle/activate → 200)"
    );
    let r = only_request(&o.idp);
    assert_request(
        &r,
        "POST",
        "/api/v1/policies/00p1/lifecycle/activate",
        None,
        None,
    );
    assert_eq!(o.idp.okta_policy_status("00p1").as_deref(), Some("ACTIVE"));
}

#[test]
fn add_to_group_puts_the_membership() {
    let mut o = okta();
    let action = Action::AddToGroup(GroupMembership {
        user: "00u7".into(),
        group: "00g1".into(),
    });
    let done = o.conn.execute(&action, &CTX).unwrap();
    assert_eq!(
        done.detail,
        "okta: added 00u7 to group 00g1 (PUT /api/v1/groups/00g1/users/00u7 → 204)"
    );
    let r = only_request(&o.idp);
    assert_request(&r, "PUT", "/api/v1/groups/00g1/users/00u7", None, None);
    assert_eq!(o.idp.okta_group_members("00g1"), vec!["00u7".to_owned()]);
}

#[test]
fn block_ip_adds_a_cidr_gateway_and_puts_the_whole_zone_back() {
    let mut o = okta();
    o.idp
        .set_okta_zone_gateways(OKTA_BLOCKLIST_ZONE, &["198.51.100.0/24"]);
    let served = zone_as_served(&o.idp, OKTA_BLOCKLIST_ZONE);
    o.idp.clear_requests();

    let done = o.conn.execute(&block("203.0.113.9", None), &CTX).unwrap();
    assert_eq!(
        done.detail,
        "okta: blocked 203.0.113.9 in zone nzoblocklist1 (GET /api/v1/zones/nzoblocklist1 → 200, \
         PUT /api/v1/zones/nzoblocklist1 → 200)"
    );
    assert_eq!(done.undo, None, "no duration, no undo");
    let sent = o.idp.requests();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_request(&sent[0], "GET", "/api/v1/zones/nzoblocklist1", None, None);
    let mut expected = served.clone();
    expected["gateways"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "CIDR", "value": "203.0.113.9/32"}));
    assert_request(
        &sent[1],
        "PUT",
        "/api/v1/zones/nzoblocklist1",
        None,
        Some(&expected),
    );
    assert_eq!(
        o.idp.okta_zone_gateways(OKTA_BLOCKLIST_ZONE),
        vec!["198.51.100.0/24".to_owned(), "203.0.113.9/32".to_owned()]
    );
}

#[test]
fn block_ip_with_a_duration_is_undone_by_removing_the_gateway() {
    let mut o = okta();
    o.idp
        .set_okta_zone_gateways(OKTA_BLOCKLIST_ZONE, &["198.51.100.0/24"]);
    let done = o
        .conn
        .execute(&block("2001:db8::7", Some(900)), &CTX)
        .unwrap();
    assert_eq!(
        done.undo,
        Some(Undo::Unblock {
            ip: "2001:db8::7".into()
        })
    );
    assert_eq!(
        o.idp.okta_zone_gateways(OKTA_BLOCKLIST_ZONE),
        vec!["198.51.100.0/24".to_owned(), "2001:db8::7/128".to_owned()]
    );
    let served = zone_as_served(&o.idp, OKTA_BLOCKLIST_ZONE);
    o.idp.clear_requests();

    let detail = o.conn.undo(&done.undo.unwrap()).unwrap();
    assert_eq!(
        detail,
        "okta: unblocked 2001:db8::7 in zone nzoblocklist1 (GET /api/v1/zones/nzoblocklist1 → 200, \
         PUT /api/v1/zones/nzoblocklist1 → 200)"
    );
    let sent = o.idp.requests();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_request(&sent[0], "GET", "/api/v1/zones/nzoblocklist1", None, None);
    let mut expected = served;
    expected["gateways"] = json!([{"type": "CIDR", "value": "198.51.100.0/24"}]);
    assert_request(
        &sent[1],
        "PUT",
        "/api/v1/zones/nzoblocklist1",
        None,
        Some(&expected),
    );
    assert_eq!(
        o.idp.okta_zone_gateways(OKTA_BLOCKLIST_ZONE),
        vec!["198.51.100.0/24".to_owned()],
        "the operator's own gateway stays"
    );

    // Undoing again finds nothing to remove and writes nothing.
    o.idp.clear_requests();
    let detail = o
        .conn
        .undo(&Undo::Unblock {
            ip: "2001:db8::7".into(),
        })
        .unwrap();
    assert!(detail.contains("was not in blocklist zone"), "{detail}");
    assert_eq!(o.idp.requests_matching("PUT", "/").len(), 0);
}

#[test]
fn block_ip_of_an_address_already_blocked_writes_nothing_and_schedules_no_unblock() {
    let mut o = okta();
    o.idp
        .set_okta_zone_gateways(OKTA_BLOCKLIST_ZONE, &["203.0.113.9/32"]);
    let done = o
        .conn
        .execute(&block("203.0.113.9", Some(600)), &CTX)
        .unwrap();
    assert_eq!(
        done.detail,
        "okta: 203.0.113.9 already in blocklist zone nzoblocklist1 \
         (GET /api/v1/zones/nzoblocklist1 → 200); no unblock scheduled"
    );
    assert_eq!(
        done.undo, None,
        "someone else blocked it: Vigil must not lift their block later"
    );
    let r = only_request(&o.idp);
    assert_eq!(r.method, "GET");
    assert_eq!(
        o.idp.okta_zone_gateways(OKTA_BLOCKLIST_ZONE),
        vec!["203.0.113.9/32".to_owned()]
    );
}

#[test]
fn block_ip_refuses_a_zone_that_is_not_a_blocklist() {
    let mut o = okta_with(OKTA_TOKEN, Some("nzopolicy1"), http());
    // The fake creates zones as BLOCKLIST; make this one a POLICY zone
    // through its API.
    o.idp.set_okta_zone_gateways("nzopolicy1", &["10.0.0.0/8"]);
    let mut zone = zone_as_served(&o.idp, "nzopolicy1");
    zone["usage"] = json!("POLICY");
    let resp = reqwest::blocking::Client::new()
        .put(format!("{}/api/v1/zones/nzopolicy1", o.idp.base_url()))
        .header("Authorization", format!("SSWS {OKTA_TOKEN}"))
        .json(&zone)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    o.idp.clear_requests();

    let err = o
        .conn
        .execute(&block("203.0.113.9", Some(60)), &CTX)
        .unwrap_err();
    assert_eq!(
        err.message,
        "network zone nzopolicy1 has usage POLICY, not BLOCKLIST; adding an address to it \
         could allow the address instead of blocking it"
    );
    assert_eq!(err.status, None);
    let r = only_request(&o.idp);
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("GET", "/api/v1/zones/nzopolicy1"),
        "read, never written"
    );
    assert_eq!(
        o.idp.okta_zone_gateways("nzopolicy1"),
        vec!["10.0.0.0/8".to_owned()]
    );

    // `check` finds the same mistake.
    let err = o.conn.check().unwrap_err();
    assert!(err.message.contains("not BLOCKLIST"), "{err}");
}

#[test]
fn block_ip_refuses_targets_that_are_not_addresses_without_a_request() {
    let mut o = okta();
    for target in [
        "",
        "203.0.113.0/24",
        "evil.example",
        "203.0.113.9:443",
        "../x",
        "1.2.3.4 ",
    ] {
        let err = o.conn.execute(&block(target, Some(60)), &CTX).unwrap_err();
        assert_eq!(err.attempts, 0, "{target:?}");
        assert_eq!(err.status, None);
        assert_eq!(
            err.message,
            format!("block-ip target {target:?} is not an IPv4 or IPv6 address")
        );
    }
    assert_eq!(o.idp.requests().len(), 0);
    assert!(o.idp.okta_zone_gateways(OKTA_BLOCKLIST_ZONE).is_empty());
}

#[test]
fn block_ip_without_a_blocklist_zone_is_refused_without_a_request() {
    let mut o = okta_with(OKTA_TOKEN, None, http());
    let err = o
        .conn
        .execute(&block("203.0.113.9", None), &CTX)
        .unwrap_err();
    assert_eq!(
        err.message,
        "connectors.okta.blocklist_zone is not set; block-ip needs a BLOCKLIST network zone"
    );
    assert_eq!(err.attempts, 0);
    assert_eq!(o.idp.requests().len(), 0);
}

// ---------------------------------------------------------------------------
// Targets, headers, unsupported actions

#[test]
fn ids_that_would_change_the_path_are_refused_and_others_encoded() {
    let mut o = okta();
    for id in ["../x", "a/b", "..", "", "00u1?x=1", "00u1#f", "a\\b"] {
        let err = o.conn.execute(&suspend(id, None), &CTX).unwrap_err();
        assert_eq!(err.attempts, 0, "{id:?}");
        assert!(
            err.message.starts_with(&format!("okta user id {id:?} ")),
            "{id:?}: {}",
            err.message
        );
    }
    let group = Action::AddToGroup(GroupMembership {
        user: "00u1".into(),
        group: "../../users/00u1/lifecycle/suspend".into(),
    });
    let err = o.conn.execute(&group, &CTX).unwrap_err();
    assert!(err.message.starts_with("okta group id"), "{}", err.message);
    let err = o
        .conn
        .execute(&Action::ActivatePolicy("a/b".into()), &CTX)
        .unwrap_err();
    assert!(err.message.starts_with("okta policy id"), "{}", err.message);
    assert_eq!(o.idp.requests().len(), 0, "nothing was sent");

    // A login is a valid target; it travels percent-encoded.
    o.conn
        .execute(&suspend("alice@example.com", None), &CTX)
        .unwrap();
    let r = only_request(&o.idp);
    assert_eq!(
        r.path,
        "/api/v1/users/alice%40example.com/lifecycle/suspend"
    );
    assert_eq!(o.idp.okta_user_status("alice@example.com"), "SUSPENDED");
}

#[test]
fn bearer_tokens_and_a_trailing_slash_in_the_base_url() {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&idp, &dir, OKTA_TOKEN, None, "/", OktaAuthScheme::Bearer);
    let mut conn = OktaConnector::new(&cfg, &http()).unwrap();
    conn.execute(&Action::ResetFactors("00u8".into()), &CTX)
        .unwrap();
    let r = only_request(&idp);
    assert_eq!(r.path, "/api/v1/users/00u8/lifecycle/reset_factors");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {OKTA_TOKEN}").as_str())
    );
}

#[test]
fn notify_and_escalate_are_not_okta_actions() {
    let mut o = okta();
    assert_eq!(o.conn.name(), "okta");
    for kind in ActionKind::ALL {
        let expected = !matches!(kind, ActionKind::Notify | ActionKind::Escalate);
        assert_eq!(o.conn.supports(kind), expected, "{}", kind.name());
    }
    let message = Message {
        severity: Severity::High,
        summary: "push fatigue".into(),
        details: vec![],
    };
    for action in [Action::Notify(message.clone()), Action::Escalate(message)] {
        let err = o.conn.execute(&action, &CTX).unwrap_err();
        assert_eq!(err.attempts, 0);
        assert!(
            err.message.contains("does not carry out"),
            "{}",
            err.message
        );
    }
    assert_eq!(o.idp.requests().len(), 0);
}

// ---------------------------------------------------------------------------
// Vendor errors

#[test]
fn an_unknown_user_is_a_404_with_okta_error_and_is_not_retried() {
    let mut o = okta();
    let err = o
        .conn
        .execute(&Action::RevokeSessions("missing-1".into()), &CTX)
        .unwrap_err();
    assert_eq!(err.status, Some(404));
    assert_eq!(err.vendor_code.as_deref(), Some("E0000007"));
    assert_eq!(
        err.message,
        "Not found: Resource not found: missing-1 (User)"
    );
    assert_eq!(err.attempts, 1);
    assert_eq!(
        err.to_string(),
        "HTTP 404 E0000007: Not found: Resource not found: missing-1 (User) (1 attempt)"
    );
    assert_eq!(o.idp.requests().len(), 1, "a 404 is not retried");
}

#[test]
fn a_wrong_token_is_a_401_and_never_quoted() {
    let token = "00wrong-secret-token-Zq9";
    let mut o = okta_with(token, Some(OKTA_BLOCKLIST_ZONE), http());
    let err = o.conn.execute(&suspend("00u9", None), &CTX).unwrap_err();
    assert_eq!(err.status, Some(401));
    assert_eq!(err.vendor_code.as_deref(), Some("E0000011"));
    assert_eq!(err.attempts, 1);
    let text = err.to_string();
    assert!(text.contains("E0000011: Invalid token provided"), "{text}");
    assert!(!text.contains(token), "{text}");
    assert!(!format!("{err:?}").contains(token));
    let r = only_request(&o.idp);
    assert_eq!(
        r.header("authorization"),
        Some(format!("SSWS {token}").as_str()),
        "the token read from the file, newline dropped"
    );
    assert_eq!(o.idp.okta_user_status("00u9"), "ACTIVE");
}

// ---------------------------------------------------------------------------
// check

#[test]
fn check_verifies_the_token_and_the_blocklist_zone_read_only() {
    let mut o = okta();
    let lines = o.conn.check().unwrap();
    let base = o.idp.base_url();
    assert_eq!(
        lines,
        vec![
            format!("okta: token accepted by {base} (GET /api/v1/users?limit=1 → 200)"),
            "okta: blocklist zone nzoblocklist1 (\"Vigil blocklist\", 0 gateways) has usage \
             BLOCKLIST (GET /api/v1/zones/nzoblocklist1 → 200)"
                .to_owned(),
        ]
    );
    let sent = o.idp.requests();
    assert_eq!(sent.len(), 2);
    assert_request(&sent[0], "GET", "/api/v1/users", Some("limit=1"), None);
    assert_request(&sent[1], "GET", "/api/v1/zones/nzoblocklist1", None, None);
    assert!(
        sent.iter().all(|r| r.method == "GET"),
        "check changes nothing"
    );

    // Without a blocklist zone only the token is checked.
    let mut o = okta_with(OKTA_TOKEN, None, http());
    assert_eq!(o.conn.check().unwrap().len(), 1);
    assert_eq!(o.idp.requests().len(), 1);
}

#[test]
fn check_with_a_bad_token_fails_with_the_okta_error() {
    let token = "not-the-token";
    let mut o = okta_with(token, Some(OKTA_BLOCKLIST_ZONE), http());
    let err = o.conn.check().unwrap_err();
    assert_eq!(err.status, Some(401));
    assert_eq!(err.vendor_code.as_deref(), Some("E0000011"));
    let text = err.to_string();
    assert!(text.contains("Invalid token provided"), "{text}");
    assert!(text.contains("GET /api/v1/users?limit=1"), "{text}");
    assert!(!text.contains(token), "{text}");
    assert_eq!(o.idp.requests().len(), 1, "stops at the first failure");
}

#[test]
fn check_fails_for_an_unknown_zone() {
    let mut o = okta_with(OKTA_TOKEN, Some("nzonothere"), http());
    let err = o.conn.check().unwrap_err();
    assert_eq!(err.status, Some(404));
    assert!(
        err.message.starts_with("GET /api/v1/zones/nzonothere: "),
        "{}",
        err.message
    );
}

#[test]
fn gateway_values_round_trip_through_the_fake() {
    // The connector writes what the fake (and Okta) accept: CIDR values
    // with a full-length prefix for both families.
    let mut o = okta();
    for ip in ["192.0.2.1", "2001:db8::1"] {
        o.conn.execute(&block(ip, None), &CTX).unwrap();
    }
    let gateways = o.idp.okta_zone_gateways(OKTA_BLOCKLIST_ZONE);
    let parsed: Vec<(IpAddr, &str)> = gateways
        .iter()
        .map(|g| {
            let (a, l) = g.split_once('/').unwrap();
            (a.parse().unwrap(), l)
        })
        .collect();
    assert_eq!(
        parsed,
        vec![
            ("192.0.2.1".parse().unwrap(), "32"),
            ("2001:db8::1".parse().unwrap(), "128")
        ]
    );
}
