//! `mfa-policy-guard`: an MFA policy, policy rule or org-wide factor that
//! was deactivated, deleted or weakened.
//!
//! An attacker holding an admin session (or a careless admin) can switch MFA
//! off for everyone in one click, which silently disarms every other MFA rule.
//! On every *successful* change of this kind the rule reports a finding naming
//! who made it (the actor's login), asks to re-activate a policy that was
//! switched off or to restore one that was edited (as the operator's
//! approved MFA baseline holds it), and escalates to the on-call.
//!
//! Signals (outcome Success; failures are ignored). Fail safe: a
//! *deactivation or deletion* whose outcome is missing or unknown is treated
//! as a success (it probably happened, and an MFA policy switched off
//! unnoticed is the worse mistake); the finding says so in the detail
//! `outcome`. An *update* with a missing outcome is ignored, since most
//! updates do not weaken anything.
//! - Okta policy type first: the `policy-type` attribute
//!   (`target[].detailEntry.policyType`). A sign-on, MFA enrollment, access
//!   (authentication) or authenticator policy type (`OKTA_SIGN_ON`,
//!   `Okta:SignOn`, `MFA_ENROLL`, `OktaMfaEnroll`, `ACCESS_POLICY`, …) makes
//!   every event below MFA-relevant, whatever the policy is called; a type
//!   that is clearly not about MFA (`PASSWORD`, `PROFILE_ENROLLMENT`,
//!   `IDP_DISCOVERY`, `OAUTH_AUTHORIZATION_POLICY`, `USER_LIFECYCLE`) makes
//!   none of them relevant. When the type is missing or unknown, the rule
//!   falls back to the rules below (fail safe).
//! - Okta `policy.lifecycle.deactivate`, `policy.lifecycle.delete`,
//!   `policy.rule.deactivate`, `policy.rule.delete`: any policy whose type is
//!   not known to be unrelated to MFA (high).
//! - Okta `policy.lifecycle.update`, `policy.rule.update`: only when the
//!   policy type is MFA-relevant or, with no known type, a target looks
//!   MFA-relevant (high). Name heuristic: the type or display name of a
//!   policy / policy-rule target contains (case-insensitive) one of `mfa`,
//!   `multi-factor`, `multifactor`, `2fa`, `factor`, `authenticator`,
//!   `okta verify`, `sign-on`, `sign on`, `signon`, `authentication`,
//!   `access policy`. So "Default Sign-On Policy", "MFA Enrollment Policy",
//!   "Authentication policy: Salesforce" match; "Default Password Policy"
//!   does not. The heuristic is needed because every password-policy edit
//!   is also a `policy.lifecycle.update`.
//! - Okta `system.mfa.factor.deactivate`: an org-wide factor switched off
//!   (critical).
//! - Entra `Update conditional access policy` (high) when it weakens the
//!   policy, judged from the policy before and after (`policy-old-state` /
//!   `policy-new-state`, `policy-old-grant-controls` /
//!   `policy-new-grant-controls`, normalized from `modifiedProperties`): an
//!   enforced policy (`enabled`) that is no longer enforced (`disabled`,
//!   report-only), or an enforced policy whose grant controls no longer
//!   demand MFA (`mfa` or an `authenticationStrength` dropped). An update
//!   that shows neither (a rename, a report-only policy switched on, MFA
//!   added) is logged and not acted on. Fail safe: an update whose before
//!   and after cannot be read (no `modifiedProperties`, or only part of
//!   them and no weakening in that part) is treated as a weakening, and the
//!   finding says so in the detail `note`.
//! - Entra `Delete conditional access policy` (high).
//! - Entra `Disable Strong Authentication`: per-user MFA switched off for the
//!   target user (critical). Subject is that user; there is no policy to
//!   re-activate, so only an escalation is asked for.
//!
//! Actions, then `escalate` in every case:
//! - `restore-policy` (contract 0.3.0) for an *edit*: Okta
//!   `policy.lifecycle.update`, `policy.rule.update` (on the rule's parent
//!   policy, when the event names it) and an Entra `Update conditional
//!   access policy` that weakens its grant controls (or whose change the
//!   event does not show). The rule cannot see what the edit
//!   changed; the host writes back the policy as the approved baseline
//!   holds it (`vigil baseline`), after an operator's approval by default,
//!   and the audit record carries the diff.
//! - `activate-policy` for a policy or rule switched off
//!   (`policy.lifecycle.deactivate`, `policy.rule.deactivate`, an Entra
//!   update that leaves a policy no longer enforced, and
//!   `policy.rule.delete` / a rule update whose event does not name the
//!   parent policy).
//!
//! The policy acted on is the target of kind `PolicyEntity` or `Policy`; for an Okta
//! policy-rule event the rule's parent policy (`PolicyEntity` target) when
//! the event carries it, else the rule id (`PolicyRule` target) — the
//! `activate-policy` action only takes one id, so re-activating a *rule*
//! needs a human either way. Neither action is requested when the
//! policy itself was deleted (`policy.lifecycle.delete`, `Delete conditional
//! access policy`): a deleted policy cannot be re-activated, the escalation
//! carries the case. Org-wide factor deactivation and Disable Strong
//! Authentication name no policy either, so they only escalate.
//!
//! - Okta `application.lifecycle.create`, `.activate`, `.update` and
//!   `application.policy.sign_on.update` (success): with `app_mfa_policy`
//!   set, `assign-app-policy` (contract 0.3.0) puts the application under
//!   that policy (medium finding). The host moves it only when it can be
//!   signed in to without MFA and only under a policy that requires MFA;
//!   whether an application lacks MFA is judged by the host, which reads
//!   the application's policy (its own `vigil.app-mfa` finding). Without
//!   the key these events are ignored.
//!
//! Config keys:
//! - `app_mfa_policy` (no default): the Okta authentication policy id
//!   applications are put under (grant it with `app_policies`).
//! - `dedupe_minutes` (default 10): one finding per policy (or factor / user)
//!   and kind of remedy (re-activate, restore, or escalate only) per this
//!   many minutes on either side in event time; further changes are logged
//!   only. The dedupe is a counter, not a value, so whichever change arrives
//!   first the same findings and actions result: a deactivation and the
//!   deletion of the same policy minutes later are two findings (one asks to
//!   re-activate, one cannot) in any arrival order.
//!
//! Blind spots: an Okta policy *update* is judged relevant, not weaker:
//! every update of a sign-on or MFA enrollment policy fires, including
//! ones that strengthen it (the System Log does not carry the rule's
//! settings before and after). An Entra CA update that keeps the policy
//! enforced and keeps MFA but narrows who it applies to (a new excluded
//! user or group, an excluded app or location) is not seen as a weakening.
//! An Entra "Update policy" on an authentication-methods policy is not
//! read. Changes made by an API token or app are attributed to the app
//! (display name or id), not a human login.

