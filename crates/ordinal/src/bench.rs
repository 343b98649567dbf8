//! `ordinal bench api`: measured, not asserted. Starts a real `ordinal server` process on a
//! loopback port with a scratch data dir and prints JSON lines: start-to-ready time, idle RSS,
//! create/get/list/watch-delivery latency percentiles and sustained creates per second through
//! HTTPS with the kube client — next to the store's own figures in the same run (the floor the
//! API adds to, `ordinal bench store` alone): this disk's raw fsync rate, the store's durable
//! write latency with one writer and its durable creates per second with 1, 8 and 64 writer
//! threads.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

mod service_proxy;

pub use service_proxy::ProxyBench;

/// Knobs for one run.
#[derive(Debug, Clone)]
pub struct ApiBench {
    /// Sequential operations per latency figure.
    pub samples: usize,
    /// Concurrent clients for the throughput figure.
    pub concurrency: usize,
    pub throughput_window: Duration,
}

struct ServerProcess {
    child: Child,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn emit_latency(metric: &str, samples_ms: Vec<f64>) {
    emit_latency_of("api", metric, samples_ms)
}

fn emit_latency_of(bench: &str, metric: &str, mut samples_ms: Vec<f64>) {
    samples_ms.sort_by(|a, b| a.total_cmp(b));
    let line = json!({
        "bench": bench, "metric": metric, "unit": "ms", "n": samples_ms.len(),
        "p50": round(percentile(&samples_ms, 0.50)), "p99": round(percentile(&samples_ms, 0.99)),
        "max": round(samples_ms.last().copied().unwrap_or(0.0)),
    });
    println!("{line}");
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"key": "value"}})).expect("literal configmap")
}

