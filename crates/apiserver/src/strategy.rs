//! Per-kind write rules, as kube-apiserver's registry strategies: what the server sets on create
//! (uid, timestamps, generation, initial status), what an update may change (status versus the
//! rest), when `generation` moves, and Service address allocation.

use std::net::Ipv4Addr;

use model::{ApiError, FieldError, ResourceInfo};
use serde_json::{Value, json};

use crate::alloc::{AllocError, Allocators};
use crate::object::{meta_mut, object_at, spec_part};

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object itself: everything but `status` (for kinds with a status subresource).
    Main,
    /// `…/status`: only `status`.
    Status,
    /// `namespaces/{name}/finalize`: only `spec.finalizers`.
    Finalize,
}

/// Fields the server owns on every write.
fn strip_server_fields(obj: &mut Value) {
    let m = meta_mut(obj);
    m.remove("managedFields");
    m.remove("selfLink");
}

/// Set server-owned metadata and the initial status of a new object.
pub fn prepare_create(info: &ResourceInfo, obj: &mut Value, now: &str) {
    strip_server_fields(obj);
    {
        let m = meta_mut(obj);
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        if info.tracks_generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    let Some(map) = obj.as_object_mut() else { return };
    match (info.group, info.kind) {
        ("", "Pod") => {
            let qos = qos_class(map.get("spec"));
            map.insert("status".into(), json!({"phase": "Pending", "qosClass": qos}));
        }
        ("", "Namespace") => {
            map.insert("status".into(), json!({"phase": "Active"}));
            // The namespace controller removes this once the namespace is empty.
            map.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
        }
        ("", "PersistentVolumeClaim") | ("", "PersistentVolume") => {
            map.insert("status".into(), json!({"phase": "Pending"}));
        }
        ("", "Service") => {
            map.insert("status".into(), json!({"loadBalancer": {}}));
        }
        ("", "Node") => {}
        ("batch", "Job") => {
            generate_job_selector(map);
            map.insert("status".into(), json!({}));
        }
        _ if info.has_status() => {
            map.insert("status".into(), json!({}));
        }
        _ => {}
    }
}

/// Upstream's `generateSelectorIfNeeded`: unless `manualSelector`, a Job selects its pods by its
/// uid, and its template carries that label and the job's name (old and new spellings).
fn generate_job_selector(job: &mut serde_json::Map<String, Value>) {
    let uid = job.get("metadata").and_then(|m| m.get("uid")).cloned().unwrap_or(Value::Null);
    let name = job.get("metadata").and_then(|m| m.get("name")).cloned().unwrap_or(Value::Null);
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else { return };
    if spec.get("manualSelector") == Some(&json!(true)) {
        return;
    }
    spec.insert("selector".into(), json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
    let template = spec.entry("template").or_insert_with(|| json!({}));
    let Some(template) = template.as_object_mut() else { return };
    let meta = template.entry("metadata").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else { return };
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        for key in ["batch.kubernetes.io/controller-uid", "controller-uid"] {
            labels.insert(key.into(), uid.clone());
        }
        for key in ["batch.kubernetes.io/job-name", "job-name"] {
            labels.insert(key.into(), name.clone());
        }
    }
}

/// Merge what an update may change into the stored object's frame. `new` is what the client
/// sent (already patched and defaulted); on return it is what will be stored.
pub fn prepare_update(info: &ResourceInfo, old: &Value, new: &mut Value, part: Part) {
    strip_server_fields(new);
    match part {
        Part::Main => {
            if info.has_status() {
                match old.get("status") {
                    Some(status) => set_field(new, "status", status.clone()),
                    None => remove_field(new, "status"),
                }
            }
            // Priority admission set these at create; an update that leaves them out keeps them
            // (upstream's `Priority` plugin on update).
            if info.group.is_empty() && info.kind == "Pod" {
                for field in ["priority", "preemptionPolicy"] {
                    if let Some(old_value) = old.pointer(&format!("/spec/{field}"))
                        && new.pointer(&format!("/spec/{field}")).is_none()
                    {
                        object_at(new, "spec").insert(field.into(), old_value.clone());
                    }
                }
            }
            if info.group.is_empty() && info.kind == "Namespace" {
                let finalizers = old.pointer("/spec/finalizers").cloned();
                let spec = object_at(new, "spec");
                match finalizers {
                    Some(f) => spec.insert("finalizers".into(), f),
                    None => spec.remove("finalizers"),
                };
            }
        }
        Part::Status => {
            let status = new.get("status").cloned();
            let labels = new.pointer("/metadata/labels").cloned();
            let annotations = new.pointer("/metadata/annotations").cloned();
            let rv = new.pointer("/metadata/resourceVersion").cloned();
            *new = old.clone();
            match status {
                Some(s) => set_field(new, "status", s),
                None => remove_field(new, "status"),
            }
            // Status writers may also adjust labels and annotations (upstream allows it for most kinds).
            let m = meta_mut(new);
            for (k, v) in [("labels", labels), ("annotations", annotations)] {
                match v {
                    Some(v) => m.insert(k.into(), v),
                    None => m.remove(k),
                };
            }
            if let Some(rv) = rv {
                m.insert("resourceVersion".into(), rv);
            }
        }
        Part::Finalize => {
            let finalizers = new.pointer("/spec/finalizers").cloned();
            let rv = new.pointer("/metadata/resourceVersion").cloned();
            *new = old.clone();
            let spec = object_at(new, "spec");
            match finalizers {
                Some(f) => spec.insert("finalizers".into(), f),
                None => spec.remove("finalizers"),
            };
            if let Some(rv) = rv {
                meta_mut(new).insert("resourceVersion".into(), rv);
            }
        }
    }
    // Server-owned metadata always comes from the stored object.
    let old_meta = old.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    let m = meta_mut(new);
    for key in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
        match old_meta.get(key) {
            Some(v) => m.insert(key.into(), v.clone()),
            None => m.remove(key),
        };
    }
    if info.tracks_generation && spec_part(old) != spec_part(new) {
        let generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        meta_mut(new).insert("generation".into(), json!(generation));
    }
}

