//! The user-mode network of [`Network::UserMode`]: `slirp4netns` gives the sandbox's own
//! network namespace a `tap0` device (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3, MTU
//! 65520) backed by a user-mode TCP/IP stack in a host process of the caller, and forwards
//! published host ports into it through its API socket. No privilege is needed beyond the
//! sandbox's own user namespace, and nothing of the host's network is shared with the
//! command.
//!
//! Why slirp4netns and not pasta: it is installed here and is what Debian's rootless podman
//! uses by default in this release; its API socket adds each forward after start-up and
//! answers for each one, so a host port that cannot be bound is named before the command
//! runs. Both need to open `/dev/net/tun` as the caller, so neither avoids the device's mode
//! (Debian's default is 0666; a host that made it 0600 gives `run -p` only to root).
//!
//! Order, driven by [`crate::entry`]: [`UserNetPlan::for_network`] before the clone (a
//! missing slirp4netns or a closed `/dev/net/tun` fails before anything of the sandbox
//! exists); the net namespace is made in the clone itself (see [`crate::namespaces`]);
//! [`UserNetPlan::start`] after the id map is written (slirp4netns joins the sandbox's user
//! namespace, where the caller is root only once the map exists, to make `tap0`) and before
//! the init is released, so the command finds its network up and its ports published; the
//! [`UserNet`] is dropped once the init is reaped, which stops slirp4netns.
//!
//! Lifetime: slirp4netns never outlives the sandbox. It exits when its `--exit-fd` pipe
//! closes, which happens when the outer process drops [`UserNet`] or dies in any way (the
//! kernel closes its end), and `PR_SET_PDEATHSIG` kills it should the outer process die.
//!
//! Hostile traffic: slirp4netns parses every packet the command sends, so it runs with
//! `--enable-sandbox` (its own mount namespace with only /etc and /run, capabilities
//! dropped) and `--enable-seccomp`; `--disable-host-loopback` keeps the command from
//! reaching services on the host's 127.0.0.1 through the gateway. Outbound connections and
//! DNS are slirp's own: no more is promised. This module spawns and stops slirp4netns and
//! talks to its socket; it creates no namespace and mounts nothing.

use crate::ports::{PortMapping, Protocol};
use crate::spec::Network;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The device slirp4netns opens to make the sandbox's `tap0`.
pub const TUN_DEVICE: &str = "/dev/net/tun";

/// The Debian package that has slirp4netns.
pub const PACKAGE: &str = "slirp4netns";

/// Prefix of the private folders (see [`crate::private`]) that hold the API socket and
/// slirp4netns's log: `solum-net.<pid>.<random>`.
pub const FOLDER_PREFIX: &str = "solum-net.";

const API_SOCKET: &str = "api.sock";
/// The longest path a unix socket address holds (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;
const LOG_FILE: &str = "slirp4netns.log";
/// How long slirp4netns may take to bring `tap0` up.
const READY_WAIT: Duration = Duration::from_secs(10);
/// How long one API request may take.
const API_WAIT: Duration = Duration::from_secs(5);
/// How long slirp4netns may take to exit once its exit pipe closed, before SIGKILL.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// The user-mode network could not be given to the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum UserNetError {
    #[error(
        "slirp4netns is not installed; the user-mode network (`run -p`) needs it: \
         install the Debian package `{PACKAGE}` (apt-get install {PACKAGE})"
    )]
    Missing,
    #[error(
        "cannot open {TUN_DEVICE} ({cause}), which slirp4netns needs for the sandbox's \
         network device: {fix}"
    )]
    Tun { cause: io::Error, fix: &'static str },
    #[error("cannot make a private folder for slirp4netns in the temp dir")]
    Folder(#[source] io::Error),
    #[error(
        "slirp4netns's API socket {} would be longer than a unix socket path may be \
         ({MAX_SOCKET_PATH} bytes): set TMPDIR to a shorter folder",
        path.display()
    )]
    SocketPath { path: PathBuf },
    #[error("cannot start {}", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "slirp4netns did not bring the sandbox's network up ({why}){}",
        said(log)
    )]
    NotReady { why: &'static str, log: String },
    #[error("cannot publish {mapping}: host port {} on {} {reason}", port_name(mapping), mapping.host_ip)]
    HostPort {
        mapping: PortMapping,
        reason: String,
    },
    #[error("slirp4netns's API socket failed while publishing {mapping}")]
    Api {
        mapping: PortMapping,
        #[source]
        source: io::Error,
    },
}

fn said(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("; slirp4netns said: {log}")
    }
}

/// `8080/tcp`.
fn port_name(mapping: &PortMapping) -> String {
    format!("{}/{}", mapping.host_port, mapping.protocol)
}

/// What [`crate::entry`] needs to give a sandbox its user-mode network, checked before the
/// sandbox is made.
#[derive(Debug)]
pub struct UserNetPlan<'spec> {
    binary: PathBuf,
    publish: &'spec [PortMapping],
}

