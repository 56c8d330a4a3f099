//! `vigil:rule/state` (every contract version): the rule's windowed counters, distinct sets and
//! values, on event time whatever the arrival order (the semantics live in
//! `vigil_sdk::state_store`, shared with the SDK's mock host). A call past a
//! state limit — including the byte budget `state_max_bytes` — traps with a
//! message naming the limit (and is audited as a rule fault); the call that
//! hit it changes nothing.

use vigil_sdk::state_store::StateLimitError;

use super::RuleState;

impl RuleState {
    fn limit_hit(&mut self, e: StateLimitError) -> wasmtime::Error {
        let message = e.to_string();
        self.state_fault = Some(e);
        wasmtime::Error::msg(message)
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
        self.state
            .counter_add(&key, window_ms, delta)
            .map_err(|e| self.limit_hit(e))
    }

    pub fn state_counter_get(&mut self, key: String, window_ms: u64) -> wasmtime::Result<u64> {
        Ok(self.state.counter_get(&key, window_ms))
    }

    pub fn state_distinct_add(
        &mut self,
        key: String,
        member: String,
        window_ms: u64,
    ) -> wasmtime::Result<u64> {
        self.state
            .distinct_add(&key, &member, window_ms)
            .map_err(|e| self.limit_hit(e))
    }

    pub fn state_distinct_count(&mut self, key: String, window_ms: u64) -> wasmtime::Result<u64> {
        Ok(self.state.distinct_count(&key, window_ms))
    }

    pub fn state_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.state.get(&key).map(str::to_owned))
    }

    pub fn state_set(
        &mut self,
        key: String,
        value: String,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<()> {
        self.state
            .set(&key, &value, ttl_ms)
            .map_err(|e| self.limit_hit(e))
    }

    pub fn state_delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.state.delete(&key).map_err(|e| self.limit_hit(e))
    }
}
