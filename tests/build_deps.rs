//! Issue 13, item 3: the dependency step on a busybox badger that declares `dependencies`
//! (inputs `deps.txt` and `vendor`). The step sees only the inputs at `/app`; its result is
//! a layer of its own, reused while the inputs do not change (a code change rebuilds only
//! the app layer), rebuilt when one does; the same commit built again without the cache
//! gives the same DU digest; a source without inputs skips the step; a failing step fails
//! the build; an input that is a symlink reaches the step as a link, never as what it
//! points to; a layer `gc` took (no DU referenced it) is made again. The same as `tester`
//! (rootless).

mod support;

use std::path::{Path, PathBuf};
use support::registry::{Mode, Registry};
use support::*;

/// A badger on busybox whose dependency step "installs" each line of deps.txt into
/// /app/installed and /opt/deps, and records what /app held when it ran.
fn deps_badger(dir: &Path) -> PathBuf {
    let badger = dir.join("depsbadger");
    std::fs::create_dir_all(&badger).unwrap();
    std::fs::write(
        badger.join("badger.yaml"),
        "name: depsbadger\nversion: \"1\"\nfrom: base/busybox\nbuild: /solum/bin/build.sh\n\
         dependencies:\n  inputs: [deps.txt, vendor]\n",
    )
    .unwrap();
    std::fs::write(
        badger.join("deps.sh"),
        "#!/bin/sh\nset -eu\ncd /app\nmkdir -p /opt/deps\n\
         ls -A /app | sort | tr '\\n' ' ' > /opt/deps/seen\nmkdir installed\n\
         if [ -L vendor ]; then echo link > /opt/deps/vendor; fi\n\
         [ -e vendor ] || [ -L vendor ] || { mkdir vendor; echo made > vendor/made-by-step; }\n\
         [ \"${FAIL_DEPS:-}\" != 1 ] || { echo 'deps failed on purpose'; exit 3; }\n\
         echo \"epoch $SOURCE_DATE_EPOCH\" > /opt/deps/epoch\n\
         while read -r name; do echo \"$name\" > \"installed/$name\"; echo \"$name\" >> /opt/deps/list; done < deps.txt\n\
         echo \"installed $(wc -l < deps.txt) dependencies\"\n",
    )
    .unwrap();
    std::fs::write(
        badger.join("build.sh"),
        "#!/bin/sh\nset -eu\n\
         if [ \"${SOLUM_DEPENDENCIES_DONE:-}\" != 1 ] && [ -x /solum/bin/deps.sh ]; then /solum/bin/deps.sh; fi\n\
         cd /app\necho \"done=${SOLUM_DEPENDENCIES_DONE:-unset} epoch=$SOURCE_DATE_EPOCH\"\n\
         cat main.sh > /app/built\n",
    )
    .unwrap();
    badger
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: PathBuf,
    source: PathBuf,
}

fn fixture() -> Fixture {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &[]);
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(deps_badger(dir.path()))
        .run()
        .ok();
    let source = dir.path().join("src");
    std::fs::create_dir_all(source.join("vendor")).unwrap();
    std::fs::write(source.join("deps.txt"), "alpha\nbeta\n").unwrap();
    std::fs::write(source.join("vendor/alpha.tgz"), "vendored alpha").unwrap();
    std::fs::write(source.join("main.sh"), "echo version 1\n").unwrap();
    Fixture {
        store,
        source,
        _dir: dir,
    }
}

impl Fixture {
    fn build(&self, extra: &[&str]) -> Run {
        Cmd::solum(&self.store)
            .args(["build", "--badger", "depsbadger", "--name", "depsapp"])
            .arg("--source")
            .arg(&self.source)
            .args(extra)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .run()
    }

    /// The DU's layer digests, bottom first.
    fn layers(&self) -> Vec<String> {
        layer_digests(&self.store, "depsapp")
    }

    fn run(&self, command: &str) -> String {
        Cmd::solum(&self.store)
            .args(["run", "depsapp", "--", "sh", "-c", command])
            .run()
            .ok()
            .stdout
    }
}

