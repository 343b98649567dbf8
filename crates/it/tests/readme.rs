//! The README's first command, literally: `ordinal server` with no flags, in a fresh working
//! directory (the data dir is the default, relative `./ordinal-data`). Seed 001's StatefulSet
//! with a claim per replica becomes Ready, `kubectl exec` reaches its pods, and a claim's data
//! survives the pod's deletion. The seed's `nfs-client` class is made a local one first, as a
//! user of this single machine would; its `redis:5-alpine` image is the test image (this
//! machine has no registry access), serving nothing but keeping the seed's shape.
//!
//! This binds the defaults (API port 6443, DNS 127.0.0.1:1053, bridge `ordinal0`,
//! 10.244.0.0/16, services 10.96.0.0/16): it fails, clearly, where another server holds them.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use it::process::ServerProcess;
use it::{Kubectl, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

const IMAGE: &str = "localhost/busybox:readme";

const NFS_CLIENT: &str = "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: nfs-client
provisioner: ordinal.dev/local-path
volumeBindingMode: WaitForFirstConsumer
";

/// Seed 001's `redis-pv-sts.yml` with its headless Service; only the image and its command
/// differ.
fn seed_001() -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: redis-pv-svc
spec:
  selector:
    app: redis-pv-sts
  clusterIP: None
  ports:
  - port: 6379
    protocol: TCP
    targetPort: 6379
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: redis-pv-sts

spec:
  serviceName: redis-pv-svc

  volumeClaimTemplates:
  - metadata:
      name: redis-100m-pvc
    spec:
      storageClassName: nfs-client
      accessModes:
        - ReadWriteMany
      resources:
        requests:
          storage: 100Mi

  replicas: 2
  selector:
    matchLabels:
      app: redis-pv-sts

  template:
    metadata:
      labels:
        app: redis-pv-sts
    spec:
      containers:
      - image: {IMAGE}
        name: redis
        command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 0.2; done\"]
        ports:
        - containerPort: 6379

        volumeMounts:
        - name: redis-100m-pvc
          mountPath: /data
"
    )
}

/// Removes what a defaults server leaves when the test fails: its pods, bridge, cgroups, the
/// services route and table. Armed only once this test's server serves, so a server someone else
/// runs with the defaults is never touched.
struct Defaults {
    native: agent::runtime::NativeConfig,
    armed: bool,
}

impl Drop for Defaults {
    fn drop(&mut self) {
        if self.armed {
            agent::runtime::Native::reset_blocking(&self.native);
            let route = ["route", "del", "local", "10.96.0.0/16", "dev", "lo", "table", "local"];
            let _ = std::process::Command::new("ip").args(route).output();
            it::remove_service_table(&self.native.bridge);
        }
    }
}

fn ordinal(cwd: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(it::ordinal_binary()?).args(args).current_dir(cwd).output()?;
    ensure!(out.status.success(), "ordinal {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinal_server_with_no_flags_runs_seed_001_with_claims() -> anyhow::Result<()> {
    ensure!(nix::unistd::geteuid().is_root(), "this test runs containers and needs root");
    ensure!(Path::new("/bin/busybox").exists(), "apt-get install busybox-static");
    it::init_tracing();
    let scratch = tempfile::tempdir()?;
    let cwd = scratch.path().canonicalize()?;

    // The image, with the same default data dir: `ordinal image build` from a directory.
    agent::image::busybox_rootfs(Path::new("/bin/busybox"), &cwd.join("rootfs"))?;
    let built = ordinal(&cwd, &["image", "build", "rootfs", "--tag", IMAGE, "--env", "PATH=/bin", "--", "sh"])?;
    ensure!(built.contains(IMAGE), "{built}");

    let data = cwd.join("ordinal-data");
    let kubeconfig = data.join("kubeconfig");
    let mut server = ServerProcess::spawn(&cwd, &["server"], &kubeconfig)?;
    let standard = ordinal::PodSettings::standard()?;
    let mut defaults = Defaults { native: standard.native_config(&ordinal::DataDir::create(&data)?), armed: false };
    let client = server.client().await?;
    defaults.armed = true;

    let k = Kubectl::new("1.33", &kubeconfig, &cwd)?.in_dir(&cwd);
    let old = Kubectl::new("1.27", &kubeconfig, &cwd)?.in_dir(&cwd);
    std::fs::write(cwd.join("nfs-client.yml"), NFS_CLIENT)?;
    std::fs::write(cwd.join("redis-pv-sts.yml"), seed_001())?;
    k.ok(&["apply", "-f", "nfs-client.yml"])?;
    k.ok(&["apply", "-f", "redis-pv-sts.yml"])?;
    old.ok(&["rollout", "status", "sts/redis-pv-sts", "--timeout=120s"])?;

    let pvc = k.ok(&["get", "pvc", "--no-headers"])?;
    let bound: Vec<&str> = pvc.lines().filter(|l| l.contains(" Bound ")).collect();
    ensure!(bound.len() == 2 && pvc.contains("redis-100m-pvc-redis-pv-sts-0"), "{pvc}");
    // The provisioned volumes live in this data dir, named by absolute paths.
    let paths = k.ok(&["get", "pv", "-o", "jsonpath={.items[*].spec.hostPath.path}"])?;
    for path in paths.split_whitespace() {
        ensure!(path.starts_with(&data.join("volumes").to_string_lossy().to_string()), "{path}");
    }

    // Seed 001: the pod knows its name, writes to its claim, and gets the data back after
    // the pod is deleted and recreated with the same identity.
    let hostname = k.ok(&["exec", "redis-pv-sts-0", "--", "hostname"])?;
    ensure!(hostname.trim() == "redis-pv-sts-0", "{hostname}");
    k.ok(&["exec", "redis-pv-sts-0", "--", "sh", "-c", "echo 111 > /data/a; echo 222 > /data/b"])?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let before = pods.get("redis-pv-sts-0").await?.metadata.uid.context("uid")?;
    k.ok(&["delete", "pod", "redis-pv-sts-0"])?;
    it::pod_ready(&pods, "redis-pv-sts-0", Some(&before)).await?;
    let kept = old.ok(&["exec", "redis-pv-sts-0", "--", "cat", "/data/a", "/data/b"])?;
    ensure!(kept.split_whitespace().collect::<Vec<_>>() == ["111", "222"], "{kept}");

    // A clean stop leaves the pods running (they are picked up at the next start); this test
    // removes them itself.
    let status = server.terminate()?;
    ensure!(status.success(), "ordinal server exited with {status}: {}", server.log_tail());
    let native = defaults.native.clone();
    drop(defaults);
    eventually("nothing left behind", Duration::from_secs(20), || async {
        it::leftovers(&native).is_empty().then_some(())
    })
    .await
    .with_context(|| format!("left behind: {:?}", it::leftovers(&native)))?;
    Ok(())
}
