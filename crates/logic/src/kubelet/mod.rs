//! The kubelet's decisions, as upstream's runtime manager makes them (`computePodActions`,
//! `findNextInitContainerToRun`, `ShouldContainerBeRestarted`, `doBackOff`, the image puller's
//! back-off) and as its status manager reports containers (`convertToAPIContainerStatuses`).
//!
//! What the node observed of a pod (`PodObserved`: sandbox, volumes, each container's runs,
//! probe verdicts, back-off) and `now` go in; the actions of one sync (`PodActions`) and the
//! container statuses come out. The node agent's pod worker observes, asks, and acts; the
//! transitions of what it observed (`ContainerObserved::started`, `exited`, `start_failed`,
//! `probed`) live here too, so a restarted server that reads its observations back from disk
//! decides exactly as the one that wrote them.

pub mod backoff;
pub mod probe;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Container, Pod};

pub use self::backoff::{BackOff, BackOffPolicy, go_duration};
pub use self::probe::{ProbeCounter, ProbeKind, ProbeTiming};
use crate::pod_status::{ContainerView, State, Terminated, WaitingReason, should_restart};

/// How long the kubelet waits before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Crash loops and image pulls.
    pub backoff: BackOffPolicy,
    /// A sandbox, volumes or a container's configuration that could not be set up.
    pub retry: SignedDuration,
}

impl Timing {
    pub const KUBELET: Timing = Timing { backoff: BackOffPolicy::KUBELET, retry: SignedDuration::from_secs(2) };
}

/// One run of a container, as the node observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// 0 for the first run, one more per restart: the restart count.
    pub attempt: u32,
    /// The image the run was started from (a pod whose image changes restarts the container,
    /// as kubelet does when a container's hash changes).
    pub image: String,
    pub image_id: String,
    pub state: RunState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Running { started_at: Timestamp },
    Exited(Terminated),
}

/// Why a container that should run does not, and until when it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: WaitingReason,
    pub message: String,
    /// Not tried again before this.
    pub until: Timestamp,
}

/// Everything the node knows of one container of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerObserved {
    /// The latest run.
    pub latest: Option<Run>,
    /// How the run before it ended (`lastState` while the latest runs).
    pub previous: Option<Terminated>,
    /// The latest run's probe verdicts; None until its prober has one.
    pub startup: Option<bool>,
    pub readiness: Option<bool>,
    pub liveness: Option<bool>,
    /// Why it is not running although it should (a failed start, or a back-off).
    pub waiting: Option<Waiting>,
    /// The crash-loop back-off.
    pub backoff: BackOff,
    /// The image-pull back-off (kubelet keys it by pod and image; here by container).
    pub pull_backoff: BackOff,
    /// The latest run is being stopped (a kill was decided).
    pub stopping: bool,
}

impl ContainerObserved {
    /// A new run started (or a running one was found again).
    pub fn started(&mut self, run: Run) {
        if let Some(Run { state: RunState::Exited(done), .. }) = self.latest.take() {
            self.previous = Some(done);
        }
        self.latest = Some(run);
        self.reset_run_state();
    }

    /// The latest run ended.
    pub fn exited(&mut self, done: Terminated) {
        if let Some(run) = self.latest.as_mut() {
            run.state = RunState::Exited(done);
        }
        self.reset_run_state();
    }

    fn reset_run_state(&mut self) {
        self.startup = None;
        self.readiness = None;
        self.liveness = None;
        self.waiting = None;
        self.stopping = false;
    }

    /// A start that did not happen: image pulls back off exponentially, other failures are
    /// retried after `timing.retry`.
    pub fn start_failed(&mut self, reason: WaitingReason, message: String, now: Timestamp, timing: &Timing) {
        let until = if reason.is_pull_failure() {
            self.pull_backoff = self.pull_backoff.next(timing.backoff, now, now);
            self.pull_backoff.until(now)
        } else {
            now.checked_add(timing.retry).unwrap_or(now)
        };
        self.waiting = Some(Waiting { reason, message, until });
    }

    /// Record a decision to wait; true when the reason is new (worth an event).
    pub fn wait(&mut self, waiting: Waiting) -> bool {
        let new = self.waiting.as_ref().map(|w| w.reason) != Some(waiting.reason);
        self.waiting = Some(waiting);
        new
    }

    /// A prober of the latest run reached a verdict.
    pub fn probed(&mut self, kind: ProbeKind, verdict: bool) {
        match kind {
            ProbeKind::Startup => self.startup = Some(verdict),
            ProbeKind::Readiness => self.readiness = Some(verdict),
            ProbeKind::Liveness => self.liveness = Some(verdict),
        }
    }

