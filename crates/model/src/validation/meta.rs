//! Rules every kind shares: object metadata on create and update (upstream
//! `ValidateObjectMeta`, `ValidateObjectMetaUpdate`), name formats, label and annotation syntax,
//! label selectors, owner references and finalizers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::Value;

use super::{Errors, Path, json};
use crate::names::{DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG};
use crate::{FieldError, ResourceInfo};

const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const QUALIFIED_NAME_WITH_PREFIX_MSG: &str = "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
/// Finalizers that need no domain prefix (upstream `IsStandardFinalizerName`).
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, whole.
fn is_label_shape(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Upstream `IsDNS1123Label`: each broken rule is one message.
pub(crate) fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push(max_len(63));
    }
    if !is_label_shape(s) {
        out.push(DNS1123_LABEL_MSG.to_string());
    }
    out
}

/// Upstream `IsDNS1123Subdomain`.
pub(crate) fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push(max_len(253));
    }
    if !s.split('.').all(is_label_shape) {
        out.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    out
}

/// Upstream `IsDNS1035Label` (Service names).
pub(crate) fn dns1035_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push(max_len(63));
    }
    if !is_label_shape(s) || !s.as_bytes()[0].is_ascii_lowercase() {
        out.push(DNS1035_LABEL_MSG.to_string());
    }
    out
}

/// `Invalid` errors at `path` for each message of `check(value)`.
pub(crate) fn check(value: &str, path: &Path, errs: &mut Errors, check: fn(&str) -> Vec<String>) {
    for msg in check(value) {
        errs.push(FieldError::invalid(path, value, msg));
    }
}

fn is_qualified_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Upstream `IsQualifiedName`: `[prefix/]name` (label keys, annotation keys, finalizers).
pub(crate) fn qualified_name_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                out.push("prefix part must be non-empty".to_string());
            } else {
                out.extend(dns1123_subdomain_errors(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => return vec![QUALIFIED_NAME_WITH_PREFIX_MSG.to_string()],
    };
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        out.push(format!("name part {}", max_len(63)));
    }
    if !is_qualified_part(name) {
        out.push(QUALIFIED_NAME_MSG.to_string());
    }
    out
}

/// Upstream `IsValidLabelValue`.
pub(crate) fn label_value_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push(max_len(63));
    }
    if !s.is_empty() && !is_qualified_part(s) {
        out.push(LABEL_VALUE_MSG.to_string());
    }
    out
}

/// Upstream `ValidateLabels`: keys and values, reported at the map's path.
pub(crate) fn labels(labels: Option<&BTreeMap<String, String>>, path: &Path, errs: &mut Errors) {
    for (k, v) in labels.into_iter().flatten() {
        check(k, path, errs, qualified_name_errors);
        check(v, path, errs, label_value_errors);
    }
}

/// Upstream `ValidateAnnotations`: keys (case-insensitively) and the total size.
pub(crate) fn annotations(annotations: Option<&BTreeMap<String, String>>, path: &Path, errs: &mut Errors) {
    let mut total = 0;
    for (k, v) in annotations.into_iter().flatten() {
        for msg in qualified_name_errors(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        total += k.len() + v.len();
    }
    if total > MAX_ANNOTATIONS_BYTES {
        errs.push(FieldError::too_long(path, "", MAX_ANNOTATIONS_BYTES));
    }
}

/// How a kind's names are checked (upstream's per-kind `ValidateNameFunc`).
fn name_errors(info: &ResourceInfo, name: &str) -> Vec<String> {
    match (info.group, info.kind) {
        ("", "Namespace") | ("apps", "StatefulSet") => dns1123_label_errors(name),
        ("", "Service") => dns1035_label_errors(name),
        ("apiregistration.k8s.io", "APIService") => api_service_name_errors(name),
        // RBAC names are path segments (`system:aggregate-to-view`), upstream's
        // `ValidateRBACName`.
        ("rbac.authorization.k8s.io", _) => path_segment_errors(name),
        _ => dns1123_subdomain_errors(name),
    }
}

/// Upstream's `IsValidPathSegmentName`: anything that can stand as one URL path segment.
fn path_segment_errors(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"].iter().filter(|c| name.contains(**c)).map(|c| format!("may not contain '{c}'")).collect()
}

/// kube-aggregator's `ValidateAPIServiceName`: `<version>.<group>`, the version a DNS-1035
/// label and the group a DNS-1123 subdomain, or `v1.` (the core group).
fn api_service_name_errors(name: &str) -> Vec<String> {
    if name == "v1." {
        return Vec::new();
    }
    let Some((version, group)) = name.split_once('.') else {
        return vec!["API Service name must satisfy format: <version>.<group>".into()];
    };
    let mut errs = dns1035_label_errors(version);
    errs.extend(dns1123_subdomain_errors(group));
    errs
}

/// Upstream `ValidateObjectMeta` (plus core's finalizer rule) for a new object.
pub(crate) fn object_meta(info: &ResourceInfo, meta: &ObjectMeta, errs: &mut Errors) {
    let path = Path::new("metadata");
    let generate = meta.generate_name.as_deref().unwrap_or("");
    if !generate.is_empty() {
        // A prefix may end in '-'.
        let masked = match generate.strip_suffix('-') {
            Some(stem) => format!("{stem}a"),
            None => generate.to_string(),
        };
        for msg in name_errors(info, &masked) {
            errs.push(FieldError::invalid(path.child("generateName"), generate, msg));
        }
    }
    match meta.name.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(path.child("name"), "name or generateName is required")),
        name => {
            for msg in name_errors(info, name) {
                errs.push(FieldError::invalid(path.child("name"), name, msg));
            }
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if info.namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(path.child("namespace"), ""));
        } else {
            check(namespace, &path.child("namespace"), errs, dns1123_label_errors);
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(path.child("namespace"), "not allowed on this type"));
    }
    super::non_negative(meta.generation.unwrap_or(0), &path.child("generation"), errs);
    common(meta, &path, errs);
}

