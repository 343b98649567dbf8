//! The namespace controller: when a namespace is being deleted, delete everything in it, then
//! clear its `spec.finalizers` through `namespaces/{name}/finalize` so the API server removes it.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::resources::{api_for, api_resource, is_benign, managed_kinds};

/// How often a namespace whose content is still terminating is looked at again.
const RETRY: Duration = Duration::from_millis(500);

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let (store, writer) = reflector::store();
    let changed = std::sync::Arc::new(Notify::new());
    let notify = changed.clone();
    let watching = reflector::reflector(writer, watcher(namespaces.clone(), watcher::Config::default()))
        .default_backoff()
        .for_each(move |_| {
            notify.notify_one();
            futures::future::ready(())
        });
    tokio::pin!(watching);
    loop {
        let pending = sweep(&client, &namespaces, &store).await;
        let wait = if pending { RETRY } else { Duration::from_secs(3600) };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = &mut watching => return,
            _ = changed.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Work on every terminating namespace; true if any still has content.
async fn sweep(client: &kube::Client, namespaces: &Api<Namespace>, store: &Store<Namespace>) -> bool {
    let mut pending = false;
    for ns in store.state() {
        if ns.metadata.deletion_timestamp.is_none() {
            continue;
        }
        let Some(name) = ns.metadata.name.clone() else { continue };
        match empty_namespace(client, &name).await {
            Ok(true) => {
                let mut finalized = (*ns).clone();
                if let Some(spec) = finalized.spec.as_mut() {
                    spec.finalizers = Some(Vec::new());
                }
                match namespaces.replace_subresource("finalize", &name, &PostParams::default(), &finalized).await {
                    Ok(_) => tracing::info!(namespace = %name, "namespace finalized"),
                    Err(e) if is_benign(&e) => pending = true,
                    Err(e) => {
                        tracing::warn!(namespace = %name, error = %e, "finalize namespace");
                        pending = true;
                    }
                }
            }
            Ok(false) => pending = true,
            Err(e) => {
                tracing::warn!(namespace = %name, error = %e, "delete namespace content");
                pending = true;
            }
        }
    }
    pending
}

/// Ask every namespaced kind to delete its objects in `ns`; true when nothing is left.
async fn empty_namespace(client: &kube::Client, ns: &str) -> Result<bool, kube::Error> {
    let mut empty = true;
    for info in managed_kinds()
        .filter(|i| i.namespaced)
        .chain(model::RESOURCES.iter().filter(|r| r.group.is_empty() && r.kind == "Event"))
    {
        let api = api_for(client, &api_resource(info), Some(ns));
        let left = api.list(&ListParams::default()).await?;
        if left.items.is_empty() {
            continue;
        }
        empty = false;
        if left.items.iter().all(|o| o.metadata.deletion_timestamp.is_some()) {
            continue;
        }
        match api.delete_collection(&DeleteParams::background(), &ListParams::default()).await {
            Ok(_) => {}
            Err(e) if is_benign(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(empty)
}
