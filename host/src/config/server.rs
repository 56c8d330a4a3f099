//! `[server]`: the long-running service (`vigil run` without `--events`):
//! where it listens, TLS, body and queue limits, and which credentials guard
//! ingestion, Okta Event Hooks and the admin API.
//!
//! Connection limits (`max_connections`, `header_read_timeout_secs`,
//! `keep_alive_timeout_secs`) bound what a client can hold without sending
//! a request, and `watchdog_secs` says when `/readyz` reports a stuck
//! pipeline. Every one has a default and a validated range.
//!
//! Credentials are named here (an environment variable or a file), never
//! written here; they are read at start through `crate::secret`. An
//! endpoint with no credential configured is open only when the listener is
//! on loopback; on any other address it answers 404 naming the key to set.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::secret::{self, Secret};

/// `[server]`. Every limit has a default.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Ingestion address (`/v1/events`, `/v1/hooks/okta`, health). Port 0
    /// picks a free port; the bound address is printed at start
    /// (`listening on http://ADDR`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// A separate address for the admin API and `/metrics`. Default: both
    /// are served on `listen`.
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// PEM certificate chain and private key; both or neither. With them,
    /// every listener speaks HTTPS (rustls).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Largest request body, in bytes; larger ones get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Most events one request may carry; more get 413.
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
    /// Deliveries (batches) waiting for the pipeline; when full, HTTP
    /// answers 503 with `Retry-After` and blocking sources wait.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Accepted actions waiting for the executor thread; when full, the
    /// pipeline waits (backpressure) rather than queue without bound. On an
    /// audit failure the queued ones are dropped unrun (reconciled as
    /// `abandoned` at the next start).
    #[serde(default = "default_executor_queue")]
    pub executor_queue: usize,
    /// The static `Authorization` value Okta sends with each Event Hook
    /// delivery.
    #[serde(default)]
    pub okta_hook_secret_env: Option<String>,
    #[serde(default)]
    pub okta_hook_secret_file: Option<PathBuf>,
    /// Bearer token required on `POST /v1/events`.
    #[serde(default)]
    pub ingest_token_env: Option<String>,
    #[serde(default)]
    pub ingest_token_file: Option<PathBuf>,
    /// Bearer token of the admin API. None: the admin API is disabled.
    #[serde(default)]
    pub admin_token_env: Option<String>,
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// Who the admin token stands for, in audit records (`by`).
    #[serde(default = "default_admin_name")]
    pub admin_name: String,
    /// An Okta event whose `uuid` was seen this recently is dropped.
    #[serde(default = "default_dedup_window_secs")]
    pub dedup_window_secs: u64,
    /// Most uuids remembered for de-duplication (oldest forgotten first).
    #[serde(default = "default_dedup_capacity")]
    pub dedup_capacity: usize,
    /// At shutdown, how long in-flight requests and the queue may take to
    /// drain before Vigil gives up and exits 1.
    #[serde(default = "default_drain_timeout_secs")]
    pub drain_timeout_secs: u64,
    /// Connections each listener serves at once; past it, new connections
    /// wait in the kernel's accept queue until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A client must send a complete request head within this many
    /// seconds of its first byte, and a new connection (TLS handshake
    /// included) its first request head within this many seconds of being
    /// accepted.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// A kept-alive connection idle this long between two requests is
    /// closed; 0 closes every connection after its response.
    #[serde(default = "default_keep_alive_timeout_secs")]
    pub keep_alive_timeout_secs: u64,
    /// `/readyz` answers 503 when work is waiting (a queued delivery or a
    /// rule call under way) and the pipeline has made no progress for this
    /// many seconds.
    #[serde(default = "default_watchdog_secs")]
    pub watchdog_secs: u64,
    /// Seconds between two looks at the config file, the rule files, the
    /// trusted keys and the installed packs; a change reloads them (see
    /// `service::reload`). 0 turns watching off (SIGHUP and
    /// `POST /v1/admin/reload` still reload).
    #[serde(default = "default_reload_watch_secs")]
    pub reload_watch_secs: u64,
}