fn set_field(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.insert(key.into(), value);
    }
}

fn remove_field(obj: &mut Value, key: &str) {
    if let Some(m) = obj.as_object_mut() {
        m.remove(key);
    }
}

/// Upstream's QoS classification from requests and limits.
fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.and_then(|s| s.get(*k)).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Addresses a Service write took, so they can be returned if the write fails.
#[derive(Debug, Default)]
pub struct Taken {
    pub ip: Option<Ipv4Addr>,
    pub ports: Vec<u16>,
}

impl Taken {
    pub fn give_back(self, alloc: &mut Allocators) {
        if let Some(ip) = self.ip {
            alloc.release_ip(ip);
        }
        for p in self.ports {
            alloc.release_port(p);
        }
    }
}

fn service_invalid(name: &str, field: &str, value: Value, e: &AllocError) -> ApiError {
    ApiError::invalid("", "Service", name, vec![FieldError::invalid(field, value, format!("failed to allocate: {e}"))])
}

fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP")
}

/// Fill in `clusterIP(s)`, `ipFamilies` and node ports for a Service being created (`old` is
/// `None`) or updated, claiming addresses from `alloc`. Values the client left empty on update
/// are kept from the stored object, as upstream does.
pub fn allocate_service(alloc: &mut Allocators, old: Option<&Value>, svc: &mut Value) -> Result<Taken, ApiError> {
    let mut taken = Taken::default();
    match allocate_service_inner(alloc, old, svc, &mut taken) {
        Ok(()) => Ok(taken),
        Err(e) => {
            taken.give_back(alloc);
            Err(e)
        }
    }
}

