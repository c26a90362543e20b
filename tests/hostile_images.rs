//! Issue 10, hostile images: documents and layers built to exhaust the tool (indexes
//! nested thousands deep, layers that expand a thousandfold, odd PAX headers, files named
//! like whiteouts, names carrying terminal escapes). Each is refused with a clear error
//! (or printed safely), nothing crashes, and the store is left as it was.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use support::*;

/// A store holding one small image named `good`.
fn store_with_image(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    busybox_rootfs(&tree);
    let store = dir.join("store");
    import_tree(&store, &tree, "good");
    store
}

/// Wraps the manifest `name` points at in `depth` indexes, each holding the one below,
/// and names the outermost one `deep` in the layout's `index.json`.
fn nest_in_indexes(layout: &Path, name: &str, depth: usize) {
    let mut index = read_json(&layout.join("index.json"));
    let entries = index["manifests"].as_array().unwrap().clone();
    let mut below = entries
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap()
        .clone();
    below.as_object_mut().unwrap().remove("annotations");
    for _ in 0..depth {
        let bytes = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [below],
        })
        .to_string()
        .into_bytes();
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        std::fs::write(blob(layout, &digest), &bytes).unwrap();
        below = json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest,
            "size": bytes.len(),
        });
    }
    below["annotations"] = json!({ "org.opencontainers.image.ref.name": "deep" });
    index["manifests"].as_array_mut().unwrap().push(below);
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
}

fn assert_too_deep(run: Run, what: &str) {
    let run = run.fails_with(2);
    assert!(
        run.stderr.contains("nests indexes more than 8 deep") && run.stderr.contains("deep"),
        "{what}: {}",
        run.text()
    );
}

/// B05/W05: an index chain 1,500 deep (which used to overflow the stack) is refused by
/// every command that resolves it, from the store and from an `oci:` layout.
#[test]
fn index_nested_1500_deep_is_refused_everywhere() {
    let dir = temp_dir();
    let store = store_with_image(dir.path());
    let layout = dir.join("layout");
    Cmd::solum(&store)
        .args(["push", "good"])
        .arg(format!("oci:{}:img", layout.display()))
        .run()
        .ok();
    nest_in_indexes(&layout, "img", 1500);
    nest_in_indexes(&store, "good", 1500);
    let before = snapshot(&store);
    let deep_layout = format!("oci:{}:deep", layout.display());
    let out = format!("oci:{}:out", dir.path().join("out").display());

    assert_too_deep(
        Cmd::solum(&store).arg("inspect").arg(&deep_layout).run(),
        "inspect oci:",
    );
    assert_too_deep(
        Cmd::solum(&store)
            .arg("push")
            .arg(&deep_layout)
            .arg("copy")
            .run(),
        "copy oci:",
    );
    assert_too_deep(
        Cmd::solum(&store).args(["inspect", "deep"]).run(),
        "inspect store",
    );
    assert_too_deep(
        Cmd::solum(&store).args(["push", "deep"]).arg(&out).run(),
        "push to oci:",
    );
    assert_too_deep(
        Cmd::solum(&store)
            .args(["push", "deep", "docker://127.0.0.1:9/x/y:1"])
            .run(),
        "push to a registry",
    );
    assert_too_deep(
        Cmd::solum(&store).args(["run", "deep", "--", "true"]).run(),
        "run",
    );
    assert_eq!(snapshot(&store), before, "the store changed");
    // gc walks every image: it stops with the error and removes nothing.
    assert_too_deep(Cmd::solum(&store).arg("gc").run(), "gc");
    assert_eq!(snapshot(&store), before, "gc changed the store");

    // A real multi-level index (two deep) still resolves.
    let layout2 = dir.join("layout2");
    Cmd::solum(&store)
        .args(["push", "good"])
        .arg(format!("oci:{}:img", layout2.display()))
        .run()
        .ok();
    nest_in_indexes(&layout2, "img", 2);
    Cmd::solum(&store)
        .arg("inspect")
        .arg(format!("oci:{}:deep", layout2.display()))
        .run()
        .ok();
}

