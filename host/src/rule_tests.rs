//! Rule tests written as data: the `*.test.toml` files `vigil test` runs.
//!
//! A case names a rule (built-in id or `.wasm` path), optional rule config
//! and grants, input events (a JSON Lines file or inline lines), and the
//! exact findings and action requests expected — in order, every given key
//! compared. Rules run audit-only, exactly as in `vigil run`: the same
//! loader, normalizer, routing, policy gate and limits.
//!
//! ```toml
//! [[case]]
//! name = "push bombing fires"
//! rule = "mfa-push-fatigue"
//! events = "../fixtures/push-bombing.jsonl"   # relative to this file
//! config = { threshold = 5 }
//!
//! [[case.findings]]
//! subject = "00upushbomb01"
//! severity = "high"
//!
//! [[case.actions]]
//! action = "suspend-user"
//! target = "00upushbomb01"
//! decision = "dry-run"
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::builtin;
use crate::config::{Limits, Mode, config_strings};
use crate::model::{ActionKind, Event, Finding};
use crate::normalize::Normalizer;
use crate::rules::{RuleLoader, RuleSet, RuleSource, RuleSpec};

/// One `*.test.toml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(rename = "case")]
    pub cases: Vec<Case>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// A built-in rule id.
    #[serde(default)]
    pub rule: Option<String>,
    /// A component file, relative to the test file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A JSON Lines file of events, relative to the test file.
    #[serde(default)]
    pub events: Option<PathBuf>,
    /// Events written in the test file, one JSON document per string.
    #[serde(default)]
    pub inline: Option<Vec<String>>,
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// Granted action kinds; default: what the rule declares.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// The exact findings expected, in order.
    #[serde(default)]
    pub findings: Vec<ExpectedFinding>,
    /// The exact action requests expected, in order.
    #[serde(default)]
    pub actions: Vec<ExpectedAction>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFinding {
    pub subject: Option<String>,
    pub severity: Option<String>,
    pub title_contains: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAction {
    pub action: String,
    pub target: Option<String>,
    pub decision: Option<String>,
}

/// What a rule actually produced, in comparable form.
#[derive(Debug, Default)]
pub struct Actual {
    pub findings: Vec<Finding>,
    /// (kind, target, decision)
    pub actions: Vec<(String, String, String)>,
    /// Faults, as `kind: message`; any fault fails the case.
    pub faults: Vec<String>,
}

/// The outcome of one case: `Ok(())` or the failure report.
pub type CaseResult = std::result::Result<(), String>;

/// Runs test cases with one engine and loader.
pub struct Runner {
    loader: RuleLoader,
    normalizer: Normalizer,
}

impl Runner {
    pub fn new(loader: RuleLoader) -> Self {
        Runner {
            loader,
            normalizer: Normalizer::default(),
        }
    }

    /// Runs every case of a file; a file that cannot be read or parsed is
    /// one failed case named after the file.
    pub fn run_file(&self, file: &Path) -> Vec<(String, CaseResult)> {
        let parsed = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))
            .and_then(|text| toml::from_str::<TestFile>(&text).map_err(|e| anyhow::anyhow!("{e}")));
        match parsed {
            Err(e) => vec![(
                "(test file)".into(),
                Err(format!("invalid test file: {e:#}")),
            )],
            Ok(tf) => {
                let base = file.parent().unwrap_or(Path::new("."));
                tf.cases
                    .iter()
                    .map(|case| {
                        let result = self
                            .run_case(case, base)
                            .map_err(|e| format!("error: {e:#}"))
                            .and_then(|actual| compare(case, &actual));
                        (case.name.clone(), result)
                    })
                    .collect()
            }
        }
    }

    /// Runs one case and returns what the rule produced.
    pub fn run_case(&self, case: &Case, base: &Path) -> Result<Actual> {
        let mut rules = self.load_case_rule(case, base)?;
        let lines = read_lines(case, base)?;
        let mut actual = Actual::default();
        let mut events = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            events.clear();
            self.normalizer
                .normalize_line(line, &mut events)
                .with_context(|| format!("event line {}", i + 1))?;
            for event in events.drain(..) {
                feed(
                    &mut rules,
                    Arc::new(event),
                    &format!("line {}", i + 1),
                    &mut actual,
                );
            }
        }
        Ok(actual)
    }

    /// The case's events, normalized, in file order.
    pub fn case_events(&self, case: &Case, base: &Path) -> Result<Vec<Arc<Event>>> {
        let mut out = Vec::new();
        for (i, line) in read_lines(case, base)?.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut events = Vec::new();
            self.normalizer
                .normalize_line(line, &mut events)
                .with_context(|| format!("event line {}", i + 1))?;
            out.extend(events.into_iter().map(Arc::new));
        }
        Ok(out)
    }

    /// Runs one case with its events in the order given (a fresh rule, as
    /// in [`Runner::run_case`]); faults name the event id.
    pub fn run_case_events(
        &self,
        case: &Case,
        base: &Path,
        events: &[Arc<Event>],
    ) -> Result<Actual> {
        let mut rules = self.load_case_rule(case, base)?;
        let mut actual = Actual::default();
        for event in events {
            feed(
                &mut rules,
                event.clone(),
                &format!("event {}", event.id),
                &mut actual,
            );
        }
        Ok(actual)
    }

    fn load_case_rule(&self, case: &Case, base: &Path) -> Result<RuleSet> {
        let source = match (&case.rule, &case.path) {
            (Some(id), None) => {
                let Some(b) = builtin::find(id) else {
                    bail!(
                        "no built-in rule {id:?}; built-in rules: {}",
                        builtin::ids().join(", ")
                    );
                };
                RuleSource {
                    origin: format!("builtin:{id}"),
                    bytes: Cow::Borrowed(b.wasm),
                    expected_id: Some(id.clone()),
                }
            }
            (None, Some(p)) => {
                let path = base.join(p);
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read rule {}", path.display()))?;
                RuleSource {
                    origin: path.display().to_string(),
                    bytes: Cow::Owned(bytes),
                    expected_id: None,
                }
            }
            _ => bail!("set exactly one of `rule` (a built-in id) or `path` (a .wasm file)"),
        };
        let granted = match &case.allow {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        ActionKind::from_name(n)
                            .ok_or_else(|| anyhow::anyhow!("allow: unknown action kind {n:?}"))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        let rule = self.loader.load(RuleSpec {
            source,
            mode: Mode::AuditOnly,
            granted,
            config: config_strings(&case.config),
            limits: Limits::default(),
            approval: Vec::new(),
            budget: Default::default(),
            // Cases run audit-only, like the no-configuration default.
            args: crate::policy::ArgumentGrants::builtin_default(),
        })?;
        RuleSet::new(vec![rule])
    }
}

