//! Load figures for replicas on NATS JetStream (not a test). In one run,
//! under the same offered load as `service_load` (Okta Event Hook
//! deliveries built from the sample stream's Okta records, whole built-in
//! pack, audit-only):
//!
//! 1. **baseline**: one `vigil` without `[cluster]` (the local spool);
//! 2. **1, 2 and 3 replicas** (`[cluster]` + `[server]`) on one fresh
//!    `nats-server -js` each time; the clients spread their deliveries
//!    round-robin over the replicas' listeners (delivery k of client i goes
//!    to replica (i + k) mod n). Reported: sustained events/s = accepted
//!    events ÷ the time from the first POST until every accepted event has
//!    been judged under every kind (the sum over replicas of
//!    `vigil_events_received_total{source="jetstream"}` reaches accepted ×
//!    kinds, the kinds read from the replicas' `kinds=[…]` log line), and
//!    also until every shard consumer has acknowledged everything (ack
//!    after the audit sync); POST → 2xx p50/p99; ratios to the baseline;
//!    the CPU each kind of process used;
//! 3. **takeover**: 3 replicas with `lease_ttl_secs = 3`, `ack_wait_secs =
//!    5`, a light paced load; `kill -9` of one replica (the load goes on,
//!    a post that cannot connect is sent to the next replica), then a probe
//!    delivery (every template once: every shard that has traffic gets
//!    some) posted to a survivor. Reported, from the kill: until the
//!    survivors own every shard (sum of `vigil_cluster_shards_owned`);
//!    until every shard consumer has been seen, after the probe was
//!    accepted, with nothing pending (the probe handed to live owners) and
//!    with nothing pending or unacknowledged (all judged); the rebuilds the
//!    survivors logged after the kill (`rebuilt=`, `took_ms=`); the
//!    redeliveries (deliveries beyond one per stored message).
//!
//! Every process is stopped with SIGTERM at the end of its part (the killed
//! one excepted) and its exit status printed.
//!
//! `cargo bench -p vigil-host --profile dev --bench cluster_load` (env:
//! `VIGIL_LOAD_SECS`, default 10; `VIGIL_LOAD_CLIENTS`, default 4;
//! `VIGIL_LOAD_BATCH`, events per delivery, default 50; `VIGIL_LOAD_RATE`,
//! offered events/s over all clients, default 0 = as fast as answered;
//! `VIGIL_CLUSTER_SHARDS`, default 16; `VIGIL_TAKEOVER_RATE`, default 200;
//! `VIGIL_TAKEOVER_WARMUP_SECS`, load before the kill, default 10;
//! `VIGIL_TAKEOVER_AFTER_SECS`, load after it, default 10;
//! `VIGIL_CLUSTER_PARTS`, which parts to run, default
//! `baseline,1,2,3,takeover`; `VIGIL_CLUSTER_LOG_DIR`, where to keep the
//! replicas' logs). The dev profile keeps the build short (dependencies,
//! wasmtime among them, are optimized; Vigil's own crates are not):
//! compare the parts of one run with each other, not with release
//! figures. Everything — replicas, nats-server, the client threads —
//! shares one machine's cores. Needs `nats-server` (see
//! `vigil_test_support::nats`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use vigil_test_support::nats::{NatsGuard, start_nats};
use vigil_test_support::process::VigilProcess;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const SECRET: &str = "Basic bG9hZC10ZXN0";
const ADMIN: &str = "load";
const JUDGED: &str = "vigil_events_received_total{source=\"jetstream\"}";
const OWNED: &str = "vigil_cluster_shards_owned";
/// How long any wait of the bench may take before it gives up.
const PATIENCE: Duration = Duration::from_secs(600);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The offered load, the same in every part.
#[derive(Clone, Copy)]
struct Load {
    secs: u64,
    clients: usize,
    batch: usize,
    /// Offered events/s over all clients; 0 = unpaced.
    rate: u64,
}

