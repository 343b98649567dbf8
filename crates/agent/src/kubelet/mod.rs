//! The kubelet: watches the pods bound to this node and gives each a worker that makes the
//! runtime match the pod (sandbox, volumes, init containers in order, containers, restarts with
//! back-off, probes, graceful termination) and reports the pod's status as kubelet does.
//!
//! A worker observes, asks the pure `logic::kubelet` what to do and what the status says, and
//! acts. Containers outlive the server: on start each worker observes the runs it finds on disk
//! and the pod's checkpoint, and pods the API no longer has are torn down.

mod checkpoint;
mod probe;
pub mod streams;
mod volumes;
mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::image::ImageStore;
use crate::runtime::Runtime;

/// What the kubelet is told.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub node_name: String,
    pub cluster_domain: String,
    /// The nameserver pods with `ClusterFirst` get.
    pub cluster_dns: String,
    /// The node's address (`status.hostIP`).
    pub host_ip: String,
    /// The host's `/etc/resolv.conf` (for `dnsPolicy: Default`).
    pub host_resolv_conf: String,
    /// Registry mirrors and insecure registries (`registries.json`; may be absent).
    pub registries: std::path::PathBuf,
}

/// The kubelet's shared parts.
pub struct Kubelet<R: Runtime> {
    pub client: kube::Client,
    pub runtime: Arc<R>,
    pub images: ImageStore,
    pub config: KubeletConfig,
    /// Events go out in order without holding up the pod workers, as kubelet's do.
    events: client_tools::EventQueue,
    /// One pull at a time: concurrent pods of one image wait for the first pull.
    pulls: tokio::sync::Mutex<()>,
    /// Back-off and retry times (kubelet's, unless a test shortens them).
    timing: logic::kubelet::Timing,
}

impl<R: Runtime> Kubelet<R> {
    /// Needs a tokio runtime (the event queue's task).
    pub fn new(client: kube::Client, runtime: Arc<R>, images: ImageStore, config: KubeletConfig) -> Kubelet<R> {
        let reporter = Reporter { controller: "kubelet".into(), instance: Some(config.node_name.clone()) };
        let events = client_tools::EventQueue::spawn(Recorder::new(client.clone(), reporter));
        let timing = logic::kubelet::Timing::KUBELET;
        Kubelet { client, runtime, images, config, events, pulls: tokio::sync::Mutex::new(()), timing }
    }

    /// Other back-off and retry times (tests that watch a crash loop cannot wait minutes).
    pub fn with_timing(mut self, timing: logic::kubelet::Timing) -> Kubelet<R> {
        self.timing = timing;
        self
    }
}

/// Run until `shutdown`. Containers keep running when the kubelet stops.
pub async fn run<R: Runtime>(kubelet: Arc<Kubelet<R>>, shutdown: CancellationToken) {
    let pods: Api<Pod> = Api::all(kubelet.client.clone());
    let selector = format!("spec.nodeName={}", kubelet.config.node_name);
    let mut events = Box::pin(watcher(pods, watcher::Config::default().fields(&selector)));
    let tasks = TaskTracker::new();
    let mut workers: BTreeMap<String, watch::Sender<Option<Pod>>> = BTreeMap::new();
    let mut listing: Option<BTreeSet<String>> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = events.next() => e,
        };
        let Some(event) = event else { break };
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "kubelet pod watch");
                continue;
            }
        };
        match event {
            watcher::Event::Init => listing = Some(BTreeSet::new()),
            watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(seen) = listing.as_mut() {
                    seen.insert(uid.clone());
                }
                workers.retain(|_, tx| !tx.is_closed());
                match workers.get(&uid) {
                    Some(tx) => {
                        let _ = tx.send(Some(pod));
                    }
                    None => {
                        let (tx, rx) = watch::channel(Some(pod));
                        workers.insert(uid.clone(), tx);
                        tasks.spawn(worker::run(kubelet.clone(), uid, rx, shutdown.clone()));
                    }
                }
            }
            watcher::Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(tx) = workers.remove(&uid) {
                    let _ = tx.send(None);
                }
            }
            watcher::Event::InitDone => {
                // Pods this node still has but the API does not: stop and remove them.
                let known = listing.take().unwrap_or_default();
                for uid in kubelet.runtime.pods() {
                    if !known.contains(&uid) && !workers.contains_key(&uid) {
                        let (tx, rx) = watch::channel(None);
                        drop(tx);
                        tasks.spawn(worker::run(kubelet.clone(), uid, rx, shutdown.clone()));
                    }
                }
            }
        }
    }
    tasks.close();
    tasks.wait().await;
}
