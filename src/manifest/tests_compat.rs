//! Solum v1 app-file compatibility: `test_cmd: ''` is "no tests" (and `--test-cmd`
//! replaces it), `build_cmd` beside the other commands, `PORT` from the first port, and
//! `deploy` among the trigger actions.

use super::du::{BadgerUsed, DuInputs};
use super::*;

const SOLUM_NO_TESTS: &str = "version: 1\nname: web\nlanguagepack: python\n\
    source: {repository: ./}\nworkflow_config:\n  run_cmd: python app.py\n  test_cmd: ''\n\
    trigger_actions: [unittest, build, deploy]\nports: [8080, 9090]\n";

#[test]
fn an_empty_test_cmd_means_no_tests() {
    let app = AppFile::parse(SOLUM_NO_TESTS, "app.yaml").unwrap();
    assert_eq!(app.workflow_config.test_cmd.as_deref(), Some(""));
    assert_eq!(app.workflow_config.tests(), None);
    assert!(app.workflow_config.says_no_tests());
    assert!(app.asks_deploy());

    let overridden = AppFile::parse_with(
        SOLUM_NO_TESTS,
        "app.yaml",
        &Overrides {
            test_cmd: Some("./unit_tests.sh".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(overridden.workflow_config.tests(), Some("./unit_tests.sh"));
    assert!(!overridden.workflow_config.says_no_tests());

    let full =
        "name: a\nbadger: b\nsource: {repository: ./}\nworkflow_config: {test_cmd: make check}\n";
    let emptied = AppFile::parse_with(
        full,
        "app.yaml",
        &Overrides {
            test_cmd: Some(String::new()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert!(emptied.workflow_config.says_no_tests());
    assert!(!AppFile::parse(full, "app.yaml").unwrap().asks_deploy());
}

#[test]
fn build_cmd_is_read_and_may_not_be_empty() {
    let text = "name: a\nbadger: b\nsource: {repository: ./}\n\
        workflow_config: {build_cmd: python manage.py collectstatic}\n";
    let app = AppFile::parse(text, "app.yaml").unwrap();
    assert_eq!(
        app.workflow_config.build_cmd.as_deref(),
        Some("python manage.py collectstatic")
    );
    let flag = AppFile::parse_with(
        text,
        "app.yaml",
        &Overrides {
            build_cmd: Some("make assets".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(
        flag.workflow_config.build_cmd.as_deref(),
        Some("make assets")
    );

    let empty = "name: a\nbadger: b\nsource: {repository: ./}\nworkflow_config: {build_cmd: ''}\n";
    let err = AppFile::parse(empty, "app.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "app.yaml:4:30: workflow_config.build_cmd: must not be empty"
    );
}

#[test]
fn port_comes_from_the_first_port_unless_the_environment_sets_it() {
    let app = AppFile::parse(SOLUM_NO_TESTS, "app.yaml").unwrap();
    assert_eq!(app.run_environment()["PORT"], "8080");
    assert!(
        !app.environment.contains_key("PORT"),
        "the file is kept as written"
    );

    let own = AppFile::parse_with(
        SOLUM_NO_TESTS,
        "app.yaml",
        &Overrides {
            environment: vec![("PORT".into(), "5000".into())],
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(own.run_environment()["PORT"], "5000");

    let portless = "name: a\nbadger: b\nsource: {repository: ./}\n";
    let app = AppFile::parse(portless, "app.yaml").unwrap();
    assert!(!app.run_environment().contains_key("PORT"));
}

#[test]
fn the_du_has_port_in_its_environment_and_heat_and_no_empty_tests() {
    let app = AppFile::parse(SOLUM_NO_TESTS, "app.yaml").unwrap();
    let du = DuManifest::new(&DuInputs {
        app: &app,
        badgers: vec![BadgerUsed {
            name: "python3".into(),
            version: "3.11".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
        }],
        badger_environment: std::collections::BTreeMap::default(),
        default_command: Vec::new(),
        revision: None,
        image: "web",
        tests_passed: true,
    })
    .unwrap();
    assert_eq!(du.environment["PORT"], "8080");
    assert!(du.heat.contains("PORT: \"8080\""), "{}", du.heat);
    assert_eq!(
        du.tests, None,
        "an empty test_cmd is no tests, not a test named ''"
    );
}
