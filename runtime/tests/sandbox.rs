//! End-to-end tests of the sandbox through the `solum-sandbox-probe` binary, on a busybox
//! root filesystem made from the host's static busybox. Run as root, they also run their own
//! binary again as the unprivileged user `tester` (see `tests/setup-host.sh`), so every test
//! passes in both worlds.

use runtime::{
    BindMount, IdMapKind, IdMapPolicy, Network, OutputEvent, RootFs, SandboxSpec, Stream,
    Termination,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

const PROBE: &str = env!("CARGO_BIN_EXE_solum-sandbox-probe");
const NESTED: &str = "SOLUM_RUNTIME_TEST_NESTED";

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A busybox root filesystem shared by all tests of this process (read-only for them: tests
/// that write use it as an overlay lower).
fn rootfs() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("solum-rt-rootfs")
            .tempdir()
            .unwrap();
        let r = dir.path();
        std::fs::set_permissions(r, std::fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["bin", "etc", "root"] {
            std::fs::create_dir(r.join(d)).unwrap();
        }
        let bb = busybox().expect("busybox-static is installed (apt-get install busybox-static)");
        std::fs::copy(&bb, r.join("bin/busybox")).unwrap();
        let list = std::process::Command::new(&bb)
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
            }
        }
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
        std::fs::create_dir(r.join("tmp")).unwrap();
        std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        dir
    })
    .path()
}

/// An overlay over the busybox root with a fresh upper dir.
struct Overlay {
    dir: tempfile::TempDir,
}

impl Overlay {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("solum-rt-ovl")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("upper")).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        Overlay { dir }
    }

    fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    fn rootfs(&self) -> RootFs {
        RootFs::Overlay {
            lowers: vec![rootfs().to_path_buf()],
            upper: self.upper(),
            work: self.dir.path().join("work"),
        }
    }
}

fn sh(rootfs: RootFs, script: &str) -> SandboxSpec {
    let mut spec = SandboxSpec::new(rootfs, vec!["/bin/sh".into(), "-c".into(), script.into()]);
    spec.limits.timeout = Some(Duration::from_secs(30));
    spec
}

struct Ran {
    outcome: runtime::Outcome,
    stdout: String,
    stderr: String,
    events: Vec<OutputEvent>,
}

