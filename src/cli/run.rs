//! `run REF [-- CMD…]`: runs a command in an image, in the rootless sandbox, with the
//! image's Env, WorkingDir and Entrypoint/Cmd as defaults and no network unless
//! `--network host`, or `-p HOST:CONTAINER`, which gives the command the user-mode network
//! of slirp4netns ([`runtime::usermode`]) with those ports published. Without `-p`, an
//! image that declares `ExposedPorts` gets a one-line hint on how to publish them. The
//! command's output passes through unchanged; the exit code is the command's own (128+N
//! when killed by signal N, 124 on timeout, as `timeout(1)` does), so scripts can use `run`
//! like the command itself.

use super::exit::{UsageError, INTERRUPTED};
use super::output::CliReporter;
use super::Context;
use crate::image::ImageReference;
use crate::pipeline::run::{run_image, RunRequest};
use crate::transport::{open_image, open_store};
use runtime::{Network, OutputEvent, PortMapping, Protocol, Stream, Termination};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum NetworkMode {
    None,
    Host,
    Slirp4netns,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example: solum-build run base/busybox -- sh -c 'echo hi'")]
pub struct RunArgs {
    /// The image, a store name (NAME[:TAG]).
    reference: String,
    /// The command and its arguments (default: the image's Entrypoint and Cmd).
    #[arg(last = true)]
    command: Vec<String>,
    /// `none`: loopback only; `host`: the host's network; `slirp4netns`: a network of its
    /// own, connected to the host's through slirp4netns (a user-mode TCP/IP stack, no
    /// privilege needed). Default: `slirp4netns` with -p, else `none`.
    #[arg(long, value_enum)]
    network: Option<NetworkMode>,
    #[command(flatten)]
    isolation: super::run::IsolationArg,
    /// Publish a port of the command on the host (repeatable): connections to HOST on the
    /// host reach CONTAINER in the sandbox, over the user-mode network (slirp4netns). The
    /// host address is 127.0.0.1 unless IP is given (0.0.0.0 for every address); tcp unless
    /// /udp. The command must listen on 0.0.0.0 (or its 10.0.2.100), not on its loopback.
    /// Needs slirp4netns installed and /dev/net/tun open to this user (Debian's default mode
    /// 0666).
    #[arg(long, short = 'p', value_name = "[IP:]HOST:CONTAINER[/udp]")]
    publish: Vec<PortMapping>,
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

/// `--isolation`, shared by `build`, `run` and `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct IsolationArg {
    /// How builds and commands are contained: `userns` (the rootless sandbox), `chroot`
    /// (root in a container without user namespaces), `none` (an unprivileged container
    /// whose own image is the badger; the container is the boundary), or `auto`, the
    /// strongest that works here (`solum-build info` says which, and why not the others).
    #[arg(
        long = "isolation",
        value_name = "LEVEL",
        env = "SOLUM_BUILD_ISOLATION",
        default_value = "auto"
    )]
    pub level: runtime::Isolation,
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
    super::exit::require_available_isolation(args.isolation.level)?;
    super::exit::refuse_isolation_none(args.isolation.level, "run")?;
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
    let network = network_of(args.network, args.publish)?;
    args.limits.apply()?;
    let reporter = CliReporter::new(true);
    let opened = open_image(&reference, &context.store, None, &reporter)?;
    if !context.quiet {
        if let Some(hint) = publish_hint(&opened.image.config, &network) {
            eprintln!("{hint}");
        }
    }
    let layout = open_store(&context.store)?;
    let request = RunRequest {
        command: args.command,
        env: args.env,
        workdir: args.workdir,
        network,
        isolation: args.isolation.level,
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

/// The sandbox's network from `--network` and `-p`.
fn network_of(mode: Option<NetworkMode>, publish: Vec<PortMapping>) -> Result<Network, UsageError> {
    match (mode, publish.is_empty()) {
        (None | Some(NetworkMode::None), true) => Ok(Network::None),
        (Some(NetworkMode::Host), true) => Ok(Network::Host),
        (None | Some(NetworkMode::Slirp4netns), _) => Ok(Network::UserMode { publish }),
        (Some(NetworkMode::Host), false) => Err(UsageError(
            "-p cannot be used with --network host: the command then shares the host's \
             network, so the ports it listens on are the host's already (nothing to publish); \
             drop -p, or drop --network host to publish through slirp4netns"
                .into(),
        )),
        (Some(NetworkMode::None), false) => Err(UsageError(
            "-p cannot be used with --network none: that network has no way in from the \
             host; drop --network none (with -p the default is slirp4netns)"
                .into(),
        )),
    }
}

/// `hint: the image listens on 8080/tcp; publish it with -p 8080:8080` when the image
/// declares ports and the run publishes none (with `--network host` they are the host's
/// already). Entries that are not `PORT[/tcp|/udp]` are left out: the config is the
/// image author's text, not ours to print.
fn publish_hint(config: &oci_spec::image::ImageConfiguration, network: &Network) -> Option<String> {
    let unpublished = match network {
        Network::None => true,
        Network::UserMode { publish } => publish.is_empty(),
        Network::Host => false,
    };
    let exposed = config.config().as_ref()?.exposed_ports().clone()?;
    let ports: Vec<(u16, Protocol)> = exposed.iter().filter_map(|key| exposed_port(key)).collect();
    if !unpublished || ports.is_empty() {
        return None;
    }
    let listed: Vec<String> = ports
        .iter()
        .map(|(port, proto)| format!("{port}/{proto}"))
        .collect();
    let flags: Vec<String> = ports
        .iter()
        .map(|&(port, proto)| match proto {
            Protocol::Tcp => format!("-p {port}:{port}"),
            Protocol::Udp => format!("-p {port}:{port}/udp"),
        })
        .collect();
    let it = if ports.len() == 1 { "it" } else { "them" };
    Some(format!(
        "hint: the image listens on {}; publish {it} with {}",
        listed.join(", "),
        flags.join(" ")
    ))
}

/// `8080/tcp`, `53/udp` or `8080` (an `ExposedPorts` key) as a port and protocol.
fn exposed_port(key: &str) -> Option<(u16, Protocol)> {
    let (port, proto) = match key.split_once('/') {
        Some((port, proto)) => (port, proto.parse().ok()?),
        None => (key, Protocol::Tcp),
    };
    let port: u16 = port
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| port.parse().ok())??;
    (port != 0).then_some((port, proto))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(super::parse_size("512"), Some(512));
        assert_eq!(super::parse_size("64k"), Some(64 << 10));
        assert_eq!(super::parse_size("512M"), Some(512 << 20));
        assert_eq!(super::parse_size("4GiB"), Some(4 << 30));
        assert_eq!(super::parse_size("lots"), None);
        assert_eq!(super::parse_size(""), None);
    }

    #[test]
    fn publishing_picks_the_user_mode_network_and_refuses_host_and_none() {
        let publish = vec!["8080:80".parse().unwrap()];
        assert_eq!(network_of(None, vec![]).unwrap(), Network::None);
        assert_eq!(
            network_of(Some(NetworkMode::Host), vec![]).unwrap(),
            Network::Host
        );
        assert_eq!(
            network_of(None, publish.clone()).unwrap(),
            Network::UserMode {
                publish: publish.clone()
            }
        );
        assert_eq!(
            network_of(Some(NetworkMode::Slirp4netns), vec![]).unwrap(),
            Network::UserMode { publish: vec![] }
        );
        let host = network_of(Some(NetworkMode::Host), publish.clone()).unwrap_err();
        assert!(host.0.contains("--network host"), "{host}");
        assert!(network_of(Some(NetworkMode::None), publish).is_err());
    }

    fn config(exposed: &[&str]) -> oci_spec::image::ImageConfiguration {
        let ports: serde_json::Map<String, serde_json::Value> = exposed
            .iter()
            .map(|p| ((*p).to_string(), serde_json::json!({})))
            .collect();
        serde_json::from_value(serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "ExposedPorts": ports },
            "rootfs": { "type": "layers", "diff_ids": [] },
        }))
        .unwrap()
    }

    #[test]
    fn the_hint_names_the_exposed_ports_and_the_flags_to_publish_them() {
        let hint = publish_hint(&config(&["8080/tcp"]), &Network::None).unwrap();
        assert_eq!(
            hint,
            "hint: the image listens on 8080/tcp; publish it with -p 8080:8080"
        );
        let hint = publish_hint(&config(&["8080", "53/udp"]), &Network::None).unwrap();
        assert!(
            hint.ends_with("publish them with -p 53:53/udp -p 8080:8080")
                || hint.ends_with("publish them with -p 8080:8080 -p 53:53/udp"),
            "{hint}"
        );
        // Published already, or the host's ports anyway: no hint.
        let published = Network::UserMode {
            publish: vec!["1:8080".parse().unwrap()],
        };
        assert_eq!(publish_hint(&config(&["8080/tcp"]), &published), None);
        assert_eq!(publish_hint(&config(&["8080/tcp"]), &Network::Host), None);
        assert_eq!(publish_hint(&config(&[]), &Network::None), None);
        // An image's own text is never printed: what is not a port is left out.
        assert_eq!(
            publish_hint(
                &config(&["\u{1b}]0;pwned\u{7}/tcp", "0/tcp", "80/sctp"]),
                &Network::None
            ),
            None
        );
    }
}
