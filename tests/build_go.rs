//! Issue 13, item 1, the go badger: testdata/apps/go-web (net/http and a module vendored
//! from Debian's golang-github-google-uuid-dev) builds offline with -mod=vendor into a
//! static /app/bin/go-web, its `go test` passes in the gate, the DU runs as 1000:1000 and
//! serves HTTP on PORT (`solum-build run --network host`, and `podman run` as root), and a
//! second build gives the same digest. Without vendor/ and without network the build fails
//! at once saying how to vendor; an app file naming no badger gets this one from go.mod.
//! Needs the debian-golang root filesystem (`scripts/make-base-images.sh --only
//! debian-golang --no-import`, which the test command runs first). As root and again as
//! `tester`.
//! A one-line code change builds on the dependency layer of the build before (its rebuild
//! on a changed input is tested with the python app and in build_deps).

mod support;

use support::apps::*;
use support::*;

#[test]
fn go_web_builds_offline_static_tests_and_serves_on_port() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    store_with_debian_badger(&store, "debian-golang", "go");
    let app = copy_app(dir.path(), "go-web");
    build_twice_same_digest(&store, &app, "ok  \texample.com/go-web");

    // Static: no program interpreter in the ELF header (no PT_INTERP, so no ld-linux path).
    let check = Cmd::solum(&store)
        .args(["run", "go-web", "--", "sh", "-c"])
        .arg("grep -c ld-linux /app/bin/go-web; id -u; id -g; command -v go-web")
        .run();
    assert_eq!(
        check.stdout,
        "0\n1000\n1000\n/app/bin/go-web\n",
        "{}",
        check.text()
    );
    serves_on_port(dir.path(), &store, "go-web", "", "hello from go-web");
    // uuid.NewSHA1(NameSpaceURL, "solum"), from the vendored module.
    serves_on_port(dir.path(), &store, "go-web", "id/solum", "-5");

    // A one-line code change builds on the dependency layer of the build before.
    code_change_reuses_dependency_layer(
        &store,
        &app,
        "go-web",
        ("main.go", "package main", "package main // changed"),
    );

    // Without a badger in the app file, go.mod chooses this one.
    builds_as_auto(&store, &app, "go-auto", "go (go.mod found)");

    // No vendor/ and no network: GOPROXY=off, a clear message, no waiting.
    std::fs::remove_dir_all(dir.path().join("go-web/vendor")).unwrap();
    build_fails_saying(
        &store,
        &app,
        &[
            "go.mod requires modules, there is no vendor/ and the build has no network",
            "vendor them in the source (go mod vendor)",
        ],
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
