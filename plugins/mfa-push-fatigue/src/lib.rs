//! `mfa-push-fatigue`: a user who is being push-bombed.
//!
//! An attacker with a stolen password sends MFA push after push hoping the
//! user accepts one. When one user denies at least `threshold` pushes
//! (default 5) within `window_minutes` (default 10), the rule reports a
//! finding, asks to suspend the user for `suspend_minutes` (default 30) so
//! the pushes stop, and escalates to the on-call.
//!
//! Signals: Okta `user.mfa.okta_verify.deny_push`; Okta
//! `user.authentication.auth_via_mfa` failures with factor
//! `OKTA_VERIFY_PUSH` (Okta logs a denial under both, so the two are counted
//! separately and the larger count is used, never the sum); Entra sign-ins
//! failing with error 500121 where the user declined the request.
//!
//! It fires once per user per window: after firing, further denials in the
//! same window add to the count but raise nothing new.
//!
//! Worse than the burst is a user who gives in: a *successful* MFA for that
//! user (Okta `user.authentication.auth_via_mfa` success, Entra sign-in
//! success) within `window_minutes` after a burst fired means the attacker
//! is probably in. The rule then asks to revoke the user's sessions and
//! escalates at critical severity (once per burst).
//!
//! Config: `threshold` (5), `window_minutes` (10), `suspend_minutes` (30).

use vigil_sdk::*;

pub struct MfaPushFatigue;

const DENY_PUSH: &str = "user.mfa.okta_verify.deny_push";
const AUTH_VIA_MFA: &str = "user.authentication.auth_via_mfa";
const ENTRA_SIGN_IN: &str = "Sign-in activity";
const MINUTE_MS: u64 = 60_000;

