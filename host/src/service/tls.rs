//! The service's listeners: plain TCP, or TLS through rustls (ring
//! provider, TLS 1.2 and 1.3, HTTP/1.1) when `tls_cert_file` and
//! `tls_key_file` are set.
//!
//! TLS handshakes run in their own tasks with a timeout, so a client that
//! stalls its handshake cannot hold up other connections; only completed
//! handshakes are handed to axum.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's byte stream, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Reads the PEM certificate chain and key into a rustls configuration.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "server.tls_cert_file: cannot read certificates from {}",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!("server.tls_cert_file: no certificate in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "server.tls_key_file: cannot read a private key from {}",
                key.display()
            )
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("rustls: protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("server.tls_cert_file/tls_key_file: the key does not fit the certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A bound listener, plain or TLS, for `axum::serve`.
pub enum ServiceListener {
    Plain(TcpListener),
    Tls {
        local: SocketAddr,
        accepted: mpsc::Receiver<(Box<dyn Stream>, SocketAddr)>,
    },
}

impl ServiceListener {
    /// Binds `addr`; with `tls`, starts the accept-and-handshake task.
    pub async fn bind(addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> Result<Self> {
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let Some(tls) = tls else {
            return Ok(ServiceListener::Plain(tcp));
        };
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(tls);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let handed = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = handed.send((Box::new(tls) as Box<dyn Stream>, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(ServiceListener::Tls {
            local,
            accepted: rx,
        })
    }
}

async fn accept_error(e: io::Error) {
    // Out of file descriptors and the like: wait instead of spinning.
    tracing::error!("accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

impl axum::serve::Listener for ServiceListener {
    type Io = Box<dyn Stream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self {
            ServiceListener::Plain(tcp) => loop {
                match TcpListener::accept(tcp).await {
                    Ok((s, peer)) => {
                        let _ = s.set_nodelay(true);
                        return (Box::new(s), peer);
                    }
                    Err(e) => accept_error(e).await,
                }
            },
            ServiceListener::Tls { accepted, .. } => match accepted.recv().await {
                Some(c) => c,
                // The accept task ended: never hand out another connection.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            ServiceListener::Plain(tcp) => tcp.local_addr(),
            ServiceListener::Tls { local, .. } => Ok(*local),
        }
    }
}
