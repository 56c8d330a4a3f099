//! Microsoft Entra ID (Graph v1.0 `auditLogs`) → `Event`: sign-in records
//! and directory audits, their nested serde shapes and class rules. Records
//! wrapped by Azure Monitor reach here with their wrapper (`Wrapper`), whose
//! top-level fields fill what the Graph record lacks.
//!
//! Sign-in attributes, in priority order: `error-code`, `client-app`,
//! `authentication-requirement`, `conditional-access-status`, `risk-level`,
//! `additional-details`, `interactive`, then the Conditional Access
//! verdict from `appliedConditionalAccessPolicies` (only policies whose
//! result is `success` or `failure`, i.e. enforced; report-only and
//! not-applied ones do not count): `ca-mfa-required` (`true`/`false`: did an
//! enforced policy demand MFA — the `Mfa` grant control or an
//! authentication strength; absent when the record carries no policy
//! list), `ca-mfa-result` (`success`/`failure` of those policies),
//! `ca-grant-controls` (every enforced grant control, comma-separated, e.g.
//! `RequireCompliantDevice`), `ca-mfa-policies` (their names); and
//! `log-category` for Azure Monitor records.
//!
//! Directory audit attributes: `category`, `operation-type`,
//! `logged-by-service`, `log-category`; for a Conditional Access policy
//! change (`modifiedProperties` `ConditionalAccessPolicy`) the policy before
//! and after: `policy-old-state` / `policy-new-state` (`enabled`,
//! `disabled`, `enabledForReportingButNotEnforced`) and
//! `policy-old-grant-controls` / `policy-new-grant-controls` (the built-in
//! controls, e.g. `mfa`, plus `authenticationStrength`; `none`); then every
//! other modified property as `old:<displayName>` / `new:<displayName>`
//! (Graph's raw text, e.g. `old:StrongAuthenticationRequirement` =
//! `[{"State":1}]`), until `max_attributes`.

use serde::Deserialize;

use super::fields::{client_ip, geo};
use super::raw::{EntraCaPolicy, EntraInitiatedBy, EntraTarget, Location, Record, Scalar, Str};
use super::{
    FORMAT_ENTRA_AUDIT, FORMAT_ENTRA_SIGNIN, NormalizeError, Normalizer, Notes, owned,
    parse_time_ms,
};
use crate::model::{Event, EventClass, Outcome, Principal};

/// The kind of a Graph user sign-in (and of Azure Monitor `SignInLogs` and
/// `NonInteractiveUserSignInLogs` records), which rules subscribe to.
pub const KIND_SIGN_IN: &str = "Sign-in activity";
/// Service principal and managed identity sign-ins get kinds of their own:
/// they are not users, and user rules (spray, travel, MFA) must not count
/// them.
pub const KIND_SP_SIGN_IN: &str = "Service principal sign-in activity";
pub const KIND_MI_SIGN_IN: &str = "Managed identity sign-in activity";

/// Who signed in, which decides the actor and the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignInOf {
    User,
    ServicePrincipal,
    ManagedIdentity,
}

/// An Azure Monitor diagnostic record around the Graph record.
pub(crate) struct Wrapper<'r, 'a> {
    pub outer: &'r Record<'a>,
    /// `SignInLogs`, `AuditLogs`, ...
    pub category: &'r str,
}

/// The part of a Conditional Access policy document (a modified property's
/// value) that says whether it is on and what it demands.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaPolicyDoc {
    state: Option<String>,
    grant_controls: Option<CaGrantControls>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaGrantControls {
    built_in_controls: Option<Vec<Option<String>>>,
    authentication_strength: Option<serde::de::IgnoredAny>,
}

/// Error codes that mean the MFA step itself was involved: 500121 (MFA
/// denied/failed, what a push-fatigue victim's "deny" produces), 50074 and
/// 50076 (strong authentication required).
const MFA_ERROR_CODES: [i64; 3] = [500121, 50074, 50076];

