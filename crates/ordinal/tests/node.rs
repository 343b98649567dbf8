//! The node agent in the real binary: pods outlive `kill -9` of the server and are found again
//! (same run, restart count unchanged); `--stop-pods-on-exit` leaves nothing behind; and a
//! server that is not root still serves, with the node NotReady and pods Pending saying why.

mod common;

use common::{Server, ready_client};

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::PostParams;
use ordinal::DataDir;

/// Removes whatever the pods left, even when the test fails.
struct Cleanup(agent::runtime::NativeConfig);

impl Drop for Cleanup {
    fn drop(&mut self) {
        agent::runtime::Native::reset_blocking(&self.0);
    }
}

const IMAGE: &str = "localhost/busybox:node-test";

fn native(data: &DataDir) -> agent::runtime::NativeConfig {
    let n = std::process::id() % 200 + 20;
    agent::runtime::NativeConfig {
        root: data.pods(),
        helper: PathBuf::from(env!("CARGO_BIN_EXE_ordinal")),
        bridge: format!("ordnd{n}"),
        pod_cidr: agent::runtime::network::Cidr { addr: std::net::Ipv4Addr::new(10, 253, n as u8, 0), prefix: 24 },
        cgroup_parent: format!("ordinal-node-test-{}", std::process::id()),
        log_max_bytes: 1 << 20,
        log_max_files: 2,
        masquerade: false,
    }
}

fn spawn(data: &DataDir, port: u16, native: &agent::runtime::NativeConfig, extra: &[&str]) -> anyhow::Result<Server> {
    let child = Command::new(env!("CARGO_BIN_EXE_ordinal"))
        .args(["server", "--data-dir"])
        .arg(data.root())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--bridge", &native.bridge, "--cgroup-parent", &native.cgroup_parent])
        .args(["--pod-cidr", &native.pod_cidr.to_string(), "--dns-listen", "none"])
        .args(extra)
        .env("ORDINAL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Server(child))
}

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn started_at(pod: &Pod) -> Option<String> {
    let c = pod.status.as_ref()?.container_statuses.as_ref()?.first()?.clone();
    let running = c.state?.running?;
    Some(format!("{:?}/{}", running.started_at, c.restart_count))
}

fn import_image(data: &DataDir) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let rootfs = scratch.path().join("rootfs");
    agent::image::busybox_rootfs(Path::new("/bin/busybox"), &rootfs)?;
    let tar = scratch.path().join("image.tar");
    let config = agent::image::ImageConfig { env: vec!["PATH=/bin".into()], ..Default::default() };
    agent::image::build_from_dir(&rootfs, IMAGE, &config, &tar)?;
    agent::image::ImageStore::open(&data.images())?.import(&tar)?;
    Ok(())
}

