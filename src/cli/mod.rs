//! The command line: clap definitions, one subcommand per file, and the mapping of outcomes
//! to exit codes: 0 success, 1 the work failed (a build, test or command failed, a transfer
//! or the filesystem failed), 2 the input was wrong (usage, a reference, a file or image the
//! user named), 130 interrupted, 141 stdout closed early (see `exit`). Errors are printed
//! once, as a chain, on stderr; stdout carries only results (a digest, a listing, JSON) so
//! that scripts can read it.

mod attach;
mod attest;
mod badger;
mod build;
mod client;
mod exit;
mod images;
mod import;
mod info;
mod keygen;
mod output;
mod push;
mod registry;
mod run;
mod sbom;
#[cfg(feature = "server")]
mod serve;
mod sign;
mod unpack;
mod uploads;
mod verify;

use clap::{Parser, Subcommand};
use exit::UsageError;
use std::path::PathBuf;

// The doc comment below is clap's --help text, written for a terminal: its brackets are
// usage syntax, not rustdoc links.
#[allow(rustdoc::broken_intra_doc_links)]
/// A daemonless, rootless OCI image builder.
///
/// Images live in a local store, an OCI image layout (`--store`, else $SOLUM_BUILD_STORE,
/// else ~/.local/share/solum-build) that skopeo, umoci and podman read as oci:STORE:NAME.
/// References: NAME[:TAG] (the store), oci:DIR[:NAME], oci-archive:FILE[:NAME],
/// docker-archive:FILE[:NAME:TAG] (output), docker://HOST/REPO[:TAG|@DIGEST].
///
/// Exit codes: 0 success, 1 the work failed, 2 the input was wrong, 130 interrupted
/// (Ctrl-C, SIGTERM), 141 stdout was closed early (`… | head`), quietly. `run` exits with
/// its command's own status.
#[derive(Debug, Parser)]
#[command(name = "solum-build", version, max_term_width = 100)]
pub struct Cli {
    /// The image store folder, for the commands that use one (they take it after their
    /// name too).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Print only results and errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an app into a deployment unit (DU) image: source + badger + build.sh + tests.
    Build(WithStore<Box<build::BuildArgs>>),
    /// Build, list and search badgers (language packs: a base image with a build.sh).
    Badger(badger::BadgerArgs),
    /// Make a single-layer base image from a root filesystem (a folder or a tarball).
    Import(WithStore<import::ImportArgs>),
    /// List the images of the store.
    Images(WithStore<images::ImagesArgs>),
    /// Print an image's manifest, config and annotations as JSON.
    Inspect(WithStore<images::InspectArgs>),
    /// Attach a file (an SBOM, notes, a signature) to an image of the store as an OCI
    /// referrer.
    Attach(WithStore<attach::AttachArgs>),
    /// Print an image's software bill of materials (SPDX 2.3 or CycloneDX 1.5 JSON).
    Sbom(WithStore<sbom::SbomArgs>),
    /// Remove names from the store (their blobs stay until `gc`).
    Rmi(WithStore<images::RmiArgs>),
    /// Remove blobs that no name reaches.
    Gc(WithStore<images::GcArgs>),
    /// Write an image's root filesystem into a new folder, like `umoci unpack`.
    Unpack(WithStore<unpack::UnpackArgs>),
    /// Copy an image from one reference to another (store, oci:, oci-archive:,
    /// docker-archive:, docker://).
    Push(WithStore<push::PushArgs>),
    /// Copy an image from a registry into the store.
    Pull(WithStore<registry::PullArgs>),
    /// Save credentials for a registry (checked against it first).
    Login(registry::LoginArgs),
    /// Remove saved credentials of a registry.
    Logout(registry::LogoutArgs),
    /// Run a command in an image, in the rootless sandbox.
    Run(WithStore<run::RunArgs>),
    /// Make a P-256 key pair for `sign` (PATH.key, PATH.pub; cosign can import it).
    Keygen(keygen::KeygenArgs),
    /// Sign an image of the store or a registry (cosign-compatible: podman and skopeo verify it).
    Sign(WithStore<sign::SignArgs>),
    /// Check a DU's signature, its signed SLSA provenance and its SBOMs against a public
    /// key, and print what the provenance says (exit 1 on any mismatch).
    Verify(WithStore<verify::VerifyArgs>),
    /// Show what this host allows the sandbox and the isolation level `auto` picks, with why.
    Info(WithStore<info::InfoArgs>),
    #[cfg(feature = "server")]
    /// Run the REST API server: apps, workflows, managed git, webhooks (see --help).
    Serve(WithStore<Box<serve::ServeArgs>>),
    /// Apps on a server: create FILE | list | show | update | delete.
    App(client::AppArgs),
    /// Workflows on a server: start APP | list | show | logs --follow | cancel.
    Workflow(client::WorkflowArgs),
    /// DUs on a server: list | register REF --name NAME [--push].
    Du(uploads::DuArgs),
    /// Send a signed push event to a server's trigger URL (a post-receive hook's job).
    Trigger(client::TriggerArgs),
}

