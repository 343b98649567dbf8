//! The StatefulSet decision: from a snapshot (the set, its pods, the claims in its namespace, the
//! current and update revisions, `now`) to the actions of one sync and the status to write, with
//! upstream's rules (`pkg/controller/statefulset/stateful_set_control.go`) and vocabulary:
//! `replicas` (in-range slots, placeholders for missing pods), `condemned` (out-of-range pods,
//! highest first), monotonic (`OrderedReady`) versus burst (`Parallel`), the rolling update from
//! the top down to `partition`, and status counting.
//!
//! Pure: no I/O, no clock. The controller applies the actions in order and re-plans on the next
//! change; one plan therefore holds at most one step in monotonic mode.

pub mod pods;
pub mod retention;
pub mod revision;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use pods::{
    claim_name, get_ordinal, is_available, is_created, is_failed, is_healthy, is_running_and_ready, is_succeeded,
    is_terminating, pod_name, revision_of,
};

/// Everything one sync looks at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub set: &'a StatefulSet,
    /// Pods the set controls (by owner reference).
    pub pods: &'a [Pod],
    /// Claims in the set's namespace that the set's templates name.
    pub claims: &'a [PersistentVolumeClaim],
    pub current_revision: &'a str,
    pub current_template: &'a PodTemplateSpec,
    pub update_revision: &'a str,
    pub update_template: &'a PodTemplateSpec,
    pub collision_count: i32,
    pub now: Timestamp,
}

/// One API write the controller must make.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this claim (before its pod).
    CreateClaim(Box<PersistentVolumeClaim>),
    /// Create this pod.
    CreatePod(Box<Pod>),
    /// Delete the pod with this name and uid.
    DeletePod { name: String, uid: String, reason: DeleteReason },
    /// Restore a pod's identity labels (someone removed or changed them).
    RepairIdentity { name: String, resource_version: String, labels: BTreeMap<String, String> },
    /// Rewrite a claim's owner references (retention policy).
    SetClaimOwners { name: String, resource_version: String, owners: Vec<OwnerReference> },
}

/// Why a pod is deleted (for events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    /// Failed or Succeeded: it will be recreated with the same name.
    Finished,
    /// Scale down (or out of the ordinal range).
    Condemned,
    /// Rolling update to the update revision.
    Update,
}

/// Why the plan stopped early, if it did (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A claim of this ordinal is being deleted; the pod is not created until it is gone.
    ClaimTerminating(i32),
    /// This ordinal is terminating.
    Terminating(i32),
    /// This ordinal is not Running and Ready (or not yet available).
    Unhealthy(i32),
    /// One step was taken; monotonic mode takes one per sync.
    Stepped,
}

/// The result of a sync decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub status: StatefulSetStatus,
    pub wait: Option<Wait>,
    /// Re-plan after this many seconds (a pod becomes available under `minReadySeconds`).
    pub requeue_after_secs: Option<u64>,
}

struct Slot<'a> {
    ordinal: i32,
    /// `None`: a placeholder (no pod object yet).
    pod: Option<&'a Pod>,
}

fn spec_i32(v: Option<i32>, default: i32) -> i32 {
    v.unwrap_or(default)
}

