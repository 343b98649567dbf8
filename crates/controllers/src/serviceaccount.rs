//! The ServiceAccounts controller: every active namespace has a `default` service account
//! (`logic::serviceaccount` decides), created when the namespace appears and again if it is
//! deleted, as kube-controller-manager's does; and, given the cluster CA, the root CA
//! publisher: every active namespace has `kube-root-ca.crt` with it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use logic::serviceaccount::{Publish, ROOT_CA_CONFIG_MAP};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::resources::is_benign;

const RESYNC: Duration = Duration::from_secs(300);

/// Run until `shutdown`; `root_ca` (PEM) is published to every namespace when given.
pub async fn run(client: kube::Client, shutdown: CancellationToken, root_ca: Option<String>) {
    let changed = Arc::new(Notify::new());
    let (namespaces, w1) = client_tools::reflect(Api::<Namespace>::all(client.clone()), changed.clone());
    let (accounts, w2) = client_tools::reflect(Api::<ServiceAccount>::all(client.clone()), changed.clone());
    let (config_maps, w3) = client_tools::reflect_with(
        Api::<ConfigMap>::all(client.clone()),
        kube::runtime::watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIG_MAP}")),
        changed.clone(),
    );
    let watches = futures::future::join3(w1, w2, w3);
    tokio::pin!(watches);
    while client_tools::next_pass(&shutdown, watches.as_mut(), &changed, RESYNC).await {
        let (ns_state, sa_state) = (namespaces.state(), accounts.state());
        let ns_refs: Vec<&Namespace> = ns_state.iter().map(|n| &**n).collect();
        let sa_refs: Vec<&ServiceAccount> = sa_state.iter().map(|a| &**a).collect();
        for (ns, name) in logic::serviceaccount::sync_namespaces(&ns_refs, &sa_refs) {
            let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
            let mut account = ServiceAccount::default();
            account.metadata.name = Some(name.to_string());
            match api.create(&PostParams::default(), &account).await {
                Ok(_) => tracing::debug!(namespace = %ns, name, "service account created"),
                // Already there (the cache was behind), or the namespace began terminating (403).
                Err(e) if is_benign(&e) || matches!(&e, kube::Error::Api(s) if s.code == 403) => {}
                Err(e) => tracing::warn!(namespace = %ns, name, error = %e, "create service account"),
            }
        }
        if let Some(ca) = &root_ca {
            let cm_state = config_maps.state();
            let cm_refs: Vec<&ConfigMap> = cm_state.iter().map(|c| &**c).collect();
            for action in logic::serviceaccount::publish_root_ca(&ns_refs, &cm_refs, ca) {
                publish(&client, action, ca).await;
            }
        }
    }
}

/// Create or rewrite one namespace's `kube-root-ca.crt`.
async fn publish(client: &kube::Client, action: Publish, ca: &str) {
    let (Publish::Create(ns) | Publish::Update(ns)) = &action;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(ROOT_CA_CONFIG_MAP.into());
    cm.metadata.annotations = Some(
        [(
            "kubernetes.io/description".to_string(),
            "The cluster's CA, to verify the API server's certificate (https://kubernetes.default.svc).".to_string(),
        )]
        .into(),
    );
    cm.data = Some([("ca.crt".to_string(), ca.to_string())].into());
    let result = match &action {
        Publish::Create(_) => api.create(&PostParams::default(), &cm).await.map(|_| ()),
        Publish::Update(_) => api
            .patch(
                ROOT_CA_CONFIG_MAP,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"data": {"ca.crt": ca}, "binaryData": null})),
            )
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => tracing::debug!(namespace = %ns, "root CA published"),
        Err(e) if is_benign(&e) || matches!(&e, kube::Error::Api(s) if s.code == 403) => {}
        Err(e) => tracing::warn!(namespace = %ns, error = %e, "publish the root CA"),
    }
}
