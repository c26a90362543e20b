//! Keeping a build's secrets out of what it shows and what it makes. [`Redactor`] replaces
//! each secret value (at least [`MIN_REDACTED`] bytes: the whole value without its final
//! newline, and each of its lines) with `****` in a line of text; [`RedactingReporter`]
//! puts every line a build reports through it, so the build log, the CLI's output, the
//! server's workflow log and the failure tail of a [`super::build::BuildError`] (made from
//! the same lines) never carry a value. [`check_layer`] refuses a DU whose new layer holds
//! a secret value anywhere the layer keeps it (a build that copied `/run/secrets/NAME` into
//! `/app`, made a symlink pointing at it, set it as an xattr): a secret is for the build,
//! never for the image.
//!
//! The build also masks the password of a proxy URL it passes on (see
//! [`super::build_inputs::host_proxy_passwords`]).
//!
//! What this cannot see: a value the build transformed (encoded, split, compressed) before
//! printing or writing it.

use super::build_inputs::Secret;
use super::workspace::{Workspace, WorkspaceError};
use crate::error_class::{Classify, ErrorClass};
use crate::image::Digest;
use crate::io_at::IoAt;
use crate::layer::Change;
use crate::report::{Reporter, State};
use nix::fcntl::{openat2, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use std::borrow::Cow;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
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
        Redactor::default().with_values(values)
    }

    /// This redactor masking `values` too (a proxy URL's password, say).
    pub fn with_values(mut self, values: impl IntoIterator<Item = String>) -> Redactor {
        self.values.extend(values);
        self.values.retain(|value| value.len() >= MIN_REDACTED);
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.values.dedup();
        self
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

/// Refuses the build's new layer when an entry in it holds a secret's value (the whole
/// value without its final newline, or one of its longer lines) anywhere the layer keeps
/// it: its path, a regular file's bytes, a symlink's target, an xattr's name or value.
/// Entries are reached through no symlink, from the writable root; files are read in full
/// (the layer is read as fully when it is compressed), in bounded chunks.
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
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| WorkspaceError::Io(IoAt::new(root.to_path_buf(), "open", e.into())))?;
    for change in workspace.changes(created_mount_points)? {
        let Change::Add(path) = change else { continue };
        // The path may be the very value (a file named after the secret): the message, which
        // reaches logs and workflow records, shows it masked.
        let refuse = |id: &str| {
            let shown = format!("/{}", path.strip_prefix("/").unwrap_or(&path).display());
            Err(RedactionError::SecretInLayer {
                id: id.to_string(),
                path: Redactor::new(secrets).redact(&shown).into_owned(),
            })
        };
        if let Some(id) = first_held(&needles, path.as_os_str().as_bytes()) {
            return refuse(&id);
        }
        if let Some(id) = entry_holds(root_fd.as_fd(), &path, &needles) {
            return refuse(&id);
        }
    }
    Ok(())
}

/// What [`check_layer`] looks for: `(secret name, bytes)`.
type Needle = (String, Vec<u8>);

