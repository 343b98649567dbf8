//! Watches: live events, resume from a resourceVersion, 410 Expired, selector transitions.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use it::TestServer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("configmap")
}

fn describe(e: &WatchEvent<ConfigMap>) -> String {
    match e {
        WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Bookmark(_) => "BOOKMARK".into(),
        WatchEvent::Error(e) => format!("ERROR {}", e.code),
    }
}

async fn next_events(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await??;
        let Some(ev) = ev else { anyhow::bail!("stream ended after {out:?}") };
        let d = describe(&ev);
        if d != "BOOKMARK" {
            out.push(d);
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_from_a_resource_version_and_filters_by_label() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let start_rv = api.list(&Default::default()).await?.metadata.resource_version.unwrap_or_default();
    api.create(&PostParams::default(), &cm("a", json!({"team": "x"}))).await?;
    api.create(&PostParams::default(), &cm("b", json!({"team": "y"}))).await?;

    // Resume from before the creates: history is replayed in order.
    let mut all = api.watch(&WatchParams::default(), &start_rv).await?.boxed();
    assert_eq!(next_events(&mut all, 2).await?, ["ADDED a", "ADDED b"]);

    // A label-filtered watch sees objects enter and leave the selection.
    let mut team_x = api.watch(&WatchParams::default().labels("team=x"), &start_rv).await?.boxed();
    assert_eq!(next_events(&mut team_x, 1).await?, ["ADDED a"]);
    api.patch("b", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}}))).await?;
    api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"team": "z"}}}))).await?;
    api.delete("b", &DeleteParams::default()).await?;
    assert_eq!(next_events(&mut team_x, 3).await?, ["ADDED b", "DELETED a", "DELETED b"]);
    assert_eq!(next_events(&mut all, 3).await?, ["MODIFIED b", "MODIFIED a", "DELETED b"]);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_compacted_revision_gets_410_expired() -> anyhow::Result<()> {
    let server = TestServer::start().await?; // keeps 1000 events
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("churn", json!({}))).await?;
    for i in 0..1100 {
        api.patch("churn", &PatchParams::default(), &Patch::Merge(json!({"data": {"i": i.to_string()}}))).await?;
    }
    let mut stream = api.watch(&WatchParams::default(), "1").await?.boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await??;
    match first {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => anyhow::bail!("expected a 410 error event, got {other:?}"),
    }
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_zero_sends_current_state_then_changes() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("existing", json!({}))).await?;
    let mut stream = api.watch(&WatchParams::default(), "0").await?.boxed();
    // The current state, in key order: ours and the namespace's CA.
    assert_eq!(next_events(&mut stream, 2).await?, ["ADDED existing", "ADDED kube-root-ca.crt"]);
    api.create(&PostParams::default(), &cm("new", json!({}))).await?;
    assert_eq!(next_events(&mut stream, 1).await?, ["ADDED new"]);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_runtime_watcher_sees_changes() -> anyhow::Result<()> {
    use kube::runtime::watcher;
    let server = TestServer::start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let stream = watcher(api.clone(), watcher::Config::default());
    let mut applied = Box::pin(kube::runtime::WatchStreamExt::applied_objects(stream));
    api.create(&PostParams::default(), &cm("seen", json!({}))).await?;
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(obj) = applied.try_next().await? {
            if obj.metadata.name.as_deref() == Some("seen") {
                return Ok::<_, anyhow::Error>(true);
            }
        }
        Ok(false)
    })
    .await??;
    assert!(got);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_timeouts_and_streaming_lists() -> anyhow::Result<()> {
    use kube::runtime::watcher;
    let server = TestServer::start().await?; // bookmarks every 200 ms
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("before", json!({}))).await?;
    let rv = api.list(&Default::default()).await?.metadata.resource_version.unwrap_or_default();

    let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
    let bookmark = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.try_next().await? {
            if let WatchEvent::Bookmark(b) = ev {
                return Ok::<_, anyhow::Error>(Some(b.metadata.resource_version));
            }
        }
        Ok(None)
    })
    .await??;
    let (seen, listed): (u64, u64) = (bookmark.unwrap_or_default().parse()?, rv.parse()?);
    assert!(seen >= listed, "a bookmark carries the revision seen so far ({seen} >= {listed})");

    // timeoutSeconds ends the stream.
    let mut short = api.watch(&WatchParams::default().timeout(1), &rv).await?.boxed();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while short.try_next().await?.is_some() {}
        Ok::<_, anyhow::Error>(())
    })
    .await;
    assert!(matches!(ended, Ok(Ok(()))), "the server closed the watch after timeoutSeconds");

    // sendInitialEvents: kube's streaming-list watcher sees the existing object.
    let stream = watcher(api.clone(), watcher::Config::default().streaming_lists());
    let mut applied = Box::pin(kube::runtime::WatchStreamExt::applied_objects(stream));
    let first = tokio::time::timeout(Duration::from_secs(10), applied.try_next()).await??;
    assert_eq!(first.and_then(|c| c.metadata.name).as_deref(), Some("before"));
    server.stop().await;
    Ok(())
}
