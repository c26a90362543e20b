//! Platforms (`os/architecture[/variant]`) and the one rule that picks a manifest from an
//! index for a platform; the local store and the registry client both resolve indexes
//! through [`select`]. It reads descriptors only and performs no I/O.
//!
//! The rule follows containerd's platform matcher where it is about naming: both sides are
//! normalized first (lower case; `x86_64` is `amd64`, `aarch64` is `arm64`, `armhf` is
//! `arm/v7`; `amd64/v1` is plain `amd64`, `arm64/v8` plain `arm64`, plain `arm` is
//! `arm/v7`), so `linux/arm64/v8` finds an `arm64` entry without a variant and the other
//! way round. Unlike containerd it never widens to other architectures (`amd64` does not
//! take a `386` manifest): a build runs the badger's binaries and must get what it asked
//! for. A request without a variant takes any variant of its architecture, the plain one
//! (the baseline) first; a request with a variant takes only that variant.

use oci_spec::image::{Descriptor, ImageIndex};
use std::fmt;

/// What [`Platform::parse`] refuses.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("invalid platform {platform:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8")]
    Malformed { platform: String },
}

/// A normalized platform, as asked for or as an index entry names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    os: String,
    architecture: String,
    /// After normalization; `None` is the architecture's baseline.
    variant: Option<String>,
    /// The request named a variant: only that one matches.
    variant_named: bool,
}

/// The platform pulled and resolved when none is asked for.
pub const DEFAULT_PLATFORM: &str = "linux/amd64";

impl Platform {
    /// Parses `os/arch[/variant]`; `None` is [`DEFAULT_PLATFORM`].
    pub fn parse(text: Option<&str>) -> Result<Platform, PlatformError> {
        let text = text.unwrap_or(DEFAULT_PLATFORM);
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => {
                let variant = parts.get(2).copied().filter(|v| !v.is_empty());
                Ok(Platform::new(os, arch, variant))
            }
            _ => Err(PlatformError::Malformed {
                platform: text.to_string(),
            }),
        }
    }

    /// The platform an index entry names.
    pub fn of(platform: &oci_spec::image::Platform) -> Platform {
        Platform::new(
            &platform.os().to_string(),
            &platform.architecture().to_string(),
            platform.variant().as_deref(),
        )
    }

    fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = match os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_string(),
            other => other.to_string(),
        };
        // Named is what the text carried: normalization may add `v7` to a plain `arm`.
        let variant_named = variant.is_some();
        let (architecture, variant) = normalize_architecture(architecture, variant);
        Platform {
            os,
            architecture,
            variant,
            variant_named,
        }
    }

    /// How well `entry` fits this request: `Some(0)` exactly, `Some(1)` another variant of
    /// the same architecture when the request named none, `None` not at all.
    fn fit(&self, entry: &Platform) -> Option<u8> {
        if self.os != entry.os || self.architecture != entry.architecture {
            return None;
        }
        if self.variant == entry.variant {
            Some(0)
        } else if self.variant_named {
            None
        } else {
            Some(1)
        }
    }
}

