//! Badger images of the store. `badger build DIR` makes one from `badgers/NAME/`: its
//! `badger.yaml`, the `build.sh` installed at the manifest's build path (default
//! `/solum/bin/build.sh`), and an optional `setup` script run once in the sandbox (with the
//! host network only when the manifest says `network: host`). The result is the `from`
//! image plus one layer, with the badger's environment in its config and the manifest as
//! the `org.solum.badger.manifest` annotation. Also `badger list` and `badger search`, over
//! the store's badger images.

use super::badger_files::read_badger_file;
use super::badger_stack::{self, BadgerError};
use super::build::{stack_workspace, BuildError};
use super::commit::{commit, Commit};
use super::confined;
use super::workspace::{run_step, Step};
use crate::io_at::IoAt;
use crate::layer::LayerCompression;
use crate::manifest::badger::Network;
use crate::manifest::badger_steps::DEPENDENCIES_PATH;
use crate::manifest::{BadgerManifest, BADGER_ANNOTATION};
use crate::privilege::Privilege;
use crate::report::Reporter;
use crate::report::State;
use crate::store::{Layout, ResolvedImage};
use crate::transport::{copy_blobs, open_store, RegistryTransport, TransportError};
use runtime::{CancelHandle, Termination};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Badger images are named `badgers/NAME` unless `--tag` says otherwise.
pub const BADGER_IMAGE_PREFIX: &str = "badgers/";

/// Where the setup script is put for its one run; it is removed before the diff.
const SETUP_PATH: &str = "/solum/.setup";

/// What to build.
#[derive(Clone, Debug)]
pub struct BadgerRequest {
    /// The badger folder (holding `badger.yaml`).
    pub dir: PathBuf,
    /// The store name (default `badgers/NAME`).
    pub tag: Option<String>,
    pub compression: LayerCompression,
    pub epoch: Option<i64>,
    pub timeout: Option<std::time::Duration>,
    /// Decided at the edge: how layers are unpacked, copied and written.
    pub privilege: Privilege,
}

/// A built badger: its store name and manifest digest.
pub struct BuiltBadger {
    pub tag: String,
    pub manifest_digest: crate::image::Digest,
}

