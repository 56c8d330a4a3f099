//! Rule state semantics: windowed counters, distinct-member sets over a
//! window, and values with a time-to-live — all on **event time, whatever
//! the arrival order**.
//!
//! This is the one implementation of what the WIT `state` interface means. The
//! host keeps one `StateStore` per rule; the SDK's mock host uses the same
//! type, so a rule unit-tested natively sees exactly what it sees in Vigil.
//!
//! Time is never the wall clock: the caller sets `now` to the current
//! event's time before each call, so replaying an old log gives the same
//! answers as live traffic. Events arrive out of order (Graph pages and most
//! exports are newest-first, hooks retry, merged sources interleave), so:
//!
//! - **Counters and sets** answer for the window *around* the current event:
//!   `counter_add`/`counter_get` return the largest total of any window of
//!   `window_ms` that contains the current event, and
//!   `distinct_add`/`distinct_count` the largest number of distinct members
//!   of any such window. Entries more than a window before or after the
//!   current event are ignored. In time order nothing lies after the current
//!   event, so this is exactly "the total over the last `window_ms`" (the
//!   WIT text); out of order, a burst is seen whole by whichever of its
//!   events arrives last. A rule that fires on `count >= threshold` and
//!   remembers that it fired in a counter (not a value) therefore fires once
//!   per burst in any order: before the burst is complete every window holds
//!   fewer than `threshold`, and each added event raises a window by at most
//!   its delta.
//! - **Values** are versioned by the event time that set them (`set_at`): a
//!   read sees the version in effect at the current event's time — the
//!   latest one set at or before it, unless it expired (TTLs run from
//!   `set_at`) or was deleted (a delete is a version too). A value set by a
//!   later event is invisible to an earlier one, and a late write does not
//!   clobber what later events wrote.
//!
//! Lateness: counter entries, set sightings and value versions of a key are
//! dropped once they are more than their window *plus*
//! [`StateLimits::late_after_ms`] behind the event being judged, so an event
//! up to that far behind the newest one is judged against complete state,
//! and a stream read backwards (a newest-first export) loses nothing: its
//! events only move further back. An event further behind is still judged,
//! against what is left. The store remembers the newest event time it has
//! seen (the high-water mark); [`StateStore::behind_ms`] tells the host how
//! far behind it the current event is, and the host marks the records of an
//! event more than `late_after_ms` behind as `late`. When a limit is
//! reached, the reclaiming pass drops everything more than window +
//! lateness behind the high-water mark.
//!
//! Every dimension is bounded ([`StateLimits`]): keys, entries per key,
//! key and value length, windows, and the total bytes the state holds
//! (keys + values + entries, accounted incrementally as entries are added and
//! dropped, never by a scan per call). Exceeding a bound is an error naming
//! the limit, which the host turns into a rule fault; the call that hit it
//! changes nothing. When a limit is reached the store first drops whatever
//! has aged out (one pass, at most once per advance of the high-water mark)
//! and refuses only if that did not free enough.
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
    /// Entries (timestamps) kept for one counter, members in one set, or
    /// versions kept for one value (the oldest versions are dropped first,
    /// which only matters to events that arrive late).
    pub max_entries_per_key: usize,
    /// Bytes in one key.
    pub max_key_len: usize,
    /// Bytes in one stored value or set member.
    pub max_value_len: usize,
    /// Longest window or TTL a rule may ask for (milliseconds).
    pub max_window_ms: u64,
    /// Bytes the whole state may hold: keys, values, members and entries,
    /// each with a fixed allowance for its bookkeeping.
    pub max_bytes: usize,
    /// How far behind the newest event an event may arrive and still be
    /// judged against complete state (milliseconds): entries are kept this
    /// much longer than their window.
    pub late_after_ms: u64,
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
            max_bytes: 64 * 1024 * 1024,
            late_after_ms: 10 * 60 * 1000,
        }
    }
}

/// A state call exceeded one of the [`StateLimits`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateLimitError {
    /// The limit's name (the [`StateLimits`] field: `max_keys`,
    /// `max_bytes`, …; configured as `[limits] state_<name>`).
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

// What each piece of state is charged against `max_bytes`. The allowances
// cover the hash-map slot, the `String`/`Vec` headers, allocator rounding and
// the copy of the key in the change set, so the charged total stays above
// what the process really holds (the sandbox test measures it).
/// Per key, plus twice the key's length.
const KEY_BYTES: usize = 160;
/// Per counter entry (a time and a delta, with room for the deque to grow).
const COUNTER_ENTRY_BYTES: usize = 32;
/// Per set member, plus its length.
const MEMBER_BYTES: usize = 96;
/// Per sighting of a set member.
const SIGHTING_BYTES: usize = 16;
/// Per value version, plus the value's length.
const VERSION_BYTES: usize = 64;

fn key_bytes(key: &str) -> usize {
    KEY_BYTES + 2 * key.len()
}

fn version_bytes(v: &Version) -> usize {
    VERSION_BYTES + v.value.as_ref().map_or(0, String::len)
}

#[derive(Default)]
struct Counter {
    /// (time, delta), sorted by time, one entry per time.
    entries: VecDeque<(i64, u64)>,
    /// Longest window asked for this key; entries are kept that long (plus
    /// the lateness bound) behind the high-water mark.
    window_ms: u64,
    /// Bytes charged for this key, its own name included.
    bytes: usize,
    /// The partition of the call that last wrote it (`None`: restored
    /// without one).
    owner: Option<u64>,
}

struct DistinctSet {
    /// member → the times it was seen, sorted; thinned so that of three
    /// sightings within `thin_ms` the middle one is dropped (every window of
    /// at least `thin_ms` that held it also holds a neighbour).
    members: HashMap<String, Vec<i64>>,
    /// Longest window asked for this key (for pruning).
    window_ms: u64,
    /// Shortest window asked for this key (for thinning).
    thin_ms: u64,
    /// The latest sighting, so the common in-order case takes a fast path.
    latest: i64,
    bytes: usize,
    owner: Option<u64>,
}

impl Default for DistinctSet {
    fn default() -> Self {
        DistinctSet {
            members: HashMap::new(),
            window_ms: 0,
            thin_ms: u64::MAX,
            latest: i64::MIN,
            bytes: 0,
            owner: None,
        }
    }
}

/// One version of a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The event time that set (or deleted) it.
    pub set_at: i64,
    /// The value; `None` for a delete.
    pub value: Option<String>,
    /// Expiry in event time; `None` never expires.
    pub expires_at: Option<i64>,
}

#[derive(Default)]
struct Versions {
    /// Sorted by `set_at`, one version per time.
    list: VecDeque<Version>,
    bytes: usize,
    owner: Option<u64>,
}

