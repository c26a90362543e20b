//! Badgers as a build sees them: a reference resolved to an image (a bare name such as
//! `python` is looked up as itself, then as `badgers/python`, as Solum's `languagepack`
//! names read; `python3` is another name of `python`; names nothing has are refused with the
//! badgers to choose from, and so is `auto` outside a build, which chooses it from the source),
//! its `org.solum.badger.manifest` annotation (a plain image works too, with
//! the default build command), and several badgers stacked into one base: the first
//! badger's layers, then each later badger's own layers (those past the prefix it shares
//! with the stack so far), with the environments merged in order.

use super::commit::Base;
use super::unpack::LayerStack;
use crate::error_class::{Classify, ErrorClass};
use crate::image::{ConfigError, ImageConfig};
use crate::image::{Digest, ImageReference, ReferenceError};
use crate::manifest::{badger::DEFAULT_BUILD, BadgerManifest, ManifestError, BADGER_ANNOTATION};
use crate::report::Reporter;
use crate::store::ImageError;
use crate::transport::{self, OpenedImage, RegistryTransport, TransportError};
use std::collections::BTreeMap;
use std::path::Path;

/// Why a badger could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BadgerError {
    #[error("badger {reference:?} is not an image reference")]
    Reference {
        reference: String,
        #[source]
        source: ReferenceError,
    },
    #[error("badger {reference:?} cannot be opened")]
    Open {
        reference: String,
        #[source]
        source: Box<TransportError>,
    },
    #[error("badger {reference:?} carries a malformed {BADGER_ANNOTATION} annotation")]
    Annotation {
        reference: String,
        #[source]
        source: ManifestError,
    },
    #[error(
        "no badger {reference:?} in the store{}; badgers in the store: {}; shipped badgers (make one with `solum-build badger build badgers/NAME`): {}",
        did_you_mean(.suggestion.as_ref()), or_none(.in_store), SHIPPED_BADGERS.join(", ")
    )]
    Unknown {
        reference: String,
        suggestion: Option<String>,
        in_store: Vec<String>,
    },
    #[error(
        "badger \"auto\" is chosen from an app's source when it is built; here it names no image: name one of: {}",
        .choices.join(", ")
    )]
    Auto { choices: Vec<String> },
    #[error("badger {reference:?} has a config that is not a JSON object")]
    Config {
        reference: String,
        #[source]
        source: ConfigError,
    },
}

impl Classify for BadgerError {
    fn class(&self) -> ErrorClass {
        match self {
            BadgerError::Open { source, .. } => source.class(),
            BadgerError::Reference { .. }
            | BadgerError::Unknown { .. }
            | BadgerError::Auto { .. }
            | BadgerError::Annotation { .. }
            | BadgerError::Config { .. } => ErrorClass::Input,
        }
    }
}

/// The badgers this project ships, as `badgers/NAME` folders (`badger build` makes them).
pub const SHIPPED_BADGERS: &[&str] = &[
    "go", "java", "nodejs", "php", "python", "ruby", "shell", "static",
];

/// Other names of shipped badgers, as app files write them (`languagepack: python3`).
const SOLUM_NAMES: &[(&str, &str)] = &[("python3", "python")];

/// The badger name that asks for the badger to be found from the source: the build does
/// that ([`super::detect`]); anywhere else (a badger's `from`) it names no image.
pub const AUTO: &str = crate::manifest::app::AUTO_BADGER;

/// The store names a bare badger name is looked up as, in order: itself, `badgers/NAME`,
/// then the same for the badger an alias names (`python3` → `python`).
pub fn store_names(name: &str) -> Vec<String> {
    let ours = SOLUM_NAMES
        .iter()
        .find(|(solum, _)| *solum == name)
        .map(|(_, ours)| *ours);
    let mut names = Vec::new();
    for name in std::iter::once(name).chain(ours) {
        names.push(name.to_string());
        if !name.starts_with("badgers/") {
            names.push(format!("badgers/{name}"));
        }
    }
    names
}

fn did_you_mean(suggestion: Option<&String>) -> String {
    suggestion
        .map(|name| format!(" (did you mean {name:?}?)"))
        .unwrap_or_default()
}