/// The credentials of `[server]`, read at start.
#[derive(Debug, Default)]
pub struct ServerSecrets {
    pub okta_hook: Option<Secret>,
    pub ingest: Option<Secret>,
    pub admin: Option<Secret>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8787))
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_max_events_per_request() -> usize {
    1000
}

fn default_queue_capacity() -> usize {
    1024
}

fn default_executor_queue() -> usize {
    1024
}

fn default_admin_name() -> String {
    "admin".into()
}

fn default_dedup_window_secs() -> u64 {
    600
}

fn default_dedup_capacity() -> usize {
    100_000
}

fn default_drain_timeout_secs() -> u64 {
    30
}

fn default_max_connections() -> usize {
    1024
}

fn default_header_read_timeout_secs() -> u64 {
    10
}

fn default_keep_alive_timeout_secs() -> u64 {
    30
}

fn default_watchdog_secs() -> u64 {
    30
}

fn default_reload_watch_secs() -> u64 {
    2
}

/// The largest value a `*_secs` connection timeout or `watchdog_secs` may
/// take: one hour. Anything longer lets idle clients hold connections for
/// good, or hides a stuck pipeline from the readiness probe.
const MAX_TIMEOUT_SECS: u64 = 3600;

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<()> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_events_per_request", self.max_events_per_request as u64),
            ("queue_capacity", self.queue_capacity as u64),
            ("executor_queue", self.executor_queue as u64),
            ("dedup_capacity", self.dedup_capacity as u64),
            ("drain_timeout_secs", self.drain_timeout_secs),
            ("max_connections", self.max_connections as u64),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("watchdog_secs", self.watchdog_secs),
        ];
        for (key, value) in positive {
            if value == 0 {
                bail!("server.{key} must be greater than 0");
            }
        }
        if self.max_body_bytes > 64 * 1024 * 1024 {
            bail!(
                "server.max_body_bytes is {}; at most 67108864 (64 MiB) is allowed",
                self.max_body_bytes
            );
        }
        if self.queue_capacity > 1_000_000 {
            bail!(
                "server.queue_capacity is {}; at most 1000000 is allowed",
                self.queue_capacity
            );
        }
        if self.executor_queue > 1_000_000 {
            bail!(
                "server.executor_queue is {}; at most 1000000 is allowed",
                self.executor_queue
            );
        }
        if self.max_connections > 100_000 {
            bail!(
                "server.max_connections is {}; at most 100000 is allowed",
                self.max_connections
            );
        }
        for (key, value) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("keep_alive_timeout_secs", self.keep_alive_timeout_secs),
            ("watchdog_secs", self.watchdog_secs),
            ("reload_watch_secs", self.reload_watch_secs),
        ] {
            if value > MAX_TIMEOUT_SECS {
                bail!("server.{key} is {value}; at most {MAX_TIMEOUT_SECS} (one hour) is allowed");
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            bail!("server: set both tls_cert_file and tls_key_file, or neither");
        }
        if self.admin_listen == Some(self.listen) && self.listen.port() != 0 {
            bail!(
                "server.admin_listen is the same address as server.listen; leave it unset to share the listener"
            );
        }
        if self.admin_name.trim().is_empty() {
            bail!("server.admin_name is empty");
        }
        for (key, env, file) in [
            (
                "okta_hook_secret",
                &self.okta_hook_secret_env,
                &self.okta_hook_secret_file,
            ),
            (
                "ingest_token",
                &self.ingest_token_env,
                &self.ingest_token_file,
            ),
            ("admin_token", &self.admin_token_env, &self.admin_token_file),
        ] {
            if env.is_some() && file.is_some() {
                bail!("server.{key}: set either {key}_env or {key}_file, not both");
            }
        }
        Ok(())
    }

    pub(super) fn resolve_paths(&mut self, resolve: impl Fn(&mut PathBuf)) {
        for p in [
            &mut self.tls_cert_file,
            &mut self.tls_key_file,
            &mut self.okta_hook_secret_file,
            &mut self.ingest_token_file,
            &mut self.admin_token_file,
        ]
        .into_iter()
        .flatten()
        {
            resolve(p);
        }
    }

    /// Reads the configured credentials (a missing one stops the start,
    /// naming the key).
    pub fn load_secrets(&self) -> Result<ServerSecrets> {
        let load = |key: &str, env: &Option<String>, file: &Option<PathBuf>| {
            secret::load_optional(
                &format!("server.{key}"),
                env.as_deref(),
                file.as_deref().map(Path::new),
            )
        };
        Ok(ServerSecrets {
            okta_hook: load(
                "okta_hook_secret",
                &self.okta_hook_secret_env,
                &self.okta_hook_secret_file,
            )?,
            ingest: load(
                "ingest_token",
                &self.ingest_token_env,
                &self.ingest_token_file,
            )?,
            admin: load("admin_token", &self.admin_token_env, &self.admin_token_file)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    // An empty [server] table takes every default.
    #[test]
    fn defaults() {
        let c = Config::parse("[server]\n").unwrap();
        let s = c.server.unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(s.max_body_bytes, 1024 * 1024);
        assert_eq!(s.max_events_per_request, 1000);
        assert_eq!(s.queue_capacity, 1024);
        assert_eq!(s.dedup_window_secs, 600);
        assert_eq!(s.drain_timeout_secs, 30);
        assert_eq!(s.admin_name, "admin");
        assert_eq!(s.max_connections, 1024);
        assert_eq!(s.header_read_timeout_secs, 10);
        assert_eq!(s.keep_alive_timeout_secs, 30);
        assert_eq!(s.watchdog_secs, 30);
    }

    // The connection limits and the watchdog are validated, naming the key.
    #[test]
    fn connection_limits_are_validated() {
        for (snippet, expected) in [
            (
                "max_connections = 0",
                "server.max_connections must be greater than 0",
            ),
            (
                "max_connections = 100001",
                "server.max_connections is 100001; at most 100000 is allowed",
            ),
            (
                "header_read_timeout_secs = 0",
                "server.header_read_timeout_secs must be greater than 0",
            ),
            (
                "keep_alive_timeout_secs = 3601",
                "server.keep_alive_timeout_secs is 3601; at most 3600 (one hour) is allowed",
            ),
            (
                "watchdog_secs = 0",
                "server.watchdog_secs must be greater than 0",
            ),
            (
                "watchdog_secs = 86400",
                "server.watchdog_secs is 86400; at most 3600 (one hour) is allowed",
            ),
        ] {
            let err = Config::parse(&format!("[server]\n{snippet}\n")).unwrap_err();
            assert_eq!(format!("{err:#}"), expected, "{snippet}");
        }
        // 0 turns keep-alive off; it is not an error.
        let c = Config::parse("[server]\nkeep_alive_timeout_secs = 0\n").unwrap();
        assert_eq!(c.server.unwrap().keep_alive_timeout_secs, 0);
    }

    // A typo in [server] is refused naming the key.
    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("[server]\nlisten_addr = \"0.0.0.0:1\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("listen_addr"), "{err:#}");
    }

    // TLS needs both files.
    #[test]
    fn tls_needs_cert_and_key() {
        let err = Config::parse("[server]\ntls_cert_file = \"c.pem\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("tls_key_file"), "{err:#}");
    }

    // Zero limits are refused naming the key.
    #[test]
    fn zero_queue_is_refused() {
        let err = Config::parse("[server]\nqueue_capacity = 0\n").unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "server.queue_capacity must be greater than 0"
        );
    }

    // A bad address is refused.
    #[test]
    fn bad_listen_is_refused() {
        assert!(Config::parse("[server]\nlisten = \"localhost\"\n").is_err());
    }

    // The executor queue has a default and bounds naming the key.
    #[test]
    fn executor_queue_default_and_bounds() {
        let c = Config::parse("[server]\n").unwrap();
        assert_eq!(c.server.unwrap().executor_queue, 1024);
        let err = Config::parse("[server]\nexecutor_queue = 0\n").unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "server.executor_queue must be greater than 0"
        );
        let err = Config::parse("[server]\nexecutor_queue = 2000000\n").unwrap_err();
        assert!(
            format!("{err:#}").starts_with("server.executor_queue is 2000000"),
            "{err:#}"
        );
    }
}
