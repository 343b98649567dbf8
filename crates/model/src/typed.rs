//! The bridge to the `k8s-openapi` types: every served kind decodes into its typed struct, which
//! is how we know a body is well-formed and which of its fields the schema declares.
//!
//! Decoding drops `null` members first, as Go's decoder reads them as "absent"; a body that still
//! does not fit its type is a 400 naming the field, like kube-apiserver's decode errors.

use k8s_openapi::api::{
    apps, autoscaling, coordination, core, discovery, events, networking, policy, rbac, scheduling, storage,
};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService as ApiService;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{ApiError, ResourceInfo};

/// The 400 for a body that does not fit its kind's type, in upstream's words.
pub(crate) fn decode_error(info: &ResourceInfo, detail: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: {detail}",
        kind = info.kind,
        version = info.version
    ))
}

/// Decode `obj` as `T`, naming the offending field on failure (`spec.replicas: invalid type: …`).
pub(crate) fn decode<T: DeserializeOwned>(info: &ResourceInfo, obj: &Value) -> Result<T, ApiError> {
    decode_parts(info, obj).map_err(|(path, reason)| {
        let detail = if path.is_empty() { reason } else { format!("{path}: {reason}") };
        decode_error(info, &detail)
    })
}

/// As [`decode`], with the field path (empty for the whole object) and serde's reason apart.
pub(crate) fn decode_parts<T: DeserializeOwned>(info: &ResourceInfo, obj: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(without_nulls(info, obj)).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.inner().to_string())
    })
}

/// Encode a typed object back to JSON.
pub(crate) fn encode<T: Serialize>(typed: &T) -> Result<Value, ApiError> {
    serde_json::to_value(typed).map_err(|e| ApiError::internal(format!("encoding an object: {e}")))
}

/// `obj` without `null` object members, except inside free-form JSON (a ControllerRevision's
/// `data`, `managedFields[*].fieldsV1`), where a null is data.
pub(crate) fn without_nulls(info: &ResourceInfo, obj: &Value) -> Value {
    fn strip(v: &Value, free: bool) -> Value {
        match v {
            Value::Object(m) if !free => {
                let out: Map<String, Value> = m
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), strip(v, k == "fieldsV1")))
                    .collect();
                Value::Object(out)
            }
            Value::Array(items) if !free => Value::Array(items.iter().map(|v| strip(v, false)).collect()),
            other => other.clone(),
        }
    }
    let raw_data = info.group == "apps" && info.kind == "ControllerRevision";
    match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip(v, raw_data && k == "data")))
                .collect(),
        ),
        other => strip(other, false),
    }
}

/// Decode `obj` as its kind's type and encode it back: the object as the schema sees it.
/// `None` for a kind without a typed form.
pub(crate) fn round_trip(info: &ResourceInfo, obj: &Value) -> Option<Result<Value, ApiError>> {
    fn via<T: DeserializeOwned + Serialize>(info: &ResourceInfo, obj: &Value) -> Result<Value, ApiError> {
        encode(&decode::<T>(info, obj)?)
    }
    Some(match (info.group, info.kind) {
        ("", "Namespace") => via::<core::v1::Namespace>(info, obj),
        ("", "Node") => via::<core::v1::Node>(info, obj),
        ("", "Pod") => via::<core::v1::Pod>(info, obj),
        ("", "Service") => via::<core::v1::Service>(info, obj),
        ("", "Endpoints") => via::<core::v1::Endpoints>(info, obj),
        ("", "PersistentVolumeClaim") => via::<core::v1::PersistentVolumeClaim>(info, obj),
        ("", "PersistentVolume") => via::<core::v1::PersistentVolume>(info, obj),
        ("", "ConfigMap") => via::<core::v1::ConfigMap>(info, obj),
        ("", "Secret") => via::<core::v1::Secret>(info, obj),
        ("", "ServiceAccount") => via::<core::v1::ServiceAccount>(info, obj),
        ("", "Event") => via::<core::v1::Event>(info, obj),
        ("apps", "StatefulSet") => via::<apps::v1::StatefulSet>(info, obj),
        ("apps", "Deployment") => via::<apps::v1::Deployment>(info, obj),
        ("apps", "ReplicaSet") => via::<apps::v1::ReplicaSet>(info, obj),
        ("apps", "ControllerRevision") => via::<apps::v1::ControllerRevision>(info, obj),
        ("storage.k8s.io", "StorageClass") => via::<storage::v1::StorageClass>(info, obj),
        ("discovery.k8s.io", "EndpointSlice") => via::<discovery::v1::EndpointSlice>(info, obj),
        ("coordination.k8s.io", "Lease") => via::<coordination::v1::Lease>(info, obj),
        ("events.k8s.io", "Event") => via::<events::v1::Event>(info, obj),
        ("apiregistration.k8s.io", "APIService") => via::<ApiService>(info, obj),
        ("rbac.authorization.k8s.io", "Role") => via::<rbac::v1::Role>(info, obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => via::<rbac::v1::ClusterRole>(info, obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => via::<rbac::v1::RoleBinding>(info, obj),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => via::<rbac::v1::ClusterRoleBinding>(info, obj),
        ("networking.k8s.io", "NetworkPolicy") => via::<networking::v1::NetworkPolicy>(info, obj),
        ("networking.k8s.io", "Ingress") => via::<networking::v1::Ingress>(info, obj),
        ("networking.k8s.io", "IngressClass") => via::<networking::v1::IngressClass>(info, obj),
        ("scheduling.k8s.io", "PriorityClass") => via::<scheduling::v1::PriorityClass>(info, obj),
        ("autoscaling", "HorizontalPodAutoscaler") => via::<autoscaling::v2::HorizontalPodAutoscaler>(info, obj),
        ("policy", "PodDisruptionBudget") => via::<policy::v1::PodDisruptionBudget>(info, obj),
        ("batch", "Job") => via::<k8s_openapi::api::batch::v1::Job>(info, obj),
        ("apps", "DaemonSet") => via::<apps::v1::DaemonSet>(info, obj),
        ("", "ReplicationController") => via::<core::v1::ReplicationController>(info, obj),
        ("", "ResourceQuota") => via::<core::v1::ResourceQuota>(info, obj),
        ("", "LimitRange") => via::<core::v1::LimitRange>(info, obj),
        ("batch", "CronJob") => via::<k8s_openapi::api::batch::v1::CronJob>(info, obj),
        _ => return None,
    })
}
