//! Throughput of the rule path, Wasm against the native physical limit, in
//! one run (`cargo bench -p vigil-host --bench throughput`).
//!
//! The stream: realistic ~2.2 KB Okta `deny_push` events (every one routed to
//! `mfa-push-fatigue`) for 20 000 users, a few bursts that fire. Measured,
//! each as the median of several passes over the whole stream:
//!
//! - `parse`: JSON line → normalized event (the host's normalizer);
//! - `native rule`: the rule compiled natively, called as a plain function
//!   on pre-parsed events with the SDK's mock host (same state code);
//! - `wasm rule`: the built-in component called through wasmtime on the same
//!   pre-parsed events (host state, policy gate, output capture);
//! - `native end to end` = parse + native rule;
//! - `wasm end to end`: the real pipeline from JSON lines, audit log on.
//!
//! The mixed stream adds 9 unrouted events per routed one, closer to a real
//! tenant's traffic. The same rule and the whole pack as built against
//! contract v0.1 (`tests/fixtures/v0.1`, the whole event lowered on every
//! call) run beside today's v0.2 builds (the rule reads what it needs).
//! Figures go to BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mfa_push_fatigue::MfaPushFatigue;
use vigil_host::audit::AuditLog;
use vigil_host::cli::setup;
use vigil_host::config::Config;
use vigil_host::model::{Event, EventClass, Outcome};
use vigil_host::normalize::Normalizer;
use vigil_host::pipeline::Pipeline;
use vigil_host::sources::Line;
use vigil_sdk as sdk;

