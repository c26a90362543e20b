//! App-file tests against the fixtures in `testdata/apps/`: Solum v1 files accepted
//! unchanged, every field of the full file, and each kind of bad file with the exact
//! `file:line:column: field: problem` it must produce.

use std::path::PathBuf;

use super::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/apps")
        .join(name)
}

/// Load a fixture expected to fail and return its error lines.
fn errors_of(name: &str) -> (String, Vec<String>) {
    let path = fixture(name);
    let err = AppFile::load(&path).expect_err("fixture must be rejected");
    let origin = path.display().to_string();
    (
        origin,
        err.to_string().lines().map(str::to_string).collect(),
    )
}

#[test]
fn solum_v1_app_file_is_accepted_unchanged() {
    let app = AppFile::load(&fixture("solum-v1.yaml")).unwrap();
    assert_eq!(app.version, 1);
    assert_eq!(app.name, "cherrypy");
    assert_eq!(app.badger, "python3", "languagepack is the badger");
    assert_eq!(
        app.source.repository.as_deref(),
        Some("https://git.example.org/org/cherrypy.git")
    );
    assert_eq!(app.source.revision.as_deref(), Some("master"));
    assert_eq!(app.source.artifact, None);
    assert_eq!(
        app.workflow_config.run_cmd.as_deref(),
        Some("python app.py")
    );
    assert_eq!(
        app.workflow_config.test_cmd.as_deref(),
        Some("./unit_tests.sh")
    );
    assert_eq!(
        app.ports,
        vec![Port {
            port: 80,
            protocol: Protocol::Tcp,
            name: None
        }]
    );
    assert_eq!(app.security_flavor, SecurityFlavor::Restricted);
    assert_eq!(app.scaling_or_default(), Scaling { min: 1, max: 1 });
}

#[test]
fn solum_v1_trigger_actions_are_kept() {
    let app = AppFile::load(&fixture("solum-v1-triggers.yaml")).unwrap();
    assert_eq!(app.trigger_actions, ["unittest", "build", "deploy"]);
    assert_eq!(app.description.as_deref(), Some("python web app"));
    assert_eq!(app.badger, "python");
}

#[test]
fn full_app_file_reads_every_field() {
    let app = AppFile::load(&fixture("full.yaml")).unwrap();
    assert_eq!(app.name, "helloworld");
    assert_eq!(app.description.as_deref(), Some("a hello-world web app"));
    assert_eq!(app.badger, "badgers/python3:3.11");
    assert!(app.badgers.is_empty());
    assert_eq!(
        app.all_badgers().collect::<Vec<_>>(),
        ["badgers/python3:3.11"]
    );
    assert_eq!(app.source.repository.as_deref(), Some("./"));
    assert_eq!(app.source.revision.as_deref(), Some("main"));
    assert_eq!(
        app.workflow_config.test_cmd.as_deref(),
        Some("python3 -m pytest -q")
    );
    assert_eq!(
        app.ports,
        vec![
            Port {
                port: 8080,
                protocol: Protocol::Tcp,
                name: None
            },
            Port {
                port: 8443,
                protocol: Protocol::Tcp,
                name: Some("https".into())
            },
        ]
    );
    assert_eq!(
        app.environment.get("GREETING").map(String::as_str),
        Some("hello")
    );
    assert_eq!(
        app.services,
        vec![Service {
            name: "db".into(),
            kind: "postgresql".into()
        }]
    );
    assert_eq!(app.scaling, Some(Scaling { min: 1, max: 4 }));
    assert_eq!(app.url.as_deref(), Some("helloworld.example.org"));
    assert_eq!(app.flavor.as_deref(), Some("m1.small"));
    assert_eq!(
        app.extensions.get("x-team"),
        Some(&serde_json::json!({"owner": "web", "pager": false})),
        "x- keys are kept as written"
    );
}

#[test]
fn json_app_file_equals_its_yaml_twin() {
    let yaml = AppFile::load(&fixture("full.yaml")).unwrap();
    let json = AppFile::load(&fixture("full.json")).unwrap();
    assert_eq!(yaml, json);
}

#[test]
fn app_file_serde_round_trips() {
    let app = AppFile::load(&fixture("full.yaml")).unwrap();
    let text = serde_json::to_string(&app).unwrap();
    let back: AppFile = serde_json::from_str(&text).unwrap();
    assert_eq!(app, back);
    // The serialized form is itself a valid app file.
    assert_eq!(AppFile::parse(&text, "round-trip.json").unwrap(), app);
}

