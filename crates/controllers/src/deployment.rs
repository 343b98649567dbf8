//! The Deployment controller shell: on every change to a Deployment, its ReplicaSets or their
//! pods, read its ReplicaSets (adopting and releasing by selector) and pods from the API, ask
//! `logic::deployment::plan` for one step, apply it, record events and write status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use logic::deployment::{Action, Input};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("deployment {0} has no namespace")]
    NoNamespace(String),
}

use crate::workload::Ctx;

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let ctx = Ctx::new(client.clone(), "deployment-controller");
    // A pod's Deployment is its ReplicaSet's controller (upstream `getDeploymentForPod`): the
    // ReplicaSets are kept in a cache for that lookup.
    let unused = Arc::new(tokio::sync::Notify::new());
    let (sets, sets_watch) = client_tools::reflect(Api::<ReplicaSet>::all(client.clone()), unused);
    let controller = Controller::new(Api::<Deployment>::all(client.clone()), watcher::Config::default())
        .owns(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default())
        .watches(Api::<Pod>::all(client), watcher::Config::default(), move |pod| deployment_of_pod(&sets, &pod));
    tokio::select! {
        _ = crate::workload::run_controller("deployment", controller, reconcile, ctx, shutdown) => {}
        _ = sets_watch => {}
    }
}

/// The Deployment of a pod's ReplicaSet (Recreate waits for old pods to be gone, so their
/// deletion must wake the Deployment).
fn deployment_of_pod(sets: &kube::runtime::reflector::Store<ReplicaSet>, pod: &Pod) -> Option<ObjectRef<Deployment>> {
    let ns = pod.metadata.namespace.clone()?;
    let owner = pod.metadata.owner_references.iter().flatten().find(|r| r.controller == Some(true))?;
    let rs = sets
        .get(&ObjectRef::new(&owner.name).within(&ns))
        .filter(|rs| rs.metadata.uid.as_deref() == Some(&owner.uid))?;
    let deployment =
        rs.metadata.owner_references.iter().flatten().find(|r| r.controller == Some(true) && r.kind == "Deployment")?;
    Some(ObjectRef::new(&deployment.name).within(&ns))
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let name = d.name_any();
    let ns = d.namespace().ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    let owner = logic::ownership::controller_ref("apps/v1", "Deployment", &d.metadata);
    let sets = crate::workload::claim_owned(&rs_api, &d.metadata, &owner, &selector, &|_| true).await?;
    let recreate =
        d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let pods = if recreate { pods_api.list(&ListParams::default()).await?.items } else { Vec::new() };

    let plan = logic::deployment::plan(&Input {
        deployment: &d,
        replica_sets: &sets,
        pods: &pods,
        now: jiff::Timestamp::now(),
    });
    let reference = d.object_ref(&());
    let mut status = plan.status.clone();
    for action in &plan.actions {
        match action {
            Action::CreateReplicaSet(rs) => match rs_api.create(&PostParams::default(), rs).await {
                Ok(created) => {
                    let replicas = created.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                    let note = format!("Scaled up replica set {} from 0 to {replicas}", created.name_any());
                    client_tools::publish(&ctx.recorder, &reference, EventType::Normal, "ScalingReplicaSet", note)
                        .await;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    // A ReplicaSet of that name that is not this template's: a hash collision.
                    let existing = rs_api.get_opt(&rs.name_any()).await?;
                    let ours = existing.as_ref().is_some_and(|e| {
                        logic::ownership::controlled_by(&e.metadata, d.metadata.uid.as_deref().unwrap_or(""))
                    });
                    if !ours {
                        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    }
                }
                Err(e) => {
                    let note = format!("Failed to create new replica set {}: {e}", rs.name_any());
                    client_tools::publish(&ctx.recorder, &reference, EventType::Warning, "ReplicaSetCreateError", note)
                        .await;
                    return Err(e.into());
                }
            },
            Action::UpdateReplicaSet { name: rs_name, replicas, annotations } => {
                let before = sets
                    .iter()
                    .find(|s| s.metadata.name.as_deref() == Some(rs_name))
                    .and_then(|s| s.spec.as_ref())
                    .and_then(|s| s.replicas)
                    .unwrap_or(0);
                let patch = json!({"metadata": {"annotations": annotations}, "spec": {"replicas": replicas}});
                match rs_api.patch(rs_name, &PatchParams::default(), &Patch::Merge(patch)).await {
                    Ok(_) if before != *replicas => {
                        let direction = if *replicas > before { "up" } else { "down" };
                        let note = format!("Scaled {direction} replica set {rs_name} from {before} to {replicas}");
                        client_tools::publish(&ctx.recorder, &reference, EventType::Normal, "ScalingReplicaSet", note)
                            .await;
                    }
                    Ok(_) | Err(kube::Error::Api(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Action::DeleteReplicaSet { name: rs_name, uid } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                    ..Default::default()
                };
                match rs_api.delete(rs_name, &params).await {
                    Ok(_) | Err(kube::Error::Api(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Action::SetRevision(revision) => {
                let patch = json!({"metadata": {"annotations": {logic::deployment::REVISION: revision}}});
                match deployments.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
                    Ok(_) | Err(kube::Error::Api(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    if d.status.clone().unwrap_or_default() != status {
        match deployments.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(match plan.requeue_after_secs {
        Some(secs) => Requeue::requeue(Duration::from_secs(secs)),
        None => Requeue::await_change(),
    })
}
