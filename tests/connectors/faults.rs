//! The retry rules every connector shares (`actions::http`), exercised
//! through the Okta connector against injected faults: 5xx retried with
//! backoff up to `max_attempts`, 429 waits for the vendor's reset time
//! (Okta's `X-Rate-Limit-Reset`, Graph's `Retry-After`) unless that is
//! longer than `max_retry_wait_secs`, dropped connections and timeouts
//! retried, other 4xx never retried.
//!
//! Faults are injected before the fake routes a request, so a Graph-style
//! throttle on an Okta path works too.

use std::time::{Duration, Instant};

use vigil_host::actions::connector::Connector;
use vigil_host::config::connectors::HttpConfig;
use vigil_host::model::{Action, SuspendUser};
use vigil_test_support::fake_idp::{Fault, OKTA_BLOCKLIST_ZONE, OKTA_TOKEN};

use crate::okta::{CTX, http, okta, okta_with};

const SUSPEND_PATH: &str = "/api/v1/users/00u1/lifecycle/suspend";

fn suspend() -> Action {
    Action::SuspendUser(SuspendUser {
        user: "00u1".into(),
        duration_secs: None,
    })
}

fn revoke() -> Action {
    Action::RevokeSessions("00u1".into())
}

/// The gap between two recorded requests.
fn gap(a: Instant, b: Instant) -> Duration {
    b.duration_since(a)
}

#[test]
fn server_errors_are_retried_until_one_succeeds() {
    let mut o = okta();
    o.idp.inject("POST", SUSPEND_PATH, Fault::Status(500), 2);
    let done = o.conn.execute(&suspend(), &CTX).unwrap();
    assert!(done.detail.ends_with("→ 200)"), "{}", done.detail);
    let sent = o.idp.requests_matching("POST", SUSPEND_PATH);
    assert_eq!(sent.len(), 3, "two 500s, then the success");
    assert_eq!(o.idp.requests().len(), 3);
    assert_eq!(o.idp.okta_user_status("00u1"), "SUSPENDED");
    // Backed off between attempts (backoff_initial 20 ms, half of it jitter).
    assert!(gap(sent[0].at, sent[1].at) >= Duration::from_millis(10));
}

#[test]
fn persistent_server_errors_stop_at_max_attempts() {
    let mut o = okta();
    o.idp.inject("*", "/api/v1/", Fault::Status(500), 100);
    let err = o.conn.execute(&suspend(), &CTX).unwrap_err();
    assert_eq!(o.idp.requests().len(), 3, "max_attempts = 3");
    assert_eq!(err.status, Some(500));
    assert_eq!(err.vendor_code.as_deref(), Some("E0000009"));
    assert_eq!(err.message, "Internal Server Error");
    assert_eq!(err.attempts, 3);
    assert_eq!(
        err.to_string(),
        "HTTP 500 E0000009: Internal Server Error (3 attempts)"
    );
    assert_eq!(o.idp.okta_user_status("00u1"), "ACTIVE");
}

#[test]
fn okta_rate_limit_waits_for_the_reset_time() {
    let mut o = okta();
    o.idp.inject(
        "POST",
        SUSPEND_PATH,
        Fault::OktaRateLimit { reset_in_secs: 1 },
        1,
    );
    o.conn.execute(&suspend(), &CTX).unwrap();
    let sent = o.idp.requests();
    assert_eq!(sent.len(), 2, "the 429, then the retry");
    let waited = gap(sent[0].at, sent[1].at);
    // The reset is announced in whole epoch seconds one second ahead; the
    // retry must not come before it (the client adds a second of margin,
    // as Okta's SDKs do, so it comes 1–2 s later).
    assert!(
        waited >= Duration::from_millis(900),
        "retried after {waited:?}"
    );
    assert!(
        waited <= Duration::from_millis(3000),
        "retried after {waited:?}"
    );
    assert_eq!(o.idp.okta_user_status("00u1"), "SUSPENDED");
}

#[test]
fn a_rate_limit_reset_beyond_max_retry_wait_fails_at_once() {
    let mut o = okta_with(
        OKTA_TOKEN,
        Some(OKTA_BLOCKLIST_ZONE),
        HttpConfig {
            max_retry_wait_secs: 2,
            ..http()
        },
    );
    o.idp.inject(
        "POST",
        SUSPEND_PATH,
        Fault::OktaRateLimit { reset_in_secs: 30 },
        1,
    );
    let started = Instant::now();
    let err = o.conn.execute(&suspend(), &CTX).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "did not wait");
    assert_eq!(o.idp.requests().len(), 1);
    assert_eq!(err.status, Some(429));
    assert_eq!(err.vendor_code.as_deref(), Some("E0000047"));
    assert_eq!(err.attempts, 1);
    assert!(
        err.message.starts_with(
            "API call exceeded rate limit due to too many requests.; rate limit resets in "
        ),
        "{}",
        err.message
    );
    assert!(
        err.message.ends_with("more than max_retry_wait_secs = 2"),
        "{}",
        err.message
    );
    assert_eq!(o.idp.okta_user_status("00u1"), "ACTIVE");
}

