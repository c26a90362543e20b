//! solum-build: a daemonless, rootless OCI image builder.
//!
//! The library holds the whole tool; the binary in `main.rs` only parses the command line
//! and maps outcomes to exit codes. Dependencies point one way: `cli` → `pipeline` →
//! `transport`, `store`, `layer`, `runtime` → `image`. No module below `cli` prints to a
//! terminal: progress goes through [`report::Reporter`].

#[cfg(feature = "server")]
pub mod api;
pub mod cli;
pub mod error_class;
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod io_at;
pub mod layer;
pub mod manifest;
pub mod pipeline;
pub mod privilege;
pub mod registry;
pub mod report;
pub mod source;
pub mod store;
pub mod transport;
pub mod webhook;
