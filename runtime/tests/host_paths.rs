//! Issue 10: hostile images against the host's paths around the sandbox — mount points
//! that symlink out of the root (B09), symlink chains past the kernel's 40 hops (B10), the
//! per-app cache's mount flags (B06) and host paths in the sandbox's mountinfo (W15). Run as
//! root, they run again as `tester`.

mod common;

use common::*;
use runtime::{BindMount, Network, RootFs};
use std::path::Path;

/// What /dev's setup would make, had it followed the image's `/dev` on the host.
const DEV_NAMES: &[&str] = &[
    "null", "zero", "ptmx", "pts", "shm", "fd", "stdin", "stderr",
];

/// B09: an image whose `/dev` is a symlink to `/` made the setup create device nodes,
/// `pts`, `shm` and symlinks in the host's `/`. The mount point now resolves inside the
/// root, to the root itself, which is refused; the host's `/` is as it was.
#[test]
fn hostile_dev_symlink_to_root_touches_nothing_on_the_host() {
    let before = names(Path::new("/"));
    let dir = root_copy();
    let root = dir.path().join("root");
    std::os::unix::fs::symlink("/", root.join("dev")).unwrap();
    let ovl = tempfile::tempdir().unwrap();
    for d in ["upper", "work"] {
        std::fs::create_dir(ovl.path().join(d)).unwrap();
    }
    let overlay = RootFs::Overlay {
        lowers: vec![root.clone()],
        upper: ovl.path().join("upper"),
        work: ovl.path().join("work"),
    };
    for rootfs in [RootFs::Dir(root.clone()), overlay] {
        let err = runtime::run(&sh(rootfs, "true"), Path::new(PROBE), |_| {}).unwrap_err();
        let msg = runtime::process::chain(&err);
        assert!(msg.contains("/dev leads to the root itself"), "{msg}");
    }
    assert_eq!(before, names(Path::new("/")));
    for n in DEV_NAMES {
        assert!(!root.join(n).exists(), "{n} made in the image's root");
    }
}

/// B09: with `/dev -> /proc/self/cwd` the setup made its `/dev` in the caller's working
/// directory. It now resolves inside the root (`ROOT/proc/self/cwd`): the caller's
/// directory stays empty, as root and as an unprivileged user.
#[test]
fn hostile_dev_symlink_to_proc_self_cwd_touches_nothing_on_the_host() {
    let dir = root_copy();
    let root = dir.path().join("root");
    std::os::unix::fs::symlink("/proc/self/cwd", root.join("dev")).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let spec_file = dir.path().join("spec.json");
    std::fs::write(
        &spec_file,
        serde_json::to_vec(&sh(RootFs::Dir(root.clone()), "true")).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new(PROBE)
        .arg("--spec")
        .arg(&spec_file)
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(
        names(cwd.path()).is_empty(),
        "made in the caller's cwd: {:?} ({})",
        names(cwd.path()),
        String::from_utf8_lossy(&out.stderr)
    );
    // What was made went into the image, under the path the link names there.
    assert!(root.join("proc/self/cwd").is_dir());
}

/// A chain `NAME -> /c1 -> … -> /c40 -> TARGET` of 41 symlinks in `root`: one past the
/// kernel's limit, the last one pointing at a host path.
fn plant_chain(root: &Path, name: &str, target: &Path) {
    std::os::unix::fs::symlink("/c1", root.join(name)).unwrap();
    for i in 1..=39 {
        std::os::unix::fs::symlink(format!("/c{}", i + 1), root.join(format!("c{i}"))).unwrap();
    }
    std::os::unix::fs::symlink(target, root.join("c40")).unwrap();
}

/// B10: past 40 symlinks the old resolver joined the rest literally and the kernel then
/// followed it on the host: `/etc` as a long chain to `/outside/D` with the host network
/// created `/outside/D/hosts`, and the same for the `/solum/cache` bind target. Both are
/// refused now (`ELOOP`), and nothing is made outside.
#[test]
fn hostile_symlink_chain_past_40_hops_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let dir = root_copy();
    let root = dir.path().join("root");
    std::fs::remove_dir_all(root.join("etc")).unwrap();
    plant_chain(&root, "etc", outside.path());
    let mut spec = sh(RootFs::Dir(root.clone()), "true");
    spec.network = Network::Host;
    let err = runtime::run(&spec, Path::new(PROBE), |_| {}).unwrap_err();
    let msg = runtime::process::chain(&err);
    assert!(msg.contains("symbolic links"), "{msg}");
    assert!(
        names(outside.path()).is_empty(),
        "{:?}",
        names(outside.path())
    );

    // The same chain on the way to a bind target, without the host network.
    let cache = tempfile::tempdir().unwrap();
    let mut spec = sh(RootFs::Dir(root.clone()), "true");
    spec.mounts.push(BindMount {
        source: cache.path().into(),
        target: "/etc/solum/cache".into(),
        read_only: false,
        work: None,
    });
    let err = runtime::run(&spec, Path::new(PROBE), |_| {}).unwrap_err();
    let msg = runtime::process::chain(&err);
    assert!(msg.contains("symbolic links"), "{msg}");
    assert!(
        names(outside.path()).is_empty(),
        "{:?}",
        names(outside.path())
    );
}

