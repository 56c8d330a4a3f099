//! A native mock host for unit-testing rules with `cargo test`, no Wasm
//! needed.
//!
//! State uses the same [`StateStore`] as the real host, so windows and TTLs
//! behave identically. Action requests are recorded and answered like the
//! host's policy gate in audit-only mode: granted kinds get a `dry-run`
//! receipt, everything else a `not-granted` denial. A rule that declares a
//! partition key is held to it as the host holds it: a state call on a key
//! last written for another partition panics, naming the key.

use std::collections::HashMap;

use super::{
    Action, ActionKind, Decision, Denial, DenialReason, Event, EventClass, EventData, Finding, Geo,
    Host, Level, Outcome, PartitionKey, Principal, Receipt, Rule,
};
use crate::state_store::{StateKind, StateStore};
use crate::subscribes;

/// A recording, in-memory host.
#[derive(Default)]
pub struct MockHost {
    pub state: StateStore,
    pub config: HashMap<String, String>,
    /// Action kinds the mock grants; `None` grants the ones the rule's
    /// metadata lists (what an operator would usually do).
    pub granted: Option<Vec<ActionKind>>,
    /// Every action requested, in order, granted or not.
    pub requested: Vec<Action>,
    pub logs: Vec<(Level, String)>,
    declared: Vec<ActionKind>,
    /// The rule's declared partition key, once read.
    partition: Option<PartitionKey>,
}

impl MockHost {
    pub fn new() -> Self {
        MockHost::default()
    }

    /// Sets one configuration value, as `[rules.config]` would.
    pub fn with_config(mut self, key: &str, value: impl ToString) -> Self {
        self.config.insert(key.to_owned(), value.to_string());
        self
    }

    /// Feeds one event to rule `R` as the host would: only if `R` subscribes
    /// to its kind (and its outcome and class pass the rule's filters), with
    /// the state clock set to the event's time.
    pub fn feed<R: Rule>(&mut self, event: &EventData) -> Result<Vec<Finding>, String> {
        let meta = R::metadata();
        if !meta.subscribes.iter().any(|s| subscribes(s, &event.kind))
            || !(meta.outcomes.is_empty() || meta.outcomes.contains(&event.outcome))
            || !(meta.classes.is_empty() || meta.classes.contains(&event.class))
        {
            return Ok(Vec::new());
        }
        self.declared = meta.actions;
        self.partition = Some(meta.partition);
        self.start_call(event);
        R::on_event(self, &Event::from_data(event))
    }

    /// Calls rule `R` directly, without the subscription check or reading
    /// its metadata on each call (for benchmarks and tight loops). Call
    /// [`MockHost::declare`] first so requests are judged against the
    /// rule's declared actions.
    pub fn call<R: Rule>(&mut self, event: &EventData) -> Result<Vec<Finding>, String> {
        self.start_call(event);
        R::on_event(self, &Event::from_data(event))
    }

    /// Reads `R`'s declared actions and partition key once (what
    /// [`MockHost::feed`] does on every call).
    pub fn declare<R: Rule>(&mut self) {
        let meta = R::metadata();
        self.declared = meta.actions;
        self.partition = Some(meta.partition);
    }

    /// The state clock at the event's time, and the event's partition.
    fn start_call(&mut self, event: &EventData) {
        self.state.set_now(event.time);
        let view = Event::from_data(event);
        let value = match self.partition {
            None | Some(PartitionKey::Global) => None,
            Some(PartitionKey::Actor) => view.actor().map(|p| p.id.as_str()),
            Some(PartitionKey::SubjectUser) => view.subject_user().map(|p| p.id.as_str()),
            Some(PartitionKey::ClientIp) => view.client_ip(),
        };
        self.state
            .set_partition(crate::partition_of(value.unwrap_or("")));
    }

