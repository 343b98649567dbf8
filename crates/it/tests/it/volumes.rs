//! Persistent volumes with real pods (seeds 001, 002 and 004): claims bind to static hostPath
//! volumes of their class or to volumes the local provisioner makes for them, data outlives the
//! pods, claims outlive scale-down and the StatefulSet, and reclaiming follows the policy.

use std::time::Duration;

use it::{TEST_IMAGE, TestServer, eventually};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Api;

fn sts(name: &str, replicas: u32, class: Option<&str>) -> String {
    let class = class.map(|c| format!("      storageClassName: {c}\n")).unwrap_or_default();
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  clusterIP: None
  selector: {{app: {name}}}
  ports: [{{port: 80}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}}}
spec:
  serviceName: {name}
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: {TEST_IMAGE}
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
        volumeMounts: [{{name: www, mountPath: /usr/share/nginx/html}}]
  volumeClaimTemplates:
  - metadata: {{name: www}}
    spec:
      accessModes: ["ReadWriteOnce"]
{class}      resources: {{requests: {{storage: 1Gi}}}}
"#
    )
}

fn phase_of_claim(c: &PersistentVolumeClaim) -> String {
    c.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_bind_static_and_provisioned_volumes_and_data_outlives_pods() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let k = server.kubectl("1.33")?;
    let old = server.kubectl("1.27")?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(server.client());
    let volumes: Api<PersistentVolume> = Api::all(server.client());

    // The default class exists from the start.
    let classes = k.ok(&["get", "storageclass"])?;
    assert!(classes.contains("local-path (default)") && classes.contains("ordinal.dev/local-path"), "{classes}");
    assert!(classes.contains("WaitForFirstConsumer"), "{classes}");

    // Seed 002: three hostPath volumes of a class, a StatefulSet whose claims name it.
    let host = server.dir.path().join("mnt");
    let mut manifest = String::new();
    for i in 0..3 {
        manifest.push_str(&format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: test-{i}, labels: {{type: local}}}}\nspec:\n  storageClassName: manual\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  hostPath: {{path: {}}}\n---\n",
            host.join(format!("test-{i}")).display()
        ));
    }
    manifest.push_str(&sts("statefulset-test", 3, Some("manual")));
    // `kubectl get pvc -w` shows each claim go from Pending to Bound.
    let mut watch = old.spawn(&["get", "pvc", "-w"])?;
    let out = watch.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(out).lines().map_while(Result::ok).collect::<Vec<String>>()
    });
    k.ok_stdin(&["apply", "-f", "-"], &manifest)?;
    for i in 0..3 {
        it::pod_ready(&pods, &format!("statefulset-test-{i}"), None).await?;
    }
    watch.kill()?;
    watch.wait()?;
    let seen = reader.join().map_err(|_| anyhow::anyhow!("watch reader panicked"))?;
    // (The watch may start after the first claim bound; later ones are created one by one.)
    let went_through = |claim: &str| {
        let states: Vec<&String> = seen.iter().filter(|l| l.starts_with(&format!("{claim} "))).collect();
        let pending = states.iter().position(|l| l.contains("Pending"));
        let bound = states.iter().rposition(|l| l.contains(" Bound "));
        matches!((pending, bound), (Some(p), Some(b)) if p < b)
    };
    assert!(went_through("www-statefulset-test-2"), "{seen:?}");
    let table = old.ok(&["get", "pvc", "--no-headers"])?;
    for i in 0..3 {
        let line = table.lines().find(|l| l.starts_with(&format!("www-statefulset-test-{i} "))).unwrap_or_default();
        assert!(line.contains("Bound") && line.contains("test-") && line.contains("manual"), "{table}");
    }
    let pvs = k.ok(&["get", "pv", "--no-headers"])?;
    assert_eq!(pvs.lines().filter(|l| l.contains("Bound")).count(), 3, "{pvs}");
    // What the pod writes lands in the volume's host directory.
    k.ok(&["exec", "statefulset-test-0", "--", "sh", "-c", "echo hello > /usr/share/nginx/html/index.html"])?;
    let bound_to = claims.get("www-statefulset-test-0").await?.spec.and_then(|s| s.volume_name).unwrap_or_default();
    assert_eq!(std::fs::read_to_string(host.join(&bound_to).join("index.html"))?, "hello\n");

    // A claim of an Immediate class with no volume yet holds its pod Pending, unscheduled, as
    // upstream's VolumeBinding plugin does; the volume's arrival lets it go.
    let late = format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: late}}\nspec:\n  storageClassName: manual2\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: waiter}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {TEST_IMAGE}\n    command: [sleep, '3600']\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes:\n  - name: data\n    persistentVolumeClaim: {{claimName: late}}\n"
    );
    k.ok_stdin(&["apply", "-f", "-"], &late)?;
    let message = eventually("waiter to be held back", Duration::from_secs(30), || async {
        let pod = pods.get("waiter").await.ok()?;
        let conditions = pod.status?.conditions?;
        let scheduled = conditions.into_iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
        scheduled.message
    })
    .await?;
    assert_eq!(message, "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.");
    assert!(pods.get("waiter").await?.spec.and_then(|s| s.node_name).is_none(), "not bound to the node");
    let pv = format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: late}}\nspec:\n  storageClassName: manual2\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  hostPath: {{path: {}}}\n",
        host.join("late").display()
    );
    k.ok_stdin(&["apply", "-f", "-"], &pv)?;
    it::pod_ready(&pods, "waiter", None).await?;
    k.ok(&["delete", "pod", "waiter"])?;
    k.ok(&["delete", "pvc", "late"])?;
    k.ok(&["delete", "pv", "late"])?;

    // Seed 004: no class named, so the default class provisions one volume per claim.
    k.ok_stdin(&["apply", "-f", "-"], &sts("web", 2, None))?;
    let web0 = it::pod_ready(&pods, "web-0", None).await?;
    it::pod_ready(&pods, "web-1", None).await?;
    let table = k.ok(&["get", "pvc", "www-web-0", "--no-headers"])?;
    let cols: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(
        (cols[1], &cols[2][..4], cols[3], cols[4], cols[5]),
        ("Bound", "pvc-", "1Gi", "RWO", "local-path"),
        "{table}"
    );

    // Seed 001: data written by web-0 is there for the new web-0.
    k.ok(&["exec", "web-0", "--", "sh", "-c", "echo kept > /usr/share/nginx/html/data"])?;
    k.ok(&["delete", "pod", "web-0"])?;
    it::pod_ready(&pods, "web-0", web0.metadata.uid.as_deref()).await?;
    assert_eq!(k.ok(&["exec", "web-0", "--", "cat", "/usr/share/nginx/html/data"])?, "kept\n");

    // Scale 2 → 1 → 2 keeps and reuses the claims.
    k.ok(&["exec", "web-1", "--", "sh", "-c", "echo one > /usr/share/nginx/html/data"])?;
    k.ok(&["scale", "sts", "web", "--replicas=1"])?;
    eventually("web-1 gone", Duration::from_secs(60), || async {
        pods.get_opt("web-1").await.ok().and_then(|p| p.is_none().then_some(()))
    })
    .await?;
    assert_eq!(phase_of_claim(&claims.get("www-web-1").await?), "Bound", "the claim outlives scale-down");
    k.ok(&["scale", "sts", "web", "--replicas=2"])?;
    it::pod_ready(&pods, "web-1", None).await?;
    assert_eq!(k.ok(&["exec", "web-1", "--", "cat", "/usr/share/nginx/html/data"])?, "one\n");

    // Growing a claim of an expandable class grows its volume.
    k.ok(&["patch", "pvc", "www-web-1", "-p", r#"{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}"#])?;
    eventually("www-web-1 expanded", Duration::from_secs(30), || async {
        let c = claims.get("www-web-1").await.ok()?;
        let cap = c.status?.capacity?.get("storage")?.0.clone();
        (cap == "2Gi").then_some(())
    })
    .await?;

    // Beyond upstream: growing the set's claim template grows every claim of it.
    k.ok(&[
        "patch",
        "sts",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/volumeClaimTemplates/0/spec/resources/requests/storage","value":"3Gi"}]"#,
    ])?;
    for claim in ["www-web-0", "www-web-1"] {
        eventually(&format!("{claim} grown with its template"), Duration::from_secs(30), || async {
            let cap = claims.get(claim).await.ok()?.status?.capacity?.get("storage")?.0.clone();
            (cap == "3Gi").then_some(())
        })
        .await?;
    }
    let shrink = k.fails(&[
        "patch",
        "sts",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/volumeClaimTemplates/0/spec/resources/requests/storage","value":"1Gi"}]"#,
    ])?;
    assert!(shrink.contains("may only grow"), "{shrink}");
    // Recycle is refused, as deprecated.
    let recycle = k.fails_stdin(&["apply", "-f", "-"],
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: old-style}\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  persistentVolumeReclaimPolicy: Recycle\n  hostPath: {path: /tmp/old-style}\n")?;
    assert!(recycle.contains("Recycle reclaim policy is deprecated"), "{recycle}");

    // A claim in use is protected: deleting it waits for its pod to go.
    let provisioned = claims.get("www-web-0").await?.spec.and_then(|s| s.volume_name).unwrap_or_default();
    let provisioned_dir = server.running_data_dir().volumes().join(&provisioned);
    assert!(provisioned_dir.join("data").exists());
    let host_path = volumes.get(&provisioned).await?.spec.and_then(|s| s.host_path).map(|h| h.path);
    assert_eq!(host_path.as_deref(), provisioned_dir.to_str(), "the volume names its directory by its absolute path");
    k.ok(&["delete", "pvc", "www-web-0", "--wait=false"])?;
    let protected = claims.get("www-web-0").await?;
    assert!(protected.metadata.deletion_timestamp.is_some(), "marked for deletion");
    assert!(protected.metadata.finalizers.unwrap_or_default().contains(&"kubernetes.io/pvc-protection".to_string()));

    // Deleting the StatefulSets keeps the other claims; the protected one goes with its pod, and
    // its provisioned volume (reclaim Delete) with it, directory and all.
    k.ok(&["delete", "sts", "web", "statefulset-test"])?;
    eventually("pods gone", Duration::from_secs(60), || async {
        pods.list(&Default::default()).await.ok().filter(|l| l.items.is_empty())
    })
    .await?;
    eventually("www-web-0 and its volume gone", Duration::from_secs(30), || async {
        let claim_gone = claims.get_opt("www-web-0").await.ok()?.is_none();
        let volume_gone = volumes.get_opt(&provisioned).await.ok()?.is_none();
        (claim_gone && volume_gone).then_some(())
    })
    .await?;
    assert!(!provisioned_dir.exists(), "the provisioned directory is removed");
    assert_eq!(claims.list(&Default::default()).await?.items.len(), 4, "claims outlive their StatefulSet");
    // Static volumes (reclaim Retain) are Released and keep their data.
    k.ok(&["delete", "pvc", "--all"])?;
    eventually("static volumes released", Duration::from_secs(60), || async {
        let list = volumes.list(&Default::default()).await.ok()?.items;
        let phases: Vec<String> =
            list.iter().map(|v| v.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default()).collect();
        (list.len() == 3 && phases.iter().all(|p| p == "Released")).then_some(())
    })
    .await?;
    assert!(host.join(&bound_to).join("index.html").exists(), "static volumes keep their data");
    // persistentVolumeClaimRetentionPolicy Delete: claims go on scale-down and with the set,
    // and their provisioned volumes with them.
    let retained = sts("tmp", 2, None).replace(
        "  serviceName: tmp\n",
        "  serviceName: tmp\n  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete, whenDeleted: Delete}\n",
    );
    k.ok_stdin(&["apply", "-f", "-"], &retained)?;
    it::pod_ready(&pods, "tmp-1", None).await?;
    let volume_of = |c: PersistentVolumeClaim| c.spec.and_then(|s| s.volume_name).unwrap_or_default();
    let (v0, v1) = (volume_of(claims.get("www-tmp-0").await?), volume_of(claims.get("www-tmp-1").await?));
    k.ok(&["scale", "sts", "tmp", "--replicas=1"])?;
    eventually("www-tmp-1 and its volume deleted on scale-down", Duration::from_secs(60), || async {
        let gone = claims.get_opt("www-tmp-1").await.ok()?.is_none() && volumes.get_opt(&v1).await.ok()?.is_none();
        gone.then_some(())
    })
    .await?;
    assert!(claims.get_opt("www-tmp-0").await?.is_some());
    k.ok(&["delete", "sts", "tmp"])?;
    eventually("www-tmp-0 and its volume deleted with the set", Duration::from_secs(60), || async {
        let gone = claims.get_opt("www-tmp-0").await.ok()?.is_none() && volumes.get_opt(&v0).await.ok()?.is_none();
        gone.then_some(())
    })
    .await?;
    server.finish().await
}
