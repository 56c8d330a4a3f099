//! `[approvals]`: how long a parked action waits for an operator, where the
//! request for a decision is posted, and the two ways a decision can come
//! back from chat: Slack's interactive buttons (`[approvals.slack]`) and
//! signed one-time links (`[approvals.links]`). See `crate::chat`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Deserialize;

use super::connectors::{ConnectorsConfig, secure_url};
use crate::secret::{self, Secret};

/// `[approvals]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// A parked action not decided within this long expires and is never
    /// executed.
    pub expire_secs: u64,
    /// `[[connectors.webhooks]]` names each parked action is posted to, as
    /// a request for a decision (with Approve/Reject buttons when
    /// `[approvals.slack]` is set, signed links when `[approvals.links]` is).
    pub notify: Vec<String>,
    /// Decisions from Slack's interactive buttons.
    pub slack: Option<SlackApprovalsConfig>,
    /// Decisions through signed one-time links.
    pub links: Option<LinksConfig>,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            expire_secs: 24 * 3600,
            notify: Vec::new(),
            slack: None,
            links: None,
        }
    }
}

/// `[approvals.slack]`: the Slack app whose buttons decide parked actions.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackApprovalsConfig {
    /// The app's signing secret (Slack: Basic Information → Signing
    /// Secret), which every interaction request is verified with.
    #[serde(default)]
    pub signing_secret_env: Option<String>,
    #[serde(default)]
    pub signing_secret_file: Option<PathBuf>,
    /// Who may decide: Slack user ids (`U…`, `W…`) and user-group ids
    /// (`S…`). Anyone else is refused, and the refusal is audited.
    pub approvers: Vec<String>,
    /// A bot token (`xoxb-…`, scope `usergroups:read`), needed only when
    /// `approvers` names a user group: membership is asked of Slack at
    /// each decision.
    #[serde(default)]
    pub bot_token_env: Option<String>,
    #[serde(default)]
    pub bot_token_file: Option<PathBuf>,
    /// Slack's Web API base URL.
    #[serde(default = "default_slack_api_url")]
    pub api_url: String,
    /// Hosts a callback's `response_url` may point at: the answer to the
    /// approver is posted there, so any other host is refused.
    #[serde(default = "default_response_hosts")]
    pub response_url_hosts: Vec<String>,
    /// A request whose `X-Slack-Request-Timestamp` is further than this
    /// from the clock is refused (Slack's advice: 5 minutes).
    #[serde(default = "default_timestamp_tolerance")]
    pub timestamp_tolerance_secs: u64,
}

fn default_slack_api_url() -> String {
    "https://slack.com/api".to_owned()
}

fn default_response_hosts() -> Vec<String> {
    vec!["hooks.slack.com".to_owned()]
}

fn default_timestamp_tolerance() -> u64 {
    300
}

/// `[approvals.links]`: signed one-time links for receivers without
/// buttons.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinksConfig {
    /// The address at which approvers reach the service's ingest listener
    /// (`https://vigil.example.com`); links are `<base_url>/v1/chat/links/…`.
    pub base_url: String,
    /// The HMAC key links are signed with (at least 32 bytes).
    #[serde(default)]
    pub key_env: Option<String>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// How long a link stays valid (never past the approval's own expiry).
    #[serde(default = "default_link_expiry")]
    pub expire_secs: u64,
}

fn default_link_expiry() -> u64 {
    900
}

/// The credentials of `[approvals]`, read at start.
#[derive(Debug, Default)]
pub struct ApprovalSecrets {
    pub slack_signing_secret: Option<Secret>,
    pub slack_bot_token: Option<Secret>,
    pub link_key: Option<Secret>,
}

/// The shortest link key accepted, in bytes.
pub const MIN_LINK_KEY_BYTES: usize = 32;

