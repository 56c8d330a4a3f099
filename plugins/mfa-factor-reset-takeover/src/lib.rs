//! `mfa-factor-reset-takeover`: an account taken over through an MFA reset.
//!
//! A common takeover path (help-desk social engineering, a stolen session
//! removing the victim's authenticator) is: get the user's factors reset or
//! removed, then sign in, or enroll the attacker's own factor, from the
//! attacker's machine. The rule learns where each user normally signs in
//! from and, when a factor reset is followed within `window_hours` (default
//! 12) by a successful sign-in or a factor enrollment for the same user from
//! an IP address **or** a country not seen for that user before the reset,
//! reports a critical finding, asks to revoke the user's sessions, to reset
//! their factors again (removing whatever the attacker enrolled) and
//! escalates to the on-call.
//!
//! Signals:
//! - resets (the user is the event's target user, `subject_user`): Okta
//!   `user.mfa.factor.reset_all` and `user.mfa.factor.deactivate`; Entra
//!   directory audits `Admin deleted security info` and `User deleted
//!   security info` (service "Authentication Methods"). Only successful
//!   resets open a window. A reset inside an open window extends it but keeps
//!   the first reset's time as the cut-off for "seen before".
//! - sign-ins (learned, and checked during a window): Okta
//!   `user.session.start` and `user.authentication.sso`, Entra `Sign-in
//!   activity`, outcome success only.
//! - enrollments (checked during a window, never learned): Okta
//!   `user.mfa.factor.activate`; Entra `User registered security info` (an
//!   audit record carries the user's IP, never a country, so only the IP is
//!   compared).
//!
//! Memory: every successful sign-in records its IP and country for the user
//! for `history_days` (default 7, the host's longest TTL), refreshed on each
//! sighting, together with the first time it was seen, so an address first
//! used after the reset never counts as known.
//!
//! Config keys: `window_hours` (default 12, 1–168), `history_days` (default
//! 7, 1–7).
//!
//! It fires once per user per reset window: further sign-ins from new places
//! within `window_hours` (before or after the one that fired) raise nothing
//! new.
//!
//! Event time, whatever the arrival order: the reset window and the places
//! are values, which an event sees only when they were set at or before its
//! own time, so a sign-in from before the reset that is delivered after it
//! is never judged against it, and each follow-up is compared with the
//! places seen before the reset in event time. The dedupe is a counter and
//! looks both ways.
//!
//! Blind spots: a reset delivered *after* its follow-up sign-in (both within
//! the lateness bound, e.g. a newest-first export) is not matched with it:
//! the sign-in was judged before the reset was known, and the reset cannot
//! read where a later sign-in came from (v0.1 state has no look-up of later
//! values); the next follow-up after it is judged normally. A sign-in from
//! before the reset that is delivered after a later one from the same place
//! does not move that place's "first seen" earlier for events judged in
//! between. A user with no successful sign-in in the last `history_days`
//! has no baseline, so nothing is compared (logged at info, no finding) —
//! this includes every user in the first days after deployment; an attacker
//! signing in from an IP the victim used before the reset (same office NAT,
//! a residential proxy next door) is not seen; Entra resets done through
//! "Update user" (per-user MFA `StrongAuthenticationMethod` cleared) or
//! "Require re-register MFA" are not recognised; a new IP alone is enough,
//! so a legitimate user who roams (mobile CGNAT) right after a help-desk
//! reset fires too.

use vigil_sdk::*;

pub struct MfaFactorResetTakeover;

const OKTA_RESET_ALL: &str = "user.mfa.factor.reset_all";
const OKTA_DEACTIVATE: &str = "user.mfa.factor.deactivate";
const OKTA_ACTIVATE: &str = "user.mfa.factor.activate";
const OKTA_SESSION_START: &str = "user.session.start";
const OKTA_SSO: &str = "user.authentication.sso";
const ENTRA_SIGN_IN: &str = "Sign-in activity";
const ENTRA_ADMIN_DELETED: &str = "Admin deleted security info";
const ENTRA_USER_DELETED: &str = "User deleted security info";
const ENTRA_USER_REGISTERED: &str = "User registered security info";

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// What an event means to this rule.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Signal {
    Reset,
    SignIn,
    Enrollment,
}

