//! Issue 15, the SBOM: `solum-build sbom` of the python badger's sample DU (testdata/apps/
//! python-web, built offline on the cached debian-python3 base) is validated by the SPDX
//! project's own tools (`pyspdxtools`) and by the CycloneDX Python library's strict schema
//! validation; it is complete (every distribution `pip list` shows inside the DU and every
//! package `dpkg-query` shows installed is in both documents, with its version); a package
//! the app's build removed is absent; the bytes are the same every time and through an
//! `oci-archive:`. The validators live in the venv `scripts/install-deps.sh` makes
//! (/opt/solum-sbom-tools): on CI a missing venv fails the test, elsewhere it is skipped
//! with the reason.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use support::*;

const TOOLS: &str = "/opt/solum-sbom-tools";

/// The validators' venv, or `None` (off CI) when it is not there.
fn validators() -> Option<PathBuf> {
    let venv = PathBuf::from(TOOLS);
    if venv.join("bin/pyspdxtools").is_file() {
        return Some(venv);
    }
    let reason = format!("{TOOLS} is missing: run scripts/install-deps.sh as root");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{reason}: on CI the SBOM validators must run"
    );
    eprintln!("skipped: {reason}");
    None
}

/// testdata/apps/python-web as a git repository (one commit), with a build step that
/// removes a Python distribution of the base image.
fn python_web_removing_wheel(dir: &Path) -> PathBuf {
    let app_yaml = support::apps::copy_app(dir, "python-web");
    let app_file = std::fs::read_to_string(&app_yaml).unwrap();
    let app_file = app_file.replace(
        "workflow_config:\n",
        "workflow_config:\n  build_cmd: rm -rf /usr/lib/python3/dist-packages/wheel-*\n",
    );
    assert!(app_file.contains("build_cmd"), "{app_file}");
    std::fs::write(&app_yaml, app_file).unwrap();
    let app = app_yaml.parent().unwrap().to_path_buf();
    git(&app, &["init", "-q"]);
    git(&app, &["add", "-A"]);
    git(&app, &["commit", "-qm", "python-web"]);
    app
}

