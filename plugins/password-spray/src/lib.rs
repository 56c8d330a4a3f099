//! `password-spray`: one IP address failing sign-ins for many users.
//!
//! A password spray tries one or two common passwords against many accounts
//! from the same address, staying under each account's lockout threshold.
//! When one client IP produces failed sign-ins for at least `min_users`
//! distinct users (default 5) and at least `min_attempts` failed sign-ins in
//! total (default 15) within `window_minutes` (default 10), the rule reports
//! a finding about the IP, asks to block it for `block_hours` (default 24)
//! and escalates to the on-call (severity high).
//!
//! Signals (failed sign-ins):
//! - Okta `user.session.start` with outcome `FAILURE`, whatever the reason
//!   (`INVALID_CREDENTIALS`, `VERIFICATION_ERROR`, `LOCKED_OUT`, a sign-on
//!   policy deny…): every one is a password attempt that did not get in.
//! - Entra `Sign-in activity` failing with error 50126 (invalid username or
//!   password), 50053 (account locked, smart lockout — sprays trip it) or
//!   50034 (user does not exist — sprays use guessed names).
//!
//! Not read: Okta `user.authentication.sso` (it fails on app access policy,
//! after the password step, never on a wrong password) and
//! `user.account.lock` (the failures that caused the lock are already
//! counted; a lock is not one more attempt).
//!
//! Users are counted by actor id; when the identity provider does not know
//! the account (Okta logs actor id `unknown` with the tried name in
//! `alternateId`; Entra logs an empty or all-zero `userId`), by the
//! lower-cased login instead, so guessed names count as distinct users too.
//!
//! Config keys:
//! - `min_users` (default 5, ≥ 1): distinct users failing from the IP.
//! - `min_attempts` (default 15, ≥ 1): failed sign-ins from the IP.
//! - `window_minutes` (default 10, 1–10080): the window both are counted in.
//! - `block_hours` (default 24, 1–720): how long the IP block lasts.
//!
//! Event time, whatever the arrival order: both counts are the host's
//! windows *around* each failure (the best window of `window_minutes` that
//! contains it), so a spray delivered newest-first is seen whole by its last
//! arrival, and the fact that the rule fired is a counter too (`fired:<ip>`),
//! so it fires once per burst in any order: after firing, failures from the
//! IP within `window_minutes` on either side raise nothing new. In time
//! order both thresholds are met by the same window (the last
//! `window_minutes`); out of order each is the best window around the
//! failure, so they may be met by two overlapping windows that both
//! contain it (together spanning less than twice the window).
//!
//! Blind spots: a spray spread over many IPs (botnets, residential proxies)
//! with fewer than `min_users` users per IP; a slow spray under the rate
//! (e.g. one attempt a minute); events without a client IP (skipped, logged
//! at debug); a NAT or corporate egress IP where many real users mistype
//! their password at once (the near-miss thresholds matter here: exclude
//! such IPs through the operator's protected list).

use vigil_sdk::*;

pub struct PasswordSpray;

const OKTA_SESSION_START: &str = "user.session.start";
const ENTRA_SIGN_IN: &str = "Sign-in activity";
/// Entra error codes that mean a wrong or tried password.
const ENTRA_SPRAY_CODES: [&str; 3] = ["50126", "50053", "50034"];
const MINUTE_MS: u64 = 60_000;
const MAX_WINDOW_MINUTES: u64 = 7 * 24 * 60;
const MAX_BLOCK_HOURS: u64 = 30 * 24;

struct Config {
    min_users: u64,
    min_attempts: u64,
    window_minutes: u64,
    block_hours: u64,
}

impl Config {
    fn read(host: &mut dyn Host) -> Result<Config, String> {
        let cfg = Config {
            min_users: in_range(host, "min_users", 5, 1, u64::MAX)?,
            min_attempts: in_range(host, "min_attempts", 15, 1, u64::MAX)?,
            window_minutes: in_range(host, "window_minutes", 10, 1, MAX_WINDOW_MINUTES)?,
            block_hours: in_range(host, "block_hours", 24, 1, MAX_BLOCK_HOURS)?,
        };
        Ok(cfg)
    }
}

