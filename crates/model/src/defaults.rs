//! Defaulting, as kube-apiserver's defaulters for core/v1, apps/v1 and storage/v1 do it
//! (`pkg/apis/*/v1/defaults.go`): every field a client may leave out and the server fills in,
//! including inside pod templates and claim templates.
//!
//! Works on the JSON form so it can run before anything else looks at the object; the object is
//! first checked to decode into its `k8s-openapi` type, so a malformed body is a 400 here.

#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

use crate::{ApiError, ResourceInfo, typed};

/// Fill in defaults for an object of kind `info`, in place.
pub fn apply_defaults(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    typed::check_decodes(info, obj)?;
    let Some(root) = obj.as_object_mut() else {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    };
    match (info.group, info.kind) {
        ("", "Pod") => pod_spec(object_at(root, "spec")),
        ("", "Service") => service_spec(object_at(root, "spec")),
        ("", "PersistentVolumeClaim") => claim_spec(object_at(root, "spec")),
        ("", "PersistentVolume") => {
            let spec = object_at(root, "spec");
            default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            default(spec, "volumeMode", json!("Filesystem"));
            if let Some(host_path) = spec.get_mut("hostPath").and_then(Value::as_object_mut) {
                default(host_path, "type", json!(""));
            }
        }
        ("", "Secret") => default(root, "type", json!("Opaque")),
        ("", "Endpoints") => {
            for subset in list_at(root, "subsets") {
                if let Some(subset) = subset.as_object_mut() {
                    for port in list_at(subset, "ports") {
                        if let Some(port) = port.as_object_mut() {
                            default(port, "protocol", json!("TCP"));
                        }
                    }
                }
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in list_at(root, "ports") {
                if let Some(port) = port.as_object_mut() {
                    default(port, "protocol", json!("TCP"));
                }
            }
        }
        ("apps", "StatefulSet") => stateful_set_spec(object_at(root, "spec")),
        ("apps", "Deployment") => {
            let spec = object_at(root, "spec");
            default(spec, "replicas", json!(1));
            let strategy = object_at(spec, "strategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy.get("type") == Some(&json!("RollingUpdate")) {
                let rolling = object_at(strategy, "rollingUpdate");
                default(rolling, "maxUnavailable", json!("25%"));
                default(rolling, "maxSurge", json!("25%"));
            }
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            pod_template(spec);
        }
        ("apps", "ReplicaSet") => {
            let spec = object_at(root, "spec");
            default(spec, "replicas", json!(1));
            pod_template(spec);
        }
        ("storage.k8s.io", "StorageClass") => {
            default(root, "reclaimPolicy", json!("Delete"));
            default(root, "volumeBindingMode", json!("Immediate"));
        }
        _ => {}
    }
    Ok(())
}

/// Set `key` if it is absent or null.
fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get(key) {
        Some(v) if !v.is_null() => {}
        _ => {
            map.insert(key.to_string(), value);
        }
    }
}

/// The object at `key`, created if absent.
fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = map.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// The elements of the list at `key` (none if absent).
fn list_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Value> {
    map.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten()
}

fn stateful_set_spec(spec: &mut Map<String, Value>) {
    default(spec, "replicas", json!(1));
    default(spec, "podManagementPolicy", json!("OrderedReady"));
    let strategy = object_at(spec, "updateStrategy");
    default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type") == Some(&json!("RollingUpdate")) {
        default(object_at(strategy, "rollingUpdate"), "partition", json!(0));
    }
    default(spec, "revisionHistoryLimit", json!(10));
    let retention = object_at(spec, "persistentVolumeClaimRetentionPolicy");
    default(retention, "whenDeleted", json!("Retain"));
    default(retention, "whenScaled", json!("Retain"));
    pod_template(spec);
    for template in list_at(spec, "volumeClaimTemplates") {
        if let Some(template) = template.as_object_mut() {
            claim_spec(object_at(template, "spec"));
            default(object_at(template, "status"), "phase", json!("Pending"));
        }
    }
}

fn pod_template(spec: &mut Map<String, Value>) {
    let template = object_at(spec, "template");
    pod_spec(object_at(template, "spec"));
}

fn claim_spec(spec: &mut Map<String, Value>) {
    default(spec, "volumeMode", json!("Filesystem"));
}

fn service_spec(spec: &mut Map<String, Value>) {
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    let service_type = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    if service_type != "ExternalName" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "NodePort" || service_type == "LoadBalancer" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if spec.get("sessionAffinity") == Some(&json!("ClientIP")) {
        let config = object_at(object_at(spec, "sessionAffinityConfig"), "clientIP");
        default(config, "timeoutSeconds", json!(10800));
    }
    for port in list_at(spec, "ports") {
        if let Some(port) = port.as_object_mut() {
            default(port, "protocol", json!("TCP"));
            if let Some(p) = port.get("port").cloned() {
                match port.get("targetPort") {
                    None | Some(Value::Null) => {
                        port.insert("targetPort".into(), p);
                    }
                    Some(Value::Number(n)) if n.as_i64() == Some(0) => {
                        port.insert("targetPort".into(), p);
                    }
                    Some(Value::String(s)) if s.is_empty() => {
                        port.insert("targetPort".into(), p);
                    }
                    _ => {}
                }
            }
        }
    }
}

fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "securityContext", json!({}));
    default(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for container in list_at(spec, list) {
            if let Some(c) = container.as_object_mut() {
                container_defaults(c);
            }
        }
    }
    for volume in list_at(spec, "volumes") {
        let Some(volume) = volume.as_object_mut() else { continue };
        for source in ["configMap", "secret"] {
            if let Some(src) = volume.get_mut(source).and_then(Value::as_object_mut) {
                default(src, "defaultMode", json!(420));
            }
        }
        if let Some(projected) = volume.get_mut("projected").and_then(Value::as_object_mut) {
            default(projected, "defaultMode", json!(420));
        }
        if let Some(downward) = volume.get_mut("downwardAPI").and_then(Value::as_object_mut) {
            default(downward, "defaultMode", json!(420));
        }
        if let Some(host_path) = volume.get_mut("hostPath").and_then(Value::as_object_mut) {
            default(host_path, "type", json!(""));
        }
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (digests count as tags).
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn container_defaults(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("").to_string();
    default(c, "imagePullPolicy", json!(image_pull_policy(&image)));
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    for port in list_at(c, "ports") {
        if let Some(port) = port.as_object_mut() {
            default(port, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            if let Some(http) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                default(http, "path", json!("/"));
                default(http, "scheme", json!("HTTP"));
            }
        }
    }
    for env in list_at(c, "env") {
        if let Some(field_ref) = env.pointer_mut("/valueFrom/fieldRef").and_then(Value::as_object_mut) {
            default(field_ref, "apiVersion", json!("v1"));
        }
    }
}