async fn client_for(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// A client once the server answers `/readyz` (polled: the server is another process).
async fn ready_client(kubeconfig: &Path, started: Instant) -> anyhow::Result<kube::Client> {
    loop {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("server did not become ready within 30s");
        }
        if kubeconfig.exists()
            && let Ok(client) = client_for(kubeconfig).await
        {
            let req = http::Request::get("/readyz").body(Vec::new())?;
            if client.request_text(req).await.is_ok_and(|t| t == "ok") {
                return Ok(client);
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

impl ApiBench {
    pub async fn run(&self) -> anyhow::Result<()> {
        let scratch = tempfile_dir()?;
        let result = self.run_in(&scratch).await;
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    async fn run_in(&self, scratch: &Path) -> anyhow::Result<()> {
        self.store_floor(scratch)?;

        let data_dir = crate::DataDir::create(scratch.join("data"))?;
        let port = free_port()?;
        let exe = std::env::current_exe()?;
        let started = Instant::now();
        let child = Command::new(exe)
            .args(["server", "--data-dir"])
            .arg(data_dir.root())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--no-pods")
            .env("ORDINAL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start ordinal server")?;
        let server = ServerProcess { child };
        let pid = server.child.id();
        let client = ready_client(&data_dir.kubeconfig(), started).await?;
        let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
        println!("{}", json!({"bench": "api", "metric": "start_to_readyz", "unit": "ms", "value": round(ready_ms)}));

        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(rss) = rss_kib(pid) {
            println!(
                "{}",
                json!({"bench": "api", "metric": "idle_rss", "unit": "MiB", "value": round(rss as f64 / 1024.0)})
            );
        }

        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        // create
        let mut create = Vec::with_capacity(self.samples);
        for i in 0..self.samples {
            let t = Instant::now();
            api.create(&PostParams::default(), &cm(&format!("lat-{i}"))).await?;
            create.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        emit_latency("create_latency", create);
        // get
        let mut get = Vec::with_capacity(self.samples);
        for i in 0..self.samples {
            let t = Instant::now();
            api.get(&format!("lat-{i}")).await?;
            get.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        emit_latency("get_latency", get);
        // list (the whole namespace)
        let mut list = Vec::new();
        for _ in 0..self.samples.min(100) {
            let t = Instant::now();
            let l = api.list(&ListParams::default()).await?;
            list.push(t.elapsed().as_secs_f64() * 1000.0);
            if l.items.len() < self.samples {
                bail!("list returned {} items", l.items.len());
            }
        }
        emit_latency(&format!("list_{}_latency", self.samples), list);
        // watch delivery: time from issuing a create to seeing its event
        let rv = api.list(&ListParams::default().limit(1)).await?.metadata.resource_version.unwrap_or_default();
        let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
        let mut delivery = Vec::with_capacity(self.samples);
        for i in 0..self.samples {
            let name = format!("watch-{i}");
            let t = Instant::now();
            api.create(&PostParams::default(), &cm(&name)).await?;
            loop {
                match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await?? {
                    Some(WatchEvent::Added(o)) if o.metadata.name.as_deref() == Some(name.as_str()) => break,
                    Some(_) => continue,
                    None => bail!("watch ended"),
                }
            }
            delivery.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        emit_latency("watch_delivery_latency", delivery);

        // Sustained creates from several concurrent clients.
        let deadline = Instant::now() + self.throughput_window;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..self.concurrency {
            let api = api.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    api.create(&PostParams::default(), &cm(&format!("tput-{worker}-{n}"))).await?;
                    n += 1;
                }
                Ok::<u64, kube::Error>(n)
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await??;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({"bench": "api", "metric": "sustained_creates", "unit": "per_second", "concurrency": self.concurrency,
                   "value": round(total as f64 / secs), "n": total})
        );
        if let Some(rss) = rss_kib(pid) {
            println!(
                "{}",
                json!({"bench": "api", "metric": "rss_after_load", "unit": "MiB", "value": round(rss as f64 / 1024.0),
                                  "objects": total as usize + 2 * self.samples})
            );
        }
        drop(server);
        Ok(())
    }

    /// The baseline: durable writes straight into the store, no HTTP, TLS or JSON pipeline.
    fn store_floor(&self, scratch: &Path) -> anyhow::Result<()> {
        StoreBench { samples: self.samples, window: Duration::from_secs(2) }.run_in(scratch, "api")
    }
}

/// `ordinal bench store`: the store alone, on a scratch file in the temporary directory's file
/// system: the disk's raw fsync rate, single-writer durable write latency, and durable creates
/// per second from 1, 8 and 64 writer threads (each on a fresh database).
#[derive(Debug, Clone)]
pub struct StoreBench {
    /// Sequential writes for the latency figure.
    pub samples: usize,
    /// How long each throughput figure runs.
    pub window: Duration,
}

/// The writer-thread counts of the throughput figures.
const STORE_WRITERS: [usize; 3] = [1, 8, 64];

impl StoreBench {
    pub fn run(&self) -> anyhow::Result<()> {
        let scratch = tempfile_dir()?;
        let result = self.run_in(&scratch, "store");
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    fn run_in(&self, scratch: &Path, bench: &str) -> anyhow::Result<()> {
        self.raw_fsync(scratch, bench)?;
        self.latency(scratch, bench)?;
        for writers in STORE_WRITERS {
            self.throughput(scratch, bench, writers)?;
        }
        Ok(())
    }

    /// What the disk allows: 4 KiB writes into a preallocated file, each followed by
    /// `fdatasync` (a WAL commit is an append and one sync), for the window.
    fn raw_fsync(&self, scratch: &Path, bench: &str) -> anyhow::Result<()> {
        use std::os::unix::fs::FileExt;
        const PAGE: usize = 4096;
        const PAGES: u64 = 256;
        let path = scratch.join("fsync.bin");
        let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
        let page = [0x5au8; PAGE];
        for i in 0..PAGES {
            file.write_all_at(&page, i * PAGE as u64)?;
        }
        file.sync_all()?;
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < self.window {
            file.write_all_at(&page, (n % PAGES) * PAGE as u64)?;
            file.sync_data()?;
            n += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        drop(file);
        std::fs::remove_file(&path)?;
        println!(
            "{}",
            json!({"bench": bench, "metric": "raw_fsync_rate", "unit": "per_second", "value": round(n as f64 / secs),
                   "n": n, "write_bytes": PAGE})
        );
        Ok(())
    }

    /// One writer, one durable create at a time.
    fn latency(&self, scratch: &Path, bench: &str) -> anyhow::Result<()> {
        let path = scratch.join("floor.db");
        let store = store::Store::open(&path, store::StoreConfig::standard())?;
        let mut samples = Vec::with_capacity(self.samples);
        for i in 0..self.samples {
            let t = Instant::now();
            create(&store, &format!("c-{i}"))?;
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        emit_latency_of(bench, "baseline_store_durable_write_latency", samples);
        drop(store);
        remove_db(&path);
        Ok(())
    }

    /// `writers` threads creating distinct objects for the window, on a fresh database.
    fn throughput(&self, scratch: &Path, bench: &str, writers: usize) -> anyhow::Result<()> {
        let path = scratch.join(format!("writers-{writers}.db"));
        let store = store::Store::open(&path, store::StoreConfig::standard())?;
        let started = Instant::now();
        let deadline = started + self.window;
        let total = std::thread::scope(|scope| -> anyhow::Result<u64> {
            let threads: Vec<_> = (0..writers)
                .map(|w| {
                    let store = &store;
                    scope.spawn(move || -> anyhow::Result<u64> {
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            create(store, &format!("w{w}-{n}"))?;
                            n += 1;
                        }
                        Ok(n)
                    })
                })
                .collect();
            let mut total = 0;
            for t in threads {
                total += t.join().map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
            }
            Ok(total)
        })?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({"bench": bench, "metric": "store_durable_creates", "unit": "per_second", "writers": writers,
                   "value": round(total as f64 / secs), "n": total})
        );
        drop(store);
        remove_db(&path);
        Ok(())
    }
}

/// A durable create of a small ConfigMap-like object.
fn create(store: &store::Store, name: &str) -> anyhow::Result<()> {
    let value = json!({"metadata": {"name": name}, "data": {"key": "value"}});
    store.mutate::<store::StoreError>(&format!("/core/configmaps/default/{name}"), |_, _| {
        Ok(store::Mutation::Put(value))
    })?;
    Ok(())
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ordinal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `ordinal bench sts`: controller overhead, with pods made Ready instantly by the kubelet
/// double (no containers are run: this measures the control plane, not the node).
#[derive(Debug, Clone)]
pub struct StsBench {
    pub ordered_replicas: i32,
    pub parallel_replicas: i32,
}

fn sts(name: &str, replicas: i32, policy: &str, image: &str) -> k8s_openapi::api::apps::v1::StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": image}]}}}
    }))
    .expect("literal statefulset")
}

async fn wait_ready(
    api: &Api<k8s_openapi::api::apps::v1::StatefulSet>,
    name: &str,
    n: i32,
    limit: Duration,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    loop {
        let s = api.get(name).await?;
        let st = s.status.unwrap_or_default();
        if st.observed_generation == s.metadata.generation
            && st.ready_replicas == Some(n)
            && st.updated_replicas == Some(n)
            && st.current_revision == st.update_revision
        {
            return Ok(t.elapsed().as_secs_f64() * 1000.0);
        }
        if t.elapsed() > limit {
            bail!("{name} not ready after {limit:?}: {st:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Run `bench` against an in-process server without pods (the kubelet double stands in), then
/// stop it and remove its data.
async fn on_control_plane<F, Fut>(bench: F) -> anyhow::Result<()>
where
    F: FnOnce(kube::Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let scratch = tempfile_dir()?;
    let mut config = crate::ServerConfig::new(crate::DataDir::create(scratch.join("data"))?, "127.0.0.1:0".parse()?);
    config.compact_interval = Duration::from_secs(3600);
    let running = crate::start(config).await?;
    let result = bench(running.client.clone()).await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

impl StsBench {
    pub async fn run(&self) -> anyhow::Result<()> {
        on_control_plane(|client| self.run_on(client)).await
    }

    async fn run_on(&self, client: kube::Client) -> anyhow::Result<()> {
        let _kubelet = crate::kubelet_double::FakeKubelet::start(client.clone(), "default");
        let api: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client, "default");
        let limit = Duration::from_secs(600);
        let emit = |metric: &str, replicas: i32, ms: f64| {
            println!(
                "{}",
                json!({"bench": "sts", "metric": metric, "replicas": replicas, "unit": "ms", "value": round(ms),
                       "per_pod_ms": round(ms / f64::from(replicas.max(1)))})
            );
        };
        let n = self.ordered_replicas;
        api.create(&PostParams::default(), &sts("ordered", n, "OrderedReady", "app:v1")).await?;
        emit("ordered_ready_scale_up", n, wait_ready(&api, "ordered", n, limit).await?);

        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "app:v2"}]}}}});
        api.patch("ordered", &kube::api::PatchParams::default(), &kube::api::Patch::Strategic(patch)).await?;
        emit("rolling_update_max_unavailable_1", n, wait_ready(&api, "ordered", n, limit).await?);

        let patch = json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 10}},
            "template": {"spec": {"containers": [{"name": "c", "image": "app:v3"}]}}}});
        api.patch("ordered", &kube::api::PatchParams::default(), &kube::api::Patch::Strategic(patch)).await?;
        emit("rolling_update_max_unavailable_10", n, wait_ready(&api, "ordered", n, limit).await?);

        let p = self.parallel_replicas;
        api.create(&PostParams::default(), &sts("parallel", p, "Parallel", "app:v1")).await?;
        emit("parallel_scale_up", p, wait_ready(&api, "parallel", p, limit).await?);
        Ok(())
    }
}