const USERS: usize = 20_000;
const EVENTS: usize = 100_000;
/// Timed passes per row (the median is reported); `VIGIL_BENCH_PASSES`
/// overrides it.
fn passes() -> usize {
    std::env::var("VIGIL_BENCH_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1)
}

fn main() {
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/sample-events.jsonl"
    ))
    .expect("sample events");
    let deny = sample
        .lines()
        .find(|l| l.contains("\"user.mfa.okta_verify.deny_push\""))
        .expect("a deny_push template");
    let benign = sample
        .lines()
        .find(|l| l.contains("\"user.session.start\""))
        .expect("a session.start template");

    let routed = stream(deny, None);
    let mixed = stream(deny, Some(benign));
    println!(
        "machine: {} cores; stream: {} events, {} bytes/line avg",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        routed.len(),
        routed.iter().map(String::len).sum::<usize>() / routed.len()
    );

    let normalizer = Normalizer::default();
    let parse = median(|| {
        let mut out = Vec::with_capacity(1);
        for l in &routed {
            out.clear();
            normalizer.normalize_line(l, &mut out).unwrap();
        }
    });
    // `VIGIL_BENCH_ONLY=parse`: only the normalizer (the hot path's parse
    // step), without building the rule pack; for before/after comparisons of
    // normalizer changes.
    if std::env::var("VIGIL_BENCH_ONLY").as_deref() == Ok("parse") {
        let mixed_parse = median(|| {
            let mut out = Vec::with_capacity(1);
            for l in &mixed {
                out.clear();
                normalizer.normalize_line(l, &mut out).unwrap();
            }
        });
        let per = |d: Duration, n: usize| d.as_nanos() as f64 / n as f64;
        println!(
            "parse (JSON line -> event)        {:>8.0} ns/event",
            per(parse, routed.len())
        );
        println!(
            "mixed stream parse                {:>8.0} ns/event",
            per(mixed_parse, mixed.len())
        );
        return;
    }
    // `VIGIL_BENCH_ONLY=pack` (or `pack-v0.1`, the frozen builds): only the
    // whole pack on the mixed stream, one pass (for a profiler: `perf
    // record` on this run). `pack-split`: the same stream cut in two by
    // user (each user's events, with the filler after them, on one side)
    // and run by two independent pipelines on two threads at once — not
    // Vigil's shards, an upper bound on what two shards could gain on this
    // machine (nothing shared: no gate, store or audit log in common).
    let only = std::env::var("VIGIL_BENCH_ONLY").unwrap_or_default();
    if only == "pack" || only == "pack-v0.1" {
        // `VIGIL_BENCH_SHARDS=N`: on N shards (default 1).
        let shards = std::env::var("VIGIL_BENCH_SHARDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        // `VIGIL_BENCH_STREAM=spread`: the spread stream instead.
        let lines = if std::env::var("VIGIL_BENCH_STREAM").as_deref() == Ok("spread") {
            spread_stream(deny, benign)
        } else {
            mixed.clone()
        };
        let t = Instant::now();
        run_pack(&lines, only == "pack-v0.1", shards);
        let ns = t.elapsed().as_nanos() as f64 / lines.len() as f64;
        println!(
            "whole pack, {shards} shard(s): {ns:.0} ns/event (one pass, untimed setup included)"
        );
        return;
    }
    // `pack-shards`: the whole pack in one pipeline on 1 and 2 shards
    // (`shards` in the configuration), median of `VIGIL_BENCH_PASSES`
    // passes each, setup untimed.
    // Two streams: `mixed` (the filler is one user, one partition) and
    // `spread` (see `spread_stream`).
    if only == "pack-shards" {
        let spread = spread_stream(deny, benign);
        if let Ok(path) = std::env::var("VIGIL_BENCH_WRITE_SPREAD") {
            std::fs::write(path, spread.join("\n") + "\n").unwrap();
            return;
        }
        for (name, lines) in [("spread", &spread), ("mixed", &mixed)] {
            let per = |d: Duration| d.as_nanos() as f64 / lines.len() as f64;
            let mut one = None;
            for shards in [1, 2] {
                let d = median_after(
                    || pack_pipeline(false, shards),
                    |(_dir, mut pipeline)| feed(&mut pipeline, lines),
                );
                let base = *one.get_or_insert(d);
                println!(
                    "whole pack, {name} stream ({} events), {shards} shard(s): {:.0} ns/event ({:.0}/s), {:.2}x one shard",
                    lines.len(),
                    per(d),
                    1e9 / per(d),
                    base.as_secs_f64() / d.as_secs_f64()
                );
            }
        }
        return;
    }
    if only == "pack-split" {
        let mut halves: [Vec<String>; 2] = Default::default();
        let mut side = 0;
        for line in &mixed {
            if let Some(at) = line.find("00ubench") {
                side = line[at + 8..at + 16].parse::<usize>().unwrap() % 2;
            }
            halves[side].push(line.clone());
        }
        let t = Instant::now();
        run_pack(&mixed, false, 1);
        let one = t.elapsed();
        let t = Instant::now();
        std::thread::scope(|s| {
            for half in &halves {
                s.spawn(move || run_pack(half, false, 1));
            }
        });
        let two = t.elapsed();
        let per = |d: Duration| d.as_nanos() as f64 / mixed.len() as f64;
        println!(
            "whole pack, mixed stream: one pipeline {:.0} ns/event ({:.0}/s); two pipelines on two threads, each on half the users: {:.0} ns/event ({:.0}/s), {:.2}x (halves: {} and {} lines)",
            per(one),
            1e9 / per(one),
            per(two),
            1e9 / per(two),
            one.as_secs_f64() / two.as_secs_f64(),
            halves[0].len(),
            halves[1].len()
        );
        return;
    }
    let parsed: Vec<Event> = routed
        .iter()
        .map(|l| {
            let mut out = Vec::new();
            normalizer.normalize_line(l, &mut out).unwrap();
            out.pop().unwrap()
        })
        .collect();

    // Native: the same rule as a plain function on SDK events.
    let sdk_events: Vec<sdk::EventData> = parsed.iter().map(to_sdk).collect();
    let native_rule = median(|| {
        let mut host = sdk::testing::MockHost::new();
        host.declare::<MfaPushFatigue>();
        for e in &sdk_events {
            std::hint::black_box(host.call::<MfaPushFatigue>(e).unwrap());
        }
    });

    // Wasm: the built-in component through wasmtime.
    let shared: Vec<Arc<Event>> = parsed.iter().cloned().map(Arc::new).collect();
    let wasm_rule = median_after(
        || setup::load_rules(&Config::builtin_default()).unwrap(),
        |rules| call_first_rule(rules, &shared),
    );

    // The same rule as built against contract v0.1 (the frozen build in
    // tests/fixtures/v0.1): the whole event record lowered on every call.
    let frozen_push_fatigue = format!(
        "builtin_pack = false\n[[rules]]\npath = {:?}\nallow = [\"suspend-user\", \"revoke-sessions\", \"escalate\"]\n",
        frozen("mfa-push-fatigue")
    );
    let wasm_rule_v01 = median_after(
        || {
            let mut config = Config::parse(&frozen_push_fatigue).unwrap();
            config.grant_declared_actions = true;
            setup::load_rules(&config).unwrap()
        },
        |rules| call_first_rule(rules, &shared),
    );

    // The push-fatigue rule alone, as the native baseline; or the whole pack.
    let only_push_fatigue = "builtin_pack = false\n[[rules]]\nbuiltin = \"mfa-push-fatigue\"\nallow = [\"suspend-user\", \"revoke-sessions\", \"escalate\"]\n";
    let wasm_e2e = |lines: &[String], config_text: Option<&str>, disk: bool| {
        median_after(
            || {
                let dir = tempfile::tempdir().unwrap();
                let mut config =
                    config_text.map_or_else(Config::builtin_default, |t| Config::parse(t).unwrap());
                // As the built-in default: rules without `allow` get what
                // they declare (audit-only). One shard: these rows compare
                // the call path with earlier figures (`pack-shards` for more).
                config.grant_declared_actions = true;
                config.shards = Some(1);
                config.audit_path = dir.path().join("audit.jsonl");
                // The durable store on disk, as in production: rule state,
                // budgets and idempotency keys are written as they would be.
                config.state_path = dir.path().join("state.db");
                let rules = setup::load_rules(&config).unwrap();
                let executor = if disk {
                    setup::executor(&config, &rules).unwrap()
                } else {
                    // The same writes into an in-memory SQLite: what the
                    // disk (fsync, page cache) adds is the difference.
                    vigil_host::executor::ActionExecutor::log_only().unwrap()
                };
                let audit = AuditLog::open(&config.audit_path).unwrap();
                // The reader hands the pipeline owned lines; build them untimed.
                let input: Vec<Line> = lines.iter().map(|l| Line::Text(l.clone())).collect();
                (dir, Pipeline::new(rules, audit, executor).unwrap(), input)
            },
            |(_dir, mut pipeline, input)| {
                for (i, line) in input.into_iter().enumerate() {
                    pipeline.process_line("bench", i as u64 + 1, line).unwrap();
                }
                let stats = pipeline.finish().unwrap();
                assert_eq!(stats.faults, 0);
                assert!(stats.findings > 0);
            },
        )
    };
    let e2e_routed = wasm_e2e(&routed, Some(only_push_fatigue), true);
    let e2e_routed_mem = wasm_e2e(&routed, Some(only_push_fatigue), false);
    let e2e_mixed = wasm_e2e(&mixed, Some(only_push_fatigue), true);
    let e2e_mixed_pack = wasm_e2e(&mixed, None, true);
    let e2e_mixed_pack_v01 = wasm_e2e(&mixed, Some(&frozen_pack()), true);
    let mixed_parse = median(|| {
        let mut out = Vec::with_capacity(1);
        for l in &mixed {
            out.clear();
            normalizer.normalize_line(l, &mut out).unwrap();
        }
    });

    let per = |d: Duration, n: usize| d.as_nanos() as f64 / n as f64;
    let n = routed.len();
    let rows = [
        ("parse (JSON line -> event)", per(parse, n), None),
        ("native rule (plain function)", per(native_rule, n), None),
        (
            "wasm rule (component call)",
            per(wasm_rule, n),
            Some(per(native_rule, n)),
        ),
        (
            "wasm rule, its v0.1 build (whole record)",
            per(wasm_rule_v01, n),
            Some(per(native_rule, n)),
        ),
        (
            "native end to end (parse + rule)",
            per(parse + native_rule, n),
            None,
        ),
        (
            "wasm end to end (pipeline)",
            per(e2e_routed, n),
            Some(per(parse + native_rule, n)),
        ),
        (
            "wasm end to end, state store in memory",
            per(e2e_routed_mem, n),
            Some(per(parse + native_rule, n)),
        ),
        (
            "mixed stream, native (parse + rule on 10%)",
            per(mixed_parse + native_rule / 10, mixed.len()),
            None,
        ),
        (
            "mixed stream, wasm end to end",
            per(e2e_mixed, mixed.len()),
            Some(per(mixed_parse + native_rule / 10, mixed.len())),
        ),
        (
            "mixed stream, whole built-in pack",
            per(e2e_mixed_pack, mixed.len()),
            Some(per(mixed_parse, mixed.len())),
        ),
        (
            "mixed stream, the pack's v0.1 builds",
            per(e2e_mixed_pack_v01, mixed.len()),
            Some(per(mixed_parse, mixed.len())),
        ),
    ];
    println!(
        "{:<46} {:>10} {:>12} {:>9}",
        "path", "ns/event", "events/s", "vs base"
    );
    for (name, ns, baseline) in rows {
        let ratio = baseline.map_or("".to_string(), |b| format!("{:.2}x", ns / b));
        println!("{name:<46} {ns:>10.0} {:>12.0} {ratio:>9}", 1e9 / ns);
    }
}

