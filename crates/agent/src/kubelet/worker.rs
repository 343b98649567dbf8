//! One pod's worker: observe, ask `logic::kubelet`, act.
//!
//! The worker keeps what the node observed of its pod (`PodObserved`: sandbox, volumes, each
//! container's runs, probe verdicts, back-off). Each sync asks `compute_pod_actions` what to do
//! now, takes those actions against the runtime (sandbox, volumes, kills, starts) and writes the
//! status that `container_statuses` and `pod_status` compute. Container exits and probe
//! verdicts arrive as they happen and update the observation; a deleted pod is stopped
//! gracefully and its object removed.
//!
//! Containers outlive the server. A new worker first observes from disk: the runs the runtime
//! has (their exit records and restart counts) and the pod's checkpoint (per container, the
//! image its run came from, whether its startup probe succeeded, the back-off), so a restarted
//! server decides as the one before it would have; the probes of the containers it finds
//! running start again (readiness is re-established by probing).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Api, Resource};
use logic::kubelet::{self as decide, Kill, PodObserved, Prerequisite, ProbeKind, Run, RunState, Start, Waiting};
use logic::pod_status::{self, Terminated, WaitingReason};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::checkpoint::{self, Checkpoint};
use super::probe::{self, Action, Prober, Verdict};
use super::volumes::{self, Prepared, VolumeError};
use super::{Kubelet, Runtime};
use crate::runtime::cgroup::Limits;
use crate::runtime::spec::{self as rspec, Mount, MountKind};
use crate::runtime::{ContainerRef, ContainerState, StartRequest};

/// The probers of one container run.
struct Probers {
    attempt: u32,
    /// Only the startup prober runs (readiness and liveness wait for it to succeed).
    startup_only: bool,
    stop: CancellationToken,
}

/// Why a container could not be started: its waiting reason and the message.
type StartFailure = (WaitingReason, String);

struct Worker<R: Runtime> {
    k: Arc<Kubelet<R>>,
    uid: String,
    observed: PodObserved,
    checkpoint: Checkpoint,
    ip: Option<Ipv4Addr>,
    volumes: BTreeMap<String, Prepared>,
    probers: BTreeMap<String, Probers>,
    /// When this worker first saw the pod (its `startTime` unless the status has one).
    first_seen: Timestamp,
    last_status: Option<Value>,
    exits: mpsc::UnboundedSender<ContainerRef>,
    verdicts: mpsc::UnboundedSender<Verdict>,
}

impl<R: Runtime> Drop for Worker<R> {
    fn drop(&mut self) {
        for p in self.probers.values() {
            p.stop.cancel();
        }
    }
}

