//! The StatefulSet controller shell: on every change to a set (or to the pods and revisions it
//! owns), read the set's pods, claims and revisions from the API, settle the revisions, ask
//! `logic::statefulset::plan` what to do, do it, record events and write status.
//!
//! Reads go to the API rather than to watch caches: a stale cache could make the controller
//! create a pod that already exists or skip one that is gone; a fresh list cannot.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::EventType;
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

use crate::workload::Ctx;

/// Run until `shutdown`, for the sets of every namespace or of one (an operator whose Role
/// covers only its namespace).
pub async fn run(client: kube::Client, shutdown: CancellationToken, namespace: Option<String>) {
    fn api<K>(client: &kube::Client, namespace: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let ctx = Ctx::new(client.clone(), "statefulset-controller");
    let controller = Controller::new(api::<StatefulSet>(&client, &namespace), watcher::Config::default())
        .owns(api::<Pod>(&client, &namespace), watcher::Config::default())
        .owns(api::<ControllerRevision>(&client, &namespace), watcher::Config::default())
        .watches(api::<PersistentVolumeClaim>(&client, &namespace), watcher::Config::default(), set_of_claim);
    crate::workload::run_controller("statefulset", controller, reconcile, ctx, shutdown).await;
}

/// The set a claim belongs to, from its owner references (to the set, or to one of its pods).
fn set_of_claim(claim: PersistentVolumeClaim) -> Option<kube::runtime::reflector::ObjectRef<StatefulSet>> {
    let ns = claim.metadata.namespace.clone()?;
    claim.metadata.owner_references.iter().flatten().find_map(|r| {
        let set = match r.kind.as_str() {
            "StatefulSet" => r.name.clone(),
            "Pod" => logic::statefulset::pods::parent_and_ordinal(&r.name)?.0.to_string(),
            _ => return None,
        };
        Some(kube::runtime::reflector::ObjectRef::new(&set).within(&ns))
    })
}

fn controlled_by(obj: &impl Resource, uid: &str) -> bool {
    logic::ownership::controlled_by(obj.meta(), uid)
}

fn selector_string(set: &StatefulSet) -> String {
    let selector = set.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    model::selector::LabelSelector::from_k8s(&selector).map(|s| s.to_string()).unwrap_or_default()
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let name = set.name_any();
    let ns = set.namespace().ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let client = &ctx.client;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let revisions_api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let sets_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let selected = ListParams::default().labels(&selector_string(&set));

    let pods = claim_pods(&set, &pods_api).await?;
    let revisions = claim_revisions(&set, &revisions_api, &selected).await?;

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
                    // As upstream's `CreateControllerRevision`: an existing revision with the
                    // same data is this revision, whoever owns it now (a predecessor's history,
                    // still being orphaned, is adopted on a later pass); only different data
                    // is a collision.
                    if same {
                        break existing;
                    }
                    collision_count += 1;
                    *candidate = revision::new_revision(&set, collision_count, candidate.revision);
                }
                Err(e) => return Err(e.into()),
            }
        },
    };
    if let Some(cause) = revision::change_cause_to_record(&set, &update_revision) {
        let patch = json!({"metadata": {"annotations": {revision::CHANGE_CAUSE: cause}}});
        revisions_api.patch(&update_revision.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
    }
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

    let parallel = set.spec.as_ref().and_then(|s| s.pod_management_policy.as_deref()) == Some("Parallel");
    let result = if parallel {
        apply_in_batches(&ctx, &set, &pods_api, &claims_api, &plan.actions).await
    } else {
        apply(&ctx, &set, &pods_api, &claims_api, &plan.actions).await
    };

    grow_claims(&ctx.client, &set, &claims, &claims_api).await?;

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

/// The pods the set controls (upstream `ClaimPods` with `isMemberOf`), after adopting orphans that are its members and match its
/// selector, and releasing pods that no longer match it.
async fn claim_pods(set: &StatefulSet, api: &Api<Pod>) -> Result<Vec<Pod>, Error> {
    let selector = set.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    let owner = logic::statefulset::pods::controller_ref(set);
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let member = move |pod: &Pod| logic::statefulset::pods::is_member(&set_name, pod);
    Ok(crate::workload::claim_owned(api, &set.metadata, &owner, &selector, &member).await?)
}

/// The revisions the set controls, adopting orphans that match its selector (a set recreated
/// after `--cascade=orphan` finds its history again).
async fn claim_revisions(
    set: &StatefulSet,
    api: &Api<ControllerRevision>,
    selected: &ListParams,
) -> Result<Vec<ControllerRevision>, Error> {
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let mut out = Vec::new();
    for revision in api.list(selected).await?.items {
        if controlled_by(&revision, &uid) {
            out.push(revision);
            continue;
        }
        let has_controller = revision.metadata.owner_references.iter().flatten().any(|r| r.controller == Some(true));
        if !has_controller && set.metadata.deletion_timestamp.is_none() {
            let mut owners = revision.metadata.owner_references.clone().unwrap_or_default();
            owners.push(logic::statefulset::pods::controller_ref(set));
            if let Some(adopted) = crate::workload::set_owners(api, &revision, owners).await? {
                out.push(adopted);
            }
        }
    }
    Ok(out)
}

fn find<'a>(revisions: &'a [ControllerRevision], name: &str) -> Option<&'a ControllerRevision> {
    revisions.iter().find(|r| r.metadata.name.as_deref() == Some(name))
}

