//! The StatefulSet controller against the real server, with a kubelet double marking pods
//! Running and Ready.

use std::time::Duration;

use it::{FakeKubelet, TestServer, eventually};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::api::sts_manifest;

const WAIT: Duration = Duration::from_secs(20);

async fn pod_names(pods: &Api<Pod>) -> Vec<String> {
    let mut names: Vec<String> = pods
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

/// Wait until the set reports `n` ready replicas, all updated, at its latest generation.
async fn settled(sets: &Api<StatefulSet>, n: i32) -> anyhow::Result<StatefulSet> {
    eventually(&format!("web to settle at {n} ready replicas"), WAIT, || async {
        let s = sets.get("web").await.ok()?;
        let st = s.status.clone()?;
        let done = st.observed_generation == s.metadata.generation
            && st.ready_replicas == Some(n)
            && st.replicas == n
            && st.updated_replicas == Some(n)
            && st.current_revision == st.update_revision;
        done.then_some(s)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_ready_lifecycle() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client();
    let kubelet = FakeKubelet::start(client.clone(), "default");
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());

    sets.create(&PostParams::default(), &sts_manifest("web", 3, "nginx:1.25")).await?;
    let set = settled(&sets, 3).await?;
    assert_eq!(pod_names(&pods).await, ["web-0", "web-1", "web-2"]);
    assert_eq!(kubelet.events(), ["created web-0", "created web-1", "created web-2"], "created in ordinal order");
    let claim_names: Vec<String> =
        claims.list(&Default::default()).await?.items.into_iter().filter_map(|c| c.metadata.name).collect();
    assert_eq!(claim_names, ["www-web-0", "www-web-1", "www-web-2"]);
    let web1 = pods.get("web-1").await?;
    let spec = web1.spec.clone().unwrap_or_default();
    assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("web-1"), Some("web")));
    let revision = set.status.and_then(|s| s.update_revision).unwrap_or_default();
    assert_eq!(web1.metadata.labels.and_then(|l| l.get("controller-revision-hash").cloned()), Some(revision.clone()));

    // Scale down: highest first; claims stay.
    sets.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}}))).await?;
    settled(&sets, 1).await?;
    assert_eq!(pod_names(&pods).await, ["web-0"]);
    let log = kubelet.events();
    assert_eq!(&log[log.len() - 2..], ["deleted web-2", "deleted web-1"]);
    assert_eq!(claims.list(&Default::default()).await?.items.len(), 3, "claims outlive scale-down");

    // A deleted pod comes back with the same name.
    let old_uid = pods.get("web-0").await?.metadata.uid;
    pods.delete("web-0", &DeleteParams::default()).await?;
    eventually("web-0 to be recreated", WAIT, || async {
        let p = pods.get_opt("web-0").await.ok()??;
        (p.metadata.uid != old_uid).then_some(())
    })
    .await?;

    // Rolling update: top down, one at a time.
    sets.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}}))).await?;
    settled(&sets, 3).await?;
    let before = kubelet.events().len();
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}}});
    sets.patch("web", &PatchParams::default(), &Patch::Strategic(image)).await?;
    let updated = settled(&sets, 3).await?;
    let new_revision = updated.status.and_then(|s| s.update_revision).unwrap_or_default();
    assert_ne!(new_revision, revision);
    let deletions: Vec<String> =
        kubelet.events()[before..].iter().filter(|e| e.starts_with("deleted")).cloned().collect();
    assert_eq!(deletions, ["deleted web-2", "deleted web-1", "deleted web-0"]);
    for p in pods.list(&Default::default()).await?.items {
        assert_eq!(
            p.metadata.labels.and_then(|l| l.get("controller-revision-hash").cloned()).as_deref(),
            Some(new_revision.as_str())
        );
    }

    // Deleting the set removes its pods (garbage collector) and keeps the claims.
    sets.delete("web", &DeleteParams::background()).await?;
    eventually("pods to be gone", WAIT, || async { pod_names(&pods).await.is_empty().then_some(()) }).await?;
    assert_eq!(claims.list(&Default::default()).await?.items.len(), 3);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_creates_without_waiting_for_readiness() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client();
    let kubelet = FakeKubelet::start(client.clone(), "default");
    kubelet.auto_ready.store(false, std::sync::atomic::Ordering::SeqCst);
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let mut manifest = serde_json::to_value(sts_manifest("web", 3, "nginx"))?;
    manifest["spec"]["podManagementPolicy"] = json!("Parallel");
    sets.create(&PostParams::default(), &serde_json::from_value(manifest)?).await?;
    eventually("all three pods, none ready", WAIT, || async {
        (pod_names(&pods).await == ["web-0", "web-1", "web-2"]).then_some(())
    })
    .await?;
    // With OrderedReady the same set creates db-1 only once db-0 is ready.
    let ordered: Api<StatefulSet> = Api::default_namespaced(client.clone());
    ordered.create(&PostParams::default(), &sts_manifest("db", 3, "postgres")).await?;
    eventually("db-0", WAIT, || async { pods.get_opt("db-0").await.ok()?.map(|_| ()) }).await?;
    kubelet.log.lock().map_err(|_| anyhow::anyhow!("log poisoned"))?.push("marking db-0 ready".into());
    FakeKubelet::mark_ready(&pods, "db-0").await?;
    eventually("db-1", WAIT, || async { pods.get_opt("db-1").await.ok()?.map(|_| ()) }).await?;
    let log = kubelet.events();
    let marked = log.iter().position(|e| e == "marking db-0 ready");
    let created = log.iter().position(|e| e == "created db-1");
    assert!(marked < created, "db-1 appeared only after db-0 was ready: {log:?}");
    server.stop().await;
    Ok(())
}

