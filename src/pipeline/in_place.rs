//! Builds at `--isolation none`: kaniko's model without root. The tool runs in an
//! unprivileged container whose own image *is* the badger, and the container is the
//! isolation boundary: the build command runs as a plain child process of this one, as the
//! container's user, in the container's root filesystem, with the container's network.
//!
//! In order: the badger is read as usual (its blobs copied into the store, never
//! unpacked) and the running root is checked to be it (its build script is the one the
//! badger image holds); the writable parts of `/` are snapshotted (see [`super::snapshot`]:
//! the kernel's filesystems, `/tmp`, the cache mount, the store, the tool, the source
//! folder and every other mount are left out); the source is put at `/app`, which must be
//! an empty folder this user can write (or absent in a writable `/`); each build command
//! runs in `/app` with the build's environment, limits and timeout (its process group is
//! killed when the timeout passes, and whatever it left running in other groups or
//! sessions when it ends, see [`step_survivors`]; a step that changed the store fails the
//! build, see [`store_guard`]); a second snapshot gives the changes, written as the
//! DU's one new layer over the badger's layers (by digest), committed; then `test_cmd` and
//! the start check run in place. Files this user made are recorded as `0:0`, as the
//! rootless single-id build records them, and mtimes are clamped to the epoch, so the same
//! inputs give the DU a `userns` build gives. The layer is written before the tests run:
//! what they write never reaches it. A badger's dependency step runs in place before the
//! app's snapshot ([`dependency_step`]), its changes the dependency layer. What `none`
//! cannot do yet is refused plainly: stacked badgers, and secrets or certificates.

use super::BuildError;
use super::{failure, shell, Job, NewLayer};
use crate::image::Digest;
use crate::io_at::IoAt;
use crate::manifest::du::WORKDIR;
use crate::manifest::DuManifest;
use crate::pipeline::commit::Committed;
use crate::pipeline::snapshot::{self, SnapshotError, SnapshotRules};
use crate::pipeline::step_survivors;
use crate::pipeline::store_guard::{StoreGuard, StoreGuardError};
use crate::pipeline::workspace::{Step, StepResult, WorkspaceError};
use crate::report::{Reporter, State};
use crate::store::Layout;
use runtime::{CancelHandle, Outcome, Termination};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The folders of `/` that are never the image's: the kernel's, and `/tmp` (a fresh tmpfs
/// in the sandbox, so what a build leaves there is in no layer at any level).
const NOT_THE_IMAGE: &[&str] = &["/proc", "/sys", "/dev", "/tmp"];

/// Where the app's download caches live during a build (a mount in the sandbox).
const CACHE_MOUNT: &str = "/solum/cache";

/// Why a build in place could not run.
#[derive(Debug, thiserror::Error)]
pub enum InPlaceError {
    #[error(
        "--isolation none builds on one badger, the container's own image; this app names {count}"
    )]
    StackedBadgers { count: usize },
    #[error("--isolation none cannot stage secrets or certificates yet (they would be files of the container anyone in it reads)")]
    Inputs,
    #[error("this container is not the badger {badger}: {reason}. At --isolation none the container's image must be the badger image itself")]
    NotTheBadger { badger: String, reason: String },
    #[error("cannot put the source at {WORKDIR}: {reason}. Give the container a writable, empty {WORKDIR} (`--tmpfs /app:exec,uid=UID,gid=GID` with podman or docker, an emptyDir volume in Kubernetes) or an image with one")]
    AppFolder { reason: String },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    StoreChanged(#[from] StoreGuardError),
    #[error("cannot read the badger's layer {digest}")]
    BadgerLayer {
        digest: String,
        #[source]
        source: std::io::Error,
    },
}

impl crate::error_class::Classify for InPlaceError {
    fn class(&self) -> crate::error_class::ErrorClass {
        use crate::error_class::ErrorClass;
        match self {
            // What the app file or the container asks for cannot be done this way.
            InPlaceError::StackedBadgers { .. }
            | InPlaceError::Inputs
            | InPlaceError::NotTheBadger { .. }
            | InPlaceError::AppFolder { .. } => ErrorClass::Input,
            InPlaceError::Snapshot(inner) => inner.class(),
            InPlaceError::StoreChanged(inner) => inner.class(),
            InPlaceError::BadgerLayer { .. } => ErrorClass::Failure,
        }
    }
}

