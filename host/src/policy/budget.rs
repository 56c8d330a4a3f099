//! Blast-radius budgets and the circuit breaker.
//!
//! Every action the gate would let execute is counted against three limits
//! over a sliding window of wall-clock time (`[budgets] window_secs`):
//! the rule's own limit for that kind, the global limit for that kind, and
//! — for user-targeting kinds — a fraction of the distinct users seen
//! recently (so a rule cannot suspend half the company however its limits
//! are set). A request over any limit is denied (`budget`), and the
//! requesting rule's breaker trips: until an operator resets it (or the
//! optional cool-down passes) the rule is held in audit-only, so a runaway
//! rule or a poisoned feed turns into records, not lockouts.
//!
//! Wall-clock time, not event time: the budget protects the identity
//! provider from what Vigil does *now*, however old the events.
//!
//! The state lives in memory for speed; changes (usage and trips) are
//! taken by the pipeline and written to the durable store at each sync,
//! which always happens before an accepted action executes, so a restart
//! never forgets what was spent.

use std::collections::{HashMap, VecDeque};

use crate::config::BudgetsConfig;
use crate::model::ActionKind;
use crate::store::{Store, StoredBreaker};

/// Scope name of the global budget.
pub const GLOBAL: &str = "*";
/// Most distinct users remembered for the fraction ceiling.
const MAX_USERS: usize = 1_000_000;

/// A tripped breaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trip {
    pub at_ms: i64,
    pub reason: String,
}

/// A change to persist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakerChange {
    Tripped { rule: String, trip: Trip },
    Reset { rule: String, by: String },
}

#[derive(Debug, Default)]
pub struct Budgets {
    config: BudgetsConfig,
    /// (scope, kind) → times of counted actions, oldest first.
    usage: HashMap<(String, &'static str), VecDeque<i64>>,
    /// Distinct user → last seen (wall ms).
    users: HashMap<String, i64>,
    breakers: HashMap<String, Trip>,
    new_usage: Vec<(String, String, i64)>,
    /// Counted usage given back (scope, kind), not yet persisted.
    refunds: Vec<(String, String)>,
    changes: Vec<BreakerChange>,
}

impl Budgets {
    pub fn new(config: BudgetsConfig) -> Self {
        Budgets {
            config,
            ..Budgets::default()
        }
    }

    pub fn config(&self) -> &BudgetsConfig {
        &self.config
    }

    fn window_ms(&self) -> i64 {
        self.config.window_secs as i64 * 1000
    }

    /// Loads usage still inside the window and the tripped breakers.
    pub fn load(&mut self, store: &Store, now_ms: i64) -> anyhow::Result<()> {
        for (scope, kind, at) in store.load_budget_usage(now_ms - self.window_ms())? {
            if let Some(k) = ActionKind::from_name(&kind) {
                self.usage
                    .entry((scope, k.name()))
                    .or_default()
                    .push_back(at);
            }
        }
        for StoredBreaker {
            rule,
            tripped_ms,
            reason,
        } in store.breakers()?
        {
            self.breakers.insert(
                rule,
                Trip {
                    at_ms: tripped_ms,
                    reason,
                },
            );
        }
        Ok(())
    }

    /// Notes a user seen in an event (for the fraction ceiling).
    pub fn observe_user(&mut self, id: &str, now_ms: i64) {
        if let Some(seen) = self.users.get_mut(id) {
            *seen = now_ms;
            return;
        }
        if self.users.len() >= MAX_USERS {
            let horizon = now_ms - self.config.users_window_secs as i64 * 1000;
            self.users.retain(|_, seen| *seen > horizon);
            if self.users.len() >= MAX_USERS {
                return;
            }
        }
        self.users.insert(id.to_owned(), now_ms);
    }

    fn users_seen(&self, now_ms: i64) -> u64 {
        let horizon = now_ms - self.config.users_window_secs as i64 * 1000;
        self.users.values().filter(|t| **t > horizon).count() as u64
    }

    fn used(&mut self, scope: &str, kind: ActionKind, now_ms: i64) -> u32 {
        let start = now_ms - self.window_ms();
        match self.usage.get_mut(&(scope.to_owned(), kind.name())) {
            Some(times) => {
                while times.front().is_some_and(|t| *t <= start) {
                    times.pop_front();
                }
                times.len() as u32
            }
            None => 0,
        }
    }