/// The case's event lines: from its `events` file or `inline`.
fn read_lines(case: &Case, base: &Path) -> Result<Vec<String>> {
    Ok(match (&case.events, &case.inline) {
        (Some(p), None) => {
            let path = base.join(p);
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read events {}", path.display()))?
                .lines()
                .map(str::to_owned)
                .collect()
        }
        (None, Some(inline)) => inline.clone(),
        _ => bail!("set exactly one of `events` (a JSON Lines file) or `inline` (a list)"),
    })
}

/// Routes one event to the case's rule and records what it produced;
/// `at` names the event in fault messages.
fn feed(rules: &mut RuleSet, event: Arc<Event>, at: &str, actual: &mut Actual) {
    if rules.route(&event).is_empty() || !rules.wants(0, &event) {
        return;
    }
    let outcome = rules.rules[0].on_event(&event);
    actual.findings.extend(outcome.findings);
    actual.actions.extend(outcome.requests.iter().map(|r| {
        (
            r.action.kind().name().to_owned(),
            r.action.target().to_owned(),
            r.decision.name().to_owned(),
        )
    }));
    if let Some(f) = outcome.fault {
        actual
            .faults
            .push(format!("{at}: {}: {}", f.kind.name(), f.message));
    }
}

fn describe_finding(f: &Finding) -> String {
    format!(
        "subject={} severity={} title={:?}",
        f.subject,
        f.severity.name(),
        f.title
    )
}

fn describe_expected_finding(e: &ExpectedFinding) -> String {
    let mut s = String::new();
    if let Some(v) = &e.subject {
        write!(s, "subject={v} ").unwrap();
    }
    if let Some(v) = &e.severity {
        write!(s, "severity={v} ").unwrap();
    }
    if let Some(v) = &e.title_contains {
        write!(s, "title~{v:?} ").unwrap();
    }
    s.trim_end().to_owned()
}

fn finding_matches(e: &ExpectedFinding, f: &Finding) -> bool {
    e.subject.as_ref().is_none_or(|s| *s == f.subject)
        && e.severity.as_ref().is_none_or(|s| s == f.severity.name())
        && e.title_contains
            .as_ref()
            .is_none_or(|t| f.title.contains(t.as_str()))
}

fn describe_action(a: &(String, String, String)) -> String {
    format!("{} target={} decision={}", a.0, a.1, a.2)
}

fn describe_expected_action(e: &ExpectedAction) -> String {
    let mut s = e.action.clone();
    if let Some(t) = &e.target {
        write!(s, " target={t}").unwrap();
    }
    if let Some(d) = &e.decision {
        write!(s, " decision={d}").unwrap();
    }
    s
}

fn action_matches(e: &ExpectedAction, a: &(String, String, String)) -> bool {
    e.action == a.0
        && e.target.as_ref().is_none_or(|t| *t == a.1)
        && e.decision.as_ref().is_none_or(|d| *d == a.2)
}

