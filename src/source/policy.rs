//! What a request to the server may name as a source. The CLI builds whatever its user
//! names; the server must not, because every request is untrusted and the server's files
//! are not the caller's. From a request a source is a URL of a remote scheme (`https`,
//! `http`, `git`, `ssh`); `file://` URLs and plain paths are refused unless the operator
//! allowed named local folders (`serve --allow-local-source DIR`), and then only paths
//! that, with every symlink resolved, lie under one of those folders. The scp form
//! (`host:path`) is refused too: it is only told from a local path by looking at the
//! server's filesystem. This module decides and resolves; it fetches nothing.

use crate::io_at::IoAt;
use std::path::{Path, PathBuf};

use super::spec::{check_remote_url, file_url_path, redact_url, REMOTE_SCHEMES};
use super::SourceError;

/// The local folders a request may name (canonical paths); none by default.
#[derive(Clone, Debug, Default)]
pub struct SourcePolicy {
    local_roots: Vec<PathBuf>,
}

/// A source a request may use: a remote URL as given, or a local path, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedSource {
    Remote,
    /// The canonical path (symlinks resolved) under an allowed folder: build from this.
    Local(PathBuf),
}

impl SourcePolicy {
    /// Allows sources under each of `roots`, which must be existing folders.
    pub fn new(roots: &[PathBuf]) -> Result<SourcePolicy, SourceError> {
        let mut local_roots = Vec::new();
        for root in roots {
            let real = root
                .canonicalize()
                .map_err(IoAt::at(root, "resolve the allowed source folder"))?;
            if !real.is_dir() {
                return Err(SourceError::IsAFile { path: real });
            }
            local_roots.push(real);
        }
        Ok(SourcePolicy { local_roots })
    }

    /// Decides whether a request may build from `text` (a `source.repository` value).
    pub fn check(&self, text: &str) -> Result<AllowedSource, SourceError> {
        let refused = |reason: &'static str| SourceError::NotAllowed {
            text: redact_url(text),
            reason,
        };
        if text.starts_with('-') {
            return Err(SourceError::OptionLike {
                what: "source",
                value: redact_url(text),
            });
        }
        let local = if let Some(rest) = text.strip_prefix("file://") {
            file_url_path(text, rest)?
        } else if let Some((scheme, _)) = text.split_once("://") {
            if !REMOTE_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
                return Err(refused(
                    "from the server a source is an https, http, git or ssh URL",
                ));
            }
            check_remote_url(text)?;
            return Ok(AllowedSource::Remote);
        } else if text.starts_with('/') {
            PathBuf::from(text)
        } else {
            return Err(refused(
                "from the server a source is an https, http, git or ssh URL (write host:path as ssh://host/path)",
            ));
        };
        if self.local_roots.is_empty() {
            return Err(refused(
                "the server takes no local folders as sources (its operator may allow some with serve --allow-local-source)",
            ));
        }
        self.local(&local).map(AllowedSource::Local).ok_or_else(|| {
            refused("it is not an existing folder under one the server allows (serve --allow-local-source)")
        })
    }

    /// The canonical form of `path` when it lies under an allowed folder.
    fn local(&self, path: &Path) -> Option<PathBuf> {
        let real = path.canonicalize().ok()?;
        self.local_roots
            .iter()
            .any(|root| real.starts_with(root))
            .then_some(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_remote_urls_or_allowed_folders_only() {
        let none = SourcePolicy::default();
        for ok in [
            "https://example.org/r.git",
            "http://h/r",
            "git://h/r",
            "ssh://git@h/r",
        ] {
            assert_eq!(none.check(ok).unwrap(), AllowedSource::Remote, "{ok}");
        }
        for bad in [
            "/etc",
            "file:///root",
            "file://localhost/etc",
            "etc",
            "./x",
            "git@h:r",
            "ftp://h/r",
            "ext::sh -c x",
            "-u",
        ] {
            assert!(none.check(bad).is_err(), "{bad}");
        }
        let top = tempfile::tempdir().unwrap();
        let allowed = top.path().join("allowed");
        std::fs::create_dir_all(allowed.join("app")).unwrap();
        std::fs::create_dir_all(top.path().join("secret")).unwrap();
        std::os::unix::fs::symlink(top.path().join("secret"), allowed.join("link")).unwrap();
        let policy = SourcePolicy::new(std::slice::from_ref(&allowed)).unwrap();
        let app = allowed.join("app").canonicalize().unwrap();
        let text = app.display().to_string();
        assert_eq!(
            policy.check(&text).unwrap(),
            AllowedSource::Local(app.clone())
        );
        let url = format!("file://{text}");
        assert_eq!(policy.check(&url).unwrap(), AllowedSource::Local(app));
        let escape = format!("{}/app/../../secret", allowed.display());
        assert!(policy.check(&escape).is_err());
        let link = format!("{}/link", allowed.display());
        let err = policy.check(&link).unwrap_err().to_string();
        assert!(err.contains("allow"), "{err}");
        assert!(policy.check("/etc").is_err());
    }
}
