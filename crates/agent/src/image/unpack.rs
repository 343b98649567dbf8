//! Unpacking layers for overlayfs: each layer once, into its own directory under
//! `images/layers/<hex of the diff id>`, with ownership, permissions and hard links as in the
//! tar, and the OCI whiteouts turned into overlayfs ones (`.wh.NAME` → a 0/0 character device
//! `NAME`; `.wh..wh..opq` → the `trusted.overlay.opaque` xattr on its directory). Containers then
//! stack the layer directories as overlay lower dirs and share them.
//!
//! A layer is hostile until proven otherwise. The `tar` crate only reads the archive (headers,
//! PAX records, long names); every file is made by this module through [`Root`]: each entry's
//! parent is resolved inside the layer directory component by component through descriptors
//! (symlinks followed as if the layer were `/`, `..` never rising above it, so absolute names,
//! `../` and symlinks planted earlier in the layer all land inside it, as containerd confines
//! them), and the entry is made relative to that descriptor (`mkdirat`, `openat(O_CREAT |
//! O_EXCL | O_NOFOLLOW)`, `symlinkat`, `linkat` without following, `mknodat`), its metadata set
//! through a descriptor of the entry itself, never through a path. An entry that names an
//! existing one replaces it (a directory merges with a directory); what is removed is never
//! followed. A name ending in `..`, or an empty one, is refused. Character and block devices are
//! not made: see [`Unpacker::apply`].
//!
//! The diff id names the directory only once it is a valid digest, and the uncompressed stream
//! is hashed while it is unpacked: content that does not hash to its diff id fails the unpack.
//! (Compressed blobs were checked against their digests when they entered the store.) A layer
//! is unpacked into a private staging directory, synced, and renamed into place only once
//! complete and verified, so a layer directory, once it exists, is complete (after `kill -9` or
//! a power cut); concurrent unpacks of one layer do not interfere, and the staging directories
//! a killed process left behind are removed by the next unpack of that layer.

use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, mkdirat, mknodat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use sha2::{Digest as _, Sha256};

use super::{ImageError, Result, hex, hex_of, io as io_err};
use crate::fsroot::{Root, is_plain_name, proc_path};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const XATTR: &str = "SCHILY.xattr.";
/// Directories made on the way to an entry whose parents the layer does not list.
const DIR_MODE: Mode = Mode::from_bits_truncate(0o755);

/// Unpack one layer blob (gzip or plain tar) whose uncompressed content must hash to `diff_id`
/// into its directory under `layers`, unless already done; returns that directory.
pub(super) fn unpack_layer(blob: &Path, layers: &Path, diff_id: &str) -> Result<PathBuf> {
    let hex = hex_of(diff_id).map_err(|_| ImageError::BadDiffId(diff_id.to_string()))?;
    let dir = layers.join(hex);
    fs::create_dir_all(layers).map_err(io_err(layers))?;
    remove_stale_staging(layers, hex)?;
    if dir.exists() {
        return Ok(dir);
    }
    static STAGING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staging = Staging(layers.join(format!("{hex}.staging-{}-{n}", std::process::id())));
    unpack_into(blob, &staging.0, diff_id)?;
    match fs::rename(&staging.0, &dir) {
        Ok(()) => Ok(dir),
        // Another unpack of the same layer finished first: use its result.
        Err(_) if dir.exists() => Ok(dir),
        Err(e) => Err(ImageError::Io { path: dir, source: e }),
    }
}

