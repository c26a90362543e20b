//! Ignore files: `.solumignore` at the root of a folder or git source (a `.dockerignore`
//! when there is no `.solumignore`; neither: nothing is ignored) names paths that never
//! reach `/app`, the build key or the DU — `.env`, `node_modules/`, `.venv/`. `.git` is
//! left out of every source whatever the file says (see `folder`).
//!
//! The patterns are matched by the `ignore` crate's `gitignore` module (the matcher of
//! ripgrep, maintained with it): it implements git's own rules — `!` negation, a trailing
//! `/` for folders only, a `/` anchoring a pattern to the root, `**` — which a bare glob
//! library such as `globset` leaves to its caller. A `.solumignore` is read as a
//! `.gitignore`. A `.dockerignore` is read as Docker reads it, as far as git's rules can say
//! it: every pattern is anchored at the root (`*.md` ignores only the root's Markdown
//! files, as in Docker, not every folder's); Docker's one extra — a `!` pattern that brings
//! a file back from inside an ignored folder — does not work here, as in git.
//!
//! Order: the ignore file is read once from the source root (the `source.path`
//! subdirectory when one is given), then a folder source is copied without what it
//! matches (an ignored folder is not even walked), and a git source's exported tree is
//! pruned of it. Artifacts are not filtered: they are ready-made trees whose maker chose
//! their content.
//!
//! The file is hostile input like the rest of the source: it is opened without following a
//! symlink and must be a regular file of at most [`MAX_IGNORE_FILE_BYTES`] with at most
//! [`MAX_PATTERNS`] patterns. A pattern only ever decides whether a path already found
//! under the root is left out; no pattern is a path that is opened, so none can make
//! anything outside the source be read.

use std::cell::Cell;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use walkdir::WalkDir;

use super::SourceError;
use crate::io_at::IoAt;

/// The ignore file of a source, read first.
pub const SOLUMIGNORE: &str = ".solumignore";
/// The ignore file read when there is no [`SOLUMIGNORE`].
pub const DOCKERIGNORE: &str = ".dockerignore";
/// The largest ignore file read: far beyond any real one, small enough to parse at once.
pub const MAX_IGNORE_FILE_BYTES: u64 = 64 * 1024;
/// The most patterns an ignore file may hold: each is a glob matched against every path.
pub const MAX_PATTERNS: usize = 1000;

/// The patterns of a source's ignore file, and how many paths they left out so far.
pub(super) struct IgnoreRules {
    matcher: Gitignore,
    /// The file the patterns came from; `None`: no ignore file, nothing is ignored.
    file: Option<&'static str>,
    ignored: Cell<u64>,
}

impl IgnoreRules {
    /// Rules that ignore nothing.
    pub(super) fn none() -> IgnoreRules {
        IgnoreRules {
            matcher: Gitignore::empty(),
            file: None,
            ignored: Cell::new(0),
        }
    }

    /// The rules of `root`'s `.solumignore`, else its `.dockerignore`, else none.
    pub(super) fn load(root: &Path) -> Result<IgnoreRules, SourceError> {
        for (file, docker) in [(SOLUMIGNORE, false), (DOCKERIGNORE, true)] {
            let path = root.join(file);
            if let Some(text) = read_bounded(&path)? {
                let matcher = parse(root, &path, &text, docker)?;
                return Ok(IgnoreRules {
                    matcher,
                    file: Some(file),
                    ignored: Cell::new(0),
                });
            }
        }
        Ok(IgnoreRules::none())
    }

    /// Whether the entry at `relative` (to the source root) is left out, counting it if so.
    pub(super) fn ignores(&self, relative: &Path, is_dir: bool) -> bool {
        if self.file.is_none() || relative.as_os_str().is_empty() {
            return false;
        }
        let ignored = self.matcher.matched(relative, is_dir).is_ignore();
        if ignored {
            self.ignored.set(self.ignored.get() + 1);
        }
        ignored
    }

