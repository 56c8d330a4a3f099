//! Crashes and full disks against the real binary, real sockets and the
//! fake identity provider:
//!
//! - `kill -9` at random moments under load, ten times over one state
//!   directory: every event answered 2xx is judged exactly once after the
//!   restarts, every accepted action has exactly one result record
//!   (reconciled when the process died first), and the identity provider
//!   never saw a call without its `accepted` record;
//! - the audit log on a small tmpfs that fills up mid-run (root only;
//!   skipped with a message otherwise): the service stops, the executor's
//!   queued actions are dropped unrun, nothing is executed without its
//!   records, and once there is room again a restart appends the records
//!   the outbox kept, reconciles every action and processes every
//!   acknowledged event;
//! - the state database on a small tmpfs that fills up: deliveries that
//!   cannot be spooled are answered 503 naming the cause, never 2xx, and
//!   after a restart with room every acknowledged event is judged once;
//! - a stream run twice through the same state directory gives the
//!   findings and actions of one pass.
//!
//! The service runs on two shards here, with a partitioned rule beside
//! the global requester: exactly-once holds for both.
//!
//! Waits are polls with generous timeouts; no test asserts timing.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{Value, json};
use vigil_test_support::fake_idp::{FakeIdp, OKTA_TOKEN};
use vigil_test_support::process::VigilProcess;
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const TARGET_LOGIN: &str = "crash.user@corp.example";
const TARGET_ID: &str = "00ucrash001";

fn cache_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("crash-xdg-cache")
}

/// A rule that, for every event, audits one finding (subject = event id)
/// and asks to revoke the sessions of one user, in enforce mode against
/// the fake Okta; budgets high enough never to hold it back. The audit log
/// in `audit_dir`, the state database in `state_dir`, the rest in `work`.
fn config(fake: &FakeIdp, audit_dir: &Path, state_dir: &Path, work: &Path) -> String {
    format!(
        r#"mode = "enforce"
audit_path = "{audit}"
state_path = "{state}"
cache_dir = "{cache}"
builtin_pack = false
# Two shards whatever the machine: the partitioned rule below runs on
# both, the requester (global) on the first.
shards = 2
[budgets]
window_secs = 1
fraction_min_users = 1000000000
per_rule = {{ revoke-sessions = 1000000 }}
global = {{ revoke-sessions = 1000000 }}
[[rules]]
path = {guest:?}
allow = ["revoke-sessions"]
config = {{ action = "revoke-sessions", targets = "{TARGET_LOGIN}" }}
[[rules]]
path = {sequencer:?}
[connectors.http]
backoff_initial_ms = 10
backoff_max_ms = 20
max_attempts = 1
timeout_ms = 5000
[connectors.okta]
base_url = "{okta}"
token_file = "{token}"
[server]
listen = "127.0.0.1:0"
# A short queue: the backlog a crash leaves (replayed at the next start)
# stays small, and full-queue 503s are part of the load.
queue_capacity = 8
"#,
        audit = audit_dir.join("audit.jsonl").display(),
        state = state_dir.join("state.db").display(),
        cache = work.join("cache").display(),
        token = work.join("okta-token").display(),
        guest = GUEST_REQUESTER,
        sequencer = GUEST_SEQUENCER,
        okta = fake.base_url(),
    )
}

/// `vigil run --config CONFIG` in `cwd`; started once the listener is up
/// (the spool replay comes before it).
struct Service(VigilProcess);

impl Service {
    fn start(config: &Path, cwd: &Path) -> Service {
        let mut command = Command::new(VIGIL);
        command
            .args(["run", "--config", config.to_str().unwrap()])
            .current_dir(cwd)
            .env("XDG_CACHE_HOME", cache_home())
            .env("VIGIL_LOG", "info");
        Service(VigilProcess::spawn(command, "http"))
    }

