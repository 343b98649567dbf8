//! DaemonSet decisions (upstream `pkg/controller/daemon`): which nodes should run a daemon pod
//! (node selector and taints, with the tolerations every daemon pod gets), the pods to create
//! and delete (missing, surplus, misplaced, failed, and old ones a rolling update replaces within
//! `maxUnavailable`), the ControllerRevisions that record templates (shared with StatefulSets:
//! the same `$patch: replace` data and hash), and the status `kubectl rollout status` reads.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, DaemonSetStatus, StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::pod;
use crate::statefulset::revision::{self, UpdateRevision};

/// The label naming a daemon pod's (and a revision's) template hash.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The label naming the DaemonSet generation a pod was made from.
pub const GENERATION_LABEL: &str = "pod-template-generation";

/// What one sync does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// A revision to create, or an old one to renumber (a rollback), before pods.
    pub revision: Option<UpdateRevision>,
    /// The update revision's hash (pods get it as `controller-revision-hash`).
    pub hash: String,
    /// Nodes to create a daemon pod on.
    pub create: Vec<String>,
    /// Pods to delete: (name, uid).
    pub delete: Vec<(String, String)>,
    /// Revisions beyond `revisionHistoryLimit` to delete.
    pub truncate: Vec<String>,
    pub status: DaemonSetStatus,
}

/// The tolerations upstream adds to every daemon pod (`AddOrUpdateDaemonPodTolerations`), so
/// a daemon runs on nodes that are not ready, under pressure or cordoned.
pub fn daemon_tolerations() -> Vec<Toleration> {
    let toleration = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
}

/// Whether the daemon should run on `node`: its node selector matches and every NoSchedule and
/// NoExecute taint is tolerated (upstream's `NodeShouldRunDaemonPod`, without affinity).
pub fn should_run(ds: &DaemonSet, node: &Node) -> bool {
    let spec = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selected =
        spec.and_then(|s| s.node_selector.as_ref()).is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let mut tolerations = spec.and_then(|s| s.tolerations.clone()).unwrap_or_default();
    tolerations.extend(daemon_tolerations());
    let taints: Vec<Taint> = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    selected
        && taints
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .all(|t| crate::schedule::tolerates(&tolerations, t))
}

/// The DaemonSet as the revision functions see a workload (template, history limit, collision
/// count): one definition of a revision for both kinds.
fn as_workload(ds: &DaemonSet) -> StatefulSet {
    let spec = ds.spec.clone().unwrap_or_default();
    StatefulSet {
        metadata: ds.metadata.clone(),
        spec: Some(StatefulSetSpec {
            template: spec.template,
            revision_history_limit: spec.revision_history_limit,
            selector: spec.selector,
            ..Default::default()
        }),
        status: Some(StatefulSetStatus {
            collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
            ..Default::default()
        }),
    }
}

/// A revision of the DaemonSet's template, owned by it and labelled as upstream labels them.
fn owned_revision(ds: &DaemonSet, mut r: ControllerRevision) -> ControllerRevision {
    r.metadata.owner_references = Some(vec![crate::ownership::controller_ref("apps/v1", "DaemonSet", &ds.metadata)]);
    if let Some(labels) = r.metadata.labels.as_mut()
        && let Some(hash) = labels.remove(revision::HASH_LABEL)
    {
        labels.insert(REVISION_LABEL.into(), hash);
    }
    r
}

fn revision_hash(r: &ControllerRevision) -> String {
    let name = r.metadata.name.clone().unwrap_or_default();
    r.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL).cloned())
        .unwrap_or_else(|| name.rsplit('-').next().unwrap_or_default().to_string())
}

/// The daemon pod for `node`: the template with the revision and generation labels, the
/// daemon tolerations, and bound to the node (upstream binds through a required node-affinity
/// term that the scheduler honours; the node name is set here, the term recorded too).
pub fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let spec = ds.spec.clone().unwrap_or_default();
    let template = spec.template;
    let mut pod = Pod { metadata: template.metadata.unwrap_or_default(), spec: template.spec, status: None };
    pod.metadata.name = None;
    pod.metadata.generate_name = Some(format!("{}-", ds.metadata.name.clone().unwrap_or_default()));
    pod.metadata.namespace = ds.metadata.namespace.clone();
    pod.metadata.owner_references = Some(vec![crate::ownership::controller_ref("apps/v1", "DaemonSet", &ds.metadata)]);
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(REVISION_LABEL.into(), hash.into());
    labels.insert(GENERATION_LABEL.into(), ds.metadata.generation.unwrap_or(1).to_string());
    if let Some(pod_spec) = pod.spec.as_mut() {
        let tolerations = pod_spec.tolerations.get_or_insert_with(Vec::new);
        for t in daemon_tolerations() {
            if !tolerations.iter().any(|x| x.key == t.key && x.effect == t.effect) {
                tolerations.push(t);
            }
        }
        pod_spec.node_name = Some(node.into());
        let term: k8s_openapi::api::core::v1::NodeSelectorTerm = serde_json::from_value(serde_json::json!({
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}))
        .unwrap_or_default();
        pod_spec.affinity = Some(k8s_openapi::api::core::v1::Affinity {
            node_affinity: Some(k8s_openapi::api::core::v1::NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(k8s_openapi::api::core::v1::NodeSelector {
                    node_selector_terms: vec![term],
                }),
                ..Default::default()
            }),
            ..pod_spec.affinity.take().unwrap_or_default()
        });
    }
    pod
}

