//! create, update (PUT), patch (four content types) and pods/binding.

use model::{ApiError, FieldError, Reason, ResourceInfo, patch};
use serde_json::{Value, json};
use store::{Mutation, Outcome};

use super::{FieldValidation, WriteOptions, Written, not_found};
use crate::ApiState;
use crate::convert::{from_storage, to_storage};
use crate::object::{self, finalizers, is_deleting, meta_mut};
use crate::path::{Sub, Target};
use crate::strategy::{self, Part, Taken};
use http::StatusCode;

fn now() -> String {
    object::rfc3339(jiff::Timestamp::now())
}

/// Fill in or check `apiVersion` and `kind` against the URL.
fn check_type(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    };
    let want_version = info.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(want_version));
        }
        Some(v) if v == want_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(info.kind));
        }
        Some(k) if k == info.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )));
        }
    }
    Ok(())
}

/// Put the URL's namespace on the object, or refuse a conflicting one.
fn check_namespace(target: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let body_ns = object::namespace(obj).to_string();
    if !target.info.namespaced {
        meta_mut(obj).remove("namespace");
        return Ok(());
    }
    let Some(url_ns) = target.namespace.as_deref() else {
        return Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource"));
    };
    if body_ns.is_empty() {
        meta_mut(obj).insert("namespace".into(), json!(url_ns));
    } else if body_ns != url_ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// Strict, Warn or Ignore the unknown fields a body had.
fn judge_unknown(unknown: Vec<String>, opts: WriteOptions) -> Result<Vec<String>, ApiError> {
    if opts.field_validation == FieldValidation::Ignore || unknown.is_empty() {
        return Ok(Vec::new());
    }
    let messages: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
    match opts.field_validation {
        FieldValidation::Strict => {
            Err(ApiError::bad_request(format!("strict decoding error: {}", messages.join(", "))))
        }
        _ => Ok(messages),
    }
}

fn invalid(info: &ResourceInfo, obj: &Value, errors: Vec<FieldError>) -> ApiError {
    ApiError::invalid(info.group, info.kind, object::name(obj), errors)
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generated_name(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let suffix: String = (0..5).map(|_| NAME_CHARS[rng.random_range(0..NAME_CHARS.len())] as char).collect();
    format!("{prefix}{suffix}")
}

/// Refuse new objects in a missing or terminating namespace.
fn check_namespace_open(state: &ApiState, info: &ResourceInfo, ns: &str, name: &str) -> Result<(), ApiError> {
    if !info.namespaced {
        return Ok(());
    }
    let ns_info =
        model::resources::by_kind("v1", "Namespace").ok_or_else(|| ApiError::internal("namespaces not served"))?;
    match state.store.get(&crate::path::object_key(ns_info, None, ns)) {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(n) if is_deleting(&n.value) => Err(ApiError::forbidden(format!(
            "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            info.plural,
        ))),
        Some(_) => Ok(()),
    }
}

pub fn create(state: &ApiState, target: &Target, mut obj: Value, opts: WriteOptions) -> Result<Written, ApiError> {
    let info = target.info;
    if target.name.is_some() {
        return Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource"));
    }
    check_type(info, &mut obj)?;
    check_namespace(target, &mut obj)?;
    let warnings = judge_unknown(model::defaults::apply_defaults(info, &mut obj)?.unknown_fields, opts)?;
    if !object::resource_version(&obj).is_empty() {
        return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
    }
    let generate = object::meta_str(&obj, "generateName").to_string();
    let explicit_name = !object::name(&obj).is_empty();
    let ns = object::namespace(&obj).to_string();
    check_namespace_open(state, info, &ns, object::name(&obj))?;

    for attempt in 0..8 {
        let mut candidate = obj.clone();
        if !explicit_name && !generate.is_empty() {
            meta_mut(&mut candidate).insert("name".into(), json!(generated_name(&generate)));
        }
        strategy::prepare_create(info, &mut candidate, &now());
        if state.config.storage_admission {
            admit_storage(state, info, &mut candidate);
        }
        admit_priority(state, info, &mut candidate)?;
        admit_service_account(state, info, &mut candidate)?;
        admit_limit_ranges(state, info, &mut candidate)?;
        let errors = model::validation::validate_create(info, &candidate);
        if !errors.is_empty() {
            return Err(invalid(info, &candidate, errors));
        }
        admit_quota(state, info, &candidate)?;
        let name = object::name(&candidate).to_string();
        let key = crate::path::object_key(crate::convert::storage_info(info), Some(&ns), &name);
        if explicit_name && state.store.get(&key).is_some() {
            // Report the clash before address allocation can report something else.
            return Err(ApiError::already_exists(info.group, info.plural, &name));
        }
        let mut taken = Taken::default();
        if is_service(info) {
            let mut alloc = state.alloc.lock().map_err(|_| ApiError::internal("allocator poisoned"))?;
            taken = strategy::allocate_service(&mut alloc, None, &mut candidate)?;
        }
        if opts.dry_run {
            state.give_back(taken);
            return Ok(Written { status: StatusCode::CREATED, object: candidate, warnings });
        }
        let stored_form = to_storage(info, candidate);
        let result = state.store.mutate::<ApiError>(&key, |current, _| {
            if current.is_some() {
                return Err(ApiError::already_exists(info.group, info.plural, &name));
            }
            Ok(Mutation::Put(stored_form))
        });
        match result {
            Ok(outcome) => {
                let stored = outcome.stored().ok_or_else(|| ApiError::internal("create stored nothing"))?;
                let object = from_storage(info, &stored.value).into_owned();
                return Ok(Written { status: StatusCode::CREATED, object, warnings });
            }
            Err(e) => {
                state.give_back(taken);
                let retry = e.is_already_exists() && !explicit_name && !generate.is_empty() && attempt < 7;
                if !retry {
                    return Err(e);
                }
            }
        }
    }
    Err(ApiError::internal("could not generate a unique name"))
}

fn is_service(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.kind == "Service"
}

/// Everything about an object except its resourceVersion: two writes that differ only there
/// are the same write.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        meta_mut(&mut v).remove("resourceVersion");
        v
    };
    strip(a) == strip(b)
}