async fn rollout_session(version: &str) -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let _kubelet = FakeKubelet::start(server.client(), "default");
    let k = server.kubectl(version)?;
    let sets: Api<StatefulSet> = Api::default_namespaced(server.client());
    let manifest = serde_json::to_string(&sts_manifest("web", 3, "nginx:1.25"))?;
    k.ok_stdin(&["apply", "-f", "-"], &manifest)?;
    let out = k.ok(&["rollout", "status", "sts/web", "--timeout=60s"])?;
    assert!(out.contains("partitioned roll out complete: 3 new pods have been updated"), "{out}");
    assert_eq!(k.ok(&["get", "sts", "web", "-o", "jsonpath={.status.readyReplicas}"])?, "3");

    // Seed 000's order: roll to the new image, then annotate the cause; `rollout history`
    // shows it against the revision it describes (beyond upstream, as a Deployment does).
    k.ok(&["set", "image", "sts/web", "nginx=nginx:1.26"])?;
    let out = k.ok(&["rollout", "status", "sts/web", "--timeout=60s"])?;
    assert!(out.contains("partitioned roll out complete"), "{out}");
    settled(&sets, 3).await?;
    k.ok(&["annotate", "sts", "web", "kubernetes.io/change-cause=upgrade to 1.26"])?;
    history_shows(&k, "sts/web", &["1 <none>", "2 upgrade to 1.26"]).await?;

    // The Deployment the seed contrasts it with, in the same order.
    let deployment = serde_json::to_string(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "front"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "front"}},
            "template": {"metadata": {"labels": {"app": "front"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}}
    }))?;
    k.ok_stdin(&["apply", "-f", "-"], &deployment)?;
    k.ok(&["rollout", "status", "deploy/front", "--timeout=60s"])?;
    k.ok(&["set", "image", "deploy/front", "nginx=nginx:1.26"])?;
    k.ok(&["rollout", "status", "deploy/front", "--timeout=60s"])?;
    k.ok(&["annotate", "deploy/front", "kubernetes.io/change-cause=upgrade to 1.26"])?;
    history_shows(&k, "deploy/front", &["1 <none>", "2 upgrade to 1.26"]).await?;

    // rollout restart is a template annotation: a new revision rolls every pod.
    k.ok(&["rollout", "restart", "sts/web"])?;
    let out = k.ok(&["rollout", "status", "sts/web", "--timeout=60s"])?;
    assert!(out.contains("partitioned roll out complete"), "{out}");
    settled(&sets, 3).await?;
    let restarted = k.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    ])?;
    assert_eq!(restarted.split_whitespace().count(), 3, "every pod carries the restart annotation: {restarted:?}");
    let out = k.ok(&["rollout", "undo", "sts/web"])?;
    assert!(out.contains("rolled back"), "{out}");
    settled(&sets, 3).await?;
    let image = k.ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.containers[0].image}"])?;
    assert_eq!(image, "nginx:1.26 nginx:1.26 nginx:1.26", "back to the revision before the restart");
    let restarted = k.ok(&["get", "sts", "web", "-o", "jsonpath={.spec.template.metadata.annotations}"])?;
    assert!(!restarted.contains("restartedAt"), "{restarted}");
    let history = k.ok(&["rollout", "history", "sts/web"])?;
    let numbers: Vec<&str> = history.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(numbers, ["1", "3", "4"], "the undone-to revision 2 is renumbered 4:\n{history}");
    server.stop().await;
    Ok(())
}

