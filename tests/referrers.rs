//! OCI 1.1 referrers through the real binary: `attach`, then `push`/`pull` through Debian's
//! `docker-registry` 2.8 (no referrers API: the `sha256-<hex>` fallback tag and cosign's
//! `.sig` tag are what it holds), `oci:` and `oci-archive:` (read by skopeo, umoci and
//! oci-image-tool with the referrer entries in them), `--no-referrers`, `gc`, and hostile
//! registry answers. Run as root and again as `tester`.

mod support;

use serde_json::{json, Value};
use solum_build::attest::referrers::{attach, list, Attachment};
use solum_build::attest::{
    COSIGN_SIGNATURE_ANNOTATION, COSIGN_SIGNATURE_ARTIFACT, SIMPLE_SIGNING, SPDX_JSON,
};
use solum_build::image::Digest;
use solum_build::store::Layout;
use std::collections::BTreeMap;
use std::path::Path;
use support::registry::{make_image, Mode, Registry};
use support::{temp_dir, Cmd};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A store holding the image `app` with an SBOM attached through the CLI and a
/// cosign-shaped signature attached through the library; the image's digest.
fn store_with_referrers(store: &Path) -> Digest {
    let layout = Layout::open_or_create(store).unwrap();
    let digest = make_image(&layout, "app", 7, &[&[5_000]]);
    let sbom = store.parent().unwrap().join("sbom.spdx.json");
    std::fs::write(&sbom, br#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    Cmd::solum(store)
        .args(["attach", "app", "--artifact-type", SPDX_JSON])
        .arg(&sbom)
        .args(["--annotation", "org.example.kind=sbom"])
        .run()
        .ok();
    let image = layout.resolve(Some("app")).unwrap();
    let signature = Attachment {
        artifact_type: COSIGN_SIGNATURE_ARTIFACT.into(),
        media_type: SIMPLE_SIGNING.into(),
        bytes: br#"{"critical":{}}"#.to_vec(),
        annotations: BTreeMap::new(),
        layer_annotations: BTreeMap::from([(COSIGN_SIGNATURE_ANNOTATION.into(), "c2ln".into())]),
    };
    attach(&layout, &image.descriptor, &signature).unwrap();
    digest
}

/// The referrer manifest digests of `subject` in a layout, sorted.
fn referrer_digests(layout: &Path, subject: &Digest) -> Vec<String> {
    let layout = Layout::open(layout).unwrap();
    let mut digests: Vec<String> = list(&layout, subject)
        .unwrap()
        .iter()
        .map(|r| r.descriptor.digest().to_string())
        .collect();
    digests.sort();
    digests
}

/// What the peers say of a layout with referrer entries: umoci lists only the image and
/// unpacks it, and oci-image-tool accepts every referrer manifest. (oci-image-tool
/// 1.0.0-rc1 has no `imageLayout` check, and its `--ref name=…` matches every unnamed
/// entry, an unnamed image's as much as a referrer's, so it cannot pick the image out of
/// such a layout.)
fn validate(layout: &Path, name: &str, subject: &Digest) {
    let listing = Cmd::program("umoci")
        .args(["ls", "--layout"])
        .arg(layout)
        .run()
        .ok();
    assert_eq!(listing.stdout.trim(), name, "{}", listing.text());
    let bundle = tempfile::tempdir().unwrap();
    let mut unpack = Cmd::program("umoci").arg("unpack");
    if !support::is_root() {
        unpack = unpack.arg("--rootless");
    }
    unpack
        .arg("--image")
        .arg(format!("{}:{name}", layout.display()))
        .arg(bundle.path().join("bundle"))
        .run()
        .ok();
    for digest in referrer_digests(layout, subject) {
        let hex = digest.trim_start_matches("sha256:");
        Cmd::program("oci-image-tool")
            .args(["validate", "--type", "manifest"])
            .arg(layout.join("blobs/sha256").join(hex))
            .run()
            .ok();
    }
}

fn fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

#[test]
fn referrers_round_trip_through_the_registry_fallback_tag() {
    let registry = Registry::start(Mode::Plain);
    let dir = temp_dir();
    let store = dir.path().join("store");
    let subject = store_with_referrers(&store);
    let pushed = referrer_digests(&store, &subject);
    assert_eq!(pushed.len(), 2);
    let remote = format!("docker://{}/apps/app:1", registry.host());
    Cmd::solum(&store)
        .args(["push", "app"])
        .arg(&remote)
        .run()
        .ok();

    // distribution 2.8 has no referrers API: the fallback index lists both, with their
    // artifact types; the signature is under the `.sig` tag too.
    let index = registry
        .document("apps/app", &fallback_tag(&subject), OCI_INDEX)
        .expect("the fallback tag is there");
    let mut listed: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, pushed);
    assert!(index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["artifactType"] == SPDX_JSON && d["annotations"]["org.example.kind"] == "sbom"));
    let sig = registry
        .document(
            "apps/app",
            &format!("{}.sig", fallback_tag(&subject)),
            OCI_MANIFEST,
        )
        .expect("the .sig tag is there");
    assert_eq!(sig["layers"][0]["mediaType"], SIMPLE_SIGNING);
    assert_eq!(
        sig["layers"][0]["annotations"][COSIGN_SIGNATURE_ANNOTATION],
        "c2ln"
    );
    // Pushing again changes nothing there.
    Cmd::solum(&store)
        .args(["push", "app"])
        .arg(&remote)
        .run()
        .ok();
    let again = registry
        .document("apps/app", &fallback_tag(&subject), OCI_INDEX)
        .unwrap();
    assert_eq!(again["manifests"].as_array().unwrap().len(), 2);

    let fresh = dir.path().join("fresh");
    let pulled = Cmd::solum(&fresh).arg("pull").arg(&remote).run().ok();
    assert_eq!(pulled.last_line(), subject.to_string());
    assert_eq!(referrer_digests(&fresh, &subject), pushed);
    let table = Cmd::solum(&fresh)
        .args(["inspect", "--referrers", "apps/app:1"])
        .run()
        .ok();
    assert!(table.stdout.contains(SPDX_JSON), "{}", table.text());
    assert!(
        table.stdout.contains("org.example.kind=sbom"),
        "{}",
        table.text()
    );

    let bare = dir.path().join("bare");
    Cmd::solum(&bare)
        .args(["pull", "--no-referrers"])
        .arg(&remote)
        .run()
        .ok();
    assert!(referrer_digests(&bare, &subject).is_empty());
}

