//! End-to-end tests of the sandbox through the `solum-sandbox-probe` binary, on a busybox
//! root filesystem made from the host's static busybox. Run as root, they also run their own
//! binary again as the unprivileged user `tester` (see `tests/setup-host.sh`), so every test
//! passes in both worlds.

mod common;

use common::*;
use runtime::{
    BindMount, IdMapKind, IdMapPolicy, Network, OutputEvent, RootFs, SandboxSpec, Stream,
    Termination,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---- functional ----

#[test]
fn exit_codes_are_returned() {
    for code in [0, 1, 7, 255] {
        let r = run(&sh(RootFs::Dir(rootfs().into()), &format!("exit {code}")));
        assert_eq!(r.outcome.termination, Termination::Exited(code));
    }
}

#[test]
fn a_signal_is_returned() {
    let r = run(&sh(RootFs::Dir(rootfs().into()), "kill -TERM $$"));
    assert_eq!(r.outcome.termination, Termination::Signaled(libc::SIGTERM));
}

#[test]
fn stdout_and_stderr_stream_as_lines_and_bytes() {
    let r = run(&sh(
        RootFs::Dir(rootfs().into()),
        "echo out1; echo err1 >&2; sleep 0.2; echo out2; printf partial",
    ));
    assert_eq!(r.stdout, "out1\nout2\npartial");
    assert_eq!(r.stderr, "err1\n");
    let lines: Vec<(Stream, String, Duration)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Line {
                stream,
                line,
                elapsed,
                ..
            } => Some((*stream, line.clone(), *elapsed)),
            OutputEvent::Bytes { .. } => None,
        })
        .collect();
    let out: Vec<&str> = lines
        .iter()
        .filter(|l| l.0 == Stream::Stdout)
        .map(|l| l.1.as_str())
        .collect();
    assert_eq!(out, ["out1", "out2", "partial"]);
    // Lines arrive as written, not at the end: out2 comes after the sleep.
    assert!(
        lines[2].2 > lines[0].2 + Duration::from_millis(150),
        "{lines:?}"
    );
}

#[test]
fn env_cwd_hostname_and_user_are_the_specs() {
    let mut spec = sh(
        RootFs::Dir(rootfs().into()),
        "echo $FOO:$HOME; pwd; hostname; id -u; id -g",
    );
    spec.env = vec!["FOO=bar".into(), "HOME=/root".into(), "PATH=/bin".into()];
    spec.cwd = "/etc".into();
    spec.hostname = "builder".into();
    let r = run(&spec);
    assert_eq!(r.stdout, "bar:/root\n/etc\nbuilder\n0\n0\n");
}

#[test]
fn a_missing_command_exits_127() {
    let mut spec = SandboxSpec::new(RootFs::Dir(rootfs().into()), vec!["no-such-cmd".into()]);
    spec.limits.timeout = Some(Duration::from_secs(10));
    let r = run(&spec);
    assert_eq!(r.outcome.termination, Termination::Exited(127));
    assert!(r.stderr.contains("no-such-cmd"), "{}", r.stderr);
}

#[test]
fn bind_mounts_read_write_and_read_only() {
    let cache = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("main.py"), "print(1)\n").unwrap();
    let mut spec = sh(
        RootFs::Dir(rootfs().into()),
        "echo kept > /solum/cache/f && cat /src/main.py && (echo x > /src/new) 2>/dev/null; echo ro=$?",
    );
    spec.mounts = vec![
        BindMount {
            source: cache.path().into(),
            target: "/solum/cache".into(),
            read_only: false,
            work: None,
        },
        BindMount {
            source: src.path().into(),
            target: "/src".into(),
            read_only: true,
            work: None,
        },
    ];
    // A prepared-directory root gets its missing mount points created (and listed): use a
    // copy so the shared busybox root stays clean.
    let ovl = Overlay::new();
    spec.rootfs = ovl.rootfs();
    let r = run(&spec);
    assert_eq!(r.stdout, "print(1)\nro=1\n", "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(cache.path().join("f")).unwrap(),
        "kept\n"
    );
    assert!(!src.path().join("new").exists());
    // The mount points came from the bottom layer: nothing in the upper dir.
    assert!(!ovl.upper().join("solum").exists() && !ovl.upper().join("src").exists());
    assert!(r.outcome.created_mount_points.is_empty());
}