/// A staging directory, removed when dropped unless it was renamed into place.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        if self.0.exists() {
            // std's remove_dir_all never follows the symlinks the layer made.
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Remove the staging directories of layer `hex` whose process is gone (killed mid-unpack).
fn remove_stale_staging(layers: &Path, hex: &str) -> Result<()> {
    let entries = fs::read_dir(layers).map_err(io_err(layers))?;
    let prefix = format!("{hex}.staging-");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let pid = rest.split_once('-').and_then(|(pid, _)| pid.parse::<i32>().ok());
        if pid.is_some_and(|pid| pid != std::process::id() as i32 && !crate::runtime::is_alive(pid)) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

fn unpack_into(blob: &Path, staging: &Path, diff_id: &str) -> Result<()> {
    // This name is this process's alone: one already there is a dead process's with our pid.
    if fs::symlink_metadata(staging).is_ok() {
        fs::remove_dir_all(staging).map_err(io_err(staging))?;
    }
    fs::create_dir(staging).map_err(io_err(staging))?;
    fs::set_permissions(staging, std::os::unix::fs::PermissionsExt::from_mode(0o755)).map_err(io_err(staging))?;
    let mut file = fs::File::open(blob).map_err(io_err(blob))?;
    let mut magic = [0u8; 2];
    let gzipped = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = fs::File::open(blob).map_err(io_err(blob))?;
    // Multi-member, as Go's gzip reader (and so docker and containerd) reads layers.
    let reader: Box<dyn Read> =
        if gzipped { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
    let mut archive = tar::Archive::new(Hashing { inner: reader, sha: Sha256::new() });
    let unpacker =
        Unpacker { root: Root::open(staging).map_err(io_err(staging))?, as_root: nix::unistd::geteuid().is_root() };
    for entry in archive.entries().map_err(io_err(blob))? {
        let mut entry = entry.map_err(io_err(blob))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        unpacker.apply(&mut entry).map_err(|source| ImageError::Layer {
            diff_id: diff_id.to_string(),
            entry: name,
            source,
        })?;
    }
    // What follows the end-of-archive blocks is part of the diff id too.
    let mut reader = archive.into_inner();
    io::copy(&mut reader, &mut io::sink()).map_err(io_err(blob))?;
    let actual = format!("sha256:{}", hex(&reader.sha.finalize()));
    if actual != diff_id {
        return Err(ImageError::LayerDigest { diff_id: diff_id.to_string(), actual });
    }
    let synced = fs::File::open(staging).map_err(io_err(staging))?;
    nix::unistd::syncfs(&synced).map_err(|e| ImageError::Io { path: staging.to_path_buf(), source: e.into() })
}

/// What an entry says about the file it makes, besides its content.
struct Meta {
    mode: Mode,
    /// Only when unpacking as root, as the `tar` crate did before.
    owner: Option<(Uid, Gid)>,
    mtime: TimeSpec,
    /// The `SCHILY.xattr.*` PAX records, all of them as before, set on files (as before),
    /// directories and FIFOs; not on symlinks or hard links.
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// Makes the entries of one layer inside its staging directory.
struct Unpacker {
    root: Root,
    as_root: bool,
}

impl Unpacker {
    fn apply<R: Read>(&self, entry: &mut tar::Entry<R>) -> io::Result<()> {
        use tar::EntryType as T;
        let path = entry.path()?.into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink) {
            return Ok(());
        }
        // The old tar convention too: a "regular file" whose name ends in `/` is a directory.
        let is_dir = kind == T::Directory
            || (kind == T::Regular && entry.header().as_ustar().is_none() && entry.path_bytes().ends_with(b"/"));
        let Some((dir, name)) = self.parent(&path, is_dir)? else { return Ok(()) };
        if name.as_bytes() == OPAQUE.as_bytes() {
            let opened = at(&dir, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
            return set_xattr(opened.as_fd(), c"trusted.overlay.opaque", b"y");
        }
        if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT.as_bytes()) {
            let hidden = plain(OsStr::from_bytes(hidden), "a whiteout of no file name")?;
            let whiteout = || mknodat(&dir, hidden, SFlag::S_IFCHR, Mode::empty(), nix::sys::stat::makedev(0, 0));
            return replacing(&dir, hidden, whiteout);
        }
        let meta = self.meta(entry)?;
        let name = name.as_os_str();
        match kind {
            _ if is_dir => {
                match mkdirat(&dir, name, Mode::S_IRWXU) {
                    Err(Errno::EEXIST) if !is_directory(&dir, name)? => {
                        replacing(&dir, name, || mkdirat(&dir, name, Mode::S_IRWXU))?
                    }
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                let opened = at(&dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW)?;
                // A directory's mtime moves as its entries are made; it is left as it falls.
                finish(opened.as_fd(), &meta, false)
            }
            T::Symlink => {
                // The link text is stored as it is: only ever read inside the container.
                let target = entry.link_name()?.ok_or_else(|| io::Error::other("symlink without a target"))?;
                replacing(&dir, name, || nix::unistd::symlinkat(target.as_os_str(), &dir, name))?;
                if let Some((uid, gid)) = meta.owner {
                    nix::unistd::fchownat(&dir, name, Some(uid), Some(gid), AtFlags::AT_SYMLINK_NOFOLLOW)?;
                }
                let nofollow = nix::sys::stat::UtimensatFlags::NoFollowSymlink;
                Ok(nix::sys::stat::utimensat(&dir, name, &meta.mtime, &meta.mtime, nofollow)?)
            }
            T::Link => {
                // The source is resolved inside the layer too, and linked as it is: a symlink
                // is linked, never followed.
                let source = entry.link_name()?.ok_or_else(|| io::Error::other("hard link without a source"))?;
                let (source_dir, source_name) = self.existing_parent(&source)?;
                let link = || nix::unistd::linkat(&source_dir, source_name.as_os_str(), &dir, name, AtFlags::empty());
                replacing(&dir, name, link)
            }
            T::Fifo => {
                replacing(&dir, name, || mknodat(&dir, name, SFlag::S_IFIFO, Mode::S_IRUSR, 0))?;
                let opened = at(&dir, name, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW)?;
                finish(opened.as_fd(), &meta, true)
            }
            // Not made, by anyone: on cgroup v2 Ordinal loads no device filter, so a device
            // node from an image would let the container's root open the host's device (before,
            // the `tar` crate made an empty regular file). A container's devices are in its
            // own `/dev`.
            T::Char | T::Block => {
                tracing::debug!(entry = %path.display(), "device node in a layer not made");
                Ok(())
            }
            // Regular files, and (as POSIX says) every type not known.
            _ => {
                let create = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd = replacing(&dir, name, || openat(&dir, name, create, Mode::S_IRUSR | Mode::S_IWUSR))?;
                let mut file = fs::File::from(fd);
                io::copy(entry, &mut file)?;
                finish(file.as_fd(), &meta, true)
            }
        }
    }

    /// The directory `path` goes in (resolved, and made where missing, inside the layer) and
    /// its last component, refused unless a plain name; None for a directory entry naming
    /// the layer's root (skipped, as before).
    fn parent(&self, path: &Path, is_dir: bool) -> io::Result<Option<(OwnedFd, OsString)>> {
        match path.components().next_back() {
            Some(Component::Normal(_)) => {}
            Some(Component::RootDir | Component::CurDir) if is_dir => return Ok(None),
            Some(Component::RootDir | Component::CurDir) => return Err(refused("names the layer's root")),
            Some(Component::ParentDir) => return Err(refused("ends in `..`")),
            Some(Component::Prefix(_)) | None => return Err(refused("an empty name")),
        }
        let (dir, name) = self.root.parent(path, DIR_MODE)?.ok_or_else(|| refused("an empty name"))?;
        plain(&name, "not a file name")?;
        Ok(Some((dir, name)))
    }

    /// As [`Unpacker::parent`] for a hard link's source, which must already be there.
    fn existing_parent(&self, path: &Path) -> io::Result<(OwnedFd, OsString)> {
        let name = match path.components().next_back() {
            Some(Component::Normal(name)) => name.to_os_string(),
            _ => return Err(refused("a hard link whose source is not a file name")),
        };
        let dir = self.root.open_at(path.parent().unwrap_or(Path::new("")), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        Ok((dir, name))
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<R>) -> io::Result<Meta> {
        let header = entry.header();
        let old = header.as_old();
        let mode = Mode::from_bits_truncate(numeric(header.mode().map(u64::from), &old.mode)? as u32 & 0o7777);
        let mtime = TimeSpec::new(i64::try_from(numeric(header.mtime(), &old.mtime)?).unwrap_or(i64::MAX), 0);
        let (mut uid, mut gid) = (numeric(header.uid(), &old.uid)?, numeric(header.gid(), &old.gid)?);
        let mut xattrs = Vec::new();
        for record in entry.pax_extensions()?.into_iter().flatten() {
            let record = record?;
            let key = record.key_bytes();
            if let Some(attr) = key.strip_prefix(XATTR.as_bytes()) {
                let attr = CString::new(attr).map_err(|_| refused("an xattr name with NUL"))?;
                xattrs.push((attr, record.value_bytes().to_vec()));
            } else if key == b"uid" || key == b"gid" {
                // Ids too large for the header are in PAX records.
                let value = std::str::from_utf8(record.value_bytes()).ok();
                let id = value.and_then(|v| v.parse().ok()).ok_or_else(|| refused("a PAX uid/gid not a number"))?;
                *if key == b"uid" { &mut uid } else { &mut gid } = id;
            }
        }
        let id = |n: u64| u32::try_from(n).map_err(|_| refused("a uid/gid beyond 32 bits"));
        let owner = if self.as_root { Some((Uid::from_raw(id(uid)?), Gid::from_raw(id(gid)?))) } else { None };
        Ok(Meta { mode, owner, mtime, xattrs })
    }
}

/// A numeric header field: one left blank reads as 0, as Go's `archive/tar` reads it.
fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    if raw.iter().all(|&b| b == 0 || b == b' ') { Ok(0) } else { parsed }
}

/// Set what `meta` says on an entry just made, through a descriptor of it: owner first (a
/// `chown` clears set-id bits and file capabilities), then mode, xattrs, and the mtime.
fn finish(fd: BorrowedFd<'_>, meta: &Meta, mtime: bool) -> io::Result<()> {
    if let Some((uid, gid)) = meta.owner {
        nix::unistd::fchown(fd, Some(uid), Some(gid))?;
    }
    nix::sys::stat::fchmod(fd, meta.mode)?;
    for (name, value) in &meta.xattrs {
        set_xattr(fd, name, value)?;
    }
    if mtime {
        nix::sys::stat::futimens(fd, &meta.mtime, &meta.mtime)?;
    }
    Ok(())
}

fn set_xattr(fd: BorrowedFd<'_>, name: &std::ffi::CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: the name is NUL-terminated and the value pointer and length describe one buffer,
    // both alive across the call; fsetxattr keeps neither. The descriptor is open.
    let rc = unsafe { libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("set xattr {}: {e}", name.to_string_lossy())));
    }
    Ok(())
}

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("refused: {why}"))
}

