//! What the kubelet serves for `kubectl logs`, `exec` and `attach`: a container's log read back
//! from its CRI-format file (tail, since, timestamps, follow, previous run), a command run in a
//! running container (pipes, or a terminal with resize), and a connection to the container's
//! own standard streams through its shim.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::runtime::spec::frame;
use crate::runtime::{ContainerRef, ContainerState, Runtime};

/// Why a stream cannot be served (mapped to 400 / 404 / 500 by the API server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    BadRequest(String),
    NotFound(String),
    Internal(String),
}

/// Input from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin(Vec<u8>),
    CloseStdin,
    Resize { width: u16, height: u16 },
}

/// A running exec or attach.
pub struct Session {
    /// `(1, data)` stdout, `(2, data)` stderr.
    pub output: mpsc::Receiver<(u8, Vec<u8>)>,
    pub input: mpsc::UnboundedSender<Input>,
    pub exit: oneshot::Receiver<Result<i32, String>>,
}

/// The latest run of a container, if it has one.
pub fn latest<R: Runtime>(runtime: &R, pod_uid: &str, name: &str) -> Option<ContainerRef> {
    let attempt = *runtime.attempts(pod_uid, name).last()?;
    Some(ContainerRef { pod_uid: pod_uid.into(), name: name.into(), attempt })
}

fn running<R: Runtime>(runtime: &R, pod_uid: &str, name: &str) -> Result<ContainerRef, StreamError> {
    latest(runtime, pod_uid, name).filter(|c| matches!(runtime.state(c), ContainerState::Running { .. })).ok_or_else(
        || StreamError::BadRequest(format!("unable to upgrade connection: container not found (\"{name}\")")),
    )
}

/// Run `argv` in the running container.
pub async fn exec<R: Runtime>(
    runtime: &Arc<R>,
    pod_uid: &str,
    name: &str,
    argv: Vec<String>,
    stdin: bool,
    tty: bool,
) -> Result<Session, StreamError> {
    let cref = running(runtime.as_ref(), pod_uid, name)?;
    let mut command = runtime.exec_command(&cref, &argv, tty);
    let (out_tx, output) = mpsc::channel(64);
    let (input, mut in_rx) = mpsc::unbounded_channel::<Input>();
    let (exit_tx, exit) = oneshot::channel();
    if tty {
        let pty = nix::pty::openpty(None, None).map_err(|e| StreamError::Internal(format!("openpty: {e}")))?;
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| StreamError::Internal(e.to_string()));
        command.stdin(dup(&pty.slave)?).stdout(dup(&pty.slave)?).stderr(dup(&pty.slave)?);
        let mut child = command.kill_on_drop(true).spawn().map_err(|e| StreamError::Internal(e.to_string()))?;
        drop(pty.slave);
        let resize_fd = dup(&pty.master)?;
        let mut reader = tokio::fs::File::from_std(std::fs::File::from(dup(&pty.master)?));
        let mut writer = tokio::fs::File::from_std(std::fs::File::from(pty.master));
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            // EIO once the command and everything it started have closed the terminal.
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 || out_tx.send((1, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(i) = in_rx.recv().await {
                match i {
                    Input::Stdin(data) => {
                        if writer.write_all(&data).await.is_err() {
                            break;
                        }
                        let _ = writer.flush().await;
                    }
                    Input::Resize { width, height } => set_window_size(&resize_fd, width, height),
                    // A terminal has no half-close; the user ends the session by ending the shell.
                    Input::CloseStdin => {}
                }
            }
        });
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = exit_tx.send(status.map(|s| s.code().unwrap_or(137)).map_err(|e| e.to_string()));
        });
    } else {
        command
            .stdin(if stdin { std::process::Stdio::piped() } else { std::process::Stdio::null() })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.kill_on_drop(true).spawn().map_err(|e| StreamError::Internal(e.to_string()))?;
        let mut child_in = child.stdin.take();
        for (channel, pipe) in [
            (1u8, child.stdout.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>)),
            (2u8, child.stderr.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>)),
        ] {
            let Some(mut pipe) = pipe else { continue };
            let tx = out_tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 || tx.send((channel, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(out_tx);
        tokio::spawn(async move {
            while let Some(i) = in_rx.recv().await {
                match i {
                    Input::Stdin(data) => {
                        if let Some(w) = child_in.as_mut()
                            && w.write_all(&data).await.is_err()
                        {
                            child_in = None;
                        }
                    }
                    Input::CloseStdin => child_in = None,
                    Input::Resize { .. } => {}
                }
            }
        });
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = exit_tx.send(status.map(|s| s.code().unwrap_or(137)).map_err(|e| e.to_string()));
        });
    }
    Ok(Session { output, input, exit })
}

nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

fn set_window_size(fd: &OwnedFd, cols: u16, rows: u16) {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: `fd` is an open terminal master owned by this session; `size` outlives the call.
    let _ = unsafe { tiocswinsz(fd.as_raw_fd(), &size) };
}

/// Connect to the running container's own standard streams.
pub async fn attach<R: Runtime>(runtime: &Arc<R>, pod_uid: &str, name: &str) -> Result<Session, StreamError> {
    let cref = running(runtime.as_ref(), pod_uid, name)?;
    let attached_at_ns = jiff::Timestamp::now().as_nanosecond();
    let stream = runtime.attach(&cref).await.map_err(|e| StreamError::Internal(e.to_string()))?;
    let (mut reader, mut writer) = stream.into_split();
    let (out_tx, output) = mpsc::channel(64);
    let (input, mut in_rx) = mpsc::unbounded_channel::<Input>();
    let (exit_tx, exit) = oneshot::channel();
    let watched = runtime.clone();
    tokio::spawn(async move {
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut received = false;
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
            received = true;
            pending.extend_from_slice(&buf[..n]);
            for (kind, payload) in frame::decode(&mut pending) {
                let channel = if kind == frame::STDERR { 2 } else { 1 };
                if out_tx.send((channel, payload)).await.is_err() {
                    return;
                }
            }
        }
        // The container's streams closed: the attachment is over (its exit code is in the
        // pod's status, where kubectl reads it). If nothing came through and the container has
        // ended, it most likely ended (and wrote what it had to say) around the moment of
        // attaching, racing the running check: say it is not running, as kubelet does for a
        // container that is not, and kubectl shows its logs instead of nothing.
        if !received {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), watched.wait(&cref)).await;
            if let ContainerState::Exited { record, .. } = watched.state(&cref) {
                tracing::debug!(container = %cref.name, ended_before = record.finished_at_ns <= attached_at_ns, "attached to an ended container");
                let _ = exit_tx.send(Err(format!("container {:?} is not running", cref.name)));
                return;
            }
        }
        let _ = exit_tx.send(Ok(0));
    });
    tokio::spawn(async move {
        while let Some(i) = in_rx.recv().await {
            let message = match i {
                Input::Stdin(data) => frame::encode(frame::STDIN, &data),
                Input::CloseStdin => frame::encode(frame::CLOSE_STDIN, &[]),
                Input::Resize { width, height } => {
                    let mut size = width.to_be_bytes().to_vec();
                    size.extend_from_slice(&height.to_be_bytes());
                    frame::encode(frame::RESIZE, &size)
                }
            };
            if writer.write_all(&message).await.is_err() {
                break;
            }
        }
    });
    Ok(Session { output, input, exit })
}

/// What `kubectl logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogRequest {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    /// Only records at or after this instant.
    pub since: Option<jiff::Timestamp>,
    pub limit_bytes: Option<i64>,
}

/// One record of a CRI log line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    time: String,
    full: bool,
    content: Vec<u8>,
}

fn parse_record(line: &[u8]) -> Option<Record> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = String::from_utf8_lossy(parts.next()?).to_string();
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or_default().to_vec();
    Some(Record { time, full: tag != b"P", content })
}

/// Render records as `kubectl logs` prints them.
fn render(records: &[Record], request: &LogRequest) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at_line_start = true;
    for r in records {
        if request.timestamps && at_line_start {
            out.extend_from_slice(r.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&r.content);
        if r.full {
            out.push(b'\n');
        }
        at_line_start = r.full;
    }
    out
}

/// Keep records after `since`, then the last `tail` lines.
fn select(records: Vec<Record>, request: &LogRequest) -> Vec<Record> {
    let mut records: Vec<Record> = match request.since {
        Some(since) => records
            .into_iter()
            .filter(|r| r.time.parse::<jiff::Timestamp>().map(|t| t >= since).unwrap_or(true))
            .collect(),
        None => records,
    };
    if let Some(tail) = request.tail_lines {
        let tail = tail.max(0) as usize;
        // Count complete lines from the end; a line may span several partial records.
        let mut lines = 0usize;
        let mut start = records.len();
        for (i, r) in records.iter().enumerate().rev() {
            if r.full {
                if lines == tail {
                    break;
                }
                lines += 1;
            }
            start = i;
        }
        if tail == 0 {
            start = records.len();
        }
        records.drain(..start);
    }
    records
}

