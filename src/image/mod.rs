//! The image model shared by every other module: digests with streaming hashers, media
//! types, and image references with their transports. It performs no I/O of its own beyond
//! the readers and writers it wraps.

pub mod digest;
pub mod media;
pub mod reference;


pub use digest::{Digest, DigestError, HashingReader, HashingWriter};

pub use reference::{ImageReference, ReferenceError};
