//! `images`, `inspect`, `rmi` and `gc`: looking at and tidying the store.

use super::exit::{UsageError, SUCCESS};
use super::output::{escape_controls, human_size, result_line, CliReporter};
use super::Context;
use crate::image::ImageReference;
use crate::store::Layout;
use crate::transport::{open_image, open_store};
use anyhow::Context as _;
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The image: NAME[:TAG], oci:DIR[:NAME], oci-archive:FILE[:NAME] or docker://….
    reference: String,
    /// Print only the image's referrers (SBOMs, provenance, signatures), as a table.
    #[arg(long)]
    referrers: bool,
    #[command(flatten)]
    registry: super::registry::RegistryFlags,
}

#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Store names to remove.
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  solum-build gc\n  solum-build gc --cache-max 5g    # also trim the unpacked-tree cache to 5 GiB"
)]
pub struct GcArgs {
    /// Also bound the cache of unpacked trees (STORE/cache/rootfs) to SIZE (bytes, or with
    /// k, m, g suffix): the least recently used trees go first, trees in use stay. They are
    /// unpacked again when next needed.
    #[arg(long, value_name = "SIZE", env = "SOLUM_BUILD_CACHE_MAX")]
    cache_max: Option<String>,
}

pub fn images(context: &Context, args: ImagesArgs) -> anyhow::Result<i32> {
    // A store that was never made holds no images; that is not an error.
    if !context.store.exists() {
        if args.json {
            result_line(format_args!("[]"))?;
        }
        return Ok(SUCCESS);
    }
    let layout = open_store(&context.store)?;
    let mut rows = Vec::new();
    for name in layout.names()? {
        let image = layout
            .resolve(Some(&name))
            .with_context(|| format!("image {name:?}"))?;
        let size: u64 = image
            .blobs()
            .iter()
            .map(oci_spec::image::Descriptor::size)
            .sum();
        rows.push(json!({
            "name": name,
            "digest": image.manifest_digest.to_string(),
            "size": size,
            "created": image.config.created().clone().unwrap_or_default(),
            "layers": image.layers().len(),
        }));
    }
    if args.json {
        result_line(serde_json::to_string_pretty(&rows)?)?;
        return Ok(SUCCESS);
    }
    // Names and dates come from the store's index and configs: escaped, newlines too, so
    // that a row stays one row.
    let cell = |row: &Value, key: &str| {
        escape_controls(row[key].as_str().unwrap_or_default(), &[]).into_owned()
    };
    let width = rows
        .iter()
        .map(|r| cell(r, "name").chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    result_line(format_args!(
        "{:<width$}  {:<19}  {:>9}  {:>6}  CREATED",
        "NAME", "DIGEST", "SIZE", "LAYERS"
    ))?;
    for row in &rows {
        let digest = row["digest"].as_str().unwrap_or_default();
        result_line(format_args!(
            "{:<width$}  {:<19}  {:>9}  {:>6}  {}",
            cell(row, "name"),
            &digest[..digest.len().min(19)],
            human_size(row["size"].as_u64().unwrap_or(0)),
            row["layers"],
            cell(row, "created"),
        ))?;
    }
    Ok(SUCCESS)
}

pub fn inspect(context: &Context, args: InspectArgs) -> anyhow::Result<i32> {
    let reference: ImageReference = args.reference.parse()?;
    let reporter = CliReporter::new(context.quiet);
    let client = args.registry.client()?;
    let opened = open_image(&reference, &context.store, Some(&client), &reporter)?;
    let image = &opened.image;
    let manifest: Value = serde_json::from_slice(&image.manifest_bytes)?;
    let config: Value = serde_json::from_slice(&image.config_bytes)?;
    let referrers = referrer_rows(&opened.layout, &image.manifest_digest)?;
    if args.referrers {
        return print_referrers(&referrers);
    }
    let document = json!({
        "name": image.name,
        "digest": image.manifest_digest.to_string(),
        "mediaType": image.descriptor.media_type().to_string(),
        "annotations": manifest.get("annotations").cloned().unwrap_or(json!({})),
        "manifest": manifest,
        "config": config,
        "referrers": referrers,
    });
    result_line(serde_json::to_string_pretty(&document)?)?;
    Ok(SUCCESS)
}

/// The referrers of `subject` as JSON rows: artifactType, digest, size, and the
/// annotations worth showing (the predicate type first among them).
fn referrer_rows(layout: &Layout, subject: &crate::image::Digest) -> anyhow::Result<Vec<Value>> {
    let referrers = crate::attest::referrers::list(layout, subject)?;
    Ok(referrers
        .iter()
        .map(|r| {
            json!({
                "artifactType": r.artifact_type,
                "digest": r.descriptor.digest().to_string(),
                "size": r.descriptor.size(),
                "annotations": r.annotations,
            })
        })
        .collect())
}

/// `inspect --referrers`: one row per referrer. Types and annotations come from the
/// image's documents: escaped, so that a row stays one row.
fn print_referrers(rows: &[Value]) -> anyhow::Result<i32> {
    result_line(format_args!(
        "{:<44}  {:<19}  {:>9}  DETAILS",
        "ARTIFACT TYPE", "DIGEST", "SIZE"
    ))?;
    for row in rows {
        let digest = row["digest"].as_str().unwrap_or_default();
        let annotations = row["annotations"].as_object().cloned().unwrap_or_default();
        let predicate = annotations
            .get(crate::attest::PREDICATE_TYPE_ANNOTATION)
            .and_then(Value::as_str);
        let details = match predicate {
            Some(predicate) => format!("predicate {predicate}"),
            None => annotations
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" "),
        };
        result_line(format_args!(
            "{:<44}  {:<19}  {:>9}  {}",
            escape_controls(row["artifactType"].as_str().unwrap_or_default(), &[]),
            &digest[..digest.len().min(19)],
            human_size(row["size"].as_u64().unwrap_or(0)),
            escape_controls(&details, &[]),
        ))?;
    }
    Ok(SUCCESS)
}

