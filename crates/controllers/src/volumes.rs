//! Persistent volumes: upstream's PV controller (binding claims to volumes, phases, reclaim),
//! the protection controllers (the `kubernetes.io/pvc-protection` and `pv-protection`
//! finalizers), and a local provisioner for the default `local-path` StorageClass, which makes
//! a directory under the data dir and a `hostPath` volume with node affinity for each claim.
//!
//! Level-triggered like the scheduler: any change to claims, volumes, classes or pods runs one
//! pass over fresh caches; decisions come from `logic::volume`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use logic::volume::{ClaimDecision, DEFAULT_CLASS_ANNOTATION};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The provisioner name of Ordinal's local volumes.
pub const LOCAL_PROVISIONER: &str = "ordinal.dev/local-path";
/// The default StorageClass created at start.
pub const LOCAL_CLASS: &str = "local-path";
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

const RESYNC: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_millis(10);

/// Where local volumes are made.
#[derive(Debug, Clone)]
pub struct LocalProvisioner {
    /// `<data-dir>/volumes`.
    pub root: PathBuf,
    pub node_name: String,
}

struct Caches {
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    classes: Store<StorageClass>,
    pods: Store<Pod>,
}

pub async fn run(client: kube::Client, shutdown: CancellationToken, provisioner: Option<LocalProvisioner>) {
    if let Some(p) = &provisioner
        && let Err(e) = ensure_local_class(&client, p).await
    {
        tracing::warn!(error = %e, "create the local-path StorageClass");
    }
    let changed = Arc::new(Notify::new());
    let (claims, w1) = client_tools::reflect(Api::<PersistentVolumeClaim>::all(client.clone()), changed.clone());
    let (volumes, w2) = client_tools::reflect(Api::<PersistentVolume>::all(client.clone()), changed.clone());
    let (classes, w3) = client_tools::reflect(Api::<StorageClass>::all(client.clone()), changed.clone());
    let (pods, w4) = client_tools::reflect(Api::<Pod>::all(client.clone()), changed.clone());
    let watches = futures::future::join4(w1, w2, w3, w4);
    tokio::pin!(watches);
    let caches = Caches { claims, volumes, classes, pods };
    let ready = async {
        let _ = caches.claims.wait_until_ready().await;
        let _ = caches.volumes.wait_until_ready().await;
        let _ = caches.classes.wait_until_ready().await;
        let _ = caches.pods.wait_until_ready().await;
    };
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = &mut watches => return,
        _ = ready => {}
    }
    let recorder =
        Recorder::new(client.clone(), Reporter { controller: "persistentvolume-controller".into(), instance: None });
    let mut said: BTreeMap<String, String> = BTreeMap::new();
    loop {
        if let Err(e) = pass(&client, &caches, provisioner.as_ref(), &recorder, &mut said).await {
            tracing::debug!(error = %e, "volume pass");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = &mut watches => return,
            _ = changed.notified() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

async fn ensure_local_class(client: &kube::Client, p: &LocalProvisioner) -> kube::Result<()> {
    std::fs::create_dir_all(&p.root).map_err(|e| kube::Error::Service(Box::new(e)))?;
    let classes: Api<StorageClass> = Api::all(client.clone());
    if classes.get_opt(LOCAL_CLASS).await?.is_some() {
        return Ok(());
    }
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": LOCAL_CLASS, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": LOCAL_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": true,
    }))
    .map_err(kube::Error::SerdeError)?;
    match classes.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

fn claim_key(c: &PersistentVolumeClaim) -> String {
    format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any())
}

/// Pods (not finished) that mount the claim.
fn users<'a>(claim: &PersistentVolumeClaim, pods: &'a [Arc<Pod>]) -> Vec<&'a Pod> {
    let ns = claim.namespace();
    let name = claim.name_any();
    pods.iter()
        .map(|p| p.as_ref())
        .filter(|p| p.namespace() == ns)
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
            phase != "Succeeded" && phase != "Failed"
        })
        .filter(|p| {
            p.spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .any(|v| v.persistent_volume_claim.as_ref().is_some_and(|c| c.claim_name == name))
        })
        .collect()
}

