//! Issue 15 end to end: a DU built with `--sign-key` carries two SBOMs, a signed SLSA
//! provenance and a cosign signature as OCI 1.1 referrers; `verify` accepts it in the store,
//! after a push to a real `docker-registry` (the fallback tag: Debian's 2.8 has no
//! referrers API), straight from the registry, after a pull into a fresh store and through
//! an `oci-archive:`; and refuses it with exit 1 once a byte of any signed blob changed,
//! with another key, or without a signature. The provenance names the DU's digest, the
//! source commit and the badgers' digests, and no planted secret or build-time value is
//! anywhere in the store. A cache-hit build adds nothing; `--no-attestations` attaches
//! nothing. The same as `tester` (rootless).

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::registry::{Mode, Registry};
use support::*;

const SECRET_VALUE: &str = "s3cr3t-value-planted-9c1f";
const BUILD_ENV_VALUE: &str = "build-env-value-planted-7d2e";

/// A store with busybox and the shell badger, a git source, and a key pair.
struct Setup {
    dir: tempfile::TempDir,
    store: PathBuf,
    source: PathBuf,
    commit: String,
    key: PathBuf,
    public: PathBuf,
}

fn setup() -> Setup {
    let dir = temp_dir();
    let store = shell_badger_store(dir.path(), "store");
    let source = dir.path().join("src");
    source_with_build_script(
        &source,
        "set -eu\ncat /run/secrets/token > /dev/null\necho \"built with $PLANTED\" > /dev/null\necho built > /app/out.txt",
    );
    git(&source, &["init", "-q"]);
    git(&source, &["add", "-A"]);
    git(&source, &["commit", "-q", "-m", "one"]);
    let commit = git(&source, &["rev-parse", "HEAD"]);
    let (key, public) = keygen(&dir.path().join("signing"));
    Setup {
        dir,
        store,
        source,
        commit,
        key,
        public,
    }
}

impl Setup {
    fn build(&self, store: &Path, extra: &[&str]) -> Run {
        let secret = self.dir.path().join("token");
        std::fs::write(&secret, SECRET_VALUE).unwrap();
        Cmd::solum(store)
            .args(["build", "--badger", "badgers/shell", "--name", "app"])
            .arg("--source")
            .arg(&self.source)
            .args(["--run-cmd", "cat out.txt", "--test-cmd", "test -f out.txt"])
            .arg("--secret")
            .arg(format!("id=token,src={}", secret.display()))
            .args(["--build-env", &format!("PLANTED={BUILD_ENV_VALUE}")])
            .args(extra)
            .run()
    }

    fn signed_build(&self, store: &Path, extra: &[&str]) -> String {
        let key = self.key.display().to_string();
        let mut args = vec!["--sign-key", &key];
        args.extend_from_slice(extra);
        self.build(store, &args).ok().last_line()
    }

    fn verify(&self, store: &Path, reference: &str) -> Run {
        Cmd::solum(store)
            .args(["verify", reference, "--json", "--tls-verify=false", "--key"])
            .arg(&self.public)
            .run()
    }
}

/// Every file under `root` whose bytes contain `needle`.
fn files_containing(root: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(root).into_iter().flatten() {
        if entry.file_type().is_file() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(entry.path().to_path_buf());
                }
            }
        }
    }
    found
}

fn image_digest(store: &Path, name: &str) -> String {
    let inspect = Cmd::solum(store).args(["inspect", name]).run().ok();
    let json: Value = serde_json::from_str(&inspect.stdout).unwrap();
    json["digest"].as_str().unwrap().to_string()
}

