//! `push SRC DEST`: copies an image between any two transports. Blobs the destination has
//! are skipped; the name is written last. Prints the manifest digest on stdout.

use super::exit::SUCCESS;
use super::output::{result_line, CliReporter};
use super::Context;
use crate::image::ImageReference;
use crate::transport::{describe, open_image, write_image};

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
    #[command(flatten)]
    registry: super::registry::RegistryFlags,
}

pub fn run(context: &Context, args: PushArgs) -> anyhow::Result<i32> {
    let source: ImageReference = args.source.parse()?;
    let destination: ImageReference = args.destination.parse()?;
    let reporter = CliReporter::new(context.quiet);
    let client = args.registry.client()?;
    let opened = open_image(&source, &context.store, Some(&client), &reporter)?;
    let digest = write_image(
        &opened,
        &destination,
        &context.store,
        Some(&client),
        &reporter,
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
