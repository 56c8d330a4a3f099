//! Replicas of the service on a real NATS JetStream (`[cluster]` with
//! `[server]`): durable ingest, shards shared by lease, a `kill -9`
//! mid-stream with its shards taken over, a poison event dead-lettered,
//! and JetStream going away and coming back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
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
        // Written as vigil.toml (what `spawn` and `restart` run).
        wd.config(&format!(
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
        let p = spawn(&wd);
        Replica {
            wd,
            p,
            pubkey: keys.path().join("audit.key.pub"),
            _keys: keys,
        }
    }

    /// Starts it again on its store, audit log and configuration (after a
    /// `kill -9`: what a StatefulSet does).
    fn restart(&mut self) {
        self.p = spawn(&self.wd);
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

fn spawn(wd: &Workdir) -> VigilProcess {
    let mut command = Command::new(VIGIL);
    command
        .args(["run", "--config", "vigil.toml"])
        .current_dir(wd.path())
        .env("XDG_CACHE_HOME", cache_home());
    VigilProcess::spawn(command, "http")
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

/// `n` benign Okta events from the sample stream (the service load's
/// templates), each with a uuid of its own.
fn noise(n: usize, tag: &str) -> Vec<Value> {
    let samples: Vec<Value> =
        std::fs::read_to_string(repo_root().join("host/samples/sample-events.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| {
                v.get("eventType").is_some() && v["eventType"] != "user.mfa.okta_verify.deny_push"
            })
            .collect();
    (0..n)
        .map(|k| {
            let mut e = samples[k % samples.len()].clone();
            e["uuid"] = Value::from(format!("noise-{tag}-{k:06}-0000-000000000000"));
            e
        })
        .collect()
}

/// Every shard's durable consumer has nothing pending and nothing
/// unacknowledged: every message published was judged and acknowledged.
fn all_acknowledged(nats: &NatsGuard, deliveries: &mut u64) -> Result<(), String> {
    let kinds = [("subject-user", SHARDS), ("global", 1)];
    for (kind, shards) in kinds {
        for shard in 0..shards {
            let info = nats.request(
                &format!("$JS.API.CONSUMER.INFO.VIGIL.vigil-{kind}-{shard}"),
                b"",
            );
            let info: Value = serde_json::from_str(&info).map_err(|e| e.to_string())?;
            // Deliveries, first ones and repeats (each takes a consumer
            // sequence number).
            *deliveries += info["delivered"]["consumer_seq"].as_u64().unwrap_or(0);
            if info["num_pending"] != 0 || info["num_ack_pending"] != 0 {
                return Err(format!("{kind}/{shard}: {info}"));
            }
        }
    }
    Ok(())
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

    // Handing shards back for a fair share kept every other lease alive.
    for r in &replicas {
        assert_eq!(
            r.metric(&client, "vigil_cluster_lease_losses_total"),
            0.0,
            "{}",
            r.p.log()
        );
    }

    // The first three denials of every burst, with benign traffic, spread
    // over the replicas.
    let (mut first, mut second) = bursts(USERS, 3);
    first.extend(noise(400, "a"));
    second.extend(noise(400, "b"));
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

    // The rest of every burst (shuffled among benign traffic) is posted
    // round-robin from another thread. Mid-stream one replica, which
    // judged its share, freezes with its shards' newest messages delivered
    // and not acknowledged, and is killed with -9; a delivery it cannot
    // answer goes to the next replica, as a load balancer would send it.
    let dead_judged =
        replicas[1].metric(&client, "vigil_events_received_total{source=\"jetstream\"}");
    assert!(dead_judged > 0.0);
    // A stable shuffle: the partition hash of each uuid.
    second.sort_by_key(|e| vigil_sdk::partition_of(e["uuid"].as_str().unwrap_or_default()));
    let urls: Vec<String> = replicas.iter().map(|r| r.p.url("/v1/events")).collect();
    let posted = Arc::new(AtomicUsize::new(0));
    let frozen = Arc::new(AtomicUsize::new(usize::MAX));
    let chunks = second.len().div_ceil(5);
    let poster = {
        let (second, posted, frozen) = (second.clone(), posted.clone(), frozen.clone());
        std::thread::spawn(move || {
            let client = Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            for (i, chunk) in second.chunks(5).enumerate() {
                // A third in, a pause: the replicas go quiet, waiting on
                // their pull requests, until one of them is frozen.
                while i == chunks / 3 && frozen.load(SeqCst) == usize::MAX {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let mut to = i;
                loop {
                    if to % urls.len() == frozen.load(SeqCst) {
                        to += 1;
                        continue;
                    }
                    match client.post(&urls[to % urls.len()]).json(&chunk).send() {
                        Ok(r) if r.status() == StatusCode::ACCEPTED => break,
                        Ok(r) => panic!("{}: {}", r.status(), r.text().unwrap_or_default()),
                        // Gone: the next one.
                        Err(_) => to += 1,
                    }
                }
                posted.fetch_add(1, SeqCst);
            }
        })
    };
    let wait_for = |n: usize| {
        while posted.load(SeqCst) < n.min(chunks) {
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    wait_for(chunks / 3);
    std::thread::sleep(Duration::from_millis(300));
    replicas[1].p.freeze();
    frozen.store(1, SeqCst);
    // Published at once, while its pull requests (500 ms each) are open:
    // delivered to it, never acknowledged.
    wait_for(chunks / 3 + 20);
    let mut dead = replicas.remove(1);
    dead.p.kill9();
    poster
        .join()
        .expect("every delivery accepted by some replica");
    // No event lost: every message of every shard was judged and
    // acknowledged (what the dead replica held unacknowledged was
    // redelivered after ack_wait, 5 s).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut deliveries;
    while let Err(pending) = {
        deliveries = 0;
        all_acknowledged(&nats, &mut deliveries)
    } {
        assert!(
            Instant::now() < deadline,
            "not everything acknowledged: {pending}\n{}",
            logs(&replicas)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // What the frozen replica held was delivered again, to the new owner:
    // more deliveries than messages (each event is on two subjects).
    let messages = 2 * (first.len() + second.len()) as u64;
    assert!(
        deliveries > messages,
        "{deliveries} deliveries of {messages} messages: nothing was redelivered"
    );

    // The dead replica's shards were taken over and their state rebuilt.
    let rebuilt: f64 = replicas
        .iter()
        .map(|r| r.metric(&client, "vigil_cluster_rebuilt_events_total"))
        .sum();
    assert!(rebuilt > 0.0, "nothing was rebuilt\n{}", logs(&replicas));
    // Every accepted action of the survivors has its result.
    eventually("every action resolved", &|| logs(&replicas), || {
        replicas.iter().all(|r| {
            let accepted =
                r.wd.records_of("action")
                    .iter()
                    .filter(|a| a["decision"] == "accepted")
                    .count();
            r.wd.records_of("action-result").len() >= accepted
        })
    });
    // The dead replica comes back on its volume: it records what became of
    // the actions it had accepted when it died (`abandoned` if never sent,
    // `unknown` if sent without an answer: not sent again), then stops.
    dead.restart();
    assert!(dead.p.stop().success(), "{}", dead.p.log());
    let logs_of_all: Vec<&Workdir> = replicas.iter().map(|r| &r.wd).chain([&dead.wd]).collect();

    // At most once per action: no user suspended twice, no burst escalated
    // twice.
    for (user, n) in suspensions(&fake) {
        assert_eq!(n, 1, "{user} suspended {n} times");
    }
    let escalations = fake.requests_matching("POST", "/hooks/soc").len();
    assert!(escalations <= USERS, "{escalations} escalations");
    // Nothing unaccounted for: every action accepted anywhere has a result
    // somewhere, and each one not executed (2 per burst are due) is an
    // action the killed replica had accepted — reconciled in its log, or
    // claimed by it and so `duplicate` on the replica that judged again.
    let results: Vec<Value> = logs_of_all
        .iter()
        .flat_map(|wd| wd.records_of("action-result"))
        .collect();
    for wd in &logs_of_all {
        for a in wd.records_of("action") {
            if a["decision"] == "accepted" {
                assert!(
                    results.iter().any(|r| r["action_id"] == a["action_id"]),
                    "no result for {a}"
                );
            }
        }
    }
    let executed = suspensions(&fake).len() + escalations;
    let left_by_r2 = dead
        .wd
        .records_of("action-result")
        .iter()
        .filter(|r| r["reconciled"] == true && r["decision"] != "executed")
        .count()
        + results
            .iter()
            .filter(|r| {
                r["decision"] == "duplicate"
                    && r["reason"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("replica r2 claimed it first")
            })
            .count();
    assert!(
        executed + left_by_r2 >= 2 * USERS,
        "{executed} executed, {left_by_r2} left by the killed replica, of {}",
        2 * USERS
    );
    // Every executed action is recorded once, by the replica that made it.
    let recorded = results
        .iter()
        .filter(|r| r["decision"] == "executed")
        .count();
    assert_eq!(recorded, executed);

    // Every burst's finding is recorded (no event lost), once — but for a
    // finding the frozen replica had written and not yet claimed (between
    // its audit sync and its claim), which the new owner records again:
    // twice rather than never.
    let mut findings: BTreeMap<String, usize> = BTreeMap::new();
    for wd in &logs_of_all {
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
    assert!(
        findings.values().filter(|&&n| n > 1).count() <= 1 && findings.values().all(|&n| n <= 2),
        "{findings:?}"
    );
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
    // Delivered more than twice: twice handed back (nak), then moved. A
    // loaded machine may add a redelivery after ack_wait (a fetch cut
    // short), so the count is at least 3.
    let reason = letter.header("Vigil-Reason").unwrap_or_default();
    let times: u32 = reason
        .strip_prefix("delivered ")
        .and_then(|r| r.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(times >= 3, "{reason}");
    assert!(reason.contains("times (max_deliveries = 2)"), "{reason}");
    assert_eq!(letter.header("Vigil-Replica").as_deref(), Some("r1"));
    eventually("the dead letter counted", &|| r.p.log(), || {
        // Each delivery read was counted unreadable (how many were read,
        // rather than cut short and redelivered, depends on the load).
        r.metric(&client, "vigil_cluster_dead_letters_total") == 1.0
            && r.metric(&client, "vigil_cluster_unreadable_total") >= 1.0
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
    let (first, second) = events.split_at(3);
    eventually("ready again", &|| r.p.log(), || {
        client.get(r.p.url("/readyz")).send().unwrap().status() == StatusCode::OK
    });
    // The first denials are accepted (2xx), then the NATS server is
    // killed with -9 and started again on its store: what it acknowledged
    // is still there, and the burst completes with the rest.
    assert_eq!(r.post(&client, first).status(), StatusCode::ACCEPTED);
    nats.stop();
    nats.start();
    eventually("ready after the NATS restart", &|| r.p.log(), || {
        client.get(r.p.url("/readyz")).send().unwrap().status() == StatusCode::OK
    });
    assert_eq!(r.post(&client, second).status(), StatusCode::ACCEPTED);
    // A retry of the whole delivery is dropped by its message ids.
    assert_eq!(r.post(&client, &events).status(), StatusCode::ACCEPTED);
    eventually("the burst caught", &|| r.p.log(), || {
        suspensions(&fake).len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(suspensions(&fake).values().sum::<usize>(), 1);
    assert_eq!(r.wd.records_of("finding").len(), 1);
    // Stored to judged, per message (each event is on two subjects).
    assert_eq!(
        r.metric(&client, "vigil_ingest_to_decision_seconds_count"),
        (2 * events.len()) as f64
    );
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

#[test]
fn a_batch_judged_longer_than_ack_wait_reports_progress_and_is_not_redelivered() {
    let nats = start_nats();
    let fake = FakeIdp::start();
    let client = client();
    // A global rule whose every call runs to a 2.5 s deadline: the global
    // shard's batch of six events takes 15 s, three times ack_wait (5 s).
    let slow = format!(
        "[[rules]]\npath = {:?}\nlimits = {{ deadline_ms = 2500, quarantine_after = 100 }}\n[cluster]",
        GUEST_LOOP
    );
    let r = Replica::start_with("r1", &fake, &nats, "", &slow, "");
    eventually("the shards taken", &|| r.p.log(), || {
        r.metric(&client, "vigil_cluster_shards_owned") == f64::from(SHARDS + 1)
    });
    let events = noise(6, "slow");
    assert_eq!(r.post(&client, &events).status(), StatusCode::ACCEPTED);
    eventually("the slow batch acknowledged", &|| r.p.log(), || {
        let info: Value =
            serde_json::from_str(&nats.request("$JS.API.CONSUMER.INFO.VIGIL.vigil-global-0", b""))
                .unwrap();
        info["num_ack_pending"] == 0
            && info["num_pending"] == 0
            && info["delivered"]["consumer_seq"].as_u64() >= Some(6)
    });
    // Each message was delivered once: progress kept the server from
    // handing the batch out again while it was judged.
    let info: Value =
        serde_json::from_str(&nats.request("$JS.API.CONSUMER.INFO.VIGIL.vigil-global-0", b""))
            .unwrap();
    assert_eq!(info["delivered"]["consumer_seq"], 6, "{info}");
    assert_eq!(info["num_redelivered"], 0, "{info}");
    let faults =
        r.wd.records_of("rule-fault")
            .into_iter()
            .filter(|f| f["rule"] == "guest-loop")
            .count();
    assert_eq!(faults, 6, "each event judged once");
}

#[test]
fn a_stalled_replica_hands_its_shards_to_the_others() {
    let nats = start_nats();
    let fake = FakeIdp::start();
    let client = client();
    // r1's global rule runs 10 s per call and its watchdog calls the
    // pipeline stuck after 1 s; r2 runs the same rule with a short deadline.
    let looping = |deadline_ms: u32, watchdog: &str| {
        format!(
            "{watchdog}\n[[rules]]\npath = {:?}\nlimits = {{ deadline_ms = {deadline_ms}, quarantine_after = 100 }}\n[cluster]",
            GUEST_LOOP
        )
    };
    let r1 = Replica::start_with(
        "r1",
        &fake,
        &nats,
        "",
        &looping(10_000, "watchdog_secs = 1"),
        "",
    );
    eventually("r1 holding every shard", &|| r1.p.log(), || {
        r1.metric(&client, "vigil_cluster_shards_owned") == f64::from(SHARDS + 1)
    });
    let stuck = noise(1, "stuck");
    assert_eq!(r1.post(&client, &stuck).status(), StatusCode::ACCEPTED);
    // Stuck: r1 hands everything back (its HTTP side still answers).
    eventually("r1 handing its shards back", &|| r1.p.log(), || {
        r1.metric(&client, "vigil_cluster_shards_owned") == 0.0
    });
    let r2 = Replica::start_with("r2", &fake, &nats, "", &looping(100, ""), "");
    let both = || r1.p.log() + "\n-----\n" + &r2.p.log();
    eventually("r2 holding every shard", &both, || {
        r2.metric(&client, "vigil_cluster_shards_owned") == f64::from(SHARDS + 1)
    });
    // r2 judges what r1 was stuck on (redelivered: r1 stopped reporting
    // progress), and what comes next.
    let (first, second) = bursts(1, BURST);
    let burst: Vec<Value> = first.into_iter().chain(second).collect();
    assert_eq!(r2.post(&client, &burst).status(), StatusCode::ACCEPTED);
    eventually("the burst caught by r2", &both, || {
        suspensions(&fake).len() == 1
    });
    let stuck_id = stuck[0]["uuid"].as_str().unwrap().to_owned();
    eventually("the stuck event judged by r2", &both, || {
        r2.wd
            .records_of("rule-fault")
            .iter()
            .any(|f| f["rule"] == "guest-loop" && f["event_id"] == stuck_id.as_str())
    });
}
