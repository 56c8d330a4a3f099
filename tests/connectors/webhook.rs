//! The webhook connector over real HTTP, against the fake receivers of
//! `FakeIdp::webhook_url`: the Slack and PagerDuty bodies, the HMAC
//! signature, retries, secret-free errors, and `check()`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tempfile::TempDir;
use vigil_host::actions::connector::{ActionContext, Connector};
use vigil_host::actions::webhook::WebhookConnector;
use vigil_host::config::connectors::{HttpConfig, WebhookConfig, WebhookFormat};
use vigil_host::model::{Action, ActionKind, Message, Severity, SuspendUser};
use vigil_test_support::fake_idp::{FakeIdp, Fault};

const HMAC_SECRET: &str = "whsec-0123456789abcdef";
const ROUTING_KEY: &str = "R0UT1NGKEY0123456789abcdefghijkl";

fn http() -> HttpConfig {
    HttpConfig {
        backoff_initial_ms: 20,
        backoff_max_ms: 100,
        timeout_ms: 1000,
        ..HttpConfig::default()
    }
}

/// A webhook named `name` whose URL is in a file (as a credential should
/// be); everything else default.
fn webhook(dir: &TempDir, name: &str, url: &str) -> WebhookConfig {
    WebhookConfig {
        name: name.into(),
        url: None,
        url_env: None,
        url_file: Some(secret_file(dir, &format!("{name}.url"), url)),
        format: WebhookFormat::Slack,
        routing_key_env: None,
        routing_key_file: None,
        hmac_secret_env: None,
        hmac_secret_file: None,
        signature_header: "X-Vigil-Signature".into(),
        actions: vec!["notify".into(), "escalate".into()],
    }
}

fn secret_file(dir: &TempDir, name: &str, value: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    path
}

fn ctx() -> ActionContext<'static> {
    ActionContext {
        action_id: "act-7f3a9c",
        rule: "mfa-push-fatigue",
        event_id: "ev-42",
        event_source: "okta",
    }
}

fn message(severity: Severity, summary: &str) -> Message {
    Message {
        severity,
        summary: summary.into(),
        details: vec![
            ("user".into(), "alice@example.com".into()),
            ("pushes".into(), "12".into()),
        ],
    }
}

fn verifies(secret: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[test]
fn slack_body_headers_and_detail() {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let mut hook = WebhookConnector::new(
        &webhook(&dir, "soc-slack", &idp.webhook_url("soc-slack")),
        &http(),
    )
    .unwrap();
    assert_eq!(hook.name(), "soc-slack");

    let done = hook
        .execute(
            &Action::Escalate(message(
                Severity::High,
                "MFA push fatigue for alice@example.com",
            )),
            &ctx(),
        )
        .unwrap();
    assert_eq!(
        done.detail,
        "webhook soc-slack: posted escalate (slack format) → 200"
    );
    assert_eq!(done.undo, None);

    let sent = idp.requests_matching("POST", "/hooks/soc-slack");
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("x-vigil-signature"),
        None,
        "no secret, no signature"
    );
    assert_eq!(r.header("x-vigil-timestamp"), None);
    assert_eq!(
        r.json(),
        json!({
            "text": "[HIGH] MFA push fatigue for alice@example.com — rule mfa-push-fatigue, event ev-42",
            "vigil": {
                "action": "escalate",
                "action_id": "act-7f3a9c",
                "rule": "mfa-push-fatigue",
                "event_id": "ev-42",
                "source": "okta",
                "severity": "high",
                "summary": "MFA push fatigue for alice@example.com",
                "details": {"user": "alice@example.com", "pushes": "12"}
            }
        })
    );
}

