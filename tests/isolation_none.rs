//! `build --isolation none` in a real unprivileged container: the shell badger's image put
//! into podman's reach (an OCI layout of the store's `badgers/shell`), `podman run --runtime
//! runc --user 1000:1000 --cap-drop=ALL --security-opt no-new-privileges` of it with the
//! debug binary (and the libraries it links) and the app's folder bind-mounted read-only, a
//! store of the container's user mounted, and an empty tmpfs of that user at `/app`.
//!
//! The contract: the same inputs give the same DU digest as a rootless `userns` build on
//! the bare host (as `tester`, with the same `SOURCE_DATE_EPOCH`). Also: a step that runs
//! forever is killed at the timeout; a build that writes through a symlink pointing out of
//! `/app` is confined to what the container allows, and the layer holds the symlink, not
//! its target's path; a container that is not the badger is refused. These tests need
//! root (rootful podman); they are skipped, saying so, without it.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::apps::PodmanImage;
use support::*;

/// The container's user: the shell badger's `app`.
const CONTAINER_USER: (u32, u32) = (1000, 1000);
/// Where things are mounted in the container.
const STORE_IN: &str = "/work/store";
const SOURCE_IN: &str = "/work/app";
const BINARY_IN: &str = "/opt/solum/solum-build";

fn can_run() -> bool {
    if !is_root() {
        eprintln!("skipped: rootful podman needs root");
        return false;
    }
    if Cmd::program("podman").arg("--version").run().code != 0 {
        // CI installs podman (scripts/install-deps.sh): there a missing one is a failure.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "podman is missing on CI"
        );
        eprintln!("skipped: no podman");
        return false;
    }
    true
}

/// A folder of the test's: reachable by every user (the container's, `tester`).
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A copy of `store` owned by `(uid, gid)`, without its caches (trees unpacked for
/// another user).
fn store_copy(store: &Path, to: &Path, owner: (u32, u32)) -> PathBuf {
    Cmd::program("cp").arg("-a").arg(store).arg(to).run().ok();
    let _ = std::fs::remove_dir_all(to.join("cache"));
    Cmd::program("chown")
        .arg("-R")
        .arg(format!("{}:{}", owner.0, owner.1))
        .arg(to)
        .run()
        .ok();
    to.to_path_buf()
}

/// A copy of the example app `hello` in `dir/NAME`, readable by all, with `extra` files
/// written into its source folder.
fn hello_app(dir: &Path, name: &str, extra: &[(&str, &str)]) -> PathBuf {
    let target = dir.join(name);
    Cmd::program("cp")
        .arg("-R")
        .arg(repo_dir().join("examples/hello"))
        .arg(&target)
        .run()
        .ok();
    for (file, text) in extra {
        let path = target.join("src").join(file);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    Cmd::program("chmod")
        .args(["-R", "a+rX"])
        .arg(&target)
        .run()
        .ok();
    target
}

/// The shared libraries the debug binary links, to bind-mount where it looks for them.
fn linked_libraries() -> Vec<String> {
    let ldd = Cmd::program("ldd").arg(bin()).run().ok();
    ldd.stdout
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|word| word.starts_with('/'))
                .map(str::to_string)
        })
        .collect()
}

/// One test's setup: a store with `base/busybox` and `badgers/shell`, and the badger in an
/// OCI layout podman runs.
struct Setup {
    dir: tempfile::TempDir,
    store: PathBuf,
    badger: PodmanImage,
}

impl Setup {
    fn new(name: &str) -> Setup {
        Setup::with_badger(name, "shell", |dir, store| {
            busybox_store(dir, store, &["shell"]);
        })
    }

    /// A store that `make` fills (it must hold `badgers/BADGER`), the badger pushed for podman.
    fn with_badger(name: &str, badger: &str, make: impl FnOnce(&Path, &Path)) -> Setup {
        let dir = open_dir();
        let store = dir.path().join("store");
        make(dir.path(), &store);
        let badger = PodmanImage::push(
            dir.path(),
            &store,
            &format!("badgers/{badger}"),
            &format!("none-{name}"),
            "",
        );
        Setup { dir, store, badger }
    }

