//! Issue 13, item 1 on the ruby badger: testdata/apps/ruby-web (a Rack app on WEBrick; rack,
//! webrick and minitest are Debian's, installed system-wide in the badger; the app's own gem
//! is vendored in vendor/cache) builds with no network, its minitest tests pass in the gate,
//! the DU serves HTTP on PORT under `solum-build run --network host` and under podman, a
//! second build gives the same digest, a one-line change is served and a Gemfile its lock
//! disagrees with fails the build. As root and again as `tester`. The one-line change builds
//! on the dependency layer of the build before (`check_app`).

mod support;

use support::lang_app::*;
use support::*;

#[test]
fn ruby_web_builds_offline_passes_its_tests_and_serves_http() {
    let app = LangApp::new("ruby", "ruby-web");
    let built = check_app(
        &app,
        "3 runs, 4 assertions, 0 failures, 0 errors",
        "hello ruby from the ruby DU",
        ("app.rb", "\"ruby\")", "\"rubyist\")"),
        "hello rubyist from the ruby DU",
    );
    assert!(
        built
            .stderr
            .contains("installing the Gemfile offline from vendor/cache"),
        "{}",
        built.text()
    );

    // A Gemfile its lock disagrees with: the frozen install fails rather than resolving anew.
    app.edit(
        "Gemfile",
        "gem \"webrick\"",
        "gem \"rake\"\ngem \"webrick\"",
    );
    let failed = Cmd::solum(&app.store)
        .arg("build")
        .arg(app.source.join("ruby-web.yaml"))
        .run()
        .fails_with(1);
    assert!(
        failed.stderr.contains("You have added to the Gemfile:"),
        "{}",
        failed.text()
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