#[test]
fn slack_text_escapes_mrkdwn_and_stays_on_one_line() {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let mut hook =
        WebhookConnector::new(&webhook(&dir, "chat", &idp.webhook_url("chat")), &http()).unwrap();
    let hostile = "Login by <!channel> <https://evil.example/reset|Reset your password> & co\n[CRITICAL] fake line";
    hook.execute(&Action::Notify(message(Severity::Low, hostile)), &ctx())
        .unwrap();

    let body = idp.requests_matching("POST", "/hooks/chat")[0].json();
    assert_eq!(
        body["text"],
        "[LOW] Login by &lt;!channel&gt; &lt;https://evil.example/reset|Reset your password&gt; &amp; co [CRITICAL] fake line — rule mfa-push-fatigue, event ev-42"
    );
    assert_eq!(
        body["vigil"]["summary"], hostile,
        "the structured copy is raw"
    );
    assert_eq!(body["vigil"]["action"], "notify");
}

#[test]
fn pagerduty_trigger_event_with_dedup_key_and_severity_mapping() {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = webhook(&dir, "oncall", &idp.webhook_url("pd"));
    config.format = WebhookFormat::Pagerduty;
    config.routing_key_file = Some(secret_file(&dir, "rk", ROUTING_KEY));
    let mut hook = WebhookConnector::new(&config, &http()).unwrap();

    let done = hook
        .execute(
            &Action::Escalate(message(Severity::Critical, "Impossible travel for bob")),
            &ctx(),
        )
        .unwrap();
    assert_eq!(
        done.detail,
        "webhook oncall: posted escalate (pagerduty format) → 200"
    );
    let sent = idp.requests_matching("POST", "/hooks/pd");
    assert_eq!(sent[0].header("content-type"), Some("application/json"));
    assert_eq!(
        sent[0].json(),
        json!({
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": "act-7f3a9c",
            "payload": {
                "summary": "Impossible travel for bob (rule mfa-push-fatigue)",
                "source": "vigil:mfa-push-fatigue",
                "severity": "critical",
                "component": "okta",
                "group": "mfa-push-fatigue",
                "class": "escalate",
                "custom_details": {
                    "event_id": "ev-42",
                    "action_id": "act-7f3a9c",
                    "user": "alice@example.com",
                    "pushes": "12"
                }
            }
        })
    );

    for (severity, expected) in [
        (Severity::High, "error"),
        (Severity::Medium, "warning"),
        (Severity::Low, "info"),
        (Severity::Info, "info"),
    ] {
        idp.clear_requests();
        hook.execute(&Action::Notify(message(severity, "s")), &ctx())
            .unwrap();
        let body = idp.requests_matching("POST", "/hooks/pd")[0].json();
        assert_eq!(body["payload"]["severity"], expected, "{severity:?}");
        assert_eq!(body["payload"]["class"], "notify");
    }

    // PagerDuty refuses summaries over 1024 characters.
    idp.clear_requests();
    hook.execute(
        &Action::Notify(message(Severity::Info, &"x".repeat(5000))),
        &ctx(),
    )
    .unwrap();
    let body = idp.requests_matching("POST", "/hooks/pd")[0].json();
    let summary = body["payload"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), 1024);
    assert!(summary.ends_with("… (rule mfa-push-fatigue)"), "{summary}");
}

