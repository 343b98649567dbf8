//! The Job controller shell (kube-controller-manager's `job-controller` and
//! `ttl-after-finished-controller`): on every change to a Job or its pods, read its pods
//! (adopting orphans its selector matches), ask `logic::job::plan`, create or delete pods,
//! record events as upstream's controller does, write status, and delete a finished job whose
//! `ttlSecondsAfterFinished` has passed (its pods with it, in the background).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
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
    #[error("job {0} has no namespace")]
    NoNamespace(String),
}

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let ctx = Ctx::new(client.clone(), "job-controller");
    let controller = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default());
    crate::workload::run_controller("job", controller, reconcile, ctx, shutdown).await;
}

/// The true condition types of a status, for noticing the ones a sync adds.
fn true_conditions(status: Option<&k8s_openapi::api::batch::v1::JobStatus>) -> Vec<String> {
    status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.status == "True")
        .map(|c| c.type_.clone())
        .collect()
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let name = job.name_any();
    let ns = job.namespace().ok_or_else(|| Error::NoNamespace(name.clone()))?;
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = job.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    let owner = logic::ownership::controller_ref("batch/v1", "Job", &job.metadata);
    let pods = crate::workload::claim_owned(&pods_api, &job.metadata, &owner, &selector, &|_| true).await?;
    let now = jiff::Timestamp::now();
    let plan = logic::job::plan(&job, &pods, now);
    let reference = job.object_ref(&());
    let recorder = &ctx.recorder;

    if plan.delete_job {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions { uid: job.metadata.uid.clone(), resource_version: None }),
            ..Default::default()
        };
        match jobs.delete(&name, &params).await {
            Ok(_) | Err(kube::Error::Api(_)) => return Ok(Requeue::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    let created = crate::workload::slow_start(plan.create.clone(), |index| {
        let (api, reference, job) = (&pods_api, &reference, &job);
        async move { crate::workload::create_pod(api, recorder, reference, &logic::job::new_pod(job, index)).await }
    })
    .await;
    for (pod_name, uid) in &plan.delete {
        crate::workload::delete_pod(&pods_api, recorder, &reference, pod_name, uid).await?;
    }
    let before = true_conditions(job.status.as_ref());
    for condition in plan.status.conditions.iter().flatten().filter(|c| c.status == "True") {
        if before.contains(&condition.type_) {
            continue;
        }
        let (type_, reason, note) = match condition.type_.as_str() {
            "Complete" => (EventType::Normal, "Completed", "Job completed".to_string()),
            "Failed" => (
                EventType::Warning,
                condition.reason.as_deref().unwrap_or("Failed"),
                condition.message.clone().unwrap_or_default(),
            ),
            "Suspended" => (EventType::Normal, "Suspended", "Job suspended".to_string()),
            _ => continue,
        };
        client_tools::publish(recorder, &reference, type_, reason, note).await;
    }
    if job.status.as_ref() != Some(&plan.status) {
        let mut status = serde_json::to_value(&plan.status).unwrap_or_default();
        // A merge patch: fields the plan leaves out are cleared, not kept.
        for field in ["startTime", "completionTime", "completedIndexes"] {
            if status.get(field).is_none() {
                status[field] = serde_json::Value::Null;
            }
        }
        match jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    created?;
    Ok(match plan.requeue_at {
        Some(at) => Requeue::requeue(at.duration_since(now).unsigned_abs().max(Duration::from_millis(100))),
        None => Requeue::await_change(),
    })
}
