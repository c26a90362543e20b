//! Snapshots of a live root filesystem and the difference between two of them, for builds
//! that run in place (`--isolation none`): the container's own root is the badger, the
//! build writes straight into it, and its one new layer is what changed between a snapshot
//! taken before the build and one taken after.
//!
//! A snapshot records metadata only (kind, inode, device, mode, owners, size, mtime and
//! ctime to the nanosecond, link count, device number): any write to a file moves its
//! ctime, so contents are never read here; the layer writer reads the changed files alone.
//! The walk goes through directory descriptors (`openat` with `O_NOFOLLOW`, `fstatat`
//! without following), so no symlink is ever followed, and it is bounded in entries and
//! depth. It leaves out what is not the image: the paths it is told to (the kernel's
//! filesystems, the store, the tool), every mount point below the root (read from
//! `/proc/self/mountinfo`, and any directory on another device) except those it is told
//! to walk (the source folder, which may be a tmpfs the job mounted).
//!
//! The difference follows overlay's copy-up rules, so that the layer is the one a `userns`
//! build's upper directory gives (see `layer::walk_changes`, which follows the same rules
//! for the copy fallback): a changed entry brings its parent directories, a deleted one is
//! a whiteout of its top-most path, a directory made where a non-directory was is opaque,
//! and a directory that lost every child it had and gained new ones is opaque.

use crate::layer::{sort_changes, Change};
use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Entries a snapshot holds unless `SOLUM_BUILD_SNAPSHOT_MAX_ENTRIES` says otherwise.
pub const DEFAULT_MAX_ENTRIES: usize = 2_000_000;
/// Directory depth below the root a snapshot descends to.
pub const MAX_DEPTH: usize = 256;

/// What went wrong taking a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot open the root {root} to snapshot it")]
    Root {
        root: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot {action} /{path} while taking a snapshot of the root")]
    Entry {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("the root holds more than {limit} entries (at /{path}); raise SOLUM_BUILD_SNAPSHOT_MAX_ENTRIES or exclude folders")]
    TooManyEntries { limit: usize, path: PathBuf },
    #[error("/{path} is nested deeper than {limit} folders")]
    TooDeep { limit: usize, path: PathBuf },
}

impl crate::error_class::Classify for SnapshotError {
    fn class(&self) -> crate::error_class::ErrorClass {
        // The container's filesystem, or what the build made of it: the work failed.
        crate::error_class::ErrorClass::Failure
    }
}

/// What a snapshot leaves out and how far it goes.
#[derive(Clone, Debug)]
pub struct SnapshotRules {
    /// Paths relative to the root left out with everything below them.
    pub excluded: HashSet<PathBuf>,
    /// Mount points (relative) walked all the same: the source folder.
    pub walked_mounts: HashSet<PathBuf>,
    pub max_entries: usize,
    pub max_depth: usize,
}

impl SnapshotRules {
    /// Rules for `root`: `excluded` (absolute paths; those outside `root` are ignored), every
    /// mount point below `root` but `walked_mounts`, and the bounds from the environment.
    pub fn for_root(root: &Path, excluded: &[PathBuf], walked_mounts: &[PathBuf]) -> Self {
        let inside = |paths: &[PathBuf]| -> HashSet<PathBuf> {
            paths.iter().filter_map(|p| relative_to(root, p)).collect()
        };
        let walked = inside(walked_mounts);
        let mut excluded = inside(excluded);
        let mounts = mount_points();
        excluded.extend(
            inside(&mounts)
                .into_iter()
                .filter(|mount| !walked.contains(mount)),
        );
        let max_entries = std::env::var("SOLUM_BUILD_SNAPSHOT_MAX_ENTRIES")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_MAX_ENTRIES);
        SnapshotRules {
            excluded,
            walked_mounts: walked,
            max_entries,
            max_depth: MAX_DEPTH,
        }
    }
}

/// `path` relative to `root` when it is strictly below it (lexically, `..` refused).
fn relative_to(root: &Path, path: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix(root).ok()?;
    let clean: PathBuf = rest
        .components()
        .map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!clean.as_os_str().is_empty()).then_some(clean)
}

