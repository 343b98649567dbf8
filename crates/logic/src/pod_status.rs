//! A pod's status as kubelet reports it, from what the node observed of its containers: phase
//! (kubelet's `getPhase`), the `PodReadyToStartContainers`, `Initialized`, `ContainersReady` and
//! `Ready` conditions, and container statuses with state, last state and restart count; also
//! kubelet's restart rule. Each container's state comes from `kubelet::container_statuses`.

#[cfg(test)]
mod tests;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// The terminated state of a container run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, `ContainerStatusUnknown`.
    pub reason: String,
    pub message: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub container_id: String,
}

impl Terminated {
    /// Kubelet's reason for an exit: OOM first, then a start failure, then the code.
    pub fn reason_for(exit_code: i32, oom_killed: bool, start_failed: bool) -> &'static str {
        if oom_killed {
            "OOMKilled"
        } else if start_failed {
            "StartError"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// Why a container waits, as kubelet words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingReason {
    ContainerCreating,
    PodInitializing,
    CrashLoopBackOff,
    ErrImagePull,
    ImagePullBackOff,
    ErrImageNeverPull,
    CreateContainerConfigError,
    CreateContainerError,
}

impl WaitingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitingReason::ContainerCreating => "ContainerCreating",
            WaitingReason::PodInitializing => "PodInitializing",
            WaitingReason::CrashLoopBackOff => "CrashLoopBackOff",
            WaitingReason::ErrImagePull => "ErrImagePull",
            WaitingReason::ImagePullBackOff => "ImagePullBackOff",
            WaitingReason::ErrImageNeverPull => "ErrImageNeverPull",
            WaitingReason::CreateContainerConfigError => "CreateContainerConfigError",
            WaitingReason::CreateContainerError => "CreateContainerError",
        }
    }

    /// Failures of the image puller, which backs off exponentially.
    pub fn is_pull_failure(self) -> bool {
        matches!(self, WaitingReason::ErrImagePull | WaitingReason::ImagePullBackOff)
    }
}

/// What the node knows about one container now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting { reason: WaitingReason, message: String },
    Running { started_at: Timestamp, ready: bool, started: bool },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: String,
    pub restart_count: i32,
    pub state: State,
    pub last: Option<Terminated>,
}

impl ContainerView {
    fn is_ready(&self) -> bool {
        matches!(self.state, State::Running { ready: true, .. })
    }
}

/// Should a container that exited with `exit_code` run again under `policy`?
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

