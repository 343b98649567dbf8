//! `ApiError`: every failure the API can report, as the data of a Kubernetes `metav1.Status`.
//!
//! This module builds the values (code, reason, message, causes); the `apiserver` crate is the one
//! place that turns them into an HTTP response. Messages follow kube-apiserver's wording, since
//! kubectl prints them verbatim (`Error from server (NotFound): pods "x" not found`).

use serde_json::{Value, json};

/// The machine-readable `reason` of a `Status` (upstream `metav1.StatusReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    AlreadyExists,
    Conflict,
    Gone,
    Expired,
    Invalid,
    MethodNotAllowed,
    NotAcceptable,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    InternalError,
    Timeout,
    ServiceUnavailable,
    TooManyRequests,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Expired => "Expired",
            Reason::Invalid => "Invalid",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::InternalError => "InternalError",
            Reason::Timeout => "Timeout",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::TooManyRequests => "TooManyRequests",
        }
    }
}

/// The kind of a field error, as upstream's `field.ErrorType` (and the one other cause type a
/// `Status` carries here, policy/v1's `DisruptionBudget`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorType {
    /// An eviction refused by a PodDisruptionBudget (no field).
    DisruptionBudget,
    /// A required field is missing.
    Required,
    /// The value is malformed or out of range.
    Invalid,
    /// The field may not be set (or changed) here.
    Forbidden,
    /// The value refers to something that does not exist.
    NotFound,
    /// The value is not one of the supported values listed.
    NotSupported(Vec<String>),
    /// The value repeats one that must be unique.
    Duplicate,
    /// The value is longer than allowed.
    TooLong,
    /// The field is not known to the schema (strict field validation).
    Unknown,
}

impl FieldErrorType {
    /// The `reason` of the `StatusCause` (`FieldValueRequired`, …).
    pub fn cause_reason(&self) -> &'static str {
        match self {
            FieldErrorType::Required => "FieldValueRequired",
            FieldErrorType::Invalid => "FieldValueInvalid",
            FieldErrorType::Forbidden => "FieldValueForbidden",
            FieldErrorType::NotFound => "FieldValueNotFound",
            FieldErrorType::NotSupported(_) => "FieldValueNotSupported",
            FieldErrorType::Duplicate => "FieldValueDuplicate",
            FieldErrorType::TooLong => "FieldValueTooLong",
            FieldErrorType::Unknown => "FieldValueInvalid",
            FieldErrorType::DisruptionBudget => "DisruptionBudget",
        }
    }
}

