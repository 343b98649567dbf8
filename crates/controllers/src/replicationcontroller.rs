//! The ReplicationController controller (kube-controller-manager's
//! `replicationcontroller-controller`): upstream runs the ReplicaSet controller over
//! ReplicationControllers through an adapter, and so does this one — the RC is read as the
//! ReplicaSet it is equivalent to (its label-map selector as `matchLabels`), planned by
//! `logic::replicaset` and synced by the ReplicaSet shell (`replicaset::sync`), its pods owned by
//! the RC.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use crate::workload::Ctx;

use crate::replicaset::Error;

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
    let owner = logic::ownership::controller_ref("v1", "ReplicationController", &rc.metadata);
    crate::replicaset::sync(&ctx, &*rc, &as_replica_set(&rc), owner).await
}
