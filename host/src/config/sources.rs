//! `[[sources]]` entries: where `vigil run` and the service read events
//! (`sources::okta_poll`, `sources::tail` read them), with their checks.
//! Here, not beside the sources, so configuration depends on nothing above
//! it.

use std::path::PathBuf;

use anyhow::{Result, bail};
use reqwest::Url;
use serde::Deserialize;

use super::ConnectorsConfig;
use super::connectors::OktaAuthScheme;

/// `[[sources]] type = "okta-poll"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OktaPollConfig {
    /// The Okta org, `https://example.okta.com`. Default: the
    /// `[connectors.okta]` base_url.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the API token. Default (with neither
    /// this nor `token_file`): the Okta connector's token, when the poller
    /// reads the connector's org.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `ssws` or `bearer`. Default: the connector's when its token is used,
    /// else `ssws`.
    #[serde(default)]
    pub auth_scheme: Option<OktaAuthScheme>,
    /// Seconds between polls once caught up (an empty page).
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Events per page, 1 to 1000.
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Where to begin when no cursor is saved: `"now"` or an RFC 3339 time.
    #[serde(default = "default_start")]
    pub start: String,
    /// An Okta System Log filter expression, e.g. `eventType sw "user.mfa"`.
    #[serde(default)]
    pub filter: Option<String>,
}

fn default_interval_secs() -> u64 {
    10
}

fn default_limit() -> u32 {
    1000
}

fn default_start() -> String {
    "now".to_owned()
}

/// Where the first request starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// The time the poller first starts (without a saved cursor).
    Now,
    /// `since`, already in Okta's form (`2026-03-01T10:00:00.000Z`).
    Since(String),
}

impl OktaPollConfig {
    /// The base URL this source reads: its own, else the connector's.
    pub(crate) fn base_url<'a>(&'a self, connectors: &'a ConnectorsConfig) -> Option<&'a str> {
        self.base_url
            .as_deref()
            .or(connectors.okta.as_ref().map(|o| o.base_url.as_str()))
    }

    /// Whether the token comes from `[connectors.okta]`: neither key is set
    /// here and the poller reads the connector's own org (the connector's
    /// token is never sent to another host).
    pub(crate) fn uses_connector_token(&self, connectors: &ConnectorsConfig) -> bool {
        self.token_env.is_none()
            && self.token_file.is_none()
            && connectors.okta.as_ref().is_some_and(|o| {
                self.base_url
                    .as_deref()
                    .is_none_or(|b| b.trim_end_matches('/') == o.base_url.trim_end_matches('/'))
            })
    }

    /// Checks the keys; `at` names the source (`sources[0]`).
    pub fn validate(&self, at: &str, connectors: &ConnectorsConfig) -> Result<()> {
        let Some(base) = self.base_url(connectors) else {
            bail!("{at}.base_url: not set, and there is no [connectors.okta] to take it from");
        };
        check_base_url(&format!("{at}.base_url"), base)?;
        match (&self.token_env, &self.token_file) {
            (Some(_), Some(_)) => bail!("{at}: set either token_env or token_file, not both"),
            (None, None) if !self.uses_connector_token(connectors) => bail!(
                "{at}.token_env: not set; set token_env or token_file (the [connectors.okta] \
                 token is used only when the poller reads that connector's org)"
            ),
            _ => {}
        }
        if !(1..=3600).contains(&self.interval_secs) {
            bail!(
                "{at}.interval_secs is {}; it must be between 1 and 3600",
                self.interval_secs
            );
        }
        if !(1..=1000).contains(&self.limit) {
            bail!(
                "{at}.limit is {}; Okta pages hold 1 to 1000 events",
                self.limit
            );
        }
        parse_start(&format!("{at}.start"), &self.start)?;
        if self.filter.as_deref().is_some_and(|f| f.trim().is_empty()) {
            bail!("{at}.filter is empty; remove it to read every event");
        }
        Ok(())
    }
}

pub(crate) fn parse_start(at: &str, value: &str) -> Result<Start> {
    if value.trim().eq_ignore_ascii_case("now") {
        return Ok(Start::Now);
    }
    match chrono::DateTime::parse_from_rfc3339(value.trim()) {
        Ok(t) => Ok(Start::Since(okta_time(t.with_timezone(&chrono::Utc)))),
        Err(e) => bail!(
            "{at}: {value:?} is neither \"now\" nor an RFC 3339 time such as \
             2026-03-01T00:00:00Z ({e})"
        ),
    }
}

/// Okta's `since` form: UTC with milliseconds.
pub(crate) fn okta_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A base URL must parse and use https, except on loopback (the same rule
/// as the connectors': a token never travels in clear text).
pub(crate) fn check_base_url(at: &str, url: &str) -> Result<Url> {
    super::connectors::secure_url(at, url, true)
}

/// Where reading starts in a file that exists when the tail starts.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TailFrom {
    #[default]
    End,
    Start,
}

/// `[[sources]] type = "tail"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    /// The file to follow (relative to the config file).
    pub path: PathBuf,
    #[serde(default)]
    pub from: TailFrom,
    /// Milliseconds between polls of the file.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_poll_ms() -> u64 {
    250
}

impl TailConfig {
    /// Checks the keys; `at` names the source (`sources[0]`).
    pub fn validate(&self, at: &str) -> Result<()> {
        if self.path.as_os_str().is_empty() {
            bail!("{at}.path is empty");
        }
        if !(10..=60_000).contains(&self.poll_ms) {
            bail!(
                "{at}.poll_ms is {}; it must be between 10 and 60000",
                self.poll_ms
            );
        }
        Ok(())
    }
}
