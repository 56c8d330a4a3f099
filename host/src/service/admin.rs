//! The admin API: bearer-token authentication, the HTTP handlers, and the
//! commands they send to the pipeline thread (which owns the rules).
//!
//! Every change is audited on the pipeline thread (`type: "admin"`) with
//! who made it (`by`: the configured `admin_name`) and from where (`peer`).
//! With no admin token configured the whole API answers 404 saying it is
//! disabled.

// The `Err` of the helpers here is the HTTP answer itself, built once per
// refused request; boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::body::{error, read_body};
use super::hooks::secret_matches;
use super::reload::{ApplyReload, ReloadRequest};
use crate::audit::Entry;
use crate::config::Mode;
use crate::pipeline::Pipeline;
use crate::rules::RuleInstance;
use crate::secret::Secret;

/// How long an admin request waits for the pipeline thread.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin routes share: who may call them and where commands go
/// (the pipeline thread).
#[derive(Clone)]
pub struct AdminState {
    pub auth: Arc<AdminAuth>,
    pub tx: std::sync::mpsc::Sender<AdminCommand>,
    /// The reload thread.
    pub reload: std::sync::mpsc::Sender<ReloadRequest>,
}

/// The admin API's credential and the name it stands for.
pub struct AdminAuth {
    pub token: Option<Secret>,
    pub name: String,
}

impl AdminAuth {
    /// The operator's name, or the error response.
    fn check(&self, headers: &HeaderMap) -> Result<&str, Response> {
        let Some(token) = &self.token else {
            return Err(error(
                StatusCode::NOT_FOUND,
                "the admin API is disabled: set server.admin_token_env or server.admin_token_file",
            ));
        };
        let presented = bearer(headers);
        if secret_matches(token, presented) {
            Ok(&self.name)
        } else {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong admin bearer token",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
            Err(r)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// A rule as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    pub id: String,
    pub version: String,
    pub origin: String,
    pub mode: &'static str,
    pub granted: Vec<&'static str>,
    pub quarantined: bool,
    /// The blast-radius breaker holds the rule in audit-only.
    pub breaker_tripped: bool,
    /// The `vigil:rule` version the component was built against.
    pub contract: &'static str,
    /// What the rule's state is keyed by (`global` for v0.1 rules).
    pub partition: &'static str,
}

impl RuleView {
    fn of(r: &RuleInstance) -> Self {
        RuleView {
            id: r.id().to_owned(),
            version: r.metadata().version.clone(),
            origin: r.origin().to_owned(),
            mode: r.grant().mode.name(),
            granted: r.grant().granted.iter().map(|k| k.name()).collect(),
            quarantined: r.is_quarantined(),
            breaker_tripped: r.gate().budgets().is_tripped(r.id()),
            contract: r.contract().version(),
            partition: r.metadata().partition.name(),
        }
    }
}

/// A parked action, as the admin API lists it.
#[derive(Serialize)]
pub struct ApprovalView {
    pub id: String,
    pub rule: String,
    pub event_id: String,
    pub action: &'static str,
    pub target: String,
    pub created: String,
    pub expires: String,
}

/// A temporary action in force (its scheduled undo), as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct UndoView {
    /// The undo's id (`vigil actions undo ID`).
    pub id: i64,
    pub action_id: String,
    pub rule: String,
    pub connector: String,
    /// The action in force (`suspend-user`, `block-ip`, …).
    pub action: &'static str,
    /// What lifts it (`unsuspend-user`, …).
    pub undo: &'static str,
    pub target: String,
    /// When it is lifted by itself: RFC 3339, or `on demand`.
    pub due: String,
    pub attempts: u32,
}

/// The result of lifting a temporary action early.
#[derive(Debug, Clone, Serialize)]
pub struct UndoOutcome {
    pub id: i64,
    pub undo: &'static str,
    pub target: String,
    /// `executed`, or `failed` (then still scheduled for its due time).
    pub decision: &'static str,
    pub detail: String,
}

/// A tripped breaker.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerView {
    pub rule: String,
    /// When it tripped (RFC 3339).
    pub tripped: String,
    pub reason: String,
}

/// Why an admin command failed (answered as JSON).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no rule {0:?}")]
    UnknownRule(String),
    /// An approval or breaker request that cannot be done (unknown,
    /// already decided, expired, not tripped): answered 409/404.
    #[error("{0}")]
    Refused(String),
}

