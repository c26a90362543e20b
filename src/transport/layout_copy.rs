//! Copying an image between two layouts: every blob is read through a verifying reader and
//! written through a verifying writer, so a corrupt source never lands in the destination;
//! blobs the destination already has are skipped. The name is set last, after every blob
//! it reaches is in place, so a reader never sees a name whose blobs are missing.
//! Referrers of the image (SBOMs, signatures, and their own referrers, a few levels deep)
//! follow the same way when asked for, each entry added once its blobs are in.

use super::TransportError;
use crate::image::Digest;
use crate::report::Reporter;
use crate::store::image::{descriptor_digest, REF_NAME};
use crate::store::referrers::{MAX_REFERRERS, MAX_REFERRER_DEPTH};
use crate::store::{BlobWriter, Layout, ResolvedImage};
use oci_spec::image::Descriptor;

/// Copies `image` from `source` into `destination` and names it `name` there (with no
/// name, the image is added to `index.json` without one, as skopeo does for `oci:DIR`).
/// Returns the manifest digest.
pub fn copy_image(
    source: &Layout,
    image: &ResolvedImage,
    destination: &Layout,
    name: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<Digest, TransportError> {
    // From the first blob until the name is written, `gc` must wait.
    let _lease = destination.lease()?;
    copy_blobs(source, image, destination, reporter)?;
    // The manifest bytes were verified when the image was resolved.
    let stored = destination.put_bytes(&image.manifest_bytes)?;
    debug_assert_eq!(stored, image.manifest_digest);

    let mut entry = image.descriptor.clone();
    let mut annotations = entry.annotations().clone().unwrap_or_default();
    annotations.remove(REF_NAME);
    entry.set_annotations((!annotations.is_empty()).then_some(annotations));
    match name {
        Some(name) => destination.tag(name, &entry)?,
        None => destination.add_entry(entry, None)?,
    }
    Ok(image.manifest_digest.clone())
}

/// Copies the config and layer blobs of `image` (not the manifest, no name). Every blob is
/// staged (verified, in the temp folder) before any is committed, so a corrupt or missing
/// source blob leaves the destination exactly as it was.
pub fn copy_blobs(
    source: &Layout,
    image: &ResolvedImage,
    destination: &Layout,
    reporter: &dyn Reporter,
) -> Result<(), TransportError> {
    copy_descriptors(source, &image.blobs(), destination, reporter)
}

/// Copies the referrers of `subject` in `source` (and theirs, [`MAX_REFERRER_DEPTH`]
/// levels) into `destination`: blobs first, then the manifest, then the `index.json`
/// entry. Returns how many referrers were copied.
pub fn copy_referrers(
    source: &Layout,
    subject: &Digest,
    destination: &Layout,
    reporter: &dyn Reporter,
) -> Result<usize, TransportError> {
    let _lease = destination.lease()?;
    let mut copied = 0;
    let mut level = vec![subject.clone()];
    for _ in 0..MAX_REFERRER_DEPTH {
        let mut next = Vec::new();
        for subject in &level {
            for referrer in source.referrers_of(subject)? {
                // Each level may hold as many as the one before: the copy is bounded in
                // all, as a pull is.
                if copied == MAX_REFERRERS {
                    reporter.warning(&format!(
                        "more than {MAX_REFERRERS} referrers in all; the rest is not copied"
                    ));
                    return Ok(copied);
                }
                copy_descriptors(source, &referrer.blobs(), destination, reporter)?;
                destination.put_bytes(&referrer.manifest_bytes)?;
                destination.add_referrer(&referrer.manifest_bytes)?;
                next.push(referrer.digest());
                copied += 1;
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(copied)
}

/// Copies blobs by descriptor, all staged before any is committed.
fn copy_descriptors(
    source: &Layout,
    blobs: &[Descriptor],
    destination: &Layout,
    reporter: &dyn Reporter,
) -> Result<(), TransportError> {
    let _lease = destination.lease()?;
    // Staged blobs hold no open descriptor, so thousands of layers fit any fd limit.
    let mut staged = Vec::new();
    for blob in blobs {
        let digest = descriptor_digest(source, blob)?;
        if let Some(writer) = stage_blob(source, destination, &digest, blob.size(), reporter)? {
            staged.push((writer, digest));
        }
    }
    for (writer, digest) in staged {
        writer.commit(&digest)?;
    }
    Ok(())
}

/// Stages one blob in the destination unless it has it already.
fn stage_blob(
    source: &Layout,
    destination: &Layout,
    digest: &Digest,
    size: u64,
    reporter: &dyn Reporter,
) -> Result<Option<BlobWriter>, TransportError> {
    if destination.has_blob(digest) {
        reporter.blob_done(digest, true);
        return Ok(None);
    }
    reporter.blob_start(digest, Some(size));
    let mut reader = source.open_blob(digest, Some(size))?;
    let (writer, _, _) = destination.stage_blob(&mut reader, Some((digest, size)))?;
    reporter.blob_progress(digest, size);
    reporter.blob_done(digest, false);
    Ok(Some(writer))
}
