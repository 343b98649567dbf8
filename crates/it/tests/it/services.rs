//! Services with real pods and real kubectl: a virtual IP that balances TCP over ready pods
//! from the host and from pods (by name, through the cluster DNS), ClientIP affinity, seed
//! `002_*`'s NodePort on 127.0.0.1 and the pod bridge only, a UDP Service in front of the cluster DNS, SRV and PTR
//! answers inside pods, and not-ready pods dropping out of both the proxy and DNS.

use std::collections::BTreeSet;
use std::time::Duration;

use it::{TEST_IMAGE, TestServer, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

const NEWEST: &str = "1.33";
const OLDEST: &str = "1.27";

/// Seed 002's NodePort Service (verbatim), a headless Service for the pods' names, a ClusterIP
/// Service reaching the pods' port by name, one with ClientIP affinity, and the StatefulSet.
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
    let result = scenario(&server).await;
    let clean = server.finish().await;
    assert!(!it::service_route_present(cidr), "the virtual IP route is removed at stop");
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
    // Every pod is Ready, but the proxy learns that from the EndpointSlice a moment later.
    eventually("all three pods behind the virtual IP", Duration::from_secs(30), || async {
        let mut seen = BTreeSet::new();
        for _ in 0..3 {
            seen.insert(it::http_get(web).await.ok()?);
        }
        (seen == names).then_some(())
    })
    .await?;

    // From a pod, by the Service's short name (resolved through the search list).
    let mut from_pod = BTreeSet::new();
    for _ in 0..3 {
        let body = k.ok(&["exec", "statefulset-test-0", "--", "wget", "-qO-", "http://web:8080/index.html"])?;
        from_pod.insert(body.trim().to_string());
    }
    assert_eq!(from_pod, names, "three requests from a pod reach three pods (round robin)");
    // Including the pod itself, through its own Service (hairpin).
    let own = old.ok(&[
        "exec",
        "statefulset-test-1",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3; do wget -qO- http://web.default.svc.cluster.local:8080/index.html; done",
    ])?;
    assert!(own.lines().any(|l| l.trim() == "statefulset-test-1"), "{own}");

    // ClientIP affinity: one client, one pod.
    let sticky_ip = k.ok(&["get", "svc", "sticky", "-o", "jsonpath={.spec.clusterIP}"])?;
    let sticky = std::net::SocketAddr::from((sticky_ip.trim().parse::<std::net::Ipv4Addr>()?, 8080));
    let first =
        eventually("sticky answers", Duration::from_secs(30), || async { it::http_get(sticky).await.ok() }).await?;
    for _ in 0..5 {
        assert_eq!(it::http_get(sticky).await?, first);
    }

    // Seed 002's NodePort answers on the host's loopback.
    let node_port = it::http_get(([127, 0, 0, 1], 30000).into()).await?;
    assert!(names.contains(&node_port), "{node_port}");
    let listed = k.ok(&["get", "svc", "test-statefulset-svc", "--no-headers"])?;
    assert!(listed.contains("NodePort") && listed.contains("80:30000/TCP"), "{listed}");
    // With the API on loopback it listens there and on the pod bridge, where pods reach it at
    // their node's address, and on none of the machine's other addresses.
    let gateway = pods.get("statefulset-test-0").await?.status.and_then(|s| s.host_ip).unwrap_or_default();
    let listening = tcp_listeners(30000)?;
    assert_eq!(listening, BTreeSet::from([format!("{gateway}:30000"), "127.0.0.1:30000".to_string()]));
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
    eventually("only ready pods behind the virtual IP and in DNS", Duration::from_secs(30), || async {
        let mut seen = BTreeSet::new();
        for _ in 0..6 {
            seen.insert(it::http_get(web).await.ok()?);
        }
        let dns = k.ok(&["exec", "statefulset-test-0", "--", "nslookup", "nginx.default.svc.cluster.local"]).ok()?;
        (seen.len() == 2 && !seen.contains("statefulset-test-2") && !dns.contains(&pod2_ip)).then_some(())
    })
    .await?;

    k.ok(&["delete", "sts", "statefulset-test"])?;
    k.ok(&["delete", "svc", "web", "sticky", "test-statefulset-svc", "nginx"])?;
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
