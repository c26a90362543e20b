//! Badgers as a build sees them: a reference resolved to an image (a bare name such as
//! `python3` is looked up as itself, then as `badgers/python3`, as Solum's `languagepack`
//! names read), its `org.solum.badger.manifest` annotation (a plain image works too, with
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
            | BadgerError::Annotation { .. }
            | BadgerError::Config { .. } => ErrorClass::Input,
        }
    }
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
    let (written, image) = match open(&reference) {
        Ok(image) => (text.to_string(), image),
        Err(first) => {
            // `languagepack: python3` names the shipped badger `badgers/python3`.
            let alternative = format!("badgers/{text}");
            match (&reference, alternative.parse::<ImageReference>()) {
                (ImageReference::Store { .. }, Ok(other)) if !text.starts_with("badgers/") => {
                    match open(&other) {
                        Ok(image) => (alternative, image),
                        Err(_) => {
                            return Err(BadgerError::Open {
                                reference: text.to_string(),
                                source: Box::new(first),
                            })
                        }
                    }
                }
                _ => {
                    return Err(BadgerError::Open {
                        reference: text.to_string(),
                        source: Box::new(first),
                    })
                }
            }
        }
    };
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