fn timestamp(ns: i128) -> Timestamp {
    Timestamp::from_nanosecond(ns).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Entry point: one task per pod uid. `rx` carries the pod, or None once the API has no pod.
pub(super) async fn run<R: Runtime>(
    k: Arc<Kubelet<R>>,
    uid: String,
    mut rx: watch::Receiver<Option<Pod>>,
    shutdown: CancellationToken,
) {
    let (exits, mut exited) = mpsc::unbounded_channel();
    let (verdicts, mut probed) = mpsc::unbounded_channel();
    let mut w = Worker {
        k,
        uid,
        observed: PodObserved::default(),
        checkpoint: Checkpoint::default(),
        ip: None,
        volumes: BTreeMap::new(),
        probers: BTreeMap::new(),
        first_seen: Timestamp::now(),
        last_status: None,
        exits,
        verdicts,
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
        let due = async {
            match wake {
                Some(at) => tokio::time::sleep(at.duration_since(Timestamp::now()).unsigned_abs()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = rx.changed() => {
                if changed.is_err() {
                    // The kubelet is stopping; containers keep running.
                    return;
                }
            }
            Some(cref) = exited.recv() => w.exited(&cref),
            Some(verdict) = probed.recv() => w.probed(&pod, verdict).await,
            _ = due => {}
        }
    }
}

impl<R: Runtime> Worker<R> {
    fn cref(&self, name: &str, attempt: u32) -> ContainerRef {
        ContainerRef { pod_uid: self.uid.clone(), name: name.to_string(), attempt }
    }

    fn pod_dir(&self) -> std::path::PathBuf {
        self.k.runtime.pod_dir(&self.uid)
    }

    fn terminated(&self, cref: &ContainerRef, state: ContainerState) -> Option<Terminated> {
        let ContainerState::Exited { record, started_at_ns, oom_killed, start_error } = state else { return None };
        let start_failed = start_error.is_some();
        Some(Terminated {
            exit_code: record.exit_code,
            signal: record.signal,
            reason: Terminated::reason_for(record.exit_code, oom_killed, start_failed).into(),
            message: start_error.unwrap_or_default(),
            started_at: timestamp(started_at_ns),
            finished_at: timestamp(record.finished_at_ns),
            container_id: decide::container_id(&cref.pod_uid, &cref.name, cref.attempt),
        })
    }

    /// Observe from disk what a previous server left: each container's runs (containers
    /// outlive the server) and the pod's checkpoint.
    fn recover(&mut self, pod: &Pod) {
        self.checkpoint = Checkpoint::read(&self.pod_dir());
        let mut found = 0;
        for c in all_containers(pod) {
            let Some(&latest) = self.k.runtime.attempts(&self.uid, &c.name).last() else { continue };
            let saved = self.checkpoint.containers.get(&c.name).cloned().unwrap_or_default();
            let cref = self.cref(&c.name, latest);
            let previous = latest
                .checked_sub(1)
                .map(|a| self.cref(&c.name, a))
                .and_then(|p| self.terminated(&p, self.k.runtime.state(&p)));
            let this_run = saved.attempt == latest;
            let image = if this_run { saved.image.clone() } else { c.image.clone().unwrap_or_default() };
            let image_id = if this_run { saved.image_id.clone() } else { self.image_id(&image) };
            let state = match self.k.runtime.state(&cref) {
                ContainerState::Running { started_at_ns } => {
                    self.watch_container(&cref);
                    found += 1;
                    Some(RunState::Running { started_at: timestamp(started_at_ns) })
                }
                exited @ ContainerState::Exited { .. } => self.terminated(&cref, exited).map(RunState::Exited),
                ContainerState::Absent => None,
            };
            let o = self.observed.container_mut(&c.name);
            o.previous = previous;
            o.backoff = saved.backoff();
            o.latest = state.map(|state| Run { attempt: latest, image, image_id, state });
            // A startup probe that succeeded for this run stays succeeded.
            if this_run && saved.started {
                o.startup = Some(true);
            }
        }
        if found > 0 {
            tracing::info!(pod = %self.uid, running = found, "picked up running containers");
        }
    }

    fn event(&self, pod: &Pod, type_: EventType, reason: &str, note: String) {
        self.k.events.publish(pod.object_ref(&()), type_, reason, note);
    }

    /// Make the runtime match the pod, and refresh the tokens that are due; returns when the
    /// next sync is due (None: only when something happens).
    async fn sync(&mut self, pod: &Pod) -> Option<Timestamp> {
        if volumes::next_refresh(&self.volumes).is_some_and(|at| at <= Timestamp::now()) {
            volumes::refresh_due(&self.k.client, pod, &self.pod_dir(), &mut self.volumes, Timestamp::now()).await;
        }
        let refresh = volumes::next_refresh(&self.volumes);
        let wake = self.sync_containers(pod).await;
        match (wake, refresh) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn sync_containers(&mut self, pod: &Pod) -> Option<Timestamp> {
        loop {
            let now = Timestamp::now();
            let actions = decide::compute_pod_actions(pod, &self.observed, now, &self.k.timing);
            if actions.create_sandbox {
                self.create_sandbox(pod, now).await;
                continue;
            }
            if actions.mount_volumes {
                self.mount_volumes(pod, now).await;
                continue;
            }
            self.ensure_probers(pod);
            for kill in &actions.kill {
                self.kill(pod, kill).await;
            }
            for (name, waiting) in &actions.wait {
                self.wait(pod, name, waiting).await;
            }
            if actions.start.is_empty() {
                self.report(pod).await;
                return actions.wake_at;
            }
            for start in actions.start {
                self.start(pod, start).await;
            }
            // Decide again with what the starts changed (a start that failed waits; a container
            // that ended at once goes through its back-off).
        }
    }

    async fn create_sandbox(&mut self, pod: &Pod, now: Timestamp) {
        if let Some(why) = logic::security::sandbox_refusal(pod) {
            self.prerequisite_failed(pod, true, format!("Failed to create pod sandbox: {why}"), now).await;
            return;
        }
        let hostname = logic::container::hostname(pod);
        let began = Instant::now();
        let created = self.k.runtime.create_sandbox(&self.uid, &hostname).await;
        tracing::debug!(pod = %self.uid, ms = began.elapsed().as_secs_f64() * 1000.0, "sandbox");
        let result = created.map_err(|e| e.to_string()).and_then(|ip| {
            self.write_etc_files(pod, ip).map_err(|e| e.to_string())?;
            Ok(ip)
        });
        match result {
            Ok(ip) => {
                self.ip = Some(ip);
                self.observed.sandbox = Prerequisite::Ready;
            }
            Err(e) => {
                let message = format!("Failed to create pod sandbox: {e}");
                self.prerequisite_failed(pod, true, message, now).await;
            }
        }
    }

    async fn mount_volumes(&mut self, pod: &Pod, now: Timestamp) {
        match volumes::prepare(&self.k.client, pod, &self.pod_dir()).await {
            Ok(v) => {
                self.volumes = v;
                self.observed.volumes = Prerequisite::Ready;
            }
            Err(VolumeError::Waiting(m) | VolumeError::Failed(m)) => {
                let message = format!("Unable to attach or mount volumes: {m}");
                self.prerequisite_failed(pod, false, message, now).await;
            }
        }
    }

    /// Record a sandbox (or volume) failure, with an event when its message is new.
    async fn prerequisite_failed(&mut self, pod: &Pod, sandbox: bool, message: String, now: Timestamp) {
        let until = now.checked_add(self.k.timing.retry).unwrap_or(now);
        let slot = if sandbox { &mut self.observed.sandbox } else { &mut self.observed.volumes };
        let new = !matches!(slot, Prerequisite::Failed { message: m, .. } if *m == message);
        *slot = Prerequisite::Failed { message: message.clone(), until };
        if new {
            let reason = if sandbox { "FailedCreatePodSandBox" } else { "FailedMount" };
            self.event(pod, EventType::Warning, reason, message);
        }
    }

    async fn kill(&mut self, pod: &Pod, kill: &Kill) {
        let Some(run) = self.observed.container(&kill.name).and_then(|o| o.latest.clone()) else { return };
        self.event(pod, EventType::Normal, "Killing", kill.message.clone());
        self.observed.container_mut(&kill.name).stopping = true;
        self.stop_probers(&kill.name);
        let Some(spec) = container_spec(pod, &kill.name).cloned() else { return };
        let deadline = Instant::now() + decide::termination_grace(pod).unsigned_abs();
        let cref = self.cref(&kill.name, run.attempt);
        tokio::spawn(stop_container(self.k.runtime.clone(), cref, deadline, Some((spec, self.ip))));
    }

    async fn wait(&mut self, pod: &Pod, name: &str, waiting: &Waiting) {
        if !self.observed.container_mut(name).wait(waiting.clone()) {
            return;
        }
        match waiting.reason {
            WaitingReason::ImagePullBackOff => {
                self.event(pod, EventType::Normal, "BackOff", waiting.message.clone());
            }
            WaitingReason::CrashLoopBackOff => {
                let note = format!("Back-off restarting failed container {name} in pod {}", decide::format_pod(pod));
                self.event(pod, EventType::Warning, "BackOff", note);
            }
            _ => {}
        }
    }

    /// A start that did not happen: recorded (the status shows why), with an event when the
    /// message is new.
    async fn start_failed(&mut self, pod: &Pod, name: &str, (reason, message): StartFailure) {
        let o = self.observed.container_mut(name);
        let new = o.waiting.as_ref().map(|w| &w.message) != Some(&message);
        o.start_failed(reason, message.clone(), Timestamp::now(), &self.k.timing);
        if new {
            let note = if reason.is_pull_failure() { message } else { format!("Error: {message}") };
            self.event(pod, EventType::Warning, "Failed", note);
        }
    }

    /// Start the next run of a container.
    async fn start(&mut self, pod: &Pod, start: Start) {
        let Some(c) = container_spec(pod, &start.name).cloned() else { return };
        let name = start.name;
        // The back-off moves on with the decision to start (upstream `backOff.Next`).
        self.observed.container_mut(&name).backoff = start.backoff;
        let attempt = self.k.runtime.attempts(&self.uid, &name).last().map_or(0, |a| a + 1);
        let (request, image, image_id) = match self.prepare_start(pod, &c, attempt).await {
            Ok(prepared) => prepared,
            Err(failure) => {
                self.start_failed(pod, &name, failure).await;
                return;
            }
        };
        let cref = request.container.clone();
        let began = Instant::now();
        let started = self.k.runtime.start(request).await;
        tracing::debug!(pod = %self.uid, container = %name, ms = began.elapsed().as_secs_f64() * 1000.0, "start");
        // Forget older runs; the one before this stays for `lastState`.
        if attempt >= 2 {
            self.k.runtime.remove_container(&self.cref(&name, attempt - 2)).await;
        }
        let state = match (started, self.k.runtime.state(&cref)) {
            (Ok(()), ContainerState::Running { started_at_ns }) => {
                RunState::Running { started_at: timestamp(started_at_ns) }
            }
            (_, exited @ ContainerState::Exited { .. }) => match self.terminated(&cref, exited) {
                Some(done) => RunState::Exited(done),
                None => return,
            },
            (result, _) => {
                let message = match result {
                    Err(e) => e.to_string(),
                    Ok(()) => "the container vanished after starting".into(),
                };
                self.start_failed(pod, &name, (WaitingReason::CreateContainerError, message)).await;
                return;
            }
        };
        let mut saved =
            checkpoint::Container { attempt, image: image.clone(), image_id: image_id.clone(), ..Default::default() };
        saved.set_backoff(start.backoff);
        self.save_checkpoint(&name, saved);
        let running = matches!(state, RunState::Running { .. });
        if let RunState::Exited(done) = &state
            && done.reason == "StartError"
        {
            self.event(pod, EventType::Warning, "Failed", format!("Error: {}", done.message));
        }
        self.observed.container_mut(&name).started(Run { attempt, image, image_id, state });
        if running {
            self.event(pod, EventType::Normal, "Created", format!("Created container: {name}"));
            self.event(pod, EventType::Normal, "Started", format!("Started container {name}"));
            self.watch_container(&cref);
            self.post_start(pod, &c, &cref).await;
        }
    }

    /// Everything a start needs: the image (pulled as the policy says), its layers, the process
    /// and the mounts.
    async fn prepare_start(
        &mut self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
    ) -> Result<(StartRequest, String, String), StartFailure> {
        let image_name = c.image.clone().unwrap_or_default();
        let image = self.ensure_image(pod, c, &image_name).await?;
        let image_config = self
            .k
            .images
            .config(&image)
            .map_err(|e| (WaitingReason::ErrImagePull, format!("image {image_name}: {e}")))?;
        let layers = self
            .k
            .images
            .unpack(&image)
            .map_err(|e| (WaitingReason::CreateContainerError, format!("unpack image {image_name}: {e}")))?;
        // The process: argv, env (with referenced config maps and secrets), user, directory.
        let facts = self.process_facts(pod, c).await;
        let defaults = logic::container::ImageDefaults {
            entrypoint: image_config.entrypoint.clone(),
            cmd: image_config.cmd.clone(),
            env: image_config.env.clone(),
            working_dir: image_config.working_dir.clone(),
            user: image_config.user.clone(),
        };
        let plan = logic::container::process_plan(pod, c, &defaults, &facts)
            .map_err(|e| (WaitingReason::CreateContainerConfigError, e.to_string()))?;
        let mounts = self.mounts(c).map_err(|(VolumeError::Waiting(m) | VolumeError::Failed(m))| {
            (WaitingReason::CreateContainerConfigError, m)
        })?;
        let all_devices = plan.security.privileged;
        let request = StartRequest {
            container: self.cref(&c.name, attempt),
            id: format!(
                "{}/{}/{}",
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone().unwrap_or_default(),
                c.name
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
                security: plan.security,
            },
            limits: Limits { all_devices, ..limits(c) },
        };
        let image_id = format!("{}@{}", image.name, image.manifest);
        Ok((request, image_name, image_id))
    }

    fn image_id(&self, image_name: &str) -> String {
        match self.k.images.get(image_name) {
            Ok(Some(i)) => format!("{}@{}", i.name, i.manifest),
            _ => String::new(),
        }
    }

    fn save_checkpoint(&mut self, name: &str, container: checkpoint::Container) {
        self.checkpoint.containers.insert(name.to_string(), container);
        if let Err(e) = self.checkpoint.write(&self.pod_dir()) {
            tracing::warn!(pod = %self.uid, error = %e, "write the kubelet checkpoint");
        }
    }

    fn write_etc_files(&self, pod: &Pod, ip: Ipv4Addr) -> std::io::Result<()> {
        let dir = self.pod_dir().join("etc");
        std::fs::create_dir_all(&dir)?;
        let cfg = &self.k.config;
        std::fs::write(dir.join("hosts"), logic::container::hosts_file(pod, &ip.to_string(), &cfg.cluster_domain))?;
        std::fs::write(dir.join("hostname"), format!("{}\n", logic::container::hostname(pod)))?;
        std::fs::write(
            dir.join("resolv.conf"),
            logic::container::resolv_conf(pod, &cfg.cluster_dns, &cfg.cluster_domain, &cfg.host_resolv_conf),
        )
    }

    /// The container's image, pulled if the policy says so.
    async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
        image_name: &str,
    ) -> Result<crate::image::Image, StartFailure> {
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| "IfNotPresent".into());
        let present = self.k.images.get(image_name).ok().flatten();
        let pull = match policy.as_str() {
            "Always" => true,
            "Never" => false,
            _ => present.is_none(),
        };
        if !pull {
            let Some(image) = present else {
                let message = format!("Container image \"{image_name}\" is not present with pull policy of Never");
                return Err((WaitingReason::ErrImageNeverPull, message));
            };
            let first_run = self.observed.container(&c.name).is_none_or(|o| o.latest.is_none());
            if first_run {
                let note = format!("Container image \"{image_name}\" already present on machine");
                self.event(pod, EventType::Normal, "Pulled", note);
            }
            return Ok(image);
        }
        self.event(pod, EventType::Normal, "Pulling", format!("Pulling image \"{image_name}\""));
        let waited = Instant::now();
        let kubelet = self.k.clone();
        let one_at_a_time = kubelet.pulls.lock().await;
        let started = Instant::now();
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
                self.event(pod, EventType::Normal, "Pulled", note);
                Ok(image)
            }
            Err(e) => Err((WaitingReason::ErrImagePull, format!("Failed to pull image \"{image_name}\": {e}"))),
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
        let services: Api<Service> = Api::namespaced(self.k.client.clone(), &namespace);
        if pod.spec.as_ref().and_then(|s| s.enable_service_links) != Some(false)
            && let Ok(list) = services.list(&Default::default()).await
        {
            facts.services = list.items;
        }
        let listed_master = namespace == "default" && !facts.services.is_empty();
        if !listed_master
            && let Ok(Some(master)) =
                Api::<Service>::namespaced(self.k.client.clone(), "default").get_opt("kubernetes").await
        {
            facts.services.push(master);
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
        let mut mounts = volumes::container_mounts(c, &self.volumes)?;
        let etc = self.pod_dir().join("etc");
        for file in ["hosts", "hostname", "resolv.conf"] {
            if !mounts.iter().any(|m| m.target == format!("/etc/{file}")) {
                mounts.push(Mount {
                    kind: MountKind::Bind,
                    sub_path: None,
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
        let exits = self.exits.clone();
        let cref = cref.clone();
        tokio::spawn(async move {
            runtime.wait(&cref).await;
            let _ = exits.send(cref);
        });
    }

    /// Every running container has the probers its state calls for: the startup prober until
    /// that succeeds, then readiness and liveness. Recovered containers get theirs here too.
    fn ensure_probers(&mut self, pod: &Pod) {
        let Some(spec) = pod.spec.as_ref() else { return };
        for c in &spec.containers {
            let Some(o) = self.observed.container(&c.name) else { continue };
            let Some(Run { attempt, state: RunState::Running { started_at }, .. }) = &o.latest else { continue };
            if o.stopping {
                continue;
            }
            let startup_only = c.startup_probe.is_some() && o.startup != Some(true);
            let current = self.probers.get(&c.name);
            if current.is_some_and(|p| p.attempt == *attempt && p.startup_only == startup_only) {
                continue;
            }
            let (attempt, started_at) = (*attempt, *started_at);
            self.stop_probers(&c.name);
            let kinds: Vec<(ProbeKind, Option<&k8s_openapi::api::core::v1::Probe>)> = if startup_only {
                vec![(ProbeKind::Startup, c.startup_probe.as_ref())]
            } else {
                vec![
                    (ProbeKind::Readiness, c.readiness_probe.as_ref()),
                    (ProbeKind::Liveness, c.liveness_probe.as_ref()),
                ]
            };
            let stop = CancellationToken::new();
            for (kind, probe) in kinds {
                let Some(probe) = probe.cloned() else { continue };
                let prober = Prober {
                    runtime: self.k.runtime.clone(),
                    container: self.cref(&c.name, attempt),
                    spec: c.clone(),
                    pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
                    kind,
                    probe,
                    started_at,
                };
                tokio::spawn(prober.run(self.verdicts.clone(), stop.clone()));
            }
            self.probers.insert(c.name.clone(), Probers { attempt, startup_only, stop });
        }
    }

    fn stop_probers(&mut self, name: &str) {
        if let Some(p) = self.probers.remove(name) {
            p.stop.cancel();
        }
    }

    async fn post_start(&mut self, pod: &Pod, c: &Container, cref: &ContainerRef) {
        let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else { return };
        let Some(action) = Action::of_handler(handler) else { return };
        let ip = self.ip.map(|i| i.to_string()).unwrap_or_default();
        let grace = std::time::Duration::from_secs(30);
        if let Err(message) = probe::run_action(self.k.runtime.as_ref(), cref, c, &ip, action, grace).await {
            self.event(pod, EventType::Warning, "FailedPostStartHook", format!("PostStartHook failed: {message}"));
            let _ = self.k.runtime.signal(cref, Signal::SIGKILL);
        }
    }

    /// A container run ended.
    fn exited(&mut self, cref: &ContainerRef) {
        let latest = self.observed.container(&cref.name).and_then(|o| o.latest.as_ref()).map(|r| r.attempt);
        if latest != Some(cref.attempt) {
            return;
        }
        if let Some(done) = self.terminated(cref, self.k.runtime.state(cref)) {
            self.observed.container_mut(&cref.name).exited(done);
            self.stop_probers(&cref.name);
        }
    }

    /// A prober's verdict changed.
    async fn probed(&mut self, pod: &Pod, v: Verdict) {
        let o = self.observed.container(&v.container.name);
        let current = o.and_then(|o| o.latest.as_ref()).filter(|r| matches!(r.state, RunState::Running { .. }));
        if current.map(|r| r.attempt) != Some(v.container.attempt) {
            return;
        }
        if !v.success {
            let note = format!("{} probe failed: {}", v.kind.name(), v.message);
            self.event(pod, EventType::Warning, "Unhealthy", note);
        }
        self.observed.container_mut(&v.container.name).probed(v.kind, v.success);
        if v.kind == ProbeKind::Startup
            && v.success
            && let Some(mut saved) = self.checkpoint.containers.get(&v.container.name).cloned()
            && saved.attempt == v.container.attempt
        {
            saved.started = true;
            self.save_checkpoint(&v.container.name, saved);
        }
    }

    /// The status now, written when it changed.
    async fn report(&mut self, pod: &Pod) {
        let (init, containers) = decide::container_statuses(pod, &self.observed);
        let facts = pod_status::PodFacts {
            pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
            host_ip: self.k.config.host_ip.clone(),
            start_time: Some(self.first_seen),
            sandbox_ready: self.observed.sandbox == Prerequisite::Ready,
        };
        let status = pod_status::pod_status(pod, &init, &containers, &facts, Timestamp::now());
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

    /// Graceful termination of a deleted pod, then removal of the pod object.
    async fn terminate(&mut self, pod: &Pod) {
        let deadline = Instant::now() + decide::termination_grace(pod).unsigned_abs();
        let mut stopping = Vec::new();
        for c in all_containers(pod) {
            let Some(Run { attempt, state: RunState::Running { .. }, .. }) =
                self.observed.container(&c.name).and_then(|o| o.latest.clone())
            else {
                continue;
            };
            self.stop_probers(&c.name);
            self.event(pod, EventType::Normal, "Killing", format!("Stopping container {}", c.name));
            let cref = self.cref(&c.name, attempt);
            stopping.push(tokio::spawn(stop_container(
                self.k.runtime.clone(),
                cref,
                deadline,
                Some((c.clone(), self.ip)),
            )));
        }
        for s in stopping {
            let _ = s.await;
        }
        self.teardown(Some(pod)).await;
    }

    /// Stop whatever still runs, remove the sandbox, and delete the pod object if given.
    async fn teardown(&mut self, pod: Option<&Pod>) {
        for name in self.k.runtime.containers_of(&self.uid) {
            self.stop_probers(&name);
            for attempt in self.k.runtime.attempts(&self.uid, &name) {
                let cref = self.cref(&name, attempt);
                if matches!(self.k.runtime.state(&cref), ContainerState::Running { .. }) {
                    let _ = self.k.runtime.signal(&cref, Signal::SIGKILL);
                    self.k.runtime.wait(&cref).await;
                }
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

/// The pod's init containers, then its regular ones.
fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    let init = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or(&[]);
    let regular = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    init.iter().chain(regular)
}

fn container_spec<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    all_containers(pod).find(|c| c.name == name)
}

/// preStop (within the grace period), SIGTERM, then SIGKILL at the deadline.
async fn stop_container<R: Runtime>(
    runtime: Arc<R>,
    cref: ContainerRef,
    deadline: Instant,
    hook: Option<(Container, Option<Ipv4Addr>)>,
) {
    if let Some((spec, ip)) = hook
        && let Some(handler) = spec.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        && let Some(action) = Action::of_handler(handler)
    {
        let ip = ip.map(|i| i.to_string()).unwrap_or_default();
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = probe::run_action(runtime.as_ref(), &cref, &spec, &ip, action, left).await;
    }
    let _ = runtime.signal(&cref, Signal::SIGTERM);
    let left = deadline.saturating_duration_since(Instant::now());
    if tokio::time::timeout(left, runtime.wait(&cref)).await.is_err() {
        let _ = runtime.signal(&cref, Signal::SIGKILL);
        runtime.wait(&cref).await;
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
        all_devices: false,
    }
}
