//! apps/v1 rules: StatefulSet, Deployment and ReplicaSet specs, and what updates may change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use serde_json::Value;

use super::{labels, non_negative, one_of, pod, str_at};
use crate::FieldError;
use crate::names::{DNS1123_SUBDOMAIN_MSG, is_dns1123_subdomain};
use crate::selector::LabelSelector;

/// `spec.selector` must be set, non-empty, valid, and match the template's labels.
fn selector_and_template(spec: &Value, what: &str, errs: &mut Vec<FieldError>) {
    let template_labels = crate::selector::labels_of(spec.get("template").unwrap_or(&Value::Null));
    match spec.get("selector") {
        None | Some(Value::Null) => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => match serde_json::from_value::<metav1::LabelSelector>(sel.clone()) {
            Err(e) => errs.push(FieldError::invalid("spec.selector", sel.clone(), e.to_string())),
            Ok(typed) => match LabelSelector::from_k8s(&typed) {
                Err(e) => errs.push(FieldError::invalid("spec.selector", sel.clone(), e.to_string())),
                Ok(s) if s.is_empty() => errs.push(FieldError::invalid(
                    "spec.selector",
                    sel.clone(),
                    format!("empty selector is invalid for {what}"),
                )),
                Ok(s) => {
                    if !s.matches(&template_labels) {
                        let shown: serde_json::Map<String, Value> =
                            template_labels.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
                        errs.push(FieldError::invalid(
                            "spec.template.metadata.labels",
                            Value::Object(shown),
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
            },
        },
    }
    labels(spec.pointer("/template/metadata/labels"), "spec.template.metadata.labels", errs);
    let claims: Vec<&str> = spec
        .get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| str_at(t, "/metadata/name"))
        .collect();
    match spec.pointer("/template/spec") {
        Some(pod_spec) => pod::pod_spec(pod_spec, "spec.template.spec", &claims, errs),
        None => errs.push(FieldError::required("spec.template.spec.containers", "")),
    }
}

fn replicas(spec: &Value, errs: &mut Vec<FieldError>) {
    non_negative(spec, "/replicas", "spec.replicas", errs);
    non_negative(spec, "/minReadySeconds", "spec.minReadySeconds", errs);
    non_negative(spec, "/revisionHistoryLimit", "spec.revisionHistoryLimit", errs);
}

/// An int ≥ `min` or a percentage string like `25%`.
fn int_or_percent(v: Option<&Value>, field: &str, min: i64, errs: &mut Vec<FieldError>) {
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            if n.as_i64().is_none_or(|n| n < min) {
                let detail =
                    if min > 0 { "must be greater than or equal to 1" } else { "must be greater than or equal to 0" };
                errs.push(FieldError::invalid(field, Value::Number(n.clone()), detail));
            }
        }
        Some(Value::String(s)) => {
            let pct = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok());
            match pct {
                Some(p) if (0..=100).contains(&p) && !(min > 0 && p == 0) => {}
                Some(_) => errs.push(FieldError::invalid(field, s.as_str(), "must not be greater than 100%")),
                None => errs.push(FieldError::invalid(field, s.as_str(), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")),
            }
        }
        Some(other) => errs.push(FieldError::invalid(field, other.clone(), "must be an integer or percentage")),
    }
}

pub(crate) fn stateful_set(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(spec) = obj.get("spec") else {
        errs.push(FieldError::required("spec", ""));
        return;
    };
    selector_and_template(spec, "statefulset", errs);
    replicas(spec, errs);
    non_negative(spec, "/ordinals/start", "spec.ordinals.start", errs);
    one_of(spec, "/podManagementPolicy", "spec.podManagementPolicy", &["OrderedReady", "Parallel"], true, errs);
    one_of(spec, "/updateStrategy/type", "spec.updateStrategy.type", &["RollingUpdate", "OnDelete"], true, errs);
    match str_at(spec, "/updateStrategy/type") {
        "OnDelete" if spec.pointer("/updateStrategy/rollingUpdate").is_some_and(|r| !r.is_null()) => {
            errs.push(FieldError::invalid(
                "spec.updateStrategy.rollingUpdate",
                spec.pointer("/updateStrategy/rollingUpdate").cloned().unwrap_or(Value::Null),
                "only allowed for updateStrategy 'RollingUpdate'",
            ));
        }
        "RollingUpdate" => {
            non_negative(
                spec,
                "/updateStrategy/rollingUpdate/partition",
                "spec.updateStrategy.rollingUpdate.partition",
                errs,
            );
            int_or_percent(
                spec.pointer("/updateStrategy/rollingUpdate/maxUnavailable"),
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                1,
                errs,
            );
        }
        _ => {}
    }
    for (field, pointer) in [
        ("spec.persistentVolumeClaimRetentionPolicy.whenDeleted", "/persistentVolumeClaimRetentionPolicy/whenDeleted"),
        ("spec.persistentVolumeClaimRetentionPolicy.whenScaled", "/persistentVolumeClaimRetentionPolicy/whenScaled"),
    ] {
        one_of(spec, pointer, field, &["Retain", "Delete"], false, errs);
    }
    let restart = str_at(spec, "/template/spec/restartPolicy");
    if !restart.is_empty() && restart != "Always" {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", restart, &["Always"]));
    }
    let service = str_at(spec, "/serviceName");
    if !service.is_empty() && !crate::names::is_dns1123_label(service) {
        errs.push(FieldError::invalid("spec.serviceName", service, crate::names::DNS1123_LABEL_MSG));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, t) in spec.get("volumeClaimTemplates").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let name = str_at(t, "/metadata/name");
        let field = format!("spec.volumeClaimTemplates[{i}].metadata.name");
        if name.is_empty() {
            errs.push(FieldError::required(field, ""));
        } else if !is_dns1123_subdomain(name) {
            errs.push(FieldError::invalid(field, name, DNS1123_SUBDOMAIN_MSG));
        } else if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(field, name));
        }
        super::core::claim_spec(
            t.get("spec").unwrap_or(&Value::Null),
            &format!("spec.volumeClaimTemplates[{i}].spec"),
            errs,
        );
    }
}