fn signal(event: &Event) -> Option<Signal> {
    if event.outcome() != Outcome::Success {
        return None;
    }
    match event.kind() {
        OKTA_RESET_ALL | OKTA_DEACTIVATE | ENTRA_ADMIN_DELETED | ENTRA_USER_DELETED => {
            Some(Signal::Reset)
        }
        OKTA_SESSION_START | OKTA_SSO | ENTRA_SIGN_IN => Some(Signal::SignIn),
        OKTA_ACTIVATE | ENTRA_USER_REGISTERED => Some(Signal::Enrollment),
        _ => None,
    }
}

struct Config {
    window_ms: u64,
    history_ms: u64,
}

fn config(host: &mut dyn Host) -> Result<Config, String> {
    let window_hours = host.config_u64("window_hours", 12)?;
    if !(1..=168).contains(&window_hours) {
        return Err(format!(
            "config `window_hours` must be between 1 and 168, got {window_hours}"
        ));
    }
    let history_days = host.config_u64("history_days", 7)?;
    if !(1..=7).contains(&history_days) {
        return Err(format!(
            "config `history_days` must be between 1 and 7, got {history_days}"
        ));
    }
    Ok(Config {
        window_ms: window_hours * HOUR_MS,
        history_ms: history_days * DAY_MS,
    })
}

/// An open reset window, stored as `first_reset_ms|event_id|kind|by`.
struct ResetWindow {
    first_reset_ms: i64,
    event_id: String,
    kind: String,
    by: String,
}

impl ResetWindow {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.first_reset_ms, self.event_id, self.kind, self.by
        )
    }

    fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(4, '|');
        Some(ResetWindow {
            first_reset_ms: parts.next()?.parse().ok()?,
            event_id: parts.next()?.to_owned(),
            kind: parts.next()?.to_owned(),
            by: parts.next()?.to_owned(),
        })
    }
}

