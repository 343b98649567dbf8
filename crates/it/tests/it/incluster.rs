//! Pods as API clients: the token volume every pod gets (a bound service-account token, the
//! cluster CA, its namespace), the `KUBERNETES_SERVICE_*` variables, and the `kubernetes`
//! Service reaching the API from inside a pod: real kubectl in a pod, with client-go's
//! in-cluster configuration (those variables, that token, that CA, verified).

use std::time::Duration;

use it::{TestServer, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The test image with kubectl 1.33 as `/bin/kubectl`.
const CLIENT_IMAGE: &str = "localhost/kubectl:test";

fn manifests() -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: app}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: app}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader, namespace: app}}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader-reads-pods, namespace: app}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects:
- {{kind: ServiceAccount, name: reader}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: app}}
spec:
  serviceAccountName: reader
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: {CLIENT_IMAGE}
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: quiet, namespace: app}}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: {CLIENT_IMAGE}
    command: ["sleep", "3600"]
"#
    )
}

/// kubectl inside `pod` (in-cluster configuration unless `args` say otherwise): its output
/// and error output together, and whether it succeeded.
fn kubectl_in(k: &it::Kubectl, pod: &str, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let mut command = vec!["exec", "-n", "app", pod, "--", "kubectl"];
    command.extend(args);
    let out = k.run(&command)?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_the_api_as_their_service_account() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    let kubectl = it::kubectl_dir()?.join("kubectl.1.33");
    it::import_test_image_with(server.running_data_dir(), CLIENT_IMAGE, &[(&kubectl, "/bin/kubectl")])?;
    let k = server.kubectl("1.33")?;
    k.ok_stdin(&["apply", "-f", "-"], &manifests())?;
    k.ok(&["wait", "-n", "app", "--for=condition=Ready", "pod/client", "pod/quiet", "--timeout=60s"])?;

    // The admission added the volume and the mount; the pod runs as its account.
    let pods: Api<Pod> = Api::namespaced(server.client(), "app");
    let client = pods.get("client").await?;
    let spec = client.spec.clone().unwrap_or_default();
    assert_eq!(spec.service_account_name.as_deref(), Some("reader"));
    let volume = spec.volumes.iter().flatten().find(|v| v.name.starts_with("kube-api-access-"));
    assert!(volume.is_some_and(|v| v.projected.is_some()), "{:?}", spec.volumes);
    let mounts = spec.containers[0].volume_mounts.clone().unwrap_or_default();
    assert!(mounts.iter().any(|m| m.mount_path == SA_DIR && m.read_only == Some(true)), "{mounts:?}");

    // The files: the namespace, the server's CA, a token for the account bound to this pod.
    assert_eq!(k.ok(&["exec", "-n", "app", "client", "--", "cat", &format!("{SA_DIR}/namespace")])?, "app");
    let ca = k.ok(&["exec", "-n", "app", "client", "--", "cat", &format!("{SA_DIR}/ca.crt")])?;
    let server_ca = std::fs::read_to_string(server.running_data_dir().pki().join("ca.crt"))?;
    assert_eq!(ca.trim(), server_ca.trim());
    let token = k.ok(&["exec", "-n", "app", "client", "--", "cat", &format!("{SA_DIR}/token")])?;
    let claims = token.split('.').nth(1).unwrap_or_default();
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)?)?;
    assert_eq!(claims["sub"], "system:serviceaccount:app:reader", "{claims}");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "client", "{claims}");
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    assert_eq!(lifetime, 3607, "{claims}");
    // The token volume is memory-backed and read-only.
    let mounted = k.ok(&["exec", "-n", "app", "client", "--", "grep", SA_DIR, "/proc/mounts"])?;
    assert!(mounted.contains(" ro,") || mounted.contains(" ro "), "{mounted}");

    // Where the API is.
    let env = k.ok(&["exec", "-n", "app", "client", "--", "env"])?;
    let cidr = server.service_cidr().unwrap_or((std::net::Ipv4Addr::UNSPECIFIED, 0));
    let first = std::net::Ipv4Addr::from(u32::from(cidr.0) + 1);
    assert!(env.contains(&format!("KUBERNETES_SERVICE_HOST={first}\n")), "{env}");
    assert!(env.contains("KUBERNETES_SERVICE_PORT=443\n"), "{env}");
    assert!(env.contains(&format!("KUBERNETES_PORT_443_TCP=tcp://{first}:443\n")), "{env}");

    // From the pod, by the kubernetes Service: client-go's in-cluster configuration verifies
    // the server against ca.crt and authenticates with the token.
    let (ok, discovery) = kubectl_in(&k, "client", &["get", "--raw", "/api"])?;
    assert!(ok && discovery.contains("\"APIVersions\""), "{discovery}");
    // Its Role lets it read pods in its namespace, nothing else (403 naming it).
    let (ok, listed) = kubectl_in(&k, "client", &["get", "pods", "-o", "name"])?;
    assert!(ok && listed.contains("pod/client") && listed.contains("pod/quiet"), "{listed}");
    let (ok, refused) = kubectl_in(&k, "client", &["get", "pods", "-n", "default"])?;
    assert!(
        !ok && refused.contains("User \"system:serviceaccount:app:reader\" cannot list resource \"pods\""),
        "{refused}"
    );
    let (ok, refused) = kubectl_in(&k, "client", &["delete", "pod", "quiet"])?;
    assert!(!ok && refused.contains("forbidden"), "{refused}");
    let (ok, answer) = kubectl_in(&k, "client", &["auth", "can-i", "watch", "pods"])?;
    assert!(ok && answer.trim() == "yes", "{answer}");
    // By name, with a made-up token: 401.
    let anonymous = [
        "--server",
        "https://kubernetes.default.svc",
        "--insecure-skip-tls-verify",
        "--token",
        "made-up",
        "get",
        "--raw",
        "/api",
    ];
    let (ok, refused) = kubectl_in(&k, "quiet", &anonymous)?;
    assert!(!ok && refused.contains("Unauthorized"), "{refused}");

    // Automounting off: no token, no directory.
    let none = k.run(&["exec", "-n", "app", "quiet", "--", "ls", SA_DIR])?;
    assert!(!none.status.success(), "{}", String::from_utf8_lossy(&none.stdout));

    // Every namespace has the CA ConfigMap the volume projects.
    eventually("kube-root-ca.crt in app", Duration::from_secs(10), || async {
        k.ok(&["get", "configmap", "-n", "app", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}"])
            .ok()
            .filter(|c| c.trim() == server_ca.trim())
    })
    .await?;
    k.ok(&["delete", "namespace", "app", "--wait=true", "--timeout=60s"])?;
    server.assert_nothing_left_behind().await?;
    server.stop().await;
    Ok(())
}