/// `(name, version)` of every entry of a document's `list` (`packages` of SPDX, whose
/// version is `versionInfo`; `components` of CycloneDX, `version`), names lower-cased.
fn listed(document: &Value, list: &str, version: &str) -> BTreeSet<(String, String)> {
    document[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_lowercase(),
                p[version].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `pip list --format=json` of one interpreter inside the DU, names lower-cased.
fn pip_list(store: &Path, python: &str) -> BTreeSet<(String, String)> {
    let out = Cmd::solum(store)
        .args([
            "run",
            "python-web",
            "--",
            python,
            "-m",
            "pip",
            "list",
            "--format=json",
        ])
        .run()
        .ok();
    let list: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_lowercase(),
                d["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Runs the SPDX project's validator and the CycloneDX library's strict validation.
fn validate(venv: &Path, dir: &Path, spdx: &str, cyclonedx: &str) {
    let spdx_file = dir.join("sbom.spdx.json");
    let cyclonedx_file = dir.join("sbom.cdx.json");
    std::fs::write(&spdx_file, spdx).unwrap();
    std::fs::write(&cyclonedx_file, cyclonedx).unwrap();
    let checked = Cmd::program(venv.join("bin/pyspdxtools").to_str().unwrap())
        .arg("-i")
        .arg(&spdx_file)
        .run()
        .ok();
    assert!(!checked.stderr.contains("invalid"), "{}", checked.text());
    let script = "import sys\n\
        from cyclonedx.schema import SchemaVersion\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
        if errors is not None:\n    sys.exit(f'invalid: {errors!r}')\n\
        print('valid')\n";
    let checked = Cmd::program(venv.join("bin/python").to_str().unwrap())
        .arg("-c")
        .arg(script)
        .arg(&cyclonedx_file)
        .run()
        .ok();
    assert_eq!(checked.stdout.trim(), "valid", "{}", checked.text());
}

#[test]
fn python_sample_du_sbom_validates_is_complete_and_leaves_out_what_the_build_removed() {
    let Some(venv) = validators() else {
        return;
    };
    let dir = temp_dir();
    let store = dir.path().join("store");
    support::apps::store_with_debian_badger(&store, "debian-python3", "python");
    let app = python_web_removing_wheel(dir.path());
    Cmd::solum(&store)
        .arg("build")
        .arg(app.join("app.yaml"))
        .run()
        .ok();

    let started = Instant::now();
    let spdx = Cmd::solum(&store)
        .args(["sbom", "python-web"])
        .run()
        .ok()
        .stdout;
    let elapsed = started.elapsed();
    let cyclonedx = Cmd::solum(&store)
        .args(["sbom", "python-web", "--format", "cyclonedx"])
        .run()
        .ok()
        .stdout;
    validate(&venv, dir.path(), &spdx, &cyclonedx);

    let spdx_document: Value = serde_json::from_str(&spdx).unwrap();
    let cyclonedx_document: Value = serde_json::from_str(&cyclonedx).unwrap();
    let in_spdx = listed(&spdx_document, "packages", "versionInfo");
    let in_cyclonedx = listed(&cyclonedx_document, "components", "version");
    let found = cyclonedx_document["components"].as_array().unwrap().len() - 1;
    eprintln!(
        "python-web SBOM: SPDX {} bytes, CycloneDX {} bytes, {found} packages; `sbom` took {} ms",
        spdx.trim_end().len(),
        cyclonedx.trim_end().len(),
        elapsed.as_millis()
    );

    // Every distribution pip sees, in the app's venv and in the system's Python.
    let venv_list = pip_list(&store, "python");
    let system_list = pip_list(&store, "/usr/bin/python3");
    assert!(
        venv_list.contains(&("flask".into(), "3.0.3".into())),
        "{venv_list:?}"
    );
    for package in venv_list.iter().chain(&system_list) {
        assert!(
            in_spdx.contains(package),
            "{package:?} not in the SPDX SBOM"
        );
        assert!(
            in_cyclonedx.contains(package),
            "{package:?} not in the CycloneDX SBOM"
        );
    }
    // Every Debian package dpkg says is installed.
    let dpkg = Cmd::solum(&store)
        .args([
            "run",
            "python-web",
            "--",
            "dpkg-query",
            "-W",
            "-f",
            "${Status}\\t${Package}\\t${Version}\\n",
        ])
        .run()
        .ok();
    let mut debian = 0;
    for line in dpkg.stdout.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields[0] != "install ok installed" {
            continue;
        }
        debian += 1;
        let package = (fields[1].to_lowercase(), fields[2].to_string());
        assert!(
            in_spdx.contains(&package),
            "{package:?} not in the SPDX SBOM"
        );
        assert!(
            in_cyclonedx.contains(&package),
            "{package:?} not in the CycloneDX SBOM"
        );
    }
    assert!(debian > 50, "{}", dpkg.text());

    // The build removed the system's `wheel` distribution: pip no longer sees it, and no
    // SBOM entry comes from its files (the Debian package's dpkg record stays, as dpkg
    // still lists it).
    assert!(
        !system_list.iter().any(|(name, _)| name == "wheel"),
        "{system_list:?}"
    );
    assert!(
        !spdx.contains("/usr/lib/python3/dist-packages/wheel-"),
        "{spdx}"
    );
    assert!(!cyclonedx.contains("/usr/lib/python3/dist-packages/wheel-"));

    // The DU: its name, source revision and badger by digest.
    let du = &spdx_document["packages"][0];
    assert_eq!(du["name"], "python-web");
    assert_eq!(du["versionInfo"], git(&app, &["rev-parse", "HEAD"]).trim());
    let badgers: Vec<&Value> = cyclonedx_document["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "container")
        .collect();
    assert_eq!(badgers.len(), 1, "{badgers:?}");
    let badger_digest = manifest_digest_of(&store, "badgers/python");
    assert_eq!(badgers[0]["hashes"][0]["content"], badger_digest[7..]);

    // The same bytes again, and from an oci-archive: copy of the DU.
    let again = Cmd::solum(&store)
        .args(["sbom", "python-web"])
        .run()
        .ok()
        .stdout;
    assert_eq!(again, spdx);
    let archive = dir.path().join("du.tar");
    Cmd::solum(&store)
        .arg("push")
        .arg("python-web")
        .arg(format!("oci-archive:{}", archive.display()))
        .run()
        .ok();
    let from_archive = Cmd::solum(&store)
        .arg("sbom")
        .arg(format!("oci-archive:{}", archive.display()))
        .args(["--format", "cyclonedx"])
        .run()
        .ok()
        .stdout;
    assert_eq!(from_archive, cyclonedx);
}

/// The manifest digest a store name points at.
fn manifest_digest_of(store: &Path, name: &str) -> String {
    let index = read_json(&store.join("index.json"));
    let names = [name.to_string(), format!("{name}:latest")];
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| {
            let entry = &m["annotations"]["org.opencontainers.image.ref.name"];
            names.iter().any(|n| entry == n.as_str())
        })
        .unwrap_or_else(|| panic!("{name} not in the store"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