/// Compares expected and actual lists; on a mismatch, a diff with `-` for
/// expected and `+` for actual rows, `=` for rows that match.
fn diff<E, A>(
    what: &str,
    expected: &[E],
    actual: &[A],
    matches: impl Fn(&E, &A) -> bool,
    show_e: impl Fn(&E) -> String,
    show_a: impl Fn(&A) -> String,
) -> Option<String> {
    let same =
        expected.len() == actual.len() && expected.iter().zip(actual).all(|(e, a)| matches(e, a));
    if same {
        return None;
    }
    let mut out = format!(
        "    {what}: expected {}, got {}\n",
        expected.len(),
        actual.len()
    );
    for i in 0..expected.len().max(actual.len()) {
        match (expected.get(i), actual.get(i)) {
            (Some(e), Some(a)) if matches(e, a) => {
                writeln!(out, "      = [{i}] {}", show_a(a)).unwrap();
            }
            (e, a) => {
                if let Some(e) = e {
                    writeln!(out, "      - [{i}] {}", show_e(e)).unwrap();
                }
                if let Some(a) = a {
                    writeln!(out, "      + [{i}] {}", show_a(a)).unwrap();
                }
            }
        }
    }
    Some(out)
}

/// `Ok` if the rule produced exactly what the case expects.
pub fn compare(case: &Case, actual: &Actual) -> CaseResult {
    let mut report = String::new();
    if !actual.faults.is_empty() {
        report.push_str("    rule faults:\n");
        for f in &actual.faults {
            writeln!(report, "      ! {f}").unwrap();
        }
    }
    if let Some(d) = diff(
        "findings",
        &case.findings,
        &actual.findings,
        finding_matches,
        describe_expected_finding,
        describe_finding,
    ) {
        report.push_str(&d);
    }
    if let Some(d) = diff(
        "actions",
        &case.actions,
        &actual.actions,
        action_matches,
        describe_expected_action,
        describe_action,
    ) {
        report.push_str(&d);
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(report)
    }
}

/// The `*.test.toml` files under `path` (or `path` itself if it is a file),
/// sorted; build output, VCS and dependency folders are skipped.
pub fn discover(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let p = entry?.path();
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if p.is_dir() {
                if !matches!(name.as_str(), "target" | "node_modules" | "build" | ".git") {
                    dirs.push(p);
                }
            } else if name.ends_with(".test.toml") {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod frozen_tests;
#[cfg(test)]
mod order_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;

    fn case(toml_text: &str) -> Case {
        toml::from_str::<TestFile>(toml_text)
            .unwrap()
            .cases
            .remove(0)
    }

    fn finding(subject: &str) -> Finding {
        Finding {
            severity: Severity::High,
            title: "MFA push fatigue".into(),
            subject: subject.into(),
            details: vec![],
        }
    }

    #[test]
    fn matching_lists_pass() {
        let c = case(
            "[[case]]\nname='x'\nrule='r'\ninline=[]\n[[case.findings]]\nsubject='u1'\nseverity='high'\ntitle_contains='push'\n[[case.actions]]\naction='escalate'\n",
        );
        let actual = Actual {
            findings: vec![finding("u1")],
            actions: vec![("escalate".into(), "on-call".into(), "dry-run".into())],
            faults: vec![],
        };
        assert_eq!(compare(&c, &actual), Ok(()));
    }

    #[test]
    fn a_wrong_subject_and_an_extra_action_are_shown_as_a_diff() {
        let c = case("[[case]]\nname='x'\nrule='r'\ninline=[]\n[[case.findings]]\nsubject='u1'\n");
        let actual = Actual {
            findings: vec![finding("u2")],
            actions: vec![("escalate".into(), "on-call".into(), "dry-run".into())],
            faults: vec![],
        };
        let report = compare(&c, &actual).unwrap_err();
        assert_eq!(
            report,
            "    findings: expected 1, got 1\n      - [0] subject=u1\n      + [0] subject=u2 severity=high title=\"MFA push fatigue\"\n    actions: expected 0, got 1\n      + [0] escalate target=on-call decision=dry-run\n"
        );
    }

    #[test]
    fn faults_fail_the_case() {
        let c = case("[[case]]\nname='x'\nrule='r'\ninline=[]\n");
        let actual = Actual {
            faults: vec!["line 1: timeout: deadline exceeded".into()],
            ..Actual::default()
        };
        assert!(
            compare(&c, &actual)
                .unwrap_err()
                .contains("! line 1: timeout")
        );
    }

    #[test]
    fn unknown_keys_in_a_test_file_are_refused() {
        let err =
            toml::from_str::<TestFile>("[[case]]\nname='x'\nrule='r'\nexpect=1\n").unwrap_err();
        assert!(err.to_string().contains("expect"), "{err}");
    }
}
