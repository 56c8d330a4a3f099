//! `impossible-travel`: one user signing in from two places no one could
//! travel between in the time elapsed.
//!
//! For each user the rule remembers the last successful sign-in's location.
//! When a new successful sign-in for the same user comes within
//! `window_minutes` (default 30) of it, from at least `min_distance_km`
//! (default 100) away, at a great-circle speed above `max_speed_kmh`
//! (default 800, a little under an airliner's cruise speed), the rule reports
//! a high finding, asks to revoke the user's sessions (the stolen session or
//! token is the likely cause) and escalates to the on-call.
//!
//! Signals: Okta `user.session.start` and `user.authentication.sso`, Entra
//! `Sign-in activity`; outcome success only. Events without coordinates
//! (lat/lon) are skipped, and so are sign-ins through a known proxy or
//! anonymizer (attribute `is-proxy` = `"true"`, from Okta's
//! `securityContext.isProxy`): their geolocation is the exit node's.
//!
//! Memory: the last sign-in per user, as the state value
//! `lat,lon,time,country,ip` with a TTL of the window. An out-of-order event
//! older than the stored one is compared but does not replace it.
//!
//! Config keys: `window_minutes` (default 30, 1–10080), `max_speed_kmh`
//! (default 800, at least 1), `min_distance_km` (default 100; pairs closer
//! than this never fire, so city-level geo-IP jitter and two ends of one
//! metro area stay quiet).
//!
//! It fires once per user per window: the return leg of a hijacked session
//! (victim, attacker, victim again) raises nothing new.
//!
//! Blind spots: only consecutive sign-ins are compared, so a sign-in without
//! coordinates or through a proxy between two far-apart ones is invisible;
//! Entra carries no proxy flag, so a VPN exit far from the user fires (and a
//! VPN exit near the user hides the attacker); mobile carriers and cloud
//! egress geolocate to a far-away hub; travel slower than the window allows
//! (a second country 31 minutes later) is left to country-based rules.

use vigil_sdk::*;

pub struct ImpossibleTravel;

const OKTA_SESSION_START: &str = "user.session.start";
const OKTA_SSO: &str = "user.authentication.sso";
const ENTRA_SIGN_IN: &str = "Sign-in activity";
const MINUTE_MS: u64 = 60_000;
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// One remembered sign-in.
#[derive(Clone, Debug, PartialEq)]
struct Place {
    lat: f64,
    lon: f64,
    time: i64,
    country: String,
    ip: String,
}

impl Place {
    /// `lat,lon,time,country,ip`. Commas inside the country (e.g. "Korea,
    /// Republic of") are kept: the IP is taken from the last comma.
    fn encode(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.lat, self.lon, self.time, self.country, self.ip
        )
    }

    fn decode(s: &str) -> Option<Place> {
        let mut head = s.splitn(4, ',');
        let lat = head.next()?.parse().ok()?;
        let lon = head.next()?.parse().ok()?;
        let time = head.next()?.parse().ok()?;
        let (country, ip) = head.next()?.rsplit_once(',')?;
        Some(Place {
            lat,
            lon,
            time,
            country: country.to_owned(),
            ip: ip.to_owned(),
        })
    }

    fn of(event: &Event) -> Option<Place> {
        let geo = event.geo.as_ref()?;
        let (lat, lon) = (geo.lat?, geo.lon?);
        if !lat.is_finite() || !lon.is_finite() || lat.abs() > 90.0 || lon.abs() > 180.0 {
            return None;
        }
        Some(Place {
            lat,
            lon,
            time: event.time,
            country: geo.country.clone().unwrap_or_default(),
            ip: event
                .client_ip
                .clone()
                .unwrap_or_default()
                .replace(',', " "),
        })
    }
}

