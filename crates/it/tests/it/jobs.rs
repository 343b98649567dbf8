//! batch/v1 Jobs with real pods, driven by real kubectl as users type it: `kubectl create job`,
//! `kubectl wait --for=condition=complete`, `kubectl logs job/…`, an Indexed job, a job that
//! fails past its backoffLimit, and one deleted by its TTL after finishing.

use std::time::Duration;

use it::{TEST_IMAGE, TestServer, eventually};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;

fn manifests() -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata: {{name: indexed}}
spec:
  completionMode: Indexed
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: {TEST_IMAGE}
        command: ["sh", "-c", "echo index $JOB_COMPLETION_INDEX on $(hostname)"]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: broken}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: {TEST_IMAGE}
        command: ["sh", "-c", "exit 3"]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: short-lived}}
spec:
  ttlSecondsAfterFinished: 0
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: work
        image: {TEST_IMAGE}
        command: ["true"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_to_completion_fail_past_their_limit_and_expire() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let jobs: Api<Job> = Api::default_namespaced(server.client());
    for version in ["1.27", "1.33"] {
        let k = server.kubectl(version)?;
        let name = format!("hello-{}", version.replace('.', "-"));
        k.ok(&["create", "job", &name, &format!("--image={TEST_IMAGE}"), "--", "echo", "hello from a job"])?;
        k.ok(&["wait", "--for=condition=complete", &format!("job/{name}"), "--timeout=60s"])?;
        assert_eq!(k.ok(&["logs", &format!("job/{name}")])?.trim(), "hello from a job");
        let row = k.ok(&["get", "job", &name, "--no-headers"])?;
        let cells: Vec<&str> = row.split_whitespace().collect();
        // The server's columns, whichever kubectl: NAME STATUS COMPLETIONS DURATION AGE.
        assert_eq!(cells.get(1..3), Some(&["Complete", "1/1"][..]), "{row}");
        // The generated selector and labels.
        let job = jobs.get(&name).await?;
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let selector =
            job.spec.as_ref().and_then(|s| s.selector.clone()).and_then(|s| s.match_labels).unwrap_or_default();
        assert_eq!(selector.get("batch.kubernetes.io/controller-uid"), Some(&uid));
        let pods =
            k.ok(&["get", "pods", "-l", &format!("job-name={name}"), "-o", "jsonpath={.items[*].status.phase}"])?;
        assert_eq!(pods, "Succeeded");
    }

    let k = server.kubectl("1.33")?;
    k.ok_stdin(&["apply", "-f", "-"], &manifests())?;
    k.ok(&["wait", "--for=condition=complete", "job/indexed", "--timeout=60s"])?;
    let indexed = jobs.get("indexed").await?.status.unwrap_or_default();
    assert_eq!((indexed.completed_indexes.as_deref(), indexed.succeeded), (Some("0-2"), Some(3)));
    let logs = k.ok(&["logs", "-l", "job-name=indexed", "--prefix=false"])?;
    let mut lines: Vec<&str> = logs.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["index 0 on indexed-0", "index 1 on indexed-1", "index 2 on indexed-2"]);

    k.ok(&["wait", "--for=condition=failed", "job/broken", "--timeout=60s"])?;
    let broken = jobs.get("broken").await?.status.unwrap_or_default();
    let failed = broken.conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "Failed");
    assert_eq!(failed.and_then(|c| c.reason).as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(broken.failed, Some(1));
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=broken",
        "-o",
        "jsonpath={.items[*].reason}",
    ])?;
    assert!(events.contains("BackoffLimitExceeded"), "{events}");

    eventually("short-lived deleted after it finished", Duration::from_secs(30), || async {
        jobs.get_opt("short-lived").await.ok()?.is_none().then_some(())
    })
    .await?;
    k.ok(&["delete", "jobs", "--all", "--wait=true", "--timeout=60s"])?;
    eventually("job pods gone", Duration::from_secs(30), || async {
        let out = k.ok(&["get", "pods", "-o", "name"]).ok()?;
        out.trim().is_empty().then_some(())
    })
    .await?;
    server.assert_nothing_left_behind().await?;
    server.stop().await;
    Ok(())
}

