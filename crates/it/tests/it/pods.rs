//! Real pods, driven by real kubectl: the seed StatefulSet with the test image, stable identity
//! and per-pod network, readiness ordering, logs, exec and attach over both streaming protocols,
//! restarts and crash loops, OOM kills, graceful termination, restarts of the server, and
//! nothing left behind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use it::{TEST_IMAGE, TestServer, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;

const OLDEST: &str = "1.27";
const NEWEST: &str = "1.33";

fn seed_statefulset(replicas: u32) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: nginx
  labels: {{app: nginx}}
spec:
  ports: [{{port: 80, name: web}}]
  clusterIP: None
  selector: {{app: nginx}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: {replicas}
  selector:
    matchLabels: {{app: nginx}}
  template:
    metadata:
      labels: {{app: nginx}}
    spec:
      containers:
      - name: nginx
        image: {TEST_IMAGE}
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo serving $(hostname) && sleep 0.3 && exec httpd -f -p 80 -h /www"]
        ports: [{{containerPort: 80, name: web}}]
        readinessProbe:
          httpGet: {{path: /index.html, port: web}}
          periodSeconds: 1
"#
    )
}

fn pod_ip(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_statefulset_runs_real_pods_with_identity_network_and_order() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let (old, new) = (server.kubectl(OLDEST)?, server.kubectl(NEWEST)?);

    // Record, in order, which pods existed and whether they were ready.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<BTreeMap<String, bool>>::new()));
    let record = seen.clone();
    let watch_pods = pods.clone();
    let recorder = tokio::spawn(async move {
        let mut state: BTreeMap<String, bool> = BTreeMap::new();
        let mut events = Box::pin(watcher(watch_pods, watcher::Config::default()));
        while let Some(Ok(event)) = events.next().await {
            match event {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    state.insert(p.metadata.name.clone().unwrap_or_default(), logic::pod::is_ready(&p));
                }
                watcher::Event::Delete(p) => {
                    state.remove(&p.metadata.name.unwrap_or_default());
                }
                _ => continue,
            }
            if let Ok(mut s) = record.lock() {
                s.push(state.clone());
            }
        }
    });

    new.ok_stdin(&["apply", "-f", "-"], &seed_statefulset(3))?;
    new.ok(&["rollout", "status", "sts/web", "--timeout=90s"])?;
    recorder.abort();
    // OrderedReady: each pod appeared only once the one before it was Running and Ready.
    let history = seen.lock().map(|s| s.clone()).unwrap_or_default();
    for (earlier, later) in [("web-0", "web-1"), ("web-1", "web-2")] {
        let first = history.iter().find(|s| s.contains_key(later)).cloned().unwrap_or_default();
        assert_eq!(first.get(earlier), Some(&true), "{later} appeared before {earlier} was ready: {first:?}");
    }

    // Stable identity: the hostname is the pod name, with kubectl 1.27 (SPDY) and 1.33 (WebSocket).
    for (k, name) in [(&old, "web-0"), (&new, "web-1"), (&new, "web-2")] {
        assert_eq!(k.ok(&["exec", name, "--", "hostname"])?.trim(), name);
    }
    let out = new.ok(&["exec", "web-0", "--", "cat", "/etc/hosts"])?;
    assert!(out.contains("web-0.nginx.default.svc.cluster.local"), "{out}");
    let resolv = new.ok(&["exec", "web-0", "--", "cat", "/etc/resolv.conf"])?;
    assert!(resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{resolv}");
    assert!(resolv.contains("options ndots:5"), "{resolv}");

    // Pod traffic is kept on this machine: the bridge forwards (for the Services' DNAT from pod
    // to pod) only behind the guard's drop rule for every other interface (that it drops what
    // a pod sends beyond the machine is shown in crates/ordinal/tests/runtime.rs).
    let bridge = server.pod_bridge().unwrap_or_default();
    assert!(agent::runtime::network::uplink_guarded(&bridge));
    assert!(agent::runtime::network::guard_drops(&bridge).is_some(), "the guard's rule is in place");

    // Each pod has its own IP, and pods reach each other.
    let mut ips = Vec::new();
    for name in ["web-0", "web-1", "web-2"] {
        ips.push(pod_ip(&pods.get(name).await?));
    }
    assert!(ips.iter().all(|ip| !ip.is_empty()));
    assert_eq!(ips.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "{ips:?}");
    let fetch = format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc {} 80", ips[1]);
    let page = new.ok(&["exec", "web-0", "--", "sh", "-c", &fetch])?;
    assert!(page.contains("200 OK") && page.trim_end().ends_with("web-1"), "{page}");

    // The headless Service's Endpoints and EndpointSlice list the pods, with their hostnames.
    let eps: Api<k8s_openapi::api::core::v1::Endpoints> = Api::default_namespaced(server.client());
    let subsets = eventually("endpoints of nginx", Duration::from_secs(30), || async {
        let e = eps.get_opt("nginx").await.ok().flatten()?;
        let subsets = e.subsets?;
        (subsets.first()?.addresses.as_ref()?.len() == 3).then_some(subsets)
    })
    .await?;
    let mut hosts: Vec<String> = subsets[0].addresses.iter().flatten().filter_map(|a| a.hostname.clone()).collect();
    hosts.sort();
    assert_eq!(hosts, ["web-0", "web-1", "web-2"]);
    let slices = new.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=nginx", "--no-headers"])?;
    assert!(slices.starts_with("nginx-") && slices.contains("IPv4") && slices.contains("80"), "{slices}");

    // Cluster DNS: a pod's name under the headless Service resolves, short and in full.
    let answer = new.ok(&["exec", "web-0", "--", "nslookup", "web-1.nginx.default.svc.cluster.local"])?;
    assert!(answer.contains(&ips[1]), "{answer}");
    // The short name goes through the search list: ping's resolver applies it, busybox's
    // nslookup (1.35) sends the name as typed and the cluster DNS applies the asking pod's search
    // path (autopath), answering with a CNAME to the full name.
    let ping = new.run(&["exec", "web-0", "--", "ping", "-c", "1", "-W", "2", "web-1.nginx"])?;
    let ping_out = String::from_utf8_lossy(&ping.stdout).to_string() + &String::from_utf8_lossy(&ping.stderr);
    assert!(ping_out.contains(&format!("({})", ips[1])), "{ping_out}");
    for short in ["web-1.nginx", "web-1.nginx.default"] {
        let answer = new.ok(&["exec", "web-0", "--", "nslookup", short])?;
        assert!(answer.contains(&ips[1]) && answer.contains("web-1.nginx.default.svc.cluster.local"), "{answer}");
    }
    // Seed 004's session, typed into the one-off busybox shell: `kubectl run -i --tty … --rm`.
    let image = format!("--image={TEST_IMAGE}");
    let session = new.ok_stdin(
        &["run", "-i", "--tty", &image, "dns-test", "--restart=Never", "--rm", "--", "sh"],
        "nslookup web-0.nginx\nexit\n",
    )?;
    assert!(session.contains(&ips[0]), "{session}");
    let all = new.ok(&["exec", "web-0", "--", "nslookup", "nginx.default.svc.cluster.local"])?;
    assert!(ips.iter().all(|ip| all.contains(ip.as_str())), "{all}");
    let missing = new.run(&["exec", "web-0", "--", "nslookup", "nothing.default.svc.cluster.local"])?;
    assert!(String::from_utf8_lossy(&missing.stdout).contains("NXDOMAIN"), "{missing:?}");

    // Logs, and exec exit codes through both protocols.
    assert_eq!(new.ok(&["logs", "web-0"])?.trim(), "serving web-0");
    assert_eq!(
        old.ok(&["logs", "web-1", "--timestamps"])?.split_once(' ').map(|(_, l)| l.trim().to_string()),
        Some("serving web-1".into())
    );
    for k in [&old, &new] {
        let out = k.run(&["exec", "web-2", "--", "sh", "-c", "echo to-stderr >&2; exit 3"])?;
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stderr).contains("to-stderr"));
        assert_eq!(k.ok_stdin(&["exec", "-i", "web-2", "--", "cat"], "piped\n")?, "piped\n");
    }

    // A deleted pod comes back with the same name, a new uid and a new IP.
    let before = pods.get("web-1").await?;
    new.ok(&["delete", "pod", "web-1"])?;
    let after = it::pod_ready(&pods, "web-1", before.metadata.uid.as_deref()).await?;
    assert_ne!(pod_ip(&after), pod_ip(&before), "a recreated pod gets a fresh address");
    assert_eq!(new.ok(&["exec", "web-1", "--", "hostname"])?.trim(), "web-1");
    // Its stable name follows it to the new address.
    let fresh_ip = pod_ip(&after);
    eventually("web-1's name answers its new address", Duration::from_secs(20), || async {
        let out = new.ok(&["exec", "web-0", "--", "nslookup", "web-1.nginx.default.svc.cluster.local"]).ok()?;
        (out.contains(&fresh_ip) && !out.contains(&format!("{}\n", pod_ip(&before)))).then_some(())
    })
    .await?;

    new.ok(&["delete", "sts", "web"])?;
    eventually("pods gone", Duration::from_secs(60), || async {
        pods.list(&Default::default()).await.ok().filter(|l| l.items.is_empty())
    })
    .await?;
    server.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_crash_loops_oom_and_completion_read_as_kubectl_shows_them() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let new = server.kubectl(NEWEST)?;
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: crasher}}
spec:
  containers:
  - {{name: app, image: {TEST_IMAGE}, command: ["sh", "-c", "echo boom; exit 1"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: done}}
spec:
  restartPolicy: Never
  containers:
  - {{name: app, image: {TEST_IMAGE}, command: ["sh", "-c", "echo finished"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: failed}}
spec:
  restartPolicy: Never
  containers:
  - {{name: app, image: {TEST_IMAGE}, command: ["sh", "-c", "exit 2"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: hog}}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: {TEST_IMAGE}
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"]
    resources: {{limits: {{memory: 32Mi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: missing}}
spec:
  containers:
  - {{name: app, image: "localhost/not-imported:1"}}
"#
    );
    new.ok_stdin(&["apply", "-f", "-"], &manifest)?;
    let status = |name: &'static str| {
        let pods = pods.clone();
        async move { pods.get_opt(name).await.ok().flatten().and_then(|p| p.status) }
    };
    // Completed and Error, as kubectl prints them.
    eventually("done Succeeded, failed Failed", Duration::from_secs(30), || async {
        let a = status("done").await?.phase?;
        let b = status("failed").await?.phase?;
        (a == "Succeeded" && b == "Failed").then_some(())
    })
    .await?;
    let table = new.ok(&["get", "pods", "done", "failed", "--no-headers"])?;
    assert!(table.lines().any(|l| l.starts_with("done") && l.contains("Completed")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("failed") && l.contains("Error")), "{table}");
    assert_eq!(new.ok(&["logs", "done"])?, "finished\n");

    // The memory hog is OOM-killed by its cgroup.
    let hog = eventually("hog OOMKilled", Duration::from_secs(30), || async {
        let s = status("hog").await?;
        let t = s.container_statuses?.first()?.state.clone()?.terminated?;
        Some(t)
    })
    .await?;
    assert_eq!((hog.reason.as_deref(), hog.exit_code), (Some("OOMKilled"), 137));

    // A crashing container restarts at once, then backs off: CrashLoopBackOff.
    let crash = eventually("crasher in CrashLoopBackOff", Duration::from_secs(40), || async {
        let c = status("crasher").await?.container_statuses?.first()?.clone();
        let waiting = c.state.clone()?.waiting?;
        (waiting.reason.as_deref() == Some("CrashLoopBackOff")).then_some(c)
    })
    .await?;
    assert!(crash.restart_count >= 1);
    assert_eq!(crash.last_state.and_then(|s| s.terminated).map(|t| t.exit_code), Some(1));
    let table = new.ok(&["get", "pod", "crasher", "--no-headers"])?;
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    assert_eq!(new.ok(&["logs", "crasher", "--previous"])?, "boom\n");
    // The event is written after the status that shows the back-off: wait for it.
    eventually("a BackOff event for crasher", Duration::from_secs(20), || async {
        let events = new.ok(&["get", "events", "--field-selector", "involvedObject.name=crasher"]).ok()?;
        events.contains("BackOff").then_some(())
    })
    .await?;

    // An image that is not on the node: ErrImagePull, then ImagePullBackOff, with the reason.
    let waiting = eventually("missing image reported", Duration::from_secs(30), || async {
        let w = status("missing").await?.container_statuses?.first()?.state.clone()?.waiting?;
        w.reason.as_deref().is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff").then_some(w)
    })
    .await?;
    assert!(waiting.message.unwrap_or_default().contains("localhost/not-imported:1"));

    new.ok(&["delete", "pods", "--all"])?;
    server.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_is_graceful_and_run_it_rm_works_with_both_protocols() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let new = server.kubectl(NEWEST)?;
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: polite}}
spec:
  containers:
  - {{name: app, image: {TEST_IMAGE}, command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.05; done"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {{name: app, image: {TEST_IMAGE}, command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.05; done"]}}
