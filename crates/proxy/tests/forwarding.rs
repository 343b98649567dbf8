//! The proxy engine against real sockets on loopback: frontends on 127.0.0.1, backends that
//! answer with their own name.

use std::net::SocketAddr;
use std::time::Duration;

use logic::proxy::{Frontend, Protocol, Route, Table};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A TCP backend that writes `name` to every connection and closes it.
async fn tcp_backend(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind backend");
    let addr = listener.local_addr().expect("backend address");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(name.as_bytes()).await;
        }
    });
    addr
}

/// A UDP backend that answers every datagram with `name:` and the datagram.
async fn udp_backend(name: &'static str) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind backend");
    let addr = socket.local_addr().expect("backend address");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let reply = [name.as_bytes(), b":", &buf[..n]].concat();
            let _ = socket.send_to(&reply, peer).await;
        }
    });
    addr
}

/// An address nobody listens on.
async fn dead_address() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address")
}

/// A loopback port that is free now (the frontend binds it right after).
fn free_port(protocol: Protocol) -> SocketAddr {
    match protocol {
        Protocol::Tcp => std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()),
        Protocol::Udp => std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()),
    }
    .expect("free port")
}

fn table(frontend: Frontend, backends: Vec<SocketAddr>, affinity: Option<Duration>) -> Table {
    Table::from([(frontend, Route { service: "default/web:".into(), backends, affinity })])
}

async fn ask(frontend: SocketAddr) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(frontend).await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await??;
    Ok(out)
}

#[tokio::test]
async fn tcp_round_robin_failover_updates_and_removal() {
    let (a, b) = (tcp_backend("a").await, tcp_backend("b").await);
    let frontend = Frontend { addr: free_port(Protocol::Tcp), protocol: Protocol::Tcp };
    let mut proxy = proxy::Proxy::new(CancellationToken::new());
    proxy.apply(table(frontend, vec![a, b], None)).await;
    assert_eq!(proxy.frontends(), vec![frontend]);
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(ask(frontend.addr).await.expect("served"));
    }
    answers.sort();
    assert_eq!(answers, ["a", "a", "b", "b"], "round robin over the backends");

    // A dead backend in the list is skipped: every connection is still served.
    proxy.apply(table(frontend, vec![a, dead_address().await, b], None)).await;
    for _ in 0..6 {
        let answer = ask(frontend.addr).await.expect("served");
        assert!(answer == "a" || answer == "b", "{answer}");
    }

    // New endpoints apply to the next connection, on the same bound frontend.
    proxy.apply(table(frontend, vec![b], None)).await;
    for _ in 0..3 {
        assert_eq!(ask(frontend.addr).await.expect("served"), "b");
    }

    // No endpoints: the connection is reset or closed at once, never left hanging.
    proxy.apply(table(frontend, vec![], None)).await;
    assert!(ask(frontend.addr).await.map(|s| s.is_empty()).unwrap_or(true));

    // The Service is gone: nothing listens.
    proxy.apply(Table::new()).await;
    assert!(proxy.frontends().is_empty());
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if tokio::net::TcpStream::connect(frontend.addr).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the frontend is closed after its Service goes");
    proxy.stop().await;
}

#[tokio::test]
async fn client_ip_affinity_keeps_one_backend() {
    let (a, b) = (tcp_backend("a").await, tcp_backend("b").await);
    let frontend = Frontend { addr: free_port(Protocol::Tcp), protocol: Protocol::Tcp };
    let mut proxy = proxy::Proxy::new(CancellationToken::new());
    proxy.apply(table(frontend, vec![a, b], Some(Duration::from_secs(60)))).await;
    let first = ask(frontend.addr).await.expect("served");
    for _ in 0..5 {
        assert_eq!(ask(frontend.addr).await.expect("served"), first);
    }
    proxy.stop().await;
}

#[tokio::test]
async fn udp_sessions_reach_a_backend_and_replies_come_from_the_frontend() {
    let (a, b) = (udp_backend("a").await, udp_backend("b").await);
    let frontend = Frontend { addr: free_port(Protocol::Udp), protocol: Protocol::Udp };
    let mut proxy = proxy::Proxy::new(CancellationToken::new());
    proxy.apply(table(frontend, vec![a, b], None)).await;
    let mut seen = Vec::new();
    for i in 0..2 {
        // Each client socket is its own session; round robin spreads the sessions.
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("client");
        client.send_to(format!("ping{i}").as_bytes(), frontend.addr).await.expect("send");
        let mut buf = [0u8; 64];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .expect("reply")
            .expect("recv");
        assert_eq!(from, frontend.addr, "the reply comes from the address the client asked");
        let reply = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(reply.ends_with(&format!(":ping{i}")), "{reply}");
        // The same client stays in its session.
        client.send_to(b"again", frontend.addr).await.expect("send");
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .expect("reply")
            .expect("recv");
        let again = String::from_utf8_lossy(&buf[..n]).to_string();
        assert_eq!(again.split(':').next(), reply.split(':').next());
        seen.push(reply.split(':').next().unwrap_or_default().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["a", "b"]);
    proxy.stop().await;
}
