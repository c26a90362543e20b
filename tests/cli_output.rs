//! Issue 11, item 4: a reader that stops early (`solum-build images | head -1`) ends the
//! command quietly with 141, as a shell reports SIGPIPE: no "Broken pipe" message, no panic.

mod support;

use std::process::{Command, Stdio};
use support::*;

/// Runs the binary with its stdout a pipe whose reading end is already closed, so the very
/// first line of results meets a broken pipe.
fn with_closed_stdout(store: &std::path::Path, args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(bin())
        .arg("--store")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

#[test]
fn a_closed_stdout_ends_the_listing_quietly_with_141() {
    let dir = temp_dir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/motd"), "hello\n").unwrap();
    let store = dir.path().join("store");
    for tag in ["one", "two", "three"] {
        import_tree(&store, &tree, tag);
    }
    for args in [&["images"][..], &["images", "--json"], &["inspect", "one"]] {
        let (code, stderr) = with_closed_stdout(&store, args);
        assert_eq!(code, 141, "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?} printed on stderr");
    }
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
