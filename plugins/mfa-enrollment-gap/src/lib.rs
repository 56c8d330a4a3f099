//! `mfa-enrollment-gap`: a user who is active without any MFA factor.
//!
//! A new or existing account that signs in with a password alone and never
//! enrolls a second factor is one password away from takeover. The rule
//! remembers when it first saw each user (activated or signing in) and, if
//! no MFA enrollment or MFA use is seen within `grace_hours` (default 24),
//! reports a finding (severity medium), asks to add the user to the
//! "MFA enrollment required" group `group_id` (so the operator's enrollment
//! policy applies to them) and sends a `notify` (severity medium).
//!
//! Signals:
//! - "seen" (starts or continues the grace period): Okta
//!   `user.lifecycle.activate` (the user is the `User` target); Okta
//!   `user.session.start` success; Entra directory audit `Add user`; Entra
//!   `Sign-in activity` success (error code 0).
//! - "enrolled" (ends it): Okta `user.mfa.factor.activate`; Okta
//!   `user.authentication.auth_via_mfa` success; Entra `User registered
//!   security info`, `User registered all required security info` and
//!   `Admin registered security info`; a successful sign-in that itself
//!   shows a second factor (Okta `debugData.factor` / `credentialType` other
//!   than a password, IWA, JWT or assertion; Entra `mfaDetail.authMethod`
//!   set, or `authenticationRequirement` = `multiFactorAuthentication`).
//! - Okta `user.mfa.factor.reset_all` forgets the enrollment and restarts
//!   the grace period from the reset.
//!
//! Config keys:
//! - `grace_hours` (default 24, 0–168): time allowed between first sight and
//!   a first factor.
//! - `settle_minutes` (default 10, 0–1440): the finding is made at the first
//!   sighting at least this long after the first sighting past the grace
//!   period (both without a factor seen up to them), not at that first one:
//!   the factor of a sign-in is often logged a moment after it and may be
//!   delivered later still, and a late enrollment cannot take a finding
//!   back. Keep it at least the host's lateness bound (`late_after_secs`).
//! - `group_id` (no default, required for the group action): the id of the
//!   "MFA enrollment required" group (Okta group id or Entra group object
//!   id). When it is missing or empty the rule still reports the finding
//!   and sends the `notify`, adds the detail `group` = "not configured" and
//!   logs a warning; it never asks for an `add-to-group` without a group.
//!
//! State (host state only): the values `first:<user>` = first-seen time and
//! event kind and `enrolled:<user>`, each with a 7-day TTL (the host's
//! maximum) that is refreshed whenever the user is seen again, so a user
//! active at least weekly is tracked indefinitely, and the counter
//! `fired:<user>`. It fires once per user per 7 days on either side in
//! event time: a user who stays without MFA is reported again weekly.
//!
//! Event time, whatever the arrival order: values are seen only by events
//! at or after the time that set them, so an enrollment delivered late
//! still covers the sightings after it and not those before it; with the
//! settling delay above, events delivered out of order by less than
//! `settle_minutes` give the same findings as in time order.
//!
//! Blind spots:
//! - There are no timers: time is event time, so the check only happens on
//!   the user's sightings *after* the grace period, and the report on the
//!   second of them at least `settle_minutes` apart. A user who never signs
//!   in again is never reported, and the report comes late for someone who
//!   signs in rarely.
//! - Factors enrolled before Vigil started watching, or not used within the
//!   last 7 days, are unknown: a user who has a factor but signs in with a
//!   password alone (remembered device, policy without MFA) is reported.
//!   The rule cannot query the identity provider's factor inventory.
//! - A user unseen for more than 7 days is forgotten; the grace period then
//!   starts again from the next sighting.
//! - Okta and Entra ids are separate: enrolling in one provider does not
//!   clear the other provider's identity of the same person.
//! - Deactivating single factors (`user.mfa.factor.deactivate`) is not
//!   tracked, since other factors may remain; only `reset_all` is.

use vigil_sdk::*;

pub struct MfaEnrollmentGap;

const OKTA_ACTIVATE: &str = "user.lifecycle.activate";
const OKTA_SESSION_START: &str = "user.session.start";
const OKTA_AUTH_VIA_MFA: &str = "user.authentication.auth_via_mfa";
const OKTA_FACTOR_ACTIVATE: &str = "user.mfa.factor.activate";
const OKTA_FACTOR_RESET_ALL: &str = "user.mfa.factor.reset_all";
const ENTRA_SIGN_IN: &str = "Sign-in activity";
const ENTRA_ADD_USER: &str = "Add user";
const ENTRA_REGISTERED: [&str; 3] = [
    "User registered security info",
    "User registered all required security info",
    "Admin registered security info",
];

