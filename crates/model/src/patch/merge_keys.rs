//! How each list field merges under a strategic merge patch: the `patchStrategy` and
//! `patchMergeKey` struct tags of the upstream API types, as a table of field paths.
//!
//! Paths are object field names from the top of the object; list elements add no segment
//! (`spec.template.spec.containers.ports` is every container's ports). Pod spec fields are
//! written once and found wherever a pod spec sits.

use crate::ResourceInfo;

/// How a list merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Atomic: the patch's list replaces the live one (the default).
    Replace,
    /// Objects merge element-wise by this key.
    MergeByKey(&'static str),
    /// Scalars merge as a set (`metadata.finalizers`).
    MergeSet,
}

/// Where a pod spec sits inside an object of this kind.
fn pod_spec_root(info: &ResourceInfo) -> Option<&'static [&'static str]> {
    match (info.group, info.kind) {
        ("", "Pod") => Some(&["spec"]),
        ("apps", "StatefulSet" | "Deployment" | "ReplicaSet" | "DaemonSet") | ("", "ReplicationController") => {
            Some(&["spec", "template", "spec"])
        }
        _ => None,
    }
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The pod spec's list fields, relative to the pod spec.
fn pod_spec_list(rel: &[&str]) -> Option<ListStrategy> {
    use ListStrategy::*;
    Some(match rel {
        [c] if CONTAINER_LISTS.contains(c) => MergeByKey("name"),
        [c, "ports"] if CONTAINER_LISTS.contains(c) => MergeByKey("containerPort"),
        [c, "env"] if CONTAINER_LISTS.contains(c) => MergeByKey("name"),
        [c, "volumeMounts"] if CONTAINER_LISTS.contains(c) => MergeByKey("mountPath"),
        [c, "volumeDevices"] if CONTAINER_LISTS.contains(c) => MergeByKey("devicePath"),
        [c, "resizePolicy"] if CONTAINER_LISTS.contains(c) => Replace,
        ["volumes"] => MergeByKey("name"),
        ["imagePullSecrets"] => MergeByKey("name"),
        ["hostAliases"] => MergeByKey("ip"),
        ["topologySpreadConstraints"] => MergeByKey("topologyKey"),
        ["resourceClaims"] => MergeByKey("name"),
        ["schedulingGates"] => MergeByKey("name"),
        _ => return None,
    })
}

/// The strategy of the list at `path` in an object of kind `info`.
pub fn list_strategy(info: &ResourceInfo, path: &[&str]) -> ListStrategy {
    use ListStrategy::*;
    match path {
        [.., "metadata", "finalizers"] => return MergeSet,
        [.., "metadata", "ownerReferences"] => return MergeByKey("uid"),
        ["status", "conditions"] => return MergeByKey("type"),
        _ => {}
    }
    if let Some(root) = pod_spec_root(info)
        && let Some(rel) = path.strip_prefix(root)
        && let Some(s) = pod_spec_list(rel)
    {
        return s;
    }
    match (info.group, info.kind, path) {
        ("", "Pod", ["status", "podIPs"]) => MergeByKey("ip"),
        ("", "Pod", ["status", "hostIPs"]) => MergeByKey("ip"),
        ("", "Service", ["spec", "ports"]) => MergeByKey("port"),
        ("", "Node", ["status", "addresses"]) => MergeByKey("type"),
        ("", "Node", ["spec", "podCIDRs"]) => MergeSet,
        _ => Replace,
    }
}
