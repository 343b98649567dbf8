//! The real binary as a server process, for what only a process shows: `kill -9` at any
//! moment and a restart on the same data dir, a clean stop by signal, the defaults a user gets
//! when typing `ordinal server` with no flags. Its log goes to `server.log` beside the data dir
//! (appended across restarts) and is shown when it fails to come up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A server process; killed when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    cwd: PathBuf,
    args: Vec<String>,
    kubeconfig: PathBuf,
    log: PathBuf,
}

impl ServerProcess {
    /// Start `ordinal <args>` in `cwd`; its kubeconfig appears at `kubeconfig` once it serves.
    pub fn spawn(cwd: &Path, args: &[&str], kubeconfig: &Path) -> anyhow::Result<ServerProcess> {
        let mut server = ServerProcess {
            child: None,
            cwd: cwd.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            kubeconfig: kubeconfig.to_path_buf(),
            log: cwd.join("server.log"),
        };
        server.start()?;
        Ok(server)
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(crate::ordinal_binary()?)
            .args(&self.args)
            .current_dir(&self.cwd)
            .env("ORDINAL_LOG", std::env::var("ORDINAL_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the server logged (the end of it).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A client once the server answers `/readyz` (polled: it is another process).
    pub async fn client(&mut self) -> anyhow::Result<kube::Client> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("the server exited ({status}) before serving:\n{}", self.log_tail());
            }
            if self.kubeconfig.exists()
                && let Ok(client) = client_from(&self.kubeconfig).await
            {
                let probe = http::Request::get("/readyz").body(Vec::new())?;
                if client.request_text(probe).await.is_ok_and(|t| t == "ok") {
                    return Ok(client);
                }
            }
            if Instant::now() > deadline {
                bail!("the server did not serve within 60s:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `kill -9`, and wait until it is gone.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Start it again with the same arguments (after `kill9` or `terminate`).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9()?;
        self.start()
    }

    /// Start it again with other arguments.
    pub fn restart_with(&mut self, args: &[&str]) -> anyhow::Result<()> {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.restart()
    }

    /// SIGTERM, and wait (at most a minute) for it to exit.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("the server is not running")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the server did not stop within 60s of SIGTERM:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// A client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}
