//! The dependency step of a build: a badger that declares `dependencies` in its manifest
//! gets its script (`/solum/bin/deps.sh`) run as root in `/app` on a tree that holds only
//! the inputs it names (the source's `requirements.txt`, `wheelhouse/`, …), with the build's
//! environment and network. What the script changes becomes one layer of its own between
//! the badgers' layers and the app's, minus the input files (the app layer brings the whole
//! source). A rebuild whose inputs did not change reuses that layer by digest and runs only
//! the app's steps; a push then sends only the app layer.
//!
//! In order, per badger with `dependencies` (a later badger's step stands on the earlier
//! ones' layers):
//! 1. the inputs the source has are copied into a staging folder, each reached from the
//!    source root through no symlink (`openat2`, `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`):
//!    the source is hostile; none there skips the step;
//! 2. each input is digested (type, mode, contents; a folder by `source::tree_digest`);
//!    the cache key is those digests with the layers below, the badger, the environment,
//!    the network mode, the compression and the epoch (not root or rootless, nor the
//!    isolation level: they change how the step is contained, not what it makes);
//! 3. a record of the key whose layer blob is still in the store (`gc` may have taken it:
//!    an unnamed layer is kept only while a build holds the store's lease) is reused;
//! 4. else the step runs in a workspace of its own and its changes are written as a layer,
//!    recorded under the key.
//!
//! The layer's mtimes are clamped to [`dependency_epoch`], not to the build's epoch (the
//! commit's time, new at every commit): the layer must depend on its key alone, or a store
//! that reused it would hold a different DU than a fresh one.

use super::badger_stack::Badger;
use super::build::{stack_workspace, BuildRequest};
use super::build_inputs::{self, BuildInputError};
use super::commit::{write_layer, Base, CommitError};
use super::redaction::{self, RedactionError};
use super::unpack::LayerStack;
use super::workspace::{run_step, Step, WorkspaceError};
use crate::error_class::{Classify, ErrorClass};
use crate::image::config::merge_env;
use crate::image::config::HistoryEntry;
use crate::image::digest::HashingWriter;
use crate::image::media::{oci_layer_type, LayerCompression};
use crate::image::{canonical_json, Digest};
use crate::io_at::IoAt;
use crate::layer::{Change, WriteOptions};
use crate::manifest::badger_steps::{Dependencies, DEPENDENCIES_PATH};
use crate::manifest::du::WORKDIR;
use crate::manifest::AppFile;
use crate::report::{Reporter, State};
use crate::store::Layout;
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use oci_spec::image::{Descriptor, MediaType};
use runtime::{BindMount, CancelHandle};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Set in the app step's environment when a badger of the build declares a dependency
/// step (run, reused or skipped for want of inputs): its `build.sh` then does not run the
/// script again.
pub const DONE_VARIABLE: &str = "SOLUM_DEPENDENCIES_DONE";

/// The mtime clamp of a dependency layer when the build was given no `SOURCE_DATE_EPOCH`:
/// 2024-01-01T00:00:00Z, the base images' epoch.
pub const DEFAULT_DEPENDENCY_EPOCH: i64 = 1_704_067_200;

/// A cache record or input list is far smaller than this (64 inputs, one digest each); a
/// larger file is not one this module wrote, and is not read whole.
pub(super) const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// Version of the cache key's document: a new one when what the layer holds changes.
/// 2: an input the source lacks and the step creates stays in the layer.
/// 3: root or rootless left the key.
const KEY_VERSION: u32 = 3;

