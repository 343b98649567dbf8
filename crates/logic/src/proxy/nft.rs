//! The nftables ruleset that serves the kernel's frontends (`super::split`), laid out as
//! kube-proxy's nftables mode lays out its own, and the `nft -f` scripts that install it.
//!
//! One table per bridge, `ordinal_svc_<bridge>`:
//! - `nat-prerouting` (pods' packets, arriving on the bridge) and `nat-output` (the host's own)
//!   jump to `services`, which looks `daddr . l4proto . dport` up in the verdict maps
//!   `service-ips` (virtual IPs) and `service-nodeports` (node ports on the bridge address);
//! - each Service port has a chain `service-<ns>/<name>/<proto>/<port>` that picks an endpoint:
//!   with ClientIP affinity first the endpoint whose set holds the client, then at random
//!   (`numgen random mod N`); each endpoint has a chain `endpoint-…__<ip>/<port>` that records
//!   the client in its affinity set (`affinity-…`, entries expire after the Service's timeout)
//!   and DNATs to the endpoint;
//! - `nat-postrouting` masquerades, behind the bridge's address, what a pod sent to a Service
//!   and the kernel DNAT'd back into the bridge: the endpoint (maybe the client itself, or a pod
//!   on the same bridge) then replies through this host, whose connection tracking undoes the
//!   DNAT, instead of straight to the client;
//! - frontends without endpoints are in `no-endpoint-services`, which `filter-input` and
//!   `filter-output` look new connections up in to reject them (ICMP port unreachable: the
//!   client's connect fails at once).
//!
//! `Ruleset::replace_script` replaces the whole table in one transaction (at start, where a
//! killed server may have left one); `Ruleset::update_script` changes the installed ruleset into
//! the new one in place — only the chains and map elements that differ, in one transaction —
//! so clients remembered in affinity sets keep their endpoint across other changes.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use super::{Frontend, KernelNode, Protocol, Route, Table};

/// Virtual IP frontends → their service chain.
pub const VIRTUAL_IPS: &str = "service-ips";
/// Node ports on the bridge address → their service chain.
pub const NODE_PORTS: &str = "service-nodeports";
/// Frontends without endpoints → the reject chain.
pub const NO_ENDPOINTS: &str = "no-endpoint-services";
const REJECT: &str = "reject-chain";
const DISPATCH: &str = "services";
/// Longest name body kept readable; longer ones are hashed (nftables names stop at 255 bytes).
const NAME_BODY_MAX: usize = 200;

/// The table that holds the Services of the pods on `bridge`.
pub fn table_name(bridge: &str) -> String {
    format!("ordinal_svc_{}", bridge.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
}

/// Whether `name` can be written into a rule as it is (an interface name of letters, digits,
/// `-`, `_` and `.`, at most 15 bytes).
pub fn valid_interface_name(name: &str) -> bool {
    (1..=15).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// One chain: its hook (`type … hook … priority …; policy accept;`) if it is a base chain,
/// and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub hook: Option<String>,
    pub rules: Vec<String>,
}

/// The whole table, as data: what `replace_script` writes and `update_script` compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
    pub chains: BTreeMap<String, Chain>,
    /// Verdict maps (`ipv4_addr . inet_proto . inet_service : verdict`): frontend → verdict.
    pub maps: BTreeMap<String, BTreeMap<Frontend, String>>,
    /// Affinity sets (client addresses) and their timeout in seconds.
    pub sets: BTreeMap<String, u64>,
}

/// The ruleset serving `table` (the kernel's share from `super::split`) for `node`.
pub fn ruleset(table: &Table, node: &KernelNode) -> Ruleset {
    let mut rs = Ruleset {
        table: table_name(&node.bridge),
        chains: base_chains(node),
        maps: [VIRTUAL_IPS, NODE_PORTS, NO_ENDPOINTS].iter().map(|m| (m.to_string(), BTreeMap::new())).collect(),
        sets: BTreeMap::new(),
    };
    // Frontends of one Service port (its virtual IP, its node port) share its chains.
    let mut made: BTreeMap<(&str, Protocol), Vec<(&Route, String)>> = BTreeMap::new();
    for (frontend, route) in table {
        if !frontend.addr.is_ipv4() {
            continue;
        }
        if route.backends.is_empty() {
            insert(&mut rs.maps, NO_ENDPOINTS, *frontend, format!("goto {REJECT}"));
            continue;
        }
        let same = made.entry((route.service.as_str(), frontend.protocol)).or_default();
        let chain = match same.iter().find(|(r, _)| *r == route) {
            Some((_, chain)) => chain.clone(),
            None => {
                let chain = service_chains(&mut rs, route, frontend.protocol);
                same.push((route, chain.clone()));
                chain
            }
        };
        let map = if frontend.addr.ip() == IpAddr::V4(node.bridge_address) { NODE_PORTS } else { VIRTUAL_IPS };
        insert(&mut rs.maps, map, *frontend, format!("goto {chain}"));
    }
    rs
}

