//! What the host offers a rule: the per-store state ([`RuleState`]) and one
//! file per WIT interface (`actions`, `state`, `log`, `config`) saying what
//! it does in the host's terms — the same in every contract version; the
//! per-version adapters in `crate::wit` forward to it — plus the
//! deny-everything WASI that satisfies whatever `wasm32-wasip2` std imports
//! and never waits (`wasi`), the per-call caps on what a call adds to the
//! audit log (`call_caps`), and escaping of the text a rule sends to the
//! operator's logs (`text`).
//!
//! Everything here is scoped to the calling rule: its own state, its own
//! grant, its own config; nothing reaches another rule.

mod actions;
mod call_caps;
mod config;
mod limits;
mod log;
mod output;
mod state;
pub mod text;
mod wasi;

pub use actions::{ActionRequest, action_id};
pub use call_caps::{CallCaps, CallOutput};
pub use limits::RuleLimiter;
pub use log::Level;
pub use output::CapturedOutput;
pub use wasi::WouldBlock;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use vigil_sdk::state_store::{StateLimitError, StateStore};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::model::{Event, PartitionKey};
use crate::policy::{PolicyGate, RuleGrant};

/// What stays the same for a rule across calls and instance rebuilds.
#[derive(Clone)]
pub struct RuleContext {
    pub rule_id: String,
    pub grant: RuleGrant,
    pub gate: Arc<PolicyGate>,
    pub config: BTreeMap<String, String>,
    pub max_output_bytes: usize,
    /// Longest value one `raw(pointer)` read returns.
    pub max_raw_bytes: usize,
    /// What one call may add to the audit log.
    pub caps: CallCaps,
    /// The rule's declared partition key: unless `global`, every state
    /// key it uses must belong to the current event's partition.
    pub partition: PartitionKey,
}

/// The clock of one `on-event` call, for the deadline callback.
#[derive(Clone, Copy, Debug)]
pub struct CallClock {
    pub wall_start: std::time::Instant,
    /// The call's deadline (`deadline_ms`).
    pub deadline: std::time::Duration,
    /// Wall-clock time after which the call stops whatever else.
    pub wall_cap: std::time::Duration,
    /// This thread's CPU time and the wall clock when the deadline callback
    /// last ran (reading CPU time is a system call, so it is only read
    /// there, never on the fast path).
    pub last_sample: Option<(std::time::Duration, std::time::Instant)>,
}

/// This thread's CPU time (Linux/Unix `CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The data of one rule's wasmtime `Store`.
pub struct RuleState {
    pub ctx: Arc<RuleContext>,
    pub limiter: RuleLimiter,
    /// The rule's memory across events. Survives instance rebuilds.
    pub state: StateStore,
    /// The event being handled: what the rule reads (contract v0.2 event
    /// getters), and for the policy gate (protected-account aliases) and
    /// the action ids.
    pub event: Option<Arc<Event>>,
    /// Numbers the calls, so an event handle from another call is refused.
    pub call_seq: u32,
    /// Requests decided during the current call, in order.
    pub requests: Vec<ActionRequest>,
    /// What the current call has added to the audit log so far, and the
    /// cap it crossed, if any (it also trapped).
    pub call_output: CallOutput,
    /// A state limit the current call hit (it also trapped).
    pub state_fault: Option<StateLimitError>,
    /// A state key of another partition the current call used (it also
    /// trapped).
    pub partition_fault: Option<String>,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    /// The clock of the call in progress, for the deadline (see
    /// `rules::instance`): `None` outside `on-event`.
    pub call_clock: Option<CallClock>,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl RuleState {
    pub fn new(ctx: Arc<RuleContext>, limiter: RuleLimiter, state: StateStore) -> Self {
        let stdout = CapturedOutput::new(ctx.max_output_bytes);
        let stderr = CapturedOutput::new(ctx.max_output_bytes);
        let wasi = wasi::deny_all(&stdout, &stderr);
        RuleState {
            ctx,
            limiter,
            state,
            event: None,
            call_seq: 0,
            requests: Vec::new(),
            call_output: CallOutput::default(),
            state_fault: None,
            partition_fault: None,
            stdout,
            stderr,
            call_clock: None,
            wasi,
            table: ResourceTable::new(),
        }
    }

    /// Emits what the guest printed during the last call as log lines
    /// tagged with the rule id, and says how much was dropped.
    pub fn flush_output(&mut self) {
        let rule = self.ctx.rule_id.as_str();
        for (stream, out) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let (text, dropped) = out.take();
            // One tracing line per guest line, each escaped: a rule cannot
            // forge a line (CR, ANSI escapes) of the operator's log.
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let line = text::escape_for_log(line);
                tracing::info!(target: "vigil::rule", rule, stream, "{line}");
            }
            if dropped > 0 {
                tracing::warn!(
                    target: "vigil::rule",
                    rule,
                    stream,
                    "{dropped} bytes of output dropped (max_output_bytes = {})",
                    self.ctx.max_output_bytes
                );
            }
        }
    }
}

impl WasiView for RuleState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Adds the WASI interfaces a rule may import to its linker: backed by
/// the deny-all context, none of them waits (see `wasi`). Vigil's own
/// interfaces are added per contract version by `crate::wit`.
pub fn add_wasi_to_linker(linker: &mut Linker<RuleState>) -> Result<()> {
    wasi::add_to_linker(linker)
}
