//! The real-shape regression corpus (`tests/fixtures/real/`), through the
//! real binary: `vigil normalize` must print exactly each file's
//! `.expected.jsonl` with nothing rejected or dropped, and the built-in pack
//! (`vigil run --events`) must take every file with no reject and no rule
//! fault. Also `vigil normalize` on bad input: rejects and dropped fields on
//! stderr with their line numbers, exit 0.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// Compiled components shared by the runs here (the pack compiles once).
fn cache_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("corpus-xdg-cache")
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/fixtures/real");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".jsonl") && !name.ends_with(".expected.jsonl")
        })
        .collect();
    files.sort();
    // One file per documented shape and category (see the README there).
    assert!(files.len() >= 12, "{} corpus files", files.len());
    files
}

fn normalize(args: &[&str], cwd: &Path, stdin: Option<&str>) -> Output {
    let mut child = Command::new(VIGIL)
        .arg("normalize")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vigil normalize");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn vigil_normalize_prints_each_files_expected_events() {
    let wd = Workdir::new();
    let mut failures = Vec::new();
    for file in corpus_files() {
        let expected_path = file.with_extension("expected.jsonl");
        let expected: Vec<Value> = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let out = normalize(&[file.to_str().unwrap()], wd.path(), None);
        let err = text(&out.stderr);
        assert!(out.status.success(), "{}: {err}", file.display());
        assert!(
            err.contains(" rejected") && err.contains(", 0 rejected, 0 fields dropped"),
            "{}: {err}",
            file.display()
        );
        let actual: Vec<Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if actual.len() != expected.len() {
            failures.push(format!(
                "{}: {} events, expected {}",
                file.display(),
                actual.len(),
                expected.len()
            ));
            continue;
        }
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
            if a != e {
                failures.push(format!(
                    "{} event {}:\n  expected {e}\n  actual   {a}",
                    file.display(),
                    i + 1
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_built_in_pack_takes_every_corpus_file_without_rejects_or_faults() {
    for file in corpus_files() {
        let wd = Workdir::new();
        let out = vigil(
            VIGIL,
            &["run", "--events", file.to_str().unwrap()],
            wd.path(),
            &cache_home(),
        );
        let summary = text(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            text(&out.stderr)
        );
        assert!(
            summary.contains("  rejected: 0\n") && summary.contains("rule faults: 0"),
            "{}:\n{summary}{}",
            file.display(),
            text(&out.stderr)
        );
        assert!(!summary.contains("fields dropped"), "{summary}");
        assert!(!summary.contains("events: 0 "), "{summary}");
    }
}

// Rejects and dropped fields go to stderr with their line (and element);
// the good events still print; bad input does not fail the command.
#[test]
fn vigil_normalize_reports_rejects_and_dropped_fields_by_line() {
    let wd = Workdir::new();
    let good = r#"{"uuid":"n-1","published":"2026-03-01T10:00:00Z","eventType":"user.session.start","client":{"ipAddress":"null"}}"#;
    let mistyped = r#"{"uuid":"n-2","published":"2026-03-01T10:00:01Z","eventType":"user.session.start","debugContext":{"debugData":""}}"#;
    let events: Vec<String> = (0..25)
        .map(|i| {
            format!(r#"{{"uuid":"h-{i}","published":"2026-03-01T10:00:02Z","eventType":"user.mfa.okta_verify.deny_push"}}"#)
        })
        .collect();
    let mut with_bad = events.clone();
    with_bad.insert(
        3,
        r#"{"uuid":"h-bad","eventType":"user.session.start"}"#.into(),
    );
    let hook = format!(
        r#"{{"eventType":"com.okta.event_hook","data":{{"events":[{}]}}}}"#,
        with_bad.join(",")
    );
    let input = format!("{good}\n{{\"hello\":1}}\n{mistyped}\n\n{hook}\n");
    let out = normalize(&["-"], wd.path(), Some(&input));
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("line 2: rejected (unknown-format): unknown format:"),
        "{err}"
    );
    assert!(
        err.contains("line 3: dropped field debugContext.debugData: invalid type: string \"\", expected an object"),
        "{err}"
    );
    assert!(
        err.contains(
            "line 5: rejected (missing-field): data.events[3]: okta: missing required field `published`"
        ),
        "{err}"
    );
    assert!(
        err.contains("stdin: 5 lines, 27 events, 2 rejected, 1 fields dropped"),
        "{err}"
    );
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 27);
    assert_eq!(lines[0]["id"], "n-1");
    // "null" is no IP: what rules see is a missing client IP.
    assert_eq!(lines[0]["client-ip"], Value::Null);
    assert_eq!(lines[0]["class"], "authentication");
    assert_eq!(lines[1]["id"], "n-2");
    let hook_ids: Vec<&str> = lines[2..]
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(hook_ids.len(), 25);
    assert!(!hook_ids.contains(&"h-bad"));

    // A missing file is an error (exit 1) naming it.
    let out = normalize(&["no-such-file.jsonl"], wd.path(), None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no-such-file.jsonl"));
}
