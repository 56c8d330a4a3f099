//! The sandbox under attack: purpose-built hostile guests (real components
//! built from `tests/guests/`) run beside the real `mfa-push-fatigue` rule,
//! through the real pipeline. Each test asserts exactly what happens to the
//! hostile rule, and that the healthy rule still reports its finding.
//!
//! The guests that try to make the host wait, and the audit-amplification
//! guest, also run in the real `vigil` binary: a finite `vigil run`, the
//! service with `[server]` fed over HTTP, and a 200-event run whose peak
//! RSS is read from `wait4`. Waits are polls with generous deadlines; no
//! test asserts timing.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_host::audit::AuditLog;
use vigil_host::cli::setup;
use vigil_host::config::Config;
use vigil_host::executor::ActionExecutor;
use vigil_host::pipeline::{Pipeline, RunStats};
use vigil_host::sources::LineReader;
use vigil_test_support::process::VigilProcess;
use vigil_test_support::*;

/// Runs `fixture` through the rules of `config_body` (plus the built-in pack).
fn run(config_body: &str, fixture_name: &str) -> (Workdir, RunStats) {
    let wd = Workdir::new();
    let config = Config::load(&wd.config(config_body)).expect("valid config");
    let rules = setup::load_rules(&config).expect("rules load");
    let audit = AuditLog::open(&config.audit_path).expect("audit log opens");
    let mut pipeline = Pipeline::new(rules, audit, ActionExecutor::log_only().unwrap()).unwrap();
    let mut reader = LineReader::open(&fixture(fixture_name), config.max_line_bytes).unwrap();
    pipeline.run_stream(&mut reader).expect("stream runs");
    let stats = pipeline.finish().expect("finish");
    drop(pipeline);
    vigil_host::audit::verify(&wd.audit_path()).expect("audit chain holds");
    (wd, stats)
}

fn rule_entry(path: &str, extra: &str) -> String {
    format!("[[rules]]\npath = {path:?}\n{extra}\n")
}

/// The healthy rule's finding for the push-bombing fixture.
fn assert_push_fatigue_fired(wd: &Workdir) {
    let findings: Vec<Value> = wd
        .records_of("finding")
        .into_iter()
        .filter(|f| f["rule"] == "mfa-push-fatigue")
        .collect();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0]["subject"], "00upushbomb01");
}

fn faults_of(wd: &Workdir, rule: &str) -> Vec<Value> {
    wd.records_of("rule-fault")
        .into_iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}

#[test]
fn infinite_loop_times_out_and_is_quarantined() {
    let (wd, stats) = run(&rule_entry(GUEST_LOOP, ""), "push-bombing.jsonl");
    let faults = faults_of(&wd, "guest-loop");
    // Defaults: deadline_ms = 25, quarantine_after = 5: five timeouts, then
    // no more events.
    assert_eq!(faults.len(), 5);
    for (i, f) in faults.iter().enumerate() {
        assert_eq!(f["fault"], "timeout");
        assert_eq!(f["consecutive"], i as u64 + 1);
        assert!(
            f["message"].as_str().unwrap().contains("deadline_ms = 25"),
            "{f}"
        );
    }
    let quarantined = wd.records_of("rule-quarantined");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0]["rule"], "guest-loop");
    assert_eq!(stats.quarantined, vec!["guest-loop".to_string()]);
    assert_push_fatigue_fired(&wd);
}

#[test]
fn deep_recursion_is_a_stack_overflow_fault() {
    let (wd, _) = run(
        &rule_entry(GUEST_RECURSION, "limits = { quarantine_after = 100 }"),
        "push-bombing.jsonl",
    );
    let faults = faults_of(&wd, "guest-recursion");
    // Every one of the 8 events faults; the instance is rebuilt each time.
    assert_eq!(faults.len(), 8);
    assert!(
        faults.iter().all(|f| f["fault"] == "stack-overflow"),
        "{faults:#?}"
    );
    assert_push_fatigue_fired(&wd);
}

