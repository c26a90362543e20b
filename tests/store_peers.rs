//! Issue 2: images made by `solum-build import` are read by the real peers (skopeo, umoci,
//! oci-image-tool, podman), and `solum-build unpack` agrees with `umoci unpack` on images
//! made by us, by umoci and by skopeo. Every test runs as root and again as `tester`.

mod support;

use std::path::Path;
use support::*;

/// xattrs the two unpackers own and may write differently.
const UNPACKER_XATTRS: &[&str] = &["user.rootlesscontainers", "security."];

fn umoci_unpack(layout: &Path, name: &str, bundle: &Path) {
    let image = format!("{}:{name}", layout.display());
    let mut umoci = Cmd::program("umoci").arg("unpack");
    if !is_root() {
        umoci = umoci.arg("--rootless");
    }
    umoci.arg("--image").arg(&image).arg(bundle).run().ok();
}

fn import_every_kind(dir: &Path) -> std::path::PathBuf {
    let tree = dir.join("tree");
    every_kind_rootfs(&tree);
    let store = dir.join("store");
    import_tree(&store, &tree, "fixture/every-kind");
    store
}

#[test]
fn imported_image_is_read_by_skopeo_and_oci_image_tool() {
    let dir = temp_dir();
    let store = import_every_kind(dir.path());
    let image = format!("oci:{}:fixture/every-kind", store.display());
    let inspect = Cmd::program("skopeo").arg("inspect").arg(&image).run().ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(
        json["Layers"].as_array().unwrap().len(),
        1,
        "{}",
        inspect.stdout
    );
    assert_eq!(json["Os"], "linux");
    Cmd::program("oci-image-tool")
        .args(["validate", "--type", "image"])
        .arg(&store)
        .args(["--ref", "name=fixture/every-kind"])
        .run()
        .ok();
}

#[test]
fn our_unpack_and_umoci_unpack_give_the_source_tree() {
    let dir = temp_dir();
    let store = import_every_kind(dir.path());
    let ours = dir.path().join("ours");
    Cmd::solum(&store)
        .args(["unpack", "fixture/every-kind"])
        .arg(&ours)
        .run()
        .ok();
    let bundle = dir.path().join("bundle");
    umoci_unpack(&store, "fixture/every-kind", &bundle);

    // Owners are only comparable when root could apply them; rootless unpacks record them.
    let owners = is_root();
    let source = listing(&dir.path().join("tree"), owners, UNPACKER_XATTRS);
    let ours_listing = listing(&ours, owners, UNPACKER_XATTRS);
    let umoci_listing = listing(&bundle.join("rootfs"), owners, UNPACKER_XATTRS);
    assert_same_tree("source vs our unpack", &source, &ours_listing);
    assert_same_tree("umoci unpack vs our unpack", &umoci_listing, &ours_listing);
    if !owners {
        // Both record the same owners in user.rootlesscontainers.
        let with_record = |root: &Path| listing(root, false, &["security."]);
        assert_same_tree(
            "ownership records",
            &with_record(&bundle.join("rootfs")),
            &with_record(&ours),
        );
    }
}

#[test]
fn our_unpack_of_umoci_and_skopeo_layouts_matches_umoci() {
    let dir = temp_dir();
    let tree = dir.path().join("tree");
    every_kind_rootfs(&tree);
    if !is_root() {
        // `cp -a` and `umoci repack` read files as the unprivileged user: a mode-0000 file
        // is unreadable to them (our own import reads it; see the test above).
        let nothing = tree.join("data/nothing");
        std::fs::set_permissions(
            &nothing,
            std::os::unix::fs::PermissionsExt::from_mode(0o400),
        )
        .unwrap();
    }

    // A layout made entirely by umoci: new image, unpack, fill, repack.
    let layout = dir.path().join("umoci-layout");
    Cmd::program("umoci")
        .args(["init", "--layout"])
        .arg(&layout)
        .run()
        .ok();
    let image = format!("{}:made", layout.display());
    Cmd::program("umoci")
        .args(["new", "--image"])
        .arg(&image)
        .run()
        .ok();
    let work = dir.path().join("umoci-work");
    umoci_unpack(&layout, "made", &work);
    let rootfs = work.join("rootfs");
    std::fs::remove_dir(&rootfs).unwrap();
    Cmd::program("cp")
        .arg("-a")
        .arg(&tree)
        .arg(&rootfs)
        .run()
        .ok();
    // repack knows from the bundle's metadata whether it was a rootless unpack.
    Cmd::program("umoci")
        .args(["repack", "--image"])
        .arg(&image)
        .arg(&work)
        .run()
        .ok();

    // A layout whose layer skopeo compressed itself (from an uncompressed docker archive).
    let store = dir.path().join("store");
    import_tree(&store, &tree, "t");
    let archive = dir.path().join("d.tar");
    Cmd::solum(&store)
        .args(["push", "t"])
        .arg(format!("docker-archive:{}:t:1", archive.display()))
        .run()
        .ok();
    let skopeo_layout = dir.path().join("skopeo-layout");
    Cmd::program("skopeo")
        .arg("copy")
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("oci:{}:made", skopeo_layout.display()))
        .run()
        .ok();

    for (what, layout) in [("umoci", &layout), ("skopeo", &skopeo_layout)] {
        let theirs = dir.path().join(format!("{what}-bundle"));
        umoci_unpack(layout, "made", &theirs);
        let ours = dir.path().join(format!("{what}-ours"));
        Cmd::solum(&store)
            .arg("unpack")
            .arg(format!("oci:{}:made", layout.display()))
            .arg(&ours)
            .run()
            .ok();
        assert_same_tree(
            &format!("{what} layout: umoci unpack vs ours"),
            &listing(&theirs.join("rootfs"), is_root(), UNPACKER_XATTRS),
            &listing(&ours, is_root(), UNPACKER_XATTRS),
        );
    }
}

