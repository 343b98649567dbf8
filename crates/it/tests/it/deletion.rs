//! Deletion: finalizers, preconditions, cascading (background, foreground, orphan) through the
//! garbage collector, and namespace deletion.

use std::time::Duration;

use it::{TestServer, eventually};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::{Resource, ResourceExt};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn owned_pod(name: &str, owner: &ConfigMap, block: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(),
            "uid": owner.meta().uid, "controller": true, "blockOwnerDeletion": block}]},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("pod")
}

/// A server with a ConfigMap `owner` and a pod `dep` it owns (blocking owner deletion).
async fn owner_and_dependent() -> anyhow::Result<(TestServer, Api<ConfigMap>, Api<Pod>)> {
    let server = TestServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let owner =
        cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "owner"}}))?).await?;
    pods.create(&PostParams::default(), &owned_pod("dep", &owner, true)).await?;
    Ok((server, cms, pods))
}

async fn gone<K>(api: &Api<K>, name: &str) -> anyhow::Result<()>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let what = format!("{name} to be deleted");
    eventually(&what, WAIT, || async { api.get_opt(name).await.ok().and_then(|o| o.is_none().then_some(())) }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_an_object_until_removed() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}))?;
    cms.create(&PostParams::default(), &cm).await?;
    cms.delete("held", &DeleteParams::default()).await?;
    let held = cms.get("held").await?;
    assert!(held.metadata.deletion_timestamp.is_some());
    let add = cms
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "new"]}})),
        )
        .await;
    assert!(matches!(add, Err(kube::Error::Api(ref s)) if s.code == 422), "no new finalizers while deleting: {add:?}");
    cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await?;
    assert!(cms.get_opt("held").await?.is_none(), "removing the last finalizer completes the deletion");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_preconditions() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "p"}}))?).await?;
    let wrong = DeleteParams {
        preconditions: Some(Preconditions { uid: Some("not-it".into()), resource_version: None }),
        ..Default::default()
    };
    let err = cms.delete("p", &wrong).await;
    assert!(matches!(err, Err(kube::Error::Api(ref s)) if s.code == 409), "{err:?}");
    assert!(cms.get_opt("p").await?.is_some());
    let uid = cms.get("p").await?.metadata.uid;
    let right =
        DeleteParams { preconditions: Some(Preconditions { uid, resource_version: None }), ..Default::default() };
    cms.delete("p", &right).await?;
    assert!(cms.get_opt("p").await?.is_none());
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_cascade_deletes_dependents_and_keeps_unowned_claims() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    let owner =
        cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "owner"}}))?).await?;
    pods.create(&PostParams::default(), &owned_pod("dep-0", &owner, true)).await?;
    pods.create(&PostParams::default(), &owned_pod("dep-1", &owner, false)).await?;
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "www-dep-0"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))?;
    pvcs.create(&PostParams::default(), &claim).await?;

    cms.delete("owner", &DeleteParams::background()).await?;
    gone(&pods, "dep-0").await?;
    gone(&pods, "dep-1").await?;
    assert!(pvcs.get_opt("www-dep-0").await?.is_some(), "claims the owner does not own stay");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_cascade_removes_dependents_before_the_owner() -> anyhow::Result<()> {
    let (server, cms, pods) = owner_and_dependent().await?;
    let resp = cms.delete("owner", &DeleteParams::foreground()).await?;
    if let Some(obj) = resp.left() {
        assert!(obj.finalizers().iter().any(|f| f == "foregroundDeletion"));
    }
    gone(&cms, "owner").await?;
    assert!(pods.get_opt("dep").await?.is_none(), "the dependent went first");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_cascade_keeps_dependents_and_strips_owner_references() -> anyhow::Result<()> {
    let (server, cms, pods) = owner_and_dependent().await?;
    let orphan = DeleteParams { propagation_policy: Some(PropagationPolicy::Orphan), ..Default::default() };
    cms.delete("owner", &orphan).await?;
    gone(&cms, "owner").await?;
    let dep = pods.get("dep").await?;
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());
    server.stop().await;
    Ok(())
}

