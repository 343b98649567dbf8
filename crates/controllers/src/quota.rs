//! The ResourceQuota controller (kube-controller-manager's `resourcequota-controller`): every
//! quota's status says what its namespace uses of each hard resource (`model::quota::usage`
//! over the kinds it counts), recomputed when a quota changes and every few seconds for the
//! objects it counts (upstream resyncs as well as watching; admission never trusts this status,
//! it counts the live objects).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const RESYNC: Duration = Duration::from_secs(5);

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let (quotas, watch) = client_tools::reflect(Api::<ResourceQuota>::all(client.clone()), changed.clone());
    tokio::pin!(watch);
    while client_tools::next_pass(&shutdown, watch.as_mut(), &changed, RESYNC).await {
        for quota in quotas.state() {
            if let Err(e) = sync(&client, &quota).await {
                tracing::debug!(error = %e, quota = ?quota.metadata.name, "resource quota status");
            }
        }
    }
}

async fn sync(client: &kube::Client, quota: &ResourceQuota) -> Result<(), kube::Error> {
    let Some(ns) = quota.metadata.namespace.as_deref() else { return Ok(()) };
    let mut usages = Vec::new();
    for (group, plural) in model::quota::counted_kinds(quota) {
        let Some(info) = model::resources::groups()
            .into_iter()
            .filter(|(g, _)| *g == group)
            .find_map(|(g, v)| model::resources::find(g, v, &plural))
        else {
            continue;
        };
        let resource = ApiResource {
            group: info.group.into(),
            version: info.version.into(),
            api_version: info.api_version(),
            kind: info.kind.into(),
            plural: info.plural.into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        for object in api.list(&ListParams::default()).await?.items {
            let value = serde_json::to_value(&object).unwrap_or_default();
            usages.push(model::quota::usage(info.group, info.plural, &value));
        }
    }
    let status = model::quota::status(quota, &model::quota::total(usages.iter()));
    if quota.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    let name = quota.metadata.name.clone().unwrap_or_default();
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"status": status}))).await?;
    Ok(())
}
