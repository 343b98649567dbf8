//! The ServiceAccounts controller: every active namespace has a `default` service account
//! (`logic::serviceaccount` decides), created when the namespace appears and again if it is
//! deleted, as kube-controller-manager's does.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::resources::is_benign;

const RESYNC: Duration = Duration::from_secs(300);

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let (namespaces, w1) = client_tools::reflect(Api::<Namespace>::all(client.clone()), changed.clone());
    let (accounts, w2) = client_tools::reflect(Api::<ServiceAccount>::all(client.clone()), changed.clone());
    let watches = futures::future::join(w1, w2);
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
    }
}
