//! The ReplicaSet controller shell: on every change to a ReplicaSet or its pods, read its pods
//! from the API (adopting orphans its selector matches, releasing pods it no longer matches),
//! ask `logic::replicaset::plan`, create or delete pods (creates in slow-start batches), record
//! events and write status.
//!
//! As for StatefulSets, reads go to the API: syncs of one ReplicaSet never overlap and read
//! after their own writes, so a generated-name pod is never created twice for one gap.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("replicaset {0} has no namespace")]
    NoNamespace(String),
}

use crate::workload::Ctx;

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let ctx = Ctx::new(client.clone(), "replicaset-controller");
    let controller = Controller::new(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default());
    crate::workload::run_controller("replicaset", controller, reconcile, ctx, shutdown).await;
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let owner = logic::ownership::controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
    sync(&ctx, &*rs, &rs, owner).await
}

/// One sync of `object` (a ReplicaSet, or a ReplicationController read as the ReplicaSet `rs`
/// it is equivalent to): claim its pods for `owner`, plan, create and delete pods, write status.
pub(crate) async fn sync<K>(ctx: &Ctx, object: &K, rs: &ReplicaSet, owner: OwnerReference) -> Result<Requeue, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let name = object.name_any();
    let ns = object.namespace().ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = rs.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    let pods = crate::workload::claim_owned(&pods_api, &rs.metadata, &owner, &selector, &|_| true).await?;

    let plan = logic::replicaset::plan(rs, &pods, jiff::Timestamp::now());
    let reference = object.object_ref(&());
    let mut template = logic::replicaset::new_pod(rs);
    template.metadata.owner_references = Some(vec![owner]);
    let created = crate::workload::slow_start(vec![(); plan.create], |()| {
        crate::workload::create_pod(&pods_api, &ctx.recorder, &reference, &template)
    })
    .await;
    for (pod_name, uid) in &plan.delete {
        crate::workload::delete_pod(&pods_api, &ctx.recorder, &reference, pod_name, uid).await?;
    }
    if logic::replicaset::status_changed(rs.status.as_ref(), &plan.status) {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"status": plan.status});
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    created?;
    Ok(match plan.requeue_after_secs {
        Some(secs) => Requeue::requeue(Duration::from_secs(secs)),
        None => Requeue::await_change(),
    })
}
