//! The built-in pack as built against contracts v0.1 and v0.2 runs beside
//! today's build. `tests/fixtures/v0.1/*.wasm` and `tests/fixtures/v0.2/`
//! are the pack's components as built with `vigil-sdk` against
//! `wit/since_v0.1.0` and `wit/since_v0.2.0` (see the READMEs there) and
//! are never rebuilt: they stand for rule packs that vendors built once and
//! ship unchanged. Every pack case runs through both, and both must give
//! the case's expected results and the same findings (subject, severity,
//! title), action requests and decisions, in the same order. A case that
//! expects an action kind added after the frozen version (the rule's logic
//! changed on purpose to use it) is left out for that version.
//!
//! When the host moves to a new contract version, this is the test that
//! shows v0.1 rules still run unchanged; when a rule's logic changes on
//! purpose, its frozen build is refreshed (README in the fixtures folder).

use std::path::Path;

use super::{Actual, Runner, TestFile, compare, discover};
use crate::config::Config;
use crate::policy::PolicyGate;
use crate::rules::RuleLoader;

type Summary = (
    Vec<(String, String, String)>,
    Vec<(String, String, String)>,
    Vec<String>,
);

/// Findings (subject, severity, title), actions (kind, target, decision)
/// and faults, in order.
fn summary(a: &Actual) -> Summary {
    (
        a.findings
            .iter()
            .map(|f| {
                (
                    f.subject.clone(),
                    format!("{:?}", f.severity),
                    f.title.clone(),
                )
            })
            .collect(),
        a.actions.clone(),
        a.faults.clone(),
    )
}

/// Action kinds a contract version cannot express: a pack case that
/// expects one tests behaviour added since, which a frozen build of that
/// version cannot have (`mfa-policy-guard` asking for `restore-policy`).
fn added_after(version: &str) -> &'static [&'static str] {
    match version {
        "v0.1" | "v0.2" => &["restore-policy", "assign-app-policy"],
        _ => &[],
    }
}

/// Runs every pack case through today's build and the frozen builds in
/// `tests/fixtures/{version}`; returns the number of cases compared.
fn compare_frozen(version: &str) -> usize {
    let engine = crate::cli::setup::engine(&Config::builtin_default()).unwrap();
    let runner = Runner::new(RuleLoader::new(engine, PolicyGate::default()).unwrap());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let frozen = root.join("tests/fixtures").join(version);
    let newer = added_after(version);
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut skipped = Vec::new();
    for file in discover(&root.join("plugins")).unwrap() {
        let text = std::fs::read_to_string(&file).unwrap();
        let tf: TestFile = toml::from_str(&text).unwrap();
        let base = file.parent().unwrap();
        for case in tf.cases.iter().filter(|c| c.rule.is_some()) {
            let id = case.rule.as_deref().unwrap();
            if case
                .actions
                .iter()
                .any(|a| newer.contains(&a.action.as_str()))
            {
                skipped.push(case.name.clone());
                continue;
            }
            let wasm = frozen.join(format!("{id}.wasm"));
            assert!(wasm.exists(), "no frozen {version} build of {id}: {wasm:?}");
            let mut old = case.clone();
            old.rule = None;
            old.path = Some(wasm);
            cases += 1;
            let today = runner.run_case(case, base).unwrap();
            let built_then = runner.run_case(&old, base).unwrap();
            if let Err(e) = compare(&old, &built_then) {
                failures.push(format!(
                    "{}: {:?}: the {version} build fails the case: {e}",
                    file.display(),
                    case.name
                ));
            }
            if summary(&today) != summary(&built_then) {
                failures.push(format!(
                    "{}: {:?}:\n    today's build: {:?}\n    {version} build:    {:?}",
                    file.display(),
                    case.name,
                    summary(&today),
                    summary(&built_then)
                ));
            }
        }
    }
    // Only the cases of behaviour added since may be left out, and they
    // must stay few: the comparison is the point.
    assert!(
        skipped.len() <= 8,
        "{} cases skipped for {version}: {skipped:?}",
        skipped.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    cases
}

#[test]
fn frozen_v0_1_builds_give_the_same_results_as_todays_pack() {
    let cases = compare_frozen("v0.1");
    assert!(cases >= 40, "only {cases} pack cases compared");
}

#[test]
fn frozen_v0_2_builds_give_the_same_results_as_todays_pack() {
    let cases = compare_frozen("v0.2");
    assert!(cases >= 40, "only {cases} pack cases compared");
}
