//! Pod spec rules (shared by Pods and every pod template) and what a Pod update may change.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{non_negative, one_of, str_at};
use crate::FieldError;
use crate::names::{DNS1123_LABEL_MSG, is_dns1123_label};

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

/// `claim_volumes`: volume names provided from outside the spec (a StatefulSet's claim templates).
pub(crate) fn pod_spec(spec: &Value, path: &str, claim_volumes: &[&str], errs: &mut Vec<FieldError>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => errs.push(FieldError::required(format!("{path}.containers"), "")),
        Some(c) if c.is_empty() => errs.push(FieldError::required(format!("{path}.containers"), "")),
        Some(_) => {}
    }
    let mut names = BTreeSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec.get(list).and_then(Value::as_array).into_iter().flatten().enumerate() {
            container(c, &format!("{path}.{list}[{i}]"), &mut names, errs);
        }
    }
    one_of(spec, "/restartPolicy", &format!("{path}.restartPolicy"), &["Always", "OnFailure", "Never"], false, errs);
    one_of(
        spec,
        "/dnsPolicy",
        &format!("{path}.dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        false,
        errs,
    );
    non_negative(spec, "/terminationGracePeriodSeconds", &format!("{path}.terminationGracePeriodSeconds"), errs);
    let mut volumes = BTreeSet::new();
    for (i, v) in spec.get("volumes").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let name = str_at(v, "/name");
        let field = format!("{path}.volumes[{i}].name");
        if name.is_empty() {
            errs.push(FieldError::required(field, ""));
        } else if !is_dns1123_label(name) {
            errs.push(FieldError::invalid(field, name, DNS1123_LABEL_MSG));
        } else if !volumes.insert(name.to_string()) {
            errs.push(FieldError::duplicate(field, name));
        }
    }
    for list in ["initContainers", "containers"] {
        for (i, c) in spec.get(list).and_then(Value::as_array).into_iter().flatten().enumerate() {
            for (j, m) in c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let name = str_at(m, "/name");
                if !name.is_empty() && !volumes.contains(name) && !claim_volumes.contains(&name) {
                    errs.push(FieldError {
                        error_type: crate::FieldErrorType::Invalid,
                        field: format!("{path}.{list}[{i}].volumeMounts[{j}].name"),
                        bad_value: Some(Value::from(name)),
                        detail: "Not found".into(),
                    });
                }
                if str_at(m, "/mountPath").is_empty() {
                    errs.push(FieldError::required(format!("{path}.{list}[{i}].volumeMounts[{j}].mountPath"), ""));
                }
            }
        }
    }
    let hostname = str_at(spec, "/hostname");
    if !hostname.is_empty() && !is_dns1123_label(hostname) {
        errs.push(FieldError::invalid(format!("{path}.hostname"), hostname, DNS1123_LABEL_MSG));
    }
    let subdomain = str_at(spec, "/subdomain");
    if !subdomain.is_empty() && !is_dns1123_label(subdomain) {
        errs.push(FieldError::invalid(format!("{path}.subdomain"), subdomain, DNS1123_LABEL_MSG));
    }
}

fn container(c: &Value, path: &str, names: &mut BTreeSet<String>, errs: &mut Vec<FieldError>) {
    let name = str_at(c, "/name");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !is_dns1123_label(name) {
        errs.push(FieldError::invalid(format!("{path}.name"), name, DNS1123_LABEL_MSG));
    } else if !names.insert(name.to_string()) {
        errs.push(FieldError::duplicate(format!("{path}.name"), name));
    }
    if str_at(c, "/image").trim().is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    one_of(
        c,
        "/imagePullPolicy",
        &format!("{path}.imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
        false,
        errs,
    );
    let mut port_names = BTreeSet::new();
    for (i, p) in c.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let field = format!("{path}.ports[{i}]");
        match p.get("containerPort").and_then(Value::as_i64) {
            None => errs.push(FieldError::required(format!("{field}.containerPort"), "")),
            Some(n) if !(1..=65535).contains(&n) => errs.push(FieldError::invalid(
                format!("{field}.containerPort"),
                n,
                "must be between 1 and 65535, inclusive",
            )),
            _ => {}
        }
        if let Some(hp) = p.get("hostPort").and_then(Value::as_i64)
            && !(0..=65535).contains(&hp)
        {
            errs.push(FieldError::invalid(format!("{field}.hostPort"), hp, "must be between 1 and 65535, inclusive"));
        }
        one_of(p, "/protocol", &format!("{field}.protocol"), PROTOCOLS, false, errs);
        let port_name = str_at(p, "/name");
        if !port_name.is_empty() {
            if port_name.len() > 15
                || !is_dns1123_label(port_name)
                || !port_name.chars().any(|c| c.is_ascii_lowercase())
            {
                errs.push(FieldError::invalid(
                    format!("{field}.name"),
                    port_name,
                    "must be no more than 15 characters and contain only lowercase letters, digits and '-', with at least one letter",
                ));
            } else if !port_names.insert(port_name.to_string()) {
                errs.push(FieldError::duplicate(format!("{field}.name"), port_name));
            }
        }
    }
    for (i, e) in c.get("env").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if str_at(e, "/name").is_empty() {
            errs.push(FieldError::required(format!("{path}.env[{i}].name"), ""));
        }
    }
}

/// Upstream's rule: a Pod's spec may only change container images, `activeDeadlineSeconds`,
/// additions to tolerations and `terminationGracePeriodSeconds`.
pub(crate) fn pod_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let strip = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(m) = c.as_object_mut() {
                        m.remove("image");
                    }
                }
            }
        }
        if let Some(m) = spec.as_object_mut() {
            m.remove("activeDeadlineSeconds");
            m.remove("tolerations");
            m.remove("terminationGracePeriodSeconds");
        }
        spec
    };
    if strip(old) != strip(new) {
        errs.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}
