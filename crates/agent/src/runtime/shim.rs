//! The container shim: what `ordinal __shim <state-dir>` runs, in a fresh single-threaded
//! process (never a fork of the multi-threaded server).
//!
//! It puts itself in the container's cgroups, joins the pod's IPC, UTS and network namespaces,
//! makes new mount and PID namespaces and forks the container's init (PID 1 there). Init builds
//! the root filesystem (overlayfs of the image layers, `/proc`, `/dev`, `/sys`, the pod's
//! `/etc` files and volumes), pivots into it, starts the workload and reaps zombies, forwarding
//! signals to the workload. Its exit status is the workload's.
//!
//! The shim stays outside as the container's keeper, in its own session so that the server can
//! die and come back: it writes the output to the CRI-format log (rotating it), serves the
//! attach socket (stdin, terminal, resize) and records the exit in `exit.json`.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork, pivot_root, setsid};

use super::spec::{self, ContainerSpec, ExitRecord, MountKind, frame};

type Fail = Box<dyn std::error::Error>;

fn ctx<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> Fail {
    move |e| format!("{what}: {e}").into()
}

/// Entry point of `ordinal __shim <state-dir>`; returns the process exit code.
pub fn main(state_dir: &Path) -> i32 {
    match run(state_dir) {
        Ok(()) => 0,
        Err(e) => {
            let _ = fs::write(state_dir.join(spec::START_ERROR_FILE), e.to_string());
            let record = ExitRecord { exit_code: spec::START_FAILURE, signal: None, finished_at_ns: now_ns() };
            let _ = write_exit(state_dir, &record);
            eprintln!("ordinal shim: {e}");
            1
        }
    }
}

fn now_ns() -> i128 {
    jiff::Timestamp::now().as_nanosecond()
}

fn write_exit(state_dir: &Path, record: &ExitRecord) -> std::io::Result<()> {
    let tmp = state_dir.join("exit.partial");
    fs::write(&tmp, serde_json::to_vec(record).unwrap_or_default())?;
    fs::rename(tmp, state_dir.join(spec::EXIT_FILE))
}

/// The container's standard streams as the shim sees them.
enum Streams {
    Pipes { stdout: OwnedFd, stderr: OwnedFd, stdin: Option<OwnedFd> },
    Tty { master: OwnedFd },
}

