//! Rules in Python and JavaScript, first-class beside Rust: the example
//! rules, hostile guests and event guests (every field read through the
//! SDK) are built from source with `vigil build` (componentize-py,
//! componentize-js — `tests/run.sh` installs them) and run through the real
//! `vigil` binary over fixtures; `vigil new` scaffolds in each language build
//! and pass their own fixture.
//!
//! Components are built once per test run into `CARGO_TARGET_TMPDIR` (and
//! not rebuilt while newer than their sources), and compiled once into a
//! shared cache, so the 10–20 MB Python and JavaScript components cost their
//! seconds of compilation once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// Runs vigil with one compiled-component cache for the whole test run.
fn vigil(args: &[&str], cwd: &Path) -> Output {
    vigil_test_support::vigil(VIGIL, args, cwd, &shared_dir().join("xdg-cache"))
}

fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("languages")
}

/// Newest modification time under `path`.
fn newest(path: &Path) -> std::time::SystemTime {
    let meta = std::fs::metadata(path).unwrap();
    let mut t = meta.modified().unwrap();
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            t = t.max(newest(&entry.unwrap().path()));
        }
    }
    t
}

/// Builds a rule project with `vigil build` unless the component is newer
/// than its sources, the SDK helpers and the WIT; then compiles it into the
/// shared cache with `vigil inspect`. Panics with the tool's output.
fn build(project: &str, cell: &'static OnceLock<PathBuf>) -> &'static Path {
    cell.get_or_init(|| {
        let root = repo_root();
        let src = root.join(project);
        let out = shared_dir().join(format!(
            "{}.wasm",
            src.file_name().unwrap().to_string_lossy()
        ));
        let inputs = [
            src.clone(),
            root.join("plugin-sdk/python"),
            root.join("plugin-sdk/js"),
            root.join("wit"),
        ];
        let fresh = out.exists() && inputs.iter().all(|i| newest(i) < newest(&out));
        std::fs::create_dir_all(shared_dir()).unwrap();
        if !fresh {
            let o = vigil(
                &["build", src.to_str().unwrap(), "-o", out.to_str().unwrap()],
                &root,
            );
            assert!(
                o.status.success(),
                "vigil build {project} failed — run the suite with tests/run.sh, which installs \
                 componentize-py and componentize-js:\n{}\n{}",
                text(&o.stdout),
                text(&o.stderr)
            );
        }
        let o = vigil(&["inspect", out.to_str().unwrap()], &root);
        assert!(o.status.success(), "{}", text(&o.stderr));
        out
    })
}

static ROGUE: OnceLock<PathBuf> = OnceLock::new();
static DOWNGRADE: OnceLock<PathBuf> = OnceLock::new();
static PY_RAISE: OnceLock<PathBuf> = OnceLock::new();
static JS_THROW: OnceLock<PathBuf> = OnceLock::new();

fn rogue() -> &'static Path {
    build("plugins/rogue-factor-enrollment", &ROGUE)
}

fn downgrade() -> &'static Path {
    build("plugins/mfa-factor-downgrade", &DOWNGRADE)
}