use vigil_sdk::*;

pub struct MfaPolicyGuard;

const OKTA_POLICY_UPDATE: &str = "policy.lifecycle.update";
const OKTA_POLICY_DEACTIVATE: &str = "policy.lifecycle.deactivate";
const OKTA_POLICY_DELETE: &str = "policy.lifecycle.delete";
const OKTA_RULE_UPDATE: &str = "policy.rule.update";
const OKTA_RULE_DEACTIVATE: &str = "policy.rule.deactivate";
const OKTA_RULE_DELETE: &str = "policy.rule.delete";
const OKTA_FACTOR_DEACTIVATE: &str = "system.mfa.factor.deactivate";
const ENTRA_DISABLE_STRONG_AUTH: &str = "Disable Strong Authentication";
const ENTRA_CA_UPDATE: &str = "Update conditional access policy";
const ENTRA_CA_DELETE: &str = "Delete conditional access policy";
/// Okta events about an application being connected or its sign-in
/// changed.
const OKTA_APP_EVENTS: &[&str] = &[
    "application.lifecycle.create",
    "application.lifecycle.activate",
    "application.lifecycle.update",
    "application.policy.sign_on.update",
];
const MINUTE_MS: u64 = 60_000;

/// Words in a policy's type or display name that make an update MFA-relevant.
const MFA_WORDS: &[&str] = &[
    "mfa",
    "multi-factor",
    "multifactor",
    "2fa",
    "factor",
    "authenticator",
    "okta verify",
    "sign-on",
    "sign on",
    "signon",
    "authentication",
    "access policy",
];

/// What a recognised change is about.
struct Change<'a> {
    /// Id the finding and dedupe are keyed on.
    subject: String,
    /// Human name of the subject, for the title.
    subject_name: String,
    /// What kind of object the subject is (`policy`, `policy rule`, …).
    subject_kind: &'static str,
    /// What to ask the host for besides the escalation.
    remedy: Remedy,
    severity: Severity,
    /// The rule target, when the event is about a policy rule.
    rule: Option<&'a Principal>,
    /// What the change did, when the event says (an Entra CA weakening).
    weakening: Option<String>,
    /// Why the rule acts without seeing the change itself (fail safe).
    note: Option<&'static str>,
}

/// The action that can undo the change, asked for before the escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Remedy {
    /// Re-activate this policy (it was switched off).
    Activate(String),
    /// Write this policy back as the operator's approved baseline holds it
    /// (it was edited: what changed is only known to the host).
    Restore(String),
    /// Nothing a rule can ask for helps (deleted, org-wide factor,
    /// per-user setting): escalate only.
    EscalateOnly,
}

impl Remedy {
    /// For the dedupe key: one finding per subject and remedy.
    fn name(&self) -> &'static str {
        match self {
            Remedy::Activate(_) => "activate",
            Remedy::Restore(_) => "restore",
            Remedy::EscalateOnly => "escalate",
        }
    }
}

/// What an Okta policy's type says about MFA relevance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PolicyType {
    /// A sign-on, MFA enrollment, access or authenticator policy.
    Mfa,
    /// A policy type that is clearly not about MFA (password, profile
    /// enrollment, IdP discovery, OAuth authorization, user lifecycle).
    Unrelated,
    /// No type on the event, or one this rule does not know.
    Unknown,
}

/// Policy type fragments (lower-case, letters and digits only) that make a
/// policy MFA-relevant.
const MFA_TYPES: &[&str] = &["signon", "mfa", "accesspolicy", "authenticat"];

/// Policy type fragments of policies that never enforce MFA.
const UNRELATED_TYPES: &[&str] = &[
    "password",
    "profileenrollment",
    "idpdiscovery",
    "oauthauthorization",
    "userlifecycle",
];

/// An Entra CA update judged from the policy before and after.
#[derive(Debug, PartialEq, Eq)]
enum CaUpdate {
    /// The update switched the policy off (no longer enforced): a
    /// deactivation, re-activated like one.
    SwitchedOff(String),
    /// The update weakens the policy otherwise; the text says how.
    Weakened(String),
    /// Before and after are known and nothing was weakened.
    NotWeakened,
    /// Before or after is missing: treat as a weakening (fail safe).
    Unknown,
}

