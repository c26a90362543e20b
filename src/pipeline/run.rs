//! `solum-build run`: an image's root filesystem in the sandbox. The image is unpacked once
//! into the store's rootfs cache (a tree per layer, see `stacked`) and used as the read-only lowers of an overlay whose upper and work
//! folders are thrown away afterwards, so runs never change the cache. Where the
//! kernel refuses overlay in a user namespace, the cached tree is copied instead. The
//! image config gives the defaults (Env, WorkingDir, Entrypoint + Cmd); the caller may
//! replace the command and add environment. The command runs as the config's `User`.

use super::stacked::stacked_lowers;
use super::unpack::{held_rootfs, remove_tree, rootfs_cache_dir, LayerStack, UnpackError};
use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use crate::privilege::Privilege;
use crate::report::Reporter;
use crate::store::{Layout, ResolvedImage};
use runtime::{Network, Outcome, OutputEvent, RootFs, SandboxError, SandboxSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What went wrong starting or running an image.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("the image has no command: give one after --")]
    NoCommand,
    /// Preparing the run's scratch folder failed.
    #[error(transparent)]
    Scratch(#[from] IoAt),
    #[error("cannot copy the root filesystem {from} (overlay is not available here)")]
    Copy {
        from: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

impl Classify for RunError {
    fn class(&self) -> ErrorClass {
        match self {
            RunError::Unpack(inner) => inner.class(),
            RunError::NoCommand => ErrorClass::Input,
            // The sandbox's own errors are failures of the work.
            RunError::Scratch(_) | RunError::Copy { .. } | RunError::Sandbox(_) => {
                ErrorClass::Failure
            }
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// Replaces the image's Entrypoint + Cmd when not empty.
    pub command: Vec<String>,
    /// `KEY=VALUE` added to (or replacing in) the image's Env.
    pub env: Vec<String>,
    pub workdir: Option<PathBuf>,
    /// `None` (loopback only), `Host`, or `UserMode` with the published ports.
    pub network: Network,
    /// How the command is contained (see [`runtime::Isolation`]); the process's level, as
    /// for [`super::build::BuildRequest::isolation`].
    pub isolation: runtime::Isolation,
    pub timeout: Option<Duration>,
    /// Decided at the edge: how the rootfs is unpacked and copied.
    pub privilege: Privilege,
    /// The command reads our stdin (`run -i`); else `/dev/null`.
    pub interactive: bool,
    /// The command runs on a terminal of its own (`run -t`).
    pub tty: bool,
}

/// The command the image's config implies: Entrypoint followed by Cmd.
pub fn image_command(image: &ResolvedImage) -> Vec<String> {
    let Some(config) = image.config.config() else {
        return Vec::new();
    };
    let mut command = config.entrypoint().clone().unwrap_or_default();
    command.extend(config.cmd().clone().unwrap_or_default());
    command
}

/// Runs `request` on `image` of the store at `store`; output goes to `on_output`.
pub fn run_image(
    store: &Path,
    layout: &Layout,
    image: &ResolvedImage,
    request: &RunRequest,
    reporter: &dyn Reporter,
    on_output: impl FnMut(OutputEvent),
) -> Result<Outcome, RunError> {
    runtime::Isolation::set_requested(request.isolation);
    let command = if request.command.is_empty() {
        image_command(image)
    } else {
        request.command.clone()
    };
    if command.is_empty() {
        return Err(RunError::NoCommand);
    }
    let config = image.config.config().clone().unwrap_or_default();
    let mut env = config.env().clone().unwrap_or_default();
    crate::image::config::merge_env(&mut env, &request.env);
    let (uid, gid) = run_user(config.user().as_deref(), reporter);
    let cwd = request
        .workdir
        .clone()
        .or_else(|| config.working_dir().clone().map(PathBuf::from))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/"));

    let cache = rootfs_cache_dir(store);
    // Held while the command runs: `gc` keeps the trees though the image be renamed.
    let stack = LayerStack::of(image);
    let trees = stacked_lowers(
        layout,
        &stack,
        &cache,
        request.privilege,
        super::workspace::overlay_available(),
        reporter,
    )?;
    // Owned by this process: the scratch of a killed run is swept by the next one and by
    // `gc`, never while this one lives. It goes where a build's writable layer goes (a
    // tmpfs when there is room): its folders are made and removed on every run, and on a
    // disk each costs an inode allocation and, mounted with `discard`, a synchronous discard.
    let parent = super::workspace::scratch_parent(store);
    std::fs::create_dir_all(&parent).map_err(IoAt::at(&parent, "create"))?;
    let scratch = crate::store::scratch::OwnedTempDir::new(&parent, RUN_PREFIX)
        .map_err(IoAt::at(&parent, "create a scratch folder in"))?;
    let scratch_path = scratch.path().to_path_buf();
    let exe = runtime::self_exe();

    let make_spec = |rootfs: RootFs| {
        let mut spec = SandboxSpec::new(rootfs, command.clone());
        spec.env.clone_from(&env);
        spec.cwd.clone_from(&cwd);
        (spec.uid, spec.gid) = (uid, gid);
        spec.network.clone_from(&request.network);
        spec.limits.timeout = request.timeout;
        spec.inherit_stdin = request.interactive;
        spec.tty = request.tty;
        spec
    };
    let upper = scratch_path.join("upper");
    let work = scratch_path.join("work");
    let result = (|| {
        for dir in [&upper, &work] {
            std::fs::create_dir(dir).map_err(IoAt::at(dir, "create"))?;
        }
        let overlay = make_spec(RootFs::Overlay {
            lowers: trees.lowers.clone(),
            upper: upper.clone(),
            work: work.clone(),
        });
        let mut on_output = on_output;
        let first = if super::workspace::at_chroot_level() {
            // No overlay without a user namespace: straight to the copy, quietly.
            Err(SandboxError::Setup {
                stage: "root".into(),
                message: "overlay needs a user namespace".into(),
            })
        } else {
            runtime::run(&overlay, &exe, &mut on_output)
        };
        match first {
            Err(SandboxError::Setup { message, .. }) if message.contains("overlay") => {
                if !super::workspace::at_chroot_level() {
                    reporter.warning(&format!(
                        "overlay is not available ({message}); copying the root filesystem"
                    ));
                }
                let copy = scratch_path.join("rootfs");
                // A copy needs the flattened tree, whatever the overlay would have stacked.
                let (flat, _flat_hold) =
                    held_rootfs(layout, &stack, &cache, request.privilege, reporter)?;
                copy_tree(&flat, &copy)?;
                Ok(runtime::run(
                    &make_spec(RootFs::Dir(copy)),
                    &exe,
                    on_output,
                )?)
            }
            other => Ok(other?),
        }
    })();
    let _ = remove_tree(&scratch_path);
    drop(scratch);
    result
}

/// The user the image's config names (`User`): `UID:GID` or `root`; empty or absent is
/// root. A name (or a uid without a gid) would need the image's `/etc/passwd`, which
/// nothing host-side reads: such an image runs as root, with a warning.
fn run_user(user: Option<&str>, reporter: &dyn Reporter) -> (u32, u32) {
    let user = user.unwrap_or_default();
    if user.is_empty() {
        return (0, 0);
    }
    crate::manifest::du::numeric_user(user).unwrap_or_else(|| {
        reporter.warning(&format!(
            "the image's user {user:?} is not `UID:GID`: running as root"
        ));
        (0, 0)
    })
}

/// The name prefix of a run's scratch folder (in the rootfs cache before, now beside a
/// build's: see [`super::workspace::scratch_parent`]).
pub const RUN_PREFIX: &str = ".run-";

/// `cp -a`: the fallback root when overlay is refused.
fn copy_tree(from: &Path, to: &Path) -> Result<(), RunError> {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(from)
        .arg(to)
        .status()
        .map_err(|source| RunError::Copy {
            from: from.to_path_buf(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(RunError::Copy {
            from: from.to_path_buf(),
            source: std::io::Error::other(format!("cp -a exited with {status}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::run_user;
    use crate::report::Silent;

    #[test]
    fn the_config_user_in_numbers_is_who_runs() {
        assert_eq!(run_user(Some("1000:1000"), &Silent), (1000, 1000));
        assert_eq!(run_user(Some("root"), &Silent), (0, 0));
        for root in [None, Some(""), Some("nginx"), Some("1000")] {
            assert_eq!(run_user(root, &Silent), (0, 0), "{root:?}");
        }
    }
}
