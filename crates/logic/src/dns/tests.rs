use serde_json::json;

use super::*;

fn svc(name: &str, cluster_ip: &str, ports: serde_json::Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": cluster_ip, "ports": ports}}))
    .expect("service")
}

fn slice(service: &str, endpoints: serde_json::Value, ports: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json!({"metadata": {"name": format!("{service}-abcde"), "namespace": "default",
        "labels": {"kubernetes.io/service-name": service}}, "addressType": "IPv4",
        "endpoints": endpoints, "ports": ports}))
    .expect("slice")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("ip")
}

fn zone() -> Records {
    let services = vec![
        svc("nginx", "None", json!([{"name": "web", "port": 80, "protocol": "TCP"}])),
        svc("api", "10.96.0.10", json!([{"name": "http", "port": 8080, "protocol": "TCP"}, {"port": 9090}])),
        svc("empty", "None", json!([])),
    ];
    let slices = vec![slice(
        "nginx",
        json!([
            {"addresses": ["10.244.0.2"], "hostname": "web-0", "conditions": {"ready": true}},
            {"addresses": ["10.244.0.3"], "hostname": "web-1", "conditions": {"ready": false}},
            {"addresses": ["10.244.0.4"], "conditions": {"ready": true}},
        ]),
        json!([{"name": "web", "port": 80, "protocol": "TCP"}]),
    )];
    build(&services, &slices, "cluster.local")
}

#[test]
fn services_resolve_to_their_cluster_ip_or_ready_endpoints() {
    let r = zone();
    assert_eq!(r.lookup("api.default.svc.cluster.local.", Kind::A), Answer::A(vec![ip("10.96.0.10")]));
    assert_eq!(
        r.lookup("NGINX.default.svc.cluster.local", Kind::A),
        Answer::A(vec![ip("10.244.0.2"), ip("10.244.0.4")])
    );
    // Headless endpoints by hostname, and by dashed IP when they have none; not-ready ones not at all.
    assert_eq!(r.lookup("web-0.nginx.default.svc.cluster.local", Kind::A), Answer::A(vec![ip("10.244.0.2")]));
    assert_eq!(r.lookup("10-244-0-4.nginx.default.svc.cluster.local", Kind::A), Answer::A(vec![ip("10.244.0.4")]));
    assert_eq!(r.lookup("web-1.nginx.default.svc.cluster.local", Kind::A), Answer::NxDomain);
}

#[test]
fn srv_records_for_named_ports() {
    let r = zone();
    assert_eq!(
        r.lookup("_http._tcp.api.default.svc.cluster.local", Kind::Srv),
        Answer::Srv(vec![Srv { port: 8080, target: "api.default.svc.cluster.local".into() }])
    );
    assert_eq!(
        r.lookup("_web._tcp.nginx.default.svc.cluster.local", Kind::Srv),
        Answer::Srv(vec![
            Srv { port: 80, target: "10-244-0-4.nginx.default.svc.cluster.local".into() },
            Srv { port: 80, target: "web-0.nginx.default.svc.cluster.local".into() },
        ])
    );
}

#[test]
fn nxdomain_nodata_ptr_and_forwarding() {
    let r = zone();
    // Existing names without records of the type: NODATA; unknown names: NXDOMAIN.
    assert_eq!(r.lookup("api.default.svc.cluster.local", Kind::Other), Answer::NoData);
    assert_eq!(r.lookup("default.svc.cluster.local", Kind::A), Answer::NoData);
    assert_eq!(r.lookup("empty.default.svc.cluster.local", Kind::A), Answer::NoData, "headless, no endpoints");
    assert_eq!(r.lookup("missing.default.svc.cluster.local", Kind::A), Answer::NxDomain);
    assert_eq!(r.lookup("api.default.svc.cluster.local", Kind::Srv), Answer::NoData);
    // Reverse lookups for service and pod addresses.
    assert_eq!(r.lookup("10.0.96.10.in-addr.arpa", Kind::Ptr), Answer::Ptr("api.default.svc.cluster.local".into()));
    assert_eq!(
        r.lookup("2.0.244.10.in-addr.arpa.", Kind::Ptr),
        Answer::Ptr("web-0.nginx.default.svc.cluster.local".into())
    );
    // Everything else is forwarded.
    assert_eq!(r.lookup("example.com", Kind::A), Answer::NotOurs);
    assert_eq!(r.lookup("8.8.8.8.in-addr.arpa", Kind::Ptr), Answer::NotOurs);
}

