//! The three manifests of a build: the application file a user writes (`app.yaml`), the
//! badger manifest beside each badger (`badger.yaml`), and the DU manifest the builder
//! writes into the DU's image manifest, plus the Heat snippet carried inside it.
//!
//! This module owns parsing, validation and serialization of those documents and nothing
//! else: it never reads a store, a registry or a source tree, and it never runs anything.
//! Parsing is pure apart from [`AppFile::load`]/[`BadgerManifest::load`] reading one file.
//!
//! Every rejected input names the file, the line and column, and the field path
//! (`app.yaml:7:3: workflow_config.run_cmd: expected a string, found a sequence`). To get a
//! line for *semantic* errors too (a port out of range, a bad name), the text is first
//! parsed into a tree of located nodes and then decoded by hand (module `yaml`), so every value
//! keeps the span it came from until it has been checked.
//!
//! YAML crate: `saphyr` (with `saphyr-parser`). It is maintained, YAML 1.2 (so `no` and
//! `on` stay strings, and JSON input is simply YAML), gives spans for every node, rejects
//! duplicate keys, bounds alias expansion, and has an emitter whose quoting we rely on for
//! the Heat snippet. `serde_yaml` is unmaintained, `serde_yml` is deprecated, and
//! `serde_norway` (a `serde_yaml` fork) only reports locations for errors that serde itself
//! raises, not for checks made after deserialization.

pub mod app;
pub mod badger;
pub mod badger_steps;
pub mod du;
pub mod heat;
mod ports;
pub mod procfile;
mod yaml;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_badger_steps;
#[cfg(test)]
mod tests_compat;
#[cfg(test)]
mod tests_du;

pub use app::{
    AppFile, Overrides, Port, Protocol, Scaling, SecurityFlavor, Service, Source, WorkflowConfig,
};
pub use badger::{BadgerManifest, Network, Package};
pub use du::{BadgerUsed, DuInputs, DuManifest, DuRuntime, DuSource, DuTests};

use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use std::fmt;

/// Manifest annotation holding the DU manifest (JSON) on a DU image.
pub const DU_ANNOTATION: &str = "org.solum.du.manifest";
/// Manifest annotation holding the badger manifest (JSON) on a badger image.
pub const BADGER_ANNOTATION: &str = "org.solum.badger.manifest";
/// Manifest annotation holding the cache key of a build, for identical rebuilds.
pub const BUILD_KEY_ANNOTATION: &str = "org.solum.build.key";

/// Where a value came from inside a document: 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// Where a field's value came from: a place in the file, or a command-line flag that
/// overrode it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A position in the document being parsed.
    File(Location),
    /// A command-line flag (`--port`), given through [`Overrides`].
    Flag(&'static str),
}

/// What is wrong with one field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("unknown field (expected one of: {}; keys starting with `x-` are ignored)", .allowed.join(", "))]
    UnknownField { allowed: &'static [&'static str] },
    #[error("required field is missing")]
    Missing,
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("must not be empty")]
    Empty,
    #[error("{value} is out of range {min}..={max}")]
    OutOfRange { value: i64, min: i64, max: i64 },
    #[error("{value:?} is not one of: {}", .allowed.join(", "))]
    NotOneOf {
        value: String,
        allowed: &'static [&'static str],
    },
    #[error("{value:?} does not match {pattern}")]
    Pattern {
        value: String,
        pattern: &'static str,
    },
    #[error("{value:?} is not a valid image reference: {reason}")]
    Reference { value: String, reason: String },
    #[error("conflicts with `{other}`: give only one of them")]
    Conflict { other: String },
    #[error("{value} is given twice")]
    Duplicate { value: String },
    #[error("{inner:?} lies inside {outer:?}, also listed: give only one of them")]
    Nested { inner: String, outer: String },
    #[error("min ({min}) is greater than max ({max})")]
    MinAboveMax { min: i64, max: i64 },
    #[error("give `repository` or `artifact` (or --source/--artifact on the command line)")]
    NoSource,
    #[error("{value:?} must be a relative path inside the badger directory")]
    EscapingPath { value: String },
    #[error("unsupported version {value} (this builder reads version 1)")]
    Version { value: String },
    #[error("must not contain a NUL byte (no process environment can hold one)")]
    NulByte,
}

/// One rejected field: the document, where in it, the field path, and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub origin: String,
    pub at: Origin,
    /// Dotted path with indices, e.g. `ports[1].protocol`.
    pub field: String,
    pub problem: Problem,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Origin::File(loc) => write!(
                f,
                "{}:{}:{}: {}: {}",
                self.origin, loc.line, loc.column, self.field, self.problem
            ),
            Origin::Flag(flag) => write!(
                f,
                "command line {flag} (for {} of {}): {}",
                self.field, self.origin, self.problem
            ),
        }
    }
}

impl std::error::Error for FieldError {}

/// Why a manifest could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Read(#[from] IoAt),
    /// The text is not YAML (or JSON) at all.
    #[error("{origin}:{}:{}: {message}", .at.line, .at.column)]
    Syntax {
        origin: String,
        at: Location,
        message: String,
    },
    /// The document parsed but some fields are wrong; every one found is listed.
    #[error("{}", render_all(.errors))]
    Invalid {
        origin: String,
        errors: Vec<FieldError>,
    },
    /// A DU manifest annotation that is not the JSON this module writes.
    #[error("annotation {key}: not a valid DU manifest")]
    DuJson {
        key: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Serializing a manifest to JSON failed (only possible for non-string map keys).
    #[error("{what}: cannot serialize to JSON")]
    ToJson {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The YAML emitter failed while writing the Heat snippet for a DU.
    #[error("heat template for {name}: cannot emit YAML")]
    HeatEmit {
        name: String,
        #[source]
        source: saphyr::EmitError,
    },
}

impl Classify for ManifestError {
    fn class(&self) -> ErrorClass {
        // An app file or a DU annotation the user handed in, even where it fails to read
        // back out (a map key JSON cannot hold came from that file too).
        match self {
            ManifestError::Read(_)
            | ManifestError::Syntax { .. }
            | ManifestError::Invalid { .. }
            | ManifestError::DuJson { .. }
            | ManifestError::ToJson { .. }
            | ManifestError::HeatEmit { .. } => ErrorClass::Input,
        }
    }
}

impl ManifestError {
    /// The field errors, if this is a validation failure (empty otherwise).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ManifestError::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }
}

fn render_all(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