impl Rule for MfaPushFatigue {
    fn metadata() -> Metadata {
        Metadata {
            id: "mfa-push-fatigue".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Suspends a user who denies many MFA pushes in a short window \
                          (push bombing) and escalates."
                .into(),
            subscribes: vec![DENY_PUSH.into(), AUTH_VIA_MFA.into(), ENTRA_SIGN_IN.into()],
            actions: vec![
                ActionKind::SuspendUser,
                ActionKind::RevokeSessions,
                ActionKind::Escalate,
            ],
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        if is_mfa_success(event) {
            return accepted_after_burst(host, event);
        }
        let Some(signal) = denial_signal(event) else {
            return Ok(Vec::new());
        };
        let Some(user) = event.subject_user() else {
            host.log(
                Level::Warn,
                &format!("denied push {} names no user", event.id),
            );
            return Ok(Vec::new());
        };
        let threshold = host.config_u64("threshold", 5)?;
        let window_ms = host.config_u64("window_minutes", 10)? * MINUTE_MS;
        let suspend_secs = host.config_u64("suspend_minutes", 30)? * 60;

        let denials = host.counter_add(&format!("{signal}:{}", user.id), window_ms, 1);
        let other = if signal == "okta-deny" {
            host.counter_get(&format!("okta-mfa-fail:{}", user.id), window_ms)
        } else if signal == "okta-mfa-fail" {
            host.counter_get(&format!("okta-deny:{}", user.id), window_ms)
        } else {
            0
        };
        let denials = denials.max(other);
        if denials < threshold {
            return Ok(Vec::new());
        }
        let fired_key = format!("fired:{}", user.id);
        if host.get(&fired_key).is_some() {
            return Ok(Vec::new());
        }
        host.set(&fired_key, &event.id, Some(window_ms));
        // Watch for the user giving in during the next window.
        host.set(
            &format!("burst:{}", user.id),
            &denials.to_string(),
            Some(window_ms),
        );

        let login = user.login.clone().unwrap_or_else(|| user.id.clone());
        let mut finding = Finding::new(
            Severity::High,
            format!("MFA push fatigue: {denials} denied pushes for {login}"),
            user.id.clone(),
        )
        .detail("login", &login)
        .detail("denied_pushes", denials)
        .detail("window_minutes", window_ms / MINUTE_MS);
        if let Some(ip) = &event.client_ip {
            finding = finding.detail("last_client_ip", ip);
        }

        let suspend = Action::SuspendUser(SuspendUser {
            user: user.id.clone(),
            duration_secs: Some(suspend_secs),
        });
        finding = finding.detail("suspend_user", describe(&host.request(&suspend)));
        let escalate = Action::Escalate(Message {
            severity: Severity::High,
            summary: format!(
                "{login} denied {denials} MFA pushes within {} minutes: likely push bombing",
                window_ms / MINUTE_MS
            ),
            details: finding.details.clone(),
        });
        finding = finding.detail("escalate", describe(&host.request(&escalate)));
        Ok(vec![finding])
    }
}

/// A successful MFA for a user whose burst fired within the window: revoke
/// the sessions the attacker may now hold, and escalate as critical.
fn accepted_after_burst(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
    let Some(user) = event.subject_user() else {
        return Ok(Vec::new());
    };
    let burst_key = format!("burst:{}", user.id);
    let Some(denials) = host.get(&burst_key) else {
        return Ok(Vec::new());
    };
    // Once per burst.
    host.delete(&burst_key);
    let login = user.login.clone().unwrap_or_else(|| user.id.clone());
    let mut finding = Finding::new(
        Severity::Critical,
        format!("MFA push accepted after push bombing: {login}"),
        user.id.clone(),
    )
    .detail("login", &login)
    .detail("denied_pushes_before", &denials)
    .detail("accepted_event", &event.id);
    if let Some(ip) = &event.client_ip {
        finding = finding.detail("client_ip", ip);
    }
    let revoke = Action::RevokeSessions(user.id.clone());
    finding = finding.detail("revoke_sessions", describe(&host.request(&revoke)));
    let escalate = Action::Escalate(Message {
        severity: Severity::Critical,
        summary: format!(
            "{login} accepted an MFA request right after denying {denials}: the attacker is likely signed in"
        ),
        details: finding.details.clone(),
    });
    finding = finding.detail("escalate", describe(&host.request(&escalate)));
    Ok(vec![finding])
}

/// A successful MFA verification or sign-in.
fn is_mfa_success(event: &Event) -> bool {
    event.outcome == Outcome::Success && (event.kind == AUTH_VIA_MFA || event.kind == ENTRA_SIGN_IN)
}

/// Which counter a denied push belongs to, or `None` if the event is not one.
fn denial_signal(event: &Event) -> Option<&'static str> {
    if event.kind == DENY_PUSH {
        return Some("okta-deny");
    }
    if event.outcome != Outcome::Failure {
        return None;
    }
    if event.kind == AUTH_VIA_MFA && event.factor.as_deref() == Some("OKTA_VERIFY_PUSH") {
        return Some("okta-mfa-fail");
    }
    let declined = event
        .attribute("additional-details")
        .is_some_and(|d| d.to_ascii_lowercase().contains("declined"));
    if event.kind == ENTRA_SIGN_IN && event.attribute("error-code") == Some("500121") && declined {
        return Some("entra-deny");
    }
    None
}