/// The shared update path: read the current object, `compute` the desired one, check
/// preconditions, apply the kind's update rules, validate, and store — atomically.
pub fn write_update(
    state: &ApiState,
    target: &Target,
    part: Part,
    opts: WriteOptions,
    warnings: Vec<String>,
    compute: impl FnOnce(&Value) -> Result<Value, ApiError>,
) -> Result<Written, ApiError> {
    let info = target.info;
    let key = target.key().ok_or_else(ApiError::path_not_found)?;
    let url_name = target.name.clone().unwrap_or_default();
    let mut dry_result: Option<Value> = None;
    let mut taken = Taken::default();
    let mut previous: Option<Value> = None;
    let result = state.store.mutate::<ApiError>(&key, |stored, _| {
        let stored = stored.ok_or_else(|| not_found(target))?;
        let current = from_storage(info, &stored.value).into_owned();
        let mut new = compute(&current)?;
        check_type(info, &mut new)?;
        check_namespace(target, &mut new)?;
        let name = object::name(&new);
        if name.is_empty() {
            meta_mut(&mut new).insert("name".into(), json!(url_name));
        } else if name != url_name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({url_name})"
            )));
        }
        let rv = object::resource_version(&new);
        if !rv.is_empty() && rv != stored.rv.to_string() {
            return Err(ApiError::conflict(
                info.group,
                info.plural,
                &url_name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let uid = object::uid(&new);
        if !uid.is_empty() && uid != object::uid(&current) {
            return Err(ApiError::conflict(
                info.group,
                info.plural,
                &url_name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    object::uid(&current)
                ),
            ));
        }
        strategy::prepare_update(info, &current, &mut new, part);
        let mut errors = model::validation::validate_update(info, &current, &new);
        if is_deleting(&current) {
            let old_f = finalizers(&current);
            let added: Vec<String> = finalizers(&new).into_iter().filter(|f| !old_f.contains(f)).collect();
            if !added.is_empty() {
                errors.push(FieldError::forbidden(
                    "metadata.finalizers",
                    format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(invalid(info, &new, errors));
        }
        if is_service(info) && part == Part::Main {
            let mut alloc = state.alloc.lock().map_err(|_| ApiError::internal("allocator poisoned"))?;
            taken = strategy::allocate_service(&mut alloc, Some(&current), &mut new)?;
        }
        if same_content(&new, &current) {
            return Ok(Mutation::Keep);
        }
        if opts.dry_run {
            dry_result = Some(new);
            return Ok(Mutation::Keep);
        }
        let finished = is_deleting(&new)
            && finalizers(&new).is_empty()
            && !crate::handlers::delete::held_by_spec_finalizers(info, &new);
        previous = Some(current);
        if finished { Ok(Mutation::Delete) } else { Ok(Mutation::Put(to_storage(info, new))) }
    });
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            state.give_back(taken);
            return Err(e);
        }
    };
    if opts.dry_run {
        state.give_back(taken);
    }
    if let Some(dry) = dry_result {
        return Ok(Written { status: StatusCode::OK, object: dry, warnings });
    }
    if is_service(info)
        && let Some(old) = &previous
    {
        let new = match &outcome {
            Outcome::Updated(s) => Some(s.value.as_ref()),
            _ => None,
        };
        state.release_service(old, new);
    }
    let stored = outcome.stored().ok_or_else(|| ApiError::internal("update stored nothing"))?;
    Ok(Written { status: StatusCode::OK, object: from_storage(info, &stored.value).into_owned(), warnings })
}

