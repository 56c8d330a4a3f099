//! Composition root shared by the subcommands: configuration → engine →
//! rules → pipeline.

use std::path::Path;

use anyhow::{Context, Result};

use crate::actions::dispatch::Dispatcher;
use crate::config::Config;
use crate::engine::VigilEngine;
use crate::executor::ActionExecutor;
use crate::rules::RuleSet;
use crate::store::Store;

/// The config file, or the built-in default.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::builtin_default()),
    }
}

pub fn engine(config: &Config) -> Result<std::sync::Arc<VigilEngine>> {
    VigilEngine::new(config.cache_dir().as_deref())
}

/// Loads every rule the configuration names, the rest of the built-in
/// pack (unless `builtin_pack = false`) and the installed packs.
pub fn load_rules(config: &Config) -> Result<RuleSet> {
    crate::rules::assemble::from_config(config, engine(config)?)
}

/// The connectors (credentials read now, so a missing one stops the start)
/// and the durable store, for the rules loaded from `config`.
pub fn executor(config: &Config, rules: &RuleSet) -> Result<ActionExecutor> {
    let dispatcher = dispatcher(config, rules)?;
    let store = Store::open(&config.state_path)?;
    let mut executor = ActionExecutor::new(dispatcher, store)?;
    if let Some(cluster) = &config.cluster {
        let nats = crate::cluster::Nats::connect(cluster)?;
        let claims = crate::cluster::Claims::open(nats).context("[cluster] claims_bucket")?;
        tracing::info!(
            replica = claims.replica(),
            bucket = %cluster.claims_bucket,
            "actions are claimed across replicas before they are executed"
        );
        executor.set_claims(claims);
    }
    if let Some(gate) = rules.gate() {
        executor.resolve_protected_groups(&config.protected, gate.protected())?;
    }
    Ok(executor)
}

/// The connectors and dispatch tables of `config`.
pub fn dispatcher(config: &Config, rules: &RuleSet) -> Result<Dispatcher> {
    // `load_rules` loads the configured rules first, in order.
    let per_rule: Vec<(String, crate::config::Dispatch)> = config
        .rules
        .iter()
        .zip(&rules.rules)
        .filter(|(c, _)| !c.dispatch.is_empty())
        .map(|(c, r)| (r.id().to_owned(), c.dispatch.clone()))
        .collect();
    Dispatcher::from_config(&config.connectors, &config.dispatch, &per_rule)
}

/// The whole pipeline of `config`: rules, connectors, store, audit log —
/// for the operator commands that act (approve, undo).
pub fn pipeline(config: &Config) -> Result<crate::pipeline::Pipeline> {
    let rules = load_rules(config)?;
    let executor = executor(config, &rules)?;
    let audit = audit_log(config)?;
    let mut pipeline = crate::pipeline::Pipeline::new(rules, audit, executor)?;
    pipeline.set_baseline_check_secs(config.baseline.check_secs);
    Ok(pipeline)
}

/// Opens the configured audit log with its `[audit]` options (signing key,
/// witnesses, record cap).
pub fn audit_log(config: &Config) -> Result<crate::audit::AuditLog> {
    let path = &config.audit_path;
    let options = audit_options(config, path)?;
    crate::audit::AuditLog::open_with(path, options)
        .with_context(|| format!("cannot open the audit log {}", path.display()))
}

/// The audit log of `vigil run`: as [`audit_log`], and in a cluster each
/// signed checkpoint is also published to the stream (`vigil.audit.<replica>`).
pub fn run_audit_log(config: &Config, executor: &ActionExecutor) -> Result<crate::audit::AuditLog> {
    let path = &config.audit_path;
    let mut options = audit_options(config, path)?;
    if let Some(claims) = executor.claims()
        && options.signer.is_some()
    {
        let nats = claims.nats();
        nats.ensure_stream()
            .with_context(|| format!("[cluster] stream {:?}", nats.config().stream))?;
        options.witness.publish = Some(nats.checkpoint_publisher());
    }
    crate::audit::AuditLog::open_with(path, options)
        .with_context(|| format!("cannot open the audit log {}", path.display()))
}

/// The `[audit]` options of `config` for the log at `path`; with
/// `[cluster]`, the log's checkpoints name the replica (its chain is that
/// replica's).
pub fn audit_options(config: &Config, path: &Path) -> Result<crate::audit::AuditOptions> {
    let mut options = crate::audit::AuditOptions::from_config(&config.audit, path)?;
    options.replica = config.cluster.as_ref().map(|c| c.replica_name());
    Ok(options)
}

/// Who an operator command acts as: `--by`, else `$USER`, else `operator`.
pub fn operator(by: Option<&str>) -> String {
    by.map(str::to_owned)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "operator".to_owned())
}
