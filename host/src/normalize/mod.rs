//! Normalization: turns one raw input line (Okta System Log LogEvent, Okta
//! Event Hook delivery, Entra sign-in or Entra directory audit) into the
//! WIT `Event`s the rules consume.
//!
//! This module owns format detection, the error type and the attribute
//! bounds; `okta` and `entra` own the per-vendor field mapping, `time` the
//! timestamp parsing and `raw` the borrowing serde shapes. It is the hot path
//! of ingestion, so each line is parsed exactly once into typed structs that
//! borrow from the line (no `serde_json::Value` for the supported formats).

mod entra;
mod okta;
mod raw;
mod time;

use sha2::{Digest, Sha256};

use crate::bindings::Event;
use raw::Record;

pub use time::parse_time_ms;

/// Names used in `MissingField`/`BadTime` errors and in docs.
pub const FORMAT_OKTA: &str = "okta";
pub const FORMAT_OKTA_HOOK: &str = "okta-event-hook";
pub const FORMAT_ENTRA_SIGNIN: &str = "entra-signin";
pub const FORMAT_ENTRA_AUDIT: &str = "entra-audit";

/// Why a line produced no events. The line is never partially emitted.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// Not JSON, or JSON whose values have the wrong types for a known
    /// format; carries serde_json's message (with line/column).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// Valid JSON that matches none of the supported formats.
    #[error("unknown format: {0}")]
    UnknownFormat(String),
    /// The format was recognised but a field it cannot do without is absent
    /// or null.
    #[error("{format}: missing required field `{field}`")]
    MissingField {
        format: &'static str,
        field: &'static str,
    },
    /// A timestamp that `parse_time_ms` does not accept.
    #[error("bad timestamp in `{field}`: {value:?}")]
    BadTime { field: &'static str, value: String },
    /// One element of an Okta Event Hook's `data.events` failed; the whole
    /// delivery is rejected so a retry can be processed cleanly.
    #[error("data.events[{index}]: {source}")]
    InEnvelope {
        index: usize,
        source: Box<NormalizeError>,
    },
}

const UNKNOWN_FORMAT_HINT: &str = "not an Okta LogEvent (eventType, published), Okta Event Hook \
     (data.events), Entra sign-in (createdDateTime, userPrincipalName) or Entra directory audit \
     (activityDisplayName, activityDateTime)";

/// Converts raw lines into events; the limits bound what a single event can
/// make the rules (and the audit log) carry.
#[derive(Debug, Clone)]
pub struct Normalizer {
    /// Attributes beyond this count are dropped (in the documented order, so
    /// the least important go first).
    pub max_attributes: usize,
    /// Attribute values longer than this many bytes are cut at a char boundary.
    pub max_attribute_len: usize,
}

impl Default for Normalizer {
    fn default() -> Self {
        Self {
            max_attributes: 16,
            max_attribute_len: 1024,
        }
    }
}

/// What the keys present in a record say it is.
enum Format {
    Okta,
    OktaHook,
    EntraSignIn,
    EntraAudit,
}