#[test]
fn prepared_directory_lists_the_mount_points_it_created() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(root.join("bin")).unwrap();
    std::fs::copy(rootfs().join("bin/busybox"), root.join("bin/sh")).unwrap();
    let r = run(&sh(RootFs::Dir(root.clone()), "exit 0"));
    assert!(r.outcome.success());
    let mut created = r.outcome.created_mount_points.clone();
    created.sort();
    let want: Vec<PathBuf> = ["/dev", "/proc", "/sys", "/tmp"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(created, want);
}

#[test]
fn overlay_writes_go_to_upper_and_deletes_become_whiteouts() {
    let ovl = Overlay::new();
    let r = run(&sh(
        ovl.rootfs(),
        "echo new > /new.txt && rm /etc/group && echo changed >> /etc/passwd && ls /etc",
    ));
    assert!(r.outcome.success(), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(ovl.upper().join("new.txt")).unwrap(),
        "new\n"
    );
    assert!(!rootfs().join("new.txt").exists());
    assert!(rootfs().join("etc/group").exists(), "lower untouched");
    assert!(!std::fs::read_to_string(rootfs().join("etc/passwd"))
        .unwrap()
        .contains("changed"));
    let wh = std::fs::symlink_metadata(ovl.upper().join("etc/group")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "a 0/0 whiteout"
    );
    // Nothing else was put into the upper dir (no mount points).
    let mut top: Vec<String> = std::fs::read_dir(ovl.upper())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["etc", "new.txt"]);
}

#[test]
fn single_id_map_works_without_helpers() {
    let ovl = Overlay::new();
    let mut spec = sh(ovl.rootfs(), "id -u; echo x > /f; cat /proc/self/uid_map");
    spec.id_map = IdMapPolicy::Single;
    let r = run(&spec);
    assert!(r.outcome.success(), "{}", r.stderr);
    assert_eq!(r.outcome.id_map, IdMapKind::Single);
    assert!(r.stdout.starts_with("0\n"));
    assert_eq!(
        r.stdout.lines().nth(1).unwrap().split_whitespace().nth(2),
        Some("1")
    );
    assert_eq!(
        std::fs::metadata(ovl.upper().join("f")).unwrap().uid(),
        euid()
    );
}

#[test]
fn the_sandbox_sees_only_its_own_mounts_and_processes() {
    let r = run(&sh(
        RootFs::Dir(rootfs().into()),
        "cat /proc/self/mountinfo; echo ---; ls /proc | grep -c '^[0-9]'",
    ));
    let (mounts, procs) = r.stdout.split_once("---\n").unwrap();
    assert!(
        !mounts.contains(rootfs().parent().unwrap().to_str().unwrap())
            || mounts.lines().next().unwrap().contains(" / ")
    );
    assert!(
        !mounts.contains("/work") && !mounts.contains("solum-sandbox."),
        "{mounts}"
    );
    // init, sh, ls, grep at most.
    assert!(procs.trim().parse::<u32>().unwrap() <= 4, "{procs}");
}

// ---- hostile ----

#[test]
fn hostile_cannot_reach_the_host_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = run(&sh(
        RootFs::Dir(rootfs().into()),
        &format!("echo hello | nc -w 2 127.0.0.1 {port}; echo rc=$?; ip -o link | grep -c ': '"),
    ));
    assert!(r.stdout.contains("rc=1"), "{} {}", r.stdout, r.stderr);
    assert!(matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
    assert!(r.stdout.ends_with("1\n"), "only lo: {}", r.stdout);
}