/// The mount points of this process's mount namespace (`/proc/self/mountinfo`'s fifth
/// field, octal escapes undone); none when it cannot be read.
pub fn mount_points() -> Vec<PathBuf> {
    let text = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
    text.split(|b| *b == b'\n')
        .filter_map(|line| line.split(|b| *b == b' ').nth(4))
        .map(|field| PathBuf::from(std::ffi::OsStr::from_bytes(&unescape_octal(field))))
        .collect()
}

/// `\040`-style escapes (space, tab, newline, backslash) as the kernel writes them.
fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let digits = field.get(i + 1..i + 4);
        match digits {
            Some(d) if field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) => {
                let value = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            _ => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// What a snapshot keeps of one entry: enough to tell that it changed without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    /// `S_IFMT` bits.
    kind: u32,
    ino: u64,
    dev: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    nlink: u64,
    rdev: u64,
}

impl Meta {
    fn of(stat: &FileStat) -> Meta {
        Meta {
            kind: stat.st_mode & SFlag::S_IFMT.bits(),
            ino: stat.st_ino,
            dev: stat.st_dev,
            mode: stat.st_mode & 0o7777,
            uid: stat.st_uid,
            gid: stat.st_gid,
            size: stat.st_size,
            mtime: (stat.st_mtime, stat.st_mtime_nsec),
            ctime: (stat.st_ctime, stat.st_ctime_nsec),
            nlink: stat.st_nlink,
            rdev: stat.st_rdev,
        }
    }

    fn is_dir(&self) -> bool {
        self.kind == SFlag::S_IFDIR.bits()
    }
}

/// The metadata of every entry below a root (the root itself is no entry of a layer), in
/// path order: a folder's entries follow it, names sorted by bytes (`Path`'s order).
#[derive(Debug, Default)]
pub struct Snapshot {
    entries: Vec<(PathBuf, Meta)>,
}

impl Snapshot {
    /// How many entries the snapshot holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn get(&self, path: &Path) -> Option<&Meta> {
        self.entries
            .binary_search_by(|(p, _)| p.as_path().cmp(path))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The names directly in the folder `dir` (which must be an entry): the entries of
    /// its subtree, which follows it, whose parent it is.
    fn children(&self, dir: &Path) -> Vec<&std::ffi::OsStr> {
        let Ok(at) = self.entries.binary_search_by(|(p, _)| p.as_path().cmp(dir)) else {
            return Vec::new();
        };
        self.entries[at + 1..]
            .iter()
            .take_while(|(p, _)| p.starts_with(dir))
            .filter(|(p, _)| p.parent() == Some(dir))
            .filter_map(|(p, _)| p.file_name())
            .collect()
    }
}

/// Threads a snapshot walks the root's folders with, at most.
const WALKERS: usize = 4;

