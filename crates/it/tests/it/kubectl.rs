//! End-to-end: the real kubectl (oldest and newest supported) against our server, through the
//! seeds' sessions. Each version gets its own server, HOME and KUBECONFIG.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use it::TestServer;

const PVS: &str = r#"---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: test-0
  labels:
    type: local
spec:
  capacity:
    storage: 1Gi
  accessModes:
    - ReadWriteOnce
  hostPath:
    path: "/mnt/test-0"
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: test-1
  labels:
    type: local
spec:
  capacity:
    storage: 1Gi
  accessModes:
    - ReadWriteOnce
  hostPath:
    path: "/mnt/test-1"
"#;

fn web_yaml(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  ports:
  - port: 80
    name: web
  clusterIP: None
  selector:
    app: nginx
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: "nginx"
  replicas: 2
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: {image}
        ports:
        - containerPort: 80
          name: web
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ "ReadWriteOnce" ]
      resources:
        requests:
          storage: 1Gi
"#
    )
}

/// Lines of a table output, whitespace-normalised.
fn rows(out: &str) -> Vec<String> {
    out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|l| !l.is_empty()).collect()
}

fn assert_contains(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "expected {needle:?} in:\n{haystack}");
}

async fn record_event(server: &TestServer) -> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let sts = kube::Api::<StatefulSet>::default_namespaced(server.client()).get("web").await?;
    let reporter = Reporter { controller: "statefulset-controller".into(), instance: None };
    let recorder = Recorder::new(server.client(), reporter);
    let event = Event {
        type_: EventType::Normal,
        reason: "SuccessfulCreate".into(),
        note: Some("create Pod web-0 in StatefulSet web successful".into()),
        action: "Create".into(),
        secondary: None,
    };
    recorder.publish(&event, &sts.object_ref(&())).await?;
    Ok(())
}

