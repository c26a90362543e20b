//! Keeping a build's secrets out of what it shows and what it makes. [`Redactor`] replaces
//! each secret value (at least [`MIN_REDACTED`] bytes: the whole value without its final
//! newline, and each of its lines) with `****` in a line of text; [`RedactingReporter`]
//! puts every line a build reports through it, so the build log, the CLI's output, the
//! server's workflow log and the failure tail of a [`super::build::BuildError`] (made from
//! the same lines) never carry a value. [`check_layer`] refuses a DU whose new layer holds
//! a secret value in a file (a build that copied `/run/secrets/NAME` into `/app`): a
//! secret is for the build, never for the image.
//!
//! What this cannot see: a value the build transformed (encoded, split, compressed) before
//! printing or writing it.

use super::build_inputs::Secret;
use super::workspace::{Workspace, WorkspaceError};
use crate::error_class::{Classify, ErrorClass};
use crate::image::Digest;
use crate::layer::Change;
use crate::report::{Reporter, State};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use std::borrow::Cow;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Shorter values are not redacted (they would blank ordinary words).
pub const MIN_REDACTED: usize = 4;
/// A line of a many-line secret is looked for in the layer only from this length on:
/// shorter lines (`{`, `key: x`) are common in ordinary files.
const MIN_SCANNED_LINE: usize = 16;
const MASK: &str = "****";

/// Why a DU was refused for holding a secret.
#[derive(Debug, thiserror::Error)]
pub enum RedactionError {
    #[error(
        "the build wrote the value of the secret {id:?} into the image ({path}): a secret is \
         mounted for the build only and must not reach a layer"
    )]
    SecretInLayer { id: String, path: String },
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

impl Classify for RedactionError {
    fn class(&self) -> ErrorClass {
        match self {
            // The app's build did it: a failure of the work, like a failing build command.
            RedactionError::SecretInLayer { .. } => ErrorClass::Failure,
            RedactionError::Workspace(inner) => inner.class(),
        }
    }
}

/// Replaces secret values in text with `****`.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// Longest first, so that a value is masked whole before any of its lines.
    values: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: &[Secret]) -> Redactor {
        let mut values = Vec::new();
        for secret in secrets {
            let text = String::from_utf8_lossy(secret.value()).into_owned();
            let whole = text.trim_end_matches(['\n', '\r']);
            values.push(whole.to_string());
            values.extend(
                whole
                    .lines()
                    .map(|line| line.trim_end_matches('\r').to_string()),
            );
        }
        values.retain(|value| value.len() >= MIN_REDACTED);
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Redactor { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every value replaced.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), MASK));
            }
        }
        out
    }

    /// Each line of `lines` redacted.
    pub fn redact_lines(&self, lines: Vec<String>) -> Vec<String> {
        if self.is_empty() {
            return lines;
        }
        lines
            .into_iter()
            .map(|line| self.redact(&line).into_owned())
            .collect()
    }
}

/// A [`Reporter`] that redacts every text it passes on.
pub struct RedactingReporter<'a> {
    pub inner: &'a dyn Reporter,
    pub redactor: Redactor,
}

impl Reporter for RedactingReporter<'_> {
    fn status(&self, verb: &str, subject: &str) {
        self.inner.status(verb, &self.redactor.redact(subject));
    }

    fn blob_start(&self, digest: &Digest, size: Option<u64>) {
        self.inner.blob_start(digest, size);
    }

    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        self.inner.blob_progress(digest, bytes);
    }

    fn blob_done(&self, digest: &Digest, skipped: bool) {
        self.inner.blob_done(digest, skipped);
    }

    fn warning(&self, message: &str) {
        self.inner.warning(&self.redactor.redact(message));
    }

    fn stage(&self, state: State, detail: &str) {
        self.inner.stage(state, &self.redactor.redact(detail));
    }

    fn output_line(&self, state: State, line: &str, stderr: bool) {
        self.inner
            .output_line(state, &self.redactor.redact(line), stderr);
    }
}

