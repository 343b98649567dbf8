//! The container runtime: pod sandboxes (shared namespaces and network) and containers (a shim
//! process each). `Runtime` is the seam a CRI backend (containerd) can plug into later; `Native`
//! is Ordinal's own runtime: Linux namespaces, overlayfs, cgroups and a bridge, no daemons.
//!
//! On disk, under the runtime root (`<data-dir>/pods`):
//! - `<pod-uid>/ns/{ipc,uts,net}`: the kept namespaces;
//! - `<pod-uid>/containers/<name>/<attempt>/`: the shim's state (`spec.json`, pids, `exit.json`,
//!   the attach socket) and the container's writable layer;
//! - `<pod-uid>/logs/<name>/<attempt>.log`: its output (kept while the pod exists).

pub mod cgroup;
pub mod network;
pub mod seccomp;
pub mod shim;
pub mod spec;

use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncReadExt;

use self::cgroup::{Cgroups, Limits};
use self::network::{Cidr, Ipam, PodNet};
use self::spec::{ContainerSpec, ExitRecord};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Net(#[from] network::NetError),
    /// The container could not be started; the message is the reason.
    #[error("{0}")]
    Start(String),
}

type Result<T, E = RuntimeError> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let what = what.into();
    move |source| RuntimeError::Io { what, source }
}

/// One run of one container of one pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    pub pod_uid: String,
    pub name: String,
    /// 0 for the first run, then one more per restart.
    pub attempt: u32,
}

/// A container to start.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub container: ContainerRef,
    /// `namespace/pod/container`, for messages.
    pub id: String,
    pub layers: Vec<PathBuf>,
    pub mounts: Vec<spec::Mount>,
    pub process: spec::Process,
    pub limits: Limits,
}

/// What the runtime knows of a container run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Running {
        started_at_ns: i128,
    },
    Exited {
        record: ExitRecord,
        started_at_ns: i128,
        oom_killed: bool,
        start_error: Option<String>,
    },
    /// No such run.
    Absent,
}

/// What a runtime does for the node agent.
pub trait Runtime: Send + Sync + 'static {
    /// Make the pod's sandbox (namespaces, network) unless it exists; its IP.
    fn create_sandbox(&self, pod_uid: &str, hostname: &str) -> impl Future<Output = Result<Ipv4Addr>> + Send;
    /// Tear the sandbox down and forget the pod's containers (their logs go too).
    fn remove_sandbox(&self, pod_uid: &str) -> impl Future<Output = Result<()>> + Send;
    /// Start a container; returns once its process runs (or failed to start).
    fn start(&self, request: StartRequest) -> impl Future<Output = Result<()>> + Send;
    /// Resolve when the container run has ended.
    fn wait(&self, container: &ContainerRef) -> impl Future<Output = ()> + Send;
    fn state(&self, container: &ContainerRef) -> ContainerState;
    /// Send a signal to the container's main process (through its init).
    fn signal(&self, container: &ContainerRef, signal: nix::sys::signal::Signal) -> Result<()>;
    /// A command that runs `argv` inside the running container (stdio to be set by the caller).
    fn exec_command(&self, container: &ContainerRef, argv: &[String], tty: bool) -> tokio::process::Command;
    /// Connect to the container's attach socket.
    fn attach(&self, container: &ContainerRef) -> impl Future<Output = Result<tokio::net::UnixStream>> + Send;
    fn log_path(&self, container: &ContainerRef) -> PathBuf;
    /// Pods (by uid) that have state on this node.
    fn pods(&self) -> Vec<String>;
    /// The pod's own directory on this node (volumes, `/etc` files).
    fn pod_dir(&self, pod_uid: &str) -> PathBuf;
    /// Names of the containers that have runs on this node.
    fn containers_of(&self, pod_uid: &str) -> Vec<String>;
    /// Runs (attempt numbers) of a container that exist, oldest first.
    fn attempts(&self, pod_uid: &str, name: &str) -> Vec<u32>;
    /// Forget a finished run's state (its log stays until the pod goes).
    fn remove_container(&self, container: &ContainerRef) -> impl Future<Output = ()> + Send;
}

/// Settings of the native runtime.
#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// `<data-dir>/pods`.
    pub root: PathBuf,
    /// The `ordinal` binary, re-executed as shim and exec helper.
    pub helper: PathBuf,
    pub bridge: String,
    pub pod_cidr: Cidr,
    /// Where pods' cgroups go under each hierarchy.
    pub cgroup_parent: String,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// Masquerade pod traffic to addresses beyond this machine (off: it never leaves).
    pub masquerade: bool,
}