/// The bytes of a tar holding `entries` (PAX records, then a file with `name` and
/// `data`), ended properly.
fn tar_with_pax(records: &[(&str, &[u8])], name: &str, data: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_path(name).unwrap();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, data).unwrap();
    builder.into_inner().unwrap()
}

/// Imports `tarball` and expects exit 2 with every needle in stderr, the store unchanged.
fn import_refused(store: &Path, tarball: &Path, needles: &[&str]) {
    let before = snapshot(store);
    let run = Cmd::solum(store)
        .arg("import")
        .arg(tarball)
        .args(["--tag", "bomb"])
        .run()
        .fails_with(2);
    for needle in needles {
        assert!(run.stderr.contains(needle), "{needle:?}: {}", run.text());
    }
    assert_eq!(snapshot(store), before, "the store changed");
}

/// W06: a 2.5 KiB GNU sparse tar declaring a 1 GiB file (all holes but one block) is
/// refused before anything is written, by the expansion ratio.
#[test]
fn sparse_tar_expanding_to_a_gibibyte_is_refused() {
    let dir = temp_dir();
    let store = store_with_image(dir.path());
    let mut header = tar::Header::new_gnu();
    header.set_path("zeros").unwrap();
    header.set_entry_type(tar::EntryType::GNUSparse);
    header.set_mode(0o644);
    header.set_size(512);
    let real = 1u64 << 30;
    let gnu = header.as_gnu_mut().unwrap();
    gnu.set_real_size(real);
    gnu.sparse[0].set_offset(real - 512);
    gnu.sparse[0].set_length(512);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend([b'x'; 512]);
    bytes.extend([0; 1024]);
    assert!(bytes.len() < 2600);
    let tarball = dir.path().join("sparse.tar");
    std::fs::write(&tarball, &bytes).unwrap();
    import_refused(
        &store,
        &tarball,
        &["\"zeros\"", "exceeds its limit", "200:1"],
    );
}

/// W06: a gzip of about 1 MiB holding a 1 GiB file of zeros is refused after at most a
/// few dozen MiB were written (and those are removed).
#[test]
fn gzip_bomb_is_refused() {
    use std::io::Write;
    let dir = temp_dir();
    let store = store_with_image(dir.path());
    let tarball = dir.path().join("bomb.tar.gz");
    let mut gzip = std::process::Command::new("gzip")
        .args(["-c", "-9"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(&tarball).unwrap())
        .spawn()
        .unwrap();
    {
        let mut stdin = gzip.stdin.take().unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_path("zeros").unwrap();
        header.set_size(1 << 30);
        header.set_mode(0o644);
        header.set_cksum();
        stdin.write_all(header.as_bytes()).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            stdin.write_all(&chunk).unwrap();
        }
        stdin.write_all(&[0; 1024]).unwrap();
    }
    assert!(gzip.wait().unwrap().success());
    assert!(std::fs::metadata(&tarball).unwrap().len() < 2 << 20);
    import_refused(
        &store,
        &tarball,
        &["\"zeros\"", "exceeds its limit", "200:1"],
    );
    // A tighter limit from the environment is obeyed too (here: bytes).
    let run = Cmd::solum(&store)
        .env("SOLUM_UNPACK_MAX_BYTES", Path::new("1000"))
        .arg("import")
        .arg(&tarball)
        .args(["--tag", "bomb"])
        .run()
        .fails_with(2);
    assert!(run.stderr.contains("1000 bytes"), "{}", run.text());
}

