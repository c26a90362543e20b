//! Entry points for the fuzz targets in `fuzz/` (run with `scripts/fuzz.sh`): each takes
//! arbitrary bytes, feeds them to one parser or to the layer unpacker, and panics when an
//! invariant breaks — that panic is what the fuzzer reports as a crash. Errors are the
//! expected outcome for almost every input and are ignored; what is checked is what must
//! hold whatever the input: nothing is written outside the unpack root, the tar guard
//! reads a layer as the tar parser does (unless it refuses it), a parsed document
//! reads back to itself, a resolved image is backed by its blobs before and after `gc`.
//!
//! The functions live in the library (not in `fuzz/`) so that they can reach crate-private
//! parsers without widening them, and so that the unit tests below run the same checks on
//! the seed corpus with the stable toolchain. They are not part of the tool's interface.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path};

use crate::image::{Digest, ImageReference};
use crate::layer::{unpack_layer as unpack, LayerCompression, UnpackOptions};
use crate::manifest::{AppFile, BadgerManifest};
use crate::registry::auth::{parse_challenge, Challenge};
use crate::store::Layout;
use std::fmt::Write as _;

/// What the sentinel file beside the unpack root holds.
const SECRET: &[u8] = b"secret\n";

/// The layer unpacker. The first byte chooses the mode (bit 0: rootless; bits 1–2: the
/// rest is one plain layer with sniffed compression, the rest gzip-compressed here, or two
/// plain layers split at the offset given by the next two bytes); the rest is the layer.
/// The root starts with two symlinks that point outside it (`up -> ../outside` and `abs ->`
/// the absolute path of `outside`), and `outside/secret` must be left exactly as it was.
pub fn unpack_layer(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    fs::create_dir(&root).expect("mkdir root");
    fs::create_dir(&outside).expect("mkdir outside");
    let secret = outside.join("secret");
    fs::write(&secret, SECRET).expect("write secret");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod secret");
    let before = fs::metadata(&secret).expect("stat secret");
    std::os::unix::fs::symlink("../outside", root.join("up")).expect("symlink up");
    std::os::unix::fs::symlink(&outside, root.join("abs")).expect("symlink abs");

    let options = UnpackOptions {
        rootless: mode & 1 == 1 || crate::privilege::Privilege::of_this_process().is_rootless(),
        limits: crate::layer::UnpackLimits::default(),
    };
    match (mode >> 1) % 3 {
        0 => {
            guard_agrees_with_parser(rest);
            let _ = unpack(rest, None, &root, &options);
        }
        1 => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(rest).expect("gzip in memory");
            let gzip = encoder.finish().expect("gzip in memory");
            let _ = unpack(&gzip[..], Some(LayerCompression::Gzip), &root, &options);
        }
        _ => {
            let (first, second) = match rest {
                [a, b, layers @ ..] => {
                    let at = usize::from(u16::from_le_bytes([*a, *b])).min(layers.len());
                    layers.split_at(at)
                }
                _ => (rest, &[][..]),
            };
            if unpack(first, None, &root, &options).is_ok() {
                let _ = unpack(second, None, &root, &options);
            }
        }
    }

    let mut beside: Vec<_> = fs::read_dir(dir.path())
        .expect("list temp dir")
        .map(|e| e.expect("temp dir entry").file_name())
        .collect();
    beside.sort();
    assert_eq!(beside, ["outside", "root"], "created beside the root");
    let names: Vec<_> = fs::read_dir(&outside)
        .expect("list outside")
        .map(|e| e.expect("outside entry").file_name())
        .collect();
    assert_eq!(names, ["secret"], "written outside the root");
    let after = fs::symlink_metadata(&secret).expect("stat secret");
    assert!(after.is_file(), "secret replaced");
    assert_eq!(after.nlink(), 1, "secret hardlinked from inside the root");
    assert_eq!(after.ino(), before.ino(), "secret replaced");
    assert_eq!(after.mode(), before.mode(), "secret's mode changed");
    assert_eq!(after.uid(), before.uid(), "secret's owner changed");
    assert_eq!(after.mtime(), before.mtime(), "secret's mtime changed");
    assert_eq!(fs::read(&secret).expect("read secret"), SECRET);
    make_removable(&root);
}

