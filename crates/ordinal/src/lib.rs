//! Ordinal's wiring: open the store, issue credentials, start the API server and the
//! controllers in order, write the kubeconfig once serving, and stop everything cleanly.
//! No business logic lives here; `start` is what the binary and the integration tests call.

pub mod bench;
mod config;
mod data_dir;
pub mod kubelet_double;
pub mod operator;
mod streams;

pub use apiserver::serve::ServeLimits;
pub use config::{
    DEFAULT_CLUSTER_DOMAIN, DEFAULT_DATA_DIR, DEFAULT_DNS_LISTEN, PodSettings, ServerArgs, ServerConfig,
    default_node_name, parse_cidr, parse_port_range,
};
pub use data_dir::{DataDir, DataDirLock, LockError};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apiserver::{ApiConfig, ApiState};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    /// The data dir this server holds.
    pub data_dir: DataDir,
    /// A client that talks to the API in process (no TCP, no TLS).
    pub client: kube::Client,
    pub state: Arc<ApiState>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Set when pods are to be stopped and cleaned away at stop.
    reset_pods: Option<agent::runtime::NativeConfig>,
    /// Keeps a second server off this server's bridge and pod network.
    _network: Option<agent::runtime::network::NetworkClaim>,
    /// Keeps a second server off this data dir; released after `stop` has finished (the last
    /// field, so dropped last).
    _lock: DataDirLock,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("kubeconfig", &self.kubeconfig)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Stop accepting, end watches and controllers, and wait for every task.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        let waited = tokio::time::timeout(Duration::from_secs(10), self.tasks.wait()).await;
        if waited.is_err() {
            tracing::error!(running = self.tasks.len(), "tasks still running 10s after shutdown");
            self.tasks.wait().await;
        }
        if let Some(native) = self.reset_pods {
            let _ = tokio::task::spawn_blocking(move || agent::runtime::Native::reset_blocking(&native)).await;
        }
    }

    /// Stop the server but leave its pods running, as a crash would (they are picked up again
    /// at the next start).
    pub async fn stop_keeping_pods(mut self) {
        self.reset_pods = None;
        self.stop().await;
    }

    /// Resolves when shutdown has been requested.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

fn server_hosts(listen: &SocketAddr, service_ip: Ipv4Addr) -> Vec<String> {
    let mut hosts: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "::1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    hosts.push(service_ip.to_string());
    if !listen.ip().is_unspecified() {
        hosts.push(listen.ip().to_string());
    }
    hosts
}

fn first_service_ip(cidr: (Ipv4Addr, u8)) -> Ipv4Addr {
    let mask = if cidr.1 == 0 { 0 } else { u32::MAX << (32 - u32::from(cidr.1.min(32))) };
    Ipv4Addr::from((u32::from(cidr.0) & mask) + 1)
}