/// A gzip of about 1 MiB whose first header is a GNU long name (or PAX records) declaring
/// a gibibyte, followed by that gibibyte of zeros. The tar reader used to read the whole
/// body into memory (4.7 GB resident, 20 s); now it is refused at its header.
fn gibibyte_extension_layer(path: &Path, kind: tar::EntryType) {
    use std::io::Write;
    let mut gzip = std::process::Command::new("gzip")
        .args(["-c", "-1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(path).unwrap())
        .spawn()
        .unwrap();
    {
        let mut stdin = gzip.stdin.take().unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_path("././@LongLink").unwrap();
        header.set_size(1 << 30);
        header.set_cksum();
        stdin.write_all(header.as_bytes()).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            stdin.write_all(&chunk).unwrap();
        }
        stdin.write_all(&[0; 1024]).unwrap();
    }
    assert!(gzip.wait().unwrap().success());
    assert!(std::fs::metadata(path).unwrap().len() < 8 << 20);
}

/// A layer whose long name or PAX header declares a gibibyte is refused at that header:
/// exit 2, a message naming the tarball, the header and its size, the store unchanged, in
/// a few seconds and with a small peak resident set (measured by `/usr/bin/time`).
#[test]
fn gibibyte_extension_headers_are_refused_in_bounded_memory() {
    let dir = temp_dir();
    let store = store_with_image(dir.path());
    for (kind, name) in [
        (tar::EntryType::GNULongName, "GNU long name"),
        (tar::EntryType::XHeader, "PAX extended"),
    ] {
        let tarball = dir.join("long-name.tar.gz");
        gibibyte_extension_layer(&tarball, kind);
        let before = snapshot(&store);
        let peak_file = dir.join("peak-rss");
        let started = std::time::Instant::now();
        let run = Cmd::program("/usr/bin/time")
            .args(["-f", "%M", "-o"])
            .arg(&peak_file)
            .arg(bin())
            .arg("--store")
            .arg(&store)
            .arg("import")
            .arg(&tarball)
            .args(["--tag", "bomb"])
            .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
            .run()
            .fails_with(2);
        let elapsed = started.elapsed();
        for needle in [
            "long-name.tar.gz",
            name,
            "declares 1073741824 bytes",
            "limit of 1048576 bytes",
        ] {
            assert!(run.stderr.contains(needle), "{needle:?}: {}", run.text());
        }
        assert_eq!(snapshot(&store), before, "the store changed");
        // GNU time puts "Command exited with non-zero status 2" before the format.
        let peak_kib: u64 = std::fs::read_to_string(&peak_file)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(peak_kib < 128 * 1024, "{name}: peak RSS {peak_kib} KiB");
        eprintln!("{name}: refused in {elapsed:?}, peak RSS {peak_kib} KiB");
        assert!(elapsed.as_secs() < 15, "{name}: took {elapsed:?}");
    }
}

/// W19: a PAX size that does not fit in 64 bits is refused naming the entry (the tar
/// reader used to drop it silently and read the entry with the header's size).
#[test]
fn overflowing_pax_size_is_refused() {
    let dir = temp_dir();
    let store = store_with_image(dir.path());
    let tarball = dir.path().join("pax-size.tar");
    let bytes = tar_with_pax(&[("size", b"99999999999999999999")], "big", b"hello\n");
    std::fs::write(&tarball, bytes).unwrap();
    import_refused(
        &store,
        &tarball,
        &["\"big\"", "bad PAX record size", "99999999999999999999"],
    );
}

/// W19: a PAX path that is not UTF-8 (PAX names are bytes) is accepted and kept byte for
/// byte.
#[test]
fn non_utf8_pax_name_is_kept_as_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let dir = temp_dir();
    let store = store_with_image(dir.path());
    let tarball = dir.path().join("pax-name.tar");
    let mut name = b"caf\xe9-".to_vec();
    name.extend([b'n'; 120]);
    let bytes = tar_with_pax(
        &[("hdrcharset", b"BINARY"), ("path", &name)],
        "placeholder",
        b"hello\n",
    );
    std::fs::write(&tarball, bytes).unwrap();
    import_tree(&store, &tarball, "latin1");
    let tree = dir.path().join("unpacked");
    Cmd::solum(&store)
        .args(["unpack", "latin1"])
        .arg(&tree)
        .run()
        .ok();
    let file = tree.join(std::ffi::OsStr::from_bytes(&name));
    assert_eq!(std::fs::read(file).unwrap(), b"hello\n");
}

