//! The `scale` subresource: an `autoscaling/v1` `Scale` view of `spec.replicas`.

use axum::response::Response;
use http::StatusCode;
use model::ApiError;
use model::selector::LabelSelector;
use serde_json::{Value, json};

use super::write::{apply_patch, write_update};
use super::{WriteOptions, Written, not_found};
use crate::ApiState;
use crate::error::HandlerResult;
use crate::media;
use crate::object;
use crate::path::Target;
use crate::strategy::Part;

/// Build the Scale of a workload object.
pub fn scale_of(obj: &Value) -> Value {
    // A ReplicationController's selector is a plain label map.
    let selector = obj
        .pointer("/spec/selector")
        .map(|s| match s.get("matchLabels").or(s.get("matchExpressions")) {
            Some(_) => s.clone(),
            None => json!({"matchLabels": s}),
        })
        .and_then(|s| serde_json::from_value(s).ok())
        .and_then(|s| LabelSelector::from_k8s(&s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut metadata = json!({});
    for key in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = meta.get(key) {
            metadata[key] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

pub fn get(state: &ApiState, target: &Target) -> HandlerResult<Response> {
    let key = target.key().ok_or_else(ApiError::path_not_found)?;
    let stored = state.store.get(&key).ok_or_else(|| not_found(target))?;
    Ok(media::json(StatusCode::OK, &scale_of(&stored.value)))
}

fn replicas_of(scale: &Value, name: &str) -> Result<i64, ApiError> {
    match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_i64().filter(|r| *r >= 0).ok_or_else(|| {
            ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                vec![model::FieldError::invalid("spec.replicas", v.clone(), "must be greater than or equal to 0")],
            )
        }),
    }
}

/// Write `replicas` into the object, honouring the Scale's resourceVersion as a precondition.
fn write_scale(
    state: &ApiState,
    target: &Target,
    opts: WriteOptions,
    compute: impl FnOnce(&Value) -> Result<Value, ApiError>,
) -> Result<Written, ApiError> {
    let name = target.name.clone().unwrap_or_default();
    let written = write_update(state, target, Part::Main, opts, Vec::new(), |current| {
        let scale = compute(&scale_of(current))?;
        let replicas = replicas_of(&scale, &name)?;
        let mut new = current.clone();
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("replicas".into(), json!(replicas));
        }
        let rv = object::resource_version(&scale);
        object::meta_mut(&mut new).insert(
            "resourceVersion".into(),
            json!(if rv.is_empty() { object::resource_version(current) } else { rv }),
        );
        Ok(new)
    })?;
    Ok(Written { object: scale_of(&written.object), ..written })
}

pub fn update(state: &ApiState, target: &Target, scale: Value, opts: WriteOptions) -> Result<Written, ApiError> {
    write_scale(state, target, opts, move |_| Ok(scale))
}

pub fn patch(
    state: &ApiState,
    target: &Target,
    content_type: &str,
    patch: Value,
    opts: WriteOptions,
) -> Result<Written, ApiError> {
    let info = target.info;
    write_scale(state, target, opts, |current_scale| {
        // Scale has no merge keys; every patch type reduces to plain merging here.
        let ct = if content_type == "application/strategic-merge-patch+json" {
            "application/merge-patch+json"
        } else {
            content_type
        };
        apply_patch(info, ct, current_scale, &patch)
    })
}
