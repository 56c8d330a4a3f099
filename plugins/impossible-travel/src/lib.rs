//! `impossible-travel`: one user signing in from two places no one could
//! travel between in the time elapsed.
//!
//! For each user the rule remembers, for `history_hours` (default 24), the
//! last successful sign-in from each country (up to 16 countries; a
//! sign-in without a country counts as one more "country"). Each new
//! successful sign-in is compared with every one of them: when one is at
//! least `min_distance_km` (default 100) away and the great-circle speed
//! between them is above `max_speed_kmh` (default 800, a little under an
//! airliner's cruise speed), the rule reports a high finding for the
//! fastest such pair, asks to revoke the user's sessions (the stolen
//! session or token is the likely cause) and escalates to the on-call. So
//! New York then Auckland two hours later is caught, and so is a pair with
//! sign-ins from elsewhere in between.
//!
//! Signals: Okta `user.session.start` and `user.authentication.sso`, Entra
//! `Sign-in activity`; outcome success only. Events without coordinates
//! (lat/lon) are skipped, and so are sign-ins through a known proxy or
//! anonymizer (attribute `is-proxy` = `"true"`, from Okta's
//! `securityContext.isProxy`): their geolocation is the exit node's.
//!
//! Memory, each value with a TTL of the history: `countries:<user>`, the
//! countries seen (most recent last), and `place:<user>:<country>`, the last
//! sign-in from that country (`lat|lon|time|ip|country`). One value per
//! country, written from the sign-in alone, so a sign-in delivered late
//! becomes that country's place for every later sign-in without clobbering
//! another country's.
//!
//! Event time, whatever the arrival order: the host shows each sign-in the
//! places as they were at its own time (a value written by a later sign-in
//! is invisible to an earlier one), so a sign-in delivered late is compared
//! with its predecessors in event time, not with whatever arrived last.
//! The dedupe is a counter (`fired:<user>`), which looks both ways in time.
//!
//! Config keys: `history_hours` (default 24, 1–168), `max_speed_kmh`
//! (default 800, at least 1), `min_distance_km` (default 100; pairs closer
//! than this never fire, so city-level geo-IP jitter and two ends of one
//! metro area stay quiet), `dedupe_minutes` (default 60, 1–10080). The
//! former `window_minutes` (a 30-minute comparison window) is refused with
//! a message naming `history_hours`.
//!
//! It fires once per user per `dedupe_minutes` on either side: the return
//! leg of a hijacked session (victim, attacker, victim again) raises nothing
//! new.
//!
//! Blind spots: a pair whose *later* sign-in is delivered first is judged
//! only from the later one's side, which did not know the earlier one yet,
//! and the earlier one cannot read later places (v0.1 state has no look-up
//! of later values): such a pair (a newest-first page, a hook retry) is
//! found only when another sign-in of the user follows it. Entra carries no
//! proxy flag, so a VPN exit far from the user fires (and a VPN exit near
//! the user hides the attacker); mobile carriers and cloud egress
//! geolocate to a far-away hub; only the last sign-in per country is kept,
//! so two far-apart cities of one country are compared only through the
//! latest of them.

use vigil_sdk::*;

pub struct ImpossibleTravel;

const OKTA_SESSION_START: &str = "user.session.start";
const OKTA_SSO: &str = "user.authentication.sso";
const ENTRA_SIGN_IN: &str = "Sign-in activity";
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const EARTH_RADIUS_KM: f64 = 6371.0088;
/// Countries remembered per user (the oldest is forgotten first).
const MAX_PLACES: usize = 16;

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
    /// `lat|lon|time|ip|country`; the country comes last and may hold any
    /// character but a newline (`Korea, Republic of`).
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.lat, self.lon, self.time, self.ip, self.country
        )
    }

    fn decode(s: &str) -> Option<Place> {
        let mut parts = s.splitn(5, '|');
        Some(Place {
            lat: parts.next()?.parse().ok()?,
            lon: parts.next()?.parse().ok()?,
            time: parts.next()?.parse().ok()?,
            ip: parts.next()?.to_owned(),
            country: parts.next()?.to_owned(),
        })
    }

    fn of(event: &Event) -> Option<Place> {
        let geo = event.geo()?;
        let (lat, lon) = (geo.lat?, geo.lon?);
        if !lat.is_finite() || !lon.is_finite() || lat.abs() > 90.0 || lon.abs() > 180.0 {
            return None;
        }
        let clean = |s: &str| s.replace(['|', '\n', '\r'], " ");
        Some(Place {
            lat,
            lon,
            time: event.time(),
            country: clean(geo.country.as_deref().unwrap_or_default()),
            ip: clean(event.client_ip().unwrap_or_default()),
        })
    }

    fn name(&self) -> String {
        if self.country.is_empty() {
            format!("{:.2},{:.2}", self.lat, self.lon)
        } else {
            self.country.clone()
        }
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
    matches!(event.kind(), OKTA_SESSION_START | OKTA_SSO | ENTRA_SIGN_IN)
        && event.outcome() == Outcome::Success
}