    fn running(&self) -> bool {
        matches!(self.latest, Some(Run { state: RunState::Running { .. }, .. }))
    }

    fn exited_run(&self) -> Option<&Terminated> {
        match &self.latest {
            Some(Run { state: RunState::Exited(done), .. }) => Some(done),
            _ => None,
        }
    }
}

/// A pod-level step a sync needs before containers: the sandbox, then the volumes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Prerequisite {
    #[default]
    Missing,
    Ready,
    /// It failed; tried again at `until`.
    Failed {
        message: String,
        until: Timestamp,
    },
}

/// What the node observed of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodObserved {
    pub sandbox: Prerequisite,
    pub volumes: Prerequisite,
    pub containers: BTreeMap<String, ContainerObserved>,
}

impl PodObserved {
    pub fn container(&self, name: &str) -> Option<&ContainerObserved> {
        self.containers.get(name)
    }

    pub fn container_mut(&mut self, name: &str) -> &mut ContainerObserved {
        self.containers.entry(name.to_string()).or_default()
    }

    /// Some container's latest run is running.
    pub fn any_running(&self) -> bool {
        self.containers.values().any(ContainerObserved::running)
    }
}

/// Why a running container is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    LivenessProbe,
    StartupProbe,
    /// Its definition (the image) changed.
    DefinitionChanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub name: String,
    pub reason: KillReason,
    /// Kubelet's `Killing` event note.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub name: String,
    pub init: bool,
    /// The crash-loop back-off to keep from this start on (upstream `backOff.Next`).
    pub backoff: BackOff,
}

/// One sync's actions, in the order the worker takes them: the sandbox, the volumes, kills,
/// starts. A sync that needs a prerequisite asks for that alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    pub create_sandbox: bool,
    pub mount_volumes: bool,
    pub kill: Vec<Kill>,
    pub start: Vec<Start>,
    /// Containers that wait, and why (what their status shows).
    pub wait: Vec<(String, Waiting)>,
    /// When the next sync is due even if nothing happens.
    pub wake_at: Option<Timestamp>,
}

impl PodActions {
    fn wake(&mut self, at: Timestamp) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(crate::pod::phase(pod), "Succeeded" | "Failed")
}

/// The id kubelet reports for a container run.
pub fn container_id(pod_uid: &str, name: &str, attempt: u32) -> String {
    format!("ordinal://{pod_uid}-{name}-{attempt}")
}

/// Upstream `ShouldContainerBeRestarted`.
pub fn should_container_be_restarted(pod: &Pod, observed: Option<&ContainerObserved>) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    match observed.and_then(|o| o.latest.as_ref()) {
        None => true,
        Some(Run { state: RunState::Running { .. }, .. }) => false,
        Some(Run { state: RunState::Exited(done), .. }) => should_restart(restart_policy(pod), done.exit_code),
    }
}

/// Upstream `isInitContainerFailed`.
fn init_failed(done: &Terminated) -> bool {
    done.reason == "OOMKilled" || done.exit_code != 0
}

/// Where a pod's initialization stands (upstream `findNextInitContainerToRun`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitProgress<'a> {
    Done,
    /// An init container runs.
    Running,
    /// This one runs next; `failed` when it is the one that failed last.
    Next {
        container: &'a Container,
        failed: bool,
    },
}

pub fn init_progress<'a>(pod: &'a Pod, observed: &PodObserved) -> InitProgress<'a> {
    let Some(spec) = pod.spec.as_ref() else { return InitProgress::Done };
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    if init.is_empty() {
        return InitProgress::Done;
    }
    // A running regular container means initialization finished once, whatever is left of it.
    if spec.containers.iter().any(|c| observed.container(&c.name).is_some_and(ContainerObserved::running)) {
        return InitProgress::Done;
    }
    for c in init.iter().rev() {
        if observed.container(&c.name).and_then(ContainerObserved::exited_run).is_some_and(init_failed) {
            return InitProgress::Next { container: c, failed: true };
        }
    }
    for (i, c) in init.iter().enumerate().rev() {
        let Some(o) = observed.container(&c.name).filter(|o| o.latest.is_some()) else { continue };
        if o.running() {
            return InitProgress::Running;
        }
        return match init.get(i + 1) {
            None => InitProgress::Done,
            Some(next) => InitProgress::Next { container: next, failed: false },
        };
    }
    InitProgress::Next { container: &init[0], failed: false }
}

enum Pending {
    No,
    Now,
    Until(Timestamp),
}

