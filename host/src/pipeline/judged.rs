//! The event ids each rule has judged, so that replaying a stream through
//! persisted state (a file run twice, a spool replayed after a crash, a
//! redelivery) does not count an event twice: a repeat is skipped and
//! counted as a duplicate.
//!
//! Bounded per rule, by count (`[limits] judged_max_ids`) and by age on
//! event time (`[limits] judged_window_secs`, measured back from the
//! newest event the rule judged): an id older than any window the rule
//! keeps state for cannot change what the rule concludes anyway. Ids are
//! forgotten oldest first (in the order they were judged).
//!
//! Additions and evictions are written to the store in the same commit as
//! the rule state the event changed (`store::Commit`), so after a crash the
//! two always agree.

use std::collections::{HashMap, HashSet, VecDeque};

/// Judged ids of one rule.
#[derive(Debug, Default)]
struct RuleJudged {
    max: usize,
    window_ms: i64,
    ids: HashSet<String>,
    order: VecDeque<(String, i64)>,
    newest: i64,
}

/// (rule, event id, event time): one event a rule judged.
pub type Judgement = (String, String, i64);

/// Every rule's judged ids, and what changed since the last commit.
#[derive(Debug, Default)]
pub struct Judged {
    rules: HashMap<String, RuleJudged>,
    added: Vec<Judgement>,
    forgotten: Vec<(String, String)>,
}

impl Judged {
    /// Sets a rule's bounds and the ids the store remembers (oldest
    /// first); ids past the bounds are forgotten (and deleted at the next
    /// commit).
    pub fn load(&mut self, rule: &str, max: usize, window_secs: u64, ids: Vec<(String, i64)>) {
        let mut r = RuleJudged {
            max: max.max(1),
            window_ms: i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            ..Default::default()
        };
        for (id, at) in ids {
            r.newest = r.newest.max(at);
            if r.ids.insert(id.clone()) {
                r.order.push_back((id, at));
            }
        }
        let forgotten = r.evict();
        self.forgotten
            .extend(forgotten.into_iter().map(|id| (rule.to_owned(), id)));
        self.rules.insert(rule.to_owned(), r);
    }

    /// Whether `rule` has judged `event_id`.
    pub fn contains(&self, rule: &str, event_id: &str) -> bool {
        self.rules
            .get(rule)
            .is_some_and(|r| r.ids.contains(event_id))
    }

    /// Remembers that `rule` judged `event_id` (event time `at`).
    pub fn insert(&mut self, rule: &str, event_id: &str, at: i64) {
        let r = self
            .rules
            .entry(rule.to_owned())
            .or_insert_with(|| RuleJudged {
                max: crate::config::Limits::default().judged_max_ids,
                window_ms: crate::config::Limits::default().judged_window_secs as i64 * 1000,
                ..Default::default()
            });
        if !r.ids.insert(event_id.to_owned()) {
            return;
        }
        r.order.push_back((event_id.to_owned(), at));
        r.newest = r.newest.max(at);
        self.added.push((rule.to_owned(), event_id.to_owned(), at));
        for id in r.evict() {
            self.forgotten.push((rule.to_owned(), id));
        }
    }

    /// What changed since the last call: (added, forgotten).
    pub fn take_changes(&mut self) -> (Vec<Judgement>, Vec<(String, String)>) {
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
    /// Drops the oldest ids past the count or age bound; returns them.
    fn evict(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let horizon = self.newest.saturating_sub(self.window_ms);
        while let Some((id, at)) = self.order.front() {
            if self.order.len() <= self.max && *at >= horizon {
                break;
            }
            self.ids.remove(id);
            out.push(id.clone());
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
        j.load("r", 3, 10, vec![("a".into(), 1_000)]);
        assert!(j.contains("r", "a"));
        assert!(!j.contains("other", "a"));
        j.insert("r", "b", 2_000);
        j.insert("r", "c", 3_000);
        j.insert("r", "d", 4_000);
        // Count bound: "a" is forgotten.
        assert!(!j.contains("r", "a"));
        assert_eq!(j.len("r"), 3);
        // Age bound: 10 s behind the newest is forgotten.
        j.insert("r", "e", 13_500);
        assert!(!j.contains("r", "b") && !j.contains("r", "c"));
        assert!(j.contains("r", "d") && j.contains("r", "e"));
        let (added, forgotten) = j.take_changes();
        assert_eq!(added.len(), 4);
        let names: Vec<&str> = forgotten.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        // Judging the same id again adds nothing.
        j.insert("r", "e", 13_500);
        assert!(j.take_changes().0.is_empty());
    }

    #[test]
    fn loading_past_the_bound_forgets_at_once() {
        let mut j = Judged::default();
        let ids = (0..5).map(|i| (format!("e{i}"), i * 1_000)).collect();
        j.load("r", 2, 3_600, ids);
        assert_eq!(j.len("r"), 2);
        assert_eq!(j.take_changes().1.len(), 3);
    }
}
