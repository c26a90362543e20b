//! Compression of layer streams: sniffing and decompressing on the way in, and the
//! one-pass "tar → diff_id hasher → compressor → digest hasher → destination" pipeline on
//! the way out. Only byte streams live here; nothing here knows about tar entries or files.
//!
//! gzip output is written by gzp's parallel pigz-style compressor (`Gzip` format): one
//! standard gzip member (header mtime 0, no name) whose 128 KiB blocks are deflated on two
//! threads and joined with sync flushes. (gzp passes the previous block as a dictionary only
//! with its `any_zlib` feature, which we do not enable: that costs about 2% of size.) The
//! block size is fixed, so the bytes do not depend on how many threads ran. zstd uses
//! libzstd's own workers with a fixed job size; with `nbWorkers >= 1` its output is also
//! independent of the worker count.

use std::io::{self, BufReader, Read, Write};

use gzp::deflate::Gzip;
use gzp::par::compress::{ParCompress, ParCompressBuilder};
use gzp::{Compression, ZWriter};

use super::{LayerCompression, LayerError};
use crate::image::digest::{Digest, HashingWriter};

/// Size of the read buffer under the decompressor and of the one above it.
const READ_BUFFER: usize = 256 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// gzip level: the same trade-off as `gzip -6`, which other tools use for layers. (A
/// build's layer of incompressible data uses level 0 instead: see `estimate`.)
pub(crate) const GZIP_LEVEL: u32 = 6;
const ZSTD_LEVEL: i32 = 3;
/// Bytes of input per zstd worker job.
const ZSTD_JOB_SIZE: u32 = 2 * 1024 * 1024;
/// Compression threads: this is sized for the 2-core build hosts we target.
const THREADS: u32 = 2;

/// Wraps `reader` in the decompressor for `compression`; `None` sniffs the magic bytes
/// (gzip `1f 8b`, zstd `28 b5 2f fd`, anything else is a plain tar). Returns the compression
/// that applies. gzip streams may have several members (pigz/bgzip-style output).
pub fn decompressing_reader<'a, R: Read + 'a>(
    mut reader: R,
    compression: Option<LayerCompression>,
) -> Result<(LayerCompression, Box<dyn Read + 'a>), LayerError> {
    // Sniff the first bytes straight from the source, then put them back in front of it;
    // a loop because pipes and HTTP bodies may hand out fewer than four bytes per read.
    let mut head = [0u8; 4];
    let mut filled = 0;
    if compression.is_none() {
        while filled < head.len() {
            match reader.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(LayerError::Read { source }),
            }
        }
    }
    let compression = compression.unwrap_or_else(|| classify(&head[..filled]));
    let source = io::Cursor::new(head).take(filled as u64).chain(reader);
    let buffered = BufReader::with_capacity(READ_BUFFER, source);
    let reader: Box<dyn Read + 'a> = match compression {
        LayerCompression::None => Box::new(buffered),
        LayerCompression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        LayerCompression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered).map_err(|source| {
                LayerError::CorruptCompression {
                    compression,
                    source,
                }
            })?,
        ),
    };
    Ok((compression, reader))
}

fn classify(head: &[u8]) -> LayerCompression {
    if head.starts_with(&GZIP_MAGIC) {
        LayerCompression::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) {
        LayerCompression::Zstd
    } else {
        LayerCompression::None
    }
}

/// The compressor stage of the write pipeline, with the digest of what it emits.
enum Compressor<W: Write + Send + 'static> {
    Plain(HashingWriter<W>),
    Gzip(ParCompress<'static, Gzip, HashingWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, HashingWriter<W>>),
}

/// Tar bytes go in; `finish` returns the digests of the tar and of the compressed blob.
pub(crate) struct LayerSink<W: Write + Send + 'static> {
    tar: HashingWriter<Compressor<W>>,
    compression: LayerCompression,
}