/// `Parallel`: upstream's slow start, stage by stage as upstream's `runForAll` calls: the
/// in-range pods (with their claims and claim owners), then the scale-down deletions (after
/// every claim owner they need is written), then the update deletions. Within a stage each
/// pod with the claims before it is one unit; units run concurrently in batches of 1, 2, 4, …
/// (at most 500), and a batch with a failure ends the sync.
async fn apply_in_batches(
    ctx: &Ctx,
    set: &StatefulSet,
    pods_api: &Api<Pod>,
    claims_api: &Api<PersistentVolumeClaim>,
    actions: &[Action],
) -> Result<(), Error> {
    let stage = |a: &Action| match a {
        Action::DeletePod { reason: DeleteReason::Condemned, .. } => 1,
        Action::DeletePod { reason: DeleteReason::Update, .. } => 2,
        _ => 0,
    };
    let mut rest = actions;
    while let Some(first) = rest.first() {
        let n = rest.iter().take_while(|a| stage(a) == stage(first)).count();
        let (this, next) = rest.split_at(n);
        rest = next;
        let mut units: Vec<&[Action]> = Vec::new();
        let mut start = 0;
        for (i, action) in this.iter().enumerate() {
            if !matches!(action, Action::CreateClaim(_)) {
                units.push(&this[start..=i]);
                start = i + 1;
            }
        }
        if start < this.len() {
            units.push(&this[start..]);
        }
        crate::workload::slow_start(units, |unit| apply(ctx, set, pods_api, claims_api, unit)).await?;
    }
    Ok(())
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
            Action::RepairIdentity { name, resource_version, labels } => {
                let patch = json!({"metadata": {"resourceVersion": resource_version, "labels": labels}});
                match pods_api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await {
                    Ok(_) | Err(kube::Error::Api(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Action::SetClaimOwners { name, resource_version, owners } => {
                let owners = if owners.is_empty() { serde_json::Value::Null } else { json!(owners) };
                let patch = json!({"metadata": {"resourceVersion": resource_version, "ownerReferences": owners}});
                match claims_api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await {
                    // Gone: nothing to own.
                    Ok(_) => continue,
                    Err(kube::Error::Api(s)) if s.code == 404 => continue,
                    // Changed under us, or refused: stop before the pod it is for is deleted
                    // (its claim would be left behind); the next sync looks again.
                    Err(e) => return Err(e.into()),
                }
            }
            // Upstream 1.31+ records the same event whatever the reason (#123809 removed
            // `RecreatingFailedPod`/`RecreatingTerminatedPod`).
            Action::DeletePod { name, uid, .. } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                    ..DeleteParams::default()
                };
                let r = match pods_api.delete(name, &params).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(e),
                };
                match &r {
                    Ok(()) => {
                        (r, "SuccessfulDelete", format!("delete Pod {name} in StatefulSet {set_name} successful"))
                    }
                    Err(e) => {
                        let note = format!("delete Pod {name} in StatefulSet {set_name} failed error: {e}");
                        (r, "FailedDelete", note)
                    }
                }
            }
        };
        client_tools::publish(
            &ctx.recorder,
            &reference,
            if outcome.is_ok() { EventType::Normal } else { EventType::Warning },
            reason,
            note,
        )
        .await;
        outcome?;
    }
    Ok(())
}

/// `www-web-0` → `web-0` (the pod a claim is for).
fn claim_pod_name(claim: &str, set_name: &str) -> String {
    claim.rfind(&format!("-{set_name}-")).map(|i| claim[i + 1..].to_string()).unwrap_or_default()
}

/// Beyond upstream (#68737): when a claim template asks for more storage, grow the set's claims
/// whose class allows expansion (the volume controller then grows their volumes).
async fn grow_claims(
    client: &kube::Client,
    set: &StatefulSet,
    claims: &[PersistentVolumeClaim],
    claims_api: &Api<PersistentVolumeClaim>,
) -> Result<(), Error> {
    let classes: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(client.clone());
    for (name, storage) in logic::statefulset::pods::claims_to_grow(set, claims) {
        let class = claims
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name.as_str()))
            .and_then(|c| c.spec.as_ref().and_then(|s| s.storage_class_name.clone()))
            .unwrap_or_default();
        let expandable =
            !class.is_empty() && classes.get_opt(&class).await?.is_some_and(|c| c.allow_volume_expansion == Some(true));
        if !expandable {
            continue;
        }
        let patch = json!({"spec": {"resources": {"requests": {"storage": storage}}}});
        match claims_api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
