//! One pod's worker: sync the runtime to the pod, react to container exits and probe verdicts,
//! write the status, and terminate gracefully when the pod is deleted.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Api, Resource};
use logic::pod_status::{self, ContainerView, State, Terminated};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::probe::{self, Kind, Verdict};
use super::volumes::{self, Prepared, VolumeError};
use super::{Kubelet, Runtime};
use crate::runtime::cgroup::Limits;
use crate::runtime::spec::{self as rspec, Mount, MountKind};
use crate::runtime::{ContainerRef, ContainerState, StartRequest};

/// What the worker knows of one container.
#[derive(Debug, Default)]
struct Track {
    /// The latest run (its number is the restart count).
    attempt: Option<u32>,
    running: bool,
    started_at: String,
    /// How the latest run ended, once it has.
    current: Option<Terminated>,
    /// How the run before it ended (`lastState`).
    last: Option<Terminated>,
    ready: bool,
    started: bool,
    /// Why it is not running (image, config), when it never could start.
    waiting: Option<(String, String)>,
    /// Not before this instant (crash-loop back-off).
    next_start: Option<Instant>,
    probes: Option<CancellationToken>,
    /// Tells gated probers the startup probe's outcome.
    startup: Option<watch::Sender<Option<bool>>>,
    /// Pulls failed so far (the second failure reads ImagePullBackOff).
    pull_failures: u32,
}

enum Happening {
    Exited(ContainerRef),
    Verdict(Verdict),
}

struct Worker<R: Runtime> {
    k: Arc<Kubelet<R>>,
    uid: String,
    tracks: BTreeMap<String, Track>,
    ip: Option<Ipv4Addr>,
    volumes: Option<BTreeMap<String, Prepared>>,
    start_time: String,
    last_status: Option<Value>,
    sandbox_error: Option<String>,
    volume_waiting: Option<String>,
    tx: mpsc::UnboundedSender<Happening>,
}

fn rfc3339_ns(ns: i128) -> String {
    jiff::Timestamp::from_nanosecond(ns).map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn container_id(c: &ContainerRef) -> String {
    format!("ordinal://{}-{}-{}", c.pod_uid, c.name, c.attempt)
}

fn spec_of(pod: &Pod) -> k8s_openapi::api::core::v1::PodSpec {
    pod.spec.clone().unwrap_or_default()
}

fn policy(pod: &Pod) -> String {
    pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into())
}

/// Entry point: one task per pod uid. `rx` carries the pod, or None once the API has no pod.
pub(super) async fn run<R: Runtime>(
    k: Arc<Kubelet<R>>,
    uid: String,
    mut rx: watch::Receiver<Option<Pod>>,
    shutdown: CancellationToken,
) {
    let (tx, mut happenings) = mpsc::unbounded_channel();
    let mut w = Worker {
        k,
        uid,
        tracks: BTreeMap::new(),
        ip: None,
        volumes: None,
        start_time: now(),
        last_status: None,
        sandbox_error: None,
        volume_waiting: None,
        tx,
    };
    let first = rx.borrow_and_update().clone();
    if let Some(pod) = &first {
        w.recover(pod);
    }
    loop {
        let pod = rx.borrow_and_update().clone();
        let Some(pod) = pod else {
            w.teardown(None).await;
            return;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            w.terminate(&pod).await;
            return;
        }
        let wake = w.sync(&pod).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = rx.changed() => {
                if changed.is_err() {
                    // The kubelet is stopping; containers keep running.
                    return;
                }
            }
            Some(h) = happenings.recv() => w.happened(&pod, h).await,
            _ = tokio::time::sleep(wake) => {}
        }
    }
}

impl<R: Runtime> Worker<R> {
    fn cref(&self, name: &str, attempt: u32) -> ContainerRef {
        ContainerRef { pod_uid: self.uid.clone(), name: name.to_string(), attempt }
    }

