//! The WASI a rule gets: nothing it could use to reach the world, and
//! nothing that can make the host wait.
//!
//! The context ([`deny_all`]) has no files (no preopens), no environment or
//! arguments, no network (every address denied, no name lookup), a closed
//! stdin, and frozen clocks — rules must use event time, so a replay
//! behaves like live traffic. Only stdout/stderr exist, and they are
//! captured (see `output`).
//!
//! [`add_to_linker`] links the whole `wasi:cli/imports` surface that
//! `wasm32-wasip2` std and the Python and JavaScript runtimes import, one
//! interface at a time, so the list below *is* the audit of what a rule can
//! reach. Invariant: **no function a rule can call waits**. A rule call
//! runs on the pipeline thread; the epoch deadline interrupts only guest
//! code, so a host function that sleeps (a timer, a stream read) would
//! hang a finite run and stop the service from calling any rule. Every
//! function that could wait is replaced (`io`, `clocks`) by one that
//! answers at once or traps with [`WouldBlock`] naming the function (a
//! rule fault, `would-block`):
//!
//! | interface | functions | what the host does |
//! |---|---|---|
//! | `wasi:io/poll` | `poll`, `pollable.block` | replaced: answer at once when a pollable is ready, else trap ([`WouldBlock`]) |
//! | `wasi:io/poll` | `pollable.ready` | unchanged: never waits |
//! | `wasi:io/streams` | `blocking-read`, `blocking-skip`, `blocking-write-and-flush`, `blocking-write-zeroes-and-flush`, `blocking-flush`, `blocking-splice` | replaced: done at once when the stream is ready, else trap |
//! | `wasi:io/streams` | `read`, `skip`, `write`, `check-write`, `flush`, `write-zeroes`, `splice`, `subscribe` | unchanged: non-blocking by contract |
//! | `wasi:io/error` | `to-debug-string` | unchanged |
//! | `wasi:clocks/monotonic-clock` | `now`, `resolution`, `subscribe-instant`, `subscribe-duration` | replaced: frozen at 0; a timer is ready only if it is already due (duration 0), otherwise it never fires, so waiting on it traps |
//! | `wasi:clocks/wall-clock` | `now`, `resolution` | frozen at the unix epoch |
//! | `wasi:cli/stdin` | `get-stdin` | a closed stream: reads answer `closed` at once |
//! | `wasi:cli/stdout`, `wasi:cli/stderr` | `get-stdout`, `get-stderr` | captured, capped per call (`max_output_bytes`), always writable |
//! | `wasi:cli/environment` | `get-environment`, `get-arguments`, `initial-cwd` | empty |
//! | `wasi:cli/exit` | `exit` | ends the call with a trap (a rule fault) |
//! | `wasi:cli/terminal-*` | `get-terminal-*` | no terminal |
//! | `wasi:random/random`, `insecure`, `insecure-seed` | all | answered at once; at most [`MAX_RANDOM_BYTES`] per call |
//! | `wasi:filesystem/preopens` | `get-directories` | an empty list |
//! | `wasi:filesystem/types` | every `descriptor` method, `filesystem-error-code` | unreachable: without a preopen no descriptor can exist |
//! | `wasi:sockets/tcp-create-socket`, `udp-create-socket` | `create-*-socket` | `access-denied` at once |
//! | `wasi:sockets/tcp`, `wasi:sockets/udp` | every method | unreachable: no socket can be created |
//! | `wasi:sockets/instance-network`, `network` | `instance-network` | a handle that grants nothing |
//! | `wasi:sockets/ip-name-lookup` | `resolve-addresses`, `resolve-next-address` | `permanent-resolver-failure` at once |

mod clocks;
mod io;

use std::time::Duration;

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings as b;
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiView};

use super::CapturedOutput;

/// Most random bytes one `get-random-bytes` call may ask for (wasmtime's
/// default is 64 MiB, allocated on the host before the guest sees it).
pub const MAX_RANDOM_BYTES: u64 = 1024 * 1024;

