//! Pulling images from OCI and Docker registries (`oci-client`: token auth, image indexes
//! resolved to this platform, digests checked), through configured mirrors first, with plain
//! HTTP only for registries listed as insecure. Blobs land in the same content-addressed store
//! as imported ones.
//!
//! The registry settings live in `<data-dir>/registries.json`:
//! `{"mirrors": {"docker.io": ["127.0.0.1:5000"]}, "insecure": ["127.0.0.1:5000"]}`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Image, ImageError, ImageStore, Result, io, normalize, str_list};

/// Where images come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryConfig {
    /// Registry host → mirrors (host[:port]) tried first, in order.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Registries spoken to over plain HTTP.
    #[serde(default)]
    pub insecure: Vec<String>,
}

impl RegistryConfig {
    /// Read `path`; a missing file means no mirrors and no insecure registries.
    pub fn load(path: &Path) -> Result<RegistryConfig> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| ImageError::Json { what: path.display().to_string(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistryConfig::default()),
            Err(e) => Err(ImageError::Io { path: path.to_path_buf(), source: e }),
        }
    }

    /// The registries to try for `registry`: its mirrors, then itself.
    pub fn candidates(&self, registry: &str) -> Vec<String> {
        let mut out = self.mirrors.get(registry).cloned().unwrap_or_default();
        out.push(registry.to_string());
        out
    }
}

/// Make `ring` the process's TLS crypto provider (the one the API server uses) unless one is set:
/// the registry client is built without a provider of its own.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `docker.io/library/busybox:1.35` → (`docker.io`, `library/busybox`, tag or digest).
fn split(normalized: &str) -> (String, String, String) {
    let (registry, rest) = normalized.split_once('/').unwrap_or(("docker.io", normalized));
    if let Some((repo, digest)) = rest.split_once('@') {
        return (registry.into(), repo.into(), format!("@{digest}"));
    }
    match rest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (registry.into(), repo.into(), format!(":{tag}")),
        _ => (registry.into(), rest.into(), ":latest".into()),
    }
}

/// Why a pull failed, worded for the pod's status.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{0}")]
    Registry(String),
    #[error(transparent)]
    Store(#[from] ImageError),
}

impl ImageStore {
    /// Pull `reference` (trying mirrors first) into the store and name it.
    pub async fn pull(&self, reference: &str, config: &RegistryConfig) -> Result<Image, PullError> {
        let name = normalize(reference);
        let (registry, repository, suffix) = split(&name);
        let mut failures = Vec::new();
        for candidate in config.candidates(&registry) {
            let target = format!("{candidate}/{repository}{suffix}");
            match self.pull_from(&target, &name, config).await {
                Ok(image) => return Ok(image),
                Err(PullError::Registry(e)) => failures.push(format!("{candidate}: {e}")),
                Err(e) => return Err(e),
            }
        }
        Err(PullError::Registry(failures.join("; ")))
    }

    async fn pull_from(&self, target: &str, name: &str, config: &RegistryConfig) -> Result<Image, PullError> {
        let reference: Reference = target.parse().map_err(|e| PullError::Registry(format!("{e}")))?;
        install_crypto_provider();
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(config.insecure.clone()),
            ..Default::default()
        });
        let auth = RegistryAuth::Anonymous;
        let (manifest, digest, config_json) =
            client.pull_manifest_and_config(&reference, &auth).await.map_err(|e| PullError::Registry(e.to_string()))?;
        let config_digest = manifest.config.digest.clone();
        let mut size = self.put_blob(&config_digest, config_json.as_bytes())?;
        let mut layers = Vec::new();
        for layer in &manifest.layers {
            let path = self.blob_path(&layer.digest)?;
            if !path.exists() {
                static DOWNLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = DOWNLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let partial = path.with_extension(format!("download-{}-{n}", std::process::id()));
                let file = tokio::fs::File::create(&partial).await.map_err(io(&partial))?;
                let mut writer = tokio::io::BufWriter::new(file);
                client
                    .pull_blob(&reference, layer, &mut writer)
                    .await
                    .map_err(|e| PullError::Registry(format!("layer {}: {e}", layer.digest)))?;
                // The client checks the content against the layer's digest as it downloads.
                tokio::io::AsyncWriteExt::flush(&mut writer).await.map_err(io(&partial))?;
                fs::rename(&partial, &path).map_err(io(&path))?;
            }
            size += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            layers.push(layer.digest.clone());
        }
        let config_value: Value = serde_json::from_str(&config_json)
            .map_err(|source| ImageError::Json { what: "image config".into(), source })?;
        let image = Image {
            name: name.to_string(),
            manifest: digest,
            config: config_digest,
            layers,
            diff_ids: str_list(config_value.pointer("/rootfs/diff_ids")),
            size,
        };
        self.record(image.clone())?;
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_registry_repository_and_tag() {
        assert_eq!(
            split("docker.io/library/busybox:1.35"),
            ("docker.io".into(), "library/busybox".into(), ":1.35".into())
        );
        assert_eq!(split("127.0.0.1:5000/app:v1"), ("127.0.0.1:5000".into(), "app".into(), ":v1".into()));
        assert_eq!(split("quay.io/x/y@sha256:abc"), ("quay.io".into(), "x/y".into(), "@sha256:abc".into()));
    }

    #[test]
    fn mirrors_come_first() {
        let config = RegistryConfig {
            mirrors: [("docker.io".to_string(), vec!["127.0.0.1:5000".to_string()])].into(),
            insecure: vec![],
        };
        assert_eq!(config.candidates("docker.io"), vec!["127.0.0.1:5000", "docker.io"]);
        assert_eq!(config.candidates("quay.io"), vec!["quay.io"]);
    }
}
