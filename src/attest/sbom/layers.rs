//! The image's final filesystem as the catalogers see it: each layer's tar stream, bottom
//! first, read in memory from the verified store blob. Whiteouts and replaced paths hide
//! what lower layers found; what is left at the end is the SBOM's package list. Nothing here
//! writes to the host filesystem or follows a link: image paths are only map keys.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher as _, RandomState};
use std::io::{self, BufReader, Read};

use oci_spec::image::Descriptor;

use super::layer_records::{LayerRecord, Op, RecordCache};
use super::{
    catalog_go, catalog_java, catalog_lang, catalog_os, Ecosystem, Limits, Package, SbomError,
    Skipped,
};
use crate::image::{media, Digest};
use crate::layer::decompressing_reader;
use crate::store::{Layout, ResolvedImage};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// Regular files smaller than this are not looked at as ELF binaries.
const SMALLEST_ELF: u64 = 1024;

/// What one candidate file contributed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) enum Content {
    /// Packages the file says are installed.
    Packages(Vec<Package>),
    /// Packages a lockfile names: listed only when nothing installed names them too.
    Locked(Vec<Package>),
    /// An `os-release` file, kept whole (it is small and bounded).
    OsRelease(catalog_os::OsRelease),
}

/// A candidate file that is live at the current layer.
#[derive(Clone, Debug)]
struct Finding {
    /// Index of the layer it came from, bottom = 0.
    layer_index: usize,
    content: Content,
}

/// What the whole image holds.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    pub packages: Vec<Package>,
    pub os: Option<catalog_os::OsRelease>,
    pub skipped: Skipped,
}

/// The kinds of file a path alone says are worth reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Candidate {
    DpkgStatus,
    DpkgStatusPart,
    OsRelease,
    PythonMetadata,
    NpmPackage,
    NpmLock,
    Gemspec,
    ComposerInstalled,
    Jar,
}

/// Reads every layer of `image` and returns the packages of its final filesystem. With a
/// record cache (the store's), a layer read once (a badger's, under every DU built on it)
/// is replayed from its record instead of decompressed again.
pub(super) fn catalog_image(
    layout: &Layout,
    image: &ResolvedImage,
    limits: &Limits,
    cache: Option<&RecordCache>,
) -> Result<Catalog, SbomError> {
    let mut filesystem = Filesystem::default();
    for (index, descriptor) in image.layers().iter().enumerate() {
        let digest =
            Digest::try_from(descriptor.digest()).map_err(|_| SbomError::LayerDescriptor {
                digest: descriptor.digest().to_string(),
            })?;
        let record = match cache.and_then(|cache| cache.load(&digest, limits)) {
            Some(record) => record,
            None => {
                let record = read_layer(layout, descriptor, &digest, limits)?;
                if let Some(cache) = cache {
                    cache.save(&digest, limits, &record);
                }
                record
            }
        };
        filesystem.apply(&record, &digest.to_string(), index, limits);
    }
    Ok(filesystem.finish(limits))
}

/// One layer's record, from its verified blob.
fn read_layer(
    layout: &Layout,
    descriptor: &Descriptor,
    digest: &Digest,
    limits: &Limits,
) -> Result<LayerRecord, SbomError> {
    let declared = media::layer_compression(descriptor.media_type().as_ref());
    let mut blob = layout
        .open_blob(digest, Some(descriptor.size()))
        .map_err(|source| SbomError::Blob {
            digest: digest.clone(),
            source,
        })?;
    let tar_error = |source| SbomError::Tar {
        digest: digest.clone(),
        source,
    };
    {
        let (_, stream) =
            decompressing_reader(BufReader::with_capacity(1 << 20, &mut blob), declared).map_err(
                |source| SbomError::Decompress {
                    digest: digest.clone(),
                    source,
                },
            )?;
        let record = read_tar(stream, limits).map_err(tar_error)?;
        // The tar reader stops at the end-of-archive blocks; the digest check needs the
        // rest, and a record is kept only of a blob that matched its digest.
        blob.finish().map_err(|source| SbomError::Blob {
            digest: digest.clone(),
            source,
        })?;
        Ok(record)
    }
}

