//! The static binary of `scripts/build-static.sh`
//! (`target/x86_64-unknown-linux-gnu/static/solum-build`): glibc linked in, no program
//! interpreter, so it runs in images that have no libc of their own (busybox, distroless).
//! On the host (as root, then again as `tester`) and inside podman's runs of a busybox image
//! and of an image of a CA bundle and nothing else (root only: podman runs rootful in these
//! tests) it answers `--version` and `info`, and pushes to and pulls from a real
//! `docker-registry` by `127.0.0.1` and by `localhost` — the name that needs the static
//! glibc's built-in `files` name service, with no `libnss_*.so` in the image. On the host
//! it also runs a command in its sandbox, which starts the binary again from
//! `/proc/self/exe`.
//!
//! `scripts/test.sh` builds the binary before the tests (a release build of its own, with
//! fat LTO). Where it is absent the tests say so on stderr and pass, except on CI
//! (`CI=true`), where the binary must be there. `SOLUM_STATIC_BIN` names another one.

mod support;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::registry::{Mode, Registry};
use support::*;

/// Where `scripts/build-static.sh` leaves the binary, or `SOLUM_STATIC_BIN`.
fn static_binary_path() -> PathBuf {
    if let Some(path) = std::env::var_os("SOLUM_STATIC_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_dir().join("target"), PathBuf::from);
    target.join("x86_64-unknown-linux-gnu/static/solum-build")
}

/// The static binary, or `None` (with the reason on stderr) when it was not built and this
/// is not CI.
fn static_binary() -> Option<PathBuf> {
    let path = static_binary_path();
    if path.is_file() {
        return Some(path);
    }
    let reason = format!(
        "{} is missing: build it with `sh scripts/build-static.sh` (scripts/test.sh does)",
        path.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{reason}; on CI the static binary must be tested"
    );
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
    None
}

/// The static binary with `--store STORE` and the tests' fixed `SOURCE_DATE_EPOCH`.
fn static_solum(binary: &Path, store: &Path) -> Cmd {
    Cmd::program(binary.to_str().unwrap())
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .arg("--store")
        .arg(store)
}

/// The `p_type` of every program header of the ELF file at `path` (64-bit little-endian,
/// what x86_64 builds are).
fn program_header_types(path: &Path) -> Vec<u32> {
    let mut file = std::fs::File::open(path).unwrap();
    let mut header = [0u8; 64];
    file.read_exact(&mut header).unwrap();
    assert_eq!(
        &header[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        path.display()
    );
    assert_eq!(header[4], 2, "not a 64-bit ELF file");
    let phoff = u64::from_le_bytes(header[0x20..0x28].try_into().unwrap());
    let phentsize = u64::from(u16::from_le_bytes(header[0x36..0x38].try_into().unwrap()));
    let phnum = u16::from_le_bytes(header[0x38..0x3a].try_into().unwrap());
    (0..u64::from(phnum))
        .map(|i| {
            let mut p_type = [0u8; 4];
            file.seek(SeekFrom::Start(phoff + i * phentsize)).unwrap();
            file.read_exact(&mut p_type).unwrap();
            u32::from_le_bytes(p_type)
        })
        .collect()
}

#[test]
fn the_static_binary_has_no_program_interpreter() {
    let Some(binary) = static_binary() else {
        return;
    };
    const PT_INTERP: u32 = 3;
    let types = program_header_types(&binary);
    assert!(
        !types.is_empty(),
        "no program headers in {}",
        binary.display()
    );
    assert!(
        !types.contains(&PT_INTERP),
        "{} names a program interpreter: it is dynamically linked",
        binary.display()
    );
    // `ldd` says so too, where it is installed (it is part of Debian's libc-bin).
    if Path::new("/usr/bin/ldd").is_file() {
        let ldd = Cmd::program("ldd").arg(&binary).run();
        let said = format!("{}{}", ldd.stdout, ldd.stderr);
        assert!(
            said.contains("statically linked") || said.contains("not a dynamic executable"),
            "{said}"
        );
    }
}

/// Runs `push base/busybox` from `store` to the registry by `127.0.0.1`, then `pull` of
/// it by `localhost` into `pulled_store`, each with `solum` (the binary's arguments in, the
/// finished run out), and asserts both printed the same digest.
fn push_by_address_pull_by_name(
    solum: impl Fn(&[&str]) -> Run,
    store: &str,
    pulled_store: &str,
    port: u16,
    repo: &str,
) {
    let pushed = solum(&[
        "--store",
        store,
        "push",
        "base/busybox",
        &format!("docker://127.0.0.1:{port}/{repo}:1"),
    ])
    .ok();
    let pulled = solum(&[
        "--store",
        pulled_store,
        "pull",
        &format!("docker://localhost:{port}/{repo}:1"),
    ])
    .ok();
    assert!(
        pushed.last_line().starts_with("sha256:"),
        "{}",
        pushed.text()
    );
    assert_eq!(
        pushed.last_line(),
        pulled.last_line(),
        "{}\n{}",
        pushed.text(),
        pulled.text()
    );
}

#[test]
fn the_static_binary_imports_runs_and_talks_to_a_registry_on_the_host() {
    let Some(binary) = static_binary() else {
        return;
    };
    let version = Cmd::program(binary.to_str().unwrap())
        .arg("--version")
        .run()
        .ok();
    assert!(
        version.stdout.starts_with("solum-build "),
        "{}",
        version.text()
    );
    let dir = temp_dir();
    let store = dir.path().join("store");
    let info = static_solum(&binary, &store).arg("info").run().ok();
    assert!(!info.stdout.is_empty(), "{}", info.text());

    let rootfs = dir.path().join("busybox");
    busybox_rootfs(&rootfs);
    static_solum(&binary, &store)
        .arg("import")
        .arg(&rootfs)
        .args(["--tag", "base/busybox"])
        .run()
        .ok();
    // The sandbox starts the binary again (from /proc/self/exe): a static one too.
    let ran = static_solum(&binary, &store)
        .args(["run", "base/busybox", "--", "echo", "hello from busybox"])
        .run()
        .ok();
    assert_eq!(ran.stdout, "hello from busybox\n", "{}", ran.text());

    let registry = Registry::start(Mode::Plain);
    let pulled_store = dir.path().join("pulled");
    push_by_address_pull_by_name(
        |args| {
            Cmd::program(binary.to_str().unwrap())
                .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
                .args(args)
                .run()
        },
        store.to_str().unwrap(),
        pulled_store.to_str().unwrap(),
        registry.port,
        "static/host",
    );
}

/// `podman run` of `image` (the host's network, where the registry listens on loopback)
/// with the static binary at /usr/local/bin/solum-build and `store` at /store (so that a
/// push has something to send): the binary's arguments in, the finished run out.
fn in_container<'a>(
    image: &'a support::apps::PodmanImage,
    binary: &'a Path,
    store: &'a Path,
) -> impl Fn(&[&str]) -> Run + 'a {
    move |args| {
        Cmd::program("podman")
            .env("CONTAINERS_CONF", &image.conf)
            .args(["run", "--rm", "--runtime", "runc", "--network", "host"])
            .arg("-v")
            .arg(format!(
                "{}:/usr/local/bin/solum-build:ro",
                binary.display()
            ))
            .arg("-v")
            .arg(format!("{}:/store", store.display()))
            .args(["-e", &format!("SOURCE_DATE_EPOCH={SOURCE_DATE_EPOCH}")])
            .arg(&image.reference)
            .arg("/usr/local/bin/solum-build")
            .args(args)
            .run()
    }
}

