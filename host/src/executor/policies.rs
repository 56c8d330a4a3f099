//! The actions that write MFA configuration, each read, write, re-read:
//! `restore-policy` and its undo, and `assign-app-policy`.
//!
//! # restore-policy
//! Read the policy, write the wanted version back through the connector,
//! read it again to confirm.
//!
//! The wanted version is the one in the provider's approved baseline (see
//! `crate::baseline`); the undo wants the version read just before the
//! restore. The connector only knows the HTTP calls
//! ([`MfaConfig::read_policy`], [`MfaConfig::write_policy`]); comparing,
//! confirming and describing happen here, so Okta and Entra restores are
//! judged alike.
//!
//! A restore is *confirmed* when the policy read back has no weakening
//! left relative to the baseline ([`crate::baseline::diff_object`]). One
//! that wrote something but is not confirmed (a rule deleted since the
//! baseline cannot be recreated under its id) is still recorded
//! `executed`, with its undo, and the detail and the audit record's `diff`
//! (`"confirmed": false`) say what is left.
//!
//! # assign-app-policy
//! Moves an application only when it can be signed in to without MFA
//! ([`mfa_gap`]), and only under a policy that itself asks everyone for a
//! second factor: an application already covered is left where it is
//! (`executed`, nothing written), a policy that would not cover it is
//! refused (`failed`, nothing written). After the write the application is
//! read again; the record's `diff` says what the gap was and whether the
//! re-read confirms it is closed. There is no undo: moving an application
//! back under a policy without MFA is for a human to decide.

use serde_json::{Value, json};

use crate::actions::connector::{
    ActionContext, Connector, ConnectorError, Executed, MfaConfig, Undo,
};
use crate::baseline::apps::mfa_gap;
use crate::baseline::{self, Change, diff_object};
use crate::model::baseline::{AppSignIn, PolicyObject};
use crate::model::{Action, AppPolicy};
use crate::store::Store;

fn summaries(changes: &[Change]) -> Vec<String> {
    changes.iter().map(|c| c.summary.clone()).collect()
}

/// Restores `policy` to the approved baseline of the connector's
/// provider. Returns the execution and the audit record's `diff`.
pub(super) fn restore_policy(
    connector: &mut dyn Connector,
    store: &Store,
    policy: &str,
) -> Result<(Executed, Option<Value>), ConnectorError> {
    let provider = connector.name().to_owned();
    let connector = mfa_of(connector)?;
    let found = baseline::approved_policy(store, &provider, policy)
        .map_err(|e| ConnectorError::refused(format!("{e:#}")))?;
    let Some((approved, target)) = found else {
        return Err(ConnectorError::refused(format!(
            "no approved {provider} baseline holds policy {policy}: capture one with `vigil \
             baseline capture` and approve it with `vigil baseline approve`; nothing was written"
        )));
    };
    let version = approved.version;
    let Some(current) = connector.read_policy(policy)? else {
        return Err(ConnectorError::refused(format!(
            "{provider} policy {policy} no longer exists; restore-policy does not recreate \
             deleted policies (baseline version {version} holds it: `vigil baseline export \
             --version {version}`); nothing was written"
        )));
    };
    // From the baseline to now: what the restore takes back.
    let reverted = diff_object(Some(&target), Some(&current));
    if reverted.is_empty() {
        return Ok((
            Executed::done(format!(
                "{provider}: policy '{}' ({policy}) already matches baseline version {version}; \
                 nothing written",
                target.name
            )),
            Some(json!({
                "baseline_version": version,
                "reverted": [],
                "confirmed": true,
            })),
        ));
    }
    let lines = connector.write_policy(&current, &target)?;
    let after = connector.read_policy(policy)?;
    let left = diff_object(Some(&target), after.as_ref());
    let confirmed = !left.iter().any(|c| c.weakens);
    let mut detail = format!(
        "{provider}: restored policy '{}' ({policy}) to baseline version {version}: {} ({}; \
         re-read {})",
        target.name,
        summaries(&reverted).join("; "),
        lines.join(", "),
        if confirmed { "confirms it" } else { "does not" }
    );
    if !confirmed {
        detail.push_str(&format!(
            "; still weaker than the baseline: {}",
            summaries(&left).join("; ")
        ));
        tracing::warn!("{detail}");
    }
    let diff = json!({
        "baseline_version": version,
        "reverted": reverted,
        "left": left,
        "confirmed": confirmed,
    });
    Ok((
        Executed {
            detail,
            undo: Some(Undo::RestorePolicy {
                policy: policy.to_owned(),
                previous: Box::new(current),
            }),
        },
        Some(diff),
    ))
}

