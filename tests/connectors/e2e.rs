//! The `vigil` binary in enforce mode, pointed at the fake identity
//! provider: exactly the expected HTTP calls, `executed` in the audit log,
//! no second call for a replayed stream (idempotency keys survive the
//! restart), the undo of a temporary suspension performed when due, and
//! `vigil connectors check`.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use vigil_test_support::fake_idp::{FakeIdp, OKTA_TOKEN};
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const BOMBED: &str = "00upushbomb01";

/// Compiled components are content-addressed, so the tests share a cache.
fn cache_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("connectors-e2e-cache")
}

fn config(fake: &FakeIdp, token_file: &str) -> String {
    format!(
        r#"mode = "enforce"
state_path = "state.db"
builtin_pack = false
[[rules]]
builtin = "mfa-push-fatigue"
allow = ["suspend-user", "escalate"]
[connectors.http]
backoff_initial_ms = 20
backoff_max_ms = 100
timeout_ms = 2000
[connectors.okta]
base_url = "{okta}"
token_file = "{token_file}"
[[connectors.webhooks]]
name = "soc"
url = "{hook}"
"#,
        okta = fake.base_url(),
        hook = fake.webhook_url("soc"),
    )
}

fn run(wd: &Workdir, body: &str, events: &Path) -> Output {
    wd.run(VIGIL, body, events, &cache_home())
}

fn stdout(o: &Output) -> String {
    text(&o.stdout)
}

/// `(type, action, decision, executor)` of the action records.
fn action_records(records: &[Value]) -> Vec<(String, String, String, String)> {
    records
        .iter()
        .filter(|r| r["type"].as_str().is_some_and(|t| t.starts_with("action")))
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("type"), s("action"), s("decision"), s("executor"))
        })
        .collect()
}

fn quad(t: &str, a: &str, d: &str, e: &str) -> (String, String, String, String) {
    (t.into(), a.into(), d.into(), e.into())
}

#[test]
fn enforce_run_calls_okta_and_the_webhook_once_even_when_replayed() {
    let fake = FakeIdp::start();
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
    let body = config(&fake, "okta-token");
    let events = fixture("push-bombing.jsonl");

    let out = run(&wd, &body, &events);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout(&out).contains(
            "actions: accepted 2, dry-run 0, pending 0, denied 0, executed 2, failed 0, duplicate 0"
        ),
        "{}",
        stdout(&out)
    );

    // Exactly three calls: the target's lookup (checked against the
    // protected accounts under every name), the suspension by canonical
    // id, and the escalation.
    let calls: Vec<(String, String)> = fake
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("GET".to_owned(), format!("/api/v1/users/{BOMBED}")),
            (
                "POST".to_owned(),
                format!("/api/v1/users/{BOMBED}/lifecycle/suspend")
            ),
            ("POST".to_owned(), "/hooks/soc".to_owned()),
        ]
    );
    let suspend = &fake.requests()[1];
    assert_eq!(
        suspend.header("authorization"),
        Some(format!("SSWS {OKTA_TOKEN}").as_str())
    );
    assert_eq!(fake.okta_user_status(BOMBED), "SUSPENDED");
    let hook = fake.requests()[2].json();
    assert_eq!(hook["vigil"]["action"], "escalate");
    assert_eq!(hook["vigil"]["rule"], "mfa-push-fatigue");

    let records = wd.audit_records();
    assert_eq!(
        action_records(&records),
        vec![
            quad("action", "suspend-user", "accepted", ""),
            quad("action", "escalate", "accepted", ""),
            quad("action-result", "suspend-user", "executed", "okta"),
            quad("action-result", "escalate", "executed", "soc"),
        ]
    );
    let result = &records
        .iter()
        .find(|r| r["type"] == "action-result" && r["action"] == "suspend-user")
        .unwrap();
    assert!(result["undo_id"].is_i64(), "{result}");
    assert!(result["undo_due"].as_str().is_some(), "{result}");
    assert!(
        stdout(&out).contains("undos: pending 1"),
        "{}",
        stdout(&out)
    );

    // A restart over the same stream: same action ids, nothing sent again.
    // The rule's own state (restored from the store) would already keep it
    // from asking twice; drop it, as a replica without that state would
    // be (nor the ids of the events it judged), so the rule asks again and
    // the idempotency keys must hold.
    let db = rusqlite::Connection::open(wd.path().join("state.db")).unwrap();
    assert!(db.execute("DELETE FROM rule_state", []).unwrap() > 0);
    assert!(db.execute("DELETE FROM judged_ids", []).unwrap() > 0);
    drop(db);
    fake.clear_requests();
    let out = run(&wd, &body, &events);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout(&out).contains("executed 0, failed 0, duplicate 2"),
        "{}",
        stdout(&out)
    );
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    let records = wd.audit_records();
    let dups: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "action-result" && r["decision"] == "duplicate")
        .collect();
    assert_eq!(dups.len(), 2);
    assert!(
        dups[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("already executed at "),
        "{}",
        dups[0]
    );

    // Time passes: the suspension's undo falls due while Vigil is down
    // (the store's due time is moved into the past), and the next start
    // performs it before reading any event.
    let db = rusqlite::Connection::open(wd.path().join("state.db")).unwrap();
    assert_eq!(
        db.execute("UPDATE undos SET due_ms = 0 WHERE state = 'pending'", [])
            .unwrap(),
        1
    );
    drop(db);
    let empty = wd.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = run(&wd, &body, &empty);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout(&out).contains("undos: executed 1, pending 0"),
        "{}",
        stdout(&out)
    );
    let calls: Vec<(String, String)> = fake
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        vec![(
            "POST".to_owned(),
            format!("/api/v1/users/{BOMBED}/lifecycle/unsuspend")
        )]
    );
    assert_eq!(fake.okta_user_status(BOMBED), "ACTIVE");
    let records = wd.audit_records();
    let undo = records.iter().find(|r| r["type"] == "action-undo").unwrap();
    assert_eq!(undo["decision"], "executed");
    assert_eq!(undo["action"], "unsuspend-user");
    assert_eq!(undo["target"], BOMBED);
    assert_eq!(undo["undoes"], result["action_id"]);
    assert_eq!(undo["undo_id"], result["undo_id"]);
    vigil_host::audit::verify(&wd.audit_path()).expect("the chain holds across the runs");

    // The token never reaches the audit log.
    let log = std::fs::read_to_string(wd.audit_path()).unwrap();
    assert!(!log.contains(OKTA_TOKEN));
}