    /// `solum-build build --isolation none ARGS APP` in the container `image` (the badger
    /// unless said otherwise), as the badger's user with no capability, on a copy of the
    /// store at `store` (kept for the caller).
    fn build_in_container(&self, app: &Path, image: &str, args: &[&str], store: &Path) -> Run {
        let mounts = ["--tmpfs", "/app:rw,exec,U"];
        self.build_in_container_with(app, image, args, store, &mounts, CONTAINER_USER)
    }

    /// [`Setup::build_in_container`] with `mounts` (options of `podman run`) for `/app`.
    fn build_in_container_with(
        &self,
        app: &Path,
        image: &str,
        args: &[&str],
        store: &Path,
        mounts: &[&str],
        user: (u32, u32),
    ) -> Run {
        let store = store_copy(&self.store, store, user);
        let (uid, gid) = user;
        let mut cmd = Cmd::program("podman")
            .env("CONTAINERS_CONF", &self.badger.conf)
            .args(["run", "--rm", "--runtime", "runc", "--network", "none"])
            .args(["--user", &format!("{uid}:{gid}"), "--cap-drop=ALL"])
            .args(["--security-opt", "no-new-privileges"])
            .args(mounts)
            .arg("-e")
            .arg(format!("SOURCE_DATE_EPOCH={SOURCE_DATE_EPOCH}"))
            .args(["-e", "HOME=/tmp", "-v"])
            .arg(format!("{}:{BINARY_IN}:ro", bin()))
            .arg("-v")
            .arg(format!("{}:{SOURCE_IN}:ro", app.display()))
            .arg("-v")
            .arg(format!("{}:{STORE_IN}", store.display()));
        for library in linked_libraries() {
            cmd = cmd.arg("-v").arg(format!("{library}:{library}:ro"));
        }
        cmd.arg(image)
            .args([
                BINARY_IN,
                "--store",
                STORE_IN,
                "build",
                "--isolation",
                "none",
            ])
            .args(args)
            .arg(format!("{SOURCE_IN}/app.yaml"))
            .run()
    }

    /// Builds `app` on the host and in the container, asserts both give the same DU
    /// digest, and returns the container's run.
    fn same_digest_as_on_host(&self, app: &Path) -> Run {
        let host = self.build_on_host(app).ok();
        let inside = self
            .build_in_container(app, &self.badger.reference, &[], &self.dir.path().join("s"))
            .ok();
        assert_eq!(
            host.last_line(),
            inside.last_line(),
            "host:\n{}\ncontainer:\n{}",
            host.text(),
            inside.text()
        );
        inside
    }

    /// The same build on the bare host: `userns`, rootless as `tester`, in its own store.
    fn build_on_host(&self, app: &Path) -> Run {
        let tester = nix::unistd::User::from_name("tester")
            .unwrap()
            .expect("the user tester (scripts/install-deps.sh makes it)");
        let store = store_copy(
            &self.store,
            &self.dir.path().join("store-tester"),
            (tester.uid.as_raw(), tester.gid.as_raw()),
        );
        Cmd::program("runuser")
            .args(["-u", "tester", "--", "env", "HOME=/tmp"])
            .arg(format!("SOURCE_DATE_EPOCH={SOURCE_DATE_EPOCH}"))
            .arg(bin())
            .arg("--store")
            .arg(&store)
            .args(["build", "--isolation", "userns"])
            .arg(app.join("app.yaml"))
            .run()
    }
}

#[test]
fn a_none_build_in_an_unprivileged_container_gives_the_host_digest() {
    if !can_run() {
        return;
    }
    let setup = Setup::new("digest");
    let app = hello_app(setup.dir.path(), "hello", &[]);
    let inside = setup.same_digest_as_on_host(&app);
    assert!(
        inside
            .stderr
            .contains("the container is the isolation boundary"),
        "{}",
        inside.text()
    );
    assert!(inside.text().contains("tests passed"), "{}", inside.text());
}

