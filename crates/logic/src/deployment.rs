//! Deployment decisions (upstream `pkg/controller/deployment`): which ReplicaSet carries the
//! current template (`<name>-<pod-template-hash>`), revisions and their annotations, one step
//! of a RollingUpdate (`maxSurge` up, `maxUnavailable` down) or a Recreate, proportional
//! scaling when the replica count changes mid-rollout, history cleanup, and the status with
//! the `Available` and `Progressing` conditions `kubectl rollout status` reads.
//!
//! Each sync plans one step from the current ReplicaSets; their changes bring the next sync.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";

/// What a sync sees: the Deployment, the ReplicaSets it controls, and its pods (for Recreate,
/// which waits until no old pod runs).
pub struct Input<'a> {
    pub deployment: &'a Deployment,
    pub replica_sets: &'a [ReplicaSet],
    pub pods: &'a [Pod],
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateReplicaSet(Box<ReplicaSet>),
    /// Set an existing ReplicaSet's replicas and annotations (the whole annotation map).
    UpdateReplicaSet {
        name: String,
        replicas: i32,
        annotations: BTreeMap<String, String>,
    },
    DeleteReplicaSet {
        name: String,
        uid: String,
    },
    /// The Deployment's own `deployment.kubernetes.io/revision`.
    SetRevision(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub status: DeploymentStatus,
    /// Sync again after this long (to notice a missed progress deadline).
    pub requeue_after_secs: Option<u64>,
}

/// `maxSurge` and `maxUnavailable` as pod counts: surge rounds up, unavailable rounds down, and
/// both zero means one unavailable (upstream `ResolveFenceposts`).
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let rolling = spec.strategy.and_then(|s| s.rolling_update).unwrap_or_default();
    let quarter = IntOrString::String("25%".into());
    let surge = crate::scaled_value(rolling.max_surge.as_ref().unwrap_or(&quarter), replicas, true);
    let unavailable = crate::scaled_value(rolling.max_unavailable.as_ref().unwrap_or(&quarter), replicas, false);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) { 0 } else { fenceposts(d).0 }
}

/// Upstream `MaxUnavailable`: 0 for Recreate, and never more than the replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if is_recreate(d) || replicas == 0 { 0 } else { fenceposts(d).1.min(replicas) }
}

/// The template's hash, the `pod-template-hash` label value (FNV-1a over the canonical JSON,
/// then the collision count).
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(&crate::statefulset::revision::canonical(
        &serde_json::to_value(template).unwrap_or_default(),
    ))
    .unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
    }
    crate::hash::safe_encode(crate::hash::fnv1a_32(&bytes))
}

fn without_hash(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    serde_json::to_value(t).unwrap_or_default()
}

fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default()
}

pub fn revision_of(rs: &ReplicaSet) -> i64 {
    annotation(&rs.metadata, REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

/// A ReplicaSet as this sync sees it: its spec replicas and annotations as planned so far.
#[derive(Debug, Clone)]
struct Work<'a> {
    rs: &'a ReplicaSet,
    replicas: i32,
    annotations: BTreeMap<String, String>,
}

impl Work<'_> {
    fn available(&self) -> i32 {
        self.rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
    }
    fn created(&self) -> Option<Timestamp> {
        self.rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
    }
    fn name(&self) -> String {
        self.rs.metadata.name.clone().unwrap_or_default()
    }
}

