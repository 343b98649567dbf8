use serde_json::json;

use super::*;

fn deployment(replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 2,
                     "annotations": {"kubernetes.io/change-cause": format!("image {image}")}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "strategy": strategy,
                 "revisionHistoryLimit": 1, "progressDeadlineSeconds": 600,
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}},
        "status": {"observedGeneration": 2},
    }))
    .expect("deployment")
}

fn rolling(surge: serde_json::Value, unavailable: serde_json::Value) -> serde_json::Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

/// A ReplicaSet of `d` (as the controller made it), with `replicas` of which `available` are.
fn rs_of(d: &Deployment, revision: i64, replicas: i32, available: i32, created: &str) -> ReplicaSet {
    let mut rs = new_replica_set(d, replicas, &revision.to_string());
    rs.metadata.uid = Some(format!("uid-{revision}"));
    rs.metadata.creation_timestamp = Some(Time(created.parse().expect("time")));
    rs.metadata.generation = Some(1);
    rs.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
        replicas,
        available_replicas: Some(available),
        ready_replicas: Some(available),
        observed_generation: Some(1),
        ..Default::default()
    });
    rs
}

fn now() -> Timestamp {
    "2026-12-02T10:00:00Z".parse().expect("time")
}

fn run(d: &Deployment, sets: &[ReplicaSet]) -> Plan {
    plan(&Input { deployment: d, replica_sets: sets, pods: &[], now: now() })
}

fn scaled(p: &Plan) -> Vec<(String, i32)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::UpdateReplicaSet { name, replicas, .. } => Some((name.clone(), *replicas)),
            Action::CreateReplicaSet(rs) => Some((rs.metadata.name.clone()?, rs.spec.as_ref()?.replicas?)),
            _ => None,
        })
        .collect()
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let d = deployment(10, "a", rolling(json!("25%"), json!("25%")));
    assert_eq!(fenceposts(&d), (3, 2));
    let d = deployment(3, "a", rolling(json!(0), json!("10%")));
    assert_eq!(fenceposts(&d), (0, 1), "both zero means one unavailable");
    assert_eq!(max_unavailable(&deployment(3, "a", json!({"type": "Recreate"}))), 0);
}

#[test]
fn a_new_deployment_creates_its_replica_set_at_full_size_with_revision_one() {
    let d = deployment(3, "a", rolling(json!("25%"), json!("25%")));
    let p = run(&d, &[]);
    let Some(Action::CreateReplicaSet(rs)) = p.actions.first() else { panic!("{:?}", p.actions) };
    let hash = template_hash(&d.spec.as_ref().expect("spec").template, None);
    assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
    assert_eq!(rs.spec.as_ref().and_then(|s| s.replicas), Some(3));
    let annotations = rs.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get(REVISION).map(String::as_str), Some("1"));
    assert_eq!(annotations.get("kubernetes.io/change-cause").map(String::as_str), Some("image a"));
    let selector = &rs.spec.as_ref().expect("spec").selector;
    assert_eq!(selector.match_labels.as_ref().and_then(|m| m.get(HASH_LABEL)), Some(&hash));
    assert!(p.actions.contains(&Action::SetRevision("1".into())));
    let progressing = p.status.conditions.iter().flatten().find(|c| c.type_ == "Progressing").expect("condition");
    assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetCreated"));
}

#[test]
fn a_rolling_update_surges_then_scales_old_pods_down_within_max_unavailable() {
    let old_d = deployment(4, "a", rolling(json!(1), json!(1)));
    let old = rs_of(&old_d, 1, 4, 4, "2026-12-02T09:00:00Z");
    let d = deployment(4, "b", rolling(json!(1), json!(1)));
    // Step 1: the new ReplicaSet starts at maxSurge (4 + 1 − 4 = 1) with revision 2.
    let p = run(&d, std::slice::from_ref(&old));
    let new_name = format!("web-{}", template_hash(&d.spec.as_ref().expect("spec").template, None));
    assert_eq!(scaled(&p), [(new_name.clone(), 1)]);
    // Step 2: the new pod is not available yet: old may go down by one (maxUnavailable).
    let new = rs_of(&d, 2, 1, 0, "2026-12-02T09:30:00Z");
    let p = run(&d, &[old.clone(), new.clone()]);
    assert_eq!(
        scaled(&p),
        [("web-".to_string() + &template_hash(&old_d.spec.as_ref().expect("spec").template, None), 3)]
    );
    // Step 3: with 3 old and 1 new the new one grows to 2 (total 5 = 4 + surge).
    let mut old3 = old.clone();
    old3.spec.as_mut().expect("spec").replicas = Some(3);
    let p = run(&d, &[old3, new]);
    assert_eq!(scaled(&p), [(new_name, 2)]);
}