    /// Panics, as the host traps, on a key of another partition.
    fn check_partition(&self, kind: StateKind, key: &str) {
        let declared = match self.partition {
            None | Some(PartitionKey::Global) => return,
            Some(PartitionKey::Actor) => "actor",
            Some(PartitionKey::SubjectUser) => "subject-user",
            Some(PartitionKey::ClientIp) => "client-ip",
        };
        if let Some(breach) = self.state.partition_breach(kind, key, declared) {
            panic!("{breach}");
        }
    }

    /// Feeds events in order and collects every finding.
    pub fn feed_all<R: Rule>(&mut self, events: &[EventData]) -> Result<Vec<Finding>, String> {
        let mut all = Vec::new();
        for e in events {
            all.extend(self.feed::<R>(e)?);
        }
        Ok(all)
    }

    /// The kinds of the actions requested so far, in order.
    pub fn requested_kinds(&self) -> Vec<ActionKind> {
        self.requested.iter().map(Action::kind).collect()
    }
}

impl Host for MockHost {
    fn request(&mut self, action: &Action) -> Result<Receipt, Denial> {
        self.requested.push(action.clone());
        let kind = action.kind();
        let granted = self.granted.as_ref().unwrap_or(&self.declared);
        if !self.declared.contains(&kind) || !granted.contains(&kind) {
            return Err(Denial {
                reason: DenialReason::NotGranted,
                message: format!("action {kind:?} is not granted to this rule"),
            });
        }
        Ok(Receipt {
            action_id: format!("mock-{}", self.requested.len()),
            decision: Decision::DryRun,
        })
    }
    fn counter_add(&mut self, key: &str, window_ms: u64, delta: u32) -> u64 {
        self.check_partition(StateKind::Counter, key);
        self.state
            .counter_add(key, window_ms, delta)
            .unwrap_or_else(|e| panic!("{e}"))
    }
    fn counter_get(&mut self, key: &str, window_ms: u64) -> u64 {
        self.check_partition(StateKind::Counter, key);
        self.state.counter_get(key, window_ms)
    }
    fn distinct_add(&mut self, key: &str, member: &str, window_ms: u64) -> u64 {
        self.check_partition(StateKind::Set, key);
        self.state
            .distinct_add(key, member, window_ms)
            .unwrap_or_else(|e| panic!("{e}"))
    }
    fn distinct_count(&mut self, key: &str, window_ms: u64) -> u64 {
        self.check_partition(StateKind::Set, key);
        self.state.distinct_count(key, window_ms)
    }
    fn get(&mut self, key: &str) -> Option<String> {
        self.check_partition(StateKind::Value, key);
        self.state.get(key).map(str::to_owned)
    }
    fn set(&mut self, key: &str, value: &str, ttl_ms: Option<u64>) {
        self.check_partition(StateKind::Value, key);
        self.state
            .set(key, value, ttl_ms)
            .unwrap_or_else(|e| panic!("{e}"))
    }
    fn delete(&mut self, key: &str) {
        self.check_partition(StateKind::Value, key);
        self.state.delete(key).unwrap_or_else(|e| panic!("{e}"))
    }
    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_owned()));
    }
    fn config(&mut self, key: &str) -> Option<String> {
        self.config.get(key).cloned()
    }
}

/// Builds events for tests without writing vendor JSON.
pub struct EventBuilder {
    event: EventData,
}