/// The collector's caches lag behind the API: it may still see a pod owned by a ConfigMap that
/// is gone after the pod was released (orphaned) from it. A delete planned from that view must
/// be refused by the check against the API, and a pod that really is garbage confirmed at its
/// current resourceVersion. (No collector runs here, so the stale view is deterministic.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_never_deletes_a_dependent_released_after_its_cache_saw_it() -> anyhow::Result<()> {
    let server = TestServer::api_only().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let owner =
        cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "owner"}}))?).await?;
    let released = pods.create(&PostParams::default(), &owned_pod("released", &owner, false)).await?;
    let garbage = pods.create(&PostParams::default(), &owned_pod("garbage", &owner, false)).await?;
    let patch = json!({"metadata": {"ownerReferences": null}});
    pods.patch("released", &PatchParams::default(), &Patch::Merge(patch)).await?;
    cms.delete("owner", &DeleteParams::default()).await?;

    let seen = |name: &str| logic::gc::ObjectRef {
        api_version: "v1".into(),
        kind: "Pod".into(),
        namespace: Some("default".into()),
        name: name.into(),
    };
    let client = server.client();
    assert_eq!(
        controllers::gc::garbage_at(&client, &seen("released"), &released.uid().unwrap_or_default()).await,
        None,
        "a pod released from its owner is not garbage, whatever the cache last saw"
    );
    let now = pods.get("garbage").await?;
    assert_eq!(
        controllers::gc::garbage_at(&client, &seen("garbage"), &garbage.uid().unwrap_or_default()).await,
        now.resource_version(),
        "a pod whose only owner is gone is garbage at its current resourceVersion"
    );
    assert_eq!(
        controllers::gc::garbage_at(&client, &seen("garbage"), "another-uid").await,
        None,
        "a pod replaced since"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_a_default_service_account_again_if_deleted() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let server = TestServer::start().await?;
    let client = server.client();
    let default_of = |ns: &str| {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        async move { api.get_opt("default").await.ok().flatten() }
    };
    // The namespaces the server starts with, and a new one.
    for ns in ["default", "kube-system"] {
        eventually(&format!("{ns}/default"), WAIT, || default_of(ns)).await?;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "team"}}))?).await?;
    let first = eventually("team/default", WAIT, || default_of("team")).await?;
    // Deleted: made again, as a new object.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    accounts.delete("default", &DeleteParams::default()).await?;
    let again = eventually("team/default again", WAIT, || async {
        default_of("team").await.filter(|a| a.metadata.uid != first.metadata.uid)
    })
    .await?;
    assert!(again.metadata.uid.is_some());
    // A namespace being deleted loses it with the rest and gets no new one.
    namespaces.delete("team", &DeleteParams::default()).await?;
    gone(&namespaces, "team").await?;
    assert!(default_of("team").await.is_none());
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_removes_its_content() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "scratch"}}))?)
        .await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "scratch");
    cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "inside"}}))?).await?;
    namespaces.delete("scratch", &DeleteParams::default()).await?;
    let terminating = namespaces.get_opt("scratch").await?;
    if let Some(ns) = terminating {
        assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
        let refused =
            cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "late"}}))?).await;
        assert!(matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 403 || s.code == 404), "{refused:?}");
    }
    gone(&namespaces, "scratch").await?;
    assert!(cms.list(&Default::default()).await?.items.is_empty());
    let missing =
        cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "x"}}))?).await;
    assert!(matches!(missing, Err(kube::Error::Api(ref s)) if s.code == 404), "{missing:?}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_answers_as_upstream_registries_do() -> anyhow::Result<()> {
    let server = TestServer::api_only().await?;
    let client = server.client();
    // ConfigMaps answer a finished delete with a Status naming what went.
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "c"}}))?).await?;
    let status =
        cms.delete("c", &DeleteParams::default()).await?.right().ok_or_else(|| anyhow::anyhow!("expected a Status"))?;
    assert_eq!(status.details.map(|d| d.name), Some("c".to_string()));
    // Pods (ReturnDeletedObject upstream) answer with the deleted pod.
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    )?;
    let created = pods.create(&PostParams::default(), &pod).await?;
    let deleted =
        pods.delete("p", &DeleteParams::default()).await?.left().ok_or_else(|| anyhow::anyhow!("expected the pod"))?;
    assert_eq!(deleted.metadata.uid, created.metadata.uid);
    // A namespace still being emptied refuses a second delete.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "busy"}}))?).await?;
    namespaces.delete("busy", &DeleteParams::default()).await?;
    let again = namespaces.delete("busy", &DeleteParams::default()).await;
    assert!(matches!(again, Err(kube::Error::Api(ref s)) if s.code == 409), "{again:?}");
    server.stop().await;
    Ok(())
}
