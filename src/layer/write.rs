//! Writing a directory tree, or a list of changes to one, as a single reproducible layer.
//!
//! This module owns the tar bytes we emit: entries sorted by path (component by
//! component, so `a/b` follows `a` directly), ustar headers with PAX records only where
//! ustar cannot say it (long or non-ASCII names, xattrs, huge sizes or ids), numeric owners
//! without user or group names, no atime or ctime, mtimes clamped to the epoch, hardlinks
//! found by (device, inode) and written as links to the first path. The same tree and epoch
//! give the same bytes. It only reads the tree (rootless, it briefly widens the mode of
//! unreadable entries of its own user and puts it back). It streams: one file at a time through a bounded buffer, into the
//! compressing sink of `compress`.

use crate::io_at::IoAt;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tar::{EntryType, Header};

use super::compress::{LayerSink, GZIP_LEVEL};
use super::ownership::{RootlessOwner, ROOTLESS_XATTR};
use super::{Change, LayerDigests, LayerError, WriteOptions, OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::image::media::oci_layer_type;

const BLOCK: usize = 512;
/// File contents are streamed through this buffer: memory stays flat for any file size.
const COPY_BUFFER: usize = 256 * 1024;
/// Largest values the ustar octal fields hold; beyond them a PAX record carries the value.
const USTAR_MAX_ID: u64 = 0o7_777_777;
const USTAR_MAX_SIZE: u64 = 0o77_777_777_777;
/// Name of our PAX extended headers: fixed, so that output does not depend on pids or time.
const PAX_HEADER_NAME: &[u8] = b"././@PaxHeader";

/// Xattrs that describe the host rather than the image: SELinux labels of the build host,
/// and overlayfs bookkeeping of the upper directory a build diff is read from.
pub(super) fn is_host_xattr(name: &[u8]) -> bool {
    name == b"security.selinux" || is_overlay_xattr(name)
}

/// Overlayfs's own attributes (opaque directories, whiteouts, redirects). The unpacker
/// never writes them from a layer: in a cached tree that serves as an overlay lower they
/// would change what overlay shows (hide the layers below a directory, fake a whiteout).
pub(super) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// The whole tree under `root` as one layer (for `import`). The root directory itself is
/// not an entry; everything below it is, in sorted order.
pub fn write_tree<W: Write + Send + 'static>(
    root: &Path,
    options: &WriteOptions,
    out: W,
) -> Result<LayerDigests, LayerError> {
    let mut writer = TarWriter::new(root, options, out)?;
    writer.walk(PathBuf::new())?;
    writer.finish()
}

/// A list of changes as one layer (a build's diff): sorted by path; `Whiteout(p)` becomes
/// `dir/.wh.name`, `Opaque(d)` becomes `d/.wh..wh..opq`, `Add` takes the path as it is in
/// `root` now (a directory without its children).
pub fn write_changes<W: Write + Send + 'static>(
    root: &Path,
    changes: Vec<Change>,
    options: &WriteOptions,
    out: W,
) -> Result<LayerDigests, LayerError> {
    let mut keyed = Vec::with_capacity(changes.len());
    let changes_for_estimate = changes.clone();
    for change in changes {
        let (path, marker) = match &change {
            Change::Add(path) => (path, None),
            Change::Whiteout(path) => (path, Some(false)),
            Change::Opaque(path) => (path, Some(true)),
        };
        let rel = relative(path)?;
        let key = match marker {
            None => rel,
            Some(true) => rel.join(OsStr::from_bytes(OPAQUE_MARKER)),
            Some(false) => {
                let name = rel.file_name().ok_or(LayerError::Unrepresentable {
                    path: path.clone(),
                    reason: "a whiteout needs a file name",
                })?;
                let mut hidden = WHITEOUT_PREFIX.to_vec();
                hidden.extend_from_slice(name.as_bytes());
                rel.with_file_name(OsStr::from_bytes(&hidden))
            }
        };
        keyed.push((key, marker.is_some()));
    }
    // Path's ordering compares component by component, bytes within a component.
    keyed.sort();
    keyed.dedup();
    let gzip_level = super::estimate::gzip_level_for(root, &changes_for_estimate, GZIP_LEVEL);
    let mut writer = TarWriter::with_gzip_level(root, options, gzip_level, out)?;
    for (key, is_marker) in keyed {
        if is_marker {
            writer.add_marker(&key)?;
        } else {
            writer.add(&key)?;
        }
    }
    writer.finish()
}

/// A change path as a clean relative path; `..` cannot be part of a layer.
fn relative(path: &Path) -> Result<PathBuf, LayerError> {
    let mut rel = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => rel.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(LayerError::Unrepresentable {
                    path: path.to_path_buf(),
                    reason: "a change path may not contain `..`",
                })
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(LayerError::Unrepresentable {
            path: path.to_path_buf(),
            reason: "the root itself is not a layer entry",
        });
    }
    Ok(rel)
}

