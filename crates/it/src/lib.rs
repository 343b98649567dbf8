//! Test harness: a whole Ordinal server in process on a loopback port with a temporary data
//! dir, kube clients over HTTPS (with the generated kubeconfig) and in process, a real-kubectl
//! runner with its own HOME and KUBECONFIG, and condition waits with deadlines (no sleeps).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod fake_runtime;
pub mod process;

/// A server for one test; stopped (and its directory removed) when dropped via `stop`.
pub struct TestServer {
    pub running: ordinal::Running,
    pub dir: tempfile::TempDir,
    /// Set when the server runs real pods: removes every trace of them, even if the test fails.
    pods: Option<PodsGuard>,
}

/// Cleans away containers, namespaces, veths, cgroups and the bridge of a pod-running server.
struct PodsGuard {
    settings: ordinal::PodSettings,
    native: agent::runtime::NativeConfig,
    service_cidr: (std::net::Ipv4Addr, u8),
}

impl Drop for PodsGuard {
    fn drop(&mut self) {
        agent::runtime::Native::reset_blocking(&self.native);
        // The service proxy removes its route and its nftables table when it stops; this
        // covers a test that panicked.
        let cidr = format!("{}/{}", self.service_cidr.0, self.service_cidr.1);
        let _ = Command::new("ip").args(["route", "del", "local", &cidr, "dev", "lo", "table", "local"]).output();
        remove_service_table(&self.native.bridge);
    }
}

/// Delete the service proxy's nftables table for `bridge` (what a server killed, or a test
/// that panicked, leaves).
pub fn remove_service_table(bridge: &str) {
    let table = logic::proxy::nft::table_name(bridge);
    let _ = Command::new("nft").args(["delete", "table", "ip", &table]).stderr(Stdio::null()).output();
}

/// The service proxy's nftables table for `bridge` as `nft list` prints it, if it exists.
pub fn service_table(bridge: &str) -> Option<String> {
    let table = logic::proxy::nft::table_name(bridge);
    let out = Command::new("nft").args(["list", "table", "ip", &table]).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether the host still has the local route that makes a server's virtual IPs answer.
pub fn service_route_present(cidr: (std::net::Ipv4Addr, u8)) -> bool {
    let out = Command::new("ip").args(["route", "show", "table", "local", "type", "local"]).output();
    let wanted = format!("{}/{} ", cidr.0, cidr.1);
    out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with(&wanted)))
}

/// The test image: Debian's static busybox with an applet link per command.
pub const TEST_IMAGE: &str = "localhost/busybox:test";

/// The `ordinal` binary beside this test binary (the node agent re-executes it as container
/// shim); `cargo test --workspace` builds it.
pub fn ordinal_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("test binary location")?;
    let bin = dir.join("ordinal");
    if !bin.is_file() {
        bail!("{} is missing: build it first (cargo build -p ordinal, or run cargo test --workspace)", bin.display());
    }
    Ok(bin)
}

/// Pod settings unique to this test server: its own bridge, /24, cgroup parent, and a /24 of
/// service addresses (so parallel servers' virtual IPs never meet).
fn pod_settings() -> anyhow::Result<(ordinal::PodSettings, (std::net::Ipv4Addr, u8))> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    // Offset by the process id, so test processes running side by side (two checkouts) rarely
    // pick the same bridge; a clash is refused by the server, never shared.
    let n = (NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + std::process::id() * 37) % 200 + 10;
    let mut settings = ordinal::PodSettings::standard()?;
    settings.helper = ordinal_binary()?;
    settings.pod_cidr =
        agent::runtime::network::Cidr { addr: std::net::Ipv4Addr::new(10, 252, n as u8, 0), prefix: 24 };
    settings.bridge = format!("ordit{n}");
    settings.cgroup_parent = format!("ordinal-it-{}-{n}", std::process::id());
    settings.stop_pods_on_exit = true;
    // Each test server answers DNS on its own bridge address only (no shared host port).
    settings.dns_listen = None;
    Ok((settings, (std::net::Ipv4Addr::new(10, 253, n as u8, 0), 24)))
}

