//! Protected accounts under any name, through the real `vigil` binary and
//! the fake IdP's user directory: the hostile guest `guest-requester` asks
//! to act on break-glass accounts by an id in another case, a login, a
//! login shortname, a shortname matching a protected login pattern, a
//! protected group member's login, a Graph UPN whose alias is protected —
//! and on accounts whose name cannot be resolved. Each attack must send
//! zero mutating requests and raise one escalation; a normal user named by
//! login must be acted on by canonical id; the log connector must say that
//! no resolution was possible; an approved action is resolved again.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use vigil_test_support::fake_idp::{
    FakeIdp, Fault, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET, OKTA_TOKEN, Recorded,
};
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// Compiled components are content-addressed, so the tests share a cache.
pub(crate) fn cache_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("connectors-resolution-cache")
}

/// An enforce-mode config: `guest-requester` asking for `action` on
/// `targets`, the registry in `protected`, Okta (and Graph) on the fake,
/// a `soc` webhook for escalations, then `extra`.
pub(crate) fn config(
    fake: &FakeIdp,
    protected: &str,
    rule: &str,
    rule_config: &str,
    extra: &str,
) -> String {
    format!(
        r#"mode = "enforce"
state_path = "state.db"
builtin_pack = false
[protected]
{protected}
[[rules]]
path = {guest:?}
{rule}
config = {{ {rule_config} }}
[connectors.http]
backoff_initial_ms = 10
backoff_max_ms = 20
max_attempts = 2
timeout_ms = 2000
[connectors.okta]
base_url = "{okta}"
token_file = "okta-token"
blocklist_zone = "nzoblocklist1"
[connectors.graph]
base_url = "{graph}"
token_url = "{token}"
client_id = "{GRAPH_CLIENT_ID}"
client_secret_file = "graph-secret"
[[connectors.webhooks]]
name = "soc"
url = "{hook}"
{extra}
"#,
        guest = GUEST_REQUESTER,
        okta = fake.base_url(),
        graph = fake.graph_url(),
        token = fake.token_url(),
        hook = fake.webhook_url("soc"),
    )
}

pub(crate) fn workdir() -> Workdir {
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), OKTA_TOKEN).unwrap();
    std::fs::write(wd.path().join("graph-secret"), GRAPH_CLIENT_SECRET).unwrap();
    wd
}

/// One Okta event about someone else (the rule's targets come from its
/// config, so the event gives no alias of them).
pub(crate) fn okta_event(wd: &Workdir) -> PathBuf {
    let event = json!({
        "uuid": "evt-res-1",
        "published": "2026-03-07T10:00:00.000Z",
        "eventType": "user.session.start",
        "actor": {"id": "00ubystander", "type": "User", "alternateId": "bystander@corp.example"},
        "client": {"ipAddress": "198.51.100.77"},
        "outcome": {"result": "SUCCESS"},
        "target": [],
    });
    write(wd, "okta.jsonl", &[event])
}

/// One Entra sign-in of someone else.
fn entra_event(wd: &Workdir) -> PathBuf {
    let event = json!({
        "id": "entra-res-1",
        "createdDateTime": "2026-03-07T10:00:00Z",
        "userPrincipalName": "bystander@contoso.com",
        "userId": "obj-bystander",
        "ipAddress": "198.51.100.78",
        "clientAppUsed": "Browser",
        "status": {"errorCode": 0},
    });
    write(wd, "entra.jsonl", &[event])
}

