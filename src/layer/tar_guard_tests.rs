//! The guard against the tar parser: oversized extension headers are refused before the
//! parser reads their bodies, and every archive the guard lets by reads exactly as it
//! does without the guard (same entries, same errors), however the stream is chunked.

use super::*;
use std::cell::Cell;
use std::rc::Rc;
use tar::{EntryType, Header};

/// What a tar yields: each entry's path, link target, size and contents, or the
/// parser's error text.
type Listing = Result<Vec<(Vec<u8>, Option<Vec<u8>>, u64, Vec<u8>)>, String>;

/// Hands out at most `chunk` bytes per read, to cut headers at every place.
struct Chunked<R> {
    inner: R,
    chunk: usize,
}

impl<R: Read> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len().min(self.chunk);
        self.inner.read(&mut buf[..len])
    }
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

fn list(reader: impl Read) -> Listing {
    let mut archive = tar::Archive::new(reader);
    let mut listing = Vec::new();
    let entries = archive.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
        listing.push((
            entry.path_bytes().into_owned(),
            entry.link_name_bytes().map(std::borrow::Cow::into_owned),
            entry.size(),
            data,
        ));
    }
    // What follows the end of the archive is read as the unpacker reads it.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| e.to_string())?;
    Ok(listing)
}

/// Lists `bytes` without the guard, then with it in chunks of several sizes, and expects
/// the same each time; returns the listing.
fn same_with_and_without_guard(bytes: &[u8]) -> Listing {
    let plain = list(bytes);
    for chunk in [1, 7, 511, 512, 513, 4096, usize::MAX] {
        let guarded = list(TarGuard::new(Chunked {
            inner: bytes,
            chunk,
        }));
        assert_eq!(guarded, plain, "chunks of {chunk}");
    }
    plain
}

/// The refusal the guard gives for `bytes`, checked to come before the parser read
/// more than a few blocks.
fn refusal_of(bytes: impl Read) -> TarGuardError {
    let count = Rc::new(Cell::new(0));
    let counted = Counted {
        inner: bytes,
        count: Rc::clone(&count),
    };
    let mut archive = tar::Archive::new(TarGuard::new(counted));
    let error = archive
        .entries()
        .unwrap()
        .find_map(Result::err)
        .expect("the guard refuses the archive");
    assert!(count.get() < 64 * 1024, "read {} bytes", count.get());
    let inner = error.into_inner().expect("a custom error");
    *inner
        .downcast::<TarGuardError>()
        .expect("the guard's error")
}

fn header(kind: EntryType, path: &str, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_path(path).unwrap();
    header.set_mode(0o644);
    header.set_size(size);
    header.set_cksum();
    header
}

/// A header whose size field is GNU base-256 (the high bit set, then big-endian).
fn base256_header(kind: EntryType, path: &str, size: u64) -> Header {
    let mut header = header(kind, path, 0);
    let field = &mut header.as_mut_bytes()[124..136];
    field.fill(0);
    field[0] = 0x80;
    field[4..].copy_from_slice(&size.to_be_bytes());
    header.set_cksum();
    header
}

fn padded(data: &[u8]) -> Vec<u8> {
    let mut bytes = data.to_vec();
    bytes.resize(data.len().next_multiple_of(512), 0);
    bytes
}

/// An extension header of type `flag` declaring 1 GiB, then that gibibyte of zeros, read
/// lazily: the guard must stop the parser before it reads (and holds) the body.
fn gibibyte_extension(flag: u8) -> impl Read {
    let header = header(EntryType::new(flag), "././@LongLink", 1 << 30);
    io::Cursor::new(header.as_bytes().to_vec()).chain(io::repeat(0).take(1 << 30))
}

#[test]
fn gibibyte_extension_headers_are_refused_before_their_body_is_read() {
    for (flag, kind) in [
        (b'L', ExtensionKind::GnuLongName),
        (b'K', ExtensionKind::GnuLongLink),
        (b'x', ExtensionKind::PaxExtended),
        (b'g', ExtensionKind::PaxGlobal),
    ] {
        let refusal = refusal_of(gibibyte_extension(flag));
        assert!(
            matches!(
                refusal,
                TarGuardError::ExtensionTooLarge { kind: k, offset: 0, size, limit }
                    if k == kind && size == 1 << 30 && limit == EXTENSION_LIMIT
            ),
            "{refusal:?}"
        );
        let text = refusal.to_string();
        assert!(
            text.contains("declares 1073741824 bytes") && text.contains("1048576"),
            "{text}"
        );
    }
}