/// One layer's tar stream as a record of what it does to the filesystem below it.
/// Exposed to the tests, which hand in plain tars.
pub(super) fn read_tar(stream: impl Read, limits: &Limits) -> io::Result<LayerRecord> {
    let mut record = LayerRecord::default();
    let mut steps = Steps::default();
    // Packages this layer may still record: no more than the whole SBOM may list, so a
    // layer of many package files costs memory in proportion to the bound, not its size.
    let mut room = limits.packages;
    let mut archive = tar::Archive::new(crate::layer::TarGuard::new(stream));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(path) = entry
            .path()
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
        else {
            record.skipped.malformed += 1;
            continue;
        };
        let Some(path) = clean_path(&path, limits, &mut record.skipped) else {
            continue;
        };
        let entry_type = entry.header().entry_type();
        let (parent, file_name) = match path.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", path.as_str()),
        };
        // Whiteouts hide lower layers' paths; in the layer that carries them they hide
        // nothing, whatever the order of its entries.
        if file_name == OPAQUE_WHITEOUT {
            steps.push(Op::HideBelow(parent.to_string()));
            continue;
        }
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            steps.push(Op::Hide(join(parent, hidden)));
            continue;
        }
        // Any entry replaces a lower one at its path; anything but a directory also
        // replaces a lower directory with all it held.
        if entry_type.is_dir() {
            steps.push(Op::RemoveExact(path));
            continue;
        }
        steps.push(Op::Hide(path.clone()));
        if !(entry_type.is_file() || entry_type == tar::EntryType::Continuous) {
            continue;
        }
        let size = entry.header().size()?;
        let candidate = classify(&path);
        // One more than the room, so that a file cut at the bound is seen and counted.
        let within_room = Limits {
            packages: room.saturating_add(1),
            ..*limits
        };
        let content = match candidate {
            Some(candidate) if size > bound(candidate, limits) => {
                record.skipped.too_large += 1;
                continue;
            }
            Some(candidate) => read_candidate(candidate, size, &mut entry, &within_room)?,
            None if size >= SMALLEST_ELF => {
                catalog_go::scan(&mut entry, limits.elf_scan_bytes)?.map(Content::Packages)
            }
            None => None,
        }
        .map(|content| fit_in_room(content, &mut room, &mut record.skipped));
        match content {
            Some(content) => steps.push(Op::Found(path, content)),
            None => {
                if candidate.is_some() {
                    record.skipped.malformed += 1;
                }
            }
        }
    }
    // Drain the end-of-archive blocks and any padding, so the decompressor's own checks
    // (gzip's CRC, zstd's frame end) run.
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    record.ops = steps.ops;
    Ok(record)
}

/// A layer's steps, each kind of step at each path once. A step acts only on what lower
/// layers put there, so where it sits among its layer's steps does not matter and a
/// repeat adds nothing; a later candidate file at a path replaces the earlier one, as it
/// does in the filesystem. Without this a tar naming one path a million times held a
/// million steps.
#[derive(Default)]
struct Steps {
    ops: Vec<Op>,
    /// The hash of a step's kind and path → where it is in `ops`.
    at: HashMap<u64, usize>,
    hasher: RandomState,
}

impl Steps {
    fn push(&mut self, op: Op) {
        let key = self
            .hasher
            .hash_one((std::mem::discriminant(&op), step_path(&op)));
        match self.at.get(&key) {
            Some(&index) if same_step(&self.ops[index], &op) => self.ops[index] = op,
            // Two paths of one hash: both kept.
            Some(_) => self.ops.push(op),
            None => {
                self.at.insert(key, self.ops.len());
                self.ops.push(op);
            }
        }
    }
}

