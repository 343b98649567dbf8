//! core/v1 and storage/v1 rules: Services, claims, volumes, config data, storage classes.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{one_of, str_at};
use crate::FieldError;
use crate::quantity::parse_quantity;

const ACCESS_MODES: &[&str] = &["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"];

pub(crate) fn service(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    one_of(spec, "/type", "spec.type", &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"], false, errs);
    one_of(spec, "/sessionAffinity", "spec.sessionAffinity", &["ClientIP", "None"], false, errs);
    let kind = str_at(spec, "/type");
    let headless = str_at(spec, "/clusterIP") == "None";
    let ports: &[Value] = spec.get("ports").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    if ports.is_empty() && kind != "ExternalName" && !headless {
        errs.push(FieldError::required("spec.ports", ""));
    }
    if kind == "ExternalName" && str_at(spec, "/externalName").is_empty() {
        errs.push(FieldError::required("spec.externalName", ""));
    }
    if headless && (kind == "NodePort" || kind == "LoadBalancer") {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            "None",
            format!("may not be set to 'None' for {kind} services"),
        ));
    }
    let mut names = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let name = str_at(p, "/name");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(format!("{field}.name"), ""));
        } else if !name.is_empty() && !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(format!("{field}.name"), name));
        } else if !name.is_empty() && !crate::names::is_dns1123_label(name) {
            errs.push(FieldError::invalid(format!("{field}.name"), name, crate::names::DNS1123_LABEL_MSG));
        }
        match p.get("port").and_then(Value::as_i64) {
            None => errs.push(FieldError::required(format!("{field}.port"), "")),
            Some(n) if !(1..=65535).contains(&n) => {
                errs.push(FieldError::invalid(format!("{field}.port"), n, "must be between 1 and 65535, inclusive"))
            }
            _ => {}
        }
        one_of(p, "/protocol", &format!("{field}.protocol"), &["TCP", "UDP", "SCTP"], false, errs);
        match p.get("targetPort") {
            Some(Value::Number(n)) if n.as_i64().is_none_or(|n| !(1..=65535).contains(&n)) => {
                errs.push(FieldError::invalid(
                    format!("{field}.targetPort"),
                    Value::Number(n.clone()),
                    "must be between 1 and 65535, inclusive",
                ))
            }
            Some(Value::String(s)) if !s.is_empty() && (s.len() > 15 || !crate::names::is_dns1123_label(s)) => errs
                .push(FieldError::invalid(
                    format!("{field}.targetPort"),
                    s.as_str(),
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                )),
            _ => {}
        }
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64).filter(|n| *n != 0) {
            if kind != "NodePort" && kind != "LoadBalancer" {
                errs.push(FieldError::forbidden(
                    format!("{field}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else if !node_ports.insert((np, str_at(p, "/protocol").to_string())) {
                errs.push(FieldError::duplicate(format!("{field}.nodePort"), np));
            }
        }
    }
    if let Some(selector) = spec.get("selector") {
        super::labels(Some(selector), "spec.selector", errs);
    }
}

pub(crate) fn service_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let old_ip = str_at(old, "/spec/clusterIP");
    let new_ip = str_at(new, "/spec/clusterIP");
    let was_external = str_at(old, "/spec/type") == "ExternalName";
    let is_external = str_at(new, "/spec/type") == "ExternalName";
    if !was_external && !is_external && !old_ip.is_empty() && old_ip != new_ip {
        errs.push(FieldError::invalid("spec.clusterIPs[0]", Value::from(vec![new_ip]), "may not change once set"));
    }
}

