//! `vigil audit verify`, `vigil audit reseal` and `vigil audit keygen`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::setup;
use crate::audit::{
    self, PublicKey, PublishedCheckpoint, VerifyOptions, VerifyReport, nats::subject,
};

/// Verifies the chain, the head, and with `--pubkey` / `--witness` the
/// signatures and the witness. One log: exit 1 on the first problem.
/// Several logs, or `--nats URL` (with its stream): a set of replica logs,
/// see [`verify_set`].
pub fn verify(
    files: &[PathBuf],
    pubkeys: &[PathBuf],
    witness: Option<&Path>,
    nats: Option<(&str, &str)>,
) -> Result<ExitCode> {
    if files.len() > 1 && witness.is_some() {
        eprintln!(
            "error: --witness compares one log with its own witness file; it cannot be used with \
             {} logs (verify each log with its witness on its own)",
            files.len()
        );
        return Ok(ExitCode::from(2));
    }
    let public_keys = pubkeys
        .iter()
        .map(|p| PublicKey::load(p).context("--pubkey"))
        .collect::<Result<Vec<_>>>()?;
    let options = VerifyOptions {
        public_keys,
        witness: witness.map(Path::to_owned),
        published: Vec::new(),
    };
    match (files, nats) {
        ([path], None) => verify_one(path, &options),
        _ => verify_set(files, options, nats),
    }
}

