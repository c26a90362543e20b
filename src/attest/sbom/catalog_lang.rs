//! Language package managers' metadata files: Python's `METADATA`/`PKG-INFO`, npm's
//! `package.json` and `package-lock.json`, RubyGems' installed gemspecs and composer's
//! `installed.json`. Parsing only, of bytes [`super::layers`] already bounded; a file that
//! does not parse gives `None`.

use serde_json::Value;

use super::{Ecosystem, Limits, Package};

/// Lockfile nesting (npm v1 `dependencies` within `dependencies`) followed at most.
const LOCK_DEPTH: usize = 64;

/// A Python distribution: the `Name:` and `Version:` headers of its core metadata (the
/// header block ends at the first blank line; the body is the description).
pub(super) fn python_metadata(bytes: &[u8]) -> Option<Vec<Package>> {
    let text = String::from_utf8_lossy(bytes);
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Name:") {
            name.get_or_insert(value.trim());
        } else if let Some(value) = line.strip_prefix("Version:") {
            version.get_or_insert(value.trim());
        }
    }
    Some(vec![Package::new(Ecosystem::Python, None, name?, version?)])
}

/// An installed npm package's `name` and `version`; a scoped name keeps its `@scope` as the
/// namespace.
pub(super) fn npm_package(bytes: &[u8]) -> Option<Vec<Package>> {
    let json: Value = serde_json::from_slice(bytes).ok()?;
    let name = json.get("name")?.as_str()?;
    let version = json.get("version")?.as_str()?;
    Some(vec![npm(name, version)?])
}

fn npm(full_name: &str, version: &str) -> Option<Package> {
    let (namespace, name) = match full_name.split_once('/') {
        Some((scope, name)) if scope.starts_with('@') => (Some(scope), name),
        Some(_) => return None,
        None => (None, full_name),
    };
    Some(Package::new(Ecosystem::Npm, namespace, name, version))
}

/// The packages a `package-lock.json` names: lockfile v2/v3 `packages` (keys
/// `node_modules/…`; links and the root skipped), else v1's nested `dependencies`.
pub(super) fn npm_lock(bytes: &[u8], limits: &Limits) -> Option<Vec<Package>> {
    let json: Value = serde_json::from_slice(bytes).ok()?;
    let mut packages = Vec::new();
    if let Some(entries) = json.get("packages").and_then(Value::as_object) {
        for (key, entry) in entries {
            let Some((_, name)) = key.rsplit_once("node_modules/") else {
                continue;
            };
            if entry.get("link").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let name = entry.get("name").and_then(Value::as_str).unwrap_or(name);
            if let Some(version) = entry.get("version").and_then(Value::as_str) {
                packages.extend(npm(name, version));
            }
            if packages.len() >= limits.packages {
                break;
            }
        }
    } else if let Some(dependencies) = json.get("dependencies") {
        lock_v1(dependencies, 0, limits, &mut packages);
    }
    Some(packages)
}

fn lock_v1(dependencies: &Value, depth: usize, limits: &Limits, packages: &mut Vec<Package>) {
    let Some(dependencies) = dependencies.as_object() else {
        return;
    };
    if depth >= LOCK_DEPTH {
        return;
    }
    for (name, entry) in dependencies {
        if packages.len() >= limits.packages {
            return;
        }
        if let Some(version) = entry.get("version").and_then(Value::as_str) {
            packages.extend(npm(name, version));
        }
        if let Some(nested) = entry.get("dependencies") {
            lock_v1(nested, depth + 1, limits, packages);
        }
    }
}

/// An installed gem's specification: the `name` and `version` assignments RubyGems writes
/// (`s.name = "rake".freeze`, `s.version = "13.0.6"`). The Ruby is never run.
pub(super) fn gemspec(bytes: &[u8]) -> Option<Vec<Package>> {
    let text = String::from_utf8_lossy(bytes);
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        let Some((target, value)) = line.trim().split_once('=') else {
            continue;
        };
        let Some((_, field)) = target.trim().rsplit_once('.') else {
            continue;
        };
        let quoted = || {
            let value = value.trim();
            let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let rest = &value[1..];
            rest.find(quote).map(|end| &rest[..end])
        };
        match field {
            "name" => name = name.or_else(quoted),
            "version" => version = version.or_else(quoted),
            _ => {}
        }
    }
    Some(vec![Package::new(Ecosystem::Gem, None, name?, version?)])
}

/// Composer's record of installed packages: v1 is an array, v2 `{"packages": [...]}`; names
/// are `vendor/name`.
pub(super) fn composer_installed(bytes: &[u8], limits: &Limits) -> Option<Vec<Package>> {
    let json: Value = serde_json::from_slice(bytes).ok()?;
    let entries = match &json {
        Value::Array(entries) => entries,
        Value::Object(object) => object.get("packages")?.as_array()?,
        _ => return None,
    };
    let packages = entries
        .iter()
        .take(limits.packages)
        .filter_map(|entry| {
            let full_name = entry.get("name")?.as_str()?;
            let version = entry.get("version")?.as_str()?;
            let (vendor, name) = full_name.split_once('/')?;
            Some(Package::new(
                Ecosystem::Composer,
                Some(vendor),
                name,
                version,
            ))
        })
        .collect();
    Some(packages)
}