pub fn plan(input: &Input<'_>) -> Plan {
    let d = input.deployment;
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let paused = spec.paused.unwrap_or(false);
    let mut olds: Vec<Work> = Vec::new();
    let mut new: Option<Work> = None;
    let wanted = without_hash(&spec.template);
    let mut sorted: Vec<&ReplicaSet> = input.replica_sets.iter().collect();
    sorted.sort_by_key(|rs| (rs.metadata.creation_timestamp.as_ref().map(|t| t.0), rs.metadata.name.clone()));
    for rs in sorted {
        let work = Work {
            rs,
            replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            annotations: rs.metadata.annotations.clone().unwrap_or_default(),
        };
        if new.is_none() && without_hash(&rs_template(rs)) == wanted {
            new = Some(work);
        } else {
            olds.push(work);
        }
    }
    let new_revision = (olds.iter().map(|w| revision_of(w.rs)).max().unwrap_or(0) + 1).to_string();
    let mut actions = Vec::new();
    let mut conditions = d.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let now = Time(input.now);

    // Paused and resumed show in Progressing before anything else.
    let progressing_reason = condition(&conditions, "Progressing").and_then(|c| c.reason.clone());
    if paused && progressing_reason.as_deref() != Some("DeploymentPaused") {
        set_condition(
            &mut conditions,
            cond("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", &now),
        );
    } else if !paused && progressing_reason.as_deref() == Some("DeploymentPaused") {
        set_condition(
            &mut conditions,
            cond("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", &now),
        );
    }

    if let Some(n) = new.as_mut() {
        sync_new_annotations(d, n, &new_revision, replicas);
    }
    let deleting = d.metadata.deletion_timestamp.is_some();
    let scaling = !deleting && is_scaling_event(replicas, new.iter().chain(olds.iter()));
    // The new ReplicaSet to create, when the template has none yet.
    let mut fresh: Option<ReplicaSet> = None;
    let mut requeue = None;
    if deleting {
        // Only the status is kept current.
    } else if paused || scaling {
        scale(d, new.as_mut(), &mut olds, replicas);
        if paused {
            cleanup(&spec, &olds, &mut actions);
        }
    } else if is_recreate(d) {
        fresh = recreate(input, replicas, &mut new, &mut olds, &new_revision);
    } else {
        fresh = rolling(d, replicas, &mut new, &mut olds, &new_revision);
    }
    if let Some(rs) = &fresh {
        actions.push(Action::CreateReplicaSet(Box::new(rs.clone())));
    }
    for w in new.iter().chain(olds.iter()) {
        let stored = w.rs.metadata.annotations.clone().unwrap_or_default();
        if w.replicas != w.rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) || w.annotations != stored {
            actions.push(Action::UpdateReplicaSet {
                name: w.name(),
                replicas: w.replicas,
                annotations: w.annotations.clone(),
            });
        }
    }

    // The Deployment carries its new ReplicaSet's revision.
    let current_revision = match (&new, &fresh) {
        (Some(n), _) => n.annotations.get(REVISION).cloned(),
        (None, Some(rs)) => annotation(&rs.metadata, REVISION).map(String::from),
        (None, None) => None,
    };
    if let Some(rev) = current_revision
        && annotation(&d.metadata, REVISION) != Some(rev.as_str())
    {
        actions.push(Action::SetRevision(rev));
    }

    // Status, from the ReplicaSets' own statuses.
    let all: Vec<&Work> = new.iter().chain(olds.iter()).collect();
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| all.iter().map(|w| f(w.rs)).sum::<i32>();
    let status_replicas = sum(&|rs| rs.status.as_ref().map_or(0, |s| s.replicas));
    let ready = sum(&|rs| rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0));
    let available = sum(&|rs| rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0));
    let updated = new.as_ref().and_then(|n| n.rs.status.as_ref()).map_or(0, |s| s.replicas);
    let fresh_replicas = fresh.as_ref().and_then(|rs| rs.spec.as_ref()).and_then(|s| s.replicas).unwrap_or(0);
    let total: i32 = all.iter().map(|w| w.replicas).sum::<i32>() + fresh_replicas;
    let (reason, message) = if available >= replicas - max_unavailable(d) {
        ("MinimumReplicasAvailable", "Deployment has minimum availability.")
    } else {
        ("MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    };
    let ok = if reason == "MinimumReplicasAvailable" { "True" } else { "False" };
    set_condition(&mut conditions, cond("Available", ok, reason, message, &now));
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(status_replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: d.status.as_ref().and_then(|s| s.collision_count),
        conditions: None,
        terminating_replicas: None,
    };
    if !deleting && !paused && !scaling {
        let rs_name = new
            .as_ref()
            .map(Work::name)
            .or_else(|| fresh.as_ref().and_then(|rs| rs.metadata.name.clone()))
            .unwrap_or_default();
        requeue = progress(d, &status, &mut conditions, &rs_name, fresh.is_some(), input.now);
    }
    status.conditions = Some(conditions);
    if !deleting && !paused && complete(d, &status) {
        cleanup(&spec, &olds, &mut actions);
    }
    Plan { actions, status, requeue_after_secs: requeue }
}

fn condition<'a>(conditions: &'a [DeploymentCondition], type_: &str) -> Option<&'a DeploymentCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn cond(type_: &str, status: &str, reason: &str, message: &str, now: &Time) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// Upstream `SetDeploymentCondition`: no change for the same status and reason; the transition
/// time is kept while the status stays.
fn set_condition(conditions: &mut Vec<DeploymentCondition>, mut new: DeploymentCondition) {
    if let Some(current) = conditions.iter().find(|c| c.type_ == new.type_) {
        if current.status == new.status && current.reason == new.reason {
            return;
        }
        if current.status == new.status {
            new.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != new.type_);
    conditions.push(new);
}

/// The `Progressing` condition (upstream `syncRolloutStatus`); the seconds until the deadline
/// passes when it is still running.
fn progress(
    d: &Deployment,
    status: &DeploymentStatus,
    conditions: &mut Vec<DeploymentCondition>,
    rs_name: &str,
    created: bool,
    now: Timestamp,
) -> Option<u64> {
    // Upstream `HasProgressDeadline`: MaxInt32 means none.
    let deadline = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).filter(|s| *s != i32::MAX)?;
    let at = Time(now);
    if created {
        let message = format!("Created new replica set \"{rs_name}\"");
        set_condition(conditions, cond("Progressing", "True", "NewReplicaSetCreated", &message, &at));
    } else if condition(conditions, "Progressing").is_none() {
        let message = format!("Found new replica set \"{rs_name}\"");
        set_condition(conditions, cond("Progressing", "True", "FoundNewReplicaSet", &message, &at));
    }
    let current = condition(conditions, "Progressing").cloned();
    let reason = current.as_ref().and_then(|c| c.reason.clone()).unwrap_or_default();
    let updated = status.updated_replicas.unwrap_or(0);
    let complete_before = status.replicas == Some(updated) && reason == "NewReplicaSetAvailable";
    if complete_before {
        return None;
    }
    let old = d.status.clone().unwrap_or_default();
    let old_others = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let progressing = updated > old.updated_replicas.unwrap_or(0)
        || status.replicas.unwrap_or(0) - updated < old_others
        || status.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || status.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0);
    if complete(d, status) {
        let message = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
        set_condition(conditions, cond("Progressing", "True", "NewReplicaSetAvailable", &message, &at));
        return None;
    }
    if progressing {
        let mut c =
            cond("Progressing", "True", "ReplicaSetUpdated", &format!("ReplicaSet \"{rs_name}\" is progressing."), &at);
        if let Some(cur) = current.as_ref().filter(|c| c.status == "True") {
            c.last_transition_time = cur.last_transition_time.clone();
        }
        conditions.retain(|c| c.type_ != "Progressing");
        conditions.push(c);
        return Some(u64::try_from(deadline).unwrap_or(0).max(1));
    }
    if reason == "ProgressDeadlineExceeded" {
        return None;
    }
    let since = current.as_ref().and_then(|c| c.last_update_time.as_ref()).map(|t| t.0)?;
    let passed = now.as_second() - since.as_second();
    if passed > i64::from(deadline) {
        let message = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
        set_condition(conditions, cond("Progressing", "False", "ProgressDeadlineExceeded", &message, &at));
        None
    } else {
        Some(u64::try_from(i64::from(deadline) - passed + 1).unwrap_or(1))
    }
}

