//! The files of a badger folder (`badger.yaml`, `build.sh`, the `setup` script) read from
//! the host without ever leaving the folder. A badger folder may come from an API upload,
//! so every name in it is hostile: a file is opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to the folder and must be a
//! regular file (a symlink to `/etc/shadow` is refused, not followed). Installing them in
//! the image is [`super::confined`]'s work. This module runs nothing and does not parse
//! the manifest.

use crate::error_class::{Classify, ErrorClass};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The largest badger file read from a badger folder (manifests and scripts are small).
pub const MAX_BADGER_FILE: u64 = 16 << 20;

/// Why a badger file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BadgerFileError {
    #[error("badger file {name:?} in {dir}: {reason}")]
    Refused {
        dir: PathBuf,
        name: String,
        reason: &'static str,
    },
    #[error("badger file {name:?} in {dir}: cannot {action} it")]
    Read {
        dir: PathBuf,
        name: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for BadgerFileError {
    fn class(&self) -> ErrorClass {
        // The badger folder is the user's: a file in it that cannot be read is theirs to fix.
        match self {
            BadgerFileError::Refused { .. } | BadgerFileError::Read { .. } => ErrorClass::Input,
        }
    }
}

/// The components of a path (a leading `/` ignored); `.`, `..` and NUL are refused.
fn components(path: &str) -> Result<Vec<&str>, &'static str> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" => {}
            "." | ".." => return Err("`.` or `..` path component"),
            _ if part.contains('\0') => return Err("NUL in the path"),
            _ => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err("it names the folder itself");
    }
    Ok(parts)
}

/// `openat2` flags that follow no symlink and never leave the descriptor's directory.
fn beneath(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        )
}

fn open_root(root: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Reads the regular file `name` (relative, no `..`) of the badger folder `dir`. Symlinks
/// anywhere on the way, and anything but a regular file, are refused. `Ok(None)` when the
/// file does not exist.
pub fn read_badger_file(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, BadgerFileError> {
    let refused = |reason| BadgerFileError::Refused {
        dir: dir.to_path_buf(),
        name: name.to_string(),
        reason,
    };
    let failed = |action: &'static str| {
        move |source: std::io::Error| BadgerFileError::Read {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            action,
            source,
        }
    };
    if name.starts_with('/') {
        return Err(refused("absolute path"));
    }
    let rel = components(name).map_err(refused)?.join("/");
    let root = open_root(dir).map_err(|e| failed("open the folder of")(e.into()))?;
    // Looked at through an O_PATH descriptor first, opened for reading only once it is
    // known to be a regular file: the folder may be an image's tree, and opening a device
    // node in it (a watchdog, a tape) acts on the host's hardware.
    let how = beneath(OFlag::O_PATH);
    let path_fd = match openat2(root.as_fd(), rel.as_str(), how) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => return Err(refused("it is (or runs through) a symlink")),
        Err(Errno::EXDEV) => return Err(refused("it leaves the badger folder")),
        Err(errno) => return Err(failed("open")(errno.into())),
    };
    let stat = fstat(&path_fd).map_err(|e| failed("stat")(e.into()))?;
    match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => {}
        // O_PATH with O_NOFOLLOW stops at a last component that is a symlink.
        SFlag::S_IFLNK => return Err(refused("it is (or runs through) a symlink")),
        _ => return Err(refused("it is not a regular file")),
    }
    // The /proc link of the O_PATH descriptor is this very inode, whatever became of its
    // name since.
    let fd = nix::fcntl::open(
        format!("/proc/self/fd/{}", path_fd.as_raw_fd()).as_str(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| failed("open")(e.into()))?;
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_BADGER_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(failed("read"))?;
    if bytes.len() as u64 > MAX_BADGER_FILE {
        return Err(refused("it is larger than 16 MiB"));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symlinked_badger_file_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        symlink("/etc/passwd", dir.path().join("build.sh")).unwrap();
        let err = read_badger_file(dir.path(), "build.sh").unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::fs::write(dir.path().join("real/s.sh"), "echo").unwrap();
        symlink("real", dir.path().join("link")).unwrap();
        let err = read_badger_file(dir.path(), "link/s.sh").unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(
            read_badger_file(dir.path(), "real/s.sh").unwrap().unwrap(),
            b"echo"
        );
        assert!(read_badger_file(dir.path(), "missing").unwrap().is_none());
        let err = read_badger_file(dir.path(), "../x").unwrap_err();
        assert!(err.to_string().contains("`..`"), "{err}");
        assert!(read_badger_file(dir.path(), "/etc/passwd").is_err());
        let err = read_badger_file(dir.path(), "real").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    /// A device node in the folder (an image's tree, unpacked as root) is refused without
    /// ever being opened: inotify sees no open of it.
    #[test]
    fn a_device_node_is_refused_unopened() {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("bundle.crt");
        let null = nix::sys::stat::makedev(1, 3);
        if nix::sys::stat::mknod(&node, SFlag::S_IFCHR, Mode::from_bits_truncate(0o600), null)
            .is_err()
        {
            eprintln!("skipped: mknod needs root");
            return;
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
        inotify.add_watch(&node, AddWatchFlags::IN_OPEN).unwrap();
        let err = read_badger_file(dir.path(), "bundle.crt").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(
            matches!(inotify.read_events(), Err(Errno::EAGAIN)),
            "the node was opened"
        );
        // The watch does see an open: the check above is not vacuous.
        drop(std::fs::File::open(&node).unwrap());
        assert!(inotify.read_events().is_ok_and(|events| !events.is_empty()));
    }
}
