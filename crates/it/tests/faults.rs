//! The fault suite: the real server, `kill -9`ed at random moments (a fixed seed) while a
//! StatefulSet with claims and readiness probes is created, scaled up, rolled, scaled down,
//! rolled again and deleted, and started again on the same data dir each time. It asserts:
//! - every rollout completes (status and pods as upstream's controller leaves them);
//! - at no moment do two live pods share an ordinal: on every pod event of a watch that
//!   lives across the restarts, the node's running containers are grouped by pod name and no
//!   name has runs of two pod uids, and the API's pods carry their own ordinal;
//! - a claim is only ever mounted by its own ordinal's pod (the pod refuses to start on
//!   another's data);
//! - no acknowledged write is lost (a stream of ConfigMap creates runs throughout);
//! - after teardown nothing is left: no mount, veth, kept namespace, cgroup or shim;
//! - a clean stop keeps pods running for the next start, and `--stop-pods-on-exit` removes
//!   every trace.
//!
//! `ORDINAL_FAULT_KILLS` (default 24) sets how many kills, `ORDINAL_FAULT_SEED` the seed. The
//! figures are printed as a JSON line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures::StreamExt;
use it::process::ServerProcess;
use it::{TEST_IMAGE, eventually};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const BRIDGE: &str = "ordflt0";
const POD_CIDR: &str = "10.251.0.0/24";
const SERVICE_CIDR: &str = "10.250.0.0/24";

