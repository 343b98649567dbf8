//! The image store: OCI and Docker images kept content-addressed under the data dir.
//!
//! Layout under `<data-dir>/images`:
//! - `blobs/sha256/<hex>`: manifests, configs and (compressed) layers, each verified against its
//!   digest when it enters the store;
//! - `refs.json`: image name → manifest, config, layers and diff ids, written atomically.
//!
//! `import` reads an OCI image-layout tar (`oci-layout`, `index.json`, `blobs/`) or a
//! `docker save` tar (`manifest.json`). Removing an image drops its name and deletes the blobs no
//! other image uses. `unpack` lays the layers out for overlayfs (see `unpack.rs`).

mod build;
mod names;
mod pull;
#[cfg(test)]
mod tests;
mod unpack;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub use build::{build_from_dir, busybox_rootfs};
pub use names::normalize;
pub use pull::{PullError, RegistryConfig, install_crypto_provider};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: not an OCI image layout or docker save archive")]
    UnknownFormat(PathBuf),
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("blob {expected}: content hashes to {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("{0}: missing from the archive")]
    Missing(String),
    #[error("unsupported digest {0:?} (only sha256: and 64 lowercase hex digits)")]
    BadDigest(String),
    #[error("diff id {0:?} of the image config is not a digest (sha256: and 64 lowercase hex digits)")]
    BadDiffId(String),
    #[error("the image config lists {diff_ids} diff ids for {layers} layers")]
    LayerCount { layers: usize, diff_ids: usize },
    #[error("layer {diff_id}: entry {entry:?}: {source}")]
    Layer {
        diff_id: String,
        entry: String,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {diff_id}: its uncompressed content hashes to {actual}")]
    LayerDigest { diff_id: String, actual: String },
}

type Result<T, E = ImageError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io { path: path.to_path_buf(), source }
}

/// One named image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Normalised reference: `docker.io/library/busybox:1.35`, `localhost/app:v1`.
    pub name: String,
    pub manifest: String,
    pub config: String,
    /// Layer blobs, bottom first (as stored: compressed or not).
    pub layers: Vec<String>,
    /// Digests of the uncompressed layers (`rootfs.diff_ids`).
    pub diff_ids: Vec<String>,
    /// Bytes of all blobs.
    pub size: u64,
}

/// What the image's config says a container runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Refs {
    images: Vec<Image>,
}

/// Serialises read-modify-write of `refs.json` within this process (pulls run concurrently).
static REFS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The store; cheap to construct, all state on disk.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The hex of a `sha256:` digest, which must be 64 lowercase hex digits (as the OCI spec says):
/// what names a blob's file or a layer's directory is checked here first.
fn hex_of(digest: &str) -> Result<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .ok_or_else(|| ImageError::BadDigest(digest.to_string()))
}

/// Each layer blob of `image` with its diff id, once every diff id is known to be a digest.
fn layers_with_diff_ids(image: &Image) -> Result<Vec<(&str, &str)>> {
    if image.diff_ids.len() != image.layers.len() {
        return Err(ImageError::LayerCount { layers: image.layers.len(), diff_ids: image.diff_ids.len() });
    }
    for diff_id in &image.diff_ids {
        hex_of(diff_id).map_err(|_| ImageError::BadDiffId(diff_id.clone()))?;
    }
    Ok(image.layers.iter().map(String::as_str).zip(image.diff_ids.iter().map(String::as_str)).collect())
}

