//! `unpack REF DIR`: an image's root filesystem in a new folder, like `umoci unpack` (the
//! same code the build uses for its rootfs cache).

use super::exit::SUCCESS;
use super::output::CliReporter;
use super::Context;
use crate::image::ImageReference;
use crate::pipeline::unpack::unpack_image;
use crate::transport::open_image;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct UnpackArgs {
    /// The image: NAME[:TAG], oci:DIR[:NAME], oci-archive:FILE[:NAME] or docker://….
    reference: String,
    #[command(flatten)]
    registry: super::registry::RegistryFlags,
    /// The folder to create (or an empty one).
    dir: PathBuf,
}

pub fn run(context: &Context, args: UnpackArgs) -> anyhow::Result<i32> {
    let reference: ImageReference = args.reference.parse()?;
    let reporter = CliReporter::new(context.quiet);
    let client = args.registry.client()?;
    let opened = open_image(&reference, &context.store, Some(&client), &reporter)?;
    let report = unpack_image(
        &opened.layout,
        &opened.image,
        &args.dir,
        context.privilege,
        &reporter,
    )?;
    if !report.skipped_devices.is_empty() {
        reporter_warning(&report.skipped_devices);
    }
    if !context.quiet {
        eprintln!(
            "{:>12} {} entries, {} whiteouts into {}",
            "Unpacked",
            report.entries,
            report.whiteouts,
            args.dir.display()
        );
    }
    Ok(SUCCESS)
}

fn reporter_warning(devices: &[String]) {
    eprintln!(
        "warning: skipped {} device node(s) (creating devices needs root): {}",
        devices.len(),
        devices.join(", ")
    );
}