/// Start everything; returns once the API is serving and the kubeconfig is written. The data
/// dir is locked first: a second server on it is refused.
pub async fn start(config: ServerConfig) -> anyhow::Result<Running> {
    let lock = config.data_dir.lock()?;
    config.data_dir.make_private()?;
    // Without root the node runs no pods (it says why) and has no network to claim.
    let network = match config.pods.as_ref().filter(|_| config.controllers && nix::unistd::geteuid().is_root()) {
        Some(pods) => Some(agent::runtime::network::claim_network(&pods.bridge, pods.pod_cidr).await?),
        None => None,
    };
    let started = Instant::now();
    if !config.listen.ip().is_loopback() {
        if !config.allow_remote {
            bail!("refusing to listen on non-loopback address {} without --allow-remote", config.listen);
        }
        tracing::warn!(listen = %config.listen, "serving the API on a non-loopback address");
    }
    let store = store::Store::open(&config.data_dir.database(), store::StoreConfig { history: config.watch_history })
        .context("open store")?;

    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let service_ip = first_service_ip(config.service_cidr);
    let mut hosts = server_hosts(&addr, service_ip);
    hosts.extend(config.pods.as_ref().map(|p| p.pod_cidr.gateway().to_string()));
    let pki = apiserver::tls::load_or_create(&config.data_dir.pki(), &hosts).context("credentials")?;
    let tls = apiserver::tls::server_config(&pki)?;
    let pod_tls = tls.clone();

    let shutdown = CancellationToken::new();
    let api_config = ApiConfig {
        admin_token: pki.admin_token.clone(),
        service_network: config.service_cidr.0,
        service_prefix: config.service_cidr.1,
        node_port_range: config.node_port_range.clone(),
        advertise_address: addr.to_string(),
        secure_port: addr.port(),
        bookmark_interval: config.bookmark_interval,
        max_watch_duration: Duration::from_secs(3600),
        storage_admission: config.controllers,
        service_account_key: Some(pki.sa_key_der.clone()),
    };
    let state = ApiState::new(store, api_config, shutdown.clone()).map_err(|e| anyhow::anyhow!("api state: {e}"))?;
    {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.bootstrap()).await?.map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?;
    }

    let tasks = TaskTracker::new();
    let serving = apiserver::serve::serve_tls(
        listener,
        tls,
        apiserver::router(state.clone()),
        config.serve_limits,
        shutdown.clone(),
    );
    tasks.spawn(async move {
        serving.await;
        tracing::debug!(task = "https server", "stopped");
    });
    tasks.spawn(compactor(state.store.clone(), config.compact_interval, shutdown.clone()));

    let client = kube::Client::new(apiserver::internal_service(state.clone()), "default");
    if config.controllers {
        let provisioner = config.pods.as_ref().map(|_| controllers::volumes::LocalProvisioner {
            root: config.data_dir.volumes(),
            node_name: config.node_name.clone(),
        });
        controllers::spawn_cluster_controllers(
            client.clone(),
            shutdown.clone(),
            &tasks,
            provisioner,
            Some(pki.ca_pem.clone()),
            &config.enabled_controllers,
        );
        let health = start_node_agent(&config, &state, client.clone(), shutdown.clone(), &tasks).await;
        if health.ready.is_ok()
            && let Some(pods) = &config.pods
        {
            let serve = PodFacing { tls: pod_tls.clone(), limits: config.serve_limits };
            serve_to_pods(&state, addr, pods.pod_cidr.gateway(), serve, shutdown.clone(), &tasks).await;
        }
        let (node_client, node_stop, node_name) = (client.clone(), shutdown.clone(), config.node_name.clone());
        tasks.spawn(async move {
            agent::node::run(node_client, node_stop, node_name, health).await;
            tracing::debug!(task = "node agent", "stopped");
        });
    }
    let reset_pods = config
        .pods
        .as_ref()
        .filter(|p| p.stop_pods_on_exit && config.controllers)
        .map(|p| p.native_config(&config.data_dir));

    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let kubeconfig = config.data_dir.kubeconfig();
    apiserver::tls::write_private(
        &kubeconfig,
        apiserver::tls::kubeconfig(&pki, &format!("https://{host}:{}", addr.port())).as_bytes(),
    )?;
    tracing::info!(
        kubeconfig = %kubeconfig.display(),
        listen = %addr,
        startup_ms = started.elapsed().as_millis() as u64,
        "serving; kubeconfig written to {}",
        kubeconfig.display()
    );
    Ok(Running {
        addr,
        kubeconfig,
        data_dir: config.data_dir,
        client,
        state,
        shutdown,
        tasks,
        reset_pods,
        _network: network,
        _lock: lock,
    })
}

/// What the API needs to serve on a second address.
struct PodFacing {
    tls: Arc<rustls::ServerConfig>,
    limits: apiserver::serve::ServeLimits,
}

/// Make the API reachable from pods, as the `kubernetes` Service says: when it listens on
/// loopback, it also listens on the pod bridge's address (same port if free), which is on this
/// machine only; the Service's endpoints name that address. A failure is logged: pods then
/// cannot reach the API, everything else works.
async fn serve_to_pods(
    state: &Arc<ApiState>,
    addr: SocketAddr,
    gateway: Ipv4Addr,
    serve: PodFacing,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) {
    let endpoint = if addr.ip().is_unspecified() {
        SocketAddr::from((gateway, addr.port()))
    } else {
        let bound = match TcpListener::bind((gateway, addr.port())).await {
            Ok(l) => Ok(l),
            Err(_) => TcpListener::bind((gateway, 0)).await,
        };
        let listener = match bound {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(address = %gateway, error = %e, "pods cannot reach the API");
                return;
            }
        };
        let Ok(local) = listener.local_addr() else { return };
        let serving =
            apiserver::serve::serve_tls(listener, serve.tls, apiserver::router(state.clone()), serve.limits, shutdown);
        tasks.spawn(async move {
            serving.await;
            tracing::debug!(task = "https server for pods", "stopped");
        });
        local
    };
    let state = state.clone();
    match tokio::task::spawn_blocking(move || state.publish_api_endpoints(endpoint)).await {
        Ok(Ok(())) => tracing::debug!(%endpoint, "the kubernetes Service's endpoints published"),
        Ok(Err(e)) => tracing::warn!(error = %e, "publish the kubernetes Service's endpoints"),
        Err(e) => tracing::warn!(error = %e, "publish the kubernetes Service's endpoints"),
    }
}