/// A CronJob on a one-minute schedule fires by itself (within the minute), `kubectl create job
/// --from=cronjob/…` runs it by hand with kubectl 1.27 and 1.33 (those jobs are the
/// CronJob's too, so the history limit is three here: a limit of one could delete a job this
/// test still reads; the limits are table-tested in `logic::cronjob`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cronjob_fires_every_minute_and_runs_by_hand() -> anyhow::Result<()> {
    use k8s_openapi::api::batch::v1::CronJob;
    let server = TestServer::with_pods().await?;
    let k = server.kubectl("1.33")?;
    k.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: batch/v1
kind: CronJob
metadata: {{name: tick}}
spec:
  schedule: "* * * * *"
  timeZone: Etc/UTC
  successfulJobsHistoryLimit: 3
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: tick
            image: {TEST_IMAGE}
            command: ["echo", "tick"]
"#
        ),
    )?;
    for version in ["1.27", "1.33"] {
        let kv = server.kubectl(version)?;
        let name = format!("by-hand-{}", version.replace('.', "-"));
        kv.ok(&["create", "job", &name, "--from=cronjob/tick"])?;
        kv.ok(&["wait", "--for=condition=complete", &format!("job/{name}"), "--timeout=60s"])?;
        assert_eq!(kv.ok(&["logs", &format!("job/{name}")])?.trim(), "tick");
        let owner = kv.ok(&["get", "job", &name, "-o", "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}"])?;
        assert_eq!(owner, "CronJob/manual");
    }
    // By itself, at the next minute (at most a minute away).
    let cronjobs: Api<CronJob> = Api::default_namespaced(server.client());
    let jobs: Api<Job> = Api::default_namespaced(server.client());
    let scheduled = eventually("the schedule to fire", Duration::from_secs(75), || async {
        let status = cronjobs.get("tick").await.ok()?.status?;
        status.last_schedule_time.map(|t| t.0)
    })
    .await?;
    assert_eq!(scheduled.as_second() % 60, 0, "on the minute: {scheduled}");
    let name = logic::cronjob::job_name("tick", scheduled);
    k.ok(&["wait", "--for=condition=complete", &format!("job/{name}"), "--timeout=60s"])?;
    let job = jobs.get(&name).await?;
    let stamp = job.metadata.annotations.unwrap_or_default().remove(logic::cronjob::SCHEDULED_TIMESTAMP);
    assert_eq!(stamp.as_deref().and_then(|s| s.parse::<jiff::Timestamp>().ok()), Some(scheduled));
    let row = k.ok(&["get", "cronjob", "tick", "--no-headers"])?;
    assert!(row.split_whitespace().collect::<Vec<_>>()[1..4] == ["*", "*", "*"], "{row}");
    let events =
        k.ok(&["get", "events", "--field-selector", "involvedObject.name=tick", "-o", "jsonpath={.items[*].reason}"])?;
    assert!(events.contains("SuccessfulCreate"), "{events}");
    // Suspended: no more runs; deleted with its jobs.
    k.ok(&["patch", "cronjob", "tick", "-p", r#"{"spec":{"suspend":true}}"#])?;
    assert!(k.ok(&["get", "cronjob", "tick", "--no-headers"])?.contains("True"));
    k.ok(&["delete", "cronjob", "tick", "--wait=true"])?;
    k.ok(&["delete", "jobs", "--all", "--wait=true", "--timeout=60s"])?;
    eventually("no pods left", Duration::from_secs(30), || async {
        k.ok(&["get", "pods", "-o", "name"]).ok().filter(|o| o.trim().is_empty())
    })
    .await?;
    server.assert_nothing_left_behind().await?;
    server.stop().await;
    Ok(())
}
