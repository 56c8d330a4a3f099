//! The event ids each rule has judged, so that replaying a stream through
//! persisted state (a file run twice, a spool replayed after a crash, a
//! redelivery) does not count an event twice: a repeat is skipped and
//! counted as a duplicate.
//!
//! Bounded per rule, by count (`[limits] judged_max_ids`) and by age
//! (`[limits] judged_window_secs`, measured on the wall clock back from the
//! last time the rule judged an event). Age is when an id was *judged*, not
//! its event time: rule state is kept by event time and forgets old
//! windows, so an old event replayed later would otherwise be judged again
//! against state that no longer remembers it, and fire again. Ids are
//! forgotten oldest first (in the order they were judged).
//!
//! An id is kept as the first 64 bits of its SHA-256 ([`digest`]): 100 000
//! ids cost about 4 MiB per rule instead of several times that as strings.
//! Two different ids that collide would make the second one skipped; by
//! chance that is about one in 10^10 at the default bound, and an attacker
//! who picks event ids would need a second preimage of a 64-bit SHA-256
//! prefix to hide one particular event.
//!
//! Additions and evictions are written to the store in the same commit as
//! the rule state the event changed (`store::Commit`), so after a crash the
//! two always agree.

use std::collections::{HashMap, HashSet, VecDeque};

use sha2::{Digest, Sha256};

/// The 64-bit digest an event id is remembered by (stable across versions
/// and platforms: it is stored).
pub fn digest(event_id: &str) -> i64 {
    let d = Sha256::digest(event_id.as_bytes());
    i64::from_be_bytes(d[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

/// Judged ids of one rule.
#[derive(Debug, Default)]
struct RuleJudged {
    max: usize,
    window_ms: i64,
    ids: HashSet<i64>,
    order: VecDeque<(i64, i64)>,
    newest: i64,
}

/// (rule, event id digest, when it was judged): one event a rule judged.
pub type Judgement = (String, i64, i64);

/// Every rule's judged ids, and what changed since the last commit.
#[derive(Debug, Default)]
pub struct Judged {
    rules: HashMap<String, RuleJudged>,
    added: Vec<Judgement>,
    forgotten: Vec<Judgement>,
}

impl Judged {
    /// Sets a rule's bounds and the ids the store remembers (oldest
    /// first); ids past the bounds are forgotten (and deleted at the next
    /// commit).
    pub fn load(&mut self, rule: &str, max: usize, window_secs: u64, ids: Vec<(i64, i64)>) {
        let mut r = RuleJudged {
            max: max.max(1),
            window_ms: i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            ..Default::default()
        };
        for (id, at) in ids {
            r.newest = r.newest.max(at);
            if r.ids.insert(id) {
                r.order.push_back((id, at));
            }
        }
        let forgotten = r.evict();
        self.forgotten.extend(
            forgotten
                .into_iter()
                .map(|(id, at)| (rule.to_owned(), id, at)),
        );
        self.rules.insert(rule.to_owned(), r);
    }

    /// Whether `rule` has judged the event whose id has [`digest`] `id`.
    pub fn contains(&self, rule: &str, id: i64) -> bool {
        self.rules.get(rule).is_some_and(|r| r.ids.contains(&id))
    }

    /// Remembers that `rule` judged the event whose id has [`digest`] `id`
    /// at wall-clock time `at` (unix ms).
    pub fn insert(&mut self, rule: &str, id: i64, at: i64) {
        if !self.rules.contains_key(rule) {
            // A rule not loaded through `load` (tests): the default bounds.
            let limits = crate::config::Limits::default();
            self.load(
                rule,
                limits.judged_max_ids,
                limits.judged_window_secs,
                Vec::new(),
            );
        }
        let Some(r) = self.rules.get_mut(rule) else {
            return;
        };
        if !r.ids.insert(id) {
            return;
        }
        r.order.push_back((id, at));
        r.newest = r.newest.max(at);
        self.added.push((rule.to_owned(), id, at));
        for (id, at) in r.evict() {
            self.forgotten.push((rule.to_owned(), id, at));
        }
    }

    /// What changed since the last call: (added, forgotten).
    pub fn take_changes(&mut self) -> (Vec<Judgement>, Vec<Judgement>) {
        (
            std::mem::take(&mut self.added),
            std::mem::take(&mut self.forgotten),
        )
    }

    /// Ids remembered for `rule` (tests).
    #[cfg(test)]
    pub fn len(&self, rule: &str) -> usize {
        self.rules.get(rule).map_or(0, |r| r.ids.len())
    }
}

impl RuleJudged {
    /// Drops the oldest ids past the count or age bound; returns them with
    /// when they were judged.
    fn evict(&mut self) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let horizon = self.newest.saturating_sub(self.window_ms);
        while let Some((id, at)) = self.order.front() {
            if self.order.len() <= self.max && *at >= horizon {
                break;
            }
            self.ids.remove(id);
            out.push((*id, *at));
            self.order.pop_front();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_seen_and_bounds_forget_the_oldest() {
        let mut j = Judged::default();
        j.load("r", 3, 10, vec![(digest("a"), 1_000)]);
        assert!(j.contains("r", digest("a")));
        assert!(!j.contains("other", digest("a")));
        j.insert("r", digest("b"), 2_000);
        j.insert("r", digest("c"), 3_000);
        j.insert("r", digest("d"), 4_000);
        // Count bound: "a" is forgotten.
        assert!(!j.contains("r", digest("a")));
        assert_eq!(j.len("r"), 3);
        // Age bound: 10 s behind the newest is forgotten.
        j.insert("r", digest("e"), 13_500);
        assert!(!j.contains("r", digest("b")) && !j.contains("r", digest("c")));
        assert!(j.contains("r", digest("d")) && j.contains("r", digest("e")));
        let (added, forgotten) = j.take_changes();
        assert_eq!(added.len(), 4);
        let ids: Vec<i64> = forgotten.iter().map(|(_, id, _)| *id).collect();
        assert_eq!(ids, [digest("a"), digest("b"), digest("c")]);
        // Judging the same id again adds nothing.
        j.insert("r", digest("e"), 13_500);
        assert!(j.take_changes().0.is_empty());
    }

    #[test]
    fn the_digest_is_stable() {
        // Stored: it must never change between versions or platforms.
        assert_eq!(digest("evt-1"), digest("evt-1"));
        assert_ne!(digest("evt-1"), digest("evt-2"));
        assert_eq!(digest(""), -2_039_914_840_885_289_964);
    }

    #[test]
    fn loading_past_the_bound_forgets_at_once() {
        let mut j = Judged::default();
        let ids = (0..5)
            .map(|i| (digest(&format!("e{i}")), i * 1_000))
            .collect();
        j.load("r", 2, 3_600, ids);
        assert_eq!(j.len("r"), 2);
        assert_eq!(j.take_changes().1.len(), 3);
    }
}
