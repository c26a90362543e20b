//! The application file (`app.yaml`): what to build, from which source, on which badger,
//! and how the DU runs. Solum's v1 app file is accepted unchanged (`languagepack`,
//! `trigger_actions`, `workflow_config`, plain-integer `ports`); the fields this builder adds
//! are described in `formats.md`. A port may also be text, `"8080"` or `"53/udp"`, as
//! Dockerfile `EXPOSE` writes it (see `ports.rs`). Solum's `test_cmd: ''` means no tests;
//! `workflow_config.build_cmd` is the app's own build step; the DU gets `PORT` from the
//! first port ([`AppFile::run_environment`]). This module parses and validates; it never
//! touches the source, the store or the network.
//!
//! Order of work in [`AppFile::parse_with`]: shape (types, unknown keys) field by field,
//! then the caller's command-line [`Overrides`], then the checks that span several fields
//! (exactly one source, scaling order), so a `--source` flag can stand in for a missing
//! `source.repository` and an error about an overridden value names the flag, not a line.

use crate::io_at::IoAt;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::yaml::{self, Decoder, Fields, Node};
use super::{FieldError, Location, ManifestError, Origin, Problem};
use crate::image::reference::ImageReference;

const APP_KEYS: &[&str] = &[
    "version",
    "name",
    "description",
    "languagepack",
    "badger",
    "badgers",
    "source",
    "workflow_config",
    "trigger_actions",
    "ports",
    "environment",
    "build_environment",
    "services",
    "scaling",
    "url",
    "flavor",
    "security_flavor",
    "user",
];
const SOURCE_KEYS: &[&str] = &["repository", "revision", "artifact", "path"];
const WORKFLOW_KEYS: &[&str] = &["run_cmd", "test_cmd", "build_cmd"];
const SERVICE_KEYS: &[&str] = &["name", "type"];
const SCALING_KEYS: &[&str] = &["min", "max"];
const SECURITY_FLAVORS: &[&str] = &["restricted", "unrestricted"];
/// Solum's trigger actions. The builder always builds and tests (`--skip-tests` aside);
/// `deploy` asks for a push where a push target is configured (see [`AppFile::asks_deploy`]).
/// The badger name that asks for the badger to be found from the source (see
/// `pipeline::detect`); an app file that names no badger means it too.
pub const AUTO_BADGER: &str = "auto";
const TRIGGER_ACTIONS: &[&str] = &["unittest", "test", "build", "deploy"];

pub(crate) const NAME_PATTERN: &str = "^[a-z][a-z0-9-_]{0,99}$";
pub(crate) const ENV_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// A validated application file.
///
/// The serde form is the document itself (so it can be parsed back); it does not deny
/// unknown fields because `x-` keys are flattened into `extensions`: parse untrusted text
/// with [`AppFile::parse`], which does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppFile {
    pub version: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The first badger (`badger`, or Solum's `languagepack`): an image reference, or
    /// [`AUTO_BADGER`] (also what an app file naming no badger gets).
    pub badger: String,
    /// More badgers stacked after `badger`, built in order.
    #[serde(default)]
    pub badgers: Vec<String>,
    pub source: Source,
    #[serde(default)]
    pub workflow_config: WorkflowConfig,
    /// Solum's `trigger_actions`, kept as written; they do not change what is built.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trigger_actions: Vec<String>,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Variables of the build and test steps only (a package index, a build mode): never
    /// in the DU's config, its DU manifest or its Heat snippet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_environment: BTreeMap<String, String>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    #[serde(default)]
    pub security_flavor: SecurityFlavor,
    /// Who the DU runs as (`root` or `UID:GID`), over its badger's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Top-level `x-` keys: kept, never interpreted.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

/// Where the app's code comes from: a repository (dir, URL, bare repo) at a revision, or a
/// ready-made artifact. After validation exactly one of `repository` and `artifact` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// The subdirectory of the repository or folder to build (checked when fetched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The commands of the build contract.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    /// Becomes the image's Cmd, through `/bin/sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_cmd: Option<String>,
    /// Runs after the build on a throwaway layer; the DU is made only if it exits 0.
    /// Kept as written: empty (Solum's `test_cmd: ''`) means the app has no tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_cmd: Option<String>,
    /// The app's own build step, run in `/app` after the badgers' build commands, for
    /// framework steps a badger does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_cmd: Option<String>,
}

impl WorkflowConfig {
    /// The test command to run: `None` when there is none or it is empty (no tests).
    pub fn tests(&self) -> Option<&str> {
        self.test_cmd
            .as_deref()
            .filter(|command| !command.trim().is_empty())
    }

