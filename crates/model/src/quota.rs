//! Namespace resource policy as kube-apiserver's `LimitRanger` and `ResourceQuota` admission
//! plugins decide it: a LimitRange's container defaults and its min/max/ratio checks for new
//! pods (and claims), what an object uses of a ResourceQuota (object counts, compute requests and
//! limits, claim storage), and whether a new object still fits every quota in its namespace.
//! Quota scopes and scope selectors are not implemented (README).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, Pod, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde_json::Value;

use crate::quantity::{Quantity, parse_quantity};

/// Resource name → amount.
pub type Usage = BTreeMap<String, Quantity>;

/// A quantity as users write it: milli-units (`500m`), binary multiples (`1Gi`, `1536Mi`) for
/// whole values that are multiples of 1024, else the number.
pub fn show(q: Quantity) -> String {
    if q.millis() % 1000 != 0 || q.has_sub_milli_precision() {
        return q.to_string();
    }
    let mut v = q.value();
    let mut unit = 0;
    const UNITS: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    while v >= 1024 && v % 1024 == 0 && unit + 1 < UNITS.len() {
        v /= 1024;
        unit += 1;
    }
    format!("{v}{}", UNITS[unit])
}

fn amount(q: &K8sQuantity) -> Quantity {
    parse_quantity(&q.0).unwrap_or(Quantity::from_units(0))
}

fn list(map: &Option<BTreeMap<String, K8sQuantity>>) -> Usage {
    map.iter().flatten().map(|(k, v)| (k.clone(), amount(v))).collect()
}

/// The compute resources a container sets: (requests, limits).
fn container_resources(c: &k8s_openapi::api::core::v1::Container) -> (Usage, Usage) {
    let r = c.resources.clone().unwrap_or_default();
    (list(&r.requests), list(&r.limits))
}

