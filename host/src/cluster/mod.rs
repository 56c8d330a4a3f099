//! Replicas sharing a NATS JetStream server (`[cluster]`).
//!
//! One process with no `[cluster]` stays the embedded default. With it:
//!
//! - **At most once per action** ([`claims`]): before a connector call the
//!   executor claims `<action id>:<connector>` in a key-value bucket with a
//!   create-only put; only the replica that wins calls the identity
//!   provider, every other one records `duplicate`. A finding is recorded
//!   unless another replica's claim for it exists, and claimed once its
//!   record is durable, so an event judged twice (a replica died after
//!   judging it and before acknowledging it) is recorded once — twice only
//!   if that replica died between its audit sync and its claim. This holds
//!   for `vigil run --events` too: active-active sidecars that see the
//!   same events need nothing else.
//! - **Durable ingest** ([`ingest`], the service only): an event taken over
//!   HTTP, from the Okta hook or from a poller is published to the stream,
//!   once per partition-key kind the rules use, on the subject of its shard
//!   ([`layout`]), with `Nats-Msg-Id` so the server drops a repeat; the
//!   client is answered 2xx only after JetStream acknowledged every
//!   publish. JetStream unreachable: 503 with Retry-After.
//! - **Shards and leases** ([`leases`]): each replica owns a fair share of
//!   the shards through leases in a key-value bucket whose entries expire
//!   after `lease_ttl_secs`; a dead replica's shards are taken over once
//!   its leases expire, a joining replica is handed its share.
//! - **Judging** ([`consume`]): each owned shard is read through its own
//!   durable consumer, one batch at a time (ordered per shard), into the
//!   pipeline; a batch is acknowledged only after its audit records are
//!   synced; long batches report progress; unreadable messages are handed
//!   back with a delay, and a message delivered more than `max_deliveries`
//!   times goes to the dead-letter subject. On takeover the shard's recent
//!   events up to the last acknowledged one are replayed first with actions
//!   suppressed, rebuilding the rules' state.
//!
//! The client (`async-nats`) is asynchronous; the pipeline and the executor
//! are not. A small tokio runtime owned by [`Nats`] runs the connection
//! (pings, reconnects), the lease keeper and the shard readers; blocking
//! callers (claims) wait on it.

pub mod claims;
pub mod consume;
pub mod ingest;
pub mod layout;
pub mod leases;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use async_nats::jetstream::{self, kv, stream};

use crate::config::ClusterConfig;
pub use claims::{Claim, Claims};

/// A connection to the cluster's NATS server, and the runtime it lives on.
pub struct Nats {
    runtime: tokio::runtime::Runtime,
    client: async_nats::Client,
    js: jetstream::Context,
    config: ClusterConfig,
    replica: String,
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Nats {
    /// Connects. An unreachable server stops the start: a replica that
    /// cannot claim cannot act.
    pub fn connect(config: &ClusterConfig) -> Result<Arc<Nats>> {
        let timeout = Duration::from_secs(config.timeout_secs);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vigil-nats")
            .enable_all()
            .build()
            .context("cannot start the NATS client's runtime")?;
        let url = config.nats_url.clone();
        let replica = config.replica_name();
        let token = config.token()?;
        let client = runtime
            .block_on(async {
                let options = match token {
                    Some(t) => async_nats::ConnectOptions::with_token(t.expose().to_owned()),
                    None => async_nats::ConnectOptions::new(),
                };
                options
                    .name(format!("vigil-{replica}"))
                    .connection_timeout(timeout)
                    .request_timeout(Some(timeout))
                    // Keep trying for ever: an outage is answered 503 and
                    // ends when the server is back.
                    .max_reconnects(None)
                    .connect(url.as_str())
                    .await
                    .map_err(|e| anyhow!("cannot connect to {url}: {e}"))
            })
            .with_context(|| format!("[cluster] {}", config.nats_url))?;
        // The context spawns a task of its own: made on the runtime.
        let js = {
            let _on_runtime = runtime.enter();
            jetstream::new(client.clone())
        };
        Ok(Arc::new(Nats {
            runtime,
            client,
            js,
            config: config.clone(),
            replica,
        }))
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Where the cluster's tasks run.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }

    /// Runs `f` on the runtime and waits for it (never call from inside it).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The connection is up (readiness).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// A witness for this replica's audit log: each signed checkpoint is
    /// published on `vigil.audit.<replica>` of the stream (see
    /// `crate::audit::witness`; `vigil audit verify --nats` compares the
    /// logs with them). Called from the witness thread.
    pub fn checkpoint_publisher(self: &Arc<Self>) -> crate::audit::witness::CheckpointPublisher {
        let nats = self.clone();
        let subject = crate::audit::nats::subject(&self.replica);
        let timeout = Duration::from_secs(self.config.timeout_secs);
        crate::audit::witness::CheckpointPublisher::new(format!("NATS {subject}"), move |line| {
            let body = bytes::Bytes::copy_from_slice(line);
            // The timer is made on the runtime (inside the async block).
            let published = nats.block_on(async {
                tokio::time::timeout(timeout, async {
                    nats.js.publish(subject.clone(), body).await?.await
                })
                .await
            });
            match published {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("JetStream did not store the checkpoint: {e}")),
                Err(_) => Err(format!("no acknowledgement within {timeout:?}")),
            }
        })
    }

    /// Opens the events stream (`vigil.events.>`, `vigil.dead.>`,
    /// `vigil.audit.>`), creating it if needed.
    pub fn ensure_stream(&self) -> Result<stream::Stream> {
        let config = self.config.clone();
        let js = self.js.clone();
        self.block_on(async move {
            js.get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                description: Some(
                    "Vigil: identity events by shard, dead letters, audit checkpoints".to_owned(),
                ),
                subjects: vec![
                    format!("{}.>", layout::EVENTS),
                    format!("{}.>", layout::DEAD),
                    format!("{}.>", layout::AUDIT),
                ],
                max_age: Duration::from_secs(config.retention_secs),
                // Nats-Msg-Id de-duplication: a client's retry of a
                // delivery JetStream already took within this window is
                // dropped by the server.
                duplicate_window: layout::DUPLICATE_WINDOW,
                storage: stream::StorageType::File,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot open the stream {:?} (is JetStream enabled?): {e}",
                    config.stream
                )
            })
        })
    }
}

/// Opens (or creates) a key-value bucket whose entries live `ttl`.
///
/// The bucket's stream is made as `create_key_value` would make it: that
/// call first asks the server for account information whose shape
/// Debian's nats-server 2.9 does not match in async-nats 0.51.
pub(crate) async fn kv_bucket(
    js: &jetstream::Context,
    bucket: &str,
    ttl: Duration,
    description: &str,
) -> Result<kv::Store> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: ttl,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow!("cannot create the bucket {bucket:?} (is JetStream enabled?): {e}"))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| anyhow!("cannot open the bucket {bucket:?}: {e}"))
}
