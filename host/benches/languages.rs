//! The same small rule in Rust, Python and JavaScript (the `vigil new`
//! scaffold: denied pushes in a burst → escalate), measured in one run:
//! component size, first start (compile), warm start (compiled-component
//! cache), loading a rule (cached compile + instantiate + `metadata()`),
//! per-event cost and linear memory per instance.
//!
//! `cargo bench -p vigil-host --bench languages` — needs componentize-py and
//! componentize-js on PATH (`tests/run.sh` installs them under
//! `target/lang-tools`; add `target/lang-tools/venv/bin` and
//! `target/lang-tools/js/node_modules/.bin` to PATH).

use std::borrow::Cow;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_host::config::{Limits, Mode};
use vigil_host::engine::VigilEngine;
use vigil_host::model::Event;
use vigil_host::normalize::Normalizer;
use vigil_host::policy::PolicyGate;
use vigil_host::rules::{RuleLoader, RuleSource, RuleSpec};

const EVENTS: usize = 20_000;
const USERS: usize = 5_000;

fn main() {
    let work = tempfile::tempdir().unwrap();
    let events = stream();
    println!(
        "{:<11} {:>9} {:>12} {:>11} {:>12} {:>10} {:>11} {:>9}",
        "language",
        "size MB",
        "compile ms",
        "cached ms",
        "instance ms",
        "µs/event",
        "events/s",
        "mem MiB"
    );
    for lang in ["rust", "python", "js"] {
        let name = format!("bench-{lang}");
        let vigil = env!("CARGO_BIN_EXE_vigil");
        let ok = Command::new(vigil)
            .args(["new", &name, "--lang", lang, "--dir"])
            .arg(work.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "vigil new {lang}");
        let project = work.path().join(&name);
        let out = Command::new(vigil)
            .args(["build", "."])
            .current_dir(&project)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "vigil build {lang}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(project.join("build").join(format!("{name}.wasm"))).unwrap();
        measure(
            lang,
            bytes,
            &work.path().join(format!("cache-{lang}")),
            &events,
        );
    }
}

fn measure(lang: &str, bytes: Vec<u8>, cache: &Path, events: &[Arc<Event>]) {
    // First start: nothing cached. Warm start: the artifact is on disk.
    let cold = VigilEngine::new(Some(cache)).unwrap();
    let t = Instant::now();
    cold.compile(&bytes, lang).unwrap();
    let compile = t.elapsed();
    let warm = VigilEngine::new(Some(cache)).unwrap();
    let t = Instant::now();
    warm.compile(&bytes, lang).unwrap();
    let cached = t.elapsed();

    let loader = RuleLoader::new(warm, PolicyGate::default()).unwrap();
    let spec = || RuleSpec {
        source: RuleSource {
            origin: lang.into(),
            bytes: Cow::Owned(bytes.clone()),
            expected_id: None,
        },
        mode: Mode::AuditOnly,
        granted: None,
        config: Default::default(),
        limits: Limits {
            deadline_ms: 1_000,
            ..Limits::default()
        },
        approval: Vec::new(),
        budget: Default::default(),
        args: vigil_host::policy::ArgumentGrants::builtin_default(),
    };
    loader.load(spec()).unwrap(); // compiled once more from the cache: warm
    let t = Instant::now();
    let mut rule = loader.load(spec()).unwrap();
    let instantiate = t.elapsed();

    for e in events.iter().take(1_000) {
        rule.on_event(e); // warm-up
    }
    let mut rule = loader.load(spec()).unwrap();
    let t = Instant::now();
    let mut findings = 0;
    for e in events {
        let outcome = rule.on_event(e);
        assert!(outcome.fault.is_none(), "{lang}: {:?}", outcome.fault);
        findings += outcome.findings.len();
    }
    let per_event = t.elapsed() / events.len() as u32;
    assert!(findings > 0);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{lang:<11} {:>9.1} {:>12.0} {:>11.1} {:>12.2} {:>10.1} {:>11.0} {:>9.1}",
        bytes.len() as f64 / 1e6,
        ms(compile),
        ms(cached),
        ms(instantiate),
        per_event.as_secs_f64() * 1e6,
        1.0 / per_event.as_secs_f64(),
        rule.linear_memory_in_use() as f64 / (1024.0 * 1024.0),
    );
}

/// `EVENTS` deny_push events, `USERS` users, one minute apart per user, so
/// every user crosses the scaffold's threshold of 3 once.
fn stream() -> Vec<Arc<Event>> {
    let normalizer = Normalizer::default();
    (0..EVENTS)
        .map(|i| {
            let user = i % USERS;
            let t = 1_772_438_400_000i64 + (i / USERS) as i64 * 60_000 + user as i64;
            let line = format!(
                r#"{{"uuid":"lang-{i}","published":"{}","eventType":"user.mfa.okta_verify.deny_push","actor":{{"id":"00ubench{user}","type":"User","alternateId":"u{user}@example.com"}},"outcome":{{"result":"FAILURE"}},"client":{{"ipAddress":"203.0.113.5"}},"debugContext":{{"debugData":{{"factor":"OKTA_VERIFY_PUSH"}}}}}}"#,
                chrono::DateTime::from_timestamp_millis(t).unwrap().to_rfc3339()
            );
            let mut out = Vec::new();
            normalizer.normalize_line(&line, &mut out).unwrap();
            Arc::new(out.pop().unwrap())
        })
        .collect()
}
