//! Rule state semantics: windowed counters, distinct-member sets over a
//! window, and values with a time-to-live.
//!
//! This is the one implementation of what the WIT `state` interface means. The
//! host keeps one `StateStore` per rule; the SDK's mock host uses the same
//! type, so a rule unit-tested natively sees exactly what it sees in Vigil.
//!
//! Time is never the wall clock: the caller sets `now` to the current
//! event's time before each call, so replaying an old log gives the same
//! answers as live traffic. Events may arrive somewhat out of order; entries
//! are kept sorted by time so windows stay correct.
//!
//! Every dimension is bounded ([`StateLimits`]); exceeding a bound is an
//! error naming the limit, which the host turns into a rule fault.
//!
//! Persistence: with [`StateStore::track_changes`] on, the store remembers
//! which keys changed; the host takes them with [`StateStore::take_changes`]
//! (a [`KeyState`] snapshot per changed key, `None` for a removed key),
//! writes them to its durable store in batches, and puts them back with
//! [`StateStore::restore`] at start.

use std::collections::{HashMap, VecDeque};
use std::fmt;

/// Bounds on one rule's state. Every limit has a default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateLimits {
    /// Keys across counters, sets and values together.
    pub max_keys: usize,
    /// Entries (timestamps) kept for one counter, or members in one set.
    pub max_entries_per_key: usize,
    /// Bytes in one key.
    pub max_key_len: usize,
    /// Bytes in one stored value or set member.
    pub max_value_len: usize,
    /// Longest window or TTL a rule may ask for (milliseconds).
    pub max_window_ms: u64,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            max_keys: 100_000,
            max_entries_per_key: 10_000,
            max_key_len: 512,
            max_value_len: 64 * 1024,
            // Seven days: longer memories belong in the operator's SIEM.
            max_window_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// A state call exceeded one of the [`StateLimits`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateLimitError {
    /// The limit's name as it appears in configuration (`max_keys`, …).
    pub limit: &'static str,
    pub allowed: u64,
    pub requested: u64,
}

impl fmt::Display for StateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state limit `{}` exceeded: {} requested, {} allowed",
            self.limit, self.requested, self.allowed
        )
    }
}

impl std::error::Error for StateLimitError {}

type Result<T> = std::result::Result<T, StateLimitError>;

#[derive(Default)]
struct Counter {
    /// (time, delta), sorted by time.
    entries: VecDeque<(i64, u64)>,
    /// Longest window asked for this key; entries older than that are dropped.
    window_ms: u64,
}

#[derive(Default)]
struct DistinctSet {
    /// member → last time seen.
    members: HashMap<String, i64>,
    window_ms: u64,
}

struct Value {
    value: String,
    /// Expiry in event time; `None` never expires.
    expires_at: Option<i64>,
}

/// The three kinds of state key; a name may exist once per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateKind {
    Counter,
    Set,
    Value,
}

impl StateKind {
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Counter => "counter",
            StateKind::Set => "set",
            StateKind::Value => "value",
        }
    }

    fn bit(self) -> u8 {
        match self {
            StateKind::Counter => 1,
            StateKind::Set => 2,
            StateKind::Value => 4,
        }
    }

    pub fn from_name(name: &str) -> Option<StateKind> {
        [StateKind::Counter, StateKind::Set, StateKind::Value]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// A snapshot of one key, for persistence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyState {
    Counter {
        window_ms: u64,
        /// (time, delta), sorted by time.
        entries: Vec<(i64, u64)>,
    },
    Set {
        window_ms: u64,
        /// (member, last seen).
        members: Vec<(String, i64)>,
    },
    Value {
        value: String,
        expires_at: Option<i64>,
    },
}

/// One rule's state.
#[derive(Default)]
pub struct StateStore {
    limits: StateLimits,
    now: i64,
    counters: HashMap<String, Counter>,
    sets: HashMap<String, DistinctSet>,
    values: HashMap<String, Value>,
    /// Keys changed since the last [`StateStore::take_changes`], when
    /// tracking is on.
    /// Key → bit set of the [`StateKind`]s changed under that name.
    changed: Option<HashMap<String, u8>>,
}

