//! `solum-build build`: app file → badger(s) → sandboxed build → test gate → DU image.
//!
//! In order: load and validate the app file (command-line values applied first); resolve
//! the badgers; fetch the source into a scratch folder; compute the build key (badger
//! digests, source tree, app file, epoch, options) and return the recorded DU on a hit;
//! otherwise copy the badgers' blobs into the store, unpack their stacked layers once into
//! the rootfs cache, put the source at `/app` of a fresh writable layer, run each badger's
//! build command, run `test_cmd` on a throwaway layer above it (both with the build-time
//! inputs of `build_inputs`, their output redacted), check the new layer holds no secret,
//! diff the writable layer into one new layer, and commit config + manifest with the DU
//! manifest annotation. The name is set (and the cache record written) only after
//! everything else succeeded; on any failure or cancel the scratch folder goes and the
//! store keeps no new name.

use super::app_input::{load_app, source_spec};
use super::badger_stack::{self, Badger};
use super::build_cache;
use super::build_env::{build_env, env_entries, shell, with_build_environment};
pub use super::build_error::BuildError;
use super::build_inputs::{self, BuildInputs};
use super::cache_mounts::MountsContext;
use super::commit::{commit, Base, Commit, Committed};
use super::dependency_layer;
use super::detect;
use super::network_hint;
use super::redaction::{self, RedactingReporter, Redactor};
use super::registry_cache::{RegistryCache, RemoteCache};
use super::start_check::{self, StartCheck};
use super::unpack::{rootfs_cache_dir, LayerStack, UnpackError};
use super::workspace::{overlay_available, run_step, Step, StepResult, Workspace};
use crate::image::config::merge_env;
use crate::image::Digest;
use crate::io_at::IoAt;
use crate::layer::LayerCompression;
use crate::manifest::du::{du_user, numeric_user, BadgerUsed, DuInputs, WORKDIR};
use crate::manifest::procfile::{self, ProcfileError};
use crate::manifest::{AppFile, DuManifest, Overrides};
use crate::manifest::{BUILD_KEY_ANNOTATION, DU_ANNOTATION};
use crate::privilege::Privilege;
use crate::report::Reporter;
use crate::report::State;
use crate::source::{self, SourceError, SourceInfo};
use crate::store::Layout;
use crate::transport::{copy_blobs, RegistryTransport};
use runtime::{BindMount, CancelHandle, RootFs, Termination};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[path = "in_place.rs"]
mod in_place;
pub(super) use in_place::dependency_step as dependency_step_in_place;
pub use in_place::InPlaceError;

/// Where the app file of a build comes from.
#[derive(Clone, Debug)]
pub enum AppInput {
    /// A file; relative sources are resolved against its folder.
    File(PathBuf),
    /// App-file text as stored (the server's records); `origin` names it in messages.
    /// Relative sources are resolved against the current folder (the server's checks
    /// admit only URLs and absolute folders).
    Text { text: String, origin: String },
    /// No app file: the name (default `app`) alone, everything else from the overrides.
    CommandLine { name: Option<String> },
}

/// Everything a build takes.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    /// The app file; command-line values in `overrides` are laid over it.
    pub app: AppInput,
    pub overrides: Overrides,
    /// The store name for the DU (default: the app's name).
    pub tag: Option<String>,
    pub network_host: bool,
    /// How the build and test steps are contained (see [`runtime::Isolation`]). The level
    /// is the process's: the first request (or the command line's `--isolation`) sets it
    /// for every sandbox after it, as the overlay decision and `auto`'s choice are too.
    pub isolation: runtime::Isolation,
    pub timeout: Option<Duration>,
    pub no_cache: bool,
    pub compression: LayerCompression,
    /// `SOURCE_DATE_EPOCH` when set; else the source commit's time; else the newest mtime
    /// of the source's files; else 0.
    pub epoch: Option<i64>,
    /// Run the app's `test_cmd` (the gate). Without it the DU manifest records no tests.
    pub run_tests: bool,
    /// What fetching the source may use: the server's bounds and no identity of its own;
    /// the CLI's defaults (no bound beyond the unpacker's, the user's git identity).
    pub source_rules: source::FetchRules,
    /// Decided at the edge: how layers are unpacked, copied and written.
    pub privilege: Privilege,
    /// Secrets and certificates for the build and test steps only (see `build_inputs`).
    pub inputs: BuildInputs,
    /// The build cache in a registry, besides the store's (see `registry_cache`).
    pub registry_cache: RegistryCache,
}