impl Versions {
    /// The version in effect at `now`, if it holds a live value.
    fn at(&self, now: i64) -> Option<&str> {
        let i = self.list.partition_point(|v| v.set_at <= now);
        let v = self.list.get(i.checked_sub(1)?)?;
        if v.expires_at.is_some_and(|at| at <= now) {
            return None;
        }
        v.value.as_deref()
    }
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
        /// Shortest window asked for (sightings are thinned against it).
        thin_ms: u64,
        /// (member, times seen, sorted).
        members: Vec<(String, Vec<i64>)>,
    },
    Value {
        /// Sorted by `set_at`.
        versions: Vec<Version>,
    },
}

/// One rule's state.
#[derive(Default)]
pub struct StateStore {
    limits: StateLimits,
    now: i64,
    /// The newest event time seen, `None` before the first.
    high_water: Option<i64>,
    /// How far the current event is behind the high-water mark.
    behind_ms: u64,
    counters: HashMap<String, Counter>,
    sets: HashMap<String, DistinctSet>,
    values: HashMap<String, Versions>,
    /// Bytes charged for everything held (see the `*_BYTES` allowances).
    bytes: usize,
    /// The high-water mark at the last reclaiming pass: another pass before
    /// it moves would find nothing more to drop.
    reclaimed_at: Option<i64>,
    /// Keys changed since the last [`StateStore::take_changes`], when
    /// tracking is on.
    /// Key → bit set of the [`StateKind`]s changed under that name.
    changed: Option<HashMap<String, u8>>,
    /// The partition of the current call (see [`StateStore::set_partition`]).
    partition: u64,
}

/// One changed key, for the host to persist.
#[derive(Clone, Debug, PartialEq)]
pub struct StateChange {
    pub kind: StateKind,
    pub key: String,
    /// Its snapshot, or `None` when the key no longer exists.
    pub state: Option<KeyState>,
    /// The partition ([`crate::partition_of`] of the rule's partition key)
    /// of the call that last wrote the key (0 for a removed key): the host
    /// gives the key back to the instance that owns that partition when it
    /// restarts, whatever the number of shards then.
    pub partition: u64,
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
        let owner = Some(self.partition);
        match kind {
            StateKind::Counter => self.counters.get_mut(key).map(|c| c.owner = owner),
            StateKind::Set => self.sets.get_mut(key).map(|s| s.owner = owner),
            StateKind::Value => self.values.get_mut(key).map(|v| v.owner = owner),
        };
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

    /// The partition of the calls that follow (the host sets it before
    /// each call): a key they write becomes that partition's (see
    /// [`StateStore::owner`]).
    pub fn set_partition(&mut self, partition: u64) {
        self.partition = partition;
    }

    /// The partition set for the current call.
    pub fn partition(&self) -> u64 {
        self.partition
    }

    /// The partition of the call that last wrote `key` of `kind`: `None`
    /// for a key that does not exist, or that was restored without one
    /// and not written since. The host checks it against the current
    /// call's partition for a rule that declares one.
    pub fn owner(&self, kind: StateKind, key: &str) -> Option<u64> {
        match kind {
            StateKind::Counter => self.counters.get(key).and_then(|c| c.owner),
            StateKind::Set => self.sets.get(key).and_then(|s| s.owner),
            StateKind::Value => self.values.get(key).and_then(|v| v.owner),
        }
    }

    /// What is wrong when the current call uses `key` of `kind` although
    /// the key belongs to another partition (see [`StateStore::owner`]), for
    /// a rule that declares partition key `declared` (`subject-user`, …):
    /// the message the host traps with and the mock host panics with.
    pub fn partition_breach(&self, kind: StateKind, key: &str, declared: &str) -> Option<String> {
        let owner = self.owner(kind, key)?;
        (owner != self.partition).then(|| {
            format!(
                "state {} {key:?} was written for another {declared} than this event's: \
                 a rule declaring partition `{declared}` may use a key for events of one \
                 {declared} only (declare `global` for state shared across them)",
                kind.name()
            )
        })
    }