#[tokio::test]
async fn pods_survive_kill_9_of_the_server_and_stop_pods_on_exit_cleans_up() -> anyhow::Result<()> {
    anyhow::ensure!(nix::unistd::geteuid().is_root(), "this test runs containers and needs root");
    anyhow::ensure!(Path::new("/bin/busybox").exists(), "apt-get install busybox-static");
    let dir = tempfile::tempdir()?;
    let data = DataDir::create(dir.path().join("data"))?;
    import_image(&data)?;
    let native = native(&data);
    let _cleanup = Cleanup(native.clone());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = spawn(&data, port, &native, &[])?;
    let client = ready_client(&data).await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    // A pod with a claim the local provisioner fills.
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(pods.clone().into_client());
    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))?;
    claims.create(&PostParams::default(), &claim).await?;
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "survivor"},
        "spec": {"containers": [{"name": "app", "image": IMAGE, "command": ["sh", "-c", "while true; do sleep 1; done"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let before = wait_for("survivor running", async || started_at(&pods.get("survivor").await.ok()?)).await?;
    let bound_before = claims.get("data").await?.spec.and_then(|s| s.volume_name);
    assert!(bound_before.as_deref().is_some_and(|v| v.starts_with("pvc-")), "{bound_before:?}");

    server.0.kill()?;
    server.0.wait()?;
    drop(server);
    let shim_alive = std::fs::read_dir(native.root.join(pods_uid(&data)?).join("containers/app/0")).is_ok();
    assert!(shim_alive, "the container's state is still there");

    let mut server = spawn(&data, port, &native, &["--stop-pods-on-exit"])?;
    let client = ready_client(&data).await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let after = wait_for("survivor seen again", async || started_at(&pods.get("survivor").await.ok()?)).await?;
    assert_eq!(after, before, "the same run, found again, not restarted");
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(pods.clone().into_client());
    let claim = claims.get("data").await?;
    assert_eq!(claim.spec.and_then(|s| s.volume_name), bound_before, "the binding survived kill -9");
    assert_eq!(claim.status.and_then(|s| s.phase).as_deref(), Some("Bound"));

    // A clean stop with --stop-pods-on-exit removes every trace.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.0.id() as i32), nix::sys::signal::Signal::SIGTERM)?;
    server.0.wait()?;
    assert!(!native.root.exists(), "pods directory removed");
    let links = Command::new("ip").args(["-o", "link", "show", &native.bridge]).output()?;
    assert!(!links.status.success(), "bridge {} removed", native.bridge);
    for controller in ["memory", "cpu", "pids"] {
        assert!(!Path::new("/sys/fs/cgroup").join(controller).join(&native.cgroup_parent).exists());
    }
    Ok(())
}

/// The uid of the one pod with state on disk.
fn pods_uid(data: &DataDir) -> anyhow::Result<String> {
    std::fs::read_dir(data.pods())?
        .flatten()
        .find(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().to_string())
        .ok_or_else(|| anyhow::anyhow!("no pod directory"))
}

#[tokio::test]
async fn without_root_the_server_serves_and_the_node_says_why_it_runs_no_pods() -> anyhow::Result<()> {
    anyhow::ensure!(nix::unistd::geteuid().is_root(), "this test drops to nobody and needs root to start");
    let dir = tempfile::tempdir()?;
    let data = DataDir::create(dir.path().join("data"))?;
    // nobody must be able to reach the binary and own the data dir.
    let bin = dir.path().join("ordinal");
    std::fs::copy(env!("CARGO_BIN_EXE_ordinal"), &bin)?;
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    for path in [dir.path(), data.root(), bin.as_path()] {
        nix::unistd::chown(path, Some(nobody), Some(nogroup))?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(&bin)
        .args(["server", "--data-dir"])
        .arg(data.root())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--bridge", "ordnobody0"])
        .env("ORDINAL_LOG", "warn")
        .env("HOME", dir.path())
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _server = Server(child);
    let client = ready_client(&data).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let reason = wait_for("the node registered", async || {
        let node = nodes.list(&Default::default()).await.ok()?.items.into_iter().next()?;
        let ready = node.status?.conditions?.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.status == "False").then_some(ready.message.unwrap_or_default())
    })
    .await?;
    assert!(reason.contains("root"), "{reason}");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "waiting"},
        "spec": {"containers": [{"name": "app", "image": IMAGE}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let events: Api<Event> = Api::default_namespaced(client);
    wait_for("a FailedScheduling event", async || {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("FailedScheduling"))
    })
    .await?;
    // The pod's PodScheduled condition carries the current reason: the node's not-ready taint.
    let why = wait_for("the not-ready reason", async || {
        let status = pods.get("waiting").await.ok()?.status?;
        let scheduled = status.conditions?.into_iter().find(|c| c.type_ == "PodScheduled")?;
        let message = scheduled.message.unwrap_or_default();
        (status.phase.as_deref() == Some("Pending") && message.contains("node.kubernetes.io/not-ready"))
            .then_some(message)
    })
    .await?;
    assert!(why.starts_with("0/1 nodes are available"), "{why}");
    Ok(())
}