    /// Whether one more `kind` by `rule` fits every limit; `Err` says which
    /// limit it would break.
    pub fn check(
        &mut self,
        rule: &str,
        kind: ActionKind,
        rule_limit: u32,
        now_ms: i64,
    ) -> Result<(), String> {
        let window = self.config.window_secs;
        let used = self.used(rule, kind, now_ms);
        if used >= rule_limit {
            return Err(format!(
                "budget of rule {rule}: {used} of {rule_limit} {} per {window} s used",
                kind.name()
            ));
        }
        let global_limit = self.config.global_limit(kind);
        let used = self.used(GLOBAL, kind, now_ms);
        if used >= global_limit {
            return Err(format!(
                "global budget: {used} of {global_limit} {} per {window} s used",
                kind.name()
            ));
        }
        if kind.targets_user() {
            let seen = self.users_seen(now_ms);
            if seen >= self.config.fraction_min_users {
                let ceiling = ((seen as f64) * self.config.max_user_fraction).ceil() as u32;
                if used >= ceiling.max(1) {
                    return Err(format!(
                        "user ceiling: {used} {} per {window} s already reach {:.0}% of the {seen} users seen",
                        kind.name(),
                        self.config.max_user_fraction * 100.0
                    ));
                }
            }
        }
        Ok(())
    }

    /// Counts one `kind` by `rule` against both budgets.
    pub fn consume(&mut self, rule: &str, kind: ActionKind, now_ms: i64) {
        for scope in [rule, GLOBAL] {
            self.usage
                .entry((scope.to_owned(), kind.name()))
                .or_default()
                .push_back(now_ms);
            self.new_usage
                .push((scope.to_owned(), kind.name().to_owned(), now_ms));
        }
    }

    /// Gives back the last `kind` counted for `rule` (and globally): the
    /// executor found it was a duplicate, so nothing was done.
    pub fn refund(&mut self, rule: &str, kind: ActionKind) {
        for scope in [rule, GLOBAL] {
            if let Some(times) = self.usage.get_mut(&(scope.to_owned(), kind.name()))
                && times.pop_back().is_some()
            {
                self.refunds
                    .push((scope.to_owned(), kind.name().to_owned()));
            }
        }
    }

    /// The rule's breaker, if tripped (a trip past its cool-down resets).
    pub fn tripped(&mut self, rule: &str, now_ms: i64) -> Option<&Trip> {
        let cooldown = self.config.cooldown_secs as i64 * 1000;
        if cooldown > 0
            && self
                .breakers
                .get(rule)
                .is_some_and(|t| now_ms - t.at_ms >= cooldown)
        {
            self.breakers.remove(rule);
            self.changes.push(BreakerChange::Reset {
                rule: rule.to_owned(),
                by: "cool-down".to_owned(),
            });
        }
        self.breakers.get(rule)
    }

    pub fn is_tripped(&self, rule: &str) -> bool {
        self.breakers.contains_key(rule)
    }

    /// Trips the rule's breaker; false if it already was.
    pub fn trip(&mut self, rule: &str, reason: &str, now_ms: i64) -> bool {
        if self.breakers.contains_key(rule) {
            return false;
        }
        let trip = Trip {
            at_ms: now_ms,
            reason: reason.to_owned(),
        };
        self.breakers.insert(rule.to_owned(), trip.clone());
        self.changes.push(BreakerChange::Tripped {
            rule: rule.to_owned(),
            trip,
        });
        true
    }

    /// Resets the rule's breaker; false if it was not tripped.
    pub fn reset(&mut self, rule: &str, by: &str) -> bool {
        if self.breakers.remove(rule).is_none() {
            return false;
        }
        self.changes.push(BreakerChange::Reset {
            rule: rule.to_owned(),
            by: by.to_owned(),
        });
        true
    }

    pub fn tripped_rules(&self) -> Vec<String> {
        self.breakers.keys().cloned().collect()
    }

    /// Every tripped breaker with when and why, by rule (read only: a
    /// cool-down is applied by [`Budgets::tripped`], not here).
    pub fn trips(&self) -> Vec<(String, Trip)> {
        let mut trips: Vec<(String, Trip)> = self
            .breakers
            .iter()
            .map(|(rule, trip)| (rule.clone(), trip.clone()))
            .collect();
        trips.sort_by(|a, b| a.0.cmp(&b.0));
        trips
    }

