//! The service data plane (kube-proxy's job), as a userspace proxy in tokio.
//!
//! `logic::proxy` decides the frontends (each Service port's virtual IP, and its node port on
//! each node-port address: loopback and the pod bridge unless the API is served remotely) and
//! their backends; this crate binds the frontends and forwards TCP
//! connections and UDP sessions to the backends, round robin or with ClientIP affinity. It is
//! watch-driven: a changed EndpointSlice swaps a frontend's backends in place; a new Service
//! binds its frontends within milliseconds.
//!
//! Virtual IPs are made local to this machine by one route, `local <service CIDR> dev lo` in
//! the `local` table (what `ip route add local … table local` makes): a pod's packet to a
//! virtual IP arrives at the bridge and is delivered to our sockets; the host's own packets go
//! over loopback; nothing addressed to a virtual IP is ever routed out of the uplink. The route
//! is removed when the proxy stops.
//!
//! Why userspace rather than nftables DNAT (see ARCHITECTURE.md for the measurements): node
//! ports answer on 127.0.0.1 without `route_localnet` (which kube-proxy's nftables mode refuses
//! for its security cost); a pod reaching its own Service through the bridge needs neither
//! `br_netfilter` nor forwarding on the bridge (which the node keeps off so pod traffic cannot
//! leave); and nothing but one route outlives the process. The cost is a copy through the
//! proxy, and backends see the bridge's address as the client.

mod balance;
mod forward;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use futures::TryStreamExt;
use logic::proxy::{Frontend, Protocol, Table};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use balance::Balancer;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("netlink: {what}: {message}")]
    Netlink { what: &'static str, message: String },
    #[error("netlink socket: {0}")]
    Socket(#[source] std::io::Error),
}

/// What the proxy is told.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The Service CIDR whose addresses are made local (`--service-cidr`).
    pub service_cidr: (Ipv4Addr, u8),
    /// Where node ports listen (`logic::proxy::node_port_addresses`).
    pub node_port_addresses: Vec<Ipv4Addr>,
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
    let mut proxy = Proxy::new(shutdown.child_token());
    let mut watch = client_tools::ServiceWatch::new(client);
    while let Some((services, slices)) = watch.changed(&shutdown).await {
        proxy.apply(logic::proxy::build(&services, &slices, &config.node_port_addresses)).await;
    }
    proxy.stop().await;
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