fn pending(p: &Prerequisite, now: Timestamp) -> Pending {
    match p {
        Prerequisite::Ready => Pending::No,
        Prerequisite::Failed { until, .. } if *until > now => Pending::Until(*until),
        _ => Pending::Now,
    }
}

/// Upstream `computePodActions` (with `doBackOff` and the image puller's back-off folded in):
/// what one sync of `pod` does now.
pub fn compute_pod_actions(pod: &Pod, observed: &PodObserved, now: Timestamp, timing: &Timing) -> PodActions {
    let mut actions = PodActions::default();
    let Some(spec) = pod.spec.as_ref() else { return actions };
    if pod.metadata.deletion_timestamp.is_some() || (is_terminal(pod) && !observed.any_running()) {
        return actions;
    }
    for (prerequisite, is_sandbox) in [(&observed.sandbox, true), (&observed.volumes, false)] {
        match pending(prerequisite, now) {
            Pending::No => continue,
            Pending::Now if is_sandbox => actions.create_sandbox = true,
            Pending::Now => actions.mount_volumes = true,
            Pending::Until(at) => actions.wake(at),
        }
        return actions;
    }
    match init_progress(pod, observed) {
        InitProgress::Done => {}
        InitProgress::Running => return actions,
        InitProgress::Next { failed: true, .. } if restart_policy(pod) == "Never" => return actions,
        InitProgress::Next { container, .. } => {
            start_or_wait(pod, container, true, observed.container(&container.name), now, timing, &mut actions);
            return actions;
        }
    }
    let restart_on_failure = restart_policy(pod) != "Never";
    for c in &spec.containers {
        let o = observed.container(&c.name);
        match o.and_then(|o| o.latest.as_ref()) {
            Some(run @ Run { state: RunState::Running { .. }, .. }) => {
                let Some(o) = o.filter(|o| !o.stopping) else { continue };
                let image = c.image.as_deref().unwrap_or_default();
                let (reason, why) = if run.image != image {
                    (KillReason::DefinitionChanged, "definition changed")
                } else if o.liveness == Some(false) {
                    (KillReason::LivenessProbe, "failed liveness probe")
                } else if o.startup == Some(false) {
                    (KillReason::StartupProbe, "failed startup probe")
                } else {
                    continue;
                };
                // The run that follows the stop obeys the restart policy and back-off as any
                // exit does (upstream starts it in the same sync; the outcome is the same).
                let then = if restart_on_failure { ", will be restarted" } else { "" };
                let message = format!("Container {} {why}{then}", c.name);
                actions.kill.push(Kill { name: c.name.clone(), reason, message });
            }
            _ if should_container_be_restarted(pod, o) => start_or_wait(pod, c, false, o, now, timing, &mut actions),
            _ => {}
        }
    }
    actions
}

/// Start `c`, unless a failed start or the crash-loop back-off says to wait.
fn start_or_wait(
    pod: &Pod,
    c: &Container,
    init: bool,
    observed: Option<&ContainerObserved>,
    now: Timestamp,
    timing: &Timing,
    actions: &mut PodActions,
) {
    let default = ContainerObserved::default();
    let o = observed.unwrap_or(&default);
    if let Some(w) = o.waiting.as_ref().filter(|w| w.until > now) {
        let mut waiting = w.clone();
        if w.reason == WaitingReason::ErrImagePull {
            waiting.reason = WaitingReason::ImagePullBackOff;
            waiting.message = format!("Back-off pulling image {:?}", c.image.as_deref().unwrap_or_default());
        }
        actions.wake(waiting.until);
        actions.wait.push((c.name.clone(), waiting));
        return;
    }
    let Some(done) = o.exited_run() else {
        actions.start.push(Start { name: c.name.clone(), init, backoff: o.backoff });
        return;
    };
    if o.backoff.in_backoff_since(timing.backoff, done.finished_at, now) {
        let until = o.backoff.until(done.finished_at);
        let message = format!(
            "back-off {} restarting failed container={} pod={}",
            go_duration(o.backoff.delay),
            c.name,
            format_pod(pod)
        );
        actions.wake(until);
        actions.wait.push((c.name.clone(), Waiting { reason: WaitingReason::CrashLoopBackOff, message, until }));
        return;
    }
    let backoff = o.backoff.next(timing.backoff, done.finished_at, now);
    actions.start.push(Start { name: c.name.clone(), init, backoff });
}