struct TarWriter<W: Write + Send + 'static> {
    root: PathBuf,
    epoch: Option<i64>,
    rootless: bool,
    subordinate_ids: Option<super::SubordinateIds>,
    sink: LayerSink<W>,
    /// First path of each multiply-linked inode, by (device, inode).
    links: HashMap<(u64, u64), Vec<u8>>,
    buffer: Vec<u8>,
    pax: Vec<u8>,
    euid: u32,
}

/// Restores a mode that [`grant_owner_bits`] widened.
pub(super) struct ModeGuard(Option<(PathBuf, u32)>);

impl ModeGuard {
    /// A guard that restores nothing.
    pub(super) fn none() -> ModeGuard {
        ModeGuard(None)
    }
}

/// Rootless trees may hold directories and files that their owner cannot read (mode
/// 0000, 0311): an unprivileged user owns them but lacks the bits. Grants the owner `bits`
/// on `path` for as long as the returned guard lives, when `euid` is that owner, not root,
/// and lacks them; the mode is put back on drop (a chmod changes ctime only, which layers
/// do not carry).
pub(super) fn grant_owner_bits(
    euid: u32,
    path: &Path,
    stat: &fs::Metadata,
    bits: u32,
) -> Result<ModeGuard, LayerError> {
    let mode = stat.mode() & 0o7777;
    if euid == 0 || stat.uid() != euid || mode & bits == bits {
        return Ok(ModeGuard(None));
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode | bits))
        .map_err(IoAt::at(path, "add read permission to"))?;
    Ok(ModeGuard(Some((path.to_path_buf(), mode))))
}

impl Drop for ModeGuard {
    fn drop(&mut self) {
        if let Some((path, mode)) = self.0.take() {
            // Best effort: there is no error channel in drop, and the only way this fails
            // is if the path vanished meanwhile.
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
        }
    }
}

/// What goes into one header besides the path.
struct Fields<'a> {
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: Option<&'a [u8]>,
    device: Option<(u32, u32)>,
    xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

