//! The Node this machine is: registered at start (name, labels, capacity, addresses, system
//! info), its status and Lease renewed as kubelet does. When the node cannot run pods (not
//! root, no runtime) it says so: `Ready=False` with the reason, and the
//! `node.kubernetes.io/not-ready` `NoSchedule` taint, so the scheduler leaves pods Pending and
//! says why.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const HEARTBEAT: Duration = Duration::from_secs(10);

pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_string()))
        .unwrap_or_else(|| "Linux".into())
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Whether the node can run pods, and its address.
#[derive(Debug, Clone)]
pub struct Health {
    /// Ok, or why pods cannot run here.
    pub ready: Result<(), String>,
    pub internal_ip: String,
}

fn node_object(name: &str, health: &Health) -> Node {
    let mut v = json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch(),
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch()}},
        "spec": {"taints": taints(health)},
    });
    v["status"] = status(name, health, None)["status"].clone();
    serde_json::from_value(v).unwrap_or_default()
}

fn taints(health: &Health) -> serde_json::Value {
    match health.ready {
        Ok(()) => json!([]),
        Err(_) => json!([{"key": NOT_READY_TAINT, "effect": "NoSchedule"}]),
    }
}

/// The node's status now: resources, addresses, system info and the Ready condition, whose
/// `lastTransitionTime` moves only when its status changes (as kubelet's setter does).
fn status(name: &str, health: &Health, stored: Option<&Node>) -> serde_json::Value {
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let resources = json!({"cpu": cpus.to_string(), "memory": format!("{}Ki", memory_kib()), "pods": "110"});
    json!({"status": {
        "capacity": resources, "allocatable": resources,
        "addresses": [{"type": "InternalIP", "address": health.internal_ip}, {"type": "Hostname", "address": name}],
        "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": kernel(), "osImage": os_image(),
            "containerRuntimeVersion": format!("ordinal://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": "v1.33.0+ordinal", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": arch()},
        "conditions": [ready_condition(health, &now, stored)]
    }})
}

fn ready_condition(health: &Health, now: &str, stored: Option<&Node>) -> serde_json::Value {
    let (status, reason, message) = match &health.ready {
        Ok(()) => ("True", "KubeletReady", "kubelet is posting ready status"),
        Err(why) => ("False", "KubeletNotReady", why.as_str()),
    };
    let since = stored
        .and_then(|n| n.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").cloned())
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time)
        .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| now.to_string());
    json!({"type": "Ready", "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": now, "lastTransitionTime": since})
}

/// Register the node and keep its status and Lease fresh until `shutdown`.
pub async fn run(client: kube::Client, shutdown: CancellationToken, name: String, health: Health) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        if let Err(e) = heartbeat(&nodes, &leases, &name, &health).await {
            tracing::warn!(node = %name, error = %e, "node heartbeat failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}

async fn heartbeat(nodes: &Api<Node>, leases: &Api<Lease>, name: &str, health: &Health) -> kube::Result<()> {
    let stored = nodes.get_opt(name).await?;
    match &stored {
        None => match nodes.create(&PostParams::default(), &node_object(name, health)).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e),
        },
        Some(node) => {
            // The not-ready taint follows readiness; other taints (the user's) stay.
            let current = node.spec.clone().and_then(|s| s.taints).unwrap_or_default();
            let has = current.iter().any(|t| t.key == NOT_READY_TAINT);
            if has == health.ready.is_ok() {
                let mut kept: Vec<serde_json::Value> = current
                    .iter()
                    .filter(|t| t.key != NOT_READY_TAINT)
                    .filter_map(|t| serde_json::to_value(t).ok())
                    .collect();
                if health.ready.is_err() {
                    kept.push(json!({"key": NOT_READY_TAINT, "effect": "NoSchedule"}));
                }
                nodes.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"taints": kept}}))).await?;
            }
        }
    }
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(status(name, health, stored.as_ref()))).await?;
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}});
    leases.patch(name, &PatchParams::apply("ordinal-node").force(), &Patch::Apply(lease)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(status: &str, since: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"conditions": [
            {"type": "Ready", "status": status, "lastTransitionTime": since}]}}))
        .expect("node")
    }

    #[test]
    fn ready_transition_time_moves_only_when_readiness_changes() {
        let ready = Health { ready: Ok(()), internal_ip: "10.0.0.1".into() };
        let now = "2026-12-02T10:00:00Z";
        let kept = ready_condition(&ready, now, Some(&stored("True", "2026-12-01T08:00:00Z")));
        assert_eq!(kept["lastTransitionTime"], "2026-12-01T08:00:00Z");
        assert_eq!(kept["lastHeartbeatTime"], now);
        let flipped = ready_condition(&ready, now, Some(&stored("False", "2026-12-01T08:00:00Z")));
        assert_eq!(flipped["lastTransitionTime"], now);
        assert_eq!(ready_condition(&ready, now, None)["lastTransitionTime"], now);
    }
}
