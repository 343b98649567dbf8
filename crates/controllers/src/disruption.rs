//! The disruption controller: keeps every PodDisruptionBudget's status (`currentHealthy`,
//! `desiredHealthy`, `expectedPods`, `disruptionsAllowed`) current from watched caches of
//! budgets, pods and the workloads that own them; `logic::disruption` does the arithmetic, and
//! the API server's eviction subresource spends what it allows.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const RESYNC: Duration = Duration::from_secs(30);

struct Caches {
    budgets: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    sets: Store<StatefulSet>,
    replica_sets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
}

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let (budgets, w1) = client_tools::reflect(Api::<PodDisruptionBudget>::all(client.clone()), changed.clone());
    let (pods, w2) = client_tools::reflect(Api::<Pod>::all(client.clone()), changed.clone());
    let (sets, w3) = client_tools::reflect(Api::<StatefulSet>::all(client.clone()), changed.clone());
    let (replica_sets, w4) = client_tools::reflect(Api::<ReplicaSet>::all(client.clone()), changed.clone());
    let (deployments, w5) = client_tools::reflect(Api::<Deployment>::all(client.clone()), changed.clone());
    let caches = Caches { budgets, pods, sets, replica_sets, deployments };
    let watches = async {
        futures::future::join5(w1, w2, w3, w4, w5).await;
    };
    tokio::pin!(watches);
    while client_tools::next_pass(&shutdown, watches.as_mut(), &changed, RESYNC).await {
        for budget in caches.budgets.state() {
            if let Err(e) = sync(&client, &caches, &budget).await {
                tracing::debug!(budget = ?budget.metadata.name, error = %e, "disruption budget status");
            }
        }
    }
}

/// The replicas the controllers of `pods` want (upstream `getExpectedScale`): a ReplicaSet a
/// Deployment owns counts as the Deployment; pods without a known controller count as one
/// each.
fn expected_scale(caches: &Caches, ns: &str, pods: &[&Pod]) -> i32 {
    let mut controllers = BTreeSet::new();
    let mut loose = 0;
    for pod in pods {
        match pod.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true)) {
            Some(owner) => {
                let mut key = (owner.kind.clone(), owner.name.clone());
                if owner.kind == "ReplicaSet"
                    && let Some(rs) = find(&caches.replica_sets, ns, &owner.name)
                    && let Some(deploy) = rs.metadata.owner_references.iter().flatten().find(|o| o.kind == "Deployment")
                {
                    key = ("Deployment".into(), deploy.name.clone());
                }
                controllers.insert(key);
            }
            None => loose += 1,
        }
    }
    let replicas = controllers.iter().map(|(kind, name)| match kind.as_str() {
        "StatefulSet" => find(&caches.sets, ns, name).and_then(|s| s.spec.as_ref()?.replicas).unwrap_or(1),
        "ReplicaSet" => find(&caches.replica_sets, ns, name).and_then(|s| s.spec.as_ref()?.replicas).unwrap_or(1),
        "Deployment" => find(&caches.deployments, ns, name).and_then(|s| s.spec.as_ref()?.replicas).unwrap_or(1),
        _ => 1,
    });
    replicas.sum::<i32>() + loose
}

fn find<K>(store: &Store<K>, ns: &str, name: &str) -> Option<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))
}

async fn sync(client: &kube::Client, caches: &Caches, budget: &PodDisruptionBudget) -> kube::Result<()> {
    let ns = budget.metadata.namespace.clone().unwrap_or_default();
    let selector = budget.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    let Ok(selector) = model::selector::LabelSelector::from_k8s(&selector) else { return Ok(()) };
    let all_pods = caches.pods.state();
    let pods: Vec<&Pod> = all_pods
        .iter()
        .map(|p| &**p)
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|p| selector.matches(&p.metadata.labels.clone().unwrap_or_default()))
        .collect();
    let scale = expected_scale(caches, &ns, &pods);
    let status = logic::disruption::budget_status(budget, &pods, scale, jiff::Timestamp::now());
    if budget.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    let name = budget.metadata.name.clone().unwrap_or_default();
    let mut status_json = serde_json::to_value(&status).unwrap_or_default();
    if status.disrupted_pods.is_none() {
        // A merge patch keeps what it does not mention: clear the records that ran out.
        status_json["disruptedPods"] = serde_json::Value::Null;
    }
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status_json}))).await?;
    Ok(())
}
