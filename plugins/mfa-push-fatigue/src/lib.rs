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
//! It fires once per user per burst: after firing, further denials within
//! `window_minutes` on either side add to the count but raise nothing new.
//!
//! Worse than the burst is a user who gives in: a *successful* MFA for that
//! user (Okta `user.authentication.auth_via_mfa` success, Entra sign-in
//! success) that comes after at least one denial of a burst — within
//! `window_minutes` of a denial before it, with at least `threshold`
//! denials in a window around it — means the attacker is probably in. The
//! rule then asks to revoke the user's sessions and escalates at critical
//! severity (once per burst).
//!
//! Event time, whatever the arrival order: the denial counts are the host's
//! windows *around* each event, so a burst delivered newest-first is seen
//! whole by its last arrival, and "already fired" is remembered in counters
//! (`fired:`, `accepted-fired:`), which look both ways in time, so a later
//! event's firing holds back an earlier one that arrives after it. "A
//! denial before this success" is a value (`denied:`), which an event only
//! sees when it was set at or before its own time. The acceptance is judged
//! from both sides: by the success (denials arrived first), and by the
//! denial that completes a burst when a success within the window after it
//! arrived first (`success:` counter around the denial, and no success in
//! the window before it). A success that lies both after and before
//! denials of the same burst and arrives before its earlier denials is
//! judged only from its own side.
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
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::SubjectUser,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let threshold = host.config_u64("threshold", 5)?;
        let window_ms = host.config_u64("window_minutes", 10)? * MINUTE_MS;
        let suspend_secs = host.config_u64("suspend_minutes", 30)? * 60;
        if is_mfa_success(event) {
            return accepted_after_burst(host, event, threshold, window_ms);
        }
        let Some(signal) = denial_signal(event) else {
            return Ok(Vec::new());
        };
        let Some(user) = event.subject_user() else {
            host.log(
                Level::Warn,
                &format!("denied push {} names no user", event.id()),
            );
            return Ok(Vec::new());
        };
        let user = user.clone();
        host.set(&format!("denied:{}", user.id), event.id(), Some(window_ms));
        host.counter_add(&format!("{signal}:{}", user.id), window_ms, 1);
        let denials = denial_count(host, &user.id, window_ms);
        if denials < threshold {
            return Ok(Vec::new());
        }
        let mut findings = Vec::new();
        let fired_key = format!("fired:{}", user.id);
        if host.counter_get(&fired_key, window_ms) == 0 {
            host.counter_add(&fired_key, window_ms, 1);
            findings.push(burst_finding(
                host,
                event,
                &user,
                denials,
                window_ms,
                suspend_secs,
            ));
        }
        // A success that arrived before this denial but lies after it: no
        // success in the window before this denial, one in the window
        // around it.
        let success_key = format!("success:{}", user.id);
        if host.counter_get(&success_key, window_ms) > 0
            && host.get(&success_key).is_none()
            && host.counter_get(&format!("accepted-fired:{}", user.id), window_ms) == 0
        {
            host.counter_add(&format!("accepted-fired:{}", user.id), window_ms, 1);
            // The success itself is later in time, so this denial cannot
            // read which one it was.
            findings.push(accepted_finding(
                host,
                &user,
                denials,
                "a success after this denial (delivered before it)",
                None,
            ));
        }
        Ok(findings)
    }
}

/// Denied pushes for `user` in the best window around now: the larger of
/// Okta's two records of a denial, or Entra's.
fn denial_count(host: &mut dyn Host, user: &str, window_ms: u64) -> u64 {
    ["okta-deny", "okta-mfa-fail", "entra-deny"]
        .iter()
        .map(|s| host.counter_get(&format!("{s}:{user}"), window_ms))
        .max()
        .unwrap_or(0)
}

