use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;

fn now() -> Timestamp {
    "2026-12-05T12:00:00Z".parse().expect("time")
}

fn ago(seconds: i64) -> String {
    (now() - SignedDuration::from_secs(seconds)).to_string()
}

fn job(spec: Value, status: Value) -> Job {
    let mut full = json!({"metadata": {"name": "pi", "namespace": "default", "uid": "job-uid"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}},
                 "parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed"},
        "status": status});
    json_patch::merge(&mut full["spec"], &spec);
    serde_json::from_value(full).expect("job")
}

/// A pod in `phase` (`Running` ready or not, `Succeeded`, `Failed` finished `finished_ago`).
fn pod(name: &str, phase: &str, index: Option<i32>, finished_ago: i64) -> Pod {
    let mut p = json!({"metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": ago(100)},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if phase == "Running" { "True" } else { "False" }}],
                   "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                       "state": if phase == "Running" { json!({"running": {}}) } else { json!({"terminated": {"exitCode": 0, "finishedAt": ago(finished_ago)}}) }}]}});
    if let Some(i) = index {
        p["metadata"]["annotations"] = json!({COMPLETION_INDEX: i.to_string()});
    }
    serde_json::from_value(p).expect("pod")
}

fn types(plan: &Plan) -> Vec<String> {
    plan.status.conditions.iter().flatten().filter(|c| c.status == "True").map(|c| c.type_.clone()).collect()
}