impl EventBuilder {
    /// An Okta event of the given `eventType`.
    pub fn okta(kind: &str) -> Self {
        EventBuilder {
            event: EventData {
                id: String::new(),
                source: "okta".into(),
                kind: kind.into(),
                class: EventClass::Other,
                time: 0,
                actor: None,
                targets: Vec::new(),
                outcome: Outcome::Unknown,
                outcome_reason: None,
                client_ip: None,
                geo: None,
                user_agent: None,
                factor: None,
                attributes: Vec::new(),
                raw: Vec::new(),
            },
        }
    }
    pub fn id(mut self, id: &str) -> Self {
        self.event.id = id.into();
        self
    }
    pub fn class(mut self, class: EventClass) -> Self {
        self.event.class = class;
        self
    }
    /// Event time, unix ms.
    pub fn at(mut self, time_ms: i64) -> Self {
        self.event.time = time_ms;
        self
    }
    /// A user as the actor.
    pub fn actor_user(mut self, id: &str, login: &str) -> Self {
        self.event.actor = Some(user(id, login));
        self
    }
    /// A user as a target.
    pub fn target_user(mut self, id: &str, login: &str) -> Self {
        self.event.targets.push(user(id, login));
        self
    }
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.event.outcome = outcome;
        self
    }
    pub fn factor(mut self, factor: &str) -> Self {
        self.event.factor = Some(factor.into());
        self
    }
    pub fn ip(mut self, ip: &str) -> Self {
        self.event.client_ip = Some(ip.into());
        self
    }
    pub fn geo(mut self, country: &str, lat: f64, lon: f64) -> Self {
        self.event.geo = Some(Geo {
            country: Some(country.into()),
            city: None,
            lat: Some(lat),
            lon: Some(lon),
        });
        self
    }
    pub fn attribute(mut self, key: &str, value: &str) -> Self {
        self.event.attributes.push((key.into(), value.into()));
        self
    }
    /// A field of the source record, for [`Event::raw`]: its JSON pointer
    /// and JSON text (`"\"HIGH\""`, `"3"`).
    pub fn raw(mut self, pointer: &str, json: &str) -> Self {
        self.event.raw.push((pointer.into(), json.into()));
        self
    }
    pub fn build(mut self) -> EventData {
        if self.event.id.is_empty() {
            self.event.id = format!("test-{}-{}", self.event.kind, self.event.time);
        }
        self.event
    }
}

fn user(id: &str, login: &str) -> Principal {
    Principal {
        id: id.into(),
        kind: "User".into(),
        login: Some(login.into()),
        display_name: None,
    }
}

/// `events` in an order fixed by `seed` (a Fisher–Yates shuffle on a
/// xorshift generator, so a failing order can be replayed by its seed): for
/// tests that a rule's results do not depend on arrival order.
pub fn shuffled(mut events: Vec<EventData>, seed: u64) -> Vec<EventData> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..events.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        events.swap(i, (x % (i as u64 + 1)) as usize);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Metadata, Severity};

    /// Declares `subject-user`, keys its counter by user unless told
    /// `shared` in its config: then one key for everyone.
    struct Counting;

    impl Rule for Counting {
        fn metadata() -> Metadata {
            Metadata {
                id: "counting".into(),
                version: "0".into(),
                description: String::new(),
                subscribes: vec!["*".into()],
                actions: vec![],
                outcomes: vec![],
                classes: vec![],
                partition: PartitionKey::SubjectUser,
            }
        }

        fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
            let user = event
                .subject_user()
                .map(|u| u.id.clone())
                .unwrap_or_default();
            let key = host.config("shared").unwrap_or(user);
            let n = host.counter_add(&key, 60_000, 1);
            Ok(vec![Finding::new(Severity::Low, "n", n.to_string())])
        }
    }

    fn sign_in(user: &str) -> EventData {
        EventBuilder::okta("user.session.start")
            .actor_user(user, &format!("{user}@example.com"))
            .build()
    }

    #[test]
    fn a_rule_keeping_to_its_partition_runs() {
        let mut host = MockHost::new();
        for user in ["00ua", "00ub", "00ua"] {
            host.feed::<Counting>(&sign_in(user)).unwrap();
        }
        assert_eq!(host.state.counter_get("00ua", 60_000), 2);
    }

    #[test]
    #[should_panic(expected = "state counter \"everyone\" was written for another subject-user")]
    fn a_key_shared_across_partitions_panics_as_the_host_traps() {
        let mut host = MockHost::new().with_config("shared", "everyone");
        host.feed::<Counting>(&sign_in("00ua")).unwrap();
        host.feed::<Counting>(&sign_in("00ub")).unwrap();
    }
}