fn part_of(target: &Target) -> Part {
    match target.sub {
        Some(Sub::Status) => Part::Status,
        Some(Sub::Finalize) => Part::Finalize,
        _ => Part::Main,
    }
}

pub fn update(state: &ApiState, target: &Target, mut obj: Value, opts: WriteOptions) -> Result<Written, ApiError> {
    let info = target.info;
    check_type(info, &mut obj)?;
    if info.kind == "PriorityClass" {
        admit_priority(state, info, &mut obj)?;
    }
    let warnings = judge_unknown(model::defaults::apply_defaults(info, &mut obj)?.unknown_fields, opts)?;
    write_update(state, target, part_of(target), opts, warnings, move |_| Ok(obj))
}

/// Map a patch failure to the status kube-apiserver uses.
fn patch_error(e: patch::PatchError) -> ApiError {
    match e {
        patch::PatchError::TooLarge(message) => ApiError::too_large(message),
        e => ApiError::new(422, Reason::Invalid, e.to_string()),
    }
}

/// Apply a patch document of the given content type to `current`.
pub fn apply_patch(info: &ResourceInfo, content_type: &str, current: &Value, body: &Value) -> Result<Value, ApiError> {
    match content_type {
        "application/json-patch+json" => patch::json_patch(current, body).map_err(patch_error),
        "application/merge-patch+json" => patch::merge_patch(current, body).map_err(patch_error),
        "application/strategic-merge-patch+json" | "application/apply-patch+yaml" => {
            patch::strategic_merge_patch(info, current, body).map_err(patch_error)
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

pub fn patch(
    state: &ApiState,
    target: &Target,
    content_type: &str,
    body: Value,
    opts: WriteOptions,
    _force: bool,
) -> Result<Written, ApiError> {
    let info = target.info;
    if !matches!(
        content_type,
        "application/json-patch+json"
            | "application/merge-patch+json"
            | "application/strategic-merge-patch+json"
            | "application/apply-patch+yaml"
    ) {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    // Server-side apply of an object that does not exist yet creates it.
    if content_type == "application/apply-patch+yaml" && target.sub.is_none() {
        let key = target.key().ok_or_else(ApiError::path_not_found)?;
        if state.store.get(&key).is_none() {
            let mut obj = body;
            let url_name = target.name.clone().unwrap_or_default();
            let name = object::name(&obj).to_string();
            if !name.is_empty() && name != url_name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({name}) does not match the name on the URL ({url_name})"
                )));
            }
            meta_mut(&mut obj).insert("name".into(), json!(url_name));
            let collection = Target { name: None, ..target.clone() };
            return create(state, &collection, obj, opts);
        }
    }
    let content_type = content_type.to_string();
    let mut warnings = Vec::new();
    let part = part_of(target);
    let result = write_update(state, target, part, opts, Vec::new(), |current| {
        let mut patched = apply_patch(info, &content_type, current, &body)?;
        let unknown = if part == Part::Main {
            model::defaults::apply_defaults(info, &mut patched)?.unknown_fields
        } else {
            model::schema::unknown_fields(info, &patched)
        };
        warnings = judge_unknown(unknown, opts)?;
        // A patch keeps the stored revision unless it names one (then it is a precondition).
        if object::resource_version(&patched).is_empty() {
            let rv = object::resource_version(current).to_string();
            meta_mut(&mut patched).insert("resourceVersion".into(), json!(rv));
        }
        Ok(patched)
    })?;
    Ok(Written { warnings, ..result })
}

