//! Unpacking layers for overlayfs: each layer once, into its own directory under
//! `images/layers/<diff-id>`, with ownership, permissions and hard links as in the tar, and the
//! OCI whiteouts turned into overlayfs ones (`.wh.NAME` → a 0/0 character device `NAME`;
//! `.wh..wh..opq` → the `trusted.overlay.opaque` xattr on its directory). Containers then stack
//! the layer directories as overlay lower dirs and share them.
//!
//! A layer is unpacked into a private staging directory and renamed into place, so a layer
//! directory, once it exists, is complete; concurrent unpacks of one layer (two pods of one
//! image) do not interfere, and a crash leaves only a staging directory behind.

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::{ImageError, Result, io};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Unpack one layer blob (gzip or plain tar) into `dir`, unless already done.
pub(super) fn unpack_layer(blob: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    static STAGING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staging = dir.with_extension(format!("staging-{}-{n}", std::process::id()));
    let result = unpack_into(blob, &staging).and_then(|()| match fs::rename(&staging, dir) {
        Ok(()) => Ok(()),
        // Another unpack of the same layer finished first: use its result.
        Err(_) if dir.exists() => Ok(()),
        Err(e) => Err(ImageError::Io { path: dir.to_path_buf(), source: e }),
    });
    if staging.exists() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

fn unpack_into(blob: &Path, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut file = fs::File::open(blob).map_err(io(blob))?;
    let mut magic = [0u8; 2];
    let gzipped = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = fs::File::open(blob).map_err(io(blob))?;
    let reader: Box<dyn Read> = if gzipped { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(nix::unistd::geteuid().is_root());
    archive.set_unpack_xattrs(true);
    for entry in archive.entries().map_err(io(blob))? {
        let mut entry = entry.map_err(io(blob))?;
        let path = entry.path().map_err(io(blob))?.into_owned();
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(ImageError::Missing(format!("unsafe path {} in layer", path.display())));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parent = dir.join(path.parent().unwrap_or(Path::new("")));
        if name == OPAQUE {
            fs::create_dir_all(&parent).map_err(io(&parent))?;
            set_opaque(&parent)?;
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            fs::create_dir_all(&parent).map_err(io(&parent))?;
            whiteout(&parent.join(hidden))?;
        } else {
            entry.unpack_in(dir).map_err(io(dir))?;
        }
    }
    Ok(())
}

/// An overlayfs whiteout: a character device with device number 0/0.
fn whiteout(path: &Path) -> Result<()> {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
        .map_err(|e| ImageError::Io { path: path.to_path_buf(), source: std::io::Error::from(e) })
}

fn set_opaque(dir: &Path) -> Result<()> {
    let c_path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| ImageError::Missing(format!("path with NUL: {}", dir.display())))?;
    let name = c"trusted.overlay.opaque";
    let value = b"y";
    // SAFETY: both strings are NUL-terminated and live across the call; the value pointer and
    // length describe a valid buffer; lsetxattr does not retain any of them.
    let rc = unsafe { libc::lsetxattr(c_path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        return Err(ImageError::Io { path: dir.to_path_buf(), source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// Where the unpacked form of a layer lives.
pub(super) fn layer_dir(root: &Path, diff_id: &str) -> PathBuf {
    root.join("layers").join(diff_id.trim_start_matches("sha256:"))
}