/// What a LimitRange adds to a new pod's containers: for each container (by list and index),
/// the requests and limits it lacks, from the `Container` items' `defaultRequest` and `default`.
pub type Defaults = Vec<(&'static str, usize, Usage, Usage)>;

/// The LimitRanger's decision for a new pod: the defaults to write, or why the pod is forbidden
/// (every violation, in upstream's words, joined as upstream joins them).
pub fn limit_pod(pod: &Pod, ranges: &[LimitRange]) -> Result<Defaults, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let lists: [(&'static str, Vec<k8s_openapi::api::core::v1::Container>); 2] =
        [("initContainers", spec.init_containers.clone().unwrap_or_default()), ("containers", spec.containers.clone())];
    let items: Vec<&k8s_openapi::api::core::v1::LimitRangeItem> =
        ranges.iter().filter_map(|r| r.spec.as_ref()).flat_map(|s| s.limits.iter()).collect();
    let mut defaults: Defaults = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let (mut pod_requests, mut pod_limits) = (Usage::new(), Usage::new());
    for (list_name, containers) in &lists {
        for (i, c) in containers.iter().enumerate() {
            let (mut requests, mut limits) = container_resources(c);
            let (mut add_requests, mut add_limits) = (Usage::new(), Usage::new());
            for item in items.iter().filter(|i| i.type_ == "Container") {
                for (k, v) in list(&item.default) {
                    if let std::collections::btree_map::Entry::Vacant(slot) = limits.entry(k.clone()) {
                        slot.insert(v);
                        add_limits.insert(k, v);
                    }
                }
                for (k, v) in list(&item.default_request) {
                    if let std::collections::btree_map::Entry::Vacant(slot) = requests.entry(k.clone()) {
                        slot.insert(v);
                        add_requests.insert(k, v);
                    }
                }
            }
            for item in items.iter().filter(|i| i.type_ == "Container") {
                check(item, "Container", &requests, &limits, &mut errors);
            }
            if !add_requests.is_empty() || !add_limits.is_empty() {
                defaults.push((list_name, i, add_requests, add_limits));
            }
            if *list_name == "containers" {
                for (k, v) in requests {
                    let sum = pod_requests.get(&k).copied().unwrap_or(Quantity::from_units(0));
                    pod_requests.insert(k, Quantity::from_nanos(sum.nanos() + v.nanos()));
                }
                for (k, v) in limits {
                    let sum = pod_limits.get(&k).copied().unwrap_or(Quantity::from_units(0));
                    pod_limits.insert(k, Quantity::from_nanos(sum.nanos() + v.nanos()));
                }
            }
        }
    }
    for item in items.iter().filter(|i| i.type_ == "Pod") {
        check(item, "Pod", &pod_requests, &pod_limits, &mut errors);
    }
    if errors.is_empty() { Ok(defaults) } else { Err(format!("[{}]", errors.join(", "))) }
}

/// A claim's storage request against the `PersistentVolumeClaim` items.
pub fn limit_claim(
    claim: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
    ranges: &[LimitRange],
) -> Result<(), String> {
    let resources = claim.spec.as_ref().and_then(|s| s.resources.clone()).unwrap_or_default();
    let (requests, limits) = (list(&resources.requests), list(&resources.limits));
    let mut errors = Vec::new();
    for item in ranges.iter().filter_map(|r| r.spec.as_ref()).flat_map(|s| s.limits.iter()) {
        if item.type_ == "PersistentVolumeClaim" {
            check(item, "PersistentVolumeClaim", &requests, &limits, &mut errors);
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(format!("[{}]", errors.join(", "))) }
}

/// Upstream's min, max and ratio checks of one item (`minConstraint`, `maxConstraint`,
/// `limitRequestRatioConstraint`), their messages.
fn check(
    item: &k8s_openapi::api::core::v1::LimitRangeItem,
    what: &str,
    requests: &Usage,
    limits: &Usage,
    errors: &mut Vec<String>,
) {
    for (k, min) in list(&item.min) {
        match requests.get(&k) {
            None => errors.push(format!("minimum {k} usage per {what} is {}.  No request is specified", show(min))),
            Some(r) if r.nanos() < min.nanos() => {
                errors.push(format!("minimum {k} usage per {what} is {}, but request is {}", show(min), show(*r)))
            }
            Some(_) => {}
        }
        if let Some(l) = limits.get(&k)
            && l.nanos() < min.nanos()
        {
            errors.push(format!("minimum {k} usage per {what} is {}, but limit is {}", show(min), show(*l)));
        }
    }
    for (k, max) in list(&item.max) {
        match limits.get(&k) {
            None => errors.push(format!("maximum {k} usage per {what} is {}.  No limit is specified", show(max))),
            Some(l) if l.nanos() > max.nanos() => {
                errors.push(format!("maximum {k} usage per {what} is {}, but limit is {}", show(max), show(*l)))
            }
            Some(_) => {}
        }
        if let Some(r) = requests.get(&k)
            && r.nanos() > max.nanos()
        {
            errors.push(format!("maximum {k} usage per {what} is {}, but request is {}", show(max), show(*r)));
        }
    }
    for (k, ratio) in list(&item.max_limit_request_ratio) {
        if let (Some(r), Some(l)) = (requests.get(&k), limits.get(&k))
            && r.nanos() > 0
        {
            let actual = l.nanos() as f64 / r.nanos() as f64;
            if actual > ratio.nanos() as f64 / 1e9 {
                errors.push(format!(
                    "{k} max limit to request ratio per {what} is {}, but provided ratio is {actual:.6}",
                    show(ratio)
                ));
            }
        }
    }
}

/// What one object uses of a quota: `count/<resource>[.<group>]` and, for core kinds, the
/// short names (`pods`, `services`, `configmaps`, `secrets`, `persistentvolumeclaims`,
/// `replicationcontrollers`, `resourcequotas`); a pod's compute requests and limits
/// (`requests.cpu`, `cpu`, `limits.memory`, …; pods that finished use nothing); a claim's
/// `requests.storage`; a Service's node ports and load balancer.
pub fn usage(group: &str, plural: &str, obj: &Value) -> Usage {
    let mut out = Usage::new();
    let one = Quantity::from_units(1);
    out.insert(if group.is_empty() { format!("count/{plural}") } else { format!("count/{plural}.{group}") }, one);
    if !group.is_empty() {
        return out;
    }
    match plural {
        "pods" => {
            let phase = obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
            if phase == "Succeeded" || phase == "Failed" {
                return Usage::new();
            }
            out.insert("pods".into(), one);
            let Ok(pod) = serde_json::from_value::<Pod>(obj.clone()) else { return out };
            for c in pod.spec.map(|s| s.containers).unwrap_or_default() {
                let (requests, limits) = container_resources(&c);
                for (prefix, values) in [("requests.", requests.clone()), ("", requests), ("limits.", limits)] {
                    for (k, v) in values {
                        let key = format!("{prefix}{k}");
                        let sum = out.get(&key).copied().unwrap_or(Quantity::from_units(0));
                        out.insert(key, Quantity::from_nanos(sum.nanos() + v.nanos()));
                    }
                }
            }
        }
        "persistentvolumeclaims" => {
            out.insert(plural.into(), one);
            if let Some(s) = obj.pointer("/spec/resources/requests/storage").and_then(Value::as_str)
                && let Ok(q) = parse_quantity(s)
            {
                out.insert("requests.storage".into(), q);
            }
        }
        "services" => {
            out.insert(plural.into(), one);
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|p| p.iter().filter(|p| p.get("nodePort").is_some()).count())
                .unwrap_or(0);
            if ports > 0 {
                out.insert("services.nodeports".into(), Quantity::from_units(ports as i128));
            }
            if obj.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer") {
                out.insert("services.loadbalancers".into(), one);
            }
        }
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => {
            out.insert(plural.into(), one);
        }
        _ => {}
    }
    out
}

/// The kinds whose objects a quota's hard resources count, as (group, plural).
pub fn counted_kinds(quota: &ResourceQuota) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for key in quota.spec.as_ref().and_then(|s| s.hard.as_ref()).into_iter().flat_map(|h| h.keys()) {
        let kind = if let Some(rest) = key.strip_prefix("count/") {
            match rest.split_once('.') {
                Some((plural, group)) => (group.to_string(), plural.to_string()),
                None => (String::new(), rest.to_string()),
            }
        } else {
            let plural = match key.as_str() {
                "pods" | "cpu" | "memory" => "pods",
                k if k.starts_with("requests.") && k != "requests.storage" || k.starts_with("limits.") => "pods",
                "requests.storage" => "persistentvolumeclaims",
                k if k.starts_with("services") => "services",
                k => k,
            };
            (String::new(), plural.to_string())
        };
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    out
}

/// The total of several usages.
pub fn total<'a>(usages: impl IntoIterator<Item = &'a Usage>) -> Usage {
    let mut out = Usage::new();
    for u in usages {
        for (k, v) in u {
            let sum = out.get(k).copied().unwrap_or(Quantity::from_units(0));
            out.insert(k.clone(), Quantity::from_nanos(sum.nanos() + v.nanos()));
        }
    }
    out
}