    /// SIGTERM, then the exit status: a drain under load may take a while.
    fn stop(&mut self) -> ExitStatus {
        self.0.sigterm();
        self.wait()
    }

    fn wait(&mut self) -> ExitStatus {
        self.0.wait(Duration::from_secs(300))
    }
}

impl std::ops::Deref for Service {
    type Target = VigilProcess;
    fn deref(&self) -> &VigilProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Service {
    fn deref_mut(&mut self) -> &mut VigilProcess {
        &mut self.0
    }
}

/// A sign-in by one of eight users (by the uuid's last digit), so the
/// partitioned rule's calls spread over the shards.
fn okta_event(uuid: &str) -> Value {
    let user = uuid.bytes().last().unwrap_or(b'0') % 8;
    json!({
        "uuid": uuid,
        "published": "2026-03-01T10:00:00.000Z",
        "eventType": "user.session.start",
        "actor": {"id": format!("00uactor{user}"), "type": "User", "alternateId": format!("actor{user}@corp.example")},
        "outcome": {"result": "SUCCESS"},
        "client": {"ipAddress": "198.51.100.7"}
    })
}

/// What a load run saw.
#[derive(Default)]
struct Loaded {
    /// uuids answered 2xx.
    acked: Vec<String>,
    /// Bodies of 503 answers that said the delivery could not be stored.
    spool_refusals: Vec<String>,
}

/// Posts deliveries of `per` events (uuids `{prefix}-{n}`) until `stop` is
/// set or the service stops answering; returns the uuids answered 2xx.
fn load(base: String, prefix: String, per: usize, stop: Arc<AtomicBool>) -> Vec<String> {
    load_until(base, prefix, per, stop, false).acked
}

/// [`load`], also stopping at the first spool refusal when
/// `stop_at_refusal`.
fn load_until(
    base: String,
    prefix: String,
    per: usize,
    stop: Arc<AtomicBool>,
    stop_at_refusal: bool,
) -> Loaded {
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut seen = Loaded::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let uuids: Vec<String> = (0..per).map(|i| format!("{prefix}-{}", n + i)).collect();
        n += per;
        let body = Value::Array(uuids.iter().map(|u| okta_event(u)).collect());
        match client.post(format!("{base}/v1/events")).json(&body).send() {
            Ok(r) if r.status().is_success() => seen.acked.extend(uuids),
            // 503 (queue full, spool full): not acknowledged; go on.
            Ok(r) => {
                let body = r.text().unwrap_or_default();
                if body.contains("cannot store the delivery durably") {
                    seen.spool_refusals.push(body);
                    if stop_at_refusal {
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => break,
        }
    }
    seen
}

/// What the audit log says, checked against the guarantees; returns the
/// number of acknowledged events found judged.
fn check_log(audit: &Path, acked: &HashSet<String>, fake: &FakeIdp) {
    let text = std::fs::read_to_string(audit).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every audit line is a whole JSON record"))
        .collect();
    // Each rule judges each event once: the global requester on one
    // shard, the partitioned sequencer on whichever owns the event's user.
    let mut findings: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in records.iter().filter(|r| r["type"] == "finding") {
        let rule = r["rule"].as_str().unwrap().to_owned();
        *findings
            .entry((rule, r["event_id"].as_str().unwrap().to_owned()))
            .or_default() += 1;
    }
    let twice: Vec<_> = findings.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events judged more than once: {twice:?}");
    // State after the crashes: the sequencer numbered each user's events
    // in its state, committed with the judged ids, so every user's numbers
    // are 1..=k, each once (a state change lost or applied twice would
    // repeat or skip one).
    let mut numbers: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r["type"] == "finding" && r["rule"] == "guest-sequencer")
    {
        let d = &r["details"];
        numbers
            .entry(d["user"].as_str().unwrap().to_owned())
            .or_default()
            .push(d["n"].as_str().unwrap().parse().unwrap());
    }
    for (user, mut ns) in numbers {
        ns.sort_unstable();
        let want: Vec<u64> = (1..=ns.len() as u64).collect();
        assert_eq!(ns, want, "{user}: the sequencer's numbers");
    }
    for rule in ["guest-requester", "guest-sequencer"] {
        let lost: Vec<_> = acked
            .iter()
            .filter(|u| !findings.contains_key(&(rule.to_owned(), (*u).clone())))
            .collect();
        assert!(
            lost.is_empty(),
            "{rule}: {} of {} events answered 2xx were never judged, e.g. {:?}",
            lost.len(),
            acked.len(),
            lost.iter().take(5).collect::<Vec<_>>()
        );
    }

    let mut accepted: BTreeMap<String, usize> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r["type"] == "action" && r["decision"] == "accepted")
    {
        *accepted
            .entry(r["action_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        accepted.values().all(|n| *n == 1),
        "an action accepted twice"
    );
    let mut results: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in records.iter().filter(|r| r["type"] == "action-result") {
        results
            .entry(r["action_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(r["decision"].as_str().unwrap().to_owned());
    }
    for id in accepted.keys() {
        let got = results.get(id).cloned().unwrap_or_default();
        assert_eq!(
            got.len(),
            1,
            "action {id}: results {got:?} (want exactly one)"
        );
    }
    let count = |d: &str| results.values().flatten().filter(|x| *x == d).count();
    let (executed, unknown) = (count("executed"), count("unknown"));
    let calls = fake
        .requests_matching("DELETE", &format!("/api/v1/users/{TARGET_ID}/sessions"))
        .len();
    // Every call the IdP saw was announced by a durable `accepted` record
    // and ended in `executed`, or in `unknown` when Vigil died before it
    // could record the answer.
    assert!(
        calls <= accepted.len(),
        "{calls} IdP calls but {} accepted records",
        accepted.len()
    );
    assert!(
        executed <= calls && calls <= executed + unknown,
        "{calls} IdP calls; results: {executed} executed, {unknown} unknown"
    );
    vigil_host::audit::verify(audit).expect("the audit chain holds across the crashes");
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_event_and_never_acts_unrecorded() {
    let fake = FakeIdp::start();
    fake.add_okta_user(TARGET_ID, TARGET_LOGIN, None, None);
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), OKTA_TOKEN).unwrap();
    let cfg = wd.path().join("vigil.toml");
    std::fs::write(&cfg, config(&fake, wd.path(), wd.path(), wd.path())).unwrap();
    let mut acked = HashSet::new();
    for round in 0..10 {
        let mut s = Service::start(&cfg, wd.path());
        let stop = Arc::new(AtomicBool::new(false));
        let loader = {
            let (base, stop) = (s.url(""), stop.clone());
            std::thread::spawn(move || load(base, format!("r{round}"), 10, stop))
        };
        // A random moment under load: after a random number of
        // acknowledged-or-not deliveries' worth of wall time.
        std::thread::sleep(Duration::from_millis(fastrand::u64(50..1500)));
        s.kill9();
        stop.store(true, Ordering::SeqCst);
        let got = loader.join().unwrap();
        eprintln!(
            "round {round}: {} events answered 2xx before kill -9",
            got.len()
        );
        acked.extend(got);
    }
    // A last start replays what the last crash left, then an orderly stop.
    let mut s = Service::start(&cfg, wd.path());
    assert!(s.stop().success(), "{}", s.log());
    assert!(!acked.is_empty(), "no delivery was acknowledged at all");
    let spool = rusqlite::Connection::open(wd.path().join("state.spool.db")).unwrap();
    let left: i64 = spool
        .query_row("SELECT COUNT(*) FROM spool", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "deliveries left unprocessed in the spool");
    let db = rusqlite::Connection::open(wd.path().join("state.db")).unwrap();
    let pending: i64 = db
        .query_row("SELECT COUNT(*) FROM pending_actions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 0, "accepted actions left without a result");
    check_log(&wd.audit_path(), &acked, &fake);
}

/// A tmpfs mounted (as root) for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// A 2 MB tmpfs at `at`, to fill up; `None` (the test says why and
    /// skips) when not root or when mounting is not allowed here.
    fn small(at: &Path) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a small tmpfs to fill up needs root");
            return None;
        }
        let t = Tmpfs::mount(at, "2m");
        if t.is_none() {
            eprintln!("skipped: cannot mount a tmpfs here (a container without the capability?)");
        }
        t
    }

    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_owned()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "cannot resize the tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_service_and_a_restart_reconciles_every_action() {
    let wd = Workdir::new();
    let data = wd.path().join("data");
    let Some(tmpfs) = Tmpfs::small(&data) else {
        return;
    };
    let fake = FakeIdp::start();
    fake.add_okta_user(TARGET_ID, TARGET_LOGIN, None, None);
    std::fs::write(wd.path().join("okta-token"), OKTA_TOKEN).unwrap();
    let cfg = wd.path().join("vigil.toml");
    std::fs::write(&cfg, config(&fake, &data, wd.path(), wd.path())).unwrap();

    let mut s = Service::start(&cfg, wd.path());
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let (base, stop) = (s.url(""), stop.clone());
        std::thread::spawn(move || load(base, "full".into(), 20, stop))
    };
    // The disk fills; the pipeline stops on the failed write and the
    // service exits with an error (it does not go on acting).
    let status = s.wait();
    stop.store(true, Ordering::SeqCst);
    let acked: HashSet<String> = loader.join().unwrap().into_iter().collect();
    assert!(!status.success(), "the service kept running on a full disk");
    let log = s.log();
    assert!(
        log.contains("No space left on device") || log.contains("disk full"),
        "the failure names the cause:\n{log}"
    );
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the disk filled"
    );
    let last_lines: Vec<&str> = log.lines().rev().take(6).collect();
    eprintln!(
        "{} events acknowledged; the service's last words: {last_lines:#?}",
        acked.len()
    );

