//! The native runtime on its own, as root: a busybox image built from Debian's `busybox-static`,
//! a pod sandbox with its own hostname and IP on a test bridge, containers with exit codes, logs,
//! exec and signals, and nothing left behind. (Beside the binary: the shim is this binary.)

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent::image::{ImageConfig, ImageStore};
use agent::runtime::cgroup::Limits;
use agent::runtime::network::Cidr;
use agent::runtime::{ContainerRef, ContainerState, Native, NativeConfig, Runtime, StartRequest, spec};
use ordinal::DataDir;

const BUSYBOX: &str = "/bin/busybox";

/// Removes everything the runtime made, even when the test fails.
struct Cleanup(NativeConfig);

impl Drop for Cleanup {
    fn drop(&mut self) {
        Native::reset_blocking(&self.0);
    }
}

fn config(data: &DataDir) -> NativeConfig {
    let n = std::process::id() % 200 + 20;
    NativeConfig {
        root: data.pods(),
        helper: PathBuf::from(env!("CARGO_BIN_EXE_ordinal")),
        bridge: format!("ordrt{n}"),
        pod_cidr: Cidr { addr: Ipv4Addr::new(10, 251, n as u8, 0), prefix: 24 },
        cgroup_parent: format!("ordinal-rt-test-{}", std::process::id()),
        log_max_bytes: 1 << 20,
        log_max_files: 2,
        masquerade: false,
    }
}

fn busybox_layers(data: &DataDir) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(Path::new(BUSYBOX).exists(), "{BUSYBOX} is missing: apt-get install busybox-static");
    let scratch = tempfile::tempdir()?;
    let rootfs = scratch.path().join("rootfs");
    agent::image::busybox_rootfs(Path::new(BUSYBOX), &rootfs)?;
    let tar = scratch.path().join("busybox.tar");
    let config = ImageConfig { cmd: vec!["sh".into()], env: vec!["PATH=/bin".into()], ..Default::default() };
    agent::image::build_from_dir(&rootfs, "localhost/busybox:test", &config, &tar)?;
    let store = ImageStore::open(&data.images())?;
    let image = store.import(&tar)?.remove(0);
    Ok(store.unpack(&image)?)
}

fn request(uid: &str, name: &str, layers: &[PathBuf], argv: &[&str]) -> StartRequest {
    StartRequest {
        container: ContainerRef { pod_uid: uid.into(), name: name.into(), attempt: 0 },
        id: format!("default/web-0/{name}"),
        layers: layers.to_vec(),
        mounts: Vec::new(),
        process: spec::Process {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("GREETING".into(), "hello from the pod".into())],
            cwd: "/work".into(),
            user: String::new(),
            stdin: false,
            stdin_once: false,
            tty: false,
            // Confined as a default pod's container is.
            security: logic::security::security_plan(&Default::default(), &Default::default()).expect("default plan"),
        },
        limits: Limits::default(),
    }
}

async fn exited(rt: &Native, c: &ContainerRef) -> anyhow::Result<(i32, Option<String>)> {
    tokio::time::timeout(Duration::from_secs(20), rt.wait(c)).await?;
    match rt.state(c) {
        ContainerState::Exited { record, start_error, .. } => Ok((record.exit_code, start_error)),
        other => anyhow::bail!("{c:?} not exited: {other:?}"),
    }
}

/// What the shim said, for failure messages.
fn shim_log(rt: &Native, c: &ContainerRef) -> String {
    let dir = rt.config().root.join(&c.pod_uid).join("containers").join(&c.name).join(c.attempt.to_string());
    std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default()
}

