//! Badger manifest, DU manifest and Heat snippet tests. The Heat snippet is parsed back with
//! saphyr and, when `python3` with PyYAML (Debian `python3-yaml`) is present, also with
//! PyYAML, the parser Heat itself uses, plus a structural HOT check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use saphyr::{LoadableYamlNode, Yaml};

use super::*;

fn badger_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/badgers")
        .join(name)
}

fn app_fixture(name: &str) -> AppFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/apps")
        .join(name);
    AppFile::load(&path).unwrap()
}

const DIGEST: &str = "sha256:6f1c2b6f3a0d9c7e5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060504";

fn inputs<'a>(app: &'a AppFile, image: &'a str) -> DuInputs<'a> {
    DuInputs {
        app,
        badgers: vec![BadgerUsed {
            name: "python3".into(),
            version: "3.11".into(),
            digest: DIGEST.into(),
        }],
        badger_environment: BTreeMap::from([
            (
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            ),
            ("GREETING".to_string(), "from the badger".to_string()),
        ]),
        default_command: vec!["/bin/sh".into()],
        revision: Some("6f1c2b6f3a0d9c7e5b4a39281706f5e4d3c2b1a0".into()),
        image,
        tests_passed: true,
    }
}

#[test]
fn badger_manifest_reads_every_field() {
    let b = BadgerManifest::load(&badger_fixture("python3.yaml")).unwrap();
    assert_eq!(b.name, "python3");
    assert_eq!(b.version, "3.11");
    assert_eq!(b.from, "base/debian-python3");
    assert!(b.depends.is_empty());
    assert_eq!(
        b.packages,
        vec![
            Package {
                name: "python".into(),
                version: Some("3.11.2".into())
            },
            Package {
                name: "pip".into(),
                version: Some("23.0.1".into())
            },
        ]
    );
    assert_eq!(b.environment["PYTHONUNBUFFERED"], "1");
    assert_eq!(b.build, "/solum/bin/build.sh");
    assert_eq!(b.setup.as_deref(), Some("setup.sh"));
    assert_eq!(b.network, Network::None);
}

#[test]
fn badger_defaults_apply() {
    let b = BadgerManifest::parse(
        "name: shell\nversion: 1\nfrom: base/busybox\n",
        "badger.yaml",
    )
    .unwrap();
    assert_eq!(b.build, badger::DEFAULT_BUILD);
    assert_eq!(b.network, Network::None);
    assert_eq!(b.setup, None);
    assert_eq!(b.version, "1");
}

