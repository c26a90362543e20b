//! What this host allows the sandbox: user namespaces, overlay in a user namespace,
//! subordinate id ranges and their helpers, cgroup v2 delegation, and what the builder will
//! therefore do. It reads sysctls and files, and tries an overlay mount in a throwaway child;
//! it must not change anything on the host.

/// The fix to name when user namespaces are off, if a known switch is off.
pub fn userns_fix() -> Option<String> {
    None
}