#[test]
fn memory_hog_hits_the_memory_cap() {
    let (wd, _) = run(
        &rule_entry(
            GUEST_MEMORY_HOG,
            "limits = { memory_mib = 16, quarantine_after = 2, deadline_ms = 5000 }",
        ),
        "push-bombing.jsonl",
    );
    let faults = faults_of(&wd, "guest-memory-hog");
    assert_eq!(faults.len(), 2);
    for f in &faults {
        assert_eq!(f["fault"], "memory-limit");
        assert!(
            f["message"].as_str().unwrap().contains("memory_mib = 16"),
            "{f}"
        );
    }
    assert_push_fatigue_fired(&wd);
}

#[test]
fn a_trap_ends_only_that_call_and_the_rebuilt_instance_keeps_state() {
    let (wd, stats) = run(&rule_entry(GUEST_TRAP, ""), "push-bombing.jsonl");
    // guest-trap panics on odd calls (1st, 3rd, …) and reports the call
    // count from host state on even ones: 8 events → 4 faults, 4 findings.
    let faults = faults_of(&wd, "guest-trap");
    assert_eq!(faults.len(), 4);
    assert!(
        faults
            .iter()
            .all(|f| f["fault"] == "trap" && f["consecutive"] == 1),
        "{faults:#?}"
    );
    let counts: Vec<Value> = wd
        .records_of("finding")
        .into_iter()
        .filter(|f| f["rule"] == "guest-trap")
        .map(|f| f["details"]["call"].clone())
        .collect();
    assert_eq!(counts, vec!["2", "4", "6", "8"]);
    assert!(stats.quarantined.is_empty());
    assert_push_fatigue_fired(&wd);
}

#[test]
fn ungranted_and_undeclared_actions_come_back_as_denials() {
    let (wd, _) = run(
        &rule_entry(
            GUEST_FORBIDDEN,
            "mode = \"enforce\"\nallow = [\"escalate\", \"reset-factors\"]",
        ),
        "push-bombing.jsonl",
    );
    let findings: Vec<Value> = wd
        .records_of("finding")
        .into_iter()
        .filter(|f| f["rule"] == "guest-forbidden")
        .collect();
    assert_eq!(findings.len(), 8);
    for f in &findings {
        let d = &f["details"];
        assert!(
            d["block_ip"]
                .as_str()
                .unwrap()
                .starts_with("denied (not-granted): action block-ip is not granted"),
            "{d}"
        );
        assert!(
            d["reset_factors"]
                .as_str()
                .unwrap()
                .starts_with("denied (not-granted): rule guest-forbidden did not declare"),
            "{d}"
        );
    }
    let actions: Vec<Value> = wd
        .records_of("action")
        .into_iter()
        .filter(|a| a["rule"] == "guest-forbidden")
        .collect();
    assert_eq!(actions.len(), 16);
    assert!(
        actions
            .iter()
            .all(|a| a["decision"] == "denied" && a["reason"] == "not-granted")
    );
    // Nothing of guest-forbidden's was executed.
    assert!(
        wd.records_of("action-result")
            .iter()
            .all(|r| r["rule"] != "guest-forbidden")
    );
}

