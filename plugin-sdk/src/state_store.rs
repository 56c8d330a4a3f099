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

/// One rule's state.
#[derive(Default)]
pub struct StateStore {
    limits: StateLimits,
    now: i64,
    counters: HashMap<String, Counter>,
    sets: HashMap<String, DistinctSet>,
    values: HashMap<String, Value>,
}

impl StateStore {
    pub fn new(limits: StateLimits) -> Self {
        StateStore {
            limits,
            ..StateStore::default()
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
        self.values.remove(key);
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
        self.counters.retain(|_, c| {
            prune_counter(c, now);
            !c.entries.is_empty()
        });
        self.sets.retain(|_, s| {
            prune_set(s, now);
            !s.members.is_empty()
        });
        self.values
            .retain(|_, v| v.expires_at.is_none_or(|at| at > now));
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