#[test]
fn badger_errors_name_file_line_and_field() {
    let path = badger_fixture("bad-setup.yaml");
    let err = BadgerManifest::load(&path).unwrap_err();
    let origin = path.display();
    assert_eq!(
        err.to_string().lines().collect::<Vec<_>>(),
        [
            format!("{origin}:4:8: setup: \"../../etc/evil.sh\" must be a relative path inside the badger directory"),
            format!("{origin}:5:10: network: \"bridge\" is not one of: none, host"),
        ]
    );
    let err = BadgerManifest::parse("name: x\nbogus: 1\n", "b.yaml").unwrap_err();
    let lines: Vec<String> = err.to_string().lines().map(String::from).collect();
    assert!(
        lines[0].starts_with("b.yaml:2:1: bogus: unknown field"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "b.yaml:1:1: version: required field is missing");
    assert_eq!(lines[2], "b.yaml:1:1: from: required field is missing");
}

/// Issue 10 B01: `build` names where build.sh is installed, so it must stay in the image.
#[test]
fn badger_build_path_must_be_absolute_and_normalised() {
    for bad in [
        "/../../../../tmp/x/A.sh",
        "/solum/../../etc/cron.d/x",
        "/solum/./bin/build.sh",
        "/solum//bin/build.sh",
        "/solum/bin/",
        "/",
        "solum/bin/build.sh",
        "/solum/bin/build.sh\0x",
    ] {
        let text = format!("name: x\nversion: 1\nfrom: base/busybox\nbuild: {bad:?}\n");
        let err = BadgerManifest::parse(&text, "b.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("build:"), "{bad:?}: {err}");
        assert!(err.contains("normalised path"), "{bad:?}: {err}");
    }
    let text = "name: x\nversion: 1\nfrom: base/busybox\nsetup: \"a\\u0000b\"\n";
    assert!(BadgerManifest::parse(text, "b.yaml").is_err());
    let ok = "name: x\nversion: 1\nfrom: base/busybox\nbuild: /usr/local/bin/b.sh\n";
    assert_eq!(
        BadgerManifest::parse(ok, "b.yaml").unwrap().build,
        "/usr/local/bin/b.sh"
    );
}

#[test]
fn badger_search_matches_name_version_description_and_packages() {
    let b = BadgerManifest::load(&badger_fixture("python3.yaml")).unwrap();
    for term in ["PYTHON", "3.11", "bookworm", "pip", "23.0", "11.2", ""] {
        assert!(b.matches(term), "{term}");
    }
    for term in ["ruby", "node", "24.0"] {
        assert!(!b.matches(term), "{term}");
    }
}

#[test]
fn badger_annotation_round_trips_with_sorted_keys() {
    let mut b = BadgerManifest::load(&badger_fixture("python3.yaml")).unwrap();
    b.extensions
        .insert("x-maintainer".into(), serde_json::json!("team"));
    let json = b.to_json().unwrap();
    assert_eq!(BadgerManifest::from_annotation(&json).unwrap(), b);
    assert_eq!(b.to_json().unwrap(), json, "same manifest, same bytes");
    let keys = top_level_key_order(&json);
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(keys.contains(&"x-maintainer".to_string()));
}

/// The top-level keys of a compact JSON object in the order they are written: strings
/// at depth 1 that follow `{` or `,` are keys.
fn top_level_key_order(json: &str) -> Vec<String> {
    let (mut keys, mut depth, mut prev) = (Vec::new(), 0, ' ');
    let mut chars = json.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => s.extend(chars.next()),
                        '"' => break,
                        _ => s.push(c),
                    }
                }
                if depth == 1 && (prev == '{' || prev == ',') {
                    keys.push(s);
                }
            }
            _ => {}
        }
        prev = c;
    }
    keys
}

#[test]
fn a_token_in_the_source_url_stays_out_of_the_du_manifest() {
    let mut app = app_fixture("full.yaml");
    app.source.repository = Some("https://user:gh_PASSWORD@git.example/org/app.git".into());
    let du = DuManifest::new(&inputs(&app, "registry.example.org/app@sha256:abc")).unwrap();
    assert_eq!(
        du.source.repository.as_deref(),
        Some("https://user:<redacted>@git.example/org/app.git")
    );
    app.source.repository = None;
    app.source.artifact = Some("https://files.example/app.tar.gz?private_token=SECRET".into());
    let du = DuManifest::new(&inputs(&app, "registry.example.org/app@sha256:abc")).unwrap();
    let annotation = du.to_json().unwrap();
    assert!(!annotation.contains("SECRET"), "{annotation}");
    assert!(!annotation.contains("PASSWORD"), "{annotation}");
}