async fn seed_session(version: &str) -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let k = server.kubectl(version)?;

    let v = k.ok(&["version"])?;
    assert_contains(&v, "v1.33.0+ordinal");

    let resources = k.ok(&["api-resources"])?;
    let sts_row = rows(&resources).into_iter().find(|r| r.starts_with("statefulsets ")).unwrap_or_default();
    assert_eq!(sts_row, "statefulsets sts apps/v1 true StatefulSet");
    assert!(rows(&resources).iter().any(|r| r == "persistentvolumeclaims pvc v1 true PersistentVolumeClaim"));

    // Seed 002: static hostPath PVs.
    let out = k.ok_stdin(&["apply", "-f", "-"], PVS)?;
    assert_eq!(rows(&out), ["persistentvolume/test-0 created", "persistentvolume/test-1 created"]);
    let pv = rows(&k.ok(&["get", "pv"])?);
    assert!(pv[0].starts_with("NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS"), "{pv:?}");
    assert!(pv[1].starts_with("test-0 1Gi RWO Retain"), "{pv:?}");

    // The headless Service and the StatefulSet of the seeds.
    let out = k.ok_stdin(&["apply", "-f", "-"], &web_yaml("nginx:1.25"))?;
    assert_eq!(rows(&out), ["service/nginx created", "statefulset.apps/web created"]);
    let sts = rows(&k.ok(&["get", "sts"])?);
    assert_eq!(sts[0], "NAME READY AGE");
    assert!(sts[1].starts_with("web 0/2 "), "{sts:?}");
    let wide = rows(&k.ok(&["get", "sts", "-o", "wide"])?);
    assert_eq!(wide[0], "NAME READY AGE CONTAINERS IMAGES");
    assert!(wide[1].ends_with("nginx nginx:1.25"), "{wide:?}");
    let svc = rows(&k.ok(&["get", "svc", "nginx"])?);
    assert_eq!(svc[0], "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE");
    assert!(svc[1].starts_with("nginx ClusterIP None <none> 80/TCP"), "{svc:?}");
    let yaml = k.ok(&["get", "svc", "nginx", "-o", "yaml"])?;
    assert_contains(&yaml, "clusterIP: None");
    assert_eq!(k.ok(&["get", "sts", "-l", "app!=nginx", "-o", "name"])?.trim(), "statefulset.apps/web");
    assert_eq!(
        k.ok(&["get", "all", "-o", "name"])?.lines().filter(|l| l.starts_with("statefulset.apps/web")).count(),
        1
    );
    let policy = k.ok(&[
        "get",
        "sts",
        "web",
        "-o",
        "jsonpath={.spec.updateStrategy.type} {.spec.podManagementPolicy} {.metadata.generation}",
    ])?;
    assert_eq!(policy, "RollingUpdate OrderedReady 1");

    // Apply again: changed image → configured (strategic merge patch); unchanged → unchanged.
    let out = k.ok_stdin(&["apply", "-f", "-"], &web_yaml("nginx:1.26"))?;
    assert_eq!(rows(&out), ["service/nginx unchanged", "statefulset.apps/web configured"]);
    let image = k.ok(&[
        "get",
        "sts",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}",
    ])?;
    assert_eq!(image, "nginx:1.26 2");
    // As against kube-apiserver, the claim templates (an atomic list that the server defaults)
    // make kubectl send a patch again; the object itself does not change.
    let out = k.ok_stdin(&["apply", "-f", "-"], &web_yaml("nginx:1.26"))?;
    assert_eq!(rows(&out)[0], "service/nginx unchanged");
    assert_eq!(k.ok(&["get", "sts", "web", "-o", "jsonpath={.metadata.generation}"])?, "2");
    let out = k.ok_stdin(&["apply", "--server-side", "-f", "-"], &web_yaml("nginx:1.26"))?;
    assert_eq!(rows(&out), ["service/nginx serverside-applied", "statefulset.apps/web serverside-applied"]);

    // A controller records an event through events.k8s.io/v1; describe (core/v1) shows it.
    record_event(&server).await?;
    let described = k.ok(&["describe", "sts", "web"])?;
    let events = described.split("Events:").nth(1).unwrap_or_default();
    assert_contains(events, "SuccessfulCreate");
    assert_contains(events, "create Pod web-0 in StatefulSet web successful");
    assert_contains(events, "statefulset-controller");
    for needle in [
        "Name:",
        "web",
        "Namespace:",
        "default",
        "Selector:",
        "app=nginx",
        "Replicas:",
        "Update Strategy:",
        "RollingUpdate",
        "Volume Claims:",
    ] {
        assert_contains(&described, needle);
    }

    // scale, patch (three types), set image, annotate.
    assert_eq!(k.ok(&["scale", "sts", "web", "--replicas=3"])?.trim(), "statefulset.apps/web scaled");
    assert_eq!(k.ok(&["get", "sts", "web", "-o", "jsonpath={.spec.replicas}"])?, "3");
    assert_eq!(
        k.ok(&["patch", "sts", "web", "-p", r#"{"spec":{"replicas":2}}"#])?.trim(),
        "statefulset.apps/web patched"
    );
    k.ok(&["patch", "sts", "web", "--type=merge", "-p", r#"{"spec":{"minReadySeconds":5}}"#])?;
    k.ok(&["patch", "sts", "web", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#])?;
    assert_eq!(k.ok(&["get", "sts", "web", "-o", "jsonpath={.spec.replicas} {.spec.minReadySeconds}"])?, "4 5");
    assert_eq!(
        k.ok(&["set", "image", "statefulset/web", "nginx=nginx:1.27"])?.trim(),
        "statefulset.apps/web image updated"
    );
    k.ok(&["annotate", "sts", "web", "kubernetes.io/change-cause=upgrade to 1.27"])?;
    let annotation =
        k.ok(&["get", "sts", "web", "-o", r"jsonpath={.metadata.annotations.kubernetes\.io/change-cause}"])?;
    assert_eq!(annotation, "upgrade to 1.27");

    // Errors as kube-apiserver reports them.
    let err = k.fails(&["get", "sts", "nosuch"])?;
    assert_contains(&err, r#"Error from server (NotFound): statefulsets.apps "nosuch" not found"#);
    let err = k.fails(&["get", "widgets"])?;
    assert_contains(&err, "the server doesn't have a resource type \"widgets\"");
    let bad_selector = web_yaml("nginx")
        .replace("name: web\nspec:", "name: bad\nspec:")
        .replace("      labels:\n        app: nginx", "      labels:\n        app: other");
    let err = k.fails_stdin(&["apply", "-f", "-"], &bad_selector)?;
    assert_contains(&err, "is invalid");
    assert_contains(&err, "spec.template.metadata.labels");
    let typo = web_yaml("nginx").replace("name: web\nspec:", "name: typo\nspec:\n  replicaz: 3");
    let err = k.fails_stdin(&["apply", "-f", "-"], &typo)?;
    assert_contains(&err, "replicaz");
    let err = k.fails(&["scale", "sts", "web", "--replicas=-1"])?;
    assert!(!err.is_empty());

    // Pods: run, get, delete by name and by label.
    k.ok(&["run", "solo", "--image=busybox", "--restart=Never", "--labels=batch=one"])?;
    let pods = rows(&k.ok(&["get", "pods"])?);
    assert_eq!(pods[0], "NAME READY STATUS RESTARTS AGE");
    assert!(pods[1].starts_with("solo 0/1 Pending 0 "), "{pods:?}");
    let wide = rows(&k.ok(&["get", "pods", "-o", "wide"])?);
    assert_eq!(wide[0], "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES");
    assert_eq!(k.ok(&["delete", "pod", "solo"])?.trim(), r#"pod "solo" deleted"#);
    // Generator commands (kubectl 1.33 sends their bodies as protobuf).
    k.ok(&["create", "configmap", "one", "--from-literal=a=b"])?;
    assert_eq!(k.ok(&["get", "configmap", "one", "-o", "jsonpath={.data.a}"])?, "b");
    k.ok(&["create", "secret", "generic", "creds", "--from-literal=password=s3cret"])?;
    assert_eq!(k.ok(&["get", "secret", "creds", "-o", "jsonpath={.data.password} {.type}"])?, "czNjcmV0 Opaque");
    k.ok(&["create", "deployment", "mynginx", "--image=nginx:1.25", "--replicas=0", "--port=80"])?;
    let deploy = k.ok(&["get", "deployment", "mynginx", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].ports[0].protocol} {.spec.selector.matchLabels.app}"])?;
    assert_eq!(deploy, "0 TCP mynginx", "an explicit zero survives, defaults fill the rest");
    k.ok_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\ndata:\n  a: b\n")?;
    k.ok(&["label", "configmap", "one", "two", "sweep=yes"])?;
    let out = k.ok(&["delete", "configmap", "-l", "sweep=yes"])?;
    assert_eq!(rows(&out), [r#"configmap "one" deleted"#, r#"configmap "two" deleted"#]);

    // get -w prints new rows as they happen.
    let mut watch = k.spawn(&["get", "configmaps", "-w"])?;
    let stdout = watch.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Whether the watch starts before or after the create, the new row must show up.
    k.ok_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n")?;
    let mut seen = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        if line.starts_with("watched ") {
            seen = true;
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(seen, "get -w showed the new configmap");

    let explained = k.ok(&["explain", "statefulset.spec"])?;
    assert_contains(&explained, "serviceName");

    let out = k.ok_stdin(&["delete", "-f", "-"], &web_yaml("nginx"))?;
    assert_eq!(rows(&out), [r#"service "nginx" deleted"#, r#"statefulset.apps "web" deleted"#]);
    let err = k.fails(&["get", "sts", "web"])?;
    assert_contains(&err, "NotFound");

    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_seed_session() -> anyhow::Result<()> {
    seed_session("1.27").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_seed_session() -> anyhow::Result<()> {
    seed_session("1.33").await
}

/// The local APIServices kube-apiserver registers, one per served group version, as
/// `kubectl get apiservices` shows them in both kubectl versions; a malformed one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiservices_list_every_served_group_version_as_local_and_available() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    for version in ["1.27", "1.33"] {
        let k = server.kubectl(version)?;
        let listed = rows(&k.ok(&["get", "apiservices"])?);
        assert_eq!(listed[0], "NAME SERVICE AVAILABLE AGE", "{listed:?}");
        for name in ["v1.", "v1.apps", "v1.apiregistration.k8s.io", "v1.storage.k8s.io", "v1.events.k8s.io"] {
            assert!(listed.iter().any(|r| r.starts_with(&format!("{name} Local True "))), "{name}: {listed:?}");
        }
        let priority = k.ok(&["get", "apiservice", "v1.apps", "-o", "jsonpath={.spec.groupPriorityMinimum}"])?;
        assert_eq!(priority.trim(), "17800");
    }
    let k = server.kubectl("1.33")?;
    let refused = k.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1beta1.metrics.k8s.io}\n\
         spec: {group: metrics.k8s.io, version: v1, groupPriorityMinimum: 100, versionPriority: 100}\n",
    )?;
    assert!(!refused.status.success());
    assert_contains(&String::from_utf8_lossy(&refused.stderr), "must be v1.metrics.k8s.io");
    server.stop().await;
    Ok(())
}

/// What a chart brings beside its workload: RBAC, a NetworkPolicy, an Ingress and its class, a
/// PriorityClass, an autoscaler and a disruption budget.
const CHART: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: web-operator}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: web-operator}
rules:
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: web-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: web-operator}
subjects:
- {kind: ServiceAccount, name: web-operator, namespace: default}
- {kind: User, name: jane}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: web-reader}
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: web-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: web-reader}
subjects:
- {kind: ServiceAccount, name: web-operator, namespace: default}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web}
spec:
  podSelector: {matchLabels: {app: nginx}}
  ingress:
  - ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: nginx
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: nginx, port: {number: 80}}}}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: web-critical}
value: 100000
description: web pods first
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: web}
  maxReplicas: 5
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: nginx}}
"#;