#[test]
fn unknown_field_names_the_field_and_its_line() {
    let (origin, lines) = errors_of("bad-unknown-field.yaml");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{origin}:6:3: source.revison: unknown field (expected one of: repository, revision, artifact")),
        "{}",
        lines[0]
    );
}

#[test]
fn bad_ports_name_each_port_with_line_and_column() {
    let (origin, lines) = errors_of("bad-port.yaml");
    assert_eq!(
        lines,
        [
            format!("{origin}:8:12: ports[1].port: 70000 is out of range 1..=65535"),
            format!("{origin}:9:26: ports[2].protocol: \"icmp\" is not one of: tcp, udp, sctp"),
        ]
    );
}

#[test]
fn bad_name_is_rejected_with_the_pattern() {
    let (origin, lines) = errors_of("bad-name.yaml");
    assert_eq!(
        lines,
        [format!(
            "{origin}:2:7: name: \"Cherry.Py\" does not match ^[a-z][a-z0-9-_]{{0,99}}$"
        )]
    );
}

#[test]
fn yaml_syntax_error_names_file_and_line() {
    let path = fixture("bad-syntax.yaml");
    let err = AppFile::load(&path).unwrap_err();
    let ManifestError::Syntax { origin, at, .. } = &err else {
        panic!("expected a syntax error, got {err:?}");
    };
    assert_eq!(origin, &path.display().to_string());
    // The flow sequence opened on line 6 is still open when line 7 starts a new key.
    assert_eq!(at.line, 7, "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}:7:", path.display())),
        "{err}"
    );
}

#[test]
fn wrong_type_names_the_field_path() {
    let (origin, lines) = errors_of("bad-type.yaml");
    assert_eq!(
        lines,
        [format!(
            "{origin}:8:5: workflow_config.run_cmd: expected a string, found a sequence"
        )]
    );
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let (origin, lines) = errors_of("bad-several.yaml");
    assert_eq!(
        lines,
        [
            format!("{origin}:9:3: environment.1BAD: \"1BAD\" does not match ^[A-Za-z_][A-Za-z0-9_]*$"),
            format!("{origin}:11:18: security_flavor: \"lax\" is not one of: restricted, unrestricted"),
            format!("{origin}:6:13: source.artifact: conflicts with `source.repository`: give only one of them"),
            format!("{origin}:10:10: scaling: min (5) is greater than max (2)"),
        ]
    );
}

#[test]
fn missing_source_and_name_are_reported_at_the_top() {
    let err =
        AppFile::parse("version: 1\nworkflow_config: {run_cmd: x}\n", "app.yaml").unwrap_err();
    let fields: Vec<_> = err
        .field_errors()
        .iter()
        .map(|e| (e.field.as_str(), &e.problem))
        .collect();
    assert_eq!(
        fields,
        [("name", &Problem::Missing), ("source", &Problem::NoSource)]
    );
    assert!(err
        .to_string()
        .starts_with("app.yaml:1:1: name: required field is missing"));
}

#[test]
fn an_app_file_naming_no_badger_asks_for_auto() {
    let app = AppFile::parse("name: a\nsource: {repository: ./}\n", "app.yaml").unwrap();
    assert_eq!(app.badger, crate::manifest::app::AUTO_BADGER);
    let named = AppFile::parse(
        "name: a\nbadger: go\nsource: {repository: ./}\n",
        "app.yaml",
    );
    assert_eq!(named.unwrap().badger, "go");
}

#[test]
fn languagepack_and_badger_together_conflict() {
    let text = "name: a\nbadger: b\nlanguagepack: c\nsource: {repository: ./}\n";
    let err = AppFile::parse(text, "app.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "app.yaml:3:1: languagepack: conflicts with `badger`: give only one of them"
    );
}

#[test]
fn only_version_1_is_read() {
    let text = "version: 2\nname: a\nbadger: b\nsource: {repository: ./}\n";
    let err = AppFile::parse(text, "app.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "app.yaml:1:10: version: unsupported version 2 (this builder reads version 1)"
    );
}

#[test]
fn boolean_where_a_string_is_expected_is_an_error() {
    let text = "name: a\nbadger: b\nsource: {repository: ./}\nurl: true\n";
    let err = AppFile::parse(text, "app.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "app.yaml:4:6: url: expected a string, found a boolean"
    );
}