/// `EVENTS` deny_push lines for `USERS` users, 4 per user within 10 minutes
/// (a near miss) except every 1000th user, who gets 6 (a burst that fires).
/// With `filler`, 9 unrouted events follow each routed one.
fn stream(template: &str, filler: Option<&str>) -> Vec<String> {
    let user_id = field(template, "\"id\":\"", "\"");
    let login = field(template, "\"alternateId\":\"", "\"");
    let uuid = field(template, "\"uuid\":\"", "\"");
    let published = field(template, "\"published\":\"", "\"");
    let mut lines = Vec::new();
    let base = 1_772_438_400_000i64; // 2026-03-02T08:00:00Z
    for i in 0..EVENTS {
        let user = i % USERS;
        let round = i / USERS;
        let t = base + (round as i64) * 60_000 + (user as i64) * 7;
        let time = chrono::DateTime::from_timestamp_millis(t)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let line = template
            .replace(user_id, &format!("00ubench{user:08}"))
            .replace(login, &format!("user{user}@example.com"))
            .replace(uuid, &format!("bench-{i:012}"))
            .replace(published, &time);
        // Rounds 0-3 give every user 4 denials; only every 1000th user gets a 5th.
        if round < 4 || user.is_multiple_of(1000) {
            lines.push(line);
            if let Some(f) = filler {
                for j in 0..9 {
                    lines.push(
                        f.replace(field(f, "\"uuid\":\"", "\""), &format!("fill-{i:012}-{j}")),
                    );
                }
            }
        }
    }
    lines
}

