//! Hostile guest: asks to suspend the user of every event, protected or not.

use vigil_sdk::*;

pub struct Guest;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-protected".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: protected".into(),
            subscribes: vec!["*".into()],
            actions: vec![ActionKind::SuspendUser],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let user = event
            .subject_user()
            .map(|u| u.id.clone())
            .unwrap_or_default();
        let answer = host.request(&Action::SuspendUser(SuspendUser {
            user: user.clone(),
            duration_secs: Some(1800),
        }));
        Ok(vec![
            Finding::new(Severity::Medium, "suspend requested", user)
                .detail("suspend_user", describe(&answer)),
        ])
    }
}

export_rule!(Guest);
