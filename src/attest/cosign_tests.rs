//! The simple signing payload, the signature layer and the `.sig` image; and
//! [`sign_in_registry`] against a registry that keeps documents in memory, for what a
//! hostile or crowded `.sig` tag does.

use super::*;
use crate::attest::keys;

fn digest() -> Digest {
    Digest::of_bytes(b"manifest")
}

#[test]
fn the_payload_is_byte_for_byte_what_cosign_writes() {
    let digest = digest();
    assert_eq!(
        String::from_utf8(payload("127.0.0.1:5000/apps/hello", &digest)).unwrap(),
        format!(
            "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"127.0.0.1:5000/apps/hello\"}},\
             \"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\
             \"type\":\"cosign container image signature\"}},\"optional\":null}}"
        )
    );
}

#[test]
fn an_attachment_verifies_with_the_public_key_and_names_the_digest() {
    let pair = keys::generate();
    let key = SigningKey::from_pem(&pair.private_pem).unwrap();
    let public = keys::VerifyingKey::from_pem(&pair.public_pem).unwrap();
    let attachment = signature_attachment("r.example/app", &digest(), &key);
    assert_eq!(attachment.artifact_type, COSIGN_SIGNATURE_ARTIFACT);
    assert_eq!(attachment.media_type, SIMPLE_SIGNING);
    let signature = &attachment.layer_annotations[COSIGN_SIGNATURE_ANNOTATION];
    let identity = verify(&attachment.bytes, signature, &public, &digest()).unwrap();
    assert_eq!(identity.docker_reference, "r.example/app");
    // Deterministic: signing again gives the same layer.
    assert_eq!(
        attachment,
        signature_attachment("r.example/app", &digest(), &key)
    );

    let other = Digest::of_bytes(b"other");
    assert!(matches!(
        verify(&attachment.bytes, signature, &public, &other),
        Err(CosignError::WrongDigest { .. })
    ));
    let mut changed = attachment.bytes.clone();
    changed[10] ^= 1;
    assert!(matches!(
        verify(&changed, signature, &public, &digest()),
        Err(CosignError::Key(KeyError::BadSignature))
    ));
    let stranger = keys::VerifyingKey::from_pem(&keys::generate().public_pem).unwrap();
    assert!(verify(&attachment.bytes, signature, &stranger, &digest()).is_err());
}

#[test]
fn a_signed_payload_with_a_key_twice_or_an_unknown_key_is_refused() {
    let key = signing_key();
    let public = key.verifying_key();
    let expected = digest();
    let critical = |digest: &str| {
        format!(
            "{{\"identity\":{{\"docker-reference\":\"r.test/app\"}},\
             \"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\
             \"type\":\"cosign container image signature\"}}"
        )
    };
    let other = Digest::of_bytes(b"other").to_string();
    let hostile = [
        // Two `critical` objects: a last-wins reader sees the expected digest, a
        // first-wins reader (or containers/image, which refuses) another.
        format!(
            "{{\"critical\":{},\"critical\":{},\"optional\":null}}",
            critical(&other),
            critical(&expected.to_string())
        ),
        // The digest twice inside `image`.
        format!(
            "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"r.test/app\"}},\
             \"image\":{{\"docker-manifest-digest\":\"{other}\",\
             \"docker-manifest-digest\":\"{expected}\"}},\
             \"type\":\"cosign container image signature\"}},\"optional\":null}}"
        ),
        // A field containers/image does not know, in `critical` and at the top.
        format!(
            "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"r.test/app\"}},\
             \"image\":{{\"docker-manifest-digest\":\"{expected}\"}},\"extra\":1,\
             \"type\":\"cosign container image signature\"}},\"optional\":null}}"
        ),
        format!(
            "{{\"critical\":{},\"optional\":null,\"more\":{{}}}}",
            critical(&expected.to_string())
        ),
    ];
    for payload in hostile {
        let signature = STANDARD.encode(key.sign(payload.as_bytes()));
        let error = verify(payload.as_bytes(), &signature, &public, &expected).unwrap_err();
        assert!(
            matches!(error, CosignError::BadPayload(_)),
            "{payload}: {error}"
        );
    }

    // Whitespace and a filled-in `optional` change nothing of what is signed.
    let spaced = format!(
        "{{ \"critical\" : {} ,\n \"optional\": {{\"creator\":\"x\"}} }}",
        critical(&expected.to_string())
    );
    let signature = STANDARD.encode(key.sign(spaced.as_bytes()));
    let identity = verify(spaced.as_bytes(), &signature, &public, &expected).unwrap();
    assert_eq!(identity.docker_reference, "r.test/app");
}