impl<W: Write + Send + 'static> TarWriter<W> {
    fn new(root: &Path, options: &WriteOptions, out: W) -> Result<TarWriter<W>, LayerError> {
        Self::with_gzip_level(root, options, GZIP_LEVEL, out)
    }

    fn with_gzip_level(
        root: &Path,
        options: &WriteOptions,
        gzip_level: u32,
        out: W,
    ) -> Result<TarWriter<W>, LayerError> {
        Ok(TarWriter {
            root: root.to_path_buf(),
            epoch: options.epoch,
            rootless: options.rootless,
            subordinate_ids: options.subordinate_ids,
            sink: LayerSink::with_gzip_level(options.compression, gzip_level, out)?,
            links: HashMap::new(),
            buffer: vec![0; COPY_BUFFER],
            pax: Vec::new(),
            euid: nix::unistd::geteuid().as_raw(),
        })
    }

    /// `rel` is relative to the root; the error names the full path.
    fn tree_error(&self, rel: &Path, action: &'static str) -> impl Fn(io::Error) -> IoAt {
        IoAt::at(&self.root.join(rel), action)
    }

    fn write_error(&self) -> impl Fn(io::Error) -> LayerError {
        let compression = self.sink.compression();
        move |source| LayerError::Write {
            compression,
            source,
        }
    }

    /// Adds the children of the directory `rel`, sorted by name bytes, depth first, so that
    /// `a/b` directly follows `a`. Memory: one directory listing per level of depth.
    fn walk(&mut self, rel: PathBuf) -> Result<(), LayerError> {
        let dir = self.root.join(&rel);
        let stat = fs::symlink_metadata(&dir).map_err(self.tree_error(&rel, "stat"))?;
        let guard = self.readable(&dir, &stat, 0o500)?;
        let listing = fs::read_dir(&dir).and_then(|entries| {
            entries
                .map(|entry| entry.map(|e| (e.file_name(), e.file_type())))
                .collect::<io::Result<Vec<_>>>()
        });
        let mut children = listing.map_err(self.tree_error(&rel, "read the directory"))?;
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, file_type) in children {
            // Written as is, `.wh.x` would be read back as a whiteout of `x`.
            if name.as_bytes().starts_with(WHITEOUT_PREFIX) {
                return Err(LayerError::WhiteoutName {
                    path: Path::new("/").join(rel.join(&name)),
                });
            }
            let child = rel.join(name);
            self.add(&child)?;
            if file_type.map_err(self.tree_error(&child, "stat"))?.is_dir() {
                self.walk(child)?;
            }
        }
        drop(guard);
        Ok(())
    }

    fn readable(
        &self,
        path: &Path,
        stat: &fs::Metadata,
        bits: u32,
    ) -> Result<ModeGuard, LayerError> {
        grant_owner_bits(self.euid, path, stat, bits)
    }

    /// One path of the tree as an entry (a directory without its children).
    fn add(&mut self, rel: &Path) -> Result<(), LayerError> {
        let full = self.root.join(rel);
        let stat = fs::symlink_metadata(&full).map_err(self.tree_error(rel, "stat"))?;
        let file_type = stat.file_type();
        // Reading user.* xattrs and contents needs the read bit (symlinks have neither).
        let _guard = if file_type.is_symlink() {
            ModeGuard(None)
        } else {
            self.readable(&full, &stat, 0o400)?
        };
        let mut name = rel.as_os_str().as_bytes().to_vec();
        let mut link_target: Option<Vec<u8>> = None;
        let mut size = 0;
        let kind = if file_type.is_dir() {
            name.push(b'/');
            EntryType::Directory
        } else {
            let first = if stat.nlink() > 1 {
                let key = (stat.dev(), stat.ino());
                if let Some(first) = self.links.get(&key) {
                    Some(first.clone())
                } else {
                    self.links.insert(key, name.clone());
                    None
                }
            } else {
                None
            };
            if let Some(first) = first {
                link_target = Some(first);
                EntryType::Link
            } else if file_type.is_file() {
                size = stat.len();
                EntryType::Regular
            } else if file_type.is_symlink() {
                let target =
                    fs::read_link(&full).map_err(self.tree_error(rel, "read the symlink"))?;
                link_target = Some(target.into_os_string().into_vec());
                EntryType::Symlink
            } else if file_type.is_fifo() {
                EntryType::Fifo
            } else if file_type.is_char_device() {
                EntryType::Char
            } else if file_type.is_block_device() {
                EntryType::Block
            } else {
                // Sockets cannot be archived; they are runtime objects anyway.
                return Ok(());
            }
        };
        let (xattrs, record) = if kind == EntryType::Link {
            (Vec::new(), None)
        } else {
            self.xattrs(rel, &full)?
        };
        let (uid, gid) = if self.rootless {
            let mut owner = match record {
                Some(bytes) => RootlessOwner::decode(&bytes)
                    .ok_or_else(|| LayerError::OwnershipRecord { path: full.clone() })?,
                None => RootlessOwner { uid: 0, gid: 0 },
            };
            // A chown inside a range-mapped sandbox is visible as a subordinate host id,
            // and wins over a record copied up from the lower layer.
            if let Some(ids) = &self.subordinate_ids {
                if let Some(uid) = ids.uid(stat.uid()) {
                    owner.uid = uid;
                }
                if let Some(gid) = ids.gid(stat.gid()) {
                    owner.gid = gid;
                }
            }
            (u64::from(owner.uid), u64::from(owner.gid))
        } else {
            (u64::from(stat.uid()), u64::from(stat.gid()))
        };
        let device = matches!(kind, EntryType::Char | EntryType::Block).then(|| {
            let rdev = stat.rdev();
            (
                nix::sys::stat::major(rdev) as u32,
                nix::sys::stat::minor(rdev) as u32,
            )
        });
        let fields = Fields {
            kind,
            mode: stat.mode() & 0o7777,
            uid,
            gid,
            size,
            mtime: self.clamp(stat.mtime()),
            link: link_target.as_deref(),
            device,
            xattrs: &xattrs,
        };
        self.header(&name, &fields)?;
        if kind == EntryType::Regular {
            self.contents(rel, &full, size)?;
        }
        Ok(())
    }

    /// A whiteout or opaque marker: an empty regular file owned by root, mode 0, mtime 0.
    fn add_marker(&mut self, rel: &Path) -> Result<(), LayerError> {
        let fields = Fields {
            kind: EntryType::Regular,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            link: None,
            device: None,
            xattrs: &[],
        };
        self.header(rel.as_os_str().as_bytes(), &fields)
    }

    fn clamp(&self, mtime: i64) -> u64 {
        let mtime = match self.epoch {
            Some(epoch) => mtime.min(epoch),
            None => mtime,
        };
        u64::try_from(mtime).unwrap_or(0)
    }

    /// The xattrs to archive (sorted by name), and the rootless ownership record if the
    /// tree is rootless and the path has one.
    #[allow(clippy::type_complexity)]
    fn xattrs(
        &self,
        rel: &Path,
        full: &Path,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>), LayerError> {
        let mut out = Vec::new();
        let mut record = None;
        let names = match xattr::list(full) {
            Ok(names) => names,
            Err(error) if error.raw_os_error() == Some(libc::ENOTSUP) => return Ok((out, None)),
            Err(error) => return Err(self.tree_error(rel, "list the xattrs of")(error).into()),
        };
        for name in names {
            let key = name.as_bytes();
            if is_host_xattr(key) {
                continue;
            }
            let Some(value) =
                xattr::get(full, &name).map_err(self.tree_error(rel, "read an xattr of"))?
            else {
                continue;
            };
            if self.rootless && key == ROOTLESS_XATTR.as_bytes() {
                // Turned back into uid/gid; the record itself never enters a layer.
                record = Some(value);
                continue;
            }
            out.push((key.to_vec(), value));
        }
        out.sort();
        Ok((out, record))
    }

    fn header(&mut self, name: &[u8], fields: &Fields<'_>) -> Result<(), LayerError> {
        self.pax.clear();
        if name.len() > 100 || !name.is_ascii() {
            pax_record(&mut self.pax, b"path", name);
        }
        if let Some(link) = fields.link {
            if link.len() > 100 || !link.is_ascii() {
                pax_record(&mut self.pax, b"linkpath", link);
            }
        }
        if fields.size > USTAR_MAX_SIZE {
            pax_record(&mut self.pax, b"size", fields.size.to_string().as_bytes());
        }
        if fields.uid > USTAR_MAX_ID {
            pax_record(&mut self.pax, b"uid", fields.uid.to_string().as_bytes());
        }
        if fields.gid > USTAR_MAX_ID {
            pax_record(&mut self.pax, b"gid", fields.gid.to_string().as_bytes());
        }
        for (key, value) in fields.xattrs {
            let mut full_key = b"SCHILY.xattr.".to_vec();
            full_key.extend_from_slice(key);
            pax_record(&mut self.pax, &full_key, value);
        }
        if !self.pax.is_empty() {
            let mut header = Header::new_ustar();
            copy_field(
                &mut header.as_ustar_mut().expect("ustar").name,
                PAX_HEADER_NAME,
            );
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_size(self.pax.len() as u64);
            header.set_entry_type(EntryType::XHeader);
            header.set_cksum();
            let pax = std::mem::take(&mut self.pax);
            self.emit(header.as_bytes())?;
            self.emit(&pax)?;
            self.pad(pax.len() as u64)?;
            self.pax = pax;
        }
        let mut header = Header::new_ustar();
        {
            let ustar = header.as_ustar_mut().expect("ustar");
            // With a PAX path the ustar name is only a fallback for old readers.
            copy_field(&mut ustar.name, name);
            if let Some(link) = fields.link {
                copy_field(&mut ustar.linkname, link);
            }
        }
        header.set_mode(fields.mode);
        header.set_uid(fields.uid);
        header.set_gid(fields.gid);
        header.set_size(fields.size);
        header.set_mtime(fields.mtime);
        header.set_entry_type(fields.kind);
        if let Some((major, minor)) = fields.device {
            header
                .set_device_major(major)
                .and_then(|()| header.set_device_minor(minor))
                .map_err(self.write_error())?;
        }
        header.set_cksum();
        self.emit(header.as_bytes())
    }

    fn contents(&mut self, rel: &Path, full: &Path, size: u64) -> Result<(), LayerError> {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(full)
            .map_err(self.tree_error(rel, "open"))?;
        let mut left = size;
        while left > 0 {
            let want = self
                .buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = read_some(&mut file, &mut self.buffer[..want])
                .map_err(self.tree_error(rel, "read"))?;
            if n == 0 {
                return Err(self.tree_error(rel, "read")(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was being archived",
                ))
                .into());
            }
            self.sink
                .write_all(&self.buffer[..n])
                .map_err(self.write_error())?;
            left -= n as u64;
        }
        self.pad(size)
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<(), LayerError> {
        self.sink.write_all(bytes).map_err(self.write_error())
    }

    fn pad(&mut self, size: u64) -> Result<(), LayerError> {
        let rest = (size % BLOCK as u64) as usize;
        if rest != 0 {
            self.emit(&[0u8; BLOCK][rest..])?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<LayerDigests, LayerError> {
        // End of archive: two zero blocks.
        self.emit(&[0u8; 2 * BLOCK])?;
        let compression = self.sink.compression();
        let (diff_id, uncompressed_size, digest, size) = self.sink.finish()?;
        Ok(LayerDigests {
            digest,
            size,
            diff_id,
            uncompressed_size,
            media_type: oci_layer_type(compression),
        })
    }
}

fn read_some(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Copies as much of `value` as fits; the rest of the field stays NUL.
fn copy_field(field: &mut [u8], value: &[u8]) {
    let n = field.len().min(value.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Appends one PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts the whole
/// record including its own digits.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}
