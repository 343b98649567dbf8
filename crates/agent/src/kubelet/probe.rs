//! Probes and lifecycle hooks, as kubelet runs them: `exec` inside the container, `httpGet`
//! (HTTP/1.1 to the pod IP unless `host` says otherwise; 200–399 is success) and `tcpSocket`.
//! A prober reports only changes of its verdict, after `successThreshold` / `failureThreshold`
//! consecutive results, every `periodSeconds` from `initialDelaySeconds` after the container
//! started (so a prober started again after a server restart does not wait again).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use logic::kubelet::{ProbeCounter, ProbeKind, ProbeTiming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::runtime::{ContainerRef, Runtime};

/// A verdict change of one prober.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub container: ContainerRef,
    pub kind: ProbeKind,
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

impl<'a> Action<'a> {
    /// A lifecycle hook's action (`postStart`, `preStop`).
    pub fn of_handler(handler: &'a LifecycleHandler) -> Option<Action<'a>> {
        if let Some(e) = &handler.exec {
            Some(Action::Exec(e))
        } else if let Some(h) = &handler.http_get {
            Some(Action::Http(h))
        } else {
            handler.tcp_socket.as_ref().map(Action::Tcp)
        }
    }
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

/// One prober of one container run: probe every period from `initialDelaySeconds` after the
/// container started, and send each change of verdict (thresholds as `logic::kubelet::probe`
/// counts them) until cancelled. A liveness or startup failure, and a startup success, end it.
pub struct Prober<R: Runtime> {
    pub runtime: std::sync::Arc<R>,
    pub container: ContainerRef,
    pub spec: Container,
    pub pod_ip: String,
    pub kind: ProbeKind,
    pub probe: Probe,
    pub started_at: Timestamp,
}

impl<R: Runtime> Prober<R> {
    pub async fn run(self, verdicts: mpsc::UnboundedSender<Verdict>, stop: CancellationToken) {
        let Some(_) = action_of(&self.probe) else { return };
        let timing = ProbeTiming::of(&self.probe);
        let delay = timing.first_probe_in(self.started_at, Timestamp::now());
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay.unsigned_abs()) => {}
        }
        let mut counter = ProbeCounter::default();
        let mut ticker = tokio::time::interval(timing.period.unsigned_abs());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let Some(action) = action_of(&self.probe) else { return };
            let result = run_action(
                self.runtime.as_ref(),
                &self.container,
                &self.spec,
                &self.pod_ip,
                action,
                timing.timeout.unsigned_abs(),
            )
            .await;
            let success = result.is_ok();
            let Some(verdict) = counter.record(success, &timing) else { continue };
            let message = result.err().unwrap_or_default();
            let report = Verdict { container: self.container.clone(), kind: self.kind, success: verdict, message };
            if verdicts.send(report).is_err() {
                return;
            }
            // A failed liveness or startup probe stops the container, and a startup probe that
            // succeeded has done its job: either way, this prober is done with the run.
            if self.kind == ProbeKind::Startup || (self.kind == ProbeKind::Liveness && !verdict) {
                return;
            }
        }
    }
}