/// Decide one sync.
pub fn plan(input: &Input<'_>) -> Plan {
    let set = input.set;
    let spec = set.spec.clone().unwrap_or_default();
    let replicas = spec_i32(spec.replicas, 1).max(0);
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0).max(0);
    let end = start + replicas; // exclusive
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let min_ready = spec.min_ready_seconds.unwrap_or(0).max(0);
    let set_name = set.metadata.name.clone().unwrap_or_default();

    // Partition the pods: in range, condemned (out of range), ignored (unparseable).
    let mut in_range: BTreeMap<i32, &Pod> = BTreeMap::new();
    let mut condemned: Vec<&Pod> = Vec::new();
    for pod in input.pods {
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let Some((parent, ordinal)) = pods::parent_and_ordinal(name) else { continue };
        if parent != set_name {
            continue;
        }
        if (start..end).contains(&ordinal) {
            in_range.insert(ordinal, pod);
        } else {
            condemned.push(pod);
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(pods::get_ordinal(p)));
    let slots: Vec<Slot<'_>> =
        (start..end).map(|ordinal| Slot { ordinal, pod: in_range.get(&ordinal).copied() }).collect();

    let mut plan =
        Plan { actions: Vec::new(), status: StatefulSetStatus::default(), wait: None, requeue_after_secs: None };
    let unavailable = |p: Option<&Pod>| match p {
        None => true,
        Some(p) => !pods::is_healthy(p) || !pods::is_available(p, min_ready, input.now),
    };
    let first_unavailable: Option<i32> = slots
        .iter()
        .find(|s| unavailable(s.pod))
        .map(|s| s.ordinal)
        .or_else(|| condemned.iter().rev().find(|p| unavailable(Some(p))).map(|p| pods::get_ordinal(p)));
    // Ask to be woken when a Ready pod becomes available.
    plan.requeue_after_secs =
        input.pods.iter().filter_map(|p| pods::seconds_until_available(p, min_ready, input.now)).min();

    let deleting = set.metadata.deletion_timestamp.is_some();
    if !deleting {
        run_passes(
            input,
            &spec,
            &set_name,
            start,
            monotonic,
            min_ready,
            &slots,
            &condemned,
            first_unavailable,
            &mut plan,
        );
    }
    plan.status = status(input, &slots, &condemned, min_ready, &plan);
    plan
}