impl Job<'_> {
    /// The build in place (see the module documentation): committed, not yet named.
    pub(super) fn build_in_place(
        &self,
        places: &super::Places<'_>,
        info: &crate::source::SourceInfo,
        epoch: i64,
        key: &Digest,
    ) -> Result<(DuManifest, Committed), BuildError> {
        let (app, reporter) = (&self.app, self.reporter);
        let (layout, store) = (places.layout, places.store);
        self.refuse_what_none_cannot_do()?;
        // Before any step: this process out of the steps' reach, and the reaper of what
        // they leave running.
        crate::pipeline::process_shield::before_steps_in_place()?;
        self.copy_badgers(layout)?;
        check_running_root_is(&self.badgers[0], layout)?;
        let (mut base, mut stack) = super::badger_stack::stack(&self.badgers)?;
        reporter.status(
            "Isolation",
            "none: the build runs in this container's own filesystem, as its user, with its network; the container is the isolation boundary",
        );
        let mut env = super::build_env(app, &base.config, info, epoch);
        // The dependency step runs in place too (see `dependency_step`), its changes a
        // layer of their own; the app's snapshot is taken after it.
        let below = stack.layers.len();
        self.add_dependency_layers(places, &mut env, &[], &mut base, &mut stack)?;
        let root = Path::new("/");
        let app_dir = Path::new(WORKDIR);
        let (rules, before) = snapshot_before(store, reporter)?;
        place_source(
            places.source,
            app_dir,
            stack.layers.len() > below,
            self.request.privilege,
            reporter,
        )?;

        let mut commands: Vec<(String, Option<String>)> = self
            .badgers
            .iter()
            .map(|b| (b.build_command(), Some(b.reference.clone())))
            .collect();
        commands.extend(app.workflow_config.build_cmd.clone().map(|c| (c, None)));
        guarding_store(store, || {
            for (command, badger) in commands {
                let what = badger.as_deref().map_or_else(
                    || format!("{} build_cmd: {command}", app.name),
                    |b| format!("{} on {b}", app.name),
                );
                reporter.stage(State::Building, &what);
                let result = run_step(
                    self.step(State::Building, &command, &env),
                    self.cancel,
                    reporter,
                )?;
                if let Some(how) = failure(result.outcome.termination)? {
                    let tail = self.redacted(result.tail);
                    return Err(match badger {
                        Some(badger) => BuildError::BuildFailed { badger, how, tail },
                        None => BuildError::AppBuildFailed { command, how, tail },
                    });
                }
            }
            Ok(())
        })?;
        let after = snapshot::take(root, &rules).map_err(InPlaceError::from)?;
        let changes = snapshot::changes(&before, &after);
        crate::layer::refuse_whiteout_names(&changes).map_err(|source| {
            crate::pipeline::commit::CommitError::Layer {
                root: root.to_path_buf(),
                source,
            }
        })?;
        reporter.status(
            "Changes",
            &format!("{} entries in the new layer", changes.len()),
        );
        let layer = NewLayer {
            base: &base,
            root,
            changes,
            subordinate_ids: None,
        };
        // Written before the tests run: nothing they write can reach the layer.
        let (du, committed) = self.commit_du(layout, layer, info, epoch, key)?;
        guarding_store(store, || self.test_in_place(&env))?;
        guarding_store(store, || self.check_run_command_in_place(&base))?;
        Ok((du, committed))
    }

    fn refuse_what_none_cannot_do(&self) -> Result<(), InPlaceError> {
        if self.badgers.len() != 1 {
            return Err(InPlaceError::StackedBadgers {
                count: self.badgers.len(),
            });
        }
        let inputs = &self.request.inputs;
        if !inputs.secrets.is_empty() || inputs.ca_certificates.is_some() {
            return Err(InPlaceError::Inputs);
        }
        Ok(())
    }

    /// A step of `state` running `command` (through the shell) in `/app`.
    fn step(&self, state: State, command: &str, env: &[String]) -> Step {
        Step {
            stage: state,
            rootfs: runtime::RootFs::Dir(PathBuf::from("/")),
            command: shell(command),
            env: env.to_vec(),
            cwd: PathBuf::from(WORKDIR),
            mounts: Vec::new(),
            user: (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            ),
            network_host: true,
            timeout: self.request.timeout,
        }
    }

    /// The gate, in place, after the layer is written.
    fn test_in_place(&self, env: &[String]) -> Result<(), BuildError> {
        let Some(test_cmd) = self.app.workflow_config.tests() else {
            return Ok(());
        };
        self.reporter.stage(State::UnitTesting, test_cmd);
        let result = run_step(
            self.step(State::UnitTesting, test_cmd, env),
            self.cancel,
            self.reporter,
        )?;
        self.tests_passed(test_cmd, result)
    }

    /// The start check (see [`super::super::start_check`]), run in place as this user.
    fn check_run_command_in_place(&self, base: &super::Base) -> Result<(), BuildError> {
        let Some(run_cmd) = &self.app.workflow_config.run_cmd else {
            return Ok(());
        };
        let check = super::StartCheck {
            run_cmd,
            rootfs: runtime::RootFs::Dir(PathBuf::from("/")),
            base_env: base.config.env(),
            run_env: super::env_entries(&self.app.run_environment()),
            workdir: WORKDIR,
            user: (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            ),
        };
        super::start_check::check_with(check, run_step, self.cancel, self.reporter)?
            .ok_or(BuildError::Cancelled)?;
        Ok(())
    }
}