/// A rule called a WASI function that would have to wait. The call ends
/// with a trap carrying this error; the instance classifies it as a
/// `would-block` fault.
#[derive(Debug, thiserror::Error)]
#[error("{function} would wait ({why}); a rule may not wait: the host never blocks inside a call")]
pub struct WouldBlock {
    /// The WASI function, as `interface.function` (`wasi:io/poll.pollable.block`).
    pub function: &'static str,
    /// What it would have waited for.
    pub why: String,
}

impl WouldBlock {
    fn trap(function: &'static str, why: impl Into<String>) -> wasmtime::Error {
        wasmtime::Error::new(WouldBlock {
            function,
            why: why.into(),
        })
    }
}

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
        clocks::RESOLUTION_NS
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The context every rule's store holds: see the module documentation.
pub fn deny_all(stdout: &CapturedOutput, stderr: &CapturedOutput) -> WasiCtx {
    WasiCtxBuilder::new()
        // Explicit, though it is the default: reads answer `closed` at once.
        .stdin(wasmtime_wasi::p2::pipe::ClosedInputStream)
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .wall_clock(FrozenClock)
        // Unused by the replaced monotonic clock; set so nothing in
        // wasmtime-wasi can read the real one.
        .monotonic_clock(FrozenClock)
        .max_random_size(MAX_RANDOM_BYTES)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// Projection to the replaced `wasi:io` and monotonic-clock interfaces:
/// they only need the store's resource table.
struct Table;

impl HasData for Table {
    type Data<'a> = TableView<'a>;
}

/// Projection to `wasi:io/error`, unchanged (wasmtime-wasi-io implements
/// it on the resource table itself).
struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}

/// The store's resource table, seen by the replaced interfaces.
pub(super) struct TableView<'a>(&'a mut ResourceTable);

fn table<T: WasiView>(t: &mut T) -> TableView<'_> {
    TableView(t.ctx().table)
}

/// Links every WASI interface a rule may import: wasmtime-wasi's own
/// (synchronous) implementations where nothing can wait, Vigil's where
/// something could (see the module documentation for the list).
pub fn add_to_linker<T: WasiView + 'static>(l: &mut Linker<T>) -> anyhow::Result<()> {
    link(l).map_err(anyhow::Error::from)
}