    /// Whether keys changed since the last [`StateStore::take_changes`].
    pub fn has_changes(&self) -> bool {
        self.changed.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// The keys changed since the last call, each with its current
    /// snapshot, or `None` when the key no longer exists.
    pub fn take_changes(&mut self) -> Vec<StateChange> {
        let Some(changed) = self.changed.as_mut() else {
            return Vec::new();
        };
        let keys: Vec<(String, u8)> = changed.drain().collect();
        let mut out = Vec::with_capacity(keys.len());
        for (key, bits) in keys {
            for kind in [StateKind::Counter, StateKind::Set, StateKind::Value] {
                if bits & kind.bit() != 0 {
                    out.push(StateChange {
                        kind,
                        state: self.snapshot(kind, &key),
                        // A changed key that still exists was written by a
                        // call, so it has an owner; a removed one needs none.
                        partition: self.owner(kind, &key).unwrap_or(0),
                        key: key.clone(),
                    });
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
                thin_ms: s.thin_ms,
                members: s
                    .members
                    .iter()
                    .map(|(m, t)| (m.clone(), t.clone()))
                    .collect(),
            }),
            StateKind::Value => self.values.get(key).map(|v| KeyState::Value {
                versions: v.list.iter().cloned().collect(),
            }),
        }
    }

    /// Puts back a key read from durable storage (at start, before any
    /// event). Its bytes are charged; its times advance the high-water mark.
    pub fn restore(&mut self, key: String, state: KeyState) {
        self.restore_owned(key, state, None);
    }

    /// [`StateStore::restore`] of a key stored with the partition of its
    /// last writer (see [`StateChange::partition`]).
    pub fn restore_owned(&mut self, key: String, state: KeyState, owner: Option<u64>) {
        let mut newest = None::<i64>;
        match state {
            KeyState::Counter { window_ms, entries } => {
                let mut entries: Vec<(i64, u64)> = entries;
                entries.sort_by_key(|(t, _)| *t);
                let mut merged: VecDeque<(i64, u64)> = VecDeque::with_capacity(entries.len());
                for (t, d) in entries {
                    match merged.back_mut() {
                        Some(last) if last.0 == t => last.1 = last.1.saturating_add(d),
                        _ => merged.push_back((t, d)),
                    }
                }
                newest = merged.back().map(|e| e.0);
                let bytes = key_bytes(&key) + merged.len() * COUNTER_ENTRY_BYTES;
                self.drop_key(StateKind::Counter, &key);
                self.bytes += bytes;
                self.counters.insert(
                    key,
                    Counter {
                        entries: merged,
                        window_ms,
                        bytes,
                        owner,
                    },
                );
            }
            KeyState::Set {
                window_ms,
                thin_ms,
                members,
            } => {
                let mut set = DistinctSet {
                    window_ms,
                    thin_ms,
                    owner,
                    ..DistinctSet::default()
                };
                set.bytes = key_bytes(&key);
                for (member, mut times) in members {
                    times.sort_unstable();
                    times.dedup();
                    if let Some(&last) = times.last() {
                        set.latest = set.latest.max(last);
                    }
                    set.bytes += MEMBER_BYTES + member.len() + times.len() * SIGHTING_BYTES;
                    set.members.insert(member, times);
                }
                if set.latest != i64::MIN {
                    newest = Some(set.latest);
                }
                self.drop_key(StateKind::Set, &key);
                self.bytes += set.bytes;
                self.sets.insert(key, set);
            }
            KeyState::Value { versions } => {
                let mut list: Vec<Version> = versions;
                list.sort_by_key(|v| v.set_at);
                list.dedup_by(|later, earlier| {
                    // Keep the last version written for a time.
                    if later.set_at == earlier.set_at {
                        std::mem::swap(later, earlier);
                        true
                    } else {
                        false
                    }
                });
                // A version migrated from before versioning has `set_at` =
                // i64::MIN: it says nothing about time.
                newest = list.last().map(|v| v.set_at).filter(|t| *t != i64::MIN);
                let bytes = key_bytes(&key) + list.iter().map(version_bytes).sum::<usize>();
                self.drop_key(StateKind::Value, &key);
                self.bytes += bytes;
                self.values.insert(
                    key,
                    Versions {
                        list: list.into(),
                        bytes,
                        owner,
                    },
                );
            }
        }
        if let Some(t) = newest {
            self.high_water = Some(self.high_water.map_or(t, |h| h.max(t)));
        }
    }

    /// Sets the clock (unix ms) that windows and TTLs are measured against.
    /// The host calls this with each event's time before routing it; it
    /// also advances the high-water mark and measures how far behind it
    /// this event is ([`StateStore::behind_ms`]).
    pub fn set_now(&mut self, now_ms: i64) {
        self.now = now_ms;
        match self.high_water {
            Some(h) if h > now_ms => self.behind_ms = h.abs_diff(now_ms),
            _ => {
                self.behind_ms = 0;
                self.high_water = Some(now_ms);
            }
        }
    }

    /// Raises the high-water mark to `at` if it is behind: a host running
    /// one rule on several instances (shards) gives each call the newest
    /// event time the *rule* has seen, so lateness and the reclaiming
    /// horizon are what they would be on a single instance.
    pub fn raise_high_water(&mut self, at: i64) {
        if self.high_water.is_none_or(|h| h < at) {
            self.high_water = Some(at);
        }
    }

    pub fn now(&self) -> i64 {
        self.now
    }

    /// How far (ms) the current event is behind the newest event this state
    /// has seen; 0 for an event in time order.
    pub fn behind_ms(&self) -> u64 {
        self.behind_ms
    }

    /// The newest event time this state has seen.
    pub fn high_water(&self) -> Option<i64> {
        self.high_water
    }

    pub fn limits(&self) -> &StateLimits {
        &self.limits
    }

    /// Bytes charged against [`StateLimits::max_bytes`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds `delta` at the current time and returns the largest total of
    /// any window of `window_ms` that contains the current time (in time
    /// order: the total over `(now - window_ms, now]`).
    pub fn counter_add(&mut self, key: &str, window_ms: u64, delta: u32) -> Result<u64> {
        self.check_key(key)?;
        self.check_window(window_ms)?;
        let now = self.now;
        if let Some(horizon) = self.horizon(window_ms)
            && let Some(c) = self.counters.get_mut(key)
        {
            let freed = prune_counter(c, horizon.max_window(c.window_ms));
            self.bytes -= freed;
        }
        let cost = |s: &StateStore| -> Result<usize> {
            if delta == 0 {
                return Ok(0);
            }
            let Some(c) = s.counters.get(key) else {
                return Ok(COUNTER_ENTRY_BYTES);
            };
            if c.entries.binary_search_by_key(&now, |e| e.0).is_ok() {
                return Ok(0);
            }
            if c.entries.len() >= s.limits.max_entries_per_key {
                return Err(StateLimitError {
                    limit: "max_entries_per_key",
                    allowed: s.limits.max_entries_per_key as u64,
                    requested: c.entries.len() as u64 + 1,
                });
            }
            Ok(COUNTER_ENTRY_BYTES)
        };
        let extra = cost(self)?;
        if self.admit(StateKind::Counter, key, extra)? {
            // The reclaiming pass may have changed what this call adds.
            let again = cost(self)?;
            if again != extra {
                self.admit(StateKind::Counter, key, again)?;
            }
        }
        self.touch(StateKind::Counter, key);
        let counter = self.counters.get_mut(key).expect("admitted above");
        counter.window_ms = counter.window_ms.max(window_ms);
        if delta > 0 {
            let at = counter.entries.partition_point(|(t, _)| *t <= now);
            if at > 0 && counter.entries[at - 1].0 == now {
                let e = &mut counter.entries[at - 1];
                e.1 = e.1.saturating_add(u64::from(delta));
            } else {
                counter.entries.insert(at, (now, u64::from(delta)));
                counter.bytes += COUNTER_ENTRY_BYTES;
                self.bytes += COUNTER_ENTRY_BYTES;
            }
        }
        Ok(counter_window(&counter.entries, now, window_ms))
    }

    /// The largest total of any window of `window_ms` that contains the
    /// current time, without adding.
    pub fn counter_get(&self, key: &str, window_ms: u64) -> u64 {
        self.counters
            .get(key)
            .map_or(0, |c| counter_window(&c.entries, self.now, window_ms))
    }

    /// Records `member` as seen now and returns the largest number of
    /// distinct members seen in any window of `window_ms` that contains the
    /// current time.
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
        let now = self.now;
        if let Some(horizon) = self.horizon(window_ms)
            && let Some(s) = self.sets.get_mut(key)
        {
            let freed = prune_set(s, horizon.max_window(s.window_ms));
            self.bytes -= freed;
        }
        let cost = |s: &StateStore| -> Result<usize> {
            let Some(set) = s.sets.get(key) else {
                return Ok(MEMBER_BYTES + member.len() + SIGHTING_BYTES);
            };
            match set.members.get(member) {
                Some(times) if times.binary_search(&now).is_ok() => Ok(0),
                Some(_) => Ok(SIGHTING_BYTES),
                None if set.members.len() >= s.limits.max_entries_per_key => Err(StateLimitError {
                    limit: "max_entries_per_key",
                    allowed: s.limits.max_entries_per_key as u64,
                    requested: set.members.len() as u64 + 1,
                }),
                None => Ok(MEMBER_BYTES + member.len() + SIGHTING_BYTES),
            }
        };
        let extra = cost(self)?;
        if self.admit(StateKind::Set, key, extra)? {
            let again = cost(self)?;
            if again != extra {
                self.admit(StateKind::Set, key, again)?;
            }
        }
        self.touch(StateKind::Set, key);
        let set = self.sets.get_mut(key).expect("admitted above");
        set.window_ms = set.window_ms.max(window_ms);
        set.thin_ms = set.thin_ms.min(window_ms);
        set.latest = set.latest.max(now);
        let before = set.bytes;
        let thin_ms = set.thin_ms;
        let times = match set.members.get_mut(member) {
            Some(times) => times,
            None => {
                set.bytes += MEMBER_BYTES + member.len();
                set.members.entry(member.to_owned()).or_default()
            }
        };
        if let Err(at) = times.binary_search(&now) {
            times.insert(at, now);
            let dropped = thin(times, at, thin_ms);
            set.bytes += SIGHTING_BYTES;
            set.bytes -= dropped * SIGHTING_BYTES;
        }
        self.bytes = self.bytes + set.bytes - before;
        Ok(distinct_window(set, now, window_ms))
    }

