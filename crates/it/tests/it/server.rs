//! The server as a process sees it: health endpoints, credentials, kubeconfig, restarts.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::Context;
use it::TestServer;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_is_private_and_grants_access_over_https() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mode = std::fs::metadata(&server.running.kubeconfig)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Every credential: the CA and its key, the serving pair, the admin token, the token key.
    let pki = server.running.data_dir.pki();
    for file in ["ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.token", "sa.key"] {
        let mode = std::fs::metadata(pki.join(file))?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "pki/{file}");
    }
    let client = server.https_client().await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> =
        namespaces.list(&Default::default()).await?.items.into_iter().filter_map(|n| n.metadata.name).collect();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.contains(&ns.to_string()), "{ns} missing from {names:?}");
    }
    let kubernetes = Api::<Service>::namespaced(client, "default").get("kubernetes").await?;
    assert_eq!(kubernetes.spec.and_then(|s| s.cluster_ip).as_deref(), Some("10.96.0.1"));
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_credentials_are_refused_but_health_is_public() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let base = format!("https://{}", server.running.addr);
    let ca_file = server.running_data_dir().pki().join("ca.crt");
    let ca = std::fs::read(&ca_file)?;
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca_file)
        .arg(format!("{base}/api/v1/namespaces"))
        .output()?;
    assert!(!ca.is_empty());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    for path in ["/livez", "/readyz", "/version"] {
        let out = std::process::Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(&ca_file)
            .arg(format!("{base}{path}"))
            .output()?;
        let body = String::from_utf8_lossy(&out.stdout);
        if path == "/version" {
            let v: serde_json::Value = serde_json::from_str(&body)?;
            assert_eq!(v["major"], "1");
            assert!(v["gitVersion"].as_str().unwrap_or("").starts_with("v1."));
        } else {
            assert_eq!(body, "ok", "{path}");
        }
    }
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca_file)
        .args(["-H", "Authorization: Bearer wrong-token"])
        .arg(format!("{base}/api/v1/namespaces"))
        .output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_restart() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut created = Vec::new();
    for i in 0..20 {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}
        }))?;
        created.push(cms.create(&PostParams::default(), &cm).await?);
    }
    let last_rv: u64 = created.last().and_then(|c| c.metadata.resource_version.clone()).unwrap_or_default().parse()?;
    let server = server.restart().await?;
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let listed = cms.list(&Default::default()).await?;
    let ours = listed.items.iter().filter(|c| c.metadata.name.as_deref() != Some("kube-root-ca.crt"));
    assert_eq!(ours.count(), 20);
    let list_rv: u64 = listed.metadata.resource_version.unwrap_or_default().parse()?;
    assert!(list_rv >= last_rv);
    let again: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "after-restart"}}))?;
    let after = cms.create(&PostParams::default(), &again).await?;
    let after_rv: u64 = after.metadata.resource_version.unwrap_or_default().parse()?;
    assert!(after_rv > list_rv, "revisions keep increasing across restarts");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_is_refused_until_the_first_stops() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let data_dir = server.running_data_dir().clone();
    let second = ordinal::ServerConfig::new(data_dir.clone(), "127.0.0.1:0".parse()?);
    let refused = match ordinal::start(second).await {
        Ok(running) => {
            running.stop().await;
            anyhow::bail!("a second server started on {}", data_dir.root().display());
        }
        Err(e) => e.to_string(),
    };
    let wanted = format!(
        "data dir {} is in use by another ordinal server (pid {})",
        data_dir.root().display(),
        std::process::id()
    );
    assert_eq!(refused, wanted);
    // The first is untouched by the attempt, and once it stops a new server takes the dir.
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    cms.list(&Default::default()).await?;
    let server = server.restart().await?;
    assert_eq!(server.running_data_dir(), &data_dir);
    assert!(ordinal::start(ordinal::ServerConfig::new(data_dir.clone(), "127.0.0.1:0".parse()?)).await.is_err());
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_bridge_or_pod_network_is_refused() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let settings = server.pod_settings().context("pod settings")?;
    let scratch = tempfile::tempdir()?;
    let attempt = |settings: ordinal::PodSettings| {
        let data = ordinal::DataDir::create(scratch.path().join(&settings.bridge));
        async move {
            let mut config = ordinal::ServerConfig::new(data?, "127.0.0.1:0".parse()?);
            config.pods = Some(settings);
            match ordinal::start(config).await {
                Ok(running) => {
                    running.stop().await;
                    anyhow::bail!("a second server started")
                }
                Err(e) => Ok(format!("{e:#}")),
            }
        }
    };
    // The same bridge: the two would hand out each other's addresses.
    let refused = attempt(settings.clone()).await?;
    let wanted = format!("bridge {} is in use by another ordinal server (pid {})", settings.bridge, std::process::id());
    assert_eq!(refused, wanted);
    // Another bridge on the same pod network: routes would clash.
    let mut other = settings.clone();
    other.bridge = format!("{}x", settings.bridge);
    let refused = attempt(other).await?;
    assert!(refused.starts_with(&format!("pod network {} overlaps", settings.pod_cidr)), "{refused}");
    assert!(refused.contains(&format!("on {}", settings.bridge)), "{refused}");
    // The first server still runs pods.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::default_namespaced(server.client());
    let pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "still"},
        "spec": {"containers": [{"name": "app", "image": it::TEST_IMAGE, "command": ["sleep", "60"]}]}}))?;
    pods.create(&Default::default(), &pod).await?;
    it::pod_ready(&pods, "still", None).await?;
    pods.delete("still", &Default::default()).await?;
    it::eventually("the pod gone", std::time::Duration::from_secs(30), || async {
        pods.get_opt("still").await.ok()?.is_none().then_some(())
    })
    .await?;
    server.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_registers_honestly_and_pods_wait_with_a_reason() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{Node, Pod};
    let server = TestServer::start().await?;
    let nodes: Api<Node> = Api::all(server.client());
    let node = it::eventually("the node to register", std::time::Duration::from_secs(10), || async {
        nodes
            .list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|n| n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some())
    })
    .await?;
    let ready = node.status.and_then(|s| s.conditions).unwrap_or_default().into_iter().find(|c| c.type_ == "Ready");
    assert_eq!(ready.map(|c| (c.status, c.reason)), Some(("False".to_string(), Some("KubeletNotReady".to_string()))));
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let pod: Pod = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "waits"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )?;
    pods.create(&PostParams::default(), &pod).await?;
    // The node may register after the pod is first looked at; the reason then catches up.
    let wanted = "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.";
    let message = it::eventually("PodScheduled=False naming the taint", std::time::Duration::from_secs(10), || async {
        let p = pods.get("waits").await.ok()?;
        let m = p.status?.conditions?.into_iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?.message?;
        (m == wanted).then_some(m)
    })
    .await?;
    assert_eq!(message, "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.");
    server.stop().await;
    Ok(())
}

