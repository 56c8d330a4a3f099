//! What a rule says about itself.

use super::{ActionKind, Event, EventClass, Outcome};

/// The entity a rule keys its state by: events with different keys never
/// meet in its state, so they may be judged on separate instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartitionKey {
    /// The event's actor id.
    Actor,
    /// The user the event is about (see [`Event::subject_user`]).
    SubjectUser,
    /// The client IP address.
    ClientIp,
    /// One partition: every event meets every other.
    Global,
}

impl PartitionKey {
    /// The WIT name: `actor`, `subject-user`, `client-ip`, `global`.
    pub fn name(self) -> &'static str {
        match self {
            PartitionKey::Actor => "actor",
            PartitionKey::SubjectUser => "subject-user",
            PartitionKey::ClientIp => "client-ip",
            PartitionKey::Global => "global",
        }
    }

    /// The partition `event` falls in under this key: a stable 64-bit hash
    /// of the key's value ([`vigil_sdk::partition_of`], compared without
    /// ASCII case: Entra object ids and IPv6 addresses are written either
    /// way). Events without the value share the partition of the empty
    /// value; `Global` is always partition 0. Stable across runs and
    /// versions: stored rule state is handed back to shards by it.
    pub fn partition_of(self, event: &Event) -> u64 {
        let value = match self {
            PartitionKey::Global => return 0,
            PartitionKey::Actor => event.actor.as_ref().map(|p| p.id.as_str()),
            PartitionKey::SubjectUser => event.subject_user().map(|p| p.id.as_str()),
            PartitionKey::ClientIp => event.client_ip.as_deref(),
        };
        // FNV-1a spreads short ids well enough for choosing among a handful
        // of shards; it is no defence against chosen keys, but a skewed
        // partition only makes one shard busier.
        vigil_sdk::partition_of(value.unwrap_or(""))
    }
}

/// What a rule says about itself, read once at load.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub id: String,
    pub version: String,
    pub description: String,
    /// Event kinds routed to the rule: exact, a prefix ending in `*`, or `*`.
    pub subscribes: Vec<String>,
    /// Only events with one of these outcomes; empty means any.
    pub outcomes: Vec<Outcome>,
    /// Only events of one of these classes; empty means any.
    pub classes: Vec<EventClass>,
    /// Action kinds the rule may request.
    pub actions: Vec<ActionKind>,
    /// What the rule keys its state by (`Global` for contract v0.1 rules,
    /// which cannot say).
    pub partition: PartitionKey,
}

impl Metadata {
    /// Whether an event passes the rule's outcome and class filters (the
    /// kind is matched by the routing table).
    pub fn wants(&self, event: &Event) -> bool {
        (self.outcomes.is_empty() || self.outcomes.contains(&event.outcome))
            && (self.classes.is_empty() || self.classes.contains(&event.class))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Principal;

    fn user(id: &str) -> Principal {
        Principal {
            id: id.into(),
            kind: "User".into(),
            login: None,
            display_name: None,
        }
    }

    #[test]
    fn partitions_are_stable_case_blind_and_follow_the_declared_key() {
        let mut e = Event {
            id: "e1".into(),
            source: "okta".into(),
            kind: "user.session.start".into(),
            class: EventClass::Authentication,
            time: 0,
            actor: Some(user("00uADMIN")),
            targets: vec![user("00uAlice")],
            outcome: Outcome::Success,
            outcome_reason: None,
            client_ip: Some("2001:DB8::1".into()),
            geo: None,
            user_agent: None,
            factor: None,
            attributes: Vec::new(),
            raw: None,
        };
        // Pinned: stored state is handed back to shards by these numbers.
        let fnv1a = vigil_sdk::partition_of;
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(PartitionKey::Global.partition_of(&e), 0);
        let alice = PartitionKey::SubjectUser.partition_of(&e);
        assert_eq!(alice, fnv1a("00ualice"));
        assert_eq!(PartitionKey::Actor.partition_of(&e), fnv1a("00uadmin"));
        assert_eq!(
            PartitionKey::ClientIp.partition_of(&e),
            fnv1a("2001:db8::1")
        );
        // The subject of an event without a user target is its actor.
        e.targets.clear();
        assert_eq!(
            PartitionKey::SubjectUser.partition_of(&e),
            PartitionKey::Actor.partition_of(&e)
        );
        e.actor = None;
        e.client_ip = None;
        assert_eq!(PartitionKey::ClientIp.partition_of(&e), fnv1a(""));
    }
}
