//! Issue 12, item 9: `run` had no way to publish a port but `--network host`. `run -p
//! [IP:]HOST:CONTAINER` now gives the command a network of its own through slirp4netns with
//! the host port forwarded into it: a busybox httpd and a built DU are fetched from the host
//! through 127.0.0.1; a DU that declares `ExposedPorts` gets a hint when run without `-p`;
//! a malformed `-p`, `-p` with `--network host` and a host port in use are refused before
//! the command runs; slirp4netns does not outlive a run that is killed, timed out or
//! interrupted. As root and again as `tester`.
//!
//! A rootless user needs `/dev/net/tun` open to it (Debian's default mode 0666; `.ci/run`
//! restores it). Where it is not, off CI, the tests that need the network check the error
//! that says so instead, and say on stderr what they skipped; on CI they fail.

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::http::fetch_until;
use support::*;

/// How long a published port may take to serve: slirp4netns listens on the host port
/// before the command does, and accepts and closes connections until then.
const PATIENCE: Duration = Duration::from_secs(30);

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The live slirp4netns processes whose API socket lies under `dir` (the run's TMPDIR).
fn slirp_under(dir: &Path) -> Vec<i32> {
    let dir = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_slirp = args.first().is_some_and(|a| a.ends_with("slirp4netns"));
        // A zombie has exited; only its parent's wait is missing.
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z');
        if is_slirp && !zombie && args.iter().any(|a| a.contains(&dir)) {
            found.push(pid);
        }
    }
    found
}

/// Asserts that no slirp4netns of a run with TMPDIR `dir` is left, after a grace of 5 s.
fn assert_no_slirp_left(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !slirp_under(dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        slirp_under(dir),
        Vec::<i32>::new(),
        "slirp4netns outlived the run"
    );
}

/// A fresh store with `base/busybox`, and a private TMPDIR for the runs (it names their
/// slirp4netns processes).
struct Setup {
    dir: tempfile::TempDir,
    store: PathBuf,
    tmp: PathBuf,
}

fn setup(badgers: &[&str]) -> Setup {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, badgers);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    Setup { dir, store, tmp }
}

impl Setup {
    fn run(&self) -> Cmd {
        Cmd::solum(&self.store).env("TMPDIR", &self.tmp).arg("run")
    }

    /// Whether this user can have the user-mode network. When it cannot (a rootless user
    /// and a `/dev/net/tun` closed to it), off CI, checks the error `run -p` gives, says
    /// what is skipped and returns false; on CI fails.
    fn user_mode_network(&self, test: &str) -> bool {
        let open = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun");
        let Err(e) = open else { return true };
        let refused = self
            .run()
            .args(["-p", &format!("{}:80", free_port()), "base/busybox", "--"])
            .args(["echo", "the command ran"])
            .run()
            .fails_with(1);
        assert!(
            refused.stderr.contains("/dev/net/tun") && refused.stderr.contains("chmod 0666"),
            "{}",
            refused.text()
        );
        assert!(
            !refused.stdout.contains("the command ran"),
            "{}",
            refused.text()
        );
        let reason = format!("/dev/net/tun is closed to this user ({e}); .ci/run opens it");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: {reason}: on CI the user-mode network must work"
        );
        let _ = writeln!(std::io::stderr(), "skipped {test}: {reason}");
        false
    }
}

