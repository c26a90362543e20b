//! Shared tree fixtures: a busybox root filesystem, a tree with every entry kind the layer
//! format carries, a listing of a tree for comparison with a peer's, a fingerprint of a
//! folder to prove a failed command left it alone, a gzip tarball of a folder, and the Debian
//! base tarballs the badger tests import.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cmd::{is_root, Cmd};

/// A busybox root filesystem from Debian's busybox-static (a handful of applets).
pub fn busybox_rootfs(dir: &Path) {
    for sub in ["bin", "etc", "tmp", "root", "app"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox"))
        .expect("/bin/busybox (apt install busybox-static)");
    // One symlink per applet, as `busybox --install -s` would make.
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

/// The folder of this repository (shipped badgers, scripts, testdata).
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cached root filesystem tarball of a base image kind (`debian-python3`), which
/// `scripts/make-base-images.sh --only KIND --no-import` makes; it must exist.
pub fn base_tarball(kind: &str) -> PathBuf {
    let cache = std::env::var_os("SOLUM_BASE_CACHE").map_or_else(
        || PathBuf::from("/var/cache/solum-build-base"),
        PathBuf::from,
    );
    let tarball = cache.join(format!("{kind}.tar"));
    assert!(
        tarball.is_file(),
        "{} is missing: run `sh scripts/make-base-images.sh --only {kind} --no-import` as root",
        tarball.display()
    );
    tarball
}

/// `solum-build import TREE --tag TAG` into `store`, which must succeed.
pub fn import_tree(store: &Path, tree: &Path, tag: &str) {
    Cmd::solum(store)
        .arg("import")
        .arg(tree)
        .args(["--tag", tag])
        .run()
        .ok();
}

/// Fills `store` for a build: a busybox root filesystem made in `dir/busybox` and imported
/// as `base/busybox`, then each shipped badger named (`badgers/NAME`) built on it.
pub fn busybox_store(dir: &Path, store: &Path, badgers: &[&str]) {
    let rootfs = dir.join("busybox");
    busybox_rootfs(&rootfs);
    import_tree(store, &rootfs, "base/busybox");
    for badger in badgers {
        Cmd::solum(store)
            .args(["badger", "build"])
            .arg(repo_dir().join("badgers").join(badger))
            .run()
            .ok();
    }
}

/// The layer digests of the store image `name` (`solum-build inspect`), bottom first.
pub fn layer_digests(store: &Path, name: &str) -> Vec<String> {
    let inspect = Cmd::solum(store).args(["inspect", name]).run().ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    json["manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// The JSON document in a file (an `index.json`, a blob).
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Where an OCI layout (or a store) keeps the blob `digest` (`sha256:HEX`).
pub fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// `git ARGS…` in `dir` as a fixed committer at a fixed time; returns stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    Cmd::program("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .run()
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// A tree with every entry kind the layer format carries: files with odd modes (setuid,
/// setgid, sticky, 0000), a hardlink, symlinks (relative, absolute, dangling), a fifo, long
/// and non-UTF-8 names, xattrs, an empty directory, and — as root — other owners and
/// device nodes.
pub fn every_kind_rootfs(dir: &Path) {
    busybox_rootfs(dir);
    let p = |s: &str| dir.join(s);
    std::fs::create_dir_all(p("data/empty")).unwrap();
    std::fs::create_dir_all(p("data/deep/a/b/c")).unwrap();
    std::fs::write(p("data/file.txt"), "hello\n").unwrap();
    std::fs::write(p("data/deep/a/b/c/leaf"), vec![7u8; 100_000]).unwrap();
    std::fs::hard_link(p("data/file.txt"), p("data/hardlink.txt")).unwrap();
    std::os::unix::fs::symlink("file.txt", p("data/rel-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p("data/abs-link")).unwrap();
    std::os::unix::fs::symlink("../nowhere", p("data/dangling")).unwrap();
    nix::unistd::mkfifo(
        &p("data/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let long = "l".repeat(200);
    std::fs::write(p(&format!("data/{long}")), "long name").unwrap();
    let non_utf8 = dir.join("data").join(OsStr::from_bytes(b"caf\xe9"));
    std::fs::write(non_utf8, "latin-1 name").unwrap();
    for (name, mode) in [
        ("setuid", 0o4755),
        ("setgid", 0o2755),
        ("nothing", 0o000),
        ("readonly", 0o444),
    ] {
        std::fs::write(p(&format!("data/{name}")), name).unwrap();
        std::fs::set_permissions(
            p(&format!("data/{name}")),
            std::fs::Permissions::from_mode(mode),
        )
        .unwrap();
    }
    std::fs::create_dir(p("data/sticky")).unwrap();
    std::fs::set_permissions(p("data/sticky"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    xattr::set(p("data/file.txt"), "user.origin", b"solum-test").unwrap();
    if is_root() {
        nix::unistd::chown(
            &p("data/file.txt"),
            Some(nix::unistd::Uid::from_raw(1000)),
            Some(nix::unistd::Gid::from_raw(1001)),
        )
        .unwrap();
        std::fs::create_dir(p("dev")).unwrap();
        nix::sys::stat::mknod(
            &p("dev/null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
    }
}

/// What a comparison looks at for one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub owner: Option<(u32, u32)>,
    pub link: Option<PathBuf>,
    pub content: Option<String>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub rdev: Option<u64>,
}

/// Every entry below `root` (the root itself excluded), keyed by relative path. Owners are
/// kept when `with_owners`; xattrs named in `skip_xattrs` are left out.
pub fn listing(root: &Path, with_owners: bool, skip_xattrs: &[&str]) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        let ft = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            "file"
        };
        let content = (kind == "file").then(|| {
            // Reading a mode-0000 file as root works; as tester the bytes come from the
            // owner's permission, which a rootless unpack keeps readable.
            match std::fs::read(entry.path()) {
                Ok(bytes) => format!(
                    "{:x}",
                    sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes))
                ),
                Err(e) => format!("unreadable: {}", e.kind()),
            }
        });
        let mut xattrs = BTreeMap::new();
        if kind != "symlink" {
            if let Ok(names) = xattr::list(entry.path()) {
                for name in names {
                    let name = name.to_string_lossy().into_owned();
                    if skip_xattrs.iter().any(|s| name.starts_with(s)) {
                        continue;
                    }
                    let value = xattr::get(entry.path(), &name)
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    xattrs.insert(name, value);
                }
            }
        }
        out.insert(
            entry.path().strip_prefix(root).unwrap().to_path_buf(),
            Entry {
                kind,
                mode: meta.mode() & 0o7777,
                owner: with_owners.then(|| (meta.uid(), meta.gid())),
                link: ft
                    .is_symlink()
                    .then(|| std::fs::read_link(entry.path()).unwrap()),
                content,
                xattrs,
                rdev: (kind == "char" || kind == "block").then(|| meta.rdev()),
            },
        );
    }
    out
}

/// Asserts two listings are equal, printing the first differences by path.
pub fn assert_same_tree(
    what: &str,
    left: &BTreeMap<PathBuf, Entry>,
    right: &BTreeMap<PathBuf, Entry>,
) {
    let mut differences = Vec::new();
    for (path, entry) in left {
        match right.get(path) {
            None => differences.push(format!("{}: only in the first", path.display())),
            Some(other) if other != entry => {
                differences.push(format!("{}: {entry:?} != {other:?}", path.display()));
            }
            _ => {}
        }
    }
    for path in right.keys().filter(|p| !left.contains_key(*p)) {
        differences.push(format!("{}: only in the second", path.display()));
    }
    assert!(
        differences.is_empty(),
        "{what}: {} differences:\n{}",
        differences.len(),
        differences[..differences.len().min(30)].join("\n")
    );
}

/// A fingerprint of a folder (every path, and each file's content), to check that a
/// failed command left it exactly as it was. Empty directories are ignored (a temp folder
/// made and removed again is no change).
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    if !root.exists() {
        return out;
    }
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            out.insert(
                entry.path().strip_prefix(root).unwrap().to_path_buf(),
                sha256_file(entry.path()),
            );
        } else if !entry.file_type().is_dir() {
            out.insert(
                entry.path().strip_prefix(root).unwrap().to_path_buf(),
                String::new(),
            );
        }
    }
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(bytes))
}

fn sha256_file(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap())
}

/// A gzip tarball of `dir`'s entries (symlinks stored as symlinks).
pub fn tarball(dir: &Path) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// A source folder `source` whose executable `build` script (run by the shell badger) is
/// `body` after `#!/bin/sh`.
pub fn source_with_build_script(source: &Path, body: &str) {
    std::fs::create_dir_all(source).unwrap();
    let script = source.join("build");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A store `dir/NAME` holding `base/busybox` and the shell badger, its busybox tree made in
/// `dir/NAME-rootfs`.
pub fn shell_badger_store(dir: &Path, name: &str) -> PathBuf {
    let store = dir.join(name);
    let scratch = dir.join(format!("{name}-rootfs"));
    std::fs::create_dir_all(&scratch).unwrap();
    busybox_store(&scratch, &store, &["shell"]);
    store
}

/// `solum-build keygen --output-prefix PREFIX`: the private and the public key's paths.
pub fn keygen(prefix: &Path) -> (PathBuf, PathBuf) {
    Cmd::solum_without_store()
        .arg("keygen")
        .arg("--output-prefix")
        .arg(prefix)
        .run()
        .ok();
    (
        PathBuf::from(format!("{}.key", prefix.display())),
        PathBuf::from(format!("{}.pub", prefix.display())),
    )
}
