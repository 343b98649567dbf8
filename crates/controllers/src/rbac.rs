//! The ClusterRole aggregation controller (kube-controller-manager's
//! `clusterrole-aggregation`): a ClusterRole with an `aggregationRule` holds the union of the
//! rules of the ClusterRoles its selectors match (`model::rbac::aggregate` decides), kept
//! current as they change, so `admin`, `edit` and `view` grow with the roles charts label
//! `rbac.authorization.k8s.io/aggregate-to-*`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::resources::is_benign;

const RESYNC: Duration = Duration::from_secs(300);

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let api: Api<ClusterRole> = Api::all(client);
    let (roles, watch) = client_tools::reflect(api.clone(), changed.clone());
    tokio::pin!(watch);
    while client_tools::next_pass(&shutdown, watch.as_mut(), &changed, RESYNC).await {
        let all: Vec<ClusterRole> = roles.state().iter().map(|r| (**r).clone()).collect();
        for role in &all {
            let Some(rules) = model::rbac::aggregate(role, &all) else { continue };
            if role.rules.as_ref() == Some(&rules) {
                continue;
            }
            let name = role.metadata.name.clone().unwrap_or_default();
            let patch = serde_json::json!({"rules": rules});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => tracing::debug!(role = %name, rules = rules.len(), "aggregated"),
                Err(e) if is_benign(&e) => {}
                Err(e) => tracing::warn!(role = %name, error = %e, "aggregate cluster role"),
            }
        }
    }
}
