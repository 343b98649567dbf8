//! Identity and health of a StatefulSet's pods: names and ordinals, the pod and claims built for
//! an ordinal, and upstream's health predicates (`stateful_set_utils.go`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

pub use crate::pod::{
    is_available, is_created, is_failed, is_failing, is_healthy, is_running_and_ready, is_succeeded, is_terminating,
    phase, seconds_until_available,
};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// `<set>-<ordinal>`.
pub fn pod_name(set_name: &str, ordinal: i32) -> String {
    format!("{set_name}-{ordinal}")
}

/// `<template>-<set>-<ordinal>`.
pub fn claim_name(template: &str, set_name: &str, ordinal: i32) -> String {
    format!("{template}-{set_name}-{ordinal}")
}

/// Split `web-12` into (`web`, 12); `None` when the suffix is not a 32-bit integer.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, suffix) = name.rsplit_once('-')?;
    if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    suffix.parse::<i32>().ok().map(|o| (parent, o))
}

/// The ordinal of a pod, or -1.
pub fn get_ordinal(pod: &Pod) -> i32 {
    pod.metadata.name.as_deref().and_then(parent_and_ordinal).map(|(_, o)| o).unwrap_or(-1)
}

/// The revision a pod was built from (its `controller-revision-hash` label).
pub fn revision_of(pod: &Pod) -> &str {
    pod.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)).map(String::as_str).unwrap_or("")
}

/// The controller reference every object the set creates carries.
pub fn controller_ref(set: &StatefulSet) -> OwnerReference {
    crate::ownership::controller_ref("apps/v1", "StatefulSet", &set.metadata)
}

/// The claims ordinal `ordinal` needs, from the set's templates: template labels with the
/// selector's matchLabels on top.
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let match_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .unwrap_or_default()
        .into_iter()
        .map(|template| {
            let template_name = template.metadata.name.clone().unwrap_or_default();
            let mut labels = template.metadata.labels.clone().unwrap_or_default();
            labels.extend(match_labels.clone());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&template_name, &set_name, ordinal)),
                    namespace: set.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: template.metadata.annotations.clone(),
                    ..Default::default()
                },
                spec: template.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// The pod for `ordinal`, built from `template` at `revision` (upstream `newVersionedStatefulSetPod`).
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let name = pod_name(&set_name, ordinal);
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = template_meta.labels.clone().unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.to_string());
    let mut pod_spec = template.spec.clone().unwrap_or_default();
    pod_spec.hostname = Some(name.clone());
    if let Some(service) = spec.service_name.clone().filter(|s| !s.is_empty()) {
        pod_spec.subdomain = Some(service);
    }
    // One volume per claim template, replacing a template volume of the same name.
    let claims = claims_for(set, ordinal);
    let mut volumes: Vec<Volume> = claims
        .iter()
        .zip(spec.volume_claim_templates.iter().flatten())
        .map(|(claim, template)| Volume {
            name: template.metadata.name.clone().unwrap_or_default(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    for v in pod_spec.volumes.take().unwrap_or_default() {
        if !volumes.iter().any(|c| c.name == v.name) {
            volumes.push(v);
        }
    }
    if !volumes.is_empty() {
        pod_spec.volumes = Some(volumes);
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template_meta.annotations.clone(),
            finalizers: template_meta.finalizers.clone(),
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// Which pods the set should adopt (matching its selector, named as its members, no controller)
/// and release (controlled by it but no longer matching its selector) — upstream's
/// `ClaimPods` with the `isMemberOf` filter.
pub fn claim_pods<'a>(
    set: &StatefulSet,
    selector: &dyn Fn(&Pod) -> bool,
    pods: &'a [Pod],
) -> (Vec<&'a Pod>, Vec<&'a Pod>) {
    let set_name = set.metadata.name.as_deref().unwrap_or("");
    crate::ownership::claim(&set.metadata, pods, selector, &|pod: &Pod| is_member(set_name, pod))
}

/// Whether the pod is named as a member of the set (`<set>-<ordinal>`; upstream `isMemberOf`).
pub fn is_member(set_name: &str, pod: &Pod) -> bool {
    pod.metadata.name.as_deref().and_then(parent_and_ordinal).is_some_and(|(parent, _)| parent == set_name)
}

/// Whether an in-range pod still carries its identity (upstream `identityMatches`, label part).
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    pod.metadata.namespace == set.metadata.namespace
        && pod.metadata.labels.as_ref().and_then(|l| l.get(POD_NAME_LABEL)).map(String::as_str) == Some(name)
}

/// Beyond upstream (#68737): the claims of `set` whose storage request is below what their
/// `volumeClaimTemplates` entry now asks, with the new request: (claim name, storage).
pub fn claims_to_grow(set: &StatefulSet, claims: &[PersistentVolumeClaim]) -> Vec<(String, String)> {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let storage = |spec: Option<&k8s_openapi::api::core::v1::PersistentVolumeClaimSpec>| {
        spec.and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
    };
    let mut out = Vec::new();
    for template in set.spec.iter().flat_map(|s| s.volume_claim_templates.iter().flatten()) {
        let Some(wanted) = storage(template.spec.as_ref()) else { continue };
        let prefix = format!("{}-", template.metadata.name.clone().unwrap_or_default());
        for claim in claims {
            let name = claim.metadata.name.clone().unwrap_or_default();
            let ours =
                name.strip_prefix(&prefix).and_then(parent_and_ordinal).is_some_and(|(parent, _)| parent == set_name);
            let has = storage(claim.spec.as_ref()).map(|q| crate::quantity_of(&q)).unwrap_or(0);
            if ours && claim.metadata.deletion_timestamp.is_none() && has < crate::quantity_of(&wanted) {
                out.push((name, wanted.clone()));
            }
        }
    }
    out
}
