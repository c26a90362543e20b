//! A delivery: build (with the test gate) and commit a DU, push it when asked, and end in a
//! final state. The CLI's `build` and the server's workflows both run this one function;
//! they differ only in what they report and record, through a [`Reporter`] and a
//! [`Ledger`].
//!
//! In order: the build (`pipeline::build`, which reports QUEUED, BUILDING, UNIT_TESTING and
//! BUILT and names the DU in the store); the cancel check; the ledger's `built`; when there
//! is a destination, the cancel check again, PUSHING and the copy; the ledger's
//! `delivered`; and last the final state, READY or the failure's, reported through the
//! same reporter. An app file whose `trigger_actions` ask for `deploy` is told, after the
//! build, whether that push happens (a destination is configured) or not (a warning: no
//! push target). Every outcome is reported exactly once as a terminal state, so a caller
//! never maps errors itself: [`DeliveryError::state`] is the one map from a failure to its
//! state.
//!
//! The cancel rule: a cancel requested before the build returns wins over whatever the
//! build returned (a killed step may surface as a failed command or a fetch error rather
//! than as `BuildError::Cancelled`), and it is checked once more before the push starts.
//! A push that has started runs to its end; a DU already named in the store stays there
//! (the next build of the same inputs finds it in the build cache).

use super::build::{build, AppInput, BuildError, BuildRequest, Built};
use super::redaction::RedactionError;
use super::start_check::StartCheckError;
use crate::attest::du::{attach_to_du, AttestError, AttestSettings, DuRun, LogDigest};
use crate::attest::provenance::{BuildOptions, Builder};
use crate::error_class::{Classify, ErrorClass};
use crate::image::{Digest, ImageReference};
use crate::report::Reporter;
use crate::report::State;
use crate::transport::{self, RegistryTransport, TransportError};
use runtime::CancelHandle;
use std::path::Path;

/// An error of a caller's ledger (the server's database), kept as the caller made it.
pub type LedgerError = Box<dyn std::error::Error + Send + Sync>;

/// Why a delivery did not end READY.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The caller asked for a push it cannot make (no destination configured, or one that
    /// does not parse): found before the build, reported as PUSH_FAILED after it.
    #[error("{0}")]
    PushRefused(String),
    #[error("cannot push {store_name} to {destination}")]
    Push {
        store_name: String,
        destination: String,
        #[source]
        source: Box<TransportError>,
    },
    #[error(transparent)]
    Attest(Box<AttestError>),
    #[error("cannot record the {what}")]
    Ledger {
        what: &'static str,
        #[source]
        source: LedgerError,
    },
}

impl Classify for DeliveryError {
    fn class(&self) -> ErrorClass {
        match self {
            DeliveryError::Cancelled => ErrorClass::Interrupted,
            DeliveryError::Build(inner) => inner.class(),
            DeliveryError::Push { source, .. } => source.class(),
            DeliveryError::Attest(inner) => inner.class(),
            // A push the caller asked for but cannot have, and the caller's own records.
            DeliveryError::PushRefused(_) | DeliveryError::Ledger { .. } => ErrorClass::Failure,
        }
    }
}

impl DeliveryError {
    /// The final state of a delivery that ended with this error: the one map from a
    /// failure to a state.
    pub fn state(&self) -> State {
        match self {
            DeliveryError::Cancelled | DeliveryError::Build(BuildError::Cancelled) => {
                State::Cancelled
            }
            // The sandbox failing to run the check is not the build's fault.
            DeliveryError::Build(BuildError::WouldNotStart(StartCheckError::Workspace(_))) => {
                State::Error
            }
            DeliveryError::Build(
                BuildError::BuildFailed { .. }
                | BuildError::AppBuildFailed { .. }
                | BuildError::WouldNotStart(_)
                | BuildError::Redaction(RedactionError::SecretInLayer { .. }),
            ) => State::BuildFailed,
            DeliveryError::Build(BuildError::TestsFailed { .. }) => State::UnitTestingFailed,
            // The hint does not change which step failed.
            DeliveryError::Build(BuildError::NoNetwork(failed)) => match **failed {
                BuildError::TestsFailed { .. } => State::UnitTestingFailed,
                _ => State::BuildFailed,
            },
            DeliveryError::PushRefused(_) | DeliveryError::Push { .. } => State::PushFailed,
            DeliveryError::Build(_) | DeliveryError::Attest(_) | DeliveryError::Ledger { .. } => {
                State::Error
            }
        }
    }
}