#[test]
fn the_static_binary_runs_in_busybox_and_in_an_image_of_nothing_else() {
    let Some(binary) = static_binary() else {
        return;
    };
    if !is_root() {
        // podman runs rootful in these tests (as in tests/support/apps.rs).
        return;
    }
    support::registry::require("podman", "podman");
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &[]);
    // Distroless-like: a CA bundle and /tmp, and nothing else (the binary is mounted).
    let bare = dir.path().join("bare");
    std::fs::create_dir_all(bare.join("etc/ssl/certs")).unwrap();
    std::fs::create_dir_all(bare.join("tmp")).unwrap();
    std::fs::set_permissions(bare.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if bundle.is_file() {
        std::fs::copy(bundle, bare.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    }
    import_tree(&store, &bare, "static/bare");
    let registry = Registry::start(Mode::Plain);

    // Neither image has a libc, a libnss or a shell the binary could lean on.
    for (name, tag) in [
        ("base/busybox", "static-busybox"),
        ("static/bare", "static-bare"),
    ] {
        let image = support::apps::PodmanImage::push(dir.path(), &store, name, tag, "");
        let solum = in_container(&image, &binary, &store);
        let version = solum(&["--version"]).ok();
        assert!(
            version.stdout.starts_with("solum-build "),
            "{name}: {}",
            version.text()
        );
        let info = solum(&["--store", "/store", "info"]).ok();
        assert!(!info.stdout.is_empty(), "{name}: {}", info.text());
        push_by_address_pull_by_name(solum, "/store", "/tmp/pulled", registry.port, tag);
    }
}

#[test]
fn run_again_as_tester() {
    let mut rerun = support::rootless::TesterRerun::new().program(bin());
    if static_binary_path().is_file() {
        rerun = rerun.program(static_binary_path());
    }
    rerun.run();
}