fn allocate_service_inner(
    alloc: &mut Allocators,
    old: Option<&Value>,
    svc: &mut Value,
    taken: &mut Taken,
) -> Result<(), ApiError> {
    let name = crate::object::name(svc).to_string();
    let kind = service_type(svc).to_string();
    let spec = object_at(svc, "spec");

    // Cluster IP.
    let requested = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("").to_string();
    let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP")).and_then(Value::as_str).unwrap_or("").to_string();
    let ip = if kind == "ExternalName" {
        String::new()
    } else if requested.is_empty() && !old_ip.is_empty() {
        old_ip.clone()
    } else if requested == "None" || (!requested.is_empty() && requested == old_ip) {
        requested
    } else if requested.is_empty() {
        let ip = alloc.allocate_ip().map_err(|e| service_invalid(&name, "spec.clusterIPs", json!([]), &e))?;
        taken.ip = Some(ip);
        ip.to_string()
    } else {
        let parsed: Ipv4Addr = requested.parse().map_err(|_| {
            ApiError::invalid(
                "",
                "Service",
                &name,
                vec![FieldError::invalid(
                    "spec.clusterIPs[0]",
                    requested.clone(),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )],
            )
        })?;
        if old.is_some() && !old_ip.is_empty() {
            // Changing an allocated address is rejected by validation; leave it to report.
        } else {
            alloc.claim_ip(parsed).map_err(|e| service_invalid(&name, "spec.clusterIPs", json!([requested]), &e))?;
            taken.ip = Some(parsed);
        }
        requested
    };
    if ip.is_empty() {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    } else {
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
        spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
        spec.entry("ipFamilyPolicy").or_insert_with(|| json!("SingleStack"));
    }

    // Node ports.
    let wants_node_ports = kind == "NodePort" || kind == "LoadBalancer";
    let old_ports: Vec<(i64, String, u16)> = old
        .and_then(|o| o.pointer("/spec/ports"))
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| {
                    let node_port = p.get("nodePort").and_then(Value::as_u64)? as u16;
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string();
                    Some((port, proto, node_port))
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(p) = p.as_object_mut() else { continue };
            if !wants_node_ports {
                p.remove("nodePort");
                continue;
            }
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string();
            let kept = old_ports.iter().find(|(op, opr, _)| *op == port && *opr == proto).map(|(_, _, np)| *np);
            let field = format!("spec.ports[{i}].nodePort");
            match p.get("nodePort").and_then(Value::as_u64) {
                None | Some(0) => {
                    let np = match kept {
                        Some(np) => np,
                        None => {
                            let np = alloc.allocate_port().map_err(|e| service_invalid(&name, &field, json!(0), &e))?;
                            taken.ports.push(np);
                            np
                        }
                    };
                    p.insert("nodePort".into(), json!(np));
                }
                Some(np) => {
                    let np = u16::try_from(np).map_err(|_| {
                        ApiError::invalid(
                            "",
                            "Service",
                            &name,
                            vec![FieldError::invalid(field.clone(), np, "provided port is not in the valid range")],
                        )
                    })?;
                    if old_ports.iter().any(|(_, _, o)| *o == np) {
                        continue;
                    }
                    alloc.claim_port(np).map_err(|e| service_invalid(&name, &field, json!(np), &e))?;
                    taken.ports.push(np);
                }
            }
        }
    }
    Ok(())
}

/// Addresses held by a stored Service (to release on delete, or to rebuild the allocators).
pub fn service_addresses(svc: &Value) -> (Option<Ipv4Addr>, Vec<u16>) {
    let ip = svc.pointer("/spec/clusterIP").and_then(Value::as_str).and_then(|s| s.parse().ok());
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default();
    (ip, ports)
}

/// Release what a stored Service held and is no longer held by its replacement (`None` when
/// the Service is gone).
pub fn release_service(alloc: &mut Allocators, old: &Value, new: Option<&Value>) {
    let (old_ip, old_ports) = service_addresses(old);
    let (new_ip, new_ports) = new.map(service_addresses).unwrap_or_default();
    if let Some(ip) = old_ip
        && new_ip != Some(ip)
    {
        alloc.release_ip(ip);
    }
    for p in old_ports {
        if !new_ports.contains(&p) {
            alloc.release_port(p);
        }
    }
}
