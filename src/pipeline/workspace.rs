//! A build's writable root and the sandbox runs on it. The badger's cached rootfs is the
//! read-only lower; what the build writes lands in an overlay upper dir, or — where the
//! kernel refuses overlay in a user namespace (or `SOLUM_BUILD_NO_OVERLAY=1` asks for it) —
//! in a full copy of the lower that is diffed by walking. Both give the same list of
//! changes (see `layer::walk_changes`), so the layer does not depend on the mode. Tests run
//! on a throwaway layer above the build: a second overlay whose upper is discarded, or a
//! second copy. The scratch folder (and everything in it) is removed on drop.

use super::confined;
use super::unpack::{remove_tree, TreeHold};
use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use crate::layer::{self, Change, LayerError};
use crate::manifest::du::WORKDIR;
use crate::privilege::Privilege;
use crate::report::Reporter;
use crate::report::State;
use crate::store::scratch::OwnedTempDir;
use runtime::{BindMount, CancelHandle, Network, Outcome, OutputEvent, RootFs, SandboxSpec};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What went wrong preparing or running a step.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Io(#[from] IoAt),
    #[error("cannot copy the root filesystem for a build without overlay")]
    Copy(#[source] LayerError),
    #[error("cannot diff the build's changes")]
    Diff(#[source] LayerError),
    #[error("the sandbox could not run the {stage} step")]
    Sandbox {
        stage: String,
        #[source]
        source: runtime::SandboxError,
    },
}

impl Classify for WorkspaceError {
    fn class(&self) -> ErrorClass {
        match self {
            WorkspaceError::Copy(inner) | WorkspaceError::Diff(inner) => inner.class(),
            // The sandbox's own errors are failures of the work.
            WorkspaceError::Io(_) | WorkspaceError::Sandbox { .. } => ErrorClass::Failure,
        }
    }
}

enum Mode {
    Overlay { upper: PathBuf, work: PathBuf },
    Copy { root: PathBuf },
}

/// The writable root of one build.
pub struct Workspace {
    scratch: PathBuf,
    lowers: Vec<PathBuf>,
    mode: Mode,
    /// How the copy fallback treats owners.
    privilege: Privilege,
    /// Holds the scratch folder's lock while the build lives, so that sweeps of stale
    /// scratch (killed builds) leave it alone; dropped after `scratch` is removed.
    _owner: OwnedTempDir,
    /// The holds on the cached trees below, kept as long as the workspace.
    holds: Vec<TreeHold>,
}

/// Where a build's writable layer lives, in order: `$SOLUM_BUILD_SCRATCH`; else a folder
/// of this user under `/dev/shm` when that is a tmpfs with at least
/// [`TMPFS_SCRATCH_MIN_FREE`] available and the kernel (6.6+) lets overlay keep its
/// `user.*` xattrs there; else `STORE/cache/work`. File creation on a tmpfs costs a
/// fraction of a disk's (a build writing 10,000 small files: ~0.5 s against 2.5-3.5 s on
/// this project's CI disk), and only the finished layer is written to the store.
pub fn scratch_parent(store: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("SOLUM_BUILD_SCRATCH").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if tmpfs_with_room(shm) && kernel_at_least(6, 6) {
        // Another user may hold the name (or plant a symlink there): then the store it is.
        if let Ok(dir) = runtime::private::user_dir_in(shm) {
            return dir;
        }
    }
    store.join("cache").join("work")
}

/// The name prefix of a build's scratch folder under [`scratch_parent`].
pub const SCRATCH_PREFIX: &str = ".build-";

/// Free space a tmpfs must have to hold build scratch by default.
pub const TMPFS_SCRATCH_MIN_FREE: u64 = 4 << 30;

fn tmpfs_with_room(path: &Path) -> bool {
    match nix::sys::statfs::statfs(path) {
        Ok(fs) => {
            fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC
                && u64::try_from(fs.block_size()).unwrap_or(0) * fs.blocks_available()
                    >= TMPFS_SCRATCH_MIN_FREE
        }
        Err(_) => false,
    }
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let found_major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let found_minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (found_major, found_minor) >= (major, minor)
}

/// Whether this process's sandboxes run at the `chroot` level (asked for, or what `auto`
/// chose): no user namespace, so no overlay to mount.
pub fn at_chroot_level() -> bool {
    let chroot = Some(runtime::Isolation::Chroot);
    [
        Some(runtime::Isolation::requested()),
        runtime::Isolation::auto_resolved(),
    ]
    .contains(&chroot)
}

/// Whether builds use overlay here: the kernel must allow it in a user namespace (so not
/// at the `chroot` level), and `SOLUM_BUILD_NO_OVERLAY=1` turns it off (to use, or test, the copy fallback).
pub fn overlay_available() -> bool {
    if std::env::var_os("SOLUM_BUILD_NO_OVERLAY").is_some_and(|v| v == "1") {
        return false;
    }
    if at_chroot_level() {
        return false;
    }
    runtime::host_info().overlay_in_user_namespace
}

impl Workspace {
    /// A workspace in a new scratch folder under `parent` (same filesystem as the rootfs
    /// cache, as overlay needs for upper and work), on `lowers` (top-most first).
    pub fn new(
        parent: &Path,
        lowers: Vec<PathBuf>,
        overlay: bool,
        privilege: Privilege,
    ) -> Result<Workspace, WorkspaceError> {
        std::fs::create_dir_all(parent).map_err(IoAt::at(parent, "create"))?;
        // Scratch of builds that were killed is swept here (and by `gc`).
        let owner = OwnedTempDir::new(parent, SCRATCH_PREFIX)
            .map_err(IoAt::at(parent, "create a scratch folder in"))?;
        let scratch = owner.path().to_path_buf();
        let mut workspace = Workspace {
            scratch: scratch.clone(),
            lowers,
            mode: Mode::Copy {
                root: PathBuf::new(),
            },
            privilege,
            _owner: owner,
            holds: Vec::new(),
        };
        workspace.mode = if overlay {
            let upper = scratch.join("upper");
            let work = scratch.join("work");
            for dir in [&upper, &work] {
                std::fs::create_dir(dir).map_err(IoAt::at(dir, "create"))?;
            }
            Mode::Overlay { upper, work }
        } else {
            // Without overlay a single flattened lower is copied whole.
            let root = scratch.join("root");
            let lower = workspace.lowers.first().cloned().unwrap_or_default();
            layer::copy_tree(&lower, &root, privilege).map_err(WorkspaceError::Copy)?;
            Mode::Copy { root }
        };
        Ok(workspace)
    }

    /// Keeps `holds` (on the cached trees this workspace stands on) while it lives.
    pub fn keep_held(&mut self, holds: Vec<TreeHold>) {
        self.holds.extend(holds);
    }

    /// Where files put into the image before the build (the source at `/app`, a badger's
    /// build script) are written: the upper dir or the copy.
    pub fn writable_root(&self) -> &Path {
        match &self.mode {
            Mode::Overlay { upper, .. } => upper,
            Mode::Copy { root } => root,
        }
    }

    /// The build's private scratch folder: removed with the workspace, and swept (with
    /// what is in it) when the build was killed.
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch
    }

    /// The regular file at `inner` (relative) of the root the build starts from, read
    /// through no symlink (see [`super::badger_files::read_badger_file`]): the top-most tree
    /// that has an entry there decides. `None` when it is missing, or is anything but a
    /// regular file (a whiteout, a symlink), or cannot be read.
    pub fn read_file(&self, inner: &str) -> Option<Vec<u8>> {
        let trees = match &self.mode {
            Mode::Overlay { upper, .. } => std::iter::once(upper).chain(self.lowers.iter()),
            Mode::Copy { root } => std::iter::once(root).chain([].iter()),
        };
        for tree in trees {
            match super::badger_files::read_badger_file(tree, inner) {
                Ok(None) => {}
                Ok(Some(bytes)) => return Some(bytes),
                Err(_) => return None,
            }
        }
        None
    }

    /// Moves `source` to `/app` of the writable root. The copy fallback holds the lower's
    /// `/app` already: without `keep_below` the source replaces it (the badger's own `/app`
    /// stays out); with it (a dependency layer wrote there) the source goes over it as
    /// overlay shows an upper folder over a lower one: the source's entries win, folders
    /// both hold are merged. No step runs meanwhile, so the tree holds still; what the
    /// lower holds is hostile, and no symlink in it is followed.
    pub fn place_app_source(&self, source: &Path, keep_below: bool) -> Result<(), WorkspaceError> {
        let target = self.writable_root().join(WORKDIR.trim_start_matches('/'));
        let below = self.scratch.join("app-below");
        let mut merge = false;
        if let Ok(meta) = std::fs::symlink_metadata(&target) {
            if keep_below && meta.is_dir() {
                std::fs::rename(&target, &below).map_err(IoAt::at(&target, "move aside"))?;
                merge = true;
            } else {
                remove_tree(&target).map_err(IoAt::at(&target, "clear"))?;
            }
        }
        match std::fs::rename(source, &target) {
            Ok(()) => {}
            // The scratch folder may be on another filesystem (a tmpfs): copy instead.
            Err(error) if error.raw_os_error() == Some(libc::EXDEV) => {
                layer::copy_tree(source, &target, self.privilege).map_err(|e| {
                    IoAt::new(
                        target.clone(),
                        "copy the source to",
                        std::io::Error::other(e),
                    )
                })?;
            }
            Err(error) => return Err(IoAt::at(&target, "move the source to")(error).into()),
        }
        if merge {
            merge_under(&below, &target)?;
            remove_tree(&below).map_err(IoAt::at(&below, "remove"))?;
        }
        Ok(())
    }

    pub fn is_overlay(&self) -> bool {
        matches!(self.mode, Mode::Overlay { .. })
    }

    /// The root filesystem of the build steps.
    pub fn build_root(&self) -> RootFs {
        match &self.mode {
            Mode::Overlay { upper, work } => RootFs::Overlay {
                lowers: self.lowers.clone(),
                upper: upper.clone(),
                work: work.clone(),
            },
            Mode::Copy { root } => RootFs::Dir(root.clone()),
        }
    }

    /// A root filesystem for tests: the build's result with a layer on top that is thrown
    /// away (a fresh upper above the build's upper, or a second copy).
    pub fn throwaway_root(&self) -> Result<RootFs, WorkspaceError> {
        let dir = self.scratch.join("test");
        std::fs::create_dir(&dir).map_err(IoAt::at(&dir, "create"))?;
        match &self.mode {
            Mode::Overlay { upper, .. } => {
                let test_upper = dir.join("upper");
                let test_work = dir.join("work");
                for d in [&test_upper, &test_work] {
                    std::fs::create_dir(d).map_err(IoAt::at(d, "create"))?;
                }
                let mut lowers = vec![upper.clone()];
                lowers.extend(self.lowers.iter().cloned());
                Ok(RootFs::Overlay {
                    lowers,
                    upper: test_upper,
                    work: test_work,
                })
            }
            Mode::Copy { root } => {
                let copy = dir.join("root");
                layer::copy_tree(root, &copy, self.privilege).map_err(WorkspaceError::Copy)?;
                Ok(RootFs::Dir(copy))
            }
        }
    }

    /// What the build changed, minus the mount points the sandbox had to create.
    pub fn changes(&self, created_mount_points: &[PathBuf]) -> Result<Vec<Change>, WorkspaceError> {
        let mut changes = match &self.mode {
            Mode::Overlay { upper, .. } => layer::overlay_changes(upper),
            Mode::Copy { root } => {
                undo_mount_points(&self.lowers[0], root, created_mount_points);
                layer::walk_changes(&self.lowers[0], root)
            }
        }
        .map_err(WorkspaceError::Diff)?;
        let excluded: Vec<PathBuf> = created_mount_points
            .iter()
            .map(|p| p.strip_prefix("/").unwrap_or(p).to_path_buf())
            .collect();
        changes.retain(|change| {
            let path = match change {
                Change::Add(p) | Change::Whiteout(p) | Change::Opaque(p) => p,
            };
            let path = path.strip_prefix("/").unwrap_or(path.as_path());
            !excluded.iter().any(|e| path == e.as_path())
        });
        Ok(changes)
    }
}

/// In the copy, the sandbox created the mount points the image lacked (`/solum/cache`,
/// say). Overlay keeps those in a tmpfs layer, so its upper dir never sees them; to give the
/// same diff, they are removed again here, and a parent whose children are then the same
/// as in the lower gets the lower's mtime back (the mkdir changed it, the build did not).
/// The build ran in this tree and may have replaced any of these paths by a symlink to a
/// host folder: every step goes through [`confined`], which never follows one.
fn undo_mount_points(lower: &Path, root: &Path, created: &[PathBuf]) {
    let mut created: Vec<&PathBuf> = created.iter().collect();
    // Deepest first, so a parent is empty when its turn comes.
    created.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for inner in created {
        if !confined::remove(root, inner).unwrap_or(false) {
            continue;
        }
        let Some(parent) = inner.parent() else {
            continue;
        };
        let (Some(lower_dir), Some(copy_dir)) = (
            confined::open_dir(lower, parent),
            confined::open_dir(root, parent),
        ) else {
            continue;
        };
        let lower_names = confined::names(&lower_dir);
        if lower_names.is_some() && lower_names == confined::names(&copy_dir) {
            if let Ok(st) = nix::sys::stat::fstat(&lower_dir) {
                let time = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
                let _ = nix::sys::stat::futimens(
                    &copy_dir,
                    &time(st.st_atime, st.st_atime_nsec),
                    &time(st.st_mtime, st.st_mtime_nsec),
                );
            }
        }
    }
}

/// Moves into `upper` (a real folder) each entry of `lower` it lacks, merging the folders
/// both hold; `upper`'s entries win. `upper` keeps its times: the merge is no change of
/// the build's.
fn merge_under(lower: &Path, upper: &Path) -> Result<(), WorkspaceError> {
    let times = std::fs::symlink_metadata(upper).map_err(IoAt::at(upper, "stat"))?;
    let entries = std::fs::read_dir(lower).map_err(IoAt::at(lower, "list"))?;
    for entry in entries {
        let entry = entry.map_err(IoAt::at(lower, "list"))?;
        let (from, to) = (entry.path(), upper.join(entry.file_name()));
        match std::fs::symlink_metadata(&to) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::fs::rename(&from, &to).map_err(IoAt::at(&to, "move below the source"))?;
            }
            Ok(meta) if meta.is_dir() => {
                let from_meta =
                    std::fs::symlink_metadata(&from).map_err(IoAt::at(&from, "stat"))?;
                if from_meta.is_dir() {
                    merge_under(&from, &to)?;
                }
            }
            Ok(_) => {}
            Err(error) => return Err(IoAt::at(&to, "stat")(error).into()),
        }
    }
    copy_times(upper, &times)
        .map_err(|e| IoAt::new(upper.to_path_buf(), "set the times of", e.into()))?;
    Ok(())
}

