//! Measures the registry client: `make DIR MB [LAYERS]` writes an image of incompressible
//! files into an OCI layout (tag `bench`), `push DIR HOST/REPO:TAG` pushes it over plain
//! HTTP and prints the elapsed time. Run under `/usr/bin/time -v` for peak RSS.

use solum_build::image::media;
use solum_build::layer::{write_tree, LayerCompression, WriteOptions};
use solum_build::registry::{push, NoProgress, RegistryOptions, RegistryTarget};
use solum_build::store::image::manifest_descriptor;
use solum_build::store::Layout;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

fn noise_file(path: &Path, seed: u64, len: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut left = len;
    while left > 0 {
        buf.clear();
        while buf.len() < (1 << 16) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            buf.extend_from_slice(&state.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        file.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
}

fn make(dir: &Path, megabytes: u64, layers: u64) {
    let layout = Layout::open_or_create(dir).unwrap();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..layers {
        let tree = tempfile::tempdir().unwrap();
        noise_file(&tree.path().join("data"), i + 1, (megabytes << 20) / layers);
        let blob = layout.begin_blob().unwrap();
        let options = WriteOptions {
            compression: LayerCompression::Gzip,
            epoch: Some(0),
            rootless: false,
            subordinate_ids: None,
        };
        let digests = write_tree(tree.path(), &options, blob.file().unwrap()).unwrap();
        blob.commit(&digests.digest).unwrap();
        descriptors.push(serde_json::json!({
            "mediaType": digests.media_type, "digest": digests.digest.to_string(), "size": digests.size,
        }));
        diff_ids.push(digests.diff_id.to_string());
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = layout.put_bytes(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": descriptors,
    }))
    .unwrap();
    layout.put_bytes(&manifest).unwrap();
    layout
        .tag("bench", &manifest_descriptor(&manifest, None))
        .unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("make") => make(
            Path::new(&args[2]),
            args[3].parse().unwrap(),
            args.get(4).map_or(1, |n| n.parse().unwrap()),
        ),
        Some("push") => {
            let layout = Layout::open(Path::new(&args[2])).unwrap();
            let image = layout.resolve(Some("bench")).unwrap();
            let reference: solum_build::image::ImageReference =
                format!("docker://{}", args[3]).parse().unwrap();
            let target = RegistryTarget::try_from(&reference).unwrap();
            let options = RegistryOptions {
                plain_http: true,
                ..RegistryOptions::default()
            };
            let started = Instant::now();
            let digest = push(&layout, &image, &target, &options, &NoProgress).unwrap();
            println!("{digest} {:.3}s", started.elapsed().as_secs_f64());
        }
        _ => {
            eprintln!("usage: registry_push make DIR MB [LAYERS] | push DIR HOST/REPO:TAG");
            std::process::exit(2);
        }
    }
}