fn step_path(op: &Op) -> &str {
    match op {
        Op::HideBelow(path) | Op::Hide(path) | Op::RemoveExact(path) | Op::Found(path, _) => path,
    }
}

fn same_step(held: &Op, new: &Op) -> bool {
    std::mem::discriminant(held) == std::mem::discriminant(new) && step_path(held) == step_path(new)
}

/// `content` with at most `room` packages (the rest dropped, the file counted as over a
/// bound); `room` shrinks by what was kept.
fn fit_in_room(content: Content, room: &mut usize, skipped: &mut Skipped) -> Content {
    let mut fit = |mut packages: Vec<Package>| {
        if packages.len() > *room {
            packages.truncate(*room);
            skipped.too_large += 1;
        }
        *room -= packages.len();
        packages
    };
    match content {
        Content::Packages(packages) => Content::Packages(fit(packages)),
        Content::Locked(packages) => Content::Locked(fit(packages)),
        other @ Content::OsRelease(_) => other,
    }
}

/// The most bytes a candidate file may have.
fn bound(candidate: Candidate, limits: &Limits) -> u64 {
    match candidate {
        Candidate::DpkgStatus => limits.dpkg_status_bytes,
        Candidate::Jar => limits.jar_bytes,
        _ => limits.metadata_bytes,
    }
}

/// Reads one candidate file (its size already checked against its bound); `None` when it
/// is malformed.
fn read_candidate(
    candidate: Candidate,
    size: u64,
    entry: &mut impl Read,
    limits: &Limits,
) -> io::Result<Option<Content>> {
    let mut bytes = Vec::with_capacity(size as usize);
    // The header's size was checked; `take` holds even a stream that says otherwise.
    entry
        .take(bound(candidate, limits))
        .read_to_end(&mut bytes)?;
    let packages = match candidate {
        Candidate::OsRelease => {
            return Ok(Some(Content::OsRelease(catalog_os::os_release(&bytes))));
        }
        Candidate::NpmLock => {
            return Ok(catalog_lang::npm_lock(&bytes, limits).map(Content::Locked));
        }
        Candidate::DpkgStatus => catalog_os::dpkg_status(&bytes, false, limits.packages),
        Candidate::DpkgStatusPart => catalog_os::dpkg_status(&bytes, true, limits.packages),
        Candidate::PythonMetadata => catalog_lang::python_metadata(&bytes),
        Candidate::NpmPackage => catalog_lang::npm_package(&bytes),
        Candidate::Gemspec => catalog_lang::gemspec(&bytes),
        Candidate::ComposerInstalled => catalog_lang::composer_installed(&bytes, limits),
        Candidate::Jar => catalog_java::jar(&bytes, limits),
    };
    Ok(packages.map(Content::Packages))
}

/// Which cataloger a path belongs to, if any.
fn classify(path: &str) -> Option<Candidate> {
    let components: Vec<&str> = path.split('/').collect();
    let name = *components.last()?;
    let parent = components.len().checked_sub(2).map(|i| components[i]);
    let grandparent = components.len().checked_sub(3).map(|i| components[i]);
    let great_grandparent = components.len().checked_sub(4).map(|i| components[i]);
    let is_site = |c: Option<&str>| matches!(c, Some("site-packages" | "dist-packages"));
    match name {
        _ if path == "var/lib/dpkg/status" => Some(Candidate::DpkgStatus),
        _ if parent == Some("status.d")
            && path.starts_with("var/lib/dpkg/status.d/")
            && components.len() == 5
            && !name.ends_with(".md5sums") =>
        {
            Some(Candidate::DpkgStatusPart)
        }
        _ if path == "etc/os-release" || path == "usr/lib/os-release" => Some(Candidate::OsRelease),
        "METADATA" if parent.is_some_and(|p| p.ends_with(".dist-info")) && is_site(grandparent) => {
            Some(Candidate::PythonMetadata)
        }
        "PKG-INFO" if parent.is_some_and(|p| p.ends_with(".egg-info")) && is_site(grandparent) => {
            Some(Candidate::PythonMetadata)
        }
        // Debian's Python packages install their egg-info as one PKG-INFO-shaped file.
        _ if name.ends_with(".egg-info") && is_site(parent) => Some(Candidate::PythonMetadata),
        "package.json"
            if grandparent == Some("node_modules")
                || (great_grandparent == Some("node_modules")
                    && grandparent.is_some_and(|g| g.starts_with('@'))) =>
        {
            Some(Candidate::NpmPackage)
        }
        "package-lock.json" if !components.contains(&"node_modules") => Some(Candidate::NpmLock),
        _ if name.ends_with(".gemspec") && parent == Some("specifications") => {
            Some(Candidate::Gemspec)
        }
        "installed.json" if parent == Some("composer") && grandparent == Some("vendor") => {
            Some(Candidate::ComposerInstalled)
        }
        _ if is_java_archive(name) => Some(Candidate::Jar),
        _ => None,
    }
}