#[test]
fn hmac_signature_verifies_and_a_tampered_body_does_not() {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = webhook(&dir, "siem", &idp.webhook_url("siem"));
    config.hmac_secret_file = Some(secret_file(&dir, "hmac", HMAC_SECRET));
    config.signature_header = "X-Hub-Signature-256".into();
    let mut hook = WebhookConnector::new(&config, &http()).unwrap();
    hook.execute(&Action::Notify(message(Severity::Medium, "signed")), &ctx())
        .unwrap();

    let r = &idp.requests_matching("POST", "/hooks/siem")[0];
    let timestamp = r.header("x-vigil-timestamp").expect("timestamp header");
    let signature = r.header("x-hub-signature-256").expect("signature header");
    assert_eq!(
        r.header("x-vigil-signature"),
        None,
        "the configured name is used"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sent_at: u64 = timestamp.parse().unwrap();
    assert!(now.abs_diff(sent_at) < 60, "timestamp {sent_at}, now {now}");
    assert!(signature.starts_with("sha256="));
    assert_eq!(signature.len(), "sha256=".len() + 64);
    assert_eq!(signature, signature.to_lowercase());

    assert!(verifies(
        HMAC_SECRET,
        timestamp,
        r.body.as_bytes(),
        signature
    ));
    let tampered = r.body.replace("signed", "signeD");
    assert_ne!(tampered, r.body);
    assert!(!verifies(
        HMAC_SECRET,
        timestamp,
        tampered.as_bytes(),
        signature
    ));
    let older = (sent_at - 1).to_string();
    assert!(!verifies(HMAC_SECRET, &older, r.body.as_bytes(), signature));
    assert!(!verifies(
        "other-secret",
        timestamp,
        r.body.as_bytes(),
        signature
    ));
}

#[test]
fn a_server_error_is_retried_with_the_same_signed_body() {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = webhook(&dir, "flaky", &idp.webhook_url("flaky"));
    config.hmac_secret_file = Some(secret_file(&dir, "hmac", HMAC_SECRET));
    let mut hook = WebhookConnector::new(&config, &http()).unwrap();
    idp.inject("POST", "/hooks/flaky", Fault::Status(500), 1);

    let done = hook
        .execute(
            &Action::Escalate(message(Severity::High, "retry me")),
            &ctx(),
        )
        .unwrap();
    assert!(done.detail.ends_with("→ 200"), "{}", done.detail);
    let sent = idp.requests_matching("POST", "/hooks/flaky");
    assert_eq!(sent.len(), 2, "one 500, then the retry");
    assert_eq!(sent[0].body, sent[1].body);
    for r in &sent {
        let ts = r.header("x-vigil-timestamp").unwrap();
        let sig = r.header("x-vigil-signature").unwrap();
        assert!(verifies(HMAC_SECRET, ts, r.body.as_bytes(), sig));
    }
}

#[test]
fn a_client_error_is_not_retried_and_quotes_no_secret() {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    // A token in the query too, as some receivers take it.
    let url = format!(
        "{}?token=q-s3cr3t-token",
        idp.webhook_url("T0001-B0002-pathsecret")
    );
    let mut config = webhook(&dir, "oncall", &url);
    config.format = WebhookFormat::Pagerduty;
    config.routing_key_file = Some(secret_file(&dir, "rk", ROUTING_KEY));
    config.hmac_secret_file = Some(secret_file(&dir, "hmac", HMAC_SECRET));
    let mut hook = WebhookConnector::new(&config, &http()).unwrap();
    idp.inject("POST", "/hooks/", Fault::Status(400), 1);

    let err = hook
        .execute(&Action::Escalate(message(Severity::High, "bad")), &ctx())
        .unwrap_err();
    assert_eq!(err.status, Some(400));
    assert_eq!(err.attempts, 1);
    let sent = idp.requests_matching("POST", "/hooks/");
    assert_eq!(sent.len(), 1, "a 400 is not retried");
    assert_eq!(sent[0].query.as_deref(), Some("token=q-s3cr3t-token"));

    let text = format!("{err} {err:?}");
    for secret in [
        "pathsecret",
        "/hooks/",
        "q-s3cr3t-token",
        ROUTING_KEY,
        HMAC_SECRET,
    ] {
        assert!(!text.contains(secret), "{secret:?} in {text}");
    }
}

#[test]
fn a_redirect_is_not_followed_and_fails() {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let mut hook =
        WebhookConnector::new(&webhook(&dir, "moved", &idp.webhook_url("moved")), &http()).unwrap();
    idp.inject("POST", "/hooks/moved", Fault::Status(302), 1);

    let err = hook
        .execute(&Action::Notify(message(Severity::Info, "x")), &ctx())
        .unwrap_err();
    assert_eq!(err.status, Some(302));
    assert!(err.message.contains("not delivered"), "{err}");
    assert_eq!(idp.requests().len(), 1, "nothing followed, nothing retried");
}

#[test]
fn dropped_connections_exhaust_the_retries_without_quoting_the_url() {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let mut hook = WebhookConnector::new(
        &webhook(&dir, "down", &idp.webhook_url("down-pathsecret")),
        &http(),
    )
    .unwrap();
    idp.inject("POST", "/hooks/", Fault::DropConnection, 10);

    let err = hook
        .execute(&Action::Notify(message(Severity::Info, "x")), &ctx())
        .unwrap_err();
    assert_eq!(err.status, None);
    assert_eq!(err.attempts, http().max_attempts);
    assert_eq!(
        idp.requests_matching("POST", "/hooks/").len(),
        http().max_attempts as usize
    );
    let text = format!("{err} {err:?}");
    assert!(!text.contains("pathsecret"), "{text}");
}

#[test]
fn unsupported_kinds_are_refused_without_a_request() {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = webhook(&dir, "pager", &idp.webhook_url("pager"));
    config.actions = vec!["escalate".into()];
    let mut hook = WebhookConnector::new(&config, &http()).unwrap();

    let suspend = Action::SuspendUser(SuspendUser {
        user: "alice@example.com".into(),
        duration_secs: None,
    });
    let err = hook.execute(&suspend, &ctx()).unwrap_err();
    assert_eq!((err.status, err.attempts), (None, 0));
    assert!(err.message.contains("suspend-user"), "{err}");

    let err = hook
        .execute(&Action::Notify(message(Severity::Low, "x")), &ctx())
        .unwrap_err();
    assert_eq!((err.status, err.attempts), (None, 0));
    assert!(err.message.contains("notify"), "{err}");

    assert!(idp.requests().is_empty(), "{:?}", idp.requests());
}

#[test]
fn supports_honours_the_configured_actions() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = webhook(&dir, "pager", "https://hooks.example.com/services/T/B/x");
    config.actions = vec!["escalate".into()];
    let hook = WebhookConnector::new(&config, &http()).unwrap();
    let supported: Vec<_> = ActionKind::ALL
        .into_iter()
        .filter(|k| hook.supports(*k))
        .collect();
    assert_eq!(supported, [ActionKind::Escalate]);

    let both = WebhookConnector::new(
        &webhook(&dir, "chat", "https://hooks.example.com/services/T/B/y"),
        &http(),
    )
    .unwrap();
    let supported: Vec<_> = ActionKind::ALL
        .into_iter()
        .filter(|k| both.supports(*k))
        .collect();
    assert_eq!(supported, [ActionKind::Notify, ActionKind::Escalate]);
}