/// Copy the Deployment's annotations onto its new ReplicaSet, move it to the new revision
/// (keeping the revisions it had in `revision-history`: a rollback), and record the replica
/// counts it was sized for.
fn sync_new_annotations(d: &Deployment, new: &mut Work, new_revision: &str, replicas: i32) {
    copy_annotations(d, &mut new.annotations);
    let old: Option<String> = new.annotations.get(REVISION).cloned();
    let old_n: i64 = old.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0);
    let new_n: i64 = new_revision.parse().unwrap_or(0);
    if old_n < new_n {
        new.annotations.insert(REVISION.into(), new_revision.into());
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            let history = match new.annotations.get(REVISION_HISTORY) {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old,
            };
            new.annotations.insert(REVISION_HISTORY.into(), history);
        }
    }
    if !new.annotations.contains_key(DESIRED_REPLICAS) {
        set_replica_annotations(d, &mut new.annotations, replicas);
    }
}

fn copy_annotations(d: &Deployment, to: &mut BTreeMap<String, String>) {
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if [LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO].contains(&k.as_str())
        {
            continue;
        }
        to.insert(k.clone(), v.clone());
    }
}

fn set_replica_annotations(d: &Deployment, annotations: &mut BTreeMap<String, String>, replicas: i32) {
    annotations.insert(DESIRED_REPLICAS.into(), replicas.to_string());
    annotations.insert(MAX_REPLICAS.into(), (replicas + max_surge(d)).to_string());
}

