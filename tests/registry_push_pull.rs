//! Push and pull against a real `docker-registry` over plain HTTP, checked with skopeo
//! (issue 5: protocol, HEAD-skip, mounts, chunked uploads, indexes, Docker v2s2).

mod support;

use solum_build::image::{media, Digest};
use solum_build::registry::{pull, push, NoProgress, RegistryTarget};
use solum_build::store::Layout;
use std::sync::atomic::Ordering;
use support::registry::*;
use support::Cmd;

fn target(registry: &Registry, repo: &str, tag: &str) -> RegistryTarget {
    RegistryTarget::new(&registry.host(), repo, Some(tag))
}

#[test]
fn push_is_read_back_identically_by_skopeo_and_a_rerun_uploads_nothing() {
    let registry = Registry::start(Mode::Plain);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(&dir.path().join("layout")).unwrap();
    let expected = make_image(&layout, "app:1", 1, &[&[40_000, 3_000], &[200_000]]);
    let image = layout.resolve(Some("app:1")).unwrap();

    let first = Recorder::default();
    let digest = push(
        &layout,
        &image,
        &target(&registry, "org/app", "1"),
        &options(),
        &first,
    )
    .unwrap();
    assert_eq!(digest, expected);
    assert_eq!(first.transferred(), 3, "config and two layers uploaded");
    let blob_bytes: u64 = image
        .blobs()
        .iter()
        .map(oci_spec::image::Descriptor::size)
        .sum();
    assert_eq!(first.bytes.load(Ordering::SeqCst), blob_bytes);
    assert_eq!(first.manifests.lock().unwrap()[0].1, media::OCI_MANIFEST);

    let reference = format!("docker://{}/org/app:1", registry.host());
    assert_eq!(
        skopeo_digest(&["--tls-verify=false"], &reference),
        expected.to_string()
    );
    let copy = dir.path().join("copy");
    Cmd::program("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            &reference,
            &format!("oci:{}:back", copy.display()),
        ])
        .run()
        .ok();
    let back = Layout::open(&copy).unwrap().resolve(Some("back")).unwrap();
    assert_eq!(back.manifest_digest, expected);
    assert_eq!(back.manifest_bytes, image.manifest_bytes);

    let again = Recorder::default();
    let started = std::time::Instant::now();
    push(
        &layout,
        &image,
        &target(&registry, "org/app", "1"),
        &options(),
        &again,
    )
    .unwrap();
    eprintln!("all-blobs-exist push: {:?}", started.elapsed());
    assert_eq!(again.skipped(), 3);
    assert_eq!(again.transferred(), 0);
    assert_eq!(again.bytes.load(Ordering::SeqCst), 0);
    assert!(again.started.lock().unwrap().is_empty());
}

#[test]
fn chunked_uploads_and_cross_repository_mounts_reach_the_same_image() {
    let registry = Registry::start(Mode::Plain);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(dir.path()).unwrap();
    let expected = make_image(&layout, "big", 2, &[&[300_000], &[5_000]]);
    let image = layout.resolve(Some("big")).unwrap();

    let mut chunked = options();
    chunked.chunk_size = Some(64 << 10);
    let recorder = Recorder::default();
    push(
        &layout,
        &image,
        &target(&registry, "chunked", "v"),
        &chunked,
        &recorder,
    )
    .unwrap();
    assert_eq!(recorder.transferred(), 3);
    assert!(registry.has_manifest("chunked", "v", None));

    let mut mount = options();
    mount.mount_from = Some("chunked".into());
    let mounted = Recorder::default();
    let digest = push(
        &layout,
        &image,
        &target(&registry, "other/repo", "v"),
        &mount,
        &mounted,
    )
    .unwrap();
    assert_eq!(digest, expected);
    assert_eq!(mounted.skipped(), 3, "every blob mounted, none uploaded");
    assert_eq!(mounted.bytes.load(Ordering::SeqCst), 0);
    assert_eq!(
        skopeo_digest(
            &["--tls-verify=false"],
            &format!("docker://{}/other/repo:v", registry.host())
        ),
        expected.to_string()
    );

    // Mounting from a repository that lacks the blobs: the registry answers 202 with an
    // upload session, which is used.
    let mut missing = options();
    missing.mount_from = Some("nothing/here".into());
    let fresh_layout = Layout::open_or_create(&dir.path().join("fresh")).unwrap();
    make_image(&fresh_layout, "fresh", 3, &[&[10_000]]);
    let fresh = fresh_layout.resolve(Some("fresh")).unwrap();
    let uploaded = Recorder::default();
    push(
        &fresh_layout,
        &fresh,
        &target(&registry, "third", "v"),
        &missing,
        &uploaded,
    )
    .unwrap();
    assert_eq!(uploaded.transferred(), 2);
    assert!(registry.has_manifest("third", "v", None));
}

