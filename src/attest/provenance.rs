//! SLSA provenance of a DU: an in-toto Statement v1 whose predicate is SLSA Provenance v1
//! (<https://slsa.dev/spec/v1.0/provenance>), written from what the build was asked
//! (`externalParameters`), what it resolved (`resolvedDependencies`: the source commit,
//! every badger and the base image under it, by digest) and how it ran (`runDetails`).
//!
//! The `buildType` is [`BUILD_TYPE`], documented in `docs/provenance.md`: that page says
//! what each parameter means, so a verifier can rebuild the DU from the statement alone.
//! What never goes in: secret values, build-time environment values, proxy passwords,
//! registry credentials. Of `--secret` and `--build-env` only the *names* are kept (the
//! build key holds the same names), so an auditor sees that a secret was given without
//! learning it. The statement is plain JSON with sorted keys (serde_json's map), so the
//! same inputs give the same bytes; the times and the invocation id differ per run.

use crate::image::Digest;
use crate::manifest::DuManifest;
use serde_json::{json, Map, Value};

/// The in-toto Statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA Provenance v1 predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// Our build type: the meaning of `externalParameters` (docs/provenance.md).
pub const BUILD_TYPE: &str = "https://solum-build.dev/provenance/du-build/v1";
/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Who ran the build: the command line or the server (which may hold a signing key of
/// its own; see the README's SLSA section).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builder {
    Cli,
    Server,
}

impl Builder {
    /// `builder.id`: a URI naming the builder and the tool's version.
    pub fn id(self) -> String {
        let kind = match self {
            Builder::Cli => "cli",
            Builder::Server => "server",
        };
        format!(
            "https://solum-build.dev/builder/{kind}@v{}",
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// A file or blob the build produced besides the DU, named by digest.
#[derive(Clone, Debug)]
pub struct Byproduct {
    pub name: String,
    pub media_type: String,
    pub digest: Digest,
}

/// A badger the DU was built on, with the base image under it when the badger says.
#[derive(Clone, Debug)]
pub struct ResolvedBadger {
    pub name: String,
    pub version: String,
    pub digest: Digest,
    /// `org.opencontainers.image.base.name` / `.digest` of the badger image.
    pub base: Option<(String, Digest)>,
}

/// The build options a statement records: what the caller chose, none of it secret.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    pub tag: String,
    pub network_host: bool,
    pub isolation: String,
    pub timeout_seconds: Option<u64>,
    pub no_cache: bool,
    pub run_tests: bool,
    pub compression: String,
    /// Command-line values laid over the app file (`--run-cmd`, `--test-cmd`, …), by flag.
    pub overrides: Vec<(String, String)>,
    /// The names of `--build-env` variables, never their values.
    pub build_env_names: Vec<String>,
    /// The ids of `--secret`s, never their values.
    pub secret_ids: Vec<String>,
    pub ca_certificates: bool,
    pub cache_from: Vec<String>,
    pub cache_to: Option<String>,
}

/// Everything one statement says.
#[derive(Clone, Debug)]
pub struct ProvenanceInputs<'a> {
    /// The DU's store name and manifest digest: the statement's one subject.
    pub subject_name: &'a str,
    pub subject_digest: &'a Digest,
    /// The DU manifest (its `org.solum.du.manifest` annotation).
    pub du: &'a DuManifest,
    /// Where the app file came from (a path, or the server's record) and its digest.
    pub app_file: Option<(String, Digest)>,
    pub badgers: Vec<ResolvedBadger>,
    pub options: BuildOptions,
    pub builder: Builder,
    pub invocation_id: String,
    /// RFC 3339.
    pub started_on: String,
    pub finished_on: String,
    pub byproducts: Vec<Byproduct>,
}

/// The statement as JSON bytes.
pub fn statement(inputs: &ProvenanceInputs<'_>) -> Vec<u8> {
    let value = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": inputs.subject_name,
            "digest": digest_set(inputs.subject_digest),
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external_parameters(inputs),
                "resolvedDependencies": resolved_dependencies(inputs),
            },
            "runDetails": {
                "builder": {
                    "id": inputs.builder.id(),
                    "version": { "solum-build": env!("CARGO_PKG_VERSION") },
                },
                "metadata": {
                    "invocationId": inputs.invocation_id,
                    "startedOn": inputs.started_on,
                    "finishedOn": inputs.finished_on,
                },
                "byproducts": inputs.byproducts.iter().map(|b| json!({
                    "name": b.name,
                    "mediaType": b.media_type,
                    "digest": digest_set(&b.digest),
                })).collect::<Vec<_>>(),
            },
        },
    });
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

/// `{"sha256": "<hex>"}`: in-toto's DigestSet.
fn digest_set(digest: &Digest) -> Value {
    json!({ "sha256": digest.hex() })
}

fn external_parameters(inputs: &ProvenanceInputs<'_>) -> Value {
    let du = inputs.du;
    let options = &inputs.options;
    let mut source = Map::new();
    for (key, value) in [
        ("repository", &du.source.repository),
        ("revision", &du.source.revision),
        ("artifact", &du.source.artifact),
        ("path", &du.source.path),
    ] {
        if let Some(value) = value {
            source.insert(key.to_string(), json!(value));
        }
    }
    let mut app = Map::new();
    app.insert("name".into(), json!(du.name));
    if let Some((origin, digest)) = &inputs.app_file {
        app.insert(
            "file".into(),
            json!({ "uri": origin, "digest": digest_set(digest) }),
        );
    }
    json!({
        "app": app,
        "source": source,
        "badgers": inputs.badgers.iter().map(|b| format!("{}@{}", b.name, b.digest)).collect::<Vec<_>>(),
        "options": {
            "tag": options.tag,
            "network": if options.network_host { "host" } else { "none" },
            "isolation": options.isolation,
            "timeoutSeconds": options.timeout_seconds,
            "noCache": options.no_cache,
            "runTests": options.run_tests,
            "compression": options.compression,
            "overrides": options.overrides.iter().map(|(flag, value)| json!({"flag": flag, "value": value})).collect::<Vec<_>>(),
            "buildEnvNames": options.build_env_names,
            "secretIds": options.secret_ids,
            "caCertificates": options.ca_certificates,
            "cacheFrom": options.cache_from,
            "cacheTo": options.cache_to,
        },
    })
}

