//! Issue 4: `solum-build build` end to end, as root and as `tester`: a shell app on the
//! shipped `badgers/shell` whose DU umoci unpacks to exactly the expected tree and which
//! runs under our `run` (and podman, as root); the test gate; git sources at a tag and a
//! commit; reproducible digests; cache hits; `--artifact` builds on `badgers/static`; and
//! failures that leave no name, temp folder or mount behind.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use support::*;

/// A store with `base/busybox` and the shipped `badgers/shell` and `badgers/static`.
fn store_with_badgers(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    busybox_store(dir, &store, &["shell", "static"]);
    store
}

/// The shell app's build: it changes files of the badger and makes every entry kind.
const SHELL_APP_BUILD: &str = r#"#!/bin/sh
set -eu
echo "building $SOLUM_APP_NAME"
echo 'welcome' > /etc/motd
echo 'extra:x:1000:1000::/home/extra:/bin/sh' >> /etc/passwd
rm /etc/group
mkdir -p /srv/data && echo old > /srv/data/a && echo old > /srv/data/b
rm -rf /srv/data && mkdir /srv/data && echo new > /srv/data/c
mkdir -p /app/out
echo payload > /app/out/file
ln /app/out/file /app/out/hardlink
ln -s file /app/out/symlink
mkfifo /app/out/fifo
echo 'echo setuid' > /app/out/setuid && chmod 4755 /app/out/setuid
printf '#!/bin/sh\necho "$GREETING from shellapp"\n' > /app/run.sh
chmod 755 /app/run.sh
"#;

