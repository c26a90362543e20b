//! The store's cache folder (`STORE/cache`: unpacked root filesystems, per-app build
//! caches, source mirrors, build records, scratch space). What sits there came from images
//! and builds — setuid files, device nodes, another app's cache — so the folder is private
//! to its user: created 0700, tightened to 0700 when found looser, and refused when it is a
//! symlink or belongs to someone else (a folder another user planted would let them read or
//! swap what we cache). This module only guards folders; it knows nothing of their content.

use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fchmod, fstat, Mode};
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The mode of every cache folder this module guards.
const PRIVATE: u32 = 0o700;

/// What is wrong with a cache folder.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the cache folder {path} is a symlink or not a directory; remove it and run again")]
    NotADirectory { path: PathBuf },
    #[error("the cache folder {path} belongs to uid {owner}, not to you (uid {me}); use a store of your own (--store)")]
    NotOwned { path: PathBuf, owner: u32, me: u32 },
    #[error(transparent)]
    Io(#[from] IoAt),
}

impl Classify for CacheError {
    fn class(&self) -> ErrorClass {
        match self {
            CacheError::NotADirectory { .. } | CacheError::NotOwned { .. } | CacheError::Io(_) => {
                ErrorClass::Failure
            }
        }
    }
}

/// `STORE/cache`, made private (see the module comment). Every user of the cache folder
/// goes through this before it creates anything inside.
pub fn cache_root(store: &Path) -> Result<PathBuf, CacheError> {
    let root = store.join("cache");
    private_dir(&root)?;
    Ok(root)
}

/// Makes `path` a private directory of the current user: created 0700 when missing (with
/// its parents), else checked — a real directory (a symlink is not followed), owned by the
/// effective uid — and its mode set to 0700. The checks and the chmod act on one open
/// descriptor, so a rename in between cannot point them at different folders.
pub fn private_dir(path: &Path) -> Result<(), CacheError> {
    let io = |action| IoAt::at(path, action);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("create the parent of the cache folder"))?;
    }
    match nix::unistd::mkdir(path, Mode::from_bits_truncate(PRIVATE)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(errno) => return Err(io("create the cache folder")(errno.into()).into()),
    }
    let fd = match open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => {
            return Err(CacheError::NotADirectory {
                path: path.to_path_buf(),
            })
        }
        Err(errno) => return Err(io("open the cache folder")(errno.into()).into()),
    };
    let stat = fstat(fd.as_fd()).map_err(|e| io("inspect the cache folder")(e.into()))?;
    let me = nix::unistd::geteuid().as_raw();
    if stat.st_uid != me {
        return Err(CacheError::NotOwned {
            path: path.to_path_buf(),
            owner: stat.st_uid,
            me,
        });
    }
    if stat.st_mode & 0o7777 != PRIVATE {
        fchmod(fd.as_fd(), Mode::from_bits_truncate(PRIVATE))
            .map_err(|e| io("set the mode of the cache folder")(e.into()))?;
    }
    Ok(())
}

/// Removes a tree that may hold directories without write or search permission (a rootless
/// unpack applies the image's modes, e.g. 0555 on `/usr`): permissions are opened up from
/// the top down before removing.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
        Ok(meta) if !meta.is_dir() => return fs::remove_file(path),
        Ok(_) => {}
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(path).into_iter().flatten() {
        if entry.file_type().is_dir() {
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
        }
    }
    fs::remove_dir_all(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn a_new_cache_folder_is_private() {
        let store = tempfile::tempdir().unwrap();
        let root = cache_root(store.path()).unwrap();
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn an_open_cache_folder_is_tightened() {
        let store = tempfile::tempdir().unwrap();
        let root = store.path().join("cache");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        cache_root(store.path()).unwrap();
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn a_symlinked_cache_folder_is_refused_and_its_target_untouched() {
        let store = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), store.path().join("cache")).unwrap();
        assert!(matches!(
            cache_root(store.path()),
            Err(CacheError::NotADirectory { .. })
        ));
        assert_eq!(mode(elsewhere.path()), 0o755);
    }

    #[test]
    fn a_cache_folder_of_another_user_is_refused() {
        if crate::privilege::Privilege::of_this_process().is_rootless() {
            return; // only root can hand a folder to someone else
        }
        let store = tempfile::tempdir().unwrap();
        let root = store.path().join("cache");
        std::fs::create_dir(&root).unwrap();
        nix::unistd::chown(&root, Some(nix::unistd::Uid::from_raw(4321)), None).unwrap();
        assert!(matches!(
            cache_root(store.path()),
            Err(CacheError::NotOwned { owner: 4321, .. })
        ));
    }
}
