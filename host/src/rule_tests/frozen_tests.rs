//! The built-in pack as built against contract v0.1 runs beside today's
//! build. `tests/fixtures/v0.1/*.wasm` are the pack's components as built
//! with `vigil-sdk` against `wit/since_v0.1.0` (see the README there) and
//! are never rebuilt: they stand for rule packs that vendors built once and
//! ship unchanged. Every pack case runs through both, and both must give
//! the case's expected results and the same findings (subject, severity,
//! title), action requests and decisions, in the same order.
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

#[test]
fn frozen_v0_1_builds_give_the_same_results_as_todays_pack() {
    let engine = crate::cli::setup::engine(&Config::builtin_default()).unwrap();
    let runner = Runner::new(RuleLoader::new(engine, PolicyGate::default()).unwrap());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let frozen = root.join("tests/fixtures/v0.1");
    let mut failures = Vec::new();
    let mut cases = 0;
    for file in discover(&root.join("plugins")).unwrap() {
        let text = std::fs::read_to_string(&file).unwrap();
        let tf: TestFile = toml::from_str(&text).unwrap();
        let base = file.parent().unwrap();
        for case in tf.cases.iter().filter(|c| c.rule.is_some()) {
            let id = case.rule.as_deref().unwrap();
            let wasm = frozen.join(format!("{id}.wasm"));
            assert!(wasm.exists(), "no frozen v0.1 build of {id}: {wasm:?}");
            let mut old = case.clone();
            old.rule = None;
            old.path = Some(wasm);
            cases += 1;
            let today = runner.run_case(case, base).unwrap();
            let built_then = runner.run_case(&old, base).unwrap();
            if let Err(e) = compare(&old, &built_then) {
                failures.push(format!(
                    "{}: {:?}: the v0.1 build fails the case: {e}",
                    file.display(),
                    case.name
                ));
            }
            if summary(&today) != summary(&built_then) {
                failures.push(format!(
                    "{}: {:?}:\n    today's build: {:?}\n    v0.1 build:    {:?}",
                    file.display(),
                    case.name,
                    summary(&today),
                    summary(&built_then)
                ));
            }
        }
    }
    assert!(cases >= 40, "only {cases} pack cases found");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
