//! The files of a badger folder (`badger.yaml`, `build.sh`, the `setup` script) read from
//! the host and installed into the image being built, both without ever leaving their
//! roots. A badger folder may come from an API upload, so every name in it is hostile: a
//! file is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to the
//! folder and must be a regular file (a symlink to `/etc/shadow` is refused, not
//! followed). The destination path comes from the manifest: it must be normalised (no
//! `..`), and it is walked one component at a time from a descriptor of the image root,
//! following no symlink: a symlink or a file where a parent directory belongs is replaced
//! by a directory, as an overlay's upper directory shadows it, so the copy fallback and
//! overlay give the same tree. The file is then created with `*at` calls. This module
//! runs nothing and does not parse the manifest.

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
    let how = beneath(OFlag::O_RDONLY | OFlag::O_NONBLOCK);
    let fd = match openat2(root.as_fd(), rel.as_str(), how) {
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

/// Opens (making it when missing) the directory `name` in `dir`, following no symlink:
/// whatever else holds the name is replaced by a directory.
fn make_dir(dir: &OwnedFd, name: &str) -> nix::Result<OwnedFd> {
    let how = || beneath(OFlag::O_PATH | OFlag::O_DIRECTORY);
    match openat2(dir.as_fd(), name, how()) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(Errno::ELOOP | Errno::ENOTDIR) => unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?,
        Err(errno) => return Err(errno),
    }
    match mkdirat(dir, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => return Err(errno),
    }
    openat2(dir.as_fd(), name, how())
}

/// Writes `content` as an executable file (0755) at the image path `path` (absolute, as
/// the manifest gives it) under the image root `root`, creating missing parents (0755).
/// Whatever held the name, or a parent's name, is replaced; nothing is written through.
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
    let parts = components(path).map_err(destination)?;
    let (name, parents) = parts.split_last().expect("components are never empty");
    let mut dir = open_root(root).map_err(|e| failed("open the image root")(e.into()))?;
    for parent in parents {
        dir = make_dir(&dir, parent).map_err(|e| failed("create a parent directory")(e.into()))?;
    }
    match unlinkat(&dir, *name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(Errno::EISDIR) => return Err(destination("a directory holds its name")),
        Err(errno) => return Err(failed("replace the existing file")(errno.into())),
    }
    let fd = openat(
        &dir,
        *name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o700),
    )
    .map_err(|e| failed("create")(e.into()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(content).map_err(failed("write"))?;
    // Set after writing, whatever the umask.
    fchmod(&file, Mode::from_bits_truncate(0o755)).map_err(|e| failed("chmod")(e.into()))?;
    Ok(())
}

/// Removes the file at the image path `path` under `root` (the setup script, after its
/// run). The script may have replaced a parent with a symlink: no symlink is followed, so
/// nothing outside the root is ever removed. A missing file is not an error.
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
    let parts = components(path).map_err(destination)?;
    let (name, parents) = parts.split_last().expect("components are never empty");
    let root = open_root(root).map_err(|e| failed("open the image root")(e.into()))?;
    let dir = if parents.is_empty() {
        root
    } else {
        let how = beneath(OFlag::O_PATH | OFlag::O_DIRECTORY);
        match openat2(root.as_fd(), parents.join("/").as_str(), how) {
            Ok(fd) => fd,
            // Gone, or replaced by a symlink: nothing of ours to remove there.
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => return Ok(()),
            Err(errno) => return Err(failed("open the parent directory")(errno.into())),
        }
    };
    match unlinkat(&dir, *name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(failed("remove")(errno.into())),
    }
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
        assert!(read_badger_file(dir.path(), "/etc/passwd").is_err());
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
        // A symlink where a parent belongs (absolute or climbing out) is replaced by a
        // directory, as an overlay's upper directory would shadow it.
        symlink(&outside, root.join("solum")).unwrap();
        symlink("../../outside", root.join("up")).unwrap();
        install_in_image(&root, "/solum/bin/build.sh", b"echo hi").unwrap();
        install_in_image(&root, "/up/b.sh", b"x").unwrap();
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        let installed = root.join("solum/bin/build.sh");
        assert!(std::fs::symlink_metadata(root.join("solum"))
            .unwrap()
            .is_dir());
        assert_eq!(std::fs::read(&installed).unwrap(), b"echo hi");
        assert_eq!(
            std::fs::metadata(&installed).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        // A symlink at the name itself is replaced, not written through.
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(outside.join("victim"), "keep").unwrap();
        symlink(outside.join("victim"), root.join("usr/bin/b.sh")).unwrap();
        install_in_image(&root, "/usr/bin/b.sh", b"new").unwrap();
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep");
        assert_eq!(std::fs::read(root.join("usr/bin/b.sh")).unwrap(), b"new");
        // Removal follows no symlink either.
        std::fs::write(outside.join(".setup"), "keep").unwrap();
        std::fs::remove_dir_all(root.join("solum")).unwrap();
        symlink(&outside, root.join("solum")).unwrap();
        remove_from_image(&root, "/solum/.setup").unwrap();
        assert!(outside.join(".setup").exists());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 2);
    }
}
