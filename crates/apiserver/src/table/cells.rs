//! The cells of one row per kind, following kube-apiserver's printers (`printPod`,
//! `printStatefulSet`, `printService`, …) with `Wide: true`, as the server always renders them.
//!
//! Objects are read as JSON; an absent field reads as Go's zero value, or as the value upstream
//! defaulting would have stored, so a cell never fails to render.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::format::{
    access_modes, array_at, format_label_selector, format_labels, int_at, join_host_port, label_selector_string,
    list_with_more, map_len, quantity, since, str_at, timestamp,
};

/// How many addresses or ports the Endpoints and EndpointSlice columns list before `+ N more...`.
const LIST_MAX: usize = 3;

fn name(obj: &Value) -> Value {
    Value::from(str_at(obj, "/metadata/name"))
}

fn age(obj: &Value, now: Timestamp) -> Value {
    Value::from(since(now, timestamp(obj, "/metadata/creationTimestamp")))
}

fn none_if_empty(s: &str) -> String {
    if s.is_empty() { "<none>".to_string() } else { s.to_string() }
}

/// The container names and images of a pod template, each comma-joined.
fn container_cells(obj: &Value) -> [Value; 2] {
    let containers = array_at(obj, "/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    [Value::from(names.join(",")), Value::from(images.join(","))]
}

/// `spec.replicas`, which upstream defaults to 1.
fn desired_replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

// ---------------------------------------------------------------------------------------------
// Pods

/// A container status's `state.<which>` (`waiting`, `running`, `terminated`), when set.
fn state<'a>(status: &'a Value, which: &str) -> Option<&'a Value> {
    status.get("state").and_then(|s| s.get(which)).filter(|v| v.is_object())
}

/// When the container's previous run ended, if it has one.
fn last_finished(status: &Value) -> Option<Timestamp> {
    status.pointer("/lastState/terminated").filter(|v| v.is_object()).and_then(|t| timestamp(t, "/finishedAt"))
}

fn latest(current: Option<Timestamp>, candidate: Option<Timestamp>) -> Option<Timestamp> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn has_condition(obj: &Value, kind: &str) -> bool {
    array_at(obj, "/status/conditions").iter().any(|c| str_at(c, "/type") == kind && str_at(c, "/status") == "True")
}

/// `Init:Signal:9` / `Init:ExitCode:1` style text for a container that exited without a reason.
fn exit_text(terminated: &Value) -> String {
    let signal = int_at(terminated, "/signal");
    if signal != 0 { format!("Signal:{signal}") } else { format!("ExitCode:{}", int_at(terminated, "/exitCode")) }
}

