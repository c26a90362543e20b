//! The badger manifest (`badgers/NAME/badger.yaml`): what a badger is built from, what it
//! packages (searchable by `badger search`), the environment it gives builds, its build
//! command and optional setup script. The same document, as JSON, is the
//! `org.solum.badger.manifest` annotation of a badger image, and is read back with the same
//! decoder so an annotation gets the same checks as a file. This module does not build
//! badgers and does not look at the badger directory beyond reading `badger.yaml`.

use crate::io_at::IoAt;
use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::app::{environment, pattern, valid_name, NAME_PATTERN};
use super::badger_steps::{self, Dependencies, Detect};
use super::yaml::{self, Decoder, Fields, Node};
use super::{ManifestError, Problem, BADGER_ANNOTATION};
use crate::image::reference::ImageReference;

const BADGER_KEYS: &[&str] = &[
    "name",
    "version",
    "description",
    "from",
    "depends",
    "packages",
    "environment",
    "build",
    "setup",
    "network",
    "user",
    "dependencies",
    "detect",
    "command",
];
const PACKAGE_KEYS: &[&str] = &["name", "version"];
const NETWORKS: &[&str] = &["none", "host"];
/// Where the badger's `build.sh` is installed and what runs by default.
pub const DEFAULT_BUILD: &str = "/solum/bin/build.sh";

/// A validated badger manifest.
///
/// The serde form is the document itself (so it can be parsed back); it does not deny
/// unknown fields because `x-` keys are flattened into `extensions`: parse untrusted text
/// with [`BadgerManifest::parse`], which does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadgerManifest {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The image this badger is made from (a reference), or another badger's image.
    pub from: String,
    /// Badgers this one is built on (by name).
    #[serde(default)]
    pub depends: Vec<String>,
    #[serde(default)]
    pub packages: Vec<Package>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// The build command run in `/app` (absolute path inside the image).
    pub build: String,
    /// A script relative to the badger directory, run once when the badger image is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    /// Network for `setup` only.
    #[serde(default)]
    pub network: Network,
    /// Who images on this badger run as (`root` or `UID:GID`), the image config's `User`;
    /// the setup script makes that user. Builds still run as root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The dependency step (see [`Dependencies`]): run on the named inputs alone, its
    /// result is a layer of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,
    /// The detect rule for `badger: auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect: Option<Detect>,
    /// What a DU on this badger runs when its app file gives no `run_cmd` (and there is no
    /// Procfile): the badger image's `Cmd`, `/bin/sh -c COMMAND`. Without it, the `from`
    /// image's `Cmd` stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

/// A piece of software the badger packages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    #[default]
    None,
    Host,
}

impl BadgerManifest {
    /// Read and validate `badger.yaml` (or any file holding a badger manifest).
    pub fn load(path: &Path) -> Result<BadgerManifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(IoAt::at(path, "read"))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse and validate manifest text (YAML, or the JSON of the annotation).
    pub fn parse(text: &str, origin: &str) -> Result<BadgerManifest, ManifestError> {
        let root = yaml::load(text, origin)?;
        let mut d = Decoder::new(origin);
        let manifest = decode(&mut d, &root);
        match manifest {
            Some(m) if d.errors.is_empty() => Ok(m),
            _ => Err(ManifestError::Invalid {
                origin: origin.to_string(),
                errors: d.errors,
            }),
        }
    }

    /// Read the `org.solum.badger.manifest` annotation of a badger image.
    pub fn from_annotation(json: &str) -> Result<BadgerManifest, ManifestError> {
        Self::parse(json, BADGER_ANNOTATION)
    }

    /// The JSON for the `org.solum.badger.manifest` annotation: compact, keys sorted, so the
    /// same manifest always gives the same bytes (and the same badger image digest).
    pub fn to_json(&self) -> Result<String, ManifestError> {
        let to_json = |source| ManifestError::ToJson {
            what: "badger manifest",
            source,
        };
        // Going through `Value` sorts object keys (serde_json's map is a BTreeMap).
        let value = serde_json::to_value(self).map_err(to_json)?;
        serde_json::to_string(&value).map_err(to_json)
    }

    /// `badger search TERM`: a case-insensitive substring match on the name, version,
    /// description, the packages' names and versions, and the detect files (a language is
    /// found by its description, e.g. `javascript`, or by its marking file, `go.mod`). An
    /// empty term matches everything.
    pub fn matches(&self, term: &str) -> bool {
        let term = term.to_lowercase();
        let hit = |s: &str| s.to_lowercase().contains(&term);
        hit(&self.name)
            || hit(&self.version)
            || self.description.as_deref().is_some_and(hit)
            || self
                .packages
                .iter()
                .any(|p| hit(&p.name) || p.version.as_deref().is_some_and(hit))
            // The files that mark its language: `badger search package.json`.
            || self
                .detect
                .as_ref()
                .is_some_and(|detect| detect.files.iter().any(|f| hit(f)))
    }
}

