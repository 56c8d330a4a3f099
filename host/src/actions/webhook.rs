//! The webhook connector: posts `notify` and `escalate` messages to a chat
//! webhook, a generic receiver, or PagerDuty (`[[connectors.webhooks]]`).
//!
//! Every body is JSON, sent as one `POST` with `Content-Type:
//! application/json`; retries, backoff and rate-limit waits are
//! [`super::http::HttpClient`]'s. Only a 2xx answer counts as delivered (a
//! redirect is not followed: it would send the message somewhere the
//! operator did not configure).
//!
//! # Formats
//!
//! `format = "slack"` (the default) — Slack incoming webhooks and most chat
//! tools read `text`; generic receivers get the structure under `vigil`
//! (Slack ignores fields it does not know):
//!
//! ```json
//! {
//!   "text": "[HIGH] MFA push fatigue for alice@example.com — rule mfa-push-fatigue, event ev-1",
//!   "vigil": {
//!     "action": "escalate", "action_id": "…", "rule": "mfa-push-fatigue",
//!     "event_id": "ev-1", "source": "okta", "severity": "high",
//!     "summary": "MFA push fatigue for alice@example.com",
//!     "details": {"user": "alice@example.com", "pushes": "12"}
//!   }
//! }
//! ```
//!
//! `text` is one line (line breaks and other control characters become
//! spaces) with Slack's `mrkdwn` control characters escaped (`&` → `&amp;`,
//! `<` → `&lt;`, `>` → `&gt;`), so text taken from an event — a display
//! name, a user agent — cannot inject a link or a `<!channel>` mention. The
//! `vigil` fields are the raw values. A detail key given more than once
//! keeps every value, joined with `", "`.
//!
//! `format = "pagerduty"` — a PagerDuty Events API v2 `trigger` event, for
//! `https://events.pagerduty.com/v2/enqueue` (PagerDuty answers 202):
//! `routing_key` is the integration key, `dedup_key` the action id (so a
//! retried or replayed action opens one incident, not two),
//! `payload.summary` is `"<summary> (rule <rule>)"` cut to PagerDuty's 1024
//! characters (the summary is cut, the rule kept), `payload.severity` maps
//! critical → `critical`, high → `error`, medium → `warning`, low and info
//! → `info`; `source` is `vigil:<rule>`, `component` the event's source,
//! `group` the rule, `class` the action kind, and `custom_details` holds the
//! event id, the action id and the message's details (Vigil's two keys win
//! over a detail of the same name).
//!
//! # Credentials
//!
//! A chat webhook URL is a credential (whoever holds it can post to the
//! channel): give it with `url_env` or `url_file`. It is never written to
//! the audit log, an error or a log line — those name the webhook by its
//! configured name — and it is scrubbed from any vendor text quoted in an
//! error, as are the routing key and the HMAC secret.
//!
//! # Signatures
//!
//! With `hmac_secret_env` or `hmac_secret_file` set, each request carries
//!
//! ```text
//! X-Vigil-Timestamp: <unix seconds when the request was sent>
//! X-Vigil-Signature: sha256=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
//! ```
//!
//! (the signature header's name is `signature_header`). Each retry is
//! signed afresh with its own timestamp. A receiver verifies a request by:
//! 1. reading the raw body bytes *before* parsing them (re-serialised JSON
//!    differs byte for byte);
//! 2. recomputing `HMAC-SHA256(secret, timestamp + "." + raw body)` with the
//!    timestamp exactly as received in `X-Vigil-Timestamp`;
//! 3. comparing it with the hex after `sha256=` in constant time
//!    (`hmac.compare_digest` in Python, `crypto.timingSafeEqual` in
//!    Node.js, `Mac::verify_slice` in Rust), never with `==`;
//! 4. rejecting a timestamp more than a few minutes from its own clock, so
//!    a captured request cannot be replayed later (and, to be strict,
//!    remembering the `action_id`s seen within that window).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderName};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::config::connectors::{ConnectorsConfig, HttpConfig, WebhookConfig, WebhookFormat};
use crate::model::{Action, ActionKind, Message, Severity};

use super::connector::{ActionContext, Connector, ConnectorError, Executed, Undo};
use super::http::HttpClient;
use crate::secret::{self, Secret};

/// PagerDuty's Events API v2 endpoint, used when a `pagerduty` webhook
/// names no URL.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PagerDuty's limit on `payload.summary`, in characters.
const PAGERDUTY_SUMMARY_MAX: usize = 1024;