impl<W: Write + Send + 'static> LayerSink<W> {
    #[cfg(test)]
    pub(crate) fn new(compression: LayerCompression, out: W) -> Result<LayerSink<W>, LayerError> {
        Self::with_gzip_level(compression, GZIP_LEVEL, out)
    }

    /// [`LayerSink::new`] with a gzip level other than the default (0 = stored blocks).
    pub(crate) fn with_gzip_level(
        compression: LayerCompression,
        gzip_level: u32,
        out: W,
    ) -> Result<LayerSink<W>, LayerError> {
        let blob = HashingWriter::new(out);
        let compressor = match compression {
            LayerCompression::None => Compressor::Plain(blob),
            LayerCompression::Gzip => Compressor::Gzip(
                ParCompressBuilder::<Gzip>::new()
                    .num_threads(THREADS as usize)
                    .expect("two threads is a valid thread count")
                    .compression_level(Compression::new(gzip_level))
                    .from_writer(blob),
            ),
            LayerCompression::Zstd => {
                let write_error = |source| LayerError::Write {
                    compression,
                    source,
                };
                let mut encoder =
                    zstd::stream::write::Encoder::new(blob, ZSTD_LEVEL).map_err(write_error)?;
                encoder.multithread(THREADS).map_err(write_error)?;
                // libzstd sizes its jobs from the window (several MiB each, a few in
                // flight per worker); a fixed, smaller job keeps memory flat and, being
                // fixed, keeps the output independent of the worker count.
                encoder
                    .set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))
                    .map_err(write_error)?;
                Compressor::Zstd(encoder)
            }
        };
        Ok(LayerSink {
            tar: HashingWriter::new(compressor),
            compression,
        })
    }

    pub(crate) fn compression(&self) -> LayerCompression {
        self.compression
    }

    /// Ends the compressed stream and returns (diff_id, tar size, digest, blob size).
    pub(crate) fn finish(self) -> Result<(Digest, u64, Digest, u64), LayerError> {
        let compression = self.compression;
        let write_error = |source| LayerError::Write {
            compression,
            source,
        };
        let (diff_id, tar_size, compressor) = self.tar.finish();
        let blob = match compressor {
            Compressor::Plain(blob) => blob,
            Compressor::Gzip(mut gzip) => gzip
                .finish()
                .map_err(|error| write_error(gzp_to_io(error)))?,
            Compressor::Zstd(zstd) => zstd.finish().map_err(write_error)?,
        };
        let (digest, size, mut out) = blob.finish();
        out.flush().map_err(write_error)?;
        Ok((diff_id, tar_size, digest, size))
    }
}

impl<W: Write + Send + 'static> Write for LayerSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tar.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.tar.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing gzp would end a block early and change the output: only `finish` ends
        // the stream, so a flush here is deliberately a no-op.
        Ok(())
    }
}

impl<W: Write + Send + 'static> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Plain(w) => w.write(buf),
            Compressor::Gzip(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn gzp_to_io(error: gzp::GzpError) -> io::Error {
    match error {
        gzp::GzpError::Io(error) => error,
        other => io::Error::other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(compression: LayerCompression, data: &[u8]) -> (Vec<u8>, Digest, Digest) {
        let (tx, rx) = std::sync::mpsc::channel();
        struct Collect(Vec<u8>, std::sync::mpsc::Sender<Vec<u8>>);
        impl Write for Collect {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Drop for Collect {
            fn drop(&mut self) {
                let _ = self.1.send(std::mem::take(&mut self.0));
            }
        }
        let mut sink = LayerSink::new(compression, Collect(Vec::new(), tx)).unwrap();
        for chunk in data.chunks(70_000) {
            sink.write_all(chunk).unwrap();
        }
        let (diff_id, tar_size, digest, size) = sink.finish().unwrap();
        let blob = rx.recv().unwrap();
        assert_eq!(tar_size, data.len() as u64);
        assert_eq!(size, blob.len() as u64);
        assert_eq!(digest, Digest::of_bytes(&blob));
        (blob, diff_id, digest)
    }

    fn sample() -> Vec<u8> {
        (0..3_000_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
            .collect()
    }

    #[test]
    fn gzip_and_zstd_round_trip_through_the_sniffing_reader() {
        let data = sample();
        for compression in [
            LayerCompression::None,
            LayerCompression::Gzip,
            LayerCompression::Zstd,
        ] {
            let (blob, diff_id, _) = compress(compression, &data);
            assert_eq!(diff_id, Digest::of_bytes(&data));
            let (sniffed, mut reader) = decompressing_reader(&blob[..], None).unwrap();
            assert_eq!(sniffed, compression);
            let mut back = Vec::new();
            reader.read_to_end(&mut back).unwrap();
            assert!(back == data, "{compression:?} did not round-trip");
        }
    }

    #[test]
    fn gzip_output_is_one_standard_member_with_zero_mtime_and_is_deterministic() {
        let data = sample();
        let (a, _, da) = compress(LayerCompression::Gzip, &data);
        let (b, _, db) = compress(LayerCompression::Gzip, &data);
        assert_eq!(da, db);
        assert_eq!(a, b);
        assert_eq!(&a[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&a[4..8], &[0, 0, 0, 0], "gzip header mtime must be 0");
        // A single-member decoder reads the whole stream: it is one member.
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&a[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
    }

    #[test]
    fn truncated_streams_are_errors() {
        let data = sample();
        for compression in [LayerCompression::Gzip, LayerCompression::Zstd] {
            let (blob, _, _) = compress(compression, &data);
            let cut = &blob[..blob.len() / 2];
            let (_, mut reader) = decompressing_reader(cut, Some(compression)).unwrap();
            let result = io::copy(&mut reader, &mut io::sink());
            assert!(result.is_err(), "{compression:?} truncation went unnoticed");
            // Missing only the trailer (crc + size) must fail too.
            let cut = &blob[..blob.len() - 3];
            let (_, mut reader) = decompressing_reader(cut, Some(compression)).unwrap();
            assert!(io::copy(&mut reader, &mut io::sink()).is_err());
        }
    }
}
