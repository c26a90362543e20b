//! The snapshot diff by cases (add, change, delete, mode, symlink, hard link, replaced and
//! refilled folders, exclusions), and against `layer::walk_changes` on the same edits.

use super::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

fn rules(root: &Path) -> SnapshotRules {
    SnapshotRules::for_root(root, &[], &[])
}

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("etc/conf.d")).unwrap();
    fs::create_dir_all(root.join("usr/lib")).unwrap();
    fs::create_dir_all(root.join("var/cache/old")).unwrap();
    fs::write(root.join("etc/conf.d/a"), "a").unwrap();
    fs::write(root.join("etc/passwd"), "root").unwrap();
    fs::write(root.join("usr/lib/lib.so"), "elf").unwrap();
    fs::write(root.join("var/cache/old/x"), "x").unwrap();
    fs::write(root.join("var/cache/old/y"), "y").unwrap();
    symlink("lib", root.join("usr/lib64")).unwrap();
    dir
}

/// The changes `edit` makes to a fresh tree, as `(kind, path)` strings.
fn diff_of(edit: impl FnOnce(&Path)) -> Vec<String> {
    let dir = tree();
    let root = dir.path();
    let before = take(root, &rules(root)).unwrap();
    edit(root);
    let after = take(root, &rules(root)).unwrap();
    show(&changes(&before, &after))
}

fn show(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match c {
            Change::Add(p) => format!("add {}", p.display()),
            Change::Whiteout(p) => format!("whiteout {}", p.display()),
            Change::Opaque(p) => format!("opaque {}", p.display()),
        })
        .collect()
}

#[test]
fn nothing_done_is_no_change() {
    assert!(diff_of(|_| {}).is_empty());
}

#[test]
fn a_new_file_brings_its_parents() {
    let found = diff_of(|root| {
        fs::create_dir_all(root.join("app/public")).unwrap();
        fs::write(root.join("app/public/index.html"), "hi").unwrap();
    });
    assert_eq!(
        found,
        ["add app", "add app/public", "add app/public/index.html"]
    );
}

#[test]
fn a_changed_file_is_added_with_its_parents_only() {
    let found = diff_of(|root| fs::write(root.join("etc/conf.d/a"), "b").unwrap());
    assert_eq!(found, ["add etc", "add etc/conf.d", "add etc/conf.d/a"]);
}

#[test]
fn a_deleted_file_is_a_whiteout_and_a_deleted_folder_one_whiteout() {
    let found = diff_of(|root| {
        fs::remove_file(root.join("etc/passwd")).unwrap();
        fs::remove_dir_all(root.join("var/cache/old")).unwrap();
    });
    assert_eq!(
        found,
        [
            "add etc",
            "whiteout etc/passwd",
            "add var",
            "add var/cache",
            "whiteout var/cache/old"
        ]
    );
}

