//! Naming a source: deciding from the text of `--source` / `source.repository` whether it
//! is a directory or a git repository, checking that nothing in it can reach git as an
//! option, and redacting credentials from URLs before they are shown or stored.
//!
//! It looks at the filesystem only to tell a directory from a repository (it never runs
//! git) and never changes anything.

use crate::io_at::IoAt;
use std::fmt;
use std::path::{Path, PathBuf};

use super::SourceError;

/// Where a build's source comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A plain directory (not the top of a git work tree), copied as it is.
    Directory(PathBuf),
    /// The top of a git work tree named by its path, with no revision: its working tree is
    /// copied like a directory, uncommitted edits and untracked files included (see
    /// `work_tree`). A revision turns it into [`SourceSpec::Git`].
    WorkTree(PathBuf),
    /// A git repository: a URL, or the absolute path of a local work tree or bare repo.
    /// Without a revision, the repository's `HEAD` is used.
    Git {
        url: String,
        revision: Option<String>,
    },
    /// A tarball (plain, gzip or zstd) of ready-made files.
    Artifact(PathBuf),
}

/// URL schemes that name a git repository on another host.
pub(super) const REMOTE_SCHEMES: &[&str] = &["https", "http", "ssh", "git", "git+ssh", "ssh+git"];

impl SourceSpec {
    /// Decides what `text` names; relative paths are resolved against `base_dir` (the app
    /// file's folder). The order matters: an existing local path wins over the `host:path`
    /// form, because `./my:app` must stay a directory.
    pub fn parse(text: &str, base_dir: &Path) -> Result<SourceSpec, SourceError> {
        if text.is_empty() {
            return Err(SourceError::NotFound {
                text: text.to_string(),
                base: base_dir.to_path_buf(),
            });
        }
        if text.starts_with('-') {
            return Err(SourceError::OptionLike {
                what: "source",
                value: redact_url(text),
            });
        }
        if let Some(rest) = text.strip_prefix("file://") {
            let path = file_url_path(text, rest)?;
            return local(&path, Some(text), text, base_dir);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            if REMOTE_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
                check_remote_url(text)?;
                return Ok(SourceSpec::git(text));
            }
            return Err(SourceError::UnsupportedUrl {
                url: redact_url(text),
                reason: "the scheme is not file, https, http, ssh or git",
            });
        }
        if text.contains("::") && !text.contains('/') {
            return Err(SourceError::UnsupportedUrl {
                url: redact_url(text),
                reason: "git remote helpers (`transport::address`) are not allowed",
            });
        }
        let path = base_dir.join(text);
        if path.symlink_metadata().is_ok() {
            return local(&path, None, text, base_dir);
        }
        if is_scp_like(text) {
            check_remote_url(text)?;
            return Ok(SourceSpec::git(text));
        }
        Err(SourceError::NotFound {
            text: text.to_string(),
            base: base_dir.to_path_buf(),
        })
    }

    /// An artifact tarball named by `text`, relative to `base_dir`.
    pub fn artifact(text: &str, base_dir: &Path) -> Result<SourceSpec, SourceError> {
        let path = base_dir.join(text);
        match path.metadata() {
            Ok(meta) if meta.is_file() => Ok(SourceSpec::Artifact(path)),
            Ok(_) => Err(SourceError::Io(IoAt::new(
                path,
                "use the artifact",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            ))),
            Err(source) => Err(SourceError::Io(IoAt::new(
                path,
                "open the artifact",
                source,
            ))),
        }
    }

    /// The same source at `revision`; only a git source takes one.
    pub fn with_revision(self, revision: &str) -> Result<SourceSpec, SourceError> {
        check_revision(revision)?;
        match self {
            SourceSpec::Git { url, .. } => Ok(SourceSpec::Git {
                url,
                revision: Some(revision.to_string()),
            }),
            SourceSpec::WorkTree(path) => Ok(SourceSpec::Git {
                url: utf8_path(&path)?,
                revision: Some(revision.to_string()),
            }),
            other => Err(SourceError::RevisionWithoutGit {
                source_text: other.to_string(),
                revision: revision.to_string(),
            }),
        }
    }

    fn git(url: &str) -> SourceSpec {
        SourceSpec::Git {
            url: url.to_string(),
            revision: None,
        }
    }
}