"#
    );
    new.ok_stdin(&["apply", "-f", "-"], &manifest)?;
    it::pod_ready(&pods, "polite", None).await?;
    it::pod_ready(&pods, "stubborn", None).await?;
    // SIGTERM ends the polite one at once; the stubborn one is killed when its 2s are up.
    let started = Instant::now();
    new.ok(&["delete", "pod", "polite"])?;
    let polite = started.elapsed();
    let started = Instant::now();
    new.ok(&["delete", "pod", "stubborn"])?;
    let stubborn = started.elapsed();
    assert!(polite < Duration::from_secs(2), "polite pod took {polite:?}");
    assert!(stubborn >= Duration::from_secs(2) && stubborn < Duration::from_secs(8), "stubborn pod took {stubborn:?}");

    // `kubectl run -it --rm`: a terminal, typed commands, the exit code, the pod removed.
    for (version, code) in [(OLDEST, 0), (NEWEST, 3)] {
        let k = server.kubectl(version)?;
        let name = format!("t{}", version.replace('.', ""));
        let out = k.run_in_terminal(
            &["run", "-it", "--rm", "--restart=Never", &format!("--image={TEST_IMAGE}"), &name, "--", "sh"],
            &["echo inside-$(hostname)", &format!("exit {code}")],
        )?;
        assert_eq!(out.code, Some(code), "kubectl {version}: {}", out.text);
        assert!(out.text.contains(&format!("inside-{name}")), "kubectl {version}: {}", out.text);
        eventually("the run pod removed", Duration::from_secs(30), || async {
            pods.get_opt(&name).await.ok().and_then(|p| p.is_none().then_some(()))
        })
        .await?;
    }
    server.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_keep_running_across_a_server_restart() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let new = server.kubectl(NEWEST)?;
    new.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: keeper}}\nspec:\n  containers:\n  - {{name: app, image: {TEST_IMAGE}, command: [\"sh\", \"-c\", \"echo up; while true; do sleep 1; done\"]}}\n"
        ),
    )?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let before = it::pod_ready(&pods, "keeper", None).await?;
    let server = server.restart().await?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let new = server.kubectl(NEWEST)?;
    // Found again: same container, no restart, exec and logs still work.
    let after = it::pod_ready(&pods, "keeper", None).await?;
    let status = after.status.clone().unwrap_or_default();
    let container = status.container_statuses.unwrap_or_default().first().cloned().unwrap_or_default();
    assert_eq!(container.restart_count, 0);
    let started = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.clone())
    };
    assert_eq!(started(&after), started(&before), "the same run, not a new one");
    assert_eq!(pod_ip(&after), pod_ip(&before));
    assert_eq!(new.ok(&["exec", "keeper", "--", "hostname"])?.trim(), "keeper");
    assert_eq!(new.ok(&["logs", "keeper"])?, "up\n");
    new.ok(&["delete", "pod", "keeper", "--grace-period=1"])?;
    server.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_env_volumes_shared_namespaces_hooks_and_liveness() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let k = server.kubectl(NEWEST)?;
    let host_dir = server.dir.path().join("host-data");
    std::fs::create_dir_all(&host_dir)?;
    std::fs::write(host_dir.join("from-host"), "host file\n")?;
    let manifest = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{mode: fast, greeting: hello}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: s3cret}}
