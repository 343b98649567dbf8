//! Controllers: thin shells that watch through `kube::Client`, plan with `logic`, and write back
//! through the API. They never touch the store or the API server's internals, so each runs
//! unchanged against any Kubernetes API.

pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod gc;
pub mod namespace;
pub mod rbac;
pub mod replicaset;
mod resources;
pub mod scheduler;
pub mod serviceaccount;
pub mod statefulset;
pub mod volumes;
mod workload;

use tokio_util::sync::CancellationToken;

/// Start the controllers that run inside `ordinal server` (garbage collection, namespace
/// cleanup, ClusterRole aggregation, each namespace's `default` service account and `kube-root-ca.crt` (given the CA), disruption budgets' status, StatefulSets, ReplicaSets, Deployments, scheduling, endpoints and endpoint slices, persistent volumes with the local provisioner when this
/// machine runs pods). Each task ends when `shutdown` is cancelled.
pub fn spawn_cluster_controllers(
    client: kube::Client,
    shutdown: CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
    provisioner: Option<volumes::LocalProvisioner>,
    root_ca: Option<String>,
) {
    tracker.spawn(logged("volume controller", volumes::run(client.clone(), shutdown.clone(), provisioner)));
    tracker.spawn(logged("endpoints controller", endpoints::run(client.clone(), shutdown.clone())));
    tracker.spawn(logged("garbage collector", gc::run(client.clone(), shutdown.clone())));
    tracker.spawn(logged("namespace controller", namespace::run(client.clone(), shutdown.clone())));
    tracker.spawn(logged("disruption controller", disruption::run(client.clone(), shutdown.clone())));
    tracker.spawn(logged("clusterrole aggregation", rbac::run(client.clone(), shutdown.clone())));
    tracker.spawn(logged("serviceaccount controller", serviceaccount::run(client.clone(), shutdown.clone(), root_ca)));
    tracker.spawn(logged("statefulset controller", statefulset::run(client.clone(), shutdown.clone())));
    tracker.spawn(logged("replicaset controller", replicaset::run(client.clone(), shutdown.clone())));
    tracker.spawn(logged("deployment controller", deployment::run(client.clone(), shutdown.clone())));
    tracker.spawn(logged("scheduler", scheduler::run(client, shutdown)));
}

/// Log when a long-lived task ends (shutdown diagnostics).
async fn logged(name: &'static str, task: impl std::future::Future<Output = ()>) {
    task.await;
    tracing::debug!(task = name, "stopped");
}
