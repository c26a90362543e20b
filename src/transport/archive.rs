//! `oci-archive:`: a tar of an OCI image layout. Reading extracts only what a layout holds
//! (`oci-layout`, `index.json`, `blobs/<alg>/<hex>` regular files) into a fresh folder and
//! refuses links, devices, absolute paths and `..`, naming the entry: an archive is
//! untrusted input. Writing builds a layout in a temp folder and tars it in sorted order with
//! fixed owners, modes and mtimes, so the same image always gives the same archive bytes;
//! the archive appears at its path only when complete (temp file, then rename).

use super::{copy_with_referrers, OpenedImage, Referrers, TransportError};
use crate::image::Digest;
use crate::io_at::IoAt;
use crate::report::Reporter;
use crate::store::Layout;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Component, Path, PathBuf};

/// What an entry of a layout archive may be, by its normalized path.
enum LayoutEntry {
    Directory,
    File(PathBuf),
    /// Not part of a layout (e.g. a `repositories` file some tools add): skipped.
    Ignored,
}

fn classify(path: &Path) -> Result<Vec<String>, &'static str> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(part) => parts.push(
                part.to_str()
                    .ok_or("has a name that is not UTF-8")?
                    .to_string(),
            ),
            Component::ParentDir => return Err("has a '..' component"),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    Ok(parts)
}

fn layout_entry(parts: &[String]) -> LayoutEntry {
    let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let is_alg = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    match parts {
        [] => LayoutEntry::Directory,
        [name] if name == "blobs" => LayoutEntry::Directory,
        [name] if name == "oci-layout" || name == "index.json" => {
            LayoutEntry::File(PathBuf::from(name))
        }
        [blobs, alg] if blobs == "blobs" && is_alg(alg) => LayoutEntry::Directory,
        [blobs, alg, hex] if blobs == "blobs" && is_alg(alg) && is_hex(hex) => {
            LayoutEntry::File(["blobs", alg, hex].iter().collect())
        }
        _ => LayoutEntry::Ignored,
    }
}

/// Extracts the layout archive at `path` into the empty folder `dest` and opens it.
pub(super) fn extract_oci_archive(path: &Path, dest: &Path) -> Result<Layout, TransportError> {
    let file = File::open(path).map_err(IoAt::at(path, "open archive"))?;
    let mut archive = tar::Archive::new(crate::layer::TarGuard::new(BufReader::with_capacity(
        1 << 20,
        file,
    )));
    let entries = archive.entries().map_err(IoAt::at(path, "read archive"))?;
    for entry in entries {
        let mut entry = entry.map_err(IoAt::at(path, "read archive"))?;
        let entry_path = entry
            .path()
            .map_err(IoAt::at(path, "read an entry name of"))?
            .into_owned();
        let bad = |reason| TransportError::ArchiveEntry {
            path: path.to_path_buf(),
            entry: entry_path.display().to_string(),
            reason,
        };
        let parts = classify(&entry_path).map_err(bad)?;
        let kind = entry.header().entry_type();
        match layout_entry(&parts) {
            LayoutEntry::Ignored => {}
            LayoutEntry::Directory if kind.is_dir() => {}
            LayoutEntry::Directory => return Err(bad("should be a directory")),
            LayoutEntry::File(relative) => {
                if !kind.is_file() {
                    return Err(bad("is a link or special file where a layout has a file"));
                }
                let target = dest.join(&relative);
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(IoAt::at(parent, "create"))?;
                }
                // create_new: a second entry of the same name is refused, not merged.
                let mut out = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|_| bad("appears twice"))?;
                std::io::copy(&mut entry, &mut out).map_err(IoAt::at(path, "extract a blob of"))?;
            }
        }
    }
    if !dest.join("oci-layout").is_file() {
        return Err(TransportError::NotALayout {
            path: path.to_path_buf(),
        });
    }
    Ok(Layout::open(dest)?)
}

/// Writes `source` as an OCI layout archive at `path`, naming the image `name`.
pub(super) fn write_oci_archive(
    source: &OpenedImage,
    path: &Path,
    name: Option<&str>,
    reporter: &dyn Reporter,
    referrers: Referrers,
) -> Result<Digest, TransportError> {
    let parent = parent_dir(path);
    let staging = tempfile::Builder::new()
        .prefix(".solum-build-archive-")
        .tempdir_in(&parent)
        .map_err(IoAt::at(&parent, "create a temp dir in"))?;
    let layout = Layout::open_or_create(&staging.path().join("layout"))?;
    let digest = copy_with_referrers(source, &layout, name, reporter, referrers)?;

    let mut files = vec![PathBuf::from("oci-layout"), PathBuf::from("index.json")];
    let mut blobs: Vec<PathBuf> = fs::read_dir(layout.root().join("blobs/sha256"))
        .map_err(IoAt::at(layout.root(), "list blobs of"))?
        .filter_map(std::result::Result::ok)
        .map(|e| PathBuf::from("blobs/sha256").join(e.file_name()))
        .collect();
    blobs.sort();
    files.extend(blobs);

    let temp = tempfile::Builder::new()
        .prefix(".solum-build-archive-")
        .tempfile_in(&parent)
        .map_err(IoAt::at(&parent, "create a temp file in"))?;
    // The builder writes through its own handle, so the temp file can be moved on finish.
    let handle = temp
        .as_file()
        .try_clone()
        .map_err(IoAt::at(temp.path(), "reopen"))?;
    let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, handle));
    for dir in ["blobs", "blobs/sha256"] {
        let mut header = fixed_header(tar::EntryType::Directory, 0o755, 0);
        builder
            .append_data(&mut header, dir, std::io::empty())
            .map_err(IoAt::at(path, "write archive"))?;
    }
    for relative in &files {
        let full = layout.root().join(relative);
        let file = File::open(&full).map_err(IoAt::at(&full, "read"))?;
        let size = file.metadata().map_err(IoAt::at(&full, "stat"))?.len();
        let mut header = fixed_header(tar::EntryType::Regular, 0o644, size);
        builder
            .append_data(&mut header, relative, file)
            .map_err(IoAt::at(path, "write archive"))?;
    }
    finish_archive(builder, temp, path)?;
    Ok(digest)
}

/// Ends the tar stream, syncs the temp file and moves it to `path`: the archive appears
/// only when complete.
pub(super) fn finish_archive<W: std::io::Write>(
    builder: tar::Builder<W>,
    temp: tempfile::NamedTempFile,
    path: &Path,
) -> Result<(), TransportError> {
    let mut out = builder
        .into_inner()
        .map_err(IoAt::at(path, "write archive"))?;
    out.flush().map_err(IoAt::at(path, "write archive"))?;
    drop(out);
    temp.as_file()
        .sync_all()
        .map_err(IoAt::at(path, "sync archive"))?;
    temp.persist(path).map_err(|e| {
        TransportError::Io(IoAt::new(
            path.to_path_buf(),
            "move the finished archive to",
            e.error,
        ))
    })?;
    Ok(())
}

/// A tar header with owner 0:0, mtime 0 and the given mode: archives carry no trace of who
/// wrote them or when.
pub(super) fn fixed_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

/// The folder a file is written in (`.` for a bare file name).
pub(super) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
