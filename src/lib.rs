//! solum-build: a daemonless, rootless OCI image builder.
//!
//! The library holds the whole tool; the binary in `main.rs` only hands a re-executed
//! sandbox to `runtime` and runs [`cli::main`]. Modules form layers, each using only the
//! ones below it:
//!
//! 1. the edges: `cli` (the command line) and `api` (the server, cargo feature `server`).
//!    Paths are made absolute, [`privilege::Privilege`] is decided and errors become exit
//!    codes or HTTP statuses here, and nowhere below;
//! 2. `pipeline`: import, unpack and the rootfs cache, run, badger images, the build and
//!    the delivery (build, test gate, push, final state) that both edges call;
//! 3. `source` (folders, git, artifacts), `manifest` (app, badger and DU manifests),
//!    `transport` (references as sources and sinks; its registry side is implemented by
//!    `registry`), `store` (the OCI layout), `layer` (tar layers, diffs), and the sandbox
//!    crate `runtime`, which knows no image;
//! 4. `image`: digests, references, media types, platforms, the config editor.
//!
//! Beside the layers, used by any of them: [`report`] (progress, and the delivery's
//! [`report::State`]), [`privilege`], [`io_at`] (the one I/O error with its path),
//! [`error_class`] (what an error means for an exit code) and [`webhook`] (the trigger
//! signature client and server share). No module below the edges prints to a terminal:
//! progress goes through [`report::Reporter`].

#[cfg(feature = "server")]
pub mod api;
pub mod attest;
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
