use serde_json::json;

use super::*;

fn service(spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})).expect("service")
}

fn slice(service: &str, ports: serde_json::Value, endpoints: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-abc"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
    }))
    .expect("slice")
}

fn ep(ip: &str, ready: bool, serving: bool, terminating: bool) -> serde_json::Value {
    json!({"addresses": [ip], "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// Node ports on every address (`--allow-remote`).
const ALL: &[Ipv4Addr] = &[Ipv4Addr::UNSPECIFIED];

fn tcp(s: &str) -> Frontend {
    Frontend { addr: addr(s), protocol: Protocol::Tcp }
}

#[test]
fn virtual_ip_routes_to_ready_endpoints_on_the_resolved_target_port() {
    let svc = service(json!({"clusterIP": "10.96.0.7", "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}));
    let slices = [slice(
        "web",
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        json!([
            ep("10.244.0.3", true, true, false),
            ep("10.244.0.2", true, true, false),
            ep("10.244.0.4", false, false, false)
        ]),
    )];
    let table = build(&[svc], &slices, ALL);
    assert_eq!(table.len(), 1);
    let route = &table[&tcp("10.96.0.7:80")];
    assert_eq!(route.backends, vec![addr("10.244.0.2:8080"), addr("10.244.0.3:8080")]);
    assert_eq!(route.service, "default/web:http");
    assert_eq!(route.affinity, None);
}

#[test]
fn terminating_endpoints_serve_only_when_nothing_is_ready() {
    let svc = service(json!({"clusterIP": "10.96.0.7", "ports": [{"port": 80}]}));
    let ports = json!([{"port": 80, "protocol": "TCP"}]);
    let draining = ep("10.244.0.5", false, true, true);
    let only_draining = [slice("web", ports.clone(), json!([draining.clone(), ep("10.244.0.6", false, false, true)]))];
    assert_eq!(
        build(std::slice::from_ref(&svc), &only_draining, ALL)[&tcp("10.96.0.7:80")].backends,
        vec![addr("10.244.0.5:80")]
    );
    let with_ready = [slice("web", ports, json!([draining, ep("10.244.0.9", true, true, false)]))];
    assert_eq!(build(&[svc], &with_ready, ALL)[&tcp("10.96.0.7:80")].backends, vec![addr("10.244.0.9:80")]);
}

#[test]
fn node_ports_get_a_frontend_on_every_address_and_udp_ports_are_separate() {
    let svc = service(json!({"type": "NodePort", "clusterIP": "10.96.0.8", "ports": [
        {"name": "web", "port": 80, "nodePort": 30000},
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "assoc", "port": 9, "protocol": "SCTP"},
    ]}));
    let slices = [slice(
        "web",
        json!([{"name": "web", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "UDP"}]),
        json!([ep("10.244.0.2", true, true, false)]),
    )];
    let table = build(&[svc], &slices, ALL);
    let frontends: Vec<Frontend> = table.keys().copied().collect();
    assert_eq!(
        frontends,
        vec![
            tcp("0.0.0.0:30000"),
            Frontend { addr: addr("10.96.0.8:53"), protocol: Protocol::Udp },
            tcp("10.96.0.8:80"),
        ]
    );
    assert_eq!(table[&tcp("0.0.0.0:30000")].backends, vec![addr("10.244.0.2:80")]);
    assert_eq!(
        table[&Frontend { addr: addr("10.96.0.8:53"), protocol: Protocol::Udp }].backends,
        vec![addr("10.244.0.2:5353")]
    );
}

#[test]
fn headless_external_name_and_unallocated_services_have_no_frontends() {
    let services = [
        service(json!({"clusterIP": "None", "ports": [{"port": 80}]})),
        service(json!({"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 80}]})),
        service(json!({"ports": [{"port": 80}]})),
    ];
    assert!(build(&services, &[], ALL).is_empty());
}

#[test]
fn a_service_without_endpoints_still_has_its_frontend_and_other_services_slices_do_not_count() {
    let svc = service(json!({"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}));
    let other =
        [slice("not-web", json!([{"port": 80, "protocol": "TCP"}]), json!([ep("10.244.0.2", true, true, false)]))];
    let table = build(&[svc], &other, ALL);
    assert_eq!(table[&tcp("10.96.0.9:80")].backends, Vec::<SocketAddr>::new());
}

#[test]
fn client_ip_affinity_uses_the_configured_timeout_or_three_hours() {
    let svc = |config: serde_json::Value| {
        service(json!({"clusterIP": "10.96.0.10", "sessionAffinity": "ClientIP", "sessionAffinityConfig": config,
                       "ports": [{"port": 80}]}))
    };
    let table = build(&[svc(json!({"clientIP": {"timeoutSeconds": 60}}))], &[], ALL);
    assert_eq!(table[&tcp("10.96.0.10:80")].affinity, Some(Duration::from_secs(60)));
    let table = build(&[svc(json!({}))], &[], ALL);
    assert_eq!(table[&tcp("10.96.0.10:80")].affinity, Some(DEFAULT_AFFINITY));
}

#[test]
fn node_ports_listen_on_each_node_port_address() {
    let svc =
        service(json!({"type": "NodePort", "clusterIP": "10.96.0.8", "ports": [{"port": 80, "nodePort": 30000}]}));
    let local = [Ipv4Addr::LOCALHOST, Ipv4Addr::new(10, 244, 0, 1)];
    let frontends: Vec<Frontend> = build(&[svc], &[], &local).into_keys().collect();
    assert_eq!(frontends, vec![tcp("10.96.0.8:80"), tcp("10.244.0.1:30000"), tcp("127.0.0.1:30000")]);
}

/// `--node-port-address` values, the API's address, the pod bridge's address, and where node
/// ports listen.
type NodePortCase = (&'static [&'static str], &'static str, Option<&'static str>, &'static [&'static str]);

#[test]
fn node_ports_listen_where_the_api_listens_unless_told() {
    let v4 = |s: &&str| -> Ipv4Addr { s.parse().expect("address") };
    let gateway = Some("10.244.0.1");
    let cases: &[NodePortCase] = &[
        // The default: the API on loopback, node ports on loopback and the pod bridge.
        (&[], "127.0.0.1", gateway, &["10.244.0.1", "127.0.0.1"]),
        (&[], "::1", gateway, &["10.244.0.1", "127.0.0.1"]),
        (&[], "127.0.0.2", None, &["127.0.0.1"]),
        // --allow-remote: the API elsewhere, node ports on every address, as before.
        (&[], "0.0.0.0", gateway, &["0.0.0.0"]),
        (&[], "192.0.2.2", gateway, &["0.0.0.0"]),
        (&[], "::", gateway, &["0.0.0.0"]),
        // --node-port-address: exactly those, whatever the API does.
        (&["192.0.2.2"], "127.0.0.1", gateway, &["192.0.2.2"]),
        (&["192.0.2.2", "127.0.0.1", "192.0.2.2"], "0.0.0.0", None, &["127.0.0.1", "192.0.2.2"]),
        (&["127.0.0.1", "0.0.0.0"], "127.0.0.1", gateway, &["0.0.0.0"]),
    ];
    for (given, api, gateway, wanted) in cases {
        let given: Vec<Ipv4Addr> = given.iter().map(v4).collect();
        let api: IpAddr = api.parse().expect("address");
        let wanted: Vec<Ipv4Addr> = wanted.iter().map(v4).collect();
        assert_eq!(node_port_addresses(&given, api, gateway.as_ref().map(v4)), wanted, "{given:?} {api} {gateway:?}");
    }
}

fn kernel_node() -> KernelNode {
    KernelNode {
        bridge: "ordit1".into(),
        bridge_address: Ipv4Addr::new(10, 252, 1, 1),
        pod_network: (Ipv4Addr::new(10, 252, 1, 0), 24),
        service_network: (Ipv4Addr::new(10, 253, 1, 0), 24),
    }
}

#[test]
fn the_kernel_serves_virtual_ips_and_bridge_node_ports_whose_endpoints_are_pods() {
    let node = kernel_node();
    let to = |backends: &[&str]| Route {
        service: "default/web:".into(),
        backends: backends.iter().map(|b| addr(b)).collect(),
        affinity: None,
    };
    let pods = ["10.252.1.5:80", "10.252.1.6:80"];
    // (frontend, backends, who serves it)
    let cases: &[(&str, &[&str], Server)] = &[
        ("10.253.1.7:80", &pods, Server::Kernel),
        // No endpoints: the kernel answers with a reject.
        ("10.253.1.7:80", &[], Server::Kernel),
        // The bridge address is a pod's `hostIP`: its node ports are DNAT'd too.
        ("10.252.1.1:30000", &pods, Server::Kernel),
        // The cluster DNS on the bridge address is in the pod network.
        ("10.253.1.10:53", &["10.252.1.1:53"], Server::Kernel),
        // Loopback node ports would need route_localnet.
        ("127.0.0.1:30000", &pods, Server::Userspace),
        // Every address, or another of the machine's: clients from the uplink.
        ("0.0.0.0:30000", &pods, Server::Userspace),
        ("192.0.2.2:30000", &pods, Server::Userspace),
        // Endpoints the kernel would have to route pods' packets to, off the bridge.
        ("10.253.1.7:80", &["127.0.0.1:8080"], Server::Userspace),
        ("10.253.1.7:80", &["10.252.1.5:80", "192.0.2.9:80"], Server::Userspace),
        ("10.253.1.7:80", &["10.252.2.5:80"], Server::Userspace),
        ("10.253.1.7:80", &["[fd00::5]:80"], Server::Userspace),
        ("[fd00::7]:80", &[], Server::Userspace),
    ];
    for (frontend, backends, wanted) in cases {
        let f = tcp(frontend);
        assert_eq!(server(&f, &to(backends), &node), *wanted, "{frontend} → {backends:?}");
    }
    let table: Table = cases.iter().take(7).map(|(f, b, _)| (tcp(f), to(b))).collect();
    let (kernel, userspace) = split(table.clone(), Some(&node));
    assert_eq!(
        kernel.keys().copied().collect::<Vec<_>>(),
        vec![tcp("10.252.1.1:30000"), tcp("10.253.1.7:80"), tcp("10.253.1.10:53")]
    );
    assert_eq!(
        userspace.keys().copied().collect::<Vec<_>>(),
        vec![tcp("0.0.0.0:30000"), tcp("127.0.0.1:30000"), tcp("192.0.2.2:30000")]
    );
    // Without a kernel path, userspace serves everything.
    let (kernel, userspace) = split(table.clone(), None);
    assert!(kernel.is_empty());
    assert_eq!(userspace, table);
}

#[test]
fn networks_contain_their_addresses() {
    let net = (Ipv4Addr::new(10, 252, 1, 0), 24);
    assert!(in_net(net, Ipv4Addr::new(10, 252, 1, 255)));
    assert!(!in_net(net, Ipv4Addr::new(10, 252, 2, 0)));
    assert!(in_net((Ipv4Addr::new(10, 252, 1, 9), 24), Ipv4Addr::new(10, 252, 1, 1)), "host bits ignored");
    assert!(in_net((Ipv4Addr::UNSPECIFIED, 0), Ipv4Addr::new(192, 0, 2, 1)));
    assert!(in_net((Ipv4Addr::new(192, 0, 2, 1), 32), Ipv4Addr::new(192, 0, 2, 1)));
    assert!(!in_net((Ipv4Addr::new(192, 0, 2, 1), 32), Ipv4Addr::new(192, 0, 2, 2)));
}
