//! The four patch content types, as kubectl and controllers send them.

use it::TestServer;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::api::sts_manifest;

fn images(sts: &StatefulSet) -> Vec<String> {
    sts.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.iter().map(|c| format!("{}={}", c.name, c.image.clone().unwrap_or_default())).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategic_merge_merges_containers_by_name() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let sts: Api<StatefulSet> = Api::default_namespaced(server.client());
    sts.create(&PostParams::default(), &sts_manifest("web", 1, "nginx:1.25")).await?;
    // kubectl set image
    let patch = json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}}});
    let patched = sts.patch("web", &PatchParams::default(), &Patch::Strategic(patch)).await?;
    assert_eq!(images(&patched), ["nginx=nginx:1.26"]);
    // The container's other fields survived the merge.
    let ports =
        patched.spec.as_ref().and_then(|s| s.template.spec.as_ref()).and_then(|p| p.containers[0].ports.clone());
    assert_eq!(ports.map(|p| p.len()), Some(1));
    assert_eq!(patched.metadata.generation, Some(2));

    // Add a sidecar, then delete it with $patch: delete.
    let add = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}});
    let two = sts.patch("web", &PatchParams::default(), &Patch::Strategic(add)).await?;
    assert_eq!(images(&two), ["nginx=nginx:1.26", "sidecar=busybox"]);
    let del = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}});
    let one = sts.patch("web", &PatchParams::default(), &Patch::Strategic(del)).await?;
    assert_eq!(images(&one), ["nginx=nginx:1.26"]);

    // kubectl rollout undo: $patch: replace on the template.
    let mut template = serde_json::to_value(&sts_manifest("web", 1, "nginx:1.25").spec.unwrap_or_default().template)?;
    template["$patch"] = json!("replace");
    let undone =
        sts.patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": template}}))).await?;
    assert_eq!(images(&undone), ["nginx=nginx:1.25"]);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_merge_patches() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let sts: Api<StatefulSet> = Api::default_namespaced(server.client());
    sts.create(&PostParams::default(), &sts_manifest("web", 1, "nginx")).await?;
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]))?;
    let patched = sts.patch("web", &PatchParams::default(), &Patch::Json::<()>(ops)).await?;
    assert_eq!(patched.spec.as_ref().and_then(|s| s.replicas), Some(4));
    let annotated = sts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"a": "1", "b": "2"}}})),
        )
        .await?;
    assert_eq!(annotated.metadata.annotations.map(|a| a.len()), Some(2));
    let removed = sts
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"a": null}}})))
        .await?;
    assert_eq!(
        removed.metadata.annotations.map(|a| a.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["b".to_string()])
    );
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 99}]))?;
    let err = sts.patch("web", &PatchParams::default(), &Patch::Json::<()>(failing)).await;
    assert!(matches!(err, Err(kube::Error::Api(ref s)) if s.code == 422 || s.code == 400), "{err:?}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_creates_then_merges() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let sts: Api<StatefulSet> = Api::default_namespaced(server.client());
    let params = PatchParams::apply("it-test");
    let created =
        sts.patch("web", &params, &Patch::Apply(serde_json::to_value(sts_manifest("web", 2, "nginx:1.25"))?)).await?;
    assert_eq!(created.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let mut changed = serde_json::to_value(sts_manifest("web", 3, "nginx:1.25"))?;
    changed["metadata"]["labels"]["extra"] = json!("yes");
    let applied = sts.patch("web", &params, &Patch::Apply(changed)).await?;
    assert_eq!(applied.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(applied.metadata.uid, created.metadata.uid);
    assert_eq!(applied.metadata.labels.and_then(|l| l.get("extra").cloned()).as_deref(), Some("yes"));
    server.stop().await;
    Ok(())
}