/// `work` (steps run in place) with the store watched (see [`store_guard`]): a change to
/// the store fails the build even when `work` failed too, since the store is then not to
/// be trusted.
fn guarding_store<T>(
    store: &Path,
    work: impl FnOnce() -> Result<T, BuildError>,
) -> Result<T, BuildError> {
    let guard = StoreGuard::watch(store).map_err(InPlaceError::from)?;
    let result = work();
    guard.check().map_err(InPlaceError::from)?;
    result
}

/// What the snapshots leave out besides mounts: the kernel's folders, `/tmp`, the
/// cache folder, the store (the source's scratch is in it), the tool itself, and the
/// CI job's workspace as the common CI systems name it.
fn excluded_paths(store: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = NOT_THE_IMAGE.iter().map(PathBuf::from).collect();
    paths.push(PathBuf::from(CACHE_MOUNT));
    paths.extend(std::fs::canonicalize(store).ok());
    paths.extend(std::env::current_exe().ok());
    for variable in [
        "CI_PROJECT_DIR",
        "GITHUB_WORKSPACE",
        "WORKSPACE",
        "SOLUM_BUILD_WORKSPACE",
    ] {
        if let Some(dir) = std::env::var_os(variable).filter(|v| !v.is_empty()) {
            paths.extend(std::fs::canonicalize(dir).ok());
        }
    }
    // Never `/` itself, nor the folder the source is put in.
    paths.retain(|p| p != Path::new("/") && p != Path::new(WORKDIR));
    paths
}

/// The running root holds the badger's build script as the badger image's top layer has
/// it: a container of another image (or none at all) is refused before anything runs.
fn check_running_root_is(badger: &super::Badger, layout: &Layout) -> Result<(), BuildError> {
    let not_it = |reason: String| InPlaceError::NotTheBadger {
        badger: badger.reference.clone(),
        reason,
    };
    let command = badger.build_command();
    let script = command.split_whitespace().next().unwrap_or_default();
    let Some(inner) = script.strip_prefix('/') else {
        // A command that names no file (`make`): nothing cheap to compare.
        return Ok(());
    };
    let Some(top) = badger.image.image.layers().last() else {
        return Err(not_it("the badger image has no layer".into()).into());
    };
    let digest: Digest = top
        .digest()
        .to_string()
        .parse()
        .map_err(|_| not_it(format!("its top layer digest {} is not one", top.digest())))?;
    let expected = layer_file(layout, &digest, inner)?
        .ok_or_else(|| not_it(format!("its top layer has no {script}")))?;
    let running = super::super::badger_files::read_badger_file(Path::new("/"), inner)
        .map_err(|e| not_it(format!("{script} cannot be read here: {e}")))?
        .ok_or_else(|| not_it(format!("{script} is not in this container")))?;
    if running != expected {
        return Err(not_it(format!("{script} here differs from the badger's")).into());
    }
    Ok(())
}

