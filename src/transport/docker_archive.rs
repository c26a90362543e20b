//! `docker-archive:`: the tarball `docker save` writes and `docker load` / `podman load`
//! read — `manifest.json` naming the config file, the repo tags and one uncompressed
//! `<diff_id>.tar` per layer. Layers are decompressed into a temp file first (a tar entry
//! needs its size up front), and each is checked against the config's `diff_id` on the way,
//! so a wrong layer never reaches the archive. Output only: reading docker archives is not
//! a need of this tool.

use super::archive::{finish_archive, fixed_header, parent_dir};
use super::{OpenedImage, TransportError};
use crate::image::{media, Digest, HashingWriter};
use crate::io_at::IoAt;
use crate::layer::decompressing_reader;
use crate::report::Reporter;
use crate::store::image::descriptor_digest;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

/// Writes `source` at `path`; `name` (`NAME[:TAG]`, default the image's own name) becomes
/// the repo tag, with `:latest` added when it has no tag.
pub(super) fn write_docker_archive(
    source: &OpenedImage,
    path: &Path,
    name: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<Digest, TransportError> {
    let image = &source.image;
    let diff_ids = image.config.rootfs().diff_ids();
    if diff_ids.len() != image.layers().len() {
        return Err(TransportError::DiffIdCount {
            reference: source.reference.clone(),
            diff_ids: diff_ids.len(),
            layers: image.layers().len(),
        });
    }
    let parent = parent_dir(path);
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
    let write_error = IoAt::at(path, "write archive");

    let config_name = format!("{}.json", image.config_digest.hex());
    let mut header = fixed_header(
        tar::EntryType::Regular,
        0o644,
        image.config_bytes.len() as u64,
    );
    builder
        .append_data(&mut header, &config_name, &image.config_bytes[..])
        .map_err(write_error)?;

    let mut layer_names = Vec::new();
    for (layer, diff_id) in image.layers().iter().zip(diff_ids) {
        let digest = descriptor_digest(&source.layout, layer)?;
        reporter.blob_start(&digest, Some(layer.size()));
        let (uncompressed, actual) = decompress_to_temp(source, &digest, layer, &parent)?;
        if actual.to_string() != *diff_id {
            return Err(TransportError::DiffIdMismatch {
                reference: source.reference.clone(),
                digest,
                expected: diff_id.clone(),
                actual,
            });
        }
        let layer_name = format!("{}.tar", actual.hex());
        // The same layer twice in one image is written once; manifest.json names it twice.
        if !layer_names.contains(&layer_name) {
            let size = uncompressed
                .as_file()
                .metadata()
                .map_err(IoAt::at(uncompressed.path(), "stat"))?
                .len();
            let mut header = fixed_header(tar::EntryType::Regular, 0o644, size);
            builder
                .append_data(&mut header, &layer_name, uncompressed.as_file())
                .map_err(IoAt::at(path, "write archive"))?;
        }
        reporter.blob_done(&digest, false);
        layer_names.push(layer_name);
    }

    let repo_tag = repo_tag(name.or(image.name.as_deref()));
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": repo_tag.into_iter().collect::<Vec<_>>(),
        "Layers": layer_names,
    }]);
    let manifest = serde_json::to_vec(&manifest).expect("JSON value serializes");
    let mut header = fixed_header(tar::EntryType::Regular, 0o644, manifest.len() as u64);
    builder
        .append_data(&mut header, "manifest.json", &manifest[..])
        .map_err(IoAt::at(path, "write archive"))?;
    finish_archive(builder, temp, path)?;
    Ok(image.manifest_digest.clone())
}

/// `NAME:TAG` for manifest.json, `:latest` added to a bare name.
fn repo_tag(name: Option<&str>) -> Option<String> {
    let name = name?;
    let has_tag = name
        .rsplit_once(':')
        .is_some_and(|(_, tag)| !tag.contains('/'));
    Some(if has_tag {
        name.to_string()
    } else {
        format!("{name}:latest")
    })
}

/// Decompresses a layer blob (verified as it is read) into a temp file; returns the file,
/// rewound, and the digest of the uncompressed bytes.
fn decompress_to_temp(
    source: &OpenedImage,
    digest: &Digest,
    layer: &oci_spec::image::Descriptor,
    dir: &Path,
) -> Result<(tempfile::NamedTempFile, Digest), TransportError> {
    let layer_error = |source_error| TransportError::Layer {
        reference: source.reference.clone(),
        digest: digest.clone(),
        source: source_error,
    };
    let compression = media::layer_compression(layer.media_type().as_ref());
    let blob = source.layout.open_blob(digest, Some(layer.size()))?;
    let (_, mut reader) = decompressing_reader(blob, compression).map_err(layer_error)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".solum-build-layer-")
        .tempfile_in(dir)
        .map_err(IoAt::at(dir, "create a temp file in"))?;
    let temp_path = temp.path().to_path_buf();
    let mut writer = HashingWriter::new(BufWriter::with_capacity(1 << 20, temp.as_file_mut()));
    std::io::copy(&mut reader, &mut writer).map_err(|e| {
        TransportError::Io(IoAt::new(
            source.layout.blob_path(digest),
            "decompress layer",
            e,
        ))
    })?;
    let (actual, _, mut inner) = writer.finish();
    inner.flush().map_err(IoAt::at(&temp_path, "write"))?;
    drop(inner);
    temp.as_file_mut()
        .seek(SeekFrom::Start(0))
        .map_err(IoAt::at(temp.path(), "rewind"))?;
    Ok((temp, actual))
}
