//! The service data plane's decisions (kube-proxy's job): which frontends exist — a Service's
//! virtual IP and port, and its node ports on the node-port addresses — and which backends each
//! balances over, from the Services and their EndpointSlices; then which frontends the kernel
//! serves (nftables DNAT, `nft`) and which the userspace proxy binds (`split`), and the
//! nftables ruleset for the kernel's share (`nft`). The proxy (crate `proxy`) installs the
//! ruleset, binds the rest and moves their bytes; nothing here does I/O.
//!
//! Backends follow kube-proxy: the ready endpoints; when none is ready, the ones still serving
//! while terminating (so a rolling restart does not drop connections that could be served);
//! otherwise none. Headless and ExternalName Services have no frontends.

#[cfg(test)]
mod tests;

pub mod nft;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The transport a frontend serves. SCTP is not proxied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    fn of(port_protocol: Option<&str>) -> Option<Protocol> {
        match port_protocol.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// Where clients connect: a virtual IP and port, or a node port on one of the node-port
/// addresses (`127.0.0.1:<nodePort>`, or `0.0.0.0:<nodePort>` for every address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frontend {
    pub addr: SocketAddr,
    pub protocol: Protocol,
}

/// What a frontend forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `namespace/name:port-name`, for logs.
    pub service: String,
    pub backends: Vec<SocketAddr>,
    /// `sessionAffinity: ClientIP`: a client keeps its backend for this long after its last use.
    pub affinity: Option<Duration>,
}

/// Every frontend of the cluster and its route.
pub type Table = BTreeMap<Frontend, Route>;

/// Upstream's default for `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY: Duration = Duration::from_secs(10_800);

/// The addresses node ports listen on. Given addresses (`--node-port-address`) are taken as
/// they are; otherwise node ports listen where the API does: with the API on loopback (the
/// default), on 127.0.0.1 and on the pod bridge's address (the node's address as pods see it,
/// `status.hostIP`, so pods reach node ports as upstream's do), never on the machine's other
/// addresses; with the API on any other address (`--allow-remote`), on every address. The list
/// is sorted without duplicates, and `0.0.0.0` stands alone: it covers every address, and the
/// kernel refuses a specific address beside it on the same port.
pub fn node_port_addresses(given: &[Ipv4Addr], api: IpAddr, pod_gateway: Option<Ipv4Addr>) -> Vec<Ipv4Addr> {
    let mut addresses: Vec<Ipv4Addr> = if !given.is_empty() {
        given.to_vec()
    } else if api.is_loopback() {
        std::iter::once(Ipv4Addr::LOCALHOST).chain(pod_gateway).collect()
    } else {
        vec![Ipv4Addr::UNSPECIFIED]
    };
    if addresses.contains(&Ipv4Addr::UNSPECIFIED) {
        return vec![Ipv4Addr::UNSPECIFIED];
    }
    addresses.sort();
    addresses.dedup();
    addresses
}

/// The frontends and routes for these Services and EndpointSlices, node ports on each of
/// `node_addresses` (from `node_port_addresses`).
pub fn build(services: &[Service], slices: &[EndpointSlice], node_addresses: &[Ipv4Addr]) -> Table {
    let mut table = Table::new();
    for svc in services {
        let (Some(name), Some(ns)) = (svc.metadata.name.as_deref(), svc.metadata.namespace.as_deref()) else {
            continue;
        };
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(vip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else {
            continue; // headless ("None") or not yet allocated
        };
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map_or(DEFAULT_AFFINITY, Duration::from_secs)
        });
        let owned: Vec<&EndpointSlice> = slices.iter().filter(|s| belongs_to(s, ns, name)).collect();
        for port in spec.ports.iter().flatten() {
            let (Some(protocol), Ok(number)) = (Protocol::of(port.protocol.as_deref()), u16::try_from(port.port))
            else {
                continue;
            };
            let route = Route {
                service: format!("{ns}/{name}:{}", port.name.as_deref().unwrap_or("")),
                backends: backends(&owned, port, protocol),
                affinity,
            };
            let node_port = port.node_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0);
            if let Some(node_port) = node_port {
                for address in node_addresses {
                    let addr = SocketAddr::new(IpAddr::V4(*address), node_port);
                    table.insert(Frontend { addr, protocol }, route.clone());
                }
            }
            table.insert(Frontend { addr: SocketAddr::new(IpAddr::V4(vip), number), protocol }, route);
        }
    }
    table
}