/// A chart's kinds apply with both kubectls, print kube-apiserver's columns, get upstream's
/// defaults, and are refused where upstream refuses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kinds_charts_bring_apply_print_and_validate_as_upstream() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    for version in ["1.27", "1.33"] {
        let k = server.kubectl(version)?;
        let applied = rows(&k.ok_stdin(&["apply", "-f", "-"], CHART)?);
        assert_eq!(applied.len(), 11, "{applied:?}");
        // Applied again, an object the server defaulted nothing in is unchanged (lists the server
        // defaulted, and a budget's selector, are sent again, as against kube-apiserver).
        let verb = if version == "1.27" { "created" } else { "unchanged" };
        assert!(
            applied.contains(&format!("clusterrolebinding.rbac.authorization.k8s.io/web-reader {verb}")),
            "{applied:?}"
        );
        assert!(applied.contains(&format!("priorityclass.scheduling.k8s.io/web-critical {verb}")), "{applied:?}");
        let get = |what: &str| k.ok(&["get", what]).map(|out| rows(&out));
        let bindings = get("rolebindings")?;
        assert_eq!(bindings[0], "NAME ROLE AGE");
        assert!(bindings[1].starts_with("web-operator Role/web-operator "), "{bindings:?}");
        let wide = rows(&k.ok(&["get", "rolebindings", "-o", "wide"])?);
        assert_eq!(wide[0], "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS");
        assert!(wide[1].ends_with(" jane default/web-operator"), "{wide:?}");
        assert_eq!(get("netpol")?[1].split(' ').take(2).collect::<Vec<_>>(), ["web", "app=nginx"]);
        let ingress = get("ingress")?;
        assert_eq!(ingress[0], "NAME CLASS HOSTS ADDRESS PORTS AGE");
        assert!(ingress[1].starts_with("web nginx web.example.com 80 "), "{ingress:?}");
        assert!(get("ingressclass")?[1].starts_with("nginx k8s.io/ingress-nginx <none> "));
        let pc = get("priorityclass")?;
        assert_eq!(pc[0], "NAME VALUE GLOBAL-DEFAULT AGE PREEMPTIONPOLICY");
        let web = pc.iter().find(|r| r.starts_with("web-critical ")).cloned().unwrap_or_default();
        assert!(web.starts_with("web-critical 100000 false ") && web.ends_with(" PreemptLowerPriority"), "{pc:?}");
        assert!(pc.iter().any(|r| r.starts_with("system-node-critical 2000001000 false ")), "{pc:?}");
        let hpa = get("hpa")?;
        assert_eq!(hpa[0], "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE");
        assert!(hpa[1].starts_with("web StatefulSet/web cpu: <unknown>/80% 1 5 0 "), "{hpa:?}");
        let pdb = get("pdb")?;
        assert_eq!(pdb[0], "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE");
        assert!(pdb[1].starts_with("web N/A 1 0 "), "{pdb:?}");
        let defaulted = k.ok(&[
            "get",
            "netpol",
            "web",
            "-o",
            "jsonpath={.spec.policyTypes[0]} {.spec.ingress[0].ports[0].protocol}",
        ])?;
        assert_eq!(defaulted, "Ingress TCP");
    }
    let k = server.kubectl("1.33")?;
    for (patch, target, message) in [
        (r#"{"roleRef":{"name":"other"}}"#, "rolebinding/web-operator", "roleRef: Invalid value"),
        (r#"{"spec":{"minAvailable":1}}"#, "pdb/web", "minAvailable and maxUnavailable cannot be both set"),
        (r#"{"value":5}"#, "priorityclass/web-critical", "value: Forbidden: may not be changed in an update"),
        (r#"{"spec":{"maxReplicas":0}}"#, "hpa/web", "must be greater than or equal to `minReplicas`"),
    ] {
        let refused = k.fails(&["patch", target, "--type", "merge", "-p", patch])?;
        assert_contains(&refused, message);
    }
    server.stop().await;
    Ok(())
}

/// `kubectl create token`: a token for a service account that authenticates as it (and, with no
/// RBAC yet, is then refused: 403 naming the account), not for another audience, not once the
/// pod it is bound to is gone, and never for less than ten minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_token_issues_bound_service_account_tokens_that_authenticate() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::default_namespaced(server.client());
    pods.create(
        &Default::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "holder"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))?,
    )
    .await?;
    for version in ["1.27", "1.33"] {
        let k = server.kubectl(version)?;
        // The controller makes `default` soon after the namespace exists.
        let token = it::eventually("a token for default", std::time::Duration::from_secs(10), || async {
            k.ok(&["create", "token", "default"]).ok()
        })
        .await?;
        let token = token.trim();
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        let as_account = k.fails(&["--token", token, "get", "pods"])?;
        assert_contains(&as_account, "system:serviceaccount:default:default");
        assert_contains(&as_account, "Forbidden");

        let elsewhere = k.ok(&["create", "token", "default", "--audience", "vault"])?;
        let refused = k.fails(&["--token", elsewhere.trim(), "get", "pods"])?;
        assert_contains(&refused, "Unauthorized");

        let short = k.fails(&["create", "token", "default", "--duration", "5m"])?;
        assert_contains(&short, "may not specify a duration less than 10 minutes");
    }
    let k = server.kubectl("1.33")?;
    let bound = k.ok(&["create", "token", "default", "--bound-object-kind", "Pod", "--bound-object-name", "holder"])?;
    assert_contains(&k.fails(&["--token", bound.trim(), "get", "pods"])?, "Forbidden");
    pods.delete("holder", &kube::api::DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await?;
    it::eventually("the pod to be gone", std::time::Duration::from_secs(10), || async {
        pods.get_opt("holder").await.ok()?.is_none().then_some(())
    })
    .await?;
    assert_contains(&k.fails(&["--token", bound.trim(), "get", "pods"])?, "Unauthorized");
    server.stop().await;
    Ok(())
}

/// RBAC as kube-apiserver enforces it, seen through `kubectl auth can-i` (SelfSubjectAccessReview
/// and, with `--list`, SelfSubjectRulesReview) and plain requests with a service account's
/// token: a RoleBinding grants its Role's rules in its namespace only, the default `view` role
/// grows with a role labelled to aggregate into it, and the admin may do anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_decides_what_a_service_account_may_do() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let admin = server.kubectl("1.33")?;
    admin.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: default}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-reads-pods, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
