//! Sources: getting an application's code into the directory that becomes `/app`.
//!
//! This module owns the three kinds of source a build can start from — a local directory,
//! a git repository (local work tree, bare repo, `file://`, `https://`, `ssh://`, `git://`
//! or `user@host:path`) at a revision, and an artifact tarball of ready-made binaries — and
//! the one operation on them, [`fetch_cancellable`]: write the source tree into a destination directory
//! and say what was fetched (the repository with any credential redacted, the resolved
//! commit and its time, a digest of the tree for the build cache). Git sources go through a
//! bare mirror per repository under the caller's cache folder and are exported like
//! `git archive`, so no `.git` ever reaches the destination.
//!
//! It must not print (progress goes through [`Reporter`]: verbs `Cloning`, `Fetching`,
//! `Resolved`, `Exporting`, `Copying`, `Compared`, `Ignored`, `Unpacking`, and a warning
//! for each skipped entry),
//! must not put a credential of the
//! host (ssh keys, tokens, credential helpers) into the destination or into anything it
//! returns, and never runs git inside the user's own repository: every git command runs in
//! the mirror, with an explicit environment. Git submodules and Git LFS content are out of
//! scope: a submodule is exported as an empty directory (as `git archive` does), an LFS
//! file as its pointer file. The repository's own `export-ignore` and `export-subst`
//! attributes apply, as they do for `git archive`.
//!
//! A folder that is a git checkout builds its working tree unless a revision is asked for
//! (`work_tree`); a folder or git source leaves out what its `.solumignore` (or
//! `.dockerignore`) names (`ignore_rules`); `source.path` builds one subdirectory of a
//! folder or repository, and cannot name anything outside it (`spec::subdirectory`).

mod bounds;
mod folder;
mod git;
mod ignore_rules;
mod policy;
mod spec;
mod tree_digest;
mod work_tree;

use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use bounds::ExpansionLimit;
pub use ignore_rules::{DOCKERIGNORE, MAX_IGNORE_FILE_BYTES, MAX_PATTERNS, SOLUMIGNORE};
pub use work_tree::DIRTY_MARK;

/// What a fetch may use beyond the source itself. The CLI fetches as its user, with that
/// user's git configuration and credentials; a server fetching for a request must not, or
/// a caller could build what only the server's identity may read (its credential helpers,
/// `~/.git-credentials`, ssh keys and agent).
#[derive(Clone, Debug, Default)]
pub struct FetchRules {
    /// How far an artifact or a git tree may expand; `None`: the unpacker's own limits.
    /// With a limit, a checkout named as a folder is built from its `HEAD` commit, not
    /// from its working tree.
    pub limit: Option<ExpansionLimit>,
    /// Git runs with no identity of this host: no system or global configuration, no
    /// askpass, no ssh agent or key, `HOME` pointing at the private mirror folder.
    pub anonymous: bool,
}
pub use policy::{AllowedSource, SourcePolicy};
pub use spec::{redact_url, SourceSpec};
pub use tree_digest::{tree_digest, tree_summary};

use crate::image::digest::Digest;
use crate::layer::LayerError;
use crate::privilege::Privilege;
use crate::report::Reporter;
use runtime::CancelHandle;

/// What was fetched, for the image's annotations, the DU manifest and the build cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// The repository URL or path, with any credential replaced by `<redacted>`; for a
    /// directory or an artifact, its path.
    pub repository: String,
    /// The full commit sha of a git source. For a checkout's working tree, its `HEAD`
    /// commit, followed by [`DIRTY_MARK`] when the tree differs from that commit.
    pub revision: Option<String>,
    /// The committer time of that commit (seconds since the epoch): the default
    /// `SOURCE_DATE_EPOCH`. `None` for a working tree that differs from its commit.
    pub commit_time: Option<i64>,
    /// [`tree_digest`] of the fetched tree.
    pub tree_digest: Digest,
    /// The newest mtime (seconds) of the fetched tree's files: for a folder or an artifact,
    /// the default `SOURCE_DATE_EPOCH` (a git source has its commit time instead).
    pub newest_mtime: Option<i64>,
}

