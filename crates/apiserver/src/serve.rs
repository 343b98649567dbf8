//! Serving the app over TLS on a listener, HTTP/1.1 with upgrades, until shutdown.
//!
//! A client cannot hold the server's resources by being slow: the TLS handshake has a deadline,
//! so does the request head (on an idle keep-alive connection too, as hyper counts the wait for
//! the next request's first byte), and at most `max_connections` connections are served at
//! once. Nothing bounds a request once its head has arrived: bodies, watches and exec/attach
//! streams last as long as they need.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the listener guards itself against slow, idle and too many clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A connection's TLS handshake must be done within this, or the connection is closed.
    pub tls_handshake_timeout: Duration,
    /// A request head (request line and headers) must have arrived within this of the
    /// connection being ready for it, or the connection is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once. At the cap the server stops accepting, and new connections
    /// wait in the kernel's listen backlog until one ends (what Go's `netutil.LimitListener`
    /// does), rather than being accepted only to be closed.
    pub max_connections: usize,
}

impl ServeLimits {
    /// The defaults. The header timeout is kube-apiserver's `ReadHeaderTimeout` (32 s, "just
    /// shy of requestTimeoutUpperBound"); its Go server bounds the handshake by the same value,
    /// 10 s here is plenty for a handshake on any link the API should be served over.
    /// kube-apiserver caps requests in flight rather than connections; a connection cap is the
    /// cheaper guard for one process, set well above what kubectl and controllers open.
    pub const STANDARD: ServeLimits = ServeLimits {
        tls_handshake_timeout: Duration::from_secs(10),
        header_read_timeout: Duration::from_secs(32),
        max_connections: 4096,
    };
}

impl Default for ServeLimits {
    fn default() -> ServeLimits {
        ServeLimits::STANDARD
    }
}

/// Accept connections until `shutdown`, then wait for open requests to finish (watches end on
/// the same token).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ServeLimits,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // After a failed accept (out of descriptors, say), wait before the next one as Go's
    // `http.Server` does: 5 ms, doubling up to a second, instead of spinning.
    let mut backoff = None;
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff = None;
                    a
                }
                Err(e) => {
                    let delay = backoff.map_or(Duration::from_millis(5), |d: Duration| (d * 2).min(Duration::from_secs(1)));
                    backoff = Some(delay);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "accept failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => continue,
                    }
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "tls handshake timed out");
                    return;
                }
            };
            // A verified client certificate's identity goes with every request on the connection.
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| crate::tls::ClientIdentity::from_der(cert));
            let app = tower::ServiceBuilder::new()
                .map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                    if let Some(identity) = &identity {
                        req.extensions_mut().insert(identity.clone());
                    }
                    req
                })
                .service(app);
            let service = TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}