#[allow(clippy::too_many_arguments)]
fn run_passes(
    input: &Input<'_>,
    spec: &k8s_openapi::api::apps::v1::StatefulSetSpec,
    set_name: &str,
    start: i32,
    monotonic: bool,
    min_ready: i32,
    slots: &[Slot<'_>],
    condemned: &[&Pod],
    first_unavailable: Option<i32>,
    plan: &mut Plan,
) {
    // Pass A: in-range slots, lowest first.
    for slot in slots {
        match slot.pod {
            Some(pod) if pods::is_failed(pod) || pods::is_succeeded(pod) => {
                if !pods::is_terminating(pod) {
                    plan.actions.push(delete(pod, DeleteReason::Finished));
                }
                if monotonic {
                    plan.wait = Some(Wait::Stepped);
                    return;
                }
            }
            None => {
                let ordinal = slot.ordinal;
                let (template, revision) = template_for(input, spec, start, ordinal);
                let pod = pods::new_pod(input.set, template, revision, ordinal);
                // Claims first; a claim still being deleted holds the pod back.
                let mut blocked = false;
                for mut claim in pods::claims_for(input.set, ordinal) {
                    let name = claim.metadata.name.clone().unwrap_or_default();
                    match input.claims.iter().find(|c| c.metadata.name.as_deref() == Some(&name)) {
                        Some(existing) if existing.metadata.deletion_timestamp.is_some() => blocked = true,
                        // A claim a previous pod of this ordinal left to the garbage collector.
                        Some(existing)
                            if retention::held_by_old_pod(input.set, existing, &pods::pod_name(set_name, ordinal)) =>
                        {
                            blocked = true
                        }
                        Some(_) => {}
                        None => {
                            claim.metadata.owner_references = retention::owners_for_new_claim(input.set);
                            plan.actions.push(Action::CreateClaim(Box::new(claim)));
                        }
                    }
                }
                if blocked {
                    plan.wait = Some(Wait::ClaimTerminating(ordinal));
                    if monotonic {
                        return;
                    }
                    continue;
                }
                plan.actions.push(Action::CreatePod(Box::new(pod)));
                if monotonic {
                    plan.wait = Some(Wait::Stepped);
                    return;
                }
            }
            Some(pod) => {
                // Upstream `createMissingPersistentVolumeClaims`: a Pending pod whose claim is
                // gone (deleted by hand, or never made) gets it back.
                if pods::phase(pod) == "Pending" && !pods::is_terminating(pod) {
                    for mut claim in pods::claims_for(input.set, slot.ordinal) {
                        let name = claim.metadata.name.clone().unwrap_or_default();
                        if !input.claims.iter().any(|c| c.metadata.name.as_deref() == Some(&name)) {
                            claim.metadata.owner_references = retention::owners_for_new_claim(input.set);
                            plan.actions.push(Action::CreateClaim(Box::new(claim)));
                        }
                    }
                }
                if !pods::identity_matches(input.set, pod) && !pods::is_terminating(pod) {
                    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    labels.insert(pods::POD_NAME_LABEL.into(), name.clone());
                    labels.insert(pods::POD_INDEX_LABEL.into(), slot.ordinal.to_string());
                    let resource_version = pod.metadata.resource_version.clone().unwrap_or_default();
                    plan.actions.push(Action::RepairIdentity { name, resource_version, labels });
                }
                plan.actions.extend(retention::claim_updates(input.set, pod, input.claims, false));
                if monotonic && pods::is_terminating(pod) {
                    plan.wait = Some(Wait::Terminating(slot.ordinal));
                    return;
                }
                if monotonic && (!pods::is_running_and_ready(pod) || !pods::is_available(pod, min_ready, input.now)) {
                    if stuck_on_old_revision(input, spec, start, slots, slot.ordinal, pod) {
                        plan.actions.push(delete(pod, DeleteReason::Update));
                        plan.wait = Some(Wait::Stepped);
                        return;
                    }
                    plan.wait = Some(Wait::Unhealthy(slot.ordinal));
                    return;
                }
            }
        }
    }

    // Pass B: before any condemned pod goes, point its claims at it if they go with it.
    for pod in condemned {
        plan.actions.extend(retention::claim_updates(input.set, pod, input.claims, true));
    }

    // Pass C: condemned, highest first.
    for pod in condemned {
        let ordinal = pods::get_ordinal(pod);
        if pods::is_terminating(pod) {
            if monotonic {
                plan.wait = Some(Wait::Terminating(ordinal));
                return;
            }
            continue;
        }
        let healthy = pods::is_running_and_ready(pod) && pods::is_available(pod, min_ready, input.now);
        if monotonic && !healthy && first_unavailable != Some(ordinal) {
            plan.wait = Some(Wait::Unhealthy(ordinal));
            return;
        }
        plan.actions.push(delete(pod, DeleteReason::Condemned));
        if monotonic {
            plan.wait = Some(Wait::Stepped);
            return;
        }
    }

    // Update stage.
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref() == Some("OnDelete") {
        return;
    }
    let partition = strategy.rolling_update.as_ref().and_then(|r| r.partition).unwrap_or(0).max(0);
    if let Some(max) = strategy.rolling_update.as_ref().and_then(|r| r.max_unavailable.as_ref()) {
        let replicas = spec.replicas.unwrap_or(1).max(0);
        let budget = max_unavailable(max, replicas);
        update_with_max_unavailable(input, start, partition, monotonic, min_ready, budget, slots, plan);
        return;
    }
    for slot in slots.iter().rev() {
        if slot.ordinal < start + partition {
            break;
        }
        // A missing pod (being recreated, or just created by this plan) is unavailable: wait,
        // as upstream does for the pod object it has just made.
        let Some(pod) = slot.pod else {
            plan.wait = Some(Wait::Unhealthy(slot.ordinal));
            return;
        };
        if pods::revision_of(pod) != input.update_revision && !pods::is_terminating(pod) {
            plan.actions.push(delete(pod, DeleteReason::Update));
            plan.wait = Some(Wait::Stepped);
            return;
        }
        if !pods::is_healthy(pod) || !pods::is_available(pod, min_ready, input.now) {
            plan.wait = Some(Wait::Unhealthy(slot.ordinal));
            return;
        }
    }
}

/// Opt out of recovering broken rollouts (set to "false" on the StatefulSet).
pub const ROLLOUT_RECOVERY_ANNOTATION: &str = "ordinal.dev/rollout-recovery";

/// Beyond upstream (#67250, "forced rollback"): under OrderedReady with RollingUpdate, a pod that
/// is not Ready and was built from a revision other than the update revision blocks the rollout
/// forever upstream, even after the template is fixed or reverted. Ordinal replaces it with the
/// update revision instead, but only a pod that is failing (`pods::is_failing`: a back-off, a
/// restart, or past its probes' budget), built from neither the current nor the update revision,
/// at the rollout's cursor (every pod above it is at the update revision) and at or above the
/// partition; never one that is terminating or still starting, and not when the set opts out
/// with `ordinal.dev/rollout-recovery: "false"`. A pod at the update revision itself is left
/// alone (there is nothing better to replace it with).
fn stuck_on_old_revision(
    input: &Input<'_>,
    spec: &k8s_openapi::api::apps::v1::StatefulSetSpec,
    start: i32,
    slots: &[Slot<'_>],
    ordinal: i32,
    pod: &Pod,
) -> bool {
    let opted_out = input
        .set
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROLLOUT_RECOVERY_ANNOTATION))
        .is_some_and(|v| v == "false");
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref() != Some("OnDelete");
    let partition = strategy.rolling_update.as_ref().and_then(|r| r.partition).unwrap_or(0).max(0);
    !opted_out
        && rolling
        && ordinal >= start + partition
        && !pods::is_terminating(pod)
        && !pods::is_running_and_ready(pod)
        && pods::revision_of(pod) != input.update_revision
        && pods::revision_of(pod) != input.current_revision
        && pods::is_failing(pod, input.now)
        && slots
            .iter()
            .filter(|s| s.ordinal > ordinal)
            .all(|s| s.pod.is_some_and(|p| pods::revision_of(p) == input.update_revision))
}

