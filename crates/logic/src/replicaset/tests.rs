use serde_json::json;

use super::*;

fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 3},
        "spec": {"replicas": replicas, "minReadySeconds": min_ready, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
    }))
    .expect("replicaset")
}

fn pod(name: &str, phase: &str, ready_since: Option<&str>, created: &str) -> Pod {
    let mut conditions = vec![];
    if let Some(t) = ready_since {
        conditions.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": t}));
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web", "tier": "front"}, "creationTimestamp": created},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": phase, "conditions": conditions},
    }))
    .expect("pod")
}

fn now() -> Timestamp {
    "2026-12-02T10:00:00Z".parse().expect("time")
}

#[test]
fn creates_the_missing_pods_and_ignores_finished_and_terminating_ones() {
    let mut gone = pod("web-abc-3", "Running", Some("2026-12-02T09:00:00Z"), "2026-12-02T08:00:00Z");
    gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    let pods = vec![
        pod("web-abc-1", "Running", Some("2026-12-02T09:00:00Z"), "2026-12-02T08:00:00Z"),
        pod("web-abc-2", "Succeeded", None, "2026-12-02T08:00:00Z"),
        gone,
    ];
    let p = plan(&rs(3, 0), &pods, now());
    assert_eq!((p.create, p.delete.len()), (2, 0));
    assert_eq!(p.status.replicas, 1);
    assert_eq!(p.status.ready_replicas, Some(1));
    assert_eq!(p.status.observed_generation, Some(3));
    let new = new_pod(&rs(3, 0));
    assert_eq!(new.metadata.generate_name.as_deref(), Some("web-abc-"));
    assert_eq!(new.metadata.owner_references.as_ref().map(|o| o[0].uid.as_str()), Some("rs-uid"));
}

#[test]
fn surplus_pods_go_least_useful_first() {
    let pods = vec![
        pod("old-ready", "Running", Some("2026-12-02T08:00:00Z"), "2026-12-02T07:00:00Z"),
        pod("new-ready", "Running", Some("2026-12-02T09:59:00Z"), "2026-12-02T09:58:00Z"),
        pod("pending", "Pending", None, "2026-12-02T07:00:00Z"),
        pod("not-ready", "Running", None, "2026-12-02T07:00:00Z"),
    ];
    let p = plan(&rs(1, 0), &pods, now());
    assert_eq!(p.create, 0);
    let names: Vec<&str> = p.delete.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["pending", "not-ready", "new-ready"]);
}

#[test]
fn available_waits_for_min_ready_seconds_and_asks_to_come_back() {
    let pods = vec![
        pod("a", "Running", Some("2026-12-02T09:00:00Z"), "2026-12-02T08:00:00Z"),
        pod("b", "Running", Some("2026-12-02T09:59:50Z"), "2026-12-02T08:00:00Z"),
    ];
    let p = plan(&rs(2, 30), &pods, now());
    assert_eq!(p.status.ready_replicas, Some(2));
    assert_eq!(p.status.available_replicas, Some(1));
    assert_eq!(p.requeue_after_secs, Some(21));
    assert!(status_changed(None, &p.status));
    assert!(!status_changed(Some(&p.status), &p.status));
}