/// A numeric setting that must lie in `min..=max`; the error names the key.
fn in_range(
    host: &mut dyn Host,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, String> {
    let v = host.config_u64(key, default)?;
    if v < min || v > max {
        return Err(format!(
            "config `{key}` must be between {min} and {max}, got {v}"
        ));
    }
    Ok(v)
}

impl Rule for PasswordSpray {
    fn metadata() -> Metadata {
        Metadata {
            id: "password-spray".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Blocks an IP that fails sign-ins for many users in a short window \
                          (password spray) and escalates."
                .into(),
            subscribes: vec![OKTA_SESSION_START.into(), ENTRA_SIGN_IN.into()],
            actions: vec![ActionKind::BlockIp, ActionKind::Escalate],
            // The rule judges nothing else: the host need not call it.
            outcomes: vec![Outcome::Failure],
            classes: vec![],
            partition: PartitionKey::ClientIp,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        if !is_failed_password_attempt(event) {
            return Ok(Vec::new());
        }
        let cfg = Config::read(host)?;
        let Some(ip) = event.client_ip().filter(|ip| !ip.is_empty()) else {
            host.log(
                Level::Debug,
                &format!("failed sign-in {} has no client IP", event.id()),
            );
            return Ok(Vec::new());
        };
        let Some(user) = user_key(event) else {
            host.log(
                Level::Debug,
                &format!("failed sign-in {} names no user", event.id()),
            );
            return Ok(Vec::new());
        };
        let window_ms = cfg.window_minutes * MINUTE_MS;

        let users = host.distinct_add(&format!("users:{ip}"), &user, window_ms);
        let attempts = host.counter_add(&format!("attempts:{ip}"), window_ms, 1);
        if users < cfg.min_users || attempts < cfg.min_attempts {
            return Ok(Vec::new());
        }
        // A counter, not a value: a firing by a later event in the same
        // burst must hold back an earlier one that arrives after it.
        let fired_key = format!("fired:{ip}");
        if host.counter_get(&fired_key, window_ms) > 0 {
            return Ok(Vec::new());
        }
        host.counter_add(&fired_key, window_ms, 1);

        let mut finding = Finding::new(
            Severity::High,
            format!(
                "Password spray from {ip}: {attempts} failed sign-ins for {users} users \
                 in {} minutes",
                cfg.window_minutes
            ),
            ip,
        )
        .detail("client_ip", ip)
        .detail("distinct_users", users)
        .detail("failed_attempts", attempts)
        .detail("window_minutes", cfg.window_minutes)
        .detail("source", event.source())
        .detail("last_user", &user);
        if let Some(reason) = event.failure_reason() {
            finding = finding.detail("last_failure_reason", reason);
        }
        if let Some(country) = event.geo().and_then(|g| g.country.as_deref()) {
            finding = finding.detail("country", country);
        }
        if let Some(org) = event.attribute("as-org") {
            finding = finding.detail("as_org", org);
        }
        if let Some(ua) = &event.user_agent() {
            finding = finding.detail("user_agent", ua);
        }

        let block = Action::BlockIp(BlockIp {
            ip: ip.to_owned(),
            duration_secs: Some(cfg.block_hours * 3600),
        });
        finding = finding
            .detail("block_hours", cfg.block_hours)
            .detail("block_ip", describe(&host.request(&block)));
        let escalate = Action::Escalate(Message {
            severity: Severity::High,
            summary: format!(
                "Password spray: {ip} failed {attempts} sign-ins for {users} distinct users \
                 within {} minutes",
                cfg.window_minutes
            ),
            details: finding.details.clone(),
        });
        finding = finding.detail("escalate", describe(&host.request(&escalate)));
        Ok(vec![finding])
    }
}

/// Whether the event is a failed password attempt this rule counts.
fn is_failed_password_attempt(event: &Event) -> bool {
    if event.outcome() != Outcome::Failure {
        return false;
    }
    match event.kind() {
        OKTA_SESSION_START => event.source() == "okta",
        ENTRA_SIGN_IN => event
            .attribute("error-code")
            .is_some_and(|c| ENTRA_SPRAY_CODES.contains(&c)),
        _ => false,
    }
}

/// The user a failed attempt was for: the actor id, or the lower-cased login
/// when the provider did not resolve the account.
fn user_key(event: &Event) -> Option<String> {
    let user = event.subject_user()?;
    let id = user.id.trim();
    let unresolved = id.is_empty()
        || id.eq_ignore_ascii_case("unknown")
        || id == "00000000-0000-0000-0000-000000000000"
        || user.login.as_deref().is_some_and(|l| l == id);
    if !unresolved {
        return Some(id.to_owned());
    }
    let login = user
        .login
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.eq_ignore_ascii_case("unknown"))?;
    Some(format!("login:{}", login.to_ascii_lowercase()))
}

export_rule!(PasswordSpray);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{EventBuilder, MockHost, shuffled};

    const T0: i64 = 1_772_000_000_000;
    const SEC: i64 = 1_000;
    const SPRAY_IP: &str = "203.0.113.77";

    fn okta_fail(user: &str, ip: &str, at_sec: i64) -> EventData {
        EventBuilder::okta(OKTA_SESSION_START)
            .id(&format!("fail-{user}-{ip}-{at_sec}"))
            .actor_user(user, &format!("{user}@example.com"))
            .outcome(Outcome::Failure)
            .ip(ip)
            .at(T0 + at_sec * SEC)
            .build()
    }

    /// `attempts` failures from `ip`, round-robin over `users` users, one
    /// every 20 seconds.
    fn spray(users: usize, attempts: usize, ip: &str) -> Vec<EventData> {
        (0..attempts)
            .map(|i| okta_fail(&format!("00u{:02}", i % users), ip, i as i64 * 20))
            .collect()
    }

    fn entra_fail(user_id: &str, upn: &str, code: &str, at_sec: i64) -> EventData {
        let mut e = EventBuilder::okta(ENTRA_SIGN_IN)
            .id(&format!("entra-{upn}-{at_sec}"))
            .actor_user(user_id, upn)
            .outcome(Outcome::Failure)
            .ip(SPRAY_IP)
            .attribute("error-code", code)
            .at(T0 + at_sec * SEC)
            .build();
        e.source = "entra".into();
        e
    }

    // 6 users, 15 attempts in 5 minutes: block the IP for 24 h and escalate.
    #[test]
    fn spray_blocks_the_ip_and_escalates() {
        let mut host = MockHost::new();
        let findings = host
            .feed_all::<PasswordSpray>(&spray(6, 15, SPRAY_IP))
            .unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, SPRAY_IP);
        assert_eq!(findings[0].severity, Severity::High);
        assert_eq!(host.requested.len(), 2);
        assert_eq!(
            host.requested[0],
            Action::BlockIp(BlockIp {
                ip: SPRAY_IP.into(),
                duration_secs: Some(24 * 3600)
            })
        );
        assert_eq!(host.requested[1].kind(), ActionKind::Escalate);
    }

    // Near miss: 4 users with 20 attempts (too few users).
    #[test]
    fn four_users_many_attempts_is_a_near_miss() {
        let mut host = MockHost::new();
        let events = spray(4, 20, SPRAY_IP);
        assert!(host.feed_all::<PasswordSpray>(&events).unwrap().is_empty());
        assert!(host.requested.is_empty());
    }

    // Near miss: 6 users with only 12 attempts (too few attempts).
    #[test]
    fn six_users_few_attempts_is_a_near_miss() {
        let mut host = MockHost::new();
        let events = spray(6, 12, SPRAY_IP);
        assert!(host.feed_all::<PasswordSpray>(&events).unwrap().is_empty());
        assert!(host.requested.is_empty());
    }

    // Benign: many failures, but each IP has one or two users.
    #[test]
    fn failures_spread_over_ips_do_not_fire() {
        let mut host = MockHost::new();
        let events: Vec<EventData> = (0..30)
            .map(|i| okta_fail(&format!("00u{i:02}"), &format!("198.51.100.{i}"), i * 10))
            .collect();
        assert!(host.feed_all::<PasswordSpray>(&events).unwrap().is_empty());
    }

    // Benign: the same attempts spread over an hour never fill a window.
    #[test]
    fn a_slow_spray_stays_under_the_rate() {
        let mut host = MockHost::new();
        let events: Vec<EventData> = (0..20)
            .map(|i| okta_fail(&format!("00u{:02}", i % 6), SPRAY_IP, i * 180))
            .collect();
        assert!(host.feed_all::<PasswordSpray>(&events).unwrap().is_empty());
    }

    // Successful sign-ins are not attempts, even from the spraying IP.
    #[test]
    fn successes_are_not_counted() {
        let mut host = MockHost::new();
        let events: Vec<EventData> = (0..20)
            .map(|i| {
                EventBuilder::okta(OKTA_SESSION_START)
                    .actor_user(&format!("00u{:02}", i % 6), "x@example.com")
                    .outcome(Outcome::Success)
                    .ip(SPRAY_IP)
                    .at(T0 + i * SEC)
                    .build()
            })
            .collect();
        assert!(host.feed_all::<PasswordSpray>(&events).unwrap().is_empty());
    }

    // 40 attempts in one window: one finding, one block, one escalation.
    #[test]
    fn fires_once_per_ip_per_window() {
        let mut host = MockHost::new();
        let events: Vec<EventData> = (0..40)
            .map(|i| okta_fail(&format!("00u{:02}", i % 8), SPRAY_IP, i * 10))
            .collect();
        assert_eq!(host.feed_all::<PasswordSpray>(&events).unwrap().len(), 1);
        assert_eq!(host.requested.len(), 2);
    }

    // A second burst after the window has passed fires again.
    #[test]
    fn a_new_window_fires_again() {
        let mut host = MockHost::new();
        let mut events = spray(6, 15, SPRAY_IP);
        events.extend(
            (0..15).map(|i| okta_fail(&format!("00u{:02}", i % 6), SPRAY_IP, 3600 + i * 20)),
        );
        assert_eq!(host.feed_all::<PasswordSpray>(&events).unwrap().len(), 2);
    }

    // Okta logs unknown users with id `unknown`: they count by login.
    #[test]
    fn unknown_okta_users_count_by_login() {
        let mut host = MockHost::new();
        let events: Vec<EventData> = (0..15)
            .map(|i| {
                EventBuilder::okta(OKTA_SESSION_START)
                    .actor_user("unknown", &format!("guess{}@example.com", i % 5))
                    .outcome(Outcome::Failure)
                    .ip(SPRAY_IP)
                    .at(T0 + i * 20 * SEC)
                    .build()
            })
            .collect();
        let findings = host.feed_all::<PasswordSpray>(&events).unwrap();
        assert_eq!(findings.len(), 1);
        let users = findings[0]
            .details
            .iter()
            .find(|(k, _)| k == "distinct_users")
            .unwrap();
        assert_eq!(users.1, "5");
    }

    // Entra 50126/50053 failures count; other error codes do not.
    #[test]
    fn entra_invalid_password_and_lockout_count() {
        let mut host = MockHost::new();
        let mut events: Vec<EventData> = (0..15)
            .map(|i| {
                let code = if i % 3 == 0 { "50053" } else { "50126" };
                let n = i % 5;
                entra_fail(
                    &format!("id-{n}"),
                    &format!("u{n}@example.com"),
                    code,
                    i * 20,
                )
            })
            .collect();
        assert_eq!(host.feed_all::<PasswordSpray>(&events).unwrap().len(), 1);

        let mut other = MockHost::new();
        events = (0..20)
            .map(|i| {
                let n = i % 6;
                entra_fail(
                    &format!("id-{n}"),
                    &format!("u{n}@example.com"),
                    "500121",
                    i * 20,
                )
            })
            .collect();
        assert!(other.feed_all::<PasswordSpray>(&events).unwrap().is_empty());
    }

    // Lower thresholds from config fire on a smaller burst.
    #[test]
    fn thresholds_come_from_config() {
        let mut host = MockHost::new()
            .with_config("min_users", 3)
            .with_config("min_attempts", 6)
            .with_config("block_hours", 2);
        let findings = host
            .feed_all::<PasswordSpray>(&spray(3, 6, SPRAY_IP))
            .unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(
            host.requested[0],
            Action::BlockIp(BlockIp {
                ip: SPRAY_IP.into(),
                duration_secs: Some(2 * 3600)
            })
        );
    }

    // A wider window from config catches a slower spray.
    #[test]
    fn window_comes_from_config() {
        let mut host = MockHost::new().with_config("window_minutes", 60);
        let events: Vec<EventData> = (0..15)
            .map(|i| okta_fail(&format!("00u{:02}", i % 6), SPRAY_IP, i * 180))
            .collect();
        assert_eq!(host.feed_all::<PasswordSpray>(&events).unwrap().len(), 1);
    }

    // A value that is not a number is an error naming the key.
    #[test]
    fn a_bad_config_value_is_an_error_naming_the_key() {
        let mut host = MockHost::new().with_config("min_users", "five");
        let err = host
            .feed::<PasswordSpray>(&okta_fail("00u01", SPRAY_IP, 0))
            .unwrap_err();
        assert!(err.contains("min_users"), "{err}");
    }

    // A window beyond the host's 7-day state limit is rejected by name.
    #[test]
    fn an_out_of_range_window_is_an_error_naming_the_key() {
        let mut host = MockHost::new().with_config("window_minutes", 20_000);
        let err = host
            .feed::<PasswordSpray>(&okta_fail("00u01", SPRAY_IP, 0))
            .unwrap_err();
        assert!(err.contains("window_minutes"), "{err}");
    }

    // A denied block is reported in the finding; the escalation still goes.
    #[test]
    fn a_denied_block_is_reported_in_the_finding() {
        let mut host = MockHost::new();
        host.granted = Some(vec![ActionKind::Escalate]);
        let findings = host
            .feed_all::<PasswordSpray>(&spray(6, 15, SPRAY_IP))
            .unwrap();
        let block = findings[0]
            .details
            .iter()
            .find(|(k, _)| k == "block_ip")
            .unwrap();
        assert!(block.1.starts_with("denied (not-granted)"), "{}", block.1);
        assert_eq!(host.requested.len(), 2);
    }

    // The example: 15 failures for 5 users from one IP within seven
    // minutes give one finding in time order, newest-first, and shuffled.
    #[test]
    fn a_spray_is_found_once_in_any_arrival_order() {
        let sorted: Vec<EventData> = (0..15)
            .map(|i| okta_fail(&format!("00u{:02}", i % 5), SPRAY_IP, i * 28))
            .collect();
        let mut newest_first = sorted.clone();
        newest_first.reverse();
        let mut orders = vec![sorted.clone(), newest_first];
        orders.extend((0..50).map(|seed| shuffled(sorted.clone(), seed)));
        for (n, order) in orders.into_iter().enumerate() {
            let mut host = MockHost::new();
            let findings = host.feed_all::<PasswordSpray>(&order).unwrap();
            assert_eq!(findings.len(), 1, "order {n}");
            assert_eq!(findings[0].subject, SPRAY_IP, "order {n}");
            assert_eq!(
                host.requested_kinds(),
                vec![ActionKind::BlockIp, ActionKind::Escalate],
                "order {n}"
            );
        }
    }

    // Near misses stay near misses in any order: the window around each
    // failure never holds more than what time order saw.
    #[test]
    fn a_near_miss_stays_quiet_in_any_arrival_order() {
        for events in [spray(4, 20, SPRAY_IP), spray(6, 12, SPRAY_IP)] {
            for seed in 0..30 {
                let mut host = MockHost::new();
                let order = shuffled(events.clone(), seed);
                assert!(host.feed_all::<PasswordSpray>(&order).unwrap().is_empty());
            }
        }
    }
}
