//! Replicas of the service on a real NATS JetStream (`[cluster]` with
//! `[server]`): durable ingest, shards shared by lease, a `kill -9`
//! mid-stream with its shards taken over, a poison event dead-lettered,
//! and JetStream going away and coming back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;
use vigil_test_support::fake_idp::{FakeIdp, OKTA_TOKEN};
use vigil_test_support::nats::{NatsGuard, start_nats};
use vigil_test_support::process::VigilProcess;
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
/// Eight shards per kind: push fatigue is keyed by subject user, so with
/// the `global` shard there are nine to share.
const SHARDS: u32 = 8;
/// Denials per burst: push fatigue's threshold.
const BURST: usize = 5;

fn cache_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("connectors-replicas-cache")
}

struct Replica {
    wd: Workdir,
    p: VigilProcess,
    /// Its audit signing key's public half (the private one is beside it,
    /// outside the workdir).
    pubkey: PathBuf,
    _keys: tempfile::TempDir,
}

impl Replica {
    /// Starts replica `name`: enforcing push fatigue through the fake Okta
    /// and webhook, on a loopback listener, in the cluster at `nats`.
    fn start(name: &str, fake: &FakeIdp, nats: &NatsGuard, extra: &str) -> Replica {
        Replica::start_with(name, fake, nats, extra, "[cluster]", "")
    }