fn time(
    value: &Option<Str>,
    fallback: Option<&Str>,
    format: &'static str,
    field: &'static str,
) -> Result<i64, NormalizeError> {
    let v = value
        .as_ref()
        .or(fallback)
        .ok_or(NormalizeError::MissingField { format, field })?;
    parse_time_ms(v.as_str()).ok_or_else(|| NormalizeError::BadTime {
        field,
        value: v.as_str().chars().take(64).collect(),
    })
}

/// Whether an enforced grant control is an MFA demand: Graph writes `Mfa`
/// (`Require multifactor authentication` in the docs' example) and
/// `RequireAuthenticationStrength`.
fn is_mfa_control(c: &str) -> bool {
    let c = c.to_ascii_lowercase();
    c == "mfa" || c.contains("multifactor") || c.contains("authenticationstrength")
}

/// The Conditional Access attributes of a sign-in (see the module doc).
fn ca_attributes(
    n: &Normalizer,
    policies: &[Option<EntraCaPolicy>],
    attrs: &mut Vec<(String, String)>,
) {
    let mut controls: Vec<&str> = Vec::new();
    let mut mfa_names: Vec<&str> = Vec::new();
    let mut mfa_failed = false;
    for p in policies.iter().flatten() {
        let result = p.result.as_ref().map(Str::as_str).unwrap_or("");
        let enforced =
            result.eq_ignore_ascii_case("success") || result.eq_ignore_ascii_case("failure");
        if !enforced {
            continue;
        }
        let mut demands_mfa = false;
        for c in p.enforced_grant_controls.iter().flatten().flatten() {
            let c = c.as_str();
            if c.is_empty() {
                continue;
            }
            demands_mfa |= is_mfa_control(c);
            if !controls.contains(&c) {
                controls.push(c);
            }
        }
        if demands_mfa {
            let name = p
                .display_name
                .as_ref()
                .or(p.id.as_ref())
                .map_or("(unnamed policy)", Str::as_str);
            mfa_names.push(name);
            mfa_failed |= result.eq_ignore_ascii_case("failure");
        }
    }
    let required = !mfa_names.is_empty();
    n.push_attr(
        attrs,
        "ca-mfa-required",
        if required { "true" } else { "false" },
    );
    if required {
        n.push_attr(
            attrs,
            "ca-mfa-result",
            if mfa_failed { "failure" } else { "success" },
        );
    }
    if !controls.is_empty() {
        n.push_attr(attrs, "ca-grant-controls", &controls.join(","));
    }
    if required {
        n.push_attr(attrs, "ca-mfa-policies", &mfa_names.join(","));
    }
}