/// Wait until `kubectl rollout history` lists exactly these revisions (the controller records a
/// cause on its next sync after the annotation).
async fn history_shows(k: &it::Kubectl, what: &str, rows: &[&str]) -> anyhow::Result<()> {
    let found = eventually(&format!("{what} history to show {rows:?}"), WAIT, || async {
        let history = k.ok(&["rollout", "history", what]).ok()?;
        let found: Vec<String> = history
            .lines()
            .skip(2)
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect();
        (found == rows).then_some(found)
    })
    .await?;
    assert_eq!(found, rows);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_rollout_status_history_undo() -> anyhow::Result<()> {
    rollout_session("1.27").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_rollout_status_history_undo() -> anyhow::Result<()> {
    rollout_session("1.33").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_policy_delete_removes_claims_on_scale_down_and_set_deletion() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client();
    let _kubelet = FakeKubelet::start(client.clone(), "default");
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    let mut manifest = serde_json::to_value(sts_manifest("web", 3, "nginx"))?;
    manifest["spec"]["persistentVolumeClaimRetentionPolicy"] = json!({"whenDeleted": "Delete", "whenScaled": "Delete"});
    sets.create(&PostParams::default(), &serde_json::from_value(manifest)?).await?;
    settled(&sets, 3).await?;
    let names = || async {
        let mut n: Vec<String> = claims
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        n.sort();
        n
    };
    assert_eq!(names().await, ["www-web-0", "www-web-1", "www-web-2"]);
    sets.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}}))).await?;
    eventually("claims of scaled-away pods to go", WAIT, || async { (names().await == ["www-web-0"]).then_some(()) })
        .await?;
    // Scale up again: the new web-1 gets a fresh claim.
    sets.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}}))).await?;
    settled(&sets, 2).await?;
    assert_eq!(names().await, ["www-web-0", "www-web-1"]);
    sets.delete("web", &DeleteParams::background()).await?;
    eventually("every claim to go with the set", WAIT, || async { names().await.is_empty().then_some(()) }).await?;
    server.stop().await;
    Ok(())
}

/// The controller is an ordinary client: run it over HTTPS against an API server that has no
/// controllers of its own, as `ordinal operator` runs it against any cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_runs_as_an_operator_over_https() -> anyhow::Result<()> {
    let server = TestServer::api_only().await?;
    let remote = server.https_client().await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let operator = tokio::spawn(controllers_statefulset(remote.clone(), shutdown.clone()));
    let _kubelet = FakeKubelet::start(remote.clone(), "default");
    let sets: Api<StatefulSet> = Api::default_namespaced(remote);
    sets.create(&PostParams::default(), &sts_manifest("web", 2, "nginx")).await?;
    settled(&sets, 2).await?;
    shutdown.cancel();
    operator.await?;
    server.stop().await;
    Ok(())
}

async fn controllers_statefulset(client: kube::Client, shutdown: tokio_util::sync::CancellationToken) {
    ordinal::operator::run_statefulset_controller(client, shutdown, None).await;
}

