//! Contract v0.2 at the boundary, with real components through the real
//! pipeline: what a rule reads of an event (`raw` by JSON pointer, also
//! inside a multi-record line; attributes; bounded values and malformed
//! pointers as error values), the outcome filter keeping events away from
//! a rule, a rule that reads through an event handle it was not given
//! (stale or forged: it traps, reads nothing, and its neighbours run), and
//! the loader refusing a component of a contract version the host does not
//! implement. The v0.1 side (the frozen pack beside today's build) is
//! `host/src/rule_tests/frozen_tests.rs`.

use std::path::Path;

use serde_json::Value;
use vigil_host::audit::AuditLog;
use vigil_host::cli::setup;
use vigil_host::config::Config;
use vigil_host::executor::ActionExecutor;
use vigil_host::pipeline::{Pipeline, RunStats};
use vigil_host::sources::LineReader;
use vigil_test_support::*;

/// Runs the lines of `events` through the rules of `config_body` (plus the
/// built-in pack), checks the audit chain, returns the work directory.
fn run(config_body: &str, events: &Path) -> (Workdir, RunStats) {
    let wd = Workdir::new();
    let config = Config::load(&wd.config(config_body)).expect("valid config");
    let rules = setup::load_rules(&config).expect("rules load");
    let audit = AuditLog::open(&config.audit_path).expect("audit log opens");
    let mut pipeline = Pipeline::new(rules, audit, ActionExecutor::log_only().unwrap()).unwrap();
    let mut reader = LineReader::open(events, config.max_line_bytes).unwrap();
    pipeline.run_stream(&mut reader).expect("stream runs");
    let stats = pipeline.finish().expect("finish");
    drop(pipeline);
    vigil_host::audit::verify(&wd.audit_path()).expect("audit chain holds");
    (wd, stats)
}

fn findings_of(wd: &Workdir, rule: &str) -> Vec<Value> {
    wd.records_of("finding")
        .into_iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}

fn faults_of(wd: &Workdir, rule: &str) -> Vec<Value> {
    wd.records_of("rule-fault")
        .into_iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}

