//! How the CLI talks to a person: cargo-style status lines on stderr (a right-aligned verb,
//! then the subject), `warning:` and `error:` prefixes, sizes in human units. Results go to
//! stdout elsewhere; nothing here writes to stdout.

use crate::image::Digest;
use crate::report::Reporter;
use std::io::Write;

/// Renders library progress on stderr; `--quiet` shows only warnings.
pub struct CliReporter {
    pub quiet: bool,
}

impl Reporter for CliReporter {
    fn status(&self, verb: &str, subject: &str) {
        if !self.quiet {
            eprintln!("{verb:>12} {subject}");
        }
    }

    fn blob_start(&self, digest: &Digest, size: Option<u64>) {
        if !self.quiet {
            let size = size.map(human_size).unwrap_or_default();
            eprintln!("{:>12} blob {} {size}", "Copying", digest.short());
        }
    }

    fn blob_done(&self, digest: &Digest, skipped: bool) {
        if skipped && !self.quiet {
            eprintln!(
                "{:>12} blob {} (already present)",
                "Skipping",
                digest.short()
            );
        }
    }

    fn warning(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// Prints an error and its causes, once: `error: top` then `  caused by: …` lines.
pub fn print_error(error: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {error}");
    for cause in error.chain().skip(1) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
}

/// `12.3 MB`-style sizes (decimal units, as registries and skopeo print them).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Writes one line of results to stdout. A closed pipe (`… | head`) ends the process
/// quietly with the status a shell reports for SIGPIPE, instead of a panic.
pub fn result_line(text: impl std::fmt::Display) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{text}").and_then(|_| stdout.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: cannot write to stdout: {error}");
        std::process::exit(super::exit::FAILURE);
    }
}
