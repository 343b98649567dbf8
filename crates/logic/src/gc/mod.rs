//! The garbage collector's decisions over the ownership graph, as upstream's
//! `pkg/controller/garbagecollector`: delete dependents whose owners are all gone, drop
//! references to owners that are gone, orphan dependents of an owner deleted with the `orphan`
//! finalizer, and delete dependents of an owner in foreground deletion before releasing it.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub const ORPHAN_FINALIZER: &str = "orphan";
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// How to find an object again through the API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// One `ownerReferences` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub block_owner_deletion: bool,
}

/// What the collector knows of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub uid: String,
    pub object: ObjectRef,
    pub resource_version: String,
    pub owners: Vec<Owner>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

/// Something the collector must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delete the object (background propagation), if it still has this uid.
    Delete { object: ObjectRef, uid: String },
    /// Rewrite `ownerReferences` to `keep` (dropping owners that are gone or orphaning it).
    SetOwners { object: ObjectRef, resource_version: String, keep: Vec<Owner> },
    /// Remove one finalizer: the collector's work for it is done.
    RemoveFinalizer { object: ObjectRef, resource_version: String, finalizer: String },
}

/// Plan one pass over a complete snapshot of the graph (every kind listed). Actions are
/// idempotent: applying some and re-planning converges.
pub fn plan(nodes: &[Node]) -> Vec<Action> {
    let by_uid: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.uid.as_str(), n)).collect();
    // An owner exists only if an object with that uid exists *and* has the referenced kind.
    let owner_exists = |o: &Owner| by_uid.get(o.uid.as_str()).is_some_and(|n| n.object.kind == o.kind);
    let has_finalizer = |n: &Node, f: &str| n.finalizers.iter().any(|x| x == f);

    let mut actions = Vec::new();
    // Owners being orphaned or deleted in the foreground, and what still blocks them.
    let mut still_referenced: BTreeSet<&str> = BTreeSet::new();
    let mut still_blocking: BTreeSet<&str> = BTreeSet::new();

    for node in nodes {
        if node.owners.is_empty() {
            continue;
        }
        // Upstream's classification of a dependent's owners.
        let mut solid = Vec::new();
        let (mut dangling, mut waiting, mut orphaning) = (0, 0, 0);
        for owner in &node.owners {
            if !owner_exists(owner) {
                dangling += 1;
                continue;
            }
            let owner_node = by_uid[owner.uid.as_str()];
            if owner_node.deleting && has_finalizer(owner_node, ORPHAN_FINALIZER) {
                still_referenced.insert(owner.uid.as_str());
                orphaning += 1;
            } else if owner_node.deleting && has_finalizer(owner_node, FOREGROUND_FINALIZER) {
                if owner.block_owner_deletion {
                    still_blocking.insert(owner.uid.as_str());
                }
                waiting += 1;
            } else {
                solid.push(owner.clone());
            }
        }
        if node.deleting {
            continue;
        }
        let set_owners = |keep: Vec<Owner>| Action::SetOwners {
            object: node.object.clone(),
            resource_version: node.resource_version.clone(),
            keep,
        };
        if !solid.is_empty() {
            // A live owner keeps the dependent; references to owners going away are dropped.
            if dangling + waiting + orphaning > 0 {
                actions.push(set_owners(solid));
            }
        } else if orphaning > 0 {
            // Orphan first; what remains is decided on the next pass.
            let keep = node
                .owners
                .iter()
                .filter(|o| {
                    !(owner_exists(o)
                        && has_finalizer(by_uid[o.uid.as_str()], ORPHAN_FINALIZER)
                        && by_uid[o.uid.as_str()].deleting)
                })
                .cloned()
                .collect();
            actions.push(set_owners(keep));
        } else {
            // Every owner is gone or being deleted in the foreground.
            actions.push(Action::Delete { object: node.object.clone(), uid: node.uid.clone() });
        }
    }

    for node in nodes {
        if !node.deleting {
            continue;
        }
        if has_finalizer(node, ORPHAN_FINALIZER) && !still_referenced.contains(node.uid.as_str()) {
            actions.push(Action::RemoveFinalizer {
                object: node.object.clone(),
                resource_version: node.resource_version.clone(),
                finalizer: ORPHAN_FINALIZER.into(),
            });
        } else if has_finalizer(node, FOREGROUND_FINALIZER) && !still_blocking.contains(node.uid.as_str()) {
            actions.push(Action::RemoveFinalizer {
                object: node.object.clone(),
                resource_version: node.resource_version.clone(),
                finalizer: FOREGROUND_FINALIZER.into(),
            });
        }
    }
    actions
}