---
apiVersion: v1
kind: Pod
metadata:
  name: full
  labels: {{tier: demo}}
spec:
  initContainers:
  - name: prepare
    image: {TEST_IMAGE}
    command: ["sh", "-c", "echo prepared-by-init > /work/ready"]
    volumeMounts: [{{name: scratch, mountPath: /work}}]
  containers:
  - name: main
    image: {TEST_IMAGE}
    command: ["sh", "-c", "while true; do echo pong | nc -l -p 7000; done"]
    env:
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: MODE, valueFrom: {{configMapKeyRef: {{name: settings, key: mode}}}}}}
    - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
    - {{name: COMBINED, value: "$(POD_NAME)-$(MODE)"}}
    volumeMounts:
    - {{name: scratch, mountPath: /work}}
    - {{name: config, mountPath: /etc/settings}}
    - {{name: secret, mountPath: /etc/creds}}
    - {{name: host, mountPath: /host, readOnly: true}}
    - {{name: scratch, mountPath: /sub, subPath: nested}}
    - {{name: info, mountPath: /etc/podinfo}}
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "echo started > /work/post-start"]}}
  - name: sidecar
    image: {TEST_IMAGE}
    command: ["sh", "-c", "touch /tmp/alive; while true; do sleep 0.2; done"]
    volumeMounts: [{{name: scratch, mountPath: /shared}}]
    livenessProbe:
      # Fails only when the file goes (a loaded machine may take more than a second to exec).
      exec: {{command: ["cat", "/tmp/alive"]}}
      periodSeconds: 1
      timeoutSeconds: 10
      failureThreshold: 1
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: config, configMap: {{name: settings}}}}
  - {{name: secret, secret: {{secretName: creds}}}}
  - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