/// `pods/{name}/binding`: assign the pod to a node.
pub fn bind(state: &ApiState, target: &Target, binding: Value) -> Result<Written, ApiError> {
    let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or("").to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            target.name.as_deref().unwrap_or(""),
            vec![FieldError::required("target.name", "")],
        ));
    }
    let key = target.key().ok_or_else(ApiError::path_not_found)?;
    let pod_name = target.name.clone().unwrap_or_default();
    state.store.mutate::<ApiError>(&key, |stored, _| {
        let stored = stored.ok_or_else(|| not_found(target))?;
        let mut pod = (*stored.value).clone();
        if is_deleting(&pod) {
            return Err(ApiError::conflict(
                "",
                "pods",
                &pod_name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        let current = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
        if !current.is_empty() {
            return Err(ApiError::conflict(
                "",
                "pods",
                &pod_name,
                &format!("pod {pod_name} is already assigned to node {current:?}"),
            ));
        }
        if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("nodeName".into(), json!(node));
        }
        Ok(Mutation::Put(pod))
    })?;
    Ok(Written {
        status: StatusCode::CREATED,
        object: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        warnings: Vec::new(),
    })
}

/// Upstream's storage admission on create: the default StorageClass for a claim that names
/// none (`DefaultStorageClass`), and the protection finalizers (`StorageObjectInUseProtection`).
fn admit_storage(state: &ApiState, info: &ResourceInfo, obj: &mut Value) {
    let finalizer = match (info.group, info.kind) {
        ("", "PersistentVolumeClaim") => "kubernetes.io/pvc-protection",
        ("", "PersistentVolume") => "kubernetes.io/pv-protection",
        _ => return,
    };
    if info.kind == "PersistentVolumeClaim"
        && obj.pointer("/spec/storageClassName").is_none()
        && let Some(class) = default_storage_class(state)
        && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert("storageClassName".into(), json!(class));
    }
    let m = meta_mut(obj);
    let list = m.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(items) = list.as_array_mut()
        && !items.iter().any(|f| f == finalizer)
    {
        items.push(json!(finalizer));
    }
}

