//! Deployments and ReplicaSets with real pods and real kubectl: seed `002_*`'s
//! `test-deployment.yaml` with its NodePort, random pod names that change when a pod is
//! deleted, a rolling update that surges, rollout history with change causes, undo, scale,
//! a Recreate update, and cascading deletion.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use it::{TEST_IMAGE, TestServer, eventually};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;

const V2: &str = "localhost/busybox:v2";

/// Seed 002's `test-deployment.yaml`, with the test image serving its hostname on port 80.
fn seed_deployment() -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  labels:
    app: test-nfs
  name: test-nfs-svc
spec:
  type: NodePort
  ports:
    - name: test-nfs-port
      protocol: TCP
      port: 80
      targetPort: 80
      nodePort: 31000
  selector:
    app: mynginx
---
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: mynginx
  name: mynginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: mynginx
  strategy: {{}}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: mynginx
    spec:
      containers:
      - image: {TEST_IMAGE}
        name: nginx
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
        readinessProbe:
          httpGet: {{path: /index.html, port: 80}}
          periodSeconds: 1
        resources: {{}}
status: {{}}
"#
    )
}

/// Wait until every pod of the Deployment runs `image`: once a rollout is complete the old pods
/// are on their way out, and `get pods` lists them (Terminating) until their containers have
/// stopped, as upstream's does.
async fn only_pods_of(k: &it::Kubectl, image: &str) -> anyhow::Result<()> {
    eventually(&format!("only pods of {image}"), Duration::from_secs(30), || async {
        let images =
            k.ok(&["get", "pods", "-l", "app=mynginx", "-o", "jsonpath={.items[*].spec.containers[0].image}"]).ok()?;
        (images.split_whitespace().collect::<BTreeSet<_>>() == BTreeSet::from([image])).then_some(())
    })
    .await
}