fn main() {
    let load = Load {
        secs: env_or("VIGIL_LOAD_SECS", 10),
        clients: env_or("VIGIL_LOAD_CLIENTS", 4) as usize,
        batch: env_or("VIGIL_LOAD_BATCH", 50) as usize,
        rate: env_or("VIGIL_LOAD_RATE", 0),
    };
    let shards = env_or("VIGIL_CLUSTER_SHARDS", 16);
    let templates = Arc::new(templates());
    let avg_len = templates
        .iter()
        .map(|(a, b)| a.len() + b.len() + 17)
        .sum::<usize>()
        / templates.len();
    // One compilation cache for every process of the run.
    let run = tempfile::tempdir().unwrap();
    let cache = run.path().join("cache");
    let offered = if load.rate > 0 {
        format!("offered {} events/s", load.rate)
    } else {
        "unpaced".to_owned()
    };
    println!(
        "cluster load: {} clients × hook deliveries of {} Okta events (avg {avg_len} B/event), {offered}, {} s, built-in pack, audit-only; {shards} shards per kind",
        load.clients, load.batch, load.secs
    );

    // VIGIL_CLUSTER_PARTS: a comma list of baseline, 1, 2, 3, takeover
    // (default: all of them).
    let parts = std::env::var("VIGIL_CLUSTER_PARTS")
        .unwrap_or_else(|_| "baseline,1,2,3,takeover".to_owned());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);

    // 1. The baseline: one process, the local spool.
    let base = part("baseline").then(|| baseline(load, &templates, &cache));
    let mut rows = Vec::new();
    if let Some(base) = &base {
        base.print("baseline (no [cluster], local spool)", None);
        rows.push(("baseline: 1 process, spool".to_owned(), base.clone()));
    }

    // 2. 1, 2, 3 replicas, a fresh nats-server each.
    for n in 1..=3 {
        if part(&n.to_string()) {
            let f = replicas(n, shards, load, &templates, &cache);
            f.print(&format!("{n} replica(s) on JetStream"), base.as_ref());
            rows.push((format!("{n} replica(s), JetStream"), f));
        }
    }

    if !rows.is_empty() {
        println!(
            "\n| setup | accepted | 503s | sustained events/s | vs baseline | POST → 2xx p50 / p99 | vs baseline | all shards drained at | CPU cores: vigil / nats-server / bench |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    for (name, f) in &rows {
        let vs = |a: f64, b: fn(&Figures) -> f64| {
            base.as_ref()
                .map(|base| format!("{:.2}×", a / b(base)))
                .unwrap_or_default()
        };
        let wall = f.judged_at.as_secs_f64();
        let cores = |k: &str| f.cpu.get(k).copied().unwrap_or(0.0) / wall;
        println!(
            "| {name} | {} | {} | {:.0} | {} | {:.1} / {:.1} ms | {} / {} | {} | {:.2} / {:.2} / {:.2} |",
            f.accepted,
            f.refused,
            f.sustained(),
            vs(f.sustained(), Figures::sustained),
            ms(f.p50),
            ms(f.p99),
            vs(f.p50.as_secs_f64(), |b| b.p50.as_secs_f64()),
            vs(f.p99.as_secs_f64(), |b| b.p99.as_secs_f64()),
            f.acked_at
                .map(|d| format!("{:.2} s", d.as_secs_f64()))
                .unwrap_or_else(|| "n/a".to_owned()),
            cores("vigil"),
            cores("nats-server"),
            cores("bench"),
        );
    }

    // 3. Takeover after a kill -9.
    if part("takeover") {
        takeover(shards, load, &templates, &cache);
    }
}

/// The sample stream's Okta records (hooks carry Okta events), each split
/// around its uuid so a body is built by concatenation.
fn templates() -> Vec<(String, String)> {
    let samples = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/sample-events.jsonl"
    ))
    .unwrap();
    samples
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("eventType").is_some())
        .map(|mut v| {
            v["uuid"] = json!("@@UUID@@");
            let text = v.to_string();
            let (a, b) = text.split_once("@@UUID@@").unwrap();
            (a.to_owned(), b.to_owned())
        })
        .collect()
}