fn fixture_lines(name: &str) -> Vec<Value> {
    std::fs::read_to_string(fixture(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn reader_rule(config: &str) -> String {
    format!("[[rules]]\npath = {GUEST_EVENT_READER:?}\n[rules.config]\n{config}\n")
}

#[test]
fn a_rule_reads_vendor_fields_by_json_pointer_and_only_gets_failed_events() {
    let (wd, _) = run(
        &reader_rule(
            "pointer = \"/debugContext/debugData/requestUri\"\npointer2 = \"/no/such/field\"\nattribute = \"outcome-result\"",
        ),
        &fixture("push-bombing.jsonl"),
    );
    let lines = fixture_lines("push-bombing.jsonl");
    let failed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["outcome"]["result"] == "FAILURE")
        .collect();
    assert!(!failed.is_empty() && failed.len() < lines.len());
    let found = findings_of(&wd, "event-reader");
    // The outcome filter: one call per failed event, none for the others.
    assert_eq!(found.len(), failed.len(), "{found:#?}");
    for (finding, line) in found.iter().zip(&failed) {
        let d = &finding["details"];
        assert_eq!(finding["subject"], line["uuid"]);
        assert_eq!(d["kind"], line["eventType"]);
        // `raw` gives the source field as JSON text, untouched.
        let uri = &line["debugContext"]["debugData"]["requestUri"];
        assert_eq!(d["pointer"], uri.to_string(), "{d:#?}");
        assert_eq!(d["pointer2"], "none");
        assert_eq!(d["attribute"], "FAILURE");
        assert_eq!(d["actor"], line["actor"]["id"]);
    }
    // The pack's rule still fired on the same stream.
    assert_eq!(findings_of(&wd, "mfa-push-fatigue").len(), 1);
}

#[test]
fn raw_reads_the_element_of_a_multi_record_line() {
    // Two failed LogEvents in one Okta Event Hook delivery: each event's
    // `raw` must read its own element, not the envelope or its neighbour.
    let lines = fixture_lines("push-bombing.jsonl");
    let failed: Vec<Value> = lines
        .into_iter()
        .filter(|l| l["outcome"]["result"] == "FAILURE")
        .take(2)
        .collect();
    let wd_events = tempfile::tempdir().unwrap();
    let path = wd_events.path().join("hook.jsonl");
    let hook = serde_json::json!({"eventType": "com.okta.event_hook", "data": {"events": failed}});
    std::fs::write(&path, format!("{hook}\n")).unwrap();
    let (wd, _) = run(
        &reader_rule("pointer = \"/uuid\"\npointer2 = \"/data\""),
        &path,
    );
    let found = findings_of(&wd, "event-reader");
    assert_eq!(found.len(), 2, "{found:#?}");
    for (finding, event) in found.iter().zip(&failed) {
        assert_eq!(finding["details"]["pointer"], event["uuid"].to_string());
        assert_eq!(
            finding["details"]["pointer2"], "none",
            "the envelope is not the record"
        );
    }
}

#[test]
fn malformed_pointers_and_oversized_values_come_back_as_error_values() {
    let (wd, stats) = run(
        &format!(
            "{}[rules.limits]\nmax_raw_bytes = 16\n",
            reader_rule("pointer = \"debugContext\"\npointer2 = \"/debugContext/debugData\"")
        ),
        &fixture("push-bombing.jsonl"),
    );
    let found = findings_of(&wd, "event-reader");
    assert!(!found.is_empty());
    for f in &found {
        let d = &f["details"];
        assert!(
            d["pointer"]
                .as_str()
                .unwrap()
                .starts_with("error: invalid JSON pointer \"debugContext\""),
            "{d:#?}"
        );
        assert_eq!(
            d["pointer2"],
            "error: the value at \"/debugContext/debugData\" is longer than max_raw_bytes = 16 \
             (as JSON text)"
        );
    }
    // Error values, not faults.
    assert!(faults_of(&wd, "event-reader").is_empty());
    assert_eq!(stats.faults, 0);
}

fn stale_rule(mode: &str) -> String {
    format!(
        "[[rules]]\npath = {GUEST_STALE_EVENT:?}\n[rules.config]\nmode = {mode:?}\n[rules.limits]\nquarantine_after = 100\n"
    )
}

#[test]
fn an_event_handle_from_an_earlier_call_never_reads_another_event() {
    let (wd, _) = run(&stale_rule("stale"), &fixture("push-bombing.jsonl"));
    let findings = findings_of(&wd, "stale-event");
    let faults = faults_of(&wd, "stale-event");
    // Every call either kept a handle, trapped, or — when the component
    // model reused the slot for this call's event — read this call's own
    // event. Never an earlier one.
    assert_eq!(
        findings.len() + faults.len(),
        8,
        "{findings:#?}\n{faults:#?}"
    );
    let kept = findings
        .iter()
        .filter(|f| f["title"] == "kept a handle")
        .count();
    assert!(kept < 8, "the guest never tried an old handle");
    for f in &findings {
        if f["title"] == "read an event it was not given" {
            assert_eq!(f["subject"], f["event_id"], "read another event: {f:#?}");
        }
    }
    assert!(faults.iter().all(|f| f["fault"] == "trap"), "{faults:#?}");
    assert_eq!(findings_of(&wd, "mfa-push-fatigue").len(), 1);
}

#[test]
fn a_forged_event_handle_traps_and_neighbours_keep_running() {
    let (wd, stats) = run(&stale_rule("forge"), &fixture("push-bombing.jsonl"));
    let faults = faults_of(&wd, "stale-event");
    assert_eq!(faults.len(), 8, "{faults:#?}");
    assert!(faults.iter().all(|f| f["fault"] == "trap"), "{faults:#?}");
    assert!(
        findings_of(&wd, "stale-event").is_empty(),
        "a forged handle read something"
    );
    assert!(stats.quarantined.is_empty());
    assert_eq!(findings_of(&wd, "mfa-push-fatigue").len(), 1);
}

/// A real component's bytes with its `vigil:rule` import versions
/// rewritten (same length, so the binary stays well-formed).
fn with_import_versions(from: &str, to: &str, only: Option<&str>) -> Vec<u8> {
    let mut bytes = std::fs::read(GUEST_EVENT_READER).unwrap();
    let interfaces = ["types", "actions", "state", "log", "config"];
    for iface in interfaces {
        if only.is_some_and(|o| o != iface) {
            continue;
        }
        let old = format!("vigil:rule/{iface}@{from}");
        let new = format!("vigil:rule/{iface}@{to}");
        assert_eq!(old.len(), new.len());
        let mut at = 0;
        while let Some(i) = find(&bytes[at..], old.as_bytes()) {
            bytes[at + i..at + i + new.len()].copy_from_slice(new.as_bytes());
            at += i + new.len();
        }
    }
    bytes
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn load_error(bytes: &[u8]) -> String {
    let wd = Workdir::new();
    let path = wd.path().join("rule.wasm");
    std::fs::write(&path, bytes).unwrap();
    let config = Config::load(&wd.config(&format!(
        "builtin_pack = false\n[[rules]]\npath = {:?}\n",
        path.display().to_string()
    )))
    .unwrap();
    format!(
        "{:#}",
        setup::load_rules(&config).err().expect("must be refused")
    )
}

#[test]
fn a_component_of_an_unsupported_contract_version_is_refused_with_the_supported_range() {
    let msg = load_error(&with_import_versions("0.3.0", "0.9.0", None));
    assert!(msg.contains("rule.wasm"), "{msg}");
    assert!(
        msg.contains("built against vigil:rule@0.9.0; this host implements vigil:rule@0.1.0 to vigil:rule@0.3.0"),
        "{msg}"
    );
}

#[test]
fn a_component_importing_two_contract_versions_is_refused() {
    let msg = load_error(&with_import_versions("0.3.0", "0.1.0", Some("config")));
    assert!(msg.contains("imports two versions of vigil:rule"), "{msg}");
}