fn run(state_dir: &Path) -> Result<(), Fail> {
    let raw = fs::read(state_dir.join(spec::SPEC_FILE)).map_err(ctx("read spec"))?;
    let spec: ContainerSpec = serde_json::from_slice(&raw).map_err(ctx("parse spec"))?;
    setsid().map_err(ctx("setsid"))?;
    fs::write(state_dir.join(spec::SHIM_PID_FILE), std::process::id().to_string()).map_err(ctx("write shim.pid"))?;

    // The attach socket lives in the host's network namespace: bind it before joining the pod's.
    // Bound by a relative name (socket paths are limited to 108 bytes; data dirs can be long).
    std::env::set_current_dir(state_dir).map_err(ctx("chdir state dir"))?;
    let _ = fs::remove_file(spec::ATTACH_SOCKET);
    let listener = UnixListener::bind(spec::ATTACH_SOCKET).map_err(ctx("bind attach socket"))?;
    listener.set_nonblocking(true).map_err(ctx("attach socket"))?;

    for procs in &spec.cgroup_procs {
        fs::write(procs, std::process::id().to_string()).map_err(ctx(format!("join cgroup {}", procs.display())))?;
    }
    let mut namespaces = Vec::new();
    for (kind, path) in &spec.namespaces {
        let flag = match kind.as_str() {
            "ipc" => CloneFlags::CLONE_NEWIPC,
            "uts" => CloneFlags::CLONE_NEWUTS,
            "net" => CloneFlags::CLONE_NEWNET,
            other => return Err(format!("unknown namespace kind {other}").into()),
        };
        let file = fs::File::open(path).map_err(ctx(format!("open {}", path.display())))?;
        namespaces.push((flag, file));
    }
    for (flag, file) in &namespaces {
        setns(file.as_fd(), *flag).map_err(ctx(format!("setns {flag:?}")))?;
    }
    drop(namespaces);
    // The next child is PID 1 of a new PID namespace. (Its mount namespace is its own too, made
    // by the child: pivot_root moves every process of a mount namespace, and the shim stays put.)
    unshare(CloneFlags::CLONE_NEWPID).map_err(ctx("unshare pid"))?;

    // The container's standard streams.
    let (streams, child_stdio) = if spec.process.tty {
        let pty = nix::pty::openpty(None, None).map_err(ctx("openpty"))?;
        (Streams::Tty { master: pty.master }, ChildStdio::Tty(pty.slave))
    } else {
        let (out_r, out_w) = nix::unistd::pipe().map_err(ctx("pipe"))?;
        let (err_r, err_w) = nix::unistd::pipe().map_err(ctx("pipe"))?;
        let (stdin_r, stdin_w) = if spec.process.stdin {
            let (r, w) = nix::unistd::pipe().map_err(ctx("pipe"))?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        (
            Streams::Pipes { stdout: out_r, stderr: err_r, stdin: stdin_w },
            ChildStdio::Pipes { stdout: out_w, stderr: err_w, stdin: stdin_r },
        )
    };
    let start_error = fs::File::create(state_dir.join(spec::START_ERROR_FILE)).map_err(ctx("start-error file"))?;
    // The container lives no longer than its shim: the shim holds the write end of this pipe
    // for its whole life, so the container's init sees it hang up if the shim is gone.
    let (alive_r, alive_w) = nix::unistd::pipe().map_err(ctx("pipe"))?;
    // The container's init writes a byte here once its root is built and the workload forked:
    // only then is the container started (an exec or a postStart hook that joined its
    // namespaces earlier would find them half made). Close-on-exec, so the workload does not
    // keep it open.
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(ctx("pipe"))?;

    // SAFETY: this process is single-threaded (the shim is a fresh exec of the binary and starts
    // no threads), so the child may run arbitrary code after fork.
    match unsafe { fork() }.map_err(ctx("fork"))? {
        ForkResult::Child => {
            // Killed with the shim (then everything in the container's PID namespace goes with
            // it). A shim that died before this line is seen through the pipe instead.
            drop(alive_w);
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            let mut alive = [PollFd::new(alive_r.as_fd(), PollFlags::POLLIN)];
            if poll(&mut alive, PollTimeout::ZERO).is_ok_and(|n| n > 0) {
                std::process::exit(spec::START_FAILURE);
            }
            drop(alive_r);
            drop(ready_r);
            drop(streams);
            drop(listener);
            // Standard output is the server's start handshake: only the shim answers on it.
            if let Ok(null) = fs::OpenOptions::new().write(true).open("/dev/null") {
                let _ = nix::unistd::dup2_stdout(&null);
            }
            let code = match init(&spec, child_stdio, start_error, ready_w) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("ordinal init: {e}");
                    spec::START_FAILURE
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            drop(alive_r);
            let _keep_alive = alive_w;
            drop(child_stdio);
            drop(start_error);
            drop(ready_w);
            // The init's byte, or end of file if it failed first (its start-error file says why).
            let _ = std::io::Read::read(&mut fs::File::from(ready_r), &mut [0u8; 1]);
            fs::write(spec::INIT_PID_FILE, child.as_raw().to_string()).map_err(ctx("write init.pid"))?;
            // Tell the server the container is started, then let go of the handshake pipe. The
            // server may be gone (killed mid-start): a failed write must not end the shim.
            let _ = writeln!(std::io::stdout(), "started {child}").and_then(|()| std::io::stdout().flush());
            if let Ok(null) = fs::OpenOptions::new().write(true).open("/dev/null") {
                let _ = nix::unistd::dup2_stdout(&null);
            }
            let mut log = LogWriter::open(&spec)?;
            serve(streams, listener, &mut log, spec.process.stdin_once)?;
            let record = wait_exit(child)?;
            write_exit(state_dir, &record).map_err(ctx("write exit.json"))?;
            Ok(())
        }
    }
}

fn wait_exit(child: Pid) -> Result<ExitRecord, Fail> {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => {
                return Ok(ExitRecord { exit_code: code, signal: None, finished_at_ns: now_ns() });
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                let sig = sig as i32;
                return Ok(ExitRecord { exit_code: 128 + sig, signal: Some(sig), finished_at_ns: now_ns() });
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("wait for init: {e}").into()),
        }
    }
}

