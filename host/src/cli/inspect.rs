//! `vigil rules list` and `vigil inspect`.

use std::borrow::Cow;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::setup;
use crate::config::{Config, Limits, Mode};
use crate::model::Metadata;
use crate::policy::PolicyGate;
use crate::rules::{RuleLoader, RuleSource, RuleSpec};

pub fn list(config_path: Option<&Path>) -> Result<ExitCode> {
    let config = setup::load_config(config_path)?;
    let rules = setup::load_rules(&config)?;
    // The durable status, when a state store exists (listing creates none).
    let store = if config.state_path.exists() {
        Some(crate::store::Store::open(&config.state_path)?)
    } else {
        None
    };
    for r in &rules.rules {
        let granted: Vec<&str> = r.grant().granted.iter().map(|k| k.name()).collect();
        let mut status = Vec::new();
        if let Some(store) = &store {
            if store.quarantined(r.id())?.is_some() {
                status.push("quarantined");
            }
            if store.breaker(r.id())?.is_some() {
                status.push("breaker-tripped");
            }
        }
        println!(
            "{}\t{}\t{}\tmode={}\tallow={}\tstatus={}\twit={}\tpartition={}\t{}",
            r.id(),
            r.metadata().version,
            r.origin(),
            r.grant().mode.name(),
            if granted.is_empty() {
                "-".into()
            } else {
                granted.join(",")
            },
            if status.is_empty() {
                "ok".into()
            } else {
                status.join(",")
            },
            r.contract().version(),
            r.metadata().partition.name(),
            r.metadata().description
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(path: &Path) -> Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = Config::builtin_default();
    let engine = setup::engine(&config)?;
    let origin = path.display().to_string();
    let loader = RuleLoader::new(engine, PolicyGate::default())?;
    let rule = loader.load(RuleSpec {
        source: RuleSource {
            origin,
            bytes: Cow::Owned(bytes),
            expected_id: None,
        },
        mode: Mode::AuditOnly,
        granted: None,
        config: Default::default(),
        limits: Limits::default(),
        approval: Vec::new(),
        budget: Default::default(),
        args: crate::policy::ArgumentGrants::builtin_default(),
    })?;
    print_metadata(rule.metadata(), rule.contract());
    Ok(ExitCode::SUCCESS)
}

fn print_metadata(m: &Metadata, contract: crate::wit::Contract) {
    let actions: Vec<&str> = m.actions.iter().map(|k| k.name()).collect();
    println!("id:          {}", m.id);
    println!("version:     {}", m.version);
    println!("description: {}", m.description);
    println!("subscribes:  {}", m.subscribes.join(", "));
    let names = |v: Vec<&str>| {
        if v.is_empty() {
            "any".to_owned()
        } else {
            v.join(", ")
        }
    };
    println!(
        "outcomes:    {}",
        names(m.outcomes.iter().map(|o| o.name()).collect())
    );
    println!(
        "classes:     {}",
        names(m.classes.iter().map(|c| c.name()).collect())
    );
    println!("partition:   {}", m.partition.name());
    println!(
        "actions:     {}",
        if actions.is_empty() {
            "-".into()
        } else {
            actions.join(", ")
        }
    );
    println!(
        "wit:         {}@{}",
        crate::wit::WIT_PACKAGE,
        contract.version()
    );
}