#[test]
fn an_extension_at_the_limit_passes_and_one_byte_more_is_refused() {
    let mut at_limit = header(EntryType::GNULongName, "././@LongLink", EXTENSION_LIMIT)
        .as_bytes()
        .to_vec();
    let mut name = vec![b'n'; EXTENSION_LIMIT as usize - 1];
    name.push(0);
    at_limit.extend(padded(&name));
    at_limit.extend(header(EntryType::Regular, "short", 0).as_bytes());
    at_limit.extend([0; 1024]);
    let listing = same_with_and_without_guard(&at_limit).unwrap();
    assert_eq!(listing[0].0.len(), EXTENSION_LIMIT as usize - 1);

    let over = header(EntryType::GNULongName, "././@LongLink", EXTENSION_LIMIT + 1);
    let refusal = refusal_of(io::Cursor::new(over.as_bytes().to_vec()).chain(io::repeat(0)));
    assert!(
        matches!(refusal, TarGuardError::ExtensionTooLarge { size, .. } if size == EXTENSION_LIMIT + 1)
    );
}

#[test]
fn a_refusal_is_final() {
    let mut guard = TarGuard::new(gibibyte_extension(b'L'));
    let mut block = [0u8; 512];
    assert!(guard.read_exact(&mut block).is_err());
    let again = guard.read(&mut block).unwrap_err();
    assert!(matches!(
        refusal(&again),
        Some(TarGuardError::PastBadHeader)
    ));
}

#[test]
fn long_names_and_links_read_as_without_the_guard() {
    let long = "d/".repeat(150) + "file";
    let target = "t/".repeat(120) + "target";
    let mut builder = tar::Builder::new(Vec::new());
    let mut file = Header::new_gnu();
    file.set_mode(0o644);
    file.set_size(5);
    builder
        .append_data(&mut file, &long, &b"hello"[..])
        .unwrap();
    let mut link = Header::new_gnu();
    link.set_entry_type(EntryType::Symlink);
    link.set_size(0);
    builder
        .append_link(&mut link, &(long.clone() + "-link"), &target)
        .unwrap();
    let bytes = builder.into_inner().unwrap();
    let listing = same_with_and_without_guard(&bytes).unwrap();
    assert_eq!(listing[0].0, long.as_bytes());
    assert_eq!(listing[0].3, b"hello");
    assert_eq!(listing[1].1.as_deref(), Some(target.as_bytes()));
}

/// PAX records then a ustar file of `data` whose header says `header_size`.
fn pax_then_file(records: &[(&str, &[u8])], header_size: u64, data: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
        .unwrap();
    // Not `into_inner`: that ends the archive.
    let mut bytes = builder.get_ref().clone();
    let mut file = Header::new_ustar();
    file.set_path("file").unwrap();
    file.set_mode(0o644);
    file.set_size(header_size);
    file.set_cksum();
    bytes.extend(file.as_bytes());
    bytes.extend(padded(data));
    bytes
}

#[test]
fn pax_paths_read_as_without_the_guard() {
    let path = "p/".repeat(200) + "file";
    let mut bytes = pax_then_file(&[("path", path.as_bytes())], 3, b"abc");
    bytes.extend([0; 1024]);
    let listing = same_with_and_without_guard(&bytes).unwrap();
    assert_eq!(listing[0].0, path.as_bytes());
    assert_eq!(listing[0].3, b"abc");
}

/// The PAX size replaces the header's: the file's data here is a block that looks like
/// an oversized long-name header where the header size (0) would put the next header.
/// A guard that missed the PAX size would refuse it; and after the file, a real
/// oversized header must still be found.
#[test]
fn the_pax_size_decides_where_the_next_header_is() {
    let lookalike = header(EntryType::GNULongName, "././@LongLink", 1 << 30);
    let mut data = lookalike.as_bytes().to_vec();
    data.extend(b"more data");
    let mut bytes = pax_then_file(&[("size", data.len().to_string().as_bytes())], 0, &data);
    let mut ended = bytes.clone();
    ended.extend([0; 1024]);
    let listing = same_with_and_without_guard(&ended).unwrap();
    assert_eq!(listing[0].3, data);

    bytes.extend(lookalike.as_bytes());
    bytes.extend([0; 4096]);
    assert!(matches!(
        refusal_of(&bytes[..]),
        TarGuardError::ExtensionTooLarge { offset, .. } if offset == bytes.len() as u64 - 4608
    ));
}

/// A PAX size the parser does not take (not a number; after a malformed record) leaves
/// the header size in force, for the guard as for the parser.
#[test]
fn an_unusable_pax_size_leaves_the_header_size() {
    for records in [
        &[("size", &b"12x"[..])][..],
        &[("size", &b"99999999999999999999"[..])][..],
        &[("a", &b"1\n2"[..]), ("size", &b"600"[..])][..],
    ] {
        let mut bytes = pax_then_file(records, 3, b"abc");
        bytes.extend([0; 1024]);
        same_with_and_without_guard(&bytes).unwrap();
    }
}

#[test]
fn pax_global_headers_pass_and_use_up_no_records() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut global = Header::new_ustar();
    global.set_entry_type(EntryType::XGlobalHeader);
    let records = b"20 comment=a global\n";
    global.set_size(records.len() as u64);
    global.set_path("pax_global_header").unwrap();
    global.set_cksum();
    builder.append(&global, &records[..]).unwrap();
    let mut bytes = builder.get_ref().clone();
    bytes.extend(pax_then_file(&[("size", b"4")], 0, b"four"));
    bytes.extend([0; 1024]);
    let listing = same_with_and_without_guard(&bytes).unwrap();
    assert_eq!(listing[1].3, b"four");
}

