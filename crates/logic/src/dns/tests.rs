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