fn json<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json { what: what.to_string(), source })
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The files of an archive, read into memory by path (test and import images are small; a
/// streaming importer can replace this without changing the store's interface).
struct Archive {
    files: std::collections::BTreeMap<String, Vec<u8>>,
}

impl Archive {
    fn read(path: &Path) -> Result<Archive> {
        let file = fs::File::open(path).map_err(io(path))?;
        let mut archive = tar::Archive::new(file);
        let mut files = std::collections::BTreeMap::new();
        for entry in archive.entries().map_err(io(path))? {
            let mut entry = entry.map_err(io(path))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path().map_err(io(path))?.to_string_lossy().trim_start_matches("./").to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(io(path))?;
            files.insert(name, data);
        }
        Ok(Archive { files })
    }

    fn get(&self, name: &str) -> Result<&[u8]> {
        self.files.get(name).map(Vec::as_slice).ok_or_else(|| ImageError::Missing(name.to_string()))
    }

    fn blob(&self, digest: &str) -> Result<&[u8]> {
        self.get(&format!("blobs/sha256/{}", hex_of(digest)?))
    }
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<ImageStore> {
        fs::create_dir_all(root.join("blobs/sha256")).map_err(io(root))?;
        Ok(ImageStore { root: root.to_path_buf() })
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    /// Store a blob after checking it hashes to `digest`.
    fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<u64> {
        let actual = format!("sha256:{}", sha256_hex(bytes));
        if actual != digest {
            return Err(ImageError::DigestMismatch { expected: digest.to_string(), actual });
        }
        let path = self.blob_path(digest)?;
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        Ok(bytes.len() as u64)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        fs::read(&path).map_err(io(&path))
    }

    fn refs(&self) -> Result<Refs> {
        let path = self.root.join("refs.json");
        match fs::read(&path) {
            Ok(bytes) => json("refs.json", &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Refs::default()),
            Err(e) => Err(ImageError::Io { path, source: e }),
        }
    }

    fn save_refs(&self, refs: &Refs) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(refs).map_err(|source| ImageError::Json { what: "refs.json".into(), source })?;
        write_atomic(&self.root.join("refs.json"), &bytes)
    }

    pub fn list(&self) -> Result<Vec<Image>> {
        Ok(self.refs()?.images)
    }

    pub fn get(&self, name: &str) -> Result<Option<Image>> {
        let name = normalize(name);
        Ok(self.refs()?.images.into_iter().find(|i| i.name == name))
    }

    /// Import every image of an OCI layout or `docker save` tar; returns them.
    pub fn import(&self, archive_path: &Path) -> Result<Vec<Image>> {
        let archive = Archive::read(archive_path)?;
        let images = if archive.files.contains_key("index.json") {
            self.import_oci(&archive)?
        } else if archive.files.contains_key("manifest.json") {
            self.import_docker(&archive)?
        } else {
            return Err(ImageError::UnknownFormat(archive_path.to_path_buf()));
        };
        for image in &images {
            self.record(image.clone())?;
        }
        Ok(images)
    }

    /// Name an image whose blobs are in the store (replacing what the name meant before).
    fn record(&self, image: Image) -> Result<()> {
        layers_with_diff_ids(&image)?;
        let _guard = REFS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut refs = self.refs()?;
        refs.images.retain(|i| i.name != image.name);
        refs.images.push(image);
        refs.images.sort_by(|a, b| a.name.cmp(&b.name));
        self.save_refs(&refs)
    }

    fn import_oci(&self, archive: &Archive) -> Result<Vec<Image>> {
        let index: Value = json("index.json", archive.get("index.json")?)?;
        let mut out = Vec::new();
        for descriptor in index.get("manifests").and_then(Value::as_array).into_iter().flatten() {
            let annotations = descriptor.get("annotations");
            let name = annotations
                .and_then(|a| a.get("io.containerd.image.name").or_else(|| a.get("org.opencontainers.image.ref.name")))
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                continue;
            }
            let digest = descriptor.get("digest").and_then(Value::as_str).unwrap_or("").to_string();
            let manifest_bytes = archive.blob(&digest)?;
            let mut size = self.put_blob(&digest, manifest_bytes)?;
            let manifest: Value = json("manifest", manifest_bytes)?;
            let config = manifest.pointer("/config/digest").and_then(Value::as_str).unwrap_or("").to_string();
            size += self.put_blob(&config, archive.blob(&config)?)?;
            let mut layers = Vec::new();
            for layer in manifest.get("layers").and_then(Value::as_array).into_iter().flatten() {
                let d = layer.get("digest").and_then(Value::as_str).unwrap_or("").to_string();
                size += self.put_blob(&d, archive.blob(&d)?)?;
                layers.push(d);
            }
            let config_json: Value = json("config", archive.blob(&config)?)?;
            out.push(Image {
                name: normalize(name),
                manifest: digest,
                config,
                layers,
                diff_ids: str_list(config_json.pointer("/rootfs/diff_ids")),
                size,
            });
        }
        Ok(out)
    }

    fn import_docker(&self, archive: &Archive) -> Result<Vec<Image>> {
        let manifest: Value = json("manifest.json", archive.get("manifest.json")?)?;
        let mut out = Vec::new();
        for entry in manifest.as_array().into_iter().flatten() {
            let config_path = entry.get("Config").and_then(Value::as_str).unwrap_or("");
            let config_bytes = archive.get(config_path)?;
            let config = format!("sha256:{}", sha256_hex(config_bytes));
            let mut size = self.put_blob(&config, config_bytes)?;
            let mut layers = Vec::new();
            for layer_path in str_list(entry.get("Layers")) {
                let bytes = archive.get(&layer_path)?;
                let digest = format!("sha256:{}", sha256_hex(bytes));
                size += self.put_blob(&digest, bytes)?;
                layers.push(digest);
            }
            let config_json: Value = json("config", config_bytes)?;
            // A docker save has no manifest blob: record the config digest as its identity.
            for tag in str_list(entry.get("RepoTags")) {
                out.push(Image {
                    name: normalize(&tag),
                    manifest: config.clone(),
                    config: config.clone(),
                    layers: layers.clone(),
                    diff_ids: str_list(config_json.pointer("/rootfs/diff_ids")),
                    size,
                });
            }
        }
        Ok(out)
    }

    /// What a container of this image runs with.
    pub fn config(&self, image: &Image) -> Result<ImageConfig> {
        let v: Value = json("config", &self.read_blob(&image.config)?)?;
        let c = v.get("config").cloned().unwrap_or(Value::Null);
        Ok(ImageConfig {
            entrypoint: str_list(c.get("Entrypoint")),
            cmd: str_list(c.get("Cmd")),
            env: str_list(c.get("Env")),
            working_dir: c.get("WorkingDir").and_then(Value::as_str).unwrap_or("").to_string(),
            user: c.get("User").and_then(Value::as_str).unwrap_or("").to_string(),
        })
    }

    /// Unpack the image's layers (each once, each checked against its diff id) and return their
    /// directories, bottom first: the overlayfs lower dirs of a container's root filesystem.
    pub fn unpack(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let layers = self.root.join("layers");
        layers_with_diff_ids(image)?
            .into_iter()
            .map(|(blob, diff_id)| unpack::unpack_layer(&self.blob_path(blob)?, &layers, diff_id))
            .collect()
    }

    /// Forget an image and delete the blobs no remaining image uses. False if it was not there.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let name = normalize(name);
        let mut refs = self.refs()?;
        let before = refs.images.len();
        refs.images.retain(|i| i.name != name);
        if refs.images.len() == before {
            return Ok(false);
        }
        self.save_refs(&refs)?;
        let live: BTreeSet<String> = refs
            .images
            .iter()
            .flat_map(|i| [i.manifest.clone(), i.config.clone()].into_iter().chain(i.layers.iter().cloned()))
            .filter_map(|d| hex_of(&d).ok().map(str::to_string))
            .collect();
        let dir = self.root.join("blobs/sha256");
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let hex = entry.file_name().to_string_lossy().to_string();
            if !live.contains(&hex) {
                fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        Ok(true)
    }
}

/// Write via a temporary file and rename, so a crash never leaves half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    {
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))
}
