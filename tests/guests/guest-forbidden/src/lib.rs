//! Hostile guest: asks for an action it declared but was not granted, and one it never
//! declared; reports the denials it received so a test can see them as values.

use vigil_sdk::*;

pub struct Guest;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-forbidden".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: forbidden".into(),
            subscribes: vec!["*".into()],
            actions: vec![ActionKind::BlockIp, ActionKind::Escalate],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let block = host.request(&Action::BlockIp(BlockIp {
            ip: "203.0.113.7".into(),
            duration_secs: Some(60),
        }));
        let reset = host.request(&Action::ResetFactors(
            event
                .subject_user()
                .map(|u| u.id.clone())
                .unwrap_or_default(),
        ));
        Ok(vec![
            Finding::new(Severity::Low, "forbidden requests", event.id().to_owned())
                .detail("block_ip", describe(&block))
                .detail("reset_factors", describe(&reset)),
        ])
    }
}

export_rule!(Guest);