impl StateStore {
    pub fn new(limits: StateLimits) -> Self {
        StateStore {
            limits,
            ..StateStore::default()
        }
    }

    /// Starts remembering which keys change (the host persists them).
    pub fn track_changes(&mut self) {
        self.changed.get_or_insert_with(HashMap::new);
    }

    fn touch(&mut self, kind: StateKind, key: &str) {
        let Some(changed) = &mut self.changed else {
            return;
        };
        // Look up by &str first: the common case (a hot key) allocates nothing.
        match changed.get_mut(key) {
            Some(bits) => *bits |= kind.bit(),
            None => {
                changed.insert(key.to_owned(), kind.bit());
            }
        }
    }

    /// Whether keys changed since the last [`StateStore::take_changes`].
    pub fn has_changes(&self) -> bool {
        self.changed.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// The keys changed since the last call, each with its current
    /// snapshot, or `None` when the key no longer exists.
    pub fn take_changes(&mut self) -> Vec<(StateKind, String, Option<KeyState>)> {
        let Some(changed) = self.changed.as_mut() else {
            return Vec::new();
        };
        let keys: Vec<(String, u8)> = changed.drain().collect();
        let mut out = Vec::with_capacity(keys.len());
        for (key, bits) in keys {
            for kind in [StateKind::Counter, StateKind::Set, StateKind::Value] {
                if bits & kind.bit() != 0 {
                    out.push((kind, key.clone(), self.snapshot(kind, &key)));
                }
            }
        }
        out
    }

    fn snapshot(&self, kind: StateKind, key: &str) -> Option<KeyState> {
        match kind {
            StateKind::Counter => self.counters.get(key).map(|c| KeyState::Counter {
                window_ms: c.window_ms,
                entries: c.entries.iter().copied().collect(),
            }),
            StateKind::Set => self.sets.get(key).map(|s| KeyState::Set {
                window_ms: s.window_ms,
                members: s.members.iter().map(|(m, t)| (m.clone(), *t)).collect(),
            }),
            StateKind::Value => self.values.get(key).map(|v| KeyState::Value {
                value: v.value.clone(),
                expires_at: v.expires_at,
            }),
        }
    }

    /// Puts back a key read from durable storage (at start, before any
    /// event). Not counted as a change.
    pub fn restore(&mut self, key: String, state: KeyState) {
        match state {
            KeyState::Counter { window_ms, entries } => {
                let mut entries: Vec<(i64, u64)> = entries;
                entries.sort_by_key(|(t, _)| *t);
                self.counters.insert(
                    key,
                    Counter {
                        entries: entries.into(),
                        window_ms,
                    },
                );
            }
            KeyState::Set { window_ms, members } => {
                self.sets.insert(
                    key,
                    DistinctSet {
                        members: members.into_iter().collect(),
                        window_ms,
                    },
                );
            }
            KeyState::Value { value, expires_at } => {
                self.values.insert(key, Value { value, expires_at });
            }
        }
    }

    /// Sets the clock (unix ms) that windows and TTLs are measured against.
    /// The host calls this with each event's time before routing it.
    pub fn set_now(&mut self, now_ms: i64) {
        self.now = now_ms;
    }

    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn limits(&self) -> &StateLimits {
        &self.limits
    }

    /// Adds `delta` at the current time and returns the total over the
    /// last `window_ms` (entries in `(now - window, now]`).
    pub fn counter_add(&mut self, key: &str, window_ms: u64, delta: u32) -> Result<u64> {
        self.check_key(key)?;
        self.check_window(window_ms)?;
        if !self.counters.contains_key(key) {
            self.make_room()?;
            self.counters.insert(key.to_owned(), Counter::default());
        }
        self.touch(StateKind::Counter, key);
        let now = self.now;
        let max_entries = self.limits.max_entries_per_key;
        let counter = self.counters.get_mut(key).expect("inserted above");
        counter.window_ms = counter.window_ms.max(window_ms);
        prune_counter(counter, now);
        if delta > 0 {
            if counter.entries.len() >= max_entries {
                return Err(StateLimitError {
                    limit: "max_entries_per_key",
                    allowed: max_entries as u64,
                    requested: counter.entries.len() as u64 + 1,
                });
            }
            // Mostly-ordered input: search from the back.
            let at = counter.entries.partition_point(|(t, _)| *t <= now);
            counter.entries.insert(at, (now, u64::from(delta)));
        }
        Ok(sum_window(counter, now, window_ms))
    }

    /// The total over the last `window_ms`, without adding.
    pub fn counter_get(&self, key: &str, window_ms: u64) -> u64 {
        self.counters
            .get(key)
            .map_or(0, |c| sum_window(c, self.now, window_ms))
    }

    /// Records `member` as seen now and returns the number of distinct members
    /// seen over the last `window_ms`.
    pub fn distinct_add(&mut self, key: &str, member: &str, window_ms: u64) -> Result<u64> {
        self.check_key(key)?;
        self.check_window(window_ms)?;
        if member.len() > self.limits.max_value_len {
            return Err(StateLimitError {
                limit: "max_value_len",
                allowed: self.limits.max_value_len as u64,
                requested: member.len() as u64,
            });
        }
        if !self.sets.contains_key(key) {
            self.make_room()?;
            self.sets.insert(key.to_owned(), DistinctSet::default());
        }
        self.touch(StateKind::Set, key);
        let now = self.now;
        let max_entries = self.limits.max_entries_per_key;
        let set = self.sets.get_mut(key).expect("inserted above");
        set.window_ms = set.window_ms.max(window_ms);
        prune_set(set, now);
        match set.members.get_mut(member) {
            Some(seen) => *seen = (*seen).max(now),
            None => {
                if set.members.len() >= max_entries {
                    return Err(StateLimitError {
                        limit: "max_entries_per_key",
                        allowed: max_entries as u64,
                        requested: set.members.len() as u64 + 1,
                    });
                }
                set.members.insert(member.to_owned(), now);
            }
        }
        Ok(count_window(set, now, window_ms))
    }

    /// The number of distinct members seen over the last `window_ms`.
    pub fn distinct_count(&self, key: &str, window_ms: u64) -> u64 {
        self.sets
            .get(key)
            .map_or(0, |s| count_window(s, self.now, window_ms))
    }

    /// A stored value, unless it has expired.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .filter(|v| v.expires_at.is_none_or(|at| at > self.now))
            .map(|v| v.value.as_str())
    }