    /// The largest number of distinct members seen in any window of
    /// `window_ms` that contains the current time.
    pub fn distinct_count(&self, key: &str, window_ms: u64) -> u64 {
        self.sets
            .get(key)
            .map_or(0, |s| distinct_window(s, self.now, window_ms))
    }

    /// The value in effect at the current time: the latest version set at
    /// or before it, unless that version expired or is a delete.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key)?.at(self.now)
    }

    /// Stores a value from now on (until a version set later in event time
    /// takes over); with `ttl_ms` it expires that long after now.
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
        let expires_at = ttl_ms.map(|ttl| self.now.saturating_add(ttl as i64));
        self.put_version(
            key,
            Version {
                set_at: self.now,
                value: Some(value.to_owned()),
                expires_at,
            },
        )
    }

    /// Deletes the value from now on; events earlier in time still see it.
    /// Fails only when the state is full (a delete is a version too).
    pub fn delete(&mut self, key: &str) -> Result<()> {
        if self.get(key).is_none() {
            // Nothing is visible from now on until a later version: a
            // delete would change no read.
            return Ok(());
        }
        self.put_version(
            key,
            Version {
                set_at: self.now,
                value: None,
                expires_at: None,
            },
        )
    }

    fn put_version(&mut self, key: &str, version: Version) -> Result<()> {
        let now = self.now;
        let new_bytes = version_bytes(&version);
        // The bytes of a version already set at this very time (replaced).
        let replaced = |s: &StateStore| -> Option<usize> {
            let v = s.values.get(key)?;
            let i = v.list.partition_point(|x| x.set_at <= now);
            v.list
                .get(i.checked_sub(1)?)
                .filter(|x| x.set_at == now)
                .map(version_bytes)
        };
        let extra = new_bytes.saturating_sub(replaced(self).unwrap_or(0));
        if self.admit(StateKind::Value, key, extra)? {
            let again = new_bytes.saturating_sub(replaced(self).unwrap_or(0));
            if again != extra {
                self.admit(StateKind::Value, key, again)?;
            }
        }
        let old_bytes = replaced(self);
        self.touch(StateKind::Value, key);
        let horizon = self
            .high_water
            .map(|h| h.min(now).saturating_sub(self.late_ms()));
        let cap = self.limits.max_entries_per_key;
        let versions = self.values.get_mut(key).expect("admitted above");
        let i = versions.list.partition_point(|x| x.set_at <= now);
        if old_bytes.is_some() {
            versions.list[i - 1] = version;
        } else {
            versions.list.insert(i, version);
        }
        versions.bytes = versions.bytes + new_bytes - old_bytes.unwrap_or(0);
        self.bytes = self.bytes + new_bytes - old_bytes.unwrap_or(0);
        let freed = prune_versions(versions, horizon, cap);
        let empty = versions.list.is_empty();
        self.bytes -= freed;
        if empty {
            self.drop_key(StateKind::Value, key);
        }
        Ok(())
    }

    /// Keys held across counters, sets and values.
    pub fn key_count(&self) -> usize {
        self.counters.len() + self.sets.len() + self.values.len()
    }

    fn late_ms(&self) -> i64 {
        i64::try_from(self.limits.late_after_ms).unwrap_or(i64::MAX)
    }

    /// Where pruning stops for a key with a window of `window_ms`, judged
    /// from the current event (never more than from the high-water mark).
    fn horizon(&self, window_ms: u64) -> Option<Horizon> {
        self.high_water.map(|h| Horizon {
            behind: h.min(self.now).saturating_sub(self.late_ms()),
            window_ms,
        })
    }

    fn exists(&self, kind: StateKind, key: &str) -> bool {
        match kind {
            StateKind::Counter => self.counters.contains_key(key),
            StateKind::Set => self.sets.contains_key(key),
            StateKind::Value => self.values.contains_key(key),
        }
    }

    /// Makes sure `key` of `kind` exists (creating it within `max_keys`) and
    /// that `extra` more bytes fit within `max_bytes`; charges the key's own
    /// bytes when it is created (the caller charges `extra` as it adds).
    /// Nothing changes when it fails. Returns whether a reclaiming pass ran
    /// (the caller then checks again what it is about to add).
    fn admit(&mut self, kind: StateKind, key: &str, extra: usize) -> Result<bool> {
        let mut reclaimed = false;
        loop {
            let exists = self.exists(kind, key);
            let need = extra + if exists { 0 } else { key_bytes(key) };
            let keys_ok = exists || self.key_count() < self.limits.max_keys;
            let bytes_ok = self.bytes.saturating_add(need) <= self.limits.max_bytes;
            if keys_ok && bytes_ok {
                if !exists {
                    let bytes = key_bytes(key);
                    self.bytes += bytes;
                    match kind {
                        StateKind::Counter => {
                            self.counters.insert(
                                key.to_owned(),
                                Counter {
                                    bytes,
                                    ..Counter::default()
                                },
                            );
                        }
                        StateKind::Set => {
                            self.sets.insert(
                                key.to_owned(),
                                DistinctSet {
                                    bytes,
                                    ..DistinctSet::default()
                                },
                            );
                        }
                        StateKind::Value => {
                            self.values.insert(
                                key.to_owned(),
                                Versions {
                                    bytes,
                                    ..Versions::default()
                                },
                            );
                        }
                    }
                }
                return Ok(reclaimed);
            }
            // Drop what has aged out, once, then look again.
            if !reclaimed && self.reclaim() {
                reclaimed = true;
                continue;
            }
            return Err(if keys_ok {
                StateLimitError {
                    limit: "max_bytes",
                    allowed: self.limits.max_bytes as u64,
                    requested: self.bytes.saturating_add(need) as u64,
                }
            } else {
                StateLimitError {
                    limit: "max_keys",
                    allowed: self.limits.max_keys as u64,
                    requested: self.key_count() as u64 + 1,
                }
            });
        }
    }

    /// Removes a key and uncharges its bytes.
    fn drop_key(&mut self, kind: StateKind, key: &str) {
        let bytes = match kind {
            StateKind::Counter => self.counters.remove(key).map(|c| c.bytes),
            StateKind::Set => self.sets.remove(key).map(|s| s.bytes),
            StateKind::Value => self.values.remove(key).map(|v| v.bytes),
        };
        if let Some(b) = bytes {
            self.bytes -= b;
        }
    }

    /// One pass over everything, dropping entries, sightings and versions
    /// no event within the lateness bound can see, and keys left empty.
    /// Returns `false` without scanning when nothing can have aged out since
    /// the last pass (the high-water mark has not moved), so a rule pressing
    /// against a limit does not cost a scan per call.
    fn reclaim(&mut self) -> bool {
        let Some(high) = self.high_water else {
            return false;
        };
        if self.reclaimed_at == Some(high) {
            return false;
        }
        self.reclaimed_at = Some(high);
        let behind = high.saturating_sub(self.late_ms());
        let cap = self.limits.max_entries_per_key;
        let mut dropped = Vec::new();
        let mut freed = 0;
        for (k, c) in self.counters.iter_mut() {
            freed += prune_counter(c, behind.saturating_sub(to_ms(c.window_ms)));
            if c.entries.is_empty() {
                dropped.push((StateKind::Counter, k.clone()));
            }
        }
        for (k, s) in self.sets.iter_mut() {
            freed += prune_set(s, behind.saturating_sub(to_ms(s.window_ms)));
            if s.members.is_empty() {
                dropped.push((StateKind::Set, k.clone()));
            }
        }
        for (k, v) in self.values.iter_mut() {
            freed += prune_versions(v, Some(behind), cap);
            if v.list.is_empty() {
                dropped.push((StateKind::Value, k.clone()));
            }
        }
        self.bytes -= freed;
        for (kind, key) in dropped {
            self.drop_key(kind, &key);
            self.touch(kind, &key);
        }
        true
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

    /// The bytes charged, recounted from scratch (tests compare it with the
    /// incremental account).
    #[cfg(test)]
    fn recount_bytes(&self) -> usize {
        let counters: usize = self
            .counters
            .iter()
            .map(|(k, c)| key_bytes(k) + c.entries.len() * COUNTER_ENTRY_BYTES)
            .sum();
        let sets: usize = self
            .sets
            .iter()
            .map(|(k, s)| {
                key_bytes(k)
                    + s.members
                        .iter()
                        .map(|(m, t)| MEMBER_BYTES + m.len() + t.len() * SIGHTING_BYTES)
                        .sum::<usize>()
            })
            .sum();
        let values: usize = self
            .values
            .iter()
            .map(|(k, v)| key_bytes(k) + v.list.iter().map(version_bytes).sum::<usize>())
            .sum();
        counters + sets + values
    }
}