/// Upstream `format.Pod`: `name_namespace(uid)`.
pub fn format_pod(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// The statuses kubelet reports for the pod's init and regular containers, from what the node
/// observed. A running container whose readiness has no verdict yet (its prober was started
/// again after a server restart) keeps the readiness the API last showed for that same run:
/// readiness is re-established by probing, and neither assumed nor dropped meanwhile.
pub fn container_statuses(pod: &Pod, observed: &PodObserved) -> (Vec<ContainerView>, Vec<ContainerView>) {
    let Some(spec) = pod.spec.as_ref() else { return (Vec::new(), Vec::new()) };
    let initialized = init_progress(pod, observed) == InitProgress::Done;
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| view(pod, c, observed.container(&c.name), true, WaitingReason::PodInitializing))
        .collect();
    let not_started = if initialized { WaitingReason::ContainerCreating } else { WaitingReason::PodInitializing };
    let regular =
        spec.containers.iter().map(|c| view(pod, c, observed.container(&c.name), false, not_started)).collect();
    (init, regular)
}

fn view(
    pod: &Pod,
    c: &Container,
    o: Option<&ContainerObserved>,
    init: bool,
    not_started: WaitingReason,
) -> ContainerView {
    let mut v = ContainerView {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        container_id: String::new(),
        restart_count: 0,
        state: State::Waiting { reason: not_started, message: String::new() },
        last: None,
    };
    let latest = o.and_then(|o| o.latest.as_ref());
    if latest.is_none()
        && let Some(done) = reported_terminated(pod, &c.name, init)
    {
        // Upstream keeps a terminated status the runtime no longer knows of.
        v.state = State::Terminated(done);
        return v;
    }
    let Some(o) = o else { return v };
    let waiting = o.waiting.as_ref().map(|w| State::Waiting { reason: w.reason, message: w.message.clone() });
    let Some(run) = latest else {
        v.state = waiting.unwrap_or(v.state);
        return v;
    };
    v.restart_count = i32::try_from(run.attempt).unwrap_or(i32::MAX);
    v.image_id = run.image_id.clone();
    v.container_id = container_id(pod.metadata.uid.as_deref().unwrap_or_default(), &c.name, run.attempt);
    match &run.state {
        RunState::Running { started_at } => {
            let started = c.startup_probe.is_none() || o.startup == Some(true);
            let ready = started
                && match (&c.readiness_probe, o.readiness) {
                    (None, _) => true,
                    (Some(_), Some(verdict)) => verdict,
                    (Some(_), None) => reported_ready(pod, &c.name, &v.container_id),
                };
            v.state = State::Running { started_at: *started_at, ready, started };
            v.last = o.previous.clone();
        }
        RunState::Exited(done) => {
            let restarts = should_container_be_restarted(pod, Some(o)) && (!init || init_failed(done));
            if restarts || waiting.is_some() {
                v.state = waiting.unwrap_or(v.state);
                v.last = Some(done.clone());
            } else {
                v.state = State::Terminated(done.clone());
                v.last = o.previous.clone();
            }
        }
    }
    v
}

/// The terminated state the pod's status shows for a container.
fn reported_terminated(pod: &Pod, name: &str, init: bool) -> Option<Terminated> {
    let status = pod.status.as_ref()?;
    let statuses = if init { status.init_container_statuses.as_ref() } else { status.container_statuses.as_ref() };
    let t = statuses?.iter().find(|s| s.name == name)?.state.as_ref()?.terminated.clone()?;
    let finished_at = t.finished_at.map(|f| f.0)?;
    Some(Terminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.unwrap_or_default(),
        message: t.message.unwrap_or_default(),
        started_at: t.started_at.map_or(finished_at, |s| s.0),
        finished_at,
        container_id: t.container_id.unwrap_or_default(),
    })
}

/// The readiness the pod's status shows for this run of the container.
fn reported_ready(pod: &Pod, name: &str, container_id: &str) -> bool {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    statuses.into_iter().flatten().any(|s| s.name == name && s.container_id.as_deref() == Some(container_id) && s.ready)
}

/// Kubelet's grace period for stopping a pod's containers: the deletion's, else the spec's,
/// else 30 s.
pub fn termination_grace(pod: &Pod) -> SignedDuration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    SignedDuration::from_secs(secs.max(0))
}

/// When the kubelet asks for a new projected service-account token (upstream's token manager,
/// `requiresRefresh`): once 80 % of its lifetime has passed, and at most a day after it was
/// issued, whatever lifetime it was given.
pub fn token_refresh_at(issued: Timestamp, expires: Timestamp) -> Timestamp {
    const MAX_AGE: SignedDuration = SignedDuration::from_hours(24);
    let lifetime = expires.duration_since(issued).max(SignedDuration::ZERO);
    let eighty = SignedDuration::from_millis(lifetime.as_millis() as i64 * 4 / 5);
    issued.saturating_add(eighty.min(MAX_AGE)).unwrap_or(expires)
}
