//! Issue 14: builds inside CI containers. The tool runs inside `podman run --runtime runc`
//! of a plain Debian image (see `support::container`) in the configurations CI runners and
//! pods use: (a) root with podman's default profile, where the `userns` level does without
//! what the profile refuses (sethostname, a fresh /proc, overlay); (b) root with Docker's
//! default seccomp profile, where no user namespace can be made and `auto` takes `chroot`;
//! (c) root with every capability dropped, where neither works and `info` says why and
//! names `none`. The same inputs give the same DU digest as the build on the bare host.
//! The hostile build scripts of the suite run at the `chroot` level and stay in their
//! tree. Container runs need root; the rootless re-run checks what a user is told.

mod support;

use std::path::{Path, PathBuf};
use support::container::{run_in_container, store_copy, Bind, Confinement};
use support::*;

/// A store with the shell badger and the sample app `examples/hello` copied next to it.
fn shell_store_and_hello(dir: &Path) -> (PathBuf, PathBuf) {
    let store = dir.join("store");
    busybox_store(dir, &store, &["shell"]);
    let hello = dir.join("hello");
    Cmd::program("cp")
        .arg("-a")
        .arg(repo_dir().join("examples/hello"))
        .arg(&hello)
        .run()
        .ok();
    (store, hello)
}

/// A store at `/store` (writable) and the sample app at `/hello` in the container.
fn store_and_hello<'a>(store: &'a Path, hello: &'a Path) -> [Bind<'a>; 2] {
    [
        Bind {
            host: store,
            inner: "/store",
            read_only: false,
        },
        Bind {
            host: hello,
            inner: "/hello",
            read_only: true,
        },
    ]
}

