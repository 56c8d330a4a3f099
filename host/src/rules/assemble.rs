//! The rule set a configuration describes: its `[[rules]]` in order, then
//! the rest of the built-in pack, then every rule of the installed packs
//! that `[[rules]]` does not list.
//!
//! Used at start and by a reload (`service::reload`), which builds the new
//! set here, off the pipeline thread, before anything is swapped.
//!
//! Installed packs are verified at every assembly (`crate::pack::verify`):
//! an unsigned, untrusted or altered pack stops the assembly with the
//! failed check in the message. A pack rule the configuration does not list
//! runs audit-only with no grants; a listed one gets its `allow` minus the
//! kinds its pack holds until `vigil pack accept`.

use std::borrow::Cow;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::{RuleLoader, RuleSet, RuleSource, RuleSpec};
use crate::builtin;
use crate::config::{Config, Mode};
use crate::engine::VigilEngine;
use crate::pack::installed::{InstalledPack, PacksDir};
use crate::pack::{ManifestRule, Trust};
use crate::policy::{ArgumentGrants, Budgets, PolicyGate, ProtectedAccounts};

/// The trusted keys and `allow_unsigned` of `[packs]`.
pub fn trust(config: &Config) -> Result<Trust> {
    let keys = config
        .packs
        .trusted_keys
        .iter()
        .enumerate()
        .map(|(i, path)| {
            crate::audit::PublicKey::load(path).with_context(|| format!("packs.trusted_keys[{i}]"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Trust {
        keys,
        allow_unsigned: config.packs.allow_unsigned,
    })
}

/// The installed packs of `config`, each verified.
pub fn installed_packs(config: &Config) -> Result<Vec<InstalledPack>> {
    let trust = trust(config)?;
    PacksDir::new(&config.packs.dir).load_all(&trust)
}

/// Loads every rule `config` describes (see the module documentation).
pub fn from_config(config: &Config, engine: Arc<VigilEngine>) -> Result<RuleSet> {
    let gate = PolicyGate::new(
        ProtectedAccounts::new(&config.protected),
        Budgets::new(config.budgets.clone()),
    )
    .with_approval_expiry(config.approvals.expire_secs);
    let loader = RuleLoader::new(engine, gate)?;
    let packs = installed_packs(config)?;
    // A pack rule to check against its manifest entry once loaded.
    let mut specs: Vec<(RuleSpec, Option<&ManifestRule>)> = Vec::new();
    let mut listed_builtins = Vec::new();
    let mut listed_pack_rules = Vec::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let mut granted = rule.granted();
        let mut settings = rule.config_strings();
        let mut entry = None;
        let source = if let Some(id) = &rule.builtin {
            let Some(b) = builtin::find(id) else {
                bail!(
                    "rules[{i}].builtin: no built-in rule {id:?}; built-in rules: {}",
                    builtin::ids().join(", ")
                );
            };
            listed_builtins.push(b.id);
            builtin_source(b)
        } else if let Some((pack_name, rule_id)) = rule.pack_rule() {
            let Some(installed) = packs.iter().find(|p| p.pack.manifest.name == pack_name) else {
                bail!(
                    "rules[{i}].pack: no installed pack {pack_name:?} in {} (installed: {})",
                    config.packs.dir.display(),
                    names(&packs)
                );
            };
            let m = &installed.pack.manifest;
            let Some(e) = m.rule(rule_id) else {
                bail!(
                    "rules[{i}].pack: pack {} has no rule {rule_id:?} (its rules: {})",
                    m.label(),
                    m.rules
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            listed_pack_rules.push((pack_name.to_owned(), rule_id.to_owned()));
            if let Some(held) = installed.held.get(rule_id) {
                for kind in held.iter().filter(|k| granted.contains(k)) {
                    tracing::warn!(
                        rule = rule_id,
                        "rules[{i}] grants {} but pack {} added it in this version: held \
                         until `vigil pack accept {}`",
                        kind.name(),
                        m.label(),
                        m.name
                    );
                }
                granted.retain(|k| !held.contains(k));
            }
            // The pack's defaults, under the operator's settings.
            for (k, v) in &e.config {
                settings.entry(k.clone()).or_insert_with(|| v.clone());
            }
            entry = Some(e);
            pack_source(installed, e)
        } else {
            let path = rule.path.as_ref().expect("validated: one source");
            let bytes = std::fs::read(path)
                .with_context(|| format!("rules[{i}].path: cannot read {}", path.display()))?;
            RuleSource {
                origin: path.display().to_string(),
                bytes: Cow::Owned(bytes),
                expected_id: None,
            }
        };
        specs.push((
            RuleSpec {
                source,
                mode: rule.mode.unwrap_or(config.mode),
                granted: Some(granted),
                config: settings,
                limits: config.limits.with(&rule.limits),
                approval: rule.approval_kinds(),
                budget: rule.budget.clone(),
                args: ArgumentGrants::from_config(i, rule),
            },
            entry,
        ));
    }
    if config.builtin_pack {
        for b in builtin::PACK
            .iter()
            .filter(|b| !listed_builtins.contains(&b.id))
        {
            let declared = config.grant_declared_actions;
            specs.push((
                RuleSpec {
                    source: builtin_source(b),
                    mode: config.mode,
                    granted: if declared { None } else { Some(Vec::new()) },
                    config: Default::default(),
                    limits: config.limits.clone(),
                    approval: Vec::new(),
                    budget: Default::default(),
                    args: if declared {
                        ArgumentGrants::builtin_default()
                    } else {
                        ArgumentGrants::none(format!("builtin:{}", b.id))
                    },
                },
                None,
            ));
        }
    }
    for installed in &packs {
        let m = &installed.pack.manifest;
        for e in &m.rules {
            if listed_pack_rules.contains(&(m.name.clone(), e.id.clone())) {
                continue;
            }
            let source = pack_source(installed, e);
            let at = source.origin.clone();
            specs.push((
                RuleSpec {
                    source,
                    // Not granted by the operator yet: disclosed, watched,
                    // never acting.
                    mode: Mode::AuditOnly,
                    granted: Some(Vec::new()),
                    config: e.config.clone(),
                    limits: config.limits.clone(),
                    approval: Vec::new(),
                    budget: Default::default(),
                    args: ArgumentGrants::none(at),
                },
                Some(e),
            ));
        }
    }
    let mut rules = Vec::with_capacity(specs.len());
    for (spec, entry) in specs {
        let origin = spec.source.origin.clone();
        let rule = loader.load(spec)?;
        if let Some(e) = entry {
            e.check_loaded(rule.metadata(), rule.contract().version())
                .with_context(|| format!("rule {origin} does not match its pack manifest"))?;
        }
        rules.push(rule);
    }
    RuleSet::new(rules)?.with_shards(config.shard_count())
}

fn names(packs: &[InstalledPack]) -> String {
    if packs.is_empty() {
        return "none".to_owned();
    }
    packs
        .iter()
        .map(|p| p.pack.manifest.label())
        .collect::<Vec<_>>()
        .join(", ")
}

fn builtin_source(b: &'static builtin::BuiltinRule) -> RuleSource {
    RuleSource {
        origin: format!("builtin:{}", b.id),
        bytes: Cow::Borrowed(b.wasm),
        expected_id: Some(b.id.to_owned()),
    }
}

/// The component exactly as verified (never read again from disk).
fn pack_source(installed: &InstalledPack, e: &ManifestRule) -> RuleSource {
    let m = &installed.pack.manifest;
    RuleSource {
        origin: format!("pack:{}@{}/{}", m.name, m.version, e.id),
        bytes: Cow::Owned(
            installed
                .pack
                .component(&e.id)
                .expect("verified: every manifest rule has its component")
                .to_vec(),
        ),
        expected_id: Some(e.id.clone()),
    }
}