/// `.jar`, `.war` or `.ear`, in any case.
fn is_java_archive(name: &str) -> bool {
    std::path::Path::new(name)
        .extension()
        .is_some_and(|extension| {
            ["jar", "war", "ear"]
                .iter()
                .any(|java| extension.eq_ignore_ascii_case(java))
        })
}

/// The path without `./`, leading or doubled slashes; `None` (counted) for `..` or a path
/// deeper than the bound.
fn clean_path(path: &str, limits: &Limits, skipped: &mut Skipped) -> Option<String> {
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                skipped.malformed += 1;
                return None;
            }
            _ => components.push(component),
        }
    }
    if components.is_empty() {
        return None;
    }
    if components.len() > limits.path_depth {
        skipped.too_large += 1;
        return None;
    }
    Some(components.join("/"))
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// The candidate files live at the current layer, by path.
#[derive(Debug, Default)]
pub(super) struct Filesystem {
    live: BTreeMap<String, Finding>,
    skipped: Skipped,
    /// Packages admitted so far, against `Limits::packages`.
    admitted: usize,
}

impl Filesystem {
    /// Lays one layer's record (the layer `index`, digest `layer`) over what is below it.
    pub(super) fn apply(
        &mut self,
        record: &LayerRecord,
        layer: &str,
        index: usize,
        limits: &Limits,
    ) {
        self.skipped.too_large += record.skipped.too_large;
        self.skipped.malformed += record.skipped.malformed;
        for op in &record.ops {
            match op {
                Op::HideBelow(path) => self.hide_below(path, index),
                Op::Hide(path) => self.hide(path, index),
                Op::RemoveExact(path) => self.remove_exact(path, index),
                Op::Found(path, content) => {
                    let content = self.admit(content.clone(), layer, path, limits);
                    self.live.insert(
                        path.clone(),
                        Finding {
                            layer_index: index,
                            content,
                        },
                    );
                }
            }
        }
    }

    /// Forgets `path` and everything under it that a lower layer than `index` put there.
    fn hide(&mut self, path: &str, index: usize) {
        self.remove_exact(path, index);
        self.hide_below(path, index);
    }

    /// Forgets what lower layers put under the folder `path` (`""` is the root).
    fn hide_below(&mut self, path: &str, index: usize) {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let hidden: Vec<String> = self
            .live
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .filter(|(_, finding)| finding.layer_index < index)
            .map(|(key, _)| key.clone())
            .collect();
        for key in hidden {
            self.live.remove(&key);
        }
    }

    fn remove_exact(&mut self, path: &str, index: usize) {
        if self
            .live
            .get(path)
            .is_some_and(|finding| finding.layer_index < index)
        {
            self.live.remove(path);
        }
    }