/// A container's log, as chunks; with `follow`, more chunks until the run ends.
pub fn logs<R: Runtime>(
    runtime: &Arc<R>,
    pod_uid: &str,
    pod_name: &str,
    name: &str,
    waiting_reason: Option<String>,
    request: LogRequest,
) -> Result<mpsc::Receiver<Vec<u8>>, StreamError> {
    let current = latest(runtime.as_ref(), pod_uid, name);
    let cref = if request.previous {
        current.filter(|c| c.attempt > 0).map(|c| ContainerRef { attempt: c.attempt - 1, ..c }).ok_or_else(|| {
            StreamError::BadRequest(format!("previous terminated container \"{name}\" in pod \"{pod_name}\" not found"))
        })?
    } else {
        current.ok_or_else(|| {
            StreamError::BadRequest(format!(
                "container \"{name}\" in pod \"{pod_name}\" is waiting to start: {}",
                waiting_reason.unwrap_or_else(|| "ContainerCreating".into())
            ))
        })?
    };
    let path = runtime.log_path(&cref);
    let (tx, rx) = mpsc::channel(16);
    let runtime = runtime.clone();
    tokio::spawn(async move {
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => return,
        };
        let mut text = Vec::new();
        if file.read_to_end(&mut text).is_err() {
            return;
        }
        let mut offset = text.len() as u64;
        let complete = text.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
        let mut carry = text.split_off(complete);
        offset -= carry.len() as u64;
        carry.clear();
        let records: Vec<Record> = text.split(|b| *b == b'\n').filter_map(parse_record).collect();
        let mut budget = request.limit_bytes.map(|n| n.max(0) as usize);
        let send = |bytes: Vec<u8>, budget: &mut Option<usize>| -> Option<Vec<u8>> {
            match budget {
                Some(0) => None,
                Some(left) => {
                    let take = bytes.len().min(*left);
                    *left -= take;
                    Some(bytes[..take].to_vec())
                }
                None => Some(bytes),
            }
        };
        let first = render(&select(records, &request), &request);
        if let Some(chunk) = send(first, &mut budget) {
            if !chunk.is_empty() && tx.send(chunk).await.is_err() {
                return;
            }
        } else {
            return;
        }
        if !request.follow {
            return;
        }
        // Follow: read what is appended until the run has ended and the file is drained.
        loop {
            let ended = !matches!(runtime.state(&cref), ContainerState::Running { .. });
            let mut more = Vec::new();
            if file.seek(SeekFrom::Start(offset)).is_ok() {
                let _ = file.read_to_end(&mut more);
            }
            let complete = more.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
            more.truncate(complete);
            offset += more.len() as u64;
            if !more.is_empty() {
                let records: Vec<Record> = more.split(|b| *b == b'\n').filter_map(parse_record).collect();
                let follow_request = LogRequest { tail_lines: None, since: None, ..request.clone() };
                match send(render(&records, &follow_request), &mut budget) {
                    Some(chunk) => {
                        if tx.send(chunk).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                }
            } else if ended {
                return;
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(lines: &[&str]) -> Vec<Record> {
        lines.iter().filter_map(|l| parse_record(l.as_bytes())).collect()
    }

    #[test]
    fn records_render_with_and_without_timestamps() {
        let r = records(&[
            "2026-01-01T00:00:01Z stdout F one",
            "2026-01-01T00:00:02Z stdout P tw",
            "2026-01-01T00:00:02Z stdout F o",
            "2026-01-01T00:00:03Z stderr F three",
        ]);
        let plain = LogRequest::default();
        assert_eq!(String::from_utf8_lossy(&render(&r, &plain)), "one\ntwo\nthree\n");
        let stamped = LogRequest { timestamps: true, ..Default::default() };
        assert_eq!(
            String::from_utf8_lossy(&render(&r, &stamped)),
            "2026-01-01T00:00:01Z one\n2026-01-01T00:00:02Z two\n2026-01-01T00:00:03Z three\n"
        );
    }

    #[test]
    fn tail_counts_lines_and_since_filters_by_time() {
        let r = records(&[
            "2026-01-01T00:00:01Z stdout F one",
            "2026-01-01T00:00:02Z stdout P tw",
            "2026-01-01T00:00:02Z stdout F o",
            "2026-01-01T00:00:03Z stderr F three",
        ]);
        let tail = |n| {
            let req = LogRequest { tail_lines: Some(n), ..Default::default() };
            String::from_utf8_lossy(&render(&select(r.clone(), &req), &req)).to_string()
        };
        assert_eq!(tail(1), "three\n");
        assert_eq!(tail(2), "two\nthree\n");
        assert_eq!(tail(10), "one\ntwo\nthree\n");
        assert_eq!(tail(0), "");
        let since = LogRequest { since: "2026-01-01T00:00:02Z".parse().ok(), ..Default::default() };
        assert_eq!(String::from_utf8_lossy(&render(&select(r, &since), &since)), "two\nthree\n");
    }
}
