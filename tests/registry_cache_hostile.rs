//! The registry build cache (issue 14, item 3) against hostile cache repositories, on a
//! real `docker-registry`: entries made by hand (manifests and blobs put with curl) that
//! carry this build's key but not its DU. Each one is a miss with a warning, and the build
//! makes the right DU itself. The same as `tester` (rootless).

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use support::registry::{Mode, Registry};
use support::*;

/// One store with the busybox base and the shell badger, and the sources of two apps
/// that differ in what their build writes.
struct Lab {
    dir: tempfile::TempDir,
    store: PathBuf,
    source: PathBuf,
    other_source: PathBuf,
}

fn lab() -> Lab {
    let dir = temp_dir();
    let store = shell_badger_store(dir.path(), "store");
    let source = dir.path().join("src");
    source_with_build_script(&source, "echo built > /app/out.txt");
    let other_source = dir.path().join("other");
    source_with_build_script(&other_source, "echo other > /app/out.txt");
    Lab {
        dir,
        store,
        source,
        other_source,
    }
}

/// The app at `source` built in `store` with `extra` options.
fn build(store: &Path, source: &Path, extra: &[&str]) -> Run {
    Cmd::solum(store)
        .args(["build", "--badger", "badgers/shell", "--name", "app"])
        .arg("--source")
        .arg(source)
        .args(["--run-cmd", "cat out.txt", "--test-cmd", "test -f out.txt"])
        .args(extra)
        .run()
}

impl Lab {
    /// A copy of the store without any DU, build record or download cache: another runner.
    fn fresh_store(&self, name: &str) -> PathBuf {
        let store = self.dir.path().join(name);
        Cmd::program("cp")
            .arg("-a")
            .arg(&self.store)
            .arg(&store)
            .run()
            .ok();
        std::fs::remove_dir_all(store.join("cache/builds")).ok();
        std::fs::remove_dir_all(store.join("cache/apps/app")).ok();
        Cmd::solum(&store).args(["rmi", "app"]).run().ok();
        store
    }
}

fn base_url(registry: &Registry, repo: &str) -> String {
    format!("http://{}/v2/{repo}", registry.host())
}

/// The tags of `repo` that start with `prefix`.
fn tags(registry: &Registry, repo: &str, prefix: &str) -> Vec<String> {
    let got = Cmd::program("curl")
        .arg("-sf")
        .arg(format!("{}/tags/list", base_url(registry, repo)))
        .run()
        .ok();
    let json: serde_json::Value = serde_json::from_str(&got.stdout).unwrap();
    let tags = json["tags"].as_array().unwrap().iter();
    let tags = tags
        .filter_map(|t| t.as_str())
        .filter(|t| t.starts_with(prefix));
    tags.map(str::to_owned).collect()
}

/// A tag that carries this build's key but names another DU is refused when what it names
/// can be checked: the app layer of another app under this DU's config (the config lies
/// about its diff_ids), a badger layer replaced. A miss with a warning, the right DU built.
#[test]
fn a_cache_entry_whose_layers_are_not_its_config_or_badgers_is_a_miss() {
    let lab = lab();
    let registry = Registry::start(Mode::Plain);
    let cache = format!("docker://{}/cache", registry.host());
    let digest = build(&lab.store, &lab.source, &[]).ok().last_line();
    // The other app's DU first, so that its blobs are in the cache repository too.
    build(&lab.store, &lab.other_source, &["--cache-to", &cache]).ok();
    let other_tag = tags(&registry, "cache", "cache-").pop().unwrap();
    let other = registry.oci_manifest("cache", &other_tag);
    build(
        &lab.store,
        &lab.source,
        &["--no-cache", "--cache-to", &cache],
    )
    .ok();
    let ours = (tags(&registry, "cache", "cache-").into_iter())
        .find(|t| t != &other_tag)
        .unwrap();
    let honest = registry.oci_manifest("cache", &ours);
    assert_ne!(honest["layers"][2], other["layers"][2]);

    let mut lying_config = honest.clone();
    lying_config["layers"][2] = other["layers"][2].clone();
    let mut other_badger_layer = honest.clone();
    other_badger_layer["layers"][1] = honest["layers"][0].clone();
    let cases = [
        (
            "lying config",
            lying_config,
            "does not uncompress to the diff_id its config gives",
        ),
        (
            "badger layer",
            other_badger_layer,
            "its layers are not the badgers' layers and more",
        ),
    ];
    for (index, (case, manifest, says)) in cases.iter().enumerate() {
        registry.put_oci_manifest("cache", &ours, manifest);
        let store = lab.fresh_store(&format!("runner-{index}"));
        let run = build(&store, &lab.source, &["--cache-from", &cache]).ok();
        assert!(run.stderr.contains(says), "{case}: {}", run.text());
        assert!(
            run.stderr
                .contains(&format!("warning: registry cache {cache}: ")),
            "{case}: {}",
            run.text()
        );
        assert!(
            run.stderr.contains("==> BUILDING"),
            "{case}: {}",
            run.text()
        );
        assert_eq!(run.last_line(), digest, "{case}: {}", run.text());
        let ran = Cmd::solum(&store).args(["run", "app"]).run().ok();
        assert!(ran.stdout.contains("built"), "{case}: {}", ran.text());
    }

    // The honest entry is still a hit.
    registry.put_oci_manifest("cache", &ours, &honest);
    let store = lab.fresh_store("honest");
    let hit = build(&store, &lab.source, &["--cache-from", &cache]).ok();
    assert!(hit.stderr.contains("(cache hit)"), "{}", hit.text());
    assert_eq!(hit.last_line(), digest);
}