    // Room again: the restart appends what the outbox held, reconciles
    // every accepted action and processes the acknowledged deliveries.
    tmpfs.resize("256m");
    let mut s = Service::start(&cfg, wd.path());
    assert!(s.stop().success(), "{}", s.log());
    let restart = s.log();
    let reconciled = restart.matches("reconciled an action").count();
    eprintln!(
        "restart: {reconciled} actions reconciled; outbox recovery: {}",
        restart.contains("committed but not yet in the log")
    );
    check_log(&data.join("audit.jsonl"), &acked, &fake);
    drop(tmpfs);
}

#[test]
fn a_full_state_disk_answers_503_and_loses_nothing_acknowledged() {
    let wd = Workdir::new();
    let state = wd.path().join("state");
    let Some(tmpfs) = Tmpfs::small(&state) else {
        return;
    };
    let fake = FakeIdp::start();
    fake.add_okta_user(TARGET_ID, TARGET_LOGIN, None, None);
    std::fs::write(wd.path().join("okta-token"), OKTA_TOKEN).unwrap();
    let cfg = wd.path().join("vigil.toml");
    std::fs::write(&cfg, config(&fake, wd.path(), &state, wd.path())).unwrap();

    let mut s = Service::start(&cfg, wd.path());
    let stop = Arc::new(AtomicBool::new(false));
    let base = s.url("");
    // Until a delivery is refused because it cannot be stored, or the
    // service stops (its own commits failed first).
    let seen = load_until(base, "state-full".into(), 20, stop, true);
    let status = s.stop();
    let log = s.log();
    eprintln!(
        "{} events acknowledged, {} spool refusals; exit {status}",
        seen.acked.len(),
        seen.spool_refusals.len()
    );
    assert!(
        !seen.spool_refusals.is_empty()
            || (log.contains("the pipeline stopped")
                && log.contains("state.db")
                && log.contains("full")),
        "a full state disk is reported (503 naming it, or the pipeline stopping):\n{log}"
    );
    for body in &seen.spool_refusals {
        let v: Value = serde_json::from_str(body).expect("a JSON error body");
        let error = v["error"].as_str().unwrap();
        assert!(
            error.contains("disk is full") || error.contains("No space left on device"),
            "the 503 names the cause: {body}"
        );
    }

    tmpfs.resize("256m");
    let mut s = Service::start(&cfg, wd.path());
    assert!(s.stop().success(), "{}", s.log());
    let acked: HashSet<String> = seen.acked.into_iter().collect();
    check_log(&wd.audit_path(), &acked, &fake);
    drop(tmpfs);
}

