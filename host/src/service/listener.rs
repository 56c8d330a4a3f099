//! Accepting and serving HTTP connections within bounds: the accept loop,
//! the per-listener connection cap, the per-connection timeouts, graceful
//! shutdown, and the process's open-files limit.
//!
//! `axum::serve` has no header-read timeout, no idle timeout and no
//! connection cap, so a few hundred clients that connect and send nothing
//! (or send a header byte at a time) could hold every socket. Here each
//! listener accepts only while it holds fewer than `max_connections`
//! connections (a semaphore permit per connection; the excess waits in the
//! kernel's accept queue), and each connection is served by hyper's HTTP/1
//! server under a [`ConnClock`] that enforces, Go-`net/http`-style:
//! - a new connection must complete its TLS handshake (if any) and send
//!   its first request head within `header_read_timeout`;
//! - once a request's first byte arrives, its head must be complete within
//!   `header_read_timeout`;
//! - between requests a kept-alive connection may stay idle for
//!   `keep_alive_timeout` (or, with keep-alive off, is closed after its
//!   response).
//!
//! A request being handled is never cut by these timeouts (bodies have
//! their own bound in `http::read_body`). hyper's own `header_read_timeout`
//! is not used because it runs from the moment hyper waits for a request,
//! which would make the idle and header timeouts one value.
//!
//! Shutdown: when the stop signal turns true the accept loop stops (the
//! listening socket is closed, new connections are refused), every
//! connection is told to shut down gracefully (idle ones close at once,
//! in-flight requests finish and get their answer), and [`serve`] returns
//! once the last connection is closed. The caller bounds that wait.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::metrics::Metrics;

/// The bounds every connection of a listener is served under.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Connections served at once by one listener.
    pub max_connections: usize,
    /// TLS handshake plus first request head; and first byte to complete
    /// head of every request.
    pub header_read_timeout: Duration,
    /// Idle time allowed between two requests; zero turns keep-alive off.
    pub keep_alive_timeout: Duration,
}

/// A bound listening socket, plain or TLS.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    /// `ingest` or `admin`: the metrics label.
    name: &'static str,
}