    /// Whether `test_cmd` is given but empty: the app says it has no tests.
    pub fn says_no_tests(&self) -> bool {
        self.test_cmd
            .as_deref()
            .is_some_and(|command| command.trim().is_empty())
    }
}

/// A port the DU listens on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// Something the app needs beside itself (a database...), for the Heat snippet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    pub min: u32,
    pub max: u32,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling { min: 1, max: 1 }
    }
}

/// `restricted` (default): no network and no setuid, at build and at run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityFlavor {
    #[default]
    Restricted,
    Unrestricted,
}

/// Command-line values that replace the file's, applied before validation. `source` and
/// `artifact` replace the whole source choice (giving one clears the other from the file).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--badger REF`: replaces `badger`/`languagepack`.
    pub badger: Option<String>,
    /// `--source URL|DIR`.
    pub source: Option<String>,
    /// `--revision REV`.
    pub revision: Option<String>,
    /// `--source-path DIR`: replaces `source.path`.
    pub source_path: Option<String>,
    /// `--artifact FILE`.
    pub artifact: Option<String>,
    /// `--run-cmd CMD`.
    pub run_cmd: Option<String>,
    /// `--test-cmd CMD` (empty: no tests), whatever the file says.
    pub test_cmd: Option<String>,
    /// `--build-cmd CMD`.
    pub build_cmd: Option<String>,
    /// `--port N`…: when any is given, they replace the file's ports (tcp).
    pub ports: Vec<u32>,
    /// `--env K=V`…: added to (and winning over) the file's environment.
    pub environment: Vec<(String, String)>,
    /// `--build-env K=V`…: added to (and winning over) the file's `build_environment`.
    pub build_environment: Vec<(String, String)>,
}

/// The app file's fields before the cross-field checks, with where each came from.
struct Draft {
    file: AppFile,
    root: Location,
    badger_at: Option<Origin>,
    repository_at: Option<Origin>,
    artifact_at: Option<Origin>,
    scaling_at: Option<Location>,
}

impl AppFile {
    /// Read and validate an app file; errors name the file as given.
    pub fn load(path: &Path) -> Result<AppFile, ManifestError> {
        Self::load_with(path, &Overrides::default())
    }

    /// [`AppFile::load`] with command-line overrides applied before validation.
    pub fn load_with(path: &Path, overrides: &Overrides) -> Result<AppFile, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(IoAt::at(path, "read"))?;
        Self::parse_with(&text, &path.display().to_string(), overrides)
    }

    /// Parse and validate app-file text (YAML or JSON); `origin` is the name used in errors.
    pub fn parse(text: &str, origin: &str) -> Result<AppFile, ManifestError> {
        Self::parse_with(text, origin, &Overrides::default())
    }

    /// Parse, apply `overrides`, then validate.
    pub fn parse_with(
        text: &str,
        origin: &str,
        overrides: &Overrides,
    ) -> Result<AppFile, ManifestError> {
        let root = yaml::load(text, origin)?;
        let mut d = Decoder::new(origin);
        let draft = decode(&mut d, &root);
        let mut errors = d.errors;
        if let Some(mut draft) = draft {
            apply(&mut draft, overrides, origin, &mut errors);
            check(&draft, origin, &mut errors);
            if errors.is_empty() {
                let mut file = draft.file;
                // No badger named anywhere: it is found from the source at build time.
                if file.badger.is_empty() {
                    file.badger = AUTO_BADGER.to_string();
                }
                return Ok(file);
            }
        }
        Err(ManifestError::Invalid {
            origin: origin.to_string(),
            errors,
        })
    }

    /// The badgers to build on, in order: `badger` then `badgers`.
    pub fn all_badgers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.badger.as_str()).chain(self.badgers.iter().map(String::as_str))
    }

    /// The DU's environment from the app: `environment`, and `PORT` set to the first of
    /// `ports` when there are ports and `environment` does not set `PORT` itself (the
    /// convention of Solum's and Heroku's apps).
    pub fn run_environment(&self) -> BTreeMap<String, String> {
        let mut environment = self.environment.clone();
        if let Some(first) = self.ports.first() {
            environment
                .entry("PORT".to_string())
                .or_insert_with(|| first.port.to_string());
        }
        environment
    }

    /// Whether Solum's `trigger_actions` ask for `deploy`: a push, where one is configured.
    pub fn asks_deploy(&self) -> bool {
        self.trigger_actions.iter().any(|action| action == "deploy")
    }

    /// `scaling`, or 1/1 when the file gives none.
    pub fn scaling_or_default(&self) -> Scaling {
        self.scaling.unwrap_or_default()
    }
}

