//! Issue 13, items 1 and 2, on busybox: the static badger serves a folder of web files
//! (an index.html at the top, or a public/ folder) with busybox httpd on PORT when the app
//! file gives no run command, as 1000:1000, under `solum-build run --network host` and (as
//! root) `podman run`, and builds again to the same digest, while ready-made binaries keep
//! working (tests/build.rs); and `badger: auto` with the real shipped badgers: a site is
//! detected as static, an unknown tree lists what was looked for, a symlinked index.html
//! does not count, an app file naming no badger is auto, `badger search` finds a badger by
//! its detect file. As root and again as `tester`.

mod support;

use std::path::Path;
use support::apps::*;
use support::*;

/// A site folder `dir/NAME` with `files` (path, contents), and its app file.
fn site(dir: &Path, name: &str, badger_line: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let source = dir.join(name);
    for (path, contents) in files {
        let path = source.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!("version: 1\nname: {name}\n{badger_line}source:\n  repository: ./{name}\nports: [8080]\n"),
    )
    .unwrap();
    file
}

#[test]
fn a_folder_of_web_files_is_served_on_port() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell", "static"]);

    let files = [
        ("index.html", "<h1>hello from the site</h1>\n"),
        ("style.css", "h1 { color: teal }\n"),
    ];
    let app = site(dir.path(), "site", "languagepack: static\n", &files);
    // Built twice (the second with no cache): the same DU.
    build_twice_same_digest(
        &store,
        &app,
        "without run_cmd the DU serves /app with busybox httpd",
    );
    serves_on_port(dir.path(), &store, "site", "", "hello from the site");
    serves_on_port(dir.path(), &store, "site", "style.css", "color: teal");
    let user = Cmd::solum(&store)
        .args(["run", "site", "--", "sh", "-c", "id -u; id -g"])
        .run()
        .ok();
    assert_eq!(user.stdout, "1000\n1000\n");

    // public/ is the site when there is one; the app file names no badger: auto.
    let files = [
        ("public/index.html", "<p>from public</p>\n"),
        ("README.md", "not served\n"),
    ];
    let app = site(dir.path(), "public-site", "", &files);
    let built = Cmd::solum(&store).arg("build").arg(&app).run().ok();
    assert!(
        built
            .stderr
            .contains("badger: auto chose static (public/index.html found)"),
        "{}",
        built.text()
    );
    serves_on_port(dir.path(), &store, "public-site", "", "from public");
}

#[test]
fn auto_detection_with_the_shipped_badgers() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell", "static"]);

    // Nothing marks a language: the build fails listing what was looked for.
    let app = site(
        dir.path(),
        "unknown",
        "badger: auto\n",
        &[("main.c", "int main;\n")],
    );
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&app)
        .run()
        .fails_with(2);
    let wanted = "badger \"auto\": no badger's detect rule matches the source; looked for (in \
                  this order): static (index.html, public/index.html); shipped badgers not in \
                  the store (make one with `solum-build badger build badgers/NAME`): badgers/go, \
                  badgers/java, badgers/nodejs, badgers/php, badgers/python, badgers/ruby; name \
                  the badger in the app file";
    assert!(failed.stderr.contains(wanted), "{}", failed.text());

    // A symlink named index.html, out of the source, marks nothing.
    let app = site(dir.path(), "linked", "", &[("main.c", "int main;\n")]);
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("linked/index.html")).unwrap();
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&app)
        .run()
        .fails_with(2);
    assert!(
        failed.stderr.contains("no badger's detect rule matches"),
        "{}",
        failed.text()
    );

    // `badger search` finds a badger by the file that marks its language.
    let found = Cmd::solum(&store)
        .args(["badger", "search", "index.html"])
        .run()
        .ok();
    assert!(found.stdout.contains("static"), "{}", found.text());
    assert!(!found.stdout.contains("shell"), "{}", found.text());
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
