//! The kubelet's pod worker over the in-memory runtime (no root, no containers): crash loops
//! back off, and a kubelet started again over the same runs (as a restarted server is) keeps
//! restart counts, back-off, startup verdicts and readiness, probes again, and reports the
//! final status of containers that ended while it was away.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use it::fake_runtime::FakeRuntime;
use it::{TEST_IMAGE, TestServer, eventually};
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NODE: &str = "fake-node";

/// Short back-off, so a crash loop shows in seconds: 1 s doubling to 4 s.
const TIMING: logic::kubelet::Timing = logic::kubelet::Timing {
    backoff: logic::kubelet::BackOffPolicy { initial: SignedDuration::from_secs(1), max: SignedDuration::from_secs(4) },
    retry: SignedDuration::from_millis(200),
};

/// An API server with a kubelet over a `FakeRuntime` for node `fake-node`.
struct FakeNode {
    server: TestServer,
    runtime: Arc<FakeRuntime>,
    _pods_dir: tempfile::TempDir,
    kubelet: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl FakeNode {
    async fn start() -> anyhow::Result<FakeNode> {
        let server = TestServer::start().await?;
        it::import_test_image(server.running_data_dir())?;
        let pods_dir = tempfile::tempdir()?;
        let runtime = Arc::new(FakeRuntime::new(pods_dir.path()));
        let mut node = FakeNode { server, runtime, _pods_dir: pods_dir, kubelet: None };
        node.start_kubelet()?;
        Ok(node)
    }

    fn start_kubelet(&mut self) -> anyhow::Result<()> {
        let config = agent::kubelet::KubeletConfig {
            node_name: NODE.into(),
            cluster_domain: "cluster.local".into(),
            cluster_dns: "10.99.0.1".into(),
            host_ip: "10.99.0.1".into(),
            host_resolv_conf: String::new(),
            registries: self.server.running_data_dir().registries(),
        };
        let images = agent::image::ImageStore::open(&self.server.running_data_dir().images())?;
        let kubelet = agent::kubelet::Kubelet::new(self.server.client(), self.runtime.clone(), images, config)
            .with_timing(TIMING);
        let stop = CancellationToken::new();
        let task = tokio::spawn(agent::kubelet::run(Arc::new(kubelet), stop.clone()));
        self.kubelet = Some((stop, task));
        Ok(())
    }

    /// Stop the kubelet as a crash would leave things: its runs keep going.
    async fn stop_kubelet(&mut self) -> anyhow::Result<()> {
        if let Some((stop, task)) = self.kubelet.take() {
            stop.cancel();
            task.await?;
        }
        Ok(())
    }

    fn pods(&self) -> Api<Pod> {
        Api::default_namespaced(self.server.client())
    }

    async fn create(&self, name: &str, policy: &str, container: serde_json::Value) -> anyhow::Result<()> {
        let mut container = container;
        container["name"] = json!("app");
        container["image"] = json!(TEST_IMAGE);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": NODE, "restartPolicy": policy, "containers": [container]}
        }))?;
        self.pods().create(&PostParams::default(), &pod).await?;
        Ok(())
    }

    /// Wait until the pod's app container status satisfies `check`.
    async fn until(&self, pod: &str, what: &str, check: impl Fn(&ContainerStatus) -> bool) -> anyhow::Result<Pod> {
        let pods = self.pods();
        eventually(what, Duration::from_secs(30), || async {
            let p = pods.get_opt(pod).await.ok().flatten()?;
            let app = p.status.as_ref()?.container_statuses.as_ref()?.first()?.clone();
            check(&app).then_some(p)
        })
        .await
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_kubelet().await?;
        self.server.stop().await;
        Ok(())
    }
}

fn waiting(c: &ContainerStatus) -> Option<(String, String)> {
    let w = c.state.as_ref()?.waiting.as_ref()?;
    Some((w.reason.clone().unwrap_or_default(), w.message.clone().unwrap_or_default()))
}

#[tokio::test]
async fn a_crash_loop_backs_off_and_its_restart_count_and_back_off_survive_a_kubelet_restart() -> anyhow::Result<()> {
    let mut node = FakeNode::start().await?;
    node.runtime.crash_on_start("app", Some(1));
    node.create("crasher", "Always", json!({})).await?;
    // Restarted at once after the first exit, then after 1 s, 2 s, and 4 s (the maximum).
    let pod = node
        .until("crasher", "back-off at its maximum", |c| {
            waiting(c).is_some_and(|(r, m)| {
                r == "CrashLoopBackOff"
                    && m.starts_with("back-off 4s restarting failed container=app pod=crasher_default(")
            })
        })
        .await?;
    let app = &pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default()[0];
    let restarts = app.restart_count;
    assert!(restarts >= 3, "{app:?}");
    assert_eq!(app.last_state.as_ref().and_then(|l| l.terminated.as_ref()).map(|t| t.exit_code), Some(1));
    let events: Api<Event> = Api::default_namespaced(node.server.client());
    let backoff =
        events.list(&Default::default()).await?.items.into_iter().find(|e| e.reason.as_deref() == Some("BackOff"));
    assert!(
        backoff
            .and_then(|e| e.message)
            .is_some_and(|m| m.starts_with("Back-off restarting failed container app in pod crasher_default(")),
        "a BackOff event"
    );

    // A new kubelet over the same runs goes on from there: the same restart count, still in
    // back-off at its maximum (not restarted at once as a forgotten back-off would be).
    node.stop_kubelet().await?;
    node.start_kubelet()?;
    let statuses = node.pods().get("crasher").await?.status.and_then(|s| s.container_statuses).unwrap_or_default();
    assert!(statuses[0].restart_count >= restarts);
    let n = statuses[0].restart_count;
    let again = node
        .until("crasher", "the next restart's back-off", |c| {
            c.restart_count == n + 1 && waiting(c).is_some_and(|(r, _)| r == "CrashLoopBackOff")
        })
        .await?;
    let app = &again.status.and_then(|s| s.container_statuses).unwrap_or_default()[0];
    let (_, message) = waiting(app).unwrap_or_default();
    assert!(message.starts_with("back-off 4s"), "the back-off went on from its maximum, not from the start: {message}");
    node.stop().await
}

