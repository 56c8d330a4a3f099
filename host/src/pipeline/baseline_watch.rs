//! The watch on the MFA baseline: after a policy-change event, and every
//! `[baseline] check_secs`, each identity provider's MFA configuration is
//! read and compared with its approved baseline (`crate::baseline`). A
//! weakening not reported yet is a finding of the host, under the rule id
//! `vigil.baseline`, carrying the changes in words.
//!
//! - Reads are coalesced: a burst of policy-change events reads each
//!   provider at most once per [`MIN_GAP_MS`]; the check then runs at the
//!   next event or idle tick.
//! - Each weakening is reported once per approved version: a weakening that
//!   goes away (restored) and comes back is reported again. What was
//!   reported is kept in the store ([`REPORTED_KEY`]), so a restart does
//!   not report it twice.
//! - A provider that cannot be read is logged and tried again at the next
//!   trigger; the events go on (a check is advice, not a gate).
//!
//! Applications: when an application event comes in (`Event::app_ids`:
//! Okta `application.*`, Entra application and service principal audits),
//! before the rules act on it, each application's sign-in is read and
//! judged (`crate::baseline::apps`); one that can be signed in to without
//! MFA is a finding of the host under `vigil.app-mfa`, once per application
//! and reason (kept in the store too). These reads run on the pipeline
//! thread, so one application is read at most once per [`MIN_GAP_MS`]: a
//! burst of updates to one app costs one read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::Entry;
use crate::baseline::{Change, Drift, FINDING_RULE};
use crate::model::baseline::AppSignIn;

/// The rule id of host findings about applications reachable without MFA.
pub const APP_FINDING_RULE: &str = "vigil.app-mfa";

/// The store `meta` key of what was reported ([`BaselineWatch::unsaved`]).
pub const REPORTED_KEY: &str = "baseline-watch:reported";

/// What was reported, as the watch keeps it and the store between runs.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Reported {
    /// Per provider: the approved version and the weakenings reported.
    baselines: BTreeMap<String, (i64, BTreeSet<String>)>,
    /// Application and reason.
    apps: BTreeSet<(String, String)>,
}

/// Least time between two reads of one provider's configuration.
pub const MIN_GAP_MS: i64 = 5_000;

/// The watch's memory between checks.
pub struct BaselineWatch {
    /// `[baseline] check_secs` in ms; 0: only after policy changes.
    interval_ms: i64,
    next_scheduled_ms: Option<i64>,
    /// Providers with a policy change since their last check, and the
    /// first event that showed it.
    dirty: BTreeMap<String, String>,
    last_check_ms: HashMap<String, i64>,
    /// Applications read within the last [`MIN_GAP_MS`], and when.
    apps_read_ms: HashMap<String, i64>,
    reported: Reported,
    /// `reported` as last handed out for the store.
    saved: String,
}

impl BaselineWatch {
    pub fn new(check_secs: u64, now_ms: i64) -> Self {
        let interval_ms = (check_secs as i64).saturating_mul(1000);
        BaselineWatch {
            interval_ms,
            next_scheduled_ms: (interval_ms > 0).then_some(now_ms.saturating_add(interval_ms)),
            dirty: BTreeMap::new(),
            last_check_ms: HashMap::new(),
            apps_read_ms: HashMap::new(),
            reported: Reported::default(),
            saved: String::new(),
        }
    }

    /// Sets the schedule (`[baseline] check_secs`) from `now_ms`, keeping
    /// what was reported.
    pub fn set_interval(&mut self, check_secs: u64, now_ms: i64) {
        let fresh = BaselineWatch::new(check_secs, now_ms);
        self.interval_ms = fresh.interval_ms;
        self.next_scheduled_ms = fresh.next_scheduled_ms;
    }

    /// What was reported, for the store, when it changed since the last
    /// time this was asked.
    pub fn unsaved(&mut self) -> Option<String> {
        let json = serde_json::to_string(&self.reported).unwrap_or_default();
        (json != self.saved).then(|| {
            self.saved = json.clone();
            json
        })
    }

    /// Takes back what an earlier run reported ([`REPORTED_KEY`]). A value
    /// that cannot be read is dropped with a warning: the weakenings are
    /// then reported again, never hidden.
    pub fn restore_reported(&mut self, json: &str) {
        match serde_json::from_str::<Reported>(json) {
            Ok(r) => {
                self.reported = r;
                self.saved = json.to_owned();
            }
            Err(e) => tracing::warn!(
                "the baseline watch's record of reported weakenings is unreadable ({e}); \
                 weakenings still present are reported again"
            ),
        }
    }