/// W01: a build that creates `/app/.wh.x` fails (exit 1) naming the path, and stores no
/// image: the layer would have been read back as a whiteout.
#[test]
fn a_build_creating_a_whiteout_named_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let store = store_with_image(dir.path());
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Cmd::solum(&store)
        .args(["push", "good", "base/busybox"])
        .run()
        .ok();
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(repo.join("badgers/shell"))
        .run()
        .ok();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("build"), "#!/bin/sh\ntouch /app/.wh.x\n").unwrap();
    std::fs::set_permissions(app.join("build"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let names = std::fs::read(store.join("index.json")).unwrap();
    let run = Cmd::solum(&store)
        .args(["build", "--badger", "badgers/shell", "--source"])
        .arg(&app)
        .args(["--name", "wh"])
        .run()
        .fails_with(1);
    assert!(
        run.stderr.contains("/app/.wh.x") && run.stderr.contains("whiteout"),
        "{}",
        run.text()
    );
    // The unpacked badger is cached, as for any build; no image was named.
    assert_eq!(std::fs::read(store.join("index.json")).unwrap(), names);
}

fn assert_no_controls(what: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(
        raw.is_empty(),
        "{what} printed raw control characters {raw:?}:\n{text}"
    );
}

/// W17: names, annotations and dates that carry terminal escapes (OSC retitle, CSI clear,
/// 8-bit CSI) are printed escaped by `images`, `inspect` and errors; JSON output still
/// parses to the original strings.
#[test]
fn terminal_escapes_in_names_and_annotations_are_printed_escaped() {
    let dir = temp_dir();
    let store = store_with_image(dir.path());
    let hostile_name = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}1m";
    let hostile_note = "note\u{1b}[31mred\u{7f}\u{85}";
    // A layout (as someone might hand over) whose only image is named, annotated and
    // dated with escapes.
    let layout = dir.join("layout");
    Cmd::solum(&store)
        .args(["push", "good"])
        .arg(format!("oci:{}:img", layout.display()))
        .run()
        .ok();
    let mut index = read_json(&layout.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = read_json(&blob(&layout, &manifest_digest));
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config = read_json(&blob(&layout, &config_digest));
    config["created"] = Value::from(hostile_note);
    let config_bytes = config.to_string().into_bytes();
    let config_digest = format!("sha256:{}", sha256_hex(&config_bytes));
    std::fs::write(blob(&layout, &config_digest), &config_bytes).unwrap();
    manifest["config"]["digest"] = Value::from(config_digest);
    manifest["config"]["size"] = Value::from(config_bytes.len());
    manifest["annotations"] = json!({ "org.example.note": hostile_note });
    let bytes = manifest.to_string().into_bytes();
    let digest = format!("sha256:{}", sha256_hex(&bytes));
    std::fs::write(blob(&layout, &digest), &bytes).unwrap();
    index["manifests"][0]["digest"] = Value::from(digest);
    index["manifests"][0]["size"] = Value::from(bytes.len());
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] =
        Value::from(hostile_name);
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();

    let inspect = Cmd::solum(&store)
        .arg("inspect")
        .arg(format!("oci:{}", layout.display()))
        .run()
        .ok();
    assert_no_controls("inspect", &inspect.stdout);
    let parsed: Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(parsed["name"], hostile_name);
    assert_eq!(parsed["annotations"]["org.example.note"], hostile_note);

    // The same layout used as a store: `images` and an error that lists its names.
    let table = Cmd::solum(&layout).arg("images").run().ok();
    assert_no_controls("images", &table.stdout);
    assert!(
        table.stdout.contains("evil\\u001b]0;pwned\\u0007"),
        "{}",
        table.stdout
    );
    assert_eq!(table.stdout.lines().count(), 2, "{}", table.stdout);
    let listed = Cmd::solum(&layout).args(["images", "--json"]).run().ok();
    assert_no_controls("images --json", &listed.stdout);
    let rows: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(rows[0]["name"], hostile_name);
    assert_eq!(rows[0]["created"], hostile_note);
    let missing = Cmd::solum(&layout)
        .args(["inspect", "nope"])
        .run()
        .fails_with(2);
    assert!(missing.stderr.contains("evil"), "{}", missing.text());
    assert_no_controls("an error", &missing.stderr);
}

trait Join {
    fn join(&self, name: &str) -> PathBuf;
}

impl Join for tempfile::TempDir {
    fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
