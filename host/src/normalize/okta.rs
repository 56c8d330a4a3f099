//! Okta System Log LogEvent → `Event`: the nested serde shapes, the
//! eventType → `EventClass` table and the attribute selection. Event Hook
//! envelopes reach here one element at a time (see `mod.rs`).

use serde::Deserialize;

use super::raw::{Record, Scalar, Str};
use super::{FORMAT_OKTA, NormalizeError, Normalizer, owned, parse_time_ms};
use crate::bindings::{Event, EventClass, Geo, Outcome, Principal};

/// `actor` and each `target[]` element.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaActor<'a> {
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub alternate_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaClient<'a> {
    #[serde(borrow)]
    pub ip_address: Option<Str<'a>>,
    #[serde(borrow)]
    pub user_agent: Option<OktaUserAgent<'a>>,
    #[serde(borrow)]
    pub geographical_context: Option<OktaGeoContext<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaUserAgent<'a> {
    #[serde(borrow)]
    pub raw_user_agent: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaGeoContext<'a> {
    #[serde(borrow)]
    pub city: Option<Str<'a>>,
    #[serde(borrow)]
    pub country: Option<Str<'a>>,
    pub geolocation: Option<OktaGeolocation>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OktaGeolocation {
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OktaOutcome<'a> {
    #[serde(borrow)]
    pub result: Option<Str<'a>>,
    #[serde(borrow)]
    pub reason: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaAuthContext<'a> {
    #[serde(borrow)]
    pub external_session_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub credential_type: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaSecurityContext<'a> {
    #[serde(borrow)]
    pub as_org: Option<Str<'a>>,
    pub is_proxy: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaDebugContext<'a> {
    #[serde(borrow)]
    pub debug_data: Option<OktaDebugData<'a>>,
}

/// Only the keys rules use; Okta sends dozens more (requestUri, dtHash, ...)
/// which serde skips. Values are `Scalar` because their JSON type varies.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaDebugData<'a> {
    #[serde(borrow)]
    pub factor: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub threat_suspected: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub risk: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub behaviors: Option<Scalar<'a>>,
}

/// eventType → class. Exact entries and prefixes (ending in '.'); the first
/// match wins, so specific entries precede the prefixes that cover them.
const CLASS_TABLE: &[(&str, EventClass)] = &[
    // A session starting is a sign-in; the rest of the session lifecycle
    // (end, expire, clear, context change, impersonation) is `Session`.
    ("user.session.start", EventClass::Authentication),
    ("user.session.access_admin_app", EventClass::Authentication),
    ("user.session.", EventClass::Session),
    // The MFA step of a sign-in is where denied pushes also surface.
    ("user.authentication.auth_via_mfa", EventClass::MfaChallenge),
    ("user.authentication.", EventClass::Authentication),
    ("system.push.", EventClass::MfaChallenge),
    (
        "system.sms.send_factor_verify_message",
        EventClass::MfaChallenge,
    ),
    (
        "system.voice.send_factor_verify_call",
        EventClass::MfaChallenge,
    ),
    ("user.mfa.okta_verify.", EventClass::MfaChallenge),
    ("user.mfa.attempt_bypass", EventClass::MfaChallenge),
    ("user.mfa.factor.", EventClass::FactorChange),
    // Org-wide factor settings weaken MFA for everyone: a policy change.
    ("system.mfa.factor.", EventClass::PolicyChange),
    ("policy.", EventClass::PolicyChange),
    ("zone.", EventClass::PolicyChange),
    ("user.account.", EventClass::AccountChange),
    ("user.lifecycle.", EventClass::AccountChange),
];

/// Classifies an Okta eventType; unknown types are `Other`, never an error,
/// because Okta adds event types continually.
pub(crate) fn classify(event_type: &str) -> EventClass {
    CLASS_TABLE
        .iter()
        .find(|(pat, _)| {
            if pat.ends_with('.') {
                event_type.starts_with(pat)
            } else {
                event_type == *pat
            }
        })
        .map_or(EventClass::Other, |(_, c)| *c)
}

fn outcome(result: Option<&str>) -> Outcome {
    match result {
        Some(r) if r.eq_ignore_ascii_case("SUCCESS") || r.eq_ignore_ascii_case("ALLOW") => {
            Outcome::Success
        }
        Some(r) if r.eq_ignore_ascii_case("FAILURE") || r.eq_ignore_ascii_case("DENY") => {
            Outcome::Failure
        }
        _ => Outcome::Unknown,
    }
}

/// A principal needs some identity; `id` falls back to `alternateId` (a
/// login) so a partially redacted actor is still attributable.
fn principal(a: &OktaActor) -> Option<Principal> {
    let id = owned(&a.id).or_else(|| owned(&a.alternate_id))?;
    Some(Principal {
        id,
        kind: owned(&a.kind).unwrap_or_else(|| "Unknown".to_owned()),
        login: owned(&a.alternate_id),
        display_name: owned(&a.display_name),
    })
}

fn scalar_string(s: &Option<Scalar>) -> Option<String> {
    s.as_ref().map(Scalar::render).filter(|s| !s.is_empty())
}