#[test]
fn dependency_layer_is_reused_until_an_input_changes() {
    let f = fixture();
    let first = f.build(&[]).ok();
    assert!(
        first
            .stderr
            .contains("dependencies: installing (first install)"),
        "{}",
        first.text()
    );
    assert!(first.stderr.contains("installed 2 dependencies"));
    assert!(first.stderr.contains("done=1 epoch=1700000000"));
    let layers = f.layers();
    // busybox, the badger's own layer, the dependency layer, the app layer.
    assert_eq!(layers.len(), 4, "{layers:?}");
    // The step saw only the inputs; what it wrote stays; the DU has the whole source.
    assert_eq!(f.run("cat /opt/deps/seen"), "deps.txt vendor ");
    assert_eq!(
        f.run("cat /app/installed/beta /app/built"),
        "beta\necho version 1\n"
    );
    assert_eq!(f.run("cat /opt/deps/epoch"), "epoch 1700000000\n");
    assert_eq!(f.run("cat /app/vendor/alpha.tgz"), "vendored alpha");
    // The inputs themselves are not in the dependency layer (the app layer brings them).
    let blob = f
        .store
        .join("blobs/sha256")
        .join(&layers[2]["sha256:".len()..]);
    let listing = Cmd::program("tar").arg("-tzf").arg(&blob).run().ok().stdout;
    assert!(listing.contains("opt/deps/list"), "{listing}");
    assert!(!listing.contains("deps.txt"), "{listing}");
    assert!(!listing.contains("vendor/"), "{listing}");

    // A code change: the dependency layer is reused by digest, only the app layer changes.
    std::fs::write(f.source.join("main.sh"), "echo version 2\n").unwrap();
    let second = f.build(&[]).ok();
    let short = &layers[2]["sha256:".len().."sha256:".len() + 12];
    assert!(
        second
            .stderr
            .contains(&format!("dependencies: reused sha256:{short}")),
        "{}",
        second.text()
    );
    assert!(!second.stderr.contains("installed 2 dependencies"));
    let after_code = f.layers();
    assert_eq!(after_code[..3], layers[..3]);
    assert_ne!(after_code[3], layers[3]);
    assert_eq!(
        f.run("cat /app/built /app/installed/alpha"),
        "echo version 2\nalpha\n"
    );

    // The same source again without any cache: the same DU, byte for byte.
    let cached = f.build(&[]).ok();
    let uncached = f.build(&["--no-cache"]).ok();
    assert!(uncached
        .stderr
        .contains("dependencies: installing (--no-cache)"));
    assert_eq!(cached.last_line(), uncached.last_line());
    assert_eq!(f.layers(), after_code);

    // A changed input: the step runs again and its layer differs.
    std::fs::write(f.source.join("deps.txt"), "alpha\nbeta\ngamma\n").unwrap();
    let third = f.build(&[]).ok();
    assert!(
        third
            .stderr
            .contains("dependencies: installing (deps.txt changed)"),
        "{}",
        third.text()
    );
    let after_inputs = f.layers();
    assert_ne!(after_inputs[2], layers[2]);
    assert_eq!(f.run("cat /app/installed/gamma"), "gamma\n");
}

#[test]
fn no_inputs_skip_the_step_and_a_failing_step_fails_the_build() {
    let f = fixture();
    std::fs::remove_file(f.source.join("deps.txt")).unwrap();
    std::fs::remove_dir_all(f.source.join("vendor")).unwrap();
    let skipped = f.build(&[]).ok();
    assert!(
        skipped.stderr.contains("dependencies: skipped"),
        "{}",
        skipped.text()
    );
    // Skipped, the build script still does not run the step itself.
    assert!(skipped.stderr.contains("done=1"), "{}", skipped.text());
    assert_eq!(f.layers().len(), 3);

    std::fs::write(f.source.join("deps.txt"), "alpha\n").unwrap();
    let failed = Cmd::solum(&f.store)
        .args(["build", "--badger", "depsbadger", "--name", "depsapp"])
        .arg("--source")
        .arg(&f.source)
        .args(["--env", "FAIL_DEPS=1"])
        .run()
        .fails_with(1);
    assert!(
        failed.stderr.contains("dependency step") && failed.stderr.contains("exited with 3"),
        "{}",
        failed.text()
    );
}