#[tokio::test]
async fn recovered_containers_get_their_probes_back_and_stay_ready_until_a_probe_says_otherwise() -> anyhow::Result<()>
{
    let mut node = FakeNode::start().await?;
    let probe = |cmd: &str| json!({"exec": {"command": [cmd]}, "periodSeconds": 1, "failureThreshold": 1});
    node.create(
        "probed",
        "Always",
        json!({"startupProbe": probe("started"), "readinessProbe": probe("ready"), "livenessProbe": probe("alive")}),
    )
    .await?;
    node.until("probed", "ready", |c| c.ready && c.started == Some(true)).await?;
    node.stop_kubelet().await?;
    let started_probes = node.runtime.executed("started");
    let ready_probes = node.runtime.executed("ready");

    // Every status written from here on, to see that readiness never dropped meanwhile.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let watch = {
        let seen = seen.clone();
        let stream = watcher(node.pods(), watcher::Config::default().fields("metadata.name=probed"));
        tokio::spawn(stream.for_each(move |event| {
            if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = event {
                let ready = p.status.and_then(|s| s.container_statuses).and_then(|c| c.first().map(|c| c.ready));
                seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(ready);
            }
            futures::future::ready(())
        }))
    };
    node.start_kubelet()?;
    let runtime = node.runtime.clone();
    eventually("readiness probed again", Duration::from_secs(20), || async {
        (runtime.executed("ready") >= ready_probes + 2 && runtime.executed("alive") >= 1).then_some(())
    })
    .await?;
    assert_eq!(node.runtime.executed("started"), started_probes, "a startup probe that succeeded is not run again");
    let pod = node.pods().get("probed").await?;
    let app = &pod.status.and_then(|s| s.container_statuses).unwrap_or_default()[0];
    assert_eq!((app.ready, app.started, app.restart_count), (true, Some(true), 0), "{app:?}");

    let before = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    assert!(!before.is_empty() && before.iter().all(|r| *r == Some(true)), "ready throughout the restart: {before:?}");

    // Readiness is re-established by probing: a failing probe makes it unready.
    node.runtime.set_failing("ready", true);
    node.until("probed", "not ready after a failed probe", |c| !c.ready).await?;
    watch.abort();

    // The liveness prober works again too: a failed liveness probe restarts the container.
    node.runtime.set_failing("ready", false);
    node.runtime.set_failing("alive", true);
    node.until("probed", "restarted after failing liveness", |c| c.restart_count == 1).await?;
    node.stop().await
}

#[tokio::test]
async fn containers_that_ended_while_the_kubelet_was_away_get_their_final_status() -> anyhow::Result<()> {
    let mut node = FakeNode::start().await?;
    node.create("once", "Never", json!({})).await?;
    node.until("once", "running", |c| c.state.as_ref().is_some_and(|s| s.running.is_some())).await?;
    node.stop_kubelet().await?;
    node.runtime.exit("app", 0);
    node.start_kubelet()?;
    let pod = node
        .until("once", "terminated", |c| {
            c.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.reason.as_deref() == Some("Completed"))
        })
        .await?;
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Succeeded"));
    node.stop().await
}

#[tokio::test]
async fn a_changed_image_restarts_the_container() -> anyhow::Result<()> {
    let node = FakeNode::start().await?;
    it::import_test_image_as(node.server.running_data_dir(), "localhost/busybox:other")?;
    node.create("changing", "Always", json!({})).await?;
    node.until("changing", "running", |c| c.state.as_ref().is_some_and(|s| s.running.is_some())).await?;
    let patch = json!({"spec": {"containers": [{"name": "app", "image": "localhost/busybox:other"}]}});
    node.pods().patch("changing", &PatchParams::default(), &Patch::Strategic(patch)).await?;
    let pod = node
        .until("changing", "restarted with the new image", |c| {
            c.restart_count == 1 && c.state.as_ref().is_some_and(|s| s.running.is_some())
        })
        .await?;
    let app = &pod.status.and_then(|s| s.container_statuses).unwrap_or_default()[0];
    assert!(app.image_id.starts_with("localhost/busybox:other@sha256:"), "{app:?}");
    let events: Api<Event> = Api::default_namespaced(node.server.client());
    let killing =
        events.list(&Default::default()).await?.items.into_iter().find(|e| e.reason.as_deref() == Some("Killing"));
    assert_eq!(killing.and_then(|e| e.message).as_deref(), Some("Container app definition changed, will be restarted"));
    node.stop().await
}
