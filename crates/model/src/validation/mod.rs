//! Validation, as kube-apiserver's `pkg/apis/*/validation`: field errors with upstream's paths
//! and messages, for every served kind, on create and on update. The API server turns a
//! non-empty list into a 422 `Invalid` (`ApiError::invalid`).
//!
//! Objects arrive defaulted, as JSON; each kind is decoded into its `k8s-openapi` type and
//! checked there. `meta` holds the object-metadata, name and label rules every kind shares,
//! `pod` the pod spec (Pods and every template), `apps` the workloads, `core` the rest.
//!
//! Where upstream differs by version, this follows 1.33, except that StatefulSet pod templates
//! and claim templates are validated as 1.34 does (1.33 let invalid ones through to fail later,
//! in the controller).

mod apps;
mod core;
mod meta;
mod networking;
mod pod;
mod policy;
mod rbac;
mod scheduling;

pub use scheduling::SYSTEM_CLASSES as SYSTEM_PRIORITY_CLASSES;
#[cfg(test)]
mod tests;

use std::fmt;

use k8s_openapi::api::{core as core_v1, events};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{FieldError, FieldErrorType, ResourceInfo, typed};

/// Errors of a new object (its name already generated).
pub fn validate_create(info: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(metadata) = decode::<ObjectMeta>(info, obj.get("metadata").unwrap_or(&Value::Null), "metadata", &mut errs)
    else {
        return errs;
    };
    meta::object_meta(info, &metadata, &mut errs);
    kind_rules(info, obj, &mut errs);
    errs
}

/// Errors of an update from `old` to `new` (both complete objects, `new` defaulted and with the
/// server-owned fields already carried over).
///
/// The kind's rules for a new object run only when something besides `metadata` and `status`
/// changed, so that an object stored under older, looser rules can still have its labels,
/// finalizers or status written.
pub fn validate_update(info: &ResourceInfo, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let metas = (
        decode::<ObjectMeta>(info, old.get("metadata").unwrap_or(&Value::Null), "metadata", &mut errs),
        decode::<ObjectMeta>(info, new.get("metadata").unwrap_or(&Value::Null), "metadata", &mut errs),
    );
    let (Some(old_meta), Some(new_meta)) = metas else { return errs };
    meta::object_meta_update(&old_meta, &new_meta, &mut errs);
    if content(old) != content(new) {
        kind_rules(info, new, &mut errs);
    }
    update_rules(info, old, new, &mut errs);
    errs
}