    /// Stores a value; with `ttl_ms` it expires that long after now.
    pub fn set(&mut self, key: &str, value: &str, ttl_ms: Option<u64>) -> Result<()> {
        self.check_key(key)?;
        if let Some(ttl) = ttl_ms {
            self.check_window(ttl)?;
        }
        if value.len() > self.limits.max_value_len {
            return Err(StateLimitError {
                limit: "max_value_len",
                allowed: self.limits.max_value_len as u64,
                requested: value.len() as u64,
            });
        }
        if !self.values.contains_key(key) {
            self.make_room()?;
        }
        let expires_at = ttl_ms.map(|ttl| self.now.saturating_add(ttl as i64));
        self.touch(StateKind::Value, key);
        self.values.insert(
            key.to_owned(),
            Value {
                value: value.to_owned(),
                expires_at,
            },
        );
        Ok(())
    }

    pub fn delete(&mut self, key: &str) {
        if self.values.remove(key).is_some() {
            self.touch(StateKind::Value, key);
        }
    }

    /// Keys held across counters, sets and values.
    pub fn key_count(&self) -> usize {
        self.counters.len() + self.sets.len() + self.values.len()
    }

    fn check_key(&self, key: &str) -> Result<()> {
        if key.len() > self.limits.max_key_len {
            return Err(StateLimitError {
                limit: "max_key_len",
                allowed: self.limits.max_key_len as u64,
                requested: key.len() as u64,
            });
        }
        Ok(())
    }

