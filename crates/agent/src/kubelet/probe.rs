//! Probes and lifecycle hooks, as kubelet runs them: `exec` inside the container, `httpGet`
//! (HTTP/1.1 to the pod IP unless `host` says otherwise; 200–399 is success) and `tcpSocket`.
//! A prober reports only changes of its verdict, after `successThreshold` / `failureThreshold`
//! consecutive results, every `periodSeconds` after `initialDelaySeconds`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::runtime::{ContainerRef, Runtime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// A verdict change of one prober.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub container: ContainerRef,
    pub kind: Kind,
    pub success: bool,
    /// The last failure's output, for the `Unhealthy` event.
    pub message: String,
}

/// One action (probe or hook handler) against a running container.
pub enum Action<'a> {
    Exec(&'a ExecAction),
    Http(&'a HTTPGetAction),
    Tcp(&'a TCPSocketAction),
}

/// Run one action; Ok on success, Err with kubelet-like output otherwise.
pub async fn run_action<R: Runtime>(
    runtime: &R,
    container: &ContainerRef,
    spec: &Container,
    pod_ip: &str,
    action: Action<'_>,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        match action {
            Action::Exec(exec) => {
                let argv = exec.command.clone().unwrap_or_default();
                let out = runtime
                    .exec_command(container, &argv, false)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .output()
                    .await
                    .map_err(|e| e.to_string())?;
                if out.status.success() {
                    Ok(())
                } else {
                    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
                    Err(format!("command {argv:?} exited with {}: {}", out.status.code().unwrap_or(-1), text.trim()))
                }
            }
            Action::Http(http) => {
                let port = port_of(&http.port, spec)?;
                let host = http.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| pod_ip.to_string());
                if http.scheme.as_deref() == Some("HTTPS") {
                    return Err("HTTPS probes are not supported by Ordinal's node agent".into());
                }
                let path = http.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
                let mut stream = tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|e| format!("Get \"http://{host}:{port}{path}\": dial tcp {host}:{port}: {e}"))?;
                let mut request = format!(
                    "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
                );
                for h in http.http_headers.clone().unwrap_or_default() {
                    request.push_str(&format!("{}: {}\r\n", h.name, h.value));
                }
                request.push_str("\r\n");
                stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
                let mut head = vec![0u8; 256];
                let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
                let line = String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or("").to_string();
                let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                if (200..400).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("HTTP probe failed with statuscode: {code}"))
                }
            }
            Action::Tcp(tcp) => {
                let port = port_of(&tcp.port, spec)?;
                let host = tcp.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| pod_ip.to_string());
                tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map(drop)
                    .map_err(|e| format!("dial tcp {host}:{port}: {e}"))
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
    }
}

/// A port by number, or by the name of one of the container's ports.
fn port_of(port: &IntOrString, spec: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => spec
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("port {name:?} not found in the container's ports")),
    }
}

fn action_of(probe: &Probe) -> Option<Action<'_>> {
    if let Some(e) = &probe.exec {
        Some(Action::Exec(e))
    } else if let Some(h) = &probe.http_get {
        Some(Action::Http(h))
    } else {
        probe.tcp_socket.as_ref().map(Action::Tcp)
    }
}

fn secs(v: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(v.map(|s| s.max(0) as u64).unwrap_or(default))
}

/// Probe until cancelled, sending each change of verdict. Readiness and startup start as
/// failure (not ready, not started), liveness as success, as kubelet's initial results are. A
/// sustained failure is reported once, when it reaches the threshold.
#[allow(clippy::too_many_arguments)]
pub async fn run_prober<R: Runtime>(
    runtime: std::sync::Arc<R>,
    container: ContainerRef,
    spec: Container,
    pod_ip: String,
    kind: Kind,
    probe: Probe,
    verdicts: mpsc::UnboundedSender<Verdict>,
    stop: CancellationToken,
) {
    let Some(_) = action_of(&probe) else { return };
    let period = secs(probe.period_seconds, 10).max(Duration::from_secs(1));
    let timeout = secs(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    let delay = secs(probe.initial_delay_seconds, 0);
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = tokio::time::sleep(delay) => {}
    }
    let mut verdict = kind == Kind::Liveness;
    let (mut successes, mut failures) = (0, 0);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(action) = action_of(&probe) else { return };
        let result = run_action(runtime.as_ref(), &container, &spec, &pod_ip, action, timeout).await;
        let message = match &result {
            Ok(()) => {
                successes += 1;
                failures = 0;
                String::new()
            }
            Err(m) => {
                failures += 1;
                successes = 0;
                m.clone()
            }
        };
        let flip = if !verdict && successes >= success_threshold {
            Some(true)
        } else if failures >= failure_threshold {
            if verdict || failures == failure_threshold { Some(false) } else { None }
        } else {
            None
        };
        if let Some(success) = flip {
            verdict = success;
            let report = Verdict { container: container.clone(), kind, success, message };
            if verdicts.send(report).is_err() {
                return;
            }
            if kind == Kind::Startup && success {
                return;
            }
        }
    }
}
