//! The build-inputs surface attacked, as root and as `tester`: a build script that hides a
//! secret where the layer scan must still see it (a symlink's target, a file's name), a
//! hostile badger whose CA bundle is not a plain file or whose `/run` leads out, proxy
//! credentials in a build's output, a NUL byte in `build_environment`, a killed CLI's
//! copy of a secret. Each attack is run for real with the binary and shown refused or harmless.

mod support;

use std::path::Path;
use support::inputs::*;
use support::*;

const SECRET: &str = "hostile-7c1d-SECRET-e42b";

#[test]
fn a_secret_hidden_in_a_symlink_target_or_a_file_name_makes_no_du() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let flag = secret_flag(dir.path(), SECRET);
    for (name, script, path) in [
        (
            "pointer",
            "ln -s \"/nowhere/$(cat /run/secrets/token)\" /app/pointer",
            "/app/pointer",
        ),
        // The refusal names the file, masked: the name is the value.
        (
            "named",
            "mkdir -p /app/n && touch \"/app/n/x$(cat /run/secrets/token)x\"",
            "/app/n/x****x",
        ),
    ] {
        let source = dir.path().join(name);
        // A hard link to the mounted secret cannot be made: it is another filesystem.
        source_with_build_script(
            &source,
            &format!(
                "if ln /run/secrets/token /app/hard 2>/dev/null; then echo LINKED; exit 7; fi\n\
                 {script}\necho hidden"
            ),
        );
        let failed = Cmd::solum(&store)
            .args([
                "build",
                "--no-cache",
                "--badger",
                "badgers/shell",
                "--source",
            ])
            .arg(&source)
            .args(["--tag", name, "--secret", &flag])
            .run()
            .fails_with(1);
        let text = failed.text();
        assert!(
            text.contains("hidden") && !text.contains("LINKED"),
            "{text}"
        );
        assert!(!text.contains(SECRET), "{text}");
        assert!(
            text.contains("\"token\"") && text.contains(path),
            "{name}: {text}"
        );
        Cmd::solum(&store)
            .args(["inspect", name])
            .run()
            .fails_with(2);
    }
    assert_in_no_blob(&store, SECRET);
}

/// Makes the badger's system bundle at the path given.
type MakeBundle<'a> = Box<dyn Fn(&Path) + 'a>;

/// The badger's system bundle, the file the host reads to make the build's bundle, is
/// anything but a regular file of its own: a symlink to a host file, a FIFO, a folder, a
/// file too large, a device node (as root). The host reads none of it: the build trusts
/// the given certificate alone, and says so.
#[test]
fn a_hostile_system_bundle_is_not_read() {
    let dir = temp_dir();
    let host_bundle = certificate(&dir.path().join("host"));
    let bundle = "etc/ssl/certs/ca-certificates.crt";
    let mut kinds: Vec<(&str, MakeBundle<'_>)> = vec![
        (
            "symlink",
            Box::new(|p: &Path| std::os::unix::fs::symlink(&host_bundle, p).unwrap()),
        ),
        (
            "fifo",
            Box::new(|p: &Path| {
                nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
            }),
        ),
        (
            "folder",
            Box::new(|p: &Path| std::fs::create_dir(p).unwrap()),
        ),
        (
            "huge",
            Box::new(|p: &Path| {
                let mut text = std::fs::read(&host_bundle).unwrap();
                text.resize(17 << 20, b'\n');
                std::fs::write(p, text).unwrap();
            }),
        ),
    ];
    if is_root() {
        kinds.push((
            "device",
            Box::new(|p: &Path| {
                use nix::sys::stat::{makedev, mknod, Mode, SFlag};
                mknod(
                    p,
                    SFlag::S_IFCHR,
                    Mode::from_bits_truncate(0o644),
                    makedev(1, 3),
                )
                .unwrap();
            }),
        ));
    }
    let source = dir.path().join("src");
    source_with_build_script(
        &source,
        "echo \"certificates: $(grep -c 'BEGIN CERTIFICATE' \"$SSL_CERT_FILE\")\"",
    );
    let given = certificate(&dir.path().join("given"));
    for (kind, make) in kinds {
        let at = dir.path().join(kind);
        let store = store_with_shell_on(&at, |rootfs| {
            std::fs::create_dir_all(rootfs.join("etc/ssl/certs")).unwrap();
            make(&rootfs.join(bundle));
        });
        let built = Cmd::solum(&store)
            .args(["build", "--badger", "badgers/shell", "--source"])
            .arg(&source)
            .arg("--ca-cert")
            .arg(&given)
            .run()
            .ok();
        let text = built.text();
        assert!(text.contains("certificates: 1"), "{kind}: {text}");
        assert!(text.contains("has no CA bundle"), "{kind}: {text}");
    }
}

