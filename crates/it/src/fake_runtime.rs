//! A container runtime in memory: the kubelet's pod worker driven without root, namespaces or
//! processes. Runs start at once (or end at once with a set exit code, for crash loops), end
//! when a test says so or when signalled, and `exec` (what exec probes and hooks run) succeeds
//! unless a test made that command fail. Like the real runtime, runs outlive a kubelet: a
//! kubelet started again over the same `FakeRuntime` finds them, as a restarted server does.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use agent::runtime::spec::ExitRecord;
use agent::runtime::{ContainerRef, ContainerState, Runtime, RuntimeError, StartRequest};

#[derive(Debug, Default)]
struct State {
    sandboxes: BTreeMap<String, Ipv4Addr>,
    /// (pod uid, container, attempt) → (started at, how it ended).
    runs: BTreeMap<(String, String, u32), (i128, Option<ExitRecord>)>,
    /// Containers (by name) whose runs end at once with this code.
    crash: BTreeMap<String, i32>,
    /// Commands (their last argument) that fail when executed in a container.
    failing: BTreeSet<String>,
    /// Every command executed, by its last argument.
    executed: BTreeMap<String, usize>,
}

#[derive(Debug)]
pub struct FakeRuntime {
    root: PathBuf,
    state: Mutex<State>,
    /// Bumped on every change of a run, for `wait`.
    changes: tokio::sync::watch::Sender<u64>,
}

fn now_ns() -> i128 {
    jiff::Timestamp::now().as_nanosecond()
}

fn key(c: &ContainerRef) -> (String, String, u32) {
    (c.pod_uid.clone(), c.name.clone(), c.attempt)
}

impl FakeRuntime {
    /// A runtime whose pod directories (checkpoints, `/etc` files, volumes) live under `root`.
    pub fn new(root: &Path) -> FakeRuntime {
        FakeRuntime { root: root.to_path_buf(), state: Mutex::default(), changes: tokio::sync::watch::channel(0).0 }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Runs of container `name` end at once with `code` from now on (None: they run).
    pub fn crash_on_start(&self, name: &str, code: Option<i32>) {
        self.with(|s| match code {
            Some(code) => s.crash.insert(name.to_string(), code),
            None => s.crash.remove(name),
        });
    }

    /// End the running runs of container `name` with `code`, as if its process exited.
    pub fn exit(&self, name: &str, code: i32) {
        self.with(|s| {
            for ((_, n, _), (_, exit)) in s.runs.iter_mut() {
                if n == name && exit.is_none() {
                    *exit = Some(ExitRecord { exit_code: code, signal: None, finished_at_ns: now_ns() });
                }
            }
        });
        self.changed();
    }

    /// Make `command` (a probe's or hook's last argument) fail or succeed from now on.
    pub fn set_failing(&self, command: &str, failing: bool) {
        self.with(|s| if failing { s.failing.insert(command.into()) } else { s.failing.remove(command) });
    }

    /// How many times `command` was executed in a container.
    pub fn executed(&self, command: &str) -> usize {
        self.with(|s| s.executed.get(command).copied().unwrap_or(0))
    }
}

impl Runtime for FakeRuntime {
    async fn create_sandbox(&self, pod_uid: &str, _hostname: &str) -> Result<Ipv4Addr, RuntimeError> {
        std::fs::create_dir_all(self.pod_dir(pod_uid))
            .map_err(|source| RuntimeError::Io { what: "create the pod directory".into(), source })?;
        Ok(self.with(|s| {
            let next = Ipv4Addr::new(10, 99, 0, s.sandboxes.len() as u8 + 2);
            *s.sandboxes.entry(pod_uid.to_string()).or_insert(next)
        }))
    }

    async fn remove_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        self.with(|s| {
            s.sandboxes.remove(pod_uid);
            s.runs.retain(|(uid, _, _), _| uid != pod_uid);
        });
        let _ = std::fs::remove_dir_all(self.pod_dir(pod_uid));
        self.changed();
        Ok(())
    }

    async fn start(&self, request: StartRequest) -> Result<(), RuntimeError> {
        let started = now_ns();
        self.with(|s| {
            let exit = s.crash.get(&request.container.name).map(|&exit_code| ExitRecord {
                exit_code,
                signal: None,
                finished_at_ns: started,
            });
            s.runs.insert(key(&request.container), (started, exit));
        });
        self.changed();
        Ok(())
    }

    async fn wait(&self, container: &ContainerRef) {
        let mut changes = self.changes.subscribe();
        loop {
            if !matches!(self.state(container), ContainerState::Running { .. }) {
                return;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    fn state(&self, container: &ContainerRef) -> ContainerState {
        self.with(|s| match s.runs.get(&key(container)) {
            None => ContainerState::Absent,
            Some((started_at_ns, None)) => ContainerState::Running { started_at_ns: *started_at_ns },
            Some((started_at_ns, Some(record))) => ContainerState::Exited {
                record: *record,
                started_at_ns: *started_at_ns,
                oom_killed: false,
                start_error: None,
            },
        })
    }

    fn signal(&self, container: &ContainerRef, signal: nix::sys::signal::Signal) -> Result<(), RuntimeError> {
        self.with(|s| {
            if let Some((_, exit @ None)) = s.runs.get_mut(&key(container)) {
                let sig = signal as i32;
                *exit = Some(ExitRecord { exit_code: 128 + sig, signal: Some(sig), finished_at_ns: now_ns() });
            }
        });
        self.changed();
        Ok(())
    }

    fn exec_command(&self, _container: &ContainerRef, argv: &[String], _tty: bool) -> tokio::process::Command {
        let command = argv.last().cloned().unwrap_or_default();
        let fails = self.with(|s| {
            *s.executed.entry(command.clone()).or_default() += 1;
            s.failing.contains(&command)
        });
        let mut sh = tokio::process::Command::new("sh");
        sh.args(["-c", if fails { "exit 1" } else { "exit 0" }]);
        sh
    }

    async fn attach(&self, _container: &ContainerRef) -> Result<tokio::net::UnixStream, RuntimeError> {
        Err(RuntimeError::Start("the fake runtime has no attach".into()))
    }

    fn log_path(&self, c: &ContainerRef) -> PathBuf {
        self.pod_dir(&c.pod_uid).join("logs").join(&c.name).join(format!("{}.log", c.attempt))
    }

    fn pods(&self) -> Vec<String> {
        self.with(|s| {
            let mut pods: BTreeSet<String> = s.sandboxes.keys().cloned().collect();
            pods.extend(s.runs.keys().map(|(uid, _, _)| uid.clone()));
            pods.into_iter().collect()
        })
    }

    fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.root.join(pod_uid)
    }

    fn containers_of(&self, pod_uid: &str) -> Vec<String> {
        self.with(|s| {
            let names: BTreeSet<String> =
                s.runs.keys().filter(|(uid, _, _)| uid == pod_uid).map(|(_, n, _)| n.clone()).collect();
            names.into_iter().collect()
        })
    }

    fn attempts(&self, pod_uid: &str, name: &str) -> Vec<u32> {
        self.with(|s| s.runs.keys().filter(|(uid, n, _)| uid == pod_uid && n == name).map(|(_, _, a)| *a).collect())
    }

    async fn remove_container(&self, container: &ContainerRef) {
        self.with(|s| s.runs.remove(&key(container)));
    }
}