/// Entries of a tar as the parser yields them (path, link target, size, contents), or its
/// error.
type TarListing = Result<Vec<(Vec<u8>, Option<Vec<u8>>, u64, Vec<u8>)>, std::io::Error>;

fn list_tar(reader: impl std::io::Read) -> TarListing {
    use std::io::Read as _;
    let mut archive = tar::Archive::new(reader);
    let mut listing = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        listing.push((
            entry.path_bytes().into_owned(),
            entry.link_name_bytes().map(std::borrow::Cow::into_owned),
            entry.size(),
            data,
        ));
    }
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())?;
    Ok(listing)
}

/// The tar guard follows the parser's idea of where each header is: whatever the bytes,
/// reading through it yields the same entries and the same error as reading without it,
/// unless the guard refused an oversized extension header.
fn guard_agrees_with_parser(layer: &[u8]) {
    let plain = list_tar(layer);
    let guarded = list_tar(crate::layer::TarGuard::new(layer));
    match (&plain, &guarded) {
        (_, Err(error)) if crate::layer::refusal(error).is_some() => {}
        (Ok(plain), Ok(guarded)) => assert_eq!(plain, guarded, "the guard changed the entries"),
        (Err(plain), Err(guarded)) => assert_eq!(
            plain.to_string(),
            guarded.to_string(),
            "the guard changed the error"
        ),
        _ => panic!("the guard changed the outcome: {plain:?} against {guarded:?}"),
    }
}

/// Gives every directory under `dir` (not following symlinks) an owner-writable mode, so
/// that the temp dir can be removed after an unpack that ended with mode-000 directories.
fn make_removable(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_removable(&entry.path());
            }
        }
    }
}

/// The app file parser: an accepted file serializes to JSON that parses back to the same
/// file (the app file's serde form is the document itself), and a rejected one names at
/// least one problem.
pub fn app_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match AppFile::parse(text, "fuzz.yaml") {
        Ok(app) => {
            let json = serde_json::to_string(&app).expect("an app file serializes");
            let again = AppFile::parse(&json, "fuzz.json")
                .unwrap_or_else(|e| panic!("{json} does not parse back: {e}"));
            assert_eq!(again, app, "app file changed through JSON");
            for badger in app.all_badgers() {
                badger
                    .parse::<ImageReference>()
                    .unwrap_or_else(|e| panic!("accepted badger {badger:?}: {e}"));
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty(), "an error with no message");
        }
    }
}

/// The badger manifest parser: an accepted manifest reads back from its annotation JSON
/// unchanged (the annotation goes through the same decoder), its `setup` script stays a
/// relative path without `..`, and `build` is absolute.
pub fn badger_manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = BadgerManifest::parse(text, "badger.yaml") else {
        return;
    };
    let json = manifest.to_json().expect("a badger manifest serializes");
    let again = BadgerManifest::from_annotation(&json)
        .unwrap_or_else(|e| panic!("{json} does not read back: {e}"));
    assert_eq!(
        again, manifest,
        "badger manifest changed through its annotation"
    );
    if let Some(setup) = &manifest.setup {
        let path = Path::new(setup);
        assert!(
            path.is_relative()
                && path
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir)),
            "accepted setup {setup:?}"
        );
    }
    assert!(
        manifest.build.starts_with('/'),
        "accepted build {:?}",
        manifest.build
    );
}

/// Image references: what parses prints as text that parses to the same reference, and
/// store and layout names pass the name check on their own.
pub fn image_reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reference) = text.parse::<ImageReference>() else {
        return;
    };
    let printed = reference.to_string();
    let again: ImageReference = printed
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which is refused: {e}"));
    assert_eq!(again, reference, "{text:?} printed as {printed:?}");
    match &reference {
        ImageReference::Store { name } => {
            crate::image::reference::validate_name(text, name).expect("store name");
        }
        ImageReference::Layout { name, .. }
        | ImageReference::OciArchive { name, .. }
        | ImageReference::DockerArchive { name, .. } => {
            if let Some(name) = name {
                crate::image::reference::validate_name(text, name).expect("layout name");
            }
        }
        ImageReference::Registry {
            registry,
            repository,
            digest,
            ..
        } => {
            assert!(!registry.is_empty() && !registry.contains('/'), "{text:?}");
            assert!(!repository.is_empty(), "{text:?}");
            if let Some(digest) = digest {
                digest.parse::<Digest>().expect("digest");
            }
        }
    }
}