    fn check_window(&self, window_ms: u64) -> Result<()> {
        if window_ms > self.limits.max_window_ms {
            return Err(StateLimitError {
                limit: "max_window_ms",
                allowed: self.limits.max_window_ms,
                requested: window_ms,
            });
        }
        Ok(())
    }

    /// Makes room for one more key: first by dropping everything that has
    /// expired, and if the store is still full, by refusing.
    fn make_room(&mut self) -> Result<()> {
        if self.key_count() < self.limits.max_keys {
            return Ok(());
        }
        let now = self.now;
        let mut dropped = Vec::new();
        self.counters.retain(|k, c| {
            prune_counter(c, now);
            let keep = !c.entries.is_empty();
            if !keep {
                dropped.push((StateKind::Counter, k.clone()));
            }
            keep
        });
        self.sets.retain(|k, s| {
            prune_set(s, now);
            let keep = !s.members.is_empty();
            if !keep {
                dropped.push((StateKind::Set, k.clone()));
            }
            keep
        });
        self.values.retain(|k, v| {
            let keep = v.expires_at.is_none_or(|at| at > now);
            if !keep {
                dropped.push((StateKind::Value, k.clone()));
            }
            keep
        });
        for (kind, key) in dropped {
            self.touch(kind, &key);
        }
        if self.key_count() < self.limits.max_keys {
            Ok(())
        } else {
            Err(StateLimitError {
                limit: "max_keys",
                allowed: self.limits.max_keys as u64,
                requested: self.key_count() as u64 + 1,
            })
        }
    }
}

fn window_start(now: i64, window_ms: u64) -> i64 {
    now.saturating_sub(i64::try_from(window_ms).unwrap_or(i64::MAX))
}

fn prune_counter(counter: &mut Counter, now: i64) {
    let start = window_start(now, counter.window_ms);
    while counter.entries.front().is_some_and(|(t, _)| *t <= start) {
        counter.entries.pop_front();
    }
}

fn sum_window(counter: &Counter, now: i64, window_ms: u64) -> u64 {
    let start = window_start(now, window_ms);
    counter
        .entries
        .iter()
        .rev()
        .skip_while(|(t, _)| *t > now)
        .take_while(|(t, _)| *t > start)
        .map(|(_, d)| d)
        .sum()
}

fn prune_set(set: &mut DistinctSet, now: i64) {
    let start = window_start(now, set.window_ms);
    set.members.retain(|_, seen| *seen > start);
}