#[test]
fn protected_accounts_are_never_acted_on_even_in_enforce_mode() {
    let body = format!(
        "mode = \"enforce\"\n[protected]\nlogins = [\"breakglass-*@example.com\"]\n\
         [[rules]]\nbuiltin = \"mfa-push-fatigue\"\nallow = [\"suspend-user\", \"escalate\"]\n{}",
        rule_entry(GUEST_PROTECTED, "allow = [\"suspend-user\"]")
    );
    let (wd, _) = run(&body, "protected-push-bombing.jsonl");
    let triples = action_triples(&wd.audit_records());
    let suspends: Vec<_> = triples.iter().filter(|t| t.0 == "suspend-user").collect();
    // 6 from the hostile guest (one per event) and 1 from the push-fatigue rule.
    assert_eq!(suspends.len(), 7);
    assert!(
        suspends
            .iter()
            .all(|t| t.1 == "00ubreakglass1" && t.2 == "denied"),
        "{suspends:?}"
    );
    let reasons: Vec<Value> = wd
        .records_of("action")
        .into_iter()
        .filter(|a| a["action"] == "suspend-user")
        .map(|a| a["reason"].clone())
        .collect();
    assert!(reasons.iter().all(|r| r == "protected"));
    // The attack is not ignored: push-fatigue's own escalation goes out,
    // and the host raises one more per rule that aimed at the protected
    // account (once per hour, however many times the rule asked).
    let host: Vec<Value> = wd
        .records_of("action")
        .into_iter()
        .filter(|a| a["origin"] == "host")
        .collect();
    let rules: Vec<&str> = host.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["guest-protected", "mfa-push-fatigue"], "{host:?}");
    assert!(host.iter().all(|a| {
        a["action"] == "escalate"
            && a["decision"] == "accepted"
            && a["params"]["summary"]
                .as_str()
                .unwrap()
                .contains("protected account 00ubreakglass1")
    }));
    let results = wd.records_of("action-result");
    assert_eq!(results.len(), 3);
    assert!(
        results
            .iter()
            .all(|r| r["action"] == "escalate" && r["decision"] == "executed"),
        "{results:?}"
    );
}

#[test]
fn huge_output_is_truncated_and_counted_as_a_fault() {
    let (wd, _) = run(
        &rule_entry(
            GUEST_HUGE_OUTPUT,
            "limits = { quarantine_after = 2, deadline_ms = 5000 }",
        ),
        "push-bombing.jsonl",
    );
    let spam = wd
        .records_of("finding")
        .into_iter()
        .filter(|f| f["rule"] == "guest-huge-output")
        .count();
    // Two calls before quarantine, max_findings = 100 kept from each.
    assert_eq!(spam, 200);
    let faults = faults_of(&wd, "guest-huge-output");
    assert_eq!(faults.len(), 2);
    assert_eq!(faults[0]["fault"], "output-limit");
    assert_eq!(
        faults[0]["message"],
        "10000 findings returned; max_findings = 100, the first 100 were kept"
    );
    assert_push_fatigue_fired(&wd);
}

#[test]
fn state_key_limit_traps_naming_the_limit() {
    let (wd, _) = run(
        &rule_entry(GUEST_STATE_HOG, "limits = { state_max_keys = 3 }"),
        "push-bombing.jsonl",
    );
    let faults = faults_of(&wd, "guest-state-hog");
    // Keys 1-3 fit; events 4 to 8 each fault.
    assert_eq!(faults.len(), 5);
    assert_eq!(faults[0]["fault"], "state-limit");
    assert_eq!(
        faults[0]["message"],
        "state limit `max_keys` exceeded: 4 requested, 3 allowed"
    );
}

#[test]
fn a_component_of_another_world_is_refused_at_load() {
    let wd = Workdir::new();
    let config = Config::load(&wd.config(&rule_entry(GUEST_WRONG_WORLD, ""))).unwrap();
    let err = setup::load_rules(&config).err().expect("must be refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("guest_wrong_world.wasm") || msg.contains("guest-wrong-world.wasm"),
        "{msg}"
    );
    assert!(msg.contains("does not export `metadata`"), "{msg}");
}

#[test]
fn bytes_that_are_not_a_component_are_refused_at_load() {
    let wd = Workdir::new();
    let bogus = wd.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm not really").unwrap();
    let config = Config::load(&wd.config(&rule_entry(bogus.to_str().unwrap(), ""))).unwrap();
    let msg = format!(
        "{:#}",
        setup::load_rules(&config).err().expect("must be refused")
    );
    assert!(
        msg.contains("bogus.wasm is not a valid WebAssembly component"),
        "{msg}"
    );
}

// --- Guests that try to make the host wait --------------------------------

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// Compiled components shared by the tests here that run the binary.
fn cache_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sandbox-xdg-cache")
}

fn wait_rule(mode: &str, limits: &str) -> String {
    rule_entry(
        GUEST_WAIT,
        &format!("config = {{ wait = {mode:?} }}\nlimits = {{ {limits} }}"),
    )
}

