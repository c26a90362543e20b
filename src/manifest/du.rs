//! The DU manifest: what a deployment unit is and how it runs, written as the
//! `org.solum.du.manifest` annotation of the DU's image manifest. It is derived from the
//! validated app file plus facts only the pipeline knows (badger digests, the resolved
//! commit, the test result, the image reference). The JSON is deterministic (sorted keys,
//! compact), because it is part of the manifest and so of the DU's digest. This module does
//! not decide any of those facts and does not write images.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::app::{AppFile, Port, Scaling, SecurityFlavor, Service};
use super::{heat, ManifestError, DU_ANNOTATION};
use crate::source::redact_url;

/// The working directory of a DU: the build contract puts the app at `/app`.
pub const WORKDIR: &str = "/app";
/// The user a DU runs as when neither its app file nor its badger names one (root in its
/// own user namespace when run rootless).
pub const USER: &str = "0:0";
/// What an app file's or badger manifest's `user` may say.
pub const USER_PATTERN: &str = "root, or UID:GID (numbers)";

/// A `user` value as `(uid, gid)`: `root`, or `UID:GID` in numbers. Names other than `root`
/// are not taken: nothing host-side reads an image's `/etc/passwd`.
pub fn numeric_user(value: &str) -> Option<(u32, u32)> {
    if value == "root" {
        return Some((0, 0));
    }
    let (uid, gid) = value.split_once(':')?;
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((number(uid)?, number(gid)?))
}

/// `root` as the `UID:GID` an image config's `User` carries; anything else as it is.
pub fn canonical_user(user: &str) -> String {
    match numeric_user(user) {
        Some((uid, gid)) => format!("{uid}:{gid}"),
        None => user.to_string(),
    }
}

/// Who a DU runs as: the app file's `user`, else its base's config `User` (the badger's),
/// else `None` (root, [`USER`]).
pub fn du_user(app_user: Option<&str>, base_user: Option<String>) -> Option<String> {
    match app_user {
        Some(user) => Some(canonical_user(user)),
        None => base_user.filter(|u| !u.is_empty()),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuManifest {
    pub version: u32,
    pub name: String,
    pub runtime: DuRuntime,
    pub environment: BTreeMap<String, String>,
    pub ports: Vec<Port>,
    pub scaling: Scaling,
    pub services: Vec<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    pub security_flavor: SecurityFlavor,
    pub badgers: Vec<BadgerUsed>,
    pub source: DuSource,
    /// Absent when the app has no `test_cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<DuTests>,
    /// A HOT template deploying the DU (see [`heat::template`]).
    pub heat: String,
}

/// How the DU's process starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuRuntime {
    pub command: Vec<String>,
    pub workdir: String,
    pub user: String,
}

/// A badger the DU was built on, pinned by digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadgerUsed {
    pub name: String,
    pub version: String,
    /// The badger image's manifest digest (`sha256:…`).
    pub digest: String,
}

/// Where the DU's code came from; `revision` is the resolved commit (`SHA-dirty` for a
/// checkout's working tree that differs from it), `path` the subdirectory built.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The unit-test gate's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuTests {
    pub command: String,
    pub passed: bool,
}

/// What the pipeline knows when it commits a DU.
#[derive(Clone, Debug)]
pub struct DuInputs<'a> {
    pub app: &'a AppFile,
    /// The badgers used, in build order.
    pub badgers: Vec<BadgerUsed>,
    /// The badgers' environments merged in build order; the app's environment wins over it.
    pub badger_environment: BTreeMap<String, String>,
    /// The command when the app gives no `run_cmd` (e.g. the badger image's Cmd).
    pub default_command: Vec<String>,
    /// The resolved commit sha of the source (none for an artifact or a plain directory).
    pub revision: Option<String>,
    /// The image reference the Heat snippet deploys (e.g. `registry.example.org/app@sha256:…`).
    pub image: &'a str,
    /// Whether `test_cmd` exited 0 (ignored when the app has none).
    pub tests_passed: bool,
}

impl DuManifest {
    /// Build the DU manifest, including its Heat snippet.
    pub fn new(inputs: &DuInputs<'_>) -> Result<DuManifest, ManifestError> {
        let app = inputs.app;
        let command = match &app.workflow_config.run_cmd {
            Some(cmd) => vec!["/bin/sh".to_string(), "-c".to_string(), cmd.clone()],
            None => inputs.default_command.clone(),
        };
        let mut environment = inputs.badger_environment.clone();
        environment.extend(app.run_environment());
        let mut du = DuManifest {
            version: 1,
            name: app.name.clone(),
            runtime: DuRuntime {
                command,
                workdir: WORKDIR.to_string(),
                user: USER.to_string(),
            },
            environment,
            ports: app.ports.clone(),
            scaling: app.scaling_or_default(),
            services: app.services.clone(),
            url: app.url.clone(),
            flavor: app.flavor.clone(),
            security_flavor: app.security_flavor,
            badgers: inputs.badgers.clone(),
            // The annotation is public: a token in a source URL (`https://TOKEN@host/…`,
            // `?private_token=…`) is kept out of it, and so out of the provenance and the
            // SBOMs, which read the source from here.
            source: DuSource {
                repository: app.source.repository.as_deref().map(redact_url),
                revision: inputs.revision.clone().or_else(|| {
                    app.source
                        .repository
                        .as_ref()
                        .and(app.source.revision.clone())
                }),
                artifact: app.source.artifact.as_deref().map(redact_url),
                path: app.source.path.clone(),
            },
            tests: app.workflow_config.tests().map(|command| DuTests {
                command: command.to_string(),
                passed: inputs.tests_passed,
            }),
            heat: String::new(),
        };
        du.heat = heat::template(&du, inputs.image)?;
        Ok(du)
    }

    /// The annotation value: compact JSON with sorted keys, byte-identical for equal inputs.
    pub fn to_json(&self) -> Result<String, ManifestError> {
        let to_json = |source| ManifestError::ToJson {
            what: "DU manifest",
            source,
        };
        // Going through `Value` sorts object keys (serde_json's map is a BTreeMap).
        let value = serde_json::to_value(self).map_err(to_json)?;
        serde_json::to_string(&value).map_err(to_json)
    }

    /// Read the `org.solum.du.manifest` annotation back.
    pub fn from_json(json: &str) -> Result<DuManifest, ManifestError> {
        serde_json::from_str(json).map_err(|source| ManifestError::DuJson {
            key: DU_ANNOTATION,
            source,
        })
    }
}