/// Ordinal's own runtime.
#[derive(Debug)]
pub struct Native {
    config: NativeConfig,
    ipam: Ipam,
    cgroups: Option<Cgroups>,
    uplink: network::Uplink,
}

impl Native {
    /// Check the machine can run containers, make the bridge, load the address leases.
    pub async fn init(config: NativeConfig) -> Result<Native> {
        if !nix::unistd::geteuid().is_root() {
            return Err(RuntimeError::Start(
                "the node agent runs containers only as root (namespaces, mounts, bridge)".into(),
            ));
        }
        fs::create_dir_all(&config.root).map_err(io("create the pods directory"))?;
        network::ensure_bridge(config.bridge.clone(), config.pod_cidr).await?;
        let uplink = if config.masquerade {
            network::enable_masquerade(&config.bridge, config.pod_cidr, &config.root)?
        } else {
            network::restore_ip_forward(&config.root);
            network::guard_uplink(&config.bridge)?
        };
        let ipam = Ipam::open(&config.root.join("ipam.json"), config.pod_cidr)?;
        let cgroups = Cgroups::detect(&config.cgroup_parent);
        if cgroups.is_none() {
            tracing::warn!("no usable cgroup controllers: resource limits are not enforced");
        }
        Ok(Native { config, ipam, cgroups, uplink })
    }

    pub fn config(&self) -> &NativeConfig {
        &self.config
    }

    /// What the kernel may route of what pods send (`network::Uplink`).
    pub fn uplink(&self) -> network::Uplink {
        self.uplink
    }

    fn state_dir(&self, c: &ContainerRef) -> PathBuf {
        self.pod_dir(&c.pod_uid).join("containers").join(&c.name).join(c.attempt.to_string())
    }

    fn cgroup_path(c: &ContainerRef) -> String {
        format!("{}/{}-{}", c.pod_uid, c.name, c.attempt)
    }

    fn pod_net(&self, pod_uid: &str, hostname: &str, ip: Ipv4Addr) -> PodNet {
        PodNet {
            ns_dir: self.pod_dir(pod_uid).join("ns"),
            hostname: hostname.to_string(),
            ip,
            cidr: self.config.pod_cidr,
            bridge: self.config.bridge.clone(),
            host_veth: network::host_veth_name(pod_uid),
        }
    }

    fn shim_pid(&self, c: &ContainerRef) -> Option<i32> {
        let dir = self.state_dir(c);
        let pid: i32 = fs::read_to_string(dir.join(spec::SHIM_PID_FILE)).ok()?.trim().parse().ok()?;
        // The pid must still be this container's shim (pids are reused).
        is_shim_of(pid, &dir).then_some(pid)
    }

    /// Stop everything this runtime started and remove every trace: containers, namespaces,
    /// veths, cgroups, the bridge and the pods directory. Blocking; for `--stop-pods` at server
    /// stop and for test cleanup.
    pub fn reset_blocking(config: &NativeConfig) {
        let mut killed = Vec::new();
        let pods: Vec<fs::DirEntry> = fs::read_dir(&config.root).into_iter().flatten().flatten().collect();
        for pod in &pods {
            let containers = pod.path().join("containers");
            for name in fs::read_dir(&containers).into_iter().flatten().flatten() {
                for attempt in fs::read_dir(name.path()).into_iter().flatten().flatten() {
                    for file in [spec::INIT_PID_FILE, spec::SHIM_PID_FILE] {
                        let pid =
                            fs::read_to_string(attempt.path().join(file)).ok().and_then(|p| p.trim().parse().ok());
                        // Only a process that is this run's shim or init (pids are reused).
                        if let Some(pid) = pid.filter(|pid| is_shim_of(*pid, &attempt.path())) {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(pid),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                            killed.push(pid);
                        }
                    }
                }
            }
        }
        // Killed processes go within moments; wait so their files and mounts are released.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while killed.iter().any(|pid| is_alive(*pid)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for pod in &pods {
            let _ = network::release_namespaces(&pod.path().join("ns"));
            unmount_all(&pod.path());
            let veth = network::host_veth_name(&pod.file_name().to_string_lossy());
            let _ = std::process::Command::new("ip").args(["link", "del", &veth]).stderr(Stdio::null()).status();
        }
        if let Some(cgroups) = Cgroups::detect(&config.cgroup_parent) {
            cgroups.remove_all();
        }
        network::remove_uplink_rules(&config.bridge, &config.root);
        let _ = std::process::Command::new("ip").args(["link", "del", &config.bridge]).stderr(Stdio::null()).status();
        for _ in 0..3 {
            match fs::remove_dir_all(&config.root) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(error = %e, root = %config.root.display(), "removing the pods directory");
                }
                _ => break,
            }
        }
    }
}

