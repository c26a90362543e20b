//! `run REF [-- CMD…]`: runs a command in an image, in the rootless sandbox, with the
//! image's Env, WorkingDir and Entrypoint/Cmd as defaults and no network unless
//! `--network host`. The command's output passes through unchanged; the exit code is the
//! command's own (128+N when killed by signal N, 124 on timeout, as `timeout(1)` does), so
//! scripts can use `run` like the command itself.

use super::exit::UsageError;
use super::output::CliReporter;
use super::Context;
use crate::image::ImageReference;
use crate::pipeline::run::{run_image, RunRequest};
use crate::transport::{open_image, open_store};
use runtime::{OutputEvent, Stream, Termination};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum NetworkMode {
    None,
    Host,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example: solum-build run base/busybox -- sh -c 'echo hi'")]
pub struct RunArgs {
    /// The image, a store name (NAME[:TAG]).
    reference: String,
    /// The command and its arguments (default: the image's Entrypoint and Cmd).
    #[arg(last = true)]
    command: Vec<String>,
    /// `none`: loopback only; `host`: the host's network.
    #[arg(long, value_enum, default_value = "none")]
    network: NetworkMode,
    /// Kill everything in the sandbox after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// An environment variable (repeatable), added to the image's.
    #[arg(long = "env", short, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// The working directory (default: the image's, else /).
    #[arg(long, short = 'w', value_name = "DIR")]
    workdir: Option<PathBuf>,
}

pub fn run(context: &Context, args: RunArgs) -> anyhow::Result<i32> {
    let reference: ImageReference = args.reference.parse()?;
    if !matches!(reference, ImageReference::Store { .. }) {
        return Err(UsageError(format!(
            "run takes a store image; copy {} into the store first with `solum-build push {} NAME`",
            args.reference, args.reference
        ))
        .into());
    }
    if let Some(bad) = args.env.iter().find(|e| !e.contains('=')) {
        return Err(UsageError(format!("--env {bad:?} is not KEY=VALUE")).into());
    }
    let reporter = CliReporter::new(true);
    let opened = open_image(&reference, &context.store, None, &reporter)?;
    let layout = open_store(&context.store)?;
    let request = RunRequest {
        command: args.command,
        env: args.env,
        workdir: args.workdir,
        network_host: matches!(args.network, NetworkMode::Host),
        timeout: args.timeout.map(Duration::from_secs),
    };
    let reporter = CliReporter::new(context.quiet);
    let outcome = run_image(
        &context.store,
        &layout,
        &opened.image,
        &request,
        &reporter,
        |event| {
            if let OutputEvent::Bytes { stream, data, .. } = event {
                let _ = match stream {
                    Stream::Stdout => std::io::stdout().lock().write_all(&data),
                    Stream::Stderr => std::io::stderr().lock().write_all(&data),
                };
            }
        },
    )?;
    let _ = std::io::stdout().flush();
    Ok(match outcome.termination {
        Termination::Exited(code) => code,
        Termination::Signaled(signal) => 128 + signal,
        Termination::TimedOut => {
            eprintln!(
                "error: the command was killed after the {}s timeout",
                request.timeout.map(|t| t.as_secs()).unwrap_or(0)
            );
            124
        }
        Termination::Cancelled => 130,
    })
}
