//! Rules: loading components, reading their metadata, and routing each
//! event only to the rules subscribed to its kind.
//!
//! Loading a rule: compile (or fetch from the cache) → read which
//! `vigil:rule` version it imports and pick that version's adapter
//! (`crate::wit`; an unsupported version is refused naming the supported
//! range) → pre-instantiate against the linker → instantiate once → call
//! `metadata()` → build its grant.
//! Anything wrong is refused at start with a message naming the rule file.

pub mod assemble;
mod inspect;
mod instance;

pub use inspect::{ComponentInfo, inspect_component};
pub use instance::{CallOutcome, FaultKind, RuleFault, RuleInstance};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use vigil_sdk::subscribes;
use wasmtime::component::Linker;

use crate::config::{Limits, Mode};
use crate::engine::VigilEngine;
use crate::host_api::RuleState;
use crate::model::{ActionKind, Event, Metadata, PartitionKey};
use crate::policy::{ArgumentGrants, PolicyGate, RuleGrant};
use crate::store::{KeyChange, StoredKey};

/// Where a rule's component comes from.
pub struct RuleSource {
    /// `builtin:ID` or the file path, for messages and the audit log.
    pub origin: String,
    pub bytes: std::borrow::Cow<'static, [u8]>,
    /// For built-in rules: the id the metadata must report.
    pub expected_id: Option<String>,
}

/// Everything needed to load one rule.
pub struct RuleSpec {
    pub source: RuleSource,
    pub mode: Mode,
    /// Granted action kinds; `None` grants what the metadata declares (the
    /// no-config default, always audit-only).
    pub granted: Option<Vec<ActionKind>>,
    pub config: BTreeMap<String, String>,
    pub limits: Limits,
    /// Kinds parked for an operator's approval.
    pub approval: Vec<ActionKind>,
    /// Budget overrides (action kind → limit per window).
    pub budget: BTreeMap<String, u32>,
    /// Which groups and policies its actions may name.
    pub args: ArgumentGrants,
}

/// Builds rule instances: the engine plus the one shared linker.
pub struct RuleLoader {
    engine: Arc<VigilEngine>,
    linker: Linker<RuleState>,
    gate: Arc<PolicyGate>,
}

impl RuleLoader {
    pub fn new(engine: Arc<VigilEngine>, gate: PolicyGate) -> Result<Self> {
        let linker = crate::wit::linker(engine.engine())?;
        Ok(RuleLoader {
            engine,
            linker,
            gate: Arc::new(gate),
        })
    }

    pub fn load(&self, spec: RuleSpec) -> Result<RuleInstance> {
        let origin = spec.source.origin.clone();
        let component = self.engine.compile(&spec.source.bytes, &origin)?;
        let info = inspect_component(self.engine.engine(), &component);
        let contract = info
            .check_compatible()
            .with_context(|| format!("rule {origin} cannot be loaded"))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("rule {origin} imports something Vigil does not provide"))?;
        let pre = crate::wit::RulePre::new(contract, pre)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "rule {origin} does not export the {}@{} world (metadata, on-event)",
                    crate::wit::WIT_PACKAGE,
                    contract.version()
                )
            })?;
        instance::RuleInstance::new(self.engine.clone(), pre, spec, self.gate.clone())
            .with_context(|| format!("rule {origin} failed to start"))
    }
}

/// Loads a component only to read what it declares and which contract it
/// imports (no grants, audit-only): `vigil pack build` and `install`.
pub fn read_metadata(
    engine: Arc<VigilEngine>,
    origin: &str,
    bytes: Vec<u8>,
) -> Result<(Metadata, crate::wit::Contract)> {
    let loader = RuleLoader::new(engine, PolicyGate::default())?;
    let rule = loader.load(RuleSpec {
        source: RuleSource {
            origin: origin.to_owned(),
            bytes: std::borrow::Cow::Owned(bytes),
            expected_id: None,
        },
        mode: Mode::AuditOnly,
        granted: Some(Vec::new()),
        config: Default::default(),
        limits: Limits::default(),
        approval: Vec::new(),
        budget: Default::default(),
        args: ArgumentGrants::none(origin),
    })?;
    Ok((rule.metadata().clone(), rule.contract()))
}