/// The source commit (for a git source), then every badger and the base under it.
fn resolved_dependencies(inputs: &ProvenanceInputs<'_>) -> Vec<Value> {
    let mut dependencies = Vec::new();
    let source = &inputs.du.source;
    if let (Some(repository), Some(revision)) = (&source.repository, &source.revision) {
        let mut entry = Map::new();
        entry.insert("uri".into(), json!(format!("git+{repository}@{revision}")));
        if is_commit(revision) {
            entry.insert("digest".into(), json!({ "gitCommit": revision }));
        }
        dependencies.push(Value::Object(entry));
    }
    for badger in &inputs.badgers {
        dependencies.push(json!({
            "name": badger.name,
            "uri": format!("pkg:oci/{}@{}", purl_name(&badger.name), badger.digest),
            "digest": digest_set(&badger.digest),
            "annotations": { "version": badger.version, "role": "badger" },
        }));
        if let Some((name, digest)) = &badger.base {
            dependencies.push(json!({
                "name": name,
                "uri": format!("pkg:oci/{}@{}", purl_name(name), digest),
                "digest": digest_set(digest),
                "annotations": { "role": "base image", "of": badger.name },
            }));
        }
    }
    dependencies
}

/// A full git commit id (SHA-1 or SHA-256), the only revision that is a digest.
fn is_commit(revision: &str) -> bool {
    matches!(revision.len(), 40 | 64) && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The last path segment of an image name, as a purl's name (`badgers/python3:3.11` →
/// `python3`), percent-encoding what a purl name may not hold.
fn purl_name(name: &str) -> String {
    let without_tag = match name.rsplit_once(':') {
        Some((head, tail)) if !tail.contains('/') => head,
        _ => name,
    };
    let last = without_tag.rsplit('/').next().unwrap_or(without_tag);
    last.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(byte: char) -> Digest {
        format!("sha256:{}", byte.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn du() -> DuManifest {
        let mut du: DuManifest = serde_json::from_value(json!({
            "version": 1, "name": "hello",
            "runtime": {"command": ["/app/run"], "workdir": "/app", "user": "0:0"},
            "environment": {}, "ports": [], "scaling": {"min": 1, "max": 1},
            "services": [], "security_flavor": "restricted",
            "badgers": [], "source": {}, "heat": ""
        }))
        .expect("a minimal DU manifest");
        du.source.repository = Some("https://git.example/hello.git".into());
        du.source.revision = Some("a".repeat(40));
        du
    }

    #[test]
    fn the_statement_names_the_du_its_commit_its_badgers_and_no_secret_value() {
        let du = du();
        let subject = digest('1');
        let inputs = ProvenanceInputs {
            subject_name: "hello",
            subject_digest: &subject,
            du: &du,
            app_file: Some(("app.yaml".into(), digest('2'))),
            badgers: vec![ResolvedBadger {
                name: "badgers/shell:1".into(),
                version: "1".into(),
                digest: digest('3'),
                base: Some(("base/busybox".into(), digest('4'))),
            }],
            options: BuildOptions {
                build_env_names: vec!["TOKEN".into()],
                secret_ids: vec!["npmrc".into()],
                ..BuildOptions::default()
            },
            builder: Builder::Cli,
            invocation_id: "id".into(),
            started_on: "2026-01-01T00:00:00Z".into(),
            finished_on: "2026-01-01T00:00:01Z".into(),
            byproducts: vec![Byproduct {
                name: "build.log".into(),
                media_type: "text/plain".into(),
                digest: digest('5'),
            }],
        };
        let bytes = statement(&inputs);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["_type"], STATEMENT_TYPE);
        assert_eq!(value["subject"][0]["digest"]["sha256"], "1".repeat(64));
        assert_eq!(value["predicateType"], PREDICATE_TYPE);
        let dependencies = &value["predicate"]["buildDefinition"]["resolvedDependencies"];
        assert_eq!(dependencies[0]["digest"]["gitCommit"], "a".repeat(40));
        assert_eq!(
            dependencies[1]["uri"],
            format!("pkg:oci/shell@{}", digest('3'))
        );
        assert_eq!(dependencies[2]["digest"]["sha256"], "4".repeat(64));
        let options = &value["predicate"]["buildDefinition"]["externalParameters"]["options"];
        assert_eq!(options["buildEnvNames"][0], "TOKEN");
        assert_eq!(
            value["predicate"]["runDetails"]["byproducts"][0]["name"],
            "build.log"
        );
        assert!(value["predicate"]["runDetails"]["builder"]["id"]
            .as_str()
            .unwrap()
            .ends_with(concat!("@v", env!("CARGO_PKG_VERSION"))));
        // Same inputs, same bytes.
        assert_eq!(bytes, statement(&inputs));
    }

    #[test]
    fn only_full_commit_ids_count_as_digests() {
        assert!(is_commit(&"0f".repeat(20)));
        assert!(!is_commit("main"));
        assert!(!is_commit("0f0f0f0"));
        assert_eq!(purl_name("badgers/python3:3.11"), "python3");
        assert_eq!(purl_name("127.0.0.1:5000/x/y"), "y");
        assert_eq!(purl_name("a b"), "a%20b");
    }
}