/// The header carrying the signing time.
pub const TIMESTAMP_HEADER: &str = "X-Vigil-Timestamp";

/// One configured webhook.
pub struct WebhookConnector {
    name: String,
    url: Url,
    format: WebhookFormat,
    routing_key: Option<Secret>,
    hmac_secret: Option<Secret>,
    signature_header: HeaderName,
    actions: Vec<ActionKind>,
    http: HttpClient,
}

impl std::fmt::Debug for WebhookConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL is a credential: only its host is shown.
        f.debug_struct("WebhookConnector")
            .field("name", &self.name)
            .field("host", &self.url.host_str())
            .field("format", &self.format)
            .field("signed", &self.hmac_secret.is_some())
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl WebhookConnector {
    /// Loads the webhook's credentials and builds its HTTP client. Errors
    /// name the config keys, never the URL or a secret.
    pub fn new(config: &WebhookConfig, http: &HttpConfig) -> Result<Self> {
        let name = config.name.clone();
        let at = format!("connectors.webhooks[{name}]");
        let url_text = match (&config.url, &config.url_env, &config.url_file) {
            (Some(url), None, None) => Secret::new(url.clone()),
            (None, None, None) if config.format == WebhookFormat::Pagerduty => {
                Secret::new(PAGERDUTY_EVENTS_URL)
            }
            (Some(_), _, _) => bail!("{at}: set exactly one of url, url_env or url_file"),
            (None, env, file) => {
                secret::load(&format!("{at}.url"), env.as_deref(), file.as_deref())?
            }
        };
        let url = parse_url(&at, url_text.expose())?;

        let routing_key = match config.format {
            WebhookFormat::Pagerduty => Some(secret::load(
                &format!("{at}.routing_key"),
                config.routing_key_env.as_deref(),
                config.routing_key_file.as_deref(),
            )?),
            WebhookFormat::Slack => {
                if config.routing_key_env.is_some() || config.routing_key_file.is_some() {
                    bail!("{at}: a routing key is used only with format = \"pagerduty\"");
                }
                None
            }
        };
        let hmac_secret = secret::load_optional(
            &format!("{at}.hmac_secret"),
            config.hmac_secret_env.as_deref(),
            config.hmac_secret_file.as_deref(),
        )?;
        let signature_header = HeaderName::from_bytes(config.signature_header.as_bytes())
            .with_context(|| {
                format!(
                    "{at}.signature_header: {:?} is not a valid HTTP header name",
                    config.signature_header
                )
            })?;
        if signature_header
            .as_str()
            .eq_ignore_ascii_case(TIMESTAMP_HEADER)
            || signature_header == CONTENT_TYPE
        {
            bail!(
                "{at}.signature_header: {:?} is a header Vigil already sends",
                config.signature_header
            );
        }

        let mut actions = Vec::new();
        for (j, a) in config.actions.iter().enumerate() {
            match a.as_str() {
                "notify" => actions.push(ActionKind::Notify),
                "escalate" => actions.push(ActionKind::Escalate),
                other => {
                    bail!("{at}.actions[{j}]: {other:?}; a webhook serves only notify and escalate")
                }
            }
        }

        let mut client = HttpClient::new(http.policy())?;
        client.add_secret(url_text.expose());
        client.add_secret(url.as_str());
        // Receivers sometimes quote the path they could not route; the path
        // (Slack's `/services/T…/B…/<token>`) and a query string (`?token=`)
        // are the secret parts.
        if url.path() != "/" {
            client.add_secret(url.path());
        }
        if let Some(query) = url.query() {
            client.add_secret(query);
        }
        for s in routing_key.iter().chain(hmac_secret.iter()) {
            client.add_secret(s.expose());
        }

        Ok(WebhookConnector {
            name,
            url,
            format: config.format,
            routing_key,
            hmac_secret,
            signature_header,
            actions,
            http: client,
        })
    }

    /// The webhook's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The body format this webhook takes.
    pub fn format(&self) -> WebhookFormat {
        self.format
    }

    /// The PagerDuty routing key (`format = "pagerduty"` only).
    pub fn routing_key(&self) -> Option<&str> {
        self.routing_key.as_ref().map(Secret::expose)
    }

    /// Posts one JSON body (signed when an HMAC secret is set) and answers
    /// the 2xx status; anything else is an error naming the webhook, never
    /// its URL.
    pub fn post(&mut self, body: String) -> Result<u16, ConnectorError> {
        let what = format!("webhook {}", self.name);
        let response = self.http.send(&what, |client| {
            let request = client
                .post(self.url.clone())
                .header(CONTENT_TYPE, "application/json");
            let request = match &self.hmac_secret {
                Some(secret) => {
                    let timestamp = unix_now().to_string();
                    request.header(TIMESTAMP_HEADER, &timestamp).header(
                        self.signature_header.clone(),
                        signature(secret.expose(), &timestamp, body.as_bytes()),
                    )
                }
                None => request,
            };
            request.body(body.clone())
        })?;
        if !(200..300).contains(&response.status) {
            // Redirects are not followed (and the Location is not quoted: it
            // may hold a credential too).
            return Err(ConnectorError {
                status: Some(response.status),
                vendor_code: None,
                message: format!(
                    "webhook {}: answered with a redirect, which is not followed; \
                     the message was not delivered (check the webhook's URL)",
                    self.name
                ),
                attempts: 1,
            });
        }
        Ok(response.status)
    }

    fn format_name(&self) -> &'static str {
        match self.format {
            WebhookFormat::Slack => "slack",
            WebhookFormat::Pagerduty => "pagerduty",
        }
    }

    /// The JSON body for one message.
    fn body(&self, kind: ActionKind, message: &Message, ctx: &ActionContext<'_>) -> Value {
        match self.format {
            WebhookFormat::Slack => slack_body(kind, message, ctx),
            WebhookFormat::Pagerduty => pagerduty_body(
                self.routing_key.as_ref().map_or("", Secret::expose),
                kind,
                message,
                ctx,
            ),
        }
    }
}

