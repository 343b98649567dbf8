//! Pod volumes on this node: each volume becomes a host directory (or file) that containers'
//! `volumeMounts` bind into their roots. `emptyDir` lives in the pod's directory (a tmpfs for
//! medium `Memory`), `hostPath` is the host path, `configMap`/`secret`/`downwardAPI`/`projected`
//! are written as files, and `persistentVolumeClaim` is the bound volume's directory; a claim not
//! yet bound keeps the pod waiting. A projected `serviceAccountToken` is fetched through the
//! TokenRequest API, bound to the pod, and fetched again (`refresh_due`) once 80 % of its life
//! has passed; files are replaced by rename, so a reader never sees half a token.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume,
};
use kube::Api;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

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
    /// When the volume's token must be fetched again (projected service-account tokens only).
    pub refresh_at: Option<jiff::Timestamp>,
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
    let writable = |path: PathBuf| Prepared { path, read_only: false, refresh_at: None };
    if let Some(empty) = &volume.empty_dir {
        fs::create_dir_all(&dir).map_err(failed)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(failed)?;
        if empty.medium.as_deref() == Some("Memory") {
            let size = empty.size_limit.as_ref().map(|q| logic_bytes(&q.0)).unwrap_or(0);
            let options = if size > 0 { format!("size={size},mode=1777") } else { "mode=1777".into() };
            mount_tmpfs(&dir, &options, &format!("emptyDir {}", volume.name))?;
        }
        set_volume_ownership(&dir, pod, false)?;
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
        return Ok(Prepared { path, read_only: claim.read_only.unwrap_or(false), refresh_at: None });
    }
    if let Some(cm) = &volume.config_map {
        let files =
            source_files(client, namespace, &cm.name, cm.items.as_deref(), cm.optional, config_map_data).await?;
        return files_volume(&dir, pod, &files, cm.default_mode, false);
    }
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        let files =
            source_files(client, namespace, &name, secret.items.as_deref(), secret.optional, secret_data).await?;
        return files_volume(&dir, pod, &files, secret.default_mode, true);
    }
    if let Some(downward) = &volume.downward_api {
        let files = downward_files(pod, downward.items.as_deref().unwrap_or_default());
        return files_volume(&dir, pod, &files, downward.default_mode, false);
    }
    if let Some(projected) = &volume.projected {
        let mut files = BTreeMap::new();
        let mut refresh_at: Option<jiff::Timestamp> = None;
        for source in projected.sources.clone().unwrap_or_default() {
            if let Some(t) = source.service_account_token {
                let (token, refresh) = projected_token(client, pod, namespace, &t).await?;
                files.insert(t.path.clone(), (token.into_bytes(), None));
                refresh_at = Some(refresh_at.map_or(refresh, |r| r.min(refresh)));
            }
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
        let secret =
            projected.sources.iter().flatten().any(|s| s.secret.is_some() || s.service_account_token.is_some());
        let prepared = files_volume(&dir, pod, &files, projected.default_mode, secret)?;
        return Ok(Prepared { refresh_at, ..prepared });
    }
    Err(failed(format!("volume {:?}: this volume type is not supported by Ordinal's node agent", volume.name)))
}

/// A read-only volume of files (configMap, secret, downwardAPI, projected); on a tmpfs when it
/// holds secrets; the pod's `fsGroup` given read access.
fn files_volume(
    dir: &Path,
    pod: &Pod,
    files: &Files,
    default_mode: Option<i32>,
    secret: bool,
) -> Result<Prepared, VolumeError> {
    fs::create_dir_all(dir).map_err(failed)?;
    if secret {
        mount_tmpfs(dir, "mode=0755", "a secret volume")?;
    }
    write_files(dir, files, default_mode.unwrap_or(0o644))?;
    set_volume_ownership(dir, pod, true)?;
    Ok(Prepared { path: dir.to_path_buf(), read_only: true, refresh_at: None })
}

