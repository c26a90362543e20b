//! The referrers of an image in a registry: pushed after the image, pulled after it.
//!
//! **Push.** Each referrer of the layout (and its own referrers, a few levels deep) goes up
//! as its blobs, then its manifest by digest. A registry with the OCI 1.1 referrers API
//! answers the manifest PUT with `OCI-Subject` and indexes it itself. Otherwise (Debian's
//! `docker-registry` 2.8, for one) the fallback tag `sha256-<hex of subject>` is kept: it
//! is read (absent: a new index; an OCI image index: kept; anything else: replaced, with a
//! warning), our descriptors are merged in by digest, each with `artifactType` and the
//! manifest's annotations, and it is put back. A cosign signature also goes under the tag
//! `sha256-<hex>.sig`, which podman and skopeo read with `use-sigstore-attachments`. That
//! tag holds one manifest: when several signatures exist, its layers are all of them, as
//! cosign appends them (a layer already there is not added twice).
//!
//! What Debian's `docker-registry` 2.8 answers, checked: the manifest PUT of a referrer
//! is `201 Created` with no `OCI-Subject`, and `GET /v2/<repo>/referrers/<digest>` is
//! `404`; so the fallback tag is what it holds.
//!
//! **Pull.** `GET /v2/<repo>/referrers/<digest>` (200 and an index: used; anything else:
//! the fallback tag), then each listed manifest by digest (verified), bounded in count
//! and in size; a manifest whose `subject` is not the pulled one is left out with a
//! warning (a registry can list anything under any tag). The `.sig` tag's layers become
//! referrers too, one artifact manifest per signature, built as an attachment would be,
//! so a signature that was pushed both ways is stored once.

use super::client::{Call, Client, Payload};
use super::pull::{get_manifest, Puller};
use super::push::{for_each_bounded, Pusher};
use super::{RegistryError, RegistryOptions, RegistryTarget, TransferProgress};
use crate::attest::{COSIGN_SIGNATURE_ARTIFACT, EMPTY_CONFIG, SIMPLE_SIGNING};
use crate::image::{media, Digest};
use crate::store::image::DOCUMENT_LIMIT;
use crate::store::referrers::{
    artifact_manifest, artifact_type_of, is_media_type, ArtifactLayer, StoredReferrer,
    EMPTY_CONFIG_DIGEST, MAX_REFERRERS, MAX_REFERRER_BLOB, MAX_REFERRER_BYTES, MAX_REFERRER_DEPTH,
};
use crate::store::{Layout, ResolvedImage};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use ureq::http;

/// The most layers a `.sig` manifest may have (one per signature).
const MAX_SIGNATURES: usize = 64;

