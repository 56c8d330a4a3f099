//! **At most once per action across replicas.** Two replicas can see the
//! same event: a load balancer retries a delivery on the other one, both
//! tail the same export, an Event Hook is fanned out to an active-active
//! pair, a replica dies after judging an event and before acknowledging
//! it. Each judges it and, the rules being deterministic, accepts the same
//! action with the same action id (`host_api::action_id`: rule, event id,
//! action). Before a connector call, the executor claims
//! `<action id>:<connector>` in a JetStream key-value bucket with a
//! create-only put (the bucket refuses a key that exists, atomically,
//! whichever replica asks): the replica that wins calls the identity
//! provider, every other one records `duplicate` naming the winner and
//! calls nothing. A replica that cannot reach the bucket does not call
//! either (`failed`, "cannot claim"): at most once is kept even when NATS
//! is down; the action's `failed` record says it was not executed.
//!
//! Findings are claimed too (`finding:<rule>:<event id>:<n>`), but the
//! other way round: a finding is recorded unless another replica's claim is
//! already there, and claimed once its record is durable (after the audit
//! sync). A replica that dies between judging and its sync leaves no claim,
//! so the replica that judges the event again records it: a finding may be
//! recorded twice in that window, never lost.
//!
//! The claim outlives any replay (`claim_ttl_secs`, the bucket's max age).
//! A replica's own claim counts as won (a retry of its failed call, a
//! replay of its own spool).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use async_nats::jetstream::kv;
use sha2::{Digest, Sha256};

use super::Nats;

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
    nats: Arc<Nats>,
    store: kv::Store,
    timeout: Duration,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims")
            .field("replica", &self.nats.replica())
            .finish_non_exhaustive()
    }
}

impl Claims {
    /// Opens (or creates) the bucket `[cluster] claims_bucket`.
    pub fn open(nats: Arc<Nats>) -> Result<Claims> {
        let config = nats.config().clone();
        let js = nats.jetstream().clone();
        let store = nats.block_on(async move {
            super::kv_bucket(
                &js,
                &config.claims_bucket,
                Duration::from_secs(config.claim_ttl_secs),
                "Vigil action claims: one replica executes each action",
            )
            .await
        })?;
        Ok(Claims {
            timeout: Duration::from_secs(nats.config().timeout_secs),
            nats,
            store,
        })
    }

    pub fn replica(&self) -> &str {
        self.nats.replica()
    }

    /// The connection the claims go through (the service's cluster side
    /// shares it).
    pub fn nats(&self) -> &Arc<Nats> {
        &self.nats
    }

    /// Who claimed `key`, if anyone (`None`: nobody yet).
    pub fn owner(&self, key: &str) -> Result<Option<String>> {
        let id = hex::encode(Sha256::digest(key.as_bytes()));
        let store = &self.store;
        let timeout = self.timeout;
        self.nats.block_on(async {
            match tokio::time::timeout(timeout, store.get(&id)).await {
                Err(_) => Err(anyhow!(
                    "no answer from the claim bucket within {timeout:?}"
                )),
                Ok(Err(e)) => Err(anyhow!("cannot read the claim bucket: {e}")),
                Ok(Ok(v)) => Ok(v.map(|b| String::from_utf8_lossy(&b).into_owned())),
            }
        })
    }

    /// Claims `key` (`<action id>:<connector>`, or a finding's key) for
    /// this replica. An `Err` means nobody can tell: the caller must not
    /// act.
    pub fn claim(&self, key: &str) -> Result<Claim> {
        // Bucket keys allow few characters: the key's digest stands for it.
        let id = hex::encode(Sha256::digest(key.as_bytes()));
        let replica = self.nats.replica().to_owned();
        let value = bytes::Bytes::from(replica.clone().into_bytes());
        let store = &self.store;
        let timeout = self.timeout;
        self.nats.block_on(async {
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
                    if owner == replica {
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
