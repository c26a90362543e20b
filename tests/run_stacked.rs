//! Issue 12, item 10: `run` of an image whose base is cached unpacks only the image's top
//! layer and stacks it as an overlay lower above the base's tree. The view must be the one
//! the flattened tree gives (compared file by file against `SOLUM_BUILD_NO_OVERLAY=1`,
//! which runs on the flattened tree), layers that cannot stack faithfully (whiteouts, a
//! parent that is a symlink below) are flattened as before, `gc` drops the top trees of
//! images no name reaches, and `gc --cache-max` bounds the cache, least recently used first.
//! The top layers are written by hand and appended with umoci (`umoci raw add-layer`), so
//! the layers have exactly the entries under test. As root and again as `tester`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::*;

/// One entry of a hand-made layer.
enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str, u32),
    Symlink(&'a str, &'a str),
}

/// An uncompressed tar of `entries`, in order, with fixed times and root owners.
fn layer_tar(path: &Path, entries: &[Entry]) {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::File(name, data, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, name, *data).unwrap();
            }
            Entry::Dir(name, mode) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                builder.append_data(&mut header, name, &[][..]).unwrap();
            }
            Entry::Symlink(name, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, name, target).unwrap();
            }
        }
    }
    std::fs::write(path, builder.into_inner().unwrap()).unwrap();
}