/// An `ordinal server` process that runs pods on a bridge and network of its own; `stop` ends
/// it cleanly (`--stop-pods-on-exit`) and makes sure nothing is left either way.
struct PodServer {
    process: ServerProcess,
    native: agent::runtime::NativeConfig,
}

impl PodServer {
    fn spawn(
        data_dir: &crate::DataDir,
        bridge: &str,
        network: [u8; 4],
        prefix: u8,
        dns: Option<std::net::SocketAddr>,
    ) -> anyhow::Result<PodServer> {
        let native = agent::runtime::NativeConfig {
            root: data_dir.pods(),
            helper: std::env::current_exe()?,
            bridge: bridge.into(),
            pod_cidr: agent::runtime::network::Cidr { addr: network.into(), prefix },
            cgroup_parent: format!("ordinal-{bridge}-{}", std::process::id()),
            log_max_bytes: 1 << 20,
            log_max_files: 2,
            masquerade: false,
        };
        let dns = dns.map(|d| d.to_string()).unwrap_or_else(|| "none".into());
        let child = Command::new(std::env::current_exe()?)
            .args(["server", "--data-dir"])
            .arg(data_dir.root())
            .args(["--listen", &format!("127.0.0.1:{}", free_port()?), "--stop-pods-on-exit"])
            .args(["--bridge", &native.bridge, "--cgroup-parent", &native.cgroup_parent])
            .args(["--pod-cidr", &native.pod_cidr.to_string(), "--dns-listen", &dns])
            .env("ORDINAL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start ordinal server")?;
        Ok(PodServer { process: ServerProcess { child }, native })
    }

    fn pid(&self) -> u32 {
        self.process.child.id()
    }

    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.process.child.wait();
        agent::runtime::Native::reset_blocking(&self.native);
    }
}

/// `ordinal bench pods`: real containers. A server process with its own bridge runs `pods` pods
/// of a busybox image (built from Debian's `busybox-static`), all created at once; prints
/// create → Running and → Ready latency percentiles, containers started per second, deletion
/// time, and the server's RSS with no pods and with all of them.
#[derive(Debug, Clone)]
pub struct PodsBench {
    pub pods: usize,
    /// Measure claims instead (`ordinal bench volumes`).
    pub volumes: bool,
}

