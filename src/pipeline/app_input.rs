//! What a build starts from, read before anything is fetched: the app file (a file, the
//! server's stored text, or the command line alone) with the command-line values laid over
//! it, the folder its relative sources are resolved against, and the source it names.

use super::build::{AppInput, BuildError, BuildRequest};
use crate::io_at::IoAt;
use crate::manifest::AppFile;
use crate::source::SourceSpec;
use std::path::{Path, PathBuf};

/// The app file, or one made of the command line alone; and the folder relative sources
/// are resolved against.
pub(super) fn load_app(request: &BuildRequest) -> Result<(AppFile, PathBuf), BuildError> {
    let cwd = std::env::current_dir().map_err(IoAt::at(Path::new("."), "read"))?;
    match &request.app {
        AppInput::File(path) => {
            let app = AppFile::load_with(path, &request.overrides)?;
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| cwd.join(p))
                .unwrap_or(cwd);
            Ok((app, dir))
        }
        AppInput::Text { text, origin } => {
            let app = AppFile::parse_with(text, origin, &request.overrides)?;
            Ok((app, cwd))
        }
        AppInput::CommandLine { name } => {
            let name = name.as_deref().unwrap_or("app");
            let text = format!(
                "version: 1\nname: {}\n",
                serde_json::to_string(name).unwrap_or_default()
            );
            let app = AppFile::parse_with(&text, "the command line", &request.overrides)?;
            Ok((app, cwd))
        }
    }
}

pub(super) fn source_spec(app: &AppFile, base_dir: &Path) -> Result<SourceSpec, BuildError> {
    let wrap = |source| BuildError::Source {
        app: app.name.clone(),
        source: Box::new(source),
    };
    if let Some(artifact) = &app.source.artifact {
        return SourceSpec::artifact(artifact, base_dir).map_err(wrap);
    }
    let repository = app.source.repository.as_ref().ok_or(BuildError::NoSource)?;
    let spec = SourceSpec::parse(repository, base_dir).map_err(wrap)?;
    match &app.source.revision {
        Some(revision) if matches!(spec, SourceSpec::Git { .. } | SourceSpec::WorkTree(_)) => {
            spec.with_revision(revision).map_err(wrap)
        }
        _ => Ok(spec),
    }
}