    /// Pick up the runs a previous server left (containers outlive it).
    fn recover(&mut self, pod: &Pod) {
        let spec = spec_of(pod);
        let all: Vec<Container> =
            spec.init_containers.clone().unwrap_or_default().into_iter().chain(spec.containers).collect();
        for c in all {
            let attempts = self.k.runtime.attempts(&self.uid, &c.name);
            let Some(&latest) = attempts.last() else { continue };
            let cref = self.cref(&c.name, latest);
            let mut track = Track { attempt: Some(latest), ..Default::default() };
            if latest > 0
                && let ContainerState::Exited { record, started_at_ns, oom_killed, start_error } =
                    self.k.runtime.state(&self.cref(&c.name, latest - 1))
            {
                track.last =
                    Some(terminated(&self.cref(&c.name, latest - 1), record, started_at_ns, oom_killed, start_error));
            }
            match self.k.runtime.state(&cref) {
                ContainerState::Running { started_at_ns } => {
                    track.running = true;
                    track.started_at = rfc3339_ns(started_at_ns);
                    track.started = c.startup_probe.is_none();
                    track.ready = c.readiness_probe.is_none() && track.started;
                    self.watch_container(&cref);
                }
                ContainerState::Exited { record, started_at_ns, oom_killed, start_error } => {
                    track.current = Some(terminated(&cref, record, started_at_ns, oom_killed, start_error));
                }
                ContainerState::Absent => {}
            }
            self.tracks.insert(c.name.clone(), track);
        }
        if !self.tracks.is_empty() {
            tracing::info!(pod = %self.uid, containers = self.tracks.len(), "picked up running pod");
        }
    }

    async fn event(&self, pod: &Pod, warning: bool, reason: &str, note: String) {
        let type_ = if warning { EventType::Warning } else { EventType::Normal };
        client_tools::publish(&self.k.recorder, &pod.object_ref(&()), type_, reason, note).await;
    }

    /// Make the runtime match the pod; returns how long until something is due.
    async fn sync(&mut self, pod: &Pod) -> Duration {
        let far = Duration::from_secs(3600);
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        if (phase == "Succeeded" || phase == "Failed") && !self.tracks.values().any(|t| t.running) {
            return far;
        }
        if self.ip.is_none() {
            let hostname = logic::container::hostname(pod);
            let began = Instant::now();
            let sandbox = self.k.runtime.create_sandbox(&self.uid, &hostname).await;
            tracing::debug!(pod = %self.uid, ms = began.elapsed().as_secs_f64() * 1000.0, "sandbox");
            match sandbox {
                Ok(ip) => {
                    self.ip = Some(ip);
                    self.sandbox_error = None;
                    if let Err(e) = self.write_etc_files(pod, ip) {
                        self.sandbox_error = Some(e.to_string());
                    }
                }
                Err(e) => {
                    let message = format!("Failed to create pod sandbox: {e}");
                    if self.sandbox_error.as_deref() != Some(message.as_str()) {
                        self.event(pod, true, "FailedCreatePodSandBox", message.clone()).await;
                    }
                    self.sandbox_error = Some(message);
                    self.report(pod).await;
                    return Duration::from_secs(5);
                }
            }
        }
        if self.volumes.is_none() {
            let pod_dir = self.k.runtime.pod_dir(&self.uid);
            match volumes::prepare(&self.k.client, pod, &pod_dir).await {
                Ok(v) => {
                    self.volumes = Some(v);
                    self.volume_waiting = None;
                }
                Err(VolumeError::Waiting(m) | VolumeError::Failed(m)) => {
                    let note = format!("Unable to attach or mount volumes: {m}");
                    if self.volume_waiting.as_deref() != Some(note.as_str()) {
                        self.event(pod, true, "FailedMount", note.clone()).await;
                    }
                    self.volume_waiting = Some(note);
                    self.report(pod).await;
                    return Duration::from_secs(1);
                }
            }
        }

        let spec = spec_of(pod);
        let policy = policy(pod);
        let mut wake = far;
        let mut initialized = true;
        for c in spec.init_containers.clone().unwrap_or_default() {
            let t = self.tracks.entry(c.name.clone()).or_default();
            if t.running {
                initialized = false;
                break;
            }
            match &t.current {
                Some(done) if done.exit_code == 0 => continue,
                Some(_) if policy == "Never" => {
                    initialized = false;
                    break;
                }
                _ => {}
            }
            initialized = false;
            if let Some(due) = self.due(&c.name) {
                wake = wake.min(due);
            } else {
                self.start(pod, &c, true).await;
                if let Some(due) = self.due(&c.name).filter(|_| !self.tracks[&c.name].running) {
                    wake = wake.min(due);
                }
            }
            break;
        }
        if initialized {
            for c in &spec.containers {
                let t = self.tracks.entry(c.name.clone()).or_default();
                if t.running {
                    continue;
                }
                if let Some(done) = &t.current
                    && !pod_status::should_restart(&policy, done.exit_code)
                {
                    continue;
                }
                if let Some(due) = self.due(&c.name) {
                    wake = wake.min(due);
                    continue;
                }
                self.start(pod, c, false).await;
                if let Some(due) = self.due(&c.name) {
                    wake = wake.min(due);
                }
            }
        }
        // A failed pull reads ErrImagePull once, then ImagePullBackOff while it waits.
        if self.tracks.values().any(|t| t.waiting.as_ref().is_some_and(|w| w.0 == "ErrImagePull")) {
            wake = wake.min(Duration::from_secs(1));
            self.report(pod).await;
            let spec = pod.spec.clone().unwrap_or_default();
            let image_of = |name: &str| {
                spec.init_containers
                    .iter()
                    .flatten()
                    .chain(&spec.containers)
                    .find(|c| c.name == name)
                    .and_then(|c| c.image.clone())
            };
            let mut backing_off = Vec::new();
            for (name, t) in self.tracks.iter_mut() {
                if let Some(w) = t.waiting.as_mut().filter(|w| w.0 == "ErrImagePull") {
                    // Kubelet's wording while a pull waits out its back-off.
                    w.0 = "ImagePullBackOff".into();
                    w.1 = format!("Back-off pulling image {:?}", image_of(name).unwrap_or_default());
                    backing_off.push(w.1.clone());
                }
            }
            for message in backing_off {
                self.event(pod, false, "BackOff", message).await;
            }
            return wake;
        }
        self.report(pod).await;
        wake.max(Duration::from_millis(10))
    }