impl PodsBench {
    pub async fn run(&self) -> anyhow::Result<()> {
        if !nix::unistd::geteuid().is_root() {
            bail!("bench pods runs containers and needs root");
        }
        if !self.volumes && self.pods > 110 {
            bail!("--pods {}: the node takes at most 110 pods (upstream's default maxPods)", self.pods);
        }
        let busybox = Path::new("/bin/busybox");
        if !busybox.is_file() {
            bail!("/bin/busybox is missing: apt-get install busybox-static");
        }
        let scratch = tempfile_dir()?;
        let result = self.run_in(&scratch, busybox).await;
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    async fn run_in(&self, scratch: &Path, busybox: &Path) -> anyhow::Result<()> {
        let data_dir = crate::DataDir::create(scratch.join("data"))?;
        let rootfs = scratch.join("rootfs");
        agent::image::busybox_rootfs(busybox, &rootfs)?;
        let tar = scratch.join("image.tar");
        let config = agent::image::ImageConfig { env: vec!["PATH=/bin".into()], ..Default::default() };
        agent::image::build_from_dir(&rootfs, "localhost/busybox:bench", &config, &tar)?;
        agent::image::ImageStore::open(&data_dir.images())?.import(&tar)?;

        let server = PodServer::spawn(&data_dir, "ordbench0", [10, 254, 0, 0], 22, None)?;
        let result = self.measure(&data_dir, server.pid()).await;
        server.stop();
        result
    }

    async fn measure(&self, data_dir: &crate::DataDir, pid: u32) -> anyhow::Result<()> {
        use k8s_openapi::api::core::v1::{Node, Pod};
        let started = Instant::now();
        let client = ready_client(&data_dir.kubeconfig(), started).await?;
        let nodes: Api<Node> = Api::all(client.clone());
        loop {
            let ready = nodes.list(&ListParams::default()).await?.items.iter().any(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            if ready {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the node did not become Ready: is this machine able to run containers?");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.volumes {
            return self.measure_volumes(client).await;
        }
        let rss_idle = rss_kib(pid).unwrap_or(0);
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

        // Watch first, so every transition is seen.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, bool, bool, Instant)>();
        let watch_api = pods.clone();
        let watching = tokio::spawn(async move {
            use kube::runtime::WatchStreamExt;
            // The watcher retries (with back-off) when its watch ends or fails.
            let mut events = Box::pin(kube::runtime::watcher(watch_api, Default::default()).default_backoff());
            while let Some(event) = events.next().await {
                use kube::runtime::watcher::Event;
                // A watch that is restarted relists: its objects come as `InitApply`.
                let p = match event {
                    Ok(Event::Apply(p) | Event::InitApply(p)) => p,
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("bench pods: watch: {e}");
                        continue;
                    }
                };
                let status = p.status.clone().unwrap_or_default();
                let running = status.phase.as_deref() == Some("Running");
                let ready =
                    status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
                if tx.send((p.metadata.name.unwrap_or_default(), running, ready, Instant::now())).is_err() {
                    return;
                }
            }
        });
        // The cost of confinement, in the same run and under the same load: pods confined as
        // every pod is by default and privileged ones (no capability limit, seccomp, masking or
        // device cgroup), created alternately. A warm-up first (the first pods of a fresh server
        // also pay for unpacking the image and a cold cache), then one at a time (a pod's own
        // start-up), then all at once.
        self.batch(&pods, &mut rx, "warm", (0, 10), 4).await?;
        self.delete_all(&pods).await?;
        // One at a time: each pod is created once the one before it is Ready.
        let mut alone = Batch { samples: Vec::new(), span: 0.0 };
        for i in 0..20 {
            alone.samples.extend(self.batch(&pods, &mut rx, "alone", (i, 1), 1).await?.samples);
        }
        // The node takes 110 pods, as upstream's default `maxPods`.
        self.delete_all(&pods).await?;
        let batch = self.batch(&pods, &mut rx, "bench", (0, self.pods), 16).await?;
        for (confinement, privileged) in [("default", false), ("privileged", true)] {
            emit_pods("create_to_running_alone", confinement, alone.of(privileged, |s| s.running));
            emit_pods("create_to_running", confinement, batch.of(privileged, |s| s.running));
            emit_pods("create_to_ready", confinement, batch.of(privileged, |s| s.ready));
        }
        println!(
            "{}",
            json!({"bench": "pods", "metric": "containers_started_per_second", "unit": "1/s", "n": self.pods,
                   "value": round(self.pods as f64 / batch.span.max(1e-9)), "span_ms": round(batch.span * 1000.0)})
        );
        let loaded = rss_kib(pid).unwrap_or(0);
        println!("{}", json!({"bench": "pods", "metric": "server_rss", "unit": "KiB", "pods": 0, "value": rss_idle}));
        println!(
            "{}",
            json!({"bench": "pods", "metric": "server_rss", "unit": "KiB", "pods": self.pods, "value": loaded})
        );
        let (n, took) = self.delete_all(&pods).await?;
        println!(
            "{}",
            json!({"bench": "pods", "metric": "delete_all", "unit": "ms", "n": n, "value": round(took * 1000.0)})
        );
        watching.abort();
        Ok(())
    }

    /// Create `n` pods named `<prefix>-<i>` (the odd ones privileged), `in_flight` at a time,
    /// and wait until every one is Ready; their create → Running and → Ready latencies, and
    /// the span until all ran.
    async fn batch(
        &self,
        pods: &Api<k8s_openapi::api::core::v1::Pod>,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, bool, bool, Instant)>,
        prefix: &str,
        (first, n): (usize, usize),
        in_flight: usize,
    ) -> anyhow::Result<Batch> {
        use k8s_openapi::api::core::v1::Pod;
        let mut created: std::collections::BTreeMap<String, Instant> = Default::default();
        let begin = Instant::now();
        let mut creating = futures::stream::iter((first..first + n).map(|i| {
            let pods = pods.clone();
            let privileged = i % 2 == 1;
            async move {
                let name = format!("{prefix}-{i}");
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "localhost/busybox:bench",
                        "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                        "securityContext": {"privileged": privileged},
                        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}
                }))?;
                let at = Instant::now();
                pods.create(&PostParams::default(), &pod).await?;
                anyhow::Ok((name, at))
            }
        }))
        .buffer_unordered(in_flight);
        while let Some(r) = creating.next().await {
            let (name, at) = r?;
            created.insert(name, at);
        }
        let mut running: std::collections::BTreeMap<String, Instant> = Default::default();
        let mut ready: std::collections::BTreeMap<String, Instant> = Default::default();
        let deadline = Instant::now() + Duration::from_secs(300);
        while ready.len() < n {
            let Ok(Some((name, is_running, is_ready, at))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await
            else {
                bail!("only {} of {n} pods Ready within 300s ({} Running)", ready.len(), running.len());
            };
            if !created.contains_key(&name) {
                continue;
            }
            if is_running {
                running.entry(name.clone()).or_insert(at);
            }
            if is_ready {
                ready.entry(name).or_insert(at);
            }
        }
        let all_running = running.values().max().copied().unwrap_or(begin);
        let samples = created
            .iter()
            .filter_map(|(name, c)| {
                let ms = |at: &Instant| at.duration_since(*c).as_secs_f64() * 1000.0;
                let privileged = name.rsplit('-').next()?.parse::<usize>().ok()? % 2 == 1;
                Some(Sample { privileged, running: ms(running.get(name)?), ready: ms(ready.get(name)?) })
            })
            .collect();
        Ok(Batch { samples, span: all_running.duration_since(begin).as_secs_f64() })
    }

    /// Delete every pod (graceful: SIGTERM, trapped) until the API has none left; how many
    /// and the seconds it took.
    async fn delete_all(&self, pods: &Api<k8s_openapi::api::core::v1::Pod>) -> anyhow::Result<(usize, f64)> {
        let begin = Instant::now();
        let n = pods.list(&ListParams::default()).await?.items.len();
        pods.delete_collection(&kube::api::DeleteParams::default(), &ListParams::default()).await?;
        loop {
            if pods.list(&ListParams::default()).await?.items.is_empty() {
                break;
            }
            if begin.elapsed() > Duration::from_secs(300) {
                bail!("pods not deleted within 300s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok((n, begin.elapsed().as_secs_f64()))
    }
}

/// One pod's latencies, in milliseconds.
struct Sample {
    privileged: bool,
    running: f64,
    ready: f64,
}

/// What one batch of pods measured.
struct Batch {
    samples: Vec<Sample>,
    /// Seconds from the first create until every pod ran.
    span: f64,
}

impl Batch {
    /// One latency of the privileged (or default) pods.
    fn of(&self, privileged: bool, pick: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.samples.iter().filter(|s| s.privileged == privileged).map(pick).collect()
    }
}

fn emit_pods(metric: &str, confinement: &str, mut samples_ms: Vec<f64>) {
    samples_ms.sort_by(|a, b| a.total_cmp(b));
    let line = json!({
        "bench": "pods", "metric": metric, "confinement": confinement, "unit": "ms", "n": samples_ms.len(),
        "p50": round(percentile(&samples_ms, 0.50)), "p99": round(percentile(&samples_ms, 0.99)),
        "max": round(samples_ms.last().copied().unwrap_or(0.0)),
    });
    println!("{line}");
}

impl PodsBench {
    /// `ordinal bench volumes`: claims of an Immediate local class, create → Bound; then pods
    /// each with a claim of the default (WaitForFirstConsumer) class, create → Running.
    async fn measure_volumes(&self, client: kube::Client) -> anyhow::Result<()> {
        use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
        use k8s_openapi::api::storage::v1::StorageClass;
        let classes: Api<StorageClass> = Api::all(client.clone());
        let class: StorageClass = serde_json::from_value(json!({
            "metadata": {"name": "bench-immediate"}, "provisioner": "ordinal.dev/local-path",
            "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}))?;
        classes.create(&PostParams::default(), &class).await?;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

        // Watch claims and pods for the moments they become Bound / Running.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
        let claim_tx = tx.clone();
        let watch_claims = claims.clone();
        let claim_watch = tokio::spawn(async move {
            let mut events = Box::pin(kube::runtime::watcher(watch_claims, Default::default()));
            while let Some(Ok(event)) = events.next().await {
                if let kube::runtime::watcher::Event::Apply(c) = event
                    && c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                {
                    let _ = claim_tx.send((format!("claim/{}", c.metadata.name.unwrap_or_default()), Instant::now()));
                }
            }
        });
        let watch_pods = pods.clone();
        let pod_watch = tokio::spawn(async move {
            let mut events = Box::pin(kube::runtime::watcher(watch_pods, Default::default()));
            while let Some(Ok(event)) = events.next().await {
                if let kube::runtime::watcher::Event::Apply(p) = event
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                {
                    let _ = tx.send((format!("pod/{}", p.metadata.name.unwrap_or_default()), Instant::now()));
                }
            }
        });
        let claim = |name: String, class: Option<&str>| -> anyhow::Result<PersistentVolumeClaim> {
            let mut spec = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
            if let Some(c) = class {
                spec["storageClassName"] = json!(c);
            }
            Ok(serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))?)
        };

        let mut created: std::collections::BTreeMap<String, Instant> = Default::default();
        let mut creating = futures::stream::iter((0..self.pods).map(|i| {
            let claims = claims.clone();
            let c = claim(format!("bound-{i}"), Some("bench-immediate"));
            async move {
                let c = c?;
                let at = Instant::now();
                claims.create(&PostParams::default(), &c).await?;
                anyhow::Ok((format!("claim/bound-{i}"), at))
            }
        }))
        .buffer_unordered(16);
        while let Some(r) = creating.next().await {
            let (k, at) = r?;
            created.insert(k, at);
        }
        drop(creating);
        let mut creating = futures::stream::iter((0..self.pods).map(|i| {
            let (claims, pods) = (claims.clone(), pods.clone());
            let c = claim(format!("data-{i}"), None);
            async move {
                let c = c?;
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("user-{i}")},
                    "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "localhost/busybox:bench",
                        "command": ["sh", "-c", "while true; do sleep 1; done"],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{i}")}}]}
                }))?;
                let at = Instant::now();
                claims.create(&PostParams::default(), &c).await?;
                pods.create(&PostParams::default(), &pod).await?;
                anyhow::Ok((format!("pod/user-{i}"), at))
            }
        }))
        .buffer_unordered(16);
        while let Some(r) = creating.next().await {
            let (k, at) = r?;
            created.insert(k, at);
        }
        let mut reached: std::collections::BTreeMap<String, Instant> = Default::default();
        let deadline = Instant::now() + Duration::from_secs(300);
        let wanted = |reached: &std::collections::BTreeMap<String, Instant>| {
            created
                .keys()
                .filter(|k| k.starts_with("claim/bound-") || k.starts_with("pod/"))
                .all(|k| reached.contains_key(k))
        };
        while !wanted(&reached) {
            let Ok(Some((key, at))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await else {
                bail!("not all claims bound and pods running within 300s ({} seen)", reached.len());
            };
            reached.entry(key).or_insert(at);
        }
        claim_watch.abort();
        pod_watch.abort();
        let latencies = |prefix: &str| -> Vec<f64> {
            created
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .filter_map(|(k, c)| reached.get(k).map(|r| r.duration_since(*c).as_secs_f64() * 1000.0))
                .collect()
        };
        emit_volumes("claim_create_to_bound", latencies("claim/bound-"));
        emit_volumes("pod_with_claim_create_to_running", latencies("pod/"));
        Ok(())
    }
}

