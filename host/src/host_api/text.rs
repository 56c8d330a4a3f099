//! Text a rule controls, made safe to show: escaped for the operator's
//! logs, and cut to a bounded preview.
//!
//! Invariants: [`escape_for_log`] returns text with no control character
//! (no newline, carriage return, ANSI escape, …) and no Unicode line
//! separator or bidirectional override, so a rule cannot forge a log line
//! or rewrite what a terminal shows; [`preview`] never returns more than
//! its bound plus the ellipsis, and never cuts a character in half.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a log line as is: C0/C1 controls and DEL
/// (newline, CR, ESC of ANSI sequences, …), the Unicode line and paragraph
/// separators, and the bidirectional embedding/override/isolate marks.
fn unsafe_in_log(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character that could forge or disguise a log line
/// escaped as Rust does (`\n`, `\r`, `\t`, `\u{1b}`, …); a backslash is
/// doubled so an escape cannot be faked either. Borrowed when nothing
/// needed escaping (the usual case).
pub fn escape_for_log(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || unsafe_in_log(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_in_log(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// At most `max` bytes of `text`, cut on a character boundary, followed by
/// `…` when something was cut.
pub fn preview(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A rule-supplied message for the audit log and the operator's log:
/// bounded to `max` bytes (saying how long it was) and escaped.
pub fn bounded_message(text: &str, max: usize) -> String {
    let escaped = escape_for_log(text);
    if escaped.len() <= max {
        return escaped.into_owned();
    }
    format!(
        "{} ({} bytes; the rest was dropped)",
        preview(&escaped, max),
        text.len()
    )
}

/// Bytes `text` takes as a JSON string, quotes included (serde_json
/// escapes `"`, `\` and control characters below U+0020).
pub fn json_len(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_cr_and_ansi_escapes_cannot_forge_a_log_line() {
        // A forged second line, a carriage return that would overwrite the
        // line on a terminal, and an ANSI colour sequence.
        let hostile = "ok\n2026-03-01T00:00:00Z  INFO vigil: all clear\rX\u{1b}[31mred";
        let escaped = escape_for_log(hostile);
        assert!(!escaped.chars().any(char::is_control), "{escaped}");
        assert_eq!(
            escaped,
            "ok\\n2026-03-01T00:00:00Z  INFO vigil: all clear\\rX\\u{1b}[31mred"
        );
    }

    #[test]
    fn unicode_separators_and_bidi_overrides_are_escaped() {
        let escaped = escape_for_log("a\u{2028}b\u{202e}c\u{2066}d\u{85}e\u{7f}");
        assert_eq!(escaped, "a\\u{2028}b\\u{202e}c\\u{2066}d\\u{85}e\\u{7f}");
    }

    #[test]
    fn a_backslash_is_doubled_so_an_escape_cannot_be_faked() {
        // Without doubling, the literal text `\n` would read like an
        // escaped newline.
        assert_eq!(escape_for_log("a\\nb"), "a\\\\nb");
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "denied push for alex@example.com (5 in 10 min) — ünïcode ok";
        assert!(matches!(escape_for_log(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn preview_cuts_on_a_character_boundary() {
        assert_eq!(preview("short", 10), "short");
        // "é" is two bytes: a cut at 2 would split it.
        assert_eq!(preview("aéb", 2), "a…");
        assert_eq!(preview("abcdef", 3), "abc…");
    }

    #[test]
    fn bounded_message_says_how_long_the_original_was() {
        let long = "x".repeat(5000);
        let m = bounded_message(&long, 100);
        assert!(m.starts_with(&"x".repeat(100)), "{m}");
        assert!(m.ends_with("(5000 bytes; the rest was dropped)"), "{m}");
        assert!(m.len() < 200);
        assert_eq!(bounded_message("a\nb", 100), "a\\nb");
    }

    #[test]
    fn json_len_matches_serde_json() {
        for s in [
            "",
            "plain",
            "quote\" back\\ nl\n tab\t",
            "\u{1}\u{1f} ctl",
            "ünï €",
        ] {
            assert_eq!(
                json_len(s),
                serde_json::to_string(s).unwrap().len(),
                "{s:?}"
            );
        }
    }
}