/// The image for an operator pod: the test image with this build's `ordinal` (and the shared
/// libraries it links, as `ldd` names them) and kubectl 1.33.
fn import_operator_image(server: &TestServer, name: &str) -> anyhow::Result<()> {
    let ordinal = it::ordinal_binary()?;
    let kubectl = it::kubectl_dir()?.join("kubectl.1.33");
    let ldd = std::process::Command::new("ldd").arg(&ordinal).output()?;
    let libraries: Vec<std::path::PathBuf> = String::from_utf8_lossy(&ldd.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().find(|w| w.starts_with('/')).map(std::path::PathBuf::from))
        .collect();
    anyhow::ensure!(!libraries.is_empty(), "ldd named no libraries for {}", ordinal.display());
    let mut files: Vec<(&std::path::Path, &str)> = vec![(&ordinal, "/bin/ordinal"), (&kubectl, "/bin/kubectl")];
    let names: Vec<String> = libraries.iter().map(|l| l.display().to_string()).collect();
    files.extend(libraries.iter().zip(&names).map(|(l, n)| (l.as_path(), n.as_str())));
    it::import_test_image_with(server.running_data_dir(), name, &files)
}

/// The issue's proof: `ordinal operator` as a Deployment inside Ordinal, with a ServiceAccount
/// and a Role granting what the StatefulSet controller needs in its namespace and nothing more,
/// manages the seed StatefulSet through client-go-style in-cluster configuration while the
/// server's own StatefulSet controller is off (`--controllers=*,-statefulset`); the same pod is
/// refused outside its Role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statefulset_operator_runs_as_a_pod_with_a_namespaced_role() -> anyhow::Result<()> {
    let server = TestServer::with_pods_configured(|c| {
        c.enabled_controllers.remove("statefulset-controller");
    })
    .await?;
    import_operator_image(&server, "localhost/ordinal:test")?;
    let k = server.kubectl("1.33")?;
    k.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Namespace
