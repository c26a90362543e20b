//! What a request to the server may name as a source. The CLI builds whatever its user
//! names; the server must not, because every request is untrusted and the server's files
//! are not the caller's. From a request a source is a URL of a remote scheme (`https`,
//! `http`, `git`, `ssh`); `file://` URLs and plain paths are refused unless the operator
//! allowed named local folders (`serve --allow-local-source DIR`), and then only paths
//! that, with every symlink resolved, lie under one of those folders. The scp form
//! (`host:path`) is refused too: it is only told from a local path by looking at the
//! server's filesystem. This module decides and resolves; it fetches nothing.

use crate::io_at::IoAt;
use std::fs;
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
        let (real, root) = self.local(&local).ok_or_else(|| {
            refused("it is not an existing folder under one the server allows (serve --allow-local-source)")
        })?;
        if !repository_inside(&real, root) {
            return Err(refused(
                "its git repository (a `.git` link or `gitdir:` file, a `commondir`, object alternates or a symlink in it) leads out of the folders the server allows",
            ));
        }
        Ok(AllowedSource::Local(real))
    }

    /// The canonical form of `path` and the allowed folder it lies under.
    fn local(&self, path: &Path) -> Option<(PathBuf, &Path)> {
        let real = path.canonicalize().ok()?;
        let root = self
            .local_roots
            .iter()
            .find(|root| real.starts_with(root))?;
        Some((real, root))
    }
}

/// Whether all git reads of the repository at `real` (when it is one) lie under `root`.
/// git follows a `.git` symlink or `gitdir:` file, a linked work tree's `commondir`, object
/// `alternates` and any symlink in the repository folder wherever they lead, with the
/// server's rights: a checkout under an allowed folder could otherwise have the server
/// fetch and build a repository outside it. A plain folder's symlinks are copied as links,
/// never followed: nothing to check.
fn repository_inside(real: &Path, root: &Path) -> bool {
    let under_root = |path: &Path| path.canonicalize().is_ok_and(|p| p.starts_with(root));
    let dot_git = real.join(".git");
    let git_dir = match fs::symlink_metadata(&dot_git) {
        Ok(meta) if meta.is_file() => {
            let Some(text) = read_small(&dot_git) else {
                return false;
            };
            match text.trim_end().strip_prefix("gitdir:") {
                Some(target) => real.join(target.trim()),
                None => return false,
            }
        }
        Ok(_) => dot_git,
        Err(_) if super::spec::is_git_repository(real) => real.to_path_buf(),
        Err(_) => return true,
    };
    let Ok(git_dir) = git_dir.canonicalize() else {
        return false;
    };
    if !git_dir.starts_with(root) {
        return false;
    }
    let mut dirs = vec![git_dir.clone()];
    if fs::symlink_metadata(git_dir.join("commondir")).is_ok() {
        let Some(text) = read_small(&git_dir.join("commondir")) else {
            return false;
        };
        let Ok(common) = git_dir.join(text.trim_end()).canonicalize() else {
            return false;
        };
        if !common.starts_with(root) {
            return false;
        }
        dirs.push(common);
    }
    dirs.iter().all(|dir| {
        fs::symlink_metadata(dir.join("objects/info/alternates")).is_err()
            && walkdir::WalkDir::new(dir)
                .follow_links(false)
                .into_iter()
                .all(|entry| match entry {
                    Ok(entry) if entry.path_is_symlink() => under_root(entry.path()),
                    Ok(_) => true,
                    Err(_) => false,
                })
    })
}

/// A small text file of a repository folder (`.git`, `commondir`): `None` when it cannot
/// be read or is longer than a path.
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    fs::File::open(path)
        .ok()?
        .take(8192)
        .read_to_string(&mut text)
        .ok()?;
    (text.len() < 8192).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkout_whose_repository_leads_out_is_refused() {
        let top = tempfile::tempdir().unwrap();
        let top = top.path();
        let allowed = top.join("allowed");
        let outside = top.join("secret/.git");
        for git_dir in [&outside, &allowed.join("main/.git")] {
            fs::create_dir_all(git_dir.join("objects/info")).unwrap();
            fs::create_dir_all(git_dir.join("refs")).unwrap();
            fs::write(git_dir.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        }
        let policy = SourcePolicy::new(std::slice::from_ref(&allowed)).unwrap();
        let check = |name: &str| policy.check(&format!("{}/{name}", allowed.display()));
        let app = |name: &str, dot_git: Option<&str>| {
            let dir = allowed.join(name);
            fs::create_dir_all(&dir).unwrap();
            if let Some(text) = dot_git {
                fs::write(dir.join(".git"), text).unwrap();
            }
            dir
        };
        let repo = |name: &str| {
            let git_dir = app(name, None).join(".git");
            fs::create_dir_all(git_dir.join("objects/info")).unwrap();
            fs::write(git_dir.join("HEAD"), "ref: refs/heads/main\n").unwrap();
            git_dir
        };
        // Inside: a plain folder, the main checkout, a linked work tree of it.
        app("plain", None);
        std::os::unix::fs::symlink("/etc", allowed.join("plain/etc")).unwrap();
        assert!(check("plain").is_ok());
        assert!(check("main").is_ok());
        app(
            "linked",
            Some(&format!(
                "gitdir: {}\n",
                allowed.join("main/.git").display()
            )),
        );
        assert!(check("linked").is_ok());

        // Out: a `gitdir:` file, a `.git` link, a `commondir`, alternates, a link inside.
        app("gitdir", Some(&format!("gitdir: {}\n", outside.display())));
        app("gitdir-rel", Some("gitdir: ../../secret/.git"));
        std::os::unix::fs::symlink(&outside, app("dot-link", None).join(".git")).unwrap();
        let common = repo("common");
        fs::write(common.join("commondir"), outside.to_str().unwrap()).unwrap();
        let alternates = repo("alternates");
        fs::write(alternates.join("objects/info/alternates"), "/x\n").unwrap();
        let objects = repo("objects-link");
        std::os::unix::fs::symlink(outside.join("objects"), objects.join("objects/pack")).unwrap();
        for name in [
            "gitdir",
            "gitdir-rel",
            "dot-link",
            "common",
            "alternates",
            "objects-link",
        ] {
            let err = check(name).unwrap_err().to_string();
            assert!(err.contains("leads out of the folders"), "{name}: {err}");
        }
    }

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
