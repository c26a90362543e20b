//! What a tar header says about an entry, and how it lands on the created inode: xattrs,
//! owner (or the rootless ownership record), mode, mtime — in that order, because chown
//! clears setuid/setgid and every later change would move the mtime. This module reads
//! headers and sets metadata; it creates no entries.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fchmodat, utimensat, FchmodatFlags, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, Gid, Uid};
use xattr::FileExt;

use super::fsops::set_path_xattr;
use super::ownership::{RootlessOwner, ROOTLESS_XATTR};
use super::unpack::Unpacker;
use super::LayerError;

/// The metadata of one entry, read from its header and PAX records.
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: TimeSpec,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Unpacker {
    /// The PAX records of an entry that change how the stream is read. The tar reader
    /// drops a `size` it cannot parse and goes on with the header's size, which reads the
    /// rest of the layer out of step with what the writer meant: such a size is refused.
    /// Names are bytes (PAX `hdrcharset=BINARY`, or any non-UTF-8 path), and pass as such.
    pub(super) fn check_pax<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), LayerError> {
        let bad = |key, value: &[u8]| LayerError::BadPax {
            entry: self.last_entry.clone(),
            key,
            value: String::from_utf8_lossy(value).into_owned(),
        };
        let Ok(Some(extensions)) = entry.pax_extensions() else {
            return Ok(());
        };
        for extension in extensions {
            // The tar reader splits records at newlines, so a value holding one (legal
            // in PAX, whose records are length-prefixed) cannot be read back: refused by
            // name rather than half applied.
            let extension =
                extension.map_err(|_| bad("record", b"malformed, or a value holds a newline"))?;
            if extension.key_bytes() == b"size" {
                let value = extension.value_bytes();
                let parsed = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok());
                if parsed.is_none() {
                    return Err(bad("size", value));
                }
            }
        }
        Ok(())
    }

    pub(super) fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> Result<Meta, LayerError> {
        let header = entry.header();
        let bad = |op| LayerError::Entry {
            entry: self.last_entry.clone(),
            op,
            source: io::Error::new(io::ErrorKind::InvalidData, "bad header field"),
        };
        let old = header.as_old();
        let id = |field: &[u8], value: io::Result<u64>, op| {
            lenient(field, value)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad(op))
        };
        let mode =
            lenient(&old.mode, header.mode().map(u64::from)).ok_or_else(|| bad("read mode"))?;
        let mtime = lenient(&old.mtime, header.mtime()).ok_or_else(|| bad("read mtime"))?;
        let mut meta = Meta {
            mode: (mode & 0o7777) as u32,
            uid: id(&old.uid, header.uid(), "read uid")?,
            gid: id(&old.gid, header.gid(), "read gid")?,
            mtime: TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0),
            xattrs: Vec::new(),
        };
        let extensions = entry
            .pax_extensions()
            .map_err(|_| bad("read PAX records"))?;
        for extension in extensions.into_iter().flatten() {
            let extension = extension.map_err(|_| bad("read PAX records"))?;
            let key = extension.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                if super::write::is_overlay_xattr(name) {
                    continue;
                }
                meta.xattrs
                    .push((name.to_vec(), extension.value_bytes().to_vec()));
            } else if key == b"mtime" {
                // PAX mtime is decimal seconds with an optional fraction.
                let value = extension.value().unwrap_or("");
                let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
                if let Ok(secs) = secs.parse::<i64>() {
                    let digits: String = frac.chars().take(9).collect();
                    let nanos = format!("{digits:0<9}").parse::<i64>().unwrap_or(0);
                    meta.mtime = TimeSpec::new(secs, if secs < 0 { 0 } else { nanos });
                }
            }
        }
        Ok(meta)
    }

    /// Metadata of symlinks, fifos and device nodes: these cannot be opened for writing,
    /// so everything goes through `*at` calls on the parent with the name.
    pub(super) fn apply_special(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        meta: &Meta,
        chmod: bool,
    ) -> Result<(), LayerError> {
        for (key, value) in &meta.xattrs {
            if self.rootless && key == ROOTLESS_XATTR.as_bytes() {
                continue;
            }
            self.tolerate(set_path_xattr(parent, name, key, value), "set xattr")?;
        }
        if self.rootless {
            // No ownership record here: Linux allows user.* xattrs only on regular files
            // and directories, so symlinks, fifos and devices keep 0:0 (as with umoci).
        } else {
            fchownat(
                parent,
                name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(self.failed("chown"))?;
        }
        if chmod {
            // The name was just created by mknodat in a directory only we write to; it is
            // a fifo or a device, not a symlink, so following is moot.
            fchmodat(
                parent,
                name,
                Mode::from_bits_truncate(meta.mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(self.failed("chmod"))?;
        }
        utimensat(
            parent,
            name,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(self.failed("set mtime"))
    }

    pub(super) fn apply_xattrs_fd(&self, file: &File, meta: &Meta) -> Result<(), LayerError> {
        for (key, value) in &meta.xattrs {
            // A rootless unpack writes its own record below; one in the layer is stale.
            if self.rootless && key == ROOTLESS_XATTR.as_bytes() {
                continue;
            }
            let name = std::ffi::OsStr::from_bytes(key);
            self.tolerate(file.set_xattr(name, value), "set xattr")?;
        }
        Ok(())
    }

    /// Rootless, some xattr namespaces (trusted.*, security.*) are not ours to set; the
    /// target filesystem may not support xattrs at all. Neither stops an unpack.
    pub(super) fn tolerate(
        &self,
        result: io::Result<()>,
        op: &'static str,
    ) -> Result<(), LayerError> {
        match result {
            Ok(()) => Ok(()),
            Err(error) => {
                let errno = error.raw_os_error().map(Errno::from_raw);
                let tolerated = match errno {
                    Some(Errno::ENOTSUP) => true,
                    Some(Errno::EPERM | Errno::EACCES) => self.rootless,
                    _ => false,
                };
                if tolerated {
                    Ok(())
                } else {
                    Err(LayerError::Entry {
                        entry: self.last_entry.clone(),
                        op,
                        source: error,
                    })
                }
            }
        }
    }

    pub(super) fn apply_owner_fd(&self, file: &File, meta: &Meta) -> Result<(), LayerError> {
        if self.rootless {
            let owner = RootlessOwner {
                uid: meta.uid,
                gid: meta.gid,
            };
            if let Some(record) = owner.encode() {
                file.set_xattr(ROOTLESS_XATTR, &record)
                    .map_err(|source| LayerError::Entry {
                        entry: self.last_entry.clone(),
                        op: "record rootless owner",
                        source,
                    })?;
            }
            Ok(())
        } else {
            fchown(
                file,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(self.failed("chown"))
        }
    }
}

/// A numeric header field; one left empty (all NUL or spaces, as some writers do for ids
/// they do not know) reads as 0, the way Go's archive/tar reads it.
fn lenient(field: &[u8], parsed: io::Result<u64>) -> Option<u64> {
    match parsed {
        Ok(value) => Some(value),
        Err(_) if field.iter().all(|&b| b == 0 || b == b' ') => Some(0),
        Err(_) => None,
    }
}
