//! The StatefulSet controller shell: on every change to a set (or to the pods and revisions it
//! owns), read the set's pods, claims and revisions from the API, settle the revisions, ask
//! `logic::statefulset::plan` what to do, do it, record events and write status.
//!
//! Reads go to the API rather than to watch caches: a stale cache could make the controller
//! create a pod that already exists or skip one that is gone; a fresh list cannot.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use logic::statefulset::revision::{self, UpdateRevision};
use logic::statefulset::{Action, DeleteReason, Input};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Why a sync failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("statefulset {0} has no namespace")]
    NoNamespace(String),
    #[error("statefulset {0}: revision {1} holds no pod template")]
    BadRevision(String, String),
}

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
}

pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let sets: Api<StatefulSet> = Api::all(client.clone());
    let reporter = Reporter { controller: "statefulset-controller".into(), instance: None };
    let ctx = Arc::new(Ctx { client: client.clone(), recorder: Recorder::new(client.clone(), reporter) });
    let stop = shutdown.clone();
    let running = Controller::new(sets, watcher::Config::default())
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .owns(Api::<ControllerRevision>::all(client), watcher::Config::default())
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "statefulset sync");
            }
            futures::future::ready(())
        });
    tokio::pin!(running);
    tokio::select! {
        _ = &mut running => {}
        _ = shutdown.cancelled() => {
            // Graceful shutdown lets running syncs finish; a controller whose caches never
            // filled can wait forever, so it gets a bounded grace period and is then dropped.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut running).await;
        }
    }
}

const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn error_policy(_set: Arc<StatefulSet>, error: &Error, _ctx: Arc<Ctx>) -> Requeue {
    tracing::warn!(%error, "statefulset sync failed");
    Requeue::requeue(Duration::from_secs(1))
}

fn controlled_by(obj: &impl Resource, uid: &str) -> bool {
    obj.meta().owner_references.iter().flatten().any(|r| r.controller == Some(true) && r.uid == uid)
}

fn selector_string(set: &StatefulSet) -> String {
    let selector = set.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    model::selector::LabelSelector::from_k8s(&selector).map(|s| s.to_string()).unwrap_or_default()
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let name = set.name_any();
    let ns = set.namespace().ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let client = &ctx.client;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let revisions_api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let sets_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let selected = ListParams::default().labels(&selector_string(&set));

    let pods: Vec<Pod> = pods_api.list(&selected).await?.items.into_iter().filter(|p| controlled_by(p, &uid)).collect();
    let revisions: Vec<ControllerRevision> =
        revisions_api.list(&selected).await?.items.into_iter().filter(|r| controlled_by(r, &uid)).collect();

    // Settle the revisions.
    let mut collision_count = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    let (current_name, update) = revision::choose(&set, &revisions);
    let update_revision: ControllerRevision = match update {
        UpdateRevision::Latest(n) => {
            find(&revisions, &n).cloned().ok_or_else(|| Error::BadRevision(name.clone(), n))?
        }
        UpdateRevision::Reuse { name: n, revision } => {
            let patch = json!({"revision": revision});
            revisions_api.patch(&n, &PatchParams::default(), &Patch::Merge(patch)).await?
        }
        UpdateRevision::Create(mut candidate) => loop {
            match revisions_api.create(&PostParams::default(), &candidate).await {
                Ok(created) => break created,
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let existing = revisions_api.get(candidate.metadata.name.as_deref().unwrap_or_default()).await?;
                    let same = match (&existing.data, &candidate.data) {
                        (Some(a), Some(b)) => revision::same_template(&a.0, &b.0),
                        _ => false,
                    };
                    if same && controlled_by(&existing, &uid) {
                        break existing;
                    }
                    collision_count += 1;
                    *candidate = revision::new_revision(&set, collision_count, candidate.revision);
                }
                Err(e) => return Err(e.into()),
            }
        },
    };
    let update_name = update_revision.name_any();
    let current_revision =
        current_name.and_then(|n| find(&revisions, &n).cloned()).unwrap_or_else(|| update_revision.clone());
    let current_name = current_revision.name_any();
    let template = |r: &ControllerRevision| -> Result<PodTemplateSpec, Error> {
        r.data
            .as_ref()
            .and_then(|d| revision::template_of(&d.0))
            .ok_or_else(|| Error::BadRevision(name.clone(), r.name_any()))
    };
    let current_template = template(&current_revision)?;
    let update_template = template(&update_revision)?;

    let claims = claims_api.list(&ListParams::default()).await?.items;
    let plan = logic::statefulset::plan(&Input {
        set: &set,
        pods: &pods,
        claims: &claims,
        current_revision: &current_name,
        current_template: &current_template,
        update_revision: &update_name,
        update_template: &update_template,
        collision_count,
        now: jiff::Timestamp::now(),
    });

    let result = apply(&ctx, &set, &pods_api, &claims_api, &plan.actions).await;

    if logic::statefulset::status_changed(set.status.as_ref(), &plan.status) {
        let patch = json!({"status": plan.status});
        sets_api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
    }

    // History: keep the live revisions and at most revisionHistoryLimit others.
    let mut live: Vec<&str> = vec![current_name.as_str(), update_name.as_str()];
    live.extend(pods.iter().map(logic::statefulset::revision_of));
    for old in revision::to_truncate(&set, &revisions, &live) {
        match revisions_api.delete(&old, &DeleteParams::default()).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    result?;

    Ok(match (plan.requeue_after_secs, plan.wait) {
        (Some(secs), _) => Requeue::requeue(Duration::from_secs(secs)),
        (None, Some(logic::statefulset::Wait::ClaimTerminating(_))) => Requeue::requeue(Duration::from_secs(1)),
        _ => Requeue::await_change(),
    })
}

