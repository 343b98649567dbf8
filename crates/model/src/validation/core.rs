//! core/v1 rules besides pods (Services, claims, volumes, config data, namespaces, nodes,
//! endpoints) and the small groups: storage/v1 StorageClass, discovery/v1 EndpointSlice,
//! coordination/v1 Lease (upstream `pkg/apis/{core,storage,discovery,coordination}/validation`).

use std::collections::BTreeSet;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, Node, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret,
    Service, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::Value;

use super::meta::{self, check, dns1123_label_errors, dns1123_subdomain_errors, qualified_name_errors};
use super::{Errors, Path, json, non_negative, optional_one_of, port_num, port_num_or_name, required_one_of, valid_ip};
use crate::FieldError;
use crate::quantity::parse_quantity;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const ACCESS_MODES: &[&str] = &["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const MAX_DATA_BYTES: usize = 1024 * 1024;
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// Upstream `IsConfigMapKey` (ConfigMap and Secret keys, key selectors).
pub(crate) fn config_key_errors(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if key.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        out.push(CONFIG_KEY_MSG.to_string());
    }
    if key == "." {
        out.push("must not be '.'".to_string());
    } else if key == ".." {
        out.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        out.push("must not start with '..'".to_string());
    }
    out
}

fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
        || spec.cluster_ips.as_ref().and_then(|ips| ips.first()).is_some_and(|ip| ip == "None")
}

