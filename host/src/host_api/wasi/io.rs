//! `wasi:io/poll` and `wasi:io/streams` without waiting.
//!
//! wasmtime-wasi's synchronous implementations of `poll`,
//! `pollable.block` and the streams' `blocking-*` functions park the
//! calling thread until the pollable or stream is ready — out of reach of
//! the epoch deadline. Here each of them checks readiness once (the
//! wasmtime-wasi future is polled a single time, inside its ambient tokio
//! runtime) and then either does the operation at once or traps with
//! [`WouldBlock`] naming the function. Every non-blocking function is
//! delegated unchanged to wasmtime-wasi's implementation on the resource
//! table.
//!
//! For the streams a rule can actually hold (captured stdout/stderr,
//! always writable; a closed stdin) nothing here ever traps; the checks
//! hold for any stream type that may be added later.

use std::task::Poll;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi::runtime::in_tokio;
use wasmtime_wasi_io::bytes::Bytes;
use wasmtime_wasi_io::poll::{DynFuture, Pollable};

use super::{TableView, WouldBlock};

/// Polls a readiness future exactly once (inside wasmtime-wasi's ambient
/// tokio runtime, which some pollables need to register interest).
fn ready_now(mut ready: DynFuture<'_>) -> bool {
    in_tokio(std::future::poll_fn(move |cx| {
        Poll::Ready(ready.as_mut().poll(cx).is_ready())
    }))
}

fn would_block(function: &'static str, why: impl Into<String>) -> StreamError {
    StreamError::Trap(WouldBlock::trap(function, why))
}

impl poll::Host for TableView<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        if pollables.is_empty() {
            // As wasmtime-wasi: an empty list would wait forever.
            return Err(WouldBlock::trap(
                "wasi:io/poll.poll",
                "the list of pollables is empty",
            ));
        }
        let mut ready = Vec::new();
        for (i, p) in pollables.iter().enumerate() {
            let borrowed = Resource::new_borrow(p.rep());
            if poll::HostPollable::ready(self.0, borrowed)? {
                ready.push(u32::try_from(i)?);
            }
        }
        if ready.is_empty() {
            return Err(WouldBlock::trap(
                "wasi:io/poll.poll",
                format!("none of the {} pollables is ready", pollables.len()),
            ));
        }
        Ok(ready)
    }
}

impl poll::HostPollable for TableView<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        // Polls once; never waits.
        poll::HostPollable::ready(self.0, pollable)
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        if poll::HostPollable::ready(self.0, pollable)? {
            return Ok(());
        }
        Err(WouldBlock::trap(
            "wasi:io/poll.pollable.block",
            "the pollable is not ready (time is frozen during a call: a timer never fires)",
        ))
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(self.0, pollable)
    }
}

impl streams::Host for TableView<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(self.0, err)
    }
}

/// The output stream behind `stream`, checked ready; traps naming
/// `function` otherwise.
fn ready_output<'t>(
    table: &'t mut ResourceTable,
    stream: &Resource<DynOutputStream>,
    function: &'static str,
) -> StreamResult<&'t mut DynOutputStream> {
    let s = table.get_mut(stream)?;
    if !ready_now(s.ready()) {
        return Err(would_block(function, "the stream is not ready for writing"));
    }
    Ok(s)
}

/// Writes `bytes` if the stream takes them all now, then flushes and checks
/// that the flush is complete — the `blocking-write-and-flush` contract,
/// without the waits.
fn write_and_flush_now(
    table: &mut ResourceTable,
    stream: &Resource<DynOutputStream>,
    bytes: Bytes,
    function: &'static str,
) -> StreamResult<()> {
    let s = ready_output(table, stream, function)?;
    let permit = s.check_write()?;
    if permit < bytes.len() {
        return Err(would_block(
            function,
            format!(
                "the stream takes {permit} bytes now, {} were given",
                bytes.len()
            ),
        ));
    }
    s.write(bytes)?;
    flush_now(s, function)
}

/// Flushes and requires the flush to be complete at once. As wasmtime-wasi:
/// a stream that has become closed is not an error here.
fn flush_now(s: &mut DynOutputStream, function: &'static str) -> StreamResult<()> {
    match s.flush() {
        Ok(()) | Err(StreamError::Closed) => {}
        Err(e) => return Err(e),
    }
    if !ready_now(s.ready()) {
        return Err(would_block(function, "the flush has not completed"));
    }
    match s.check_write() {
        Ok(_) | Err(StreamError::Closed) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Most bytes one `blocking-write-and-flush` (or `-zeroes-`) may carry
/// (the WASI contract, enforced by wasmtime-wasi the same way).
const MAX_BLOCKING_WRITE: usize = 4096;

impl streams::HostOutputStream for TableView<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        // Cancels the stream's background work, if any (none for the
        // captured stdout/stderr).
        streams::HostOutputStream::drop(self.0, stream)
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(self.0, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(self.0, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        if bytes.len() > MAX_BLOCKING_WRITE {
            return Err(StreamError::trap(
                "Buffer too large for blocking-write-and-flush (expected at most 4096)",
            ));
        }
        write_and_flush_now(
            self.0,
            &stream,
            bytes.into(),
            "wasi:io/streams.output-stream.blocking-write-and-flush",
        )
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_BLOCKING_WRITE {
            return Err(StreamError::trap(
                "Buffer too large for blocking-write-zeroes-and-flush (expected at most 4096)",
            ));
        }
        write_and_flush_now(
            self.0,
            &stream,
            Bytes::from(vec![0; len]),
            "wasi:io/streams.output-stream.blocking-write-zeroes-and-flush",
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(self.0, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        // Bounded by `check-write` (wasmtime-wasi traps past it).
        streams::HostOutputStream::write_zeroes(self.0, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(self.0, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        let s = self.0.get_mut(&stream)?;
        flush_now(s, "wasi:io/streams.output-stream.blocking-flush")
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(self.0, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        const F: &str = "wasi:io/streams.output-stream.blocking-splice";
        ready_output(self.0, &dst, F)?;
        ready_input(self.0, &src, F)?;
        let moved = streams::HostOutputStream::splice(
            self.0,
            Resource::new_borrow(dst.rep()),
            Resource::new_borrow(src.rep()),
            len,
        )?;
        flush_now(self.0.get_mut(&dst)?, F)?;
        Ok(moved)
    }
}

/// Requires the input stream behind `stream` to be ready (data available,
/// or closed); traps naming `function` otherwise.
fn ready_input(
    table: &mut ResourceTable,
    stream: &Resource<DynInputStream>,
    function: &'static str,
) -> StreamResult<()> {
    let s = table.get_mut(stream)?;
    if !ready_now(s.ready()) {
        return Err(would_block(function, "no data is available yet"));
    }
    Ok(())
}

impl streams::HostInputStream for TableView<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        streams::HostInputStream::drop(self.0, stream)
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(self.0, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        ready_input(
            self.0,
            &stream,
            "wasi:io/streams.input-stream.blocking-read",
        )?;
        // Ready: `read` answers with data, `closed` or an error at once.
        streams::HostInputStream::read(self.0, stream, len)
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(self.0, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        ready_input(
            self.0,
            &stream,
            "wasi:io/streams.input-stream.blocking-skip",
        )?;
        streams::HostInputStream::skip(self.0, stream, len)
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(self.0, stream)
    }
}
