//! Issue 10, the store under concurrent use. B13: `gc` looping while imports and copies
//! write to the store never takes a blob a writer is about to name, and no name ever
//! points at a missing blob. W03: the temp tree of an import killed with SIGKILL is swept
//! by `gc` and by the next writer, while the temp tree of a live import is never touched
//! (the live writer's lock on the store tells them apart, not a clock).

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// Every blob each name of the store reaches is present: `inspect` reads the manifest
/// and config, and each layer file exists.
fn assert_complete(store: &Path) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    for entry in index["manifests"].as_array().unwrap() {
        let name = entry["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap();
        Cmd::solum(store).arg("inspect").arg(name).run().ok();
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(blob(store, entry["digest"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        for layer in manifest["layers"].as_array().unwrap() {
            let path = blob(store, layer["digest"].as_str().unwrap());
            assert!(path.is_file(), "{name}: {} is missing", path.display());
        }
    }
}

/// Entries of the store's temp folder whose name starts with `prefix`.
fn temp_entries(store: &Path, prefix: &str) -> Vec<PathBuf> {
    match std::fs::read_dir(store.join(".tmp")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn gc_looping_during_imports_and_copies_never_loses_a_named_blob() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    let tree = dir.path().join("tree");
    busybox_rootfs(&tree);
    // Some bulk, so that each import spends a while between its first blob and its name.
    std::fs::create_dir(tree.join("bulk")).unwrap();
    for i in 0..200 {
        std::fs::write(tree.join(format!("bulk/{i}")), vec![i as u8; 20_000]).unwrap();
    }
    import_tree(&store, &tree, "seed");
    let layout = dir.path().join("layout");
    let other = dir.path().join("other");

    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let stop = Arc::clone(&stop);
        let store = store.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                Cmd::solum(&store).arg("gc").run().ok();
                runs += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            runs
        })
    };
    for round in 0..6 {
        // A new layer each round: a fresh blob nothing names until the import's tag.
        std::fs::write(tree.join("etc/round"), format!("{round}\n")).unwrap();
        let name = format!("imported-{round}");
        let run = Cmd::solum(&store)
            .arg("import")
            .arg(&tree)
            .arg("--tag")
            .arg(&name)
            .run()
            .ok();
        assert!(run.last_line().starts_with("sha256:"), "{}", run.text());
        // And a copy into the store of an image whose blobs it does not have yet.
        std::fs::write(tree.join("etc/copied"), format!("{round}\n")).unwrap();
        import_tree(&other, &tree, "img");
        Cmd::solum(&other)
            .args(["push", "img"])
            .arg(format!("oci:{}:img", layout.display()))
            .run()
            .ok();
        Cmd::solum(&store)
            .arg("push")
            .arg(format!("oci:{}:img", layout.display()))
            .arg(format!("copied-{round}"))
            .run()
            .ok();
        assert_complete(&store);
    }
    stop.store(true, Ordering::Relaxed);
    let runs = collector.join().unwrap();
    assert!(runs > 3, "gc ran only {runs} times");
    Cmd::solum(&store).arg("gc").run().ok();
    assert_complete(&store);
}

/// Starts an import whose tarball is a FIFO: the import stops mid-way, its temp tree in
/// `.tmp`, until the test writes the rest. Returns the child and the FIFO's writer.
fn import_from_fifo(dir: &Path, store: &Path, name: &str) -> (Child, std::fs::File, Vec<u8>) {
    let tree = dir.join(format!("{name}-tree"));
    busybox_rootfs(&tree);
    let tarball = dir.join(format!("{name}.tar"));
    Cmd::program("tar")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .run()
        .ok();
    let bytes = std::fs::read(&tarball).unwrap();
    let fifo = dir.join(format!("{name}.fifo"));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let before = temp_entries(store, "import-").len();
    let child = Cmd::solum(store)
        .arg("import")
        .arg(&fifo)
        .arg("--tag")
        .arg(name)
        .spawn();
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    // Half the archive: the import has made its temp tree and waits for the rest.
    writer.write_all(&bytes[..bytes.len() / 2]).unwrap();
    wait_for("the import's temp tree", || {
        temp_entries(store, "import-").len() > before
    });
    (child, writer, bytes)
}

#[test]
fn a_killed_import_is_swept_and_a_live_one_is_left_alone() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    let tree = dir.path().join("tree");
    busybox_rootfs(&tree);
    import_tree(&store, &tree, "seed");

    // SIGKILL mid-way leaves the temp tree; gc removes it.
    let (mut child, writer, _) = import_from_fifo(dir.path(), &store, "killed");
    child.kill().unwrap();
    child.wait().unwrap();
    drop(writer);
    let leftovers = temp_entries(&store, "import-");
    assert_eq!(leftovers.len(), 1);
    let run = Cmd::solum(&store).arg("gc").run().ok();
    assert!(run.stderr.contains("1 temp files"), "{}", run.text());
    assert!(!leftovers[0].exists(), "gc left the killed import's tree");

    // The next writer sweeps too, when no other writer is alive.
    let (mut child, writer, _) = import_from_fifo(dir.path(), &store, "killed-again");
    child.kill().unwrap();
    child.wait().unwrap();
    drop(writer);
    let leftovers = temp_entries(&store, "import-");
    assert_eq!(leftovers.len(), 1);
    import_tree(&store, &tree, "next");
    assert!(
        !leftovers[0].exists(),
        "the next import left the dead one's tree"
    );

    // A live import: gc waits for it instead of removing its temp tree, and another
    // writer that starts meanwhile does not sweep it either.
    let (child, mut writer, bytes) = import_from_fifo(dir.path(), &store, "live");
    let live = temp_entries(&store, "import-");
    assert_eq!(live.len(), 1);
    let mut gc = Cmd::solum(&store).arg("gc").spawn();
    import_tree(&store, &tree, "meanwhile");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        gc.try_wait().unwrap().is_none(),
        "gc did not wait for the live import"
    );
    assert!(live[0].exists(), "the live import's tree was removed");
    writer.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(writer);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the live import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let gc_output = gc.wait_with_output().unwrap();
    assert!(gc_output.status.success());
    assert!(
        String::from_utf8_lossy(&gc_output.stderr).contains("Waiting"),
        "{}",
        String::from_utf8_lossy(&gc_output.stderr)
    );
    assert_complete(&store);
    assert!(temp_entries(&store, "").is_empty());
}

