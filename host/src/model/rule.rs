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