fn belongs_to(slice: &EndpointSlice, ns: &str, service: &str) -> bool {
    slice.address_type == "IPv4" && crate::endpoints::slice_of(slice, ns, service)
}

/// The addresses behind one Service port: ready endpoints, else serving-while-terminating ones.
fn backends(slices: &[&EndpointSlice], port: &ServicePort, protocol: Protocol) -> Vec<SocketAddr> {
    let wanted = port.name.as_deref().unwrap_or("");
    let mut ready = Vec::new();
    let mut terminating = Vec::new();
    for slice in slices {
        let Some(target) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == wanted && Protocol::of(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Some(target) = target.port.and_then(|p| u16::try_from(p).ok()) else { continue };
        for ep in &slice.endpoints {
            let conditions = ep.conditions.clone().unwrap_or_default();
            let is_ready = conditions.ready.unwrap_or(true);
            let serving = conditions.serving.unwrap_or(is_ready);
            let is_terminating = conditions.terminating.unwrap_or(false);
            let list = if is_ready {
                &mut ready
            } else if serving && is_terminating {
                &mut terminating
            } else {
                continue;
            };
            list.extend(
                ep.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()).map(|ip| SocketAddr::new(ip, target)),
            );
        }
    }
    let mut chosen = if ready.is_empty() { terminating } else { ready };
    chosen.sort();
    chosen.dedup();
    chosen
}

/// An IPv4 network: address and prefix length.
pub type Net = (Ipv4Addr, u8);

/// Is `ip` in `net`?
pub fn in_net(net: Net, ip: Ipv4Addr) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(net.1.min(32))).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net.0) & mask
}

/// What the kernel's share of the proxy needs to know about this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelNode {
    /// The pods' bridge: pods' traffic arrives on it, and traffic DNAT'd to a pod leaves by it.
    pub bridge: String,
    /// The bridge's address (the pods' gateway and `hostIP`): node ports on it are the kernel's.
    pub bridge_address: Ipv4Addr,
    /// The pod network on the bridge: the backends DNAT can reach without leaving the machine.
    pub pod_network: Net,
    /// The Service CIDR: frontends on its addresses are virtual IPs.
    pub service_network: Net,
}

/// Who serves a frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// nftables DNAT rules (`nft::ruleset`).
    Kernel,
    /// The userspace proxy binds the frontend and copies the bytes.
    Userspace,
}

/// Who serves `frontend`: the kernel for a virtual IP or a node port on the bridge address
/// whose backends are all in the pod network (none at all included: the kernel rejects those
/// connections); userspace for the rest:
/// - node ports on loopback: DNAT of a packet sent to 127.0.0.1 towards a pod needs
///   `route_localnet`, which lets martian loopback packets onto the wire (kube-proxy's nftables
///   mode refuses it too);
/// - node ports on `0.0.0.0` or on another of the machine's addresses (`--allow-remote`,
///   `--node-port-address`): their clients come from the uplink, and DNAT would make the kernel
///   route them into the bridge and the pods' replies out of it — the routing this node keeps
///   off (`agent::runtime::network::guard_uplink`);
/// - backends outside the pod network (a manual EndpointSlice naming 127.0.0.1, a host or
///   remote address): the kernel would have to route pods' packets there, where the userspace
///   proxy dials them from the host;
/// - IPv6 frontends or backends (the ruleset is IPv4's).
pub fn server(frontend: &Frontend, route: &Route, node: &KernelNode) -> Server {
    let IpAddr::V4(ip) = frontend.addr.ip() else { return Server::Userspace };
    let ours = in_net(node.service_network, ip) || ip == node.bridge_address;
    let reachable = route.backends.iter().all(|b| matches!(b.ip(), IpAddr::V4(ip) if in_net(node.pod_network, ip)));
    if ours && !ip.is_loopback() && !ip.is_unspecified() && reachable { Server::Kernel } else { Server::Userspace }
}

/// Split a table into the kernel's frontends and the userspace proxy's (`server`); without a
/// kernel path (`None`: no `nft`, or the bridge does not forward) everything is userspace's.
pub fn split(table: Table, node: Option<&KernelNode>) -> (Table, Table) {
    let Some(node) = node else { return (Table::new(), table) };
    table.into_iter().partition(|(frontend, route)| server(frontend, route, node) == Server::Kernel)
}
