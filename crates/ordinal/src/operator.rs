//! `ordinal operator`: the StatefulSet controller alone, against any Kubernetes API.

use tokio_util::sync::CancellationToken;

/// Run the StatefulSet controller with `client` until `shutdown`.
pub async fn run_statefulset_controller(client: kube::Client, shutdown: CancellationToken) {
    controllers::statefulset::run(client, shutdown).await;
}