/// Upstream `ValidateObjectMetaUpdate`: what never changes, and the syntax rules again.
/// (Finalizers added during deletion are the API server's check; server-owned fields are
/// carried over by it before validation.)
pub(crate) fn object_meta_update(old: &ObjectMeta, new: &ObjectMeta, errs: &mut Errors) {
    let path = Path::new("metadata");
    if new.generation.unwrap_or(0) < old.generation.unwrap_or(0) {
        errs.push(FieldError::invalid(
            path.child("generation"),
            new.generation.unwrap_or(0),
            "must not be decremented",
        ));
    }
    for (field, old_value, new_value) in
        [("name", &old.name, &new.name), ("namespace", &old.namespace, &new.namespace), ("uid", &old.uid, &new.uid)]
    {
        if old_value.as_deref().unwrap_or("") != new_value.as_deref().unwrap_or("") {
            errs.push(FieldError::immutable(path.child(field), new_value.as_deref().unwrap_or("")));
        }
    }
    common(new, &path, errs);
}

/// The rules create and update share.
fn common(meta: &ObjectMeta, path: &Path, errs: &mut Errors) {
    labels(meta.labels.as_ref(), &path.child("labels"), errs);
    annotations(meta.annotations.as_ref(), &path.child("annotations"), errs);
    owner_references(meta.owner_references.as_deref().unwrap_or(&[]), &path.child("ownerReferences"), errs);
    finalizers(meta.finalizers.as_deref().unwrap_or(&[]), &path.child("finalizers"), errs);
}

fn owner_references(refs: &[OwnerReference], path: &Path, errs: &mut Errors) {
    let mut controller: Option<String> = None;
    for r in refs {
        let version = r.api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(
                path.child("apiVersion"),
                r.api_version.as_str(),
                "version must not be empty",
            ));
        }
        for (field, value) in [("kind", &r.kind), ("name", &r.name), ("uid", &r.uid)] {
            if value.is_empty() {
                errs.push(FieldError::invalid(path.child(field), "", "must not be empty"));
            }
        }
        if r.controller == Some(true) {
            let this = format!("{}/{}", r.kind, r.name);
            match &controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    json(&refs),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => controller = Some(this),
            }
        }
    }
}

/// Upstream `ValidateFinalizers` and core's `validateKubeFinalizerName`.
pub(crate) fn finalizers(list: &[String], path: &Path, errs: &mut Errors) {
    for (i, f) in list.iter().enumerate() {
        check(f, path, errs, qualified_name_errors);
        if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()) {
            errs.push(FieldError::invalid(
                path.index(i),
                f.as_str(),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    if list.iter().any(|f| f == "orphan") && list.iter().any(|f| f == "foregroundDeletion") {
        errs.push(FieldError::invalid(path, json(&list), "finalizer orphan and foregroundDeletion cannot be both set"));
    }
}

/// Upstream `ValidateLabelSelector` (strict label values).
pub(crate) fn label_selector(selector: &LabelSelector, path: &Path, errs: &mut Errors) {
    labels(selector.match_labels.as_ref(), &path.child("matchLabels"), errs);
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = expr.values.as_deref().unwrap_or(&[]);
        match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs
                .push(FieldError::required(p.child("values"), "must be specified when `operator` is 'In' or 'NotIn'")),
            "In" | "NotIn" => {}
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                p.child("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(p.child("operator"), other, "not a valid selector operator")),
        }
        check(&expr.key, &p.child("key"), errs, qualified_name_errors);
        for (j, v) in values.iter().enumerate() {
            check(v, &p.child("values").index(j), errs, label_value_errors);
        }
    }
}

/// A label selector's JSON form, for "Invalid value" parts.
pub(crate) fn selector_json(selector: &LabelSelector) -> Value {
    json(selector)
}
