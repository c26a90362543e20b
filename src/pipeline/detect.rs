//! `badger: auto` (and an app file that names no badger): the badger is found from the
//! fetched source, Heroku/CNB-style. Every badger image of the store with a `detect` rule
//! takes part; they are tried in the rule's `order`, lower first, ties by badger name, and
//! the first whose files include one at the source root is chosen. The others that also
//! match are named so the app file can settle it; no match lists what was looked for.
//!
//! The source is hostile: a file counts only when it is a regular file reached with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` from a descriptor of the source folder,
//! so a `package.json` that is a symlink (to `/etc/passwd`, or even to a file of the
//! source) or that runs through one does not mark a language. This module looks and
//! chooses, then resolves the chosen store name as a named badger is resolved
//! ([`badger_stack::resolve`]); it reads no file's contents.

use super::badger_image::{list_badgers, StoredBadger, BADGER_IMAGE_PREFIX};
use super::badger_stack::{self, Badger, BadgerError, AUTO, SHIPPED_BADGERS};
use super::build_error::BuildError;
use crate::error_class::{Classify, ErrorClass};
use crate::report::Reporter;
use crate::transport::RegistryTransport;
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Why no badger could be chosen from the source.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(
        "badger \"auto\": no badger's detect rule matches the source; looked for (in this order): {}{}; name the badger in the app file (`badger: NAME` or `languagepack: NAME`) or with --badger",
        looked_for(.rules), not_built_list(.not_built)
    )]
    NoMatch {
        rules: Vec<DetectRule>,
        not_built: Vec<String>,
    },
    #[error(
        "badger \"auto\": no badger in the store has a detect rule{}; name the badger in the app file (`badger: NAME` or `languagepack: NAME`) or with --badger",
        not_built_list(.not_built)
    )]
    NoRules { not_built: Vec<String> },
    #[error("badger \"auto\": cannot read the badgers of the store")]
    Store(#[source] BadgerError),
    #[error("badger \"auto\": cannot look for {file:?} in the source {dir}")]
    Look {
        dir: PathBuf,
        file: String,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for DetectError {
    fn class(&self) -> ErrorClass {
        match self {
            DetectError::Store(inner) => inner.class(),
            DetectError::NoMatch { .. } | DetectError::NoRules { .. } => ErrorClass::Input,
            DetectError::Look { .. } => ErrorClass::Failure,
        }
    }
}

fn looked_for(rules: &[DetectRule]) -> String {
    rules
        .iter()
        .map(|rule| format!("{} ({})", rule.badger, rule.files.join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_built_list(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(
            "; shipped badgers not in the store (make one with `solum-build badger build badgers/NAME`): {}",
            names.join(", ")
        )
    }
}

/// One badger's detect rule, as the store has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectRule {
    /// The badger's own name (`nodejs`), what messages say.
    pub badger: String,
    /// The store name it is found under (`badgers/nodejs`), what the build uses.
    pub store_name: String,
    pub order: i64,
    pub files: Vec<String>,
}

/// The outcome of detection: the chosen rule with the file that marked it, and the later
/// rules that matched too (each with its first file found).
#[derive(Debug, PartialEq, Eq)]
pub struct Detected {
    pub chosen: (DetectRule, String),
    pub also: Vec<(DetectRule, String)>,
}

impl Detected {
    /// `auto chose nodejs (package.json found)`.
    pub fn chose_line(&self) -> String {
        let (rule, file) = &self.chosen;
        format!("auto chose {} ({file} found)", rule.badger)
    }

    /// `python3 (requirements.txt); set badger: to choose`, when others matched.
    pub fn also_line(&self) -> Option<String> {
        if self.also.is_empty() {
            return None;
        }
        let others: Vec<String> = self
            .also
            .iter()
            .map(|(rule, file)| format!("{} ({file})", rule.badger))
            .collect();
        Some(format!("{}; set badger: to choose", others.join(", ")))
    }
}

/// The detect rules of the store's badgers, in the order they are tried: by `order`, then
/// by badger name. A badger stored under several names takes part once, under
/// `badgers/NAME` when it has that name, else under its first name in sorted order.
pub fn store_rules(store: &Path) -> Result<Vec<DetectRule>, DetectError> {
    let badgers = list_badgers(store).map_err(DetectError::Store)?;
    Ok(rules_of(badgers))
}

fn rules_of(mut badgers: Vec<StoredBadger>) -> Vec<DetectRule> {
    // Per badger, `badgers/NAME` sorts first (false < true), so that the dedup keeps it.
    let other_name =
        |b: &StoredBadger| b.store_name != format!("{BADGER_IMAGE_PREFIX}{}", b.manifest.name);
    badgers.sort_by(|a, b| {
        (&a.manifest.name, other_name(a), &a.store_name).cmp(&(
            &b.manifest.name,
            other_name(b),
            &b.store_name,
        ))
    });
    badgers.dedup_by(|later, first| later.manifest.name == first.manifest.name);
    let mut rules: Vec<DetectRule> = badgers
        .into_iter()
        .filter_map(|b| {
            let detect = b.manifest.detect?;
            Some(DetectRule {
                badger: b.manifest.name,
                store_name: b.store_name,
                order: detect.order,
                files: detect.files,
            })
        })
        .collect();
    sort_rules(&mut rules);
    rules
}

/// The documented order: `order` ascending, ties by badger name.
pub fn sort_rules(rules: &mut [DetectRule]) {
    rules.sort_by(|a, b| (a.order, &a.badger).cmp(&(b.order, &b.badger)));
}

/// The shipped badgers the store has under no name: detection cannot choose them.
pub fn shipped_not_in_store(store: &Path) -> Vec<String> {
    let names: Vec<String> = list_badgers(store)
        .map(|found| {
            found
                .into_iter()
                .flat_map(|b| [b.manifest.name, b.store_name])
                .collect()
        })
        .unwrap_or_default();
    SHIPPED_BADGERS
        .iter()
        .filter(|shipped| {
            !names
                .iter()
                .any(|n| n == *shipped || *n == format!("{BADGER_IMAGE_PREFIX}{shipped}"))
        })
        .map(|shipped| format!("{BADGER_IMAGE_PREFIX}{shipped}"))
        .collect()
}

/// Runs `rules` (already in order) over the source folder `dir`.
pub fn detect(
    dir: &Path,
    rules: &[DetectRule],
    not_built: Vec<String>,
) -> Result<Detected, DetectError> {
    if rules.is_empty() {
        return Err(DetectError::NoRules { not_built });
    }
    let root = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| DetectError::Look {
        dir: dir.to_path_buf(),
        file: ".".to_string(),
        source: errno.into(),
    })?;
    let mut matched = Vec::new();
    for rule in rules {
        for file in &rule.files {
            if regular_file_beneath(&root, file).map_err(|source| DetectError::Look {
                dir: dir.to_path_buf(),
                file: file.clone(),
                source,
            })? {
                matched.push((rule.clone(), file.clone()));
                break;
            }
        }
    }
    let mut matched = matched.into_iter();
    match matched.next() {
        Some(chosen) => Ok(Detected {
            chosen,
            also: matched.collect(),
        }),
        None => Err(DetectError::NoMatch {
            rules: rules.to_vec(),
            not_built,
        }),
    }
}

/// True when `name` (relative) is a regular file under `root`, reached through no symlink
/// and without leaving it. Absent, a symlink on the way, or anything but a regular file:
/// false. Other errors are errors.
fn regular_file_beneath(root: &impl AsFd, name: &str) -> std::io::Result<bool> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let fd = match openat2(root.as_fd(), name, how) {
        Ok(fd) => fd,
        // Missing, a symlink on the way (ELOOP), out of the folder (EXDEV), a file where a
        // folder was named (ENOTDIR), or a name longer than any file can have
        // (ENAMETOOLONG: a badger's rule names what it likes, and one such rule must not
        // stop detection for every app): not a mark of the language.
        Err(Errno::ENOENT | Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR | Errno::ENAMETOOLONG) => {
            return Ok(false)
        }
        Err(errno) => return Err(errno.into()),
    };
    let stat = fstat(&fd)?;
    Ok(SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG)
}

/// A badger of the app file: resolved already, or `auto`, chosen once the source is there.
pub enum Pending {
    Named(Box<Badger>),
    Auto,
}

/// The app's badgers (`references`, in order) as far as they can be resolved before the
/// source is fetched: every named one (so that a wrong name fails before any fetching),
/// and a place for each `auto`.
pub fn resolve_named<'a>(
    references: impl Iterator<Item = &'a str>,
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    reporter: &dyn Reporter,
) -> Result<Vec<Pending>, BadgerError> {
    references
        .map(|reference| {
            if reference == AUTO {
                Ok(Pending::Auto)
            } else {
                badger_stack::resolve(reference, store, registry, reporter)
                    .map(|badger| Pending::Named(Box::new(badger)))
            }
        })
        .collect()
}

/// The badgers of the build: `pending` with each `auto` replaced by the badger detection
/// chooses from the fetched source at `source`, which is said (and any other match).
pub fn choose(
    pending: Vec<Pending>,
    source: &Path,
    store: &Path,
    registry: Option<&dyn RegistryTransport>,
    reporter: &dyn Reporter,
) -> Result<Vec<Badger>, BuildError> {
    let mut badgers = Vec::with_capacity(pending.len());
    for badger in pending {
        match badger {
            Pending::Named(badger) => badgers.push(*badger),
            Pending::Auto => {
                let rules = store_rules(store)?;
                let detected = detect(source, &rules, shipped_not_in_store(store))?;
                reporter.status("badger:", &detected.chose_line());
                if let Some(also) = detected.also_line() {
                    reporter.status("also matched:", &also);
                }
                let name = &detected.chosen.0.store_name;
                badgers.push(badger_stack::resolve(name, store, registry, reporter)?);
            }
        }
    }
    Ok(badgers)
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;