const HOUR_MS: u64 = 3_600_000;
/// The host's longest TTL.
const TTL_MS: u64 = 7 * 24 * HOUR_MS;
const MAX_GRACE_HOURS: u64 = 7 * 24;
const MAX_SETTLE_MINUTES: u64 = 24 * 60;

/// Factor names that are not a second factor.
const NOT_MFA: [&str; 8] = [
    "password",
    "password_as_factor",
    "iwa",
    "jwt",
    "assertion",
    "none",
    "unknown",
    "null",
];

/// What an event says about a user's MFA.
#[derive(Debug, PartialEq, Eq)]
enum Signal {
    /// Active without MFA evidence.
    Seen,
    /// Enrolled a factor or used one.
    Enrolled,
    /// All factors were reset: no factor left.
    Reset,
}

impl Rule for MfaEnrollmentGap {
    fn metadata() -> Metadata {
        let mut subscribes: Vec<String> = [
            OKTA_ACTIVATE,
            OKTA_SESSION_START,
            OKTA_AUTH_VIA_MFA,
            OKTA_FACTOR_ACTIVATE,
            OKTA_FACTOR_RESET_ALL,
            ENTRA_SIGN_IN,
            ENTRA_ADD_USER,
        ]
        .map(String::from)
        .to_vec();
        subscribes.extend(ENTRA_REGISTERED.map(String::from));
        Metadata {
            id: "mfa-enrollment-gap".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Adds a user who is active without enrolling an MFA factor within a \
                          grace period to the MFA-enrollment-required group and notifies."
                .into(),
            subscribes,
            actions: vec![ActionKind::AddToGroup, ActionKind::Notify],
            // The rule judges nothing else: the host need not call it.
            outcomes: vec![Outcome::Success, Outcome::Unknown],
            classes: vec![],
            partition: PartitionKey::SubjectUser,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let grace_hours = host.config_u64("grace_hours", 24)?;
        if grace_hours > MAX_GRACE_HOURS {
            return Err(format!(
                "config `grace_hours` must be between 0 and {MAX_GRACE_HOURS}, got {grace_hours}"
            ));
        }
        let settle_minutes = host.config_u64("settle_minutes", 10)?;
        if settle_minutes > MAX_SETTLE_MINUTES {
            return Err(format!(
                "config `settle_minutes` must be between 0 and {MAX_SETTLE_MINUTES}, got {settle_minutes}"
            ));
        }
        let settle_ms = (settle_minutes * 60_000) as i64;
        let Some(signal) = signal(event) else {
            return Ok(Vec::new());
        };
        let Some(user) = event.subject_user().filter(|u| !u.id.is_empty()) else {
            host.log(Level::Debug, &format!("event {} names no user", event.id()));
            return Ok(Vec::new());
        };
        let enrolled_key = format!("enrolled:{}", user.id);
        let first_key = format!("first:{}", user.id);
        let overdue_key = format!("overdue:{}", user.id);
        match signal {
            Signal::Enrolled => {
                host.set(&enrolled_key, event.id(), Some(TTL_MS));
                host.delete(&first_key);
                host.delete(&overdue_key);
                return Ok(Vec::new());
            }
            Signal::Reset => {
                host.delete(&enrolled_key);
                host.delete(&overdue_key);
                host.set(
                    &first_key,
                    &format!("{} {}", event.time(), event.kind()),
                    Some(TTL_MS),
                );
                return Ok(Vec::new());
            }
            Signal::Seen => {}
        }

        if let Some(enrolled) = host.get(&enrolled_key) {
            // Still active and enrolled: keep remembering it.
            host.set(&enrolled_key, &enrolled, Some(TTL_MS));
            return Ok(Vec::new());
        }
        let Some(first) = host.get(&first_key) else {
            host.set(
                &first_key,
                &format!("{} {}", event.time(), event.kind()),
                Some(TTL_MS),
            );
            return Ok(Vec::new());
        };
        host.set(&first_key, &first, Some(TTL_MS));
        let (first_time, first_kind) = parse_first(&first);
        let elapsed_ms = event.time().saturating_sub(first_time);
        if elapsed_ms < 0 || (elapsed_ms as u64) < grace_hours * HOUR_MS {
            return Ok(Vec::new());
        }
        // Overdue, as far as this event can tell. The factor of this very
        // sign-in may be logged a moment later and be delivered after it,
        // so the finding waits for a sighting at least `settle_minutes`
        // after the first overdue one: by then everything up to that one
        // has arrived (keep it at least the host's lateness bound).
        let overdue_since = host.get(&overdue_key).and_then(|v| v.parse::<i64>().ok());
        match overdue_since {
            None => {
                host.set(&overdue_key, &event.time().to_string(), Some(TTL_MS));
                return Ok(Vec::new());
            }
            Some(since) if event.time().saturating_sub(since) < settle_ms => {
                return Ok(Vec::new());
            }
            Some(_) => {}
        }
        // A counter, not a value: one finding per user per 7 days on either
        // side in event time, whichever sighting is delivered first.
        let fired_key = format!("fired:{}", user.id);
        if host.counter_get(&fired_key, TTL_MS) > 0 {
            return Ok(Vec::new());
        }
        host.counter_add(&fired_key, TTL_MS, 1);

        let login = user.login.clone().unwrap_or_else(|| user.id.clone());
        let hours = elapsed_ms as u64 / HOUR_MS;
        let mut finding = Finding::new(
            Severity::Medium,
            format!("MFA enrollment gap: {login} has no MFA factor {hours} h after first seen"),
            user.id.clone(),
        )
        .detail("login", &login)
        .detail("source", event.source())
        .detail("first_seen", rfc3339(first_time))
        .detail("first_seen_event", first_kind)
        .detail("hours_without_mfa", hours)
        .detail("grace_hours", grace_hours)
        .detail("last_event", event.kind())
        .detail("last_seen", rfc3339(event.time()));
        if let Some(ip) = &event.client_ip() {
            finding = finding.detail("last_client_ip", ip);
        }
        if let Some(factor) = &event.factor() {
            finding = finding.detail("last_factor", factor);
        }

        let group = host
            .config("group_id")
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty());
        match &group {
            Some(group) => {
                let add = Action::AddToGroup(GroupMembership {
                    user: user.id.clone(),
                    group: group.clone(),
                });
                finding = finding
                    .detail("group", group)
                    .detail("add_to_group", describe(&host.request(&add)));
            }
            None => {
                host.log(
                    Level::Warn,
                    "config `group_id` is not set: reporting without adding the user to a group",
                );
                finding = finding.detail("group", "not configured (set config `group_id`)");
            }
        }
        let notify = Action::Notify(Message {
            severity: Severity::Medium,
            summary: format!(
                "{login} has been active for {hours} h without enrolling an MFA factor{}",
                if group.is_some() {
                    "; added to the MFA enrollment group"
                } else {
                    ""
                }
            ),
            details: finding.details.clone(),
        });
        finding = finding.detail("notify", describe(&host.request(&notify)));
        Ok(vec![finding])
    }
}

