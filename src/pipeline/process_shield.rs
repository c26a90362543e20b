//! This process made ready to run steps in place (`--isolation none`), where a build
//! script runs as the tool's own user and nothing but the kernel's rules for one user's
//! processes stands between them. Two things, before the first step:
//! - this process is made non-dumpable (`PR_SET_DUMPABLE` 0): its `/proc` files (its
//!   environment, where a registry token may be; its memory; its open descriptors) then
//!   belong to root, and attaching to it with `ptrace` needs `CAP_SYS_PTRACE`, so a step
//!   can neither read the tool's secrets nor rewrite its code (which would undo every
//!   check after the step). The flag is reset by `execve`: the steps themselves keep
//!   theirs.
//! - it becomes the reaper of what steps leave running (see [`super::step_survivors`]).

use crate::io_at::IoAt;
use std::path::Path;

/// Both of the module documentation's measures; needs no privilege.
pub fn before_steps_in_place() -> Result<(), IoAt> {
    let failed = |action| move |e: nix::Error| IoAt::new(Path::new("/proc/self"), action, e.into());
    nix::sys::prctl::set_dumpable(false).map_err(failed("make non-dumpable"))?;
    super::step_survivors::adopt_orphans()
        .map_err(failed("become the reaper of the build's processes"))
}