/// A token for the pod's service account, as its projection asks (audience, lifetime), bound
/// to the pod; and when to fetch the next one. A missing account (the `default` one of a
/// namespace made a moment ago) is waited for.
async fn projected_token(
    client: &kube::Client,
    pod: &Pod,
    namespace: &str,
    projection: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection,
) -> Result<(String, jiff::Timestamp), VolumeError> {
    use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: projection.audience.iter().filter(|a| !a.is_empty()).cloned().collect(),
            expiration_seconds: projection.expiration_seconds,
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let issued = jiff::Timestamp::now();
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let response = match api.create_token_request(&account, &kube::api::PostParams::default(), &request).await {
        Ok(r) => r,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(VolumeError::Waiting(format!(
                "failed to fetch token: serviceaccounts \"{account}\" not found"
            )));
        }
        Err(e) => return Err(failed(format!("failed to fetch token: {e}"))),
    };
    let status = response.status.ok_or_else(|| failed("failed to fetch token: the answer has no status"))?;
    let expires = jiff::Timestamp::from_second(status.expiration_timestamp.0.as_second()).unwrap_or(issued);
    Ok((status.token, logic::kubelet::token_refresh_at(issued, expires)))
}

/// Fetch the tokens that are due again and rewrite their volumes; a failure keeps the old
/// token (valid until it expires) and is tried again shortly.
pub async fn refresh_due(
    client: &kube::Client,
    pod: &Pod,
    pod_dir: &Path,
    volumes: &mut BTreeMap<String, Prepared>,
    now: jiff::Timestamp,
) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    for volume in pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        let Some(prepared) = volumes.get_mut(&volume.name) else { continue };
        if prepared.refresh_at.is_none_or(|at| at > now) {
            continue;
        }
        match prepare_one(client, pod, &namespace, pod_dir, volume).await {
            Ok(fresh) => *prepared = fresh,
            Err(VolumeError::Waiting(m) | VolumeError::Failed(m)) => {
                tracing::warn!(volume = %volume.name, error = %m, "refresh the service-account token");
                prepared.refresh_at = now.checked_add(jiff::SignedDuration::from_secs(10)).ok();
            }
        }
    }
}

/// The earliest token refresh among the volumes.
pub fn next_refresh(volumes: &BTreeMap<String, Prepared>) -> Option<jiff::Timestamp> {
    volumes.values().filter_map(|p| p.refresh_at).min()
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

/// Write `files` (an item's `path` names each) inside `dir`, each resolved inside it.
fn write_files(dir: &Path, files: &Files, default_mode: i32) -> Result<(), VolumeError> {
    fs::create_dir_all(dir).map_err(failed)?;
    let root = crate::fsroot::Root::open(dir).map_err(failed)?;
    for (relative, (bytes, mode)) in files {
        if Path::new(relative).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(failed(format!("invalid path {relative:?}")));
        }
        let io = |e: std::io::Error| failed(format!("write {}: {e}", root.display(Path::new(relative))));
        let (parent, name) = root
            .parent(Path::new(relative), Mode::from_bits_truncate(0o755))
            .map_err(io)?
            .ok_or_else(|| failed("empty path"))?;
        let mode = Mode::from_bits_truncate(mode.unwrap_or(default_mode) as u32 & 0o777);
        // Written beside its final name and renamed over it: a container reading the file
        // (a token being refreshed) sees the old contents or the new, never a part.
        let mut temporary = std::ffi::OsString::from(".");
        temporary.push(name.as_os_str());
        temporary.push(".tmp");
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(&parent, temporary.as_os_str(), flags, mode).map_err(|e| io(e.into()))?;
        let mut file = fs::File::from(fd);
        std::io::Write::write_all(&mut file, bytes).map_err(io)?;
        nix::sys::stat::fchmod(&file, mode).map_err(|e| io(e.into()))?;
        nix::fcntl::renameat(&parent, temporary.as_os_str(), &parent, name.as_os_str()).map_err(|e| io(e.into()))?;
    }
    Ok(())
}

