//! The isolation levels a build or a run can use, strongest first: `userns` (the rootless
//! sandbox of this crate: user, mount, pid, ipc, uts and net namespaces), `chroot` (root in
//! a container without user namespaces: a prepared tree and `chroot`, with the container's
//! own ids), and `none` (an unprivileged container whose own root filesystem is the badger:
//! the command runs in place and the container is the isolation boundary). `auto` asks for
//! the strongest that works on this host. The level changes how a build is contained, never
//! what it makes: the same inputs give the same DU at every level.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An isolation level, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// The strongest level that works here, probed in the order userns, chroot, none.
    #[default]
    Auto,
    Userns,
    Chroot,
    None,
}

/// The level every later sandbox of this process asks for (see [`Isolation::set_requested`]).
static REQUESTED: std::sync::OnceLock<Isolation> = std::sync::OnceLock::new();

/// What `auto` turned out to be in this process, once a sandbox ran or fell back.
static AUTO_RESOLVED: std::sync::OnceLock<Isolation> = std::sync::OnceLock::new();

impl Isolation {
    /// The level a new [`crate::SandboxSpec`] asks for: the one set with
    /// [`Isolation::set_requested`], else `auto`.
    pub fn requested() -> Isolation {
        REQUESTED.get().copied().unwrap_or_default()
    }

    /// Sets the level of every later sandbox of this process (the command line does, from
    /// `--isolation`, for builds, runs and the server). Only the first call counts.
    pub fn set_requested(level: Isolation) {
        let _ = REQUESTED.set(level);
    }

    /// What `auto` chose in this process so far, if a sandbox ran.
    pub fn auto_resolved() -> Option<Isolation> {
        AUTO_RESOLVED.get().copied()
    }

    /// Records what `auto` chose, so later sandboxes of this process go straight to it.
    pub(crate) fn remember_auto(level: Isolation) {
        let _ = AUTO_RESOLVED.set(level);
    }

    /// Every name `--isolation` accepts, in probing order after `auto`.
    pub const NAMES: [&'static str; 4] = ["auto", "userns", "chroot", "none"];

    pub fn name(self) -> &'static str {
        match self {
            Isolation::Auto => "auto",
            Isolation::Userns => "userns",
            Isolation::Chroot => "chroot",
            Isolation::None => "none",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not an isolation level.
#[derive(Debug, thiserror::Error)]
#[error("unknown isolation level {given:?}: use one of auto, userns, chroot, none")]
pub struct UnknownIsolation {
    pub given: String,
}

impl FromStr for Isolation {
    type Err = UnknownIsolation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Isolation::Auto),
            "userns" => Ok(Isolation::Userns),
            "chroot" => Ok(Isolation::Chroot),
            "none" => Ok(Isolation::None),
            _ => Err(UnknownIsolation {
                given: s.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_say_the_choices() {
        for name in Isolation::NAMES {
            assert_eq!(name.parse::<Isolation>().unwrap().name(), name);
        }
        let err = "jail".parse::<Isolation>().unwrap_err().to_string();
        assert!(err.contains("\"jail\"") && err.contains("auto, userns, chroot, none"));
    }
}