"#,
    )?;
    let token = admin.ok(&["create", "token", "default"])?;
    let token = token.trim();
    assert_eq!(admin.ok(&["auth", "can-i", "*", "*"])?.trim(), "yes");
    for version in ["1.27", "1.33"] {
        let k = server.kubectl(version)?;
        let can = |args: &[&str]| -> anyhow::Result<String> {
            let mut all = vec!["--token", token, "auth", "can-i"];
            all.extend(args);
            let out = k.run(&all)?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        assert_eq!(can(&["list", "pods"])?, "yes", "{version}");
        assert_eq!(can(&["get", "pods/web-0"])?, "yes", "{version}");
        assert_eq!(can(&["delete", "pods"])?, "no", "{version}");
        assert_eq!(can(&["list", "pods", "-n", "kube-system"])?, "no", "{version}");
        assert_eq!(can(&["list", "secrets"])?, "no", "{version}");
        k.ok(&["--token", token, "get", "pods"])?;
        let refused = k.fails(&["--token", token, "get", "secrets"])?;
        assert_contains(
            &refused,
            "secrets is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\"",
        );
        let listed = k.ok(&["--token", token, "auth", "can-i", "--list"])?;
        assert!(listed.lines().any(|l| l.starts_with("pods ") && l.contains("[get list watch]")), "{listed}");
        assert!(listed.contains("selfsubjectaccessreviews.authorization.k8s.io"), "{listed}");
    }

    // A chart's role that aggregates into `view`; `view` bound to the account in `default`.
    admin.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: secrets-view
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- {apiGroups: [""], resources: [secrets], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-views, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
"#,
    )?;
    let k = server.kubectl("1.33")?;
    assert_eq!(k.ok(&["--token", token, "auth", "can-i", "list", "statefulsets.apps"])?.trim(), "yes");
    it::eventually("view aggregates secrets-view", std::time::Duration::from_secs(10), || async {
        let out = k.run(&["--token", token, "auth", "can-i", "list", "secrets"]).ok()?;
        (String::from_utf8_lossy(&out.stdout).trim() == "yes").then_some(())
    })
    .await?;
    let view = admin.ok(&["get", "clusterrole", "view", "-o", "jsonpath={.rules[*].resources}"])?;
    assert!(view.contains("secrets") && view.contains("statefulsets"), "{view}");
    k.ok(&["--token", token, "get", "secrets"])?;
    // Still no writes.
    assert_eq!(
        String::from_utf8_lossy(&k.run(&["--token", token, "auth", "can-i", "create", "statefulsets.apps"])?.stdout)
            .trim(),
        "no"
    );
    server.stop().await;
    Ok(())
}