/// Start the runtime and the kubelet if this server runs pods; the node's health either way.
async fn start_node_agent(
    config: &ServerConfig,
    api: &ApiState,
    client: kube::Client,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> agent::node::Health {
    let Some(pods) = &config.pods else {
        return agent::node::Health {
            ready: Err("this server was started without a container runtime".into()),
            internal_ip: "127.0.0.1".into(),
        };
    };
    let gateway = pods.pod_cidr.gateway().to_string();
    let runtime = match agent::runtime::Native::init(pods.native_config(&config.data_dir)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "the node cannot run pods");
            return agent::node::Health {
                ready: Err(format!("container runtime not ready: {e}")),
                internal_ip: gateway,
            };
        }
    };
    let images = match agent::image::ImageStore::open(&config.data_dir.images()) {
        Ok(i) => i,
        Err(e) => {
            return agent::node::Health { ready: Err(format!("image store: {e}")), internal_ip: gateway };
        }
    };
    let kubelet_config = agent::kubelet::KubeletConfig {
        node_name: config.node_name.clone(),
        cluster_domain: pods.cluster_domain.clone(),
        cluster_dns: gateway.clone(),
        host_ip: gateway.clone(),
        host_resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        registries: config.data_dir.registries(),
    };
    let mut listen = vec![SocketAddr::from((pods.pod_cidr.gateway(), 53))];
    listen.extend(pods.dns_listen);
    let dns_config = dns::DnsConfig {
        zone: pods.cluster_domain.clone(),
        listen,
        upstream: dns::nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()),
        ttl: 5,
        pod_network: ipnet::Ipv4Net::new(pods.pod_cidr.addr, pods.pod_cidr.prefix).ok(),
    };
    let (dns_client, dns_stop) = (client.clone(), shutdown.clone());
    tasks.spawn(async move {
        if let Err(e) = dns::run(dns_client, dns_config, dns_stop).await {
            tracing::warn!(error = %e, "cluster DNS not serving");
        }
        tracing::debug!(task = "cluster dns", "stopped");
    });
    let (proxy_client, proxy_stop) = (client.clone(), shutdown.clone());
    let proxy_config = proxy::ProxyConfig {
        service_cidr: config.service_cidr,
        node_port_addresses: logic::proxy::node_port_addresses(
            &config.node_port_addresses,
            config.listen.ip(),
            Some(pods.pod_cidr.gateway()),
        ),
        // The kernel serves pods' Services only where it may route their packets into the
        // bridge (behind the uplink guard, or masqueraded).
        kernel: runtime.uplink().routes_pod_traffic().then(|| logic::proxy::KernelNode {
            bridge: pods.bridge.clone(),
            bridge_address: pods.pod_cidr.gateway(),
            pod_network: (pods.pod_cidr.addr, pods.pod_cidr.prefix),
            service_network: config.service_cidr,
        }),
    };
    tasks.spawn(async move {
        proxy::run(proxy_client, proxy_config, proxy_stop).await;
        tracing::debug!(task = "service proxy", "stopped");
    });
    let runtime = Arc::new(runtime);
    let _ = api.pod_streams.set(Arc::new(streams::NodeStreams { runtime: runtime.clone() }));
    let kubelet = Arc::new(agent::kubelet::Kubelet::new(client, runtime, images, kubelet_config));
    tasks.spawn(async move {
        agent::kubelet::run(kubelet, shutdown).await;
        tracing::debug!(task = "kubelet", "stopped");
    });
    agent::node::Health { ready: Ok(()), internal_ip: gateway }
}

async fn compactor(store: store::Store, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.compact()).await {
            Ok(Ok(stats)) => {
                tracing::debug!(removed = stats.events_removed, oldest_rv = stats.oldest_rv, "store compacted")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "store compaction failed"),
            Err(e) => tracing::warn!(error = %e, "store compaction task failed"),
        }
    }
}