fn pod(ns: &str, ip: &str, spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "p", "namespace": ns}, "spec": spec,
        "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}))
    .expect("pod")
}

type Expansion = Option<(String, Answer)>;

#[test]
fn autopath_answers_a_pods_short_name_from_its_search_path() {
    let mut services = vec![svc("api", "10.96.0.10", json!([{"name": "http", "port": 8080}]))];
    let mut other_ns = svc("db", "10.96.0.20", json!([]));
    other_ns.metadata.namespace = Some("data".into());
    services.push(other_ns);
    let r = build(&services, &[], "cluster.local");
    let pods = vec![
        pod("default", "10.244.0.9", json!({"containers": []})),
        pod(
            "default",
            "10.244.0.10",
            json!({"containers": [], "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}),
        ),
        pod(
            "default",
            "10.244.0.11",
            json!({"containers": [], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["10.244.0.1"], "searches": ["corp.example", "default.svc.cluster.local"]}}),
        ),
        pod("default", "10.244.0.12", json!({"containers": [], "hostNetwork": true})),
    ];
    let resolvers = pod_resolvers(&pods, "cluster.local");
    assert_eq!(resolvers.len(), 3, "host-network pods are not known by address");
    let cluster_first = &resolvers[&ip("10.244.0.9")];
    assert_eq!(cluster_first.ndots, 5);
    let full = |s: &str| s.to_string();
    let table: Vec<(&str, Kind, &PodResolver, Expansion)> = vec![
        // Single label and <svc>.<ns>: the first search domain that has the name answers.
        (
            "api",
            Kind::A,
            cluster_first,
            Some((full("api.default.svc.cluster.local"), Answer::A(vec![ip("10.96.0.10")]))),
        ),
        (
            "api.",
            Kind::A,
            cluster_first,
            Some((full("api.default.svc.cluster.local"), Answer::A(vec![ip("10.96.0.10")]))),
        ),
        (
            "DB.data",
            Kind::A,
            cluster_first,
            Some((full("db.data.svc.cluster.local"), Answer::A(vec![ip("10.96.0.20")]))),
        ),
        (
            "db.data.svc",
            Kind::A,
            cluster_first,
            Some((full("db.data.svc.cluster.local"), Answer::A(vec![ip("10.96.0.20")]))),
        ),
        // The name exists without records of the type: NODATA through the CNAME.
        ("api", Kind::Other, cluster_first, Some((full("api.default.svc.cluster.local"), Answer::NoData))),
        (
            "_http._tcp.api",
            Kind::Srv,
            cluster_first,
            Some((
                full("_http._tcp.api.default.svc.cluster.local"),
                Answer::Srv(vec![Srv { port: 8080, target: full("api.default.svc.cluster.local") }]),
            )),
        ),
        // Nothing under any search domain: forwarded as asked.
        ("example.com", Kind::A, cluster_first, None),
        ("db", Kind::A, cluster_first, None),
        // Already in the zone (or reverse): answered as asked, not expanded.
        ("api.default.svc.cluster.local", Kind::A, cluster_first, None),
        ("10.0.96.10.in-addr.arpa", Kind::Ptr, cluster_first, None),
        // ndots: a name with that many dots is tried as asked first by the resolver.
        ("db.data", Kind::A, &resolvers[&ip("10.244.0.10")], None),
        (
            "api",
            Kind::A,
            &resolvers[&ip("10.244.0.10")],
            Some((full("api.default.svc.cluster.local"), Answer::A(vec![ip("10.96.0.10")]))),
        ),
        // A search domain outside the zone comes first: only forwarding could tell.
        ("api", Kind::A, &resolvers[&ip("10.244.0.11")], None),
    ];
    for (name, kind, resolver, expected) in table {
        assert_eq!(r.autopath(name, kind, resolver), expected, "{name} {kind:?}");
    }
}