/// `maxUnavailable` against the number of nodes that should run the daemon (at least 1).
fn max_unavailable(ds: &DaemonSet, desired: usize) -> usize {
    let rolling = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref()).and_then(|u| u.rolling_update.as_ref());
    let value = rolling.and_then(|r| r.max_unavailable.clone()).unwrap_or(IntOrString::Int(1));
    let n = match value {
        IntOrString::Int(n) => usize::try_from(n).unwrap_or(0),
        IntOrString::String(s) => {
            let percent: usize = s.trim_end_matches('%').parse().unwrap_or(0);
            (desired * percent).div_ceil(100)
        }
    };
    n.max(1)
}

/// Plan one sync.
pub fn plan(
    ds: &DaemonSet,
    nodes: &[Node],
    pods: &[Pod],
    revisions: &[ControllerRevision],
    now: jiff::Timestamp,
) -> Plan {
    let workload = as_workload(ds);
    let (_, update) = revision::choose(&workload, revisions);
    let (hash, revision_action) = match update {
        UpdateRevision::Latest(name) => {
            let hash = revisions
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                .map(revision_hash)
                .unwrap_or_default();
            (hash, None)
        }
        UpdateRevision::Reuse { name, revision } => {
            let hash = revisions
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                .map(revision_hash)
                .unwrap_or_default();
            (hash, Some(UpdateRevision::Reuse { name, revision }))
        }
        UpdateRevision::Create(r) => {
            let r = owned_revision(ds, *r);
            (revision_hash(&r), Some(UpdateRevision::Create(Box::new(r))))
        }
    };
    let spec = ds.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let live: Vec<&Pod> = pods.iter().filter(|p| !pod::is_terminating(p)).collect();
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for p in &live {
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        by_node.entry(node).or_default().push(p);
    }
    let name = |p: &Pod| Some((p.metadata.name.clone()?, p.metadata.uid.clone().unwrap_or_default()));
    let is_updated = |p: &Pod| p.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)) == Some(&hash);
    let mut plan = Plan {
        revision: revision_action,
        hash: hash.clone(),
        create: Vec::new(),
        delete: Vec::new(),
        truncate: Vec::new(),
        status: DaemonSetStatus::default(),
    };
    let deleting = ds.metadata.deletion_timestamp.is_some();
    let (mut desired, mut current, mut misscheduled, mut ready, mut updated, mut available) = (0, 0, 0, 0, 0, 0);
    let mut old_available: Vec<&Pod> = Vec::new();
    let mut unavailable_now = 0usize;
    for node in nodes {
        let node_name = node.metadata.name.clone().unwrap_or_default();
        let here = by_node.remove(&node_name).unwrap_or_default();
        if !should_run(ds, node) {
            if !here.is_empty() {
                misscheduled += 1;
                plan.delete.extend(here.iter().filter_map(|p| name(p)));
            }
            continue;
        }
        desired += 1;
        // Failed daemon pods are deleted and made again.
        let (failed, running): (Vec<&Pod>, Vec<&Pod>) =
            here.iter().partition(|p| pod::is_failed(p) || pod::is_succeeded(p));
        plan.delete.extend(failed.iter().filter_map(|p| name(p)));
        match running.as_slice() {
            [] => {
                if !deleting {
                    plan.create.push(node_name.clone());
                }
                unavailable_now += 1;
            }
            [first, rest @ ..] => {
                current += 1;
                // Keep the oldest, delete the rest.
                let mut sorted: Vec<&&Pod> = std::iter::once(first).chain(rest.iter()).collect();
                sorted.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
                plan.delete.extend(sorted.iter().skip(1).filter_map(|p| name(p)));
                let kept = sorted[0];
                if pod::is_ready(kept) {
                    ready += 1;
                }
                let is_available = pod::is_available(kept, min_ready, now);
                if is_available {
                    available += 1;
                } else {
                    unavailable_now += 1;
                }
                if is_updated(kept) {
                    updated += 1;
                } else if is_available {
                    old_available.push(kept);
                } else if spec.update_strategy.as_ref().and_then(|u| u.type_.as_deref()) != Some("OnDelete") {
                    // An old pod that is not available anyway: replace it at once.
                    plan.delete.extend(name(kept));
                }
            }
        }
    }
    // Pods on nodes that no longer exist.
    for (_, orphaned) in by_node {
        plan.delete.extend(orphaned.iter().filter_map(|p| name(p)));
    }
    let rolling =
        spec.update_strategy.as_ref().and_then(|u| u.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate";
    if rolling && !deleting {
        let budget = max_unavailable(ds, desired).saturating_sub(unavailable_now);
        plan.delete.extend(old_available.iter().take(budget).filter_map(|p| name(p)));
    }
    plan.delete.sort();
    plan.delete.dedup();
    let mut live_hashes: Vec<String> =
        pods.iter().filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_LABEL).cloned()).collect();
    live_hashes.push(hash.clone());
    let live_names: Vec<String> = revisions
        .iter()
        .filter(|r| live_hashes.contains(&revision_hash(r)))
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    let live_refs: Vec<&str> = live_names.iter().map(String::as_str).collect();
    plan.truncate = revision::to_truncate(&workload, revisions, &live_refs);
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    plan.status = DaemonSetStatus {
        current_number_scheduled: count(current),
        desired_number_scheduled: count(desired),
        number_misscheduled: count(misscheduled),
        number_ready: count(ready),
        updated_number_scheduled: Some(count(updated)),
        number_available: Some(count(available)),
        number_unavailable: Some(count(desired.saturating_sub(available))).filter(|n| *n > 0),
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    plan
}

#[cfg(test)]
mod tests;