/// `maxUnavailable` as a number of pods: percentages of `replicas` round down, and at least one.
pub fn max_unavailable(value: &IntOrString, replicas: i32) -> i32 {
    let n = match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(100);
            (i64::from(replicas) * pct / 100) as i32
        }
    };
    n.max(1)
}

/// The rolling update with `maxUnavailable` (KEP-961, with the fix of upstream #137666):
/// replace up to `budget` pods at a time, counting every unavailable in-range slot against it.
#[allow(clippy::too_many_arguments)]
fn update_with_max_unavailable(
    input: &Input<'_>,
    start: i32,
    partition: i32,
    monotonic: bool,
    min_ready: i32,
    budget: i32,
    slots: &[Slot<'_>],
    plan: &mut Plan,
) {
    let unavailable = |p: &Pod| !pods::is_healthy(p) || !pods::is_available(p, min_ready, input.now);
    let old = |p: &Pod| pods::revision_of(p) != input.update_revision && !pods::is_terminating(p);
    let down = slots.iter().filter(|s| s.pod.is_none_or(unavailable)).count() as i32;
    let candidates = slots.iter().rev().take_while(|s| s.ordinal >= start + partition).filter_map(|s| s.pod);
    let mut deleted = 0;
    if monotonic {
        if down >= budget {
            plan.wait = Some(Wait::Stepped);
            return;
        }
        for pod in candidates.filter(|p| old(p)).take((budget - down) as usize) {
            plan.actions.push(delete(pod, DeleteReason::Update));
            deleted += 1;
        }
    } else {
        // Old pods that are already down cost nothing to replace (the 1.35 regression's fix).
        let old_down: Vec<&Pod> = candidates.clone().filter(|p| old(p) && unavailable(p)).collect();
        if down >= budget && old_down.is_empty() {
            plan.wait = Some(Wait::Stepped);
            return;
        }
        for pod in &old_down {
            plan.actions.push(delete(pod, DeleteReason::Update));
            deleted += 1;
        }
        let room = (budget - down).max(0) as usize;
        for pod in candidates.filter(|p| old(p) && !unavailable(p)).take(room) {
            plan.actions.push(delete(pod, DeleteReason::Update));
            deleted += 1;
        }
    }
    if deleted > 0 {
        plan.wait = Some(Wait::Stepped);
    }
}

fn delete(pod: &Pod, reason: DeleteReason) -> Action {
    Action::DeletePod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        reason,
    }
}

