//! Watch: a chunked stream of newline-delimited `WatchEvent`s (or one-row Tables), with
//! initial events, label/field filtering that turns transitions into ADDED/DELETED, periodic
//! BOOKMARKs and `timeoutSeconds`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use model::{ApiError, ResourceInfo};
use serde_json::{Value, json};
use store::{EventType, WatchError};

use crate::ApiState;
use crate::convert::from_storage;
use crate::error::HandlerResult;
use crate::handlers::Params;
use crate::handlers::read::{Selection, list_objects, table_options};
use crate::media::{self, Output};
use crate::path::Target;
use crate::table::{self, TableOptions};

/// How a stored change looks to a watcher with a selector.
pub fn classify<'a>(
    selection: &Selection,
    info: &ResourceInfo,
    event: &'a store::Event,
) -> Option<(&'static str, std::borrow::Cow<'a, Value>)> {
    // Borrowed for every kind stored as served: no copy of the object per watcher and event.
    let now = from_storage(info, &event.object);
    let matches_now = selection.matches(info, &now);
    let kind = match event.event_type {
        EventType::Added => matches_now.then_some("ADDED"),
        EventType::Deleted => matches_now.then_some("DELETED"),
        EventType::Modified => {
            let before =
                event.prev.as_ref().map(|p| selection.matches(info, &from_storage(info, p))).unwrap_or(matches_now);
            match (before, matches_now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
    }?;
    Some((kind, now))
}

/// Renders events for one watch response.
struct Encoder {
    info: &'static ResourceInfo,
    table: Option<TableOptions>,
    /// Metadata only, as `PartialObjectMetadata` of this `meta.k8s.io` version.
    metadata: Option<&'static str>,
    columns_sent: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, object: &Value) -> Bytes {
        if let Some(version) = self.metadata {
            return event_line(kind, &media::partial_metadata(object, version));
        }
        match &mut self.table {
            None => event_line(kind, object),
            Some(opts) => {
                opts.now = jiff::Timestamp::now();
                let rv = crate::object::resource_version(object).to_string();
                let with_columns = !self.columns_sent;
                self.columns_sent = true;
                event_line(kind, &table::watch_table(self.info, object, &rv, with_columns, opts))
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = match self.metadata {
            Some(version) => {
                json!({"kind": "PartialObjectMetadata", "apiVersion": format!("meta.k8s.io/{version}"), "metadata": metadata})
            }
            None => json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": metadata}),
        };
        line(&json!({"type": "BOOKMARK", "object": object}))
    }
}

/// `{"type":…,"object":…}` and a newline, serialising the object in place (no copy).
fn event_line(kind: &str, object: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct WatchEvent<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a Value,
    }
    let mut buf = serde_json::to_vec(&WatchEvent { kind, object }).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

fn line(v: &Value) -> Bytes {
    let mut buf = serde_json::to_vec(v).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

fn expired_event(requested: u64, oldest: u64) -> Bytes {
    let e = ApiError::expired(format!("too old resource version: {requested} ({oldest})"));
    line(&json!({"type": "ERROR", "object": e.to_status()}))
}

pub fn serve(state: Arc<ApiState>, target: Target, params: &Params, headers: &HeaderMap) -> HandlerResult {
    let info = target.info;
    let output = media::negotiate(headers, params.get("includeObject"))?;
    let selection = Selection::from_params(info, params)?;
    let rv_param = params.get("resourceVersion").unwrap_or("");
    let send_initial = params.flag("sendInitialEvents")?;
    let bookmarks = params.flag("allowWatchBookmarks")?;
    if send_initial && params.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![model::FieldError::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        )
        .into());
    }
    let timeout = params
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64))
        .unwrap_or(state.config.max_watch_duration);

    let (initial, start_rv) = if rv_param.is_empty() || rv_param == "0" || send_initial {
        let (objects, rv, _) = list_objects(&state, &target, &selection, None, None)?;
        (objects, rv)
    } else {
        let rv = rv_param
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv_param:?}")))?;
        (Vec::new(), rv)
    };
    let metadata = match output {
        Output::Metadata(version) => Some(version),
        Output::Json | Output::Table(_) => None,
    };
    let mut encoder = Encoder { info, table: table_options(output), metadata, columns_sent: false };
    let content_type = match output {
        Output::Table(_) => media::TABLE_CONTENT_TYPE,
        Output::Json | Output::Metadata(_) => "application/json",
    };

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let watcher = state.store.watch(&target.prefix(), start_rv);
    let bookmark_every = state.config.bookmark_interval;
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let Some(mut watcher) = watcher else {
            let _ = tx.send(expired_event(start_rv, state.store.oldest_watchable_rv())).await;
            return;
        };
        for obj in &initial {
            if tx.send(encoder.event("ADDED", obj)).await.is_err() {
                return;
            }
        }
        if send_initial && tx.send(encoder.bookmark(start_rv, true)).await.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + bookmark_every, bookmark_every);
        loop {
            let out = tokio::select! {
                _ = &mut deadline => return,
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = tick.tick(), if bookmarks => Some(encoder.bookmark(watcher.progress_rv(), false)),
                next = watcher.next() => match next {
                    Ok(event) => classify(&selection, info, &event).map(|(kind, obj)| encoder.event(kind, &obj)),
                    Err(WatchError::Expired) => {
                        let _ = tx.send(expired_event(watcher.progress_rv(), state.store.oldest_watchable_rv())).await;
                        return;
                    }
                    Err(WatchError::Closed) => return,
                },
            };
            if let Some(bytes) = out
                && tx.send(bytes).await.is_err()
            {
                return;
            }
        }
    });

    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok::<_, Infallible>)));
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}
