//! The slow path for a line whose strict parse failed on a field of the
//! wrong JSON type (`debugData: ""`, `"lat": "38.7"`, a string where an
//! object was expected): the line is parsed into a `serde_json::Value`, and
//! each offending field is found (`serde_path_to_error` names its path),
//! replaced by `null` — which every `Record` field accepts as "absent" — and
//! remembered, until the record parses.
//!
//! Invariants:
//! - Only lines that fail the strict parse come here, so the hot path pays
//!   nothing for leniency.
//! - Multi-record lines (`data.events`, `records`, `value`) are repaired one
//!   element at a time: an element's mistakes cost only that element, and the
//!   work stays linear in the line's size (each record is re-parsed at most
//!   `MAX_REPAIRS_PER_RECORD` times).
//! - Nothing is dropped silently: every replaced field is returned as a
//!   `Dropped` with its path and serde's reason. Whether a drop costs the
//!   field or the record (an essential field: id, time, type) is decided by
//!   the caller (`mod.rs`), which knows the formats.

use serde_json::Value;
use serde_path_to_error::Segment;

use super::raw::Record;

/// A record with more mistyped fields than this is rejected as a whole:
/// past a handful it is not the shape it claims to be.
const MAX_REPAIRS_PER_RECORD: usize = 16;

/// The keys under which a line holds many records, and the record each
/// element is. `data.events` is the Okta Event Hook's.
pub(crate) const ELEMENT_ARRAYS: [&str; 3] = ["data.events", "records", "value"];

/// One field replaced by null.
#[derive(Debug, Clone)]
pub(crate) struct Dropped {
    /// The multi-record array and index the field is in, if any.
    pub element: Option<(&'static str, usize)>,
    /// The path inside that element (or inside the line's record). Empty
    /// when the element itself was not an object.
    pub path: Vec<String>,
    /// Why serde refused it, in words an operator can act on.
    pub message: String,
}

impl Dropped {
    /// `data.events[3].client.ipAddress`.
    pub fn full_path(&self) -> String {
        let mut s = String::new();
        if let Some((array, index)) = self.element {
            s.push_str(array);
            s.push('[');
            s.push_str(&index.to_string());
            s.push(']');
            if !self.path.is_empty() {
                s.push('.');
            }
        }
        s.push_str(&join_path(&self.path));
        s
    }

    /// The path inside the record, `properties.` prefix included.
    pub fn record_path(&self) -> String {
        join_path(&self.path)
    }
}

/// Joins keys with dots; numeric segments (array indices) as `[i]`.
fn join_path(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if let Some(i) = seg.strip_prefix('[') {
            s.push('[');
            s.push_str(i);
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(seg);
        }
    }
    s
}

/// Why the line could not be repaired; becomes `NormalizeError::InvalidJson`.
pub(crate) type RepairError = String;

/// Repairs `value` in place so that it parses as a `Record`, returning what
/// was dropped. Fails only when the top-level record itself cannot be made
/// to parse within the repair budget.
pub(crate) fn repair(value: &mut Value) -> Result<Vec<Dropped>, RepairError> {
    let mut dropped = Vec::new();
    // Take the element arrays out, so the envelope is repaired without them
    // and each element on its own.
    let mut taken: Vec<(&'static str, Value)> = Vec::new();
    for array in ELEMENT_ARRAYS {
        if let Some(slot) = pointer_mut(value, array)
            && slot.is_array()
        {
            taken.push((array, std::mem::replace(slot, Value::Array(Vec::new()))));
        }
    }
    repair_record(value, None, &mut dropped).map_err(|(path, message)| {
        format!(
            "more than {MAX_REPAIRS_PER_RECORD} fields of the wrong type (last: {}: {message})",
            join_path(&path)
        )
    })?;
    for (array, mut elements) in taken {
        if let Value::Array(items) = &mut elements {
            for (index, item) in items.iter_mut().enumerate() {
                let element = Some((array, index));
                if !(item.is_object() || item.is_null()) {
                    dropped.push(Dropped {
                        element,
                        path: Vec::new(),
                        message: format!("{}, expected an object", describe(item)),
                    });
                    *item = Value::Null;
                    continue;
                }
                if let Err((path, message)) = repair_record(item, element, &mut dropped) {
                    // Beyond the budget: the element goes, as a whole.
                    dropped.push(Dropped {
                        element,
                        path: Vec::new(),
                        message: format!(
                            "more than {MAX_REPAIRS_PER_RECORD} fields of the wrong type (last: {}: {message})",
                            join_path(&path)
                        ),
                    });
                    *item = Value::Null;
                }
            }
        }
        if let Some(slot) = pointer_mut(value, array) {
            *slot = elements;
        }
    }
    Ok(dropped)
}

/// Nulls the fields of one record that stop it from parsing. On failure
/// returns the last offending path and message.
fn repair_record(
    value: &mut Value,
    element: Option<(&'static str, usize)>,
    dropped: &mut Vec<Dropped>,
) -> Result<(), (Vec<String>, String)> {
    for made in 0..=MAX_REPAIRS_PER_RECORD {
        // Own the error before touching `value`: the parsed record borrows it.
        let failure = serde_path_to_error::deserialize::<_, Record>(&*value)
            .err()
            .map(|e| {
                let path: Vec<String> = e.path().iter().map(segment).collect();
                (path, humanize(&e.into_inner().to_string()))
            });
        let Some((path, message)) = failure else {
            return Ok(());
        };
        if made == MAX_REPAIRS_PER_RECORD {
            return Err((path, message));
        }
        match node_mut(value, &path) {
            Some(node) if !node.is_null() && !path.is_empty() => *node = Value::Null,
            // Not a type error we can fix by dropping a field.
            _ => return Err((path, message)),
        }
        dropped.push(Dropped {
            element,
            path,
            message,
        });
    }
    unreachable!("the loop returns by its last iteration")
}

fn segment(s: &Segment) -> String {
    match s {
        Segment::Seq { index } => format!("[{index}]"),
        Segment::Map { key } | Segment::Enum { variant: key } => key.clone(),
        Segment::Unknown => "?".to_owned(),
    }
}

/// Follows a dotted key path (`data.events`).
fn pointer_mut<'v>(value: &'v mut Value, dotted: &str) -> Option<&'v mut Value> {
    dotted
        .split('.')
        .try_fold(value, |v, key| v.as_object_mut()?.get_mut(key))
}