/// The mixed stream as many users make it: each denial followed by nine
/// sign-ins *of the same user* a few milliseconds later, every user from
/// an address of its own (in [`stream`] the filler is one user from one
/// address, a single partition). What shards can split. A tenth of the
/// users, ten events each per round: as many events as `mixed`.
fn spread_stream(deny: &str, benign: &str) -> Vec<String> {
    let user_of = |l: &str| field(l, "00ubench", "\"").parse::<usize>().unwrap();
    let ip = |user: usize| {
        format!(
            "10.{}.{}.{}",
            (user >> 16) & 255,
            (user >> 8) & 255,
            user & 255
        )
    };
    let b_user = field(benign, "\"id\":\"", "\"");
    let b_login = field(benign, "\"alternateId\":\"", "\"");
    let b_uuid = field(benign, "\"uuid\":\"", "\"");
    let b_published = field(benign, "\"published\":\"", "\"");
    let b_ip = field(benign, "\"ipAddress\":\"", "\"");
    let d_ip = field(deny, "\"ipAddress\":\"", "\"");
    let mut lines = Vec::new();
    // A tenth of the users, so the stream is as long as `mixed`.
    for line in stream(deny, None) {
        let user = user_of(&line);
        if user >= USERS / 10 {
            continue;
        }
        let time = field(&line, "\"published\":\"", "\"").to_owned();
        let at = chrono::DateTime::parse_from_rfc3339(&time)
            .unwrap()
            .timestamp_millis();
        let uuid = field(&line, "\"uuid\":\"", "\"").to_owned();
        lines.push(line.replace(d_ip, &ip(user)));
        for j in 0..9 {
            let t = chrono::DateTime::from_timestamp_millis(at + 1 + j)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            lines.push(
                benign
                    .replace(b_user, &format!("00ubench{user:08}"))
                    .replace(b_login, &format!("user{user}@example.com"))
                    .replace(b_uuid, &format!("{uuid}-fill-{j}"))
                    .replace(b_published, &t)
                    .replace(b_ip, &ip(user)),
            );
        }
    }
    lines
}

fn field<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let from = s.find(start).unwrap() + start.len();
    let to = from + s[from..].find(end).unwrap();
    &s[from..to]
}

