//! `solum-build verify REF --key PUB`: checks what is attached to a DU against a public
//! key and the DU itself, and prints what the provenance says. In this order:
//! 1. a cosign signature (any layer of any signature referrer) verifies with the key, and
//!    its payload names this manifest's digest (and, for a `docker://` reference, this
//!    repository: the identity podman's default policy checks);
//! 2. the provenance is a DSSE envelope that verifies with the key, its statement is an
//!    in-toto Statement v1 of SLSA Provenance v1, and its subject is this DU's digest;
//! 3. every SBOM attached to the DU is one the provenance names as a byproduct, by digest.
//!
//! Any failure exits 1 with the reason (as a script expects of a verifier: cosign and
//! skopeo do the same); a reference or key that cannot be read exits 2.

use super::exit::{FAILURE, SUCCESS};
use super::output::{escape_controls, result_line, CliReporter};
use super::Context;
use crate::attest::cosign::{self, CosignError};
use crate::attest::keys::VerifyingKey;
use crate::attest::referrers::{self, Referrer};
use crate::attest::{
    dsse, provenance, COSIGN_SIGNATURE_ANNOTATION, COSIGN_SIGNATURE_ARTIFACT, CYCLONEDX_JSON,
    DSSE_ENVELOPE, IN_TOTO_JSON, SPDX_JSON,
};
use crate::image::{Digest, ImageReference};
use crate::store::Layout;
use crate::transport::open_image;
use serde_json::Value;
use std::path::PathBuf;

/// The largest attachment read whole: an SBOM of a big image is a few MiB.
const ATTACHMENT_LIMIT: u64 = 64 << 20;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    solum-build verify myapp --key solum.pub\n  \
    solum-build verify docker://registry.example/team/myapp:1.0 --key solum.pub --json")]
pub struct VerifyArgs {
    /// The DU: NAME[:TAG], oci:DIR[:NAME], oci-archive:FILE[:NAME] or docker://….
    reference: String,
    /// The public key (PEM), as `solum-build keygen` writes it (`solum.pub`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The `HOST/REPO` a signature must name (default: the reference's own repository for
    /// docker://; any for the other transports, whose names are local).
    #[arg(long, value_name = "HOST/REPO")]
    identity: Option<String>,
    /// Print what was checked and what the provenance says as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: super::registry::RegistryFlags,
}

pub fn verify(context: &Context, args: VerifyArgs) -> anyhow::Result<i32> {
    let reference: ImageReference = args.reference.parse()?;
    let key = VerifyingKey::load(&args.key)?;
    let identity = args.identity.clone().or(match &reference {
        ImageReference::Registry {
            registry,
            repository,
            ..
        } => Some(format!("{registry}/{repository}")),
        _ => None,
    });
    let reporter = CliReporter::new(context.quiet);
    let client = args.registry.client()?;
    let opened = open_image(&reference, &context.store, Some(&client), &reporter)?;
    let digest = opened.image.manifest_digest.clone();
    let attached = referrers::list(&opened.layout, &digest)?;
    let report = match check(
        &opened.layout,
        &attached,
        &digest,
        &key,
        identity.as_deref(),
    ) {
        Ok(report) => report,
        Err(reason) => {
            eprintln!(
                "error: {} does not verify: {}",
                args.reference,
                escape_controls(&reason, &[])
            );
            return Ok(FAILURE);
        }
    };
    if args.json {
        result_line(serde_json::to_string_pretty(&report)?)?;
    } else {
        print_report(&args.reference, &digest, &report)?;
    }
    Ok(SUCCESS)
}

/// Every check of the module doc; the first failure is the reason.
fn check(
    layout: &Layout,
    attached: &[Referrer],
    digest: &Digest,
    key: &VerifyingKey,
    identity: Option<&str>,
) -> Result<Value, String> {
    let signed_as = check_signature(layout, attached, digest, key, identity)?;
    let statement = check_provenance(layout, attached, digest, key)?;
    let sboms = check_sboms(layout, attached, &statement)?;
    Ok(serde_json::json!({
        "digest": digest.to_string(),
        "signature": { "identity": signed_as },
        "provenance": statement,
        "sboms": sboms,
    }))
}

/// The identity of the first signature that verifies and names `digest`.
fn check_signature(
    layout: &Layout,
    attached: &[Referrer],
    digest: &Digest,
    key: &VerifyingKey,
    identity: Option<&str>,
) -> Result<String, String> {
    let mut reasons = Vec::new();
    for referrer in attached
        .iter()
        .filter(|r| r.artifact_type == COSIGN_SIGNATURE_ARTIFACT)
    {
        for layer in referrer.manifest.layers() {
            match check_one_signature(layout, layer, digest, key, identity) {
                Ok(signed_as) => return Ok(signed_as),
                Err(reason) => reasons.push(reason),
            }
        }
    }
    if reasons.is_empty() {
        return Err(
            "it has no signature (sign it with `solum-build sign` or `build --sign-key`)".into(),
        );
    }
    Err(format!("no signature verifies: {}", reasons.join("; ")))
}

fn check_one_signature(
    layout: &Layout,
    layer: &oci_spec::image::Descriptor,
    digest: &Digest,
    key: &VerifyingKey,
    identity: Option<&str>,
) -> Result<String, String> {
    let signature = layer
        .annotations()
        .as_ref()
        .and_then(|a| a.get(COSIGN_SIGNATURE_ANNOTATION))
        .ok_or("a signature layer has no signature annotation")?;
    let payload = read_layer(layout, layer)?;
    let signed = cosign::verify(&payload, signature, key, digest).map_err(|error| match error {
        CosignError::WrongDigest { signed, .. } => format!(
            "a signature by this key is for {signed}, not this manifest ({digest}): the image changed after it was signed"
        ),
        other => format!("a signature does not verify: {other}"),
    })?;
    if let Some(wanted) = identity {
        if signed.docker_reference != wanted {
            return Err(format!(
                "a signature by this key names {:?}, not {wanted:?}",
                signed.docker_reference
            ));
        }
    }
    Ok(signed.docker_reference)
}

