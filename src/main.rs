//! The `solum-build` binary: everything lives in the library; this file only hands the
//! process to the sandbox entry when it was re-executed as one, then runs the CLI.

fn main() -> std::process::ExitCode {
    // Must run before anything starts a thread: the sandbox creates namespaces, and
    // `unshare(CLONE_NEWUSER)` fails in a multi-threaded process.
    runtime::enter_sandbox_if_requested();
    solum_build::cli::main()
}
