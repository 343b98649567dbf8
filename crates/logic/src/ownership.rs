//! Controller references and upstream's `ClaimObject` rules, shared by the workload
//! controllers: an owner adopts orphans its selector matches and releases what it controls
//! but no longer matches; it adopts nothing while it is being deleted.

use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The controller reference objects made by `owner` carry.
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta`'s controller is the owner with this uid.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|r| r.controller == Some(true) && r.uid == uid)
}

/// Which objects `owner` should adopt (no controller, `eligible`, not being deleted) and
/// release (controlled by it but no longer `selected`).
pub fn claim<'a, T: Metadata<Ty = ObjectMeta>>(
    owner: &ObjectMeta,
    objects: &'a [T],
    selected: &dyn Fn(&T) -> bool,
    eligible: &dyn Fn(&T) -> bool,
) -> (Vec<&'a T>, Vec<&'a T>) {
    let uid = owner.uid.as_deref().unwrap_or("");
    let mut adopt = Vec::new();
    let mut release = Vec::new();
    if owner.deletion_timestamp.is_some() {
        return (adopt, release);
    }
    for obj in objects {
        let meta = obj.metadata();
        match meta.owner_references.iter().flatten().find(|r| r.controller == Some(true)) {
            Some(c) if c.uid == uid => {
                if !selected(obj) {
                    release.push(obj);
                }
            }
            Some(_) => {}
            None => {
                if selected(obj) && eligible(obj) && meta.deletion_timestamp.is_none() {
                    adopt.push(obj);
                }
            }
        }
    }
    (adopt, release)
}
