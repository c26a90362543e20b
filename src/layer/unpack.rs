//! Unpacking one layer on top of a root directory.
//!
//! This module owns the order of operations for each tar entry — resolve the parent inside
//! the root, create the entry with `*at` calls, then xattrs, owner, mode, mtime — plus the
//! OCI whiteout rules and the final pass that gives directories their modes and mtimes
//! once nothing more is written into them. It does not decide what is hostile (that is
//! `safe_path`), never follows a symlink in the last component of an entry, and does not
//! clean up after an error: the caller owns the root and removes a partial one.

use crate::io_at::IoAt;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstat, fstatat, futimens, mkdirat, mknodat, FchmodatFlags, FileStat, Mode,
    SFlag,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, symlinkat};
use tar::EntryType;

use super::fsops::remove_all;
use super::limits::{Budget, CountingReader};
use super::metadata::Meta;
use super::safe_path::{normalize, split, Resolved, Root};
use super::tar_guard::{self, TarGuard};
use super::{
    decompressing_reader, display_path, LayerCompression, LayerError, UnpackOptions, UnpackReport,
    WHITEOUT_PREFIX,
};

/// File contents are copied through a buffer this large: few syscalls per big file.
const COPY_BUFFER: usize = 1024 * 1024;
/// The tar reader asks for 512-byte headers; this buffer keeps it off the decompressor.
const TAR_BUFFER: usize = 256 * 1024;

/// Unpack one layer (tar, possibly compressed) on top of `root`. `compression: None` means
/// sniff the magic bytes (gzip 1f8b, zstd 28b52ffd, else plain tar).
pub fn unpack_layer<R: Read>(
    reader: R,
    compression: Option<LayerCompression>,
    root: &Path,
    options: &UnpackOptions,
) -> Result<UnpackReport, LayerError> {
    let input = Rc::new(Cell::new(0));
    let counted = CountingReader {
        inner: reader,
        count: Rc::clone(&input),
    };
    let (compression, stream) = decompressing_reader(counted, compression)?;
    let state = Rc::new(StreamState::default());
    let tracked = Tracked {
        inner: io::BufReader::with_capacity(TAR_BUFFER, stream),
        state: Rc::clone(&state),
    };
    let root = Root::open(root).map_err(IoAt::at(root, "open the layer root"))?;
    let mut unpacker = Unpacker {
        root,
        rootless: options.rootless,
        compression,
        state,
        report: UnpackReport::default(),
        written: HashSet::new(),
        unlisted_dirs: std::iter::once(Vec::new()).collect(),
        dirs: HashMap::new(),
        cached_parent: None,
        buffer: vec![0; COPY_BUFFER],
        path: Vec::new(),
        last_entry: String::new(),
        budget: Budget::new(options.limits, input),
    };
    // The guard goes above `Tracked`: its refusals are the layer's fault, not the stream's.
    let mut archive = tar::Archive::new(TarGuard::new(tracked));
    unpacker.run(&mut archive)?;
    // Read what follows the end-of-archive marker so that the decompressor reaches the end
    // of its stream and checks its trailer (gzip CRC and length, zstd frame end): a layer
    // cut short in its padding must fail, not pass.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|source| unpacker.stream_error(source))?;
    unpacker.finish_dirs()?;
    unpacker.report.bytes = unpacker.budget.bytes;
    unpacker.report.unlisted_dirs = std::mem::take(&mut unpacker.unlisted_dirs)
        .into_iter()
        .collect();
    Ok(unpacker.report)
}

/// What the reader under the tar parser saw, so that an error can be told apart:
/// the source or decompressor failed, or the stream simply ended.
#[derive(Default)]
pub(super) struct StreamState {
    pub(super) failed: Cell<bool>,
    pub(super) eof: Cell<bool>,
}

struct Tracked<R> {
    inner: R,
    state: Rc<StreamState>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.state.eof.set(true);
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(error) => {
                self.state.failed.set(true);
                Err(error)
            }
        }
    }
}

/// Mode and times a directory gets in the final pass, and the inode they belong to.
pub(super) struct DirMeta {
    pub(super) path: Vec<u8>,
    pub(super) mode: u32,
    pub(super) atime: TimeSpec,
    pub(super) mtime: TimeSpec,
}

