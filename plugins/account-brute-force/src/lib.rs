//! `account-brute-force`: many failed sign-ins, or repeated lockouts, for
//! one account, from any number of IPs.
//!
//! Password spraying tries few passwords against many accounts (see
//! `password-spray`); brute force and credential stuffing aimed at one
//! account try many passwords against it, often from a botnet or residential
//! proxies so that no single IP stands out. When one user gets at least
//! `min_failures` failed sign-ins (default 10, the lockout threshold of
//! both Okta's default password policy and Entra smart lockout) within
//! `window_minutes` (default 10), or is locked out at least `min_lockouts`
//! times (default 2) within `lockout_window_minutes` (default 60), the rule
//! reports a high finding about the user — with how many IPs the failures
//! came from — and escalates to the on-call. It asks for nothing that acts
//! on the account: suspending it would finish the attacker's denial of
//! service for them, and the attacker is not signed in.
//!
//! Signals:
//! - failures: Okta `user.session.start` with outcome `FAILURE` (any reason:
//!   `INVALID_CREDENTIALS`, `LOCKED_OUT`, `VERIFICATION_ERROR`, …); Entra
//!   `Sign-in activity` failing with 50126 (invalid username or password) or
//!   50053 (account locked by smart lockout).
//! - lockouts: Okta `user.account.lock`; Entra 50053 (also a failure).
//!
//! Users are counted by id; when the identity provider does not know the
//! account (Okta actor id `unknown`, Entra empty or all-zero `userId`), by
//! the lower-cased login, so attempts against one guessed name still add up.
//! Entra 50034 ("user does not exist") is not read: there is no account to
//! take over.
//!
//! Event time, whatever the arrival order: the counts are the host's windows
//! *around* each event, so a burst delivered newest-first is seen whole by
//! its last arrival, and "already reported" is a counter that looks both
//! ways in time: one finding per user per `dedupe_minutes` (default 60) on
//! either side, in any order.
//!
//! Config keys: `min_failures` (10, ≥ 1), `window_minutes` (10, 1–10080),
//! `min_lockouts` (2, ≥ 1), `lockout_window_minutes` (60, 1–10080),
//! `dedupe_minutes` (60, 1–10080).
//!
//! Blind spots: a slow attack under the rate (one attempt a minute stays
//! under 10 in 10 minutes; Okta's lockout then catches it, and two lockouts
//! are reported); a user who forgets their password on two devices at once
//! reaches the threshold too (the finding names the IPs, so a reviewer can
//! tell); failures that happen after the password step (MFA denials) are
//! `mfa-push-fatigue`'s.

use vigil_sdk::*;

pub struct AccountBruteForce;

const OKTA_SESSION_START: &str = "user.session.start";
const OKTA_ACCOUNT_LOCK: &str = "user.account.lock";
const ENTRA_SIGN_IN: &str = "Sign-in activity";
/// Entra error: invalid username or password.
const ENTRA_BAD_PASSWORD: &str = "50126";
/// Entra error: account locked (smart lockout).
const ENTRA_LOCKED: &str = "50053";
const MINUTE_MS: u64 = 60_000;
const MAX_MINUTES: u64 = 7 * 24 * 60;