/// Where the DU goes after the build.
#[derive(Clone, Debug)]
pub enum PushTo {
    /// Nowhere: the delivery ends with the DU in the store.
    Nowhere,
    Destination(ImageReference),
    /// A push was asked for and cannot be made: the delivery builds, then ends
    /// PUSH_FAILED with this reason.
    Refused(String),
}

/// Everything a delivery takes.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub build: BuildRequest,
    pub push: PushTo,
    /// More names for the pushed DU, pushed after [`PushTo::Destination`] succeeded (a
    /// moving tag such as `APP:latest` that a deployer follows). The blobs are there by
    /// then: each is a manifest upload. A failure is a failed push.
    pub also_push: Vec<ImageReference>,
    /// The SBOMs, provenance and signatures attached to the DU (see `attest::du`).
    pub attest: AttestSettings,
    /// Who runs the delivery, for the provenance's `builder.id`.
    pub builder: Builder,
    /// The provenance's `invocationId`: the workflow's id, else a random one.
    pub invocation_id: Option<String>,
}

/// What a delivery delivered.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub built: Built,
    /// The push's destination, when there was one.
    pub pushed_to: Option<ImageReference>,
}

/// What a caller keeps of a delivery as it goes, beyond what the reporter shows: the
/// server's records. A failure of either step ends the delivery in ERROR.
pub trait Ledger {
    /// The DU is built and named in the store (before any push).
    fn built(&self, _built: &Built) -> Result<(), LedgerError> {
        Ok(())
    }
    /// Everything is done; READY follows.
    fn delivered(&self, _delivered: &Delivered) -> Result<(), LedgerError> {
        Ok(())
    }
}

/// A ledger that keeps nothing (the CLI: stdout and the store are its record).
pub struct NoLedger;

impl Ledger for NoLedger {}

/// Runs a delivery to its final state, which is reported through `reporter` (READY with
/// the DU's store name and digest, or the failure's state with the error and its causes).
pub fn deliver(
    delivery: &Delivery,
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    cancel: &CancelHandle,
    reporter: &dyn Reporter,
    ledger: &dyn Ledger,
) -> Result<Delivered, DeliveryError> {
    let result = run(delivery, store, registry, cancel, reporter, ledger);
    match &result {
        Ok(delivered) => {
            let built = &delivered.built;
            let cache_hit = if built.cache_hit { " (cache hit)" } else { "" };
            reporter.stage(
                State::Ready,
                &format!("{} {}{cache_hit}", built.tag, built.manifest_digest),
            );
        }
        Err(error) => reporter.stage(error.state(), &error_chain(error)),
    }
    result
}

