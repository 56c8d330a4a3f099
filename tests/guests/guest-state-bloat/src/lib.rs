//! Hostile guest: on every event, stores about 66 MB of state (1,100 fresh
//! keys of 60,000 bytes, under the per-value limit) and never lets it
//! expire. Without a byte budget, eight events would grow the host by
//! half a gigabyte and a long stream to an OOM; the host's
//! `state_max_bytes` must stop it.

use vigil_sdk::*;

pub struct Guest;

const VALUES_PER_EVENT: usize = 1_100;
const VALUE_BYTES: usize = 60_000;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-state-bloat".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: state-bloat".into(),
            subscribes: vec!["*".into()],
            actions: vec![],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let big = "x".repeat(VALUE_BYTES);
        for i in 0..VALUES_PER_EVENT {
            host.set(&format!("k-{}-{i}", event.id()), &big, None);
        }
        Ok(Vec::new())
    }
}

export_rule!(Guest);