pub fn rmi(context: &Context, args: RmiArgs) -> anyhow::Result<i32> {
    let layout = open_store(&context.store)?;
    // All names are checked before any is removed, so a typo removes nothing.
    let known = layout.names()?;
    let missing: Vec<&String> = args.names.iter().filter(|n| !known.contains(n)).collect();
    if !missing.is_empty() {
        return Err(UsageError(format!(
            "no image named {} in {} (see `solum-build images`)",
            missing
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            context.store.display()
        ))
        .into());
    }
    for name in &args.names {
        layout.untag(name)?;
        if !context.quiet {
            eprintln!("{:>12} {name}", "Untagged");
        }
    }
    if !context.quiet {
        eprintln!("{:>12} run `solum-build gc` to free the space", "Note");
    }
    Ok(SUCCESS)
}

pub fn gc(context: &Context, args: GcArgs) -> anyhow::Result<i32> {
    let cache_max = match &args.cache_max {
        None => None,
        Some(text) => Some(super::run::parse_size(text).ok_or_else(|| {
            UsageError(format!(
                "--cache-max {text:?} is not a size (bytes, or a number with k, m or g)"
            ))
        })?),
    };
    // No store yet, or one being made by a first writer (its `oci-layout` is written
    // last): nothing to collect, and nothing here is ours to judge.
    if !context.store.join("oci-layout").exists() {
        return Ok(SUCCESS);
    }
    let layout = Layout::open(&context.store)?;
    // Writers (build, import, pull, copy) hold the store from their first blob to their
    // name; wait for them, as skopeo and podman wait for their storage lock.
    let quiet = context.quiet;
    let held = layout.exclusive_lease(&|| {
        if !quiet {
            eprintln!(
                "{:>12} for the builds, imports and copies writing to the store to finish",
                "Waiting"
            );
        }
    })?;
    let report = layout.gc(&held)?;
    // Build records whose DU or dependency layer gc just took can never be hits again.
    let records = crate::store::cache::cache_root(&context.store).map_or(0, |root| {
        crate::pipeline::record_prune::prune_stale_records(&layout, &root)
    });
    let cache = crate::pipeline::unpack::rootfs_cache_dir(&context.store);
    let mut trees = crate::pipeline::unpack::prune_rootfs_cache(&layout, &cache)?;
    if let Some(max) = cache_max {
        let bound = crate::pipeline::cache_bound::bound_cache(&cache, max)?;
        trees += bound.removed;
        if !context.quiet {
            eprintln!(
                "{:>12} the unpacked-tree cache to {} ({} freed, bound {})",
                "Trimmed",
                human_size(bound.remaining),
                human_size(bound.freed),
                human_size(max)
            );
        }
    }
    drop(held);
    // Scratch of pulls, archives and builds that were killed (their owners' locks are
    // free and their pids gone; live ones are left alone).
    let temp = std::env::temp_dir();
    let writable_layers = crate::pipeline::workspace::scratch_parent(&context.store);
    let scratch = crate::store::scratch::sweep(&temp, "solum-build-pull-")
        + crate::store::scratch::sweep(&temp, "solum-build-oci-archive-")
        + crate::store::scratch::sweep(
            &writable_layers,
            crate::pipeline::workspace::SCRATCH_PREFIX,
        )
        + crate::store::scratch::sweep(&writable_layers, crate::pipeline::run::RUN_PREFIX);
    if !context.quiet {
        eprintln!(
            "{:>12} {} blobs, {}; {records} build records of collected blobs; {trees} unpacked trees from the cache; {} temp files of stopped writers, {}; {scratch} scratch folders of stopped pulls, builds and runs",
            "Removed",
            report.removed.len(),
            human_size(report.freed),
            report.swept.entries,
            human_size(report.swept.bytes),
        );
    }
    Ok(SUCCESS)
}