/// The burst finding: suspend the user so the pushes stop, and escalate.
fn burst_finding(
    host: &mut dyn Host,
    event: &Event,
    user: &Principal,
    denials: u64,
    window_ms: u64,
    suspend_secs: u64,
) -> Finding {
    let login = user.login.clone().unwrap_or_else(|| user.id.clone());
    let mut finding = Finding::new(
        Severity::High,
        format!("MFA push fatigue: {denials} denied pushes for {login}"),
        user.id.clone(),
    )
    .detail("login", &login)
    .detail("denied_pushes", denials)
    .detail("window_minutes", window_ms / MINUTE_MS);
    if let Some(ip) = &event.client_ip() {
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
    finding
}

/// A successful MFA for a user after a denial of a burst: revoke the
/// sessions the attacker may now hold, and escalate as critical.
fn accepted_after_burst(
    host: &mut dyn Host,
    event: &Event,
    threshold: u64,
    window_ms: u64,
) -> Result<Vec<Finding>, String> {
    let Some(user) = event.subject_user() else {
        return Ok(Vec::new());
    };
    let user = user.clone();
    // Remember the success both ways in time (the counter) and for the
    // events after it (the value), for a burst whose denials arrive later.
    let success_key = format!("success:{}", user.id);
    host.counter_add(&success_key, window_ms, 1);
    host.set(&success_key, event.id(), Some(window_ms));
    if host.get(&format!("denied:{}", user.id)).is_none() {
        return Ok(Vec::new());
    }
    let denials = denial_count(host, &user.id, window_ms);
    let fired_key = format!("accepted-fired:{}", user.id);
    if denials < threshold || host.counter_get(&fired_key, window_ms) > 0 {
        return Ok(Vec::new());
    }
    host.counter_add(&fired_key, window_ms, 1);
    Ok(vec![accepted_finding(
        host,
        &user,
        denials,
        event.id(),
        event.client_ip(),
    )])
}

fn accepted_finding(
    host: &mut dyn Host,
    user: &Principal,
    denials: u64,
    accepted_event: &str,
    client_ip: Option<&str>,
) -> Finding {
    let login = user.login.clone().unwrap_or_else(|| user.id.clone());
    let mut finding = Finding::new(
        Severity::Critical,
        format!("MFA push accepted after push bombing: {login}"),
        user.id.clone(),
    )
    .detail("login", &login)
    .detail("denied_pushes_around", denials)
    .detail("accepted_event", accepted_event);
    if let Some(ip) = client_ip {
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
    finding
}

/// A successful MFA verification or sign-in.
fn is_mfa_success(event: &Event) -> bool {
    event.outcome() == Outcome::Success
        && (event.kind() == AUTH_VIA_MFA || event.kind() == ENTRA_SIGN_IN)
}

/// Which counter a denied push belongs to, or `None` if the event is not one.
fn denial_signal(event: &Event) -> Option<&'static str> {
    if event.kind() == DENY_PUSH {
        return Some("okta-deny");
    }
    if event.outcome() != Outcome::Failure {
        return None;
    }
    if event.kind() == AUTH_VIA_MFA && event.factor() == Some("OKTA_VERIFY_PUSH") {
        return Some("okta-mfa-fail");
    }
    let declined = event
        .attribute("additional-details")
        .is_some_and(|d| d.to_ascii_lowercase().contains("declined"));
    if event.kind() == ENTRA_SIGN_IN && event.attribute("error-code") == Some("500121") && declined
    {
        return Some("entra-deny");
    }
    None
}

export_rule!(MfaPushFatigue);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{EventBuilder, MockHost, shuffled};

    const MIN: i64 = 60_000;

    /// An Okta Verify push event of `kind` for `user`, `minute` into the test.
    fn push(kind: &str, outcome: Outcome, user: &str, minute: i64) -> EventData {
        EventBuilder::okta(kind)
            .id(&format!("{kind}-{user}-{minute}"))
            .actor_user(user, &format!("{user}@example.com"))
            .outcome(outcome)
            .factor("OKTA_VERIFY_PUSH")
            .at(1_700_000_000_000 + minute * MIN)
            .build()
    }

    fn deny(user: &str, minute: i64) -> EventData {
        push(DENY_PUSH, Outcome::Failure, user, minute)
    }

    #[test]
    fn five_denials_in_ten_minutes_suspend_and_escalate() {
        let mut host = MockHost::new();
        let events: Vec<EventData> = (0..5).map(|m| deny("u1", m)).collect();
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
        let events: Vec<EventData> = (0..4).map(|m| deny("u1", m)).collect();
        assert!(host.feed_all::<MfaPushFatigue>(&events).unwrap().is_empty());
        assert!(host.requested.is_empty());
    }

    #[test]
    fn denials_spread_over_hours_do_not_fire() {
        let mut host = MockHost::new();
        let events: Vec<EventData> = (0..8).map(|i| deny("u1", i * 11)).collect();
        assert!(host.feed_all::<MfaPushFatigue>(&events).unwrap().is_empty());
    }

    #[test]
    fn fires_once_per_user_per_window() {
        let mut host = MockHost::new();
        let events: Vec<EventData> = (0..9).map(|m| deny("u1", m)).collect();
        assert_eq!(host.feed_all::<MfaPushFatigue>(&events).unwrap().len(), 1);
        assert_eq!(host.requested.len(), 2);
    }

    #[test]
    fn users_are_counted_separately() {
        let mut host = MockHost::new();
        let mut events: Vec<EventData> = (0..3).map(|m| deny("u1", m)).collect();
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

    fn accept(user: &str, minute: i64) -> EventData {
        push(AUTH_VIA_MFA, Outcome::Success, user, minute)
    }

    #[test]
    fn accepting_a_push_after_a_burst_revokes_sessions_once() {
        let mut host = MockHost::new();
        let mut events: Vec<EventData> = (0..5).map(|m| deny("u1", m)).collect();
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
        let mut events: Vec<EventData> = (0..5).map(|m| deny("u1", m)).collect();
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
        let events: Vec<EventData> = (0..3).map(|m| deny("u1", m)).collect();
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
        let events: Vec<EventData> = (0..5).map(|m| deny("u1", m)).collect();
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

    fn sorted_kinds(kinds: &[ActionKind]) -> Vec<String> {
        let mut kinds: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
        kinds.sort();
        kinds
    }

    // The push-bombing stream reversed and shuffled: the burst and the
    // acceptance are found once each, with the same actions.
    #[test]
    fn a_burst_and_its_acceptance_are_found_in_any_arrival_order() {
        let mut sorted: Vec<EventData> = (0..5).map(|m| deny("u1", m)).collect();
        sorted.push(accept("u1", 7));
        sorted.push(accept("u1", 8));
        let mut reversed = sorted.clone();
        reversed.reverse();
        let mut orders = vec![sorted.clone(), reversed];
        orders.extend((0..60).map(|seed| shuffled(sorted.clone(), seed)));
        for (n, order) in orders.into_iter().enumerate() {
            let mut host = MockHost::new();
            let findings = host.feed_all::<MfaPushFatigue>(&order).unwrap();
            let mut severities: Vec<Severity> = findings.iter().map(|f| f.severity).collect();
            severities.sort_by_key(|s| *s as u8);
            assert_eq!(
                severities,
                vec![Severity::High, Severity::Critical],
                "order {n}"
            );
            assert_eq!(
                sorted_kinds(&host.requested_kinds()),
                sorted_kinds(&[
                    ActionKind::SuspendUser,
                    ActionKind::Escalate,
                    ActionKind::RevokeSessions,
                    ActionKind::Escalate
                ]),
                "order {n}"
            );
        }
    }

    // A sign-in before the bombing started is the user's own: no
    // acceptance, whichever arrives first.
    #[test]
    fn a_success_before_any_denial_is_not_an_acceptance_in_any_order() {
        let mut sorted = vec![accept("u1", 0)];
        sorted.extend((2..7).map(|m| deny("u1", m)));
        for seed in 0..40 {
            let mut host = MockHost::new();
            let findings = host
                .feed_all::<MfaPushFatigue>(&shuffled(sorted.clone(), seed))
                .unwrap();
            assert_eq!(findings.len(), 1, "seed {seed}");
            assert_eq!(findings[0].severity, Severity::High, "seed {seed}");
        }
    }
}
