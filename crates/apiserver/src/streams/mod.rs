//! `pods/{name}/log`, `pods/{name}/exec` and `pods/{name}/attach`. Upstream's API server proxies
//! these to the kubelet; here the node agent plugs in through `PodStreams`, and this module does
//! the HTTP side: option parsing and checks as the upstream registry does them, the plain or
//! chunked log response, and the two streaming protocols kubectl speaks — WebSocket
//! `v5.channel.k8s.io` (kubectl 1.30+) and SPDY/3.1 with `v4.channel.k8s.io` (older kubectl,
//! and newer ones when WebSocket is refused).

mod spdy;
mod websocket;

use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use http::{HeaderMap, StatusCode, header};
use model::ApiError;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::ApiState;
use crate::error::HandlerResult;
use crate::handlers::Params;
use crate::path::{Sub, Target};

/// What `pods/log` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    /// RFC 3339.
    pub since_time: Option<String>,
    pub limit_bytes: Option<i64>,
}

pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// What the client sends into a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin(Bytes),
    CloseStdin,
    Resize { width: u16, height: u16 },
}

/// A running exec or attach.
pub struct Session {
    /// `(1, data)` for stdout, `(2, data)` for stderr; ends when the output does.
    pub output: mpsc::Receiver<(u8, Bytes)>,
    pub input: mpsc::UnboundedSender<Input>,
    /// The command's exit code (attach: 0), or why the session failed.
    pub exit: oneshot::Receiver<Result<i32, String>>,
}

/// What a node offers the API server for pods bound to it.
pub trait PodStreams: Send + Sync {
    fn logs(&self, pod: Arc<Value>, options: LogOptions) -> BoxFuture<'static, Result<ByteStream, ApiError>>;
    fn exec(
        &self,
        pod: Arc<Value>,
        container: String,
        command: Vec<String>,
        stdin: bool,
        tty: bool,
    ) -> BoxFuture<'static, Result<Session, ApiError>>;
    fn attach(
        &self,
        pod: Arc<Value>,
        container: String,
        stdin: bool,
        tty: bool,
    ) -> BoxFuture<'static, Result<Session, ApiError>>;
    /// A connection to `port` on the pod's own loopback (`pods/portforward`), or why not.
    fn port_forward(&self, pod: Arc<Value>, port: u16) -> BoxFuture<'static, Result<tokio::net::TcpStream, String>>;
}

/// The container a request means: the named one, else the default-container annotation, else
/// the only (or first) one. Errors as the upstream registry words them.
fn container_of(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let names = |key: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let containers = names("containers");
    let all: Vec<String> =
        containers.iter().cloned().chain(names("initContainers")).chain(names("ephemeralContainers")).collect();
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if all.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}"))),
        None => {
            let annotated = pod
                .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
                .and_then(Value::as_str)
                .filter(|c| all.iter().any(|n| n == c));
            match (annotated, containers.as_slice()) {
                (Some(c), _) => Ok(c.to_string()),
                (None, [only]) => Ok(only.clone()),
                (None, [first, ..]) => Ok(first.clone()),
                (None, []) => Err(ApiError::bad_request(format!("pod {name} has no containers"))),
            }
        }
    }
}

fn streams(state: &ApiState) -> Result<Arc<dyn PodStreams>, ApiError> {
    state.pod_streams.get().cloned().ok_or_else(|| {
        ApiError::new(503, model::Reason::ServiceUnavailable, "no node agent serves pod streams on this server")
    })
}

