//! Progress reporting: the one trait through which library code tells a person (or the API
//! server's records) what it is doing. Library modules call a `&dyn Reporter`; the CLI
//! renders it as status lines and progress bars on stderr, the server records it. Nothing
//! below the CLI prints.

mod state;

pub use state::{State, UnknownState};

use crate::image::Digest;

/// Events of long work. Every method has an empty default so that a caller implements only
/// what it shows.
pub trait Reporter: Sync {
    /// A step begins: `verb` is a short word ("Unpacking", "Writing", "Copying"), `subject`
    /// what it acts on.
    fn status(&self, _verb: &str, _subject: &str) {}
    /// A blob transfer begins (`size` when known).
    fn blob_start(&self, _digest: &Digest, _size: Option<u64>) {}
    /// `bytes` more bytes of a blob moved.
    fn blob_progress(&self, _digest: &Digest, _bytes: u64) {}
    /// A blob is done; `skipped` when the destination already had it.
    fn blob_done(&self, _digest: &Digest, _skipped: bool) {}
    /// A warning the user should see, that does not stop the work.
    fn warning(&self, _message: &str) {}
    /// A delivery enters a state (`BUILDING`, `UNIT_TESTING`, `BUILT`, … as Solum names
    /// them), its final one included.
    fn stage(&self, _state: State, _detail: &str) {}
    /// One line of output of a command running in the sandbox for `state` (`stderr` tells
    /// the stream).
    fn output_line(&self, _state: State, _line: &str, _stderr: bool) {}
}

/// A reporter that shows nothing (tests, `--quiet`).
pub struct Silent;

impl Reporter for Silent {}