/// Every stored object of a kind, decoded (objects that do not decode are skipped).
fn stored<T: serde::de::DeserializeOwned>(state: &ApiState, api_version: &str, kind: &str) -> Vec<T> {
    let Some(info) = model::resources::by_kind(api_version, kind) else { return Vec::new() };
    let prefix = crate::path::collection_prefix(crate::convert::storage_info(info), None);
    let Ok((items, _, _)) = state.store.list(&prefix, None, None, &mut |_| true) else { return Vec::new() };
    items.iter().filter_map(|i| T::deserialize(&*i.value).ok()).collect()
}

/// Upstream's `Priority` admission (`model::admission`): a new pod gets its class's priority
/// and preemption policy (or the global default's), and a second global default class is
/// refused; both 403 Forbidden, as upstream.
fn admit_priority(state: &ApiState, info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    use k8s_openapi::api::scheduling::v1::PriorityClass;
    let forbidden = |message: String| {
        ApiError::forbidden(format!("{} {:?} is forbidden: {message}", info.group_resource(), object::name(obj)))
    };
    match (info.group, info.kind) {
        ("", "Pod") => {
            let pod = serde_json::from_value(obj.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let classes: Vec<PriorityClass> = stored(state, "scheduling.k8s.io/v1", "PriorityClass");
            let resolved = model::admission::pod_priority(&pod, &classes).map_err(forbidden)?;
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                if !resolved.class_name.is_empty() {
                    spec.insert("priorityClassName".into(), json!(resolved.class_name));
                }
                spec.insert("priority".into(), json!(resolved.priority));
                if let Some(policy) = resolved.preemption_policy {
                    spec.insert("preemptionPolicy".into(), json!(policy));
                }
            }
            Ok(())
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            let class = serde_json::from_value(obj.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let classes: Vec<PriorityClass> = stored(state, "scheduling.k8s.io/v1", "PriorityClass");
            model::admission::priority_class(&class, &classes).map_err(forbidden)
        }
        _ => Ok(()),
    }
}

/// Upstream's `ServiceAccount` admission (`model::admission::service_account`): a new pod's
/// account (403 Forbidden when a named one is missing) and its token volume and mounts.
fn admit_service_account(state: &ApiState, info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    if (info.group, info.kind) != ("", "Pod") {
        return Ok(());
    }
    let pod: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(obj.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let named = pod.spec.as_ref().and_then(|s| s.service_account_name.as_deref().or(s.service_account.as_deref()));
    let account_info = model::resources::by_kind("v1", "ServiceAccount")
        .ok_or_else(|| ApiError::internal("ServiceAccount is not registered"))?;
    let key = crate::path::object_key(
        crate::convert::storage_info(account_info),
        Some(namespace),
        named.filter(|n| !n.is_empty()).unwrap_or("default"),
    );
    let account: Option<ServiceAccount> =
        state.store.get(&key).and_then(|item| serde::Deserialize::deserialize(&*item.value).ok());
    let suffix = generated_name("");
    let decided = model::admission::service_account(&pod, account.as_ref(), &suffix).map_err(|message| {
        ApiError::forbidden(format!("{} {:?} is forbidden: {message}", info.group_resource(), object::name(obj)))
    })?;
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    spec.insert("serviceAccountName".into(), json!(decided.account));
    spec.insert("serviceAccount".into(), json!(decided.account));
    fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
        serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
    }
    if let Some(volume) = &decided.volume {
        let volume = to_json(volume)?;
        match spec.get_mut("volumes").and_then(Value::as_array_mut) {
            Some(list) => list.push(volume),
            None => {
                spec.insert("volumes".into(), json!([volume]));
            }
        }
    }
    if let Some((mount, into)) = &decided.mount {
        let mount = to_json(mount)?;
        for (list, index) in into {
            let Some(container) = spec.get_mut(*list).and_then(|l| l.get_mut(*index)).and_then(Value::as_object_mut)
            else {
                continue;
            };
            match container.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                Some(mounts) => mounts.push(mount.clone()),
                None => {
                    container.insert("volumeMounts".into(), json!([mount]));
                }
            }
        }
    }
    Ok(())
}

