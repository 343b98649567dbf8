//! Cluster DNS records from Services and EndpointSlices, following the Kubernetes DNS-based
//! service discovery specification: `<svc>.<ns>.svc.<zone>` A records (the ClusterIP, or every
//! ready endpoint for a headless Service), `<hostname>.<svc>.<ns>.svc.<zone>` for headless
//! endpoints with a hostname, SRV records for named ports, PTR records, and the difference
//! between a name that does not exist (NXDOMAIN) and one without records of the asked type
//! (NODATA). The DNS server (issue 6) answers from these; nothing here does I/O.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// An SRV answer: priority 0, weight 100 (as CoreDNS gives for a single target), port, target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Srv {
    pub port: u16,
    pub target: String,
}

/// The records of the cluster zone; names are lowercase and fully qualified, without the
/// trailing dot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    pub zone: String,
    a: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    srv: BTreeMap<String, BTreeSet<Srv>>,
    ptr: BTreeMap<String, String>,
    /// Every name that exists, including the names between a record and the zone.
    names: BTreeSet<String>,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    A(Vec<Ipv4Addr>),
    Srv(Vec<Srv>),
    Ptr(String),
    /// The name exists, but has no records of this type.
    NoData,
    NxDomain,
    /// Not in the cluster zone (nor a reverse name of a cluster address): forward it.
    NotOurs,
}

/// The record types answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    A,
    Srv,
    Ptr,
    /// Any other type (AAAA, TXT, …): NODATA for existing names.
    Other,
}

fn reverse_name(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
}

impl Records {
    fn add_name(&mut self, name: &str) {
        let mut rest = name;
        loop {
            self.names.insert(rest.to_string());
            if rest == self.zone {
                return;
            }
            match rest.split_once('.') {
                Some((_, parent)) if parent.len() >= self.zone.len() => rest = parent,
                _ => return,
            }
        }
    }

    fn add_a(&mut self, name: String, ip: Ipv4Addr) {
        self.add_name(&name);
        self.a.entry(name).or_default().insert(ip);
    }

    fn add_srv(&mut self, name: String, srv: Srv) {
        self.add_name(&name);
        self.srv.entry(name).or_default().insert(srv);
    }

    /// Every name that exists in the zone (lowercase, no trailing dot), the zone's own
    /// included.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Every reverse name (`<d>.<c>.<b>.<a>.in-addr.arpa`) with a PTR record.
    pub fn reverse_names(&self) -> impl Iterator<Item = &str> {
        self.ptr.keys().map(String::as_str)
    }

    /// Answer a question for `name` (any case, trailing dot or not).
    pub fn lookup(&self, name: &str, kind: Kind) -> Answer {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.ends_with(".in-addr.arpa") {
            return match (self.ptr.get(&name), kind) {
                (Some(target), Kind::Ptr) => Answer::Ptr(target.clone()),
                (Some(_), _) => Answer::NoData,
                (None, _) => Answer::NotOurs,
            };
        }
        let in_zone = name == self.zone || name.ends_with(&format!(".{}", self.zone));
        if !in_zone {
            return Answer::NotOurs;
        }
        match kind {
            Kind::A => {
                if let Some(ips) = self.a.get(&name) {
                    return Answer::A(ips.iter().copied().collect());
                }
            }
            Kind::Srv => {
                if let Some(srv) = self.srv.get(&name) {
                    return Answer::Srv(srv.iter().cloned().collect());
                }
            }
            Kind::Ptr | Kind::Other => {}
        }
        if self.names.contains(&name) { Answer::NoData } else { Answer::NxDomain }
    }

    /// CoreDNS's `autopath`, for a pod's query that is not in the cluster zone: the answer the
    /// pod's resolver would reach by trying its search path, found server-side in one round
    /// trip. Busybox's `nslookup` (1.35 and later) and other stub resolvers send `web-0.nginx`
    /// as typed, ignoring the search list; a resolver that honours it (ndots) tries
    /// `web-0.nginx.<ns>.svc.<zone>` first. So, as that resolver would: a name with fewer than
    /// `ndots` dots is tried under each search domain in order, and the first expansion that
    /// exists in the zone (with records of the asked type or not) answers, as
    /// `(expanded name, answer)` for a CNAME to it plus its records. `None` (forward the name as
    /// asked) when the name has `ndots` dots or more, when no expansion exists, or when a search
    /// domain outside the zone comes first (only a forwarded query could say whether the
    /// expansion under it exists, and the resolver would take that one).
    pub fn autopath(&self, name: &str, kind: Kind, resolver: &PodResolver) -> Option<(String, Answer)> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || name.matches('.').count() >= resolver.ndots {
            return None;
        }
        if self.lookup(&name, kind) != Answer::NotOurs {
            return None;
        }
        for domain in &resolver.searches {
            let expanded = format!("{name}.{}", domain.trim_end_matches('.').to_ascii_lowercase());
            match self.lookup(&expanded, kind) {
                Answer::NxDomain => continue,
                Answer::NotOurs => return None,
                answer => return Some((expanded, answer)),
            }
        }
        None
    }
}