fn decode(d: &mut Decoder<'_>, root: &Node<'_>) -> Option<BadgerManifest> {
    let f = d.mapping(root, "", BADGER_KEYS)?;
    let name = required(d, &f, root, "name");
    if let Some(name) = &name {
        if !valid_name(name) {
            let n = f.get("name").unwrap_or(root);
            d.error(n, "name", pattern(name, NAME_PATTERN));
        }
    }
    let version = required(d, &f, root, "version");
    let description = f
        .get("description")
        .and_then(|n| d.nonempty_string(n, "description"));
    let from = required(d, &f, root, "from");
    if let (Some(value), Some(n)) = (&from, f.get("from")) {
        if let Err(e) = ImageReference::from_str(value) {
            let reason = e.to_string();
            let value = value.clone();
            d.error(n, "from", Problem::Reference { value, reason });
        }
    }
    let mut depends = Vec::new();
    if let Some(n) = f.get("depends") {
        for (i, (dep, at)) in d
            .string_list(n, "depends")
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if !valid_name(&dep) {
                d.error_at(at, &format!("depends[{i}]"), pattern(&dep, NAME_PATTERN));
            }
            depends.push(dep);
        }
    }
    let packages = f
        .get("packages")
        .map(|n| packages(d, n))
        .unwrap_or_default();
    let environment = f
        .get("environment")
        .map(|n| environment(d, n, "environment"))
        .unwrap_or_default();
    let mut build = DEFAULT_BUILD.to_string();
    if let Some(n) = f.get("build") {
        if let Some(b) = d.nonempty_string(n, "build") {
            if !image_path(&b) {
                let problem = Problem::Pattern {
                    value: b.clone(),
                    pattern: "an absolute, normalised path inside the image (no `..`, `.` or `//`)",
                };
                d.error(n, "build", problem);
            }
            build = b;
        }
    }
    let mut setup = None;
    if let Some(n) = f.get("setup") {
        if let Some(s) = d.nonempty_string(n, "setup") {
            if !stays_inside(&s) {
                d.error(n, "setup", Problem::EscapingPath { value: s.clone() });
            }
            setup = Some(s);
        }
    }
    let mut network = Network::None;
    if let Some(n) = f.get("network") {
        if let Some(v) = d.string(n, "network") {
            match v.as_str() {
                "none" => network = Network::None,
                "host" => network = Network::Host,
                _ => d.error(
                    n,
                    "network",
                    Problem::NotOneOf {
                        value: v,
                        allowed: NETWORKS,
                    },
                ),
            }
        }
    }
    let user = super::app::user(d, &f);
    let dependencies = f
        .get("dependencies")
        .and_then(|n| badger_steps::dependencies(d, n));
    let detect = f.get("detect").and_then(|n| badger_steps::detect(d, n));
    let command = f
        .get("command")
        .and_then(|n| d.nonempty_string(n, "command"));
    let extensions = f
        .entries()
        .filter(|(k, ..)| k.starts_with("x-"))
        .map(|(k, _, v)| (k.to_string(), yaml::to_json(v)))
        .collect();
    Some(BadgerManifest {
        name: name?,
        version: version?,
        description,
        from: from?,
        depends,
        packages,
        environment,
        build,
        setup,
        network,
        user,
        dependencies,
        detect,
        command,
        extensions,
    })
}

fn required(d: &mut Decoder<'_>, f: &Fields<'_>, root: &Node<'_>, key: &str) -> Option<String> {
    if let Some(n) = f.get(key) {
        d.nonempty_string(n, key)
    } else {
        d.error(root, key, Problem::Missing);
        None
    }
}

fn packages(d: &mut Decoder<'_>, n: &Node<'_>) -> Vec<Package> {
    let mut out = Vec::new();
    for (i, item) in d
        .sequence(n, "packages")
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("packages[{i}]");
        let Some(p) = d.mapping(item, &field, PACKAGE_KEYS) else {
            continue;
        };
        let name = if let Some(n) = p.get("name") {
            d.nonempty_string(n, &p.path_of("name"))
        } else {
            d.error(item, &p.path_of("name"), Problem::Missing);
            None
        };
        let version = p
            .get("version")
            .and_then(|n| d.nonempty_string(n, &p.path_of("version")));
        if let Some(name) = name {
            out.push(Package { name, version });
        }
    }
    out
}

/// A relative path with no `..`, so `setup` cannot name a file outside the badger directory.
fn stays_inside(path: &str) -> bool {
    if path.contains('\0') {
        return false;
    }
    let p = Path::new(path);
    p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && p.components().any(|c| matches!(c, Component::Normal(_)))
}

/// An absolute, normalised path naming a file inside the image: `/` then non-empty
/// components, none `.` or `..`, no trailing `/`, no NUL. `build` is where `build.sh` is
/// installed on the host side, so it must not be able to climb out of the image root.
pub fn image_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    !rest.is_empty()
        && !path.contains('\0')
        && rest
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}
