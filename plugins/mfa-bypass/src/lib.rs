//! `mfa-bypass`: a successful sign-in that skipped MFA where MFA was
//! required.
//!
//! A password alone should not be enough. When a sign-in gets through with a
//! single factor where MFA is demanded, or through a legacy protocol that
//! cannot do MFA at all, the rule reports a finding, asks to revoke the
//! user's sessions (and OAuth tokens) and escalates to the on-call.
//!
//! Signals:
//! - Okta `user.mfa.attempt_bypass`: fires on any outcome except an explicit
//!   failure (Okta logs SUCCESS, UNKNOWN or no result for attempts that were
//!   not stopped).
//! - Entra `Sign-in activity` with error code 0 (success) and
//!   `authentication-requirement` = `singleFactorAuthentication`, where MFA
//!   was required. "Required" is evidenced by either
//!   (a) an enforced conditional access policy that demanded MFA:
//!   `ca-mfa-required` = `true` (normalized from
//!   `appliedConditionalAccessPolicies`: a policy with result `success` or
//!   `failure` whose grant controls include `Mfa` or an authentication
//!   strength). `ca-mfa-required` = `false` means the policies that applied
//!   demanded something else (a compliant device, terms of use), which is
//!   not MFA and not evidence. Only when the record carries no usable
//!   policy list (none, or an empty one beside a status that says a policy
//!   applied) does the rule fall back to `conditional-access-status` = `success` or
//!   `failure` (some policy applied; only when `ca_applied_means_required`
//!   is 1); or
//!   (b) the same user got error 50074 or 50076 ("strong authentication
//!   required") within the last `required_memory_hours` — Entra demanded
//!   MFA from this user, and now a sign-in succeeded without it.
//! - Entra `Sign-in activity` with error code 0 through a legacy client
//!   (`client-app`, case-insensitive): `IMAP4`, `POP3`, `SMTP`,
//!   `Authenticated SMTP`, `Exchange ActiveSync`, `Other clients`,
//!   `MAPI Over HTTP`, `Exchange Web Services`, `Outlook Anywhere (RPC over
//!   HTTP)`, `Offline Address Book`, `AutoDiscover`, `Exchange Online
//!   PowerShell`, `Reporting Web Services`, `Universal Outlook`. Any success
//!   fires: these protocols cannot carry MFA.
//!
//! Not covered, honestly: Okta `user.session.start` without an MFA step. The
//! normalized event has `factor` (debugData.factor, else
//! authenticationContext.credentialType) but neither
//! `authenticationStep` nor what the sign-on policy required, and Okta logs
//! the MFA step as separate events; a `PASSWORD` session start is the normal
//! first half of every MFA sign-in. So Okta sessions are not judged, only
//! explicit `attempt_bypass` events.
//!
//! Actions: `revoke-sessions` on the user, then `escalate`.
//!
//! Event time, whatever the arrival order: the 50074/50076 memory is a
//! value, so only a sign-in at or after the demand sees it; when the
//! single-factor success is delivered before the demand that precedes it,
//! the demand finds it (a `single:` counter around the demand with none
//! before it) and reports it. The dedupe is a counter and looks both ways.
//!
//! Config keys:
//! - `dedupe_minutes` (default 60): one finding per user per this many
//!   minutes on either side in event time.
//! - `required_memory_hours` (default 24, at most 168): how long a 50074 /
//!   50076 for a user counts as "MFA is required for this user".
//! - `ca_applied_means_required` (default 1): for records without
//!   `appliedConditionalAccessPolicies` only, 1 treats a conditional access
//!   status of success/failure on a single-factor success as MFA-required;
//!   0 relies on the 50074/50076 memory only.
//!
//! Blind spots: a record without `appliedConditionalAccessPolicies` (some
//! exports drop it) falls back to the status heuristic, so with
//! `ca_applied_means_required = 1` a single-factor success under a CA policy
//! that requires only a compliant device also fires there; with 0, a user
//! whose first sign-in in the memory window already bypassed MFA is missed.
//! Per-user MFA (legacy "Enable Strong Authentication") demands are only
//! seen through 50074/50076.
//! Non-interactive sign-ins are only seen if the connector ingests them.

use vigil_sdk::*;

pub struct MfaBypass;

const OKTA_ATTEMPT_BYPASS: &str = "user.mfa.attempt_bypass";
const ENTRA_SIGN_IN: &str = "Sign-in activity";
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
/// The host's longest TTL (7 days).
const MAX_MEMORY_HOURS: u64 = 7 * 24;

