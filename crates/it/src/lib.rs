//! Test harness: a whole Ordinal server in process on a loopback port with a temporary data
//! dir, kube clients over HTTPS (with the generated kubeconfig) and in process, a real-kubectl
//! runner with its own HOME and KUBECONFIG, and condition waits with deadlines (no sleeps).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A server for one test; stopped (and its directory removed) when dropped via `stop`.
pub struct TestServer {
    pub running: ordinal::Running,
    pub dir: tempfile::TempDir,
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

    async fn start_with(adjust: impl FnOnce(&mut ordinal::ServerConfig)) -> anyhow::Result<TestServer> {
        init_tracing();
        let dir = tempfile::tempdir()?;
        let mut config = Self::config(dir.path());
        adjust(&mut config);
        let running = ordinal::start(config).await?;
        Ok(TestServer { running, dir })
    }

    fn config(dir: &Path) -> ordinal::ServerConfig {
        let mut config = ordinal::ServerConfig::new(dir.join("data"), "127.0.0.1:0".parse().expect("literal address"));
        config.watch_history = 1000;
        config.bookmark_interval = Duration::from_millis(200);
        config
    }

    /// Stop and start again on the same data dir (a new port).
    pub async fn restart(self) -> anyhow::Result<TestServer> {
        let TestServer { running, dir } = self;
        running.stop().await;
        let running = ordinal::start(Self::config(dir.path())).await?;
        Ok(TestServer { running, dir })
    }

    pub async fn stop(self) {
        self.running.stop().await;
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
}

impl Kubectl {
    pub fn new(version: &str, kubeconfig: &Path, scratch: &Path) -> anyhow::Result<Kubectl> {
        let bin = kubectl_dir()?.join(format!("kubectl.{version}"));
        if !bin.is_file() {
            bail!("{} is missing: the end-to-end tests need kubectl {version}", bin.display());
        }
        let home = scratch.join(format!("home-{version}"));
        std::fs::create_dir_all(&home)?;
        Ok(Kubectl { bin, home, kubeconfig: kubeconfig.to_path_buf() })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null());
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