fn decode(d: &mut Decoder<'_>, root: &Node<'_>) -> Option<Draft> {
    let f = d.mapping(root, "", APP_KEYS)?;
    let mut file = AppFile {
        version: 1,
        name: String::new(),
        description: None,
        badger: String::new(),
        badgers: Vec::new(),
        source: Source::default(),
        workflow_config: WorkflowConfig::default(),
        trigger_actions: Vec::new(),
        ports: Vec::new(),
        environment: BTreeMap::new(),
        build_environment: BTreeMap::new(),
        services: Vec::new(),
        scaling: None,
        url: None,
        flavor: None,
        security_flavor: SecurityFlavor::Restricted,
        user: None,
        extensions: BTreeMap::new(),
    };
    let mut draft_badger_at = None;
    if let Some(n) = f.get("version") {
        if let Some(v) = d.string(n, "version") {
            if v != "1" {
                d.error(n, "version", Problem::Version { value: v });
            }
        }
    }
    match f.get("name") {
        Some(n) => {
            if let Some(name) = d.string(n, "name") {
                if !valid_name(&name) {
                    d.error(n, "name", pattern(&name, NAME_PATTERN));
                }
                file.name = name;
            }
        }
        None => d.error(root, "name", Problem::Missing),
    }
    file.description = opt_string(d, &f, "description");
    // `languagepack` is Solum's word for a badger: either may be used, not both.
    let badger = f.get("badger").map(|n| ("badger", n));
    let languagepack = f.get("languagepack").map(|n| ("languagepack", n));
    if let (Some(_), Some((_, lp))) = (badger, languagepack) {
        let key = f.key_node("languagepack").unwrap_or(lp);
        d.error(
            key,
            "languagepack",
            Problem::Conflict {
                other: "badger".to_string(),
            },
        );
    }
    if let Some((field, n)) = badger.or(languagepack) {
        if let Some(r) = reference(d, n, field) {
            file.badger = r;
            draft_badger_at = Some(Origin::File(yaml::location(n)));
        }
    }
    if let Some(n) = f.get("badgers") {
        if let Some(items) = d.sequence(n, "badgers") {
            for (i, item) in items.iter().enumerate() {
                if let Some(r) = reference(d, item, &format!("badgers[{i}]")) {
                    file.badgers.push(r);
                }
            }
        }
    }
    let (mut repository_at, mut artifact_at) = (None, None);
    if let Some(n) = f.get("source") {
        if let Some(s) = d.mapping(n, "source", SOURCE_KEYS) {
            file.source.repository = opt_string(d, &s, "repository");
            repository_at = s.get("repository").map(|n| Origin::File(yaml::location(n)));
            file.source.revision = opt_string(d, &s, "revision");
            file.source.artifact = opt_string(d, &s, "artifact");
            file.source.path = opt_string(d, &s, "path");
            artifact_at = s.get("artifact").map(|n| Origin::File(yaml::location(n)));
        }
    }
    if let Some(n) = f.get("workflow_config") {
        if let Some(w) = d.mapping(n, "workflow_config", WORKFLOW_KEYS) {
            file.workflow_config.run_cmd = opt_string(d, &w, "run_cmd");
            // Empty is allowed here: Solum's `test_cmd: ''` says the app has no tests.
            file.workflow_config.test_cmd = w
                .get("test_cmd")
                .and_then(|n| d.string(n, "workflow_config.test_cmd"));
            file.workflow_config.build_cmd = opt_string(d, &w, "build_cmd");
        }
    }
    if let Some(n) = f.get("trigger_actions") {
        for (action, at) in d.string_list(n, "trigger_actions").unwrap_or_default() {
            if !TRIGGER_ACTIONS.contains(&action.as_str()) {
                let problem = Problem::NotOneOf {
                    value: action.clone(),
                    allowed: TRIGGER_ACTIONS,
                };
                d.error_at(at, "trigger_actions", problem);
            }
            file.trigger_actions.push(action);
        }
    }
    if let Some(n) = f.get("ports") {
        file.ports = super::ports::ports(d, n);
    }
    if let Some(n) = f.get("environment") {
        file.environment = environment(d, n, "environment");
    }
    if let Some(n) = f.get("build_environment") {
        file.build_environment = environment(d, n, "build_environment");
    }
    if let Some(n) = f.get("services") {
        file.services = services(d, n);
    }
    let mut scaling_at = None;
    if let Some(n) = f.get("scaling") {
        if let Some(s) = d.mapping(n, "scaling", SCALING_KEYS) {
            let min = s
                .get("min")
                .and_then(|n| d.integer_in(n, "scaling.min", 0, 10_000));
            let max = s
                .get("max")
                .and_then(|n| d.integer_in(n, "scaling.max", 1, 10_000));
            // A missing bound defaults to 1, or to `min` for a missing `max`.
            let min = min.unwrap_or(1) as u32;
            let max = max.map_or(min.max(1), |v| v as u32);
            file.scaling = Some(Scaling { min, max });
            scaling_at = Some(yaml::location(n));
        }
    }
    file.url = opt_string(d, &f, "url");
    file.flavor = opt_string(d, &f, "flavor");
    if let Some(n) = f.get("security_flavor") {
        if let Some(v) = d.string(n, "security_flavor") {
            match v.as_str() {
                "restricted" => file.security_flavor = SecurityFlavor::Restricted,
                "unrestricted" => file.security_flavor = SecurityFlavor::Unrestricted,
                _ => d.error(
                    n,
                    "security_flavor",
                    Problem::NotOneOf {
                        value: v,
                        allowed: SECURITY_FLAVORS,
                    },
                ),
            }
        }
    }
    file.user = user(d, &f);
    for (key, _, value) in f.entries().filter(|(k, ..)| k.starts_with("x-")) {
        file.extensions
            .insert(key.to_string(), yaml::to_json(value));
    }
    Some(Draft {
        file,
        root: yaml::location(root),
        badger_at: draft_badger_at,
        repository_at,
        artifact_at,
        scaling_at,
    })
}