impl Rule for MfaPolicyGuard {
    fn metadata() -> Metadata {
        Metadata {
            id: "mfa-policy-guard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Re-activates or restores, and escalates, when an MFA policy, policy \
                          rule or org-wide factor is deactivated, deleted or weakened."
                .into(),
            subscribes: vec![
                OKTA_POLICY_UPDATE.into(),
                OKTA_POLICY_DEACTIVATE.into(),
                OKTA_POLICY_DELETE.into(),
                OKTA_RULE_UPDATE.into(),
                OKTA_RULE_DEACTIVATE.into(),
                OKTA_RULE_DELETE.into(),
                OKTA_FACTOR_DEACTIVATE.into(),
                ENTRA_DISABLE_STRONG_AUTH.into(),
                ENTRA_CA_UPDATE.into(),
                ENTRA_CA_DELETE.into(),
            ]
            .into_iter()
            .chain(OKTA_APP_EVENTS.iter().map(|k| (*k).to_owned()))
            .collect(),
            actions: vec![
                ActionKind::ActivatePolicy,
                ActionKind::RestorePolicy,
                ActionKind::AssignAppPolicy,
                ActionKind::Escalate,
            ],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let dedupe_ms = host.config_u64("dedupe_minutes", 10)? * MINUTE_MS;
        if OKTA_APP_EVENTS.contains(&event.kind()) {
            return app_changed(host, event, dedupe_ms);
        }
        let outcome_missing = event.outcome() == Outcome::Unknown;
        if event.outcome() == Outcome::Failure || (outcome_missing && !removes(event.kind())) {
            return Ok(Vec::new());
        }
        let Some(change) = recognise(event) else {
            if event.kind() == ENTRA_CA_UPDATE {
                host.log(
                    Level::Info,
                    &format!(
                        "{} {}: the policy stays enforced with MFA (state {} → {}, controls {} → {}): not a weakening",
                        event.kind(),
                        event.id(),
                        event.attribute("policy-old-state").unwrap_or("?"),
                        event.attribute("policy-new-state").unwrap_or("?"),
                        event.attribute("policy-old-grant-controls").unwrap_or("?"),
                        event.attribute("policy-new-grant-controls").unwrap_or("?"),
                    ),
                );
            } else if policy_type(event) == PolicyType::Unrelated {
                host.log(
                    Level::Info,
                    &format!(
                        "{} {}: policy type {} is not about MFA",
                        event.kind(),
                        event.id(),
                        event.attribute("policy-type").unwrap_or("?")
                    ),
                );
            }
            return Ok(Vec::new());
        };
        let who = actor_name(event);

        let fired_key = format!("fired:{}:{}", change.subject, change.remedy.name());
        if host.counter_get(&fired_key, dedupe_ms) > 0 {
            host.log(
                Level::Info,
                &format!(
                    "{} on {} by {who} within the dedupe window: no new finding",
                    event.kind(),
                    change.subject
                ),
            );
            return Ok(Vec::new());
        }
        host.counter_add(&fired_key, dedupe_ms, 1);

        let mut finding = Finding::new(
            change.severity,
            format!(
                "MFA {} weakened: {} ({}) by {who}",
                change.subject_kind,
                change.subject_name,
                event.kind()
            ),
            change.subject.clone(),
        )
        .detail("event_type", event.kind())
        .detail("source", event.source())
        .detail("changed_by", &who);
        if outcome_missing {
            finding = finding.detail("outcome", "missing (treated as a success: fail safe)");
        }
        if let Some(actor) = &event.actor() {
            finding = finding.detail("changed_by_id", &actor.id);
        }
        finding = finding
            .detail(
                format!("{}_id", change.subject_kind.replace(' ', "_")),
                &change.subject,
            )
            .detail(
                format!("{}_name", change.subject_kind.replace(' ', "_")),
                &change.subject_name,
            );
        if let Some(rule) = change.rule {
            finding = finding.detail("policy_rule_id", &rule.id);
            if let Some(name) = &rule.display_name {
                finding = finding.detail("policy_rule_name", name);
            }
        }
        if let Some(ip) = &event.client_ip() {
            finding = finding.detail("client_ip", ip);
        }
        if let Some(how) = &change.weakening {
            finding = finding.detail("change", how);
        }
        if let Some(note) = change.note {
            finding = finding.detail("note", note);
        }
        if let Some(t) = event.attribute("policy-type") {
            finding = finding.detail("policy_type", t);
        }

        match &change.remedy {
            Remedy::Activate(policy) => {
                let activate = Action::ActivatePolicy(policy.clone());
                finding = finding.detail("activate_policy", describe(&host.request(&activate)));
            }
            Remedy::Restore(policy) => {
                let restore = Action::RestorePolicy(policy.clone());
                finding = finding.detail("restore_policy", describe(&host.request(&restore)));
            }
            Remedy::EscalateOnly => {}
        }
        let escalate = Action::Escalate(Message {
            severity: change.severity,
            summary: format!(
                "{who} {} MFA {} {} ({})",
                verb(event.kind()),
                change.subject_kind,
                change.subject_name,
                change.subject
            ),
            details: finding.details.clone(),
        });
        finding = finding.detail("escalate", describe(&host.request(&escalate)));
        Ok(vec![finding])
    }
}

/// An application connected or its sign-in changed: with `app_mfa_policy`
/// configured, ask for the application to sign in under that policy (the
/// host moves it only when it can be signed in to without MFA, and only
/// under a policy that asks for MFA). Without it, nothing: the host's own
/// check reports an application reachable without MFA (`vigil.app-mfa`).
fn app_changed(host: &mut dyn Host, event: &Event, dedupe_ms: u64) -> Result<Vec<Finding>, String> {
    if event.outcome() != Outcome::Success {
        return Ok(Vec::new());
    }
    let Some(policy) = host
        .config("app_mfa_policy")
        .filter(|p| !p.trim().is_empty())
    else {
        return Ok(Vec::new());
    };
    let targets = event.targets();
    let Some(app) = targets.iter().find(|t| t.kind == "AppInstance") else {
        return Ok(Vec::new());
    };
    let fired_key = format!("fired:app:{}:assign", app.id);
    if host.counter_get(&fired_key, dedupe_ms) > 0 {
        return Ok(Vec::new());
    }
    host.counter_add(&fired_key, dedupe_ms, 1);
    let assign = Action::AssignAppPolicy(AppPolicy {
        app: app.id.clone(),
        policy: policy.clone(),
    });
    let answer = describe(&host.request(&assign));
    let finding = Finding::new(
        Severity::Medium,
        format!(
            "application {} ({}) by {}: its sign-in must require MFA",
            name(app),
            event.kind(),
            actor_name(event)
        ),
        app.id.clone(),
    )
    .detail("event_type", event.kind())
    .detail("app_id", &app.id)
    .detail("app_name", name(app))
    .detail("mfa_policy", &policy)
    .detail("assign_app_policy", answer);
    Ok(vec![finding])
}

/// Works out what the event changed, or `None` if it is not a weakening this
/// rule acts on.
fn recognise<'a>(event: &'a Event<'_>) -> Option<Change<'a>> {
    let kind = event.kind();
    let find = |k: &str| event.targets().iter().find(|t| t.kind == k);
    match kind {
        OKTA_POLICY_UPDATE | OKTA_POLICY_DEACTIVATE | OKTA_POLICY_DELETE => {
            let policy = find("PolicyEntity").or_else(|| find("Policy"))?;
            if !okta_relevant(event, kind == OKTA_POLICY_UPDATE, &[policy]) {
                return None;
            }
            Some(Change {
                subject: policy.id.clone(),
                subject_name: name(policy),
                subject_kind: "policy",
                remedy: match kind {
                    OKTA_POLICY_DELETE => Remedy::EscalateOnly,
                    OKTA_POLICY_UPDATE => Remedy::Restore(policy.id.clone()),
                    _ => Remedy::Activate(policy.id.clone()),
                },
                severity: Severity::High,
                rule: None,
                weakening: None,
                note: None,
            })
        }
        OKTA_RULE_UPDATE | OKTA_RULE_DEACTIVATE | OKTA_RULE_DELETE => {
            let rule = find("PolicyRule");
            let policy = find("PolicyEntity").or_else(|| find("Policy"));
            let named: Vec<&Principal> = rule.into_iter().chain(policy).collect();
            if named.is_empty() {
                return None;
            }
            if !okta_relevant(event, kind == OKTA_RULE_UPDATE, &named) {
                return None;
            }
            // The rule's policy when the event carries it, else the rule.
            let (subject, kind_name) = match policy {
                Some(p) => (p, "policy"),
                None => (rule?, "policy rule"),
            };
            Some(Change {
                subject: subject.id.clone(),
                subject_name: name(subject),
                subject_kind: kind_name,
                // An edited rule is restored with its policy; restoring
                // needs the policy id, so a rule event without its policy
                // falls back to re-activation (which needs a human either
                // way, see the module doc).
                remedy: if kind == OKTA_RULE_UPDATE && policy.is_some() {
                    Remedy::Restore(subject.id.clone())
                } else {
                    Remedy::Activate(subject.id.clone())
                },
                severity: Severity::High,
                rule: rule.filter(|_| policy.is_some()),
                weakening: None,
                note: None,
            })
        }
        OKTA_FACTOR_DEACTIVATE => {
            // The factor is the target when Okta names one, else the
            // `factor` field, else just "the org".
            let factor = event.targets().first();
            let fallback = event.factor();
            let subject = factor.map_or_else(
                || fallback.map_or("org-factor".to_owned(), |f| format!("org-factor:{f}")),
                |f| f.id.clone(),
            );
            let subject_name = factor.map_or_else(
                || fallback.map_or("an org-wide factor".to_owned(), str::to_owned),
                name,
            );
            Some(Change {
                subject,
                subject_name,
                subject_kind: "factor",
                remedy: Remedy::EscalateOnly,
                severity: Severity::Critical,
                rule: None,
                weakening: None,
                note: None,
            })
        }
        ENTRA_CA_UPDATE | ENTRA_CA_DELETE => {
            let policy = find("Policy").or_else(|| event.targets().first())?;
            let restore = Remedy::Restore(policy.id.clone());
            let (weakening, note, remedy) = if kind == ENTRA_CA_UPDATE {
                match ca_update(event) {
                    CaUpdate::SwitchedOff(how) => {
                        (Some(how), None, Remedy::Activate(policy.id.clone()))
                    }
                    CaUpdate::Weakened(how) => (Some(how), None, restore),
                    CaUpdate::NotWeakened => return None,
                    CaUpdate::Unknown => (
                        None,
                        Some(
                            "the policy before or after the update is not in the event: \
                             treated as a weakening (fail safe)",
                        ),
                        restore,
                    ),
                }
            } else {
                (None, None, Remedy::EscalateOnly)
            };
            Some(Change {
                subject: policy.id.clone(),
                subject_name: name(policy),
                subject_kind: "conditional access policy",
                remedy,
                severity: Severity::High,
                rule: None,
                weakening,
                note,
            })
        }
        ENTRA_DISABLE_STRONG_AUTH => {
            let user = event.targets().iter().find(|t| t.kind == "User")?;
            Some(Change {
                subject: user.id.clone(),
                subject_name: user.login.clone().unwrap_or_else(|| name(user)),
                subject_kind: "per-user setting",
                remedy: Remedy::EscalateOnly,
                severity: Severity::Critical,
                rule: None,
                weakening: None,
                note: None,
            })
        }
        _ => None,
    }
}

/// The Okta policy type the event names (`policy-type`), classified.
fn policy_type(event: &Event) -> PolicyType {
    let Some(raw) = event.attribute("policy-type") else {
        return PolicyType::Unknown;
    };
    let t: String = raw
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if UNRELATED_TYPES.iter().any(|u| t.contains(u)) {
        PolicyType::Unrelated
    } else if MFA_TYPES.iter().any(|m| t.contains(m)) {
        PolicyType::Mfa
    } else {
        PolicyType::Unknown
    }
}

/// Whether an Okta policy or policy-rule event is about MFA: by the policy
/// type when the event names a known one, else updates by the name
/// heuristic and deactivations/deletions always (fail safe).
fn okta_relevant(event: &Event, update: bool, named: &[&Principal]) -> bool {
    match policy_type(event) {
        PolicyType::Mfa => true,
        PolicyType::Unrelated => false,
        PolicyType::Unknown => !update || mfa_relevant(named),
    }
}

/// Judges an Entra CA update from the policy's state and grant controls
/// before and after (see the module docs).
fn ca_update(event: &Event) -> CaUpdate {
    let enforced = |s: &str| s.eq_ignore_ascii_case("enabled");
    let demands_mfa = |controls: &str| {
        controls.split(',').map(str::trim).any(|c| {
            c.eq_ignore_ascii_case("mfa") || c.eq_ignore_ascii_case("authenticationStrength")
        })
    };
    let old_state = event.attribute("policy-old-state");
    let new_state = event.attribute("policy-new-state");
    let old_controls = event.attribute("policy-old-grant-controls");
    let new_controls = event.attribute("policy-new-grant-controls");

    if let (Some(old), Some(new)) = (old_state, new_state)
        && enforced(old)
        && !enforced(new)
    {
        return CaUpdate::SwitchedOff(format!("state {old} → {new}: no longer enforced"));
    }
    if let (Some(old), Some(new)) = (old_controls, new_controls) {
        // Dropping MFA only matters for a policy that is (or, not knowing
        // its state, may be) enforced after the update.
        let enforced_after = new_state.is_none_or(enforced);
        if demands_mfa(old) && !demands_mfa(new) && enforced_after {
            return CaUpdate::Weakened(format!(
                "grant controls {old} → {new}: MFA no longer demanded"
            ));
        }
    }
    let states_known = old_state.is_some() && new_state.is_some();
    let controls_known = old_controls.is_some() && new_controls.is_some();
    if states_known && controls_known {
        CaUpdate::NotWeakened
    } else {
        CaUpdate::Unknown
    }
}

/// Whether any of the principals' type or display name mentions MFA.
fn mfa_relevant(targets: &[&Principal]) -> bool {
    targets.iter().any(|t| {
        let text = format!(
            "{} {}",
            t.kind,
            t.display_name.as_deref().unwrap_or_default()
        )
        .to_ascii_lowercase();
        MFA_WORDS.iter().any(|w| text.contains(w))
    })
}

fn name(p: &Principal) -> String {
    p.display_name.clone().unwrap_or_else(|| p.id.clone())
}

/// Who made the change: the actor's login, else its name or id.
fn actor_name(event: &Event) -> String {
    event.actor().map_or_else(
        || "an unknown actor".to_owned(),
        |a| {
            a.login
                .clone()
                .or_else(|| a.display_name.clone())
                .unwrap_or_else(|| a.id.clone())
        },
    )
}

/// Whether the event kind switches something off (deactivates or deletes),
/// where a missing outcome is treated as a success.
fn removes(kind: &str) -> bool {
    matches!(
        kind,
        OKTA_POLICY_DEACTIVATE
            | OKTA_POLICY_DELETE
            | OKTA_RULE_DEACTIVATE
            | OKTA_RULE_DELETE
            | OKTA_FACTOR_DEACTIVATE
            | ENTRA_DISABLE_STRONG_AUTH
            | ENTRA_CA_DELETE
    )
}

fn verb(kind: &str) -> &'static str {
    if kind.contains("delete") || kind.starts_with("Delete") {
        "deleted"
    } else if kind.contains("deactivate") || kind.starts_with("Disable") {
        "disabled"
    } else {
        "changed"
    }
}