/// NAME READY STATUS RESTARTS AGE IP NODE NOMINATED-NODE READINESS-GATES. STATUS is upstream's
/// computed reason: the phase (or `status.reason`), overridden by init progress (`Init:0/1`,
/// `Init:CrashLoopBackOff`), then by the last container with a waiting or terminated reason
/// (`ContainerCreating`, `CrashLoopBackOff`, `Completed`, `Error`), then by deletion
/// (`Terminating`).
pub fn pod(obj: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = array_at(obj, "/spec/initContainers");
    let restartable =
        |name: &str| init_specs.iter().any(|c| str_at(c, "/name") == name && str_at(c, "/restartPolicy") == "Always");
    let sidecars = init_specs.iter().filter(|c| str_at(c, "/restartPolicy") == "Always").count();
    let total = array_at(obj, "/spec/containers").len() + sidecars;
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut sidecar_restarts = 0i64;
    let mut sidecar_last_restart: Option<Timestamp> = None;

    let phase = str_at(obj, "/status/phase");
    let mut reason = match str_at(obj, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if array_at(obj, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let mut initializing = false;
    for (i, status) in array_at(obj, "/status/initContainerStatuses").iter().enumerate() {
        let count = int_at(status, "/restartCount");
        restarts += count;
        last_restart = latest(last_restart, last_finished(status));
        let is_sidecar = restartable(str_at(status, "/name"));
        if is_sidecar {
            sidecar_restarts += count;
            sidecar_last_restart = latest(sidecar_last_restart, last_finished(status));
        }
        let terminated = state(status, "terminated");
        let waiting = state(status, "waiting");
        if terminated.is_some_and(|t| int_at(t, "/exitCode") == 0) {
            continue;
        }
        if is_sidecar && status.get("started").and_then(Value::as_bool) == Some(true) {
            if status.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match str_at(t, "/reason") {
                "" => format!("Init:{}", exit_text(t)),
                r => format!("Init:{r}"),
            }
        } else if let Some(w) = waiting.filter(|w| !matches!(str_at(w, "/reason"), "" | "PodInitializing")) {
            format!("Init:{}", str_at(w, "/reason"))
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || has_condition(obj, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for status in array_at(obj, "/status/containerStatuses").iter().rev() {
            restarts += int_at(status, "/restartCount");
            last_restart = latest(last_restart, last_finished(status));
            let waiting_reason = state(status, "waiting").map(|w| str_at(w, "/reason")).unwrap_or("");
            let terminated = state(status, "terminated");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match str_at(t, "/reason") {
                    "" => exit_text(t),
                    r => r.to_string(),
                };
            } else if status.get("ready").and_then(Value::as_bool) == Some(true) && state(status, "running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed but another still runs is not "Completed".
        if reason == "Completed" && has_running {
            reason = if has_condition(obj, "Ready") { "Running" } else { "NotReady" }.to_string();
        }
    }

    let deleting = obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
    if deleting && str_at(obj, "/status/reason") == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".to_string();
    }

    let restarts_text = match last_restart {
        Some(at) if restarts != 0 => format!("{restarts} ({} ago)", since(now, Some(at))),
        _ => restarts.to_string(),
    };

    // v1 → internal conversion makes `podIP` authoritative over `podIPs[0]`.
    let pod_ip = match str_at(obj, "/status/podIP") {
        "" => str_at(obj, "/status/podIPs/0/ip"),
        ip => ip,
    };
    let gates = array_at(obj, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = array_at(obj, "/status/conditions");
        let passed = gates
            .iter()
            .filter(|gate| {
                let kind = str_at(gate, "/conditionType");
                conditions.iter().find(|c| str_at(c, "/type") == kind).is_some_and(|c| str_at(c, "/status") == "True")
            })
            .count();
        format!("{passed}/{}", gates.len())
    };

    vec![
        name(obj),
        Value::from(format!("{ready}/{total}")),
        Value::from(reason),
        Value::from(restarts_text),
        age(obj, now),
        Value::from(none_if_empty(pod_ip)),
        Value::from(none_if_empty(str_at(obj, "/spec/nodeName"))),
        Value::from(none_if_empty(str_at(obj, "/status/nominatedNodeName"))),
        Value::from(readiness_gates),
    ]
}

/// The row `conditions` upstream attaches to finished pods.
pub fn pod_conditions(obj: &Value) -> Option<Value> {
    let (reason, message) = match str_at(obj, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

// ---------------------------------------------------------------------------------------------
// Workloads

/// NAME READY(`ready/desired`) AGE CONTAINERS IMAGES.
pub fn stateful_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [containers, images] = container_cells(obj);
    vec![
        name(obj),
        Value::from(format!("{}/{}", int_at(obj, "/status/readyReplicas"), desired_replicas(obj))),
        age(obj, now),
        containers,
        images,
    ]
}

/// NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR (`<invalid>` selector when
/// malformed, empty when it selects everything).
pub fn deployment(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [containers, images] = container_cells(obj);
    let selector = label_selector_string(obj.pointer("/spec/selector")).unwrap_or_else(|| "<invalid>".to_string());
    vec![
        name(obj),
        Value::from(format!("{}/{}", int_at(obj, "/status/readyReplicas"), desired_replicas(obj))),
        Value::from(int_at(obj, "/status/updatedReplicas")),
        Value::from(int_at(obj, "/status/availableReplicas")),
        age(obj, now),
        containers,
        images,
        Value::from(selector),
    ]
}

/// NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR; the counts are integers.
pub fn replica_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [containers, images] = container_cells(obj);
    // A ReplicationController's selector is a plain label map.
    let plain =
        obj.pointer("/spec/selector").filter(|s| s.get("matchLabels").is_none() && s.get("matchExpressions").is_none());
    let selector = match plain {
        Some(map) => format_labels(Some(map)),
        None => format_label_selector(obj.pointer("/spec/selector")),
    };
    vec![
        name(obj),
        Value::from(desired_replicas(obj)),
        Value::from(int_at(obj, "/status/replicas")),
        Value::from(int_at(obj, "/status/readyReplicas")),
        age(obj, now),
        containers,
        images,
        Value::from(selector),
    ]
}

/// NAME CONTROLLER(`statefulset.apps/web`) REVISION(integer) AGE.
pub fn controller_revision(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = array_at(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map_or_else(
            || "<none>".to_string(),
            |owner| {
                let group = str_at(owner, "/apiVersion").split_once('/').map_or("", |(g, _)| g);
                let kind = str_at(owner, "/kind");
                let owner_name = str_at(owner, "/name");
                match (kind, group) {
                    ("", "") => owner_name.to_string(),
                    (kind, "") => format!("{}/{owner_name}", kind.to_lowercase()),
                    (kind, group) => format!("{}.{}/{owner_name}", kind.to_lowercase(), group.to_lowercase()),
                }
            },
        );
    vec![name(obj), Value::from(controller), Value::from(int_at(obj, "/revision")), age(obj, now)]
}

// ---------------------------------------------------------------------------------------------
// Networking

/// The EXTERNAL-IP cell: external IPs, load-balancer ingress points, `<pending>`, `<none>`.
fn service_external_ip(obj: &Value) -> String {
    let external_ips: Vec<&str> = array_at(obj, "/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    match str_at(obj, "/spec/type") {
        "" | "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let mut ingress: Vec<&str> = array_at(obj, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match str_at(i, "/ip") {
                    "" => str_at(i, "/hostname"),
                    ip => ip,
                })
                .filter(|s| !s.is_empty())
                .collect();
            ingress.sort_unstable();
            ingress.dedup();
            if !external_ips.is_empty() {
                ingress.extend(external_ips);
                ingress.join(",")
            } else if !ingress.is_empty() {
                ingress.join(",")
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => str_at(obj, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR; ports as `80/TCP` or `80:30080/TCP`.
pub fn service(obj: &Value, now: Timestamp) -> Vec<Value> {
    let service_type = match str_at(obj, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    // v1 → internal conversion makes `clusterIP` authoritative over `clusterIPs[0]`.
    let cluster_ip = match str_at(obj, "/spec/clusterIP") {
        "" => str_at(obj, "/spec/clusterIPs/0"),
        ip => ip,
    };
    let ports: Vec<String> = array_at(obj, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = match str_at(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            match int_at(p, "/nodePort") {
                n if n > 0 => format!("{}:{n}/{protocol}", int_at(p, "/port")),
                _ => format!("{}/{protocol}", int_at(p, "/port")),
            }
        })
        .collect();
    vec![
        name(obj),
        Value::from(service_type),
        Value::from(none_if_empty(cluster_ip)),
        Value::from(service_external_ip(obj)),
        Value::from(none_if_empty(&ports.join(","))),
        age(obj, now),
        Value::from(format_labels(obj.pointer("/spec/selector"))),
    ]
}

/// NAME ENDPOINTS AGE: the first three `ip:port` pairs (bare IPs for port-less subsets), then
/// `+ N more...`; `<none>` without subsets.
pub fn endpoints(obj: &Value, now: Timestamp) -> Vec<Value> {
    let subsets = array_at(obj, "/subsets");
    let text = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut list: Vec<String> = Vec::new();
        let mut more = false;
        let mut count = 0usize;
        for subset in subsets {
            let addresses = array_at(subset, "/addresses");
            let ports = array_at(subset, "/ports");
            if ports.is_empty() {
                // Headless services may have no ports.
                count += addresses.len();
                for address in addresses {
                    if list.len() == LIST_MAX {
                        more = true;
                        break;
                    }
                    list.push(str_at(address, "/ip").to_string());
                }
                continue;
            }
            for port in ports {
                count += addresses.len();
                for address in addresses {
                    if list.len() == LIST_MAX {
                        more = true;
                        break;
                    }
                    list.push(join_host_port(str_at(address, "/ip"), int_at(port, "/port")));
                }
            }
        }
        let joined = list.join(",");
        if more { format!("{joined} + {} more...", count - LIST_MAX) } else { joined }
    };
    vec![name(obj), Value::from(text), age(obj, now)]
}

/// NAME ADDRESSTYPE PORTS ENDPOINTS AGE; lists stop after three entries, `<unset>` when empty.
pub fn endpoint_slice(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut ports: Vec<String> = Vec::new();
    let mut more_ports = false;
    let all_ports = array_at(obj, "/ports");
    for port in all_ports {
        if ports.len() < LIST_MAX {
            let text = match (port.get("port").and_then(Value::as_i64), port.get("name").and_then(Value::as_str)) {
                (Some(number), _) => number.to_string(),
                (None, Some(port_name)) => port_name.to_string(),
                (None, None) => "*".to_string(),
            };
            ports.push(text);
        } else {
            more_ports = true;
        }
    }
    let mut addresses: Vec<String> = Vec::new();
    let mut more_addresses = false;
    let mut address_count = 0usize;
    for endpoint in array_at(obj, "/endpoints") {
        for address in array_at(endpoint, "/addresses") {
            if addresses.len() < LIST_MAX {
                addresses.push(address.as_str().unwrap_or("").to_string());
            } else {
                more_addresses = true;
            }
            address_count += 1;
        }
    }
    vec![
        name(obj),
        Value::from(str_at(obj, "/addressType")),
        Value::from(list_with_more(&ports, more_ports, all_ports.len(), LIST_MAX)),
        Value::from(list_with_more(&addresses, more_addresses, address_count, LIST_MAX)),
        age(obj, now),
    ]
}

// ---------------------------------------------------------------------------------------------
// Storage

const BETA_STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// The storage class: the beta annotation wins over `spec.storageClassName`, as upstream.
fn storage_class_of(obj: &Value) -> &str {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(BETA_STORAGE_CLASS_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or_else(|| str_at(obj, "/spec/storageClassName"))
}

fn phase_or_terminating(obj: &Value) -> &str {
    if obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
        "Terminating"
    } else {
        str_at(obj, "/status/phase")
    }
}

fn unset_if_empty(s: &str) -> String {
    if s.is_empty() { "<unset>".to_string() } else { s.to_string() }
}

/// NAME STATUS VOLUME CAPACITY ACCESS-MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE VOLUMEMODE.
/// Capacity and access modes come from the bound volume (status), so they stay empty until the
/// claim names a volume.
pub fn persistent_volume_claim(obj: &Value, now: Timestamp) -> Vec<Value> {
    let volume_name = str_at(obj, "/spec/volumeName");
    let (capacity, modes) = if volume_name.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(obj.pointer("/status/capacity/storage")), access_modes(array_at(obj, "/status/accessModes")))
    };
    vec![
        name(obj),
        Value::from(phase_or_terminating(obj)),
        Value::from(volume_name),
        Value::from(capacity),
        Value::from(modes),
        Value::from(storage_class_of(obj)),
        Value::from(unset_if_empty(str_at(obj, "/spec/volumeAttributesClassName"))),
        age(obj, now),
        Value::from(unset_if_empty(str_at(obj, "/spec/volumeMode"))),
    ]
}

/// NAME CAPACITY ACCESS-MODES RECLAIM-POLICY STATUS CLAIM STORAGECLASS VOLUMEATTRIBUTESCLASS
/// REASON AGE VOLUMEMODE.
pub fn persistent_volume(obj: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match obj.pointer("/spec/claimRef").filter(|c| c.is_object()) {
        Some(c) => format!("{}/{}", str_at(c, "/namespace"), str_at(c, "/name")),
        None => String::new(),
    };
    vec![
        name(obj),
        Value::from(quantity(obj.pointer("/spec/capacity/storage"))),
        Value::from(access_modes(array_at(obj, "/spec/accessModes"))),
        Value::from(str_at(obj, "/spec/persistentVolumeReclaimPolicy")),
        Value::from(phase_or_terminating(obj)),
        Value::from(claim),
        Value::from(storage_class_of(obj)),
        Value::from(unset_if_empty(str_at(obj, "/spec/volumeAttributesClassName"))),
        Value::from(str_at(obj, "/status/reason")),
        age(obj, now),
        Value::from(unset_if_empty(str_at(obj, "/spec/volumeMode"))),
    ]
}

/// NAME(` (default)` on the default class) PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE
/// ALLOWVOLUMEEXPANSION(boolean) AGE.
pub fn storage_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    let annotation = |key: &str| obj.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str);
    let is_default = annotation("storageclass.kubernetes.io/is-default-class") == Some("true")
        || annotation("storageclass.beta.kubernetes.io/is-default-class") == Some("true");
    let mut display_name = str_at(obj, "/metadata/name").to_string();
    if is_default {
        display_name.push_str(" (default)");
    }
    let reclaim_policy = match str_at(obj, "/reclaimPolicy") {
        "" => "Delete",
        p => p,
    };
    let binding_mode = match str_at(obj, "/volumeBindingMode") {
        "" => "Immediate",
        m => m,
    };
    vec![
        Value::from(display_name),
        Value::from(str_at(obj, "/provisioner")),
        Value::from(reclaim_policy),
        Value::from(binding_mode),
        Value::from(obj.get("allowVolumeExpansion").and_then(Value::as_bool).unwrap_or(false)),
        age(obj, now),
    ]
}

// ---------------------------------------------------------------------------------------------
// Events

/// The fields the event printer reads, from either event API (`core/v1` names, or the
/// `events.k8s.io/v1` names kube-apiserver converts from).
pub struct EventFields<'a> {
    name: &'a str,
    first_timestamp: Option<Timestamp>,
    last_timestamp: Option<Timestamp>,
    event_time: Option<Timestamp>,
    /// `series`, when set: (count, lastObservedTime).
    series: Option<(i64, Option<Timestamp>)>,
    count: i64,
    object_kind: &'a str,
    object_name: &'a str,
    field_path: &'a str,
    event_type: &'a str,
    reason: &'a str,
    message: &'a str,
    source_component: &'a str,
    source_host: &'a str,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
}

impl<'a> EventFields<'a> {
    fn series(obj: &Value) -> Option<(i64, Option<Timestamp>)> {
        obj.get("series").filter(|s| s.is_object()).map(|s| (int_at(s, "/count"), timestamp(s, "/lastObservedTime")))
    }

    /// A `core/v1` Event.
    pub fn core(obj: &'a Value) -> Self {
        EventFields {
            name: str_at(obj, "/metadata/name"),
            first_timestamp: timestamp(obj, "/firstTimestamp"),
            last_timestamp: timestamp(obj, "/lastTimestamp"),
            event_time: timestamp(obj, "/eventTime"),
            series: Self::series(obj),
            count: int_at(obj, "/count"),
            object_kind: str_at(obj, "/involvedObject/kind"),
            object_name: str_at(obj, "/involvedObject/name"),
            field_path: str_at(obj, "/involvedObject/fieldPath"),
            event_type: str_at(obj, "/type"),
            reason: str_at(obj, "/reason"),
            message: str_at(obj, "/message"),
            source_component: str_at(obj, "/source/component"),
            source_host: str_at(obj, "/source/host"),
            reporting_controller: str_at(obj, "/reportingComponent"),
            reporting_instance: str_at(obj, "/reportingInstance"),
        }
    }

    /// An `events.k8s.io/v1` Event.
    pub fn events_v1(obj: &'a Value) -> Self {
        EventFields {
            name: str_at(obj, "/metadata/name"),
            first_timestamp: timestamp(obj, "/deprecatedFirstTimestamp"),
            last_timestamp: timestamp(obj, "/deprecatedLastTimestamp"),
            event_time: timestamp(obj, "/eventTime"),
            series: Self::series(obj),
            count: int_at(obj, "/deprecatedCount"),
            object_kind: str_at(obj, "/regarding/kind"),
            object_name: str_at(obj, "/regarding/name"),
            field_path: str_at(obj, "/regarding/fieldPath"),
            event_type: str_at(obj, "/type"),
            reason: str_at(obj, "/reason"),
            message: str_at(obj, "/note"),
            source_component: str_at(obj, "/deprecatedSource/component"),
            source_host: str_at(obj, "/deprecatedSource/host"),
            reporting_controller: str_at(obj, "/reportingController"),
            reporting_instance: str_at(obj, "/reportingInstance"),
        }
    }
}

/// LAST-SEEN TYPE REASON OBJECT SUBOBJECT SOURCE MESSAGE FIRST-SEEN COUNT(integer) NAME.
pub fn event(e: &EventFields<'_>, now: Timestamp) -> Vec<Value> {
    let first_seen = match e.first_timestamp {
        Some(ts) => since(now, Some(ts)),
        None => since(now, e.event_time),
    };
    let mut last_seen = match e.last_timestamp {
        Some(ts) => since(now, Some(ts)),
        None => first_seen.clone(),
    };
    let count = match e.series {
        Some((series_count, last_observed)) => {
            last_seen = since(now, last_observed);
            series_count
        }
        // Singleton events in the newer API have no count.
        None if e.count == 0 => 1,
        None => e.count,
    };
    let object = if e.object_name.is_empty() {
        e.object_kind.to_lowercase()
    } else {
        format!("{}/{}", e.object_kind.to_lowercase(), e.object_name)
    };
    let component = if e.source_component.is_empty() { e.reporting_controller } else { e.source_component };
    let host = if e.source_host.is_empty() { e.reporting_instance } else { e.source_host };
    let source = if host.is_empty() { component.to_string() } else { format!("{component}, {host}") };
    vec![
        Value::from(last_seen),
        Value::from(e.event_type),
        Value::from(e.reason),
        Value::from(object),
        Value::from(e.field_path),
        Value::from(source),
        Value::from(e.message.trim()),
        Value::from(first_seen),
        Value::from(count),
        Value::from(e.name),
    ]
}

// ---------------------------------------------------------------------------------------------
// Cluster and configuration objects

/// NAME STATUS(phase) AGE.
pub fn namespace(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), Value::from(str_at(obj, "/status/phase")), age(obj, now)]
}