/// The listener's limits, short enough for a test.
const QUICK: ordinal::ServeLimits = ordinal::ServeLimits {
    tls_handshake_timeout: Duration::from_millis(200),
    header_read_timeout: Duration::from_millis(300),
    max_connections: 4096,
};

use it::tls_connect;

/// Read until the server closes the connection (EOF or a reset); how long that took.
async fn closed_after(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> anyhow::Result<Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 512];
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    anyhow::ensure!(waited.is_ok(), "the server kept the connection open for 10 s");
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_disconnected_and_watches_stream_on() -> anyhow::Result<()> {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{WatchEvent, WatchParams};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = TestServer::start_with(|c| c.serve_limits = QUICK).await?;
    let (addr, data_dir) = (server.running.addr, server.running_data_dir().clone());

    // A client that connects and never starts the handshake is closed at its deadline.
    let mut silent = tokio::net::TcpStream::connect(addr).await?;
    let waited = closed_after(&mut silent).await?;
    assert!(waited >= QUICK.tls_handshake_timeout.mul_f32(0.9), "closed after {waited:?}");

    // A whole request head is answered; one that never ends is cut off at its deadline.
    let mut whole = tls_connect(addr, &data_dir).await?;
    whole.write_all(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await?;
    let mut answer = Vec::new();
    let _ = whole.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut partial = tls_connect(addr, &data_dir).await?;
    partial.write_all(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n").await?;
    let waited = closed_after(&mut partial).await?;
    assert!(waited >= QUICK.header_read_timeout.mul_f32(0.9), "closed after {waited:?}");

    // A watch over HTTPS (kube asks for bookmarks, every 200 ms here) outlives both deadlines
    // several times over, then delivers an event.
    let cms: Api<ConfigMap> = Api::default_namespaced(server.https_client().await?);
    let rv = cms.list(&Default::default()).await?.metadata.resource_version.unwrap_or_default();
    let mut events = cms.watch(&WatchParams::default(), &rv).await?.boxed();
    let started = std::time::Instant::now();
    let mut bookmarks = 0;
    while started.elapsed() < (QUICK.tls_handshake_timeout + QUICK.header_read_timeout) * 3 {
        match tokio::time::timeout(Duration::from_secs(5), events.try_next()).await?? {
            Some(WatchEvent::Bookmark(_)) => bookmarks += 1,
            other => anyhow::bail!("expected a bookmark, got {other:?}"),
        }
    }
    assert!(bookmarks >= 3, "{bookmarks} bookmarks");
    let late: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "late"}}))?;
    let created = Api::<ConfigMap>::default_namespaced(server.client()).create(&PostParams::default(), &late).await?;
    let added = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.try_next()).await?? {
            Some(WatchEvent::Added(cm)) => break cm,
            Some(WatchEvent::Bookmark(_)) => continue,
            other => anyhow::bail!("expected the configmap, got {other:?}"),
        }
    };
    assert_eq!(added.metadata.uid, created.metadata.uid);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() -> anyhow::Result<()> {
    let limits = ordinal::ServeLimits { max_connections: 1, tls_handshake_timeout: Duration::from_secs(30), ..QUICK };
    let server = TestServer::start_with(|c| c.serve_limits = limits).await?;
    let (addr, data_dir) = (server.running.addr, server.running_data_dir().clone());
    // The one slot is held by a connection that has not started its handshake; the next
    // client waits in the listen backlog, unanswered …
    let holder = tokio::net::TcpStream::connect(addr).await?;
    let mut second = tokio::spawn(async move { tls_connect(addr, &data_dir).await });
    let early = tokio::time::timeout(Duration::from_millis(500), &mut second).await;
    assert!(early.is_err(), "a second connection was served beside the first");
    // … until the slot is free.
    drop(holder);
    let _tls = tokio::time::timeout(Duration::from_secs(5), second).await???;
    server.stop().await;
    Ok(())
}