/// Copy the container's output to the log and to attached clients, and clients' input to its
/// stdin, until the output ends (the container's processes are gone).
fn serve(streams: Streams, listener: UnixListener, log: &mut LogWriter, stdin_once: bool) -> Result<(), Fail> {
    let (mut outputs, mut stdin): (Vec<(OwnedFd, &'static str)>, Option<OwnedFd>) = match streams {
        Streams::Pipes { stdout, stderr, stdin } => (vec![(stdout, "stdout"), (stderr, "stderr")], stdin),
        Streams::Tty { master } => {
            let input = master.try_clone().map_err(ctx("dup pty"))?;
            (vec![(master, "stdout")], Some(input))
        }
    };
    let tty_fd = if outputs.len() == 1 { Some(outputs[0].0.as_raw_fd()) } else { None };
    let mut clients: Vec<(UnixStream, Vec<u8>)> = Vec::new();
    let mut had_client = false;
    let mut buf = vec![0u8; 32 * 1024];
    while !outputs.is_empty() {
        let mut fds: Vec<PollFd> = outputs.iter().map(|(fd, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)).collect();
        fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
        fds.extend(clients.iter().map(|(c, _)| PollFd::new(c.as_fd(), PollFlags::POLLIN)));
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}").into()),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        let n_out = outputs.len();
        // Clients first (indices after the listener), so removals do not shift what we read.
        for i in (0..clients.len()).rev() {
            if !ready[n_out + 1 + i] {
                continue;
            }
            let (client, pending) = &mut clients[i];
            let n = client.read(&mut buf).unwrap_or(0);
            if n == 0 {
                clients.remove(i);
                if stdin_once && had_client {
                    stdin = None;
                }
                continue;
            }
            pending.extend_from_slice(&buf[..n]);
            for (kind, payload) in frame::decode(pending) {
                match kind {
                    frame::STDIN => {
                        if let Some(fd) = &stdin {
                            let _ = write_all(fd, &payload);
                        }
                    }
                    frame::RESIZE if payload.len() == 4 => {
                        if let Some(fd) = tty_fd {
                            let cols = u16::from_be_bytes([payload[0], payload[1]]);
                            let rows = u16::from_be_bytes([payload[2], payload[3]]);
                            set_window_size(fd, cols, rows);
                        }
                    }
                    frame::CLOSE_STDIN if (stdin_once || tty_fd.is_none()) => {
                        stdin = None;
                    }
                    _ => {}
                }
            }
        }
        if ready[n_out] {
            while let Ok((client, _)) = listener.accept() {
                let _ = client.set_nonblocking(false);
                had_client = true;
                clients.push((client, Vec::new()));
            }
        }
        for i in (0..n_out).rev() {
            if !ready[i] {
                continue;
            }
            let (fd, stream) = &outputs[i];
            let n = match nix::unistd::read(fd, &mut buf) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                // EIO: every holder of the terminal's other side is gone.
                Err(_) => 0,
            };
            if n == 0 {
                log.finish(stream);
                outputs.remove(i);
                continue;
            }
            log.write(stream, &buf[..n]);
            let kind = if *stream == "stderr" { frame::STDERR } else { frame::STDOUT };
            let message = frame::encode(kind, &buf[..n]);
            clients.retain_mut(|(c, _)| c.write_all(&message).is_ok());
        }
    }
    Ok(())
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

fn set_window_size(fd: i32, cols: u16, rows: u16) {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: `fd` is the open terminal master this shim owns; `size` outlives the call.
    let _ = unsafe { tiocswinsz(fd, &size) };
}

/// The CRI log format kubelet reads: one record per line, `P` for a partial line.
struct LogWriter {
    path: PathBuf,
    file: fs::File,
    written: u64,
    max_bytes: u64,
    max_files: u32,
    partial: std::collections::HashMap<&'static str, Vec<u8>>,
}

impl LogWriter {
    fn open(spec: &ContainerSpec) -> Result<LogWriter, Fail> {
        if let Some(dir) = spec.log.parent() {
            fs::create_dir_all(dir).map_err(ctx("create log dir"))?;
        }
        let file = fs::OpenOptions::new().create(true).append(true).open(&spec.log).map_err(ctx("open log"))?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            path: spec.log.clone(),
            file,
            written,
            max_bytes: spec.log_max_bytes.max(4096),
            max_files: spec.log_max_files.max(1),
            partial: Default::default(),
        })
    }

    fn write(&mut self, stream: &'static str, data: &[u8]) {
        let pending = self.partial.entry(stream).or_default();
        pending.extend_from_slice(data);
        let mut records = Vec::new();
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            records.push((line[..line.len() - 1].to_vec(), 'F'));
        }
        if pending.len() >= 16 * 1024 {
            records.push((std::mem::take(pending), 'P'));
        }
        for (line, tag) in records {
            self.record(stream, tag, &line);
        }
    }

    fn finish(&mut self, stream: &'static str) {
        if let Some(rest) = self.partial.remove(stream).filter(|r| !r.is_empty()) {
            self.record(stream, 'F', &rest);
        }
    }

    fn record(&mut self, stream: &str, tag: char, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut out = format!("{} {stream} {tag} ", jiff::Timestamp::now()).into_bytes();
        out.extend_from_slice(line);
        out.push(b'\n');
        if self.written + out.len() as u64 > self.max_bytes && self.written > 0 {
            self.rotate();
        }
        if self.file.write_all(&out).is_ok() {
            self.written += out.len() as u64;
        }
    }

    fn rotate(&mut self) {
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        for i in (1..self.max_files).rev() {
            let from = if i == 1 { self.path.clone() } else { name(i - 1) };
            let _ = fs::rename(from, name(i));
        }
        if self.max_files <= 1 {
            let _ = fs::remove_file(&self.path);
        }
        if let Ok(file) = fs::OpenOptions::new().create(true).append(true).truncate(false).open(&self.path) {
            self.file = file;
            self.written = 0;
        }
    }
}