/// The first address of the given type, `<none>` without one.
fn node_address<'a>(obj: &'a Value, kind: &str) -> &'a str {
    array_at(obj, "/status/addresses")
        .iter()
        .find(|a| str_at(a, "/type") == kind)
        .map_or("<none>", |a| str_at(a, "/address"))
}

/// NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION
/// CONTAINER-RUNTIME.
pub fn node(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    // The last Ready condition wins, as upstream indexes conditions by type.
    if let Some(ready) = array_at(obj, "/status/conditions").iter().rev().find(|c| str_at(c, "/type") == "Ready") {
        status.push(if str_at(ready, "/status") == "True" { "Ready" } else { "NotReady" });
    } else {
        status.push("Unknown");
    }
    if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }

    let mut roles: Vec<&str> = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(key, value)| match key.strip_prefix("node-role.kubernetes.io/") {
                    Some(role) if !role.is_empty() => Some(role),
                    Some(_) => None,
                    None if key == "kubernetes.io/role" => value.as_str().filter(|v| !v.is_empty()),
                    None => None,
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort_unstable();
    roles.dedup();

    let info = |field: &str| {
        let value = str_at(obj, &format!("/status/nodeInfo/{field}"));
        if value.is_empty() { "<unknown>" } else { value }
    };
    vec![
        name(obj),
        Value::from(status.join(",")),
        Value::from(none_if_empty(&roles.join(","))),
        age(obj, now),
        Value::from(str_at(obj, "/status/nodeInfo/kubeletVersion")),
        Value::from(node_address(obj, "InternalIP")),
        Value::from(node_address(obj, "ExternalIP")),
        Value::from(info("osImage")),
        Value::from(info("kernelVersion")),
        Value::from(info("containerRuntimeVersion")),
    ]
}