/// Why a dependency step did not give its layer.
#[derive(Debug, thiserror::Error)]
pub enum DependencyError {
    #[error("the dependency step ({DEPENDENCIES_PATH}) of badger {badger} {how}{}", super::build_error::tail_text(.tail))]
    Failed {
        badger: String,
        how: String,
        tail: Vec<String>,
    },
    #[error("the dependency step was cancelled")]
    Cancelled,
    /// Two badgers of one stack declare a dependency step. Their scripts share the one
    /// path [`DEPENDENCIES_PATH`], where the upper badger's file hides the lower's, so the
    /// lower's step would run the upper's script: refused rather than run wrong.
    #[error("badgers {lower} and {upper} both declare `dependencies:`, but their scripts share {DEPENDENCIES_PATH}, where {upper}'s hides {lower}'s; keep the step in one of them (remove `dependencies:` from the other's badger.yaml)")]
    Stacked { lower: String, upper: String },
    #[error("cannot copy the dependency input {input} into the step's tree")]
    Stage {
        input: String,
        #[source]
        source: crate::layer::LayerError,
    },
    /// The step's workspace could not be made (unpacking the layers below, say).
    #[error(transparent)]
    Prepare(Box<super::build_error::BuildError>),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Io(#[from] IoAt),
    /// The build-time inputs (secrets, CA certificates) could not be staged for the step.
    #[error(transparent)]
    Inputs(#[from] BuildInputError),
    /// The step left a secret's value in its layer.
    #[error(transparent)]
    Redaction(#[from] RedactionError),
}

impl Classify for DependencyError {
    fn class(&self) -> ErrorClass {
        match self {
            DependencyError::Cancelled => ErrorClass::Interrupted,
            DependencyError::Stacked { .. } => ErrorClass::Input,
            DependencyError::Stage { source, .. } => source.class(),
            DependencyError::Prepare(inner) => inner.class(),
            DependencyError::Workspace(inner) => inner.class(),
            DependencyError::Commit(inner) => inner.class(),
            DependencyError::Inputs(inner) => inner.class(),
            DependencyError::Redaction(inner) => inner.class(),
            DependencyError::Failed { .. } | DependencyError::Io(_) => ErrorClass::Failure,
        }
    }
}

/// The mtime clamp of dependency layers: the build's explicit `SOURCE_DATE_EPOCH`, else
/// [`DEFAULT_DEPENDENCY_EPOCH`]; never the commit's time.
pub fn dependency_epoch(explicit: Option<i64>) -> i64 {
    explicit.unwrap_or(DEFAULT_DEPENDENCY_EPOCH)
}

/// Everything the dependency steps of one build read.
pub struct DependencyContext<'a> {
    pub layout: &'a Layout,
    pub store: &'a Path,
    /// The store's private cache folder (records go to `dependencies/` in it).
    pub cache_root: &'a Path,
    /// The fetched source (hostile content).
    pub source: &'a Path,
    pub app_name: &'a str,
    /// The app file (its `build_environment` is staged for the step like for the build).
    pub app: &'a AppFile,
    /// The step's environment (see [`step_env`]).
    pub env: Vec<String>,
    pub mounts: Vec<BindMount>,
    /// Network, timeout, cache use, compression, privilege and explicit epoch.
    pub request: &'a BuildRequest,
    /// Reaches the registry cache (`request.registry_cache`), where layers are kept too.
    pub registry: Option<&'a dyn crate::transport::RegistryTransport>,
    pub cancel: &'a CancelHandle,
    pub reporter: &'a dyn Reporter,
}

impl DependencyContext<'_> {
    fn epoch(&self) -> i64 {
        dependency_epoch(self.request.epoch)
    }
}

/// The build's environment for the dependency step: without `SOLUM_SOURCE_REVISION`
/// (new at every commit, it would change the key) and with the dependency epoch as
/// `SOURCE_DATE_EPOCH`.
pub fn step_env(build_env: &[String], explicit_epoch: Option<i64>) -> Vec<String> {
    let mut env: Vec<String> = build_env
        .iter()
        .filter(|entry| {
            !entry.starts_with("SOLUM_SOURCE_REVISION=") && !entry.starts_with("SOURCE_DATE_EPOCH=")
        })
        .cloned()
        .collect();
    env.push(format!(
        "SOURCE_DATE_EPOCH={}",
        dependency_epoch(explicit_epoch)
    ));
    env
}

/// One badger whose manifest declares a dependency step.
pub struct DeclaringBadger<'a> {
    pub reference: &'a str,
    pub name: String,
    pub digest: &'a Digest,
    pub dependencies: &'a Dependencies,
}

