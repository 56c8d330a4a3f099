//! `[budgets]` and `[baseline]`: how much a rule (and all rules together)
//! may do per window before the circuit breaker holds it in audit-only, and
//! how often the MFA configuration is compared with its baseline.
//! (`[approvals]` is in `super::approvals`.)

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::model::ActionKind;

/// Default per-rule limit per window, by action kind.
fn default_per_rule(kind: ActionKind) -> u32 {
    match kind {
        ActionKind::SuspendUser | ActionKind::ResetFactors => 10,
        ActionKind::RevokeSessions | ActionKind::BlockIp => 20,
        ActionKind::ActivatePolicy | ActionKind::RestorePolicy => 5,
        ActionKind::AssignAppPolicy => 10,
        ActionKind::AddToGroup => 50,
        ActionKind::Notify => 100,
        ActionKind::Escalate => 50,
    }
}

/// Default limit across all rules per window, by action kind.
fn default_global(kind: ActionKind) -> u32 {
    match kind {
        ActionKind::SuspendUser | ActionKind::ResetFactors => 25,
        ActionKind::RevokeSessions | ActionKind::BlockIp => 50,
        ActionKind::ActivatePolicy | ActionKind::RestorePolicy => 10,
        ActionKind::AssignAppPolicy => 20,
        ActionKind::AddToGroup => 100,
        ActionKind::Notify => 500,
        ActionKind::Escalate => 200,
    }
}

/// `[budgets]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetsConfig {
    /// The sliding window the limits count over.
    pub window_secs: u64,
    /// Per rule, by action kind (kinds not named keep their default).
    pub per_rule: BTreeMap<String, u32>,
    /// All rules together, by action kind.
    pub global: BTreeMap<String, u32>,
    /// User-targeting actions in the window may not exceed this fraction of
    /// the distinct users seen in the last `users_window_secs`…
    pub max_user_fraction: f64,
    /// …once at least this many distinct users have been seen.
    pub fraction_min_users: u64,
    pub users_window_secs: u64,
    /// A tripped breaker resets itself after this long; 0 keeps it tripped
    /// until an operator resets it.
    pub cooldown_secs: u64,
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        BudgetsConfig {
            window_secs: 600,
            per_rule: BTreeMap::new(),
            global: BTreeMap::new(),
            max_user_fraction: 0.1,
            fraction_min_users: 100,
            users_window_secs: 24 * 3600,
            cooldown_secs: 0,
        }
    }
}

impl BudgetsConfig {
    pub(super) fn validate(&self) -> Result<()> {
        if self.window_secs == 0 || self.window_secs > 7 * 24 * 3600 {
            bail!("budgets.window_secs must be 1 to 604800");
        }
        validate_limits("budgets.per_rule", &self.per_rule)?;
        validate_limits("budgets.global", &self.global)?;
        if !(self.max_user_fraction > 0.0 && self.max_user_fraction <= 1.0) {
            bail!("budgets.max_user_fraction must be greater than 0 and at most 1");
        }
        if self.users_window_secs == 0 {
            bail!("budgets.users_window_secs must be greater than 0");
        }
        Ok(())
    }

    /// The per-rule limit for `kind`, with the rule's own override.
    pub fn rule_limit(&self, kind: ActionKind, rule_override: &BTreeMap<String, u32>) -> u32 {
        rule_override
            .get(kind.name())
            .or_else(|| self.per_rule.get(kind.name()))
            .copied()
            .unwrap_or_else(|| default_per_rule(kind))
    }

    pub fn global_limit(&self, kind: ActionKind) -> u32 {
        self.global
            .get(kind.name())
            .copied()
            .unwrap_or_else(|| default_global(kind))
    }
}

/// Limits must name action kinds.
pub(super) fn validate_limits(at: &str, limits: &BTreeMap<String, u32>) -> Result<()> {
    for kind in limits.keys() {
        if ActionKind::from_name(kind).is_none() {
            let known: Vec<&str> = ActionKind::ALL.iter().map(|k| k.name()).collect();
            bail!(
                "{at}.{kind}: unknown action kind; known kinds: {}",
                known.join(", ")
            );
        }
    }
    Ok(())
}

/// `[baseline]`: how the service watches the MFA configuration against its
/// approved baseline (`vigil baseline`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Seconds between scheduled comparisons of every identity provider's
    /// MFA configuration with its approved baseline; 0: only after
    /// policy-change events.
    pub check_secs: u64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig { check_secs: 3600 }
    }
}

impl BaselineConfig {
    pub(super) fn validate(&self) -> Result<()> {
        if self.check_secs != 0 && !(60..=7 * 24 * 3600).contains(&self.check_secs) {
            bail!(
                "baseline.check_secs must be 0 (only after policy changes) or 60 to 604800 (7 days), not {}",
                self.check_secs
            );
        }
        Ok(())
    }
}
