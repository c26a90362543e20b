//! Issue 10, W02: builds and `run` had no process or memory limit (a fork bomb reached
//! 3,000 processes, the address space was unlimited) while `info` advertised one. Every
//! sandbox now gets default limits (`--pids-limit`, `--memory` change them), and `info`
//! says what holds. As root and as `tester`.

mod support;

use std::path::Path;
use support::*;

fn store_with_busybox(dir: &Path) -> std::path::PathBuf {
    let store = dir.join("store");
    busybox_store(dir, &store, &[]);
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
    let run = Cmd::solum(&store)
        .args([
            "run",
            "base/busybox",
            "--",
            "sh",
            "-c",
            "ulimit -u; ulimit -v",
        ])
        .run()
        .ok();
    let want = format!("4096\n{}\n", mem_total_kib());
    assert_eq!(run.stdout, want, "{}", run.text());
    let custom = Cmd::solum(&store)
        .args([
            "run",
            "base/busybox",
            "--pids-limit",
            "100",
            "--memory",
            "512m",
            "--",
            "sh",
            "-c",
            "ulimit -u; ulimit -v",
        ])
        .run()
        .ok();
    assert_eq!(custom.stdout, format!("100\n{}\n", 512 * 1024));
    let none = Cmd::solum(&store)
        .args([
            "run",
            "base/busybox",
            "--pids-limit",
            "0",
            "--memory",
            "0",
            "--",
            "sh",
            "-c",
            "ulimit -v",
        ])
        .run()
        .ok();
    assert_eq!(none.stdout, "unlimited\n");
    Cmd::solum(&store)
        .args(["run", "base/busybox", "--memory", "lots", "--", "true"])
        .run()
        .fails_with(2);
    let info = Cmd::solum(&store).arg("info").run().ok();
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
    let run = Cmd::solum(&store)
        .args([
            "run",
            "base/busybox",
            "--pids-limit",
            "64",
            "--timeout",
            "120",
            "--",
            "sh",
            "-c",
        ])
        .arg(bomb)
        .run()
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
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(&badger)
        .run()
        .ok();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        "version: 1\nname: bomb\nbadger: badgers/bomb\nsource: {repository: ./src}\n",
    )
    .unwrap();
    Cmd::solum(&store)
        .arg("build")
        .arg(dir.path().join("app.yaml"))
        .args(["--pids-limit", "64"])
        .run()
        .ok();
    let count = Cmd::solum(&store)
        .args(["run", "bomb", "--", "cat", "/app/count"])
        .run()
        .ok();
    let n: u32 = count.stdout.trim().parse().unwrap();
    assert!(n <= cap, "{n} processes in the build");
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