    /// Stamps packages with their layer and file, drops those with an empty, oversized or
    /// control-character name or version, and holds the total under `Limits::packages`.
    fn admit(&mut self, content: Content, layer: &str, path: &str, limits: &Limits) -> Content {
        let mut stamp = |packages: Vec<Package>| -> Vec<Package> {
            let mut kept = Vec::with_capacity(packages.len());
            for mut package in packages {
                if !acceptable(&package, limits) {
                    self.skipped.malformed += 1;
                    continue;
                }
                if self.admitted >= limits.packages {
                    self.skipped.too_large += 1;
                    continue;
                }
                self.admitted += 1;
                package.layer = layer.to_string();
                package.path = path.to_string();
                kept.push(package);
            }
            kept
        };
        match content {
            Content::Packages(packages) => Content::Packages(stamp(packages)),
            Content::Locked(packages) => Content::Locked(stamp(packages)),
            other @ Content::OsRelease(_) => other,
        }
    }

    /// The packages of the final filesystem, each once: the same package found in several
    /// files is kept from the highest layer (then the last path); lockfile entries only
    /// where no installed package has the same name and version.
    fn finish(self, limits: &Limits) -> Catalog {
        type Key = (Ecosystem, Option<String>, String, String, Option<String>);
        let key = |p: &Package| -> Key {
            (
                p.ecosystem,
                p.namespace.clone(),
                p.name.clone(),
                p.version.clone(),
                p.arch.clone(),
            )
        };
        let mut installed: BTreeMap<Key, (usize, Package)> = BTreeMap::new();
        let mut locked: Vec<(usize, Package)> = Vec::new();
        let mut os_release = BTreeMap::new();
        for (path, finding) in self.live {
            match finding.content {
                Content::Packages(packages) => {
                    for package in packages {
                        let slot = installed.entry(key(&package));
                        match slot {
                            std::collections::btree_map::Entry::Occupied(mut held) => {
                                if finding.layer_index >= held.get().0 {
                                    held.insert((finding.layer_index, package));
                                }
                            }
                            std::collections::btree_map::Entry::Vacant(vacant) => {
                                vacant.insert((finding.layer_index, package));
                            }
                        }
                    }
                }
                Content::Locked(packages) => {
                    locked.extend(packages.into_iter().map(|p| (finding.layer_index, p)));
                }
                Content::OsRelease(release) => {
                    os_release.insert(path, release);
                }
            }
        }
        for (index, package) in locked {
            let key = key(&package);
            installed.entry(key).or_insert((index, package));
        }
        let mut packages: Vec<Package> = installed.into_values().map(|(_, p)| p).collect();
        packages.sort();
        packages.truncate(limits.packages);
        // `/etc/os-release` wins; it is often a link to `/usr/lib/os-release`, which a link
        // entry leaves in place (a link is never followed here).
        let os = os_release
            .remove("etc/os-release")
            .or_else(|| os_release.remove("usr/lib/os-release"));
        Catalog {
            packages,
            os,
            skipped: self.skipped,
        }
    }
}

fn acceptable(package: &Package, limits: &Limits) -> bool {
    let fits = |text: &str, bound: usize| {
        !text.is_empty() && text.len() <= bound && !text.chars().any(char::is_control)
    };
    fits(&package.name, limits.name_bytes)
        && fits(&package.version, limits.version_bytes)
        && package
            .namespace
            .as_deref()
            .is_none_or(|ns| fits(ns, limits.name_bytes))
        && package
            .arch
            .as_deref()
            .is_none_or(|arch| fits(arch, limits.name_bytes))
}

#[cfg(test)]
pub(super) fn catalog_tars(layers: &[Vec<u8>], limits: &Limits) -> Catalog {
    let mut filesystem = Filesystem::default();
    for (index, tar) in layers.iter().enumerate() {
        let layer = format!("layer{index}");
        let record = read_tar(&tar[..], limits).expect("test tar reads");
        filesystem.apply(&record, &layer, index, limits);
    }
    filesystem.finish(limits)
}