#[test]
fn the_sig_image_appends_once_and_keeps_earlier_layers() {
    let key = SigningKey::from_pem(&keys::generate().private_pem).unwrap();
    let other = SigningKey::from_pem(&keys::generate().private_pem).unwrap();
    let ours = signature_attachment("r/app", &digest(), &key);
    let theirs = signature_attachment("r/app", &digest(), &other);

    let first = signature_image(&[], &theirs).unwrap();
    let first = ImageManifest::from_reader(&first.manifest[..]).unwrap();
    assert_eq!(first.media_type(), &Some(MediaType::ImageManifest));
    assert_eq!(first.config().media_type(), &MediaType::ImageConfig);

    let second = signature_image(first.layers(), &ours).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&second.config).unwrap();
    let second = ImageManifest::from_reader(&second.manifest[..]).unwrap();
    assert_eq!(second.layers().len(), 2);
    assert_eq!(second.layers()[0], first.layers()[0]);
    assert_eq!(
        second.layers()[1].annotations().as_ref().unwrap()[COSIGN_SIGNATURE_ANNOTATION],
        ours.layer_annotations[COSIGN_SIGNATURE_ANNOTATION]
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert!(signature_image(second.layers(), &ours).is_none());
    assert_eq!(
        attachment_tag(&digest()),
        format!("sha256-{}.sig", digest().hex())
    );
}

/// A registry of one repository whose manifests and blobs live in memory; it counts
/// pulls and keeps what was pushed.
#[derive(Default)]
struct MemoryRegistry {
    /// Tag → manifest bytes.
    manifests: std::sync::Mutex<HashMap<String, Vec<u8>>>,
    blobs: std::sync::Mutex<HashMap<Digest, Vec<u8>>>,
    pulls: std::sync::atomic::AtomicUsize,
    /// Every manifest ever put, by digest: a pull by digest reads from here.
    by_digest: std::sync::Mutex<HashMap<Digest, Vec<u8>>>,
    /// Tag → the manifest the tag moves to right after its next `manifest` read.
    moves: std::sync::Mutex<HashMap<String, Vec<u8>>>,
}

fn tag_of(reference: &ImageReference) -> String {
    match reference {
        ImageReference::Registry { tag, .. } => tag.clone().unwrap(),
        other => panic!("not a registry reference: {other}"),
    }
}

impl MemoryRegistry {
    fn with_image() -> (MemoryRegistry, Digest) {
        let registry = MemoryRegistry::default();
        let manifest = br#"{"schemaVersion":2}"#.to_vec();
        let digest = Digest::of_bytes(&manifest);
        registry.put("1", manifest);
        (registry, digest)
    }

    fn put(&self, tag: &str, manifest: Vec<u8>) {
        self.by_digest
            .lock()
            .unwrap()
            .insert(Digest::of_bytes(&manifest), manifest.clone());
        self.manifests.lock().unwrap().insert(tag.into(), manifest);
    }

    fn put_blob(&self, bytes: &[u8]) -> Digest {
        let digest = Digest::of_bytes(bytes);
        self.blobs
            .lock()
            .unwrap()
            .insert(digest.clone(), bytes.to_vec());
        digest
    }

    fn manifest_json(&self, tag: &str) -> ImageManifest {
        ImageManifest::from_reader(&self.manifests.lock().unwrap()[tag][..]).unwrap()
    }
}

impl RegistryTransport for MemoryRegistry {
    fn pull(
        &self,
        reference: &ImageReference,
        layout: &Layout,
        _reporter: &dyn Reporter,
    ) -> Result<Descriptor, crate::transport::TransportError> {
        self.pulls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let bytes = match reference {
            ImageReference::Registry {
                digest: Some(digest),
                ..
            } => self.by_digest.lock().unwrap()[&digest.parse::<Digest>().unwrap()].clone(),
            _ => self.manifests.lock().unwrap()[&tag_of(reference)].clone(),
        };
        let manifest = ImageManifest::from_reader(&bytes[..]).unwrap();
        let blobs = self.blobs.lock().unwrap();
        for descriptor in std::iter::once(manifest.config()).chain(manifest.layers()) {
            let digest = Digest::try_from(descriptor.digest()).unwrap();
            layout.put_bytes(&blobs[&digest])?;
        }
        let digest = layout.put_bytes(&bytes)?;
        Ok(DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .size(bytes.len() as u64)
            .digest(oci_digest(&digest))
            .build()
            .unwrap())
    }

    fn push(
        &self,
        layout: &Layout,
        image: &ResolvedImage,
        reference: &ImageReference,
        _reporter: &dyn Reporter,
    ) -> Result<Digest, crate::transport::TransportError> {
        for blob in image.blobs() {
            let digest = Digest::try_from(blob.digest()).unwrap();
            let bytes = layout.read_blob(&digest, Some(blob.size()), 1 << 20)?;
            self.blobs.lock().unwrap().insert(digest, bytes);
        }
        self.put(&tag_of(reference), image.manifest_bytes.clone());
        Ok(image.manifest_digest.clone())
    }