fn insert(maps: &mut BTreeMap<String, BTreeMap<Frontend, String>>, map: &str, frontend: Frontend, verdict: String) {
    maps.entry(map.to_string()).or_default().insert(frontend, verdict);
}

fn base_chains(node: &KernelNode) -> BTreeMap<String, Chain> {
    let base = |hook: &str, rules: Vec<String>| Chain { hook: Some(hook.to_string()), rules };
    let regular = |rules: Vec<String>| Chain { hook: None, rules };
    let bridge = &node.bridge;
    let (net, prefix) = node.pod_network;
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
    let net = std::net::Ipv4Addr::from(u32::from(net) & mask);
    let reject_new = format!("ct state new ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINTS}");
    BTreeMap::from([
        (
            "nat-prerouting".to_string(),
            base(
                "type nat hook prerouting priority dstnat; policy accept;",
                vec![format!("iifname \"{bridge}\" jump {DISPATCH}")],
            ),
        ),
        (
            "nat-output".to_string(),
            base("type nat hook output priority -100; policy accept;", vec![format!("jump {DISPATCH}")]),
        ),
        (
            "nat-postrouting".to_string(),
            base(
                "type nat hook postrouting priority srcnat; policy accept;",
                vec![format!("oifname \"{bridge}\" ip saddr {net}/{prefix} ct status dnat masquerade")],
            ),
        ),
        (
            "filter-input".to_string(),
            base("type filter hook input priority filter; policy accept;", vec![reject_new.clone()]),
        ),
        (
            "filter-output".to_string(),
            base("type filter hook output priority filter; policy accept;", vec![reject_new]),
        ),
        (REJECT.to_string(), regular(vec!["reject".to_string()])),
        (
            DISPATCH.to_string(),
            regular(vec![
                format!("ip daddr . meta l4proto . th dport vmap @{VIRTUAL_IPS}"),
                format!("ip daddr . meta l4proto . th dport vmap @{NODE_PORTS}"),
            ]),
        ),
    ])
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// `<ns>/<name>/<proto>/<port name>` for a route's `ns/name:port` label, in the characters a
/// name may hold; hashed when long.
fn name_body(service: &str, protocol: Protocol) -> String {
    let proto = protocol_name(protocol);
    let body = match service.rsplit_once(':') {
        Some((svc, port)) => format!("{svc}/{proto}/{port}"),
        None => format!("{service}/{proto}"),
    };
    let body: String =
        body.chars().map(|c| if c.is_ascii_alphanumeric() || "/_.-".contains(c) { c } else { '_' }).collect();
    if body.len() > NAME_BODY_MAX { format!("{:08x}/{proto}", crate::hash::fnv1a_32(body.as_bytes())) } else { body }
}

/// Add the service chain of `route`, its endpoint chains and affinity sets; the service
/// chain's name.
fn service_chains(rs: &mut Ruleset, route: &Route, protocol: Protocol) -> String {
    let mut body = name_body(&route.service, protocol);
    if rs.chains.contains_key(&format!("service-{body}")) {
        // Two routes under one label (not made by `build`): keep their chains apart.
        let taken = |n: usize| rs.chains.contains_key(&format!("service-{body}.{n}"));
        let n = (2..).find(|n| !taken(*n)).unwrap_or(2);
        body = format!("{body}.{n}");
    }
    let proto = protocol_name(protocol);
    let timeout = route.affinity.map(|t| t.as_secs().max(1));
    let mut endpoints = Vec::new();
    for backend in &route.backends {
        let ep = format!("{body}__{}/{}", backend.ip(), backend.port());
        let (chain, set) = (format!("endpoint-{ep}"), format!("affinity-{ep}"));
        let mut rules = Vec::new();
        if let Some(timeout) = timeout {
            rs.sets.insert(set.clone(), timeout);
            rules.push(format!("update @{set} {{ ip saddr }}"));
        }
        rules.push(format!("meta l4proto {proto} dnat to {backend}"));
        rs.chains.insert(chain.clone(), Chain { hook: None, rules });
        endpoints.push((chain, set));
    }
    let mut rules = Vec::new();
    if timeout.is_some() {
        rules.extend(endpoints.iter().map(|(chain, set)| format!("ip saddr @{set} goto {chain}")));
    }
    rules.push(match endpoints.as_slice() {
        [(only, _)] => format!("goto {only}"),
        all => {
            let picks: Vec<String> =
                all.iter().enumerate().map(|(i, (chain, _))| format!("{i} : goto {chain}")).collect();
            format!("numgen random mod {} vmap {{ {} }}", all.len(), picks.join(", "))
        }
    });
    let name = format!("service-{body}");
    rs.chains.insert(name.clone(), Chain { hook: None, rules });
    name
}

/// A map key: `10.96.0.7 . tcp . 80`.
fn key(frontend: &Frontend) -> String {
    format!("{} . {} . {}", frontend.addr.ip(), protocol_name(frontend.protocol), frontend.addr.port())
}

const MAP_TYPE: &str = "ipv4_addr . inet_proto . inet_service : verdict";

impl Ruleset {
    /// One transaction that replaces the table, whatever it held (or creates it): `add` makes
    /// sure there is one to delete, `delete` drops it with everything in it, the block makes it
    /// anew. Clients remembered in affinity sets are forgotten.
    pub fn replace_script(&self) -> String {
        let t = &self.table;
        let mut s = format!("add table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n");
        for (name, elements) in &self.maps {
            let _ = writeln!(s, "\tmap {name} {{\n\t\ttype {MAP_TYPE}");
            if !elements.is_empty() {
                s.push_str("\t\telements = {\n");
                for (frontend, verdict) in elements {
                    let _ = writeln!(s, "\t\t\t{} : {verdict},", key(frontend));
                }
                s.push_str("\t\t}\n");
            }
            s.push_str("\t}\n");
        }
        for (name, timeout) in &self.sets {
            let _ = writeln!(
                s,
                "\tset {name} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout {timeout}s\n\t}}"
            );
        }
        for (name, chain) in &self.chains {
            let _ = writeln!(s, "\tchain {name} {{");
            for line in chain.hook.iter().chain(&chain.rules) {
                let _ = writeln!(s, "\t\t{line}");
            }
            s.push_str("\t}\n");
        }
        s.push_str("}\n");
        s
    }

    /// One transaction that turns `installed` (what the last script made) into this ruleset in
    /// place: new sets and chains are added, changed and removed chains flushed, changed chains
    /// refilled, map elements that differ deleted and added, removed chains and sets deleted —
    /// in an order in which nothing is deleted while something still refers to it. Unchanged
    /// chains and affinity sets (and the clients they remember) are left alone. Empty when
    /// nothing differs; `None` when the change cannot be made in place (another table, other
    /// maps or base chains, an affinity timeout changed): replace instead.
    pub fn update_script(&self, installed: &Ruleset) -> Option<String> {
        let hooked = |rs: &Ruleset| -> BTreeMap<String, Chain> {
            rs.chains.iter().filter(|(_, c)| c.hook.is_some()).map(|(n, c)| (n.clone(), c.clone())).collect()
        };
        let same_shape = self.table == installed.table
            && self.maps.keys().eq(installed.maps.keys())
            && hooked(self) == hooked(installed)
            && self.sets.iter().all(|(name, t)| installed.sets.get(name).is_none_or(|old| old == t));
        if !same_shape {
            return None;
        }
        let t = &self.table;
        let mut s = String::new();
        for (name, timeout) in self.sets.iter().filter(|(n, _)| !installed.sets.contains_key(*n)) {
            let _ =
                writeln!(s, "add set ip {t} {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}");
        }
        for name in self.chains.keys().filter(|n| !installed.chains.contains_key(*n)) {
            let _ = writeln!(s, "add chain ip {t} {name}");
        }
        let empty = BTreeMap::new();
        for (map, old) in &installed.maps {
            let new = self.maps.get(map).unwrap_or(&empty);
            let gone: Vec<String> = old.iter().filter(|(k, v)| new.get(*k) != Some(*v)).map(|(k, _)| key(k)).collect();
            if !gone.is_empty() {
                let _ = writeln!(s, "delete element ip {t} {map} {{ {} }}", gone.join(", "));
            }
        }
        let removed: BTreeSet<&String> = installed.chains.keys().filter(|n| !self.chains.contains_key(*n)).collect();
        let changed: BTreeSet<&String> = self
            .chains
            .iter()
            .filter(|(n, c)| installed.chains.get(*n).is_some_and(|old| old != *c))
            .map(|(n, _)| n)
            .collect();
        for name in changed.union(&removed) {
            let _ = writeln!(s, "flush chain ip {t} {name}");
        }
        for (name, chain) in &self.chains {
            if changed.contains(name) || !installed.chains.contains_key(name) {
                for rule in &chain.rules {
                    let _ = writeln!(s, "add rule ip {t} {name} {rule}");
                }
            }
        }
        for (map, new) in &self.maps {
            let old = installed.maps.get(map).unwrap_or(&empty);
            let added: Vec<String> =
                new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(k, v)| format!("{} : {v}", key(k))).collect();
            if !added.is_empty() {
                let _ = writeln!(s, "add element ip {t} {map} {{ {} }}", added.join(", "));
            }
        }
        for name in &removed {
            let _ = writeln!(s, "delete chain ip {t} {name}");
        }
        for name in installed.sets.keys().filter(|n| !self.sets.contains_key(*n)) {
            let _ = writeln!(s, "delete set ip {t} {name}");
        }
        Some(s)
    }
}