/// Which revision a (re)created pod of `ordinal` gets (upstream `newVersionedStatefulSetPod`).
fn template_for<'a>(
    input: &Input<'a>,
    spec: &k8s_openapi::api::apps::v1::StatefulSetSpec,
    start: i32,
    ordinal: i32,
) -> (&'a PodTemplateSpec, &'a str) {
    let current = (input.current_template, input.current_revision);
    let update = (input.update_template, input.update_revision);
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let current_replicas = input.set.status.as_ref().and_then(|s| s.current_replicas).unwrap_or(0);
    match (&strategy.type_.as_deref(), &strategy.rolling_update) {
        (Some("RollingUpdate") | None, None) if ordinal < start + current_replicas => current,
        (_, Some(rolling)) if ordinal < start + rolling.partition.unwrap_or(0) => current,
        _ => update,
    }
}

/// Status over in-range slots and condemned pods, as upstream's `computeReplicaStatus`, then
/// completion: currentRevision advances once every pod is updated and ready — for RollingUpdate
/// as upstream, and also for OnDelete (upstream #73492).
fn status(input: &Input<'_>, slots: &[Slot<'_>], condemned: &[&Pod], min_ready: i32, plan: &Plan) -> StatefulSetStatus {
    let set = input.set;
    let spec_replicas = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let mut s = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(input.current_revision.to_string()),
        update_revision: Some(input.update_revision.to_string()),
        collision_count: Some(input.collision_count),
        ..Default::default()
    };
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    let all = slots.iter().filter_map(|s| s.pod).chain(condemned.iter().copied());
    for pod in all {
        if !pods::is_created(pod) {
            continue;
        }
        replicas += 1;
        if pods::is_running_and_ready(pod) {
            ready += 1;
            if pods::is_available(pod, min_ready, input.now) {
                available += 1;
            }
        }
        if pods::is_terminating(pod) {
            continue;
        }
        let revision = pods::revision_of(pod);
        if revision == input.current_revision {
            current += 1;
        }
        if revision == input.update_revision {
            updated += 1;
        }
    }
    // Pods this plan deletes for the update no longer count as current.
    let deleted_for_update =
        plan.actions.iter().filter(|a| matches!(a, Action::DeletePod { reason: DeleteReason::Update, .. })).count()
            as i32;
    current -= deleted_for_update;
    s.replicas = replicas;
    s.ready_replicas = Some(ready);
    s.available_replicas = Some(available);
    s.current_replicas = Some(current);
    s.updated_replicas = Some(updated);
    if updated == ready && ready == replicas && replicas == spec_replicas {
        s.current_revision = s.update_revision.clone();
        s.current_replicas = Some(updated);
    }
    s
}

/// Whether a stored status differs from a planned one in a way that must be written (upstream's
/// `inconsistentStatus`).
pub fn status_changed(stored: Option<&StatefulSetStatus>, planned: &StatefulSetStatus) -> bool {
    let Some(stored) = stored else { return true };
    planned.observed_generation > stored.observed_generation
        || stored.replicas != planned.replicas
        || stored.current_replicas != planned.current_replicas
        || stored.ready_replicas != planned.ready_replicas
        || stored.updated_replicas != planned.updated_replicas
        || stored.available_replicas != planned.available_replicas
        || stored.current_revision != planned.current_revision
        || stored.update_revision != planned.update_revision
        || stored.collision_count != planned.collision_count
}