/// Classifies an event, or `None` when it says nothing about MFA enrollment.
fn signal(event: &Event) -> Option<Signal> {
    let ok = event.outcome() != Outcome::Failure;
    let success = event.outcome() == Outcome::Success;
    let kind = event.kind();
    match kind {
        OKTA_FACTOR_ACTIVATE if ok => Some(Signal::Enrolled),
        OKTA_AUTH_VIA_MFA if success => Some(Signal::Enrolled),
        OKTA_FACTOR_RESET_ALL if ok => Some(Signal::Reset),
        OKTA_ACTIVATE | ENTRA_ADD_USER if ok => Some(Signal::Seen),
        OKTA_SESSION_START | ENTRA_SIGN_IN if success => Some(if shows_mfa(event) {
            Signal::Enrolled
        } else {
            Signal::Seen
        }),
        _ if ok && ENTRA_REGISTERED.contains(&kind) => Some(Signal::Enrolled),
        _ => None,
    }
}

/// Whether a successful sign-in itself used a second factor.
fn shows_mfa(event: &Event) -> bool {
    let factor = event
        .factor()
        .map(str::trim)
        .is_some_and(|f| !f.is_empty() && !NOT_MFA.iter().any(|n| f.eq_ignore_ascii_case(n)));
    let required = event
        .attribute("authentication-requirement")
        .is_some_and(|r| r.eq_ignore_ascii_case("multiFactorAuthentication"));
    factor || required
}

