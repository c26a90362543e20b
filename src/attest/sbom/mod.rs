//! The software bill of materials of an image: what is really in its final filesystem,
//! written as SPDX 2.3 JSON and CycloneDX 1.5 JSON.
//!
//! The layers are read bottom first as tar streams, in memory, straight from the verified
//! store blobs ([`layers`]); nothing is unpacked and no image path ever reaches the host
//! filesystem. Whiteouts (`.wh.NAME`, `.wh..wh..opq`) of a layer hide what lower layers put
//! there, so a package the build removed is absent. Each metadata file is handed to the
//! cataloger its path names (dpkg, Python, npm, Go binaries, jars, gems, composer) while its
//! entry streams by; what a cataloger finds is kept with the digest of the layer the file
//! last came from. Every read is bounded ([`Limits`]) and a malformed or oversized file is
//! skipped and counted ([`Skipped`]), never a failure of the whole SBOM. The DU itself (its
//! name, source, revision and badgers) comes from the image's own `org.solum.du.manifest`
//! annotation; an image without one (a base image) is described by its name alone.
//!
//! Output is deterministic: packages are sorted, the documents' time is the config's
//! `created`, and the SPDX document namespace and CycloneDX serial number are derived from
//! the manifest digest, so the same image gives the same bytes.
//!
//! Formats are written as JSON documents of our own ([`spdx`], [`cyclonedx`]) rather than
//! `cyclonedx-bom` 0.8 or `serde-spdx` 0.10: `cyclonedx-bom` brings fifteen direct
//! dependencies (regex, xml-rs, time, uuid, the `spdx` license database, fluent-uri, strum,
//! …) for the one JSON document we write, and `serde-spdx` generates its types at build time
//! from the schema (schemafy, syn, prettyplease) and builds them through derive_builder. The
//! documents we write use a few dozen fields; `serde_json`'s sorted maps keep their bytes
//! stable, and the integration test validates both with the SPDX project's own tools
//! and the CycloneDX library's strict schema validation.

mod catalog_go;
mod catalog_java;
mod catalog_lang;
mod catalog_os;
mod cyclonedx;
mod document;
mod layer_records;
mod layers;
mod purl;
mod spdx;
#[cfg(test)]
mod tests;

use crate::image::Digest;
use crate::manifest::du::DuManifest;
use crate::manifest::{ManifestError, DU_ANNOTATION};
use crate::store::{Layout, LayoutError, ResolvedImage};

pub use document::{Described, Sbom};
pub use layer_records::RecordCache;

/// The two documents of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sboms {
    /// SPDX 2.3 JSON.
    pub spdx: Vec<u8>,
    /// CycloneDX 1.5 JSON.
    pub cyclonedx: Vec<u8>,
    /// The packages found in the filesystem (badgers and the app not counted).
    pub packages: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("layer {digest}: the store could not give its blob")]
    Blob {
        digest: Digest,
        #[source]
        source: LayoutError,
    },
    #[error("layer {digest}: the layer's media type or digest is not one we read")]
    LayerDescriptor { digest: String },
    #[error("layer {digest}: could not decompress it")]
    Decompress {
        digest: Digest,
        #[source]
        source: crate::layer::LayerError,
    },
    #[error("layer {digest}: reading its tar stream failed")]
    Tar {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("the image's {DU_ANNOTATION} annotation is not a DU manifest")]
    DuManifest {
        #[source]
        source: ManifestError,
    },
    #[error("writing the {format} document failed")]
    Serialize {
        format: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// How much of a hostile image the SBOM reads. A file over its bound is skipped, counted.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A text metadata file (METADATA, package.json, a gemspec, …).
    pub metadata_bytes: u64,
    /// The dpkg status database, which holds every package of the system in one file.
    pub dpkg_status_bytes: u64,
    /// A jar, read whole to open it as a zip.
    pub jar_bytes: u64,
    /// Entries of a jar's central directory.
    pub zip_entries: usize,
    /// One `pom.properties` inside a jar, decompressed.
    pub zip_entry_bytes: u64,
    /// The bytes of one ELF file scanned for Go build info.
    pub elf_scan_bytes: u64,
    /// Packages in the whole SBOM.
    pub packages: usize,
    /// A package name, in bytes.
    pub name_bytes: usize,
    /// A version, in bytes.
    pub version_bytes: usize,
    /// Components of a path inside a layer.
    pub path_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            metadata_bytes: 4 << 20,
            dpkg_status_bytes: 64 << 20,
            jar_bytes: 256 << 20,
            zip_entries: 100_000,
            zip_entry_bytes: 64 << 10,
            elf_scan_bytes: 1 << 30,
            packages: 200_000,
            name_bytes: 256,
            version_bytes: 256,
            path_depth: 64,
        }
    }
}

/// Files the catalogers passed over, by reason; reported on stderr by the CLI.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    /// Over a size, depth or count bound.
    pub too_large: usize,
    /// Not parseable as what its path says it is.
    pub malformed: usize,
}

/// A package's ecosystem, in the order the documents list them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Ecosystem {
    Deb,
    Python,
    Npm,
    Go,
    Maven,
    Gem,
    Composer,
}

/// One package found in the filesystem.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
    /// Maven's group, npm's `@scope`, composer's vendor; `None` elsewhere.
    pub namespace: Option<String>,
    pub name: String,
    pub version: String,
    /// Debian's architecture.
    pub arch: Option<String>,
    /// The layer its metadata file last came from.
    pub layer: String,
    /// That file, inside the image.
    pub path: String,
}

impl Package {
    /// A package as a cataloger finds it; [`layers`] stamps its layer and file.
    pub(crate) fn new(
        ecosystem: Ecosystem,
        namespace: Option<&str>,
        name: &str,
        version: &str,
    ) -> Package {
        Package {
            ecosystem,
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            version: version.to_string(),
            arch: None,
            layer: String::new(),
            path: String::new(),
        }
    }
}

/// Generates both documents for `image`, reading its layers from `layout`.
pub fn generate(layout: &Layout, image: &ResolvedImage) -> Result<Sboms, SbomError> {
    generate_with(layout, image, &Limits::default(), None).map(|(sboms, _)| sboms)
}

/// [`generate`] with explicit bounds and, for a store, its cache of layer records (see
/// [`layer_records`]); also says what it skipped.
pub fn generate_with(
    layout: &Layout,
    image: &ResolvedImage,
    limits: &Limits,
    records: Option<&RecordCache>,
) -> Result<(Sboms, Skipped), SbomError> {
    let found = layers::catalog_image(layout, image, limits, records)?;
    let described = describe(image)?;
    let sbom = Sbom::new(described, found.packages, found.os);
    Ok((
        Sboms {
            spdx: spdx::document(&sbom)?,
            cyclonedx: cyclonedx::document(&sbom)?,
            packages: sbom.packages.len(),
        },
        found.skipped,
    ))
}

/// What the SBOM describes: the DU from its annotation, else the image by name.
fn describe(image: &ResolvedImage) -> Result<Described, SbomError> {
    let annotations = image.manifest.annotations().clone().unwrap_or_default();
    let du = annotations
        .get(DU_ANNOTATION)
        .map(|json| DuManifest::from_json(json))
        .transpose()
        .map_err(|source| SbomError::DuManifest { source })?;
    let created = image.config.created().clone();
    Ok(Described::new(
        image.name.as_deref(),
        &image.manifest_digest,
        created.as_deref(),
        du.as_ref(),
    ))
}
