//! Badgers shared through the registry, so that any worker builds on a badger any API
//! node made: a badger built through the API is pushed to `--push-to` as
//! `PREFIX/badgers/NAME` and recorded (store name → registry repository and manifest
//! digest); a worker whose local store lacks that badger, or holds another digest under
//! its name, pulls it by digest before the build. The local store is thereby a cache: it
//! can be deleted at any time, and the next build fetches what it needs again.
//!
//! Only store names are looked up (a `docker://` badger is pulled by the build itself);
//! the pull is by digest, so a tag moved in the registry does not change what is built.

use super::{runner::error_chain, Shared};
use crate::image::ImageReference;
use crate::report::Reporter;

/// After a badger build on this node: pushes it and records where. `None` when the server
/// has no `--push-to` (one host: the store is the only copy).
pub fn publish_badger(
    shared: &Shared,
    store_name: &str,
    reporter: &dyn Reporter,
) -> Result<Option<String>, String> {
    let Some(push_to) = &shared.options.push_to else {
        return Ok(None);
    };
    let destination: ImageReference = format!("{}/{store_name}", push_to.trim_end_matches('/'))
        .parse()
        .map_err(|e| error_chain(&e))?;
    let ImageReference::Registry {
        registry,
        repository,
        ..
    } = &destination
    else {
        return Err(format!("{push_to} is not a registry"));
    };
    let location = format!("docker://{registry}/{repository}");
    let pushed = super::runner::push_reference(shared, store_name, &destination, reporter)?;
    shared
        .records
        .record_shared_image(store_name, &pushed.to_string(), &location)
        .map_err(|e| error_chain(&e))?;
    Ok(Some(format!("{location}@{pushed}")))
}

/// Before a workflow's build: every badger of the app file that is recorded as shared is
/// in the local store at its recorded digest (pulled when not).
pub fn pull_badgers(shared: &Shared, app: &str, reporter: &dyn Reporter) -> Result<(), String> {
    let Some(record) = shared.records.app(app).map_err(|e| error_chain(&e))? else {
        // The run itself says that the app is gone.
        return Ok(());
    };
    let Ok((file, _)) = super::routes_apps::parse_app_file(&record.app_file) else {
        return Ok(());
    };
    for written in file.all_badgers() {
        if !matches!(written.parse(), Ok(ImageReference::Store { .. })) {
            continue;
        }
        for name in crate::pipeline::badger_stack::store_names(written) {
            let shared_copy = shared
                .records
                .shared_image(&name)
                .map_err(|e| error_chain(&e))?;
            if let Some((digest, location)) = shared_copy {
                fetch(shared, &name, &digest, &location, reporter)?;
                break;
            }
        }
    }
    Ok(())
}

/// The store holds `name` at `digest`, pulled from `location@digest` when it did not.
fn fetch(
    shared: &Shared,
    name: &str,
    digest: &str,
    location: &str,
    reporter: &dyn Reporter,
) -> Result<(), String> {
    let held = crate::store::Layout::open(&shared.store)
        .ok()
        .and_then(|layout| layout.resolve(Some(name)).ok())
        .map(|image| image.manifest_digest.to_string());
    if held.as_deref() == Some(digest) {
        return Ok(());
    }
    // The digest comes from the records; still, only a digest goes into the reference.
    let digest: crate::image::Digest = digest.parse().map_err(|e| error_chain(&e))?;
    let source: ImageReference = format!("{location}@{digest}")
        .parse()
        .map_err(|e| error_chain(&e))?;
    reporter.status(
        "Fetching",
        &format!("badger {name} from {location}@{}", digest.short()),
    );
    let registry = Some(&shared.registry as &dyn crate::transport::RegistryTransport);
    let opened = crate::transport::open_image_with(
        &source,
        &shared.store,
        registry,
        reporter,
        crate::transport::Referrers::Leave,
    )
    .map_err(|e| format!("cannot fetch the badger {name}: {}", error_chain(&e)))?;
    if opened.image.manifest_digest != digest {
        return Err(format!(
            "the registry answered {} for the badger {name}, not {digest}",
            opened.image.manifest_digest
        ));
    }
    let destination = ImageReference::Store {
        name: name.to_string(),
    };
    crate::transport::write_image(&opened, &destination, &shared.store, registry, reporter)
        .map_err(|e| format!("cannot store the badger {name}: {}", error_chain(&e)))?;
    Ok(())
}