/// A namespace's LimitRange and ResourceQuota as a user meets them with kubectl 1.27 and 1.33:
/// container defaults written into new pods, a pod over the range's max refused, creates beyond
/// the quota refused with kube-apiserver's message, and the quota's usage in `kubectl get quota`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_ranges_default_and_quotas_refuse() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let admin = server.kubectl("1.33")?;
    admin.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: LimitRange
metadata: {name: defaults, namespace: team}
spec:
  limits:
  - type: Container
    default: {cpu: 200m}
    defaultRequest: {cpu: 100m}
    max: {cpu: "1"}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: team-quota, namespace: team}
spec:
  hard: {pods: "2", requests.cpu: 300m, configmaps: "3"}
"#,
    )?;
    let defaults = admin.ok(&[
        "get",
        "limitrange",
        "defaults",
        "-n",
        "team",
        "-o",
        "jsonpath={.spec.limits[0].defaultRequest.cpu}",
    ])?;
    assert_eq!(defaults, "100m");
    for (i, version) in ["1.27", "1.33"].iter().enumerate() {
        let k = server.kubectl(version)?;
        let name = format!("p{i}");
        k.ok(&["run", &name, "-n", "team", "--image=busybox", "--", "sleep", "1"])?;
        let resources = k.ok(&["get", "pod", &name, "-n", "team", "-o", "jsonpath={.spec.containers[0].resources}"])?;
        let resources: serde_json::Value = serde_json::from_str(&resources)?;
        assert_eq!(resources, serde_json::json!({"limits": {"cpu": "200m"}, "requests": {"cpu": "100m"}}), "{version}");
    }
    for version in ["1.27", "1.33"] {
        let k = server.kubectl(version)?;
        let refused = k.fails(&["run", "third", "-n", "team", "--image=busybox"])?;
        assert_contains(
            &refused,
            "pods \"third\" is forbidden: exceeded quota: team-quota, requested: pods=1, used: pods=2, limited: pods=2",
        );
        let big = k.fails_stdin(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: Pod\nmetadata: {name: big, namespace: team}\nspec:\n  containers: [{name: c, image: busybox, resources: {limits: {cpu: \"2\"}}}]\n",
        )?;
        assert_contains(&big, "maximum cpu usage per Container is 1, but limit is 2");
    }
    // kube-root-ca.crt is one of the three, as on any cluster.
    server.namespace_defaults("team").await?;
    admin.ok(&["create", "configmap", "one", "-n", "team"])?;
    admin.ok(&["create", "configmap", "two", "-n", "team"])?;
    assert_contains(
        &admin.fails(&["create", "configmap", "three", "-n", "team"])?,
        "exceeded quota: team-quota, requested: configmaps=1",
    );
    it::eventually("the quota's usage", std::time::Duration::from_secs(20), || async {
        let row = admin.ok(&["get", "quota", "team-quota", "-n", "team", "--no-headers"]).ok()?;
        (row.contains("configmaps: 3/3") && row.contains("pods: 2/2") && row.contains("requests.cpu: 200m/300m"))
            .then_some(row)
    })
    .await?;
    admin.ok(&["delete", "namespace", "team", "--wait=true", "--timeout=60s"])?;
    server.stop().await;
    Ok(())
}

/// What a chart for a stateful application ships, in one `kubectl apply -f`: every kind is
/// accepted, `kubectl get all` shows the workloads, and deleting the namespace removes all of
/// it (kubectl 1.27 and 1.33).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_shaped_bundle_applies_and_goes_with_its_namespace() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let bundle = r#"apiVersion: v1
kind: Namespace
metadata: {name: db}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: db, namespace: db}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: db, namespace: db}
rules: [{apiGroups: [""], resources: [pods, endpoints], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: db, namespace: db}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: db}
subjects: [{kind: ServiceAccount, name: db, namespace: db}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: db-config, namespace: db}
data: {postgresql.conf: "max_connections = 100"}
---
apiVersion: v1
kind: Secret
metadata: {name: db-auth, namespace: db}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Service
metadata: {name: db-headless, namespace: db}
spec: {clusterIP: None, selector: {app: db}, ports: [{name: pg, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: db}
spec: {selector: {app: db}, ports: [{name: pg, port: 5432}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: db}
spec:
  serviceName: db-headless
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      serviceAccountName: db
      containers: [{name: pg, image: postgres:16, envFrom: [{secretRef: {name: db-auth}}], resources: {requests: {cpu: 100m}}}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: db, namespace: db}
spec: {minAvailable: 1, selector: {matchLabels: {app: db}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: db-init, namespace: db}
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: init, image: postgres:16, command: [psql, -c, "select 1"]}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: db-backup, namespace: db}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: backup, image: postgres:16, command: [pg_dumpall]}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: db-exporter, namespace: db}
spec:
  selector: {matchLabels: {app: db-exporter}}
  template:
    metadata: {labels: {app: db-exporter}}
    spec: {containers: [{name: exporter, image: exporter:1}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: db}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {}}], ports: [{port: 5432}]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: db-admin, namespace: db}