pub(super) struct Unpacker {
    pub(super) root: Root,
    pub(super) rootless: bool,
    pub(super) compression: LayerCompression,
    pub(super) state: Rc<StreamState>,
    pub(super) report: UnpackReport,
    /// Paths (and their ancestors) this layer has created: whiteouts must not remove them.
    pub(super) written: HashSet<Vec<u8>>,
    /// The root and the parents this layer created without listing them (see
    /// [`UnpackReport::unlisted_dirs`]).
    pub(super) unlisted_dirs: std::collections::BTreeSet<Vec<u8>>,
    /// Directories to finish, by (dev, inode) so that aliases through symlinks collapse.
    pub(super) dirs: HashMap<(u64, u64), DirMeta>,
    /// The parent directory of the previous entry; tar streams list siblings together.
    pub(super) cached_parent: Option<(Vec<u8>, OwnedFd)>,
    pub(super) buffer: Vec<u8>,
    pub(super) path: Vec<u8>,
    pub(super) last_entry: String,
    pub(super) budget: Budget,
}

impl Unpacker {
    fn run<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Result<(), LayerError> {
        let entries = archive
            .entries()
            .map_err(|source| self.stream_error(source))?;
        for entry in entries {
            let mut entry = entry.map_err(|source| self.stream_error(source))?;
            self.entry(&mut entry)?;
        }
        // tar readers take a clean end of stream as the end of the archive; a layer must
        // end with the zero blocks, or it was cut at an entry boundary.
        if self.state.eof.get() {
            return Err(LayerError::TruncatedTar {
                entry: self.last_entry.clone(),
            });
        }
        Ok(())
    }

    /// Classifies an error of the tar parser or the stream beneath it.
    pub(super) fn stream_error(&self, source: io::Error) -> LayerError {
        if tar_guard::refusal(&source).is_some() {
            let refusal = source.into_inner().and_then(|inner| inner.downcast().ok());
            return LayerError::OversizedHeader(*refusal.expect("checked above"));
        }
        if self.state.failed.get() {
            if self.compression == LayerCompression::None {
                LayerError::Read { source }
            } else {
                LayerError::CorruptCompression {
                    compression: self.compression,
                    source,
                }
            }
        } else if self.state.eof.get() {
            LayerError::TruncatedTar {
                entry: self.last_entry.clone(),
            }
        } else {
            LayerError::MalformedTar { source }
        }
    }

    pub(super) fn hostile(&self, reason: &'static str) -> LayerError {
        LayerError::HostileEntry {
            entry: self.last_entry.clone(),
            reason,
        }
    }

    pub(super) fn too_large(&self, limit: super::Exceeded) -> LayerError {
        LayerError::TooLarge {
            entry: self.last_entry.clone(),
            limit,
        }
    }