    /// The finding for an application reachable without MFA (`gap`), unless
    /// already reported; a closed gap is forgotten.
    pub fn app_finding(
        &mut self,
        provider: &str,
        app: &AppSignIn,
        gap: Option<&str>,
        event_id: &str,
    ) -> Option<Entry> {
        let apps = &mut self.reported.apps;
        let Some(gap) = gap else {
            apps.retain(|(a, _)| *a != app.app);
            return None;
        };
        if !apps.insert((app.app.clone(), gap.to_owned())) {
            return None;
        }
        let policy = app
            .policies
            .first()
            .map(|p| format!("{} ({})", p.name, p.id))
            .unwrap_or_else(|| "none".to_owned());
        Some(
            Entry::new("finding")
                .rule(APP_FINDING_RULE)
                .event(event_id)
                .field("severity", "high")
                .field(
                    "title",
                    format!("application '{}' can be signed in to without MFA", app.name),
                )
                .field("subject", app.app.as_str())
                .field(
                    "details",
                    json!({
                        "provider": provider,
                        "app": app.app,
                        "app_name": app.name,
                        "policy": policy,
                        "reason": gap,
                        "remedy": "assign-app-policy to an MFA policy, or fix the policy's rules",
                    }),
                )
                .field("trigger", "application event"),
        )
    }

    /// Whether application `app` is to be read now: not when it was read
    /// within the last [`MIN_GAP_MS`]. Older entries are forgotten, so the
    /// memory holds only the applications of the last few seconds.
    pub fn app_due(&mut self, app: &str, now_ms: i64) -> bool {
        self.apps_read_ms.retain(|_, at| now_ms - *at < MIN_GAP_MS);
        if self.apps_read_ms.contains_key(app) {
            return false;
        }
        self.apps_read_ms.insert(app.to_owned(), now_ms);
        true
    }

    /// A policy-change event from `provider`'s directory.
    pub fn note_change(&mut self, provider: &str, event_id: &str) {
        self.dirty
            .entry(provider.to_owned())
            .or_insert_with(|| event_id.to_owned());
    }

    /// Whether a check may be due (cheap: called after every event).
    pub fn may_be_due(&self, now_ms: i64) -> bool {
        !self.dirty.is_empty() || self.next_scheduled_ms.is_some_and(|t| t <= now_ms)
    }

    /// The providers to check now, each with the event that prompted it
    /// (`None`: the schedule). `all` lists the configured providers.
    pub fn take_due(&mut self, all: &[String], now_ms: i64) -> Vec<(String, Option<String>)> {
        let scheduled = self.next_scheduled_ms.is_some_and(|t| t <= now_ms);
        if scheduled {
            self.next_scheduled_ms = Some(now_ms.saturating_add(self.interval_ms));
        }
        let mut due = Vec::new();
        for provider in all {
            let recent = self
                .last_check_ms
                .get(provider)
                .is_some_and(|t| now_ms - t < MIN_GAP_MS);
            let trigger = if recent {
                None
            } else {
                self.dirty.remove(provider)
            };
            if trigger.is_some() || (scheduled && !recent) {
                self.last_check_ms.insert(provider.clone(), now_ms);
                due.push((provider.clone(), trigger));
            }
        }
        // Changes from a source no configured provider serves are dropped.
        self.dirty.retain(|p, _| all.contains(p));
        due
    }

