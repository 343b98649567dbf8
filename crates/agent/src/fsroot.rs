//! Paths inside a root, resolved by the kernel inside it. Whatever names a path under a
//! container's root, a layer or a volume (image content, a tar entry, a `mountPath`, a
//! `subPath`, an item's `path`) is opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! from a descriptor of the root: symlinks and `..` are followed as if the root were `/`, so they
//! can never lead out of it, and `/proc` magic links are refused. Files and directories are then
//! made relative to descriptors of their resolved parents (`mkdirat`, `mknodat`, …), never by
//! joining strings on the host and following them.
//!
//! This is what `libpathrs` does for runc, with the kernel doing the resolution (Linux 5.6+);
//! Ordinal needs nothing else from it, so nix's `openat2` is used directly rather than a second
//! crate.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

/// A directory that paths are resolved inside of.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// Where it is, for messages.
    path: PathBuf,
}

/// How a path may be resolved below a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// As if the root were `/`: symlinks and `..` are followed but stop at the root (an image's
    /// own absolute symlinks mean paths inside it).
    InRoot,
    /// Only below the root: a symlink or `..` that would leave it is an error (`EXDEV`), as
    /// kubelet refuses a `subPath` that leads out of its volume.
    Beneath,
}

fn how(flags: OFlag, mode: Mode, scope: Scope) -> OpenHow {
    let resolve = match scope {
        Scope::InRoot => ResolveFlag::RESOLVE_IN_ROOT,
        Scope::Beneath => ResolveFlag::RESOLVE_BENEATH,
    };
    OpenHow::new().flags(flags | OFlag::O_CLOEXEC).mode(mode).resolve(resolve | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

fn err(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// The components of `path` below the root, `..` included (resolution keeps it inside);
/// `/`, `.` and empty components dropped.
fn parts(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// `parts` as a path relative to the root's descriptor.
fn relative(parts: &[OsString]) -> PathBuf {
    let mut p = PathBuf::from(".");
    for part in parts {
        p.push(part);
    }
    p
}

impl Root {
    /// Open `path` (a trusted path: the data dir's own layout) as a root.
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(err)?;
        Ok(Root { fd, path: path.to_path_buf() })
    }

    /// The root's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Where the root is, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path` as it reads to someone inside (for messages).
    pub fn display(&self, path: &Path) -> String {
        format!("{} (in {})", relative(&parts(path)).display(), self.path.display())
    }

    /// Open `path` inside the root with `flags` (`O_PATH` to only hold it).
    pub fn open_at(&self, path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        openat2(&self.fd, &relative(&parts(path)), how(flags, Mode::empty(), Scope::InRoot)).map_err(err)
    }

    /// Open `path` below the root, refusing (`EXDEV`) a symlink or `..` that leads out of it.
    pub fn open_beneath(&self, path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        openat2(&self.fd, &relative(&parts(path)), how(flags, Mode::empty(), Scope::Beneath)).map_err(err)
    }

    /// As [`Root::mkdir_all`], but refusing (`EXDEV`) a symlink or `..` that leads out of the
    /// root instead of confining it.
    pub fn mkdir_all_beneath(&self, path: &Path, mode: Mode) -> io::Result<OwnedFd> {
        Ok(self.walk(parts(path), Some(mode), Scope::Beneath)?.0)
    }

    /// Open `path` inside the root, not following it if it is itself a symlink.
    pub fn open_nofollow(&self, path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        self.open_at(path, flags | OFlag::O_NOFOLLOW)
    }

    /// The directory holding `path`'s last component (made if missing, with `mode`), and that
    /// component; None for the root itself.
    pub fn parent(&self, path: &Path, mode: Mode) -> io::Result<Option<(OwnedFd, OsString)>> {
        let mut dirs = parts(path);
        let Some(name) = dirs.pop() else { return Ok(None) };
        let (dir, _) = self.walk(dirs, Some(mode), Scope::InRoot)?;
        Ok(Some((dir, name)))
    }

    /// Make every missing directory of `path` inside the root (with `mode`), following
    /// symlinks as if the root were `/` (a dangling one leads to a directory made where it
    /// points, inside the root); the last one, opened `O_PATH`.
    pub fn mkdir_all(&self, path: &Path, mode: Mode) -> io::Result<OwnedFd> {
        Ok(self.walk(parts(path), Some(mode), Scope::InRoot)?.0)
    }

    /// Walk `parts` from the root one component at a time, through descriptors: a symlink's
    /// target is read and walked in its place (from the root when absolute), `..` never rises
    /// above the root, and a missing directory is made when `mkdir` says with what mode. Returns
    /// the directory reached and its components from the root.
    fn walk(&self, path: Vec<OsString>, mkdir: Option<Mode>, scope: Scope) -> io::Result<(OwnedFd, Vec<OsString>)> {
        let mut todo: std::collections::VecDeque<OsString> = path.into();
        let mut done: Vec<OsString> = Vec::new();
        let mut dir = self.fd.try_clone()?;
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            if name == ".." {
                if done.is_empty() && scope == Scope::Beneath {
                    return Err(err(Errno::EXDEV));
                }
                done.pop();
                dir = self.reopen(&done)?;
                continue;
            }
            if !is_plain_name(&name) {
                continue;
            }
            let next = match nix::fcntl::openat(
                &dir,
                name.as_os_str(),
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if mkdir.is_some() => {
                    let mode = mkdir.unwrap_or(Mode::empty());
                    match nix::sys::stat::mkdirat(&dir, name.as_os_str(), mode) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(err(e)),
                    }
                    todo.push_front(name);
                    continue;
                }
                Err(e) => return Err(err(e)),
            };
            let kind = nix::sys::stat::fstat(&next).map_err(err)?.st_mode & libc::S_IFMT;
            if kind == libc::S_IFLNK {
                links += 1;
                if links > 40 {
                    return Err(err(Errno::ELOOP));
                }
                let target = nix::fcntl::readlinkat(&next, "").map_err(err)?;
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    if scope == Scope::Beneath {
                        return Err(err(Errno::EXDEV));
                    }
                    done.clear();
                    dir = self.fd.try_clone()?;
                }
                let mut spliced = parts(&target);
                spliced.extend(todo.drain(..));
                todo = spliced.into();
                continue;
            }
            if kind != libc::S_IFDIR {
                return Err(err(Errno::ENOTDIR));
            }
            done.push(name);
            dir = next;
        }
        Ok((dir, done))
    }

    /// The directory at `parts` from the root (components already resolved).
    fn reopen(&self, parts: &[OsString]) -> io::Result<OwnedFd> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        openat2(&self.fd, &relative(parts), how(flags, Mode::empty(), Scope::InRoot)).map_err(err)
    }

    /// Make sure `path` exists inside the root as a directory, or (`file`) as a file (empty if
    /// it is made), following symlinks inside the root as [`Root::mkdir_all`] does; opened
    /// `O_PATH`, to be a mount target through [`proc_path`].
    pub fn ensure(&self, path: &Path, file: bool, mode: Mode) -> io::Result<OwnedFd> {
        if !file {
            return self.mkdir_all(path, mode);
        }
        let dir_mode = Mode::from_bits_truncate(0o755);
        let mut path = path.to_path_buf();
        for _ in 0..40 {
            let mut dirs = parts(&path);
            let Some(name) = dirs.pop().filter(|n| is_plain_name(n)) else {
                return Err(io::Error::other(format!("{} is not a file name", path.display())));
            };
            let (dir, at) = self.walk(dirs, Some(dir_mode), Scope::InRoot)?;
            let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            match nix::fcntl::openat(&dir, name.as_os_str(), flags, Mode::empty()) {
                Ok(fd) if nix::sys::stat::fstat(&fd).map_err(err)?.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                    // Make the file where the link points, inside the root.
                    let target = PathBuf::from(nix::fcntl::readlinkat(&fd, "").map_err(err)?);
                    path = if target.is_absolute() { target } else { at.iter().collect::<PathBuf>().join(target) };
                }
                Ok(fd) => return Ok(fd),
                Err(Errno::ENOENT) => {
                    let create =
                        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                    match nix::fcntl::openat(&dir, name.as_os_str(), create, mode) {
                        Ok(_) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(err(e)),
                    }
                    return nix::fcntl::openat(&dir, name.as_os_str(), flags, Mode::empty()).map_err(err);
                }
                Err(e) => return Err(err(e)),
            }
        }
        Err(err(Errno::ELOOP))
    }
}