    // Signing reads and writes the `.sig` tag alone; this registry lists no referrers.
    fn pull_referrers(
        &self,
        _reference: &ImageReference,
        _layout: &Layout,
        _subject: &Descriptor,
        _reporter: &dyn Reporter,
    ) -> Result<usize, crate::transport::TransportError> {
        Ok(0)
    }

    fn push_referrers(
        &self,
        _layout: &Layout,
        _image: &ResolvedImage,
        _reference: &ImageReference,
        _reporter: &dyn Reporter,
    ) -> Result<usize, crate::transport::TransportError> {
        Ok(0)
    }

    fn manifest(
        &self,
        reference: &ImageReference,
    ) -> Result<(Vec<u8>, Digest), crate::transport::TransportError> {
        let tag = tag_of(reference);
        let found = self.manifests.lock().unwrap().get(&tag).cloned();
        if let Some(moved) = self.moves.lock().unwrap().remove(&tag) {
            self.put(&tag, moved);
        }
        match found {
            Some(bytes) => {
                let digest = Digest::of_bytes(&bytes);
                Ok((bytes, digest))
            }
            None => Err(crate::transport::TransportError::Registry {
                reference: reference.to_string(),
                source: Box::new(crate::registry::RegistryError::Status {
                    registry: "r.test".into(),
                    repository: "app".into(),
                    action: "GET manifest".into(),
                    status: 404,
                    errors: crate::registry::ErrorEnvelope::default(),
                }),
            }),
        }
    }
}

fn image_reference() -> ImageReference {
    "docker://r.test/app:1".parse().unwrap()
}

/// Signs [`image_reference`] in `registry` with a key made for the call.
fn sign_with_a_new_key(registry: &MemoryRegistry) -> Result<RegistrySignature, CosignError> {
    sign_in_registry(
        &image_reference(),
        &signing_key(),
        registry,
        &crate::report::Silent,
    )
}

fn signing_key() -> SigningKey {
    SigningKey::from_pem(&keys::generate().private_pem).unwrap()
}

/// A `.sig` manifest of `layers` as raw JSON, its config stored in `registry`.
fn sig_manifest(
    registry: &MemoryRegistry,
    media_type: &str,
    layers: &serde_json::Value,
) -> Vec<u8> {
    let config = registry.put_blob(b"{}");
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
        "layers": layers,
    }))
    .unwrap()
}

#[test]
fn a_first_signature_makes_the_sig_tag_and_a_second_key_appends() {
    let (registry, signed) = MemoryRegistry::with_image();
    let tag = attachment_tag(&signed);
    let key = signing_key();
    let first =
        sign_in_registry(&image_reference(), &key, &registry, &crate::report::Silent).unwrap();
    assert!(first.added);
    assert_eq!(first.signed, signed);
    assert_eq!(first.identity, "r.test/app");
    assert_eq!(registry.pulls.load(std::sync::atomic::Ordering::SeqCst), 0);
    let manifest = registry.manifest_json(&tag);
    assert_eq!(manifest.layers().len(), 1);

    // The same key again: nothing is pulled or written.
    let again =
        sign_in_registry(&image_reference(), &key, &registry, &crate::report::Silent).unwrap();
    assert!(!again.added);
    assert_eq!(again.signature_manifest, first.signature_manifest);
    assert_eq!(registry.pulls.load(std::sync::atomic::Ordering::SeqCst), 0);

    let other = signing_key();
    let second = sign_in_registry(
        &image_reference(),
        &other,
        &registry,
        &crate::report::Silent,
    )
    .unwrap();
    assert!(second.added);
    assert_eq!(registry.pulls.load(std::sync::atomic::Ordering::SeqCst), 1);
    let both = registry.manifest_json(&tag);
    assert_eq!(both.layers().len(), 2);
    assert_eq!(both.layers()[0], manifest.layers()[0]);
    let public = other.verifying_key();
    let layer = &both.layers()[1];
    let payload = &registry.blobs.lock().unwrap()[&Digest::try_from(layer.digest()).unwrap()];
    let annotation = &layer.annotations().as_ref().unwrap()[COSIGN_SIGNATURE_ANNOTATION];
    verify(payload, annotation, &public, &signed).unwrap();
}

