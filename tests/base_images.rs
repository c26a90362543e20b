//! The test-bed scripts run for real: `scripts/make-rootfs.sh busybox` gives a tree that
//! imports and runs in the sandbox, `scripts/make-base-images.sh` caches its tarball and
//! skips names already in a store (with the same digest in every store), and the benchmark
//! harness computes medians and ratios and stops on a failing command. The debian kinds are
//! not exercised here: debootstrap takes minutes and needs the network to Debian's mirror.
//! Run as root, then again as `tester`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// `sh scripts/NAME` with SOLUM_BUILD pointing at the binary under test and the tarball
/// cache in CACHE; the caller adds the script's arguments.
fn script_cmd(name: &str, cache: &Path) -> Cmd {
    Cmd::program("sh")
        .arg(script(name))
        .env("SOLUM_BUILD", bin())
        .env("SOLUM_BASE_CACHE", cache)
}

/// The manifest digest index.json of STORE gives NAME.
fn digest_of(store: &Path, name: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {}", store.display()))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn busybox_rootfs_imports_and_runs_in_the_sandbox() {
    let t = temp_dir();
    let rootfs = t.path().join("rootfs");
    let store = t.path().join("store");
    script_cmd("make-rootfs.sh", &t.path().join("cache"))
        .arg("busybox")
        .arg(&rootfs)
        .run()
        .ok();

    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert!(std::fs::symlink_metadata(rootfs.join("usr/bin/awk")).is_ok());
    let tmp_mode = std::fs::metadata(rootfs.join("tmp"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(tmp_mode & 0o7777, 0o1777);
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");

    // A second call must refuse to write into the now non-empty directory.
    let again = script_cmd("make-rootfs.sh", &t.path().join("cache"))
        .arg("busybox")
        .arg(&rootfs)
        .run();
    assert_eq!(again.code, 2, "{}", again.text());
    assert!(again.stderr.contains("not empty"), "{}", again.text());

    Cmd::solum(&store)
        .arg("import")
        .arg(&rootfs)
        .args(["--tag", "base/busybox", "--cmd", "/bin/sh"])
        .run()
        .ok();
    let out = Cmd::solum(&store)
        .args([
            "run",
            "base/busybox",
            "--",
            "sh",
            "-c",
            "echo hi from $(echo x | awk '{print \"awk\"}'); id -u; ls -ld /tmp",
        ])
        .run()
        .ok();
    assert!(out.stdout.contains("hi from awk"), "{}", out.text());
    assert!(out.stdout.lines().any(|l| l == "0"), "{}", out.text());
    assert!(out.stdout.contains("drwxrwxrwt"), "{}", out.text());
}

#[test]
fn make_base_images_caches_the_tarball_and_skips_names_already_there() {
    let t = temp_dir();
    let cache = t.path().join("cache");
    let (store1, store2) = (t.path().join("store1"), t.path().join("store2"));

    let first = script_cmd("make-base-images.sh", &cache)
        .args(["--only", "busybox"])
        .arg(&store1)
        .run()
        .ok();
    assert!(
        first.stderr.contains("rootfs busybox: made"),
        "{}",
        first.text()
    );
    assert!(first.stderr.contains("imported into"), "{}", first.text());
    let tarball = cache.join("busybox.tar");
    let mode = std::fs::metadata(&tarball).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o644,
        "tarball must be readable by every user"
    );
    // No temp dir of the tarball's making is left in the cache.
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".work-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let tar_before = std::fs::read(&tarball).unwrap();
    let second = script_cmd("make-base-images.sh", &cache)
        .args(["--only", "busybox"])
        .arg(&store1)
        .run()
        .ok();
    assert!(
        second.stderr.contains("rootfs busybox: cached"),
        "{}",
        second.text()
    );
    assert!(second.stderr.contains("already in"), "{}", second.text());
    assert_eq!(
        std::fs::read(&tarball).unwrap(),
        tar_before,
        "the cached tarball was rewritten"
    );

    // Another store filled from the same tarball gets the same image, digest for digest.
    script_cmd("make-base-images.sh", &cache)
        .arg("--only=busybox")
        .arg(&store2)
        .run()
        .ok();
    assert_eq!(
        digest_of(&store1, "base/busybox"),
        digest_of(&store2, "base/busybox")
    );

    let bad = script_cmd("make-base-images.sh", &cache)
        .args(["--only", "alpine"])
        .arg(&store1)
        .run();
    assert_eq!(bad.code, 2, "{}", bad.text());
    assert!(bad.stderr.contains("unknown kind alpine"), "{}", bad.text());
}

#[test]
fn bench_harness_reports_medians_and_ratios_and_stops_on_failure() {
    let t = temp_dir();
    let lib = script("bench/lib.sh");
    let body = r#"
        printf '5\n1\n3\n' | bench_median
        printf '4\n1\n3\n2\n' | bench_median
        bench_ratio 100 250
        bench_at_least 2.5 2.0
        bench_at_most 25 20
        fast=(true); slow=(sleep 0.05)
        bench_pair_ms 3 "" fast slow
        bench_compare demo 10 25 peer
        bench_time_ms 2 "" sh -c 'echo broken >&2; exit 3'
        echo not reached
    "#;
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(". '{}'\n{body}", lib.display()))
        .env("BENCH_TMPDIR", t.path())
        .env("BENCH_TOOL", "builtin")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        &lines[..5],
        ["3.0", "2.5", "2.50", "PASS", "MISS"],
        "{stdout}\n{stderr}"
    );

    let pair: Vec<f64> = lines[5].split(' ').map(|v| v.parse().unwrap()).collect();
    assert!(
        pair[0] < pair[1],
        "true must be faster than sleep 0.05: {pair:?}"
    );
    assert!(pair[1] >= 50.0, "sleep 0.05 measured {} ms", pair[1]);
    assert_eq!(
        lines[6],
        "demo: ours 10 ms, peer 25 ms, ratio 2.50 (peer/ours)"
    );

    // The failing command stops the script with its stderr shown, and no median printed.
    assert!(!out.status.success());
    assert_eq!(lines.len(), 7, "{stdout}");
    assert!(stderr.contains("broken"), "{stderr}");
    // The harness's temp dir is gone after exit.
    let left: Vec<_> = std::fs::read_dir(t.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
