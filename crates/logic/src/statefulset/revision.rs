//! ControllerRevisions of a StatefulSet: what a revision records (the pod template as a
//! `$patch: replace` strategic merge patch), its name and hash, which existing revision is the
//! current and the update one, and which old ones history truncation removes.
//!
//! Unlike upstream (kubernetes/kubernetes#134773) revisions are compared by meaning: both
//! templates are decoded and re-encoded before comparing, so a serializer change never rolls pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{Map, Value, json};

use super::pods::controller_ref;

pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// Recursively sort object keys (the byte form hashed and stored is canonical).
pub(crate) fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect::<Map<String, Value>>())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// `{"spec":{"template":{…,"$patch":"replace"}}}` for the set's template.
pub fn revision_data(set: &StatefulSet) -> Value {
    let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut t = serde_json::to_value(&template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    canonical(&json!({"spec": {"template": t}}))
}

/// The template a revision's data holds, normalised through the typed form.
pub fn template_of(data: &Value) -> Option<PodTemplateSpec> {
    let mut t = data.pointer("/spec/template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// Whether two revision datas hold the same template (by meaning, not bytes).
pub fn same_template(a: &Value, b: &Value) -> bool {
    match (template_of(a), template_of(b)) {
        (Some(x), Some(y)) => serde_json::to_value(x).ok() == serde_json::to_value(y).ok(),
        _ => false,
    }
}

/// Upstream's revision hash: FNV-1 over the data bytes and the decimal collision count, printed
/// in decimal and mapped through the "safe" alphabet.
pub fn hash(data: &Value, collision_count: i32) -> String {
    let mut bytes = serde_json::to_vec(data).unwrap_or_default();
    bytes.extend_from_slice(collision_count.to_string().as_bytes());
    crate::hash::safe_encode(crate::hash::fnv1_32(&bytes))
}

/// `<set>-<hash>`; for set names so long that this would not fit a 63-character label value,
/// the set name is shortened (upstream #64023), which changes nothing for shorter sets.
pub fn revision_name(set_name: &str, hash: &str) -> String {
    let room = 63usize.saturating_sub(hash.len() + 1);
    let prefix: String = set_name.chars().take(room).collect();
    format!("{}-{hash}", prefix.trim_end_matches('-'))
}

/// A new revision object for the set's current template.
pub fn new_revision(set: &StatefulSet, collision_count: i32, number: i64) -> ControllerRevision {
    let data = revision_data(set);
    let hash = hash(&data, collision_count);
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let mut labels =
        set.spec.as_ref().and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&set_name, &hash)),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: set.metadata.annotations.clone().map(|mut a| {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
                a
            }),
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision: number,
    }
}

/// What the update revision will be.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateRevision {
    /// The newest revision already holds the template.
    Latest(String),
    /// An older revision holds it (a rollback): renumber it to `revision` and use it.
    Reuse { name: String, revision: i64 },
    /// Nothing holds it: create this one.
    Create(Box<ControllerRevision>),
}

/// The current revision's name and the update revision (upstream `getStatefulSetRevisions`).
/// `revisions` are those the set controls.
pub fn choose(set: &StatefulSet, revisions: &[ControllerRevision]) -> (Option<String>, UpdateRevision) {
    let collision_count = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    let mut sorted: Vec<&ControllerRevision> = revisions.iter().collect();
    sorted.sort_by(|a, b| a.revision.cmp(&b.revision).then_with(|| a.metadata.name.cmp(&b.metadata.name)));
    let next_number = sorted.last().map(|r| r.revision + 1).unwrap_or(1);
    let wanted = revision_data(set);
    let equal: Vec<&&ControllerRevision> =
        sorted.iter().filter(|r| r.data.as_ref().is_some_and(|d| same_template(&d.0, &wanted))).collect();
    let update = match (equal.last(), sorted.last()) {
        (Some(e), Some(latest)) if e.metadata.name == latest.metadata.name => {
            UpdateRevision::Latest(e.metadata.name.clone().unwrap_or_default())
        }
        (Some(e), _) => {
            UpdateRevision::Reuse { name: e.metadata.name.clone().unwrap_or_default(), revision: next_number }
        }
        (None, _) => UpdateRevision::Create(Box::new(new_revision(set, collision_count, next_number))),
    };
    let current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .filter(|name| revisions.iter().any(|r| r.metadata.name.as_deref() == Some(name)));
    (current, update)
}

/// Revisions to delete so that at most `revisionHistoryLimit` non-live ones remain (oldest
/// first). `live`: the current and update revisions and every pod's revision.
pub fn to_truncate(set: &StatefulSet, revisions: &[ControllerRevision], live: &[&str]) -> Vec<String> {
    let limit = set.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10);
    if limit < 0 {
        return Vec::new();
    }
    let mut old: Vec<&ControllerRevision> =
        revisions.iter().filter(|r| !live.contains(&r.metadata.name.as_deref().unwrap_or(""))).collect();
    old.sort_by_key(|r| r.revision);
    let excess = old.len().saturating_sub(limit as usize);
    old.into_iter().take(excess).filter_map(|r| r.metadata.name.clone()).collect()
}

/// The annotation `kubectl rollout history` shows as CHANGE-CAUSE.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// Beyond upstream: the set's change-cause when the update revision does not carry it yet, so
/// that annotating the set after a rollout (`kubectl annotate sts/web
/// kubernetes.io/change-cause=…`, as a Deployment's users do) names the revision it describes.
/// Upstream copies annotations only into a revision it creates, so `rollout history` shows
/// `<none>` for that sequence; a Deployment copies them into its newest ReplicaSet on every sync.
pub fn change_cause_to_record<'a>(set: &'a StatefulSet, update: &ControllerRevision) -> Option<&'a str> {
    let wanted = set.metadata.annotations.as_ref()?.get(CHANGE_CAUSE)?;
    let recorded = update.metadata.annotations.as_ref().and_then(|a| a.get(CHANGE_CAUSE));
    (recorded != Some(wanted)).then_some(wanted.as_str())
}