/// Normalizes one LogEvent. `fallback_id` is only called when `uuid` is
/// missing, so the sha256 is not computed on the hot path.
pub(crate) fn normalize(
    n: &Normalizer,
    r: &Record,
    fallback_id: impl FnOnce() -> String,
) -> Result<Event, NormalizeError> {
    let kind = owned(&r.event_type).ok_or(NormalizeError::MissingField {
        format: FORMAT_OKTA,
        field: "eventType",
    })?;
    let published = r.published.as_ref().ok_or(NormalizeError::MissingField {
        format: FORMAT_OKTA,
        field: "published",
    })?;
    let time = parse_time_ms(published.as_str()).ok_or_else(|| NormalizeError::BadTime {
        field: "published",
        value: published.as_str().chars().take(64).collect(),
    })?;

    let client = r.client.as_ref();
    let geo = client
        .and_then(|c| c.geographical_context.as_ref())
        .and_then(|g| {
            let (lat, lon) = g
                .geolocation
                .as_ref()
                .map_or((None, None), |l| (l.lat, l.lon));
            let geo = Geo {
                country: owned(&g.country),
                city: owned(&g.city),
                lat,
                lon,
            };
            let empty = geo.country.is_none()
                && geo.city.is_none()
                && geo.lat.is_none()
                && geo.lon.is_none();
            (!empty).then_some(geo)
        });

    let debug = r.debug_context.as_ref().and_then(|d| d.debug_data.as_ref());
    let auth = r.authentication_context.as_ref();
    let sec = r.security_context.as_ref();
    let result = r
        .outcome
        .as_ref()
        .and_then(|o| o.result.as_ref())
        .map(Str::as_str);

    let factor = debug
        .and_then(|d| scalar_string(&d.factor))
        .or_else(|| auth.and_then(|a| owned(&a.credential_type)));

    // Order is priority order: if `max_attributes` is small, the tail goes.
    let mut attributes = Vec::new();
    if let Some(v) = result {
        n.push_attr(&mut attributes, "outcome-result", v);
    }
    if let Some(p) = sec.and_then(|s| s.is_proxy) {
        n.push_attr(
            &mut attributes,
            "is-proxy",
            if p { "true" } else { "false" },
        );
    }
    if let Some(v) = auth.and_then(|a| owned(&a.external_session_id)) {
        n.push_attr(&mut attributes, "session-id", &v);
    }
    if let Some(d) = debug {
        for (key, val) in [
            ("threat-suspected", &d.threat_suspected),
            ("risk", &d.risk),
            ("behaviors", &d.behaviors),
        ] {
            if let Some(v) = scalar_string(val) {
                n.push_attr(&mut attributes, key, &v);
            }
        }
    }
    if let Some(v) = sec.and_then(|s| owned(&s.as_org)) {
        n.push_attr(&mut attributes, "as-org", &v);
    }
    if let Some(v) = owned(&r.severity) {
        n.push_attr(&mut attributes, "severity", &v);
    }

    Ok(Event {
        id: owned(&r.uuid).unwrap_or_else(fallback_id),
        source: "okta".to_owned(),
        class: classify(&kind),
        kind,
        time,
        actor: r.actor.as_ref().and_then(principal),
        targets: r
            .target
            .iter()
            .flatten()
            .flatten()
            .filter_map(principal)
            .collect(),
        outcome: outcome(result),
        outcome_reason: r.outcome.as_ref().and_then(|o| owned(&o.reason)),
        client_ip: client.and_then(|c| owned(&c.ip_address)),
        geo,
        user_agent: client
            .and_then(|c| c.user_agent.as_ref())
            .and_then(|u| owned(&u.raw_user_agent)),
        factor,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each row of the table, plus unknown types falling through to Other.
    #[test]
    fn class_table() {
        use EventClass::*;
        for (t, c) in [
            ("user.session.start", Authentication),
            ("user.session.end", Session),
            ("user.session.expire", Session),
            ("user.authentication.sso", Authentication),
            ("user.authentication.verify", Authentication),
            ("user.authentication.auth_via_mfa", MfaChallenge),
            ("system.push.send_factor_verify_push", MfaChallenge),
            ("user.mfa.okta_verify.deny_push", MfaChallenge),
            ("user.mfa.attempt_bypass", MfaChallenge),
            ("user.mfa.factor.activate", FactorChange),
            ("user.mfa.factor.reset_all", FactorChange),
            ("system.mfa.factor.deactivate", PolicyChange),
            ("policy.rule.update", PolicyChange),
            ("policy.lifecycle.delete", PolicyChange),
            ("zone.deactivate", PolicyChange),
            ("user.account.lock", AccountChange),
            ("user.lifecycle.suspend", AccountChange),
            ("security.threat.detected", Other),
            ("user.sessionx", Other),
            ("", Other),
        ] {
            assert_eq!(classify(t), c, "{t}");
        }
    }

    // Outcome results are case-insensitive; CHALLENGE/SKIPPED are Unknown.
    #[test]
    fn outcome_mapping() {
        assert_eq!(outcome(Some("SUCCESS")), Outcome::Success);
        assert_eq!(outcome(Some("ALLOW")), Outcome::Success);
        assert_eq!(outcome(Some("failure")), Outcome::Failure);
        assert_eq!(outcome(Some("DENY")), Outcome::Failure);
        assert_eq!(outcome(Some("CHALLENGE")), Outcome::Unknown);
        assert_eq!(outcome(None), Outcome::Unknown);
    }
}
