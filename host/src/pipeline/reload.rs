//! Swapping the whole rule set between two events (a reload).
//!
//! The new set is built elsewhere (`service::reload`, off this thread);
//! here it replaces the old one at a point where no event is half-judged:
//! the events waiting for their shards are judged by the old set first,
//! then everything the old set changed (rule state, judged ids, budget
//! usage, records) is committed, then the new set restores what the store
//! holds for each rule id, as at a start. So an event is judged entirely
//! by the old set or entirely by the new one, a rule that stays (even at a
//! new version) keeps its state, and an event already judged by a rule is
//! not judged by it again.

use anyhow::Result;
use serde::Serialize;

use super::Pipeline;
use crate::config::Protected;
use crate::rules::{RuleInstance, RuleSet};

/// What a swap changed, for the audit record and the admin answer.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RulesChange {
    /// Rules loaded now and not before (`id (origin, sha256 prefix)`).
    pub added: Vec<String>,
    /// Rules no longer loaded.
    pub removed: Vec<String>,
    /// Rules whose component or origin changed (`id: origin version
    /// (sha256 prefix) -> origin version (sha256 prefix)`).
    pub upgraded: Vec<String>,
    /// Rules whose mode or granted kinds changed.
    pub grants: Vec<String>,
    /// Modes an operator set that still apply (`rule: mode (set by who)`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub modes_kept: Vec<String>,
    /// Modes an operator set that the new configuration overrides.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub modes_dropped: Vec<String>,
}

impl RulesChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.upgraded.is_empty()
            && self.grants.is_empty()
    }

    fn between(old: &RuleSet, new: &RuleSet) -> RulesChange {
        let mut change = RulesChange::default();
        for n in &new.rules {
            let Some(o) = old.find(n.id()) else {
                change.added.push(format!(
                    "{} ({}, sha256 {})",
                    n.id(),
                    n.origin(),
                    short(n.digest())
                ));
                continue;
            };
            // A new component, or the same one from a new pack version.
            if o.digest() != n.digest() || o.origin() != n.origin() {
                change.upgraded.push(format!(
                    "{}: {} {} (sha256 {}) -> {} {} (sha256 {})",
                    n.id(),
                    o.origin(),
                    o.metadata().version,
                    short(o.digest()),
                    n.origin(),
                    n.metadata().version,
                    short(n.digest())
                ));
            }
            let (before, after) = (grant_text(o), grant_text(n));
            if before != after {
                change
                    .grants
                    .push(format!("{}: {before} -> {after}", n.id()));
            }
        }
        for o in &old.rules {
            if new.find(o.id()).is_none() {
                change.removed.push(format!("{} ({})", o.id(), o.origin()));
            }
        }
        change
    }
}

/// The first 16 hex digits of a component digest: enough to tell which
/// build ran, short enough for a log line.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min(16)]
}

fn grant_text(r: &RuleInstance) -> String {
    let g = r.grant();
    let kinds: Vec<&str> = g.granted.iter().map(|k| k.name()).collect();
    format!("{} [{}]", g.mode.name(), kinds.join(", "))
}

impl Pipeline {
    /// Replaces the rule set (see the module documentation). `protected`
    /// is the new configuration's `[protected]`: its groups are resolved
    /// before anything is swapped. The inner `Err` is a refusal that left
    /// the old set running (shard count, group resolution); the outer one
    /// a store or audit failure (fatal, as everywhere in the pipeline).
    pub fn replace_rules(
        &mut self,
        new: RuleSet,
        protected: &Protected,
    ) -> Result<Result<RulesChange, String>> {
        if new.shards() != self.rules.shards() {
            return Ok(Err(format!(
                "the new rule set runs on {} shards, the running one on {}",
                new.shards(),
                self.rules.shards()
            )));
        }
        if let Some(gate) = new.gate()
            && let Err(e) = self
                .executor
                .resolve_protected_groups(protected, gate.protected())
        {
            return Ok(Err(format!("cannot resolve [protected] groups: {e:#}")));
        }
        // Everything the old set was given is judged and committed.
        self.run_shards()?;
        self.commit()?;
        let mut change = RulesChange::between(&self.rules, &new);
        self.rules = new;
        self.newest.clear();
        self.restore()?;
        let modes = self.apply_mode_overrides()?;
        (change.modes_kept, change.modes_dropped) = (modes.kept, modes.dropped);
        if let Some(gate) = self.rules.gate() {
            self.executor.set_protected(gate.protected().clone());
            if let Some(observer) = &self.observer {
                for rule in gate.budgets().tripped_rules() {
                    observer.breaker(&rule, true);
                }
            }
        }
        Ok(Ok(change))
    }
}
