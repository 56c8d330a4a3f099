//! `[cluster]`: replicas that see the same events claim each execution in
//! a real NATS JetStream key-value bucket first, so the identity provider
//! is called once, whichever replica wins; with no bucket to claim in,
//! a replica does not start (it could not keep "at most once").

use std::path::{Path, PathBuf};

use vigil_test_support::fake_idp::{FakeIdp, OKTA_TOKEN};
use vigil_test_support::nats::start_nats;
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const BOMBED: &str = "00upushbomb01";

fn cache_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("connectors-cluster-cache")
}

/// Enforcing push fatigue through the fake Okta and webhook, as `replica`.
fn replica_config(fake: &FakeIdp, nats_url: &str, replica: &str) -> String {
    format!(
        r#"mode = "enforce"
state_path = "state.db"
builtin_pack = false
[[rules]]
builtin = "mfa-push-fatigue"
allow = ["suspend-user", "escalate"]
[connectors.okta]
base_url = "{okta}"
token_file = "okta-token"
[[connectors.webhooks]]
name = "soc"
url = "{hook}"
[cluster]
nats_url = "{nats_url}"
replica = "{replica}"
timeout_secs = 5
"#,
        okta = fake.base_url(),
        hook = fake.webhook_url("soc"),
    )
}

fn replica_dir() -> Workdir {
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
    wd
}

/// `(action, decision, reason)` of the action-result records.
fn results(wd: &Workdir) -> Vec<(String, String, String)> {
    wd.records_of("action-result")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("action"), s("decision"), s("reason"))
        })
        .collect()
}

#[test]
fn two_replicas_judging_the_same_burst_suspend_the_user_once() {
    let nats = start_nats();
    let fake = FakeIdp::start();
    let events = fixture("push-bombing.jsonl");
    let (a, b) = (replica_dir(), replica_dir());

    let out = a.run(
        VIGIL,
        &replica_config(&fake, &nats.url, "replica-a"),
        &events,
        &cache_home(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = b.run(
        VIGIL,
        &replica_config(&fake, &nats.url, "replica-b"),
        &events,
        &cache_home(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("executed 0, failed 0, duplicate 2"),
        "{}",
        text(&out.stdout)
    );

    // One suspension and one escalation reached the outside world.
    let calls: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        calls,
        vec![
            format!("/api/v1/users/{BOMBED}/lifecycle/suspend"),
            "/hooks/soc".to_owned()
        ]
    );
    let executed: Vec<String> = results(&a).into_iter().map(|(_, d, _)| d).collect();
    assert_eq!(executed, vec!["executed", "executed"]);
    // The other replica judged the same way and recorded who acted.
    for (action, decision, detail) in results(&b) {
        assert_eq!(decision, "duplicate", "{action}: {detail}");
        assert!(
            detail.contains("replica replica-a claimed it first"),
            "{detail}"
        );
    }

    // The winner replaying its own stream is not refused by its own
    // claims (its local idempotency answers), and still calls nothing.
    let out = a.run(
        VIGIL,
        &replica_config(&fake, &nats.url, "replica-a"),
        &events,
        &cache_home(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        2
    );
}

#[test]
fn a_replica_presents_the_cluster_token_and_never_shows_it() {
    const TOKEN: &str = "nats-s3cret-0123456789";
    let nats = vigil_test_support::nats::start_nats_with(&["--auth", TOKEN]);
    let fake = FakeIdp::start();
    let events = fixture("push-bombing.jsonl");

    // Without it the server refuses the replica, which does not start.
    let wd = replica_dir();
    let out = wd.run(
        VIGIL,
        &replica_config(&fake, &nats.url, "replica-a"),
        &events,
        &cache_home(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("cannot connect to {}", nats.url)),
        "{err}"
    );

    // With it (from a file), the replica claims and acts.
    let wd = replica_dir();
    std::fs::write(wd.path().join("nats-token"), format!("{TOKEN}\n")).unwrap();
    let config = format!(
        "{}token_file = \"nats-token\"\n",
        replica_config(&fake, &nats.url, "replica-a")
    );
    let out = wd.run(VIGIL, &config, &events, &cache_home());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("executed 2"),
        "{}",
        text(&out.stdout)
    );
    for (what, bytes) in [("stderr", &out.stderr), ("stdout", &out.stdout)] {
        assert!(!text(bytes).contains(TOKEN), "the token is in {what}");
    }
    let log = std::fs::read_to_string(wd.audit_path()).unwrap();
    assert!(!log.contains(TOKEN));
}

#[test]
fn a_replica_that_cannot_reach_the_claim_bucket_does_not_start() {
    let mut nats = start_nats();
    let url = nats.url.clone();
    nats.stop();
    let fake = FakeIdp::start();
    let wd = replica_dir();
    let out = wd.run(
        VIGIL,
        &replica_config(&fake, &url, "replica-a"),
        &fixture("push-bombing.jsonl"),
        &cache_home(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("cannot connect to {url}")), "{err}");
    assert!(fake.requests().is_empty());
}

#[test]
fn while_the_bucket_is_unreachable_nothing_is_executed() {
    use std::process::Command;
    use std::time::{Duration, Instant};
    use vigil_test_support::process::VigilProcess;

    let nats = start_nats();
    let fake = FakeIdp::start();
    let wd = replica_dir();
    let body = replica_config(&fake, &nats.url, "replica-a")
        .replace("timeout_secs = 5", "timeout_secs = 1");
    let cfg = wd.config(&format!("{body}\n[server]\nlisten = \"127.0.0.1:0\"\n"));
    let mut command = Command::new(VIGIL);
    command
        .args(["run", "--config", cfg.to_str().unwrap()])
        .current_dir(wd.path())
        .env("XDG_CACHE_HOME", cache_home());
    let p = VigilProcess::spawn(command, "http");

    // The claim bucket goes away after the replica started; JetStream (and
    // so ingestion) stays.
    let answer = nats.request("$JS.API.STREAM.DELETE.KV_vigil-claims", b"");
    assert!(answer.contains("\"success\":true"), "{answer}");
    let events: Vec<serde_json::Value> = std::fs::read_to_string(fixture("push-bombing.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let r = reqwest::blocking::Client::new()
        .post(p.url("/v1/events"))
        .json(&events)
        .send()
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);

    let deadline = Instant::now() + Duration::from_secs(120);
    while results(&wd).len() < 2 {
        assert!(Instant::now() < deadline, "no results:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    for (action, decision, reason) in results(&wd) {
        assert_eq!(decision, "failed", "{action}: {reason}");
        assert!(
            reason.contains("cannot claim it across replicas"),
            "{reason}"
        );
    }
    // A finding that cannot be claimed is recorded all the same.
    assert_eq!(wd.records_of("finding").len(), 1);
    assert!(
        fake.requests().iter().all(|r| r.method != "POST"),
        "{:?}",
        fake.requests()
    );
}
