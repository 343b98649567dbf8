//! Helpers shared by the tests that run the real binary as a process.

use std::process::Child;
use std::time::{Duration, Instant};

/// A server process, killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client once the server in `data_dir` answers `/readyz` (polled: it is another process).
pub async fn ready_client(data_dir: &ordinal::DataDir) -> anyhow::Result<kube::Client> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let kubeconfig = data_dir.kubeconfig();
    loop {
        if kubeconfig.exists() {
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
            let client = kube::Client::try_from(config)?;
            let probe = http::Request::get("/readyz").body(Vec::new())?;
            if client.request_text(probe).await.is_ok_and(|t| t == "ok") {
                return Ok(client);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "server not ready after 30s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