fn set_replicas(d: &Deployment, w: &mut Work, to: i32, replicas: i32) {
    w.replicas = to;
    set_replica_annotations(d, &mut w.annotations, replicas);
}

/// Some active ReplicaSet was sized for a different replica count (upstream `isScalingEvent`).
fn is_scaling_event<'a>(replicas: i32, all: impl Iterator<Item = &'a Work<'a>>) -> bool {
    all.filter(|w| w.replicas > 0).any(|w| {
        w.annotations
            .get(DESIRED_REPLICAS)
            .and_then(|v| v.parse::<i32>().ok())
            .is_some_and(|desired| desired != replicas)
    })
}

/// Upstream `scale`: one active ReplicaSet takes the new count; a saturated new one means the
/// old ones go to zero; otherwise a rolling update grows or shrinks every active ReplicaSet in
/// proportion to the size it was made for, the remainder going to the largest.
fn scale<'a>(d: &Deployment, new: Option<&mut Work<'a>>, olds: &mut [Work<'a>], replicas: i32) {
    let active: Vec<usize> = (0..olds.len()).filter(|i| olds[*i].replicas > 0).collect();
    let new_active = new.as_ref().is_some_and(|n| n.replicas > 0);
    let active_count = active.len() + usize::from(new_active);
    if active_count <= 1 {
        // The active one, or the newest.
        let target: Option<&mut Work<'a>> = if new_active || (active.is_empty() && new.is_some()) {
            new
        } else if let Some(i) = active.first().copied().or(olds.len().checked_sub(1)) {
            olds.get_mut(i)
        } else {
            None
        };
        if let Some(w) = target
            && w.replicas != replicas
        {
            set_replicas(d, w, replicas, replicas);
        }
        return;
    }
    if let Some(n) = new.as_deref()
        && n.replicas == replicas
        && n.annotations.get(DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok()) == Some(replicas)
    {
        for i in active {
            set_replicas(d, &mut olds[i], 0, replicas);
        }
        return;
    }
    if is_recreate(d) {
        return;
    }
    let allowed = if replicas > 0 { replicas + max_surge(d) } else { 0 };
    let mut members: Vec<&mut Work<'a>> = Vec::new();
    if let Some(n) = new.filter(|n| n.replicas > 0) {
        members.push(n);
    }
    members.extend(olds.iter_mut().filter(|w| w.replicas > 0));
    let current: i32 = members.iter().map(|w| w.replicas).sum();
    let to_add = allowed - current;
    if to_add > 0 {
        members.sort_by(|a, b| b.replicas.cmp(&a.replicas).then(b.created().cmp(&a.created())));
    } else {
        members.sort_by(|a, b| b.replicas.cmp(&a.replicas).then(a.created().cmp(&b.created())));
    }
    let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::new();
    for w in &members {
        let mut proportion = 0;
        if to_add != 0 && to_add != added && w.replicas > 0 {
            let fraction = if replicas == 0 {
                -w.replicas
            } else {
                let annotated = w
                    .annotations
                    .get(MAX_REPLICAS)
                    .and_then(|v| v.parse::<i32>().ok())
                    .filter(|v| *v > 0)
                    .unwrap_or(status_replicas.max(1));
                let size = f64::from(w.replicas) * f64::from(replicas + max_surge(d)) / f64::from(annotated);
                size.round() as i32 - w.replicas
            };
            let allowed_left = to_add - added;
            proportion = if to_add > 0 { fraction.min(allowed_left) } else { fraction.max(allowed_left) };
        }
        added += proportion;
        sizes.push(w.replicas + proportion);
    }
    if let Some(first) = sizes.first_mut()
        && to_add != added
    {
        *first = (*first + to_add - added).max(0);
    }
    for (w, size) in members.into_iter().zip(sizes) {
        set_replicas(d, w, size, replicas);
    }
}

