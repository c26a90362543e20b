//! Unit tests of the transports that need no peer: reference descriptions, and the strict
//! reading of layout archives (the end-to-end cases are in tests/store_*.rs).

use super::*;
use crate::image::ImageReference;

#[test]
fn references_are_described_as_written() {
    for text in [
        "base/busybox",
        "oci:/tmp/layout:app",
        "oci-archive:/tmp/a.tar",
        "docker-archive:/tmp/d.tar:app:1",
        "docker://127.0.0.1:5000/team/app:1",
    ] {
        let reference: ImageReference = text.parse().unwrap();
        assert_eq!(describe(&reference), text);
    }
}

#[test]
fn a_layout_archive_without_oci_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    let mut header = tar::Header::new_ustar();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "index.json", &b"{}"[..])
        .unwrap();
    builder.finish().unwrap();
    drop(builder);
    let dest = dir.path().join("out");
    std::fs::create_dir(&dest).unwrap();
    let error = archive::extract_oci_archive(&archive, &dest).err().unwrap();
    assert!(
        matches!(error, TransportError::NotALayout { .. }),
        "{error}"
    );
}

#[test]
fn a_symlink_where_a_blob_belongs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_link_name("/etc/shadow").unwrap();
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            format!("blobs/sha256/{}", "a".repeat(64)),
            std::io::empty(),
        )
        .unwrap();
    builder.finish().unwrap();
    drop(builder);
    let dest = dir.path().join("out");
    std::fs::create_dir(&dest).unwrap();
    let error = archive::extract_oci_archive(&archive, &dest).err().unwrap();
    let text = error.to_string();
    assert!(
        text.contains("blobs/sha256/aaaa") && text.contains("link"),
        "{text}"
    );
}
