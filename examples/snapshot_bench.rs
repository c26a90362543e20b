//! The `--isolation none` snapshot on a tree of many small files: a snapshot before, one
//! file changed, a snapshot after and their difference, timed, with the target (1 s for
//! 50,000 files) beside the figure. The tree is made once (untimed) and reused.
//!
//! Usage: snapshot_bench DIR [FILES=50000] [RUNS=5]

use solum_build::pipeline::snapshot::{self, SnapshotRules};
use std::path::Path;
use std::time::{Duration, Instant};

/// Files per folder of the generated tree.
const PER_DIR: usize = 100;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: snapshot_bench DIR [FILES] [RUNS]");
        std::process::exit(2);
    };
    let number =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (files, runs) = (number(2, 50_000), number(3, 5).max(1));
    let root = Path::new(dir);
    make_tree(root, files);
    let rules = SnapshotRules::for_root(root, &[], &[]);
    let mut times: Vec<Duration> = Vec::new();
    let mut entries = 0;
    for run in 0..runs {
        let started = Instant::now();
        let before = snapshot::take(root, &rules).expect("snapshot before");
        let changed = root.join("d0").join("f0");
        std::fs::write(&changed, format!("change {run}")).expect("change one file");
        let after = snapshot::take(root, &rules).expect("snapshot after");
        let changes = snapshot::changes(&before, &after);
        times.push(started.elapsed());
        assert_eq!(changes.len(), 2, "one file and its folder: {changes:?}");
        entries = after.len();
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "snapshot before + after + diff of {entries} entries, one file changed: median {:.0} ms of {runs} runs (target <= 1000 ms: {})",
        median.as_secs_f64() * 1000.0,
        if median <= Duration::from_secs(1) { "met" } else { "MISSED" }
    );
}

/// `files` files of a few bytes in folders of [`PER_DIR`], unless the tree is there.
fn make_tree(root: &Path, files: usize) {
    let marker = root.join(format!(".made-{files}"));
    if marker.exists() {
        return;
    }
    for index in 0..files {
        let dir = root.join(format!("d{}", index / PER_DIR));
        if index % PER_DIR == 0 {
            std::fs::create_dir_all(&dir).expect("make a folder");
        }
        std::fs::write(dir.join(format!("f{}", index % PER_DIR)), index.to_string())
            .expect("make a file");
    }
    std::fs::write(marker, "").expect("mark the tree made");
}
