//! HTTPS served directly, when `[server] tls_cert` and `tls_key` are set: rustls (ring) for
//! the handshake, HTTP/1.1 and HTTP/2 chosen by ALPN, the same router as over plain HTTP.
//!
//! Each handshake runs in its own task under a deadline, so a client that connects and
//! says nothing (or speaks plain HTTP to the TLS port) holds one task until then and never
//! the accept loop; a failed handshake is logged at debug and counted
//! (`botwatch_tls_handshakes_total`), never fatal. On shutdown the loop stops accepting and
//! connections finish their requests in flight, for at most [`SHUTDOWN_GRACE`].
//!
//! ```no_run
//! # async fn run(state: botwatch_server::Shared) -> anyhow::Result<()> {
//! let tls = state.cfg.tls()?; // None: plain HTTP
//! let listener = tokio::net::TcpListener::bind(state.cfg.listen).await?;
//! botwatch_server::serve(listener, state, tls, botwatch_server::shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```

use crate::{ServerConfig, Shared};
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tower::Layer;

/// How long connections may take to finish after shutdown begins; then they are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the TLS settings cannot be used. Each names the setting or file at fault; the cause
/// (I/O or rustls error) is the `source`, shown by `{:#}`.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[server] tls_cert is set but tls_key is not: set both for HTTPS, or neither")]
    CertWithoutKey,
    #[error("[server] tls_key is set but tls_cert is not: set both for HTTPS, or neither")]
    KeyWithoutCert,
    #[error("[server] tls_handshake_timeout_ms must be above 0")]
    ZeroHandshakeTimeout,
    #[error("reading {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {what}", path.display())]
    Pem { path: PathBuf, what: String },
    #[error("certificate {} with key {}", cert.display(), key.display())]
    Rustls { cert: PathBuf, key: PathBuf, source: rustls::Error },
}

impl ServerConfig {
    /// Whether the server speaks HTTPS itself (then cookies are `Secure` and responses carry
    /// `Strict-Transport-Security`).
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// The rustls configuration from `tls_cert` and `tls_key`; `None` when neither is set.
    pub fn tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::CertWithoutKey),
            (None, Some(_)) => Err(TlsError::KeyWithoutCert),
            (Some(c), Some(k)) => {
                if self.tls_handshake_timeout_ms == 0 {
                    return Err(TlsError::ZeroHandshakeTimeout);
                }
                load(c, k).map(Some)
            }
        }
    }
}

/// Reads a PEM certificate chain and private key into a rustls server configuration that
/// offers HTTP/2 and HTTP/1.1 by ALPN.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |p: &Path| std::fs::read(p).map_err(|source| TlsError::Read { path: p.to_path_buf(), source });
    let pem_err = |p: &Path, what: String| TlsError::Pem { path: p.to_path_buf(), what };

    let cert_pem = read(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(pem_err(cert, "no CERTIFICATE block: expected a PEM certificate chain".into()));
    }

    let key_pem = read(key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        let what = match e {
            pem::Error::NoItemsFound if key_pem.windows(19).any(|w| w == b"ENCRYPTED PRIVATE K") => {
                "the private key is encrypted: decrypt it (openssl pkey -in KEY -out KEY.plain)".to_string()
            }
            pem::Error::NoItemsFound => {
                "no private key block: expected PEM PRIVATE KEY (PKCS#8), RSA PRIVATE KEY or EC PRIVATE KEY"
                    .to_string()
            }
            e => format!("not a PEM private key: {e}"),
        };
        pem_err(key, what)
    })?;

    // The provider is named here rather than taken from the process default, so loading
    // works whoever installed what (and never falls back to aws-lc).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rustls_err = |source| TlsError::Rustls { cert: cert.to_path_buf(), key: key.to_path_buf(), source };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(rustls_err)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The accept loop over TLS; see the module documentation.
