//! `vigil test [PATH...]`: runs rule test cases written as data
//! (`*.test.toml`, see `rule_tests`), one line per case, a diff on failure,
//! and a closing `N passed, M failed` line; exits 1 on any failure.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::setup;
use crate::config::Config;
use crate::policy::PolicyGate;
use crate::rule_tests::{Runner, discover};
use crate::rules::RuleLoader;

pub fn test(paths: &[PathBuf]) -> Result<ExitCode> {
    let roots = if paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        paths.to_vec()
    };
    let mut files = Vec::new();
    for root in &roots {
        files.extend(discover(root)?);
    }
    if files.is_empty() {
        anyhow::bail!(
            "no *.test.toml files under {}",
            roots
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let engine = setup::engine(&Config::builtin_default())?;
    let runner = Runner::new(RuleLoader::new(engine, PolicyGate::default())?);
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        for (name, result) in runner.run_file(file) {
            match result {
                Ok(()) => {
                    passed += 1;
                    println!("ok   {}: {name}", file.display());
                }
                Err(report) => {
                    failed += 1;
                    println!("FAIL {}: {name}", file.display());
                    print!("{report}");
                    if !report.ends_with('\n') {
                        println!();
                    }
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