/// What a build produced.
#[derive(Clone, Debug)]
pub struct Built {
    pub manifest_digest: Digest,
    pub tag: String,
    pub cache_hit: bool,
    pub du: Option<DuManifest>,
    /// The app file's `trigger_actions` ask for `deploy` (a push, where one is configured).
    pub asks_deploy: bool,
}

/// Runs a build into the store at `store`: the stages below, in this order.
pub fn build(
    request: &BuildRequest,
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    cancel: &CancelHandle,
    reporter: &dyn Reporter,
) -> Result<Built, BuildError> {
    // Everything the build says goes through this: no line shows a secret's value.
    let reporter = &RedactingReporter {
        inner: reporter,
        redactor: redactor(request),
    };
    runtime::Isolation::set_requested(request.isolation);
    let (mut app, base_dir) = load_app(request)?;
    if !request.run_tests {
        // Not tested: the DU must not claim a test result.
        app.workflow_config.test_cmd = None;
    }
    let tag = request.tag.clone().unwrap_or_else(|| app.name.clone());
    reporter.stage(State::Queued, &format!("{} → {tag}", app.name));
    if app.workflow_config.says_no_tests() {
        // Said before the build cache is asked: a cached DU had no tests either.
        let by = if request.overrides.test_cmd.is_some() {
            "--test-cmd"
        } else {
            "the app file"
        };
        reporter.status(
            "Skipping",
            &format!("tests: {by} says there are none (empty test_cmd)"),
        );
    }

    // Named badgers now, so that a wrong name fails before any fetching; `auto` is chosen
    // from the source once it is fetched.
    let pending = detect::resolve_named(app.all_badgers(), store, registry, reporter)?;
    let mut job = Job {
        request,
        registry,
        app,
        badgers: Vec::new(),
        cancel,
        reporter,
    };

    let layout = Layout::open_or_create(store)?;
    // Held until the name is written: `gc` waits rather than take the new blobs.
    let _lease = layout.lease()?;
    // Private before anything (source mirrors, app caches) is put in it.
    let cache_root = crate::store::cache::cache_root(store).map_err(UnpackError::from)?;
    let fetched = job.fetch_source(&base_dir, &layout, &cache_root)?;
    job.badgers = detect::choose(pending, &fetched.dir, store, registry, reporter)?;
    job.run_cmd_from_procfile(&fetched.dir)?;
    // The DU's `created` and the mtime clamp: SOURCE_DATE_EPOCH, else the commit's time,
    // else the newest file of a folder or artifact source; the same source gives the same
    // DU, and no DU says it was made in 1970.
    let epoch = request
        .epoch
        .or(fetched.info.commit_time)
        .or(fetched.info.newest_mtime)
        .unwrap_or(0);

    // The key needs the fetched source (its tree digest); a hit skips everything after.
    let key = build_cache::build_key(&job.app, &job.badgers, &fetched.info, epoch, request);
    let record = cache_root.join("builds").join(key.hex());
    let remote = RemoteCache {
        settings: &request.registry_cache,
        registry,
        layout: &layout,
        key: &key,
        reporter,
    };
    if !request.no_cache {
        if let Some(built) = remote.reuse(&record, &tag, &job.badgers)? {
            remote.store(&tag);
            let asks_deploy = job.app.asks_deploy();
            return Ok(Built {
                asks_deploy,
                ..built
            });
        }
    }
    let mounts = MountsContext::new(&cache_root, &job.app.name, &job.badgers, request);
    if request.isolation == runtime::Isolation::None && request.registry_cache.mounts {
        // In place the container's own /solum/cache is the build's; the store's is unused.
        reporter.warning("--cache-mounts does nothing at --isolation none: the build uses the container's own /solum/cache");
    }
    remote.restore_mounts(&mounts);

    let places = Places {
        layout: &layout,
        store,
        cache_root: &cache_root,
        source: &fetched.dir,
    };
    let (du, committed) = if request.isolation == runtime::Isolation::None {
        job.build_in_place(&places, &fetched.info, epoch, &key)?
    } else {
        job.build_in_sandbox(&places, &fetched.info, epoch, &key)?
    };
    layout.tag(&tag, &committed.descriptor)?;
    build_cache::write_record(&record, &committed.manifest_digest);
    remote.store(&tag);
    remote.save_mounts(&mounts);
    reporter.stage(
        State::Built,
        &format!("{tag} {}", committed.manifest_digest.short()),
    );
    Ok(Built {
        manifest_digest: committed.manifest_digest,
        tag,
        cache_hit: false,
        du: Some(du),
        asks_deploy: job.app.asks_deploy(),
    })
}

