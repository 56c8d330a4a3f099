//! Normalization: turns one raw input line into the `model::Event`s the
//! rules consume, each keeping its source record (`RawRecord`) for the
//! rules that read a vendor field by JSON pointer. A line is an Okta System
//! Log LogEvent, an Okta Event Hook delivery, a Graph sign-in or directory
//! audit, an Azure Monitor diagnostic record (Entra sign-in and audit
//! categories), an Event Hub batch (`{"records": [...]}`) or a Graph list
//! page (`{"value": [...]}`).
//!
//! This module owns format detection, the error and report types, the
//! per-element handling of multi-record lines and the attribute bounds;
//! `okta`, `entra` and `azure` own the per-vendor field mapping, `fields`
//! the shared cleanup (placeholder IPs, null-island geo), `time` the
//! timestamp parsing, `raw` the borrowing serde shapes and `lenient` the
//! repair of mistyped fields.
//!
//! Invariants:
//! - Hot path: each line is parsed exactly once into typed structs that
//!   borrow from the line (no `serde_json::Value`); only a line that fails
//!   that parse on a field's type takes the slow path through `lenient`.
//! - Lenient fields, strict essentials: a field of the wrong JSON type is
//!   dropped and reported (`LineReport::dropped`), never the event; only an
//!   event's id, time or type (missing, unparseable or mistyped) rejects it.
//! - A bad element of a multi-record line costs only itself: the others are
//!   emitted and the bad one is reported with its index
//!   (`LineReport::rejected`). `normalize_line` keeps the all-or-nothing
//!   contract for callers that need it (`POST /v1/events`).

mod azure;
mod entra;
mod fields;
mod lenient;
mod okta;
mod raw;
mod time;

use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::model::{Event, RawLine, RawRecord};
use lenient::Dropped;
use raw::{Elements, Record};

pub use entra::{KIND_MI_SIGN_IN, KIND_SIGN_IN, KIND_SP_SIGN_IN};
pub use time::parse_time_ms;

/// Names used in `MissingField`/`BadTime` errors and in docs.
pub const FORMAT_OKTA: &str = "okta";
pub const FORMAT_OKTA_HOOK: &str = "okta-event-hook";
pub const FORMAT_ENTRA_SIGNIN: &str = "entra-signin";
pub const FORMAT_ENTRA_AUDIT: &str = "entra-audit";
pub const FORMAT_AZURE: &str = "azure-monitor";

/// Why a line (or one element of it) produced no event.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// Not JSON, or JSON that cannot be read as any format even after
    /// dropping mistyped fields; carries serde_json's message.
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
    /// An essential field (id, time, type), or the record itself, has the
    /// wrong JSON type. `field` is empty when the record is not an object.
    #[error("{}", wrong_type(field, message))]
    WrongType { field: String, message: String },
    /// One element of a multi-record line (`data.events`, `records`,
    /// `value`) failed.
    #[error("{array}[{index}]: {source}")]
    InEnvelope {
        array: &'static str,
        index: usize,
        source: Box<NormalizeError>,
    },
}

fn wrong_type(field: &str, message: &str) -> String {
    if field.is_empty() {
        format!("not a record: {message}")
    } else {
        format!("`{field}` has the wrong type: {message}")
    }
}

impl NormalizeError {
    /// The reject reason counted in summaries and metrics (`invalid-json`,
    /// `unknown-format`, `missing-field`, `bad-time`, `wrong-type`); an
    /// element's error counts as its cause.
    pub fn reason(&self) -> &'static str {
        match self {
            NormalizeError::InvalidJson(_) => "invalid-json",
            NormalizeError::UnknownFormat(_) => "unknown-format",
            NormalizeError::MissingField { .. } => "missing-field",
            NormalizeError::BadTime { .. } => "bad-time",
            NormalizeError::WrongType { .. } => "wrong-type",
            NormalizeError::InEnvelope { source, .. } => source.reason(),
        }
    }

    /// The element index of an element's error.
    pub fn element_index(&self) -> Option<usize> {
        match self {
            NormalizeError::InEnvelope { index, .. } => Some(*index),
            _ => None,
        }
    }
}

/// A field dropped from an event because its JSON type was not the
/// documented one, or its value was unusable (an IP that is no IP). The
/// event itself was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedField {
    /// Where, in the line: `debugContext.debugData`,
    /// `data.events[3].client.ipAddress`, `records[0].properties.location`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for DroppedField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What a line gave besides its events.