/// `clientAppUsed` values of legacy (basic) authentication, lowercase.
const LEGACY_CLIENTS: &[&str] = &[
    "imap4",
    "imap",
    "pop3",
    "pop",
    "smtp",
    "authenticated smtp",
    "exchange activesync",
    "other clients",
    "mapi over http",
    "exchange web services",
    "outlook anywhere (rpc over http)",
    "offline address book",
    "autodiscover",
    "exchange online powershell",
    "reporting web services",
    "universal outlook",
];

/// Error codes meaning "strong authentication required".
const MFA_REQUIRED_CODES: &[&str] = &["50074", "50076"];

impl Rule for MfaBypass {
    fn metadata() -> Metadata {
        Metadata {
            id: "mfa-bypass".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Revokes sessions and escalates when a sign-in succeeds without MFA \
                          where MFA is required, or through a legacy protocol."
                .into(),
            subscribes: vec![OKTA_ATTEMPT_BYPASS.into(), ENTRA_SIGN_IN.into()],
            actions: vec![ActionKind::RevokeSessions, ActionKind::Escalate],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::SubjectUser,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let dedupe_ms = host.config_u64("dedupe_minutes", 60)? * MINUTE_MS;
        let memory_hours = host.config_u64("required_memory_hours", 24)?;
        if memory_hours > MAX_MEMORY_HOURS {
            return Err(format!(
                "config `required_memory_hours` must be at most {MAX_MEMORY_HOURS}, got {memory_hours}"
            ));
        }
        let ca_means_required = match host.config_u64("ca_applied_means_required", 1)? {
            0 => false,
            1 => true,
            v => {
                return Err(format!(
                    "config `ca_applied_means_required` must be 0 or 1, got {v}"
                ));
            }
        };

        let Some(user) = event.subject_user() else {
            host.log(
                Level::Warn,
                &format!("{} {} names no user", event.kind(), event.id()),
            );
            return Ok(Vec::new());
        };
        let required_key = format!("mfa-required:{}", user.id);
        let single_key = format!("single:{}", user.id);
        let memory_ms = memory_hours * HOUR_MS;

        let reason = if event.kind() == OKTA_ATTEMPT_BYPASS {
            if event.outcome() == Outcome::Failure {
                return Ok(Vec::new());
            }
            "Okta logged an attempt to bypass MFA that was not blocked".to_owned()
        } else if event.kind() == ENTRA_SIGN_IN {
            let code = event.attribute("error-code");
            if let Some(code) = code.filter(|c| MFA_REQUIRED_CODES.contains(c)) {
                host.set(&required_key, code, Some(memory_ms));
                // A single-factor success after this demand that was
                // delivered before it: one within the memory around the
                // demand, none within the memory before it.
                if host.counter_get(&single_key, memory_ms) == 0 || host.get(&single_key).is_some()
                {
                    return Ok(Vec::new());
                }
                format!(
                    "single-factor sign-in within {memory_hours} h after Entra required strong \
                     authentication (error {code}) for this user (the sign-in was delivered first)"
                )
            } else {
                if event.outcome() != Outcome::Success {
                    return Ok(Vec::new());
                }
                let client = event.attribute("client-app").unwrap_or_default();
                let single = event
                    .attribute("authentication-requirement")
                    .is_some_and(|r| r.eq_ignore_ascii_case("singleFactorAuthentication"));
                // `true`/`false` when the record lists the applied CA
                // policies; absent when it does not.
                let ca_mfa_required = event.attribute("ca-mfa-required");
                // The policy list explains the CA status when it names an
                // MFA demand or some other enforced grant control; an empty
                // list beside a `success` status was stripped by an export.
                let ca_list_explains = ca_mfa_required == Some("true")
                    || (ca_mfa_required.is_some()
                        && event.attribute("ca-grant-controls").is_some());
                let ca = event
                    .attribute("conditional-access-status")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if LEGACY_CLIENTS.contains(&client.to_ascii_lowercase().as_str()) {
                    format!(
                        "successful sign-in through legacy protocol {client}, which cannot do MFA"
                    )
                } else if single && ca_mfa_required == Some("true") {
                    format!(
                        "single-factor sign-in although an enforced conditional access policy \
                         demanded MFA ({}, result {})",
                        event.attribute("ca-mfa-policies").unwrap_or("unnamed"),
                        event.attribute("ca-mfa-result").unwrap_or("unknown"),
                    )
                } else if single
                    && !ca_list_explains
                    && ca_means_required
                    && (ca == "success" || ca == "failure")
                {
                    // No policy list in the record: a policy applied, and
                    // the operator chose to read that as an MFA demand.
                    format!(
                        "single-factor sign-in although conditional access applied (status {ca})"
                    )
                } else if single && let Some(code) = host.get(&required_key) {
                    format!(
                        "single-factor sign-in although Entra required strong authentication \
                         (error {code}) for this user within {memory_hours} h"
                    )
                } else {
                    if single {
                        // Not a bypass as far as this sign-in can tell; a
                        // demand before it may still arrive (see above).
                        host.counter_add(&single_key, memory_ms, 1);
                        host.set(&single_key, event.id(), Some(memory_ms));
                    }
                    return Ok(Vec::new());
                }
            }
        } else {
            return Ok(Vec::new());
        };

        // A counter, not a value: a finding for a later event holds back
        // one for an earlier event delivered after it, and the reverse.
        let fired_key = format!("fired:{}", user.id);
        if host.counter_get(&fired_key, dedupe_ms) > 0 {
            return Ok(Vec::new());
        }
        host.counter_add(&fired_key, dedupe_ms, 1);

        let login = user.login.clone().unwrap_or_else(|| user.id.clone());
        let mut finding = Finding::new(
            Severity::High,
            format!("MFA bypass: sign-in without MFA for {login}"),
            user.id.clone(),
        )
        .detail("login", &login)
        .detail("event_type", event.kind())
        .detail("reason", &reason);
        for (key, val) in [
            ("client_ip", event.client_ip()),
            ("country", event.geo().and_then(|g| g.country.as_deref())),
            ("factor", event.factor()),
            ("outcome_result", event.attribute("outcome-result")),
            ("outcome_reason", event.outcome_reason()),
            ("client_app", event.attribute("client-app")),
            (
                "authentication_requirement",
                event.attribute("authentication-requirement"),
            ),
            (
                "conditional_access_status",
                event.attribute("conditional-access-status"),
            ),
            ("ca_mfa_policies", event.attribute("ca-mfa-policies")),
            ("ca_grant_controls", event.attribute("ca-grant-controls")),
            (
                "application",
                event
                    .targets()
                    .iter()
                    .find(|t| t.kind == "Application")
                    .and_then(|t| t.display_name.as_deref()),
            ),
        ] {
            if let Some(v) = val {
                finding = finding.detail(key, v);
            }
        }

        let revoke = Action::RevokeSessions(user.id.clone());
        finding = finding.detail("revoke_sessions", describe(&host.request(&revoke)));
        let escalate = Action::Escalate(Message {
            severity: Severity::High,
            summary: format!("{login} signed in without MFA: {reason}"),
            details: finding.details.clone(),
        });
        finding = finding.detail("escalate", describe(&host.request(&escalate)));
        Ok(vec![finding])
    }
}

export_rule!(MfaBypass);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{EventBuilder, MockHost};