#[test]
fn a_mode_change_is_a_change() {
    let found = diff_of(|root| {
        fs::set_permissions(
            root.join("usr/lib/lib.so"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    });
    assert_eq!(found, ["add usr", "add usr/lib", "add usr/lib/lib.so"]);
}

#[test]
fn a_retargeted_symlink_is_a_change_and_no_symlink_is_followed() {
    let found = diff_of(|root| {
        fs::remove_file(root.join("usr/lib64")).unwrap();
        // Pointing out of the root: the walk must not go there.
        symlink("/etc", root.join("usr/lib64")).unwrap();
        symlink("/", root.join("escape")).unwrap();
    });
    assert_eq!(found, ["add escape", "add usr", "add usr/lib64"]);
}

#[test]
fn a_new_hard_link_brings_the_file_it_links() {
    let found = diff_of(|root| {
        fs::hard_link(root.join("usr/lib/lib.so"), root.join("usr/lib/lib.so.1")).unwrap();
    });
    // The old name's link count (and ctime) moved: overlay copies it up as well.
    assert_eq!(
        found,
        [
            "add usr",
            "add usr/lib",
            "add usr/lib/lib.so",
            "add usr/lib/lib.so.1"
        ]
    );
}

#[test]
fn a_folder_made_where_a_file_was_is_opaque() {
    let found = diff_of(|root| {
        fs::remove_file(root.join("etc/passwd")).unwrap();
        fs::create_dir(root.join("etc/passwd")).unwrap();
        fs::write(root.join("etc/passwd/x"), "x").unwrap();
    });
    assert_eq!(
        found,
        [
            "add etc",
            "opaque etc/passwd",
            "add etc/passwd",
            "add etc/passwd/x"
        ]
    );
}

#[test]
fn a_folder_emptied_and_refilled_is_opaque_without_whiteouts() {
    let found = diff_of(|root| {
        fs::remove_dir_all(root.join("var/cache/old")).unwrap();
        fs::create_dir(root.join("var/cache/old")).unwrap();
        fs::write(root.join("var/cache/old/z"), "z").unwrap();
    });
    assert_eq!(
        found,
        [
            "add var",
            "add var/cache",
            "opaque var/cache/old",
            "add var/cache/old",
            "add var/cache/old/z"
        ]
    );
}

#[test]
fn excluded_paths_and_their_contents_are_no_change() {
    let dir = tree();
    let root = dir.path();
    fs::create_dir(root.join("tmp")).unwrap();
    let rules = SnapshotRules::for_root(root, &[root.join("tmp"), root.join("var/cache")], &[]);
    let before = take(root, &rules).unwrap();
    fs::write(root.join("tmp/scratch"), "s").unwrap();
    fs::remove_dir_all(root.join("var/cache/old")).unwrap();
    let after = take(root, &rules).unwrap();
    assert!(changes(&before, &after).is_empty());
}

#[test]
fn the_bounds_are_errors_that_name_them() {
    let dir = tree();
    let root = dir.path();
    let mut rules = rules(root);
    rules.max_entries = 3;
    let error = take(root, &rules).unwrap_err().to_string();
    assert!(error.contains("more than 3 entries"), "{error}");
    let mut rules = SnapshotRules::for_root(root, &[], &[]);
    rules.max_depth = 1;
    let error = take(root, &rules).unwrap_err().to_string();
    assert!(error.contains("deeper than 1"), "{error}");
}

/// A folder holding more names than the bound is refused naming the folder, while it
/// is listed (its names are not all gathered first).
#[test]
fn a_folder_of_more_names_than_the_bound_is_refused_while_listed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..50 {
        fs::write(root.join("many").join(format!("f{i}")), "").unwrap();
    }
    let mut rules = rules(root);
    rules.max_entries = 10;
    let error = take(root, &rules).unwrap_err().to_string();
    assert!(error.contains("more than 10 entries (at /many)"), "{error}");
}

#[test]
fn mountinfo_escapes_are_undone() {
    assert_eq!(unescape_octal(br"/a\040b\134c"), b"/a b\\c");
    assert_eq!(unescape_octal(br"/x\9"), br"/x\9");
}

/// The same edits, diffed by the snapshots and by the copy fallback's walk of a copy,
/// give the same list: both follow overlay's rules.
#[test]
fn the_snapshot_diff_agrees_with_the_walk_of_a_copy() {
    let dir = tree();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    for name in ["etc", "usr", "var"] {
        fs::rename(dir.path().join(name), root.join(name)).unwrap();
    }
    let lower = dir.path().join("lower");
    crate::layer::copy_tree(
        &root,
        &lower,
        crate::privilege::Privilege::of_this_process(),
    )
    .unwrap();
    let before = take(&root, &rules(&root)).unwrap();
    fs::write(root.join("etc/conf.d/a"), "changed").unwrap();
    fs::remove_file(root.join("etc/passwd")).unwrap();
    fs::remove_dir_all(root.join("var/cache/old")).unwrap();
    fs::create_dir(root.join("var/cache/old")).unwrap();
    fs::write(root.join("var/cache/old/z"), "z").unwrap();
    fs::create_dir_all(root.join("app/public")).unwrap();
    fs::write(root.join("app/public/index.html"), "hi").unwrap();
    symlink("/etc/shadow", root.join("app/link")).unwrap();
    let after = take(&root, &rules(&root)).unwrap();
    let walked = crate::layer::walk_changes(&lower, &root).unwrap();
    assert_eq!(show(&changes(&before, &after)), show(&walked));
}

/// The diff's merge pass needs path order, which the threads' trees are put back in.
#[test]
fn a_snapshot_is_in_path_order() {
    let dir = tree();
    let root = dir.path();
    for name in ["a-b", "a", "a/b", "a.b", "z"] {
        fs::create_dir_all(root.join(name)).unwrap();
        fs::write(root.join(name).join("f"), "f").unwrap();
    }
    let snapshot = take(root, &rules(root)).unwrap();
    assert!(snapshot.len() > 10);
    assert!(
        snapshot.entries.windows(2).all(|w| w[0].0 < w[1].0),
        "{:?}",
        snapshot.entries.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
}