fn manifest() -> (Service, StatefulSet) {
    let service = json!({"metadata": {"name": "web"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}});
    // The pod refuses to start on a claim another ordinal wrote to, and takes a second to stop
    // (so a pod that outlived its object would be seen beside its successor).
    let script = r#"owner=$(cat /data/owner 2>/dev/null); host=$(hostname)
if [ -n "$owner" ] && [ "$owner" != "$host" ]; then echo "claim of $owner mounted in $host"; exit 1; fi
echo "$host" > /data/owner; mkdir -p /www; echo "$VERSION" > /www/index.html
httpd -f -p 80 -h /www & server=$!
trap 'sleep 1; kill $server; exit 0' TERM
wait"#;
    let set = json!({"metadata": {"name": "web"}, "spec": {
        "serviceName": "web", "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "web", "image": TEST_IMAGE, "command": ["sh", "-c", script],
                "env": [{"name": "VERSION", "value": "1"}],
                "readinessProbe": {"httpGet": {"path": "/index.html", "port": 80}, "periodSeconds": 1},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Mi"}}}}]}});
    (serde_json::from_value(service).expect("service"), serde_json::from_value(set).expect("statefulset"))
}

/// Removes whatever the server's pods left, even when the test fails.
struct Cleanup(agent::runtime::NativeConfig);

impl Drop for Cleanup {
    fn drop(&mut self) {
        agent::runtime::Native::reset_blocking(&self.0);
        let route = ["route", "del", "local", SERVICE_CIDR, "dev", "lo", "table", "local"];
        let _ = std::process::Command::new("ip").args(route).output();
        it::remove_service_table(&self.0.bridge);
    }
}

/// What the watchers saw go wrong.
type Violations = Arc<Mutex<Vec<String>>>;

fn push(v: &Violations, what: String) {
    let mut v = v.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if v.len() < 50 && !v.contains(&what) {
        v.push(what);
    }
}

struct Suite {
    server: ServerProcess,
    client: kube::Client,
    rng: StdRng,
    kills: usize,
    /// Pod events seen so far (the kills aim at moments of change).
    pod_events: tokio::sync::watch::Receiver<u64>,
}

impl Suite {
    fn sets(&self) -> Api<StatefulSet> {
        Api::default_namespaced(self.client.clone())
    }

    fn pods(&self) -> Api<Pod> {
        Api::default_namespaced(self.client.clone())
    }

    /// Kill the server at a moment of change (after a few pod events, or a short while), and
    /// start it again; sometimes kill it again while it starts.
    async fn kill_somewhen(&mut self) -> anyhow::Result<()> {
        let events = self.rng.random_range(0..6u64);
        let wait = Duration::from_millis(self.rng.random_range(50..1500));
        let start = *self.pod_events.borrow();
        let mut seen = self.pod_events.clone();
        let _ = tokio::time::timeout(wait, seen.wait_for(|n| *n >= start + events)).await;
        self.server.kill9()?;
        self.kills += 1;
        self.server.restart()?;
        if self.rng.random_bool(0.25) {
            // While it recovers (opening the store, picking up pods).
            tokio::time::sleep(Duration::from_millis(self.rng.random_range(20..400))).await;
            self.server.kill9()?;
            self.kills += 1;
            self.server.restart()?;
        }
        self.server.client().await?;
        Ok(())
    }

    /// Retry `write` until the server acknowledges it (the server may be down a moment).
    async fn acknowledged<T, F, Fut>(&self, what: &str, mut write: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match write().await {
                Ok(v) => return Ok(v),
                // The server answered no: that is an answer.
                Err(kube::Error::Api(e)) if e.code < 500 => return Err(kube::Error::Api(e)).context(what.to_string()),
                Err(e) if Instant::now() > deadline => return Err(e).context(what.to_string()),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Create `object`; one that a kill hid the answer to exists already, which is as good.
    async fn create<K>(&self, api: Api<K>, object: K) -> anyhow::Result<()>
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        self.acknowledged(&format!("create {name}"), || async {
            match api.create(&PostParams::default(), &object).await {
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                other => other.map(drop),
            }
        })
        .await
    }

    async fn patch_set(&self, patch: serde_json::Value) -> anyhow::Result<()> {
        let (sets, params, patch) = (self.sets(), PatchParams::default(), Patch::Strategic(patch));
        self.acknowledged("patch the set", || sets.patch("web", &params, &patch)).await?;
        Ok(())
    }

    /// The set's rollout is complete at `replicas` and `version`: status as upstream leaves it,
    /// pods `web-0..n` Ready from the update revision and serving `version`.
    async fn rollout_complete(&self, replicas: i32, version: &str) -> anyhow::Result<()> {
        let (sets, pods) = (self.sets(), self.pods());
        eventually(&format!("rollout to {replicas} × v{version}"), Duration::from_secs(240), || async {
            let set = sets.get("web").await.ok()?;
            let spec_version =
                set.spec.as_ref()?.template.spec.as_ref()?.containers[0].env.as_ref()?[0].value.clone()?;
            let st = set.status.clone()?;
            let done = set.spec.as_ref()?.replicas == Some(replicas)
                && spec_version == version
                && st.observed_generation == set.metadata.generation
                && st.replicas == replicas
                && st.ready_replicas == Some(replicas)
                && st.updated_replicas == Some(replicas)
                && st.current_revision.is_some()
                && st.current_revision == st.update_revision;
            if !done {
                return None;
            }
            let list = pods.list(&Default::default()).await.ok()?.items;
            let names: BTreeSet<String> = list.iter().filter_map(|p| p.metadata.name.clone()).collect();
            let want: BTreeSet<String> = (0..replicas).map(|i| format!("web-{i}")).collect();
            let fresh = list.iter().all(|p| {
                logic::pod::is_ready(p)
                    && p.metadata.labels.as_ref().and_then(|l| l.get("controller-revision-hash"))
                        == st.update_revision.as_ref()
            });
            (names == want && fresh).then_some(())
        })
        .await
    }
}

impl Suite {
    /// The set's status and its pods, for a failure message.
    async fn describe(&self) -> String {
        let set = self.sets().get("web").await.ok();
        let mut out = format!("set status: {:?}\n", set.and_then(|s| s.status));
        for p in self.pods().list(&Default::default()).await.map(|l| l.items).unwrap_or_default() {
            let status = p.status.clone().unwrap_or_default();
            let c = status.container_statuses.as_ref().and_then(|c| c.first().cloned());
            out.push_str(&format!(
                "{} uid={} deleting={} phase={:?} ready={} rev={:?} restarts={:?} state={:?}\n",
                p.metadata.name.as_deref().unwrap_or_default(),
                p.metadata.uid.as_deref().unwrap_or_default(),
                p.metadata.deletion_timestamp.is_some(),
                status.phase,
                logic::pod::is_ready(&p),
                p.metadata.labels.as_ref().and_then(|l| l.get("controller-revision-hash")),
                c.as_ref().map(|c| c.restart_count),
                c.and_then(|c| c.state),
            ));
        }
        out + "server log:\n" + &self.server.log_tail()
    }
}

/// Watch pods across restarts; on every event, check that no ordinal has two live pods.
fn watch_pods(
    client: kube::Client,
    pods_dir: std::path::PathBuf,
    violations: Violations,
) -> (tokio::sync::watch::Receiver<u64>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::watch::channel(0u64);
    let api: Api<Pod> = Api::default_namespaced(client);
    let task = tokio::spawn(async move {
        let (store, writer) = kube::runtime::reflector::store();
        let stream = kube::runtime::reflector::reflector(writer, watcher(api, Default::default())).default_backoff();
        let mut stream = Box::pin(stream);
        while let Some(event) = stream.next().await {
            if event.is_err() {
                continue;
            }
            tx.send_modify(|n| *n += 1);
            // The API: each of the set's pods carries its own ordinal.
            for pod in store.state() {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let index = pod.metadata.labels.as_ref().and_then(|l| l.get("apps.kubernetes.io/pod-index")).cloned();
                if let Some(index) = index
                    && name != format!("web-{index}")
                {
                    push(&violations, format!("pod {name} carries ordinal {index}"));
                }
            }
            // The node: running containers of at most one pod uid per pod name.
            let mut uids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for shim in it::shims(&pods_dir) {
                let (Some(uid), Some(id)) = (shim.pod_uid(&pods_dir), shim.id()) else { continue };
                let pod = id.split('/').nth(1).unwrap_or_default().to_string();
                uids.entry(pod).or_default().insert(uid);
            }
            for (pod, uids) in uids.into_iter().filter(|(_, u)| u.len() > 1) {
                push(&violations, format!("two live pods named {pod} at once: {uids:?}"));
            }
        }
    });
    (rx, task)
}

/// Create ConfigMaps one after another for as long as the suite runs; the names acknowledged.
fn write_stream(client: kube::Client) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let list = acked.clone();
    let task = tokio::spawn(async move {
        let api: Api<ConfigMap> = Api::default_namespaced(client);
        let mut ticker = tokio::time::interval(Duration::from_millis(25));
        for i in 0u64.. {
            ticker.tick().await;
            let name = format!("ack-{i}");
            let cm: ConfigMap =
                match serde_json::from_value(json!({"metadata": {"name": name}, "data": {"i": i.to_string()}})) {
                    Ok(cm) => cm,
                    Err(_) => return,
                };
            if api.create(&PostParams::default(), &cm).await.is_ok() {
                list.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(name);
            }
        }
    });
    (acked, task)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_duplicates_nothing_and_leaks_nothing() -> anyhow::Result<()> {
    ensure!(nix::unistd::geteuid().is_root(), "this test runs containers and needs root");
    ensure!(Path::new("/bin/busybox").exists(), "apt-get install busybox-static");
    let began = Instant::now();
    let planned = env_number("ORDINAL_FAULT_KILLS", 24) as usize;
    let seed = env_number("ORDINAL_FAULT_SEED", 12);
    let scratch = tempfile::tempdir()?;
    let cwd = scratch.path().canonicalize()?;
    let data = ordinal::DataDir::create(cwd.join("data"))?;
    it::import_test_image(&data)?;
    let mut settings = ordinal::PodSettings::standard()?;
    settings.bridge = BRIDGE.into();
    settings.cgroup_parent = format!("ordinal-faults-{}", std::process::id());
    let native = settings.native_config(&data);
    let _cleanup = Cleanup(native.clone());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port().to_string();
    let data_arg = data.root().to_string_lossy().to_string();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "server",
        "--data-dir",
        &data_arg,
        "--listen",
        &listen,
        "--bridge",
        BRIDGE,
        "--pod-cidr",
        POD_CIDR,
        "--service-cidr",
        SERVICE_CIDR,
        "--cgroup-parent",
        &settings.cgroup_parent,
        "--dns-listen",
        "none",
    ];
    let mut server = ServerProcess::spawn(&cwd, &args, &data.kubeconfig())?;
    let client = server.client().await?;
    let violations: Violations = Arc::default();
    let (pod_events, watching) = watch_pods(client.clone(), data.pods(), violations.clone());
    let (acked, writing) = write_stream(client.clone());
    let mut suite = Suite { server, client: client.clone(), rng: StdRng::seed_from_u64(seed), kills: 0, pod_events };

    // (what the phase does, replicas and version it converges to)
    let phases: [(&str, serde_json::Value, i32, &str); 5] = [
        ("create", json!(null), 3, "1"),
        ("scale up", json!({"spec": {"replicas": 5}}), 5, "1"),
        (
            "roll",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "VERSION", "value": "2"}]}]}}}}),
            5,
            "2",
        ),
        ("scale down", json!({"spec": {"replicas": 2}}), 2, "2"),
        (
            "roll and scale up",
            json!({"spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "web", "env": [{"name": "VERSION", "value": "3"}]}]}}}}),
            4,
            "3",
        ),
    ];
    let per_phase = planned.div_ceil(phases.len() + 1);
    let mut rollouts = 0;
    for (what, patch, replicas, version) in phases {
        if patch.is_null() {
            let (service, set) = manifest();
            suite.create(Api::<Service>::default_namespaced(client.clone()), service).await?;
            suite.create(suite.sets(), set).await?;
        } else {
            // A patch to the values wanted: safe to repeat if a kill hides its answer.
            suite.patch_set(patch).await?;
        }
        for _ in 0..per_phase {
            suite.kill_somewhen().await?;
        }
        if let Err(e) = suite.rollout_complete(replicas, version).await {
            anyhow::bail!("phase {what}: {e}\n{}", suite.describe().await);
        }
        rollouts += 1;
    }

    // Teardown under kills: the set, its pods, then the claims and their volumes.
    let sets = suite.sets();
    suite
        .acknowledged("delete the set", || async {
            match sets.delete("web", &DeleteParams::default()).await {
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                other => other.map(drop),
            }
        })
        .await?;
    for _ in 0..per_phase.div_ceil(2) {
        suite.kill_somewhen().await?;
    }
    let pods = suite.pods();
    eventually("the set's pods gone", Duration::from_secs(120), || async {
        pods.list(&Default::default()).await.ok().filter(|l| l.items.is_empty()).map(drop)
    })
    .await?;
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    suite
        .acknowledged("delete the claims", || async {
            claims.delete_collection(&DeleteParams::default(), &Default::default()).await.map(drop)
        })
        .await?;
    for _ in 0..per_phase.div_ceil(2) {
        suite.kill_somewhen().await?;
    }
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    eventually("claims and volumes gone", Duration::from_secs(120), || async {
        let claims = claims.list(&Default::default()).await.ok()?.items;
        let volumes = volumes.list(&Default::default()).await.ok()?.items;
        let dirs = std::fs::read_dir(data.volumes()).map(|d| d.count()).unwrap_or(0);
        (claims.is_empty() && volumes.is_empty() && dirs == 0).then_some(())
    })
    .await?;
    let leaks = eventually("nothing of the pods left", Duration::from_secs(30), || async {
        it::leftovers(&native).is_empty().then_some(0)
    })
    .await
    .with_context(|| format!("left behind: {:?}", it::leftovers(&native)))?;

    // No acknowledged write was lost.
    writing.abort();
    let acked = acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let stored: BTreeSet<String> =
        cms.list(&Default::default()).await?.items.into_iter().filter_map(|c| c.metadata.name).collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !stored.contains(*n)).collect();
    ensure!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    watching.abort();
    let seen = violations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    ensure!(seen.is_empty(), "{seen:#?}");

    // A clean stop keeps pods running; the next start finds the same run.
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "survivor"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": TEST_IMAGE,
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]}]}}))?;
    pods.create(&PostParams::default(), &pod).await?;
    let before = it::pod_ready(&pods, "survivor", None).await?;
    let status = suite.server.terminate()?;
    ensure!(status.success(), "ordinal exited with {status}: {}", suite.server.log_tail());
    ensure!(!it::shims(&data.pods()).is_empty(), "the pod kept running after a clean stop");
    suite.server.restart()?;
    suite.server.client().await?;
    let after = eventually("survivor found again", Duration::from_secs(30), || async {
        let p = pods.get("survivor").await.ok()?;
        logic::pod::is_ready(&p).then_some(p)
    })
    .await?;
    let run = |p: &Pod| {
        let c = p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first().cloned());
        c.map(|c| (c.container_id, c.restart_count, c.state.and_then(|s| s.running).and_then(|r| r.started_at)))
    };
    ensure!(run(&before) == run(&after), "the same run, not restarted: {:?} vs {:?}", run(&before), run(&after));

    // A clean stop with --stop-pods-on-exit removes every trace.
    let mut with_stop = args.to_vec();
    with_stop.push("--stop-pods-on-exit");
    suite.server.restart_with(&with_stop)?;
    suite.server.client().await?;
    let status = suite.server.terminate()?;
    ensure!(status.success(), "ordinal exited with {status}: {}", suite.server.log_tail());
    let left = it::leftovers(&native);
    ensure!(left.is_empty(), "left behind by --stop-pods-on-exit: {left:?}");
    let bridge = std::process::Command::new("ip").args(["link", "show", BRIDGE]).output()?;
    ensure!(!bridge.status.success(), "bridge {BRIDGE} removed");
    ensure!(!it::service_route_present(ordinal::parse_cidr(SERVICE_CIDR)?), "service route removed");
    ensure!(it::service_table(BRIDGE).is_none(), "service table removed");

    println!(
        "{}",
        json!({"fault_suite": {"seed": seed, "kills": suite.kills, "rollouts_completed": rollouts,
            "duplicates_seen": 0, "leaks": leaks, "acknowledged_writes": acked.len(), "lost_writes": 0,
            "seconds": began.elapsed().as_secs()}})
    );
    Ok(())
}