#[test]
fn a_guest_that_waits_is_faulted_at_once_and_neighbours_keep_working() {
    // (mode, the WASI function the fault must name; `sleep` is whatever
    // std uses for `thread::sleep`).
    for (mode, function) in [
        ("block", Some("wasi:io/poll.pollable.block")),
        ("poll", Some("wasi:io/poll.poll")),
        ("sleep", None),
    ] {
        let (wd, stats) = run(
            &wait_rule(mode, "quarantine_after = 100"),
            "push-bombing.jsonl",
        );
        let faults = faults_of(&wd, "guest-wait");
        // Every one of the 8 events: the call ends instead of sleeping an
        // hour, and the next event is handled.
        assert_eq!(faults.len(), 8, "{mode}: {faults:#?}");
        for f in &faults {
            assert_eq!(f["fault"], "would-block", "{mode}: {f}");
            let message = f["message"].as_str().unwrap();
            assert!(message.contains("a rule may not wait"), "{mode}: {f}");
            if let Some(function) = function {
                assert!(message.starts_with(function), "{mode}: {f}");
            }
        }
        assert!(
            wd.records_of("finding")
                .iter()
                .all(|f| f["rule"] != "guest-wait"),
            "{mode}: a waiting call returned"
        );
        assert_eq!(stats.faults, 8, "{mode}");
        assert_push_fatigue_fired(&wd);
    }
}

#[test]
fn a_blocking_stdin_read_and_due_timers_answer_at_once() {
    for (mode, outcome) in [
        ("stdin", "closed"),
        (
            "due",
            "due: block returned; poll(never, due) = [1]; never.ready() = false",
        ),
    ] {
        let (wd, stats) = run(&wait_rule(mode, ""), "push-bombing.jsonl");
        assert_eq!(
            stats.faults,
            0,
            "{mode}: {:#?}",
            faults_of(&wd, "guest-wait")
        );
        let outcomes: Vec<Value> = wd
            .records_of("finding")
            .into_iter()
            .filter(|f| f["rule"] == "guest-wait")
            .map(|f| f["details"]["outcome"].clone())
            .collect();
        assert_eq!(outcomes.len(), 8, "{mode}");
        assert!(
            outcomes.iter().all(|o| o == outcome),
            "{mode}: {outcomes:?}"
        );
        assert_push_fatigue_fired(&wd);
    }
}

/// Runs the `vigil` binary in `wd` to its end, stdout and stderr into
/// files, killing it (and failing) if it is still running after a
/// generous deadline. Returns the exit status, stderr and the process's
/// peak RSS in KiB (`ru_maxrss` of `wait4`, for this child only).
fn run_to_end(wd: &Workdir, args: &[&str]) -> (libc::c_int, String, u64) {
    let out = std::fs::File::create(wd.path().join("vigil.stdout")).unwrap();
    let err_path = wd.path().join("vigil.stderr");
    let err = std::fs::File::create(&err_path).unwrap();
    #[expect(
        clippy::zombie_processes,
        reason = "reaped below by wait4, which also reports the child's rusage"
    )]
    let child = Command::new(VIGIL)
        .args(args)
        .current_dir(wd.path())
        .env("XDG_CACHE_HOME", cache_home())
        .env("VIGIL_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start vigil");
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut status = 0;
        // SAFETY: plain system call on our own child; `rusage` is a valid,
        // writable struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(rc >= 0, "wait4: {}", std::io::Error::last_os_error());
        if rc == pid {
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            return (status, stderr, usage.ru_maxrss as u64);
        }
        if Instant::now() > deadline {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!(
                "vigil {args:?} still running after 300 s (a rule blocked the host?):\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn exited_ok(status: libc::c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

#[test]
fn a_finite_vigil_run_with_a_sleeping_guest_finishes() {
    let wd = Workdir::new();
    let config = wd.config(&wait_rule("block", "deadline_ms = 25"));
    let events = fixture("push-bombing.jsonl");
    let (status, stderr, _) = run_to_end(
        &wd,
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ],
    );
    assert!(exited_ok(status), "exit {status}\n{stderr}");
    // Default quarantine_after = 5: five faults, then no more events.
    let faults = faults_of(&wd, "guest-wait");
    assert_eq!(faults.len(), 5, "{faults:#?}");
    assert!(faults.iter().all(|f| f["fault"] == "would-block"));
    let quarantined = wd.records_of("rule-quarantined");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0]["rule"], "guest-wait");
    assert_push_fatigue_fired(&wd);
    vigil_host::audit::verify(&wd.audit_path()).expect("audit chain holds");
}

