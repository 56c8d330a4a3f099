//! `vigil:rule/state` (every contract version): the rule's windowed counters, distinct sets and
//! values, on event time whatever the arrival order (the semantics live in
//! `vigil_sdk::state_store`, shared with the SDK's mock host). A call past a
//! state limit — including the byte budget `state_max_bytes` — traps with a
//! message naming the limit (and is audited as a rule fault); the call that
//! hit it changes nothing.
//!
//! A rule that declares a partition key (contract v0.2) promises that each
//! state key belongs to one partition: on shards, a key is only ever seen
//! by the instance owning its partition. The host holds it to that: a call
//! that reads or writes a key last written for another partition traps
//! (fault `partition`). One shard sees every partition, so it always
//! catches a rule breaking its claim; several shards catch it when the two
//! partitions share a shard.

use vigil_sdk::state_store::{StateKind, StateLimitError};

use super::RuleState;
use crate::model::PartitionKey;

impl RuleState {
    fn limit_hit(&mut self, e: StateLimitError) -> wasmtime::Error {
        let message = e.to_string();
        self.state_fault = Some(e);
        wasmtime::Error::msg(message)
    }

    /// Traps when `key` belongs to another partition than the call's.
    fn check_partition(&mut self, kind: StateKind, key: &str) -> wasmtime::Result<()> {
        let declared = self.ctx.partition;
        if declared == PartitionKey::Global {
            return Ok(());
        }
        match self.state.partition_breach(kind, key, declared.name()) {
            Some(message) => {
                self.partition_fault = Some(message.clone());
                Err(wasmtime::Error::msg(message))
            }
            None => Ok(()),
        }
    }
}

/// The interface's functions, in the host's terms; each contract version's
/// adapter (`crate::wit`) forwards to them.
impl RuleState {
    pub fn state_counter_add(
        &mut self,
        key: String,
        window_ms: u64,
        delta: u32,
    ) -> wasmtime::Result<u64> {
        self.check_partition(StateKind::Counter, &key)?;
        self.state
            .counter_add(&key, window_ms, delta)
            .map_err(|e| self.limit_hit(e))
    }

    pub fn state_counter_get(&mut self, key: String, window_ms: u64) -> wasmtime::Result<u64> {
        self.check_partition(StateKind::Counter, &key)?;
        Ok(self.state.counter_get(&key, window_ms))
    }

    pub fn state_distinct_add(
        &mut self,
        key: String,
        member: String,
        window_ms: u64,
    ) -> wasmtime::Result<u64> {
        self.check_partition(StateKind::Set, &key)?;
        self.state
            .distinct_add(&key, &member, window_ms)
            .map_err(|e| self.limit_hit(e))
    }

    pub fn state_distinct_count(&mut self, key: String, window_ms: u64) -> wasmtime::Result<u64> {
        self.check_partition(StateKind::Set, &key)?;
        Ok(self.state.distinct_count(&key, window_ms))
    }

    pub fn state_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.check_partition(StateKind::Value, &key)?;
        Ok(self.state.get(&key).map(str::to_owned))
    }

    pub fn state_set(
        &mut self,
        key: String,
        value: String,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<()> {
        self.check_partition(StateKind::Value, &key)?;
        self.state
            .set(&key, &value, ttl_ms)
            .map_err(|e| self.limit_hit(e))
    }

    pub fn state_delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.check_partition(StateKind::Value, &key)?;
        self.state.delete(&key).map_err(|e| self.limit_hit(e))
    }
}