/// One log, as `vigil audit verify FILE` always reported it.
fn verify_one(path: &Path, options: &VerifyOptions) -> Result<ExitCode> {
    match audit::verify_with(path, options) {
        Ok(report) => {
            println!("ok: {report}");
            println!("head: {}", report.head_hash);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAILED: {}: {e}", path.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A set of replica logs: each verified on its own (same keys) and named by
/// its checkpoints' `replica`; two logs of one replica fail; with `--nats`,
/// the newest checkpoint each replica published must be in its log, and a
/// replica that published but whose log is missing is warned about. One
/// line per log, then a summary; exit 1 if anything failed.
fn verify_set(
    files: &[PathBuf],
    mut options: VerifyOptions,
    nats: Option<(&str, &str)>,
) -> Result<ExitCode> {
    let mut failed = 0usize;
    // Replicas whose newest published message is not a checkpoint of theirs.
    let mut unreadable: Vec<String> = Vec::new();
    if let Some((url, stream)) = nats {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the NATS client's runtime")?;
        let newest = runtime
            .block_on(async {
                let replicas = audit::nats::published_replicas(url, stream).await?;
                audit::nats::latest_checkpoints(url, stream, &replicas).await
            })
            .context("--nats: cannot read the published checkpoints")?;
        for (replica, message) in newest {
            // `None`: purged since it was listed; nothing to compare.
            let Some(message) = message else { continue };
            match PublishedCheckpoint::from_value(&replica, &message) {
                Ok(p) => options.published.push(p),
                Err(reason) => {
                    unreadable.push(replica.clone());
                    println!(
                        "FAILED: the newest message on {} (stream {stream}): {reason}",
                        subject(&replica)
                    );
                }
            }
        }
    }

    // Replica name → the logs naming it.
    let mut named: BTreeMap<String, Vec<&Path>> = BTreeMap::new();
    for file in files {
        let (replicas, result) = audit::verify_member(file, &options);
        for r in &replicas {
            named.entry(r.clone()).or_default().push(file);
        }
        let who = describe(&replicas);
        match result {
            Ok(report) => {
                println!("{}: {who}: ok, {}", file.display(), summary(&report));
                for note in notes(&report) {
                    println!("  {note}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("{}: {who}: FAILED: {e}", file.display());
            }
        }
    }

    let mut twice = 0usize;
    for (replica, logs) in &named {
        if logs.len() > 1 {
            twice += 1;
            let logs: Vec<String> = logs.iter().map(|p| p.display().to_string()).collect();
            println!(
                "FAILED: replica {replica} is named by {} logs ({}): each replica keeps one \
                 chain, so one is a copy or a fork of the other",
                logs.len(),
                logs.join(", ")
            );
        }
    }
    if let Some((_, stream)) = nats {
        for p in &options.published {
            if !named.contains_key(&p.replica) {
                println!(
                    "warning: replica {} published checkpoints to stream {stream} (the newest at \
                     seq {}, on {}) but its log was not given",
                    p.replica,
                    p.seq,
                    subject(&p.replica)
                );
            }
        }
        for replica in named.keys() {
            if !options.published.iter().any(|p| &p.replica == replica)
                && !unreadable.contains(replica)
            {
                println!(
                    "warning: replica {replica} has published no checkpoint to stream {stream} \
                     (on {}): its log is compared with nothing there",
                    subject(replica)
                );
            }
        }
    }

    let ok = files.len() - failed;
    let mut parts = vec![format!("{} logs: {ok} ok, {failed} failed", files.len())];
    if twice > 0 {
        parts.push(format!("replicas named by more than one log: {twice}"));
    }
    if !unreadable.is_empty() {
        parts.push(format!(
            "unreadable published checkpoints: {}",
            unreadable.len()
        ));
    }
    if let Some((_, stream)) = nats {
        parts.push(format!(
            "compared with the newest checkpoints in stream {stream} ({} replicas published)",
            options.published.len() + unreadable.len()
        ));
    }
    let all_ok = failed == 0 && twice == 0 && unreadable.is_empty();
    println!(
        "{}: {}",
        if all_ok { "set ok" } else { "set FAILED" },
        parts.join("; ")
    );
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Whose chain a log is, from the names its checkpoints carry (the last is
/// the current one; more than one only after a rename).
fn describe(replicas: &[String]) -> String {
    match replicas {
        [] => "replica (unnamed)".to_owned(),
        [one] => format!("replica {one}"),
        [earlier @ .., last] => {
            format!(
                "replica {last} (earlier checkpoints name {})",
                earlier.join(", ")
            )
        }
    }
}

/// The rest of a log's `ok` line.
fn summary(report: &VerifyReport) -> String {
    let mut parts = vec![format!(
        "{} records, last seq {}",
        report.records, report.last_seq
    )];
    if report.checkpoints > 0 || report.signatures_checked {
        let mut checkpoints = format!("{} checkpoints", report.checkpoints);
        if report.signatures_checked {
            checkpoints.push_str(", every signature verified");
        } else {
            checkpoints.push_str(" (signatures not checked: pass --pubkey)");
        }
        parts.push(checkpoints);
    }
    let mut head = if !report.head_file_checked {
        "empty, no head file".to_owned()
    } else if report.head_seq < report.last_seq {
        format!(
            "head file matches seq {} (it lags the log)",
            report.head_seq
        )
    } else {
        "head file matches".to_owned()
    };
    if let Some(key) = &report.head_signed_by {
        head.push_str(&format!(", signed by key {key}"));
    }
    parts.push(head);
    if let Some((compared, _)) = &report.witness {
        parts.push(format!(
            "all {compared} witnessed checkpoints are in the log"
        ));
    }
    for (replica, seq) in &report.published {
        parts.push(format!(
            "the newest checkpoint {replica} published (seq {seq}) is in the log"
        ));
    }
    parts.join(", ")
}

/// What an `ok` log still calls attention to, one line each.
fn notes(report: &VerifyReport) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some((first, last)) = report.unsigned_tail {
        notes.push(format!(
            "warning: records seq {first} to {last} are covered by no signature yet (normal only \
             right after a crash)"
        ));
    }
    if let Some((_, unreadable)) = &report.witness
        && !unreadable.is_empty()
    {
        notes.push(format!("unreadable witness lines skipped: {unreadable:?}"));
    }
    for r in &report.reseals {
        notes.push(format!(
            "resealed at seq {} on {} by {}: {} (reason: {})",
            r.seq, r.time, r.by, r.cause, r.reason
        ));
    }
    if report.truncated_records > 0 {
        notes.push(format!(
            "truncated records: {} (over the size cap when written)",
            report.truncated_records
        ));
    }
    notes
}

/// Accepts a log whose head is missing or no longer fits, on the record.
pub fn reseal(path: &Path, by: &str, reason: &str, config: Option<&Path>) -> Result<ExitCode> {
    let options = match config {
        Some(c) => {
            let config = setup::load_config(Some(c))?;
            setup::audit_options(&config, path)
                .with_context(|| format!("invalid [audit] in {}", c.display()))?
        }
        None => audit::AuditOptions::default(),
    };
    let report = audit::reseal(path, options, by, reason)?;
    println!(
        "resealed {}: record seq {} says who, why and what the old head said",
        path.display(),
        report.seq
    );
    println!("cause: {}", report.cause);
    if report.checkpointed {
        println!("a signed checkpoint follows it; the new head is signed");
    } else {
        println!(
            "not signed: no signing key (pass --config with an [audit] signing_key_file to sign)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a new ed25519 key pair for `[audit] signing_key_file`.
pub fn keygen(out: &Path) -> Result<ExitCode> {
    let made = audit::keygen(out)?;
    println!("private key: {} (mode 0600)", made.private_key.display());
    println!("public key:  {}", made.public_key.display());
    println!("key id:      {}", made.key_id);
    println!(
        "Set [audit] signing_key_file to the private key (outside the log's directory); give the \
         public key to whoever runs `vigil audit verify --pubkey`."
    );
    Ok(ExitCode::SUCCESS)
}
