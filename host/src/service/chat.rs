//! Decisions from chat, on the ingest listener (where Slack and approvers'
//! browsers reach the service):
//!
//! - `POST /v1/chat/slack/actions`: Slack's interaction callback. The
//!   request is verified (`crate::chat::slack`: signature, timestamp window,
//!   each signature once) and answered 200 at once, as Slack asks (3 s);
//!   the decision is then taken and its outcome posted to the callback's
//!   `response_url` (only to a host of `response_url_hosts`). A user not on
//!   `approvers` (directly or through a listed user group, asked of Slack's
//!   `usergroups.users.list`) gets an ephemeral refusal, and the refusal is
//!   audited (`approval-refused`).
//! - `GET /v1/chat/links/{token}`: shows what a signed link would decide;
//!   `POST` to the same address decides (`crate::chat::links`).
//!
//! A decision goes to the pipeline thread as `AdminCommand::DecideApproval`,
//! exactly as `POST /v1/admin/approvals/{id}/approve` does: the gate checks
//! the action again and the `approval` record names who decided
//! (`slack <user id> (<name>)`, or `signed link from <address>`).

// The `Err` of `check_link` is the HTTP answer itself, built once per
// refused request; boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::admin::{AdminCommand, AdminError, AdminState, send_and_wait};
use super::body::{error, read_body};
use super::console::esc as escape;
use crate::chat::links::{LinkError, LinkSigner};
use crate::chat::slack::{self, Click, PayloadError, ReplayGuard};
use crate::chat::{Decision, rfc3339};
use crate::config::approvals::{ApprovalSecrets, ApprovalsConfig};
use crate::secret::Secret;

/// The largest interaction payload read (Slack's carry the whole message).
const MAX_SLACK_BODY: usize = 256 * 1024;

/// How long a decision waits for the pipeline thread (an approval calls
/// the identity provider from there), as in the console.
const DECIDE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a call to Slack (membership, `response_url`) may take.
const SLACK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the chat routes share.
pub struct ChatState {
    slack: Option<SlackReceiver>,
    links: Option<LinkSigner>,
    /// Where decisions go (the pipeline thread).
    admin: AdminState,
    http: reqwest::Client,
}

/// The chat routes `chat` serves (for the ingest listener's router).
pub fn router<S: Clone + Send + Sync + 'static>(chat: Arc<ChatState>) -> Router<S> {
    let mut r = Router::new();
    if chat.slack.is_some() {
        r = r.route("/v1/chat/slack/actions", post(slack_actions));
    }
    if chat.links.is_some() {
        r = r.route("/v1/chat/links/{token}", get(link_page).post(link_decide));
    }
    r.with_state(chat)
}

/// `[approvals.slack]`, ready to check callbacks.
pub struct SlackReceiver {
    signing_secret: Secret,
    bot_token: Option<Secret>,
    approvers: Vec<String>,
    api_url: String,
    response_hosts: Vec<String>,
    tolerance_secs: u64,
    replay: ReplayGuard,
}