#[test]
fn oci_and_oci_archive_outputs_carry_referrers_and_peers_read_them() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    let subject = store_with_referrers(&store);
    let expected = referrer_digests(&store, &subject);

    let layout = dir.path().join("layout");
    let oci = format!("oci:{}:app", layout.display());
    Cmd::solum(&store)
        .args(["push", "app"])
        .arg(&oci)
        .run()
        .ok();
    assert_eq!(referrer_digests(&layout, &subject), expected);
    // The peers still read a layout (and the store) with referrer entries in it.
    for layout in [&layout, &store] {
        validate(layout, "app", &subject);
    }
    let inspect = Cmd::program("skopeo")
        .args(["inspect"])
        .arg(&oci)
        .run()
        .ok();
    let json: Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(json["Digest"], subject.to_string());

    let archive = dir.path().join("app.tar");
    let archive_ref = format!("oci-archive:{}:app", archive.display());
    Cmd::solum(&store)
        .args(["push", "app"])
        .arg(&archive_ref)
        .run()
        .ok();
    let back = dir.path().join("back");
    Cmd::solum(&back)
        .args(["push"])
        .arg(&archive_ref)
        .arg("again")
        .run()
        .ok();
    assert_eq!(referrer_digests(&back, &subject), expected);
    // The only image of the archive is still found with no name.
    let unnamed = dir.path().join("unnamed");
    Cmd::solum(&unnamed)
        .arg("push")
        .arg(format!("oci-archive:{}", archive.display()))
        .arg("only")
        .run()
        .ok();

    let bare = dir.path().join("bare");
    Cmd::solum(&store)
        .args(["push", "--no-referrers", "app"])
        .arg(format!("oci:{}:app", bare.display()))
        .run()
        .ok();
    assert!(referrer_digests(&bare, &subject).is_empty());
}