/// A volume's `subPath`: resolved below the volume (a link out of it is refused, as kubelet
/// refuses it), made as a directory when missing. The kubelet checks it before a start (to
/// report why) and the shim resolves it again to mount what it resolved.
pub fn sub_path(volume: &Path, sub: &Path) -> Result<OwnedFd, String> {
    let root = Root::open(volume).map_err(|e| format!("open volume {}: {e}", volume.display()))?;
    let why = |e: io::Error| {
        let reason =
            if e.raw_os_error() == Some(libc::EXDEV) { "leads out of its volume".to_string() } else { e.to_string() };
        format!("subPath {:?} {reason}", sub.display().to_string())
    };
    match root.open_beneath(sub, OFlag::O_PATH) {
        Ok(fd) => Ok(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            root.mkdir_all_beneath(sub, Mode::from_bits_truncate(0o755)).map_err(why)
        }
        Err(e) => Err(why(e)),
    }
}

/// The `/proc/self/fd` path of a descriptor: how `mount(2)` and friends are pointed at
/// something resolved safely (the kernel uses the descriptor's file, not a path walk).
pub fn proc_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A name for a single component (no `/`, not `.` or `..`, not empty).
pub fn is_plain_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty() && bytes != b"." && bytes != b".." && !bytes.contains(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> (tempfile::TempDir, tempfile::TempDir, Root) {
        let outside = tempfile::tempdir().expect("outside");
        let dir = tempfile::tempdir().expect("root");
        std::fs::write(outside.path().join("secret"), "host").expect("secret");
        let root = Root::open(dir.path()).expect("open");
        (outside, dir, root)
    }

    #[test]
    fn symlinks_and_dotdot_stay_inside() {
        let (outside, dir, root) = root();
        // An absolute symlink, a relative one climbing out, and `..` in the path itself.
        symlink(outside.path(), dir.path().join("abs")).expect("symlink");
        symlink("../../../../../../..", dir.path().join("up")).expect("symlink");
        for path in ["abs/secret", "up/secret", "../../secret", "/abs/secret"] {
            assert!(root.open_at(Path::new(path), OFlag::O_RDONLY).is_err(), "{path} reached the host");
        }
        // Directories made through those links are made inside.
        root.mkdir_all(Path::new("abs/made"), Mode::from_bits_truncate(0o755)).expect("mkdir");
        assert!(!outside.path().join("made").exists());
        let inside = dir.path().join(outside.path().strip_prefix("/").expect("absolute")).join("made");
        assert!(inside.is_dir(), "{}", inside.display());
        root.ensure(Path::new("up/file"), true, Mode::from_bits_truncate(0o644)).expect("file");
        assert!(dir.path().join("file").is_file());
    }

    #[test]
    fn beneath_refuses_what_in_root_confines() {
        let (outside, dir, root) = root();
        symlink(outside.path(), dir.path().join("abs")).expect("symlink");
        symlink("../../..", dir.path().join("up")).expect("symlink");
        std::fs::create_dir(dir.path().join("real")).expect("mkdir");
        symlink("real", dir.path().join("inside")).expect("symlink");
        let exdev = |r: io::Result<OwnedFd>| r.map(drop).map_err(|e| e.raw_os_error());
        let mode = Mode::from_bits_truncate(0o755);
        for path in ["abs", "abs/new", "up/x", "../x"] {
            assert_eq!(exdev(root.open_beneath(Path::new(path), OFlag::O_PATH)), Err(Some(libc::EXDEV)), "{path}");
            assert_eq!(exdev(root.mkdir_all_beneath(Path::new(path), mode)), Err(Some(libc::EXDEV)), "{path}");
        }
        // Symlinks that stay below are followed.
        root.mkdir_all_beneath(Path::new("inside/made"), mode).expect("inside");
        assert!(dir.path().join("real/made").is_dir());
        assert!(root.open_beneath(Path::new("inside/made"), OFlag::O_PATH).is_ok());
    }

    #[test]
    fn magic_links_are_refused() {
        let (_outside, dir, root) = root();
        symlink("/proc/self/root/etc", dir.path().join("escape")).expect("symlink");
        std::fs::create_dir_all(dir.path().join("proc/self")).expect("mkdir");
        // Through /proc of the root itself there is nothing; a magic link in a real /proc is
        // refused by RESOLVE_NO_MAGICLINKS.
        assert!(root.open_at(Path::new("escape/passwd"), OFlag::O_RDONLY).is_err());
        let proc = Root::open(Path::new("/proc")).expect("proc");
        assert_eq!(
            proc.open_at(Path::new("self/root/etc/passwd"), OFlag::O_RDONLY).map(drop).map_err(|e| e.raw_os_error()),
            Err(Some(libc::ELOOP))
        );
    }

    #[test]
    fn plain_names() {
        for (name, ok) in [("a", true), (".wh.a", true), ("", false), (".", false), ("..", false), ("a/b", false)] {
            assert_eq!(is_plain_name(OsStr::new(name)), ok, "{name:?}");
        }
    }
}