/// Follows a path of keys and `[i]` indices.
fn node_mut<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, seg| {
        match seg
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|i| i.parse::<usize>().ok())
        {
            Some(i) => v.as_array_mut()?.get_mut(i),
            None => v.as_object_mut()?.get_mut(seg.as_str()),
        }
    })
}

/// `a string "x"`, `an integer 5`, ... for element-level messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("invalid type: boolean `{b}`"),
        Value::Number(n) => format!("invalid type: number `{n}`"),
        Value::String(s) => format!(
            "invalid type: string {:?}",
            s.chars().take(40).collect::<String>()
        ),
        Value::Array(_) => "invalid type: array".to_owned(),
        Value::Object(_) => "invalid type: object".to_owned(),
    }
}

/// serde's messages name Rust types (`expected struct OktaDebugData`,
/// `expected f64`); an operator reads JSON types.
fn humanize(msg: &str) -> String {
    let msg = match msg.find("expected struct ") {
        Some(at) => format!("{}expected an object", &msg[..at]),
        None => msg.to_owned(),
    };
    msg.replace("expected f64", "expected a number")
        .replace("expected i64", "expected an integer")
        .replace("expected u64", "expected an integer")
        .replace("expected a boolean", "expected true or false")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn repaired(line: &str) -> (Value, Vec<Dropped>) {
        let mut v: Value = serde_json::from_str(line).unwrap();
        let d = repair(&mut v).unwrap();
        // The repaired value must now parse strictly.
        Record::deserialize(&v).unwrap();
        (v, d)
    }

    // One mistyped nested object is nulled and named by its path.
    #[test]
    fn nested_object_as_string() {
        let (v, d) = repaired(
            r#"{"eventType":"x","published":"2026-03-01T10:00:00Z","debugContext":{"debugData":""}}"#,
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].full_path(), "debugContext.debugData");
        assert_eq!(
            d[0].message,
            "invalid type: string \"\", expected an object"
        );
        assert!(v["debugContext"]["debugData"].is_null());
        assert_eq!(v["eventType"], "x");
    }

    // Several mistakes in different hook elements: each is named with its
    // element, the envelope and the other elements are untouched.
    #[test]
    fn elements_repaired_one_by_one() {
        let (v, d) = repaired(
            r#"{"eventType":"com.okta.event_hook","data":{"events":[{"eventType":"a","client":{"ipAddress":5}},{"eventType":"b"},42,{"eventType":"c","client":{"geographicalContext":{"geolocation":{"lat":"38.7","lon":true}}}}]}}"#,
        );
        let paths: Vec<String> = d.iter().map(Dropped::full_path).collect();
        assert_eq!(
            paths,
            [
                "data.events[0].client.ipAddress",
                "data.events[2]",
                "data.events[3].client.geographicalContext.geolocation.lat",
                "data.events[3].client.geographicalContext.geolocation.lon",
            ]
        );
        assert_eq!(
            d[1].message,
            "invalid type: number `42`, expected an object"
        );
        assert!(
            d[2].message.contains("expected a number"),
            "{}",
            d[2].message
        );
        assert!(v["data"]["events"][2].is_null());
        assert_eq!(v["data"]["events"][1]["eventType"], "b");
    }

    // More mistakes than the budget: the top-level record cannot be repaired.
    #[test]
    fn budget_is_bounded() {
        let fields: Vec<String> = [
            "uuid",
            "published",
            "severity",
            "actor",
            "target",
            "client",
            "outcome",
            "authenticationContext",
            "securityContext",
            "debugContext",
            "id",
            "createdDateTime",
            "userId",
            "userPrincipalName",
            "userDisplayName",
            "appId",
            "appDisplayName",
            "ipAddress",
        ]
        .iter()
        .map(|k| format!("\"{k}\":7"))
        .collect();
        let mut v: Value =
            serde_json::from_str(&format!("{{\"eventType\":\"x\",{}}}", fields.join(","))).unwrap();
        let err = repair(&mut v).unwrap_err();
        assert!(err.starts_with("more than 16 fields"), "{err}");
    }
}