fn without(finalizers: &Option<Vec<String>>, f: &str) -> Vec<String> {
    finalizers.iter().flatten().filter(|x| x.as_str() != f).cloned().collect()
}

async fn pass(
    client: &kube::Client,
    caches: &Caches,
    provisioner: Option<&LocalProvisioner>,
    recorder: &Recorder,
    said: &mut BTreeMap<String, String>,
) -> kube::Result<()> {
    let claims: Vec<PersistentVolumeClaim> = caches.claims.state().iter().map(|c| (**c).clone()).collect();
    let volumes: Vec<PersistentVolume> = caches.volumes.state().iter().map(|v| (**v).clone()).collect();
    let classes: Vec<StorageClass> = caches.classes.state().iter().map(|c| (**c).clone()).collect();
    let pods = caches.pods.state();
    let pv_api: Api<PersistentVolume> = Api::all(client.clone());

    for claim in &claims {
        let ns = claim.namespace().unwrap_or_default();
        let name = claim.name_any();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        let in_use = users(claim, &pods);
        if claim.metadata.deletion_timestamp.is_some() {
            let protected = claim.finalizers().iter().any(|f| f == PVC_PROTECTION);
            if protected && in_use.is_empty() {
                let kept = without(&claim.metadata.finalizers, PVC_PROTECTION);
                ignore_gone(
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": kept}})))
                        .await,
                )?;
            }
            continue;
        }
        // Already bound: keep both sides' statuses true, and grow the volume with its claim.
        let bound = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .and_then(|v| volumes.iter().find(|pv| pv.metadata.name.as_deref() == Some(v)))
            .filter(|pv| logic::volume::claimed_by(pv, claim));
        if let Some(pv) = bound {
            let expanded = expand_if_asked(&pv_api, claim, pv, &classes).await?;
            settle_bound(&api, &pv_api, claim, expanded.as_ref().unwrap_or(pv)).await?;
            continue;
        }
        // Bound once, and its volume is gone: Lost (upstream's phase), and it stays so.
        let completed = claim.annotations().get("pv.kubernetes.io/bind-completed").is_some_and(|v| v == "yes");
        let named = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()).is_some_and(|v| !v.is_empty());
        if completed && named {
            if claim.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Lost") {
                let status = json!({"status": {"phase": "Lost"}});
                ignore_gone(api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status)).await)?;
                let note = "Bound claim has lost its PersistentVolume. Data on the volume is lost!".to_string();
                say(recorder, said, claim, true, "ClaimLost", note).await;
            }
            continue;
        }
        let class_name = logic::volume::claim_class(claim);
        let class = classes.iter().find(|c| c.metadata.name.as_deref() == Some(class_name.as_str()));
        let class_exists = class_name.is_empty() || class.is_some();
        let wait_for_consumer = class.and_then(|c| c.volume_binding_mode.as_deref()) == Some("WaitForFirstConsumer");
        let consumer = in_use.iter().find_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()));
        match logic::volume::decide(claim, &volumes, class_exists, wait_for_consumer, consumer.is_some()) {
            ClaimDecision::Bind(volume) => {
                let Some(pv) = volumes.iter().find(|v| v.metadata.name.as_deref() == Some(volume.as_str())) else {
                    continue;
                };
                bind(&api, &pv_api, claim, pv).await?;
                said.remove(&claim_key(claim));
            }
            ClaimDecision::Provision => {
                let Some(class) = class else { continue };
                match (class.provisioner.as_str(), provisioner) {
                    (LOCAL_PROVISIONER, Some(p)) => {
                        let note = match provision(&pv_api, claim, class, p, consumer.as_deref()).await {
                            Ok(volume) => {
                                (false, "ProvisioningSucceeded", format!("Successfully provisioned volume {volume}"))
                            }
                            Err(e) => (
                                true,
                                "ProvisioningFailed",
                                format!("failed to provision volume with StorageClass \"{class_name}\": {e}"),
                            ),
                        };
                        say(recorder, said, claim, note.0, note.1, note.2).await;
                    }
                    (other, _) => {
                        let note = format!(
                            "Waiting for a volume to be created either by the external provisioner '{other}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."
                        );
                        say(recorder, said, claim, false, "ExternalProvisioning", note).await;
                    }
                }
            }
            ClaimDecision::Wait(why) => {
                let (warning, reason) = if why.contains("not found") && why.starts_with("storageclass") {
                    (true, "ProvisioningFailed")
                } else if why.starts_with("waiting for first consumer") {
                    (false, "WaitForFirstConsumer")
                } else {
                    (false, "FailedBinding")
                };
                say(recorder, said, claim, warning, reason, why).await;
            }
        }
    }

    for pv in &volumes {
        let name = pv.name_any();
        let phase = logic::volume::volume_phase(pv, &claims);
        if pv.metadata.deletion_timestamp.is_some() {
            if phase != "Bound" && pv.finalizers().iter().any(|f| f == PV_PROTECTION) {
                let kept = without(&pv.metadata.finalizers, PV_PROTECTION);
                ignore_gone(
                    pv_api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": kept}})))
                        .await,
                )?;
            }
            continue;
        }
        let current = pv.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        if phase == "Released" {
            reclaim(&pv_api, pv, provisioner, &current).await?;
            continue;
        }
        if current != phase {
            set_volume_phase(&pv_api, &name, phase, None).await?;
        }
    }
    Ok(())
}

