//! Exit codes scripts can trust: 0 success, 1 the work failed, 2 the input was wrong, 130
//! the work was interrupted (Ctrl-C, SIGTERM), 141 stdout's reader went away (`… | head`).
//! `run` exits with its command's own status instead. Every error decides its own
//! [`ErrorClass`] ([`Classify`], an exhaustive `match` in each error module); this module
//! only walks an error's chain once, asks each error in it that is one of the crate's, and
//! keeps the most decisive answer. The chain is walked rather than only its top asked
//! because an error reaches the command line under `anyhow` context, inside `io::Error`s
//! (a corrupt blob found by a reader) and behind `Box<dyn Error>` sources.

#[cfg(feature = "server")]
use crate::api::{records::RecordError, ApiError};
use crate::error_class::{Classify, ErrorClass};
use crate::image::{DigestError, ReferenceError};
use crate::layer::LayerError;
use crate::manifest::ManifestError;
use crate::pipeline::badger_files::BadgerFileError;
use crate::pipeline::badger_stack::BadgerError;
use crate::pipeline::build::BuildError;
use crate::pipeline::commit::CommitError;
use crate::pipeline::confined::ConfinedError;
use crate::pipeline::import::ImportError;
use crate::pipeline::run::RunError;
use crate::pipeline::unpack::UnpackError;
use crate::pipeline::workspace::WorkspaceError;
use crate::registry::{CredentialError, RegistryError, TlsError};
use crate::source::SourceError;
use crate::store::{CacheError, ImageError, LayoutError};
use crate::transport::TransportError;
use std::error::Error;

pub const SUCCESS: i32 = 0;
pub const FAILURE: i32 = 1;
pub const USAGE: i32 = 2;
/// As a shell reports a process ended by SIGINT (128 + 2).
pub const INTERRUPTED: i32 = 130;
/// As a shell reports a process ended by SIGPIPE (128 + 13).
pub const BROKEN_PIPE: i32 = 141;

/// An error the CLI itself raises about its arguments.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl Classify for UsageError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Input
    }
}

/// The exit code of a class.
pub fn code_of(class: ErrorClass) -> i32 {
    match class {
        ErrorClass::Failure => FAILURE,
        ErrorClass::Input => USAGE,
        ErrorClass::Interrupted => INTERRUPTED,
        ErrorClass::BrokenPipe => BROKEN_PIPE,
    }
}

/// The class of an error's chain: the most decisive class any error in it answers, else a
/// failure of the work (context strings and foreign errors say nothing).
pub fn class_of(error: &anyhow::Error) -> ErrorClass {
    error
        .chain()
        .filter_map(class_of_one)
        .max()
        .unwrap_or(ErrorClass::Failure)
}