#[test]
fn gc_keeps_a_named_images_referrers_and_drops_a_removed_ones() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    let kept = store_with_referrers(&store);
    let layout = Layout::open(&store).unwrap();
    let gone = make_image(&layout, "gone", 8, &[&[3_000]]);
    let note = dir.path().join("note.txt");
    std::fs::write(&note, b"only for the removed image").unwrap();
    Cmd::solum(&store)
        .args(["attach", "gone", "--artifact-type", "text/plain"])
        .arg(&note)
        .run()
        .ok();
    let expected = referrer_digests(&store, &kept);
    Cmd::solum(&store).args(["rmi", "gone"]).run().ok();
    Cmd::solum(&store).arg("gc").run().ok();
    assert_eq!(referrer_digests(&store, &kept), expected);
    assert!(referrer_digests(&store, &gone).is_empty());
    assert!(!layout.has_blob(&Digest::of_bytes(b"only for the removed image")));
    validate(&store, "app", &kept);
}

#[test]
fn hostile_registry_answers_give_a_warning_and_a_clean_store() {
    let registry = Registry::start(Mode::Plain);
    let dir = temp_dir();
    let store = dir.path().join("store");
    let subject = store_with_referrers(&store);
    let layout = Layout::open(&store).unwrap();
    let other = make_image(&layout, "other", 9, &[&[2_000]]);
    let remote = format!("docker://{}/apps/app:1", registry.host());
    let other_remote = format!("docker://{}/apps/app:other", registry.host());
    Cmd::solum(&store)
        .args(["push", "other"])
        .arg(&other_remote)
        .run()
        .ok();
    let note = dir.path().join("note.txt");
    std::fs::write(&note, b"about the other image").unwrap();
    Cmd::solum(&store)
        .args(["attach", "other", "--artifact-type", "text/plain"])
        .arg(&note)
        .run()
        .ok();
    Cmd::solum(&store)
        .args(["push", "other"])
        .arg(&other_remote)
        .run()
        .ok();

    // The fallback tag holds a manifest, not an index: the push replaces it, with a word.
    let image = registry
        .document("apps/app", "other", OCI_MANIFEST)
        .unwrap();
    registry.put_document("apps/app", &fallback_tag(&subject), OCI_MANIFEST, &image);
    let pushed = Cmd::solum(&store)
        .args(["push", "app"])
        .arg(&remote)
        .run()
        .ok();
    assert!(
        pushed.stderr.contains("is not an OCI image index"),
        "{}",
        pushed.text()
    );
    let index = registry
        .document("apps/app", &fallback_tag(&subject), OCI_INDEX)
        .unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);

    // The index lists a referrer of the other image: left out, with a word.
    let other_index = registry
        .document("apps/app", &fallback_tag(&other), OCI_INDEX)
        .unwrap();
    let mut lying = index.clone();
    let stranger = other_index["manifests"][0].clone();
    lying["manifests"]
        .as_array_mut()
        .unwrap()
        .push(stranger.clone());
    registry.put_document("apps/app", &fallback_tag(&subject), OCI_INDEX, &lying);
    let fresh = dir.path().join("fresh");
    let pulled = Cmd::solum(&fresh).arg("pull").arg(&remote).run().ok();
    assert!(
        pulled.stderr.contains("its subject is another manifest"),
        "{}",
        pulled.text()
    );
    let kept = referrer_digests(&fresh, &subject);
    assert_eq!(kept, referrer_digests(&store, &subject));
    let stranger_digest: Digest = stranger["digest"].as_str().unwrap().parse().unwrap();
    assert!(!Layout::open(&fresh).unwrap().has_blob(&stranger_digest));

    // Too many referrers: none is taken.
    let mut crowd = index.clone();
    let one = index["manifests"][0].clone();
    crowd["manifests"] = json!(vec![one; 300]);
    registry.put_document("apps/app", &fallback_tag(&subject), OCI_INDEX, &crowd);
    let crowded = dir.path().join("crowded");
    let pulled = Cmd::solum(&crowded)
        .args(["pull", "--tag", "app"])
        .arg(&remote)
        .run()
        .ok();
    assert!(pulled.stderr.contains("more than 256"), "{}", pulled.text());
    // Only the signature from the `.sig` tag remains: rebuilt as the attachment it was,
    // it has the same digest as in the first store.
    let left = referrer_digests(&crowded, &subject);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(referrer_digests(&store, &subject).contains(&left[0]));

    // A fallback tag that is not an index is not read from, with a word.
    registry.put_document("apps/app", &fallback_tag(&subject), OCI_MANIFEST, &image);
    let confused = dir.path().join("confused");
    let pulled = Cmd::solum(&confused).arg("pull").arg(&remote).run().ok();
    assert!(
        pulled.stderr.contains("no referrer is read from it"),
        "{}",
        pulled.text()
    );
    assert_eq!(referrer_digests(&confused, &subject), left);
}