/// Gives `path` (not followed if a symlink) the access and modification times of `from`.
pub(super) fn copy_times(path: &Path, from: &std::fs::Metadata) -> nix::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let time = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time(from.atime(), from.atime_nsec()),
        &time(from.mtime(), from.mtime_nsec()),
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = remove_tree(&self.scratch);
    }
}

/// One command to run in the sandbox for a build stage.
pub struct Step {
    /// The state the step belongs to, for its output lines (`BUILDING`, `UNIT_TESTING`).
    pub stage: State,
    pub rootfs: RootFs,
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub mounts: Vec<BindMount>,
    /// `(uid, gid)` inside: builds run as root, the start check as the DU's user.
    pub user: (u32, u32),
    pub network_host: bool,
    pub timeout: Option<Duration>,
}

/// How a step ended, with the last lines of its output for the error message.
pub struct StepResult {
    pub outcome: Outcome,
    pub tail: Vec<String>,
}

/// Lines of output kept for the message of a failed step.
const TAIL_LINES: usize = 20;

/// Runs one step, streaming its output lines to the reporter.
pub fn run_step(
    step: Step,
    cancel: &CancelHandle,
    reporter: &dyn Reporter,
) -> Result<StepResult, WorkspaceError> {
    let mut spec = SandboxSpec::new(step.rootfs, step.command);
    spec.env = step.env;
    spec.cwd = step.cwd;
    (spec.uid, spec.gid) = step.user;
    spec.mounts = step.mounts;
    spec.network = if step.network_host {
        Network::Host
    } else {
        Network::None
    };
    spec.limits.timeout = step.timeout;
    let exe = runtime::self_exe();
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let stage = step.stage;
    let outcome = runtime::run_with_cancel(&spec, &exe, cancel, |event| {
        if let OutputEvent::Line { stream, line, .. } = event {
            reporter.output_line(stage, &line, matches!(stream, runtime::Stream::Stderr));
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    })
    .map_err(|source| WorkspaceError::Sandbox {
        stage: stage.to_string(),
        source,
    })?;
    // In the step's log, after its output: what the host refused and the sandbox did
    // without (a container's seccomp profile, its masked /proc), or how the level differs.
    for degradation in &outcome.degradations {
        reporter.output_line(stage, &format!("sandbox: {degradation}"), true);
    }
    Ok(StepResult {
        outcome,
        tail: tail.into_iter().collect(),
    })
}

/// The subordinate ranges a range-mapped sandbox used (`newuidmap`), so that owners the
/// build set map back to image ids in the layer; `None` for other maps.
pub fn subordinate_ids(kind: &runtime::IdMapKind) -> Option<layer::SubordinateIds> {
    if *kind != runtime::IdMapKind::Helper {
        return None;
    }
    let info = runtime::host_info();
    let (uids, gids) = (info.subuid?, info.subgid?);
    Some(layer::SubordinateIds {
        uid_start: uids.start,
        uid_count: uids.count,
        gid_start: gids.start,
        gid_count: gids.count,
    })
}
