//! Moving bytes: a TCP frontend accepts and splices each connection to a backend; a UDP
//! frontend keeps a session per client address with its own socket to the chosen backend.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::balance::Balancer;

/// How long one backend gets to accept a connection before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A UDP session whose backend has not answered for this long is closed (conntrack's UDP
/// timeout); the client's next datagram opens a new one.
pub(crate) const UDP_IDLE: Duration = Duration::from_secs(30);
const DATAGRAM_MAX: usize = 65_535;
/// Per direction, per connection: 64 KiB moves bulk data at about twice the rate of the
/// default 8 KiB (`ordinal bench proxy`).
const COPY_BUFFER: usize = 64 << 10;

/// What every forwarding task needs: its frontend's balancer, when to stop, where to register.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub balancer: Arc<Balancer>,
    /// Cancelled when the frontend goes away: stop accepting.
    pub frontend: CancellationToken,
    /// Cancelled when the proxy stops: end every connection too.
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

pub(crate) async fn serve_tcp(listener: TcpListener, ctx: Ctx) {
    loop {
        let accepted = tokio::select! {
            _ = ctx.frontend.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, peer)) => {
                let ctx2 = ctx.clone();
                ctx.tasks.spawn(async move { splice(client, peer, ctx2).await });
            }
            Err(e) => {
                tracing::debug!(error = %e, "proxy accept");
                // Out of descriptors and the like: let connections finish before accepting more.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Connect the client to the first backend that answers, then copy both ways until both close.
async fn splice(mut client: TcpStream, peer: SocketAddr, ctx: Ctx) {
    let mut upstream = None;
    for backend in ctx.balancer.candidates(peer.ip(), Instant::now()) {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend)).await {
            Ok(Ok(stream)) => {
                ctx.balancer.served(peer.ip(), backend, Instant::now());
                upstream = Some(stream);
                break;
            }
            Ok(Err(e)) => tracing::debug!(%backend, error = %e, "backend refused; trying the next"),
            Err(_) => tracing::debug!(%backend, "backend did not answer; trying the next"),
        }
    }
    let Some(mut upstream) = upstream else {
        // No endpoint: reset rather than leave the client with a connection that says nothing.
        let _ = client.set_zero_linger();
        return;
    };
    let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
    tokio::select! {
        _ = ctx.shutdown.cancelled() => {}
        _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, COPY_BUFFER, COPY_BUFFER) => {}
    }
}

struct Session {
    upstream: Arc<UdpSocket>,
    closed: Arc<AtomicBool>,
}

pub(crate) async fn serve_udp(socket: UdpSocket, ctx: Ctx) {
    let socket = Arc::new(socket);
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut buf = vec![0u8; DATAGRAM_MAX];
    loop {
        let received = tokio::select! {
            _ = ctx.frontend.cancelled() => return,
            received = socket.recv_from(&mut buf) => received,
        };
        let Ok((n, peer)) = received else { continue };
        let live = sessions.get(&peer).is_some_and(|s| !s.closed.load(Ordering::Relaxed));
        if !live {
            sessions.retain(|_, s| !s.closed.load(Ordering::Relaxed));
            let Some(session) = open_session(&socket, peer, &ctx).await else { continue };
            sessions.insert(peer, session);
        }
        if let Some(session) = sessions.get(&peer) {
            let _ = session.upstream.send(&buf[..n]).await;
        }
    }
}

/// A socket connected to a backend for this client, and a task relaying its replies back
/// through the frontend's socket (so they come from the address the client asked).
async fn open_session(frontend: &Arc<UdpSocket>, peer: SocketAddr, ctx: &Ctx) -> Option<Session> {
    let backend = *ctx.balancer.candidates(peer.ip(), Instant::now()).first()?;
    let bind: SocketAddr = if backend.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let upstream = UdpSocket::bind(bind).await.ok()?;
    upstream.connect(backend).await.ok()?;
    ctx.balancer.served(peer.ip(), backend, Instant::now());
    let upstream = Arc::new(upstream);
    let closed = Arc::new(AtomicBool::new(false));
    let (up, back, done, shutdown) = (upstream.clone(), frontend.clone(), closed.clone(), ctx.shutdown.clone());
    ctx.tasks.spawn(async move {
        let mut buf = vec![0u8; DATAGRAM_MAX];
        loop {
            let got = tokio::select! {
                _ = shutdown.cancelled() => break,
                got = tokio::time::timeout(UDP_IDLE, up.recv(&mut buf)) => got,
            };
            match got {
                Ok(Ok(n)) => {
                    let _ = back.send_to(&buf[..n], peer).await;
                }
                // The backend is gone (ICMP unreachable) or the session went quiet.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    Some(Session { upstream, closed })
}
