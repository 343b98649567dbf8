//! Services with real pods and real kubectl: a virtual IP that balances TCP over ready pods
//! from the host and from pods (by name, through the cluster DNS), served by the kernel
//! (nftables DNAT, nothing listening on it), a pod reaching itself through its Service,
//! ClientIP affinity from the host and from a pod, seed `002_*`'s NodePort on 127.0.0.1 (the
//! userspace proxy) and on the pod bridge (the kernel) only, a Service without endpoints
//! refused at once, a UDP Service in front of the cluster DNS, SRV and PTR answers inside pods,
//! not-ready pods dropping out of both the proxy and DNS, a scale-down leaving the Service's
//! rules, and the table gone once the server stops.

use std::collections::BTreeSet;
use std::time::Duration;

use it::{TEST_IMAGE, TestServer, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

const NEWEST: &str = "1.33";
const OLDEST: &str = "1.27";

/// Seed 002's NodePort Service (verbatim), a headless Service for the pods' names, a ClusterIP
/// Service reaching the pods' port by name, one with ClientIP affinity, one selecting no pods,
/// and the StatefulSet.
fn manifests() -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  labels:
    app: test-statefulset
  name: test-statefulset-svc
spec:
  type: NodePort
  ports:
    - name: test-statefulset-port
      protocol: TCP
      port: 80
      targetPort: 80
      nodePort: 30000
  selector:
    app: statefulset-test
---
apiVersion: v1
kind: Service
metadata: {{name: nginx}}
spec:
  clusterIP: None
  ports: [{{port: 80, name: web}}]
  selector: {{app: statefulset-test}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  ports: [{{name: http, port: 8080, targetPort: web}}]
  selector: {{app: statefulset-test}}
---
apiVersion: v1
kind: Service
metadata: {{name: sticky}}
spec:
  sessionAffinity: ClientIP
  ports: [{{port: 8080, targetPort: web}}]
  selector: {{app: statefulset-test}}
---
apiVersion: v1
kind: Service
metadata: {{name: nothing}}
spec:
  ports: [{{port: 80}}]
  selector: {{app: no-such-pod}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: statefulset-test
spec:
  serviceName: nginx
  podManagementPolicy: Parallel
  replicas: 3
  selector:
    matchLabels: {{app: statefulset-test}}
  template:
    metadata:
      labels: {{app: statefulset-test}}
    spec:
      containers:
      - name: nginx
        image: {TEST_IMAGE}
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
        ports: [{{containerPort: 80, name: web}}]
        readinessProbe:
          httpGet: {{path: /index.html, port: web}}
          periodSeconds: 1
          failureThreshold: 1
"#
    )
}

/// A UDP and TCP Service without selector whose EndpointSlice is the cluster DNS on the
/// bridge (as `kube-dns` fronts CoreDNS upstream).
fn dns_service(gateway: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: kube-dns, namespace: kube-system}}
spec:
  ports: [{{name: dns, port: 53, protocol: UDP}}, {{name: dns-tcp, port: 53, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-manual
  namespace: kube-system
  labels: {{kubernetes.io/service-name: kube-dns}}
addressType: IPv4
ports: [{{name: dns, port: 53, protocol: UDP}}, {{name: dns-tcp, port: 53, protocol: TCP}}]
endpoints: [{{addresses: ["{gateway}"]}}]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ips_node_ports_and_dns_reach_ready_pods() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let cidr = server.service_cidr().unwrap_or((std::net::Ipv4Addr::UNSPECIFIED, 0));
    let bridge = server.pod_bridge().unwrap_or_default();
    let result = scenario(&server).await;
    let clean = server.finish().await;
    assert!(!it::service_route_present(cidr), "the virtual IP route is removed at stop");
    assert_eq!(it::service_table(&bridge), None, "the service table is deleted at stop");
    result.and(clean)
}

async fn scenario(server: &TestServer) -> anyhow::Result<()> {
    let (k, old) = (server.kubectl(NEWEST)?, server.kubectl(OLDEST)?);
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    k.ok_stdin(&["apply", "-f", "-"], &manifests())?;
    k.ok(&["rollout", "status", "sts/statefulset-test", "--timeout=90s"])?;
    let names: BTreeSet<String> = (0..3).map(|i| format!("statefulset-test-{i}")).collect();

    // The virtual IP comes from this server's service CIDR and balances over the three pods.
    let vip = k.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])?;
    let vip: std::net::Ipv4Addr = vip.trim().parse()?;
    assert!(server.service_cidr().is_some_and(|(net, _)| vip.octets()[..3] == net.octets()[..3]), "{vip}");
    let web = std::net::SocketAddr::from((vip, 8080));
    // Every pod is Ready, but the proxy learns that from the EndpointSlice a moment later. The
    // kernel picks an endpoint at random (as kube-proxy does): 20 requests reach all three
    // but for a chance of 3·(2/3)^20 ≈ 1/1000, and a miss only costs another round.
    eventually("all three pods behind the virtual IP", Duration::from_secs(30), || async {
        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            seen.insert(it::http_get(web).await.ok()?);
        }
        (seen == names).then_some(())
    })
    .await?;
    // The kernel serves it: the virtual IP is in the service table's map, and nothing listens
    // on it (the userspace proxy did not bind it).
    let bridge = server.pod_bridge().unwrap_or_default();
    let rules = it::service_table(&bridge).unwrap_or_default();
    assert!(rules.contains(&format!("{vip} . tcp . 8080 : goto service-default/web/tcp/http")), "{rules}");
    assert!(tcp_listeners(8080)?.iter().all(|l| !l.starts_with(&vip.to_string())), "{:?}", tcp_listeners(8080));

    // From a pod, by the Service's short name (resolved through the search list): 40 requests
    // reach all three pods (a miss has a chance of 3·(2/3)^40 ≈ 3·10⁻⁷).
    let body = k.ok(&[
        "exec",
        "statefulset-test-0",
        "--",
        "sh",
        "-c",
        "for i in $(seq 40); do wget -qO- http://web:8080/index.html; done",
    ])?;
    let from_pod: BTreeSet<String> = body.lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(from_pod, names, "requests from a pod reach every pod");
    // Including the pod itself, through its own Service (hairpin: DNAT'd back into the bridge
    // and masqueraded, so the reply comes back through the host).
    let own = old.ok(&[
        "exec",
        "statefulset-test-1",
        "--",
        "sh",
        "-c",
        "for i in $(seq 40); do wget -qO- http://web.default.svc.cluster.local:8080/index.html; done",
    ])?;
    assert!(own.lines().any(|l| l.trim() == "statefulset-test-1"), "{own}");
    assert_eq!(own.lines().count(), 40, "every request answered: {own}");

    // ClientIP affinity: one client, one pod.
    let sticky_ip = k.ok(&["get", "svc", "sticky", "-o", "jsonpath={.spec.clusterIP}"])?;
    let sticky = std::net::SocketAddr::from((sticky_ip.trim().parse::<std::net::Ipv4Addr>()?, 8080));
    let first =
        eventually("sticky answers", Duration::from_secs(30), || async { it::http_get(sticky).await.ok() }).await?;
    for _ in 0..5 {
        assert_eq!(it::http_get(sticky).await?, first);
    }
    // And from a pod (its own address is the client the kernel remembers).
    let from_pod = k.ok(&[
        "exec",
        "statefulset-test-1",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6; do wget -qO- http://sticky:8080/index.html; done",
    ])?;
    let pods_seen: BTreeSet<&str> = from_pod.lines().map(str::trim).collect();
    assert_eq!(pods_seen.len(), 1, "one client, one pod: {from_pod}");
    assert!(names.contains(pods_seen.iter().next().copied().unwrap_or_default()), "{from_pod}");

    // A Service without endpoints is refused at once (the kernel rejects), not left to time out.
    let nothing_ip = k.ok(&["get", "svc", "nothing", "-o", "jsonpath={.spec.clusterIP}"])?;
    let nothing = std::net::SocketAddr::from((nothing_ip.trim().parse::<std::net::Ipv4Addr>()?, 80));
    eventually("the empty Service in the reject map", Duration::from_secs(10), || async {
        let rules = it::service_table(&bridge)?;
        rules.contains(&format!("{} . tcp . 80 : goto reject-chain", nothing.ip())).then_some(())
    })
    .await?;
    let refused = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(nothing)).await?;
    assert_eq!(refused.err().map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));

    // Seed 002's NodePort answers on the host's loopback.
    let node_port = it::http_get(([127, 0, 0, 1], 30000).into()).await?;
    assert!(names.contains(&node_port), "{node_port}");
    let listed = k.ok(&["get", "svc", "test-statefulset-svc", "--no-headers"])?;
    assert!(listed.contains("NodePort") && listed.contains("80:30000/TCP"), "{listed}");
    // With the API on loopback it answers there (the userspace proxy listens: DNAT from
    // loopback would need route_localnet) and on the pod bridge, where pods reach it at their
    // node's address (the kernel's DNAT, no listener), and on none of the machine's other
    // addresses.
    let gateway = pods.get("statefulset-test-0").await?.status.and_then(|s| s.host_ip).unwrap_or_default();
    let listening = tcp_listeners(30000)?;
    assert_eq!(listening, BTreeSet::from(["127.0.0.1:30000".to_string()]));
    let rules = it::service_table(&bridge).unwrap_or_default();
    assert!(
        rules.contains(&format!(
            "{gateway} . tcp . 30000 : goto service-default/test-statefulset-svc/tcp/test-statefulset-port"
        )),
        "{rules}"
    );
    assert!(!rules.contains("127.0.0.1"), "{rules}");
    for (interface, address) in host_addresses()? {
        if !(address.is_loopback() || address.to_string() == gateway) {
            assert!(!listening.contains(&format!("{address}:30000")), "listening on {interface} ({address})");
        }
    }
    let via_node =
        k.ok(&["exec", "statefulset-test-2", "--", "wget", "-qO-", &format!("http://{gateway}:30000/index.html")])?;
    assert!(names.contains(via_node.trim()), "{via_node}");

    // UDP: a selector-less Service in front of the cluster DNS answers nslookup from a pod.
    k.ok_stdin(&["apply", "-f", "-"], &dns_service(&gateway))?;
    let dns_vip = k.ok(&["get", "svc", "kube-dns", "-n", "kube-system", "-o", "jsonpath={.spec.clusterIP}"])?;
    let pod0_ip = pods.get("statefulset-test-0").await?.status.and_then(|s| s.pod_ip).unwrap_or_default();
    let via_vip = eventually("nslookup through the kube-dns virtual IP", Duration::from_secs(30), || async {
        let out = k
            .run(&[
                "exec",
                "statefulset-test-1",
                "--",
                "nslookup",
                "statefulset-test-0.nginx.default.svc.cluster.local",
                dns_vip.trim(),
            ])
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains(&pod0_ip).then_some(text)
    })
    .await?;
    assert!(via_vip.contains(dns_vip.trim()), "the answer came from the virtual IP: {via_vip}");

    // SRV: a named port of a ClusterIP Service, and of the headless Service (per-pod targets).
    let srv = k.ok(&[
        "exec",
        "statefulset-test-0",
        "--",
        "nslookup",
        "-type=SRV",
        "_http._tcp.web.default.svc.cluster.local",
    ])?;
    assert!(srv.contains("8080") && srv.contains("web.default.svc.cluster.local"), "{srv}");
    let srv = k.ok(&[
        "exec",
        "statefulset-test-0",
        "--",
        "nslookup",
        "-type=SRV",
        "_web._tcp.nginx.default.svc.cluster.local",
    ])?;
    assert!(names.iter().all(|n| srv.contains(&format!("{n}.nginx.default.svc.cluster.local"))), "{srv}");
    // PTR: a pod's address names the pod under its headless Service.
    let ptr = k.ok(&["exec", "statefulset-test-1", "--", "nslookup", &pod0_ip])?;
    assert!(ptr.contains("statefulset-test-0.nginx.default.svc.cluster.local"), "{ptr}");

    // The seeds' one-off client: kubectl run --rm with the test image, asking a short name as
    // seed 000 does (busybox's nslookup sends it as typed; the cluster DNS applies the pod's
    // search path).
    let run = k.ok(&[
        "run",
        "dns-test",
        "-i",
        "--rm",
        "--restart=Never",
        &format!("--image={TEST_IMAGE}"),
        "--",
        "nslookup",
        "statefulset-test-0.nginx",
    ])?;
    assert!(run.contains(&pod0_ip), "{run}");

    // A pod that stops being ready leaves the virtual IP's backends and the headless name.
    k.ok(&["exec", "statefulset-test-2", "--", "rm", "/www/index.html"])?;
    eventually("statefulset-test-2 not ready", Duration::from_secs(30), || async {
        pods.get("statefulset-test-2").await.ok().filter(|p| !logic::pod::is_ready(p))
    })
    .await?;
    let pod2_ip = pods.get("statefulset-test-2").await?.status.and_then(|s| s.pod_ip).unwrap_or_default();
    let pod1_ip = pods.get("statefulset-test-1").await?.status.and_then(|s| s.pod_ip).unwrap_or_default();
    eventually("only ready pods behind the virtual IP and in DNS", Duration::from_secs(30), || async {
        let mut seen = BTreeSet::new();
        for _ in 0..6 {
            seen.insert(it::http_get(web).await.ok()?);
        }
        let dns = k.ok(&["exec", "statefulset-test-0", "--", "nslookup", "nginx.default.svc.cluster.local"]).ok()?;
        (seen.len() == 2 && !seen.contains("statefulset-test-2") && !dns.contains(&pod2_ip)).then_some(())
    })
    .await?;

    // A scale-down: the removed pod leaves the Service's rules, and no request reaches it.
    k.ok(&["scale", "sts", "statefulset-test", "--replicas=1"])?;
    eventually("statefulset-test-1 gone", Duration::from_secs(60), || async {
        pods.get_opt("statefulset-test-1").await.ok().filter(Option::is_none).map(|_| ())
    })
    .await?;
    let pod1_gone = |rules: &str| !rules.is_empty() && !rules.contains(&format!("dnat to {pod1_ip}:80"));
    eventually("only statefulset-test-0 behind the virtual IP", Duration::from_secs(30), || async {
        pod1_gone(&it::service_table(&bridge)?).then_some(())
    })
    .await?;
    for _ in 0..10 {
        assert_eq!(it::http_get(web).await?, "statefulset-test-0");
    }

    k.ok(&["delete", "sts", "statefulset-test"])?;
    k.ok(&["delete", "svc", "web", "sticky", "test-statefulset-svc", "nginx", "nothing"])?;
    k.ok(&["delete", "svc", "kube-dns", "-n", "kube-system"])?;
    eventually("pods gone", Duration::from_secs(60), || async {
        pods.list(&Default::default()).await.ok().filter(|l| l.items.is_empty())
    })
    .await?;
    // The NodePort is released with its Service.
    eventually("node port closed", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", 30000)).await.is_err().then_some(())
    })
    .await?;
    Ok(())
}

/// The local addresses of this machine's TCP sockets listening on `port` (`ss`), wildcards
/// included (`0.0.0.0:30000`, `*:30000`, `[::]:30000`).
fn tcp_listeners(port: u16) -> anyhow::Result<BTreeSet<String>> {
    let out = std::process::Command::new("ss").args(["-Hltn", &format!("sport = :{port}")]).output()?;
    anyhow::ensure!(out.status.success(), "ss: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().filter_map(|l| l.split_whitespace().nth(3)).map(str::to_string).collect())
}

/// This machine's IPv4 addresses and their interfaces (`ip -4 -o addr`).
fn host_addresses() -> anyhow::Result<Vec<(String, std::net::Ipv4Addr)>> {
    let out = std::process::Command::new("ip").args(["-4", "-o", "addr", "show"]).output()?;
    anyhow::ensure!(out.status.success(), "ip addr: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let address = fields.get(3)?.split('/').next()?.parse().ok()?;
            Some((fields.get(1)?.to_string(), address))
        })
        .collect())
}