/// A request from the admin API to the pipeline thread. Each carries the
/// channel its answer goes back on.
pub enum AdminCommand {
    ListRules {
        reply: oneshot::Sender<Vec<RuleView>>,
    },
    SetMode {
        rule: String,
        mode: Mode,
        /// Who asked (`admin_name`) and from where.
        by: String,
        peer: String,
        reply: oneshot::Sender<Result<RuleView, AdminError>>,
    },
    // --- guardrails ---
    ListApprovals {
        reply: oneshot::Sender<anyhow::Result<Vec<ApprovalView>>>,
    },
    /// Approve (`approve = true`) or reject a parked action.
    DecideApproval {
        id: String,
        approve: bool,
        by: String,
        reply: oneshot::Sender<Result<serde_json::Value, AdminError>>,
    },
    ResetBreaker {
        rule: String,
        by: String,
        reply: oneshot::Sender<Result<(), AdminError>>,
    },
    /// Audits a decision refused before it reached the approval (a chat
    /// user who is not an approver): `approval-refused`.
    RecordRefusal {
        action_id: String,
        /// `approve` or `reject`, as asked.
        decision: &'static str,
        by: String,
        reason: String,
        reply: oneshot::Sender<()>,
    },
    /// Temporary actions in force, soonest due first.
    ListUndos {
        reply: oneshot::Sender<anyhow::Result<Vec<UndoView>>>,
    },
    /// Lift a temporary action now (as `vigil actions undo`); audited as
    /// `action-undo` with `by` and `early: true`.
    UndoNow {
        id: i64,
        by: String,
        reply: oneshot::Sender<Result<UndoOutcome, AdminError>>,
    },
    /// Tripped breakers, by rule.
    ListBreakers {
        reply: oneshot::Sender<Vec<BreakerView>>,
    },
    /// Swap in a rule set the reload thread prepared (or record why it
    /// could not): see `super::reload`.
    Reload(ApplyReload),
}

