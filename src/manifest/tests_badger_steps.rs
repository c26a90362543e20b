//! Tests of the badger manifest's `dependencies` and `detect` parts: what they read, their
//! defaults, and the hostile paths and sizes they refuse with the field named.

use super::badger_steps::{Dependencies, Detect, MAX_PATHS};
use super::BadgerManifest;

const HEAD: &str = "name: x\nversion: 1\nfrom: base/busybox\n";

fn parse(tail: &str) -> Result<BadgerManifest, String> {
    BadgerManifest::parse(&format!("{HEAD}{tail}"), "b.yaml").map_err(|e| e.to_string())
}

#[test]
fn dependencies_and_detect_are_read_with_their_defaults() {
    let m = parse(
        "dependencies:\n  inputs: [requirements.txt, wheelhouse]\n\
         detect:\n  order: 30\n  files: [requirements.txt, pyproject.toml]\n",
    )
    .unwrap();
    assert_eq!(
        m.dependencies,
        Some(Dependencies {
            inputs: vec!["requirements.txt".into(), "wheelhouse".into()],
            script: "deps.sh".into(),
        })
    );
    assert_eq!(
        m.detect,
        Some(Detect {
            order: 30,
            files: vec!["requirements.txt".into(), "pyproject.toml".into()],
        })
    );
    // Both round-trip through the annotation's JSON.
    let back = BadgerManifest::from_annotation(&m.to_json().unwrap()).unwrap();
    assert_eq!(back, m);
    // Absent, they stay absent (and old annotations still parse).
    let plain = parse("").unwrap();
    assert!(plain.dependencies.is_none() && plain.detect.is_none());
    assert!(!plain.to_json().unwrap().contains("dependencies"));
}

#[test]
fn hostile_paths_are_refused_with_the_field_named() {
    for bad in [
        "../x",
        "/etc/passwd",
        "a/../b",
        "./a",
        "a//b",
        "a/",
        "",
        "a\u{0}b",
    ] {
        let err = parse(&format!("dependencies:\n  inputs: [{bad:?}]\n")).unwrap_err();
        assert!(err.contains("dependencies.inputs[0]"), "{bad:?}: {err}");
        let err = parse(&format!("detect:\n  order: 1\n  files: [{bad:?}]\n")).unwrap_err();
        assert!(err.contains("detect.files[0]"), "{bad:?}: {err}");
    }
    let err = parse("dependencies:\n  inputs: [a]\n  script: ../../etc/x\n").unwrap_err();
    assert!(err.contains("dependencies.script"), "{err}");
}

#[test]
fn sizes_orders_and_shapes_are_bounded() {
    let many: Vec<String> = (0..=MAX_PATHS).map(|i| format!("f{i}")).collect();
    let err = parse(&format!("dependencies:\n  inputs: [{}]\n", many.join(", "))).unwrap_err();
    assert!(err.contains("dependencies.inputs"), "{err}");
    let err = parse("dependencies:\n  inputs: []\n").unwrap_err();
    assert!(err.contains("must not be empty"), "{err}");
    let err = parse("dependencies:\n  inputs: [a, a]\n").unwrap_err();
    assert!(err.contains("given twice"), "{err}");
    let err = parse("dependencies:\n  inputs: [vendor/cache, vendor]\n").unwrap_err();
    assert!(
        err.contains("dependencies.inputs[1]")
            && err.contains("\"vendor/cache\" lies inside \"vendor\""),
        "{err}"
    );
    assert!(parse("dependencies:\n  inputs: [vendor, vendor.lock, vendors/x]\n").is_ok());
    assert!(parse("detect:\n  order: 1\n  files: [src, src/main.go]\n").is_ok());
    let err = parse("dependencies:\n  script: deps.sh\n").unwrap_err();
    assert!(err.contains("dependencies.inputs: required"), "{err}");
    let err = parse("detect:\n  order: 1001\n  files: [a]\n").unwrap_err();
    assert!(err.contains("detect.order"), "{err}");
    let err = parse("detect:\n  files: [a]\n").unwrap_err();
    assert!(err.contains("detect.order: required"), "{err}");
    let err = parse("detect:\n  order: 1\n  files: [a]\n  glob: x\n").unwrap_err();
    assert!(err.contains("detect.glob"), "{err}");
}