/// Applies what SHELL_APP_BUILD does to a tree on the host (for the expected result).
fn apply_shell_app_build(root: &Path, app_source: &Path) {
    let p = |s: &str| root.join(s);
    std::fs::write(p("etc/motd"), "welcome\n").unwrap();
    let mut passwd = std::fs::read_to_string(p("etc/passwd")).unwrap();
    passwd.push_str("extra:x:1000:1000::/home/extra:/bin/sh\n");
    std::fs::write(p("etc/passwd"), passwd).unwrap();
    std::fs::remove_file(p("etc/group")).unwrap();
    std::fs::create_dir_all(p("srv/data")).unwrap();
    std::fs::write(p("srv/data/c"), "new\n").unwrap();
    Cmd::program("cp")
        .arg("-a")
        .arg(format!("{}/.", app_source.display()))
        .arg(p("app"))
        .run()
        .ok();
    std::fs::create_dir_all(p("app/out")).unwrap();
    std::fs::write(p("app/out/file"), "payload\n").unwrap();
    std::fs::hard_link(p("app/out/file"), p("app/out/hardlink")).unwrap();
    std::os::unix::fs::symlink("file", p("app/out/symlink")).unwrap();
    nix::unistd::mkfifo(
        &p("app/out/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    std::fs::write(p("app/out/setuid"), "echo setuid\n").unwrap();
    std::fs::set_permissions(p("app/out/setuid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::write(
        p("app/run.sh"),
        "#!/bin/sh\necho \"$GREETING from shellapp\"\n",
    )
    .unwrap();
    std::fs::set_permissions(p("app/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn shell_app(dir: &Path) -> PathBuf {
    let app = dir.join("shell-app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("build"), SHELL_APP_BUILD).unwrap();
    std::fs::set_permissions(app.join("build"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(app.join("README"), "a shell app\n").unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        "version: 1\nname: shellapp\nbadger: badgers/shell\nsource:\n  repository: ./shell-app\n\
         workflow_config:\n  run_cmd: /app/run.sh\n  test_cmd: test -p /app/out/fifo && touch /app/test-was-here\nports: [8080]\nenvironment: {GREETING: hello}\n",
    )
    .unwrap();
    app
}

fn umoci_unpack(layout: &Path, name: &str, bundle: &Path) {
    let image = format!("{}:{name}", layout.display());
    if is_root() {
        Cmd::program("umoci")
            .args(["unpack", "--image"])
            .arg(&image)
            .arg(bundle)
            .run()
            .ok();
    } else {
        Cmd::program("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(&image)
            .arg(bundle)
            .run()
            .ok();
    }
}

#[test]
fn shell_app_du_has_exactly_the_expected_tree_and_runs() {
    let dir = temp_dir();
    let store = store_with_badgers(dir.path());
    let app = shell_app(dir.path());
    let built = Cmd::solum(&store)
        .arg("build")
        .arg(dir.path().join("app.yaml"))
        .run()
        .ok();
    let digest = built.last_line();
    assert!(digest.starts_with("sha256:"), "{}", built.text());
    assert!(
        built.stderr.contains("building shellapp"),
        "{}",
        built.text()
    );

    // Expected: the badger's tree with the build's operations applied on the host.
    let expected = dir.path().join("expected");
    umoci_unpack(&store, "badgers/shell", &expected);
    apply_shell_app_build(&expected.join("rootfs"), &app);
    let actual = dir.path().join("actual");
    umoci_unpack(&store, "shellapp", &actual);
    let skip = ["user.rootlesscontainers", "security."];
    assert_same_tree(
        "DU vs expected",
        &listing(&expected.join("rootfs"), is_root(), &skip),
        &listing(&actual.join("rootfs"), is_root(), &skip),
    );
    let rootfs = actual.join("rootfs");
    assert!(
        !rootfs.join("app/test-was-here").exists(),
        "the test's file reached the DU"
    );
    assert_eq!(
        std::fs::metadata(rootfs.join("app/out/file"))
            .unwrap()
            .ino(),
        std::fs::metadata(rootfs.join("app/out/hardlink"))
            .unwrap()
            .ino()
    );
    assert!(!rootfs.join("solum/cache").exists() || is_empty(&rootfs.join("solum/cache")));

    // The DU manifest and the OCI annotations.
    let inspect = Cmd::solum(&store).args(["inspect", "shellapp"]).run().ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let du: serde_json::Value = serde_json::from_str(
        json["annotations"]["org.solum.du.manifest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(du["name"], "shellapp");
    assert_eq!(du["runtime"]["command"][2], "/app/run.sh");
    assert_eq!(du["tests"]["passed"], true);
    assert!(du["heat"]
        .as_str()
        .unwrap()
        .contains("OS::Heat::AutoScalingGroup"));
    assert_eq!(json["config"]["config"]["WorkingDir"], "/app");
    assert!(json["config"]["config"]["ExposedPorts"]["8080/tcp"].is_object());
    assert!(json["annotations"]["org.opencontainers.image.base.digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));

    // It runs under our sandbox with its Cmd, and under podman as root.
    let run = Cmd::solum(&store).args(["run", "shellapp"]).run().ok();
    assert_eq!(run.stdout.trim(), "hello from shellapp");
    if is_root() {
        let conf = dir.path().join("containers.conf");
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\",\"nproc=32768:32768\"]\nnetns=\"none\"\n",
        )
        .unwrap();
        // podman reads `oci:PATH` as an image name too, which must be lowercase.
        let layout = PathBuf::from(format!("/tmp/solum-podman-{}", std::process::id()));
        Cmd::solum(&store)
            .args(["push", "shellapp"])
            .arg(format!("oci:{}:shellapp", layout.display()))
            .run()
            .ok();
        let out = std::process::Command::new("podman")
            .env("CONTAINERS_CONF", &conf)
            .args(["run", "--rm", "--runtime", "runc", "--network", "none"])
            .arg(format!("oci:{}:shellapp", layout.display()))
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&layout);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("hello from shellapp"),
            "podman run: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

#[test]
fn failing_tests_or_build_leave_no_du_and_no_scratch() {
    let dir = temp_dir();
    let store = store_with_badgers(dir.path());
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("build"), "echo compiling; echo oops >&2; exit 3\n").unwrap();
    let before = snapshot(&store);
    let scratch = dir.path().join("scratch");
    let env = [("SOLUM_BUILD_SCRATCH", scratch.as_path())];
    let failed = Cmd::solum(&store)
        .envs(env)
        .args(["build", "--badger", "badgers/shell", "--source"])
        .arg(&app)
        .args(["--name", "broken"])
        .run()
        .fails_with(1);
    assert!(
        failed.stderr.contains("exited with 3") && failed.stderr.contains("oops"),
        "{}",
        failed.text()
    );

    std::fs::write(app.join("build"), "echo fine\n").unwrap();
    let failed = Cmd::solum(&store)
        .envs(env)
        .args(["build", "--badger", "badgers/shell", "--source"])
        .arg(&app)
        .args(["--name", "broken", "--test-cmd", "echo testing; false"])
        .run()
        .fails_with(1);
    assert!(
        failed.stderr.contains("tests") && failed.stderr.contains("testing"),
        "{}",
        failed.text()
    );
    let images = Cmd::solum(&store).args(["images", "--json"]).run().ok();
    assert!(!images.stdout.contains("broken"), "{}", images.text());
    // No scratch folder, no staged blob and no new name are left behind; the rootfs cache
    // and source cache may hold what the next build reuses.
    let left: Vec<_> = snapshot(&store)
        .into_keys()
        .filter(|p| {
            !p.starts_with("cache/rootfs")
                && !p.starts_with("cache/sources")
                && !p.starts_with("blobs")
        })
        .collect();
    let kept: Vec<_> = before
        .into_keys()
        .filter(|p| {
            !p.starts_with("cache/rootfs")
                && !p.starts_with("cache/sources")
                && !p.starts_with("blobs")
        })
        .collect();
    assert_eq!(left, kept);
    assert!(is_empty(&scratch), "scratch left in {}", scratch.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&store.display().to_string()),
        "a mount was left: {mounts}"
    );
    // Skipping the gate builds, and the DU does not claim a test result.
    Cmd::solum(&store)
        .envs(env)
        .args(["build", "--badger", "badgers/shell", "--source"])
        .arg(&app)
        .args(["--name", "untested", "--test-cmd", "false", "--skip-tests"])
        .run()
        .ok();
    let inspect = Cmd::solum(&store).args(["inspect", "untested"]).run().ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let du: serde_json::Value = serde_json::from_str(
        json["annotations"]["org.solum.du.manifest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(du.get("tests").is_none(), "{du}");
    Cmd::solum(&store).args(["rmi", "untested"]).run().ok();
}

#[test]
fn bad_app_files_exit_2_naming_file_line_and_field() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        "version: 1\nname: ok\nbadger: badgers/shell\nsource: {repository: .}\nports: [99999]\n",
    )
    .unwrap();
    let run = Cmd::solum(&store)
        .arg("build")
        .arg(&file)
        .run()
        .fails_with(2);
    assert!(
        run.stderr.contains("app.yaml:5") && run.stderr.contains("ports"),
        "{}",
        run.text()
    );
    assert!(!store.exists(), "a failed build created the store");
}

#[test]
fn git_source_at_a_tag_and_a_commit_records_the_commit() {
    let dir = temp_dir();
    let store = store_with_badgers(dir.path());
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("version"), "one\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    git(&repo, &["tag", "-a", "v1", "-m", "v1"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("version"), "two\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "two"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);

    for (revision, commit, content) in [("v1", &first, "one"), (&second[..12], &second, "two")] {
        let name = format!("gitapp-{content}");
        Cmd::solum(&store)
            .args(["build", "--badger", "badgers/shell", "--source"])
            .arg(&repo)
            .arg("--revision")
            .arg(revision)
            .arg("--name")
            .arg(&name)
            .run()
            .ok();
        let inspect = Cmd::solum(&store).arg("inspect").arg(&name).run().ok();
        let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
        assert_eq!(
            json["annotations"]["org.opencontainers.image.revision"],
            commit.as_str()
        );
        let run = Cmd::solum(&store)
            .arg("run")
            .arg(&name)
            .args(["--", "cat", "/app/version"])
            .run()
            .ok();
        assert_eq!(run.stdout.trim(), content);
        let ls = Cmd::solum(&store)
            .arg("run")
            .arg(&name)
            .args(["--", "ls", "-a", "/app"])
            .run()
            .ok();
        assert!(!ls.stdout.contains(".git"), "{}", ls.stdout);
    }
}

#[test]
fn same_inputs_same_digest_and_a_rebuild_is_a_cache_hit() {
    let dir = temp_dir();
    let mut digests = Vec::new();
    for copy in ["a", "b"] {
        let base = dir.path().join(copy);
        let store = store_with_badgers(&base);
        shell_app(&base);
        let built = Cmd::solum(&store)
            .arg("build")
            .arg(base.join("app.yaml"))
            .run()
            .ok();
        digests.push(built.last_line());
        if copy == "a" {
            let again = Cmd::solum(&store)
                .arg("build")
                .arg(base.join("app.yaml"))
                .run()
                .ok();
            assert_eq!(again.last_line(), digests[0]);
            assert!(again.stderr.contains("cache hit"), "{}", again.text());
            assert!(!again.stderr.contains("BUILDING"), "{}", again.text());
            let forced = Cmd::solum(&store)
                .arg("build")
                .arg(base.join("app.yaml"))
                .arg("--no-cache")
                .run()
                .ok();
            assert!(forced.stderr.contains("BUILDING"), "{}", forced.text());
            assert_eq!(
                forced.last_line(),
                digests[0],
                "a forced rebuild gives the same DU"
            );
        }
    }
    assert_eq!(
        digests[0], digests[1],
        "two builds in different folders differ"
    );
}

#[test]
fn artifact_builds_on_the_static_badger() {
    let dir = temp_dir();
    let store = store_with_badgers(dir.path());
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(dist.join("bin")).unwrap();
    std::fs::write(dist.join("bin/hello"), "#!/bin/sh\necho static hello\n").unwrap();
    let tarball = dir.path().join("hello.tar.gz");
    Cmd::program("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dist)
        .arg(".")
        .run()
        .ok();
    Cmd::solum(&store)
        .args(["build", "--badger", "badgers/static", "--artifact"])
        .arg(&tarball)
        .args(["--name", "static-hello", "--run-cmd", "hello"])
        .run()
        .ok();
    let run = Cmd::solum(&store).args(["run", "static-hello"]).run().ok();
    assert_eq!(run.stdout.trim(), "static hello");
    // A hostile artifact is refused, naming the entry.
    let evil = repo_dir().join("testdata/layer/dotdot.tar");
    let run = Cmd::solum(&store)
        .args(["build", "--badger", "badgers/static", "--artifact"])
        .arg(&evil)
        .args(["--name", "evil"])
        .run()
        .fails_with(2);
    assert!(run.stderr.contains("hostile"), "{}", run.text());
}

#[test]
fn the_build_without_overlay_gives_the_same_du() {
    let dir = temp_dir();
    let store = store_with_badgers(dir.path());
    shell_app(dir.path());
    let with_overlay = Cmd::solum(&store)
        .arg("build")
        .arg(dir.path().join("app.yaml"))
        .run()
        .ok();
    let copied = Cmd::solum(&store)
        .args(["build", "--no-cache", "--tag", "copied"])
        .arg(dir.path().join("app.yaml"))
        .env("SOLUM_BUILD_NO_OVERLAY", "1")
        // The first build's scratch is the default (a tmpfs where there is one); this one
        // is on the disk: neither the mode nor the filesystem may change the DU.
        .env("SOLUM_BUILD_SCRATCH", dir.path().join("disk-scratch"))
        .run()
        .ok();
    assert_eq!(copied.last_line(), with_overlay.last_line());
}

#[test]
fn stacked_badgers_run_their_build_commands_in_order() {
    let dir = temp_dir();
    let store = store_with_badgers(dir.path());
    // A second badger made on top of the shell badger.
    let greeter = dir.path().join("greeter");
    std::fs::create_dir_all(&greeter).unwrap();
    std::fs::write(
        greeter.join("badger.yaml"),
        "name: greeter\nversion: \"0.1\"\nfrom: badgers/shell\ndepends: [shell]\n\
         environment: {GREETER: yes}\nbuild: /solum/bin/greeter.sh\n",
    )
    .unwrap();
    std::fs::write(
        greeter.join("build.sh"),
        "#!/bin/sh\nset -eu\necho \"greeter after: $(cat /app/order)\" > /app/order\n",
    )
    .unwrap();
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(&greeter)
        .run()
        .ok();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("build"), "echo shell > /app/order\n").unwrap();
    std::fs::write(
        dir.path().join("stacked.yaml"),
        "version: 1\nname: stacked\nbadger: badgers/shell\nbadgers: [badgers/greeter]\n\
         source: {repository: ./app}\nworkflow_config: {run_cmd: cat /app/order}\n",
    )
    .unwrap();
    Cmd::solum(&store)
        .arg("build")
        .arg(dir.path().join("stacked.yaml"))
        .run()
        .ok();
    let run = Cmd::solum(&store).args(["run", "stacked"]).run().ok();
    assert_eq!(run.stdout.trim(), "greeter after: shell");
    let env = Cmd::solum(&store)
        .args(["run", "stacked", "--", "sh", "-c", "echo $GREETER"])
        .run()
        .ok();
    assert_eq!(env.stdout.trim(), "yes");
    let inspect = Cmd::solum(&store).args(["inspect", "stacked"]).run().ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let du: serde_json::Value = serde_json::from_str(
        json["annotations"]["org.solum.du.manifest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = du["badgers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shell", "greeter"]);
}

#[test]
fn owners_set_by_the_build_reach_the_layer() {
    let dir = temp_dir();
    let store = store_with_badgers(dir.path());
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("build"),
        "echo x > owned && chown 1000:1001 owned\n",
    )
    .unwrap();
    Cmd::solum(&store)
        .args(["build", "--badger", "badgers/shell", "--source"])
        .arg(&app)
        .args(["--name", "owners"])
        .run()
        .ok();
    let inspect = Cmd::solum(&store).args(["inspect", "owners"]).run().ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let layers = json["manifest"]["layers"].as_array().unwrap();
    let top = layers.last().unwrap()["digest"].as_str().unwrap();
    let blob = store.join("blobs/sha256").join(&top["sha256:".len()..]);
    let listing = Cmd::program("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(&blob)
        .run()
        .ok();
    let line = listing
        .stdout
        .lines()
        .find(|l| l.ends_with("app/owned"))
        .unwrap_or_else(|| panic!("{}", listing.stdout));
    assert!(line.contains("1000/1001"), "{line}");
}

#[test]
fn ctrl_c_cancels_and_leaves_nothing_behind() {
    let dir = temp_dir();
    let store = store_with_badgers(dir.path());
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let marker = format!("solum-cancel-{}", std::process::id());
    // The marker is in the argv of the process that keeps running, so `ps` can find it.
    std::fs::write(
        app.join("build"),
        format!("echo started; exec sh -c 'sleep 300; :' {marker}\n"),
    )
    .unwrap();
    let mut child = Cmd::solum(&store)
        .args([
            "build",
            "--badger",
            "badgers/shell",
            "--name",
            "cancelled",
            "--log-format",
            "json",
        ])
        .arg("--source")
        .arg(&app)
        .into_command()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the build step runs (its first line arrives as a JSON log line).
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        use std::io::BufRead;
        assert!(
            stderr.read_line(&mut line).unwrap() != 0,
            "the build ended early:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains("started") {
            let json: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(json["stage"], "BUILDING");
            assert!(json["ts"].is_string());
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let images = Cmd::solum(&store).args(["images", "--json"]).run().ok();
    assert!(!images.stdout.contains("cancelled"));
    let work = dir.path().join("scratch");
    assert!(is_empty(&work), "scratch left in {}", work.display());
    let ps = Cmd::program("ps").args(["-eo", "args"]).run().ok();
    assert!(
        !ps.stdout.contains(&marker),
        "a build process survived:\n{}",
        ps.stdout
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&store.display().to_string()),
        "a mount was left: {mounts}"
    );
}

/// Issue 10, B13: a build on a fresh store, its badger copied in from an `oci:` layout
/// (blobs no name reaches until the DU is tagged), with `gc` looping every 50 ms: the
/// build waits for nothing it should not, and every blob of the DU is there afterwards.
#[test]
fn gc_looping_during_a_build_loses_nothing() {
    let dir = temp_dir();
    let badgers = store_with_badgers(dir.path());
    let layout = dir.path().join("badger-layout");
    Cmd::solum(&badgers)
        .args(["push", "badgers/shell"])
        .arg(format!("oci:{}:shell", layout.display()))
        .run()
        .ok();
    shell_app(dir.path());
    let app = dir.path().join("app.yaml");
    let text = std::fs::read_to_string(&app).unwrap().replace(
        "badger: badgers/shell",
        &format!("badger: oci:{}:shell", layout.display()),
    );
    std::fs::write(&app, text).unwrap();
    let store = dir.path().join("fresh");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (stop, store) = (stop.clone(), store.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                Cmd::solum(&store).arg("gc").run().ok();
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
    };
    let built = Cmd::solum(&store).arg("build").arg(&app).run().ok();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    collector.join().unwrap();
    Cmd::solum(&store).args(["inspect", "shellapp"]).run().ok();
    let run = Cmd::solum(&store).args(["run", "shellapp"]).run().ok();
    assert!(run.stdout.contains("hello from shellapp"), "{}", run.text());
    Cmd::solum(&store).arg("gc").run().ok();
    Cmd::solum(&store)
        .args(["push", "shellapp"])
        .arg(format!("oci:{}:du", dir.path().join("out").display()))
        .run()
        .ok();
    assert!(built.last_line().starts_with("sha256:"));
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
