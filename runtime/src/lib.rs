//! The rootless build sandbox: user, mount, pid, ipc, uts and net namespaces, id maps,
//! overlay or prepared root filesystems, `pivot_root`, and process reaping. This is the only
//! crate of the workspace that holds `unsafe` code; it knows a root filesystem and a spec,
//! never images, registries or manifests.
#![allow(clippy::missing_safety_doc)]

/// The hidden argument under which the `solum-build` binary re-executes itself as the
/// sandbox's first process.
pub const SANDBOX_ARG: &str = "__sandbox";

/// Called first thing in `main`: when this process was started as the sandbox entry
/// (`solum-build __sandbox`), it runs the sandbox and never returns; otherwise it returns at
/// once and the normal command line takes over.
pub fn enter_sandbox_if_requested() {
    // Filled in by the sandbox implementation.
}