/// Upstream `ValidateService`.
pub(crate) fn service(svc: &Service, errs: &mut Errors) {
    let default_spec = ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&default_spec);
    let path = Path::new("spec");
    let kind = spec.type_.as_deref().unwrap_or("");
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    let headless = is_headless(spec);
    if ports.is_empty() && !headless && kind != "ExternalName" {
        errs.push(FieldError::required(path.child("ports"), ""));
    }
    let cluster_ips: Vec<&str> = match (&spec.cluster_ips, spec.cluster_ip.as_deref()) {
        (Some(ips), _) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
        (_, Some(ip)) if !ip.is_empty() => vec![ip],
        _ => Vec::new(),
    };
    match kind {
        "LoadBalancer" | "NodePort" if headless => errs.push(FieldError::invalid(
            path.child("clusterIPs").index(0),
            "None",
            format!("may not be set to 'None' for {kind} services"),
        )),
        "ExternalName" => {
            if !cluster_ips.is_empty() {
                errs.push(FieldError::forbidden(path.child("clusterIPs"), "may not be set for ExternalName services"));
            }
            if spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()) {
                errs.push(FieldError::forbidden(path.child("ipFamilies"), "may not be set for ExternalName services"));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(FieldError::forbidden(
                    path.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let cname = spec.external_name.as_deref().unwrap_or("").trim_end_matches('.');
            if cname.is_empty() {
                errs.push(FieldError::required(path.child("externalName"), ""));
            } else {
                check(cname, &path.child("externalName"), errs, dns1123_subdomain_errors);
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = path.child("ports").index(i);
        let name = p.name.as_deref().unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(pp.child("name"), ""));
        } else if !name.is_empty() {
            check(name, &pp.child("name"), errs, dns1123_label_errors);
            if !names.insert(name) {
                errs.push(FieldError::duplicate(pp.child("name"), name));
            }
        }
        port_num(p.port, &pp.child("port"), errs);
        required_one_of(p.protocol.as_deref(), &pp.child("protocol"), PROTOCOLS, errs);
        if let Some(target) = &p.target_port {
            port_num_or_name(target, &pp.child("targetPort"), errs);
        }
        if let Some(app) = &p.app_protocol {
            check(app, &pp.child("appProtocol"), errs, qualified_name_errors);
        }
    }
    meta::labels(spec.selector.as_ref(), &path.child("selector"), errs);
    match spec.session_affinity.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(path.child("sessionAffinity"), "")),
        "ClientIP" => {
            let p = path.child("sessionAffinityConfig");
            match spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref()) {
                None => errs.push(FieldError::required(&p, "when session affinity type is ClientIP")),
                Some(c) => match c.timeout_seconds {
                    None => errs.push(FieldError::required(
                        p.child("clientIP").child("timeoutSeconds"),
                        "when session affinity type is ClientIP",
                    )),
                    Some(t) if !(1..=86400).contains(&t) => errs.push(FieldError::invalid(
                        p.child("clientIP").child("timeoutSeconds"),
                        t,
                        "must be greater than 0 and less than 86400",
                    )),
                    Some(_) => {}
                },
            }
        }
        "None" => {
            if spec.session_affinity_config.is_some() {
                errs.push(FieldError::forbidden(
                    path.child("sessionAffinityConfig"),
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(path.child("sessionAffinity"), other, &["ClientIP", "None"])),
    }
    for (i, ip) in cluster_ips.iter().enumerate() {
        if !(i == 0 && *ip == "None") {
            valid_ip(ip, &path.child("clusterIPs").index(i), errs);
        }
    }
    optional_one_of(
        spec.ip_family_policy.as_deref(),
        &path.child("ipFamilyPolicy"),
        &["PreferDualStack", "RequireDualStack", "SingleStack"],
        errs,
    );
    for (i, family) in spec.ip_families.iter().flatten().enumerate() {
        optional_one_of(Some(family), &path.child("ipFamilies").index(i), &["IPv4", "IPv6"], errs);
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        valid_ip(ip, &path.child("externalIPs").index(i), errs);
    }
    required_one_of(Some(kind), &path.child("type"), SERVICE_TYPES, errs);
    let mut node_ports = BTreeSet::new();
    let mut port_keys = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = path.child("ports").index(i);
        let node_port = p.node_port.unwrap_or(0);
        let protocol = p.protocol.as_deref().unwrap_or("");
        if kind == "ClusterIP" && node_port != 0 {
            errs.push(FieldError::forbidden(pp.child("nodePort"), "may not be used when `type` is 'ClusterIP'"));
        }
        if node_port != 0 && !node_ports.insert((protocol, node_port)) {
            errs.push(FieldError::duplicate(pp.child("nodePort"), node_port));
        }
        if !port_keys.insert((protocol, p.port)) {
            errs.push(FieldError::duplicate(&pp, serde_json::json!({"port": p.port, "protocol": protocol})));
        }
    }
    if spec.load_balancer_source_ranges.as_ref().is_some_and(|r| !r.is_empty()) && kind != "LoadBalancer" {
        errs.push(FieldError::forbidden(
            path.child("LoadBalancerSourceRanges"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if spec.allocate_load_balancer_node_ports.is_some() && kind != "LoadBalancer" {
        errs.push(FieldError::forbidden(
            path.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if kind == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        // Upstream's path lacks the `spec.` prefix here.
        errs.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }
    let externally_accessible = kind == "LoadBalancer"
        || kind == "NodePort"
        || (kind == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|ips| !ips.is_empty()));
    let etp = spec.external_traffic_policy.as_deref().unwrap_or("");
    if !externally_accessible {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                path.child("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else {
        required_one_of(Some(etp), &path.child("externalTrafficPolicy"), &["Cluster", "Local"], errs);
    }
    let needs_health_check = kind == "LoadBalancer" && etp == "Local";
    match (needs_health_check, spec.health_check_node_port.unwrap_or(0)) {
        (false, 0) | (true, _) => {}
        (false, port) => errs.push(FieldError::invalid(
            path.child("healthCheckNodePort"),
            port,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        )),
    }
    match spec.internal_traffic_policy.as_deref() {
        None if matches!(kind, "ClusterIP" | "NodePort" | "LoadBalancer") => {
            errs.push(FieldError::required(path.child("internalTrafficPolicy"), ""));
        }
        other => optional_one_of(other, &path.child("internalTrafficPolicy"), &["Cluster", "Local"], errs),
    }
    optional_one_of(spec.traffic_distribution.as_deref(), &path.child("trafficDistribution"), &["PreferClose"], errs);
}

/// Upstream `ValidateServiceUpdate`: allocated cluster IPs never change. An update that leaves
/// them out keeps them (the API server carries them over).
pub(crate) fn service_update(old: &Service, new: &Service, errs: &mut Errors) {
    let default_spec = ServiceSpec::default();
    let old_spec = old.spec.as_ref().unwrap_or(&default_spec);
    let new_spec = new.spec.as_ref().unwrap_or(&default_spec);
    if old_spec.type_.as_deref() == Some("ExternalName") || new_spec.type_.as_deref() == Some("ExternalName") {
        return;
    }
    if is_headless(old_spec) && is_headless(new_spec) {
        return;
    }
    let ips = |spec: &ServiceSpec| -> Vec<String> {
        match (spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty()), &spec.cluster_ips) {
            // A changed `clusterIP` with stale `clusterIPs` counts as the new primary.
            (Some(ip), Some(list)) if list.first().is_some_and(|first| first != ip) => {
                let mut list = list.clone();
                list[0] = ip.to_string();
                list
            }
            (_, Some(list)) if !list.is_empty() => list.clone(),
            (Some(ip), _) => vec![ip.to_string()],
            _ => Vec::new(),
        }
    };
    let old_ips = ips(old_spec);
    let new_ips = ips(new_spec);
    if new_ips.is_empty() || old_ips.len() != new_ips.len() {
        return;
    }
    for (i, (o, n)) in old_ips.iter().zip(&new_ips).enumerate() {
        if o != n {
            errs.push(FieldError::invalid(
                Path::new("spec").child("clusterIPs").index(i),
                json(&new_ips),
                "may not change once set",
            ));
        }
    }
}

pub(crate) fn endpoints(ep: &Endpoints, errs: &mut Errors) {
    for (i, subset) in ep.subsets.iter().flatten().enumerate() {
        let p = Path::new("subsets").index(i);
        for (field, list) in [("addresses", &subset.addresses), ("notReadyAddresses", &subset.not_ready_addresses)] {
            for (j, a) in list.iter().flatten().enumerate() {
                valid_ip(&a.ip, &p.child(field).index(j).child("ip"), errs);
            }
        }
        for (j, port) in subset.ports.iter().flatten().enumerate() {
            let pp = p.child("ports").index(j);
            port_num(port.port, &pp.child("port"), errs);
            required_one_of(port.protocol.as_deref(), &pp.child("protocol"), PROTOCOLS, errs);
        }
    }
}

/// Upstream `ValidatePersistentVolumeClaimSpec` (claims and claim templates).
pub(crate) fn claim_spec(spec: &PersistentVolumeClaimSpec, path: &Path, errs: &mut Errors) {
    let modes = spec.access_modes.as_deref().unwrap_or(&[]);
    if modes.is_empty() {
        errs.push(FieldError::required(path.child("accessModes"), "at least 1 access mode is required"));
    }
    if let Some(sel) = &spec.selector {
        meta::label_selector(sel, &path.child("selector"), errs);
    }
    for mode in modes {
        optional_one_of(Some(mode), &path.child("accessModes"), ACCESS_MODES, errs);
    }
    if modes.iter().any(|m| m == "ReadWriteOncePod")
        && modes.iter().any(|m| m != "ReadWriteOncePod" && ACCESS_MODES.contains(&m.as_str()))
    {
        errs.push(FieldError::forbidden(
            path.child("accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    let storage_path = path.child("resources").key("storage");
    match spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")) {
        None => errs.push(FieldError::required(&storage_path, "")),
        Some(q) => match parse_quantity(&q.0) {
            Ok(v) if v.nanos() > 0 => {}
            Ok(_) => errs.push(FieldError::invalid(&storage_path, q.0.as_str(), "must be greater than zero")),
            Err(e) => errs.push(FieldError::invalid(&storage_path, q.0.as_str(), e.to_string())),
        },
    }
    if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        check(class, &path.child("storageClassName"), errs, dns1123_subdomain_errors);
    }
    optional_one_of(spec.volume_mode.as_deref(), &path.child("volumeMode"), VOLUME_MODES, errs);
    for (field, source) in [
        ("dataSource", spec.data_source.as_ref().map(|d| (&d.name, &d.kind, &d.api_group))),
        ("dataSourceRef", spec.data_source_ref.as_ref().map(|d| (&d.name, &d.kind, &d.api_group))),
    ] {
        let Some((name, kind, group)) = source else { continue };
        let p = path.child(field);
        if name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        }
        if kind.is_empty() {
            errs.push(FieldError::required(p.child("kind"), ""));
        }
        if group.as_deref().unwrap_or("").is_empty() && kind != "PersistentVolumeClaim" {
            errs.push(FieldError::invalid(
                &p,
                kind.as_str(),
                "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
            ));
        }
    }
}

pub(crate) fn claim(pvc: &PersistentVolumeClaim, errs: &mut Errors) {
    claim_spec(&pvc.spec.clone().unwrap_or_default(), &Path::new("spec"), errs);
}

/// Upstream `ValidatePersistentVolumeClaimUpdate`: binding may set `volumeName` once, a bound
/// claim may change its storage request, and the request may not drop to the capacity.
pub(crate) fn claim_update(old: &PersistentVolumeClaim, new: &PersistentVolumeClaim, errs: &mut Errors) {
    let old_spec = old.spec.clone().unwrap_or_default();
    let new_spec = new.spec.clone().unwrap_or_default();
    let mut old_clone = old_spec.clone();
    let mut new_clone = new_spec.clone();
    if old_spec.volume_name.as_deref().unwrap_or("").is_empty() {
        old_clone.volume_name = new_clone.volume_name.clone();
    }
    let beta_class = old.metadata.annotations.as_ref().and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"));
    if old_spec.storage_class_name.is_none()
        && let Some(class) = &new_spec.storage_class_name
        && beta_class.is_none_or(|b| b == class)
    {
        new_clone.storage_class_name = None;
    }
    let bound = new.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let old_storage =
        old_spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).cloned();
    if bound {
        if let Some(requests) = new_clone.resources.as_mut().and_then(|r| r.requests.as_mut()) {
            match &old_storage {
                Some(q) => requests.insert("storage".into(), q.clone()),
                None => requests.remove("storage"),
            };
        }
        if new_clone.volume_attributes_class_name.is_some() {
            new_clone.volume_attributes_class_name = old_clone.volume_attributes_class_name.clone();
        }
    }
    if new_clone != old_clone {
        errs.push(FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    let size = |spec: &PersistentVolumeClaimSpec| {
        spec.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| parse_quantity(&q.0).ok())
            .unwrap_or_default()
    };
    let capacity = old
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| parse_quantity(&q.0).ok())
        .unwrap_or_default();
    // 1.33 lets a claim recover from a failed expansion: it may shrink, but not to the capacity.
    if size(&new_spec) < size(&old_spec) && size(&new_spec) <= capacity {
        errs.push(FieldError::forbidden(
            "spec.resources.requests.storage",
            "field can not be less than status.capacity",
        ));
    }
    if old_spec.volume_mode != new_spec.volume_mode {
        // Upstream's path lacks the `spec.` prefix here.
        errs.push(FieldError::immutable("volumeMode", json(&new_spec.volume_mode)));
    }
}

/// Fields of a PersistentVolume spec that are not its volume source.
const PV_NON_SOURCE_FIELDS: &[&str] = &[
    "accessModes",
    "capacity",
    "claimRef",
    "mountOptions",
    "nodeAffinity",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "volumeAttributesClassName",
    "volumeMode",
];

/// Upstream `ValidatePersistentVolumeSpec`.
pub(crate) fn volume(pv: &PersistentVolume, errs: &mut Errors) {
    let spec = pv.spec.clone().unwrap_or_default();
    let path = Path::new("spec");
    let modes = spec.access_modes.as_deref().unwrap_or(&[]);
    if modes.is_empty() {
        errs.push(FieldError::required(path.child("accessModes"), ""));
    }
    for mode in modes {
        optional_one_of(Some(mode), &path.child("accessModes"), ACCESS_MODES, errs);
    }
    let capacity = spec.capacity.clone().unwrap_or_default();
    if capacity.is_empty() {
        errs.push(FieldError::required(path.child("capacity"), ""));
    }
    if !capacity.contains_key("storage") || capacity.len() > 1 {
        errs.push(FieldError::not_supported(path.child("capacity"), json(&capacity), &["storage"]));
    }
    for (name, q) in &capacity {
        let p = path.child("capacity").key(name);
        match parse_quantity(&q.0) {
            Ok(v) if v.nanos() > 0 => {}
            Ok(_) => errs.push(FieldError::invalid(&p, q.0.as_str(), "must be greater than zero")),
            Err(e) => errs.push(FieldError::invalid(&p, q.0.as_str(), e.to_string())),
        }
    }
    let reclaim = spec.persistent_volume_reclaim_policy.as_deref().filter(|p| !p.is_empty());
    if reclaim == Some("Recycle") {
        errs.push(FieldError::invalid(
            path.child("persistentVolumeReclaimPolicy").to_string(),
            "Recycle",
            "the Recycle reclaim policy is deprecated upstream and not supported: use Delete or Retain",
        ));
    } else {
        optional_one_of(reclaim, &path.child("persistentVolumeReclaimPolicy"), &["Delete", "Retain"], errs);
    }
    let sources = [
        ("hostPath", spec.host_path.is_some()),
        ("gcePersistentDisk", spec.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", spec.aws_elastic_block_store.is_some()),
        ("glusterfs", spec.glusterfs.is_some()),
        ("flocker", spec.flocker.is_some()),
        ("nfs", spec.nfs.is_some()),
        ("rbd", spec.rbd.is_some()),
        ("quobyte", spec.quobyte.is_some()),
        ("cephFS", spec.cephfs.is_some()),
        ("iscsi", spec.iscsi.is_some()),
        ("cinder", spec.cinder.is_some()),
        ("fc", spec.fc.is_some()),
        ("flexVolume", spec.flex_volume.is_some()),
        ("azureFile", spec.azure_file.is_some()),
        ("vsphereVolume", spec.vsphere_volume.is_some()),
        ("photonPersistentDisk", spec.photon_persistent_disk.is_some()),
        ("portworxVolume", spec.portworx_volume.is_some()),
        ("azureDisk", spec.azure_disk.is_some()),
        ("scaleIO", spec.scale_io.is_some()),
        ("local", spec.local.is_some()),
        ("storageos", spec.storageos.is_some()),
        ("csi", spec.csi.is_some()),
    ];
    let mut count = 0;
    for (name, present) in sources {
        if present {
            if count > 0 {
                errs.push(FieldError::forbidden(path.child(name), "may not specify more than 1 volume type"));
            }
            count += 1;
        }
    }
    if let Some(h) = &spec.host_path
        && h.path.is_empty()
    {
        errs.push(FieldError::required(path.child("hostPath").child("path"), ""));
    }
    if let Some(local) = &spec.local {
        if local.path.is_empty() {
            errs.push(FieldError::required(path.child("local").child("path"), ""));
        }
        if spec.node_affinity.is_none() {
            errs.push(FieldError::required(path.child("nodeAffinity"), "Local volume requires node affinity"));
        }
    }
    if count == 0 {
        errs.push(FieldError::required(&path, "must specify a volume type"));
    }
    if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        check(class, &path.child("storageClassName"), errs, dns1123_subdomain_errors);
    }
    optional_one_of(spec.volume_mode.as_deref(), &path.child("volumeMode"), VOLUME_MODES, errs);
}

/// Upstream `ValidatePersistentVolumeUpdate`: the volume source, volume mode and a set node
/// affinity never change. Works on the specs' JSON.
pub(crate) fn volume_update(old: &Value, new: &Value, errs: &mut Errors) {
    let source = |spec: &Value| -> Value {
        let mut s = spec.clone();
        if let Some(m) = s.as_object_mut() {
            m.retain(|k, _| !PV_NON_SOURCE_FIELDS.contains(&k.as_str()));
        }
        s
    };
    if source(old) != source(new) {
        errs.push(FieldError::forbidden(
            "spec.persistentvolumesource",
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    if old.get("volumeMode") != new.get("volumeMode") {
        errs.push(FieldError::immutable("volumeMode", new.get("volumeMode").cloned().unwrap_or(Value::Null)));
    }
    if let Some(affinity) = old.get("nodeAffinity")
        && Some(affinity) != new.get("nodeAffinity")
    {
        errs.push(FieldError::immutable("nodeAffinity", new.get("nodeAffinity").cloned().unwrap_or(Value::Null)));
    }
}

fn data_keys<'a>(keys: impl Iterator<Item = &'a String>, path: &Path, errs: &mut Errors) {
    for key in keys {
        for msg in config_key_errors(key) {
            errs.push(FieldError::invalid(path.key(key), key.as_str(), msg));
        }
    }
}

pub(crate) fn config_map(cm: &ConfigMap, errs: &mut Errors) {
    let data = Path::new("data");
    let binary = Path::new("binaryData");
    data_keys(cm.data.iter().flatten().map(|(k, _)| k), &data, errs);
    for key in cm.data.iter().flatten().map(|(k, _)| k) {
        if cm.binary_data.as_ref().is_some_and(|b| b.contains_key(key)) {
            errs.push(FieldError::invalid(data.key(key), key.as_str(), "duplicate of key present in binaryData"));
        }
    }
    data_keys(cm.binary_data.iter().flatten().map(|(k, _)| k), &binary, errs);
    let size = cm.data.iter().flatten().map(|(_, v)| v.len()).sum::<usize>()
        + cm.binary_data.iter().flatten().map(|(_, v)| v.0.len()).sum::<usize>();
    if size > MAX_DATA_BYTES {
        errs.push(FieldError::too_long("", "", MAX_DATA_BYTES));
    }
}

/// `immutable: true` freezes the data (and itself).
fn frozen<T: PartialEq>(
    old_immutable: Option<bool>,
    new_immutable: Option<bool>,
    data: &[(&str, &T, &T)],
    errs: &mut Errors,
) {
    if old_immutable != Some(true) {
        return;
    }
    if new_immutable != Some(true) {
        errs.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
    }
    for (field, old, new) in data {
        if old != new {
            errs.push(FieldError::forbidden(*field, "field is immutable when `immutable` is set"));
        }
    }
}

pub(crate) fn config_map_update(old: &ConfigMap, new: &ConfigMap, errs: &mut Errors) {
    frozen(old.immutable, new.immutable, &[("data", &old.data, &new.data)], errs);
    if old.immutable == Some(true) && old.binary_data != new.binary_data {
        errs.push(FieldError::forbidden("binaryData", "field is immutable when `immutable` is set"));
    }
}

pub(crate) fn secret(secret: &Secret, errs: &mut Errors) {
    let data = Path::new("data");
    data_keys(secret.data.iter().flatten().map(|(k, _)| k), &data, errs);
    let size: usize = secret.data.iter().flatten().map(|(_, v)| v.0.len()).sum();
    if size > MAX_DATA_BYTES {
        errs.push(FieldError::too_long(&data, "", MAX_DATA_BYTES));
    }
    let has = |key: &str| secret.data.as_ref().is_some_and(|d| d.contains_key(key));
    let required = |keys: &[&str], errs: &mut Errors| {
        for key in keys {
            errs.push(FieldError::required(data.key(key), ""));
        }
    };
    match secret.type_.as_deref().unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let named = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .is_some_and(|n| !n.is_empty());
            if !named {
                errs.push(FieldError::required(
                    Path::new("metadata").child("annotations").key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => required(&[".dockercfg"], errs),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => required(&[".dockerconfigjson"], errs),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => required(&["username", "password"], errs),
        "kubernetes.io/ssh-auth"
            if secret.data.as_ref().and_then(|d| d.get("ssh-privatekey")).is_none_or(|v| v.0.is_empty()) =>
        {
            required(&["ssh-privatekey"], errs)
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    required(&[key], errs);
                }
            }
        }
        _ => {}
    }
}

pub(crate) fn secret_update(old: &Secret, new: &Secret, errs: &mut Errors) {
    if old.type_ != new.type_ {
        errs.push(FieldError::immutable("type", new.type_.as_deref().unwrap_or("")));
    }
    frozen(old.immutable, new.immutable, &[("data", &old.data, &new.data)], errs);
}

pub(crate) fn namespace(ns: &Namespace, errs: &mut Errors) {
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.as_deref()).unwrap_or(&[]);
    meta::finalizers(finalizers, &Path::new("spec").child("finalizers"), errs);
}

pub(crate) fn node(node: &Node, errs: &mut Errors) {
    let mut seen = BTreeSet::new();
    for (i, taint) in node.spec.iter().flat_map(|s| s.taints.iter().flatten()).enumerate() {
        let p = Path::new("spec").child("taints").index(i);
        check(&taint.key, &p.child("key"), errs, qualified_name_errors);
        let value = taint.value.as_deref().unwrap_or("");
        let msgs = meta::label_value_errors(value);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(p.child("value"), value, msgs.join(";")));
        }
        required_one_of(
            Some(&taint.effect),
            &p.child("effect"),
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            errs,
        );
        if !seen.insert((taint.effect.as_str(), taint.key.as_str())) {
            errs.push(FieldError::duplicate(&p, json(taint)));
        }
    }
}

/// Upstream `ValidateStorageClass`.
pub(crate) fn storage_class(sc: &StorageClass, errs: &mut Errors) {
    if sc.provisioner.is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    } else {
        for msg in qualified_name_errors(&sc.provisioner.to_lowercase()) {
            errs.push(FieldError::invalid("provisioner", sc.provisioner.as_str(), msg));
        }
    }
    optional_one_of(
        sc.reclaim_policy.as_deref().filter(|p| !p.is_empty()),
        &Path::new("reclaimPolicy"),
        &["Delete", "Retain"],
        errs,
    );
    required_one_of(
        sc.volume_binding_mode.as_deref(),
        &Path::new("volumeBindingMode"),
        &["Immediate", "WaitForFirstConsumer"],
        errs,
    );
}

/// Upstream `ValidateStorageClassUpdate`.
pub(crate) fn storage_class_update(old: &StorageClass, new: &StorageClass, errs: &mut Errors) {
    if old.parameters != new.parameters {
        errs.push(FieldError::forbidden("parameters", "updates to parameters are forbidden."));
    }
    if old.provisioner != new.provisioner {
        errs.push(FieldError::forbidden("provisioner", "updates to provisioner are forbidden."));
    }
    if old.reclaim_policy != new.reclaim_policy {
        errs.push(FieldError::forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."));
    }
    if old.volume_binding_mode != new.volume_binding_mode {
        errs.push(FieldError::immutable("volumeBindingMode", json(&new.volume_binding_mode)));
    }
}

/// Upstream `ValidateEndpointSlice` (the parts a controller can get wrong).
pub(crate) fn endpoint_slice(slice: &EndpointSlice, errs: &mut Errors) {
    required_one_of(Some(&slice.address_type), &Path::new("addressType"), &["FQDN", "IPv4", "IPv6"], errs);
    for (i, e) in slice.endpoints.iter().enumerate() {
        let p = Path::new("endpoints").index(i).child("addresses");
        if e.addresses.is_empty() {
            errs.push(FieldError::required(&p, "must contain at least 1 address"));
        } else if e.addresses.len() > 100 {
            errs.push(FieldError::invalid(&p, json(&e.addresses), "must contain at most 100 addresses"));
        }
        if matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            for (j, a) in e.addresses.iter().enumerate() {
                valid_ip(a, &p.index(j), errs);
            }
        }
        if let Some(host) = e.hostname.as_deref() {
            check(host, &Path::new("endpoints").index(i).child("hostname"), errs, dns1123_label_errors);
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in slice.ports.iter().flatten().enumerate() {
        let p = Path::new("ports").index(i);
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            check(name, &p.child("name"), errs, dns1123_label_errors);
        }
        if !names.insert(name) {
            errs.push(FieldError::duplicate(p.child("name"), name));
        }
        required_one_of(port.protocol.as_deref(), &p.child("protocol"), PROTOCOLS, errs);
        if let Some(n) = port.port {
            port_num(n, &p.child("port"), errs);
        }
        if let Some(app) = &port.app_protocol {
            check(app, &p.child("appProtocol"), errs, qualified_name_errors);
        }
    }
}

pub(crate) fn endpoint_slice_update(old: &EndpointSlice, new: &EndpointSlice, errs: &mut Errors) {
    if old.address_type != new.address_type {
        errs.push(FieldError::immutable("addressType", new.address_type.as_str()));
    }
}

/// kube-aggregator's `ValidateAPIService`: the name is `<version>.<group>`, a version is given,
/// the priorities are in range, and a local one (no service) carries no TLS settings.
pub(crate) fn api_service(
    service: &k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
    errs: &mut Errors,
) {
    let Some(spec) = &service.spec else {
        errs.push(FieldError::required("spec", ""));
        return;
    };
    let path = Path::new("spec");
    let group = spec.group.as_deref().unwrap_or_default();
    let version = spec.version.as_deref().unwrap_or_default();
    if version.is_empty() {
        errs.push(FieldError::required(path.child("version"), ""));
    }
    let expected = format!("{version}.{group}");
    let name = service.metadata.name.as_deref().unwrap_or_default();
    if name != expected {
        errs.push(FieldError::invalid("metadata.name", name, format!("must be {expected}")));
    }
    if !(1..=20000).contains(&spec.group_priority_minimum) {
        errs.push(FieldError::invalid(
            path.child("groupPriorityMinimum"),
            spec.group_priority_minimum,
            "must be positive and less than 20000",
        ));
    }
    if !(1..=1000).contains(&spec.version_priority) {
        errs.push(FieldError::invalid(
            path.child("versionPriority"),
            spec.version_priority,
            "must be positive and less than 1000",
        ));
    }
    if spec.service.is_none() {
        if spec.ca_bundle.as_ref().is_some_and(|b| !b.0.is_empty()) {
            errs.push(FieldError::invalid(path.child("caBundle"), "", "local APIServices may not have a caBundle"));
        }
        if spec.insecure_skip_tls_verify == Some(true) {
            errs.push(FieldError::invalid(
                path.child("insecureSkipTLSVerify"),
                true,
                "local APIServices may not have insecureSkipTLSVerify",
            ));
        }
    }
}

pub(crate) fn lease(lease: &Lease, errs: &mut Errors) {
    let Some(spec) = &lease.spec else { return };
    let path = Path::new("spec");
    if let Some(d) = spec.lease_duration_seconds
        && d <= 0
    {
        errs.push(FieldError::invalid(path.child("leaseDurationSeconds"), d, "must be greater than 0"));
    }
    if let Some(t) = spec.lease_transitions {
        non_negative(t, &path.child("leaseTransitions"), errs);
    }
}