/// A `user` field (of an app file or a badger manifest): `root` or `UID:GID`.
pub(super) fn user(d: &mut Decoder<'_>, f: &Fields<'_>) -> Option<String> {
    let value = opt_string(d, f, "user")?;
    if super::du::numeric_user(&value).is_none() {
        let n = f.get("user")?;
        d.error(n, "user", pattern(&value, super::du::USER_PATTERN));
    }
    Some(value)
}

pub(super) fn opt_string(d: &mut Decoder<'_>, f: &Fields<'_>, key: &str) -> Option<String> {
    let n = f.get(key)?;
    d.nonempty_string(n, &f.path_of(key))
}

fn reference(d: &mut Decoder<'_>, n: &Node<'_>, field: &str) -> Option<String> {
    let value = d.nonempty_string(n, field)?;
    if let Err(e) = ImageReference::from_str(&value) {
        let reason = e.to_string();
        d.error(n, field, Problem::Reference { value, reason });
        return None;
    }
    Some(value)
}

/// An environment mapping whose keys must be valid variable names.
pub(crate) fn environment(
    d: &mut Decoder<'_>,
    n: &Node<'_>,
    field: &str,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, (value, at)) in d.string_map(n, field).unwrap_or_default() {
        if value.contains('\0') {
            // Refused here, not when the sandbox starts after the fetch.
            d.error_at(at, &yaml::join(field, &key), Problem::NulByte);
        } else if valid_env_name(&key) {
            out.insert(key, value);
        } else {
            let problem = pattern(&key, ENV_PATTERN);
            d.error_at(at, &yaml::join(field, &key), problem);
        }
    }
    out
}

fn services(d: &mut Decoder<'_>, n: &Node<'_>) -> Vec<Service> {
    let mut out: Vec<Service> = Vec::new();
    for (i, item) in d
        .sequence(n, "services")
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("services[{i}]");
        let Some(s) = d.mapping(item, &field, SERVICE_KEYS) else {
            continue;
        };
        let mut required = |key: &str| {
            if let Some(n) = s.get(key) {
                d.nonempty_string(n, &s.path_of(key))
            } else {
                d.error(item, &s.path_of(key), Problem::Missing);
                None
            }
        };
        let (Some(name), Some(kind)) = (required("name"), required("type")) else {
            continue;
        };
        if out.iter().any(|s| s.name == name) {
            d.error(
                item,
                &format!("{field}.name"),
                Problem::Duplicate { value: name },
            );
            continue;
        }
        out.push(Service { name, kind });
    }
    out
}

