//! Transports: every place an image can live is a *source* and a *sink* of one image model
//! (a manifest, its config and its layer blobs, kept byte for byte so digests survive).
//!
//! A source is opened as an OCI layout plus the resolved image: the store and `oci:` are
//! layouts already, an `oci-archive:` is extracted (strictly: only layout files) into a
//! temporary layout that lives as long as the [`OpenedImage`]. A sink receives the blobs
//! of an opened image: layouts copy them (skipping those present) and tag, an
//! `oci-archive:` is a layout tarred deterministically, a `docker-archive:` is what
//! `docker save` writes. Referrers of the image (SBOMs, provenance, signatures) travel
//! with it between layouts, archives and registries unless left out. Registries (`docker://`) are the `registry` module's business;
//! this module hands them over. Nothing here prints: progress goes to a [`Reporter`].

mod archive;
mod docker_archive;
mod layout_copy;

pub use layout_copy::{copy_blobs, copy_image, copy_referrers};

use crate::error_class::{error_chain, Classify, ErrorClass};
use crate::image::{Digest, ImageReference};
use crate::io_at::IoAt;
use crate::layer::LayerError;
use crate::report::Reporter;
use crate::store::{ImageError, Layout, LayoutError, ResolvedImage};
use std::path::{Path, PathBuf};

