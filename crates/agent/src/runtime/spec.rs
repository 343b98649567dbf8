//! What the server tells a container's shim (written as `spec.json` in the container's state
//! directory, read again by `__exec` and after a restart of the server).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One container, fully decided: the shim only carries it out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// `namespace/pod/container`, for messages.
    pub id: String,
    /// Namespace files of the pod sandbox to join, as (kind, path); kinds `ipc`, `uts`, `net`.
    pub namespaces: Vec<(String, PathBuf)>,
    /// `cgroup.procs` files the shim writes itself into before starting anything.
    pub cgroup_procs: Vec<PathBuf>,
    pub rootfs: Rootfs,
    /// Mounts inside the root filesystem, in order.
    pub mounts: Vec<Mount>,
    pub process: Process,
    /// The CRI-format log file (`<timestamp> <stream> <P|F> <line>`).
    pub log: PathBuf,
    /// Bytes after which the log rotates (kept: `log.1` … `log.<max_files-1>`).
    pub log_max_bytes: u64,
    pub log_max_files: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rootfs {
    /// Image layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// The container's writable layer and overlayfs work directory (deleted with the pod).
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where the root is assembled (inside the container's own mount namespace only).
    pub merged: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum MountKind {
    /// Bind a host file or directory.
    Bind,
    /// A fresh tmpfs (`emptyDir` with medium Memory), size limit in bytes (0: none).
    Tmpfs(u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub kind: MountKind,
    pub source: PathBuf,
    /// A path inside `source` to bind instead (`subPath`): resolved by the shim inside the
    /// volume, through descriptors, so a symlink a container left there cannot lead out of it.
    #[serde(default)]
    pub sub_path: Option<PathBuf>,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory inside the container ("" = `/`).
    pub cwd: String,
    /// `uid[:gid]` or `name[:group]`, resolved against the container's `/etc/passwd`.
    pub user: String,
    /// Give the process a stdin the attach socket feeds.
    pub stdin: bool,
    /// Close that stdin when the first attached client leaves.
    pub stdin_once: bool,
    /// A terminal instead of pipes.
    pub tty: bool,
    /// How the process (and whatever is executed in the container later) is confined. A run
    /// started before Ordinal confined containers has none in its `spec.json`, and its exec
    /// sessions stay as unconfined as it is.
    #[serde(default = "unconfined")]
    pub security: logic::security::SecurityPlan,
}

fn unconfined() -> logic::security::SecurityPlan {
    logic::security::SecurityPlan::unconfined()
}

/// What the shim records when the container's process is gone.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExitRecord {
    /// The exit status as kubelet reports it: the code, or 128 + the signal that killed it.
    pub exit_code: i32,
    /// The signal, when the process was killed by one.
    pub signal: Option<i32>,
    /// Unix time in nanoseconds.
    pub finished_at_ns: i128,
}

/// Files in a container's state directory.
pub const SPEC_FILE: &str = "spec.json";
pub const SHIM_PID_FILE: &str = "shim.pid";
pub const INIT_PID_FILE: &str = "init.pid";
pub const EXIT_FILE: &str = "exit.json";
pub const ATTACH_SOCKET: &str = "attach.sock";

/// Exit code of a process that could not be started at all (bad command, missing binary).
pub const START_FAILURE: i32 = 128;
/// Written by the container's init when the process could not be started; holds the reason.
pub const START_ERROR_FILE: &str = "start-error";

/// Frames on the attach socket: a kind byte, a big-endian u32 length, the payload.
pub mod frame {
    /// Client → shim: bytes for the container's stdin.
    pub const STDIN: u8 = 0;
    /// Shim → client: bytes the container wrote.
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    /// Client → shim: terminal size, two big-endian u16 (columns, rows).
    pub const RESIZE: u8 = 3;
    /// Client → shim: no more stdin from this client.
    pub const CLOSE_STDIN: u8 = 4;

    pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + 5);
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Split complete frames off the front of `buf`.
    pub fn decode(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        loop {
            if buf.len() < 5 {
                return frames;
            }
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() < 5 + len {
                return frames;
            }
            let payload = buf[5..5 + len].to_vec();
            frames.push((buf[0], payload));
            buf.drain(..5 + len);
        }
    }
}
