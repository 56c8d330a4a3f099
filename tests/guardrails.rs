//! Guardrails end to end, through the real `vigil` binary and the fake
//! identity provider: protected accounts, blast-radius budgets and the
//! circuit breaker, durable state across kill -9, approvals, and the
//! operator commands (`vigil actions|approvals|breaker`).
//!
//! The acting rule is the hostile test guest `guest-protected`, which asks
//! to suspend (for 30 minutes) the subject of every event it sees.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_test_support::fake_idp::{FakeIdp, OKTA_TOKEN};
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

fn cache_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("guardrails-cache")
}

/// An enforce-mode config: the suspending guest, Okta and a webhook on the
/// fake IdP, then `extra`.
fn config(fake: &FakeIdp, rule_extra: &str, extra: &str) -> String {
    format!(
        r#"mode = "enforce"
state_path = "state.db"
builtin_pack = false
{extra_top}
[protected]
ids = ["00ubreakglass1"]
logins = ["breakglass-*@example.com"]
[[rules]]
path = {guest:?}
allow = ["suspend-user"]
{rule_extra}
[connectors.http]
backoff_initial_ms = 20
backoff_max_ms = 100
[connectors.okta]
base_url = "{okta}"
token_file = "okta-token"
[[connectors.webhooks]]
name = "soc"
url = "{hook}"
{extra}
"#,
        extra_top = "",
        guest = GUEST_PROTECTED,
        okta = fake.base_url(),
        hook = fake.webhook_url("soc"),
    )
}

fn workdir() -> Workdir {
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), OKTA_TOKEN).unwrap();
    wd
}

/// A denied Okta push for `user` (id and login), `n` seconds into the day.
fn push_denied(user: &str, login: &str, n: usize) -> Value {
    json!({
        "uuid": format!("evt-{user}-{n}"),
        "published": format!("2026-03-07T{:02}:{:02}:{:02}.000Z", n / 3600 % 24, n / 60 % 60, n % 60),
        "eventType": "user.mfa.okta_verify.deny_push",
        "actor": {"id": user, "type": "User", "alternateId": login, "displayName": user},
        "client": {"ipAddress": "203.0.113.45"},
        "outcome": {"result": "FAILURE", "reason": "User rejected Okta push verify"},
        "target": [],
    })
}

fn write_events(wd: &Workdir, name: &str, events: &[Value]) -> PathBuf {
    let path = wd.path().join(name);
    let text: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    path
}

fn users(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            push_denied(
                &format!("00u{prefix}{i:04}"),
                &format!("{prefix}{i}@example.com"),
                i,
            )
        })
        .collect()
}

fn run(wd: &Workdir, body: &str, events: &Path) -> Output {
    let out = wd.run(VIGIL, body, events, &cache_home());
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

fn cli(wd: &Workdir, args: &[&str]) -> Output {
    let config = wd.path().join("vigil.toml");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    vigil(VIGIL, &all, wd.path(), &cache_home())
}

fn records(wd: &Workdir, kind: &str, field: &str, value: &str) -> Vec<Value> {
    wd.records_of(kind)
        .into_iter()
        .filter(|r| r[field] == value)
        .collect()
}

fn suspend_calls(fake: &FakeIdp) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/lifecycle/suspend"))
        .count()
}

#[test]
fn a_rule_aiming_at_break_glass_100_times_gets_100_denials_and_one_escalation() {
    let fake = FakeIdp::start();
    let wd = workdir();
    let events: Vec<Value> = (0..100)
        .map(|i| push_denied("00ubreakglass1", "breakglass-admin@example.com", i))
        .collect();
    let events = write_events(&wd, "events.jsonl", &events);
    let out = run(&wd, &config(&fake, "", ""), &events);

    // No connector call at all against the account.
    assert_eq!(suspend_calls(&fake), 0, "{:?}", fake.requests());
    let suspends: Vec<Value> = records(&wd, "action", "action", "suspend-user");
    assert_eq!(suspends.len(), 100);
    assert!(
        suspends
            .iter()
            .all(|a| a["decision"] == "denied" && a["reason"] == "protected"),
        "{suspends:?}"
    );
    // The attack is not ignored: one escalation, raised by the host, sent.
    let host = records(&wd, "action", "origin", "host");
    assert_eq!(host.len(), 1, "{host:?}");
    assert_eq!(host[0]["action"], "escalate");
    let hooks = fake.requests_matching("POST", "/hooks/soc");
    assert_eq!(hooks.len(), 1);
    assert!(
        hooks[0].json()["vigil"]["summary"]
            .as_str()
            .unwrap()
            .contains("protected account 00ubreakglass1"),
        "{}",
        hooks[0].body
    );
    assert!(
        text(&out.stdout).contains("denied 100"),
        "{}",
        text(&out.stdout)
    );
    vigil_host::audit::verify(&wd.audit_path()).unwrap();
}

