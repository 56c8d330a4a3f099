//! Replicas sharing a NATS JetStream server (`[cluster]`).
//!
//! **At most once per action across replicas.** Two replicas can see the
//! same event: a load balancer retries a delivery on the other one, both
//! tail the same export, an Event Hook is fanned out to an active-active
//! pair. Each judges it and, the rules being deterministic, accepts the
//! same action with the same action id (`host_api::action_id`: rule,
//! event id, action). Before a connector call, the executor claims
//! `<action id>:<connector>` in a JetStream key-value bucket with a
//! create-only put (the bucket refuses a key that exists, atomically,
//! whichever replica asks): the replica that wins calls the identity
//! provider, every other one records `duplicate` naming the winner and
//! calls nothing. A replica that cannot reach the bucket does not call
//! either (`failed`, "cannot claim"): at most once is kept even when NATS
//! is down; the action's `failed` record says it was not executed.
//!
//! The claim outlives any replay (`claim_ttl_secs`, the bucket's max age).
//! A replica's own claim counts as won (a retry of its failed call).
//!
//! Not here yet (see the README's "Beyond one machine"): durable ingest
//! through JetStream, sharding by partition key, shard ownership and
//! takeover.
//!
//! The client (`async-nats`) is asynchronous; the executor is not. A
//! one-worker tokio runtime owned here runs the client's connection (its
//! pings and reconnects) all the time, and each claim blocks on it.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use async_nats::jetstream::{kv, stream};
use sha2::{Digest, Sha256};

use crate::config::ClusterConfig;

/// Who won a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This replica: go ahead.
    Won,
    /// Another replica claimed it first.
    Lost { owner: String },
}

/// The claim bucket, connected.
pub struct Claims {
    runtime: tokio::runtime::Runtime,
    store: kv::Store,
    replica: String,
    timeout: Duration,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Claims {
    /// Connects and opens (or creates) the bucket. An unreachable server
    /// stops the start: a replica that cannot claim cannot act.
    pub fn connect(config: &ClusterConfig) -> Result<Claims> {
        let timeout = Duration::from_secs(config.timeout_secs);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vigil-nats")
            .enable_all()
            .build()
            .context("cannot start the NATS client's runtime")?;
        let url = config.nats_url.clone();
        let bucket = config.claims_bucket.clone();
        let ttl = Duration::from_secs(config.claim_ttl_secs);
        let store = runtime
            .block_on(async move {
                let client = async_nats::ConnectOptions::new()
                    .connection_timeout(timeout)
                    .request_timeout(Some(timeout))
                    .connect(url.as_str())
                    .await
                    .map_err(|e| anyhow!("cannot connect to {url}: {e}"))?;
                let js = async_nats::jetstream::new(client);
                if let Ok(store) = js.get_key_value(bucket.as_str()).await {
                    return Ok(store);
                }
                // The bucket's stream, made as `create_key_value` would
                // make it: that call first asks the server for account
                // information whose shape Debian's nats-server 2.9 does
                // not match in async-nats 0.51.
                let created = js
                    .get_or_create_stream(stream::Config {
                        name: format!("KV_{bucket}"),
                        description: Some(
                            "Vigil action claims: one replica executes each action".to_owned(),
                        ),
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
                    .await;
                if let Err(e) = created {
                    return Err(anyhow!(
                        "cannot create the claim bucket {bucket:?} (is JetStream enabled?): {e}"
                    ));
                }
                js.get_key_value(bucket.as_str())
                    .await
                    .map_err(|e| anyhow!("cannot open the claim bucket {bucket:?}: {e}"))
            })
            .with_context(|| format!("[cluster] {}", config.nats_url))?;
        Ok(Claims {
            runtime,
            store,
            replica: config.replica_name(),
            timeout,
        })
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Claims `key` (an execution key: `<action id>:<connector>`) for this
    /// replica. An `Err` means nobody can tell: the caller must not act.
    pub fn claim(&self, key: &str) -> Result<Claim> {
        // Bucket keys allow few characters: the key's digest stands for it.
        let id = hex::encode(Sha256::digest(key.as_bytes()));
        let value = bytes::Bytes::from(self.replica.clone().into_bytes());
        let store = &self.store;
        let timeout = self.timeout;
        self.runtime.block_on(async {
            let created = tokio::time::timeout(timeout, store.create(&id, value)).await;
            match created {
                Err(_) => Err(anyhow!(
                    "no answer from the claim bucket within {timeout:?}"
                )),
                Ok(Ok(_)) => Ok(Claim::Won),
                Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    let owner = tokio::time::timeout(timeout, store.get(&id))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .flatten()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_else(|| "another replica".to_owned());
                    if owner == self.replica {
                        Ok(Claim::Won)
                    } else {
                        Ok(Claim::Lost { owner })
                    }
                }
                Ok(Err(e)) => Err(anyhow!("the claim bucket refused the claim: {e}")),
            }
        })
    }
}
