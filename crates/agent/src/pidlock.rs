//! A lock file that names its holder: an exclusive, non-blocking `flock` on a file that then
//! holds this process's pid. The kernel releases it when the process ends however it ends
//! (`kill -9` included), so a stale file never blocks anyone; a second taker is refused with
//! the holder's pid. The descriptor is close-on-exec: helpers the holder starts never hold it.
//! Used for a server's data dir and for its bridge.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum PidLockError {
    /// Another process holds it (its pid, once it has written it).
    #[error("{what} is in use by another ordinal server{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse { what: String, pid: Option<u32> },
    #[error("lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Held until dropped (or the process ends).
#[derive(Debug)]
pub struct PidLock {
    _file: Flock<File>,
}

impl PidLock {
    /// Take the lock at `path` for `what` (named in the refusal, e.g. `data dir /x`).
    pub fn take(path: &Path, what: &str) -> Result<PidLock, PidLockError> {
        let io_error = |source| PidLockError::Io { path: path.to_path_buf(), source };
        // Not truncated before the lock is ours: a refused taker still reads the holder's pid.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_error)?;
        // A holder that is gone can still hold the lock for a moment: a child it was starting
        // when it was killed has the descriptor until it execs. Such a lock is waited for.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut file = file;
        let mut file = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => break locked,
                Err((mut unlocked, nix::errno::Errno::EWOULDBLOCK)) => {
                    let mut holder = String::new();
                    let _ = unlocked.rewind();
                    let _ = unlocked.read_to_string(&mut holder);
                    let pid: Option<u32> = holder.trim().parse().ok();
                    if pid.is_some_and(|p| i32::try_from(p).is_ok_and(crate::runtime::is_alive))
                        || std::time::Instant::now() > deadline
                    {
                        return Err(PidLockError::InUse { what: what.to_string(), pid });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    file = unlocked;
                }
                Err((_, errno)) => return Err(io_error(io::Error::from(errno))),
            }
        };
        file.set_len(0).map_err(io_error)?;
        file.rewind().map_err(io_error)?;
        writeln!(*file, "{}", std::process::id()).map_err(io_error)?;
        Ok(PidLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_with_the_holders_pid_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.lock");
        let held = PidLock::take(&path, "thing x").expect("first");
        let refused = PidLock::take(&path, "thing x").map(drop).expect_err("second");
        assert_eq!(
            refused.to_string(),
            format!("thing x is in use by another ordinal server (pid {})", std::process::id())
        );
        drop(held);
        PidLock::take(&path, "thing x").expect("free again");
    }
}
