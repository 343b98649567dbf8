//! `persistentVolumeClaimRetentionPolicy` as owner references on claims (upstream
//! `isClaimOwnerUpToDate` / `updateClaimOwnerRefForSetAndPod`): the garbage collector then
//! deletes a claim with its set (`whenDeleted: Delete`) or with its condemned pod
//! (`whenScaled: Delete`). Claims are otherwise never deleted.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::Action;
use super::pods::{claims_for, controller_ref, get_ordinal};

fn policy(set: &StatefulSet) -> (bool, bool) {
    let p = set.spec.as_ref().and_then(|s| s.persistent_volume_claim_retention_policy.clone()).unwrap_or_default();
    (p.when_deleted.as_deref() == Some("Delete"), p.when_scaled.as_deref() == Some("Delete"))
}

fn pod_ref(pod: &Pod) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Owner references for a claim created for an in-range pod.
pub fn owners_for_new_claim(set: &StatefulSet) -> Option<Vec<OwnerReference>> {
    let (when_deleted, _) = policy(set);
    when_deleted.then(|| vec![controller_ref(set)])
}

/// Whether `claim` still belongs to a previous pod named `pod_name` (whenScaled: Delete left it
/// to the garbage collector): a new pod must not start on data about to be deleted.
pub fn held_by_old_pod(set: &StatefulSet, claim: &PersistentVolumeClaim, pod_name: &str) -> bool {
    let (_, when_scaled) = policy(set);
    when_scaled && claim.metadata.owner_references.iter().flatten().any(|r| r.kind == "Pod" && r.name == pod_name)
}

/// Claim owner-reference rewrites for one pod (`condemned`: out of the ordinal range).
pub fn claim_updates(set: &StatefulSet, pod: &Pod, claims: &[PersistentVolumeClaim], condemned: bool) -> Vec<Action> {
    let (when_deleted, when_scaled) = policy(set);
    let set_ref = controller_ref(set);
    let this_pod = pod_ref(pod);
    let mut wanted: Vec<OwnerReference> = Vec::new();
    if condemned && when_scaled {
        wanted.push(this_pod.clone());
    } else if when_deleted {
        wanted.push(set_ref.clone());
    }
    let ours = |r: &OwnerReference| {
        (r.kind == "StatefulSet" && r.name == set_ref.name) || (r.kind == "Pod" && r.name == this_pod.name)
    };
    let mut actions = Vec::new();
    for expected in claims_for(set, get_ordinal(pod)) {
        let name = expected.metadata.name.clone().unwrap_or_default();
        let Some(claim) = claims.iter().find(|c| c.metadata.name.as_deref() == Some(&name)) else { continue };
        let refs = claim.metadata.owner_references.clone().unwrap_or_default();
        // A reference to an earlier incarnation (same name, other uid) is the collector's business.
        let stale = refs.iter().any(|r| ours(r) && r.uid != set_ref.uid && r.uid != this_pod.uid);
        // Someone else controls the claim: leave it alone.
        let foreign_controller = refs.iter().any(|r| r.controller == Some(true) && !ours(r));
        if stale || foreign_controller || claim.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let current: Vec<&OwnerReference> = refs.iter().filter(|r| ours(r)).collect();
        if current.len() == wanted.len() && wanted.iter().all(|w| current.contains(&w)) {
            continue;
        }
        let mut owners: Vec<OwnerReference> = refs.iter().filter(|r| !ours(r)).cloned().collect();
        owners.extend(wanted.iter().cloned());
        actions.push(Action::SetClaimOwners {
            name,
            resource_version: claim.metadata.resource_version.clone().unwrap_or_default(),
            owners,
        });
    }
    actions
}
