//! The cluster DNS server (what CoreDNS does in a cluster): authoritative for the cluster zone,
//! answering from `logic::dns` records kept current by watching Services and EndpointSlices
//! (changes apply within milliseconds, no polling), and forwarding every other name to the
//! host's resolvers, with a cache (bounded by the answers' TTLs and 30 s). Served over UDP and
//! TCP with `hickory-server`.
//!
//! A pod's query for a name outside the zone (`web-0.nginx`, as busybox's `nslookup` sends it) is
//! first tried under the pod's search path, as CoreDNS's `autopath` does (`Records::autopath`):
//! the pod is known by the query's source address from a watch of the pods. That costs nothing
//! for names in the zone (answered before it) and one hash lookup for queries from the host. A
//! pod's first queries can come before its address reaches the API (the kubelet reports it once
//! the containers have started): a query from an address of the pod network that the watch has
//! not shown yet waits for it, at most `UNKNOWN_POD_WAIT`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::MessageResponseBuilder;
use k8s_openapi::api::core::v1::Pod;
use logic::dns::{Answer, Kind, PodResolver, Records};
use tokio_util::sync::CancellationToken;

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

struct Handler {
    records: Arc<RwLock<Records>>,
    /// The pods' resolvers by pod IP, for autopath.
    resolvers: tokio::sync::watch::Receiver<Resolvers>,
    pod_network: Option<ipnet::Ipv4Net>,
    upstream: Vec<SocketAddr>,
    ttl: u32,
    /// Forwarded answers by (name, type), until the smallest TTL in them runs out.
    cache: std::sync::Mutex<std::collections::HashMap<(String, RecordType), (Message, std::time::Instant)>>,
}

/// Forwarded answers are kept at most this long (and never longer than their records' TTL).
const CACHE_CAP: Duration = Duration::from_secs(30);
const CACHE_ENTRIES: usize = 10_000;

impl Handler {
    /// The autopath expansion of a pod's query, if the source is a pod and one exists.
    async fn autopath(&self, src: IpAddr, name: &str, kind: Kind) -> Option<(String, Answer)> {
        let IpAddr::V4(src) = src else { return None };
        let resolver = self.resolver(src).await?;
        self.records.read().ok()?.autopath(name, kind, &resolver)
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

    /// The records of an answer from the zone, owned by `owner`.
    fn records(&self, owner: &Name, answer: Answer) -> Vec<Record> {
        match answer {
            Answer::A(ips) => {
                ips.into_iter().map(|ip| Record::from_rdata(owner.clone(), self.ttl, RData::A(A(ip)))).collect()
            }
            Answer::Srv(list) => list
                .into_iter()
                .filter_map(|s| {
                    let target = Name::from_str(&format!("{}.", s.target)).ok()?;
                    Some(Record::from_rdata(owner.clone(), self.ttl, RData::SRV(SRV::new(0, 100, s.port, target))))
                })
                .collect(),
            Answer::Ptr(target) => Name::from_str(&format!("{target}."))
                .map(|t| vec![Record::from_rdata(owner.clone(), self.ttl, RData::PTR(PTR(t)))])
                .unwrap_or_default(),
            Answer::NoData | Answer::NxDomain | Answer::NotOurs => Vec::new(),
        }
    }

    /// A cached upstream answer, or ask upstream and remember it.
    async fn forward_cached(&self, raw: &[u8], name: &str, qtype: RecordType) -> Option<Message> {
        let key = (name.to_ascii_lowercase(), qtype);
        let now = std::time::Instant::now();
        if let Ok(cache) = self.cache.lock()
            && let Some((message, _)) = cache.get(&key).filter(|(_, until)| *until > now)
        {
            return Some(message.clone());
        }
        let message = self.forward(raw).await?;
        let ttl = message.answers.iter().chain(&message.authorities).map(|r| r.ttl).min().unwrap_or(0);
        let keep = Duration::from_secs(u64::from(ttl)).min(CACHE_CAP);
        if !keep.is_zero()
            && let Ok(mut cache) = self.cache.lock()
        {
            if cache.len() >= CACHE_ENTRIES {
                cache.retain(|_, (_, until)| *until > now);
            }
            if cache.len() < CACHE_ENTRIES {
                cache.insert(key, (message.clone(), now + keep));
            }
        }
        Some(message)
    }

    /// Ask the upstream resolvers; their reply as a message.
    async fn forward(&self, raw: &[u8]) -> Option<Message> {
        for server in &self.upstream {
            let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
            let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else { continue };
            if socket.send_to(raw, server).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            if let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await
                && let Ok(message) = Message::from_vec(&buf[..n])
            {
                return Some(message);
            }
        }
        None
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let Ok(info) = request.request_info() else {
            let reply = builder.error_msg(&request.metadata, ResponseCode::FormErr);
            return send(&mut response, reply, request).await;
        };
        let name = info.query.name().to_string();
        let qtype = info.query.query_type();
        let kind = match qtype {
            RecordType::A => Kind::A,
            RecordType::SRV => Kind::Srv,
            RecordType::PTR => Kind::Ptr,
            _ => Kind::Other,
        };
        let answer = self.records.read().map(|r| r.lookup(&name, kind)).unwrap_or(Answer::NotOurs);
        let mut metadata = hickory_proto::op::Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let owner = Name::from_str(&name).unwrap_or_default();
        let records: Vec<Record> = match answer {
            Answer::NotOurs => {
                if let Some((expanded, answer)) = self.autopath(request.src().ip(), &name, kind).await
                    && let Ok(target) = Name::from_str(&format!("{expanded}."))
                {
                    // The CNAME to the name the search path found, then its records.
                    let mut records =
                        vec![Record::from_rdata(owner.clone(), self.ttl, RData::CNAME(CNAME(target.clone())))];
                    records.extend(self.records(&target, answer));
                    metadata.authoritative = true;
                    let reply =
                        builder.build(metadata, records.iter(), std::iter::empty(), std::iter::empty(), std::iter::empty());
                    return send(&mut response, reply, request).await;
                }
                let Some(upstream) = self.forward_cached(request.as_slice(), &name, qtype).await else {
                    let reply = builder.error_msg(&request.metadata, ResponseCode::ServFail);
                    return send(&mut response, reply, request).await;
                };
                metadata.response_code = upstream.metadata.response_code;
                let reply = builder.build(
                    metadata,
                    upstream.answers.iter(),
                    upstream.authorities.iter(),
                    std::iter::empty(),
                    upstream.additionals.iter(),
                );
                return send(&mut response, reply, request).await;
            }
            Answer::NxDomain => {
                metadata.authoritative = true;
                metadata.response_code = ResponseCode::NXDomain;
                Vec::new()
            }
            answer => self.records(&owner, answer),
        };
        metadata.authoritative = true;
        let reply = builder.build(metadata, records.iter(), std::iter::empty(), std::iter::empty(), std::iter::empty());
        send(&mut response, reply, request).await
    }
}

async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    reply: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    request: &Request,
) -> ResponseInfo {
    match response.send_response(reply).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "dns reply");
            let mut metadata = hickory_proto::op::Metadata::response_from_request(&request.metadata);
            metadata.response_code = ResponseCode::ServFail;
            hickory_proto::op::Header { metadata, counts: Default::default() }.into()
        }
    }
}