/// The service (`vigil run` with `[server]`), for the sandbox tests: the
/// real binary on 127.0.0.1:0, its stderr collected.
struct Service {
    wd: Workdir,
    p: VigilProcess,
}

impl Service {
    fn start(body: &str) -> Service {
        let wd = Workdir::new();
        let config = wd.config(&format!("{body}\n[server]\nlisten = \"127.0.0.1:0\"\n"));
        let mut command = Command::new(VIGIL);
        command
            .args(["run", "--config", config.to_str().unwrap()])
            .current_dir(wd.path())
            .env("XDG_CACHE_HOME", cache_home())
            .env("VIGIL_LOG", "info");
        let p = VigilProcess::spawn(command, "http");
        Service { wd, p }
    }

    /// Polls `check` until it holds, failing with the log after a generous
    /// deadline.
    fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl std::ops::Deref for Service {
    type Target = VigilProcess;
    fn deref(&self) -> &VigilProcess {
        &self.p
    }
}

impl std::ops::DerefMut for Service {
    fn deref_mut(&mut self) -> &mut VigilProcess {
        &mut self.p
    }
}

/// A minimal Okta LogEvent (a session start) with this uuid.
fn okta_event(uuid: &str) -> Value {
    json!({
        "uuid": uuid,
        "published": "2026-03-01T10:00:00.000Z",
        "eventType": "user.session.start",
        "actor": {"id": "00usandbox01", "type": "User", "alternateId": "sandbox@example.com"},
        "outcome": {"result": "SUCCESS"},
        "client": {"ipAddress": "198.51.100.7"}
    })
}

#[test]
fn the_service_keeps_calling_every_rule_while_a_guest_tries_to_sleep() {
    // guest-wait sleeps an hour on every event (never quarantined here);
    // guest-forbidden writes a finding for every event; push-fatigue must
    // still catch the push bombing.
    let body = format!(
        "builtin_pack = false\n[[rules]]\nbuiltin = \"mfa-push-fatigue\"\n\
         allow = [\"suspend-user\", \"escalate\"]\n{}{}",
        wait_rule("block", "quarantine_after = 1000"),
        rule_entry(GUEST_FORBIDDEN, "")
    );
    let mut s = Service::start(&body);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let pushes: Vec<Value> = std::fs::read_to_string(fixture("push-bombing.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let more: Vec<Value> = (0..20)
        .map(|i| okta_event(&format!("evt-sandbox-{i}")))
        .collect();
    for batch in [&pushes, &more] {
        let r = client.post(s.url("/v1/events")).json(batch).send().unwrap();
        assert_eq!(r.status().as_u16(), 202, "{}", r.text().unwrap_or_default());
    }
    let total = pushes.len() + more.len();
    s.eventually("a guest-forbidden finding for every event", || {
        s.wd.records_of("finding")
            .iter()
            .filter(|f| f["rule"] == "guest-forbidden")
            .count()
            == total
    });
    s.eventually("a would-block fault for every event", || {
        faults_of(&s.wd, "guest-wait").len() == total
    });
    assert!(
        faults_of(&s.wd, "guest-wait")
            .iter()
            .all(|f| f["fault"] == "would-block")
    );
    assert_push_fatigue_fired(&s.wd);
    let status = s.stop();
    assert!(status.success(), "exit {status:?}\n{}", s.log());
    vigil_host::audit::verify(&s.wd.audit_path()).expect("audit chain holds");
}

// --- Output and audit amplification ---------------------------------------

fn amplify_records(records: &[Value]) -> impl Iterator<Item = &Value> {
    records.iter().filter(|r| r["rule"] == "guest-amplify")
}

#[test]
fn oversized_requests_are_denied_before_the_grant_check_and_recorded_as_previews() {
    // One call of 4 requests with 8 KiB targets/summaries (over the 4 KiB
    // field bound), then one call of 3 small findings: no fault.
    let (wd, stats) = run(
        &rule_entry(
            GUEST_AMPLIFY,
            "config = { requests = 4, target_kib = 8, findings = 3, finding_kib = 1 }",
        ),
        "push-bombing.jsonl",
    );
    assert_eq!(stats.faults, 0, "{:#?}", faults_of(&wd, "guest-amplify"));
    let records = wd.audit_records();
    let actions: Vec<&Value> = amplify_records(&records)
        .filter(|r| r["type"] == "action")
        .collect();
    // Events 1, 3, 5, 7 make the requests: 4 × 4.
    assert_eq!(actions.len(), 16);
    for a in &actions {
        assert_eq!(a["decision"], "denied", "{a}");
        // `invalid`, not `not-granted`: the size is checked first.
        assert_eq!(a["reason"], "invalid", "{a}");
        let message = a["message"].as_str().unwrap();
        assert!(
            message.contains("bytes; at most 4096 are accepted"),
            "{message}"
        );
        assert!(a.to_string().len() < 2048, "record not bounded: {a}");
    }
    let suspend = actions
        .iter()
        .find(|a| a["action"] == "suspend-user")
        .unwrap();
    assert!(suspend["target"].as_str().unwrap().ends_with('…'));
    assert_eq!(
        amplify_records(&records)
            .filter(|r| r["type"] == "finding")
            .count(),
        12
    );
}

#[test]
fn the_request_past_max_action_requests_ends_the_call_as_an_output_fault() {
    let (wd, _) = run(
        &rule_entry(
            GUEST_AMPLIFY,
            "config = { requests = 50, target_kib = 0, findings = 0 }\n\
             limits = { quarantine_after = 100 }",
        ),
        "push-bombing.jsonl",
    );
    let records = wd.audit_records();
    let actions = amplify_records(&records)
        .filter(|r| r["type"] == "action")
        .count();
    // Four request calls, 16 recorded each; the 17th ended the call.
    assert_eq!(actions, 4 * 16);
    let faults = faults_of(&wd, "guest-amplify");
    assert_eq!(faults.len(), 4, "{faults:#?}");
    for f in &faults {
        assert_eq!(f["fault"], "output-limit");
        assert_eq!(
            f["message"],
            "more than max_action_requests = 16 action requests in one call; the call was \
             ended at request 17 (not decided, not recorded)"
        );
    }
}

#[test]
fn findings_past_the_audit_byte_budget_are_dropped_and_faulted() {
    let (wd, _) = run(
        &rule_entry(
            GUEST_AMPLIFY,
            "config = { requests = 0, findings = 10, finding_kib = 4 }\n\
             limits = { max_audit_bytes_per_call = 32768, quarantine_after = 100 }",
        ),
        "push-bombing.jsonl",
    );
    let records = wd.audit_records();
    let findings: Vec<&Value> = amplify_records(&records)
        .filter(|r| r["type"] == "finding")
        .collect();
    let faults = faults_of(&wd, "guest-amplify");
    // Events 2, 4, 6, 8 return findings; each call keeps what fits.
    assert_eq!(faults.len(), 4, "{faults:#?}");
    let message = faults[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("findings past max_audit_bytes_per_call = 32768: "),
        "{message}"
    );
    let kept: usize = message
        .split(": ")
        .nth(1)
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((1..10).contains(&kept), "{message}");
    assert_eq!(findings.len(), 4 * kept);
    // What was kept fits the budget.
    let bytes: usize = findings[..kept].iter().map(|f| f.to_string().len()).sum();
    assert!(bytes <= 32768, "{bytes}");
}

#[test]
fn audit_amplification_without_grants_is_bounded_in_log_and_memory() {
    // The attack as reproduced: no grants, every event answered with a
    // thousand 1 MiB requests or a hundred 64 KiB findings; 200 events.
    let wd = Workdir::new();
    let events = wd.path().join("events.jsonl");
    let lines: Vec<String> = (0..200)
        .map(|i| okta_event(&format!("evt-amplify-{i}")).to_string())
        .collect();
    std::fs::write(&events, lines.join("\n")).unwrap();
    let config = wd.config(&format!(
        "builtin_pack = false\n{}",
        rule_entry(GUEST_AMPLIFY, "limits = { deadline_ms = 5000 }")
    ));
    let (status, stderr, peak_kib) = run_to_end(
        &wd,
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ],
    );
    assert!(exited_ok(status), "exit {status}\n{stderr}");
    let audit_bytes = std::fs::metadata(wd.audit_path()).unwrap().len();
    eprintln!(
        "audit amplification, 200 events: audit log {audit_bytes} bytes, peak RSS {peak_kib} KiB"
    );
    assert!(
        audit_bytes < 16 * 1024 * 1024,
        "audit log of {audit_bytes} bytes"
    );
    assert!(peak_kib < 400 * 1024, "peak RSS {peak_kib} KiB");
    // Every call crossed a cap: five output faults in a row, then
    // quarantine.
    let faults = faults_of(&wd, "guest-amplify");
    assert_eq!(faults.len(), 5, "{faults:#?}");
    assert!(faults.iter().all(|f| f["fault"] == "output-limit"));
    assert!(faults.iter().all(|f| f.to_string().len() < 2048));
    let quarantined = wd.records_of("rule-quarantined");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0]["rule"], "guest-amplify");
    vigil_host::audit::verify(&wd.audit_path()).expect("audit chain holds");
}

