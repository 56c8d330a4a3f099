//! Microsoft Entra ID (Graph v1.0 `auditLogs`) → `Event`: sign-in records
//! and directory audits, their nested serde shapes and class rules.

use serde::Deserialize;

use super::raw::{Record, Scalar, Str};
use super::{
    FORMAT_ENTRA_AUDIT, FORMAT_ENTRA_SIGNIN, NormalizeError, Normalizer, owned, parse_time_ms,
};
use crate::bindings::{Event, EventClass, Geo, Outcome, Principal};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraLocation<'a> {
    #[serde(borrow)]
    pub city: Option<Str<'a>>,
    #[serde(borrow)]
    pub country_or_region: Option<Str<'a>>,
    pub geo_coordinates: Option<EntraGeoCoordinates>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EntraGeoCoordinates {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraStatus<'a> {
    /// A number in Graph; `Scalar` so quoted exports still work.
    #[serde(borrow)]
    pub error_code: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub failure_reason: Option<Str<'a>>,
    #[serde(borrow)]
    pub additional_details: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraMfaDetail<'a> {
    #[serde(borrow)]
    pub auth_method: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EntraInitiatedBy<'a> {
    #[serde(borrow)]
    pub user: Option<EntraUserIdentity<'a>>,
    #[serde(borrow)]
    pub app: Option<EntraAppIdentity<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraUserIdentity<'a> {
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow)]
    pub user_principal_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
    /// Where the user acted from (Graph's `initiatedBy.user.ipAddress`).
    #[serde(borrow)]
    pub ip_address: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraAppIdentity<'a> {
    #[serde(borrow)]
    pub service_principal_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub app_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraTarget<'a> {
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub user_principal_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
}

/// Error codes that mean the MFA step itself was involved: 500121 (MFA
/// denied/failed, what a push-fatigue victim's "deny" produces), 50074 and
/// 50076 (strong authentication required).
const MFA_ERROR_CODES: [i64; 3] = [500121, 50074, 50076];

fn time(
    value: &Option<Str>,
    format: &'static str,
    field: &'static str,
) -> Result<i64, NormalizeError> {
    let v = value
        .as_ref()
        .ok_or(NormalizeError::MissingField { format, field })?;
    parse_time_ms(v.as_str()).ok_or_else(|| NormalizeError::BadTime {
        field,
        value: v.as_str().chars().take(64).collect(),
    })
}

/// Normalizes one `/auditLogs/signIns` record.
pub(crate) fn normalize_signin(
    n: &Normalizer,
    r: &Record,
    fallback_id: impl FnOnce() -> String,
) -> Result<Event, NormalizeError> {
    let time = time(&r.created_date_time, FORMAT_ENTRA_SIGNIN, "createdDateTime")?;
    let actor_id = owned(&r.user_id)
        .or_else(|| owned(&r.user_principal_name))
        .ok_or(NormalizeError::MissingField {
            format: FORMAT_ENTRA_SIGNIN,
            field: "userId",
        })?;

    let status = r.status.as_ref();
    let error_code = status.and_then(|s| s.error_code.as_ref());
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

    let geo = r.location.as_ref().and_then(|l| {
        let (lat, lon) = l
            .geo_coordinates
            .as_ref()
            .map_or((None, None), |g| (g.latitude, g.longitude));
        let geo = Geo {
            country: owned(&l.country_or_region),
            city: owned(&l.city),
            lat,
            lon,
        };
        let empty =
            geo.country.is_none() && geo.city.is_none() && geo.lat.is_none() && geo.lon.is_none();
        (!empty).then_some(geo)
    });

    let targets = owned(&r.app_id)
        .map(|id| Principal {
            id,
            kind: "Application".to_owned(),
            login: None,
            display_name: owned(&r.app_display_name),
        })
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

    Ok(Event {
        id: owned(&r.id).unwrap_or_else(fallback_id),
        source: "entra".to_owned(),
        kind: "Sign-in activity".to_owned(),
        class,
        time,
        actor: Some(Principal {
            id: actor_id,
            kind: "User".to_owned(),
            login: owned(&r.user_principal_name),
            display_name: owned(&r.user_display_name),
        }),
        targets,
        outcome,
        // "Other." is Graph's placeholder reason; it carries no information.
        outcome_reason: status
            .and_then(|s| owned(&s.failure_reason))
            .filter(|s| s != "Other."),
        client_ip: owned(&r.ip_address),
        geo,
        user_agent: owned(&r.user_agent),
        factor: r.mfa_detail.as_ref().and_then(|m| owned(&m.auth_method)),
        attributes,
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

/// Normalizes one `/auditLogs/directoryAudits` record.
pub(crate) fn normalize_audit(
    n: &Normalizer,
    r: &Record,
    fallback_id: impl FnOnce() -> String,
) -> Result<Event, NormalizeError> {
    let kind = owned(&r.activity_display_name).ok_or(NormalizeError::MissingField {
        format: FORMAT_ENTRA_AUDIT,
        field: "activityDisplayName",
    })?;
    let time = time(
        &r.activity_date_time,
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
        client_ip: r
            .initiated_by
            .as_ref()
            .and_then(|i| i.user.as_ref())
            .and_then(|u| owned(&u.ip_address)),
        geo: None,
        user_agent: None,
        factor: None,
        attributes,
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
