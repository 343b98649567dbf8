//! `get` and `list`, as JSON or as a Table.

use base64::Engine;
use http::{HeaderMap, StatusCode};
use model::selector::{FieldSelector, LabelSelector};
use model::{ApiError, ResourceInfo};
use serde_json::{Value, json};

use super::{Params, not_found};
use crate::ApiState;
use crate::error::HandlerResult;
use crate::media::{self, Output};
use crate::path::Target;
use crate::table::{self, TableOptions};

/// Label and field selectors of a list, watch or deletecollection.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub labels: Option<LabelSelector>,
    pub fields: Option<FieldSelector>,
}

impl Selection {
    pub fn from_params(info: &'static ResourceInfo, p: &Params) -> Result<Selection, ApiError> {
        let labels = match p.get("labelSelector") {
            None | Some("") => None,
            Some(s) => Some(
                LabelSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
            ),
        };
        let fields = match p.get("fieldSelector") {
            None | Some("") => None,
            Some(s) => Some(FieldSelector::parse_for(info, s).map_err(|e| ApiError::bad_request(e.to_string()))?),
        };
        Ok(Selection { labels, fields })
    }

    pub fn matches(&self, info: &ResourceInfo, obj: &Value) -> bool {
        if let Some(l) = &self.labels
            && !l.matches_object(obj)
        {
            return false;
        }
        if let Some(f) = &self.fields
            && !f.matches(info, obj)
        {
            return false;
        }
        true
    }
}

pub fn table_options(output: Output) -> Option<TableOptions> {
    match output {
        Output::Json | Output::Metadata(_) => None,
        Output::Table(include_object) => Some(TableOptions { include_object, now: jiff::Timestamp::now() }),
    }
}

pub fn get(state: &ApiState, target: &Target, params: &Params, headers: &HeaderMap) -> HandlerResult {
    let output = media::negotiate(headers, params.get("includeObject"))?;
    let key = target.key().ok_or_else(ApiError::path_not_found)?;
    let stored = state.store.get(&key).ok_or_else(|| not_found(target))?;
    let object = crate::convert::from_storage(target.info, &stored.value).into_owned();
    if let Output::Metadata(version) = output {
        return Ok(media::json(StatusCode::OK, &media::partial_metadata(&object, version)));
    }
    Ok(match table_options(output) {
        None => media::json(StatusCode::OK, &object),
        Some(opts) => {
            let rv = stored.rv.to_string();
            media::table(&table::table(
                target.info,
                std::slice::from_ref(&object),
                json!({"resourceVersion": rv}),
                &opts,
            ))
        }
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    key: String,
}

fn decode_continue(token: &str) -> Result<ContinueToken, ApiError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::bad_request("continue key is not valid"))
}

fn encode_continue(token: &ContinueToken) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(token).unwrap_or_default())
}

/// List the target collection: objects (converted for the client), the list revision and the
/// continue token, if more remain.
pub fn list_objects(
    state: &ApiState,
    target: &Target,
    selection: &Selection,
    limit: Option<usize>,
    continue_from: Option<&str>,
) -> Result<(Vec<Value>, u64, Option<String>), ApiError> {
    let info = target.info;
    let storage_info = crate::convert::storage_info(info);
    let prefix = crate::path::collection_prefix(storage_info, target.namespace.as_deref());
    let after = continue_from.map(decode_continue).transpose()?;
    let (items, rv, more) = state
        .store
        .list(&prefix, after.as_ref().map(|t| t.key.as_str()), limit, &mut |obj| {
            selection.matches(info, &crate::convert::from_storage(info, obj))
        })
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let continue_token = match (more, items.last()) {
        (true, Some(last)) => {
            let key = crate::path::object_key(
                storage_info,
                Some(crate::object::namespace(&last.value)),
                crate::object::name(&last.value),
            );
            Some(encode_continue(&ContinueToken { rv: after.map(|a| a.rv).unwrap_or(rv), key }))
        }
        _ => None,
    };
    let objects = items.iter().map(|s| crate::convert::from_storage(info, &s.value).into_owned()).collect();
    Ok((objects, rv, continue_token))
}

pub fn list(state: &ApiState, target: &Target, params: &Params, headers: &HeaderMap) -> HandlerResult {
    let output = media::negotiate(headers, params.get("includeObject"))?;
    let selection = Selection::from_params(target.info, params)?;
    let limit = params.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let (objects, rv, continue_token) =
        list_objects(state, target, &selection, limit, params.get("continue").filter(|c| !c.is_empty()))?;
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    if let Output::Metadata(version) = output {
        let items: Vec<Value> = objects.iter().map(|o| media::partial_metadata(o, version)).collect();
        return Ok(media::json(
            StatusCode::OK,
            &json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": format!("meta.k8s.io/{version}"),
                "metadata": metadata,
                "items": items,
            }),
        ));
    }
    Ok(match table_options(output) {
        None => media::json(
            StatusCode::OK,
            &json!({
                "kind": target.info.list_kind(),
                "apiVersion": target.info.api_version(),
                "metadata": metadata,
                "items": objects,
            }),
        ),
        Some(opts) => media::table(&table::table(target.info, &objects, metadata, &opts)),
    })
}

/// A response for a successful immediate deletion, as kube-apiserver's `Status`.
pub fn success_status(info: &ResourceInfo, obj: &Value) -> Value {
    let mut details = json!({"name": crate::object::name(obj), "kind": info.plural, "uid": crate::object::uid(obj)});
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}
