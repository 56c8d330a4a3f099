//! Load figure for the service (not a test): starts the real `vigil`
//! binary with the built-in pack and `[server]` on loopback, posts
//! realistic Okta Event Hook deliveries from several client threads for a
//! fixed time, and reports
//! - sustained events/s: events accepted ÷ the time from the first POST to
//!   the moment the pipeline has processed (and synced) the last of them;
//! - POST latency (client side: request sent → 200 received) p50/p99;
//! - ingest-to-decision latency p50/p99: from a delivery being queued to
//!   every event of it having gone through the rules with the audit log
//!   synced, read from the `vigil_ingest_to_decision_seconds` histogram
//!   (interpolated within its ×2 buckets, so coarse).
//!
//! `cargo bench -p vigil-host --bench service_load` (env: `VIGIL_LOAD_SECS`,
//! default 10; `VIGIL_LOAD_CLIENTS`, default 4; `VIGIL_LOAD_BATCH`, events
//! per delivery, default 50; `VIGIL_LOAD_RATE`, offered events/s over all
//! clients, default 0 = as fast as the service answers; `VIGIL_BIN`, another
//! build of the binary to load instead, e.g. a baseline). The clients run on
//! the same machine and cost CPU too: request bodies are pre-serialized
//! templates with the uuid spliced in, to keep that cost small.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const SECRET: &str = "Basic bG9hZC10ZXN0";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let secs = env_or("VIGIL_LOAD_SECS", 10);
    let clients = env_or("VIGIL_LOAD_CLIENTS", 4) as usize;
    let batch = env_or("VIGIL_LOAD_BATCH", 50) as usize;
    let rate = env_or("VIGIL_LOAD_RATE", 0);
    // Each client's pause between deliveries when the rate is paced.
    let pace =
        (rate > 0).then(|| Duration::from_secs_f64(clients as f64 * batch as f64 / rate as f64));

    // Templates: the sample stream (222 Okta/Entra records, 20 users, one
    // push-bombing burst); only the Okta ones, since hooks carry Okta events.
    let samples = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/sample-events.jsonl"
    ))
    .unwrap();
    // Split around the uuid so a body is built by concatenation.
    let templates: Vec<(String, String)> = samples
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("eventType").is_some())
        .map(|mut v| {
            v["uuid"] = json!("@@UUID@@");
            let text = v.to_string();
            let (a, b) = text.split_once("@@UUID@@").unwrap();
            (a.to_owned(), b.to_owned())
        })
        .collect();
    let avg_len = templates
        .iter()
        .map(|(a, b)| a.len() + b.len() + 17)
        .sum::<usize>()
        / templates.len();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        "audit_path = \"audit.jsonl\"\ncache_dir = \"cache\"\n\
         [server]\nlisten = \"127.0.0.1:0\"\nokta_hook_secret_env = \"LOAD_HOOK_SECRET\"\n\
         admin_token_env = \"LOAD_ADMIN_TOKEN\"\n",
    )
    .unwrap();
    // VIGIL_BIN: another build of the binary (a baseline) under the same load.
    let vigil = std::env::var("VIGIL_BIN").unwrap_or_else(|_| VIGIL.to_owned());
    let mut child = Command::new(vigil)
        .args(["run", "--config", config.to_str().unwrap()])
        .current_dir(dir.path())
        .env("LOAD_HOOK_SECRET", SECRET)
        .env("LOAD_ADMIN_TOKEN", "load")
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vigil");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("vigil: listening on http://") {
                let _ = tx.send(a.trim().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(600))
        .expect("vigil did not start");
    let hook = format!("http://{addr}/v1/hooks/okta");
    let metrics_url = format!("http://{addr}/metrics");

    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(0));
    let accepted_events = Arc::new(AtomicU64::new(0));
    let accepted_deliveries = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let templates = Arc::new(templates);
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (hook, stop, seq) = (hook.clone(), stop.clone(), seq.clone());
            let (ae, ad, refused) = (
                accepted_events.clone(),
                accepted_deliveries.clone(),
                refused.clone(),
            );
            let (latencies, templates) = (latencies.clone(), templates.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut mine = Vec::new();
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(pace) = pace {
                        next += pace;
                        if let Some(wait) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let first = seq.fetch_add(batch as u64, Ordering::Relaxed);
                    let mut body = String::with_capacity(batch * 2200);
                    body.push_str(r#"{"eventType":"com.okta.event_hook","cloudEventsVersion":"0.1","eventId":"d-"#);
                    body.push_str(&first.to_string());
                    body.push_str(r#"","data":{"events":["#);
                    for n in first..first + batch as u64 {
                        let (a, b) = &templates[n as usize % templates.len()];
                        if n > first {
                            body.push(',');
                        }
                        body.push_str(a);
                        body.push_str(&format!("load-{n:012}"));
                        body.push_str(b);
                    }
                    body.push_str("]}}");
                    let sent = Instant::now();
                    let r = client
                        .post(&hook)
                        .header("Authorization", SECRET)
                        .header("Content-Type", "application/json")
                        .body(body)
                        .send()
                        .expect("post");
                    let took = sent.elapsed();
                    if r.status().is_success() {
                        mine.push(took);
                        ae.fetch_add(batch as u64, Ordering::Relaxed);
                        ad.fetch_add(1, Ordering::Relaxed);
                    } else {
                        assert_eq!(r.status().as_u16(), 503, "unexpected answer");
                        refused.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let posting_done = started.elapsed();
    // Wait until the pipeline has finished every accepted delivery.
    let deliveries = accepted_deliveries.load(Ordering::Relaxed) as f64;
    let client = reqwest::blocking::Client::new();
    let metrics = loop {
        let text = client
            .get(&metrics_url)
            .bearer_auth("load")
            .send()
            .unwrap()
            .text()
            .unwrap();
        let m = parse(&text);
        if m.get("vigil_ingest_to_decision_seconds_count").copied() >= Some(deliveries) {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let processed_at = started.elapsed();
    // SIGTERM: the service must drain and exit 0.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();

    let events = accepted_events.load(Ordering::Relaxed);
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    let offered = if rate > 0 {
        format!("offered {rate} events/s")
    } else {
        "unpaced".to_owned()
    };
    println!(
        "service load: {clients} clients × hook deliveries of {batch} Okta events (avg {avg_len} B/event), {offered}, {secs} s, built-in pack (7 rules)"
    );
    println!(
        "  accepted: {events} events in {} deliveries; refused 503: {}",
        deliveries,
        refused.load(Ordering::Relaxed)
    );
    println!(
        "  sustained: {:.0} events/s (accepted events ÷ {:.2} s from the first POST to the last event processed; posting stopped at {:.2} s)",
        events as f64 / processed_at.as_secs_f64(),
        processed_at.as_secs_f64(),
        posting_done.as_secs_f64()
    );
    println!(
        "  POST → 200 latency: p50 {:.2} ms, p99 {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    println!(
        "  ingest → decision (queued → processed + audit synced): p50 ≈ {:.2} ms, p99 ≈ {:.2} ms (histogram)",
        quantile(&metrics, "vigil_ingest_to_decision_seconds", 0.50) * 1e3,
        quantile(&metrics, "vigil_ingest_to_decision_seconds", 0.99) * 1e3
    );
    if metrics.contains_key("vigil_spool_write_seconds_count") {
        println!(
            "  spool write (a delivery made durable before its 200): p50 ≈ {:.2} ms, p99 ≈ {:.2} ms (histogram)",
            quantile(&metrics, "vigil_spool_write_seconds", 0.50) * 1e3,
            quantile(&metrics, "vigil_spool_write_seconds", 0.99) * 1e3
        );
    }
    println!(
        "  rule calls: {:.0}",
        metrics
            .iter()
            .filter(|(k, _)| k.starts_with("vigil_rule_calls_total"))
            .map(|(_, v)| v)
            .sum::<f64>()
    );
    println!("  shutdown: {status}");
}

/// `name{labels}` → value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// A quantile of the histogram `name` (e.g.
/// `vigil_ingest_to_decision_seconds`), interpolated linearly within the
/// bucket it falls in.
fn quantile(m: &BTreeMap<String, f64>, name: &str, q: f64) -> f64 {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = m
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix(prefix.as_str())?.strip_suffix("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, *v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
    let target = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, count) in buckets {
        if count >= target {
            if le.is_infinite() {
                return lower;
            }
            let share = if count > below {
                (target - below) / (count - below)
            } else {
                0.0
            };
            return lower + (le - lower) * share;
        }
        lower = le;
        below = count;
    }
    lower
}