#[test]
fn a_nul_byte_in_an_environment_value_is_refused_when_parsed() {
    for field in ["environment", "build_environment"] {
        let text =
            format!("name: a\nbadger: b\nsource: {{repository: ./}}\n{field}: {{A: \"x\\0y\"}}\n");
        let err = AppFile::parse(&text, "app.yaml").unwrap_err().to_string();
        assert!(
            err.contains(&format!("{field}.A: must not contain a NUL byte")),
            "{err}"
        );
    }
}

#[test]
fn unquoted_numbers_in_string_fields_keep_their_text() {
    let text = "name: a\nbadger: b\nsource: {repository: ./, revision: 1.10}\nenvironment: {N: 007, F: 3.10}\n";
    let app = AppFile::parse(text, "app.yaml").unwrap();
    assert_eq!(app.source.revision.as_deref(), Some("1.10"));
    assert_eq!(app.environment["N"], "007");
    assert_eq!(app.environment["F"], "3.10");
}

#[test]
fn source_path_is_read_as_written_and_checked_when_fetched() {
    let text = "name: a\nbadger: b\nsource: {repository: ./, path: services/api}\n";
    let app = AppFile::parse(text, "app.yaml").unwrap();
    assert_eq!(app.source.path.as_deref(), Some("services/api"));
}

#[test]
fn empty_and_multi_document_files_are_rejected() {
    let err = AppFile::parse("# only a comment\n", "app.yaml").unwrap_err();
    assert_eq!(err.to_string(), "app.yaml:1:1: the document is empty");
    let err = AppFile::parse("name: a\n---\nname: b\n", "app.yaml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("app.yaml:3:1: more than one YAML document"),
        "{err}"
    );
}