    const T0: i64 = 1_767_225_600_000;
    const MIN: i64 = 60_000;

    fn bypass(user: &str, minute: i64, outcome: Outcome) -> EventData {
        EventBuilder::okta(OKTA_ATTEMPT_BYPASS)
            .id(&format!("bypass-{user}-{minute}"))
            .actor_user(user, &format!("{user}@example.com"))
            .outcome(outcome)
            .at(T0 + minute * MIN)
            .build()
    }

    fn sign_in(user: &str, minute: i64, code: &str, attrs: &[(&str, &str)]) -> EventData {
        let mut b = EventBuilder::okta(ENTRA_SIGN_IN)
            .id(&format!("signin-{user}-{minute}"))
            .actor_user(user, &format!("{user}@example.com"))
            .outcome(if code == "0" {
                Outcome::Success
            } else {
                Outcome::Failure
            })
            .attribute("error-code", code)
            .at(T0 + minute * MIN);
        for (k, v) in attrs {
            b = b.attribute(k, v);
        }
        let mut e = b.build();
        e.source = "entra".into();
        e
    }

    fn value<'a>(f: &'a Finding, key: &str) -> &'a str {
        &f.details.iter().find(|(k, _)| k == key).unwrap().1
    }

    fn single(ca: &str) -> Vec<(&'static str, &str)> {
        vec![
            ("client-app", "Browser"),
            ("authentication-requirement", "singleFactorAuthentication"),
            ("conditional-access-status", ca),
        ]
    }

    // Okta attempt_bypass with SUCCESS: revoke and escalate.
    #[test]
    fn okta_attempt_bypass_revokes_and_escalates() {
        let mut host = MockHost::new();
        let f = host
            .feed::<MfaBypass>(&bypass("u1", 0, Outcome::Success))
            .unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "u1");
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(host.requested[0], Action::RevokeSessions("u1".into()));
        assert_eq!(host.requested[1].kind(), ActionKind::Escalate);
    }

    // An unknown outcome still counts; an explicit failure does not.
    #[test]
    fn okta_attempt_bypass_outcomes() {
        let mut host = MockHost::new();
        assert_eq!(
            host.feed::<MfaBypass>(&bypass("u1", 0, Outcome::Unknown))
                .unwrap()
                .len(),
            1
        );
        assert!(
            host.feed::<MfaBypass>(&bypass("u2", 0, Outcome::Failure))
                .unwrap()
                .is_empty()
        );
    }

    // Entra legacy protocol success fires whatever the requirement says.
    #[test]
    fn entra_legacy_protocol_success_fires() {
        let mut host = MockHost::new();
        let e = sign_in(
            "u1",
            0,
            "0",
            &[
                ("client-app", "IMAP4"),
                ("conditional-access-status", "notApplied"),
            ],
        );
        let f = host.feed::<MfaBypass>(&e).unwrap();
        assert_eq!(f.len(), 1);
        assert!(
            f[0].details
                .iter()
                .any(|(k, v)| k == "client_app" && v == "IMAP4")
        );
    }

    // Near miss: a failed legacy sign-in (password spray against IMAP) does not.
    #[test]
    fn failed_legacy_sign_in_is_a_near_miss() {
        let mut host = MockHost::new();
        let e = sign_in("u1", 0, "50126", &[("client-app", "IMAP4")]);
        assert!(host.feed::<MfaBypass>(&e).unwrap().is_empty());
    }

    // Single factor under an applied CA policy fires.
    #[test]
    fn single_factor_under_conditional_access_fires() {
        let mut host = MockHost::new();
        assert_eq!(
            host.feed::<MfaBypass>(&sign_in("u1", 0, "0", &single("success")))
                .unwrap()
                .len(),
            1
        );
    }

    // Near miss: single factor with no CA and no earlier MFA demand.
    #[test]
    fn single_factor_without_requirement_is_a_near_miss() {
        let mut host = MockHost::new();
        assert!(
            host.feed::<MfaBypass>(&sign_in("u1", 0, "0", &single("notApplied")))
                .unwrap()
                .is_empty()
        );
    }

    // A 50074 earlier makes a later single-factor success a bypass.
    #[test]
    fn strong_auth_required_then_single_factor_success_fires() {
        let mut host = MockHost::new();
        let events = vec![
            sign_in("u1", 0, "50074", &[("client-app", "Browser")]),
            sign_in("u1", 30, "0", &single("notApplied")),
        ];
        assert_eq!(host.feed_all::<MfaBypass>(&events).unwrap().len(), 1);
    }

    // The 50074 memory expires after required_memory_hours.
    #[test]
    fn strong_auth_memory_expires() {
        let mut host = MockHost::new().with_config("required_memory_hours", 1);
        let events = vec![
            sign_in("u1", 0, "50074", &[]),
            sign_in("u1", 61, "0", &single("notApplied")),
        ];
        assert!(host.feed_all::<MfaBypass>(&events).unwrap().is_empty());
    }

    // An MFA sign-in is benign.
    #[test]
    fn multi_factor_success_is_benign() {
        let mut host = MockHost::new();
        let e = sign_in(
            "u1",
            0,
            "0",
            &[
                ("client-app", "Browser"),
                ("authentication-requirement", "multiFactorAuthentication"),
                ("conditional-access-status", "success"),
            ],
        );
        assert!(host.feed::<MfaBypass>(&e).unwrap().is_empty());
    }

    // ca_applied_means_required = 0 turns the CA-status signal off.
    #[test]
    fn ca_signal_can_be_switched_off() {
        let mut host = MockHost::new().with_config("ca_applied_means_required", 0);
        assert!(
            host.feed::<MfaBypass>(&sign_in("u1", 0, "0", &single("success")))
                .unwrap()
                .is_empty()
        );
    }

    // The applied-policy verdict decides when the record carries it: a
    // policy that demanded MFA fires even with the CA-status heuristic off;
    // one that demanded only a compliant device does not, whatever the
    // heuristic says.
    #[test]
    fn applied_policies_tell_an_mfa_demand_from_a_device_demand() {
        let mut demanded = single("success");
        demanded.extend([
            ("ca-mfa-required", "true"),
            ("ca-mfa-result", "success"),
            ("ca-mfa-policies", "MFA for all"),
        ]);
        let mut host = MockHost::new().with_config("ca_applied_means_required", 0);
        let f = host
            .feed::<MfaBypass>(&sign_in("u1", 0, "0", &demanded))
            .unwrap();
        assert_eq!(f.len(), 1);
        assert!(value(&f[0], "reason").contains("MFA for all"));

        let mut device_only = single("success");
        device_only.extend([
            ("ca-mfa-required", "false"),
            ("ca-grant-controls", "RequireCompliantDevice"),
        ]);
        let mut host = MockHost::new();
        assert!(
            host.feed::<MfaBypass>(&sign_in("u2", 0, "0", &device_only))
                .unwrap()
                .is_empty()
        );
        // A 50074 demand for that user still makes the next one a bypass.
        host.feed::<MfaBypass>(&sign_in("u2", 5, "50074", &[]))
            .unwrap();
        let f = host
            .feed::<MfaBypass>(&sign_in("u2", 10, "0", &device_only))
            .unwrap();
        assert_eq!(f.len(), 1);
        assert!(value(&f[0], "reason").contains("50074"));
    }

    // One finding per user per hour; again after the window.
    #[test]
    fn dedupes_per_user_per_window() {
        let mut host = MockHost::new();
        let events = vec![
            bypass("u1", 0, Outcome::Success),
            sign_in("u1", 10, "0", &[("client-app", "POP3")]),
            bypass("u2", 20, Outcome::Success),
            bypass("u1", 61, Outcome::Success),
        ];
        let f = host.feed_all::<MfaBypass>(&events).unwrap();
        let subjects: Vec<&str> = f.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(subjects, vec!["u1", "u2", "u1"]);
        assert_eq!(host.requested.len(), 6);
    }

    // dedupe_minutes from config.
    #[test]
    fn dedupe_window_comes_from_config() {
        let mut host = MockHost::new().with_config("dedupe_minutes", 5);
        let events = vec![
            bypass("u1", 0, Outcome::Success),
            bypass("u1", 6, Outcome::Success),
        ];
        assert_eq!(host.feed_all::<MfaBypass>(&events).unwrap().len(), 2);
    }

    // Bad config values are errors naming the key.
    #[test]
    fn bad_config_is_an_error_naming_the_key() {
        for (key, val) in [
            ("dedupe_minutes", "sixty"),
            ("required_memory_hours", "500"),
            ("ca_applied_means_required", "2"),
        ] {
            let mut host = MockHost::new().with_config(key, val);
            let err = host
                .feed::<MfaBypass>(&bypass("u1", 0, Outcome::Success))
                .unwrap_err();
            assert!(err.contains(key), "{err}");
        }
    }

    // A denied revoke is reported and the escalation still goes out.
    #[test]
    fn denied_revoke_is_reported() {
        let mut host = MockHost::new();
        host.granted = Some(vec![ActionKind::Escalate]);
        let f = host
            .feed::<MfaBypass>(&bypass("u1", 0, Outcome::Success))
            .unwrap();
        let revoke = &f[0]
            .details
            .iter()
            .find(|(k, _)| k == "revoke_sessions")
            .unwrap()
            .1;
        assert!(revoke.starts_with("denied (not-granted)"), "{revoke}");
        assert_eq!(host.requested.len(), 2);
    }

    // The single-factor success delivered before the MFA demand that
    // precedes it is still judged a bypass, once.
    #[test]
    fn a_demand_delivered_after_the_bypass_still_finds_it() {
        let events = vec![
            sign_in("u1", 0, "50074", &[("client-app", "Browser")]),
            sign_in("u1", 30, "0", &single("notApplied")),
        ];
        let mut reversed = events.clone();
        reversed.reverse();
        for order in [events, reversed] {
            let mut host = MockHost::new();
            let f = host.feed_all::<MfaBypass>(&order).unwrap();
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].subject, "u1");
            assert_eq!(
                host.requested_kinds(),
                vec![ActionKind::RevokeSessions, ActionKind::Escalate]
            );
        }
        // A single-factor sign-in *before* the demand is not a bypass, in
        // either order.
        let before = vec![
            sign_in("u1", 0, "0", &single("notApplied")),
            sign_in("u1", 30, "50074", &[("client-app", "Browser")]),
        ];
        let mut reversed = before.clone();
        reversed.reverse();
        for order in [before, reversed] {
            let mut host = MockHost::new();
            assert!(host.feed_all::<MfaBypass>(&order).unwrap().is_empty());
        }
    }
}
