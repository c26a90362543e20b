//! How far a source may expand when a server request brought it. An uploaded artifact
//! (a 1 MiB gzip can hold a gibibyte of zeros) and a pushed git repository (a pack deltas
//! a huge file down to nothing) are counted before they are written: the tar stream is
//! read once with the same tar reader the unpacker uses, summing entries and the size
//! each file will have on disk (a sparse file's full size, not its stored data), and
//! refused as soon as either passes its bound. Only then is the tree written. The CLI
//! sets no bound here (the unpacker's own limits apply); the server sets the one badger
//! uploads have.

use std::io::Read;

use super::SourceError;

/// The most a source tree may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpansionLimit {
    /// File content, in bytes (sparse files at their full size).
    pub bytes: u64,
    /// Entries of every kind.
    pub entries: u64,
}

/// The unpacker's options for a tree held to `limit` (its own checks then stop a stream
/// that differs from what the count saw).
pub(super) fn unpack_options(
    limit: Option<&ExpansionLimit>,
    privilege: crate::privilege::Privilege,
) -> crate::layer::UnpackOptions {
    let mut options = crate::layer::UnpackOptions::new(privilege);
    if let Some(limit) = limit {
        options.limits.max_bytes = options.limits.max_bytes.min(limit.bytes);
        options.limits.max_entries = options.limits.max_entries.min(limit.entries);
    }
    options
}

/// Reads the (uncompressed) tar stream `reader` to its end, and fails naming `what` and
/// the bound when it holds more than `limit` allows.
pub(super) fn check_tar<R: Read>(
    reader: R,
    limit: &ExpansionLimit,
    what: &str,
) -> Result<(), SourceError> {
    let refused = |reason: String| SourceError::Expansion {
        what: what.to_string(),
        reason,
    };
    let unreadable = |e: std::io::Error| refused(format!("it cannot be read as a tar ({e})"));
    let mut archive = tar::Archive::new(crate::layer::TarGuard::new(reader));
    let (mut bytes, mut entries) = (0u64, 0u64);
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        entries += 1;
        if entries > limit.entries {
            return Err(refused(format!(
                "it holds more than {} entries, the server's limit",
                limit.entries
            )));
        }
        bytes = bytes.saturating_add(apparent_size(&mut entry));
        if bytes > limit.bytes {
            return Err(refused(format!(
                "it expands past {} bytes, the server's limit",
                limit.bytes
            )));
        }
    }
    Ok(())
}

/// The size an entry takes once written: the largest of its header size, a GNU sparse
/// header's real size and the PAX `size` / `GNU.sparse.realsize` / `GNU.sparse.size`.
fn apparent_size<R: Read>(entry: &mut tar::Entry<'_, R>) -> u64 {
    let header = entry.header();
    let mut size = header.entry_size().unwrap_or(0).max(entry.size());
    if header.entry_type().is_gnu_sparse() {
        if let Some(real) = header.as_gnu().and_then(|g| g.real_size().ok()) {
            size = size.max(real);
        }
    }
    if let Ok(Some(extensions)) = entry.pax_extensions() {
        for extension in extensions.flatten() {
            let key = extension.key().unwrap_or_default();
            if matches!(key, "size" | "GNU.sparse.realsize" | "GNU.sparse.size") {
                let value = extension.value().unwrap_or_default().trim();
                // An unparseable size counts as unbounded: the unpacker refuses it anyway.
                size = size.max(value.parse().unwrap_or(u64::MAX));
            }
        }
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, u64)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, size) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(*size);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, std::io::repeat(0).take(*size))
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn entries_and_bytes_are_bounded() {
        let limit = ExpansionLimit {
            bytes: 10_000,
            entries: 3,
        };
        check_tar(&tar_of(&[("a", 5000), ("b", 5000)])[..], &limit, "x").unwrap();
        let err = check_tar(&tar_of(&[("a", 5000), ("b", 5001)])[..], &limit, "x");
        assert!(err.unwrap_err().to_string().contains("10000 bytes"));
        let many = tar_of(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]);
        let err = check_tar(&many[..], &limit, "the artifact").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the artifact: it holds more than 3 entries, the server's limit"
        );
    }

    #[test]
    fn a_sparse_file_counts_at_its_full_size() {
        // A GNU sparse entry: 512 bytes stored, a gibibyte once written.
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::GNUSparse);
        header.set_path("hole").unwrap();
        header.set_size(512);
        header.set_mode(0o644);
        let gnu = header.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset((1 << 30) - 512);
        gnu.sparse[0].set_length(512);
        gnu.set_real_size(1 << 30);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 512]);
        bytes.extend_from_slice(&[0u8; 1024]);
        let limit = ExpansionLimit {
            bytes: 1 << 20,
            entries: 10,
        };
        let err = check_tar(&bytes[..], &limit, "x").unwrap_err();
        assert!(err.to_string().contains("expands past"), "{err}");
    }

    #[test]
    fn a_gibibyte_long_name_is_refused_at_its_header() {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_path("././@LongLink").unwrap();
        header.set_size(1 << 30);
        header.set_cksum();
        let mut artifact = std::io::Cursor::new(header.as_bytes().to_vec())
            .chain(std::io::repeat(0).take(1 << 30));
        let limit = ExpansionLimit {
            bytes: u64::MAX,
            entries: u64::MAX,
        };
        let err = check_tar(&mut artifact, &limit, "the artifact").unwrap_err();
        assert!(
            err.to_string().contains("declares 1073741824 bytes"),
            "{err}"
        );
        // The body was never read: all but a buffer-full of it is left.
        let left = std::io::copy(&mut artifact, &mut std::io::sink()).unwrap();
        assert!(left > (1 << 30) - (1 << 20), "only {left} bytes were left");
    }
}