fn run(
    delivery: &Delivery,
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    cancel: &CancelHandle,
    reporter: &dyn Reporter,
    ledger: &dyn Ledger,
) -> Result<Delivered, DeliveryError> {
    let started_on = crate::pipeline::timestamp(None);
    let log = LogDigest::new(reporter);
    let built = build(&delivery.build, store, registry, cancel, &log);
    check_cancel(cancel)?;
    let built = built?;
    attest(delivery, store, &built, started_on, &log)?;
    let reporter: &dyn Reporter = &log;
    ledger
        .built(&built)
        .map_err(|source| DeliveryError::Ledger {
            what: "built DU",
            source,
        })?;

    if built.asks_deploy {
        match &delivery.push {
            PushTo::Destination(destination) => reporter.status(
                "Deploying",
                &format!(
                    "trigger_actions asks for deploy: pushing to {}",
                    transport::describe(destination)
                ),
            ),
            PushTo::Nowhere => reporter.warning(
                "trigger_actions asks for deploy, which needs a push target (build --push REF, or the server's --push-to): nothing is pushed",
            ),
            PushTo::Refused(_) => {}
        }
    }
    let pushed_to = match &delivery.push {
        PushTo::Nowhere => None,
        PushTo::Refused(reason) => return Err(DeliveryError::PushRefused(reason.clone())),
        PushTo::Destination(destination) => {
            check_cancel(cancel)?;
            reporter.stage(State::Pushing, &transport::describe(destination));
            for destination in std::iter::once(destination).chain(&delivery.also_push) {
                push(store, registry, &built.tag, destination, reporter).map_err(|source| {
                    DeliveryError::Push {
                        store_name: built.tag.clone(),
                        destination: transport::describe(destination),
                        source: Box::new(source),
                    }
                })?;
            }
            Some(destination.clone())
        }
    };
    let delivered = Delivered { built, pushed_to };
    ledger
        .delivered(&delivered)
        .map_err(|source| DeliveryError::Ledger {
            what: "delivered DU",
            source,
        })?;
    Ok(delivered)
}

/// Attaches the SBOMs, the provenance and (with a key) the signatures to the DU just
/// named, before any push, so the push carries them.
fn attest(
    delivery: &Delivery,
    store: &Path,
    built: &Built,
    started_on: String,
    log: &LogDigest<'_>,
) -> Result<(), DeliveryError> {
    if delivery.attest.disabled {
        return Ok(());
    }
    let request = &delivery.build;
    let mut identities: Vec<String> = match &delivery.push {
        PushTo::Destination(destination) => std::iter::once(destination)
            .chain(&delivery.also_push)
            .filter_map(signature_identity)
            .collect(),
        _ => Vec::new(),
    };
    if identities.is_empty() {
        identities.push(built.tag.clone());
    }
    identities.dedup();
    let run = DuRun {
        tag: &built.tag,
        builder: delivery.builder,
        options: provenance_options(request, &built.tag),
        app_file: app_file_digest(&request.app),
        invocation_id: delivery
            .invocation_id
            .clone()
            .unwrap_or_else(random_invocation_id),
        started_on,
        finished_on: crate::pipeline::timestamp(None),
        log_digest: log.digest(),
        identities,
    };
    let attest_error = |error: AttestError| DeliveryError::Attest(Box::new(error));
    let layout = crate::store::Layout::open(store)
        .map_err(|error| attest_error(crate::store::ImageError::from(error).into()))?;
    let attached = attach_to_du(&layout, &run, &delivery.attest, log).map_err(attest_error)?;
    if attached.added > 0 {
        log.status(
            "Attached",
            &format!(
                "{} to {} ({} referrers)",
                attached.added,
                built.tag,
                attached.referrers.len()
            ),
        );
    }
    Ok(())
}

/// `HOST/REPO` of a registry destination: the identity a cosign signature names and
/// podman checks. Other sinks (layouts, archives) have none.
fn signature_identity(destination: &ImageReference) -> Option<String> {
    match destination {
        ImageReference::Registry {
            registry,
            repository,
            ..
        } => Some(format!("{registry}/{repository}")),
        _ => None,
    }
}