/// Everything but `metadata` and `status`.
fn content(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

/// Run `rule` on the typed form of `obj`.
fn typed_rule<T: DeserializeOwned>(info: &ResourceInfo, obj: &Value, errs: &mut Errors, rule: fn(&T, &mut Errors)) {
    if let Some(t) = decode::<T>(info, obj, "", errs) {
        rule(&t, errs);
    }
}

/// Run `rule` on the typed forms of `old` and `new`.
fn typed_update<T: DeserializeOwned>(
    info: &ResourceInfo,
    old: &Value,
    new: &Value,
    errs: &mut Errors,
    rule: fn(&T, &T, &mut Errors),
) {
    if let (Some(o), Some(n)) = (decode::<T>(info, old, "", errs), decode::<T>(info, new, "", errs)) {
        rule(&o, &n, errs);
    }
}

/// The kind's rules for a valid object (spec and the like; metadata is checked apart).
fn kind_rules(info: &ResourceInfo, obj: &Value, errs: &mut Errors) {
    match (info.group, info.kind) {
        ("", "Pod") => typed_rule(info, obj, errs, pod::pod),
        ("", "Service") => typed_rule(info, obj, errs, core::service),
        ("", "Endpoints") => typed_rule(info, obj, errs, core::endpoints),
        ("", "PersistentVolumeClaim") => typed_rule(info, obj, errs, core::claim),
        ("", "PersistentVolume") => typed_rule(info, obj, errs, core::volume),
        ("", "ConfigMap") => typed_rule(info, obj, errs, core::config_map),
        ("", "Secret") => typed_rule(info, obj, errs, core::secret),
        ("", "Namespace") => typed_rule(info, obj, errs, core::namespace),
        ("", "Node") => typed_rule(info, obj, errs, core::node),
        ("", "ServiceAccount") => typed_rule(info, obj, errs, |_: &core_v1::v1::ServiceAccount, _| {}),
        ("", "Event") => typed_rule(info, obj, errs, |_: &core_v1::v1::Event, _| {}),
        ("apps", "StatefulSet") => typed_rule(info, obj, errs, apps::stateful_set),
        ("apps", "Deployment") => typed_rule(info, obj, errs, apps::deployment),
        ("apps", "ReplicaSet") => typed_rule(info, obj, errs, apps::replica_set),
        ("apps", "ControllerRevision") => typed_rule(info, obj, errs, apps::controller_revision),
        ("batch", "Job") => typed_rule(info, obj, errs, apps::job),
        ("apps", "DaemonSet") => typed_rule(info, obj, errs, apps::daemon_set),
        ("", "ReplicationController") => typed_rule(info, obj, errs, apps::replication_controller),
        ("batch", "CronJob") => typed_rule(info, obj, errs, apps::cron_job),
        ("storage.k8s.io", "StorageClass") => typed_rule(info, obj, errs, core::storage_class),
        ("discovery.k8s.io", "EndpointSlice") => typed_rule(info, obj, errs, core::endpoint_slice),
        ("coordination.k8s.io", "Lease") => typed_rule(info, obj, errs, core::lease),
        ("events.k8s.io", "Event") => typed_rule(info, obj, errs, |_: &events::v1::Event, _| {}),
        ("apiregistration.k8s.io", "APIService") => typed_rule(info, obj, errs, core::api_service),
        ("rbac.authorization.k8s.io", "RoleBinding") => typed_rule(info, obj, errs, rbac::role_binding),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => typed_rule(info, obj, errs, rbac::cluster_role_binding),
        ("networking.k8s.io", "NetworkPolicy") => typed_rule(info, obj, errs, networking::network_policy),
        ("networking.k8s.io", "Ingress") => typed_rule(info, obj, errs, networking::ingress),
        ("scheduling.k8s.io", "PriorityClass") => typed_rule(info, obj, errs, scheduling::priority_class),
        ("policy", "PodDisruptionBudget") => typed_rule(info, obj, errs, policy::pod_disruption_budget),
        ("autoscaling", "HorizontalPodAutoscaler") => typed_rule(info, obj, errs, policy::horizontal_pod_autoscaler),
        _ => {}
    }
}

/// What an update may not change, per kind.
fn update_rules(info: &ResourceInfo, old: &Value, new: &Value, errs: &mut Errors) {
    match (info.group, info.kind) {
        ("", "Pod") => typed_update(info, old, new, errs, pod::pod_update),
        ("", "Service") => typed_update(info, old, new, errs, core::service_update),
        ("", "PersistentVolumeClaim") => typed_update(info, old, new, errs, core::claim_update),
        ("", "PersistentVolume") => volume_update(old, new, errs),
        ("", "ConfigMap") => typed_update(info, old, new, errs, core::config_map_update),
        ("", "Secret") => typed_update(info, old, new, errs, core::secret_update),
        ("apps", "StatefulSet") => typed_update(info, old, new, errs, apps::stateful_set_update),
        ("apps", "Deployment") => typed_update(info, old, new, errs, apps::deployment_update),
        ("apps", "ReplicaSet") => typed_update(info, old, new, errs, apps::replica_set_update),
        ("apps", "ControllerRevision") => typed_update(info, old, new, errs, apps::controller_revision_update),
        ("batch", "Job") => typed_update(info, old, new, errs, apps::job_update),
        ("apps", "DaemonSet") => typed_update(info, old, new, errs, apps::daemon_set_update),
        ("storage.k8s.io", "StorageClass") => typed_update(info, old, new, errs, core::storage_class_update),
        ("discovery.k8s.io", "EndpointSlice") => typed_update(info, old, new, errs, core::endpoint_slice_update),
        ("rbac.authorization.k8s.io", "RoleBinding") => typed_update(info, old, new, errs, rbac::role_binding_update),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            typed_update(info, old, new, errs, rbac::cluster_role_binding_update)
        }
        ("scheduling.k8s.io", "PriorityClass") => typed_update(info, old, new, errs, scheduling::priority_class_update),
        _ => {}
    }
}