/// `"<unix ms> <event kind>"` as stored under `first:<user>`.
fn parse_first(value: &str) -> (i64, &str) {
    let (time, kind) = value.split_once(' ').unwrap_or((value, "unknown"));
    (time.parse().unwrap_or(i64::MAX), kind)
}

/// Unix milliseconds as RFC 3339 UTC (`2026-03-01T10:02:03.123Z`).
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

export_rule!(MfaEnrollmentGap);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{EventBuilder, MockHost};

    /// 2026-03-01T00:00:00Z.
    const T0: i64 = 1_772_323_200_000;
    const HOUR: i64 = 3_600_000;
    const GROUP: &str = "00gmfarequired01";

    fn host() -> MockHost {
        MockHost::new().with_config("group_id", GROUP)
    }

    fn activate(user: &str, hour: i64) -> EventData {
        EventBuilder::okta(OKTA_ACTIVATE)
            .id(&format!("activate-{user}-{hour}"))
            .actor_user("00uadmin", "admin@example.com")
            .target_user(user, &format!("{user}@example.com"))
            .outcome(Outcome::Success)
            .at(T0 + hour * HOUR)
            .build()
    }

    fn sign_in(user: &str, hour: i64) -> EventData {
        EventBuilder::okta(OKTA_SESSION_START)
            .id(&format!("signin-{user}-{hour}"))
            .actor_user(user, &format!("{user}@example.com"))
            .outcome(Outcome::Success)
            .factor("PASSWORD")
            .ip("198.51.100.10")
            .at(T0 + hour * HOUR)
            .build()
    }

    fn factor_activate(user: &str, hour: i64) -> EventData {
        EventBuilder::okta(OKTA_FACTOR_ACTIVATE)
            .actor_user(user, &format!("{user}@example.com"))
            .target_user(user, &format!("{user}@example.com"))
            .outcome(Outcome::Success)
            .factor("FIDO_WEBAUTHN")
            .at(T0 + hour * HOUR)
            .build()
    }

    // Activated, then a password-only sign-in 30 h later: group + notify.
    #[test]
    fn no_factor_after_grace_adds_to_group_and_notifies() {
        let mut host = host();
        let events = [
            activate("00unew1", 0),
            sign_in("00unew1", 30),
            sign_in("00unew1", 31),
        ];
        let findings = host.feed_all::<MfaEnrollmentGap>(&events).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, "00unew1");
        assert_eq!(findings[0].severity, Severity::Medium);
        assert_eq!(
            host.requested[0],
            Action::AddToGroup(GroupMembership {
                user: "00unew1".into(),
                group: GROUP.into()
            })
        );
        assert_eq!(host.requested[1].kind(), ActionKind::Notify);
        assert_eq!(host.requested.len(), 2);
        let first = findings[0]
            .details
            .iter()
            .find(|(k, _)| k == "first_seen")
            .unwrap();
        assert_eq!(first.1, "2026-03-01T00:00:00.000Z");
    }

    // Near miss: the next sign-in comes inside the grace period.
    #[test]
    fn sign_in_inside_grace_is_a_near_miss() {
        let mut host = host();
        let events = [activate("00unew1", 0), sign_in("00unew1", 23)];
        assert!(
            host.feed_all::<MfaEnrollmentGap>(&events)
                .unwrap()
                .is_empty()
        );
        assert!(host.requested.is_empty());
    }

    // Near miss: a factor enrolled within the grace period clears the user.
    #[test]
    fn enrollment_inside_grace_clears_the_user() {
        let mut host = host();
        let events = [
            activate("00unew1", 0),
            factor_activate("00unew1", 2),
            sign_in("00unew1", 30),
            sign_in("00unew1", 60),
        ];
        assert!(
            host.feed_all::<MfaEnrollmentGap>(&events)
                .unwrap()
                .is_empty()
        );
    }

    // A sign-in that itself used a push counts as enrolled.
    #[test]
    fn a_sign_in_with_a_second_factor_counts_as_enrolled() {
        let mut host = host();
        let mfa_sign_in = EventBuilder::okta(OKTA_SESSION_START)
            .actor_user("00uold1", "old1@example.com")
            .outcome(Outcome::Success)
            .factor("OKTA_VERIFY_PUSH")
            .at(T0 + HOUR)
            .build();
        let events = [sign_in("00uold1", 0), mfa_sign_in, sign_in("00uold1", 40)];
        assert!(
            host.feed_all::<MfaEnrollmentGap>(&events)
                .unwrap()
                .is_empty()
        );
    }

    // A successful auth_via_mfa counts as enrolled; a failed one does not.
    #[test]
    fn auth_via_mfa_success_counts_failure_does_not() {
        let via = |outcome, hour| {
            EventBuilder::okta(OKTA_AUTH_VIA_MFA)
                .actor_user("00uold2", "old2@example.com")
                .outcome(outcome)
                .factor("OKTA_VERIFY_PUSH")
                .at(T0 + hour * HOUR)
                .build()
        };
        let mut ok = host();
        let events = [
            sign_in("00uold2", 0),
            via(Outcome::Success, 1),
            sign_in("00uold2", 30),
        ];
        assert!(ok.feed_all::<MfaEnrollmentGap>(&events).unwrap().is_empty());
        let mut failed = host();
        let events = [
            sign_in("00uold2", 0),
            via(Outcome::Failure, 1),
            sign_in("00uold2", 30),
            sign_in("00uold2", 31),
        ];
        assert_eq!(
            failed.feed_all::<MfaEnrollmentGap>(&events).unwrap().len(),
            1
        );
    }

    // Entra: Add user, then a single-factor sign-in 2 days later fires;
    // "User registered security info" in between clears it.
    #[test]
    fn entra_add_user_and_registration() {
        let entra = |kind: &str, outcome, hour, mfa: bool| {
            let mut b = EventBuilder::okta(kind)
                .outcome(outcome)
                .at(T0 + hour * HOUR);
            b = if kind == ENTRA_SIGN_IN {
                b.actor_user("e-user-1", "new@contoso.com")
                    .attribute("error-code", "0")
                    .attribute(
                        "authentication-requirement",
                        if mfa {
                            "multiFactorAuthentication"
                        } else {
                            "singleFactorAuthentication"
                        },
                    )
            } else if kind == ENTRA_ADD_USER {
                b.actor_user("e-admin", "admin@contoso.com")
                    .target_user("e-user-1", "new@contoso.com")
            } else {
                b.actor_user("e-user-1", "new@contoso.com")
                    .target_user("e-user-1", "new@contoso.com")
            };
            let mut e = b.build();
            e.source = "entra".into();
            e
        };
        let mut gap = host();
        let events = [
            entra(ENTRA_ADD_USER, Outcome::Success, 0, false),
            entra(ENTRA_SIGN_IN, Outcome::Success, 48, false),
            entra(ENTRA_SIGN_IN, Outcome::Success, 49, false),
        ];
        assert_eq!(gap.feed_all::<MfaEnrollmentGap>(&events).unwrap().len(), 1);

        let mut ok = host();
        let events = [
            entra(ENTRA_ADD_USER, Outcome::Success, 0, false),
            entra(ENTRA_REGISTERED[0], Outcome::Success, 1, false),
            entra(ENTRA_SIGN_IN, Outcome::Success, 48, false),
        ];
        assert!(ok.feed_all::<MfaEnrollmentGap>(&events).unwrap().is_empty());

        let mut mfa = host();
        let events = [
            entra(ENTRA_ADD_USER, Outcome::Success, 0, false),
            entra(ENTRA_SIGN_IN, Outcome::Success, 1, true),
            entra(ENTRA_SIGN_IN, Outcome::Success, 48, false),
        ];
        assert!(
            mfa.feed_all::<MfaEnrollmentGap>(&events)
                .unwrap()
                .is_empty()
        );
    }

    // Daily password-only sign-ins for 6 days: one finding.
    #[test]
    fn fires_once_per_user() {
        let mut host = host();
        let events: Vec<EventData> = (0..7).map(|d| sign_in("00unew1", d * 24)).collect();
        assert_eq!(host.feed_all::<MfaEnrollmentGap>(&events).unwrap().len(), 1);
        assert_eq!(host.requested.len(), 2);
    }

    // Users are tracked separately.
    #[test]
    fn users_are_tracked_separately() {
        let mut host = host();
        let events = [activate("00ua", 0), sign_in("00ub", 30)];
        assert!(
            host.feed_all::<MfaEnrollmentGap>(&events)
                .unwrap()
                .is_empty()
        );
    }

    // reset_all forgets the enrollment: the grace period restarts.
    #[test]
    fn reset_all_restarts_the_grace_period() {
        let reset = EventBuilder::okta(OKTA_FACTOR_RESET_ALL)
            .actor_user("00uadmin", "admin@example.com")
            .target_user("00unew1", "00unew1@example.com")
            .outcome(Outcome::Success)
            .at(T0 + 10 * HOUR)
            .build();
        let mut host = host();
        let events = [
            factor_activate("00unew1", 0),
            reset,
            sign_in("00unew1", 20),
            sign_in("00unew1", 40),
            sign_in("00unew1", 41),
        ];
        let findings = host.feed_all::<MfaEnrollmentGap>(&events).unwrap();
        assert_eq!(findings.len(), 1);
        let hours = findings[0]
            .details
            .iter()
            .find(|(k, _)| k == "hours_without_mfa")
            .unwrap();
        assert_eq!(hours.1, "31");
    }

    // Without group_id: finding and notify, no add-to-group, a detail says so.
    #[test]
    fn missing_group_still_reports_and_notifies() {
        let mut host = MockHost::new();
        let events = [
            activate("00unew1", 0),
            sign_in("00unew1", 30),
            sign_in("00unew1", 31),
        ];
        let findings = host.feed_all::<MfaEnrollmentGap>(&events).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(host.requested_kinds(), vec![ActionKind::Notify]);
        let group = findings[0]
            .details
            .iter()
            .find(|(k, _)| k == "group")
            .unwrap();
        assert!(group.1.starts_with("not configured"), "{}", group.1);
    }

    // grace_hours from config: 4 h.
    #[test]
    fn grace_comes_from_config() {
        let mut host = host().with_config("grace_hours", 4);
        let events = [
            activate("00unew1", 0),
            sign_in("00unew1", 5),
            sign_in("00unew1", 6),
        ];
        assert_eq!(host.feed_all::<MfaEnrollmentGap>(&events).unwrap().len(), 1);
    }

    // A value that is not a number is an error naming the key.
    #[test]
    fn a_bad_config_value_is_an_error_naming_the_key() {
        let mut host = host().with_config("grace_hours", "one day");
        let err = host
            .feed::<MfaEnrollmentGap>(&activate("00unew1", 0))
            .unwrap_err();
        assert!(err.contains("grace_hours"), "{err}");
    }

    // A grace period beyond the 7-day state limit is rejected by name.
    #[test]
    fn a_grace_beyond_seven_days_is_an_error_naming_the_key() {
        let mut host = host().with_config("grace_hours", 200);
        let err = host
            .feed::<MfaEnrollmentGap>(&activate("00unew1", 0))
            .unwrap_err();
        assert!(err.contains("grace_hours"), "{err}");
    }

    // The date formatter matches RFC 3339 for a known instant.
    #[test]
    fn rfc3339_formats_event_time() {
        assert_eq!(rfc3339(1_772_359_323_123), "2026-03-01T10:02:03.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    // The factor of a sign-in is logged a moment after it and may arrive
    // later still: the first overdue sighting only starts the settling
    // delay, so a late factor of the same flow clears the user.
    #[test]
    fn a_factor_delivered_after_its_sign_in_still_clears_the_user() {
        let mfa = |minute: i64| {
            EventBuilder::okta(OKTA_AUTH_VIA_MFA)
                .actor_user("00uold3", "old3@example.com")
                .outcome(Outcome::Success)
                .factor("OKTA_VERIFY_PUSH")
                .at(T0 + 30 * HOUR + minute * 60_000)
                .build()
        };
        let sign_in_at = |minute: i64| {
            let mut e = sign_in("00uold3", 30);
            e.time += minute * 60_000;
            e
        };
        let mut h = host();
        // Sign-in at 30 h + 1 min delivered before its factor at 30 h.
        let events = [sign_in("00uold3", 0), sign_in_at(1), mfa(0), sign_in_at(40)];
        assert!(h.feed_all::<MfaEnrollmentGap>(&events).unwrap().is_empty());
        // Without the factor the second sighting, 39 minutes later, reports.
        let mut h = host();
        let events = [sign_in("00uold3", 0), sign_in_at(1), sign_in_at(40)];
        assert_eq!(h.feed_all::<MfaEnrollmentGap>(&events).unwrap().len(), 1);
        // A second sighting within the settling delay does not yet.
        let mut h = host();
        let events = [sign_in("00uold3", 0), sign_in_at(1), sign_in_at(5)];
        assert!(h.feed_all::<MfaEnrollmentGap>(&events).unwrap().is_empty());
    }
}
