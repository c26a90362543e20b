//! Client commands that hand a server what it builds from besides apps: `du list`,
//! `du register REF --name NAME` (a ready-made image as a DU) and `badger upload DIR` (a
//! badger folder, sent as a gzip tarball and built by the server). The server checks
//! everything again; these only package and send, through [`super::client::Client`].

use super::client::{print_json, Client, ClientError, ServerFlags};
use super::exit::SUCCESS;
use super::output::result_line;
use crate::io_at::IoAt;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Subcommand)]
pub enum DuCommand {
    /// List the server's DUs: name, digest, where it was pushed.
    List,
    /// Register a ready-made image as a DU (`docker://HOST/REPO:TAG`, or a name of the
    /// server's store); prints the record (JSON).
    Register {
        reference: String,
        /// The DU's name (an app name: lower case, digits, `-`, `_`).
        #[arg(long)]
        name: String,
        /// Push it to the server's --push-to registry too.
        #[arg(long)]
        push: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct DuArgs {
    #[command(subcommand)]
    command: DuCommand,
    #[command(flatten)]
    server: ServerFlags,
}

pub fn du(args: DuArgs) -> anyhow::Result<i32> {
    let client = Client::new(&args.server);
    match args.command {
        DuCommand::List => {
            let list = client.json("GET", "/v1/dus", None)?;
            for du in list["dus"].as_array().into_iter().flatten() {
                result_line(format_args!(
                    "{}\t{}\t{}",
                    du["name"].as_str().unwrap_or(""),
                    du["digest"].as_str().unwrap_or(""),
                    du["pushed_to"].as_str().unwrap_or("-")
                ))?;
            }
        }
        DuCommand::Register {
            reference,
            name,
            push,
        } => {
            let body = serde_json::json!({ "reference": reference, "name": name, "push": push });
            let registered = client.json(
                "POST",
                "/v1/dus",
                Some(("application/json", serde_json::to_vec(&body)?)),
            )?;
            print_json(&registered)?;
        }
    }
    Ok(SUCCESS)
}

/// `badger upload DIR`: the folder as a gzip tarball (symlinks kept as links: the server
/// refuses them where it reads files), built on the server; prints the badger (JSON).
pub fn upload_badger(dir: &Path, server: &ServerFlags) -> anyhow::Result<i32> {
    let tarball = badger_tarball(dir)?;
    let client = Client::new(server);
    let built = client.json("POST", "/v1/badgers", Some(("application/x-tar", tarball)))?;
    print_json(&built)?;
    Ok(SUCCESS)
}

fn badger_tarball(dir: &Path) -> Result<Vec<u8>, ClientError> {
    let packing = |error| ClientError::Read(IoAt::new(PathBuf::from(dir), "pack", error));
    let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gzip);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).map_err(packing)?;
    builder
        .into_inner()
        .and_then(flate2::write::GzEncoder::finish)
        .map_err(packing)
}
