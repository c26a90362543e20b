//! Issue 10: what a build or an image names must not reach the host's paths around the
//! sandbox — the copy fallback's cleanup (B11), installing a badger's scripts into an image
//! whose `/solum` is a symlink (B12), the per-app cache a build writes setuid files into
//! (B06), and host paths in the sandbox's mountinfo (W15). Each runs the real binary, with and without overlay, as root and as `tester`.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use support::*;

/// A store with `base/busybox` and the shipped `badgers/shell`.
fn store_with_shell(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    busybox_store(dir, &store, &["shell"]);
    store
}

/// `solum-build --store STORE` without overlay (the copy fallback) when `copy`.
fn solum_mode(store: &Path, copy: bool) -> Cmd {
    Cmd::solum(store).env("SOLUM_BUILD_NO_OVERLAY", if copy { "1" } else { "0" })
}

/// An app on `badgers/shell` whose `./build` is `script`.
fn app(dir: &Path, name: &str, script: &str) -> PathBuf {
    let src = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("build"), script).unwrap();
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "version: 1\nname: {name}\nbadger: badgers/shell\nsource: {{repository: ./{name}-src}}\n"
        ),
    )
    .unwrap();
    file
}

/// B11: without overlay the host removed the mount points it had made in the copy by path
/// after the build; a build that turned `/solum` into a symlink to a host folder made it
/// delete `FOLDER/cache`. The cleanup follows no symlink now.
#[test]
fn hostile_build_replacing_solum_with_a_symlink_deletes_nothing_on_the_host() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let somewhere = dir.path().join("somewhere");
    std::fs::create_dir_all(&somewhere).unwrap();
    std::fs::write(somewhere.join("cache"), "precious\n").unwrap();
    let file = app(
        dir.path(),
        "relinker",
        &format!(
            "mv /solum /solum.old && ln -s {} /solum\n",
            somewhere.display()
        ),
    );
    // Only the copy has a cleanup by path (an overlay keeps mount points in a tmpfs layer).
    solum_mode(&store, true)
        .args(["build", "--no-cache"])
        .arg(&file)
        .run()
        .ok();
    assert_eq!(
        std::fs::read_to_string(somewhere.join("cache")).unwrap(),
        "precious\n"
    );
}

/// B12 (and B01's shape): a `from` image with `/solum -> /host/dir` made `badger build`
/// write `build.sh` (and the setup script) into the host's `/host/dir/bin/`. They go into
/// the image now, where the symlink is replaced by a directory as an overlay's upper dir
/// would shadow it: both modes give the same tree.
#[test]
fn hostile_from_image_with_a_solum_symlink_keeps_scripts_in_the_image() {
    let dir = temp_dir();
    let host_dir = dir.path().join("host-dir");
    std::fs::create_dir_all(host_dir.join("bin")).unwrap();
    let rootfs = dir.path().join("evil-root");
    busybox_rootfs(&rootfs);
    std::os::unix::fs::symlink(&host_dir, rootfs.join("solum")).unwrap();
    let store = dir.path().join("store");
    import_tree(&store, &rootfs, "base/evil");
    let badger = dir.path().join("evil-badger");
    std::fs::create_dir_all(&badger).unwrap();
    std::fs::write(
        badger.join("badger.yaml"),
        "name: evil\nversion: \"1\"\nfrom: base/evil\nsetup: setup.sh\n",
    )
    .unwrap();
    std::fs::write(badger.join("build.sh"), "#!/bin/sh\necho built\n").unwrap();
    std::fs::write(
        badger.join("setup.sh"),
        "#!/bin/sh\necho set up > /etc/setup\n",
    )
    .unwrap();
    for copy in [true, false] {
        let tag = format!("evil-{copy}");
        solum_mode(&store, copy)
            .args(["badger", "build"])
            .arg(&badger)
            .arg("--tag")
            .arg(&tag)
            .run()
            .ok();
        assert_eq!(
            std::fs::read_dir(host_dir.join("bin")).unwrap().count(),
            0,
            "copy mode {copy}: written into the host folder"
        );
        assert_eq!(std::fs::read_dir(&host_dir).unwrap().count(), 1);
        let run = Cmd::solum(&store)
            .arg("run")
            .arg(&tag)
            .args([
                "--",
                "sh",
                "-c",
                "cat /solum/bin/build.sh /etc/setup; ls -a /solum",
            ])
            .run()
            .ok();
        assert_eq!(
            run.stdout, "#!/bin/sh\necho built\nset up\n.\n..\nbin\n",
            "copy mode {copy}"
        );
    }
}

/// B06: `cp busybox /solum/cache/x; chmod 4755 /solum/cache/x` left a setuid file in
/// `STORE/cache/apps/APP` that any local user could run. The per-app folder and its parent
/// are private now (an existing wider one is tightened), so another user cannot reach it,
/// and inside the sandbox the cache is mounted `nosuid,nodev`.
#[test]
fn hostile_setuid_file_in_the_cache_is_out_of_other_users_reach() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let apps = store.join("cache/apps");
    std::fs::create_dir_all(&apps).unwrap();
    std::fs::set_permissions(&apps, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = app(
        dir.path(),
        "suid",
        "cp /bin/busybox /solum/cache/x && chmod 4755 /solum/cache/x\n\
         awk '$5 == \"/solum/cache\" { print \"cache mount: \" $6 }' /proc/self/mountinfo\n",
    );
    for copy in [true, false] {
        let built = solum_mode(&store, copy)
            .args(["build", "--no-cache"])
            .arg(&file)
            .run()
            .ok();
        let line = built
            .stderr
            .lines()
            .find(|l| l.contains("cache mount: "))
            .unwrap_or_else(|| panic!("{}", built.text()))
            .to_string();
        let opts = line.rsplit(' ').next().unwrap();
        assert!(
            opts.split(',').any(|o| o == "nosuid") && opts.split(',').any(|o| o == "nodev"),
            "{line}"
        );
    }
    let x = apps.join("suid/x");
    assert_eq!(std::fs::metadata(&x).unwrap().mode() & 0o4000, 0o4000);
    for folder in [apps.clone(), apps.join("suid")] {
        let mode = std::fs::symlink_metadata(&folder).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{}", folder.display());
    }
    if is_root() && std::env::var_os(rootless::NESTED).is_none() {
        let other = Cmd::program("runuser")
            .args(["-u", "tester", "--", "test", "-e"])
            .arg(&x)
            .run();
        assert_ne!(other.code, 0, "another user reaches {}", x.display());
    }
}

/// W15: a build could read the store's host path (and so plant files for a later request to
/// name) from its mountinfo: overlay's layer options and the cache bind's root field. With
/// overlay, neither shows any more.
#[test]
fn build_mountinfo_shows_no_store_or_scratch_path() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let file = app(dir.path(), "peek", "cat /proc/self/mountinfo\n");
    let built = solum_mode(&store, false)
        .args(["build", "--no-cache"])
        .arg(&file)
        .run()
        .ok();
    assert!(built.stderr.contains("/solum/cache"), "{}", built.text());
    for host in [store.to_string_lossy().into_owned(), "solum-build-".into()] {
        assert!(
            !built.stderr.contains(&host),
            "{host} shows:\n{}",
            built.stderr
        );
    }
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
