//! The SBOM as an SPDX 2.3 JSON document: the DU is the package the document describes,
//! every package found is one it `CONTAINS`, and it is a `DESCENDANT_OF` each badger image.
//! Packages carry their purl as an external reference and their layer and file in
//! `sourceInfo`; nothing is asserted about licenses or download locations (`NOASSERTION`).

use serde_json::{json, Value};

use super::document::Sbom;
use super::SbomError;

const DESCRIBED_ID: &str = "SPDXRef-DU";

/// The document's bytes (compact JSON, keys sorted, so the same SBOM gives the same bytes).
pub(super) fn document(sbom: &Sbom) -> Result<Vec<u8>, SbomError> {
    let described = &sbom.described;
    let mut source = format!("image {}", described.digest);
    if let Some(repository) = &described.repository {
        source.push_str(&format!(", source {repository}"));
    }
    if let Some(revision) = &described.revision {
        source.push_str(&format!(", revision {revision}"));
    }
    let mut du = json!({
        "SPDXID": DESCRIBED_ID,
        "name": described.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "sourceInfo": source,
        "checksums": [checksum(&described.digest)],
    });
    if let Some(revision) = &described.revision {
        du["versionInfo"] = json!(revision);
    }
    let mut packages = vec![du];
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", DESCRIBED_ID)];
    for (index, badger) in described.badgers.iter().enumerate() {
        let id = format!("SPDXRef-Badger-{index}");
        packages.push(json!({
            "SPDXID": id,
            "name": badger.name,
            "versionInfo": badger.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [checksum(&badger.digest)],
            "externalRefs": [purl_ref(&super::purl::oci(&badger.name, &badger.digest, &badger.version))],
        }));
        relationships.push(relationship(DESCRIBED_ID, "DESCENDANT_OF", &id));
    }
    for (index, listed) in sbom.packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{index}");
        let package = &listed.package;
        packages.push(json!({
            "SPDXID": id,
            "name": listed.name,
            "versionInfo": package.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "LIBRARY",
            "sourceInfo": format!("layer {}, file /{}", package.layer, package.path),
            "externalRefs": [purl_ref(&listed.purl)],
        }));
        relationships.push(relationship(DESCRIBED_ID, "CONTAINS", &id));
    }
    let document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": described.name,
        "documentNamespace": described.uuid,
        "creationInfo": {
            "created": described.created,
            "creators": [format!("Tool: solum-build-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    });
    serde_json::to_vec(&document).map_err(|source| SbomError::Serialize {
        format: "SPDX",
        source,
    })
}

/// A `sha256:<hex>` digest as an SPDX checksum.
fn checksum(digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    json!({"algorithm": "SHA256", "checksumValue": hex})
}

fn purl_ref(purl: &str) -> Value {
    json!({
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    })
}

fn relationship(element: &str, kind: &str, related: &str) -> Value {
    json!({
        "spdxElementId": element,
        "relationshipType": kind,
        "relatedSpdxElement": related,
    })
}
