//! Exit codes scripts can trust: 0 success, 1 the work failed, 2 the input was wrong. An
//! error is an input error when something in its chain says the user's reference, file,
//! image name or argument is at fault; everything else (I/O, a failed command, a registry
//! that failed) is a failure of the work.

use crate::image::ReferenceError;
use crate::layer::LayerError;
use crate::pipeline::import::ImportError;
use crate::pipeline::run::RunError;
use crate::pipeline::unpack::UnpackError;
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
    if let Some(error) = error.downcast_ref::<ImageError>() {
        return !matches!(error, ImageError::Layout(_));
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
        );
    }
    if let Some(error) = error.downcast_ref::<TransportError>() {
        return matches!(
            error,
            TransportError::NoStore { .. }
                | TransportError::NotALayout { .. }
                | TransportError::ArchiveEntry { .. }
                | TransportError::DiffIdMismatch { .. }
                | TransportError::DiffIdCount { .. }
                | TransportError::WriteOnly { .. }
        );
    }
    if let Some(error) = error.downcast_ref::<ImportError>() {
        return matches!(
            error,
            ImportError::Missing { .. }
                | ImportError::BadEnv { .. }
                | ImportError::BadTag(_)
                | ImportError::TagNotAStoreName { .. }
        );
    }
    if let Some(error) = error.downcast_ref::<UnpackError>() {
        return matches!(error, UnpackError::NotEmpty { .. });
    }
    if let Some(error) = error.downcast_ref::<RunError>() {
        return matches!(error, RunError::NoCommand);
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