pub(crate) fn claim_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let modes = spec.get("accessModes").and_then(Value::as_array);
    match modes {
        None => errs.push(FieldError::required(format!("{path}.accessModes"), "at least 1 access mode is required")),
        Some(m) if m.is_empty() => {
            errs.push(FieldError::required(format!("{path}.accessModes"), "at least 1 access mode is required"))
        }
        Some(m) => {
            for mode in m {
                let s = mode.as_str().unwrap_or("");
                if !ACCESS_MODES.contains(&s) {
                    errs.push(FieldError::not_supported(format!("{path}.accessModes"), s, ACCESS_MODES));
                }
            }
        }
    }
    match spec.pointer("/resources/requests/storage") {
        None => errs.push(FieldError::required(format!("{path}.resources[storage]"), "")),
        Some(q) => match q.as_str().map(parse_quantity) {
            Some(Ok(q)) if q.millis() > 0 => {}
            Some(Ok(_)) => errs.push(FieldError::invalid(
                format!("{path}.resources[storage]"),
                q.clone(),
                "must be greater than zero",
            )),
            _ => errs.push(FieldError::invalid(
                format!("{path}.resources.requests[storage]"),
                q.clone(),
                "must be a valid quantity",
            )),
        },
    }
    one_of(spec, "/volumeMode", &format!("{path}.volumeMode"), &["Block", "Filesystem"], false, errs);
}

pub(crate) fn claim_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let strip = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(m) = spec.as_object_mut() {
            if let Some(r) = m.get_mut("resources").and_then(Value::as_object_mut) {
                r.remove("requests");
            }
            m.remove("volumeAttributesClassName");
            // Binding sets the volume name once.
            if str_at(old, "/spec/volumeName").is_empty() {
                m.remove("volumeName");
            }
        }
        spec
    };
    if strip(old) != strip(new) {
        errs.push(FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    let size = |v: &Value| {
        v.pointer("/spec/resources/requests/storage").and_then(Value::as_str).and_then(|s| parse_quantity(s).ok())
    };
    if let (Some(before), Some(after)) = (size(old), size(new))
        && after < before
    {
        errs.push(FieldError::forbidden(
            "spec.resources.requests.storage",
            "field can not be less than status.capacity",
        ));
    }
}

const VOLUME_SOURCES: &[&str] =
    &["hostPath", "local", "nfs", "csi", "iscsi", "fc", "cephfs", "rbd", "glusterfs", "flexVolume"];

pub(crate) fn volume(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    match spec.pointer("/capacity/storage") {
        None => errs.push(FieldError::required("spec.capacity", "")),
        Some(q) => {
            if q.as_str().map(parse_quantity).is_none_or(|r| r.is_err()) {
                errs.push(FieldError::invalid("spec.capacity[storage]", q.clone(), "must be a valid quantity"));
            }
        }
    }
    if spec.get("accessModes").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        errs.push(FieldError::required("spec.accessModes", ""));
    }
    let sources = VOLUME_SOURCES.iter().filter(|s| spec.get(**s).is_some_and(|v| !v.is_null())).count();
    if sources == 0 {
        errs.push(FieldError::required("spec", "must specify a volume type"));
    } else if sources > 1 {
        errs.push(FieldError::forbidden("spec", "may not specify more than 1 volume type"));
    }
    if spec.get("hostPath").is_some() && str_at(spec, "/hostPath/path").is_empty() {
        errs.push(FieldError::required("spec.hostPath.path", ""));
    }
    one_of(
        spec,
        "/persistentVolumeReclaimPolicy",
        "spec.persistentVolumeReclaimPolicy",
        &["Delete", "Recycle", "Retain"],
        false,
        errs,
    );
}

fn is_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

pub(crate) fn data_keys(obj: &Value, errs: &mut Vec<FieldError>) {
    for field in ["data", "binaryData", "stringData"] {
        for key in obj.get(field).and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
            if !is_config_key(key) {
                errs.push(FieldError::invalid(
                    field,
                    key.as_str(),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
        }
    }
}

pub(crate) fn storage_class_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    for field in ["provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"] {
        if old.get(field) != new.get(field) {
            errs.push(FieldError::forbidden(field, "updates to this field are forbidden"));
        }
    }
}
