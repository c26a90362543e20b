//! What an API request may make the server read. Every request is untrusted, so an app
//! file, a DU registration or a workflow start may name only what is not a server file:
//! sources are remote URLs (or paths under the folders the operator allowed, see
//! [`SourcePolicy`]), artifacts come only by upload, and image references are registry
//! references or store names — `oci:`, `oci-archive:` and `docker-archive:` name server
//! paths and are refused. The checks run when an app is created or replaced (a 400 that
//! says what is wrong) and again when its workflow runs, since an app stored earlier, or
//! a folder changed since, must not slip through.

use super::runner::error_chain;
use super::ApiError;
use crate::image::ImageReference;
use crate::manifest::AppFile;
use crate::source::{AllowedSource, SourcePolicy};
use std::path::PathBuf;

/// Refuses image references that name server files.
pub fn check_reference(field: &str, text: &str) -> Result<(), ApiError> {
    match text.parse::<ImageReference>() {
        Ok(ImageReference::Store { .. } | ImageReference::Registry { .. }) => Ok(()),
        Ok(other) => Err(ApiError::invalid(
            field,
            format!(
                "{text:?}: {}: references name files of the server and are refused from the API; \
                 use docker://HOST/REPO or a store name",
                other.transport()
            ),
        )),
        Err(e) => Err(ApiError::invalid(field, error_chain(&e))),
    }
}

/// Checks an app file for what it would make the server read. Returns the resolved local
/// folder when its source is one the operator allowed (the build uses that path).
pub fn check_app(
    app: &AppFile,
    managed: bool,
    sources: &SourcePolicy,
) -> Result<Option<PathBuf>, ApiError> {
    if app.source.artifact.is_some() {
        return Err(ApiError::invalid(
            "source.artifact",
            format!(
                "artifacts come only by upload to the server (POST /v1/apps/{}/artifacts)",
                app.name
            ),
        ));
    }
    for (index, badger) in app.all_badgers().enumerate() {
        let field = if index == 0 {
            "badger".to_string()
        } else {
            format!("badgers[{}]", index - 1)
        };
        check_reference(&field, badger)?;
    }
    match (&app.source.repository, managed) {
        (Some(repository), false) => match sources.check(repository) {
            Ok(AllowedSource::Remote) => Ok(None),
            Ok(AllowedSource::Local(path)) => Ok(Some(path)),
            Err(e) => Err(ApiError::invalid("source.repository", error_chain(&e))),
        },
        _ => Ok(None),
    }
}
