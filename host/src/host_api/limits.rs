//! Memory and table caps for one rule's store. Exceeding a cap traps the
//! call with a message naming the limit, instead of letting the guest's
//! allocator see a quiet failure.

use wasmtime::ResourceLimiter;

pub struct RuleLimiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    /// The limit the current call hit, if any (for the fault record).
    pub hit: Option<String>,
    /// Linear memory granted so far, across all of the rule's memories.
    pub memory_in_use: usize,
}

impl RuleLimiter {
    pub fn new(memory_mib: u64, table_elements: usize, instances: usize) -> Self {
        RuleLimiter {
            memory_bytes: usize::try_from(memory_mib.saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX),
            table_elements,
            instances,
            hit: None,
            memory_in_use: 0,
        }
    }
}

impl ResourceLimiter for RuleLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            let msg = format!(
                "memory limit exceeded: the rule asked for {} MiB of linear memory (had {} MiB), memory_mib = {}",
                desired.div_ceil(1024 * 1024),
                current / (1024 * 1024),
                self.memory_bytes / (1024 * 1024)
            );
            self.hit = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        self.memory_in_use += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            let msg = format!(
                "table limit exceeded: {desired} elements requested, table_elements = {}",
                self.table_elements
            );
            self.hit = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.instances
    }

    fn memories(&self) -> usize {
        self.instances
    }
}