/// An event for the claim, once per distinct message.
async fn say(
    recorder: &Recorder,
    said: &mut BTreeMap<String, String>,
    claim: &PersistentVolumeClaim,
    warning: bool,
    reason: &str,
    note: String,
) {
    let key = claim_key(claim);
    if said.get(&key) == Some(&note) {
        return;
    }
    said.insert(key, note.clone());
    let type_ = if warning { EventType::Warning } else { EventType::Normal };
    client_tools::publish(recorder, &claim.object_ref(&()), type_, reason, note).await;
}

fn ignore_gone<T>(r: kube::Result<T>) -> kube::Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn set_volume_phase(
    api: &Api<PersistentVolume>,
    name: &str,
    phase: &str,
    message: Option<&str>,
) -> kube::Result<()> {
    let mut status = json!({"phase": phase});
    if let Some(m) = message {
        status["message"] = json!(m);
    }
    ignore_gone(api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await)
}

/// Two-way binding, volume first (as upstream does): the volume's `claimRef`, then the claim's
/// `volumeName` and annotations, then both statuses.
async fn bind(
    claims: &Api<PersistentVolumeClaim>,
    volumes: &Api<PersistentVolume>,
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
) -> kube::Result<()> {
    let pv_name = pv.name_any();
    if !logic::volume::claimed_by(pv, claim)
        || pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).and_then(|r| r.uid.as_ref()).is_none()
    {
        let claim_ref = json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": claim.namespace(),
            "name": claim.name_any(), "uid": claim.metadata.uid, "resourceVersion": claim.metadata.resource_version});
        let patch = json!({"metadata": {"annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"claimRef": claim_ref}});
        ignore_gone(volumes.patch(&pv_name, &PatchParams::default(), &Patch::Merge(patch)).await)?;
    }
    let mut annotations = json!({"pv.kubernetes.io/bind-completed": "yes"});
    if claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()).is_none_or(str::is_empty) {
        annotations["pv.kubernetes.io/bound-by-controller"] = json!("yes");
    }
    let patch = json!({"metadata": {"annotations": annotations}, "spec": {"volumeName": pv_name}});
    ignore_gone(claims.patch(&claim.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await)?;
    settle_bound(claims, volumes, claim, pv).await
}

/// Both sides say Bound; the claim's status carries the volume's capacity and modes.
async fn settle_bound(
    claims: &Api<PersistentVolumeClaim>,
    volumes: &Api<PersistentVolume>,
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
) -> kube::Result<()> {
    let spec = pv.spec.clone().unwrap_or_default();
    let want = json!({"phase": "Bound", "accessModes": spec.access_modes, "capacity": spec.capacity});
    let have = claim.status.as_ref().map(|s| serde_json::to_value(s).unwrap_or_default()).unwrap_or_default();
    if have.get("phase") != want.get("phase")
        || have.get("capacity") != want.get("capacity")
        || have.get("accessModes") != want.get("accessModes")
    {
        let status = json!({"status": want});
        ignore_gone(claims.patch_status(&claim.name_any(), &PatchParams::default(), &Patch::Merge(status)).await)?;
    }
    if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
        set_volume_phase(volumes, &pv.name_any(), "Bound", None).await?;
    }
    Ok(())
}