/// A PersistentVolume's source is compared as JSON: it is every spec field but a few.
fn volume_update(old: &Value, new: &Value, errs: &mut Errors) {
    core::volume_update(old.get("spec").unwrap_or(&Value::Null), new.get("spec").unwrap_or(&Value::Null), errs);
}

/// Decode for validation; a failure (the API server decodes before validating, so it is not
/// expected) becomes one error at the offending field.
fn decode<T: DeserializeOwned>(info: &ResourceInfo, obj: &Value, prefix: &str, errs: &mut Errors) -> Option<T> {
    match typed::decode_parts::<T>(info, obj) {
        Ok(t) => Some(t),
        Err((path, reason)) => {
            let field = match (prefix.is_empty(), path.is_empty()) {
                (true, _) => path,
                (false, true) => prefix.to_string(),
                (false, false) => format!("{prefix}.{path}"),
            };
            errs.push(FieldError { error_type: FieldErrorType::Invalid, field, bad_value: None, detail: reason });
            None
        }
    }
}

pub(crate) type Errors = Vec<FieldError>;

/// A field path as upstream's `field.Path` prints it: `spec.containers[0].resources[storage]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn new(name: &str) -> Path {
        Path(name.to_string())
    }
    pub(crate) fn child(&self, name: &str) -> Path {
        if self.0.is_empty() { Path::new(name) } else { Path(format!("{}.{name}", self.0)) }
    }
    pub(crate) fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }
    pub(crate) fn key(&self, key: &str) -> Path {
        Path(format!("{}[{key}]", self.0))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&Path> for String {
    fn from(p: &Path) -> String {
        p.0.clone()
    }
}

impl From<Path> for String {
    fn from(p: Path) -> String {
        p.0
    }
}

/// A value as a JSON value for an error's "Invalid value" part.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Upstream `ValidateNonnegativeField`.
pub(crate) fn non_negative(value: impl Into<i64>, path: &Path, errs: &mut Errors) {
    let value = value.into();
    if value < 0 {
        errs.push(FieldError::invalid(path, value, "must be greater than or equal to 0"));
    }
}

/// A required enum: `Required` when unset or empty, `Unsupported value` when not allowed.
pub(crate) fn required_one_of(value: Option<&str>, path: &Path, allowed: &[&str], errs: &mut Errors) {
    match value {
        None | Some("") => errs.push(FieldError::required(path, "")),
        Some(v) if allowed.contains(&v) => {}
        Some(v) => errs.push(FieldError::not_supported(path, v, allowed)),
    }
}

/// An optional enum: checked only when set.
pub(crate) fn optional_one_of(value: Option<&str>, path: &Path, allowed: &[&str], errs: &mut Errors) {
    if let Some(v) = value
        && !allowed.contains(&v)
    {
        errs.push(FieldError::not_supported(path, v, allowed));
    }
}

/// A reference to something that does not exist (upstream `field.NotFound`, printed
/// `Not found: "www"`).
pub(crate) fn not_found(path: &Path, value: &str) -> FieldError {
    FieldError::not_found(path, value)
}

/// Upstream `IsValidPortNum`.
pub(crate) fn port_num(port: i32, path: &Path, errs: &mut Errors) {
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(path, port, "must be between 1 and 65535, inclusive"));
    }
}

/// Upstream `IsValidPortName`: each broken rule is one message.
pub(crate) fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if name.len() > 15 {
        out.push("must be no more than 15 characters");
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        out.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        out.push("must not begin or end with a hyphen");
    }
    out
}

/// A port given as a number or a name (`targetPort`, probe ports).
pub(crate) fn port_num_or_name(
    port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
    path: &Path,
    errs: &mut Errors,
) {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match port {
        IntOrString::Int(n) => port_num(*n, path, errs),
        IntOrString::String(s) => {
            for msg in port_name_errors(s) {
                errs.push(FieldError::invalid(path, s.as_str(), msg));
            }
        }
    }
}

/// Upstream `IsValidIP`.
pub(crate) fn valid_ip(ip: &str, path: &Path, errs: &mut Errors) {
    if ip.parse::<std::net::IpAddr>().is_err() {
        errs.push(FieldError::invalid(path, ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"));
    }
}