/// Runs one component (no built-in pack) over a fixture; returns the
/// workdir (audit records) and vigil's stdout.
fn run_rule(component: &Path, rule_extra: &str, fixture_name: &str) -> (Workdir, String) {
    let wd = Workdir::new();
    let body = format!(
        "builtin_pack = false\n[[rules]]\npath = {:?}\n{rule_extra}\n",
        component.to_str().unwrap()
    );
    let o = wd.run(
        VIGIL,
        &body,
        &fixture(fixture_name),
        &shared_dir().join("xdg-cache"),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    (wd, text(&o.stdout))
}

const ROGUE_ENFORCE: &str =
    "mode = \"enforce\"\nallow = [\"reset-factors\", \"revoke-sessions\", \"escalate\"]";
const DOWNGRADE_ENFORCE: &str = "mode = \"enforce\"\nallow = [\"escalate\"]";

#[test]
fn python_rule_fires_on_the_attack() {
    let (wd, out) = run_rule(rogue(), ROGUE_ENFORCE, "rogue-factor-attack.jsonl");
    assert!(out.contains("findings: 1"), "{out}");
    assert!(
        out.contains("accepted 3, dry-run 0, pending 0, denied 0, executed 3, failed 0"),
        "{out}"
    );
    let findings = wd.records_of("finding");
    assert_eq!(findings[0]["rule"], "rogue-factor-enrollment");
    assert_eq!(findings[0]["subject"], "00urogue00001");
    let kinds: Vec<String> = action_triples(&wd.audit_records())
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(kinds, ["reset-factors", "revoke-sessions", "escalate"]);
}

#[test]
fn python_rule_ignores_near_misses_and_benign_traffic() {
    for name in ["rogue-factor-near-miss.jsonl", "rogue-factor-benign.jsonl"] {
        let (wd, out) = run_rule(rogue(), ROGUE_ENFORCE, name);
        assert!(
            out.contains("findings: 0") && out.contains("rule faults: 0"),
            "{name}: {out}"
        );
        assert!(wd.audit_records().is_empty(), "{name}");
    }
}

#[test]
fn python_rule_sees_a_denial_as_a_value() {
    // Only escalate is granted: reset-factors and revoke-sessions are denied
    // and the rule reports what it was told.
    let (wd, out) = run_rule(
        rogue(),
        "allow = [\"escalate\"]",
        "rogue-factor-attack.jsonl",
    );
    assert!(out.contains("findings: 1"), "{out}");
    let details = &wd.records_of("finding")[0]["details"];
    assert!(
        details["reset_factors"]
            .as_str()
            .unwrap()
            .starts_with("denied (not-granted): action reset-factors is not granted"),
        "{details}"
    );
    assert!(
        details["escalate"]
            .as_str()
            .unwrap()
            .starts_with("dry-run (act-"),
        "{details}"
    );
}

#[test]
fn js_rule_fires_on_the_attack() {
    let (wd, out) = run_rule(
        downgrade(),
        DOWNGRADE_ENFORCE,
        "factor-downgrade-attack.jsonl",
    );
    assert!(out.contains("findings: 1"), "{out}");
    assert!(
        out.contains("accepted 1, dry-run 0, pending 0, denied 0, executed 1, failed 0"),
        "{out}"
    );
    let f = &wd.records_of("finding")[0];
    assert_eq!(f["rule"], "mfa-factor-downgrade");
    assert_eq!(f["subject"], "00udowngrade1");
}

#[test]
fn js_rule_ignores_near_misses_and_benign_traffic() {
    for name in [
        "factor-downgrade-near-miss.jsonl",
        "factor-downgrade-benign.jsonl",
    ] {
        let (wd, out) = run_rule(downgrade(), DOWNGRADE_ENFORCE, name);
        assert!(
            out.contains("findings: 0") && out.contains("rule faults: 0"),
            "{name}: {out}"
        );
        assert!(wd.audit_records().is_empty(), "{name}");
    }
}

#[test]
fn js_rule_sees_a_denial_as_a_value() {
    let (wd, out) = run_rule(downgrade(), "allow = []", "factor-downgrade-attack.jsonl");
    assert!(out.contains("findings: 1"), "{out}");
    let details = &wd.records_of("finding")[0]["details"];
    let escalate = details["escalate"].as_str().unwrap();
    assert!(
        escalate.starts_with("denied (not-granted): action escalate is not granted"),
        "{details}"
    );
}

/// A guest failing on odd calls: 8 events → 4 faults, 4 findings whose call
/// counter shows the state survived each rebuild.
fn assert_fails_every_other_call(component: &Path, rule: &str) {
    let (wd, out) = run_rule(component, "", "push-bombing.jsonl");
    assert!(out.contains("rule faults: 4"), "{out}");
    let faults: Vec<Value> = wd.records_of("rule-fault");
    assert_eq!(faults.len(), 4);
    for f in &faults {
        assert_eq!(f["rule"], rule);
        assert_eq!(f["fault"], "trap", "{f}");
        assert_eq!(f["consecutive"], 1);
    }
    let calls: Vec<Value> = wd
        .records_of("finding")
        .iter()
        .map(|f| f["details"]["call"].clone())
        .collect();
    assert_eq!(calls, ["2", "4", "6", "8"]);
}

#[test]
fn a_python_exception_is_a_rule_fault_and_the_next_event_works() {
    assert_fails_every_other_call(
        build("tests/guests-py/python-raise", &PY_RAISE),
        "python-raise",
    );
}

#[test]
fn a_js_throw_is_a_rule_fault_and_the_next_event_works() {
    assert_fails_every_other_call(build("tests/guests-js/js-throw", &JS_THROW), "js-throw");
}

static PY_EVENT: OnceLock<PathBuf> = OnceLock::new();
static JS_EVENT: OnceLock<PathBuf> = OnceLock::new();

/// `text` of a `vigil normalize` value as the event guests render it:
/// `-` for none.
fn shown(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn shown_principal(p: &Value) -> String {
    if p.is_null() {
        return "-".into();
    }
    format!(
        "{}|{}|{}|{}",
        shown(&p["id"]),
        shown(&p["kind"]),
        shown(&p["login"]),
        shown(&p["display-name"])
    )
}

/// `k=v` pairs joined by `;`, split back and sorted: `vigil normalize`'s
/// attributes object comes back key-sorted, the guest's list in host order.
fn sorted_pairs(joined: &str) -> Vec<String> {
    let mut v: Vec<String> = joined
        .split(';')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

/// An event guest (tests/guests-py/python-event, tests/guests-js/js-event)
/// reports every field as its SDK's `Event` reads it through the host's
/// getters: each must be what `vigil normalize` says the event is. Only
/// successes reach it (its metadata's `outcomes`), `raw` reads the source
/// record by JSON pointer, and the previous call's event, which the guest
/// keeps, fails cleanly with the SDK's error, not a trap.
fn assert_reports_every_field(component: &Path, rule: &str, on_event: &str) {
    let name = "factor-downgrade-near-miss.jsonl";
    let o = vigil(
        &["normalize", fixture(name).to_str().unwrap()],
        &repo_root(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let events: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let successes: Vec<&Value> = events
        .iter()
        .filter(|e| e["outcome"] == "success")
        .collect();
    assert!(
        !successes.is_empty() && successes.len() < events.len(),
        "{name} needs successes and others"
    );

    let (wd, out) = run_rule(component, "", name);
    assert!(out.contains("rule faults: 0"), "{out}");
    let findings = wd.records_of("finding");
    assert_eq!(findings.len(), successes.len(), "{out}");
    for (i, e) in successes.iter().enumerate() {
        let id = e["id"].as_str().unwrap();
        let f = findings
            .iter()
            .find(|f| f["subject"] == id)
            .unwrap_or_else(|| panic!("{rule}: no finding for event {id}"));
        assert_eq!(f["rule"], rule);
        let d = &f["details"];
        let detail = |k: &str| {
            d[k].as_str()
                .unwrap_or_else(|| panic!("{rule}: no {k} in {d}"))
        };
        for key in [
            "id",
            "source",
            "kind",
            "class",
            "time",
            "outcome",
            "outcome-reason",
            "client-ip",
            "user-agent",
            "factor",
        ] {
            assert_eq!(detail(key), shown(&e[key]), "{rule}, event {id}: {key}");
        }
        assert_eq!(
            detail("actor"),
            shown_principal(&e["actor"]),
            "{rule}: actor"
        );
        let targets: Vec<String> = e["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(shown_principal)
            .collect();
        assert_eq!(detail("targets"), targets.join(";"), "{rule}: targets");
        let geo = &e["geo"];
        let geo = if geo.is_null() {
            "-".to_owned()
        } else {
            format!("{}|{}", shown(&geo["country"]), shown(&geo["city"]))
        };
        assert_eq!(detail("geo"), geo, "{rule}: geo");
        let attributes = e["attributes"].as_object().unwrap();
        assert_eq!(
            detail("is-proxy"),
            attributes.get("is-proxy").map_or("-".into(), shown),
            "{rule}: attribute(is-proxy)"
        );
        let expected: Vec<String> = attributes
            .iter()
            .map(|(k, v)| format!("{k}={}", shown(v)))
            .collect();
        assert_eq!(
            sorted_pairs(detail("attributes")),
            sorted_pairs(&expected.join(";")),
            "{rule}: attributes"
        );
        let subject = targets_first_user(e).unwrap_or(&e["actor"]);
        assert_eq!(
            detail("subject-user"),
            shown(&subject["id"]),
            "{rule}: subject user"
        );

        // Okta's `uuid` is the event id; raw gives it back as JSON text.
        assert_eq!(detail("raw-uuid"), format!("\"{id}\""), "{rule}: raw");
        assert_eq!(detail("raw-missing"), "-", "{rule}: raw of a missing field");
        assert!(
            detail("raw-malformed").starts_with("error: event.raw(\"no-leading-slash\"): "),
            "{rule}: {d}"
        );
        let stale = detail("stale");
        if i == 0 {
            assert_eq!(stale, "-");
        } else {
            assert_eq!(
                stale,
                format!(
                    "error: event read after its {on_event} call returned: \
                     keep the values the rule needs, not the event"
                ),
                "{rule}"
            );
        }
    }
}

/// The first target of kind `User`.
fn targets_first_user(e: &Value) -> Option<&Value> {
    e["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "User")
}

#[test]
fn a_python_rule_reads_every_event_field_through_the_sdk() {
    assert_reports_every_field(
        build("tests/guests-py/python-event", &PY_EVENT),
        "python-event",
        "on_event",
    );
}

#[test]
fn a_js_rule_reads_every_event_field_through_the_sdk() {
    assert_reports_every_field(
        build("tests/guests-js/js-event", &JS_EVENT),
        "js-event",
        "onEvent",
    );
}

/// `vigil new` → `vigil build` → the project's own fixture: `findings: 1`.
fn scaffold_passes_its_fixture(lang: &str) {
    let wd = Workdir::new();
    let name = format!("demo-{lang}");
    let o = vigil(
        &[
            "new",
            &name,
            "--lang",
            lang,
            "--dir",
            wd.path().to_str().unwrap(),
        ],
        wd.path(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let project = wd.path().join(&name);
    let o = vigil(&["build", "."], &project);
    assert!(
        o.status.success(),
        "vigil build ({lang}):\n{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let o = vigil(
        &[
            "run",
            "--config",
            "vigil.toml",
            "--events",
            "fixtures/events.jsonl",
        ],
        &project,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("findings: 1") && out.contains("dry-run 1"),
        "{lang}: {out}"
    );
    assert!(out.contains("rule faults: 0"), "{lang}: {out}");
}

#[test]
fn rust_scaffold_builds_and_passes_its_fixture() {
    scaffold_passes_its_fixture("rust");
}

#[test]
fn python_scaffold_builds_and_passes_its_fixture() {
    scaffold_passes_its_fixture("python");
}

#[test]
fn js_scaffold_builds_and_passes_its_fixture() {
    scaffold_passes_its_fixture("js");
}

#[test]
fn build_names_the_missing_tool() {
    let wd = Workdir::new();
    std::fs::write(wd.path().join("app.py"), "").unwrap();
    let o = Command::new(VIGIL)
        .args(["build", "."])
        .current_dir(wd.path())
        .env("PATH", "/nonexistent")
        .env_remove("VIGIL_COMPONENTIZE_PY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("componentize-py is not installed")
            && err.contains("pip install componentize-py==0.25.1"),
        "{err}"
    );

    let o = vigil(&["build", "."], &repo_root().join("tests/fixtures"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("is not a rule project"),
        "{}",
        text(&o.stderr)
    );
}
