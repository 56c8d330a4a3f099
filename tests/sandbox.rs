//! The sandbox under attack: purpose-built hostile guests (real components
//! built from `tests/guests/`) run beside the real `mfa-push-fatigue` rule,
//! through the real pipeline. Each test asserts exactly what happens to the
//! hostile rule, and that the healthy rule still reports its finding.

use serde_json::Value;
use vigil_host::actions::executor::ActionExecutor;
use vigil_host::audit::AuditLog;
use vigil_host::cli::setup;
use vigil_host::config::Config;
use vigil_host::pipeline::{Pipeline, RunStats};
use vigil_host::sources::LineReader;
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

/// Runs the real `vigil` binary on `fixture_name` with `config_body` and
/// returns its exit status and the peak resident set size of that process
/// (bytes), read with `wait4` after it exits. A first run fills the
/// compiled-component cache, so the measured run holds rules, not the
/// compiler.
fn run_binary_measuring_peak_rss(
    wd: &Workdir,
    config_body: &str,
    fixture_name: &str,
) -> (i32, u64) {
    use std::process::{Command, Stdio};
    const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
    let config = wd.config(config_body);
    let cache = wd.path().join("xdg-cache");
    let warm = Command::new(VIGIL)
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--events",
            "/dev/null",
        ])
        .current_dir(wd.path())
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .expect("run vigil");
    assert!(
        warm.status.success(),
        "{}",
        String::from_utf8_lossy(&warm.stderr)
    );
    std::fs::remove_file(wd.audit_path()).ok();
    std::fs::remove_file(wd.path().join("audit.jsonl.head")).ok();
    let log = std::fs::File::create(wd.path().join("vigil.log")).unwrap();
    let child = Command::new(VIGIL)
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--events",
            fixture(fixture_name).to_str().unwrap(),
        ])
        .current_dir(wd.path())
        .env("XDG_CACHE_HOME", &cache)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start vigil");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `child` is never waited on again
    // (dropping a `Child` does not wait or kill).
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    // ru_maxrss is in KiB on Linux.
    (code, usage.ru_maxrss as u64 * 1024)
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
    let (code, peak) = run_binary_measuring_peak_rss(&wd, &body, "push-bombing.jsonl");
    let log = std::fs::read_to_string(wd.path().join("vigil.log")).unwrap_or_default();
    assert_eq!(code, 0, "vigil failed:\n{log}");
    eprintln!("state-bloat attack: peak RSS {} MiB", peak / (1024 * 1024));
    assert!(
        peak < 400 * 1024 * 1024,
        "peak RSS {} MiB, bound 400 MiB",
        peak / (1024 * 1024)
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