"#,
        host = host_dir.display()
    );
    k.ok_stdin(&["apply", "-f", "-"], &manifest)?;
    let pod = it::pod_ready(&pods, "full", None).await?;
    let sh = |container: &str, script: &str| -> anyhow::Result<String> {
        Ok(k.ok(&["exec", "full", "-c", container, "--", "sh", "-c", script])?.trim().to_string())
    };
    // The init container ran first, into the shared emptyDir; postStart ran too.
    assert_eq!(sh("main", "cat /work/ready")?, "prepared-by-init");
    assert_eq!(sh("sidecar", "cat /shared/post-start")?, "started");
    // Environment from the downward API, a config map, a secret and $(VAR) expansion.
    assert_eq!(sh("main", "echo $POD_NAME $MODE $PASSWORD $COMBINED")?, "full fast s3cret full-fast");
    assert_eq!(sh("main", "echo $POD_IP")?, pod_ip(&pod));
    // Volumes: config map and secret files, a read-only hostPath, a subPath, downward API files.
    assert_eq!(sh("main", "cat /etc/settings/greeting; echo; cat /etc/creds/password")?, "hello\ns3cret");
    assert_eq!(sh("main", "cat /host/from-host")?, "host file");
    let denied = k.run(&["exec", "full", "-c", "main", "--", "sh", "-c", "echo x > /host/new"])?;
    assert!(!denied.status.success(), "a readOnly mount refuses writes");
    sh("main", "echo deep > /sub/file")?;
    assert_eq!(sh("sidecar", "cat /shared/nested/file")?, "deep");
    assert_eq!(sh("main", "cat /etc/podinfo/labels")?, "tier=\"demo\"");
    // Containers of a pod share the network (and hostname): the sidecar reaches main on localhost.
    assert_eq!(sh("sidecar", "nc 127.0.0.1 7000 </dev/null")?, "pong");
    assert_eq!(sh("sidecar", "hostname")?, "full");
    // Each container has its own root: main's files are not in the sidecar.
    assert!(!k.run(&["exec", "full", "-c", "sidecar", "--", "ls", "/etc/settings"])?.status.success());

    // A failing liveness probe restarts the container (and only it).
    sh("sidecar", "rm /tmp/alive")?;
    let restarted = eventually("sidecar restarted by its liveness probe", Duration::from_secs(30), || async {
        let p = pods.get_opt("full").await.ok().flatten()?;
        let statuses = p.status?.container_statuses?;
        let sidecar = statuses.iter().find(|c| c.name == "sidecar")?;
        let main = statuses.iter().find(|c| c.name == "main")?;
        (sidecar.restart_count >= 1 && sidecar.ready && main.restart_count == 0).then_some(())
    })
    .await;
    restarted?;
    let events = k.ok(&["get", "events", "--field-selector", "involvedObject.name=full"])?;
    assert!(events.contains("Liveness probe failed"), "{events}");
    assert!(events.contains("failed liveness probe, will be restarted"), "{events}");

    k.ok(&["delete", "pod", "full", "--grace-period=1"])?;
    server.finish().await
}

