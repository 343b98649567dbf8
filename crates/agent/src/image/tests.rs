use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use super::*;

/// A layer tar holding one file, gzipped; returns (compressed bytes, diff id).
fn layer(path: &str, contents: &[u8]) -> (Vec<u8>, String) {
    let mut raw = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(contents.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    raw.append_data(&mut header, path, contents).expect("append");
    let raw = raw.into_inner().expect("tar");
    let diff_id = format!("sha256:{}", sha256_hex(&raw));
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&raw).expect("gzip");
    (gz.finish().expect("gzip"), diff_id)
}

fn add(builder: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, path, bytes).expect("append");
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// An OCI image-layout tar with one image named `name`.
fn oci_layout(name: &str, cmd: &[&str]) -> Vec<u8> {
    oci_layout_with(name, cmd, false)
}

/// With `corrupt`, the config blob's content no longer matches its name.
fn oci_layout_with(name: &str, cmd: &[&str], corrupt: bool) -> Vec<u8> {
    let (layer_bytes, diff_id) = layer("bin/app", b"#!/bin/sh\necho hi\n");
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/srv"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    }))
    .expect("config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(&layer_bytes), "size": layer_bytes.len()}]
    }))
    .expect("manifest");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&manifest), "size": manifest.len(),
                        "annotations": {"io.containerd.image.name": name}}]
    }))
    .expect("index");
    let mut b = tar::Builder::new(Vec::new());
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add(&mut b, "index.json", &index);
    for blob in [&config, &manifest, &layer_bytes] {
        let mut content = blob.clone();
        if corrupt && std::ptr::eq(blob, &config) {
            content.push(b' ');
        }
        add(&mut b, &format!("blobs/sha256/{}", &digest(blob)[7..]), &content);
    }
    b.into_inner().expect("tar")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).expect("write");
    path
}

#[test]
fn imports_an_oci_layout_and_reads_its_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(&dir.path().join("images")).expect("open");
    let archive = write(dir.path(), "busybox.tar", &oci_layout("localhost/busybox:1.35", &["sleep", "inf"]));
    let images = store.import(&archive).expect("import");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].name, "localhost/busybox:1.35");
    assert_eq!(images[0].layers.len(), 1);
    assert_eq!(images[0].diff_ids.len(), 1);
    let image = store.get("localhost/busybox:1.35").expect("read").expect("present");
    let config = store.config(&image).expect("config");
    assert_eq!(config.cmd, ["sleep", "inf"]);
    assert_eq!((config.working_dir.as_str(), config.env.clone()), ("/srv", vec!["PATH=/bin".to_string()]));
    // Importing again is idempotent.
    store.import(&archive).expect("import again");
    assert_eq!(store.list().expect("list").len(), 1);
}

#[test]
fn imports_a_docker_save_archive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(&dir.path().join("images")).expect("open");
    let (layer_gz, diff_id) = layer("bin/app", b"x");
    let mut raw_layer = Vec::new();
    flate2::read::GzDecoder::new(layer_gz.as_slice()).read_to_end(&mut raw_layer).expect("gunzip");
    let config =
        serde_json::to_vec(&json!({"config": {"Entrypoint": ["/bin/app"]}, "rootfs": {"diff_ids": [diff_id]}}))
            .expect("config");
    let manifest =
        serde_json::to_vec(&json!([{"Config": "cfg.json", "RepoTags": ["app:v1"], "Layers": ["l1/layer.tar"]}]))
            .expect("manifest");
    let mut b = tar::Builder::new(Vec::new());
    add(&mut b, "manifest.json", &manifest);
    add(&mut b, "cfg.json", &config);
    add(&mut b, "l1/layer.tar", &raw_layer);
    let archive = write(dir.path(), "app.tar", &b.into_inner().expect("tar"));
    let images = store.import(&archive).expect("import");
    assert_eq!(images[0].name, "docker.io/library/app:v1");
    assert_eq!(store.config(&images[0]).expect("config").entrypoint, ["/bin/app"]);
}

