//! ReplicaSet decisions (upstream `pkg/controller/replicaset`): how many pods to create, which
//! surplus pods to delete (upstream's ranking: the least useful first), the pod a ReplicaSet
//! makes, and the status it reports.

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::pod;

/// At most this many pods are created or deleted in one sync (upstream's `burstReplicas`).
pub const BURST: usize = 500;

/// What one sync does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// New pods to create (each from `new_pod`).
    pub create: usize,
    /// Pods to delete: (name, uid).
    pub delete: Vec<(String, String)>,
    pub status: ReplicaSetStatus,
    /// Sync again after this long (a Ready pod becoming available after `minReadySeconds`).
    pub requeue_after_secs: Option<u64>,
}

/// Pods that count: not finished and not being deleted (upstream `FilterActivePods`).
pub fn is_active(p: &Pod) -> bool {
    !pod::is_succeeded(p) && !pod::is_failed(p) && !pod::is_terminating(p)
}

/// Plan a sync from the pods the ReplicaSet controls.
pub fn plan(rs: &ReplicaSet, pods: &[Pod], now: Timestamp) -> Plan {
    let spec = rs.spec.clone().unwrap_or_default();
    let want = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let active: Vec<&Pod> = pods.iter().filter(|p| is_active(p)).collect();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let (create, delete) = if deleting {
        (0, Vec::new())
    } else if active.len() < want {
        ((want - active.len()).min(BURST), Vec::new())
    } else {
        let surplus = (active.len() - want).min(BURST);
        let mut ranked = active.clone();
        ranked.sort_by(|a, b| deletion_order(a, b, &active, now));
        let named = |p: &Pod| Some((p.metadata.name.clone()?, p.metadata.uid.clone().unwrap_or_default()));
        (0, ranked.into_iter().take(surplus).filter_map(named).collect())
    };
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels =
        spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            template_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| pod::is_ready(p)).count();
    let available = active.iter().filter(|p| pod::is_available(p, min_ready, now)).count();
    let requeue_after_secs = active.iter().filter_map(|p| pod::seconds_until_available(p, min_ready, now)).min();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let status = ReplicaSetStatus {
        replicas: count(active.len()),
        fully_labeled_replicas: Some(count(fully_labeled)),
        ready_replicas: Some(count(ready)),
        available_replicas: Some(count(available)),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    Plan { create, delete, status, requeue_after_secs }
}

/// Whether the stored status differs from the planned one.
pub fn status_changed(stored: Option<&ReplicaSetStatus>, planned: &ReplicaSetStatus) -> bool {
    let stored = stored.cloned().unwrap_or_default();
    let norm = |s: &ReplicaSetStatus| {
        (
            s.replicas,
            s.fully_labeled_replicas.unwrap_or(0),
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
            s.observed_generation.unwrap_or(0),
        )
    };
    norm(&stored) != norm(planned)
}

/// Upstream's `ActivePodsWithRanks` order, least useful first: unscheduled before scheduled;
/// Pending before Unknown before Running; not ready before ready; more pods on the same node
/// first; ready for less time first; more restarts first; newer first.
fn deletion_order(a: &Pod, b: &Pod, all: &[&Pod], now: Timestamp) -> Ordering {
    let node = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in all {
        *per_node.entry(node(p)).or_default() += 1;
    }
    let phase_rank = |p: &Pod| match pod::phase(p) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let ready_since = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
            .unwrap_or(now)
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |c| c.iter().map(|c| c.restart_count).sum())
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    (!node(a).is_empty())
        .cmp(&!node(b).is_empty())
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(pod::is_ready(a).cmp(&pod::is_ready(b)))
        .then(per_node[&node(b)].cmp(&per_node[&node(a)]))
        .then(ready_since(b).cmp(&ready_since(a)))
        .then(restarts(b).cmp(&restarts(a)))
        .then(created(b).cmp(&created(a)))
}

/// A pod for the ReplicaSet: its template, a name the API server completes from
/// `<rs>-`, and the controller reference.
pub fn new_pod(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![crate::ownership::controller_ref("apps/v1", "ReplicaSet", &rs.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}
