//! The resource registry: every kind Ordinal serves, with the facts discovery, routing, storage
//! and kubectl need (group/version, plural and singular names, short names, scope, categories,
//! subresources). Adding a kind starts here.

/// Subresources a kind offers beyond the object itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `…/status`: writes there change only `status`; writes to the object ignore `status`.
    Status,
    /// `…/scale`: an `autoscaling/v1` `Scale` view of `spec.replicas`.
    Scale,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group, `""` for core.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL segment: `statefulsets`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// Whether `metadata.generation` is bumped on spec changes (kinds with a `spec`).
    pub tracks_generation: bool,
}

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }
    /// `statefulsets.apps`, or `pods` for the core group.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
    pub fn has_status(&self) -> bool {
        self.subresources.contains(&Subresource::Status)
    }
    pub fn has_scale(&self) -> bool {
        self.subresources.contains(&Subresource::Scale)
    }
    /// The URL prefix of the group version: `/api/v1` or `/apis/apps/v1`.
    pub fn gv_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

use Subresource::{Scale, Status};

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];
const API_EXTENSIONS: &[&str] = &["api-extensions"];

macro_rules! resource {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $short:expr, $namespaced:expr, $cats:expr, $subs:expr, $gen:expr) => {
        ResourceInfo {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: $short,
            namespaced: $namespaced,
            categories: $cats,
            subresources: $subs,
            tracks_generation: $gen,
        }
    };
}

/// Every served resource, in discovery order.
pub static RESOURCES: &[ResourceInfo] = &[
    resource!("", "v1", "Namespace", "namespaces", "namespace", &["ns"], false, NONE, &[Status], false),
    resource!("", "v1", "Node", "nodes", "node", &["no"], false, NONE, &[Status], false),
    resource!("", "v1", "Pod", "pods", "pod", &["po"], true, ALL, &[Status], false),
    resource!("", "v1", "Service", "services", "service", &["svc"], true, ALL, &[Status], false),
    resource!("", "v1", "Endpoints", "endpoints", "endpoints", &["ep"], true, NONE, &[], false),
    resource!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        &["pvc"],
        true,
        NONE,
        &[Status],
        false
    ),
    resource!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        &["pv"],
        false,
        NONE,
        &[Status],
        false
    ),
    resource!("", "v1", "ConfigMap", "configmaps", "configmap", &["cm"], true, NONE, &[], false),
    resource!("", "v1", "Secret", "secrets", "secret", &[], true, NONE, &[], false),
    resource!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", &["sa"], true, NONE, &[], false),
    resource!("", "v1", "Event", "events", "event", &["ev"], true, NONE, &[], false),
    resource!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", &["sts"], true, ALL, &[Status, Scale], true),
    resource!("apps", "v1", "Deployment", "deployments", "deployment", &["deploy"], true, ALL, &[Status, Scale], true),
    resource!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", &["rs"], true, ALL, &[Status, Scale], true),
    resource!(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        "replicationcontroller",
        &["rc"],
        true,
        ALL,
        &[Status, Scale],
        true
    ),
    resource!("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", &["quota"], true, NONE, &[Status], false),
    resource!("", "v1", "LimitRange", "limitranges", "limitrange", &["limits"], true, NONE, &[], false),
    resource!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", &["ds"], true, ALL, &[Status], true),
    resource!("batch", "v1", "Job", "jobs", "job", &[], true, ALL, &[Status], true),
    resource!("batch", "v1", "CronJob", "cronjobs", "cronjob", &["cj"], true, ALL, &[Status], true),
    resource!(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        &[],
        true,
        NONE,
        &[],
        false
    ),
    resource!(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        &["sc"],
        false,
        NONE,
        &[],
        false
    ),
    resource!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        &[],
        true,
        NONE,
        &[],
        false
    ),
    resource!("coordination.k8s.io", "v1", "Lease", "leases", "lease", &[], true, NONE, &[], false),
    resource!("events.k8s.io", "v1", "Event", "events", "event", &["ev"], true, NONE, &[], false),
    resource!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", &[], true, NONE, &[], false),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        &[],
        false,
        NONE,
        &[],
        false
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        &[],
        true,
        NONE,
        &[],
        false
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        &[],
        false,
        NONE,
        &[],
        false
    ),
    resource!(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        &["netpol"],
        true,
        NONE,
        &[],
        true
    ),
    resource!("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", &["ing"], true, NONE, &[Status], true),
    resource!("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", &[], false, NONE, &[], true),
    resource!(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        &["pc"],
        false,
        NONE,
        &[],
        false
    ),
    resource!(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        &["hpa"],
        true,
        ALL,
        &[Status],
        true
    ),
    resource!(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        &["pdb"],
        true,
        NONE,
        &[Status],
        true
    ),
    resource!(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        "apiservice",
        &[],
        false,
        API_EXTENSIONS,
        &[Status],
        false
    ),
];

/// kube-apiserver's discovery priorities of the group versions Ordinal serves (upstream
/// `apiVersionPriorities`): (`groupPriorityMinimum`, `versionPriority`) of each local
/// APIService.
pub fn api_service_priority(group: &str, version: &str) -> (i32, i32) {
    match (group, version) {
        ("", "v1") | ("apiregistration.k8s.io", "v1") => (18000, 1),
        ("apps", "v1") => (17800, 15),
        ("batch", "v1") => (17400, 15),
        ("events.k8s.io", "v1") => (17750, 15),
        ("storage.k8s.io", "v1") => (16800, 15),
        ("coordination.k8s.io", "v1") => (16500, 15),
        ("discovery.k8s.io", "v1") => (16200, 15),
        ("autoscaling", "v2") => (17500, 30),
        ("networking.k8s.io", "v1") => (17200, 15),
        ("policy", "v1") => (17100, 15),
        ("rbac.authorization.k8s.io", "v1") => (17000, 15),
        ("scheduling.k8s.io", "v1") => (16600, 15),
        _ => (1000, 15),
    }
}

/// The API groups in discovery order (core `""` first), each with its one version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.iter().any(|(g, _)| *g == r.group) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The resource at `/{group}/{version}/{plural}`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource for an `apiVersion` and `kind` pair, as found in objects and owner references.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let (group, version) = split_api_version(api_version);
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree() {
        let sts = find("apps", "v1", "statefulsets").expect("statefulsets are served");
        assert_eq!(sts.api_version(), "apps/v1");
        assert_eq!(sts.group_resource(), "statefulsets.apps");
        assert!(sts.has_scale() && sts.has_status());
        assert_eq!(by_kind("apps/v1", "StatefulSet"), Some(sts));
        assert_eq!(by_kind("v1", "Pod").map(|r| r.plural), Some("pods"));
        assert_eq!(by_kind("events.k8s.io/v1", "Event").map(|r| r.group), Some("events.k8s.io"));
        assert_eq!(groups()[0], ("", "v1"));
    }

    #[test]
    fn names_are_unique_per_group() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(!(a.group == b.group && a.plural == b.plural), "{} served twice", a.plural);
            }
        }
    }
}