fn run(spec: &SandboxSpec) -> Ran {
    let mut events = Vec::new();
    let outcome = runtime::run(spec, Path::new(PROBE), |e| events.push(e))
        .unwrap_or_else(|e| panic!("sandbox failed: {}", runtime::process::chain(&e)));
    let text = |s: Stream| {
        events
            .iter()
            .filter_map(|e| match e {
                OutputEvent::Bytes { stream, data, .. } if *stream == s => {
                    Some(String::from_utf8_lossy(data).into_owned())
                }
                _ => None,
            })
            .collect::<String>()
    };
    Ran {
        stdout: text(Stream::Stdout),
        stderr: text(Stream::Stderr),
        outcome,
        events,
    }
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Host processes whose command line contains `marker`.
fn host_processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) && !cmd.contains("solum-sandbox-probe") {
                found.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// A sleep duration unique to this test process and `n`, to find its processes on the host
/// (the root run and the `tester` run go on at the same time).
fn marker(n: u32) -> String {
    format!("{}{:02}{}", 7, n, std::process::id())
}

fn host_mounts() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

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
            _ => None,
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

/// Staging folders of this user (in the private folder of [`runtime::private`]) and the
/// pid in their names.
fn staging_dirs() -> Vec<(PathBuf, i32)> {
    let dir = runtime::private::user_dir().unwrap();
    let prefix = runtime::entry::STAGING_PREFIX;
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
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

// ---- hostile images against the host's paths (issue 10) ----

/// A private copy of the busybox root, for a test to plant symlinks in: `DIR/root`.
fn root_copy() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("solum-rt-copy")
        .tempdir()
        .unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(dir.path().join("root"))
        .status()
        .unwrap();
    assert!(st.success());
    // Other tests run on the shared root as a prepared directory, which adds mount points.
    for d in ["dev", "proc", "sys"] {
        let _ = std::fs::remove_dir(dir.path().join("root").join(d));
    }
    dir
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// What /dev's setup would make, had it followed the image's `/dev` on the host.
const DEV_NAMES: &[&str] = &[
    "null", "zero", "ptmx", "pts", "shm", "fd", "stdin", "stderr",
];

/// B09: an image whose `/dev` is a symlink to `/` made the setup create device nodes,
/// `pts`, `shm` and symlinks in the host's `/`. The mount point now resolves inside the
/// root, to the root itself, which is refused; the host's `/` is as it was.
#[test]
fn hostile_dev_symlink_to_root_touches_nothing_on_the_host() {
    let before = names(Path::new("/"));
    let dir = root_copy();
    let root = dir.path().join("root");
    std::os::unix::fs::symlink("/", root.join("dev")).unwrap();
    let ovl = tempfile::tempdir().unwrap();
    for d in ["upper", "work"] {
        std::fs::create_dir(ovl.path().join(d)).unwrap();
    }
    let overlay = RootFs::Overlay {
        lowers: vec![root.clone()],
        upper: ovl.path().join("upper"),
        work: ovl.path().join("work"),
    };
    for rootfs in [RootFs::Dir(root.clone()), overlay] {
        let err = runtime::run(&sh(rootfs, "true"), Path::new(PROBE), |_| {}).unwrap_err();
        let msg = runtime::process::chain(&err);
        assert!(msg.contains("/dev leads to the root itself"), "{msg}");
    }
    assert_eq!(before, names(Path::new("/")));
    for n in DEV_NAMES {
        assert!(!root.join(n).exists(), "{n} made in the image's root");
    }
}

/// B09: with `/dev -> /proc/self/cwd` the setup made its `/dev` in the caller's working
/// directory. It now resolves inside the root (`ROOT/proc/self/cwd`): the caller's
/// directory stays empty, as root and as an unprivileged user.
#[test]
fn hostile_dev_symlink_to_proc_self_cwd_touches_nothing_on_the_host() {
    let dir = root_copy();
    let root = dir.path().join("root");
    std::os::unix::fs::symlink("/proc/self/cwd", root.join("dev")).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let spec_file = dir.path().join("spec.json");
    std::fs::write(
        &spec_file,
        serde_json::to_vec(&sh(RootFs::Dir(root.clone()), "true")).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new(PROBE)
        .arg("--spec")
        .arg(&spec_file)
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(
        names(cwd.path()).is_empty(),
        "made in the caller's cwd: {:?} ({})",
        names(cwd.path()),
        String::from_utf8_lossy(&out.stderr)
    );
    // What was made went into the image, under the path the link names there.
    assert!(root.join("proc/self/cwd").is_dir());
}

/// A chain `NAME -> /c1 -> … -> /c41 -> TARGET` of 42 symlinks in `root`.
fn plant_chain(root: &Path, name: &str, target: &Path) {
    std::os::unix::fs::symlink("/c1", root.join(name)).unwrap();
    for i in 1..=40 {
        std::os::unix::fs::symlink(format!("/c{}", i + 1), root.join(format!("c{i}"))).unwrap();
    }
    std::os::unix::fs::symlink(target, root.join("c41")).unwrap();
}

/// B10: past 40 symlinks the old resolver joined the rest literally and the kernel then
/// followed it on the host: `/etc` as a long chain to `/outside/D` with the host network
/// created `/outside/D/hosts`, and the same for the `/solum/cache` bind target. Both are
/// refused now (`ELOOP`), and nothing is made outside.
#[test]
fn hostile_symlink_chain_past_40_hops_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let dir = root_copy();
    let root = dir.path().join("root");
    std::fs::remove_dir_all(root.join("etc")).unwrap();
    plant_chain(&root, "etc", outside.path());
    let mut spec = sh(RootFs::Dir(root.clone()), "true");
    spec.network = Network::Host;
    let err = runtime::run(&spec, Path::new(PROBE), |_| {}).unwrap_err();
    let msg = runtime::process::chain(&err);
    assert!(msg.contains("symbolic links"), "{msg}");
    assert!(
        names(outside.path()).is_empty(),
        "{:?}",
        names(outside.path())
    );

    // The same chain on the way to a bind target, without the host network.
    let cache = tempfile::tempdir().unwrap();
    let mut spec = sh(RootFs::Dir(root.clone()), "true");
    spec.mounts.push(BindMount {
        source: cache.path().into(),
        target: "/etc/solum/cache".into(),
        read_only: false,
        work: None,
    });
    let err = runtime::run(&spec, Path::new(PROBE), |_| {}).unwrap_err();
    let msg = runtime::process::chain(&err);
    assert!(msg.contains("symbolic links"), "{msg}");
    assert!(
        names(outside.path()).is_empty(),
        "{:?}",
        names(outside.path())
    );
}

/// B06 (inside): the writable `/solum/cache` bind is `nosuid,nodev`, so a setuid file a
/// build leaves there elevates nothing, in this sandbox or the next.
#[test]
fn hostile_cache_bind_is_nosuid_and_nodev() {
    let cache = tempfile::tempdir().unwrap();
    let ovl = Overlay::new();
    let mut spec = sh(
        ovl.rootfs(),
        "awk '$5 == \"/solum/cache\" { print $6 }' /proc/self/mountinfo",
    );
    spec.mounts.push(BindMount {
        source: cache.path().into(),
        target: "/solum/cache".into(),
        read_only: false,
        work: None,
    });
    let r = run(&spec);
    assert!(r.outcome.success(), "{}", r.stderr);
    let opts: Vec<&str> = r.stdout.trim().split(',').collect();
    assert!(
        opts.contains(&"rw") && opts.contains(&"nosuid") && opts.contains(&"nodev"),
        "{}",
        r.stdout
    );
}

/// W15: the sandbox's mountinfo showed the host paths of the store (overlay's lowerdir,
/// upperdir, workdir options) and of the bound cache folder (a bind's root field). Overlay
/// layers are named through short links now, and a writable cache with a work folder is an
/// overlay over it: none of those host paths shows, and the cache still writes through.
#[test]
fn mountinfo_shows_no_host_paths_of_the_layers_or_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir_in(cache.path().parent().unwrap()).unwrap();
    let ovl = Overlay::new();
    let mut spec = sh(
        ovl.rootfs(),
        "cat /proc/self/mountinfo; echo kept > /solum/cache/f; mkdir -p /solum/cache/d/e; \
         mv /solum/cache/d /solum/cache/d2; rm -r /solum/cache/old",
    );
    std::fs::create_dir_all(cache.path().join("old/x")).unwrap();
    spec.mounts.push(BindMount {
        source: cache.path().into(),
        target: "/solum/cache".into(),
        read_only: false,
        work: Some(work.path().into()),
    });
    let r = run(&spec);
    assert!(r.outcome.success(), "{}", r.stderr);
    let cache_line = r
        .stdout
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/solum/cache"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        cache_line.contains("nosuid") && cache_line.contains("nodev"),
        "{cache_line}"
    );
    for host in [rootfs(), ovl.dir.path(), cache.path(), work.path()] {
        let host = host.to_string_lossy();
        assert!(!r.stdout.contains(&*host), "{host} shows in\n{}", r.stdout);
    }
    assert_eq!(
        std::fs::read_to_string(cache.path().join("f")).unwrap(),
        "kept\n"
    );
    assert!(cache.path().join("d2/e").is_dir());
    assert!(!cache.path().join("old").exists());
    // Overlay's mode-000 scratch is not left in the work folder.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

// ---- the same again as an unprivileged user ----

#[test]
fn all_of_this_also_passes_as_an_unprivileged_user() {
    if euid() != 0 || std::env::var_os(NESTED).is_some() {
        return;
    }
    if nix::unistd::User::from_name("tester")
        .ok()
        .flatten()
        .is_none()
    {
        eprintln!("skipped: no user `tester` (run runtime/tests/setup-host.sh)");
        return;
    }
    let me = std::env::current_exe().unwrap();
    for p in [me.as_path(), Path::new(PROBE)] {
        for a in p.ancestors().skip(1) {
            let mode = std::fs::metadata(a).unwrap().permissions().mode();
            if mode & 0o005 != 0o005 {
                std::fs::set_permissions(a, std::fs::Permissions::from_mode(mode | 0o005)).unwrap();
            }
        }
    }
    let out = std::process::Command::new("runuser")
        .args(["-u", "tester", "--", "env", &format!("{NESTED}=1")])
        .arg(&me)
        .args(["--test-threads", "2"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "as tester:\n{text}");
    println!("{text}");
}