impl Default for Platform {
    /// [`DEFAULT_PLATFORM`], as a request without a variant.
    fn default() -> Platform {
        Platform::new("linux", "amd64", None)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// containerd's architecture and variant aliases (`normalizeArch`): one spelling for each.
fn normalize_architecture(architecture: &str, variant: Option<&str>) -> (String, Option<String>) {
    let architecture = architecture.to_ascii_lowercase();
    let variant = variant.map(str::to_ascii_lowercase);
    let (architecture, variant) = match (architecture.as_str(), variant.as_deref()) {
        ("i386", _) => ("386", None),
        ("x86_64" | "x86-64" | "amd64", Some("v1")) => ("amd64", None),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v.map(str::to_string)),
        ("aarch64" | "arm64", Some("8" | "v8" | "v8.0")) => ("arm64", None),
        ("aarch64" | "arm64", Some("9" | "9.0" | "v9.0")) => ("arm64", Some("v9".to_string())),
        ("aarch64" | "arm64", v) => ("arm64", v.map(str::to_string)),
        ("armhf", _) => ("arm", Some("v7".to_string())),
        ("armel", _) => ("arm", Some("v6".to_string())),
        ("arm", None | Some("7")) => ("arm", Some("v7".to_string())),
        ("arm", Some(n @ ("5" | "6" | "8"))) => ("arm", Some(format!("v{n}"))),
        (other, v) => (other, v.map(str::to_string)),
    };
    (architecture.to_string(), variant)
}

/// The index entry for `wanted`: the best fit (see the module comment), the first of
/// equals in index order. With `fallback_to_only`, an index of one entry that fits
/// nothing (or names no platform) gives that entry; callers pass it when nobody asked for
/// a platform, so a single-platform index of any kind still resolves.
pub fn select<'i>(
    index: &'i ImageIndex,
    wanted: &Platform,
    fallback_to_only: bool,
) -> Option<&'i Descriptor> {
    let fitting = index
        .manifests()
        .iter()
        .filter_map(|d| {
            let entry = Platform::of(d.platform().as_ref()?);
            Some((wanted.fit(&entry)?, d))
        })
        // min_by_key keeps the first of equal keys: index order decides among equals.
        .min_by_key(|(fit, _)| *fit)
        .map(|(_, d)| d);
    fitting.or(match index.manifests().as_slice() {
        [only] if fallback_to_only => Some(only),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{media, Digest};

    /// An index whose entries have sizes 10, 11, 12… in order, so a test names the pick.
    fn index(platforms: &[(&str, &str, Option<&str>)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut platform = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": media::OCI_MANIFEST,
                    "digest": Digest::of_bytes(&[i as u8]).to_string(),
                    "size": 10 + i,
                    "platform": platform,
                })
            })
            .collect();
        let json = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
        ImageIndex::from_reader(json.to_string().as_bytes()).unwrap()
    }

    fn pick(index: &ImageIndex, wanted: Option<&str>) -> Option<u64> {
        let platform = Platform::parse(wanted).unwrap();
        select(index, &platform, wanted.is_none()).map(oci_spec::image::Descriptor::size)
    }

    #[test]
    fn the_default_is_linux_amd64_and_a_lone_entry_only_when_nothing_was_asked() {
        let idx = index(&[
            ("linux", "arm64", Some("v8")),
            ("linux", "amd64", None),
            ("linux", "arm", Some("v7")),
        ]);
        assert_eq!(pick(&idx, None), Some(11));
        assert_eq!(pick(&idx, Some("linux/arm/v7")), Some(12));
        assert_eq!(pick(&idx, Some("linux/arm/v6")), None);
        let only = index(&[("linux", "s390x", None)]);
        assert_eq!(pick(&only, None), Some(10));
        assert_eq!(pick(&only, Some("linux/amd64")), None);
        assert!(Platform::parse(Some("linux")).is_err());
        assert!(Platform::parse(Some("linux//v7")).is_err());
    }

    // The registry client compared the variant as written, so `linux/arm64/v8` missed an
    // `arm64` entry without a variant (the way many indexes write it).
    #[test]
    fn arm64_v8_and_arm64_without_a_variant_are_one_platform() {
        let plain = index(&[("linux", "amd64", None), ("linux", "arm64", None)]);
        assert_eq!(pick(&plain, Some("linux/arm64/v8")), Some(11));
        let with_v8 = index(&[("linux", "amd64", None), ("linux", "arm64", Some("v8"))]);
        assert_eq!(pick(&with_v8, Some("linux/arm64")), Some(11));
        assert_eq!(pick(&with_v8, Some("linux/arm64/v8")), Some(11));
        assert_eq!(pick(&with_v8, Some("linux/arm64/v9")), None);
    }

    // Both old rules took the first amd64 entry whatever its variant; an `amd64/v3`
    // manifest listed first won over the baseline one that runs on every amd64 host.
    #[test]
    fn a_request_without_a_variant_prefers_the_baseline() {
        let idx = index(&[("linux", "amd64", Some("v3")), ("linux", "amd64", None)]);
        assert_eq!(pick(&idx, None), Some(11));
        assert_eq!(pick(&idx, Some("linux/amd64/v3")), Some(10));
        assert_eq!(pick(&idx, Some("linux/amd64/v1")), Some(11));
        // With no baseline, another variant still beats nothing (as before).
        let only_v2 = index(&[("linux", "amd64", Some("v2")), ("linux", "arm64", None)]);
        assert_eq!(pick(&only_v2, None), Some(10));
        // A plain `arm` is arm/v7 first, other arm variants after.
        let arm = index(&[("linux", "arm", Some("v6")), ("linux", "arm", Some("v7"))]);
        assert_eq!(pick(&arm, Some("linux/arm")), Some(11));
    }

    // Neither old rule knew an alias or upper case: `linux/x86_64` and `Linux/AMD64` are
    // what `uname -m` and hand-written indexes say.
    #[test]
    fn aliases_and_case_name_the_same_platform() {
        let idx = index(&[("linux", "x86_64", None), ("linux", "aarch64", None)]);
        assert_eq!(pick(&idx, None), Some(10));
        assert_eq!(pick(&idx, Some("Linux/ARM64")), Some(11));
        let armhf = index(&[("linux", "armhf", None)]);
        assert_eq!(pick(&armhf, Some("linux/arm/v7")), Some(10));
        assert_eq!(
            Platform::parse(Some("linux/aarch64/8"))
                .unwrap()
                .to_string(),
            "linux/arm64"
        );
    }

    #[test]
    fn entries_without_a_platform_are_skipped_unless_alone() {
        let json = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": media::OCI_MANIFEST,
            "digest": Digest::of_bytes(b"x").to_string(),
            "size": 7,
        }]});
        let idx = ImageIndex::from_reader(json.to_string().as_bytes()).unwrap();
        assert_eq!(pick(&idx, None), Some(7));
        assert_eq!(pick(&idx, Some("linux/amd64")), None);
    }
}
