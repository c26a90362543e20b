//! The sandbox specification: what to run, on which root filesystem, with which mounts,
//! network and limits. It is plain serde data, sent as JSON from the caller to the
//! re-executed sandbox process over a pipe. This module validates a spec; it must not touch
//! the system (no mounts, no process work).

use crate::ports::PortMapping;
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The root filesystem of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootFs {
    /// A prepared directory, bind-mounted as the root. Mount points missing in it are created
    /// in it (they are listed in [`crate::Outcome::created_mount_points`]).
    Dir(PathBuf),
    /// An overlay mounted inside the user namespace: `lowers` (first = top-most), written
    /// changes land in `upper`, `work` is overlay's scratch directory (same filesystem as
    /// `upper`). Mount points missing in the lowers come from a bottom-most tmpfs layer, so
    /// nothing is created in `upper`.
    Overlay {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
}

/// A host path made visible inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Host path (file or directory).
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
    #[serde(default)]
    pub read_only: bool,
    /// For a writable directory: an empty folder on the same mount as `source`, for
    /// overlay's scratch. The bind is then an overlay whose upper dir is `source` over an
    /// empty lower, which writes the same but keeps `source`'s host path out of the
    /// sandbox's `/proc/self/mountinfo`. Without it, or where overlay is refused, a bind.
    #[serde(default)]
    pub work: Option<PathBuf>,
}

/// Network of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A new network namespace with only the loopback interface, brought up.
    #[default]
    None,
    /// The host's network namespace; `/etc/resolv.conf` and `/etc/hosts` of the host are
    /// bound read-only into the sandbox.
    Host,
    /// A new network namespace whose `tap0` slirp4netns connects to the host's network
    /// through a user-mode TCP/IP stack (see [`crate::usermode`]), with `publish`ed host
    /// ports forwarded into it. Nothing of the host's network configuration is bound in.
    UserMode {
        #[serde(default)]
        publish: Vec<PortMapping>,
    },
}

impl Network {
    /// The sandbox has a network namespace of its own (every mode but [`Network::Host`]).
    pub fn has_own_namespace(&self) -> bool {
        *self != Network::Host
    }
}

/// How to map ids into the user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdMapPolicy {
    /// The widest mapping this host allows (see [`crate::idmap`]).
    #[default]
    Auto,
    /// Only the caller's own uid and gid, mapped to the sandbox user, no helper.
    Single,
}

/// Resource limits. `None` means "no limit from the sandbox".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock time from start; the whole sandbox is killed when it passes.
    #[serde(default, with = "opt_duration_ms")]
    pub timeout: Option<Duration>,
    /// Processes of the sandbox user (`RLIMIT_NPROC`; also the pid namespace's `pid_max`
    /// where the kernel has one per namespace, and `pids.max` with cgroup delegation).
    #[serde(default)]
    pub max_processes: Option<u64>,
    /// Largest file a process may write, in bytes (`RLIMIT_FSIZE`).
    #[serde(default)]
    pub max_file_size: Option<u64>,
    /// Address space per process in bytes (`RLIMIT_AS`; `memory.max` with cgroup delegation).
    #[serde(default)]
    pub memory: Option<u64>,
    /// Open files per process (`RLIMIT_NOFILE`).
    #[serde(default)]
    pub max_open_files: Option<u64>,
}

/// Processes a sandbox may hold unless its caller says otherwise. Builds that run `make -j`
/// stay far below it; a fork bomb stops at it.
pub const DEFAULT_MAX_PROCESSES: u64 = 4096;

/// The limits set with [`Limits::set_defaults`] for every sandbox of this process.
static DEFAULTS: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();

impl Limits {
    /// The limits a new [`SandboxSpec`] starts with: those of [`Limits::set_defaults`],
    /// else [`DEFAULT_MAX_PROCESSES`] processes and, per process, no more address space than
    /// the host has memory (`MemTotal`). No timeout: that is the caller's.
    pub fn defaults() -> Limits {
        DEFAULTS.get().cloned().unwrap_or_else(Limits::builtin)
    }