/// The ends of the streams the workload gets.
enum ChildStdio {
    Pipes { stdout: OwnedFd, stderr: OwnedFd, stdin: Option<OwnedFd> },
    Tty(OwnedFd),
}

/// PID 1 of the container: build the root, start the workload, reap, forward signals.
fn init(spec: &ContainerSpec, stdio: ChildStdio, start_error: fs::File, ready: OwnedFd) -> Result<i32, Fail> {
    build_root(spec)?;
    let workload = spawn_workload(&spec.process, stdio, start_error)?;
    let _ = nix::unistd::write(&ready, b"r");
    drop(ready);
    // Signals are handled synchronously: block them and wait for them one at a time.
    let mut forwarded = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
    ] {
        forwarded.add(sig);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None).map_err(ctx("sigprocmask"))?;
    loop {
        // Reap everything that has exited; stop when the workload has.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == workload => return Ok(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == workload => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        match forwarded.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(sig) => {
                let _ = kill(workload, sig);
            }
            Err(_) => {}
        }
    }
}

fn mount_err(what: &str, target: &str) -> impl FnOnce(nix::errno::Errno) -> Fail {
    let (what, target) = (what.to_string(), target.to_string());
    move |e| format!("mount {what} at {target}: {e}").into()
}

/// The container's root while it is assembled: every target inside it is resolved by the
/// kernel inside it (`fsroot`), so a symlink in the image, or one a container wrote into a
/// shared volume, can never point a mount at the host.
struct NewRoot(crate::fsroot::Root);

impl NewRoot {
    /// `path` inside the root, made as a directory (or an empty file when `file`) if missing;
    /// held by a descriptor whose `/proc/self/fd` path is what gets mounted on.
    fn target(&self, path: &str, file: bool) -> Result<OwnedFd, Fail> {
        let mode = nix::sys::stat::Mode::from_bits_truncate(if file { 0o644 } else { 0o755 });
        self.0.ensure(Path::new(path), file, mode).map_err(|e| format!("mount target {path:?}: {e}").into())
    }

    /// `path` inside the root if it exists.
    fn existing(&self, path: &str) -> Option<OwnedFd> {
        self.0.open_at(Path::new(path), nix::fcntl::OFlag::O_PATH).ok()
    }

    fn mount(
        &self,
        source: Option<&str>,
        path: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
        file: bool,
    ) -> Result<(), Fail> {
        let target = self.target(path, file)?;
        mount(source, &crate::fsroot::proc_path(&target), fstype, flags, data)
            .map_err(mount_err(source.unwrap_or(""), path))
    }

    /// Hide `path` if it exists: a file under `/dev/null`, a directory under an empty
    /// read-only tmpfs (runc's masked paths).
    fn mask(&self, path: &str) -> Result<(), Fail> {
        let Some(fd) = self.existing(path) else { return Ok(()) };
        let at = crate::fsroot::proc_path(&fd);
        let none: Option<&str> = None;
        if nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR) {
            let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("tmpfs"), &at, Some("tmpfs"), flags, Some("size=0")).map_err(mount_err("tmpfs", path))
        } else {
            mount(Some("/dev/null"), &at, none, MsFlags::MS_BIND, none).map_err(mount_err("/dev/null", path))
        }
    }

    /// Make `path` read-only if it exists (bind it onto itself, then remount that read-only).
    fn read_only(&self, path: &str) -> Result<(), Fail> {
        let Some(fd) = self.existing(path) else { return Ok(()) };
        let none: Option<&str> = None;
        let at = crate::fsroot::proc_path(&fd);
        mount(Some(&at), &at, none, MsFlags::MS_BIND | MsFlags::MS_REC, none).map_err(mount_err("bind", path))?;
        // The descriptor still names what was under the new mount: look the path up again.
        let bound = self.existing(path).ok_or_else(|| format!("{path} vanished"))?;
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC;
        mount(none, &crate::fsroot::proc_path(&bound), none, flags, none).map_err(mount_err("read-only remount", path))
    }
}

