//! A throwaway PostgreSQL cluster for the tests of `serve --database postgres://…`: Debian's
//! server binaries (the newest `/usr/lib/postgresql/VERSION/bin`), a cluster made by
//! `initdb` in a temp folder with trust authentication for the user `solum`, listening on
//! 127.0.0.1 on a free port with its unix socket inside that folder and `fsync=off`.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the server programs run
//! as the unprivileged user `tester` (the one of [`super::rootless`]) on a folder given to
//! it; as anyone else they run as that user. The client programs (`psql`, `createdb`) talk
//! TCP and run as the test process.
//!
//! The rule for a missing PostgreSQL is the one for a missing `tester`: on CI (`CI=true`)
//! the tests fail, because a database test that silently did not happen is a hole in the
//! coverage; anywhere else [`PgCluster::start`] returns `None` after writing the reason to
//! stderr, and the test returns early. `scripts/install-deps.sh` installs it.
//!
//! A cluster is stopped and its folder removed on drop. [`PgCluster::shared`] keeps one in
//! a static for the whole test binary, and statics are never dropped: every cluster
//! therefore has a watchdog, a shell holding the read end of a pipe whose write end only
//! this process has. When the process ends however it ends, the pipe closes, and the shell
//! stops the server (`pg_ctl stop -m immediate`) and removes the folder.

use super::registry::free_port;
use super::rootless::TESTER;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The database user the cluster is made with; it owns every database.
pub const PG_USER: &str = "solum";

/// A running PostgreSQL cluster, stopped and removed on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    port: u16,
    /// The folder of `initdb`, `postgres` and `pg_ctl`.
    server_bin: PathBuf,
    /// Whether the server programs run as `tester` (the tests run as root).
    as_tester: bool,
    /// The watchdog shell, and the write end of its pipe: closing it stops the server.
    watchdog: Option<(Child, ChildStdin)>,
}

