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

/// An image of the one layer `blob` (the blob standing in for the manifest and config too).
fn one_layer(blob: &str, diff_id: &str) -> Image {
    Image {
        name: "localhost/test:1".into(),
        manifest: blob.to_string(),
        config: blob.to_string(),
        layers: vec![blob.to_string()],
        diff_ids: vec![diff_id.to_string()],
        size: 0,
    }
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
    let image = one_layer(&layer_digest, &layer_digest);
    let root = nix::unistd::geteuid().is_root();
    let result = store.unpack(&image);
    if !root {
        // The opaque marker is a trusted xattr: without root the unpack fails loudly, never
        // half-done.
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

// Hostile layers. Each is unpacked beside a marker tree outside the layer directory, which must
// come out byte for byte as it went in; each case says whether the unpack fails or confines the
// write inside the layer (containerd confines absolute names, `..` and symlinked paths inside the
// root rather than failing, and so does Ordinal).

/// One tar entry with its header written as is: any name (absolute, `..`), any link text.
fn raw_entry(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
    h.set_size(data.len() as u64);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, data).expect("append");
}

use tar::EntryType::{Directory as DIR, Link as HARD, Regular as FILE, Symlink as SYM};

/// A layer of raw entries: (type, name, link text, content).
fn hostile(entries: &[(tar::EntryType, &str, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (kind, name, link, data) in entries {
        raw_entry(&mut b, *kind, name, link, data);
    }
    b.into_inner().expect("tar")
}

/// Everything under `dir` (type, mode, owner, content or link text, the overlay xattr), to compare.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let what = if meta.is_dir() {
            todo.extend(fs::read_dir(&path).expect("read_dir").map(|e| e.expect("entry").path()));
            String::from("dir")
        } else if meta.file_type().is_symlink() {
            format!("-> {:?}", fs::read_link(&path).expect("readlink"))
        } else if meta.is_file() {
            format!("{:?}", fs::read(&path).expect("read"))
        } else {
            format!("node {:?} {}", meta.file_type(), meta.rdev())
        };
        let opaque = xattr(&path, c"trusted.overlay.opaque");
        let line = format!("{what} {:o} {}:{} {opaque:?}", meta.mode(), meta.uid(), meta.gid());
        out.insert(path, line);
    }
    out
}

fn xattr(path: &Path, name: &std::ffi::CStr) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    let mut value = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and the buffer pointer and length describe `value`;
    // lgetxattr keeps none of them.
    let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
    usize::try_from(n).ok().map(|n| value[..n].to_vec())
}

/// A store in a temp dir and a marker tree outside it (`marker`, `sub/file`, `sub/link`).
struct Hostile {
    _dir: tempfile::TempDir,
    store: ImageStore,
    outside: tempfile::TempDir,
    before: std::collections::BTreeMap<PathBuf, String>,
}

impl Hostile {
    fn new() -> Hostile {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::open(&dir.path().join("images")).expect("open");
        let outside = tempfile::tempdir().expect("outside");
        fs::write(outside.path().join("marker"), b"host").expect("marker");
        fs::create_dir(outside.path().join("sub")).expect("sub");
        fs::write(outside.path().join("sub/file"), b"host file").expect("file");
        std::os::unix::fs::symlink("../marker", outside.path().join("sub/link")).expect("link");
        let before = snapshot(outside.path());
        Hostile { _dir: dir, store, outside, before }
    }

    /// The outside tree's path as layer entries name it.
    fn out(&self, rest: &str) -> String {
        format!("{}{rest}", self.outside.path().display())
    }

    /// Where a write confined inside the layer lands for an absolute host path.
    fn inside(&self, layer: &Path, rest: &str) -> PathBuf {
        layer.join(self.out(rest).trim_start_matches('/'))
    }

    /// Unpack `raw` as a one-layer image (its diff id its own digest); the outside tree must
    /// come out as it went in, whatever the result.
    fn unpack(&self, raw: &[u8]) -> Result<PathBuf> {
        let digest = digest(raw);
        self.store.put_blob(&digest, raw).expect("blob");
        let image = one_layer(&digest, &digest);
        let result = self.store.unpack(&image).map(|mut dirs| dirs.remove(0));
        assert_eq!(snapshot(self.outside.path()), self.before, "the tree outside the layer changed: {result:?}");
        result
    }

