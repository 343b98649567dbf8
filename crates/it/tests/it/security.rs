//! Containers kept in their box, with real pods: the default confinement seen from inside a
//! container (capabilities, seccomp, no_new_privs, masked and read-only kernel files, no
//! mounts, no block devices, no user namespaces) and lifted by `privileged: true`; the rest of
//! `securityContext` (users, groups, `fsGroup`, `runAsNonRoot` with kubelet's message, a
//! read-only root); what the node refuses, with the reason; hostile images and volumes that
//! try to reach the host (an `/etc/hosts` or mount point that is a symlink to a host path, a
//! `subPath` symlink one container plants for another), each leaving a marker tree outside the
//! data dir untouched; and the modes of private state.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use it::{TEST_IMAGE, TestServer, eventually};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use serde_json::json;

/// Docker's and containerd's default set (CHOWN … AUDIT_WRITE), as `/proc/self/status` shows it.
const DEFAULT_CAP_EFF: &str = "00000000a80425fb";

/// Files of a tree outside every data dir: paths to (mode, contents), to compare before and after.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        let contents = if meta.is_file() { std::fs::read(&p).unwrap_or_default() } else { Vec::new() };
        out.insert(p.clone(), (meta.permissions().mode(), contents));
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()));
        }
    }
    out
}

fn mounted_on(dir: &Path) -> bool {
    let prefix = dir.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| p.starts_with(&prefix))
}

/// A marker tree the hostile pods aim at.
fn markers() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("victim"), "host file")?;
    std::fs::create_dir(dir.path().join("dir"))?;
    std::fs::write(dir.path().join("dir/inside"), "host dir")?;
    Ok(dir)
}

fn pod(name: &str, spec: serde_json::Value) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))?)
}

async fn create(server: &TestServer, name: &str, spec: serde_json::Value) -> anyhow::Result<Pod> {
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    pods.create(&Default::default(), &pod(name, spec)?).await?;
    it::pod_ready(&pods, name, None).await
}

/// Delete every pod and wait until they are gone.
async fn delete_all(server: &TestServer) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    pods.delete_collection(&Default::default(), &Default::default()).await?;
    eventually("pods gone", Duration::from_secs(60), || async {
        pods.list(&Default::default()).await.ok().filter(|l| l.items.is_empty()).map(drop)
    })
    .await
}

/// What a container's shell says about itself.
/// (This machine's kernel has no `/proc/sysrq-trigger`: `/proc/sys`, read-only by the same
/// rule, stands for it; the writes are of per-pod values, the domain name and loopback's MTU,
/// written as they are.)
const REPORT: &str = "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; \
    (cat /proc/sys/kernel/domainname > /proc/sys/kernel/domainname) 2>/dev/null && echo proc-sys=writable || echo proc-sys=read-only; \
    mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>/dev/null && echo mount=ok || echo mount=refused; \
    mknod /tmp/blk b 7 0 2>/dev/null && echo mknod-block=ok || echo mknod-block=refused; \
    unshare -U true 2>/dev/null && echo userns=ok || echo userns=refused; \
    echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c); \
    (cat /sys/class/net/lo/mtu > /sys/class/net/lo/mtu) 2>/dev/null && echo sys=writable || echo sys=read-only";

