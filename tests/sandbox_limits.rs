//! Issue 10, W02: builds and `run` had no process or memory limit (a fork bomb reached
//! 3,000 processes, the address space was unlimited) while `info` advertised one. Every
//! sandbox now gets default limits (`--pids-limit`, `--memory` change them), and `info`
//! says what holds. As root and as `tester`.

mod util;

use std::path::Path;
use util::*;

fn store_with_busybox(dir: &Path) -> std::path::PathBuf {
    let rootfs = dir.join("busybox");
    busybox_rootfs(&rootfs);
    let store = dir.join("store");
    solum(&store, &[&"import", &rootfs, &"--tag", &"base/busybox"]).ok();
    store
}

fn mem_total_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn run_gets_default_limits_and_info_names_them() {
    let dir = temp_dir();
    let store = store_with_busybox(dir.path());
    let run = solum(
        &store,
        &[
            &"run",
            &"base/busybox",
            &"--",
            &"sh",
            &"-c",
            &"ulimit -u; ulimit -v",
        ],
    )
    .ok();
    let want = format!("4096\n{}\n", mem_total_kib());
    assert_eq!(run.stdout, want, "{}", run.text());
    let custom = solum(
        &store,
        &[
            &"run",
            &"base/busybox",
            &"--pids-limit",
            &"100",
            &"--memory",
            &"512m",
            &"--",
            &"sh",
            &"-c",
            &"ulimit -u; ulimit -v",
        ],
    )
    .ok();
    assert_eq!(custom.stdout, format!("100\n{}\n", 512 * 1024));
    let none = solum(
        &store,
        &[
            &"run",
            &"base/busybox",
            &"--pids-limit",
            &"0",
            &"--memory",
            &"0",
            &"--",
            &"sh",
            &"-c",
            &"ulimit -v",
        ],
    )
    .ok();
    assert_eq!(none.stdout, "unlimited\n");
    solum(
        &store,
        &[
            &"run",
            &"base/busybox",
            &"--memory",
            &"lots",
            &"--",
            &"true",
        ],
    )
    .fails_with(2);
    let info = solum(&store, &[&"info"]).ok();
    assert!(info.stdout.contains("4096 processes"), "{}", info.text());
    assert!(
        info.stdout.contains("GiB of address space per process"),
        "{}",
        info.text()
    );
}

/// A fork bomb in a build and in `run` stops at the limit.
#[test]
fn hostile_fork_bomb_stops_at_the_pids_limit() {
    let dir = temp_dir();
    let store = store_with_busybox(dir.path());
    let bomb = "(i=0; while [ $i -lt 3000 ]; do sleep 60 & i=$((i+1)); done) 2>/dev/null; \
                set -- /proc/[0-9]*; echo $#";
    let run = solum(
        &store,
        &[
            &"run",
            &"base/busybox",
            &"--pids-limit",
            &"64",
            &"--timeout",
            &"120",
            &"--",
            &"sh",
            &"-c",
            &bomb,
        ],
    )
    .ok();
    let n: u32 = run.stdout.trim().parse().unwrap();
    // pid_max of the pid namespace has a floor of 301 (kuid 0 ignores RLIMIT_NPROC); an
    // unprivileged sandbox also has RLIMIT_NPROC of 64.
    let cap = if is_root() { 301 } else { 66 };
    assert!(n <= cap, "{n} processes");

    // The same in a build step, on a badger made from the busybox base.
    let badger = dir.path().join("bomb-badger");
    std::fs::create_dir_all(&badger).unwrap();
    std::fs::write(
        badger.join("badger.yaml"),
        "name: bomb\nversion: \"1\"\nfrom: base/busybox\n",
    )
    .unwrap();
    std::fs::write(
        badger.join("build.sh"),
        format!("#!/bin/sh\n{bomb} > /app/count\n"),
    )
    .unwrap();
    solum(&store, &[&"badger", &"build", &badger]).ok();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        "version: 1\nname: bomb\nbadger: badgers/bomb\nsource: {repository: ./src}\n",
    )
    .unwrap();
    solum(
        &store,
        &[
            &"build",
            &dir.path().join("app.yaml"),
            &"--pids-limit",
            &"64",
        ],
    )
    .ok();
    let count = solum(&store, &[&"run", &"bomb", &"--", &"cat", &"/app/count"]).ok();
    let n: u32 = count.stdout.trim().parse().unwrap();
    assert!(n <= cap, "{n} processes in the build");
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
