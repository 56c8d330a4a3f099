//! Parallel shards against one shard, with real components through the
//! real pipeline and a real state database:
//!
//! - the built-in pack and a partitioned test rule judge a mixed stream
//!   (every fixture, several times over with fresh ids, so batches hold
//!   many users, addresses and partitions) into the same findings,
//!   decisions and faults, in the same order, on 1, 2 and 3 shards;
//! - every event is judged exactly once per rule, and each user's events
//!   reach the partitioned rule in stream order (`guest-sequencer` numbers
//!   them in its state);
//! - state written on one shard count is handed back to the right shards
//!   on another: a stream cut in two, its halves run on 2 then 3 shards
//!   (and on 3 then 1) through one state directory, gives the records of
//!   one run on one shard;
//! - so does state stored before shards (rows without a partition);
//! - a rule that breaks its partition claim (one key for every user) is
//!   caught with a `partition` fault naming the key;
//! - the sandbox holds on a shard thread: a call that never returns times
//!   out there while the first shard goes on.

use std::collections::HashMap;

use serde_json::Value;
use vigil_host::audit::AuditLog;
use vigil_host::cli::setup;
use vigil_host::config::Config;
use vigil_host::pipeline::Pipeline;
use vigil_host::sources::LineReader;
use vigil_test_support::*;

/// The fixtures the mixed stream is made of (the malformed one is about
/// rejects, not judgement).
const FIXTURES: &[&str] = &[
    "push-bombing.jsonl",
    "push-near-miss.jsonl",
    "protected-push-bombing.jsonl",
    "benign.jsonl",
    "entra-signins.jsonl",
    "factor-downgrade-attack.jsonl",
    "factor-downgrade-benign.jsonl",
    "factor-downgrade-near-miss.jsonl",
    "rogue-factor-attack.jsonl",
    "rogue-factor-benign.jsonl",
    "rogue-factor-near-miss.jsonl",
];

/// Copies of the fixtures in the stream: enough events for several
/// batches of the shards.
const ROUNDS: usize = 4;

/// Every `id` and `uuid` string of `v` with `suffix` appended: a copy of
/// the event about other users, with its own event id.
fn reidentify(v: &mut Value, suffix: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match child {
                    Value::String(s) if k == "id" || k == "uuid" => s.push_str(suffix),
                    _ => reidentify(child, suffix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| reidentify(i, suffix)),
        _ => {}
    }
}

/// The mixed stream, one JSON document per line.
fn mixed_stream() -> Vec<String> {
    let mut lines = Vec::new();
    for round in 0..ROUNDS {
        for (f, name) in FIXTURES.iter().enumerate() {
            let text = std::fs::read_to_string(fixture(name)).unwrap();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let mut v: Value = serde_json::from_str(line).unwrap();
                // Each copy of each fixture about users of its own (some
                // fixtures share a user, weeks apart).
                reidentify(&mut v, &format!("-r{round}f{f}"));
                lines.push(v.to_string());
            }
        }
    }
    lines
}

/// The pack in enforce mode with two partitioned rules granted their
/// actions (log-only connector), budgets that never hold anything back
/// (budget order across shards is not event order, by design), and the
/// partitioned test rule.
fn config_body(shards: usize) -> String {
    format!(
        r#"mode = "enforce"
state_path = "state.db"
shards = {shards}
[budgets]
fraction_min_users = 1000000000
per_rule = {{ suspend-user = 1000000, escalate = 1000000, block-ip = 1000000 }}
global = {{ suspend-user = 1000000, escalate = 1000000, block-ip = 1000000 }}
[[rules]]
builtin = "mfa-push-fatigue"
allow = ["suspend-user", "escalate"]
[[rules]]
builtin = "password-spray"
allow = ["block-ip", "escalate"]
[[rules]]
path = {GUEST_SEQUENCER:?}
"#
    )
}

/// Runs `lines` through a pipeline on `shards` shards over the state and
/// audit log of `wd` (a restart when they exist already).
fn run(wd: &Workdir, shards: usize, lines: &[String]) {
    run_config(wd, &config_body(shards), lines);
}

/// Runs `lines` through the pipeline of configuration `body` in `wd`,
/// checks every line made an event and the audit chain holds.
fn run_config(wd: &Workdir, body: &str, lines: &[String]) {
    let events = wd.path().join("events.jsonl");
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let config = Config::load(&wd.config(body)).expect("valid config");
    let rules = setup::load_rules(&config).expect("rules load");
    assert_eq!(rules.shards(), config.shard_count());
    let audit = AuditLog::open(&config.audit_path).expect("audit log opens");
    let executor = setup::executor(&config, &rules).expect("executor");
    let mut pipeline = Pipeline::new(rules, audit, executor).unwrap();
    let mut reader = LineReader::open(&events, config.max_line_bytes).unwrap();
    pipeline.run_stream(&mut reader).expect("stream runs");
    let stats = pipeline.finish().expect("finish");
    assert_eq!(stats.events as usize, lines.len(), "one event per line");
    assert_eq!(stats.rejected, 0);
    drop(pipeline);
    vigil_host::audit::verify(&wd.audit_path()).expect("audit chain holds");
}

