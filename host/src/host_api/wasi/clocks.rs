//! `wasi:clocks/monotonic-clock`, frozen.
//!
//! A rule sees no time but its event's: `now` is always 0. A timer is a
//! pollable that is ready only if it is already due when it is made
//! (`subscribe-duration(0)`, `subscribe-instant(0)`); any other timer never
//! fires, since time never advances during a call — so waiting on it
//! (`pollable.block`, `poll`) traps at once (see `io`), and polling its
//! readiness reveals nothing about the real clock. wasmtime-wasi's own
//! clock would arm a real tokio timer instead.

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{self, Duration, Instant};
use wasmtime_wasi_io::poll::{Pollable, subscribe};

use super::TableView;

/// The resolution the frozen clocks report: one second.
pub const RESOLUTION_NS: u64 = 1_000_000_000;

/// A timer on the frozen clock: due at once, or never.
struct FrozenTimer {
    due: bool,
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for FrozenTimer {
    async fn ready(&mut self) {
        if !self.due {
            std::future::pending::<()>().await;
        }
    }
}

impl TableView<'_> {
    fn timer(&mut self, due: bool) -> wasmtime::Result<Resource<DynPollable>> {
        let timer = self.0.push(FrozenTimer { due })?;
        subscribe(self.0, timer)
    }
}

impl monotonic_clock::Host for TableView<'_> {
    fn now(&mut self) -> wasmtime::Result<Instant> {
        Ok(0)
    }

    fn resolution(&mut self) -> wasmtime::Result<Duration> {
        Ok(RESOLUTION_NS)
    }

    fn subscribe_instant(&mut self, when: Instant) -> wasmtime::Result<Resource<DynPollable>> {
        self.timer(when == 0)
    }

    fn subscribe_duration(
        &mut self,
        duration: Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.timer(duration == 0)
    }
}
