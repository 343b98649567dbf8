//! What a Service's Endpoints and EndpointSlice say, from the Service and the pods its selector
//! matches, as upstream's endpoints and endpointslice controllers decide it: ready and not-ready
//! addresses (not-ready ones count as ready with `publishNotReadyAddresses`), `hostname` for pods
//! whose `subdomain` is the Service's name, target ports resolved by name per pod, and in slices
//! the `ready`/`serving`/`terminating` conditions.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

/// The label tying a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Whether an EndpointSlice belongs to the Service `ns/service` (by its service-name label).
pub fn slice_of(slice: &k8s_openapi::api::discovery::v1::EndpointSlice, ns: &str, service: &str) -> bool {
    slice.metadata.namespace.as_deref() == Some(ns)
        && slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).map(String::as_str) == Some(service)
}
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Pods that back the Service: selected, with an IP, not finished.
fn backing<'a>(service: &Service, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()).filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let ns = service.metadata.namespace.as_deref();
    let mut out: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == ns)
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .filter(|p| {
            let status = p.status.as_ref();
            let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
            let ip = status.and_then(|s| s.pod_ip.as_deref()).unwrap_or("");
            !ip.is_empty() && phase != "Succeeded" && phase != "Failed"
        })
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// A Service port's target on one pod: a number, or a named container port of that pod.
fn target_port(port: &k8s_openapi::api::core::v1::ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

fn hostname_for(service: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let service_name = service.metadata.name.as_deref()?;
    (spec.subdomain.as_deref() == Some(service_name))
        .then(|| spec.hostname.clone().unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default()))
        .filter(|h| !h.is_empty())
}

fn address(service: &Service, pod: &Pod) -> Value {
    let mut a = json!({
        "ip": pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "targetRef": {"kind": "Pod", "namespace": pod.metadata.namespace, "name": pod.metadata.name,
                      "uid": pod.metadata.uid},
    });
    if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
        a["nodeName"] = json!(node);
    }
    if let Some(h) = hostname_for(service, pod) {
        a["hostname"] = json!(h);
    }
    a
}

/// The Service's ports with their target ports resolved for this pod (by name through its
/// containers' ports); `None` when the pod lacks a named port (upstream leaves it out).
fn resolved_ports(ports: &[k8s_openapi::api::core::v1::ServicePort], pod: &Pod) -> Option<Vec<Value>> {
    ports
        .iter()
        .map(|p| {
            let n = target_port(p, pod)?;
            let mut v = json!({"port": n, "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into())});
            if let Some(name) = &p.name {
                v["name"] = json!(name);
            }
            if let Some(app) = &p.app_protocol {
                v["appProtocol"] = json!(app);
            }
            Some(v)
        })
        .collect()
}

/// The `subsets` of the Service's Endpoints: pods grouped by their resolved ports.
pub fn endpoints_subsets(service: &Service, pods: &[Pod]) -> Value {
    let publish = service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    // Resolved ports (as JSON) → (ready, not ready).
    let mut groups: BTreeMap<String, (Value, Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for pod in backing(service, pods) {
        if pod.metadata.deletion_timestamp.is_some() && !publish {
            continue;
        }
        let Some(resolved) = resolved_ports(&ports, pod) else {
            continue; // a named port this pod lacks: upstream leaves the pod out
        };
        let key = serde_json::to_string(&resolved).unwrap_or_default();
        let entry = groups.entry(key).or_insert_with(|| (json!(resolved), Vec::new(), Vec::new()));
        if pod_ready(pod) || publish {
            entry.1.push(address(service, pod));
        } else {
            entry.2.push(address(service, pod));
        }
    }
    let subsets: Vec<Value> = groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            // As upstream repacks them: addresses in IP order.
            let by_ip = |a: &Value, b: &Value| a["ip"].as_str().cmp(&b["ip"].as_str());
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let mut s = json!({});
            if !ready.is_empty() {
                s["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                s["notReadyAddresses"] = json!(not_ready);
            }
            if ports.as_array().is_some_and(|p| !p.is_empty()) {
                s["ports"] = ports;
            }
            s
        })
        .collect();
    json!(subsets)
}

/// The `endpoints` and `ports` of the Service's EndpointSlice (one slice: this node's scale).
pub fn slice_content(service: &Service, pods: &[Pod]) -> (Value, Value) {
    let publish = service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut endpoints = Vec::new();
    let mut slice_ports: Option<Vec<Value>> = None;
    for pod in backing(service, pods) {
        let Some(resolved) = resolved_ports(&ports, pod) else { continue };
        // One slice carries one port set; upstream makes more slices for pods that differ.
        if slice_ports.get_or_insert_with(|| resolved.clone()) != &resolved {
            continue;
        }
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let serving = pod_ready(pod);
        let mut e = json!({
            "addresses": [pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()],
            "conditions": {"ready": (serving && !terminating) || publish, "serving": serving || publish, "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": pod.metadata.namespace, "name": pod.metadata.name, "uid": pod.metadata.uid},
        });
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            e["nodeName"] = json!(node);
        }
        if let Some(h) = hostname_for(service, pod) {
            e["hostname"] = json!(h);
        }
        endpoints.push(e);
    }
    let ports = slice_ports.unwrap_or_else(|| {
        ports
            .iter()
            .map(|p| {
                let mut v = json!({"protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into())});
                if let Some(name) = &p.name {
                    v["name"] = json!(name);
                }
                v
            })
            .collect()
    });
    (json!(endpoints), json!(ports))
}