/// Is `pid` the shim (or its init, a fork of it) for the run in `dir`?
fn is_shim_of(pid: i32, dir: &std::path::Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let dir = dir.to_string_lossy();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.iter().any(|a| *a == b"__shim") && args.iter().any(|a| *a == dir.as_bytes())
}

/// Alive and not a zombie.
pub(crate) fn is_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Wait until process `pid` has exited (a pidfd becomes readable), reaping it if it is ours.
async fn wait_pid(pid: i32) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return; // already gone
    }
    // SAFETY: the descriptor was just returned to us and is owned by nothing else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns the descriptor, so it stays open for as long as it is registered.
    let registered = unsafe { tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) };
    if let Ok(async_fd) = registered {
        let _ = async_fd.readable().await;
    }
}

impl Runtime for Native {
    async fn create_sandbox(&self, pod_uid: &str, hostname: &str) -> Result<Ipv4Addr> {
        let ip = self.ipam.allocate(pod_uid)?;
        network::create_sandbox(self.pod_net(pod_uid, hostname, ip)).await?;
        Ok(ip)
    }

    async fn remove_sandbox(&self, pod_uid: &str) -> Result<()> {
        let net = self.pod_net(pod_uid, "", Ipv4Addr::UNSPECIFIED);
        network::remove_sandbox(net.ns_dir, net.host_veth).await?;
        if let Some(cgroups) = self.cgroups.clone() {
            let uid = pod_uid.to_string();
            let _ = tokio::task::spawn_blocking(move || cgroups.remove(&uid)).await;
        }
        self.ipam.release(pod_uid)?;
        let dir = self.pod_dir(pod_uid);
        unmount_all(&dir);
        tokio::task::spawn_blocking(move || fs::remove_dir_all(&dir))
            .await
            .map_err(|e| RuntimeError::Start(e.to_string()))?
            .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
            .map_err(io("remove the pod's directory"))
    }