#[test]
fn corrupt_blobs_and_unknown_archives_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(&dir.path().join("images")).expect("open");
    let bad = oci_layout_with("localhost/x:1", &["true"], true);
    let archive = write(dir.path(), "bad.tar", &bad);
    assert!(matches!(store.import(&archive), Err(ImageError::DigestMismatch { .. })));
    assert!(store.list().expect("list").is_empty(), "nothing half-imported is named");
    let mut b = tar::Builder::new(Vec::new());
    add(&mut b, "README", b"hello");
    let other = write(dir.path(), "other.tar", &b.into_inner().expect("tar"));
    assert!(matches!(store.import(&other), Err(ImageError::UnknownFormat(_))));
}

#[test]
fn removing_an_image_deletes_only_unshared_blobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(&dir.path().join("images")).expect("open");
    let a = write(dir.path(), "a.tar", &oci_layout("localhost/a:1", &["a"]));
    let b = write(dir.path(), "b.tar", &oci_layout("localhost/b:1", &["b"]));
    store.import(&a).expect("import a");
    let b_image = store.import(&b).expect("import b").remove(0);
    let blobs = || fs::read_dir(dir.path().join("images/blobs/sha256")).expect("dir").count();
    // Same layer, different configs and manifests: 1 shared + 2×2 own.
    assert_eq!(blobs(), 5);
    assert!(store.remove("localhost/a:1").expect("remove"));
    assert_eq!(blobs(), 3);
    assert!(!store.remove("localhost/a:1").expect("second remove"));
    assert_eq!(store.list().expect("list"), [b_image]);
}

/// A layer exercising what unpacking must get right: modes, hard links, whiteouts, opaque dirs.
fn tricky_layer() -> Vec<u8> {
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        h
    }
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header(tar::EntryType::Directory, 0o755, 0), "etc/", std::io::empty()).expect("dir");
    b.append_data(&mut header(tar::EntryType::Regular, 0o640, 5), "etc/secret", &b"shh!\n"[..]).expect("file");
    b.append_link(&mut header(tar::EntryType::Link, 0o640, 0), "etc/alias", "etc/secret").expect("hard link");
    b.append_data(&mut header(tar::EntryType::Regular, 0o600, 0), "etc/.wh.gone", std::io::empty()).expect("whiteout");
    b.append_data(&mut header(tar::EntryType::Regular, 0o600, 0), "etc/.wh..wh..opq", std::io::empty())
        .expect("opaque");
    b.into_inner().expect("tar")
}

#[test]
fn layers_unpack_once_for_overlayfs() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(&dir.path().join("images")).expect("open");
    let raw = tricky_layer();
    let layer_digest = digest(&raw);
    store.put_blob(&layer_digest, &raw).expect("blob");
    let image = Image {
        name: "localhost/tricky:1".into(),
        manifest: layer_digest.clone(),
        config: layer_digest.clone(),
        layers: vec![layer_digest.clone()],
        diff_ids: vec![layer_digest],
        size: 0,
    };
    let root = nix::unistd::geteuid().is_root();
    let result = store.unpack(&image);
    if !root {
        // Whiteouts are device nodes: without root the unpack fails loudly, never half-done.
        assert!(result.is_err());
        return;
    }
    let dirs = result.expect("unpack as root");
    let layer = &dirs[0];
    let secret = fs::metadata(layer.join("etc/secret")).expect("file");
    assert_eq!(secret.permissions().mode() & 0o777, 0o640);
    assert_eq!(fs::read(layer.join("etc/alias")).expect("link"), b"shh!\n");
    assert_eq!(fs::metadata(layer.join("etc/alias")).expect("link").ino(), secret.ino(), "a hard link, not a copy");
    let gone = fs::symlink_metadata(layer.join("etc/gone")).expect("whiteout");
    assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
    assert!(!layer.join("etc/.wh.gone").exists());
    // Unpacking again reuses the directory.
    fs::write(layer.join("etc/extra"), b"kept").expect("write");
    store.unpack(&image).expect("again");
    assert!(layer.join("etc/extra").exists(), "an unpacked layer is not redone");
}
