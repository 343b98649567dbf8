//! The DaemonSet controller shell (kube-controller-manager's `daemonset-controller`): on every
//! change to a DaemonSet, its pods or revisions, or a node, read the nodes, its pods (adopting
//! orphans its selector matches) and revisions, ask `logic::daemonset::plan`, record the
//! template's revision, create and delete pods with upstream's events, drop revisions beyond
//! the history limit and write status.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use logic::statefulset::revision::UpdateRevision;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::workload::Ctx;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("daemonset {0} has no namespace")]
    NoNamespace(String),
}

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let ctx = Ctx::new(client.clone(), "daemonset-controller");
    let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).touched_objects().map(|_| ());
    let controller = Controller::new(Api::<DaemonSet>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .owns(Api::<ControllerRevision>::all(client), watcher::Config::default())
        .reconcile_all_on(nodes);
    crate::workload::run_controller("daemonset", controller, reconcile, ctx, shutdown).await;
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let name = ds.name_any();
    let ns = ds.namespace().ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let revisions_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let sets: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = ds.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    let owner = logic::ownership::controller_ref("apps/v1", "DaemonSet", &ds.metadata);
    let pods = crate::workload::claim_owned(&pods_api, &ds.metadata, &owner, &selector, &|_| true).await?;
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let revisions: Vec<ControllerRevision> = revisions_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| logic::ownership::controlled_by(&r.metadata, &uid))
        .collect();
    let nodes = Api::<Node>::all(ctx.client.clone()).list(&ListParams::default()).await?.items;
    let plan = logic::daemonset::plan(&ds, &nodes, &pods, &revisions, jiff::Timestamp::now());
    match &plan.revision {
        Some(UpdateRevision::Create(revision)) => match revisions_api.create(&PostParams::default(), revision).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Another object holds the name: count the collision and try again.
                let collisions = ds.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0) + 1;
                let patch = json!({"status": {"collisionCount": collisions}});
                sets.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
                return Ok(Requeue::await_change());
            }
            Err(e) => return Err(e.into()),
        },
        Some(UpdateRevision::Reuse { name: r, revision }) => {
            revisions_api.patch(r, &PatchParams::default(), &Patch::Merge(json!({"revision": revision}))).await?;
        }
        Some(UpdateRevision::Latest(_)) | None => {}
    }
    let reference = ds.object_ref(&());
    let recorder = &ctx.recorder;
    for node in &plan.create {
        let pod = logic::daemonset::new_pod(&ds, node, &plan.hash);
        crate::workload::create_pod(&pods_api, recorder, &reference, &pod).await?;
    }
    for (pod_name, pod_uid) in &plan.delete {
        crate::workload::delete_pod(&pods_api, recorder, &reference, pod_name, pod_uid).await?;
    }
    for old in &plan.truncate {
        match revisions_api.delete(old, &DeleteParams::default()).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if ds.status.as_ref() != Some(&plan.status) {
        let patch = json!({"status": plan.status});
        match sets.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // A pod becoming available after minReadySeconds changes the status without an event.
    let min_ready = ds.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    Ok(if min_ready > 0 {
        Requeue::requeue(std::time::Duration::from_secs(u64::try_from(min_ready).unwrap_or(1)))
    } else {
        Requeue::await_change()
    })
}
