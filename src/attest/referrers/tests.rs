use super::*;
use crate::attest::EMPTY_CONFIG;
use crate::attest::{
    COSIGN_SIGNATURE_ANNOTATION, COSIGN_SIGNATURE_ARTIFACT, SIMPLE_SIGNING, SPDX_JSON,
};
use crate::image::media;
use crate::store::image::{manifest_descriptor, REF_NAME};
use serde_json::{json, Value};

/// A stored image (config + one layer) named `name`; its manifest descriptor.
fn image(layout: &Layout, name: &str, seed: &[u8]) -> Descriptor {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"author":{:?}}}"#,
        String::from_utf8_lossy(seed)
    );
    let config_digest = layout.put_bytes(config.as_bytes()).unwrap();
    let layer = layout.put_bytes(seed).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": media::OCI_LAYER_GZIP, "digest": layer.to_string(), "size": seed.len()}],
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    layout.put_bytes(&bytes).unwrap();
    let descriptor = manifest_descriptor(&bytes, None);
    layout.tag(name, &descriptor).unwrap();
    descriptor
}

fn sbom(text: &str) -> Attachment {
    Attachment {
        artifact_type: SPDX_JSON.into(),
        media_type: SPDX_JSON.into(),
        bytes: text.as_bytes().to_vec(),
        annotations: BTreeMap::from([("org.opencontainers.image.created".into(), "2026".into())]),
        layer_annotations: BTreeMap::new(),
    }
}

fn digest_of(descriptor: &Descriptor) -> Digest {
    Digest::try_from(descriptor.digest()).unwrap()
}

fn gc(layout: &Layout) {
    let held = layout.exclusive_lease(&|| {}).unwrap();
    layout.gc(&held).unwrap();
}

#[test]
fn an_attachment_is_an_artifact_manifest_stored_once_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(dir.path()).unwrap();
    let subject = image(&layout, "app", b"app");
    let first = attach(&layout, &subject, &sbom("{}")).unwrap();
    let again = attach(&layout, &subject, &sbom("{}")).unwrap();
    assert_eq!(first, again);
    assert_eq!(
        first.artifact_type().as_ref().unwrap().to_string(),
        SPDX_JSON
    );
    let index = layout.read_index().unwrap();
    assert_eq!(
        index.manifests().len(),
        2,
        "the image and one referrer entry"
    );

    let manifest: Value =
        serde_json::from_slice(&layout.read_blob(&digest_of(&first), None, 1 << 20).unwrap())
            .unwrap();
    assert_eq!(manifest["artifactType"], SPDX_JSON);
    assert_eq!(manifest["config"]["digest"], EMPTY_CONFIG_DIGEST);
    assert_eq!(manifest["config"]["mediaType"], EMPTY_CONFIG);
    assert_eq!(manifest["subject"]["digest"], subject.digest().to_string());
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert!(layout.has_blob(&EMPTY_CONFIG_DIGEST.parse().unwrap()));

    let found = list(&layout, &digest_of(&subject)).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].artifact_type, SPDX_JSON);
    assert_eq!(found[0].descriptor.digest(), first.digest());
    assert_eq!(
        found[0].annotations["org.opencontainers.image.created"],
        "2026"
    );
    assert_eq!(content(&layout, &found[0]).unwrap(), b"{}");
}

#[test]
fn referrer_entries_are_not_images() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(dir.path()).unwrap();
    let subject = image(&layout, "app", b"app");
    // A name in the attachment's annotations stays on the manifest, never on the entry.
    let mut hostile = sbom("x");
    hostile.annotations.insert(REF_NAME.into(), "app".into());
    attach(&layout, &subject, &hostile).unwrap();
    attach(&layout, &subject, &sbom("y")).unwrap();
    // Megabytes of annotations stay in the manifest: index.json stays small.
    let mut bulky = sbom("z");
    bulky
        .annotations
        .insert("org.example.bulk".into(), "x".repeat(1 << 20));
    let bulky_entry = attach(&layout, &subject, &bulky).unwrap();
    assert!(bulky_entry.annotations().is_none());
    assert!(
        std::fs::metadata(dir.path().join("index.json"))
            .unwrap()
            .len()
            < 4096
    );
    assert_eq!(layout.names().unwrap(), vec!["app".to_string()]);
    // The one image is still "the only image" of the layout.
    let only = layout.resolve(None).unwrap();
    assert_eq!(only.manifest_digest, digest_of(&subject));
    let found = list(&layout, &digest_of(&subject)).unwrap();
    assert_eq!(found.len(), 3);
    assert!(found
        .iter()
        .any(|r| r.annotations.contains_key("org.example.bulk")));
}

#[test]
fn gc_keeps_the_referrers_of_a_named_image_and_drops_those_of_a_removed_one() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(dir.path()).unwrap();
    let kept = image(&layout, "kept", b"kept");
    let gone = image(&layout, "gone", b"gone");
    let kept_sbom = attach(&layout, &kept, &sbom("kept sbom")).unwrap();
    // A signature of the SBOM: a referrer of a referrer lives as long as its subject.
    let signature = Attachment {
        artifact_type: COSIGN_SIGNATURE_ARTIFACT.into(),
        media_type: SIMPLE_SIGNING.into(),
        bytes: b"payload".to_vec(),
        annotations: BTreeMap::new(),
        layer_annotations: BTreeMap::from([(COSIGN_SIGNATURE_ANNOTATION.into(), "c2ln".into())]),
    };
    let signed_sbom = attach(&layout, &kept_sbom, &signature).unwrap();
    let gone_sbom = attach(&layout, &gone, &sbom("gone sbom")).unwrap();
    layout.untag("gone").unwrap();
    gc(&layout);

    let kept_list = list(&layout, &digest_of(&kept)).unwrap();
    assert_eq!(kept_list.len(), 1);
    assert_eq!(content(&layout, &kept_list[0]).unwrap(), b"kept sbom");
    let sbom_referrers = list(&layout, &digest_of(&kept_sbom)).unwrap();
    assert_eq!(sbom_referrers.len(), 1);
    assert_eq!(sbom_referrers[0].descriptor.digest(), signed_sbom.digest());
    assert_eq!(
        content(&layout, &sbom_referrers[0]).unwrap(),
        b"payload".to_vec()
    );

    assert!(!layout.has_blob(&digest_of(&gone_sbom)));
    assert!(!layout.has_blob(&Digest::of_bytes(b"gone sbom")));
    assert!(layout.has_blob(&EMPTY_CONFIG_DIGEST.parse().unwrap()));
    let entries = layout.read_index().unwrap().manifests().len();
    assert_eq!(entries, 3, "kept, its SBOM and the SBOM's signature");
}

#[test]
fn attachments_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(dir.path()).unwrap();
    let subject = image(&layout, "app", b"app");
    let mut bad = sbom("x");
    bad.artifact_type = "not a type".into();
    assert!(matches!(
        attach(&layout, &subject, &bad),
        Err(ReferrerError::BadMediaType { .. })
    ));
    let blob = Descriptor::new(
        oci_spec::image::MediaType::ImageLayerGzip,
        1,
        subject.digest().clone(),
    );
    assert!(matches!(
        attach(&layout, &blob, &sbom("x")),
        Err(ReferrerError::BadSubject { .. })
    ));
}