/// What the provenance records of the request: choices, never secret values.
fn provenance_options(request: &BuildRequest, tag: &str) -> BuildOptions {
    let overrides = &request.overrides;
    let mut chosen = Vec::new();
    for (flag, value) in [
        ("--badger", &overrides.badger),
        ("--source", &overrides.source),
        ("--revision", &overrides.revision),
        ("--source-path", &overrides.source_path),
        ("--artifact", &overrides.artifact),
        ("--run-cmd", &overrides.run_cmd),
        ("--test-cmd", &overrides.test_cmd),
        ("--build-cmd", &overrides.build_cmd),
    ] {
        if let Some(value) = value {
            // A source or artifact URL may carry a token; the statement is public.
            let value = match flag {
                "--source" | "--artifact" => crate::source::redact_url(value),
                _ => value.clone(),
            };
            chosen.push((flag.to_string(), value));
        }
    }
    for port in &overrides.ports {
        chosen.push(("--port".to_string(), port.to_string()));
    }
    // `--env` values end up in the DU's config for everyone to read; the names suffice.
    for (name, _) in &overrides.environment {
        chosen.push(("--env".to_string(), name.clone()));
    }
    BuildOptions {
        tag: tag.to_string(),
        network_host: request.network_host,
        isolation: request.isolation.to_string(),
        timeout_seconds: request.timeout.map(|t| t.as_secs()),
        no_cache: request.no_cache,
        run_tests: request.run_tests,
        compression: format!("{:?}", request.compression).to_lowercase(),
        overrides: chosen,
        build_env_names: overrides
            .build_environment
            .iter()
            .map(|(name, _)| name.clone())
            .collect(),
        secret_ids: request.inputs.key_part().unwrap_or_default(),
        ca_certificates: request.inputs.ca_certificates.is_some(),
        cache_from: request
            .registry_cache
            .from
            .iter()
            .map(ToString::to_string)
            .collect(),
        cache_to: request.registry_cache.to.as_ref().map(ToString::to_string),
    }
}

/// Where the app file came from and the digest of its bytes (bounded like the app file
/// loader: a file larger than that was refused by the build already).
fn app_file_digest(app: &AppInput) -> Option<(String, Digest)> {
    match app {
        AppInput::File(path) => {
            let bytes = std::fs::read(path).ok()?;
            Some((path.display().to_string(), Digest::of_bytes(&bytes)))
        }
        AppInput::Text { text, origin } => {
            Some((origin.clone(), Digest::of_bytes(text.as_bytes())))
        }
        AppInput::CommandLine { .. } => None,
    }
}