/// B06 (inside): the writable `/solum/cache` bind is `nosuid,nodev`, so a setuid file a
/// build leaves there elevates nothing, in this sandbox or the next.
#[test]
fn hostile_cache_bind_is_nosuid_and_nodev() {
    let cache = tempfile::tempdir().unwrap();
    let ovl = Overlay::new();
    let mut spec = sh(
        ovl.rootfs(),
        "awk '$5 == \"/solum/cache\" { print $6 }' /proc/self/mountinfo",
    );
    spec.mounts.push(BindMount {
        source: cache.path().into(),
        target: "/solum/cache".into(),
        read_only: false,
        work: None,
    });
    let r = run(&spec);
    assert!(r.outcome.success(), "{}", r.stderr);
    let opts: Vec<&str> = r.stdout.trim().split(',').collect();
    assert!(
        opts.contains(&"rw") && opts.contains(&"nosuid") && opts.contains(&"nodev"),
        "{}",
        r.stdout
    );
}

/// W15: the sandbox's mountinfo showed the host paths of the store (overlay's lowerdir,
/// upperdir, workdir options) and of the bound cache folder (a bind's root field). Overlay
/// layers are named through short links now, and a writable cache with a work folder is an
/// overlay over it: none of those host paths shows, and the cache still writes through.
#[test]
fn mountinfo_shows_no_host_paths_of_the_layers_or_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir_in(cache.path().parent().unwrap()).unwrap();
    let ovl = Overlay::new();
    let mut spec = sh(
        ovl.rootfs(),
        "cat /proc/self/mountinfo; echo kept > /solum/cache/f; mkdir -p /solum/cache/d/e; \
         mv /solum/cache/d /solum/cache/d2; rm -r /solum/cache/old",
    );
    std::fs::create_dir_all(cache.path().join("old/x")).unwrap();
    spec.mounts.push(BindMount {
        source: cache.path().into(),
        target: "/solum/cache".into(),
        read_only: false,
        work: Some(work.path().into()),
    });
    let r = run(&spec);
    assert!(r.outcome.success(), "{}", r.stderr);
    let cache_line = r
        .stdout
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/solum/cache"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        cache_line.contains("nosuid") && cache_line.contains("nodev"),
        "{cache_line}"
    );
    for host in [rootfs(), ovl.dir.path(), cache.path(), work.path()] {
        let host = host.to_string_lossy();
        assert!(!r.stdout.contains(&*host), "{host} shows in\n{}", r.stdout);
    }
    assert_eq!(
        std::fs::read_to_string(cache.path().join("f")).unwrap(),
        "kept\n"
    );
    assert!(cache.path().join("d2/e").is_dir());
    assert!(!cache.path().join("old").exists());
    // Overlay's mode-000 scratch is not left in the work folder.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

/// A read-only bind of a host tree (the host's `/sys`, with the host network) had its
/// submounts remounted read-only by their paths in mountinfo, decoding `\040` only and
/// reading the file as UTF-8: an image whose `/sys` led to a folder named with a tab, a
/// newline, a backslash or a non-UTF-8 byte kept every mount below it (the host's cgroup
/// v1 hierarchies) read-write in the sandbox, and a root build made cgroups on the host.
/// Every mount below the bind is read-only now.
#[test]
fn hostile_sys_symlink_to_an_oddly_named_folder_leaves_no_host_mount_writable() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    // The folder's name, and how the sandbox's mountinfo shows it (read lossily).
    let cases: [(&[u8], &str); 4] = [
        (b"s\tx", r"/s\011x/"),
        (b"s\nx", r"/s\012x/"),
        (b"s\\x", r"/s\134x/"),
        (b"s\xffx", "/s\u{fffd}x/"),
    ];
    for (name, shown) in cases {
        let dir = root_copy();
        let root = dir.path().join("root");
        std::fs::create_dir(root.join(OsStr::from_bytes(name))).unwrap();
        let target = [b"/", name].concat();
        std::os::unix::fs::symlink(OsStr::from_bytes(&target), root.join("sys")).unwrap();
        let mut spec = sh(RootFs::Dir(root.clone()), "cat /proc/self/mountinfo");
        spec.network = Network::Host;
        let r = run(&spec);
        assert!(r.outcome.success(), "{shown}: {}", r.stderr);
        let writable: Vec<&str> = r
            .stdout
            .lines()
            .filter(|l| {
                let fields: Vec<&str> = l.split(' ').collect();
                fields.len() > 5 && fields[4].starts_with(shown) && !fields[5].starts_with("ro")
            })
            .collect();
        assert!(
            writable.is_empty(),
            "{shown}: writable below /sys:\n{writable:#?}"
        );
    }
}

#[test]
fn all_of_this_also_passes_as_an_unprivileged_user() {
    rerun_as_tester();
}
