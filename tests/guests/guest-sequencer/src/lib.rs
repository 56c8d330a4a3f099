//! Test guest for shards: partitioned by subject user, it numbers each
//! user's events in the order it is given them. One finding per event
//! (subject = the event id) with details `user` and `n` (1 for the user's
//! first event, …), so exactly-once judgement and per-key order can be read
//! straight off the audit log, for streams shorter than a week. The
//! numbers live in rule state, so they go on across restarts and across
//! changes of the shard count. With config `shared_key` it counts every
//! user under that one key: a rule that breaks its partition claim; with
//! `spin_user` it never returns from that user's events.

use vigil_sdk::*;

pub struct Guest;

/// The longest window rule state allows (`StateLimits::max_window_ms`).
const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-sequencer".into(),
            version: "0.0.1".into(),
            description: "test guest: numbers each subject user's events".into(),
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
            .map(|p| p.id.clone())
            .unwrap_or_default();
        // A counter over the longest window state allows: every event of
        // the user so far falls in any window around this one (the test
        // streams span less than that), so the total is the arrival number,
        // in time order or not.
        // Config `spin_user`: that user's events never return (a runaway
        // on whichever shard owns the user).
        if host.config("spin_user").as_deref() == Some(user.as_str()) {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        // Config `shared_key`: one key for every user, breaking the
        // declared partition (the host must refuse it).
        let key = host
            .config("shared_key")
            .unwrap_or_else(|| format!("n:{user}"));
        let n = host.counter_add(&key, WEEK_MS, 1);
        Ok(vec![
            Finding::new(Severity::Low, "sequenced", event.id().to_owned())
                .detail("user", user)
                .detail("n", n.to_string()),
        ])
    }
}

export_rule!(Guest);
