//! Scratch folders of this user in the shared temp dir (`$TMPDIR`, else `/tmp`): the
//! sandbox's staging directory and the overlay probe's. Names there are visible to every
//! user, so none may be predictable: another user who pre-creates `solum-sandbox.<pid>`
//! would otherwise break the sandbox or, for the probe, silently force the copy fallback.
//!
//! Each folder is made by `mkdtemp` (a random suffix, mode 0700) inside
//! `TMP/solum-build-<uid>`, a directory of this user only: created 0700, and accepted when
//! it exists only if it is a real directory (not a symlink) owned by this user, then kept at
//! 0700. Where another user holds that name, the folder is made by `mkdtemp` in the temp dir
//! itself, which is as safe, only less tidy. Names carry the owner's pid, so folders left by
//! a killed process are swept by the next one ([`sweep`]). The sandbox's staging folders go
//! to `/dev/shm` instead when `TMPDIR` is not set and that is a tmpfs ([`fast_temp_dir`]).
//! This module creates and removes only empty folders of this user; it mounts nothing.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// This user's private folder in the temp dir, `TMP/solum-build-<uid>`, made or checked.
pub fn user_dir() -> io::Result<PathBuf> {
    user_dir_in(&std::env::temp_dir())
}

/// This user's private folder `PARENT/solum-build-<uid>` in a shared, sticky `parent`
/// (`/tmp`, `/dev/shm`): made 0700, or accepted only as a real directory of this user.
pub fn user_dir_in(parent: &Path) -> io::Result<PathBuf> {
    let me = nix::unistd::geteuid().as_raw();
    let dir = parent.join(format!("solum-build-{me}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory of uid {me} (another user made it?)",
                dir.display()
            ),
        ));
    }
    if meta.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// The shared temp dir for folders made and removed on every sandbox start: `$TMPDIR` when
/// it is set (the user chose it), else `/dev/shm` when that is a tmpfs, else the temp dir.
/// On a disk each such folder costs an inode allocation and, on removal, a freed block,
/// which a disk mounted with `discard` discards synchronously: milliseconds on a busy
/// machine. On a tmpfs it costs neither.
pub fn fast_temp_dir() -> PathBuf {
    if std::env::var_os("TMPDIR").is_some_and(|dir| !dir.is_empty()) {
        return std::env::temp_dir();
    }
    let shm = Path::new("/dev/shm");
    let is_tmpfs = nix::sys::statfs::statfs(shm)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    if is_tmpfs {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A new folder `PREFIX<pid>.<random>` (mode 0700) in [`user_dir`], or in the temp dir when
/// that is not usable.
pub fn make_dir(prefix: &str) -> io::Result<PathBuf> {
    make_dir_in(&std::env::temp_dir(), prefix)
}

/// [`make_dir`] in the shared folder `shared` (the temp dir, [`fast_temp_dir`]): in this
/// user's private folder there, or in `shared` itself when that is not usable.
pub fn make_dir_in(shared: &Path, prefix: &str) -> io::Result<PathBuf> {
    let parent = user_dir_in(shared).unwrap_or_else(|_| shared.to_path_buf());
    let template = parent.join(format!("{prefix}{}.XXXXXX", std::process::id()));
    Ok(nix::unistd::mkdtemp(&template)?)
}

/// The pid in a folder name made by [`make_dir`] with `prefix`.
fn owner_pid(name: &str, prefix: &str) -> Option<i32> {
    let rest = name.strip_prefix(prefix)?;
    rest.split('.').next()?.parse().ok()
}

/// Removes the folders (and what is inside them, after opening up modes such as overlay's
/// mode-000 `work`) that [`make_dir`] or [`make_dir_in`] made with `prefix` for processes
/// that are gone, in the temp dir and in [`fast_temp_dir`].
pub fn sweep(prefix: &str) {
    let me = nix::unistd::geteuid().as_raw();
    let mut shared = vec![std::env::temp_dir()];
    let fast = fast_temp_dir();
    if !shared.contains(&fast) {
        shared.push(fast);
    }
    let mut parents = Vec::new();
    for dir in shared {
        if let Ok(private) = user_dir_in(&dir) {
            parents.push(private);
        }
        parents.push(dir);
    }
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| owner_pid(n, prefix)) else {
                continue;
            };
            let path = entry.path();
            let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == me);
            if ours && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = remove(&path);
            }
        }
    }
}

/// Removes `dir` and everything in it, giving every directory of ours mode 0700 first (a
/// rootless user cannot list overlay's mode-000 `work` folder otherwise). Symlinks are
/// removed, never followed.
pub fn remove(dir: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return std::fs::remove_file(dir);
    }
    if meta.mode() & 0o700 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    for entry in std::fs::read_dir(dir)? {
        remove(&entry?.path())?;
    }
    std::fs::remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_random_private_and_carry_the_pid() {
        let a = make_dir("solum-unit-test.").unwrap();
        let b = make_dir("solum-unit-test.").unwrap();
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            owner_pid(name, "solum-unit-test."),
            Some(std::process::id() as i32)
        );
        assert_eq!(
            std::fs::metadata(&a).unwrap().mode() & 0o777,
            0o700,
            "{name}"
        );
        // A mode-000 folder inside (overlay's `work`) does not stop the removal.
        std::fs::create_dir(a.join("work")).unwrap();
        std::fs::set_permissions(a.join("work"), std::fs::Permissions::from_mode(0o000)).unwrap();
        remove(&a).unwrap();
        remove(&b).unwrap();
        assert!(!a.exists() && !b.exists());
    }
}