/// A store with `stkbase`: busybox plus directories whose modes a stacked layer must keep
/// (a sticky `srv/shared`, a `0750` `etc/conf.d`) and Debian's merged-usr `lib` symlink.
fn store_with_base(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    let tree = dir.join("base");
    busybox_rootfs(&tree);
    std::fs::create_dir_all(tree.join("srv/shared")).unwrap();
    std::fs::set_permissions(
        tree.join("srv/shared"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    std::fs::create_dir_all(tree.join("etc/conf.d")).unwrap();
    std::fs::set_permissions(
        tree.join("etc/conf.d"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::write(tree.join("etc/conf.d/base.conf"), "base\n").unwrap();
    std::fs::create_dir_all(tree.join("usr/lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib", tree.join("lib")).unwrap();
    import_tree(&store, &tree, "stkbase");
    // The base's tree goes into the cache, as a build on it would put it there.
    Cmd::solum(&store)
        .args(["run", "stkbase", "--", "true"])
        .run()
        .ok();
    store
}

/// `stkbase` plus one hand-made layer, as `tag`.
fn add_layer(dir: &Path, store: &Path, tag: &str, entries: &[Entry]) {
    let tar = dir.join(format!("{tag}.tar"));
    layer_tar(&tar, entries);
    Cmd::program("umoci")
        .args(["raw", "add-layer", "--no-history", "--image"])
        .arg(format!("{}:stkbase", store.display()))
        .args(["--tag", tag])
        .arg(&tar)
        .run()
        .ok();
}

/// The trees of the rootfs cache (names without the dot-files beside them).
fn cached_trees(store: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.join("cache/rootfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

fn top_trees(store: &Path) -> Vec<String> {
    cached_trees(store)
        .into_iter()
        .filter(|n| n.starts_with("d-"))
        .collect()
}

/// Every path of the image's root filesystem with its type, mode, owner, mtime and size,
/// as the command sees it; the sandbox's own mounts (and the root, whose mtime their mount
/// points change) are left out.
fn view(store: &Path, image: &str, flattened: bool) -> Vec<String> {
    let mut cmd = Cmd::solum(store).args([
        "run",
        image,
        "--",
        "find",
        "/",
        "-xdev",
        "-exec",
        "stat",
        "-c",
        "%n %f %a %u %g %Y %s",
        "{}",
        "+",
    ]);
    if flattened {
        cmd = cmd.env("SOLUM_BUILD_NO_OVERLAY", "1");
    }
    let run = cmd.run().ok();
    let mounts = ["/", "/dev", "/proc", "/sys", "/tmp"];
    let mut lines: Vec<String> = run
        .stdout
        .lines()
        .filter(|line| !mounts.contains(&line.split(' ').next().unwrap_or_default()))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// A top layer with unlisted parents (existing below with their own modes, and new ones),
/// a listed directory, a new symlink and a file over a directory stacks, and the command
/// sees exactly what the flattened tree shows.
#[test]
fn a_stacked_top_layer_shows_what_the_flattened_tree_shows() {
    let dir = temp_dir();
    let store = store_with_base(dir.path());
    add_layer(
        dir.path(),
        &store,
        "stktop",
        &[
            Entry::File("srv/shared/new/deeper/file.txt", b"new\n", 0o644),
            Entry::File("etc/conf.d/top.conf", b"top\n", 0o600),
            Entry::Dir("root/", 0o700),
            Entry::File("root/.profile", b"export A=1\n", 0o644),
            Entry::Symlink("srv/current", "shared/new"),
            Entry::File("opt/tool/bin/run", b"#!/bin/sh\necho tool\n", 0o755),
        ],
    );
    let before = cached_trees(&store);
    let stacked = view(&store, "stktop", false);
    let added = top_trees(&store);
    assert_eq!(added.len(), 1, "one top tree: {:?}", cached_trees(&store));
    assert_eq!(
        cached_trees(&store).len(),
        before.len() + 1,
        "only the top tree was added: {:?}",
        cached_trees(&store)
    );
    let flattened = view(&store, "stktop", true);
    // Parents that neither the layer nor the base has are made at unpack time, by either
    // unpack (as tar makes them): their mtimes are left out of the comparison.
    let made_at_unpack = [
        "/opt",
        "/opt/tool",
        "/opt/tool/bin",
        "/srv/shared/new",
        "/srv/shared/new/deeper",
    ];
    let without_unpack_times = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                if made_at_unpack.contains(&fields[0]) {
                    let mut kept = fields.clone();
                    kept[5] = "-";
                    kept.join(" ")
                } else {
                    line
                }
            })
            .collect()
    };
    let (stacked, flattened) = (
        without_unpack_times(stacked),
        without_unpack_times(flattened),
    );
    let only_stacked: Vec<&String> = stacked.iter().filter(|l| !flattened.contains(l)).collect();
    let only_flattened: Vec<&String> = flattened.iter().filter(|l| !stacked.contains(l)).collect();
    assert!(
        only_stacked.is_empty() && only_flattened.is_empty(),
        "the stacked view differs from the flattened one:\nstacked only: {only_stacked:#?}\nflattened only: {only_flattened:#?}"
    );
    // The views are not empty of what matters.
    for needle in [
        "/srv/shared 43ff 1777 ",
        "/etc/conf.d 41e8 750 ",
        "/srv/shared/new/deeper/file.txt ",
        "/opt/tool/bin/run ",
    ] {
        assert!(
            stacked.iter().any(|l| l.starts_with(needle)),
            "{needle:?} is missing from\n{}",
            stacked.join("\n")
        );
    }
    Cmd::solum(&store)
        .args(["run", "stktop", "--", "/opt/tool/bin/run"])
        .run()
        .ok();
}

/// A DU on a badger on a base: the build stands on the base's tree and the badger's layer,
/// and the DU's first run adds only the DU's own layer; the cache then holds each layer
/// once (one flattened base, two layer trees), and the DU sees what its flattened tree shows.
#[test]
fn a_du_on_a_badger_stacks_every_layer_once() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    Cmd::solum(&store)
        .arg("build")
        .arg(repo_dir().join("examples/hello/app.yaml"))
        .args(["--tag", "hello"])
        .run()
        .ok();
    let stacked = view(&store, "hello", false);
    let trees = cached_trees(&store);
    assert_eq!(trees.len(), 3, "{trees:?}");
    assert_eq!(top_trees(&store).len(), 2, "{trees:?}");
    let flattened = view(&store, "hello", true);
    assert_eq!(
        stacked
            .iter()
            .filter(|l| !flattened.contains(l))
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "the stacked view differs from the flattened one"
    );
    assert_eq!(stacked.len(), flattened.len());
    let hello = Cmd::solum(&store).args(["run", "hello"]).run().ok();
    assert!(
        hello.stdout.contains("Hello from the hello DU"),
        "{}",
        hello.text()
    );
}

/// A layer with whiteouts, and one whose unlisted parent is a symlink below (`lib ->
/// usr/lib`, which the flattened unpack goes through), do not stack: they are flattened,
/// and the command sees the deletion and the file under `usr/lib`.
#[test]
fn layers_that_cannot_stack_faithfully_are_flattened() {
    let dir = temp_dir();
    let store = store_with_base(dir.path());
    add_layer(
        dir.path(),
        &store,
        "stkwhiteout",
        &[Entry::File("etc/conf.d/.wh.base.conf", b"", 0o644)],
    );
    add_layer(
        dir.path(),
        &store,
        "stksymlink",
        &[Entry::File("lib/extra/module.so", b"module\n", 0o644)],
    );
    let listing = Cmd::solum(&store)
        .args(["run", "stkwhiteout", "--", "ls", "-a", "/etc/conf.d"])
        .run()
        .ok();
    assert!(!listing.stdout.contains("base.conf"), "{}", listing.text());
    let module = Cmd::solum(&store)
        .args(["run", "stksymlink", "--", "cat", "/usr/lib/extra/module.so"])
        .run()
        .ok();
    assert_eq!(module.stdout, "module\n");
    assert!(
        top_trees(&store).is_empty(),
        "no top tree for either: {:?}",
        cached_trees(&store)
    );
}

/// `gc` removes the top tree of an image no name reaches; the base's tree stays while
/// `stkbase` is named.
#[test]
fn gc_drops_top_trees_of_removed_images() {
    let dir = temp_dir();
    let store = store_with_base(dir.path());
    add_layer(
        dir.path(),
        &store,
        "stkgone",
        &[Entry::File("srv/shared/gone.txt", b"gone\n", 0o644)],
    );
    Cmd::solum(&store)
        .args(["run", "stkgone", "--", "cat", "/srv/shared/gone.txt"])
        .run()
        .ok();
    assert_eq!(top_trees(&store).len(), 1);
    Cmd::solum(&store).args(["gc"]).run().ok();
    assert_eq!(top_trees(&store).len(), 1, "named: kept");
    Cmd::solum(&store).args(["rmi", "stkgone"]).run().ok();
    Cmd::solum(&store).args(["gc"]).run().ok();
    assert!(top_trees(&store).is_empty(), "{:?}", cached_trees(&store));
    assert_eq!(cached_trees(&store).len(), 1, "{:?}", cached_trees(&store));
}

/// `gc --cache-max SIZE` trims the cache of unpacked trees, least recently used first: the
/// top tree goes with the tree below it, a run afterwards unpacks what it needs again, and
/// a size that is not one is refused with the form expected.
#[test]
fn gc_cache_max_bounds_the_cache_least_recently_used_first() {
    let dir = temp_dir();
    let store = store_with_base(dir.path());
    add_layer(
        dir.path(),
        &store,
        "stkbound",
        &[Entry::File("srv/shared/bound.txt", b"bound\n", 0o644)],
    );
    Cmd::solum(&store)
        .args(["run", "stkbound", "--", "true"])
        .run()
        .ok();
    assert_eq!(cached_trees(&store).len(), 2, "{:?}", cached_trees(&store));
    let trimmed = Cmd::solum(&store)
        .args(["gc", "--cache-max", "1k"])
        .run()
        .ok();
    assert!(trimmed.stderr.contains("Trimmed"), "{}", trimmed.text());
    assert!(
        cached_trees(&store).is_empty(),
        "{:?}",
        cached_trees(&store)
    );
    let again = Cmd::solum(&store)
        .args(["run", "stkbound", "--", "cat", "/srv/shared/bound.txt"])
        .run()
        .ok();
    assert_eq!(again.stdout, "bound\n");
    // A generous bound leaves the cache alone; so does the same bound from the environment.
    let before = cached_trees(&store);
    Cmd::solum(&store)
        .args(["gc", "--cache-max", "10g"])
        .run()
        .ok();
    Cmd::solum(&store)
        .arg("gc")
        .env("SOLUM_BUILD_CACHE_MAX", "10g")
        .run()
        .ok();
    assert_eq!(cached_trees(&store), before);
    let bad = Cmd::solum(&store)
        .args(["gc", "--cache-max", "lots"])
        .run()
        .fails_with(2);
    assert!(
        bad.stderr.contains("--cache-max \"lots\" is not a size"),
        "{}",
        bad.text()
    );
}

/// A `gc --cache-max` killed while it removes a tree leaves no partial tree under the
/// tree's name: the tree leaves its name before its files go, so the next run unpacks the
/// image again and sees every file (a partial tree was taken for the whole one, and a
/// stacked top tree cut short would show the files it replaces below it).
#[test]
fn a_cache_trim_cut_short_leaves_no_partial_tree() {
    const FILES: usize = 10_000;
    let dir = temp_dir();
    let store = dir.path().join("store");
    let tree = dir.path().join("many");
    busybox_rootfs(&tree);
    std::fs::create_dir(tree.join("data")).unwrap();
    for index in 0..FILES {
        std::fs::write(tree.join(format!("data/f{index:05}")), "x").unwrap();
    }
    import_tree(&store, &tree, "stkmany");
    let count = "ls /data | wc -l";
    let first = Cmd::solum(&store)
        .args(["run", "stkmany", "--", "sh", "-c", count])
        .run()
        .ok();
    assert_eq!(first.stdout.trim(), FILES.to_string());
    let [name] = &cached_trees(&store)[..] else {
        panic!("one tree: {:?}", cached_trees(&store));
    };
    let data = store.join("cache/rootfs").join(name).join("data");
    let mut gc = Cmd::solum(&store).args(["gc", "--cache-max", "1k"]).spawn();
    // Killed once the removal has begun: the named tree lost files, or its name.
    let entries = |path: &Path| std::fs::read_dir(path).map_or(0, Iterator::count);
    while data.exists() && entries(&data) >= FILES - 50 {
        assert!(
            gc.try_wait().unwrap().is_none(),
            "gc ended before it could be cut short"
        );
    }
    gc.kill().unwrap();
    gc.wait().unwrap();
    let after = Cmd::solum(&store)
        .args(["run", "stkmany", "--", "sh", "-c", count])
        .run()
        .ok();
    assert_eq!(
        after.stdout.trim(),
        FILES.to_string(),
        "a run after the killed gc: {}",
        after.text()
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