impl PgCluster {
    /// Makes and starts a cluster; `None` (off CI, with the reason on stderr) when
    /// PostgreSQL or, as root, the user `tester` is missing.
    pub fn start() -> Option<PgCluster> {
        let server_bin = match missing_reason() {
            Ok(server_bin) => server_bin,
            Err(reason) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{reason}: on CI the PostgreSQL tests must run"
                );
                let _ = writeln!(std::io::stderr(), "skipped a PostgreSQL test: {reason}");
                return None;
            }
        };
        let as_tester = nix::unistd::geteuid().is_root();
        let dir = tempfile::Builder::new()
            .prefix("solum-pg-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        if as_tester {
            let tester = nix::unistd::User::from_name(TESTER).unwrap().unwrap();
            nix::unistd::chown(dir.path(), Some(tester.uid), Some(tester.gid)).unwrap();
        }
        let mut cluster = PgCluster {
            dir,
            port: free_port(),
            server_bin,
            as_tester,
            watchdog: None,
        };
        // The watchdog first: a test process that dies (or panics) while initdb runs or the
        // server starts leaves nothing behind.
        cluster.watchdog = Some(cluster.spawn_watchdog());
        cluster.init();
        cluster.start_server();
        Some(cluster)
    }

    /// The one cluster of this test binary, started on first use (tests make a database
    /// each); `None` as for [`PgCluster::start`].
    pub fn shared() -> Option<&'static PgCluster> {
        static SHARED: OnceLock<Option<PgCluster>> = OnceLock::new();
        SHARED.get_or_init(PgCluster::start).as_ref()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL `serve --database` takes for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{PG_USER}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Creates the (empty) database `name`.
    pub fn create_database(&self, name: &str) {
        let out = self
            .client("createdb")
            .arg(name)
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `sql` in database `db` and returns what it printed: unaligned, without headers,
    /// one row a line, columns separated by `|`, trimmed.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .client("psql")
            // No ~/.psqlrc, no notices; rows unaligned without headers; stop at an error.
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-d", db, "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {db} -c {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Whether the server accepts connections right now.
    pub fn is_up(&self) -> bool {
        self.client("pg_isready")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Stops the server the polite way (`pg_ctl stop -m fast`: connections are closed, the
    /// data is written out), and waits until it is gone.
    pub fn stop_fast(&self) {
        let out = self
            .server_command("pg_ctl")
            .args(["stop", "-w", "-s", "-m", "fast", "-D"])
            .arg(self.data())
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server again on the same port and data, after [`PgCluster::stop_fast`]
    /// or [`PgCluster::kill9`] (or stops it first when it runs).
    pub fn restart(&self) {
        if self.postmaster_pid().is_some_and(is_alive) {
            self.stop_fast();
        }
        self.start_server();
    }

    /// Kills the server's main process with SIGKILL, as a crash would, and waits until it is
    /// dead. Its backend processes end within moments, once they notice.
    pub fn kill9(&self) {
        let pid = self
            .postmaster_pid()
            .expect("the server runs (postmaster.pid)");
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_alive(pid) {
            assert!(Instant::now() < deadline, "postgres {pid} outlived SIGKILL");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log (`initdb` and every start), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `initdb`, then the settings every start uses, appended to `postgresql.conf`.
    fn init(&self) {
        let out = self
            .server_command("initdb")
            .args(["--auth=trust", "-U", PG_USER, "--no-sync"])
            .args(["--no-locale", "-E", "UTF8"])
            .arg("-D")
            .arg(self.data())
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // fsync and synchronous commit off: the data is thrown away anyway, and the tests
        // wait for commits. Room for many servers' connection pools in one cluster.
        let settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             max_connections = 300\n",
            self.port,
            self.dir.path().display()
        );
        // The file belongs to `tester` when the tests run as root; root may append anyway.
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("postgresql.conf"))
            .unwrap()
            .write_all(settings.as_bytes())
            .unwrap();
    }

    /// `pg_ctl start`, waiting until the server accepts connections. Retried for a few
    /// seconds: after a SIGKILL the old backend processes may still hold the shared memory.
    fn start_server(&self) {
        self.forget_dead_postmaster();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self
                .server_command("pg_ctl")
                .args(["start", "-w", "-s", "-t", "30", "-D"])
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("postgres.log"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                // The server outlives pg_ctl but writes to the log (`-l`), not to these pipes.
                .output()
                .expect("pg_ctl runs");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pg_ctl start: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Removes `postmaster.pid` when the process it names is dead or a zombie. A zombie
    /// still answers signal 0, and a killed server's main process stays one when nothing
    /// reaps orphans (PID 1 of some containers): the new server would take it for a running
    /// one and refuse to start.
    fn forget_dead_postmaster(&self) {
        if self.postmaster_pid().is_some_and(|pid| !is_alive(pid)) {
            let _ = std::fs::remove_file(self.data().join("postmaster.pid"));
        }
    }

    /// The main server process, from the first line of `postmaster.pid`.
    fn postmaster_pid(&self) -> Option<nix::unistd::Pid> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        Some(nix::unistd::Pid::from_raw(pid))
    }

    /// The shell that stops the server and removes the folder once its stdin closes.
    fn spawn_watchdog(&self) -> (Child, ChildStdin) {
        let script =
            r#"cat >/dev/null; "$0" stop -s -m immediate -D "$1" >/dev/null 2>&1; rm -rf "$2""#;
        let mut child = self
            .as_server_user(Command::new("sh"))
            .arg("-c")
            .arg(script)
            .arg(self.server_bin.join("pg_ctl"))
            .arg(self.data())
            .arg(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh starts");
        let stdin = child.stdin.take().unwrap();
        (child, stdin)
    }

    /// A server program (`initdb`, `pg_ctl`), run as the user the server runs as.
    fn server_command(&self, program: &str) -> Command {
        let mut command = self.as_server_user(Command::new(self.server_bin.join(program)));
        command.stdin(Stdio::null());
        command
    }

    /// `command` as is, or under `runuser -u tester` when the tests run as root. Started in
    /// the cluster's folder: the test's own working folder may be out of `tester`'s reach.
    fn as_server_user(&self, command: Command) -> Command {
        let mut wrapped = if self.as_tester {
            let mut runuser = Command::new("runuser");
            runuser
                .args(["-u", TESTER, "--"])
                .arg(command.get_program())
                .args(command.get_args());
            runuser
        } else {
            command
        };
        wrapped.current_dir(self.dir.path());
        wrapped
    }

    /// A client program (`psql`, `createdb`, `pg_isready`) connected over TCP as `solum`.
    fn client(&self, program: &str) -> Command {
        let mut command = Command::new(self.server_bin.join(program));
        command
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                PG_USER,
            ])
            .stdin(Stdio::null())
            .env("PGCONNECT_TIMEOUT", "10");
        command
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Closing the pipe makes the watchdog stop the server and remove the folder; waiting
        // for it keeps the removal from racing the TempDir's own.
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// The folder of the newest installed PostgreSQL server, or why the tests cannot have one.
fn missing_reason() -> Result<PathBuf, String> {
    let install = "apt-get install postgresql (scripts/install-deps.sh)";
    let server_bin = newest_server_bin(Path::new("/usr/lib/postgresql"))
        .ok_or_else(|| format!("no /usr/lib/postgresql/*/bin/postgres: {install}"))?;
    for program in ["initdb", "pg_ctl", "psql", "createdb", "pg_isready"] {
        if !server_bin.join(program).is_file() {
            return Err(format!(
                "no {}: {install}",
                server_bin.join(program).display()
            ));
        }
    }
    if nix::unistd::geteuid().is_root()
        && nix::unistd::User::from_name(TESTER)
            .ok()
            .flatten()
            .is_none()
    {
        return Err(format!(
            "PostgreSQL does not run as root and there is no user `{TESTER}` \
             (scripts/install-deps.sh)"
        ));
    }
    Ok(server_bin)
}

/// `ROOT/VERSION/bin` of the highest numeric VERSION holding a `postgres` binary.
fn newest_server_bin(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

/// Whether `pid` is a live process: present and not a zombie.
fn is_alive(pid: nix::unistd::Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold any
        // character: read it after the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