impl Listener {
    /// Binds `addr`; with `tls`, every connection is a TLS one.
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
        name: &'static str,
    ) -> Result<Self> {
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        Ok(Listener {
            tcp,
            tls: tls.map(TlsAcceptor::from),
            name,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Serves `router` on `listener` until `stop` turns true, then waits for
/// every connection to finish (see the module documentation).
pub async fn serve(
    listener: Listener,
    router: Router,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let Listener { tcp, tls, name } = listener;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut permit = None;
    // Each connection watches its own copy of the stop signal.
    let connection_stop = stop.clone();
    loop {
        if permit.is_none() {
            // At the cap: accept nothing until a connection closes.
            tokio::select! {
                p = slots.clone().acquire_owned() => {
                    permit = Some(p.expect("the semaphore is never closed"));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = stopped(&mut stop) => break,
            }
            continue;
        }
        tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let connection = Connection {
                        permit: permit.take(),
                        metrics: metrics.clone(),
                        listener: name,
                    };
                    metrics.connections(name, 1);
                    connections.spawn(connection.serve(
                        stream,
                        peer,
                        tls.clone(),
                        router.clone(),
                        limits,
                        connection_stop.clone(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of
                    // spinning.
                    tracing::error!(listener = name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped(&mut stop) => break,
        }
    }
    // Refuse new connections from now on, and let the open ones finish.
    drop(tcp);
    while connections.join_next().await.is_some() {}
}

/// Resolves once the stop signal is true (or its sender is gone). Returns
/// nothing, so no lock guard of the channel lives across an await.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One accepted connection: holds its slot under the cap and its place in
/// the open-connections gauge until dropped.
struct Connection {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    metrics: Arc<Metrics>,
    listener: &'static str,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.metrics.connections(self.listener, -1);
        drop(self.permit.take());
    }
}

/// Which timeout closed a connection (the metrics' `phase` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    TlsHandshake,
    Header,
    Idle,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::TlsHandshake => "tls-handshake",
            Phase::Header => "header",
            Phase::Idle => "idle",
        }
    }
}

impl Connection {
    async fn serve(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<TlsAcceptor>,
        router: Router,
        limits: ConnLimits,
        mut stop: watch::Receiver<bool>,
    ) {
        let clock = Arc::new(ConnClock::new());
        let io: Box<dyn Stream> = match tls {
            None => Box::new(stream),
            Some(acceptor) => {
                // Pinned here so the stream is closed when this function
                // returns, after the timeout is counted: a client that sees
                // the close then reads the metric finds it counted.
                let handshake =
                    tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                tokio::pin!(handshake);
                match handshake.as_mut().await {
                    Ok(Ok(tls)) => Box::new(tls),
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        self.timed_out(Phase::TlsHandshake);
                        return;
                    }
                }
            }
        };
        let io = TokioIo::new(Watched {
            inner: io,
            clock: clock.clone(),
        });
        let app = TowerToHyperService::new(router);
        let service = {
            let clock = clock.clone();
            hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let in_flight = clock.request_started();
                let response = app.call(request);
                async move {
                    let response = response.await;
                    drop(in_flight);
                    response
                }
            })
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        // The connection's own clock enforces the header timeout (see the
        // module documentation); no hyper timer, so none of hyper's.
        http.header_read_timeout(None)
            .keep_alive(!limits.keep_alive_timeout.is_zero());
        let conn = http.serve_connection(io, service);
        tokio::pin!(conn);
        let mut shutting_down = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    return;
                }
                phase = clock.expired(limits) => {
                    // No request is being handled (the clock only expires
                    // between requests): dropping the connection loses
                    // nothing.
                    tracing::debug!(%peer, phase = phase.name(), "connection timed out");
                    self.timed_out(phase);
                    return;
                }
                _ = stopped(&mut stop), if !shutting_down => {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }

    fn timed_out(&self, phase: Phase) {
        self.metrics.connection_timeout(self.listener, phase.name());
    }
}

/// A connection's byte stream, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// What one connection is doing, for its timeouts. Written by the stream
/// wrapper ([`Watched`]) and the request wrapper, read by
/// [`ConnClock::expired`]; all three run in the connection's task, the
/// atomics only make the clock shareable.
struct ConnClock {
    epoch: Instant,
    /// Requests being handled.
    in_flight: AtomicUsize,
    /// At least one response was produced (later waits are idle waits).
    served: AtomicBool,
    /// Milliseconds since `epoch` when the connection last became idle
    /// (accepted, or a response produced).
    idle_since_ms: AtomicU64,
    /// Milliseconds since `epoch` of the first byte received while idle,
    /// or `u64::MAX`.
    first_byte_ms: AtomicU64,
    /// Woken when the state changes, so `expired` recomputes its deadline.
    changed: Notify,
}

/// Marks a request in flight until dropped (the response produced, or the
/// request abandoned).
struct InFlight(Arc<ConnClock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let c = &self.0;
        c.idle_since_ms.store(c.now_ms(), Ordering::SeqCst);
        c.first_byte_ms.store(u64::MAX, Ordering::SeqCst);
        c.served.store(true, Ordering::SeqCst);
        c.in_flight.fetch_sub(1, Ordering::SeqCst);
        c.changed.notify_one();
    }
}

impl ConnClock {
    fn new() -> Self {
        ConnClock {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            first_byte_ms: AtomicU64::new(u64::MAX),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// Bytes arrived. The first ones while idle start the header timeout.
    fn received(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0
            && self.first_byte_ms.load(Ordering::SeqCst) == u64::MAX
        {
            self.first_byte_ms.store(self.now_ms(), Ordering::SeqCst);
            self.changed.notify_one();
        }
    }

    /// The current deadline and what it is for; `None` while a request is
    /// being handled.
    fn deadline(&self, limits: ConnLimits) -> Option<(Instant, Phase)> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let at = |ms: u64, d: Duration| self.epoch + Duration::from_millis(ms) + d;
        let first_byte = self.first_byte_ms.load(Ordering::SeqCst);
        if first_byte != u64::MAX {
            return Some((at(first_byte, limits.header_read_timeout), Phase::Header));
        }
        let since = self.idle_since_ms.load(Ordering::SeqCst);
        if !self.served.load(Ordering::SeqCst) {
            // A new connection: its first request head is due.
            Some((at(since, limits.header_read_timeout), Phase::Header))
        } else if limits.keep_alive_timeout.is_zero() {
            // hyper closes after the response; bound a client that does
            // not read it.
            Some((at(since, limits.header_read_timeout), Phase::Idle))
        } else {
            Some((at(since, limits.keep_alive_timeout), Phase::Idle))
        }
    }

    /// Resolves when the current deadline passes with the connection still
    /// in the same state.
    async fn expired(&self, limits: ConnLimits) -> Phase {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before reading the state, so no change is missed.
            changed.as_mut().enable();
            match self.deadline(limits) {
                None => changed.await,
                Some((at, phase)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {
                            if self.deadline(limits).is_some_and(|(d, _)| d <= Instant::now()) {
                                return phase;
                            }
                        }
                        _ = changed => {}
                    }
                }
            }
        }
    }
}

