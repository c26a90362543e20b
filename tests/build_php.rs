//! Issue 13, item 1 on the php badger: testdata/apps/php-web (PHP's built-in web server,
//! started by the Procfile's `web` line; the app's own library is a Composer path package,
//! vendor/ committed) builds with no network, its tests (`php tests/run.php`) pass in the
//! gate, the DU serves HTTP on PORT under `solum-build run --network host` and under podman,
//! a second build gives the same digest and a one-line change is served. As root and again
//! as `tester`. The one-line change builds on the dependency layer of the
//! build before (`check_app`).

mod support;

use support::lang_app::*;
use support::*;

#[test]
fn php_web_builds_offline_passes_its_tests_and_serves_http() {
    let app = LangApp::new("php", "php-web");
    let built = check_app(
        &app,
        "php tests passed",
        "hello php from the php DU",
        ("src/Router.php", "?? 'php')", "?? 'elephant')"),
        "hello elephant from the php DU",
    );
    assert!(
        built
            .stderr
            .contains("installing composer.json from the committed vendor/"),
        "{}",
        built.text()
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
