//! Request bodies in (JSON or YAML, size-limited) and responses out (JSON, or a `meta.k8s.io`
//! Table when the client asks for one).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use model::ApiError;
use serde_json::Value;

use crate::table::IncludeObject;

/// kube-apiserver's limit on request bodies (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Read the whole body, refusing more than `MAX_BODY_BYTES` with 413.
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::too_large(format!("Request entity too large: limit is {MAX_BODY_BYTES}")))
        }
        Err(e) => Err(ApiError::bad_request(format!("error reading request body: {e}"))),
    }
}

/// The media type of a request (`application/json` from `application/json; charset=utf-8`).
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Decode an object body: JSON or YAML, by content type (JSON when unspecified).
pub fn decode(content_type: &str, bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the body of the request is empty"));
    }
    match content_type {
        ""
        | "application/json"
        | "*/*"
        | "application/merge-patch+json"
        | "application/json-patch+json"
        | "application/strategic-merge-patch+json" => serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded as JSON: {e}"))),
        "application/yaml" | "application/apply-patch+yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("the body of the request is not valid UTF-8"))?;
            // JSON is YAML, but strict JSON errors read better: try it first.
            serde_json::from_str(text).or_else(|_| {
                serde_saphyr::from_str::<Value>(text).map_err(|e| {
                    ApiError::bad_request(format!("the body of the request could not be decoded as YAML: {e}"))
                })
            })
        }
        "application/vnd.kubernetes.protobuf" => crate::proto_body::decode(bytes),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// How the client wants objects rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Table(IncludeObject),
}

/// Pick the output from `Accept` (Table if any offered media type asks for `as=Table`) and the
/// `includeObject` query parameter.
pub fn negotiate(headers: &HeaderMap, include_object: Option<&str>) -> Result<Output, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let wants_table = accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
    });
    if !wants_table {
        return Ok(Output::Json);
    }
    let include = match include_object {
        None | Some("") | Some("Metadata") => IncludeObject::Metadata,
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "includeObject: unsupported value {other:?}: supported values: \"Metadata\", \"None\", \"Object\""
            )));
        }
    };
    Ok(Output::Table(include))
}

/// A JSON response with the given status.
pub fn json(status: StatusCode, value: &Value) -> Response {
    respond(status, value, "application/json")
}

/// A Table response.
pub fn table(value: &Value) -> Response {
    respond(StatusCode::OK, value, TABLE_CONTENT_TYPE)
}

fn respond(status: StatusCode, value: &Value, content_type: &'static str) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut resp = (status, body).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            resp
        }
        Err(e) => crate::error::status_response(&ApiError::internal(format!("encode response: {e}"))),
    }
}