impl Rule for MfaFactorResetTakeover {
    fn metadata() -> Metadata {
        Metadata {
            id: "mfa-factor-reset-takeover".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Revokes sessions, resets factors and escalates when a user's MFA \
                          factors are reset and the user then signs in or enrolls a factor \
                          from an IP or country not seen before the reset."
                .into(),
            subscribes: vec![
                OKTA_RESET_ALL.into(),
                OKTA_DEACTIVATE.into(),
                OKTA_ACTIVATE.into(),
                OKTA_SESSION_START.into(),
                OKTA_SSO.into(),
                ENTRA_SIGN_IN.into(),
                ENTRA_ADMIN_DELETED.into(),
                ENTRA_USER_DELETED.into(),
                ENTRA_USER_REGISTERED.into(),
            ],
            actions: vec![
                ActionKind::RevokeSessions,
                ActionKind::ResetFactors,
                ActionKind::Escalate,
            ],
            // The rule judges nothing else: the host need not call it.
            outcomes: vec![Outcome::Success],
            classes: vec![],
            partition: PartitionKey::SubjectUser,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let cfg = config(host)?;
        let Some(signal) = signal(event) else {
            return Ok(Vec::new());
        };
        let Some(user) = event.subject_user() else {
            host.log(Level::Warn, &format!("event {} names no user", event.id()));
            return Ok(Vec::new());
        };
        let user = user.clone();

        if signal == Signal::Reset {
            open_window(host, &cfg, event, &user.id);
            return Ok(Vec::new());
        }

        let finding = check_after_reset(host, &cfg, event, &user, signal);
        if signal == Signal::SignIn {
            learn(host, &cfg, event, &user.id);
        }
        Ok(finding.into_iter().collect())
    }
}

/// Opens (or extends) the reset window for `user`.
fn open_window(host: &mut dyn Host, cfg: &Config, event: &Event, user: &str) {
    let key = format!("reset:{user}");
    let first_reset_ms = host
        .get(&key)
        .and_then(|v| ResetWindow::decode(&v))
        .map_or(event.time(), |w| w.first_reset_ms.min(event.time()));
    let by = event
        .actor()
        .map(|a| a.login.clone().unwrap_or_else(|| a.id.clone()))
        .unwrap_or_else(|| "unknown".into());
    let window = ResetWindow {
        first_reset_ms,
        event_id: event.id().to_owned(),
        kind: event.kind().to_owned(),
        by,
    };
    host.set(&key, &window.encode(), Some(cfg.window_ms));
}

/// Records the IP and country of a successful sign-in, keeping the time each
/// was first seen (the TTL is refreshed on every sighting).
fn learn(host: &mut dyn Host, cfg: &Config, event: &Event, user: &str) {
    let mut learned = false;
    for key in place_keys(event, user).into_iter().flatten() {
        let first_seen = host
            .get(&key)
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(event.time(), |t| t.min(event.time()));
        host.set(&key, &first_seen.to_string(), Some(cfg.history_ms));
        learned = true;
    }
    if learned {
        host.set(
            &format!("baseline:{user}"),
            &event.time().to_string(),
            Some(cfg.history_ms),
        );
    }
}

/// The state keys for this event's IP and country, when it has them.
fn place_keys(event: &Event, user: &str) -> [Option<String>; 2] {
    let ip = event
        .client_ip()
        .filter(|s| !s.is_empty())
        .map(|ip| format!("ip:{user}:{ip}"));
    let country = country(event).map(|c| format!("country:{user}:{c}"));
    [ip, country]
}

fn country(event: &Event) -> Option<String> {
    event
        .geo()
        .and_then(|g| g.country.as_deref())
        .filter(|c| !c.is_empty())
        .map(str::to_ascii_lowercase)
}

/// Whether `key` was seen strictly before `cutoff`.
fn seen_before(host: &mut dyn Host, key: &str, cutoff: i64) -> bool {
    host.get(key)
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|first| first < cutoff)
}