struct Config {
    min_failures: u64,
    window_ms: u64,
    min_lockouts: u64,
    lockout_window_ms: u64,
    dedupe_ms: u64,
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

impl Config {
    fn read(host: &mut dyn Host) -> Result<Config, String> {
        Ok(Config {
            min_failures: in_range(host, "min_failures", 10, 1, u64::MAX)?,
            window_ms: in_range(host, "window_minutes", 10, 1, MAX_MINUTES)? * MINUTE_MS,
            min_lockouts: in_range(host, "min_lockouts", 2, 1, u64::MAX)?,
            lockout_window_ms: in_range(host, "lockout_window_minutes", 60, 1, MAX_MINUTES)?
                * MINUTE_MS,
            dedupe_ms: in_range(host, "dedupe_minutes", 60, 1, MAX_MINUTES)? * MINUTE_MS,
        })
    }
}

/// What an event means to this rule.
#[derive(Debug, PartialEq, Eq)]
struct Signal {
    failure: bool,
    lockout: bool,
}

fn signal(event: &Event) -> Option<Signal> {
    match event.kind() {
        OKTA_SESSION_START if event.source() == "okta" && event.outcome() == Outcome::Failure => {
            Some(Signal {
                failure: true,
                lockout: false,
            })
        }
        OKTA_ACCOUNT_LOCK if event.outcome() != Outcome::Failure => Some(Signal {
            failure: false,
            lockout: true,
        }),
        ENTRA_SIGN_IN if event.outcome() == Outcome::Failure => {
            match event.attribute("error-code")? {
                ENTRA_BAD_PASSWORD => Some(Signal {
                    failure: true,
                    lockout: false,
                }),
                ENTRA_LOCKED => Some(Signal {
                    failure: true,
                    lockout: true,
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

impl Rule for AccountBruteForce {
    fn metadata() -> Metadata {
        Metadata {
            id: "account-brute-force".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Escalates when one account gets many failed sign-ins or repeated \
                          lockouts in a short window, from any number of IPs (brute force, \
                          credential stuffing)."
                .into(),
            subscribes: vec![
                OKTA_SESSION_START.into(),
                OKTA_ACCOUNT_LOCK.into(),
                ENTRA_SIGN_IN.into(),
            ],
            actions: vec![ActionKind::Escalate],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::SubjectUser,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let Some(signal) = signal(event) else {
            return Ok(Vec::new());
        };
        let cfg = Config::read(host)?;
        let Some((user, login)) = user_key(event) else {
            host.log(
                Level::Debug,
                &format!("{} {} names no user", event.kind(), event.id()),
            );
            return Ok(Vec::new());
        };
        let failures = if signal.failure {
            if let Some(ip) = event.client_ip().filter(|ip| !ip.is_empty()) {
                host.distinct_add(&format!("ips:{user}"), ip, cfg.window_ms);
            }
            host.counter_add(&format!("failures:{user}"), cfg.window_ms, 1)
        } else {
            host.counter_get(&format!("failures:{user}"), cfg.window_ms)
        };
        let lockouts_key = format!("lockouts:{user}");
        let lockouts = if signal.lockout {
            host.counter_add(&lockouts_key, cfg.lockout_window_ms, 1)
        } else {
            host.counter_get(&lockouts_key, cfg.lockout_window_ms)
        };
        let by_failures = failures >= cfg.min_failures;
        let by_lockouts = lockouts >= cfg.min_lockouts;
        if !by_failures && !by_lockouts {
            return Ok(Vec::new());
        }
        // A counter, not a value: one finding per user per dedupe window on
        // either side in event time, whichever event is delivered first.
        let fired_key = format!("fired:{user}");
        if host.counter_get(&fired_key, cfg.dedupe_ms) > 0 {
            return Ok(Vec::new());
        }
        host.counter_add(&fired_key, cfg.dedupe_ms, 1);

        let ips = host.distinct_count(&format!("ips:{user}"), cfg.window_ms);
        let window_minutes = cfg.window_ms / MINUTE_MS;
        let title = if by_failures {
            format!(
                "Brute force against {login}: {failures} failed sign-ins from {ips} IPs \
                 in {window_minutes} minutes"
            )
        } else {
            format!(
                "Brute force against {login}: locked out {lockouts} times in {} minutes",
                cfg.lockout_window_ms / MINUTE_MS
            )
        };
        let subject = event
            .subject_user()
            .map(|u| u.id.clone())
            .filter(|id| !unresolved(id, event))
            .unwrap_or_else(|| login.clone());
        let mut finding = Finding::new(Severity::High, title, subject)
            .detail("login", &login)
            .detail("failed_sign_ins", failures)
            .detail("distinct_ips", ips)
            .detail("window_minutes", window_minutes)
            .detail("lockouts", lockouts)
            .detail("lockout_window_minutes", cfg.lockout_window_ms / MINUTE_MS)
            .detail("source", event.source());
        if let Some(ip) = &event.client_ip() {
            finding = finding.detail("client_ip", ip);
        }
        if let Some(reason) = event.failure_reason() {
            finding = finding.detail("failure_reason", reason);
        }
        let escalate = Action::Escalate(Message {
            severity: Severity::High,
            summary: format!(
                "{login}: {failures} failed sign-ins from {ips} IPs in {window_minutes} \
                 minutes, {lockouts} lockouts: likely brute force or credential stuffing \
                 against this account"
            ),
            details: finding.details.clone(),
        });
        finding = finding.detail("escalate", describe(&host.request(&escalate)));
        Ok(vec![finding])
    }
}

/// Whether the provider did not resolve the account the event names.
fn unresolved(id: &str, event: &Event) -> bool {
    let id = id.trim();
    id.is_empty()
        || id.eq_ignore_ascii_case("unknown")
        || id == "00000000-0000-0000-0000-000000000000"
        || event
            .subject_user()
            .and_then(|u| u.login.as_deref())
            .is_some_and(|l| l == id)
}

/// The state key for the account (its id, or `login:<name>` when the
/// provider did not resolve it) and a name for people.
fn user_key(event: &Event) -> Option<(String, String)> {
    let user = event.subject_user()?;
    let login = user
        .login
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.eq_ignore_ascii_case("unknown"));
    if !unresolved(&user.id, event) {
        let name = login.unwrap_or(&user.id).to_owned();
        return Some((user.id.trim().to_owned(), name));
    }
    let login = login?.to_ascii_lowercase();
    Some((format!("login:{login}"), login))
}

export_rule!(AccountBruteForce);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{EventBuilder, MockHost, shuffled};

    const T0: i64 = 1_772_000_000_000;
    const SEC: i64 = 1_000;

    fn okta_fail(user: &str, ip: &str, at_sec: i64) -> EventData {
        EventBuilder::okta(OKTA_SESSION_START)
            .id(&format!("fail-{user}-{ip}-{at_sec}"))
            .actor_user(user, &format!("{user}@example.com"))
            .outcome(Outcome::Failure)
            .ip(ip)
            .at(T0 + at_sec * SEC)
            .build()
    }

    fn lock(user: &str, at_sec: i64) -> EventData {
        EventBuilder::okta(OKTA_ACCOUNT_LOCK)
            .id(&format!("lock-{user}-{at_sec}"))
            .actor_user(user, &format!("{user}@example.com"))
            .outcome(Outcome::Success)
            .at(T0 + at_sec * SEC)
            .build()
    }

    fn entra_fail(code: &str, at_sec: i64) -> EventData {
        let mut e = EventBuilder::okta(ENTRA_SIGN_IN)
            .id(&format!("entra-{code}-{at_sec}"))
            .actor_user("6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab", "lee@contoso.com")
            .outcome(Outcome::Failure)
            .ip(&format!("192.0.2.{}", at_sec % 200))
            .attribute("error-code", code)
            .at(T0 + at_sec * SEC)
            .build();
        e.source = "entra".into();
        e
    }

    /// `n` failures for `user`, one every `every` seconds, from rotating IPs.
    fn burst(user: &str, n: i64, every: i64) -> Vec<EventData> {
        (0..n)
            .map(|i| okta_fail(user, &format!("203.0.113.{}", i % 7), i * every))
            .collect()
    }

    // Ten failures from seven IPs in five minutes: one high finding, one
    // escalation, nothing that touches the account.
    #[test]
    fn ten_failures_for_one_user_escalate() {
        let mut host = MockHost::new();
        let f = host
            .feed_all::<AccountBruteForce>(&burst("00u1", 10, 30))
            .unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "00u1");
        assert_eq!(f[0].severity, Severity::High);
        assert!(
            f[0].title.contains("10 failed sign-ins from 7 IPs"),
            "{}",
            f[0].title
        );
        assert_eq!(host.requested_kinds(), vec![ActionKind::Escalate]);
    }

    // Near misses: nine failures; ten spread over 30 minutes; one lockout.
    #[test]
    fn near_misses_stay_quiet() {
        let mut host = MockHost::new();
        assert!(
            host.feed_all::<AccountBruteForce>(&burst("00u1", 9, 30))
                .unwrap()
                .is_empty()
        );
        let mut host = MockHost::new();
        assert!(
            host.feed_all::<AccountBruteForce>(&burst("00u2", 10, 200))
                .unwrap()
                .is_empty()
        );
        let mut host = MockHost::new();
        assert!(
            host.feed::<AccountBruteForce>(&lock("00u3", 0))
                .unwrap()
                .is_empty()
        );
    }

    // A spray (one failure each for many users) is not brute force.
    #[test]
    fn one_failure_each_for_many_users_is_not_brute_force() {
        let mut host = MockHost::new();
        let events: Vec<EventData> = (0..30)
            .map(|i| okta_fail(&format!("00u{i:02}"), "203.0.113.9", i * 5))
            .collect();
        assert!(
            host.feed_all::<AccountBruteForce>(&events)
                .unwrap()
                .is_empty()
        );
    }

    // Two lockouts within the hour, with few failures logged: reported.
    #[test]
    fn two_lockouts_in_an_hour_are_reported() {
        let mut host = MockHost::new();
        let f = host
            .feed_all::<AccountBruteForce>(&[lock("00u1", 0), lock("00u1", 40 * 60)])
            .unwrap();
        assert_eq!(f.len(), 1);
        assert!(f[0].title.contains("locked out 2 times"), "{}", f[0].title);
    }

    // Entra: 50126 and 50053 count, 50053 also as a lockout; 50034 does not.
    #[test]
    fn entra_bad_passwords_and_lockouts_count() {
        let mut host = MockHost::new();
        let mut events: Vec<EventData> = (0..8).map(|i| entra_fail("50126", i * 20)).collect();
        events.push(entra_fail("50053", 200));
        events.push(entra_fail("50053", 220));
        let f = host.feed_all::<AccountBruteForce>(&events).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab");
        let mut host = MockHost::new();
        let unknown: Vec<EventData> = (0..20).map(|i| entra_fail("50034", i * 10)).collect();
        assert!(
            host.feed_all::<AccountBruteForce>(&unknown)
                .unwrap()
                .is_empty()
        );
    }

    // An account Okta does not know is counted by the name tried.
    #[test]
    fn unknown_accounts_count_by_login() {
        let mut host = MockHost::new();
        let events: Vec<EventData> = (0..10)
            .map(|i| {
                EventBuilder::okta(OKTA_SESSION_START)
                    .actor_user("unknown", "CEO@example.com")
                    .outcome(Outcome::Failure)
                    .ip("203.0.113.5")
                    .at(T0 + i * 10 * SEC)
                    .build()
            })
            .collect();
        let f = host.feed_all::<AccountBruteForce>(&events).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "ceo@example.com");
    }

    // Newest-first and shuffled: the same single finding.
    #[test]
    fn found_once_in_any_arrival_order() {
        let sorted = burst("00u1", 14, 20);
        let mut reversed = sorted.clone();
        reversed.reverse();
        let mut orders = vec![sorted.clone(), reversed];
        orders.extend((0..40).map(|seed| shuffled(sorted.clone(), seed)));
        for (n, order) in orders.into_iter().enumerate() {
            let mut host = MockHost::new();
            let f = host.feed_all::<AccountBruteForce>(&order).unwrap();
            assert_eq!(f.len(), 1, "order {n}");
            assert_eq!(
                host.requested_kinds(),
                vec![ActionKind::Escalate],
                "order {n}"
            );
        }
    }

    // Thresholds come from config; a bad value names its key.
    #[test]
    fn config_is_read_and_checked() {
        let mut host = MockHost::new().with_config("min_failures", 5);
        assert_eq!(
            host.feed_all::<AccountBruteForce>(&burst("00u1", 5, 30))
                .unwrap()
                .len(),
            1
        );
        for key in [
            "min_failures",
            "window_minutes",
            "min_lockouts",
            "lockout_window_minutes",
            "dedupe_minutes",
        ] {
            let mut host = MockHost::new().with_config(key, "many");
            let err = host
                .feed::<AccountBruteForce>(&okta_fail("00u1", "203.0.113.1", 0))
                .unwrap_err();
            assert!(err.contains(key), "{err}");
        }
        let mut host = MockHost::new().with_config("window_minutes", 0);
        let err = host
            .feed::<AccountBruteForce>(&okta_fail("00u1", "203.0.113.1", 0))
            .unwrap_err();
        assert!(err.contains("window_minutes"), "{err}");
    }

    // One finding per user per hour; again after it.
    #[test]
    fn reports_once_per_dedupe_window() {
        let mut host = MockHost::new();
        let mut events = burst("00u1", 30, 10);
        events.extend((0..10).map(|i| okta_fail("00u1", "203.0.113.1", 2 * 3600 + i * 10)));
        assert_eq!(
            host.feed_all::<AccountBruteForce>(&events).unwrap().len(),
            2
        );
    }
}