    /// Time left before the container may start again, if it must wait.
    fn due(&self, name: &str) -> Option<Duration> {
        let t = self.tracks.get(name)?;
        let at = t.next_start?;
        let now = Instant::now();
        (at > now).then(|| at - now)
    }

    fn write_etc_files(&self, pod: &Pod, ip: Ipv4Addr) -> std::io::Result<()> {
        let dir = self.k.runtime.pod_dir(&self.uid).join("etc");
        std::fs::create_dir_all(&dir)?;
        let cfg = &self.k.config;
        std::fs::write(dir.join("hosts"), logic::container::hosts_file(pod, &ip.to_string(), &cfg.cluster_domain))?;
        std::fs::write(dir.join("hostname"), format!("{}\n", logic::container::hostname(pod)))?;
        std::fs::write(
            dir.join("resolv.conf"),
            logic::container::resolv_conf(pod, &cfg.cluster_dns, &cfg.cluster_domain, &cfg.host_resolv_conf),
        )
    }

    /// Start the next run of container `c`.
    async fn start(&mut self, pod: &Pod, c: &Container, _init: bool) {
        let name = c.name.clone();
        let image_name = c.image.clone().unwrap_or_default();
        let attempt = self.tracks.get(&name).and_then(|t| t.attempt).map(|a| a + 1).unwrap_or(0);
        // The image: pulled as the pull policy says.
        let Some(image) = self.ensure_image(pod, c, &image_name).await else { return };
        let image_config = match self.k.images.config(&image) {
            Ok(cfg) => cfg,
            Err(e) => {
                self.tracks.entry(name.clone()).or_default().waiting =
                    Some(("ErrImagePull".into(), format!("image {image_name}: {e}")));
                return;
            }
        };
        let layers = match self.k.images.unpack(&image) {
            Ok(l) => l,
            Err(e) => {
                self.tracks.entry(name.clone()).or_default().waiting =
                    Some(("CreateContainerError".into(), format!("unpack image {image_name}: {e}")));
                return;
            }
        };
        // The process: argv, env (with referenced config maps and secrets), user, directory.
        let facts = self.process_facts(pod, c).await;
        let defaults = logic::container::ImageDefaults {
            entrypoint: image_config.entrypoint.clone(),
            cmd: image_config.cmd.clone(),
            env: image_config.env.clone(),
            working_dir: image_config.working_dir.clone(),
            user: image_config.user.clone(),
        };
        let plan = match logic::container::process_plan(pod, c, &defaults, &facts) {
            Ok(plan) => plan,
            Err(e) => {
                let message = e.to_string();
                let t = self.tracks.entry(name.clone()).or_default();
                let changed = t.waiting.as_ref().map(|w| w.1.as_str()) != Some(message.as_str());
                t.waiting = Some(("CreateContainerConfigError".into(), message.clone()));
                t.next_start = Some(Instant::now() + Duration::from_secs(2));
                if changed {
                    self.event(pod, true, "Failed", format!("Error: {message}")).await;
                }
                return;
            }
        };
        let mounts = match self.mounts(c) {
            Ok(m) => m,
            Err(VolumeError::Waiting(m) | VolumeError::Failed(m)) => {
                self.tracks.entry(name.clone()).or_default().waiting = Some(("CreateContainerConfigError".into(), m));
                return;
            }
        };
        let cref = self.cref(&name, attempt);
        let request = StartRequest {
            container: cref.clone(),
            id: format!(
                "{}/{}/{}",
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone().unwrap_or_default(),
                name
            ),
            layers,
            mounts,
            process: rspec::Process {
                argv: plan.argv,
                env: plan.env,
                cwd: plan.working_dir,
                user: plan.user,
                stdin: c.stdin.unwrap_or(false),
                stdin_once: c.stdin_once.unwrap_or(false),
                tty: c.tty.unwrap_or(false),
            },
            limits: limits(c),
        };
        let began = Instant::now();
        let started = self.k.runtime.start(request).await;
        tracing::debug!(pod = %self.uid, container = %name, ms = began.elapsed().as_secs_f64() * 1000.0, "start");
        // Forget older runs; the one before this stays for `lastState`.
        if attempt >= 2 {
            self.k.runtime.remove_container(&self.cref(&name, attempt - 2)).await;
        }
        let t = self.tracks.entry(name.clone()).or_default();
        t.attempt = Some(attempt);
        t.last = t.current.take().or(t.last.take());
        t.waiting = None;
        t.next_start = None;
        t.ready = false;
        t.started = false;
        match (started, self.k.runtime.state(&cref)) {
            (Ok(()), ContainerState::Running { started_at_ns }) => {
                t.running = true;
                t.started_at = rfc3339_ns(started_at_ns);
                t.started = c.startup_probe.is_none();
                t.ready = c.readiness_probe.is_none() && t.started;
                self.event(pod, false, "Created", format!("Created container: {name}")).await;
                self.event(pod, false, "Started", format!("Started container {name}")).await;
                self.watch_container(&cref);
                self.start_probes(c, &cref);
                self.post_start(pod, c, &cref).await;
            }
            (_, ContainerState::Exited { record, started_at_ns, oom_killed, start_error }) => {
                // It ended at once (or never got going): treat as an exit.
                let done = terminated(&cref, record, started_at_ns, oom_killed, start_error);
                if done.reason == "StartError" {
                    self.event(pod, true, "Failed", format!("Error: {}", done.message)).await;
                }
                self.record_exit(&name, done);
            }
            (result, _) => {
                let message = match result {
                    Err(e) => e.to_string(),
                    Ok(()) => "the container vanished after starting".into(),
                };
                self.event(pod, true, "Failed", format!("Error: {message}")).await;
                let t = self.tracks.entry(name.clone()).or_default();
                t.waiting = Some(("CreateContainerError".into(), message));
                t.next_start = Some(Instant::now() + Duration::from_secs(5));
            }
        }
    }

