//! Maven artifacts from jars (and wars, ears): each `META-INF/maven/<group>/<artifact>/
//! pom.properties` inside the zip gives `groupId`, `artifactId` and `version`. The jar is
//! held in memory (bounded by its size before it is read); the central directory's entry
//! count and each entry's decompressed size are bounded too. Jars nested in jars are not
//! opened.

use std::io::{Cursor, Read};

use super::{Ecosystem, Limits, Package};

/// The signature of a zip central directory file header.
const CENTRAL_DIRECTORY_HEADER: &[u8; 4] = b"PK\x01\x02";

/// The packages a jar's Maven metadata names; `None` when it is not a readable zip.
pub(super) fn jar(bytes: &[u8], limits: &Limits) -> Option<Vec<Package>> {
    // The zip reader parses the whole central directory before its length can be checked
    // (a 90 MB jar of a million empty entries took 600 MB). Every entry it parses starts
    // with the central directory header's signature at its own offset, so the count of
    // signatures in the bytes bounds the entries, whatever the end record claims.
    let headers = memchr::memmem::find_iter(bytes, CENTRAL_DIRECTORY_HEADER);
    if headers.take(limits.zip_entries + 1).count() > limits.zip_entries {
        return None;
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    if archive.len() > limits.zip_entries {
        return None;
    }
    let mut packages = Vec::new();
    for index in 0..archive.len() {
        let Ok(mut file) = archive.by_index(index) else {
            continue;
        };
        let wanted = file.name().starts_with("META-INF/maven/")
            && file.name().ends_with("/pom.properties")
            && file.is_file();
        if !wanted || file.size() > limits.zip_entry_bytes {
            continue;
        }
        let mut text = Vec::new();
        // The declared size is the zip's claim; `take` holds a deflate stream to the bound.
        if (&mut file)
            .take(limits.zip_entry_bytes)
            .read_to_end(&mut text)
            .is_err()
        {
            continue;
        }
        packages.extend(pom_properties(&text));
    }
    Some(packages)
}

/// `key=value` lines (`#` comments) of a `pom.properties`.
fn pom_properties(bytes: &[u8]) -> Option<Package> {
    let text = String::from_utf8_lossy(bytes);
    let (mut group, mut artifact, mut version) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "groupId" => group = Some(value),
            "artifactId" => artifact = Some(value),
            "version" => version = Some(value),
            _ => {}
        }
    }
    Some(Package::new(
        Ecosystem::Maven,
        Some(group?),
        artifact?,
        version?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn zip_of(names: &[&str]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for name in names {
            writer.start_file(*name, options).unwrap();
            writer
                .write_all(b"groupId=g\nartifactId=a\nversion=1\n")
                .unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn a_central_directory_over_the_entry_bound_is_not_parsed() {
        let names = ["META-INF/maven/g/a/pom.properties", "b", "c", "d"];
        let bytes = zip_of(&names);
        let roomy = Limits {
            zip_entries: 4,
            ..Limits::default()
        };
        assert_eq!(jar(&bytes, &roomy).map(|p| p.len()), Some(1));
        let tight = Limits {
            zip_entries: 3,
            ..Limits::default()
        };
        assert_eq!(jar(&bytes, &tight), None);
    }
}