impl ApprovalsConfig {
    pub(super) fn validate(&self, connectors: &ConnectorsConfig) -> Result<()> {
        if self.expire_secs < 60 || self.expire_secs > 30 * 24 * 3600 {
            bail!("approvals.expire_secs must be 60 to 2592000 (30 days)");
        }
        for (i, name) in self.notify.iter().enumerate() {
            if !connectors.webhooks.iter().any(|w| &w.name == name) {
                let known: Vec<&str> = connectors
                    .webhooks
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect();
                bail!(
                    "approvals.notify[{i}]: no [[connectors.webhooks]] named {name:?} (configured: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            }
        }
        if (self.slack.is_some() || self.links.is_some()) && self.notify.is_empty() {
            bail!(
                "approvals.notify names no webhook: approval requests with buttons or links \
                 ([approvals.slack], [approvals.links]) would never be sent"
            );
        }
        if let Some(slack) = &self.slack {
            slack.validate()?;
        }
        if let Some(links) = &self.links {
            secure_url("approvals.links.base_url", &links.base_url, true)?;
            if links.expire_secs < 60 || links.expire_secs > 7 * 24 * 3600 {
                bail!("approvals.links.expire_secs must be 60 to 604800 (7 days)");
            }
            secret_keys("approvals.links.key", &links.key_env, &links.key_file)?;
        }
        Ok(())
    }

    pub(super) fn resolve_paths(&mut self, resolve: impl Fn(&mut PathBuf)) {
        if let Some(s) = &mut self.slack {
            for p in [&mut s.signing_secret_file, &mut s.bot_token_file]
                .into_iter()
                .flatten()
            {
                resolve(p);
            }
        }
        if let Some(p) = self.links.as_mut().and_then(|l| l.key_file.as_mut()) {
            resolve(p);
        }
    }

    /// Reads the configured credentials (a missing one stops the start,
    /// naming the key).
    pub fn load_secrets(&self) -> Result<ApprovalSecrets> {
        let load = |at: &str, env: &Option<String>, file: &Option<PathBuf>| {
            secret::load(at, env.as_deref(), file.as_deref().map(Path::new))
        };
        let mut out = ApprovalSecrets::default();
        if let Some(s) = &self.slack {
            out.slack_signing_secret = Some(load(
                "approvals.slack.signing_secret",
                &s.signing_secret_env,
                &s.signing_secret_file,
            )?);
            if s.bot_token_env.is_some() || s.bot_token_file.is_some() {
                out.slack_bot_token = Some(load(
                    "approvals.slack.bot_token",
                    &s.bot_token_env,
                    &s.bot_token_file,
                )?);
            }
        }
        if let Some(l) = &self.links {
            let key = load("approvals.links.key", &l.key_env, &l.key_file)?;
            if key.expose().len() < MIN_LINK_KEY_BYTES {
                bail!(
                    "approvals.links.key is {} bytes; at least {MIN_LINK_KEY_BYTES} are required \
                     (e.g. `openssl rand -hex 32`)",
                    key.expose().len()
                );
            }
            out.link_key = Some(key);
        }
        Ok(out)
    }

    /// The parts a running service cannot change without a restart (the
    /// webhooks and the receivers are built at start).
    pub fn chat_settings_differ(&self, other: &ApprovalsConfig) -> bool {
        (&self.notify, &self.slack, &self.links) != (&other.notify, &other.slack, &other.links)
    }
}

impl SlackApprovalsConfig {
    fn validate(&self) -> Result<()> {
        let at = "approvals.slack";
        secret_keys(
            &format!("{at}.signing_secret"),
            &self.signing_secret_env,
            &self.signing_secret_file,
        )?;
        if self.approvers.is_empty() {
            bail!("{at}.approvers is empty: nobody could approve from Slack");
        }
        let mut groups = false;
        for (i, id) in self.approvers.iter().enumerate() {
            let well_formed = id.len() >= 2
                && id.len() <= 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            match id.as_bytes().first() {
                Some(b'U' | b'W') if well_formed => {}
                Some(b'S') if well_formed => groups = true,
                _ => bail!(
                    "{at}.approvers[{i}]: {id:?} is not a Slack user id (U…, W…) or user-group id (S…)"
                ),
            }
        }
        let token = self.bot_token_env.is_some() || self.bot_token_file.is_some();
        if groups && !token {
            bail!(
                "{at}.approvers names a user group (S…): set bot_token_env or bot_token_file \
                 (a bot token with usergroups:read) so its members can be looked up"
            );
        }
        if token && self.bot_token_env.is_some() && self.bot_token_file.is_some() {
            bail!("{at}: set one of bot_token_env and bot_token_file, not both");
        }
        secure_url(&format!("{at}.api_url"), &self.api_url, true)?;
        if self.response_url_hosts.is_empty() {
            bail!("{at}.response_url_hosts is empty: Slack's answers could not be posted anywhere");
        }
        if !(30..=3600).contains(&self.timestamp_tolerance_secs) {
            bail!("{at}.timestamp_tolerance_secs must be 30 to 3600");
        }
        Ok(())
    }
}

/// Exactly one of `<at>_env` and `<at>_file`.
fn secret_keys(at: &str, env: &Option<String>, file: &Option<PathBuf>) -> Result<()> {
    match (env, file) {
        (Some(_), None) | (None, Some(_)) => Ok(()),
        (None, None) => bail!("{at}: set {at}_env or {at}_file"),
        (Some(_), Some(_)) => bail!("{at}: set one of {at}_env and {at}_file, not both"),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const WEBHOOK: &str = "[[connectors.webhooks]]\nname = \"soc\"\nurl = \"https://hooks.slack.com/services/T/B/x\"\n";

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text).unwrap_err())
    }

