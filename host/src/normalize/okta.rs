//! Okta System Log LogEvent → `Event`: the nested serde shapes, the
//! eventType → `EventClass` table and the attribute selection. Event Hook
//! envelopes reach here one element at a time (see `mod.rs`).
//!
//! Attributes, in priority order (the tail goes first when
//! `max_attributes` is reached): `outcome-result`, `policy-type`
//! (`target[].detailEntry.policyType`, e.g. `OktaMfaEnroll`, `Okta:SignOn`),
//! `is-proxy`, `session-id`, `threat-suspected`, `risk`, `risk-level`
//! (`low`/`medium`/`high`, from `debugData.logOnlySecurityData` or
//! `debugData.risk`), `behaviors`, `authentication-step`, `credential-type`,
//! `credential-provider`, `as-org`, `severity`.

use serde::Deserialize;

use super::fields::{client_ip, geo};
use super::raw::{OktaActor, OktaDebugData, Record, Scalar, Str};
use super::{FORMAT_OKTA, NormalizeError, Normalizer, Notes, owned, parse_time_ms};
use crate::model::{Event, EventClass, Outcome, Principal};

/// The part of `logOnlySecurityData` (or of an expanded `risk`) read here.
#[derive(Debug, Deserialize)]
struct LogOnlySecurityData<'a> {
    #[serde(borrow)]
    risk: Option<RiskObject<'a>>,
}

#[derive(Debug, Deserialize)]
struct RiskObject<'a> {
    #[serde(borrow)]
    level: Option<Str<'a>>,
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
    // The sign-on policy judging a sign-in is part of the sign-in, not a
    // change to the policy.
    ("policy.evaluate_sign_on", EventClass::Authentication),
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

/// `low`/`medium`/`high` from `logOnlySecurityData` (a JSON string), else
/// from `risk`, which Okta writes as `{level=LOW}` or `{reasons=..,
/// level=HIGH}` (or a SIEM as a JSON object). Lower-cased, the vocabulary
/// of Entra's `riskLevelDuringSignIn`.
fn risk_level(d: &OktaDebugData, notes: &mut Notes) -> Option<String> {
    let from_json = |json: &str| -> Result<Option<String>, String> {
        let doc: LogOnlySecurityData = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Ok(doc.risk.and_then(|r| owned(&r.level)))
    };
    let level = match &d.log_only_security_data {
        Some(Scalar::Str(s)) if !s.trim().is_empty() => match from_json(s) {
            Ok(l) => l,
            Err(e) => {
                notes.drop_field(
                    "debugContext.debugData.logOnlySecurityData",
                    format!("not a JSON document: {e}"),
                );
                None
            }
        },
        Some(Scalar::Json(j)) => from_json(j).ok().flatten(),
        _ => None,
    };
    let level = level.or_else(|| match &d.risk {
        Some(Scalar::Str(s)) => {
            let at = s.find("level=")? + "level=".len();
            let rest = &s[at..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            Some(rest[..end].trim().to_owned()).filter(|l| !l.is_empty())
        }
        Some(Scalar::Json(j)) => serde_json::from_str::<RiskObject>(j)
            .ok()
            .and_then(|r| owned(&r.level)),
        _ => None,
    })?;
    Some(level.to_ascii_lowercase())
}

/// Normalizes one LogEvent. `fallback_id` is only called when `uuid` is
/// missing, so the sha256 is not computed on the hot path.
pub(crate) fn normalize(
    n: &Normalizer,
    r: &Record,
    notes: &mut Notes,
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
            geo(
                owned(&g.country),
                owned(&g.city),
                lat,
                lon,
                "client.geographicalContext.geolocation",
                notes,
            )
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

    let targets: Vec<&OktaActor> = r.target.iter().flatten().flatten().collect();

    // Order is priority order: if `max_attributes` is small, the tail goes.
    let mut attributes = Vec::new();
    if let Some(v) = result {
        n.push_attr(&mut attributes, "outcome-result", v);
    }
    if let Some(v) = targets
        .iter()
        .find_map(|t| t.detail_entry.as_ref().and_then(|d| owned(&d.policy_type)))
    {
        n.push_attr(&mut attributes, "policy-type", &v);
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
        for (key, val) in [("threat-suspected", &d.threat_suspected), ("risk", &d.risk)] {
            if let Some(v) = scalar_string(val) {
                n.push_attr(&mut attributes, key, &v);
            }
        }
        if let Some(v) = risk_level(d, notes) {
            n.push_attr(&mut attributes, "risk-level", &v);
        }
        if let Some(v) = scalar_string(&d.behaviors) {
            n.push_attr(&mut attributes, "behaviors", &v);
        }
    }
    if let Some(a) = auth {
        if let Some(v) = scalar_string(&a.authentication_step) {
            n.push_attr(&mut attributes, "authentication-step", &v);
        }
        for (key, val) in [
            ("credential-type", &a.credential_type),
            ("credential-provider", &a.credential_provider),
        ] {
            if let Some(v) = owned(val) {
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
        targets: targets.into_iter().filter_map(principal).collect(),
        outcome: outcome(result),
        outcome_reason: r.outcome.as_ref().and_then(|o| owned(&o.reason)),
        client_ip: client.and_then(|c| client_ip(&c.ip_address, "client.ipAddress", notes)),
        geo,
        user_agent: client
            .and_then(|c| c.user_agent.as_ref())
            .and_then(|u| owned(&u.raw_user_agent)),
        factor,
        attributes,
        // Set by the caller, which knows where the record sits in its line.
        raw: None,
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
            ("policy.evaluate_sign_on", Authentication),
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
