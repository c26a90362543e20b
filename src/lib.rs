//! solum-build: a daemonless, rootless OCI image builder.
//!
//! The library holds the whole tool; the binary in `main.rs` only parses the command line
//! and maps outcomes to exit codes. Dependencies point one way: `cli` → the domain modules
//! (`store`, `layer`) → `image`. No module below `cli` prints to a terminal.
#![deny(unsafe_code)]

pub mod cli;
pub mod image;
pub mod layer;
pub mod store;