/// Serve one log, exec or attach request.
pub async fn serve(state: Arc<ApiState>, target: Target, params: Params, req: Request) -> HandlerResult {
    let key = target.key().ok_or_else(ApiError::path_not_found)?;
    let name = target.name.clone().unwrap_or_default();
    let pod = state.store.get(&key).ok_or_else(|| ApiError::not_found("", "pods", &name))?.value;
    let container =
        if target.sub == Some(Sub::PortForward) { String::new() } else { container_of(&pod, params.get("container"))? };
    let provider = streams(&state)?;
    match target.sub {
        Some(Sub::Log) => {
            let options = LogOptions {
                container,
                follow: params.flag("follow")?,
                previous: params.flag("previous")?,
                timestamps: params.flag("timestamps")?,
                tail_lines: non_negative(&params, "tailLines")?,
                since_seconds: positive(&params, "sinceSeconds")?,
                since_time: params.get("sinceTime").map(str::to_string),
                limit_bytes: positive(&params, "limitBytes")?,
            };
            let body = provider.logs(pod, options).await?;
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from_stream(body))
                .map_err(|e| ApiError::internal(e.to_string()))?)
        }
        Some(Sub::Exec) | Some(Sub::Attach) => {
            let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
            if phase == "Succeeded" || phase == "Failed" {
                return Err(ApiError::bad_request(format!(
                    "cannot {} a container in a completed pod; current phase is {phase}",
                    if target.sub == Some(Sub::Exec) { "exec into" } else { "attach to" }
                ))
                .into());
            }
            let stdin = params.flag("stdin")?;
            let tty = params.flag("tty")?;
            let stdout = params.flag("stdout")?;
            let stderr = params.flag("stderr")?;
            if !stdin && !stdout && !stderr {
                return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr").into());
            }
            let protocol = Protocol::of(req.headers())?;
            let session = if target.sub == Some(Sub::Exec) {
                let command = params.all("command");
                if command.is_empty() {
                    return Err(ApiError::bad_request("you must specify at least one command for the container").into());
                }
                provider.exec(pod, container, command, stdin, tty).await?
            } else {
                provider.attach(pod, container, stdin, tty).await?
            };
            let attach = target.sub == Some(Sub::Attach);
            Ok(protocol.upgrade(req, session, attach, Streams { stdin, stdout, stderr: stderr && !tty }))
        }
        Some(Sub::PortForward) => {
            let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
            if phase != "Running" {
                return Err(ApiError::bad_request(format!(
                    "unable to forward port because pod is not running. Current status={phase}"
                ))
                .into());
            }
            let protocol = ForwardProtocol::of(req.headers())?;
            let ports = match protocol {
                ForwardProtocol::Channel(_) => forwarded_ports(&params)?,
                _ => Vec::new(),
            };
            let accept = match protocol {
                ForwardProtocol::Spdy => None,
                _ => Some(
                    req.headers()
                        .get(header::SEC_WEBSOCKET_KEY)
                        .and_then(|v| v.to_str().ok())
                        .map(websocket::accept_key)
                        .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?,
                ),
            };
            let mut req = req;
            let upgraded = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let io = match upgraded.await {
                    Ok(io) => io,
                    Err(e) => return tracing::debug!(error = %e, "port-forward upgrade"),
                };
                let dial = move |port: u16| provider.port_forward(pod.clone(), port);
                match protocol {
                    ForwardProtocol::Channel(name) => websocket::run_port_forward(io, name, ports, dial).await,
                    ForwardProtocol::Tunnel => spdy::run_port_forward(websocket::tunnel(io), dial).await,
                    ForwardProtocol::Spdy => spdy::run_port_forward(hyper_util::rt::TokioIo::new(io), dial).await,
                }
            });
            let response =
                Response::builder().status(StatusCode::SWITCHING_PROTOCOLS).header(header::CONNECTION, "Upgrade");
            let response = match (protocol, accept) {
                (ForwardProtocol::Spdy, _) | (_, None) => {
                    response.header(header::UPGRADE, "SPDY/3.1").header("X-Stream-Protocol-Version", PORT_FORWARD)
                }
                (ForwardProtocol::Channel(name), Some(accept)) => response
                    .header(header::UPGRADE, "websocket")
                    .header(header::SEC_WEBSOCKET_ACCEPT, accept)
                    .header(header::SEC_WEBSOCKET_PROTOCOL, name),
                (ForwardProtocol::Tunnel, Some(accept)) => response
                    .header(header::UPGRADE, "websocket")
                    .header(header::SEC_WEBSOCKET_ACCEPT, accept)
                    .header(header::SEC_WEBSOCKET_PROTOCOL, PORT_FORWARD_TUNNEL),
            };
            Ok(response.body(Body::empty()).unwrap_or_default())
        }
        _ => Err(ApiError::path_not_found().into()),
    }
}