fn link<T: WasiView + 'static>(l: &mut Linker<T>) -> wasmtime::Result<()> {
    // wasi:io — replaced where it could wait.
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<T, Io>(l, |t| t.ctx().table)?;
    b::sync::io::poll::add_to_linker::<T, Table>(l, table)?;
    b::sync::io::streams::add_to_linker::<T, Table>(l, table)?;
    // wasi:clocks — both frozen; the monotonic clock's timers never fire.
    b::clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    b::clocks::monotonic_clock::add_to_linker::<T, Table>(l, table)?;
    // wasi:random — answered at once, size-capped.
    b::random::random::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    b::random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    b::random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    // wasi:cli — empty environment, closed stdin, captured output.
    b::cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    b::cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    b::cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    b::cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    b::cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    b::cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    b::cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    b::cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    b::cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    b::cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    // wasi:filesystem — no preopens, so no descriptor ever exists.
    b::filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    b::sync::filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    // wasi:sockets — every use denied at once, so no socket ever exists.
    b::sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    b::sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    b::sockets::network::add_to_linker::<T, WasiSockets>(l, &Default::default(), T::sockets)?;
    b::sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    b::sync::sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    b::sync::sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    b::sync::sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The replaced functions, called directly on a resource table (no
    //! guest): what would wait traps naming the function, what is ready
    //! answers at once.

    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host as _;
    use wasmtime_wasi::p2::bindings::sync::io::poll::{Host as _, HostPollable as _};
    use wasmtime_wasi::p2::bindings::sync::io::streams::{
        HostInputStream as _, HostOutputStream as _,
    };
    use wasmtime_wasi::p2::pipe::ClosedInputStream;
    use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError};

    use super::*;

    const HOUR_NS: u64 = 3_600_000_000_000;

    fn would_block(err: &wasmtime::Error) -> &WouldBlock {
        err.downcast_ref::<WouldBlock>()
            .unwrap_or_else(|| panic!("not a WouldBlock: {err:#}"))
    }

    #[test]
    fn blocking_on_a_timer_that_is_not_due_traps_at_once_naming_the_function() {
        let mut table = ResourceTable::new();
        let mut t = TableView(&mut table);
        assert_eq!(t.now().unwrap(), 0);
        let timer = t.subscribe_duration(HOUR_NS).unwrap();
        // Readiness is a plain answer…
        assert!(!t.ready(Resource::new_borrow(timer.rep())).unwrap());
        // …waiting is refused (if this waited, the test would hang).
        let err = t.block(timer).unwrap_err();
        assert_eq!(would_block(&err).function, "wasi:io/poll.pollable.block");
        assert!(err.to_string().contains("a rule may not wait"), "{err}");
    }

    #[test]
    fn poll_answers_the_ready_pollables_and_traps_when_none_is() {
        let mut table = ResourceTable::new();
        let mut t = TableView(&mut table);
        let never = t.subscribe_duration(HOUR_NS).unwrap();
        let due = t.subscribe_duration(0).unwrap();
        let also_due = t.subscribe_instant(0).unwrap();
        let borrow = |r: &Resource<DynPollable>| Resource::new_borrow(r.rep());
        assert_eq!(
            t.poll(vec![borrow(&never), borrow(&due), borrow(&also_due)])
                .unwrap(),
            vec![1, 2]
        );
        t.block(borrow(&due)).unwrap();
        let err = t.poll(vec![borrow(&never)]).unwrap_err();
        assert_eq!(would_block(&err).function, "wasi:io/poll.poll");
        assert!(err.to_string().contains("none of the 1 pollables is ready"));
        let err = t.poll(Vec::new()).unwrap_err();
        assert_eq!(would_block(&err).function, "wasi:io/poll.poll");
        // A timer on a later instant is never due either: time is frozen.
        let later = t.subscribe_instant(1).unwrap();
        assert!(t.block(later).is_err());
    }

    #[test]
    fn a_blocking_read_of_the_closed_stdin_answers_closed_at_once() {
        let mut table = ResourceTable::new();
        let stdin: DynInputStream = Box::new(ClosedInputStream);
        let stdin = table.push(stdin).unwrap();
        let mut t = TableView(&mut table);
        let r = t.blocking_read(Resource::new_borrow(stdin.rep()), 1024);
        assert!(matches!(r, Err(StreamError::Closed)), "{r:?}");
        let r = t.blocking_skip(stdin, 1024);
        assert!(matches!(r, Err(StreamError::Closed)), "{r:?}");
    }

    #[test]
    fn blocking_writes_to_captured_output_complete_at_once() {
        let captured = CapturedOutput::new(1024);
        let mut table = ResourceTable::new();
        let out: DynOutputStream = wasmtime_wasi::cli::StdoutStream::p2_stream(&captured);
        let out = table.push(out).unwrap();
        let mut t = TableView(&mut table);
        let b = |r: &Resource<DynOutputStream>| Resource::new_borrow(r.rep());
        t.blocking_write_and_flush(b(&out), b"hello ".to_vec())
            .unwrap();
        t.blocking_write_zeroes_and_flush(b(&out), 2).unwrap();
        t.blocking_flush(b(&out)).unwrap();
        // Over the contract's 4096 bytes: a trap, as in wasmtime-wasi.
        assert!(matches!(
            t.blocking_write_and_flush(b(&out), vec![b'x'; 5000]),
            Err(StreamError::Trap(_))
        ));
        let (text, dropped) = captured.take();
        assert_eq!(text, "hello \0\0");
        assert_eq!(dropped, 0);
    }
}