fn apply(draft: &mut Draft, o: &Overrides, origin: &str, errors: &mut Vec<FieldError>) {
    let file = &mut draft.file;
    let mut flag_error = |flag: &'static str, field: &str, problem: Problem| {
        errors.push(FieldError {
            origin: origin.to_string(),
            at: Origin::Flag(flag),
            field: field.to_string(),
            problem,
        });
    };
    if let Some(badger) = &o.badger {
        match ImageReference::from_str(badger) {
            Ok(_) => {
                file.badger.clone_from(badger);
                draft.badger_at = Some(Origin::Flag("--badger"));
            }
            Err(e) => flag_error(
                "--badger",
                "badger",
                Problem::Reference {
                    value: badger.clone(),
                    reason: e.to_string(),
                },
            ),
        }
    }
    if o.source.is_some() || o.artifact.is_some() {
        file.source.repository.clone_from(&o.source);
        draft.repository_at = o.source.as_ref().map(|_| Origin::Flag("--source"));
        file.source.artifact.clone_from(&o.artifact);
        draft.artifact_at = o.artifact.as_ref().map(|_| Origin::Flag("--artifact"));
    }
    if let Some(rev) = &o.revision {
        file.source.revision = Some(rev.clone());
    }
    if let Some(path) = &o.source_path {
        file.source.path = Some(path.clone());
    }
    if let Some(cmd) = &o.run_cmd {
        file.workflow_config.run_cmd = Some(cmd.clone());
    }
    if let Some(cmd) = &o.test_cmd {
        file.workflow_config.test_cmd = Some(cmd.clone());
    }
    if let Some(cmd) = &o.build_cmd {
        if cmd.trim().is_empty() {
            flag_error("--build-cmd", "workflow_config.build_cmd", Problem::Empty);
        } else {
            file.workflow_config.build_cmd = Some(cmd.clone());
        }
    }
    if !o.ports.is_empty() {
        file.ports.clear();
        for &port in &o.ports {
            if !(1..=65535).contains(&port) {
                let problem = Problem::OutOfRange {
                    value: port.into(),
                    min: 1,
                    max: 65535,
                };
                flag_error("--port", "ports", problem);
            } else if !file.ports.iter().any(|p| u32::from(p.port) == port) {
                file.ports.push(Port {
                    port: port as u16,
                    protocol: Protocol::Tcp,
                    name: None,
                });
            }
        }
    }
    for (flag, field, given, map) in [
        (
            "--env",
            "environment",
            &o.environment,
            &mut file.environment,
        ),
        (
            "--build-env",
            "build_environment",
            &o.build_environment,
            &mut file.build_environment,
        ),
    ] {
        for (key, value) in given {
            if valid_env_name(key) {
                map.insert(key.clone(), value.clone());
            } else {
                flag_error(flag, &format!("{field}.{key}"), pattern(key, ENV_PATTERN));
            }
        }
    }
}

/// The checks that span several fields, made after the overrides.
fn check(draft: &Draft, origin: &str, errors: &mut Vec<FieldError>) {
    let mut push = |at: Origin, field: &str, problem: Problem| {
        errors.push(FieldError {
            origin: origin.to_string(),
            at,
            field: field.to_string(),
            problem,
        });
    };
    let file = &draft.file;
    let root = Origin::File(draft.root);
    match (&draft.repository_at, &draft.artifact_at) {
        (Some(_), Some(artifact_at)) => push(
            artifact_at.clone(),
            "source.artifact",
            Problem::Conflict {
                other: "source.repository".to_string(),
            },
        ),
        (None, None) => push(root, "source", Problem::NoSource),
        _ => {}
    }
    if let (Some(s), Some(at)) = (file.scaling, draft.scaling_at) {
        if s.min > s.max {
            push(
                Origin::File(at),
                "scaling",
                Problem::MinAboveMax {
                    min: s.min.into(),
                    max: s.max.into(),
                },
            );
        }
    }
}

pub(crate) fn pattern(value: &str, pattern: &'static str) -> Problem {
    Problem::Pattern {
        value: value.to_string(),
        pattern,
    }
}

/// `^[a-z][a-z0-9-_]{0,99}$`, the app name rule Solum used.
/// An app name made from where the source is (`./my_site/`, `https://host/org/My.App.git`,
/// `bin/tool-1.2.tar.gz` → `my_site`, `my-app`, `tool-1-2`): the last path segment without
/// `.git` or a tarball's extensions, lower case, with what a name may not hold replaced by
/// `-`, and `app-` in front when it does not start with a letter. `None` when nothing is
/// left.
pub fn name_from_source(source: &str) -> Option<String> {
    let last = source
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or_default();
    let mut stem = last.strip_suffix(".git").unwrap_or(last);
    for extension in [".tar.gz", ".tgz", ".tar.zst", ".tar"] {
        if let Some(shorter) = stem.strip_suffix(extension) {
            stem = shorter;
            break;
        }
    }
    let mut name: String = stem
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '_') => c,
            _ => '-',
        })
        .collect();
    name = name.trim_matches('-').to_string();
    if name.is_empty() || name == "." {
        return None;
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("app-{name}");
    }
    name.truncate(100);
    valid_name(&name).then_some(name)
}

pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 100
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_'))
}

/// A POSIX-portable environment variable name.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('A'..='Z' | 'a'..='z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
