//! Writing an image: a directory becomes a one-layer OCI image-layout tar (`ordinal image build`).
//! The layer is reproducible (sorted entries, mtime 0, root-owned), so the same directory always
//! gives the same digests.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use super::{ImageConfig, ImageError, Result, io, sha256_hex};

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Append `dir` (recursively, sorted) to the layer under the name `prefix`.
fn append_tree(builder: &mut tar::Builder<Vec<u8>>, dir: &Path, prefix: &str) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir).map_err(io(dir))?.collect::<std::io::Result<_>>().map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mode(meta.permissions().mode() & 0o7777);
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(io(&path))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, &name, &target).map_err(io(&path))?;
        } else if kind.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, format!("{name}/"), std::io::empty()).map_err(io(&path))?;
            append_tree(builder, &path, &format!("{name}/"))?;
        } else if kind.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.size());
            let file = fs::File::open(&path).map_err(io(&path))?;
            builder.append_data(&mut header, &name, file).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Build a one-layer image named `name` from the directory `rootfs` and write it as an OCI
/// image-layout tar at `out`. Returns the manifest digest.
pub fn build_from_dir(rootfs: &Path, name: &str, config: &ImageConfig, out: &Path) -> Result<String> {
    let mut raw = tar::Builder::new(Vec::new());
    append_tree(&mut raw, rootfs, "")?;
    let raw = raw.into_inner().map_err(io(rootfs))?;
    let diff_id = digest(&raw);
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&raw).map_err(io(rootfs))?;
    let layer = gz.finish().map_err(io(rootfs))?;
    let json_bytes = |v: serde_json::Value| {
        serde_json::to_vec(&v).map_err(|source| ImageError::Json { what: "build".into(), source })
    };
    let config_blob = json_bytes(json!({
        "architecture": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
        "os": "linux",
        "config": {"Entrypoint": config.entrypoint, "Cmd": config.cmd, "Env": config.env,
                   "WorkingDir": config.working_dir, "User": config.user},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?;
    let manifest = json_bytes(json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config_blob), "size": config_blob.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(&layer), "size": layer.len()}],
    }))?;
    let tag = name.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map(|(_, t)| t).unwrap_or("latest");
    let index = json_bytes(json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&manifest),
                       "size": manifest.len(),
                       "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}}],
    }))?;
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |path: String, bytes: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        archive.append_data(&mut header, path, bytes).map_err(io(out))
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json".into(), &index)?;
    for blob in [&config_blob, &manifest, &layer] {
        add(format!("blobs/sha256/{}", sha256_hex(blob)), blob)?;
    }
    let bytes = archive.into_inner().map_err(io(out))?;
    fs::write(out, bytes).map_err(io(out))?;
    Ok(digest(&manifest))
}

/// Lay out a minimal root filesystem around a static busybox: the binary, a link per applet in
/// `/bin`, and `/etc/passwd` and `/etc/group` with root and nobody. (The tests' and benchmarks'
/// image; Debian's `busybox-static` provides the binary.)
pub fn busybox_rootfs(busybox: &Path, dir: &Path) -> Result<()> {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).map_err(io(&bin))?;
    let target = bin.join("busybox");
    fs::copy(busybox, &target).map_err(io(busybox))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).map_err(io(&target))?;
    let list = std::process::Command::new(busybox).arg("--list").output().map_err(io(busybox))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let link = bin.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link).map_err(io(&link))?;
        }
    }
    let etc = dir.join("etc");
    fs::create_dir_all(&etc).map_err(io(&etc))?;
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .map_err(io(&etc))?;
    fs::write(etc.join("group"), "root:x:0:\nnogroup:x:65534:\n").map_err(io(&etc))?;
    for d in ["root", "tmp"] {
        fs::create_dir_all(dir.join(d)).map_err(io(dir))?;
    }
    Ok(())
}
