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