#[test]
fn du_manifest_from_the_full_app() {
    let app = app_fixture("full.yaml");
    let du = DuManifest::new(&inputs(&app, "registry.example.org/helloworld@sha256:abc")).unwrap();
    assert_eq!(du.name, "helloworld");
    assert_eq!(
        du.runtime.command,
        ["/bin/sh", "-c", "python3 -m helloworld"]
    );
    assert_eq!(du.runtime.workdir, "/app");
    assert_eq!(du.runtime.user, "0:0");
    assert_eq!(
        du.environment["GREETING"], "hello",
        "the app's environment wins"
    );
    assert_eq!(du.environment["PATH"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(du.scaling, Scaling { min: 1, max: 4 });
    assert_eq!(du.badgers[0].digest, DIGEST);
    assert_eq!(du.source.repository.as_deref(), Some("./"));
    assert_eq!(
        du.source.revision.as_deref(),
        Some("6f1c2b6f3a0d9c7e5b4a39281706f5e4d3c2b1a0"),
        "the resolved commit, not the branch"
    );
    assert_eq!(
        du.tests,
        Some(DuTests {
            command: "python3 -m pytest -q".into(),
            passed: true
        })
    );
    assert!(
        du.heat.starts_with("heat_template_version: \"2018-08-31\""),
        "{}",
        du.heat
    );
}

#[test]
fn du_json_is_deterministic_sorted_and_round_trips() {
    let app = app_fixture("full.yaml");
    let a = DuManifest::new(&inputs(&app, "helloworld:latest")).unwrap();
    let b = DuManifest::new(&inputs(&app, "helloworld:latest")).unwrap();
    let json = a.to_json().unwrap();
    assert_eq!(json, b.to_json().unwrap());
    assert_eq!(DuManifest::from_json(&json).unwrap(), a);
    let keys = top_level_key_order(&json);
    assert_eq!(
        keys,
        [
            "badgers",
            "environment",
            "flavor",
            "heat",
            "name",
            "ports",
            "runtime",
            "scaling",
            "security_flavor",
            "services",
            "source",
            "tests",
            "url",
            "version"
        ]
    );
    assert!(!json.contains('\n'), "compact JSON for an annotation");
}

#[test]
fn du_without_run_or_test_cmd_uses_the_default_command() {
    let app = AppFile::parse(
        "name: bare\nbadger: b\nsource: {artifact: a.tgz}\n",
        "app.yaml",
    )
    .unwrap();
    let du = DuManifest::new(&DuInputs {
        revision: None,
        ..inputs(&app, "bare:latest")
    })
    .unwrap();
    assert_eq!(du.runtime.command, ["/bin/sh"]);
    assert_eq!(du.tests, None);
    assert_eq!(du.source.artifact.as_deref(), Some("a.tgz"));
    assert_eq!(du.scaling, Scaling { min: 1, max: 1 });
    let json = du.to_json().unwrap();
    assert!(!json.contains("\"tests\""), "{json}");
}

#[test]
fn du_json_with_unknown_fields_is_rejected() {
    let err = DuManifest::from_json("{\"version\":1,\"bogus\":true}").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("annotation org.solum.du.manifest"),
        "{err}"
    );
}

/// An app whose environment and command hold every character YAML cares about.
fn hostile_app() -> AppFile {
    let text = r##"
name: tricky-app
badger: badgers/shell
source: {repository: ./}
workflow_config: {run_cmd: "echo 'it''s' \"quoted\" && printf 'a: b\n' # not a comment"}
ports: [8080, {port: 5353, protocol: udp, name: dns}]
services: [{name: db-main, type: postgresql}]
environment:
  QUOTES: 'he said "hi" and it''s fine'
  COLON: "key: value"
  NEWLINES: "line one\nline two\n"
  YAML11_BOOL: "yes"
  YAML11_INT: "0b101"
  HASH: "#not a comment"
  EMPTY: ""
  UNICODE: "héllo ✓"
  LEADING_SPACE: "  padded"
scaling: {min: 2, max: 5}
url: tricky.example.org
flavor: m1.medium
"##;
    AppFile::parse(text, "tricky.yaml").unwrap()
}

fn get<'a>(y: &'a Yaml<'a>, path: &[&str]) -> &'a Yaml<'a> {
    path.iter().fold(y, |node, key| {
        node.as_mapping_get(key)
            .unwrap_or_else(|| panic!("no {key} in path {path:?}"))
    })
}

fn text<'a>(y: &'a Yaml<'a>) -> &'a str {
    y.as_str().unwrap_or_else(|| panic!("not a string: {y:?}"))
}

