//! The WASI context a rule gets: nothing. No files (no preopens), no
//! environment or arguments, no network (every address denied, no name
//! lookup), stdin closed, and frozen clocks — rules must use event time,
//! so a replay behaves like live traffic. Only stdout/stderr exist, and they
//! are captured (see `output`).

use std::time::Duration;

use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

use super::CapturedOutput;

/// Always the unix epoch: a rule that reads the wall clock learns nothing.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

pub fn deny_all(stdout: &CapturedOutput, stderr: &CapturedOutput) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}