/// Normalizes one sign-in record: a Graph `/auditLogs/signIns` record, or
/// the `properties` of an Azure Monitor sign-in record (`wrapper`).
pub(crate) fn normalize_signin(
    n: &Normalizer,
    r: &Record,
    wrapper: Option<&Wrapper>,
    of: SignInOf,
    notes: &mut Notes,
    fallback_id: impl FnOnce() -> String,
) -> Result<Event, NormalizeError> {
    let outer = wrapper.map(|w| w.outer);
    let time = time(
        &r.created_date_time,
        outer.and_then(|o| o.time.as_ref()),
        FORMAT_ENTRA_SIGNIN,
        "createdDateTime",
    )?;
    let actor = match of {
        SignInOf::User => {
            let id = owned(&r.user_id)
                .or_else(|| owned(&r.user_principal_name))
                .ok_or(NormalizeError::MissingField {
                    format: FORMAT_ENTRA_SIGNIN,
                    field: "userId",
                })?;
            Principal {
                id,
                kind: "User".to_owned(),
                login: owned(&r.user_principal_name),
                display_name: owned(&r.user_display_name),
            }
        }
        SignInOf::ServicePrincipal | SignInOf::ManagedIdentity => {
            let id = owned(&r.service_principal_id)
                .or_else(|| owned(&r.app_id))
                .ok_or(NormalizeError::MissingField {
                    format: FORMAT_ENTRA_SIGNIN,
                    field: "servicePrincipalId",
                })?;
            Principal {
                id,
                kind: if of == SignInOf::ServicePrincipal {
                    "ServicePrincipal"
                } else {
                    "ManagedIdentity"
                }
                .to_owned(),
                login: None,
                display_name: owned(&r.service_principal_name)
                    .or_else(|| owned(&r.app_display_name)),
            }
        }
    };

    let status = r.status.as_ref();
    // Azure Monitor repeats the error code as `resultType` ("0" = success).
    let error_code = status
        .and_then(|s| s.error_code.as_ref())
        .or_else(|| outer.and_then(|o| o.result_type.as_ref()));
    let code = error_code.and_then(Scalar::as_i64);
    let class = match code {
        Some(c) if MFA_ERROR_CODES.contains(&c) => EventClass::MfaChallenge,
        _ => EventClass::Authentication,
    };
    let outcome = match code {
        Some(0) => Outcome::Success,
        Some(_) => Outcome::Failure,
        // A status we cannot read says nothing either way.
        None => Outcome::Unknown,
    };

    let (loc, code_only) = match &r.location {
        Some(Location::Object(l)) => (Some(l), None),
        Some(Location::Code(c)) => (None, Some(c)),
        None => (None, None),
    };
    // The wrapper's `location` is the country code of the sign-in.
    let outer_country = || match outer.and_then(|o| o.location.as_ref()) {
        Some(Location::Code(c)) => owned(&Some(c.clone())),
        _ => None,
    };
    let geo = {
        let (lat, lon) = loc
            .and_then(|l| l.geo_coordinates.as_ref())
            .map_or((None, None), |g| (g.latitude, g.longitude));
        geo(
            loc.and_then(|l| owned(&l.country_or_region))
                .or_else(|| code_only.and_then(|c| owned(&Some(c.clone()))))
                .or_else(outer_country),
            loc.and_then(|l| owned(&l.city)),
            lat,
            lon,
            "location.geoCoordinates",
            notes,
        )
    };

    let targets = match of {
        SignInOf::User => owned(&r.app_id).map(|id| Principal {
            id,
            kind: "Application".to_owned(),
            login: None,
            display_name: owned(&r.app_display_name),
        }),
        // The application is the actor; what it signed in to is the target.
        _ => owned(&r.resource_id).map(|id| Principal {
            id,
            kind: "Resource".to_owned(),
            login: None,
            display_name: owned(&r.resource_display_name),
        }),
    }
    .into_iter()
    .collect();

    let mut attributes = Vec::new();
    if let Some(c) = error_code {
        n.push_attr(&mut attributes, "error-code", &c.render());
    }
    for (key, val) in [
        ("client-app", &r.client_app_used),
        ("authentication-requirement", &r.authentication_requirement),
        ("conditional-access-status", &r.conditional_access_status),
        ("risk-level", &r.risk_level_during_sign_in),
    ] {
        if let Some(v) = owned(val) {
            n.push_attr(&mut attributes, key, &v);
        }
    }
    if let Some(v) = status.and_then(|s| owned(&s.additional_details)) {
        n.push_attr(&mut attributes, "additional-details", &v);
    }
    let interactive = r
        .is_interactive
        .or(match (wrapper.map(|w| w.category), of) {
            (_, SignInOf::ServicePrincipal | SignInOf::ManagedIdentity) => Some(false),
            (Some(c), _) if c.eq_ignore_ascii_case("SignInLogs") => Some(true),
            (Some(c), _) if c.eq_ignore_ascii_case("NonInteractiveUserSignInLogs") => Some(false),
            _ => None,
        });
    if let Some(i) = interactive {
        n.push_attr(
            &mut attributes,
            "interactive",
            if i { "true" } else { "false" },
        );
    }
    if let Some(policies) = &r.applied_conditional_access_policies {
        ca_attributes(n, policies, &mut attributes);
    }
    if let Some(w) = wrapper {
        n.push_attr(&mut attributes, "log-category", w.category);
    }

    let client_ip = client_ip(&r.ip_address, "ipAddress", notes).or_else(|| {
        outer.and_then(|o| client_ip(&o.caller_ip_address, "callerIpAddress", &mut notes.outer()))
    });

    Ok(Event {
        id: owned(&r.id).unwrap_or_else(fallback_id),
        source: "entra".to_owned(),
        kind: match of {
            SignInOf::User => KIND_SIGN_IN,
            SignInOf::ServicePrincipal => KIND_SP_SIGN_IN,
            SignInOf::ManagedIdentity => KIND_MI_SIGN_IN,
        }
        .to_owned(),
        class,
        time,
        actor: Some(actor),
        targets,
        outcome,
        // "Other." is Graph's placeholder reason; it carries no information.
        outcome_reason: status
            .and_then(|s| owned(&s.failure_reason))
            .filter(|s| s != "Other."),
        client_ip,
        geo,
        user_agent: owned(&r.user_agent),
        factor: r.mfa_detail.as_ref().and_then(|m| owned(&m.auth_method)),
        attributes,
        // Set by the caller, which knows where the record sits in its line.
        raw: None,
    })
}