/// `app` with its referrers pushed to a registry of their own (the fallback tag holds
/// them), for hostile registry answers to be made of.
struct Pushed {
    registry: Registry,
    dir: tempfile::TempDir,
    store: std::path::PathBuf,
    subject: Digest,
    remote: String,
    /// The fallback index as pushed.
    index: Value,
    /// The first referrer manifest it lists.
    template: Value,
}

fn pushed_app() -> Pushed {
    let registry = Registry::start(Mode::Plain);
    let dir = temp_dir();
    let store = dir.path().join("store");
    let subject = store_with_referrers(&store);
    let remote = format!("docker://{}/apps/app:1", registry.host());
    Cmd::solum(&store)
        .arg("push")
        .arg("app")
        .arg(&remote)
        .run()
        .ok();
    let index = registry
        .document("apps/app", &fallback_tag(&subject), OCI_INDEX)
        .unwrap();
    let first = index["manifests"][0]["digest"].as_str().unwrap();
    let template = registry.document("apps/app", first, OCI_MANIFEST).unwrap();
    Pushed {
        registry,
        dir,
        store,
        subject,
        remote,
        index,
        template,
    }
}

impl Pushed {
    /// Puts `bytes` under `reference` from a file (a megabyte does not fit in one
    /// command-line argument).
    fn put_raw(&self, reference: &str, media_type: &str, bytes: &[u8]) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        Cmd::program("curl")
            .args(["-sf", "-X", "PUT", "-H"])
            .arg(format!("Content-Type: {media_type}"))
            .arg("--data-binary")
            .arg(format!("@{}", file.path().display()))
            .arg(format!(
                "http://{}/v2/apps/app/manifests/{reference}",
                self.registry.host()
            ))
            .run()
            .ok();
    }

    /// Puts the template changed by `change` by digest; its fallback-index entry.
    fn put_referrer(&self, change: impl FnOnce(&mut Value)) -> Value {
        let mut manifest = self.template.clone();
        change(&mut manifest);
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let digest = Digest::of_bytes(&bytes).to_string();
        self.put_raw(&digest, OCI_MANIFEST, &bytes);
        json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": bytes.len()})
    }

    /// Puts a fallback index listing `first`, then what the push listed.
    fn list_first(&self, first: &[Value]) {
        let mut index = self.index.clone();
        let pushed = index["manifests"].as_array().unwrap().clone();
        index["manifests"] = json!(first.iter().chain(&pushed).collect::<Vec<_>>());
        let bytes = serde_json::to_vec(&index).unwrap();
        self.put_raw(&fallback_tag(&self.subject), OCI_INDEX, &bytes);
    }

    /// Pulls `app` into a new store, which must then hold the referrers the pushing store
    /// holds; the store and what the pull said.
    fn pull_fresh(&self) -> (std::path::PathBuf, support::Run) {
        let fresh = self.dir.path().join("fresh");
        let pulled = Cmd::solum(&fresh).arg("pull").arg(&self.remote).run().ok();
        assert_eq!(
            referrer_digests(&fresh, &self.subject),
            referrer_digests(&self.store, &self.subject)
        );
        (fresh, pulled)
    }
}