/// What `info` inside a container says it picks.
fn chosen_level(info: &str) -> &str {
    info.lines()
        .find_map(|l| l.strip_prefix("isolation:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("")
}

/// The shell badger's sample app in (a) and (b): each builds (its test gate included),
/// runs the DU's test, and gives the bare host's digest; `info` names the level.
#[test]
fn sample_app_in_containers_gives_the_bare_hosts_digest() {
    if !is_root() {
        return;
    }
    let dir = temp_dir();
    let (store, hello) = shell_store_and_hello(dir.path());
    let host_store = store_copy(dir.path(), &store, "host-store");
    let on_host = Cmd::solum(&host_store)
        .arg("build")
        .arg(hello.join("app.yaml"))
        .run()
        .ok()
        .last_line();
    for (confinement, level) in [
        (Confinement::PodmanDefault, "userns"),
        (Confinement::DockerSeccomp, "chroot"),
    ] {
        let copy = store_copy(dir.path(), &store, &format!("store-{level}"));
        let run = run_in_container(
            dir.path(),
            confinement,
            &store_and_hello(&copy, &hello),
            "solum-build info && echo '== build' && \
             solum-build --store /store build --no-cache /hello/app.yaml && echo '== test' && \
             solum-build --store /store run hello -- ./test.sh",
        )
        .ok();
        let (info, rest) = run.stdout.split_once("== build\n").unwrap();
        let (build, test) = rest.split_once("== test\n").unwrap();
        assert_eq!(chosen_level(info), level, "{confinement:?}: {}", run.text());
        assert_eq!(
            build.lines().last().unwrap_or_default(),
            on_host,
            "{confinement:?}: {}",
            run.text()
        );
        assert!(test.contains("tests passed"), "{}", run.text());
        assert!(
            run.stderr.contains("tests passed"),
            "the gate ran: {}",
            run.text()
        );
        if confinement == Confinement::PodmanDefault {
            // Every step the profile refused is in the build log, with what replaced it.
            assert!(run.stderr.contains("sandbox: hostname:"), "{}", run.text());
            for said in [
                "degraded:               hostname:",
                "degraded:               overlay:",
            ] {
                assert!(info.contains(said), "{said}: {info}");
            }
        } else {
            assert!(info.contains("userns:                   refused: clone(CLONE_NEWUSER)"));
            assert!(info.contains("seccomp"), "{info}");
            assert!(
                info.contains("chroot cannot prevent:    the network"),
                "{info}"
            );
        }
    }
}

/// (c): root without capabilities can neither map uid 0 (CAP_SETFCAP, Linux 5.12+) nor
/// chroot: `info` names both reasons and `none`, exits 0 (`none` is the fallback); a build
/// says only `--isolation none` is left, and a forced `chroot` is refused naming why.
#[test]
fn without_capabilities_info_explains_that_only_none_is_left() {
    if !is_root() {
        return;
    }
    let dir = temp_dir();
    let (store, hello) = shell_store_and_hello(dir.path());
    let run = run_in_container(
        dir.path(),
        Confinement::NoCapabilities,
        &store_and_hello(&store, &hello),
        "solum-build info; echo \"== info $?\"; \
         solum-build --store /store build --no-cache /hello/app.yaml; echo \"== auto $?\"; \
         solum-build --store /store build --isolation chroot /hello/app.yaml; echo \"== chroot $?\"",
    )
    .ok();
    assert_eq!(chosen_level(&run.stdout), "none", "{}", run.text());
    for said in [
        "== info 0",
        "userns:                   refused: writing the user namespace's uid_map was refused",
        "CAP_SETFCAP",
        "chroot:                   refused: the container dropped CAP_SYS_CHROOT",
        "the container is the boundary",
        "== auto 1",
        "== chroot 2",
    ] {
        assert!(run.stdout.contains(said), "{said}: {}", run.text());
    }
    assert!(
        run.stderr.contains("only `--isolation none` is left"),
        "{}",
        run.text()
    );
    assert!(
        run.stderr
            .contains("--isolation chroot cannot work here: the container dropped CAP_SYS_CHROOT")
            && run.stderr.contains("would pick none"),
        "{}",
        run.text()
    );
}

/// The python badger's web app, its dependencies from the vendored wheelhouse, under
/// Docker's default profile (`chroot`, the level furthest from the host's): the host's
/// digest. One configuration only: the copy of a Debian tree per step makes it the slow
/// one.
#[test]
fn python_app_under_dockers_profile_gives_the_bare_hosts_digest() {
    if !is_root() {
        return;
    }
    let dir = temp_dir();
    let store = dir.path().join("store");
    support::apps::store_with_debian_badger(&store, "debian-python3", "python");
    let app_file = support::apps::copy_app(dir.path(), "python-web");
    let app = app_file.parent().unwrap();
    let container_store = store_copy(dir.path(), &store, "store-chroot");
    let on_host = Cmd::solum(&store)
        .arg("build")
        .arg(&app_file)
        .run()
        .ok()
        .last_line();
    let run = run_in_container(
        dir.path(),
        Confinement::DockerSeccomp,
        &[
            Bind {
                host: &container_store,
                inner: "/store",
                read_only: false,
            },
            Bind {
                host: app,
                inner: "/python-web",
                read_only: true,
            },
        ],
        "solum-build --store /store build /python-web/app.yaml",
    )
    .ok();
    assert_eq!(run.last_line(), on_host, "{}", run.text());
    assert!(run.stderr.contains("Ran 3 tests"), "{}", run.text());
}

/// A host folder the hostile build writes to through a symlink; it must never exist.
const OUTSIDE: &str = "/etc/solum-hostile-target";

/// The suite's hostile build scripts at the `chroot` level (as root on the host): a build
/// that swaps `/solum` or `/tmp` for a symlink to a host folder, leaves a setuid file and a
/// symlink to a host file in its cache, or writes through an absolute symlink, changes
/// nothing outside its tree, neither in the cleanup nor in the commit.
#[test]
fn hostile_builds_at_the_chroot_level_stay_in_their_tree() {
    if !is_root() {
        return;
    }
    let dir = temp_dir();
    let (store, _) = shell_store_and_hello(dir.path());
    let somewhere = dir.path().join("somewhere");
    std::fs::create_dir_all(&somewhere).unwrap();
    std::fs::write(somewhere.join("cache"), "precious\n").unwrap();
    std::fs::write(somewhere.join("keep"), "precious\n").unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "host file\n").unwrap();
    let src = dir.path().join("hostile-src");
    std::fs::create_dir_all(&src).unwrap();
    let s = somewhere.display();
    std::fs::write(
        src.join("build"),
        format!(
            "set -e\n\
             cp /bin/busybox /solum/cache/x && chmod 4755 /solum/cache/x\n\
             ln -s {secret} /solum/cache/link\n\
             mv /solum /solum.old && ln -s {s} /solum\n\
             mkdir -p {outside} && ln -s {outside} /app/out && echo x > /app/out/written\n\
             rm -rf /tmp && ln -s {s} /tmp\n",
            secret = secret.display(),
            outside = OUTSIDE,
        ),
    )
    .unwrap();
    let file = dir.path().join("hostile.yaml");
    std::fs::write(
        &file,
        "version: 1\nname: hostile\nbadger: badgers/shell\nsource: {repository: ./hostile-src}\n",
    )
    .unwrap();
    let built = Cmd::solum(&store)
        .args(["build", "--no-cache", "--isolation", "chroot"])
        .arg(&file)
        .run()
        .ok();
    assert!(
        built.stderr.contains("sandbox: chroot:"),
        "{}",
        built.text()
    );
    // Nothing of the host changed: the symlinks named host paths, seen inside the tree.
    let mut names: Vec<_> = std::fs::read_dir(&somewhere)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["cache", "keep"]);
    assert_eq!(
        std::fs::read_to_string(somewhere.join("cache")).unwrap(),
        "precious\n"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host file\n");
    // The cache came back without the setuid bit, the link as a link.
    use std::os::unix::fs::PermissionsExt;
    let cache = walkdir::WalkDir::new(store.join("cache"))
        .into_iter()
        .map(|e| e.unwrap())
        .collect::<Vec<_>>();
    let x = cache
        .iter()
        .find(|e| e.file_name() == "x")
        .expect("the cache was written back");
    assert_eq!(x.metadata().unwrap().permissions().mode() & 0o6000, 0);
    let link = cache.iter().find(|e| e.file_name() == "link").unwrap();
    assert!(link.path_is_symlink());
    // The DU holds the build's symlinks as symlinks and its file inside the tree.
    let unpacked = dir.path().join("unpacked");
    Cmd::solum(&store)
        .args(["unpack", "hostile"])
        .arg(&unpacked)
        .run()
        .ok();
    assert!(!Path::new(OUTSIDE).exists(), "written on the host");
    let inner = unpacked.join(OUTSIDE.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(inner.join("written")).unwrap(),
        "x\n"
    );
    assert!(unpacked.join("app/out").is_symlink());
}

/// A timed-out command at the `chroot` level takes every process it started with it,
/// those that left its process group too.
#[test]
fn a_timeout_at_the_chroot_level_kills_the_whole_tree() {
    if !is_root() {
        return;
    }
    let dir = temp_dir();
    let (store, _) = shell_store_and_hello(dir.path());
    let run = Cmd::solum(&store)
        .args([
            "run",
            "--isolation",
            "chroot",
            "--timeout",
            "2",
            "base/busybox",
        ])
        .args([
            "--",
            "sh",
            "-c",
            "setsid sleep 3017 & sleep 3018 & sleep 3019",
        ])
        .run();
    assert_ne!(run.code, 0, "{}", run.text());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("sleep 301"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A user forcing `chroot` is told why it cannot work and which level `info` picks; `info
/// --json` carries every level with its reason.
#[test]
fn a_forced_level_that_cannot_work_is_refused_naming_why() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    let info = Cmd::solum(&store).args(["info", "--json"]).run().ok();
    let json: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    let levels = json["isolation"]["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 3, "{json}");
    assert_eq!(json["isolation"]["chosen"], "userns", "{json}");
    if is_root() {
        return;
    }
    assert_eq!(levels[1]["works"], false);
    let refused = Cmd::solum(&store)
        .args(["run", "--isolation", "chroot", "base/busybox", "--", "true"])
        .run()
        .fails_with(2);
    assert!(
        refused
            .stderr
            .contains("--isolation chroot cannot work here: not root")
            && refused.stderr.contains("would pick userns"),
        "{}",
        refused.text()
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