/// The connection's stream, telling its clock when bytes arrive.
struct Watched {
    inner: Box<dyn Stream>,
    clock: Arc<ConnClock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.received();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Raises the soft limit on open files to the hard limit, so the
/// connection caps, not the process's descriptors, bound what clients can
/// hold. Returns the soft limit in force afterwards (`None` if it cannot be
/// read).
pub fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(
            "cannot read the open-files limit: {}",
            io::Error::last_os_error()
        );
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            tracing::warn!(
                soft = limit.rlim_cur,
                hard = limit.rlim_max,
                "cannot raise the open-files limit: {}",
                io::Error::last_os_error()
            );
        }
    }
    // rlim_t is u64 on Linux but not on every platform.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

/// Open files kept for everything but client connections (audit log,
/// state store, connectors' pools, components, sources).
pub const RESERVED_FILES: u64 = 256;

/// The connection cap per listener that fits the open-files limit:
/// `max_connections`, or less (with a warning naming the key) when
/// `listeners` × `max_connections` + [`RESERVED_FILES`] would not fit.
pub fn fit_connection_cap(
    max_connections: usize,
    listeners: usize,
    open_files: Option<u64>,
) -> usize {
    let Some(open_files) = open_files else {
        return max_connections;
    };
    let room = open_files.saturating_sub(RESERVED_FILES) / listeners.max(1) as u64;
    if (max_connections as u64) <= room {
        return max_connections;
    }
    let fitted = room.max(1) as usize;
    tracing::warn!(
        max_connections,
        open_files,
        fitted,
        "server.max_connections does not fit the open-files limit; serving at most {fitted} connections per listener (raise `ulimit -n` or lower server.max_connections)"
    );
    fitted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(30),
        }
    }

    // A new connection owes its first request head within the header
    // timeout; a request in flight has no deadline; afterwards the idle
    // timeout applies; a first byte starts the header timeout again.
    #[test]
    fn the_clock_follows_the_connection() {
        let c = Arc::new(ConnClock::new());
        let (at, phase) = c.deadline(limits()).unwrap();
        assert_eq!(phase, Phase::Header);
        assert_eq!(at, c.epoch + Duration::from_secs(10));
        let in_flight = c.request_started();
        assert_eq!(c.deadline(limits()), None);
        // Bytes during a request (its body) do not start a header timeout.
        c.received();
        drop(in_flight);
        let (_, phase) = c.deadline(limits()).unwrap();
        assert_eq!(phase, Phase::Idle);
        c.received();
        let (_, phase) = c.deadline(limits()).unwrap();
        assert_eq!(phase, Phase::Header);
    }

    // With keep-alive off, a served connection is still bounded.
    #[test]
    fn keep_alive_off_still_bounds_the_connection() {
        let c = Arc::new(ConnClock::new());
        drop(c.request_started());
        let l = ConnLimits {
            keep_alive_timeout: Duration::ZERO,
            ..limits()
        };
        assert!(c.deadline(l).is_some());
    }

    // The cap is lowered to fit the descriptors, never raised.
    #[test]
    fn the_cap_fits_the_open_files_limit() {
        assert_eq!(fit_connection_cap(1024, 2, Some(1_048_576)), 1024);
        assert_eq!(fit_connection_cap(1024, 2, Some(1024)), 384);
        assert_eq!(fit_connection_cap(1024, 1, Some(100)), 1);
        assert_eq!(fit_connection_cap(1024, 1, None), 1024);
    }
}
