//! A reader under the tar parser that refuses oversized tar extension headers.
//!
//! The `tar` crate reads the whole body of a GNU long name (`L`), GNU long link (`K`) or
//! PAX extended header (`x`) into memory before it yields the entry they describe, and a
//! PAX global header (`g`) is a body that nothing bounds either: a 1 MiB gzip can declare
//! a gibibyte of long name. [`TarGuard`] sits between the (decompressed) stream and
//! `tar::Archive` and follows the archive's 512-byte blocks in step with it: it reads each
//! header as the parser asks for it, refuses an extension header declaring more than
//! [`EXTENSION_LIMIT`] bytes before the parser sees that header, and skips every other
//! body by the size the parser will use. It copies nothing but header blocks and PAX
//! bodies (both bounded); file contents pass straight through into the caller's buffer.
//!
//! Staying in step means sizing every entry exactly as `tar::Archive` (0.4) does, in this
//! order: a header with the GNU or ustar magic and type `x` holds PAX records whose `size`
//! (the first `size` record, if the records up to it parse) replaces the header size of
//! the next entry that is not itself an extension header; `L` and `K` headers pass those
//! records on; any other header uses them up. A GNU sparse header (`S`) with its
//! "extended" flag is followed by further 512-byte sparse blocks, each with its own flag,
//! before its data. The first all-zero block ends the archive for the parser (it does
//! not look for a second one), and after it the guard passes everything through, so that
//! trailing bytes read to reach a decompressor's trailer are read as before.
//!
//! A header the guard cannot size (a checksum or size field the parser would refuse) is
//! handed to the parser unchanged so that it reports its own error; every read after that
//! fails, so a guard and a parser that disagreed could never let an unchecked header by.

use std::io::{self, Read};

/// The largest body an extension header (`L`, `K`, `x`, `g`) may declare. Real ones
/// hold a path, a link target or a few records: a few KiB at most.
pub const EXTENSION_LIMIT: u64 = 1 << 20;

const BLOCK: usize = 512;
/// Where the size, checksum, type, magic and version fields sit in a header block.
const SIZE_FIELD: std::ops::Range<usize> = 124..136;
const CHECKSUM_FIELD: std::ops::Range<usize> = 148..156;
const TYPE_FLAG: usize = 156;
const MAGIC_AND_VERSION: std::ops::Range<usize> = 257..265;
/// The "extended" flag of a GNU sparse header, and of each sparse block after it.
const GNU_SPARSE_EXTENDED: usize = 482;
const SPARSE_BLOCK_EXTENDED: usize = 504;

/// What the guard refuses; it reaches the tar parser's caller inside an [`io::Error`]
/// (see [`refusal`]).
#[derive(Debug, thiserror::Error)]
pub enum TarGuardError {
    /// An extension header declares a body larger than [`EXTENSION_LIMIT`].
    #[error(
        "the tar's {kind} header at byte {offset} declares {size} bytes, more than the \
         limit of {limit} bytes for an extension header"
    )]
    ExtensionTooLarge {
        kind: ExtensionKind,
        offset: u64,
        size: u64,
        limit: u64,
    },
    /// A read after a refusal, or after a header the parser was left to refuse (see the
    /// module docs).
    #[error("the tar stream was read past a header that was refused or cannot be parsed")]
    PastBadHeader,
}

/// The four kinds of extension header, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtensionKind {
    GnuLongName,
    GnuLongLink,
    PaxExtended,
    PaxGlobal,
}

impl ExtensionKind {
    fn of(flag: u8) -> Option<ExtensionKind> {
        match flag {
            b'L' => Some(ExtensionKind::GnuLongName),
            b'K' => Some(ExtensionKind::GnuLongLink),
            b'x' => Some(ExtensionKind::PaxExtended),
            b'g' => Some(ExtensionKind::PaxGlobal),
            _ => None,
        }
    }
}

impl std::fmt::Display for ExtensionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExtensionKind::GnuLongName => "GNU long name ('L')",
            ExtensionKind::GnuLongLink => "GNU long link ('K')",
            ExtensionKind::PaxExtended => "PAX extended ('x')",
            ExtensionKind::PaxGlobal => "PAX global ('g')",
        })
    }
}

