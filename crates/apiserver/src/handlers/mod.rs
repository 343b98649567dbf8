//! Resource requests: one entry point that parses the path and dispatches on the verb.
//!
//! Reads (`get`, `list`, `watch`) serve from the store's in-memory mirror; writes run the
//! pipeline decode → default → prepare → validate → store inside one atomic store mutation, on
//! a blocking thread (a write waits for its fsync).

pub(crate) mod delete;
pub(crate) mod read;
pub(crate) mod review;
pub(crate) mod scale;
pub(crate) mod write;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use model::ApiError;
use serde_json::Value;

use crate::ApiState;
use crate::error::{Failure, HandlerResult};
use crate::media;
use crate::path::{self, Sub, Target};

/// Query parameters, kept as pairs (some, like `command`, repeat).
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Params, ApiError> {
        let pairs = match query {
            None | Some("") => Vec::new(),
            Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?,
        };
        Ok(Params { pairs })
    }

    /// Every value of a repeated parameter, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!("invalid value for {key}: {other:?}"))),
        }
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v:?}: must be an integer"))),
        }
    }
}

/// Options shared by create, update, patch and delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_validation: FieldValidation,
}

impl WriteOptions {
    pub fn from_params(p: &Params) -> Result<WriteOptions, ApiError> {
        let dry_run = match p.get("dryRun") {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!("Unsupported value: {other:?}: supported values: \"All\"")));
            }
        };
        let field_validation = match p.get("fieldValidation") {
            None | Some("") | Some("Warn") => FieldValidation::Warn,
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "fieldValidation: unsupported value {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
                )));
            }
        };
        Ok(WriteOptions { dry_run, field_validation })
    }
}

/// A write's answer: status, object and any `Warning` headers.
pub struct Written {
    pub status: StatusCode,
    pub object: Value,
    pub warnings: Vec<String>,
}

impl IntoResponse for Written {
    fn into_response(self) -> Response {
        let mut resp = media::json(self.status, &self.object);
        for w in self.warnings {
            let text = format!("299 - {}", serde_json::Value::String(w));
            if let Ok(v) = HeaderValue::from_str(&text) {
                resp.headers_mut().append("warning", v);
            }
        }
        resp
    }
}

/// The fallback handler: every `/api/...` and `/apis/...` resource request.
pub async fn resource(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    match dispatch(state, req).await {
        Ok(resp) => resp,
        Err(Failure(e)) => crate::error::status_response(&e),
    }
}

async fn dispatch(state: Arc<ApiState>, req: Request) -> HandlerResult {
    if let Some(review) = review::Review::at(req.uri().path()) {
        if req.method() != Method::POST {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on {}",
                req.uri().path()
            ))
            .into());
        }
        let caller = req.extensions().get::<crate::Caller>().cloned();
        let (parts, body) = req.into_parts();
        return review::serve(&state, review, caller, &parts.headers, body).await;
    }
    let Some(target) = path::parse(req.uri().path())? else {
        return Err(ApiError::path_not_found().into());
    };
    let params = Params::parse(req.uri().query())?;
    if matches!(target.sub, Some(Sub::Log | Sub::Exec | Sub::Attach | Sub::PortForward)) {
        let allowed = match target.sub {
            Some(Sub::Log) => req.method() == Method::GET,
            _ => req.method() == Method::GET || req.method() == Method::POST,
        };
        if !allowed {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on {}",
                req.uri().path()
            ))
            .into());
        }
        return crate::streams::serve(state, target, params, req).await;
    }
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let method = parts.method;

    match (&method, target.name.is_some(), target.sub) {
        (&Method::GET, false, None) => {
            if params.flag("watch")? {
                crate::watch::serve(state, target, &params, &headers)
            } else {
                read::list(&state, &target, &params, &headers)
            }
        }
        (&Method::GET, true, None) | (&Method::GET, true, Some(Sub::Status)) => {
            read::get(&state, &target, &params, &headers)
        }
        (&Method::GET, true, Some(Sub::Scale)) => scale::get(&state, &target),
        (&Method::POST, false, None) => {
            let object = decode_body(&headers, body).await?;
            let opts = WriteOptions::from_params(&params)?;
            blocking(state, move |st| write::create(st, &target, object, opts)).await
        }
        (&Method::POST, true, Some(Sub::Eviction)) => {
            let eviction = decode_body(&headers, body).await?;
            let options =
                delete::DeleteOptions::from_document(&params, eviction.get("deleteOptions").unwrap_or(&Value::Null))?;
            blocking(state, move |st| delete::evict(st, &target, &options)).await
        }
        (&Method::POST, true, Some(Sub::Token)) => {
            let request = decode_body(&headers, body).await?;
            blocking(state, move |st| write::token_request(st, &target, request)).await
        }
        (&Method::POST, true, Some(Sub::Binding)) => {
            let object = decode_body(&headers, body).await?;
            blocking(state, move |st| write::bind(st, &target, object)).await
        }
        (&Method::PUT, true, sub) => {
            let object = decode_body(&headers, body).await?;
            let opts = WriteOptions::from_params(&params)?;
            match sub {
                Some(Sub::Scale) => blocking(state, move |st| scale::update(st, &target, object, opts)).await,
                _ => blocking(state, move |st| write::update(st, &target, object, opts)).await,
            }
        }
        (&Method::PATCH, true, sub)
            if !matches!(sub, Some(Sub::Binding | Sub::Finalize | Sub::Eviction | Sub::Token)) =>
        {
            let content_type = media::content_type(&headers);
            let bytes = media::read_body(body).await?;
            let patch = media::decode(&content_type, &bytes)?;
            let opts = WriteOptions::from_params(&params)?;
            let force = params.flag("force")?;
            match sub {
                Some(Sub::Scale) => {
                    blocking(state, move |st| scale::patch(st, &target, &content_type, patch, opts)).await
                }
                _ => blocking(state, move |st| write::patch(st, &target, &content_type, patch, opts, force)).await,
            }
        }
        (&Method::DELETE, true, None) => {
            let options = delete::DeleteOptions::from_request(&params, &headers, body).await?;
            blocking(state, move |st| delete::delete(st, &target, &options)).await
        }
        (&Method::DELETE, false, None) => {
            let options = delete::DeleteOptions::from_request(&params, &headers, body).await?;
            let selection = read::Selection::from_params(target.info, &params)?;
            blocking(state, move |st| delete::delete_collection(st, &target, &selection, &options)).await
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            parts.uri.path()
        ))
        .into()),
    }
}

async fn decode_body(headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let content_type = media::content_type(headers);
    let bytes = media::read_body(body).await?;
    media::decode(&content_type, &bytes)
}

/// Run a write on the blocking pool: it waits for its commit's fsync.
async fn blocking<T: IntoResponse + Send + 'static>(
    state: Arc<ApiState>,
    f: impl FnOnce(&ApiState) -> Result<T, ApiError> + Send + 'static,
) -> HandlerResult {
    let result = tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| ApiError::internal(format!("write task failed: {e}")))?;
    Ok(result?.into_response())
}

/// The target's resource for messages: `statefulsets.apps "web"`.
pub(crate) fn not_found(target: &Target) -> ApiError {
    ApiError::not_found(target.info.group, target.info.plural, target.name.as_deref().unwrap_or(""))
}