#[test]
fn a_stream_run_twice_through_one_state_directory_counts_once() {
    let wd = Workdir::new();
    let body = "state_path = \"state.db\"\nbuiltin_pack = false\n[[rules]]\n\
                builtin = \"mfa-push-fatigue\"\nallow = [\"suspend-user\", \"escalate\"]\n";
    let events = fixture("push-bombing.jsonl");
    let first = wd.run(VIGIL, body, &events, &cache_home());
    assert!(first.status.success(), "{}", text(&first.stderr));
    let findings = wd.records_of("finding").len();
    let actions = wd.records_of("action").len();
    assert!(findings > 0 && actions > 0, "{}", text(&first.stdout));

    second_pass_adds_nothing(&wd, body, &events, findings, actions);
}

/// Runs `events` again through the state directory of `body`: the second
/// pass must add no finding and no action record to the `findings` and
/// `actions` of the first, and count the calls it skipped; returns them.
fn second_pass_adds_nothing(
    wd: &Workdir,
    body: &str,
    events: &Path,
    findings: usize,
    actions: usize,
) -> u64 {
    let second = wd.run(VIGIL, body, events, &cache_home());
    assert!(second.status.success(), "{}", text(&second.stderr));
    let out = text(&second.stdout);
    assert_eq!(wd.records_of("finding").len(), findings, "{out}");
    assert_eq!(wd.records_of("action").len(), actions, "{out}");
    assert!(out.contains("findings: 0"), "{out}");
    let duplicates: u64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("duplicates: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        duplicates > 0,
        "the second pass skips what was judged: {out}"
    );
    duplicates
}