/// The guard's refusal inside an error that came out of the tar parser, if it is one.
pub fn refusal(error: &io::Error) -> Option<&TarGuardError> {
    error.get_ref()?.downcast_ref::<TarGuardError>()
}

/// Where the guard is in the archive.
#[derive(Debug)]
enum Phase {
    /// Gathering a header block; `filled` bytes of it so far.
    Header { filled: usize },
    /// Gathering one more GNU sparse block; the entry's data (`data` bytes) follows.
    SparseBlock { filled: usize, data: u64 },
    /// Inside an entry's body and padding: `left` bytes to pass, of which the first
    /// `collect` go into the PAX buffer if `pax` (then its `size` applies at the end).
    Body {
        left: u64,
        collect: usize,
        pax: bool,
    },
    /// After the end of the archive: everything passes.
    Done,
    /// After a refusal, or a header the parser was left to refuse: every read fails.
    Refusing,
}

/// A reader that passes `inner` through while checking its tar headers (module docs).
pub struct TarGuard<R> {
    inner: R,
    phase: Phase,
    block: [u8; BLOCK],
    /// Offset in the stream of the next byte to be checked (for messages).
    offset: u64,
    /// The body of the last `x` header, while it is being gathered.
    pax: Vec<u8>,
    /// The PAX `size` the next entry gets, once an `x` header was read and not yet used.
    pax_size: Option<u64>,
}

impl<R: Read> TarGuard<R> {
    pub fn new(inner: R) -> TarGuard<R> {
        TarGuard {
            inner,
            phase: Phase::Header { filled: 0 },
            block: [0; BLOCK],
            offset: 0,
            pax: Vec::new(),
            pax_size: None,
        }
    }

    /// The reader underneath.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Follows the archive through `bytes`, the next bytes of the stream.
    fn check(&mut self, mut bytes: &[u8]) -> Result<(), TarGuardError> {
        while !bytes.is_empty() {
            let used = match self.phase {
                // Refusing: the parser gets the bad header; the next read fails.
                Phase::Done | Phase::Refusing => return Ok(()),
                Phase::Header { filled } => {
                    let (used, filled) = self.gather(filled, bytes);
                    self.phase = if filled < BLOCK {
                        Phase::Header { filled }
                    } else {
                        self.header(self.offset + used as u64 - BLOCK as u64)?
                    };
                    used
                }
                Phase::SparseBlock { filled, data } => {
                    let (used, filled) = self.gather(filled, bytes);
                    self.phase = if filled < BLOCK {
                        Phase::SparseBlock { filled, data }
                    } else if self.block[SPARSE_BLOCK_EXTENDED] == 1 {
                        Phase::SparseBlock { filled: 0, data }
                    } else {
                        body(data, 0, false)
                    };
                    used
                }
                Phase::Body { left, collect, pax } => {
                    let used = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    let taken = collect.min(used);
                    self.pax.extend_from_slice(&bytes[..taken]);
                    let left = left - used as u64;
                    self.phase = if left > 0 {
                        Phase::Body {
                            left,
                            collect: collect - taken,
                            pax,
                        }
                    } else {
                        if pax {
                            self.pax_size = pax_size(&self.pax);
                            self.pax = Vec::new();
                        }
                        Phase::Header { filled: 0 }
                    };
                    used
                }
            };
            bytes = &bytes[used..];
            self.offset += used as u64;
        }
        Ok(())
    }

    /// Copies what `bytes` holds of the block being gathered: (bytes used, block filled).
    fn gather(&mut self, filled: usize, bytes: &[u8]) -> (usize, usize) {
        let used = (BLOCK - filled).min(bytes.len());
        self.block[filled..filled + used].copy_from_slice(&bytes[..used]);
        (used, filled + used)
    }