/// Great-circle distance in kilometres (haversine).
fn distance_km(a: &Place, b: &Place) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dp = p2 - p1;
    let dl = (b.lon - a.lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

fn is_sign_in(event: &Event) -> bool {
    matches!(
        event.kind.as_str(),
        OKTA_SESSION_START | OKTA_SSO | ENTRA_SIGN_IN
    ) && event.outcome == Outcome::Success
}

struct Config {
    window_ms: u64,
    max_speed_kmh: u64,
    min_distance_km: u64,
}

fn config(host: &mut dyn Host) -> Result<Config, String> {
    let window_minutes = host.config_u64("window_minutes", 30)?;
    if !(1..=10_080).contains(&window_minutes) {
        return Err(format!(
            "config `window_minutes` must be between 1 and 10080, got {window_minutes}"
        ));
    }
    let max_speed_kmh = host.config_u64("max_speed_kmh", 800)?;
    if max_speed_kmh == 0 {
        return Err("config `max_speed_kmh` must be at least 1, got 0".into());
    }
    let min_distance_km = host.config_u64("min_distance_km", 100)?;
    Ok(Config {
        window_ms: window_minutes * MINUTE_MS,
        max_speed_kmh,
        min_distance_km,
    })
}

impl Rule for ImpossibleTravel {
    fn metadata() -> Metadata {
        Metadata {
            id: "impossible-travel".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Revokes sessions and escalates when one user signs in successfully \
                          from two places too far apart for the time between them."
                .into(),
            subscribes: vec![
                OKTA_SESSION_START.into(),
                OKTA_SSO.into(),
                ENTRA_SIGN_IN.into(),
            ],
            actions: vec![ActionKind::RevokeSessions, ActionKind::Escalate],
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let cfg = config(host)?;
        if !is_sign_in(event) || event.attribute("is-proxy") == Some("true") {
            return Ok(Vec::new());
        }
        let Some(here) = Place::of(event) else {
            return Ok(Vec::new());
        };
        let Some(user) = event.subject_user() else {
            host.log(Level::Warn, &format!("sign-in {} names no user", event.id));
            return Ok(Vec::new());
        };
        let user = user.clone();
        let last_key = format!("last:{}", user.id);
        let before = host.get(&last_key).and_then(|v| Place::decode(&v));

        let finding = before
            .as_ref()
            .and_then(|b| compare(host, &cfg, &user, b, &here));
        if before.as_ref().is_none_or(|b| here.time >= b.time) {
            host.set(&last_key, &here.encode(), Some(cfg.window_ms));
        }
        Ok(finding.into_iter().collect())
    }
}

fn compare(
    host: &mut dyn Host,
    cfg: &Config,
    user: &Principal,
    before: &Place,
    here: &Place,
) -> Option<Finding> {
    let elapsed_ms = here.time.abs_diff(before.time);
    if elapsed_ms > cfg.window_ms {
        return None;
    }
    let km = distance_km(before, here);
    if km < cfg.min_distance_km as f64 {
        return None;
    }
    let hours = elapsed_ms as f64 / 3_600_000.0;
    let speed = if elapsed_ms == 0 {
        f64::INFINITY
    } else {
        km / hours
    };
    if speed <= cfg.max_speed_kmh as f64 {
        return None;
    }
    let fired_key = format!("fired:{}", user.id);
    if host.get(&fired_key).is_some() {
        return None;
    }
    host.set(&fired_key, &here.time.to_string(), Some(cfg.window_ms));

    let (first, second) = if here.time >= before.time {
        (before, here)
    } else {
        (here, before)
    };
    let login = user.login.clone().unwrap_or_else(|| user.id.clone());
    let name = |p: &Place| {
        if p.country.is_empty() {
            format!("{:.2},{:.2}", p.lat, p.lon)
        } else {
            p.country.clone()
        }
    };
    let speed_text = if speed.is_finite() {
        format!("{speed:.0}")
    } else {
        "instant".to_owned()
    };
    let minutes = elapsed_ms as f64 / 60_000.0;
    let mut finding = Finding::new(
        Severity::High,
        format!(
            "Impossible travel for {login}: {} to {} ({km:.0} km in {minutes:.0} min)",
            name(first),
            name(second)
        ),
        user.id.clone(),
    )
    .detail("login", &login)
    .detail("distance_km", format!("{km:.0}"))
    .detail("elapsed_minutes", format!("{minutes:.1}"))
    .detail("speed_kmh", speed_text)
    .detail("max_speed_kmh", cfg.max_speed_kmh)
    .detail("first_ip", &first.ip)
    .detail("first_country", &first.country)
    .detail("first_location", format!("{},{}", first.lat, first.lon))
    .detail("second_ip", &second.ip)
    .detail("second_country", &second.country)
    .detail("second_location", format!("{},{}", second.lat, second.lon));

    let revoke = Action::RevokeSessions(user.id.clone());
    finding = finding.detail("revoke_sessions", describe(&host.request(&revoke)));
    let escalate = Action::Escalate(Message {
        severity: Severity::High,
        summary: format!(
            "{login} signed in from {} ({}) and {} ({}) {minutes:.0} minutes apart, \
             {km:.0} km: impossible travel, likely a stolen session or credentials",
            name(first),
            first.ip,
            name(second),
            second.ip
        ),
        details: finding.details.clone(),
    });
    finding = finding.detail("escalate", describe(&host.request(&escalate)));
    Some(finding)
}

export_rule!(ImpossibleTravel);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{EventBuilder, MockHost};

    const T0: i64 = 1_773_000_000_000;
    const MIN: i64 = 60_000;

    const LONDON: (&str, f64, f64) = ("United Kingdom", 51.5074, -0.1278);
    const PARIS: (&str, f64, f64) = ("France", 48.8566, 2.3522);
    const SAO_PAULO: (&str, f64, f64) = ("Brazil", -23.5505, -46.6333);
    const CROYDON: (&str, f64, f64) = ("United Kingdom", 51.3762, -0.0982);

    fn sign_in(user: &str, minute: i64, at: (&str, f64, f64)) -> Event {
        EventBuilder::okta(OKTA_SESSION_START)
            .id(&format!("signin-{user}-{minute}-{}", at.0))
            .actor_user(user, &format!("{user}@example.com"))
            .outcome(Outcome::Success)
            .ip("203.0.113.7")
            .geo(at.0, at.1, at.2)
            .attribute("is-proxy", "false")
            .at(T0 + minute * MIN)
            .build()
    }

    #[test]
    fn london_then_sao_paulo_in_twelve_minutes_fires() {
        let mut host = MockHost::new();
        let events = [sign_in("u1", 0, LONDON), sign_in("u1", 12, SAO_PAULO)];
        let findings = host.feed_all::<ImpossibleTravel>(&events).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, "u1");
        assert_eq!(findings[0].severity, Severity::High);
        assert_eq!(
            host.requested_kinds(),
            vec![ActionKind::RevokeSessions, ActionKind::Escalate]
        );
        assert_eq!(host.requested[0], Action::RevokeSessions("u1".into()));
    }

    #[test]
    fn london_to_paris_in_two_hours_is_a_near_miss() {
        // Plane speed, and outside the window anyway.
        let mut host = MockHost::new();
        let events = [sign_in("u1", 0, LONDON), sign_in("u1", 120, PARIS)];
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn london_to_paris_in_twenty_minutes_fires() {
        // 344 km in 20 min is ~1030 km/h.
        let mut host = MockHost::new();
        let events = [sign_in("u1", 0, LONDON), sign_in("u1", 20, PARIS)];
        assert_eq!(host.feed_all::<ImpossibleTravel>(&events).unwrap().len(), 1);
    }

    #[test]
    fn far_apart_but_outside_the_window_does_not_fire() {
        let mut host = MockHost::new();
        let events = [sign_in("u1", 0, LONDON), sign_in("u1", 31, SAO_PAULO)];
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn geo_jitter_within_min_distance_does_not_fire() {
        // 15 km in one minute is 900 km/h, but below 100 km.
        let mut host = MockHost::new();
        let events = [sign_in("u1", 0, LONDON), sign_in("u1", 1, CROYDON)];
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn proxies_are_excluded() {
        let mut host = MockHost::new();
        let mut proxied = sign_in("u1", 5, SAO_PAULO);
        proxied.attributes = vec![("is-proxy".into(), "true".into())];
        let events = [sign_in("u1", 0, LONDON), proxied];
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn missing_coordinates_are_skipped() {
        let mut host = MockHost::new();
        let mut no_geo = sign_in("u1", 5, SAO_PAULO);
        no_geo.geo.as_mut().unwrap().lat = None;
        let events = [sign_in("u1", 0, LONDON), no_geo];
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn failed_sign_ins_are_ignored() {
        let mut host = MockHost::new();
        let mut failed = sign_in("u1", 5, SAO_PAULO);
        failed.outcome = Outcome::Failure;
        let events = [sign_in("u1", 0, LONDON), failed];
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn users_are_tracked_separately() {
        let mut host = MockHost::new();
        let events = [sign_in("u1", 0, LONDON), sign_in("u2", 5, SAO_PAULO)];
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn fires_once_per_user_per_window() {
        // Victim, attacker, victim again: one finding.
        let mut host = MockHost::new();
        let events = [
            sign_in("u1", 0, LONDON),
            sign_in("u1", 10, SAO_PAULO),
            sign_in("u1", 15, LONDON),
            sign_in("u1", 20, SAO_PAULO),
        ];
        assert_eq!(host.feed_all::<ImpossibleTravel>(&events).unwrap().len(), 1);
        assert_eq!(host.requested.len(), 2);
    }

    #[test]
    fn entra_sign_ins_are_read() {
        let mut host = MockHost::new();
        let mut a = sign_in("e1", 0, LONDON);
        let mut b = sign_in("e1", 10, SAO_PAULO);
        for e in [&mut a, &mut b] {
            e.source = "entra".into();
            e.kind = ENTRA_SIGN_IN.into();
            e.attributes = vec![("error-code".into(), "0".into())];
        }
        assert_eq!(host.feed_all::<ImpossibleTravel>(&[a, b]).unwrap().len(), 1);
    }

    #[test]
    fn thresholds_come_from_config() {
        // A 5000 km/h ceiling lets London→Paris in 20 minutes pass...
        let mut host = MockHost::new().with_config("max_speed_kmh", 5000);
        let events = [sign_in("u1", 0, LONDON), sign_in("u1", 20, PARIS)];
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
        // ...a 400 km floor too...
        let mut host = MockHost::new().with_config("min_distance_km", 400);
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
        // ...and a 3-hour window catches London→São Paulo in 2 hours (4700 km/h).
        let mut host = MockHost::new().with_config("window_minutes", 180);
        let events = [sign_in("u1", 0, LONDON), sign_in("u1", 120, SAO_PAULO)];
        assert_eq!(host.feed_all::<ImpossibleTravel>(&events).unwrap().len(), 1);
    }

    #[test]
    fn a_bad_config_value_is_an_error_naming_the_key() {
        for key in ["max_speed_kmh", "window_minutes", "min_distance_km"] {
            let mut host = MockHost::new().with_config(key, "fast");
            let err = host
                .feed::<ImpossibleTravel>(&sign_in("u1", 0, LONDON))
                .unwrap_err();
            assert!(err.contains(key), "{err}");
        }
        let mut host = MockHost::new().with_config("window_minutes", 20_000);
        let err = host
            .feed::<ImpossibleTravel>(&sign_in("u1", 0, LONDON))
            .unwrap_err();
        assert!(err.contains("window_minutes"), "{err}");
    }

    #[test]
    fn the_state_value_round_trips() {
        let p = Place {
            lat: 37.5665,
            lon: 126.978,
            time: T0,
            country: "Korea, Republic of".into(),
            ip: "192.0.2.1".into(),
        };
        assert_eq!(Place::decode(&p.encode()), Some(p));
    }

    #[test]
    fn distances_are_great_circle() {
        let d = |a: (&str, f64, f64), b: (&str, f64, f64)| {
            let p = |x: (&str, f64, f64)| Place {
                lat: x.1,
                lon: x.2,
                time: 0,
                country: String::new(),
                ip: String::new(),
            };
            distance_km(&p(a), &p(b))
        };
        assert!((d(LONDON, PARIS) - 344.0).abs() < 5.0);
        assert!((d(LONDON, SAO_PAULO) - 9490.0).abs() < 50.0);
    }
}
