//! `vigil:rule/state`: the rule's windowed counters, distinct sets and
//! values, on event time whatever the arrival order (the semantics live in
//! `vigil_sdk::state_store`, shared with the SDK's mock host). A call past a
//! state limit — including the byte budget `state_max_bytes` — traps with a
//! message naming the limit (and is audited as a rule fault); the call that
//! hit it changes nothing.

use vigil_sdk::state_store::StateLimitError;

use super::RuleState;
use crate::bindings::vigil::rule::state::Host;

impl RuleState {
    fn limit_hit(&mut self, e: StateLimitError) -> wasmtime::Error {
        let message = e.to_string();
        self.state_fault = Some(e);
        wasmtime::Error::msg(message)
    }
}

impl Host for RuleState {
    fn counter_add(&mut self, key: String, window_ms: u64, delta: u32) -> wasmtime::Result<u64> {
        self.state
            .counter_add(&key, window_ms, delta)
            .map_err(|e| self.limit_hit(e))
    }

    fn counter_get(&mut self, key: String, window_ms: u64) -> wasmtime::Result<u64> {
        Ok(self.state.counter_get(&key, window_ms))
    }

    fn distinct_add(
        &mut self,
        key: String,
        member: String,
        window_ms: u64,
    ) -> wasmtime::Result<u64> {
        self.state
            .distinct_add(&key, &member, window_ms)
            .map_err(|e| self.limit_hit(e))
    }

    fn distinct_count(&mut self, key: String, window_ms: u64) -> wasmtime::Result<u64> {
        Ok(self.state.distinct_count(&key, window_ms))
    }

    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.state.get(&key).map(str::to_owned))
    }

    fn set(&mut self, key: String, value: String, ttl_ms: Option<u64>) -> wasmtime::Result<()> {
        self.state
            .set(&key, &value, ttl_ms)
            .map_err(|e| self.limit_hit(e))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.state.delete(&key).map_err(|e| self.limit_hit(e))
    }
}