#[test]
fn host_network_reaches_the_host_loopback() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut spec = sh(
        RootFs::Dir(rootfs().into()),
        &format!("echo hello | nc -w 2 127.0.0.1 {port}; echo rc=$?"),
    );
    spec.network = Network::Host;
    let ovl = Overlay::new();
    spec.rootfs = ovl.rootfs();
    let t = std::thread::spawn(move || {
        use std::io::Read;
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf
    });
    let r = run(&spec);
    assert!(r.stdout.contains("rc=0"), "{} {}", r.stdout, r.stderr);
    assert_eq!(t.join().unwrap(), "hello\n");
}

#[test]
fn hostile_cannot_read_or_write_host_paths() {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    std::fs::set_permissions(secret_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o666)).unwrap();
    let s = secret.display();
    let ovl = Overlay::new();
    let r = run(&sh(
        ovl.rootfs(),
        &format!(
            "cat {s}; mkdir -p $(dirname {s}); echo pwned > {s}; \
             cat /proc/1/root{s}; ls /proc/1/cwd/ >/dev/null; \
             cd /; for i in 1 2 3 4 5 6 7 8; do cd ..; done; cat .{s}; echo done"
        ),
    ));
    assert!(!r.stdout.contains("host secret"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret\n");
}

#[test]
fn hostile_cannot_mount_or_unmask() {
    let before = host_mounts();
    let r = run(&sh(
        RootFs::Dir(rootfs().into()),
        "mount -t tmpfs none /tmp 2>&1; echo m=$?; umount /proc/sys 2>&1; echo u=$?; \
         mount -o remount,rw /proc/sys 2>&1; echo r=$?; echo 1 > /proc/sys/kernel/sysrq; echo w=$?; \
         grep CapEff /proc/self/status",
    ));
    for k in ["m=0", "u=0", "r=0", "w=0"] {
        assert!(!r.stdout.contains(k), "{k}: {}", r.stdout);
    }
    assert_eq!(before, host_mounts());
}

#[test]
fn hostile_fork_bomb_is_limited() {
    let mut spec = sh(
        RootFs::Dir(rootfs().into()),
        &format!(
            "(i=0; while [ $i -lt 10000 ]; do sleep {m} & i=$((i+1)); done) 2>/dev/null; \
             set -- /proc/[0-9]*; echo $#",
            m = marker(30)
        ),
    );
    spec.limits.max_processes = Some(64);
    spec.limits.timeout = Some(Duration::from_secs(60));
    let r = run(&spec);
    assert!(r.outcome.success(), "{:?} {}", r.outcome, r.stderr);
    let n: u32 = r.stdout.trim().parse().unwrap();
    // RLIMIT_NPROC for a mapped non-root user; pid_max (floor 301) for kuid 0.
    let cap = if euid() == 0 { 301 } else { 66 };
    assert!(n <= cap, "{n} processes");
    assert!(host_processes_with(&format!("sleep {}", marker(30))).is_empty());
}

#[test]
fn hostile_endless_file_is_limited() {
    let ovl = Overlay::new();
    let mut spec = sh(ovl.rootfs(), "cat /dev/zero > /big; echo rc=$?");
    spec.limits.max_file_size = Some(1 << 20);
    let r = run(&spec);
    // 128 + SIGXFSZ
    assert!(r.stdout.contains("rc=153"), "{} {}", r.stdout, r.stderr);
    assert!(std::fs::metadata(ovl.upper().join("big")).unwrap().len() <= 1 << 20);
}

#[test]
fn hostile_sleep_forever_is_killed_at_the_timeout_with_nothing_left() {
    let before = host_mounts();
    let mut spec = sh(
        RootFs::Dir(rootfs().into()),
        &format!(
            "sleep {a} & sleep {a} & echo started; sleep {a}",
            a = marker(11)
        ),
    );
    spec.limits.timeout = Some(Duration::from_millis(800));
    let r = run(&spec);
    assert_eq!(r.outcome.termination, Termination::TimedOut);
    assert!(r.outcome.elapsed < Duration::from_secs(5));
    assert_eq!(r.stdout, "started\n");
    assert!(host_processes_with(&format!("sleep {}", marker(11))).is_empty());
    assert_eq!(before, host_mounts());
}

#[test]
fn cancel_kills_everything() {
    let cancel = runtime::CancelHandle::new();
    let c2 = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c2.cancel();
    });
    let spec = sh(
        RootFs::Dir(rootfs().into()),
        &format!("sleep {a} & sleep {a}", a = marker(12)),
    );
    let outcome = runtime::run_with_cancel(&spec, Path::new(PROBE), &cancel, |_| {}).unwrap();
    t.join().unwrap();
    assert_eq!(outcome.termination, Termination::Cancelled);
    assert!(host_processes_with(&format!("sleep {}", marker(12))).is_empty());
}

