//! A kubelet double: marks pods Running and Ready so controllers can be tested and measured
//! without a node agent. Not used by `ordinal server`.

/// A kubelet double for controller tests and benchmarks (until the node agent exists): it watches pods and, while `auto_ready` is on, marks
/// every new pod Running and Ready through the status subresource. It records the order in
/// which it saw pods appear and disappear.
pub struct FakeKubelet {
    pub auto_ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeKubelet {
    pub fn start(client: kube::Client, namespace: &str) -> FakeKubelet {
        use futures::StreamExt;
        use k8s_openapi::api::core::v1::Pod;
        use kube::runtime::watcher;
        let auto_ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let api: kube::Api<Pod> = kube::Api::namespaced(client, namespace);
        let (ready, record) = (auto_ready.clone(), log.clone());
        let task = tokio::spawn(async move {
            let mut events = Box::pin(watcher(api.clone(), watcher::Config::default()));
            let mut seen: std::collections::BTreeMap<String, String> = Default::default();
            while let Some(Ok(event)) = events.next().await {
                let (pods, deleted) = match event {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (vec![p], false),
                    watcher::Event::Delete(p) => (vec![p], true),
                    _ => continue,
                };
                for pod in pods {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    if deleted {
                        seen.remove(&name);
                        if let Ok(mut l) = record.lock() {
                            l.push(format!("deleted {name}"));
                        }
                        continue;
                    }
                    if seen.get(&name) != Some(&uid) {
                        seen.insert(name.clone(), uid);
                        if let Ok(mut l) = record.lock() {
                            l.push(format!("created {name}"));
                        }
                    }
                    let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
                    if phase == "Pending" && ready.load(std::sync::atomic::Ordering::SeqCst) {
                        let _ = FakeKubelet::mark_ready(&api, &name).await;
                    }
                }
            }
        });
        FakeKubelet { auto_ready, log, task }
    }

    /// Mark one pod Running and Ready now.
    pub async fn mark_ready(api: &kube::Api<k8s_openapi::api::core::v1::Pod>, name: &str) -> kube::Result<()> {
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let status = serde_json::json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}});
        api.patch_status(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(status)).await.map(|_| ())
    }

    pub fn events(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}
