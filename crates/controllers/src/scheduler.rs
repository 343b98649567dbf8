//! The scheduler: binds each pod without a node to one that fits (`logic::schedule`), through
//! `pods/binding`; a pod that fits nowhere gets `PodScheduled=False` with the reason and a
//! `FailedScheduling` event, and is looked at again whenever pods, nodes or claims change. It
//! works from watched caches (no list per pass) and remembers what it bound or reported until
//! the caches show it, as upstream's scheduler cache "assumes" pods. A pod
//! whose claims are missing, or bind immediately and are not bound yet, waits (upstream's
//! VolumeBinding plugin).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use logic::schedule::Decision;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const RESYNC: Duration = Duration::from_secs(30);

/// A watched cache of `K` that wakes the scheduler on every change.
fn cache<K>(api: Api<K>, changed: &Arc<Notify>) -> (Store<K>, impl std::future::Future<Output = ()> + use<K>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let notify = changed.clone();
    let watch =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff().for_each(move |_| {
            notify.notify_one();
            futures::future::ready(())
        });
    (store, watch)
}

/// What this scheduler did that its caches may not show yet (upstream's "assumed" pods): pods
/// it bound, by uid, with their node; and the unschedulable message it last wrote for a pod.
#[derive(Default)]
struct Assumed {
    bound: std::collections::HashMap<String, String>,
    reported: std::collections::HashMap<String, String>,
}

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let (nodes, node_watch) = cache(Api::<Node>::all(client.clone()), &changed);
    let (pods, pod_watch) = cache(Api::<Pod>::all(client.clone()), &changed);
    // A claim becoming bound, or a class appearing, lets a waiting pod go.
    let (claims, claim_watch) = cache(Api::<PersistentVolumeClaim>::all(client.clone()), &changed);
    let (classes, class_watch) = cache(Api::<StorageClass>::all(client.clone()), &changed);
    tokio::pin!(node_watch, pod_watch, claim_watch, class_watch);
    let recorder = Recorder::new(client.clone(), Reporter { controller: "default-scheduler".into(), instance: None });
    // Decide only on a complete view.
    let ready = async {
        let _ = tokio::join!(
            nodes.wait_until_ready(),
            pods.wait_until_ready(),
            claims.wait_until_ready(),
            classes.wait_until_ready()
        );
    };
    let watches = async {
        tokio::select! {
            _ = &mut node_watch => {}
            _ = &mut pod_watch => {}
            _ = &mut claim_watch => {}
            _ = &mut class_watch => {}
        }
    };
    tokio::pin!(watches);
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = &mut watches => return,
        _ = ready => {}
    }
    let caches = Caches { nodes, pods, claims, classes };
    let mut assumed = Assumed::default();
    loop {
        if let Err(e) = pass(&client, &caches, &mut assumed, &recorder).await {
            tracing::debug!(error = %e, "scheduling pass");
        }
        // Changes that arrive while a pass runs are scheduled together in the next one
        // (`Notify` keeps one wake-up); a lone pod is scheduled at once.
        if !client_tools::next_pass(&shutdown, watches.as_mut(), &changed, RESYNC).await {
            return;
        }
    }
}

struct Caches {
    nodes: Store<Node>,
    pods: Store<Pod>,
    claims: Store<PersistentVolumeClaim>,
    classes: Store<StorageClass>,
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

/// Schedule every pending pod once, from the caches (no list per pass).
async fn pass(client: &kube::Client, caches: &Caches, assumed: &mut Assumed, recorder: &Recorder) -> kube::Result<()> {
    let pods = caches.pods.state();
    let nodes: Vec<Node> = caches.nodes.state().iter().map(|n| (**n).clone()).collect();
    // Forget what the caches now show (or what is gone).
    let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
    let live: std::collections::HashMap<String, &Pod> = pods.iter().map(|p| (uid(p), &**p)).collect();
    assumed.bound.retain(|u, _| live.get(u).is_some_and(|p| node_of(p).is_none()));
    assumed.reported.retain(|u, _| live.get(u).is_some_and(|p| node_of(p).is_none()));
    let mut bound: Vec<Pod> = pods.iter().filter(|p| node_of(p).is_some()).map(|p| (**p).clone()).collect();
    for (u, node) in &assumed.bound {
        if let Some(mut placed) = live.get(u).map(|p| (*p).clone()) {
            if let Some(s) = placed.spec.as_mut() {
                s.node_name = Some(node.clone());
            }
            bound.push(placed);
        }
    }
    let pending = |p: &&Arc<Pod>| {
        p.metadata.deletion_timestamp.is_none()
            && p.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|phase| phase == "Pending")
            && node_of(p).is_none()
            && !assumed.bound.contains_key(&uid(p))
    };
    let claims: Vec<PersistentVolumeClaim> = caches.claims.state().iter().map(|c| (**c).clone()).collect();
    let classes = caches.classes.state();
    let delayed = |claim: &PersistentVolumeClaim| {
        let class = claim.spec.as_ref().and_then(|s| s.storage_class_name.as_deref()).unwrap_or("");
        classes.iter().any(|c| {
            c.metadata.name.as_deref() == Some(class)
                && c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
        })
    };
    let mut waiting: Vec<Arc<Pod>> = pods.iter().filter(pending).cloned().collect();
    waiting.sort_by(|a, b| logic::schedule::queue_order(a, b));
    for pod in &waiting {
        let spec = pod.spec.clone().unwrap_or_default();
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
                    Ok(_) => {}
                    // Gone, or bound by someone else: the caches will say.
                    Err(kube::Error::Api(_)) => continue,
                    Err(e) => return Err(e),
                }
                let mut placed = (**pod).clone();
                if let Some(s) = placed.spec.as_mut() {
                    s.node_name = Some(node.clone());
                }
                bound.push(placed);
                assumed.bound.insert(uid(pod), node);
            }
            Decision::Unschedulable(message) => {
                let already = pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "PodScheduled"
                            && c.status == "False"
                            && c.message.as_deref() == Some(message.as_str())
                    })
                });
                if already || assumed.reported.get(&uid(pod)) == Some(&message) {
                    continue;
                }
                let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                let status = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
                    "reason": "Unschedulable", "message": message, "lastTransitionTime": now}]}});
                match api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(status)).await {
                    Ok(_) | Err(kube::Error::Api(_)) => {}
                    Err(e) => return Err(e),
                }
                assumed.reported.insert(uid(pod), message.clone());
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