/// A volume's `subPath`, resolved below the volume through descriptors (made as a directory
/// when missing, as kubelet does): a symlink in it that leads out of the volume, even one
/// another container of the pod planted a moment ago, is refused (the CVE-2017-1002101 class).
fn sub_path(volume: &Path, sub: &Path) -> Result<OwnedFd, Fail> {
    crate::fsroot::sub_path(volume, sub).map_err(|e| e.into())
}

fn build_root(spec: &ContainerSpec) -> Result<(), Fail> {
    let security = &spec.process.security;
    unshare(CloneFlags::CLONE_NEWNS).map_err(ctx("unshare mount"))?;
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).map_err(ctx("make / private"))?;
    let merged = &spec.rootfs.merged;
    fs::create_dir_all(merged).map_err(ctx("mkdir rootfs"))?;
    let lower: Vec<String> = spec.rootfs.layers.iter().rev().map(|p| p.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        spec.rootfs.upper.display(),
        spec.rootfs.work.display()
    );
    mount(Some("overlay"), merged, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
        .map_err(mount_err("overlay", &merged.display().to_string()))?;
    let root = NewRoot(crate::fsroot::Root::open(merged).map_err(ctx("open the new root"))?);

    let noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    root.mount(Some("proc"), "/proc", Some("proc"), noexec, none, false)?;
    let sys = if security.privileged { noexec } else { noexec | MsFlags::MS_RDONLY };
    root.mount(Some("sysfs"), "/sys", Some("sysfs"), sys, none, false)?;
    if security.privileged {
        // Every device of the host, as upstream gives privileged containers; its own terminals.
        root.mount(Some("/dev"), "/dev", none, MsFlags::MS_BIND | MsFlags::MS_REC, none, false)?;
    } else {
        root.mount(Some("tmpfs"), "/dev", Some("tmpfs"), MsFlags::MS_NOSUID, Some("mode=755,size=65536k"), false)?;
        for node in ["null", "zero", "full", "random", "urandom", "tty"] {
            let host = format!("/dev/{node}");
            root.mount(Some(host.as_str()), &host, none, MsFlags::MS_BIND, none, true)?;
        }
    }
    let pts_options = "newinstance,ptmxmode=0666,mode=0620";
    root.mount(
        Some("devpts"),
        "/dev/pts",
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(pts_options),
        false,
    )?;
    root.mount(Some("shm"), "/dev/shm", Some("tmpfs"), noexec, Some("mode=1777,size=65536k"), false)?;
    // The usual links in the container's own /dev (the host's, bound for a privileged
    // container, is left as it is).
    if !security.privileged {
        let dev = root.target("/dev", false)?;
        for (link, to) in [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            let _ = nix::unistd::symlinkat(to, &dev, link);
        }
    }

    for m in &spec.mounts {
        match &m.kind {
            MountKind::Bind => {
                let (source, file, _held) = match &m.sub_path {
                    None => (m.source.display().to_string(), m.source.is_file(), None),
                    Some(sub) => {
                        let fd = sub_path(&m.source, sub)?;
                        let file =
                            nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR);
                        (crate::fsroot::proc_path(&fd).display().to_string(), file, Some(fd))
                    }
                };
                root.mount(Some(source.as_str()), &m.target, none, MsFlags::MS_BIND | MsFlags::MS_REC, none, file)?;
                if m.read_only {
                    root.read_only(&m.target)?;
                }
            }
            MountKind::Tmpfs(size) => {
                let options = if *size > 0 { format!("size={size}") } else { String::new() };
                let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
                if m.read_only {
                    flags |= MsFlags::MS_RDONLY;
                }
                root.mount(Some("tmpfs"), &m.target, Some("tmpfs"), flags, Some(options.as_str()), false)?;
            }
        }
    }
    if security.mask_paths {
        for path in logic::security::MASKED_PATHS {
            root.mask(path)?;
        }
        for path in logic::security::READONLY_PATHS {
            root.read_only(path)?;
        }
    }
    if security.read_only_root {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(none, merged, none, flags, none).map_err(mount_err("read-only remount", "/"))?;
    }

    // pivot_root(".", "."): the old root ends up stacked on the new one, then is detached.
    std::env::set_current_dir(merged).map_err(ctx("chdir rootfs"))?;
    pivot_root(".", ".").map_err(ctx("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(ctx("detach old root"))?;
    std::env::set_current_dir("/").map_err(ctx("chdir /"))?;
    Ok(())
}

/// `uid[:gid]` or names, looked up in the container's `/etc/passwd` and `/etc/group`.
fn resolve_user(user: &str) -> Result<(Uid, Gid, Vec<Gid>), Fail> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    let entry = |file: &str, key: &str| -> Option<Vec<String>> {
        file.lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() > 2 && (f[0] == key || (key.parse::<u32>().is_ok() && f[2] == key)))
    };
    let (uid, primary) = if u.is_empty() {
        (0, 0)
    } else if let Ok(n) = u.parse::<u32>() {
        (n, entry(&passwd, u).and_then(|f| f.get(3).and_then(|g| g.parse().ok())).unwrap_or(0))
    } else {
        let f =
            entry(&passwd, u).ok_or_else(|| format!("unable to find user {u}: no matching entries in passwd file"))?;
        (f[2].parse().unwrap_or(0), f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0))
    };
    let gid = match g {
        None | Some("") => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => entry(&group, g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("unable to find group {g}: no matching entries in group file"))?,
        },
    };
    // Supplementary groups: those listing the user by name.
    let name = entry(&passwd, &uid.to_string()).map(|f| f[0].clone()).unwrap_or_default();
    let mut groups = vec![Gid::from_raw(gid)];
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() == 4
            && !name.is_empty()
            && f[3].split(',').any(|m| m == name)
            && let Ok(n) = f[2].parse::<u32>()
            && n != gid
        {
            groups.push(Gid::from_raw(n));
        }
    }
    Ok((Uid::from_raw(uid), Gid::from_raw(gid), groups))
}

