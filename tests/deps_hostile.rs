//! The dependency step against a hostile source, a hostile dependency script and a tampered
//! cache, with the real binary: a huge input file is copied into the step's tree without
//! being held in memory; a cache record whose size, media type or diff_id does not fit the
//! blob it names is not reused (the DU's manifest would describe the layer wrongly), nor
//! one too large to be a record; without overlay, the app's source is merged over a
//! dependency layer whose `/app` holds symlinks to host folders (and over one whose `/app`
//! is itself such a symlink) without following any of them. An image of the store whose
//! badger annotation is malformed is left out of detection and `badger list` (with a
//! warning), not a failure of every build that chooses its badger. The same as `tester`
//! (rootless).

mod support;

use std::path::{Path, PathBuf};
use support::*;

/// A busybox badger whose dependency step (inputs `deps.txt` and `big.bin`) runs the
/// shell text in `$DEPS_HOOK` in `/app`, then records that it ran.
fn hook_badger(dir: &Path) -> PathBuf {
    let badger = dir.join("hookbadger");
    std::fs::create_dir_all(&badger).unwrap();
    std::fs::write(
        badger.join("badger.yaml"),
        "name: hookbadger\nversion: \"1\"\nfrom: base/busybox\nbuild: /solum/bin/build.sh\n\
         dependencies:\n  inputs: [deps.txt, big.bin]\n",
    )
    .unwrap();
    std::fs::write(
        badger.join("deps.sh"),
        "#!/bin/sh\nset -eu\ncd /app\nsh -c \"${DEPS_HOOK:-true}\"\n\
         mkdir -p /opt/deps && echo ran > /opt/deps/ran\n",
    )
    .unwrap();
    std::fs::write(
        badger.join("build.sh"),
        "#!/bin/sh\nset -eu\ncd /app\ncat main.sh > /app/built\n",
    )
    .unwrap();
    badger
}

struct Lab {
    dir: tempfile::TempDir,
    store: PathBuf,
    source: PathBuf,
}

fn lab() -> Lab {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &[]);
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(hook_badger(dir.path()))
        .run()
        .ok();
    let source = dir.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("deps.txt"), "alpha\n").unwrap();
    std::fs::write(source.join("main.sh"), "echo version 1\n").unwrap();
    Lab { dir, store, source }
}

impl Lab {
    /// The cache records of the dependency step (the `last` folder left out).
    fn records(&self) -> Vec<PathBuf> {
        let dir = self.store.join("cache/dependencies");
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect()
    }

    fn build(&self, name: &str, hook: &str) -> Cmd {
        Cmd::solum(&self.store)
            .args(["build", "--badger", "hookbadger", "--name", name])
            .arg("--source")
            .arg(&self.source)
            .args(["--env", &format!("DEPS_HOOK={hook}")])
    }
}

/// The build ran the dependency step, and no process this test binary has waited for held
/// 128 MiB at once (the largest resident set of any child so far).
fn ran_the_step_in_bounded_memory(run: &Run) {
    assert!(
        run.stderr.contains("dependencies: installing"),
        "{}",
        run.text()
    );
    let rss = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .unwrap()
        .max_rss();
    assert!(rss < 128 * 1024, "a build held {rss} KiB at once");
}

#[test]
fn a_huge_input_file_is_streamed_into_the_step() {
    let lab = lab();
    // Sparse: 256 MiB to read, none of it on disk.
    let big = std::fs::File::create(lab.source.join("big.bin")).unwrap();
    big.set_len(256 << 20).unwrap();
    drop(big);
    // The step only checks that the copy arrived whole.
    let run = lab
        .build("bigapp", "test $(wc -c < big.bin) = 268435456")
        .run()
        .ok();
    ran_the_step_in_bounded_memory(&run);
}

#[test]
fn a_record_that_misdescribes_its_blob_is_not_reused() {
    let lab = lab();
    lab.build("recapp", "").run().ok();
    let records = lab.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let original = std::fs::read_to_string(&records[0]).unwrap();
    let record: serde_json::Value = serde_json::from_str(&original).unwrap();
    let size = record["size"].as_u64().unwrap();
    let tampered = [
        original.replace(
            &format!("\"size\":{size}"),
            &format!("\"size\":{}", size + 1),
        ),
        original.replace("tar+gzip", "tar+zstd"),
        original.replace("\"diff_id\":\"sha256:", "\"diff_id\":\"md5:"),
    ];
    for (round, text) in tampered.iter().enumerate() {
        assert_ne!(text, &original);
        std::fs::write(&records[0], text).unwrap();
        std::fs::write(lab.source.join("main.sh"), format!("echo {round}\n")).unwrap();
        let run = lab.build("recapp", "").run().ok();
        assert!(
            run.stderr.contains(
                "dependencies: installing (its record does not match the layer in the store)"
            ),
            "{text}\n{}",
            run.text()
        );
        // What the DU's manifest says of each layer is what its blob is.
        let inspect = Cmd::solum(&lab.store)
            .args(["inspect", "recapp"])
            .run()
            .ok();
        let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
        for layer in json["manifest"]["layers"].as_array().unwrap() {
            let path = blob(&lab.store, layer["digest"].as_str().unwrap());
            let len = std::fs::metadata(path).unwrap().len();
            assert_eq!(layer["size"].as_u64(), Some(len), "{layer}");
        }
    }
    // A record far larger than any this step writes is not read whole, only ignored.
    let huge = std::fs::File::create(&records[0]).unwrap();
    huge.set_len(1 << 30).unwrap();
    drop(huge);
    std::fs::write(lab.source.join("main.sh"), "echo huge\n").unwrap();
    let run = lab.build("recapp", "").run().ok();
    ran_the_step_in_bounded_memory(&run);
}

