//! delete and deletecollection: graceful deletion, finalizers, propagation policies and
//! preconditions, as kube-apiserver's generic registry does them.

use axum::body::Body;
use http::{HeaderMap, StatusCode};
use model::{ApiError, ResourceInfo};
use serde_json::{Value, json};
use store::{Mutation, Outcome};

use super::read::{Selection, list_objects, success_status};
use super::{Params, Written, not_found};
use crate::ApiState;
use crate::convert::{from_storage, to_storage};
use crate::media;
use crate::object::{self, finalizers, is_deleting, meta_mut, set_finalizers};
use crate::path::Target;

pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
pub const ORPHAN_FINALIZER: &str = "orphan";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

fn parse_propagation(s: &str) -> Result<Propagation, ApiError> {
    match s {
        "Orphan" => Ok(Propagation::Orphan),
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        other => Err(ApiError::invalid(
            "",
            "DeleteOptions",
            "",
            vec![model::FieldError::not_supported("propagationPolicy", other, &["Foreground", "Background", "Orphan"])],
        )),
    }
}

impl DeleteOptions {
    /// From the body (a `DeleteOptions`, optional) and the query parameters.
    pub async fn from_request(params: &Params, headers: &HeaderMap, body: Body) -> Result<DeleteOptions, ApiError> {
        let bytes = media::read_body(body).await?;
        let doc = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            media::decode(&media::content_type(headers), &bytes)?
        };
        DeleteOptions::from_document(params, &doc)
    }

    /// From a `DeleteOptions` document (`null` for none) and the query parameters.
    pub fn from_document(params: &Params, doc: &Value) -> Result<DeleteOptions, ApiError> {
        let mut opts = DeleteOptions {
            grace_period_seconds: doc.get("gracePeriodSeconds").and_then(Value::as_i64),
            ..Default::default()
        };
        if let Some(p) = doc.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = Some(parse_propagation(p)?);
        } else if let Some(orphan) = doc.get("orphanDependents").and_then(Value::as_bool) {
            opts.propagation = Some(if orphan { Propagation::Orphan } else { Propagation::Background });
        }
        opts.precondition_uid = doc.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
        opts.precondition_rv =
            doc.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
        if let Some(g) = params.int("gracePeriodSeconds")? {
            opts.grace_period_seconds = Some(g);
        }
        if let Some(p) = params.get("propagationPolicy").filter(|p| !p.is_empty()) {
            opts.propagation = Some(parse_propagation(p)?);
        }
        let dry_run = params.get("dryRun").or_else(|| doc.get("dryRun").and_then(|d| d.get(0)).and_then(Value::as_str));
        opts.dry_run = match dry_run {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!("Unsupported value: {other:?}: supported values: \"All\"")));
            }
        };
        Ok(opts)
    }
}

/// Namespaces are also held by `spec.finalizers` until the namespace controller empties them.
pub fn held_by_spec_finalizers(info: &ResourceInfo, obj: &Value) -> bool {
    info.group.is_empty()
        && info.kind == "Namespace"
        && obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty())
}

/// Kinds whose upstream registry sets `ReturnDeletedObject` (pods, services, namespaces,
/// claims, volumes, service accounts, storage classes): an immediate delete answers with the
/// deleted object; every other kind answers with a `Status` of `Success`.
fn returns_deleted_object(info: &ResourceInfo) -> bool {
    matches!(
        (info.group, info.kind),
        ("", "Pod")
            | ("", "Service")
            | ("", "Namespace")
            | ("", "PersistentVolumeClaim")
            | ("", "PersistentVolume")
            | ("", "ServiceAccount")
            | ("storage.k8s.io", "StorageClass")
    )
}

fn is_pod(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.kind == "Pod"
}

