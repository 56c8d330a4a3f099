//! Where things live on the stream: subjects per partition-key kind and
//! shard, lease keys, consumer names, message ids.
//!
//! An event is published once per key kind some loaded rule uses, on
//! `vigil.events.<kind>.<shard>` where `<shard>` is its partition under
//! that key ([`PartitionKey::partition_of`], the hash one machine's shards
//! use) modulo `[cluster] shards`. The `global` kind has one subject,
//! `vigil.events.global.0`, and always carries every event: the host's own
//! per-event checks (the MFA baseline after a policy change, new apps) run
//! where it is judged, once.

use std::time::Duration;

use crate::model::{Event, PartitionKey};

/// Event subjects: `vigil.events.<kind>.<shard>`.
pub const EVENTS: &str = "vigil.events";
/// Dead letters: `vigil.dead.<kind>.<shard>`.
pub const DEAD: &str = "vigil.dead";
/// Audit checkpoints: `vigil.audit.<replica>`.
pub const AUDIT: &str = "vigil.audit";
/// The stream drops a message whose `Nats-Msg-Id` it took this recently.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Every kind, in a fixed order.
pub const KINDS: [PartitionKey; 4] = [
    PartitionKey::Actor,
    PartitionKey::SubjectUser,
    PartitionKey::ClientIp,
    PartitionKey::Global,
];

/// One shard of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardKey {
    pub kind: Kind,
    pub shard: u32,
}

/// A partition-key kind, ordered as [`KINDS`] (so shard lists sort the
/// same on every replica).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(u8);

impl Kind {
    pub fn of(key: PartitionKey) -> Kind {
        Kind(
            KINDS
                .iter()
                .position(|k| *k == key)
                .expect("every kind is listed") as u8,
        )
    }

    pub fn key(self) -> PartitionKey {
        KINDS[usize::from(self.0)]
    }

    pub fn name(self) -> &'static str {
        self.key().name()
    }
}

impl ShardKey {
    /// The subject its events are published on.
    pub fn subject(self) -> String {
        format!("{EVENTS}.{}.{}", self.kind.name(), self.shard)
    }

    /// Where its dead letters go.
    pub fn dead_subject(self) -> String {
        format!("{DEAD}.{}.{}", self.kind.name(), self.shard)
    }

    /// Its key in the lease bucket.
    pub fn lease_key(self) -> String {
        format!("shard.{}.{}", self.kind.name(), self.shard)
    }

    /// Its durable consumer: whoever holds the lease reads through it, so
    /// the acknowledged position survives the replica.
    pub fn consumer(self) -> String {
        format!("vigil-{}-{}", self.kind.name(), self.shard)
    }

    /// `actor/7`, for logs.
    pub fn label(self) -> String {
        format!("{}/{}", self.kind.name(), self.shard)
    }
}

/// The kinds events are published under for `rules`' partition keys:
/// theirs, and `global` always.
pub fn kinds(used: impl IntoIterator<Item = PartitionKey>) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = used.into_iter().map(Kind::of).collect();
    kinds.push(Kind::of(PartitionKey::Global));
    kinds.sort();
    kinds.dedup();
    kinds
}

/// Every shard of `kinds`, in order.
pub fn all_shards(kinds: &[Kind], shards: u32) -> Vec<ShardKey> {
    let mut all = Vec::new();
    for &kind in kinds {
        let n = if kind.key() == PartitionKey::Global {
            1
        } else {
            shards
        };
        all.extend((0..n).map(|shard| ShardKey { kind, shard }));
    }
    all
}

/// The shard `event` falls in under `kind`.
pub fn shard_of(kind: Kind, event: &Event, shards: u32) -> ShardKey {
    let shard = match kind.key() {
        PartitionKey::Global => 0,
        key => (key.partition_of(event) % u64::from(shards.max(1))) as u32,
    };
    ShardKey { kind, shard }
}

/// `Nats-Msg-Id` of `event` on `kind`'s subject: the source's event id,
/// so a delivery retried by a client (or published by two replicas that
/// both received it) is stored once.
pub fn msg_id(kind: Kind, event: &Event) -> String {
    format!("{}:{}", kind.name(), event.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_valid_for_nats() {
        let actor = Kind::of(PartitionKey::Actor);
        let key = ShardKey {
            kind: actor,
            shard: 7,
        };
        assert_eq!(key.subject(), "vigil.events.actor.7");
        assert_eq!(key.dead_subject(), "vigil.dead.actor.7");
        assert_eq!(key.lease_key(), "shard.actor.7");
        assert_eq!(key.consumer(), "vigil-actor-7");
        let kinds = kinds([PartitionKey::ClientIp, PartitionKey::Actor]);
        assert_eq!(
            kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            ["actor", "client-ip", "global"]
        );
        let all = all_shards(&kinds, 4);
        assert_eq!(all.len(), 4 + 4 + 1);
        assert_eq!(all.last().unwrap().subject(), "vigil.events.global.0");
        let mut e = Event::new("e1", "okta", "user.session.start", 0);
        e.actor = Some(crate::model::Principal {
            id: "00uA".into(),
            kind: "User".into(),
            login: None,
            display_name: None,
        });
        let s = shard_of(actor, &e, 4);
        assert_eq!(s.shard as u64, PartitionKey::Actor.partition_of(&e) % 4);
        assert_eq!(msg_id(actor, &e), "actor:e1");
    }
}
