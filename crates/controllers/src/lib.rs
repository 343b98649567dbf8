//! Controllers: thin shells that watch through `kube::Client`, plan with `logic`, and write back
//! through the API. They never touch the store or the API server's internals, so each runs
//! unchanged against any Kubernetes API.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod quota;
pub mod rbac;
pub mod replicaset;
pub mod replicationcontroller;
mod resources;
pub mod scheduler;
pub mod serviceaccount;
pub mod statefulset;
pub mod volumes;
mod workload;

use tokio_util::sync::CancellationToken;

/// The controllers `ordinal server` runs, by kube-controller-manager's names.
pub const NAMES: &[&str] = &[
    "clusterrole-aggregation-controller",
    "cronjob-controller",
    "daemonset-controller",
    "deployment-controller",
    "disruption-controller",
    "endpoints-controller",
    "garbage-collector-controller",
    "job-controller",
    "namespace-controller",
    "persistentvolume-binder-controller",
    "replicaset-controller",
    "replicationcontroller-controller",
    "resourcequota-controller",
    "serviceaccount-controller",
    "statefulset-controller",
];

/// Which controllers run, from kube-controller-manager's `--controllers` syntax: a comma list
/// where `*` is every controller, `name` turns one on and `-name` off (`*,-statefulset`);
/// names may drop their `-controller` suffix. Unknown names are refused.
pub fn enabled_controllers(spec: &str) -> Result<std::collections::BTreeSet<&'static str>, String> {
    let mut enabled = std::collections::BTreeSet::new();
    let mut disabled = std::collections::BTreeSet::new();
    let mut all = false;
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "*" {
            all = true;
            continue;
        }
        let (off, name) = match item.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, item),
        };
        let full = if name.ends_with("-controller") { name.to_string() } else { format!("{name}-controller") };
        let known = NAMES
            .iter()
            .find(|n| **n == full)
            .ok_or_else(|| format!("unknown controller {name:?} (known: {})", NAMES.join(", ")))?;
        if off {
            disabled.insert(*known)
        } else {
            enabled.insert(*known)
        };
    }
    if all {
        enabled.extend(NAMES.iter().copied());
    }
    Ok(enabled.difference(&disabled).copied().collect())
}

/// Start the controllers that run inside `ordinal server` (those `enabled` names, by
/// `NAMES`: garbage collection, namespace cleanup, ClusterRole aggregation, each namespace's
/// `default` service account and `kube-root-ca.crt` (given the CA), disruption budgets' status,
/// StatefulSets, ReplicaSets, Deployments, Jobs (and their TTL after finishing), CronJobs, DaemonSets, ReplicationControllers, ResourceQuota status, endpoints and endpoint slices, persistent volumes
/// with the local provisioner when this machine runs pods) and the scheduler, always. Each task
/// ends when `shutdown` is cancelled.
pub fn spawn_cluster_controllers(
    client: kube::Client,
    shutdown: CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
    provisioner: Option<volumes::LocalProvisioner>,
    root_ca: Option<String>,
    enabled: &std::collections::BTreeSet<&'static str>,
) {
    let (c, s) = (&client, &shutdown);
    let on = |name: &str| enabled.contains(name);
    if on("persistentvolume-binder-controller") {
        tracker.spawn(logged("volume controller", volumes::run(c.clone(), s.clone(), provisioner)));
    }
    if on("endpoints-controller") {
        tracker.spawn(logged("endpoints controller", endpoints::run(c.clone(), s.clone())));
    }
    if on("garbage-collector-controller") {
        tracker.spawn(logged("garbage collector", gc::run(c.clone(), s.clone())));
    }
    if on("namespace-controller") {
        tracker.spawn(logged("namespace controller", namespace::run(c.clone(), s.clone())));
    }
    if on("disruption-controller") {
        tracker.spawn(logged("disruption controller", disruption::run(c.clone(), s.clone())));
    }
    if on("clusterrole-aggregation-controller") {
        tracker.spawn(logged("clusterrole aggregation", rbac::run(c.clone(), s.clone())));
    }
    if on("serviceaccount-controller") {
        tracker.spawn(logged("serviceaccount controller", serviceaccount::run(c.clone(), s.clone(), root_ca)));
    }
    if on("statefulset-controller") {
        tracker.spawn(logged("statefulset controller", statefulset::run(c.clone(), s.clone(), None)));
    }
    if on("daemonset-controller") {
        tracker.spawn(logged("daemonset controller", daemonset::run(c.clone(), s.clone())));
    }
    if on("cronjob-controller") {
        tracker.spawn(logged("cronjob controller", cronjob::run(c.clone(), s.clone())));
    }
    if on("job-controller") {
        tracker.spawn(logged("job controller", job::run(c.clone(), s.clone())));
    }
    if on("replicaset-controller") {
        tracker.spawn(logged("replicaset controller", replicaset::run(c.clone(), s.clone())));
    }
    if on("replicationcontroller-controller") {
        tracker.spawn(logged("replicationcontroller controller", replicationcontroller::run(c.clone(), s.clone())));
    }
    if on("resourcequota-controller") {
        tracker.spawn(logged("resourcequota controller", quota::run(c.clone(), s.clone())));
    }
    if on("deployment-controller") {
        tracker.spawn(logged("deployment controller", deployment::run(c.clone(), s.clone())));
    }
    tracker.spawn(logged("scheduler", scheduler::run(client, shutdown)));
}

/// Log when a long-lived task ends (shutdown diagnostics).
async fn logged(name: &'static str, task: impl std::future::Future<Output = ()>) {
    task.await;
    tracing::debug!(task = name, "stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_are_chosen_as_kube_controller_manager_chooses_them() {
        let all: Vec<&str> = NAMES.to_vec();
        let got = |spec: &str| enabled_controllers(spec).map(|s| s.into_iter().collect::<Vec<_>>());
        assert_eq!(got("*"), Ok(all.clone()));
        let without: Vec<&str> = all.iter().copied().filter(|n| *n != "statefulset-controller").collect();
        assert_eq!(got("*,-statefulset"), Ok(without.clone()));
        assert_eq!(got("-statefulset-controller,*"), Ok(without));
        assert_eq!(
            got("namespace,garbage-collector-controller"),
            Ok(vec!["garbage-collector-controller", "namespace-controller"])
        );
        assert_eq!(got(""), Ok(vec![]));
        assert!(got("*,-kubelet").is_err_and(|e| e.starts_with("unknown controller \"kubelet\"")));
    }
}