impl<'spec> UserNetPlan<'spec> {
    /// `None` for the other network modes. For [`Network::UserMode`], finds slirp4netns and
    /// opens `/dev/net/tun` once as this user (as slirp4netns will), so a host that cannot
    /// give the network says why, and how to fix it, before the command could start.
    pub fn for_network(network: &'spec Network) -> Result<Option<Self>, UserNetError> {
        let Network::UserMode { publish } = network else {
            return Ok(None);
        };
        let binary = crate::idmap::find_helper("slirp4netns").ok_or(UserNetError::Missing)?;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(TUN_DEVICE)
            .map_err(|cause| UserNetError::Tun {
                fix: tun_fix(&cause),
                cause,
            })?;
        Ok(Some(UserNetPlan { binary, publish }))
    }

    /// Starts slirp4netns on the net namespace of `init` (whose id map is written), waits
    /// until `tap0` is up and publishes every port. On an error slirp4netns is stopped.
    pub fn start(&self, init: i32) -> Result<UserNet, UserNetError> {
        crate::private::sweep(FOLDER_PREFIX);
        let folder = crate::private::make_dir(FOLDER_PREFIX).map_err(UserNetError::Folder)?;
        // slirp4netns exits without a word when it cannot bind a longer one.
        let socket = folder.join(API_SOCKET);
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            let _ = crate::private::remove(&folder);
            return Err(UserNetError::SocketPath { path: socket });
        }
        let (ready, mut net) = match spawn(&self.binary, init, &folder) {
            Ok(started) => started,
            Err(e) => {
                let _ = crate::private::remove(&folder);
                return Err(e);
            }
        };
        net.wait_ready(&ready)?;
        for mapping in self.publish {
            net.publish(mapping)?;
        }
        Ok(net)
    }
}

/// The fix for a `/dev/net/tun` that cannot be opened.
fn tun_fix(cause: &io::Error) -> &'static str {
    match cause.kind() {
        io::ErrorKind::NotFound => "load the tun module as root (`modprobe tun`)",
        io::ErrorKind::PermissionDenied => {
            "as root, give it Debian's default mode (`chmod 0666 /dev/net/tun`; only a process \
             that may create network devices in a namespace can use it), or run without -p"
        }
        _ => "check that this host has a working tun device (`ls -l /dev/net/tun`)",
    }
}

/// A running slirp4netns serving one sandbox; dropping it stops slirp4netns.
#[derive(Debug)]
pub struct UserNet {
    slirp: Child,
    /// Our end of the `--exit-fd` pipe: closing it tells slirp4netns to exit.
    exit: Option<OwnedFd>,
    /// Private folder of the API socket and the log.
    folder: PathBuf,
}

