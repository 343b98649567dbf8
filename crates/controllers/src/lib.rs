//! Controllers: thin shells that watch through `kube::Client`, plan with `logic`, and write back
//! through the API. They never touch the store or the API server's internals, so each runs
//! unchanged against any Kubernetes API.

pub mod gc;
pub mod namespace;
pub mod statefulset;
mod resources;

use tokio_util::sync::CancellationToken;

/// Start the controllers that run inside `ordinal server` (garbage collection, namespace
/// cleanup, StatefulSets). Each task ends when `shutdown` is cancelled.
pub fn spawn_cluster_controllers(
    client: kube::Client,
    shutdown: CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
) {
    tracker.spawn(gc::run(client.clone(), shutdown.clone()));
    tracker.spawn(namespace::run(client.clone(), shutdown.clone()));
    tracker.spawn(statefulset::run(client, shutdown));
}