/// The port-forward stream protocol kubectl speaks over SPDY.
const PORT_FORWARD: &str = "portforward.k8s.io";
/// The WebSocket subprotocol that tunnels it (kubectl 1.31+, KEP-4006).
const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// How a port-forward session is carried.
#[derive(Debug, Clone, Copy)]
enum ForwardProtocol {
    /// The WebSocket channel protocol (`v4.channel.k8s.io` or its base64 form): the Python
    /// client's, and client-go's before tunnelling.
    Channel(&'static str),
    /// SPDY inside a WebSocket (kubectl 1.31+).
    Tunnel,
    /// SPDY/3.1 (kubectl before 1.31, and the fallback of newer ones).
    Spdy,
}

impl ForwardProtocol {
    fn of(headers: &HeaderMap) -> Result<ForwardProtocol, ApiError> {
        let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        let listed = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(',').map(|p| p.trim().to_string()).collect::<Vec<_>>())
                .collect()
        };
        if upgrade == "websocket" {
            let offered = listed(header::SEC_WEBSOCKET_PROTOCOL.as_str());
            if offered.iter().any(|p| p == PORT_FORWARD_TUNNEL) {
                return Ok(ForwardProtocol::Tunnel);
            }
            if let Some(name) =
                ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"].into_iter().find(|p| offered.iter().any(|o| o == p))
            {
                return Ok(ForwardProtocol::Channel(name));
            }
        } else if upgrade.starts_with("spdy/3.1")
            && listed("x-stream-protocol-version").iter().any(|p| p == PORT_FORWARD)
        {
            return Ok(ForwardProtocol::Spdy);
        }
        Err(ApiError::bad_request(format!(
            "unable to upgrade: port forwarding is served over SPDY/3.1 with {PORT_FORWARD}, tunnelled in a WebSocket as {PORT_FORWARD_TUNNEL}, or over WebSocket v4.channel.k8s.io"
        )))
    }
}

/// The `ports` of a channel-protocol port-forward (repeated or comma-separated), each 1–65535.
fn forwarded_ports(params: &Params) -> Result<Vec<u16>, ApiError> {
    params
        .all("ports")
        .iter()
        .flat_map(|p| p.split(',').map(str::to_string).collect::<Vec<_>>())
        .map(|p| p.trim().parse::<u16>().ok().filter(|p| *p > 0))
        .collect::<Option<Vec<u16>>>()
        // Two channels a port, numbered in one byte: at most 127 ports on one socket.
        .filter(|p| !p.is_empty() && p.len() <= 127)
        .ok_or_else(|| {
            ApiError::bad_request("query parameter \"ports\" is required: 1 to 127 ports, each between 1 and 65535")
        })
}

fn non_negative(params: &Params, key: &str) -> Result<Option<i64>, ApiError> {
    match params.int(key)? {
        Some(n) if n < 0 => Err(ApiError::invalid(
            "",
            "PodLogOptions",
            "",
            vec![model::FieldError::invalid(key, n, "must be greater than or equal to 0")],
        )),
        other => Ok(other),
    }
}

fn positive(params: &Params, key: &str) -> Result<Option<i64>, ApiError> {
    match params.int(key)? {
        Some(n) if n < 1 => Err(ApiError::invalid(
            "",
            "PodLogOptions",
            "",
            vec![model::FieldError::invalid(key, n, "must be greater than 0")],
        )),
        other => Ok(other),
    }
}

/// Which standard streams the client asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

