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
    /// Only the metadata, as `meta.k8s.io` `PartialObjectMetadata` of this version (`v1` or
    /// `v1beta1`): what metadata informers and garbage collectors ask for.
    Metadata(&'static str),
}

/// The `PartialObjectMetadata` form of `object` (version `version` of `meta.k8s.io`).
pub fn partial_metadata(object: &Value, version: &str) -> Value {
    serde_json::json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({})),
    })
}

/// Pick the output from `Accept` (a Table when an offered media type asks for `as=Table`,
/// metadata only for `as=PartialObjectMetadata` or `…List`, whichever comes first) and the
/// `includeObject` query parameter.
pub fn negotiate(headers: &HeaderMap, include_object: Option<&str>) -> Result<Output, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let asked = accept.split(',').find_map(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        if !params.contains(&"g=meta.k8s.io") {
            return None;
        }
        if params.contains(&"as=Table") {
            return Some(None);
        }
        let partial = params.contains(&"as=PartialObjectMetadata") || params.contains(&"as=PartialObjectMetadataList");
        let version = if params.contains(&"v=v1beta1") { "v1beta1" } else { "v1" };
        partial.then_some(Some(version))
    });
    match asked {
        None => return Ok(Output::Json),
        Some(Some(version)) => return Ok(Output::Metadata(version)),
        Some(None) => {}
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;

    /// Every media type `decode` knows, and one it does not.
    const TYPES: &[&str] = &[
        "",
        "application/json",
        "*/*",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
        "application/yaml",
        "application/apply-patch+yaml",
        "application/x-yaml",
        "text/yaml",
        "application/vnd.kubernetes.protobuf",
        "text/plain",
    ];

    /// JSON without floats (whose text form need not round-trip exactly).
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            proptest::sample::select(
                &["", "null", "~", "yes", "no", "1.0", "0x1F", "-", "? a", "&a", "*a", "!!str"][..]
            )
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 48, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::vec((any::<String>(), inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
            ]
        })
    }

    fn is_refusal(e: &ApiError) -> bool {
        e.code == 400 || e.code == 415
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let json = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let objects = |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let block = |depth: usize| {
            (0..depth).map(|i| format!("{}a:\n", "  ".repeat(i))).collect::<String>() + &"  ".repeat(depth) + "b: 1\n"
        };
        for ct in ["application/json", "application/yaml"] {
            assert!(decode(ct, json(100).as_bytes()).is_ok(), "{ct}: 100 levels are fine");
            for depth in [200, 100_000, 1_000_000] {
                for body in [json(depth), objects(depth)] {
                    let e = decode(ct, body.as_bytes()).expect_err("too deep");
                    assert_eq!(e.code, 400, "{ct} {depth}");
                }
            }
        }
        assert!(decode("application/yaml", block(50).as_bytes()).is_ok());
        assert_eq!(decode("application/yaml", block(1000).as_bytes()).expect_err("too deep").code, 400);
    }

    proptest! {
        #![proptest_config(crate::fuzz_config(256))]

        /// Any bytes under any media type decode or are refused (400, 415), never a panic.
        #[test]
        fn any_body_decodes_or_is_refused(ct in proptest::sample::select(TYPES), bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Err(e) = decode(ct, &bytes) {
                prop_assert!(is_refusal(&e), "{} {:?}: {}", ct, bytes, e.message);
            }
        }

        /// Text shaped like documents, likewise.
        #[test]
        fn any_text_decodes_or_is_refused(ct in proptest::sample::select(TYPES), text in "[\\[\\]{}:,\"'\\-?&*!|> \n\ta-z0-9.]{0,200}") {
            if let Err(e) = decode(ct, text.as_bytes()) {
                prop_assert!(is_refusal(&e), "{} {:?}: {}", ct, text, e.message);
            }
        }

        /// A JSON body decodes to the value it encodes, under each JSON and YAML media type (JSON
        /// is YAML), and so does the value written as YAML.
        #[test]
        fn json_and_yaml_bodies_round_trip(v in value()) {
            let text = serde_json::to_vec(&v).expect("encodes");
            for ct in ["", "application/json", "application/merge-patch+json", "application/yaml"] {
                prop_assert_eq!(decode(ct, &text).map_err(|e| e.message), Ok(v.clone()), "{}", ct);
            }
            if !v.is_null() {
                let yaml = serde_saphyr::to_string(&v).expect("encodes");
                prop_assert_eq!(decode("application/yaml", yaml.as_bytes()).map_err(|e| e.message), Ok(v.clone()), "{}", yaml);
            }
        }
    }

    #[test]
    fn empty_bodies_are_refused() {
        for ct in TYPES {
            assert_eq!(decode(ct, b" \n\t").expect_err("empty").code, 400, "{ct}");
        }
        assert_eq!(decode("application/json", &json!({}).to_string().into_bytes()), Ok(json!({})));
    }
}
