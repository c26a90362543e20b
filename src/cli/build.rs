//! `build [APP_FILE]`: the main job. Progress and the build's own output stream to stderr
//! (a header per stage, each output line indented), or JSON lines with `--log-format json`
//! (`{"ts", "stage", "message"}`); the DU's digest is the last line of stdout. Ctrl-C (or
//! SIGTERM) cancels: the sandbox is killed and the scratch folders removed; a second Ctrl-C
//! exits at once. Exit codes: 0 built, 1 the build or its tests failed, 2 bad input, 130
//! cancelled. The work itself is the delivery of `pipeline::delivery`, the one the server
//! runs too; this module only turns flags into it and renders its progress.

use super::exit::{UsageError, INTERRUPTED, SUCCESS};
use super::import::Compression;
use super::output::{human_size, result_line};
use super::registry::BuildRegistry;
use super::Context;
use crate::image::{Digest, ImageReference};
use crate::manifest::Overrides;
use crate::pipeline::build::{AppInput, BuildRequest};
use crate::pipeline::build_inputs::{BuildInputs, CaCertificates, Secret};
use crate::pipeline::delivery::{deliver, Delivery, DeliveryError, NoLedger, PushTo};
use crate::pipeline::source_date_epoch;
use crate::report::Reporter;
use crate::report::State;
use crate::transport::RegistryTransport;
use runtime::CancelHandle;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum NetworkMode {
    None,
    Host,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    solum-build build app.yaml --tag helloworld\n  \
    solum-build build --badger badgers/shell --source ./src --run-cmd ./run.sh --name hello\n\n\
    The source is exported without .git and put at /app; the badger's build command runs \
    there with no network (unless --network host), then test_cmd on a throwaway layer. \
    SOURCE_DATE_EPOCH (default: the source commit's time, else 0) makes the digest \
    reproducible. The writable layer lives in $SOLUM_BUILD_SCRATCH, else on /dev/shm when it \
    is a tmpfs with 4 GiB free, else in the store's cache folder.")]
pub struct BuildArgs {
    /// The application file (YAML or JSON; Solum's v1 app file works unchanged).
    app_file: Option<PathBuf>,
    /// The app's name when there is no app file.
    #[arg(long)]
    name: Option<String>,
    /// The source: a folder, a file:// or git URL (https, ssh, git://), a bare repo path.
    #[arg(long, value_name = "URL|DIR")]
    source: Option<String>,
    /// Branch, tag or commit of a git source.
    #[arg(long, value_name = "REV")]
    revision: Option<String>,
    /// Build this subdirectory of the source (relative; it must stay inside the source),
    /// replacing the app file's `source.path`.
    #[arg(long, value_name = "DIR")]
    source_path: Option<String>,
    /// A tarball of ready-made binaries instead of a source.
    #[arg(long, value_name = "FILE")]
    artifact: Option<String>,
    /// The badger image (store name, oci:, oci-archive:, docker://).
    #[arg(long, value_name = "REF")]
    badger: Option<String>,
    /// The store name of the DU (default: the app's name).
    #[arg(long, short)]
    tag: Option<String>,
    #[arg(long, value_name = "CMD")]
    run_cmd: Option<String>,
    /// The tests (replaces the file's test_cmd; empty: no tests).
    #[arg(long, value_name = "CMD")]
    test_cmd: Option<String>,
    /// The app's own build step, run in /app after the badger's build command.
    #[arg(long, value_name = "CMD")]
    build_cmd: Option<String>,
    /// A port the app listens on (repeatable; replaces the file's ports).
    #[arg(long = "port", value_name = "N")]
    ports: Vec<u32>,
    /// An environment variable of the app (repeatable; wins over the file's).
    #[arg(long = "env", short, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// A variable of the build and test steps only, never in the DU (repeatable; wins over
    /// the file's build_environment).
    #[arg(long = "build-env", value_name = "KEY=VALUE")]
    build_env: Vec<String>,
    /// A secret file for the build and test steps, read-only at /run/secrets/NAME; its
    /// value is masked in the output and must not reach the DU (repeatable; at most 1 MiB).
    #[arg(long = "secret", value_name = "id=NAME,src=FILE")]
    secrets: Vec<String>,
    /// PEM CA certificates the build and test steps trust besides the image's own:
    /// a bundle at /run/solum/ca-certificates.crt, named by SSL_CERT_FILE, PIP_CERT,
    /// REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS... (repeatable; for TLS-inspecting proxies).
    #[arg(long = "ca-cert", value_name = "FILE")]
    ca_certs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "none")]
    network: NetworkMode,
    #[command(flatten)]
    isolation: super::run::IsolationArg,
    /// Kill a build or test step that runs longer than this.
    #[arg(long, value_name = "SECS", default_value = "3600")]
    timeout: u64,
    /// Build even when an identical build is recorded.
    #[arg(long)]
    no_cache: bool,
    /// Do not run test_cmd (the DU manifest then records no test result).
    #[arg(long)]
    skip_tests: bool,
    #[arg(long, value_enum, default_value = "gzip")]
    compression: Compression,
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// After a successful build, also copy the DU here (docker://…, oci:…, any sink).
    #[arg(long, value_name = "REF")]
    push: Option<String>,
    #[command(flatten)]
    registry: super::registry::RegistryFlags,
    #[command(flatten)]
    cache: super::registry::RegistryCacheFlags,
    #[command(flatten)]
    limits: super::run::LimitArgs,
    #[command(flatten)]
    attest: super::attest::AttestFlags,
}