fn find<'a>(revisions: &'a [ControllerRevision], name: &str) -> Option<&'a ControllerRevision> {
    revisions.iter().find(|r| r.metadata.name.as_deref() == Some(name))
}

/// Apply the plan's actions in order; stop at the first failure (the next sync re-plans).
async fn apply(
    ctx: &Ctx,
    set: &StatefulSet,
    pods_api: &Api<Pod>,
    claims_api: &Api<PersistentVolumeClaim>,
    actions: &[Action],
) -> Result<(), Error> {
    let set_name = set.name_any();
    let reference = set.object_ref(&());
    for action in actions {
        let (outcome, reason, note) = match action {
            Action::CreateClaim(claim) => {
                let claim_name = claim.name_any();
                let pod = claim_pod_name(&claim_name, &set_name);
                let r = claims_api.create(&PostParams::default(), claim).await.map(|_| ());
                let verb = if r.is_ok() { "success" } else { "failed" };
                (
                    r,
                    if verb == "success" { "SuccessfulCreate" } else { "FailedCreate" },
                    format!("create Claim {claim_name} Pod {pod} in StatefulSet {set_name} {verb}"),
                )
            }
            Action::CreatePod(pod) => {
                let pod_name = pod.name_any();
                let r = pods_api.create(&PostParams::default(), pod).await.map(|_| ());
                match &r {
                    Ok(()) => {
                        (r, "SuccessfulCreate", format!("create Pod {pod_name} in StatefulSet {set_name} successful"))
                    }
                    Err(e) => {
                        let note = format!("create Pod {pod_name} in StatefulSet {set_name} failed error: {e}");
                        (r, "FailedCreate", note)
                    }
                }
            }
            Action::SetClaimOwners { name, resource_version, owners } => {
                let owners = if owners.is_empty() { serde_json::Value::Null } else { json!(owners) };
                let patch = json!({"metadata": {"resourceVersion": resource_version, "ownerReferences": owners}});
                match claims_api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await {
                    // Changed under us: the next sync looks again.
                    Ok(_) | Err(kube::Error::Api(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Action::DeletePod { name, uid, reason } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                    ..DeleteParams::default()
                };
                let r = match pods_api.delete(name, &params).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(e),
                };
                let why = match reason {
                    DeleteReason::Finished => " (finished, to be recreated)",
                    DeleteReason::Condemned | DeleteReason::Update => "",
                };
                match &r {
                    Ok(()) => {
                        (r, "SuccessfulDelete", format!("delete Pod {name} in StatefulSet {set_name} successful{why}"))
                    }
                    Err(e) => {
                        let note = format!("delete Pod {name} in StatefulSet {set_name} failed error: {e}");
                        (r, "FailedDelete", note)
                    }
                }
            }
        };
        let type_ = if outcome.is_ok() { EventType::Normal } else { EventType::Warning };
        let event = Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::debug!(error = %e, "record event");
        }
        outcome?;
    }
    Ok(())
}

/// `www-web-0` → `web-0` (the pod a claim is for).
fn claim_pod_name(claim: &str, set_name: &str) -> String {
    claim.rfind(&format!("-{set_name}-")).map(|i| claim[i + 1..].to_string()).unwrap_or_default()
}