/// Serve until `shutdown`. Fails only if no address could be bound.
pub async fn run(client: kube::Client, config: DnsConfig, shutdown: CancellationToken) -> Result<(), DnsError> {
    let records = Arc::new(RwLock::new(logic::dns::build(&[], &[], &config.zone)));
    let (resolvers, resolvers_rx) = tokio::sync::watch::channel(Resolvers::default());
    let handler = Handler {
        records: records.clone(),
        resolvers: resolvers_rx,
        pod_network: config.pod_network,
        upstream: config.upstream.clone(),
        ttl: config.ttl,
        cache: Default::default(),
    };
    let mut server = Server::new(handler);
    let mut bound = 0;
    let mut last_error = None;
    for addr in &config.listen {
        match (tokio::net::UdpSocket::bind(addr).await, tokio::net::TcpListener::bind(addr).await) {
            (Ok(udp), Ok(tcp)) => {
                server.register_socket(udp);
                server.register_listener(tcp, Duration::from_secs(5), 64);
                bound += 1;
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(%addr, error = %e, "dns listen");
                last_error = Some(DnsError::Listen { addr: *addr, source: e });
            }
        }
    }
    if bound == 0
        && let Some(e) = last_error
    {
        return Err(e);
    }
    let pods = watch_pods(client.clone(), resolvers, config.zone.clone(), shutdown.clone());
    let mut watch = client_tools::ServiceWatch::new(client);
    let zone = async {
        while let Some((services, slices)) = watch.changed(&shutdown).await {
            let fresh = logic::dns::build(&services, &slices, &config.zone);
            if let Ok(mut r) = records.write() {
                *r = fresh;
            }
        }
    };
    futures::future::join(zone, pods).await;
    let _ = server.shutdown_gracefully().await;
    Ok(())
}

/// Keep `resolvers` (pod IP → search path) current from a watch of every pod, until `shutdown`.
async fn watch_pods(
    client: kube::Client,
    resolvers: tokio::sync::watch::Sender<Resolvers>,
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
