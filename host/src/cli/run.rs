//! `vigil run`: process events and print a summary.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use super::setup;
use crate::config::SourceConfig;
use crate::pipeline::{Pipeline, RunStats};
use crate::sources::LineReader;

pub fn run(config_path: Option<&Path>, events: Option<&Path>) -> Result<ExitCode> {
    let config = setup::load_config(config_path)?;
    let rules = setup::load_rules(&config)?;
    for r in &rules.rules {
        tracing::info!(
            rule = r.id(),
            origin = r.origin(),
            mode = r.grant().mode.name(),
            granted = %r.grant().granted.iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
            "rule loaded"
        );
    }
    tracing::info!(
        shards = rules.shards(),
        "rules judge events on {} shard(s)",
        rules.shards()
    );
    let executor = setup::executor(&config, &rules)?;
    let audit = setup::run_audit_log(&config, &executor)?;
    if config.connectors.is_empty()
        && rules
            .rules
            .iter()
            .any(|r| r.grant().mode == crate::config::Mode::Enforce)
    {
        tracing::warn!(
            "enforce mode with no [connectors]: accepted actions are only logged (executor: log)"
        );
    }
    let mut pipeline = Pipeline::new(rules, audit, executor)?;
    pipeline.set_baseline_check_secs(config.baseline.check_secs);
    if let Some(notifier) = crate::chat::request::ApprovalNotifier::from_config(&config)? {
        pipeline.set_approval_notifier(notifier)?;
    }
    // Undos that fell due while Vigil was not running.
    pipeline.run_due_undos()?;

    // With a [server] table and no --events: the long-running service.
    if events.is_none()
        && let Some(server) = &config.server
    {
        // In the service, connectors run on a worker thread: a slow
        // identity provider must not hold up detection.
        pipeline
            .executor_mut()
            .start_worker(&config.state_path, server.executor_queue)?;
        let path = config_path.expect("a [server] table comes from a config file");
        return crate::service::run(path, &config, server, pipeline);
    }

    let mut readers = Vec::new();
    match events {
        Some(p) if p == Path::new("-") => readers.push(LineReader::stdin(config.max_line_bytes)),
        Some(p) => readers.push(LineReader::open(p, config.max_line_bytes)?),
        None => {
            if config.sources.is_empty() {
                bail!(
                    "no events to read: pass --events FILE (or - for stdin), or list [[sources]] in the config"
                );
            }
            for (i, source) in config.sources.iter().enumerate() {
                readers.push(match source {
                    SourceConfig::File { path } => LineReader::open(path, config.max_line_bytes)?,
                    SourceConfig::Stdin => LineReader::stdin(config.max_line_bytes),
                    // Long-running sources never end: only the service runs them.
                    SourceConfig::OktaPoll(_) | SourceConfig::Tail(_) => bail!(
                        "sources[{i}]: okta-poll and tail sources never end; they run only \
                         in the service (add a [server] table), a finite run reads file and stdin"
                    ),
                });
            }
        }
    }
    let mut progress = super::progress::Progress::on_stderr();
    for reader in &mut readers {
        pipeline.run_stream_with(reader, &mut |name, line, stats| {
            progress.tick(name, line, stats)
        })?;
        progress.finish(&reader.name, &pipeline.stats);
    }
    pipeline.run_due_undos()?;
    let stats = pipeline.finish()?;
    print_summary(&pipeline, &stats, &readers);
    Ok(ExitCode::SUCCESS)
}

fn print_summary(pipeline: &Pipeline, s: &RunStats, readers: &[LineReader]) {
    let names: Vec<&str> = readers.iter().map(|r| r.name.as_str()).collect();
    println!("vigil run: {}", names.join(", "));
    let reasons: Vec<String> = s
        .rejected_by_reason
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    println!(
        "  lines: {}  events: {}  rejected: {}{}",
        s.lines,
        s.events,
        s.rejected,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        }
    );
    if s.dropped_fields > 0 {
        println!(
            "  fields dropped: {} (wrong type or unusable value; see the warnings)",
            s.dropped_fields
        );
    }
    let rules: Vec<String> = pipeline
        .rules()
        .rules
        .iter()
        .map(|r| format!("{} ({})", r.id(), r.grant().mode.name()))
        .collect();
    println!("  rules: {}", rules.join(", "));
    println!("  findings: {}", s.findings);
    if s.duplicates > 0 {
        println!(
            "  duplicates: {} (rule calls skipped: the rule had already judged the event)",
            s.duplicates
        );
    }
    if !s.reconciled.is_empty() {
        let r: Vec<String> = s
            .reconciled
            .iter()
            .map(|(d, n)| format!("{d} {n}"))
            .collect();
        println!(
            "  reconciled at start: {} (accepted actions whose result was never recorded)",
            r.join(", ")
        );
    }
    let actions: Vec<String> = [
        "accepted",
        "dry-run",
        "pending",
        "denied",
        "executed",
        "failed",
        "duplicate",
    ]
    .iter()
    .map(|d| format!("{d} {}", s.actions.get(d).copied().unwrap_or(0)))
    .collect();
    println!("  actions: {}", actions.join(", "));
    let undos = pipeline
        .executor()
        .store()
        .pending_undos()
        .map(|u| u.len())
        .unwrap_or(0);
    if undos > 0 || !s.undos.is_empty() {
        let done: Vec<String> = s.undos.iter().map(|(d, n)| format!("{d} {n}")).collect();
        let next = pipeline
            .executor()
            .next_undo_due()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| {
                format!(
                    " (next due {})",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
            .unwrap_or_default();
        println!(
            "  undos: {}{}pending {undos}{next}",
            done.join(", "),
            if done.is_empty() { "" } else { ", " }
        );
    }
    println!("  rule faults: {}", s.faults);
    if !s.quarantined.is_empty() {
        println!("  quarantined: {}", s.quarantined.join(", "));
    }
    let audit = pipeline.audit();
    let path = std::fs::canonicalize(audit.path()).unwrap_or_else(|_| audit.path().to_path_buf());
    println!(
        "  audit log: {} (last seq {}, head {})",
        path.display(),
        audit.last_seq(),
        audit.head_hash()
    );
}
