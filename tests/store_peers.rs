//! Issue 2: images made by `solum-build import` are read by the real peers (skopeo, umoci,
//! oci-image-tool, podman), and `solum-build unpack` agrees with `umoci unpack` on images
//! made by us, by umoci and by skopeo. Every test runs as root and again as `tester`.

mod util;

use std::path::Path;
use util::*;

/// xattrs the two unpackers own and may write differently.
const UNPACKER_XATTRS: &[&str] = &["user.rootlesscontainers", "security."];

fn umoci_unpack(layout: &Path, name: &str, bundle: &Path) {
    let image = format!("{}:{name}", layout.display());
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"unpack"];
    if !is_root() {
        args.push(&"--rootless");
    }
    args.extend([&"--image" as &dyn AsRef<std::ffi::OsStr>, &image, &bundle]);
    program("umoci", &args).ok();
}

fn import_every_kind(dir: &Path) -> std::path::PathBuf {
    let tree = dir.join("tree");
    every_kind_rootfs(&tree);
    let store = dir.join("store");
    solum(&store, &[&"import", &tree, &"--tag", &"fixture/every-kind"]).ok();
    store
}

#[test]
fn imported_image_is_read_by_skopeo_and_oci_image_tool() {
    let dir = temp_dir();
    let store = import_every_kind(dir.path());
    let image = format!("oci:{}:fixture/every-kind", store.display());
    let inspect = program("skopeo", &[&"inspect", &image]).ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(
        json["Layers"].as_array().unwrap().len(),
        1,
        "{}",
        inspect.stdout
    );
    assert_eq!(json["Os"], "linux");
    program(
        "oci-image-tool",
        &[
            &"validate",
            &"--type",
            &"image",
            &store,
            &"--ref",
            &"name=fixture/every-kind",
        ],
    )
    .ok();
}

#[test]
fn our_unpack_and_umoci_unpack_give_the_source_tree() {
    let dir = temp_dir();
    let store = import_every_kind(dir.path());
    let ours = dir.path().join("ours");
    solum(&store, &[&"unpack", &"fixture/every-kind", &ours]).ok();
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
    program("umoci", &[&"init", &"--layout", &layout]).ok();
    let image = format!("{}:made", layout.display());
    program("umoci", &[&"new", &"--image", &image]).ok();
    let work = dir.path().join("umoci-work");
    umoci_unpack(&layout, "made", &work);
    let rootfs = work.join("rootfs");
    std::fs::remove_dir(&rootfs).unwrap();
    program("cp", &[&"-a", &tree, &rootfs]).ok();
    // repack knows from the bundle's metadata whether it was a rootless unpack.
    program("umoci", &[&"repack", &"--image", &image, &work]).ok();

    // A layout whose layer skopeo compressed itself (from an uncompressed docker archive).
    let store = dir.path().join("store");
    solum(&store, &[&"import", &tree, &"--tag", &"t"]).ok();
    let archive = dir.path().join("d.tar");
    solum(
        &store,
        &[
            &"push",
            &"t",
            &format!("docker-archive:{}:t:1", archive.display()),
        ],
    )
    .ok();
    let skopeo_layout = dir.path().join("skopeo-layout");
    program(
        "skopeo",
        &[
            &"copy",
            &format!("docker-archive:{}", archive.display()),
            &format!("oci:{}:made", skopeo_layout.display()),
        ],
    )
    .ok();

    for (what, layout) in [("umoci", &layout), ("skopeo", &skopeo_layout)] {
        let theirs = dir.path().join(format!("{what}-bundle"));
        umoci_unpack(layout, "made", &theirs);
        let ours = dir.path().join(format!("{what}-ours"));
        solum(
            &store,
            &[&"unpack", &format!("oci:{}:made", layout.display()), &ours],
        )
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
    solum(
        &store,
        &[
            &"import",
            &tree,
            &"--tag",
            &"podman-check",
            &"--cmd",
            &"/bin/true",
        ],
    )
    .ok();
    let archive = dir.path().join("image.tar");
    let tag = format!("solum-test-{}", std::process::id());
    solum(
        &store,
        &[
            &"push",
            &"podman-check",
            &format!("docker-archive:{}:{tag}:1", archive.display()),
        ],
    )
    .ok();
    let loaded = program("podman", &[&"load", &"-i", &archive]).ok();
    assert!(loaded.stdout.contains(&tag), "{}", loaded.text());
    let digest_of_config = program(
        "podman",
        &[
            &"image",
            &"inspect",
            &"--format",
            &"{{.Id}}",
            &format!("localhost/{tag}:1"),
        ],
    )
    .ok();
    let inspect = solum(&store, &[&"inspect", &"podman-check"]).ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let config_digest = json["manifest"]["config"]["digest"].as_str().unwrap();
    assert_eq!(
        format!("sha256:{}", digest_of_config.stdout.trim()),
        config_digest,
        "podman's image id is our config digest"
    );
    program("podman", &[&"rmi", &format!("localhost/{tag}:1")]);
}

#[test]
fn import_is_reproducible_and_oci_archive_round_trips() {
    let dir = temp_dir();
    let tree = dir.path().join("tree");
    every_kind_rootfs(&tree);
    let first = solum(&dir.path().join("s1"), &[&"import", &tree, &"--tag", &"a"]).ok();
    let second = solum(&dir.path().join("s2"), &[&"import", &tree, &"--tag", &"b"]).ok();
    assert_eq!(first.last_line(), second.last_line());
    assert!(first.last_line().starts_with("sha256:"));

    let archive = dir.path().join("a.tar");
    let pushed = solum(
        &dir.path().join("s1"),
        &[
            &"push",
            &"a",
            &format!("oci-archive:{}:x", archive.display()),
        ],
    )
    .ok();
    assert_eq!(pushed.last_line(), first.last_line());
    let back = solum(
        &dir.path().join("s3"),
        &[
            &"push",
            &format!("oci-archive:{}:x", archive.display()),
            &"back",
        ],
    )
    .ok();
    assert_eq!(back.last_line(), first.last_line());
    let images = solum(&dir.path().join("s3"), &[&"images", &"--json"]).ok();
    assert!(images.stdout.contains("\"back\""), "{}", images.text());
    // skopeo reads the archive too.
    program(
        "skopeo",
        &[&"inspect", &format!("oci-archive:{}:x", archive.display())],
    )
    .ok();
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