    /// The built-in defaults (see [`Limits::defaults`]).
    pub fn builtin() -> Limits {
        Limits {
            max_processes: Some(DEFAULT_MAX_PROCESSES),
            memory: host_memory(),
            ..Limits::default()
        }
    }

    /// Sets the defaults of every later sandbox of this process (the command line does, from
    /// `--pids-limit` and `--memory`). Only the first call counts.
    pub fn set_defaults(limits: Limits) {
        let _ = DEFAULTS.set(limits);
    }
}

/// The host's memory in bytes (`MemTotal` of `/proc/meminfo`).
pub fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Everything the sandbox needs to run one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub rootfs: RootFs,
    /// argv; `argv[0]` is looked up in the `PATH` of `env` when it has no `/`.
    pub command: Vec<String>,
    /// The whole environment of the command (`KEY=VALUE`), nothing is inherited.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory inside the sandbox.
    #[serde(default = "default_cwd")]
    pub cwd: PathBuf,
    #[serde(default = "default_hostname")]
    pub hostname: String,
    #[serde(default)]
    pub mounts: Vec<BindMount>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub limits: Limits,
    /// User and group of the command inside the sandbox.
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default)]
    pub id_map: IdMapPolicy,
    /// The command reads the caller's stdin (`run -i`), passed down the processes as
    /// [`STDIN_FD`]; else its stdin is the sandbox's `/dev/null`.
    #[serde(default)]
    pub inherit_stdin: bool,
    /// The command runs on a pseudo-terminal of its own (`run -t`, see [`crate::terminal`]),
    /// passed down as [`STDIN_FD`] and made its stdin, stdout, stderr and controlling
    /// terminal; with `inherit_stdin` the caller's stdin is relayed to it.
    #[serde(default)]
    pub tty: bool,
    /// How the command is contained (see [`crate::isolation`]); `auto` is resolved by
    /// [`crate::run`] before the sandbox process starts.
    #[serde(default)]
    pub isolation: crate::Isolation,
}

/// The descriptor that carries a pipe fed from the caller's stdin (with
/// [`SandboxSpec::inherit_stdin`]) or the command's terminal (with [`SandboxSpec::tty`])
/// from [`crate::run`] to the command; closed at once otherwise.
pub const STDIN_FD: i32 = 3;

fn default_cwd() -> PathBuf {
    PathBuf::from("/")
}

/// `PATH` when a spec's environment names none: the one the OCI runtimes and Docker use.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn default_hostname() -> String {
    "solum".to_string()
}

impl SandboxSpec {
    /// A spec with defaults for everything but the root filesystem and the command; the
    /// limits are [`Limits::defaults`].
    pub fn new(rootfs: RootFs, command: Vec<String>) -> Self {
        SandboxSpec {
            rootfs,
            command,
            env: vec![format!("PATH={DEFAULT_PATH}")],
            cwd: default_cwd(),
            hostname: default_hostname(),
            mounts: Vec::new(),
            network: Network::None,
            limits: Limits::defaults(),
            uid: 0,
            gid: 0,
            id_map: IdMapPolicy::Auto,
            inherit_stdin: false,
            tty: false,
            isolation: crate::Isolation::requested(),
        }
    }

