//! The catalogers and the layer walk on small in-memory tars, and the documents they give.

use std::io::Write;

use super::catalog_go::tests::{go_binary, MODINFO};
use super::document::{Described, Sbom};
use super::layers::{catalog_tars, Catalog};
use super::{cyclonedx, spdx, Ecosystem, Limits};
use crate::image::Digest;
use crate::manifest::du::DuManifest;

/// An entry of a test layer.
enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}
use Entry::{Dir, File, Symlink};

fn tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        match entry {
            File(path, bytes) => {
                header.set_size(bytes.len() as u64);
                header.set_entry_type(tar::EntryType::Regular);
                builder.append_data(&mut header, path, *bytes).unwrap();
            }
            Dir(path) => {
                header.set_size(0);
                header.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
            Symlink(path, target) => {
                header.set_size(0);
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn catalog(layers: &[Vec<u8>]) -> Catalog {
    catalog_tars(layers, &Limits::default())
}

/// `name@version` of each package found, in order.
fn found(catalog: &Catalog) -> Vec<String> {
    catalog
        .packages
        .iter()
        .map(|p| format!("{}@{}", super::purl::display_name(p), p.version))
        .collect()
}

const DPKG_STATUS: &[u8] = b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n Shared libraries.\n\nPackage: removed-one\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\n";
const OS_RELEASE: &[u8] =
    b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";

fn metadata(name: &str, version: &str) -> Vec<u8> {
    format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: not-this\n")
        .into_bytes()
}

#[test]
fn dpkg_packages_installed_only_with_distro_purls() {
    let catalog = catalog(&[tar(&[
        File("usr/lib/os-release", OS_RELEASE),
        Symlink("etc/os-release", "../usr/lib/os-release"),
        File("var/lib/dpkg/status", DPKG_STATUS),
        File(
            "var/lib/dpkg/status.d/base-files",
            b"Package: base-files\nVersion: 12.4\nArchitecture: amd64\n",
        ),
        File("var/lib/dpkg/status.d/base-files.md5sums", b"abc  etc/x\n"),
    ])]);
    assert_eq!(
        found(&catalog),
        [
            "base-files@12.4",
            "libc6@2.36-9+deb12u4",
            "zlib1g@1:1.2.13.dfsg-1"
        ]
    );
    let os = catalog.os.as_ref().unwrap();
    assert_eq!(
        super::purl::purl(&catalog.packages[1], Some(os)),
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
    );
    assert_eq!(catalog.packages[1].layer, "layer0");
    assert_eq!(catalog.packages[1].path, "var/lib/dpkg/status");
}

#[test]
fn whiteouts_hide_lower_layers_but_not_their_own() {
    let lower = tar(&[
        File(
            "usr/lib/python3/site-packages/gone-1.0.dist-info/METADATA",
            &metadata("gone", "1.0"),
        ),
        File(
            "usr/lib/python3/site-packages/kept-2.0.dist-info/METADATA",
            &metadata("kept", "2.0"),
        ),
        File(
            "app/node_modules/left/package.json",
            br#"{"name":"left","version":"1.0.0"}"#,
        ),
        File(
            "opt/venv/lib/python3.11/site-packages/old-1.dist-info/METADATA",
            &metadata("old", "1"),
        ),
    ]);
    let upper = tar(&[
        // A plain whiteout of a folder, an opaque folder re-filled in the same layer, and a
        // whiteout in the same layer as (and after) an entry of its own, which it must not hide.
        File("usr/lib/python3/site-packages/.wh.gone-1.0.dist-info", b""),
        File("opt/venv/lib/python3.11/site-packages/.wh..wh..opq", b""),
        File(
            "opt/venv/lib/python3.11/site-packages/new-3.dist-info/METADATA",
            &metadata("new", "3"),
        ),
        File(
            "srv/node_modules/same/package.json",
            br#"{"name":"same","version":"1.0.0"}"#,
        ),
        File("srv/node_modules/.wh.same", b""),
        // Replacing a folder by a file hides what was in it.
        File("app/node_modules/left", b"now a file"),
    ]);
    let catalog = catalog(&[lower, upper]);
    assert_eq!(found(&catalog), ["kept@2.0", "new@3", "same@1.0.0"]);
    assert_eq!(catalog.packages[0].layer, "layer0");
    assert_eq!(catalog.packages[1].layer, "layer1");
}

#[test]
fn a_package_in_two_layers_is_listed_once_from_the_upper() {
    let meta = metadata("six", "1.16.0");
    let layer = |path: &str| tar(&[Dir("usr/lib/python3/dist-packages/"), File(path, &meta)]);
    let catalog = catalog(&[
        layer("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA"),
        layer("usr/local/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA"),
    ]);
    assert_eq!(found(&catalog), ["six@1.16.0"]);
    assert_eq!(catalog.packages[0].layer, "layer1");
}

fn jar(pom: &str) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    writer.start_file("META-INF/MANIFEST.MF", options).unwrap();
    writer.write_all(b"Manifest-Version: 1.0\n").unwrap();
    writer
        .start_file("META-INF/maven/org.slf4j/slf4j-api/pom.properties", options)
        .unwrap();
    writer.write_all(pom.as_bytes()).unwrap();
    writer.finish().unwrap().into_inner()
}

#[test]
fn every_language_cataloger() {
    let pom = "#Generated by Maven\ngroupId=org.slf4j\nartifactId=slf4j-api\nversion=2.0.9\n";
    let jar = jar(pom);
    let go = go_binary(4096, MODINFO);
    let gemspec = b"Gem::Specification.new do |s|\n  s.name = \"rake\".freeze\n  s.version = \"13.0.6\"\nend\n";
    let lock = br#"{"lockfileVersion":3,"packages":{"":{"name":"app"},"node_modules/left-pad":{"version":"1.3.0"},"node_modules/@babel/core":{"version":"7.0.0"},"node_modules/linked":{"link":true}}}"#;
    let catalog = catalog(&[tar(&[
        File(
            "usr/lib/python3/dist-packages/Jinja2-3.1.2.egg-info",
            &metadata("Jinja2", "3.1.2"),
        ),
        File(
            "usr/local/lib/python3.11/site-packages/attrs-23.1.0.egg-info/PKG-INFO",
            &metadata("attrs", "23.1.0"),
        ),
        File(
            "app/node_modules/@babel/core/package.json",
            br#"{"name":"@babel/core","version":"7.0.0"}"#,
        ),
        File(
            "app/node_modules/express/package.json",
            br#"{"name":"express","version":"4.18.2"}"#,
        ),
        File(
            "app/node_modules/express/lib/package.json",
            br#"{"name":"not-a-package","version":"0"}"#,
        ),
        File("app/package-lock.json", lock),
        File("usr/local/bin/server", &go),
        File("app/lib/slf4j-api-2.0.9.jar", &jar),
        File(
            "usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec",
            gemspec,
        ),
        File(
            "app/vendor/composer/installed.json",
            br#"{"packages":[{"name":"monolog/monolog","version":"3.5.0"}]}"#,
        ),
        File(
            "old/vendor/composer/installed.json",
            br#"[{"name":"psr/log","version":"1.1.4"}]"#,
        ),
    ])]);
    assert_eq!(
        found(&catalog),
        [
            "Jinja2@3.1.2",
            "attrs@23.1.0",
            "express@4.18.2",
            "left-pad@1.3.0",
            "@babel/core@7.0.0",
            "example.com/app@(devel)",
            "github.com/local/mod@v0.1.0",
            "github.com/new/mod@v1.2.0",
            "golang.org/x/text@v0.14.0",
            "stdlib@1.22.5",
            "org.slf4j:slf4j-api@2.0.9",
            "rake@13.0.6",
            "monolog/monolog@3.5.0",
            "psr/log@1.1.4",
        ]
    );
    let babel = &catalog.packages[4];
    assert_eq!(babel.path, "app/node_modules/@babel/core/package.json");
    let go = catalog
        .packages
        .iter()
        .find(|p| p.ecosystem == Ecosystem::Go)
        .unwrap();
    assert_eq!(go.path, "usr/local/bin/server");
}

#[test]
fn hostile_files_are_skipped_and_counted_never_fatal() {
    let limits = Limits {
        metadata_bytes: 64,
        path_depth: 6,
        ..Limits::default()
    };
    let deep = "a/b/c/d/e/f/g/site-packages/x-1.dist-info/METADATA";
    let catalog = catalog_tars(
        &[tar(&[
            File(
                "usr/lib/python3/site-packages/big-1.dist-info/METADATA",
                &[b'x'; 65],
            ),
            File(deep, &metadata("x", "1")),
            File("app/node_modules/broken/package.json", b"{not json"),
            File(
                "app/node_modules/noversion/package.json",
                br#"{"name":"noversion"}"#,
            ),
            File("app/lib/broken.jar", b"PK\x03\x04 not really"),
            File(
                "usr/lib/python3/site-packages/ctl-1.dist-info/METADATA",
                b"Name: a\x07b\nVersion: 1\n",
            ),
            File(
                "usr/lib/python3/site-packages/ok-1.dist-info/METADATA",
                &metadata("ok", "1"),
            ),
        ])],
        &limits,
    );
    assert_eq!(found(&catalog), ["ok@1"]);
    assert_eq!(catalog.skipped.too_large, 2);
    assert_eq!(catalog.skipped.malformed, 4);
}

#[test]
fn the_package_bound_holds() {
    let limits = Limits {
        packages: 2,
        ..Limits::default()
    };
    let catalog = catalog_tars(
        &[tar(&[
            File("var/lib/dpkg/status", DPKG_STATUS),
            File(
                "usr/lib/python3/site-packages/ok-1.dist-info/METADATA",
                &metadata("ok", "1"),
            ),
        ])],
        &limits,
    );
    assert_eq!(catalog.packages.len(), 2);
    assert_eq!(catalog.skipped.too_large, 1);
}

fn du(badger_digest: &str) -> DuManifest {
    let json = format!(
        r#"{{"version":1,"name":"shop","runtime":{{"command":["python3","app.py"],"workdir":"/app","user":"0:0"}},"environment":{{}},"ports":[],"scaling":{{"min":1,"max":1}},"services":[],"security_flavor":"restricted","badgers":[{{"name":"python3","version":"1.0","digest":"{badger_digest}"}}],"source":{{"repository":"https://git.example.org/shop.git","revision":"0123abcd"}},"heat":""}}"#
    );
    DuManifest::from_json(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

#[test]
fn documents_are_deterministic_and_name_the_du_its_badgers_and_the_packages() {
    let layers = [tar(&[
        File("etc/os-release", OS_RELEASE),
        File("var/lib/dpkg/status", DPKG_STATUS),
    ])];
    let manifest_digest = Digest::of_bytes(b"manifest");
    let badger = Digest::of_bytes(b"badger").to_string();
    let sbom = || {
        let catalog = catalog(&layers);
        let du = du(&badger);
        let described = Described::new(
            None,
            &manifest_digest,
            Some("2024-05-01T10:00:00Z"),
            Some(&du),
        );
        Sbom::new(described, catalog.packages, catalog.os)
    };
    let spdx_bytes = spdx::document(&sbom()).unwrap();
    let cyclonedx_bytes = cyclonedx::document(&sbom()).unwrap();
    assert_eq!(spdx_bytes, spdx::document(&sbom()).unwrap());
    assert_eq!(cyclonedx_bytes, cyclonedx::document(&sbom()).unwrap());

    let spdx: serde_json::Value = serde_json::from_slice(&spdx_bytes).unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert_eq!(spdx["creationInfo"]["created"], "2024-05-01T10:00:00Z");
    assert!(spdx["documentNamespace"]
        .as_str()
        .unwrap()
        .starts_with("urn:uuid:"));
    let packages = spdx["packages"].as_array().unwrap();
    assert_eq!(packages[0]["name"], "shop");
    assert_eq!(packages[0]["versionInfo"], "0123abcd");
    assert_eq!(packages[1]["name"], "python3");
    assert_eq!(
        packages[1]["checksums"][0]["checksumValue"],
        badger.trim_start_matches("sha256:")
    );
    assert_eq!(
        packages[2]["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
    );
    assert_eq!(packages.len(), 4);

    let cyclonedx: serde_json::Value = serde_json::from_slice(&cyclonedx_bytes).unwrap();
    assert_eq!(cyclonedx["specVersion"], "1.5");
    assert_eq!(cyclonedx["serialNumber"], spdx["documentNamespace"]);
    assert_eq!(cyclonedx["metadata"]["component"]["name"], "shop");
    assert_eq!(
        cyclonedx["metadata"]["component"]["externalReferences"][0]["url"],
        "https://git.example.org/shop.git"
    );
    let components = cyclonedx["components"].as_array().unwrap();
    assert_eq!(components.len(), 3);
    assert_eq!(components[1]["properties"][0]["value"], "layer0");
}

#[test]
fn a_badger_digest_that_is_not_one_is_left_out() {
    let du = du("sha256:not-hex");
    let described = Described::new(None, &Digest::of_bytes(b"m"), None, Some(&du));
    assert!(described.badgers.is_empty());
}

/// A store holding one image, `shop`, of gzip `layers`, carrying `du` as its annotation.
fn store_with_image(
    root: &std::path::Path,
    layers: &[Vec<u8>],
    du: Option<&str>,
) -> crate::store::Layout {
    use flate2::write::GzEncoder;
    let layout = crate::store::Layout::open_or_create(root).unwrap();
    let mut layer_json = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        let mut gzip = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(tar).unwrap();
        let compressed = gzip.finish().unwrap();
        let digest = layout.put_bytes(&compressed).unwrap();
        diff_ids.push(serde_json::json!(Digest::of_bytes(tar).to_string()));
        layer_json.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest.to_string(),
            "size": compressed.len(),
        }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-05-01T10:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = layout.put_bytes(&config).unwrap();
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": layer_json,
    });
    if let Some(du) = du {
        manifest["annotations"] = serde_json::json!({ crate::manifest::DU_ANNOTATION: du });
    }
    let manifest = serde_json::to_vec(&manifest).unwrap();
    layout.put_bytes(&manifest).unwrap();
    let descriptor = crate::store::image::manifest_descriptor(&manifest, None);
    layout.tag("shop", &descriptor).unwrap();
    layout
}

#[test]
fn generate_reads_the_store_s_layers_and_the_du_annotation() {
    let dir = tempfile::tempdir().unwrap();
    let du = du(&Digest::of_bytes(b"badger").to_string())
        .to_json()
        .unwrap();
    let layers = [
        tar(&[
            File("etc/os-release", OS_RELEASE),
            File("var/lib/dpkg/status", DPKG_STATUS),
        ]),
        tar(&[File(
            "usr/lib/python3/site-packages/ok-1.dist-info/METADATA",
            &metadata("ok", "1"),
        )]),
    ];
    let layout = store_with_image(dir.path(), &layers, Some(&du));
    let image = layout.resolve(Some("shop")).unwrap();
    let sboms = super::generate(&layout, &image).unwrap();
    assert_eq!(sboms.packages, 3);
    assert_eq!(sboms, super::generate(&layout, &image).unwrap());
    let spdx: serde_json::Value = serde_json::from_slice(&sboms.spdx).unwrap();
    assert_eq!(spdx["name"], "shop");
    assert_eq!(spdx["creationInfo"]["created"], "2024-05-01T10:00:00Z");
    let upper = image.layers()[1].digest().to_string();
    assert!(
        spdx["packages"][4]["sourceInfo"]
            .as_str()
            .unwrap()
            .contains(&upper),
        "{}",
        spdx["packages"][4]
    );

    // A layer blob changed on disk: the SBOM fails rather than describe other bytes.
    let blob = layout.blob_path(&Digest::try_from(image.layers()[1].digest()).unwrap());
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    assert!(super::generate(&layout, &image).is_err());
}

#[test]
fn an_image_without_a_du_annotation_is_described_by_name_and_a_bad_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let layout = store_with_image(dir.path(), &[tar(&[File("etc/hostname", b"x\n")])], None);
    let image = layout.resolve(Some("shop")).unwrap();
    let sboms = super::generate(&layout, &image).unwrap();
    let cyclonedx: serde_json::Value = serde_json::from_slice(&sboms.cyclonedx).unwrap();
    assert_eq!(cyclonedx["metadata"]["component"]["name"], "shop");
    assert_eq!(sboms.packages, 0);

    let other = tempfile::tempdir().unwrap();
    let layout = store_with_image(other.path(), &[tar(&[])], Some("{not a DU"));
    let image = layout.resolve(Some("shop")).unwrap();
    assert!(matches!(
        super::generate(&layout, &image),
        Err(super::SbomError::DuManifest { .. })
    ));
}

#[test]
fn a_layer_records_no_more_packages_than_the_sbom_may_list() {
    // A million one-line stanzas in one status file, or thousands of status.d files, once
    // held every package in memory before the bound was applied.
    let limits = Limits {
        packages: 3,
        ..Limits::default()
    };
    let stanzas: String = (0..1000)
        .map(|i| format!("Package: p{i}\nStatus: install ok installed\nVersion: 1\n\n"))
        .collect();
    let part = b"Package: q\nVersion: 1\n";
    let layer = tar(&[
        File("var/lib/dpkg/status", stanzas.as_bytes()),
        File("var/lib/dpkg/status.d/q1", part),
        File("var/lib/dpkg/status.d/q2", part),
    ]);
    let record = super::layers::read_tar(&layer[..], &limits).unwrap();
    let recorded: usize = record
        .ops
        .iter()
        .map(|op| match op {
            super::layer_records::Op::Found(_, super::layers::Content::Packages(p)) => p.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(recorded, 3);
    assert_eq!(
        record.skipped.too_large, 3,
        "the status file and both parts"
    );
    assert_eq!(catalog_tars(&[layer], &limits).packages.len(), 3);
}

#[test]
fn a_path_named_again_and_again_is_one_step_of_its_layer() {
    let mut entries = vec![File("var/lib/dpkg/status", DPKG_STATUS)];
    for _ in 0..1000 {
        entries.push(File("etc/motd", b"hi"));
        entries.push(Dir("etc/d"));
        entries.push(File("etc/.wh.gone", b""));
    }
    // The last status file at the path is the one that counts.
    entries.push(File(
        "var/lib/dpkg/status",
        b"Package: last\nStatus: install ok installed\nVersion: 2\n",
    ));
    let layer = tar(&entries);
    let record = super::layers::read_tar(&layer[..], &Limits::default()).unwrap();
    // status: hide + found; motd: hide; etc/d: remove; etc/gone: hide.
    assert_eq!(record.ops.len(), 5, "{:?}", record.ops);
    let lower = tar(&[File("etc/gone/x.jar", b"not read"), Dir("etc/d")]);
    assert_eq!(found(&catalog(&[lower, layer])), ["last@2"]);
}

/// A layer whose GNU long name declares a gibibyte fails to read at that header: the tar
/// reader never holds the body (it used to read all of it into memory).
#[test]
fn a_gibibyte_long_name_is_refused_at_its_header() {
    use std::io::Read;
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_path("././@LongLink").unwrap();
    header.set_size(1 << 30);
    header.set_cksum();
    let mut layer =
        std::io::Cursor::new(header.as_bytes().to_vec()).chain(std::io::repeat(0).take(1 << 30));
    let error = super::layers::read_tar(&mut layer, &Limits::default()).unwrap_err();
    assert!(
        crate::layer::refusal(&error).is_some(),
        "not the guard's refusal: {error}"
    );
    assert!(
        error.to_string().contains("declares 1073741824 bytes"),
        "{error}"
    );
    // What the reader took: the header and one buffer-full at most, not the body.
    let left = std::io::copy(&mut layer, &mut std::io::sink()).unwrap();
    assert!(left > (1 << 30) - (1 << 20), "only {left} bytes were left");
}