/// Folders in `dir` whose name starts with `prefix`.
fn entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

#[test]
fn scratch_of_a_killed_archive_copy_is_swept_and_a_live_one_left_alone() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    let tree = dir.path().join("tree");
    busybox_rootfs(&tree);
    import_tree(&store, &tree, "seed");
    let archive = dir.path().join("seed.tar");
    Cmd::solum(&store)
        .args(["push", "seed"])
        .arg(format!("oci-archive:{}", archive.display()))
        .run()
        .ok();
    let bytes = std::fs::read(&archive).unwrap();
    // A private temp folder, so that other tests' scratch is not counted.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let prefix = "solum-build-oci-archive-";
    // A copy from an archive that arrives through a FIFO stops mid-way, its scratch made.
    let start = |name: &str| {
        let fifo = dir.path().join(format!("{name}.fifo"));
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let before = entries(&tmp, prefix);
        let child = Cmd::solum(&store)
            .env("TMPDIR", &tmp)
            .arg("push")
            .arg(format!("oci-archive:{}", fifo.display()))
            .arg(name)
            .spawn();
        let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        writer.write_all(&bytes[..bytes.len() / 2]).unwrap();
        wait_for("the copy's scratch", || {
            entries(&tmp, prefix).iter().any(|p| !before.contains(p))
        });
        (child, writer)
    };
    let kill = |name: &str| {
        let (mut child, writer) = start(name);
        child.kill().unwrap();
        child.wait().unwrap();
        drop(writer);
        let dead = entries(&tmp, prefix);
        assert_eq!(dead.len(), 1);
        dead[0].clone()
    };
    // gc sweeps the scratch of a killed copy.
    let dead = kill("killed");
    let run = Cmd::solum(&store).env("TMPDIR", &tmp).arg("gc").run().ok();
    assert!(run.stderr.contains("1 scratch folders"), "{}", run.text());
    assert!(!dead.exists(), "gc left the killed copy's scratch");
    // So does the next copy, as it makes its own.
    let dead = kill("killed-again");
    let (live, mut writer) = start("live");
    assert!(
        !dead.exists(),
        "the next copy left the killed one's scratch"
    );
    // A live copy's scratch is never swept.
    let run = Cmd::solum(&store).env("TMPDIR", &tmp).arg("gc").run().ok();
    assert!(run.stderr.contains("0 scratch folders"), "{}", run.text());
    assert_eq!(
        entries(&tmp, prefix).len(),
        1,
        "gc removed the live copy's scratch"
    );
    writer.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(writer);
    let output = live.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the live copy failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(entries(&tmp, prefix).is_empty());
    Cmd::solum(&store).args(["inspect", "live"]).run().ok();
}

