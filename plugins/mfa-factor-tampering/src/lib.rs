//! `mfa-factor-tampering`: a user's MFA factor suspended or removed by
//! someone other than that user.
//!
//! A user who removes or suspends their own factor is housekeeping. Someone
//! else doing it — an admin account, a help-desk agent talked into it, an
//! API token — is how many takeovers start: the victim's authenticator goes,
//! the attacker's comes. The rule reports a high finding naming who did it
//! to whom and escalates to the on-call, at once, without waiting for the
//! sign-in that follows (which `mfa-factor-reset-takeover` judges).
//!
//! Signals (outcome anything but an explicit failure — a missing outcome
//! counts, failing safe):
//! - Okta `user.mfa.factor.suspend` and `user.mfa.factor.deactivate`: the
//!   user is the `User` target, the factor the other target or `factor`.
//! - Entra directory audit `Admin deleted security info` (service
//!   "Authentication Methods"): an admin removed a user's method.
//!
//! "Someone else": the actor's id differs from the user's id and its login
//! from the user's login (case-insensitive). An event without an actor
//! counts as someone else. Okta's own automation (actor type
//! `SystemPrincipal`) is skipped, and so is any actor listed in
//! `trusted_actors` (ids or logins, comma-separated: the help-desk
//! automation whose every action is already reviewed).
//!
//! Config keys: `trusted_actors` (empty), `dedupe_minutes` (10, 1–10080):
//! one finding per user per this many minutes on either side in event time
//! (a counter, so the same findings result in any arrival order; removing
//! three factors in one sitting is one finding).
//!
//! Actions: `escalate` only — re-enrolling the factor needs the user, and
//! the removal may be legitimate help-desk work.
//!
//! Blind spots: Entra per-user MFA changes through "Update user"
//! (`StrongAuthenticationMethod`) are not read; a trusted actor's account,
//! if stolen, is trusted too; an attacker in the user's own session removes
//! the factor "as the user" and is not seen here.

use vigil_sdk::*;

pub struct MfaFactorTampering;

const OKTA_FACTOR_SUSPEND: &str = "user.mfa.factor.suspend";
const OKTA_FACTOR_DEACTIVATE: &str = "user.mfa.factor.deactivate";
const ENTRA_ADMIN_DELETED: &str = "Admin deleted security info";
const MINUTE_MS: u64 = 60_000;

