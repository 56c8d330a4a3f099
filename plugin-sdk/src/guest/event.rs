//! The event a rule reads. Inside Vigil it is a view of the host's event
//! (contract v0.2 `resource event`): each field is fetched from the host
//! the first time the rule reads it and kept for the rest of the call, so
//! a call costs what the rule reads. In native tests it is a view of an
//! [`EventData`] built with [`crate::testing::EventBuilder`].

use std::cell::OnceCell;

use super::bindings::vigil::rule::types::Event as HostEvent;
use super::{EventClass, Geo, Outcome, Principal};

/// One event, owned: what tests build and feed to
/// [`crate::testing::MockHost`] (the fields of contract v0.1's `event`
/// record, plus the raw source fields a test wants `raw` to find).
#[derive(Clone, Debug, PartialEq)]
pub struct EventData {
    pub id: String,
    pub source: String,
    pub kind: String,
    pub class: EventClass,
    pub time: i64,
    pub actor: Option<Principal>,
    pub targets: Vec<Principal>,
    pub outcome: Outcome,
    pub outcome_reason: Option<String>,
    pub client_ip: Option<String>,
    pub geo: Option<Geo>,
    pub user_agent: Option<String>,
    pub factor: Option<String>,
    pub attributes: Vec<(String, String)>,
    /// JSON pointer → JSON text, for [`Event::raw`].
    pub raw: Vec<(String, String)>,
}

/// The event being judged. Read its fields through the methods; each is
/// fetched once, when first read.
pub struct Event<'a> {
    from: From<'a>,
    cache: Cache,
}

enum From<'a> {
    Host(&'a HostEvent),
    Data(&'a EventData),
}

/// Fields already fetched from the host during this call.
#[derive(Default)]
struct Cache {
    id: OnceCell<String>,
    source: OnceCell<String>,
    kind: OnceCell<String>,
    class: OnceCell<EventClass>,
    time: OnceCell<i64>,
    actor: OnceCell<Option<Principal>>,
    targets: OnceCell<Vec<Principal>>,
    outcome: OnceCell<Outcome>,
    outcome_reason: OnceCell<Option<String>>,
    client_ip: OnceCell<Option<String>>,
    geo: OnceCell<Option<Geo>>,
    user_agent: OnceCell<Option<String>>,
    factor: OnceCell<Option<String>>,
    attributes: OnceCell<Vec<(String, String)>>,
}

/// A getter: straight from the data in tests, fetched once from the host.
macro_rules! field {
    ($(#[$doc:meta])* $name:ident, $ret:ty, |$v:ident| $borrow:expr) => {
        $(#[$doc])*
        pub fn $name(&self) -> $ret {
            match self.from {
                From::Data(d) => {
                    let $v = &d.$name;
                    $borrow
                }
                From::Host(h) => {
                    let $v = self.cache.$name.get_or_init(|| h.$name());
                    $borrow
                }
            }
        }
    };
}

impl<'a> Event<'a> {
    /// A view of the host's event (used by [`crate::export_rule!`]).
    pub fn from_host(event: &'a HostEvent) -> Event<'a> {
        Event {
            from: From::Host(event),
            cache: Cache::default(),
        }
    }

    /// A view of an owned event (tests, the mock host).
    pub fn from_data(event: &'a EventData) -> Event<'a> {
        Event {
            from: From::Data(event),
            cache: Cache::default(),
        }
    }

    field!(
        /// The source's unique id for the event (Okta `uuid`, Entra `id`).
        id, &str, |v| v.as_str()
    );
    field!(
        /// `okta` or `entra`.
        source, &str, |v| v.as_str()
    );
    field!(
        /// The source's event type (`user.mfa.okta_verify.deny_push`, …).
        kind, &str, |v| v.as_str()
    );
    field!(class, EventClass, |v| *v);
    field!(
        /// Event time, unix milliseconds.
        time, i64, |v| *v
    );
    field!(actor, Option<&Principal>, |v| v.as_ref());
    field!(targets, &[Principal], |v| v.as_slice());
    field!(outcome, Outcome, |v| *v);
    field!(outcome_reason, Option<&str>, |v| v.as_deref());
    field!(client_ip, Option<&str>, |v| v.as_deref());
    field!(geo, Option<&Geo>, |v| v.as_ref());
    field!(user_agent, Option<&str>, |v| v.as_deref());
    field!(
        /// The factor involved (`OKTA_VERIFY_PUSH`, `sms`, `fido2`, …).
        factor, Option<&str>, |v| v.as_deref()
    );
    field!(
        /// Source fields the event does not name (`is-proxy`, `client-app`,
        /// `policy-type`, …), bounded by the host.
        attributes, &[(String, String)], |v| v.as_slice()
    );

    /// An extra attribute by name (`is-proxy`, `client-app`, …). The first
    /// read fetches the event's attributes (at most a few dozen short
    /// strings) once for the call.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Any field of the source record by JSON pointer (RFC 6901), as JSON
    /// text: `Ok(None)` when the record has no such field, an error when
    /// the pointer is malformed or the value is longer than the host's
    /// `max_raw_bytes`. Not cached: read it once and keep the value.
    pub fn raw(&self, pointer: &str) -> Result<Option<String>, String> {
        match self.from {
            From::Data(d) => {
                if !(pointer.is_empty() || pointer.starts_with('/')) {
                    // The host's words (`model::RawError`), so a rule's
                    // handling is tested against what it will see.
                    return Err(format!(
                        "invalid JSON pointer {pointer:?}: it must be empty or start with '/' (RFC 6901)"
                    ));
                }
                Ok(d.raw
                    .iter()
                    .find(|(p, _)| p == pointer)
                    .map(|(_, v)| v.clone()))
            }
            From::Host(h) => h.raw(pointer),
        }
    }

    /// Why the event failed, for a finding's details: Entra's error code
    /// with the reason (`50126: Invalid username or password`), the code
    /// alone, or Okta's outcome reason.
    pub fn failure_reason(&self) -> Option<String> {
        match (self.attribute("error-code"), self.outcome_reason()) {
            (Some(code), Some(reason)) => Some(format!("{code}: {reason}")),
            (Some(code), None) => Some(code.to_owned()),
            (None, Some(reason)) => Some(reason.to_owned()),
            (None, None) => None,
        }
    }

    /// The user the event is about: the first `User` target, or else the
    /// actor (a user acting on their own account: sign-in, push response).
    pub fn subject_user(&self) -> Option<&Principal> {
        self.targets()
            .iter()
            .find(|t| t.kind == "User")
            .or(self.actor())
    }
}

impl std::fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id())
            .field("kind", &self.kind())
            .field("time", &self.time())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::EventBuilder;

    #[test]
    fn a_test_event_answers_like_the_host() {
        let data = EventBuilder::okta("user.session.start")
            .actor_user("00u1", "a@example.com")
            .attribute("error-code", "50126")
            .raw("/debugContext/debugData/risk", "\"HIGH\"")
            .build();
        let event = Event::from_data(&data);
        assert_eq!(event.kind(), "user.session.start");
        assert_eq!(event.subject_user().map(|u| u.id.as_str()), Some("00u1"));
        assert_eq!(event.failure_reason().as_deref(), Some("50126"));
        assert_eq!(
            event.raw("/debugContext/debugData/risk"),
            Ok(Some("\"HIGH\"".into()))
        );
        assert_eq!(event.raw("/nothing"), Ok(None));
        assert_eq!(
            event.raw("risk").unwrap_err(),
            "invalid JSON pointer \"risk\": it must be empty or start with '/' (RFC 6901)"
        );
    }
}