fn emit_volumes(metric: &str, mut samples_ms: Vec<f64>) {
    samples_ms.sort_by(|a, b| a.total_cmp(b));
    let line = json!({
        "bench": "volumes", "metric": metric, "unit": "ms", "n": samples_ms.len(),
        "p50": round(percentile(&samples_ms, 0.50)), "p99": round(percentile(&samples_ms, 0.99)),
        "max": round(samples_ms.last().copied().unwrap_or(0.0)),
    });
    println!("{line}");
}

/// `ordinal bench dns`: a server process with its node agent (so the cluster DNS runs); UDP
/// queries for a Service's name from `concurrency` clients for `seconds` (answers per second,
/// latency percentiles), next to NXDOMAIN answers for a missing name in the same run; the same
/// name asked from a pod's address, and its short form answered through the pod's search path
/// (autopath: a CNAME and the record); and DNS programming latency: Service created → its name
/// answers.
#[derive(Debug, Clone)]
pub struct DnsBench {
    pub seconds: u64,
    pub concurrency: usize,
}

fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Send one query and wait for its answer: (rcode, answer count).
async fn ask(socket: &tokio::net::UdpSocket, id: u16, name: &str) -> anyhow::Result<(u8, u16)> {
    socket.send(&dns_query(id, name)).await?;
    let mut buf = [0u8; 1500];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await??;
        if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            return Ok((buf[3] & 0x0f, u16::from_be_bytes([buf[6], buf[7]])));
        }
    }
}