    /// Whether `relative` or a folder above it is ignored, without counting it: for paths
    /// that were never walked (a tracked file the working tree left out).
    pub(super) fn covers(&self, relative: &Path) -> bool {
        self.file.is_some()
            && self
                .matcher
                .matched_path_or_any_parents(relative, false)
                .is_ignore()
    }

    /// The status line of a fetch that had an ignore file: how many paths (a folder
    /// counting once, with all it holds) it left out.
    pub(super) fn summary(&self) -> Option<String> {
        let file = self.file?;
        let count = self.ignored.get();
        let noun = if count == 1 { "path" } else { "paths" };
        Some(format!("{count} {noun} matched by {file}"))
    }
}

/// The ignore file at `path`, or `None` if there is none. A symlink, a folder or a device
/// there is an error rather than a missing file: a source that names an ignore file and
/// has it not applied would put in the image what its author meant to keep out.
fn read_bounded(path: &Path) -> Result<Option<String>, SourceError> {
    let refused = |reason: String| SourceError::IgnoreFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = fs::OpenOptions::new()
        .read(true)
        // No symlink followed; a fifo does not block the open.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refused("it is a symlink".to_string()))
        }
        Err(error) => return Err(IoAt::new(path, "open the ignore file", error).into()),
    };
    let meta = file
        .metadata()
        .map_err(IoAt::at(path, "read the metadata of"))?;
    if !meta.is_file() {
        return Err(refused("it is not a regular file".to_string()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_IGNORE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(IoAt::at(path, "read the ignore file"))?;
    if bytes.len() as u64 > MAX_IGNORE_FILE_BYTES {
        return Err(refused(format!(
            "it is larger than {MAX_IGNORE_FILE_BYTES} bytes"
        )));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The matcher of an ignore file's `text`; `docker`: anchor every pattern at the root.
fn parse(root: &Path, path: &Path, text: &str, docker: bool) -> Result<Gitignore, SourceError> {
    let refused = |reason: String| SourceError::IgnoreFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut builder = GitignoreBuilder::new(root);
    let mut patterns = 0;
    for (number, line) in text.lines().enumerate() {
        let line = if docker {
            match docker_pattern(line) {
                Some(line) => line,
                None => continue,
            }
        } else {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            line.to_string()
        };
        patterns += 1;
        if patterns > MAX_PATTERNS {
            return Err(refused(format!(
                "it holds more than {MAX_PATTERNS} patterns"
            )));
        }
        builder
            .add_line(None, &line)
            .map_err(|error| refused(format!("line {}: {error}", number + 1)))?;
    }
    builder.build().map_err(|error| refused(error.to_string()))
}

/// A `.dockerignore` line as the gitignore pattern that means the same: Docker trims
/// spaces, drops a leading `/` or `./` and matches from the root only.
fn docker_pattern(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (negated, pattern) = match line.strip_prefix('!') {
        Some(rest) => ("!", rest.trim()),
        None => ("", line),
    };
    let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
    let pattern = pattern.trim_end_matches('/');
    if pattern.is_empty() || pattern == "." {
        return None;
    }
    Some(format!("{negated}/{pattern}"))
}

/// Removes from the tree under `root` (a git export: ours to change) every entry `rules`
/// ignore, an ignored folder with all it holds. Links are not followed.
pub(super) fn prune(root: &Path, rules: &IgnoreRules) -> Result<(), SourceError> {
    if rules.file.is_none() {
        return Ok(());
    }
    let mut walk = WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|error| {
            let path = error.path().unwrap_or(root).to_path_buf();
            IoAt::at(&path, "walk the tree at")(error.into())
        })?;
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .expect("walkdir yields paths under its root");
        let is_dir = entry.file_type().is_dir();
        if !rules.ignores(relative, is_dir) {
            continue;
        }
        if is_dir {
            walk.skip_current_dir();
            fs::remove_dir_all(path).map_err(IoAt::at(path, "remove the ignored folder"))?;
        } else {
            fs::remove_file(path).map_err(IoAt::at(path, "remove the ignored file"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(file: &str, text: &str) -> (tempfile::TempDir, IgnoreRules) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(file), text).unwrap();
        let rules = IgnoreRules::load(dir.path()).unwrap();
        (dir, rules)
    }

    #[test]
    fn gitignore_rules_with_negation() {
        let (_dir, rules) = rules(
            SOLUMIGNORE,
            "# secrets\n.env\nnode_modules/\n*.log\n!keep.log\n",
        );
        assert!(rules.ignores(Path::new(".env"), false));
        assert!(rules.ignores(Path::new("web/.env"), false));
        assert!(rules.ignores(Path::new("node_modules"), true));
        assert!(!rules.ignores(Path::new("node_modules"), false));
        assert!(rules.ignores(Path::new("debug.log"), false));
        assert!(!rules.ignores(Path::new("keep.log"), false));
        assert!(!rules.ignores(Path::new("app.py"), false));
        assert_eq!(rules.summary().unwrap(), "4 paths matched by .solumignore");
    }

    #[test]
    fn dockerignore_is_the_fallback_and_anchored() {
        let (dir, rules) = rules(DOCKERIGNORE, "*.md\n./build/\n!README.md\n");
        assert!(rules.ignores(Path::new("NOTES.md"), false));
        assert!(!rules.ignores(Path::new("docs/NOTES.md"), false));
        assert!(!rules.ignores(Path::new("README.md"), false));
        assert!(rules.ignores(Path::new("build"), true));
        // A .solumignore, once there, wins.
        fs::write(dir.path().join(SOLUMIGNORE), "docs/\n").unwrap();
        let rules = IgnoreRules::load(dir.path()).unwrap();
        assert!(!rules.ignores(Path::new("NOTES.md"), false));
        assert!(rules.ignores(Path::new("docs"), true));
    }

    #[test]
    fn no_ignore_file_ignores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let rules = IgnoreRules::load(dir.path()).unwrap();
        assert!(!rules.ignores(Path::new(".env"), false));
        assert_eq!(rules.summary(), None);
    }

    #[test]
    fn a_hostile_ignore_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join(SOLUMIGNORE)).unwrap();
        let err = IgnoreRules::load(dir.path()).err().unwrap();
        assert!(err.to_string().contains("it is a symlink"), "{err}");

        let big = "x\n".repeat(MAX_PATTERNS + 1);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SOLUMIGNORE), &big).unwrap();
        let err = IgnoreRules::load(dir.path()).err().unwrap();
        assert!(err.to_string().contains("more than 1000 patterns"), "{err}");

        let huge = "#".repeat(MAX_IGNORE_FILE_BYTES as usize + 1);
        fs::write(dir.path().join(SOLUMIGNORE), huge).unwrap();
        let err = IgnoreRules::load(dir.path()).err().unwrap();
        assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");

        fs::remove_file(dir.path().join(SOLUMIGNORE)).unwrap();
        fs::create_dir(dir.path().join(SOLUMIGNORE)).unwrap();
        let err = IgnoreRules::load(dir.path()).err().unwrap();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn prune_removes_ignored_entries_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("precious"), "x").unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("node_modules/pkg")).unwrap();
        fs::write(root.join("node_modules/pkg/index.js"), "x").unwrap();
        fs::write(root.join(".env"), "SECRET=1").unwrap();
        fs::write(root.join("app.py"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("cache")).unwrap();
        fs::write(root.join(SOLUMIGNORE), "node_modules/\n.env\ncache\n").unwrap();
        let rules = IgnoreRules::load(root).unwrap();
        prune(root, &rules).unwrap();
        assert!(!root.join("node_modules").exists());
        assert!(!root.join(".env").exists());
        assert!(root.join("cache").symlink_metadata().is_err());
        assert!(root.join("app.py").exists());
        assert!(outside.path().join("precious").exists());
        assert_eq!(rules.summary().unwrap(), "3 paths matched by .solumignore");
    }
}
