//! The SBOM as a CycloneDX 1.5 JSON document: the DU is `metadata.component`, the badger
//! images and every package found are `components`, each package with its purl and, as
//! properties, the layer and file it came from.

use serde_json::{json, Value};

use super::document::Sbom;
use super::SbomError;

/// The document's bytes (compact JSON, keys sorted, so the same SBOM gives the same bytes).
pub(super) fn document(sbom: &Sbom) -> Result<Vec<u8>, SbomError> {
    let described = &sbom.described;
    let mut du = json!({
        "type": "container",
        "bom-ref": "du",
        "name": described.name,
        "hashes": [hash(&described.digest)],
    });
    if let Some(revision) = &described.revision {
        du["version"] = json!(revision);
    }
    if let Some(repository) = &described.repository {
        du["externalReferences"] = json!([{"type": "vcs", "url": repository}]);
    }
    let mut components = Vec::with_capacity(described.badgers.len() + sbom.packages.len());
    for (index, badger) in described.badgers.iter().enumerate() {
        components.push(json!({
            "type": "container",
            "bom-ref": format!("badger-{index}"),
            "name": badger.name,
            "version": badger.version,
            "hashes": [hash(&badger.digest)],
            "purl": super::purl::oci(&badger.name, &badger.digest, &badger.version),
            "properties": [property("solum:badger", "true")],
        }));
    }
    for listed in &sbom.packages {
        let package = &listed.package;
        components.push(json!({
            "type": "library",
            "bom-ref": listed.purl,
            "name": listed.name,
            "version": package.version,
            "purl": listed.purl,
            "properties": [
                property("solum:layer", &package.layer),
                property("solum:path", &format!("/{}", package.path)),
            ],
        }));
    }
    let document = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": described.uuid,
        "version": 1,
        "metadata": {
            "timestamp": described.created,
            "tools": {"components": [{
                "type": "application",
                "name": "solum-build",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": du,
        },
        "components": components,
    });
    serde_json::to_vec(&document).map_err(|source| SbomError::Serialize {
        format: "CycloneDX",
        source,
    })
}

/// A `sha256:<hex>` digest as a CycloneDX hash.
fn hash(digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    json!({"alg": "SHA-256", "content": hex})
}

fn property(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}