/// A registry that asks for Basic credentials, then answers 404 to whoever sends some:
/// the request heads it received.
fn recording_registry() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let shared = heads.clone();
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let answer = if head.to_ascii_lowercase().contains("\r\nauthorization:") {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cache\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            shared.lock().unwrap().push(head);
            let _ = client.write_all(answer.as_bytes());
        }
    });
    (port, heads)
}

/// `--creds` given for the `--push` registry are not sent to a `--cache-from` repository
/// on another host: it is asked without them (a miss with a warning), the push still
/// authenticates.
#[test]
fn push_credentials_are_not_sent_to_another_cache_registry() {
    let lab = lab();
    let registry = Registry::start(Mode::Basic {
        user: "alice".into(),
        pass: "s3cret".into(),
    });
    let (port, heads) = recording_registry();
    let destination = format!("docker://{}/apps/app:1", registry.host());
    let cache = format!("docker://127.0.0.1:{port}/cache");
    let extra = ["--cache-from", &cache, "--push", &destination];
    let run = build(
        &lab.store,
        &lab.source,
        &[&extra[..], &["--creds", "alice:s3cret"]].concat(),
    )
    .ok();
    assert!(run.stderr.contains("HTTP 401"), "{}", run.text());
    assert!(run.stderr.contains("==> BUILDING"), "{}", run.text());
    assert!(registry.has_manifest("apps/app", "1", Some("alice:s3cret")));
    let sent = heads.lock().unwrap().clone();
    assert!(!sent.is_empty(), "{}", run.text());
    for head in &sent {
        assert!(
            !head.to_ascii_lowercase().contains("authorization"),
            "credentials went to the cache registry: {head}"
        );
    }
}

/// A cache registry that accepts connections and never answers costs a bounded lookup
/// (30 s, twice on loopback where plain HTTP is tried after TLS), not a transfer's
/// retries: a miss with a warning.
#[test]
fn a_cache_registry_that_never_answers_is_a_bounded_miss() {
    let lab = lab();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().flatten().collect();
        drop(held);
    });
    let cache = format!("docker://127.0.0.1:{port}/cache");
    let started = std::time::Instant::now();
    let run = build(&lab.store, &lab.source, &["--cache-from", &cache]).ok();
    let took = started.elapsed();
    assert!(
        run.stderr
            .contains(&format!("warning: registry cache {cache}: ")),
        "{}",
        run.text()
    );
    assert!(run.stderr.contains("==> BUILDING"), "{}", run.text());
    assert!(took < std::time::Duration::from_secs(100), "{took:?}");
}

/// A tar entry made by hand (ustar), so that it can say what no tar writer would.
fn tar_entry(name: &str, kind: u8, link: &str, mode: u32, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{value:0width$o}", width = field.len() - 1);
        field[..text.len()].copy_from_slice(text.as_bytes());
    };
    octal(&mut header[100..108], u64::from(mode));
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 0);
    header[156] = kind;
    header[157..157 + link.len()].copy_from_slice(link.as_bytes());
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    octal(&mut header[148..155], u64::from(sum));
    let mut entry = header.to_vec();
    entry.extend_from_slice(content);
    entry.resize(entry.len().div_ceil(512) * 512, 0);
    entry
}

/// Puts `bytes` as a blob of `repo`: its digest.
fn put_blob(registry: &Registry, repo: &str, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(bytes));
    let started = Cmd::program("curl")
        .args(["-sf", "-X", "POST", "-D", "-", "-o", "/dev/null"])
        .arg(format!("{}/blobs/uploads/", base_url(registry, repo)))
        .run()
        .ok();
    let location = (started.stdout.lines())
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or(l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    Cmd::program("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", file.path().display()))
        .arg(format!("{location}&digest={digest}"))
        .run()
        .ok();
    digest
}