async fn pod_names(pods: &Api<Pod>) -> anyhow::Result<BTreeSet<String>> {
    Ok(pods
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_deployment_rolls_out_scales_and_rolls_back() -> anyhow::Result<()> {
    let server =
        TestServer::with_pods_and(|dir| it::import_test_image_as(dir, V2).map_err(std::io::Error::other)).await?;
    let result = scenario(&server).await;
    let clean = server.finish().await;
    result.and(clean)
}

async fn scenario(server: &TestServer) -> anyhow::Result<()> {
    let (k, old) = (server.kubectl("1.33")?, server.kubectl("1.27")?);
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let sets: Api<ReplicaSet> = Api::default_namespaced(server.client());

    // The most pods that existed at once: `peak` leaves out pods being deleted, `peak_all`
    // counts every pod until it is gone.
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak_all = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // What the watch saw, for the failure messages.
    let timeline = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (watch_pods, record, record_all, log) = (pods.clone(), peak.clone(), peak_all.clone(), timeline.clone());
    let recorder = tokio::spawn(async move {
        let (mut active, mut all) = (BTreeSet::new(), BTreeSet::new());
        let mut events = Box::pin(watcher(watch_pods, watcher::Config::default()));
        while let Some(Ok(event)) = events.next().await {
            if let watcher::Event::Apply(p) | watcher::Event::Delete(p) = &event {
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
                let line = format!(
                    "{} {} deleting={} phase={:?} ready={:?}",
                    if matches!(event, watcher::Event::Delete(_)) { "deleted" } else { "applied" },
                    p.metadata.name.as_deref().unwrap_or_default(),
                    p.metadata.deletion_timestamp.is_some(),
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    ready.map(|c| c.status.as_str()),
                );
                log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
            }
            match event {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    all.insert(name.clone());
                    if p.metadata.deletion_timestamp.is_none() {
                        active.insert(name);
                    } else {
                        active.remove(&name);
                    }
                }
                watcher::Event::Delete(p) => {
                    let name = p.metadata.name.unwrap_or_default();
                    active.remove(&name);
                    all.remove(&name);
                }
                _ => continue,
            }
            record.fetch_max(active.len(), std::sync::atomic::Ordering::SeqCst);
            record_all.fetch_max(all.len(), std::sync::atomic::Ordering::SeqCst);
        }
    });

    k.ok_stdin(&["apply", "-f", "-"], &seed_deployment())?;
    k.ok(&["rollout", "status", "deploy/mynginx", "--timeout=90s"])?;
    // Three pods, started together, named <deployment>-<pod-template-hash>-<random>.
    let rs_name = k.ok(&["get", "rs", "-l", "app=mynginx", "-o", "jsonpath={.items[0].metadata.name}"])?;
    let names = pod_names(&pods).await?;
    assert_eq!(names.len(), 3, "{names:?}");
    for n in &names {
        let suffix = n.strip_prefix(&format!("{}-", rs_name.trim())).unwrap_or_default();
        assert_eq!(suffix.len(), 5, "{n} is not {rs_name}-<5 random characters>");
    }
    let listed = k.ok(&["get", "deploy", "mynginx", "--no-headers"])?;
    assert!(listed.starts_with("mynginx") && listed.contains("3/3"), "{listed}");

    // The seed's NodePort answers on the host's loopback with one of the pods' names.
    let answer = eventually("NodePort 31000 answers", Duration::from_secs(30), || async {
        let page = it::http_get(([127, 0, 0, 1], 31000).into()).await.ok()?;
        names.contains(&page).then_some(page)
    })
    .await?;
    assert!(names.contains(&answer));

    // A deleted pod is replaced under a new name.
    let victim = names.iter().next().cloned().unwrap_or_default();
    k.ok(&["delete", "pod", &victim])?;
    let replaced = eventually("a replacement pod", Duration::from_secs(60), || async {
        let now = pod_names(&pods).await.ok()?;
        (now.len() == 3 && !now.contains(&victim)).then_some(now)
    })
    .await?;
    assert_eq!(replaced.intersection(&names).count(), 2);

    // A rolling update with a recorded cause: surge to four pods, never below three ready.
    k.ok(&["annotate", "deploy/mynginx", "kubernetes.io/change-cause=image v2"])?;
    old.ok(&["set", "image", "deploy/mynginx", &format!("nginx={V2}")])?;
    k.ok(&["rollout", "status", "deploy/mynginx", "--timeout=90s"])?;
    only_pods_of(&k, V2).await?;
    assert_eq!(
        peak.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "maxSurge 25% of 3 rounds up to one extra pod; the pods seen:\n{}",
        timeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner).join("\n")
    );
    let rs_list = k.ok(&["get", "rs", "-l", "app=mynginx", "--no-headers"])?;
    assert_eq!(rs_list.lines().count(), 2, "the old ReplicaSet stays, scaled to zero: {rs_list}");
    let history = k.ok(&["rollout", "history", "deploy/mynginx"])?;
    assert!(history.contains("1  ") && history.contains("2         image v2"), "{history}");

    // Undo: back to the first template, as revision 3; the old ReplicaSet is reused.
    k.ok(&["rollout", "undo", "deploy/mynginx"])?;
    k.ok(&["rollout", "status", "deploy/mynginx", "--timeout=90s"])?;
    only_pods_of(&k, TEST_IMAGE).await?;
    let revisions = k.ok(&[
        "get",
        "rs",
        "-l",
        "app=mynginx",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.annotations.deployment\.kubernetes\.io/revision}{" "}{end}"#,
    ])?;
    let mut revisions: Vec<&str> = revisions.split_whitespace().collect();
    revisions.sort();
    assert_eq!(revisions, ["2", "3"], "undo gives the reused ReplicaSet the next revision");
    let history = k.ok(&["rollout", "history", "deploy/mynginx"])?;
    assert!(history.contains("3  ") && !history.contains("\n1  "), "{history}");

    // Scale: five ready pods.
    k.ok(&["scale", "deploy/mynginx", "--replicas=5"])?;
    k.ok(&["rollout", "status", "deploy/mynginx", "--timeout=90s"])?;
    let ready = k.ok(&["get", "deploy", "mynginx", "-o", "jsonpath={.status.readyReplicas}"])?;
    assert_eq!(ready.trim(), "5");

    // Recreate: every old pod is gone before a new one starts, so never more than five exist.
    k.ok(&["patch", "deploy/mynginx", "-p", r#"{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}"#])?;
    peak_all.store(0, std::sync::atomic::Ordering::SeqCst);
    k.ok(&["set", "image", "deploy/mynginx", &format!("nginx={V2}")])?;
    k.ok(&["rollout", "status", "deploy/mynginx", "--timeout=90s"])?;
    let images = k.ok(&["get", "pods", "-l", "app=mynginx", "-o", "jsonpath={.items[*].spec.containers[0].image}"])?;
    assert_eq!(images.split_whitespace().collect::<Vec<_>>(), [V2; 5], "{images}");
    assert_eq!(peak_all.load(std::sync::atomic::Ordering::SeqCst), 5, "old and new pods never overlap");
    recorder.abort();

    // Deleting the Deployment takes its ReplicaSets and pods with it.
    k.ok(&["delete", "deploy", "mynginx"])?;
    eventually("ReplicaSets and pods gone", Duration::from_secs(60), || async {
        let no_rs = sets.list(&Default::default()).await.ok()?.items.is_empty();
        let no_pods = pods.list(&Default::default()).await.ok()?.items.is_empty();
        (no_rs && no_pods).then_some(())
    })
    .await?;
    k.ok(&["delete", "svc", "test-nfs-svc"])?;
    Ok(())
}
