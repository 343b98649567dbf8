//! `SelfSubjectAccessReview` and `SelfSubjectRulesReview` (authorization.k8s.io/v1): the caller
//! asks what it may do, and the answer is computed, never stored — what `kubectl auth can-i`
//! (and `--list`) sends.

use axum::body::Body;
use axum::response::IntoResponse;
use http::{HeaderMap, StatusCode};
use model::ApiError;
use model::rbac::{Request, User};
use serde_json::{Value, json};

use super::{HandlerResult, Written, decode_body};
use crate::{ApiState, Caller};

/// The review kinds, by the path they are created at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    Access,
    Rules,
}

impl Review {
    pub fn at(path: &str) -> Option<Review> {
        match path.trim_end_matches('/') {
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => Some(Review::Access),
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews" => Some(Review::Rules),
            _ => None,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Review::Access => "SelfSubjectAccessReview",
            Review::Rules => "SelfSubjectRulesReview",
        }
    }
}

/// Answer a review for `caller` (in-process callers are `system:masters`).
pub async fn serve(
    state: &ApiState,
    review: Review,
    caller: Option<Caller>,
    headers: &HeaderMap,
    body: Body,
) -> HandlerResult {
    let mut object = decode_body(headers, body).await?;
    let kind = review.kind();
    let given = object.get("kind").and_then(Value::as_str).unwrap_or(kind);
    if given != kind {
        return Err(ApiError::bad_request(format!("expected a {kind}, got a {given}")).into());
    }
    let user = caller.map(|c| c.0).unwrap_or_else(|| User {
        name: "system:apiserver".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    });
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let policy = state.rbac_policy();
    let status = match review {
        Review::Access => {
            let request = if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
                let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                Request::Resource {
                    verb: text("verb"),
                    group: text("group"),
                    resource: text("resource"),
                    subresource: text("subresource"),
                    name: text("name"),
                    namespace: text("namespace"),
                }
            } else if let Some(n) = spec.get("nonResourceAttributes").filter(|n| n.is_object()) {
                let text = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                Request::NonResource { verb: text("verb"), path: text("path") }
            } else {
                let cause = model::FieldError::required(
                    "spec.resourceAttributes",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                );
                return Err(ApiError::invalid("authorization.k8s.io", kind, "", vec![cause]).into());
            };
            let allowed =
                user.groups.iter().any(|g| g == "system:masters") || model::rbac::authorize(&policy, &user, &request);
            json!({"allowed": allowed})
        }
        Review::Rules => {
            let namespace = spec.get("namespace").and_then(Value::as_str).unwrap_or_default();
            let rules = model::rbac::rules_for(&policy, &user, namespace);
            let resource_rules: Vec<Value> = rules
                .iter()
                .filter(|r| r.resources.as_ref().is_some_and(|x| !x.is_empty()))
                .map(|r| {
                    json!({"verbs": r.verbs, "apiGroups": r.api_groups.clone().unwrap_or_default(),
                        "resources": r.resources.clone().unwrap_or_default(),
                        "resourceNames": r.resource_names.clone().unwrap_or_default()})
                })
                .collect();
            let non_resource_rules: Vec<Value> = rules
                .iter()
                .filter(|r| r.non_resource_urls.as_ref().is_some_and(|x| !x.is_empty()))
                .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls.clone().unwrap_or_default()}))
                .collect();
            json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
        }
    };
    object["apiVersion"] = json!("authorization.k8s.io/v1");
    object["kind"] = json!(kind);
    object["status"] = status;
    if object.get("metadata").is_none_or(|m| !m.is_object()) {
        object["metadata"] = json!({});
    }
    Ok(Written { status: StatusCode::CREATED, object, warnings: Vec::new() }.into_response())
}