/// Renders build progress as text or JSON lines on stderr.
pub struct BuildReporter {
    pub format: LogFormat,
    pub quiet: bool,
}

impl BuildReporter {
    fn json(stage: &str, message: &str) {
        let line = serde_json::json!({
            "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "stage": stage,
            "message": message,
        });
        eprintln!("{line}");
    }
}

impl Reporter for BuildReporter {
    fn status(&self, verb: &str, subject: &str) {
        match self.format {
            LogFormat::Json => Self::json("STATUS", &format!("{verb} {subject}")),
            LogFormat::Text if !self.quiet => eprintln!("{verb:>12} {subject}"),
            LogFormat::Text => {}
        }
    }

    fn blob_start(&self, digest: &Digest, size: Option<u64>) {
        let size = size.map(human_size).unwrap_or_default();
        self.status("Copying", &format!("blob {} {size}", digest.short()));
    }

    fn warning(&self, message: &str) {
        match self.format {
            LogFormat::Json => Self::json("WARNING", message),
            LogFormat::Text => eprintln!("warning: {message}"),
        }
    }

    fn stage(&self, state: State, detail: &str) {
        match self.format {
            LogFormat::Json => Self::json(state.as_str(), detail),
            // A failure's detail is the error, which the command prints once as it exits.
            LogFormat::Text if state.is_failure() && state != State::Cancelled => {
                eprintln!("==> {state}");
            }
            LogFormat::Text if !self.quiet => eprintln!("==> {state} {detail}"),
            LogFormat::Text => {}
        }
    }

    fn output_line(&self, state: State, line: &str, _stderr: bool) {
        match self.format {
            LogFormat::Json => Self::json(state.as_str(), line),
            LogFormat::Text if !self.quiet => eprintln!("    | {line}"),
            LogFormat::Text => {}
        }
    }
}

/// Ctrl-C and SIGTERM cancel the build; a second one ends the process at once.
pub fn cancel_on_signals() -> anyhow::Result<CancelHandle> {
    let cancel = CancelHandle::new();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, INTERRUPTED, cancel.flag())?;
        signal_hook::flag::register(signal, cancel.flag())?;
    }
    Ok(cancel)
}

/// `KEY=VALUE` entries of a flag, split.
pub(super) fn key_values(
    flag: &str,
    entries: &[String],
) -> Result<Vec<(String, String)>, UsageError> {
    entries
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => Err(UsageError(format!("{flag} {entry:?} is not KEY=VALUE"))),
        })
        .collect()
}

/// The secrets and certificates of the flags, read once, now: a missing, unreadable or
/// malformed file is bad input before any work starts.
fn build_inputs(args: &BuildArgs) -> anyhow::Result<BuildInputs> {
    let mut inputs = BuildInputs {
        ca_certificates: CaCertificates::read(&args.ca_certs, "--ca-cert")?,
        ..BuildInputs::default()
    };
    for given in &args.secrets {
        inputs.add_secret(Secret::from_flag(given)?)?;
    }
    Ok(inputs)
}