/// Build the test image from `/bin/busybox` into the data dir's image store.
pub fn import_test_image(data_dir: &ordinal::DataDir) -> anyhow::Result<()> {
    import_test_image_as(data_dir, TEST_IMAGE)
}

/// The test image under another name (for rollouts from one image to another).
pub fn import_test_image_as(data_dir: &ordinal::DataDir, name: &str) -> anyhow::Result<()> {
    import_test_image_with(data_dir, name, &[])
}

/// The test image with more files (host path, path in the image), e.g. a client binary.
pub fn import_test_image_with(data_dir: &ordinal::DataDir, name: &str, extra: &[(&Path, &str)]) -> anyhow::Result<()> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox is missing: the pod tests need Debian's busybox-static (apt-get install busybox-static)");
    }
    let scratch = tempfile::tempdir()?;
    let rootfs = scratch.path().join("rootfs");
    agent::image::busybox_rootfs(busybox, &rootfs)?;
    for (from, to) in extra {
        let to = rootfs.join(to.trim_start_matches('/'));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, &to).with_context(|| format!("copy {} into the image", from.display()))?;
    }
    let tar = scratch.path().join("image.tar");
    let config =
        agent::image::ImageConfig { cmd: vec!["sh".into()], env: vec!["PATH=/bin".into()], ..Default::default() };
    agent::image::build_from_dir(&rootfs, name, &config, &tar)?;
    agent::image::ImageStore::open(&data_dir.images())?.import(&tar)?;
    Ok(())
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("ORDINAL_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

impl TestServer {
    pub async fn start() -> anyhow::Result<TestServer> {
        TestServer::start_with(|_| {}).await
    }

    /// The API alone, without controllers: for tests of the API's own semantics on kinds a
    /// controller would otherwise write to.
    pub async fn api_only() -> anyhow::Result<TestServer> {
        TestServer::start_with(|c| c.controllers = false).await
    }

    /// A server (without pods) after `adjust` has changed its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut ordinal::ServerConfig)) -> anyhow::Result<TestServer> {
        init_tracing();
        let dir = tempfile::tempdir()?;
        let mut config = Self::config(dir.path())?;
        adjust(&mut config);
        let controllers = config.controllers;
        let running = ordinal::start(config).await?;
        let server = TestServer { running, dir, pods: None };
        if controllers {
            server.namespace_defaults("default").await?;
        }
        Ok(server)
    }

    /// Wait for what the controllers give every namespace (its `default` service account and
    /// `kube-root-ca.crt`), so tests that count objects start from a settled namespace.
    pub async fn namespace_defaults(&self, namespace: &str) -> anyhow::Result<()> {
        use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
        let cms: kube::Api<ConfigMap> = kube::Api::namespaced(self.client(), namespace);
        let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(self.client(), namespace);
        eventually("the namespace's defaults", Duration::from_secs(10), || async {
            let ca = cms.get_opt("kube-root-ca.crt").await.ok().flatten();
            let account = accounts.get_opt("default").await.ok().flatten();
            ca.zip(account)
        })
        .await?;
        Ok(())
    }

    /// A server whose node runs real pods (as root), with the test image imported.
    pub async fn with_pods() -> anyhow::Result<TestServer> {
        TestServer::with_pods_and(|_| Ok(())).await
    }

    /// As `with_pods`, after `adjust` has changed its configuration (which controllers run).
    pub async fn with_pods_configured(adjust: impl FnOnce(&mut ordinal::ServerConfig)) -> anyhow::Result<TestServer> {
        TestServer::with_pods_set_up(|_| Ok(()), adjust).await
    }

    /// As `with_pods`, after `prepare` has seen the data dir (to write settings files).
    pub async fn with_pods_and(
        prepare: impl FnOnce(&ordinal::DataDir) -> std::io::Result<()>,
    ) -> anyhow::Result<TestServer> {
        TestServer::with_pods_set_up(prepare, |_| {}).await
    }

    async fn with_pods_set_up(
        prepare: impl FnOnce(&ordinal::DataDir) -> std::io::Result<()>,
        adjust: impl FnOnce(&mut ordinal::ServerConfig),
    ) -> anyhow::Result<TestServer> {
        init_tracing();
        if !nix::unistd::geteuid().is_root() {
            bail!("the pod tests run containers and need root");
        }
        let dir = tempfile::tempdir()?;
        let mut config = Self::config(dir.path())?;
        import_test_image(&config.data_dir)?;
        prepare(&config.data_dir)?;
        let (settings, service_cidr) = pod_settings()?;
        let guard =
            PodsGuard { native: settings.native_config(&config.data_dir), settings: settings.clone(), service_cidr };
        config.pods = Some(settings);
        config.service_cidr = service_cidr;
        adjust(&mut config);
        let running = ordinal::start(config).await?;
        let server = TestServer { running, dir, pods: Some(guard) };
        server.namespace_defaults("default").await?;
        Ok(server)
    }

    fn config(dir: &Path) -> anyhow::Result<ordinal::ServerConfig> {
        let data_dir = ordinal::DataDir::create(dir.join("data"))?;
        let mut config = ordinal::ServerConfig::new(data_dir, "127.0.0.1:0".parse()?);
        config.watch_history = 1000;
        config.bookmark_interval = Duration::from_millis(200);
        Ok(config)
    }

    /// Stop and start again on the same data dir (a new port). Pods keep running across it.
    pub async fn restart(self) -> anyhow::Result<TestServer> {
        let TestServer { running, dir, pods } = self;
        let mut config = Self::config(dir.path())?;
        if let Some(guard) = &pods {
            // Stop without stopping pods, as a crash would; the guard still cleans up at the end.
            running.stop_keeping_pods().await;
            config.pods = Some(guard.settings.clone());
            config.service_cidr = guard.service_cidr;
        } else {
            running.stop().await;
        }
        let running = ordinal::start(config).await?;
        Ok(TestServer { running, dir, pods })
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }

    /// End a pod test: check that nothing of its pods is left, then stop (either way).
    pub async fn finish(self) -> anyhow::Result<()> {
        let clean = self.assert_nothing_left_behind().await;
        self.stop().await;
        clean
    }

    /// How this server runs pods, when it does.
    pub fn pod_settings(&self) -> Option<ordinal::PodSettings> {
        self.pods.as_ref().map(|g| g.settings.clone())
    }

    /// The pods' bridge, when this server runs pods.
    pub fn pod_bridge(&self) -> Option<String> {
        self.pods.as_ref().map(|g| g.native.bridge.clone())
    }

    /// The Service CIDR of a pod-running server.
    pub fn service_cidr(&self) -> Option<(std::net::Ipv4Addr, u8)> {
        self.pods.as_ref().map(|g| g.service_cidr)
    }

    /// The server's data directory.
    pub fn running_data_dir(&self) -> &ordinal::DataDir {
        &self.running.data_dir
    }

    /// The in-process client.
    pub fn client(&self) -> kube::Client {
        self.running.client.clone()
    }

    /// A client over HTTPS using the kubeconfig the server wrote.
    pub async fn https_client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.running.kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    pub fn kubectl(&self, version: &str) -> anyhow::Result<Kubectl> {
        Kubectl::new(version, &self.running.kubeconfig, self.dir.path())
    }

    /// Once no pods are left: no pod directories, no veths on the bridge, no pod cgroups.
    pub async fn assert_nothing_left_behind(&self) -> anyhow::Result<()> {
        let Some(guard) = &self.pods else { return Ok(()) };
        let native = guard.native.clone();
        eventually("pod traces removed", Duration::from_secs(20), || {
            let native = native.clone();
            async move { leftovers(&native).is_empty().then_some(()) }
        })
        .await
        .with_context(|| format!("left behind: {:?}", leftovers(&guard.native)))
    }
}