/// An input the source lacks and the step makes (a `vendor/` composer fills, a lockfile
/// npm writes) stays in the dependency layer: no app layer brings it.
#[test]
fn an_input_the_step_makes_stays_in_its_layer() {
    let f = fixture();
    std::fs::remove_dir_all(f.source.join("vendor")).unwrap();
    f.build(&[]).ok();
    assert_eq!(f.run("cat /app/vendor/made-by-step"), "made\n");
    // With the source's own vendor/, the source's is what the DU has.
    std::fs::create_dir_all(f.source.join("vendor")).unwrap();
    std::fs::write(f.source.join("vendor/alpha.tgz"), "vendored alpha").unwrap();
    f.build(&[]).ok();
    assert_eq!(
        f.run("ls /app/vendor; cat /app/vendor/alpha.tgz"),
        "alpha.tgz\nvendored alpha"
    );
}

#[test]
fn an_input_symlink_reaches_the_step_as_a_link() {
    let f = fixture();
    let outside = f.store.parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "host secret").unwrap();
    std::fs::remove_dir_all(f.source.join("vendor")).unwrap();
    std::os::unix::fs::symlink(&outside, f.source.join("vendor")).unwrap();
    f.build(&[]).ok();
    assert_eq!(f.run("cat /opt/deps/vendor"), "link\n");
    assert_eq!(
        f.run("cat /app/vendor/secret 2>/dev/null || echo unreachable"),
        "unreachable\n"
    );
}

#[test]
fn a_layer_gc_took_is_made_again() {
    let f = fixture();
    // The tests fail: no DU references the dependency layer the build made.
    let failed = f.build(&["--test-cmd", "exit 1"]).fails_with(1);
    assert!(
        failed.stderr.contains("dependencies: installing"),
        "{}",
        failed.text()
    );
    Cmd::solum(&f.store).arg("gc").run().ok();
    let rebuilt = f.build(&[]).ok();
    assert!(
        rebuilt
            .stderr
            .contains("dependencies: installing (its layer is no longer in the store)"),
        "{}",
        rebuilt.text()
    );
    assert_eq!(f.run("cat /app/installed/alpha"), "alpha\n");
}

/// Issue 13, item 3: after a code change, a push sends the app's layer (and the config and
/// manifest) only; the dependency layer, reused by digest, is already in the registry.
#[test]
fn a_push_after_a_code_change_sends_only_the_app_layer() {
    let registry = Registry::start(Mode::Plain);
    let f = fixture();
    let destination = format!("docker://{}/apps/depsapp:1", registry.host());
    let push = || {
        Cmd::solum(&f.store)
            .args(["push", "depsapp"])
            .arg(&destination)
            .run()
            .ok()
    };
    f.build(&[]).ok();
    let first = push();
    assert!(
        !first.stderr.contains("already present"),
        "{}",
        first.text()
    );
    let layers = f.layers();

    std::fs::write(f.source.join("main.sh"), "echo version 2\n").unwrap();
    f.build(&[]).ok();
    let after = f.layers();
    assert_eq!(after[..3], layers[..3]);
    let second = push();
    // busybox, the badger's layer and the dependency layer: present, not sent again.
    for layer in &after[..3] {
        let short = &layer["sha256:".len().."sha256:".len() + 12];
        assert!(
            second
                .stderr
                .contains(&format!("blob sha256:{short} (already present)")),
            "{short}\n{}",
            second.text()
        );
    }
    let app_layer = &after[3]["sha256:".len().."sha256:".len() + 12];
    assert!(!second
        .stderr
        .contains(&format!("blob sha256:{app_layer} (already present)")));
    // Nothing else of the DU was there; the `{}` config its attachments share was sent
    // with the first push's.
    let empty_config = "sha256:44136fa355b3";
    let present = second
        .stderr
        .lines()
        .filter(|line| line.contains("(already present)") && !line.contains(empty_config))
        .count();
    assert_eq!(present, 3, "{}", second.text());
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
