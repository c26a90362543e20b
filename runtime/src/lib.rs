//! The rootless build sandbox: user, mount, pid, ipc, uts and net namespaces, id maps,
//! overlay or prepared root filesystems, `pivot_root`, process reaping, and a user-mode
//! network with published ports (slirp4netns). This is the only
//! crate of the workspace that holds `unsafe` code; it knows a root filesystem and a spec,
//! never images, registries or manifests.
//!
//! Processes: the caller ([`run`]) spawns `EXE __sandbox` (fresh and single-threaded, so it
//! may create namespaces), which clones the sandbox's init into new user and pid namespaces,
//! writes its id map, and waits; the init builds the filesystem, pivots into it, forks the
//! command and reaps. Each link dies with the one before it (`PR_SET_PDEATHSIG`), and the
//! init's death takes the whole pid namespace, mounts included, with it.
//!
//! Use from the CLI (`solum-build run REF`, `solum-build info`):
//!
//! ```no_run
//! use runtime::{run, OutputEvent, RootFs, SandboxSpec};
//! let mut spec = SandboxSpec::new(
//!     RootFs::Overlay { lowers: vec!["/cache/rootfs".into()], upper: "/b/upper".into(), work: "/b/work".into() },
//!     vec!["/solum/bin/build.sh".into()],
//! );
//! spec.cwd = "/app".into();
//! spec.limits.timeout = Some(std::time::Duration::from_secs(600));
//! let exe = runtime::self_exe();
//! let outcome = run(&spec, &exe, |event| {
//!     if let OutputEvent::Line { stream, line, .. } = event {
//!         eprintln!("{stream:?}: {line}");
//!     }
//! })?;
//! println!("{:?}; host: {}", outcome.termination, runtime::host_info());
//! # Ok::<(), runtime::SandboxError>(())
//! ```

// The one crate where `unsafe` is allowed (the workspace denies it): syscalls the nix crate
// does not wrap, and fork/exec between namespaces. Every block carries a SAFETY note.
#![allow(unsafe_code)]
#![allow(clippy::missing_safety_doc)]

pub mod chroot;
pub mod entry;
pub mod hostinfo;
pub mod idmap;
pub mod inroot;
pub mod isolation;
pub mod levels;
pub mod namespaces;
pub mod parent;
pub mod ports;
pub mod private;
pub mod process;
pub mod rootfs;
pub mod setup;
pub mod spec;
pub mod syscall;
pub mod terminal;
pub mod usermode;

pub use hostinfo::{host_info, HostInfo};
pub use idmap::IdMapKind;
pub use isolation::Isolation;
pub use parent::{run, run_with_cancel, CancelHandle, Outcome, OutputEvent, SandboxError, Stream};
pub use ports::{PortError, PortMapping, Protocol};
pub use process::Termination;
pub use spec::{BindMount, IdMapPolicy, Limits, Network, RootFs, SandboxSpec, SpecError};

/// The hidden argument under which the `solum-build` binary re-executes itself as the
/// sandbox's first process.
pub const SANDBOX_ARG: &str = "__sandbox";

/// The binary to start as `EXE __sandbox`: this process's own executable through
/// `/proc/self/exe`, which names the file the process runs even after the path it was
/// started from was replaced (a package upgrade under a running `serve`, a rebuild under
/// a long build), where `std::env::current_exe()` names a path that is gone.
pub fn self_exe() -> std::path::PathBuf {
    std::path::PathBuf::from("/proc/self/exe")
}

/// Called first thing in `main`: when this process was started as the sandbox entry
/// (`solum-build __sandbox`), it runs the sandbox and never returns; otherwise it returns at
/// once and the normal command line takes over.
pub fn enter_sandbox_if_requested() {
    if std::env::args_os().nth(1).is_some_and(|a| a == SANDBOX_ARG) {
        entry::sandbox_main();
    }
}