/// A snapshot of `root` by `rules`. The root's own entries are read first; the trees of
/// its folders are then walked by a few threads at once (a root filesystem is a handful
/// of large top-level trees), and put back in path order.
pub fn take(root: &Path, rules: &SnapshotRules) -> Result<Snapshot, SnapshotError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let root_error = |source| SnapshotError::Root {
        root: root.to_path_buf(),
        source,
    };
    let root_fd = nix::fcntl::open(root, flags, Mode::empty()).map_err(root_error)?;
    let root_dev = nix::sys::stat::fstat(&root_fd).map_err(root_error)?.st_dev;
    // Only folders that hold an excluded path ask for their children.
    let excluded_in = rules
        .excluded
        .iter()
        .map(|p| p.parent().unwrap_or(Path::new("")).to_path_buf())
        .collect();
    let count = AtomicUsize::new(0);
    let walk = |deferring: bool| Walk {
        rules,
        excluded_in: &excluded_in,
        count: &count,
        entries: Vec::new(),
        deferred: deferring.then(Vec::new),
    };
    let mut top = walk(true);
    let dir = Dir::from_fd(root_fd.try_clone().map_err(|e| {
        root_error(nix::errno::Errno::from_raw(
            e.raw_os_error().unwrap_or(libc::EIO),
        ))
    })?)
    .map_err(root_error)?;
    top.dir(dir, PathBuf::new(), root_dev, 0)?;
    let jobs = top.deferred.take().unwrap_or_default();
    // Each job's entries, by job; the first error wins.
    let results: Vec<Mutex<Option<Entries>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<SnapshotError>> = Mutex::new(None);
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(WALKERS);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(jobs.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(index) else { break };
                let mut worker = walk(false);
                let done = match Dir::openat(&root_fd, job.name.as_os_str(), flags, Mode::empty()) {
                    Ok(sub) => worker.dir(sub, job.rel.clone(), job.dev, 1),
                    Err(nix::errno::Errno::EACCES | nix::errno::Errno::ENOENT) => Ok(()),
                    Err(source) => Err(SnapshotError::Entry {
                        action: "open",
                        path: job.rel.clone(),
                        source,
                    }),
                };
                match done {
                    Ok(()) => {
                        *results[index]
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = Some(worker.entries);
                    }
                    Err(error) => {
                        failed
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_or_insert(error);
                        break;
                    }
                }
            });
        }
    });
    if let Some(error) = failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(error);
    }
    // The root's entries with each folder's tree right after it.
    let mut entries = Vec::with_capacity(count.load(Ordering::Relaxed));
    let mut subtrees = results
        .into_iter()
        .map(|r| r.into_inner().unwrap_or_else(PoisonError::into_inner));
    let mut job_at = jobs.iter().map(|job| job.after).peekable();
    for (index, entry) in top.entries.into_iter().enumerate() {
        entries.push(entry);
        if job_at.peek() == Some(&index) {
            job_at.next();
            entries.extend(subtrees.next().flatten().unwrap_or_default());
        }
    }
    Ok(Snapshot { entries })
}

/// Entries of a snapshot, in path order.
type Entries = Vec<(PathBuf, Meta)>;

/// A folder of the root whose tree is walked by a thread of [`take`].
struct Job {
    /// The index of the folder's own entry among the root's.
    after: usize,
    name: OsString,
    rel: PathBuf,
    dev: u64,
}

struct Walk<'a> {
    rules: &'a SnapshotRules,
    /// The folders that hold an excluded path.
    excluded_in: &'a HashSet<PathBuf>,
    /// Entries recorded by every walker of the snapshot, for the bound.
    count: &'a AtomicUsize,
    entries: Vec<(PathBuf, Meta)>,
    /// The root's walker leaves its folders' trees to the threads: here.
    deferred: Option<Vec<Job>>,
}

impl Walk<'_> {
    /// Records the entries of the open folder `rel` (on device `dev`), each folder followed
    /// by its own entries.
    fn dir(
        &mut self,
        mut dir: Dir,
        rel: PathBuf,
        dev: u64,
        depth: usize,
    ) -> Result<(), SnapshotError> {
        if depth > self.rules.max_depth {
            return Err(SnapshotError::TooDeep {
                limit: self.rules.max_depth,
                path: rel,
            });
        }
        let error = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Entry {
                action,
                path,
                source,
            }
        };
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(error("list", &rel))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from(std::ffi::OsStr::from_bytes(name)));
            }
            // A folder of millions of names is refused while it is listed, before its
            // listing alone holds more than the snapshot may.
            if self.count.load(Ordering::Relaxed) + names.len() > self.rules.max_entries {
                return Err(SnapshotError::TooManyEntries {
                    limit: self.rules.max_entries,
                    path: rel,
                });
            }
        }
        names.sort();
        let holds_excluded = self.excluded_in.contains(&rel);
        for name in names {
            let child = rel.join(&name);
            if holds_excluded && self.rules.excluded.contains(&child) {
                continue;
            }
            let stat = match nix::sys::stat::fstatat(
                dir.as_fd(),
                name.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(stat) => stat,
                // Gone between the listing and the stat: a process of the build, still
                // ending, removed it.
                Err(nix::errno::Errno::ENOENT) => continue,
                Err(source) => return Err(error("stat", &child)(source)),
            };
            let meta = Meta::of(&stat);
            // Another filesystem mounted here (a mount point mountinfo did not name, or
            // that this process cannot see through) is not the image's.
            if meta.is_dir() && meta.dev != dev && !self.rules.walked_mounts.contains(&child) {
                continue;
            }
            if self.count.fetch_add(1, Ordering::Relaxed) >= self.rules.max_entries {
                return Err(SnapshotError::TooManyEntries {
                    limit: self.rules.max_entries,
                    path: child,
                });
            }
            self.entries.push((child.clone(), meta));
            if !meta.is_dir() {
                continue;
            }
            if let Some(deferred) = &mut self.deferred {
                deferred.push(Job {
                    after: self.entries.len() - 1,
                    name,
                    rel: child,
                    dev: meta.dev,
                });
                continue;
            }
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            match Dir::openat(dir.as_fd(), name.as_os_str(), flags, Mode::empty()) {
                Ok(sub) => self.dir(sub, child, meta.dev, depth + 1)?,
                // A folder this user may not list is one the build (the same user) could
                // not have written into either: its own entry is all there is of it.
                Err(nix::errno::Errno::EACCES | nix::errno::Errno::ENOENT) => {}
                Err(source) => return Err(error("open", &child)(source)),
            }
        }
        Ok(())
    }
}

