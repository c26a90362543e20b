//! The build cache: a build's key (a digest of everything that decides the DU's bytes),
//! the record of the DU a key made (`STORE/cache/builds/KEY`, the manifest's digest) and
//! the reuse of that DU when the store still has it. A record is written only after the
//! DU is named; a missing or stale one only costs a rebuild.

use super::badger_stack::Badger;
use super::build::{BuildError, BuildRequest, Built};
use crate::image::{canonical_json, Digest};
use crate::manifest::AppFile;
use crate::report::{Reporter, State};
use crate::source::SourceInfo;
use crate::store::Layout;
use serde_json::json;
use std::path::Path;

/// The DU an identical build recorded, named `tag` again, if the store still has it.
pub(super) fn reuse_cached(
    layout: &Layout,
    record: &Path,
    tag: &str,
    reporter: &dyn Reporter,
) -> Result<Option<Built>, BuildError> {
    let Some(digest) = cached_build(layout, record) else {
        return Ok(None);
    };
    let descriptor = layout.resolve_descriptor(&crate::store::image::manifest_descriptor(
        &layout.read_blob(&digest, None, crate::store::image::DOCUMENT_LIMIT)?,
        None,
    ))?;
    layout.tag(tag, &descriptor.descriptor)?;
    reporter.stage(State::Built, &format!("{tag} (cached, {})", digest.short()));
    Ok(Some(Built {
        manifest_digest: digest,
        tag: tag.to_string(),
        cache_hit: true,
        du: None,
        asks_deploy: false,
    }))
}

/// The cache key: everything that decides the DU's bytes. How the build is contained (root
/// or rootless, the isolation level) is not in it: that changes how a build runs, never
/// what it makes, and the key is written into the DU (`org.solum.build.key`), so a key
/// with it would give the same inputs different DU digests on different hosts.
pub(super) fn build_key(
    app: &AppFile,
    badgers: &[Badger],
    info: &SourceInfo,
    epoch: i64,
    request: &BuildRequest,
) -> Digest {
    let mut document = json!({
        // 2: builds gained the dependency step and SOURCE_DATE_EPOCH in their environment.
        // 3: root or rootless left the key.
        "key_version": 3,
        "app": app,
        "badgers": badgers.iter().map(|b| b.digest().to_string()).collect::<Vec<_>>(),
        "source_tree": info.tree_digest.to_string(),
        "revision": info.revision,
        "epoch": epoch,
        "compression": format!("{:?}", request.compression),
        "network_host": request.network_host,
    });
    if let (Some(names), Some(fields)) = (request.inputs.key_part(), document.as_object_mut()) {
        fields.insert("secrets".into(), json!(names));
    }
    Digest::of_bytes(&canonical_json(&document))
}

/// The DU a key recorded, if its manifest is still in the store.
fn cached_build(layout: &Layout, record: &Path) -> Option<Digest> {
    let text = std::fs::read_to_string(record).ok()?;
    let digest: Digest = text.trim().parse().ok()?;
    layout.has_blob(&digest).then_some(digest)
}

/// Best effort: a missing record only costs a rebuild.
pub(super) fn write_record(record: &Path, digest: &Digest) {
    if let Some(parent) = record.parent() {
        let _ = std::fs::create_dir_all(parent);
        if let Ok(mut temp) = tempfile::NamedTempFile::new_in(parent) {
            use std::io::Write;
            if writeln!(temp, "{digest}").is_ok() {
                let _ = temp.persist(record);
            }
        }
    }
}
