//! Small filesystem operations relative to directory descriptors, shared by unpacking and
//! whiteouts: recursive removal and xattrs on entries that cannot be opened. Nothing here
//! resolves a path of more than one component, so nothing here can leave the root.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fchmodat, fstat, FchmodatFlags, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Removes `name` in `dir`, recursively if it is a directory. Rootless, directories
/// without write or search permission (mode 0555, 0000) are opened up first, since
/// they are ours and are going away anyway.
pub(crate) fn remove_all(dir: &OwnedFd, name: &[u8], rootless: bool) -> nix::Result<()> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => {}
        other => return other,
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let child = match openat(dir, name, flags, Mode::empty()) {
        Err(Errno::EACCES) if rootless => {
            // A directory (unlinkat said EISDIR) that we may not read: chmod it by name.
            // Following is moot for a directory entry we just classified; the worst a
            // concurrent swap could do is chmod an inode inside the root we own.
            fchmodat(
                dir,
                name,
                Mode::from_bits_truncate(0o700),
                FchmodatFlags::FollowSymlink,
            )?;
            openat(dir, name, flags, Mode::empty())?
        }
        other => other?,
    };
    if rootless && fstat(&child)?.st_mode & 0o700 != 0o700 {
        fchmod(&child, Mode::from_bits_truncate(0o700))?;
    }
    let mut names = Vec::new();
    {
        let listing = openat(&child, ".", flags, Mode::empty())?;
        let mut entries = nix::dir::Dir::from_fd(listing)?;
        for entry in entries.iter() {
            let entry = entry?;
            let entry_name = entry.file_name().to_bytes();
            if entry_name != b"." && entry_name != b".." {
                names.push(entry_name.to_vec());
            }
        }
    }
    for entry_name in names {
        remove_all(&child, &entry_name, rootless)?;
    }
    unlinkat(dir, name, UnlinkatFlags::RemoveDir)
}

/// Sets an xattr on `name` in `dir` without following it if it is a symlink. There is no
/// `lsetxattrat`: the parent's /proc magic link names exactly the parent inode, and the
/// single last component is not followed (lsetxattr).
pub(crate) fn set_path_xattr(
    dir: &OwnedFd,
    name: &[u8],
    key: &[u8],
    value: &[u8],
) -> io::Result<()> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    xattr::set(OsStr::from_bytes(&path), OsStr::from_bytes(key), value)
}