/// One invalid field: upstream's `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub error_type: FieldErrorType,
    /// Dotted path with indices, as upstream prints it: `spec.template.spec.containers[0].image`.
    pub field: String,
    pub bad_value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { error_type: FieldErrorType::Required, field: field.into(), bad_value: None, detail: detail.into() }
    }
    pub fn invalid(field: impl Into<String>, bad_value: impl Into<Value>, detail: impl Into<String>) -> Self {
        FieldError {
            error_type: FieldErrorType::Invalid,
            field: field.into(),
            bad_value: Some(bad_value.into()),
            detail: detail.into(),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            error_type: FieldErrorType::Forbidden,
            field: field.into(),
            bad_value: None,
            detail: detail.into(),
        }
    }
    pub fn not_supported(field: impl Into<String>, bad_value: impl Into<Value>, supported: &[&str]) -> Self {
        FieldError {
            error_type: FieldErrorType::NotSupported(supported.iter().map(|s| s.to_string()).collect()),
            field: field.into(),
            bad_value: Some(bad_value.into()),
            detail: String::new(),
        }
    }
    pub fn not_found(field: impl Into<String>, bad_value: impl Into<Value>) -> Self {
        FieldError {
            error_type: FieldErrorType::NotFound,
            field: field.into(),
            bad_value: Some(bad_value.into()),
            detail: String::new(),
        }
    }
    pub fn duplicate(field: impl Into<String>, bad_value: impl Into<Value>) -> Self {
        FieldError {
            error_type: FieldErrorType::Duplicate,
            field: field.into(),
            bad_value: Some(bad_value.into()),
            detail: String::new(),
        }
    }
    pub fn too_long(field: impl Into<String>, bad_value: impl Into<Value>, max: usize) -> Self {
        FieldError {
            error_type: FieldErrorType::TooLong,
            field: field.into(),
            bad_value: Some(bad_value.into()),
            detail: format!("must have at most {max} bytes"),
        }
    }
    pub fn unknown(field: impl Into<String>) -> Self {
        FieldError { error_type: FieldErrorType::Unknown, field: field.into(), bad_value: None, detail: String::new() }
    }
    /// An immutable field was changed (upstream `ValidateImmutableField`).
    pub fn immutable(field: impl Into<String>, bad_value: impl Into<Value>) -> Self {
        FieldError::invalid(field, bad_value, "field is immutable")
    }

    /// The message without the field path, as in a `StatusCause`.
    pub fn message_body(&self) -> String {
        let value = self.bad_value.as_ref().map(render_value).unwrap_or_default();
        let with_detail = |head: String| if self.detail.is_empty() { head } else { format!("{head}: {}", self.detail) };
        match &self.error_type {
            FieldErrorType::Required => with_detail("Required value".into()),
            FieldErrorType::Invalid => {
                if self.bad_value.is_some() {
                    with_detail(format!("Invalid value: {value}"))
                } else {
                    with_detail("Invalid value".into())
                }
            }
            FieldErrorType::Forbidden => with_detail("Forbidden".into()),
            FieldErrorType::NotFound => format!("Not found: {value}"),
            FieldErrorType::NotSupported(values) => {
                let list: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
                format!("Unsupported value: {value}: supported values: {}", list.join(", "))
            }
            FieldErrorType::Duplicate => format!("Duplicate value: {value}"),
            FieldErrorType::TooLong => with_detail("Too long".into()),
            FieldErrorType::Unknown => format!("unknown field {:?}", self.field),
            FieldErrorType::DisruptionBudget => self.detail.clone(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error_type {
            FieldErrorType::Unknown => write!(f, "{}", self.message_body()),
            _ => write!(f, "{}: {}", self.field, self.message_body()),
        }
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// A failed API call. `code` is the HTTP status; the rest is the `Status` body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: Reason,
    pub message: String,
    /// `details.name`
    pub name: Option<String>,
    /// `details.group`
    pub group: Option<String>,
    /// `details.kind`: the resource (plural) for NotFound/AlreadyExists, the Kind for Invalid.
    pub kind: Option<String>,
    pub causes: Vec<FieldError>,
    /// `details.retryAfterSeconds`
    pub retry_after_seconds: Option<u32>,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// How a resource is named in messages: `pods`, `statefulsets.apps`.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

impl ApiError {
    pub fn new(code: u16, reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        if !group.is_empty() {
            self.group = Some(group.to_string());
        }
        self.kind = Some(kind.to_string());
        if !name.is_empty() {
            self.name = Some(name.to_string());
        }
        self
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(404, Reason::NotFound, format!("{} {name:?} not found", qualified(group, resource)))
            .with_details(group, resource, name)
    }
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(409, Reason::AlreadyExists, format!("{} {name:?} already exists", qualified(group, resource)))
            .with_details(group, resource, name)
    }
    /// Optimistic-concurrency failure, upstream's wording.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            Reason::Conflict,
            format!("Operation cannot be fulfilled on {} {name:?}: {why}", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }
    /// 422 with field causes: `StatefulSet.apps "web" is invalid: spec.selector: Required value`.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: Vec<FieldError>) -> Self {
        let what = qualified(group, kind);
        let list = if errors.len() == 1 {
            errors[0].to_string()
        } else {
            format!("[{}]", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "))
        };
        let mut e = ApiError::new(422, Reason::Invalid, format!("{what} {name:?} is invalid: {list}"))
            .with_details(group, kind, name);
        e.causes = errors;
        e
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, Reason::BadRequest, message)
    }
    pub fn unauthorized() -> Self {
        ApiError::new(401, Reason::Unauthorized, "Unauthorized")
    }
    /// 429 from the eviction subresource: the pod's disruption budget allows no disruption now
    /// (upstream asks the client to retry after 10 s; `cause` says which budget and why).
    pub fn disruption_budget(cause: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            429,
            Reason::TooManyRequests,
            "Cannot evict pod as it would violate the pod's disruption budget.",
        );
        e.retry_after_seconds = Some(10);
        e.causes = vec![FieldError {
            error_type: FieldErrorType::DisruptionBudget,
            field: String::new(),
            bad_value: None,
            detail: cause.into(),
        }];
        e
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, Reason::Forbidden, message)
    }
    /// The requested resourceVersion is older than the retained history.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, Reason::Expired, message)
    }
    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, Reason::Gone, message)
    }
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, Reason::MethodNotAllowed, message)
    }
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        ApiError::new(406, Reason::NotAcceptable, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(413, Reason::RequestEntityTooLarge, message)
    }
    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {content_type:?}"
            ),
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, Reason::InternalError, format!("Internal error occurred: {}", message.into()))
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError::new(504, Reason::Timeout, message)
    }
    /// The generic 404 for paths that name no resource.
    pub fn path_not_found() -> Self {
        ApiError::new(404, Reason::NotFound, "the server could not find the requested resource")
    }

    pub fn is_not_found(&self) -> bool {
        self.reason == Reason::NotFound
    }
    pub fn is_conflict(&self) -> bool {
        self.reason == Reason::Conflict
    }
    pub fn is_already_exists(&self) -> bool {
        self.reason == Reason::AlreadyExists
    }

    /// The `metav1.Status` JSON body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(name) = &self.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = &self.group {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &self.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                // As upstream's `NewInvalid`: the message is the error's body; the field is beside it
                // (kubectl prints `field: message`).
                .map(|c| json!({"reason": c.error_type.cause_reason(), "message": c.message_body(), "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(secs) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_message_matches_upstream() {
        let e = ApiError::not_found("apps", "statefulsets", "web");
        assert_eq!(e.message, r#"statefulsets.apps "web" not found"#);
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["kind"], "statefulsets");
        assert_eq!(s["details"]["group"], "apps");
    }

    #[test]
    fn invalid_lists_field_causes() {
        let e = ApiError::invalid(
            "apps",
            "StatefulSet",
            "web",
            vec![
                FieldError::required("spec.selector", ""),
                FieldError::invalid("spec.replicas", -1, "must be greater than or equal to 0"),
            ],
        );
        assert_eq!(
            e.message,
            r#"StatefulSet.apps "web" is invalid: [spec.selector: Required value, spec.replicas: Invalid value: -1: must be greater than or equal to 0]"#
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueRequired");
        assert_eq!(s["details"]["causes"][1]["field"], "spec.replicas");
    }
}