#[test]
fn a_flood_is_cut_at_the_budget_and_the_breaker_holds_the_rule_until_reset() {
    let fake = FakeIdp::start();
    let wd = workdir();
    // The flood must fit in one budget window however slow the machine
    // is: a minute. The later runs shorten the window (the usage is kept
    // in the store with its time) to see what happens after it.
    let body = config(&fake, "", "[budgets]\nwindow_secs = 60\n");
    let flood = write_events(&wd, "flood.jsonl", &users("flood", 500));
    run(&wd, &body, &flood);
    let finished = Instant::now();

    // Exactly the per-rule budget (10 suspensions) reached Okta.
    assert_eq!(suspend_calls(&fake), 10);
    let suspends = records(&wd, "action", "action", "suspend-user");
    assert_eq!(suspends.len(), 500);
    let decided = |d: &str| suspends.iter().filter(|a| a["decision"] == d).count();
    assert_eq!((decided("accepted"), decided("denied")), (10, 490));
    assert!(
        suspends
            .iter()
            .filter(|a| a["decision"] == "denied")
            .all(|a| a["reason"] == "budget"),
    );
    // Tripped once, audited once, escalated once.
    let trips = wd.records_of("breaker-tripped");
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0]["rule"], "guest-protected");
    assert!(
        trips[0]["reason"]
            .as_str()
            .unwrap()
            .contains("budget of rule guest-protected: 10 of 10 suspend-user per 60 s"),
        "{}",
        trips[0]
    );
    let hooks = fake.requests_matching("POST", "/hooks/soc");
    assert_eq!(
        hooks.len(),
        1,
        "{:?}",
        hooks.iter().map(|h| &h.body).collect::<Vec<_>>()
    );
    let listed = text(&cli(&wd, &["breaker", "list"]).stdout);
    assert!(listed.starts_with("guest-protected\ttripped "), "{listed}");
    let rules = text(&cli(&wd, &["rules", "list"]).stdout);
    assert!(rules.contains("\tstatus=breaker-tripped\t"), "{rules}");

    // After the window the budget has room again, but the tripped rule is
    // held in audit-only (a restart does not clear the breaker).
    let body = config(&fake, "", "[budgets]\nwindow_secs = 1\n");
    let wait = Duration::from_millis(1_200).saturating_sub(finished.elapsed());
    std::thread::sleep(wait);
    let more = write_events(&wd, "more.jsonl", &users("more", 3));
    let out = run(&wd, &body, &more);
    assert!(
        text(&out.stdout).contains("dry-run 3"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(suspend_calls(&fake), 10);
    let held = records(
        &wd,
        "action",
        "reason",
        "granted; breaker tripped, held in audit-only",
    );
    assert_eq!(held.len(), 3);

    // An operator resets it: the rule enforces again, and the reset is
    // audited with who did it.
    let out = cli(
        &wd,
        &["breaker", "reset", "guest-protected", "--by", "alice"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resets = wd.records_of("breaker-reset");
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0]["by"], "alice");
    let again = write_events(&wd, "again.jsonl", &users("again", 2));
    run(&wd, &body, &again);
    assert_eq!(suspend_calls(&fake), 12);
    vigil_host::audit::verify(&wd.audit_path()).unwrap();
}

/// Feeds events to `vigil run --events -` one by one.
struct Streaming {
    child: std::process::Child,
}

impl Streaming {
    fn start(wd: &Workdir) -> Self {
        let config = wd.path().join("vigil.toml");
        let child = Command::new(VIGIL)
            .args(["run", "--config", config.to_str().unwrap(), "--events", "-"])
            .current_dir(wd.path())
            .env("XDG_CACHE_HOME", cache_home())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Streaming { child }
    }

    fn send(&mut self, event: &Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{event}").unwrap();
        stdin.flush().unwrap();
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_loses_no_undo_and_runs_no_action_twice() {
    let fake = FakeIdp::start();
    let wd = workdir();
    let body = config(&fake, "", "");
    wd.config(&body);
    let first = users("crash", 5);

    let mut vigil_proc = Streaming::start(&wd);
    for e in &first {
        vigil_proc.send(e);
    }
    wait_for("5 suspensions and their results", || {
        suspend_calls(&fake) == 5 && wd.records_of("action-result").len() == 5
    });
    // kill -9: no chance to flush or clean up.
    vigil_proc.child.kill().unwrap();
    vigil_proc.child.wait().unwrap();
    vigil_host::audit::verify(&wd.audit_path()).expect("the chain survives kill -9");
    let listed = text(&cli(&wd, &["actions", "list"]).stdout);
    assert_eq!(listed.lines().count(), 6, "header + 5 undos:\n{listed}");

    // Restart over the same events plus three new ones: only the new ones
    // are sent (the rule's state and the idempotency keys both survived).
    let mut replay = first.clone();
    replay.extend(users("late", 3));
    let replay = write_events(&wd, "replay.jsonl", &replay);
    let out = run(&wd, &body, &replay);
    assert_eq!(suspend_calls(&fake), 8, "{}", text(&out.stdout));

    // An operator lifts one suspension early.
    let listed = text(&cli(&wd, &["actions", "list"]).stdout);
    assert_eq!(listed.lines().count(), 9, "{listed}");
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    let out = cli(&wd, &["actions", "undo", &id, "--by", "bob"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let early = records(&wd, "action-undo", "by", "bob");
    assert_eq!(early.len(), 1);
    assert_eq!(early[0]["decision"], "executed");

    // The others fall due (their due time is moved into the past, as if
    // Vigil had been stopped for 30 minutes): the next start undoes them.
    let db = rusqlite::Connection::open(wd.path().join("state.db")).unwrap();
    let moved = db
        .execute("UPDATE undos SET due_ms = 0 WHERE state = 'pending'", [])
        .unwrap();
    assert_eq!(moved, 7);
    drop(db);
    let empty = write_events(&wd, "empty.jsonl", &[]);
    run(&wd, &body, &empty);
    let unsuspends = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/lifecycle/unsuspend"))
        .count();
    assert_eq!(unsuspends, 8);
    let undone = records(&wd, "action-undo", "decision", "executed");
    assert_eq!(undone.len(), 8);
    // Every undo names the action it reverses, and each action was
    // executed exactly once.
    let executed: Vec<Value> = records(&wd, "action-result", "decision", "executed");
    assert_eq!(executed.len(), 8);
    for u in &undone {
        assert_eq!(
            executed
                .iter()
                .filter(|e| e["action_id"] == u["undoes"])
                .count(),
            1,
            "{u}"
        );
    }
    assert!(text(&cli(&wd, &["actions", "list"]).stdout).contains("no temporary actions"));
    vigil_host::audit::verify(&wd.audit_path()).unwrap();
}

#[test]
fn approvals_park_execute_on_approve_never_on_reject_or_expiry() {
    let fake = FakeIdp::start();
    let wd = workdir();
    let body = config(&fake, "approval = [\"suspend-user\"]", "");
    let events = write_events(&wd, "events.jsonl", &users("appr", 3));
    let out = run(&wd, &body, &events);
    assert!(
        text(&out.stdout).contains("pending"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(suspend_calls(&fake), 0, "nothing runs before approval");
    let pending = records(&wd, "action", "decision", "pending");
    assert_eq!(pending.len(), 3);
    let ids: Vec<String> = pending
        .iter()
        .map(|a| a["action_id"].as_str().unwrap().to_owned())
        .collect();
    let listed = text(&cli(&wd, &["approvals", "list"]).stdout);
    assert_eq!(listed.lines().count(), 4, "{listed}");
    assert!(ids.iter().all(|id| listed.contains(id.as_str())));

    // Approve the first: executed through the gate, audited with who.
    let out = cli(&wd, &["approvals", "approve", &ids[0], "--by", "carol"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(suspend_calls(&fake), 1);
    let approval = records(&wd, "approval", "action_id", &ids[0]);
    assert_eq!(approval.len(), 1);
    assert_eq!(
        (approval[0]["decision"].as_str(), approval[0]["by"].as_str()),
        (Some("approved"), Some("carol"))
    );
    let result = records(&wd, "action-result", "action_id", &ids[0]);
    assert_eq!(result[0]["decision"], "executed");
    // A second decision on it is refused.
    let out = cli(&wd, &["approvals", "approve", &ids[0]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is approved by carol"),
        "{}",
        text(&out.stderr)
    );

    // Reject the second: never executed.
    let out = cli(&wd, &["approvals", "reject", &ids[1], "--by", "dave"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(records(&wd, "approval", "decision", "rejected").len(), 1);

    // The third expires (its expiry moved into the past): approving it
    // fails, nothing is sent, and the expiry is audited.
    let db = rusqlite::Connection::open(wd.path().join("state.db")).unwrap();
    db.execute(
        "UPDATE approvals SET expires_ms = 1 WHERE action_id = ?1",
        [&ids[2]],
    )
    .unwrap();
    drop(db);
    let out = cli(&wd, &["approvals", "approve", &ids[2]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is expired"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        records(&wd, "approval-expired", "action_id", &ids[2]).len(),
        1
    );
    assert_eq!(suspend_calls(&fake), 1);
    assert!(text(&cli(&wd, &["approvals", "list"]).stdout).contains("no approvals pending"));
    vigil_host::audit::verify(&wd.audit_path()).unwrap();
}
