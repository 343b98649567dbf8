//! `kube` dynamic API handles for the kinds in the registry.

use kube::api::{Api, ApiResource, DynamicObject};
use model::ResourceInfo;

pub fn api_resource(info: &ResourceInfo) -> ApiResource {
    ApiResource {
        group: info.group.to_string(),
        version: info.version.to_string(),
        api_version: info.api_version(),
        kind: info.kind.to_string(),
        plural: info.plural.to_string(),
    }
}

/// A handle on one object's collection: its namespace, or cluster scope.
pub fn api_for(client: &kube::Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// Kinds the garbage collector and the namespace controller look at: all but Events (which
/// are high-volume, never own anything, and are served twice).
pub fn managed_kinds() -> impl Iterator<Item = &'static ResourceInfo> {
    model::RESOURCES.iter().filter(|r| r.kind != "Event")
}

/// `kube` errors that mean "already done" or "changed under us, retry on the next pass".
pub fn is_benign(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}
