//! `[connectors]` and `[dispatch]`: which systems carry out actions, how to
//! reach them, and which connector serves which action.
//!
//! Credentials are named here (an environment variable or a file), never
//! written here; they are read when the connectors are built
//! (`actions::dispatch`). Base URLs must be `https://`, except on loopback
//! (tests, local proxies), so a token is never sent in clear text.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::model::ActionKind;

/// Connector names that are not webhook names.
pub const RESERVED_NAMES: &[&str] = &["okta", "graph", "log"];

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnectorsConfig {
    /// Timeouts and retries shared by every connector.
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub okta: Option<OktaConfig>,
    #[serde(default)]
    pub graph: Option<GraphConfig>,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

impl ConnectorsConfig {
    /// True when no connector is configured: every action then goes to the
    /// log executor (nothing outside Vigil is changed).
    pub fn is_empty(&self) -> bool {
        self.okta.is_none() && self.graph.is_none() && self.webhooks.is_empty()
    }

    /// Every configured connector name.
    pub fn names(&self) -> Vec<&str> {
        let mut names = vec!["log"];
        if self.okta.is_some() {
            names.push("okta");
        }
        if self.graph.is_some() {
            names.push("graph");
        }
        names.extend(self.webhooks.iter().map(|w| w.name.as_str()));
        names
    }

    pub(super) fn validate(&self) -> Result<()> {
        self.http.validate()?;
        if let Some(okta) = &self.okta {
            check_url("connectors.okta.base_url", &okta.base_url)?;
        }
        if let Some(graph) = &self.graph {
            check_url("connectors.graph.base_url", &graph.base_url)?;
            match (&graph.token_url, &graph.tenant_id) {
                (Some(url), _) => check_url("connectors.graph.token_url", url)?,
                (None, Some(_)) => {}
                (None, None) => bail!(
                    "connectors.graph: set tenant_id (the token endpoint is then \
                     login.microsoftonline.com/<tenant_id>/oauth2/v2.0/token) or token_url"
                ),
            }
            if graph.client_id.trim().is_empty() {
                bail!("connectors.graph.client_id is empty");
            }
            if graph.reset_methods.is_empty() {
                bail!(
                    "connectors.graph.reset_methods is empty; reset-factors would delete nothing"
                );
            }
        }
        let mut seen = Vec::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let at = format!("connectors.webhooks[{i}]");
            if w.name.trim().is_empty() {
                bail!("{at}.name is empty");
            }
            if RESERVED_NAMES.contains(&w.name.as_str()) {
                bail!(
                    "{at}.name {:?} is reserved (okta, graph and log name the built-in connectors)",
                    w.name
                );
            }
            if seen.contains(&w.name.as_str()) {
                bail!("{at}.name {:?} is used by another webhook", w.name);
            }
            seen.push(w.name.as_str());
            match (&w.url, &w.url_env, &w.url_file) {
                (Some(url), None, None) => check_url(&format!("{at}.url"), url)?,
                (None, Some(_), None) | (None, None, Some(_)) => {}
                // PagerDuty's public Events API v2 endpoint is the default.
                (None, None, None) if w.format == WebhookFormat::Pagerduty => {}
                _ => bail!(
                    "{at}: set exactly one of url, url_env or url_file \
                     (chat webhook URLs are credentials: prefer url_env or url_file)"
                ),
            }
            if w.actions.is_empty() {
                bail!("{at}.actions is empty");
            }
            for (j, a) in w.actions.iter().enumerate() {
                if !matches!(a.as_str(), "notify" | "escalate") {
                    bail!("{at}.actions[{j}]: {a:?}; a webhook serves only notify and escalate");
                }
            }
            if w.format == WebhookFormat::Pagerduty
                && w.routing_key_env.is_none()
                && w.routing_key_file.is_none()
            {
                bail!("{at}: format = \"pagerduty\" needs routing_key_env or routing_key_file");
            }
        }
        Ok(())
    }
}

/// `[connectors.http]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub connect_timeout_ms: u64,
    /// Whole request, connect to last byte.
    pub timeout_ms: u64,
    /// Requests per action in all, first try included.
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Longest rate-limit wait honoured; a 429 asking for more fails the
    /// action at once.
    pub max_retry_wait_secs: u64,
    /// Longest time one action may take, retries and waits included (it
    /// holds up the pipeline meanwhile).
    pub max_action_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout_ms: 3_000,
            timeout_ms: 10_000,
            max_attempts: 4,
            backoff_initial_ms: 500,
            backoff_max_ms: 20_000,
            max_retry_wait_secs: 60,
            max_action_secs: 30,
        }
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<()> {
        for (key, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("timeout_ms", self.timeout_ms),
            ("max_attempts", u64::from(self.max_attempts)),
        ] {
            if value == 0 {
                bail!("connectors.http.{key} must be greater than 0");
            }
        }
        if self.max_attempts > 10 {
            bail!(
                "connectors.http.max_attempts is {}; at most 10 is allowed",
                self.max_attempts
            );
        }
        if self.backoff_initial_ms > self.backoff_max_ms {
            bail!("connectors.http.backoff_initial_ms is larger than backoff_max_ms");
        }
        if self.max_retry_wait_secs > 3600 {
            bail!("connectors.http.max_retry_wait_secs is more than an hour");
        }
        if self.max_action_secs == 0 || self.max_action_secs > 600 {
            bail!("connectors.http.max_action_secs must be 1 to 600");
        }
        Ok(())
    }
}