#[test]
fn referrers_whose_artifact_type_is_not_a_media_type_stay_out_of_the_store() {
    let app = pushed_app();
    // Twenty referrers with a megabyte of artifact type each would make `index.json`
    // larger than the store reads; one with a terminal escape would reach `inspect`.
    let mut hostile: Vec<Value> = (0..20)
        .map(|i| {
            let long = format!("application/{}{i}", "x".repeat(1 << 20));
            app.put_referrer(|m| m["artifactType"] = json!(long))
        })
        .collect();
    hostile.push(app.put_referrer(|m| m["artifactType"] = json!("text/plain\u{1b}[2J")));
    app.list_first(&hostile);

    let (fresh, pulled) = app.pull_fresh();
    assert!(
        pulled
            .stderr
            .contains("its artifact type is not a media type"),
        "{}",
        pulled.text()
    );
    let index_size = std::fs::metadata(fresh.join("index.json")).unwrap().len();
    assert!(index_size < 64 << 10, "index.json has {index_size} bytes");
    Cmd::solum(&fresh).arg("images").run().ok();

    // Nor can one be added to a store directly: refused, `index.json` as it was.
    let layout = Layout::open(&fresh).unwrap();
    let before = std::fs::read(fresh.join("index.json")).unwrap();
    let mut manifest = app.template.clone();
    manifest["artifactType"] = json!("text/plain\u{7}");
    let bytes = serde_json::to_vec(&manifest).unwrap();
    layout.put_bytes(&bytes).unwrap();
    assert!(layout.add_referrer(&bytes).is_err());
    assert_eq!(std::fs::read(fresh.join("index.json")).unwrap(), before);
}

#[test]
fn a_referrer_whose_blob_lies_about_its_size_costs_only_itself() {
    let app = pushed_app();
    // Listed before the honest ones: a layer said to be longer, and one said to be
    // shorter, than the blob the registry serves.
    let size = app.template["layers"][0]["size"].as_u64().unwrap();
    let liars: Vec<Value> = [size + 7, size - 1]
        .iter()
        .map(|lie| app.put_referrer(|m| m["layers"][0]["size"] = json!(lie)))
        .collect();
    app.list_first(&liars);

    // And a `.sig` tag whose first signature lies about its size the same way.
    let sig_tag = format!("{}.sig", fallback_tag(&app.subject));
    let mut sig = app
        .registry
        .document("apps/app", &sig_tag, OCI_MANIFEST)
        .unwrap();
    let mut lying_signature = sig["layers"][0].clone();
    lying_signature["size"] = json!(lying_signature["size"].as_u64().unwrap() + 7);
    let signatures = sig["layers"].as_array_mut().unwrap();
    signatures.insert(0, lying_signature.clone());
    app.put_raw(&sig_tag, OCI_MANIFEST, &serde_json::to_vec(&sig).unwrap());

    let (_, pulled) = app.pull_fresh();
    let signature = lying_signature["digest"].as_str().unwrap();
    assert!(
        pulled
            .stderr
            .contains(&format!("signature {signature} is left out")),
        "{}",
        pulled.text()
    );
    assert!(
        !pulled.stderr.contains("were not pulled"),
        "{}",
        pulled.text()
    );
    for liar in &liars {
        let digest = liar["digest"].as_str().unwrap();
        assert!(
            pulled.stderr.contains(&format!("referrer {digest} of")),
            "{}",
            pulled.text()
        );
    }
}

#[test]
fn a_pull_takes_a_bounded_number_of_referrer_bytes_in_all() {
    let app = pushed_app();
    // Five referrers that declare a 63 MiB layer each: the first four use up the pull's
    // 256 MiB (and fail on the blob the registry serves), the fifth is refused unfetched.
    let greedy: Vec<Value> = (0..5u64)
        .map(|i| app.put_referrer(|m| m["layers"][0]["size"] = json!((63 << 20) + i)))
        .collect();
    app.list_first(&greedy);

    let (_, pulled) = app.pull_fresh();
    let refused = format!(
        "referrer {} of {} is left out: its blobs would take the pull past {} bytes",
        greedy[4]["digest"].as_str().unwrap(),
        app.subject,
        256u64 << 20
    );
    assert!(pulled.stderr.contains(&refused), "{}", pulled.text());
}