fn plain<'a>(name: &'a OsStr, why: &str) -> io::Result<&'a OsStr> {
    if is_plain_name(name) { Ok(name) } else { Err(refused(why)) }
}

fn at(dir: &OwnedFd, name: impl AsRef<OsStr>, flags: OFlag) -> io::Result<OwnedFd> {
    Ok(openat(dir, name.as_ref(), flags | OFlag::O_CLOEXEC, Mode::empty())?)
}

fn is_directory(dir: &OwnedFd, name: &OsStr) -> io::Result<bool> {
    let stat = nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    Ok(stat.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Run `make`; if the name is taken, remove what is there and run it again (a later entry of a
/// layer replaces an earlier one).
fn replacing<T>(dir: &OwnedFd, name: &OsStr, make: impl Fn() -> nix::Result<T>) -> io::Result<T> {
    match make() {
        Err(Errno::EEXIST) => {
            remove(dir, name)?;
            Ok(make()?)
        }
        made => Ok(made?),
    }
}

/// Remove `name` from `dir`, never following it: unlinked, or a directory removed with what it
/// holds (std's `remove_dir_all` opens each level `O_NOFOLLOW` and unlinks symlinks).
fn remove(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => fs::remove_dir_all(proc_path(dir).join(name)),
        Err(e) => Err(e.into()),
    }
}
