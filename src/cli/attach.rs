//! `attach REF --artifact-type TYPE FILE`: attaches a file to an image of the store as an
//! OCI 1.1 referrer (as `oras attach` does), so that it travels with the image through
//! `push` and `pull`. Prints the referrer manifest's digest.

use super::exit::{UsageError, SUCCESS};
use super::output::result_line;
use super::Context;
use crate::attest::referrers::{attach, Attachment, CONTENT_LIMIT};
use crate::transport::open_store;
use anyhow::Context as _;
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  solum-build attach myapp --artifact-type application/spdx+json sbom.spdx.json\n  \
    solum-build attach myapp --artifact-type application/vnd.example.notes notes.txt --media-type text/plain --annotation org.example.kind=notes"
)]
pub struct AttachArgs {
    /// The image of the store to attach to: NAME[:TAG].
    reference: String,
    /// The file to attach (at most 64 MiB).
    file: PathBuf,
    /// The referrer's artifactType (e.g. application/spdx+json).
    #[arg(long, value_name = "TYPE")]
    artifact_type: String,
    /// The media type of the file (default: the artifact type).
    #[arg(long, value_name = "TYPE")]
    media_type: Option<String>,
    /// An annotation of the referrer manifest (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
}

pub fn run(context: &Context, args: AttachArgs) -> anyhow::Result<i32> {
    let annotations = super::build::key_values("--annotation", &args.annotations)?;
    let file = std::fs::File::open(&args.file)
        .map_err(|e| UsageError(format!("cannot open {}: {e}", args.file.display())))?;
    let mut bytes = Vec::new();
    // One byte past the bound tells a file that is too large from one that fits.
    file.take(CONTENT_LIMIT + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("read {}", args.file.display()))?;
    if bytes.len() as u64 > CONTENT_LIMIT {
        return Err(UsageError(format!(
            "{} is larger than {CONTENT_LIMIT} bytes",
            args.file.display()
        ))
        .into());
    }
    let layout = open_store(&context.store)?;
    let image = layout.resolve(Some(&args.reference))?;
    let attachment = Attachment {
        media_type: args
            .media_type
            .unwrap_or_else(|| args.artifact_type.clone()),
        artifact_type: args.artifact_type,
        bytes,
        annotations: annotations.into_iter().collect(),
        layer_annotations: std::collections::BTreeMap::default(),
    };
    let referrer = attach(&layout, &image.descriptor, &attachment)?;
    if !context.quiet {
        eprintln!(
            "{:>12} {} to {} ({})",
            "Attached",
            args.file.display(),
            args.reference,
            image.manifest_digest
        );
    }
    result_line(referrer.digest())?;
    Ok(SUCCESS)
}
