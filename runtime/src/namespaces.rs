//! Which namespaces the sandbox creates, and when, as data. The sandbox's first process is
//! made by `clone()` with the namespaces that must exist at birth; the rest are unshared by
//! that process once its id map is written. This module must not mount anything or write
//! id maps; it only says which namespace comes when, and why.

use crate::spec::Network;
use nix::sched::CloneFlags;

/// When a namespace is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// In the `clone()` that creates the sandbox's init.
    Clone,
    /// By `unshare()` in the sandbox's init, after the parent has written the id maps.
    AfterIdMap,
}

/// One namespace of the sandbox.
#[derive(Debug, Clone, Copy)]
pub struct Namespace {
    pub name: &'static str,
    pub flag: CloneFlags,
    pub moment: Moment,
}

/// The namespaces in the order they come into being.
///
/// - **user** first, always: every other namespace is owned by the user namespace of the
///   process that creates it, and only inside our own user namespace does an unprivileged
///   caller hold `CAP_SYS_ADMIN` to create (and later mount in) them. The kernel creates it
///   first within one `clone()`, whatever the bit order.
/// - **pid** at clone time: `unshare(CLONE_NEWPID)` moves only the caller's *children* into
///   the new namespace. Cloning with it makes the sandbox's init pid 1 there, so its death
///   kills every process of the sandbox, and `/proc` mounted by it shows only the sandbox.
/// - **mount**, **ipc**, **uts**, **net** after the id map: they are owned by the new user
///   namespace either way; unsharing them once the map is written means the setup that follows
///   runs as the mapped root, and a failure to map is detected before anything else is built.
///   Mount comes first of these because everything after it mounts.
/// - **net** is skipped for [`Network::Host`]. For [`Network::UserMode`] it is made at clone
///   time instead (see [`namespaces`]): slirp4netns joins it from outside, started by the
///   sandbox's outer process after the id map and before the init is released, so the
///   namespace must exist before the init runs a line of its setup.
pub static ORDERED_NAMESPACES: &[Namespace] = &[
    Namespace {
        name: "user",
        flag: CloneFlags::CLONE_NEWUSER,
        moment: Moment::Clone,
    },
    Namespace {
        name: "pid",
        flag: CloneFlags::CLONE_NEWPID,
        moment: Moment::Clone,
    },
    Namespace {
        name: "mount",
        flag: CloneFlags::CLONE_NEWNS,
        moment: Moment::AfterIdMap,
    },
    Namespace {
        name: "ipc",
        flag: CloneFlags::CLONE_NEWIPC,
        moment: Moment::AfterIdMap,
    },
    Namespace {
        name: "uts",
        flag: CloneFlags::CLONE_NEWUTS,
        moment: Moment::AfterIdMap,
    },
    Namespace {
        name: "net",
        flag: CloneFlags::CLONE_NEWNET,
        moment: Moment::AfterIdMap,
    },
];

/// The namespaces this network setting uses, in order, each with the moment it is made.
pub fn namespaces(network: &Network) -> impl Iterator<Item = Namespace> + '_ {
    ORDERED_NAMESPACES.iter().filter_map(move |ns| {
        if ns.flag != CloneFlags::CLONE_NEWNET {
            return Some(*ns);
        }
        match network {
            Network::None => Some(*ns),
            Network::Host => None,
            // The same clone makes the user namespace first, so this one is owned by it too.
            Network::UserMode { .. } => Some(Namespace {
                moment: Moment::Clone,
                ..*ns
            }),
        }
    })
}

/// The flags of the namespaces created at `moment`.
pub fn flags_at(network: &Network, moment: Moment) -> CloneFlags {
    namespaces(network)
        .filter(|ns| ns.moment == moment)
        .fold(CloneFlags::empty(), |acc, ns| acc | ns.flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_namespace_comes_first_and_pid_at_clone() {
        assert_eq!(ORDERED_NAMESPACES[0].flag, CloneFlags::CLONE_NEWUSER);
        let at_clone = flags_at(&Network::None, Moment::Clone);
        assert_eq!(
            at_clone,
            CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID
        );
    }

    #[test]
    fn host_network_keeps_the_host_net_namespace() {
        assert!(flags_at(&Network::None, Moment::AfterIdMap).contains(CloneFlags::CLONE_NEWNET));
        let host = flags_at(&Network::Host, Moment::AfterIdMap);
        assert!(!host.contains(CloneFlags::CLONE_NEWNET));
        assert!(host.contains(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC));
    }

    #[test]
    fn user_mode_network_namespace_exists_from_the_clone() {
        let user_mode = Network::UserMode {
            publish: Vec::new(),
        };
        assert_eq!(
            flags_at(&user_mode, Moment::Clone),
            CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNET
        );
        let later = flags_at(&user_mode, Moment::AfterIdMap);
        assert!(!later.contains(CloneFlags::CLONE_NEWNET));
        assert!(later.contains(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS));
    }
}
