//! `push SRC DEST`: copies an image between any two transports. Blobs the destination has
//! are skipped; the name is written last. The image's referrers come along unless
//! `--no-referrers` leaves them out. Prints the manifest digest on stdout.

use super::exit::SUCCESS;
use super::output::{result_line, CliReporter};
use super::Context;
use crate::image::ImageReference;
use crate::transport::{describe, open_image_with, write_image_with, Referrers};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  solum-build push myapp oci-archive:myapp.tar\n  \
    solum-build push myapp docker-archive:myapp.tar:myapp:1.0   # then: podman load -i myapp.tar\n  \
    solum-build push oci:/tmp/layout:app myapp"
)]
pub struct PushArgs {
    /// The image to copy: NAME[:TAG], oci:DIR[:NAME], oci-archive:FILE[:NAME].
    source: String,
    /// Where to: NAME[:TAG], oci:DIR[:NAME], oci-archive:FILE[:NAME],
    /// docker-archive:FILE[:NAME:TAG], docker://HOST[:PORT]/REPO[:TAG].
    destination: String,
    /// Copy the image alone, without its referrers (SBOMs, provenance, signatures).
    #[arg(long)]
    no_referrers: bool,
    #[command(flatten)]
    registry: super::registry::RegistryFlags,
}

pub fn run(context: &Context, args: PushArgs) -> anyhow::Result<i32> {
    let source: ImageReference = args.source.parse()?;
    let destination: ImageReference = args.destination.parse()?;
    let reporter = CliReporter::new(context.quiet);
    let client = args.registry.client()?;
    let referrers = if args.no_referrers {
        Referrers::Leave
    } else {
        Referrers::Carry
    };
    let opened = open_image_with(&source, &context.store, Some(&client), &reporter, referrers)?;
    let digest = write_image_with(
        &opened,
        &destination,
        &context.store,
        Some(&client),
        &reporter,
        referrers,
    )?;
    if !context.quiet {
        eprintln!(
            "{:>12} {} to {}",
            "Copied",
            opened.reference,
            describe(&destination)
        );
    }
    result_line(&digest)?;
    Ok(SUCCESS)
}