/// Serves plain HTTP (`tls: None`) or HTTPS on `listener`. Every connection is bounded:
/// at most `max_connections` at once (the accept loop waits for a slot, so file descriptors
/// cannot run out), at most `max_connections_per_client` from one address (IPv6: one /64;
/// trusted proxies exempt, they carry many users), the TLS handshake and every request's
/// headers must arrive within their deadlines, and a kept-alive connection that sends no
/// next request within `header_timeout_secs` is closed.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handshake_timeout = Duration::from_millis(state.cfg.tls_handshake_timeout_ms);
    let header_timeout = Duration::from_secs(state.cfg.header_timeout_secs.max(1));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let app = crate::router(state.clone());
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(state.cfg.max_connections.max(1)));
    let per_client = Arc::new(PerClient::new(state.cfg.max_connections_per_client.max(1)));
    // Dropped at shutdown: handshakes still under way are abandoned rather than waited for.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let trusted = state.cfg.trusted_proxies.iter().any(|n| n.contains(&peer.ip()));
        let Some(client) = (if trusted { Some(None) } else { per_client.enter(peer.ip()).map(Some) }) else {
            // Over its share: closed at once, without reading a byte.
            state.metrics.connection_refused();
            drop(tcp);
            continue;
        };
        // Small TLS records and HTTP/2 frames should not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let state = state.clone();
        // Taken before the handshake, so shutdown also waits for connections still in it.
        let watcher = graceful.watcher();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _client = client;
            // What `into_make_service_with_connect_info` gives: the portal reads the peer
            // address from `ConnectInfo`.
            let svc = TowerToHyperService::new(axum::Extension(ConnectInfo(peer)).layer(app));
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // The timer makes the header-read deadline apply, to the first request and to
            // every next one on a kept-alive connection: a client cannot hold a connection
            // by saying nothing.
            builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
            builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(header_timeout));
            let Some(acceptor) = acceptor else {
                // Plain HTTP is HTTP/1.1 (browsers never speak cleartext HTTP/2): no protocol
                // sniffing, which would wait for a first byte with no deadline.
                let builder = builder.http1_only();
                let conn = builder.serve_connection(TokioIo::new(tcp), svc);
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            };
            let handshake = tokio::select! {
                r = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)) => r,
                _ = stop.changed() => return,
            };
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    state.metrics.tls_handshake("failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    state.metrics.tls_handshake("timeout");
                    return;
                }
            };
            state.metrics.tls_handshake("ok");
            // ALPN already chose the protocol: serve it without sniffing the first bytes.
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            let builder = if h2 { builder.http2_only() } else { builder.http1_only() };
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
            }
        });
    }
    drop(listener);
    drop(stop_tx);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "Connections still open after the grace period; dropping them"
        );
    }
    Ok(())
}

/// Open connections per client address (IPv6 by /64, where one subscriber's devices live).
struct PerClient {
    max: usize,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One connection's place in [`PerClient`]; given back when dropped.
struct ClientSlot {
    key: std::net::IpAddr,
    of: Arc<PerClient>,
}

impl PerClient {
    fn new(max: usize) -> Self {
        PerClient { max, open: Default::default() }
    }

    fn key(ip: std::net::IpAddr) -> std::net::IpAddr {
        match ip.to_canonical() {
            std::net::IpAddr::V6(a) => {
                let s = a.segments();
                std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        }
    }

    fn enter(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<ClientSlot> {
        let key = Self::key(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot { key, of: self.clone() })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.of.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Per-connection errors (reset before accept) are not the listener's; anything else (out
/// of file descriptors) is retried after a pause instead of spinning or giving up.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "Accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cert: Option<&Path>, key: Option<&Path>) -> ServerConfig {
        ServerConfig {
            tls_cert: cert.map(Path::to_path_buf),
            tls_key: key.map(Path::to_path_buf),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn neither_set_is_plain_http() {
        let c = cfg(None, None);
        assert!(!c.tls_enabled());
        assert!(c.tls().unwrap().is_none());
    }

    #[test]
    fn cert_or_key_alone_is_an_error() {
        let p = Path::new("/nonexistent/x.pem");
        let e = cfg(Some(p), None).tls().unwrap_err();
        assert!(matches!(e, TlsError::CertWithoutKey), "{e}");
        assert!(e.to_string().contains("tls_key"), "{e}");
        let e = cfg(None, Some(p)).tls().unwrap_err();
        assert!(matches!(e, TlsError::KeyWithoutCert), "{e}");
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("absent-cert.pem");
        let e = cfg(Some(&cert), Some(&cert)).tls().unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
        assert!(e.to_string().contains("absent-cert.pem"), "{e}");
    }

    #[test]
    fn garbage_pem_is_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, b"\x00\xffnot pem at all\n").unwrap();
        let e = cfg(Some(&junk), Some(&junk)).tls().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("junk.pem") && msg.contains("CERTIFICATE"), "{msg}");

        // A certificate block whose base64 is broken.
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
        let e = cfg(Some(&broken), Some(&junk)).tls().unwrap_err();
        assert!(e.to_string().contains("broken.pem"), "{e}");
    }

    #[test]
    fn key_file_without_a_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        // Well-formed PEM holding a (bogus) certificate and no key: the key file is at fault.
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let e = cfg(Some(&cert), Some(&cert)).tls().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("cert.pem") && msg.contains("private key"), "{msg}");
    }

    #[test]
    fn encrypted_key_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(
            &key,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let msg = cfg(Some(&cert), Some(&key)).tls().unwrap_err().to_string();
        assert!(msg.contains("key.pem") && msg.contains("encrypted"), "{msg}");
    }

    #[test]
    fn zero_handshake_timeout_is_an_error() {
        let p = Path::new("/nonexistent/x.pem");
        let c = ServerConfig { tls_handshake_timeout_ms: 0, ..cfg(Some(p), Some(p)) };
        assert!(matches!(c.tls().unwrap_err(), TlsError::ZeroHandshakeTimeout));
    }
}