/// A revision with the set's data that another (gone) set still owns is the set's revision,
/// as upstream's `CreateControllerRevision` decides, not a hash collision: a set recreated
/// while its predecessor's history is still being orphaned keeps its pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_revision_with_the_same_data_is_reused_whoever_owns_it() -> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::ControllerRevision;
    let server = TestServer::api_only().await?;
    let client = server.client();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let operator = tokio::spawn(controllers_statefulset(client.clone(), shutdown.clone()));
    let _kubelet = FakeKubelet::start(client.clone(), "default");
    // The predecessor's revision: the same template, still owned by a set that is gone.
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    let defaulted = sets.create(&dry_run, &sts_manifest("web", 2, "nginx")).await?;
    let mut revision = logic::statefulset::revision::new_revision(&defaulted, 0, 1);
    revision.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
        "uid": "00000000-0000-0000-0000-00000000dead", "controller": true, "blockOwnerDeletion": true}))?]);
    let revisions: Api<ControllerRevision> = Api::default_namespaced(client.clone());
    let existing = revisions.create(&PostParams::default(), &revision).await?;

    sets.create(&PostParams::default(), &sts_manifest("web", 2, "nginx")).await?;
    let set = settled(&sets, 2).await?;
    let status = set.status.unwrap_or_default();
    assert_eq!(status.update_revision, existing.metadata.name, "the existing revision is the set's");
    assert_eq!(status.collision_count.unwrap_or(0), 0, "no collision counted");
    assert_eq!(revisions.list(&Default::default()).await?.items.len(), 1, "no second revision");
    shutdown.cancel();
    operator.await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_pods_and_history_are_adopted_by_a_recreated_set() -> anyhow::Result<()> {
    use kube::api::PropagationPolicy;
    let server = TestServer::start().await?;
    let client = server.client();
    let _kubelet = FakeKubelet::start(client.clone(), "default");
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    sets.create(&PostParams::default(), &sts_manifest("web", 2, "nginx")).await?;
    let first = settled(&sets, 2).await?;
    let uids: Vec<Option<String>> =
        pods.list(&Default::default()).await?.items.into_iter().map(|p| p.metadata.uid).collect();

    let orphan = DeleteParams { propagation_policy: Some(PropagationPolicy::Orphan), ..Default::default() };
    sets.delete("web", &orphan).await?;
    eventually("the set to be gone", WAIT, || async { sets.get_opt("web").await.ok()?.is_none().then_some(()) })
        .await?;
    eventually("pods to be orphaned", WAIT, || async {
        let items = pods.list(&Default::default()).await.ok()?.items;
        items.iter().all(|p| p.metadata.owner_references.clone().unwrap_or_default().is_empty()).then_some(())
    })
    .await?;

    sets.create(&PostParams::default(), &sts_manifest("web", 2, "nginx")).await?;
    let second = settled(&sets, 2).await?;
    let after: Vec<Option<String>> =
        pods.list(&Default::default()).await?.items.into_iter().map(|p| p.metadata.uid).collect();
    assert_eq!(after, uids, "the same pods, adopted rather than recreated");
    assert_eq!(
        second.status.and_then(|s| s.update_revision),
        first.status.and_then(|s| s.update_revision),
        "the orphaned revision was adopted"
    );
    for p in pods.list(&Default::default()).await?.items {
        let owner = p.metadata.owner_references.unwrap_or_default();
        assert_eq!(owner.first().map(|o| o.uid.clone()), second.metadata.uid.clone());
    }
    server.stop().await;
    Ok(())
}

