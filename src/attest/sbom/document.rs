//! The format-neutral SBOM both documents are written from: what is described (the DU or
//! the image), when, under which stable identifiers, and the packages with their purls, each
//! listed once.

use std::collections::BTreeSet;

use sha1::{Digest as _, Sha1};

use super::catalog_os::OsRelease;
use super::{purl, Package};
use crate::image::Digest;
use crate::manifest::du::{BadgerUsed, DuManifest};

/// The documents' time when the config carries none.
const EPOCH: &str = "1970-01-01T00:00:00Z";
/// RFC 4122's URL namespace, under which the documents' UUIDs (version 5) are named.
const UUID_NAMESPACE_URL: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];

/// The image or DU an SBOM is of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    /// The DU's app name, else the image's name, else `image`.
    pub name: String,
    /// The image manifest's digest.
    pub digest: String,
    /// The config's `created`, as `YYYY-MM-DDThh:mm:ssZ` (the form SPDX requires).
    pub created: String,
    /// `urn:uuid:…`, derived from the manifest digest.
    pub uuid: String,
    pub repository: Option<String>,
    pub revision: Option<String>,
    pub badgers: Vec<BadgerUsed>,
}

impl Described {
    pub fn new(
        image_name: Option<&str>,
        digest: &Digest,
        created: Option<&str>,
        du: Option<&DuManifest>,
    ) -> Described {
        let name = du
            .map(|du| du.name.clone())
            .or_else(|| image_name.map(str::to_string))
            .unwrap_or_else(|| "image".to_string());
        // The config's word: a time whose UTC year has other than four digits (year 9999
        // at a negative offset is year 10000 in UTC) is not one SPDX accepts.
        let created = created
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&chrono::Utc))
            .filter(|time| (0..=9999).contains(&chrono::Datelike::year(time)))
            .map_or_else(
                || EPOCH.to_string(),
                |time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            );
        Described {
            name,
            digest: digest.to_string(),
            created,
            uuid: uuid_v5(&format!("solum-build:sbom:{digest}")),
            repository: du.and_then(|du| du.source.repository.clone()),
            revision: du.and_then(|du| du.source.revision.clone()),
            // A digest that is not one (the annotation is the image's own word) would make
            // an invalid checksum; such a badger is left out.
            badgers: du
                .map(|du| du.badgers.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|badger| badger.digest.parse::<Digest>().is_ok())
                .collect(),
        }
    }
}

/// A package as the documents list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub package: Package,
    pub purl: String,
    /// `@scope/name`, `group:artifact`, or the name.
    pub name: String,
}

/// Everything both documents say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sbom {
    pub described: Described,
    /// Sorted; one per purl.
    pub packages: Vec<Listed>,
}

impl Sbom {
    pub(super) fn new(described: Described, packages: Vec<Package>, os: Option<OsRelease>) -> Sbom {
        let mut seen = BTreeSet::new();
        let packages = packages
            .into_iter()
            .filter_map(|package| {
                let purl = purl::purl(&package, os.as_ref());
                // PyPI names differing only in case or separators are one package.
                seen.insert(purl.clone()).then(|| Listed {
                    name: purl::display_name(&package),
                    purl,
                    package,
                })
            })
            .collect();
        Sbom {
            described,
            packages,
        }
    }
}

/// A name-based (version 5) UUID under the URL namespace.
fn uuid_v5(name: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(UUID_NAMESPACE_URL);
    hasher.update(name.as_bytes());
    let hash = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v5_matches_rfc_4122() {
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, "https://example.org")
        assert_eq!(
            uuid_v5("https://example.org"),
            "urn:uuid:0d092af3-c9f8-531f-9cc3-9db40a0750ef"
        );
    }

    #[test]
    fn created_is_normalized_to_seconds_in_utc() {
        let digest = Digest::of_bytes(b"m");
        let described = Described::new(None, &digest, Some("2024-03-01T12:00:00.123+01:00"), None);
        assert_eq!(described.created, "2024-03-01T11:00:00Z");
        assert_eq!(described.name, "image");
        let none = Described::new(Some("base"), &digest, Some("garbage"), None);
        assert_eq!(none.created, EPOCH);
        assert_eq!(none.name, "base");
        for out_of_range in ["9999-12-31T23:00:00-05:00", "0000-01-01T00:30:00+01:00"] {
            let described = Described::new(None, &digest, Some(out_of_range), None);
            assert_eq!(described.created, EPOCH, "{out_of_range}");
        }
    }
}