/// How the Okta token is presented.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OktaAuthScheme {
    /// `Authorization: SSWS <API token>`.
    #[default]
    Ssws,
    /// `Authorization: Bearer <OAuth access token>`.
    Bearer,
}

/// `[connectors.okta]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// `https://example.okta.com`.
    pub base_url: String,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub auth_scheme: OktaAuthScheme,
    /// Id of a network zone with `usage: BLOCKLIST` that `block-ip` adds
    /// addresses to. Without it, block-ip fails with a clear reason.
    #[serde(default)]
    pub blocklist_zone: Option<String>,
}

/// `[connectors.graph]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    #[serde(default = "default_graph_url")]
    pub base_url: String,
    /// The directory (tenant) id; gives the default token endpoint.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Overrides the token endpoint (national clouds, tests).
    #[serde(default)]
    pub token_url: Option<String>,
    pub client_id: String,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default = "default_graph_scope")]
    pub scope: String,
    /// Id of an IP named location that `block-ip` adds ranges to (a
    /// conditional access policy must block it).
    #[serde(default)]
    pub blocked_named_location: Option<String>,
    /// Authentication method kinds `reset-factors` deletes (Graph's
    /// `{kind}Methods` collections). The password cannot be deleted.
    #[serde(default = "default_reset_methods")]
    pub reset_methods: Vec<String>,
}

impl GraphConfig {
    pub fn token_endpoint(&self) -> String {
        match (&self.token_url, &self.tenant_id) {
            (Some(url), _) => url.clone(),
            (None, Some(tenant)) => {
                format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
            }
            (None, None) => unreachable!("validated: tenant_id or token_url"),
        }
    }
}

fn default_graph_url() -> String {
    "https://graph.microsoft.com/v1.0".to_owned()
}

fn default_graph_scope() -> String {
    "https://graph.microsoft.com/.default".to_owned()
}

