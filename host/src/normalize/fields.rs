//! Field cleanup shared by every vendor, where a raw value would mislead a
//! rule: placeholder IP strings and null-island coordinates.
//!
//! Invariants: an event's `client-ip` is either absent or a parseable IP
//! address (in its canonical text form); its `geo` never carries the 0,0
//! placeholder, half a coordinate or an out-of-range one, and is absent when
//! nothing is left.

use std::net::IpAddr;

use super::Notes;
use super::raw::Str;
use crate::model::Geo;

/// What vendors and exporters write when they have no IP (Okta `"null"`
/// from some proxies, Azure Monitor's `"<null>"`). They mean "no IP"; kept
/// as one, they would pool unrelated users' failures into a "spray" from
/// the placeholder.
const NO_IP: [&str; 7] = ["", "null", "<null>", "unknown", "none", "n/a", "-"];

/// The client IP of a record, or None. A placeholder is silently no IP; any
/// other string that is not an IP address is dropped with a note naming
/// `path`.
pub(crate) fn client_ip(raw: &Option<Str>, path: &str, notes: &mut Notes) -> Option<String> {
    let s = raw.as_ref()?.as_str().trim();
    if NO_IP.iter().any(|p| s.eq_ignore_ascii_case(p)) {
        return None;
    }
    match s.parse::<IpAddr>() {
        // IPv4 text is already canonical; IPv6 is not (case, zeros), and
        // rules key state on the IP.
        Ok(IpAddr::V4(_)) => Some(s.to_owned()),
        Ok(ip @ IpAddr::V6(_)) => Some(ip.to_string()),
        Err(_) => {
            notes.drop_field(
                path,
                format!(
                    "{:?} is not an IP address",
                    s.chars().take(64).collect::<String>()
                ),
            );
            None
        }
    }
}

/// A geo from its parts, or None when nothing usable is left. `path` names
/// the coordinates in notes.
pub(crate) fn geo(
    country: Option<String>,
    city: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    path: &str,
    notes: &mut Notes,
) -> Option<Geo> {
    let (lat, lon) = match (lat, lon) {
        // 0,0 ("null island") is what geolocation services and ADFS-style
        // sign-ins report when they know nothing: not a place.
        (Some(a), Some(o)) if a == 0.0 && o == 0.0 => (None, None),
        (Some(a), Some(o))
            if a.is_finite()
                && o.is_finite()
                && (-90.0..=90.0).contains(&a)
                && (-180.0..=180.0).contains(&o) =>
        {
            (Some(a), Some(o))
        }
        (Some(a), Some(o)) => {
            notes.drop_field(
                path,
                format!("coordinates {a},{o} are out of range; dropped"),
            );
            (None, None)
        }
        // Half a coordinate places nobody anywhere.
        _ => (None, None),
    };
    if country.is_none() && city.is_none() && lat.is_none() {
        return None;
    }
    Some(Geo {
        country,
        city,
        lat,
        lon,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn ip(s: &str) -> (Option<String>, usize) {
        let mut dropped = Vec::new();
        let mut notes = Notes::new(None, &mut dropped);
        let out = client_ip(&Some(Str(Cow::Borrowed(s))), "client.ipAddress", &mut notes);
        (out, dropped.len())
    }

    // Placeholders are no IP, silently; garbage is no IP, with a note; real
    // addresses pass (IPv6 canonicalized).
    #[test]
    fn ip_placeholders_and_garbage() {
        for p in [
            "null", "", "  ", "unknown", "UNKNOWN", "<null>", "None", "n/a", "-",
        ] {
            assert_eq!(ip(p), (None, 0), "{p:?}");
        }
        assert_eq!(ip("not-an-ip"), (None, 1));
        assert_eq!(ip("203.0.113.45:443"), (None, 1));
        assert_eq!(ip("203.0.113.45"), (Some("203.0.113.45".into()), 0));
        assert_eq!(ip("2001:DB8:0::1"), (Some("2001:db8::1".into()), 0));
    }

    /// The geo as (country, lat, lon), and how many notes were taken.
    type Parts = Option<(Option<String>, Option<f64>, Option<f64>)>;
    fn g(country: Option<&str>, lat: Option<f64>, lon: Option<f64>) -> (Parts, usize) {
        let mut dropped = Vec::new();
        let mut notes = Notes::new(None, &mut dropped);
        let out = geo(
            country.map(str::to_owned),
            None,
            lat,
            lon,
            "geo",
            &mut notes,
        );
        (out.map(|g| (g.country, g.lat, g.lon)), dropped.len())
    }

    // 0,0 without a place is no geo; with a country, the country stays.
    #[test]
    fn null_island() {
        assert_eq!(g(None, Some(0.0), Some(0.0)), (None, 0));
        assert_eq!(
            g(Some("US"), Some(0.0), Some(0.0)),
            (Some((Some("US".to_owned()), None, None)), 0)
        );
        // Only one coordinate at zero is a real place (the equator).
        assert_eq!(
            g(None, Some(0.0), Some(32.58)),
            (Some((None, Some(0.0), Some(32.58))), 0)
        );
    }

    // Out of range is dropped with a note; half a coordinate silently.
    #[test]
    fn bad_coordinates() {
        assert_eq!(g(None, Some(91.0), Some(10.0)), (None, 1));
        assert_eq!(g(None, Some(10.0), None), (None, 0));
        assert_eq!(g(None, None, None), (None, 0));
    }
}