#[test]
fn pulls_what_skopeo_pushed_including_docker_v2s2_and_indexes() {
    let registry = Registry::start(Mode::Plain);
    let dir = tempfile::tempdir().unwrap();
    let source_dir = dir.path().join("source");
    let source = Layout::open_or_create(&source_dir).unwrap();
    let amd64 = make_image_for(&source, "amd", 4, &[&[20_000], &[1_000]], "amd64");
    let arm64 = make_image_for(&source, "arm", 5, &[&[7_000]], "arm64");

    // An OCI image pushed by skopeo, pulled by us.
    let pushed = format!("docker://{}/from/skopeo:1", registry.host());
    Cmd::program("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:amd", source_dir.display()),
            &pushed,
        ])
        .run()
        .ok();
    let store = Layout::open_or_create(&dir.path().join("store")).unwrap();
    let recorder = Recorder::default();
    let descriptor = pull(
        &RegistryTarget::new(&registry.host(), "from/skopeo", Some("1")),
        &store,
        &options(),
        &recorder,
    )
    .unwrap();
    assert_eq!(descriptor.digest().to_string(), amd64.to_string());
    assert_eq!(recorder.transferred(), 3);
    store.tag("pulled", &descriptor).unwrap();
    let resolved = store.resolve(Some("pulled")).unwrap();
    assert_eq!(resolved.manifest_digest, amd64);
    for blob in resolved.blobs() {
        let digest = Digest::try_from(blob.digest()).unwrap();
        let mut verified = store.open_blob(&digest, Some(blob.size())).unwrap();
        verified.finish().unwrap();
    }
    // Pulling again fetches nothing.
    let again = Recorder::default();
    pull(
        &RegistryTarget::new(&registry.host(), "from/skopeo", Some("1")),
        &store,
        &options(),
        &again,
    )
    .unwrap();
    assert_eq!((again.transferred(), again.skipped()), (0, 3));

    // Docker v2 schema 2, stored as it is.
    let v2s2 = format!("docker://{}/docker/format:1", registry.host());
    Cmd::program("skopeo")
        .args([
            "copy",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
            &format!("oci:{}:amd", source_dir.display()),
            &v2s2,
        ])
        .run()
        .ok();
    let docker_digest = skopeo_digest(&["--tls-verify=false"], &v2s2);
    let descriptor = pull(
        &RegistryTarget::new(&registry.host(), "docker/format", Some("1")),
        &store,
        &options(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(descriptor.digest().to_string(), docker_digest);
    assert_eq!(descriptor.media_type().to_string(), media::DOCKER_MANIFEST);
    store.tag("docker", &descriptor).unwrap();
    assert_eq!(store.resolve(Some("docker")).unwrap().layers().len(), 2);

    // An index of two platforms: linux/amd64 by default, arm64 when asked.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [
            descriptor_json(&source, &arm64, "arm64"),
            descriptor_json(&source, &amd64, "amd64"),
        ],
    });
    let index_bytes = serde_json::to_vec(&index).unwrap();
    source.put_bytes(&index_bytes).unwrap();
    let mut index_descriptor = solum_build::store::image::manifest_descriptor(&index_bytes, None);
    index_descriptor.set_media_type(oci_spec::image::MediaType::ImageIndex);
    source.tag("multi", &index_descriptor).unwrap();
    Cmd::program("skopeo")
        .args([
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:multi", source_dir.display()),
            &format!("docker://{}/multi/arch:1", registry.host()),
        ])
        .run()
        .ok();
    let multi = RegistryTarget::new(&registry.host(), "multi/arch", Some("1"));
    let chosen = pull(&multi, &store, &options(), &NoProgress).unwrap();
    assert_eq!(chosen.digest().to_string(), amd64.to_string());
    let mut arm_options = options();
    arm_options.platform = Some("linux/arm64".into());
    let chosen = pull(&multi, &store, &arm_options, &NoProgress).unwrap();
    assert_eq!(chosen.digest().to_string(), arm64.to_string());
    let mut missing = options();
    missing.platform = Some("linux/riscv64".into());
    let error = pull(&multi, &store, &missing, &NoProgress).unwrap_err();
    assert!(error.to_string().contains("linux/riscv64"), "{error}");

    // A pinned digest that the registry's content does not match is refused.
    let mut pinned = RegistryTarget::new(&registry.host(), "from/skopeo", None);
    pinned.digest = Some(amd64.clone());
    assert!(pull(&pinned, &store, &options(), &NoProgress).is_ok());
    let error = pull(
        &RegistryTarget::new(&registry.host(), "no/such", Some("1")),
        &store,
        &options(),
        &NoProgress,
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("no/such") && text.contains("404"), "{text}");
}

