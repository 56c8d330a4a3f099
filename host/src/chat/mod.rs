//! Approvals from chat: the request for a decision posted when an action is
//! parked, and the two ways a decision comes back without the admin API.
//!
//! - [`request`]: when a rule's action waits for approval, each webhook of
//!   `[approvals] notify` receives it — a Slack Block Kit message with
//!   Approve and Reject buttons (`[approvals.slack]`), and/or two signed
//!   links (`[approvals.links]`) for receivers without buttons.
//! - [`slack`]: Slack's interaction callback, verified with the app's
//!   signing secret and a timestamp window, each signature accepted once.
//! - [`links`]: links carrying an HMAC over the action id, the decision and
//!   an expiry; a link works once, since it decides a pending approval and
//!   an approval is decided only once.
//!
//! The service's handlers (`service::chat`) send every decision down the
//! same path as `vigil approvals approve`: the gate checks the action again
//! and the decision is audited with who made it.

pub mod links;
pub mod request;
pub mod slack;

/// A parked action, as a request for a decision shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalRequest {
    pub action_id: String,
    pub rule: String,
    pub event_id: String,
    /// The action kind (`suspend-user`).
    pub action: &'static str,
    pub target: String,
    /// When the approval expires (Unix milliseconds).
    pub expires_ms: i64,
}

/// What an approver chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

/// Whether `id` looks like an action id (`act-` and hex digits): anything
/// else in a callback or a link is refused before it reaches the store.
pub fn is_action_id(id: &str) -> bool {
    id.strip_prefix("act-").is_some_and(|hex| {
        !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Unix milliseconds as RFC 3339 (UTC, seconds).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