/// Everything that can go wrong while naming or fetching a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {text:?} is neither an existing directory (relative to {base}) nor a git URL")]
    NotFound { text: String, base: PathBuf },
    #[error("source {path} is a file, not a directory or repository (a tarball of binaries is an artifact)")]
    IsAFile { path: PathBuf },
    /// A source a server request may not name (see `policy`).
    #[error("source {text:?} is not allowed: {reason}")]
    NotAllowed { text: String, reason: &'static str },
    #[error("source path {path} is not valid UTF-8, which git URLs require")]
    NonUtf8Path { path: PathBuf },
    /// A value that git would read as an option (`--upload-pack=…`).
    #[error("refusing {what} {value:?}: it starts with '-'")]
    OptionLike { what: &'static str, value: String },
    #[error("unsupported source URL {url}: {reason}")]
    UnsupportedUrl { url: String, reason: &'static str },
    #[error("invalid revision {revision:?}: {reason}")]
    InvalidRevision {
        revision: String,
        reason: &'static str,
    },
    #[error("source {source_text} has no revisions; only a git source takes one (asked for {revision:?})")]
    RevisionWithoutGit {
        source_text: String,
        revision: String,
    },
    #[error("cannot run git for {repository} (is git installed?)")]
    GitSpawn {
        repository: String,
        #[source]
        source: io::Error,
    },
    #[error("`git {command}` for {repository} failed ({status}): {stderr}")]
    GitFailed {
        repository: String,
        command: &'static str,
        status: String,
        stderr: String,
    },
    #[error("revision {revision:?} is not a commit in {repository}")]
    RevisionNotFound {
        repository: String,
        revision: String,
    },
    #[error("exporting commit {commit} of {repository} failed")]
    Export {
        repository: String,
        commit: String,
        #[source]
        source: LayerError,
    },
    #[error("artifact {path}: cannot unpack it")]
    Artifact {
        path: PathBuf,
        #[source]
        source: LayerError,
    },
    /// The source holds more than a server request may bring (see `bounds`).
    #[error("{what}: {reason}")]
    Expansion { what: String, reason: String },
    #[error("the source fetch was cancelled")]
    Cancelled,
    /// `source.path` names no folder of the source, or one outside it.
    #[error("source.path {path:?} is refused: {reason}")]
    SourcePath { path: String, reason: &'static str },
    /// The source's `.solumignore` or `.dockerignore` cannot be used.
    #[error("ignore file {path}: {reason}")]
    IgnoreFile { path: PathBuf, reason: String },
    #[error("destination {path} is not empty")]
    DestNotEmpty { path: PathBuf },
    #[error("destination {dest} lies inside the source directory {source_dir}")]
    DestInsideSource { dest: PathBuf, source_dir: PathBuf },
    /// A filesystem operation on the destination, the cache, a source directory or an
    /// artifact failed.
    #[error(transparent)]
    Io(#[from] IoAt),
}

impl Classify for SourceError {
    fn class(&self) -> ErrorClass {
        match self {
            SourceError::NotFound { .. }
            | SourceError::IsAFile { .. }
            | SourceError::OptionLike { .. }
            | SourceError::UnsupportedUrl { .. }
            | SourceError::InvalidRevision { .. }
            | SourceError::RevisionWithoutGit { .. }
            | SourceError::RevisionNotFound { .. }
            | SourceError::Artifact { .. }
            | SourceError::Expansion { .. }
            | SourceError::SourcePath { .. }
            | SourceError::IgnoreFile { .. }
            | SourceError::NotAllowed { .. } => ErrorClass::Input,
            SourceError::Export { source, .. } => source.class(),
            SourceError::Cancelled => ErrorClass::Interrupted,
            SourceError::NonUtf8Path { .. }
            | SourceError::GitSpawn { .. }
            | SourceError::GitFailed { .. }
            | SourceError::DestNotEmpty { .. }
            | SourceError::DestInsideSource { .. }
            | SourceError::Io(_) => ErrorClass::Failure,
        }
    }
}

/// Writes the source named by `spec` into `dest` (created if missing, and required to be
/// empty) and says what was written. `cache` holds the git mirrors (`cache/git/…`) and is
/// kept between builds; it is created if missing. On error `dest` may hold part of the
/// tree: the caller owns it and removes it. The tests' shorthand for
/// [`fetch_cancellable`] with the command line's rules, as this process's user.
#[cfg(test)]
pub(crate) fn fetch(
    spec: &SourceSpec,
    dest: &Path,
    cache: &Path,
    reporter: &dyn Reporter,
) -> Result<SourceInfo, SourceError> {
    fetch_cancellable(
        spec,
        None,
        dest,
        cache,
        &CancelHandle::new(),
        &FetchRules::default(),
        Privilege::of_this_process(),
        reporter,
    )
}

/// Fetches a source (see the module documentation) — of it only the folder `subdirectory`
/// names, when it names one — stopping with [`SourceError::Cancelled`] soon after `cancel` is set: git
/// (and every process it started) is killed, a copy or an unpack stops at its next entry
/// or read. With a `rules.limit`, an artifact or a git tree that would expand past it is
/// refused before anything of it is written. An artifact or a git tree is unpacked as
/// `privilege` says (owners applied, or recorded).
#[allow(clippy::too_many_arguments)]
pub fn fetch_cancellable(
    spec: &SourceSpec,
    subdirectory: Option<&str>,
    dest: &Path,
    cache: &Path,
    cancel: &CancelHandle,
    rules: &FetchRules,
    privilege: Privilege,
    reporter: &dyn Reporter,
) -> Result<SourceInfo, SourceError> {
    let limit = rules.limit.as_ref();
    prepare_dest(dest)?;
    // A bounded fetch (the server's) builds a checkout's commit: a working tree is copied
    // as the host has it, with no count before the copy, and the server's records name
    // commits.
    let checkout_commit;
    let spec = match spec {
        SourceSpec::WorkTree(path) if limit.is_some() => {
            checkout_commit = SourceSpec::Git {
                url: spec::utf8_path(path)?,
                revision: None,
            };
            &checkout_commit
        }
        other => other,
    };
    let (repository, revision, commit_time) = match spec {
        SourceSpec::Directory(path) => {
            let root = source_root(path, subdirectory)?;
            reporter.status("Copying", &root.display().to_string());
            copy_without_ignored(&root, dest, cancel, reporter)?;
            (path.display().to_string(), None, None)
        }
        SourceSpec::WorkTree(path) => {
            let (revision, time) =
                fetch_work_tree(path, subdirectory, dest, cache, cancel, rules, reporter)?;
            (path.display().to_string(), revision, time)
        }
        SourceSpec::Git { url, revision } => {
            let commit = fetch_git_tree(
                url,
                revision.as_deref(),
                subdirectory,
                dest,
                cache,
                cancel,
                rules,
                privilege,
                reporter,
            )?;
            (redact_url(url), Some(commit.sha), Some(commit.time))
        }
        SourceSpec::Artifact(path) => {
            if let Some(text) = subdirectory {
                return Err(SourceError::SourcePath {
                    path: text.to_string(),
                    reason: "an artifact is built whole; source.path takes a folder or repository",
                });
            }
            reporter.status("Unpacking", &path.display().to_string());
            unpack_artifact(path, dest, cancel, limit, privilege)?;
            (path.display().to_string(), None, None)
        }
    };
    let (tree_digest, newest_mtime) = tree_summary(dest)?;
    Ok(SourceInfo {
        repository,
        revision,
        commit_time,
        tree_digest,
        newest_mtime,
    })
}

/// The folder a local source is built from: `path`, or its checked `subdirectory`.
fn source_root(path: &Path, subdirectory: Option<&str>) -> Result<PathBuf, SourceError> {
    match subdirectory {
        Some(text) => spec::subdirectory(path, text),
        None => Ok(path.to_path_buf()),
    }
}

/// Copies the folder `root` into `dest` less `.git` and what its ignore file names, and
/// says how much that left out.
fn copy_without_ignored(
    root: &Path,
    dest: &Path,
    cancel: &CancelHandle,
    reporter: &dyn Reporter,
) -> Result<ignore_rules::IgnoreRules, SourceError> {
    let ignore = ignore_rules::IgnoreRules::load(root)?;
    folder::copy_folder(root, dest, &ignore, cancel, reporter)?;
    report_ignored(&ignore, reporter);
    Ok(ignore)
}

fn report_ignored(ignore: &ignore_rules::IgnoreRules, reporter: &dyn Reporter) {
    if let Some(summary) = ignore.summary() {
        reporter.status("Ignored", &summary);
    }
}

/// A checkout's working tree (see `work_tree`): its revision (`HEAD`, marked dirty when the
/// copy differs from it; none before the first commit) and, for a clean tree, the commit
/// time.
fn fetch_work_tree(
    path: &Path,
    subdirectory: Option<&str>,
    dest: &Path,
    cache: &Path,
    cancel: &CancelHandle,
    rules: &FetchRules,
    reporter: &dyn Reporter,
) -> Result<(Option<String>, Option<i64>), SourceError> {
    let url = spec::utf8_path(path)?;
    let head = git::head_listing(&url, cache, cancel, rules, reporter)?;
    let root = source_root(path, subdirectory)?;
    reporter.status(
        "Copying",
        &format!("the working tree of {}", root.display()),
    );
    let ignore = copy_without_ignored(&root, dest, cancel, reporter)?;
    let Some((commit, listing)) = head else {
        reporter.status(
            "Compared",
            "the working tree: its branch has no commit yet, so it has no revision",
        );
        return Ok((None, None));
    };
    // `root` is canonical and under the canonical `path` (spec::subdirectory checks it).
    let real = path
        .canonicalize()
        .map_err(IoAt::at(path, "resolve the source path"))?;
    let prefix = root.strip_prefix(&real).unwrap_or(Path::new(""));
    let changes = work_tree::compare(dest, &listing, prefix, &ignore)?;
    let sha = commit.sha;
    if changes.total() == 0 {
        reporter.status(
            "Compared",
            &format!("the working tree with commit {sha}: no uncommitted changes"),
        );
        return Ok((Some(sha), Some(commit.time)));
    }
    reporter.status(
        "Compared",
        &format!(
            "the working tree with commit {sha}: {} uncommitted changes \
             ({} modified, {} added, {} deleted); building the working tree, not the commit",
            changes.total(),
            changes.modified,
            changes.added,
            changes.deleted
        ),
    );
    Ok((Some(format!("{sha}{DIRTY_MARK}")), None))
}

/// A git commit's tree, or its `subdirectory`, in `dest`, less what its ignore file names.
/// A subdirectory is found in the whole exported tree (exported beside `dest`), so that
/// the unpacker's checks and the mirror's path rules apply as for any export, then moved.
#[allow(clippy::too_many_arguments)]
fn fetch_git_tree(
    url: &str,
    revision: Option<&str>,
    subdirectory: Option<&str>,
    dest: &Path,
    cache: &Path,
    cancel: &CancelHandle,
    rules: &FetchRules,
    privilege: Privilege,
    reporter: &dyn Reporter,
) -> Result<git::Commit, SourceError> {
    let whole = match subdirectory {
        Some(_) => {
            let beside = dest.parent().unwrap_or(Path::new("."));
            let folder = tempfile::Builder::new()
                .prefix(".whole-tree-")
                .tempdir_in(beside)
                .map_err(IoAt::at(beside, "create a folder in"))?;
            Some(folder)
        }
        None => None,
    };
    let export_to = whole.as_ref().map_or(dest, |folder| folder.path());
    let commit = git::fetch(
        url, revision, export_to, cache, cancel, rules, privilege, reporter,
    )?;
    if let (Some(text), Some(whole)) = (subdirectory, &whole) {
        let sub = spec::subdirectory(whole.path(), text)?;
        fs::remove_dir(dest).map_err(IoAt::at(dest, "replace the destination"))?;
        fs::rename(&sub, dest).map_err(IoAt::at(dest, "move the subdirectory to"))?;
    }
    let ignore = ignore_rules::IgnoreRules::load(dest)?;
    ignore_rules::prune(dest, &ignore)?;
    report_ignored(&ignore, reporter);
    Ok(commit)
}

/// `dest` must be empty so that what lands in `/app` is exactly the source.
fn prepare_dest(dest: &Path) -> Result<(), SourceError> {
    fs::create_dir_all(dest).map_err(IoAt::at(dest, "create the destination"))?;
    let mut entries = fs::read_dir(dest).map_err(IoAt::at(dest, "list the destination"))?;
    if entries.next().is_some() {
        return Err(SourceError::DestNotEmpty {
            path: dest.to_path_buf(),
        });
    }
    Ok(())
}

/// An artifact is unpacked by the layer code, which refuses entries that climb out of
/// `dest` (`../`, absolute paths, through symlinks) and names the entry it refused.
fn unpack_artifact(
    path: &Path,
    dest: &Path,
    cancel: &CancelHandle,
    limit: Option<&ExpansionLimit>,
    privilege: Privilege,
) -> Result<(), SourceError> {
    if let Some(limit) = limit {
        let file = fs::File::open(path).map_err(IoAt::at(path, "open the artifact"))?;
        let reader = CancelReader {
            inner: file,
            cancel,
        };
        let (_, stream) = crate::layer::decompressing_reader(reader, None).map_err(|source| {
            SourceError::Artifact {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let checked = bounds::check_tar(stream, limit, "the artifact");
        if cancel.is_cancelled() {
            return Err(SourceError::Cancelled);
        }
        checked?;
    }
    let file = fs::File::open(path).map_err(IoAt::at(path, "open the artifact"))?;
    let reader = CancelReader {
        inner: file,
        cancel,
    };
    let unpacked = crate::layer::unpack_layer(
        reader,
        None,
        dest,
        &bounds::unpack_options(limit, privilege),
    );
    if cancel.is_cancelled() {
        return Err(SourceError::Cancelled);
    }
    unpacked.map_err(|source| SourceError::Artifact {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// A reader that fails once the build is cancelled, so whatever reads it stops.
pub(crate) struct CancelReader<'a, R> {
    pub(crate) inner: R,
    pub(crate) cancel: &'a CancelHandle,
}

impl<R: io::Read> io::Read for CancelReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod git_tests;