fn descriptor_json(layout: &Layout, digest: &Digest, arch: &str) -> serde_json::Value {
    let size = std::fs::metadata(layout.blob_path(digest)).unwrap().len();
    serde_json::json!({
        "mediaType": media::OCI_MANIFEST,
        "digest": digest.to_string(),
        "size": size,
        "platform": {"os": "linux", "architecture": arch},
    })
}

#[test]
fn a_loopback_registry_without_tls_is_reached_without_being_told() {
    let registry = Registry::start(Mode::Plain);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(dir.path()).unwrap();
    let expected = make_image(&layout, "x", 6, &[&[1_000]]);
    let image = layout.resolve(Some("x")).unwrap();
    let mut options = options();
    options.plain_http = false;
    let digest = push(
        &layout,
        &image,
        &target(&registry, "auto", "1"),
        &options,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(digest, expected);
}

#[test]
fn the_transport_layer_pushes_and_pulls_docker_references_through_the_client() {
    use solum_build::registry::RegistryClient;
    use solum_build::transport::RegistryTransport;
    let registry = Registry::start(Mode::Plain);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(&dir.path().join("layout")).unwrap();
    let expected = make_image(&layout, "x", 7, &[&[2_000]]);
    let image = layout.resolve(Some("x")).unwrap();
    let client = RegistryClient { options: options() };
    let reference: solum_build::image::ImageReference =
        format!("docker://{}/bridge/app:1", registry.host())
            .parse()
            .unwrap();
    let reporter = solum_build::report::Silent;
    assert_eq!(
        client.push(&layout, &image, &reference, &reporter).unwrap(),
        expected
    );
    let store = Layout::open_or_create(&dir.path().join("store")).unwrap();
    let descriptor = client.pull(&reference, &store, &reporter).unwrap();
    assert_eq!(descriptor.digest().to_string(), expected.to_string());
    let missing: solum_build::image::ImageReference =
        format!("docker://{}/bridge/none:1", registry.host())
            .parse()
            .unwrap();
    let error = client.pull(&missing, &store, &reporter).unwrap_err();
    let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(
        chain.contains("bridge/none") && chain.contains("404"),
        "{chain}"
    );
}

#[test]
fn run_again_as_tester() {
    support::rerun_as_tester();
}