/// What the build must never show: its secrets' values, its proxies' passwords.
pub(super) fn redactor(request: &BuildRequest) -> Redactor {
    Redactor::new(&request.inputs.secrets)
        .with_values(build_inputs::host_proxy_passwords(request.network_host))
}

/// The source, fetched into a scratch folder of the store that goes with it.
struct FetchedSource {
    /// Removed, with whatever is left of `dir`, when the build ends.
    _scratch: tempfile::TempDir,
    dir: PathBuf,
    info: SourceInfo,
}

/// One build under way, past its app file and badgers: what every later stage reads.
struct Job<'a> {
    request: &'a BuildRequest,
    registry: Option<&'a dyn RegistryTransport>,
    app: AppFile,
    badgers: Vec<Badger>,
    cancel: &'a CancelHandle,
    reporter: &'a dyn Reporter,
}

impl Job<'_> {
    /// The app's source (artifact, folder or git revision) into a scratch folder of the
    /// store, with what the build key needs of it.
    fn fetch_source(
        &self,
        base_dir: &Path,
        layout: &Layout,
        cache_root: &Path,
    ) -> Result<FetchedSource, BuildError> {
        let (app, request) = (&self.app, self.request);
        let scratch = tempfile::Builder::new()
            .prefix(".source-")
            .tempdir_in(layout.temp_dir()?)
            .map_err(IoAt::at(&layout.root().join(".tmp"), "create a folder in"))?;
        let dir = scratch.path().join("app");
        let spec = source_spec(app, base_dir)?;
        let info = match source::fetch_cancellable(
            &spec,
            app.source.path.as_deref(),
            &dir,
            &cache_root.join("sources"),
            self.cancel,
            &request.source_rules,
            request.privilege,
            self.reporter,
        ) {
            Ok(info) => info,
            Err(SourceError::Cancelled) => return Err(BuildError::Cancelled),
            Err(e) => {
                return Err(BuildError::Source {
                    app: app.name.clone(),
                    source: Box::new(e),
                })
            }
        };
        Ok(FetchedSource {
            _scratch: scratch,
            dir,
            info,
        })
    }

    /// A `Procfile` at the source root gives the run command when the app file has none:
    /// its `web:` line. Read through no symlink; a malformed one fails the build.
    fn run_cmd_from_procfile(&mut self, source: &Path) -> Result<(), BuildError> {
        if self.app.workflow_config.run_cmd.is_some() {
            return Ok(());
        }
        use super::badger_files::{read_badger_file, BadgerFileError};
        let bytes = match read_badger_file(source, "Procfile") {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(()),
            Err(BadgerFileError::Refused { reason, .. }) => {
                return Err(ProcfileError::Refused { reason }.into())
            }
            Err(BadgerFileError::Read {
                action,
                source: error,
                ..
            }) => return Err(IoAt::new(source.join("Procfile"), action, error).into()),
        };
        match procfile::web_command(&bytes)? {
            Some(command) => {
                self.reporter.status(
                    "Procfile",
                    &format!("web: {command} (the run command: the app file has no run_cmd)"),
                );
                self.app.workflow_config.run_cmd = Some(command);
            }
            None => self.reporter.warning(
                "the source's Procfile has no `web:` line: the badger's default command runs the DU",
            ),
        }
        Ok(())
    }

    /// The build in the sandbox (`userns`): steps on the badgers' stacked layers, the
    /// writable layer diffed into the DU's one new layer, committed but not yet named.
    fn build_in_sandbox(
        &self,
        places: &Places<'_>,
        info: &SourceInfo,
        epoch: i64,
        key: &Digest,
    ) -> Result<(DuManifest, Committed), BuildError> {
        let sandbox = self.prepare_sandbox(places, info, epoch)?;
        let steps_failed = |error| network_hint::with_hint(error, self.request.network_host);
        let mut ran = self.run_build_commands(&sandbox).map_err(steps_failed)?;
        self.run_tests(&sandbox).map_err(steps_failed)?;
        let secrets = &self.request.inputs.secrets;
        redaction::check_layer(&sandbox.workspace, &ran.created_mount_points, secrets)?;
        self.check_run_command(&sandbox, &mut ran)?;
        let layer = NewLayer {
            base: &sandbox.base,
            root: sandbox.workspace.writable_root(),
            changes: sandbox.workspace.changes(&ran.created_mount_points)?,
            subordinate_ids: ran
                .id_map
                .as_ref()
                .and_then(super::workspace::subordinate_ids),
        };
        self.commit_du(places.layout, layer, info, epoch, key)
    }

    /// The badgers' blobs into the store: the DU's manifest names their layers.
    fn copy_badgers(&self, layout: &Layout) -> Result<(), BuildError> {
        for badger in &self.badgers {
            copy_blobs(
                &badger.image.layout,
                &badger.image.image,
                layout,
                self.reporter,
            )
            .map_err(|source| BuildError::CopyBadger {
                reference: badger.reference.clone(),
                source: Box::new(source),
            })?;
        }
        Ok(())
    }

    /// The dependency layers of the badgers that declare a step (see
    /// [`super::dependency_layer`]) on `base` and `stack`; then `env` tells the badgers'
    /// build scripts not to install again.
    fn add_dependency_layers(
        &self,
        places: &Places<'_>,
        env: &mut Vec<String>,
        mounts: &[BindMount],
        base: &mut Base,
        stack: &mut LayerStack,
    ) -> Result<(), BuildError> {
        let declaring = dependency_layer::declaring(&self.badgers);
        if declaring.is_empty() {
            return Ok(());
        }
        let app = &self.app;
        let context = dependency_layer::DependencyContext {
            layout: places.layout,
            store: places.store,
            cache_root: places.cache_root,
            source: places.source,
            app_name: &app.name,
            // The build environment's values decide the step's result: they are in its key
            // (the host's proxies, staged by the step itself, are not).
            env: dependency_layer::step_env(&with_build_environment(env, app), self.request.epoch),
            app,
            mounts: mounts.to_vec(),
            request: self.request,
            registry: self.registry,
            cancel: self.cancel,
            reporter: self.reporter,
        };
        dependency_layer::add_dependency_layers(&context, &declaring, base, stack)
            .map_err(|e| network_hint::with_hint(e.into(), self.request.network_host))?;
        // Run, reused or skipped: the badgers' build scripts must not install again.
        merge_env(env, &[format!("{}=1", dependency_layer::DONE_VARIABLE)]);
        Ok(())
    }

    /// The badgers' blobs into the store, the build environment and the app's cache
    /// mount, the dependency layers (see [`super::dependency_layer`]), their stacked layers
    /// unpacked once into the rootfs cache, a workspace over them with the source at `/app`.
    fn prepare_sandbox(
        &self,
        places: &Places<'_>,
        info: &SourceInfo,
        epoch: i64,
    ) -> Result<Sandbox, BuildError> {
        let (app, reporter) = (&self.app, self.reporter);
        let (layout, store) = (places.layout, places.store);
        self.copy_badgers(layout)?;
        let (mut base, mut stack) = badger_stack::stack(&self.badgers)?;
        let mut env = build_env(app, &base.config, info, epoch);
        // Private: what a build leaves there (setuid files too) is no other user's to run.
        let app_cache = super::cache_mounts::app_cache_dir(places.cache_root, &app.name);
        let apps = places.cache_root.join("apps");
        // Overlay's scratch beside it, so the cache can be mounted as an overlay that keeps
        // its host path out of the sandbox's mountinfo.
        let work = apps.join(format!(".work-{}", app.name));
        for dir in [&apps, &app_cache, &work] {
            crate::store::cache::private_dir(dir).map_err(UnpackError::from)?;
        }
        let mut mounts = vec![BindMount {
            source: app_cache,
            target: PathBuf::from("/solum/cache"),
            read_only: false,
            work: Some(work),
        }];
        let below = stack.layers.len();
        self.add_dependency_layers(places, &mut env, &mounts, &mut base, &mut stack)?;
        let workspace = stack_workspace(layout, &stack, store, self.request.privilege, reporter)?;
        workspace.place_app_source(places.source, stack.layers.len() > below)?;
        let inputs = build_inputs::stage(
            &self.request.inputs,
            app,
            &workspace,
            self.request.network_host,
            reporter,
        )?;
        merge_env(&mut env, &inputs.env);
        mounts.extend(inputs.mounts.iter().cloned());
        Ok(Sandbox {
            workspace,
            base,
            env,
            mounts,
            _inputs: inputs,
        })
    }

    /// Each badger's build command, in order, then the app's `build_cmd`, in the writable
    /// layer.
    fn run_build_commands(&self, sandbox: &Sandbox) -> Result<BuildRun, BuildError> {
        let (app, reporter) = (&self.app, self.reporter);
        let mut ran = BuildRun::default();
        for badger in &self.badgers {
            reporter.stage(
                State::Building,
                &format!("{} on {}", app.name, badger.reference),
            );
            self.run_build_step(sandbox, &badger.build_command(), &mut ran)?
                .map_or(Ok(()), |(how, tail)| {
                    Err(BuildError::BuildFailed {
                        badger: badger.reference.clone(),
                        how,
                        tail,
                    })
                })?;
        }
        // The app's own build step, after the badgers', in the same sandbox settings.
        if let Some(command) = &app.workflow_config.build_cmd {
            reporter.stage(
                State::Building,
                &format!("{} build_cmd: {command}", app.name),
            );
            self.run_build_step(sandbox, command, &mut ran)?
                .map_or(Ok(()), |(how, tail)| {
                    Err(BuildError::AppBuildFailed {
                        command: command.clone(),
                        how,
                        tail,
                    })
                })?;
        }
        Ok(ran)
    }

    /// One build step (`command` through the shell, in the writable layer): `None` when it
    /// exited 0, else how it ended and its last lines. What it left besides files goes to
    /// `ran`.
    fn run_build_step(
        &self,
        sandbox: &Sandbox,
        command: &str,
        ran: &mut BuildRun,
    ) -> Result<Option<(String, Vec<String>)>, BuildError> {
        let step = sandbox.step(
            State::Building,
            sandbox.workspace.build_root(),
            command,
            self.request,
        );
        let result = run_step(step, self.cancel, self.reporter)?;
        if let Some(how) = failure(result.outcome.termination)? {
            return Ok(Some((how, self.redacted(result.tail))));
        }
        ran.created_mount_points
            .extend(result.outcome.created_mount_points);
        ran.id_map = Some(result.outcome.id_map);
        Ok(None)
    }

    /// A failed step's last lines without secret values: they end up in the error.
    fn redacted(&self, tail: Vec<String>) -> Vec<String> {
        redactor(self.request).redact_lines(tail)
    }

    /// The gate: `test_cmd` on a throwaway layer above the build's, so nothing the tests
    /// write reaches the DU.
    fn run_tests(&self, sandbox: &Sandbox) -> Result<(), BuildError> {
        let reporter = self.reporter;
        let Some(test_cmd) = self.app.workflow_config.tests() else {
            return Ok(());
        };
        reporter.stage(State::UnitTesting, test_cmd);
        let step = sandbox.step(
            State::UnitTesting,
            sandbox.workspace.throwaway_root()?,
            test_cmd,
            self.request,
        );
        let result = run_step(step, self.cancel, reporter)?;
        self.tests_passed(test_cmd, result)
    }

    /// `Ok` when the test step `test_cmd` that gave `result` exited 0.
    fn tests_passed(&self, test_cmd: &str, result: StepResult) -> Result<(), BuildError> {
        match failure(result.outcome.termination)? {
            None => Ok(()),
            Some(how) => Err(BuildError::TestsFailed {
                command: test_cmd.to_string(),
                how,
                tail: self.redacted(result.tail),
            }),
        }
    }

    /// The start check (see [`super::start_check`]): the run command's program must be in
    /// what the build made. An app without `run_cmd` runs the badger's own command.
    fn check_run_command(&self, sandbox: &Sandbox, ran: &mut BuildRun) -> Result<(), BuildError> {
        let Some(run_cmd) = &self.app.workflow_config.run_cmd else {
            return Ok(());
        };
        let check = StartCheck {
            run_cmd,
            rootfs: sandbox.workspace.build_root(),
            base_env: sandbox.base.config.env(),
            run_env: env_entries(&self.app.run_environment()),
            workdir: WORKDIR,
            // As the DU's user: what it may execute is what counts.
            user: du_user(self.app.user.as_deref(), sandbox.base.config.user())
                .and_then(|user| numeric_user(&user))
                .unwrap_or((0, 0)),
        };
        let created =
            start_check::check(check, self.cancel, self.reporter)?.ok_or(BuildError::Cancelled)?;
        ran.created_mount_points.extend(created);
        Ok(())
    }

    /// The writable layer as one new layer over the badgers', with config, DU manifest and
    /// annotations: committed to the store, not yet named.
    fn commit_du(
        &self,
        layout: &Layout,
        layer: NewLayer<'_>,
        info: &SourceInfo,
        epoch: i64,
        key: &Digest,
    ) -> Result<(DuManifest, Committed), BuildError> {
        let (app, badgers, request) = (&self.app, &self.badgers, self.request);
        let user = du_user(app.user.as_deref(), layer.base.config.user());
        let mut env = env_entries(&app.run_environment());
        if user.as_deref() == Some("0:0") {
            // The badger's HOME is its own user's (`/home/app`): root's is /root.
            merge_env(&mut env, &["HOME=/root".to_string()]);
        }
        let mut du = DuManifest::new(&DuInputs {
            app,
            badgers: badgers
                .iter()
                .map(|b| BadgerUsed {
                    name: b.name(),
                    version: b.version(),
                    digest: b.digest().to_string(),
                })
                .collect(),
            badger_environment: badgers
                .iter()
                .flat_map(super::badger_stack::Badger::environment)
                .collect(),
            default_command: layer.base.config.command(),
            revision: info.revision.clone(),
            // The app's name, not the --tag: the name the DU is stored under must not change
            // its digest. The template takes the real reference as its `image` parameter.
            image: &app.name,
            tests_passed: true,
        })?;
        if let Some(user) = &user {
            du.runtime.user.clone_from(user);
        }
        let annotations = annotations(&du, &badgers[0], info, app, epoch, key)?;
        let committed = commit(
            layout,
            Commit {
                base: layer.base,
                root: layer.root,
                privilege: request.privilege,
                changes: layer.changes,
                compression: request.compression,
                epoch,
                env,
                cmd: Some(du.runtime.command.clone()),
                working_dir: Some(WORKDIR.to_string()),
                user: app.user.as_ref().and(user),
                exposed_ports: app
                    .ports
                    .iter()
                    .map(|p| format!("{}/{}", p.port, p.protocol.as_str()))
                    .collect(),
                created_by: format!(
                    "solum-build build {} on {}",
                    app.name,
                    badgers
                        .iter()
                        .map(|b| format!("{}@{}", b.reference, b.digest()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                comment: info
                    .revision
                    .as_ref()
                    .map(|r| format!("source revision {r}")),
                annotations,
                subordinate_ids: layer.subordinate_ids,
            },
        )?;
        Ok((du, committed))
    }
}

/// Where the build and test commands run: the badgers' stacked filesystem with the source
/// at `/app` of a fresh writable layer, their environment, and the app's cache mount.
struct Sandbox {
    workspace: Workspace,
    base: Base,
    env: Vec<String>,
    mounts: Vec<BindMount>,
    /// The secrets and certificates the mounts show, removed with the sandbox.
    _inputs: build_inputs::Staged,
}

impl Sandbox {
    /// A step of `state` running `command` (through the shell) in `rootfs`.
    fn step(&self, state: State, rootfs: RootFs, command: &str, request: &BuildRequest) -> Step {
        Step {
            stage: state,
            rootfs,
            command: shell(command),
            env: self.env.clone(),
            cwd: PathBuf::from(WORKDIR),
            mounts: self.mounts.clone(),
            user: (0, 0),
            network_host: request.network_host,
            timeout: request.timeout,
        }
    }
}

/// Where a build reads and writes: the store, its private cache folder, the fetched source.
struct Places<'a> {
    layout: &'a Layout,
    store: &'a Path,
    cache_root: &'a Path,
    source: &'a Path,
}

/// The DU's one new layer: `changes` read from `root`, over `base`.
struct NewLayer<'a> {
    base: &'a Base,
    root: &'a Path,
    changes: Vec<crate::layer::Change>,
    subordinate_ids: Option<crate::layer::SubordinateIds>,
}

