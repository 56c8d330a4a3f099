//! Hostile guest: prints megabytes and returns thousands of findings per event.

use vigil_sdk::*;

pub struct Guest;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-huge-output".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: huge-output".into(),
            subscribes: vec!["*".into()],
            actions: vec![],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let line = "x".repeat(1023);
        for _ in 0..1024 {
            println!("{line}");
        }
        for i in 0..1000 {
            host.log(Level::Info, &format!("log line {i}"));
        }
        Ok((0..10_000)
            .map(|i| Finding::new(Severity::Info, "spam", format!("{}-{i}", event.id())))
            .collect())
    }
}

export_rule!(Guest);
