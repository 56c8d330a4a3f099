//! `vigil baseline capture|diff|approve|list|export`: the known-good MFA
//! configuration (see `crate::baseline`).
//!
//! `capture` and `approve` write the store and audit who did it
//! (`baseline-captured`, `baseline-approved` records); they open the audit
//! log first, so while a `vigil run` service holds it they say so and
//! change nothing. `diff`, `list` and `export` only read.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::operate::{open_audit, when};
use super::setup;
use crate::actions::dispatch::Dispatcher;
use crate::audit::Entry;
use crate::baseline::{self, Change, describe};
use crate::clock::now_ms;
use crate::config::Config;
use crate::store::{Store, StoredBaseline};

/// The configuration, its connectors (the baseline needs no rules) and
/// the store.
fn open(config_path: Option<&Path>) -> Result<(Config, Dispatcher, Store)> {
    let config = setup::load_config(config_path)?;
    let dispatch = Dispatcher::from_config(&config.connectors, &config.dispatch, &[])?;
    let store = Store::open(&config.state_path)?;
    Ok((config, dispatch, store))
}

fn summaries(changes: &[Change]) -> Value {
    json!(
        changes
            .iter()
            .map(|c| c.summary.as_str())
            .collect::<Vec<_>>()
    )
}

/// `vigil baseline capture`: a new version of every provider's
/// configuration; with `approve`, approved at once.
pub fn capture(config_path: Option<&Path>, by: Option<&str>, approve: bool) -> Result<ExitCode> {
    let (config, mut dispatch, store) = open(config_path)?;
    let mut log = open_audit(&config)?;
    let by = setup::operator(by);
    let now = now_ms();
    for saved in baseline::capture(&mut dispatch, &store, &by, now)? {
        let previous = store.approved_baseline(&saved.provider)?;
        log.append(
            Entry::new("baseline-captured")
                .field("provider", saved.provider.as_str())
                .field("version", saved.version)
                .field("digest", saved.digest.as_str())
                .field("objects", saved.objects.len())
                .field("by", by.as_str()),
        )?;
        println!(
            "captured {} baseline version {}: {} objects ({})",
            saved.provider,
            saved.version,
            saved.objects.len(),
            saved.digest
        );
        match &previous {
            // An approval prints the same comparison.
            Some(p) if !approve => println!(
                "  compared with approved version {}:\n{}",
                p.version,
                indent(&describe(&baseline::diff(&p.objects, &saved.objects)))
            ),
            None if !approve => println!(
                "  no approved baseline yet: review it (`vigil baseline export --version {}`) and \
                 approve it (`vigil baseline approve --version {}`)",
                saved.version, saved.version
            ),
            _ => {}
        }
        if approve {
            approve_version(&store, &mut log, &saved, previous.as_ref(), &by, now)?;
        }
    }
    log.sync()?;
    Ok(ExitCode::SUCCESS)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Approves `full` (a stored version, with its objects), audited first:
/// an approval the log does not show must not count.
fn approve_version(
    store: &Store,
    log: &mut crate::audit::AuditLog,
    full: &StoredBaseline,
    previous: Option<&StoredBaseline>,
    by: &str,
    now: i64,
) -> Result<()> {
    let changes = previous
        .map(|p| baseline::diff(&p.objects, &full.objects))
        .unwrap_or_default();
    let mut entry = Entry::new("baseline-approved")
        .field("provider", full.provider.as_str())
        .field("version", full.version)
        .field("digest", full.digest.as_str())
        .field("by", by)
        .field("changes", summaries(&changes));
    if let Some(p) = previous {
        entry = entry.field("replaces_version", p.version);
    }
    log.append(entry)?;
    log.sync()?;
    store.approve_baseline(full.version, by, now)?;
    println!(
        "approved {} baseline version {} as known-good (by {by})",
        full.provider, full.version
    );
    if let Some(p) = previous {
        println!(
            "  changes from version {}:\n{}",
            p.version,
            indent(&describe(&changes))
        );
    }
    Ok(())
}

/// `vigil baseline approve`: a stored version, or (without `version`)
/// the configuration as it is now, captured and approved.
pub fn approve(
    config_path: Option<&Path>,
    version: Option<i64>,
    by: Option<&str>,
) -> Result<ExitCode> {
    let Some(version) = version else {
        return capture(config_path, by, true);
    };
    // A stored version: no connector is needed.
    let config = setup::load_config(config_path)?;
    let store = Store::open(&config.state_path)?;
    let Some(stored) = store.baseline(version)? else {
        bail!("no baseline version {version} (see `vigil baseline list`)");
    };
    let mut log = open_audit(&config)?;
    let previous = store
        .approved_baseline(&stored.provider)?
        .filter(|p| p.version != version);
    approve_version(
        &store,
        &mut log,
        &stored,
        previous.as_ref(),
        &setup::operator(by),
        now_ms(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `vigil baseline diff`: what changed since the approved baseline. Exit
/// 1 when something weakens MFA (or there is no approved baseline), 0
/// otherwise.
pub fn diff(config_path: Option<&Path>, as_json: bool) -> Result<ExitCode> {
    let (_, mut dispatch, store) = open(config_path)?;
    let drifts = baseline::drift_all(&mut dispatch, &store)?;
    let mut failed = false;
    let mut out = Vec::new();
    for d in &drifts {
        let weakens = d.weakenings().count();
        failed |= weakens > 0 || d.approved.is_none();
        if as_json {
            out.push(json!({
                "provider": d.provider,
                "approved_version": d.approved.as_ref().map(|a| a.version),
                "changes": d.changes,
                "weakening": weakens,
            }));
            continue;
        }
        match &d.approved {
            None => println!(
                "{}: no approved baseline; capture and approve one (`vigil baseline approve`)",
                d.provider
            ),
            Some(a) => {
                println!(
                    "{}: compared with approved version {} ({}, by {}): {} changes, {weakens} weaken MFA",
                    d.provider,
                    a.version,
                    a.approved
                        .as_ref()
                        .map_or(String::new(), |(ms, _)| when(*ms)),
                    a.approved.as_ref().map_or("?", |(_, by)| by.as_str()),
                    d.changes.len()
                );
                println!("{}", indent(&describe(&d.changes)));
            }
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `vigil baseline list`.
pub fn list(config_path: Option<&Path>) -> Result<ExitCode> {
    let config = setup::load_config(config_path)?;
    let store = Store::open(&config.state_path)?;
    let all = store.baselines()?;
    if all.is_empty() {
        println!("no baseline captured yet (`vigil baseline capture`)");
        return Ok(ExitCode::SUCCESS);
    }
    let known_good = store.known_good_versions()?;
    println!("VERSION\tPROVIDER\tCAPTURED\tBY\tAPPROVED\tDIGEST");
    for b in all {
        let approved = match &b.approved {
            Some((ms, by)) if known_good.get(&b.provider) == Some(&b.version) => {
                format!("known-good ({} by {by})", when(*ms))
            }
            Some((ms, by)) => format!("{} by {by}", when(*ms)),
            None => "-".to_owned(),
        };
        println!(
            "{}\t{}\t{}\t{}\t{approved}\t{}",
            b.version,
            b.provider,
            when(b.captured_ms),
            b.captured_by,
            b.digest
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil baseline export`: one version, or every provider's approved
/// one, as JSON for review and version control.
pub fn export(config_path: Option<&Path>, version: Option<i64>) -> Result<ExitCode> {
    let config = setup::load_config(config_path)?;
    let store = Store::open(&config.state_path)?;
    let chosen: Vec<StoredBaseline> = match version {
        Some(v) => vec![
            store
                .baseline(v)?
                .with_context(|| format!("no baseline version {v} (see `vigil baseline list`)"))?,
        ],
        None => {
            let mut out = Vec::new();
            for v in store.known_good_versions()?.into_values() {
                out.extend(store.baseline(v)?);
            }
            if out.is_empty() {
                bail!("no approved baseline to export; name a version with --version");
            }
            out
        }
    };
    let docs: Vec<Value> = chosen
        .iter()
        .map(|b| {
            json!({
                "version": b.version,
                "provider": b.provider,
                "captured": when(b.captured_ms),
                "captured_by": b.captured_by,
                "digest": b.digest,
                "approved": b.approved.as_ref().map(|(ms, by)| json!({"at": when(*ms), "by": by})),
                "objects": b.objects,
            })
        })
        .collect();
    let doc = if version.is_some() {
        docs.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(docs)
    };
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