/// The executable for `argv[0]`: a path as given, else the first match on the container's PATH.
fn find_executable(program: &str, env: &[(String, String)]) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str()).unwrap_or(DEFAULT_PATH);
    path.split(':').map(|dir| Path::new(dir).join(program)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The PATH a container gets when its image sets none (as containerd does).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn cstrings(items: impl IntoIterator<Item = String>) -> Result<Vec<CString>, Fail> {
    items.into_iter().map(|s| CString::new(s).map_err(|e| Fail::from(format!("{e}")))).collect()
}

/// Everything `exec` needs, decided before the fork so the child only makes system calls.
pub(super) struct Launch {
    path: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    cwd: PathBuf,
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    /// Capability numbers kept in the bounding set (for root: effective and permitted after
    /// the exec); the others are dropped.
    keep: Vec<usize>,
    no_new_privileges: bool,
    /// Compiled before the fork: the child only installs them.
    seccomp: Vec<seccompiler::BpfProgram>,
}

impl Launch {
    pub(super) fn prepare(process: &spec::Process) -> Result<Launch, Fail> {
        let program = process.argv.first().ok_or("no command specified")?;
        let mut env = process.env.clone();
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
        }
        if !env.iter().any(|(k, _)| k == "HOME") {
            env.push(("HOME".into(), "/root".into()));
        }
        let path = find_executable(program, &env)
            .ok_or_else(|| format!("exec: {program:?}: executable file not found in $PATH"))?;
        let (uid, gid, mut groups) = resolve_user(&process.user)?;
        let security = &process.security;
        for g in &security.groups {
            let g = Gid::from_raw(*g);
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let cwd = PathBuf::from(if process.cwd.is_empty() { "/" } else { process.cwd.as_str() });
        let keep = security
            .capabilities
            .iter()
            .filter_map(|c| logic::security::CAPABILITIES.iter().position(|k| k == c))
            .collect();
        let seccomp = match security.seccomp {
            logic::security::Seccomp::RuntimeDefault => super::seccomp::runtime_default(&security.capabilities)?,
            logic::security::Seccomp::Unconfined => Vec::new(),
        };
        Ok(Launch {
            path: CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| format!("{e}"))?,
            argv: cstrings(process.argv.iter().cloned())?,
            env: cstrings(env.into_iter().map(|(k, v)| format!("{k}={v}")))?,
            cwd,
            uid,
            gid,
            groups,
            keep,
            no_new_privileges: security.no_new_privileges,
            seccomp,
        })
    }

    /// Drop every capability not kept from the bounding set (so an exec cannot gain it) and
    /// clear the ambient set. Done as root, before the user changes.
    fn drop_capabilities(&self) -> Result<(), String> {
        let last: usize = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(logic::security::CAPABILITIES.len() - 1);
        for cap in (0..=last).filter(|c| !self.keep.contains(c)) {
            // SAFETY: prctl with integer arguments only; no memory is passed.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                return Err(format!("drop capability {cap}: {}", std::io::Error::last_os_error()));
            }
        }
        // SAFETY: as above.
        let rc = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
        if rc != 0 {
            return Err(format!("clear ambient capabilities: {}", std::io::Error::last_os_error()));
        }
        clear_inheritable()
    }

    /// In the child: become the user, enter the working directory, exec. Returns only on error.
    pub(super) fn exec(self) -> String {
        if let Err(e) = fs::create_dir_all(&self.cwd).and_then(|()| std::env::set_current_dir(&self.cwd)) {
            return format!("chdir to cwd ({:?}) set in config.json failed: {e}", self.cwd);
        }
        if let Err(e) = nix::unistd::setgroups(&self.groups) {
            return format!("setgroups: {e}");
        }
        if let Err(e) = nix::unistd::setgid(self.gid) {
            return format!("setgid: {e}");
        }
        if let Err(e) = self.drop_capabilities() {
            return e;
        }
        if self.no_new_privileges
            && let Err(e) = nix::sys::prctl::set_no_new_privs()
        {
            return format!("set no_new_privs: {e}");
        }
        // While still root (installing a filter without no_new_privs takes CAP_SYS_ADMIN); the
        // filter lets through what is left to do: setuid and execve.
        if let Err(e) = super::seccomp::install(&self.seccomp) {
            return e;
        }
        if let Err(e) = nix::unistd::setuid(self.uid) {
            return format!("setuid: {e}");
        }
        match nix::unistd::execve(&self.path, &self.argv, &self.env) {
            Err(e) => format!("exec: {:?}: {e}", self.path),
        }
    }
}