    /// Unpack these entries, which must succeed with every write confined in the layer.
    fn confined(&self, entries: &[(tar::EntryType, &str, &str, &[u8])]) -> PathBuf {
        self.unpack(&hostile(entries)).expect("confined, not refused")
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn absolute_entries_are_confined_in_the_layer() {
    let h = Hostile::new();
    let etc = format!("/etc/ordinal-unpack-test-{}", std::process::id());
    let layer = h.confined(&[
        (FILE, &h.out("/marker"), "", b"pwned"),
        (FILE, &h.out("/sub/new"), "", b"pwned"),
        (FILE, &etc, "", b"pwned"),
    ]);
    assert!(!Path::new(&etc).exists(), "{etc} written on the host");
    assert_eq!(fs::read(h.inside(&layer, "/marker")).expect("inside"), b"pwned");
    assert_eq!(fs::read(layer.join(etc.trim_start_matches('/'))).expect("inside"), b"pwned");
}

#[test]
fn dotdot_entries_are_confined_in_the_layer() {
    let h = Hostile::new();
    let up = "../".repeat(20);
    let layer = h.confined(&[
        (FILE, "../escape", "", b"pwned"),
        (FILE, &format!("{up}{}", h.out("/marker").trim_start_matches('/')), "", b"pwned"),
        (FILE, "a/../../b", "", b"pwned"),
    ]);
    assert_eq!(fs::read(layer.join("escape")).expect("inside"), b"pwned");
    assert_eq!(fs::read(layer.join("b")).expect("inside"), b"pwned");
    assert_eq!(fs::read(h.inside(&layer, "/marker")).expect("inside"), b"pwned");
    assert!(!layer.parent().expect("layers").join("escape").exists());
}

#[test]
fn writes_through_a_symlink_to_the_outside_are_confined() {
    let h = Hostile::new();
    let layer = h.confined(&[
        (SYM, "a", &h.out(""), b""),
        (FILE, "a/marker", "", b"pwned"),
        (FILE, "a/sub/file", "", b"pwned"),
        (DIR, "a/sub/made/", "", b""),
        (SYM, "rel", "../../../../../../../../..", b""),
        (FILE, &format!("rel{}", h.out("/sub/new")), "", b"pwned"),
        // A symlink over a file outside: the entry replaces the link, it is not written to.
        (SYM, "m", &h.out("/marker"), b""),
        (FILE, "m", "", b"pwned"),
    ]);
    assert_eq!(fs::read_link(layer.join("a")).expect("link kept as is"), h.outside.path());
    assert_eq!(fs::read(h.inside(&layer, "/marker")).expect("inside"), b"pwned");
    assert_eq!(fs::read(h.inside(&layer, "/sub/new")).expect("inside"), b"pwned");
    assert!(h.inside(&layer, "/sub/made").is_dir());
    assert_eq!(fs::read(layer.join("m")).expect("replaced"), b"pwned");
}

#[test]
fn whiteouts_through_a_symlink_are_confined() {
    use std::os::unix::fs::FileTypeExt;
    let h = Hostile::new();
    let result = h.unpack(&hostile(&[
        (SYM, "a", &h.out(""), b""),
        (FILE, "a/.wh.new", "", b""),
        (FILE, "a/.wh.marker", "", b""),
        (FILE, &h.out("/.wh.sub"), "", b""),
    ]));
    // Whiteouts are 0/0 character devices, which Linux lets anyone make since 5.8.
    let layer = match result {
        Ok(layer) => layer,
        Err(e) => return assert!(!is_root(), "refused as root: {e}"),
    };
    for name in ["/new", "/marker", "/sub"] {
        let whiteout = fs::symlink_metadata(h.inside(&layer, name)).expect("whiteout inside");
        assert!(whiteout.file_type().is_char_device(), "{name}");
    }
}

#[test]
fn an_opaque_marker_through_a_symlink_is_set_inside() {
    let h = Hostile::new();
    let result = h.unpack(&hostile(&[(SYM, "a", &h.out(""), b""), (FILE, "a/sub/.wh..wh..opq", "", b"")]));
    if !is_root() {
        // A trusted xattr: refused without root.
        assert!(result.is_err());
        return;
    }
    let layer = result.expect("confined, not refused");
    assert_eq!(xattr(&h.inside(&layer, "/sub"), c"trusted.overlay.opaque"), Some(b"y".to_vec()));
}

#[test]
fn hard_links_never_reach_the_outside() {
    use std::os::unix::fs::MetadataExt;
    let h = Hostile::new();
    // The source a symlink to the outside: the link is linked, not followed; a file written
    // to the name afterwards replaces it.
    let layer = h.confined(&[
        (SYM, "l", &h.out("/marker"), b""),
        (HARD, "h", "l", b""),
        (HARD, "h2", "l", b""),
        (FILE, "h2", "", b"pwned"),
    ]);
    let (l, hard) =
        (fs::symlink_metadata(layer.join("l")).expect("l"), fs::symlink_metadata(layer.join("h")).expect("h"));
    assert!(hard.file_type().is_symlink() && hard.ino() == l.ino(), "a hard link to the symlink itself");
    assert_eq!(fs::read(layer.join("h2")).expect("h2"), b"pwned");
    // A source named by its host path, or through a symlink to the outside, is looked for
    // inside the layer, where it is not: the unpack fails.
    for source in [h.out("/marker"), "d/marker".to_string(), format!("{}/marker", "../".repeat(20))] {
        let err = h
            .unpack(&hostile(&[(SYM, "d", &h.out(""), b""), (HARD, "h", &source, b"")]))
            .expect_err("no such source inside");
        assert!(err.to_string().contains("entry \"h\""), "{err}");
    }
}

#[test]
fn a_directory_replaced_by_a_symlink_is_not_written_through() {
    let h = Hostile::new();
    let layer = h.confined(&[
        (DIR, "d/", "", b""),
        (FILE, "d/f", "", b"old"),
        (SYM, "d", &h.out(""), b""),
        (FILE, "d/marker", "", b"pwned"),
        (DIR, "d/sub/", "", b""),
        (FILE, "d/sub/file", "", b"pwned"),
    ]);
    assert!(fs::symlink_metadata(layer.join("d")).expect("d").file_type().is_symlink());
    assert_eq!(fs::read(h.inside(&layer, "/marker")).expect("inside"), b"pwned");
    assert_eq!(fs::read(h.inside(&layer, "/sub/file")).expect("inside"), b"pwned");
}

#[test]
fn names_that_end_nowhere_are_refused() {
    let h = Hostile::new();
    let cases =
        [("a/..", "ends in `..`"), ("", "empty name"), (".wh..", "whiteout"), (".", "layer's root"), ("/.", "root")];
    for (name, why) in cases {
        let err = h.unpack(&hostile(&[(FILE, name, "", b"x")])).expect_err(name);
        assert!(err.to_string().contains(why), "{name:?}: {err}");
    }
    // A directory entry naming the root is skipped, as before.
    h.unpack(&hostile(&[(DIR, "./", "", b""), (DIR, "/", "", b"")])).expect("root entries skipped");
}

#[test]
fn diff_ids_that_are_not_digests_are_refused_before_any_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    let store = ImageStore::open(&images).expect("open");
    let raw = hostile(&[(FILE, "x", "", b"x")]);
    let blob = digest(&raw);
    store.put_blob(&blob, &raw).expect("blob");
    let before = snapshot(dir.path());
    let upper = format!("sha256:{}", "A".repeat(64));
    for bad in ["sha256:../../pki", "sha256:", upper.as_str(), "sha512:00", "../x"] {
        let image = one_layer(&blob, bad);
        let err = store.unpack(&image).expect_err(bad);
        assert!(matches!(&err, ImageError::BadDiffId(id) if id == bad), "{bad}: {err}");
        assert!(err.to_string().contains("not a digest"), "{err}");
        assert!(matches!(store.record(image), Err(ImageError::BadDiffId(_))), "an image naming it is refused");
        assert_eq!(snapshot(dir.path()), before, "{bad}: something was made");
    }
    let image = Image { diff_ids: vec![], ..one_layer(&blob, &blob) };
    assert!(matches!(store.unpack(&image), Err(ImageError::LayerCount { layers: 1, diff_ids: 0 })));
}

#[test]
fn content_that_does_not_match_its_diff_id_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(&dir.path().join("images")).expect("open");
    // A layer claiming another's diff id: it must not become that layer's cached directory.
    let (gz, real_diff_id) = layer("bin/app", b"#!/bin/sh\necho hi\n");
    let claimed = digest(b"someone else's layer");
    let blob = digest(&gz);
    store.put_blob(&blob, &gz).expect("blob");
    let image = |diff_id: &str| one_layer(&blob, diff_id);
    let err = store.unpack(&image(&claimed)).expect_err("mismatch");
    assert!(matches!(&err, ImageError::LayerDigest { actual, .. } if *actual == real_diff_id), "{err}");
    let layers = dir.path().join("images/layers");
    assert_eq!(fs::read_dir(&layers).expect("layers").count(), 0, "no layer dir and no staging dir left");
    // The true diff id unpacks.
    let dirs = store.unpack(&image(&real_diff_id)).expect("matching");
    assert_eq!(fs::read(dirs[0].join("bin/app")).expect("app"), b"#!/bin/sh\necho hi\n");
}