fn revisions_of(pods: &[Pod]) -> Vec<String> {
    let mut v: Vec<(String, String)> = pods
        .iter()
        .map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let rev =
                p.metadata.labels.as_ref().and_then(|l| l.get("controller-revision-hash").cloned()).unwrap_or_default();
            (name, rev)
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, r)| r).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_canary_then_full_rollout_survives_a_restart() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let kubelet = FakeKubelet::start(server.client(), "default");
    let sets: Api<StatefulSet> = Api::default_namespaced(server.client());
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let mut manifest = serde_json::to_value(sts_manifest("web", 3, "nginx:1.25"))?;
    manifest["spec"]["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}});
    sets.create(&PostParams::default(), &serde_json::from_value(manifest)?).await?;
    let old = settled(&sets, 3).await?.status.and_then(|s| s.update_revision).unwrap_or_default();

    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}}});
    sets.patch("web", &PatchParams::default(), &Patch::Strategic(image)).await?;
    let canary = eventually("the canary web-2 at the new revision", WAIT, || async {
        let s = sets.get("web").await.ok()?;
        let st = s.status?;
        (st.observed_generation == s.metadata.generation
            && st.updated_replicas == Some(1)
            && st.ready_replicas == Some(3))
        .then_some(st)
    })
    .await?;
    let new = canary.update_revision.clone().unwrap_or_default();
    assert_eq!(canary.current_revision.as_deref(), Some(old.as_str()), "a partitioned rollout is not complete");
    assert_eq!(revisions_of(&pods.list(&Default::default()).await?.items), [old.clone(), old.clone(), new.clone()]);

    // Release the partition, then restart the server in the middle of the rollout.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await?;
    drop(kubelet);
    let server = server.restart().await?;
    let _kubelet = FakeKubelet::start(server.client(), "default");
    let sets: Api<StatefulSet> = Api::default_namespaced(server.client());
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let done = settled(&sets, 3).await?;
    assert_eq!(done.status.and_then(|s| s.current_revision), Some(new.clone()));
    let items = pods.list(&Default::default()).await?.items;
    assert_eq!(items.len(), 3, "no duplicate pods");
    assert_eq!(revisions_of(&items), [new.clone(), new.clone(), new]);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_delete_replaces_only_deleted_pods() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let _kubelet = FakeKubelet::start(server.client(), "default");
    let sets: Api<StatefulSet> = Api::default_namespaced(server.client());
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let mut manifest = serde_json::to_value(sts_manifest("web", 2, "nginx:1.25"))?;
    manifest["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    sets.create(&PostParams::default(), &serde_json::from_value(manifest)?).await?;
    let old = settled(&sets, 2).await?.status.and_then(|s| s.update_revision).unwrap_or_default();
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}}});
    sets.patch("web", &PatchParams::default(), &Patch::Strategic(image)).await?;
    let status = eventually("the new update revision", WAIT, || async {
        let s = sets.get("web").await.ok()?;
        let st = s.status?;
        (st.observed_generation == s.metadata.generation && st.update_revision.as_deref() != Some(old.as_str()))
            .then_some(st)
    })
    .await?;
    let new = status.update_revision.unwrap_or_default();
    assert_eq!(
        revisions_of(&pods.list(&Default::default()).await?.items),
        [old.clone(), old.clone()],
        "nothing replaced"
    );
    let uid = pods.get("web-1").await?.metadata.uid;
    pods.delete("web-1", &DeleteParams::default()).await?;
    eventually("web-1 at the new revision", WAIT, || async {
        let p = pods.get_opt("web-1").await.ok()??;
        (p.metadata.uid != uid && revisions_of(std::slice::from_ref(&p)) == [new.clone()]).then_some(())
    })
    .await?;
    pods.delete("web-0", &DeleteParams::default()).await?;
    let done = settled(&sets, 2).await?;
    assert_eq!(done.status.and_then(|s| s.current_revision), Some(new), "OnDelete completes (upstream #73492)");
    server.stop().await;
    Ok(())
}