/// Empty the inheritable set, as containerd does since CVE-2022-24769 (an exec must not gain
/// capabilities through files marked inheritable).
fn clear_inheritable() -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header { version: VERSION_3, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: capget fills two `Data` records (version 3) for the calling thread; both structs
    // are laid out as the kernel's and live across the call.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut Header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(format!("capget: {}", std::io::Error::last_os_error()));
    }
    for d in &mut data {
        d.inheritable = 0;
    }
    // SAFETY: as above, for capset reading them.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if rc != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn spawn_workload(process: &spec::Process, stdio: ChildStdio, mut start_error: fs::File) -> Result<Pid, Fail> {
    let launch = Launch::prepare(process);
    // SAFETY: init is single-threaded (a fork of the single-threaded shim).
    match unsafe { fork() }.map_err(ctx("fork workload"))? {
        ForkResult::Child => {
            match stdio {
                ChildStdio::Pipes { stdout, stderr, stdin } => {
                    match stdin {
                        Some(fd) => {
                            let _ = nix::unistd::dup2_stdin(&fd);
                        }
                        None => {
                            if let Ok(null) = fs::File::open("/dev/null") {
                                let _ = nix::unistd::dup2_stdin(&null);
                            }
                        }
                    }
                    let _ = nix::unistd::dup2_stdout(&stdout);
                    let _ = nix::unistd::dup2_stderr(&stderr);
                }
                ChildStdio::Tty(slave) => {
                    let _ = setsid();
                    // SAFETY: TIOCSCTTY on the terminal this child just received.
                    unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
                    let _ = nix::unistd::dup2_stdin(&slave);
                    let _ = nix::unistd::dup2_stdout(&slave);
                    let _ = nix::unistd::dup2_stderr(&slave);
                }
            }
            let message = match launch {
                Err(e) => e.to_string(),
                Ok(launch) => launch.exec(),
            };
            let _ = start_error.write_all(message.as_bytes());
            let _ = writeln!(std::io::stderr(), "{message}");
            std::process::exit(spec::START_FAILURE);
        }
        ForkResult::Parent { child } => {
            drop(stdio);
            drop(start_error);
            Ok(child)
        }
    }
}

/// Entry point of `ordinal __exec <state-dir> <tty 0|1> -- argv…`: run a command in a running
/// container's namespaces and cgroups with its environment; the exit code is the command's.
pub fn exec_main(state_dir: &Path, tty: bool, argv: Vec<String>) -> i32 {
    match exec_in(state_dir, tty, argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            126
        }
    }
}