impl DnsBench {
    pub async fn run(&self) -> anyhow::Result<()> {
        if !nix::unistd::geteuid().is_root() {
            bail!("bench dns runs the node agent (for its DNS) and needs root");
        }
        let scratch = tempfile_dir()?;
        let data_dir = crate::DataDir::create(scratch.join("data"))?;
        let dns_port = free_port()?;
        let dns = std::net::SocketAddr::from(([127, 0, 0, 1], dns_port));
        let server = PodServer::spawn(&data_dir, "ordbenchd0", [10, 254, 8, 0], 24, Some(dns))?;
        let result = self.measure(&data_dir, dns_port, server.process.child.id()).await;
        server.stop();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    async fn measure(&self, data_dir: &crate::DataDir, dns_port: u16, server_pid: u32) -> anyhow::Result<()> {
        use k8s_openapi::api::core::v1::Service;
        let client = ready_client(&data_dir.kubeconfig(), Instant::now()).await?;
        let dns: std::net::SocketAddr = ([127, 0, 0, 1], dns_port).into();
        let probe = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        probe.connect(dns).await?;
        // The DNS starts with the node agent: wait until it answers.
        let started = Instant::now();
        while ask(&probe, 1, "kubernetes.default.svc.cluster.local").await.map(|(_, n)| n).unwrap_or(0) == 0 {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("cluster DNS did not answer within 30s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Programming latency: a new Service's name answers.
        let services: Api<Service> = Api::namespaced(client, "default");
        let mut programming = Vec::new();
        for i in 0..20 {
            let name = format!("prog-{i}");
            let svc: Service = serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"ports": [{"port": 80}], "selector": {"app": name}}}))?;
            let at = Instant::now();
            services.create(&PostParams::default(), &svc).await?;
            let fqdn = format!("{name}.default.svc.cluster.local");
            while ask(&probe, 2, &fqdn).await.map(|(_, n)| n).unwrap_or(0) == 0 {
                if at.elapsed() > Duration::from_secs(10) {
                    bail!("{fqdn} did not answer within 10s");
                }
            }
            programming.push(at.elapsed().as_secs_f64() * 1000.0);
        }
        emit_dns("service_created_to_name_answers", programming);
        // A pod asking from 127.0.0.2: bound to a node that does not exist (so no kubelet runs
        // it), its address written as a kubelet would.
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(services.into_client(), "default");
        let pod = serde_json::from_value(json!({"metadata": {"name": "dns-asker"},
            "spec": {"nodeName": "bench-elsewhere", "containers": [{"name": "c", "image": "busybox"}]}}))?;
        pods.create(&PostParams::default(), &pod).await?;
        pods.patch_status(
            "dns-asker",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"podIP": "127.0.0.2", "podIPs": [{"ip": "127.0.0.2"}]}})),
        )
        .await?;
        let pod_probe = tokio::net::UdpSocket::bind("127.0.0.2:0").await?;
        pod_probe.connect(dns).await?;
        let started = Instant::now();
        while ask(&pod_probe, 3, "prog-0").await.map(|(_, n)| n).unwrap_or(0) != 2 {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("autopath did not answer prog-0 from the pod within 10s");
            }
        }
        self.against_knot(&pods.into_client(), dns_port, server_pid).await?;
        const HOST: [u8; 4] = [127, 0, 0, 1];
        const POD: [u8; 4] = [127, 0, 0, 2];
        for (metric, name, src) in [
            ("cluster_name", "prog-0.default.svc.cluster.local", HOST),
            ("baseline_nxdomain", "missing.default.svc.cluster.local", HOST),
            ("cluster_name_from_pod", "prog-0.default.svc.cluster.local", POD),
            ("autopath_short_name_from_pod", "prog-0", POD),
        ] {
            let deadline = Instant::now() + Duration::from_secs(self.seconds);
            let mut workers = Vec::new();
            for w in 0..self.concurrency {
                workers.push(tokio::spawn(async move {
                    let socket = tokio::net::UdpSocket::bind((std::net::Ipv4Addr::from(src), 0)).await?;
                    socket.connect(dns).await?;
                    let mut latencies = Vec::new();
                    let mut id = (w as u16) << 12;
                    while Instant::now() < deadline {
                        id = id.wrapping_add(1);
                        let t = Instant::now();
                        ask(&socket, id, name).await?;
                        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    anyhow::Ok(latencies)
                }));
            }
            let mut all = Vec::new();
            for w in workers {
                all.extend(w.await??);
            }
            let qps = all.len() as f64 / self.seconds as f64;
            let mut sorted = all.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{}",
                json!({"bench": "dns", "metric": metric, "client": "built-in", "unit": "ms", "concurrency": self.concurrency,
                       "queries_per_second": round(qps), "n": sorted.len(),
                       "p50": round(percentile(&sorted, 0.5)), "p99": round(percentile(&sorted, 0.99))})
            );
        }
        Ok(())
    }
}