    /// Judges the complete header block that started at `offset`.
    fn header(&mut self, offset: u64) -> Result<Phase, TarGuardError> {
        let block = &self.block;
        if block.iter().all(|&b| b == 0) {
            return Ok(Phase::Done);
        }
        let Some(header_size) = checked_size(block) else {
            return Ok(Phase::Refusing);
        };
        let flag = block[TYPE_FLAG];
        let extension = ExtensionKind::of(flag);
        let magic = &block[MAGIC_AND_VERSION];
        let gnu = magic == b"ustar  \0";
        let recognized = gnu || magic == b"ustar\x0000";
        let size = match extension {
            Some(kind) => {
                if header_size > EXTENSION_LIMIT {
                    return Err(TarGuardError::ExtensionTooLarge {
                        kind,
                        offset,
                        size: header_size,
                        limit: EXTENSION_LIMIT,
                    });
                }
                header_size
            }
            None => self.pax_size.unwrap_or(header_size),
        };
        // Which PAX records the following entry gets, as the parser decides it.
        let is_pax = match extension {
            Some(ExtensionKind::PaxExtended) if recognized => {
                self.pax.clear();
                self.pax_size = None;
                true
            }
            Some(ExtensionKind::GnuLongName | ExtensionKind::GnuLongLink) if recognized => false,
            _ => {
                self.pax_size = None;
                false
            }
        };
        let Some(padded) = size.checked_next_multiple_of(BLOCK as u64) else {
            return Ok(Phase::Refusing);
        };
        if flag == b'S' && gnu && block[GNU_SPARSE_EXTENDED] == 1 {
            return Ok(Phase::SparseBlock {
                filled: 0,
                data: padded,
            });
        }
        // An extension body is at most EXTENSION_LIMIT: it fits in memory and a usize.
        let collect = if is_pax { size as usize } else { 0 };
        Ok(body(padded, collect, is_pax))
    }
}

/// The phase for a body of `left` bytes (padding included); `pax`: it is a PAX body,
/// whose first `collect` bytes are gathered.
fn body(left: u64, collect: usize, pax: bool) -> Phase {
    if left > 0 {
        Phase::Body { left, collect, pax }
    } else {
        Phase::Header { filled: 0 }
    }
}

/// The header's size field, if its checksum is right and the field parses, as the tar
/// parser reads both (else the parser refuses the header).
fn checked_size(block: &[u8; BLOCK]) -> Option<u64> {
    let sum = block[..CHECKSUM_FIELD.start]
        .iter()
        .chain(&block[CHECKSUM_FIELD.end..])
        .fold(0u32, |sum, &b| sum + u32::from(b))
        + 8 * 32;
    if octal(&block[CHECKSUM_FIELD]).map(|c| c as u32) != Some(sum) {
        return None;
    }
    let field = &block[SIZE_FIELD];
    if field[0] & 0x80 != 0 {
        // GNU base-256: the parser takes the last eight bytes of the twelve.
        let tail: [u8; 8] = field[4..].try_into().expect("eight bytes");
        Some(u64::from_be_bytes(tail))
    } else {
        octal(field)
    }
}

/// An octal field as the tar parser reads it: up to the first NUL, trimmed.
fn octal(field: &[u8]) -> Option<u64> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let text = std::str::from_utf8(&field[..end]).ok()?;
    u64::from_str_radix(text.trim(), 8).ok()
}

/// The `size` a PAX body gives the next entry, as the tar parser reads it: the first
/// `size` record, if every record up to it is well formed and its value is a number.
fn pax_size(body: &[u8]) -> Option<u64> {
    for record in tar::PaxExtensions::new(body) {
        let record = record.ok()?;
        if record.key() != Ok("size") {
            continue;
        }
        return record.value().ok()?.parse().ok();
    }
    None
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if matches!(self.phase, Phase::Refusing) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                TarGuardError::PastBadHeader,
            ));
        }
        let n = self.inner.read(buf)?;
        self.check(&buf[..n]).map_err(|refusal| {
            // Not in step with the archive any more: nothing else passes.
            self.phase = Phase::Refusing;
            io::Error::new(io::ErrorKind::InvalidData, refusal)
        })?;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "tar_guard_tests.rs"]
mod tests;