/// `kubectl drain` on the one node: it cordons the node and evicts through `pods/eviction`,
/// which a PodDisruptionBudget (`minAvailable: 1` of seed 001's two replicas) lets through once
/// and then refuses, so the drain times out with the budget's message; `kubectl uncordon` lets
/// the evicted replica come back. Both kubectl versions, in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_evicts_within_the_disruption_budget_and_uncordon_brings_the_replica_back() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let all_ready = || async {
        let items = pods.list(&Default::default()).await.ok()?.items;
        (items.len() == 2 && items.iter().all(logic::pod::is_ready)).then_some(())
    };
    let k = server.kubectl("1.33")?;
    k.ok_stdin(&["apply", "-f", "-"], &seed_statefulset(2))?;
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\n\
         spec: {minAvailable: 1, selector: {matchLabels: {app: nginx}}}\n",
    )?;
    let node = k.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"])?;
    for version in ["1.27", "1.33"] {
        eventually("both replicas Ready", Duration::from_secs(60), all_ready).await?;
        eventually("the budget to allow one disruption", Duration::from_secs(30), || async {
            let pdb = k.ok(&["get", "pdb", "web", "-o", "jsonpath={.status.disruptionsAllowed}"]).ok()?;
            (pdb == "1").then_some(())
        })
        .await?;
        let k = server.kubectl(version)?;
        let drain = k.fails(&["drain", &node, "--ignore-daemonsets", "--timeout=5s"])?;
        assert!(drain.contains("Cannot evict pod as it would violate the pod's disruption budget"), "{drain}");
        assert_eq!(k.ok(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"])?, "true");
        // One replica was evicted; its successor waits for a schedulable node.
        let waiting = eventually("the evicted replica to wait", Duration::from_secs(30), || async {
            let items = pods.list(&Default::default()).await.ok()?.items;
            let pending: Vec<String> = items
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none())
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            (pending.len() == 1).then_some(pending)
        })
        .await?;
        assert!(waiting[0] == "web-0" || waiting[0] == "web-1", "{waiting:?}");
        k.ok(&["uncordon", &node])?;
    }
    eventually("both replicas Ready again", Duration::from_secs(60), all_ready).await?;
    server.stop().await;
    Ok(())
}

