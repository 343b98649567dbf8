//! The service data plane (kube-proxy's job): nftables DNAT in the kernel for what it can
//! serve, a userspace proxy in tokio for the rest.
//!
//! `logic::proxy` decides the frontends (each Service port's virtual IP, and its node port on
//! each node-port address: loopback and the pod bridge unless the API is served remotely), their
//! backends, and which frontends the kernel serves (`logic::proxy::split`): virtual IPs and node
//! ports on the bridge address whose endpoints are pods. For those, `kernel` installs the
//! ruleset `logic::proxy::nft` renders — DNAT to a random endpoint, ClientIP affinity in
//! per-endpoint sets, masquerading of pods' traffic DNAT'd back into the bridge, a reject for
//! frontends without endpoints — with one `nft -f -` batch per change, and deletes the table at
//! stop (a killed server's table is replaced whole at the next start). The rest — node ports on
//! 127.0.0.1 (DNAT from loopback needs `route_localnet`), on `0.0.0.0` or other addresses
//! (clients from the uplink), and Services whose endpoints are not pods (a manual EndpointSlice
//! naming 127.0.0.1) — this crate binds and forwards itself: TCP connections and UDP sessions,
//! round robin or with ClientIP affinity. Without `nft`, or when the bridge does not forward
//! (`agent::runtime::network::Uplink`), or once `nft` has refused a batch, everything is served
//! in userspace. It is watch-driven: a changed EndpointSlice changes the rules of its Service
//! (and swaps a userspace frontend's backends in place) within milliseconds.
//!
//! Virtual IPs are made local to this machine by one route, `local <service CIDR> dev lo` in
//! the `local` table (what `ip route add local … table local` makes): DNAT happens before the
//! routing decision (prerouting for pods, output for the host), so the kernel's frontends never
//! meet the route; a pod's packet to a userspace virtual IP, or to one without endpoints, is
//! delivered to this host (a socket, or the reject); nothing addressed to a virtual IP is ever
//! routed out of the uplink. The route is removed when the proxy stops.

mod balance;
mod forward;
pub mod kernel;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use futures::TryStreamExt;
use logic::proxy::{Frontend, KernelNode, Protocol, Table};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use balance::Balancer;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("netlink: {what}: {message}")]
    Netlink { what: &'static str, message: String },
    #[error("netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("run nft (apt-get install nftables): {0}")]
    NftSpawn(#[source] std::io::Error),
    #[error("nft: {0}")]
    Nft(String),
}

/// What the proxy is told.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The Service CIDR whose addresses are made local (`--service-cidr`).
    pub service_cidr: (Ipv4Addr, u8),
    /// Where node ports listen (`logic::proxy::node_port_addresses`).
    pub node_port_addresses: Vec<Ipv4Addr>,
    /// This node's bridge and networks for the kernel's share, when the bridge forwards
    /// (`agent::runtime::network::Uplink::routes_pod_traffic`); `None`: all in userspace.
    pub kernel: Option<KernelNode>,
}

/// The bound frontends and their balancers. `apply` makes the bound set equal to a table.
pub struct Proxy {
    active: HashMap<Frontend, Active>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

struct Active {
    balancer: Arc<Balancer>,
    stop: CancellationToken,
}

impl Proxy {
    pub fn new(shutdown: CancellationToken) -> Proxy {
        Proxy { active: HashMap::new(), shutdown, tasks: TaskTracker::new() }
    }

    /// Bind what is new, update what changed, close what is gone. A frontend that cannot be
    /// bound (its port is taken) is logged and tried again at the next change.
    pub async fn apply(&mut self, table: Table) {
        self.active.retain(|frontend, active| {
            let keep = table.contains_key(frontend);
            if !keep {
                active.stop.cancel();
            }
            keep
        });
        for (frontend, route) in table {
            if let Some(active) = self.active.get(&frontend) {
                if active.balancer.route() != route {
                    active.balancer.update(route);
                }
                continue;
            }
            let service = route.service.clone();
            let active = Active { balancer: Arc::new(Balancer::new(route)), stop: self.shutdown.child_token() };
            let ctx = forward::Ctx {
                balancer: active.balancer.clone(),
                frontend: active.stop.clone(),
                shutdown: self.shutdown.clone(),
                tasks: self.tasks.clone(),
            };
            let bound = match frontend.protocol {
                Protocol::Tcp => tokio::net::TcpListener::bind(frontend.addr)
                    .await
                    .map(|listener| self.tasks.spawn(forward::serve_tcp(listener, ctx))),
                Protocol::Udp => tokio::net::UdpSocket::bind(frontend.addr)
                    .await
                    .map(|socket| self.tasks.spawn(forward::serve_udp(socket, ctx))),
            };
            match bound {
                Ok(_) => {
                    tracing::debug!(addr = %frontend.addr, protocol = ?frontend.protocol, %service, "proxying");
                    self.active.insert(frontend, active);
                }
                Err(e) => {
                    tracing::warn!(addr = %frontend.addr, protocol = ?frontend.protocol, %service, error = %e, "cannot bind a service frontend")
                }
            }
        }
    }

