//! The pipeline watchdog: notices when the pipeline thread has work and
//! makes no progress, so `/readyz` can answer 503 naming the rule it is
//! stuck in and `/metrics` can say so.
//!
//! The pipeline thread writes, the HTTP handlers read. Writes are cheap
//! and happen only at a few points: once per turn of the pipeline loop
//! ([`Watchdog::progress`]) and at the start and end of each rule call
//! (an atomic store each, plus copying the rule id into a buffer that is
//! reused, so no allocation per call). Reads take the same small lock.
//!
//! Invariant: "stalled" means work is waiting — a delivery in the queue,
//! or a rule call under way — and nothing moved for `limit`. An idle
//! pipeline is never stalled: its loop turns every poll interval.
//!
//! [`Health`] gathers it with the other facts `/readyz` reports.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// No rule call is under way.
const NONE: u64 = u64::MAX;

/// Progress stamps of the pipeline thread; see the module documentation.
pub struct Watchdog {
    epoch: Instant,
    limit: Duration,
    /// Milliseconds since `epoch` of the last progress.
    last_progress_ms: AtomicU64,
    /// Milliseconds since `epoch` when the current rule call started, or
    /// [`NONE`].
    call_started_ms: AtomicU64,
    /// The id of the rule being called (valid while `call_started_ms` is
    /// not `NONE`).
    rule: Mutex<String>,
}

/// What the watchdog sees now.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineStatus {
    /// Time since the pipeline last made progress.
    pub since_progress: Duration,
    /// Work is waiting and nothing moved for the watchdog's limit.
    pub stalled: bool,
    /// The rule being called and for how long, if a call is under way.
    pub in_call: Option<(String, Duration)>,
}

impl PipelineStatus {
    /// The `/readyz` reason when stalled: names the rule, or says the
    /// pipeline is stuck outside a rule call.
    pub fn reason(&self) -> Option<String> {
        if !self.stalled {
            return None;
        }
        let secs = self.since_progress.as_secs();
        Some(match &self.in_call {
            Some((rule, running)) => format!(
                "the pipeline is stuck: rule {rule} has been running for {} s (no progress for {secs} s)",
                running.as_secs()
            ),
            None => format!(
                "the pipeline is stuck outside a rule call: no progress for {secs} s with deliveries queued"
            ),
        })
    }
}

impl Watchdog {
    /// A watchdog that reports a stall after `limit` without progress.
    pub fn new(limit: Duration) -> Self {
        Watchdog {
            epoch: Instant::now(),
            limit,
            last_progress_ms: AtomicU64::new(0),
            call_started_ms: AtomicU64::new(NONE),
            rule: Mutex::new(String::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The pipeline loop came around (it took a batch, or waited idle).
    pub fn progress(&self) {
        self.last_progress_ms.store(self.now_ms(), Ordering::SeqCst);
    }

    /// A rule call starts: remembered until [`Watchdog::rule_finished`].
    pub fn rule_started(&self, rule: &str) {
        {
            let mut current = self.rule.lock().unwrap_or_else(|e| e.into_inner());
            current.clear();
            current.push_str(rule);
        }
        let now = self.now_ms();
        self.call_started_ms.store(now, Ordering::SeqCst);
        self.last_progress_ms.store(now, Ordering::SeqCst);
    }

    /// The rule call under way returned (or faulted).
    pub fn rule_finished(&self) {
        self.call_started_ms.store(NONE, Ordering::SeqCst);
        self.progress();
    }

    /// The status now, with `queue_depth` deliveries waiting.
    pub fn status(&self, queue_depth: usize) -> PipelineStatus {
        let now = self.now_ms();
        let since_progress =
            Duration::from_millis(now.saturating_sub(self.last_progress_ms.load(Ordering::SeqCst)));
        let in_call = {
            // Read under the lock so the name and the start belong to the
            // same call.
            let rule = self.rule.lock().unwrap_or_else(|e| e.into_inner());
            let started = self.call_started_ms.load(Ordering::SeqCst);
            (started != NONE).then(|| {
                (
                    rule.clone(),
                    Duration::from_millis(now.saturating_sub(started)),
                )
            })
        };
        let waiting = queue_depth > 0 || in_call.is_some();
        PipelineStatus {
            since_progress,
            stalled: waiting && since_progress >= self.limit,
            in_call,
        }
    }
}

/// What the pipeline thread and the service report to `/readyz`.
pub struct Health {
    pub pipeline_alive: AtomicBool,
    pub audit_ok: AtomicBool,
    pub stopping: AtomicBool,
    pub rules: AtomicUsize,
    /// The pipeline thread's progress stamps (`server.watchdog_secs`).
    pub watchdog: Arc<Watchdog>,
}

impl Health {
    /// Nothing ready yet; a stall is reported after `watchdog` without
    /// progress.
    pub fn new(watchdog: std::time::Duration) -> Self {
        Health {
            pipeline_alive: AtomicBool::new(false),
            audit_ok: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            rules: AtomicUsize::new(0),
            watchdog: Arc::new(Watchdog::new(watchdog)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An idle pipeline (nothing queued, no call) is never stalled, however
    // long ago it last moved.
    #[test]
    fn idle_is_not_stalled() {
        let w = Watchdog::new(Duration::ZERO);
        let s = w.status(0);
        assert!(!s.stalled);
        assert_eq!(s.reason(), None);
    }

    // A call under way past the limit is a stall naming the rule; it ends
    // when the call returns.
    #[test]
    fn a_long_call_is_named() {
        let w = Watchdog::new(Duration::ZERO);
        w.rule_started("slow-rule");
        let s = w.status(0);
        assert!(s.stalled);
        assert_eq!(s.in_call.as_ref().map(|c| c.0.as_str()), Some("slow-rule"));
        assert!(s.reason().unwrap().contains("rule slow-rule"), "{s:?}");
        w.rule_finished();
        assert!(!w.status(0).stalled);
    }

    // Queued work with no call under way is a stall outside a rule.
    #[test]
    fn queued_work_without_progress_is_a_stall() {
        let w = Watchdog::new(Duration::ZERO);
        let s = w.status(3);
        assert!(s.stalled);
        assert!(s.reason().unwrap().contains("outside a rule call"));
    }

    // Within the limit nothing is reported, even with work waiting.
    #[test]
    fn within_the_limit_is_fine() {
        let w = Watchdog::new(Duration::from_secs(3600));
        w.rule_started("r");
        assert!(!w.status(5).stalled);
    }

    // A second call reuses the buffer and reports its own rule.
    #[test]
    fn the_name_follows_the_call() {
        let w = Watchdog::new(Duration::ZERO);
        w.rule_started("a-much-longer-rule-name");
        w.rule_finished();
        w.rule_started("b");
        assert_eq!(w.status(0).in_call.unwrap().0, "b");
    }
}
