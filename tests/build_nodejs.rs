//! Issue 13, item 1, the nodejs badger: testdata/apps/node-web (polka from a vendored
//! npm-cache/, a build script with a dev dependency) builds with no network, its tests
//! pass in the gate, the dev dependency is pruned, the DU runs as 1000:1000 and serves HTTP
//! on PORT (`solum-build run --network host`, and `podman run` as root), and a second
//! build gives the same digest. An app file naming no badger gets the nodejs badger from
//! package.json. Needs the debian-nodejs root filesystem
//! (`scripts/make-base-images.sh --only debian-nodejs --no-import`, which the test command
//! runs first). As root and again as `tester`.
//! A one-line code change builds on the dependency layer of the build before (its rebuild
//! on a changed lockfile is tested with the python app and in build_deps).

mod support;

use support::apps::*;
use support::*;

#[test]
fn node_web_builds_offline_tests_and_serves_on_port() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    store_with_debian_badger(&store, "debian-nodejs", "nodejs");
    let app = copy_app(dir.path(), "node-web");
    let digest = build_twice_same_digest(&store, &app, "node-web tests passed");
    assert!(digest.starts_with("sha256:"), "{digest}");

    let listing = Cmd::solum(&store)
        .args(["run", "node-web", "--", "sh", "-c"])
        .arg("ls /app/node_modules; id -u; id -g; cat /app/build-info.json")
        .run()
        .ok();
    assert!(listing.stdout.contains("polka\n"), "{}", listing.text());
    assert!(
        !listing.stdout.contains("is-number"),
        "the dev dependency reached the DU: {}",
        listing.text()
    );
    assert!(
        listing.stdout.contains("1000\n1000\n{\"routes\":2}"),
        "{}",
        listing.text()
    );
    serves_on_port(dir.path(), &store, "node-web", "", "hello from node-web");
    serves_on_port(
        dir.path(),
        &store,
        "node-web",
        "greet/solum",
        "\"greeting\":\"hello solum\"",
    );

    // A one-line code change builds on the dependency layer of the build before.
    code_change_reuses_dependency_layer(
        &store,
        &app,
        "node-web",
        (
            "app.js",
            "// The app's routes",
            "// The app's routes (changed)",
        ),
    );

    // Without a badger in the app file, package.json chooses this one.
    builds_as_auto(&store, &app, "node-auto", "nodejs (package.json found)");

    // Without the vendored cache and without network, npm fails at once and says how to
    // vendor (a fresh app name: the app's own npm cache is empty).
    std::fs::remove_dir_all(dir.path().join("node-web/npm-cache")).unwrap();
    let text = std::fs::read_to_string(&app)
        .unwrap()
        .replace("name: node-web", "name: node-uncached");
    std::fs::write(&app, text).unwrap();
    build_fails_saying(
        &store,
        &app,
        &["vendor npm's cache in the source: npm install --cache ./npm-cache"],
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