/// NAME DATA(integer: keys in data and binaryData) AGE.
pub fn config_map(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), Value::from(map_len(obj, "/data") + map_len(obj, "/binaryData")), age(obj, now)]
}

/// NAME TYPE DATA(integer) AGE.
pub fn secret(obj: &Value, now: Timestamp) -> Vec<Value> {
    let secret_type = match str_at(obj, "/type") {
        "" => "Opaque",
        t => t,
    };
    vec![name(obj), Value::from(secret_type), Value::from(map_len(obj, "/data")), age(obj, now)]
}

/// NAME SECRETS(integer) AGE.
pub fn service_account(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), Value::from(array_at(obj, "/secrets").len()), age(obj, now)]
}

/// NAME HOLDER AGE.
pub fn lease(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), Value::from(str_at(obj, "/spec/holderIdentity")), age(obj, now)]
}

/// NAME ROLE AGE, and (wide) USERS GROUPS SERVICEACCOUNTS, for Role- and ClusterRoleBindings.
pub fn role_binding(obj: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!("{}/{}", str_at(obj, "/roleRef/kind"), str_at(obj, "/roleRef/name"));
    let of_kind = |kind: &str| {
        let names: Vec<String> = array_at(obj, "/subjects")
            .iter()
            .filter(|s| str_at(s, "/kind") == kind)
            .map(|s| match kind {
                "ServiceAccount" => format!("{}/{}", str_at(s, "/namespace"), str_at(s, "/name")),
                _ => str_at(s, "/name").to_string(),
            })
            .collect();
        Value::from(names.join(", "))
    };
    vec![name(obj), Value::from(role), age(obj, now), of_kind("User"), of_kind("Group"), of_kind("ServiceAccount")]
}