/// Largest build script compared with the running one.
const SCRIPT_LIMIT: u64 = 1 << 20;

/// The contents of the regular file `inner` in the layer blob `digest`, if it has one.
fn layer_file(
    layout: &Layout,
    digest: &Digest,
    inner: &str,
) -> Result<Option<Vec<u8>>, BuildError> {
    let error = |source: std::io::Error| InPlaceError::BadgerLayer {
        digest: digest.to_string(),
        source,
    };
    let blob = layout.open_blob(digest, None)?;
    let (_, reader) = crate::layer::decompressing_reader(blob, None)
        .map_err(|e| error(std::io::Error::other(e)))?;
    let mut archive = tar::Archive::new(crate::layer::TarGuard::new(reader));
    for entry in archive.entries().map_err(error)? {
        let entry = entry.map_err(error)?;
        let path = entry.path().map_err(error)?.into_owned();
        let name = path.to_string_lossy();
        let name = name.trim_start_matches("./").trim_start_matches('/');
        if name == inner && entry.header().entry_type().is_file() {
            let mut bytes = Vec::new();
            entry
                .take(SCRIPT_LIMIT)
                .read_to_end(&mut bytes)
                .map_err(error)?;
            return Ok(Some(bytes));
        }
    }
    Ok(None)
}

/// Makes `/solum/cache` where it is missing and `/solum` lets this user, before the first
/// snapshot, so that the folder is no change; the snapshots leave its contents out.
fn prepare_cache_folder(reporter: &dyn Reporter) {
    let cache = Path::new(CACHE_MOUNT);
    if std::fs::symlink_metadata(cache).is_ok() {
        return;
    }
    if let Err(error) = std::fs::create_dir_all(cache) {
        reporter.warning(&format!(
            "{CACHE_MOUNT} cannot be made here ({error}): build tools get no download cache"
        ));
    }
}

/// The rules of this build's snapshots and the snapshot before a step; `/solum/cache` is
/// made first (where it can be), so that making it is no change.
fn snapshot_before(
    store: &Path,
    reporter: &dyn Reporter,
) -> Result<(SnapshotRules, snapshot::Snapshot), InPlaceError> {
    prepare_cache_folder(reporter);
    let root = Path::new("/");
    let rules = SnapshotRules::for_root(root, &excluded_paths(store), &[PathBuf::from(WORKDIR)]);
    let started = Instant::now();
    let before = snapshot::take(root, &rules)?;
    reporter.status(
        "Snapshot",
        &format!("{} entries of / in {:.2?}", before.len(), started.elapsed()),
    );
    Ok((rules, before))
}

/// The dependency step at `--isolation none` (see [`super::super::dependency_layer`]): the
/// staged inputs put at `/app` (which must be empty), `step` run in place, and what it
/// changed, the inputs included (the caller leaves them out).
pub(in crate::pipeline) fn dependency_step(
    staged_app: &Path,
    step: Step,
    store: &Path,
    privilege: crate::privilege::Privilege,
    cancel: &CancelHandle,
    reporter: &dyn Reporter,
) -> Result<(StepResult, Vec<crate::layer::Change>), BuildError> {
    let (rules, before) = snapshot_before(store, reporter)?;
    place_source(staged_app, Path::new(WORKDIR), false, privilege, reporter)?;
    let result = guarding_store(store, || Ok(run_step(step, cancel, reporter)?))?;
    let after = snapshot::take(Path::new("/"), &rules).map_err(InPlaceError::from)?;
    Ok((result, snapshot::changes(&before, &after)))
}