/// Roll a Parallel set of five, being its kubelet (pods become Ready only when this test says
/// so), while a watch counts the in-range pods that are missing or not Ready after every event.
/// Returns the most seen at once.
async fn parallel_rollout_peak_unavailable(max_unavailable: Option<i32>) -> anyhow::Result<usize> {
    use futures::StreamExt;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    let server = TestServer::start().await?;
    let client = server.client();
    let kubelet = FakeKubelet::start(client.clone(), "default");
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let mut manifest = serde_json::to_value(sts_manifest("web", 5, "nginx:1.25"))?;
    manifest["spec"]["podManagementPolicy"] = json!("Parallel");
    if let Some(m) = max_unavailable {
        manifest["spec"]["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": m}});
    }
    sets.create(&PostParams::default(), &serde_json::from_value(manifest)?).await?;
    settled(&sets, 5).await?;
    kubelet.auto_ready.store(false, std::sync::atomic::Ordering::SeqCst);

    let ready: Arc<Mutex<BTreeMap<String, bool>>> = Arc::default();
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (seen, top) = (ready.clone(), peak.clone());
    let watching = tokio::spawn(kube::runtime::watcher(pods.clone(), Default::default()).for_each(move |event| {
        use kube::runtime::watcher::Event;
        if let Ok(mut seen) = seen.lock() {
            match event {
                Ok(Event::Apply(p) | Event::InitApply(p)) => {
                    let up = logic::pod::is_ready(&p) && p.metadata.deletion_timestamp.is_none();
                    seen.insert(p.metadata.name.clone().unwrap_or_default(), up);
                }
                Ok(Event::Delete(p)) => {
                    seen.remove(p.metadata.name.as_deref().unwrap_or_default());
                }
                _ => {}
            }
            let down = (0..5).filter(|i| seen.get(&format!("web-{i}")) != Some(&true)).count();
            top.fetch_max(down, std::sync::atomic::Ordering::SeqCst);
        }
        futures::future::ready(())
    }));
    eventually("the watch to see five ready pods", WAIT, || async {
        (ready.lock().ok()?.values().filter(|up| **up).count() == 5).then_some(())
    })
    .await?;
    peak.store(0, std::sync::atomic::Ordering::SeqCst);

    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}}});
    sets.patch("web", &PatchParams::default(), &Patch::Strategic(image)).await?;
    let done = eventually("the Parallel rollout, this test acting as the kubelet", Duration::from_secs(60), || async {
        for p in pods.list(&Default::default()).await.ok()?.items {
            if !logic::pod::is_ready(&p) && p.metadata.deletion_timestamp.is_none() {
                FakeKubelet::mark_ready(&pods, p.metadata.name.as_deref().unwrap_or_default()).await.ok()?;
            }
        }
        let s = sets.get("web").await.ok()?;
        let st = s.status.clone()?;
        let rolled = st.observed_generation == s.metadata.generation
            && st.updated_replicas == Some(5)
            && st.ready_replicas == Some(5)
            && st.current_revision == st.update_revision;
        rolled.then_some(())
    })
    .await;
    watching.abort();
    server.stop().await;
    done?;
    Ok(peak.load(std::sync::atomic::Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_rolling_update_takes_one_pod_down_at_a_time() -> anyhow::Result<()> {
    assert_eq!(parallel_rollout_peak_unavailable(None).await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_rolling_update_uses_but_never_exceeds_max_unavailable() -> anyhow::Result<()> {
    assert_eq!(parallel_rollout_peak_unavailable(Some(2)).await?, 2);
    Ok(())
}

/// A PodDisruptionBudget over seed 001's set gets its status from the disruption controller,
/// and the eviction subresource spends it: one eviction goes through, the next is refused with
/// 429 until the evicted replica is back and Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_spend_the_disruption_budget_and_wait_for_it() -> anyhow::Result<()> {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::EvictParams;
    let server = TestServer::start().await?;
    let client = server.client();
    let _kubelet = FakeKubelet::start(client.clone(), "default");
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let budgets: Api<PodDisruptionBudget> = Api::default_namespaced(client.clone());
    sets.create(&PostParams::default(), &sts_manifest("web", 3, "nginx")).await?;
    settled(&sets, 3).await?;
    let budget = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}))?;
    budgets.create(&PostParams::default(), &budget).await?;
    let allowed = |n: i32| {
        let budgets = budgets.clone();
        async move {
            let status = budgets.get("web").await.ok()?.status?;
            (status.disruptions_allowed == n && status.current_healthy == 3 - (1 - n).max(0)).then_some(status)
        }
    };
    let status = eventually("the budget to allow one disruption", WAIT, || allowed(1)).await?;
    assert_eq!((status.current_healthy, status.desired_healthy, status.expected_pods), (3, 2, 3));

    let web0 = pods.get("web-0").await?.metadata.uid;
    pods.evict("web-0", &EvictParams::default()).await?;
    let refused = pods.evict("web-1", &EvictParams::default()).await.expect_err("the budget is spent");
    let kube::Error::Api(status) = refused else { anyhow::bail!("not an API error: {refused:?}") };
    assert_eq!((status.code, status.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(status.message, "Cannot evict pod as it would violate the pod's disruption budget.");
    assert!(pods.get("web-1").await.is_ok(), "web-1 stays");
    // web-0 comes back (a new pod) and Ready: the budget allows one disruption again.
    eventually("web-0 to be replaced", WAIT, || async {
        let pod = pods.get("web-0").await.ok()?;
        (pod.metadata.uid != web0 && logic::pod::is_ready(&pod)).then_some(())
    })
    .await?;
    eventually("the budget to allow one disruption again", WAIT, || allowed(1)).await?;
    pods.evict("web-1", &EvictParams::default()).await?;
    server.stop().await;
    Ok(())
}
