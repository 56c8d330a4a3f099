//! Hostile guest: never returns from `on-event` (the host's deadline must stop it).

use vigil_sdk::*;

pub struct Guest;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-loop".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: loop".into(),
            subscribes: vec!["*".into()],
            actions: vec![],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(_host: &mut dyn Host, _event: &Event) -> Result<Vec<Finding>, String> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export_rule!(Guest);
