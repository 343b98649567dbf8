//! apps/v1 DaemonSets with real pods, as users drive them with kubectl: apply, `rollout status`,
//! `set image` (a rolling update), `rollout history` and `rollout undo`, `get ds` columns; and
//! the other node-and-count workload old charts bring, core/v1 ReplicationControllers.

use it::{TEST_IMAGE, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_runs_on_the_node_and_rolls_back_and_forth() -> anyhow::Result<()> {
    let server = TestServer::with_pods_and(|dir| {
        it::import_test_image_as(dir, "localhost/busybox:v2").map_err(std::io::Error::other)
    })
    .await?;
    let k = server.kubectl("1.33")?;
    let old = server.kubectl("1.27")?;
    k.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: agent
        image: {TEST_IMAGE}
        command: ["sleep", "3600"]
"#
        ),
    )?;
    old.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"])?;
    let row = k.ok(&["get", "ds", "agent", "--no-headers"])?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.get(1..6), Some(&["1", "1", "1", "1", "1"][..]), "{row}");
    let node = k.ok(&["get", "pods", "-l", "app=agent", "-o", "jsonpath={.items[0].spec.nodeName}"])?;
    assert_eq!(node, ordinal::default_node_name(), "bound to this machine's node");

    k.ok(&["set", "image", "daemonset/agent", "agent=localhost/busybox:v2"])?;
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"])?;
    let images = || k.ok(&["get", "pods", "-l", "app=agent", "-o", "jsonpath={.items[*].spec.containers[0].image}"]);
    assert_eq!(images()?, "localhost/busybox:v2");
    for kubectl in [&old, &k] {
        let history = kubectl.ok(&["rollout", "history", "daemonset/agent"])?;
        let revisions: Vec<&str> =
            history.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u32>().is_ok()).collect();
        assert_eq!(revisions, ["1", "2"], "{history}");
    }
    k.ok(&["rollout", "undo", "daemonset/agent"])?;
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"])?;
    it::eventually("the old image back", std::time::Duration::from_secs(30), || async {
        images().ok().filter(|i| i == TEST_IMAGE)
    })
    .await?;
    let history = k.ok(&["rollout", "history", "daemonset/agent"])?;
    assert!(history.contains("\n2 ") && history.contains("\n3 "), "undo makes revision 1 the new 3: {history}");
    k.ok(&["delete", "daemonset", "agent", "--wait=true"])?;
    it::eventually("daemon pods gone", std::time::Duration::from_secs(30), || async {
        k.ok(&["get", "pods", "-o", "name"]).ok().filter(|o| o.trim().is_empty())
    })
    .await?;
    server.assert_nothing_left_behind().await?;
    server.stop().await;
    Ok(())
}

/// core/v1 ReplicationControllers (old charts still ship them): `kubectl create -f`, pods kept
/// at the count, `kubectl scale rc`, `get rc` columns, deleted with their pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_controller_keeps_its_pods() -> anyhow::Result<()> {
    let server = TestServer::with_pods().await?;
    for version in ["1.27", "1.33"] {
        let k = server.kubectl(version)?;
        let name = format!("old-{}", version.replace('.', "-"));
        k.ok_stdin(
            &["create", "-f", "-"],
            &format!(
                r#"apiVersion: v1
kind: ReplicationController
metadata: {{name: {name}}}
spec:
  replicas: 2
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{{name: c, image: {TEST_IMAGE}, command: [sleep, "3600"]}}]
"#
            ),
        )?;
        let ready = |n: usize| {
            let k = &k;
            let name = name.clone();
            async move {
                it::eventually("rc pods ready", std::time::Duration::from_secs(60), || async {
                    let row = k.ok(&["get", "rc", &name, "--no-headers"]).ok()?;
                    let cells: Vec<String> = row.split_whitespace().map(str::to_string).collect();
                    (cells.get(1..4) == Some(&[n.to_string(), n.to_string(), n.to_string()][..])).then_some(row)
                })
                .await
            }
        };
        ready(2).await?;
        let selector = k.ok(&["get", "rc", &name, "-o", "jsonpath={.spec.selector.app}"])?;
        assert_eq!(selector, name, "the selector defaults to the template's labels");
        k.ok(&["scale", "rc", &name, "--replicas=1"])?;
        ready(1).await?;
        k.ok(&["delete", "rc", &name, "--wait=true"])?;
    }
    let k = server.kubectl("1.33")?;
    it::eventually("rc pods gone", std::time::Duration::from_secs(30), || async {
        k.ok(&["get", "pods", "-o", "name"]).ok().filter(|o| o.trim().is_empty())
    })
    .await?;
    server.stop().await;
    Ok(())
}