// A rule with no grants stores ~66 MB of state per event (values under the
// per-value limit, fresh keys under the key limit: the default limits alone
// would let it reach gigabytes). The byte budget stops it: every call past
// 64 MiB is a `state-limit` fault naming `max_bytes`, the rule ends
// quarantined, the healthy rule still fires, and the process stays under
// 400 MiB at its peak.
#[test]
fn state_byte_budget_stops_a_state_bloating_rule_below_400_mib() {
    let wd = Workdir::new();
    let body = format!(
        "builtin_pack = false\n[[rules]]\nbuiltin = \"mfa-push-fatigue\"\n{}",
        rule_entry(GUEST_STATE_BLOAT, "limits = { deadline_ms = 20000 }")
    );
    let config = wd.config(&body);
    let config = config.to_str().unwrap();
    // A first run fills the compiled-component cache, so the measured run
    // holds rules, not the compiler.
    let (status, stderr, _) =
        run_to_end(&wd, &["run", "--config", config, "--events", "/dev/null"]);
    assert!(exited_ok(status), "vigil failed:\n{stderr}");
    std::fs::remove_file(wd.audit_path()).ok();
    std::fs::remove_file(wd.path().join("audit.jsonl.head")).ok();
    let events = fixture("push-bombing.jsonl");
    let (status, stderr, peak_kib) = run_to_end(
        &wd,
        &[
            "run",
            "--config",
            config,
            "--events",
            events.to_str().unwrap(),
        ],
    );
    assert!(exited_ok(status), "vigil failed:\n{stderr}");
    eprintln!("state-bloat attack: peak RSS {} MiB", peak_kib / 1024);
    assert!(
        peak_kib < 400 * 1024,
        "peak RSS {} MiB, bound 400 MiB",
        peak_kib / 1024
    );
    let faults = faults_of(&wd, "guest-state-bloat");
    assert_eq!(faults.len(), 5, "{faults:#?}");
    for f in &faults {
        assert_eq!(f["fault"], "state-limit", "{f}");
        let message = f["message"].as_str().unwrap();
        assert!(
            message.starts_with("state limit `max_bytes` exceeded")
                && message.ends_with(&format!("{} allowed", 64 * 1024 * 1024)),
            "{message}"
        );
    }
    let quarantined = wd.records_of("rule-quarantined");
    assert_eq!(quarantined.len(), 1, "{quarantined:#?}");
    assert_eq!(quarantined[0]["rule"], "guest-state-bloat");
    assert_push_fatigue_fired(&wd);
}
