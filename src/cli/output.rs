//! How the CLI talks to a person: cargo-style status lines on stderr (a right-aligned verb,
//! then the subject), `warning:` and `error:` prefixes, sizes in human units, and one line
//! of results at a time on stdout. Image names, annotations and registry messages come
//! from others: every control character in what is printed here (escape sequences that
//! would rewrite the terminal, retitle it or hide text) is shown as `\u00XX` instead,
//! which JSON reads as the same character.

use crate::error_class::{Classify, ErrorClass};
use crate::image::Digest;
use crate::report::Reporter;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// Renders library progress on stderr; `--quiet` shows only warnings. On a terminal each
/// blob transfer gets a progress bar (bytes, rate); otherwise one plain line per blob, so
/// CI logs stay readable.
pub struct CliReporter {
    pub quiet: bool,
    bars: Option<Bars>,
}

struct Bars {
    multi: indicatif::MultiProgress,
    active: Mutex<HashMap<Digest, indicatif::ProgressBar>>,
}

impl CliReporter {
    pub fn new(quiet: bool) -> CliReporter {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(|| Bars {
            multi: indicatif::MultiProgress::new(),
            active: Mutex::new(HashMap::new()),
        });
        CliReporter { quiet, bars }
    }

    fn line(&self, text: &str) {
        let text = &*escape_controls(text, &['\n']);
        match &self.bars {
            // Lines printed through the bars' owner do not tear the bars.
            Some(bars) => {
                let _ = bars.multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

impl Reporter for CliReporter {
    fn status(&self, verb: &str, subject: &str) {
        if !self.quiet {
            self.line(&format!("{verb:>12} {subject}"));
        }
    }

    fn blob_start(&self, digest: &Digest, size: Option<u64>) {
        if self.quiet {
            return;
        }
        if let Some(bars) = &self.bars {
            let bar = bars
                .multi
                .add(indicatif::ProgressBar::new(size.unwrap_or(0)));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>12} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix("Copying");
            bar.set_message(digest.short());
            if let Ok(mut active) = bars.active.lock() {
                active.insert(digest.clone(), bar);
            }
        } else {
            let size = size.map(human_size).unwrap_or_default();
            eprintln!("{:>12} blob {} {size}", "Copying", digest.short());
        }
    }

    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        if let Some(bars) = &self.bars {
            if let Some(bar) = bars.active.lock().ok().and_then(|a| a.get(digest).cloned()) {
                bar.inc(bytes);
            }
        }
    }

    fn blob_done(&self, digest: &Digest, skipped: bool) {
        if self.quiet {
            return;
        }
        if let Some(bars) = &self.bars {
            let bar = bars.active.lock().ok().and_then(|mut a| a.remove(digest));
            if let Some(bar) = bar {
                bar.finish_and_clear();
                bars.multi.remove(&bar);
                self.line(&format!("{:>12} blob {}", "Copied", digest.short()));
                return;
            }
        }
        if skipped {
            self.line(&format!(
                "{:>12} blob {} (already present)",
                "Skipping",
                digest.short()
            ));
        }
    }

    fn warning(&self, message: &str) {
        self.line(&format!("warning: {message}"));
    }
}

/// Prints an error and its causes, once: `error: top` then `  caused by: …` lines.
pub fn print_error(error: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let text = |e: &dyn std::fmt::Display| escape_controls(&e.to_string(), &['\n']).into_owned();
    let _ = writeln!(stderr, "error: {}", text(error));
    for cause in error.chain().skip(1) {
        let _ = writeln!(stderr, "  caused by: {}", text(cause));
    }
}

/// `text` with every control character (C0, DEL, C1) but those in `keep` written as
/// `\u00XX`. Inside a JSON string that is the same character, so JSON output stays valid
/// and means the same.
pub fn escape_controls<'t>(text: &'t str, keep: &[char]) -> std::borrow::Cow<'t, str> {
    if !text.chars().any(|c| c.is_control() && !keep.contains(&c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && !keep.contains(&c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
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

/// Stdout could not take a line of results.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The reader went away (`… | head -1`): the command ends quietly with 141.
    #[error("stdout is closed")]
    BrokenPipe,
    #[error("cannot write to stdout")]
    Write(#[source] std::io::Error),
}

impl From<std::io::Error> for OutputError {
    fn from(error: std::io::Error) -> OutputError {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            OutputError::BrokenPipe
        } else {
            OutputError::Write(error)
        }
    }
}

impl Classify for OutputError {
    fn class(&self) -> ErrorClass {
        match self {
            OutputError::BrokenPipe => ErrorClass::BrokenPipe,
            OutputError::Write(_) => ErrorClass::Failure,
        }
    }
}

/// Writes one line of results to stdout. A closed pipe is [`OutputError::BrokenPipe`],
/// which the command hands up like any error: its leases and temporary folders are
/// released on the way, and `cli::main` ends the process quietly.
pub fn result_line(text: impl std::fmt::Display) -> Result<(), OutputError> {
    let text = text.to_string();
    let text = escape_controls(&text, &['\n', '\t']);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}

/// Copies a stream to stdout as it comes (a workflow's log), with [`result_line`]'s
/// handling of a closed pipe. The bytes are the server's and go out unchanged, as a log
/// file would.
pub fn copy_to_stdout(reader: &mut impl std::io::Read) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        stdout
            .write_all(&buffer[..n])
            .and_then(|()| stdout.flush())
            .map_err(OutputError::from)?;
    }
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    /// Issue 10 W17: escape sequences in names are shown, not obeyed, and JSON stays JSON.
    #[test]
    fn control_characters_are_escaped_and_json_keeps_its_meaning() {
        assert_eq!(escape_controls("plain/name:1", &[]), "plain/name:1");
        let hostile = "a\u{1b}]0;owned\u{7}b\u{9b}2Jc\u{7f}\nd";
        let shown = escape_controls(hostile, &['\n']);
        assert_eq!(shown, "a\\u001b]0;owned\\u0007b\\u009b2Jc\\u007f\nd");
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n'));
        let json = serde_json::to_string_pretty(&serde_json::json!({ "name": hostile })).unwrap();
        let safe = escape_controls(&json, &['\n']);
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["name"], hostile);
    }
}