/// The `[[connectors.webhooks]]` entries, built (see `dispatch::REGISTRY`).
pub fn from_config(config: &ConnectorsConfig) -> anyhow::Result<Vec<Box<dyn Connector>>> {
    config
        .webhooks
        .iter()
        .map(|w| Ok(Box::new(WebhookConnector::new(w, &config.http)?) as Box<dyn Connector>))
        .collect()
}

impl Connector for WebhookConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports(&self, kind: ActionKind) -> bool {
        matches!(kind, ActionKind::Notify | ActionKind::Escalate) && self.actions.contains(&kind)
    }

    fn execute(
        &mut self,
        action: &Action,
        ctx: &ActionContext<'_>,
    ) -> Result<Executed, ConnectorError> {
        let kind = action.kind();
        let message = match action {
            Action::Notify(m) | Action::Escalate(m) if self.supports(kind) => m,
            Action::Notify(_) | Action::Escalate(_) => {
                return Err(ConnectorError::refused(format!(
                    "webhook {}: not configured for {} (its actions are {})",
                    self.name,
                    kind.name(),
                    self.actions
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            _ => {
                return Err(ConnectorError::refused(format!(
                    "webhook {}: a webhook serves only notify and escalate, not {}",
                    self.name,
                    kind.name()
                )));
            }
        };

        // Serialised once: the signature covers exactly the bytes sent.
        let body = serde_json::to_string(&self.body(kind, message, ctx))
            .expect("a JSON value always serialises");
        let response = self.post(body)?;
        tracing::debug!(
            webhook = %self.name,
            action_id = ctx.action_id,
            status = response,
            "posted {}",
            kind.name()
        );
        Ok(Executed::done(format!(
            "webhook {}: posted {} ({} format) → {}",
            self.name,
            kind.name(),
            self.format_name(),
            response
        )))
    }

    fn undo(&mut self, undo: &Undo) -> Result<String, ConnectorError> {
        Err(ConnectorError::refused(format!(
            "webhook {}: cannot {} (a webhook performs no reversible action)",
            self.name,
            undo.name()
        )))
    }

    /// Checks that the credentials loaded (they did, or [`Self::new`]
    /// failed) and that a TCP connection to the webhook's host opens. No
    /// HTTP request is sent: even a `HEAD` may trigger a receiver.
    fn check(&mut self) -> Result<Vec<String>, ConnectorError> {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        let port = self.url.port_or_known_default().unwrap_or(443);
        let fail = |why: String| {
            ConnectorError::refused(format!(
                "webhook {}: {host}:{port} is not reachable: {why}",
                self.name
            ))
        };
        let addrs: Vec<_> = (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .map_err(|e| fail(format!("cannot resolve the host ({e})")))?
            .collect();
        if addrs.is_empty() {
            return Err(fail("the host resolves to no address".to_owned()));
        }
        let timeout = self.http.policy().connect_timeout;
        let mut last = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(_) => {
                    return Ok(vec![format!(
                        "webhook {}: {host}:{port} reachable (TCP connect); credentials present",
                        self.name
                    )]);
                }
                Err(e) => last = Some(e),
            }
        }
        let e = last.expect("at least one address was tried");
        Err(fail(format!("TCP connect failed ({e})")))
    }
}

/// Parses a webhook URL and requires https, except on loopback. The error
/// never quotes the URL.
fn parse_url(at: &str, text: &str) -> Result<Url> {
    crate::config::connectors::secure_url(&format!("{at}.url"), text, false)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// `sha256=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Slack's `mrkdwn` escaping, on one line: `&`, `<` and `>` become
/// entities; line breaks and other control characters become spaces.
pub fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The message's details as a JSON object; a repeated key keeps every
/// value, joined with `", "`.
fn details_object(details: &[(String, String)]) -> Map<String, Value> {
    let mut map = Map::new();
    for (k, v) in details {
        match map.get_mut(k) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(v);
            }
            _ => {
                map.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    map
}

fn slack_body(kind: ActionKind, message: &Message, ctx: &ActionContext<'_>) -> Value {
    let text = format!(
        "[{}] {} — rule {}, event {}",
        message.severity.name().to_uppercase(),
        slack_escape(&message.summary),
        slack_escape(ctx.rule),
        slack_escape(ctx.event_id),
    );
    json!({
        "text": text,
        "vigil": {
            "action": kind.name(),
            "action_id": ctx.action_id,
            "rule": ctx.rule,
            "event_id": ctx.event_id,
            "source": ctx.event_source,
            "severity": message.severity.name(),
            "summary": message.summary,
            "details": details_object(&message.details),
        }
    })
}

/// PagerDuty's severity for Vigil's.
pub fn pagerduty_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "info",
    }
}

/// `"<summary> (rule <rule>)"` in at most [`PAGERDUTY_SUMMARY_MAX`]
/// characters: the summary is cut (and marked `…`) so the rule stays.
fn pagerduty_summary(summary: &str, rule: &str) -> String {
    let suffix = format!(" (rule {rule})");
    let whole = format!("{summary}{suffix}");
    if whole.chars().count() <= PAGERDUTY_SUMMARY_MAX {
        return whole;
    }
    let suffix_chars = suffix.chars().count();
    if suffix_chars + 1 < PAGERDUTY_SUMMARY_MAX {
        let keep = PAGERDUTY_SUMMARY_MAX - suffix_chars - 1;
        let cut: String = summary.chars().take(keep).collect();
        format!("{cut}…{suffix}")
    } else {
        let cut: String = whole.chars().take(PAGERDUTY_SUMMARY_MAX - 1).collect();
        format!("{cut}…")
    }
}

fn pagerduty_body(
    routing_key: &str,
    kind: ActionKind,
    message: &Message,
    ctx: &ActionContext<'_>,
) -> Value {
    let mut custom = details_object(&message.details);
    custom.insert("event_id".into(), ctx.event_id.into());
    custom.insert("action_id".into(), ctx.action_id.into());
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": ctx.action_id,
        "payload": {
            "summary": pagerduty_summary(&message.summary, ctx.rule),
            "source": format!("vigil:{}", ctx.rule),
            "severity": pagerduty_severity(message.severity),
            "component": ctx.event_source,
            "group": ctx.rule,
            "class": kind.name(),
            "custom_details": custom,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, url: &str) -> WebhookConfig {
        WebhookConfig {
            name: name.into(),
            url: Some(url.into()),
            url_env: None,
            url_file: None,
            format: WebhookFormat::Slack,
            routing_key_env: None,
            routing_key_file: None,
            hmac_secret_env: None,
            hmac_secret_file: None,
            signature_header: "X-Vigil-Signature".into(),
            actions: vec!["notify".into(), "escalate".into()],
        }
    }

    fn ctx() -> ActionContext<'static> {
        ActionContext {
            action_id: "a1b2",
            rule: "r",
            event_id: "ev-1",
            event_source: "okta",
        }
    }

    fn message(summary: &str) -> Message {
        Message {
            severity: Severity::High,
            summary: summary.into(),
            details: vec![("user".into(), "a".into()), ("user".into(), "b".into())],
        }
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // python3: hmac.new(b'whsec_test', b'1700000000.{"a":1}', sha256).hexdigest()
        assert_eq!(
            signature("whsec_test", "1700000000", br#"{"a":1}"#),
            "sha256=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn slack_text_is_escaped_and_one_line() {
        assert_eq!(
            slack_escape("<!channel> a&b <https://evil|click>\nnext"),
            "&lt;!channel&gt; a&amp;b &lt;https://evil|click&gt; next"
        );
        let body = slack_body(ActionKind::Notify, &message("x > y"), &ctx());
        assert_eq!(body["text"], "[HIGH] x &gt; y — rule r, event ev-1");
        assert_eq!(
            body["vigil"]["summary"], "x > y",
            "structured fields stay raw"
        );
        assert_eq!(body["vigil"]["details"]["user"], "a, b");
    }

    #[test]
    fn pagerduty_severity_and_summary_limit() {
        assert_eq!(pagerduty_severity(Severity::Critical), "critical");
        assert_eq!(pagerduty_severity(Severity::High), "error");
        assert_eq!(pagerduty_severity(Severity::Medium), "warning");
        assert_eq!(pagerduty_severity(Severity::Low), "info");
        assert_eq!(pagerduty_severity(Severity::Info), "info");
        let long = "é".repeat(2000);
        let s = pagerduty_summary(&long, "my-rule");
        assert_eq!(s.chars().count(), PAGERDUTY_SUMMARY_MAX);
        assert!(s.ends_with("é… (rule my-rule)"), "{s}");
        assert_eq!(pagerduty_summary("short", "r"), "short (rule r)");
        let s = pagerduty_summary("x", &"r".repeat(2000));
        assert_eq!(s.chars().count(), PAGERDUTY_SUMMARY_MAX);
    }

    #[test]
    fn pagerduty_custom_details_keep_vigils_ids() {
        let mut m = message("s");
        m.details.push(("event_id".into(), "forged".into()));
        let body = pagerduty_body("rk", ActionKind::Escalate, &m, &ctx());
        assert_eq!(body["payload"]["custom_details"]["event_id"], "ev-1");
        assert_eq!(body["dedup_key"], "a1b2");
        assert_eq!(body["payload"]["class"], "escalate");
    }

    #[test]
    fn supports_follows_the_configured_actions() {
        let mut c = config("soc", "https://hooks.example.com/services/T/B/secret");
        c.actions = vec!["escalate".into()];
        let w = WebhookConnector::new(&c, &HttpConfig::default()).unwrap();
        assert!(w.supports(ActionKind::Escalate));
        assert!(!w.supports(ActionKind::Notify));
        assert!(!w.supports(ActionKind::SuspendUser));
        assert_eq!(w.name(), "soc");
        let debug = format!("{w:?}");
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn bad_urls_are_refused_without_quoting_them() {
        for url in [
            "http://hooks.example.com/services/T/B/s3cr3t",
            "not a url s3cr3t",
        ] {
            let err = WebhookConnector::new(&config("soc", url), &HttpConfig::default())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("connectors.webhooks[soc].url"), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
        assert!(
            WebhookConnector::new(&config("l", "http://127.0.0.1:9/h"), &HttpConfig::default())
                .is_ok()
        );
    }

    #[test]
    fn the_url_path_query_and_keys_are_scrubbed_from_quoted_text() {
        let w = WebhookConnector::new(
            &config(
                "soc",
                "https://hooks.example.com/services/T01/B02/tok3n?key=q-k3y",
            ),
            &HttpConfig::default(),
        )
        .unwrap();
        let quoted = w.http.scrub(
            "no route for POST /services/T01/B02/tok3n?key=q-k3y; query key=q-k3y; \
             https://hooks.example.com/services/T01/B02/tok3n?key=q-k3y",
        );
        assert!(
            !quoted.contains("tok3n") && !quoted.contains("q-k3y"),
            "{quoted}"
        );
    }

    #[test]
    fn a_bad_signature_header_is_refused() {
        let mut c = config("soc", "https://hooks.example.com/x");
        c.signature_header = "bad header".into();
        let err = WebhookConnector::new(&c, &HttpConfig::default()).unwrap_err();
        assert!(err.to_string().contains("signature_header"), "{err}");
    }
}
