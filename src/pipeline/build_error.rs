//! Why a build did not produce a DU: [`BuildError`], with its class (bad input, a failed
//! step, an interrupt) and the form without the failed step's last lines for a caller that
//! streamed them.

use super::badger_stack::BadgerError;
use super::commit::CommitError;
use super::dependency_layer::DependencyError;
use super::unpack::UnpackError;
use super::workspace::WorkspaceError;
use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use crate::manifest::procfile::ProcfileError;
use crate::manifest::ManifestError;
use crate::source::SourceError;
use crate::store::{ImageError, LayoutError};
use crate::transport::TransportError;

/// Why a build did not produce a DU.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    AppFile(#[from] ManifestError),
    #[error("the app has no source: give source.repository or source.artifact in the app file, or --source / --artifact")]
    NoSource,
    #[error("source of {app}")]
    Source {
        app: String,
        #[source]
        source: Box<SourceError>,
    },
    #[error(transparent)]
    Badger(#[from] BadgerError),
    #[error(transparent)]
    Detect(#[from] super::detect::DetectError),
    #[error(transparent)]
    Procfile(#[from] ProcfileError),
    #[error(transparent)]
    BadgerFile(#[from] super::badger_files::BadgerFileError),
    #[error("cannot copy the badger {reference} into the store")]
    CopyBadger {
        reference: String,
        #[source]
        source: Box<TransportError>,
    },
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// A dependency step failed (see [`super::dependency_layer`]); its cancel is
    /// [`BuildError::Cancelled`].
    #[error(transparent)]
    Dependencies(Box<DependencyError>),
    #[error(transparent)]
    Confined(#[from] super::confined::ConfinedError),
    /// A build at `--isolation none` that cannot run in this container.
    #[error(transparent)]
    InPlace(#[from] super::build::InPlaceError),
    #[error("the build command of badger {badger} {how}{}", tail_text(.tail))]
    BuildFailed {
        badger: String,
        how: String,
        tail: Vec<String>,
    },
    #[error("the app's build_cmd ({command}) {how}{}", tail_text(.tail))]
    AppBuildFailed {
        command: String,
        how: String,
        tail: Vec<String>,
    },
    #[error("the tests ({command}) {how}{}", tail_text(.tail))]
    TestsFailed {
        command: String,
        how: String,
        tail: Vec<String>,
    },
    /// A failed step of a build without network whose output shows a network failure:
    /// the step's error, then [`super::network_hint::HINT`].
    #[error("{0}\n{hint}", hint = super::network_hint::HINT)]
    NoNetwork(Box<BuildError>),
    #[error(transparent)]
    Inputs(#[from] super::build_inputs::BuildInputError),
    #[error(transparent)]
    Redaction(#[from] super::redaction::RedactionError),
    /// The run command's program is not in the DU (see [`super::start_check`]).
    #[error(transparent)]
    WouldNotStart(#[from] super::start_check::StartCheckError),
    #[error("the build was cancelled")]
    Cancelled,
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Io(#[from] IoAt),
}

impl Classify for BuildError {
    fn class(&self) -> ErrorClass {
        match self {
            BuildError::AppFile(_)
            | BuildError::NoSource
            | BuildError::BadgerFile(_)
            | BuildError::Procfile(_) => ErrorClass::Input,
            BuildError::Source { source, .. } => source.class(),
            BuildError::Badger(inner) => inner.class(),
            BuildError::Detect(inner) => inner.class(),
            BuildError::CopyBadger { source, .. } => source.class(),
            BuildError::Unpack(inner) => inner.class(),
            BuildError::Workspace(inner) => inner.class(),
            BuildError::Dependencies(inner) => inner.class(),
            BuildError::Confined(inner) => inner.class(),
            BuildError::InPlace(inner) => inner.class(),
            BuildError::NoNetwork(inner) => inner.class(),
            BuildError::Inputs(inner) => inner.class(),
            BuildError::Redaction(inner) => inner.class(),
            BuildError::WouldNotStart(inner) => inner.class(),
            BuildError::Commit(inner) => inner.class(),
            BuildError::Layout(inner) => inner.class(),
            BuildError::Image(inner) => inner.class(),
            BuildError::Cancelled => ErrorClass::Interrupted,
            BuildError::BuildFailed { .. }
            | BuildError::AppBuildFailed { .. }
            | BuildError::TestsFailed { .. }
            | BuildError::Io(_) => ErrorClass::Failure,
        }
    }
}

impl BuildError {
    /// The error without the last lines of the failed step's output, for a caller that
    /// showed that output as it streamed (the message would repeat it).
    #[must_use]
    pub fn without_output_tail(self) -> BuildError {
        match self {
            BuildError::BuildFailed { badger, how, .. } => BuildError::BuildFailed {
                badger,
                how,
                tail: Vec::new(),
            },
            BuildError::AppBuildFailed { command, how, .. } => BuildError::AppBuildFailed {
                command,
                how,
                tail: Vec::new(),
            },
            BuildError::TestsFailed { command, how, .. } => BuildError::TestsFailed {
                command,
                how,
                tail: Vec::new(),
            },
            BuildError::NoNetwork(inner) => {
                BuildError::NoNetwork(Box::new(inner.without_output_tail()))
            }
            BuildError::Dependencies(inner) => match *inner {
                DependencyError::Failed { badger, how, .. } => {
                    BuildError::Dependencies(Box::new(DependencyError::Failed {
                        badger,
                        how,
                        tail: Vec::new(),
                    }))
                }
                other => BuildError::Dependencies(Box::new(other)),
            },
            other => other,
        }
    }
}

impl From<DependencyError> for BuildError {
    fn from(error: DependencyError) -> BuildError {
        match error {
            DependencyError::Cancelled => BuildError::Cancelled,
            other => BuildError::Dependencies(Box::new(other)),
        }
    }
}

/// The last lines of a failed step's output, for the end of its message.
pub(super) fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; last lines of its output:\n    {}", tail.join("\n    "))
    }
}
