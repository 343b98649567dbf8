//! The scheduling decision for one pod on a small set of nodes: `nodeName` honoured,
//! `nodeSelector` against node labels, `NoSchedule`/`NoExecute` taints against tolerations,
//! unschedulable (cordoned) nodes, and requests against what is left of allocatable CPU, memory
//! and pod count. The message for an unschedulable pod follows the scheduler's
//! `0/N nodes are available: …` form, so `kubectl describe pod` reads as usual.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Taint, Toleration};

use crate::quantity_of;

/// Where the pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Bind(String),
    Unschedulable(String),
}

pub(crate) fn tolerates(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| {
        let key_ok = match t.key.as_deref() {
            None | Some("") => t.operator.as_deref() == Some("Exists"),
            Some(k) => k == taint.key,
        };
        let value_ok = t.operator.as_deref() == Some("Exists")
            || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("");
        let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == taint.effect);
        key_ok && value_ok && effect_ok
    })
}

/// Sum of container requests for a resource, in milli-units.
fn requested(pod: &Pod, resource: &str) -> i128 {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(resource))
        .map(|q| quantity_of(&q.0))
        .sum()
}

/// Upstream's VolumeBinding pre-filter, for what a single node can tell: why `pod` cannot be
/// scheduled yet because of its claims (`claims` may span namespaces; `delayed` says
/// whether a claim's class binds on first consumer), or `None`. A claim that is missing or
/// being deleted, or one that binds immediately and is not bound yet, holds the pod back;
/// claims of a WaitForFirstConsumer class are bound after the pod is placed.
pub fn volume_binding(
    pod: &Pod,
    claims: &[PersistentVolumeClaim],
    delayed: &dyn Fn(&PersistentVolumeClaim) -> bool,
) -> Option<String> {
    let mut unbound_immediate = false;
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let Some(source) = volume.persistent_volume_claim.as_ref() else { continue };
        let name = &source.claim_name;
        let Some(claim) = claims.iter().find(|c| {
            c.metadata.name.as_deref() == Some(name.as_str()) && c.metadata.namespace == pod.metadata.namespace
        }) else {
            return Some(format!("persistentvolumeclaim \"{name}\" not found"));
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Some(format!("persistentvolumeclaim \"{name}\" is being deleted"));
        }
        let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        if !bound && !delayed(claim) {
            unbound_immediate = true;
        }
    }
    unbound_immediate.then(|| "pod has unbound immediate PersistentVolumeClaims".to_string())
}

/// The scheduling queue's order (upstream's `PrioritySort` queue-sort plugin): higher
/// `spec.priority` first, then the pod that has waited longer (created earlier), then by name
/// so the order is total.
pub fn queue_order(a: &Pod, b: &Pod) -> std::cmp::Ordering {
    let priority = |p: &Pod| p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let name = |p: &Pod| (p.metadata.namespace.clone(), p.metadata.name.clone());
    priority(b).cmp(&priority(a)).then_with(|| created(a).cmp(&created(b))).then_with(|| name(a).cmp(&name(b)))
}

/// The decision for a pod that no node can take for `reason`, whatever the node.
pub fn unschedulable(nodes: usize, reason: &str) -> Decision {
    Decision::Unschedulable(format!("0/{nodes} nodes are available: {reason}."))
}

