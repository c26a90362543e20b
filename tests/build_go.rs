//! Issue 13, item 1, the go badger: testdata/apps/go-web (net/http and a module vendored
//! from Debian's golang-github-google-uuid-dev) builds offline with -mod=vendor into a
//! static /app/bin/go-web, its `go test` passes in the gate, the DU runs as 1000:1000 and
//! serves HTTP on PORT (`solum-build run --network host`, and `podman run` as root), and a
//! second build gives the same digest. Without vendor/ and without network the build fails
//! at once saying how to vendor; an app file naming no badger gets this one from go.mod.
//! Needs the debian-golang root filesystem (`scripts/make-base-images.sh --only
//! debian-golang --no-import`, which the test command runs first). As root and again as
//! `tester`.
//!
//! Not here yet: the dependency layer reused on a code change and rebuilt on a go.sum
//! change, which need the dependency step in the build pipeline.

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

    // Without a badger in the app file, go.mod chooses this one.
    let text = std::fs::read_to_string(&app).unwrap();
    let auto = text
        .replace("languagepack: go\n", "")
        .replace("name: go-web", "name: go-auto");
    let auto_file = dir.path().join("go-web/auto.yaml");
    std::fs::write(&auto_file, auto).unwrap();
    let built = Cmd::solum(&store).arg("build").arg(&auto_file).run().ok();
    assert!(
        built
            .stderr
            .contains("badger: auto chose go (go.mod found)"),
        "{}",
        built.text()
    );

    // No vendor/ and no network: GOPROXY=off, a clear message, no waiting.
    std::fs::remove_dir_all(dir.path().join("go-web/vendor")).unwrap();
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&app)
        .run()
        .fails_with(1);
    assert!(
        failed
            .stderr
            .contains("go.mod requires modules, there is no vendor/ and the build has no network"),
        "{}",
        failed.text()
    );
    assert!(
        failed
            .stderr
            .contains("vendor them in the source (go mod vendor)"),
        "{}",
        failed.text()
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