/// `--store DIR`, on each command that uses the image store (and only there, so that the
/// help of the client commands, which talk to a server, does not offer it).
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArg {
    /// The image store folder (default: $SOLUM_BUILD_STORE, else
    /// ~/.local/share/solum-build).
    #[arg(long = "store", value_name = "DIR")]
    pub path: Option<PathBuf>,
}

/// A command that uses the image store: its own arguments and [`StoreArg`].
#[derive(Debug, clap::Args)]
pub struct WithStore<T: clap::Args> {
    #[command(flatten)]
    store: StoreArg,
    #[command(flatten)]
    args: T,
}

impl Command {
    /// The command's `--store` option (given or not after its name); `None` when the
    /// command uses no store at all.
    fn store_arg(&self) -> Option<&StoreArg> {
        match self {
            Command::Build(WithStore { store, .. })
            | Command::Import(WithStore { store, .. })
            | Command::Images(WithStore { store, .. })
            | Command::Inspect(WithStore { store, .. })
            | Command::Attach(WithStore { store, .. })
            | Command::Sbom(WithStore { store, .. })
            | Command::Rmi(WithStore { store, .. })
            | Command::Gc(WithStore { store, .. })
            | Command::Unpack(WithStore { store, .. })
            | Command::Push(WithStore { store, .. })
            | Command::Pull(WithStore { store, .. })
            | Command::Run(WithStore { store, .. })
            | Command::Sign(WithStore { store, .. })
            | Command::Verify(WithStore { store, .. })
            | Command::Info(WithStore { store, .. }) => Some(store),
            #[cfg(feature = "server")]
            Command::Serve(WithStore { store, .. }) => Some(store),
            Command::Badger(args) => args.store(),
            Command::Login(_)
            | Command::Logout(_)
            | Command::Keygen(_)
            | Command::App(_)
            | Command::Workflow(_)
            | Command::Du(_)
            | Command::Trigger(_) => None,
        }
    }
}

/// The `--store` flag in effect: the one before the command's name (`solum-build --store
/// DIR CMD`) or the one after it, refused for a command that uses no store (it would be
/// ignored without a word) and when the two name different folders.
fn store_flag(before: Option<PathBuf>, command: &Command) -> Result<Option<PathBuf>, UsageError> {
    let Some(arg) = command.store_arg() else {
        return match before {
            Some(_) => Err(UsageError(
                "this command uses no image store (it talks to a server or a registry, or writes keys): leave out --store".into(),
            )),
            None => Ok(None),
        };
    };
    match (before, &arg.path) {
        (Some(before), Some(after)) if before != *after => Err(UsageError(format!(
            "--store is given twice ({} and {}): give it once",
            before.display(),
            after.display()
        ))),
        (before, after) => Ok(before.or_else(|| after.clone())),
    }
}

/// Global settings every command gets.
pub struct Context {
    pub store: PathBuf,
    pub quiet: bool,
    /// Root or rootless, decided once here for every command.
    pub privilege: crate::privilege::Privilege,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(exit_status(run_command_line()))
}

/// A code as the process's exit status: its low 8 bits, all that a parent ever sees.
fn exit_status(code: i32) -> u8 {
    (code & 0xff) as u8
}

fn run_command_line() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    if error.kind()
                        == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    {
                        exit::USAGE
                    } else {
                        exit::SUCCESS
                    }
                }
                _ => exit::USAGE,
            };
        }
    };
    let store = match store_flag(cli.store, &cli.command) {
        Ok(store) => store,
        Err(error) => {
            output::print_error(&error.into());
            return exit::USAGE;
        }
    };
    let context = Context {
        store: crate::store::default_store_path(store),
        quiet: cli.quiet,
        privilege: crate::privilege::Privilege::of_this_process(),
    };
    let result = match cli.command {
        Command::Build(args) => build::run(&context, *args.args),
        Command::Badger(args) => badger::run(&context, args),
        Command::Import(args) => import::run(&context, args.args),
        Command::Images(args) => images::images(&context, args.args),
        Command::Inspect(args) => images::inspect(&context, args.args),
        Command::Attach(args) => attach::run(&context, args.args),
        Command::Sbom(args) => sbom::run(&context, args.args),
        Command::Rmi(args) => images::rmi(&context, args.args),
        Command::Gc(args) => images::gc(&context, args.args),
        Command::Unpack(args) => unpack::run(&context, args.args),
        Command::Push(args) => push::run(&context, args.args),
        Command::Run(args) => run::run(&context, args.args),
        Command::Pull(args) => registry::pull(&context, args.args),
        Command::Login(args) => registry::login(&context, args),
        Command::Logout(args) => registry::logout(&context, args),
        Command::Verify(args) => verify::verify(&context, args.args),
        Command::Info(args) => info::run(&context, args.args),
        Command::Keygen(args) => keygen::run(&context, args),
        Command::Sign(args) => sign::run(&context, args.args),
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run_serve(&context, *args.args),
        Command::App(args) => client::app(args),
        Command::Workflow(args) => client::workflow(args),
        Command::Du(args) => uploads::du(args),
        Command::Trigger(args) => client::trigger(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            let class = exit::class_of(&error);
            // Nobody reads stdout any more; there is no one to tell.
            if class != crate::error_class::ErrorClass::BrokenPipe {
                output::print_error(&error);
            }
            exit::code_of(class)
        }
    }
}
