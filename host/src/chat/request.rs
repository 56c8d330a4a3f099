//! Posting a parked action to the `[approvals] notify` webhooks as a
//! request for a decision, on a thread of its own (retries and a slow chat
//! never hold up detection).
//!
//! A `slack`-format webhook gets a Block Kit message (`text` for
//! notifications, `blocks` with the buttons) plus the structure under
//! `vigil` that generic receivers read; a `pagerduty` webhook gets a
//! trigger whose custom details hold the links. The links are credentials
//! (whoever holds one can decide): they go only to the configured
//! receivers, never to a log line or the audit log.

use std::sync::mpsc;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::links::LinkSigner;
use super::slack::{Buttons, approval_blocks};
use super::{ApprovalRequest, rfc3339};
use crate::actions::webhook::{WebhookConnector, slack_escape};
use crate::config::Config;
use crate::config::connectors::WebhookFormat;

/// Posts approval requests on a thread of its own, so a slow or
/// unreachable chat (retries included) never holds up the pipeline; the
/// pipeline collects the deliveries with [`ApprovalNotifier::completed`]
/// and audits them.
pub struct ApprovalNotifier {
    tx: Option<mpsc::Sender<ApprovalRequest>>,
    done: mpsc::Receiver<Posted>,
    in_flight: usize,
    worker: Option<std::thread::JoinHandle<()>>,
}

/// One request's deliveries, one per webhook.
#[derive(Debug)]
pub struct Posted {
    pub request: ApprovalRequest,
    pub deliveries: Vec<Delivery>,
}

/// One webhook's delivery of one request.
#[derive(Debug)]
pub struct Delivery {
    pub webhook: String,
    /// The HTTP status, or why it was not delivered (no secret in it).
    pub result: Result<u16, String>,
}

/// The webhooks approval requests go to, and what the requests offer.
struct Poster {
    webhooks: Vec<WebhookConnector>,
    links: Option<LinkSigner>,
    /// `[approvals.slack]` is set: Slack messages carry interactive buttons.
    interactive: bool,
}