/// Validates a rule's metadata; returns the grant the policy gate uses.
fn grant_for(meta: &Metadata, spec: &RuleSpec) -> Result<RuleGrant> {
    let origin = &spec.source.origin;
    if meta.id.is_empty()
        || !meta
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        bail!(
            "rule {origin} reports an invalid id {:?} (use letters, digits, - _ .)",
            meta.id
        );
    }
    if let Some(expected) = &spec.source.expected_id
        && &meta.id != expected
    {
        bail!(
            "rule {origin} reports id {:?}, expected {expected:?}",
            meta.id
        );
    }
    if meta.subscribes.is_empty() {
        bail!("rule {} ({origin}) subscribes to no event kinds", meta.id);
    }
    let (granted, mode) = match &spec.granted {
        Some(g) => (g.clone(), spec.mode),
        None => (meta.actions.clone(), Mode::AuditOnly),
    };
    for kind in &granted {
        if !meta.actions.contains(kind) {
            tracing::warn!(
                rule = %meta.id,
                "action {} is granted but the rule does not declare it; requests for it will be denied",
                kind.name()
            );
        }
    }
    Ok(RuleGrant {
        rule_id: meta.id.clone(),
        mode,
        granted,
        declared: meta.actions.clone(),
        approval: spec.approval.clone(),
        budget: spec.budget.clone(),
        args: spec.args.clone(),
    })
}

/// Kinds remembered in the routing table; past this, routes are computed
/// per event (a flood of invented kinds cannot grow memory).
const MAX_ROUTES: usize = 4096;

/// The loaded rules and the routing table.
///
/// With more than one shard, every rule whose partition key is not
/// `global` has one instance per shard: `rules` holds shard 0's (and every
/// global rule's only instance), `replicas[s - 1]` shard `s`'s. Shard `s`
/// owns the partitions `p` with `p % shards == s` (see
/// [`RuleSet::shard_of`]).
pub struct RuleSet {
    pub rules: Vec<RuleInstance>,
    replicas: Vec<Vec<Option<RuleInstance>>>,
    routes: HashMap<String, Arc<[usize]>>,
}

/// The instances one shard calls, by rule index.
pub enum ShardInstances<'a> {
    /// Shard 0: the rules themselves.
    First(&'a mut [RuleInstance]),
    /// Another shard: its replicas (`None` for a global rule, which is
    /// never routed there).
    Replica(&'a mut [Option<RuleInstance>]),
}

impl ShardInstances<'_> {
    /// The instance of rule `index` in this shard.
    pub fn get(&mut self, index: usize) -> &mut RuleInstance {
        match self {
            ShardInstances::First(rules) => &mut rules[index],
            ShardInstances::Replica(rules) => rules[index]
                .as_mut()
                .expect("a call is planned only on a shard where its rule has an instance"),
        }
    }
}

impl RuleSet {
    pub fn new(rules: Vec<RuleInstance>) -> Result<Self> {
        let mut seen = HashMap::new();
        for r in &rules {
            if let Some(other) = seen.insert(r.id().to_owned(), r.origin().to_owned()) {
                bail!(
                    "two rules report the same id {:?}: {other} and {}",
                    r.id(),
                    r.origin()
                );
            }
        }
        Ok(RuleSet {
            rules,
            replicas: Vec::new(),
            routes: HashMap::new(),
        })
    }