    /// The findings a drift calls for: one per object with a weakening not
    /// reported yet against this approved version.
    pub fn findings(&mut self, drift: &Drift, trigger: Option<&str>) -> Vec<Entry> {
        let Some(approved) = &drift.approved else {
            return Vec::new();
        };
        let now: Vec<&Change> = drift.weakenings().collect();
        let (version, seen) = self
            .reported
            .baselines
            .entry(drift.provider.clone())
            .or_insert_with(|| (approved.version, BTreeSet::new()));
        if *version != approved.version {
            *version = approved.version;
            seen.clear();
        }
        // Forget what was put right, so it is reported if it comes back.
        seen.retain(|s| now.iter().any(|c| key(c) == *s));
        let mut by_object: BTreeMap<(String, String), Vec<&Change>> = BTreeMap::new();
        for change in now {
            if seen.insert(key(change)) {
                by_object
                    .entry((change.object_id.clone(), change.object_name.clone()))
                    .or_default()
                    .push(change);
            }
        }
        by_object
            .into_iter()
            .map(|((id, name), changes)| {
                let noun = changes[0].kind.noun();
                let mut details = serde_json::Map::new();
                details.insert("provider".into(), json!(drift.provider));
                details.insert(
                    "baseline_version".into(),
                    json!(approved.version.to_string()),
                );
                for (i, c) in changes.iter().enumerate() {
                    details.insert(format!("change_{}", i + 1), json!(c.summary));
                }
                details.insert(
                    "remedy".into(),
                    json!(format!(
                        "restore-policy {id} (or `vigil baseline approve` if the change is wanted)"
                    )),
                );
                let mut entry = Entry::new("finding").rule(FINDING_RULE);
                if let Some(event) = trigger {
                    entry = entry.event(event);
                }
                entry
                    .field("severity", "high")
                    .field(
                        "title",
                        format!(
                            "MFA weakened relative to the approved baseline: {noun} '{name}' ({} \
                             change{})",
                            changes.len(),
                            if changes.len() == 1 { "" } else { "s" }
                        ),
                    )
                    .field("subject", id.as_str())
                    .field("details", serde_json::Value::Object(details))
                    .field("changes", json!(changes))
                    .field(
                        "trigger",
                        if trigger.is_some() {
                            "policy-change event"
                        } else {
                            "scheduled check"
                        },
                    )
            })
            .collect()
    }
}

/// What identifies one reported weakening.
fn key(c: &Change) -> String {
    format!("{}\u{1f}{}", c.object_id, c.summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_changes_reads_each_provider_once_per_gap() {
        let mut w = BaselineWatch::new(0, 0);
        let all = vec!["okta".to_owned(), "graph".to_owned()];
        assert!(!w.may_be_due(0));
        w.note_change("okta", "e1");
        w.note_change("okta", "e2");
        assert!(w.may_be_due(0));
        assert_eq!(
            w.take_due(&all, 10),
            vec![("okta".into(), Some("e1".into()))]
        );
        w.note_change("okta", "e3");
        assert!(w.take_due(&all, 1_000).is_empty(), "within the gap");
        assert_eq!(
            w.take_due(&all, 10 + MIN_GAP_MS),
            vec![("okta".into(), Some("e3".into()))]
        );
        w.note_change("nowhere", "e4");
        assert!(w.take_due(&all, 100_000).is_empty());
        assert!(!w.may_be_due(100_000));
    }

    #[test]
    fn the_schedule_checks_every_provider() {
        let mut w = BaselineWatch::new(60, 0);
        let all = vec!["okta".to_owned()];
        assert!(!w.may_be_due(59_999));
        assert_eq!(w.take_due(&all, 60_000), vec![("okta".into(), None)]);
        assert!(!w.may_be_due(60_001));
        assert!(w.may_be_due(120_000));
    }

    #[test]
    fn what_was_reported_survives_a_round_trip_and_bad_json_reports_again() {
        let mut w = BaselineWatch::new(0, 0);
        w.reported.baselines.insert(
            "okta".into(),
            (3, BTreeSet::from(["00p1\u{1f}weaker".to_owned()])),
        );
        w.reported.apps.insert(("0oa1".into(), "no policy".into()));
        let json = w.unsaved().expect("changed");
        assert_eq!(w.unsaved(), None, "unchanged: nothing to write");
        let mut back = BaselineWatch::new(60, 0);
        back.restore_reported(&json);
        assert_eq!(back.reported, w.reported);
        assert_eq!(back.unsaved(), None, "just read from the store");
        back.restore_reported("{not json");
        assert_eq!(back.reported, w.reported, "unreadable: kept as it was");
    }

    #[test]
    fn an_application_is_read_once_per_gap() {
        let mut w = BaselineWatch::new(0, 0);
        assert!(w.app_due("0oa1", 0));
        assert!(!w.app_due("0oa1", 1_000));
        assert!(w.app_due("0oa2", 1_000));
        assert!(w.app_due("0oa1", MIN_GAP_MS));
        assert_eq!(
            w.apps_read_ms.len(),
            2,
            "0oa2 is still recent, nothing older kept"
        );
    }
}