fn to_ms(window_ms: u64) -> i64 {
    i64::try_from(window_ms).unwrap_or(i64::MAX)
}

/// The high-water mark less the lateness bound, and the window of the call.
#[derive(Clone, Copy)]
struct Horizon {
    behind: i64,
    window_ms: u64,
}

impl Horizon {
    /// Entries at or before this time can be dropped from a key whose
    /// longest window is `key_window_ms`.
    fn max_window(self, key_window_ms: u64) -> i64 {
        self.behind
            .saturating_sub(to_ms(key_window_ms.max(self.window_ms)))
    }
}

/// Drops entries at or before `cutoff`; returns the bytes freed.
fn prune_counter(counter: &mut Counter, cutoff: i64) -> usize {
    let n = counter.entries.partition_point(|(t, _)| *t <= cutoff);
    counter.entries.drain(..n);
    let freed = n * COUNTER_ENTRY_BYTES;
    counter.bytes -= freed;
    freed
}

/// The largest sum of any window `(s - w, s]` with `now <= s < now + w`
/// (the windows of length `w` that contain `now`).
fn counter_window(entries: &VecDeque<(i64, u64)>, now: i64, window_ms: u64) -> u64 {
    let w = to_ms(window_ms);
    let lo = now.saturating_sub(w);
    let hi = now.saturating_add(w);
    let mut left = entries.partition_point(|(t, _)| *t <= lo);
    let mut right = entries.partition_point(|(t, _)| *t <= now);
    let mut sum: u64 = entries.range(left..right).map(|e| e.1).sum();
    let mut best = sum;
    // Slide the window's end over the later entries within reach.
    while right < entries.len() && entries[right].0 < hi {
        let s = entries[right].0;
        sum += entries[right].1;
        right += 1;
        while left < right && entries[left].0 <= s.saturating_sub(w) {
            sum -= entries[left].1;
            left += 1;
        }
        best = best.max(sum);
    }
    best
}

/// Drops sightings at or before `cutoff` and members left without any;
/// returns the bytes freed.
fn prune_set(set: &mut DistinctSet, cutoff: i64) -> usize {
    let mut freed = 0;
    set.members.retain(|member, times| {
        let n = times.partition_point(|t| *t <= cutoff);
        if n == times.len() {
            freed += MEMBER_BYTES + member.len() + n * SIGHTING_BYTES;
            return false;
        }
        times.drain(..n);
        freed += n * SIGHTING_BYTES;
        true
    });
    set.bytes -= freed;
    freed
}

/// After inserting at `at`, drops the sightings around it that every
/// window of at least `thin_ms` can do without: the middle one of three
/// within `thin_ms` (a window of that length holding the middle one holds
/// the first or the last too). Returns how many were dropped.
fn thin(times: &mut Vec<i64>, at: usize, thin_ms: u64) -> usize {
    let thin_ms = to_ms(thin_ms);
    let mut dropped = 0;
    // Only the middles at at-1, at and at+1 can have become redundant;
    // after a removal the neighbourhood shifts by one.
    let mut j = at.saturating_sub(1).max(1);
    let mut end = at + 1;
    while j < times.len().saturating_sub(1) && j <= end {
        if times[j + 1].saturating_sub(times[j - 1]) <= thin_ms {
            times.remove(j);
            dropped += 1;
            end = end.saturating_sub(1);
            j = j.saturating_sub(1).max(1);
        } else {
            j += 1;
        }
    }
    dropped
}

/// The largest number of distinct members with a sighting in any window
/// `(s - w, s]` with `now <= s < now + w`.
fn distinct_window(set: &DistinctSet, now: i64, window_ms: u64) -> u64 {
    let w = to_ms(window_ms);
    let lo = now.saturating_sub(w);
    let hi = now.saturating_add(w);
    if set.latest <= now {
        // In time order: the members seen in (now - w, now].
        return set
            .members
            .values()
            .filter(|times| {
                let i = times.partition_point(|t| *t <= now);
                i > 0 && times[i - 1] > lo
            })
            .count() as u64;
    }
    let mut seen: Vec<(i64, u32)> = Vec::new();
    for (idx, times) in set.members.values().enumerate() {
        let from = times.partition_point(|t| *t <= lo);
        for &t in times[from..].iter().take_while(|t| **t < hi) {
            seen.push((t, idx as u32));
        }
    }
    seen.sort_unstable();
    let mut counts = vec![0u32; set.members.len()];
    let mut distinct = 0u64;
    let (mut left, mut right) = (0, 0);
    while right < seen.len() && seen[right].0 <= now {
        let c = &mut counts[seen[right].1 as usize];
        distinct += u64::from(*c == 0);
        *c += 1;
        right += 1;
    }
    let mut best = distinct;
    while right < seen.len() {
        let s = seen[right].0;
        while right < seen.len() && seen[right].0 == s {
            let c = &mut counts[seen[right].1 as usize];
            distinct += u64::from(*c == 0);
            *c += 1;
            right += 1;
        }
        while left < right && seen[left].0 <= s.saturating_sub(w) {
            let c = &mut counts[seen[left].1 as usize];
            *c -= 1;
            distinct -= u64::from(*c == 0);
            left += 1;
        }
        best = best.max(distinct);
    }
    best
}

