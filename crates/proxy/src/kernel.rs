//! The kernel's share of the frontends: the ruleset `logic::proxy::nft` renders, installed
//! by one `nft -f -` batch (one transaction) per change — the whole table the first time
//! (replacing one a killed server left), then in place, only what differs.

use std::time::{Duration, Instant};

use logic::proxy::nft::{self, Ruleset};
use logic::proxy::{KernelNode, Table};
use tokio::io::AsyncWriteExt;

use crate::ProxyError;

/// Ordinal's service table for one bridge, as this process last installed it.
#[derive(Debug)]
pub struct Kernel {
    node: KernelNode,
    /// What the kernel holds, when known (after a batch of ours succeeded).
    installed: Option<Ruleset>,
}

/// What one `apply` did.
#[derive(Debug, Clone, Copy)]
pub struct Programmed {
    /// A batch ran (nothing differed otherwise).
    pub ran: bool,
    /// The whole table was replaced (the first time, or when the change could not be made in
    /// place); otherwise it was updated in place.
    pub replaced: bool,
    /// The `nft` process that committed it.
    pub nft_pid: Option<u32>,
    /// From the call to `nft`'s exit (rendering included).
    pub elapsed: Duration,
}

impl Kernel {
    /// `None` when the bridge's name cannot be written into a rule.
    pub fn new(node: KernelNode) -> Option<Kernel> {
        nft::valid_interface_name(&node.bridge).then_some(Kernel { node, installed: None })
    }

    pub fn node(&self) -> &KernelNode {
        &self.node
    }

    /// The nftables table (`ip` family) this installs.
    pub fn table(&self) -> String {
        nft::table_name(&self.node.bridge)
    }

    /// Make the kernel serve exactly `table` (the kernel's share, `logic::proxy::split`). An
    /// in-place update the kernel refuses (the table changed behind our back) is retried as a
    /// whole replacement.
    pub async fn apply(&mut self, table: &Table) -> Result<Programmed, ProxyError> {
        let started = Instant::now();
        let next = nft::ruleset(table, &self.node);
        let update = self.installed.as_ref().and_then(|installed| next.update_script(installed));
        if update.as_deref() == Some("") {
            return Ok(Programmed { ran: false, replaced: false, nft_pid: None, elapsed: started.elapsed() });
        }
        // Unknown until a batch succeeds.
        let installed = self.installed.take();
        let (nft_pid, replaced) = match update {
            Some(script) => match run_nft(&script).await {
                Ok(pid) => (pid, false),
                Err(e) => {
                    tracing::debug!(error = %e, installed = installed.is_some(), "in-place update refused; replacing the table");
                    (run_nft(&next.replace_script()).await?, true)
                }
            },
            None => (run_nft(&next.replace_script()).await?, true),
        };
        self.installed = Some(next);
        Ok(Programmed { ran: true, replaced, nft_pid, elapsed: started.elapsed() })
    }

    /// Delete the table (at stop).
    pub async fn remove(self) -> Result<(), ProxyError> {
        run_nft(&format!("delete table ip {}\n", self.table())).await.map(|_| ())
    }
}

/// Run one `nft -f -` batch; the process's pid.
async fn run_nft(script: &str) -> Result<Option<u32>, ProxyError> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(ProxyError::NftSpawn)?;
    let pid = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await.map_err(ProxyError::NftSpawn)?;
    }
    let out = child.wait_with_output().await.map_err(ProxyError::NftSpawn)?;
    if !out.status.success() {
        return Err(ProxyError::Nft(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(pid)
}