#[derive(Debug, Default)]
pub struct LineReport {
    /// Fields dropped from emitted events.
    pub dropped: Vec<DroppedField>,
    /// Elements of a multi-record line that were rejected (each an
    /// `InEnvelope` naming its index); the other elements were emitted.
    pub rejected: Vec<NormalizeError>,
}

impl LineReport {
    pub fn clear(&mut self) {
        self.dropped.clear();
        self.rejected.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.dropped.is_empty() && self.rejected.is_empty()
    }
}

/// Where the field notes of the record being normalized go, and how their
/// paths are prefixed (the element, `properties.` inside Azure Monitor).
pub(crate) struct Notes<'r> {
    element: Option<(&'static str, usize)>,
    prefix: &'static str,
    dropped: &'r mut Vec<DroppedField>,
}

impl<'r> Notes<'r> {
    pub(crate) fn new(
        element: Option<(&'static str, usize)>,
        dropped: &'r mut Vec<DroppedField>,
    ) -> Notes<'r> {
        Notes {
            element,
            prefix: "",
            dropped,
        }
    }

    /// Notes for the record inside `prefix` (e.g. `properties.`).
    pub(crate) fn nested(&mut self, prefix: &'static str) -> Notes<'_> {
        Notes {
            element: self.element,
            prefix,
            dropped: self.dropped,
        }
    }

    /// Notes for the wrapper around the record (no prefix).
    pub(crate) fn outer(&mut self) -> Notes<'_> {
        Notes {
            element: self.element,
            prefix: "",
            dropped: self.dropped,
        }
    }

    /// Records that the field at `path` (relative to the record) was dropped.
    pub(crate) fn drop_field(&mut self, path: &str, message: impl Into<String>) {
        let path = match self.element {
            Some((array, index)) => format!("{array}[{index}].{}{path}", self.prefix),
            None => format!("{}{path}", self.prefix),
        };
        self.dropped.push(DroppedField {
            path,
            message: message.into(),
        });
    }
}

const UNKNOWN_FORMAT_HINT: &str = "not an Okta LogEvent (eventType, published), Okta Event Hook \
     (data.events), Entra sign-in (createdDateTime, userPrincipalName), Entra directory audit \
     (activityDisplayName, activityDateTime), Azure Monitor record (time, category, properties), \
     Event Hub batch (records) or Graph list page (value)";

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
    EntraSignIn(entra::SignInOf),
    EntraAudit,
    Azure,
    EventHubBatch,
    GraphPage,
}

/// Keys whose wrong type costs the record: its id, time and type, and the
/// containers that hold the record(s).
const ESSENTIAL_KEYS: [&str; 9] = [
    "uuid",
    "published",
    "eventType",
    "eventtype",
    "id",
    "createdDateTime",
    "activityDateTime",
    "activityDisplayName",
    "time",
];

/// Whether a dropped field costs its record (see `ESSENTIAL_KEYS`).
fn is_essential(d: &Dropped) -> bool {
    let path = d.path.as_slice();
    if path.is_empty() || path == ["properties"] {
        return true;
    }
    if d.element.is_none() && matches!(path[0].as_str(), "data" | "records" | "value") {
        return true;
    }
    let rel = match path {
        [first, rest @ ..] if first == "properties" => rest,
        _ => path,
    };
    matches!(rel, [key] if ESSENTIAL_KEYS.contains(&key.as_str()))
}

impl Normalizer {
    /// Parses one input line (already known to be within the size limit)
    /// and pushes its events to `out`, **all or nothing**: if the line or any
    /// element of it is rejected, `out` is left as it was and the first
    /// error is returned (the `POST /v1/events` contract). Dropped fields
    /// are logged as warnings. Returns how many events were pushed; blank
    /// lines yield `Ok(0)`.
    pub fn normalize_line(
        &self,
        line: &str,
        out: &mut Vec<Event>,
    ) -> Result<usize, NormalizeError> {
        let start = out.len();
        let mut report = LineReport::default();
        let n = self.normalize_line_report(line, out, &mut report)?;
        if let Some(first) = report.rejected.into_iter().next() {
            out.truncate(start);
            return Err(first);
        }
        for d in &report.dropped {
            tracing::warn!(field = %d.path, "dropped a field: {}", d.message);
        }
        Ok(n)
    }

