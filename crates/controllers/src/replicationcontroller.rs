//! The ReplicationController controller (kube-controller-manager's
//! `replicationcontroller-controller`): upstream runs the ReplicaSet controller over
//! ReplicationControllers through an adapter, and so does this one — the RC is read as the
//! ReplicaSet it is equivalent to (its label-map selector as `matchLabels`), planned by
//! `logic::replicaset`, and its pods are owned by the RC.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::workload::Ctx;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("replicationcontroller {0} has no namespace")]
    NoNamespace(String),
}

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let ctx = Ctx::new(client.clone(), "replication-controller");
    let controller = Controller::new(Api::<ReplicationController>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default());
    crate::workload::run_controller("replicationcontroller", controller, reconcile, ctx, shutdown).await;
}

/// The ReplicaSet a ReplicationController is equivalent to.
fn as_replica_set(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector { match_labels: spec.selector, ..Default::default() },
            template: spec.template,
        }),
        status: rc
            .status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|s| serde_json::from_value(s).ok()),
    }
}

async fn reconcile(rc: Arc<ReplicationController>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let name = rc.name_any();
    let ns = rc.namespace().ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let rs = as_replica_set(&rc);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = rs.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    let owner = logic::ownership::controller_ref("v1", "ReplicationController", &rc.metadata);
    let pods = crate::workload::claim_owned(&pods_api, &rc.metadata, &owner, &selector, &|_| true).await?;
    let plan = logic::replicaset::plan(&rs, &pods, jiff::Timestamp::now());
    let reference = rc.object_ref(&());
    let mut template = logic::replicaset::new_pod(&rs);
    template.metadata.owner_references = Some(vec![owner]);
    let created = crate::workload::slow_start(vec![(); plan.create], |()| {
        crate::workload::create_pod(&pods_api, &ctx.recorder, &reference, &template)
    })
    .await;
    for (pod_name, uid) in &plan.delete {
        crate::workload::delete_pod(&pods_api, &ctx.recorder, &reference, pod_name, uid).await?;
    }
    if logic::replicaset::status_changed(rs.status.as_ref(), &plan.status) {
        let api: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"status": plan.status});
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    created?;
    Ok(match plan.requeue_after_secs {
        Some(secs) => Requeue::requeue(std::time::Duration::from_secs(secs)),
        None => Requeue::await_change(),
    })
}
