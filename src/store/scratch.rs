//! Temp folders that tell whether their owner is alive, so that what a killed process left
//! (`/tmp/solum-build-pull-*`, build scratch under `/dev/shm`) can be swept without ever
//! touching the folder of a live one. A folder is `PARENT/<prefix><pid>-<random>`; its
//! owner holds a `flock` on it for as long as it lives (the kernel drops the lock when the
//! process dies, however it dies), and the caller works in its `work` subfolder, so that
//! the caller may lock that one for its own reasons. A sweep removes a folder only when its
//! lock is free *and* the pid in its name is gone: the pid covers the instant between
//! making the folder and locking it, the lock covers a pid reused by another process in
//! another pid namespace. Folders of other users are never touched.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The folder the caller works in, inside the locked one.
const WORK: &str = "work";

/// A temp folder with a live owner (this process); removed on drop.
#[derive(Debug)]
pub struct OwnedTempDir {
    work: PathBuf,
    // Fields drop in declaration order: the tree goes before the lock is released.
    dir: tempfile::TempDir,
    _lock: File,
}

impl OwnedTempDir {
    /// Sweeps dead siblings with the same prefix from `parent`, then makes a new folder.
    pub fn new(parent: &Path, prefix: &str) -> io::Result<OwnedTempDir> {
        sweep(parent, prefix);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}{}-", std::process::id()))
            .tempdir_in(parent)?;
        let lock = File::open(dir.path())?;
        lock.lock()?;
        let work = dir.path().join(WORK);
        std::fs::create_dir(&work)?;
        Ok(OwnedTempDir {
            work,
            dir,
            _lock: lock,
        })
    }

    /// The folder to work in.
    pub fn path(&self) -> &Path {
        &self.work
    }

    /// The locked folder around [`OwnedTempDir::path`].
    pub fn outer(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the folders `PARENT/<prefix>*` of this user whose owner is dead (see the module
/// comment). Returns how many went. Errors are skipped: a sweep is a courtesy.
pub fn sweep(parent: &Path, prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let me = nix::unistd::geteuid().as_raw();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != me || alive(pid) {
            continue;
        }
        let Ok(lock) = File::open(&path) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue;
        }
        if super::cache::remove_tree(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether a process with this pid exists (in our pid namespace). A process of another
/// user answers EPERM, which means it exists.
fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_folder_stays_and_a_dead_one_goes() {
        let parent = tempfile::tempdir().unwrap();
        let live = OwnedTempDir::new(parent.path(), "job-").unwrap();
        std::fs::write(live.path().join("data"), b"mine").unwrap();
        // A dead owner: a pid that does not exist, no lock.
        let dead = parent.path().join("job-2147483646-abc");
        std::fs::create_dir_all(dead.join("work")).unwrap();
        // A pid that is alive but whose folder is unlocked (the instant before the owner
        // locks it) stays too.
        let starting = parent
            .path()
            .join(format!("job-{}-xyz", std::process::id()));
        std::fs::create_dir_all(&starting).unwrap();
        // Another prefix is not ours to judge.
        let other = parent.path().join("other-2147483646-abc");
        std::fs::create_dir_all(&other).unwrap();
        assert_eq!(sweep(parent.path(), "job-"), 1);
        assert!(!dead.exists());
        assert!(starting.exists() && other.exists());
        assert!(live.path().join("data").exists());
        let outer = live.outer().to_path_buf();
        drop(live);
        assert!(!outer.exists());
    }

    #[test]
    fn a_folder_locked_by_a_live_owner_stays_even_when_its_pid_looks_dead() {
        let parent = tempfile::tempdir().unwrap();
        let held = parent.path().join("job-2147483646-abc");
        std::fs::create_dir(&held).unwrap();
        let lock = File::open(&held).unwrap();
        lock.lock().unwrap();
        assert_eq!(sweep(parent.path(), "job-"), 0);
        assert!(held.exists());
    }
}
