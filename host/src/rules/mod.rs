//! Rules: loading components, reading their metadata, and routing each
//! event only to the rules subscribed to its kind.
//!
//! Loading a rule: compile (or fetch from the cache) → read which
//! `vigil:rule` version it imports and pick that version's adapter
//! (`crate::wit`; an unsupported version is refused naming the supported
//! range) → pre-instantiate against the linker → instantiate once → call
//! `metadata()` → build its grant.
//! Anything wrong is refused at start with a message naming the rule file.

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
use crate::model::{ActionKind, Event, Metadata};
use crate::policy::{ArgumentGrants, PolicyGate, RuleGrant};

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
pub struct RuleSet {
    pub rules: Vec<RuleInstance>,
    routes: HashMap<String, Arc<[usize]>>,
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
            routes: HashMap::new(),
        })
    }

    /// The policy gate shared by the rules (None when no rule is loaded).
    pub fn gate(&self) -> Option<Arc<PolicyGate>> {
        self.rules.first().map(|r| r.gate().clone())
    }

    /// The rule with this id.
    pub fn find(&self, id: &str) -> Option<&RuleInstance> {
        self.rules.iter().find(|r| r.id() == id)
    }

    /// The rule with this id.
    pub fn find_mut(&mut self, id: &str) -> Option<&mut RuleInstance> {
        self.rules.iter_mut().find(|r| r.id() == id)
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