fn check_after_reset(
    host: &mut dyn Host,
    cfg: &Config,
    event: &Event,
    user: &Principal,
    signal: Signal,
) -> Option<Finding> {
    let window = ResetWindow::decode(&host.get(&format!("reset:{}", user.id))?)?;
    if event.time() < window.first_reset_ms {
        return None;
    }
    // A counter, not a value: whichever follow-up is delivered first, the
    // others within the window (before or after it) raise nothing new.
    let fired_key = format!("fired:{}", user.id);
    if host.counter_get(&fired_key, cfg.window_ms) > 0 {
        return None;
    }
    let baseline_ok = host
        .get(&format!("baseline:{}", user.id))
        .and_then(|v| v.parse::<i64>().ok())
        .is_some();
    let [ip_key, country_key] = place_keys(event, &user.id);
    let ip = event
        .client_ip()
        .map(str::to_owned)
        .filter(|s| !s.is_empty());
    // Entra audits carry no country; only the IP can be compared then.
    let country = country(event);
    if ip_key.is_none() && country_key.is_none() {
        host.log(
            Level::Info,
            &format!("{} after a reset carries no IP or country", event.id()),
        );
        return None;
    }
    if !baseline_ok {
        host.log(
            Level::Info,
            &format!(
                "{} after a factor reset for {}: no sign-in history to compare with",
                event.id(),
                user.id
            ),
        );
        return None;
    }
    let new_ip = ip_key
        .as_deref()
        .is_some_and(|k| !seen_before(host, k, window.first_reset_ms));
    let new_country = country_key
        .as_deref()
        .is_some_and(|k| !seen_before(host, k, window.first_reset_ms));
    if !new_ip && !new_country {
        return None;
    }
    host.counter_add(&fired_key, cfg.window_ms, 1);

    let login = user.login.clone().unwrap_or_else(|| user.id.clone());
    let what = match signal {
        Signal::Enrollment => "factor enrollment",
        _ => "sign-in",
    };
    let place = match (new_ip, new_country) {
        (true, true) => "new IP and country",
        (true, false) => "new IP",
        _ => "new country",
    };
    let minutes_after = (event.time() - window.first_reset_ms) / 60_000;
    let mut finding = Finding::new(
        Severity::Critical,
        format!("MFA factor reset then {what} from {place} for {login}"),
        user.id.clone(),
    )
    .detail("login", &login)
    .detail("reset_event", &window.event_id)
    .detail("reset_kind", &window.kind)
    .detail("reset_by", &window.by)
    .detail("followup_kind", event.kind())
    .detail("minutes_after_reset", minutes_after)
    .detail("new_ip", new_ip)
    .detail("new_country", new_country)
    .detail("window_hours", cfg.window_ms / HOUR_MS);
    if let Some(ip) = &ip {
        finding = finding.detail("client_ip", ip);
    }
    if let Some(c) = event.geo().and_then(|g| g.country.clone()) {
        finding = finding.detail("country", c);
    } else if let Some(c) = country {
        finding = finding.detail("country", c);
    }
    if let (Signal::Enrollment, Some(f)) = (signal, &event.factor()) {
        finding = finding.detail("factor", f);
    }

    let revoke = Action::RevokeSessions(user.id.clone());
    finding = finding.detail("revoke_sessions", describe(&host.request(&revoke)));
    let reset = Action::ResetFactors(user.id.clone());
    finding = finding.detail("reset_factors", describe(&host.request(&reset)));
    let escalate = Action::Escalate(Message {
        severity: Severity::Critical,
        summary: format!(
            "{login}: MFA factors reset ({} by {}), then a {what} from a {place} \
             {minutes_after} minutes later: likely account takeover",
            window.kind, window.by
        ),
        details: finding.details.clone(),
    });
    finding = finding.detail("escalate", describe(&host.request(&escalate)));
    Some(finding)
}

