//! Verbs, subresources, selectors, conflicts and validation through the kube client.

use it::TestServer;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

pub fn sts_manifest(name: &str, replicas: i32, image: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "serviceName": name, "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80, "name": "web"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    }))
    .expect("valid statefulset")
}

fn api_error(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_defaults_and_reads_back() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let sts: Api<StatefulSet> = Api::default_namespaced(server.client());
    let created = sts.create(&PostParams::default(), &sts_manifest("web", 2, "nginx:1.25")).await?;
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some());
    assert_eq!(meta.generation, Some(1));
    let spec = created.spec.clone().unwrap_or_default();
    assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
    assert_eq!(spec.revision_history_limit, Some(10));
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(strategy.rolling_update.and_then(|r| r.partition), Some(0));
    let retention = spec.persistent_volume_claim_retention_policy.clone().unwrap_or_default();
    assert_eq!((retention.when_deleted.as_deref(), retention.when_scaled.as_deref()), (Some("Retain"), Some("Retain")));
    let pod_spec = spec.template.spec.unwrap_or_default();
    assert_eq!(pod_spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(pod_spec.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(pod_spec.termination_grace_period_seconds, Some(30));
    let container = &pod_spec.containers[0];
    assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(container.ports.as_ref().and_then(|p| p[0].protocol.as_deref()), Some("TCP"));

    let got = sts.get("web").await?;
    assert_eq!(got.metadata.uid, meta.uid);
    let again = sts.create(&PostParams::default(), &sts_manifest("web", 2, "nginx:1.25")).await.map_err(api_error);
    let status = again.expect_err("second create conflicts");
    assert_eq!((status.code, status.reason.as_str()), (409, "AlreadyExists"));
    let missing = sts.get("nope").await.map_err(api_error).expect_err("missing");
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, r#"statefulsets.apps "nope" not found"#);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_bump_generation_only_for_spec_and_detect_conflicts() -> anyhow::Result<()> {
    let server = TestServer::api_only().await?;
    let sts: Api<StatefulSet> = Api::default_namespaced(server.client());
    let created = sts.create(&PostParams::default(), &sts_manifest("web", 1, "nginx:1.25")).await?;

    let labelled = sts
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"tier": "a"}}})))
        .await?;
    assert_eq!(labelled.metadata.generation, Some(1), "metadata changes leave generation alone");

    let status_patch = json!({"status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1}});
    let with_status = sts.patch_status("web", &PatchParams::default(), &Patch::Merge(status_patch)).await?;
    assert_eq!(with_status.metadata.generation, Some(1), "status changes leave generation alone");
    assert_eq!(with_status.status.as_ref().and_then(|s| s.ready_replicas), Some(1));

    // Status is ignored on the main resource, spec on the status subresource.
    let ignored = sts.patch("web", &PatchParams::default(), &Patch::Merge(json!({"status": {"replicas": 7}}))).await?;
    assert_eq!(ignored.status.as_ref().map(|s| s.replicas), Some(1));
    let ignored =
        sts.patch_status("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 7}}))).await?;
    assert_eq!(ignored.spec.as_ref().and_then(|s| s.replicas), Some(1));

    let bumped = sts.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}}))).await?;
    assert_eq!(bumped.metadata.generation, Some(2));

    // A PUT carrying the original resourceVersion is stale now.
    let stale = sts.replace("web", &PostParams::default(), &created).await.map_err(api_error).expect_err("stale");
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert!(stale.message.contains("the object has been modified"), "{}", stale.message);

    let mut fresh = sts.get("web").await?;
    if let Some(spec) = fresh.spec.as_mut() {
        spec.replicas = Some(4);
    }
    let replaced = sts.replace("web", &PostParams::default(), &fresh).await?;
    assert_eq!(replaced.metadata.generation, Some(3));
    assert_eq!(replaced.status.as_ref().and_then(|s| s.ready_replicas), Some(1), "PUT keeps status");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_subresource_reads_and_writes_replicas() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let sts: Api<StatefulSet> = Api::default_namespaced(server.client());
    sts.create(&PostParams::default(), &sts_manifest("web", 2, "nginx")).await?;
    let scale = sts.get_scale("web").await?;
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    assert_eq!(scale.status.map(|s| s.selector.unwrap_or_default()).as_deref(), Some("app=web"));
    let scaled =
        sts.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 5}}))).await?;
    assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(5));
    assert_eq!(sts.get("web").await?.spec.and_then(|s| s.replicas), Some(5));
    let bad = sts
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": -1}})))
        .await
        .map_err(api_error)
        .expect_err("negative");
    assert_eq!(bad.code, 422);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_name_the_fields_and_change_nothing() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let sts: Api<StatefulSet> = Api::default_namespaced(server.client());
    let mut bad = sts_manifest("web", 1, "nginx");
    if let Some(spec) = bad.spec.as_mut() {
        spec.template.metadata = Some(serde_json::from_value(json!({"labels": {"app": "other"}}))?);
    }
    let err = sts.create(&PostParams::default(), &bad).await.map_err(api_error).expect_err("invalid");
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let causes = err.details.map(|d| d.causes).unwrap_or_default();
    assert!(causes.iter().any(|c| c.field == "spec.template.metadata.labels"), "{causes:?}");
    assert!(sts.get_opt("web").await?.is_none(), "nothing was written");

    sts.create(&PostParams::default(), &sts_manifest("web", 1, "nginx")).await?;
    let forbidden = sts
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"serviceName": "other"}})))
        .await
        .map_err(api_error)
        .expect_err("immutable");
    assert_eq!(forbidden.code, 422);
    assert!(forbidden.message.contains("Forbidden"), "{}", forbidden.message);
    assert_eq!(sts.get("web").await?.spec.map(|s| s.service_name), Some(Some("web".to_string())));

    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let bad_name: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "Not_Valid"}}))?;
    let err = cms.create(&PostParams::default(), &bad_name).await.map_err(api_error).expect_err("bad name");
    assert_eq!(err.code, 422);
    assert!(err.message.contains("metadata.name"), "{}", err.message);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_and_generate_name() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dry"}}))?;
    let dry = cms.create(&PostParams { dry_run: true, ..Default::default() }, &cm).await?;
    assert_eq!(dry.metadata.name.as_deref(), Some("dry"));
    assert!(cms.get_opt("dry").await?.is_none());

    let generated: ConfigMap = serde_json::from_value(json!({"metadata": {"generateName": "gen-"}}))?;
    let a = cms.create(&PostParams::default(), &generated).await?;
    let b = cms.create(&PostParams::default(), &generated).await?;
    let (a, b) = (a.metadata.name.unwrap_or_default(), b.metadata.name.unwrap_or_default());
    assert!(a.starts_with("gen-") && a.len() == 9, "{a}");
    assert_ne!(a, b);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pagination_and_selectors() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    // Every namespace also holds the cluster's CA (`kube-root-ca.crt`; the harness waits for
    // it), without labels: the counts below include it where a selector matches it.
    for i in 0..7 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("cm-{i}"), "labels": {"tier": tier, "n": i.to_string()}}}),
        )?;
        cms.create(&PostParams::default(), &cm).await?;
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = cms.list(&params).await?;
        pages += 1;
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => params = params.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 8);

    let count = |p: ListParams| {
        let cms = cms.clone();
        async move { cms.list(&p).await.map(|l| l.items.len()) }
    };
    assert_eq!(count(ListParams::default().labels("tier=even")).await?, 4);
    assert_eq!(count(ListParams::default().labels("tier!=even")).await?, 4);
    assert_eq!(count(ListParams::default().labels("n in (1,2,3)")).await?, 3);
    assert_eq!(count(ListParams::default().labels("n notin (1,2,3),tier")).await?, 4);
    assert_eq!(count(ListParams::default().labels("!tier")).await?, 1, "only the unlabelled kube-root-ca.crt");
    assert_eq!(count(ListParams::default().fields("metadata.name=cm-3")).await?, 1);
    assert_eq!(count(ListParams::default().fields("metadata.name!=cm-3")).await?, 7);
    let bad = cms
        .list(&ListParams::default().fields("spec.nothing=x"))
        .await
        .map_err(api_error)
        .expect_err("unsupported field");
    assert_eq!(bad.code, 400);

    let pods: Api<Pod> = Api::all(server.client());
    assert_eq!(pods.list(&ListParams::default().fields("status.phase=Running")).await?.items.len(), 0);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_cluster_ips_and_node_ports() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let svcs: Api<Service> = Api::default_namespaced(server.client());
    let headless: Service = serde_json::from_value(json!({"metadata": {"name": "nginx"},
        "spec": {"clusterIP": "None", "selector": {"app": "nginx"}, "ports": [{"name": "web", "port": 80}]}}))?;
    let headless = svcs.create(&PostParams::default(), &headless).await?;
    let spec = headless.spec.unwrap_or_default();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let port = &spec.ports.unwrap_or_default()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(port.target_port, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80)));

    let node_port: Service = serde_json::from_value(json!({"metadata": {"name": "np"},
        "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80, "nodePort": 31000}, {"name": "b", "port": 81}]}}))?;
    let err = svcs.create(&PostParams::default(), &node_port).await.map_err(api_error).expect_err("two unnamed ports");
    assert_eq!(err.code, 422);
    let node_port: Service = serde_json::from_value(json!({"metadata": {"name": "np"},
        "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"name": "a", "port": 80, "nodePort": 31000}, {"name": "b", "port": 81}]}}))?;
    let created = svcs.create(&PostParams::default(), &node_port).await?;
    let spec = created.spec.unwrap_or_default();
    let ip = spec.cluster_ip.unwrap_or_default();
    assert!(ip.starts_with("10.96.") && ip != "10.96.0.1", "{ip}");
    let ports = spec.ports.unwrap_or_default();
    assert_eq!(ports[0].node_port, Some(31000));
    assert!(ports[1].node_port.is_some_and(|p| (30000..=32767).contains(&p)));

    let clash: Service = serde_json::from_value(json!({"metadata": {"name": "clash"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}}))?;
    let err = svcs.create(&PostParams::default(), &clash).await.map_err(api_error).expect_err("port taken");
    assert_eq!(err.code, 422);

    let changed_ip = svcs
        .patch("np", &PatchParams::default(), &Patch::Merge(json!({"spec": {"clusterIP": "10.96.99.99"}})))
        .await
        .map_err(api_error)
        .expect_err("clusterIP is immutable");
    assert_eq!(changed_ip.code, 422);

    svcs.delete("np", &DeleteParams::default()).await?;
    let reuse: Service = serde_json::from_value(json!({"metadata": {"name": "reuse"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}}))?;
    svcs.create(&PostParams::default(), &reuse)
        .await
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("port was released: {e}"))?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_collection_by_label() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    for (name, sweep) in [("a", "yes"), ("b", "yes"), ("c", "no")] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"sweep": sweep}}}))?;
        cms.create(&PostParams::default(), &cm).await?;
    }
    cms.delete_collection(&DeleteParams::default(), &ListParams::default().labels("sweep=yes")).await?;
    let left: Vec<String> =
        cms.list(&Default::default()).await?.items.into_iter().filter_map(|c| c.metadata.name).collect();
    assert_eq!(left, ["c", "kube-root-ca.crt"]);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_get_list_and_watch_as_metadata_informers_ask() -> anyhow::Result<()> {
    use futures::StreamExt;
    let server = TestServer::start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "big", "labels": {"tier": "db"}}, "data": {"k": "v".repeat(1000)}}),
        )?,
    )
    .await?;
    let got = cms.get_metadata("big").await?;
    assert_eq!(got.types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
    assert_eq!(got.metadata.labels.as_ref().and_then(|l| l.get("tier")).map(String::as_str), Some("db"));
    let listed = cms.list_metadata(&ListParams::default().labels("tier=db")).await?;
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].metadata.name.as_deref(), Some("big"));
    // The data stays on the server: the raw body holds metadata only.
    let request = http::Request::get("/api/v1/namespaces/default/configmaps")
        .header("Accept", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json")
        .body(Vec::new())?;
    let raw: serde_json::Value = server.client().request(request).await?;
    assert_eq!(raw["kind"], "PartialObjectMetadataList");
    assert_eq!(raw["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(raw["items"][0]["kind"], "PartialObjectMetadata");
    assert!(raw["items"][0].get("data").is_none(), "{raw}");
    // A metadata watcher sees the existing object, then a new one.
    let metadata_only: Api<kube::core::PartialObjectMeta<ConfigMap>> = Api::default_namespaced(server.client());
    let mut events = Box::pin(kube::runtime::watcher(metadata_only, Default::default()));
    let mut seen = Vec::new();
    let created = async {
        cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "later"}}))?).await?;
        anyhow::Ok(())
    };
    let watched = async {
        while let Some(event) = events.next().await {
            if let kube::runtime::watcher::Event::InitApply(m) | kube::runtime::watcher::Event::Apply(m) = event? {
                seen.push(m.metadata.name.unwrap_or_default());
                if seen.contains(&"later".to_string()) {
                    break;
                }
            }
        }
        anyhow::Ok(())
    };
    let (c, w) =
        tokio::time::timeout(std::time::Duration::from_secs(10), futures::future::join(created, watched)).await?;
    c?;
    w?;
    assert_eq!(seen[0], "big");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_their_priority_class_value_as_the_priority_admission_plugin_gives_it() -> anyhow::Result<()> {
    use k8s_openapi::api::scheduling::v1::PriorityClass;
    let server = TestServer::api_only().await?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let classes: Api<PriorityClass> = Api::all(server.client());
    // The two system classes exist from the start.
    assert_eq!(classes.get("system-node-critical").await?.value, 2_000_001_000);
    assert_eq!(classes.get("system-cluster-critical").await?.value, 2_000_000_000);
    let pod = |name: &str, class: Option<&str>| -> anyhow::Result<Pod> {
        Ok(serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"priorityClassName": class, "containers": [{"name": "c", "image": "busybox"}]}}))?)
    };
    let critical = pods.create(&PostParams::default(), &pod("critical", Some("system-cluster-critical"))?).await?;
    assert_eq!(critical.spec.as_ref().and_then(|s| s.priority), Some(2_000_000_000));
    assert_eq!(critical.spec.and_then(|s| s.preemption_policy).as_deref(), Some("PreemptLowerPriority"));
    let plain = pods.create(&PostParams::default(), &pod("plain", None)?).await?;
    assert_eq!(plain.spec.and_then(|s| s.priority), Some(0));
    let missing =
        api_error(pods.create(&PostParams::default(), &pod("lost", Some("gold"))?).await.expect_err("refused"));
    assert_eq!((missing.code, missing.reason.as_str()), (403, "Forbidden"));
    assert_eq!(missing.message, r#"pods "lost" is forbidden: no PriorityClass with name gold was found"#);
    // A global default applies to pods that name no class; a second default is refused.
    let class = |name: &str, value: i32| -> anyhow::Result<PriorityClass> {
        Ok(serde_json::from_value(json!({"metadata": {"name": name}, "value": value, "globalDefault": true}))?)
    };
    classes.create(&PostParams::default(), &class("normal", 100)?).await?;
    let second = api_error(classes.create(&PostParams::default(), &class("other", 5)?).await.expect_err("refused"));
    assert_eq!(second.code, 403);
    assert!(second.message.ends_with("PriorityClass normal is already marked as default. Only one default can exist"));
    let defaulted = pods.create(&PostParams::default(), &pod("defaulted", None)?).await?;
    let spec = defaulted.spec.unwrap_or_default();
    assert_eq!((spec.priority_class_name.as_deref(), spec.priority), (Some("normal"), Some(100)));
    // The system- prefix is reserved.
    let reserved = api_error(
        classes
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "system-mine"}, "value": 7}))?,
            )
            .await
            .expect_err("refused"),
    );
    assert_eq!(reserved.code, 422);
    server.stop().await;
    Ok(())
}
