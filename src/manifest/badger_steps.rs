//! The two optional parts of a badger manifest that look at the app's source rather than at
//! the badger: `dependencies` (the step that installs what the app depends on, run on a tree
//! holding only the files it names, so that its result can be a layer of its own, reused
//! while those files do not change) and `detect` (the files whose presence at the top of a
//! source marks the badger's language, for `badger: auto`). Both name paths of the source,
//! which is hostile: every path must be relative and normalised (no `..`, no `.`, no `//`,
//! no NUL), and the lists are bounded.

use serde::{Deserialize, Serialize};

use super::yaml::{Decoder, Node};
use super::Problem;

const DEPENDENCIES_KEYS: &[&str] = &["inputs", "script"];
const DETECT_KEYS: &[&str] = &["order", "files"];
/// Where the dependency script is installed in the badger image.
pub const DEPENDENCIES_PATH: &str = "/solum/bin/deps.sh";
/// The dependency script's file in the badger folder unless `script` names another.
pub const DEFAULT_DEPENDENCIES_SCRIPT: &str = "deps.sh";
/// At most this many inputs, and this many detect files: a badger names a handful.
pub const MAX_PATHS: usize = 64;
/// Detect order: a number in 0..=1000, lower runs first.
pub const MAX_ORDER: i64 = 1000;
const RELATIVE_PATH: &str = "a relative, normalised path (no `..`, `.`, `//`, leading `/` or NUL)";

/// The dependency step: the source paths it reads, and its script (installed at
/// [`DEPENDENCIES_PATH`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependencies {
    /// Files or folders relative to the source root (`requirements.txt`, `wheelhouse`):
    /// the only part of the source the step sees, and what its cache key is made of.
    pub inputs: Vec<String>,
    /// The script in the badger folder (relative), default `deps.sh`.
    #[serde(default = "default_script")]
    pub script: String,
}

fn default_script() -> String {
    DEFAULT_DEPENDENCIES_SCRIPT.to_string()
}

/// The detect rule: the badger matches a source holding any of `files` at its top.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    /// Lower runs first; ties go by badger name.
    pub order: i64,
    /// Names relative to the source root (`package.json`, `go.mod`).
    pub files: Vec<String>,
}

/// A relative path with only normal components, as a source or badger folder may hold it.
pub fn relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Whether relative path `inner` is `outer` or lies below it.
fn is_within(inner: &str, outer: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A bounded list of relative paths at `field`. With `refuse_nested`, no path may lie inside
/// another (a dependency input inside another would be staged, digested and left out of
/// the layer twice).
fn path_list(
    d: &mut Decoder<'_>,
    n: &Node<'_>,
    field: &str,
    refuse_nested: bool,
) -> Option<Vec<String>> {
    let items = d.string_list(n, field)?;
    if items.is_empty() {
        d.error(n, field, Problem::Empty);
        return None;
    }
    if items.len() > MAX_PATHS {
        let value = items.len() as i64;
        let max = MAX_PATHS as i64;
        d.error(n, field, Problem::OutOfRange { value, min: 1, max });
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, (path, at)) in items.into_iter().enumerate() {
        if !relative_path(&path) {
            let problem = Problem::Pattern {
                value: path,
                pattern: RELATIVE_PATH,
            };
            d.error_at(at, &format!("{field}[{i}]"), problem);
        } else if out.contains(&path) {
            d.error_at(
                at,
                &format!("{field}[{i}]"),
                Problem::Duplicate { value: path },
            );
        } else if let Some(other) = out
            .iter()
            .find(|o| refuse_nested && (is_within(&path, o) || is_within(o, &path)))
        {
            let (inner, outer) = if is_within(&path, other) {
                (path.clone(), other.clone())
            } else {
                (other.clone(), path.clone())
            };
            d.error_at(
                at,
                &format!("{field}[{i}]"),
                Problem::Nested { inner, outer },
            );
        } else {
            out.push(path);
        }
    }
    Some(out)
}

/// Decodes `dependencies:`.
pub(super) fn dependencies(d: &mut Decoder<'_>, n: &Node<'_>) -> Option<Dependencies> {
    let f = d.mapping(n, "dependencies", DEPENDENCIES_KEYS)?;
    let inputs = match f.get("inputs") {
        Some(i) => path_list(d, i, &f.path_of("inputs"), true),
        None => {
            d.error(n, &f.path_of("inputs"), Problem::Missing);
            None
        }
    };
    let mut script = default_script();
    if let Some(s) = f.get("script") {
        let field = f.path_of("script");
        if let Some(value) = d.nonempty_string(s, &field) {
            if !relative_path(&value) {
                d.error(
                    s,
                    &field,
                    Problem::EscapingPath {
                        value: value.clone(),
                    },
                );
            }
            script = value;
        }
    }
    Some(Dependencies {
        inputs: inputs?,
        script,
    })
}

/// Decodes `detect:`.
pub(super) fn detect(d: &mut Decoder<'_>, n: &Node<'_>) -> Option<Detect> {
    let f = d.mapping(n, "detect", DETECT_KEYS)?;
    let order = match f.get("order") {
        Some(o) => d.integer_in(o, &f.path_of("order"), 0, MAX_ORDER),
        None => {
            d.error(n, &f.path_of("order"), Problem::Missing);
            None
        }
    };
    let files = match f.get("files") {
        Some(i) => path_list(d, i, &f.path_of("files"), false),
        None => {
            d.error(n, &f.path_of("files"), Problem::Missing);
            None
        }
    };
    Some(Detect {
        order: order?,
        files: files?,
    })
}