/// What a pod-running server still holds for pods: pod directories, ports on its bridge,
/// cgroups under its parent, mounts under its pods directory (kept namespaces, memory-backed
/// volumes) and container shims.
pub fn leftovers(native: &agent::runtime::NativeConfig) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&native.root).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.push(format!("pod dir {}", entry.path().display()));
        }
    }
    if let Ok(out) = Command::new("ip").args(["-o", "link", "show", "master", &native.bridge]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            found.push(format!("bridge port {line}"));
        }
    }
    for controller in ["memory", "cpu", "pids", ""] {
        let dir = Path::new("/sys/fs/cgroup").join(controller).join(&native.cgroup_parent);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                found.push(format!("cgroup {}", entry.path().display()));
            }
        }
    }
    let root = native.root.to_string_lossy().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for point in mountinfo.lines().filter_map(|l| l.split(' ').nth(4)) {
        if point.starts_with(&root) {
            found.push(format!("mount {point}"));
        }
    }
    for shim in shims(&native.root) {
        found.push(format!("shim pid {} for {}", shim.pid, shim.state_dir.display()));
    }
    found
}

/// A live container shim.
#[derive(Debug, Clone)]
pub struct Shim {
    pub pid: i32,
    /// `<pods>/<pod uid>/containers/<name>/<attempt>`.
    pub state_dir: PathBuf,
}