/// Drops the versions no read at or after `horizon` can see (all but the
/// last one set at or before it, and that one too if it is a delete or
/// expired by then), then the oldest beyond `cap`. Returns the bytes freed.
fn prune_versions(v: &mut Versions, horizon: Option<i64>, cap: usize) -> usize {
    let mut freed = 0;
    if let Some(h) = horizon {
        let n = v.list.partition_point(|x| x.set_at <= h);
        if n >= 2 {
            for x in v.list.drain(..n - 1) {
                freed += version_bytes(&x);
            }
        }
        if let Some(base) = v.list.front()
            && base.set_at <= h
            && (base.value.is_none() || base.expires_at.is_some_and(|at| at <= h))
        {
            freed += version_bytes(base);
            v.list.pop_front();
        }
    }
    while v.list.len() > cap.max(1) {
        if let Some(x) = v.list.pop_front() {
            freed += version_bytes(&x);
        }
    }
    v.bytes -= freed;
    freed
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const W10: u64 = 10 * MIN as u64;

    /// A small deterministic generator for the property tests (the SDK has
    /// no dependencies).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // SplitMix64.
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn shuffle<T>(&mut self, v: &mut [T]) {
            for i in (1..v.len()).rev() {
                let j = self.below(i as u64 + 1) as usize;
                v.swap(i, j);
            }
        }
    }

    #[test]
    fn counter_counts_only_inside_the_window() {
        let mut s = StateStore::default();
        for minute in 0..5 {
            s.set_now(minute * MIN);
            s.counter_add("k", W10, 1).unwrap();
        }
        // At minute 12 the events of minutes 0, 1 and 2 are 10+ minutes old.
        s.set_now(12 * MIN);
        assert_eq!(s.counter_get("k", W10), 2);
        assert_eq!(s.counter_add("k", W10, 1).unwrap(), 3);
    }

    #[test]
    fn a_burst_arriving_newest_first_is_counted_whole_by_its_last_arrival() {
        // Fifteen events in seven minutes, newest first: each arrival sees
        // the window around it, so the count climbs to 15 exactly once.
        let mut s = StateStore::default();
        let mut seen = Vec::new();
        for i in (0..15).rev() {
            s.set_now(i * 28_000);
            seen.push(s.counter_add("k", W10, 1).unwrap());
        }
        assert_eq!(seen, (1..=15).collect::<Vec<u64>>());
    }

    #[test]
    fn entries_a_window_or_more_away_are_ignored_in_both_directions() {
        let mut s = StateStore::default();
        s.set_now(20 * MIN);
        s.counter_add("k", W10, 1).unwrap();
        // Exactly a window before it: no window of 10 minutes holds both.
        s.set_now(10 * MIN);
        assert_eq!(s.counter_add("k", W10, 1).unwrap(), 1);
        // A minute later, both windows around it hold two.
        s.set_now(11 * MIN);
        assert_eq!(s.counter_add("k", W10, 1).unwrap(), 2);
        s.set_now(15 * MIN);
        assert_eq!(s.counter_get("k", W10), 2);
    }

    /// A store whose lateness bound covers any disorder of the tests.
    fn patient() -> StateStore {
        StateStore::new(StateLimits {
            late_after_ms: 3_600_000,
            ..StateLimits::default()
        })
    }

    // Any arrival order (within the lateness bound) leaves the same state:
    // every time sees the best windows around it, checked by brute force.
    // And whether a threshold on one counter is ever reached does not
    // depend on the order either.
    #[test]
    fn counters_and_sets_are_order_independent_over_seeds() {
        for seed in 0..300u64 {
            let mut rng = Rng(seed);
            let n = 1 + rng.below(40) as usize;
            // Times within 25 minutes, members among 6 users.
            let events: Vec<(i64, String)> = (0..n)
                .map(|_| {
                    (
                        rng.below(25 * MIN as u64) as i64,
                        format!("u{}", rng.below(6)),
                    )
                })
                .collect();
            let mut sorted = events.clone();
            sorted.sort();
            let mut shuffled = events.clone();
            rng.shuffle(&mut shuffled);
            let mut reversed = sorted.clone();
            reversed.reverse();
            let run = |order: &[(i64, String)]| {
                let mut s = patient();
                let mut fired = 0;
                for (t, m) in order {
                    s.set_now(*t);
                    let c = s.counter_add("k", W10, 1).unwrap();
                    s.distinct_add("d", m, W10).unwrap();
                    if c >= 5 && s.counter_get("fired", W10) == 0 {
                        s.counter_add("fired", W10, 1).unwrap();
                        fired += 1;
                    }
                }
                let probes: Vec<(u64, u64)> = (0..26)
                    .map(|m| {
                        s.set_now(m * MIN);
                        (s.counter_get("k", W10), s.distinct_count("d", W10))
                    })
                    .collect();
                (fired, probes)
            };
            let (fired_sorted, probes) = run(&sorted);
            for order in [&shuffled, &reversed] {
                let (fired, other) = run(order);
                assert_eq!(probes, other, "seed {seed}");
                assert_eq!(fired_sorted > 0, fired > 0, "seed {seed}");
            }
            // Brute force: each probe is the best window containing it.
            for (m, (c, d)) in probes.iter().enumerate() {
                let now = m as i64 * MIN;
                let (mut bc, mut bd) = (0, 0);
                // The best window ends at `now` or at an entry within reach.
                let ends = std::iter::once(now).chain(
                    events
                        .iter()
                        .map(|e| e.0)
                        .filter(|t| *t > now && *t < now + W10 as i64),
                );
                for end in ends {
                    let inside: Vec<&(i64, String)> = events
                        .iter()
                        .filter(|e| e.0 > end - W10 as i64 && e.0 <= end)
                        .collect();
                    bc = bc.max(inside.len() as u64);
                    let mut users: Vec<&String> = inside.iter().map(|e| &e.1).collect();
                    users.sort();
                    users.dedup();
                    bd = bd.max(users.len() as u64);
                }
                assert_eq!((*c, *d), (bc, bd), "seed {seed} minute {m}");
            }
        }
    }

    #[test]
    fn one_burst_fires_exactly_once_in_every_order() {
        // 15 failures for 5 users within 7 minutes: one firing, whatever
        // the order (the issue's spray example).
        for seed in 0..200u64 {
            let mut rng = Rng(seed);
            let mut events: Vec<(i64, String)> = (0..15)
                .map(|i| (i * 28_000, format!("u{}", i % 5)))
                .collect();
            rng.shuffle(&mut events);
            let mut s = StateStore::default();
            let mut fired = 0;
            for (t, m) in &events {
                s.set_now(*t);
                let users = s.distinct_add("users", m, W10).unwrap();
                let attempts = s.counter_add("attempts", W10, 1).unwrap();
                if users >= 5 && attempts >= 15 && s.counter_get("fired", W10) == 0 {
                    s.counter_add("fired", W10, 1).unwrap();
                    fired += 1;
                }
            }
            assert_eq!(fired, 1, "seed {seed}");
        }
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
    fn thinning_keeps_every_window_answer() {
        // A member seen often keeps few sightings, and the answers for the
        // key's window stay those of the full history.
        for seed in 0..200u64 {
            let mut rng = Rng(seed);
            let mut s = patient();
            let mut all: Vec<(i64, String)> = Vec::new();
            for _ in 0..60 {
                let t = rng.below(60 * MIN as u64) as i64;
                let m = format!("m{}", rng.below(3));
                s.set_now(t);
                s.distinct_add("d", &m, W10).unwrap();
                all.push((t, m));
            }
            for probe in (0..60).map(|m| m * MIN) {
                s.set_now(probe);
                let mut best = 0;
                let ends = std::iter::once(probe).chain(
                    all.iter()
                        .map(|e| e.0)
                        .filter(|t| *t > probe && *t < probe + W10 as i64),
                );
                for end in ends {
                    let mut ms: Vec<&String> = all
                        .iter()
                        .filter(|e| e.0 > end - W10 as i64 && e.0 <= end)
                        .map(|e| &e.1)
                        .collect();
                    ms.sort();
                    ms.dedup();
                    best = best.max(ms.len() as u64);
                }
                assert_eq!(s.distinct_count("d", W10), best, "seed {seed} at {probe}");
            }
            let sightings: usize = s.sets["d"].members.values().map(Vec::len).sum();
            assert!(
                sightings <= 3 * 14,
                "seed {seed}: {sightings} sightings kept"
            );
        }
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
        s.delete("forever").unwrap();
        assert_eq!(s.get("forever"), None);
    }

    #[test]
    fn a_value_set_by_a_later_event_is_invisible_to_an_earlier_one() {
        let mut s = StateStore::default();
        s.set_now(10 * MIN);
        s.set("reset", "yes", Some(W10)).unwrap();
        // A sign-in from before the reset arrives late: no reset for it.
        s.set_now(9 * MIN);
        assert_eq!(s.get("reset"), None);
        s.set_now(10 * MIN);
        assert_eq!(s.get("reset"), Some("yes"));
        // The TTL runs from the event that set it.
        s.set_now(20 * MIN - 1);
        assert_eq!(s.get("reset"), Some("yes"));
        s.set_now(20 * MIN);
        assert_eq!(s.get("reset"), None);
    }

    #[test]
    fn a_late_write_or_delete_does_not_clobber_later_versions() {
        let mut s = StateStore::default();
        s.set_now(5 * MIN);
        s.set("last", "five", None).unwrap();
        s.set_now(3 * MIN);
        assert_eq!(s.get("last"), None);
        s.set("last", "three", None).unwrap();
        s.set_now(4 * MIN);
        assert_eq!(s.get("last"), Some("three"));
        s.set_now(6 * MIN);
        assert_eq!(s.get("last"), Some("five"));
        // A delete at minute 7 hides nothing from minute 6.
        s.set_now(7 * MIN);
        s.delete("last").unwrap();
        assert_eq!(s.get("last"), None);
        s.set_now(6 * MIN);
        assert_eq!(s.get("last"), Some("five"));
    }

    #[test]
    fn state_is_kept_for_events_within_the_lateness_bound() {
        let mut s = StateStore::new(StateLimits {
            late_after_ms: 5 * MIN as u64,
            ..StateLimits::default()
        });
        for (minute, name) in [(0, "zero"), (5, "five"), (14, "fourteen")] {
            s.set_now(minute * MIN);
            s.counter_add("k", W10, 1).unwrap();
            s.set("v", name, None).unwrap();
        }
        assert_eq!(s.behind_ms(), 0);
        // Four minutes behind: within the bound, minute 0 is still there.
        s.set_now(10 * MIN - 1);
        assert_eq!(s.behind_ms(), 4 * MIN as u64 + 1);
        assert_eq!(s.counter_get("k", W10), 2);
        assert_eq!(s.get("v"), Some("five"));
        // The newest event moves to minute 30: minutes 0 to 14 fall out of
        // reach (window 10 + lateness 5), the value keeps the version in
        // effect at minute 25 as its base.
        s.set_now(30 * MIN);
        s.counter_add("k", W10, 1).unwrap();
        s.set("v", "thirty", None).unwrap();
        assert_eq!(s.counters["k"].entries.len(), 1);
        assert_eq!(s.values["v"].list.len(), 2);
        s.set_now(26 * MIN);
        assert_eq!(s.get("v"), Some("fourteen"));
        assert_eq!(s.bytes(), s.recount_bytes());
    }

    #[test]
    fn key_limit_reclaims_expired_keys_then_refuses() {
        let mut s = StateStore::new(StateLimits {
            max_keys: 2,
            late_after_ms: 0,
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
    fn the_byte_budget_is_enforced_and_a_refused_call_changes_nothing() {
        let mut s = StateStore::new(StateLimits {
            max_bytes: 100_000,
            ..StateLimits::default()
        });
        s.set_now(0);
        let big = "x".repeat(30_000);
        s.set("a", &big, None).unwrap();
        s.set("b", &big, None).unwrap();
        s.set("c", &big, None).unwrap();
        let before = s.bytes();
        let err = s.set("d", &big, None).unwrap_err();
        assert_eq!(err.limit, "max_bytes");
        assert_eq!(err.allowed, 100_000);
        assert!(err.requested > 100_000, "{err}");
        assert_eq!(s.bytes(), before);
        assert_eq!(s.get("d"), None);
        assert_eq!(s.key_count(), 3);
        // Counters and sets are charged too.
        let mut t = StateStore::new(StateLimits {
            max_bytes: 10_000,
            ..StateLimits::default()
        });
        t.set_now(0);
        let mut n = 0;
        let err = loop {
            t.set_now(n);
            match t.counter_add("c", W10, 1) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err.limit, "max_bytes");
        assert!(
            n > 100 && t.bytes() <= 10_000,
            "{n} entries, {} bytes",
            t.bytes()
        );
        let err = t.distinct_add("s", "member", W10).unwrap_err();
        assert_eq!(err.limit, "max_bytes");
    }

    #[test]
    fn aged_out_state_frees_its_bytes() {
        let mut s = StateStore::new(StateLimits {
            max_bytes: 20_000,
            late_after_ms: MIN as u64,
            ..StateLimits::default()
        });
        // A rule using a fresh key per minute, each with a 10-minute TTL,
        // runs for hours within a budget that holds about 20 values.
        for minute in 0..600 {
            s.set_now(minute * MIN);
            s.set(&format!("k{minute}"), &"v".repeat(500), Some(W10))
                .unwrap_or_else(|e| panic!("minute {minute}: {e}"));
            s.counter_add(&format!("c{minute}"), W10, 1).unwrap();
            s.distinct_add(&format!("d{minute}"), "m", W10).unwrap();
        }
        assert!(s.bytes() <= 20_000);
        assert_eq!(s.bytes(), s.recount_bytes());
    }

    #[test]
    fn bytes_are_accounted_incrementally_and_exactly() {
        for seed in 0..100u64 {
            let mut rng = Rng(seed);
            let mut s = StateStore::new(StateLimits {
                late_after_ms: 2 * MIN as u64,
                max_entries_per_key: 20,
                ..StateLimits::default()
            });
            for _ in 0..400 {
                s.set_now(rng.below(120 * MIN as u64) as i64);
                let key = format!("k{}", rng.below(8));
                let _ = match rng.below(5) {
                    0 => s.counter_add(&key, W10, rng.below(3) as u32).map(drop),
                    1 => s
                        .distinct_add(&key, &format!("m{}", rng.below(5)), W10)
                        .map(drop),
                    2 => s.set(&key, &"x".repeat(rng.below(50) as usize), Some(W10)),
                    3 => s.set(&key, "y", None),
                    _ => s.delete(&key),
                };
                assert_eq!(s.bytes(), s.recount_bytes(), "seed {seed}");
            }
            s.reclaimed_at = None;
            s.reclaim();
            assert_eq!(s.bytes(), s.recount_bytes(), "seed {seed} after reclaim");
        }
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
        s.set_now(900);
        s.set("v", "earlier", None).unwrap();
        s.set_now(1_000);
        s.set("gone", "y", None).unwrap();
        s.delete("gone").unwrap();
        let mut changes = s.take_changes();
        changes.sort_by(|a, b| a.key.cmp(&b.key));
        let names: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(names, vec!["c", "d", "gone", "v"]);
        assert!(!s.has_changes());

        let mut restored = StateStore::default();
        for change in changes.into_iter() {
            if let Some(state) = change.state {
                restored.restore(change.key, state);
            }
        }
        assert_eq!(restored.high_water(), Some(1_000));
        assert_eq!(restored.bytes(), restored.recount_bytes());
        restored.set_now(1_200);
        assert_eq!(restored.counter_get("c", 60_000), 2);
        assert_eq!(restored.distinct_count("d", 60_000), 1);
        assert_eq!(restored.get("v"), Some("x"));
        assert_eq!(restored.get("gone"), None);
        restored.set_now(950);
        assert_eq!(restored.get("v"), Some("earlier"), "versions survive");
        restored.set_now(1_500);
        assert_eq!(restored.get("v"), None, "the TTL survives the round trip");
    }

    #[test]
    fn changed_keys_carry_the_partition_of_the_call_that_wrote_them() {
        let mut s = StateStore::default();
        s.track_changes();
        s.set_now(1_000);
        s.set_partition(7);
        s.counter_add("alice", 60_000, 1).unwrap();
        s.set("shared", "a", None).unwrap();
        s.set_partition(9);
        s.distinct_add("bob", "1.2.3.4", 60_000).unwrap();
        // The last writer's partition wins (a rule that breaks its own
        // partition claim; the host keeps the newest tag).
        s.set("shared", "b", None).unwrap();
        let mut changes = s.take_changes();
        changes.sort_by(|a, b| a.key.cmp(&b.key));
        let tags: Vec<(&str, u64)> = changes
            .iter()
            .map(|c| (c.key.as_str(), c.partition))
            .collect();
        assert_eq!(tags, vec![("alice", 7), ("bob", 9), ("shared", 9)]);
    }

    #[test]
    fn each_key_remembers_the_partition_that_wrote_it_last() {
        let mut s = StateStore::default();
        s.set_now(1_000);
        s.set_partition(7);
        s.counter_add("c", 60_000, 1).unwrap();
        s.distinct_add("d", "m", 60_000).unwrap();
        s.set("v", "x", None).unwrap();
        for (kind, key) in [
            (StateKind::Counter, "c"),
            (StateKind::Set, "d"),
            (StateKind::Value, "v"),
        ] {
            assert_eq!(s.owner(kind, key), Some(7), "{key}");
        }
        s.set_partition(9);
        s.counter_add("c", 60_000, 1).unwrap();
        assert_eq!(s.owner(StateKind::Counter, "c"), Some(9));
        assert_eq!(s.owner(StateKind::Counter, "nothing"), None);
        // Restored keys: with the stored partition, or none (from before
        // partitions) until written again.
        let state = KeyState::Counter {
            window_ms: 60_000,
            entries: vec![(1_000, 1)],
        };
        s.restore_owned("r".into(), state.clone(), Some(3));
        assert_eq!(s.owner(StateKind::Counter, "r"), Some(3));
        s.restore("old".into(), state);
        assert_eq!(s.owner(StateKind::Counter, "old"), None);
        s.counter_add("old", 60_000, 1).unwrap();
        assert_eq!(s.owner(StateKind::Counter, "old"), Some(9));
    }

    #[test]
    fn a_raised_high_water_mark_makes_an_event_late_as_on_one_instance() {
        let mut one = StateStore::default();
        one.set_now(10 * MIN);
        one.set_now(2 * MIN);
        // A shard that never saw the 10-minute event, told of it.
        let mut shard = StateStore::default();
        shard.raise_high_water(10 * MIN);
        shard.set_now(2 * MIN);
        assert_eq!(shard.behind_ms(), one.behind_ms());
        assert_eq!(shard.high_water(), one.high_water());
        // Never lowered.
        shard.raise_high_water(MIN);
        assert_eq!(shard.high_water(), Some(10 * MIN));
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
        // Several adds at one time are one entry.
        s.set_now(2);
        assert_eq!(s.counter_add("k", 1_000, 5).unwrap(), 8);
        // A value keeps its newest versions instead of refusing.
        for t in 0..10 {
            s.set_now(100 + t);
            s.set("v", &t.to_string(), None).unwrap();
        }
        assert_eq!(s.values["v"].list.len(), 3);
        assert_eq!(s.get("v"), Some("9"));
    }

    // A newest-first export five hours long: every event is far behind the
    // newest one, yet nothing it needs has been dropped, because entries are
    // only dropped relative to the event being judged.
    #[test]
    fn a_stream_read_backwards_loses_nothing() {
        let mut s = StateStore::default();
        let mut counts = Vec::new();
        for minute in (0..300).rev() {
            s.set_now(minute * MIN);
            s.set("last", &minute.to_string(), None).unwrap();
            if (100..105).contains(&minute) {
                counts.push(s.counter_add("burst", W10, 1).unwrap());
            }
        }
        assert_eq!(counts, vec![1, 2, 3, 4, 5]);
        assert_eq!(s.behind_ms(), 299 * MIN as u64);
        s.set_now(150 * MIN + 30_000);
        assert_eq!(s.get("last"), Some("150"));
    }
}