    pub(super) fn failed(&self, op: &'static str) -> impl Fn(Errno) -> LayerError + '_ {
        move |errno| LayerError::Entry {
            entry: self.last_entry.clone(),
            op,
            source: errno.into(),
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let raw = entry.path_bytes();
        self.last_entry.clear();
        self.last_entry.push_str(&String::from_utf8_lossy(&raw));
        let mut path = std::mem::take(&mut self.path);
        let normalized = normalize(&raw, &mut path);
        drop(raw);
        normalized.map_err(|reason| self.hostile(reason))?;
        self.budget.entry().map_err(|limit| self.too_large(limit))?;
        self.check_pax(entry)?;
        let result = self.entry_at(entry, &path);
        self.path = path;
        result
    }

    fn entry_at<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
    ) -> Result<(), LayerError> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        if path.is_empty() {
            // `./` describes the root itself; any other type would replace the root.
            if kind != EntryType::Directory {
                return Err(self.hostile("changes the type of the root directory"));
            }
            let meta = self.meta(entry)?;
            let dir = self.open_dir(b"", OFlag::O_RDONLY)?;
            self.apply_dir(dir, b"", &meta)?;
            self.report.entries += 1;
            return Ok(());
        }
        let (parent, name) = split(path);
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(parent, name, hidden);
        }
        let meta = self.meta(entry)?;
        let parent_fd = self.parent(parent)?;
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.create_file(&parent_fd, name, entry, &meta)?;
            }
            EntryType::Directory => self.create_dir(&parent_fd, path, name, &meta)?,
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.hostile("symlink without a target"))?;
                // The target is stored as is: a link pointing anywhere is just a link.
                // Only writing *through* it is checked, when a later path resolves it.
                self.replacing(&parent_fd, name, |dir| {
                    symlinkat(&target[..], dir.as_fd(), name)
                })
                .map_err(self.failed("symlink"))?;
                self.apply_special(&parent_fd, name, &meta, false)?;
            }
            EntryType::Link => self.create_hardlink(&parent_fd, path, name, entry)?,
            EntryType::Fifo => self.create_node(&parent_fd, name, SFlag::S_IFIFO, 0, &meta)?,
            EntryType::Char | EntryType::Block => {
                if self.rootless {
                    // mknod of a device needs CAP_MKNOD in the initial user namespace.
                    self.report.skipped_devices.push(display_path(path));
                    return Ok(());
                }
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let device = nix::sys::stat::makedev(u64::from(major), u64::from(minor));
                let sflag = if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                self.create_node(&parent_fd, name, sflag, device, &meta)?;
            }
            other => {
                return Err(LayerError::UnsupportedEntry {
                    entry: self.last_entry.clone(),
                    kind: char::from(other.as_byte()),
                })
            }
        }
        self.cached_parent = Some((parent.to_vec(), parent_fd));
        self.mark_written(path);
        self.report.entries += 1;
        Ok(())
    }

    /// Opens the parent directory of an entry, creating missing directories (as `0755`,
    /// like tar does for implied parents). A parent reached through a symlink that climbs
    /// out of the root is a hostile entry.
    pub(super) fn parent(&mut self, parent: &[u8]) -> Result<OwnedFd, LayerError> {
        if let Some((cached, _)) = &self.cached_parent {
            if cached == parent {
                let (_, fd) = self.cached_parent.take().expect("checked above");
                return Ok(fd);
            }
        }
        let fd = match self.open_dir(parent, OFlag::O_PATH) {
            Err(LayerError::Entry { source, .. })
                if source.raw_os_error() == Some(Errno::ENOENT as i32) =>
            {
                self.create_parents(parent)?
            }
            other => other?,
        };
        // Creating entries changes this directory's mtime. If this layer does not list the
        // directory itself (it belongs to a lower layer), put its times back at the end.
        let stat = self.remember_dir(&fd, parent)?;
        if self.rootless {
            self.grant_access(&fd, stat.st_mode)?;
        }
        Ok(fd)
    }

    /// Records the mode and times of directory `fd` (at `path`) for the final pass, unless
    /// already recorded (listed by this layer, or met before).
    fn remember_dir(&mut self, fd: &OwnedFd, path: &[u8]) -> Result<FileStat, LayerError> {
        let stat = fstat(fd).map_err(self.failed("stat parent directory"))?;
        self.dirs
            .entry((stat.st_dev, stat.st_ino))
            .or_insert_with(|| DirMeta {
                path: path.to_vec(),
                mode: stat.st_mode & 0o7777,
                atime: TimeSpec::new(stat.st_atime, stat.st_atime_nsec),
                mtime: TimeSpec::new(stat.st_mtime, stat.st_mtime_nsec),
            });
        Ok(stat)
    }

    /// Makes a directory writable and searchable for its (unprivileged) owner until the
    /// final pass restores its mode: a rootless unpack cannot otherwise fill a `0555` dir.
    pub(super) fn grant_access(&self, fd: &OwnedFd, mode: u32) -> Result<(), LayerError> {
        if mode & 0o700 == 0o700 {
            return Ok(());
        }
        // An O_PATH descriptor cannot be fchmod'ed; its /proc magic link names exactly
        // this inode, so chmod through it cannot be redirected.
        let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        fchmodat(
            nix::fcntl::AT_FDCWD,
            proc_path.as_str(),
            Mode::from_bits_truncate(mode | 0o700),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(self.failed("make directory writable"))
    }

    pub(super) fn open_dir(&self, rel: &[u8], flags: OFlag) -> Result<OwnedFd, LayerError> {
        match self.root.open_dir(rel, flags) {
            Ok(Resolved::Dir(fd)) => Ok(fd),
            Ok(Resolved::Escapes) => {
                Err(self.hostile("its path runs through a symlink that leaves the root"))
            }
            Err(source) => Err(LayerError::Entry {
                entry: self.last_entry.clone(),
                op: "open parent directory",
                source,
            }),
        }
    }

    fn create_parents(&mut self, parent: &[u8]) -> Result<OwnedFd, LayerError> {
        let mut fd = self.open_dir(b"", OFlag::O_PATH)?;
        let mut start = 0;
        for (index, component) in parent.split(|&b| b == b'/').enumerate() {
            if index > 0 {
                start += 1;
            }
            let end = start + component.len();
            let mode = Mode::from_bits_truncate(0o755);
            // Creating the child changes this directory's mtime: keep its times for the
            // final pass, as `parent` does for the direct parent.
            self.remember_dir(&fd, &parent[..start.saturating_sub(1)])?;
            let made = match mkdirat(&fd, component, mode) {
                Ok(()) => true,
                Err(Errno::EEXIST) => false,
                Err(Errno::EACCES) if self.rootless => {
                    let stat = fstat(&fd).map_err(self.failed("stat parent directory"))?;
                    self.grant_access(&fd, stat.st_mode)?;
                    match mkdirat(&fd, component, mode) {
                        Ok(()) => true,
                        Err(Errno::EEXIST) => false,
                        Err(errno) => return Err(self.failed("create parent directory")(errno)),
                    }
                }
                Err(errno) => return Err(self.failed("create parent directory")(errno)),
            };
            if made {
                self.unlisted_dirs.insert(parent[..end].to_vec());
            }
            // Re-open through the root so that a symlink met here is judged like any other.
            fd = self.open_dir(&parent[..end], OFlag::O_PATH)?;
            start = end;
        }
        Ok(fd)
    }

    pub(super) fn mark_written(&mut self, path: &[u8]) {
        let mut current = path;
        // Ancestors are inserted with the path, so a present path implies its ancestors.
        while !current.is_empty() && self.written.insert(current.to_vec()) {
            current = split(current).0;
        }
    }

    /// Runs `create`; if the name is taken by something else, removes that (recursively
    /// for a directory: an entry of another type replaces it) and runs `create` again.
    fn replacing<T>(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        mut create: impl FnMut(&OwnedFd) -> nix::Result<T>,
    ) -> nix::Result<T> {
        match create(dir) {
            Err(Errno::EEXIST) => {}
            Err(Errno::EACCES) if self.rootless => {
                let stat = fstat(dir)?;
                self.grant_access(dir, stat.st_mode)
                    .map_err(|_| Errno::EACCES)?;
                return self.replacing(dir, name, create);
            }
            other => return other,
        }
        self.invalidate_cache();
        remove_all(dir, name, self.rootless)?;
        create(dir)
    }

    /// Removals may take away the cached parent (or one of its ancestors).
    pub(super) fn invalidate_cache(&mut self) {
        self.cached_parent = None;
    }

    fn create_file<R: Read>(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
    ) -> Result<(), LayerError> {
        // Judged before the file exists: a sparse entry's holes come from no input, so a
        // few KiB of tar may declare a gibibyte of zeros.
        let size = entry.size();
        let header = entry.header();
        let holes = if header.entry_type() == EntryType::GNUSparse {
            size.saturating_sub(header.entry_size().unwrap_or(0))
        } else {
            0
        };
        self.budget
            .file(size, holes)
            .map_err(|limit| self.too_large(limit))?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = self
            .replacing(dir, name, |dir| {
                openat(dir, name, flags, Mode::from_bits_truncate(0o600))
            })
            .map_err(self.failed("create file"))?;
        let mut file = File::from(fd);
        let mut copied = 0u64;
        loop {
            let n = match entry.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(self.stream_error(source)),
            };
            io::Write::write_all(&mut file, &self.buffer[..n]).map_err(|source| {
                LayerError::Entry {
                    entry: self.last_entry.clone(),
                    op: "write file",
                    source,
                }
            })?;
            copied += n as u64;
            self.budget
                .wrote(n as u64)
                .map_err(|limit| self.too_large(limit))?;
        }
        if copied != size {
            return Err(LayerError::TruncatedTar {
                entry: self.last_entry.clone(),
            });
        }
        self.apply_xattrs_fd(&file, meta)?;
        self.apply_owner_fd(&file, meta)?;
        // Mode after owner: chown clears setuid/setgid.
        fchmod(&file, Mode::from_bits_truncate(meta.mode)).map_err(self.failed("chmod"))?;
        futimens(&file, &meta.mtime, &meta.mtime).map_err(self.failed("set mtime"))?;
        Ok(())
    }

    fn create_dir(
        &mut self,
        parent: &OwnedFd,
        path: &[u8],
        name: &[u8],
        meta: &Meta,
    ) -> Result<(), LayerError> {
        // A directory over an existing directory keeps its contents; over anything else
        // it replaces it (a symlink included: we never write through the last component).
        let made = self.replacing(parent, name, |dir| {
            match mkdirat(dir, name, Mode::from_bits_truncate(0o700)) {
                Err(Errno::EEXIST) => {
                    let stat = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
                    if stat.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() {
                        Ok(())
                    } else {
                        Err(Errno::EEXIST)
                    }
                }
                other => other,
            }
        });
        made.map_err(self.failed("create directory"))?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(parent, name, flags, Mode::empty()) {
            Err(Errno::EACCES) if self.rootless => {
                // A lower layer's directory without u+r: open it by path, then grant.
                let fd = openat(parent, name, flags | OFlag::O_PATH, Mode::empty())
                    .map_err(self.failed("open directory"))?;
                let stat = fstat(&fd).map_err(self.failed("stat directory"))?;
                self.grant_access(&fd, stat.st_mode)?;
                openat(parent, name, flags, Mode::empty())
            }
            other => other,
        }
        .map_err(self.failed("open directory"))?;
        self.apply_dir(fd, path, meta)
    }

    /// Xattrs and owner now; mode and mtime in the final pass, after the children.
    fn apply_dir(&mut self, fd: OwnedFd, path: &[u8], meta: &Meta) -> Result<(), LayerError> {
        self.unlisted_dirs.remove(path);
        let file = File::from(fd);
        self.apply_xattrs_fd(&file, meta)?;
        self.apply_owner_fd(&file, meta)?;
        if self.rootless {
            fchmod(&file, Mode::from_bits_truncate(meta.mode | 0o700))
                .map_err(self.failed("chmod"))?;
        }
        let stat = fstat(&file).map_err(self.failed("stat directory"))?;
        self.dirs.insert(
            (stat.st_dev, stat.st_ino),
            DirMeta {
                path: path.to_vec(),
                mode: meta.mode,
                atime: meta.mtime,
                mtime: meta.mtime,
            },
        );
        Ok(())
    }

    fn create_hardlink<R: Read>(
        &mut self,
        parent: &OwnedFd,
        path: &[u8],
        name: &[u8],
        entry: &tar::Entry<'_, R>,
    ) -> Result<(), LayerError> {
        let raw = entry
            .link_name_bytes()
            .ok_or_else(|| self.hostile("hardlink without a target"))?;
        let mut target = Vec::new();
        normalize(&raw, &mut target)
            .map_err(|_| self.hostile("hardlink target is outside the root"))?;
        if target.is_empty() {
            return Err(self.hostile("hardlink to the root directory"));
        }
        if target == path {
            return Ok(());
        }
        let (target_parent, target_name) = split(&target);
        let target_dir = match self.root.open_dir(target_parent, OFlag::O_PATH) {
            Ok(Resolved::Dir(fd)) => fd,
            Ok(Resolved::Escapes) => {
                return Err(self.hostile("hardlink target resolves outside the root"))
            }
            Err(source) => {
                return Err(LayerError::Entry {
                    entry: self.last_entry.clone(),
                    op: "open hardlink target directory",
                    source,
                })
            }
        };
        // No AT_SYMLINK_FOLLOW: a hardlink to a symlink links the symlink itself.
        self.replacing(parent, name, |dir| {
            linkat(&target_dir, target_name, dir, name, AtFlags::empty())
        })
        .map_err(self.failed("hardlink"))
    }

    fn create_node(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        kind: SFlag,
        device: u64,
        meta: &Meta,
    ) -> Result<(), LayerError> {
        self.replacing(parent, name, |dir| {
            mknodat(dir, name, kind, Mode::from_bits_truncate(0o600), device)
        })
        .map_err(self.failed("mknod"))?;
        self.apply_special(parent, name, meta, true)
    }
}