pub(crate) fn write(wd: &Workdir, name: &str, events: &[Value]) -> PathBuf {
    let path = wd.path().join(name);
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

pub(crate) fn run(wd: &Workdir, body: &str, events: &Path) -> Output {
    let out = wd.run(VIGIL, body, events, &cache_home());
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Requests that change something at the IdP (everything but reads,
/// token requests and webhooks).
pub(crate) fn mutating(fake: &FakeIdp) -> Vec<Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| {
            r.method != "GET" && (r.path.starts_with("/api/") || r.path.starts_with("/v1.0/"))
        })
        .collect()
}

/// The escalations the host raised (`origin: host`), by target.
pub(crate) fn host_escalations(wd: &Workdir) -> Vec<Value> {
    wd.records_of("action")
        .into_iter()
        .filter(|r| r["origin"] == "host")
        .collect()
}

/// The target each host escalation names, sorted.
fn escalated_targets(wd: &Workdir) -> Vec<String> {
    let mut targets: Vec<String> = host_escalations(wd)
        .iter()
        .map(|r| {
            let details = &r["params"]["details"];
            details["target"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    targets.sort();
    targets
}

/// The `protected` denials, gate-time (`action`) and execution-time
/// (`action-result`), by target.
fn protected_denials(wd: &Workdir) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = wd
        .audit_records()
        .into_iter()
        .filter(|r| r["decision"] == "denied" && r["reason"] == "protected")
        .map(|r| {
            (
                r["target"].as_str().unwrap_or_default().to_owned(),
                r["type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The fake org's break-glass directory.
fn okta_directory(fake: &FakeIdp) {
    fake.add_okta_user("00uBgId1", "bg.id@corp.example", None, None);
    fake.add_okta_user("00ubglogin", "bg.login@corp.example", None, None);
    fake.add_okta_user("00ubgshort", "bg.short@corp.example", None, None);
    fake.add_okta_user("00uops1", "breakglass-ops@corp.example", None, None);
    fake.add_okta_user("00ugm1", "gm1@corp.example", None, None);
    fake.set_okta_group_members("00gbreakglass", &[("00ugm1", "gm1@corp.example")]);
    fake.add_okta_user(
        "00unorma1",
        "norma@corp.example",
        None,
        Some("norma.home@mail.example"),
    );
}

const OKTA_PROTECTED: &str = r#"ids = ["00uBgId1", "00ubglogin", "00ubgshort"]
logins = ["breakglass-*@corp.example"]
groups = ["okta:00gbreakglass"]"#;

#[test]
fn okta_protected_accounts_are_never_reached_under_another_name() {
    let fake = FakeIdp::start();
    okta_directory(&fake);
    let wd = workdir();
    let targets = "00UBGID1, BG.Login@corp.example, bg.short, breakglass-ops, gm1@corp.example, \
                   norma@corp.example";
    let body = config(
        &fake,
        OKTA_PROTECTED,
        r#"allow = ["suspend-user"]"#,
        &format!(r#"action = "suspend-user", targets = "{targets}""#),
        "",
    );
    run(&wd, &body, &okta_event(&wd));

    // Exactly one change at the IdP: the normal user, by canonical id.
    let changes: Vec<(String, String)> = mutating(&fake)
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        changes,
        [(
            "POST".to_owned(),
            "/api/v1/users/00unorma1/lifecycle/suspend".to_owned()
        )]
    );
    assert_eq!(fake.okta_user_status("00unorma1"), "SUSPENDED");
    for id in ["00uBgId1", "00ubglogin", "00ubgshort", "00uops1", "00ugm1"] {
        assert_eq!(fake.okta_user_status(id), "ACTIVE", "{id}");
    }

    // Every attack denied as protected: the two the event-blind gate can
    // see by name at once, the three others once resolved.
    assert_eq!(
        protected_denials(&wd),
        [
            ("00UBGID1".to_owned(), "action".to_owned()),
            (
                "BG.Login@corp.example".to_owned(),
                "action-result".to_owned()
            ),
            ("bg.short".to_owned(), "action-result".to_owned()),
            ("breakglass-ops".to_owned(), "action-result".to_owned()),
            ("gm1@corp.example".to_owned(), "action".to_owned()),
        ]
    );
    let records = wd.audit_records();
    let short = records
        .iter()
        .find(|r| r["type"] == "action-result" && r["target"] == "bg.short")
        .unwrap();
    assert_eq!(short["executor"], "okta");
    assert_eq!(short["resolution"]["id"], "00ubgshort");
    assert!(
        short["message"]
            .as_str()
            .unwrap()
            .contains("is 00ubgshort (bg.short@corp.example, bg.short) in okta, a protected account (protected id 00ubgshort)"),
        "{short}"
    );
    let ops = records
        .iter()
        .find(|r| r["type"] == "action-result" && r["target"] == "breakglass-ops")
        .unwrap();
    assert!(
        ops["message"].as_str().unwrap().contains(
            "protected login pattern breakglass-*@corp.example, as breakglass-ops@corp.example"
        ),
        "{ops}"
    );

    // One escalation per attack, sent, naming the target (and the id it
    // resolved to).
    assert_eq!(
        escalated_targets(&wd),
        [
            "00UBGID1",
            "BG.Login@corp.example",
            "bg.short",
            "breakglass-ops",
            "gm1@corp.example"
        ]
    );
    assert_eq!(fake.requests_matching("POST", "/hooks/soc").len(), 5);
    let login = host_escalations(&wd)
        .into_iter()
        .find(|r| r["params"]["details"]["target"] == "BG.Login@corp.example")
        .unwrap();
    assert_eq!(login["params"]["details"]["resolved_id"], "00ubglogin");

    // The normal user's result names the id it was sent as, and every
    // name it was checked under.
    let normal = records
        .iter()
        .find(|r| r["type"] == "action-result" && r["target"] == "norma@corp.example")
        .unwrap();
    assert_eq!(normal["decision"], "executed");
    assert_eq!(
        normal["resolution"],
        json!({"status": "resolved", "id": "00unorma1",
               "names": ["norma@corp.example", "norma", "norma.home@mail.example"]})
    );
    vigil_host::audit::verify(&wd.audit_path()).unwrap();

    // The same attacks again an hour-window later: denied again, but no
    // second escalation (one per rule and account per hour).
    fake.clear_requests();
    let again = write(
        &wd,
        "again.jsonl",
        &[json!({
            "uuid": "evt-res-2",
            "published": "2026-03-07T10:05:00.000Z",
            "eventType": "user.session.start",
            "actor": {"id": "00ubystander", "type": "User"},
            "outcome": {"result": "SUCCESS"},
        })],
    );
    run(&wd, &body, &again);
    assert!(
        mutating(&fake)
            .iter()
            .all(|r| r.path == "/api/v1/users/00unorma1/lifecycle/suspend"),
        "{:?}",
        mutating(&fake)
    );
    assert_eq!(fake.requests_matching("POST", "/hooks/soc").len(), 0);
    assert_eq!(host_escalations(&wd).len(), 5);
}

#[test]
fn a_protected_member_named_by_login_is_never_added_to_a_group() {
    let fake = FakeIdp::start();
    okta_directory(&fake);
    let wd = workdir();
    let body = config(
        &fake,
        OKTA_PROTECTED,
        r#"allow = ["add-to-group"]
groups = ["00g1mfaremediation"]"#,
        r#"action = "add-to-group", group = "00g1mfaremediation", targets = "bg.short, gm1@corp.example, norma""#,
        "",
    );
    run(&wd, &body, &okta_event(&wd));
    let changes: Vec<(String, String)> = mutating(&fake)
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        changes,
        [(
            "PUT".to_owned(),
            "/api/v1/groups/00g1mfaremediation/users/00unorma1".to_owned()
        )]
    );
    assert_eq!(escalated_targets(&wd), ["bg.short", "gm1@corp.example"]);
}

#[test]
fn a_graph_upn_whose_alias_is_protected_is_never_disabled() {
    let fake = FakeIdp::start();
    fake.add_graph_user(
        "obj-bg-1",
        "bg.admin@contoso.com",
        Some("bg.admin@contoso.com"),
        &["bg.personal@mail.example"],
        &["SMTP:bg.admin@contoso.com", "smtp:breakglass@contoso.com"],
    );
    fake.add_graph_user("obj-norm-1", "norm@contoso.com", None, &[], &[]);
    let wd = workdir();
    let body = config(
        &fake,
        r#"logins = ["breakglass@contoso.com"]"#,
        r#"allow = ["suspend-user", "revoke-sessions"]"#,
        r#"action = "suspend-user", targets = "BG.Admin@contoso.com, NORM@contoso.com""#,
        "",
    );
    run(&wd, &body, &entra_event(&wd));

    let changes: Vec<(String, String)> = mutating(&fake)
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        changes,
        [("PATCH".to_owned(), "/v1.0/users/obj-norm-1".to_owned())]
    );
    assert!(fake.graph_account_enabled("obj-bg-1"));
    assert!(!fake.graph_account_enabled("obj-norm-1"));
    // The lookup asked Graph for every name field.
    let lookup = fake
        .requests_matching("GET", "/v1.0/users/BG.Admin@contoso.com")
        .pop()
        .unwrap();
    assert_eq!(
        lookup.query_param("$select").as_deref(),
        Some("id,userPrincipalName,mail,otherMails,proxyAddresses")
    );
    let denied = wd
        .records_of("action-result")
        .into_iter()
        .find(|r| r["target"] == "BG.Admin@contoso.com")
        .unwrap();
    assert_eq!(
        (denied["decision"].as_str(), denied["reason"].as_str()),
        (Some("denied"), Some("protected"))
    );
    assert_eq!(denied["executor"], "graph");
    assert_eq!(
        denied["resolution"]["names"],
        json!([
            "bg.admin@contoso.com",
            "bg.personal@mail.example",
            "breakglass@contoso.com"
        ])
    );
    assert_eq!(escalated_targets(&wd), ["BG.Admin@contoso.com"]);
}

#[test]
fn a_target_that_cannot_be_resolved_is_denied_and_nothing_is_sent() {
    let fake = FakeIdp::start();
    // 500 on both attempts; the connection dropped on both attempts.
    fake.inject("GET", "/api/v1/users/00u500", Fault::Status(500), 2);
    fake.inject("GET", "/api/v1/users/00udrop", Fault::DropConnection, 2);
    let wd = workdir();
    let body = config(
        &fake,
        "",
        r#"allow = ["reset-factors"]"#,
        r#"action = "reset-factors", targets = "missing-bg, 00u500, 00udrop""#,
        "",
    );
    let out = run(&wd, &body, &okta_event(&wd));
    assert!(mutating(&fake).is_empty(), "{:?}", mutating(&fake));
    assert!(
        text(&out.stdout).contains("accepted 3, dry-run 0, pending 0, denied 3, executed 0"),
        "{}",
        text(&out.stdout)
    );
    let results = wd.records_of("action-result");
    let by = |t: &str| results.iter().find(|r| r["target"] == t).unwrap().clone();
    let missing = by("missing-bg");
    assert_eq!(
        (missing["decision"].as_str(), missing["reason"].as_str()),
        (Some("denied"), Some("unresolved"))
    );
    assert_eq!(missing["http_status"], 404);
    assert_eq!(missing["attempts"], 1, "a 404 is not retried");
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("could not be resolved through okta"),
        "{missing}"
    );
    let five = by("00u500");
    assert_eq!(five["reason"], "unresolved");
    assert_eq!(five["http_status"], 500);
    assert_eq!(five["attempts"], 2);
    let dropped = by("00udrop");
    assert_eq!(dropped["reason"], "unresolved");
    assert!(dropped.get("http_status").is_none(), "{dropped}");
    // Not protected, just unknown: no escalation.
    assert!(host_escalations(&wd).is_empty());
}

#[test]
fn the_log_connector_says_no_resolution_was_possible() {
    let fake = FakeIdp::start();
    let wd = workdir();
    let body = format!(
        r#"mode = "enforce"
state_path = "state.db"
builtin_pack = false
[[rules]]
path = {GUEST_REQUESTER:?}
allow = ["revoke-sessions"]
config = {{ action = "revoke-sessions", targets = "alice@corp.example" }}
"#
    );
    run(&wd, &body, &okta_event(&wd));
    assert!(fake.requests().is_empty());
    let result = wd.records_of("action-result").pop().unwrap();
    assert_eq!(result["decision"], "executed");
    assert_eq!(result["executor"], "log");
    assert_eq!(result["resolution"]["status"], "not-possible");
    assert!(
        result["resolution"]["note"]
            .as_str()
            .unwrap()
            .contains("the log connector has no user directory"),
        "{result}"
    );
}

#[test]
fn an_approved_action_is_resolved_again_before_it_runs() {
    let fake = FakeIdp::start();
    okta_directory(&fake);
    let wd = workdir();
    let body = config(
        &fake,
        OKTA_PROTECTED,
        r#"allow = ["suspend-user"]
approval = ["suspend-user"]"#,
        r#"action = "suspend-user", targets = "bg.short""#,
        "",
    );
    run(&wd, &body, &okta_event(&wd));
    // Parked: the gate saw only the shortname.
    let pending = wd.records_of("action").pop().unwrap();
    assert_eq!(pending["decision"], "pending");
    let id = pending["action_id"].as_str().unwrap().to_owned();

    let config = wd.path().join("vigil.toml");
    let out = vigil(
        VIGIL,
        &[
            "approvals",
            "approve",
            &id,
            "--by",
            "alice",
            "--config",
            config.to_str().unwrap(),
        ],
        wd.path(),
        &cache_home(),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(&format!("approved {id}: denied")),
        "{}",
        text(&out.stdout)
    );
    assert!(mutating(&fake).is_empty(), "{:?}", mutating(&fake));
    assert_eq!(
        protected_denials(&wd),
        [("bg.short".to_owned(), "action-result".to_owned())]
    );
    assert_eq!(escalated_targets(&wd), ["bg.short"]);
    assert_eq!(fake.requests_matching("POST", "/hooks/soc").len(), 1);
}

#[test]
fn the_service_resolves_on_its_executor_thread_too() {
    // In the service, connectors run on a worker thread: the check must
    // be wired there as well.
    let fake = FakeIdp::start();
    okta_directory(&fake);
    let wd = workdir();
    okta_event(&wd);
    let body = config(
        &fake,
        OKTA_PROTECTED,
        r#"allow = ["suspend-user"]"#,
        r#"action = "suspend-user", targets = "bg.short, norma@corp.example""#,
        "[server]\nlisten = \"127.0.0.1:0\"\n[[sources]]\ntype = \"file\"\npath = \"okta.jsonl\"\n",
    );
    let config = wd.config(&body);
    let mut child = std::process::Command::new(VIGIL)
        .args(["run", "--config", config.to_str().unwrap()])
        .current_dir(wd.path())
        .env("XDG_CACHE_HOME", cache_home())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (generously) for both results and the escalation's result.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let done = loop {
        let results = wd.records_of("action-result");
        if results.len() >= 3 {
            break results;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the service wrote {results:?}");
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the service exited: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();

    let changes: Vec<String> = mutating(&fake).into_iter().map(|r| r.path).collect();
    assert_eq!(changes, ["/api/v1/users/00unorma1/lifecycle/suspend"]);
    let shortname = done.iter().find(|r| r["target"] == "bg.short").unwrap();
    assert_eq!(
        (shortname["decision"].as_str(), shortname["reason"].as_str()),
        (Some("denied"), Some("protected"))
    );
    assert_eq!(escalated_targets(&wd), ["bg.short"]);
    assert_eq!(fake.requests_matching("POST", "/hooks/soc").len(), 1);
}
