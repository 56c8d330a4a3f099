//! Borrowing serde shapes for one input line: the union `Record` every format
//! is parsed into in a single pass, the leaf types (`Str`, `Scalar`) that
//! keep that parse allocation-free for unescaped strings, and the vendors'
//! nested shapes (`okta`, `entra`). The format modules (`normalize::okta`,
//! `normalize::entra`) read these shapes; nothing here depends on them.
//!
//! One union struct rather than "probe, then parse again" because the formats'
//! top-level keys do not collide (Okta: `eventType`/`published`/`uuid`, hook:
//! `data`, Entra: `id`/`createdDateTime`/`activityDateTime`..., Azure Monitor:
//! `time`/`category`/`properties`, batches: `records`/`value`), so detection
//! is just a look at which `Option`s came back `Some`; the one shared key of
//! two types, `location` (Graph object, Azure Monitor country code), has a
//! type of its own. Unknown keys are skipped by serde without building
//! values. Azure Monitor's `properties` and the batches' elements are
//! `Record`s too.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

mod entra;
mod okta;

pub(crate) use entra::{
    EntraCaPolicy, EntraInitiatedBy, EntraLocation, EntraMfaDetail, EntraStatus, EntraTarget,
};
pub(crate) use okta::{
    OktaActor, OktaAuthContext, OktaClient, OktaDebugContext, OktaDebugData, OktaOutcome,
    OktaSecurityContext,
};

/// A JSON string that borrows from the input line unless it contains escapes.
///
/// `#[serde(borrow)] Option<Cow<'a, str>>` does not actually borrow (serde's
/// `Option` impl routes through `Cow`'s always-owning impl), so this newtype
/// implements the visitor itself: `visit_borrowed_str` keeps the slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A loosely typed leaf: Okta's `debugData` carries the same key as a string
/// in one event and as a bool/number in another, and Graph's `errorCode` is a
/// number that some exporters quote. Objects/arrays are kept as compact JSON
/// text (rare, so the detour through `serde_json::Value` is acceptable).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Json(String),
}