/// Puts the fetched source at `app_dir`: copied there when it is missing, or into it when
/// it is an empty folder this user can write, or, with `keep_below` (a dependency step
/// ran in place and left its inputs and outputs there), over what it holds as a `userns`
/// build's overlay shows the source over the dependency layer: the source's entries win,
/// folders both hold are merged. Then `app_dir` gets the source folder's mode and times,
/// which a `userns` build, moving the source folder there, gives it.
fn place_source(
    source: &Path,
    app_dir: &Path,
    keep_below: bool,
    privilege: crate::privilege::Privilege,
    reporter: &dyn Reporter,
) -> Result<(), BuildError> {
    let refuse = |reason: String| InPlaceError::AppFolder { reason };
    match std::fs::symlink_metadata(app_dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            crate::layer::copy_tree(source, app_dir, privilege)
                .map_err(|e| refuse(format!("{e}")))?;
        }
        Err(error) => return Err(refuse(error.to_string()).into()),
        Ok(meta) if !meta.is_dir() => {
            return Err(refuse("it is not a folder (a symlink or a file)".into()).into())
        }
        Ok(_) => {
            let mut entries = std::fs::read_dir(app_dir).map_err(|e| refuse(e.to_string()))?;
            if entries.next().is_some() && !keep_below {
                // Never emptied here: it may be the job's own checkout, mounted.
                return Err(refuse("it is not empty".into()).into());
            }
            // Copied beside the final names, then moved in: `copy_tree` makes its target.
            let staging = app_dir.join(".solum-source");
            crate::layer::copy_tree(source, &staging, privilege)
                .map_err(|e| refuse(format!("it is not writable here ({e})")))?;
            merge_into(&staging, app_dir)?;
            std::fs::remove_dir(&staging).map_err(IoAt::at(&staging, "remove"))?;
        }
    }
    let wanted = std::fs::symlink_metadata(source).map_err(IoAt::at(source, "stat"))?;
    let same_mode = std::fs::set_permissions(
        app_dir,
        std::fs::Permissions::from_mode(wanted.permissions().mode() & 0o7777),
    );
    let times = super::super::workspace::copy_times(app_dir, &wanted);
    if same_mode.is_err() || times.is_err() {
        // Another user's folder (a tmpfs mounted without uid=): the DU's /app entry keeps
        // that folder's mode and times, and its digest is not the `userns` build's.
        reporter.warning(&format!(
            "{} is not this user's: the DU's {WORKDIR} entry keeps its mode, and the digest differs from other isolation levels' (mount it owned by this user)",
            app_dir.display()
        ));
    }
    Ok(())
}

/// Moves every entry of `from` into `into`. Where `into` has the name already, a folder
/// in both is merged (and takes `from`'s mode and times, as the folder over it in an
/// overlay shows); anything else there is replaced. Entries of `into` that `from` lacks are
/// not touched, so they are no change.
fn merge_into(from: &Path, into: &Path) -> Result<(), BuildError> {
    for entry in std::fs::read_dir(from).map_err(IoAt::at(from, "list"))? {
        let entry = entry.map_err(IoAt::at(from, "list"))?;
        let (source, target) = (entry.path(), into.join(entry.file_name()));
        let source_meta = std::fs::symlink_metadata(&source).map_err(IoAt::at(&source, "stat"))?;
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() && source_meta.is_dir() => {
                merge_into(&source, &target)?;
                std::fs::set_permissions(&target, source_meta.permissions())
                    .map_err(IoAt::at(&target, "chmod"))?;
                super::super::workspace::copy_times(&target, &source_meta)
                    .map_err(|e| IoAt::new(target.clone(), "set the times of", e.into()))?;
                std::fs::remove_dir(&source).map_err(IoAt::at(&source, "remove"))?;
                continue;
            }
            Ok(_) => {
                super::super::unpack::remove_tree(&target).map_err(IoAt::at(&target, "replace"))?;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(IoAt::at(&target, "stat")(error).into()),
        }
        std::fs::rename(&source, &target).map_err(IoAt::at(&target, "move the source to"))?;
    }
    Ok(())
}