#[test]
fn a_rejected_token_is_audited_with_the_vendor_error_and_no_secret() {
    let fake = FakeIdp::start();
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), "not-the-token-xyz").unwrap();
    let out = run(
        &wd,
        &config(&fake, "okta-token"),
        &fixture("push-bombing.jsonl"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The token is refused at the target's lookup, so the suspension is
    // never sent (fail closed: a target that cannot be resolved cannot be
    // checked against the protected accounts).
    assert!(
        stdout(&out).contains("denied 1, executed 1, failed 0"),
        "{}",
        stdout(&out)
    );
    let records = wd.audit_records();
    let denied = records
        .iter()
        .find(|r| r["type"] == "action-result" && r["decision"] == "denied")
        .unwrap();
    assert_eq!(denied["action"], "suspend-user");
    assert_eq!(denied["reason"], "unresolved");
    assert_eq!(denied["http_status"], 401);
    assert_eq!(denied["vendor_code"], "E0000011");
    assert_eq!(denied["attempts"], 1, "a 401 is not retried");
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .contains("Invalid token provided"),
        "{denied}"
    );
    // One lookup, no suspend attempt, and the wrong token is nowhere in
    // the log.
    assert_eq!(fake.requests_matching("GET", "/api/v1/users").len(), 1);
    assert_eq!(fake.requests_matching("POST", "/api/v1/users").len(), 0);
    let log = std::fs::read_to_string(wd.audit_path()).unwrap();
    assert!(!log.contains("not-the-token-xyz"));
}

#[test]
fn connectors_check_proves_credentials_without_changing_anything() {
    let fake = FakeIdp::start();
    fake.set_okta_group_members(
        "00gbreakglass",
        &[("00ubg1", "bg1@example.com"), ("00ubg2", "bg2@example.com")],
    );
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), OKTA_TOKEN).unwrap();
    let cfg = wd.config(&format!(
        "{}\n[protected]\ngroups = [\"okta:00gbreakglass\"]\n",
        config(&fake, "okta-token")
    ));
    let out = vigil(
        VIGIL,
        &["connectors", "check", "--config", cfg.to_str().unwrap()],
        wd.path(),
        &cache_home(),
    );
    let text_out = stdout(&out);
    assert!(out.status.success(), "{text_out}{}", text(&out.stderr));
    assert!(text_out.contains("ok    okta:"), "{text_out}");
    assert!(text_out.contains("ok    soc:"), "{text_out}");
    assert!(
        text_out.contains("ok    okta: protected group okta:00gbreakglass lists 2 members"),
        "{text_out}"
    );
    assert!(
        text_out.contains("suspend-user     okta events → okta, entra events → none"),
        "{text_out}"
    );
    assert!(
        text_out.contains("escalate         okta events → soc, entra events → soc"),
        "{text_out}"
    );
    assert!(
        fake.requests().iter().all(|r| r.method == "GET"),
        "check only reads: {:?}",
        fake.requests()
    );

    std::fs::write(wd.path().join("okta-token"), "wrong").unwrap();
    let out = vigil(
        VIGIL,
        &["connectors", "check", "--config", cfg.to_str().unwrap()],
        wd.path(),
        &cache_home(),
    );
    assert_eq!(out.status.code(), Some(1));
    let text_out = stdout(&out);
    assert!(
        text_out.contains("FAIL  okta: HTTP 401 E0000011")
            && text_out.contains("Invalid token provided"),
        "{text_out}"
    );

    // A credential named but missing stops before any request.
    let missing = wd.config(&config(&fake, "no-such-file"));
    let out = vigil(
        VIGIL,
        &["connectors", "check", "--config", missing.to_str().unwrap()],
        wd.path(),
        &cache_home(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("connectors.okta.token_file: cannot read"),
        "{}",
        text(&out.stderr)
    );
}