impl Scalar<'_> {
    /// Renders the value the way an attribute carries it.
    pub fn render(&self) -> String {
        match self {
            Scalar::Str(s) => s.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::UInt(u) => u.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Json(j) => j.clone(),
        }
    }

    /// Integer view, accepting quoted integers ("500121") too.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Scalar::Int(i) => Some(*i),
            Scalar::UInt(u) => i64::try_from(*u).ok(),
            Scalar::Str(s) => s.trim().parse().ok(),
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, bool, number, array or object")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::UInt(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Scalar::Json(v.to_string()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Scalar::Json(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Every top-level key any supported format uses. All optional: which ones are
/// present decides the format (see `mod.rs`), and missing/null fields must
/// never fail the parse. A field of the wrong JSON type does fail this strict
/// parse; `lenient` then drops that field and parses again.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record<'a> {
    // --- Okta LogEvent. SIEM exports that lower-case the top-level keys
    // are accepted through aliases (a string match, free at parse time).
    #[serde(borrow)]
    pub uuid: Option<Str<'a>>,
    #[serde(borrow)]
    pub published: Option<Str<'a>>,
    #[serde(borrow, alias = "eventtype")]
    pub event_type: Option<Str<'a>>,
    #[serde(borrow)]
    pub severity: Option<Str<'a>>,
    #[serde(borrow)]
    pub actor: Option<OktaActor<'a>>,
    #[serde(borrow)]
    pub target: Option<Vec<Option<OktaActor<'a>>>>,
    #[serde(borrow)]
    pub client: Option<OktaClient<'a>>,
    #[serde(borrow)]
    pub outcome: Option<OktaOutcome<'a>>,
    #[serde(borrow, alias = "authenticationcontext")]
    pub authentication_context: Option<OktaAuthContext<'a>>,
    #[serde(borrow, alias = "securitycontext")]
    pub security_context: Option<OktaSecurityContext<'a>>,
    #[serde(borrow, alias = "debugcontext")]
    pub debug_context: Option<OktaDebugContext<'a>>,

    // --- Okta Event Hook envelope ---
    #[serde(borrow)]
    pub data: Option<HookData<'a>>,

    // --- Entra sign-in and directory audit (shared `id`) ---
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow)]
    pub created_date_time: Option<Str<'a>>,
    #[serde(borrow)]
    pub user_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub user_principal_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub user_display_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub service_principal_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub service_principal_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub app_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub app_display_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub resource_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub resource_display_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub ip_address: Option<Str<'a>>,
    #[serde(borrow)]
    pub client_app_used: Option<Str<'a>>,
    #[serde(borrow)]
    pub user_agent: Option<Str<'a>>,
    /// An object in Graph records, a country-code string at the top of an
    /// Azure Monitor record.
    #[serde(borrow)]
    pub location: Option<Location<'a>>,
    #[serde(borrow)]
    pub status: Option<EntraStatus<'a>>,
    #[serde(borrow)]
    pub conditional_access_status: Option<Str<'a>>,
    #[serde(borrow)]
    pub applied_conditional_access_policies: Option<Vec<Option<EntraCaPolicy<'a>>>>,
    #[serde(borrow)]
    pub authentication_requirement: Option<Str<'a>>,
    #[serde(borrow)]
    pub risk_level_during_sign_in: Option<Str<'a>>,
    #[serde(borrow)]
    pub mfa_detail: Option<EntraMfaDetail<'a>>,
    pub is_interactive: Option<bool>,

    #[serde(borrow)]
    pub activity_display_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub activity_date_time: Option<Str<'a>>,
    #[serde(borrow)]
    pub initiated_by: Option<EntraInitiatedBy<'a>>,
    #[serde(borrow)]
    pub target_resources: Option<Vec<Option<EntraTarget<'a>>>>,
    #[serde(borrow)]
    pub result: Option<Str<'a>>,
    #[serde(borrow)]
    pub result_reason: Option<Str<'a>>,
    /// Graph audits: the audit category (`UserManagement`); Azure Monitor
    /// records: the log category (`SignInLogs`, `AuditLogs`, ...).
    #[serde(borrow)]
    pub category: Option<Str<'a>>,
    #[serde(borrow)]
    pub operation_type: Option<Str<'a>>,
    #[serde(borrow)]
    pub logged_by_service: Option<Str<'a>>,

    // --- Azure Monitor diagnostic record (Event Hub, storage account) ---
    #[serde(borrow)]
    pub time: Option<Str<'a>>,
    #[serde(borrow)]
    pub operation_name: Option<Str<'a>>,
    /// "0" or the error code, as a string (some exporters send a number).
    #[serde(borrow)]
    pub result_type: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub caller_ip_address: Option<Str<'a>>,
    /// The Graph record the diagnostic record wraps.
    #[serde(borrow)]
    pub properties: Option<Box<Record<'a>>>,

    // --- Multi-record lines ---
    /// Event Hub batch: `{"records": [...]}`.
    #[serde(borrow)]
    pub records: Option<Elements<'a>>,
    /// Graph list page: `{"value": [...], "@odata.nextLink": ...}`.
    #[serde(borrow)]
    pub value: Option<Elements<'a>>,
}

/// `location`: Graph's object, or Azure Monitor's country code.
#[derive(Debug)]
pub(crate) enum Location<'a> {
    Object(EntraLocation<'a>),
    Code(Str<'a>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Location<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Location<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a location object or a country code")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Location::Code(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Location::Code(Str(Cow::Owned(v.to_owned()))))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                EntraLocation::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Location::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// `data` of an Okta Event Hook delivery.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct HookData<'a> {
    #[serde(borrow)]
    pub events: Option<Elements<'a>>,
}

/// The records of a multi-record line (`data.events`, `records`, `value`).
/// A null element is kept as an empty record, so it is reported by index
/// (as missing its essential fields) instead of shifting its neighbours.
#[derive(Debug, Default)]
pub(crate) struct Elements<'a>(pub Vec<Record<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Elements<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Elements<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
                while let Some(r) = seq.next_element::<Option<Record<'de>>>()? {
                    out.push(r.unwrap_or_default());
                }
                Ok(Elements(out))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Unescaped strings borrow from the line; escaped ones are owned.
    #[test]
    fn str_borrows_when_possible() {
        let r: Record = serde_json::from_str(r#"{"uuid":"abc","eventType":"a\"b"}"#).unwrap();
        assert!(matches!(r.uuid.unwrap().0, Cow::Borrowed("abc")));
        assert!(matches!(r.event_type.unwrap().0, Cow::Owned(ref s) if s == "a\"b"));
    }
}