fn default_reset_methods() -> Vec<String> {
    [
        "microsoftAuthenticator",
        "phone",
        "softwareOath",
        "fido2",
        "email",
        "temporaryAccessPass",
        "windowsHelloForBusiness",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The body a webhook receives.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookFormat {
    /// `{"text": …}` plus Vigil's fields: Slack incoming webhooks, most
    /// chat tools, generic receivers.
    #[default]
    Slack,
    /// A PagerDuty Events API v2 `trigger` event.
    Pagerduty,
}

/// `[[connectors.webhooks]]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The connector's name in `[dispatch]` and the audit log.
    pub name: String,
    /// The receiver's URL (default for `format = "pagerduty"`: PagerDuty's
    /// Events API v2 endpoint).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    #[serde(default)]
    pub format: WebhookFormat,
    /// PagerDuty integration (routing) key.
    #[serde(default)]
    pub routing_key_env: Option<String>,
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    /// When set, each body is signed: `<signature_header>: sha256=<hex
    /// HMAC-SHA256 of "<timestamp>.<body>">`, with the timestamp in
    /// `X-Vigil-Timestamp`.
    #[serde(default)]
    pub hmac_secret_env: Option<String>,
    #[serde(default)]
    pub hmac_secret_file: Option<PathBuf>,
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// Which of `notify` / `escalate` this webhook serves: it receives
    /// them by default, and `[dispatch]` can route only these to it.
    #[serde(default = "default_webhook_actions")]
    pub actions: Vec<String>,
}

fn default_signature_header() -> String {
    "X-Vigil-Signature".to_owned()
}

fn default_webhook_actions() -> Vec<String> {
    vec!["notify".to_owned(), "escalate".to_owned()]
}

/// `[dispatch]` and `[[rules]] dispatch`: action kind → connector name(s).
pub type Dispatch = BTreeMap<String, OneOrMany>;

/// A connector name or a list of them.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn names(&self) -> Vec<String> {
        match self {
            OneOrMany::One(n) => vec![n.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Checks a dispatch table against the action kinds and the configured
/// connectors.
pub(super) fn validate_dispatch(
    at: &str,
    d: &Dispatch,
    connectors: &ConnectorsConfig,
) -> Result<()> {
    let names = connectors.names();
    for (kind, target) in d {
        let Some(k) = ActionKind::from_name(kind) else {
            bail!("{at}.{kind}: unknown action kind");
        };
        let targets = target.names();
        if targets.is_empty() {
            bail!("{at}.{kind}: names no connector");
        }
        for name in &targets {
            if !names.contains(&name.as_str()) {
                bail!(
                    "{at}.{kind}: no connector named {name:?}; configured: {}",
                    names.join(", ")
                );
            }
        }
        let identity = !matches!(k, ActionKind::Notify | ActionKind::Escalate);
        if identity && targets.len() > 1 {
            bail!("{at}.{kind}: an identity action goes to exactly one connector");
        }
        if identity
            && targets
                .iter()
                .any(|n| !RESERVED_NAMES.contains(&n.as_str()))
        {
            bail!("{at}.{kind}: a webhook cannot carry out {kind}");
        }
    }
    Ok(())
}

/// A base URL must parse and use https, except on loopback.
fn check_url(at: &str, url: &str) -> Result<()> {
    secure_url(at, url, true).map(|_| ())
}

/// Parses a URL that a credential will be sent to: it must use https,
/// except on loopback (tests, local proxies), so no token travels in clear
/// text. `quote` says whether errors may show the URL (a chat webhook URL
/// is itself a credential: then they do not).
pub fn secure_url(at: &str, url: &str, quote: bool) -> Result<reqwest::Url> {
    let shown = if quote {
        format!("{url:?}")
    } else {
        "the URL".to_owned()
    };
    let parsed = match reqwest::Url::parse(url.trim()) {
        Ok(u) => u,
        Err(e) => bail!("{at}: {shown} is not a valid URL ({e})"),
    };
    let Some(host) = parsed.host_str() else {
        bail!("{at}: {shown} has no host");
    };
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        other => bail!("{at}: {shown} uses {other}; https is required (http only on loopback)"),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text).unwrap_err())
    }

    #[test]
    fn a_full_connectors_section_parses() {
        let c = Config::parse(
            r#"
            [connectors.http]
            max_attempts = 3
            [connectors.okta]
            base_url = "https://example.okta.com"
            token_env = "OKTA_TOKEN"
            blocklist_zone = "nzo1"
            [connectors.graph]
            tenant_id = "t1"
            client_id = "c1"
            client_secret_file = "/run/secrets/graph"
            [[connectors.webhooks]]
            name = "pd"
            format = "pagerduty"
            routing_key_env = "PD_KEY"
            actions = ["escalate"]
            [dispatch]
            escalate = ["pd"]
            [[rules]]
            builtin = "mfa-bypass"
            dispatch = { suspend-user = "graph" }
            "#,
        )
        .unwrap();
        assert_eq!(c.connectors.http.policy().max_attempts, 3);
        assert_eq!(
            c.connectors.graph.as_ref().unwrap().token_endpoint(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
        assert_eq!(c.connectors.names(), vec!["log", "okta", "graph", "pd"]);
        assert!(!c.connectors.is_empty());
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback() {
        let e =
            err("[connectors.okta]\nbase_url = \"http://example.okta.com\"\ntoken_env = \"X\"\n");
        assert!(
            e.contains("connectors.okta.base_url") && e.contains("https"),
            "{e}"
        );
        Config::parse(
            "[connectors.okta]\nbase_url = \"http://127.0.0.1:8080\"\ntoken_env = \"X\"\n",
        )
        .unwrap();
    }

    #[test]
    fn dispatch_names_known_kinds_and_connectors() {
        let e = err("[dispatch]\nsuspend-user = \"okta\"\n");
        assert!(
            e.contains("dispatch.suspend-user") && e.contains("no connector named \"okta\""),
            "{e}"
        );
        let e = err("[dispatch]\nnuke = \"log\"\n");
        assert!(e.contains("dispatch.nuke: unknown action kind"), "{e}");
        let e = err(
            "[[connectors.webhooks]]\nname = \"s\"\nurl = \"https://h.example\"\n[dispatch]\nsuspend-user = \"s\"\n",
        );
        assert!(e.contains("a webhook cannot carry out suspend-user"), "{e}");
    }

    #[test]
    fn webhooks_need_unique_unreserved_names_and_one_url() {
        let e = err("[[connectors.webhooks]]\nname = \"okta\"\nurl = \"https://h.example\"\n");
        assert!(e.contains("reserved"), "{e}");
        let e = err("[[connectors.webhooks]]\nname = \"s\"\n");
        assert!(e.contains("exactly one of url, url_env or url_file"), "{e}");
        let e = err(
            "[[connectors.webhooks]]\nname = \"s\"\nurl = \"https://h.example\"\nactions = [\"suspend-user\"]\n",
        );
        assert!(e.contains("serves only notify and escalate"), "{e}");
    }

    #[test]
    fn graph_needs_a_tenant_or_a_token_url() {
        let e = err("[connectors.graph]\nclient_id = \"c\"\nclient_secret_env = \"S\"\n");
        assert!(e.contains("tenant_id"), "{e}");
    }
}
