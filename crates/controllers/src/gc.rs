//! The garbage collector: reflects every kind into memory, and after each burst of changes
//! runs `logic::gc::plan` over the whole ownership graph and applies the actions.
//!
//! Level-triggered: a pass recomputes from the caches, so a failed or lost action is retried
//! by the next pass (one runs at least every `RESYNC`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use logic::gc::{Action, Node, ObjectRef, Owner};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::resources::{api_for, api_resource, is_benign, managed_kinds};

const RESYNC: Duration = Duration::from_secs(30);
/// Changes arriving within this window are planned together.
const SETTLE: Duration = Duration::from_millis(20);

struct Kind {
    ar: kube::api::ApiResource,
    store: Store<DynamicObject>,
}

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let mut kinds = Vec::new();
    let mut reflectors = Vec::new();
    for info in managed_kinds() {
        let ar = api_resource(info);
        let writer = reflector::store::Writer::new(ar.clone());
        let store = writer.as_reader();
        let api = api_for(&client, &ar, None);
        let notify = changed.clone();
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff().for_each(
            move |event| {
                if let Err(e) = event {
                    tracing::debug!(error = %e, "gc watch error");
                }
                notify.notify_one();
                futures::future::ready(())
            },
        );
        reflectors.push(stream);
        kinds.push(Kind { ar, store });
    }
    let watching = futures::future::join_all(reflectors);
    tokio::pin!(watching);

    // Plan only on a complete graph: an owner not yet listed is not a missing owner.
    let ready = async {
        for k in &kinds {
            let _ = k.store.wait_until_ready().await;
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = &mut watching => return,
        _ = ready => {}
    }
    loop {
        let nodes = snapshot(&kinds);
        let actions = logic::gc::plan(&nodes);
        for action in &actions {
            if let Some(confirmed) = confirmed(&client, &nodes, action).await {
                apply(&client, &kinds, action, confirmed).await;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = &mut watching => return,
            _ = changed.notified() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

fn snapshot(kinds: &[Kind]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for k in kinds {
        for obj in k.store.state() {
            let meta = &obj.metadata;
            let Some(uid) = meta.uid.clone() else { continue };
            nodes.push(Node {
                uid,
                object: ObjectRef {
                    api_version: k.ar.api_version.clone(),
                    kind: k.ar.kind.clone(),
                    namespace: meta.namespace.clone(),
                    name: meta.name.clone().unwrap_or_default(),
                },
                resource_version: meta.resource_version.clone().unwrap_or_default(),
                owners: meta.owner_references.iter().flatten().map(owner).collect(),
                deleting: meta.deletion_timestamp.is_some(),
                finalizers: meta.finalizers.clone().unwrap_or_default(),
            });
        }
    }
    nodes
}

fn owner(o: &OwnerReference) -> Owner {
    Owner {
        uid: o.uid.clone(),
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        name: o.name.clone(),
        block_owner_deletion: o.block_owner_deletion.unwrap_or(false),
    }
}

/// The caches can lag behind the API (each kind has its own watch), and acting on a stale view
/// could delete a live object's dependents, or a dependent already released from its owner.
/// So, as upstream's collector does (`attemptToDeleteItem` reads the object again), destructive
/// decisions are checked against the API first: an owner believed gone must really be gone (or
/// replaced: another uid), a dependent about to be deleted must still list only such owners
/// (its resourceVersion then becomes the delete's precondition), and an owner about to be
/// released must have no dependents left. `None` means "not now".
async fn confirmed(client: &kube::Client, nodes: &[Node], action: &Action) -> Option<Confirmed> {
    match action {
        Action::Delete { object, uid } => {
            garbage_at(client, object, uid).await.map(|rv| Confirmed { resource_version: Some(rv) })
        }
        Action::SetOwners { object, keep, .. } => {
            let node = nodes.iter().find(|n| n.object == *object)?;
            owners_going(client, object.namespace.as_deref(), &node.owners, keep)
                .await
                .then_some(Confirmed { resource_version: None })
        }
        Action::RemoveFinalizer { object, .. } => {
            let owner = nodes.iter().find(|n| n.object == *object)?;
            matches!(has_live_dependents(client, &owner.uid, object.namespace.as_deref()).await, Ok(false))
                .then_some(Confirmed { resource_version: None })
        }
    }
}

/// What the API confirmed about an action's object.
struct Confirmed {
    /// For a delete: the resourceVersion at which the dependent was seen to be garbage.
    resource_version: Option<String>,
}

/// The resourceVersion at which the API shows `object` (still with `uid`, not being deleted)
/// as garbage: it has owners and every one is gone or being deleted. `None` when it is not,
/// for instance because it was released from its owner after the caches last saw it.
pub async fn garbage_at(client: &kube::Client, object: &ObjectRef, uid: &str) -> Option<String> {
    let info = model::resources::by_kind(&object.api_version, &object.kind)?;
    let api = api_for(client, &api_resource(info), object.namespace.as_deref());
    let live = api.get_opt(&object.name).await.ok()??;
    if live.metadata.uid.as_deref() != Some(uid) || live.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let owners: Vec<Owner> = live.metadata.owner_references.iter().flatten().map(owner).collect();
    if owners.is_empty() || !owners_going(client, object.namespace.as_deref(), &owners, &[]).await {
        return None;
    }
    live.metadata.resource_version
}

/// Whether every one of `owners` not in `keep` is really gone or being deleted.
async fn owners_going(client: &kube::Client, namespace: Option<&str>, owners: &[Owner], keep: &[Owner]) -> bool {
    for owner in owners.iter().filter(|o| !keep.iter().any(|k| k.uid == o.uid)) {
        match live_owner(client, namespace, owner).await {
            Ok(Some(live)) if live.metadata.deletion_timestamp.is_none() => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    true
}

/// The owner as the API has it now, if it still exists with the referenced uid.
async fn live_owner(
    client: &kube::Client,
    namespace: Option<&str>,
    owner: &Owner,
) -> Result<Option<DynamicObject>, kube::Error> {
    let Some(info) = model::resources::by_kind(&owner.api_version, &owner.kind) else { return Ok(None) };
    let ns = if info.namespaced { namespace } else { None };
    let api = api_for(client, &api_resource(info), ns);
    Ok(api.get_opt(&owner.name).await?.filter(|o| o.metadata.uid.as_deref() == Some(owner.uid.as_str())))
}

/// Whether any object still lists `owner_uid` among its owners (looked up in the API, not the
/// caches): in the owner's namespace, and in cluster scope.
async fn has_live_dependents(
    client: &kube::Client,
    owner_uid: &str,
    namespace: Option<&str>,
) -> Result<bool, kube::Error> {
    for info in managed_kinds() {
        // A cluster-scoped owner may have dependents in every namespace.
        let ns = if info.namespaced { namespace } else { None };
        let api = api_for(client, &api_resource(info), ns);
        let list = api.list(&kube::api::ListParams::default()).await?;
        let refers = |o: &DynamicObject| o.metadata.owner_references.iter().flatten().any(|r| r.uid == owner_uid);
        if list.items.iter().any(refers) {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn apply(client: &kube::Client, kinds: &[Kind], action: &Action, confirmed: Confirmed) {
    let object = match action {
        Action::Delete { object, .. } | Action::SetOwners { object, .. } | Action::RemoveFinalizer { object, .. } => {
            object
        }
    };
    let Some(kind) = kinds.iter().find(|k| k.ar.kind == object.kind && k.ar.api_version == object.api_version) else {
        return;
    };
    let api = api_for(client, &kind.ar, object.namespace.as_deref());
    let result = match action {
        Action::Delete { uid, .. } => {
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: confirmed.resource_version,
                }),
                ..DeleteParams::default()
            };
            api.delete(&object.name, &params).await.map(|_| ())
        }
        Action::SetOwners { resource_version, keep, .. } => {
            let refs: Vec<serde_json::Value> = keep
                .iter()
                .map(|o| {
                    json!({"apiVersion": o.api_version, "kind": o.kind, "name": o.name, "uid": o.uid,
                           "blockOwnerDeletion": o.block_owner_deletion})
                })
                .collect();
            let owners = if refs.is_empty() { serde_json::Value::Null } else { json!(refs) };
            let patch = json!({"metadata": {"resourceVersion": resource_version, "ownerReferences": owners}});
            api.patch(&object.name, &PatchParams::default(), &Patch::Merge(patch)).await.map(|_| ())
        }
        Action::RemoveFinalizer { resource_version, finalizer, .. } => {
            let current = kind
                .store
                .state()
                .into_iter()
                .find(|o| o.metadata.name.as_deref() == Some(&object.name) && o.metadata.namespace == object.namespace)
                .and_then(|o| o.metadata.finalizers.clone())
                .unwrap_or_default();
            let rest: Vec<String> = current.into_iter().filter(|f| f != finalizer).collect();
            let patch = json!({"metadata": {"resourceVersion": resource_version, "finalizers": rest}});
            api.patch(&object.name, &PatchParams::default(), &Patch::Merge(patch)).await.map(|_| ())
        }
    };
    match result {
        Ok(()) => tracing::debug!(?action, "gc applied"),
        Err(e) if is_benign(&e) => {}
        Err(e) => tracing::warn!(error = %e, kind = %object.kind, name = %object.name, "gc action failed"),
    }
}
