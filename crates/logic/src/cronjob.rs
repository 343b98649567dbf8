//! CronJob decisions (upstream `pkg/controller/cronjob`, the v2 controller): which scheduled
//! time is due, whether to run it (`suspend`, `startingDeadlineSeconds`, `concurrencyPolicy`),
//! the Job it makes (`<cronjob>-<minutes since the epoch>`), which finished jobs the history
//! limits remove, the status, and when to look again.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use model::cron::Schedule;

/// The annotation a scheduled Job carries with its scheduled time.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Past this many missed times, upstream warns (`TooManyMissedTimes`).
const TOO_MANY_MISSED: usize = 100;

/// An event to record on the CronJob: (warning?, reason, message).
pub type Note = (bool, &'static str, String);

/// What one sync does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The Job to create, for this scheduled time.
    pub create: Option<(Job, Timestamp)>,
    /// Jobs to delete (replaced, or past the history limits): (name, uid).
    pub delete: Vec<(String, String)>,
    pub status: CronJobStatus,
    pub notes: Vec<Note>,
    pub requeue_at: Option<Timestamp>,
}

fn finished(job: &Job) -> Option<(bool, Timestamp)> {
    job.status.as_ref()?.conditions.iter().flatten().find_map(|c| {
        let done = c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed");
        done.then(|| {
            (c.type_ == "Complete", c.last_transition_time.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH))
        })
    })
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// The name of the Job for a scheduled time (upstream's `getJobName`).
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// The Job a CronJob makes from its template for `scheduled` (or by hand, for
/// `kubectl create job --from=cronjob/…`, which kubectl builds itself).
pub fn new_job(cj: &CronJob, scheduled: Timestamp, zone: &TimeZone) -> Job {
    let template = cj.spec.as_ref().map(|s| s.job_template.clone()).unwrap_or_default();
    let mut meta = template.metadata.unwrap_or_default();
    let name = cj.metadata.name.clone().unwrap_or_default();
    meta.name = Some(job_name(&name, scheduled));
    meta.namespace = cj.metadata.namespace.clone();
    meta.owner_references = Some(vec![crate::ownership::controller_ref("batch/v1", "CronJob", &cj.metadata)]);
    let mut annotations: BTreeMap<String, String> = meta.annotations.take().unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP.into(),
        scheduled.to_zoned(zone.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
    );
    meta.annotations = Some(annotations);
    Job { metadata: meta, spec: template.spec, status: None }
}