// Every fixture of the built-in pack, as one stream, through the whole pack
// twice with one state directory: the second pass judges nothing again, so
// it adds no finding and no action, and every event it skips is counted.
#[test]
fn every_pack_fixture_run_twice_through_one_state_directory_counts_once() {
    let wd = Workdir::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stream = String::new();
    let mut files = 0;
    for plugin in std::fs::read_dir(root.join("plugins")).unwrap() {
        let dir = plugin.unwrap().path().join("fixtures");
        // Only the built-in (Rust) rules have fixtures/ and run here.
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for f in entries {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "jsonl") {
                stream.push_str(&std::fs::read_to_string(&f).unwrap());
                if !stream.ends_with('\n') {
                    stream.push('\n');
                }
                files += 1;
            }
        }
    }
    assert!(files >= 40, "found {files} fixture files");
    let events = wd.path().join("pack-fixtures.jsonl");
    std::fs::write(&events, &stream).unwrap();
    let body = "state_path = \"state.db\"\n";

    let first = wd.run(VIGIL, body, &events, &cache_home());
    assert!(first.status.success(), "{}", text(&first.stderr));
    let findings = wd.records_of("finding").len();
    let actions = wd.records_of("action").len();
    assert!(findings >= 20 && actions >= 20, "{}", text(&first.stdout));

    let duplicates = second_pass_adds_nothing(&wd, body, &events, findings, actions);
    eprintln!(
        "{files} fixture files: {findings} findings and {actions} action records once; \
         the second pass skipped {duplicates} judged (rule, event) pairs"
    );
}
