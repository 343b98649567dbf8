//! Job decisions (upstream `pkg/controller/job`): how many pods to run and which, when the job
//! succeeds or fails (completions, `Indexed` completion indexes, `backoffLimit`,
//! `activeDeadlineSeconds`, suspension), the back-off before replacing failed pods, the pod a
//! job makes, its status, and when a finished job is deleted (`ttlSecondsAfterFinished`, the
//! TTL-after-finished controller's decision).
//!
//! Counting differs from upstream in one way, said in the README: upstream tracks finished pods
//! with a finalizer so a count survives the pod's deletion; here the counts come from the pods
//! the job still has and never go down, so deleting a finished pod does not undo its count, but
//! a pod that fails after a counted one was deleted is not counted twice either.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::pod;

/// The annotation (and label) naming an `Indexed` job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Upstream's pod-failure back-off: 10 s, doubling, at most 6 minutes.
const BACKOFF_BASE: SignedDuration = SignedDuration::from_secs(10);
const BACKOFF_MAX: SignedDuration = SignedDuration::from_secs(360);

/// What one sync does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Pods to create: their completion index for `Indexed` jobs, `None` otherwise.
    pub create: Vec<Option<i32>>,
    /// Pods to delete: (name, uid).
    pub delete: Vec<(String, String)>,
    pub status: JobStatus,
    /// Delete the job itself (its TTL after finishing has passed).
    pub delete_job: bool,
    /// Sync again at this time (a back-off, a deadline or a TTL ends).
    pub requeue_at: Option<Timestamp>,
}

fn is_finished_condition(c: &JobCondition) -> bool {
    c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed")
}

/// Whether the job has finished (its `Complete` or `Failed` condition is true), and when.
pub fn finished_at(job: &Job) -> Option<Option<Timestamp>> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| is_finished_condition(c))
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

fn index_of(p: &Pod) -> Option<i32> {
    p.metadata.annotations.as_ref()?.get(COMPLETION_INDEX)?.parse().ok()
}

/// `0-2,4` from {0, 1, 2, 4}: upstream's `completedIndexes` form.
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
    }
    out.join(",")
}

/// The indexes in a `completedIndexes` string (malformed parts are skipped).
pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<i32>().ok()),
        }
    }
    out
}

fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    let time = Time(now);
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(time.clone()),
        last_transition_time: Some(time),
    }
}

