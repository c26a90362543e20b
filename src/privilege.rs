//! Whether the builder runs as root or rootless, decided once at the edge (the command
//! line's `main`, the server's start) and passed down to what behaves differently: the
//! unpacker (ownership applied, or recorded in `user.rootlesscontainers`; device nodes
//! created or skipped), the layer writer and the tree copier (ownership read back from
//! that record, or taken as it is), and the build cache key. As umoci's `fseval`, the
//! choice is a value handed to the code, never a question each module asks the kernel.
//!
//! What it does not cover: checks that compare a file's owner with this process's
//! effective uid (the private cache and scratch folders, opening up our own unreadable
//! entries while reading a tree) ask for the uid where they compare it, since they guard
//! against another user's files, and the sandbox (`runtime`) queries what it maps itself.

/// How this process may treat file ownership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// Effective uid 0: ownership and device nodes are applied as a layer says.
    Root,
    /// Any other user: ownership is recorded, not applied, and devices are skipped.
    Rootless,
}

impl Privilege {
    /// This process's privilege, from its effective uid. Called at the edge only.
    pub fn of_this_process() -> Privilege {
        if nix::unistd::geteuid().is_root() {
            Privilege::Root
        } else {
            Privilege::Rootless
        }
    }

    pub fn is_rootless(self) -> bool {
        self == Privilege::Rootless
    }
}
