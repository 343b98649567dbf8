//! What every Kubernetes client in Ordinal shares, as client-go's `tools` packages: recording
//! events (`publish`), a watched reflector cache (`reflect`) and the cluster's Services and
//! EndpointSlices watched together (`ServiceWatch`). The controllers, the node agent, the
//! cluster DNS and the service proxy use these; keeping them here lets the agent, DNS and proxy
//! depend on them without linking every controller.

use tokio_util::sync::CancellationToken;

/// A reflected cache of `K` and the stream that keeps it current, poking `changed` on every
/// event (for the level-triggered passes of the scheduler-like controllers).
pub fn reflect<K>(
    api: kube::Api<K>,
    changed: std::sync::Arc<tokio::sync::Notify>,
) -> (kube::runtime::reflector::Store<K>, impl std::future::Future<Output = ()>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    reflect_with(api, Default::default(), changed)
}

/// `reflect` of the objects a watcher configuration selects (by label or field).
pub fn reflect_with<K>(
    api: kube::Api<K>,
    config: kube::runtime::watcher::Config,
    changed: std::sync::Arc<tokio::sync::Notify>,
) -> (kube::runtime::reflector::Store<K>, impl std::future::Future<Output = ()>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let (store, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector::reflector(writer, kube::runtime::watcher(api, config))
        .default_backoff()
        .for_each(move |_| {
            changed.notify_one();
            futures::future::ready(())
        });
    (store, stream)
}

/// A cache-driven controller's wait between passes: until a watched cache changes (`changed`)
/// or `resync` passes. `false` when the controller should stop instead: `shutdown`, or its
/// watches (`watches`) ended.
pub async fn next_pass(
    shutdown: &tokio_util::sync::CancellationToken,
    watches: std::pin::Pin<&mut impl std::future::Future>,
    changed: &tokio::sync::Notify,
    resync: std::time::Duration,
) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = watches => false,
        _ = changed.notified() => true,
        _ = tokio::time::sleep(resync) => true,
    }
}

/// An event whose action is its reason, as kubelet and the workload controllers report.
fn event(type_: kube::runtime::events::EventType, reason: &str, note: String) -> kube::runtime::events::Event {
    kube::runtime::events::Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    }
}

/// Record an event on `reference` (the action is the reason, as kubelet and the workload
/// controllers report); failing to record is logged, never fatal.
pub async fn publish(
    recorder: &kube::runtime::events::Recorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: kube::runtime::events::EventType,
    reason: &str,
    note: String,
) {
    if let Err(e) = recorder.publish(&event(type_, reason, note), reference).await {
        tracing::debug!(error = %e, reason, "record event");
    }
}

/// How many events may wait to be published; more are dropped (client-go's broadcaster keeps
/// 1000 and drops the rest too).
const EVENT_QUEUE: usize = 1000;

/// Events recorded without holding up the caller, as client-go's `EventRecorder` only queues
/// them for its broadcaster: one task publishes them in order (so `Created` comes before
/// `Started`), and ends once every clone of the queue is dropped and the queue is drained.
#[derive(Clone)]
pub struct EventQueue {
    tx: tokio::sync::mpsc::Sender<(k8s_openapi::api::core::v1::ObjectReference, kube::runtime::events::Event)>,
}

impl EventQueue {
    /// Start the publishing task (needs a tokio runtime).
    pub fn spawn(recorder: kube::runtime::events::Recorder) -> EventQueue {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(_, kube::runtime::events::Event)>(EVENT_QUEUE);
        tokio::spawn(async move {
            while let Some((reference, event)) = rx.recv().await {
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::debug!(error = %e, reason = %event.reason, "record event");
                }
            }
        });
        EventQueue { tx }
    }

    /// Queue an event on `reference`.
    pub fn publish(
        &self,
        reference: k8s_openapi::api::core::v1::ObjectReference,
        type_: kube::runtime::events::EventType,
        reason: &str,
        note: String,
    ) {
        if self.tx.try_send((reference, event(type_, reason, note))).is_err() {
            tracing::debug!(reason, "event queue full or closed: event dropped");
        }
    }
}

/// The cluster's Services and EndpointSlices, watched: what the cluster DNS and the service
/// proxy are built from.
pub struct ServiceWatch {
    services: kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Service>,
    slices: kube::runtime::reflector::Store<k8s_openapi::api::discovery::v1::EndpointSlice>,
    changed: std::sync::Arc<tokio::sync::Notify>,
    watches: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl ServiceWatch {
    pub fn new(client: kube::Client) -> ServiceWatch {
        let changed = std::sync::Arc::new(tokio::sync::Notify::new());
        let (services, w1) = reflect(kube::Api::all(client.clone()), changed.clone());
        let (slices, w2) = reflect(kube::Api::all(client), changed.clone());
        ServiceWatch {
            services,
            slices,
            changed,
            watches: Box::pin(async move {
                futures::future::join(w1, w2).await;
            }),
        }
    }

    /// The Services and EndpointSlices after their next change (watch-driven, no polling);
    /// `None` at shutdown or when the watches end.
    pub async fn changed(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Option<(Vec<k8s_openapi::api::core::v1::Service>, Vec<k8s_openapi::api::discovery::v1::EndpointSlice>)> {
        tokio::select! {
            _ = shutdown.cancelled() => None,
            _ = &mut self.watches => None,
            _ = self.changed.notified() => Some((
                self.services.state().iter().map(|s| (**s).clone()).collect(),
                self.slices.state().iter().map(|s| (**s).clone()).collect(),
            )),
        }
    }
}