/// A random id for a CLI run: 16 bytes of the kernel's random source, as hex.
fn random_invocation_id() -> String {
    use rand_core::RngCore as _;
    // The same source the key generator draws from (the kernel's, through getrandom).
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn check_cancel(cancel: &CancelHandle) -> Result<(), DeliveryError> {
    if cancel.is_cancelled() {
        Err(DeliveryError::Cancelled)
    } else {
        Ok(())
    }
}

/// Copies the store image `store_name` to `destination` (any sink: a registry, a layout,
/// an archive).
pub fn push(
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    store_name: &str,
    destination: &ImageReference,
    reporter: &dyn Reporter,
) -> Result<Digest, TransportError> {
    let source = ImageReference::Store {
        name: store_name.to_string(),
    };
    let opened = transport::open_image(&source, store, registry, reporter)?;
    transport::write_image(&opened, destination, store, registry, reporter)
}

pub use crate::error_class::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    fn build_error(error: BuildError) -> DeliveryError {
        DeliveryError::Build(error)
    }

    #[test]
    fn every_failure_has_one_state() {
        let tail = Vec::new;
        let cases = [
            (DeliveryError::Cancelled, State::Cancelled),
            (build_error(BuildError::Cancelled), State::Cancelled),
            (
                build_error(BuildError::BuildFailed {
                    badger: "b".into(),
                    how: "exited with 1".into(),
                    tail: tail(),
                }),
                State::BuildFailed,
            ),
            (
                build_error(BuildError::TestsFailed {
                    command: "make test".into(),
                    how: "exited with 2".into(),
                    tail: tail(),
                }),
                State::UnitTestingFailed,
            ),
            (build_error(BuildError::NoSource), State::Error),
            (
                DeliveryError::PushRefused("the server has no --push-to destination".into()),
                State::PushFailed,
            ),
            (
                DeliveryError::Push {
                    store_name: "app".into(),
                    destination: "oci:/nowhere".into(),
                    source: Box::new(TransportError::WriteOnly {
                        reference: "x".into(),
                        transport: "docker-archive",
                    }),
                },
                State::PushFailed,
            ),
            (
                DeliveryError::Ledger {
                    what: "built DU",
                    source: "the database is gone".into(),
                },
                State::Error,
            ),
        ];
        for (error, state) in cases {
            assert_eq!(error.state(), state, "{error}");
            assert!(error.state().is_failure(), "{error}");
        }
    }

    /// Keeps the states a delivery reports.
    #[derive(Default)]
    struct States(std::sync::Mutex<Vec<(State, String)>>);

    impl Reporter for States {
        fn stage(&self, state: State, detail: &str) {
            self.0.lock().unwrap().push((state, detail.to_string()));
        }
    }

    /// A delivery whose build fails at once: its app file is not an app file.
    fn broken_delivery() -> Delivery {
        Delivery {
            build: BuildRequest {
                app: crate::pipeline::build::AppInput::Text {
                    text: "version: 1\n".into(),
                    origin: "a test".into(),
                },
                overrides: crate::manifest::Overrides::default(),
                tag: None,
                network_host: false,
                isolation: runtime::Isolation::Auto,
                timeout: None,
                no_cache: false,
                compression: crate::layer::LayerCompression::Gzip,
                epoch: None,
                run_tests: false,
                source_rules: crate::source::FetchRules::default(),
                privilege: crate::privilege::Privilege::of_this_process(),
                inputs: crate::pipeline::build_inputs::BuildInputs::default(),
                registry_cache: crate::pipeline::registry_cache::RegistryCache::default(),
            },
            push: PushTo::Refused("never reached".into()),
            also_push: Vec::new(),
            attest: AttestSettings::default(),
            builder: Builder::Cli,
            invocation_id: None,
        }
    }

    #[test]
    fn the_provenance_options_name_no_token_of_a_source_or_artifact_url() {
        let mut request = broken_delivery().build;
        request.overrides.source = Some("https://user:PASSWORD@git.example/app.git".into());
        request.overrides.artifact = Some("https://files.example/a.tgz?token=SECRET".into());
        request.overrides.run_cmd = Some("serve --url https://u@h/x".into());
        let options = provenance_options(&request, "app:1");
        let shown = format!("{:?}", options.overrides);
        assert!(
            !shown.contains("PASSWORD") && !shown.contains("SECRET"),
            "{shown}"
        );
        assert!(shown.contains("user:<redacted>@git.example"), "{shown}");
        // Commands are what the caller wrote, not URLs to clean.
        assert!(shown.contains("serve --url https://u@h/x"), "{shown}");
    }

    #[test]
    fn the_final_state_is_reported_once_and_a_cancel_wins() {
        let store = tempfile::tempdir().unwrap();
        let run = |cancel: &CancelHandle| {
            let states = States::default();
            let error = deliver(
                &broken_delivery(),
                store.path(),
                None,
                cancel,
                &states,
                &NoLedger,
            )
            .unwrap_err();
            (error.state(), states.0.into_inner().unwrap())
        };

        let (state, reported) = run(&CancelHandle::new());
        assert_eq!(state, State::Error);
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert_eq!(reported[0].0, State::Error);
        assert!(reported[0].1.contains("a test"), "{reported:?}");

        // The same failure after a cancel was asked for is a cancel.
        let cancel = CancelHandle::new();
        cancel.cancel();
        let (state, reported) = run(&cancel);
        assert_eq!(state, State::Cancelled);
        assert_eq!(reported, [(State::Cancelled, "cancelled".to_string())]);
    }

    #[test]
    fn a_chain_reads_as_one_line() {
        let error = DeliveryError::Ledger {
            what: "built DU",
            source: "the database is gone".into(),
        };
        assert_eq!(
            error_chain(&error),
            "cannot record the built DU: the database is gone"
        );
    }
}