/// NAME POD-SELECTOR AGE.
pub fn network_policy(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), Value::from(format_label_selector(obj.pointer("/spec/podSelector"))), age(obj, now)]
}

/// NAME CLASS HOSTS ADDRESS PORTS AGE, as upstream's `printIngress`.
pub fn ingress(obj: &Value, now: Timestamp) -> Vec<Value> {
    let class = match str_at(obj, "/spec/ingressClassName") {
        "" => "<none>",
        class => class,
    };
    let hosts: Vec<&str> =
        array_at(obj, "/spec/rules").iter().map(|r| str_at(r, "/host")).filter(|h| !h.is_empty()).collect();
    let hosts = if hosts.is_empty() { "*".to_string() } else { hosts.join(",") };
    let address: Vec<&str> = array_at(obj, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| if str_at(i, "/ip").is_empty() { str_at(i, "/hostname") } else { str_at(i, "/ip") })
        .filter(|a| !a.is_empty())
        .collect();
    let ports = if array_at(obj, "/spec/tls").is_empty() { "80" } else { "80, 443" };
    vec![
        name(obj),
        Value::from(class),
        Value::from(hosts),
        Value::from(address.join(",")),
        Value::from(ports),
        age(obj, now),
    ]
}

/// NAME CONTROLLER PARAMETERS AGE.
pub fn ingress_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match obj.pointer("/spec/parameters") {
        Some(p) if p.is_object() => {
            let group = match str_at(p, "/apiGroup") {
                "" => String::new(),
                g => format!("{g}/"),
            };
            format!("{group}{}/{}", str_at(p, "/kind"), str_at(p, "/name"))
        }
        _ => "<none>".into(),
    };
    vec![name(obj), Value::from(str_at(obj, "/spec/controller")), Value::from(parameters), age(obj, now)]
}