impl Shim {
    /// The pod uid its state dir names.
    pub fn pod_uid(&self, pods: &Path) -> Option<String> {
        let rel = self.state_dir.strip_prefix(pods).ok()?;
        Some(rel.components().next()?.as_os_str().to_string_lossy().to_string())
    }

    /// `namespace/pod/container`, from the run's spec.
    pub fn id(&self) -> Option<String> {
        let spec = std::fs::read(self.state_dir.join(agent::runtime::spec::SPEC_FILE)).ok()?;
        let spec: serde_json::Value = serde_json::from_slice(&spec).ok()?;
        spec["id"].as_str().map(str::to_string)
    }
}

/// The live (not zombie) container shims whose state is under `pods`.
pub fn shims(pods: &Path) -> Vec<Shim> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.get(1) != Some(&b"__shim".as_slice()) {
            continue;
        }
        let Some(dir) = args.get(2).map(|d| PathBuf::from(String::from_utf8_lossy(d).to_string())) else { continue };
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
            .unwrap_or(true);
        if dir.starts_with(pods) && !zombie {
            found.push(Shim { pid, state_dir: dir });
        }
    }
    found
}

/// What a command run under a terminal printed, and how it exited.
#[derive(Debug)]
pub struct TerminalOutput {
    pub code: Option<i32>,
    pub text: String,
}

/// Wait until `check` returns `Some`, polling every few milliseconds, for at most `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The folder holding `kubectl.1.27` … `kubectl.1.33`: where the `kubectl` on PATH resolves.
pub fn kubectl_dir() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").context("PATH is not set")?;
    let found = std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .context("kubectl is not on PATH: the end-to-end tests drive the real kubectl binaries (kubectl.1.27 and kubectl.1.33 beside it)")?;
    let real = std::fs::canonicalize(&found)?;
    Ok(real.parent().context("kubectl has no parent folder")?.to_path_buf())
}

/// A real kubectl of one version with a private HOME and KUBECONFIG.
pub struct Kubectl {
    pub bin: PathBuf,
    home: PathBuf,
    kubeconfig: PathBuf,
    /// The working directory its commands run in (where `-f file` names are found).
    cwd: Option<PathBuf>,
}

impl Kubectl {
    pub fn new(version: &str, kubeconfig: &Path, scratch: &Path) -> anyhow::Result<Kubectl> {
        let bin = kubectl_dir()?.join(format!("kubectl.{version}"));
        if !bin.is_file() {
            bail!("{} is missing: the end-to-end tests need kubectl {version}", bin.display());
        }
        let home = scratch.join(format!("home-{version}"));
        std::fs::create_dir_all(&home)?;
        Ok(Kubectl { bin, home, kubeconfig: kubeconfig.to_path_buf(), cwd: None })
    }