#[test]
fn duplicate_keys_are_a_syntax_error() {
    let err = AppFile::parse("name: a\nname: b\n", "app.yaml").unwrap_err();
    assert!(
        matches!(
            err,
            ManifestError::Syntax {
                at: Location { line: 2, .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn ports_written_as_text_are_taken_like_expose() {
    let text =
        "name: a\nbadger: b\nsource: {repository: ./}\nports: [\"8080\", \"53/udp\", 9000]\n";
    let app = AppFile::parse(text, "app.yaml").unwrap();
    let ports: Vec<_> = app
        .ports
        .iter()
        .map(|p| (p.port, p.protocol.as_str()))
        .collect();
    assert_eq!(ports, [(8080, "tcp"), (53, "udp"), (9000, "tcp")]);
    for (bad, message) in [
        (
            "\"http\"",
            "ports[0]: \"http\" does not match PORT or \"PORT/PROTOCOL\" (tcp, udp, sctp)",
        ),
        ("\"70000\"", "ports[0]: 70000 is out of range 1..=65535"),
        (
            "\"80/icmp\"",
            "ports[0]: \"80/icmp\" is not one of: tcp, udp, sctp",
        ),
    ] {
        let text = format!("name: a\nbadger: b\nsource: {{repository: ./}}\nports: [{bad}]\n");
        let err = AppFile::parse(&text, "app.yaml").unwrap_err().to_string();
        assert!(err.ends_with(message), "{bad}: {err}");
    }
}

#[test]
fn a_source_names_its_app() {
    use crate::manifest::app::name_from_source;
    for (source, name) in [
        ("/home/me/My Site/", Some("my-site")),
        ("./my_site", Some("my_site")),
        ("https://host/org/My.App.git", Some("my-app")),
        ("git@host:org/tool.git", Some("tool")),
        ("bin/tool-1.2.tar.gz", Some("tool-1-2")),
        ("/srv/2024", Some("app-2024")),
        (".", None),
        ("/", None),
    ] {
        assert_eq!(name_from_source(source).as_deref(), name, "{source}");
    }
}

#[test]
fn duplicate_ports_are_rejected() {
    let text = "name: a\nbadger: b\nsource: {repository: ./}\nports: [80, {port: 80}]\n";
    let err = AppFile::parse(text, "app.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "app.yaml:4:13: ports[1]: 80/tcp is given twice"
    );
}

#[test]
fn bad_badger_reference_is_rejected() {
    let text = "name: a\nbadger: \"oci:\"\nsource: {repository: ./}\n";
    let err = AppFile::parse(text, "app.yaml").unwrap_err();
    let e = &err.field_errors()[0];
    assert_eq!(
        (e.field.as_str(), &e.at),
        ("badger", &Origin::File(Location { line: 2, column: 9 }))
    );
    assert!(matches!(e.problem, Problem::Reference { .. }), "{err}");
}

#[test]
fn command_line_source_stands_in_for_a_missing_one() {
    let text = "name: a\nbadger: b\nworkflow_config: {run_cmd: ./run}\n";
    let overrides = Overrides {
        source: Some("/src/a".into()),
        revision: Some("v1.0".into()),
        ports: vec![9000],
        environment: vec![("MODE".into(), "prod".into())],
        ..Overrides::default()
    };
    let app = AppFile::parse_with(text, "app.yaml", &overrides).unwrap();
    assert_eq!(app.source.repository.as_deref(), Some("/src/a"));
    assert_eq!(app.source.revision.as_deref(), Some("v1.0"));
    assert_eq!(app.ports[0].port, 9000);
    assert_eq!(app.environment["MODE"], "prod");
}

#[test]
fn command_line_artifact_replaces_the_file_repository() {
    let app = AppFile::load_with(
        &fixture("full.yaml"),
        &Overrides {
            artifact: Some("dist/app.tar.gz".into()),
            badger: Some("badgers/static".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(app.source.repository, None);
    assert_eq!(app.source.artifact.as_deref(), Some("dist/app.tar.gz"));
    assert_eq!(app.badger, "badgers/static");
}

#[test]
fn bad_command_line_values_name_the_flag() {
    let text = "name: a\nbadger: b\nsource: {repository: ./}\n";
    let overrides = Overrides {
        ports: vec![0],
        environment: vec![("BAD-NAME".into(), "x".into())],
        ..Overrides::default()
    };
    let err = AppFile::parse_with(text, "app.yaml", &overrides).unwrap_err();
    assert_eq!(
        err.to_string().lines().collect::<Vec<_>>(),
        [
            "command line --port (for ports of app.yaml): 0 is out of range 1..=65535",
            "command line --env (for environment.BAD-NAME of app.yaml): \"BAD-NAME\" does not match ^[A-Za-z_][A-Za-z0-9_]*$",
        ]
    );
}

#[test]
fn name_rule_matches_solum() {
    for good in ["a", "cherrypy", "my-app_2", &format!("a{}", "b".repeat(99))] {
        assert!(app::valid_name(good), "{good}");
    }
    for bad in [
        "",
        "1app",
        "App",
        "my.app",
        "-a",
        &format!("a{}", "b".repeat(100)),
    ] {
        assert!(!app::valid_name(bad), "{bad}");
    }
}

/// A 1 MiB app file (the API's body limit) of nested flow sequences, parsed on a thread
/// with a server worker's 2 MiB stack: refused with the line and column where the nesting
/// gets too deep, not a stack overflow that aborts the whole process (`- - - x` did).
#[test]
fn deeply_nested_documents_are_refused_not_a_stack_overflow() {
    // Flow collections, and block sequences nested on one line (`- - - x`).
    for (open, close) in [("[", "]"), ("{a: ", "}"), ("- ", "x"), ("? ", "x")] {
        let closing = if close == "x" { 1 } else { 500_000 };
        let text = format!("{}{}", open.repeat(500_000), close.repeat(closing));
        let outcome = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let app = AppFile::parse(&text, "deep.yaml")
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                let badger = BadgerManifest::parse(&text, "deep.yaml")
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                (app, badger)
            })
            .unwrap()
            .join()
            .unwrap();
        for result in [outcome.0, outcome.1] {
            let message = result.expect_err("a deep document is refused");
            assert!(message.starts_with("deep.yaml:"), "{message}");
            // Flow collections hit the scanner's own limit (256) first.
            assert!(
                message.contains("nested more than 64 levels deep")
                    || message.contains("recursion limit exceeded"),
                "{message}"
            );
        }
    }
}

#[test]
fn nesting_up_to_the_limit_is_accepted() {
    let deep = format!("{}1{}", "[".repeat(60), "]".repeat(60));
    let text = format!("name: a\nbadger: shell\nsource: {{repository: ./}}\nx-deep: {deep}\n");
    AppFile::parse(&text, "deep.yaml").unwrap();
    let text = format!("name: a\nbadger: shell\nx-deep:\n  {}1\n", "- ".repeat(70));
    let message = AppFile::parse(&text, "deep.yaml").unwrap_err().to_string();
    assert_eq!(
        message,
        "deep.yaml:4:129: collections are nested more than 64 levels deep"
    );
}