fn or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The badger of `known` closest to `wanted` (not `wanted` itself): one or two edits
/// apart (`pyhton3`, `pyton`), or one a prefix of the other (`node` for `nodejs`).
/// Compared without `badgers/`.
pub fn closest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    fn short(name: &str) -> &str {
        name.strip_prefix("badgers/").unwrap_or(name)
    }
    let wanted = short(wanted);
    known
        .into_iter()
        .map(|name| (edit_distance(wanted, short(name)), name))
        .filter(|(distance, name)| {
            let name = short(name);
            let prefix = name.starts_with(wanted) || wanted.starts_with(name);
            *distance > 0 && (*distance <= 2 || (wanted.len() >= 3 && prefix))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name.to_string())
}

/// Edit distance over characters, where swapping two neighbours is one edit (`pyhton`
/// is one from `python`): the optimal-string-alignment distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: the distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The badgers of the store (their store names, sorted), best effort: none when it cannot
/// be read.
fn store_badgers(store: &Path) -> Vec<String> {
    let mut names: Vec<String> = super::badger_image::list_badgers(store)
        .map(|found| found.into_iter().map(|b| b.store_name).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Every badger a build could name: the store's, then the shipped ones not made yet.
pub fn badger_choices(in_store: &[String]) -> Vec<String> {
    let mut choices = in_store.to_vec();
    for shipped in SHIPPED_BADGERS {
        if !in_store
            .iter()
            .any(|n| n == shipped || *n == format!("badgers/{shipped}"))
        {
            choices.push(format!("badgers/{shipped} (not built yet)"));
        }
    }
    choices
}

/// One resolved badger.
pub struct Badger {
    /// The reference as written (or the store name it was found under).
    pub reference: String,
    pub image: OpenedImage,
    /// Its manifest annotation, when it is a badger image made by `badger build`.
    pub manifest: Option<BadgerManifest>,
}

impl Badger {
    pub fn name(&self) -> String {
        self.manifest
            .as_ref()
            .map_or_else(|| self.reference.clone(), |m| m.name.clone())
    }

    pub fn version(&self) -> String {
        self.manifest
            .as_ref()
            .map(|m| m.version.clone())
            .unwrap_or_default()
    }

    /// The build command, run with `/bin/sh -c` in `/app`.
    pub fn build_command(&self) -> String {
        self.manifest
            .as_ref()
            .map_or_else(|| DEFAULT_BUILD.to_string(), |m| m.build.clone())
    }

    pub fn environment(&self) -> BTreeMap<String, String> {
        self.manifest
            .as_ref()
            .map(|m| m.environment.clone())
            .unwrap_or_default()
    }

    pub fn digest(&self) -> &Digest {
        &self.image.image.manifest_digest
    }
}

/// Resolves one badger reference.
pub fn resolve(
    text: &str,
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    reporter: &dyn Reporter,
) -> Result<Badger, BadgerError> {
    let reference: ImageReference = text.parse().map_err(|source| BadgerError::Reference {
        reference: text.to_string(),
        source,
    })?;
    let open =
        |reference: &ImageReference| transport::open_image(reference, store, registry, reporter);
    if !matches!(reference, ImageReference::Store { .. }) {
        let image = open(&reference).map_err(|source| BadgerError::Open {
            reference: text.to_string(),
            source: Box::new(source),
        })?;
        return with_manifest(text.to_string(), image);
    }
    if text == AUTO {
        return Err(BadgerError::Auto {
            choices: badger_choices(&store_badgers(store)),
        });
    }
    // A store name: as written, as `badgers/NAME`, then as the badger an alias names.
    let mut first_error = None;
    for name in store_names(text) {
        let Ok(candidate) = name.parse::<ImageReference>() else {
            continue;
        };
        match open(&candidate) {
            Ok(image) => {
                if name != text && name != format!("badgers/{text}") {
                    reporter.status("Using", &format!("{name} for {text:?} (an alias)"));
                }
                return with_manifest(name, image);
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        // Not there (or no store yet, so no badger either): say what there is to choose.
        Some(
            TransportError::Image(ImageError::NotFound { .. }) | TransportError::NoStore { .. },
        )
        | None => {
            let in_store = store_badgers(store);
            let known = in_store
                .iter()
                .map(String::as_str)
                .chain(SHIPPED_BADGERS.iter().copied());
            Err(BadgerError::Unknown {
                reference: text.to_string(),
                suggestion: closest(text, known),
                in_store,
            })
        }
        Some(error) => Err(BadgerError::Open {
            reference: text.to_string(),
            source: Box::new(error),
        }),
    }
}

/// The badger `image` found as `written`, with its manifest annotation read.
fn with_manifest(written: String, image: OpenedImage) -> Result<Badger, BadgerError> {
    let manifest = image
        .image
        .manifest
        .annotations()
        .as_ref()
        .and_then(|a| a.get(BADGER_ANNOTATION))
        .map(|json| BadgerManifest::from_annotation(json))
        .transpose()
        .map_err(|source| BadgerError::Annotation {
            reference: written.clone(),
            source,
        })?;
    Ok(Badger {
        reference: written,
        image,
        manifest,
    })
}

/// The base of a build on `badgers` (at least one): the stacked layers and the config of
/// the first badger with every badger's Env and manifest environment applied in order.
pub fn stack(badgers: &[Badger]) -> Result<(Base, LayerStack), BadgerError> {
    let first = &badgers[0];
    let mut config = ImageConfig::parse(&first.image.image.config_bytes).map_err(|source| {
        BadgerError::Config {
            reference: first.reference.clone(),
            source,
        }
    })?;
    let mut stack = LayerStack::of(&first.image.image);
    for badger in &badgers[1..] {
        let own = LayerStack::of(&badger.image.image);
        let shared = stack
            .layers
            .iter()
            .zip(&own.layers)
            .take_while(|(a, b)| a.digest() == b.digest())
            .count();
        let known =
            stack.diff_ids.len() == stack.layers.len() && own.diff_ids.len() == own.layers.len();
        stack.layers.extend(own.layers[shared..].iter().cloned());
        if known {
            stack
                .diff_ids
                .extend(own.diff_ids[shared..].iter().cloned());
        } else {
            stack.diff_ids.clear();
        }
        let env: Vec<String> = badger
            .image
            .image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.env().clone())
            .unwrap_or_default();
        if !env.is_empty() {
            config.merge_env(&env);
        }
    }
    for badger in badgers {
        let env: Vec<String> = badger
            .environment()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !env.is_empty() {
            config.merge_env(&env);
        }
    }
    let base = Base {
        layers: stack.layers.clone(),
        diff_ids: stack.diff_ids.clone(),
        config,
    };
    Ok((base, stack))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_is_the_badgers_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("badgers");
        // Folders only: badgers/README.md describes them.
        let mut folders: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap())
            .filter(|entry| entry.file_type().unwrap().is_dir())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        assert_eq!(folders, SHIPPED_BADGERS);
    }

    #[test]
    fn solum_names_are_looked_up_after_the_name_itself() {
        assert_eq!(
            store_names("python3"),
            ["python3", "badgers/python3", "python", "badgers/python"]
        );
        assert_eq!(store_names("python"), ["python", "badgers/python"]);
        assert_eq!(store_names("badgers/shell"), ["badgers/shell"]);
    }

    #[test]
    fn a_close_name_is_suggested_and_a_far_one_is_not() {
        let known = ["badgers/python", "badgers/shell", "static"];
        assert_eq!(closest("pyhton3", known).as_deref(), Some("badgers/python"));
        assert_eq!(closest("stat", known).as_deref(), Some("static"));
        assert_eq!(closest("shel", known).as_deref(), Some("badgers/shell"));
        assert_eq!(closest("nodejs", known), None);
        assert_eq!(closest("pyhton", known).as_deref(), Some("badgers/python"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("pyhton", "python"), 1);
    }

    #[test]
    fn the_messages_list_the_choices() {
        let unknown = BadgerError::Unknown {
            reference: "pyhton".into(),
            suggestion: Some("python".into()),
            in_store: vec!["badgers/shell".into()],
        };
        assert_eq!(
            unknown.to_string(),
            "no badger \"pyhton\" in the store (did you mean \"python\"?); badgers in the store: badgers/shell; shipped badgers (make one with `solum-build badger build badgers/NAME`): go, java, nodejs, php, python, ruby, shell, static"
        );
        let auto = BadgerError::Auto {
            choices: badger_choices(&["badgers/shell".to_string()]),
        };
        assert_eq!(
            auto.to_string(),
            "badger \"auto\" is chosen from an app's source when it is built; here it names no image: name one of: badgers/shell, badgers/go (not built yet), badgers/java (not built yet), badgers/nodejs (not built yet), badgers/php (not built yet), badgers/python (not built yet), badgers/ruby (not built yet), badgers/static (not built yet)"
        );
    }
}