/// Asks one error of a chain, if it is one of the crate's. Every type that implements
/// [`Classify`] is listed here once.
fn class_of_one(error: &(dyn Error + 'static)) -> Option<ErrorClass> {
    // An `io::Error` made from another error (a verifying reader's digest mismatch) hides
    // it from the chain: ask the error inside.
    if let Some(error) = error.downcast_ref::<std::io::Error>() {
        return error.get_ref().and_then(|inner| class_of_one(inner));
    }
    macro_rules! ask {
        ($($type:ty),* $(,)?) => {
            $(if let Some(error) = error.downcast_ref::<$type>() {
                return Some(error.class());
            })*
        };
    }
    ask!(
        UsageError,
        crate::io_at::IoAt,
        super::output::OutputError,
        ReferenceError,
        DigestError,
        LayoutError,
        ImageError,
        CacheError,
        LayerError,
        TransportError,
        SourceError,
        ManifestError,
        UnpackError,
        BadgerFileError,
        BadgerError,
        WorkspaceError,
        CommitError,
        ConfinedError,
        RunError,
        ImportError,
        BuildError,
        crate::pipeline::build_inputs::BuildInputError,
        crate::pipeline::redaction::RedactionError,
        crate::pipeline::delivery::DeliveryError,
        RegistryError,
        CredentialError,
        TlsError,
        super::client::ClientError,
        crate::attest::keys::KeyError,
        crate::attest::dsse::DsseError,
        crate::attest::cosign::CosignError,
    );
    #[cfg(feature = "server")]
    ask!(ApiError, RecordError);
    None
}

/// Checks `--isolation` and makes it the level of every sandbox of this process. `auto` is
/// resolved by the first sandbox; a level forced where it cannot work is refused here with
/// the reason and the level `info` would pick; `none` (in place, no sandbox) needs no
/// probe: the build checks that the container is the badger.
pub fn require_available_isolation(level: runtime::Isolation) -> Result<(), UsageError> {
    match level {
        runtime::Isolation::Auto | runtime::Isolation::None => {}
        runtime::Isolation::Userns | runtime::Isolation::Chroot => {
            let report = runtime::levels::probe(&runtime::self_exe());
            if let Some(probe) = report.level(level).filter(|p| !p.works) {
                let chosen = report.chosen.unwrap_or(runtime::Isolation::None);
                return Err(UsageError(format!(
                    "--isolation {level} cannot work here: {}; `solum-build info` would pick {chosen}",
                    probe.reason.as_deref().unwrap_or("refused")
                )));
            }
        }
    }
    runtime::Isolation::set_requested(level);
    Ok(())
}

/// `none` runs the build script unsandboxed: refused where no container is recognised
/// around this process (see [`crate::pipeline::container_signs`]).
pub fn refuse_isolation_none_outside_a_container(
    level: runtime::Isolation,
) -> Result<(), UsageError> {
    use crate::pipeline::container_signs::{this_container_signs, DECLARED};
    if level == runtime::Isolation::None && this_container_signs().is_empty() {
        return Err(UsageError(format!(
            "--isolation none runs the build script unsandboxed, as this user, in this machine's own filesystem, and no container is recognised around this process (no /.dockerenv, /run/.containerenv, $KUBERNETES_SERVICE_HOST or $container): on a host use --isolation userns or auto; in a container this check does not recognise, set {DECLARED}=1"
        )));
    }
    Ok(())
}

/// `none` is a build in place, one per container: `run` has no such mode (the container
/// runtime runs a DU), and the server's concurrent builds would share one root filesystem.
pub fn refuse_isolation_none(level: runtime::Isolation, command: &str) -> Result<(), UsageError> {
    if level == runtime::Isolation::None {
        return Err(UsageError(format!(
            "`{command}` cannot use --isolation none: builds in place run one per container, with `solum-build build`"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn code_for(error: &anyhow::Error) -> i32 {
        code_of(class_of(error))
    }

    fn hostile_entry() -> LayerError {
        LayerError::HostileEntry {
            entry: "../etc/passwd".into(),
            reason: "escapes the root",
        }
    }

    #[test]
    fn none_is_available_to_builds_alone() {
        use runtime::Isolation;
        assert!(require_available_isolation(Isolation::None).is_ok());
        let refused = refuse_isolation_none(Isolation::None, "serve").unwrap_err();
        assert!(
            refused.0.contains("`serve` cannot use --isolation none"),
            "{refused}"
        );
        assert!(refuse_isolation_none(Isolation::Auto, "run").is_ok());
    }

    #[test]
    fn classes_map_to_the_documented_codes() {
        assert_eq!(code_of(ErrorClass::Failure), 1);
        assert_eq!(code_of(ErrorClass::Input), 2);
        assert_eq!(code_of(ErrorClass::Interrupted), 130);
        assert_eq!(code_of(ErrorClass::BrokenPipe), 141);
    }

    /// Transparent wrappers hide the inner error from the chain; the wrapper asks it.
    #[test]
    fn wrappers_ask_the_error_they_wrap() {
        let not_a_layout = || LayoutError::NotALayout {
            path: PathBuf::from("/x"),
        };
        let error = anyhow::Error::new(BuildError::Unpack(UnpackError::Image(ImageError::Layout(
            not_a_layout(),
        ))));
        assert_eq!(code_for(&error), USAGE);
        let lost = LayoutError::Io(crate::io_at::IoAt::new(
            "/x",
            "read",
            std::io::Error::other("disk"),
        ));
        let error = anyhow::Error::new(TransportError::Layout(lost));
        assert_eq!(code_for(&error), FAILURE);
        let error = anyhow::Error::new(BuildError::Cancelled);
        assert_eq!(code_for(&error), INTERRUPTED);
    }

    /// An input error anywhere in the chain wins, under context and inside an io::Error.
    #[test]
    fn input_anywhere_in_the_chain_decides() {
        let error = anyhow::Error::new(TransportError::Layer {
            reference: "oci:x".into(),
            digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
                .parse()
                .unwrap(),
            source: hostile_entry(),
        })
        .context("copying");
        assert_eq!(code_for(&error), USAGE);
        let hidden = std::io::Error::new(std::io::ErrorKind::InvalidData, hostile_entry());
        let error = anyhow::Error::new(LayerError::Read { source: hidden });
        assert_eq!(code_for(&error), USAGE);
        let error = anyhow::anyhow!("no crate error at all");
        assert_eq!(code_for(&error), FAILURE);
        let error = anyhow::Error::new(UsageError("bad".into())).context("while parsing");
        assert_eq!(code_for(&error), USAGE);
    }

    #[test]
    fn a_closed_stdout_is_its_own_class() {
        let closed = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let error = anyhow::Error::new(super::super::output::OutputError::from(closed));
        assert_eq!(code_for(&error), BROKEN_PIPE);
    }
}