#[test]
fn a_signed_build_verifies_everywhere_and_tells_what_it_was_built_from() {
    support::registry::require("skopeo", "skopeo");
    let setup = setup();
    let digest = setup.signed_build(&setup.store, &[]);
    let verified = setup.verify(&setup.store, "app").ok();
    let report: Value = serde_json::from_str(&verified.stdout).unwrap();
    assert_eq!(report["digest"], digest.as_str());
    let statement = &report["provenance"];
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    let dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert_eq!(
        dependencies[0]["digest"]["gitCommit"],
        setup.commit.as_str()
    );
    let badger = image_digest(&setup.store, "badgers/shell");
    assert!(
        dependencies
            .iter()
            .any(|d| d["digest"]["sha256"] == badger.trim_start_matches("sha256:")),
        "{statement}"
    );
    let base = image_digest(&setup.store, "base/busybox");
    assert!(
        dependencies
            .iter()
            .any(|d| d["digest"]["sha256"] == base.trim_start_matches("sha256:")),
        "{statement}"
    );
    assert_eq!(report["sboms"].as_array().unwrap().len(), 2, "{report}");
    // `sbom` prints the attached document, byte for byte.
    for (format, artifact_type) in [
        ("spdx", "application/spdx+json"),
        ("cyclonedx", "application/vnd.cyclonedx+json"),
    ] {
        let stored = report["sboms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["artifactType"] == artifact_type)
            .unwrap();
        let bytes = std::fs::read(blob(&setup.store, stored["digest"].as_str().unwrap())).unwrap();
        let printed = Cmd::solum(&setup.store)
            .args(["sbom", "app", "--format", format])
            .run()
            .ok();
        assert_eq!(printed.stdout.trim_end().as_bytes(), &bytes[..]);
    }
    // The names of the secret and the build-time variable are recorded, their values
    // nowhere in the store: not in an attachment, a layer, a config or a record.
    let options = &statement["predicate"]["buildDefinition"]["externalParameters"]["options"];
    assert_eq!(options["secretIds"][0], "token");
    assert_eq!(options["buildEnvNames"][0], "PLANTED");
    for planted in [SECRET_VALUE, BUILD_ENV_VALUE] {
        assert_eq!(
            files_containing(&setup.store, planted),
            Vec::<PathBuf>::new()
        );
    }

    // Through a registry (the fallback tag), straight from it, and into a fresh store.
    let registry = Registry::start(Mode::Plain);
    let remote = format!("docker://{}/team/app:1", registry.host());
    Cmd::solum(&setup.store)
        .args(["push", "app", &remote, "--tls-verify=false"])
        .run()
        .ok();
    let from_registry = setup.verify(&setup.store, &remote);
    assert_eq!(from_registry.code, 1, "{}", from_registry.text());
    assert!(
        from_registry.stderr.contains("names \"app\""),
        "a signature made for the store name is not one for the registry: {}",
        from_registry.text()
    );
    // Signed for the registry's repository: verifies there, and after a pull.
    let signed_for_remote =
        setup.signed_build(&setup.store, &["--push", &remote, "--tls-verify=false"]);
    assert_eq!(signed_for_remote, digest, "a cache hit gives the same DU");
    setup.verify(&setup.store, &remote).ok();
    let fresh = setup.dir.path().join("fresh");
    Cmd::solum(&fresh)
        .args(["pull", &remote, "--tag", "pulled", "--tls-verify=false"])
        .run()
        .ok();
    let pulled = setup.verify(&fresh, "pulled").ok();
    let pulled: Value = serde_json::from_str(&pulled.stdout).unwrap();
    assert_eq!(pulled["provenance"], report["provenance"]);

    // Through an oci-archive.
    let archive = setup.dir.path().join("app.tar");
    let archive_ref = format!("oci-archive:{}:app", archive.display());
    Cmd::solum(&setup.store)
        .args(["push", "app", &archive_ref])
        .run()
        .ok();
    setup.verify(&setup.store, &archive_ref).ok();
}

#[test]
fn a_changed_byte_another_key_or_no_signature_fails_verify() {
    let setup = setup();
    setup.signed_build(&setup.store, &[]);
    let report: Value =
        serde_json::from_str(&setup.verify(&setup.store, "app").ok().stdout).unwrap();
    let sbom = report["sboms"][0]["digest"].as_str().unwrap().to_string();

    // A copy of the DU (an oci: layout) to spoil, and one to restore it from.
    let layout = setup.dir.path().join("copy");
    let layout_ref = format!("oci:{}:app", layout.display());
    let pristine = setup.dir.path().join("pristine");
    Cmd::solum(&setup.store)
        .args(["push", "app", &layout_ref])
        .run()
        .ok();
    copy_tree(&layout, &pristine);
    setup.verify(&setup.store, &layout_ref).ok();
    // Each signed blob, one byte changed: an SBOM, the signature's payload, the
    // provenance's envelope (the last two found as the one layer of the referrers whose
    // artifact types say so).
    let spoiled = [
        ("an SBOM", sbom),
        (
            "the signature",
            referrer_layer(&layout, "application/vnd.dev.cosign.artifact.sig.v1+json"),
        ),
        (
            "the provenance",
            referrer_layer(&layout, "application/vnd.in-toto+json"),
        ),
    ];
    for (what, digest) in spoiled {
        let file = blob(&layout, &digest);
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&file, &bytes).unwrap();
        let run = setup.verify(&setup.store, &layout_ref);
        assert_eq!(run.code, 1, "{what}: {}", run.text());
        std::fs::remove_dir_all(&layout).unwrap();
        copy_tree(&pristine, &layout);
    }

    // A DU signed by another key already (as a pulled copy would be) gets this key's
    // provenance and signature too when this key builds it: both keys verify it.
    let (second_key, second_public) = keygen(&setup.dir.path().join("second"));
    let hit = setup
        .build(&setup.store, &["--sign-key", second_key.to_str().unwrap()])
        .ok();
    assert!(hit.stderr.contains("(cache hit)"), "{}", hit.text());
    for public in [&setup.public, &second_public] {
        Cmd::solum(&setup.store)
            .args(["verify", "app", "--key"])
            .arg(public)
            .run()
            .ok();
    }

    // Another key.
    let (_, other) = keygen(&setup.dir.path().join("other"));
    let run = Cmd::solum(&setup.store)
        .args(["verify", "app", "--key"])
        .arg(other)
        .run()
        .fails_with(1);
    assert!(run.stderr.contains("does not verify"), "{}", run.text());

    // Unsigned: SBOMs and a bare provenance, and verify says what is missing.
    let unsigned_store = shell_badger_store(setup.dir.path(), "unsigned");
    setup.build(&unsigned_store, &[]).ok();
    let run = setup.verify(&unsigned_store, "app");
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(run.stderr.contains("no signature"), "{}", run.text());
}