/// A download cache (`--cache-mounts`) whose layer is a hostile tar is refused by the
/// layer unpacker's rules (nothing written outside the app's private cache folder, which
/// stays empty) or its bounds: a miss with a warning, the build goes on.
#[test]
fn a_hostile_download_cache_is_not_restored() {
    let lab = lab();
    let registry = Registry::start(Mode::Plain);
    let cache = format!("docker://{}/cache", registry.host());
    let source = lab.dir.path().join("downloads");
    source_with_build_script(
        &source,
        "mkdir -p /solum/cache/d; echo x > /solum/cache/d/f; echo built > /app/out.txt",
    );
    build(
        &lab.store,
        &source,
        &["--cache-to", &cache, "--cache-mounts"],
    )
    .ok();
    let tag = tags(&registry, "cache", "mounts-").pop().unwrap();
    let honest = registry.oci_manifest("cache", &tag);

    let outside = lab.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let victim = outside.join("victim");
    std::fs::write(&victim, "mine").unwrap();
    let at = |name: &str| format!("{}/{name}", outside.display());
    let file = |name: &str| tar_entry(name, b'0', "", 0o644, b"pwn");
    // Each case, its entries, and what the warning says.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("dot-dot", file("../../../escaped"), "`..` path component"),
        ("absolute", file(&at("escaped")), "absolute path"),
        (
            "symlink",
            [
                tar_entry("link", b'2', &outside.display().to_string(), 0o777, b""),
                file("link/escaped"),
            ]
            .concat(),
            "layer entry \"link/escaped\"",
        ),
        (
            "hard link",
            tar_entry("hard", b'1', &at("victim"), 0o644, b""),
            "hardlink target is outside the root",
        ),
        (
            "hard link up",
            tar_entry("hard", b'1', "../../../../../../../victim", 0o644, b""),
            "hardlink target is outside the root",
        ),
        (
            "bomb",
            tar_entry("big", b'0', "", 0o644, &vec![0u8; 2 << 20]),
            "exceeds its limit of 1000000 bytes",
        ),
    ];
    for (index, (case, entries, says)) in cases.iter().enumerate() {
        let mut tar = entries.clone();
        tar.resize(tar.len() + 1024, 0);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gzip, &tar).unwrap();
        let layer = gzip.finish().unwrap();
        let layer_digest = put_blob(&registry, "cache", &layer);
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&tar))]},
        })
        .to_string();
        let config_digest = put_blob(&registry, "cache", config.as_bytes());
        let mut manifest = honest.clone();
        manifest["config"]["digest"] = config_digest.into();
        manifest["config"]["size"] = config.len().into();
        manifest["layers"][0]["digest"] = layer_digest.into();
        manifest["layers"][0]["size"] = layer.len().into();
        registry.put_oci_manifest("cache", &tag, &manifest);

        let store = lab.fresh_store(&format!("runner-{index}"));
        let run = Cmd::solum(&store)
            .args(["build", "--badger", "badgers/shell", "--name", "app"])
            .arg("--source")
            .arg(&source)
            .args(["--cache-from", &cache, "--cache-mounts", "--no-cache"])
            .env("SOLUM_BUILD_CACHE_MOUNTS_MAX", "1000000")
            .run()
            .ok();
        assert!(
            run.stderr
                .contains(&format!("warning: registry cache {cache}: ")),
            "{case}: {}",
            run.text()
        );
        assert!(run.stderr.contains(says), "{case}: {}", run.text());
        assert!(!run.stderr.contains("Restored /solum/cache"), "{case}");
        let listed: Vec<_> = std::fs::read_dir(&outside).unwrap().flatten().collect();
        assert_eq!(listed.len(), 1, "{case}: {listed:?}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "mine", "{case}");
        assert_eq!(std::fs::metadata(&victim).unwrap().nlink(), 1, "{case}");
        // Only the build's own download, in the app's private folder.
        let apps = store.join("cache/apps");
        assert_eq!(
            std::fs::metadata(&apps).unwrap().mode() & 0o077,
            0,
            "{case}"
        );
        let restored = apps.join("app");
        for name in ["escaped", "link", "hard", "big"] {
            assert!(!restored.join(name).exists(), "{case}: {name}");
        }
    }
}

#[test]
fn run_again_as_tester() {
    support::rerun_as_tester();
}
