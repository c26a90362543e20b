//! The fuzz entry points on the seed inputs and on the hostile fixtures, with the stable
//! toolchain: each must hold its invariants (a panic fails the test), and the checks must
//! be able to fail (a write outside the root is seen).

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

fn testdata(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir);
    // Files only: testdata/apps also holds the test apps' folders.
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn unpack_entry_holds_on_every_layer_fixture_in_every_mode() {
    let layers: Vec<Vec<u8>> = testdata("layer")
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    for layer in &layers {
        for mode in [0u8, 1, 2, 3] {
            let mut input = vec![mode];
            input.extend_from_slice(layer);
            unpack_layer(&input);
        }
    }
    // Two layers: the planted symlink of the first, then the write through it.
    let first =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/layer/planted-layer1.tar"))
            .unwrap();
    let second =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/layer/planted-layer2.tar"))
            .unwrap();
    let mut input = vec![4u8];
    input.extend_from_slice(&u16::try_from(first.len()).unwrap().to_le_bytes());
    input.extend_from_slice(&first);
    input.extend_from_slice(&second);
    unpack_layer(&input);
    unpack_layer(&[]);
    unpack_layer(&[0]);
}

#[test]
fn unpack_entry_writes_through_neither_planted_symlink() {
    // Entries aimed at the two symlinks the entry point plants in the root.
    for target in ["up/x", "abs/x", "up/secret", "abs/secret"] {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(3);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, target, &b"bad"[..]).unwrap();
        let mut input = vec![0u8];
        input.extend_from_slice(&tar.into_inner().unwrap());
        unpack_layer(&input);
    }
}

#[test]
fn the_outside_check_sees_a_file_written_beside_the_secret() {
    // The check the unpack entry ends with, run after a write it must catch.
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), SECRET).unwrap();
    fs::write(outside.join("planted"), b"x").unwrap();
    let names: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_ne!(names, ["secret"]);
}

#[test]
fn app_and_badger_entries_hold_on_the_fixtures() {
    let mut accepted = 0;
    for path in testdata("apps") {
        let text = fs::read(&path).unwrap();
        app_file(&text);
        accepted += usize::from(AppFile::parse(std::str::from_utf8(&text).unwrap(), "t").is_ok());
    }
    assert!(
        accepted >= 3,
        "the round trip ran on only {accepted} accepted app files"
    );
    for path in testdata("badgers") {
        badger_manifest(&fs::read(&path).unwrap());
    }
    for dir in fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("badgers")).unwrap() {
        let manifest = dir.unwrap().path().join("badger.yaml");
        if manifest.exists() {
            badger_manifest(&fs::read(&manifest).unwrap());
        }
    }
}

#[test]
fn reference_entry_holds_on_every_transport() {
    let digest = format!("sha256:{}", "a".repeat(64));
    for text in [
        "helloworld".to_string(),
        "badgers/python3:3.11".to_string(),
        "oci:/tmp/layout:badgers/python3:3.11".to_string(),
        "oci-archive:img.tar".to_string(),
        "docker-archive:out.tar:hello:1.0".to_string(),
        format!("docker://127.0.0.1:5000/org/app:1.0@{digest}"),
        "docker:////host/x".to_string(),
        "../x".to_string(),
        String::new(),
    ] {
        image_reference(text.as_bytes());
    }
}

#[test]
fn www_authenticate_entry_holds_on_registry_headers() {
    for header in [
        r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull""#,
        r#"Basic realm="Registry Realm""#,
        r#"bearer realm=https://h/token , service="a\"b\\c""#,
        r#"Bearer realm=" spaced ",service="#,
        "Bearer",
        "Negotiate",
        "",
    ] {
        www_authenticate(header.as_bytes());
    }
}

/// A layout input: index → index → manifest → config and one layer, with placeholders.
fn nested_layout_input() -> Vec<u8> {
    let docs = [
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"$d1","size":$s1,"annotations":{"org.opencontainers.image.ref.name":"app:1"}}]}"#,
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$d2","size":$s2,"platform":{"os":"linux","architecture":"amd64"}}]}"#,
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$d3","size":$s3},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"$d4","size":$s4}]}"#,
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        "layer bytes",
    ];
    docs.join("\0").into_bytes()
}

#[test]
fn layout_entry_resolves_a_nested_index_before_and_after_gc() {
    let input = nested_layout_input();
    layout_resolve(&input);
    // The same layout, checked here to resolve, so the entry's gc comparison ran.
    let mut docs: Vec<Vec<u8>> = input.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    let mut digests: Vec<Option<(Digest, usize)>> = vec![None; docs.len()];
    for i in (0..docs.len()).rev() {
        docs[i] = substitute(&docs[i], i, &digests);
        digests[i] = Some((Digest::of_bytes(&docs[i]), docs[i].len()));
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(dir.path()).unwrap();
    for doc in &docs[1..] {
        layout.put_bytes(doc).unwrap();
    }
    fs::write(dir.path().join("index.json"), &docs[0]).unwrap();
    let image = layout.resolve(Some("app:1")).unwrap();
    assert_eq!(image.layers().len(), 1);
    layout_resolve(b"");
    layout_resolve(b"{}\0{}");
}

#[test]
fn placeholders_name_only_later_documents() {
    let digests = vec![None, Some((Digest::of_bytes(b"x"), 1))];
    assert_eq!(substitute(b"$s1 $d0 $s9 $", 0, &digests), b"1 $d0 $s9 $");
    assert_eq!(
        substitute(b"$s1", 1, &digests),
        b"$s1",
        "a document names itself"
    );
}

/// The guard reads every layer fixture as the parser does, and its refusal of an
/// oversized long name is what the check lets by.
#[test]
fn the_guard_agrees_with_the_parser_on_every_layer_fixture() {
    for layer in testdata("layer") {
        guard_agrees_with_parser(&fs::read(layer).unwrap());
    }
    let mut long_name = tar::Header::new_gnu();
    long_name.set_entry_type(tar::EntryType::GNULongName);
    long_name.set_path("././@LongLink").unwrap();
    long_name.set_size(1 << 30);
    long_name.set_cksum();
    let mut refused = long_name.as_bytes().to_vec();
    refused.extend([0; 4096]);
    let error = list_tar(crate::layer::TarGuard::new(&refused[..])).unwrap_err();
    assert!(crate::layer::refusal(&error).is_some(), "{error}");
    guard_agrees_with_parser(&refused);
}