/// What the build commands left besides files: the mount points the sandbox created (kept
/// out of the diff) and the id mapping they ran under (for the layer's ownership).
#[derive(Default)]
struct BuildRun {
    created_mount_points: Vec<PathBuf>,
    id_map: Option<runtime::IdMapKind>,
}

/// A build's workspace on `stack`, unpacked once into the store's rootfs cache (the
/// overlay lowers, a tree per layer, or the flattened tree copied where overlay is
/// unavailable).
pub(super) fn stack_workspace(
    layout: &Layout,
    stack: &LayerStack,
    store: &Path,
    privilege: Privilege,
    reporter: &dyn Reporter,
) -> Result<Workspace, BuildError> {
    let overlay = overlay_available();
    let trees = super::stacked::stacked_lowers(
        layout,
        stack,
        &rootfs_cache_dir(store),
        privilege,
        overlay,
        reporter,
    )?;
    // Held for the build's life: marks the trees used (for `gc --cache-max`) and keeps them.
    let (lowers, holds) = trees.into_parts();
    let mut workspace = Workspace::new(
        &super::workspace::scratch_parent(store),
        lowers,
        overlay,
        privilege,
    )?;
    workspace.keep_held(holds);
    Ok(workspace)
}

/// `None` on success; otherwise how the step ended, or `Cancelled`.
pub(super) fn failure(termination: Termination) -> Result<Option<String>, BuildError> {
    Ok(match termination {
        Termination::Exited(0) => None,
        Termination::Exited(code) => Some(format!("exited with {code}")),
        Termination::Signaled(signal) => Some(format!("was killed by signal {signal}")),
        Termination::TimedOut => Some("ran past the timeout and was killed".to_string()),
        Termination::Cancelled => return Err(BuildError::Cancelled),
    })
}

fn annotations(
    du: &DuManifest,
    base: &Badger,
    info: &SourceInfo,
    app: &AppFile,
    epoch: i64,
    key: &Digest,
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut annotations = BTreeMap::new();
    annotations.insert(DU_ANNOTATION.to_string(), du.to_json()?);
    annotations.insert(BUILD_KEY_ANNOTATION.to_string(), key.to_string());
    let oci = |name: &str| format!("org.opencontainers.image.{name}");
    annotations.insert(oci("created"), super::timestamp(Some(epoch)));
    annotations.insert(oci("title"), app.name.clone());
    // The source as the app file (or --source) wrote it, not the absolute folder it was
    // found in: two checkouts of the same app give the same DU.
    let source = app
        .source
        .repository
        .as_deref()
        .or(app.source.artifact.as_deref())
        .map_or_else(|| info.repository.clone(), source::redact_url);
    annotations.insert(oci("source"), source);
    if let Some(revision) = &info.revision {
        annotations.insert(oci("revision"), revision.clone());
    }
    annotations.insert(oci("base.name"), base.reference.clone());
    annotations.insert(oci("base.digest"), base.digest().to_string());
    Ok(annotations)
}