/// A kubeconfig for `server` whose user is a client certificate (as kind and k3s write them)
/// for `user` in `groups`, signed by the server's CA, or by a stranger's CA of the same name.
fn certificate_kubeconfig(
    server: &TestServer,
    file: &str,
    user: &str,
    groups: &[&str],
    trusted: bool,
) -> anyhow::Result<std::path::PathBuf> {
    use base64::Engine;
    use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    let pki = server.running.data_dir.pki();
    let ca_key = match trusted {
        true => KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key"))?)?,
        false => KeyPair::generate()?,
    };
    // The CA's own subject, as the server made it, so the chain names its issuer.
    let mut ca = CertificateParams::default();
    let mut ca_dn = DistinguishedName::new();
    ca_dn.push(DnType::CommonName, "ordinal-ca");
    ca_dn.push(DnType::OrganizationName, "ordinal");
    ca.distinguished_name = ca_dn;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca, &ca_key);
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, user);
    for group in groups {
        dn.push(DnType::OrganizationName, *group);
    }
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let admin = std::fs::read_to_string(&server.running.kubeconfig)?;
    let cluster: String = admin.lines().take_while(|l| !l.starts_with("users:")).map(|l| format!("{l}\n")).collect();
    let config = format!(
        "{cluster}users:\n- name: cert\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n\
         contexts:\n- name: ordinal\n  context:\n    cluster: ordinal\n    user: cert\n    namespace: default\n\
         current-context: ordinal\n",
        b64(&cert.pem()),
        b64(&key.serialize_pem()),
    );
    let path = server.dir.path().join(file);
    std::fs::write(&path, config)?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_signed_by_the_ca_authenticate_and_system_masters_may_act() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    for version in ["1.27", "1.33"] {
        let admin = certificate_kubeconfig(&server, "admin.kubeconfig", "kubernetes-admin", &["system:masters"], true)?;
        let k = it::Kubectl::new(version, &admin, server.dir.path())?;
        let namespaces = k.ok(&["get", "ns", "-o", "name"])?;
        assert!(namespaces.contains("namespace/kube-system"), "{namespaces}");
        k.ok(&["create", "configmap", &format!("by-cert-{}", version.replace('.', "-")), "--from-literal=a=b"])?;

        // Authenticated, but nothing grants this user anything (no RBAC yet): 403, not 401.
        let dev = certificate_kubeconfig(&server, "dev.kubeconfig", "jane", &["dev"], true)?;
        let refused = it::Kubectl::new(version, &dev, server.dir.path())?.fails(&["get", "configmaps"])?;
        assert!(refused.contains("Forbidden") || refused.contains("forbidden"), "{refused}");
        assert!(refused.contains("jane"), "{refused}");

        // A certificate from another CA does not get through the handshake.
        let stranger = certificate_kubeconfig(&server, "stranger.kubeconfig", "mallory", &["system:masters"], false)?;
        let refused = it::Kubectl::new(version, &stranger, server.dir.path())?.fails(&["get", "configmaps"])?;
        assert!(!refused.contains("by-cert"), "{refused}");
    }
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    assert!(cms.get_opt("by-cert-1-27").await?.is_some() && cms.get_opt("by-cert-1-33").await?.is_some());
    server.stop().await;
    Ok(())
}