/// Why an image could not be read from or written to a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("the store {path} does not exist yet: import or pull an image first")]
    NoStore { path: PathBuf },
    #[error("{path} is not an OCI image layout (no oci-layout file)")]
    NotALayout { path: PathBuf },
    #[error("archive {path}: entry {entry:?} {reason}")]
    ArchiveEntry {
        path: PathBuf,
        entry: String,
        reason: &'static str,
    },
    #[error(transparent)]
    Io(#[from] IoAt),
    #[error("layer {digest} of {reference}")]
    Layer {
        reference: String,
        digest: Digest,
        #[source]
        source: LayerError,
    },
    #[error("layer {digest} of {reference} decompresses to {actual}, but the config's diff_id is {expected}")]
    DiffIdMismatch {
        reference: String,
        digest: Digest,
        expected: String,
        actual: Digest,
    },
    #[error("the config of {reference} lists {diff_ids} diff_ids for {layers} layers")]
    DiffIdCount {
        reference: String,
        diff_ids: usize,
        layers: usize,
    },
    #[error("{reference}: {transport} images can be written, not read")]
    WriteOnly {
        reference: String,
        transport: &'static str,
    },
    #[error("{reference}: registry transfer")]
    Registry {
        reference: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Classify for TransportError {
    fn class(&self) -> ErrorClass {
        match self {
            TransportError::Layout(inner) => inner.class(),
            TransportError::Image(inner) => inner.class(),
            TransportError::Layer { source, .. } => source.class(),
            TransportError::NoStore { .. }
            | TransportError::NotALayout { .. }
            | TransportError::ArchiveEntry { .. }
            | TransportError::DiffIdMismatch { .. }
            | TransportError::DiffIdCount { .. }
            | TransportError::WriteOnly { .. } => ErrorClass::Input,
            // A registry's error stays in the chain; the command line asks it there.
            TransportError::Io(_) | TransportError::Registry { .. } => ErrorClass::Failure,
        }
    }
}

/// Hands `docker://` references to the registry client. The transport layer does not
/// depend on the network code; the caller (the CLI) passes an implementation.
pub trait RegistryTransport: Sync {
    /// Pulls the image into `layout` and returns the manifest descriptor stored there.
    fn pull(
        &self,
        reference: &ImageReference,
        layout: &Layout,
        reporter: &dyn Reporter,
    ) -> Result<oci_spec::image::Descriptor, TransportError>;
    /// Pushes an image of `layout` and returns the manifest digest the registry holds.
    fn push(
        &self,
        layout: &Layout,
        image: &ResolvedImage,
        reference: &ImageReference,
        reporter: &dyn Reporter,
    ) -> Result<Digest, TransportError>;
    /// Pulls the referrers of `subject` (pulled already into `layout`) into `layout`;
    /// returns how many were stored.
    fn pull_referrers(
        &self,
        reference: &ImageReference,
        layout: &Layout,
        subject: &oci_spec::image::Descriptor,
        reporter: &dyn Reporter,
    ) -> Result<usize, TransportError>;
    /// Pushes the referrers of `image` (stored in `layout`) next to it; returns how many.
    fn push_referrers(
        &self,
        layout: &Layout,
        image: &ResolvedImage,
        reference: &ImageReference,
        reporter: &dyn Reporter,
    ) -> Result<usize, TransportError>;
    /// The manifest `reference` names, read whole (bounded) and checked against the
    /// reference's digest when it has one: its bytes and digest. No blob is fetched.
    fn manifest(&self, reference: &ImageReference) -> Result<(Vec<u8>, Digest), TransportError>;
}

/// An image opened from some transport: the layout that holds its blobs and the resolved
/// manifest. Temporary layouts (archives, registry pulls) are removed on drop.
pub struct OpenedImage {
    pub layout: Layout,
    pub image: ResolvedImage,
    pub reference: String,
    _temp: Option<crate::store::scratch::OwnedTempDir>,
}

/// Opens the store to read from it: it must exist. An empty folder is a new, empty store
/// (made into a layout here, as a writer would), not an error.
pub fn open_store(store: &Path) -> Result<Layout, TransportError> {
    if !store.exists() {
        return Err(TransportError::NoStore {
            path: store.to_path_buf(),
        });
    }
    let is_empty_folder = !store.join("oci-layout").exists()
        && std::fs::read_dir(store).is_ok_and(|mut entries| entries.next().is_none());
    if is_empty_folder {
        return Ok(Layout::open_or_create(store)?);
    }
    Ok(Layout::open(store)?)
}

/// Whether the referrers of an image travel with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Referrers {
    Carry,
    Leave,
}

/// Opens the image a reference names. `store` is the local store's folder; temporary
/// layouts go to the system temp dir (the store may be read-only for this user). The
/// referrers of a registry image are fetched too.
pub fn open_image(
    reference: &ImageReference,
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    reporter: &dyn Reporter,
) -> Result<OpenedImage, TransportError> {
    open_image_with(reference, store, registry, reporter, Referrers::Carry)
}

/// [`open_image`], fetching a registry image's referrers or not.
pub fn open_image_with(
    reference: &ImageReference,
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    reporter: &dyn Reporter,
    referrers: Referrers,
) -> Result<OpenedImage, TransportError> {
    let text = describe(reference);
    let (layout, name, temp) = match reference {
        ImageReference::Store { name } => (open_store(store)?, Some(name.clone()), None),
        ImageReference::Layout { path, name } => {
            if !path.join("oci-layout").is_file() {
                return Err(TransportError::NotALayout { path: path.clone() });
            }
            (Layout::open(path)?, name.clone(), None)
        }
        ImageReference::OciArchive { path, name } => {
            let temp = temp_dir("oci-archive")?;
            let layout = archive::extract_oci_archive(path, temp.path())?;
            (layout, name.clone(), Some(temp))
        }
        ImageReference::DockerArchive { .. } => {
            return Err(TransportError::WriteOnly {
                reference: text,
                transport: "docker-archive",
            })
        }
        ImageReference::Registry { .. } => {
            let temp = temp_dir("pull")?;
            let layout = Layout::open_or_create(temp.path())?;
            let registry = registry.ok_or_else(|| TransportError::Registry {
                reference: text.clone(),
                source: "no registry client is configured".into(),
            })?;
            let descriptor = registry.pull(reference, &layout, reporter)?;
            // The image is what was asked for; a registry that cannot list or serve its
            // referrers costs them, with a word, not the pull.
            if referrers == Referrers::Carry {
                if let Err(error) =
                    registry.pull_referrers(reference, &layout, &descriptor, reporter)
                {
                    reporter.warning(&format!(
                        "the referrers of {text} were not pulled: {}",
                        error_chain(&error)
                    ));
                }
            }
            let image = layout.resolve_descriptor(&descriptor)?;
            return Ok(OpenedImage {
                layout,
                image,
                reference: text,
                _temp: Some(temp),
            });
        }
    };
    let image = layout.resolve(name.as_deref())?;
    Ok(OpenedImage {
        layout,
        image,
        reference: text,
        _temp: temp,
    })
}

/// Writes an opened image, with its referrers, to a destination and returns the manifest
/// digest there.
pub fn write_image(
    source: &OpenedImage,
    destination: &ImageReference,
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    reporter: &dyn Reporter,
) -> Result<Digest, TransportError> {
    write_image_with(
        source,
        destination,
        store,
        registry,
        reporter,
        Referrers::Carry,
    )
}

/// [`write_image`], with the referrers or without. A `docker-archive:` has no place for
/// them.
pub fn write_image_with(
    source: &OpenedImage,
    destination: &ImageReference,
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    reporter: &dyn Reporter,
    referrers: Referrers,
) -> Result<Digest, TransportError> {
    match destination {
        ImageReference::Store { name } => {
            let layout = Layout::open_or_create(store)?;
            copy_with_referrers(source, &layout, Some(name), reporter, referrers)
        }
        ImageReference::Layout { path, name } => {
            let layout = Layout::open_or_create(path)?;
            copy_with_referrers(source, &layout, name.as_deref(), reporter, referrers)
        }
        ImageReference::OciArchive { path, name } => {
            archive::write_oci_archive(source, path, name.as_deref(), reporter, referrers)
        }
        ImageReference::DockerArchive { path, name } => {
            docker_archive::write_docker_archive(source, path, name.as_deref(), reporter)
        }
        ImageReference::Registry { .. } => {
            let registry = registry.ok_or_else(|| TransportError::Registry {
                reference: describe(destination),
                source: "no registry client is configured".into(),
            })?;
            if referrers == Referrers::Leave {
                return registry.push(&source.layout, &source.image, destination, reporter);
            }
            // The referrers go up beside the image, not after it: they are a few small
            // manifests and blobs whose round trips would otherwise add to the push (a
            // registry accepts a referrer before its subject; the distribution spec says
            // so, and docker-registry 2.8 keeps it as any manifest). The image's own error
            // wins when both fail.
            std::thread::scope(|scope| {
                let attached = scope.spawn(|| {
                    registry.push_referrers(&source.layout, &source.image, destination, reporter)
                });
                let pushed = registry.push(&source.layout, &source.image, destination, reporter);
                let attached = attached
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                let digest = pushed?;
                attached?;
                Ok(digest)
            })
        }
    }
}

/// Copies the image into a layout and names it, then (when carried) its referrers.
pub fn copy_with_referrers(
    source: &OpenedImage,
    destination: &Layout,
    name: Option<&str>,
    reporter: &dyn Reporter,
    referrers: Referrers,
) -> Result<Digest, TransportError> {
    let digest = copy_image(&source.layout, &source.image, destination, name, reporter)?;
    if referrers == Referrers::Carry {
        copy_referrers(&source.layout, &digest, destination, reporter)?;
    }
    Ok(digest)
}

/// A reference as the user would write it, for messages.
pub fn describe(reference: &ImageReference) -> String {
    let with_name = |prefix: &str, path: &Path, name: &Option<String>| match name {
        Some(name) => format!("{prefix}{}:{name}", path.display()),
        None => format!("{prefix}{}", path.display()),
    };
    match reference {
        ImageReference::Store { name } => name.clone(),
        ImageReference::Layout { path, name } => with_name("oci:", path, name),
        ImageReference::OciArchive { path, name } => with_name("oci-archive:", path, name),
        ImageReference::DockerArchive { path, name } => with_name("docker-archive:", path, name),
        ImageReference::Registry {
            registry,
            repository,
            tag,
            digest,
        } => {
            let mut text = format!("docker://{registry}/{repository}");
            if let Some(tag) = tag {
                text.push(':');
                text.push_str(tag);
            }
            if let Some(digest) = digest {
                text.push('@');
                text.push_str(digest);
            }
            text
        }
    }
}

/// A temp folder for a pull or an archive, owned by this process; the folders of such
/// runs that were killed are swept first (`store::scratch`).
fn temp_dir(purpose: &str) -> Result<crate::store::scratch::OwnedTempDir, TransportError> {
    let base = std::env::temp_dir();
    Ok(
        crate::store::scratch::OwnedTempDir::new(&base, &format!("solum-build-{purpose}-"))
            .map_err(IoAt::at(&base, "create a temp dir in"))?,
    )
}

#[cfg(test)]
mod tests;
