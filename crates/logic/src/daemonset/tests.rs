use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::*;

fn now() -> jiff::Timestamp {
    "2026-12-05T12:00:00Z".parse().expect("time")
}

fn ds(extra: Value) -> DaemonSet {
    let mut v = json!({"metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 2},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "agent:1"}]}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}, "revisionHistoryLimit": 10}});
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).expect("daemonset")
}

fn node(name: &str, labels: Value, taints: Value) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}))
        .expect("node")
}

fn daemon_pod(name: &str, node: &str, hash: &str, ready: bool) -> Pod {
    serde_json::from_value(
        json!({"metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": "2026-12-05T11:00:00Z",
            "labels": {"app": "agent", REVISION_LABEL: hash}},
        "spec": {"nodeName": node, "containers": [{"name": "a", "image": "x"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
            "lastTransitionTime": "2026-12-05T11:00:00Z"}]}}),
    )
    .expect("pod")
}

/// The revision the DaemonSet's current template makes (what a first sync creates).
fn current_revision(d: &DaemonSet) -> ControllerRevision {
    match plan(d, &[], &[], &[], now()).revision {
        Some(UpdateRevision::Create(r)) => *r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn daemons_run_once_on_each_eligible_node() {
    let d = ds(json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}}));
    let rev = current_revision(&d);
    assert_eq!(rev.metadata.owner_references.as_ref().map(|o| o[0].kind.as_str()), Some("DaemonSet"));
    let hash = rev.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL).cloned()).expect("hash label");
    let nodes = [
        node("a", json!({"disk": "ssd"}), json!([])),
        node("b", json!({"disk": "hdd"}), json!([])),
        // Tainted: not tolerated.
        node("c", json!({"disk": "ssd"}), json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])),
        // Cordoned and not ready: daemons tolerate both.
        node(
            "d",
            json!({"disk": "ssd"}),
            json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
        ),
    ];
    let pods = [
        daemon_pod("on-b", "b", &hash, true),
        daemon_pod("on-d", "d", &hash, true),
        daemon_pod("twin-d", "d", &hash, true),
    ];
    let p = plan(&d, &nodes, &pods, std::slice::from_ref(&rev), now());
    assert_eq!(p.revision, None, "the revision exists");
    assert_eq!(p.create, ["a"]);
    let deleted: Vec<&str> = p.delete.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(deleted, ["on-b", "twin-d"], "misplaced and surplus");
    assert_eq!(
        (p.status.desired_number_scheduled, p.status.current_number_scheduled, p.status.number_misscheduled),
        (2, 1, 1)
    );
    let made = new_pod(&d, "a", &hash);
    let spec = made.spec.expect("spec");
    assert_eq!(spec.node_name.as_deref(), Some("a"));
    assert!(spec.tolerations.iter().flatten().any(|t| t.key.as_deref() == Some("node.kubernetes.io/unschedulable")));
    assert_eq!(made.metadata.labels.expect("labels")[GENERATION_LABEL], "2");
}

#[test]
fn rolling_updates_replace_old_pods_within_max_unavailable_and_on_delete_waits() {
    let old = ds(json!({}));
    let old_rev = current_revision(&old);
    let old_hash = old_rev.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL).cloned()).expect("hash");
    let new = ds(json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "agent:2"}]}}}}));
    let nodes: Vec<Node> = ["a", "b", "c"].iter().map(|n| node(n, json!({}), json!([]))).collect();
    let pods: Vec<Pod> = ["a", "b", "c"].iter().map(|n| daemon_pod(&format!("p-{n}"), n, &old_hash, true)).collect();
    let p = plan(&new, &nodes, &pods, std::slice::from_ref(&old_rev), now());
    assert!(matches!(p.revision, Some(UpdateRevision::Create(_))), "a new revision");
    assert_eq!(p.delete.len(), 1, "one at a time: {:?}", p.delete);
    // Two unavailable allowed by percentage (50 % of 3, rounded up).
    let wide = ds(json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "agent:2"}]}},
        "updateStrategy": {"rollingUpdate": {"maxUnavailable": "50%"}}}}));
    assert_eq!(plan(&wide, &nodes, &pods, std::slice::from_ref(&old_rev), now()).delete.len(), 2);
    // One node already without its pod: the budget is spent.
    let p = plan(&new, &nodes, &pods[..2], std::slice::from_ref(&old_rev), now());
    assert_eq!((p.create.len(), p.delete.len()), (1, 0));
    // OnDelete: nothing replaced.
    let on_delete = ds(json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "agent:2"}]}},
        "updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}}));
    let p = plan(&on_delete, &nodes, &pods, std::slice::from_ref(&old_rev), now());
    assert!(p.delete.is_empty() && p.create.is_empty());
    assert_eq!(p.status.updated_number_scheduled, Some(0));
}