    #[test]
    fn defaults_send_nothing() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.approvals.expire_secs, 86_400);
        assert!(c.approvals.notify.is_empty());
        assert!(c.approvals.slack.is_none() && c.approvals.links.is_none());
    }

    #[test]
    fn a_full_configuration_parses() {
        let c = Config::parse(&format!(
            "{WEBHOOK}[approvals]\nnotify = [\"soc\"]\n\
             [approvals.slack]\nsigning_secret_env = \"S\"\napprovers = [\"U012AB\", \"S0G1\"]\nbot_token_env = \"B\"\n\
             [approvals.links]\nbase_url = \"https://vigil.example.com\"\nkey_env = \"K\"\n"
        ))
        .unwrap();
        let slack = c.approvals.slack.unwrap();
        assert_eq!(slack.response_url_hosts, ["hooks.slack.com"]);
        assert_eq!(slack.timestamp_tolerance_secs, 300);
        assert_eq!(c.approvals.links.unwrap().expire_secs, 900);
    }

    #[test]
    fn mistakes_name_the_key() {
        let e = err("[approvals]\nnotify = [\"nope\"]\n");
        assert!(
            e.contains("approvals.notify[0]") && e.contains("\"nope\""),
            "{e}"
        );
        let e = err(&format!(
            "{WEBHOOK}[approvals.links]\nbase_url = \"https://v.example\"\nkey_env = \"K\"\n"
        ));
        assert!(e.contains("approvals.notify names no webhook"), "{e}");
        let slack = |approvers: &str, extra: &str| {
            err(&format!(
                "{WEBHOOK}[approvals]\nnotify = [\"soc\"]\n[approvals.slack]\nsigning_secret_env = \"S\"\napprovers = [{approvers}]\n{extra}"
            ))
        };
        let e = slack("\"alice\"", "");
        assert!(e.contains("approvals.slack.approvers[0]"), "{e}");
        let e = slack("\"S0G1\"", "");
        assert!(e.contains("bot_token_env"), "{e}");
        let e = slack("", "");
        assert!(e.contains("approvers is empty"), "{e}");
        let e = slack("\"U1\"", "api_url = \"http://slack.example.com/api\"\n");
        assert!(
            e.contains("approvals.slack.api_url") && e.contains("https is required"),
            "{e}"
        );
        let e = err(&format!(
            "{WEBHOOK}[approvals]\nnotify = [\"soc\"]\n[approvals.slack]\napprovers = [\"U1\"]\n"
        ));
        assert!(e.contains("approvals.slack.signing_secret"), "{e}");
        let e = err(&format!(
            "{WEBHOOK}[approvals]\nnotify = [\"soc\"]\n[approvals.links]\nbase_url = \"http://vigil.example.com\"\nkey_env = \"K\"\n"
        ));
        assert!(e.contains("approvals.links.base_url"), "{e}");
    }
}