    /// Checks what can be checked without touching the system.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.command.is_empty() {
            return Err(SpecError::EmptyCommand);
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return Err(SpecError::Nul { what: "command" });
        }
        if self
            .env
            .iter()
            .any(|e| e.contains('\0') || !e.contains('='))
        {
            return Err(SpecError::Nul {
                what: "env (KEY=VALUE)",
            });
        }
        if self.hostname.is_empty() || self.hostname.len() > 64 {
            return Err(SpecError::Hostname(self.hostname.clone()));
        }
        check_inner_path(&self.cwd)?;
        for m in &self.mounts {
            check_inner_path(&m.target)?;
            if m.target == Path::new("/") {
                return Err(SpecError::InnerPath(m.target.clone()));
            }
            if !m.source.is_absolute() {
                return Err(SpecError::HostPath(m.source.clone()));
            }
            if let Some(w) = m.work.as_ref().filter(|w| !w.is_absolute()) {
                return Err(SpecError::HostPath(w.clone()));
            }
        }
        match &self.rootfs {
            RootFs::Dir(d) if !d.is_absolute() => return Err(SpecError::HostPath(d.clone())),
            RootFs::Overlay { lowers, .. } if lowers.is_empty() => return Err(SpecError::NoLowers),
            RootFs::Overlay {
                lowers,
                upper,
                work,
            } => {
                for p in lowers.iter().chain([upper, work]) {
                    if !p.is_absolute() {
                        return Err(SpecError::HostPath(p.clone()));
                    }
                    if p.to_string_lossy().contains([',', ':']) {
                        return Err(SpecError::OverlayPath(p.clone()));
                    }
                }
            }
            RootFs::Dir(_) => {}
        }
        if let Network::UserMode { publish } = &self.network {
            for (i, mapping) in publish.iter().enumerate() {
                if mapping.host_port == 0 || mapping.container_port == 0 {
                    return Err(SpecError::PortZero(*mapping));
                }
                if let Some(earlier) = publish[..i].iter().find(|m| m.collides_with(mapping)) {
                    return Err(SpecError::PublishedTwice {
                        first: *earlier,
                        second: *mapping,
                    });
                }
            }
        }
        Ok(())
    }
}

/// An absolute path without `..`, the only kind accepted inside the sandbox.
fn check_inner_path(p: &Path) -> Result<(), SpecError> {
    if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(SpecError::InnerPath(p.to_path_buf()));
    }
    Ok(())
}

/// A spec that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("the command is empty")]
    EmptyCommand,
    #[error("{what} contains a NUL byte or is malformed")]
    Nul { what: &'static str },
    #[error("hostname {0:?} must be 1 to 64 bytes")]
    Hostname(String),
    #[error("path inside the sandbox {0} must be absolute, without `..`, and not `/`")]
    InnerPath(PathBuf),
    #[error("host path {0} must be absolute")]
    HostPath(PathBuf),
    #[error("overlay path {0} must not contain `,` or `:`")]
    OverlayPath(PathBuf),
    #[error("an overlay root filesystem needs at least one lower directory")]
    NoLowers,
    #[error("published port {0} names port 0")]
    PortZero(PortMapping),
    #[error("a host port is published twice ({first} and {second})")]
    PublishedTwice {
        first: PortMapping,
        second: PortMapping,
    },
}

mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    // serde's `serialize_with` hands the field itself: `&Option<_>` is its signature.
    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let mut spec = SandboxSpec::new(RootFs::Dir("/r".into()), vec!["true".into()]);
        spec.limits.timeout = Some(Duration::from_millis(1500));
        let json = serde_json::to_string(&spec).unwrap();
        let back: SandboxSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(spec, back);
    }

    #[test]
    fn rejects_relative_and_parent_paths() {
        let mut spec = SandboxSpec::new(RootFs::Dir("/r".into()), vec!["true".into()]);
        spec.cwd = "/a/../..".into();
        assert!(matches!(spec.validate(), Err(SpecError::InnerPath(_))));
        spec.cwd = "/".into();
        spec.mounts.push(BindMount {
            source: "rel".into(),
            target: "/x".into(),
            read_only: true,
            work: None,
        });
        assert!(matches!(spec.validate(), Err(SpecError::HostPath(_))));
    }

    #[test]
    fn user_mode_network_round_trips_and_refuses_a_host_port_twice() {
        let mut spec = SandboxSpec::new(RootFs::Dir("/r".into()), vec!["true".into()]);
        let publish = |texts: &[&str]| Network::UserMode {
            publish: texts.iter().map(|t| t.parse().unwrap()).collect(),
        };
        spec.network = publish(&["8080:80", "8080:53/udp", "127.0.0.2:8080:81"]);
        spec.validate().unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<SandboxSpec>(&json).unwrap(), spec);
        spec.network = publish(&["8080:80", "0.0.0.0:8080:81"]);
        assert!(matches!(
            spec.validate(),
            Err(SpecError::PublishedTwice { .. })
        ));
        let mut zero: PortMapping = "1:1".parse().unwrap();
        zero.container_port = 0;
        spec.network = Network::UserMode {
            publish: vec![zero],
        };
        assert!(matches!(spec.validate(), Err(SpecError::PortZero(_))));
    }
}
