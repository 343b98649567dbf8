//! The endpoints and endpointslice controllers: for every Service with a selector, an Endpoints
//! object of the same name and one EndpointSlice (`<service>-<hash>`, owned by the Service) that
//! list the matching pods, as `logic::endpoints` decides. Services without a selector keep the
//! Endpoints their users write: only Endpoints this controller made (annotated) are removed when
//! their Service goes or loses its selector. Level-triggered over reflected Services and pods.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use logic::endpoints::{MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use serde_json::json;
use sha2::Digest;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Marks the Endpoints this controller manages (so user-written ones are left alone).
const MANAGED_ANNOTATION: &str = "ordinal.dev/managed-by";
const MANAGER: &str = "endpoints-controller";
const RESYNC: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_millis(10);

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let (services, w1) = client_tools::reflect(Api::<Service>::all(client.clone()), changed.clone());
    let (pods, w2) = client_tools::reflect(Api::<Pod>::all(client.clone()), changed.clone());
    let (endpoints, w3) = client_tools::reflect(Api::<Endpoints>::all(client.clone()), changed.clone());
    let watches = futures::future::join3(w1, w2, w3);
    tokio::pin!(watches);
    let ready = async {
        let _ = services.wait_until_ready().await;
        let _ = pods.wait_until_ready().await;
        let _ = endpoints.wait_until_ready().await;
    };
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = &mut watches => return,
        _ = ready => {}
    }
    loop {
        if let Err(e) = pass(&client, &services, &pods, &endpoints).await {
            tracing::debug!(error = %e, "endpoints pass");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = &mut watches => return,
            _ = changed.notified() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

fn slice_name(service: &Service) -> String {
    let uid = service.metadata.uid.clone().unwrap_or_default();
    let digest = sha2::Sha256::digest(uid.as_bytes());
    let suffix: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    format!("{}-{}", service.name_any(), &suffix[..5])
}

fn ignore_gone<T>(r: kube::Result<T>) -> kube::Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn pass(
    client: &kube::Client,
    services: &Store<Service>,
    pods: &Store<Pod>,
    endpoints: &Store<Endpoints>,
) -> kube::Result<()> {
    let pods: Vec<Pod> = pods.state().iter().map(|p| (**p).clone()).collect();
    let services: Vec<Arc<Service>> = services.state();
    for service in &services {
        let has_selector = service.spec.as_ref().and_then(|s| s.selector.as_ref()).is_some_and(|s| !s.is_empty());
        if !has_selector || service.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ns = service.namespace().unwrap_or_default();
        let name = service.name_any();
        let subsets = logic::endpoints::endpoints_subsets(service, &pods);
        let ep_api: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
        let current = endpoints.get(&reflector::ObjectRef::new(&name).within(&ns));
        let have = current.as_ref().map(|e| serde_json::to_value(&e.subsets).unwrap_or_default());
        let want_subsets =
            if subsets.as_array().is_some_and(|a| a.is_empty()) { serde_json::Value::Null } else { subsets.clone() };
        match current {
            None => {
                let ep: Endpoints = serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": ns, "labels": service.labels(),
                                 "annotations": {MANAGED_ANNOTATION: MANAGER}},
                    "subsets": subsets,
                }))
                .map_err(kube::Error::SerdeError)?;
                ignore_gone(ep_api.create(&PostParams::default(), &ep).await)?;
            }
            Some(_) if have != Some(want_subsets.clone()) => {
                let patch = json!({"subsets": subsets});
                ignore_gone(ep_api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await)?;
            }
            Some(_) => {}
        }
        // The slice, owned by the Service (the garbage collector removes it with the Service).
        let (slice_endpoints, ports) = logic::endpoints::slice_content(service, &pods);
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name(service), "namespace": ns,
                "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": service.metadata.uid,
                    "controller": true, "blockOwnerDeletion": true}]},
            "addressType": "IPv4",
            "endpoints": slice_endpoints,
            "ports": ports,
        });
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
        let current = slices.get_opt(&slice_name(service)).await?;
        let same = current.as_ref().is_some_and(|c| {
            serde_json::to_value(&c.endpoints).ok() == Some(slice["endpoints"].clone())
                && serde_json::to_value(&c.ports).ok() == Some(slice["ports"].clone())
        });
        if !same {
            let params = PatchParams::apply(MANAGED_BY).force();
            ignore_gone(slices.patch(&slice_name(service), &params, &Patch::Apply(slice)).await)?;
        }
    }
    // Endpoints this controller made whose Service is gone or lost its selector.
    for ep in endpoints.state() {
        let ours = ep.annotations().get(MANAGED_ANNOTATION).is_some_and(|m| m == MANAGER);
        if !ours {
            continue;
        }
        let ns = ep.namespace().unwrap_or_default();
        let still = services.iter().any(|s| {
            s.namespace().as_deref() == Some(ns.as_str())
                && s.name_any() == ep.name_any()
                && s.spec.as_ref().and_then(|sp| sp.selector.as_ref()).is_some_and(|x| !x.is_empty())
        });
        if !still {
            let api: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
            ignore_gone(api.delete(&ep.name_any(), &DeleteParams::default()).await)?;
        }
    }
    Ok(())
}
