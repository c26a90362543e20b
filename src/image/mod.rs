//! The image model shared by every other module: digests with streaming hashers, media
//! types, image references with their transports, platforms with the rule that picks one
//! from an index, and the image config's editor with the environment rules. It performs no I/O of its own beyond
//! the readers and writers it wraps.

pub mod config;
pub mod digest;
pub mod media;
pub mod platform;
pub mod reference;

pub use config::{ConfigError, ImageConfig};
pub use digest::{Digest, DigestError, HashingReader, HashingWriter};
pub use platform::{Platform, PlatformError};

pub use reference::{
    validate_host, validate_repository, validate_tag, ImageReference, ReferenceError,
};

/// Serializes a manifest, index or config as JSON with sorted object keys. oci-spec keeps
/// annotations in a `HashMap`, whose order changes from run to run; going through
/// `serde_json::Value` (a sorted map) makes the bytes, and so the digest, reproducible.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("image documents serialize to JSON");
    serde_json::to_vec(&value).expect("a JSON value serializes")
}