/// Upstream: only these StatefulSet spec fields may change after creation.
const STS_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

pub(crate) fn stateful_set_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let frozen = |v: &Value| -> serde_json::Map<String, Value> {
        v.get("spec")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !STS_MUTABLE.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    if frozen(old) != frozen(new) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

pub(crate) fn selector_immutable(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if old.pointer("/spec/selector") != new.pointer("/spec/selector") {
        errs.push(FieldError::immutable(
            "spec.selector",
            new.pointer("/spec/selector").cloned().unwrap_or(Value::Null),
        ));
    }
}

pub(crate) fn deployment(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(spec) = obj.get("spec") else {
        errs.push(FieldError::required("spec", ""));
        return;
    };
    selector_and_template(spec, "deployment", errs);
    replicas(spec, errs);
    one_of(spec, "/strategy/type", "spec.strategy.type", &["Recreate", "RollingUpdate"], false, errs);
    if str_at(spec, "/strategy/type") == "RollingUpdate" {
        int_or_percent(
            spec.pointer("/strategy/rollingUpdate/maxUnavailable"),
            "spec.strategy.rollingUpdate.maxUnavailable",
            0,
            errs,
        );
        int_or_percent(
            spec.pointer("/strategy/rollingUpdate/maxSurge"),
            "spec.strategy.rollingUpdate.maxSurge",
            0,
            errs,
        );
    }
    non_negative(spec, "/progressDeadlineSeconds", "spec.progressDeadlineSeconds", errs);
    let restart = str_at(spec, "/template/spec/restartPolicy");
    if !restart.is_empty() && restart != "Always" {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", restart, &["Always"]));
    }
}

pub(crate) fn replica_set(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(spec) = obj.get("spec") else {
        errs.push(FieldError::required("spec", ""));
        return;
    };
    selector_and_template(spec, "replicaset", errs);
    replicas(spec, errs);
}
