//! Tests of `diff` and `copy` on hand-made trees: the rules of each diff one at a time. The
//! two diffs of real builds (overlay mounts, the sandbox) are compared in
//! `tests/diff_equivalence.rs`.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use super::tests::{is_root, Shared};
use super::*;

fn set_mtime(path: &Path, secs: i64, nsec: i64) {
    let time = nix::sys::time::TimeSpec::new(secs, nsec);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

fn add(p: &str) -> Change {
    Change::Add(p.into())
}

fn whiteout(p: &str) -> Change {
    Change::Whiteout(p.into())
}

fn opaque(p: &str) -> Change {
    Change::Opaque(p.into())
}

fn sorted(mut list: Vec<Change>) -> Vec<Change> {
    sort_changes(&mut list);
    list
}

/// A base tree and a copy of it to change.
fn base_and_copy(t: &Path, make: impl Fn(&Path)) -> (std::path::PathBuf, std::path::PathBuf) {
    let base = t.join("base");
    fs::create_dir(&base).unwrap();
    make(&base);
    let copy = t.join("copy");
    copy_tree(&base, &copy, crate::privilege::Privilege::of_this_process()).unwrap();
    (base, copy)
}

#[test]
fn an_untouched_copy_has_no_changes_and_keeps_metadata() {
    let t = tempfile::tempdir().unwrap();
    let (base, copy) = base_and_copy(t.path(), |b| {
        fs::create_dir_all(b.join("d/e")).unwrap();
        fs::write(b.join("d/e/f"), b"f").unwrap();
        fs::write(b.join("suid"), b"s").unwrap();
        fs::set_permissions(b.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::write(b.join("a"), b"linked").unwrap();
        fs::hard_link(b.join("a"), b.join("b")).unwrap();
        symlink("d/e/f", b.join("link")).unwrap();
        nix::unistd::mkfifo(
            &b.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o640),
        )
        .unwrap();
        xattr::set(b.join("d/e/f"), "user.note", b"v").unwrap();
        fs::set_permissions(b.join("d/e"), fs::Permissions::from_mode(0o555)).unwrap();
        set_mtime(&b.join("d/e/f"), 1_000_000_000, 123_456_789);
        set_mtime(&b.join("link"), 1_000_000_001, 5);
    });
    assert_eq!(walk_changes(&base, &copy).unwrap(), Vec::<Change>::new());
    let f = fs::symlink_metadata(copy.join("d/e/f")).unwrap();
    assert_eq!((f.mtime(), f.mtime_nsec()), (1_000_000_000, 123_456_789));
    assert_eq!(
        xattr::get(copy.join("d/e/f"), "user.note").unwrap(),
        Some(b"v".to_vec())
    );
    let suid = fs::symlink_metadata(copy.join("suid")).unwrap();
    assert_eq!(suid.mode() & 0o7777, 0o4755);
    assert_eq!(
        fs::symlink_metadata(copy.join("d/e")).unwrap().mode() & 0o7777,
        0o555
    );
    // Hard links are not kept, as overlay's copy-up does not keep them.
    let a = fs::symlink_metadata(copy.join("a")).unwrap();
    assert_eq!(a.nlink(), 1);
    fs::set_permissions(copy.join("d/e"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn walk_finds_metadata_changes_and_adds_parents() {
    let t = tempfile::tempdir().unwrap();
    let (base, copy) = base_and_copy(t.path(), |b| {
        fs::create_dir_all(b.join("x/y")).unwrap();
        for f in ["x/y/mode", "x/y/xattr", "x/y/owner", "x/y/same", "x/y/time"] {
            fs::write(b.join(f), b"0123").unwrap();
        }
        symlink("old", b.join("x/link")).unwrap();
    });
    fs::set_permissions(copy.join("x/y/mode"), fs::Permissions::from_mode(0o600)).unwrap();
    xattr::set(copy.join("x/y/xattr"), "user.new", b"1").unwrap();
    // The rootless ownership record: an owner change of a rootless tree.
    let owner = RootlessOwner { uid: 33, gid: 33 }.encode().unwrap();
    xattr::set(copy.join("x/y/owner"), ROOTLESS_XATTR, &owner).unwrap();
    let stat = fs::symlink_metadata(copy.join("x/y/time")).unwrap();
    set_mtime(&copy.join("x/y/time"), stat.mtime(), stat.mtime_nsec() + 1);
    // Same size, mtime put back: unchanged by the size+mtime rule, content not read.
    let same = fs::symlink_metadata(copy.join("x/y/same")).unwrap();
    fs::write(copy.join("x/y/same"), b"3210").unwrap();
    set_mtime(&copy.join("x/y/same"), same.mtime(), same.mtime_nsec());
    fs::remove_file(copy.join("x/link")).unwrap();
    symlink("new", copy.join("x/link")).unwrap();
    // Put the directories' times back: only the children changed.
    for dir in ["x", "x/y"] {
        let before = fs::symlink_metadata(base.join(dir)).unwrap();
        set_mtime(&copy.join(dir), before.mtime(), before.mtime_nsec());
    }
    assert_eq!(
        walk_changes(&base, &copy).unwrap(),
        sorted(vec![
            add("x"),
            add("x/link"),
            add("x/y"),
            add("x/y/mode"),
            add("x/y/owner"),
            add("x/y/time"),
            add("x/y/xattr"),
        ])
    );
}

#[test]
fn walk_whites_out_only_the_top_of_a_deleted_tree() {
    let t = tempfile::tempdir().unwrap();
    let (base, copy) = base_and_copy(t.path(), |b| {
        fs::create_dir_all(b.join("keep/gone/deeper")).unwrap();
        fs::write(b.join("keep/gone/deeper/f"), b"f").unwrap();
        fs::write(b.join("keep/stays"), b"s").unwrap();
    });
    fs::remove_dir_all(copy.join("keep/gone")).unwrap();
    assert_eq!(
        walk_changes(&base, &copy).unwrap(),
        sorted(vec![add("keep"), whiteout("keep/gone")])
    );
}

#[test]
fn walk_opaque_rule_needs_every_lower_child_gone_and_new_ones() {
    let t = tempfile::tempdir().unwrap();
    let (base, copy) = base_and_copy(t.path(), |b| {
        for d in ["refilled", "emptied", "partly", "was-empty"] {
            fs::create_dir(b.join(d)).unwrap();
        }
        for f in ["refilled/old", "emptied/old", "partly/old", "partly/kept"] {
            fs::write(b.join(f), b"old").unwrap();
        }
    });
    fs::remove_dir_all(copy.join("refilled")).unwrap();
    fs::create_dir(copy.join("refilled")).unwrap();
    fs::write(copy.join("refilled/new"), b"new").unwrap();
    fs::remove_file(copy.join("emptied/old")).unwrap();
    fs::remove_file(copy.join("partly/old")).unwrap();
    fs::write(copy.join("partly/new"), b"new").unwrap();
    fs::write(copy.join("was-empty/new"), b"new").unwrap();
    assert_eq!(
        walk_changes(&base, &copy).unwrap(),
        sorted(vec![
            add("emptied"),
            whiteout("emptied/old"),
            add("partly"),
            add("partly/new"),
            whiteout("partly/old"),
            opaque("refilled"),
            add("refilled"),
            add("refilled/new"),
            add("was-empty"),
            add("was-empty/new"),
        ])
    );
}

#[test]
fn walk_adds_every_name_of_a_newly_linked_base_file() {
    let t = tempfile::tempdir().unwrap();
    let (base, copy) = base_and_copy(t.path(), |b| {
        fs::create_dir(b.join("lib")).unwrap();
        fs::write(b.join("lib/original"), b"o").unwrap();
        fs::create_dir(b.join("bin")).unwrap();
    });
    fs::hard_link(copy.join("lib/original"), copy.join("bin/alias")).unwrap();
    let lib = fs::symlink_metadata(base.join("lib")).unwrap();
    set_mtime(&copy.join("lib"), lib.mtime(), lib.mtime_nsec());
    assert_eq!(
        walk_changes(&base, &copy).unwrap(),
        sorted(vec![
            add("bin"),
            add("bin/alias"),
            add("lib"),
            add("lib/original")
        ])
    );
}

#[test]
fn overlay_records_become_whiteouts_and_opaque_dirs() {
    let t = tempfile::tempdir().unwrap();
    let upper = t.path();
    fs::create_dir_all(upper.join("etc/opaque")).unwrap();
    fs::create_dir(upper.join("etc/not-opaque")).unwrap();
    fs::write(upper.join("etc/opaque/f"), b"f").unwrap();
    xattr::set(upper.join("etc/opaque"), "user.overlay.opaque", b"y").unwrap();
    // "x" marks a directory holding xattr whiteouts, not an opaque one.
    xattr::set(upper.join("etc/not-opaque"), "user.overlay.opaque", b"x").unwrap();
    fs::write(upper.join("etc/xattr-whiteout"), b"").unwrap();
    xattr::set(
        upper.join("etc/xattr-whiteout"),
        "user.overlay.whiteout",
        b"",
    )
    .unwrap();
    xattr::set(upper.join("etc"), "user.overlay.impure", b"y").unwrap();
    let mut expected = vec![
        add("etc"),
        add("etc/not-opaque"),
        opaque("etc/opaque"),
        add("etc/opaque"),
        add("etc/opaque/f"),
        whiteout("etc/xattr-whiteout"),
    ];
    if is_root() {
        // The kernel's whiteout: a 0/0 character device (rootless overlay makes these
        // too, but an unprivileged test cannot mknod one outside a user namespace).
        nix::sys::stat::mknod(
            &upper.join("etc/deleted"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        expected.push(whiteout("etc/deleted"));
    }
    let changes = overlay_changes(upper).unwrap();
    assert_eq!(changes, sorted(expected));
    // overlay's own xattrs stay out of the layer.
    let out = Shared::default();
    let options = WriteOptions {
        compression: LayerCompression::None,
        epoch: Some(0),
        rootless: !is_root(),
        subordinate_ids: None,
    };
    write_changes(upper, changes, &options, out.clone()).unwrap();
    let bytes = out.bytes();
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        names.push(entry.path().unwrap().to_string_lossy().into_owned());
        if let Some(extensions) = entry.pax_extensions().unwrap() {
            for ext in extensions {
                let key = ext.unwrap().key().unwrap().to_string();
                assert!(!key.contains("overlay"), "{key} reached the layer");
            }
        }
    }
    assert!(names.contains(&"etc/opaque/.wh..wh..opq".to_string()));
    assert!(names.contains(&"etc/.wh.xattr-whiteout".to_string()));
}

/// Issue 10 W01: a file the build named `.wh.*` is refused by both diffs, naming it (it
/// would be read back as a whiteout).
#[test]
fn files_named_like_whiteouts_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let upper = t.path().join("upper");
    fs::create_dir_all(upper.join("app")).unwrap();
    fs::write(upper.join("app/.wh.foo"), "not a whiteout").unwrap();
    let error = overlay_changes(&upper).unwrap_err();
    assert!(
        matches!(&error, LayerError::WhiteoutName { path } if path == Path::new("/app/.wh.foo")),
        "{error:?}"
    );
    assert!(error
        .to_string()
        .contains("/app/.wh.foo: a file name starting with `.wh.`"));

    let (base, copy) = base_and_copy(t.path(), |root| fs::create_dir(root.join("app")).unwrap());
    fs::write(copy.join("app/.wh.foo"), "").unwrap();
    let error = walk_changes(&base, &copy).unwrap_err();
    assert!(error.to_string().contains("/app/.wh.foo"), "{error}");
    // `import` of such a tree is refused the same way.
    let options = WriteOptions {
        compression: LayerCompression::None,
        epoch: None,
        rootless: !is_root(),
        subordinate_ids: None,
    };
    let error = write_tree(&copy, &options, std::io::sink()).unwrap_err();
    assert!(error.to_string().contains("/app/.wh.foo"), "{error}");
    // An ordinary name that merely contains `.wh.` is fine.
    fs::remove_file(copy.join("app/.wh.foo")).unwrap();
    fs::write(copy.join("app/x.wh.foo"), "").unwrap();
    assert!(walk_changes(&base, &copy).is_ok());
}