/// Root in a container with every capability dropped and `no-new-privileges` (the third
/// configuration of the issue): no user namespace (root cannot map uid 0 without
/// CAP_SETFCAP) and no chroot (no CAP_SYS_CHROOT), so `none` in the badger's own image;
/// the DU is the bare host's, whose rootless and root builds agree.
#[test]
fn a_none_build_as_root_without_capabilities_gives_the_host_digest() {
    if !can_run() {
        return;
    }
    let setup = Setup::new("root-nocaps");
    let app = hello_app(setup.dir.path(), "hello", &[]);
    let host = setup.build_on_host(&app).ok();
    let as_root = Cmd::solum(&store_copy(
        &setup.store,
        &setup.dir.path().join("store-root"),
        (0, 0),
    ))
    .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
    .args(["build", "--isolation", "userns"])
    .arg(app.join("app.yaml"))
    .run()
    .ok();
    let inside = setup
        .build_in_container_with(
            &app,
            &setup.badger.reference,
            &[],
            &setup.dir.path().join("s"),
            &["--tmpfs", "/app:rw,exec"],
            (0, 0),
        )
        .ok();
    assert!(inside.text().contains("tests passed"), "{}", inside.text());
    assert_eq!(host.last_line(), as_root.last_line(), "{}", as_root.text());
    assert_eq!(host.last_line(), inside.last_line(), "{}", inside.text());
}

/// The python badger's dependency step runs in place too (into its world-writable venv),
/// as a layer of its own: the python app from a wheelhouse gives the host's digest.
#[test]
fn a_python_app_from_a_wheelhouse_gives_the_host_digest() {
    if !can_run() {
        return;
    }
    let setup = Setup::with_badger("python", "python", |_, store| {
        support::apps::store_with_debian_badger(store, "debian-python3", "python");
    });
    let app = setup.dir.path().join("python-web");
    Cmd::program("cp")
        .arg("-R")
        .arg(repo_dir().join("testdata/apps/python-web"))
        .arg(&app)
        .run()
        .ok();
    Cmd::program("chmod")
        .args(["-R", "a+rX"])
        .arg(&app)
        .run()
        .ok();
    let inside = setup.same_digest_as_on_host(&app);
    assert!(
        inside.stderr.contains("offline from wheelhouse"),
        "{}",
        inside.text()
    );
}

#[test]
fn a_step_that_runs_forever_is_killed_at_the_timeout() {
    if !can_run() {
        return;
    }
    let setup = Setup::new("timeout");
    let forever = "#!/bin/sh\nsleep 1000 &\nwhile true; do sleep 1; done\n";
    let app = hello_app(setup.dir.path(), "forever", &[("build", forever)]);
    let started = std::time::Instant::now();
    let failed = setup
        .build_in_container(
            &app,
            &setup.badger.reference,
            &["--timeout", "3"],
            &setup.dir.path().join("s"),
        )
        .fails_with(1);
    assert!(
        failed
            .stderr
            .contains("ran past the timeout and was killed"),
        "{}",
        failed.text()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(90));
}