fn exec_in(state_dir: &Path, tty: bool, argv: Vec<String>) -> Result<i32, Fail> {
    let raw = fs::read(state_dir.join(spec::SPEC_FILE)).map_err(ctx("read spec"))?;
    let spec: ContainerSpec = serde_json::from_slice(&raw).map_err(ctx("parse spec"))?;
    let pid: i32 = fs::read_to_string(state_dir.join(spec::INIT_PID_FILE))
        .map_err(ctx("container is not running"))?
        .trim()
        .parse()
        .map_err(ctx("init.pid"))?;
    let mut namespaces = Vec::new();
    for (kind, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let path = format!("/proc/{pid}/ns/{kind}");
        let file = fs::File::open(&path).map_err(ctx(format!("container is not running ({path})")))?;
        namespaces.push((flag, file));
    }
    for procs in &spec.cgroup_procs {
        let _ = fs::write(procs, std::process::id().to_string());
    }
    for (flag, file) in &namespaces {
        setns(file.as_fd(), *flag).map_err(ctx(format!("setns {flag:?}")))?;
    }
    drop(namespaces);
    let process = spec::Process { argv, tty, ..spec.process.clone() };
    let launch = Launch::prepare(&process)?;
    // SAFETY: the exec helper is a fresh single-threaded process.
    match unsafe { fork() }.map_err(ctx("fork"))? {
        ForkResult::Child => {
            if process.tty {
                let _ = setsid();
                // SAFETY: make the inherited terminal (stdin) the controlling one.
                unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
            }
            let message = launch.exec();
            eprintln!("{message}");
            std::process::exit(if message.contains("not found") { 127 } else { 126 });
        }
        ForkResult::Parent { child } => Ok(wait_exit(child)?.exit_code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(log: PathBuf, max_bytes: u64, max_files: u32) -> ContainerSpec {
        ContainerSpec {
            id: "ns/pod/c".into(),
            namespaces: Vec::new(),
            cgroup_procs: Vec::new(),
            rootfs: spec::Rootfs {
                layers: Vec::new(),
                upper: PathBuf::new(),
                work: PathBuf::new(),
                merged: PathBuf::new(),
            },
            mounts: Vec::new(),
            process: spec::Process {
                argv: Vec::new(),
                env: Vec::new(),
                cwd: String::new(),
                user: String::new(),
                stdin: false,
                stdin_once: false,
                tty: false,
                security: logic::security::SecurityPlan::unconfined(),
            },
            log,
            log_max_bytes: max_bytes,
            log_max_files: max_files,
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
    }

    #[test]
    fn output_becomes_cri_records_with_partial_lines_marked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("0.log");
        let mut writer = LogWriter::open(&spec(log.clone(), 1 << 20, 2)).expect("open");
        writer.write("stdout", b"one\ntw");
        writer.write("stderr", b"err\r\n");
        writer.write("stdout", b"o\n");
        writer.write("stdout", b"tail");
        writer.finish("stdout");
        let records: Vec<(String, String, String)> = lines(&log)
            .iter()
            .map(|l| {
                let mut p = l.splitn(4, ' ');
                let time = p.next().unwrap_or_default();
                assert!(time.parse::<jiff::Timestamp>().is_ok(), "{time}");
                let stream = p.next().unwrap_or_default().to_string();
                let tag = p.next().unwrap_or_default().to_string();
                (stream, tag, p.next().unwrap_or_default().to_string())
            })
            .collect();
        let expect = |s: &str, t: &str, c: &str| (s.to_string(), t.to_string(), c.to_string());
        assert_eq!(
            records,
            vec![
                expect("stdout", "F", "one"),
                expect("stderr", "F", "err"),
                expect("stdout", "F", "two"),
                expect("stdout", "F", "tail")
            ]
        );
    }

    #[test]
    fn logs_rotate_keeping_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("0.log");
        let mut writer = LogWriter::open(&spec(log.clone(), 4096, 3)).expect("open");
        for i in 0..400 {
            writer.write("stdout", format!("line {i:04} {}\n", "x".repeat(40)).as_bytes());
        }
        let rotated: Vec<PathBuf> = (1..5).map(|i| PathBuf::from(format!("{}.{i}", log.display()))).collect();
        assert!(rotated[0].exists() && rotated[1].exists(), "two older files kept");
        assert!(!rotated[2].exists(), "no more than max_files in all");
        for path in [&log, &rotated[0], &rotated[1]] {
            assert!(fs::metadata(path).map(|m| m.len()).unwrap_or(0) <= 4096, "{} within the limit", path.display());
        }
        // The newest lines are in the live file, in order, none lost at the boundary.
        let live = lines(&log);
        assert!(live.last().is_some_and(|l| l.contains("line 0399")));
        let older = lines(&rotated[0]);
        let last_older: u32 = older.last().and_then(|l| l.split_whitespace().nth(4)?.parse().ok()).unwrap_or(0);
        let first_live: u32 = live.first().and_then(|l| l.split_whitespace().nth(4)?.parse().ok()).unwrap_or(0);
        assert_eq!(first_live, last_older + 1);
    }
}