/// Seed 001's names: a headless `nginx` Service with three ready replicas `web-0..2`, as the
/// cluster DNS serves them and as a static zone for knot.
const SEED_NAMES: [(&str, &str); 4] = [
    ("nginx.default.svc.cluster.local", "10.244.0.2"),
    ("web-0.nginx.default.svc.cluster.local", "10.244.0.2"),
    ("web-1.nginx.default.svc.cluster.local", "10.244.0.3"),
    ("web-2.nginx.default.svc.cluster.local", "10.244.0.4"),
];

/// What `dnsperf` reported.
struct DnsPerf {
    qps: f64,
    avg_latency_ms: f64,
    completed: u64,
    lost: u64,
}

/// CPU time (user + system) of a process so far, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

impl DnsBench {
    /// `dnsperf -c <concurrency> -l <seconds>` against the server's DNS and against knot serving
    /// the same names from a static zone, in the same run (skipped, with a line saying so, when
    /// either program is missing).
    async fn against_knot(&self, client: &kube::Client, dns_port: u16, server_pid: u32) -> anyhow::Result<()> {
        let (Some(dnsperf), Some(knotd)) = (which("dnsperf"), which("knotd")) else {
            println!(
                "{}",
                json!({"bench": "dns", "metric": "dnsperf", "skipped": "needs dnsperf and knotd (apt-get install dnsperf knot)"})
            );
            return Ok(());
        };
        let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "default");
        let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> = Api::namespaced(client.clone(), "default");
        services
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "nginx"},
                "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}}))?,
            )
            .await?;
        let endpoints: Vec<_> = SEED_NAMES[1..]
            .iter()
            .map(|(name, ip)| json!({"addresses": [ip], "hostname": name.split('.').next(), "conditions": {"ready": true}}))
            .collect();
        slices
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "nginx-seed",
                "labels": {"kubernetes.io/service-name": "nginx"}}, "addressType": "IPv4",
                "endpoints": endpoints, "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]}))?,
            )
            .await?;
        let ordinal: std::net::SocketAddr = ([127, 0, 0, 1], dns_port).into();
        wait_for_name(ordinal, SEED_NAMES[3].0).await?;

        let scratch = tempfile_dir()?;
        let queries = scratch.join("queries");
        std::fs::write(&queries, SEED_NAMES.iter().map(|(n, _)| format!("{n} A\n")).collect::<String>())?;
        let knot_port = free_port()?;
        let mut zone = String::from(
            "$ORIGIN cluster.local.\n$TTL 5\n@ SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5\n\
             @ NS ns.dns.cluster.local.\nns.dns A 10.96.0.10\n",
        );
        for (name, ip) in SEED_NAMES {
            zone.push_str(&format!("{name}. A {ip}\n"));
        }
        std::fs::write(scratch.join("cluster.local.zone"), zone)?;
        let dir = scratch.display();
        let config = [
            "server:".to_string(),
            format!("  rundir: \"{dir}\""),
            format!("  listen: 127.0.0.1@{knot_port}"),
            "database:".into(),
            format!("  storage: \"{dir}\""),
            "log:".into(),
            "  - target: stderr".into(),
            "    any: error".into(),
            "zone:".into(),
            "  - domain: cluster.local".into(),
            format!("    storage: \"{dir}\""),
            "    file: cluster.local.zone".into(),
        ];
        std::fs::write(scratch.join("knot.conf"), config.join("\n") + "\n")?;
        let knot = ServerProcess {
            child: Command::new(&knotd).arg("-c").arg(scratch.join("knot.conf")).stdout(Stdio::null()).spawn()?,
        };
        let knot_addr: std::net::SocketAddr = ([127, 0, 0, 1], knot_port).into();
        let result = async {
            wait_for_name(knot_addr, SEED_NAMES[3].0).await?;
            let mut qps = Vec::new();
            for (server, addr, pid) in [("ordinal", ordinal, server_pid), ("knot", knot_addr, knot.child.id())] {
                let cpu_before = cpu_seconds(pid);
                let perf = run_dnsperf(&dnsperf, addr, &queries, self.concurrency, self.seconds).await?;
                let cpu = cpu_seconds(pid).zip(cpu_before).map(|(after, before)| after - before);
                let cpu_us = cpu.map(|c| round(c * 1e6 / perf.completed.max(1) as f64));
                println!(
                    "{}",
                    json!({"bench": "dns", "metric": "dnsperf", "server": server, "client": "dnsperf",
                           "clients": self.concurrency, "seconds": self.seconds, "names": SEED_NAMES.len(),
                           "queries_per_second": round(perf.qps), "avg_latency_ms": round(perf.avg_latency_ms),
                           "completed": perf.completed, "lost": perf.lost, "server_cpu_us_per_query": cpu_us})
                );
                qps.push((perf.qps, perf.avg_latency_ms));
            }
            if let [(ours, our_latency), (knots, knot_latency)] = qps[..] {
                println!(
                    "{}",
                    json!({"bench": "dns", "metric": "dnsperf_ordinal_over_knot",
                           "qps_ratio": round(ours / knots.max(1.0)),
                           "latency_ratio": round(our_latency / knot_latency.max(1e-9))})
                );
            }
            anyhow::Ok(())
        }
        .await;
        drop(knot);
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Wait until `server` answers `name` with a record (at most 10 s).
async fn wait_for_name(server: std::net::SocketAddr, name: &str) -> anyhow::Result<()> {
    let probe = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    probe.connect(server).await?;
    let started = Instant::now();
    while ask(&probe, 9, name).await.map(|(_, n)| n).unwrap_or(0) == 0 {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("{server} did not answer {name} within 10s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn run_dnsperf(
    dnsperf: &Path,
    server: std::net::SocketAddr,
    queries: &Path,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<DnsPerf> {
    let mut command = Command::new(dnsperf);
    command.args(["-s", &server.ip().to_string(), "-p", &server.port().to_string()]).arg("-d").arg(queries).args([
        "-c",
        &clients.to_string(),
        "-l",
        &seconds.to_string(),
    ]);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("dnsperf failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let (Some(qps), Some(latency), Some(completed), Some(lost)) = (
        field("Queries per second:"),
        field("Average Latency (s):"),
        field("Queries completed:"),
        field("Queries lost:"),
    ) else {
        bail!("unexpected dnsperf output: {text}");
    };
    Ok(DnsPerf { qps, avg_latency_ms: latency * 1000.0, completed: completed as u64, lost: lost as u64 })
}

fn emit_dns(metric: &str, mut samples_ms: Vec<f64>) {
    samples_ms.sort_by(|a, b| a.total_cmp(b));
    let line = json!({
        "bench": "dns", "metric": metric, "unit": "ms", "n": samples_ms.len(),
        "p50": round(percentile(&samples_ms, 0.50)), "p99": round(percentile(&samples_ms, 0.99)),
        "max": round(samples_ms.last().copied().unwrap_or(0.0)),
    });
    println!("{line}");
}

/// `ordinal bench deploy`: a Deployment's time to Available and to finish a rolling update,
/// with the kubelet double marking pods Running and Ready at once (the control plane alone).
pub struct DeployBench {
    pub replicas: i32,
}

async fn wait_deployment(
    api: &Api<k8s_openapi::api::apps::v1::Deployment>,
    n: i32,
    limit: Duration,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    loop {
        let d = api.get("bench").await?;
        let st = d.status.unwrap_or_default();
        let done = st.observed_generation == d.metadata.generation
            && st.updated_replicas == Some(n)
            && st.replicas == Some(n)
            && st.available_replicas == Some(n);
        if done {
            return Ok(t.elapsed().as_secs_f64() * 1000.0);
        }
        if t.elapsed() > limit {
            bail!("deployment not available after {limit:?}: {st:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl DeployBench {
    pub async fn run(&self) -> anyhow::Result<()> {
        on_control_plane(|client| self.run_on(client)).await
    }

    async fn run_on(&self, client: kube::Client) -> anyhow::Result<()> {
        let _kubelet = crate::kubelet_double::FakeKubelet::start(client.clone(), "default");
        let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client, "default");
        let n = self.replicas;
        let limit = Duration::from_secs(600);
        let emit = |metric: &str, ms: f64| {
            println!(
                "{}",
                json!({"bench": "deploy", "metric": metric, "replicas": n, "unit": "ms", "value": round(ms)})
            );
        };
        let deployment: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
            "metadata": {"name": "bench"},
            "spec": {"replicas": n, "selector": {"matchLabels": {"app": "bench"}},
                     "template": {"metadata": {"labels": {"app": "bench"}}, "spec": {"containers": [{"name": "c", "image": "app:v1"}]}}}
        }))?;
        api.create(&PostParams::default(), &deployment).await?;
        emit("create_to_available", wait_deployment(&api, n, limit).await?);
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "app:v2"}]}}}});
        api.patch("bench", &kube::api::PatchParams::default(), &kube::api::Patch::Strategic(patch)).await?;
        emit("rolling_update_25_percent_surge", wait_deployment(&api, n, limit).await?);
        Ok(())
    }
}
