//! The CronJob controller shell (kube-controller-manager's `cronjob-controller`): on every
//! change to a CronJob or its Jobs, and at its next scheduled time, ask `logic::cronjob::plan`
//! with the CronJob's time zone (`spec.timeZone`, else this machine's), create the due Job,
//! delete replaced jobs and those past the history limits, record events and write status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::workload::Ctx;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("cronjob {0} has no namespace")]
    NoNamespace(String),
}

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let ctx = Ctx::new(client.clone(), "cronjob-controller");
    let controller = Controller::new(Api::<CronJob>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Job>::all(client), watcher::Config::default());
    crate::workload::run_controller("cronjob", controller, reconcile, ctx, shutdown).await;
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let name = cj.name_any();
    let ns = cj.namespace().ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let jobs: Vec<Job> = jobs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| logic::ownership::controlled_by(&j.metadata, &uid))
        .collect();
    let zone = match cj.spec.as_ref().and_then(|s| s.time_zone.as_deref()) {
        Some(z) => match jiff::tz::TimeZone::get(z) {
            Ok(zone) => zone,
            Err(_) => return Ok(Requeue::await_change()),
        },
        None => jiff::tz::TimeZone::system(),
    };
    let now = jiff::Timestamp::now();
    let mut plan = logic::cronjob::plan(&cj, &jobs, &zone, now);
    let reference = cj.object_ref(&());
    let recorder = &ctx.recorder;
    for (warning, reason, note) in std::mem::take(&mut plan.notes) {
        let kind = if warning { EventType::Warning } else { EventType::Normal };
        client_tools::publish(recorder, &reference, kind, reason, note).await;
    }
    for (job_name, job_uid) in &plan.delete {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions { uid: Some(job_uid.clone()), resource_version: None }),
            ..Default::default()
        };
        match jobs_api.delete(job_name, &params).await {
            Ok(_) => {
                let note = format!("Deleted job {job_name}");
                client_tools::publish(recorder, &reference, EventType::Normal, "SuccessfulDelete", note).await;
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(active) = plan.status.active.as_mut() {
            active.retain(|r| r.uid.as_deref() != Some(job_uid.as_str()));
        }
    }
    if let Some((job, _)) = &plan.create {
        match jobs_api.create(&PostParams::default(), job).await {
            Ok(made) => {
                let note = format!("Created job {}", made.name_any());
                client_tools::publish(recorder, &reference, EventType::Normal, "SuccessfulCreate", note).await;
                let entry = k8s_openapi::api::core::v1::ObjectReference {
                    api_version: Some("batch/v1".into()),
                    kind: Some("Job".into()),
                    name: made.metadata.name.clone(),
                    namespace: made.metadata.namespace.clone(),
                    uid: made.metadata.uid.clone(),
                    resource_version: made.metadata.resource_version.clone(),
                    ..Default::default()
                };
                plan.status.active.get_or_insert_with(Vec::new).push(entry);
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                let note = format!("Error creating job: {e}");
                client_tools::publish(recorder, &reference, EventType::Warning, "FailedCreate", note).await;
                return Err(e.into());
            }
        }
    }
    if cj.status.as_ref() != Some(&plan.status) {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
        let mut status = serde_json::to_value(&plan.status).unwrap_or_default();
        if status.get("active").is_none() {
            status["active"] = serde_json::Value::Null;
        }
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(match plan.requeue_at {
        // A little after the minute, so the time is due when the sync runs.
        Some(at) => Requeue::requeue(at.duration_since(now).unsigned_abs() + Duration::from_millis(100)),
        None => Requeue::await_change(),
    })
}