metadata: {name: ops}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sts-operator, namespace: ops}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: sts-operator, namespace: ops}
rules:
- {apiGroups: [apps], resources: [statefulsets], verbs: [get, list, watch, update, patch]}
- {apiGroups: [apps], resources: [statefulsets/status], verbs: [get, update, patch]}
- {apiGroups: [apps], resources: [controllerrevisions], verbs: [get, list, watch, create, update, patch, delete]}
- {apiGroups: [""], resources: [pods, persistentvolumeclaims], verbs: [get, list, watch, create, update, patch, delete]}
- {apiGroups: ["", events.k8s.io], resources: [events], verbs: [create, update, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: sts-operator, namespace: ops}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: sts-operator}
subjects: [{kind: ServiceAccount, name: sts-operator}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sts-operator, namespace: ops}
spec:
  replicas: 1
  selector: {matchLabels: {app: sts-operator}}
  template:
    metadata: {labels: {app: sts-operator}}
    spec:
      serviceAccountName: sts-operator
      terminationGracePeriodSeconds: 1
      containers:
      - name: operator
        image: localhost/ordinal:test
        command: [ordinal, operator, --namespace, ops]
"#,
    )?;
    k.ok(&["rollout", "status", "-n", "ops", "deployment/sts-operator", "--timeout=60s"])?;
    let set = format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: nginx, namespace: ops}}
spec:
  clusterIP: None
  selector: {{app: nginx}}
  ports: [{{port: 80, name: web}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web, namespace: ops}}
spec:
  serviceName: nginx
  replicas: 2
  selector: {{matchLabels: {{app: nginx}}}}
  template:
    metadata: {{labels: {{app: nginx}}}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: nginx
        image: {}
        command: [sleep, "3600"]
"#,
        it::TEST_IMAGE
    );
    k.ok_stdin(&["apply", "-f", "-"], &set)?;
    k.ok(&["rollout", "status", "-n", "ops", "statefulset/web", "--timeout=60s"])?;
    k.ok(&["scale", "-n", "ops", "statefulset/web", "--replicas=3"])?;
    k.ok(&["rollout", "status", "-n", "ops", "statefulset/web", "--timeout=60s"])?;
    let pods = k.ok(&["get", "pods", "-n", "ops", "-l", "app=nginx", "-o", "name"])?;
    assert_eq!(pods.lines().collect::<Vec<_>>(), ["pod/web-0", "pod/web-1", "pod/web-2"], "{pods}");
    let logs = k.ok(&["logs", "-n", "ops", "deployment/sts-operator"])?;
    assert!(logs.contains("statefulset operator running"), "{logs}");

    // Outside its Role: refused, naming the account.
    let pod =
        k.ok(&["get", "pods", "-n", "ops", "-l", "app=sts-operator", "-o", "jsonpath={.items[0].metadata.name}"])?;
    for args in [["get", "secrets", "-n", "ops"], ["get", "pods", "-n", "default"]] {
        let mut command = vec!["exec", "-n", "ops", pod.as_str(), "--", "kubectl"];
        command.extend(args);
        let out = k.run(&command)?;
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && text.contains("system:serviceaccount:ops:sts-operator"), "{text}");
    }
    k.ok(&["delete", "namespace", "ops", "--wait=true", "--timeout=60s"])?;
    server.assert_nothing_left_behind().await?;
    server.stop().await;
    Ok(())
}
