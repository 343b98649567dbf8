//! Validation, as kube-apiserver's `pkg/apis/*/validation`: field errors with upstream's paths
//! and messages. The API server turns a non-empty list into a 422 `Invalid`.
//!
//! Objects are checked after defaulting, in their JSON form (`v` below is a small reader over
//! it), so the rules read like upstream's and need no typed decode.

mod core;
mod pod;
#[cfg(test)]
mod tests;
mod workloads;

use serde_json::Value;

use crate::names::{DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG, is_dns1123_label, is_dns1123_subdomain};
use crate::selector::{validate_label_key, validate_label_value};
use crate::{FieldError, ResourceInfo};

/// Errors of a new object.
pub fn validate_create(info: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    object_meta(info, obj, &mut errs);
    kind_rules(info, obj, &mut errs);
    errs
}

/// Errors of an update from `old` to `new` (both complete objects).
pub fn validate_update(info: &ResourceInfo, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    object_meta(info, new, &mut errs);
    kind_rules(info, new, &mut errs);
    match (info.group, info.kind) {
        ("apps", "StatefulSet") => workloads::stateful_set_update(old, new, &mut errs),
        ("apps", "Deployment") | ("apps", "ReplicaSet") => workloads::selector_immutable(old, new, &mut errs),
        ("apps", "ControllerRevision") if old.get("data") != new.get("data") => {
            errs.push(FieldError::immutable("data", Value::Null));
        }
        ("", "Pod") => pod::pod_update(old, new, &mut errs),
        ("", "Service") => core::service_update(old, new, &mut errs),
        ("", "PersistentVolumeClaim") => core::claim_update(old, new, &mut errs),
        ("storage.k8s.io", "StorageClass") => core::storage_class_update(old, new, &mut errs),
        _ => {}
    }
    errs
}

fn kind_rules(info: &ResourceInfo, obj: &Value, errs: &mut Vec<FieldError>) {
    match (info.group, info.kind) {
        ("apps", "StatefulSet") => workloads::stateful_set(obj, errs),
        ("apps", "Deployment") => workloads::deployment(obj, errs),
        ("apps", "ReplicaSet") => workloads::replica_set(obj, errs),
        ("apps", "ControllerRevision") if obj.get("revision").and_then(Value::as_i64).is_some_and(|r| r < 0) => {
            errs.push(FieldError::invalid("revision", obj["revision"].clone(), "must be greater than or equal to 0"));
        }
        ("", "Pod") => {
            if let Some(spec) = obj.get("spec") {
                pod::pod_spec(spec, "spec", &[], errs);
            } else {
                errs.push(FieldError::required("spec", ""));
            }
        }
        ("", "Service") => core::service(obj, errs),
        ("", "PersistentVolumeClaim") => core::claim_spec(obj.get("spec").unwrap_or(&Value::Null), "spec", errs),
        ("", "PersistentVolume") => core::volume(obj, errs),
        ("", "ConfigMap") | ("", "Secret") => core::data_keys(obj, errs),
        ("storage.k8s.io", "StorageClass") if str_at(obj, "/provisioner").is_empty() => {
            errs.push(FieldError::required("provisioner", ""));
        }
        _ => {}
    }
}

/// The string at a JSON pointer, or "".
pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Kinds whose names must be DNS-1123 labels rather than subdomains.
fn name_is_label(info: &ResourceInfo) -> bool {
    matches!(
        (info.group, info.kind),
        ("", "Namespace") | ("", "Service") | ("apps", "StatefulSet") | ("apps", "Deployment")
    )
}

const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

fn object_meta(info: &ResourceInfo, obj: &Value, errs: &mut Vec<FieldError>) {
    let name = str_at(obj, "/metadata/name");
    if name.is_empty() {
        if str_at(obj, "/metadata/generateName").is_empty() {
            errs.push(FieldError::required("metadata.name", "name or generateName is required"));
        }
    } else if name_is_label(info) {
        if !is_dns1123_label(name) {
            errs.push(FieldError::invalid("metadata.name", name, DNS1123_LABEL_MSG));
        }
    } else if !is_dns1123_subdomain(name) {
        errs.push(FieldError::invalid("metadata.name", name, DNS1123_SUBDOMAIN_MSG));
    }
    if info.namespaced {
        let ns = str_at(obj, "/metadata/namespace");
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else if !is_dns1123_label(ns) {
            errs.push(FieldError::invalid("metadata.namespace", ns, DNS1123_LABEL_MSG));
        }
    }
    labels(obj.pointer("/metadata/labels"), "metadata.labels", errs);
    if let Some(annotations) = obj.pointer("/metadata/annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in annotations {
            total += k.len() + v.as_str().map_or(0, str::len);
            if let Err(e) = validate_label_key(&k.to_ascii_lowercase()) {
                errs.push(FieldError::invalid("metadata.annotations", k.as_str(), e));
            }
        }
        if total > MAX_ANNOTATIONS_BYTES {
            errs.push(FieldError::too_long("metadata.annotations", Value::Null, MAX_ANNOTATIONS_BYTES));
        }
    }
}

/// Label keys and values (used for object labels and template labels).
pub(crate) fn labels(map: Option<&Value>, field: &str, errs: &mut Vec<FieldError>) {
    let Some(map) = map.and_then(Value::as_object) else { return };
    for (k, v) in map {
        if let Err(e) = validate_label_key(k) {
            errs.push(FieldError::invalid(field, k.as_str(), e));
        }
        let value = v.as_str().unwrap_or("");
        if let Err(e) = validate_label_value(value) {
            errs.push(FieldError::invalid(field, value, e));
        }
    }
}

/// `>= 0` for an optional integer field.
pub(crate) fn non_negative(obj: &Value, pointer: &str, field: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = obj.pointer(pointer).and_then(Value::as_i64)
        && n < 0
    {
        errs.push(FieldError::invalid(field, n, "must be greater than or equal to 0"));
    }
}

/// One of the allowed values (when set).
pub(crate) fn one_of(
    obj: &Value,
    pointer: &str,
    field: &str,
    allowed: &[&str],
    required: bool,
    errs: &mut Vec<FieldError>,
) {
    match obj.pointer(pointer).and_then(Value::as_str) {
        None | Some("") if required => errs.push(FieldError::required(field, "")),
        None | Some("") => {}
        Some(v) if allowed.contains(&v) => {}
        Some(v) => errs.push(FieldError::not_supported(field, v, allowed)),
    }
}