/// Whether a new object (using `adding`) fits `quota` with `used` already counted: upstream's
/// messages for a resource the object must name (`failed quota: q: must specify limits.cpu for:
/// c`) and for an excess (`exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`).
pub fn admit(quota: &ResourceQuota, pod: Option<&Pod>, used: &Usage, adding: &Usage) -> Result<(), String> {
    let name = quota.metadata.name.as_deref().unwrap_or_default();
    let hard = list(&quota.spec.as_ref().and_then(|s| s.hard.clone()));
    if let Some(pod) = pod {
        let mut missing: Vec<String> = Vec::new();
        for key in ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory"] {
            if !hard.contains_key(key) {
                continue;
            }
            let (side, resource) = key.split_once('.').unwrap_or(("requests", key));
            let lacking: Vec<String> = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .filter(|c| {
                    let (requests, limits) = container_resources(c);
                    !(if side == "limits" { limits } else { requests }).contains_key(resource)
                })
                .map(|c| c.name.clone())
                .collect();
            if !lacking.is_empty() {
                missing.push(format!("{key} for: {}", lacking.join(",")));
            }
        }
        if !missing.is_empty() {
            return Err(format!("failed quota: {name}: must specify {}", missing.join("; ")));
        }
    }
    let over: Vec<&String> = hard
        .iter()
        .filter(|(k, limit)| {
            adding.get(*k).is_some_and(|a| {
                a.nanos() > 0
                    && used.get(*k).copied().unwrap_or(Quantity::from_units(0)).nanos() + a.nanos() > limit.nanos()
            })
        })
        .map(|(k, _)| k)
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    let shown = |u: &Usage| {
        over.iter()
            .map(|k| format!("{k}={}", show(u.get(*k).copied().unwrap_or(Quantity::from_units(0)))))
            .collect::<Vec<_>>()
            .join(",")
    };
    Err(format!(
        "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
        shown(adding),
        shown(used),
        shown(&hard)
    ))
}