#[test]
fn docker_archive_output_loads_with_podman() {
    if !is_root() {
        // Rootless podman needs its own storage set-up for `tester`; the archive format
        // does not depend on who wrote it, and the root run checks it.
        return;
    }
    let dir = temp_dir();
    let tree = dir.path().join("tree");
    busybox_rootfs(&tree);
    let store = dir.path().join("store");
    Cmd::solum(&store)
        .arg("import")
        .arg(&tree)
        .args(["--tag", "podman-check", "--cmd", "/bin/true"])
        .run()
        .ok();
    let archive = dir.path().join("image.tar");
    let tag = format!("solum-test-{}", std::process::id());
    Cmd::solum(&store)
        .args(["push", "podman-check"])
        .arg(format!("docker-archive:{}:{tag}:1", archive.display()))
        .run()
        .ok();
    let loaded = Cmd::program("podman")
        .args(["load", "-i"])
        .arg(&archive)
        .run()
        .ok();
    assert!(loaded.stdout.contains(&tag), "{}", loaded.text());
    let digest_of_config = Cmd::program("podman")
        .args(["image", "inspect", "--format", "{{.Id}}"])
        .arg(format!("localhost/{tag}:1"))
        .run()
        .ok();
    let inspect = Cmd::solum(&store)
        .args(["inspect", "podman-check"])
        .run()
        .ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let config_digest = json["manifest"]["config"]["digest"].as_str().unwrap();
    assert_eq!(
        format!("sha256:{}", digest_of_config.stdout.trim()),
        config_digest,
        "podman's image id is our config digest"
    );
    Cmd::program("podman")
        .arg("rmi")
        .arg(format!("localhost/{tag}:1"))
        .run();
}

#[test]
fn import_is_reproducible_and_oci_archive_round_trips() {
    let dir = temp_dir();
    let tree = dir.path().join("tree");
    every_kind_rootfs(&tree);
    let first = Cmd::solum(&dir.path().join("s1"))
        .arg("import")
        .arg(&tree)
        .args(["--tag", "a"])
        .run()
        .ok();
    let second = Cmd::solum(&dir.path().join("s2"))
        .arg("import")
        .arg(&tree)
        .args(["--tag", "b"])
        .run()
        .ok();
    assert_eq!(first.last_line(), second.last_line());
    assert!(first.last_line().starts_with("sha256:"));

    let archive = dir.path().join("a.tar");
    let pushed = Cmd::solum(&dir.path().join("s1"))
        .args(["push", "a"])
        .arg(format!("oci-archive:{}:x", archive.display()))
        .run()
        .ok();
    assert_eq!(pushed.last_line(), first.last_line());
    let back = Cmd::solum(&dir.path().join("s3"))
        .arg("push")
        .arg(format!("oci-archive:{}:x", archive.display()))
        .arg("back")
        .run()
        .ok();
    assert_eq!(back.last_line(), first.last_line());
    let images = Cmd::solum(&dir.path().join("s3"))
        .args(["images", "--json"])
        .run()
        .ok();
    assert!(images.stdout.contains("\"back\""), "{}", images.text());
    // skopeo reads the archive too.
    Cmd::program("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}:x", archive.display()))
        .run()
        .ok();
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
