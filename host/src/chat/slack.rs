//! Slack: the approval message's blocks, and the checks an interaction
//! callback passes before its decision is taken.
//!
//! Slack signs each request to the app's Interactivity URL
//! (`POST /v1/chat/slack/actions`) as its documentation describes:
//! `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
//! "v0:<X-Slack-Request-Timestamp>:<raw body>")>`. A request is taken only
//! if the signature matches (compared in constant time), the timestamp is
//! within `timestamp_tolerance_secs` of the clock, and the same signature
//! was not seen before within that window ([`ReplayGuard`]), so a captured
//! callback cannot be sent again.
//!
//! The body is `payload=<JSON>` (form-encoded); a `block_actions` payload
//! names the user who clicked, the button (`vigil-approve` /
//! `vigil-reject`), its value (the action id) and a `response_url` where the
//! answer to that user is posted.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{ApprovalRequest, Decision, is_action_id};

/// The buttons' `action_id`s.
pub const APPROVE_ACTION: &str = "vigil-approve";
pub const REJECT_ACTION: &str = "vigil-reject";

/// Why a callback is refused before its content is read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestRefusal {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature")]
    Unsigned,
    #[error("X-Slack-Request-Timestamp is not a Unix time")]
    BadTimestamp,
    #[error("the request's timestamp is {0} s from this server's clock (more than allowed)")]
    Stale(i64),
    #[error("the request's signature does not match (wrong signing secret, or a changed body)")]
    BadSignature,
    #[error("this request was already received (a replay)")]
    Replayed,
}

/// Checks Slack's signature over `body` and the timestamp window.
pub fn verify_signature(
    signing_secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<i64, RequestRefusal> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(RequestRefusal::Unsigned);
    };
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| RequestRefusal::BadTimestamp)?;
    let sig = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(RequestRefusal::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&sig)
        .map_err(|_| RequestRefusal::BadSignature)?;
    // After the signature: an unsigned request learns nothing about the
    // clock.
    let skew = now.saturating_sub(ts);
    if skew.unsigned_abs() > tolerance_secs {
        return Err(RequestRefusal::Stale(skew));
    }
    Ok(ts)
}

/// The signature a request carries, computed as Slack does (for tests and
/// for operators checking a capture).
pub fn sign(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Signatures accepted within the timestamp window: a second request with
/// one of them is a replay. Entries leave once their timestamp is out of
/// the window (a replay then fails the timestamp check instead).
pub struct ReplayGuard {
    seen: Mutex<HashMap<String, i64>>,
    tolerance_secs: i64,
}

/// More signatures than this inside one window means something is wrong:
/// requests are refused (fail closed) until old ones age out.
const MAX_REMEMBERED: usize = 100_000;

impl ReplayGuard {
    pub fn new(tolerance_secs: u64) -> Self {
        ReplayGuard {
            seen: Mutex::new(HashMap::new()),
            tolerance_secs: tolerance_secs as i64,
        }
    }

    /// Remembers `signature` (of a request stamped `ts`); `Err` if it was
    /// already seen or too many are remembered.
    pub fn first_use(&self, signature: &str, ts: i64, now: i64) -> Result<(), RequestRefusal> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.tolerance_secs;
        seen.retain(|_, t| (now - *t).abs() <= window);
        if seen.contains_key(signature) || seen.len() >= MAX_REMEMBERED {
            return Err(RequestRefusal::Replayed);
        }
        seen.insert(signature.to_owned(), ts);
        Ok(())
    }
}

/// A button click, as far as Vigil reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Click {
    pub user_id: String,
    /// The user's handle (`username`, else `name`), as Slack sent it.
    pub user_name: String,
    pub decision: Decision,
    pub action_id: String,
    pub response_url: Option<String>,
}

/// Why a verified callback is not a decision.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body has no `payload` field")]
    NoPayload,
    #[error("the payload is not valid JSON: {0}")]
    Json(String),
    /// Another kind of interaction (a shortcut, a modal): not Vigil's.
    #[error("interaction type {0:?} is not handled")]
    Ignored(String),
    #[error("the payload names no Vigil button")]
    NoButton,
    #[error("the button's value {0:?} is not an action id")]
    BadActionId(String),
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: Option<User>,
    #[serde(default)]
    actions: Vec<BlockAction>,
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct BlockAction {
    action_id: String,
    value: Option<String>,
}

/// Reads the click out of a verified form body.
pub fn parse_click(body: &[u8]) -> Result<Click, PayloadError> {
    let payload = form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or(PayloadError::NoPayload)?;
    let p: Payload =
        serde_json::from_str(&payload).map_err(|e| PayloadError::Json(e.to_string()))?;
    if p.kind != "block_actions" {
        return Err(PayloadError::Ignored(p.kind));
    }
    let user = p.user.ok_or(PayloadError::NoButton)?;
    let (decision, value) = p
        .actions
        .iter()
        .find_map(|a| {
            let d = match a.action_id.as_str() {
                APPROVE_ACTION => Decision::Approve,
                REJECT_ACTION => Decision::Reject,
                _ => return None,
            };
            Some((d, a.value.clone().unwrap_or_default()))
        })
        .ok_or(PayloadError::NoButton)?;
    if !is_action_id(&value) {
        return Err(PayloadError::BadActionId(value));
    }
    Ok(Click {
        user_name: user.username.or(user.name).unwrap_or_default(),
        user_id: user.id,
        decision,
        action_id: value,
        response_url: p.response_url,
    })
}

/// How the approval message offers the decision.
pub enum Buttons<'a> {
    /// Interactive buttons (the app's Interactivity URL receives clicks).
    Interactive,
    /// Link buttons opening the signed links.
    Links { approve: &'a str, reject: &'a str },
    /// No buttons: the text says how to decide.
    None,
}