#[test]
fn a_cache_hit_adds_nothing_and_no_attestations_attaches_nothing() {
    let setup = setup();
    setup.signed_build(&setup.store, &[]);
    // The index's entries as a set: a hit names the DU again, which moves its entry.
    let entries = |store: &Path| {
        let mut entries: Vec<String> = read_json(&store.join("index.json"))["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        entries.sort();
        entries
    };
    let before = entries(&setup.store);
    let hit = setup
        .build(&setup.store, &["--sign-key", setup.key.to_str().unwrap()])
        .ok();
    assert!(hit.stderr.contains("(cache hit)"), "{}", hit.text());
    assert_eq!(entries(&setup.store), before);

    let bare_store = shell_badger_store(setup.dir.path(), "bare");
    let entries_before = read_json(&bare_store.join("index.json"))["manifests"]
        .as_array()
        .unwrap()
        .len();
    setup.build(&bare_store, &["--no-attestations"]).ok();
    let entries = read_json(&bare_store.join("index.json"))["manifests"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(entries, entries_before + 1, "only the DU's own name");
}

/// SBOMs the DU already carries that this store did not make (a pulled copy of the same
/// digest, an `attach`) are not what a new signed provenance vouches for: it names SBOMs
/// made from the image, and `verify` refuses the DU while the foreign ones stay attached.
#[test]
fn a_signed_provenance_never_names_sboms_it_did_not_make() {
    let setup = setup();
    setup.build(&setup.store, &["--no-attestations"]).ok();
    let fake = setup.dir.path().join("fake.json");
    std::fs::write(&fake, br#"{"spdxVersion":"SPDX-2.3","packages":[]}"#).unwrap();
    for artifact_type in ["application/spdx+json", "application/vnd.cyclonedx+json"] {
        Cmd::solum(&setup.store)
            .args(["attach", "app", "--artifact-type", artifact_type])
            .arg(&fake)
            .run()
            .ok();
    }
    let fake_digest = format!("sha256:{}", sha256_hex(&std::fs::read(&fake).unwrap()));
    setup.signed_build(&setup.store, &[]);
    let layout = setup.store.clone();
    let envelope: Value = serde_json::from_slice(
        &std::fs::read(blob(
            &layout,
            &referrer_layer(&layout, "application/vnd.in-toto+json"),
        ))
        .unwrap(),
    )
    .unwrap();
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        envelope["payload"].as_str().unwrap(),
    )
    .unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    let named = statement["predicate"]["runDetails"]["byproducts"].to_string();
    assert!(
        !named.contains(fake_digest.trim_start_matches("sha256:")),
        "the provenance names the attached SBOM: {named}"
    );
    let verified = setup.verify(&setup.store, "app");
    assert_eq!(verified.code, 1, "{}", verified.text());
    assert!(
        verified
            .stderr
            .contains("is not the one the signed provenance names"),
        "{}",
        verified.text()
    );
}

/// The first layer digest of the referrer of `artifact_type` in a layout.
fn referrer_layer(layout: &Path, artifact_type: &str) -> String {
    let index = read_json(&layout.join("index.json"));
    for entry in index["manifests"].as_array().unwrap() {
        if entry["artifactType"] == artifact_type {
            let manifest = read_json(&blob(layout, entry["digest"].as_str().unwrap()));
            return manifest["layers"][0]["digest"]
                .as_str()
                .unwrap()
                .to_string();
        }
    }
    panic!(
        "no referrer of type {artifact_type} in {}",
        layout.display()
    );
}

fn copy_tree(from: &Path, to: &Path) {
    Cmd::program("cp").arg("-a").arg(from).arg(to).run().ok();
}

#[test]
fn run_again_as_tester() {
    support::rerun_as_tester();
}
