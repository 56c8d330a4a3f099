//! Hostile guest: tries to turn every event into megabytes of audit log
//! without any grant. Calls alternate between
//! - `requests` action requests (default 1000), each with a
//!   `target_kib`-KiB target (default 1024) or a notify with a summary and
//!   details of that size — all denied, since nothing is granted;
//! - `findings` findings (default 100), each with a `finding_kib`-KiB
//!   subject (default 64) and details.
//!
//! The call number is kept in host state, which survives instance rebuilds.

use vigil_sdk::*;

pub struct Guest;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-amplify".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: audit-log amplification".into(),
            subscribes: vec!["*".into()],
            actions: vec![ActionKind::SuspendUser, ActionKind::Notify],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let call: u64 = host.get("call").and_then(|c| c.parse().ok()).unwrap_or(0) + 1;
        host.set("call", &call.to_string(), None);
        let requests = host.config_u64("requests", 1000)?;
        let target_kib = host.config_u64("target_kib", 1024)? as usize;
        let findings = host.config_u64("findings", 100)?;
        let finding_kib = host.config_u64("finding_kib", 64)? as usize;

        if call % 2 == 1 {
            let huge = "u".repeat(target_kib * 1024);
            let details: Vec<(String, String)> = (0..64)
                .map(|i| (format!("detail-{i}"), "d".repeat(target_kib * 16)))
                .collect();
            for i in 0..requests {
                let action = if i % 2 == 0 {
                    Action::SuspendUser(SuspendUser {
                        user: format!("{huge}{i}"),
                        duration_secs: None,
                    })
                } else {
                    Action::Notify(Message {
                        severity: Severity::Critical,
                        summary: huge.clone(),
                        details: details.clone(),
                    })
                };
                // Denied (not granted) every time; the answer is ignored.
                let _ = host.request(&action);
            }
            return Ok(Vec::new());
        }
        let subject = "s".repeat(finding_kib * 1024);
        Ok((0..findings)
            .map(|i| {
                Finding::new(Severity::Critical, "amplified", format!("{subject}{i}"))
                    .detail("event", event.id().to_owned())
                    .detail("padding", "p".repeat(finding_kib * 256))
            })
            .collect())
    }
}

export_rule!(Guest);
