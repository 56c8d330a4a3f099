//! Typed actions as JSON, for what the store keeps beyond one call
//! (pending approvals). The shape is the audit log's `params` plus `kind`
//! and `target`.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::model::{
    Action, ActionKind, AppPolicy, BlockIp, GroupMembership, Message, Severity, SuspendUser,
};

pub fn action_to_json(action: &Action) -> Value {
    let mut v = json!({ "kind": action.kind().name(), "target": action.target() });
    let extra = match action {
        Action::SuspendUser(s) => json!({ "duration_secs": s.duration_secs }),
        Action::BlockIp(b) => json!({ "duration_secs": b.duration_secs }),
        Action::AddToGroup(g) => json!({ "group": g.group }),
        Action::AssignAppPolicy(a) => json!({ "policy": a.policy }),
        Action::Notify(m) | Action::Escalate(m) => json!({
            "severity": m.severity.name(),
            "summary": m.summary,
            "details": m.details,
        }),
        Action::RevokeSessions(_)
        | Action::ResetFactors(_)
        | Action::ActivatePolicy(_)
        | Action::RestorePolicy(_) => json!({}),
    };
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        obj.extend(extra);
    }
    v
}

pub fn action_from_json(v: &Value) -> Result<Action> {
    let kind = v["kind"].as_str().context("action without kind")?;
    let kind =
        ActionKind::from_name(kind).with_context(|| format!("unknown action kind {kind}"))?;
    let target = v["target"]
        .as_str()
        .context("action without target")?
        .to_owned();
    let duration = v["duration_secs"].as_u64();
    let message = || -> Result<Message> {
        let severity = v["severity"].as_str().and_then(Severity::from_name);
        let Some(severity) = severity else {
            bail!("message without a valid severity");
        };
        let details: Vec<(String, String)> =
            serde_json::from_value(v["details"].clone()).context("message details")?;
        Ok(Message {
            severity,
            summary: v["summary"].as_str().unwrap_or_default().to_owned(),
            details,
        })
    };
    Ok(match kind {
        ActionKind::SuspendUser => Action::SuspendUser(SuspendUser {
            user: target,
            duration_secs: duration,
        }),
        ActionKind::RevokeSessions => Action::RevokeSessions(target),
        ActionKind::ResetFactors => Action::ResetFactors(target),
        ActionKind::ActivatePolicy => Action::ActivatePolicy(target),
        ActionKind::AddToGroup => Action::AddToGroup(GroupMembership {
            user: target,
            group: v["group"].as_str().unwrap_or_default().to_owned(),
        }),
        ActionKind::BlockIp => Action::BlockIp(BlockIp {
            ip: target,
            duration_secs: duration,
        }),
        ActionKind::Notify => Action::Notify(message()?),
        ActionKind::Escalate => Action::Escalate(message()?),
        ActionKind::RestorePolicy => Action::RestorePolicy(target),
        ActionKind::AssignAppPolicy => Action::AssignAppPolicy(AppPolicy {
            app: target,
            policy: v["policy"].as_str().unwrap_or_default().to_owned(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let actions = vec![
            Action::SuspendUser(SuspendUser {
                user: "u1".into(),
                duration_secs: Some(60),
            }),
            Action::RevokeSessions("u2".into()),
            Action::ResetFactors("u3".into()),
            Action::ActivatePolicy("p1".into()),
            Action::RestorePolicy("p2".into()),
            Action::AssignAppPolicy(AppPolicy {
                app: "0oa1".into(),
                policy: "rst1".into(),
            }),
            Action::AddToGroup(GroupMembership {
                user: "u4".into(),
                group: "g1".into(),
            }),
            Action::BlockIp(BlockIp {
                ip: "192.0.2.1".into(),
                duration_secs: None,
            }),
            Action::Escalate(Message {
                severity: Severity::High,
                summary: "s".into(),
                details: vec![("k".into(), "v".into())],
            }),
        ];
        for a in actions {
            let back = action_from_json(&action_to_json(&a)).unwrap();
            assert_eq!(format!("{a:?}"), format!("{back:?}"));
        }
    }
}