#[test]
fn hostile_kills_its_parent_and_init() {
    let r = run(&sh(
        RootFs::Dir(rootfs().into()),
        "kill -9 $PPID; kill -9 1; kill -9 -1 2>/dev/null; echo still; exit 4",
    ));
    // `kill -9 -1` kills the shell itself (everything but init): either way nothing escapes
    // and the sandbox reports.
    assert!(matches!(
        r.outcome.termination,
        Termination::Exited(4) | Termination::Signaled(9)
    ));
}

#[test]
fn hostile_daemon_dies_with_the_sandbox() {
    let r = run(&sh(
        RootFs::Dir(rootfs().into()),
        &format!(
            "setsid sh -c 'sleep {a}' </dev/null >/dev/null 2>&1 & \
             (sh -c 'sleep {a} &' &) ; echo spawned",
            a = marker(13)
        ),
    ));
    assert!(r.outcome.success());
    assert!(host_processes_with(&format!("sleep {}", marker(13))).is_empty());
}

#[test]
fn hostile_setuid_binary_gains_nothing() {
    // A setuid copy of the host's `id`, owned by the sandbox's root, run as user 1000, with
    // the host's libraries bound read-only.
    let ids = runtime::idmap::HostIds::current();
    if runtime::idmap::plan(&ids, IdMapPolicy::Auto, 1000, 1000).kind == IdMapKind::Single {
        eprintln!("skipped: a single-id map has no user 1000");
        return;
    }
    let ovl = Overlay::new();
    std::fs::create_dir(ovl.upper().join("bin")).unwrap();
    let suid = ovl.upper().join("bin/suid-id");
    std::fs::copy("/usr/bin/id", &suid).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut spec = sh(
        ovl.rootfs(),
        "/bin/suid-id -u; grep NoNewPrivs /proc/self/status",
    );
    spec.uid = 1000;
    spec.gid = 1000;
    for lib in ["/usr/lib", "/usr/lib64", "/lib64"] {
        if Path::new(lib).exists() {
            spec.mounts.push(BindMount {
                source: lib.into(),
                target: if lib == "/lib64" {
                    "/lib64".into()
                } else {
                    lib.into()
                },
                read_only: true,
                work: None,
            });
        }
    }
    spec.mounts.push(BindMount {
        source: "/usr/lib".into(),
        target: "/lib".into(),
        read_only: true,
        work: None,
    });
    spec.mounts.dedup();
    let r = run(&spec);
    assert!(r.stdout.starts_with("1000\n"), "{} {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("NoNewPrivs:\t1"));
}

#[test]
fn killing_the_caller_kills_the_sandbox_and_cleans_up() {
    let before = host_mounts();
    let m = marker(14);
    let mut child = std::process::Command::new(PROBE)
        .arg(rootfs())
        .args(["/bin/sh", "-c", &format!("sleep {m} & sleep {m}")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while host_processes_with(&format!("sleep {m}")).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sandbox never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The sandbox process got SIGTERM (PR_SET_PDEATHSIG), killed its init and cleaned up.
    while !host_processes_with(&format!("sleep {m}")).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "sandbox processes outlived the caller"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    while staging_dirs().iter().any(|(_, pid)| !pid_alive(*pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "a staging dir outlived the sandbox: {:?}",
            staging_dirs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(before, host_mounts());
}

/// Staging folders of this user (in the private folders of [`runtime::private`], in the
/// temp dir and in the one staging goes to) and the pid in their names.
fn staging_dirs() -> Vec<(PathBuf, i32)> {
    let dirs = [
        runtime::private::user_dir().unwrap(),
        runtime::private::user_dir_in(&runtime::private::fast_temp_dir()).unwrap(),
    ];
    let prefix = runtime::entry::STAGING_PREFIX;
    dirs.iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap().flatten())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.strip_prefix(prefix)?.split('.').next()?.parse().ok()?;
            Some((e.path(), pid))
        })
        .collect()
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn stale_staging_dirs_are_removed_on_the_next_start() {
    // A pid above the kernel's maximum never exists. A mode-000 folder inside does not stop
    // the sweep.
    let stale = runtime::private::user_dir().unwrap().join(format!(
        "{}{}.abcdef",
        runtime::entry::STAGING_PREFIX,
        99_999_999
    ));
    let _ = std::fs::create_dir_all(stale.join("work"));
    std::fs::set_permissions(stale.join("work"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let r = run(&sh(RootFs::Dir(rootfs().into()), "true"));
    assert!(r.outcome.success());
    assert!(!stale.exists());
}

/// W03/W04: the staging and overlay probe folders had predictable names in the shared temp
/// dir (`solum-sandbox.<pid>`, `solum-overlay-probe.<pid>`): another user who made them
/// first broke the sandbox, or made the probe fail and so forced the copy fallback; and
/// each unprivileged probe left its folder behind (overlay's mode-000 `work`). With every
/// such name squatted for the next pids (and, as root, `solum-build-0` too), the probe and
/// a sandbox work, and nothing of ours is left.
#[test]
fn hostile_squatted_temp_names_break_nothing_and_no_probe_is_left() {
    let tmp = tempfile::Builder::new()
        .prefix("solum-rt-tmp")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let squatter = (euid() == 0)
        .then(|| nix::unistd::User::from_name("tester").ok().flatten())
        .flatten();
    if let Some(user) = &squatter {
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut names = vec![format!("solum-build-{}", euid())];
        for pid in last + 1..last + 400 {
            names.push(format!("solum-sandbox.{pid}"));
            names.push(format!("solum-overlay-probe.{pid}"));
        }
        for name in names {
            let d = tmp.path().join(name);
            std::fs::create_dir(&d).unwrap();
            nix::unistd::chown(&d, Some(user.uid), Some(user.gid)).unwrap();
        }
    }
    let info = std::process::Command::new(PROBE)
        .arg("--info")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("overlay in user namespace:  yes"),
        "{text}{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let spec_dir = tempfile::tempdir().unwrap();
    let spec_file = spec_dir.path().join("spec.json");
    std::fs::write(
        &spec_file,
        serde_json::to_vec(&sh(RootFs::Dir(rootfs().into()), "echo ok")).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new(PROBE)
        .arg("--spec")
        .arg(&spec_file)
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What is ours in the temp dir: at most our (empty) private folder.
    for entry in std::fs::read_dir(tmp.path()).unwrap().flatten() {
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        if meta.uid() != euid() {
            continue;
        }
        assert_eq!(
            entry.file_name().to_string_lossy(),
            format!("solum-build-{}", euid())
        );
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::read_dir(entry.path()).unwrap().count(),
            0,
            "left behind in {}",
            entry.path().display()
        );
    }
}

// ---- the same again as an unprivileged user ----

#[test]
fn all_of_this_also_passes_as_an_unprivileged_user() {
    rerun_as_tester();
}