/// A hook delivery of events `first..first + n` (uuids `<tag>-<n>`).
fn delivery(templates: &[(String, String)], tag: &str, first: u64, n: usize) -> String {
    let mut body = String::with_capacity(n * 2200);
    body.push_str(r#"{"eventType":"com.okta.event_hook","cloudEventsVersion":"0.1","eventId":"d-"#);
    body.push_str(&format!("{tag}-{first}"));
    body.push_str(r#"","data":{"events":["#);
    for k in first..first + n as u64 {
        let (a, b) = &templates[k as usize % templates.len()];
        if k > first {
            body.push(',');
        }
        body.push_str(a);
        body.push_str(&format!("{tag}-{k:012}"));
        body.push_str(b);
    }
    body.push_str("]}}");
    body
}

/// Starts `vigil run` in its own temporary directory: `[server]` on
/// loopback, the built-in pack, audit-only, plus `cluster` (a `[cluster]`
/// table) if given.
fn start_vigil(cache: &Path, cluster: Option<String>) -> (tempfile::TempDir, VigilProcess) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    let mut text = format!(
        "audit_path = \"audit.jsonl\"\ncache_dir = \"{}\"\n\
         [server]\nlisten = \"127.0.0.1:0\"\nokta_hook_secret_env = \"LOAD_HOOK_SECRET\"\n\
         admin_token_env = \"LOAD_ADMIN_TOKEN\"\n",
        cache.display()
    );
    let log = if let Some(cluster) = &cluster {
        text.push_str(cluster);
        // The kinds line and the shard lines, not every event.
        "warn,vigil_host::cluster=info,vigil_host::service::cluster=info"
    } else {
        "warn"
    };
    std::fs::write(&config, text).unwrap();
    let mut command = Command::new(VIGIL);
    command
        .args(["run", "--config", config.to_str().unwrap()])
        .current_dir(dir.path())
        .env("LOAD_HOOK_SECRET", SECRET)
        .env("LOAD_ADMIN_TOKEN", ADMIN)
        .env("VIGIL_LOG", log);
    let p = VigilProcess::spawn(command, "http");
    (dir, p)
}

fn cluster_table(nats: &NatsGuard, replica: &str, shards: u64, extra: &str) -> String {
    format!(
        "[cluster]\nnats_url = \"{}\"\nreplica = \"{replica}\"\nshards = {shards}\n{extra}",
        nats.url
    )
}

/// `/metrics`: `name{labels}` → value.
fn metrics(client: &Client, p: &VigilProcess) -> BTreeMap<String, f64> {
    let Ok(text) = client
        .get(p.url("/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .and_then(|r| r.text())
    else {
        return BTreeMap::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn metric(client: &Client, p: &VigilProcess, name: &str) -> f64 {
    metrics(client, p).get(name).copied().unwrap_or(0.0)
}

fn sum(client: &Client, ps: &[&VigilProcess], name: &str) -> f64 {
    ps.iter().map(|p| metric(client, p, name)).sum()
}

/// The partition-key kinds a replica publishes under, from its
/// `kinds=["subject-user", "global"]` log line.
fn kinds(p: &VigilProcess) -> Vec<String> {
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains("cluster: ingesting through JetStream"))
        .unwrap_or_else(|| panic!("no kinds line in the log:\n{log}"));
    let list = line
        .split_once("kinds=[")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .unwrap_or_else(|| panic!("no kinds in {line}"));
    list.split(',')
        .map(|k| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty())
        .collect()
}

/// Every shard: `shards` per kind, one for `global`.
fn total_shards(kinds: &[String], shards: u64) -> f64 {
    kinds
        .iter()
        .map(|k| if k == "global" { 1 } else { shards })
        .sum::<u64>() as f64
}

fn wait_until(what: &str, logs: &dyn Fn() -> String, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the replicas own every shard, none more than its fair share.
fn settle(client: &Client, ps: &[&VigilProcess], total: f64) {
    let fair = (total / ps.len() as f64).ceil();
    let logs = || {
        ps.iter()
            .map(|p| p.log())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    wait_until("the shards shared", &logs, || {
        let owned: Vec<f64> = ps.iter().map(|p| metric(client, p, OWNED)).collect();
        owned.iter().sum::<f64>() == total && owned.iter().all(|&o| o <= fair)
    });
}

/// A shard consumer's state.
#[derive(Clone, Copy)]
struct Consumer {
    /// Stored, not yet delivered to a reader.
    pending: u64,
    /// Delivered, not yet acknowledged.
    unacked: u64,
    /// Deliveries so far, redeliveries included.
    deliveries: u64,
}

/// The shard consumers of the stream by name.
fn consumers(nats: &NatsGuard) -> BTreeMap<String, Consumer> {
    let text = nats.request("$JS.API.CONSUMER.LIST.VIGIL", b"{\"offset\":0}");
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["consumers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c["name"].as_str()?;
            name.starts_with("vigil-").then(|| {
                (
                    name.to_owned(),
                    Consumer {
                        pending: c["num_pending"].as_u64().unwrap_or(0),
                        unacked: c["num_ack_pending"].as_u64().unwrap_or(0),
                        deliveries: c["delivered"]["consumer_seq"].as_u64().unwrap_or(0),
                    },
                )
            })
        })
        .collect()
}

/// How many messages the stream holds on the shards' subjects.
fn stored(nats: &NatsGuard) -> u64 {
    let text = nats.request(
        "$JS.API.STREAM.INFO.VIGIL",
        b"{\"subjects_filter\":\"vigil.events.>\"}",
    );
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["state"]["subjects"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

fn drained(nats: &NatsGuard, total: f64) -> bool {
    let c = consumers(nats);
    c.len() as f64 == total && c.values().all(|c| c.pending == 0 && c.unacked == 0)
}

/// `(command name, parent pid, CPU seconds)` from a `/proc/…/stat` file.
fn stat(path: &str, tick: f64) -> Option<(String, i32, f64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((
        stat[open + 1..close].to_owned(),
        ppid,
        (utime + stime) / tick,
    ))
}

/// CPU seconds (user + system) of this process's children by command name,
/// of this process as `bench` (the load clients and the polling), and of
/// the `vigil` children's threads by thread name as `vigil/<thread>`.
fn cpu() -> BTreeMap<String, f64> {
    // SAFETY: plain queries.
    let (tick, me) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK) as f64, libc::getpid()) };
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Some((comm, ppid, secs)) = stat(&format!("/proc/{pid}/stat"), tick) else {
            continue;
        };
        let name = if pid == me {
            "bench".to_owned()
        } else if ppid == me {
            comm
        } else {
            continue;
        };
        if name == "vigil" {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
            for task in tasks.into_iter().flatten().flatten() {
                let path = format!("{}/stat", task.path().display());
                if let Some((thread, _, secs)) = stat(&path, tick) {
                    *out.entry(format!("vigil/{thread}")).or_default() += secs;
                }
            }
        }
        *out.entry(name).or_default() += secs;
    }
    out
}

fn cpu_since(before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    cpu()
        .into_iter()
        .map(|(k, v)| {
            let was = before.get(&k).copied().unwrap_or(0.0);
            (k, v - was)
        })
        .collect()
}

/// Client threads posting hook deliveries until stopped.
struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Duration>>>,
    accepted: Arc<AtomicU64>,
    deliveries: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    /// Connection errors (a replica gone): the delivery went to the next.
    failed: Arc<AtomicU64>,
    started: Instant,
}

/// What a run of [`Clients`] got.
struct Posted {
    accepted: u64,
    deliveries: u64,
    refused: u64,
    failed: u64,
    /// Sorted.
    latencies: Vec<Duration>,
    posting_done: Duration,
}

impl Posted {
    fn pct(&self, q: f64) -> Duration {
        let l = &self.latencies;
        if l.is_empty() {
            return Duration::ZERO;
        }
        l[((l.len() as f64 * q) as usize).min(l.len() - 1)]
    }
}

impl Clients {
    /// Starts `load.clients` threads posting to `hooks` round-robin at
    /// `rate` events/s over all of them (0: as fast as answered).
    fn start(
        hooks: Vec<String>,
        load: Load,
        rate: u64,
        templates: &Arc<Vec<(String, String)>>,
    ) -> Clients {
        let pace = (rate > 0).then(|| {
            Duration::from_secs_f64(load.clients as f64 * load.batch as f64 / rate as f64)
        });
        let hooks = Arc::new(hooks);
        let stop = Arc::new(AtomicBool::new(false));
        let seq = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let deliveries = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let threads = (0..load.clients)
            .map(|i| {
                let (hooks, stop, seq) = (hooks.clone(), stop.clone(), seq.clone());
                let (accepted, deliveries) = (accepted.clone(), deliveries.clone());
                let (refused, failed) = (refused.clone(), failed.clone());
                let templates = templates.clone();
                let batch = load.batch;
                std::thread::spawn(move || {
                    let client = Client::builder()
                        .timeout(Duration::from_secs(60))
                        .build()
                        .unwrap();
                    let mut mine = Vec::new();
                    let mut next = Instant::now();
                    let mut k = i;
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(pace) = pace {
                            next += pace;
                            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                        }
                        let first = seq.fetch_add(batch as u64, Ordering::Relaxed);
                        let body = delivery(&templates, "load", first, batch);
                        // Round-robin; a replica that refuses connections
                        // is skipped (as a load balancer would).
                        let mut answered = None;
                        for attempt in 0..hooks.len() {
                            let hook = &hooks[(k + attempt) % hooks.len()];
                            let sent = Instant::now();
                            match client
                                .post(hook)
                                .header("Authorization", SECRET)
                                .header("Content-Type", "application/json")
                                .body(body.clone())
                                .send()
                            {
                                Ok(r) => {
                                    answered = Some((r.status(), sent.elapsed()));
                                    break;
                                }
                                Err(_) => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        k += 1;
                        match answered {
                            Some((status, took)) if status.is_success() => {
                                mine.push(took);
                                accepted.fetch_add(batch as u64, Ordering::Relaxed);
                                deliveries.fetch_add(1, Ordering::Relaxed);
                            }
                            Some((status, _)) => {
                                assert_eq!(status.as_u16(), 503, "unexpected answer");
                                refused.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            None => std::thread::sleep(Duration::from_millis(100)),
                        }
                    }
                    mine
                })
            })
            .collect();
        Clients {
            stop,
            threads,
            accepted,
            deliveries,
            refused,
            failed,
            started,
        }
    }

    fn stop(self) -> Posted {
        self.stop.store(true, Ordering::Relaxed);
        let mut latencies: Vec<Duration> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        latencies.sort();
        Posted {
            accepted: self.accepted.load(Ordering::Relaxed),
            deliveries: self.deliveries.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            latencies,
            posting_done: self.started.elapsed(),
        }
    }
}

/// The figures of a throughput part.
#[derive(Clone)]
struct Figures {
    accepted: u64,
    deliveries: u64,
    refused: u64,
    posting_done: Duration,
    /// From the first POST until every accepted event was judged.
    judged_at: Duration,
    /// From the first POST until every shard consumer had acknowledged
    /// everything (clusters only).
    acked_at: Option<Duration>,
    p50: Duration,
    p99: Duration,
    /// CPU seconds from the first POST to `judged_at`, by process kind.
    cpu: BTreeMap<String, f64>,
    exits: Vec<String>,
    kinds: Vec<String>,
}

impl Figures {
    fn sustained(&self) -> f64 {
        self.accepted as f64 / self.judged_at.as_secs_f64()
    }

    fn print(&self, name: &str, base: Option<&Figures>) {
        println!("\n{name}:");
        if !self.kinds.is_empty() {
            println!(
                "  kinds: {:?} (each event published and judged once per kind)",
                self.kinds
            );
        }
        println!(
            "  accepted: {} events in {} deliveries; refused 503: {}",
            self.accepted, self.deliveries, self.refused
        );
        let ratio = base
            .map(|b| format!(" = {:.2}× the baseline", self.sustained() / b.sustained()))
            .unwrap_or_default();
        println!(
            "  sustained: {:.0} events/s{ratio} (accepted ÷ {:.2} s from the first POST to the last judged; posting stopped at {:.2} s)",
            self.sustained(),
            self.judged_at.as_secs_f64(),
            self.posting_done.as_secs_f64()
        );
        if let Some(acked) = self.acked_at {
            println!(
                "  every shard consumer drained (acknowledged after the audit sync) at {:.2} s",
                acked.as_secs_f64()
            );
        }
        let ratio = base
            .map(|b| {
                format!(
                    " ({:.2}× / {:.2}× the baseline)",
                    self.p50.as_secs_f64() / b.p50.as_secs_f64(),
                    self.p99.as_secs_f64() / b.p99.as_secs_f64()
                )
            })
            .unwrap_or_default();
        println!(
            "  POST → 2xx latency: p50 {:.2} ms, p99 {:.2} ms{ratio}",
            ms(self.p50),
            ms(self.p99)
        );
        let wall = self.judged_at.as_secs_f64();
        let cpu: Vec<String> = self
            .cpu
            .iter()
            .filter(|(k, _)| !k.contains('/'))
            .map(|(k, v)| format!("{k} {v:.1} s ({:.2} cores)", v / wall))
            .collect();
        println!("  CPU until judged: {}", cpu.join(", "));
        let mut threads: Vec<(&String, &f64)> = self
            .cpu
            .iter()
            .filter(|(k, v)| k.starts_with("vigil/") && **v >= 0.05)
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(a.1));
        let threads: Vec<String> = threads
            .iter()
            .map(|(k, v)| format!("{} {v:.1} s", &k["vigil/".len()..]))
            .collect();
        println!("  vigil CPU by thread name: {}", threads.join(", "));
        println!("  shutdown (SIGTERM): {}", self.exits.join(", "));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn exit(name: &str, status: ExitStatus) -> String {
    format!("{name}: {status}")
}

fn baseline(load: Load, templates: &Arc<Vec<(String, String)>>, cache: &Path) -> Figures {
    let (_dir, mut p) = start_vigil(cache, None);
    let client = Client::new();
    let hook = p.url("/v1/hooks/okta");
    let before = cpu();
    let clients = Clients::start(vec![hook], load, load.rate, templates);
    let started = clients.started;
    std::thread::sleep(Duration::from_secs(load.secs));
    let posted = clients.stop();
    // Every accepted delivery processed (and the audit synced).
    wait_until("the baseline's deliveries processed", &|| p.log(), || {
        metric(&client, &p, "vigil_ingest_to_decision_seconds_count") >= posted.deliveries as f64
    });
    let judged_at = started.elapsed();
    let cpu = cpu_since(&before);
    p.sigterm();
    let status = p.wait(Duration::from_secs(120));
    Figures {
        accepted: posted.accepted,
        deliveries: posted.deliveries,
        refused: posted.refused,
        posting_done: posted.posting_done,
        judged_at,
        acked_at: None,
        p50: posted.pct(0.50),
        p99: posted.pct(0.99),
        cpu,
        exits: vec![exit("vigil", status)],
        kinds: Vec::new(),
    }
}

fn replicas(
    n: usize,
    shards: u64,
    load: Load,
    templates: &Arc<Vec<(String, String)>>,
    cache: &Path,
) -> Figures {
    let nats = start_nats();
    let client = Client::new();
    let mut nodes: Vec<(tempfile::TempDir, VigilProcess)> = (1..=n)
        .map(|r| {
            let name = format!("r{r}");
            start_vigil(cache, Some(cluster_table(&nats, &name, shards, "")))
        })
        .collect();
    let kinds = kinds(&nodes[0].1);
    let total = total_shards(&kinds, shards);
    {
        let ps: Vec<&VigilProcess> = nodes.iter().map(|(_, p)| p).collect();
        settle(&client, &ps, total);
    }
    std::thread::sleep(Duration::from_secs(1));
    let ps: Vec<&VigilProcess> = nodes.iter().map(|(_, p)| p).collect();
    let logs = || {
        ps.iter()
            .map(|p| p.log())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let hooks = ps.iter().map(|p| p.url("/v1/hooks/okta")).collect();
    let before = cpu();
    let clients = Clients::start(hooks, load, load.rate, templates);
    let started = clients.started;
    std::thread::sleep(Duration::from_secs(load.secs));
    let posted = clients.stop();
    let target = (posted.accepted * kinds.len() as u64) as f64;
    wait_until("every accepted event judged", &logs, || {
        sum(&client, &ps, JUDGED) >= target
    });
    let judged_at = started.elapsed();
    let cpu = cpu_since(&before);
    wait_until("every shard drained", &logs, || drained(&nats, total));
    let acked_at = started.elapsed();
    drop(ps);
    for (_, p) in &nodes {
        p.sigterm();
    }
    let exits = nodes
        .iter_mut()
        .enumerate()
        .map(|(i, (_, p))| exit(&format!("r{}", i + 1), p.wait(Duration::from_secs(120))))
        .collect();
    for (i, (_, p)) in nodes.iter().enumerate() {
        keep_log(&format!("{n}-replicas-r{}", i + 1), p);
    }
    Figures {
        accepted: posted.accepted,
        deliveries: posted.deliveries,
        refused: posted.refused,
        posting_done: posted.posting_done,
        judged_at,
        acked_at: Some(acked_at),
        p50: posted.pct(0.50),
        p99: posted.pct(0.99),
        cpu,
        exits,
        kinds,
    }
}

/// Writes `p`'s log to `$VIGIL_CLUSTER_LOG_DIR/<name>.log` if that is set.
fn keep_log(name: &str, p: &VigilProcess) {
    if let Some(dir) = std::env::var_os("VIGIL_CLUSTER_LOG_DIR") {
        let dir = Path::new(&dir);
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join(format!("{name}.log")), p.log());
    }
}

/// `(seconds after since, rebuilt, took_ms)` of every `cluster: reading
/// shard` line in `log` (its time is when the rebuild ended).
fn shard_reads(log: &str, since: chrono::DateTime<chrono::Utc>) -> Vec<(f64, u64, u64)> {
    let field = |line: &str, name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
    };
    log.lines()
        .filter(|l| l.contains("cluster: reading shard"))
        .filter_map(|l| {
            let at = chrono::DateTime::parse_from_rfc3339(l.split_whitespace().next()?).ok()?;
            let after = (at.with_timezone(&chrono::Utc) - since).as_seconds_f64();
            Some((after, field(l, "rebuilt=")?, field(l, "took_ms=")?))
        })
        .collect()
}

fn takeover(shards: u64, load: Load, templates: &Arc<Vec<(String, String)>>, cache: &Path) {
    let rate = env_or("VIGIL_TAKEOVER_RATE", 200);
    let warmup = Duration::from_secs(env_or("VIGIL_TAKEOVER_WARMUP_SECS", 10));
    let after = Duration::from_secs(env_or("VIGIL_TAKEOVER_AFTER_SECS", 10));
    let timing = "lease_ttl_secs = 3\nack_wait_secs = 5\n";
    let nats = start_nats();
    let client = Client::new();
    let mut nodes: Vec<(tempfile::TempDir, VigilProcess)> = (1..=3)
        .map(|r| {
            let name = format!("r{r}");
            start_vigil(cache, Some(cluster_table(&nats, &name, shards, timing)))
        })
        .collect();
    let kinds = kinds(&nodes[0].1);
    let total = total_shards(&kinds, shards);
    {
        let ps: Vec<&VigilProcess> = nodes.iter().map(|(_, p)| p).collect();
        settle(&client, &ps, total);
    }
    let dead_owned = metric(&client, &nodes[1].1, OWNED);
    let hooks: Vec<String> = nodes.iter().map(|(_, p)| p.url("/v1/hooks/okta")).collect();
    let survivor_hook = hooks[0].clone();
    let clients = Clients::start(hooks, load, rate, templates);
    std::thread::sleep(warmup);

    // Where the survivors' logs and counters stood at the kill.
    let marks: Vec<usize> = [0, 2].iter().map(|&i| nodes[i].1.log().len()).collect();
    let survivors_before =
        |name: &str| metric(&client, &nodes[0].1, name) + metric(&client, &nodes[2].1, name);
    let takeovers_before = survivors_before("vigil_cluster_takeovers_total");
    let losses_before = survivors_before("vigil_cluster_lease_losses_total");
    let killed = Instant::now();
    let killed_utc = chrono::Utc::now();
    nodes[1].1.kill9();
    let (_dead_dir, dead) = nodes.remove(1);
    // A probe right after the kill: every template once, so every shard
    // with traffic (the dead replica's among them) gets some of it.
    let probe = delivery(templates, "probe", 0, templates.len());
    let sent = Instant::now();
    let answer = client
        .post(&survivor_hook)
        .header("Authorization", SECRET)
        .header("Content-Type", "application/json")
        .body(probe)
        .send()
        .expect("post the probe");
    let probe_latency = sent.elapsed();
    let probe_status = answer.status();
    let probe_accepted = killed.elapsed();

    let ps: Vec<&VigilProcess> = nodes.iter().map(|(_, p)| p).collect();
    let logs = || {
        ps.iter()
            .map(|p| p.log())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    // After the probe was accepted, each consumer is seen once with
    // nothing pending (everything stored, the probe included, went to a
    // live owner: at this load judged within milliseconds), and once with
    // nothing unacknowledged either (what the dead replica had been handed
    // is redelivered only when its ack wait expires).
    let mut seen_delivered: BTreeMap<String, bool> = BTreeMap::new();
    let mut seen_drained: BTreeMap<String, bool> = BTreeMap::new();
    let (mut owned_at, mut delivered_at, mut judged_at) = (None, None, None);
    let all =
        |seen: &BTreeMap<String, bool>| seen.len() as f64 == total && seen.values().all(|&d| d);
    let deadline = Instant::now() + PATIENCE;
    while owned_at.is_none() || judged_at.is_none() {
        assert!(Instant::now() < deadline, "no takeover\n{}", logs());
        if owned_at.is_none() && sum(&client, &ps, OWNED) == total {
            owned_at = Some(killed.elapsed());
        }
        for (name, c) in consumers(&nats) {
            *seen_delivered.entry(name.clone()).or_default() |= c.pending == 0;
            *seen_drained.entry(name).or_default() |= c.pending == 0 && c.unacked == 0;
        }
        if delivered_at.is_none() && all(&seen_delivered) {
            delivered_at = Some(killed.elapsed());
        }
        if judged_at.is_none() && all(&seen_drained) {
            judged_at = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(left) = (killed + after).checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
    let posted = clients.stop();
    wait_until("every shard drained after the load", &logs, || {
        drained(&nats, total)
    });
    // Deliveries beyond one per stored message: redeliveries.
    let deliveries: u64 = consumers(&nats).values().map(|c| c.deliveries).sum();
    let redelivered = deliveries.saturating_sub(stored(&nats));
    let settled = sum(&client, &ps, OWNED);
    let takeovers = sum(&client, &ps, "vigil_cluster_takeovers_total");
    let rebuilt_metric = sum(&client, &ps, "vigil_cluster_rebuilt_events_total");
    let reads: Vec<(f64, u64, u64)> = nodes
        .iter()
        .zip(&marks)
        .flat_map(|((_, p), &mark)| shard_reads(&p.log()[mark..], killed_utc))
        .collect();
    let losses = sum(&client, &ps, "vigil_cluster_lease_losses_total");
    drop(ps);
    for (_, p) in &nodes {
        p.sigterm();
    }
    let exits: Vec<String> = nodes
        .iter_mut()
        .zip(["r1", "r3"])
        .map(|((_, p), name)| exit(name, p.wait(Duration::from_secs(120))))
        .collect();
    keep_log("takeover-r1", &nodes[0].1);
    keep_log("takeover-r2-killed", &dead);
    keep_log("takeover-r3", &nodes[1].1);

    let mut took: Vec<u64> = reads.iter().map(|r| r.2).collect();
    took.sort();
    let rebuilt: u64 = reads.iter().map(|r| r.1).sum();
    let first_read = reads.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    let last_read = reads.iter().map(|r| r.0).fold(0.0, f64::max);
    println!(
        "\ntakeover: 3 replicas, lease_ttl_secs = 3, ack_wait_secs = 5, {} shards ({kinds:?}), paced {rate} events/s, kill -9 of r2 (owned {dead_owned}) after {:.0} s",
        total,
        warmup.as_secs_f64()
    );
    println!(
        "  probe ({} events) posted to r1 right after the kill: {probe_status} in {:.1} ms (accepted {:.2} s after the kill)",
        templates.len(),
        ms(probe_latency),
        probe_accepted.as_secs_f64()
    );
    println!(
        "  every shard owned again: {:.2} s after the kill",
        owned_at.unwrap().as_secs_f64()
    );
    println!(
        "  every shard seen with nothing pending after the probe (the probe handed to live owners): {:.2} s after the kill",
        delivered_at.unwrap().as_secs_f64()
    );
    println!(
        "  every shard seen with nothing pending or unacknowledged after the probe (all judged): {:.2} s after the kill; redeliveries (ack wait expired; deliveries beyond one per stored message): {redelivered}",
        judged_at.unwrap().as_secs_f64()
    );
    println!(
        "  shards read by the survivors after the kill: {} ({:.2}–{:.2} s after it; {} events rebuilt; took_ms min {} / median {} / max {}); shards taken (vigil_cluster_takeovers_total) since the kill: {}; vigil_cluster_rebuilt_events_total {rebuilt_metric}",
        reads.len(),
        first_read,
        last_read,
        rebuilt,
        took.first().copied().unwrap_or(0),
        took.get(took.len() / 2).copied().unwrap_or(0),
        took.last().copied().unwrap_or(0),
        takeovers - takeovers_before,
    );
    println!(
        "  survivors' leases lost (not renewed within the TTL): {losses_before} before the kill, {} after",
        losses - losses_before
    );
    println!(
        "  load over the part: {} events accepted in {} deliveries, 503s {}, connection errors (posts to the dead replica, sent on to the next) {}; POST → 2xx p50 {:.2} ms, p99 {:.2} ms",
        posted.accepted,
        posted.deliveries,
        posted.refused,
        posted.failed,
        ms(posted.pct(0.50)),
        ms(posted.pct(0.99))
    );
    println!(
        "  shards owned at the end: {settled} of {total}; killed at {}",
        killed_utc.format("%H:%M:%S%.3f UTC")
    );
    println!(
        "  shutdown (SIGTERM): {}; r2: killed (SIGKILL)",
        exits.join(", ")
    );
}