/// A pipeline of the whole pack (today's builds, or the frozen v0.1 ones)
/// on `shards` shards: state and audit log on disk in a temporary
/// directory.
fn pack_pipeline(v01: bool, shards: usize) -> (tempfile::TempDir, Pipeline) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = if v01 {
        let mut c = Config::parse(&frozen_pack()).unwrap();
        c.grant_declared_actions = true;
        c
    } else {
        Config::builtin_default()
    };
    config.shards = Some(shards);
    config.audit_path = dir.path().join("audit.jsonl");
    config.state_path = dir.path().join("state.db");
    let rules = setup::load_rules(&config).unwrap();
    let executor = setup::executor(&config, &rules).unwrap();
    let audit = AuditLog::open(&config.audit_path).unwrap();
    (dir, Pipeline::new(rules, audit, executor).unwrap())
}

/// Runs `lines` through the whole pack (today's builds, or the frozen
/// v0.1 ones) in a pipeline of its own on `shards` shards.
fn run_pack(lines: &[String], v01: bool, shards: usize) {
    let (_dir, mut pipeline) = pack_pipeline(v01, shards);
    feed(&mut pipeline, lines);
}

/// Every line through the pipeline, then its end of run.
fn feed(pipeline: &mut Pipeline, lines: &[String]) {
    for (i, line) in lines.iter().enumerate() {
        pipeline
            .process_line("bench", i as u64 + 1, Line::Text(line.clone()))
            .unwrap();
    }
    let stats = pipeline.finish().unwrap();
    assert_eq!(stats.faults, 0);
}

/// A frozen v0.1 build of the pack (`tests/fixtures/v0.1`).
fn frozen(id: &str) -> String {
    format!(
        "{}/../tests/fixtures/v0.1/{id}.wasm",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A configuration of the whole pack as built against contract v0.1.
fn frozen_pack() -> String {
    vigil_host::builtin::ids()
        .into_iter()
        .map(|id| format!("[[rules]]\npath = {:?}\n", frozen(id)))
        .fold("builtin_pack = false\n".to_owned(), |acc, r| acc + &r)
}

/// Calls the first loaded rule on every event (the component call alone).
fn call_first_rule(mut rules: vigil_host::rules::RuleSet, events: &[Arc<Event>]) {
    let rule = &mut rules.rules[0];
    for e in events {
        let outcome = rule.on_event(e);
        assert!(outcome.fault.is_none(), "{:?}", outcome.fault);
        std::hint::black_box(outcome);
    }
}

/// Like [`median`], with an untimed `setup` before each pass.
fn median_after<S>(mut setup: impl FnMut() -> S, mut f: impl FnMut(S)) -> Duration {
    f(setup()); // warm-up
    let mut times: Vec<Duration> = (0..passes())
        .map(|_| {
            let state = setup();
            let t = Instant::now();
            f(state);
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn median(mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let mut times: Vec<Duration> = (0..passes())
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn to_sdk(e: &Event) -> sdk::EventData {
    let principal = |p: &vigil_host::model::Principal| sdk::Principal {
        id: p.id.clone(),
        kind: p.kind.clone(),
        login: p.login.clone(),
        display_name: p.display_name.clone(),
    };
    sdk::EventData {
        id: e.id.clone(),
        source: e.source.clone(),
        kind: e.kind.clone(),
        class: match e.class {
            EventClass::Authentication => sdk::EventClass::Authentication,
            EventClass::MfaChallenge => sdk::EventClass::MfaChallenge,
            EventClass::FactorChange => sdk::EventClass::FactorChange,
            EventClass::PolicyChange => sdk::EventClass::PolicyChange,
            EventClass::AccountChange => sdk::EventClass::AccountChange,
            EventClass::Session => sdk::EventClass::Session,
            EventClass::Other => sdk::EventClass::Other,
        },
        time: e.time,
        actor: e.actor.as_ref().map(principal),
        targets: e.targets.iter().map(principal).collect(),
        outcome: match e.outcome {
            Outcome::Success => sdk::Outcome::Success,
            Outcome::Failure => sdk::Outcome::Failure,
            Outcome::Unknown => sdk::Outcome::Unknown,
        },
        outcome_reason: e.outcome_reason.clone(),
        client_ip: e.client_ip.clone(),
        geo: e.geo.as_ref().map(|g| sdk::Geo {
            country: g.country.clone(),
            city: g.city.clone(),
            lat: g.lat,
            lon: g.lon,
        }),
        user_agent: e.user_agent.clone(),
        factor: e.factor.clone(),
        attributes: e.attributes.clone(),
        raw: Vec::new(),
    }
}