enum Protocol {
    WebSocket { key: String, subprotocol: &'static str },
    Spdy { version: &'static str },
}

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

impl Protocol {
    fn of(headers: &HeaderMap) -> Result<Protocol, ApiError> {
        let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if upgrade == "websocket" {
            let offered = headers
                .get_all(header::SEC_WEBSOCKET_PROTOCOL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(',').map(|p| p.trim().to_string()).collect::<Vec<_>>())
                .collect::<Vec<_>>();
            let Some(subprotocol) = websocket::SUBPROTOCOLS.iter().find(|p| offered.iter().any(|o| o == *p)) else {
                // kubectl falls back to SPDY when the WebSocket upgrade is refused.
                return Err(ApiError::bad_request(format!(
                    "unable to upgrade: supported WebSocket subprotocols are {}",
                    websocket::SUBPROTOCOLS.join(", ")
                )));
            };
            let key = headers
                .get(header::SEC_WEBSOCKET_KEY)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?;
            return Ok(Protocol::WebSocket { key: key.to_string(), subprotocol });
        }
        if upgrade.starts_with("spdy/3.1") {
            let offered: Vec<&str> = headers
                .get_all("x-stream-protocol-version")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .collect();
            if offered.contains(&V4) || offered.contains(&V5) {
                return Ok(Protocol::Spdy { version: V4 });
            }
            return Err(ApiError::bad_request(format!(
                "unable to upgrade: no common stream protocol; this server supports {V4}"
            )));
        }
        Err(ApiError::bad_request("Upgrade request required"))
    }

    fn upgrade(self, mut req: Request, session: Session, attach: bool, streams: Streams) -> Response {
        let upgrade = hyper::upgrade::on(&mut req);
        match self {
            Protocol::WebSocket { key, subprotocol } => {
                tokio::spawn(async move {
                    match upgrade.await {
                        Ok(io) => websocket::run(io, session, attach, subprotocol).await,
                        Err(e) => tracing::debug!(error = %e, "websocket upgrade"),
                    }
                });
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header(header::CONNECTION, "Upgrade")
                    .header(header::UPGRADE, "websocket")
                    .header(header::SEC_WEBSOCKET_ACCEPT, websocket::accept_key(&key))
                    .header(header::SEC_WEBSOCKET_PROTOCOL, subprotocol)
                    .body(Body::empty())
                    .unwrap_or_default()
            }
            Protocol::Spdy { version } => {
                tokio::spawn(async move {
                    match upgrade.await {
                        Ok(io) => spdy::run(io, session, attach, streams).await,
                        Err(e) => tracing::debug!(error = %e, "spdy upgrade"),
                    }
                });
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header(header::CONNECTION, "Upgrade")
                    .header(header::UPGRADE, "SPDY/3.1")
                    .header("X-Stream-Protocol-Version", version)
                    .body(Body::empty())
                    .unwrap_or_default()
            }
        }
    }
}

/// The Status a session ends with, on the error channel (v4/v5): Success, or the exit code.
fn final_status(exit: Result<i32, String>, attach: bool) -> Vec<u8> {
    let status = match exit {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        // kubectl takes an attached program's exit code from the pod status, not from here.
        Ok(_) if attach => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command [...], exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}}),
        Err(message) => json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
            "code": 500}),
    };
    serde_json::to_vec(&status).unwrap_or_default()
}

/// A terminal size message (`{"Width":100,"Height":40}`).
fn parse_resize(data: &[u8]) -> Option<Input> {
    let v: Value = serde_json::from_slice(data).ok()?;
    let width = u16::try_from(v.get("Width")?.as_u64()?).ok()?;
    let height = u16::try_from(v.get("Height")?.as_u64()?).ok()?;
    Some(Input::Resize { width, height })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_is_chosen_as_upstream_does() {
        let pod = json!({"metadata": {"name": "web-0"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "init"}]}});
        assert_eq!(container_of(&pod, None).ok(), Some("a".into()));
        assert_eq!(container_of(&pod, Some("init")).ok(), Some("init".into()));
        let err = container_of(&pod, Some("c")).err().map(|e| e.message.clone());
        assert_eq!(err.as_deref(), Some("container c is not valid for pod web-0"));
        let annotated = json!({"metadata": {"name": "p", "annotations": {"kubectl.kubernetes.io/default-container": "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(container_of(&annotated, None).ok(), Some("b".into()));
    }

    #[test]
    fn final_status_carries_the_exit_code() {
        let ok: Value = serde_json::from_slice(&final_status(Ok(0), false)).unwrap_or_default();
        assert_eq!(ok["status"], "Success");
        let failed: Value = serde_json::from_slice(&final_status(Ok(3), false)).unwrap_or_default();
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        let attached: Value = serde_json::from_slice(&final_status(Ok(3), true)).unwrap_or_default();
        assert_eq!(attached["status"], "Success");
        assert_eq!(parse_resize(br#"{"Width":100,"Height":40}"#), Some(Input::Resize { width: 100, height: 40 }));
    }
}