    /// Run commands in `dir`, as a user typing them there.
    pub fn in_dir(mut self, dir: &Path) -> Kubectl {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null());
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// Run and return the raw output.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(self.command(args).output()?)
    }

    /// Run with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> anyhow::Result<Output> {
        use std::io::Write;
        let mut child =
            self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        child.stdin.take().context("stdin")?.write_all(input.as_bytes())?;
        Ok(child.wait_with_output()?)
    }

    /// Run, require success, return stdout.
    pub fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args)?;
        check_ok(args, out)
    }

    pub fn ok_stdin(&self, args: &[&str], input: &str) -> anyhow::Result<String> {
        let out = self.run_stdin(args, input)?;
        check_ok(args, out)
    }

    /// Run, require failure, return stderr.
    pub fn fails(&self, args: &[&str]) -> anyhow::Result<String> {
        check_fails(args, self.run(args)?)
    }

    pub fn fails_stdin(&self, args: &[&str], input: &str) -> anyhow::Result<String> {
        check_fails(args, self.run_stdin(args, input)?)
    }

    /// Run under a pseudo-terminal (as a user at a shell would), typing `lines` once kubectl has
    /// attached; for `run -it` and `exec -it`.
    pub fn run_in_terminal(&self, args: &[&str], lines: &[&str]) -> anyhow::Result<TerminalOutput> {
        use std::io::{Read, Write};
        let pty = nix::pty::openpty(None, None)?;
        let mut child = self
            .command(args)
            .stdin(Stdio::from(pty.slave.try_clone()?))
            .stdout(Stdio::from(pty.slave.try_clone()?))
            .stderr(Stdio::from(pty.slave))
            .spawn()?;
        let mut reader = std::fs::File::from(pty.master.try_clone()?);
        let mut writer = std::fs::File::from(pty.master);
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut text = String::new();
        let mut typed = false;
        loop {
            if let Some(status) = child.try_wait()? {
                while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
                    text.push_str(&String::from_utf8_lossy(&chunk));
                }
                return Ok(TerminalOutput { code: status.code(), text });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("kubectl {} did not finish within 60s; it printed:\n{text}", args.join(" "));
            }
            if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
            // kubectl says this once it is attached; typed lines wait in the terminal until read.
            if !typed && text.contains("If you don't see a command prompt") {
                for line in lines {
                    writer.write_all(format!("{line}\r").as_bytes())?;
                }
                typed = true;
            }
        }
    }

    /// Start a long-running command (e.g. `get -w`) with piped stdout.
    pub fn spawn(&self, args: &[&str]) -> anyhow::Result<std::process::Child> {
        Ok(self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?)
    }
}

fn check_fails(args: &[&str], out: Output) -> anyhow::Result<String> {
    if out.status.success() {
        bail!("kubectl {} succeeded but should have failed:\n{}", args.join(" "), String::from_utf8_lossy(&out.stdout));
    }
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

fn check_ok(args: &[&str], out: Output) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!(
            "kubectl {} failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub use ordinal::kubelet_double::FakeKubelet;

/// Wait (up to a minute) until pod `name` is Ready; with `not_uid`, a new incarnation of it.
pub async fn pod_ready(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
    not_uid: Option<&str>,
) -> anyhow::Result<k8s_openapi::api::core::v1::Pod> {
    eventually(&format!("{name} Ready"), Duration::from_secs(60), || async {
        let pod = pods.get_opt(name).await.ok().flatten()?;
        (logic::pod::is_ready(&pod) && pod.metadata.uid.as_deref() != not_uid).then_some(pod)
    })
    .await
}

/// `GET /index.html` over HTTP/1.0 from this (host) process: the body of a 200 answer.
pub async fn http_get(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await??;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await??;
    anyhow::ensure!(out.starts_with("HTTP/1.") && out.contains(" 200 "), "unexpected reply: {out}");
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().trim().to_string())
}

/// A TLS connection to a server's API at `addr`, trusting the CA in its data dir.
pub async fn tls_connect(
    addr: std::net::SocketAddr,
    data_dir: &ordinal::DataDir,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let ca = std::fs::read(data_dir.pki().join("ca.crt"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(cert?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await?)
}
