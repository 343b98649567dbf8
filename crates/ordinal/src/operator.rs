//! `ordinal operator`: the StatefulSet controller alone, against any Kubernetes API.

use tokio_util::sync::CancellationToken;

/// Run the StatefulSet controller with `client` until `shutdown`, for every namespace or one.
pub async fn run_statefulset_controller(client: kube::Client, shutdown: CancellationToken, namespace: Option<String>) {
    controllers::statefulset::run(client, shutdown, namespace).await;
}