/// Kubelet's `getPhase` over the regular containers, with init containers first.
pub fn phase(pod: &Pod, init: &[ContainerView], containers: &[ContainerView]) -> &'static str {
    let policy = restart_policy(pod);
    // An init container that failed for good fails the pod; one still to finish keeps it Pending.
    for c in init {
        match &c.state {
            State::Terminated(t) if t.exit_code == 0 => continue,
            State::Terminated(_) if policy == "Never" => return "Failed",
            _ => return "Pending",
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if c.last.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

fn state_json(state: &State) -> Value {
    match state {
        State::Waiting { reason, message } => {
            let mut w = json!({"reason": reason.as_str()});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({"waiting": w})
        }
        State::Running { started_at, .. } => json!({"running": {"startedAt": rfc3339(*started_at)}}),
        State::Terminated(t) => json!({"terminated": terminated_json(t)}),
    }
}

fn terminated_json(t: &Terminated) -> Value {
    let mut v = json!({"exitCode": t.exit_code, "reason": t.reason, "startedAt": rfc3339(t.started_at),
        "finishedAt": rfc3339(t.finished_at), "containerID": t.container_id});
    if let Some(s) = t.signal {
        v["signal"] = json!(s);
    }
    if !t.message.is_empty() {
        v["message"] = json!(t.message);
    }
    v
}

fn status_json(c: &ContainerView) -> Value {
    let (ready, started) = match &c.state {
        State::Running { ready, started, .. } => (*ready, *started),
        _ => (false, false),
    };
    let mut v = json!({
        "name": c.name, "image": c.image, "imageID": c.image_id, "ready": ready,
        "restartCount": c.restart_count, "started": started, "state": state_json(&c.state),
        "lastState": c.last.as_ref().map(|t| json!({"terminated": terminated_json(t)})).unwrap_or_else(|| json!({})),
    });
    if !c.container_id.is_empty() {
        v["containerID"] = json!(c.container_id);
    }
    v
}

/// A time as Kubernetes writes it (RFC 3339, whole seconds, UTC).
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Facts about the pod the node decided.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    pub pod_ip: String,
    pub host_ip: String,
    /// When the node first saw the pod (`startTime`, unless the status already has one).
    pub start_time: Option<Timestamp>,
    /// The sandbox exists (namespaces and network are set up).
    pub sandbox_ready: bool,
}

/// The whole `status` kubelet would write now. Conditions keep their `lastTransitionTime`
/// from `pod`'s current status while their value is unchanged, and `startTime` is set once
/// (when the node first saw the pod) and kept.
pub fn pod_status(
    pod: &Pod,
    init: &[ContainerView],
    containers: &[ContainerView],
    facts: &PodFacts,
    now: Timestamp,
) -> Value {
    let now = rfc3339(now);
    let phase = phase(pod, init, containers);
    let initialized = init.iter().all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
    let containers_ready = initialized && !containers.is_empty() && containers.iter().all(ContainerView::is_ready);
    let gates_ok = readiness_gates_ok(pod);
    let not_ready_names: Vec<&str> = containers.iter().filter(|c| !c.is_ready()).map(|c| c.name.as_str()).collect();
    let unready_message = format!("containers with unready status: [{}]", not_ready_names.join(" "));
    let uninit: Vec<&str> = init
        .iter()
        .filter(|c| !matches!(&c.state, State::Terminated(t) if t.exit_code == 0))
        .map(|c| c.name.as_str())
        .collect();
    // Finished pods are not ready, whatever the containers were.
    let terminal = phase == "Succeeded" || phase == "Failed";
    let mut conditions = vec![
        condition("PodReadyToStartContainers", facts.sandbox_ready, "", ""),
        if initialized {
            condition("Initialized", true, "", "")
        } else {
            condition(
                "Initialized",
                false,
                "ContainersNotInitialized",
                &format!("containers with incomplete status: [{}]", uninit.join(" ")),
            )
        },
    ];
    let (ready_reason, ready_message) = if terminal {
        ("PodCompleted", String::new())
    } else if !containers_ready {
        ("ContainersNotReady", unready_message.clone())
    } else {
        ("", String::new())
    };
    conditions.push(if containers_ready && !terminal {
        condition("ContainersReady", true, "", "")
    } else {
        condition("ContainersReady", false, ready_reason, &ready_message)
    });
    conditions.push(if containers_ready && gates_ok && !terminal {
        condition("Ready", true, "", "")
    } else if containers_ready && !terminal {
        condition("Ready", false, "ReadinessGatesNotReady", "the status of pod readiness gate is not \"True\"")
    } else {
        condition("Ready", false, ready_reason, &ready_message)
    });
    let previous = pod.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut merged: Vec<Value> = Vec::new();
    // Conditions written by others (PodScheduled, readiness gates) stay as they are.
    for old in &previous {
        if !conditions.iter().any(|c| c["type"] == old.type_.as_str()) {
            merged.push(serde_json::to_value(old).unwrap_or(Value::Null));
        }
    }
    for mut c in conditions {
        let kept = previous.iter().find(|p| c["type"] == p.type_.as_str() && c["status"] == p.status.as_str());
        c["lastTransitionTime"] = match kept.and_then(|p| p.last_transition_time.as_ref()) {
            Some(t) => serde_json::to_value(t).unwrap_or(json!(now)),
            None => json!(now),
        };
        c["lastProbeTime"] = Value::Null;
        merged.push(c);
    }
    let order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"];
    merged.sort_by_key(|c| order.iter().position(|o| c["type"] == *o).unwrap_or(order.len()));
    let mut status = json!({
        "phase": phase,
        "conditions": merged,
        "hostIP": facts.host_ip,
        "hostIPs": [{"ip": facts.host_ip}],
        "containerStatuses": containers.iter().map(status_json).collect::<Vec<_>>(),
    });
    status["startTime"] = match pod.status.as_ref().and_then(|s| s.start_time.as_ref()) {
        Some(kept) => serde_json::to_value(kept).unwrap_or(json!(now)),
        None => json!(facts.start_time.map_or(now, rfc3339)),
    };
    if !init.is_empty() {
        status["initContainerStatuses"] = json!(init.iter().map(status_json).collect::<Vec<_>>());
    }
    if !facts.pod_ip.is_empty() {
        status["podIP"] = json!(facts.pod_ip);
        status["podIPs"] = json!([{"ip": facts.pod_ip}]);
    }
    status
}

fn condition(kind: &str, ok: bool, reason: &str, message: &str) -> Value {
    let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

fn readiness_gates_ok(pod: &Pod) -> bool {
    let gates = pod.spec.as_ref().and_then(|s| s.readiness_gates.clone()).unwrap_or_default();
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    gates.iter().all(|g| conditions.iter().any(|c| c.type_ == g.condition_type && c.status == "True"))
}