/// Lines of output kept for the message of a failed step.
const TAIL_LINES: usize = 20;
/// Longest output line kept whole; longer ones are cut into pieces of this size.
const LINE_LIMIT: usize = 16 << 10;
/// How long the output of a step is still read after its process group was killed (a
/// process that left the group may hold the pipes open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs one step in place: `step.command` as a child process in its own process group,
/// with `step.env` only, in `step.cwd`, its output streamed to `reporter`; the group is
/// killed when the timeout passes, on cancel, and when the shell has exited (what it left
/// running is part of the step). `rootfs`, `mounts`, `user` and `network_host` have no
/// effect: the container decides them.
pub(super) fn run_step(
    step: Step,
    cancel: &CancelHandle,
    reporter: &dyn Reporter,
) -> Result<StepResult, WorkspaceError> {
    let started = Instant::now();
    let (program, args) = step.command.split_first().ok_or_else(|| {
        IoAt::new(
            &step.cwd,
            "run an empty command in",
            std::io::ErrorKind::InvalidInput.into(),
        )
    })?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(step.env.iter().filter_map(|e| e.split_once('=')))
        .current_dir(&step.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = {
        let _limits = StepLimits::apply();
        command
            .spawn()
            .map_err(IoAt::at(&step.cwd, "start the step in"))?
    };
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let (sender, lines) = mpsc::channel();
    for (stream, is_stderr) in [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            false,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            true,
        ),
    ] {
        if let Some(stream) = stream {
            let sender = sender.clone();
            std::thread::spawn(move || read_lines(stream, is_stderr, &sender));
        }
    }
    drop(sender);
    let kill_group = || {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    };
    let deadline = step.timeout.map(|t| started + t);
    let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
    let mut show = |(is_stderr, line): (bool, String)| {
        reporter.output_line(step.stage, &line, is_stderr);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    };
    let termination = loop {
        match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => show(line),
            Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
        }
        if cancel.is_cancelled() {
            kill_group();
            break Termination::Cancelled;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            kill_group();
            break Termination::TimedOut;
        }
        if let Some(status) = child
            .try_wait()
            .map_err(IoAt::at(&step.cwd, "wait for the step in"))?
        {
            kill_group();
            break match (status.code(), status.signal()) {
                (Some(code), _) => Termination::Exited(code),
                (None, Some(signal)) => Termination::Signaled(signal),
                (None, None) => Termination::Exited(-1),
            };
        }
    };
    // Reap the shell if it was killed, end what it left running in other groups and
    // sessions (see `step_survivors`), then take what is left of its output.
    let _ = child.wait();
    if step_survivors::adopting() {
        let killed = step_survivors::kill_survivors(&[]);
        if killed > 0 {
            reporter.warning(&format!(
                "{killed} processes the step left running (in another session or process group) were killed"
            ));
        }
    }
    let drain_until = Instant::now() + DRAIN_GRACE;
    while let Some(left) = drain_until.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => show(line),
            Err(_) => break,
        }
    }
    Ok(StepResult {
        outcome: Outcome {
            termination,
            elapsed: started.elapsed(),
            created_mount_points: Vec::new(),
            id_map: runtime::IdMapKind::Single,
            proc_fallback: false,
            degradations: Vec::new(),
        },
        tail: tail.into_iter().collect(),
    })
}

/// Sends each line of `stream` (cut at [`LINE_LIMIT`], lossy UTF-8) until it ends.
fn read_lines(
    mut stream: Box<dyn Read + Send>,
    is_stderr: bool,
    sender: &mpsc::Sender<(bool, String)>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buffer[..read]);
        while let Some(end) = pending
            .iter()
            .position(|b| *b == b'\n')
            .or((pending.len() >= LINE_LIMIT).then_some(LINE_LIMIT))
        {
            let line: Vec<u8> = pending.drain(..end.min(pending.len())).collect();
            if pending.first() == Some(&b'\n') {
                pending.remove(0);
            }
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            if sender.send((is_stderr, text)).is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let _ = sender.send((is_stderr, String::from_utf8_lossy(&pending).into_owned()));
    }
}