    /// The container's image, pulled if the policy says so; None (and the waiting reason set)
    /// when it cannot be had yet.
    async fn ensure_image(&mut self, pod: &Pod, c: &Container, image_name: &str) -> Option<crate::image::Image> {
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| "IfNotPresent".into());
        let present = self.k.images.get(image_name).ok().flatten();
        let first_run = self.tracks.get(&c.name).and_then(|t| t.attempt).is_none();
        let pull = match policy.as_str() {
            "Always" => true,
            "Never" => false,
            _ => present.is_none(),
        };
        if !pull {
            return match present {
                Some(image) => {
                    if first_run {
                        let note = format!("Container image \"{image_name}\" already present on machine");
                        self.event(pod, false, "Pulled", note).await;
                    }
                    Some(image)
                }
                None => {
                    let message = format!("Container image \"{image_name}\" is not present with pull policy of Never");
                    self.image_failed(pod, c, "ErrImageNeverPull", message).await;
                    None
                }
            };
        }
        self.event(pod, false, "Pulling", format!("Pulling image \"{image_name}\"")).await;
        let waited = std::time::Instant::now();
        let kubelet = self.k.clone();
        let one_at_a_time = kubelet.pulls.lock().await;
        let started = std::time::Instant::now();
        let registries = crate::image::RegistryConfig::load(&kubelet.config.registries).unwrap_or_default();
        let pulled = kubelet.images.pull(image_name, &registries).await;
        drop(one_at_a_time);
        match pulled {
            Ok(image) => {
                let note = format!(
                    "Successfully pulled image \"{image_name}\" in {:.3}s ({:.3}s including waiting). Image size: {} bytes.",
                    started.elapsed().as_secs_f64(),
                    waited.elapsed().as_secs_f64(),
                    image.size
                );
                self.event(pod, false, "Pulled", note).await;
                if let Some(t) = self.tracks.get_mut(&c.name) {
                    t.pull_failures = 0;
                }
                Some(image)
            }
            Err(e) => {
                let message = format!("Failed to pull image \"{image_name}\": {e}");
                self.image_failed(pod, c, "ErrImagePull", message).await;
                None
            }
        }
    }

    /// Record an image failure: the waiting reason, an event, and back-off before the next try.
    async fn image_failed(&mut self, pod: &Pod, c: &Container, reason: &str, message: String) {
        let t = self.tracks.entry(c.name.clone()).or_default();
        t.pull_failures += 1;
        let changed = t.waiting.as_ref().map(|w| w.1.as_str()) != Some(message.as_str());
        t.waiting = Some((reason.to_string(), message.clone()));
        t.next_start = Some(Instant::now() + pod_status::backoff(t.pull_failures as i32 - 1));
        if changed {
            self.event(pod, true, "Failed", message).await;
        }
    }

    async fn process_facts(&self, pod: &Pod, c: &Container) -> logic::container::PodFacts {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let mut facts = logic::container::PodFacts {
            pod_ip: self.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            host_ip: self.k.config.host_ip.clone(),
            node_name: self.k.config.node_name.clone(),
            ..Default::default()
        };
        let cms: Api<ConfigMap> = Api::namespaced(self.k.client.clone(), &namespace);
        let secrets: Api<Secret> = Api::namespaced(self.k.client.clone(), &namespace);
        let mut cm_names: Vec<String> = Vec::new();
        let mut secret_names: Vec<String> = Vec::new();
        for var in c.env.iter().flatten() {
            if let Some(from) = &var.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    cm_names.push(r.name.clone());
                }
                if let Some(r) = &from.secret_key_ref {
                    secret_names.push(r.name.clone());
                }
            }
        }
        for source in c.env_from.iter().flatten() {
            if let Some(r) = &source.config_map_ref {
                cm_names.push(r.name.clone());
            }
            if let Some(r) = &source.secret_ref {
                secret_names.push(r.name.clone());
            }
        }
        for name in cm_names {
            if let Ok(Some(cm)) = cms.get_opt(&name).await {
                facts.config_maps.insert(format!("{namespace}/{name}"), cm.data.unwrap_or_default());
            }
        }
        for name in secret_names {
            if let Ok(Some(s)) = secrets.get_opt(&name).await {
                let data = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).to_string()))
                    .collect();
                facts.secrets.insert(format!("{namespace}/{name}"), data);
            }
        }
        facts
    }

    /// The container's binds: its volume mounts, then the pod's `/etc` files (as kubelet does).
    fn mounts(&self, c: &Container) -> Result<Vec<Mount>, VolumeError> {
        let empty = BTreeMap::new();
        let mut mounts = volumes::container_mounts(c, self.volumes.as_ref().unwrap_or(&empty))?;
        let etc = self.k.runtime.pod_dir(&self.uid).join("etc");
        for file in ["hosts", "hostname", "resolv.conf"] {
            if !mounts.iter().any(|m| m.target == format!("/etc/{file}")) {
                mounts.push(Mount {
                    kind: MountKind::Bind,
                    source: etc.join(file),
                    target: format!("/etc/{file}"),
                    read_only: false,
                });
            }
        }
        Ok(mounts)
    }

    /// Report when the run ends.
    fn watch_container(&self, cref: &ContainerRef) {
        let runtime = self.k.runtime.clone();
        let tx = self.tx.clone();
        let cref = cref.clone();
        tokio::spawn(async move {
            runtime.wait(&cref).await;
            let _ = tx.send(Happening::Exited(cref));
        });
    }

    fn start_probes(&mut self, c: &Container, cref: &ContainerRef) {
        let stop = CancellationToken::new();
        let ip = self.ip.map(|i| i.to_string()).unwrap_or_default();
        let (vtx, mut vrx) = mpsc::unbounded_channel();
        let (startup_tx, startup_rx) = watch::channel(None::<bool>);
        let mut any = false;
        for (kind, probe) in [
            (Kind::Startup, &c.startup_probe),
            (Kind::Readiness, &c.readiness_probe),
            (Kind::Liveness, &c.liveness_probe),
        ] {
            let Some(probe) = probe.clone() else { continue };
            any = true;
            let gated = kind != Kind::Startup && c.startup_probe.is_some();
            let runtime = self.k.runtime.clone();
            let (cref, spec, ip, vtx, stop) = (cref.clone(), c.clone(), ip.clone(), vtx.clone(), stop.clone());
            let mut started = startup_rx.clone();
            tokio::spawn(async move {
                // Liveness and readiness wait for the startup probe to succeed.
                if gated {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        outcome = started.wait_for(Option::is_some) => {
                            if !outcome.is_ok_and(|v| *v == Some(true)) {
                                return;
                            }
                        }
                    }
                }
                probe::run_prober(runtime, cref, spec, ip, kind, probe, vtx, stop).await;
            });
        }
        if !any {
            return;
        }
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(v) = vrx.recv().await {
                if tx.send(Happening::Verdict(v)).is_err() {
                    return;
                }
            }
        });
        if let Some(t) = self.tracks.get_mut(&c.name) {
            t.probes = Some(stop);
            t.startup = Some(startup_tx);
        }
    }

    async fn post_start(&mut self, pod: &Pod, c: &Container, cref: &ContainerRef) {
        let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.clone()) else { return };
        let ip = self.ip.map(|i| i.to_string()).unwrap_or_default();
        let action = if let Some(e) = &handler.exec {
            probe::Action::Exec(e)
        } else if let Some(h) = &handler.http_get {
            probe::Action::Http(h)
        } else if let Some(t) = &handler.tcp_socket {
            probe::Action::Tcp(t)
        } else {
            return;
        };
        let grace = Duration::from_secs(30);
        if let Err(message) = probe::run_action(self.k.runtime.as_ref(), cref, c, &ip, action, grace).await {
            self.event(pod, true, "FailedPostStartHook", format!("PostStartHook failed: {message}")).await;
            let _ = self.k.runtime.signal(cref, Signal::SIGKILL);
        }
    }

    fn record_exit(&mut self, name: &str, done: Terminated) {
        let Some(t) = self.tracks.get_mut(name) else { return };
        t.running = false;
        t.ready = false;
        t.started = false;
        if let Some(stop) = t.probes.take() {
            stop.cancel();
        }
        t.startup = None;
        // Kubelet restarts at once the first time, then after 10s, 20s, … up to 5 minutes.
        let restarts = t.attempt.unwrap_or(0) as i32;
        let delay = if restarts == 0 { Duration::ZERO } else { pod_status::backoff(restarts - 1) };
        t.next_start = Some(Instant::now() + delay);
        t.current = Some(done);
    }

    async fn happened(&mut self, pod: &Pod, h: Happening) {
        match h {
            Happening::Exited(cref) => {
                let current = self.tracks.get(&cref.name).and_then(|t| t.attempt);
                if current != Some(cref.attempt) {
                    return;
                }
                if let ContainerState::Exited { record, started_at_ns, oom_killed, start_error } =
                    self.k.runtime.state(&cref)
                {
                    let done = terminated(&cref, record, started_at_ns, oom_killed, start_error);
                    self.record_exit(&cref.name, done);
                    let policy = policy(pod);
                    let restarts = self.tracks.get(&cref.name).and_then(|t| t.attempt).unwrap_or(0);
                    let code = self.tracks.get(&cref.name).and_then(|t| t.current.as_ref()).map(|d| d.exit_code);
                    if restarts > 0 && code.is_some_and(|c| pod_status::should_restart(&policy, c)) {
                        let name = pod.metadata.name.clone().unwrap_or_default();
                        let ns = pod.metadata.namespace.clone().unwrap_or_default();
                        self.event(
                            pod,
                            true,
                            "BackOff",
                            format!(
                                "Back-off restarting failed container {} in pod {name}_{ns}({})",
                                cref.name, self.uid
                            ),
                        )
                        .await;
                    }
                }
            }
            Happening::Verdict(v) => {
                let current = self.tracks.get(&v.container.name).and_then(|t| t.attempt);
                if current != Some(v.container.attempt) {
                    return;
                }
                if !v.success {
                    let note = format!("{} probe failed: {}", v.kind.name(), v.message);
                    self.event(pod, true, "Unhealthy", note).await;
                }
                match (v.kind, v.success) {
                    (Kind::Readiness, ok) => {
                        if let Some(t) = self.tracks.get_mut(&v.container.name) {
                            t.ready = ok && t.running && t.started;
                        }
                    }
                    (Kind::Startup, true) => {
                        if let Some(t) = self.tracks.get_mut(&v.container.name) {
                            t.started = true;
                            let has_readiness = pod
                                .spec
                                .as_ref()
                                .and_then(|s| s.containers.iter().find(|c| c.name == v.container.name))
                                .is_some_and(|c| c.readiness_probe.is_some());
                            t.ready = !has_readiness;
                            if let Some(gate) = &t.startup {
                                let _ = gate.send(Some(true));
                            }
                        }
                    }
                    (kind, false) => {
                        // Liveness or startup failed: restart the container.
                        let what = if kind == Kind::Liveness { "liveness" } else { "startup" };
                        self.event(
                            pod,
                            false,
                            "Killing",
                            format!("Container {} failed {what} probe, will be restarted", v.container.name),
                        )
                        .await;
                        let grace = grace_seconds(pod, None);
                        let runtime = self.k.runtime.clone();
                        tokio::spawn(stop_container(runtime, v.container.clone(), Instant::now() + grace, None));
                    }
                    (Kind::Liveness, true) => {}
                }
            }
        }
    }

    /// The status now, written when it changed.
    async fn report(&mut self, pod: &Pod) {
        let spec = spec_of(pod);
        let initialized = spec
            .init_containers
            .iter()
            .flatten()
            .all(|c| self.tracks.get(&c.name).and_then(|t| t.current.as_ref()).is_some_and(|d| d.exit_code == 0));
        let init: Vec<ContainerView> =
            spec.init_containers.iter().flatten().map(|c| self.view(pod, c, "PodInitializing", true)).collect();
        let containers: Vec<ContainerView> = spec
            .containers
            .iter()
            .map(|c| self.view(pod, c, if initialized { "ContainerCreating" } else { "PodInitializing" }, false))
            .collect();
        let facts = pod_status::PodFacts {
            pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
            host_ip: self.k.config.host_ip.clone(),
            start_time: self.start_time.clone(),
            sandbox_ready: self.ip.is_some(),
        };
        let status = pod_status::pod_status(pod, &init, &containers, &facts, &now());
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> =
            Api::namespaced(self.k.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
        let name = pod.metadata.name.clone().unwrap_or_default();
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
            Ok(_) => self.last_status = Some(status),
            Err(e) => tracing::debug!(pod = %name, error = %e, "status update"),
        }
    }

    fn view(&self, pod: &Pod, c: &Container, not_started: &str, init: bool) -> ContainerView {
        let t = self.tracks.get(&c.name);
        let image_id = self
            .k
            .images
            .get(c.image.as_deref().unwrap_or_default())
            .ok()
            .flatten()
            .map(|i| format!("{}@{}", i.name, i.manifest))
            .unwrap_or_default();
        let mut view = ContainerView {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id,
            container_id: String::new(),
            restart_count: t.and_then(|t| t.attempt).unwrap_or(0) as i32,
            state: State::Waiting { reason: not_started.into(), message: String::new() },
            last: t.and_then(|t| t.last.clone()),
        };
        let Some(t) = t else { return view };
        if let Some(a) = t.attempt {
            view.container_id = container_id(&self.cref(&c.name, a));
        }
        let policy = policy(pod);
        if t.running {
            view.state = State::Running { started_at: t.started_at.clone(), ready: t.ready, started: t.started };
        } else if let Some((reason, message)) = &t.waiting {
            view.state = State::Waiting { reason: reason.clone(), message: message.clone() };
        } else if let Some(done) = &t.current {
            let restarts = pod_status::should_restart(&policy, done.exit_code) && !(init && done.exit_code == 0);
            if restarts && t.next_start.is_some_and(|at| at > Instant::now()) {
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let delay = pod_status::backoff(view.restart_count - 1);
                view.state = State::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: format!(
                        "back-off {}s restarting failed container={} pod={pod_name}_{ns}({})",
                        delay.as_secs(),
                        c.name,
                        self.uid
                    ),
                };
                view.last = Some(done.clone());
            } else if restarts {
                view.state = State::Waiting { reason: not_started.into(), message: String::new() };
                view.last = Some(done.clone());
            } else {
                view.state = State::Terminated(done.clone());
            }
        }
        view
    }

    /// Graceful termination of a deleted pod, then removal of the pod object.
    async fn terminate(&mut self, pod: &Pod) {
        let deadline = Instant::now() + grace_seconds(pod, pod.metadata.deletion_grace_period_seconds);
        let mut stopping = Vec::new();
        let spec = spec_of(pod);
        for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
            let Some(t) = self.tracks.get(&c.name) else { continue };
            let (true, Some(attempt)) = (t.running, t.attempt) else { continue };
            let cref = self.cref(&c.name, attempt);
            self.event(pod, false, "Killing", format!("Stopping container {}", c.name)).await;
            let pre_stop = c.lifecycle.as_ref().and_then(|l| l.pre_stop.clone()).map(|h| (h, c.clone(), self.ip));
            stopping.push(tokio::spawn(stop_container(self.k.runtime.clone(), cref, deadline, pre_stop)));
        }
        for s in stopping {
            let _ = s.await;
        }
        self.teardown(Some(pod)).await;
    }

    /// Stop whatever still runs, remove the sandbox, and delete the pod object if given.
    async fn teardown(&mut self, pod: Option<&Pod>) {
        for name in self.k.runtime.containers_of(&self.uid) {
            for attempt in self.k.runtime.attempts(&self.uid, &name) {
                let cref = self.cref(&name, attempt);
                if matches!(self.k.runtime.state(&cref), ContainerState::Running { .. }) {
                    let _ = self.k.runtime.signal(&cref, Signal::SIGKILL);
                    self.k.runtime.wait(&cref).await;
                }
            }
        }
        for t in self.tracks.values_mut() {
            if let Some(stop) = t.probes.take() {
                stop.cancel();
            }
        }
        if let Err(e) = self.k.runtime.remove_sandbox(&self.uid).await {
            tracing::warn!(pod = %self.uid, error = %e, "remove sandbox");
        }
        if let Some(pod) = pod {
            let api: Api<Pod> =
                Api::namespaced(self.k.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
            let name = pod.metadata.name.clone().unwrap_or_default();
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
                ..Default::default()
            };
            if let Err(e) = api.delete(&name, &params).await {
                tracing::debug!(pod = %name, error = %e, "final delete");
            }
        }
    }
}

