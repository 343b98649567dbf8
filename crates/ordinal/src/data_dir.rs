//! The data dir: everything one server keeps on disk, under one absolute path.
//!
//! [`DataDir::create`] makes the directory if it is missing (mode 0700) and resolves it to an
//! absolute, canonical path once, so no relative path reaches the runtime, the container shims
//! (which change directory) or an API object (a provisioned volume's `hostPath`). The accessors
//! own the layout; nothing else joins names onto the root.
//!
//! ```text
//! <data-dir>/
//!   ordinal.db        the store: SQLite in WAL mode (with ordinal.db-wal, ordinal.db-shm)
//!   pki/              the CA generated on first start and kept, the serving certificate,
//!                     the admin token, the service-account signing key sa.key (all 0600)
//!   kubeconfig        written once the API is serving (0600)
//!   images/           the image store: blobs and unpacked layers
//!   pods/             per pod uid: kept namespaces (ns/), container state and writable
//!                     layers (containers/<name>/<attempt>), logs (logs/<name>/<attempt>.log),
//!                     volumes, etc; ipam.json, the address leases
//!   volumes/          persistent volumes the local provisioner made, pvc-<uid> each
//!   registries.json   registry mirrors and insecure registries (optional, written by hand)
//!   server.lock       held (flock) by the server using this data dir; names its pid
//! ```
//!
//! A server takes [`DataDir::lock`] for its lifetime, so a second server on the same data dir
//! is refused instead of sharing the store, the pods and the bridge. `ordinal image` does not
//! take it: importing images while a server runs is fine.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use agent::pidlock::{PidLock, PidLockError};

/// A server's data dir, absolute and canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Create the directory if it is missing (the root itself with mode 0700, its parents as
    /// usual) and resolve it to an absolute, canonical path.
    pub fn create(path: impl AsRef<Path>) -> io::Result<DataDir> {
        let path = path.as_ref();
        if !path.is_dir() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => {}
                // Made by someone else in the meantime: fine if it is a directory.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(DataDir { root: std::fs::canonicalize(path)? })
    }

    /// Make the directory readable by its owner only (0700): a server's data dir holds the
    /// database, keys and pods' files. Done at every start, for a dir made by hand or by an
    /// older Ordinal.
    pub fn make_private(&self) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
    }

    /// The directory itself (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store's SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("ordinal.db")
    }

    /// The CA, the serving certificate and the admin token.
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }

    /// The admin kubeconfig, written once the API is serving.
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }

    /// The image store.
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    /// The runtime's root: per-pod state and the address leases.
    pub fn pods(&self) -> PathBuf {
        self.root.join("pods")
    }

    /// The local provisioner's volumes.
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// Registry mirrors and insecure registries (may be absent).
    pub fn registries(&self) -> PathBuf {
        self.root.join("registries.json")
    }

    /// The file a running server holds locked.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("server.lock")
    }

    /// Take the data dir for one server: `server.lock` held (with this process's pid in it)
    /// until the returned lock is dropped or the process ends, however it ends.
    pub fn lock(&self) -> Result<DataDirLock, LockError> {
        PidLock::take(&self.lock_file(), &format!("data dir {}", self.root.display()))
    }
}

/// A data dir held by this process; released when dropped.
pub type DataDirLock = PidLock;

/// Why [`DataDir::lock`] failed.
pub type LockError = PidLockError;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_relative_path_becomes_absolute_and_canonical() -> anyhow::Result<()> {
        let scratch = tempfile::tempdir()?;
        let base = scratch.path().canonicalize()?;
        std::fs::create_dir_all(base.join("sub"))?;
        // A relative path (from the working directory up to `/`, then down into the scratch
        // dir), with a detour for canonicalisation to remove; the test does not change the
        // process's working directory (tests run in parallel).
        let cwd = std::env::current_dir()?;
        let up: PathBuf = cwd.components().skip(1).map(|_| "..").collect();
        let relative = up.join(base.strip_prefix("/")?).join("sub/../ordinal-data");
        assert!(relative.is_relative());
        let data = DataDir::create(&relative)?;
        assert_eq!(data.root(), base.join("ordinal-data"));
        assert!(data.root().is_absolute());
        let mode = std::fs::metadata(data.root())?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "a data dir Ordinal creates is private");
        // Created already: the same answer.
        assert_eq!(DataDir::create(&relative)?, data);
        Ok(())
    }

    #[test]
    fn an_existing_dir_keeps_its_mode_and_accessors_are_under_the_root() -> anyhow::Result<()> {
        let scratch = tempfile::tempdir()?;
        std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o750))?;
        let data = DataDir::create(scratch.path())?;
        assert_eq!(std::fs::metadata(data.root())?.permissions().mode() & 0o777, 0o750);
        let root = data.root().to_path_buf();
        for (path, name) in [
            (data.database(), "ordinal.db"),
            (data.pki(), "pki"),
            (data.kubeconfig(), "kubeconfig"),
            (data.images(), "images"),
            (data.pods(), "pods"),
            (data.volumes(), "volumes"),
            (data.registries(), "registries.json"),
            (data.lock_file(), "server.lock"),
        ] {
            assert_eq!(path, root.join(name));
            assert!(path.is_absolute());
        }
        Ok(())
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() -> anyhow::Result<()> {
        let scratch = tempfile::tempdir()?;
        let data = DataDir::create(scratch.path())?;
        let held = data.lock()?;
        let err = match data.lock() {
            Ok(_) => anyhow::bail!("a second lock on the same data dir was granted"),
            Err(e) => e,
        };
        assert_eq!(
            err.to_string(),
            format!(
                "data dir {} is in use by another ordinal server (pid {})",
                data.root().display(),
                std::process::id()
            )
        );
        drop(held);
        let _again = data.lock()?;
        Ok(())
    }
}