/// What a server in a pod says first, once it answers (within a few seconds).
async fn first_reply(ip: Ipv4Addr, port: u16) -> anyhow::Result<String> {
    let mut reply = String::new();
    for _ in 0..200 {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&(ip, port).into(), Duration::from_millis(200)) {
            s.read_to_string(&mut reply)?;
            if !reply.is_empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(reply.trim().to_string())
}

#[tokio::test]
async fn containers_get_their_own_hostname_ip_root_and_logs() -> anyhow::Result<()> {
    anyhow::ensure!(nix::unistd::geteuid().is_root(), "the runtime test needs root");
    let dir = tempfile::tempdir()?;
    let data = DataDir::create(dir.path())?;
    let layers = busybox_layers(&data)?;
    let config = config(&data);
    let _cleanup = Cleanup(config.clone());
    let rt = Native::init(config.clone()).await?;

    let uid = "2f0c4a9e-0000-4000-8000-000000000001";
    let ip = rt.create_sandbox(uid, "web-0").await?;
    assert!(config.pod_cidr.contains(ip) && ip != config.pod_cidr.gateway(), "{ip}");

    // A container that reports what it sees and fails with a code of its own.
    let once = request(uid, "report", &layers, &["sh", "-c", "hostname; pwd; echo $GREETING; echo oops >&2; exit 3"]);
    rt.start(once.clone()).await?;
    assert_eq!(exited(&rt, &once.container).await?, (3, None), "{}", shim_log(&rt, &once.container));
    let log = std::fs::read_to_string(rt.log_path(&once.container))?;
    let lines: Vec<(&str, &str)> = log
        .lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let _time = parts.next();
            let stream = parts.next().unwrap_or("");
            let _tag = parts.next();
            (stream, parts.next().unwrap_or(""))
        })
        .collect();
    assert!(lines.contains(&("stdout", "web-0")), "{log}");
    assert!(lines.contains(&("stdout", "/work")), "{log}");
    assert!(lines.contains(&("stdout", "hello from the pod")), "{log}");
    assert!(lines.contains(&("stderr", "oops")), "{log}");

    // A missing binary is a start failure with the reason.
    let missing = request(uid, "missing", &layers, &["no-such-binary"]);
    rt.start(missing.clone()).await?;
    let (code, reason) = exited(&rt, &missing.container).await?;
    assert_eq!(code, spec::START_FAILURE);
    assert!(reason.unwrap_or_default().contains("executable file not found"));

    // A server in the pod, reached from the host over the bridge.
    let server = request(uid, "server", &layers, &["sh", "-c", "while true; do echo hello | nc -l -p 8080; done"]);
    rt.start(server.clone()).await?;
    assert_eq!(first_reply(ip, 8080).await?, "hello");

    // A sandbox whose wiring is gone (as a server killed halfway through making it leaves it)
    // is completed by making it again: same address, reachable again.
    let veth = agent::runtime::network::host_veth_name(uid);
    let status = std::process::Command::new("ip").args(["link", "del", &veth]).status()?;
    anyhow::ensure!(status.success(), "ip link del {veth}");
    assert!(std::net::TcpStream::connect_timeout(&(ip, 8080).into(), Duration::from_millis(200)).is_err());
    assert_eq!(rt.create_sandbox(uid, "web-0").await?, ip);
    assert_eq!(first_reply(ip, 8080).await?, "hello", "the pod is wired again");

    // exec sees the same hostname and network; its exit code comes back.
    let out = rt.exec_command(&server.container, &["hostname".into()], false).output().await?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "web-0");
    let out = rt.exec_command(&server.container, &["sh".into(), "-c".into(), "exit 7".into()], false).output().await?;
    assert_eq!(out.status.code(), Some(7));
    let out = rt.exec_command(&server.container, &["cat".into(), "/proc/1/cmdline".into()], false).output().await?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("__shim"), "PID 1 is the container's init");

    // SIGTERM reaches the workload through init; the exit code says which signal.
    rt.signal(&server.container, nix::sys::signal::Signal::SIGTERM)?;
    assert_eq!(exited(&rt, &server.container).await?.0, 143);

    // An attached client feeds stdin and reads the output.
    let mut cat = request(uid, "cat", &layers, &["sh", "-c", "read line; echo got:$line"]);
    cat.process.stdin = true;
    cat.process.stdin_once = true;
    rt.start(cat.clone()).await?;
    let stream = rt.attach(&cat.container).await?;
    let mut stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.write_all(&spec::frame::encode(spec::frame::STDIN, b"ping\n"))?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    let frames = spec::frame::decode(&mut buf);
    assert_eq!(frames, vec![(spec::frame::STDOUT, b"got:ping\n".to_vec())]);
    assert_eq!(exited(&rt, &cat.container).await?.0, 0);

    let ns_dir = config.root.join(uid).join("ns");
    assert!(agent::runtime::network::is_ns_mount(&ns_dir.join("net")));
    rt.remove_sandbox(uid).await?;
    assert!(!ns_dir.exists(), "namespace files removed");
    let links = std::process::Command::new("ip").args(["-o", "link"]).output()?;
    let veth = agent::runtime::network::host_veth_name(uid);
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&veth), "veth removed");
    Ok(())
}