/// Decide for `pod`, given the nodes and the pods already bound to them.
pub fn decide(pod: &Pod, nodes: &[Node], bound: &[Pod]) -> Decision {
    let spec = pod.spec.clone().unwrap_or_default();
    let selector: BTreeMap<String, String> = spec.node_selector.clone().unwrap_or_default();
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut candidates: Vec<&Node> = Vec::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(wanted) = spec.node_name.as_deref().filter(|n| !n.is_empty())
            && wanted != name
        {
            *reasons.entry("node(s) didn't match the requested node name".into()).or_default() += 1;
            continue;
        }
        let labels = node.metadata.labels.clone().unwrap_or_default();
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            *reasons.entry("node(s) didn't match Pod's node affinity/selector".into()).or_default() += 1;
            continue;
        }
        let node_spec = node.spec.clone().unwrap_or_default();
        if node_spec.unschedulable == Some(true) {
            *reasons.entry("node(s) were unschedulable".into()).or_default() += 1;
            continue;
        }
        let blocking = node_spec
            .taints
            .unwrap_or_default()
            .into_iter()
            .find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerates(&tolerations, t));
        if let Some(t) = blocking {
            let shown = format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value.unwrap_or_default());
            *reasons.entry(shown).or_default() += 1;
            continue;
        }
        let on_node: Vec<&Pod> = bound
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
            .collect();
        let allocatable = node.status.as_ref().and_then(|s| s.allocatable.clone()).unwrap_or_default();
        let mut fits = true;
        for (resource, label) in [("cpu", "Insufficient cpu"), ("memory", "Insufficient memory")] {
            let Some(capacity) = allocatable.get(resource).map(|q| quantity_of(&q.0)) else { continue };
            let used: i128 = on_node.iter().map(|p| requested(p, resource)).sum();
            if used + requested(pod, resource) > capacity {
                *reasons.entry(label.into()).or_default() += 1;
                fits = false;
                break;
            }
        }
        if fits
            && let Some(max) = allocatable.get("pods").map(|q| quantity_of(&q.0) / 1000)
            && on_node.len() as i128 >= max
        {
            *reasons.entry("Too many pods".into()).or_default() += 1;
            fits = false;
        }
        if fits {
            candidates.push(node);
        }
    }
    // One node per machine today: the first fitting node wins (least loaded would go here).
    match candidates.first() {
        Some(node) => Decision::Bind(node.metadata.name.clone().unwrap_or_default()),
        None => {
            let detail: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            let detail =
                if detail.is_empty() { "no nodes available to schedule pods".to_string() } else { detail.join(", ") };
            Decision::Unschedulable(format!("0/{} nodes are available: {detail}.", nodes.len()))
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_queue_takes_higher_priority_then_older_pods_first() {
        let pod = |name: &str, priority: Option<i32>, created: &str| -> Pod {
            serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": "default",
                "creationTimestamp": created}, "spec": {"priority": priority, "containers": []}}))
            .expect("pod")
        };
        let mut queue = [
            pod("late-normal", None, "2026-12-05T00:00:03Z"),
            pod("early-normal", Some(0), "2026-12-05T00:00:01Z"),
            pod("critical", Some(2_000_000_000), "2026-12-05T00:00:09Z"),
            pod("low", Some(-5), "2026-12-05T00:00:00Z"),
            pod("b-same", Some(10), "2026-12-05T00:00:05Z"),
            pod("a-same", Some(10), "2026-12-05T00:00:05Z"),
        ];
        queue.sort_by(queue_order);
        let order: Vec<_> = queue.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect();
        assert_eq!(order, ["critical", "a-same", "b-same", "early-normal", "late-normal", "low"]);
    }
    use serde_json::json;

    use super::*;

    fn node(extra: serde_json::Value) -> Node {
        let mut v = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1", "disk": "ssd"}},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "3"}}});
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).expect("node")
    }

    fn pod(extra: serde_json::Value) -> Pod {
        let mut v = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn claims_hold_a_pod_back_as_the_volume_binding_plugin_does() {
        let with_claims = pod(json!({"spec": {"volumes": [
            {"name": "www", "persistentVolumeClaim": {"claimName": "www-web-0"}},
            {"name": "cfg", "configMap": {"name": "c"}}]}}));
        let claim = |extra: serde_json::Value| -> PersistentVolumeClaim {
            let mut v = json!({"metadata": {"name": "www-web-0"}, "spec": {"storageClassName": "fast"}});
            json_patch::merge(&mut v, &extra);
            serde_json::from_value(v).expect("claim")
        };
        let immediate = |_: &PersistentVolumeClaim| false;
        let delayed = |_: &PersistentVolumeClaim| true;
        let bound = claim(json!({"status": {"phase": "Bound"}}));
        let pending = claim(json!({"status": {"phase": "Pending"}}));
        let deleting = claim(json!({"metadata": {"deletionTimestamp": "2026-12-04T00:00:00Z"}}));
        type Mode<'a> = &'a dyn Fn(&PersistentVolumeClaim) -> bool;
        let cases: [(&str, &[PersistentVolumeClaim], Mode<'_>, Option<&str>); 6] = [
            ("bound", std::slice::from_ref(&bound), &immediate, None),
            (
                "unbound, immediate",
                std::slice::from_ref(&pending),
                &immediate,
                Some("pod has unbound immediate PersistentVolumeClaims"),
            ),
            ("unbound, first consumer", std::slice::from_ref(&pending), &delayed, None),
            ("missing", &[], &delayed, Some("persistentvolumeclaim \"www-web-0\" not found")),
            (
                "being deleted",
                std::slice::from_ref(&deleting),
                &delayed,
                Some("persistentvolumeclaim \"www-web-0\" is being deleted"),
            ),
            ("no claims at all", &[], &immediate, None),
        ];
        for (case, claims, mode, want) in cases {
            let p = if case == "no claims at all" { pod(json!({})) } else { with_claims.clone() };
            assert_eq!(volume_binding(&p, claims, mode).as_deref(), want, "{case}");
        }
        assert_eq!(
            unschedulable(1, "pod has unbound immediate PersistentVolumeClaims"),
            Decision::Unschedulable(
                "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.".into()
            )
        );
    }

    #[test]
    fn binds_to_a_fitting_node() {
        assert_eq!(decide(&pod(json!({})), &[node(json!({}))], &[]), Decision::Bind("n1".into()));
        let selected = pod(json!({"spec": {"nodeSelector": {"disk": "ssd"}}}));
        assert_eq!(decide(&selected, &[node(json!({}))], &[]), Decision::Bind("n1".into()));
    }

    #[test]
    fn explains_why_nothing_fits() {
        let n = node(json!({}));
        let hdd = pod(json!({"spec": {"nodeSelector": {"disk": "hdd"}}}));
        assert_eq!(
            decide(&hdd, std::slice::from_ref(&n), &[]),
            Decision::Unschedulable(
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.".into()
            )
        );
        let tainted =
            node(json!({"spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}}));
        assert_eq!(
            decide(&pod(json!({})), std::slice::from_ref(&tainted), &[]),
            Decision::Unschedulable(
                "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.".into()
            )
        );
        let tolerant =
            pod(json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]}}));
        assert_eq!(decide(&tolerant, &[tainted], &[]), Decision::Bind("n1".into()));
        let big = pod(
            json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "3"}}}]}}),
        );
        assert_eq!(
            decide(&big, std::slice::from_ref(&n), &[]),
            Decision::Unschedulable("0/1 nodes are available: 1 Insufficient cpu.".into())
        );
        let bound: Vec<Pod> = (0..3).map(|_| pod(json!({"spec": {"nodeName": "n1"}}))).collect();
        assert_eq!(
            decide(&pod(json!({})), std::slice::from_ref(&n), &bound),
            Decision::Unschedulable("0/1 nodes are available: 1 Too many pods.".into())
        );
        let cordoned = node(json!({"spec": {"unschedulable": true}}));
        assert!(matches!(decide(&pod(json!({})), &[cordoned], &[]), Decision::Unschedulable(_)));
        assert_eq!(
            decide(&pod(json!({})), &[], &[]),
            Decision::Unschedulable("0/0 nodes are available: no nodes available to schedule pods.".into())
        );
    }
}