/// The Block Kit blocks of an approval request. Text from the event (the
/// target) is escaped for `mrkdwn` by the caller's `escape`.
pub fn approval_blocks(
    r: &ApprovalRequest,
    buttons: Buttons<'_>,
    escape: impl Fn(&str) -> String,
) -> Vec<Value> {
    let expires = super::rfc3339(r.expires_ms);
    let mut blocks = vec![
        json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!(
                "*Approval needed:* `{}` on *{}*\nRule `{}`, event `{}`",
                r.action, escape(&r.target), escape(&r.rule), escape(&r.event_id)
            )}
        }),
        json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!(
                "Action `{}` · expires {expires} · or `vigil approvals approve {}`",
                r.action_id, r.action_id
            )}]
        }),
    ];
    let button = |text: &str, style: &str| json!({"type": "button", "text": {"type": "plain_text", "text": text}, "style": style});
    let elements = match buttons {
        Buttons::Interactive => {
            let mut approve = button("Approve", "primary");
            approve["action_id"] = json!(APPROVE_ACTION);
            approve["value"] = json!(r.action_id);
            approve["confirm"] = json!({
                "title": {"type": "plain_text", "text": "Approve this action?"},
                "text": {"type": "mrkdwn", "text": format!("`{}` on *{}* will be executed.", r.action, escape(&r.target))},
                "confirm": {"type": "plain_text", "text": "Approve"},
                "deny": {"type": "plain_text", "text": "Cancel"}
            });
            let mut reject = button("Reject", "danger");
            reject["action_id"] = json!(REJECT_ACTION);
            reject["value"] = json!(r.action_id);
            vec![approve, reject]
        }
        Buttons::Links { approve, reject } => {
            let mut a = button("Approve…", "primary");
            a["url"] = json!(approve);
            a["action_id"] = json!("vigil-approve-link");
            let mut b = button("Reject…", "danger");
            b["url"] = json!(reject);
            b["action_id"] = json!("vigil-reject-link");
            vec![a, b]
        }
        Buttons::None => Vec::new(),
    };
    if !elements.is_empty() {
        blocks.push(json!({"type": "actions", "block_id": "vigil-approval", "elements": elements}));
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

    #[test]
    fn slack_documented_example_verifies() {
        // The example of Slack's "Verifying requests from Slack" page.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let ts = "1531420618";
        assert_eq!(sign(SECRET, ts, body), sig);
        assert_eq!(
            verify_signature(SECRET, Some(ts), Some(sig), body, 1_531_420_618 + 60, 300),
            Ok(1_531_420_618)
        );
        assert_eq!(
            verify_signature(SECRET, Some(ts), Some(sig), body, 1_531_420_618 + 301, 300),
            Err(RequestRefusal::Stale(301))
        );
        let mut changed = body.to_vec();
        changed[0] = b'T';
        assert_eq!(
            verify_signature(SECRET, Some(ts), Some(sig), &changed, 1_531_420_618, 300),
            Err(RequestRefusal::BadSignature)
        );
        assert_eq!(
            verify_signature("other", Some(ts), Some(sig), body, 1_531_420_618, 300),
            Err(RequestRefusal::BadSignature)
        );
        assert_eq!(
            verify_signature(SECRET, None, Some(sig), body, 0, 300),
            Err(RequestRefusal::Unsigned)
        );
        assert_eq!(
            verify_signature(SECRET, Some("soon"), Some(sig), body, 0, 300),
            Err(RequestRefusal::BadTimestamp)
        );
    }

    #[test]
    fn a_signature_is_taken_once_per_window() {
        let g = ReplayGuard::new(300);
        assert_eq!(g.first_use("v0=aa", 1000, 1000), Ok(()));
        assert_eq!(
            g.first_use("v0=aa", 1000, 1100),
            Err(RequestRefusal::Replayed)
        );
        assert_eq!(g.first_use("v0=bb", 1000, 1100), Ok(()));
        // Out of the window it is forgotten (and the timestamp check refuses it).
        assert_eq!(g.first_use("v0=aa", 1000, 1400), Ok(()));
    }

    fn form(payload: &Value) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    #[test]
    fn clicks_are_read_and_odd_payloads_refused() {
        let p = json!({
            "type": "block_actions",
            "user": {"id": "U1", "username": "alice", "name": "alice"},
            "actions": [{"action_id": "vigil-reject", "value": "act-0a"}],
            "response_url": "https://hooks.slack.com/actions/T/1/x"
        });
        let c = parse_click(&form(&p)).unwrap();
        assert_eq!(
            (
                c.user_id.as_str(),
                c.user_name.as_str(),
                c.decision,
                c.action_id.as_str()
            ),
            ("U1", "alice", Decision::Reject, "act-0a")
        );
        assert_eq!(parse_click(b"x=1"), Err(PayloadError::NoPayload));
        assert!(matches!(
            parse_click(b"payload=%7B"),
            Err(PayloadError::Json(_))
        ));
        assert_eq!(
            parse_click(&form(&json!({"type": "shortcut"}))),
            Err(PayloadError::Ignored("shortcut".into()))
        );
        let mut other = p.clone();
        other["actions"][0]["action_id"] = json!("something-else");
        assert_eq!(parse_click(&form(&other)), Err(PayloadError::NoButton));
        let mut bad = p;
        bad["actions"][0]["value"] = json!("../../x");
        assert_eq!(
            parse_click(&form(&bad)),
            Err(PayloadError::BadActionId("../../x".into()))
        );
    }
}
