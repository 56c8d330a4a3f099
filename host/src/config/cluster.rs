//! `[cluster]`: replicas that share a NATS JetStream server. Today it
//! gives one guarantee: an action is executed at most once across every
//! replica that sees its event (see `crate::cluster`).

use anyhow::{Result, bail};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS server (`nats://host:4222`), with JetStream enabled.
    pub nats_url: String,
    /// This replica's name in claims and messages: 1 to 64 of letters,
    /// digits, `-`, `_`, `.`. Default: the host name.
    #[serde(default)]
    pub replica: Option<String>,
    /// The key-value bucket that holds action claims.
    #[serde(default = "default_bucket")]
    pub claims_bucket: String,
    /// How long a claim is kept (the bucket's max age): longer than any
    /// replay or redelivery of an event. 3600 to 2592000 (30 days).
    #[serde(default = "default_claim_ttl_secs")]
    pub claim_ttl_secs: u64,
    /// Connecting, and each claim, give up after this long (then the
    /// action is not executed). 1 to 60.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_bucket() -> String {
    "vigil-claims".to_owned()
}

fn default_claim_ttl_secs() -> u64 {
    // The default judged-id window is 7 days: a replayed event is skipped
    // locally for that long; its claims outlive it.
    8 * 86_400
}

fn default_timeout_secs() -> u64 {
    5
}

impl ClusterConfig {
    pub(super) fn validate(&self) -> Result<()> {
        let url = self.nats_url.trim();
        if !(url.starts_with("nats://") || url.starts_with("tls://")) || url.len() < 8 {
            bail!(
                "cluster.nats_url is {:?}; use nats://host:port or tls://host:port",
                self.nats_url
            );
        }
        if let Some(r) = &self.replica
            && !valid_name(r, 64)
        {
            bail!("cluster.replica {r:?}: use 1 to 64 of letters, digits, - _ .");
        }
        if !valid_name(&self.claims_bucket, 64) || self.claims_bucket.contains('.') {
            bail!(
                "cluster.claims_bucket {:?}: use 1 to 64 of letters, digits, - _",
                self.claims_bucket
            );
        }
        if !(3600..=30 * 86_400).contains(&self.claim_ttl_secs) {
            bail!(
                "cluster.claim_ttl_secs is {}; it must be between 3600 and 2592000",
                self.claim_ttl_secs
            );
        }
        if !(1..=60).contains(&self.timeout_secs) {
            bail!(
                "cluster.timeout_secs is {}; it must be between 1 and 60",
                self.timeout_secs
            );
        }
        Ok(())
    }

    /// `replica`, else the host name, else `vigil`.
    pub fn replica_name(&self) -> String {
        if let Some(r) = &self.replica {
            return r.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| valid_name(h, 64))
            .unwrap_or_else(|| "vigil".to_owned())
    }
}

fn valid_name(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn cluster_settings_are_checked() {
        let c = Config::parse("[cluster]\nnats_url = \"nats://127.0.0.1:4222\"\n").unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.claims_bucket, "vigil-claims");
        assert!(!cluster.replica_name().is_empty());
        for (bad, want) in [
            ("nats_url = \"http://x\"", "cluster.nats_url"),
            (
                "nats_url = \"nats://x:1\"\nreplica = \"a b\"",
                "cluster.replica",
            ),
            (
                "nats_url = \"nats://x:1\"\nclaims_bucket = \"a.b\"",
                "cluster.claims_bucket",
            ),
            (
                "nats_url = \"nats://x:1\"\nclaim_ttl_secs = 5",
                "cluster.claim_ttl_secs",
            ),
            (
                "nats_url = \"nats://x:1\"\ntimeout_secs = 0",
                "cluster.timeout_secs",
            ),
        ] {
            let err = format!(
                "{:#}",
                Config::parse(&format!("[cluster]\n{bad}\n")).unwrap_err()
            );
            assert!(err.contains(want), "{bad}: {err}");
        }
    }
}
