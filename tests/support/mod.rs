//! The support module of the `solum-build` integration tests, included by each test file
//! with `mod support;`:
//!
//! - [`cmd`]: [`Cmd`], the one builder for running the binary (or a peer) and [`Run`], its
//!   output with assertions;
//! - [`rootless`]: the one re-run of a test binary as the unprivileged user `tester`, with
//!   its rule for a missing user;
//! - [`fixtures`]: trees and tarballs to build from, and listings to compare trees by;
//! - [`http`]: a `GET` to a server a test started, retried until it answers;
//! - [`lang_app`]: the language badgers' test apps, built, rebuilt and served over HTTP;
//! - [`registry`]: a real `docker-registry` on a loopback port, and small images;
//! - [`serve`]: a `solum-build serve` on a loopback port, and its data folder;
//! - [`postgres`]: a throwaway PostgreSQL cluster on a loopback port, one per test binary
//!   or one per test;
//! - [`inputs`]: the build-inputs tests' store, blob search, secret and certificate;
//! - [`apps`]: the test apps of `testdata/apps/` on the shipped badgers, served over HTTP;
//! - [`container`]: the binary inside `podman run` of a Debian image, confined as CI does.
#![allow(dead_code)]

pub mod apps;
pub mod cmd;
pub mod container;
pub mod fixtures;
pub mod http;
pub mod inputs;
pub mod lang_app;
pub mod postgres;
pub mod registry;
pub mod rootless;
pub mod serve;

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use cmd::*;
#[allow(unused_imports)]
pub use fixtures::*;

/// When run as root (and not already nested), re-runs this whole test binary as `tester`
/// and asserts it passes; see [`rootless`] for what happens when there is no such user.
pub fn rerun_as_tester() {
    rootless::TesterRerun::new().program(bin()).run();
}