/// Runs one command on the pipeline thread. An error is an audit failure
/// (fatal, as everywhere in the pipeline).
pub fn handle(pipeline: &mut Pipeline, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::ListRules { reply } => {
            let rules = pipeline.rules().rules.iter().map(RuleView::of).collect();
            let _ = reply.send(rules);
        }
        AdminCommand::Reload(job) => {
            let outcome = super::reload::apply(pipeline, job.prepared, job.reason, &job.by)?;
            let _ = job.reply.send(outcome);
        }
        AdminCommand::SetMode {
            rule,
            mode,
            by,
            peer,
            reply,
        } => {
            // Every shard's instance, from its next call; kept across
            // reloads and restarts (`pipeline::modes`).
            let Some(from) = pipeline.set_mode_override(&rule, mode, &by)? else {
                let _ = reply.send(Err(AdminError::UnknownRule(rule)));
                return Ok(());
            };
            let view = RuleView::of(pipeline.rules().find(&rule).expect("found above"));
            if from != mode {
                pipeline.audit_external(
                    Entry::new("admin")
                        .rule(rule.as_str())
                        .field("by", by.as_str())
                        .field("peer", peer.as_str())
                        .field("change", "set-mode")
                        .field("from", from.name())
                        .field("to", mode.name()),
                )?;
                tracing::info!(
                    rule,
                    by,
                    peer,
                    from = from.name(),
                    to = mode.name(),
                    "admin: rule mode changed"
                );
            }
            let _ = reply.send(Ok(view));
        }
        AdminCommand::ListApprovals { reply } => {
            let listed = pipeline
                .executor()
                .store()
                .approvals("pending")
                .map(|list| {
                    list.into_iter()
                        .map(|p| ApprovalView {
                            id: p.action_id,
                            rule: p.rule,
                            event_id: p.event_id,
                            action: p.action.kind().name(),
                            target: p.action.target().to_owned(),
                            created: rfc3339(p.created_ms),
                            expires: rfc3339(p.expires_ms),
                        })
                        .collect()
                });
            let _ = reply.send(listed);
        }
        AdminCommand::DecideApproval {
            id,
            approve,
            by,
            reply,
        } => {
            // Unknown, decided or expired approvals are refusals (409);
            // a failure while deciding (the audit log or the store) is
            // fatal, as everywhere in the pipeline.
            if let Some(reason) = pipeline.approval_refusal(&id)? {
                let _ = reply.send(Err(AdminError::Refused(reason)));
                return Ok(());
            }
            let answer = if approve {
                let o = pipeline.approve(&id, &by)?;
                serde_json::json!({ "id": id, "decision": "approved", "gate": o.decision, "results": o.results })
            } else {
                pipeline.reject_approval(&id, &by)?;
                serde_json::json!({ "id": id, "decision": "rejected" })
            };
            let _ = reply.send(Ok(answer));
        }
        AdminCommand::RecordRefusal {
            action_id,
            decision,
            by,
            reason,
            reply,
        } => {
            let mut entry = Entry::new("approval-refused")
                .field("action_id", action_id.as_str())
                .field("decision", decision)
                .field("by", by.as_str())
                .field("reason", reason.as_str());
            if let Some(p) = pipeline.executor().store().approval(&action_id)? {
                entry = entry
                    .rule(&p.rule)
                    .event(&p.event_id)
                    .field("action", p.action.kind().name())
                    .field("target", p.action.target());
            }
            pipeline.audit_external(entry)?;
            let _ = reply.send(());
        }
        AdminCommand::ListUndos { reply } => {
            let listed = pipeline.executor().store().pending_undos().map(|list| {
                list.into_iter()
                    .map(|u| UndoView {
                        id: u.id,
                        action: u.undo.reverses().name(),
                        undo: u.undo.name(),
                        target: u.undo.target().to_owned(),
                        due: if u.due_ms == crate::executor::ON_DEMAND_MS {
                            "on demand".to_owned()
                        } else {
                            rfc3339(u.due_ms)
                        },
                        action_id: u.action_id,
                        rule: u.rule,
                        connector: u.connector,
                        attempts: u.attempts,
                    })
                    .collect()
            });
            let _ = reply.send(listed);
        }
        AdminCommand::UndoNow { id, by, reply } => {
            // An unknown or finished undo is a refusal, not an error: an
            // error here stops the pipeline.
            if pipeline.executor().store().pending_undo(id)?.is_none() {
                let _ = reply.send(Err(AdminError::Refused(format!(
                    "no temporary action with undo id {id} is in force (lifted already, or never scheduled)"
                ))));
                return Ok(());
            }
            let r = pipeline.undo_now(id, &by)?;
            let _ = reply.send(Ok(UndoOutcome {
                id,
                undo: r.scheduled.undo.name(),
                target: r.scheduled.undo.target().to_owned(),
                decision: r.decision,
                detail: r.detail,
            }));
        }
        AdminCommand::ListBreakers { reply } => {
            let trips = pipeline
                .rules()
                .gate()
                .map(|gate| gate.budgets().trips())
                .unwrap_or_default();
            let listed = trips
                .into_iter()
                .map(|(rule, trip)| BreakerView {
                    rule,
                    tripped: rfc3339(trip.at_ms),
                    reason: trip.reason,
                })
                .collect();
            let _ = reply.send(listed);
        }
        AdminCommand::ResetBreaker { rule, by, reply } => {
            let answer = if pipeline.reset_breaker(&rule, &by)? {
                Ok(())
            } else {
                Err(AdminError::Refused(format!(
                    "the breaker of {rule:?} is not tripped"
                )))
            };
            let _ = reply.send(answer);
        }
    }
    Ok(())
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// `GET /v1/admin/approvals`
pub async fn list_approvals(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(r) = state.auth.check(&headers) {
        return r;
    }
    let (reply, rx) = oneshot::channel();
    match ask(&state, AdminCommand::ListApprovals { reply }, rx).await {
        Ok(Ok(list)) => Json(serde_json::json!({ "approvals": list })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(r) => r,
    }
}

/// `POST /v1/admin/approvals/{id}/approve`
pub async fn approve(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    decide(state, id, true, headers).await
}

/// `POST /v1/admin/approvals/{id}/reject`
pub async fn reject(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    decide(state, id, false, headers).await
}

async fn decide(state: AdminState, id: String, approve: bool, headers: HeaderMap) -> Response {
    let by = match state.auth.check(&headers) {
        Ok(name) => name.to_owned(),
        Err(r) => return r,
    };
    let (reply, rx) = oneshot::channel();
    let command = AdminCommand::DecideApproval {
        id,
        approve,
        by,
        reply,
    };
    match ask(&state, command, rx).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(r) => r,
    }
}

