//! {{name}}: a user denies `threshold` (default 3) Okta Verify pushes within
//! 5 minutes → a finding and an escalation.

use vigil_sdk::*;

pub struct MyRule;

const WINDOW_MS: u64 = 5 * 60_000;

impl Rule for MyRule {
    fn metadata() -> Metadata {
        Metadata {
            id: "{{name}}".into(),
            version: "0.1.0".into(),
            description: "Escalates when a user denies several MFA pushes in 5 minutes".into(),
            subscribes: vec!["user.mfa.okta_verify.deny_push".into()],
            actions: vec![ActionKind::Escalate],
            outcomes: vec![], // any outcome
            classes: vec![],  // any class
            // Its state is keyed by the user the event is about.
            partition: PartitionKey::SubjectUser,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let Some(user) = event.subject_user() else {
            return Ok(Vec::new());
        };
        let threshold = host.config_u64("threshold", 3)?;
        let denials = host.counter_add(&format!("deny:{}", user.id), WINDOW_MS, 1);
        if denials != threshold {
            return Ok(Vec::new());
        }
        let login = user.login.clone().unwrap_or_else(|| user.id.clone());
        let answer = host.request(&Action::Escalate(Message {
            severity: Severity::High,
            summary: format!("{login} denied {denials} MFA pushes in 5 minutes"),
            details: vec![("user".into(), user.id.clone())],
        }));
        Ok(vec![
            Finding::new(Severity::High, format!("Denied pushes for {login}"), user.id.clone())
                .detail("denials", denials)
                .detail("escalate", describe(&answer)),
        ])
    }
}

export_rule!(MyRule);

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{EventBuilder, MockHost};

    #[test]
    fn three_denials_in_five_minutes_escalate() {
        let mut host = MockHost::new();
        for minute in 0..3 {
            let e = EventBuilder::okta("user.mfa.okta_verify.deny_push")
                .actor_user("00u1", "a@example.com")
                .at(minute * 60_000)
                .build();
            host.feed::<MyRule>(&e).unwrap();
        }
        assert_eq!(host.requested_kinds(), vec![ActionKind::Escalate]);
    }
}
