//! Hostile guest: recurses without end (the host's stack limit must stop it).

use vigil_sdk::*;

pub struct Guest;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-recursion".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: recursion".into(),
            subscribes: vec!["*".into()],
            actions: vec![],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(_host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        Ok(vec![Finding::new(
            Severity::Info,
            "unreachable",
            deep(event.time() as u64).to_string(),
        )])
    }
}

// Endless recursion is the point of this guest.
#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    // black_box keeps the compiler from turning this into a loop.
    std::hint::black_box(deep(std::hint::black_box(n + 1))) + 1
}

export_rule!(Guest);