#[test]
fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let old_d = deployment(2, "a", json!({"type": "Recreate"}));
    let old = rs_of(&old_d, 1, 2, 2, "2026-12-02T09:00:00Z");
    let d = deployment(2, "b", json!({"type": "Recreate"}));
    let p = run(&d, std::slice::from_ref(&old));
    assert_eq!(scaled(&p).len(), 1);
    assert_eq!(scaled(&p)[0].1, 0, "old goes to zero first: {:?}", p.actions);
    // Scaled down but a pod still runs: wait.
    let mut drained = old.clone();
    drained.spec.as_mut().expect("spec").replicas = Some(0);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-x", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r",
            "uid": "uid-1", "controller": true}]},
        "status": {"phase": "Running"},
    }))
    .expect("pod");
    let p = plan(&Input { deployment: &d, replica_sets: std::slice::from_ref(&drained), pods: &[pod], now: now() });
    assert!(!p.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))));
    let p = run(&d, &[drained]);
    assert_eq!(scaled(&p).last().map(|s| s.1), Some(2));
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    // 10 replicas, surge 3: old has 8 (made for max 13), new has 5 (made for max 13).
    let d10 = deployment(10, "b", rolling(json!(3), json!(2)));
    let old_d = deployment(10, "a", rolling(json!(3), json!(2)));
    let old = rs_of(&old_d, 1, 8, 8, "2026-12-02T09:00:00Z");
    let new = rs_of(&d10, 2, 5, 0, "2026-12-02T09:30:00Z");
    // Scale to 20 (surge 3 → allowed 23): 10 more pods, split 8:5 → +6 and +4.
    let mut d20 = deployment(20, "b", rolling(json!(3), json!(2)));
    d20.status = Some(DeploymentStatus { replicas: Some(13), observed_generation: Some(2), ..Default::default() });
    let p = run(&d20, &[old, new]);
    let mut sizes: Vec<i32> = scaled(&p).into_iter().map(|(_, n)| n).collect();
    sizes.sort();
    assert_eq!(sizes, [9, 14], "{:?}", p.actions);
}

#[test]
fn undo_reuses_the_old_replica_set_with_a_new_revision_and_history_is_cleaned() {
    let a = deployment(2, "a", rolling(json!(1), json!(0)));
    let b = deployment(2, "b", rolling(json!(1), json!(0)));
    let c = deployment(2, "c", rolling(json!(1), json!(0)));
    let rs_a = rs_of(&a, 1, 0, 0, "2026-12-02T08:00:00Z");
    let rs_b = rs_of(&b, 2, 0, 0, "2026-12-02T09:00:00Z");
    let rs_c = rs_of(&c, 3, 2, 2, "2026-12-02T09:30:00Z");
    // Back to template a: its ReplicaSet becomes revision 4, remembering revision 1.
    let p = run(&a, &[rs_a.clone(), rs_b.clone(), rs_c.clone()]);
    let update = p.actions.iter().find_map(|x| match x {
        Action::UpdateReplicaSet { name, annotations, .. } if Some(name) == rs_a.metadata.name.as_ref() => {
            Some(annotations.clone())
        }
        _ => None,
    });
    let annotations = update.expect("rs a updated");
    assert_eq!(annotations.get(REVISION).map(String::as_str), Some("4"));
    assert_eq!(annotations.get(REVISION_HISTORY).map(String::as_str), Some("1"));
    assert!(p.actions.contains(&Action::SetRevision("4".into())));
    // A finished rollout keeps revisionHistoryLimit (1) empty old ReplicaSets: b goes.
    let mut d = c.clone();
    d.status = Some(DeploymentStatus {
        replicas: Some(2),
        updated_replicas: Some(2),
        available_replicas: Some(2),
        observed_generation: Some(2),
        ..Default::default()
    });
    let p = run(&d, &[rs_a.clone(), rs_b, rs_c]);
    let deleted: Vec<&str> = p
        .actions
        .iter()
        .filter_map(|x| match x {
            Action::DeleteReplicaSet { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, [rs_a.metadata.name.as_deref().unwrap_or_default()]);
    let progressing = p.status.conditions.iter().flatten().find(|c| c.type_ == "Progressing").expect("condition");
    assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetAvailable"));
}

#[test]
fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let old_d = deployment(2, "a", rolling(json!(1), json!(0)));
    let mut d = deployment(2, "b", rolling(json!(1), json!(0)));
    let old = rs_of(&old_d, 1, 2, 2, "2026-12-02T08:00:00Z");
    let new = rs_of(&d, 2, 1, 0, "2026-12-02T09:00:00Z");
    let since = Time("2026-12-02T09:49:00Z".parse().expect("time"));
    d.status = Some(DeploymentStatus {
        replicas: Some(3),
        updated_replicas: Some(1),
        ready_replicas: Some(2),
        available_replicas: Some(2),
        observed_generation: Some(2),
        conditions: Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "True".into(),
            reason: Some("ReplicaSetUpdated".into()),
            message: None,
            last_update_time: Some(since.clone()),
            last_transition_time: Some(since),
        }]),
        ..Default::default()
    });
    d.spec.as_mut().expect("spec").progress_deadline_seconds = Some(600);
    let p = run(&d, &[old, new]);
    let progressing = p.status.conditions.iter().flatten().find(|c| c.type_ == "Progressing").expect("condition");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("False", Some("ProgressDeadlineExceeded"))
    );
}

#[test]
fn annotating_after_a_rollout_updates_the_new_replica_sets_change_cause() {
    // Seed 000's order: roll out first, annotate afterwards.
    let d = deployment(2, "a", rolling(json!("25%"), json!("25%")));
    let rs = rs_of(&d, 1, 2, 2, "2026-12-02T09:00:00Z");
    let mut annotated = d.clone();
    annotated.metadata.annotations =
        Some([("kubernetes.io/change-cause".to_string(), "downgraded to 1.26.1".to_string())].into());
    let p = run(&annotated, &[rs]);
    let cause = p.actions.iter().find_map(|a| match a {
        Action::UpdateReplicaSet { annotations, .. } => annotations.get("kubernetes.io/change-cause").cloned(),
        _ => None,
    });
    assert_eq!(cause.as_deref(), Some("downgraded to 1.26.1"));
}
