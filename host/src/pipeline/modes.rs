//! Modes set by an operator (the admin API's `POST /v1/admin/rules/{id}/mode`)
//! outlast reloads and restarts.
//!
//! An operator who holds a misbehaving rule in audit-only must not see it
//! enforce again because someone edited an unrelated line of the
//! configuration (a watched file reloads by itself). So each override is
//! kept in the store (`meta` key `admin-modes`) with the mode the
//! configuration gave the rule when it was set, and applied again after
//! every reload and at every start while the configuration still gives
//! that mode. A configuration that now gives the rule another mode is the
//! newer intent: the override is dropped, and the reload says so. Setting
//! a rule back to its configured mode removes the override.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::Pipeline;
use crate::clock::now_ms;
use crate::config::Mode;

/// The store key of the overrides.
const KEY: &str = "admin-modes";

/// One operator's mode for one rule.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Override {
    mode: Mode,
    /// The configuration's mode for the rule when the override was set.
    configured: Mode,
    by: String,
}

/// What applying the overrides did (for the reload's record).
#[derive(Debug, Default, PartialEq)]
pub struct ModesApplied {
    /// `rule: mode (set by who)`
    pub kept: Vec<String>,
    /// `rule: why`
    pub dropped: Vec<String>,
}

impl Pipeline {
    fn mode_overrides(&self) -> Result<BTreeMap<String, Override>> {
        match self.executor.store().meta(KEY)? {
            None => Ok(BTreeMap::new()),
            Some(text) => serde_json::from_str(&text)
                .with_context(|| format!("the store's {KEY:?} entry is not readable")),
        }
    }

    fn save_mode_overrides(&self, overrides: &BTreeMap<String, Override>) -> Result<()> {
        let text = serde_json::to_string(overrides).expect("overrides serialise");
        self.executor.store().set_meta(KEY, &text, now_ms())
    }

    /// An operator sets `rule`'s mode: from its next call, and kept across
    /// reloads and restarts (see the module docs). Returns the mode it had,
    /// or None for an unknown rule.
    pub fn set_mode_override(&mut self, rule: &str, mode: Mode, by: &str) -> Result<Option<Mode>> {
        let Some(from) = self.rules.find(rule).map(|r| r.grant().mode) else {
            return Ok(None);
        };
        let mut overrides = self.mode_overrides()?;
        let configured = overrides.get(rule).map_or(from, |o| o.configured);
        if mode == configured {
            overrides.remove(rule);
        } else {
            overrides.insert(
                rule.to_owned(),
                Override {
                    mode,
                    configured,
                    by: by.to_owned(),
                },
            );
        }
        self.save_mode_overrides(&overrides)?;
        self.rules.set_mode(rule, mode);
        Ok(Some(from))
    }

    /// Applies the stored overrides to the rules now loaded (at start and
    /// after a reload); drops those the configuration has moved on from.
    pub fn apply_mode_overrides(&mut self) -> Result<ModesApplied> {
        let mut overrides = self.mode_overrides()?;
        let mut applied = ModesApplied::default();
        let mut changed = false;
        overrides.retain(|rule, o| {
            let configured = self.rules.find(rule).map(|r| r.grant().mode);
            match configured {
                Some(c) if c == o.configured => {
                    self.rules.set_mode(rule, o.mode);
                    applied
                        .kept
                        .push(format!("{rule}: {} (set by {})", o.mode.name(), o.by));
                    true
                }
                Some(c) => {
                    applied.dropped.push(format!(
                        "{rule}: the configuration now gives it {} (the override to {} was set over {})",
                        c.name(),
                        o.mode.name(),
                        o.configured.name()
                    ));
                    changed = true;
                    false
                }
                None => {
                    applied.dropped.push(format!("{rule}: no longer loaded"));
                    changed = true;
                    false
                }
            }
        });
        if changed {
            self.save_mode_overrides(&overrides)?;
        }
        for d in &applied.dropped {
            tracing::warn!("operator's mode dropped: {d}");
        }
        Ok(applied)
    }
}
