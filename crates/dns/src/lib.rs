//! The cluster DNS server (what CoreDNS does in a cluster): authoritative for the cluster zone,
//! answering from `logic::dns` records kept current by watching Services and EndpointSlices
//! (changes apply within milliseconds, no polling), and forwarding every other name to the
//! host's resolvers (`forward`, with `hickory-resolver`'s cache).
//!
//! The answer path for the zone is `wire`: each change compiles the records into a `wire::Zone`
//! of prebuilt replies, published through a `watch` channel; a serving task checks the
//! channel's version (one atomic load) per query and answers from its own `Arc` of the zone,
//! with no lock and no allocation. UDP and TCP (length-prefixed, RFC 7766) are served here on
//! tokio sockets; everything that is not a zone answer (autopath, forwarding) runs in its own
//! task so it never holds up the socket.
//!
//! A pod's query for a name outside the zone (`web-0.nginx`, as busybox's `nslookup` sends it) is
//! first tried under the pod's search path, as CoreDNS's `autopath` does (`Records::autopath`):
//! the pod is known by the query's source address from a watch of the pods. That costs nothing
//! for names in the zone (answered before it) and one hash lookup for queries from the host. A
//! pod's first queries can come before its address reaches the API (the kubelet reports it once
//! the containers have started): a query from an address of the pod network that the watch has
//! not shown yet waits for it, at most `UNKNOWN_POD_WAIT`.

mod forward;
pub mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use logic::dns::{Kind, PodResolver, Records};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wire::{Reply, Transport, Zone};

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the server is told.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub zone: String,
    /// Where to listen (UDP and TCP), e.g. the pod bridge's gateway:53 and 127.0.0.1:1053.
    pub listen: Vec<SocketAddr>,
    /// Where other names go (the host's nameservers).
    pub upstream: Vec<SocketAddr>,
    pub ttl: u32,
    /// The pod network: queries from its addresses (but its first, the gateway's: the host's)
    /// come from pods, whose search path autopath applies.
    pub pod_network: Option<ipnet::Ipv4Net>,
}

/// How long a query from a pod address not yet seen waits for the pod watch (see the module
/// comment); then it is answered as a query from the host.
const UNKNOWN_POD_WAIT: Duration = Duration::from_secs(1);
/// A TCP connection idle this long is closed (RFC 7766 suggests seconds).
const TCP_IDLE: Duration = Duration::from_secs(5);
/// At most this many TCP connections at once per listener; more are closed at once.
const TCP_CONNECTIONS: usize = 256;

type Resolvers = Arc<HashMap<Ipv4Addr, PodResolver>>;

/// The host's nameservers from `/etc/resolv.conf` text, port 53.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The zone as of one change: the records (autopath decides on them) and their wire form.
struct Snapshot {
    records: Records,
    wire: Zone,
}

impl Snapshot {
    fn new(records: Records, ttl: u32, serial: u32) -> Snapshot {
        let wire = Zone::compile(&records, ttl, serial);
        Snapshot { records, wire }
    }
}

/// What every serving task shares.
struct Handler {
    zone: watch::Receiver<Arc<Snapshot>>,
    /// The pods' resolvers by pod IP, for autopath.
    resolvers: watch::Receiver<Resolvers>,
    pod_network: Option<ipnet::Ipv4Net>,
    forwarder: forward::Forwarder,
}

impl Handler {
    /// Answer what the zone does not: autopath for a pod's query, else the upstream answer.
    /// `false` when there is nothing to send.
    async fn resolve(&self, query: &[u8], src: IpAddr, transport: Transport, out: &mut Vec<u8>) -> bool {
        let Ok(request) = hickory_proto::op::Message::from_vec(query) else { return false };
        let Some(question) = request.queries.first() else { return false };
        let name = question.name().to_string();
        let kind = match question.query_type() {
            hickory_proto::rr::RecordType::A => Kind::A,
            hickory_proto::rr::RecordType::SRV => Kind::Srv,
            hickory_proto::rr::RecordType::PTR => Kind::Ptr,
            _ => Kind::Other,
        };
        if let IpAddr::V4(src) = src
            && let Some(resolver) = self.resolver(src).await
        {
            // The zone as it is now (the wait above may have seen it change).
            let snapshot = self.zone.borrow().clone();
            if let Some((expanded, _)) = snapshot.records.autopath(&name, kind, &resolver)
                && snapshot.wire.answer_alias(query, &expanded, transport, out) == Reply::Send
            {
                return true;
            }
        }
        match self.forwarder.answer(&request, transport).await {
            Some(reply) => {
                *out = reply;
                true
            }
            None => false,
        }
    }

    /// The resolver of the pod at `src`, waiting a little for a pod address not seen yet.
    async fn resolver(&self, src: Ipv4Addr) -> Option<PodResolver> {
        let known = |r: &Resolvers| r.get(&src).cloned();
        if let Some(r) = known(&self.resolvers.borrow()) {
            return Some(r);
        }
        let network = self.pod_network?;
        if !network.contains(&src) || network.hosts().next() == Some(src) {
            return None;
        }
        let mut changes = self.resolvers.clone();
        tokio::time::timeout(UNKNOWN_POD_WAIT, async {
            loop {
                if let Some(r) = known(&changes.borrow_and_update()) {
                    return Some(r);
                }
                changes.changed().await.ok()?;
            }
        })
        .await
        .ok()
        .flatten()
    }
}

/// A serving task's view of the zone: its own `Arc`, refreshed when the channel says so.
struct View {
    changes: watch::Receiver<Arc<Snapshot>>,
    current: Arc<Snapshot>,
}