/// Classifies an audit activity by keywords, most specific first: Graph has
/// hundreds of activity names and adds more, so a table would always lag.
pub(crate) fn classify_audit(activity: &str) -> EventClass {
    let a = activity.to_ascii_lowercase();
    if a.contains("conditional access policy")
        || a.contains("strong authentication")
        || a.contains("policy")
    {
        EventClass::PolicyChange
    } else if a.contains("security info") || a.contains("authentication method") {
        EventClass::FactorChange
    } else if a.contains("user") {
        EventClass::AccountChange
    } else {
        EventClass::Other
    }
}

fn audit_actor(by: &EntraInitiatedBy) -> Option<Principal> {
    // Graph sends both keys with one of them null (or all-null fields).
    if let Some(u) = &by.user
        && let Some(id) = owned(&u.id).or_else(|| owned(&u.user_principal_name))
    {
        return Some(Principal {
            id,
            kind: "User".to_owned(),
            login: owned(&u.user_principal_name),
            display_name: owned(&u.display_name),
        });
    }
    let a = by.app.as_ref()?;
    let id = owned(&a.service_principal_id).or_else(|| owned(&a.app_id))?;
    Some(Principal {
        id,
        kind: "Application".to_owned(),
        login: None,
        display_name: owned(&a.display_name),
    })
}

fn audit_target(t: &EntraTarget) -> Option<Principal> {
    // Policies and groups have no UPN; fall back to the display name rather
    // than drop a target a rule might key on.
    let id = owned(&t.id)
        .or_else(|| owned(&t.user_principal_name))
        .or_else(|| owned(&t.display_name))?;
    Some(Principal {
        id,
        kind: owned(&t.kind).unwrap_or_else(|| "Unknown".to_owned()),
        login: owned(&t.user_principal_name),
        display_name: owned(&t.display_name),
    })
}

/// `enabled` / `mfa,compliantDevice` / `none` from a policy document.
fn policy_state_and_controls(v: &Scalar) -> Option<(Option<String>, String)> {
    let text = match v {
        Scalar::Str(s) => s.as_ref(),
        Scalar::Json(j) => j.as_str(),
        _ => return None,
    };
    let doc: CaPolicyDoc = serde_json::from_str(text).ok()?;
    let mut controls: Vec<String> = Vec::new();
    if let Some(g) = &doc.grant_controls {
        controls.extend(g.built_in_controls.iter().flatten().flatten().cloned());
        if g.authentication_strength.is_some() {
            controls.push("authenticationStrength".to_owned());
        }
    }
    let controls = if controls.is_empty() {
        "none".to_owned()
    } else {
        controls.join(",")
    };
    Some((doc.state, controls))
}

/// Graph's bookkeeping property listing the names of the others.
const INCLUDED_UPDATED_PROPERTIES: &str = "Included Updated Properties";

