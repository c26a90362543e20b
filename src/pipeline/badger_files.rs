//! The files of a badger folder (`badger.yaml`, `build.sh`, the `setup` script) read from
//! the host and installed into the image being built, both without ever leaving their
//! roots. A badger folder may come from an API upload, so every name in it is hostile: a
//! file is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to the
//! folder and must be a regular file (a symlink to `/etc/shadow` is refused, not
//! followed). The destination path comes from the manifest: it is normalised lexically
//! (no `..`), its parents are created and reopened one by one through
//! [`Root::open_dir`](crate::layer::safe_path::Root::open_dir) (an absolute symlink in the
//! image means a path in the image, a `..` climb out of it is refused), and the file is
//! created with `*at` calls relative to the parent's descriptor. This module runs nothing
//! and does not parse the manifest.

use crate::layer::safe_path::{normalize, split, Resolved, Root};
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The largest badger file read from a badger folder (manifests and scripts are small).
pub const MAX_BADGER_FILE: u64 = 16 << 20;

/// Why a badger file could not be read or installed.
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
    #[error("cannot install {path} in the image: {reason}")]
    Destination { path: String, reason: &'static str },
    #[error("cannot install {path} in the image: {action} failed")]
    Install {
        path: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
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
    let mut rel = Vec::new();
    normalize(name.as_bytes(), &mut rel).map_err(refused)?;
    if rel.is_empty() {
        return Err(refused("it names the folder itself"));
    }
    let root = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| failed("open the folder of")(e.into()))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let fd = match openat2(root.as_fd(), &rel[..], how) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => return Err(refused("it is (or runs through) a symlink")),
        Err(Errno::EXDEV) => return Err(refused("it leaves the badger folder")),
        Err(errno) => return Err(failed("open")(errno.into())),
    };
    let stat = fstat(&fd).map_err(|e| failed("stat")(e.into()))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(refused("it is not a regular file"));
    }
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

/// Writes `content` as an executable file (0755) at the image path `path` (absolute, as
/// the manifest gives it) under the image root `root`, creating missing parents (0755).
/// A file already there is replaced; whatever the name held is never written through.
pub fn install_in_image(root: &Path, path: &str, content: &[u8]) -> Result<(), BadgerFileError> {
    let destination = |reason| BadgerFileError::Destination {
        path: path.to_string(),
        reason,
    };
    let failed = |action: &'static str| {
        move |source: std::io::Error| BadgerFileError::Install {
            path: path.to_string(),
            action,
            source,
        }
    };
    let mut rel = Vec::new();
    normalize(path.trim_start_matches('/').as_bytes(), &mut rel).map_err(destination)?;
    if rel.is_empty() {
        return Err(destination("it names the image root"));
    }
    let root = Root::open(root).map_err(failed("open the image root"))?;
    let (parent, name) = split(&rel);
    let open = |prefix: &[u8]| -> Result<OwnedFd, BadgerFileError> {
        match root.open_dir(prefix, OFlag::O_PATH) {
            Ok(Resolved::Dir(fd)) => Ok(fd),
            Ok(Resolved::Escapes) => Err(destination(
                "its parent runs through a symlink that leaves the image",
            )),
            Err(source) => Err(failed("open a parent directory")(source)),
        }
    };
    let mut dir = open(b"")?;
    if !parent.is_empty() {
        let mut end = 0;
        for component in parent.split(|&b| b == b'/') {
            match mkdirat(&dir, component, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(failed("create a parent directory")(errno.into())),
            }
            end += if end == 0 { 0 } else { 1 } + component.len();
            // Reopened through the root, so a symlink met here is judged like any other.
            dir = open(&parent[..end])?;
        }
    }
    // Whatever holds the name (a symlink planted by the image, say) is replaced.
    match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(Errno::EISDIR) => return Err(destination("a directory holds its name")),
        Err(errno) => return Err(failed("replace the existing file")(errno.into())),
    }
    let fd = openat(
        &dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o755),
    )
    .map_err(|e| failed("create")(e.into()))?;
    // The umask may have taken bits away.
    fchmod(&fd, Mode::from_bits_truncate(0o755)).map_err(|e| failed("chmod")(e.into()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(content).map_err(failed("write"))?;
    Ok(())
}

/// Removes the file at the image path `path` under `root` (the setup script, after its
/// run). The script may have replaced a parent with a symlink: the parent is opened inside
/// the root, so nothing outside it is ever removed. A missing file is not an error.
pub fn remove_from_image(root: &Path, path: &str) -> Result<(), BadgerFileError> {
    let destination = |reason| BadgerFileError::Destination {
        path: path.to_string(),
        reason,
    };
    let failed = |action: &'static str| {
        move |source: std::io::Error| BadgerFileError::Install {
            path: path.to_string(),
            action,
            source,
        }
    };
    let mut rel = Vec::new();
    normalize(path.trim_start_matches('/').as_bytes(), &mut rel).map_err(destination)?;
    let root = Root::open(root).map_err(failed("open the image root"))?;
    let (parent, name) = split(&rel);
    let dir = match root.open_dir(parent, OFlag::O_PATH) {
        Ok(Resolved::Dir(fd)) => fd,
        Ok(Resolved::Escapes) => return Ok(()),
        Err(source) if source.raw_os_error() == Some(libc_enoent()) => return Ok(()),
        Err(source) => return Err(failed("open the parent directory")(source)),
    };
    match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(failed("remove")(errno.into())),
    }
}

fn libc_enoent() -> i32 {
    Errno::ENOENT as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

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
        let err = read_badger_file(dir.path(), "real").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn install_stays_inside_the_image_root() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        let outside = top.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let err = install_in_image(&root, "/../outside/A.sh", b"x").unwrap_err();
        assert!(err.to_string().contains("`..`"), "{err}");
        // An absolute symlink in the image means a path in the image.
        std::fs::create_dir_all(root.join("opt/solum")).unwrap();
        symlink(&outside, root.join("opt/solum/bin")).unwrap();
        symlink("/opt/solum", root.join("solum")).unwrap();
        install_in_image(&root, "/solum/bin/build.sh", b"echo hi").unwrap_err();
        std::fs::remove_file(root.join("opt/solum/bin")).unwrap();
        install_in_image(&root, "/solum/bin/build.sh", b"echo hi").unwrap();
        assert!(!outside.join("build.sh").exists());
        let installed = root.join("opt/solum/bin/build.sh");
        assert_eq!(std::fs::read(&installed).unwrap(), b"echo hi");
        assert_eq!(
            std::fs::metadata(&installed).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        // A relative climb out of the image is refused.
        symlink("../../outside", root.join("up")).unwrap();
        let err = install_in_image(&root, "/up/b.sh", b"x").unwrap_err();
        assert!(err.to_string().contains("leaves the image"), "{err}");
        // A symlink at the name itself is replaced, not written through.
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(outside.join("victim"), "keep").unwrap();
        symlink(outside.join("victim"), root.join("usr/bin/b.sh")).unwrap();
        install_in_image(&root, "/usr/bin/b.sh", b"new").unwrap();
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep");
        assert_eq!(std::fs::read(root.join("usr/bin/b.sh")).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }
}