#[test]
fn heat_snippet_is_structurally_valid_hot() {
    let app = hostile_app();
    let image = "registry.example.org/tricky-app@sha256:0123";
    let du = DuManifest::new(&inputs(&app, image)).unwrap();
    let docs = Yaml::load_from_str(&du.heat).unwrap();
    assert_eq!(docs.len(), 1);
    let hot = &docs[0];
    assert_eq!(text(get(hot, &["heat_template_version"])), "2018-08-31");
    assert_eq!(text(get(hot, &["parameters", "image", "default"])), image);
    assert_eq!(text(get(hot, &["parameters", "image", "type"])), "string");

    let group = get(hot, &["resources", "tricky-app_group"]);
    assert_eq!(text(get(group, &["type"])), "OS::Heat::AutoScalingGroup");
    assert_eq!(
        get(group, &["properties", "min_size"]).as_integer(),
        Some(2)
    );
    assert_eq!(
        get(group, &["properties", "max_size"]).as_integer(),
        Some(5)
    );
    let container = get(group, &["properties", "resource"]);
    assert_eq!(text(get(container, &["type"])), "OS::Zun::Container");
    let props = get(container, &["properties"]);
    assert_eq!(text(get(props, &["image", "get_param"])), "image");
    assert_eq!(text(get(props, &["workdir"])), "/app");
    assert_eq!(get(props, &["cpu"]).as_integer(), Some(2), "m1.medium");
    assert_eq!(get(props, &["memory"]).as_integer(), Some(4096));
    assert_eq!(
        text(get(props, &["labels", "org.solum.du.ports"])),
        "8080/tcp,5353/udp"
    );

    // Every environment value survives the trip through YAML byte for byte.
    for (key, value) in &du.environment {
        assert_eq!(text(get(props, &["environment", key])), value, "{key}");
    }
    assert_eq!(
        text(get(
            props,
            &["environment", "SOLUM_SERVICE_DB_MAIN", "get_param"]
        )),
        "service_db-main"
    );
    assert!(get(hot, &["parameters"])
        .as_mapping_get("service_db-main")
        .is_some());

    let sg = get(hot, &["resources", "tricky-app_security_group"]);
    assert_eq!(text(get(sg, &["type"])), "OS::Neutron::SecurityGroup");
    let rules = get(sg, &["properties", "rules"]).as_vec().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(text(get(&rules[1], &["protocol"])), "udp");
    assert_eq!(get(&rules[1], &["port_range_min"]).as_integer(), Some(5353));
    let sg_ref = &get(props, &["security_groups"]).as_vec().unwrap()[0];
    assert_eq!(
        text(get(sg_ref, &["get_resource"])),
        "tricky-app_security_group"
    );

    assert_eq!(
        text(get(hot, &["outputs", "url", "value"])),
        "tricky.example.org"
    );
    let size = get(hot, &["outputs", "current_size", "value", "get_attr"])
        .as_vec()
        .unwrap();
    assert_eq!(text(&size[0]), "tricky-app_group");
}

#[test]
fn heat_snippet_without_ports_has_no_security_group() {
    let app = AppFile::parse(
        "name: quiet\nbadger: b\nsource: {repository: ./}\n",
        "app.yaml",
    )
    .unwrap();
    let du = DuManifest::new(&inputs(&app, "quiet:1")).unwrap();
    let docs = Yaml::load_from_str(&du.heat).unwrap();
    let resources = get(&docs[0], &["resources"]).as_mapping().unwrap();
    assert_eq!(resources.len(), 1);
    let props = get(&docs[0], &["resources", "quiet_group", "properties"]);
    assert_eq!(
        props.as_mapping_get("min_size").and_then(Yaml::as_integer),
        Some(1)
    );
    assert_eq!(
        props.as_mapping_get("max_size").and_then(Yaml::as_integer),
        Some(1)
    );
    assert!(get(props, &["resource", "properties"])
        .as_mapping_get("security_groups")
        .is_none());
}

#[test]
fn shell_join_quotes_what_a_shell_would_split() {
    let argv: Vec<String> = ["/bin/sh", "-c", "echo 'hi' && x=\"$y\""]
        .map(String::from)
        .into();
    assert_eq!(
        heat::shell_join(&argv),
        r#"/bin/sh -c 'echo '\''hi'\'' && x="$y"'"#
    );
    assert_eq!(heat::shell_join(&[String::new()]), "''");
}

/// The same checks with PyYAML (Heat's parser, YAML 1.1) and Python's `shlex` (how Zun
/// splits `command`): the environment comes back as the same strings and the command as
/// the same words.
const PYTHON_CHECK: &str = r#"
import json, shlex, sys, yaml
hot = yaml.safe_load(open(sys.argv[1]))
expected = json.load(open(sys.argv[2]))
assert str(hot["heat_template_version"]) == "2018-08-31", hot["heat_template_version"]
allowed_top = {"heat_template_version", "description", "parameter_groups", "parameters",
               "resources", "outputs", "conditions"}