#[test]
fn a_dead_unpack_leaves_nothing_that_is_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(&dir.path().join("images")).expect("open");
    let raw = hostile(&[(FILE, "x", "", b"x")]);
    let id = digest(&raw);
    store.put_blob(&id, &raw).expect("blob");
    // What a process killed mid-unpack leaves: a staging dir (its pid gone), never the layer dir.
    let layers = dir.path().join("images/layers");
    let stale = layers.join(format!("{}.staging-2147483647-0", &id[7..]));
    fs::create_dir_all(stale.join("half")).expect("stale");
    let image = one_layer(&id, &id);
    let dirs = store.unpack(&image).expect("unpack");
    assert!(!stale.exists(), "the stale staging dir is removed");
    let names: Vec<_> = fs::read_dir(&layers).expect("layers").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, [std::ffi::OsString::from(&id[7..])]);
    assert_eq!(fs::read(dirs[0].join("x")).expect("x"), b"x");
}

#[test]
fn entries_keep_their_kind_owner_mode_and_xattrs() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let h = Hostile::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut file = tar::Header::new_gnu();
    file.set_size(2);
    file.set_mode(0o4755);
    file.set_uid(1234);
    file.set_gid(5678);
    file.set_mtime(1_000_000);
    b.append_pax_extensions([("SCHILY.xattr.user.origin", &b"layer"[..])]).expect("pax");
    b.append_data(&mut file, "bin/tool", &b"#!"[..]).expect("file");
    let mut fifo = tar::Header::new_gnu();
    fifo.set_entry_type(tar::EntryType::Fifo);
    fifo.set_mode(0o640);
    fifo.set_size(0);
    b.append_data(&mut fifo, "run/pipe", std::io::empty()).expect("fifo");
    let mut dev = tar::Header::new_gnu();
    dev.set_entry_type(tar::EntryType::Block);
    dev.set_mode(0o600);
    dev.set_size(0);
    dev.set_device_major(8).expect("major");
    b.append_data(&mut dev, "disk", std::io::empty()).expect("block device");
    let raw = b.into_inner().expect("tar");
    let layer = h.unpack(&raw).expect("unpack");
    let tool = fs::metadata(layer.join("bin/tool")).expect("tool");
    assert_eq!(tool.mtime(), 1_000_000);
    assert_eq!(xattr(&layer.join("bin/tool"), c"user.origin"), Some(b"layer".to_vec()));
    if is_root() {
        assert_eq!((tool.uid(), tool.gid()), (1234, 5678));
        assert_eq!(tool.permissions().mode() & 0o7777, 0o4755, "set-uid kept after chown");
    }
    let pipe = fs::symlink_metadata(layer.join("run/pipe")).expect("pipe");
    assert!(pipe.file_type().is_fifo() && pipe.permissions().mode() & 0o777 == 0o640);
    assert!(!layer.join("disk").exists(), "device nodes are not made");
}
