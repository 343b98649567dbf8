//! Pod volumes on this node: each volume becomes a host directory (or file) that containers'
//! `volumeMounts` bind into their roots. `emptyDir` lives in the pod's directory (a tmpfs for
//! medium `Memory`), `hostPath` is the host path, `configMap`/`secret`/`downwardAPI`/`projected`
//! are written as files, and `persistentVolumeClaim` is the bound volume's directory; a claim not
//! yet bound keeps the pod waiting.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume,
};
use kube::Api;

use crate::runtime::spec::{Mount, MountKind};

/// Why volumes are not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeError {
    /// Not yet (a claim is unbound): try again later, keep the pod in ContainerCreating.
    Waiting(String),
    /// Wrong (missing object, bad hostPath type): reported as FailedMount.
    Failed(String),
}

/// A prepared volume: where it is on the host, and whether it must be read-only.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub path: PathBuf,
    pub read_only: bool,
}

fn failed(what: impl std::fmt::Display) -> VolumeError {
    VolumeError::Failed(what.to_string())
}

/// Prepare every volume of `pod` under `pod_dir`.
pub async fn prepare(
    client: &kube::Client,
    pod: &Pod,
    pod_dir: &Path,
) -> Result<BTreeMap<String, Prepared>, VolumeError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for volume in pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default() {
        let prepared = prepare_one(client, pod, &namespace, pod_dir, &volume).await?;
        out.insert(volume.name.clone(), prepared);
    }
    Ok(out)
}

async fn prepare_one(
    client: &kube::Client,
    pod: &Pod,
    namespace: &str,
    pod_dir: &Path,
    volume: &Volume,
) -> Result<Prepared, VolumeError> {
    let dir = pod_dir.join("volumes").join(&volume.name);
    let writable = |path: PathBuf| Prepared { path, read_only: false };
    if let Some(empty) = &volume.empty_dir {
        fs::create_dir_all(&dir).map_err(failed)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(failed)?;
        if empty.medium.as_deref() == Some("Memory") && !is_mount_point(&dir) {
            let size = empty.size_limit.as_ref().map(|q| logic_bytes(&q.0)).unwrap_or(0);
            let options = if size > 0 { format!("size={size},mode=1777") } else { "mode=1777".into() };
            nix::mount::mount(
                Some("tmpfs"),
                &dir,
                Some("tmpfs"),
                nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                Some(options.as_str()),
            )
            .map_err(|e| failed(format!("mount tmpfs for emptyDir {}: {e}", volume.name)))?;
        }
        return Ok(writable(dir));
    }
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        match host.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" => fs::create_dir_all(&path).map_err(failed)?,
            "FileOrCreate" => {
                if !path.exists() {
                    if let Some(parent) = path.parent() {
                        fs::create_dir_all(parent).map_err(failed)?;
                    }
                    fs::File::create(&path).map_err(failed)?;
                }
            }
            "Directory" if !path.is_dir() => {
                return Err(failed(format!("hostPath type check failed: {} is not a directory", host.path)));
            }
            "File" if !path.is_file() => {
                return Err(failed(format!("hostPath type check failed: {} is not a file", host.path)));
            }
            "Socket" | "CharDevice" | "BlockDevice" if !path.exists() => {
                return Err(failed(format!("hostPath type check failed: {} does not exist", host.path)));
            }
            _ => {
                if !path.exists() {
                    fs::create_dir_all(&path).map_err(failed)?;
                }
            }
        }
        return Ok(writable(path));
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        let pvc =
            claims.get_opt(&claim.claim_name).await.map_err(failed)?.ok_or_else(|| {
                VolumeError::Waiting(format!("persistentvolumeclaim \"{}\" not found", claim.claim_name))
            })?;
        let phase = pvc.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        let pv_name = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()).unwrap_or_default();
        if phase != "Bound" || pv_name.is_empty() {
            return Err(VolumeError::Waiting(format!(
                "pod has unbound immediate PersistentVolumeClaims: persistentvolumeclaim \"{}\" is not bound",
                claim.claim_name
            )));
        }
        let pvs: Api<PersistentVolume> = Api::all(client.clone());
        let pv = pvs.get(&pv_name).await.map_err(failed)?;
        let spec = pv.spec.unwrap_or_default();
        let path = spec
            .host_path
            .map(|h| h.path)
            .or(spec.local.map(|l| l.path))
            .ok_or_else(|| failed(format!("persistentvolume {pv_name} has no hostPath or local source")))?;
        let path = PathBuf::from(path);
        if !path.exists() {
            fs::create_dir_all(&path).map_err(failed)?;
        }
        return Ok(Prepared { path, read_only: claim.read_only.unwrap_or(false) });
    }
    if let Some(cm) = &volume.config_map {
        let files =
            source_files(client, namespace, &cm.name, cm.items.as_deref(), cm.optional, config_map_data).await?;
        write_files(&dir, &files, cm.default_mode.unwrap_or(0o644))?;
        return Ok(Prepared { path: dir, read_only: true });
    }
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        let files =
            source_files(client, namespace, &name, secret.items.as_deref(), secret.optional, secret_data).await?;
        write_files(&dir, &files, secret.default_mode.unwrap_or(0o644))?;
        return Ok(Prepared { path: dir, read_only: true });
    }
    if let Some(downward) = &volume.downward_api {
        let files = downward_files(pod, downward.items.as_deref().unwrap_or_default());
        write_files(&dir, &files, downward.default_mode.unwrap_or(0o644))?;
        return Ok(Prepared { path: dir, read_only: true });
    }
    if let Some(projected) = &volume.projected {
        let mut files = BTreeMap::new();
        for source in projected.sources.clone().unwrap_or_default() {
            if let Some(cm) = source.config_map {
                files.extend(
                    source_files(client, namespace, &cm.name, cm.items.as_deref(), cm.optional, config_map_data)
                        .await?,
                );
            }
            if let Some(s) = source.secret {
                files.extend(
                    source_files(client, namespace, &s.name, s.items.as_deref(), s.optional, secret_data).await?,
                );
            }
            if let Some(d) = source.downward_api {
                files.extend(downward_files(pod, d.items.as_deref().unwrap_or_default()));
            }
        }
        write_files(&dir, &files, projected.default_mode.unwrap_or(0o644))?;
        return Ok(Prepared { path: dir, read_only: true });
    }
    Err(failed(format!("volume {:?}: this volume type is not supported by Ordinal's node agent", volume.name)))
}