    /// Usage counted and refunded since the last call, for the store.
    #[allow(clippy::type_complexity)]
    pub fn take_usage(&mut self) -> (Vec<(String, String, i64)>, Vec<(String, String)>) {
        (
            std::mem::take(&mut self.new_usage),
            std::mem::take(&mut self.refunds),
        )
    }

    /// Breaker trips and resets since the last call, for the audit log and
    /// the store.
    pub fn take_breaker_changes(&mut self) -> Vec<BreakerChange> {
        std::mem::take(&mut self.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets() -> Budgets {
        let mut c = BudgetsConfig::default();
        c.per_rule.insert("suspend-user".into(), 3);
        c.global.insert("suspend-user".into(), 5);
        Budgets::new(c)
    }

    #[test]
    fn per_rule_then_global_limits_deny_and_the_window_slides() {
        let mut b = budgets();
        let limit = b
            .config()
            .rule_limit(ActionKind::SuspendUser, &Default::default());
        assert_eq!(limit, 3);
        for t in 0..3 {
            b.check("r1", ActionKind::SuspendUser, limit, t).unwrap();
            b.consume("r1", ActionKind::SuspendUser, t);
        }
        let err = b
            .check("r1", ActionKind::SuspendUser, limit, 3)
            .unwrap_err();
        assert!(err.contains("budget of rule r1: 3 of 3"), "{err}");
        for t in 3..5 {
            b.check("r2", ActionKind::SuspendUser, limit, t).unwrap();
            b.consume("r2", ActionKind::SuspendUser, t);
        }
        let err = b
            .check("r3", ActionKind::SuspendUser, limit, 5)
            .unwrap_err();
        assert!(err.contains("global budget: 5 of 5"), "{err}");
        // Ten minutes after the first ones, room again.
        b.check("r1", ActionKind::SuspendUser, limit, 600_000 + 10)
            .unwrap();
    }

    #[test]
    fn the_user_fraction_caps_user_actions_once_enough_users_are_seen() {
        let mut b = Budgets::new(BudgetsConfig {
            fraction_min_users: 10,
            max_user_fraction: 0.2,
            ..BudgetsConfig::default()
        });
        for i in 0..10 {
            b.observe_user(&format!("u{i}"), 0);
        }
        for t in 0..2 {
            b.check("r", ActionKind::SuspendUser, 100, t).unwrap();
            b.consume("r", ActionKind::SuspendUser, t);
        }
        let err = b.check("r", ActionKind::SuspendUser, 100, 3).unwrap_err();
        assert!(err.contains("20% of the 10 users"), "{err}");
        // Not a user action: not capped by the fraction.
        b.check("r", ActionKind::BlockIp, 100, 3).unwrap();
    }

    #[test]
    fn breakers_trip_once_reset_and_cool_down() {
        let mut b = budgets();
        assert!(b.trip("r", "budget", 0));
        assert!(!b.trip("r", "budget", 1));
        assert!(b.tripped("r", 10).is_some());
        assert!(b.reset("r", "alice"));
        assert!(!b.reset("r", "alice"));
        assert_eq!(b.take_breaker_changes().len(), 2);

        let mut b = Budgets::new(BudgetsConfig {
            cooldown_secs: 60,
            ..BudgetsConfig::default()
        });
        b.trip("r", "budget", 0);
        assert!(b.tripped("r", 59_999).is_some());
        assert!(b.tripped("r", 60_000).is_none());
    }

    #[test]
    fn usage_and_trips_survive_a_reload() {
        let store = Store::in_memory().unwrap();
        let mut b = budgets();
        b.consume("r1", ActionKind::SuspendUser, 1_000);
        b.trip("r1", "budget of rule r1", 1_000);
        store.add_budget_usage(&b.take_usage().0).unwrap();
        for c in b.take_breaker_changes() {
            if let BreakerChange::Tripped { rule, trip } = c {
                store.trip_breaker(&rule, trip.at_ms, &trip.reason).unwrap();
            }
        }
        let mut again = budgets();
        again.load(&store, 2_000).unwrap();
        assert_eq!(again.used("r1", ActionKind::SuspendUser, 2_000), 1);
        assert_eq!(again.used(GLOBAL, ActionKind::SuspendUser, 2_000), 1);
        assert!(again.is_tripped("r1"));
    }
}
