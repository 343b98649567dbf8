//! What the workload controllers (StatefulSet, ReplicaSet, Deployment, Job, DaemonSet,
//! ReplicationController) share in their I/O: adopting and releasing owned objects, creating
//! and deleting pods with their events, and upstream's slow start.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::Recorder;
use kube::{Resource, ResourceExt};
use serde_json::json;

/// Rewrite owner references with a revision precondition; `None` if the object changed meanwhile.
pub(crate) async fn set_owners<K>(api: &Api<K>, obj: &K, owners: Vec<OwnerReference>) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let owners = if owners.is_empty() { serde_json::Value::Null } else { json!(owners) };
    let patch = json!({"metadata": {"resourceVersion": obj.meta().resource_version, "ownerReferences": owners}});
    match api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await {
        Ok(updated) => Ok(Some(updated)),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// List `api` and claim for `owner`: adopt the orphans its selector matches (and `eligible`
/// allows), release what it controls but no longer matches; what it controls afterwards.
pub(crate) async fn claim_owned<K>(
    api: &Api<K>,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    owner_ref: &OwnerReference,
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    eligible: &(dyn Fn(&K) -> bool + Sync),
) -> Result<Vec<K>, kube::Error>
where
    K: Resource
        + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let matches = selector_matches(selector);
    let selected = |o: &K| matches(&o.meta().labels.clone().unwrap_or_default());
    let all = api.list(&kube::api::ListParams::default()).await?.items;
    let (adopt, release) = logic::ownership::claim(owner, &all, &selected, eligible);
    let (adopt, release): (Vec<K>, Vec<K>) =
        (adopt.into_iter().cloned().collect(), release.into_iter().cloned().collect());
    adopt_and_release(api, owner_ref, all, adopt.iter().collect(), release.iter().collect(), &selected).await
}

/// The objects `owner` controls after adopting `adopt` and releasing `release` (upstream's
/// `ClaimObject` applied): `selected` are the ones that match its selector.
async fn adopt_and_release<K>(
    api: &Api<K>,
    owner_ref: &OwnerReference,
    all: Vec<K>,
    adopt: Vec<&K>,
    release: Vec<&K>,
    selected: &(dyn Fn(&K) -> bool + Sync),
) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut changed = Vec::new();
    for obj in adopt {
        let mut owners = obj.meta().owner_references.clone().unwrap_or_default();
        owners.push(owner_ref.clone());
        changed.extend(set_owners(api, obj, owners).await?);
    }
    for obj in release {
        let owners = obj.meta().owner_references.iter().flatten().filter(|r| r.uid != owner_ref.uid).cloned().collect();
        set_owners(api, obj, owners).await?;
    }
    let mut controlled: Vec<K> =
        all.into_iter().filter(|o| logic::ownership::controlled_by(o.meta(), &owner_ref.uid) && selected(o)).collect();
    for obj in changed {
        controlled.retain(|o| o.meta().name != obj.meta().name);
        controlled.push(obj);
    }
    Ok(controlled)
}

/// A label selector as a predicate over labels; an empty or malformed one matches nothing.
pub(crate) fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> impl Fn(&std::collections::BTreeMap<String, String>) -> bool + use<> {
    let parsed = model::selector::LabelSelector::from_k8s(selector).ok();
    move |labels| parsed.as_ref().is_some_and(|s| !s.is_empty() && s.matches(labels))
}

/// Upstream's slow start: run `units` in batches of 1, 2, 4, … (at most 500); a batch with a
/// failure ends the run with that failure.
pub(crate) async fn slow_start<T, E, F, Fut>(units: Vec<T>, mut run: F) -> Result<(), E>
where
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let mut batch = 1;
    let mut rest = units.into_iter().peekable();
    while rest.peek().is_some() {
        let now: Vec<Fut> = rest.by_ref().take(batch).map(&mut run).collect();
        futures::future::join_all(now).await.into_iter().collect::<Result<Vec<()>, E>>()?;
        batch = (batch * 2).min(500);
    }
    Ok(())
}

/// How long running syncs may finish after shutdown; a controller whose caches never filled can
/// wait forever, so it is dropped after this.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Run a `kube::runtime::Controller` (with its watches set) until `shutdown`: a failed sync is
/// logged and retried after a second; at shutdown running syncs get `SHUTDOWN_GRACE`.
pub(crate) async fn run_controller<K, C, F, Fut>(
    name: &'static str,
    controller: kube::runtime::Controller<K>,
    reconcile: F,
    ctx: std::sync::Arc<C>,
    shutdown: tokio_util::sync::CancellationToken,
) where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    C: Send + Sync + 'static,
    F: FnMut(std::sync::Arc<K>, std::sync::Arc<C>) -> Fut,
    Fut: futures::TryFuture<Ok = kube::runtime::controller::Action> + Send + 'static,
    Fut::Error: std::error::Error + Send + 'static,
{
    use futures::StreamExt;
    let stop = shutdown.clone();
    let running = controller
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(
            reconcile,
            move |_, error, _| {
                tracing::warn!(%error, controller = name, "sync failed");
                kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(1))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()));
    tokio::pin!(running);
    tokio::select! {
        _ = &mut running => {}
        _ = shutdown.cancelled() => { let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut running).await; }
    }
}

/// What a workload controller's syncs share: the client and the event recorder under the
/// controller's upstream name (`statefulset-controller`, …).
pub(crate) struct Ctx {
    pub client: kube::Client,
    pub recorder: Recorder,
}

impl Ctx {
    pub(crate) fn new(client: kube::Client, controller: &str) -> std::sync::Arc<Ctx> {
        let reporter = kube::runtime::events::Reporter { controller: controller.into(), instance: None };
        std::sync::Arc::new(Ctx { recorder: Recorder::new(client.clone(), reporter), client })
    }
}

/// Create `pod` for the object `reference` names, recording upstream's `SuccessfulCreate`
/// (`Created pod: <name>`) or `FailedCreate` event.
pub(crate) async fn create_pod(
    api: &Api<k8s_openapi::api::core::v1::Pod>,
    recorder: &Recorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    pod: &k8s_openapi::api::core::v1::Pod,
) -> Result<(), kube::Error> {
    use kube::runtime::events::EventType;
    match api.create(&kube::api::PostParams::default(), pod).await {
        Ok(made) => {
            let note = format!("Created pod: {}", made.name_any());
            client_tools::publish(recorder, reference, EventType::Normal, "SuccessfulCreate", note).await;
            Ok(())
        }
        Err(e) => {
            let note = format!("Error creating: {e}");
            client_tools::publish(recorder, reference, EventType::Warning, "FailedCreate", note).await;
            Err(e)
        }
    }
}

/// Delete the pod `name` if it is still the one with `uid`, recording `SuccessfulDelete`; a pod
/// already gone or replaced is not an error.
pub(crate) async fn delete_pod(
    api: &Api<k8s_openapi::api::core::v1::Pod>,
    recorder: &Recorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    name: &str,
    uid: &str,
) -> Result<(), kube::Error> {
    use kube::runtime::events::EventType;
    let params = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions { uid: Some(uid.to_string()), resource_version: None }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {
            let note = format!("Deleted pod: {name}");
            client_tools::publish(recorder, reference, EventType::Normal, "SuccessfulDelete", note).await;
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