/// Spawns slirp4netns; returns the read end of its `--ready-fd` pipe and the handle.
fn spawn(binary: &Path, init: i32, folder: &Path) -> Result<(OwnedFd, UserNet), UserNetError> {
    let spawn_error = |source| UserNetError::Spawn {
        binary: binary.to_path_buf(),
        source,
    };
    let log = std::fs::File::create(folder.join(LOG_FILE)).map_err(spawn_error)?;
    let log_too = log.try_clone().map_err(spawn_error)?;
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from);
    let (ready_read, ready_write) = pipe().map_err(spawn_error)?;
    let (exit_read, exit_write) = pipe().map_err(spawn_error)?;
    let (ready_fd, exit_fd) = (ready_write.as_raw_fd(), exit_read.as_raw_fd());
    let mut command = Command::new(binary);
    command
        .args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--enable-sandbox",
            "--enable-seccomp",
        ])
        .arg(format!("--ready-fd={ready_fd}"))
        .arg(format!("--exit-fd={exit_fd}"))
        .arg("--api-socket")
        .arg(folder.join(API_SOCKET))
        // The init is our child and not reaped before slirp4netns is stopped, so its pid
        // cannot name another process meanwhile.
        .arg(init.to_string())
        .arg("tap0")
        .env_clear()
        .stdin(Stdio::null())
        // Our stdout and stderr carry the command's output to the caller: slirp4netns's
        // chatter goes to its log, quoted when it fails.
        .stdout(log)
        .stderr(log_too);
    let outer = std::process::id() as i32;
    // SAFETY: the closure only calls async-signal-safe functions (fcntl, prctl, getppid) on
    // descriptor numbers that stay open until the spawn returns.
    unsafe {
        command.pre_exec(move || {
            // The two pipe ends slirp4netns is told about survive its exec; every other
            // descriptor of this process is close-on-exec.
            for fd in [ready_fd, exit_fd] {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // This process is single-threaded: its death, however it comes, kills
            // slirp4netns. If it died before this line, give up.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0
                || libc::getppid() != outer
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let slirp = command.spawn().map_err(spawn_error)?;
    // Only slirp4netns holds these now: its exit closes the ready pipe, and ours the exit one.
    drop((ready_write, exit_read));
    let net = UserNet {
        slirp,
        exit: Some(exit_write),
        folder: folder.to_path_buf(),
    };
    Ok((ready_read, net))
}

impl UserNet {
    /// Waits for slirp4netns's "1" on the ready pipe: `tap0` is configured and the API
    /// socket listens. Its exit closes the pipe without it.
    fn wait_ready(&mut self, ready: &OwnedFd) -> Result<(), UserNetError> {
        let deadline = Instant::now() + READY_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.not_ready("no answer within 10 s"));
            }
            let slice = PollTimeout::from(left.as_millis().min(100) as u16);
            let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, slice) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => {}
                Ok(_) => break,
                Err(_) => return Err(self.not_ready("cannot wait for it")),
            }
        }
        let mut answer = [0u8; 1];
        match nix::unistd::read(ready, &mut answer) {
            Ok(1) if answer[0] == b'1' => Ok(()),
            _ => Err(self.not_ready("it exited")),
        }
    }

    fn not_ready(&mut self, why: &'static str) -> UserNetError {
        // Stopped first, so the log is complete.
        self.stop();
        UserNetError::NotReady {
            why,
            log: self.log_tail(),
        }
    }

    /// The last lines of slirp4netns's log, on one line.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.folder.join(LOG_FILE)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join("; ")
    }

    /// Forwards one host port into the sandbox (`add_hostfwd`; the guest address is
    /// slirp4netns's default, the sandbox's `tap0`).
    fn publish(&self, mapping: &PortMapping) -> Result<(), UserNetError> {
        let request = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": mapping.protocol.as_str(),
                "host_addr": mapping.host_ip.to_string(),
                "host_port": mapping.host_port,
                "guest_port": mapping.container_port,
            }
        });
        let answer = api_call(&self.folder.join(API_SOCKET), &request).map_err(|source| {
            UserNetError::Api {
                mapping: *mapping,
                source,
            }
        })?;
        if answer.get("return").is_some() {
            return Ok(());
        }
        // slirp4netns says only "slirp_add_hostfwd failed": binding the port ourselves
        // tells which of the usual reasons it is.
        let reason = why_unbindable(mapping).unwrap_or_else(|| {
            let said = answer["error"]["desc"]
                .as_str()
                .unwrap_or("no reason given");
            format!("was refused by slirp4netns ({said})")
        });
        Err(UserNetError::HostPort {
            mapping: *mapping,
            reason,
        })
    }

    /// Closes the exit pipe and reaps slirp4netns, killing it if it lingers.
    fn stop(&mut self) {
        if self.exit.take().is_none() {
            return;
        }
        let deadline = Instant::now() + EXIT_WAIT;
        loop {
            match self.slirp.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = self.slirp.kill();
                    let _ = self.slirp.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

impl Drop for UserNet {
    fn drop(&mut self) {
        self.stop();
        let _ = crate::private::remove(&self.folder);
    }
}

/// One request on slirp4netns's API socket (one JSON document each way per connection).
fn api_call(socket: &Path, request: &serde_json::Value) -> io::Result<serde_json::Value> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(API_WAIT))?;
    stream.set_write_timeout(Some(API_WAIT))?;
    stream.write_all(request.to_string().as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    serde_json::from_slice(&answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Why `mapping`'s host side cannot be bound, if it cannot: binding it here (and letting
/// go at once) gives the kernel's reason.
fn why_unbindable(mapping: &PortMapping) -> Option<String> {
    let address = std::net::SocketAddr::from((mapping.host_ip, mapping.host_port));
    let bound = match mapping.protocol {
        Protocol::Tcp => std::net::TcpListener::bind(address).map(drop),
        Protocol::Udp => std::net::UdpSocket::bind(address).map(drop),
    };
    let error = bound.err()?;
    Some(match error.kind() {
        io::ErrorKind::AddrInUse => "is in use by another program".to_string(),
        io::ErrorKind::PermissionDenied => format!(
            "is reserved for privileged users (ports below {}, net.ipv4.ip_unprivileged_port_start)",
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
                .map_or_else(|_| "1024".to_string(), |s| s.trim().to_string())
        ),
        io::ErrorKind::AddrNotAvailable => "cannot be bound: the address is not one of this host's".to_string(),
        _ => format!("cannot be bound ({error})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_network_modes_need_nothing_from_the_host() {
        assert!(UserNetPlan::for_network(&Network::None).unwrap().is_none());
        assert!(UserNetPlan::for_network(&Network::Host).unwrap().is_none());
    }

    #[test]
    fn a_closed_tun_device_names_the_fix() {
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        let message = UserNetError::Tun {
            fix: tun_fix(&denied),
            cause: denied,
        }
        .to_string();
        assert!(message.contains("chmod 0666 /dev/net/tun"), "{message}");
        let missing = io::Error::from_raw_os_error(libc::ENOENT);
        assert!(tun_fix(&missing).contains("modprobe tun"));
        assert!(UserNetError::Missing
            .to_string()
            .contains("package `slirp4netns`"));
    }

    #[test]
    fn a_port_in_use_is_named() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let mapping: PortMapping = format!("{port}:80").parse().unwrap();
        let reason = why_unbindable(&mapping).unwrap();
        let message = UserNetError::HostPort { mapping, reason }.to_string();
        assert!(
            message.contains(&format!("host port {port}/tcp on 127.0.0.1 is in use")),
            "{message}"
        );
        drop(taken);
        assert_eq!(why_unbindable(&mapping), None);
    }
}