/// A local path: a git repository if it is the top of a work tree or a bare repo (then
/// `url`, or the absolute path, is what git fetches from), else a directory.
fn local(
    path: &Path,
    url: Option<&str>,
    text: &str,
    base_dir: &Path,
) -> Result<SourceSpec, SourceError> {
    let meta = path.metadata().map_err(|_| SourceError::NotFound {
        text: text.to_string(),
        base: base_dir.to_path_buf(),
    })?;
    if !meta.is_dir() {
        return Err(SourceError::IsAFile {
            path: path.to_path_buf(),
        });
    }
    // Canonical, so that the same repository reached through two spellings shares one
    // mirror and the recorded repository does not depend on the caller's working folder.
    let path = path
        .canonicalize()
        .map_err(IoAt::at(path, "resolve the source path"))?;
    if !is_git_repository(&path) {
        return Ok(SourceSpec::Directory(path));
    }
    // A checkout named as a folder builds what is in the folder, as `docker build .`
    // does; a `file://` URL or a bare repository names commits.
    let url = match url {
        Some(url) => url.to_string(),
        None if path.join(".git").symlink_metadata().is_ok() => {
            // Checked here so that an unusable path fails now, not at `--revision`.
            utf8_path(&path)?;
            return Ok(SourceSpec::WorkTree(path));
        }
        None => utf8_path(&path)?,
    };
    Ok(SourceSpec::git(&url))
}

/// A local repository's path as the URL git fetches from.
pub(super) fn utf8_path(path: &Path) -> Result<String, SourceError> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| SourceError::NonUtf8Path {
            path: path.to_path_buf(),
        })
}

/// The folder `source.path` names under `root` (a folder or an exported tree), checked:
/// relative, no `..`, and — every symlink on the way resolved — still under `root` and
/// not in a `.git` folder.
pub(super) fn subdirectory(root: &Path, text: &str) -> Result<PathBuf, SourceError> {
    let refused = |reason: &'static str| SourceError::SourcePath {
        path: text.to_string(),
        reason,
    };
    let relative = Path::new(text);
    if text.is_empty() {
        return Err(refused("it is empty"));
    }
    if relative.is_absolute() {
        return Err(refused("it must be relative to the source's root"));
    }
    if relative.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    }) {
        return Err(refused("it must not climb out with `..`"));
    }
    let root = root
        .canonicalize()
        .map_err(IoAt::at(root, "resolve the source path"))?;
    let joined = root.join(relative);
    let real = match joined.canonicalize() {
        Ok(real) => real,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(refused("there is no such folder in the source"))
        }
        Err(error) => return Err(IoAt::new(joined, "resolve the source path", error).into()),
    };
    let Ok(inside) = real.strip_prefix(&root) else {
        return Err(refused("a symlink on the way leads out of the source"));
    };
    // `.git` is left out of every source (see `folder`): its config (remote URLs with
    // tokens), hooks and objects are no folder to build, named or reached by a symlink.
    if inside.components().any(|c| c.as_os_str() == ".git") {
        return Err(refused(
            "it is in the repository's `.git` folder, never part of a source",
        ));
    }
    if !real.is_dir() {
        return Err(refused("it is not a folder"));
    }
    Ok(real)
}

/// The top of a work tree (`.git` is a repository directory, or a `gitdir:` file as in a
/// linked work tree) or a bare repository (`HEAD`, `objects/`, `refs/`). A folder nested
/// somewhere inside a work tree is not a repository here: it is copied as a directory,
/// uncommitted files included.
pub(crate) fn is_git_repository(path: &Path) -> bool {
    let dot_git = path.join(".git");
    if dot_git.is_file() || dot_git.join("HEAD").is_file() {
        return true;
    }
    path.join("HEAD").is_file() && path.join("objects").is_dir() && path.join("refs").is_dir()
}

/// The local path of a `file://` URL: `file:///p` or `file://localhost/p`, with `%XX`
/// escapes decoded.
pub(super) fn file_url_path(url: &str, rest: &str) -> Result<PathBuf, SourceError> {
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(SourceError::UnsupportedUrl {
            url: redact_url(url),
            reason: "a file:// URL must name an absolute path on this host",
        });
    }
    let decoded = percent_decode(path).ok_or_else(|| SourceError::UnsupportedUrl {
        url: redact_url(url),
        reason: "malformed %-escape",
    })?;
    use std::os::unix::ffi::OsStringExt;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(decoded)))
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// `[user@]host:path` with no `/` before the first `:` — git's own rule for the scp form.
fn is_scp_like(text: &str) -> bool {
    match text.find(':') {
        Some(colon) => colon > 0 && !text[..colon].contains('/'),
        None => false,
    }
}

