//! Hostile guest: stores a fresh key per event and never lets it expire
//! (the host's state key limit must stop it).

use vigil_sdk::*;

pub struct Guest;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-state-hog".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: state-hog".into(),
            subscribes: vec!["*".into()],
            actions: vec![],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        host.set(&format!("k-{}", event.id()), "v", None);
        Ok(Vec::new())
    }
}

export_rule!(Guest);