/// `WWW-Authenticate` parsing: whatever the header, a Bearer challenge that was read
/// writes back (quoted, escaped) as a header that reads the same.
pub fn www_authenticate(data: &[u8]) {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let Some(Challenge::Bearer { realm, service }) = parse_challenge(header) else {
        return;
    };
    let quote = |value: &str| value.replace('\\', "\\\\").replace('"', "\\\"");
    let mut again = format!("Bearer realm=\"{}\"", quote(&realm));
    if let Some(service) = &service {
        let _ = write!(again, ",service=\"{}\"", quote(service));
    }
    assert_eq!(
        parse_challenge(&again),
        Some(Challenge::Bearer { realm, service }),
        "{header:?} read differently as {again:?}"
    );
}

/// Index and manifest resolution in a layout built from the input: documents separated by
/// NUL bytes, the first is `index.json`, every other one is stored as a blob. In a
/// document, `$dN` becomes the digest of document N and `$sN` its size (N greater than the
/// document's own number, so the documents form a DAG, as content addressing forces).
/// Whatever resolves must be backed by verified blobs, and must resolve the same after `gc`.
pub fn layout_resolve(data: &[u8]) {
    let mut docs: Vec<Vec<u8>> = data.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    if docs.len() > 64 {
        return;
    }
    let mut digests: Vec<Option<(Digest, usize)>> = vec![None; docs.len()];
    for i in (0..docs.len()).rev() {
        let doc = substitute(&docs[i], i, &digests);
        if i > 0 {
            digests[i] = Some((Digest::of_bytes(&doc), doc.len()));
        }
        docs[i] = doc;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let layout = Layout::open_or_create(dir.path()).expect("new layout");
    for doc in &docs[1..] {
        layout.put_bytes(doc).expect("store a blob");
    }
    fs::write(dir.path().join("index.json"), &docs[0]).expect("write index.json");

    let names = layout.names().unwrap_or_default();
    let mut wanted: Vec<Option<&str>> = vec![None];
    wanted.extend(names.iter().take(4).map(|n| Some(n.as_str())));
    let resolved: Vec<_> = wanted
        .iter()
        .map(|name| layout.resolve(*name).ok())
        .collect();
    for image in resolved.iter().flatten() {
        assert_eq!(
            Digest::of_bytes(&image.manifest_bytes),
            image.manifest_digest
        );
        assert_eq!(Digest::of_bytes(&image.config_bytes), image.config_digest);
    }
    let Ok(held) = layout.exclusive_lease(&|| {}) else {
        return;
    };
    if layout.gc(&held).is_err() {
        return;
    }
    for (name, before) in wanted.iter().zip(&resolved) {
        let Some(before) = before else { continue };
        let after = layout
            .resolve(*name)
            .unwrap_or_else(|e| panic!("{name:?} resolved before gc, not after: {e}"));
        assert_eq!(after.manifest_digest, before.manifest_digest);
        assert_eq!(after.config_digest, before.config_digest);
        let blobs: BTreeSet<_> = before
            .blobs()
            .iter()
            .map(|d| d.digest().to_string())
            .collect();
        for blob in blobs {
            let digest: Digest = blob.parse().expect("checked by resolve");
            assert!(layout.has_blob(&digest), "gc removed {blob} of {name:?}");
        }
    }
}

/// Replaces `$dN` and `$sN` in document `own` by the digest and size of document N > own.
fn substitute(doc: &[u8], own: usize, digests: &[Option<(Digest, usize)>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(doc.len());
    let mut i = 0;
    while i < doc.len() {
        if doc[i] == b'$' && i + 2 < doc.len() && matches!(doc[i + 1], b'd' | b's') {
            let digits = doc[i + 2..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let number = std::str::from_utf8(&doc[i + 2..i + 2 + digits])
                .ok()
                .and_then(|n| n.parse::<usize>().ok());
            if let Some((digest, size)) = number
                .filter(|n| *n > own)
                .and_then(|n| digests.get(n).cloned().flatten())
            {
                if doc[i + 1] == b'd' {
                    out.extend_from_slice(digest.to_string().as_bytes());
                } else {
                    out.extend_from_slice(size.to_string().as_bytes());
                }
                i += 2 + digits;
                continue;
            }
        }
        out.push(doc[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests;
