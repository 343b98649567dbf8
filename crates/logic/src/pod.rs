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