/// The values [`check_layer`] looks for.
fn scanned_values(secrets: &[Secret]) -> Vec<Needle> {
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

/// The name of the first secret in what the layer keeps of `inner` (relative to `root`)
/// besides its name: a regular file's bytes, a symlink's target, the xattrs of any entry.
/// Nothing on the way is followed, and only a regular file is ever opened for reading: a
/// device node or a FIFO in the tree is looked at through an `O_PATH` descriptor alone
/// (opening a device can act on the host's hardware).
fn entry_holds(root: BorrowedFd<'_>, inner: &Path, needles: &[Needle]) -> Option<String> {
    let relative = inner.strip_prefix("/").unwrap_or(inner);
    let (Some(parent), Some(name)) = (relative.parent(), relative.file_name()) else {
        return None;
    };
    let beneath = ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS;
    let parent_path = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir_how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(beneath);
    let dir = openat2(root, parent_path, dir_how).ok()?;
    // O_PATH with O_NOFOLLOW gives the symlink itself, RESOLVE_NO_SYMLINKS notwithstanding.
    let entry_how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(beneath);
    let entry = openat2(dir.as_fd(), name, entry_how).ok()?;
    if let Some(id) = xattrs_hold(&dir, name, needles) {
        return Some(id);
    }
    let kind = SFlag::from_bits_truncate(fstat(&entry).ok()?.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFLNK {
        let target = readlinkat(&entry, "").ok()?;
        return first_held(needles, target.as_bytes());
    }
    if kind != SFlag::S_IFREG {
        return None;
    }
    // The /proc link of the O_PATH descriptor is this very inode: the reopening reads
    // the file looked at, whatever became of its name.
    let file = nix::fcntl::open(
        format!("/proc/self/fd/{}", entry.as_raw_fd()).as_str(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    file_holds(std::fs::File::from(file), needles)
}

/// The name of the first secret in an xattr (name or value) of `name` in `dir`, the
/// entry itself when it is a symlink (there is no `lgetxattrat`: the parent's /proc
/// link names exactly the parent, and the last component is not followed).
fn xattrs_hold(dir: &OwnedFd, name: &OsStr, needles: &[Needle]) -> Option<String> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.as_bytes());
    let path = OsStr::from_bytes(&path);
    for key in xattr::list(path).ok()? {
        if let Some(id) = first_held(needles, key.as_bytes()) {
            return Some(id);
        }
        let value = xattr::get(path, &key).ok().flatten().unwrap_or_default();
        if let Some(id) = first_held(needles, &value) {
            return Some(id);
        }
    }
    None
}

/// The name of the first secret whose bytes `bytes` holds.
fn first_held(needles: &[Needle], bytes: &[u8]) -> Option<String> {
    needles
        .iter()
        .find(|(_, value)| memchr::memmem::find(bytes, value).is_some())
        .map(|(id, _)| id.clone())
}

/// The name of the first secret whose bytes `file` holds, read in chunks: memory stays
/// bounded whatever the file's size.
fn file_holds(mut file: std::fs::File, needles: &[Needle]) -> Option<String> {
    let finders: Vec<(&str, memchr::memmem::Finder<'_>)> = needles
        .iter()
        .map(|(id, value)| (id.as_str(), memchr::memmem::Finder::new(value)))
        .collect();
    // Read in chunks, keeping the last `longest - 1` bytes so a value across two chunks is
    // found too.
    let keep = needles.iter().map(|(_, v)| v.len()).max().unwrap_or(1) - 1;
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
        let root = std::fs::File::open(dir.path()).unwrap();
        let holds = |inner: &str| entry_holds(root.as_fd(), Path::new(inner), &needles);
        assert_eq!(holds("/f").as_deref(), Some("token"));
        assert_eq!(holds("clean"), None);
        assert_eq!(holds("link"), None);
    }

    #[test]
    fn a_value_in_a_symlink_target_or_an_xattr_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let needles = scanned_values(&[Secret::new("token", b"hunter22\n").unwrap()]);
        std::os::unix::fs::symlink("/x/hunter22/y", dir.path().join("pointer")).unwrap();
        std::fs::write(dir.path().join("plain"), b"nothing").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        nix::unistd::mkfifo(
            &dir.path().join("sub/fifo"),
            Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let root = std::fs::File::open(dir.path()).unwrap();
        let holds = |inner: &str| entry_holds(root.as_fd(), Path::new(inner), &needles);
        assert_eq!(holds("pointer").as_deref(), Some("token"));
        // A FIFO is looked at, never opened (that would wait for a writer).
        assert_eq!(holds("sub/fifo"), None);
        assert_eq!(holds("plain"), None);
        // Not every filesystem takes user xattrs; where one does, its value is searched.
        if xattr::set(dir.path().join("plain"), "user.note", b"is hunter22").is_ok() {
            assert_eq!(holds("plain").as_deref(), Some("token"));
        }
    }
}