/// `kubectl port-forward` to a StatefulSet's pod, two ports at once — one served only on the
/// pod's own loopback, which only a forward made inside the pod's network namespace reaches —
/// with kubectl 1.27 (SPDY) and 1.33 (SPDY tunnelled in a WebSocket, `SPDY/3.1+portforward.k8s.io`);
/// a port nothing listens on fails, and kubectl ends saying so (as on any cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reaches_a_statefulset_pod_on_several_ports() -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let server = TestServer::with_pods().await?;
    let k = server.kubectl(NEWEST)?;
    k.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web}}
spec:
  serviceName: web
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: {TEST_IMAGE}
        command: ["sh", "-c", "mkdir -p /www /lo && hostname > /www/index.html && echo loopback only > /lo/index.html && httpd -p 127.0.0.1:8080 -h /lo && exec httpd -f -p 80 -h /www"]
        readinessProbe: {{tcpSocket: {{port: 80}}, periodSeconds: 1}}
"#
        ),
    )?;
    k.ok(&["rollout", "status", "statefulset/web", "--timeout=60s"])?;
    let get = |port: u16| -> anyhow::Result<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        Ok(reply)
    };
    for version in [OLDEST, NEWEST] {
        let kv = server.kubectl(version)?;
        let mut forward = kv.spawn(&["port-forward", "-v=6", "statefulset/web", ":80", ":8080", ":9"])?;
        let stdout = forward.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        // "Forwarding from 127.0.0.1:PORT -> 80", one line per port (and per address family).
        let mut local = BTreeMap::new();
        while local.len() < 3 {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:")
                && let Some((from, to)) = rest.split_once(" -> ")
            {
                local.insert(to.trim().to_string(), from.parse::<u16>()?);
            }
        }
        let (Some(&web), Some(&lo), Some(&closed)) = (local.get("80"), local.get("8080"), local.get("9")) else {
            let _ = forward.kill();
            anyhow::bail!("kubectl {version} port-forward printed {local:?}");
        };
        let first = match get(web) {
            Ok(f) => f,
            Err(e) => {
                let _ = forward.kill();
                let mut err = String::new();
                let _ = forward.stderr.take().map(|mut s| s.read_to_string(&mut err));
                anyhow::bail!("{version}: {e}: {err}");
            }
        };
        assert!(first.contains("200 OK") && first.trim_end().ends_with("web-0"), "{version}: {first}");
        assert!(get(lo)?.trim_end().ends_with("loopback only"), "{version}");
        assert!(get(web)?.contains("web-0"), "{version}: a second connection");
        // Nothing on port 9: that connection gets no reply, and kubectl (client-go closes the
        // whole forward on an error from the pod's side) ends, saying why.
        assert_eq!(get(closed).unwrap_or_default(), "", "{version}");
        forward.wait()?;
        let mut err = String::new();
        let _ = forward.stderr.take().map(|mut s| s.read_to_string(&mut err));
        assert!(err.contains("error forwarding port 9"), "{version}: {err}");
        if version == NEWEST {
            // 1.33 tunnels SPDY in a WebSocket (its -v=6 log shows the upgrade succeeding).
            assert!(err.contains("tunneling_dialer") && err.contains("/portforward\" status=\"101"), "{err}");
        }
    }
    // Other clients: the WebSocket channel protocol (the Python client's), both ports on one
    // socket, channel 2i for port i's data, opened with the port number.
    {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let token = std::fs::read_to_string(server.running_data_dir().pki().join("admin.token"))?;
        let tls = it::tls_connect(server.running.addr, server.running_data_dir()).await?;
        let url = format!(
            "wss://127.0.0.1:{}/api/v1/namespaces/default/pods/web-0/portforward?ports=80&ports=8080",
            server.running.addr.port()
        );
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("Authorization", format!("Bearer {}", token.trim()).parse()?);
        request.headers_mut().insert("Sec-WebSocket-Protocol", "v4.channel.k8s.io".parse()?);
        let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await?;
        let mut frames: Vec<(u8, Vec<u8>)> = Vec::new();
        for channel in [0u8, 2] {
            let mut get = vec![channel];
            get.extend_from_slice(b"GET /index.html HTTP/1.0\r\n\r\n");
            ws.send(Message::Binary(get.into())).await?;
        }
        let complete = |frames: &[(u8, Vec<u8>)]| {
            let text = |c: u8| -> String {
                frames
                    .iter()
                    .filter(|(ch, _)| *ch == c)
                    .skip(1)
                    .map(|(_, d)| String::from_utf8_lossy(d).to_string())
                    .collect()
            };
            text(0).contains("web-0") && text(2).contains("loopback only")
        };
        while !complete(&frames) {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) if !b.is_empty() => frames.push((b[0], b[1..].to_vec())),
                Ok(Some(Ok(_))) => {}
                other => anyhow::bail!("port-forward over v4.channel.k8s.io ended early: {other:?} after {frames:?}"),
            }
        }
        // Each channel began with its port, little-endian.
        let first = |c: u8| frames.iter().find(|(ch, _)| *ch == c).map(|(_, d)| d.clone());
        assert_eq!((first(0), first(2)), (Some(80u16.to_le_bytes().to_vec()), Some(8080u16.to_le_bytes().to_vec())));
        let _ = ws.close(None).await;
    }
    k.ok(&["delete", "statefulset", "web", "--wait=true"])?;
    server.stop().await;
    Ok(())
}

