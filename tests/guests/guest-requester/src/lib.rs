//! Hostile guest: asks for exactly what its configuration names, on every
//! target it lists — the tool of the tests that try to reach a protected
//! account under another name, or to use a group, policy or address the
//! operator did not grant.
//!
//! Config: `action` (an action kind: `suspend-user`, `revoke-sessions`,
//! `reset-factors`, `add-to-group`, `activate-policy`, `restore-policy`,
//! `assign-app-policy`, `block-ip`), `targets` (comma-separated: user
//! names, policy ids, application ids or addresses), `group` (for
//! add-to-group), `policy` (for assign-app-policy). One finding per event
//! reports each answer.

use vigil_sdk::*;

pub struct Guest;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-requester".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: requests what its config names".into(),
            subscribes: vec!["*".into()],
            actions: vec![
                ActionKind::SuspendUser,
                ActionKind::RevokeSessions,
                ActionKind::ResetFactors,
                ActionKind::ActivatePolicy,
                ActionKind::AddToGroup,
                ActionKind::BlockIp,
                ActionKind::RestorePolicy,
                ActionKind::AssignAppPolicy,
            ],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let kind = host.config("action").ok_or("config `action` is not set")?;
        let targets = host
            .config("targets")
            .ok_or("config `targets` is not set")?;
        let group = host.config("group").unwrap_or_default();
        let policy = host.config("policy").unwrap_or_default();
        let mut finding = Finding::new(Severity::Low, "requests", event.id().to_owned());
        for target in targets.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let action = match kind.as_str() {
                "suspend-user" => Action::SuspendUser(SuspendUser {
                    user: target.into(),
                    duration_secs: Some(600),
                }),
                "revoke-sessions" => Action::RevokeSessions(target.into()),
                "reset-factors" => Action::ResetFactors(target.into()),
                "activate-policy" => Action::ActivatePolicy(target.into()),
                "restore-policy" => Action::RestorePolicy(target.into()),
                "assign-app-policy" => Action::AssignAppPolicy(AppPolicy {
                    app: target.into(),
                    policy: policy.clone(),
                }),
                "add-to-group" => Action::AddToGroup(GroupMembership {
                    user: target.into(),
                    group: group.clone(),
                }),
                "block-ip" => Action::BlockIp(BlockIp {
                    ip: target.into(),
                    duration_secs: Some(600),
                }),
                other => return Err(format!("config `action`: unknown kind {other:?}")),
            };
            finding = finding.detail(target, describe(&host.request(&action)));
        }
        Ok(vec![finding])
    }
}

export_rule!(Guest);