impl ApprovalNotifier {
    /// The notifier of `config`, if `[approvals] notify` names webhooks
    /// (its thread started).
    pub fn from_config(config: &Config) -> Result<Option<Self>> {
        let approvals = &config.approvals;
        if approvals.notify.is_empty() {
            return Ok(None);
        }
        let secrets = approvals.load_secrets()?;
        let mut webhooks = Vec::new();
        for name in &approvals.notify {
            let w = config
                .connectors
                .webhooks
                .iter()
                .find(|w| &w.name == name)
                .with_context(|| format!("approvals.notify: no webhook {name:?}"))?;
            webhooks.push(WebhookConnector::new(w, &config.connectors.http)?);
        }
        let links = approvals.links.as_ref().map(|l| {
            LinkSigner::new(
                secrets
                    .link_key
                    .clone()
                    .expect("loaded with [approvals.links]"),
                &l.base_url,
                l.expire_secs,
            )
        });
        let mut poster = Poster {
            webhooks,
            links,
            interactive: approvals.slack.is_some(),
        };
        let (tx, requests) = mpsc::channel::<ApprovalRequest>();
        let (posted, done) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("vigil-approval-chat".into())
            .spawn(move || {
                for request in requests {
                    let deliveries = poster.send(&request, crate::clock::now_ms());
                    if posted
                        .send(Posted {
                            request,
                            deliveries,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            })
            .context("cannot start the approval-request thread")?;
        Ok(Some(ApprovalNotifier {
            tx: Some(tx),
            done,
            in_flight: 0,
            worker: Some(worker),
        }))
    }

    /// Queues `r` for posting.
    pub fn submit(&mut self, r: ApprovalRequest) {
        if let Some(tx) = &self.tx
            && tx.send(r).is_ok()
        {
            self.in_flight += 1;
        }
    }

    /// The requests posted since the last call; with `wait`, every one
    /// submitted (the end of a run).
    pub fn completed(&mut self, wait: bool) -> Vec<Posted> {
        let mut out = Vec::new();
        while self.in_flight > 0 {
            let next = if wait {
                self.done.recv().ok()
            } else {
                self.done.try_recv().ok()
            };
            let Some(p) = next else { break };
            self.in_flight -= 1;
            out.push(p);
        }
        out
    }
}

impl Drop for ApprovalNotifier {
    fn drop(&mut self) {
        // The thread ends once its queue is closed and drained.
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Poster {
    /// Posts `r` to every webhook, made at `now_ms`; one delivery each.
    fn send(&mut self, r: &ApprovalRequest, now_ms: i64) -> Vec<Delivery> {
        let links = self
            .links
            .as_ref()
            .map(|s| s.links(&r.action_id, r.expires_ms, now_ms.div_euclid(1000)));
        let links = links.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
        let interactive = self.interactive;
        self.webhooks
            .iter_mut()
            .map(|w| {
                let body = match w.format() {
                    WebhookFormat::Slack => slack_request(r, interactive, links),
                    WebhookFormat::Pagerduty => {
                        pagerduty_request(w.routing_key().unwrap_or_default(), r, links)
                    }
                };
                let name = w.name().to_owned();
                let result = w
                    .post(body.to_string())
                    .map_err(|e| format!("webhook {name}: {e}"));
                Delivery {
                    webhook: name,
                    result,
                }
            })
            .collect()
    }
}

/// One line for notifications and receivers that read only `text`.
fn summary(r: &ApprovalRequest) -> String {
    format!(
        "Approval needed: {} on {} (rule {}, event {}) until {}",
        r.action,
        r.target,
        r.rule,
        r.event_id,
        rfc3339(r.expires_ms)
    )
}

/// The body for a `slack`-format webhook.
pub fn slack_request(r: &ApprovalRequest, interactive: bool, links: Option<(&str, &str)>) -> Value {
    let buttons = match (interactive, links) {
        (true, _) => Buttons::Interactive,
        (false, Some((approve, reject))) => Buttons::Links { approve, reject },
        (false, None) => Buttons::None,
    };
    let mut vigil = vigil_fields(r);
    if let Some((approve, reject)) = links {
        vigil["approve_url"] = json!(approve);
        vigil["reject_url"] = json!(reject);
    }
    json!({
        "text": slack_escape(&summary(r)),
        "blocks": approval_blocks(r, buttons, slack_escape),
        "vigil": vigil,
    })
}

/// The body for a `pagerduty` webhook: a trigger, de-duplicated per
/// approval.
pub fn pagerduty_request(
    routing_key: &str,
    r: &ApprovalRequest,
    links: Option<(&str, &str)>,
) -> Value {
    let mut details = vigil_fields(r);
    if let Some((approve, reject)) = links {
        details["approve_url"] = json!(approve);
        details["reject_url"] = json!(reject);
    }
    let mut text = summary(r);
    if text.chars().count() > 1024 {
        text = text.chars().take(1023).collect::<String>() + "…";
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": format!("approval-{}", r.action_id),
        "payload": {
            "summary": text,
            "severity": "warning",
            "source": format!("vigil:{}", r.rule),
            "group": r.rule,
            "class": "approval-request",
            "custom_details": details,
        }
    })
}

fn vigil_fields(r: &ApprovalRequest) -> Value {
    json!({
        "type": "approval-request",
        "action_id": r.action_id,
        "rule": r.rule,
        "event_id": r.event_id,
        "action": r.action,
        "target": r.target,
        "expires": rfc3339(r.expires_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ApprovalRequest {
        ApprovalRequest {
            action_id: "act-0123456789abcdef".into(),
            rule: "mfa-push-fatigue".into(),
            event_id: "ev-1".into(),
            action: "suspend-user",
            target: "<!channel> bob@example.com".into(),
            expires_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn slack_messages_carry_buttons_and_escape_event_text() {
        let body = slack_request(&request(), true, None);
        // What Slack renders is escaped; `vigil` keeps the raw values.
        let shown = format!("{}{}", body["text"], body["blocks"]);
        assert!(
            !shown.contains("<!channel>") && shown.contains("&lt;!channel&gt;"),
            "{shown}"
        );
        assert_eq!(body["vigil"]["target"], "<!channel> bob@example.com");
        let actions = body["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap();
        let ids: Vec<_> = actions["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action_id"].as_str().unwrap(),
                    e["value"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("vigil-approve", "act-0123456789abcdef"),
                ("vigil-reject", "act-0123456789abcdef")
            ]
        );
        assert_eq!(body["vigil"]["expires"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn without_interactivity_the_links_are_the_buttons() {
        let body = slack_request(&request(), false, Some(("https://v/a", "https://v/r")));
        assert_eq!(body["vigil"]["approve_url"], "https://v/a");
        let text = body["blocks"].to_string();
        assert!(
            text.contains("\"url\":\"https://v/a\"") && text.contains("\"url\":\"https://v/r\""),
            "{text}"
        );
        let none = slack_request(&request(), false, None);
        assert!(!none["blocks"].to_string().contains("button"));
        let pd = pagerduty_request("rk", &request(), Some(("https://v/a", "https://v/r")));
        assert_eq!(pd["dedup_key"], "approval-act-0123456789abcdef");
        assert_eq!(pd["payload"]["custom_details"]["reject_url"], "https://v/r");
    }
}
