//! Binding claims to volumes, as upstream's PersistentVolume controller decides it: a claim binds
//! to the volume that names it (`claimRef`), or the one it names (`volumeName`), or else the
//! smallest Available volume of its class that satisfies its access modes, volume mode, label
//! selector and request; a volume whose claim is gone is Released and then reclaimed.

#[cfg(test)]
mod tests;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;

use crate::quantity_of;

/// Upstream's annotation marking the default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// The class a claim asks for ("" for none).
pub fn claim_class(claim: &PersistentVolumeClaim) -> String {
    claim.spec.as_ref().and_then(|s| s.storage_class_name.clone()).unwrap_or_default()
}

/// The class a volume belongs to ("" for none).
pub fn volume_class(volume: &PersistentVolume) -> String {
    volume.spec.as_ref().and_then(|s| s.storage_class_name.clone()).unwrap_or_default()
}

/// The default StorageClass: the one annotated as default (the newest, if several are).
pub fn default_class(classes: &[StorageClass]) -> Option<&StorageClass> {
    classes
        .iter()
        .filter(|c| {
            c.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION)).is_some_and(|v| v == "true")
        })
        .max_by(|a, b| {
            let t = |c: &StorageClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b)).then_with(|| b.metadata.name.cmp(&a.metadata.name))
        })
}

fn requested_bytes(claim: &PersistentVolumeClaim) -> i128 {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| quantity_of(&q.0))
        .unwrap_or(0)
}

/// A volume's capacity in milli-bytes (as quantities compare).
pub fn capacity(volume: &PersistentVolume) -> i128 {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map(|q| quantity_of(&q.0))
        .unwrap_or(0)
}

fn volume_mode_of(mode: Option<&String>) -> &str {
    mode.map(String::as_str).unwrap_or("Filesystem")
}

/// Does `volume` name `claim` as its claim (by namespace and name, and uid when it has one)?
pub fn claimed_by(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else { return false };
    r.name.as_deref() == claim.metadata.name.as_deref()
        && r.namespace.as_deref() == claim.metadata.namespace.as_deref()
        && (r.uid.is_none() || r.uid == claim.metadata.uid)
}

/// Could `claim` bind to `volume`, leaving aside who else claims it?
pub fn satisfies(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let (Some(vs), Some(cs)) = (volume.spec.as_ref(), claim.spec.as_ref()) else { return false };
    if volume_class(volume) != claim_class(claim) {
        return false;
    }
    if volume_mode_of(vs.volume_mode.as_ref()) != volume_mode_of(cs.volume_mode.as_ref()) {
        return false;
    }
    let offered = vs.access_modes.clone().unwrap_or_default();
    if !cs.access_modes.iter().flatten().all(|m| offered.contains(m)) {
        return false;
    }
    if capacity(volume) < requested_bytes(claim) {
        return false;
    }
    if let Some(selector) = &cs.selector {
        let labels = volume.metadata.labels.clone().unwrap_or_default();
        if !label_selector_matches(selector, &labels) {
            return false;
        }
    }
    volume.metadata.deletion_timestamp.is_none()
}

fn label_selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let plain = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    plain && expressions
}

/// What to do for one unbound claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Bind to this volume.
    Bind(String),
    /// Ask the class's provisioner for a volume.
    Provision,
    /// Nothing fits yet; the reason, for the claim's event.
    Wait(String),
}

/// Choose for a claim that is not bound yet. `class_exists`: the claim's class is there (or it
/// names none); `wait_for_consumer`: the class binds `WaitForFirstConsumer`;
/// `consumer_scheduled`: a pod using the claim has a node.
pub fn decide(
    claim: &PersistentVolumeClaim,
    volumes: &[PersistentVolume],
    class_exists: bool,
    wait_for_consumer: bool,
    consumer_scheduled: bool,
) -> ClaimDecision {
    let wanted = claim.spec.as_ref().and_then(|s| s.volume_name.clone()).filter(|n| !n.is_empty());
    // A volume already reserved for this claim wins (pre-bound, or provisioned for it).
    if let Some(v) = volumes.iter().find(|v| claimed_by(v, claim)) {
        let name = v.metadata.name.clone().unwrap_or_default();
        if wanted.as_ref().is_none_or(|w| *w == name) {
            return ClaimDecision::Bind(name);
        }
    }
    if let Some(name) = wanted {
        return match volumes.iter().find(|v| v.metadata.name.as_deref() == Some(name.as_str())) {
            Some(v) if v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_none() && satisfies(v, claim) => {
                ClaimDecision::Bind(name)
            }
            Some(_) => ClaimDecision::Wait(format!("volume \"{name}\" is bound to another claim or does not fit")),
            None => ClaimDecision::Wait(format!("volume \"{name}\" not found")),
        };
    }
    if wait_for_consumer && !consumer_scheduled {
        return ClaimDecision::Wait("waiting for first consumer to be created before binding".into());
    }
    let best = volumes
        .iter()
        .filter(|v| v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_none())
        .filter(|v| {
            v.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|p| p == "Available" || p == "Pending")
        })
        .filter(|v| satisfies(v, claim))
        .min_by(|a, b| capacity(a).cmp(&capacity(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name)));
    if let Some(v) = best {
        return ClaimDecision::Bind(v.metadata.name.clone().unwrap_or_default());
    }
    let class = claim_class(claim);
    if class.is_empty() {
        ClaimDecision::Wait("no persistent volumes available for this claim and no storage class is set".into())
    } else if !class_exists {
        ClaimDecision::Wait(format!("storageclass.storage.k8s.io \"{class}\" not found"))
    } else {
        ClaimDecision::Provision
    }
}

/// A volume's phase from its claim reference and the claims that exist.
pub fn volume_phase(volume: &PersistentVolume, claims: &[PersistentVolumeClaim]) -> &'static str {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else { return "Available" };
    let claim = claims.iter().find(|c| {
        c.metadata.name == r.name && c.metadata.namespace == r.namespace && (r.uid.is_none() || r.uid == c.metadata.uid)
    });
    match claim {
        Some(_) => "Bound",
        // Reserved for a claim that was never there yet (pre-bound by name, no uid): wait.
        None if r.uid.is_none() => "Available",
        None => "Released",
    }
}