/// The provenance statement, opened with the key and checked against `digest`.
fn check_provenance(
    layout: &Layout,
    attached: &[Referrer],
    digest: &Digest,
    key: &VerifyingKey,
) -> Result<Value, String> {
    let candidates: Vec<&Referrer> = attached
        .iter()
        .filter(|r| r.artifact_type == IN_TOTO_JSON)
        .collect();
    if candidates.is_empty() {
        return Err("it has no provenance attached".into());
    }
    let mut reasons = Vec::new();
    for referrer in candidates {
        let [layer] = referrer.manifest.layers().as_slice() else {
            reasons.push("a provenance referrer has more than one layer".to_string());
            continue;
        };
        if layer.media_type().to_string() != DSSE_ENVELOPE {
            reasons.push("the provenance is not signed (build with --sign-key)".to_string());
            continue;
        }
        let envelope = read_layer(layout, layer)?;
        let (payload_type, payload) = match dsse::open(&envelope, key) {
            Ok(opened) => opened,
            Err(error) => {
                reasons.push(format!(
                    "the provenance's envelope does not verify: {error}"
                ));
                continue;
            }
        };
        if payload_type != provenance::PAYLOAD_TYPE {
            reasons.push(format!("the provenance's payload type is {payload_type:?}"));
            continue;
        }
        let statement: Value = serde_json::from_slice(&payload)
            .map_err(|_| "the signed provenance is not JSON".to_string())?;
        if statement["_type"] != provenance::STATEMENT_TYPE
            || statement["predicateType"] != provenance::PREDICATE_TYPE
        {
            reasons.push("the signed statement is not SLSA provenance v1".to_string());
            continue;
        }
        let subjects = statement["subject"].as_array().cloned().unwrap_or_default();
        if !subjects
            .iter()
            .any(|s| s["digest"]["sha256"].as_str() == Some(digest.hex()))
        {
            reasons.push(format!(
                "the provenance's subject is not this DU ({digest})"
            ));
            continue;
        }
        return Ok(statement);
    }
    Err(reasons.join("; "))
}

/// Every attached SBOM is a byproduct of the verified provenance, by digest, and its blob
/// has the bytes of that digest.
fn check_sboms(
    layout: &Layout,
    attached: &[Referrer],
    statement: &Value,
) -> Result<Vec<Value>, String> {
    let byproducts: Vec<String> = statement["predicate"]["runDetails"]["byproducts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["digest"]["sha256"].as_str().map(str::to_owned))
        .collect();
    let mut checked = Vec::new();
    for referrer in attached
        .iter()
        .filter(|r| r.artifact_type == SPDX_JSON || r.artifact_type == CYCLONEDX_JSON)
    {
        let [layer] = referrer.manifest.layers().as_slice() else {
            return Err(format!(
                "the {} SBOM has more than one layer",
                referrer.artifact_type
            ));
        };
        let layer_digest = Digest::try_from(layer.digest())
            .map_err(|_| "an SBOM layer's digest is malformed".to_string())?;
        // Read whole: the layout checks the bytes against the digest as it reads.
        read_layer(layout, layer)?;
        if !byproducts.iter().any(|b| b == layer_digest.hex()) {
            return Err(format!(
                "the {} SBOM {layer_digest} is not the one the signed provenance names",
                referrer.artifact_type
            ));
        }
        checked.push(serde_json::json!({
            "artifactType": referrer.artifact_type,
            "digest": layer_digest.to_string(),
        }));
    }
    Ok(checked)
}

/// One attachment's blob, verified against its digest by the layout.
fn read_layer(layout: &Layout, layer: &oci_spec::image::Descriptor) -> Result<Vec<u8>, String> {
    let digest = Digest::try_from(layer.digest())
        .map_err(|_| format!("a layer digest {:?} is malformed", layer.digest()))?;
    layout
        .read_blob(&digest, Some(layer.size()), ATTACHMENT_LIMIT)
        .map_err(|error| format!("cannot read {digest}: {error}"))
}

/// The human form of a verified report.
fn print_report(reference: &str, digest: &Digest, report: &Value) -> anyhow::Result<()> {
    let predicate = &report["provenance"]["predicate"];
    let build = &predicate["buildDefinition"];
    let run = &predicate["runDetails"];
    let mut lines = vec![
        format!("Verified {reference} ({digest})"),
        format!(
            "  signature   by the key, for {}",
            report["signature"]["identity"].as_str().unwrap_or_default()
        ),
        format!(
            "  builder     {}",
            run["builder"]["id"].as_str().unwrap_or_default()
        ),
        format!(
            "  build type  {}",
            build["buildType"].as_str().unwrap_or_default()
        ),
        format!(
            "  invocation  {} ({} → {})",
            run["metadata"]["invocationId"].as_str().unwrap_or_default(),
            run["metadata"]["startedOn"].as_str().unwrap_or_default(),
            run["metadata"]["finishedOn"].as_str().unwrap_or_default()
        ),
    ];
    for dependency in build["resolvedDependencies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        lines.push(format!(
            "  from        {}",
            dependency["uri"].as_str().unwrap_or_default()
        ));
    }
    for sbom in report["sboms"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  sbom        {} {}",
            sbom["artifactType"].as_str().unwrap_or_default(),
            sbom["digest"].as_str().unwrap_or_default()
        ));
    }
    for line in lines {
        result_line(escape_controls(&line, &[]))?;
    }
    Ok(())
}