/// The ReplicaSet for the Deployment's current template (upstream `getNewReplicaSet`).
fn new_replica_set(d: &Deployment, replicas: i32, revision: &str) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&spec.template, collision);
    let mut template = spec.template.clone();
    template.metadata.get_or_insert_default().labels.get_or_insert_default().insert(HASH_LABEL.into(), hash.clone());
    let mut selector = spec.selector.clone();
    selector.match_labels.get_or_insert_default().insert(HASH_LABEL.into(), hash.clone());
    let mut annotations = BTreeMap::new();
    copy_annotations(d, &mut annotations);
    annotations.insert(REVISION.into(), revision.into());
    set_replica_annotations(d, &mut annotations, spec.replicas.unwrap_or(1));
    let name = d.metadata.name.clone().unwrap_or_default();
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: d.metadata.namespace.clone(),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![crate::ownership::controller_ref("apps/v1", "Deployment", &d.metadata)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// One RollingUpdate step; the new ReplicaSet to create, if the template has none yet.
fn rolling(
    d: &Deployment,
    replicas: i32,
    new: &mut Option<Work>,
    olds: &mut [Work],
    revision: &str,
) -> Option<ReplicaSet> {
    let (surge, _) = fenceposts(d);
    let all_replicas = |new: &Option<Work>, olds: &[Work]| -> i32 {
        new.as_ref().map_or(0, |n| n.replicas) + olds.iter().map(|w| w.replicas).sum::<i32>()
    };
    // Scale up the new ReplicaSet within maxSurge (upstream `NewRSNewReplicas`).
    let new_replicas = new.as_ref().map_or(0, |n| n.replicas);
    let target = if new_replicas > replicas {
        replicas
    } else {
        let max_total = replicas + surge;
        let current = all_replicas(new, olds);
        if current >= max_total {
            new_replicas
        } else {
            new_replicas + (max_total - current).min(replicas - new_replicas)
        }
    };
    match new.as_mut() {
        None => return Some(new_replica_set(d, target, revision)),
        Some(n) if n.replicas != target => {
            set_replicas(d, n, target, replicas);
            return None;
        }
        Some(_) => {}
    }
    // Scale down old ReplicaSets within maxUnavailable (upstream `reconcileOldReplicaSets`).
    let old_count: i32 = olds.iter().map(|w| w.replicas).sum();
    if old_count == 0 {
        return None;
    }
    let min_available = replicas - max_unavailable(d);
    let new_unavailable = new.as_ref().map_or(0, |n| n.replicas - n.available());
    let mut max_down = all_replicas(new, olds) - min_available - new_unavailable;
    if max_down <= 0 {
        return None;
    }
    // First the old pods that are not available anyway.
    for w in olds.iter_mut() {
        if max_down <= 0 {
            break;
        }
        let unhealthy = w.replicas - w.available();
        if w.replicas == 0 || unhealthy <= 0 {
            continue;
        }
        let down = unhealthy.min(max_down);
        let to = w.replicas - down;
        set_replicas(d, w, to, replicas);
        max_down -= down;
    }
    // Then available old pods, oldest ReplicaSet first, keeping minAvailable.
    let available: i32 =
        new.as_ref().map_or(0, Work::available) + olds.iter().map(|w| w.available().min(w.replicas)).sum::<i32>();
    if available <= min_available {
        return None;
    }
    let mut left = available - min_available;
    for w in olds.iter_mut() {
        if left <= 0 {
            break;
        }
        if w.replicas == 0 {
            continue;
        }
        let down = w.replicas.min(left);
        let to = w.replicas - down;
        set_replicas(d, w, to, replicas);
        left -= down;
    }
    None
}

/// One Recreate step; the new ReplicaSet to create once no old pod runs.
fn recreate(
    input: &Input<'_>,
    replicas: i32,
    new: &mut Option<Work>,
    olds: &mut [Work],
    revision: &str,
) -> Option<ReplicaSet> {
    let d = input.deployment;
    if olds.iter().any(|w| w.replicas > 0) {
        for w in olds.iter_mut().filter(|w| w.replicas > 0) {
            set_replicas(d, w, 0, replicas);
        }
        return None;
    }
    let old_uids: Vec<&str> = olds.iter().filter_map(|w| w.rs.metadata.uid.as_deref()).collect();
    let old_running = input.pods.iter().any(|p| {
        old_uids.iter().any(|uid| crate::ownership::controlled_by(&p.metadata, uid))
            && !crate::pod::is_succeeded(p)
            && !crate::pod::is_failed(p)
    });
    if old_running {
        return None;
    }
    match new.as_mut() {
        None => return Some(new_replica_set(d, replicas, revision)),
        Some(n) if n.replicas != replicas => set_replicas(d, n, replicas, replicas),
        Some(_) => {}
    }
    None
}

/// Delete the oldest empty old ReplicaSets beyond `revisionHistoryLimit`.
fn cleanup(spec: &k8s_openapi::api::apps::v1::DeploymentSpec, olds: &[Work], actions: &mut Vec<Action>) {
    let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let mut cleanable: Vec<&Work> = olds.iter().filter(|w| w.rs.metadata.deletion_timestamp.is_none()).collect();
    if cleanable.len() <= limit {
        return;
    }
    let excess = cleanable.len() - limit;
    cleanable.sort_by_key(|w| (revision_of(w.rs), w.created()));
    for w in cleanable.into_iter().take(excess) {
        let status = w.rs.status.clone().unwrap_or_default();
        let settled = status.observed_generation.unwrap_or(0) >= w.rs.metadata.generation.unwrap_or(0);
        if status.replicas != 0 || w.replicas != 0 || !settled {
            continue;
        }
        actions.push(Action::DeleteReplicaSet { name: w.name(), uid: w.rs.metadata.uid.clone().unwrap_or_default() });
    }
}

/// Upstream `DeploymentComplete`: every replica updated and available, and the spec observed.
pub fn complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    status.updated_replicas == Some(replicas)
        && status.replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && status.observed_generation >= d.metadata.generation
}