fn grace_seconds(pod: &Pod, requested: Option<i64>) -> Duration {
    let secs =
        requested.or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds)).unwrap_or(30).max(0);
    Duration::from_secs(secs as u64)
}

/// preStop (within the grace period), SIGTERM, then SIGKILL at the deadline.
async fn stop_container<R: Runtime>(
    runtime: Arc<R>,
    cref: ContainerRef,
    deadline: Instant,
    pre_stop: Option<(k8s_openapi::api::core::v1::LifecycleHandler, Container, Option<Ipv4Addr>)>,
) {
    if let Some((handler, spec, ip)) = pre_stop {
        let ip = ip.map(|i| i.to_string()).unwrap_or_default();
        let left = deadline.saturating_duration_since(Instant::now());
        let action = if let Some(e) = &handler.exec {
            Some(probe::Action::Exec(e))
        } else if let Some(h) = &handler.http_get {
            Some(probe::Action::Http(h))
        } else {
            handler.tcp_socket.as_ref().map(probe::Action::Tcp)
        };
        if let Some(action) = action {
            let _ = probe::run_action(runtime.as_ref(), &cref, &spec, &ip, action, left).await;
        }
    }
    let _ = runtime.signal(&cref, Signal::SIGTERM);
    let left = deadline.saturating_duration_since(Instant::now());
    if tokio::time::timeout(left, runtime.wait(&cref)).await.is_err() {
        let _ = runtime.signal(&cref, Signal::SIGKILL);
        runtime.wait(&cref).await;
    }
}

fn terminated(
    cref: &ContainerRef,
    record: rspec::ExitRecord,
    started_at_ns: i128,
    oom_killed: bool,
    start_error: Option<String>,
) -> Terminated {
    let start_failed = start_error.is_some();
    Terminated {
        exit_code: record.exit_code,
        signal: record.signal,
        reason: Terminated::reason_for(record.exit_code, oom_killed, start_failed).into(),
        message: start_error.unwrap_or_default(),
        started_at: rfc3339_ns(started_at_ns),
        finished_at: rfc3339_ns(record.finished_at_ns),
        container_id: container_id(cref),
    }
}

/// `resources.limits` as cgroup limits.
fn limits(c: &Container) -> Limits {
    let limits = c.resources.as_ref().and_then(|r| r.limits.clone()).unwrap_or_default();
    let q = |name: &str| limits.get(name).and_then(|q| model::quantity::parse_quantity(&q.0).ok()).map(|q| q.millis());
    Limits {
        memory_bytes: q("memory").map(|m| (m / 1000).max(0) as u64),
        cpu_millis: q("cpu").map(|m| m.max(0) as u64),
        pids: None,
    }
}