/// NAME VALUE GLOBAL-DEFAULT AGE PREEMPTIONPOLICY.
pub fn priority_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    let global = obj.pointer("/globalDefault").and_then(Value::as_bool).unwrap_or(false);
    vec![
        name(obj),
        Value::from(int_at(obj, "/value")),
        Value::from(global),
        age(obj, now),
        Value::from(str_at(obj, "/preemptionPolicy")),
    ]
}

/// NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE. Nothing measures metrics here, so
/// every current value is `<unknown>`, as upstream prints a metric not yet read.
pub fn horizontal_pod_autoscaler(obj: &Value, now: Timestamp) -> Vec<Value> {
    let reference =
        format!("{}/{}", str_at(obj, "/spec/scaleTargetRef/kind"), str_at(obj, "/spec/scaleTargetRef/name"));
    let targets: Vec<String> = array_at(obj, "/spec/metrics")
        .iter()
        .map(|m| {
            let (metric, target) = match str_at(m, "/type") {
                "Resource" => (str_at(m, "/resource/name"), m.pointer("/resource/target")),
                "ContainerResource" => (str_at(m, "/containerResource/name"), m.pointer("/containerResource/target")),
                "Pods" => (str_at(m, "/pods/metric/name"), m.pointer("/pods/target")),
                "Object" => (str_at(m, "/object/metric/name"), m.pointer("/object/target")),
                _ => (str_at(m, "/external/metric/name"), m.pointer("/external/target")),
            };
            let target =
                target.map_or_else(String::new, |t| match t.get("averageUtilization").and_then(Value::as_i64) {
                    Some(pct) => format!("{pct}%"),
                    None => quantity(t.get("averageValue").or_else(|| t.get("value"))),
                });
            format!("{metric}: <unknown>/{target}")
        })
        .collect();
    let targets = if targets.is_empty() { "<none>".to_string() } else { targets.join(", ") };
    let min = match obj.pointer("/spec/minReplicas").and_then(Value::as_i64) {
        Some(n) => n.to_string(),
        None => "<unset>".into(),
    };
    vec![
        name(obj),
        Value::from(reference),
        Value::from(targets),
        Value::from(min),
        Value::from(int_at(obj, "/spec/maxReplicas")),
        Value::from(int_at(obj, "/status/currentReplicas")),
        age(obj, now),
    ]
}

/// NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE (`N/A` for the one not set).
pub fn pod_disruption_budget(obj: &Value, now: Timestamp) -> Vec<Value> {
    let int_or_string = |pointer: &str| match obj.pointer(pointer) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".into(),
    };
    vec![
        name(obj),
        Value::from(int_or_string("/spec/minAvailable")),
        Value::from(int_or_string("/spec/maxUnavailable")),
        Value::from(int_at(obj, "/status/disruptionsAllowed")),
        age(obj, now),
    ]
}

/// Upstream's `printJob`: the status its conditions give (the last true one of Complete,
/// Failed, Suspended, …, else Running), completions as `succeeded/completions` (`/1 of N` with
/// only parallelism), the duration from start to completion (or now).
pub fn job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [containers, images] = container_cells(obj);
    let completions = match obj.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{}/{c}", int_at(obj, "/status/succeeded")),
        None => {
            let parallelism = obj.pointer("/spec/parallelism").and_then(Value::as_i64).unwrap_or(1);
            if parallelism > 1 {
                format!("{}/1 of {parallelism}", int_at(obj, "/status/succeeded"))
            } else {
                format!("{}/1", int_at(obj, "/status/succeeded"))
            }
        }
    };
    let start = timestamp(obj, "/status/startTime");
    let duration = match (start, timestamp(obj, "/status/completionTime")) {
        (Some(s), Some(c)) => super::format::human_duration(c.duration_since(s)),
        (Some(s), None) => super::format::human_duration(now.duration_since(s)),
        _ => String::new(),
    };
    let status = array_at(obj, "/status/conditions")
        .iter()
        .filter(|c| str_at(c, "/status") == "True")
        .map(|c| str_at(c, "/type").to_string())
        .rfind(|t| ["Complete", "Failed", "Suspended", "FailureTarget", "SuccessCriteriaMet"].contains(&t.as_str()));
    let status = match status.as_deref() {
        Some("SuccessCriteriaMet") | Some("FailureTarget") => "Terminating".to_string(),
        Some(s) => s.to_string(),
        None if obj.pointer("/metadata/deletionTimestamp").is_some() => "Terminating".to_string(),
        None => "Running".to_string(),
    };
    vec![
        name(obj),
        Value::from(status),
        Value::from(completions),
        Value::from(duration),
        age(obj, now),
        containers,
        images,
        Value::from(format_label_selector(obj.pointer("/spec/selector"))),
    ]
}

