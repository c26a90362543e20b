//! Issue 13, item 1 on the java badger: testdata/apps/java-web (the JDK's HTTP server, JUnit
//! 4 tests; every plugin and dependency from Debian's Maven repository) builds with no
//! network, its tests (`mvn test`) pass in the gate, the DU (`java -jar /app/app.jar`)
//! serves HTTP on PORT under `solum-build run --network host` and under podman, a second
//! build gives the same digest and a one-line change is served. As root and again as
//! `tester`. The one-line change builds on the dependency layer of the
//! build before (`check_app`).

mod support;

use support::lang_app::*;
use support::*;

#[test]
fn java_web_builds_offline_passes_its_tests_and_serves_http() {
    let app = LangApp::new("java", "java-web");
    let built = check_app(
        &app,
        "Tests run: 3, Failures: 0, Errors: 0, Skipped: 0",
        "hello java from the java DU",
        (
            "src/main/java/com/example/web/Main.java",
            "String name = \"java\";",
            "String name = \"duke\";",
        ),
        "hello duke from the java DU",
    );
    assert!(
        built
            .stderr
            .contains("target/java-web-1.0.jar is /app/app.jar"),
        "{}",
        built.text()
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