/// Builds the badger in `request.dir` into the store.
pub fn build_badger(
    request: &BadgerRequest,
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    cancel: &CancelHandle,
    reporter: &dyn Reporter,
) -> Result<BuiltBadger, BuildError> {
    // Every file of the badger folder is read through the folder, never through a symlink.
    let origin = request.dir.join("badger.yaml");
    let text = read_badger_file(&request.dir, "badger.yaml")?.ok_or_else(|| {
        IoAt::at(&origin, "read")(std::io::Error::from(std::io::ErrorKind::NotFound))
    })?;
    let text = String::from_utf8(text).map_err(|_| {
        IoAt::at(&origin, "read")(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })?;
    let manifest = BadgerManifest::parse(&text, &origin.display().to_string())?;
    let tag = request
        .tag
        .clone()
        .unwrap_or_else(|| format!("{BADGER_IMAGE_PREFIX}{}", manifest.name));
    reporter.stage(
        State::Building,
        &format!("badger {} from {}", manifest.name, manifest.from),
    );
    let from = badger_stack::resolve(&manifest.from, store, registry, reporter)?;
    let layout = Layout::open_or_create(store)?;
    // Held until the name is written: `gc` waits rather than take the new blobs.
    let _lease = layout.lease()?;
    copy_blobs(&from.image.layout, &from.image.image, &layout, reporter).map_err(|source| {
        BuildError::CopyBadger {
            reference: from.reference.clone(),
            source: Box::new(source),
        }
    })?;
    let (base, stack) = badger_stack::stack(std::slice::from_ref(&from))?;
    let workspace = stack_workspace(&layout, &stack, store, request.privilege, reporter)?;
    let root = workspace.writable_root().to_path_buf();

    // The build command: `build.sh` beside badger.yaml, installed at the manifest's path.
    // Read from the badger folder through no symlink, written inside the image root only.
    if let Some(script) = read_badger_file(&request.dir, "build.sh")? {
        confined::install(&root, Path::new(&manifest.build), &script, 0o755)?;
    }
    // The dependency step's script, when the manifest declares one, at its fixed path.
    if let Some(dependencies) = &manifest.dependencies {
        let script = read_badger_file(&request.dir, &dependencies.script)?.ok_or_else(|| {
            IoAt::at(&request.dir.join(&dependencies.script), "read")(std::io::Error::from(
                std::io::ErrorKind::NotFound,
            ))
        })?;
        confined::install(&root, Path::new(DEPENDENCIES_PATH), &script, 0o755)?;
    }
    let mut created_mount_points = Vec::new();
    let mut id_map = None;
    if let Some(setup) = &manifest.setup {
        let script = read_badger_file(&request.dir, setup)?.ok_or_else(|| {
            IoAt::at(&request.dir.join(setup), "read")(std::io::Error::from(
                std::io::ErrorKind::NotFound,
            ))
        })?;
        confined::install(&root, Path::new(SETUP_PATH), &script, 0o755)?;
        let mut env = base.config.env();
        crate::image::config::merge_env(
            &mut env,
            &manifest
                .environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        );
        reporter.stage(State::Building, &format!("setup {setup}"));
        let result = run_step(
            Step {
                stage: State::Building,
                rootfs: workspace.build_root(),
                command: vec![SETUP_PATH.to_string()],
                env,
                cwd: PathBuf::from("/"),
                mounts: Vec::new(),
                user: (0, 0),
                network_host: manifest.network == Network::Host,
                timeout: request.timeout,
            },
            cancel,
            reporter,
        )?;
        let how = match result.outcome.termination {
            Termination::Exited(0) => None,
            Termination::Cancelled => return Err(BuildError::Cancelled),
            other => Some(format!("{other:?}")),
        };
        if let Some(how) = how {
            return Err(BuildError::BuildFailed {
                badger: format!("{} (setup)", manifest.name),
                how,
                tail: result.tail,
            });
        }
        // The setup ran in this tree: the removal follows no symlink it may have planted.
        confined::remove(&root, Path::new(SETUP_PATH))?;
        created_mount_points = result.outcome.created_mount_points;
        id_map = Some(result.outcome.id_map);
    }

    let changes = workspace.changes(&created_mount_points)?;
    let mut annotations = BTreeMap::new();
    annotations.insert(BADGER_ANNOTATION.to_string(), manifest.to_json()?);
    let oci = |name: &str| format!("org.opencontainers.image.{name}");
    annotations.insert(oci("title"), manifest.name.clone());
    annotations.insert(oci("version"), manifest.version.clone());
    annotations.insert(oci("base.name"), from.reference.clone());
    annotations.insert(oci("base.digest"), from.digest().to_string());
    let epoch = request.epoch.unwrap_or(0);
    annotations.insert(oci("created"), super::timestamp(Some(epoch)));
    let committed = commit(
        &layout,
        Commit {
            base: &base,
            root: &root,
            privilege: request.privilege,
            changes,
            compression: request.compression,
            epoch,
            env: manifest
                .environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            cmd: manifest
                .command
                .as_ref()
                .map(|command| vec!["/bin/sh".to_string(), "-c".to_string(), command.clone()]),
            working_dir: None,
            user: manifest
                .user
                .as_deref()
                .map(crate::manifest::du::canonical_user),
            exposed_ports: Vec::new(),
            created_by: format!("solum-build badger build {}", manifest.name),
            comment: manifest.description.clone(),
            annotations,
            subordinate_ids: id_map.as_ref().and_then(super::workspace::subordinate_ids),
        },
    )?;
    drop(workspace);
    layout.tag(&tag, &committed.descriptor)?;
    reporter.stage(
        State::Built,
        &format!("{tag} {}", committed.manifest_digest.short()),
    );
    Ok(BuiltBadger {
        tag,
        manifest_digest: committed.manifest_digest,
    })
}

/// A badger image of the store: its name, manifest and image.
pub struct StoredBadger {
    pub store_name: String,
    pub manifest: BadgerManifest,
    pub image: ResolvedImage,
}

/// Every image of the store that carries a badger manifest. An image whose manifest
/// annotation does not parse (a pulled image is anyone's) is left out, so that one bad
/// image does not stop every build that chooses its badger: [`list_badgers_and_unreadable`]
/// names them.
pub fn list_badgers(store: &Path) -> Result<Vec<StoredBadger>, BadgerError> {
    Ok(list_badgers_and_unreadable(store)?.0)
}

/// The store's badgers, and the images whose badger annotation is malformed (each with
/// why), for `badger list` to warn about.
pub fn list_badgers_and_unreadable(
    store: &Path,
) -> Result<(Vec<StoredBadger>, Vec<BadgerError>), BadgerError> {
    if !store.exists() {
        return Ok((Vec::new(), Vec::new()));
    }
    let open_error = |source: TransportError| BadgerError::Open {
        reference: store.display().to_string(),
        source: Box::new(source),
    };
    let layout = open_store(store).map_err(open_error)?;
    let names = layout
        .names()
        .map_err(|e| open_error(TransportError::Image(e)))?;
    let (mut found, mut unreadable) = (Vec::new(), Vec::new());
    for name in names {
        let Ok(image) = layout.resolve(Some(&name)) else {
            continue;
        };
        let annotation = image
            .manifest
            .annotations()
            .as_ref()
            .and_then(|a| a.get(BADGER_ANNOTATION).cloned());
        if let Some(json) = annotation {
            match BadgerManifest::from_annotation(&json) {
                Ok(manifest) => found.push(StoredBadger {
                    store_name: name,
                    manifest,
                    image,
                }),
                Err(source) => unreadable.push(BadgerError::Annotation {
                    reference: name,
                    source,
                }),
            }
        }
    }
    Ok((found, unreadable))
}