impl View {
    fn new(handler: &Handler) -> View {
        let mut changes = handler.zone.clone();
        let current = changes.borrow_and_update().clone();
        View { changes, current }
    }

    fn zone(&mut self) -> &Zone {
        if self.changes.has_changed().unwrap_or(false) {
            self.current = self.changes.borrow_and_update().clone();
        }
        &self.current.wire
    }
}

/// Answer UDP queries on `socket` (shared by several such tasks) until aborted.
async fn serve_udp(socket: Arc<tokio::net::UdpSocket>, handler: Arc<Handler>) {
    let mut view = View::new(&handler);
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(usize::from(wire::EDNS_PAYLOAD));
    loop {
        let (n, src) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // ICMP errors from earlier replies surface here on Linux; nothing to do.
                tracing::trace!(error = %e, "dns udp receive");
                continue;
            }
        };
        match view.zone().answer(&buf[..n], Transport::Udp, &mut out) {
            Reply::Send => {
                let _ = socket.send_to(&out, src).await;
            }
            Reply::Drop => {}
            Reply::NotOurs => {
                let (socket, handler, query) = (socket.clone(), handler.clone(), buf[..n].to_vec());
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    if handler.resolve(&query, src.ip(), Transport::Udp, &mut out).await {
                        let _ = socket.send_to(&out, src).await;
                    }
                });
            }
        }
    }
}

/// Accept TCP connections until aborted (which aborts the connections too).
async fn serve_tcp(listener: tokio::net::TcpListener, handler: Arc<Handler>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                if connections.len() >= TCP_CONNECTIONS {
                    continue;
                }
                connections.spawn(serve_connection(stream, peer.ip(), handler.clone()));
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

/// One TCP connection: length-prefixed queries, answered in order, until idle or closed.
async fn serve_connection(mut stream: tokio::net::TcpStream, peer: IpAddr, handler: Arc<Handler>) {
    let mut view = View::new(&handler);
    let mut query = Vec::new();
    let mut out = Vec::new();
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else { return };
        query.resize(usize::from(len), 0);
        if !matches!(tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await, Ok(Ok(_))) {
            return;
        }
        let send = match view.zone().answer(&query, Transport::Tcp, &mut out) {
            Reply::Send => true,
            Reply::Drop => false,
            Reply::NotOurs => handler.resolve(&query, peer, Transport::Tcp, &mut out).await,
        };
        let Ok(len) = u16::try_from(out.len()) else { return };
        if send && (stream.write_u16(len).await.is_err() || stream.write_all(&out).await.is_err()) {
            return;
        }
    }
}

/// Serve until `shutdown`. Fails only if no address could be bound.
pub async fn run(client: kube::Client, config: DnsConfig, shutdown: CancellationToken) -> Result<(), DnsError> {
    let mut serial = next_serial(0);
    let (zone, zone_rx) =
        watch::channel(Arc::new(Snapshot::new(logic::dns::build(&[], &[], &config.zone), config.ttl, serial)));
    let (resolvers, resolvers_rx) = watch::channel(Resolvers::default());
    let handler = Arc::new(Handler {
        zone: zone_rx,
        resolvers: resolvers_rx,
        pod_network: config.pod_network,
        forwarder: forward::Forwarder::new(&config.upstream),
    });
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let mut serving = tokio::task::JoinSet::new();
    let mut last_error = None;
    for addr in &config.listen {
        match (tokio::net::UdpSocket::bind(addr).await, tokio::net::TcpListener::bind(addr).await) {
            (Ok(udp), Ok(tcp)) => {
                let udp = Arc::new(udp);
                for _ in 0..workers {
                    serving.spawn(serve_udp(udp.clone(), handler.clone()));
                }
                serving.spawn(serve_tcp(tcp, handler.clone()));
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(%addr, error = %e, "dns listen");
                last_error = Some(DnsError::Listen { addr: *addr, source: e });
            }
        }
    }
    if serving.is_empty()
        && let Some(e) = last_error
    {
        return Err(e);
    }
    let pods = watch_pods(client.clone(), resolvers, config.zone.clone(), shutdown.clone());
    let mut watch = client_tools::ServiceWatch::new(client);
    let records = async {
        while let Some((services, slices)) = watch.changed(&shutdown).await {
            serial = next_serial(serial);
            let fresh = logic::dns::build(&services, &slices, &config.zone);
            zone.send_replace(Arc::new(Snapshot::new(fresh, config.ttl, serial)));
        }
    };
    futures::future::join(records, pods).await;
    serving.shutdown().await;
    Ok(())
}

/// The SOA serial for a new version of the zone: the Unix time in seconds, as CoreDNS's, but
/// always above the last one.
fn next_serial(last: u32) -> u32 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(now).unwrap_or(u32::MAX).max(last.wrapping_add(1))
}

/// Keep `resolvers` (pod IP → search path) current from a watch of every pod, until `shutdown`.
async fn watch_pods(
    client: kube::Client,
    resolvers: watch::Sender<Resolvers>,
    zone: String,
    shutdown: CancellationToken,
) {
    let changed = Arc::new(tokio::sync::Notify::new());
    let (pods, reflector) = client_tools::reflect(kube::Api::<Pod>::all(client), changed.clone());
    let rebuild = async {
        loop {
            changed.notified().await;
            let fresh = logic::dns::pod_resolvers(pods.state().iter().map(|p| &**p), &zone);
            resolvers.send_replace(Arc::new(fresh));
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = reflector => {}
        _ = rebuild => {}
    }
}
