//! The node agent's logs, exec and attach, offered to the API server (in upstream terms: the
//! API server's proxy to the kubelet). Only translation lives here.

use std::sync::Arc;

use agent::kubelet::streams::{self as node, StreamError};
use agent::runtime::Runtime;
use apiserver::streams::{ByteStream, Input, LogOptions, PodStreams, Session};
use bytes::Bytes;
use futures::future::BoxFuture;
use model::ApiError;
use serde_json::Value;
use tokio::sync::mpsc;

pub struct NodeStreams<R: Runtime> {
    pub runtime: Arc<R>,
}

fn api_error(e: StreamError) -> ApiError {
    match e {
        StreamError::BadRequest(m) => ApiError::bad_request(m),
        StreamError::NotFound(m) => ApiError::new(404, model::Reason::NotFound, m),
        StreamError::Internal(m) => ApiError::internal(m),
    }
}

fn text(pod: &Value, pointer: &str) -> String {
    pod.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Bridge the node's session to the API server's.
fn bridge(mut session: node::Session) -> Session {
    let (out_tx, output) = mpsc::channel(64);
    let (input, mut in_rx) = mpsc::unbounded_channel::<Input>();
    tokio::spawn(async move {
        while let Some((channel, data)) = session.output.recv().await {
            if out_tx.send((channel, Bytes::from(data))).await.is_err() {
                break;
            }
        }
    });
    let node_input = session.input;
    tokio::spawn(async move {
        while let Some(i) = in_rx.recv().await {
            let i = match i {
                Input::Stdin(b) => node::Input::Stdin(b.to_vec()),
                Input::CloseStdin => node::Input::CloseStdin,
                Input::Resize { width, height } => node::Input::Resize { width, height },
            };
            if node_input.send(i).is_err() {
                break;
            }
        }
    });
    Session { output, input, exit: session.exit }
}

impl<R: Runtime> PodStreams for NodeStreams<R> {
    fn logs(&self, pod: Arc<Value>, options: LogOptions) -> BoxFuture<'static, Result<ByteStream, ApiError>> {
        let runtime = self.runtime.clone();
        Box::pin(async move {
            let since = match (&options.since_time, options.since_seconds) {
                (Some(t), _) => Some(
                    t.parse::<jiff::Timestamp>()
                        .map_err(|e| ApiError::bad_request(format!("invalid sinceTime {t:?}: {e}")))?,
                ),
                (None, Some(secs)) => jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(secs)).ok(),
                (None, None) => None,
            };
            let waiting = pod
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .and_then(|s| s.iter().find(|c| c["name"] == options.container.as_str()))
                .and_then(|c| c.pointer("/state/waiting/reason"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let request = node::LogRequest {
                follow: options.follow,
                previous: options.previous,
                timestamps: options.timestamps,
                tail_lines: options.tail_lines,
                since,
                limit_bytes: options.limit_bytes,
            };
            let rx = node::logs(
                &runtime,
                &text(&pod, "/metadata/uid"),
                &text(&pod, "/metadata/name"),
                &options.container,
                waiting,
                request,
            )
            .map_err(api_error)?;
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|chunk| (Ok::<Bytes, std::io::Error>(Bytes::from(chunk)), rx))
            });
            Ok(Box::pin(stream) as ByteStream)
        })
    }

    fn exec(
        &self,
        pod: Arc<Value>,
        container: String,
        command: Vec<String>,
        stdin: bool,
        tty: bool,
    ) -> BoxFuture<'static, Result<Session, ApiError>> {
        let runtime = self.runtime.clone();
        Box::pin(async move {
            let session = node::exec(&runtime, &text(&pod, "/metadata/uid"), &container, command, stdin, tty)
                .await
                .map_err(api_error)?;
            Ok(bridge(session))
        })
    }

    fn attach(
        &self,
        pod: Arc<Value>,
        container: String,
        _stdin: bool,
        _tty: bool,
    ) -> BoxFuture<'static, Result<Session, ApiError>> {
        let runtime = self.runtime.clone();
        Box::pin(async move {
            let session = node::attach(&runtime, &text(&pod, "/metadata/uid"), &container).await.map_err(api_error)?;
            Ok(bridge(session))
        })
    }

    fn port_forward(&self, pod: Arc<Value>, port: u16) -> BoxFuture<'static, Result<tokio::net::TcpStream, String>> {
        let ns_dir = self.runtime.pod_dir(&text(&pod, "/metadata/uid")).join("ns");
        Box::pin(async move {
            let stream = agent::runtime::network::connect_in_pod(ns_dir, port).await.map_err(|e| e.to_string())?;
            tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())
        })
    }
}
