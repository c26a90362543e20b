//! `badger build DIR`, `badger list`, `badger search TERM`: language packs in the store;
//! `badger upload DIR`: one sent to a server.

use super::build::{cancel_on_signals, BuildReporter, LogFormat};
use super::exit::SUCCESS;
use super::import::Compression;
use super::output::result_line;
use super::{Context, StoreArg};
use crate::pipeline::badger_image::{
    build_badger, list_badgers, list_badgers_and_unreadable, BadgerRequest, StoredBadger,
};
use crate::pipeline::source_date_epoch;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct BadgerArgs {
    #[command(subcommand)]
    command: BadgerCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BadgerCommand {
    /// Make a badger image from a folder holding badger.yaml and build.sh.
    Build {
        /// The badger folder, e.g. badgers/python.
        dir: PathBuf,
        /// The store name (default: badgers/NAME).
        #[arg(long, short)]
        tag: Option<String>,
        #[arg(long, value_enum, default_value = "gzip")]
        compression: Compression,
        /// Kill the setup script after this many seconds.
        #[arg(long, value_name = "SECS", default_value = "3600")]
        timeout: u64,
        #[command(flatten)]
        limits: super::run::LimitArgs,
        #[command(flatten)]
        store: StoreArg,
    },
    /// List the badgers of the store.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Find badgers by name, version, description or packaged software.
    Search {
        term: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Send a badger folder to a server (--server, --token), which builds it into its store.
    Upload {
        dir: PathBuf,
        #[command(flatten)]
        server: super::client::ServerFlags,
    },
}

impl BadgerArgs {
    /// The `--store` of a subcommand that uses the store; `None` for `upload`.
    pub fn store(&self) -> Option<&StoreArg> {
        match &self.command {
            BadgerCommand::Build { store, .. }
            | BadgerCommand::List { store, .. }
            | BadgerCommand::Search { store, .. } => Some(store),
            BadgerCommand::Upload { .. } => None,
        }
    }
}

pub fn run(context: &Context, args: BadgerArgs) -> anyhow::Result<i32> {
    match args.command {
        BadgerCommand::Build {
            dir,
            tag,
            compression,
            timeout,
            limits,
            store: _,
        } => {
            limits.apply()?;
            let reporter = BuildReporter {
                format: LogFormat::Text,
                quiet: context.quiet,
            };
            let cancel = cancel_on_signals()?;
            let built = build_badger(
                &BadgerRequest {
                    dir,
                    tag,
                    compression: compression.into(),
                    epoch: source_date_epoch(),
                    timeout: Some(Duration::from_secs(timeout)),
                    privilege: context.privilege,
                },
                &context.store,
                None,
                &cancel,
                &reporter,
            )?;
            result_line(&built.manifest_digest)?;
            Ok(SUCCESS)
        }
        BadgerCommand::List { json, .. } => {
            let (found, unreadable) = list_badgers_and_unreadable(&context.store)?;
            for problem in &unreadable {
                let why = std::error::Error::source(problem)
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                eprintln!("warning: {problem}{why}; left out");
            }
            show(&found, json)?;
            Ok(SUCCESS)
        }
        BadgerCommand::Search { term, json, .. } => {
            let found: Vec<StoredBadger> = list_badgers(&context.store)?
                .into_iter()
                .filter(|b| b.manifest.matches(&term))
                .collect();
            if found.is_empty() && !json {
                // An empty table reads like a failure to list; say what happened instead.
                eprintln!(
                    "no badger in {} matches {:?} (names, descriptions, packages and detect files are searched; `badger list` shows them all)",
                    context.store.display(),
                    term
                );
                return Ok(1);
            }
            show(&found, json)?;
            // Like grep: nothing found is exit 1, so scripts can test for a badger.
            Ok(if found.is_empty() { 1 } else { SUCCESS })
        }
        BadgerCommand::Upload { dir, server } => super::uploads::upload_badger(&dir, &server),
    }
}

fn show(badgers: &[StoredBadger], json: bool) -> anyhow::Result<()> {
    if json {
        let list: Vec<serde_json::Value> = badgers
            .iter()
            .map(|b| {
                serde_json::json!({
                    "image": b.store_name,
                    "digest": b.image.manifest_digest.to_string(),
                    "manifest": b.manifest,
                })
            })
            .collect();
        result_line(serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    result_line(format_args!(
        "{:<24} {:<10} {:<40} DESCRIPTION",
        "IMAGE", "VERSION", "PACKAGES"
    ))?;
    for badger in badgers {
        let packages = badger
            .manifest
            .packages
            .iter()
            .map(|p| match &p.version {
                Some(v) => format!("{} {v}", p.name),
                None => p.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        result_line(format_args!(
            "{:<24} {:<10} {:<40} {}",
            badger.store_name,
            badger.manifest.version,
            packages,
            badger.manifest.description.clone().unwrap_or_default()
        ))?;
    }
    Ok(())
}
