//! Operator commands on the durable state: temporary actions (`vigil
//! actions`), parked approvals (`vigil approvals`), circuit breakers
//! (`vigil breaker`) and quarantined rules (`vigil rules release`).
//!
//! Commands that change something are audited with who ran them (`--by`,
//! else `$USER`). They take the audit log's lock, so while a `vigil run`
//! service holds it they fail with a clear message (use the admin API
//! then).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::setup;
use crate::audit::{AuditLog, Entry};
use crate::clock::now_ms;
use crate::store::Store;

pub(super) fn when(ms: i64) -> String {
    if ms == crate::executor::ON_DEMAND_MS {
        return "on demand".to_owned();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

fn in_words(ms: i64) -> String {
    if ms > i64::MAX / 2 {
        return "until an operator runs `vigil actions undo`".to_owned();
    }
    let secs = ms / 1000;
    if secs < 0 {
        return "overdue".to_owned();
    }
    match secs {
        s if s < 120 => format!("in {s} s"),
        s if s < 7200 => format!("in {} min", s / 60),
        s => format!("in {} h", s / 3600),
    }
}

fn store(config_path: Option<&Path>) -> Result<(crate::config::Config, Store)> {
    let config = setup::load_config(config_path)?;
    let store = Store::open(&config.state_path)?;
    Ok((config, store))
}

/// `vigil actions list`.
pub fn actions_list(config_path: Option<&Path>) -> Result<ExitCode> {
    let (_, store) = store(config_path)?;
    let undos = store.pending_undos()?;
    if undos.is_empty() {
        println!("no temporary actions pending");
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    println!("ID\tACTION\tTARGET\tRULE\tCONNECTOR\tEXPIRES");
    for u in undos {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{} ({})",
            u.id,
            u.undo.reverses().name(),
            u.undo.target(),
            u.rule,
            u.connector,
            when(u.due_ms),
            in_words(u.due_ms - now)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil actions undo ID`.
pub fn actions_undo(config_path: Option<&Path>, id: i64, by: Option<&str>) -> Result<ExitCode> {
    let config = setup::load_config(config_path)?;
    let mut pipeline = setup::pipeline(&config)?;
    let r = pipeline.undo_now(id, &setup::operator(by))?;
    println!(
        "{} {} on {}: {} ({})",
        r.decision,
        r.scheduled.undo.name(),
        r.scheduled.undo.target(),
        r.detail,
        r.scheduled.connector
    );
    pipeline.finish()?;
    Ok(if r.decision == "executed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `vigil approvals list`.
pub fn approvals_list(config_path: Option<&Path>) -> Result<ExitCode> {
    let (_, store) = store(config_path)?;
    let pending = store.approvals("pending")?;
    if pending.is_empty() {
        println!("no approvals pending");
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    println!("ID\tACTION\tTARGET\tRULE\tEVENT\tEXPIRES");
    for p in pending {
        let expires = if p.expires_ms <= now {
            "expired".to_owned()
        } else {
            format!("{} ({})", when(p.expires_ms), in_words(p.expires_ms - now))
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{expires}",
            p.action_id,
            p.action.kind().name(),
            p.action.target(),
            p.rule,
            p.event_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil approvals approve ID`.
pub fn approvals_approve(
    config_path: Option<&Path>,
    id: &str,
    by: Option<&str>,
) -> Result<ExitCode> {
    let config = setup::load_config(config_path)?;
    let mut pipeline = setup::pipeline(&config)?;
    let outcome = pipeline.approve(id, &setup::operator(by))?;
    pipeline.finish()?;
    if outcome.results.is_empty() {
        println!(
            "approved {id}; the policy gate now says {}: nothing was executed (see the audit log)",
            outcome.decision
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("approved {id}: {}", outcome.results.join(", "));
    Ok(if outcome.results.iter().all(|r| *r == "executed") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `vigil approvals reject ID`.
pub fn approvals_reject(
    config_path: Option<&Path>,
    id: &str,
    by: Option<&str>,
) -> Result<ExitCode> {
    let config = setup::load_config(config_path)?;
    let mut pipeline = setup::pipeline(&config)?;
    pipeline.reject_approval(id, &setup::operator(by))?;
    pipeline.finish()?;
    println!("rejected {id}: it will never be executed");
    Ok(ExitCode::SUCCESS)
}

/// `vigil breaker list`.
pub fn breaker_list(config_path: Option<&Path>) -> Result<ExitCode> {
    let (_, store) = store(config_path)?;
    let breakers = store.breakers()?;
    if breakers.is_empty() {
        println!("no breaker is tripped");
    }
    for b in breakers {
        println!("{}\ttripped {}\t{}", b.rule, when(b.tripped_ms), b.reason);
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil breaker reset RULE`.
pub fn breaker_reset(config_path: Option<&Path>, rule: &str, by: Option<&str>) -> Result<ExitCode> {
    clear_and_audit(
        config_path,
        |store| store.reset_breaker(rule),
        Entry::new("breaker-reset").rule(rule),
        by,
        &format!("the breaker of {rule} is not tripped"),
        &format!("breaker of {rule} reset: the rule enforces again"),
    )
}

/// `vigil rules release RULE`.
pub fn rules_release(config_path: Option<&Path>, rule: &str, by: Option<&str>) -> Result<ExitCode> {
    clear_and_audit(
        config_path,
        |store| store.release_quarantine(rule),
        Entry::new("rule-released").rule(rule),
        by,
        &format!("{rule} is not quarantined"),
        &format!("{rule} released from quarantine: it gets events again from the next start"),
    )
}

/// Clears one guardrail in the store (`clear` says whether there was
/// anything to clear) and audits `entry` with who did it. The audit log is
/// opened first: while a service holds it, nothing changes.
fn clear_and_audit(
    config_path: Option<&Path>,
    clear: impl FnOnce(&Store) -> Result<bool>,
    entry: Entry,
    by: Option<&str>,
    nothing: &str,
    done: &str,
) -> Result<ExitCode> {
    let (config, store) = store(config_path)?;
    let mut log = open_audit(&config)?;
    if !clear(&store)? {
        println!("{nothing}");
        return Ok(ExitCode::FAILURE);
    }
    log.append(entry.field("by", setup::operator(by)))?;
    log.sync()?;
    println!("{done}");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn open_audit(config: &crate::config::Config) -> Result<AuditLog> {
    use anyhow::Context;
    let path = &config.audit_path;
    let options = setup::audit_options(config, path)?;
    AuditLog::open_with(path, options).with_context(|| {
        format!(
            "cannot open the audit log {} (if a `vigil run` service holds it, use its admin API)",
            path.display()
        )
    })
}