#[test]
fn retry_after_is_honoured_too() {
    let mut o = okta();
    o.idp.inject(
        "DELETE",
        "/api/v1/users/",
        Fault::GraphThrottle {
            retry_after_secs: 1,
        },
        1,
    );
    o.conn.execute(&revoke(), &CTX).unwrap();
    let sent = o.idp.requests();
    assert_eq!(sent.len(), 2);
    let waited = gap(sent[0].at, sent[1].at);
    assert!(
        waited >= Duration::from_millis(900),
        "retried after {waited:?}"
    );
    assert!(
        waited <= Duration::from_millis(2500),
        "retried after {waited:?}"
    );
}

#[test]
fn a_dropped_connection_is_retried() {
    let mut o = okta();
    o.idp.inject("POST", SUSPEND_PATH, Fault::DropConnection, 1);
    o.conn.execute(&suspend(), &CTX).unwrap();
    assert_eq!(o.idp.requests().len(), 2);
    assert_eq!(o.idp.okta_user_status("00u1"), "SUSPENDED");
}

#[test]
fn persistent_drops_fail_with_a_connection_error() {
    let mut o = okta();
    o.idp.inject("*", "/api/v1/", Fault::DropConnection, 100);
    let err = o.conn.execute(&revoke(), &CTX).unwrap_err();
    assert_eq!(o.idp.requests().len(), 3);
    assert_eq!(err.status, None);
    assert_eq!(err.attempts, 3);
    assert!(
        err.message.contains("connection"),
        "names the connection failure: {}",
        err.message
    );
    assert!(!err.message.contains(OKTA_TOKEN));
    assert!(
        !err.message.contains(&o.idp.base_url()),
        "URLs are not quoted: {}",
        err.message
    );
}

/// Timeouts of 300 ms, so a 600 ms delay times out quickly.
fn impatient() -> HttpConfig {
    HttpConfig {
        timeout_ms: 300,
        ..http()
    }
}

#[test]
fn a_slow_answer_times_out_and_is_retried() {
    let mut o = okta_with(OKTA_TOKEN, None, impatient());
    o.idp.inject(
        "DELETE",
        "/api/v1/users/",
        Fault::Delay(Duration::from_millis(600)),
        1,
    );
    o.conn.execute(&revoke(), &CTX).unwrap();
    let sent = o.idp.requests();
    assert_eq!(sent.len(), 2, "the slow one, then the retry");
    assert!(gap(sent[0].at, sent[1].at) >= Duration::from_millis(300));
}

#[test]
fn persistent_slowness_fails_with_a_timeout() {
    let mut o = okta_with(
        OKTA_TOKEN,
        None,
        HttpConfig {
            max_attempts: 2,
            ..impatient()
        },
    );
    o.idp.inject(
        "*",
        "/api/v1/",
        Fault::Delay(Duration::from_millis(600)),
        100,
    );
    let err = o.conn.execute(&revoke(), &CTX).unwrap_err();
    assert_eq!(o.idp.requests().len(), 2);
    assert_eq!(err.status, None);
    assert_eq!(err.attempts, 2);
    assert!(err.message.contains("timed out"), "{}", err.message);
}

#[test]
fn client_errors_are_not_retried() {
    let mut o = okta();
    o.idp.inject("POST", SUSPEND_PATH, Fault::Status(400), 1);
    let err = o.conn.execute(&suspend(), &CTX).unwrap_err();
    assert_eq!(err.status, Some(400));
    assert_eq!(err.vendor_code.as_deref(), Some("E0000001"));
    assert_eq!(err.message, "Api validation failed");
    assert_eq!(err.attempts, 1);
    // The suspend's 400 makes the connector look at the user (is it
    // already suspended?); the POST itself is sent once.
    assert_eq!(o.idp.requests_matching("POST", "/").len(), 1);
    assert_eq!(o.idp.okta_user_status("00u1"), "ACTIVE");

    for status in [401, 403, 404] {
        o.idp.clear_requests();
        o.idp
            .inject("DELETE", "/api/v1/users/", Fault::Status(status), 1);
        let err = o.conn.execute(&revoke(), &CTX).unwrap_err();
        assert_eq!(err.status, Some(status));
        assert_eq!(err.attempts, 1);
        assert_eq!(o.idp.requests().len(), 1, "{status} is not retried");
    }
}

#[test]
fn an_action_gives_up_once_max_action_secs_would_pass() {
    let mut o = okta_with(
        OKTA_TOKEN,
        None,
        HttpConfig {
            max_attempts: 10,
            backoff_initial_ms: 400,
            backoff_max_ms: 400,
            max_action_secs: 1,
            ..http()
        },
    );
    o.idp.inject("*", "/api/v1/", Fault::Status(503), 100);
    let started = Instant::now();
    let err = o.conn.execute(&revoke(), &CTX).unwrap_err();
    // 10 attempts would take ~3 s of backoff; the 1 s bound stops it early.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let sent = o.idp.requests().len();
    assert!((2..10).contains(&sent), "{sent} requests");
    assert_eq!(err.status, Some(503));
    assert!(
        err.message.contains("max_action_secs = 1"),
        "{}",
        err.message
    );
}
