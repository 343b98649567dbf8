//! The real binary as a process: `kill -9` in the middle of a stream of writes loses none that
//! were acknowledged. (This lives beside the binary because it needs `CARGO_BIN_EXE_ordinal`.)

mod common;

use common::{Server, ready_client};

use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use ordinal::DataDir;

fn spawn(data_dir: &DataDir, port: u16) -> anyhow::Result<Server> {
    let child = Command::new(env!("CARGO_BIN_EXE_ordinal"))
        .args(["server", "--data-dir"])
        .arg(data_dir.root())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        // This test is about the store: no pods, so no bridge or cgroups to leave behind.
        .arg("--no-pods")
        .env("ORDINAL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Server(child))
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = DataDir::create(dir.path().join("data"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = spawn(&data, port)?;
    let client = ready_client(&data).await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(async move {
        for i in 0.. {
            let cm: ConfigMap =
                serde_json::from_value(serde_json::json!({"metadata": {"name": format!("w-{i}")}})).expect("configmap");
            match cms.create(&PostParams::default(), &cm).await {
                Ok(_) => {
                    if tx.send(i).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    // Let some writes land, then kill the server mid-stream.
    let mut acked = Vec::new();
    while acked.len() < 40 {
        acked.push(rx.recv().await.ok_or_else(|| anyhow::anyhow!("writer stopped early"))?);
    }
    server.0.kill()?;
    server.0.wait()?;
    writer.await?;
    while let Ok(i) = rx.try_recv() {
        acked.push(i);
    }
    drop(server);

    let _server = spawn(&data, port)?;
    let client = ready_client(&data).await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let stored: std::collections::BTreeSet<String> =
        cms.list(&Default::default()).await?.items.into_iter().filter_map(|c| c.metadata.name).collect();
    for i in &acked {
        assert!(stored.contains(&format!("w-{i}")), "acknowledged write w-{i} was lost");
    }
    Ok(())
}
