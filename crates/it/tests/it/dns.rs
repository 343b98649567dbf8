//! The cluster DNS server on its own against the API: cluster names from the zone, other names
//! forwarded to an upstream (a fake resolver on loopback here) and cached within their TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use it::{TestServer, eventually};

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// (rcode, the first answer's IPv4 address, if any).
async fn ask(server: std::net::SocketAddr, id: u16, name: &str) -> anyhow::Result<(u8, Option<[u8; 4]>)> {
    ask_from([127, 0, 0, 1], server, id, name).await.map(|(rcode, _, ip)| (rcode, ip))
}

/// Ask from the source address `src`: (rcode, answer count, the last answer's IPv4 address).
async fn ask_from(
    src: [u8; 4],
    server: std::net::SocketAddr,
    id: u16,
    name: &str,
) -> anyhow::Result<(u8, u16, Option<[u8; 4]>)> {
    let socket = tokio::net::UdpSocket::bind((std::net::Ipv4Addr::from(src), 0)).await?;
    socket.send_to(&query(id, name), server).await?;
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf)).await??;
    let answers = u16::from_be_bytes([buf[6], buf[7]]);
    let ip = (answers > 0 && n >= 4).then(|| [buf[n - 4], buf[n - 3], buf[n - 2], buf[n - 1]]);
    Ok((buf[3] & 0x0f, answers, ip))
}

/// Ask over TCP (two-byte length prefix, RFC 7766), twice on one connection: (rcode, answer
/// count, the last answer's IPv4 address) of the second reply.
async fn ask_tcp(server: std::net::SocketAddr, name: &str) -> anyhow::Result<(u8, u16, Option<[u8; 4]>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server).await?;
    let mut reply = Vec::new();
    for id in [21, 22] {
        let q = query(id, name);
        stream.write_u16(q.len() as u16).await?;
        stream.write_all(&q).await?;
        let len = tokio::time::timeout(Duration::from_secs(3), stream.read_u16()).await??;
        reply = vec![0u8; usize::from(len)];
        stream.read_exact(&mut reply).await?;
        anyhow::ensure!(reply.len() >= 12 && reply[..2] == id.to_be_bytes(), "reply to query {id}: {reply:?}");
    }
    let n = reply.len();
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    let ip = (answers > 0).then(|| [reply[n - 4], reply[n - 3], reply[n - 2], reply[n - 1]]);
    Ok((reply[3] & 0x0f, answers, ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_names_answer_from_the_zone_and_others_are_forwarded_and_cached() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    // A fake upstream: answers every question with 192.0.2.7, TTL 30, and counts questions.
    let upstream = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let upstream_addr = upstream.local_addr()?;
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    let fake = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = upstream.recv_from(&mut buf).await {
            count.fetch_add(1, Ordering::SeqCst);
            // The header and the question (name, type, class), without the query's OPT record.
            let mut end = 12;
            while end < n && buf[end] != 0 {
                end += 1 + usize::from(buf[end]);
            }
            let mut reply = buf[..(end + 5).min(n)].to_vec();
            reply[2] = 0x81;
            reply[3] = 0x80;
            reply[6..8].copy_from_slice(&1u16.to_be_bytes());
            reply[8..12].copy_from_slice(&[0, 0, 0, 0]);
            reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 7]);
            let _ = upstream.send_to(&reply, from).await;
        }
    });
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    // Loopback plays the pod network: 127.0.0.1 is its gateway (the host), other addresses pods.
    let config = dns::DnsConfig {
        zone: "cluster.local".into(),
        listen: vec![listen],
        upstream: vec![upstream_addr],
        ttl: 5,
        pod_network: Some("127.0.0.0/8".parse()?),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(dns::run(server.client(), config, stop.clone()));

    // The zone: the kubernetes Service, and NXDOMAIN for a name that is not there.
    let kubernetes = eventually("kubernetes.default answers", Duration::from_secs(10), || async {
        ask(listen, 1, "kubernetes.default.svc.cluster.local").await.ok().filter(|(_, ip)| ip.is_some())
    })
    .await?;
    assert_eq!(kubernetes, (0, Some([10, 96, 0, 1])));
    assert_eq!(ask(listen, 2, "nothing.default.svc.cluster.local").await?, (3, None));
    // The same over TCP.
    assert_eq!(ask_tcp(listen, "kubernetes.default.svc.cluster.local").await?, (0, 1, Some([10, 96, 0, 1])));
    assert_eq!(ask_tcp(listen, "nothing.default.svc.cluster.local").await?.0, 3);
    // Other names go upstream once, then come from the cache.
    assert_eq!(ask(listen, 3, "example.com").await?, (0, Some([192, 0, 2, 7])));
    assert_eq!(ask(listen, 4, "example.com").await?, (0, Some([192, 0, 2, 7])));
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the second answer came from the cache");

    // Autopath: a pod asking `kubernetes.default` (as busybox's nslookup sends it, without the
    // search list) gets a CNAME to the name its search path finds, then its record. The pod's
    // first query comes before its address is in the API, and waits for the watch to show it.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(server.client(), "default");
    let pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "asker"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))?;
    pods.create(&Default::default(), &pod).await?;
    let early = tokio::spawn(ask_from([127, 0, 0, 2], listen, 5, "kubernetes.default"));
    pods.patch_status(
        "asker",
        &Default::default(),
        &kube::api::Patch::Merge(
            serde_json::json!({"status": {"podIP": "127.0.0.2", "podIPs": [{"ip": "127.0.0.2"}]}}),
        ),
    )
    .await?;
    assert_eq!(early.await??, (0, 2, Some([10, 96, 0, 1])), "CNAME and A record");
    assert_eq!(ask_from([127, 0, 0, 2], listen, 6, "kubernetes").await?, (0, 2, Some([10, 96, 0, 1])));
    // Names under no search domain are forwarded as asked; the host gets no expansion.
    assert_eq!(ask_from([127, 0, 0, 2], listen, 7, "example.com").await?, (0, 1, Some([192, 0, 2, 7])));
    assert_eq!(asked.load(Ordering::SeqCst), 1, "cached");
    assert_eq!(ask(listen, 8, "kubernetes.default").await?, (0, Some([192, 0, 2, 7])));
    assert_eq!(asked.load(Ordering::SeqCst), 2, "the host's short name went upstream");
    stop.cancel();
    serving.await??;
    fake.abort();
    server.stop().await;
    Ok(())
}