/// Git refuses a host that starts with `-` (it would reach ssh as an option); so do we,
/// before git is even run, and for control characters that have no place in a URL.
pub(super) fn check_remote_url(url: &str) -> Result<(), SourceError> {
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(SourceError::UnsupportedUrl {
            url: redact_url(url),
            reason: "it contains spaces or control characters",
        });
    }
    let host = if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        authority.rsplit('@').next().unwrap_or("")
    } else {
        let before_colon = url.split(':').next().unwrap_or("");
        before_colon.rsplit('@').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(SourceError::UnsupportedUrl {
            url: redact_url(url),
            reason: "no host",
        });
    }
    if host.starts_with('-') {
        return Err(SourceError::OptionLike {
            what: "host",
            value: redact_url(url),
        });
    }
    Ok(())
}

/// A revision is a branch, a tag or a commit (abbreviated or not). It reaches git after
/// `--end-of-options`, but a leading `-` is refused anyway so that no git version or
/// wrapper can take it for an option.
pub(crate) fn check_revision(revision: &str) -> Result<(), SourceError> {
    let reason = if revision.is_empty() {
        "it is empty"
    } else if revision.starts_with('-') {
        return Err(SourceError::OptionLike {
            what: "revision",
            value: revision.to_string(),
        });
    } else if revision
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        "it contains whitespace or control characters"
    } else if revision.len() > 255 {
        "it is longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(SourceError::InvalidRevision {
        revision: revision.to_string(),
        reason,
    })
}

/// The placeholder that replaces a credential.
const REDACTED: &str = "<redacted>";

/// `url` with any credential replaced by `<redacted>`: the password of
/// `scheme://user:password@host`, the whole user part of an http(s) URL (a lone token
/// there is common: `https://TOKEN@host/…`) and an http(s) query string. Text that is not
/// a `scheme://` URL is returned unchanged.
pub fn redact_url(url: &str) -> String {
    let (redacted, _) = redact(url);
    redacted
}

/// The redacted URL and the secrets that were taken out of it (raw and %-decoded), so that
/// git's own messages, which may quote the URL, can be scrubbed too.
pub(crate) fn redact(url: &str) -> (String, Vec<String>) {
    let mut secrets = Vec::new();
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), secrets);
    };
    let web = matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https");
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, mut tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, password)) => {
                secrets.push(password.to_string());
                format!("{user}:{REDACTED}@{host}")
            }
            None if web => {
                secrets.push(userinfo.to_string());
                format!("{REDACTED}@{host}")
            }
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let mut query = String::new();
    if web {
        if let Some(q) = tail.find('?') {
            let end = tail[q..].find('#').map_or(tail.len(), |h| q + h);
            secrets.push(tail[q + 1..end].to_string());
            query = format!("?{REDACTED}{}", &tail[end..]);
            tail = &tail[..q];
        }
    }
    let decoded: Vec<String> = secrets
        .iter()
        .filter_map(|s| percent_decode(s).and_then(|b| String::from_utf8(b).ok()))
        .collect();
    secrets.extend(decoded);
    secrets.retain(|s| !s.is_empty());
    // Longest first, so that a secret that contains another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    (format!("{scheme}://{authority}{tail}{query}"), secrets)
}

/// Replaces every secret of `url` in `text` (git's stderr) by `<redacted>`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |text, secret| {
        text.replace(secret, REDACTED)
    })
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Directory(path) => write!(f, "directory {}", path.display()),
            SourceSpec::Git {
                url,
                revision: None,
            } => write!(f, "git {}", redact_url(url)),
            SourceSpec::Git {
                url,
                revision: Some(revision),
            } => write!(f, "git {} at {revision}", redact_url(url)),
            SourceSpec::WorkTree(path) => write!(f, "working tree {}", path.display()),
            SourceSpec::Artifact(path) => write!(f, "artifact {}", path.display()),
        }
    }
}

/// Hand-written so that a token in a URL never reaches a log through `{:?}`.
impl fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Directory(path) => f.debug_tuple("Directory").field(path).finish(),
            SourceSpec::Git { url, revision } => f
                .debug_struct("Git")
                .field("url", &redact_url(url))
                .field("revision", revision)
                .finish(),
            SourceSpec::WorkTree(path) => f.debug_tuple("WorkTree").field(path).finish(),
            SourceSpec::Artifact(path) => f.debug_tuple("Artifact").field(path).finish(),
        }
    }
}