#[test]
fn scratch_of_a_killed_run_is_swept_and_a_live_one_left_alone() {
    let dir = temp_dir();
    // A run's scratch goes where a build's does: a folder of this test's own, so that
    // other tests' runs are not counted.
    let scratch = dir.path().join("scratch");
    let store = dir.path().join("store");
    let tree = dir.path().join("tree");
    busybox_rootfs(&tree);
    import_tree(&store, &tree, "seed");
    Cmd::solum(&store)
        .env("SOLUM_BUILD_SCRATCH", &scratch)
        .args(["run", "seed", "--", "true"])
        .run()
        .ok();
    let runs = || entries(&scratch, ".run-");
    let mut killed = Cmd::solum(&store)
        .env("SOLUM_BUILD_SCRATCH", &scratch)
        .args(["run", "seed", "--", "sleep", "5"])
        .spawn();
    wait_for("the run's scratch", || !runs().is_empty());
    killed.kill().unwrap();
    killed.wait().unwrap();
    let dead = runs();
    assert_eq!(dead.len(), 1);
    let live = Cmd::solum(&store)
        .env("SOLUM_BUILD_SCRATCH", &scratch)
        .args(["run", "seed", "--", "sleep", "3"])
        .spawn();
    wait_for("the live run's scratch", || {
        runs().iter().any(|p| !dead.contains(p)) || runs().len() > 1
    });
    Cmd::solum(&store)
        .env("SOLUM_BUILD_SCRATCH", &scratch)
        .arg("gc")
        .run()
        .ok();
    let left = runs();
    assert!(!left.contains(&dead[0]), "the killed run's scratch stayed");
    assert_eq!(left.len(), 1, "the live run's scratch was swept");
    let output = live.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(runs().is_empty());
}

/// A run's image renamed while it runs (a rebuild retags it), then `gc`: the tree the run
/// stands on is no longer reached by any name, but it stays until the run is done.
#[test]
fn gc_keeps_the_tree_of_a_live_run_whose_image_lost_its_name() {
    let dir = temp_dir();
    // A run's scratch goes where a build's does: a folder of this test's own, so that
    // other tests' runs are not counted.
    let scratch = dir.path().join("scratch");
    let store = dir.path().join("store");
    let tree = dir.path().join("tree");
    busybox_rootfs(&tree);
    import_tree(&store, &tree, "seed");
    let runs = || entries(&scratch, ".run-");
    // The run waits on its stdin (`run -i`) until the checks below are done, however long
    // the import and gc take on a loaded machine.
    let mut live = Cmd::solum(&store)
        .env("SOLUM_BUILD_SCRATCH", &scratch)
        .args([
            "run",
            "-i",
            "seed",
            "--",
            "sh",
            "-c",
            "read go; ls /bin | wc -l",
        ])
        .into_command()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the live run's scratch", || {
        scratch.is_dir() && !runs().is_empty()
    });
    std::fs::write(tree.join("app/new"), "a rebuild\n").unwrap();
    import_tree(&store, &tree, "seed");
    let run = Cmd::solum(&store)
        .env("SOLUM_BUILD_SCRATCH", &scratch)
        .arg("gc")
        .run()
        .ok();
    assert!(run.stderr.contains("0 unpacked trees"), "{}", run.text());
    std::io::Write::write_all(&mut live.stdin.take().unwrap(), b"go\n").unwrap();
    let output = live.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim().parse::<usize>().unwrap() > 10,
        "the live run lost its root filesystem: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Once the run is done, the unnamed tree goes.
    let run = Cmd::solum(&store)
        .env("SOLUM_BUILD_SCRATCH", &scratch)
        .arg("gc")
        .run()
        .ok();
    assert!(run.stderr.contains("1 unpacked trees"), "{}", run.text());
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
