//! `[cluster]`: replicas that share a NATS JetStream server (see
//! `crate::cluster`). With `vigil run --events` it gives one guarantee: an
//! action is executed at most once across every replica that sees its
//! event. Under the service (`[server]`) it also makes ingestion durable in
//! JetStream and shares the judging among the replicas by shard.

use anyhow::{Result, bail};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS server (`nats://host:4222`), with JetStream enabled. No
    /// credentials in it: see `token_env` / `token_file`.
    pub nats_url: String,
    /// The server's authorization token (its `authorization { token }`),
    /// from an environment variable or a file; none by default.
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
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
    /// The stream events are published to (subjects `vigil.events.>`,
    /// dead letters `vigil.dead.>`, audit checkpoints `vigil.audit.>`).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Shards per partition-key kind (`vigil.events.<kind>.<shard>`); the
    /// `global` kind has one. Fixed for the life of the stream: changing it
    /// re-shards new events only. 1 to 1024.
    #[serde(default = "default_shards")]
    pub shards: u32,
    /// The key-value bucket that holds shard leases and replica heartbeats.
    #[serde(default = "default_leases_bucket")]
    pub leases_bucket: String,
    /// A lease not renewed for this long is free (the bucket's max age):
    /// how long a dead replica's shards wait before another takes them
    /// over. Renewed every third of it. 3 to 300.
    #[serde(default = "default_lease_ttl_secs")]
    pub lease_ttl_secs: u64,
    /// On taking a shard over, the events of the last this-many seconds up
    /// to the last acknowledged one are replayed into the rules with their
    /// actions suppressed, rebuilding their state: at least the longest
    /// rule window. 0 to 7 days.
    #[serde(default = "default_rebuild_window_secs")]
    pub rebuild_window_secs: u64,
    /// An event delivered more often than this (replicas crashed on it, or
    /// none could read it) goes to the dead-letter subject instead. 1 to 100.
    #[serde(default = "default_max_deliveries")]
    pub max_deliveries: u32,
    /// A message no replica could read is handed back (`nak`) to be
    /// delivered again after this long. 1 to 3600.
    #[serde(default = "default_retry_delay_secs")]
    pub retry_delay_secs: u64,
    /// An unacknowledged delivery is redelivered after this long (progress
    /// is reported while a batch is being judged). 5 to 3600.
    #[serde(default = "default_ack_wait_secs")]
    pub ack_wait_secs: u64,
    /// How long the stream keeps events (its max age). At least
    /// `rebuild_window_secs`; 1 hour to 90 days.
    #[serde(default = "default_retention_secs")]
    pub retention_secs: u64,
}

fn default_stream() -> String {
    "VIGIL".to_owned()
}

fn default_shards() -> u32 {
    64
}

fn default_leases_bucket() -> String {
    "vigil-leases".to_owned()
}

fn default_lease_ttl_secs() -> u64 {
    10
}

fn default_rebuild_window_secs() -> u64 {
    // Push-bombing and impossible-travel windows are minutes to hours.
    3600
}

fn default_max_deliveries() -> u32 {
    5
}

fn default_retry_delay_secs() -> u64 {
    10
}

fn default_ack_wait_secs() -> u64 {
    30
}

fn default_retention_secs() -> u64 {
    7 * 86_400
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
        if url.contains('@') {
            bail!(
                "cluster.nats_url must not carry credentials (they would reach logs); \
                 set cluster.token_env or cluster.token_file"
            );
        }
        if let Some(r) = &self.replica
            && !valid_name(r, 64)
        {
            bail!("cluster.replica {r:?}: use 1 to 64 of letters, digits, - _ .");
        }
        if !(3600..=30 * 86_400).contains(&self.claim_ttl_secs) {
            bail!(
                "cluster.claim_ttl_secs is {}; it must be between 3600 and 2592000",
                self.claim_ttl_secs
            );
        }
        for (key, name) in [
            ("cluster.claims_bucket", &self.claims_bucket),
            ("cluster.leases_bucket", &self.leases_bucket),
            ("cluster.stream", &self.stream),
        ] {
            if !valid_name(name, 64) || name.contains('.') {
                bail!("{key} {name:?}: use 1 to 64 of letters, digits, - _");
            }
        }
        if self.claims_bucket == self.leases_bucket {
            bail!("cluster.leases_bucket must differ from cluster.claims_bucket");
        }
        for (key, value, range) in [
            ("shards", u64::from(self.shards), 1..=1024),
            ("lease_ttl_secs", self.lease_ttl_secs, 3..=300),
            (
                "rebuild_window_secs",
                self.rebuild_window_secs,
                0..=7 * 86_400,
            ),
            ("max_deliveries", u64::from(self.max_deliveries), 1..=100),
            ("retry_delay_secs", self.retry_delay_secs, 1..=3600),
            ("ack_wait_secs", self.ack_wait_secs, 5..=3600),
            ("retention_secs", self.retention_secs, 3600..=90 * 86_400),
        ] {
            if !range.contains(&value) {
                bail!(
                    "cluster.{key} is {value}; it must be between {} and {}",
                    range.start(),
                    range.end()
                );
            }
        }
        if self.retention_secs < self.rebuild_window_secs {
            bail!(
                "cluster.retention_secs ({}) is shorter than cluster.rebuild_window_secs ({}): a takeover could not replay the window",
                self.retention_secs,
                self.rebuild_window_secs
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

    /// The authorization token, if configured (read now).
    pub fn token(&self) -> Result<Option<crate::secret::Secret>> {
        crate::secret::load_optional(
            "cluster.token",
            self.token_env.as_deref(),
            self.token_file.as_deref(),
        )
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

    /// The configurations in deploy/ (compose and the Kubernetes
    /// ConfigMap) are valid and in a cluster.
    #[test]
    fn the_deployment_examples_parse() {
        let compose = include_str!("../../../deploy/vigil.toml");
        let manifest = include_str!("../../../deploy/kubernetes/vigil.yaml");
        let (_, rest) = manifest.split_once("vigil.toml: |\n").unwrap();
        let configmap: String = rest
            .lines()
            .take_while(|l| l.starts_with("    "))
            .map(|l| format!("{}\n", &l[4..]))
            .collect();
        for (name, text) in [("deploy/vigil.toml", compose), ("ConfigMap", &configmap)] {
            let c = Config::parse(text).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(c.server.is_some() && c.cluster.is_some(), "{name}");
        }
    }

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
            (
                "nats_url = \"nats://user:pw@x:1\"",
                "must not carry credentials",
            ),
            ("nats_url = \"nats://x:1\"\nshards = 0", "cluster.shards"),
            (
                "nats_url = \"nats://x:1\"\nleases_bucket = \"vigil-claims\"",
                "cluster.leases_bucket",
            ),
            (
                "nats_url = \"nats://x:1\"\nretention_secs = 3600\nrebuild_window_secs = 7200",
                "cluster.retention_secs",
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
