//! The local store: an OCI image layout at `--store DIR`, else `$SOLUM_BUILD_STORE`, else
//! `$XDG_DATA_HOME/solum-build` (`~/.local/share/solum-build`). Image names live in
//! `index.json` as `org.opencontainers.image.ref.name`, so skopeo, umoci and
//! oci-image-tool read the store as `oci:STORE:NAME`. This module resolves names to
//! images, tags (only complete images), untags and collects garbage under the store lease
//! (`lease`); it guards the private cache folder (`cache`) and the owned scratch folders
//! of pulls and builds (`scratch`). Referrers (artifacts whose subject is an image) are
//! unnamed entries with `artifactType` (`referrers`). It never touches a registry.

pub mod cache;
pub mod image;
pub mod layout;
pub mod lease;
pub mod referrers;
pub mod scratch;

pub use cache::CacheError;
pub use image::{ImageError, ResolvedImage};
pub use layout::{BlobWriter, Layout, LayoutError, VerifiedBlob};
pub use lease::{ExclusiveLease, StoreLease};
pub use referrers::StoredReferrer;

use std::path::PathBuf;

/// The store folder to use: the `--store` flag, else `$SOLUM_BUILD_STORE`, else the XDG
/// data folder.
pub fn default_store_path(flag: Option<PathBuf>) -> PathBuf {
    if let Some(path) = flag {
        return absolute(path);
    }
    if let Some(path) = std::env::var_os("SOLUM_BUILD_STORE").filter(|p| !p.is_empty()) {
        return absolute(PathBuf::from(path));
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    absolute(data_home.join("solum-build"))
}

/// `path` made absolute against the working directory, once, at the edge: the sandbox's
/// bind mounts and the server's workers need absolute host paths, and a relative one
/// would change meaning if anything changed directory. `..` and symlinks stay as given (the
/// kernel resolves them, as it would have for the relative path). Unchanged when the
/// working directory is gone.
pub fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}
