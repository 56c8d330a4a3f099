//! One normalized identity event and the principals it names.

use std::sync::{Arc, OnceLock};

/// Coarse category of an event, so a rule can branch without string
/// matching on vendor event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventClass {
    Authentication,
    MfaChallenge,
    FactorChange,
    PolicyChange,
    AccountChange,
    Session,
    Other,
}

impl EventClass {
    /// The WIT name: `authentication`, `mfa-challenge`, …
    pub fn name(self) -> &'static str {
        match self {
            EventClass::Authentication => "authentication",
            EventClass::MfaChallenge => "mfa-challenge",
            EventClass::FactorChange => "factor-change",
            EventClass::PolicyChange => "policy-change",
            EventClass::AccountChange => "account-change",
            EventClass::Session => "session",
            EventClass::Other => "other",
        }
    }
}

/// Normalized outcome of the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

impl Outcome {
    /// The WIT name: `success`, `failure`, `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

/// A user, application, policy or other object named by an event.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// The identity provider's stable id (Okta `00u…`, Entra object id).
    pub id: String,
    /// The provider's type name: `User`, `PolicyEntity`, `AppInstance`, …
    pub kind: String,
    pub login: Option<String>,
    pub display_name: Option<String>,
}

/// Where the client was, as the identity provider resolved it.
#[derive(Clone, Debug, PartialEq)]
pub struct Geo {
    pub country: Option<String>,
    pub city: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

/// One normalized identity event, parsed once and shared (`Arc`) by every
/// rule that reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The source's unique id (Okta `uuid`, Entra `id`).
    pub id: String,
    /// `okta` or `entra`.
    pub source: String,
    /// The source's event type.
    pub kind: String,
    pub class: EventClass,
    /// Event time, unix milliseconds.
    pub time: i64,
    pub actor: Option<Principal>,
    pub targets: Vec<Principal>,
    pub outcome: Outcome,
    pub outcome_reason: Option<String>,
    pub client_ip: Option<String>,
    pub geo: Option<Geo>,
    pub user_agent: Option<String>,
    pub factor: Option<String>,
    /// Source fields the event does not name, bounded by the normalizer.
    pub attributes: Vec<(String, String)>,
    /// The source record, for rules that read a vendor field by JSON
    /// pointer (contract v0.2 `raw`). `None` for events the host makes.
    pub raw: Option<RawRecord>,
}

impl Event {
    /// An event with only its identity set (no principals, unknown
    /// outcome, nothing else): for the events the host makes itself
    /// (approvals, operator changes) and for tests.
    pub fn new(id: &str, source: &str, kind: &str, time: i64) -> Event {
        Event {
            id: id.to_owned(),
            source: source.to_owned(),
            kind: kind.to_owned(),
            class: EventClass::Other,
            time,
            actor: None,
            targets: Vec::new(),
            outcome: Outcome::Unknown,
            outcome_reason: None,
            client_ip: None,
            geo: None,
            user_agent: None,
            factor: None,
            attributes: Vec::new(),
            raw: None,
        }
    }

    /// The user the event is about: the first `User` target, or else the
    /// actor (a user acting on their own account).
    pub fn subject_user(&self) -> Option<&Principal> {
        self.targets
            .iter()
            .find(|t| t.kind == "User")
            .or(self.actor.as_ref())
    }

    /// An extra attribute by name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the event adds or changes an application: Okta
    /// `application.*`, Entra directory audits that add or update an
    /// application or service principal. The host then judges the
    /// applications it names ([`Event::app_ids`]).
    pub fn is_app_event(&self) -> bool {
        match self.source.as_str() {
            "okta" => self.kind.starts_with("application."),
            _ => matches!(
                self.kind.as_str(),
                "Add application"
                    | "Update application"
                    | "Add service principal"
                    | "Update service principal"
            ),
        }
    }

    /// The applications the event is about, by the id policies use for
    /// them: Okta `AppInstance` targets; for an Entra directory audit of an
    /// application or service principal, the application (client) id its
    /// modified properties carry (`new:AppId`, Graph's `["<app id>"]`) — the
    /// target there is the object id, which conditional access does not
    /// use.
    pub fn app_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = match self.source.as_str() {
            "okta" => self
                .targets
                .iter()
                .filter(|t| t.kind == "AppInstance")
                .map(|t| t.id.clone())
                .collect(),
            _ => self
                .attribute("new:AppId")
                .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
                .map(|v| match v {
                    serde_json::Value::Array(items) => items
                        .into_iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect(),
                    serde_json::Value::String(s) => vec![s],
                    _ => Vec::new(),
                })
                .unwrap_or_default(),
        };
        ids.retain(|id| !id.is_empty());
        ids.dedup();
        ids
    }
}

/// One input line as received, shared by the events it holds and parsed
/// into a JSON tree only when a rule first reads a raw field.
#[derive(Debug)]
pub struct RawLine {
    text: String,
    tree: OnceLock<Option<serde_json::Value>>,
}