/// What the cluster DNS knows of a pod's resolver, for `Records::autopath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodResolver {
    pub searches: Vec<String>,
    pub ndots: usize,
}

/// The resolvers of the pods with an address of their own (not on the host network), by pod
/// IP: how the cluster DNS knows who is asking from a query's source address.
pub fn pod_resolvers<'a>(pods: impl IntoIterator<Item = &'a Pod>, zone: &str) -> HashMap<Ipv4Addr, PodResolver> {
    let mut out = HashMap::new();
    for pod in pods {
        let spec = pod.spec.as_ref();
        if spec.and_then(|s| s.host_network).unwrap_or(false) {
            continue;
        }
        let status = pod.status.as_ref();
        let ips = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|i| i.ip.clone()).collect::<Vec<_>>())
            .filter(|ips| !ips.is_empty())
            .or_else(|| status.and_then(|s| s.pod_ip.clone()).map(|ip| vec![ip]))
            .unwrap_or_default();
        if ips.is_empty() {
            continue;
        }
        // The host's resolv.conf only matters to `dnsPolicy: Default`, whose search domains are
        // outside the zone anyway (autopath stops there).
        let settings = crate::container::dns_settings(pod, "", zone, "");
        let resolver = PodResolver { ndots: settings.ndots(), searches: settings.searches };
        for ip in ips.iter().filter_map(|ip| ip.parse::<Ipv4Addr>().ok()) {
            out.insert(ip, resolver.clone());
        }
    }
    out
}

fn dashed(ip: &str) -> String {
    ip.replace('.', "-")
}

/// Build the zone `zone` (e.g. `cluster.local`) from the Services and their EndpointSlices.
pub fn build(services: &[Service], slices: &[EndpointSlice], zone: &str) -> Records {
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    let mut r = Records { zone: zone.clone(), ..Default::default() };
    r.names.insert(zone.clone());
    for svc in services {
        let (Some(name), Some(ns)) = (svc.metadata.name.as_deref(), svc.metadata.namespace.as_deref()) else {
            continue;
        };
        let spec = svc.spec.clone().unwrap_or_default();
        let fqdn = format!("{name}.{ns}.svc.{zone}").to_ascii_lowercase();
        r.add_name(&fqdn);
        let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
        let headless = cluster_ip == "None";
        let ports = spec.ports.clone().unwrap_or_default();
        if !headless {
            if let Ok(ip) = cluster_ip.parse::<Ipv4Addr>() {
                r.add_a(fqdn.clone(), ip);
                r.ptr.insert(reverse_name(ip), fqdn.clone());
                for p in ports.iter().filter(|p| p.name.as_deref().is_some_and(|n| !n.is_empty())) {
                    let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                    let srv_name = format!("_{}._{proto}.{fqdn}", p.name.as_deref().unwrap_or_default());
                    let port = u16::try_from(p.port).unwrap_or(0);
                    r.add_srv(srv_name, Srv { port, target: fqdn.clone() });
                }
            }
            continue;
        }
        // Headless: the ready endpoints of the Service's slices.
        let publish = spec.publish_not_ready_addresses.unwrap_or(false);
        let owned = slices.iter().filter(|s| crate::endpoints::slice_of(s, ns, name));
        for slice in owned {
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready && !publish {
                    continue;
                }
                for addr in &ep.addresses {
                    let Ok(ip) = addr.parse::<Ipv4Addr>() else { continue };
                    r.add_a(fqdn.clone(), ip);
                    let host = ep.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| dashed(addr));
                    let host_fqdn = format!("{host}.{fqdn}").to_ascii_lowercase();
                    r.add_a(host_fqdn.clone(), ip);
                    if ep.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
                        r.ptr.insert(reverse_name(ip), host_fqdn.clone());
                    }
                    for p in slice.ports.iter().flatten() {
                        let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) else { continue };
                        let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                        let srv_name = format!("_{port_name}._{proto}.{fqdn}");
                        let port = p.port.and_then(|n| u16::try_from(n).ok()).unwrap_or(0);
                        r.add_srv(srv_name, Srv { port, target: host_fqdn.clone() });
                    }
                }
            }
        }
    }
    r
}
