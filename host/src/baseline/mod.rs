//! MFA baselines: a known-good copy of the identity providers' MFA
//! configuration, what changed since, and the checks the service runs.
//!
//! - **Capture** reads the MFA-relevant configuration through every
//!   connector that has one (`okta`, `graph`: [`MfaConfig::mfa_config`])
//!   and stores it as a new version (`crate::store`'s `baselines` table).
//! - **Approve** marks a version known-good (audited with who). The latest
//!   approval of a provider is its baseline.
//! - **Drift** reads the configuration again and compares it with the
//!   baseline ([`diff`]): every difference in words, the weakening ones
//!   marked.
//! - **Check** (the service, on every policy-change event and on a
//!   schedule): the same comparison; a weakening not reported yet is a
//!   finding of the host (`vigil.baseline`), carrying the changes.
//! - **Restore** is the `restore-policy` action: `crate::executor` reads
//!   the policy, writes the baseline's version back through
//!   [`MfaConfig::write_policy`] and reads it again to confirm.
//!
//! Reads are plain HTTP calls on the calling thread (the CLI, or the
//! pipeline thread for checks, like the protected-group refreshes).
//!
//! [`MfaConfig::mfa_config`]: crate::actions::connector::MfaConfig::mfa_config
//! [`MfaConfig::write_policy`]: crate::actions::connector::MfaConfig::write_policy

pub mod apps;
pub mod diff;

use anyhow::{Result, anyhow};

use crate::actions::dispatch::Dispatcher;
use crate::model::baseline::PolicyObject;
use crate::store::{Store, StoredBaseline};
pub use diff::{Change, describe, diff, diff_object};

/// The rule id host findings about the baseline are audited under.
pub const FINDING_RULE: &str = "vigil.baseline";

/// The connectors that hold an MFA configuration (`okta`, `graph`:
/// `Connector::mfa`), by name.
pub fn providers(dispatch: &mut Dispatcher) -> Vec<String> {
    dispatch
        .configured()
        .filter_map(|c| c.mfa().is_some().then_some(c))
        .map(|c| c.name().to_owned())
        .collect()
}

/// The provider (connector name) whose directory serves an event source:
/// `okta` for `okta`, `graph` for `entra`.
pub fn provider_for_source(dispatch: &mut Dispatcher, source: &str) -> Option<String> {
    dispatch
        .configured()
        .find(|c| c.directory_for() == Some(source))
        .map(|c| c.name().to_owned())
}

/// Reads `provider`'s MFA configuration now.
pub fn read_current(dispatch: &mut Dispatcher, provider: &str) -> Result<Vec<PolicyObject>> {
    let connector = dispatch
        .by_name(provider)
        .ok_or_else(|| anyhow!("no connector named {provider} is configured"))?;
    let mfa = connector
        .mfa()
        .ok_or_else(|| anyhow!("the {provider} connector has no MFA configuration to read"))?;
    mfa.mfa_config()
        .map_err(|e| anyhow!("cannot read the MFA configuration through {provider}: {e}"))
}

/// Every configured provider, or an error saying how to configure one.
fn all_providers(dispatch: &mut Dispatcher) -> Result<Vec<String>> {
    let found = providers(dispatch);
    if found.is_empty() {
        anyhow::bail!(
            "no identity provider connector is configured: a baseline is read through \
             [connectors.okta] or [connectors.graph]"
        );
    }
    Ok(found)
}

/// Reads every provider's configuration and stores it as a new version
/// (not approved).
pub fn capture(
    dispatch: &mut Dispatcher,
    store: &Store,
    by: &str,
    now_ms: i64,
) -> Result<Vec<StoredBaseline>> {
    let mut saved = Vec::new();
    for provider in all_providers(dispatch)? {
        let objects = read_current(dispatch, &provider)?;
        saved.push(store.save_baseline(&provider, &objects, by, now_ms)?);
    }
    Ok(saved)
}

/// One provider's configuration compared with its approved baseline.
#[derive(Clone, Debug)]
pub struct Drift {
    pub provider: String,
    /// The approved version compared with; `None` when there is none yet.
    pub approved: Option<StoredBaseline>,
    /// Empty without an approved version.
    pub changes: Vec<Change>,
}

impl Drift {
    pub fn weakenings(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.weakens)
    }
}

/// Compares `provider`'s configuration now with its approved baseline.
/// Without an approved baseline nothing is read: there is nothing to
/// compare with.
pub fn drift(dispatch: &mut Dispatcher, store: &Store, provider: &str) -> Result<Drift> {
    let Some(approved) = store.approved_baseline(provider)? else {
        return Ok(Drift {
            provider: provider.to_owned(),
            approved: None,
            changes: Vec::new(),
        });
    };
    let changes = diff(&approved.objects, &read_current(dispatch, provider)?);
    Ok(Drift {
        provider: provider.to_owned(),
        approved: Some(approved),
        changes,
    })
}

/// [`drift`] for every configured provider.
pub fn drift_all(dispatch: &mut Dispatcher, store: &Store) -> Result<Vec<Drift>> {
    all_providers(dispatch)?
        .iter()
        .map(|p| drift(dispatch, store, p))
        .collect()
}

/// The approved version of one policy: the baseline of `provider` and
/// the object in it, when the policy is in it.
pub fn approved_policy(
    store: &Store,
    provider: &str,
    id: &str,
) -> Result<Option<(StoredBaseline, PolicyObject)>> {
    let Some(baseline) = store.approved_baseline(provider)? else {
        return Ok(None);
    };
    let object = baseline
        .objects
        .iter()
        .find(|o| o.id == id && o.kind.restorable())
        .cloned();
    Ok(object.map(|o| (baseline, o)))
}
