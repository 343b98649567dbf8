//! Upstream's pod predicates, shared by the workload controllers: phase, readiness,
//! availability after `minReadySeconds`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

pub fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}
pub fn is_failed(pod: &Pod) -> bool {
    phase(pod) == "Failed"
}
pub fn is_succeeded(pod: &Pod) -> bool {
    phase(pod) == "Succeeded"
}
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

pub fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

/// Ready for at least `min_ready` seconds (upstream's `isRunningAndAvailable` without phase).
pub fn is_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready <= 0 {
        return true;
    }
    match ready_condition(pod).and_then(|c| c.last_transition_time.as_ref()) {
        Some(t) => t.0.as_second() + i64::from(min_ready) < now.as_second(),
        None => false,
    }
}

/// Seconds until a Ready pod becomes available, if it is Ready but not yet available.
pub fn seconds_until_available(pod: &Pod, min_ready: i32, now: Timestamp) -> Option<u64> {
    if min_ready <= 0 || !is_ready(pod) || is_available(pod, min_ready, now) {
        return None;
    }
    let since = ready_condition(pod)?.last_transition_time.as_ref()?.0.as_second();
    Some((since + i64::from(min_ready) + 1 - now.as_second()).max(1) as u64)
}

/// Waiting reasons of a container that will not start without help (the kubelet's back-offs and
/// configuration errors), as opposed to one that is still being created.
const FAILING_REASONS: [&str; 8] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Seconds a container may run before it must be Ready: its startup probe's and its readiness
/// probe's whole budgets (initial delay + period × failure threshold, with upstream's defaults
/// 0, 10 and 3), plus the kubelet's 10 s status period for a status still on its way.
fn startup_budget(container: &k8s_openapi::api::core::v1::Container) -> i64 {
    let budget = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref().map_or(0, |p| {
            i64::from(p.initial_delay_seconds.unwrap_or(0))
                + i64::from(p.period_seconds.unwrap_or(10)) * i64::from(p.failure_threshold.unwrap_or(3))
        })
    };
    budget(&container.startup_probe) + budget(&container.readiness_probe) + 10
}

/// Whether a pod that is not Ready is failing rather than starting: a container in a back-off or
/// configuration error, one that has restarted and is not ready, or one running past its probes'
/// budget without becoming ready. A pod whose containers have not started yet is starting.
pub fn is_failing(pod: &Pod, now: Timestamp) -> bool {
    let Some(status) = pod.status.as_ref() else { return false };
    let spec = pod.spec.as_ref();
    let statuses = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    statuses.filter(|s| !s.ready).any(|s| {
        let state = s.state.as_ref();
        let waiting = state.and_then(|st| st.waiting.as_ref()).and_then(|w| w.reason.as_deref());
        if waiting.is_some_and(|r| FAILING_REASONS.contains(&r)) || s.restart_count > 0 {
            return true;
        }
        let started = state.and_then(|st| st.running.as_ref()).and_then(|r| r.started_at.as_ref());
        let budget = spec.and_then(|sp| sp.containers.iter().find(|c| c.name == s.name)).map(startup_budget);
        match (started, budget) {
            (Some(at), Some(budget)) => now.as_second() - at.0.as_second() > budget,
            _ => false,
        }
    })
}