assert set(hot) <= allowed_top, set(hot) - allowed_top
params, resources = hot["parameters"], hot["resources"]
for name, p in params.items():
    assert p["type"] in {"string", "number", "json", "comma_delimited_list", "boolean"}, name
def walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "get_param":
                assert v in params, v
            if k == "get_resource":
                assert v in resources, v
            if k == "get_attr":
                assert v[0] in resources, v
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
walk(hot)
for name, r in resources.items():
    assert set(r) <= {"type", "properties", "depends_on", "metadata", "deletion_policy",
                      "update_policy", "condition", "external_id"}, name
group = resources[expected["name"] + "_group"]
assert group["type"] == "OS::Heat::AutoScalingGroup"
gp = group["properties"]
assert set(gp) <= {"min_size", "max_size", "desired_capacity", "resource", "rolling_updates"}
assert isinstance(gp["min_size"], int) and isinstance(gp["max_size"], int)
assert gp["min_size"] == expected["scaling"]["min"] and gp["max_size"] == expected["scaling"]["max"]
c = gp["resource"]
assert c["type"] == "OS::Zun::Container"
zun = {"name", "image", "command", "cpu", "memory", "environment", "workdir", "labels",
       "image_pull_policy", "restart_policy", "interactive", "image_driver", "hints",
       "hostname", "security_groups", "mounts", "networks"}
props = c["properties"]
assert set(props) <= zun, set(props) - zun
env = {k: v for k, v in props["environment"].items() if not isinstance(v, dict)}
assert env == expected["environment"], (env, expected["environment"])
assert all(isinstance(v, str) for v in props["labels"].values())
assert shlex.split(props["command"]) == expected["runtime"]["command"], props["command"]
print("hot structure ok")
"#;

#[test]
fn heat_snippet_passes_pyyaml_and_a_hot_structure_check() {
    let python_ok = Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !python_ok {
        eprintln!("skipped: python3 with PyYAML is not installed (Debian package python3-yaml)");
        return;
    }
    let app = hostile_app();
    let du = DuManifest::new(&inputs(&app, "registry.example.org/tricky-app:1")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let heat_path = dir.path().join("heat.yaml");
    let du_path = dir.path().join("du.json");
    std::fs::write(&heat_path, &du.heat).unwrap();
    std::fs::write(&du_path, du.to_json().unwrap()).unwrap();
    let out = Command::new("python3")
        .args(["-c", PYTHON_CHECK])
        .arg(&heat_path)
        .arg(&du_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        du.heat
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hot structure ok"
    );
}

#[test]
fn a_user_is_root_or_numbers_in_app_files_and_badger_manifests() {
    use super::du::numeric_user;
    assert_eq!(numeric_user("root"), Some((0, 0)));
    assert_eq!(numeric_user("1000:1000"), Some((1000, 1000)));
    assert_eq!(numeric_user("0:5"), Some((0, 5)));
    for refused in [
        "",
        "app",
        "1000",
        ":1",
        "1:",
        "1:x",
        "-1:0",
        "99999999999:0",
    ] {
        assert_eq!(numeric_user(refused), None, "{refused}");
    }
    let app = |user: &str| {
        AppFile::parse(
            &format!("version: 1\nname: a\nbadger: b\nsource: {{repository: ./a}}\nuser: {user}\n"),
            "t",
        )
    };
    assert_eq!(app("root").unwrap().user.as_deref(), Some("root"));
    assert_eq!(
        app("\"1000:1000\"").unwrap().user.as_deref(),
        Some("1000:1000")
    );
    let refused = app("nobody").unwrap_err().to_string();
    assert!(
        refused.contains("user") && refused.contains("UID:GID"),
        "{refused}"
    );
    let badger = |user: &str| {
        BadgerManifest::parse(
            &format!("name: b\nversion: \"1\"\nfrom: base/x\nuser: {user}\n"),
            "t",
        )
    };
    assert_eq!(
        badger("\"1000:1000\"").unwrap().user.as_deref(),
        Some("1000:1000")
    );
    assert!(badger("app").is_err());
}
