//! Images from a registry: Debian's `docker-registry` on loopback holds the test image; pods
//! pull it directly (an insecure registry) and as `busybox` through a `docker.io` mirror, as an
//! air-gapped machine would; a missing image reads ErrImagePull, then ImagePullBackOff.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use it::{TestServer, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;

/// A local registry, stopped when dropped.
struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_registry() -> anyhow::Result<Registry> {
    let bin = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .ok_or_else(|| anyhow::anyhow!("docker-registry is missing: apt-get install docker-registry"))?;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        ),
    )?;
    let child = Command::new(bin).arg("serve").arg(&config).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let registry = Registry { child, addr: addr.clone(), _dir: dir };
    eventually("the registry answers", Duration::from_secs(20), || {
        let addr = addr.clone();
        async move {
            let mut s = std::net::TcpStream::connect(&addr).ok()?;
            std::io::Write::write_all(&mut s, b"GET /v2/ HTTP/1.0\r\n\r\n").ok()?;
            let mut reply = String::new();
            s.read_to_string(&mut reply).ok()?;
            reply.starts_with("HTTP/1.0 200").then_some(())
        }
    })
    .await?;
    Ok(registry)
}

/// Push the test image (built from busybox) to `reference`.
async fn push_test_image(reference: &str, insecure: &str) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let rootfs = scratch.path().join("rootfs");
    agent::image::busybox_rootfs(std::path::Path::new("/bin/busybox"), &rootfs)?;
    let tar = scratch.path().join("image.tar");
    let config =
        agent::image::ImageConfig { cmd: vec!["sh".into()], env: vec!["PATH=/bin".into()], ..Default::default() };
    agent::image::build_from_dir(&rootfs, "pushed:1", &config, &tar)?;
    // Read the layer and config back from the layout.
    let mut blobs = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        blobs.insert(path, bytes);
    }
    let index: serde_json::Value = serde_json::from_slice(&blobs["index.json"])?;
    let digest =
        |d: &serde_json::Value| format!("blobs/sha256/{}", d.as_str().unwrap_or("").trim_start_matches("sha256:"));
    let manifest: serde_json::Value = serde_json::from_slice(&blobs[&digest(&index["manifests"][0]["digest"])])?;
    let layer = blobs[&digest(&manifest["layers"][0]["digest"])].clone();
    let config_blob = blobs[&digest(&manifest["config"]["digest"])].clone();
    agent::image::install_crypto_provider();
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![insecure.to_string()]),
        ..Default::default()
    });
    client
        .push(
            &reference.parse()?,
            &[ImageLayer::new(layer, "application/vnd.oci.image.layer.v1.tar+gzip".into(), None)],
            Config::new(config_blob, "application/vnd.oci.image.config.v1+json".into(), None),
            &RegistryAuth::Anonymous,
            None,
        )
        .await?;
    Ok(())
}

fn waiting_reason(pod: &Pod) -> Option<(String, String)> {
    let w = pod.status.as_ref()?.container_statuses.as_ref()?.first()?.state.as_ref()?.waiting.clone()?;
    Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_pull_images_from_a_registry_and_through_a_mirror() -> anyhow::Result<()> {
    let registry = start_registry().await?;
    let addr = registry.addr.clone();
    push_test_image(&format!("{addr}/library/busybox:1.35"), &addr).await?;

    let server = TestServer::with_pods_and(|data_dir| {
        let registries = serde_json::json!({"mirrors": {"docker.io": [addr.clone()]}, "insecure": [addr.clone()]});
        std::fs::write(data_dir.registries(), registries.to_string())
    })
    .await?;
    let k = server.kubectl("1.33")?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: direct}}
spec:
  containers:
  - {{name: app, image: "{addr}/library/busybox:1.35", command: ["sh", "-c", "echo pulled; sleep 1000"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: mirrored}}
spec:
  containers:
  - {{name: app, image: "busybox:1.35", imagePullPolicy: Always, command: ["sh", "-c", "echo mirrored; sleep 1000"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: absent}}
spec:
  containers:
  - {{name: app, image: "{addr}/library/nothing-here:1"}}
"#
    );
    k.ok_stdin(&["apply", "-f", "-"], &manifest)?;
    for name in ["direct", "mirrored"] {
        let running = eventually(&format!("{name} running"), Duration::from_secs(60), || async {
            let p = pods.get_opt(name).await.ok().flatten()?;
            (p.status?.phase.as_deref() == Some("Running")).then_some(())
        })
        .await;
        if let Err(e) = running {
            let yaml = k.run(&["get", "pod", name, "-o", "yaml"])?;
            let events = k.run(&["get", "events"])?;
            anyhow::bail!(
                "{e}\n{}\n{}",
                String::from_utf8_lossy(&yaml.stdout),
                String::from_utf8_lossy(&events.stdout)
            );
        }
    }
    assert_eq!(k.ok(&["exec", "mirrored", "--", "hostname"])?.trim(), "mirrored");
    let events = k.ok(&["get", "events", "--field-selector", "involvedObject.name=mirrored"])?;
    assert!(events.contains("Successfully pulled image \"busybox:1.35\""), "{events}");
    let images = agent::image::ImageStore::open(&server.running_data_dir().images())?;
    assert!(images.get("docker.io/library/busybox:1.35")?.is_some(), "stored under its own name");

    // Not in the registry: ErrImagePull with the reason, then ImagePullBackOff.
    let (reason, message) = eventually("absent reported", Duration::from_secs(30), || async {
        waiting_reason(&pods.get_opt("absent").await.ok().flatten()?)
    })
    .await?;
    assert!(reason == "ErrImagePull" || reason == "ImagePullBackOff", "{reason}");
    assert!(message.contains("nothing-here"), "{message}");
    let backing_off = eventually("ImagePullBackOff", Duration::from_secs(30), || async {
        let (reason, message) = waiting_reason(&pods.get_opt("absent").await.ok().flatten()?)?;
        (reason == "ImagePullBackOff").then_some(message)
    })
    .await?;
    // Kubelet's wording: `Back-off pulling image "<image>"`.
    assert!(
        backing_off.starts_with("Back-off pulling image \"") && backing_off.contains("nothing-here"),
        "{backing_off}"
    );
    k.ok(&["delete", "pods", "--all", "--grace-period=1"])?;
    server.finish().await
}