/// The stored objects of a kind in one namespace.
fn in_namespace(state: &ApiState, info: &'static ResourceInfo, namespace: &str) -> Vec<std::sync::Arc<Value>> {
    let prefix = crate::path::collection_prefix(crate::convert::storage_info(info), Some(namespace));
    match state.store.list(&prefix, None, None, &mut |_| true) {
        Ok((items, _, _)) => items.into_iter().map(|i| i.value).collect(),
        Err(_) => Vec::new(),
    }
}

fn typed_in<T: serde::de::DeserializeOwned>(
    state: &ApiState,
    api_version: &str,
    kind: &str,
    namespace: &str,
) -> Vec<T> {
    let Some(info) = model::resources::by_kind(api_version, kind) else { return Vec::new() };
    in_namespace(state, info, namespace).iter().filter_map(|v| T::deserialize(&**v).ok()).collect()
}

/// Upstream's `LimitRanger` (`model::quota::limit_pod`, `limit_claim`): a new pod gets its
/// namespace's container defaults, and a pod or claim outside the ranges is 403 Forbidden.
fn admit_limit_ranges(state: &ApiState, info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    if !info.group.is_empty() || !matches!(info.kind, "Pod" | "PersistentVolumeClaim") {
        return Ok(());
    }
    let namespace = object::namespace(obj).to_string();
    let ranges: Vec<k8s_openapi::api::core::v1::LimitRange> = typed_in(state, "v1", "LimitRange", &namespace);
    if ranges.is_empty() {
        return Ok(());
    }
    let forbidden = |message: String| {
        ApiError::forbidden(format!("{} {:?} is forbidden: {message}", info.group_resource(), object::name(obj)))
    };
    if info.kind == "PersistentVolumeClaim" {
        let claim = serde_json::from_value(obj.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
        return model::quota::limit_claim(&claim, &ranges).map_err(forbidden);
    }
    let pod = serde_json::from_value(obj.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let defaults = model::quota::limit_pod(&pod, &ranges).map_err(forbidden)?;
    for (list, index, requests, limits) in defaults {
        let Some(container) = obj.pointer_mut(&format!("/spec/{list}/{index}")).and_then(Value::as_object_mut) else {
            continue;
        };
        let resources = container.entry("resources").or_insert_with(|| json!({}));
        for (side, values) in [("requests", requests), ("limits", limits)] {
            if values.is_empty() {
                continue;
            }
            let Some(resources) = resources.as_object_mut() else { continue };
            let entry = resources.entry(side).or_insert_with(|| json!({}));
            if let Some(map) = entry.as_object_mut() {
                for (k, v) in values {
                    map.insert(k, json!(model::quota::show(v)));
                }
            }
        }
    }
    Ok(())
}

/// Upstream's `ResourceQuota` admission (`model::quota::admit`): a new object must fit every
/// quota of its namespace, counting what the namespace already holds of its kind; 403 Forbidden
/// with upstream's message otherwise. (Two creates racing can both fit; upstream serialises
/// through the quota's status.)
fn admit_quota(state: &ApiState, info: &'static ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    if !info.namespaced {
        return Ok(());
    }
    let namespace = object::namespace(obj).to_string();
    let quotas: Vec<k8s_openapi::api::core::v1::ResourceQuota> = typed_in(state, "v1", "ResourceQuota", &namespace);
    if quotas.is_empty() {
        return Ok(());
    }
    let adding = model::quota::usage(info.group, info.plural, obj);
    let existing: Vec<model::quota::Usage> =
        in_namespace(state, info, &namespace).iter().map(|o| model::quota::usage(info.group, info.plural, o)).collect();
    let used = model::quota::total(existing.iter());
    let pod: Option<k8s_openapi::api::core::v1::Pod> =
        (info.group.is_empty() && info.kind == "Pod").then(|| serde_json::from_value(obj.clone()).ok()).flatten();
    for quota in &quotas {
        model::quota::admit(quota, pod.as_ref(), &used, &adding).map_err(|message| {
            ApiError::forbidden(format!("{} {:?} is forbidden: {message}", info.group_resource(), object::name(obj)))
        })?;
    }
    Ok(())
}

/// The StorageClass annotated as default (the newest, if several are).
fn default_storage_class(state: &ApiState) -> Option<String> {
    let info = model::resources::by_kind("storage.k8s.io/v1", "StorageClass")?;
    let prefix = crate::path::collection_prefix(crate::convert::storage_info(info), None);
    let (classes, _, _) = state.store.list(&prefix, None, None, &mut |_| true).ok()?;
    classes
        .iter()
        .filter(|c| {
            c.value
                .pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                .and_then(Value::as_str)
                == Some("true")
        })
        .max_by_key(|c| {
            c.value.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("").to_string()
        })
        .and_then(|c| c.value.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string))
}