fn modified_attributes(n: &Normalizer, r: &Record, attrs: &mut Vec<(String, String)>) {
    let props = || {
        r.target_resources
            .iter()
            .flatten()
            .flatten()
            .flat_map(|t| t.modified_properties.iter().flatten().flatten())
    };
    // A Conditional Access policy's before and after, summarized first: the
    // documents themselves are long and would be cut.
    if let Some(p) = props().find(|p| {
        p.display_name
            .as_ref()
            .is_some_and(|d| d.as_str() == "ConditionalAccessPolicy")
    }) {
        for (side, value) in [("old", &p.old_value), ("new", &p.new_value)] {
            if let Some((state, controls)) = value.as_ref().and_then(policy_state_and_controls) {
                if let Some(state) = state {
                    n.push_attr(attrs, &format!("policy-{side}-state"), &state);
                }
                n.push_attr(attrs, &format!("policy-{side}-grant-controls"), &controls);
            }
        }
    }
    for p in props() {
        let Some(name) = owned(&p.display_name) else {
            continue;
        };
        if name == INCLUDED_UPDATED_PROPERTIES {
            continue;
        }
        for (side, value) in [("old", &p.old_value), ("new", &p.new_value)] {
            let key = format!("{side}:{name}");
            if attrs.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let value = value.as_ref().map(Scalar::render).unwrap_or_default();
            n.push_attr(attrs, &key, &value);
        }
    }
}

/// Normalizes one directory audit: a Graph `/auditLogs/directoryAudits`
/// record, or the `properties` of an Azure Monitor `AuditLogs` record.
pub(crate) fn normalize_audit(
    n: &Normalizer,
    r: &Record,
    wrapper: Option<&Wrapper>,
    notes: &mut Notes,
    fallback_id: impl FnOnce() -> String,
) -> Result<Event, NormalizeError> {
    let outer = wrapper.map(|w| w.outer);
    let kind = owned(&r.activity_display_name)
        .or_else(|| outer.and_then(|o| owned(&o.operation_name)))
        .ok_or(NormalizeError::MissingField {
            format: FORMAT_ENTRA_AUDIT,
            field: "activityDisplayName",
        })?;
    let time = time(
        &r.activity_date_time,
        outer.and_then(|o| o.time.as_ref()),
        FORMAT_ENTRA_AUDIT,
        "activityDateTime",
    )?;

    let outcome = match r.result.as_ref().map(Str::as_str) {
        Some(s) if s.eq_ignore_ascii_case("success") => Outcome::Success,
        Some(s) if s.eq_ignore_ascii_case("failure") => Outcome::Failure,
        _ => Outcome::Unknown,
    };

    let mut attributes = Vec::new();
    for (key, val) in [
        ("category", &r.category),
        ("operation-type", &r.operation_type),
        ("logged-by-service", &r.logged_by_service),
    ] {
        if let Some(v) = owned(val) {
            n.push_attr(&mut attributes, key, &v);
        }
    }
    if let Some(w) = wrapper {
        n.push_attr(&mut attributes, "log-category", w.category);
    }
    modified_attributes(n, r, &mut attributes);

    let client_ip = r
        .initiated_by
        .as_ref()
        .and_then(|i| i.user.as_ref())
        .and_then(|u| client_ip(&u.ip_address, "initiatedBy.user.ipAddress", notes))
        .or_else(|| {
            outer.and_then(|o| {
                client_ip(&o.caller_ip_address, "callerIpAddress", &mut notes.outer())
            })
        });

    Ok(Event {
        id: owned(&r.id).unwrap_or_else(fallback_id),
        source: "entra".to_owned(),
        class: classify_audit(&kind),
        kind,
        time,
        actor: r.initiated_by.as_ref().and_then(audit_actor),
        targets: r
            .target_resources
            .iter()
            .flatten()
            .flatten()
            .filter_map(audit_target)
            .collect(),
        outcome,
        outcome_reason: owned(&r.result_reason),
        client_ip,
        geo: None,
        user_agent: None,
        factor: None,
        attributes,
        // Set by the caller, which knows where the record sits in its line.
        raw: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Keyword rules, case-insensitive, policy beating "user".
    #[test]
    fn audit_classes() {
        use EventClass::*;
        for (a, c) in [
            ("Disable Strong Authentication", PolicyChange),
            ("Update conditional access policy", PolicyChange),
            ("Update policy", PolicyChange),
            ("User registered security info", FactorChange),
            ("Admin deleted authentication method", FactorChange),
            ("Update user", AccountChange),
            ("Add member to group", Other),
        ] {
            assert_eq!(classify_audit(a), c, "{a}");
        }
    }
}
