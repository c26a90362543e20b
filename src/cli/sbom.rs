//! `sbom REF [--format spdx|cyclonedx]`: prints the software bill of materials of an image
//! on stdout: the one attached to the image as a referrer when it has one (every DU gets
//! both formats when it is built), else one generated from the image's layers
//! (`attest::sbom`).

use super::exit::SUCCESS;
use super::output::result_line;
use super::Context;
use crate::attest::sbom;
use crate::image::ImageReference;
use crate::report::Reporter as _;
use crate::store::{Layout, ResolvedImage};
use crate::transport::open_image;
use anyhow::Context as _;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  solum-build sbom shop:latest\n  solum-build sbom oci-archive:shop.tar --format cyclonedx"
)]
pub struct SbomArgs {
    /// The image: NAME[:TAG], oci:DIR[:NAME], oci-archive:FILE[:NAME] or docker://….
    reference: String,
    /// The document's format: SPDX 2.3 JSON or CycloneDX 1.5 JSON.
    #[arg(long, value_enum, default_value_t = SbomFormat::Spdx)]
    format: SbomFormat,
    #[command(flatten)]
    registry: super::registry::RegistryFlags,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SbomFormat {
    Spdx,
    Cyclonedx,
}

pub fn run(context: &Context, args: SbomArgs) -> anyhow::Result<i32> {
    let reference: ImageReference = args.reference.parse()?;
    let reporter = super::output::CliReporter::new(context.quiet);
    let client = args.registry.client()?;
    let opened = open_image(&reference, &context.store, Some(&client), &reporter)?;
    let document = match stored_document(&opened.layout, &opened.image, args.format)? {
        Some(document) => document,
        None => generated_document(&opened.layout, &opened.image, args.format, &reporter)
            .with_context(|| format!("the SBOM of {}", opened.reference))?,
    };
    print_document(&document)?;
    Ok(SUCCESS)
}

/// The SBOM of `format` attached to the image (made when it was built), if it has one.
fn stored_document(
    layout: &Layout,
    image: &ResolvedImage,
    format: SbomFormat,
) -> anyhow::Result<Option<Vec<u8>>> {
    let artifact_type = match format {
        SbomFormat::Spdx => crate::attest::SPDX_JSON,
        SbomFormat::Cyclonedx => crate::attest::CYCLONEDX_JSON,
    };
    let attached = crate::attest::referrers::list(layout, &image.manifest_digest)?;
    match attached.iter().find(|r| r.artifact_type == artifact_type) {
        Some(referrer) => Ok(Some(crate::attest::referrers::content(layout, referrer)?)),
        None => Ok(None),
    }
}

/// The document of `format`, generated from the image's layers; what was skipped is said on
/// stderr.
fn generated_document(
    layout: &Layout,
    image: &ResolvedImage,
    format: SbomFormat,
    reporter: &super::output::CliReporter,
) -> anyhow::Result<Vec<u8>> {
    let (sboms, skipped) = sbom::generate_with(layout, image, &sbom::Limits::default(), None)?;
    if skipped.too_large + skipped.malformed > 0 {
        reporter.warning(&format!(
            "the SBOM leaves out {} file(s) over a size bound and {} malformed one(s)",
            skipped.too_large, skipped.malformed
        ));
    }
    Ok(match format {
        SbomFormat::Spdx => sboms.spdx,
        SbomFormat::Cyclonedx => sboms.cyclonedx,
    })
}

/// Prints one SBOM document (JSON, which escapes every control character) and a newline.
pub fn print_document(document: &[u8]) -> anyhow::Result<()> {
    let text = std::str::from_utf8(document).context("the SBOM is not UTF-8")?;
    result_line(text)?;
    Ok(())
}