    /// Runs the rules on `shards` shards (at least 1): a replica of every
    /// rule not partitioned `global` for each shard past the first. Called
    /// once, before any event or restored state.
    pub fn with_shards(mut self, shards: usize) -> Result<Self> {
        self.replicas = (1..shards.max(1))
            .map(|_| {
                self.rules
                    .iter()
                    .map(|r| match r.metadata().partition {
                        PartitionKey::Global => Ok(None),
                        _ => r.replica().map(Some),
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// How many shards the rules run on.
    pub fn shards(&self) -> usize {
        self.replicas.len() + 1
    }

    /// The partition of `event` under rule `index`'s key, and the shard
    /// whose instance of the rule owns it.
    pub fn shard_of(&self, index: usize, event: &Event) -> (u64, usize) {
        let partition = self.rules[index].metadata().partition.partition_of(event);
        (partition, (partition % self.shards() as u64) as usize)
    }

    /// Every shard's instances, shard 0 first, each borrowed apart so the
    /// shards can run on their own threads.
    pub fn shards_mut(&mut self) -> Vec<ShardInstances<'_>> {
        std::iter::once(ShardInstances::First(&mut self.rules[..]))
            .chain(
                self.replicas
                    .iter_mut()
                    .map(|r| ShardInstances::Replica(&mut r[..])),
            )
            .collect()
    }

    /// Every instance of rule `index`, shard 0's first.
    pub fn instances_mut(&mut self, index: usize) -> impl Iterator<Item = &mut RuleInstance> {
        let (first, replicas) = (&mut self.rules[index], &mut self.replicas);
        std::iter::once(first).chain(replicas.iter_mut().filter_map(move |r| r[index].as_mut()))
    }

    /// Hands the stored keys of rule `index` to the instances that own
    /// their partitions. A key stored before rule state was partitioned
    /// (no partition) is given to every instance: the one that owns it
    /// judges with it, the others only hold a copy until it ages out.
    pub fn restore_state(&mut self, index: usize, keys: Vec<StoredKey>) {
        let shards = self.shards() as u64;
        let global = self.rules[index].metadata().partition == PartitionKey::Global;
        let untagged = keys.iter().filter(|k| k.partition.is_none()).count();
        if untagged > 0 && shards > 1 && !global {
            tracing::warn!(
                rule = self.rules[index].id(),
                keys = untagged,
                "state keys stored before shards are copied to every shard until they are rewritten"
            );
        }
        let mut per_shard: Vec<Vec<StoredKey>> = (0..shards).map(|_| Vec::new()).collect();
        for k in keys {
            match k.partition {
                _ if global || shards == 1 => per_shard[0].push(k),
                Some(p) => per_shard[(p % shards) as usize].push(k),
                None => {
                    for shard in per_shard.iter_mut() {
                        shard.push(k.clone());
                    }
                }
            }
        }
        for (instance, keys) in self.instances_mut(index).zip(per_shard) {
            instance.restore_state(keys);
        }
    }

    /// The newest event time any instance of rule `index` has seen.
    pub fn high_water(&self, index: usize) -> Option<i64> {
        std::iter::once(&self.rules[index])
            .chain(self.replicas.iter().filter_map(|r| r[index].as_ref()))
            .filter_map(|r| r.high_water())
            .max()
    }

    /// The changed state keys of every instance, by rule id.
    pub fn take_state_changes(&mut self) -> Vec<(String, Vec<KeyChange>)> {
        let mut out = Vec::new();
        for i in 0..self.rules.len() {
            let id = self.rules[i].id().to_owned();
            let changes: Vec<KeyChange> = self
                .instances_mut(i)
                .filter(|r| r.has_state_changes())
                .flat_map(|r| r.take_state_changes())
                .collect();
            if !changes.is_empty() {
                out.push((id, changes));
            }
        }
        out
    }

    /// Switches every instance of rule `id` to `mode`; false if no rule
    /// has that id.
    pub fn set_mode(&mut self, id: &str, mode: Mode) -> bool {
        let Some(index) = self.rules.iter().position(|r| r.id() == id) else {
            return false;
        };
        for r in self.instances_mut(index) {
            r.set_mode(mode);
        }
        true
    }

    /// Quarantines rule `index` (every shard's instance: they share the
    /// flag).
    pub fn quarantine(&mut self, index: usize) {
        self.rules[index].quarantine();
    }

    /// The policy gate shared by the rules (None when no rule is loaded).
    pub fn gate(&self) -> Option<Arc<PolicyGate>> {
        self.rules.first().map(|r| r.gate().clone())
    }

    /// The rule with this id.
    pub fn find(&self, id: &str) -> Option<&RuleInstance> {
        self.rules.iter().find(|r| r.id() == id)
    }

    /// Indexes of the rules subscribed to this event's kind, whatever its
    /// outcome and class (see [`RuleSet::wants`]).
    pub fn route(&mut self, event: &Event) -> Arc<[usize]> {
        if let Some(r) = self.routes.get(&event.kind) {
            return r.clone();
        }
        let route: Arc<[usize]> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.metadata()
                    .subscribes
                    .iter()
                    .any(|p| subscribes(p, &event.kind))
            })
            .map(|(i, _)| i)
            .collect();
        if self.routes.len() < MAX_ROUTES {
            self.routes.insert(event.kind.clone(), route.clone());
        }
        route
    }

    /// Whether rule `index` (from [`RuleSet::route`]) takes this event:
    /// its outcome and class filters (contract v0.2) let it through. An
    /// event a rule filters out is not a call: it is not judged by that
    /// rule, counted, or remembered as judged.
    pub fn wants(&self, index: usize, event: &Event) -> bool {
        self.rules[index].metadata().wants(event)
    }
}