/// Writes `previous` (the policy as it was before a restore) back: the
/// undo of `restore-policy`. Fails when the re-read still differs.
pub(super) fn put_back(
    provider: &str,
    connector: &mut dyn MfaConfig,
    policy: &str,
    previous: &PolicyObject,
) -> Result<String, ConnectorError> {
    let Some(current) = connector.read_policy(policy)? else {
        return Err(ConnectorError::refused(format!(
            "{provider} policy {policy} no longer exists; nothing to put back"
        )));
    };
    let changes = diff_object(Some(previous), Some(&current));
    if changes.is_empty() {
        return Ok(format!(
            "{provider}: policy '{}' ({policy}) is already as it was before the restore; nothing \
             written",
            previous.name
        ));
    }
    let lines = connector.write_policy(&current, previous)?;
    let after = connector.read_policy(policy)?;
    let left = diff_object(Some(previous), after.as_ref());
    if !left.is_empty() {
        return Err(ConnectorError {
            status: None,
            vendor_code: None,
            message: format!(
                "{provider}: wrote policy {policy} back ({}) but the re-read still differs from \
                 before the restore: {}",
                lines.join(", "),
                summaries(&left).join("; ")
            ),
            attempts: lines.len() as u32,
        });
    }
    Ok(format!(
        "{provider}: put policy '{}' ({policy}) back as it was before the restore: {} ({})",
        previous.name,
        summaries(&changes).join("; "),
        lines.join(", ")
    ))
}

/// `assign-app-policy` through a directory connector (see the module doc).
pub(super) fn assign_app_policy(
    connector: &mut dyn Connector,
    action: &Action,
    assign: &AppPolicy,
    ctx: &ActionContext<'_>,
) -> Result<(Executed, Option<Value>), ConnectorError> {
    let provider = connector.name().to_owned();
    let entra = connector.directory_for() == Some("entra");
    let before = mfa_of(connector)?.app_sign_in(&assign.app)?;
    let Some(gap) = mfa_gap(&before, entra) else {
        return Ok((
            Executed::done(format!(
                "{provider}: application '{}' ({}) already requires MFA{}; nothing written",
                before.name,
                assign.app,
                under(&before)
            )),
            Some(json!({"app": assign.app, "gap": null, "confirmed": true})),
        ));
    };
    let Some(target) = mfa_of(connector)?.read_policy(&assign.policy)? else {
        return Err(ConnectorError::refused(format!(
            "{provider} policy {} does not exist; application {} not moved",
            assign.policy, assign.app
        )));
    };
    let candidate = AppSignIn {
        policies: vec![target.clone()],
        ..before.clone()
    };
    if let Some(weak) = mfa_gap(&candidate, entra) {
        return Err(ConnectorError::refused(format!(
            "{provider} policy '{}' ({}) would not close the gap ({weak}); application {} not moved",
            target.name, assign.policy, assign.app
        )));
    }
    let done = connector.execute(action, ctx)?;
    let after = mfa_of(connector)?.app_sign_in(&assign.app)?;
    let left = mfa_gap(&after, entra);
    let detail = format!(
        "{} (it could be signed in to without MFA: {gap}; re-read {})",
        done.detail,
        match &left {
            None => "confirms MFA is required".to_owned(),
            Some(still) => format!("still finds a gap: {still}"),
        }
    );
    if let Some(still) = &left {
        tracing::warn!("assign-app-policy {}: {still}", assign.app);
    }
    Ok((
        Executed { detail, undo: None },
        Some(json!({
            "app": assign.app,
            "gap": gap,
            "policy": assign.policy,
            "left": left,
            "confirmed": left.is_none(),
        })),
    ))
}

/// ` under policy 'X'` for a detail, or nothing.
fn under(app: &AppSignIn) -> String {
    let names: Vec<String> = app
        .policies
        .iter()
        .map(|p| format!("'{}'", p.name))
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" under {}", names.join(", "))
    }
}

/// The connector's MFA configuration access (the caller checked it has
/// one).
fn mfa_of(connector: &mut dyn Connector) -> Result<&mut dyn MfaConfig, ConnectorError> {
    let name = connector.name().to_owned();
    connector.mfa().ok_or_else(|| {
        ConnectorError::refused(format!("{name} has no MFA configuration to read or write"))
    })
}
