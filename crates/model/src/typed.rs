//! The bridge to the `k8s-openapi` types: every served kind decodes into its typed struct, which
//! is how we know a body is well-formed and which of its fields the schema declares.

use k8s_openapi::api::{apps, coordination, core, discovery, events, storage};
use serde_json::Value;

use crate::{ApiError, ResourceInfo};

/// Decode `obj` as its kind's type and encode it back: the object as the schema sees it.
/// `None` for a kind without a typed form.
pub(crate) fn round_trip(info: &ResourceInfo, obj: &Value) -> Option<Result<Value, serde_json::Error>> {
    macro_rules! via {
        ($t:ty) => {
            Some(serde_json::from_value::<$t>(obj.clone()).and_then(|t| serde_json::to_value(&t)))
        };
    }
    match (info.group, info.kind) {
        ("", "Namespace") => via!(core::v1::Namespace),
        ("", "Node") => via!(core::v1::Node),
        ("", "Pod") => via!(core::v1::Pod),
        ("", "Service") => via!(core::v1::Service),
        ("", "Endpoints") => via!(core::v1::Endpoints),
        ("", "PersistentVolumeClaim") => via!(core::v1::PersistentVolumeClaim),
        ("", "PersistentVolume") => via!(core::v1::PersistentVolume),
        ("", "ConfigMap") => via!(core::v1::ConfigMap),
        ("", "Secret") => via!(core::v1::Secret),
        ("", "ServiceAccount") => via!(core::v1::ServiceAccount),
        ("", "Event") => via!(core::v1::Event),
        ("apps", "StatefulSet") => via!(apps::v1::StatefulSet),
        ("apps", "Deployment") => via!(apps::v1::Deployment),
        ("apps", "ReplicaSet") => via!(apps::v1::ReplicaSet),
        ("apps", "ControllerRevision") => via!(apps::v1::ControllerRevision),
        ("storage.k8s.io", "StorageClass") => via!(storage::v1::StorageClass),
        ("discovery.k8s.io", "EndpointSlice") => via!(discovery::v1::EndpointSlice),
        ("coordination.k8s.io", "Lease") => via!(coordination::v1::Lease),
        ("events.k8s.io", "Event") => via!(events::v1::Event),
        _ => None,
    }
}

/// A 400 unless `obj` decodes into its kind's type (upstream's wording).
pub(crate) fn check_decodes(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    match round_trip(info, obj) {
        Some(Err(e)) => Err(ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {e}",
            kind = info.kind,
            version = info.version
        ))),
        _ => Ok(()),
    }
}