/// Plan one sync of `cj` over the Jobs it owns, at `now`, its schedule read in `zone`.
pub fn plan(cj: &CronJob, jobs: &[Job], zone: &TimeZone, now: Timestamp) -> Plan {
    let spec = cj.spec.clone().unwrap_or_default();
    let old = cj.status.clone().unwrap_or_default();
    let mut plan = Plan { create: None, delete: Vec::new(), status: old.clone(), notes: Vec::new(), requeue_at: None };
    let active: Vec<&Job> =
        jobs.iter().filter(|j| finished(j).is_none() && j.metadata.deletion_timestamp.is_none()).collect();
    plan.status.active = Some(active.iter().map(|j| reference(j)).collect()).filter(|a: &Vec<_>| !a.is_empty());
    let last_success = jobs.iter().filter_map(finished).filter(|(ok, _)| *ok).map(|(_, at)| at).max();
    if let Some(at) = last_success
        && old.last_successful_time.as_ref().is_none_or(|t| t.0 < at)
    {
        plan.status.last_successful_time = Some(Time(at));
    }
    for j in jobs.iter().filter(|j| finished(j).is_some()) {
        let was_active = old.active.iter().flatten().any(|r| r.uid == j.metadata.uid);
        if was_active {
            let (ok, _) = finished(j).unwrap_or((false, now));
            let name = j.metadata.name.clone().unwrap_or_default();
            plan.notes.push((
                false,
                "SawCompletedJob",
                format!("Saw completed job: {name}, condition: {}", if ok { "Complete" } else { "Failed" }),
            ));
        }
    }
    plan.delete = history_to_delete(&spec, jobs);
    if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
        return plan;
    }
    let schedule = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            plan.notes.push((true, "UnparseableSchedule", format!("unparseable schedule: {:?} : {e}", spec.schedule)));
            return plan;
        }
    };
    let created = cj.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    let mut earliest = old.last_schedule_time.as_ref().map(|t| t.0).unwrap_or(created);
    if let Some(deadline) = spec.starting_deadline_seconds
        && let Ok(horizon) = now.checked_sub(SignedDuration::from_secs(deadline))
    {
        earliest = earliest.max(horizon);
    }
    // The most recent scheduled time not yet run, and how many were missed.
    let mut due = None;
    let mut missed = 0usize;
    let mut cursor = earliest;
    while let Some(next) = schedule.next_after(cursor, zone).filter(|t| *t <= now) {
        due = Some(next);
        missed += 1;
        cursor = next;
        if missed > 100_000 {
            break;
        }
    }
    plan.requeue_at = schedule.next_after(now, zone);
    let Some(scheduled) = due else { return plan };
    if missed > TOO_MANY_MISSED {
        plan.notes.push((
            true,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
        ));
    }
    let name = job_name(cj.metadata.name.as_deref().unwrap_or_default(), scheduled);
    if jobs.iter().any(|j| j.metadata.name.as_deref() == Some(name.as_str())) {
        // Already made (its status write was lost): record the time.
        plan.status.last_schedule_time = Some(Time(scheduled));
        return plan;
    }
    match spec.concurrency_policy.as_deref().unwrap_or("Allow") {
        "Forbid" if !active.is_empty() => {
            plan.notes.push((
                false,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return plan;
        }
        "Replace" => {
            for j in &active {
                if let (Some(n), Some(u)) = (j.metadata.name.clone(), j.metadata.uid.clone()) {
                    plan.delete.push((n, u));
                }
            }
        }
        _ => {}
    }
    plan.create = Some((new_job(cj, scheduled, zone), scheduled));
    plan.status.last_schedule_time = Some(Time(scheduled));
    plan
}

/// Finished jobs beyond `successfulJobsHistoryLimit` (3) and `failedJobsHistoryLimit` (1),
/// oldest first.
fn history_to_delete(spec: &k8s_openapi::api::batch::v1::CronJobSpec, jobs: &[Job]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (success, limit) in
        [(true, spec.successful_jobs_history_limit.unwrap_or(3)), (false, spec.failed_jobs_history_limit.unwrap_or(1))]
    {
        let mut done: Vec<&Job> = jobs.iter().filter(|j| finished(j).is_some_and(|(ok, _)| ok == success)).collect();
        done.sort_by_key(|j| {
            (j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0), j.metadata.name.clone())
        });
        let surplus = done.len().saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        out.extend(
            done.into_iter().take(surplus).filter_map(|j| Some((j.metadata.name.clone()?, j.metadata.uid.clone()?))),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn cronjob(spec: Value, status: Value) -> CronJob {
        let mut full = json!({"metadata": {"name": "backup", "namespace": "default", "uid": "cj-uid",
                "creationTimestamp": "2026-12-05T11:00:30Z"},
            "spec": {"schedule": "*/10 * * * *", "concurrencyPolicy": "Allow",
                "jobTemplate": {"metadata": {"labels": {"app": "backup"}}, "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "i"}]}}}}},
            "status": status});
        json_patch::merge(&mut full["spec"], &spec);
        serde_json::from_value(full).expect("cronjob")
    }

    fn job(name: &str, state: Option<&str>, started: &str) -> Job {
        let conditions = match state {
            Some(t) => json!([{"type": t, "status": "True", "lastTransitionTime": started}]),
            None => json!([]),
        };
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "status": {"startTime": started, "conditions": conditions}}))
        .expect("job")
    }

    #[test]
    fn the_most_recent_due_time_runs_once_under_each_concurrency_policy() {
        let utc = TimeZone::UTC;
        // Created 11:00:30, now 11:25: 11:10 and 11:20 were due; only the latest runs.
        let p = plan(&cronjob(json!({}), json!({})), &[], &utc, at("2026-12-05T11:25:00Z"));
        let (made, when) = p.create.clone().expect("a job");
        assert_eq!((made.metadata.name.as_deref(), when), (Some("backup-29941160"), at("2026-12-05T11:20:00Z")));
        assert_eq!(made.metadata.annotations.expect("a")[SCHEDULED_TIMESTAMP], "2026-12-05T11:20:00+00:00");
        assert_eq!(made.metadata.labels.expect("l")["app"], "backup");
        assert_eq!(made.metadata.owner_references.expect("o")[0].uid, "cj-uid");
        assert_eq!(p.status.last_schedule_time, Some(Time(at("2026-12-05T11:20:00Z"))));
        assert_eq!(p.requeue_at, Some(at("2026-12-05T11:30:00Z")));
        // Already run for 11:20: nothing until 11:30.
        let ran = json!({"lastScheduleTime": "2026-12-05T11:20:00Z"});
        let p = plan(&cronjob(json!({}), ran.clone()), &[], &utc, at("2026-12-05T11:25:00Z"));
        assert_eq!((p.create.is_none(), p.requeue_at), (true, Some(at("2026-12-05T11:30:00Z"))));
        // 11:30 with the 11:20 job still running.
        let running = [job("backup-29941160", None, "2026-12-05T11:20:01Z")];
        let now = at("2026-12-05T11:30:05Z");
        let allow = plan(&cronjob(json!({}), ran.clone()), &running, &utc, now);
        assert!(allow.create.is_some() && allow.delete.is_empty());
        let forbid = plan(&cronjob(json!({"concurrencyPolicy": "Forbid"}), ran.clone()), &running, &utc, now);
        assert!(forbid.create.is_none());
        assert_eq!(forbid.notes[0].1, "JobAlreadyActive");
        let replace = plan(&cronjob(json!({"concurrencyPolicy": "Replace"}), ran.clone()), &running, &utc, now);
        assert!(replace.create.is_some());
        assert_eq!(replace.delete, [("backup-29941160".to_string(), "uid-backup-29941160".to_string())]);
        // Suspended, or past the starting deadline: nothing.
        assert!(plan(&cronjob(json!({"suspend": true}), ran.clone()), &[], &utc, now).create.is_none());
        let late = plan(&cronjob(json!({"startingDeadlineSeconds": 3}), ran.clone()), &[], &utc, now);
        assert!(late.create.is_none());
        let in_time = plan(&cronjob(json!({"startingDeadlineSeconds": 30}), ran), &[], &utc, now);
        assert!(in_time.create.is_some());
        // A bad schedule says so.
        let bad = plan(&cronjob(json!({"schedule": "61 * * * *"}), json!({})), &[], &utc, now);
        assert_eq!((bad.create.is_none(), bad.notes[0].1), (true, "UnparseableSchedule"));
    }

    #[test]
    fn finished_jobs_are_kept_to_the_history_limits_and_the_status_follows_them() {
        let utc = TimeZone::UTC;
        let jobs = [
            job("a", Some("Complete"), "2026-12-05T10:00:00Z"),
            job("b", Some("Complete"), "2026-12-05T10:10:00Z"),
            job("c", Some("Failed"), "2026-12-05T10:20:00Z"),
            job("d", Some("Complete"), "2026-12-05T10:30:00Z"),
            job("e", Some("Failed"), "2026-12-05T10:40:00Z"),
            job("f", None, "2026-12-05T10:50:00Z"),
        ];
        let spec = json!({"successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1, "suspend": true});
        let status = json!({"active": [{"kind": "Job", "name": "e", "uid": "uid-e"}, {"kind": "Job", "name": "f", "uid": "uid-f"}]});
        let p = plan(&cronjob(spec, status), &jobs, &utc, at("2026-12-05T11:00:00Z"));
        assert_eq!(p.delete, [("a".to_string(), "uid-a".to_string()), ("c".to_string(), "uid-c".to_string())]);
        let active: Vec<String> = p.status.active.iter().flatten().filter_map(|r| r.name.clone()).collect();
        assert_eq!(active, ["f"]);
        assert_eq!(p.status.last_successful_time, Some(Time(at("2026-12-05T10:30:00Z"))));
        assert_eq!(p.notes, [(false, "SawCompletedJob", "Saw completed job: e, condition: Failed".to_string())]);
    }

    #[test]
    fn schedules_are_read_in_their_time_zone() {
        let tokyo = TimeZone::get("Asia/Tokyo").expect("tzdb");
        let cj = cronjob(
            json!({"schedule": "0 9 * * *", "timeZone": "Asia/Tokyo"}),
            json!({"lastScheduleTime": "2026-12-04T00:00:00Z"}),
        );
        // 09:00 in Tokyo is 00:00 UTC.
        let p = plan(&cj, &[], &tokyo, at("2026-12-05T00:00:10Z"));
        let (made, when) = p.create.expect("due");
        assert_eq!(when, at("2026-12-05T00:00:00Z"));
        assert_eq!(made.metadata.annotations.expect("a")[SCHEDULED_TIMESTAMP], "2026-12-05T09:00:00+09:00");
    }
}