/// The fallback tag of a subject: `sha256-<hex>`.
pub(super) fn fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// Pushes the referrers of `image` (stored in `layout`) to `dest`'s repository; the image
/// must be there already. Returns how many referrer manifests were pushed.
pub fn push_referrers(
    layout: &Layout,
    image: &ResolvedImage,
    dest: &RegistryTarget,
    options: &RegistryOptions,
    progress: &dyn TransferProgress,
) -> Result<usize, RegistryError> {
    let first = layout.referrers_of(&image.manifest_digest)?;
    if first.is_empty() {
        return Ok(0);
    }
    let client = Client::connect(dest, options, progress)?;
    let scopes = format!("repository:{}:pull,push", dest.repository);
    let pusher = Pusher {
        client: &client,
        layout,
        scopes: &scopes,
        mount_from: None,
        chunk_size: options.chunk_size,
    };
    let parallel = options.parallelism();
    let mut pushed = 0;
    let mut level = vec![(image.manifest_digest.clone(), first)];
    for _ in 0..MAX_REFERRER_DEPTH {
        let mut next = Vec::new();
        for (subject, referrers) in &level {
            // Every blob first, each once (the `{}` config is shared), a few at a time.
            let mut seen = BTreeSet::new();
            let blobs: Vec<Descriptor> = referrers
                .iter()
                .flat_map(StoredReferrer::blobs)
                .filter(|d| seen.insert(d.digest().to_string()))
                .collect();
            for_each_bounded(&blobs, parallel, |blob| pusher.blob(blob))?;
            let mut unindexed = Vec::new();
            for referrer in referrers {
                if !put_referrer(&client, &scopes, referrer, subject)? {
                    unindexed.push(referrer);
                }
                pushed += 1;
                let digest = referrer.digest();
                let theirs = layout.referrers_of(&digest)?;
                if !theirs.is_empty() {
                    next.push((digest, theirs));
                }
            }
            if !unindexed.is_empty() {
                update_fallback_tag(&client, &scopes, subject, &unindexed)?;
            }
            let signatures: Vec<&StoredReferrer> = referrers
                .iter()
                .filter(|r| artifact_type_of(&r.manifest) == COSIGN_SIGNATURE_ARTIFACT)
                .collect();
            if !signatures.is_empty() {
                update_signature_tag(&client, &scopes, subject, &signatures)?;
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(pushed)
}

/// PUTs a referrer manifest by digest; whether the registry indexed it (`OCI-Subject`).
fn put_referrer(
    client: &Client<'_>,
    scopes: &str,
    referrer: &StoredReferrer,
    subject: &Digest,
) -> Result<bool, RegistryError> {
    let digest = referrer.digest();
    let response = put_document(
        client,
        scopes,
        &digest.to_string(),
        media::OCI_MANIFEST,
        &referrer.manifest_bytes,
    )?;
    let indexed = response
        .headers()
        .get("OCI-Subject")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == subject.to_string());
    client.progress.on_manifest(&digest, media::OCI_MANIFEST);
    Ok(indexed)
}

/// `PUT /manifests/{reference}`; 201 is success.
fn put_document(
    client: &Client<'_>,
    scopes: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Result<http::Response<ureq::Body>, RegistryError> {
    let action = format!("PUT manifest {reference}");
    let response = client.send(&Call {
        method: "PUT",
        url: client.url(&format!("/manifests/{reference}")),
        scopes,
        headers: vec![("Content-Type", media_type.to_string())],
        payload: Payload::Bytes(bytes),
        retry: true,
        action: action.clone(),
    })?;
    if response.status().as_u16() != 201 {
        return Err(client.failure(&action, response));
    }
    Ok(response)
}

/// The document under `tag`, `None` when the registry has none (404).
fn get_tag(
    client: &Client<'_>,
    scopes: &str,
    tag: &str,
) -> Result<Option<super::pull::Document>, RegistryError> {
    match get_manifest(client, scopes, tag, None) {
        Ok(document) => Ok(Some(document)),
        Err(RegistryError::Status { status: 404, .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Merges `referrers` into the fallback index of `subject` and puts it back.
fn update_fallback_tag(
    client: &Client<'_>,
    scopes: &str,
    subject: &Digest,
    referrers: &[&StoredReferrer],
) -> Result<(), RegistryError> {
    let tag = fallback_tag(subject);
    let mut entries = read_tag_list(client, scopes, &tag, index_entries, "an OCI image index")?;
    for referrer in referrers {
        let digest = referrer.digest().to_string();
        entries.retain(|e| e["digest"].as_str() != Some(digest.as_str()));
        let mut entry = json!({
            "mediaType": media::OCI_MANIFEST,
            "digest": digest,
            "size": referrer.manifest_bytes.len(),
            "artifactType": artifact_type_of(&referrer.manifest),
        });
        if let Some(annotations) = referrer.manifest.annotations() {
            entry["annotations"] = json!(annotations.iter().collect::<BTreeMap<_, _>>());
        }
        entries.push(entry);
    }
    let index = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": entries});
    let bytes = serde_json::to_vec(&index).expect("a JSON value serializes");
    put_document(client, scopes, &tag, media::OCI_INDEX, &bytes)?;
    Ok(())
}

/// The list a tag's document holds (`list` reads it): empty when the tag is absent, and
/// when it holds something else, which is then replaced, with a warning.
fn read_tag_list(
    client: &Client<'_>,
    scopes: &str,
    tag: &str,
    list: fn(&[u8]) -> Option<Vec<Value>>,
    kind: &str,
) -> Result<Vec<Value>, RegistryError> {
    let Some(document) = get_tag(client, scopes, tag)? else {
        return Ok(Vec::new());
    };
    Ok(list(&document.bytes).unwrap_or_else(|| {
        client.progress.on_warning(&format!(
            "{}/{}: tag {tag} is not {kind}; it is replaced",
            client.registry, client.repository
        ));
        Vec::new()
    }))
}

/// The `manifests` of an OCI image index, as JSON values; `None` for anything else. An
/// index SHOULD carry `mediaType`, but need not: one without it (as other tools may
/// write a fallback tag) is still an index, and what it lists is kept.
fn index_entries(bytes: &[u8]) -> Option<Vec<Value>> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    match value.get("mediaType") {
        None => {}
        Some(media_type) if media_type.as_str() == Some(media::OCI_INDEX) => {}
        Some(_) => return None,
    }
    ImageIndex::from_reader(bytes).ok()?;
    value.get("manifests")?.as_array().cloned()
}

/// Adds the signature layers of `signatures` to the manifest under `sha256-<hex>.sig`.
fn update_signature_tag(
    client: &Client<'_>,
    scopes: &str,
    subject: &Digest,
    signatures: &[&StoredReferrer],
) -> Result<(), RegistryError> {
    let tag = format!("{}.sig", fallback_tag(subject));
    let mut layers = read_tag_list(
        client,
        scopes,
        &tag,
        signature_layers,
        "a signature manifest",
    )?;
    for signature in signatures {
        for layer in signature.manifest.layers() {
            let layer = serde_json::to_value(layer).expect("a descriptor serializes");
            if !layers.contains(&layer) {
                layers.push(layer);
            }
        }
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": EMPTY_CONFIG, "digest": EMPTY_CONFIG_DIGEST, "size": 2},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).expect("a JSON value serializes");
    put_document(client, scopes, &tag, media::OCI_MANIFEST, &bytes)?;
    Ok(())
}

/// The layers of a `.sig` manifest; `None` when it is not an OCI manifest of at most
/// [`MAX_SIGNATURES`] layers.
fn signature_layers(bytes: &[u8]) -> Option<Vec<Value>> {
    let manifest = ImageManifest::from_reader(bytes).ok()?;
    if manifest.layers().len() > MAX_SIGNATURES {
        return None;
    }
    serde_json::from_slice::<Value>(bytes)
        .ok()?
        .get("layers")?
        .as_array()
        .cloned()
}

/// Pulls the referrers of `subject` (pulled into `layout` already) from `source`'s
/// repository into `layout`, and theirs, a few levels deep. What a registry lists that
/// is not a referrer of the subject, or is too large, is left out with a warning; too
/// many referrers are all left out, with a warning. Returns how many were stored.
pub fn pull_referrers(
    source: &RegistryTarget,
    layout: &Layout,
    subject: &Descriptor,
    options: &RegistryOptions,
    progress: &dyn TransferProgress,
) -> Result<usize, RegistryError> {
    let client = Client::connect(source, options, progress)?;
    let scopes = format!("repository:{}:pull", source.repository);
    let puller = Puller {
        client: &client,
        layout,
        scopes: &scopes,
    };
    let mut stored = 0;
    // What is left of MAX_REFERRER_BYTES: each referrer's blobs are taken from it, as
    // their descriptors declare them, before any is fetched.
    let mut budget = MAX_REFERRER_BYTES;
    let mut level = vec![subject.clone()];
    for depth in 0..MAX_REFERRER_DEPTH {
        let mut next = Vec::new();
        for subject in &level {
            let subject_digest = crate::store::image::descriptor_digest(layout, subject)?;
            let mut listed = list_remote(&client, &scopes, &subject_digest)?;
            if listed.len() > MAX_REFERRERS {
                progress.on_warning(&format!(
                    "{}/{}: {subject_digest} has {} referrers, more than {MAX_REFERRERS}; none is pulled",
                    client.registry,
                    client.repository,
                    listed.len()
                ));
                listed.clear();
            }
            for entry in listed {
                // Each level may list as many as the one before: the whole pull is
                // bounded too, or four levels would be 256^4 requests.
                if stored == MAX_REFERRERS {
                    progress.on_warning(&format!(
                        "{}/{}: more than {MAX_REFERRERS} referrers in all; the rest is not pulled",
                        client.registry, client.repository
                    ));
                    return Ok(stored);
                }
                if let Some(entry) = pull_one(&puller, &entry, &subject_digest, &mut budget)? {
                    next.push(entry);
                    stored += 1;
                }
            }
            // Signatures made by cosign itself live only under the `.sig` tag.
            if depth == 0 {
                for bytes in signatures_from_tag(&client, &scopes, layout, subject, &mut budget)? {
                    if !layout.has_blob(&Digest::of_bytes(&bytes)) {
                        layout.put_bytes(&bytes)?;
                        next.push(layout.add_referrer(&bytes)?);
                        stored += 1;
                    }
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(stored)
}

/// The referrer descriptors the registry lists for `subject`: the referrers API, else the
/// fallback tag. Only manifest descriptors are kept.
fn list_remote(
    client: &Client<'_>,
    scopes: &str,
    subject: &Digest,
) -> Result<Vec<Descriptor>, RegistryError> {
    let action = format!("GET referrers of {subject}");
    let response = client.send(&Call {
        method: "GET",
        url: client.url(&format!("/referrers/{subject}")),
        scopes,
        headers: vec![("Accept", media::OCI_INDEX.to_string())],
        payload: Payload::Empty,
        retry: true,
        action,
    })?;
    let mut bytes = None;
    if response.status().as_u16() == 200 {
        let mut body = Vec::new();
        let read = client
            .guarded_reader(response)
            .take(DOCUMENT_LIMIT + 1)
            .read_to_end(&mut body);
        if read.is_ok() && body.len() as u64 <= DOCUMENT_LIMIT && index_entries(&body).is_some() {
            bytes = Some(body);
        }
    }
    let bytes = match bytes {
        Some(bytes) => bytes,
        None => match get_tag(client, scopes, &fallback_tag(subject))? {
            None => return Ok(Vec::new()),
            Some(document) if index_entries(&document.bytes).is_some() => document.bytes,
            Some(_) => {
                client.progress.on_warning(&format!(
                    "{}/{}: tag {} is not an OCI image index; no referrer is read from it",
                    client.registry,
                    client.repository,
                    fallback_tag(subject)
                ));
                return Ok(Vec::new());
            }
        },
    };
    let index =
        ImageIndex::from_reader(&bytes[..]).map_err(|source| RegistryError::BadDocument {
            registry: client.registry.clone(),
            repository: client.repository.clone(),
            what: "referrers index",
            reference: subject.to_string(),
            source,
        })?;
    Ok(index
        .manifests()
        .iter()
        .filter(|d| media::is_manifest(d.media_type().as_ref()))
        .cloned()
        .collect())
}

/// Fetches one listed referrer and stores it if it is one of `subject`; its entry.
fn pull_one(
    puller: &Puller<'_, '_>,
    entry: &Descriptor,
    subject: &Digest,
    budget: &mut u64,
) -> Result<Option<Descriptor>, RegistryError> {
    let client = puller.client;
    let warn = |why: &str| {
        client.progress.on_warning(&format!(
            "{}/{}: referrer {} of {subject} is left out: {why}",
            client.registry,
            client.repository,
            entry.digest()
        ));
    };
    let Ok(digest) = Digest::try_from(entry.digest()) else {
        warn("its digest is malformed");
        return Ok(None);
    };
    // One listed manifest the registry cannot serve costs that one, not the others.
    let document = match get_manifest(client, puller.scopes, &digest.to_string(), Some(&digest)) {
        Ok(document) => document,
        Err(error) => {
            warn(&error.to_string());
            return Ok(None);
        }
    };
    let Ok(manifest) = ImageManifest::from_reader(&document.bytes[..]) else {
        warn("it is not an image manifest");
        return Ok(None);
    };
    let names_subject = manifest
        .subject()
        .as_ref()
        .is_some_and(|s| s.digest().to_string() == subject.to_string());
    if !names_subject {
        warn("its subject is another manifest");
        return Ok(None);
    }
    if !is_media_type(&artifact_type_of(&manifest)) {
        warn("its artifact type is not a media type");
        return Ok(None);
    }
    let mut blobs = vec![manifest.config().clone()];
    blobs.extend(manifest.layers().iter().cloned());
    if blobs.len() > MAX_SIGNATURES || blobs.iter().any(|b| b.size() > MAX_REFERRER_BLOB) {
        warn("it has too many or too large blobs");
        return Ok(None);
    }
    // At most MAX_SIGNATURES sizes of at most MAX_REFERRER_BLOB each: no overflow.
    let declared: u64 = blobs.iter().map(Descriptor::size).sum();
    if declared > *budget {
        warn(&format!(
            "its blobs would take the pull past {MAX_REFERRER_BYTES} bytes of referrers"
        ));
        return Ok(None);
    }
    *budget -= declared;
    // A blob the registry cannot serve, or serves with another digest or size, costs this
    // referrer (its verified blobs stay for `gc`), not the ones listed after it.
    for blob in &blobs {
        if let Err(error) = puller.blob(blob) {
            warn(&error.to_string());
            return Ok(None);
        }
    }
    puller.layout.put_bytes(&document.bytes)?;
    Ok(Some(puller.layout.add_referrer(&document.bytes)?))
}

/// The signatures under `sha256-<hex>.sig`, each as the artifact manifest an attachment
/// of it would be (its layer's blob stored). Nothing when the tag is absent or unusable.
fn signatures_from_tag(
    client: &Client<'_>,
    scopes: &str,
    layout: &Layout,
    subject: &Descriptor,
    budget: &mut u64,
) -> Result<Vec<Vec<u8>>, RegistryError> {
    let subject_digest = crate::store::image::descriptor_digest(layout, subject)?;
    let tag = format!("{}.sig", fallback_tag(&subject_digest));
    let Some(document) = get_tag(client, scopes, &tag)? else {
        return Ok(Vec::new());
    };
    let manifest = match ImageManifest::from_reader(&document.bytes[..]) {
        Ok(manifest) if manifest.layers().len() <= MAX_SIGNATURES => manifest,
        _ => {
            client.progress.on_warning(&format!(
                "{}/{}: tag {tag} is not a signature manifest; it is ignored",
                client.registry, client.repository
            ));
            return Ok(Vec::new());
        }
    };
    let puller = Puller {
        client,
        layout,
        scopes,
    };
    let mut manifests = Vec::new();
    for layer in manifest.layers() {
        let layer_type = layer.media_type().to_string();
        if layer_type != SIMPLE_SIGNING || layer.size() > MAX_REFERRER_BLOB {
            continue;
        }
        if layer.size() > *budget {
            client.progress.on_warning(&format!(
                "{}/{}: tag {tag}: the signatures would take the pull past {MAX_REFERRER_BYTES} bytes of referrers; the rest is not pulled",
                client.registry, client.repository
            ));
            break;
        }
        *budget -= layer.size();
        let Ok(digest) = Digest::try_from(layer.digest()) else {
            continue;
        };
        // A signature the registry cannot serve as described costs that signature alone.
        if let Err(error) = puller.blob(layer) {
            client.progress.on_warning(&format!(
                "{}/{}: tag {tag}: signature {digest} is left out: {error}",
                client.registry, client.repository
            ));
            continue;
        }
        layout.put_bytes(b"{}")?;
        let annotations: BTreeMap<String, String> = layer
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let artifact_layer = ArtifactLayer {
            media_type: &layer_type,
            digest: &digest,
            size: layer.size(),
            annotations: &annotations,
        };
        manifests.push(artifact_manifest(
            subject,
            COSIGN_SIGNATURE_ARTIFACT,
            &artifact_layer,
            &BTreeMap::new(),
        ));
    }
    Ok(manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_oci_index_counts_as_a_fallback_listing() {
        let index = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [
            {"mediaType": media::OCI_MANIFEST, "digest": Digest::of_bytes(b"a").to_string(), "size": 1}
        ]});
        let entries = index_entries(index.to_string().as_bytes()).unwrap();
        assert_eq!(entries.len(), 1);
        let manifest = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": Digest::of_bytes(b"c").to_string(), "size": 1},
            "layers": []});
        assert!(index_entries(manifest.to_string().as_bytes()).is_none());
        assert!(index_entries(b"not json").is_none());
        let mut bare_index = index.clone();
        bare_index.as_object_mut().unwrap().remove("mediaType");
        assert!(index_entries(bare_index.to_string().as_bytes()).is_some());
        let mut bare_manifest = manifest.clone();
        bare_manifest.as_object_mut().unwrap().remove("mediaType");
        assert!(index_entries(bare_manifest.to_string().as_bytes()).is_none());
        assert!(signature_layers(manifest.to_string().as_bytes()).is_some());
        assert!(signature_layers(index.to_string().as_bytes()).is_none());
    }

    #[test]
    fn the_fallback_tag_is_the_subject_digest_with_a_dash() {
        let digest = Digest::of_bytes(b"x");
        assert_eq!(fallback_tag(&digest), format!("sha256-{}", digest.hex()));
    }
}