impl Normalizer {
    /// Parses one input line (already known to be within the size limit) and
    /// pushes the events it holds to `out` (an Okta Event Hook envelope holds
    /// many). Returns how many were pushed. Auto-detects the format per line.
    /// Blank lines yield `Ok(0)`. On error `out` is left as it was.
    pub fn normalize_line(
        &self,
        line: &str,
        out: &mut Vec<Event>,
    ) -> Result<usize, NormalizeError> {
        // Exports often carry a BOM on the first line and CRLF endings; both
        // would otherwise break the hash-based fallback id or the parse.
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            return Ok(0);
        }
        if !line.starts_with('{') {
            // Arrays, strings, numbers: tell "valid JSON, wrong shape" from
            // "not JSON" (only on this error path, so the extra scan is cheap).
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(line) {
                Ok(_) => NormalizeError::UnknownFormat(format!(
                    "not a JSON object; {UNKNOWN_FORMAT_HINT}"
                )),
                Err(e) => NormalizeError::InvalidJson(e.to_string()),
            });
        }
        let rec: Record =
            serde_json::from_str(line).map_err(|e| NormalizeError::InvalidJson(e.to_string()))?;

        match detect(&rec) {
            Some(Format::Okta) => {
                out.push(okta::normalize(self, &rec, || fallback_id(line, None))?);
                Ok(1)
            }
            Some(Format::OktaHook) => self.normalize_hook(line, rec, out),
            Some(Format::EntraSignIn) => {
                out.push(entra::normalize_signin(self, &rec, || {
                    fallback_id(line, None)
                })?);
                Ok(1)
            }
            Some(Format::EntraAudit) => {
                out.push(entra::normalize_audit(self, &rec, || {
                    fallback_id(line, None)
                })?);
                Ok(1)
            }
            None => Err(NormalizeError::UnknownFormat(
                UNKNOWN_FORMAT_HINT.to_owned(),
            )),
        }
    }

    /// All-or-nothing over `data.events`: a delivery is retried as a unit by
    /// Okta, so a partial emit would double-count the good half on retry.
    fn normalize_hook(
        &self,
        line: &str,
        rec: Record,
        out: &mut Vec<Event>,
    ) -> Result<usize, NormalizeError> {
        let Some(events) = rec.data.and_then(|d| d.events) else {
            return Err(NormalizeError::MissingField {
                format: FORMAT_OKTA_HOOK,
                field: "data.events",
            });
        };
        let start = out.len();
        out.reserve(events.0.len());
        for (index, ev) in events.0.iter().enumerate() {
            match okta::normalize(self, ev, || fallback_id(line, Some(index))) {
                Ok(e) => out.push(e),
                Err(source) => {
                    out.truncate(start);
                    return Err(NormalizeError::InEnvelope {
                        index,
                        source: Box::new(source),
                    });
                }
            }
        }
        Ok(out.len() - start)
    }

    /// Appends an attribute unless the count limit is reached; truncates long
    /// values at a char boundary. Callers push in priority order.
    pub(crate) fn push_attr(&self, attrs: &mut Vec<(String, String)>, key: &str, value: &str) {
        if attrs.len() >= self.max_attributes {
            return;
        }
        let mut end = value.len().min(self.max_attribute_len);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        attrs.push((key.to_owned(), value[..end].to_owned()));
    }
}

/// Picks the format from which keys are present. Okta is recognised by
/// `eventType` alone so that an Okta event lacking `published` is reported as
/// such (MissingField) rather than as an unknown format.
fn detect(r: &Record) -> Option<Format> {
    let event_type = r.event_type.as_ref().map(|s| s.as_str());
    if event_type == Some("com.okta.event_hook")
        || r.data.as_ref().is_some_and(|d| d.events.is_some())
    {
        return Some(Format::OktaHook);
    }
    if event_type.is_some() || (r.published.is_some() && r.uuid.is_some()) {
        return Some(Format::Okta);
    }
    if r.activity_display_name.is_some() || r.activity_date_time.is_some() {
        return Some(Format::EntraAudit);
    }
    let has_user = r.user_principal_name.is_some() || r.user_id.is_some();
    if has_user
        && (r.created_date_time.is_some()
            || r.status.is_some()
            || r.client_app_used.is_some()
            || r.app_id.is_some())
    {
        return Some(Format::EntraSignIn);
    }
    None
}

/// Stable id for records without one: the same line always hashes to the same
/// id, so de-duplication of redelivered lines still works. Hook elements mix
/// in their index so siblings do not collide.
fn fallback_id(line: &str, index: Option<usize>) -> String {
    let mut h = Sha256::new();
    h.update(line.as_bytes());
    if let Some(i) = index {
        h.update(b"#data.events[");
        h.update(i.to_string().as_bytes());
        h.update(b"]");
    }
    let digest = h.finalize();
    let mut id = String::with_capacity(7 + 32);
    id.push_str("sha256:");
    id.push_str(&hex::encode(&digest[..16]));
    id
}

/// Converts an optional borrowed string into an owned, non-empty one. Empty
/// strings are treated like null: Okta and Graph emit both for "no value".
pub(crate) fn owned(s: &Option<raw::Str>) -> Option<String> {
    s.as_ref()
        .map(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests;
