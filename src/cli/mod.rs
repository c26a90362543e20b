//! The command line: clap definitions, one subcommand per file, and the mapping of outcomes
//! to exit codes (0 success, 1 build or test failure, 2 usage or input error).

/// Runs the command line and returns the process exit code. No subcommand is on main yet:
/// it says so and exits 2, so that no script mistakes it for a success.
pub fn main() -> i32 {
    eprintln!(
        "error: solum-build has no subcommands yet; the store, layer codec and sandbox are \
         libraries for now (see README.md)"
    );
    2
}