/// Upstream's `printCronJob`: schedule, time zone (`<none>`), suspend, active jobs, the last
/// schedule's age (`<none>`), age; wide: the job template's containers and its selector.
pub fn cron_job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let containers = array_at(obj, "/spec/jobTemplate/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    let last = match timestamp(obj, "/status/lastScheduleTime") {
        Some(t) => since(now, Some(t)),
        None => "<none>".to_string(),
    };
    let suspend = obj.pointer("/spec/suspend").and_then(Value::as_bool).unwrap_or(false);
    vec![
        name(obj),
        Value::from(str_at(obj, "/spec/schedule")),
        Value::from(none_if_empty(str_at(obj, "/spec/timeZone"))),
        Value::from(if suspend { "True" } else { "False" }),
        Value::from(array_at(obj, "/status/active").len()),
        Value::from(last),
        age(obj, now),
        Value::from(names.join(",")),
        Value::from(images.join(",")),
        Value::from(format_label_selector(obj.pointer("/spec/jobTemplate/spec/selector"))),
    ]
}

/// Upstream's `printDaemonSet`.
pub fn daemon_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [containers, images] = container_cells(obj);
    vec![
        name(obj),
        Value::from(int_at(obj, "/status/desiredNumberScheduled")),
        Value::from(int_at(obj, "/status/currentNumberScheduled")),
        Value::from(int_at(obj, "/status/numberReady")),
        Value::from(int_at(obj, "/status/updatedNumberScheduled")),
        Value::from(int_at(obj, "/status/numberAvailable")),
        Value::from(none_if_empty(&format_labels(obj.pointer("/spec/template/spec/nodeSelector")))),
        age(obj, now),
        containers,
        images,
        Value::from(format_label_selector(obj.pointer("/spec/selector"))),
    ]
}

/// Upstream's `printResourceQuota`: `used/hard` for each resource, the limits ones in LIMIT and
/// the rest in REQUEST, in name order.
pub fn resource_quota(obj: &Value, now: Timestamp) -> Vec<Value> {
    let hard = obj.pointer("/status/hard").or(obj.pointer("/spec/hard")).and_then(Value::as_object);
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    for (k, h) in hard.into_iter().flatten() {
        let used = obj
            .pointer(&format!("/status/used/{}", k.replace('~', "~0").replace('/', "~1")))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let cell = format!("{k}: {used}/{}", h.as_str().unwrap_or_default());
        if k.starts_with("limits.") { limit.push(cell) } else { request.push(cell) }
    }
    vec![name(obj), age(obj, now), Value::from(request.join(", ")), Value::from(limit.join(", "))]
}

/// kube-aggregator's APIService columns: the hosting Service (`Local` when none) and its
/// `Available` condition (`False (Reason)` when not True and a reason is given).
pub fn api_service(obj: &Value, now: Timestamp) -> Vec<Value> {
    let service = match obj.pointer("/spec/service") {
        Some(s) if s.is_object() => format!("{}/{}", str_at(s, "/namespace"), str_at(s, "/name")),
        _ => "Local".into(),
    };
    let conditions = obj.pointer("/status/conditions").and_then(Value::as_array);
    let available = conditions.and_then(|c| c.iter().find(|c| str_at(c, "/type") == "Available"));
    let status = match available {
        None => "Unknown".to_string(),
        Some(c) => match (str_at(c, "/status"), str_at(c, "/reason")) {
            ("True", _) => "True".into(),
            (status, "") => status.into(),
            (status, reason) => format!("{status} ({reason})"),
        },
    };
    vec![name(obj), Value::from(service), Value::from(status), age(obj, now)]
}

/// Upstream's default convertor: NAME and CREATED AT (RFC 3339 in UTC, whole seconds).
pub fn default(obj: &Value) -> Vec<Value> {
    let created = timestamp(obj, "/metadata/creationTimestamp")
        .map_or_else(|| "0001-01-01T00:00:00Z".to_string(), |ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    vec![name(obj), Value::from(created)]
}
