//! Go modules from the build info the Go toolchain embeds in its binaries (Go 1.18 and
//! later): a 32-byte header starting `\xff Go buildinf:` whose flags byte has bit 2 set,
//! then two varint-length strings, the Go version and the module info (`path`, `mod`, `dep`
//! and `=>` replacement lines between two 16-byte sentinels). The binary streams by once;
//! the header is found by searching the stream (it sits at the start of `.go.buildinfo`,
//! which a stripped binary keeps), so no section table and no seeking are needed. Older
//! binaries (pointer-based header) are not read.

use std::io::{self, Read};

use super::{Ecosystem, Package};

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const BUILDINFO_MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
/// Flags bit: the version and module info follow the header inline (Go ≥ 1.18).
const FLAG_INLINE: u8 = 0x2;
/// The most bytes of module info read (a large program's is tens of KiB).
const MODINFO_LIMIT: usize = 1 << 20;
/// Bytes read from the stream at a time.
const CHUNK: usize = 256 * 1024;

/// Scans one regular file. `Ok(None)` when it is not an ELF file or holds no (readable)
/// build info; at most `limit` bytes are searched.
pub(super) fn scan(file: &mut impl Read, limit: u64) -> io::Result<Option<Vec<Package>>> {
    let mut head = [0u8; 4];
    if read_up_to(file, &mut head)? < head.len() || &head != ELF_MAGIC {
        return Ok(None);
    }
    let mut file = file.take(limit.saturating_sub(head.len() as u64));
    let mut window: Vec<u8> = head.to_vec();
    loop {
        if let Some(at) = memchr::memmem::find(&window, BUILDINFO_MAGIC) {
            // Have the header and the longest info we accept in the window, or the file's end.
            let wanted = at + HEADER_LEN + 2 * (MODINFO_LIMIT + 10);
            if window.len() < wanted {
                let missing = (wanted - window.len()) as u64;
                (&mut file).take(missing).read_to_end(&mut window)?;
            }
            return Ok(parse(&window[at..]));
        }
        // Keep the tail that could hold the start of a magic split across two chunks.
        let keep = window.len().min(BUILDINFO_MAGIC.len() - 1);
        window.drain(..window.len() - keep);
        let before = window.len();
        (&mut file).take(CHUNK as u64).read_to_end(&mut window)?;
        if window.len() == before {
            return Ok(None);
        }
    }
}

fn read_up_to(file: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// The header at the start of `bytes` and what follows it.
fn parse(bytes: &[u8]) -> Option<Vec<Package>> {
    let header = bytes.get(..HEADER_LEN)?;
    if header[15] & FLAG_INLINE == 0 {
        return None;
    }
    let rest = &bytes[HEADER_LEN..];
    let (version, rest) = varint_string(rest)?;
    let (modinfo, _) = varint_string(rest)?;
    modules(version, modinfo)
}

fn varint_string(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length: u64 = 0;
    for (index, byte) in bytes.iter().take(10).enumerate() {
        length |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            let length = usize::try_from(length)
                .ok()
                .filter(|l| *l <= MODINFO_LIMIT)?;
            let start = index + 1;
            let end = start.checked_add(length)?;
            return Some((bytes.get(start..end)?, &bytes[end..]));
        }
    }
    None
}

/// The main module, its dependencies (a `=>` line replaces the `dep` before it) and the
/// standard library at the Go version.
fn modules(version: &[u8], modinfo: &[u8]) -> Option<Vec<Package>> {
    // Between 16-byte sentinels (not UTF-8) when non-empty.
    let modinfo = if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        &modinfo[16..modinfo.len() - 16]
    } else {
        modinfo
    };
    let version = std::str::from_utf8(version).ok()?;
    let modinfo = std::str::from_utf8(modinfo).ok()?;
    let mut packages = Vec::new();
    let go_version = version.strip_prefix("go")?;
    packages.push(Package::new(Ecosystem::Go, None, "stdlib", go_version));
    for line in modinfo.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod" | "dep", module, version, ..] => {
                packages.push(Package::new(Ecosystem::Go, None, module, version));
            }
            ["=>", module, version, ..] if !version.is_empty() => {
                // A replacement by another module version; one by a local folder (no
                // version) leaves the module as it was required.
                if let Some(last) = packages.last_mut() {
                    *last = Package::new(Ecosystem::Go, None, module, version);
                }
            }
            _ => {}
        }
    }
    Some(packages)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const SENTINEL_START: &[u8; 16] = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
    const SENTINEL_END: &[u8; 16] = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";

    /// An ELF-looking file with a Go 1.18+ build info block after `padding` bytes.
    pub(crate) fn go_binary(padding: usize, modinfo: &str) -> Vec<u8> {
        let mut bytes = ELF_MAGIC.to_vec();
        bytes.resize(padding, 0);
        let mut header = BUILDINFO_MAGIC.to_vec();
        header.push(8); // pointer size
        header.push(FLAG_INLINE);
        header.resize(HEADER_LEN, 0);
        bytes.extend(header);
        let version = b"go1.22.5";
        bytes.push(version.len() as u8);
        bytes.extend(version);
        let mut info = SENTINEL_START.to_vec();
        info.extend(modinfo.as_bytes());
        info.extend(SENTINEL_END);
        let mut length = info.len();
        while length >= 0x80 {
            bytes.push((length as u8) | 0x80);
            length >>= 7;
        }
        bytes.push(length as u8);
        bytes.extend(info);
        bytes.extend([0u8; 64]);
        bytes
    }

    pub(crate) const MODINFO: &str = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/text\tv0.14.0\th1:abc=\ndep\tgithub.com/old/mod\tv1.0.0\th1:def=\n=>\tgithub.com/new/mod\tv1.2.0\th1:ghi=\ndep\tgithub.com/local/mod\tv0.1.0\n=>\t../local\t\t\nbuild\tGOOS=linux\n";

    fn names(packages: &[Package]) -> Vec<String> {
        packages
            .iter()
            .map(|p| format!("{}@{}", p.name, p.version))
            .collect()
    }

    #[test]
    fn build_info_gives_modules_with_replacements_and_the_stdlib() {
        // Past the first chunk, so the search crosses chunk boundaries.
        let binary = go_binary(CHUNK + 7, MODINFO);
        let packages = scan(&mut &binary[..], u64::MAX).unwrap().unwrap();
        assert_eq!(
            names(&packages),
            [
                "stdlib@1.22.5",
                "example.com/app@(devel)",
                "golang.org/x/text@v0.14.0",
                "github.com/new/mod@v1.2.0",
                "github.com/local/mod@v0.1.0",
            ]
        );
    }

    #[test]
    fn not_elf_truncated_or_past_the_limit_is_nothing() {
        let binary = go_binary(100, MODINFO);
        assert_eq!(scan(&mut &b"#!/bin/sh\n"[..], u64::MAX).unwrap(), None);
        assert_eq!(scan(&mut &binary[..120], u64::MAX).unwrap(), None);
        assert_eq!(scan(&mut &binary[..], 50).unwrap(), None);
        let mut old_format = binary.clone();
        old_format[100 + 15] = 0;
        assert_eq!(scan(&mut &old_format[..], u64::MAX).unwrap(), None);
    }
}