export_rule!(MfaPushFatigue);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{EventBuilder, MockHost};

    const MIN: i64 = 60_000;

    /// An Okta Verify push event of `kind` for `user`, `minute` into the test.
    fn push(kind: &str, outcome: Outcome, user: &str, minute: i64) -> Event {
        EventBuilder::okta(kind)
            .id(&format!("{kind}-{user}-{minute}"))
            .actor_user(user, &format!("{user}@example.com"))
            .outcome(outcome)
            .factor("OKTA_VERIFY_PUSH")
            .at(1_700_000_000_000 + minute * MIN)
            .build()
    }

    fn deny(user: &str, minute: i64) -> Event {
        push(DENY_PUSH, Outcome::Failure, user, minute)
    }

    #[test]
    fn five_denials_in_ten_minutes_suspend_and_escalate() {
        let mut host = MockHost::new();
        let events: Vec<Event> = (0..5).map(|m| deny("u1", m)).collect();
        let findings = host.feed_all::<MfaPushFatigue>(&events).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, "u1");
        assert_eq!(
            host.requested,
            vec![
                Action::SuspendUser(SuspendUser {
                    user: "u1".into(),
                    duration_secs: Some(1800)
                }),
                host.requested[1].clone(),
            ]
        );
        assert_eq!(host.requested[1].kind(), ActionKind::Escalate);
    }

    #[test]
    fn four_denials_are_a_near_miss() {
        let mut host = MockHost::new();
        let events: Vec<Event> = (0..4).map(|m| deny("u1", m)).collect();
        assert!(host.feed_all::<MfaPushFatigue>(&events).unwrap().is_empty());
        assert!(host.requested.is_empty());
    }

    #[test]
    fn denials_spread_over_hours_do_not_fire() {
        let mut host = MockHost::new();
        let events: Vec<Event> = (0..8).map(|i| deny("u1", i * 11)).collect();
        assert!(host.feed_all::<MfaPushFatigue>(&events).unwrap().is_empty());
    }

    #[test]
    fn fires_once_per_user_per_window() {
        let mut host = MockHost::new();
        let events: Vec<Event> = (0..9).map(|m| deny("u1", m)).collect();
        assert_eq!(host.feed_all::<MfaPushFatigue>(&events).unwrap().len(), 1);
        assert_eq!(host.requested.len(), 2);
    }

    #[test]
    fn users_are_counted_separately() {
        let mut host = MockHost::new();
        let mut events: Vec<Event> = (0..3).map(|m| deny("u1", m)).collect();
        events.extend((0..3).map(|m| deny("u2", m)));
        assert!(host.feed_all::<MfaPushFatigue>(&events).unwrap().is_empty());
    }

    #[test]
    fn the_same_denial_logged_twice_by_okta_is_not_double_counted() {
        // Okta logs each denial as deny_push and as a failed auth_via_mfa.
        let mut host = MockHost::new();
        for m in 0..3 {
            host.feed::<MfaPushFatigue>(&deny("u1", m)).unwrap();
            let twin = push(AUTH_VIA_MFA, Outcome::Failure, "u1", m);
            host.feed::<MfaPushFatigue>(&twin).unwrap();
        }
        assert!(host.requested.is_empty());
    }

    fn accept(user: &str, minute: i64) -> Event {
        push(AUTH_VIA_MFA, Outcome::Success, user, minute)
    }

    #[test]
    fn accepting_a_push_after_a_burst_revokes_sessions_once() {
        let mut host = MockHost::new();
        let mut events: Vec<Event> = (0..5).map(|m| deny("u1", m)).collect();
        events.push(accept("u1", 7));
        events.push(accept("u1", 8));
        let findings = host.feed_all::<MfaPushFatigue>(&events).unwrap();
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[1].severity, Severity::Critical);
        assert_eq!(
            host.requested_kinds(),
            vec![
                ActionKind::SuspendUser,
                ActionKind::Escalate,
                ActionKind::RevokeSessions,
                ActionKind::Escalate
            ]
        );
    }

    #[test]
    fn an_accepted_push_long_after_the_burst_or_without_one_is_normal() {
        let mut host = MockHost::new();
        let mut events: Vec<Event> = (0..5).map(|m| deny("u1", m)).collect();
        // 20 minutes after the burst fired (window 10 minutes).
        events.push(accept("u1", 25));
        events.push(accept("u2", 3));
        let findings = host.feed_all::<MfaPushFatigue>(&events).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(host.requested.len(), 2);
    }

    #[test]
    fn threshold_comes_from_config() {
        let mut host = MockHost::new().with_config("threshold", 3);
        let events: Vec<Event> = (0..3).map(|m| deny("u1", m)).collect();
        assert_eq!(host.feed_all::<MfaPushFatigue>(&events).unwrap().len(), 1);
    }

    #[test]
    fn a_bad_threshold_is_an_error_naming_the_key() {
        let mut host = MockHost::new().with_config("threshold", "five");
        let err = host.feed::<MfaPushFatigue>(&deny("u1", 0)).unwrap_err();
        assert!(err.contains("threshold"), "{err}");
    }

    #[test]
    fn a_denied_suspend_is_reported_in_the_finding() {
        let mut host = MockHost::new();
        host.granted = Some(vec![ActionKind::Escalate]);
        let events: Vec<Event> = (0..5).map(|m| deny("u1", m)).collect();
        let findings = host.feed_all::<MfaPushFatigue>(&events).unwrap();
        let suspend = findings[0]
            .details
            .iter()
            .find(|(k, _)| k == "suspend_user")
            .unwrap();
        assert!(
            suspend.1.starts_with("denied (not-granted)"),
            "{}",
            suspend.1
        );
    }
}