#[test]
fn jobs_run_until_their_completions_succeed() {
    /// (spec, pods, creates, deletes, succeeded, finished conditions)
    type Case = (Value, Vec<Pod>, usize, usize, i32, Vec<&'static str>);
    let cases: Vec<Case> = vec![
        (json!({}), vec![], 1, 0, 0, vec![]),
        (json!({}), vec![pod("a", "Running", None, 0)], 0, 0, 0, vec![]),
        (json!({}), vec![pod("a", "Succeeded", None, 5)], 0, 0, 1, vec!["SuccessCriteriaMet", "Complete"]),
        // Five completions, two at a time: two run, then fewer as the remainder shrinks.
        (json!({"completions": 5, "parallelism": 2}), vec![], 2, 0, 0, vec![]),
        (
            json!({"completions": 5, "parallelism": 2}),
            vec![
                pod("a", "Succeeded", None, 1),
                pod("b", "Succeeded", None, 1),
                pod("c", "Succeeded", None, 1),
                pod("d", "Running", None, 0),
            ],
            1,
            0,
            3,
            vec![],
        ),
        (
            json!({"completions": 5, "parallelism": 3}),
            vec![
                pod("a", "Succeeded", None, 1),
                pod("b", "Succeeded", None, 1),
                pod("c", "Succeeded", None, 1),
                pod("d", "Running", None, 0),
                pod("e", "Running", None, 0),
            ],
            0,
            0,
            3,
            vec![],
        ),
        // Parallelism lowered: the surplus goes.
        (
            json!({"completions": 5, "parallelism": 1}),
            vec![pod("a", "Running", None, 0), pod("b", "Running", None, 0)],
            0,
            1,
            0,
            vec![],
        ),
        // No completions (a work queue): done once one succeeded and none run.
        (json!({"completions": null, "parallelism": 3}), vec![], 3, 0, 0, vec![]),
        (
            json!({"completions": null, "parallelism": 3}),
            vec![pod("a", "Succeeded", None, 1), pod("b", "Running", None, 0)],
            0,
            0,
            1,
            vec![],
        ),
        (
            json!({"completions": null, "parallelism": 3}),
            vec![pod("a", "Succeeded", None, 1)],
            0,
            0,
            1,
            vec!["SuccessCriteriaMet", "Complete"],
        ),
    ];
    for (spec, pods, creates, deletes, succeeded, conditions) in cases {
        let plan = plan(&job(spec.clone(), json!({})), &pods, now());
        assert_eq!(plan.create.len(), creates, "{spec}");
        assert_eq!(plan.delete.len(), deletes, "{spec}");
        assert_eq!(plan.status.succeeded, Some(succeeded), "{spec}");
        assert_eq!(types(&plan), conditions, "{spec}");
    }
}

#[test]
fn failures_back_off_and_end_the_job_past_its_limit_or_deadline() {
    let failed = |n: usize, finished_ago: i64| -> Vec<Pod> {
        (0..n).map(|i| pod(&format!("f{i}"), "Failed", None, finished_ago)).collect()
    };
    // One failure 3 s ago: wait until 10 s after it.
    let p = plan(&job(json!({}), json!({})), &failed(1, 3), now());
    assert_eq!((p.create.len(), p.requeue_at), (0, Some(now() + SignedDuration::from_secs(7))));
    // After the back-off: a replacement.
    assert_eq!(plan(&job(json!({}), json!({})), &failed(1, 11), now()).create.len(), 1);
    // Three failures: 40 s back-off.
    assert_eq!(backoff_until(3, Some(now())), Some(now() + SignedDuration::from_secs(40)));
    assert_eq!(backoff_until(20, Some(now())), Some(now() + SignedDuration::from_secs(360)));
    // backoffLimit 2: the third failure fails the job and stops what runs.
    let mut pods = failed(3, 100);
    pods.push(pod("r", "Running", None, 0));
    let p = plan(&job(json!({"backoffLimit": 2}), json!({})), &pods, now());
    assert_eq!(types(&p), ["FailureTarget", "Failed"]);
    assert_eq!(p.status.conditions.as_ref().and_then(|c| c[1].reason.clone()).as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!((p.create.len(), p.delete.len(), p.status.failed), (0, 1, Some(3)));
    // activeDeadlineSeconds: 60 s after the start.
    let started = json!({"startTime": ago(61)});
    let p = plan(&job(json!({"activeDeadlineSeconds": 60}), started), &[pod("r", "Running", None, 0)], now());
    assert_eq!(p.status.conditions.as_ref().and_then(|c| c[1].reason.clone()).as_deref(), Some("DeadlineExceeded"));
    assert_eq!(p.delete.len(), 1);
    let p = plan(
        &job(json!({"activeDeadlineSeconds": 60}), json!({"startTime": ago(30)})),
        &[pod("r", "Running", None, 0)],
        now(),
    );
    assert_eq!((types(&p).len(), p.requeue_at), (0, Some(now() + SignedDuration::from_secs(30))));
    // Counts never go down when finished pods are deleted.
    let p = plan(&job(json!({"completions": 3}), json!({"succeeded": 2, "failed": 1})), &[], now());
    // (The failed pod is gone, so its finish time, and a back-off, is unknown: one more runs.)
    assert_eq!((p.status.succeeded, p.status.failed, p.create.len()), (Some(2), Some(1), 1));
}

#[test]
fn indexed_jobs_run_each_index_once_and_list_the_completed_ones() {
    let spec = json!({"completionMode": "Indexed", "completions": 5, "parallelism": 2});
    let p = plan(&job(spec.clone(), json!({})), &[], now());
    assert_eq!(p.create, [Some(0), Some(1)]);
    let pods = [pod("a", "Succeeded", Some(0), 1), pod("b", "Running", Some(1), 0), pod("c", "Succeeded", Some(3), 1)];
    let p = plan(&job(spec.clone(), json!({})), &pods, now());
    assert_eq!(p.create, [Some(2)]);
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0,3"));
    assert_eq!(p.status.succeeded, Some(2));
    let done: Vec<Pod> = (0..5).map(|i| pod(&format!("p{i}"), "Succeeded", Some(i), 1)).collect();
    let p = plan(&job(spec.clone(), json!({})), &done, now());
    assert_eq!(
        (p.status.completed_indexes.as_deref(), types(&p).last().map(String::as_str)),
        (Some("0-4"), Some("Complete"))
    );
    assert_eq!(format_indexes(&parse_indexes("0-2,4,7-8")), "0-2,4,7-8");

    let made = new_pod(&job(spec, json!({})), Some(3));
    assert_eq!(made.metadata.generate_name.as_deref(), Some("pi-3-"));
    assert_eq!(made.metadata.annotations.as_ref().and_then(|a| a.get(COMPLETION_INDEX)).map(String::as_str), Some("3"));
    let pod_spec = made.spec.expect("spec");
    assert_eq!(pod_spec.hostname.as_deref(), Some("pi-3"));
    assert!(pod_spec.containers[0].env.iter().flatten().any(|e| e.name == "JOB_COMPLETION_INDEX"));
    assert_eq!(made.metadata.owner_references.expect("owner")[0].uid, "job-uid");
}

#[test]
fn suspended_jobs_stop_their_pods_and_finished_ones_wait_for_their_ttl() {
    let p = plan(&job(json!({"suspend": true}), json!({})), &[pod("r", "Running", None, 0)], now());
    assert_eq!((p.delete.len(), types(&p)), (1, vec!["Suspended".to_string()]));
    let finished =
        json!({"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": ago(50)}], "succeeded": 1});
    let p = plan(&job(json!({"ttlSecondsAfterFinished": 100}), finished.clone()), &[], now());
    assert_eq!((p.delete_job, p.requeue_at), (false, Some(now() + SignedDuration::from_secs(50))));
    let p = plan(&job(json!({"ttlSecondsAfterFinished": 30}), finished.clone()), &[], now());
    assert!(p.delete_job);
    let p = plan(&job(json!({}), finished), &[], now());
    assert_eq!((p.delete_job, p.requeue_at, p.create.len()), (false, None, 0));
}