fn report(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(['=', ':']))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_container_is_confined_and_a_privileged_one_is_not() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let k = server.kubectl("1.33")?;
    // The workload writes what it sees of itself at start; exec shows the same confinement.
    let command = format!("({REPORT}) > /tmp/report 2>&1; exec sleep 3600");
    let container = |extra: serde_json::Value| {
        let mut c = json!({"name": "app", "image": TEST_IMAGE, "command": ["sh", "-c", command]});
        c["securityContext"] = extra;
        json!({"terminationGracePeriodSeconds": 0, "containers": [c]})
    };
    create(&server, "confined", container(json!({}))).await?;
    create(&server, "privileged", container(json!({"privileged": true}))).await?;
    for (pod, how) in [("confined", "workload"), ("confined", "exec")] {
        let text = if how == "workload" {
            k.ok(&["exec", pod, "--", "cat", "/tmp/report"])?
        } else {
            k.ok(&["exec", pod, "--", "sh", "-c", REPORT])?
        };
        let seen = report(&text);
        let want: BTreeMap<String, String> = [
            ("CapEff", DEFAULT_CAP_EFF),
            ("Seccomp", "2"),
            ("NoNewPrivs", "1"),
            ("proc-sys", "read-only"),
            ("mount", "refused"),
            ("mknod-block", "refused"),
            ("userns", "refused"),
            ("kcore", "0"),
            ("sys", "read-only"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(seen, want, "{pod} ({how}):\n{text}");
    }
    let seen = report(&k.ok(&["exec", "privileged", "--", "cat", "/tmp/report"])?);
    let cap_eff = u64::from_str_radix(seen.get("CapEff").map(String::as_str).unwrap_or("0"), 16)?;
    assert!(cap_eff & (1 << 21) != 0, "CAP_SYS_ADMIN for a privileged container: {seen:?}");
    assert_eq!(
        [
            &seen["Seccomp"],
            &seen["NoNewPrivs"],
            &seen["proc-sys"],
            &seen["mount"],
            &seen["mknod-block"],
            &seen["userns"],
            &seen["sys"]
        ],
        ["0", "0", "writable", "ok", "ok", "ok", "writable"],
        "{seen:?}"
    );
    delete_all(&server).await?;
    server.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_groups_and_what_the_node_refuses() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let k = server.kubectl("1.33")?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    // runAsUser, supplementalGroups, fsGroup on an emptyDir, a read-only root.
    create(
        &server,
        "user",
        json!({"terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000], "fsGroup": 2000, "runAsNonRoot": true},
            "containers": [{"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3600"],
                "securityContext": {"readOnlyRootFilesystem": true},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}),
    )
    .await?;
    let ids = k.ok(&["exec", "user", "--", "sh", "-c", "id -u; id -g; id -G; stat -c %g /data; grep CapEff /proc/self/status; touch /data/ok && echo data=ok; touch /root-write 2>/dev/null || echo root=read-only"])?;
    let lines: Vec<&str> = ids.lines().collect();
    assert_eq!(lines[0], "1000", "{ids}");
    assert_eq!(lines[1], "3000", "{ids}");
    assert!(
        lines[2].split_whitespace().any(|g| g == "4000") && lines[2].split_whitespace().any(|g| g == "2000"),
        "{ids}"
    );
    assert_eq!(lines[3], "2000", "the emptyDir belongs to the fsGroup: {ids}");
    assert!(lines[4].ends_with("0000000000000000"), "a non-root user has no effective capabilities: {ids}");
    assert!(ids.contains("data=ok") && ids.contains("root=read-only"), "{ids}");

    // runAsNonRoot with an image that runs as root: kubelet's reason and message.
    pods.create(
        &Default::default(),
        &pod(
            "rooted",
            json!({"securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3600"]}]}),
        )?,
    )
    .await?;
    let waiting = eventually("runAsNonRoot refused", Duration::from_secs(30), || async {
        let p = pods.get("rooted").await.ok()?;
        let w = p.status?.container_statuses?.first()?.state.clone()?.waiting?;
        (w.reason.as_deref() == Some("CreateContainerConfigError")).then_some(w.message.unwrap_or_default())
    })
    .await?;
    let uid = pods.get("rooted").await?.metadata.uid.unwrap_or_default();
    assert_eq!(
        waiting,
        format!(
            "container has runAsNonRoot and image will run as root (pod: \"rooted_default({uid})\", container: app)"
        )
    );

    // What this node cannot do is refused with the reason, not ignored.
    pods.create(
        &Default::default(),
        &pod("hostnet", json!({"hostNetwork": true, "containers": [{"name": "app", "image": TEST_IMAGE}]}))?,
    )
    .await?;
    let events: Api<Event> = Api::default_namespaced(server.client());
    let refused = eventually("hostNetwork refused", Duration::from_secs(30), || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("FailedCreatePodSandBox")).and_then(|e| e.message)
    })
    .await?;
    assert_eq!(refused, "Failed to create pod sandbox: hostNetwork not supported by Ordinal's node yet");
    delete_all(&server).await?;
    server.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_images_and_volumes_never_reach_the_host() -> anyhow::Result<()> {
    let outside = markers()?;
    let host = outside.path().canonicalize()?;
    let before = snapshot(&host);
    // An image whose /etc and /data are symlinks to host directories: the kubelet's /etc files
    // and a volume mounted below /data would be made on the host if their paths were joined
    // and followed.
    let hostile = {
        let host = host.clone();
        move |data: &ordinal::DataDir| -> std::io::Result<()> {
            let scratch = tempfile::tempdir()?;
            let rootfs = scratch.path().join("rootfs");
            agent::image::busybox_rootfs(Path::new("/bin/busybox"), &rootfs).map_err(std::io::Error::other)?;
            std::fs::remove_dir_all(rootfs.join("etc"))?;
            std::os::unix::fs::symlink(host.join("dir"), rootfs.join("etc"))?;
            std::os::unix::fs::symlink(host.join("dir"), rootfs.join("data"))?;
            let config = agent::image::ImageConfig { env: vec!["PATH=/bin".into()], ..Default::default() };
            let tar = scratch.path().join("image.tar");
            agent::image::build_from_dir(&rootfs, "localhost/hostile:1", &config, &tar)
                .map_err(std::io::Error::other)?;
            agent::image::ImageStore::open(&data.images())
                .map_err(std::io::Error::other)?
                .import(&tar)
                .map_err(std::io::Error::other)?;
            Ok(())
        }
    };
    let server = TestServer::with_pods_and(hostile).await?;
    let k = server.kubectl("1.33")?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());

    // The kubelet's /etc/hosts and the volume land inside the container's root, where its
    // links point when read from inside; the host's files stay as they were.
    create(
        &server,
        "links",
        json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "app", "image": "localhost/hostile:1",
            "command": ["sh", "-c", "echo pwned > /etc/hosts; echo pwned > /data/inside; echo pwned > /data/mnt/new; exec sleep 3600"],
            "volumeMounts": [{"name": "data", "mountPath": "/data/mnt"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}),
    )
    .await?;
    let inside = k.ok(&["exec", "links", "--", "cat", "/data/mnt/new"])?;
    assert_eq!(inside.trim(), "pwned", "the writes happened, inside");
    assert!(!mounted_on(&host), "nothing mounted on the host tree");

    // A subPath symlink one container plants for another: refused, with kubelet's reason.
    pods.create(
        &Default::default(),
        &pod("planted", json!({"terminationGracePeriodSeconds": 0,
            "initContainers": [{"name": "plant", "image": TEST_IMAGE,
                "command": ["sh", "-c", format!("ln -s {} /shared/evil", host.join("dir").display())],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}],
            "containers": [{"name": "victim", "image": TEST_IMAGE, "command": ["sh", "-c", "echo pwned > /mnt/inside; exec sleep 3600"],
                "volumeMounts": [{"name": "shared", "mountPath": "/mnt", "subPath": "evil"}]}],
            "volumes": [{"name": "shared", "emptyDir": {}}]}))?,
    )
    .await?;
    let why = eventually("the subPath refused", Duration::from_secs(30), || async {
        let p = pods.get("planted").await.ok()?;
        let w = p.status?.container_statuses?.first()?.state.clone()?.waiting?;
        (w.reason.as_deref() == Some("CreateContainerConfigError")).then_some(w.message.unwrap_or_default())
    })
    .await?;
    assert_eq!(
        why,
        "failed to prepare subPath for volumeMount \"shared\" of container \"victim\": subPath \"evil\" leads out of its volume"
    );
    assert_eq!(snapshot(&host), before, "the host tree is untouched");
    assert!(!mounted_on(&host));
    delete_all(&server).await?;
    assert_eq!(snapshot(&host), before, "the host tree is untouched");
    server.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_state_is_private() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let data = server.running_data_dir().clone();
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).ok();
    assert_eq!(mode(data.root()), Some(0o700));
    assert_eq!(mode(&data.database()), Some(0o600));
    let kubeconfig = server.running.kubeconfig.clone();
    assert_eq!(mode(&kubeconfig), Some(0o600));
    // A secret volume lives on a tmpfs, never on the disk.
    let k = server.kubectl("1.33")?;
    k.ok(&["create", "secret", "generic", "s", "--from-literal=password=hunter2"])?;
    let p = create(
        &server,
        "secretive",
        json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "app", "image": TEST_IMAGE, "command": ["sleep", "3600"],
            "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
            "volumes": [{"name": "s", "secret": {"secretName": "s"}}]}),
    )
    .await?;
    let uid = p.metadata.uid.context("uid")?;
    let dir = data.pods().join(&uid).join("volumes/s");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(&dir.to_string_lossy()))
        .context("secret volume mounted")?;
    assert!(line.contains(" - tmpfs "), "{line}");
    assert_eq!(k.ok(&["exec", "secretive", "--", "cat", "/s/password"])?, "hunter2");
    delete_all(&server).await?;
    server.finish().await
}