export_rule!(MfaPolicyGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{EventBuilder, MockHost};

    const T0: i64 = 1_767_225_600_000;
    const MIN: i64 = 60_000;

    fn target(id: &str, kind: &str, name: &str) -> Principal {
        Principal {
            id: id.into(),
            kind: kind.into(),
            login: None,
            display_name: Some(name.into()),
        }
    }

    fn okta(kind: &str, minute: i64, targets: Vec<Principal>, outcome: Outcome) -> EventData {
        let mut e = EventBuilder::okta(kind)
            .id(&format!("{kind}-{minute}"))
            .actor_user("00uadmin1", "admin@example.com")
            .outcome(outcome)
            .at(T0 + minute * MIN)
            .build();
        e.targets = targets;
        e
    }

    fn sign_on_policy() -> Principal {
        target("00pSignOn1", "PolicyEntity", "Default Sign-On Policy")
    }

    fn value<'a>(f: &'a Finding, key: &str) -> &'a str {
        &f.details.iter().find(|(k, _)| k == key).unwrap().1
    }

    // A deactivated policy: re-activate it, escalate, name the admin.
    #[test]
    fn policy_deactivation_activates_and_escalates() {
        let mut host = MockHost::new();
        let e = okta(
            OKTA_POLICY_DEACTIVATE,
            0,
            vec![sign_on_policy()],
            Outcome::Success,
        );
        let findings = host.feed::<MfaPolicyGuard>(&e).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, "00pSignOn1");
        assert_eq!(findings[0].severity, Severity::High);
        assert!(findings[0].title.contains("admin@example.com"));
        assert_eq!(value(&findings[0], "changed_by"), "admin@example.com");
        assert_eq!(
            host.requested[0],
            Action::ActivatePolicy("00pSignOn1".into())
        );
        let Action::Escalate(m) = &host.requested[1] else {
            panic!("not an escalation")
        };
        assert!(m.summary.contains("admin@example.com"), "{}", m.summary);
        assert_eq!(host.requested.len(), 2);
    }

    // A failed deactivation changed nothing.
    #[test]
    fn failed_change_is_ignored() {
        let mut host = MockHost::new();
        let e = okta(
            OKTA_POLICY_DEACTIVATE,
            0,
            vec![sign_on_policy()],
            Outcome::Failure,
        );
        assert!(host.feed::<MfaPolicyGuard>(&e).unwrap().is_empty());
        assert!(host.requested.is_empty());
    }

    // Near miss: a password-policy edit is not MFA-relevant.
    #[test]
    fn password_policy_update_is_a_near_miss() {
        let mut host = MockHost::new();
        let p = target("00pPwd1", "PolicyEntity", "Default Password Policy");
        let e = okta(OKTA_POLICY_UPDATE, 0, vec![p], Outcome::Success);
        assert!(host.feed::<MfaPolicyGuard>(&e).unwrap().is_empty());
        assert!(host.requested.is_empty());
    }

    // An MFA-looking update fires.
    #[test]
    fn mfa_policy_update_fires() {
        let mut host = MockHost::new();
        let p = target("00pMfa1", "PolicyEntity", "MFA Enrollment Policy");
        let e = okta(OKTA_POLICY_UPDATE, 0, vec![p], Outcome::Success);
        let f = host.feed::<MfaPolicyGuard>(&e).unwrap();
        assert_eq!(f.len(), 1);
        // An edit is undone by restoring the approved policy, not by
        // re-activating it (it is still active).
        assert_eq!(host.requested[0], Action::RestorePolicy("00pMfa1".into()));
        assert!(value(&f[0], "restore_policy").starts_with("dry-run"));
    }

    // A rule edit restores the rule's policy; a rule switched off is
    // re-activated, as before.
    #[test]
    fn rule_update_restores_the_parent_policy() {
        let mut host = MockHost::new();
        let e = okta(
            OKTA_RULE_UPDATE,
            0,
            vec![
                target("0prCatchAll", "PolicyRule", "Catch-all Rule"),
                sign_on_policy(),
            ],
            Outcome::Success,
        );
        host.feed::<MfaPolicyGuard>(&e).unwrap();
        assert_eq!(
            host.requested[0],
            Action::RestorePolicy("00pSignOn1".into())
        );
    }

    // A rule change names the rule's policy when the event carries it.
    #[test]
    fn rule_deactivation_names_the_parent_policy() {
        let mut host = MockHost::new();
        let rule = target("0prRule1", "PolicyRule", "Require MFA off-network");
        let e = okta(
            OKTA_RULE_DEACTIVATE,
            0,
            vec![rule, sign_on_policy()],
            Outcome::Success,
        );
        let f = host.feed::<MfaPolicyGuard>(&e).unwrap();
        assert_eq!(f[0].subject, "00pSignOn1");
        assert_eq!(value(&f[0], "policy_rule_id"), "0prRule1");
        assert_eq!(
            host.requested[0],
            Action::ActivatePolicy("00pSignOn1".into())
        );
    }

    // Without a parent policy the rule id is used.
    #[test]
    fn rule_without_policy_uses_the_rule_id() {
        let mut host = MockHost::new();
        let rule = target("0prRule2", "PolicyRule", "Catch-all");
        let e = okta(OKTA_RULE_DELETE, 0, vec![rule], Outcome::Success);
        let f = host.feed::<MfaPolicyGuard>(&e).unwrap();
        assert_eq!(f[0].subject, "0prRule2");
        assert_eq!(host.requested[0], Action::ActivatePolicy("0prRule2".into()));
    }

    // A deleted policy cannot be re-activated: escalate only.
    #[test]
    fn deleted_policy_only_escalates() {
        let mut host = MockHost::new();
        let e = okta(
            OKTA_POLICY_DELETE,
            0,
            vec![sign_on_policy()],
            Outcome::Success,
        );
        assert_eq!(host.feed::<MfaPolicyGuard>(&e).unwrap().len(), 1);
        assert_eq!(host.requested_kinds(), vec![ActionKind::Escalate]);
    }

    // Org-wide factor deactivation is critical and escalates only.
    #[test]
    fn org_factor_deactivation_is_critical() {
        let mut host = MockHost::new();
        let f = target("okta_verify", "Factor", "Okta Verify");
        let e = okta(OKTA_FACTOR_DEACTIVATE, 0, vec![f], Outcome::Success);
        let f = host.feed::<MfaPolicyGuard>(&e).unwrap();
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(host.requested_kinds(), vec![ActionKind::Escalate]);
    }

    // Entra: disabling per-user MFA is critical, subject the user.
    #[test]
    fn entra_disable_strong_auth_is_critical() {
        let mut host = MockHost::new();
        let mut e = EventBuilder::okta(ENTRA_DISABLE_STRONG_AUTH)
            .actor_user("admin-guid", "it.admin@example.com")
            .target_user("victim-guid", "victim@example.com")
            .outcome(Outcome::Success)
            .at(T0)
            .build();
        e.source = "entra".into();
        let f = host.feed::<MfaPolicyGuard>(&e).unwrap();
        assert_eq!(f[0].subject, "victim-guid");
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(host.requested_kinds(), vec![ActionKind::Escalate]);
    }

    // Entra: a CA policy update re-enables the policy.
    #[test]
    fn entra_ca_update_restores_the_policy() {
        let mut host = MockHost::new();
        let p = target("ca-1", "Policy", "Require MFA for all users");
        let mut e = okta(ENTRA_CA_UPDATE, 0, vec![p], Outcome::Success);
        e.source = "entra".into();
        let f = host.feed::<MfaPolicyGuard>(&e).unwrap();
        assert_eq!(f[0].subject, "ca-1");
        assert_eq!(host.requested[0], Action::RestorePolicy("ca-1".into()));
    }

    fn ca_update(attrs: &[(&str, &str)]) -> EventData {
        let p = target("ca-1", "Policy", "Require MFA for all users");
        let mut e = okta(ENTRA_CA_UPDATE, 0, vec![p], Outcome::Success);
        e.source = "entra".into();
        for (k, v) in attrs {
            e.attributes.push(((*k).into(), (*v).into()));
        }
        e
    }

    // Entra: enforced → disabled or report-only is a weakening, and the
    // finding says what changed.
    #[test]
    fn entra_ca_switched_off_is_a_weakening() {
        for new_state in ["disabled", "enabledForReportingButNotEnforced"] {
            let mut host = MockHost::new();
            let e = ca_update(&[
                ("policy-old-state", "enabled"),
                ("policy-new-state", new_state),
                ("policy-old-grant-controls", "mfa"),
                ("policy-new-grant-controls", "mfa"),
            ]);
            let f = host.feed::<MfaPolicyGuard>(&e).unwrap();
            assert_eq!(f.len(), 1, "{new_state}");
            assert!(value(&f[0], "change").contains(new_state));
            assert!(f[0].details.iter().all(|(k, _)| k != "note"));
            // Switched off is a deactivation: re-activated, no baseline
            // needed.
            assert_eq!(host.requested[0], Action::ActivatePolicy("ca-1".into()));
        }
    }

    // Entra: MFA (or an authentication strength) dropped from an enforced
    // policy's grant controls is a weakening; from a disabled one it is not.
    #[test]
    fn entra_ca_mfa_dropped_is_a_weakening_only_when_enforced() {
        for old in ["mfa,compliantDevice", "authenticationStrength"] {
            let mut host = MockHost::new();
            let e = ca_update(&[
                ("policy-old-state", "enabled"),
                ("policy-new-state", "enabled"),
                ("policy-old-grant-controls", old),
                ("policy-new-grant-controls", "compliantDevice"),
            ]);
            let f = host.feed::<MfaPolicyGuard>(&e).unwrap();
            assert_eq!(f.len(), 1, "{old}");
            assert!(value(&f[0], "change").contains("MFA no longer demanded"));
        }
        let mut host = MockHost::new();
        let e = ca_update(&[
            ("policy-old-state", "disabled"),
            ("policy-new-state", "disabled"),
            ("policy-old-grant-controls", "mfa"),
            ("policy-new-grant-controls", "none"),
        ]);
        assert!(host.feed::<MfaPolicyGuard>(&e).unwrap().is_empty());
    }

    // Entra: a rename, a report-only policy switched on, MFA added: not a
    // weakening, no action, one log line saying why.
    #[test]
    fn entra_ca_strengthening_is_not_acted_on() {
        for (os, ns, oc, nc) in [
            ("enabled", "enabled", "mfa", "mfa"),
            ("enabledForReportingButNotEnforced", "enabled", "mfa", "mfa"),
            ("disabled", "enabled", "none", "mfa"),
            (
                "enabled",
                "enabled",
                "compliantDevice",
                "mfa,compliantDevice",
            ),
        ] {
            let mut host = MockHost::new();
            let e = ca_update(&[
                ("policy-old-state", os),
                ("policy-new-state", ns),
                ("policy-old-grant-controls", oc),
                ("policy-new-grant-controls", nc),
            ]);
            assert!(
                host.feed::<MfaPolicyGuard>(&e).unwrap().is_empty(),
                "{os} {oc}"
            );
            assert!(host.requested.is_empty());
            assert!(host.logs.iter().any(|(_, m)| m.contains("not a weakening")));
        }
    }

    // Entra: without the before and after (or with only half of it showing
    // no weakening) the update is treated as a weakening, with a note.
    #[test]
    fn entra_ca_update_without_the_change_fails_safe() {
        for attrs in [
            vec![],
            vec![
                ("policy-old-state", "enabled"),
                ("policy-new-state", "enabled"),
            ],
        ] {
            let mut host = MockHost::new();
            let f = host.feed::<MfaPolicyGuard>(&ca_update(&attrs)).unwrap();
            assert_eq!(f.len(), 1);
            assert!(value(&f[0], "note").contains("fail safe"));
        }
    }

    // Okta: the policy type decides where it is known: a renamed sign-on
    // policy's update fires, a password policy's deactivation does not.
    #[test]
    fn okta_policy_type_decides_relevance() {
        let mut host = MockHost::new();
        let mut e = okta(
            OKTA_POLICY_UPDATE,
            0,
            vec![target("00pRenamed", "PolicyEntity", "Default Policy")],
            Outcome::Success,
        );
        assert!(host.feed::<MfaPolicyGuard>(&e).unwrap().is_empty());
        e.attributes
            .push(("policy-type".into(), "Okta:SignOn".into()));
        let f = host.feed::<MfaPolicyGuard>(&e).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(value(&f[0], "policy_type"), "Okta:SignOn");

        for t in ["PASSWORD", "Okta:Password", "PROFILE_ENROLLMENT"] {
            let mut host = MockHost::new();
            let mut e = okta(
                OKTA_POLICY_DEACTIVATE,
                0,
                vec![target("00pPw", "PolicyEntity", "Default Password Policy")],
                Outcome::Success,
            );
            e.attributes.push(("policy-type".into(), t.into()));
            assert!(host.feed::<MfaPolicyGuard>(&e).unwrap().is_empty(), "{t}");
            assert!(host.logs.iter().any(|(_, m)| m.contains("not about MFA")));
        }

        // An unknown type: deactivation still fires (fail safe).
        let mut host = MockHost::new();
        let mut e = okta(
            OKTA_POLICY_DEACTIVATE,
            0,
            vec![target("00pX", "PolicyEntity", "Something new")],
            Outcome::Success,
        );
        e.attributes
            .push(("policy-type".into(), "FUTURE_TYPE".into()));
        assert_eq!(host.feed::<MfaPolicyGuard>(&e).unwrap().len(), 1);
    }

    // One finding per policy per dedupe window; fires again after it.
    #[test]
    fn dedupes_per_policy_per_window() {
        let mut host = MockHost::new();
        let events = vec![
            okta(
                OKTA_RULE_UPDATE,
                0,
                vec![sign_on_policy()],
                Outcome::Success,
            ),
            okta(
                OKTA_POLICY_DEACTIVATE,
                5,
                vec![sign_on_policy()],
                Outcome::Success,
            ),
            okta(
                OKTA_POLICY_DEACTIVATE,
                11,
                vec![sign_on_policy()],
                Outcome::Success,
            ),
        ];
        assert_eq!(host.feed_all::<MfaPolicyGuard>(&events).unwrap().len(), 2);
    }

    // Another policy in the same window is its own finding.
    #[test]
    fn policies_are_deduped_separately() {
        let mut host = MockHost::new();
        let other = target("00pMfa2", "PolicyEntity", "MFA Enrollment Policy");
        let events = vec![
            okta(
                OKTA_POLICY_DEACTIVATE,
                0,
                vec![sign_on_policy()],
                Outcome::Success,
            ),
            okta(OKTA_POLICY_DEACTIVATE, 1, vec![other], Outcome::Success),
        ];
        assert_eq!(host.feed_all::<MfaPolicyGuard>(&events).unwrap().len(), 2);
    }

    // dedupe_minutes from config widens the window.
    #[test]
    fn dedupe_window_comes_from_config() {
        let mut host = MockHost::new().with_config("dedupe_minutes", 60);
        let events = vec![
            okta(
                OKTA_POLICY_DEACTIVATE,
                0,
                vec![sign_on_policy()],
                Outcome::Success,
            ),
            okta(
                OKTA_POLICY_DEACTIVATE,
                30,
                vec![sign_on_policy()],
                Outcome::Success,
            ),
        ];
        assert_eq!(host.feed_all::<MfaPolicyGuard>(&events).unwrap().len(), 1);
    }

    // An application connected: with `app_mfa_policy`, ask for it to sign
    // in under that policy, once per window; without it, nothing (the host
    // judges the application itself).
    #[test]
    fn a_connected_application_is_put_under_the_configured_mfa_policy() {
        let app = || target("0oaPayroll", "AppInstance", "Payroll");
        let created = okta(
            "application.lifecycle.create",
            0,
            vec![app()],
            Outcome::Success,
        );
        let mut host = MockHost::new();
        assert!(host.feed::<MfaPolicyGuard>(&created).unwrap().is_empty());
        assert!(host.requested.is_empty());

        let mut host = MockHost::new().with_config("app_mfa_policy", "rstMfa");
        let f = host.feed::<MfaPolicyGuard>(&created).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "0oaPayroll");
        assert_eq!(f[0].severity, Severity::Medium);
        assert_eq!(
            host.requested,
            vec![Action::AssignAppPolicy(AppPolicy {
                app: "0oaPayroll".into(),
                policy: "rstMfa".into()
            })]
        );
        let updated = okta(
            "application.lifecycle.update",
            2,
            vec![app()],
            Outcome::Success,
        );
        assert!(host.feed::<MfaPolicyGuard>(&updated).unwrap().is_empty());
        let failed = okta(
            "application.lifecycle.create",
            30,
            vec![app()],
            Outcome::Failure,
        );
        assert!(host.feed::<MfaPolicyGuard>(&failed).unwrap().is_empty());
    }

    // A bad config value is an error naming the key.
    #[test]
    fn bad_dedupe_minutes_is_an_error_naming_the_key() {
        let mut host = MockHost::new().with_config("dedupe_minutes", "ten");
        let e = okta(
            OKTA_POLICY_DEACTIVATE,
            0,
            vec![sign_on_policy()],
            Outcome::Success,
        );
        let err = host.feed::<MfaPolicyGuard>(&e).unwrap_err();
        assert!(err.contains("dedupe_minutes"), "{err}");
    }

    // A denied activation still escalates and is reported.
    #[test]
    fn denied_activation_is_reported() {
        let mut host = MockHost::new();
        host.granted = Some(vec![ActionKind::Escalate]);
        let e = okta(
            OKTA_POLICY_DEACTIVATE,
            0,
            vec![sign_on_policy()],
            Outcome::Success,
        );
        let f = host.feed::<MfaPolicyGuard>(&e).unwrap();
        assert!(value(&f[0], "activate_policy").starts_with("denied (not-granted)"));
        assert!(value(&f[0], "escalate").starts_with("dry-run"));
    }

    // Fail safe: an org-wide factor or a policy switched off with no
    // outcome recorded is treated as done; an update without one is not.
    #[test]
    fn a_deactivation_with_the_outcome_missing_is_treated_as_a_success() {
        let mut host = MockHost::new();
        let factor = okta(OKTA_FACTOR_DEACTIVATE, 0, vec![], Outcome::Unknown);
        let f = host.feed::<MfaPolicyGuard>(&factor).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(value(&f[0], "outcome").starts_with("missing"));
        let policy = okta(
            OKTA_POLICY_DEACTIVATE,
            1,
            vec![sign_on_policy()],
            Outcome::Unknown,
        );
        assert_eq!(host.feed::<MfaPolicyGuard>(&policy).unwrap().len(), 1);
        assert_eq!(
            host.requested_kinds(),
            vec![
                ActionKind::Escalate,
                ActionKind::ActivatePolicy,
                ActionKind::Escalate
            ]
        );
        let update = okta(
            OKTA_POLICY_UPDATE,
            2,
            vec![target("00pMfa9", "PolicyEntity", "MFA Enrollment Policy")],
            Outcome::Unknown,
        );
        assert!(host.feed::<MfaPolicyGuard>(&update).unwrap().is_empty());
    }

    // Deactivation then deletion of one policy: one finding that
    // re-activates and one that only escalates, in either order.
    #[test]
    fn deactivate_then_delete_gives_the_same_findings_in_either_order() {
        let events = vec![
            okta(
                OKTA_POLICY_DEACTIVATE,
                0,
                vec![sign_on_policy()],
                Outcome::Success,
            ),
            okta(
                OKTA_POLICY_DELETE,
                3,
                vec![sign_on_policy()],
                Outcome::Success,
            ),
        ];
        let mut reversed = events.clone();
        reversed.reverse();
        for order in [events, reversed] {
            let mut host = MockHost::new();
            let f = host.feed_all::<MfaPolicyGuard>(&order).unwrap();
            assert_eq!(f.len(), 2);
            let mut kinds: Vec<String> = host
                .requested_kinds()
                .iter()
                .map(|k| format!("{k:?}"))
                .collect();
            kinds.sort();
            let mut expected: Vec<String> = [
                ActionKind::ActivatePolicy,
                ActionKind::Escalate,
                ActionKind::Escalate,
            ]
            .iter()
            .map(|k| format!("{k:?}"))
            .collect();
            expected.sort();
            assert_eq!(kinds, expected);
        }
    }
}
