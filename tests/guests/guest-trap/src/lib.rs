//! Hostile guest: panics on every other call. Shows that a trap ends only
//! that call, that the host rebuilds the instance, and that the rule's
//! host-side state survives the rebuild (the call counter keeps counting).

use vigil_sdk::*;

pub struct Guest;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-trap".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: trap".into(),
            subscribes: vec!["*".into()],
            actions: vec![],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let call = host.counter_add("calls", 7 * 24 * 3600 * 1000, 1);
        if call % 2 == 1 {
            panic!("guest-trap panicked on call {call} (event {})", event.id());
        }
        Ok(vec![
            Finding::new(Severity::Info, "survived", event.id().to_owned()).detail("call", call),
        ])
    }
}

export_rule!(Guest);