#[test]
fn a_symlink_out_of_app_is_written_as_a_symlink_and_writes_stay_in_the_container() {
    if !can_run() {
        return;
    }
    let setup = Setup::new("symlink");
    // /etc/passwd is root's in the image: the write through the link is refused; the
    // sticky /home/app lets the user make a file there, which is then the image's.
    let script = "#!/bin/sh\nmkdir -p public\necho page > public/build-info.txt\n\
        ln -s /etc/passwd /app/passwd-link\n\
        echo 'evil:x:0:0::/:/bin/sh' >> /app/passwd-link && exit 9\n\
        ln -s /home/app/made /app/out\necho data > /app/out\n";
    let app = hello_app(setup.dir.path(), "links", &[("build", script)]);
    let store = setup.dir.path().join("kept");
    let run = setup
        .build_in_container(
            &app,
            &setup.badger.reference,
            &["--skip-tests", "--tag", "links"],
            &store,
        )
        .ok();
    let layers = layer_digests(&store, "links");
    let top = blob(&store, layers.last().unwrap());
    let listing = Cmd::program("tar").arg("-tvf").arg(&top).run().ok().stdout;
    let line = |path: &str| {
        listing
            .lines()
            .find(|l| l.split_whitespace().nth(5) == Some(path))
            .unwrap_or_else(|| panic!("{path} is not in the layer:\n{listing}\n{}", run.text()))
            .to_string()
    };
    assert!(line("app/passwd-link").starts_with('l'), "{listing}");
    assert!(line("app/out").starts_with('l'), "{listing}");
    assert!(line("home/app/made").starts_with('-'), "{listing}");
    assert!(
        !listing.lines().any(|l| l.contains(" etc/passwd")),
        "{listing}"
    );
}

#[test]
fn a_container_that_is_not_the_badger_is_refused() {
    if !can_run() {
        return;
    }
    let setup = Setup::new("notbadger");
    let base = PodmanImage::push(
        setup.dir.path(),
        &setup.store,
        "base/busybox",
        "none-busybox",
        "",
    );
    let app = hello_app(setup.dir.path(), "hello", &[]);
    let failed = setup
        .build_in_container(&app, &base.reference, &[], &setup.dir.path().join("s"))
        .fails_with(2);
    assert!(
        failed
            .stderr
            .contains("this container is not the badger badgers/shell"),
        "{}",
        failed.text()
    );
}

#[test]
fn a_container_without_a_writable_app_folder_is_told_the_fix() {
    if !can_run() {
        return;
    }
    let setup = Setup::new("noapp");
    let app = hello_app(setup.dir.path(), "hello", &[]);
    let failed = setup
        .build_in_container_with(
            &app,
            &setup.badger.reference,
            &[],
            &setup.dir.path().join("s"),
            &[],
            CONTAINER_USER,
        )
        .fails_with(2);
    assert!(
        failed.stderr.contains("cannot put the source at /app")
            && failed.stderr.contains("--tmpfs /app"),
        "{}",
        failed.text()
    );
}

/// A build script that leaves a daemon in a session of its own (`setsid`, out of the
/// step's process group) writing into `/app` and the store: it is killed when the step
/// ends, so the test step (after the commit) finds it gone, and the store holds nothing it
/// wrote after the step.
#[test]
fn a_daemon_that_leaves_the_step_s_session_is_killed_with_the_step() {
    if !can_run() {
        return;
    }
    let setup = Setup::new("daemon");
    let build = "#!/bin/sh\nmkdir -p public\necho page > public/build-info.txt\n\
        setsid sh -c 'trap \"\" TERM; echo $$ > /tmp/daemon.pid; sleep 1; \
        while true; do echo late >> /work/store/poison; echo late >> /app/public/late; sleep 0.1; done' \
        </dev/null >/dev/null 2>&1 &\n\
        while [ ! -s /tmp/daemon.pid ]; do sleep 0.1; done\n";
    let test = "#!/bin/sh\nsleep 2\nif kill -0 $(cat /tmp/daemon.pid) 2>/dev/null; then \
        echo DAEMON-ALIVE; exit 1; fi\ntest ! -e /app/public/late\necho tests passed\n";
    let app = hello_app(
        setup.dir.path(),
        "daemon",
        &[("build", build), ("test.sh", test)],
    );
    let store = setup.dir.path().join("kept");
    let run = setup
        .build_in_container(&app, &setup.badger.reference, &[], &store)
        .ok();
    assert!(run.text().contains("tests passed"), "{}", run.text());
    assert!(run.text().contains("were killed"), "{}", run.text());
    assert!(!store.join("poison").exists(), "{}", run.text());
}