pub fn run(context: &Context, args: BuildArgs) -> anyhow::Result<i32> {
    super::exit::require_available_isolation(args.isolation.level)?;
    super::exit::refuse_isolation_none_outside_a_container(args.isolation.level)?;
    let environment = key_values("--env", &args.env)?;
    let build_environment = key_values("--build-env", &args.build_env)?;
    let inputs = build_inputs(&args)?;
    if args.app_file.is_none() && args.badger.is_none() {
        return Err(UsageError(
            "give an app file, or at least --badger and --source (see --help)".into(),
        )
        .into());
    }
    args.limits.apply()?;
    // Paths the user gave are made absolute here, once (see `store::absolute`).
    let app = match args.app_file {
        Some(path) => AppInput::File(crate::store::absolute(path)),
        None => {
            // Without --name a build is named after its source's folder, repository or
            // tarball, not `app`, which builds of different folders would overwrite.
            let source = args.source.as_deref().map(|source| {
                if std::path::Path::new(source).is_dir() {
                    crate::store::absolute(source.into()).display().to_string()
                } else {
                    source.to_string()
                }
            });
            let name = args.name.or_else(|| {
                source
                    .or_else(|| args.artifact.clone())
                    .and_then(|from| crate::manifest::app::name_from_source(&from))
            });
            AppInput::CommandLine { name }
        }
    };
    let build = BuildRequest {
        app,
        overrides: Overrides {
            badger: args.badger,
            source: args.source,
            revision: args.revision,
            source_path: args.source_path,
            artifact: args
                .artifact
                .map(|path| crate::store::absolute(path.into()).display().to_string()),
            run_cmd: args.run_cmd,
            test_cmd: args.test_cmd,
            build_cmd: args.build_cmd,
            ports: args.ports,
            environment,
            build_environment,
        },
        tag: args.tag,
        network_host: matches!(args.network, NetworkMode::Host),
        isolation: args.isolation.level,
        timeout: Some(Duration::from_secs(args.timeout)),
        no_cache: args.no_cache,
        compression: args.compression.into(),
        epoch: source_date_epoch(),
        run_tests: !args.skip_tests,
        source_rules: crate::source::FetchRules::default(),
        privilege: context.privilege,
        inputs,
        registry_cache: args.cache.settings()?,
    };
    let reporter = BuildReporter {
        format: args.log_format,
        quiet: context.quiet,
    };
    // Parsed before the build: a bad destination is bad input, not a failed push.
    let push = match args.push.as_deref() {
        Some(destination) => PushTo::Destination(destination.parse()?),
        None => PushTo::Nowhere,
    };
    let mut client = args.registry.client()?;
    let mut scoped = None;
    // A DU found in a cache repository is mounted from there by a push to the same
    // registry: nothing is uploaded again.
    if let PushTo::Destination(ImageReference::Registry { registry, .. }) = &push {
        client.options.mount_from = (build.registry_cache.from.iter())
            .find(|cache| &cache.registry == registry)
            .map(|cache| cache.repository.clone());
        scoped = Some(BuildRegistry::new(
            client.clone(),
            registry,
            &build.registry_cache,
        ));
    }
    let transport: &dyn RegistryTransport = match &scoped {
        Some(scoped) => scoped,
        None => &client,
    };
    let attest = args.attest.settings()?;
    let cancel = cancel_on_signals()?;
    let delivery = Delivery {
        build,
        push,
        also_push: Vec::new(),
        attest,
        builder: crate::attest::provenance::Builder::Cli,
        invocation_id: None,
    };
    match deliver(
        &delivery,
        &context.store,
        Some(transport),
        &cancel,
        &reporter,
        &NoLedger,
    ) {
        Ok(delivered) => {
            result_line(&delivered.built.manifest_digest)?;
            Ok(SUCCESS)
        }
        Err(error) if error.state() == State::Cancelled => Ok(INTERRUPTED),
        // The build's own error, so that the exit code sees what in it was bad input. The
        // failed step's last lines are left out where its output was shown as it ran.
        Err(DeliveryError::Build(error)) => {
            let streamed = matches!(args.log_format, LogFormat::Text) && !context.quiet;
            Err(if streamed {
                error.without_output_tail()
            } else {
                error
            }
            .into())
        }
        Err(error) => Err(error.into()),
    }
}