/// `POST serviceaccounts/{name}/token` (authentication.k8s.io/v1 `TokenRequest`), as upstream's
/// TokenRequest REST: a signed token for the service account, for the requested audiences (the
/// API's own by default), living `expirationSeconds` (default one hour, at least ten minutes),
/// bound to a pod if asked (it dies with the pod).
pub fn token_request(state: &ApiState, target: &Target, request: Value) -> Result<Written, ApiError> {
    use crate::tokens::{Bound, Claims, ISSUER, KubernetesClaims};
    let signer = state.tokens.as_ref().ok_or_else(|| ApiError::internal("this server issues no tokens"))?;
    let key = target.key().ok_or_else(ApiError::path_not_found)?;
    let account = state.store.get(&key).ok_or_else(|| not_found(target))?;
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = spec.get("expirationSeconds").and_then(Value::as_i64).unwrap_or(3600);
    if expiration < 600 {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            &name,
            vec![FieldError::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![ISSUER.to_string()],
    };
    let pod = match spec.get("boundObjectRef") {
        Some(bound) if !bound.is_null() => {
            let kind = bound.get("kind").and_then(Value::as_str).unwrap_or_default();
            let bound_name = bound.get("name").and_then(Value::as_str).unwrap_or_default();
            if kind != "Pod" {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of kind {kind:?}: only Pod is supported"
                )));
            }
            let info = model::resources::by_kind("v1", "Pod").ok_or_else(|| ApiError::internal("pods not served"))?;
            let stored = state
                .store
                .get(&crate::path::object_key(info, Some(&ns), bound_name))
                .ok_or_else(|| ApiError::not_found("", "pods", bound_name))?;
            Some(Bound { name: bound_name.to_string(), uid: object::uid(&stored.value).to_string() })
        }
        _ => None,
    };
    let now = jiff::Timestamp::now();
    let claims = Claims {
        aud: audiences.clone(),
        exp: now.as_second() + expiration,
        iat: now.as_second(),
        nbf: now.as_second(),
        iss: ISSUER.to_string(),
        sub: format!("system:serviceaccount:{ns}:{name}"),
        kubernetes: KubernetesClaims {
            namespace: ns.clone(),
            serviceaccount: Bound { name: name.clone(), uid: object::uid(&account.value).to_string() },
            pod,
        },
    };
    let token = signer.issue(&claims).ok_or_else(|| ApiError::internal("signing the token failed"))?;
    let expires = jiff::Timestamp::from_second(claims.exp).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut spec_out = spec;
    spec_out["audiences"] = json!(audiences);
    spec_out["expirationSeconds"] = json!(expiration);
    Ok(Written {
        status: StatusCode::CREATED,
        object: json!({
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": object::rfc3339(now)},
            "spec": spec_out,
            "status": {"token": token, "expirationTimestamp": object::rfc3339(expires)},
        }),
        warnings: Vec::new(),
    })
}