fn count_window(set: &DistinctSet, now: i64, window_ms: u64) -> u64 {
    let start = window_start(now, window_ms);
    set.members
        .values()
        .filter(|seen| **seen > start && **seen <= now)
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn counter_counts_only_inside_the_window() {
        let mut s = StateStore::default();
        for minute in 0..5 {
            s.set_now(minute * MIN);
            s.counter_add("k", 10 * MIN as u64, 1).unwrap();
        }
        // At minute 12 the events of minutes 0, 1 and 2 are 10+ minutes old.
        s.set_now(12 * MIN);
        assert_eq!(s.counter_get("k", 10 * MIN as u64), 2);
        assert_eq!(s.counter_add("k", 10 * MIN as u64, 1).unwrap(), 3);
    }

    #[test]
    fn counter_tolerates_out_of_order_events() {
        let mut s = StateStore::default();
        s.set_now(5 * MIN);
        s.counter_add("k", 10 * MIN as u64, 1).unwrap();
        // An event from earlier arrives late: it still counts.
        s.set_now(3 * MIN);
        assert_eq!(s.counter_add("k", 10 * MIN as u64, 1).unwrap(), 1);
        s.set_now(6 * MIN);
        assert_eq!(s.counter_get("k", 10 * MIN as u64), 2);
    }

    #[test]
    fn distinct_counts_members_once() {
        let mut s = StateStore::default();
        s.set_now(0);
        s.distinct_add("ip", "alice", 600_000).unwrap();
        s.distinct_add("ip", "alice", 600_000).unwrap();
        assert_eq!(s.distinct_add("ip", "bob", 600_000).unwrap(), 2);
        // Eleven minutes later both have aged out.
        s.set_now(11 * MIN);
        assert_eq!(s.distinct_count("ip", 600_000), 0);
    }

    #[test]
    fn values_expire_with_event_time() {
        let mut s = StateStore::default();
        s.set_now(1_000);
        s.set("seen", "yes", Some(500)).unwrap();
        s.set("forever", "yes", None).unwrap();
        s.set_now(1_499);
        assert_eq!(s.get("seen"), Some("yes"));
        s.set_now(1_500);
        assert_eq!(s.get("seen"), None);
        assert_eq!(s.get("forever"), Some("yes"));
        s.delete("forever");
        assert_eq!(s.get("forever"), None);
    }

    #[test]
    fn key_limit_reclaims_expired_keys_then_refuses() {
        let mut s = StateStore::new(StateLimits {
            max_keys: 2,
            ..StateLimits::default()
        });
        s.set_now(0);
        s.set("a", "1", Some(10)).unwrap();
        s.set("b", "1", None).unwrap();
        // "a" has expired by now, so a third key fits.
        s.set_now(100);
        s.set("c", "1", None).unwrap();
        let err = s.set("d", "1", None).unwrap_err();
        assert_eq!(err.limit, "max_keys");
        assert_eq!(err.allowed, 2);
    }

    #[test]
    fn oversized_value_and_window_are_refused() {
        let mut s = StateStore::new(StateLimits {
            max_value_len: 4,
            ..StateLimits::default()
        });
        assert_eq!(
            s.set("k", "12345", None).unwrap_err().limit,
            "max_value_len"
        );
        let week_and_a_bit = 8 * 24 * 3600 * 1000;
        assert_eq!(
            s.counter_add("k", week_and_a_bit, 1).unwrap_err().limit,
            "max_window_ms"
        );
    }

    #[test]
    fn changes_are_tracked_and_restore_round_trips() {
        let mut s = StateStore::default();
        s.set_now(1_000);
        s.counter_add("untracked", 60_000, 1).unwrap();
        s.track_changes();
        assert!(!s.has_changes());
        s.counter_add("c", 60_000, 2).unwrap();
        s.distinct_add("d", "alice", 60_000).unwrap();
        s.set("v", "x", Some(500)).unwrap();
        s.set("gone", "y", None).unwrap();
        s.delete("gone");
        let mut changes = s.take_changes();
        changes.sort_by(|a, b| a.1.cmp(&b.1));
        let names: Vec<(&str, bool)> = changes
            .iter()
            .map(|(_, k, st)| (k.as_str(), st.is_some()))
            .collect();
        assert_eq!(
            names,
            vec![("c", true), ("d", true), ("gone", false), ("v", true)]
        );
        assert!(!s.has_changes());

        let mut restored = StateStore::default();
        for (_, key, state) in changes.into_iter() {
            if let Some(state) = state {
                restored.restore(key, state);
            }
        }
        restored.set_now(1_200);
        assert_eq!(restored.counter_get("c", 60_000), 2);
        assert_eq!(restored.distinct_count("d", 60_000), 1);
        assert_eq!(restored.get("v"), Some("x"));
        restored.set_now(1_500);
        assert_eq!(restored.get("v"), None, "the TTL survives the round trip");
    }

    #[test]
    fn entries_per_key_are_bounded() {
        let mut s = StateStore::new(StateLimits {
            max_entries_per_key: 3,
            ..StateLimits::default()
        });
        for t in 0..3 {
            s.set_now(t);
            s.counter_add("k", 1_000, 1).unwrap();
        }
        s.set_now(3);
        let err = s.counter_add("k", 1_000, 1).unwrap_err();
        assert_eq!(err.limit, "max_entries_per_key");
    }
}
