//! Exit codes scripts can trust: 0 success, 1 the work failed, 2 the input was wrong. An
//! error is an input error when something in its chain says the user's reference, file,
//! image name or argument is at fault; everything else (I/O, a failed command, a registry
//! that failed) is a failure of the work.

use crate::image::ReferenceError;
use crate::layer::LayerError;
use crate::pipeline::badger_stack::BadgerError;
use crate::pipeline::build::BuildError;
use crate::pipeline::import::ImportError;
use crate::pipeline::run::RunError;
use crate::pipeline::unpack::UnpackError;
use crate::source::SourceError;
use crate::store::{ImageError, LayoutError};
use crate::transport::TransportError;

pub const SUCCESS: i32 = 0;
pub const FAILURE: i32 = 1;
pub const USAGE: i32 = 2;

/// An error the CLI itself raises about its arguments.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn is_input_error(error: &(dyn std::error::Error + 'static)) -> bool {
    if error.is::<UsageError>() || error.is::<ReferenceError>() {
        return true;
    }
    // `#[error(transparent)]` wrappers hand `source()` on to the inner error's source, so
    // the inner error itself never appears in the chain: look through them here.
    if let Some(error) = error.downcast_ref::<std::io::Error>() {
        return error.get_ref().is_some_and(|inner| is_input_error(inner));
    }
    if let Some(error) = error.downcast_ref::<ImageError>() {
        return match error {
            ImageError::Layout(inner) => is_input_error(inner),
            // The store lost a blob: not the user's input.
            ImageError::Incomplete { .. } => false,
            _ => true,
        };
    }
    if let Some(error) = error.downcast_ref::<LayoutError>() {
        return !matches!(error, LayoutError::Io { .. });
    }
    if let Some(error) = error.downcast_ref::<LayerError>() {
        return matches!(
            error,
            LayerError::HostileEntry { .. }
                | LayerError::UnsupportedEntry { .. }
                | LayerError::TruncatedTar { .. }
                | LayerError::MalformedTar { .. }
                | LayerError::CorruptCompression { .. }
                | LayerError::Unrepresentable { .. }
                | LayerError::TooLarge { .. }
                | LayerError::BadPax { .. }
        );
    }
    if let Some(error) = error.downcast_ref::<TransportError>() {
        return match error {
            TransportError::Layout(inner) => is_input_error(inner),
            TransportError::Image(inner) => is_input_error(inner),
            TransportError::NoStore { .. }
            | TransportError::NotALayout { .. }
            | TransportError::ArchiveEntry { .. }
            | TransportError::DiffIdMismatch { .. }
            | TransportError::DiffIdCount { .. }
            | TransportError::WriteOnly { .. } => true,
            _ => false,
        };
    }
    if let Some(error) = error.downcast_ref::<ImportError>() {
        return match error {
            ImportError::Layout(inner) => is_input_error(inner),
            ImportError::Image(inner) => is_input_error(inner),
            ImportError::Missing { .. }
            | ImportError::BadEnv { .. }
            | ImportError::BadTag(_)
            | ImportError::TagNotAStoreName { .. } => true,
            _ => false,
        };
    }
    if let Some(error) = error.downcast_ref::<UnpackError>() {
        return match error {
            UnpackError::Layout(inner) => is_input_error(inner),
            UnpackError::Image(inner) => is_input_error(inner),
            UnpackError::NotEmpty { .. }
            | UnpackError::DiffIdMismatch { .. }
            | UnpackError::DiffIdCount { .. }
            | UnpackError::BadDiffId { .. } => true,
            _ => false,
        };
    }
    if let Some(error) = error.downcast_ref::<BuildError>() {
        return match error {
            BuildError::AppFile(_) | BuildError::NoSource | BuildError::BadgerFile(_) => true,
            BuildError::Confined(crate::pipeline::confined::ConfinedError::BadPath { .. }) => true,
            BuildError::Badger(inner) => is_input_error(inner),
            BuildError::Source { source, .. } => is_input_error(&**source),
            BuildError::Unpack(inner) => is_input_error(inner),
            BuildError::Layout(inner) => is_input_error(inner),
            BuildError::Image(inner) => is_input_error(inner),
            _ => false,
        };
    }
    if let Some(error) = error.downcast_ref::<BadgerError>() {
        return match error {
            BadgerError::Open { source, .. } => is_input_error(&**source),
            _ => true,
        };
    }
    if let Some(error) = error.downcast_ref::<SourceError>() {
        return matches!(
            error,
            SourceError::NotFound { .. }
                | SourceError::IsAFile { .. }
                | SourceError::OptionLike { .. }
                | SourceError::UnsupportedUrl { .. }
                | SourceError::InvalidRevision { .. }
                | SourceError::RevisionWithoutGit { .. }
                | SourceError::RevisionNotFound { .. }
                | SourceError::Artifact { .. }
                | SourceError::Expansion { .. }
                | SourceError::NotAllowed { .. }
        );
    }
    if error.is::<crate::manifest::ManifestError>() {
        return true;
    }
    if let Some(error) = error.downcast_ref::<RunError>() {
        return match error {
            RunError::Unpack(inner) => is_input_error(inner),
            RunError::NoCommand => true,
            _ => false,
        };
    }
    false
}

/// The exit code for an error: 2 if any error in the chain is the user's input, else 1.
pub fn code_for(error: &anyhow::Error) -> i32 {
    if error.chain().any(is_input_error) {
        USAGE
    } else {
        FAILURE
    }
}