#[test]
fn base256_sizes_are_read_as_the_parser_reads_them() {
    let mut bytes = base256_header(EntryType::Regular, "binary", 700)
        .as_bytes()
        .to_vec();
    bytes.extend(padded(&[7; 700]));
    let mut ended = bytes.clone();
    ended.extend([0; 1024]);
    let listing = same_with_and_without_guard(&ended).unwrap();
    assert_eq!(listing[0].2, 700);

    bytes.extend(base256_header(EntryType::GNULongName, "././@LongLink", 1 << 40).as_bytes());
    assert!(matches!(
        refusal_of(io::Cursor::new(bytes).chain(io::repeat(0))),
        TarGuardError::ExtensionTooLarge { size, offset: 1536, .. } if size == 1 << 40
    ));
}

/// A GNU sparse file whose map runs on into an extra sparse block: that block comes
/// between the header and the data, and is not counted in the size.
#[test]
fn gnu_sparse_blocks_are_followed() {
    let mut file = Header::new_gnu();
    file.set_entry_type(EntryType::GNUSparse);
    file.set_path("sparse").unwrap();
    file.set_mode(0o644);
    file.set_size(5 * 512);
    let gnu = file.as_gnu_mut().unwrap();
    for (index, slot) in gnu.sparse.iter_mut().enumerate() {
        slot.set_offset(index as u64 * 4096);
        slot.set_length(512);
    }
    gnu.set_real_size(4 * 4096 + 512);
    gnu.set_is_extended(true);
    file.set_cksum();
    let mut extra = tar::GnuExtSparseHeader::new();
    extra.sparse[0].set_offset(4 * 4096);
    extra.sparse[0].set_length(512);
    let mut bytes = file.as_bytes().to_vec();
    bytes.extend(extra.as_bytes());
    bytes.extend(vec![b's'; 5 * 512]);
    let mut ended = bytes.clone();
    ended.extend([0; 1024]);
    let listing = same_with_and_without_guard(&ended).unwrap();
    assert_eq!(listing[0].2, 4 * 4096 + 512);

    bytes.extend(header(EntryType::GNULongLink, "././@LongLink", 1 << 30).as_bytes());
    assert!(matches!(
        refusal_of(io::Cursor::new(bytes).chain(io::repeat(0))),
        TarGuardError::ExtensionTooLarge {
            kind: ExtensionKind::GnuLongLink,
            offset: 3584,
            ..
        }
    ));
}

/// Whatever follows the first zero block is not read as headers, by the parser or the
/// guard: an oversized header there changes nothing.
#[test]
fn trailing_bytes_after_the_end_pass() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut file = Header::new_gnu();
    file.set_mode(0o644);
    file.set_size(2);
    builder.append_data(&mut file, "a", &b"hi"[..]).unwrap();
    let mut bytes = builder.into_inner().unwrap();
    bytes.extend(header(EntryType::GNULongName, "././@LongLink", 1 << 30).as_bytes());
    bytes.extend(b"garbage that is no tar at all");
    let listing = same_with_and_without_guard(&bytes).unwrap();
    assert_eq!(listing.len(), 1);
}

/// A header the parser refuses (bad checksum, bad size) is handed to it, so the error is
/// the parser's own.
#[test]
fn malformed_headers_keep_the_parsers_errors() {
    let mut bad_sum = header(EntryType::GNULongName, "././@LongLink", 1 << 30);
    bad_sum.as_mut_bytes()[0] ^= 1;
    let mut bad_size = header(EntryType::Regular, "f", 0);
    bad_size.as_mut_bytes()[124..136].copy_from_slice(b"12345678901z");
    bad_size.set_cksum();
    for header in [bad_sum, bad_size] {
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend([0; 1024]);
        let error = same_with_and_without_guard(&bytes).unwrap_err();
        assert!(
            error.contains("checksum") || error.contains("not a number"),
            "{error}"
        );
    }
}

/// Headers without the ustar or GNU magic are plain entries to the parser, whatever
/// their type: an old-style `x` gives no PAX size.
#[test]
fn extension_types_without_magic_are_plain_entries() {
    let mut old = Header::new_old();
    old.set_entry_type(EntryType::XHeader);
    old.set_path("not-pax").unwrap();
    old.set_size(11);
    old.set_cksum();
    let mut bytes = old.as_bytes().to_vec();
    bytes.extend(padded(b"11 size=0\n\n"));
    bytes.extend(pax_then_file(&[], 3, b"abc"));
    bytes.extend([0; 1024]);
    let listing = same_with_and_without_guard(&bytes).unwrap();
    assert_eq!(listing.len(), 2);
}