/// The badgers of a build that declare a dependency step, in order.
pub fn declaring(badgers: &[Badger]) -> Vec<DeclaringBadger<'_>> {
    badgers
        .iter()
        .filter_map(|badger| {
            let dependencies = badger.manifest.as_ref()?.dependencies.as_ref()?;
            Some(DeclaringBadger {
                reference: &badger.reference,
                name: badger.name(),
                digest: badger.digest(),
                dependencies,
            })
        })
        .collect()
}

/// What the cache keeps per key: the layer, and the history line it had.
#[derive(Serialize, Deserialize)]
pub(super) struct LayerRecord {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub media_type: String,
    pub created_by: String,
}

/// Runs (or reuses) the dependency step of each of `badgers`, in order, putting each layer
/// on `base` and `stack`.
pub fn add_dependency_layers(
    context: &DependencyContext<'_>,
    badgers: &[DeclaringBadger<'_>],
    base: &mut Base,
    stack: &mut LayerStack,
) -> Result<(), DependencyError> {
    one_step_per_stack(badgers)?;
    for badger in badgers {
        if let Some(record) = dependency_layer(context, badger, stack)? {
            push_layer(base, stack, &record, context.epoch())?;
        }
    }
    Ok(())
}

/// Refuses a stack in which more than one badger declares a dependency step (see
/// [`DependencyError::Stacked`]); `badgers` are in stack order, lowest first.
pub fn one_step_per_stack(badgers: &[DeclaringBadger<'_>]) -> Result<(), DependencyError> {
    match badgers {
        [lower, upper, ..] => Err(DependencyError::Stacked {
            lower: lower.reference.to_string(),
            upper: upper.reference.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The layer of one badger's step: reused, or made now; `None` when the source holds none
/// of its inputs.
fn dependency_layer(
    context: &DependencyContext<'_>,
    badger: &DeclaringBadger<'_>,
    stack: &LayerStack,
) -> Result<Option<LayerRecord>, DependencyError> {
    let reporter = context.reporter;
    let staging = tempfile::Builder::new()
        .prefix(".dependencies-")
        .tempdir_in(context.layout.temp_dir().map_err(CommitError::from)?)
        .map_err(IoAt::at(context.store, "create a staging folder in"))?;
    let staged = staging.path().join("app");
    std::fs::create_dir(&staged).map_err(IoAt::at(&staged, "create"))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
        .map_err(IoAt::at(&staged, "chmod"))?;
    let inputs = stage_inputs(context, &badger.dependencies.inputs, &staged)?;
    if inputs.values().all(Option::is_none) {
        reporter.status(
            "dependencies:",
            &format!(
                "skipped (the source has none of {})",
                badger.dependencies.inputs.join(", ")
            ),
        );
        return Ok(None);
    }
    let key = cache_key(context, badger, stack, &inputs);
    let records = context.cache_root.join("dependencies");
    let record_path = records.join(key.hex());
    let last_path = records
        .join("last")
        .join(Digest::of_bytes(format!("{}\0{}", context.app_name, badger.name).as_bytes()).hex());
    let last: Option<LastStep> = read_json(&last_path);
    let this_step = LastStep {
        key: key.hex().to_string(),
        inputs: inputs.clone(),
    };
    // The store's record, else one from the registry cache (its blobs then pulled); in
    // place neither is of use (below), so nothing is pulled for it.
    let in_place = context.request.isolation == runtime::Isolation::None;
    let recorded: Option<LayerRecord> = if in_place {
        None
    } else {
        read_json(&record_path).or_else(|| super::dependency_cache::reuse(context, &key))
    };
    let reason = match recorded {
        _ if context.request.no_cache => "--no-cache".to_string(),
        // In place, the container itself must hold what the step installs.
        _ if in_place => "--isolation none".to_string(),
        Some(record) => match record_fits(context.layout, &record, context.request.compression) {
            Ok(digest) => {
                reporter.status(
                    "dependencies:",
                    &format!("reused {} (inputs unchanged)", digest.short()),
                );
                write_json(&last_path, &this_step);
                return Ok(Some(record));
            }
            Err(why) => why.to_string(),
        },
        None => why_not_cached(last.as_ref(), &this_step),
    };
    reporter.status("dependencies:", &format!("installing ({reason})"));
    // Only what the source has is the app layer's to bring: an input the step creates
    // (a `vendor/` composer fills, a lockfile npm writes) stays in the dependency layer.
    let present: Vec<String> = inputs
        .iter()
        .filter(|(_, digest)| digest.is_some())
        .map(|(input, _)| input.clone())
        .collect();
    let record = run_dependency_step(context, badger, stack, staging.path(), &present)?;
    super::dependency_cache::store(context, &key, &record);
    write_json(&record_path, &record);
    write_json(&last_path, &this_step);
    Ok(Some(record))
}

/// The layer digest of `record` when the store holds that blob as the record describes it:
/// a regular file of the recorded size, of the media type this build writes (the
/// compression is part of the key), with a well-formed diff_id. The record says what the
/// manifest will say of the blob; a size or type that does not match it would give a DU
/// whose manifest lies (the diff_id is checked against the content when the layer is
/// unpacked). Else why it cannot be reused.
fn record_fits(
    layout: &Layout,
    record: &LayerRecord,
    compression: LayerCompression,
) -> Result<Digest, &'static str> {
    let gone = "its layer is no longer in the store";
    let digest: Digest = record.digest.parse().map_err(|_| gone)?;
    let blob = std::fs::symlink_metadata(layout.blob_path(&digest)).map_err(|_| gone)?;
    if !blob.is_file()
        || blob.len() != record.size
        || record.media_type != oci_layer_type(compression)
        || record.diff_id.parse::<Digest>().is_err()
    {
        return Err("its record does not match the layer in the store");
    }
    Ok(digest)
}

/// What an app's last dependency step on a badger used (`dependencies/last/`), for the
/// reason the next one cannot reuse its layer.
#[derive(Serialize, Deserialize)]
struct LastStep {
    /// The step's cache key (hex).
    key: String,
    /// Each input's digest (`None`: the source did not have it).
    inputs: BTreeMap<String, Option<String>>,
}

/// Why no recorded layer fits `now`: the same key as last time (its record went with the
/// layer, to `gc`), the inputs that changed since this app's last dependency step on this
/// badger, else what else the key holds.
fn why_not_cached(last: Option<&LastStep>, now: &LastStep) -> String {
    let Some(last) = last else {
        return "first install".to_string();
    };
    if last.key == now.key {
        return "its layer is no longer in the store".to_string();
    }
    let changed: Vec<&str> = now
        .inputs
        .iter()
        .filter(|(name, digest)| last.inputs.get(*name) != Some(digest))
        .map(|(name, _)| name.as_str())
        .collect();
    if changed.is_empty() {
        "the badger, the environment or the build's options changed".to_string()
    } else {
        format!("{} changed", changed.join(", "))
    }
}

/// The cache key of one step: everything its layer's bytes depend on.
fn cache_key(
    context: &DependencyContext<'_>,
    badger: &DeclaringBadger<'_>,
    stack: &LayerStack,
    inputs: &BTreeMap<String, Option<String>>,
) -> Digest {
    let mut document = json!({
        "key_version": KEY_VERSION,
        "layers_below": stack.layers.iter().map(|l| l.digest().to_string()).collect::<Vec<_>>(),
        "badger": badger.digest.to_string(),
        "inputs": inputs,
        "env": context.env,
        "network_host": context.request.network_host,
        "compression": format!("{:?}", context.request.compression),
        "epoch": context.epoch(),
    });
    // The secrets' names, as the build key has them (never their values).
    if let (Some(names), Some(fields)) =
        (context.request.inputs.key_part(), document.as_object_mut())
    {
        fields.insert("secrets".to_string(), json!(names));
    }
    Digest::of_bytes(&canonical_json(&document))
}

/// Copies the inputs the source has into `staged` (the step's `/app`), each with its
/// digest; `None` for an input the source lacks. An input reached through a symlink on the
/// way is left out with a warning: a link may point anywhere on the host.
fn stage_inputs(
    context: &DependencyContext<'_>,
    inputs: &[String],
    staged: &Path,
) -> Result<BTreeMap<String, Option<String>>, DependencyError> {
    let root = nix::fcntl::open(
        context.source,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| IoAt::new(context.source, "open", e.into()))?;
    let mut digests = BTreeMap::new();
    for input in inputs {
        let target = staged.join(input);
        let digest = match open_beneath(&root, input, OFlag::O_PATH) {
            Ok(fd) => Some(stage_one(context, &root, input, &fd, &target)?),
            Err(Errno::ENOENT) => None,
            Err(Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR) => {
                context.reporter.warning(&format!(
                    "dependency input {input} is reached through a symlink: left out"
                ));
                None
            }
            Err(e) => return Err(IoAt::new(context.source.join(input), "open", e.into()).into()),
        };
        digests.insert(input.clone(), digest);
    }
    Ok(digests)
}

/// `path` below `root`, itself not followed if a symlink, through no symlink on the way.
fn open_beneath(root: &OwnedFd, path: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    openat2(root, path, how)
}

/// Copies one input (a file, a folder or a symlink, as it is) to `target` and returns its
/// digest.
fn stage_one(
    context: &DependencyContext<'_>,
    root: &OwnedFd,
    input: &str,
    fd: &OwnedFd,
    target: &Path,
) -> Result<String, DependencyError> {
    let at = |action| IoAt::at(target, action);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(IoAt::at(parent, "create"))?;
    }
    let stat = fstat(fd).map_err(|e| at("stat")(e.into()))?;
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    let mode = stat.st_mode & 0o7777;
    if kind == SFlag::S_IFLNK {
        let link = nix::fcntl::readlinkat(fd, "").map_err(|e| at("read the symlink")(e.into()))?;
        std::os::unix::fs::symlink(&link, target).map_err(at("create the symlink"))?;
        return Ok(format!("link:{}", hex::encode(link.as_bytes())));
    }
    if kind == SFlag::S_IFDIR {
        // Checked just above to lie beneath the source root through no symlink; the
        // fetched tree is the build's own scratch, which nothing changes meanwhile, and
        // the copy follows no symlink inside it.
        crate::layer::copy_tree(
            &context.source.join(input),
            target,
            context.request.privilege,
        )
        .map_err(|source| DependencyError::Stage {
            input: input.to_string(),
            source,
        })?;
        let digest = crate::source::tree_digest(target)
            .map_err(|e| at("digest")(std::io::Error::other(e.to_string())))?;
        return Ok(format!("dir:{mode:o}:{digest}"));
    }
    if kind != SFlag::S_IFREG {
        context.reporter.warning(&format!(
            "dependency input {input} is neither a file, a folder nor a symlink: left out"
        ));
        return Ok("other".to_string());
    }
    // Read through a descriptor opened the same confined way, and streamed: the file may
    // be as large as the source may be, far more than memory holds.
    let file = open_beneath(root, input, OFlag::O_RDONLY)
        .map_err(|e| IoAt::new(context.source.join(input), "open", e.into()))?;
    // Truncated if there (an input inside a folder input staged before it), never a link.
    let copy = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
        .map_err(at("create"))?;
    let mut writer = HashingWriter::new(copy);
    std::io::copy(&mut std::fs::File::from(file), &mut writer)
        .map_err(IoAt::at(&context.source.join(input), "copy"))?;
    let (digest, _, _) = writer.finish();
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode)).map_err(at("chmod"))?;
    Ok(format!("file:{mode:o}:{digest}"))
}

/// Runs the step on `stack` with the staged inputs at `/app` and writes its changes (the
/// inputs the source has left out) as a layer.
fn run_dependency_step(
    context: &DependencyContext<'_>,
    badger: &DeclaringBadger<'_>,
    stack: &LayerStack,
    staging: &Path,
    present_inputs: &[String],
) -> Result<LayerRecord, DependencyError> {
    if context.request.isolation == runtime::Isolation::None {
        return run_dependency_step_in_place(context, badger, staging, present_inputs);
    }
    let workspace = stack_workspace(
        context.layout,
        stack,
        context.store,
        context.request.privilege,
        context.reporter,
    )
    .map_err(|e| DependencyError::Prepare(Box::new(e)))?;
    workspace.place_app_source(&staging.join("app"), false)?;
    // The build-time inputs, as the build steps get them: build environment, secrets, CA
    // certificates, the host's proxies with `--network host`.
    let inputs = build_inputs::stage(
        &context.request.inputs,
        context.app,
        &workspace,
        context.request.network_host,
        context.reporter,
    )?;
    let mut env = context.env.clone();
    merge_env(&mut env, &inputs.env);
    let mut mounts = context.mounts.clone();
    mounts.extend(inputs.mounts.iter().cloned());
    context.reporter.stage(
        State::Building,
        &format!("{} dependencies on {}", context.app_name, badger.reference),
    );
    let step = Step {
        stage: State::Building,
        rootfs: workspace.build_root(),
        command: vec![DEPENDENCIES_PATH.to_string()],
        env,
        cwd: PathBuf::from(WORKDIR),
        mounts,
        user: (0, 0),
        network_host: context.request.network_host,
        timeout: context.request.timeout,
    };
    let result = run_step(step, context.cancel, context.reporter)?;
    step_succeeded(context, badger, result.outcome.termination, result.tail)?;
    let secrets = &context.request.inputs.secrets;
    redaction::check_layer(&workspace, &result.outcome.created_mount_points, secrets)?;
    let changes = workspace.changes(&result.outcome.created_mount_points)?;
    let ids = super::workspace::subordinate_ids(&result.outcome.id_map);
    let root = workspace.writable_root();
    write_step_layer(context, badger, root, changes, ids, present_inputs)
}

/// The step at `--isolation none`: run in the container's own filesystem, its changes
/// found by snapshots (see `build::in_place`). No secret reaches such a build.
fn run_dependency_step_in_place(
    context: &DependencyContext<'_>,
    badger: &DeclaringBadger<'_>,
    staging: &Path,
    present_inputs: &[String],
) -> Result<LayerRecord, DependencyError> {
    context.reporter.stage(
        State::Building,
        &format!("{} dependencies on {}", context.app_name, badger.reference),
    );
    let step = Step {
        stage: State::Building,
        rootfs: runtime::RootFs::Dir(PathBuf::from("/")),
        command: vec![DEPENDENCIES_PATH.to_string()],
        env: context.env.clone(),
        cwd: PathBuf::from(WORKDIR),
        mounts: Vec::new(),
        user: (0, 0),
        network_host: context.request.network_host,
        timeout: context.request.timeout,
    };
    let (result, changes) = super::build::dependency_step_in_place(
        &staging.join("app"),
        step,
        context.store,
        context.request.privilege,
        context.cancel,
        context.reporter,
    )
    .map_err(|e| DependencyError::Prepare(Box::new(e)))?;
    step_succeeded(context, badger, result.outcome.termination, result.tail)?;
    let root = Path::new("/");
    write_step_layer(context, badger, root, changes, None, present_inputs)
}

/// `Ok` when the step exited 0; else why it failed, its last lines masked.
fn step_succeeded(
    context: &DependencyContext<'_>,
    badger: &DeclaringBadger<'_>,
    termination: runtime::Termination,
    tail: Vec<String>,
) -> Result<(), DependencyError> {
    let how = super::build::failure(termination).map_err(|_| DependencyError::Cancelled)?;
    if let Some(how) = how {
        return Err(DependencyError::Failed {
            badger: badger.reference.to_string(),
            how,
            // Masked as the build steps' are: secret values and the host's proxy passwords.
            tail: super::build::redactor(context.request).redact_lines(tail),
        });
    }
    Ok(())
}

/// The step's `changes` (read from `root`), the inputs the source has left out, written as
/// its layer; the record the cache keeps of it.
fn write_step_layer(
    context: &DependencyContext<'_>,
    badger: &DeclaringBadger<'_>,
    root: &Path,
    mut changes: Vec<Change>,
    subordinate_ids: Option<crate::layer::SubordinateIds>,
    present_inputs: &[String],
) -> Result<LayerRecord, DependencyError> {
    changes.retain(|change| !is_input(change, present_inputs));
    let options = WriteOptions {
        compression: context.request.compression,
        epoch: Some(context.epoch()),
        rootless: context.request.privilege.is_rootless(),
        subordinate_ids,
    };
    let digests = write_layer(context.layout, root, changes, &options)?;
    Ok(LayerRecord {
        digest: digests.digest.to_string(),
        diff_id: digests.diff_id.to_string(),
        size: digests.size,
        media_type: digests.media_type.to_string(),
        created_by: format!(
            "solum-build dependencies ({}) on {}@{}",
            badger.dependencies.inputs.join(", "),
            badger.reference,
            badger.digest
        ),
    })
}

/// Whether `change` is one of the inputs the source has (or inside one): the app layer
/// brings those.
fn is_input(change: &Change, inputs: &[String]) -> bool {
    let path = match change {
        Change::Add(p) | Change::Whiteout(p) | Change::Opaque(p) => p,
    };
    let path = path.strip_prefix("/").unwrap_or(path.as_path());
    let Ok(inside_app) = path.strip_prefix(WORKDIR.trim_start_matches('/')) else {
        return false;
    };
    inputs
        .iter()
        .any(|input| inside_app.starts_with(Path::new(input)))
}

/// Puts the recorded layer on top of the base (with its history line) and the stack.
fn push_layer(
    base: &mut Base,
    stack: &mut LayerStack,
    record: &LayerRecord,
    epoch: i64,
) -> Result<(), DependencyError> {
    let invalid = |what: &str| {
        IoAt::new(
            Path::new("dependencies"),
            "read the cache record in",
            std::io::Error::other(format!("malformed {what}")),
        )
    };
    let digest: Digest = record.digest.parse().map_err(|_| invalid("digest"))?;
    let descriptor = Descriptor::new(
        MediaType::from(record.media_type.as_str()),
        record.size,
        oci_spec::image::Digest::try_from(digest.to_string()).map_err(|_| invalid("digest"))?,
    );
    base.layers.push(descriptor.clone());
    base.diff_ids.push(record.diff_id.clone());
    base.config.push_history(&HistoryEntry {
        created: &super::timestamp(Some(epoch)),
        created_by: &record.created_by,
        comment: None,
    });
    stack.layers.push(descriptor);
    stack.diff_ids.push(record.diff_id.clone());
    Ok(())
}

/// A cache file, if it is there, well-formed and at most [`MAX_RECORD_BYTES`] (a broken
/// one only costs a rebuild).
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let mut text = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut text)
        .ok()?;
    if text.len() as u64 > MAX_RECORD_BYTES {
        return None;
    }
    serde_json::from_slice(&text).ok()
}

/// Best effort, written whole or not at all: a missing record only costs a rebuild.
fn write_json<T: Serialize>(path: &Path, value: &T) {
    let Some(parent) = path.parent() else { return };
    let _ = std::fs::create_dir_all(parent);
    if let (Ok(mut temp), Ok(bytes)) = (
        tempfile::NamedTempFile::new_in(parent),
        serde_json::to_vec(value),
    ) {
        use std::io::Write;
        if temp.write_all(&bytes).is_ok() {
            let _ = temp.persist(path);
        }
    }
}

#[cfg(test)]
#[path = "dependency_layer_tests.rs"]
mod tests;
