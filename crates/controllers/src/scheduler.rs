//! The scheduler: binds each pod without a node to one that fits (`logic::schedule`), through
//! `pods/binding`; a pod that fits nowhere gets `PodScheduled=False` with the reason and a
//! `FailedScheduling` event, and is looked at again whenever pods, nodes or claims change. A pod
//! whose claims are missing, or bind immediately and are not bound yet, waits (upstream's
//! VolumeBinding plugin).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use logic::schedule::Decision;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const RESYNC: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_millis(20);

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let nodes_api: Api<Node> = Api::all(client.clone());
    let (nodes, writer) = reflector::store();
    let changed = Arc::new(Notify::new());
    let notify = changed.clone();
    let node_watch = reflector::reflector(writer, watcher(nodes_api, watcher::Config::default()))
        .default_backoff()
        .for_each(move |_| {
            notify.notify_one();
            futures::future::ready(())
        });
    let pods_api: Api<Pod> = Api::all(client.clone());
    let notify = changed.clone();
    let pending = watcher(pods_api.clone(), watcher::Config::default().fields("spec.nodeName="))
        .default_backoff()
        .for_each(move |_| {
            notify.notify_one();
            futures::future::ready(())
        });
    // A claim becoming bound lets a waiting pod go.
    let notify = changed.clone();
    let claims = watcher(Api::<PersistentVolumeClaim>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .for_each(move |_| {
            notify.notify_one();
            futures::future::ready(())
        });
    tokio::pin!(node_watch, pending, claims);
    let recorder = Recorder::new(client.clone(), Reporter { controller: "default-scheduler".into(), instance: None });
    // Decide only on a complete view of the nodes.
    let ready = nodes.wait_until_ready();
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = &mut node_watch => return,
        _ = ready => {}
    }
    loop {
        if let Err(e) = pass(&client, &nodes, &recorder).await {
            tracing::debug!(error = %e, "scheduling pass");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = &mut node_watch => return,
            _ = &mut pending => return,
            _ = &mut claims => return,
            // Changes arriving together are scheduled in one pass.
            _ = changed.notified() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

/// Schedule every pending pod once, from fresh lists.
async fn pass(client: &kube::Client, nodes: &Store<Node>, recorder: &Recorder) -> kube::Result<()> {
    let all: Api<Pod> = Api::all(client.clone());
    let pods = all.list(&ListParams::default()).await?.items;
    let nodes: Vec<Node> = nodes.state().iter().map(|n| (**n).clone()).collect();
    let mut bound: Vec<Pod> = pods
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty()))
        .cloned()
        .collect();
    let pending = |p: &&Pod| {
        p.metadata.deletion_timestamp.is_none()
            && p.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|phase| phase == "Pending")
    };
    let has_claims =
        |p: &Pod| p.spec.iter().flat_map(|s| s.volumes.iter().flatten()).any(|v| v.persistent_volume_claim.is_some());
    let (claims, classes) = if pods.iter().filter(pending).any(has_claims) {
        let claims = Api::<PersistentVolumeClaim>::all(client.clone()).list(&ListParams::default()).await?.items;
        let classes = Api::<StorageClass>::all(client.clone()).list(&ListParams::default()).await?.items;
        (claims, classes)
    } else {
        Default::default()
    };
    let delayed = |claim: &PersistentVolumeClaim| {
        let class = claim.spec.as_ref().and_then(|s| s.storage_class_name.as_deref()).unwrap_or("");
        classes.iter().any(|c| {
            c.metadata.name.as_deref() == Some(class)
                && c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
        })
    };
    for pod in pods.iter().filter(pending) {
        let spec = pod.spec.clone().unwrap_or_default();
        if spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) {
            continue;
        }
        if spec.scheduler_name.as_deref().is_some_and(|s| s != "default-scheduler") {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let name = pod.name_any();
        let decision = match logic::schedule::volume_binding(pod, &claims, &delayed) {
            Some(reason) => logic::schedule::unschedulable(nodes.len(), &reason),
            None => logic::schedule::decide(pod, &nodes, &bound),
        };
        match decision {
            Decision::Bind(node) => {
                let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
                match api
                    .create_subresource::<serde_json::Value, serde_json::Value>(
                        "binding",
                        &name,
                        &PostParams::default(),
                        &binding,
                    )
                    .await
                {
                    Ok(_) | Err(kube::Error::Api(_)) => {}
                    Err(e) => return Err(e),
                }
                let mut placed = pod.clone();
                if let Some(s) = placed.spec.as_mut() {
                    s.node_name = Some(node);
                }
                bound.push(placed);
            }
            Decision::Unschedulable(message) => {
                let already = pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "PodScheduled"
                            && c.status == "False"
                            && c.message.as_deref() == Some(message.as_str())
                    })
                });
                if already {
                    continue;
                }
                let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                let status = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
                    "reason": "Unschedulable", "message": message, "lastTransitionTime": now}]}});
                match api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(status)).await {
                    Ok(_) | Err(kube::Error::Api(_)) => {}
                    Err(e) => return Err(e),
                }
                let event = Event {
                    type_: EventType::Warning,
                    reason: "FailedScheduling".into(),
                    note: Some(message),
                    action: "Scheduling".into(),
                    secondary: None,
                };
                let _ = recorder.publish(&event, &pod.object_ref(&())).await;
            }
        }
    }
    Ok(())
}