#[test]
fn attaches_and_gc_at_once_lose_no_referrer_and_leave_none_dangling() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    let layout = Layout::open_or_create(&store).unwrap();
    let subject = make_image(&layout, "app", 3, &[&[3_000]]);
    let children: Vec<std::process::Child> = (0..12)
        .map(|i| {
            let mut command = std::process::Command::new(support::bin());
            command.arg("--store").arg(&store).arg("-q");
            if i % 3 == 2 {
                command.arg("gc");
            } else {
                let file = dir.path().join(format!("note-{i}.txt"));
                std::fs::write(&file, format!("note {i}")).unwrap();
                command
                    .args(["attach", "app", "--artifact-type", "text/plain"])
                    .arg(&file);
            }
            command.spawn().unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    Cmd::solum(&store).arg("gc").run().ok();
    let layout = Layout::open(&store).unwrap();
    let referrers = list(&layout, &subject).unwrap();
    assert_eq!(referrers.len(), 8);
    for referrer in &referrers {
        for blob in std::iter::once(&referrer.descriptor).chain(referrer.manifest.layers()) {
            let digest: Digest = blob.digest().to_string().parse().unwrap();
            assert!(layout.has_blob(&digest), "{digest} is gone");
        }
    }
}

#[test]
fn a_push_keeps_the_referrers_another_tool_listed_in_the_fallback_index() {
    let app = pushed_app();
    // Another tool's fallback index: a referrer it pushed, with an annotation of its
    // own, and no `mediaType` (an image index SHOULD carry it; it need not).
    let mut foreign = app.put_referrer(|m| m["annotations"] = json!({"org.example.tool": "kept"}));
    foreign["artifactType"] = json!("text/plain");
    foreign["annotations"] = json!({"org.example.tool": "kept"});
    let theirs = json!({"schemaVersion": 2, "manifests": [foreign]});
    let tag = fallback_tag(&app.subject);
    app.put_raw(&tag, OCI_INDEX, &serde_json::to_vec(&theirs).unwrap());
    let pushed = Cmd::solum(&app.store)
        .arg("push")
        .arg("app")
        .arg(&app.remote)
        .run()
        .ok();
    assert!(
        !pushed.stderr.contains("is not an OCI image index"),
        "{}",
        pushed.text()
    );
    let merged = app.registry.document("apps/app", &tag, OCI_INDEX).unwrap();
    let entries = merged["manifests"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        app.index["manifests"].as_array().unwrap().len() + 1
    );
    assert!(entries.contains(&foreign), "{merged}");

    // A pull reads that index too: the other tool's referrer arrives with ours.
    let fresh = app.dir.path().join("fresh");
    Cmd::solum(&fresh).arg("pull").arg(&app.remote).run().ok();
    let mut expected = referrer_digests(&app.store, &app.subject);
    expected.push(foreign["digest"].as_str().unwrap().to_string());
    expected.sort();
    assert_eq!(referrer_digests(&fresh, &app.subject), expected);
}

#[test]
fn an_oci_layout_listing_one_large_referrer_thousands_of_times_is_read_once() {
    let dir = temp_dir();
    let source = dir.path().join("source");
    let layout = Layout::open_or_create(&source).unwrap();
    let subject = make_image(&layout, "app", 5, &[&[2_000]]);
    let image = layout.resolve(Some("app")).unwrap();
    let attachment = Attachment {
        artifact_type: "text/plain".to_string(),
        media_type: "text/plain".to_string(),
        bytes: b"note".to_vec(),
        annotations: BTreeMap::from([("org.example.padding".to_string(), "x".repeat(3 << 20))]),
        ..Attachment::default()
    };
    attach(&layout, &image.descriptor, &attachment).unwrap();

    // The referrer's entry, three thousand times: 9 GB to hash if each were read.
    let index_path = source.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap().clone();
    let referrer = manifests
        .iter()
        .find(|d| d.get("artifactType").is_some())
        .unwrap()
        .clone();
    let mut crowded = manifests.clone();
    crowded.extend(std::iter::repeat_n(referrer, 3_000));
    index["manifests"] = json!(crowded);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let store = dir.path().join("store");
    let started = std::time::Instant::now();
    Cmd::solum(&store)
        .args(["pull", "--tag", "app"])
        .arg(format!("oci:{}:app", source.display()))
        .run()
        .ok();
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
    assert_eq!(
        referrer_digests(&store, &subject),
        referrer_digests(&source, &subject)
    );
    assert_eq!(referrer_digests(&store, &subject).len(), 1);
}

#[test]
fn run_again_as_tester() {
    support::rerun_as_tester();
}