/// Upstream's pod rule: graceful only once scheduled and not yet finished.
fn pod_grace(pod: &Value, requested: Option<i64>) -> i64 {
    let scheduled = pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if !scheduled || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    requested
        .or_else(|| pod.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
        .unwrap_or(30)
        .max(0)
}

pub fn delete(state: &ApiState, target: &Target, opts: &DeleteOptions) -> Result<Written, ApiError> {
    let info = target.info;
    let key = target.key().ok_or_else(ApiError::path_not_found)?;
    let name = target.name.clone().unwrap_or_default();
    let mut dry_result = None;
    let outcome = state.store.mutate::<ApiError>(&key, |stored, _| {
        let stored = stored.ok_or_else(|| not_found(target))?;
        let mut obj = from_storage(info, &stored.value).into_owned();
        if let Some(uid) = &opts.precondition_uid
            && uid != object::uid(&obj)
        {
            return Err(ApiError::conflict(
                info.group,
                info.plural,
                &name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", object::uid(&obj)),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && *rv != stored.rv.to_string()
        {
            return Err(ApiError::conflict(
                info.group,
                info.plural,
                &name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    stored.rv
                ),
            ));
        }
        let now = jiff::Timestamp::now();
        let mut fins = finalizers(&obj);
        if is_deleting(&obj) {
            // Upstream's namespace REST: while content is being removed, a repeated delete is a
            // conflict rather than a no-op.
            if held_by_spec_finalizers(info, &obj) {
                return Err(ApiError::conflict(
                    info.group,
                    info.plural,
                    &name,
                    "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
                ));
            }
            // A second delete may only cut a pod's grace period short (force deletion).
            let force = is_pod(info) && opts.grace_period_seconds == Some(0);
            if force && fins.is_empty() {
                return if opts.dry_run { Ok(Mutation::Keep) } else { Ok(Mutation::Delete) };
            }
            return Ok(Mutation::Keep);
        }
        match opts.propagation {
            Some(Propagation::Orphan) if !fins.iter().any(|f| f == ORPHAN_FINALIZER) => {
                fins.push(ORPHAN_FINALIZER.into())
            }
            Some(Propagation::Foreground) if !fins.iter().any(|f| f == FOREGROUND_FINALIZER) => {
                fins.push(FOREGROUND_FINALIZER.into())
            }
            _ => {}
        }
        let grace = if is_pod(info) { pod_grace(&obj, opts.grace_period_seconds) } else { 0 };
        let held = !fins.is_empty() || held_by_spec_finalizers(info, &obj);
        if grace == 0 && !held {
            if opts.dry_run {
                dry_result = Some(obj);
                return Ok(Mutation::Keep);
            }
            return Ok(Mutation::Delete);
        }
        set_finalizers(&mut obj, &fins);
        let deadline = now.checked_add(jiff::SignedDuration::from_secs(grace)).unwrap_or(now);
        let m = meta_mut(&mut obj);
        m.insert("deletionTimestamp".into(), json!(object::rfc3339(deadline)));
        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if info.group.is_empty()
            && info.kind == "Namespace"
            && let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut)
        {
            status.insert("phase".into(), json!("Terminating"));
        }
        if opts.dry_run {
            dry_result = Some(obj);
            return Ok(Mutation::Keep);
        }
        Ok(Mutation::Put(to_storage(info, obj)))
    })?;
    if let Some(obj) = dry_result {
        return Ok(Written { status: StatusCode::OK, object: obj, warnings: Vec::new() });
    }
    let object = match &outcome {
        Outcome::Deleted(s) => {
            if info.group.is_empty() && info.kind == "Service" {
                state.release_service(&s.value, None);
            }
            if returns_deleted_object(info) {
                from_storage(info, &s.value).into_owned()
            } else {
                success_status(info, &s.value)
            }
        }
        other => {
            let s = other.stored().ok_or_else(|| not_found(target))?;
            from_storage(info, &s.value).into_owned()
        }
    };
    Ok(Written { status: StatusCode::OK, object, warnings: Vec::new() })
}

pub fn delete_collection(
    state: &ApiState,
    target: &Target,
    selection: &Selection,
    opts: &DeleteOptions,
) -> Result<Written, ApiError> {
    let (objects, rv, _) = list_objects(state, target, selection, None, None)?;
    let mut items = Vec::new();
    for obj in objects {
        let item = Target {
            namespace: target
                .namespace
                .clone()
                .or_else(|| Some(object::namespace(&obj).to_string()).filter(|n| !n.is_empty())),
            name: Some(object::name(&obj).to_string()),
            ..target.clone()
        };
        let item_opts = DeleteOptions { precondition_uid: None, precondition_rv: None, ..opts.clone() };
        match delete(state, &item, &item_opts) {
            Ok(_) => items.push(obj),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Written {
        status: StatusCode::OK,
        object: json!({
            "kind": target.info.list_kind(),
            "apiVersion": target.info.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        }),
        warnings: Vec::new(),
    })
}

/// `POST pods/{name}/eviction` (policy/v1 `Eviction`), as upstream's eviction REST: a pod
/// that is running and selected by a PodDisruptionBudget is deleted only if the budget allows a
/// disruption now, which the eviction spends (`disruptionsAllowed` down by one, the pod
/// recorded in `disruptedPods` until the disruption controller's next count); otherwise 429.
/// Pods that are not running, or already being deleted, are deleted without asking budgets.
pub fn evict(state: &ApiState, target: &Target, opts: &DeleteOptions) -> Result<Written, ApiError> {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let key = target.key().ok_or_else(ApiError::path_not_found)?;
    let pod = state.store.get(&key).ok_or_else(|| super::not_found(target))?;
    let phase = pod.value.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
    let ignores_budgets = object::is_deleting(&pod.value) || matches!(phase, "Pending" | "Succeeded" | "Failed");
    let ns = target.namespace.clone().unwrap_or_default();
    let pod_name = target.name.clone().unwrap_or_default();
    if !ignores_budgets && !opts.dry_run {
        let info = model::resources::by_kind("policy/v1", "PodDisruptionBudget")
            .ok_or_else(|| ApiError::internal("poddisruptionbudgets not served"))?;
        let prefix = crate::path::collection_prefix(info, Some(&ns));
        let (budgets, _, _) =
            state.store.list(&prefix, None, None, &mut |_| true).map_err(|e| ApiError::internal(e.to_string()))?;
        let labels = pod.value.pointer("/metadata/labels").cloned().unwrap_or_default();
        let covering: Vec<&store::Stored> = budgets
            .iter()
            .filter(|b| {
                let selector = b.value.pointer("/spec/selector").cloned().unwrap_or_default();
                serde_json::from_value(selector)
                    .ok()
                    .and_then(|s| model::selector::LabelSelector::from_k8s(&s).ok())
                    .is_some_and(|s| s.matches_object(&serde_json::json!({"metadata": {"labels": labels}})))
            })
            .collect();
        match covering.as_slice() {
            [] => {}
            [budget] => {
                let budget_key = crate::path::object_key(info, Some(&ns), object::name(&budget.value));
                let now = object::rfc3339(jiff::Timestamp::now());
                state.store.mutate::<ApiError>(&budget_key, |stored, _| {
                    let stored = stored.ok_or_else(|| ApiError::disruption_budget("the disruption budget is gone"))?;
                    let typed: PodDisruptionBudget = serde_json::from_value((*stored.value).clone())
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    model::admission::eviction(&typed).map_err(ApiError::disruption_budget)?;
                    let mut spent = (*stored.value).clone();
                    let status = crate::object::object_at(&mut spent, "status");
                    let allowed = status.get("disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0);
                    status.insert("disruptionsAllowed".into(), serde_json::json!(allowed - 1));
                    let disrupted = status.entry("disruptedPods").or_insert_with(|| serde_json::json!({}));
                    if let Some(map) = disrupted.as_object_mut() {
                        map.insert(pod_name.clone(), serde_json::json!(now));
                    }
                    Ok(store::Mutation::Put(spent))
                })?;
            }
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        }
    }
    let pod_target = Target { sub: None, ..target.clone() };
    delete(state, &pod_target, opts)?;
    Ok(Written {
        status: StatusCode::CREATED,
        object: serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        warnings: Vec::new(),
    })
}