/// The changes that turn the root of `before` into the root of `after`, sorted as
/// [`sort_changes`] sorts (see the module documentation for the rules). Both are in path
/// order, so one merge pass pairs their entries.
pub fn changes(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let mut adds = BTreeSet::new();
    let mut opaques = BTreeSet::new();
    let mut gone = Vec::new();
    let (mut old, mut new) = (
        before.entries.iter().peekable(),
        after.entries.iter().peekable(),
    );
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((was_path, _)), Some((now_path, _))) => was_path.as_path().cmp(now_path),
        };
        match order {
            std::cmp::Ordering::Less => gone.extend(old.next().map(|(p, _)| p)),
            std::cmp::Ordering::Greater => {
                adds.extend(new.next().map(|(p, _)| p.clone()));
            }
            std::cmp::Ordering::Equal => {
                let ((path, was), (_, now)) = (old.next().unwrap(), new.next().unwrap());
                if now == was {
                    continue;
                }
                adds.insert(path.clone());
                if now.is_dir() && (!was.is_dir() || emptied_and_refilled(before, after, path)) {
                    opaques.insert(path.clone());
                }
            }
        }
    }
    let mut whiteouts = BTreeSet::new();
    for path in gone {
        // Only the top-most deleted path: below a deleted, replaced or opaque folder the
        // folder's own change says it.
        let parent = path.parent().unwrap_or(Path::new(""));
        let parent_kept = parent.as_os_str().is_empty()
            || (after.get(parent).is_some_and(Meta::is_dir)
                && before.get(parent).is_some_and(Meta::is_dir)
                && !opaques.contains(parent));
        if parent_kept {
            whiteouts.insert(path.clone());
        }
    }
    // Overlay copies up the parents of whatever it writes: its upper dir holds them all.
    let mut parents = BTreeSet::new();
    for path in adds.iter().chain(&whiteouts).chain(&opaques) {
        for parent in path.ancestors().skip(1) {
            if parent.as_os_str().is_empty() || !parents.insert(parent.to_path_buf()) {
                break;
            }
        }
    }
    adds.extend(parents);
    let mut list: Vec<Change> = adds
        .into_iter()
        .map(Change::Add)
        .chain(whiteouts.into_iter().map(Change::Whiteout))
        .chain(opaques.into_iter().map(Change::Opaque))
        .collect();
    sort_changes(&mut list);
    list
}

/// A folder whose every earlier child is gone and that has new ones: `rm -rf d && mkdir d`
/// refilled, which overlay records as an opaque folder (as `layer::walk_changes` does).
fn emptied_and_refilled(before: &Snapshot, after: &Snapshot, path: &Path) -> bool {
    let (was, now) = (before.children(path), after.children(path));
    let now_set: HashSet<&std::ffi::OsStr> = now.iter().copied().collect();
    !was.is_empty() && !now.is_empty() && !was.iter().any(|name| now_set.contains(name))
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
