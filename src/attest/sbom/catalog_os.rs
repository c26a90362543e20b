//! Debian packages from the dpkg database (`var/lib/dpkg/status`, and the one-file-per-
//! package `var/lib/dpkg/status.d/` of distroless images), and the distribution's identity
//! from `os-release`, which the Debian purls carry. Parsing only: the bytes come from
//! [`super::layers`], already bounded.

use super::{Ecosystem, Package};

/// What `os-release` says about the distribution.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OsRelease {
    /// `ID` (`debian`, `ubuntu`).
    pub id: Option<String>,
    /// `VERSION_ID` (`12`).
    pub version_id: Option<String>,
}

/// `KEY=value` lines; values may be quoted. Unknown keys and odd lines are ignored.
pub(super) fn os_release(bytes: &[u8]) -> OsRelease {
    let text = String::from_utf8_lossy(bytes);
    let mut release = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_string();
        let usable = !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~'));
        if !usable {
            continue;
        }
        match key.trim() {
            "ID" => release.id = Some(value.to_ascii_lowercase()),
            "VERSION_ID" => release.version_id = Some(value),
            _ => {}
        }
    }
    release
}

/// The installed packages of a status file: paragraphs separated by blank lines, with
/// `Status: install ok installed`. The files of `status.d/` sometimes carry no `Status`
/// (each is there because its package is installed), so `part` accepts its absence.
/// `None` when the file is not text. At most `max` packages: a status file of a million
/// one-line stanzas stops there instead of holding them all.
pub(super) fn dpkg_status(bytes: &[u8], part: bool, max: usize) -> Option<Vec<Package>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut packages = Vec::new();
    for paragraph in text.split("\n\n") {
        if packages.len() >= max {
            break;
        }
        let mut name = None;
        let mut version = None;
        let mut arch = None;
        let mut status = None;
        for line in paragraph.lines() {
            // Continuation lines (descriptions, conffiles) start with a blank.
            if line.starts_with([' ', '\t']) {
                continue;
            }
            let Some((field, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match field {
                "Package" => name = Some(value),
                "Version" => version = Some(value),
                "Architecture" => arch = Some(value),
                "Status" => status = Some(value),
                _ => {}
            }
        }
        let installed = match status {
            Some(status) => status == "install ok installed",
            None => part,
        };
        if let (true, Some(name), Some(version)) = (installed, name, version) {
            let mut package = Package::new(Ecosystem::Deb, None, name, version);
            package.arch = arch.map(str::to_string);
            packages.push(package);
        }
    }
    Some(packages)
}