spec:
  rules:
  - host: db.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: db, port: {number: 5432}}}}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: db, namespace: db}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: db}
  minReplicas: 2
  maxReplicas: 3
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: db, namespace: db}
spec: {hard: {pods: "20"}}
---
apiVersion: v1
kind: LimitRange
metadata: {name: db, namespace: db}
spec: {limits: [{type: Container, defaultRequest: {memory: 64Mi}}]}
"#;
    for version in ["1.27", "1.33"] {
        let k = server.kubectl(version)?;
        let applied = k.ok_stdin(&["apply", "-f", "-"], bundle)?;
        assert_eq!(applied.lines().count(), 18, "{version}: {applied}");
        assert!(applied.lines().all(|l| l.ends_with(" created")), "{version}: {applied}");
        // Applied again: accepted, and unchanged except where kubectl's own patch is never
        // empty: a Secret's `stringData` (stored as `data`), claim templates and NetworkPolicy
        // ports that the server completes with defaults inside lists kubectl replaces whole, and
        // a budget's selector (patch strategy `replace`). Not yet compared with a real cluster.
        let again = k.ok_stdin(&["apply", "-f", "-"], bundle)?;
        let configured: Vec<&str> = again.lines().filter(|l| !l.ends_with(" unchanged")).collect();
        assert_eq!(
            configured,
            [
                "secret/db-auth configured",
                "statefulset.apps/db configured",
                "poddisruptionbudget.policy/db configured",
                "networkpolicy.networking.k8s.io/db configured"
            ],
            "{version}"
        );
        let all = k.ok(&["get", "all", "-n", "db", "-o", "name"])?;
        for expected in [
            "service/db",
            "statefulset.apps/db",
            "daemonset.apps/db-exporter",
            "job.batch/db-init",
            "cronjob.batch/db-backup",
        ] {
            assert!(all.lines().any(|l| l == expected), "{version}: {expected} in {all}");
        }
        k.ok(&["delete", "namespace", "db", "--wait=true", "--timeout=60s"])?;
        let left = k.run(&["get", "namespace", "db"])?;
        assert!(!left.status.success(), "{version}: the namespace is gone");
        for kind in ["pods", "jobs", "pvc", "roles", "configmaps", "networkpolicies", "resourcequotas"] {
            let out = k.ok(&["get", kind, "-n", "db", "-o", "name"])?;
            assert_eq!(out.trim(), "", "{version}: {kind} left: {out}");
        }
    }
    server.stop().await;
    Ok(())
}