/// A bound claim that asks for more than its volume has grows the volume, if its class allows
/// expansion (local volumes: the capacity is a request, not enforced, so only the numbers grow).
async fn expand_if_asked(
    volumes: &Api<PersistentVolume>,
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
    classes: &[StorageClass],
) -> kube::Result<Option<PersistentVolume>> {
    let request = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned();
    let Some(request) = request else { return Ok(None) };
    let wanted = model::quantity::parse_quantity(&request.0).map(|q| q.millis()).unwrap_or(0);
    if wanted <= logic::volume::capacity(pv) {
        return Ok(None);
    }
    let class = logic::volume::claim_class(claim);
    let expandable = classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(class.as_str()))
        .is_some_and(|c| c.allow_volume_expansion == Some(true));
    if !expandable {
        return Ok(None);
    }
    let patch = json!({"spec": {"capacity": {"storage": request.0}}});
    match volumes.patch(&pv.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await {
        Ok(updated) => Ok(Some(updated)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Make a directory and a volume reserved for `claim`.
async fn provision(
    volumes: &Api<PersistentVolume>,
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    p: &LocalProvisioner,
    node: Option<&str>,
) -> Result<String, String> {
    let uid = claim.metadata.uid.clone().ok_or("the claim has no uid")?;
    let name = format!("pvc-{uid}");
    if volumes.get_opt(&name).await.map_err(|e| e.to_string())?.is_some() {
        return Ok(name);
    }
    let dir = p.root.join(&name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let spec = claim.spec.clone().unwrap_or_default();
    let request = spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).cloned();
    let node = node.unwrap_or(p.node_name.as_str());
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {PROVISIONED_BY: LOCAL_PROVISIONER}},
        "spec": {
            "capacity": {"storage": request.map(|q| q.0).unwrap_or_else(|| "1Gi".into())},
            "accessModes": spec.access_modes,
            "persistentVolumeReclaimPolicy": class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            "storageClassName": class.metadata.name,
            "volumeMode": spec.volume_mode.unwrap_or_else(|| "Filesystem".into()),
            "hostPath": {"path": dir.display().to_string(), "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": claim.namespace(),
                "name": claim.name_any(), "uid": uid, "resourceVersion": claim.metadata.resource_version},
        }
    }))
    .map_err(|e| e.to_string())?;
    match volumes.create(&PostParams::default(), &pv).await {
        Ok(_) => Ok(name),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(name),
        Err(e) => Err(e.to_string()),
    }
}

/// A volume whose claim is gone: Retain keeps it Released; Delete removes what Ordinal
/// provisioned (directory and object); a static volume is never deleted from disk.
async fn reclaim(
    volumes: &Api<PersistentVolume>,
    pv: &PersistentVolume,
    provisioner: Option<&LocalProvisioner>,
    current: &str,
) -> kube::Result<()> {
    let name = pv.name_any();
    let policy =
        pv.spec.as_ref().and_then(|s| s.persistent_volume_reclaim_policy.clone()).unwrap_or_else(|| "Retain".into());
    let ours = pv.annotations().get(PROVISIONED_BY).is_some_and(|p| p == LOCAL_PROVISIONER);
    match (policy.as_str(), ours, provisioner) {
        ("Delete", true, Some(p)) => {
            let dir = p.root.join(&name);
            if dir.starts_with(&p.root) && dir != p.root {
                let _ = std::fs::remove_dir_all(&dir);
            }
            ignore_gone(volumes.delete(&name, &DeleteParams::default()).await)
        }
        ("Delete", _, _) => {
            let message = "Ordinal deletes only the volumes it provisioned; this volume's data stays where it is";
            if current != "Failed" {
                set_volume_phase(volumes, &name, "Failed", Some(message)).await?;
            }
            Ok(())
        }
        _ => {
            if current != "Released" {
                set_volume_phase(volumes, &name, "Released", None).await?;
            }
            Ok(())
        }
    }
}
