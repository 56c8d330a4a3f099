//! Shard ownership: leases in a JetStream key-value bucket.
//!
//! - `shard.<kind>.<n>` holds the name of the replica that owns the shard.
//!   It is taken with a create-only put (exactly one replica gets a free
//!   shard) and renewed with a compare-and-set on its revision every third
//!   of `lease_ttl_secs`; a renewal that finds another revision means the
//!   lease was lost (it expired while this replica stalled) and the shard
//!   is dropped at once.
//! - `member.<replica>` is each replica's heartbeat, put at the same pace.
//!
//! Every entry of the bucket expires `lease_ttl_secs` after it was last
//! written (the bucket's max age): a replica that dies (even `kill -9`)
//! stops renewing, its leases and heartbeat vanish, and the others take its
//! shards. Each replica aims at its fair share, ⌈shards / replicas alive⌉:
//! it takes free shards until it has that many and hands back (after
//! finishing the batch in hand) what it holds beyond, so a replica joining
//! gets work without anyone dying. Replicas try free shards in an order of
//! their own (rotated by a hash of their name) so they rarely race for the
//! same one.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Result, anyhow};
use async_nats::jetstream::{self, kv};
use futures_util::TryStreamExt;

use super::layout::ShardKey;

const MEMBER: &str = "member.";

/// The lease bucket, as one replica sees it.
pub struct Leases {
    store: kv::Store,
    replica: String,
}

impl Leases {
    /// Opens (or creates) the bucket.
    pub async fn open(
        js: &jetstream::Context,
        bucket: &str,
        ttl: Duration,
        replica: &str,
    ) -> Result<Leases> {
        let store =
            super::kv_bucket(js, bucket, ttl, "Vigil shard leases and replica heartbeats").await?;
        Ok(Leases {
            store,
            replica: replica.to_owned(),
        })
    }

    fn value(&self) -> bytes::Bytes {
        bytes::Bytes::from(self.replica.clone().into_bytes())
    }

    /// Says this replica is alive.
    pub async fn heartbeat(&self) -> Result<()> {
        self.store
            .put(format!("{MEMBER}{}", self.replica), self.value())
            .await
            .map(drop)
            .map_err(|e| anyhow!("cannot write the heartbeat: {e}"))
    }

    /// Says this replica is leaving (a clean stop).
    pub async fn leave(&self) -> Result<()> {
        self.store
            .delete(format!("{MEMBER}{}", self.replica))
            .await
            .map_err(|e| anyhow!("cannot remove the heartbeat: {e}"))
    }

    /// The replicas alive and the shards held (by lease key).
    pub async fn view(&self) -> Result<(usize, HashSet<String>)> {
        let keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(|e| anyhow!("cannot list the lease bucket: {e}"))?
            .try_collect()
            .await
            .map_err(|e| anyhow!("cannot list the lease bucket: {e}"))?;
        let members = keys.iter().filter(|k| k.starts_with(MEMBER)).count();
        let held = keys
            .into_iter()
            .filter(|k| !k.starts_with(MEMBER))
            .collect();
        // This replica counts even before its first heartbeat lands.
        Ok((members.max(1), held))
    }

    /// Takes a free shard: `Some(revision)`, or `None` if another replica
    /// holds it.
    pub async fn acquire(&self, shard: ShardKey) -> Result<Option<u64>> {
        match self.store.create(shard.lease_key(), self.value()).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(anyhow!("cannot take shard {}: {e}", shard.label())),
        }
    }

    /// Renews a lease held at `revision`: `Some(new revision)`, or `None`
    /// if it was lost.
    pub async fn renew(&self, shard: ShardKey, revision: u64) -> Result<Option<u64>> {
        match self
            .store
            .update(shard.lease_key(), self.value(), revision)
            .await
        {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(anyhow!("cannot renew shard {}: {e}", shard.label())),
        }
    }

    /// Hands a lease back (only if still held at `revision`).
    pub async fn release(&self, shard: ShardKey, revision: u64) -> Result<()> {
        self.store
            .delete_expect_revision(shard.lease_key(), Some(revision))
            .await
            .map_err(|e| anyhow!("cannot hand back shard {}: {e}", shard.label()))
    }
}

/// How many shards each of `members` replicas should hold.
pub fn fair_share(shards: usize, members: usize) -> usize {
    shards.div_ceil(members.max(1))
}

/// The order in which `replica` tries shards: all of them, rotated by a
/// hash of its name.
pub fn preference(replica: &str, all: &[ShardKey]) -> Vec<ShardKey> {
    if all.is_empty() {
        return Vec::new();
    }
    let start = (vigil_sdk::partition_of(replica) % all.len() as u64) as usize;
    all[start..].iter().chain(&all[..start]).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_shard() {
        assert_eq!(fair_share(65, 1), 65);
        assert_eq!(fair_share(65, 2), 33);
        assert_eq!(fair_share(65, 3), 22);
        assert_eq!(fair_share(3, 0), 3);
        let kinds = super::super::layout::kinds([crate::model::PartitionKey::Actor]);
        let all = super::super::layout::all_shards(&kinds, 8);
        let a = preference("replica-a", &all);
        let b = preference("replica-b", &all);
        assert_eq!(a.len(), all.len());
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, all);
        assert_ne!(a[0], b[0], "two names should start apart");
    }
}
