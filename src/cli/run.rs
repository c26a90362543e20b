//! `run REF [-- CMD…]`: runs a command in an image, in the rootless sandbox, with the
//! image's Env, WorkingDir and Entrypoint/Cmd as defaults and no network unless
//! `--network host`. The command's output passes through unchanged; the exit code is the
//! command's own (128+N when killed by signal N, 124 on timeout, as `timeout(1)` does), so
//! scripts can use `run` like the command itself.

use super::exit::{UsageError, INTERRUPTED};
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
    /// Keep stdin open: the command reads this process's stdin (default: /dev/null).
    #[arg(long, short = 'i')]
    interactive: bool,
    /// Give the command a terminal of its own (with -i, a shell to work in: `run -it IMG
    /// -- sh`).
    #[arg(long, short = 't')]
    tty: bool,
    /// Kill everything in the sandbox after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// An environment variable (repeatable), added to the image's.
    #[arg(long = "env", short, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// The working directory (default: the image's, else /).
    #[arg(long, short = 'w', value_name = "DIR")]
    workdir: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Resource limits of the sandbox, shared by `build`, `badger build` and `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Most processes the sandbox may hold at once; 0 for no limit.
    #[arg(long, value_name = "N", default_value_t = runtime::spec::DEFAULT_MAX_PROCESSES)]
    pids_limit: u64,
    /// Most address space one process of the sandbox may map (bytes, or with k, m, g
    /// suffix); 0 for no limit. Default: the host's memory. A per-process limit
    /// (RLIMIT_AS): the processes together may use more.
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,
}

impl LimitArgs {
    /// Makes these the limits of every sandbox this command starts.
    pub fn apply(&self) -> Result<(), UsageError> {
        let mut limits = runtime::Limits::builtin();
        limits.max_processes = (self.pids_limit > 0).then_some(self.pids_limit);
        if let Some(text) = &self.memory {
            let bytes = parse_size(text).ok_or_else(|| {
                UsageError(format!(
                    "--memory {text:?} is not a size (bytes, or a number with k, m or g)"
                ))
            })?;
            limits.memory = (bytes > 0).then_some(bytes);
        }
        runtime::Limits::set_defaults(limits);
        Ok(())
    }
}

/// `512`, `64k`, `512m`, `4g` (powers of 1024; `b`/`ib` suffixes accepted).
pub(super) fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (digits, shift) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 10),
        'm' => (&t[..t.len() - 1], 20),
        'g' => (&t[..t.len() - 1], 30),
        't' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
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
    args.limits.apply()?;
    let reporter = CliReporter::new(true);
    let opened = open_image(&reference, &context.store, None, &reporter)?;
    let layout = open_store(&context.store)?;
    let request = RunRequest {
        command: args.command,
        env: args.env,
        workdir: args.workdir,
        network_host: matches!(args.network, NetworkMode::Host),
        timeout: args.timeout.map(Duration::from_secs),
        privilege: context.privilege,
        interactive: args.interactive,
        tty: args.tty,
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
                request.timeout.map_or(0, |t| t.as_secs())
            );
            124
        }
        Termination::Cancelled => INTERRUPTED,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(super::parse_size("512"), Some(512));
        assert_eq!(super::parse_size("64k"), Some(64 << 10));
        assert_eq!(super::parse_size("512M"), Some(512 << 20));
        assert_eq!(super::parse_size("4GiB"), Some(4 << 30));
        assert_eq!(super::parse_size("lots"), None);
        assert_eq!(super::parse_size(""), None);
    }
}