/// Exec for clients other than kubectl: the WebSocket subprotocols `v4.channel.k8s.io` (the
/// official Python client's), `v4.base64.channel.k8s.io` and `base64.channel.k8s.io` (text
/// frames), beside kubectl's v5 and SPDY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_speaks_the_older_websocket_subprotocols() -> anyhow::Result<()> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::with_pods().await?;
    let k = server.kubectl(NEWEST)?;
    k.ok(&["run", "shell", &format!("--image={TEST_IMAGE}"), "--", "sleep", "3600"])?;
    k.ok(&["wait", "--for=condition=Ready", "pod/shell", "--timeout=60s"])?;
    let token = std::fs::read_to_string(server.running_data_dir().pki().join("admin.token"))?;
    for protocol in ["v4.channel.k8s.io", "v4.base64.channel.k8s.io", "base64.channel.k8s.io"] {
        let tls = it::tls_connect(server.running.addr, server.running_data_dir()).await?;
        let url = format!(
            "wss://127.0.0.1:{}/api/v1/namespaces/default/pods/shell/exec?command=sh&command=-c&command=echo%20out%3B%20echo%20err%201%3E%262%3B%20exit%203&stdout=true&stderr=true",
            server.running.addr.port()
        );
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("Authorization", format!("Bearer {}", token.trim()).parse()?);
        request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse()?);
        let (mut ws, response) = tokio_tungstenite::client_async(request, tls).await?;
        assert_eq!(response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()), Some(protocol));
        let mut channels: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            let (channel, data) = match m {
                Message::Binary(b) if !b.is_empty() => (b[0], b[1..].to_vec()),
                Message::Text(t) if !t.is_empty() => {
                    let data = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &t.as_bytes()[1..])?;
                    (t.as_bytes()[0] - b'0', data)
                }
                Message::Close(_) => break,
                _ => continue,
            };
            channels.entry(channel).or_default().extend(data);
        }
        let _ = ws.close(None).await;
        let text = |c: u8| String::from_utf8_lossy(channels.get(&c).map(Vec::as_slice).unwrap_or_default()).to_string();
        assert_eq!((text(1).as_str(), text(2).as_str()), ("out\n", "err\n"), "{protocol}");
        let status: serde_json::Value = serde_json::from_str(&text(3))?;
        assert_eq!(status["details"]["causes"][0]["message"], "3", "{protocol}: {status}");
    }
    server.stop().await;
    Ok(())
}
