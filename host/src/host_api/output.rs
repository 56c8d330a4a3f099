//! Guest stdout/stderr, captured per call with a byte budget.
//!
//! A rule's `println!` becomes a log line tagged with the rule id after the
//! call returns. Output past `max_output_bytes` in one call is dropped and
//! counted (never an error, so a noisy rule still produces its findings);
//! the write always succeeds from the guest's point of view.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi_io::bytes::Bytes;

#[derive(Default)]
struct Captured {
    text: Vec<u8>,
    /// Bytes charged this call (kept text plus log lines).
    used: usize,
    dropped: u64,
}

/// A shared, capped buffer for one output stream of one rule.
#[derive(Clone)]
pub struct CapturedOutput {
    cap: usize,
    inner: Arc<Mutex<Captured>>,
}

impl CapturedOutput {
    pub fn new(cap: usize) -> Self {
        CapturedOutput {
            cap,
            inner: Arc::default(),
        }
    }

    /// Counts `n` bytes against the budget without keeping them (used for
    /// `log` lines). Returns false, and counts them as dropped, when over.
    pub fn charge(&self, n: usize) -> bool {
        let mut c = self.inner.lock().expect("output lock");
        if c.used + n > self.cap {
            c.dropped += n as u64;
            return false;
        }
        c.used += n;
        true
    }

    fn keep(&self, bytes: &[u8]) {
        let mut c = self.inner.lock().expect("output lock");
        let room = self.cap.saturating_sub(c.used);
        let kept = bytes.len().min(room);
        c.text.extend_from_slice(&bytes[..kept]);
        c.used += kept;
        c.dropped += (bytes.len() - kept) as u64;
    }

    /// Takes what was captured since the last call (lossy UTF-8) and how many
    /// bytes were dropped, and resets the budget.
    pub fn take(&self) -> (String, u64) {
        let mut c = self.inner.lock().expect("output lock");
        let taken = std::mem::take(&mut *c);
        (
            String::from_utf8_lossy(&taken.text).into_owned(),
            taken.dropped,
        )
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi_io::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always writable: output past the budget is dropped, not blocked.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_budget_is_dropped_and_counted() {
        let out = CapturedOutput::new(8);
        out.keep(b"hello ");
        out.keep(b"world");
        assert!(!out.charge(1));
        let (text, dropped) = out.take();
        assert_eq!(text, "hello wo");
        assert_eq!(dropped, 4);
        // The budget is per call: after take() it is fresh.
        assert!(out.charge(8));
    }
}