impl RawLine {
    /// Keeps `text` (an owned `String` is kept as it is, not copied).
    pub fn new(text: impl Into<String>) -> Arc<RawLine> {
        Arc::new(RawLine {
            text: text.into(),
            tree: OnceLock::new(),
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    fn tree(&self) -> Option<&serde_json::Value> {
        self.tree
            .get_or_init(|| serde_json::from_str(&self.text).ok())
            .as_ref()
    }
}

/// Where an event's source record is: a line, and for a multi-record line
/// (an Event Hook delivery, an Event Hub batch, a Graph page) the array and
/// index of its element.
#[derive(Clone, Debug)]
pub struct RawRecord {
    line: Arc<RawLine>,
    element: Option<(&'static str, usize)>,
}

impl PartialEq for RawRecord {
    fn eq(&self, other: &Self) -> bool {
        self.element == other.element && self.line.text == other.line.text
    }
}

/// Why `raw(pointer)` gave no value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RawError {
    #[error("invalid JSON pointer {0:?}: it must be empty or start with '/' (RFC 6901)")]
    BadPointer(String),
    #[error("the value at {pointer:?} is longer than max_raw_bytes = {max} (as JSON text)")]
    TooLong { pointer: String, max: usize },
}

impl RawRecord {
    /// The record that is the whole `line`.
    pub fn whole(line: Arc<RawLine>) -> RawRecord {
        RawRecord {
            line,
            element: None,
        }
    }

    /// Element `index` of the array at JSON pointer `array` of `line`.
    pub fn element(line: Arc<RawLine>, array: &'static str, index: usize) -> RawRecord {
        RawRecord {
            line,
            element: Some((array, index)),
        }
    }

    /// The value at `pointer` (RFC 6901) in the record, as JSON text of at
    /// most `max_bytes` bytes; `Ok(None)` when there is no such field.
    pub fn get(&self, pointer: &str, max_bytes: usize) -> Result<Option<String>, RawError> {
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(RawError::BadPointer(pointer.to_owned()));
        }
        let Some(tree) = self.line.tree() else {
            return Ok(None);
        };
        let record = match self.element {
            None => Some(tree),
            Some((array, index)) => tree.pointer(array).and_then(|a| a.get(index)),
        };
        let Some(value) = record.and_then(|r| r.pointer(pointer)) else {
            return Ok(None);
        };
        // Written into a buffer that refuses to grow past the limit: a rule
        // asking for the whole of a large record again and again costs at
        // most `max_bytes` of serializing per call, not the record's size.
        let mut text = Capped {
            buf: Vec::new(),
            max: max_bytes,
        };
        if serde_json::to_writer(&mut text, value).is_err() {
            return Err(RawError::TooLong {
                pointer: pointer.to_owned(),
                max: max_bytes,
            });
        }
        let text = String::from_utf8(text.buf).expect("serde_json writes UTF-8");
        Ok(Some(text))
    }
}

/// A byte buffer that fails a write that would take it past `max`.
struct Capped {
    buf: Vec<u8>,
    max: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + bytes.len() > self.max {
            return Err(std::io::Error::other("past max_raw_bytes"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_reads_a_field_of_the_record_or_of_its_element() {
        let line = RawLine::new(r#"{"a":{"b":[1,"x"]},"records":[{"k":"v0"},{"k":"v1"}]}"#);
        let whole = RawRecord::whole(line.clone());
        assert_eq!(whole.get("/a/b/1", 100), Ok(Some("\"x\"".into())));
        assert_eq!(whole.get("/a", 100), Ok(Some(r#"{"b":[1,"x"]}"#.into())));
        assert_eq!(whole.get("/missing", 100), Ok(None));
        let second = RawRecord::element(line, "/records", 1);
        assert_eq!(second.get("/k", 100), Ok(Some("\"v1\"".into())));
        assert_eq!(second.get("/a", 100), Ok(None), "outside its element");
    }

    #[test]
    fn raw_refuses_bad_pointers_and_long_values() {
        let whole = RawRecord::whole(RawLine::new(r#"{"a":"0123456789"}"#));
        assert!(matches!(whole.get("a", 100), Err(RawError::BadPointer(_))));
        // Exactly at the limit is fine ("0123456789" with its quotes is 12).
        assert_eq!(whole.get("/a", 12), Ok(Some("\"0123456789\"".into())));
        let err = whole.get("/a", 8).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the value at \"/a\" is longer than max_raw_bytes = 8 (as JSON text)"
        );
    }

    #[test]
    fn app_ids_are_okta_app_targets_or_the_entra_app_id_property() {
        let mut okta = Event::new("e1", "okta", "application.lifecycle.create", 0);
        okta.targets = vec![
            Principal {
                id: "0oa1".into(),
                kind: "AppInstance".into(),
                login: None,
                display_name: None,
            },
            Principal {
                id: "00u1".into(),
                kind: "User".into(),
                login: None,
                display_name: None,
            },
        ];
        assert_eq!(okta.app_ids(), ["0oa1"]);
        let mut entra = Event::new("e2", "entra", "Add service principal", 0);
        entra.targets = vec![Principal {
            id: "sp-object-1".into(),
            kind: "ServicePrincipal".into(),
            login: None,
            display_name: None,
        }];
        assert!(
            entra.app_ids().is_empty(),
            "the object id is not the app id"
        );
        entra.attributes = vec![("new:AppId".into(), "[\"a1b2\"]".into())];
        assert_eq!(entra.app_ids(), ["a1b2"]);
        entra.attributes = vec![("new:AppId".into(), "not json".into())];
        assert!(entra.app_ids().is_empty());
    }
}
