//! Timestamp parsing for every supported source: RFC 3339 (Okta `published`,
//! Graph `createdDateTime`/`activityDateTime`) and the space-separated UTC
//! form SIEM exports rewrite Okta times into.

use chrono::{DateTime, NaiveDateTime};

/// Parses a timestamp into Unix milliseconds (UTC).
///
/// Accepted: RFC 3339 with any offset and optional fractional seconds
/// (`2026-03-01T10:02:03.123Z`, `2026-03-01T11:02:03+01:00`, Graph's 7-digit
/// fractions), and `YYYY-MM-DD HH:MM:SS[.fff]` without offset, taken as UTC.
/// Sub-millisecond digits are truncated, not rounded, so ordering is kept.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    // Cheap shape check first: both forms start with a 4-digit year and a
    // dash, and the 11th byte tells the two apart.
    let b = s.as_bytes();
    if b.len() < 19 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    match b[10] {
        b'T' | b't' => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_millis()),
        b' ' => {
            // "YYYY-MM-DD HH:MM:SS" is the SIEM export form (UTC); a space
            // followed by an offset is still valid RFC 3339.
            if let Ok(d) = DateTime::parse_from_rfc3339(s) {
                return Some(d.timestamp_millis());
            }
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|d| d.and_utc().timestamp_millis())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time_ms;

    // 2026-03-01T10:02:03.123Z as Unix milliseconds.
    const T: i64 = 1_772_359_323_123;

    // Okta's own form: Z offset with milliseconds.
    #[test]
    fn rfc3339_z_millis() {
        assert_eq!(parse_time_ms("2026-03-01T10:02:03.123Z"), Some(T));
    }

    // Non-UTC offsets are converted; fractions are optional.
    #[test]
    fn rfc3339_offset_and_no_fraction() {
        assert_eq!(parse_time_ms("2026-03-01T11:02:03.123+01:00"), Some(T));
        assert_eq!(parse_time_ms("2026-03-01T10:02:03Z"), Some(T - 123));
    }

    // Graph uses up to 7 fractional digits; extra precision is truncated.
    #[test]
    fn rfc3339_graph_fraction() {
        assert_eq!(parse_time_ms("2026-03-01T10:02:03.1239999Z"), Some(T));
    }

    // SIEM export form, with and without fraction, is UTC.
    #[test]
    fn space_separated_utc() {
        assert_eq!(parse_time_ms("2026-03-01 10:02:03.123"), Some(T));
        assert_eq!(parse_time_ms("2026-03-01 10:02:03"), Some(T - 123));
    }

    // Garbage, dates without times, and out-of-range fields are rejected.
    #[test]
    fn bad_inputs() {
        for s in [
            "",
            "yesterday",
            "2026-03-01",
            "2026-13-01T10:02:03Z",
            "2026-03-01T10:02:03",
            "2026-03-01X10:02:03Z",
            "1772359323123",
            "2026-03-01 10:02:03.123 garbage",
        ] {
            assert_eq!(parse_time_ms(s), None, "{s:?}");
        }
    }
}