/// A quota's status from the namespace's usage: `hard` as asked, `used` for each hard resource.
pub fn status(quota: &ResourceQuota, used: &Usage) -> k8s_openapi::api::core::v1::ResourceQuotaStatus {
    let hard = quota.spec.as_ref().and_then(|s| s.hard.clone()).unwrap_or_default();
    let used = hard
        .keys()
        .map(|k| (k.clone(), K8sQuantity(show(used.get(k).copied().unwrap_or(Quantity::from_units(0))))))
        .collect();
    k8s_openapi::api::core::v1::ResourceQuotaStatus { hard: Some(hard), used: Some(used) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(resources: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}}))
            .expect("pod")
    }

    fn range(items: Value) -> LimitRange {
        serde_json::from_value(json!({"metadata": {"name": "limits"}, "spec": {"limits": items}})).expect("range")
    }

    #[test]
    fn limit_ranges_default_and_bound_containers() {
        let r = range(json!([{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"},
            "max": {"cpu": "1", "memory": "1Gi"}, "min": {"cpu": "50m"}, "maxLimitRequestRatio": {"cpu": "5"}}]));
        // Nothing given: both defaults; memory has a max but no default → no limit → refused.
        let err = limit_pod(&pod(json!({})), std::slice::from_ref(&r)).expect_err("no memory limit");
        assert_eq!(err, "[maximum memory usage per Container is 1Gi.  No limit is specified]");
        let fits = pod(json!({"limits": {"memory": "512Mi"}}));
        let defaults = limit_pod(&fits, std::slice::from_ref(&r)).expect("admitted");
        assert_eq!(defaults.len(), 1);
        let (list_name, index, requests, limits) = &defaults[0];
        assert_eq!((*list_name, *index), ("containers", 0));
        assert_eq!((requests["cpu"].to_string(), limits["cpu"].to_string()), ("100m".to_string(), "500m".to_string()));
        let big = pod(json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "2", "memory": "512Mi"}}));
        assert_eq!(
            limit_pod(&big, std::slice::from_ref(&r)),
            Err("[maximum cpu usage per Container is 1, but limit is 2, cpu max limit to request ratio per Container is 5, but provided ratio is 8.000000]".into())
        );
        let small = pod(json!({"requests": {"cpu": "10m"}, "limits": {"cpu": "20m", "memory": "1Mi"}}));
        assert!(
            limit_pod(&small, std::slice::from_ref(&r))
                .is_err_and(|e| e.contains("minimum cpu usage per Container is 50m, but request is 10m"))
        );
        let per_pod = range(json!([{"type": "Pod", "max": {"memory": "1Gi"}}]));
        let two: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "i", "resources": {"limits": {"memory": "768Mi"}}},
            {"name": "b", "image": "i", "resources": {"limits": {"memory": "768Mi"}}}]}}))
        .expect("pod");
        assert_eq!(
            limit_pod(&two, &[per_pod]),
            Err("[maximum memory usage per Pod is 1Gi, but limit is 1536Mi]".into())
        );
    }

    #[test]
    fn quotas_count_objects_and_compute_and_refuse_what_does_not_fit() {
        let quota: ResourceQuota = serde_json::from_value(json!({"metadata": {"name": "team"},
            "spec": {"hard": {"pods": "2", "requests.cpu": "1", "configmaps": "1", "count/deployments.apps": "1"}}}))
        .expect("quota");
        let p =
            json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "600m"}}}]}});
        let one_pod = usage("", "pods", &p);
        assert_eq!(
            (one_pod["pods"].to_string(), one_pod["requests.cpu"].to_string()),
            ("1".to_string(), "600m".to_string())
        );
        assert_eq!(
            usage("", "pods", &json!({"status": {"phase": "Succeeded"}})),
            Usage::new(),
            "finished pods use nothing"
        );
        let typed: Pod = serde_json::from_value(p.clone()).expect("pod");
        assert_eq!(admit(&quota, Some(&typed), &Usage::new(), &one_pod), Ok(()));
        assert_eq!(
            admit(&quota, Some(&typed), &one_pod, &one_pod),
            Err("exceeded quota: team, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"
                .into())
        );
        let bare: Pod =
            serde_json::from_value(json!({"spec": {"containers": [{"name": "web", "image": "i"}]}})).expect("pod");
        assert_eq!(
            admit(&quota, Some(&bare), &Usage::new(), &usage("", "pods", &json!({}))),
            Err("failed quota: team: must specify requests.cpu for: web".into())
        );
        let cm = usage("", "configmaps", &json!({}));
        assert!(
            admit(&quota, None, &cm, &cm)
                .is_err_and(|e| e.starts_with("exceeded quota: team, requested: configmaps=1"))
        );
        let deploy = usage("apps", "deployments", &json!({}));
        assert!(admit(&quota, None, &Usage::new(), &deploy).is_ok());
        assert!(admit(&quota, None, &deploy, &deploy).is_err());
        let s = status(&quota, &total([&one_pod, &cm]));
        let used = s.used.expect("used");
        assert_eq!(
            (used["pods"].0.as_str(), used["requests.cpu"].0.as_str(), used["count/deployments.apps"].0.as_str()),
            ("1", "600m", "0")
        );
    }
}