#[test]
fn check_connects_over_tcp_only() {
    let idp = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = webhook(&dir, "soc", &idp.webhook_url("soc-pathsecret"));
    config.hmac_secret_file = Some(secret_file(&dir, "hmac", HMAC_SECRET));
    let mut hook = WebhookConnector::new(&config, &http()).unwrap();
    let lines = hook.check().unwrap();
    assert_eq!(
        lines,
        [format!(
            "webhook soc: 127.0.0.1:{} reachable (TCP connect); credentials present",
            idp.addr().port()
        )]
    );
    // Give the server a moment: had anything been sent, it would be recorded.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(idp.requests().is_empty(), "check sends no HTTP request");

    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut hook = WebhookConnector::new(
        &webhook(
            &dir,
            "gone",
            &format!("http://127.0.0.1:{port}/hooks/gone-pathsecret"),
        ),
        &http(),
    )
    .unwrap();
    let err = hook.check().unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("webhook gone: 127.0.0.1:{port} is not reachable")),
        "{text}"
    );
    assert!(!text.contains("pathsecret"), "{text}");
}

#[test]
fn missing_credentials_name_the_config_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = webhook(&dir, "soc", "https://hooks.example.com/x");
    config.hmac_secret_file = Some(dir.path().join("absent"));
    let err = WebhookConnector::new(&config, &http()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("connectors.webhooks[soc].hmac_secret_file: cannot read"),
        "{err}"
    );

    let mut config = webhook(&dir, "pd", "https://events.pagerduty.com/v2/enqueue");
    config.format = WebhookFormat::Pagerduty;
    let err = WebhookConnector::new(&config, &http()).unwrap_err();
    assert!(err.to_string().contains("routing_key_env"), "{err}");
}