export_rule!(MfaFactorResetTakeover);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{EventBuilder, MockHost};

    const T0: i64 = 1_773_000_000_000;
    const MIN: i64 = 60_000;

    fn sign_in(user: &str, minute: i64, ip: &str, country: &str) -> EventData {
        EventBuilder::okta(OKTA_SESSION_START)
            .id(&format!("signin-{user}-{minute}"))
            .actor_user(user, &format!("{user}@example.com"))
            .outcome(Outcome::Success)
            .ip(ip)
            .geo(country, 41.88, -87.63)
            .at(T0 + minute * MIN)
            .build()
    }

    fn reset(user: &str, minute: i64) -> EventData {
        EventBuilder::okta(OKTA_RESET_ALL)
            .id(&format!("reset-{user}-{minute}"))
            .actor_user("00uhelpdesk", "helpdesk@example.com")
            .target_user(user, &format!("{user}@example.com"))
            .outcome(Outcome::Success)
            .ip("198.51.100.2")
            .at(T0 + minute * MIN)
            .build()
    }

    fn enroll(user: &str, minute: i64, ip: &str, country: &str) -> EventData {
        EventBuilder::okta(OKTA_ACTIVATE)
            .id(&format!("enroll-{user}-{minute}"))
            .actor_user(user, &format!("{user}@example.com"))
            .target_user(user, &format!("{user}@example.com"))
            .outcome(Outcome::Success)
            .factor("OKTA_VERIFY_PUSH")
            .ip(ip)
            .geo(country, 6.52, 3.37)
            .at(T0 + minute * MIN)
            .build()
    }

    /// Two days of history from the office, then a reset at minute 3000.
    fn history(user: &str) -> Vec<EventData> {
        vec![
            sign_in(user, 0, "198.51.100.10", "United States"),
            sign_in(user, 1440, "198.51.100.10", "United States"),
            reset(user, 3000),
        ]
    }

    #[test]
    fn reset_then_sign_in_from_new_ip_and_country_fires() {
        let mut host = MockHost::new();
        let mut events = history("u1");
        events.push(sign_in("u1", 3030, "203.0.113.88", "Nigeria"));
        let findings = host.feed_all::<MfaFactorResetTakeover>(&events).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, "u1");
        assert_eq!(findings[0].severity, Severity::Critical);
        assert_eq!(
            host.requested_kinds(),
            vec![
                ActionKind::RevokeSessions,
                ActionKind::ResetFactors,
                ActionKind::Escalate
            ]
        );
        assert_eq!(host.requested[0], Action::RevokeSessions("u1".into()));
        assert_eq!(host.requested[1], Action::ResetFactors("u1".into()));
    }

    #[test]
    fn reset_then_enrollment_from_new_ip_fires() {
        // The attacker enrolls their own factor before signing in anywhere.
        let mut host = MockHost::new();
        let mut events = history("u1");
        events.push(enroll("u1", 3020, "203.0.113.88", "Nigeria"));
        let findings = host.feed_all::<MfaFactorResetTakeover>(&events).unwrap();
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0].title.contains("enrollment"),
            "{}",
            findings[0].title
        );
    }

    #[test]
    fn new_ip_in_a_known_country_is_enough() {
        let mut host = MockHost::new();
        let mut events = history("u1");
        events.push(sign_in("u1", 3030, "192.0.2.50", "United States"));
        assert_eq!(
            host.feed_all::<MfaFactorResetTakeover>(&events)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn sign_in_from_a_known_ip_after_reset_is_a_near_miss() {
        // The legitimate user re-enrolls from the office.
        let mut host = MockHost::new();
        let mut events = history("u1");
        events.push(sign_in("u1", 3030, "198.51.100.10", "United States"));
        events.push(enroll("u1", 3031, "198.51.100.10", "United States"));
        assert!(
            host.feed_all::<MfaFactorResetTakeover>(&events)
                .unwrap()
                .is_empty()
        );
        assert!(host.requested.is_empty());
    }

    #[test]
    fn new_ip_after_the_window_does_not_fire() {
        let mut host = MockHost::new();
        let mut events = history("u1");
        events.push(sign_in("u1", 3000 + 13 * 60, "203.0.113.88", "Nigeria"));
        assert!(
            host.feed_all::<MfaFactorResetTakeover>(&events)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn new_ip_without_a_reset_does_not_fire() {
        // Travel alone is another rule's business.
        let mut host = MockHost::new();
        let events = vec![
            sign_in("u1", 0, "198.51.100.10", "United States"),
            sign_in("u1", 60, "203.0.113.88", "Nigeria"),
        ];
        assert!(
            host.feed_all::<MfaFactorResetTakeover>(&events)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_failed_sign_in_from_a_new_ip_does_not_fire() {
        let mut host = MockHost::new();
        let mut events = history("u1");
        let mut failed = sign_in("u1", 3030, "203.0.113.88", "Nigeria");
        failed.outcome = Outcome::Failure;
        events.push(failed);
        assert!(
            host.feed_all::<MfaFactorResetTakeover>(&events)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn fires_once_per_user_per_window() {
        let mut host = MockHost::new();
        let mut events = history("u1");
        events.push(enroll("u1", 3020, "203.0.113.88", "Nigeria"));
        events.push(sign_in("u1", 3030, "203.0.113.88", "Nigeria"));
        events.push(sign_in("u1", 3100, "203.0.113.99", "Ghana"));
        assert_eq!(
            host.feed_all::<MfaFactorResetTakeover>(&events)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(host.requested.len(), 3);
    }

    #[test]
    fn users_are_tracked_separately() {
        // A reset of u1 says nothing about u2's new IP.
        let mut host = MockHost::new();
        let mut events = history("u1");
        events.push(sign_in("u2", 0, "198.51.100.20", "United States"));
        events.push(sign_in("u2", 3030, "203.0.113.88", "Nigeria"));
        assert!(
            host.feed_all::<MfaFactorResetTakeover>(&events)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn no_history_means_no_comparison() {
        let mut host = MockHost::new();
        let events = vec![reset("u1", 0), sign_in("u1", 30, "203.0.113.88", "Nigeria")];
        assert!(
            host.feed_all::<MfaFactorResetTakeover>(&events)
                .unwrap()
                .is_empty()
        );
        assert!(
            host.logs
                .iter()
                .any(|(_, m)| m.contains("no sign-in history"))
        );
    }

    #[test]
    fn entra_admin_deleted_security_info_then_sign_in_fires() {
        let mut host = MockHost::new();
        let signin = |minute: i64, ip: &str, country: &str| {
            let mut e = sign_in("e1", minute, ip, country);
            e.source = "entra".into();
            e.kind = ENTRA_SIGN_IN.into();
            e
        };
        let events = vec![
            signin(0, "198.51.100.30", "US"),
            {
                let mut r = reset("e1", 600);
                r.source = "entra".into();
                r.kind = ENTRA_ADMIN_DELETED.into();
                r
            },
            signin(700, "203.0.113.140", "NL"),
        ];
        let findings = host.feed_all::<MfaFactorResetTakeover>(&events).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, "e1");
    }

    #[test]
    fn window_comes_from_config() {
        let mut host = MockHost::new().with_config("window_hours", 1);
        let mut events = history("u1");
        events.push(sign_in("u1", 3090, "203.0.113.88", "Nigeria"));
        assert!(
            host.feed_all::<MfaFactorResetTakeover>(&events)
                .unwrap()
                .is_empty()
        );

        let mut host = MockHost::new().with_config("window_hours", 24);
        let mut events = history("u1");
        events.push(sign_in("u1", 3000 + 20 * 60, "203.0.113.88", "Nigeria"));
        assert_eq!(
            host.feed_all::<MfaFactorResetTakeover>(&events)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn history_comes_from_config() {
        // With one day of memory, an IP last used 50 h before the reset is
        // forgotten (the one used 17 h before still gives a baseline).
        let mut host = MockHost::new().with_config("history_days", 1);
        let events = vec![
            sign_in("u1", 0, "198.51.100.10", "United States"),
            sign_in("u1", 2000, "198.51.100.11", "United States"),
            reset("u1", 3000),
            sign_in("u1", 3010, "198.51.100.10", "United States"),
        ];
        assert_eq!(
            host.feed_all::<MfaFactorResetTakeover>(&events)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_bad_config_value_is_an_error_naming_the_key() {
        let mut host = MockHost::new().with_config("window_hours", "twelve");
        let err = host
            .feed::<MfaFactorResetTakeover>(&reset("u1", 0))
            .unwrap_err();
        assert!(err.contains("window_hours"), "{err}");

        let mut host = MockHost::new().with_config("history_days", 30);
        let err = host
            .feed::<MfaFactorResetTakeover>(&reset("u1", 0))
            .unwrap_err();
        assert!(err.contains("history_days"), "{err}");
    }

    #[test]
    fn denied_actions_are_reported_in_the_finding() {
        let mut host = MockHost::new();
        host.granted = Some(vec![ActionKind::Escalate]);
        let mut events = history("u1");
        events.push(sign_in("u1", 3030, "203.0.113.88", "Nigeria"));
        let findings = host.feed_all::<MfaFactorResetTakeover>(&events).unwrap();
        let detail = |k: &str| {
            findings[0]
                .details
                .iter()
                .find(|(key, _)| key == k)
                .unwrap()
                .1
                .clone()
        };
        assert!(detail("revoke_sessions").starts_with("denied (not-granted)"));
        assert!(detail("escalate").starts_with("dry-run"));
    }
}