    async fn start(&self, request: StartRequest) -> Result<()> {
        let c = &request.container;
        let dir = self.state_dir(c);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io("clear old container state"))?;
        }
        let upper = dir.join("upper");
        let work = dir.join("work");
        for d in [&upper, &work] {
            fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
        }
        let cgroup_procs = match &self.cgroups {
            Some(cg) => cg.create(&Self::cgroup_path(c), &request.limits).map_err(io("create cgroups"))?,
            None => Vec::new(),
        };
        let ns_dir = self.pod_dir(&c.pod_uid).join("ns");
        let spec = ContainerSpec {
            id: request.id.clone(),
            namespaces: network::SHARED_NAMESPACES.iter().map(|k| (k.to_string(), ns_dir.join(k))).collect(),
            cgroup_procs,
            rootfs: spec::Rootfs { layers: request.layers.clone(), upper, work, merged: dir.join("rootfs") },
            mounts: request.mounts.clone(),
            process: request.process.clone(),
            log: self.log_path(c),
            log_max_bytes: self.config.log_max_bytes,
            log_max_files: self.config.log_max_files,
        };
        let bytes = serde_json::to_vec_pretty(&spec).map_err(|e| RuntimeError::Start(e.to_string()))?;
        fs::write(dir.join(spec::SPEC_FILE), bytes).map_err(io("write spec.json"))?;
        fs::write(dir.join("started_at"), jiff::Timestamp::now().as_nanosecond().to_string())
            .map_err(io("write started_at"))?;
        let shim_log = fs::File::create(dir.join("shim.log")).map_err(io("create shim.log"))?;
        let mut child = tokio::process::Command::new(&self.config.helper)
            .arg("__shim")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(shim_log)
            .spawn()
            .map_err(io(format!("start shim {}", self.config.helper.display())))?;
        let mut answer = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut answer).await;
        }
        drop(child);
        if answer.starts_with("started") {
            return Ok(());
        }
        let reason = fs::read_to_string(dir.join(spec::START_ERROR_FILE))
            .ok()
            .filter(|r| !r.is_empty())
            .or_else(|| fs::read_to_string(dir.join("shim.log")).ok())
            .unwrap_or_else(|| "the shim exited without starting the container".into());
        Err(RuntimeError::Start(reason.trim().to_string()))
    }

    async fn wait(&self, container: &ContainerRef) {
        if let Some(pid) = self.shim_pid(container) {
            wait_pid(pid).await;
        }
    }

    fn state(&self, c: &ContainerRef) -> ContainerState {
        let dir = self.state_dir(c);
        let Some(started_at_ns) =
            fs::read_to_string(dir.join("started_at")).ok().and_then(|s| s.trim().parse::<i128>().ok())
        else {
            return ContainerState::Absent;
        };
        let record =
            fs::read(dir.join(spec::EXIT_FILE)).ok().and_then(|b| serde_json::from_slice::<ExitRecord>(&b).ok());
        match record {
            None if self.shim_pid(c).is_some() => ContainerState::Running { started_at_ns },
            record => {
                // A shim that vanished without a record was killed: report it as killed.
                let record = record.unwrap_or(ExitRecord {
                    exit_code: 137,
                    signal: Some(9),
                    finished_at_ns: jiff::Timestamp::now().as_nanosecond(),
                });
                let start_error = fs::read_to_string(dir.join(spec::START_ERROR_FILE))
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty());
                let oom_killed = self.cgroups.as_ref().is_some_and(|cg| cg.oom_killed(&Self::cgroup_path(c)));
                ContainerState::Exited { record, started_at_ns, oom_killed, start_error }
            }
        }
    }

    fn signal(&self, c: &ContainerRef, signal: nix::sys::signal::Signal) -> Result<()> {
        let dir = self.state_dir(c);
        if self.shim_pid(c).is_none() {
            return Ok(());
        }
        let pid: i32 = fs::read_to_string(dir.join(spec::INIT_PID_FILE))
            .map_err(io("read init.pid"))?
            .trim()
            .parse()
            .map_err(|_| RuntimeError::Start("bad init.pid".into()))?;
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(RuntimeError::Io { what: format!("signal {signal}"), source: e.into() }),
        }
    }

    fn exec_command(&self, c: &ContainerRef, argv: &[String], tty: bool) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.config.helper);
        command.arg("__exec").arg(self.state_dir(c)).arg(if tty { "1" } else { "0" }).arg("--").args(argv);
        command
    }

    async fn attach(&self, c: &ContainerRef) -> Result<tokio::net::UnixStream> {
        // Socket paths are limited to 108 bytes: reach it through a descriptor of its directory.
        let dir = fs::File::open(self.state_dir(c)).map_err(io("open the container's state"))?;
        let path = format!("/proc/self/fd/{}/{}", std::os::fd::AsRawFd::as_raw_fd(&dir), spec::ATTACH_SOCKET);
        let stream = tokio::net::UnixStream::connect(&path).await.map_err(io("connect to the container"))?;
        drop(dir);
        Ok(stream)
    }

    fn log_path(&self, c: &ContainerRef) -> PathBuf {
        self.pod_dir(&c.pod_uid).join("logs").join(&c.name).join(format!("{}.log", c.attempt))
    }

    fn pods(&self) -> Vec<String> {
        let mut pods: Vec<String> = fs::read_dir(&self.config.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        pods.extend(self.ipam.owners());
        pods.sort();
        pods.dedup();
        pods
    }

    fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.config.root.join(pod_uid)
    }

    fn containers_of(&self, pod_uid: &str) -> Vec<String> {
        fs::read_dir(self.pod_dir(pod_uid).join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect()
    }

    fn attempts(&self, pod_uid: &str, name: &str) -> Vec<u32> {
        let dir = self.pod_dir(pod_uid).join("containers").join(name);
        let mut attempts: Vec<u32> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
            .collect();
        attempts.sort_unstable();
        attempts
    }

    async fn remove_container(&self, c: &ContainerRef) {
        let dir = self.state_dir(c);
        let cgroups = self.cgroups.clone();
        let path = Self::cgroup_path(c);
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(cg) = cgroups {
                cg.remove(&path);
            }
            let _ = fs::remove_dir_all(dir);
        })
        .await;
    }
}

/// Unmount whatever the pod mounted on the host (memory-backed emptyDirs) under `pod_dir`.
pub fn unmount_all(pod_dir: &std::path::Path) {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else { return };
    let prefix = pod_dir.to_string_lossy().to_string();
    let mut points: Vec<&str> =
        mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&prefix)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}