/// `POST /v1/admin/breakers/{rule}/reset`
pub async fn reset_breaker(
    State(state): State<AdminState>,
    Path(rule): Path<String>,
    headers: HeaderMap,
) -> Response {
    let by = match state.auth.check(&headers) {
        Ok(name) => name.to_owned(),
        Err(r) => return r,
    };
    let (reply, rx) = oneshot::channel();
    let command = AdminCommand::ResetBreaker {
        rule: rule.clone(),
        by,
        reply,
    };
    match ask(&state, command, rx).await {
        Ok(Ok(())) => Json(serde_json::json!({ "rule": rule, "breaker": "reset" })).into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(r) => r,
    }
}

/// Sends `command` to the pipeline thread and waits up to `timeout` for
/// its answer; the error says why there is none. Every caller of the
/// pipeline thread (the API, the console, chat) goes through here.
pub(super) async fn send_and_wait<T>(
    tx: &std::sync::mpsc::Sender<AdminCommand>,
    command: AdminCommand,
    rx: oneshot::Receiver<T>,
    timeout: Duration,
) -> Result<T, &'static str> {
    tx.send(command)
        .map_err(|_| "the pipeline is not running")?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err("the pipeline is not running"),
        Err(_) => Err("the pipeline did not answer in time; try again"),
    }
}

/// [`send_and_wait`] for the admin API: no answer is a 503.
pub(super) async fn ask<T>(
    state: &AdminState,
    command: AdminCommand,
    rx: oneshot::Receiver<T>,
) -> Result<T, Response> {
    send_and_wait(&state.tx, command, rx, REPLY_TIMEOUT)
        .await
        .map_err(|why| error(StatusCode::SERVICE_UNAVAILABLE, why))
}

/// How long `POST /v1/admin/reload` waits: a reload compiles components.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// `POST /v1/admin/reload`: re-reads the configuration and the rules
/// (see `super::reload`); 200 with what changed, 422 with why nothing did.
pub async fn reload(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let by = match state.auth.check(&headers) {
        Ok(name) => name.to_owned(),
        Err(r) => return r,
    };
    let (reply, rx) = oneshot::channel();
    let request = ReloadRequest {
        reason: "admin",
        by,
        reply: Some(reply),
    };
    if state.reload.send(request).is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the reload thread is not running",
        );
    }
    match tokio::time::timeout(RELOAD_TIMEOUT, rx).await {
        Ok(Ok(outcome)) if outcome.result == "applied" => Json(outcome).into_response(),
        Ok(Ok(outcome)) => (StatusCode::UNPROCESSABLE_ENTITY, Json(outcome)).into_response(),
        Ok(Err(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "the reload thread stopped"),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the reload did not finish in time; its result will be in the audit log",
        ),
    }
}

/// `GET /v1/admin/rules`
pub async fn list_rules(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(r) = state.auth.check(&headers) {
        return r;
    }
    let (reply, rx) = oneshot::channel();
    match ask(&state, AdminCommand::ListRules { reply }, rx).await {
        Ok(rules) => Json(serde_json::json!({ "rules": rules })).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeBody {
    mode: Mode,
}

/// `POST /v1/admin/rules/{id}/mode` with `{"mode": "enforce"|"audit-only"}`.
pub async fn set_mode(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(rule): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let by = match state.auth.check(&headers) {
        Ok(name) => name.to_owned(),
        Err(r) => return r,
    };
    let bytes = match read_body(body, &headers, 64 * 1024).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mode = match serde_json::from_slice::<ModeBody>(&bytes) {
        Ok(b) => b.mode,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"mode\": \"enforce\" | \"audit-only\"}}: {e}"),
            );
        }
    };
    let (reply, rx) = oneshot::channel();
    let command = AdminCommand::SetMode {
        rule,
        mode,
        by,
        peer: peer.to_string(),
        reply,
    };
    match ask(&state, command, rx).await {
        Ok(Ok(view)) => Json(view).into_response(),
        Ok(Err(e @ AdminError::UnknownRule(_))) => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(r) => r,
    }
}
