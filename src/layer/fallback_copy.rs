//! The copy a build runs in where overlay is unavailable, made so that diffing it with
//! [`walk_changes`](super::walk_changes) afterwards gives what overlay would have given.
//!
//! It keeps what a layer carries and the walk compares: types, modes (setuid included),
//! owners (as root; rootless everything is ours already and ownership records travel in
//! the `user.rootlesscontainers` xattr), xattrs other than the host's, symlink targets,
//! device numbers, and mtimes to the nanosecond. It deliberately does not keep hard links
//! between paths: overlay's copy-up (without its `index` feature, which rootless mounts
//! lack) breaks them too, so a build that writes one name of a linked base file changes
//! only that name in both worlds. Order per entry: create (writable by us), xattrs, owner,
//! mode (after the owner, which clears setuid), times; directories get theirs after their
//! children, or a read-only directory would refuse them.
//!
//! It only reads `from` (rootless, our own unreadable entries are opened up for a moment,
//! as the diff does) and only creates inside `to`, which must not exist yet.

use crate::io_at::IoAt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, mkfifo, Gid, Uid};

use super::diff::Reader;
use super::LayerError;
use crate::privilege::Privilege;

/// Copies the tree `from` to the new directory `to` (see the module documentation for
/// what is kept). Sockets are skipped: they cannot be in a layer.
/// As [`Privilege::Root`], owners are copied; rootless every file is ours already.
pub fn copy_tree(from: &Path, to: &Path, privilege: Privilege) -> Result<(), LayerError> {
    let reader = Reader::new();
    let stat = fs::symlink_metadata(from).map_err(IoAt::at(from, "stat"))?;
    if !stat.is_dir() {
        return Err(IoAt::new(
            from,
            "copy the tree",
            io::Error::from_raw_os_error(libc::ENOTDIR),
        )
        .into());
    }
    copy_entry(&reader, privilege, from, to, &stat)
}

fn nix_error(path: &Path, action: &'static str) -> impl Fn(nix::errno::Errno) -> LayerError {
    let inner = IoAt::at(path, action);
    move |errno| inner(io::Error::from(errno)).into()
}

fn copy_entry(
    reader: &Reader,
    privilege: Privilege,
    from: &Path,
    to: &Path,
    stat: &fs::Metadata,
) -> Result<(), LayerError> {
    let file_type = stat.file_type();
    let private = Mode::from_bits_truncate(0o600);
    if file_type.is_dir() {
        fs::create_dir(to).map_err(IoAt::at(to, "create the directory"))?;
        fs::set_permissions(to, fs::Permissions::from_mode(0o700))
            .map_err(IoAt::at(to, "chmod"))?;
        for name in reader.list(from)? {
            let child = from.join(&name);
            let child_stat = fs::symlink_metadata(&child).map_err(IoAt::at(&child, "stat"))?;
            copy_entry(reader, privilege, &child, &to.join(&name), &child_stat)?;
        }
    } else if file_type.is_file() {
        let _guard = reader.readable(from, stat, 0o400)?;
        let mut source = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(from)
            .map_err(IoAt::at(from, "open"))?;
        let mut target: File = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(IoAt::at(to, "create"))?;
        // File to file: the standard library uses copy_file_range (reflinks where the
        // filesystem has them).
        io::copy(&mut source, &mut target).map_err(IoAt::at(to, "copy the contents to"))?;
    } else if file_type.is_symlink() {
        let target = fs::read_link(from).map_err(IoAt::at(from, "read the symlink"))?;
        symlink(&target, to).map_err(IoAt::at(to, "create the symlink"))?;
    } else if file_type.is_fifo() {
        mkfifo(to, private).map_err(nix_error(to, "create the fifo"))?;
    } else if file_type.is_char_device() || file_type.is_block_device() {
        let kind = if file_type.is_char_device() {
            SFlag::S_IFCHR
        } else {
            SFlag::S_IFBLK
        };
        mknod(to, kind, private, stat.rdev()).map_err(nix_error(to, "create the device node"))?;
    } else {
        return Ok(());
    }
    for (name, value) in reader.image_xattrs(from, stat)? {
        xattr::set(to, &name, &value).map_err(IoAt::at(to, "set an xattr on"))?;
    }
    if privilege == Privilege::Root {
        fchownat(
            nix::fcntl::AT_FDCWD,
            to,
            Some(Uid::from_raw(stat.uid())),
            Some(Gid::from_raw(stat.gid())),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(nix_error(to, "chown"))?;
    }
    if !file_type.is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(stat.mode() & 0o7777))
            .map_err(IoAt::at(to, "chmod"))?;
    }
    let atime = TimeSpec::new(stat.atime(), stat.atime_nsec());
    let mtime = TimeSpec::new(stat.mtime(), stat.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        to,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(nix_error(to, "set the times of"))
}