fn when(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

/// The back-off before a new pod after `failures` failures, the last at `last` (upstream's
/// `getRemainingTime` over the pod-failure back-off).
pub fn backoff_until(failures: i32, last: Option<Timestamp>) -> Option<Timestamp> {
    let last = last?;
    if failures <= 0 {
        return None;
    }
    let mut delay = BACKOFF_BASE;
    for _ in 1..failures {
        delay = (delay * 2).min(BACKOFF_MAX);
    }
    last.checked_add(delay).ok()
}

/// When a pod finished (its last container's finish), for the back-off.
fn finished_time(p: &Pod) -> Option<Timestamp> {
    let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().filter_map(|s| Some(s.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref()?.0)).max()
}

/// Plan one sync of `job` over the pods it controls.
pub fn plan(job: &Job, pods: &[Pod], now: Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut status = JobStatus {
        conditions: old.conditions.clone(),
        start_time: old.start_time.clone(),
        completion_time: old.completion_time.clone(),
        completed_indexes: old.completed_indexes.clone(),
        ..Default::default()
    };
    let name = |p: &Pod| Some((p.metadata.name.clone()?, p.metadata.uid.clone().unwrap_or_default()));
    let active: Vec<&Pod> =
        pods.iter().filter(|p| !pod::is_succeeded(p) && !pod::is_failed(p) && !pod::is_terminating(p)).collect();
    let succeeded: Vec<&Pod> = pods.iter().filter(|p| pod::is_succeeded(p)).collect();
    let failed: Vec<&Pod> = pods.iter().filter(|p| pod::is_failed(p)).collect();
    let restarts: i32 = if spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("OnFailure") {
        active
            .iter()
            .flat_map(|p| p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()))
            .map(|c| c.restart_count)
            .sum()
    } else {
        0
    };
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let mut completed: BTreeSet<i32> = parse_indexes(old.completed_indexes.as_deref().unwrap_or_default());
    if indexed {
        completed.extend(succeeded.iter().filter_map(|p| index_of(p)));
    }
    status.succeeded =
        Some(if indexed { count(completed.len()) } else { count(succeeded.len()) }.max(old.succeeded.unwrap_or(0)));
    status.failed = Some(count(failed.len()).max(old.failed.unwrap_or(0)));
    status.ready = Some(count(active.iter().filter(|p| pod::is_ready(p)).count()));
    if indexed {
        status.completed_indexes = Some(format_indexes(&completed));
    }
    let mut plan = Plan {
        create: Vec::new(),
        delete: Vec::new(),
        status: JobStatus::default(),
        delete_job: false,
        requeue_at: None,
    };

    // A finished job runs nothing and waits for its TTL.
    if let Some(at) = finished_at(job) {
        status.active = Some(0);
        plan.delete = active.iter().filter_map(|p| name(p)).collect();
        if let (Some(ttl), Some(at)) = (spec.ttl_seconds_after_finished, at) {
            let expires = at.checked_add(SignedDuration::from_secs(i64::from(ttl))).unwrap_or(at);
            if now >= expires {
                plan.delete_job = true;
            } else {
                plan.requeue_at = Some(expires);
            }
        }
        status.ready = Some(0);
        plan.status = status;
        return plan;
    }

    let suspended = spec.suspend == Some(true);
    if suspended {
        plan.delete = active.iter().filter_map(|p| name(p)).collect();
        status.active = Some(0);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        if !conditions.iter().any(|c| c.type_ == "Suspended" && c.status == "True") {
            conditions.retain(|c| c.type_ != "Suspended");
            conditions.push(condition("Suspended", "JobSuspended", "Job suspended", now));
        }
        plan.status = status;
        return plan;
    }
    if let Some(conditions) = status.conditions.as_mut()
        && let Some(c) = conditions.iter_mut().find(|c| c.type_ == "Suspended" && c.status == "True")
    {
        *c = JobCondition { status: "False".into(), ..condition("Suspended", "JobResumed", "Job resumed", now) };
        // Upstream restarts the deadline clock when a job is resumed.
        status.start_time = None;
    }
    let start = when(&status.start_time).unwrap_or(now);
    if status.start_time.is_none() {
        status.start_time = Some(Time(now));
    }

    let failures = status.failed.unwrap_or(0) + restarts;
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let deadline = spec.active_deadline_seconds.and_then(|s| start.checked_add(SignedDuration::from_secs(s)).ok());
    let failure = if failures > backoff_limit {
        Some(("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
    } else if deadline.is_some_and(|d| now >= d) {
        Some(("DeadlineExceeded", "Job was active longer than specified deadline"))
    } else {
        None
    };
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let done = match completions {
        Some(c) if indexed => count(completed.len()) >= c,
        Some(c) => status.succeeded.unwrap_or(0) >= c,
        // Without completions: any success, once nothing runs.
        None => status.succeeded.unwrap_or(0) > 0 && active.is_empty(),
    };
    if let Some((reason, message)) = failure {
        plan.delete = active.iter().filter_map(|p| name(p)).collect();
        status.active = Some(0);
        status.ready = Some(0);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        conditions.push(condition("FailureTarget", reason, message, now));
        conditions.push(condition("Failed", reason, message, now));
        plan.requeue_at =
            spec.ttl_seconds_after_finished.and_then(|t| now.checked_add(SignedDuration::from_secs(i64::from(t))).ok());
        plan.status = status;
        return plan;
    }
    if done {
        plan.delete = active.iter().filter_map(|p| name(p)).collect();
        status.active = Some(0);
        status.ready = Some(0);
        status.completion_time = Some(Time(now));
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        conditions.push(condition(
            "SuccessCriteriaMet",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now,
        ));
        conditions.push(condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods", now));
        plan.requeue_at =
            spec.ttl_seconds_after_finished.and_then(|t| now.checked_add(SignedDuration::from_secs(i64::from(t))).ok());
        plan.status = status;
        return plan;
    }

    // How many should run: parallelism, but no more than the completions still wanted.
    let want = match completions {
        Some(c) if indexed => parallelism.min(c - count(completed.len())),
        Some(c) => parallelism.min(c - status.succeeded.unwrap_or(0)),
        // A work queue with a success: no new pods, the running ones finish.
        None if status.succeeded.unwrap_or(0) > 0 => count(active.len()),
        None => parallelism,
    }
    .max(0);
    let running = count(active.len());
    let last_failure = failed.iter().filter_map(|p| finished_time(p)).max();
    let backoff = backoff_until(status.failed.unwrap_or(0), last_failure).filter(|t| *t > now);
    if running > want {
        // Surplus: the newest pods go (not ready first).
        let mut ranked = active.clone();
        ranked
            .sort_by_key(|p| (pod::is_ready(p), std::cmp::Reverse(p.metadata.creation_timestamp.clone().map(|t| t.0))));
        plan.delete = ranked.into_iter().take(usize::try_from(running - want).unwrap_or(0)).filter_map(name).collect();
    } else if running < want {
        match backoff {
            Some(until) => plan.requeue_at = Some(until),
            None if indexed => {
                let taken: BTreeSet<i32> = active.iter().filter_map(|p| index_of(p)).collect();
                let total = completions.unwrap_or(0);
                plan.create = (0..total)
                    .filter(|i| !completed.contains(i) && !taken.contains(i))
                    .take(usize::try_from(want - running).unwrap_or(0))
                    .map(Some)
                    .collect();
            }
            None => plan.create = vec![None; usize::try_from(want - running).unwrap_or(0)],
        }
    }
    status.active = Some(running + count(plan.create.len()) - count(plan.delete.len()));
    if let Some(d) = deadline {
        plan.requeue_at = Some(plan.requeue_at.map_or(d, |r| r.min(d)));
    }
    plan.status = status;
    plan
}

/// The pod a job makes: its template, owned by the job, named `<job>-` (generated) or for
/// `Indexed` jobs `<job>-<index>-` with the index as annotation, label, `JOB_COMPLETION_INDEX`
/// and hostname `<job>-<index>`, as upstream's job controller makes them.
pub fn new_pod(job: &Job, index: Option<i32>) -> Pod {
    let spec = job.spec.clone().unwrap_or_default();
    let template = spec.template;
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let mut pod = Pod { metadata: template.metadata.unwrap_or_default(), spec: template.spec, status: None };
    pod.metadata.name = None;
    pod.metadata.generate_name = Some(match index {
        Some(i) => format!("{job_name}-{i}-"),
        None => format!("{job_name}-"),
    });
    pod.metadata.namespace = job.metadata.namespace.clone();
    pod.metadata.owner_references = Some(vec![crate::ownership::controller_ref("batch/v1", "Job", &job.metadata)]);
    if let Some(i) = index {
        let mut annotations: BTreeMap<String, String> = pod.metadata.annotations.take().unwrap_or_default();
        annotations.insert(COMPLETION_INDEX.into(), i.to_string());
        pod.metadata.annotations = Some(annotations);
        let mut labels = pod.metadata.labels.take().unwrap_or_default();
        labels.insert(COMPLETION_INDEX.into(), i.to_string());
        pod.metadata.labels = Some(labels);
        if let Some(pod_spec) = pod.spec.as_mut() {
            if pod_spec.hostname.as_deref().is_none_or(str::is_empty) {
                pod_spec.hostname = Some(format!("{job_name}-{i}"));
            }
            for c in pod_spec.containers.iter_mut().chain(pod_spec.init_containers.iter_mut().flatten()) {
                let env = c.env.get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
                    env.push(k8s_openapi::api::core::v1::EnvVar {
                        name: "JOB_COMPLETION_INDEX".into(),
                        value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                            field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                                api_version: None,
                                field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                            }),
                            ..Default::default()
                        }),
                        value: None,
                    });
                }
            }
        }
    }
    pod
}

#[cfg(test)]
mod tests;