#[test]
fn a_published_port_of_busybox_httpd_is_served_on_the_host() {
    let s = setup(&[]);
    if !s.user_mode_network("a_published_port_of_busybox_httpd_is_served_on_the_host") {
        return;
    }
    let port = free_port();
    let mut child = s
        .run()
        .args([
            "--timeout",
            "120",
            "-p",
            &format!("{port}:8080"),
            "base/busybox",
        ])
        .args(["--", "sh", "-c"])
        .arg("echo served-through-slirp > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
        .spawn();
    let response = fetch_until(port, "/index.html", "served-through-slirp", PATIENCE);
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert_eq!(
        slirp_under(&s.tmp).len(),
        1,
        "one slirp4netns serves the run"
    );
    // Killed outright: the sandbox's outer process loses its caller and ends the sandbox,
    // slirp4netns with it.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_slirp_left(&s.tmp);
}

#[test]
fn a_du_that_exposes_a_port_gets_a_hint_and_serves_it_when_published() {
    let s = setup(&["shell"]);
    let source = s.dir.path().join("web");
    std::fs::create_dir_all(source.join("www")).unwrap();
    std::fs::write(source.join("www/index.html"), "hello from the DU\n").unwrap();
    std::fs::write(source.join("build"), "#!/bin/sh\ntrue\n").unwrap();
    std::fs::set_permissions(source.join("build"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        s.dir.path().join("web.yaml"),
        "version: 1\nname: web\nbadger: badgers/shell\nsource:\n  repository: ./web\n\
         workflow_config:\n  run_cmd: httpd -f -p 8080 -h /app/www\nports: [8080]\n",
    )
    .unwrap();
    Cmd::solum(&s.store)
        .args(["build", "web.yaml"])
        .current_dir(s.dir.path())
        .run()
        .ok();

    let hint = "hint: the image listens on 8080/tcp; publish it with -p 8080:8080";
    let ran = s.run().args(["web", "--", "true"]).run().ok();
    assert_eq!(ran.stderr.matches(hint).count(), 1, "{}", ran.text());
    // Not with -q, and not where the ports are the host's or published already.
    let published = format!("{}:8080", free_port());
    for args in [
        &["-q", "run", "web"][..],
        &["run", "--network", "host", "web"],
        &["run", "-p", published.as_str(), "web"],
    ] {
        if args.contains(&"-p") && !s.user_mode_network("the hint with -p") {
            continue;
        }
        let ran = Cmd::solum(&s.store)
            .env("TMPDIR", &s.tmp)
            .args(args)
            .args(["--", "true"])
            .run()
            .ok();
        assert!(!ran.stderr.contains("hint:"), "{args:?}: {}", ran.text());
    }

    if !s.user_mode_network("a_du_that_exposes_a_port_gets_a_hint_and_serves_it_when_published") {
        return;
    }
    // The DU's own command, published as the hint says (on a free port).
    let port = free_port();
    let mut child = s
        .run()
        .args(["--timeout", "120", "-p", &format!("{port}:8080"), "web"])
        .spawn();
    fetch_until(port, "/index.html", "hello from the DU", PATIENCE);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_slirp_left(&s.tmp);
}

#[test]
fn malformed_or_contradictory_publishing_is_refused_before_the_command_runs() {
    let s = setup(&[]);
    for bad in ["8080", "8080:http", "80:80/sctp", "localhost:80:80", "0:80"] {
        let refused = s
            .run()
            .args(["-p", bad, "base/busybox", "--", "echo", "the command ran"])
            .run()
            .fails_with(2);
        assert!(
            refused.stderr.contains("[IP:]HOST:CONTAINER[/tcp|/udp]"),
            "{bad}: {}",
            refused.text()
        );
        assert!(refused.stdout.is_empty(), "{bad}: {}", refused.text());
    }
    for network in ["host", "none"] {
        let refused = s
            .run()
            .args(["-p", "8080:80", "--network", network, "base/busybox"])
            .args(["--", "echo", "the command ran"])
            .run()
            .fails_with(2);
        assert!(
            refused
                .stderr
                .contains(&format!("-p cannot be used with --network {network}")),
            "{}",
            refused.text()
        );
        assert!(refused.stdout.is_empty(), "{}", refused.text());
    }
}

#[test]
fn a_host_port_in_use_is_named_and_the_command_does_not_run() {
    let s = setup(&[]);
    if !s.user_mode_network("a_host_port_in_use_is_named_and_the_command_does_not_run") {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let refused = s
        .run()
        .args(["-p", &format!("{port}:80"), "base/busybox"])
        .args(["--", "echo", "the command ran"])
        .run()
        .fails_with(1);
    assert!(
        refused
            .stderr
            .contains(&format!("host port {port}/tcp on 127.0.0.1 is in use")),
        "{}",
        refused.text()
    );
    assert!(refused.stdout.is_empty(), "{}", refused.text());
    assert_no_slirp_left(&s.tmp);
    drop(taken);
}

#[test]
fn slirp4netns_does_not_outlive_a_timed_out_or_interrupted_run() {
    let s = setup(&[]);
    if !s.user_mode_network("slirp4netns_does_not_outlive_a_timed_out_or_interrupted_run") {
        return;
    }
    let publish = |port: u16| ["-p".to_string(), format!("{port}:80")];
    s.run()
        .args(["--timeout", "2"])
        .args(publish(free_port()))
        .args(["base/busybox", "--", "sleep", "60"])
        .run()
        .fails_with(124);
    assert_no_slirp_left(&s.tmp);

    // Ctrl-C (SIGINT to the command line alone) cancels the run.
    let child = s
        .run()
        .args(publish(free_port()))
        .args(["base/busybox", "--", "sleep", "60"])
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    while slirp_under(&s.tmp).is_empty() {
        assert!(Instant::now() < deadline, "slirp4netns never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let ended = Run::from(child.wait_with_output().unwrap());
    assert_ne!(ended.code, 0, "{}", ended.text());
    assert_no_slirp_left(&s.tmp);
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