    /// The frontends currently bound.
    pub fn frontends(&self) -> Vec<Frontend> {
        let mut v: Vec<Frontend> = self.active.keys().copied().collect();
        v.sort();
        v
    }

    /// Close every frontend and connection and wait for their tasks.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Proxy the cluster's Services until `shutdown`.
pub async fn run(client: kube::Client, config: ProxyConfig, shutdown: CancellationToken) {
    let routed = match local_route(config.service_cidr, true).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, cidr = ?config.service_cidr, "service virtual IPs unreachable (node ports still served)");
            false
        }
    };
    let mut kernel = config.kernel.clone().and_then(|node| {
        let bridge = node.bridge.clone();
        let kernel = kernel::Kernel::new(node);
        if kernel.is_none() {
            tracing::warn!(%bridge, "bridge name not usable in nftables rules: Services are proxied in userspace");
        }
        kernel
    });
    let mut proxy = Proxy::new(shutdown.child_token());
    let mut watch = client_tools::ServiceWatch::new(client);
    while let Some((services, slices)) = watch.changed(&shutdown).await {
        let changed = std::time::Instant::now();
        let table = logic::proxy::build(&services, &slices, &config.node_port_addresses);
        let (in_kernel, mut userspace) = logic::proxy::split(table, kernel.as_ref().map(kernel::Kernel::node));
        if let Some(k) = kernel.as_mut() {
            match k.apply(&in_kernel).await {
                Ok(programmed) if programmed.ran => tracing::debug!(
                    ms = changed.elapsed().as_secs_f64() * 1000.0,
                    frontends = in_kernel.len(),
                    replaced = programmed.replaced,
                    "service rules programmed"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "nftables refused the service rules: every Service is proxied in userspace from now on");
                    if let Some(k) = kernel.take()
                        && let Err(e) = k.remove().await
                    {
                        tracing::debug!(error = %e, "remove the service table");
                    }
                    userspace.extend(in_kernel);
                }
            }
        }
        proxy.apply(userspace).await;
    }
    proxy.stop().await;
    if let Some(k) = kernel
        && let Err(e) = k.remove().await
    {
        tracing::warn!(error = %e, "remove the service table");
    }
    if routed && let Err(e) = local_route(config.service_cidr, false).await {
        tracing::warn!(error = %e, "remove the service route");
    }
}

/// Add (or remove) `local <cidr> dev lo table local`. Adding a route that is already there
/// (left by a server that was killed) is not an error.
pub async fn local_route(cidr: (Ipv4Addr, u8), add: bool) -> Result<(), ProxyError> {
    use rtnetlink::packet_route::route::{RouteScope, RouteType};
    let nl = |what: &'static str| move |e: rtnetlink::Error| ProxyError::Netlink { what, message: e.to_string() };
    let (connection, handle, _) = rtnetlink::new_connection().map_err(ProxyError::Socket)?;
    let connection = tokio::spawn(connection);
    let result = async {
        let lo = handle
            .link()
            .get()
            .match_name("lo".to_string())
            .execute()
            .try_next()
            .await
            .map_err(nl("find lo"))?
            .ok_or(ProxyError::Netlink { what: "find lo", message: "no loopback device".into() })?;
        let route = rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(cidr.0, cidr.1)
            .table_id(255)
            .kind(RouteType::Local)
            .scope(RouteScope::Host)
            .output_interface(lo.header.index)
            .build();
        if add {
            match handle.route().add(route).execute().await {
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -17 => Ok(()), // EEXIST
                other => other.map_err(nl("add the service route")),
            }
        } else {
            handle.route().del(route).execute().await.map_err(nl("remove the service route"))
        }
    }
    .await;
    connection.abort();
    result
}
