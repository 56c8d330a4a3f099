//! Test guest for contract v0.2's event reads: subscribed to every kind but
//! only to failed events (an outcome filter), it reports one finding per
//! call whose details are what it read — `raw` at the JSON pointers named
//! in its config (`pointer`, `pointer2`), the attribute named `attribute`,
//! and the event's kind, class and actor — so a test can check exactly
//! what crosses the boundary.

use vigil_sdk::*;

pub struct Guest;

/// `raw`'s answer as one string: the JSON text, `none`, or `error: …`.
fn raw_text(event: &Event, pointer: &str) -> String {
    match event.raw(pointer) {
        Ok(Some(json)) => json,
        Ok(None) => "none".into(),
        Err(e) => format!("error: {e}"),
    }
}

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "event-reader".into(),
            version: "0.0.1".into(),
            description: "test guest: reports what it reads of each failed event".into(),
            subscribes: vec!["*".into()],
            outcomes: vec![Outcome::Failure],
            classes: vec![],
            actions: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let mut finding = Finding::new(Severity::Info, "read", event.id().to_owned())
            .detail("kind", event.kind())
            .detail("class", format!("{:?}", event.class()))
            .detail(
                "actor",
                event.actor().map_or("none".into(), |a| a.id.clone()),
            );
        for key in ["pointer", "pointer2"] {
            if let Some(pointer) = host.config(key) {
                finding = finding.detail(key, raw_text(event, &pointer));
            }
        }
        if let Some(name) = host.config("attribute") {
            finding = finding.detail("attribute", event.attribute(&name).unwrap_or("none"));
        }
        Ok(vec![finding])
    }
}

export_rule!(Guest);