impl ChatState {
    /// The receivers `[approvals]` configures (None when neither is).
    pub fn from_config(
        approvals: &ApprovalsConfig,
        admin: AdminState,
    ) -> anyhow::Result<Option<Arc<ChatState>>> {
        if approvals.slack.is_none() && approvals.links.is_none() {
            return Ok(None);
        }
        let ApprovalSecrets {
            slack_signing_secret,
            slack_bot_token,
            link_key,
        } = approvals.load_secrets()?;
        let slack = approvals.slack.as_ref().map(|s| SlackReceiver {
            signing_secret: slack_signing_secret.expect("loaded with [approvals.slack]"),
            bot_token: slack_bot_token,
            approvers: s.approvers.clone(),
            api_url: s.api_url.trim_end_matches('/').to_owned(),
            response_hosts: s.response_url_hosts.clone(),
            tolerance_secs: s.timestamp_tolerance_secs,
            replay: ReplayGuard::new(s.timestamp_tolerance_secs),
        });
        let links = approvals.links.as_ref().map(|l| {
            LinkSigner::new(
                link_key.expect("loaded with [approvals.links]"),
                &l.base_url,
                l.expire_secs,
            )
        });
        let http = reqwest::Client::builder()
            .timeout(SLACK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Some(Arc::new(ChatState {
            slack,
            links,
            admin,
            http,
        })))
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

// ---------------------------------------------------------------------------
// Slack

/// `POST /v1/chat/slack/actions`
async fn slack_actions(
    State(chat): State<Arc<ChatState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(slack) = &chat.slack else {
        return error(
            StatusCode::NOT_FOUND,
            "Slack approvals are disabled: set [approvals.slack]",
        );
    };
    let bytes = match read_body(body, &headers, MAX_SLACK_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header_text("x-slack-signature");
    let now = unix_now();
    let verified = slack::verify_signature(
        slack.signing_secret.expose(),
        header_text("x-slack-request-timestamp"),
        signature,
        &bytes,
        now,
        slack.tolerance_secs,
    )
    .and_then(|ts| {
        slack
            .replay
            .first_use(signature.unwrap_or_default(), ts, now)
    });
    if let Err(refusal) = verified {
        tracing::warn!("Slack callback refused: {refusal}");
        return error(
            StatusCode::UNAUTHORIZED,
            format!("Slack request refused: {refusal}"),
        );
    }
    let click = match slack::parse_click(&bytes) {
        Ok(c) => c,
        Err(PayloadError::Ignored(kind)) => {
            tracing::debug!(kind, "Slack interaction ignored");
            return StatusCode::OK.into_response();
        }
        Err(e) => {
            tracing::warn!("Slack callback refused: {e}");
            return error(
                StatusCode::BAD_REQUEST,
                format!("Slack callback refused: {e}"),
            );
        }
    };
    // Slack wants its answer within 3 s; the decision (a connector call
    // when approved) may take longer, so it is reported on `response_url`.
    tokio::spawn(decide_click(chat.clone(), click));
    StatusCode::OK.into_response()
}

/// Checks the approver, takes the decision, and tells the user.
async fn decide_click(chat: Arc<ChatState>, click: Click) {
    let slack = chat.slack.as_ref().expect("checked by the handler");
    let admin = &chat.admin;
    let by = format!("slack {} ({})", click.user_id, click.user_name);
    let response_url = match click.response_url.as_deref() {
        Some(url) if slack.response_url_allowed(url) => Some(url.to_owned()),
        Some(_) => {
            tracing::warn!(
                by,
                "Slack callback's response_url is not on a host of approvals.slack.response_url_hosts: no answer will be posted"
            );
            None
        }
        None => None,
    };
    let reply = |text: String, ephemeral: bool| {
        let chat = chat.clone();
        let url = response_url.clone();
        async move {
            if let Some(url) = url {
                chat.respond(&url, &text, ephemeral).await;
            }
        }
    };
    let refused = match slack.may_decide(&chat.http, &click.user_id).await {
        Ok(true) => None,
        Ok(false) => Some("not on approvals.slack.approvers".to_owned()),
        Err(e) => Some(format!("approver membership could not be checked: {e}")),
    };
    if let Some(reason) = refused {
        tracing::warn!(by, action_id = %click.action_id, "Slack decision refused: {reason}");
        let (tx, rx) = oneshot::channel();
        let command = AdminCommand::RecordRefusal {
            action_id: click.action_id.clone(),
            decision: click.decision.name(),
            by: by.clone(),
            reason: reason.clone(),
            reply: tx,
        };
        if send_and_wait(&admin.tx, command, rx, DECIDE_TIMEOUT)
            .await
            .is_err()
        {
            tracing::error!(by, action_id = %click.action_id, "the refusal could not be audited: the pipeline did not answer");
        }
        reply(
            format!(
                "You may not decide Vigil approvals ({reason}); action {} was not decided.",
                click.action_id
            ),
            true,
        )
        .await;
        return;
    }
    let outcome = decide(admin, &click.action_id, click.decision, by.clone()).await;
    let (text, ephemeral) = match outcome {
        Ok(v) => (
            format!(
                "{} by <@{}>: action {}{}",
                if click.decision == Decision::Approve {
                    "Approved"
                } else {
                    "Rejected"
                },
                click.user_id,
                click.action_id,
                results_text(&v)
            ),
            false,
        ),
        Err(why) => (
            format!("Action {} was not decided: {why}", click.action_id),
            true,
        ),
    };
    reply(text, ephemeral).await;
}

impl SlackReceiver {
    /// `url` is https (http only on loopback) on one of the allowed hosts.
    fn response_url_allowed(&self, url: &str) -> bool {
        let Ok(u) = crate::config::connectors::secure_url("response_url", url, false) else {
            return false;
        };
        u.host_str().is_some_and(|h| {
            self.response_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(h))
        })
    }

    /// Whether `user` is an approver, directly or through a user group.
    async fn may_decide(&self, http: &reqwest::Client, user: &str) -> anyhow::Result<bool> {
        if self.approvers.iter().any(|a| a == user) {
            return Ok(true);
        }
        for group in self.approvers.iter().filter(|a| a.starts_with('S')) {
            let token = self
                .bot_token
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no bot token to look up user groups"))?;
            let url = format!("{}/usergroups.users.list", self.api_url);
            let answer: Value = http
                .get(&url)
                .query(&[("usergroup", group.as_str())])
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("usergroups.users.list: {}", e.without_url()))?
                .json()
                .await
                .map_err(|e| anyhow::anyhow!("usergroups.users.list: {}", e.without_url()))?;
            if answer["ok"] != json!(true) {
                anyhow::bail!(
                    "usergroups.users.list for {group}: {}",
                    answer["error"].as_str().unwrap_or("not ok")
                );
            }
            let members = answer["users"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if members.iter().any(|m| m.as_str() == Some(user)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl ChatState {
    /// Posts the answer to a Slack `response_url` (failures are logged:
    /// the decision itself is already audited).
    async fn respond(&self, url: &str, text: &str, ephemeral: bool) {
        let body = if ephemeral {
            json!({"response_type": "ephemeral", "replace_original": false, "text": text})
        } else {
            json!({"replace_original": true, "text": text})
        };
        match self.http.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(
                status = r.status().as_u16(),
                "Slack response_url refused the answer"
            ),
            Err(e) => tracing::warn!("Slack response_url: {}", e.without_url()),
        }
    }
}

fn results_text(v: &Value) -> String {
    let results: Vec<String> = v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["decision"].as_str().map(str::to_owned))
        .collect();
    if results.is_empty() {
        String::new()
    } else {
        format!(" ({})", results.join(", "))
    }
}

/// Sends the decision down the admin path; `Err` is why it was not taken.
async fn decide(
    admin: &AdminState,
    action_id: &str,
    decision: Decision,
    by: String,
) -> Result<Value, String> {
    let (tx, rx) = oneshot::channel();
    let command = AdminCommand::DecideApproval {
        id: action_id.to_owned(),
        approve: decision == Decision::Approve,
        by,
        reply: tx,
    };
    match send_and_wait(&admin.tx, command, rx, DECIDE_TIMEOUT).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e @ (AdminError::Refused(_) | AdminError::UnknownRule(_)))) => Err(e.to_string()),
        Err(why) => Err(why.to_owned()),
    }
}

// ---------------------------------------------------------------------------
// Signed links

/// `GET /v1/chat/links/{token}`: what the link would do, with a button.
async fn link_page(State(chat): State<Arc<ChatState>>, Path(token): Path<String>) -> Response {
    let signed = match check_link(&chat, &token) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (tx, rx) = oneshot::channel();
    let listed = send_and_wait(
        &chat.admin.tx,
        AdminCommand::ListApprovals { reply: tx },
        rx,
        DECIDE_TIMEOUT,
    )
    .await;
    let pending = match listed {
        Ok(Ok(list)) => list.into_iter().find(|a| a.id == signed.action_id),
        Ok(Err(e)) => {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Try again",
                &escape(&format!("the approvals could not be read: {e:#}")),
            );
        }
        Err(why) => {
            return page(StatusCode::SERVICE_UNAVAILABLE, "Try again", &escape(why));
        }
    };
    let Some(a) = pending else {
        return page(
            StatusCode::CONFLICT,
            "Nothing to decide",
            &format!(
                "Action {} is not pending (already decided, expired, or unknown).",
                escape(&signed.action_id)
            ),
        );
    };
    let verb = if signed.decision == Decision::Approve {
        "Approve"
    } else {
        "Reject"
    };
    page(
        StatusCode::OK,
        &format!("{verb} this action?"),
        &format!(
            "<p><code>{}</code> on <strong>{}</strong></p><p>Rule <code>{}</code>, event <code>{}</code>; the approval expires {}, this link {}.</p>\
             <form method=\"post\"><button type=\"submit\">{verb}</button></form>",
            escape(a.action),
            escape(&a.target),
            escape(&a.rule),
            escape(&a.event_id),
            escape(&a.expires),
            rfc3339(signed.expires * 1000),
        ),
    )
}