    /// Parses one input line and pushes the events it holds to `out`,
    /// element by element: a rejected element of a multi-record line is
    /// added to `report.rejected` and the others are emitted; fields dropped
    /// from emitted events are added to `report.dropped`. Returns how many
    /// events were pushed. `Err` means the line as a whole yields nothing
    /// (then `out` and `report` are as they were).
    pub fn normalize_line_report(
        &self,
        line: &str,
        out: &mut Vec<Event>,
        report: &mut LineReport,
    ) -> Result<usize, NormalizeError> {
        self.normalize_raw_report(&RawLine::new(line), out, report)
    }

    /// [`Normalizer::normalize_line_report`] for a line the caller owns and
    /// no longer needs: its events keep it as their source record without
    /// a copy (the pipeline's hot path).
    pub fn normalize_owned_report(
        &self,
        line: String,
        out: &mut Vec<Event>,
        report: &mut LineReport,
    ) -> Result<usize, NormalizeError> {
        self.normalize_raw_report(&RawLine::new(line), out, report)
    }

    fn normalize_raw_report(
        &self,
        raw: &Arc<RawLine>,
        out: &mut Vec<Event>,
        report: &mut LineReport,
    ) -> Result<usize, NormalizeError> {
        // Exports often carry a BOM on the first line and CRLF endings; both
        // would otherwise break the hash-based fallback id or the parse.
        let line = raw.text().trim_start_matches('\u{feff}').trim();
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
        let (start, dropped_before, rejected_before) =
            (out.len(), report.dropped.len(), report.rejected.len());
        let result = match serde_json::from_str::<Record>(line) {
            Ok(rec) => self.normalize_record(raw, line, &rec, &[], out, report),
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                // A field of the wrong type: the slow path (see `lenient`).
                let mut value: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| NormalizeError::InvalidJson(e.to_string()))?;
                let dropped = lenient::repair(&mut value).map_err(NormalizeError::InvalidJson)?;
                let rec = Record::deserialize(&value)
                    .map_err(|e| NormalizeError::InvalidJson(e.to_string()))?;
                self.normalize_record(raw, line, &rec, &dropped, out, report)
            }
            Err(e) => Err(NormalizeError::InvalidJson(e.to_string())),
        };
        if result.is_err() {
            out.truncate(start);
            report.dropped.truncate(dropped_before);
            report.rejected.truncate(rejected_before);
        }
        result
    }

    /// One parsed line: a single record, or an envelope of many.
    fn normalize_record(
        &self,
        raw: &Arc<RawLine>,
        line: &str,
        rec: &Record,
        dropped: &[Dropped],
        out: &mut Vec<Event>,
        report: &mut LineReport,
    ) -> Result<usize, NormalizeError> {
        let line_level = dropped.iter().filter(|d| d.element.is_none());
        if let Some(d) = line_level.clone().find(|d| is_essential(d)) {
            return Err(NormalizeError::WrongType {
                field: d.record_path(),
                message: d.message.clone(),
            });
        }
        let format = detect(rec)
            .ok_or_else(|| NormalizeError::UnknownFormat(UNKNOWN_FORMAT_HINT.to_owned()))?;
        let envelope = match format {
            Format::OktaHook => Some((
                "data.events",
                rec.data.as_ref().and_then(|d| d.events.as_ref()),
                FORMAT_OKTA_HOOK,
                "data.events",
            )),
            Format::EventHubBatch => {
                Some(("records", rec.records.as_ref(), FORMAT_AZURE, "records"))
            }
            Format::GraphPage => Some(("value", rec.value.as_ref(), FORMAT_ENTRA_SIGNIN, "value")),
            _ => None,
        };
        for d in line_level {
            report.dropped.push(DroppedField {
                path: d.full_path(),
                message: d.message.clone(),
            });
        }
        let Some((array, elements, format_name, field)) = envelope else {
            let mut notes = Notes::new(None, &mut report.dropped);
            let mut event =
                self.normalize_single(format, rec, &mut notes, || fallback_id(line, None))?;
            event.raw = Some(RawRecord::whole(raw.clone()));
            out.push(event);
            return Ok(1);
        };
        let Some(Elements(elements)) = elements else {
            return Err(NormalizeError::MissingField {
                format: format_name,
                field,
            });
        };
        // Each element's drops, grouped once (a scan per element would be
        // quadratic in a large batch full of mistakes).
        let mut by_element: std::collections::BTreeMap<usize, Vec<&Dropped>> =
            std::collections::BTreeMap::new();
        for d in dropped {
            if let Some((a, i)) = d.element
                && a == array
            {
                by_element.entry(i).or_default().push(d);
            }
        }
        let start = out.len();
        out.reserve(elements.len());
        let raw_array = match array {
            "data.events" => "/data/events",
            "records" => "/records",
            _ => "/value",
        };
        for (index, element) in elements.iter().enumerate() {
            let at = Some((array, index));
            let reject = |report: &mut LineReport, source: NormalizeError| {
                report.rejected.push(NormalizeError::InEnvelope {
                    array,
                    index,
                    source: Box::new(source),
                });
            };
            let mine = || by_element.get(&index).into_iter().flatten().copied();
            if let Some(d) = mine().find(|d| is_essential(d)) {
                let source = NormalizeError::WrongType {
                    field: d.record_path(),
                    message: d.message.clone(),
                };
                reject(report, source);
                continue;
            }
            let mark = report.dropped.len();
            for d in mine() {
                report.dropped.push(DroppedField {
                    path: d.full_path(),
                    message: d.message.clone(),
                });
            }
            let mut notes = Notes::new(at, &mut report.dropped);
            let result = match (array, detect(element)) {
                // A hook holds LogEvents; judge every element as one, so a
                // broken one is reported as a broken LogEvent.
                ("data.events", _) => {
                    okta::normalize(self, element, &mut notes, || fallback_id(line, at))
                }
                (_, Some(Format::OktaHook | Format::EventHubBatch | Format::GraphPage)) => {
                    Err(NormalizeError::UnknownFormat(
                        "a batch inside a batch is not supported".to_owned(),
                    ))
                }
                (_, Some(f)) => {
                    self.normalize_single(f, element, &mut notes, || fallback_id(line, at))
                }
                (_, None) => Err(NormalizeError::UnknownFormat(
                    UNKNOWN_FORMAT_HINT.to_owned(),
                )),
            };
            match result {
                Ok(mut e) => {
                    e.raw = Some(RawRecord::element(raw.clone(), raw_array, index));
                    out.push(e)
                }
                Err(source) => {
                    report.dropped.truncate(mark);
                    reject(report, source);
                }
            }
        }
        Ok(out.len() - start)
    }

    /// One record of a known single-record format.
    fn normalize_single(
        &self,
        format: Format,
        rec: &Record,
        notes: &mut Notes,
        fallback_id: impl FnOnce() -> String,
    ) -> Result<Event, NormalizeError> {
        match format {
            Format::Okta => okta::normalize(self, rec, notes, fallback_id),
            Format::EntraSignIn(of) => {
                entra::normalize_signin(self, rec, None, of, notes, fallback_id)
            }
            Format::EntraAudit => entra::normalize_audit(self, rec, None, notes, fallback_id),
            Format::Azure => azure::normalize(self, rec, notes, fallback_id),
            Format::OktaHook | Format::EventHubBatch | Format::GraphPage => {
                unreachable!("envelopes are handled by normalize_record")
            }
        }
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
    if r.records.is_some() {
        return Some(Format::EventHubBatch);
    }
    if r.value.is_some() {
        return Some(Format::GraphPage);
    }
    if event_type.is_some() || (r.published.is_some() && r.uuid.is_some()) {
        return Some(Format::Okta);
    }
    if r.properties.is_some()
        && (r.category.is_some() || r.time.is_some() || r.operation_name.is_some())
    {
        return Some(Format::Azure);
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
        return Some(Format::EntraSignIn(entra::SignInOf::User));
    }
    if r.service_principal_id.is_some() && r.created_date_time.is_some() {
        return Some(Format::EntraSignIn(entra::SignInOf::ServicePrincipal));
    }
    None
}

/// Stable id for records without one: the same line always hashes to the same
/// id, so de-duplication of redelivered lines still works. Elements of a
/// multi-record line mix in their array and index so siblings do not collide
/// (`#data.events[i]`, as before batches were added, so hook ids are stable).
fn fallback_id(line: &str, element: Option<(&str, usize)>) -> String {
    let mut h = Sha256::new();
    h.update(line.as_bytes());
    if let Some((array, i)) = element {
        h.update(b"#");
        h.update(array.as_bytes());
        h.update(b"[");
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