impl Rule for MfaFactorTampering {
    fn metadata() -> Metadata {
        Metadata {
            id: "mfa-factor-tampering".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Escalates when a user's MFA factor is suspended or removed by \
                          someone other than the user."
                .into(),
            subscribes: vec![
                OKTA_FACTOR_SUSPEND.into(),
                OKTA_FACTOR_DEACTIVATE.into(),
                ENTRA_ADMIN_DELETED.into(),
            ],
            actions: vec![ActionKind::Escalate],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::SubjectUser,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let dedupe_minutes = host.config_u64("dedupe_minutes", 10)?;
        if !(1..=10_080).contains(&dedupe_minutes) {
            return Err(format!(
                "config `dedupe_minutes` must be between 1 and 10080, got {dedupe_minutes}"
            ));
        }
        let dedupe_ms = dedupe_minutes * MINUTE_MS;
        if event.outcome() == Outcome::Failure {
            return Ok(Vec::new());
        }
        let Some(user) = event.targets().iter().find(|t| t.kind == "User") else {
            host.log(
                Level::Debug,
                &format!("{} {} names no target user", event.kind(), event.id()),
            );
            return Ok(Vec::new());
        };
        let actor = event.actor();
        if actor.is_some_and(|a| same_principal(a, user)) {
            return Ok(Vec::new());
        }
        if actor.is_some_and(|a| a.kind == "SystemPrincipal") {
            return Ok(Vec::new());
        }
        let trusted = host.config("trusted_actors").unwrap_or_default();
        if let Some(a) = actor
            && trusted
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .any(|t| {
                    t == a.id
                        || a.login
                            .as_deref()
                            .is_some_and(|l| l.eq_ignore_ascii_case(t))
                })
        {
            host.log(
                Level::Info,
                &format!("{} by trusted actor {} on {}", event.kind(), a.id, user.id),
            );
            return Ok(Vec::new());
        }

        let fired_key = format!("fired:{}", user.id);
        if host.counter_get(&fired_key, dedupe_ms) > 0 {
            return Ok(Vec::new());
        }
        host.counter_add(&fired_key, dedupe_ms, 1);

        let login = user.login.clone().unwrap_or_else(|| user.id.clone());
        let by = actor.map_or_else(
            || "an unknown actor".to_owned(),
            |a| {
                a.login
                    .clone()
                    .or_else(|| a.display_name.clone())
                    .unwrap_or_else(|| a.id.clone())
            },
        );
        let verb = if event.kind() == OKTA_FACTOR_SUSPEND {
            "suspended"
        } else {
            "removed"
        };
        let factor = event
            .targets()
            .iter()
            .find(|t| t.kind != "User")
            .and_then(|t| t.display_name.clone())
            .or_else(|| event.factor().map(str::to_owned));
        let mut finding = Finding::new(
            Severity::High,
            format!("MFA factor {verb} for {login} by {by}"),
            user.id.clone(),
        )
        .detail("login", &login)
        .detail("event_type", event.kind())
        .detail("changed_by", &by)
        .detail("source", event.source());
        if let Some(a) = actor {
            finding = finding.detail("changed_by_id", &a.id);
        }
        if let Some(f) = &factor {
            finding = finding.detail("factor", f);
        }
        if let Some(ip) = &event.client_ip() {
            finding = finding.detail("client_ip", ip);
        }
        if event.outcome() == Outcome::Unknown {
            finding = finding.detail("outcome", "missing (treated as a success: fail safe)");
        }
        let escalate = Action::Escalate(Message {
            severity: Severity::High,
            summary: format!(
                "{by} {verb} an MFA factor{} of {login}: confirm with the user before anyone \
                 enrolls a new one",
                factor
                    .as_deref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            ),
            details: finding.details.clone(),
        });
        finding = finding.detail("escalate", describe(&host.request(&escalate)));
        Ok(vec![finding])
    }
}

/// Whether two principals are the same account (id, or login ignoring case).
fn same_principal(a: &Principal, b: &Principal) -> bool {
    a.id == b.id
        || matches!(
            (&a.login, &b.login),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y)
        )
}

