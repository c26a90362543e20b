//! How far one layer may expand when it is unpacked: bytes of file content (sparse holes
//! counted at their real size, since the unpacker writes them out), number of entries, and
//! the ratio of content written to compressed bytes read. A 2 KiB sparse tar or a 1 MiB
//! gzip of zeros would otherwise fill a disk with a gibibyte each. This module only counts
//! and judges; the unpacker calls it before and while it writes each entry.
//!
//! Defaults, chosen so that real images fit with room to spare:
//! - 64 GiB of content per layer: the largest public layers (CUDA, ML toolkits) stay
//!   under 20 GiB uncompressed.
//! - 4,000,000 entries per layer: heavy `node_modules` layers hold a few hundred thousand.
//! - 200:1 content to compressed input, beyond a first 64 MiB that any layer may have:
//!   real layers compress 2–10:1 and rarely pass 50:1 even with zero-filled files, while
//!   deflate reaches 1,032:1 and zstd or sparse entries far more.
//!
//! The CLI reads overrides from `SOLUM_UNPACK_MAX_BYTES`, `SOLUM_UNPACK_MAX_ENTRIES` and
//! `SOLUM_UNPACK_MAX_RATIO` (0 turns the ratio check off); a server passes tighter
//! [`UnpackLimits`] in [`super::UnpackOptions`].

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// Limits of one layer unpack. See the module documentation for the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Bytes of file content (holes of sparse files included).
    pub max_bytes: u64,
    /// Tar entries (files, directories, links, whiteouts).
    pub max_entries: u64,
    /// Content bytes per compressed input byte, beyond [`RATIO_ALLOWANCE`]; `None`: no
    /// ratio check.
    pub max_ratio: Option<u64>,
}

/// Content any layer may have before the ratio check starts.
pub const RATIO_ALLOWANCE: u64 = 64 << 20;

impl Default for UnpackLimits {
    fn default() -> UnpackLimits {
        UnpackLimits {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
            max_ratio: Some(200),
        }
    }
}

impl UnpackLimits {
    /// The defaults, with any `SOLUM_UNPACK_MAX_*` override from the environment. A
    /// variable that is not a number is ignored (the default stays).
    pub fn from_env() -> UnpackLimits {
        let read = |name: &str| std::env::var(name).ok()?.trim().parse::<u64>().ok();
        let mut limits = UnpackLimits::default();
        if let Some(bytes) = read("SOLUM_UNPACK_MAX_BYTES") {
            limits.max_bytes = bytes;
        }
        if let Some(entries) = read("SOLUM_UNPACK_MAX_ENTRIES") {
            limits.max_entries = entries;
        }
        if let Some(ratio) = read("SOLUM_UNPACK_MAX_RATIO") {
            limits.max_ratio = (ratio > 0).then_some(ratio);
        }
        limits
    }

    /// What is left for the next layer of the same image once `report` was unpacked, so
    /// that a caller can bound a whole image with one budget.
    pub fn remaining_after(&self, report: &super::UnpackReport) -> UnpackLimits {
        UnpackLimits {
            max_bytes: self.max_bytes.saturating_sub(report.bytes),
            max_entries: self
                .max_entries
                .saturating_sub(report.entries + report.whiteouts),
            max_ratio: self.max_ratio,
        }
    }
}

/// Which limit a layer went past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    Bytes(u64),
    Entries(u64),
    Ratio(u64),
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Bytes(limit) => write!(f, "{limit} bytes of file content"),
            Exceeded::Entries(limit) => write!(f, "{limit} entries"),
            Exceeded::Ratio(ratio) => write!(
                f,
                "{ratio}:1 expansion over its compressed size (beyond the first {} MiB)",
                RATIO_ALLOWANCE >> 20
            ),
        }
    }
}

/// The running count of one unpack, judged against its limits.
pub(super) struct Budget {
    limits: UnpackLimits,
    /// Compressed bytes read so far, shared with the [`CountingReader`] under the
    /// decompressor.
    input: Rc<Cell<u64>>,
    pub(super) bytes: u64,
    entries: u64,
}

impl Budget {
    pub(super) fn new(limits: UnpackLimits, input: Rc<Cell<u64>>) -> Budget {
        Budget {
            limits,
            input,
            bytes: 0,
            entries: 0,
        }
    }

    /// One more tar entry.
    pub(super) fn entry(&mut self) -> Result<(), Exceeded> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(Exceeded::Entries(self.limits.max_entries));
        }
        Ok(())
    }

    /// Before a file is written: its declared size must fit, and the holes of a sparse
    /// file (bytes that come from no input at all) are judged against the ratio now.
    pub(super) fn file(&mut self, size: u64, holes: u64) -> Result<(), Exceeded> {
        if self.bytes.saturating_add(size) > self.limits.max_bytes {
            return Err(Exceeded::Bytes(self.limits.max_bytes));
        }
        self.check_ratio(self.bytes.saturating_add(holes))
    }

    /// After `n` more bytes of content were written.
    pub(super) fn wrote(&mut self, n: u64) -> Result<(), Exceeded> {
        self.bytes += n;
        if self.bytes > self.limits.max_bytes {
            return Err(Exceeded::Bytes(self.limits.max_bytes));
        }
        self.check_ratio(self.bytes)
    }

    fn check_ratio(&self, bytes: u64) -> Result<(), Exceeded> {
        let Some(ratio) = self.limits.max_ratio else {
            return Ok(());
        };
        let allowed = RATIO_ALLOWANCE.saturating_add(self.input.get().saturating_mul(ratio));
        if bytes > allowed {
            return Err(Exceeded::Ratio(ratio));
        }
        Ok(())
    }
}

/// Counts the bytes read from the (compressed) layer source.
pub(super) struct CountingReader<R> {
    pub(super) inner: R,
    pub(super) count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_bytes_entries_and_ratio() {
        let input = Rc::new(Cell::new(0));
        let limits = UnpackLimits {
            max_bytes: 1000 << 20,
            max_entries: 2,
            max_ratio: Some(10),
        };
        let mut budget = Budget::new(limits, Rc::clone(&input));
        assert_eq!(budget.entry(), Ok(()));
        assert_eq!(budget.entry(), Ok(()));
        assert_eq!(budget.entry(), Err(Exceeded::Entries(2)));
        assert_eq!(budget.file(1001 << 20, 0), Err(Exceeded::Bytes(1000 << 20)));
        // A sparse file of holes only, from 1 KiB of input: past the ratio up front.
        input.set(1024);
        assert_eq!(budget.file(100 << 20, 100 << 20), Err(Exceeded::Ratio(10)));
        // Ordinary content within the allowance, then past it.
        assert_eq!(budget.wrote(RATIO_ALLOWANCE), Ok(()));
        assert_eq!(budget.wrote(10 * 1024), Ok(()));
        assert_eq!(budget.wrote(1), Err(Exceeded::Ratio(10)));
    }
}