#[test]
fn the_source_merges_over_hostile_links_in_the_dependency_layer_without_overlay() {
    let lab = lab();
    let outside = lab.dir.path().join("outside");
    std::fs::create_dir_all(outside.join("inner")).unwrap();
    std::fs::write(outside.join("inner/keep"), "host file").unwrap();
    std::fs::create_dir_all(lab.source.join("vendor")).unwrap();
    std::fs::write(lab.source.join("vendor/a"), "source a").unwrap();
    std::fs::create_dir_all(lab.source.join("both")).unwrap();
    std::os::unix::fs::symlink(&outside, lab.source.join("srclink")).unwrap();
    let out = outside.display();
    // Links to the host folder where the source has a folder, where it has a symlink, where
    // it has nothing, and inside a folder both hold.
    let hook = format!(
        "ln -s {out} hostlink; mkdir -p srclink/inner; echo evil > srclink/inner/keep; \
         ln -s {out} vendor; mkdir -p both/inner; ln -s {out}/inner both/inner/x; \
         mkdir main.sh"
    );
    let run = lab
        .build("mergeapp", &hook)
        .env("SOLUM_BUILD_NO_OVERLAY", "1")
        .run()
        .ok();
    assert!(
        run.stderr.contains("dependencies: installing"),
        "{}",
        run.text()
    );
    let listing = |path: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(listing(&outside), ["inner"]);
    assert_eq!(listing(&outside.join("inner")), ["keep"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("inner/keep")).unwrap(),
        "host file"
    );
    let du = |command: &str| {
        Cmd::solum(&lab.store)
            .args(["run", "mergeapp", "--", "sh", "-c", command])
            .run()
            .ok()
            .stdout
    };
    // The source's entries win; the layer's link where the source has nothing stays a link.
    assert_eq!(
        du("cat /app/vendor/a /app/built"),
        "source aecho version 1\n"
    );
    assert_eq!(
        du("readlink /app/hostlink; readlink /app/srclink"),
        format!("{out}\n{out}\n")
    );
    assert_eq!(du("readlink /app/both/inner/x"), format!("{out}/inner\n"));

    // A dependency step that makes /app itself a link to the host folder.
    std::fs::write(lab.source.join("main.sh"), "echo version 2\n").unwrap();
    let hook = format!("cd /; rm -rf /app; ln -s {out} /app");
    lab.build("mergeapp", &hook)
        .env("SOLUM_BUILD_NO_OVERLAY", "1")
        .run()
        .ok();
    assert_eq!(listing(&outside), ["inner"]);
    assert_eq!(du("cat /app/built"), "echo version 2\n");
}

/// One stored image with a malformed badger annotation (a pulled image is anyone's) used
/// to make `badger: auto` fail for every app and `badger list` fail outright.
#[test]
fn an_image_with_a_malformed_badger_annotation_is_left_out() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &[]);
    let badger = dir.path().join("marker");
    std::fs::create_dir_all(&badger).unwrap();
    std::fs::write(
        badger.join("badger.yaml"),
        "name: marker\nversion: \"1\"\nfrom: base/busybox\n\
         detect:\n  order: 5\n  files: [marker.txt]\n",
    )
    .unwrap();
    std::fs::write(badger.join("build.sh"), "#!/bin/sh\necho marker built\n").unwrap();
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(&badger)
        .run()
        .ok();
    // badgers/broken: the marker badger's manifest with its annotation made unreadable.
    let index_path = store.join("index.json");
    let mut index = read_json(&index_path);
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "badgers/marker")
        .unwrap()
        .clone();
    let digest = entry["digest"].as_str().unwrap();
    let mut manifest = read_json(&blob(&store, digest));
    manifest["annotations"]["org.solum.badger.manifest"] = "{broken".into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let hex = sha256_hex(&bytes);
    std::fs::write(store.join("blobs/sha256").join(&hex), &bytes).unwrap();
    let mut broken = entry.clone();
    broken["digest"] = format!("sha256:{hex}").into();
    broken["size"] = bytes.len().into();
    broken["annotations"]["org.opencontainers.image.ref.name"] = "badgers/broken".into();
    index["manifests"].as_array_mut().unwrap().push(broken);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let listed = Cmd::solum(&store).args(["badger", "list"]).run().ok();
    assert!(listed.stdout.contains("marker"), "{}", listed.text());
    assert!(
        listed
            .stderr
            .contains("warning: badger \"badgers/broken\" carries a malformed"),
        "{}",
        listed.text()
    );
    let source = dir.path().join("app");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("marker.txt"), "x").unwrap();
    let built = Cmd::solum(&store)
        .args(["build", "--badger", "auto", "--name", "marked", "--source"])
        .arg(&source)
        .run()
        .ok();
    assert!(
        built
            .stderr
            .contains("badger: auto chose marker (marker.txt found)"),
        "{}",
        built.text()
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