export_rule!(MfaFactorTampering);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{EventBuilder, MockHost};

    const T0: i64 = 1_772_000_000_000;
    const MIN: i64 = 60_000;

    fn factor_event(kind: &str, actor: &str, user: &str, minute: i64) -> EventData {
        let mut e = EventBuilder::okta(kind)
            .id(&format!("{kind}-{actor}-{user}-{minute}"))
            .actor_user(actor, &format!("{actor}@example.com"))
            .target_user(user, &format!("{user}@example.com"))
            .outcome(Outcome::Success)
            .factor("OKTA_VERIFY_PUSH")
            .ip("198.51.100.5")
            .at(T0 + minute * MIN)
            .build();
        e.targets.push(Principal {
            id: "pfd1".into(),
            kind: "AuthenticatorEnrollment".into(),
            login: None,
            display_name: Some("Okta Verify".into()),
        });
        e
    }

    // A help-desk account removing a user's factor: high, escalate, names both.
    #[test]
    fn someone_else_removing_a_factor_escalates() {
        let mut host = MockHost::new();
        let f = host
            .feed::<MfaFactorTampering>(&factor_event(OKTA_FACTOR_DEACTIVATE, "00uhelp", "00u1", 0))
            .unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "00u1");
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(
            f[0].title,
            "MFA factor removed for 00u1@example.com by 00uhelp@example.com"
        );
        assert_eq!(host.requested_kinds(), vec![ActionKind::Escalate]);
    }

    // Suspension counts too.
    #[test]
    fn suspension_by_someone_else_is_reported() {
        let mut host = MockHost::new();
        let f = host
            .feed::<MfaFactorTampering>(&factor_event(OKTA_FACTOR_SUSPEND, "00uadm", "00u1", 0))
            .unwrap();
        assert!(f[0].title.contains("suspended"), "{}", f[0].title);
    }

    // Near misses: the user's own change; a failed attempt; Okta's own
    // automation; a trusted actor.
    #[test]
    fn own_changes_failures_system_and_trusted_actors_are_quiet() {
        let mut host =
            MockHost::new().with_config("trusted_actors", "svc-helpdesk@example.com, 00ubot");
        let own = factor_event(OKTA_FACTOR_DEACTIVATE, "00u1", "00u1", 0);
        let mut failed = factor_event(OKTA_FACTOR_DEACTIVATE, "00uhelp", "00u2", 1);
        failed.outcome = Outcome::Failure;
        let mut system = factor_event(OKTA_FACTOR_SUSPEND, "0oa-okta", "00u3", 2);
        system.actor.as_mut().unwrap().kind = "SystemPrincipal".into();
        let trusted_login = factor_event(OKTA_FACTOR_DEACTIVATE, "svc-helpdesk", "00u4", 3);
        let trusted_id = factor_event(OKTA_FACTOR_DEACTIVATE, "00ubot", "00u5", 4);
        for e in [own, failed, system, trusted_login, trusted_id] {
            assert!(
                host.feed::<MfaFactorTampering>(&e).unwrap().is_empty(),
                "{}",
                e.id
            );
        }
        assert!(host.requested.is_empty());
    }

    // A missing outcome counts (fail safe), and says so.
    #[test]
    fn a_missing_outcome_counts() {
        let mut host = MockHost::new();
        let mut e = factor_event(OKTA_FACTOR_DEACTIVATE, "00uhelp", "00u1", 0);
        e.outcome = Outcome::Unknown;
        let f = host.feed::<MfaFactorTampering>(&e).unwrap();
        assert!(
            f[0].details
                .iter()
                .any(|(k, v)| k == "outcome" && v.starts_with("missing"))
        );
    }

    // Three factors removed in one sitting, in any order: one finding; a
    // second sitting an hour later: another.
    #[test]
    fn one_finding_per_sitting_in_any_order() {
        let sitting: Vec<EventData> = (0..3)
            .map(|m| factor_event(OKTA_FACTOR_DEACTIVATE, "00uhelp", "00u1", m))
            .collect();
        let mut reversed = sitting.clone();
        reversed.reverse();
        for order in [sitting.clone(), reversed] {
            let mut host = MockHost::new();
            assert_eq!(
                host.feed_all::<MfaFactorTampering>(&order).unwrap().len(),
                1
            );
        }
        let mut host = MockHost::new();
        let mut two = sitting;
        two.push(factor_event(OKTA_FACTOR_DEACTIVATE, "00uhelp", "00u1", 60));
        assert_eq!(host.feed_all::<MfaFactorTampering>(&two).unwrap().len(), 2);
    }

    // Entra: an admin deleting a user's method.
    #[test]
    fn entra_admin_deleted_security_info_is_read() {
        let mut host = MockHost::new();
        let mut e = EventBuilder::okta(ENTRA_ADMIN_DELETED)
            .actor_user("9f8e-admin", "it.admin@contoso.com")
            .target_user("5a7d-user", "priya@contoso.com")
            .outcome(Outcome::Success)
            .at(T0)
            .build();
        e.source = "entra".into();
        let f = host.feed::<MfaFactorTampering>(&e).unwrap();
        assert_eq!(f[0].subject, "5a7d-user");
        assert!(
            f[0].title.contains("by it.admin@contoso.com"),
            "{}",
            f[0].title
        );
    }

    // A bad dedupe value is an error naming the key.
    #[test]
    fn a_bad_config_value_names_the_key() {
        for v in ["ten", "0"] {
            let mut host = MockHost::new().with_config("dedupe_minutes", v);
            let err = host
                .feed::<MfaFactorTampering>(&factor_event(OKTA_FACTOR_SUSPEND, "a", "b", 0))
                .unwrap_err();
            assert!(err.contains("dedupe_minutes"), "{err}");
        }
    }
}