/// The sandbox's per-process limits ([`runtime::Limits::defaults`]: processes, address
/// space, file size, open files) for a step started in place. A child inherits its
/// parent's limits, and setting them in the child alone would need code between fork and
/// exec (unsafe, and kept to `runtime`): so this process lowers its own soft limits for
/// the moment of the spawn and puts them back when dropped. Hard limits are never touched.
struct StepLimits {
    saved: Vec<(Resource, libc::rlim_t)>,
}

use nix::sys::resource::{getrlimit, setrlimit, Resource};

impl StepLimits {
    fn apply() -> StepLimits {
        let limits = runtime::Limits::defaults();
        let mut saved = Vec::new();
        for (resource, value) in [
            (Resource::RLIMIT_NPROC, limits.max_processes),
            (Resource::RLIMIT_AS, limits.memory),
            (Resource::RLIMIT_FSIZE, limits.max_file_size),
            (Resource::RLIMIT_NOFILE, limits.max_open_files),
        ] {
            let (Some(value), Ok((soft, hard))) = (value, getrlimit(resource)) else {
                continue;
            };
            let wanted = value.min(hard);
            if wanted < soft && setrlimit(resource, wanted, hard).is_ok() {
                saved.push((resource, soft));
            }
        }
        StepLimits { saved }
    }
}

impl Drop for StepLimits {
    fn drop(&mut self) {
        for (resource, soft) in self.saved.drain(..) {
            if let Ok((_, hard)) = getrlimit(resource) {
                let _ = setrlimit(resource, soft, hard);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Keeps the output lines a step streamed.
    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl Reporter for Lines {
        fn output_line(&self, _: State, line: &str, _: bool) {
            self.0.lock().unwrap().push(line.to_string());
        }
    }

    fn step(command: &str, timeout: Option<Duration>) -> Step {
        Step {
            stage: State::Building,
            rootfs: runtime::RootFs::Dir(PathBuf::from("/")),
            command: shell(command),
            env: vec!["PATH=/usr/bin:/bin".into(), "GREETING=hello".into()],
            cwd: std::env::temp_dir(),
            mounts: Vec::new(),
            user: (0, 0),
            network_host: false,
            timeout,
        }
    }

    #[test]
    fn a_step_gets_its_environment_alone_and_its_output_is_streamed() {
        let lines = Lines::default();
        let result = run_step(
            step("echo $GREETING; echo ${HOME:-no home} >&2; exit 3", None),
            &CancelHandle::new(),
            &lines,
        )
        .unwrap();
        assert_eq!(result.outcome.termination, Termination::Exited(3));
        let mut seen = lines.0.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, ["hello", "no home"]);
    }

    /// The shell and what it left running in the background go at the timeout, and the
    /// step does not wait for the background child's pipe.
    #[test]
    fn the_timeout_kills_the_whole_process_group() {
        let started = Instant::now();
        let result = run_step(
            step(
                "sleep 300 & while true; do sleep 1; done",
                Some(Duration::from_secs(1)),
            ),
            &CancelHandle::new(),
            &Lines::default(),
        )
        .unwrap();
        assert_eq!(result.outcome.termination, Termination::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn an_endless_line_is_cut() {
        let lines = Lines::default();
        run_step(
            step("head -c 40000 /dev/zero | tr '\\0' x", None),
            &CancelHandle::new(),
            &lines,
        )
        .unwrap();
        let seen = lines.0.into_inner().unwrap();
        assert!(
            seen.iter().all(|l| l.len() <= LINE_LIMIT),
            "{:?}",
            seen.len()
        );
        assert_eq!(seen.iter().map(String::len).sum::<usize>(), 40000);
    }
}