fn logic_bytes(q: &str) -> u64 {
    model::quantity::parse_quantity(q).map(|q| (q.millis() / 1000).max(0) as u64).unwrap_or(0)
}

/// Keys to file paths: every key, or just the listed items (with their paths and modes).
fn select(data: BTreeMap<String, Vec<u8>>, items: Option<&[KeyToPath]>, what: &str) -> Result<Files, VolumeError> {
    match items {
        None => Ok(data.into_iter().map(|(k, v)| (k, (v, None))).collect()),
        Some(items) => {
            let mut out = BTreeMap::new();
            for item in items {
                let value = data
                    .get(&item.key)
                    .cloned()
                    .ok_or_else(|| failed(format!("configuration key {:?} not found in {what}", item.key)))?;
                out.insert(item.path.clone(), (value, item.mode));
            }
            Ok(out)
        }
    }
}

/// Relative path → (contents, mode).
type Files = BTreeMap<String, (Vec<u8>, Option<i32>)>;

/// A ConfigMap's or Secret's keys as files (`items` select and rename them); a missing source
/// that is `optional` gives no files.
async fn source_files<K>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    data: fn(K) -> BTreeMap<String, Vec<u8>>,
) -> Result<Files, VolumeError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let kind = K::kind(&()).to_ascii_lowercase();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await.map_err(failed)? {
        Some(source) => select(data(source), items, &format!("{kind} {name:?}")),
        None if optional == Some(true) => Ok(Files::new()),
        None => Err(failed(format!("{kind} \"{name}\" not found"))),
    }
}

fn config_map_data(cm: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> =
        cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    data.extend(cm.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
    data
}

fn secret_data(secret: Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> =
        secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    data.extend(secret.string_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())));
    data
}

fn downward_files(pod: &Pod, items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile]) -> Files {
    let meta = &pod.metadata;
    let map_text = |m: &Option<BTreeMap<String, String>>| {
        m.clone().unwrap_or_default().iter().map(|(k, v)| format!("{k}={v:?}\n")).collect::<String>()
    };
    items
        .iter()
        .filter_map(|item| {
            let field = item.field_ref.as_ref()?.field_path.as_str();
            let value = match field {
                "metadata.name" => meta.name.clone().unwrap_or_default(),
                "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
                "metadata.uid" => meta.uid.clone().unwrap_or_default(),
                "metadata.labels" => map_text(&meta.labels),
                "metadata.annotations" => map_text(&meta.annotations),
                _ => return None,
            };
            Some((item.path.clone(), (value.into_bytes(), item.mode)))
        })
        .collect()
}

fn write_files(dir: &Path, files: &Files, default_mode: i32) -> Result<(), VolumeError> {
    fs::create_dir_all(dir).map_err(failed)?;
    for (relative, (bytes, mode)) in files {
        if Path::new(relative).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(failed(format!("invalid path {relative:?}")));
        }
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(failed)?;
        }
        fs::write(&path, bytes).map_err(failed)?;
        let mode = mode.unwrap_or(default_mode) as u32 & 0o777;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(failed)?;
    }
    Ok(())
}

/// Is `path` a mount point (its device differs from its parent's)?
pub fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(path), path.parent().map(fs::metadata)) {
        (Ok(m), Some(Ok(p))) => m.dev() != p.dev(),
        _ => false,
    }
}

/// The binds of one container: its `volumeMounts` over the prepared volumes.
pub fn container_mounts(
    container: &Container,
    volumes: &BTreeMap<String, Prepared>,
) -> Result<Vec<Mount>, VolumeError> {
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.clone().unwrap_or_default() {
        let volume =
            volumes.get(&vm.name).ok_or_else(|| failed(format!("volume {:?} is not defined in the pod", vm.name)))?;
        let mut source = volume.path.clone();
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if Path::new(sub).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                return Err(failed(format!("subPath {sub:?} must be a relative path inside the volume")));
            }
            source = source.join(sub);
            if !source.exists() {
                fs::create_dir_all(&source).map_err(failed)?;
            }
        }
        mounts.push(Mount {
            kind: MountKind::Bind,
            source,
            target: vm.mount_path.clone(),
            read_only: vm.read_only.unwrap_or(false) || volume.read_only,
        });
    }
    Ok(mounts)
}
