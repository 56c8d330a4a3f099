//! The size cap on one record (`[audit] max_record_bytes`, default 1 MiB).
//!
//! A record larger than the cap is not refused (refusing would stop the
//! pipeline, and Vigil does not act without a record) and not dropped: it is
//! written **truncated**, with a `record_truncated` marker saying so:
//!
//! ```json
//! "record_truncated": {"bytes": 52428912, "sha256": "…", "fields": ["details"]}
//! ```
//!
//! `bytes` and `sha256` are the size and SHA-256 of the record's canonical
//! JSON as it would have been written (without `prev_hash` and `hash`), so a
//! copy kept elsewhere can be matched to it; `fields` names the fields that
//! were cut. `seq`, `time` and `type` are always kept whole; other fields are
//! kept whole smallest first while they fit, and the rest are replaced by a
//! string holding the start of their JSON text, sharing the room left.
//!
//! Invariant: a record written through [`fit`] (plus its `prev_hash` and
//! `hash`) is at most the cap, whatever the caller passed.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use crate::config::audit::{DEFAULT_MAX_RECORD_BYTES, MIN_RECORD_BYTES};
/// The marker field.
pub const MARKER: &str = "record_truncated";
/// Bytes the chain fields add to a record: `,"prev_hash":"<64 hex>"` and
/// `,"hash":"<64 hex>"`, rounded up.
const CHAIN_BYTES: usize = 192;
/// Fields never cut.
const KEPT: [&str; 3] = ["seq", "time", "type"];
/// Names of cut fields listed in the marker, at most.
const MAX_LISTED: usize = 32;

/// Shrinks `record` (without `prev_hash` and `hash`) so that, with the chain
/// fields added, its canonical JSON is at most `max` bytes. Does nothing and
/// returns `false` if it already fits.
pub(crate) fn fit(record: &mut Map<String, Value>, max: usize) -> bool {
    let original = super::canonical_bytes(record);
    if original.len() + CHAIN_BYTES <= max {
        return false;
    }
    let original_len = original.len();
    let digest = hex::encode(Sha256::digest(&original));
    drop(original);

    // Cut fields, largest last; `seq`, `time` and `type` stay.
    let mut sizes: Vec<(String, usize)> = record
        .iter()
        .filter(|(k, _)| !KEPT.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), json_len(v)))
        .collect();
    sizes.sort_by_key(|(k, size)| (*size, k.clone()));

    let fixed: usize = record
        .iter()
        .filter(|(k, _)| KEPT.contains(&k.as_str()))
        .map(|(k, v)| field_len(k, json_len(v)))
        .sum();
    // The marker: generous estimate with the longest possible name list.
    let names_len: usize = sizes
        .iter()
        .rev()
        .take(MAX_LISTED)
        .map(|(k, _)| escaped_len(k) + 3)
        .sum();
    let marker_len = 160 + names_len;
    let mut room = max.saturating_sub(CHAIN_BYTES + 2 + fixed + marker_len);

    let mut cut = Vec::new();
    for (key, size) in &sizes {
        let need = field_len(key, *size);
        if cut.is_empty() && need <= room {
            room -= need;
        } else {
            cut.push(key.clone());
        }
    }
    // Each cut field gets an equal share of what is left.
    let share = room / cut.len().max(1);
    for key in &cut {
        let overhead = field_len(key, 2);
        let text = record[key].to_string();
        let prefix = escaped_prefix(&text, share.saturating_sub(overhead));
        record.insert(key.clone(), Value::String(prefix.to_owned()));
    }
    let listed: Vec<Value> = cut
        .iter()
        .take(MAX_LISTED)
        .map(|k| Value::String(k.clone()))
        .collect();
    let mut marker = Map::new();
    marker.insert("bytes".into(), (original_len as u64).into());
    marker.insert("sha256".into(), digest.into());
    marker.insert("fields".into(), Value::Array(listed));
    record.insert(MARKER.into(), Value::Object(marker));

    // Pathological input (field names larger than the cap): drop cut fields
    // whole rather than exceed the cap. Never happens with the host's own
    // field names.
    if super::canonical_bytes(record).len() + CHAIN_BYTES > max {
        for key in &cut {
            record.remove(key);
        }
    }
    true
}

/// Bytes of `"key":value,` for a value of `value_len` bytes.
fn field_len(key: &str, value_len: usize) -> usize {
    escaped_len(key) + 2 + 1 + value_len + 1
}

fn json_len(value: &Value) -> usize {
    // `Display` runs serde_json's own (optimized) serializer; see
    // `canonical_bytes`. Only on this rare path, so the allocation is fine.
    value.to_string().len()
}

/// Length of `s` once escaped inside a JSON string (without the quotes), as
/// serde_json writes it.
fn escaped_len(s: &str) -> usize {
    s.chars().map(char_escaped_len).sum()
}

fn char_escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The longest prefix of `s` (on a char boundary) whose escaped length is at
/// most `budget`.
fn escaped_prefix(s: &str, budget: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += char_escaped_len(c);
        if used > budget {
            return &s[..i];
        }
    }
    s
}
