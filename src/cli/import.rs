//! `import ROOTFS_DIR|TARBALL --tag NAME`: a base image from a root filesystem. Prints the
//! manifest digest on stdout.

use super::exit::SUCCESS;
use super::output::{result_line, CliReporter};
use super::Context;
use crate::layer::LayerCompression;
use crate::pipeline::import::{import, ImportRequest};
use crate::pipeline::source_date_epoch;
use std::path::PathBuf;

/// Layer compression, as the command line names it.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

impl From<Compression> for LayerCompression {
    fn from(value: Compression) -> Self {
        match value {
            Compression::Gzip => LayerCompression::Gzip,
            Compression::Zstd => LayerCompression::Zstd,
            Compression::None => LayerCompression::None,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "SOURCE_DATE_EPOCH, when set, clamps file mtimes and sets the \
    image's creation time: the same tree and epoch give the same digest."
)]
pub struct ImportArgs {
    /// A root filesystem folder, or a tarball of one (plain, gzip or zstd).
    source: PathBuf,
    /// The store name to give the image, e.g. base/busybox.
    #[arg(long, short)]
    tag: String,
    /// The image's default command (repeat for each argument).
    #[arg(long = "cmd", value_name = "ARG")]
    cmd: Vec<String>,
    /// An environment variable of the image (repeatable).
    #[arg(long = "env", short, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// The image's working directory.
    #[arg(long, value_name = "DIR")]
    workdir: Option<String>,
    /// Layer compression.
    #[arg(long, value_enum, default_value = "gzip")]
    compression: Compression,
}

pub fn run(context: &Context, args: ImportArgs) -> anyhow::Result<i32> {
    let reporter = CliReporter::new(context.quiet);
    let request = ImportRequest {
        source: args.source,
        tag: args.tag,
        cmd: args.cmd,
        env: args.env,
        working_dir: args.workdir,
        compression: args.compression.into(),
        epoch: source_date_epoch(),
        privilege: context.privilege,
    };
    let imported = import(&request, &context.store, &reporter)?;
    reporter_done(context, &request.tag, &imported.layer);
    result_line(imported.manifest_digest)?;
    Ok(SUCCESS)
}

fn reporter_done(context: &Context, tag: &str, layer: &crate::layer::LayerDigests) {
    if !context.quiet {
        eprintln!(
            "{:>12} {tag} (layer {}, {} compressed from {})",
            "Imported",
            layer.digest.short(),
            super::output::human_size(layer.size),
            super::output::human_size(layer.uncompressed_size),
        );
    }
}