/// The badger's `/run` leads elsewhere: `/run/secrets` a symlink to an absolute host path,
/// `/run/solum` one climbing out with `..`. The mount points are made inside the image's
/// root (where the symlinks lead there), never on the host, and the build still reads its
/// inputs at the usual paths.
#[test]
fn mount_points_under_a_hostile_run_stay_in_the_root() {
    let dir = temp_dir();
    let unique = format!("solum-hostile-{}", std::process::id());
    let host_secrets = Path::new("/tmp").join(format!("{unique}-secrets"));
    let host_ca = Path::new("/tmp").join(format!("{unique}-ca"));
    let store = store_with_shell_on(dir.path(), |rootfs| {
        std::fs::create_dir_all(rootfs.join("run")).unwrap();
        std::os::unix::fs::symlink(&host_secrets, rootfs.join("run/secrets")).unwrap();
        std::os::unix::fs::symlink(
            format!("../../../../../../..{}", host_ca.display()),
            rootfs.join("run/solum"),
        )
        .unwrap();
    });
    let flag = secret_flag(dir.path(), SECRET);
    let source = dir.path().join("src");
    source_with_build_script(
        &source,
        "echo \"secret bytes: $(wc -c < /run/secrets/token)\"\n\
         echo \"certificates: $(grep -c 'BEGIN CERTIFICATE' \"$SSL_CERT_FILE\")\"",
    );
    let built = Cmd::solum(&store)
        .args(["build", "--badger", "badgers/shell", "--source"])
        .arg(&source)
        .args(["--tag", "runlinks", "--secret", &flag, "--ca-cert"])
        .arg(certificate(&dir.path().join("given")))
        .run()
        .ok();
    let text = built.text();
    assert!(
        text.contains(&format!("secret bytes: {}", SECRET.len() + 1)),
        "{text}"
    );
    assert!(text.contains("certificates: 1"), "{text}");
    for host in [&host_secrets, &host_ca] {
        assert!(!host.exists(), "{} was made on the host", host.display());
    }
    assert_in_no_blob(&store, SECRET);
}

/// A `--network host` build gets the host's proxies, credentials and all (the tools need
/// them); a build that prints them shows the password masked.
#[test]
fn a_proxy_password_is_masked_in_what_the_build_prints() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let source = dir.path().join("src");
    source_with_build_script(
        &source,
        "echo \"proxy=$HTTPS_PROXY\"\nenv | grep -i '^all_proxy='",
    );
    let password = "pr0xy-pass-5521";
    let built = Cmd::solum(&store)
        .args(["build", "--badger", "badgers/shell", "--network", "host"])
        .arg("--source")
        .arg(&source)
        .env(
            "HTTPS_PROXY",
            format!("http://builder:{password}@proxy.invalid:3128"),
        )
        .env(
            "all_proxy",
            format!("socks5://builder:{password}@proxy.invalid:1080"),
        )
        .run()
        .ok();
    let text = built.text();
    assert!(
        text.contains("proxy=http://builder:****@proxy.invalid:3128")
            && text.contains("all_proxy=socks5://builder:****@proxy.invalid:1080"),
        "{text}"
    );
    assert!(!text.contains(password), "{text}");
}

/// While a build runs, its host copy of a secret is in a folder only its user can enter,
/// the file itself 0400; a CLI killed with SIGKILL leaves it behind, and the next build
/// sweeps it. The scratch is a shared folder here, as `$SOLUM_BUILD_SCRATCH` may name one.
#[test]
fn the_host_copy_of_a_secret_is_private_and_swept_after_a_kill() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let flag = secret_flag(dir.path(), SECRET);
    let source = dir.path().join("src");
    source_with_build_script(&source, "sleep 120");
    let mut child = Cmd::solum(&store)
        .args(["build", "--badger", "badgers/shell", "--source"])
        .arg(&source)
        .args(["--secret", &flag])
        .env("SOLUM_BUILD_SCRATCH", &scratch)
        .spawn();
    let inputs = (0..600)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            walkdir::WalkDir::new(&scratch)
                .max_depth(3)
                .into_iter()
                .filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().starts_with(".inputs-"))
                .map(walkdir::DirEntry::into_path)
        })
        .expect("the build staged its inputs");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    // The token is written before the build's steps start: wait for it.
    let token = inputs.join("secrets/token");
    for _ in 0..100 {
        if token.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(mode(&inputs), 0o700, "{}", inputs.display());
    assert_eq!(mode(&token), 0o400);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert!(
        token.exists(),
        "a SIGKILL leaves the copy until the next sweep"
    );
    source_with_build_script(&source, "echo next");
    Cmd::solum(&store)
        .args(["build", "--badger", "badgers/shell", "--source"])
        .arg(&source)
        .env("SOLUM_BUILD_SCRATCH", &scratch)
        .run()
        .ok();
    assert!(!inputs.exists(), "{} was not swept", inputs.display());
}

/// An app file whose `build_environment` value holds a NUL byte (which no process
/// environment can carry) is bad input, refused before any work.
#[test]
fn a_nul_byte_in_build_environment_is_bad_input() {
    let dir = temp_dir();
    let file = dir.path().join("nul.yaml");
    std::fs::write(
        &file,
        "version: 1\nname: nul\nbadger: badgers/shell\nsource: {repository: ./}\n\
         build_environment: {A: \"x\\0y\"}\n",
    )
    .unwrap();
    let refused = Cmd::solum(&dir.path().join("store"))
        .arg("build")
        .arg(&file)
        .run()
        .fails_with(2);
    let text = refused.text();
    assert!(
        text.contains("build_environment.A: must not contain a NUL byte"),
        "{text}"
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