/// A network namespace standing for "the world beyond this machine": reached from the host
/// through a veth, with a TCP server in it. Removed when dropped.
struct Outside {
    ns: String,
    server: std::process::Child,
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new("ip").args(args).status()?;
    anyhow::ensure!(status.success(), "ip {} failed", args.join(" "));
    Ok(())
}

fn outside(n: u32) -> anyhow::Result<Outside> {
    let ns = format!("ordout{n}");
    let host_end = format!("ordoh{n}");
    let _ = std::process::Command::new("ip").args(["netns", "del", &ns]).stderr(std::process::Stdio::null()).status();
    ip(&["netns", "add", &ns])?;
    // From here on the namespace (and the veth inside it) goes away with `Outside`.
    let server = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, BUSYBOX, "nc", "-ll", "-p", "9000", "-e", BUSYBOX, "echo", "from-outside"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let outside = Outside { ns: ns.clone(), server };
    ip(&["link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
    ip(&["addr", "add", "198.51.100.1/30", "dev", &host_end])?;
    ip(&["link", "set", &host_end, "up"])?;
    ip(&["-n", &ns, "addr", "add", "198.51.100.2/30", "dev", "eth0"])?;
    ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    Ok(outside)
}

#[tokio::test]
async fn pod_traffic_leaves_the_machine_only_with_masquerade() -> anyhow::Result<()> {
    anyhow::ensure!(nix::unistd::geteuid().is_root(), "the runtime test needs root");
    let dir = tempfile::tempdir()?;
    let data = DataDir::create(dir.path())?;
    let layers = busybox_layers(&data)?;
    let mut config = config(&data);
    // Its own bridge, addresses and cgroups: the other test's cleanup must not touch this one.
    config.bridge = format!("{}m", config.bridge);
    config.cgroup_parent = format!("{}-nat", config.cgroup_parent);
    config.pod_cidr.addr = std::net::Ipv4Addr::new(10, 250, config.pod_cidr.addr.octets()[2], 0);
    let forward_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")?;
    let _cleanup = Cleanup(config.clone());
    let _outside = outside(std::process::id() % 1000)?;

    let rt = Native::init(config.clone()).await?;
    let uid = "2f0c4a9e-0000-4000-8000-000000000002";
    rt.create_sandbox(uid, "nat-0").await?;
    let pod = request(uid, "app", &layers, &["sh", "-c", "while true; do sleep 1; done"]);
    rt.start(pod.clone()).await?;
    let reach = async |rt: &Native| -> anyhow::Result<String> {
        let argv = ["nc", "-w", "2", "198.51.100.2", "9000"].map(String::from);
        let out = rt.exec_command(&pod.container, &argv, false).stdin(std::process::Stdio::null()).output().await?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    // By default the bridge forwards (the service proxy DNATs pods' traffic to pods), behind
    // the guard: what a pod sends beyond the machine is dropped, and counted, so nothing leaves.
    let forwarding = format!("/proc/sys/net/ipv4/conf/{}/forwarding", config.bridge);
    let drops = || agent::runtime::network::guard_drops(&config.bridge).unwrap_or(0);
    assert!(agent::runtime::network::uplink_guarded(&config.bridge));
    assert_eq!(std::fs::read_to_string(&forwarding)?.trim(), "1");
    let dropped = drops();
    assert_eq!(reach(&rt).await?, "");
    assert!(drops() > dropped, "the guard dropped the pod's packets");

    // With masquerade the same pod reaches the outside, behind the host's address.
    let mut nat = config.clone();
    nat.masquerade = true;
    let rt_nat = Native::init(nat).await?;
    assert_eq!(reach(&rt_nat).await?, "from-outside");
    assert!(!agent::runtime::network::uplink_guarded(&config.bridge), "masquerading is not guarding");
    // Back to the default: the rule goes and kernel forwarding is as it was found.
    let _ = Native::init(config.clone()).await?;
    let dropped = drops();
    assert_eq!(reach(&rt).await?, "");
    assert!(drops() > dropped, "the guard is back");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")?, forward_before);
    rt.signal(&pod.container, nix::sys::signal::Signal::SIGKILL)?;
    rt.remove_sandbox(uid).await?;
    Ok(())
}