    /// [`Replica::start`] with `before_cluster` in place of the
    /// `[cluster]` header (sources go there) and `export.jsonl` holding
    /// `export`.
    fn start_with(
        name: &str,
        fake: &FakeIdp,
        nats: &NatsGuard,
        extra: &str,
        before_cluster: &str,
        export: &str,
    ) -> Replica {
        let wd = Workdir::new();
        std::fs::write(wd.path().join("export.jsonl"), export).unwrap();
        let keys = tempfile::tempdir().unwrap();
        let key = keys.path().join("audit.key");
        let out = vigil(
            VIGIL,
            &["audit", "keygen", "--out", key.to_str().unwrap()],
            keys.path(),
            &cache_home(),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::write(wd.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
        let cfg = wd.config(&format!(
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
[server]
listen = "127.0.0.1:0"
{before_cluster}
nats_url = "{nats}"
replica = "{name}"
shards = {SHARDS}
lease_ttl_secs = 3
ack_wait_secs = 5
timeout_secs = 2
{extra}
# Signed checkpoints, published to the stream by each replica.
[audit]
signing_key_file = {key:?}
checkpoint_records = 10
# Budgets are counted per replica; these bursts are all attacks.
[budgets]
per_rule = {{ suspend-user = 100, escalate = 100 }}
global = {{ suspend-user = 100, escalate = 100 }}
"#,
            okta = fake.base_url(),
            hook = fake.webhook_url("soc"),
            nats = nats.url,
        ));
        let mut command = Command::new(VIGIL);
        command
            .args(["run", "--config", cfg.to_str().unwrap()])
            .current_dir(wd.path())
            .env("XDG_CACHE_HOME", cache_home());
        let p = VigilProcess::spawn(command, "http");
        Replica {
            wd,
            p,
            pubkey: keys.path().join("audit.key.pub"),
            _keys: keys,
        }
    }

    fn post(&self, client: &Client, events: &[Value]) -> reqwest::blocking::Response {
        client
            .post(self.p.url("/v1/events"))
            .json(&events)
            .send()
            .unwrap()
    }

    /// `/metrics`: `name{labels}` → value.
    fn metrics(&self, client: &Client) -> BTreeMap<String, f64> {
        let text = client
            .get(self.p.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect()
    }

    fn metric(&self, client: &Client, name: &str) -> f64 {
        self.metrics(client).get(name).copied().unwrap_or(0.0)
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn eventually(what: &str, logs: &dyn Fn() -> String, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `users` push-bombing bursts (the fixture's five denials, each user's
/// own ids and uuids) plus the fixture's benign sign-ins, per user:
/// `(first, second)` split after `first` denials of every burst.
fn bursts(users: usize, first: usize) -> (Vec<Value>, Vec<Value>) {
    let fixture: Vec<Value> = std::fs::read_to_string(fixture("push-bombing.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for u in 0..users {
        let user = bombed(u);
        let mut denials = 0;
        for (k, e) in fixture.iter().enumerate() {
            let mut e = e.clone();
            e["uuid"] = Value::from(format!("u{u:03}-e{k}-0000-0000-000000000000"));
            if e["eventType"] == "user.mfa.okta_verify.deny_push" {
                e["actor"]["id"] = Value::from(user.clone());
                e["target"][0]["id"] = Value::from(user.clone());
                denials += 1;
                if denials > first {
                    b.push(e);
                    continue;
                }
            }
            a.push(e);
        }
    }
    (a, b)
}

fn bombed(u: usize) -> String {
    format!("00ubomb{u:04}")
}

/// Suspension calls per user the fake Okta received.
fn suspensions(fake: &FakeIdp) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for r in fake.requests_matching("POST", "/api/v1/users/") {
        if let Some(user) = r
            .path
            .strip_prefix("/api/v1/users/")
            .and_then(|p| p.strip_suffix("/lifecycle/suspend"))
        {
            *n.entry(user.to_owned()).or_default() += 1;
        }
    }
    n
}

#[test]
fn three_replicas_share_the_shards_and_a_kill_9_loses_and_repeats_nothing() {
    const USERS: usize = 24;
    let nats = start_nats();
    let fake = FakeIdp::start();
    let client = client();
    let mut replicas: Vec<Replica> = ["r1", "r2", "r3"]
        .iter()
        .map(|name| Replica::start(name, &fake, &nats, ""))
        .collect();
    let logs = |rs: &[Replica]| {
        rs.iter()
            .map(|r| r.p.log())
            .collect::<Vec<_>>()
            .join("\n-----\n")
    };
    // Nine shards, three each once all have joined.
    eventually(
        "a fair share of the shards on every replica",
        &|| logs(&replicas),
        || {
            replicas
                .iter()
                .all(|r| r.metric(&client, "vigil_cluster_shards_owned") == 3.0)
        },
    );

    // The first three denials of every burst, spread over the replicas.
    let (first, second) = bursts(USERS, 3);
    for (i, chunk) in first.chunks(7).enumerate() {
        let r = replicas[i % 3].post(&client, chunk);
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    // Every event is judged once under each kind (subject-user, global).
    let judged = |rs: &[Replica]| -> f64 {
        rs.iter()
            .map(|r| r.metric(&client, "vigil_events_received_total{source=\"jetstream\"}"))
            .sum()
    };
    eventually("the first half judged", &|| logs(&replicas), || {
        judged(&replicas) == (2 * first.len()) as f64
    });
    assert!(fake.requests_matching("POST", "/").is_empty());

    // kill -9 one replica (it judged its share); the rest of every burst
    // goes to the others.
    let dead_judged =
        replicas[1].metric(&client, "vigil_events_received_total{source=\"jetstream\"}");
    assert!(dead_judged > 0.0);
    let mut dead = replicas.remove(1);
    dead.p.kill9();
    for (i, chunk) in second.chunks(5).enumerate() {
        let r = replicas[i % 2].post(&client, chunk);
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    eventually("every burst caught", &|| logs(&replicas), || {
        suspensions(&fake).len() == USERS
    });
    // The dead replica's shards were taken over and their state rebuilt.
    let rebuilt: f64 = replicas
        .iter()
        .map(|r| r.metric(&client, "vigil_cluster_rebuilt_events_total"))
        .sum();
    assert!(rebuilt > 0.0, "nothing was rebuilt\n{}", logs(&replicas));
    // Let any redelivery (ack_wait 5 s) come and go before counting.
    std::thread::sleep(Duration::from_secs(8));

    for (user, n) in suspensions(&fake) {
        assert_eq!(n, 1, "{user} suspended {n} times");
    }
    let escalations = fake.requests_matching("POST", "/hooks/soc").len();
    assert_eq!(escalations, USERS, "one escalation per burst");
    // Every finding once across the three audit logs (the dead one's too).
    let mut findings: BTreeMap<String, usize> = BTreeMap::new();
    for wd in replicas.iter().map(|r| &r.wd).chain([&dead.wd]) {
        for f in wd.records_of("finding") {
            let key = format!(
                "{}:{}",
                f["rule"].as_str().unwrap_or_default(),
                f["event_id"].as_str().unwrap_or_default()
            );
            *findings.entry(key).or_default() += 1;
        }
    }
    assert_eq!(findings.len(), USERS, "{findings:?}");
    assert!(findings.values().all(|&n| n == 1), "{findings:?}");
    // Every executed suspension is recorded once, by the replica that made it.
    let executed: usize = replicas
        .iter()
        .map(|r| &r.wd)
        .chain([&dead.wd])
        .flat_map(|wd| wd.records_of("action-result"))
        .filter(|r| r["decision"] == "executed" && r["action"] == "suspend-user")
        .count();
    assert_eq!(executed, USERS);
    for r in &mut replicas {
        assert!(r.p.stop().success(), "{}", r.p.log());
    }

    // Three chains, one per replica, each matching the checkpoints its
    // replica published (the dead one's up to its last).
    let all: Vec<&Replica> = replicas.iter().chain([&dead]).collect();
    let mut args: Vec<String> = vec!["audit".into(), "verify".into()];
    for r in &all {
        args.push(r.wd.audit_path().display().to_string());
    }
    for r in &all {
        args.extend(["--pubkey".into(), r.pubkey.display().to_string()]);
    }
    args.extend(["--nats".into(), nats.url.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = vigil(VIGIL, &args, dead.wd.path(), &cache_home());
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    for name in ["r1", "r3"] {
        assert!(report.contains(&format!("replica {name}: ok")), "{report}");
        assert!(
            report.contains(&format!("the newest checkpoint {name} published")),
            "{report}"
        );
    }
    // The dead replica had recorded nothing (its bursts were not complete).
    assert!(report.contains("3 logs: 3 ok, 0 failed"), "{report}");
}

#[test]
fn a_poison_event_ends_in_the_dead_letter_subject() {
    let nats = start_nats();
    let fake = FakeIdp::start();
    let client = client();
    let r = Replica::start(
        "r1",
        &fake,
        &nats,
        "max_deliveries = 2\nretry_delay_secs = 1",
    );
    eventually("the shards taken", &|| r.p.log(), || {
        r.metric(&client, "vigil_cluster_shards_owned") == f64::from(SHARDS + 1)
    });
    let mut dead = nats.subscribe("vigil.dead.>");
    // Something no replica can read, put on a shard's subject by another
    // client: handed back, delivered again, then moved aside.
    nats.publish(
        "vigil.events.subject-user.3",
        b"{\"not\": \"an identity event\"",
    );
    let letter = dead
        .next(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no dead letter\n{}", r.p.log()));
    assert_eq!(letter.subject, "vigil.dead.subject-user.3");
    assert_eq!(letter.payload, b"{\"not\": \"an identity event\"");
    let reason = letter.header("Vigil-Reason").unwrap_or_default();
    assert!(
        reason.contains("delivered 3 times (max_deliveries = 2)"),
        "{reason}"
    );
    assert_eq!(letter.header("Vigil-Replica").as_deref(), Some("r1"));
    eventually("the dead letter counted", &|| r.p.log(), || {
        r.metric(&client, "vigil_cluster_dead_letters_total") == 1.0
            && r.metric(&client, "vigil_cluster_unreadable_total") == 2.0
    });
    // The shard goes on: a burst on it is still caught.
    let (first, second) = bursts(1, BURST);
    let burst: Vec<Value> = first.into_iter().chain(second).collect();
    assert_eq!(r.post(&client, &burst).status(), StatusCode::ACCEPTED);
    eventually("the burst caught", &|| r.p.log(), || {
        suspensions(&fake).len() == 1
    });
}

#[test]
fn without_jetstream_nothing_is_accepted_and_it_recovers_when_back() {
    let mut nats = start_nats();
    let fake = FakeIdp::start();
    let client = client();
    let r = Replica::start("r1", &fake, &nats, "");
    let (first, second) = bursts(1, BURST);
    let events: Vec<Value> = first.into_iter().chain(second).collect();

    nats.stop();
    let answer = r.post(&client, &events);
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("5")
    );
    let body: Value = answer.json().unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("JetStream did not store the delivery"),
        "{error}"
    );
    let ready = client.get(r.p.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: Value = ready.json().unwrap();
    assert!(
        ready["not_ready"]
            .to_string()
            .contains("JetStream is unreachable"),
        "{ready}"
    );
    assert!(fake.requests().is_empty());

    // Back (same store): the client's retry is taken and judged.
    nats.start();
    eventually("ready again", &|| r.p.log(), || {
        client.get(r.p.url("/readyz")).send().unwrap().status() == StatusCode::OK
    });
    assert_eq!(r.post(&client, &events).status(), StatusCode::ACCEPTED);
    // A second retry of the same delivery is dropped by its message ids.
    assert_eq!(r.post(&client, &events).status(), StatusCode::ACCEPTED);
    eventually("the burst caught", &|| r.p.log(), || {
        suspensions(&fake).len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(suspensions(&fake).values().sum::<usize>(), 1);
    assert_eq!(r.wd.records_of("finding").len(), 1);
}

#[test]
fn replicas_tailing_the_same_export_publish_it_and_judge_it_once() {
    let nats = start_nats();
    let fake = FakeIdp::start();
    let client = client();
    let (first, second) = bursts(1, BURST);
    let lines: String = first
        .iter()
        .chain(&second)
        .map(|e| format!("{e}\n"))
        .collect();
    // Two replicas tail their own copy of the same export: each publishes
    // it (message ids make that once), whichever owns the shard judges.
    let tail = "[[sources]]\ntype = \"tail\"\npath = \"export.jsonl\"\nfrom = \"start\"\npoll_ms = 50\n[cluster]";
    let a = Replica::start_with("r1", &fake, &nats, "", tail, &lines);
    let b = Replica::start_with("r2", &fake, &nats, "", tail, &lines);
    eventually("the burst caught", &|| a.p.log() + &b.p.log(), || {
        suspensions(&fake).len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(suspensions(&fake).values().sum::<usize>(), 1);
    let findings = a.wd.records_of("finding").len() + b.wd.records_of("finding").len();
    assert_eq!(findings, 1);
    // Each tail's lines went through JetStream (counted once published).
    for r in [&a, &b] {
        let tailed: f64 = r
            .metrics(&client)
            .iter()
            .filter(|(k, _)| k.starts_with("vigil_events_received_total{source=\"tail:"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(tailed, (first.len() + second.len()) as f64, "{}", r.p.log());
    }
}