/// A tmpfs at `dir` unless one is there already: memory-backed `emptyDir`s, and secrets, which
/// must never reach the disk.
fn mount_tmpfs(dir: &Path, options: &str, what: &str) -> Result<(), VolumeError> {
    if is_mount_point(dir) {
        return Ok(());
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(options),
    )
    .map_err(|e| failed(format!("mount tmpfs for {what}: {e}")))
}

/// Give the pod's `fsGroup` the volume, as kubelet's `SetVolumeOwnership` does: every
/// directory and regular file group-owned by it, readable (and writable unless read-only) by
/// the group, directories setgid so new files inherit the group. The walk goes through
/// descriptors and never follows a symlink: containers may have written the volume (it is
/// walked again when a restarted server prepares it). `fsGroupChangePolicy: OnRootMismatch`
/// skips a volume whose top already has the group.
fn set_volume_ownership(dir: &Path, pod: &Pod, read_only: bool) -> Result<(), VolumeError> {
    use std::os::unix::fs::MetadataExt;
    let sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let Some(gid) = sc.and_then(|s| s.fs_group).and_then(|g| u32::try_from(g).ok()) else { return Ok(()) };
    let on_root_mismatch = sc.and_then(|s| s.fs_group_change_policy.as_deref()) == Some("OnRootMismatch");
    let top = fs::symlink_metadata(dir).map_err(failed)?;
    if on_root_mismatch && top.gid() == gid && top.mode() & 0o2000 != 0 {
        return Ok(());
    }
    let bits = if read_only { (0o440, 0o550) } else { (0o660, 0o770) };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::open(dir, flags, Mode::empty()).map_err(|e| failed(format!("open {}: {e}", dir.display())))?;
    own_tree(fd, nix::unistd::Gid::from_raw(gid), bits)
        .map_err(|e| failed(format!("fsGroup on {}: {e}", dir.display())))
}

/// `set_volume_ownership`'s walk from an open directory.
fn own_tree(dir: std::os::fd::OwnedFd, gid: nix::unistd::Gid, (file_bits, dir_bits): (u32, u32)) -> nix::Result<()> {
    let own = |fd: &dyn std::os::fd::AsFd, bits: u32| -> nix::Result<()> {
        nix::unistd::fchown(fd.as_fd(), None, Some(gid))?;
        let mode = nix::sys::stat::fstat(fd.as_fd())?.st_mode & 0o7777;
        nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(mode | bits))
    };
    own(&dir, dir_bits | 0o2000)?;
    let mut entries = nix::dir::Dir::from_fd(dir)?;
    let names: Vec<std::ffi::CString> = entries
        .iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let at = nix::sys::stat::fstatat(&entries, name.as_c_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
        // O_NOFOLLOW: a symlink swapped in since the stat fails to open rather than be followed.
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        match at.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let child = nix::fcntl::openat(&entries, name.as_c_str(), flags | OFlag::O_DIRECTORY, Mode::empty())?;
                own_tree(child, gid, (file_bits, dir_bits))?;
            }
            libc::S_IFREG => {
                let file = nix::fcntl::openat(&entries, name.as_c_str(), flags, Mode::empty())?;
                if nix::sys::stat::fstat(&file)?.st_mode & libc::S_IFMT == libc::S_IFREG {
                    own(&file, file_bits)?;
                }
            }
            _ => {}
        }
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
        let sub_path = vm.sub_path.as_deref().filter(|s| !s.is_empty()).map(PathBuf::from);
        if let Some(sub) = &sub_path {
            // Checked here to say why (kubelet's wording); the shim resolves it again to mount it.
            crate::fsroot::sub_path(&volume.path, sub).map_err(|e| {
                failed(format!(
                    "failed to prepare subPath for volumeMount {:?} of container {:?}: {e}",
                    vm.name, container.name
                ))
            })?;
        }
        mounts.push(Mount {
            kind: MountKind::Bind,
            // Resolved inside the volume by the shim, never joined here.
            sub_path,
            source: volume.path.clone(),
            target: vm.mount_path.clone(),
            read_only: vm.read_only.unwrap_or(false) || volume.read_only,
        });
    }
    Ok(mounts)
}