/// `POST /v1/chat/links/{token}`: takes the link's decision.
async fn link_decide(
    State(chat): State<Arc<ChatState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    let signed = match check_link(&chat, &token) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let by = format!("signed link from {}", peer.ip());
    match decide(&chat.admin, &signed.action_id, signed.decision, by).await {
        Ok(v) => page(
            StatusCode::OK,
            if signed.decision == Decision::Approve {
                "Approved"
            } else {
                "Rejected"
            },
            &format!(
                "Action <code>{}</code>{}.",
                escape(&signed.action_id),
                escape(&results_text(&v))
            ),
        ),
        Err(why) => page(StatusCode::CONFLICT, "Not decided", &escape(&why)),
    }
}

/// The link's signed decision, or the error page.
fn check_link(
    chat: &ChatState,
    token: &str,
) -> Result<crate::chat::links::SignedDecision, Response> {
    let Some(signer) = &chat.links else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "signed links are disabled: set [approvals.links]",
        ));
    };
    match signer.verify(token, unix_now()) {
        Ok(d) => Ok(d),
        Err(e) => {
            // The token itself is a credential: not logged.
            tracing::warn!("approval link refused: {e}");
            let status = match e {
                LinkError::Malformed => StatusCode::NOT_FOUND,
                LinkError::BadSignature => StatusCode::FORBIDDEN,
                LinkError::Expired(_) => StatusCode::GONE,
            };
            Err(page(status, "Link refused", &escape(&e.to_string())))
        }
    }
}

/// A small HTML page. The URL holds a credential: no referrer leaves it,
/// and the page is neither cached nor framed.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Vigil: {t}</title></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        ],
        html,
    )
        .into_response()
}
