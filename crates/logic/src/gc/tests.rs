use super::*;

fn node(uid: &str, kind: &str, name: &str) -> Node {
    Node {
        uid: uid.into(),
        object: ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: Some("default".into()),
            name: name.into(),
        },
        resource_version: "1".into(),
        owners: Vec::new(),
        deleting: false,
        finalizers: Vec::new(),
    }
}

fn owned_by(mut n: Node, owner: &Node, block: bool) -> Node {
    n.owners.push(Owner {
        uid: owner.uid.clone(),
        api_version: owner.object.api_version.clone(),
        kind: owner.object.kind.clone(),
        name: owner.object.name.clone(),
        block_owner_deletion: block,
    });
    n
}

fn deleting(mut n: Node, finalizer: &str) -> Node {
    n.deleting = true;
    n.finalizers.push(finalizer.into());
    n
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Delete { object, .. } => format!("delete {}", object.name),
            Action::SetOwners { object, keep, .. } => {
                format!(
                    "owners {} = [{}]",
                    object.name,
                    keep.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(",")
                )
            }
            Action::RemoveFinalizer { object, finalizer, .. } => format!("unfinalize {} {finalizer}", object.name),
        })
        .collect()
}

#[test]
fn dependents_of_a_live_owner_stay() {
    let sts = node("s", "StatefulSet", "web");
    let pod = owned_by(node("p", "Pod", "web-0"), &sts, true);
    assert!(plan(&[sts, pod]).is_empty());
}

#[test]
fn background_deletion_removes_dependents_of_a_gone_owner() {
    let sts = node("s", "StatefulSet", "web");
    let pod = owned_by(node("p", "Pod", "web-0"), &sts, true);
    assert_eq!(kinds(&plan(&[pod])), ["delete web-0"]);
}

#[test]
fn an_owner_reference_with_the_wrong_kind_is_dangling() {
    let sts = node("s", "StatefulSet", "web");
    let mut pod = owned_by(node("p", "Pod", "web-0"), &sts, true);
    pod.owners[0].kind = "Deployment".into();
    assert_eq!(kinds(&plan(&[sts, pod])), ["delete web-0"]);
}

#[test]
fn a_second_live_owner_keeps_the_dependent_and_drops_the_dangling_reference() {
    let a = node("a", "ReplicaSet", "a");
    let b = node("b", "ReplicaSet", "b");
    let pod = owned_by(owned_by(node("p", "Pod", "x"), &a, false), &b, false);
    assert_eq!(kinds(&plan(&[b, pod])), ["owners x = [b]"]);
}

#[test]
fn orphaning_strips_references_then_releases_the_owner() {
    let sts = deleting(node("s", "StatefulSet", "web"), ORPHAN_FINALIZER);
    let pod = owned_by(node("p", "Pod", "web-0"), &sts, true);
    assert_eq!(kinds(&plan(&[sts.clone(), pod.clone()])), ["owners web-0 = []"]);
    let orphan = Node { owners: Vec::new(), ..pod };
    assert_eq!(kinds(&plan(&[sts, orphan])), ["unfinalize web orphan"]);
}

#[test]
fn foreground_deletes_dependents_and_waits_for_blocking_ones() {
    let sts = deleting(node("s", "StatefulSet", "web"), FOREGROUND_FINALIZER);
    let pod = owned_by(node("p", "Pod", "web-0"), &sts, true);
    let rev = owned_by(node("r", "ControllerRevision", "web-1"), &sts, false);
    assert_eq!(kinds(&plan(&[sts.clone(), pod.clone(), rev])), ["delete web-0", "delete web-1"]);
    // While the blocking pod is still terminating, the owner waits.
    let terminating = Node { deleting: true, ..pod };
    assert!(plan(&[sts.clone(), terminating]).is_empty());
    // Once it is gone (non-blocking dependents do not hold the owner), the owner is released.
    assert_eq!(kinds(&plan(&[sts])), ["unfinalize web foregroundDeletion"]);
}

#[test]
fn dependents_already_deleting_are_left_alone() {
    let sts = node("s", "StatefulSet", "web");
    let pod = Node { deleting: true, ..owned_by(node("p", "Pod", "web-0"), &sts, true) };
    assert!(plan(&[pod]).is_empty());
}