/// What a run decided, in audit order, without what differs between runs
/// (sequence numbers, times, hashes).
fn judgement(wd: &Workdir) -> Vec<Value> {
    wd.audit_records()
        .into_iter()
        .filter(|r| {
            matches!(
                r["type"].as_str(),
                Some("finding" | "action" | "rule-fault")
            )
        })
        .map(|mut r| {
            let o = r.as_object_mut().unwrap();
            for k in ["seq", "time", "prev_hash", "hash"] {
                o.remove(k);
            }
            r
        })
        .collect()
}

fn assert_same(expected: &[Value], got: &[Value], what: &str) {
    assert_eq!(expected.len(), got.len(), "{what}: record count");
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        assert_eq!(e, g, "{what}: record {i} differs");
    }
}

/// The single-shard run of the whole stream: the reference.
fn reference(lines: &[String]) -> Vec<Value> {
    let wd = Workdir::new();
    run(&wd, 1, lines);
    judgement(&wd)
}

#[test]
fn two_and_three_shards_judge_a_mixed_stream_exactly_as_one() {
    let lines = mixed_stream();
    let one = reference(&lines);
    // The stream is worth comparing: the pack finds and acts, and the test
    // rule sees every event.
    let count = |t: &str, rule: &str| {
        one.iter()
            .filter(|r| r["type"] == t && r["rule"] == rule)
            .count()
    };
    assert_eq!(count("finding", "guest-sequencer"), lines.len());
    // Every rule keeps to its partition claim (the host checks each state
    // key against the call's partition; one shard sees them all).
    let faults: Vec<&Value> = one.iter().filter(|r| r["type"] == "rule-fault").collect();
    assert!(faults.is_empty(), "{faults:#?}");
    assert!(count("finding", "mfa-push-fatigue") >= ROUNDS, "{one:#?}");
    assert!(count("action", "mfa-push-fatigue") >= ROUNDS);
    assert!(
        one.iter()
            .any(|r| r["type"] == "action" && r["decision"] == "accepted"),
        "an accepted action is part of the comparison"
    );

    // Exactly once, and in stream order per user: the n-th event of a user
    // (by line) carries n (each fixture copy spans less than the
    // sequencer's one-week window).
    let sequenced: Vec<&Value> = one
        .iter()
        .filter(|r| r["rule"] == "guest-sequencer")
        .collect();
    let user = |r: &Value| r["details"]["user"].as_str().unwrap().to_owned();
    // Users whose events span less than the window (a near-miss fixture
    // spreads one user over eight days on purpose).
    let mut span: HashMap<String, (i64, i64)> = HashMap::new();
    for r in &sequenced {
        let t = r["event_time"].as_i64().unwrap();
        let s = span.entry(user(r)).or_insert((t, t));
        *s = (s.0.min(t), s.1.max(t));
    }
    let mut per_user: HashMap<String, u64> = HashMap::new();
    let mut seen = HashMap::new();
    let mut checked = 0;
    for r in &sequenced {
        *seen
            .entry(r["subject"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
        let n = per_user.entry(user(r)).or_insert(0);
        *n += 1;
        let (from, to) = span[&user(r)];
        if to - from < 7 * 24 * 3_600_000 {
            assert_eq!(r["details"]["n"], n.to_string(), "{r}");
            checked += 1;
        }
    }
    assert!(
        checked * 10 >= sequenced.len() * 9,
        "{checked} of {}",
        sequenced.len()
    );
    assert!(seen.values().all(|&c| c == 1), "one finding per event id");

    for shards in [2, 3] {
        let wd = Workdir::new();
        run(&wd, shards, &lines);
        assert_same(&one, &judgement(&wd), &format!("{shards} shards"));
    }
}

#[test]
fn state_moves_between_shard_counts_across_a_restart() {
    let lines = mixed_stream();
    let one = reference(&lines);
    let (first, second) = lines.split_at(lines.len() * 3 / 5);
    for (a, b) in [(2, 3), (3, 1)] {
        let wd = Workdir::new();
        run(&wd, a, first);
        run(&wd, b, second);
        assert_same(&one, &judgement(&wd), &format!("{a} then {b} shards"));
    }
}

#[test]
fn state_stored_before_shards_is_found_by_every_shard() {
    let lines = mixed_stream();
    let one = reference(&lines);
    let (first, second) = lines.split_at(lines.len() / 2);
    let wd = Workdir::new();
    run(&wd, 1, first);
    // As a database from before shards: no partition on any key.
    let db = rusqlite::Connection::open(wd.path().join("state.db")).unwrap();
    let untagged = db.execute("UPDATE rule_state SET part = NULL", []).unwrap();
    assert!(untagged > 0, "the first half left state behind");
    drop(db);
    run(&wd, 3, second);
    assert_same(&one, &judgement(&wd), "untagged state on 3 shards");
}

// A rule that declares `subject-user` but counts every user under one key:
// on one shard (every partition meets every other) the second user's call
// traps with a `partition` fault naming the key, and the first user's
// events go on being judged.
#[test]
fn a_rule_breaking_its_partition_claim_faults_naming_the_key() {
    let wd = Workdir::new();
    let event = |uuid: &str, user: &str| {
        serde_json::json!({
            "uuid": uuid,
            "published": "2026-03-01T10:00:00.000Z",
            "eventType": "user.session.start",
            "actor": {"id": user, "type": "User", "alternateId": format!("{user}@corp.example")},
            "outcome": {"result": "SUCCESS"}
        })
        .to_string()
    };
    let lines = [
        event("e1", "00ualice"),
        event("e2", "00ubob"),
        event("e3", "00ualice"),
    ];
    let body = format!(
        "builtin_pack = false\nshards = 1\n[[rules]]\npath = {GUEST_SEQUENCER:?}\n\
         config = {{ shared_key = \"everyone\" }}\n"
    );
    run_config(&wd, &body, &lines);

    let faults = wd.records_of("rule-fault");
    assert_eq!(faults.len(), 1, "{faults:#?}");
    assert_eq!(faults[0]["event_id"], "e2");
    assert_eq!(faults[0]["fault"], "partition");
    let message = faults[0]["message"].as_str().unwrap();
    assert!(
        message.contains("\"everyone\"") && message.contains("subject-user"),
        "{message}"
    );
    let judged: Vec<Value> = wd
        .records_of("finding")
        .into_iter()
        .map(|f| f["event_id"].clone())
        .collect();
    assert_eq!(
        judged,
        ["e1", "e3"],
        "alice's events, counted under the key"
    );
}

// The sandbox holds on every shard: a rule that never returns for one
// user, whose partition the second shard owns, times out there on each of
// that user's events (the deadline, on a shard thread), while the same
// rule's instance on the first shard judges the other user's events in
// between, in order.
#[test]
fn a_runaway_call_on_the_second_shard_times_out_and_the_first_goes_on() {
    let on_shard = |shard: u64| {
        (0..)
            .map(|i| format!("00uuser{i}"))
            .find(|u| vigil_sdk::partition_of(u) % 2 == shard)
            .unwrap()
    };
    let (calm, spin) = (on_shard(0), on_shard(1));
    let event = |uuid: String, user: &str| {
        serde_json::json!({
            "uuid": uuid,
            "published": "2026-03-01T10:00:00.000Z",
            "eventType": "user.session.start",
            "actor": {"id": user, "type": "User"},
            "outcome": {"result": "SUCCESS"}
        })
        .to_string()
    };
    let lines: Vec<String> = (0..6)
        .flat_map(|i| [event(format!("c{i}"), &calm), event(format!("s{i}"), &spin)])
        .collect();
    let wd = Workdir::new();
    let body = format!(
        "builtin_pack = false\nshards = 2\n[[rules]]\npath = {GUEST_SEQUENCER:?}\n\
         config = {{ spin_user = {spin:?} }}\nlimits = {{ quarantine_after = 100 }}\n"
    );
    run_config(&wd, &body, &lines);

    let faults = wd.records_of("rule-fault");
    let faulted: Vec<&str> = faults
        .iter()
        .map(|f| f["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(faulted, ["s0", "s1", "s2", "s3", "s4", "s5"]);
    assert!(
        faults.iter().all(|f| f["fault"] == "timeout"),
        "{faults:#?}"
    );
    let judged: Vec<(Value, Value)> = wd
        .records_of("finding")
        .into_iter()
        .map(|f| (f["event_id"].clone(), f["details"]["n"].clone()))
        .collect();
    let want: Vec<(Value, Value)> = (0..6)
        .map(|i| (format!("c{i}").into(), (i + 1).to_string().into()))
        .collect();
    assert_eq!(judged, want, "the calm user's events, numbered in order");
}