/// A build script that writes into the store (the container's user owns it) to poison
/// later builds: the build fails naming the change, and no DU is tagged.
#[test]
fn a_build_that_writes_into_the_store_is_refused() {
    if !can_run() {
        return;
    }
    let setup = Setup::new("storewrite");
    let build = "#!/bin/sh\nmkdir -p public\necho page > public/build-info.txt\n\
        echo poison > /work/store/planted\n";
    let app = hello_app(setup.dir.path(), "storewrite", &[("build", build)]);
    let store = setup.dir.path().join("kept");
    let failed = setup
        .build_in_container(
            &app,
            &setup.badger.reference,
            &["--tag", "poisoned"],
            &store,
        )
        .fails_with(1);
    assert!(
        failed.stderr.contains("the build changed the store")
            && failed.stderr.contains("/work/store/planted"),
        "{}",
        failed.text()
    );
    let images = Cmd::solum(&store).args(["images"]).run().ok().stdout;
    assert!(!images.contains("poisoned"), "{images}");
}

/// `--isolation none` where no container is recognised (this test hides the engine's
/// `/.dockerenv` and `/run/.containerenv` in a mount namespace of its own, and clears the
/// variables) is refused before anything is read or run, naming the way out.
#[test]
fn a_none_build_where_no_container_is_recognised_is_refused() {
    if !is_root() {
        eprintln!("skipped: hiding the container's files needs root");
        return;
    }
    let dir = open_dir();
    let app = hello_app(dir.path(), "hello", &[]);
    let hide = "for f in /.dockerenv /run/.containerenv; do \
        if [ -e $f ]; then mount --bind /dev/null $f || exit 9; fi; done; exec \"$@\"";
    let failed = Cmd::program("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            hide,
            "sh",
        ])
        .arg(bin())
        .arg("--store")
        .arg(dir.path().join("store"))
        .args(["build", "--isolation", "none"])
        .arg(app.join("app.yaml"))
        .env("container", "")
        .env("KUBERNETES_SERVICE_HOST", "")
        .run()
        .fails_with(2);
    assert!(
        failed.stderr.contains("no container is recognised")
            && failed.stderr.contains("SOLUM_BUILD_IN_CONTAINER=1"),
        "{}",
        failed.text()
    );
    assert!(!failed.stderr.contains("QUEUED"), "{}", failed.text());
}

/// The steps get the build's environment alone, and the tool's own process stays out of
/// their reach: a build script (the container's user, the tool's too) can neither read the
/// tool's environment (a registry token) from `/proc` nor open its memory.
#[test]
fn a_build_script_cannot_read_the_tool_s_environment_or_memory() {
    if !can_run() {
        return;
    }
    let setup = Setup::new("procpeek");
    let build = "#!/bin/sh\nmkdir -p public\necho page > public/build-info.txt\n\
        tool=$(grep -l solum-build /proc/[0-9]*/cmdline 2>/dev/null | head -n 1)\n\
        tool=${tool%/cmdline}\necho \"tool at $tool\"\n\
        tr '\\0' '\\n' < $tool/environ 2>/dev/null | grep TOKEN && echo LEAKED-ENV\n\
        head -c 1 $tool/mem 2>/dev/null && echo OPENED-MEM\n\
        exit 0\n";
    let app = hello_app(setup.dir.path(), "procpeek", &[("build", build)]);
    let run = setup
        .build_in_container_with(
            &app,
            &setup.badger.reference,
            &["--skip-tests"],
            &setup.dir.path().join("s"),
            &["--tmpfs", "/app:rw,exec,U", "-e", "REGISTRY_TOKEN=hunter2"],
            CONTAINER_USER,
        )
        .ok();
    assert!(run.text().contains("tool at /proc/"), "{}", run.text());
    assert!(!run.text().contains("LEAKED-ENV"), "{}", run.text());
    assert!(!run.text().contains("hunter2"), "{}", run.text());
    assert!(!run.text().contains("OPENED-MEM"), "{}", run.text());
}