#[test]
fn a_sig_tag_that_is_not_a_small_oci_manifest_is_refused_before_any_blob_is_fetched() {
    let layer = |size: u64| {
        serde_json::json!({
            "mediaType": SIMPLE_SIGNING,
            "digest": Digest::of_bytes(&size.to_le_bytes()).to_string(),
            "size": size,
        })
    };
    let cases = [
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            serde_json::json!([layer(10)]),
            "media type",
        ),
        (
            "application/vnd.oci.image.manifest.v1+json",
            serde_json::json!([layer(SIGNATURE_LAYER_LIMIT + 1)]),
            "larger than",
        ),
        (
            "application/vnd.oci.image.manifest.v1+json",
            serde_json::Value::Array((0..MAX_SIGNATURES as u64).map(layer).collect()),
            "signatures already",
        ),
        (
            // Each layer within the per-layer limit, together over the total one.
            "application/vnd.oci.image.manifest.v1+json",
            serde_json::Value::Array(vec![layer(SIGNATURE_IMAGE_LIMIT / 4); 5]),
            "together",
        ),
    ];
    for (media_type, layers, reason) in cases {
        let (registry, signed) = MemoryRegistry::with_image();
        let manifest = sig_manifest(&registry, media_type, &layers);
        registry.put(&attachment_tag(&signed), manifest);
        let error = sign_with_a_new_key(&registry).unwrap_err();
        assert!(
            matches!(&error, CosignError::BadSignatureManifest { reason: r, .. } if r.contains(reason)),
            "{reason}: {error}"
        );
        assert_eq!(registry.pulls.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}

#[test]
fn only_registry_references_are_signed_here() {
    let (registry, _) = MemoryRegistry::with_image();
    let error = sign_in_registry(
        &"myapp:1".parse().unwrap(),
        &signing_key(),
        &registry,
        &crate::report::Silent,
    )
    .unwrap_err();
    assert!(matches!(error, CosignError::NotARegistry { .. }));
}

#[test]
fn a_deeply_nested_sig_manifest_is_an_error_not_a_stack_overflow() {
    let (registry, signed) = MemoryRegistry::with_image();
    let depth = 100_000;
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\
         \"deep\":{}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    registry.put(&attachment_tag(&signed), manifest.into_bytes());
    let error = sign_with_a_new_key(&registry).unwrap_err();
    assert!(
        matches!(error, CosignError::BadSignatureManifest { .. }),
        "{error}"
    );
}

#[test]
fn an_index_under_the_sig_tag_is_refused_by_its_media_type() {
    let (registry, signed) = MemoryRegistry::with_image();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
    });
    registry.put(
        &attachment_tag(&signed),
        serde_json::to_vec(&index).unwrap(),
    );
    let error = sign_with_a_new_key(&registry).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("application/vnd.oci.image.index.v1+json"),
        "{message}"
    );
    assert_eq!(registry.pulls.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn a_sig_tag_that_moves_after_its_check_is_pulled_as_checked() {
    let (registry, signed) = MemoryRegistry::with_image();
    let tag = attachment_tag(&signed);
    let theirs = signing_key();
    sign_in_registry(
        &image_reference(),
        &theirs,
        &registry,
        &crate::report::Silent,
    )
    .unwrap();
    let checked = registry.manifest_json(&tag);
    // Right after the check, the tag names a manifest with a 1 GiB layer the registry
    // would stream: it must never be fetched.
    let huge = serde_json::json!([{
        "mediaType": SIMPLE_SIGNING,
        "digest": Digest::of_bytes(b"huge").to_string(),
        "size": 1u64 << 30,
    }]);
    let moved = sig_manifest(
        &registry,
        "application/vnd.oci.image.manifest.v1+json",
        &huge,
    );
    registry.moves.lock().unwrap().insert(tag.clone(), moved);

    let ours = sign_with_a_new_key(&registry).unwrap();
    assert!(ours.added);
    let written = registry.manifest_json(&tag);
    assert_eq!(written.layers().len(), 2);
    assert_eq!(written.layers()[0], checked.layers()[0]);
}

#[test]
fn a_copy_of_our_layer_with_a_wrong_size_is_not_taken_for_our_signature() {
    let (registry, signed) = MemoryRegistry::with_image();
    let tag = attachment_tag(&signed);
    let key = signing_key();
    sign_in_registry(&image_reference(), &key, &registry, &crate::report::Silent).unwrap();
    // Our layer as it is, but one byte longer than the blob: a verifier that reads it
    // fails, so "already signed" would be a false answer.
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&registry.manifests.lock().unwrap()[&tag]).unwrap();
    let size = manifest["layers"][0]["size"].as_u64().unwrap();
    manifest["layers"][0]["size"] = (size + 1).into();
    registry.put(&tag, serde_json::to_vec(&manifest).unwrap());

    let again = sign_in_registry(&image_reference(), &key, &registry, &crate::report::Silent);
    assert!(
        !matches!(again, Ok(RegistrySignature { added: false, .. })),
        "{again:?}"
    );
}