/// Refuses the build's new layer when a file in it holds a secret's value (the whole value
/// without its final newline, or one of its longer lines), or its path names one. Files are
/// read through no symlink, from the writable root, in full: the layer is read as fully
/// when it is compressed.
pub fn check_layer(
    workspace: &Workspace,
    created_mount_points: &[PathBuf],
    secrets: &[Secret],
) -> Result<(), RedactionError> {
    let needles = scanned_values(secrets);
    if needles.is_empty() {
        return Ok(());
    }
    let root = workspace.writable_root();
    for change in workspace.changes(created_mount_points)? {
        let Change::Add(path) = change else { continue };
        let shown = format!("/{}", path.strip_prefix("/").unwrap_or(&path).display());
        let refuse = |id: &str| {
            Err(RedactionError::SecretInLayer {
                id: id.to_string(),
                path: shown.clone(),
            })
        };
        let name = path.to_string_lossy();
        if let Some((id, _)) = needles
            .iter()
            .find(|(_, value)| name.as_bytes().windows(value.len()).any(|w| w == *value))
        {
            return refuse(id);
        }
        if let Some(id) = file_holds(root, &path, &needles) {
            return refuse(&id);
        }
    }
    Ok(())
}

/// What [`check_layer`] looks for: `(secret name, bytes)`.
fn scanned_values(secrets: &[Secret]) -> Vec<(String, Vec<u8>)> {
    let mut needles = Vec::new();
    for secret in secrets {
        let value = secret.value();
        let whole = value
            .iter()
            .rposition(|b| !matches!(b, b'\n' | b'\r'))
            .map_or(&value[..0], |end| &value[..=end]);
        if whole.len() >= MIN_REDACTED {
            needles.push((secret.id.clone(), whole.to_vec()));
        }
        for line in whole.split(|b| *b == b'\n') {
            if line.len() >= MIN_SCANNED_LINE && line.len() < whole.len() {
                needles.push((secret.id.clone(), line.to_vec()));
            }
        }
    }
    needles
}

/// The name of the first secret whose bytes the regular file `inner` of `root` holds.
fn file_holds(root: &Path, inner: &Path, needles: &[(String, Vec<u8>)]) -> Option<String> {
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let relative = inner.strip_prefix("/").unwrap_or(inner);
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    // A symlink, a folder or a device holds no bytes of a secret in the layer.
    let fd = openat2(root_fd.as_fd(), relative, how).ok()?;
    let stat = fstat(&fd).ok()?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return None;
    }
    let finders: Vec<(&str, memchr::memmem::Finder<'_>)> = needles
        .iter()
        .map(|(id, value)| (id.as_str(), memchr::memmem::Finder::new(value)))
        .collect();
    // Read in chunks, keeping the last `longest - 1` bytes so a value across two chunks is
    // found too.
    let keep = needles.iter().map(|(_, v)| v.len()).max().unwrap_or(1) - 1;
    let mut file = std::fs::File::from(fd);
    let mut window: Vec<u8> = Vec::with_capacity(keep + CHUNK);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let read = file.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        window.extend_from_slice(&chunk[..read]);
        if let Some((id, _)) = finders.iter().find(|(_, f)| f.find(&window).is_some()) {
            return Some((*id).to_string());
        }
        let drop = window.len().saturating_sub(keep);
        window.drain(..drop);
    }
}

const CHUNK: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_their_lines_are_masked() {
        let redactor = Redactor::new(&[
            Secret::new("token", b"hunter22\n").unwrap(),
            Secret::new("short", b"abc").unwrap(),
            Secret::new("key", b"first-line\r\nsecond-line\n").unwrap(),
        ]);
        assert_eq!(
            redactor.redact("the token is hunter22!"),
            "the token is ****!"
        );
        assert_eq!(redactor.redact("abc stays"), "abc stays");
        assert_eq!(redactor.redact("got second-line"), "got ****");
        assert_eq!(
            redactor.redact_lines(vec!["hunter22 hunter22".into()]),
            vec!["**** ****".to_string()]
        );
        assert!(Redactor::new(&[]).is_empty());
    }

    #[test]
    fn a_value_across_chunks_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![b'.'; CHUNK - 3];
        bytes.extend_from_slice(b"hunter22");
        bytes.extend(vec![b'.'; 10]);
        std::fs::write(dir.path().join("f"), &bytes).unwrap();
        std::fs::write(dir.path().join("clean"), b"nothing").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("link")).unwrap();
        let needles = scanned_values(&[Secret::new("token", b"hunter22\n").unwrap()]);
        assert_eq!(
            file_holds(dir.path(), Path::new("/f"), &needles).as_deref(),
            Some("token")
        );
        assert_eq!(file_holds(dir.path(), Path::new("clean"), &needles), None);
        assert_eq!(file_holds(dir.path(), Path::new("link"), &needles), None);
    }
}