struct Config {
    history_ms: u64,
    max_speed_kmh: u64,
    min_distance_km: u64,
    dedupe_ms: u64,
}

fn in_range(
    host: &mut dyn Host,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, String> {
    let v = host.config_u64(key, default)?;
    if !(min..=max).contains(&v) {
        return Err(format!(
            "config `{key}` must be between {min} and {max}, got {v}"
        ));
    }
    Ok(v)
}

fn config(host: &mut dyn Host) -> Result<Config, String> {
    if host.config("window_minutes").is_some() {
        return Err(
            "config `window_minutes` was replaced by `history_hours` (how far back \
                    sign-ins are compared, default 24)"
                .into(),
        );
    }
    let history_hours = in_range(host, "history_hours", 24, 1, 168)?;
    let max_speed_kmh = in_range(host, "max_speed_kmh", 800, 1, u64::MAX)?;
    let min_distance_km = host.config_u64("min_distance_km", 100)?;
    let dedupe_minutes = in_range(host, "dedupe_minutes", 60, 1, 10_080)?;
    Ok(Config {
        history_ms: history_hours * HOUR_MS,
        max_speed_kmh,
        min_distance_km,
        dedupe_ms: dedupe_minutes * MINUTE_MS,
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
            // The rule judges nothing else: the host need not call it.
            outcomes: vec![Outcome::Success],
            classes: vec![],
            partition: PartitionKey::SubjectUser,
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
            host.log(
                Level::Warn,
                &format!("sign-in {} names no user", event.id()),
            );
            return Ok(Vec::new());
        };
        let user = user.clone();
        let countries_key = format!("countries:{}", user.id);
        // The countries and places as they were at this sign-in's time.
        let mut countries: Vec<String> = host
            .get(&countries_key)
            .map(|v| v.lines().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut places = Vec::new();
        for country in countries.iter().chain(std::iter::once(&here.country)) {
            let place = host
                .get(&place_key(&user.id, country))
                .and_then(|v| Place::decode(&v))
                .filter(|p| p.time <= here.time && here.time.abs_diff(p.time) <= cfg.history_ms);
            if let Some(p) = place {
                places.push(p);
            }
        }
        let fastest = places
            .iter()
            .filter_map(|p| judge(&cfg, p, &here).map(|j| (p, j)))
            .max_by(|a, b| a.1.speed.total_cmp(&b.1.speed));
        let finding = fastest.and_then(|(before, j)| report(host, &cfg, &user, before, &here, &j));

        host.set(
            &place_key(&user.id, &here.country),
            &here.encode(),
            Some(cfg.history_ms),
        );
        countries.retain(|c| *c != here.country);
        countries.push(here.country.clone());
        if countries.len() > MAX_PLACES {
            countries.remove(0);
        }
        host.set(&countries_key, &countries.join("\n"), Some(cfg.history_ms));
        Ok(finding.into_iter().collect())
    }
}

/// The state key of a user's last sign-in from `country`.
fn place_key(user: &str, country: &str) -> String {
    // Keys are bounded by the host; a country name is short in practice.
    let country: String = country.chars().take(64).collect();
    format!("place:{user}:{country}")
}

/// Why a pair is impossible.
struct Judgement {
    km: f64,
    elapsed_ms: u64,
    speed: f64,
}

/// The pair's distance, time and speed when it is too fast and far enough.
fn judge(cfg: &Config, before: &Place, here: &Place) -> Option<Judgement> {
    let elapsed_ms = here.time.abs_diff(before.time);
    let km = distance_km(before, here);
    if km < cfg.min_distance_km as f64 {
        return None;
    }
    let speed = if elapsed_ms == 0 {
        f64::INFINITY
    } else {
        km / (elapsed_ms as f64 / 3_600_000.0)
    };
    (speed > cfg.max_speed_kmh as f64).then_some(Judgement {
        km,
        elapsed_ms,
        speed,
    })
}

fn report(
    host: &mut dyn Host,
    cfg: &Config,
    user: &Principal,
    first: &Place,
    second: &Place,
    j: &Judgement,
) -> Option<Finding> {
    let fired_key = format!("fired:{}", user.id);
    if host.counter_get(&fired_key, cfg.dedupe_ms) > 0 {
        return None;
    }
    host.counter_add(&fired_key, cfg.dedupe_ms, 1);

    let login = user.login.clone().unwrap_or_else(|| user.id.clone());
    let speed_text = if j.speed.is_finite() {
        format!("{:.0}", j.speed)
    } else {
        "instant".to_owned()
    };
    let minutes = j.elapsed_ms as f64 / 60_000.0;
    let elapsed = if minutes < 120.0 {
        format!("{minutes:.0} min")
    } else {
        format!("{:.1} h", minutes / 60.0)
    };
    let km = j.km;
    let mut finding = Finding::new(
        Severity::High,
        format!(
            "Impossible travel for {login}: {} to {} ({km:.0} km in {elapsed})",
            first.name(),
            second.name()
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
            "{login} signed in from {} ({}) and {} ({}) {elapsed} apart, \
             {km:.0} km: impossible travel, likely a stolen session or credentials",
            first.name(),
            first.ip,
            second.name(),
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
    const NEW_YORK: (&str, f64, f64) = ("United States", 40.7128, -74.0060);
    const AUCKLAND: (&str, f64, f64) = ("New Zealand", -36.8485, 174.7633);

    fn sign_in(user: &str, minute: i64, at: (&str, f64, f64)) -> EventData {
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
    fn far_apart_beyond_the_history_does_not_fire() {
        let mut host = MockHost::new();
        let events = [sign_in("u1", 0, LONDON), sign_in("u1", 25 * 60, SAO_PAULO)];
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
    }

    // The example: New York then Auckland two hours later (14,200 km)
    // was missed by a 30-minute window.
    #[test]
    fn new_york_then_auckland_in_two_hours_fires() {
        let mut host = MockHost::new();
        let events = [sign_in("u1", 0, NEW_YORK), sign_in("u1", 120, AUCKLAND)];
        let f = host.feed_all::<ImpossibleTravel>(&events).unwrap();
        assert_eq!(f.len(), 1);
        assert!(
            f[0].title.contains("United States to New Zealand"),
            "{}",
            f[0].title
        );
    }

    // Each country's last sign-in is kept: Paris in between does not hide
    // London → São Paulo, and the fastest pair is the one reported.
    #[test]
    fn every_country_of_the_history_is_compared() {
        let mut host = MockHost::new();
        let events = [
            sign_in("u1", 0, LONDON),
            // London → Paris in 3 hours is a train ride.
            sign_in("u1", 180, PARIS),
            // Paris → São Paulo (9,400 km) in 13 hours is a flight.
            sign_in("u1", 960, SAO_PAULO),
        ];
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
        // Back in London five minutes later: compared with Paris (a train
        // ride 13 hours ago) and São Paulo (impossible).
        let f = host
            .feed::<ImpossibleTravel>(&sign_in("u1", 965, LONDON))
            .unwrap();
        assert_eq!(f.len(), 1);
        assert!(
            f[0].title.contains("Brazil to United Kingdom"),
            "{}",
            f[0].title
        );
    }

    // A late sign-in is compared with its predecessor in event time, not
    // with the sign-in delivered last; the pair whose later sign-in came
    // first is found by the next sign-in (the v0.1 blind spot).
    #[test]
    fn a_late_sign_in_is_judged_against_its_event_time_predecessor() {
        let early = sign_in("u1", 0, LONDON);
        let late = sign_in("u1", 710, LONDON);
        let flight_end = sign_in("u1", 720, SAO_PAULO);
        // In time order: London at 11:50, São Paulo at 12:00: impossible.
        let mut host = MockHost::new();
        let in_order = [early.clone(), late.clone(), flight_end.clone()];
        assert_eq!(
            host.feed_all::<ImpossibleTravel>(&in_order).unwrap().len(),
            1
        );
        // São Paulo delivered before the London sign-in at 11:50: São Paulo
        // only knew London at 0:00 (a plausible flight), and London at 11:50
        // cannot see São Paulo.
        let mut host = MockHost::new();
        let delivered = [early, flight_end, late];
        assert!(
            host.feed_all::<ImpossibleTravel>(&delivered)
                .unwrap()
                .is_empty()
        );
        // The next sign-in from São Paulo sees both.
        let next = host
            .feed::<ImpossibleTravel>(&sign_in("u1", 725, SAO_PAULO))
            .unwrap();
        assert_eq!(next.len(), 1);
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
        // ...and a 1-hour history forgets London before São Paulo 2 hours
        // later (4,700 km/h), which the default 24 hours catches.
        let events = [sign_in("u1", 0, LONDON), sign_in("u1", 120, SAO_PAULO)];
        let mut host = MockHost::new().with_config("history_hours", 1);
        assert!(
            host.feed_all::<ImpossibleTravel>(&events)
                .unwrap()
                .is_empty()
        );
        let mut host = MockHost::new();
        assert_eq!(host.feed_all::<ImpossibleTravel>(&events).unwrap().len(), 1);
    }

    #[test]
    fn a_bad_config_value_is_an_error_naming_the_key() {
        for key in [
            "max_speed_kmh",
            "history_hours",
            "min_distance_km",
            "dedupe_minutes",
        ] {
            let mut host = MockHost::new().with_config(key, "fast");
            let err = host
                .feed::<ImpossibleTravel>(&sign_in("u1", 0, LONDON))
                .unwrap_err();
            assert!(err.contains(key), "{err}");
        }
        let mut host = MockHost::new().with_config("history_hours", 200);
        let err = host
            .feed::<ImpossibleTravel>(&sign_in("u1", 0, LONDON))
            .unwrap_err();
        assert!(err.contains("history_hours"), "{err}");
        // The old key is refused, naming its replacement.
        let mut host = MockHost::new().with_config("window_minutes", 30);
        let err = host
            .feed::<ImpossibleTravel>(&sign_in("u1", 0, LONDON))
            .unwrap_err();
        assert!(
            err.contains("window_minutes") && err.contains("history_hours"),
            "{err}"
        );
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
