//! Package URLs (purl) of what the catalogers found, and the names the documents show.
//! Every part that came from the image is percent-encoded, so a hostile name cannot add a
//! qualifier or a path segment of its own.

use super::catalog_os::OsRelease;
use super::{Ecosystem, Package};

/// The purl of `package`; Debian's carry the distribution from `os`.
pub(super) fn purl(package: &Package, os: Option<&OsRelease>) -> String {
    let version = format!("@{}", encode(&package.version));
    match package.ecosystem {
        Ecosystem::Deb => {
            let id = os.and_then(|os| os.id.as_deref()).unwrap_or("debian");
            let mut qualifiers = Vec::new();
            if let Some(arch) = &package.arch {
                qualifiers.push(format!("arch={}", encode(arch)));
            }
            if let Some(os) = os {
                match (&os.id, &os.version_id) {
                    (Some(id), Some(version)) => {
                        qualifiers.push(format!("distro={}-{}", encode(id), encode(version)));
                    }
                    (Some(id), None) => qualifiers.push(format!("distro={}", encode(id))),
                    _ => {}
                }
            }
            let qualifiers = if qualifiers.is_empty() {
                String::new()
            } else {
                format!("?{}", qualifiers.join("&"))
            };
            format!(
                "pkg:deb/{}/{}{version}{qualifiers}",
                encode(id),
                encode(&package.name)
            )
        }
        Ecosystem::Python => format!("pkg:pypi/{}{version}", encode(&pypi_name(&package.name))),
        Ecosystem::Go => {
            // The main module of a binary built from a checkout has no version.
            let version = if package.version == "(devel)" {
                String::new()
            } else {
                version
            };
            format!("pkg:golang/{}{version}", encode_segments(&package.name))
        }
        Ecosystem::Npm => format!("pkg:npm/{}{version}", namespaced(package)),
        Ecosystem::Maven => format!("pkg:maven/{}{version}", namespaced(package)),
        Ecosystem::Composer => format!("pkg:composer/{}{version}", namespaced(package)),
        Ecosystem::Gem => format!("pkg:gem/{}{version}", encode(&package.name)),
    }
}

/// The purl of an OCI image (a badger) by its manifest digest.
pub(super) fn oci(name: &str, digest: &str, tag: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    format!(
        "pkg:oci/{}@{}?tag={}",
        encode(&last),
        encode(digest),
        encode(tag)
    )
}

/// The name a person knows the package by: `@scope/name`, `group:artifact`, `vendor/name`.
pub(super) fn display_name(package: &Package) -> String {
    match (&package.namespace, package.ecosystem) {
        (Some(group), Ecosystem::Maven) => format!("{group}:{}", package.name),
        (Some(namespace), _) => format!("{namespace}/{}", package.name),
        (None, _) => package.name.clone(),
    }
}

/// PEP 503's normalized name: lower case, runs of `-`, `_`, `.` as one `-`.
fn pypi_name(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !normalized.ends_with('-') {
                normalized.push('-');
            }
        } else {
            normalized.extend(c.to_lowercase());
        }
    }
    normalized
}

fn namespaced(package: &Package) -> String {
    match &package.namespace {
        Some(namespace) => format!("{}/{}", encode_segments(namespace), encode(&package.name)),
        None => encode(&package.name),
    }
}

/// Each `/`-separated segment encoded on its own (empty segments dropped).
fn encode_segments(path: &str) -> String {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .map(encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(
        ecosystem: Ecosystem,
        namespace: Option<&str>,
        name: &str,
        version: &str,
    ) -> Package {
        Package::new(ecosystem, namespace, name, version)
    }

    #[test]
    fn purls_of_each_ecosystem() {
        let os = OsRelease {
            id: Some("debian".into()),
            version_id: Some("12".into()),
        };
        let mut deb = package(Ecosystem::Deb, None, "libc6", "2.36-9+deb12u4");
        deb.arch = Some("amd64".into());
        assert_eq!(
            purl(&deb, Some(&os)),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
        let epoch = package(Ecosystem::Deb, None, "perl", "1:5.36");
        assert_eq!(purl(&epoch, None), "pkg:deb/debian/perl@1%3A5.36");
        assert_eq!(
            purl(
                &package(Ecosystem::Python, None, "Typing_Extensions", "4.9.0"),
                None
            ),
            "pkg:pypi/typing-extensions@4.9.0"
        );
        assert_eq!(
            purl(
                &package(Ecosystem::Npm, Some("@babel"), "core", "7.0.0"),
                None
            ),
            "pkg:npm/%40babel/core@7.0.0"
        );
        assert_eq!(
            purl(
                &package(Ecosystem::Go, None, "golang.org/x/text", "v0.14.0"),
                None
            ),
            "pkg:golang/golang.org/x/text@v0.14.0"
        );
        assert_eq!(
            purl(
                &package(Ecosystem::Maven, Some("org.slf4j"), "slf4j-api", "2.0.9"),
                None
            ),
            "pkg:maven/org.slf4j/slf4j-api@2.0.9"
        );
        assert_eq!(
            purl(&package(Ecosystem::Gem, None, "rake", "13.0.6"), None),
            "pkg:gem/rake@13.0.6"
        );
        assert_eq!(
            purl(
                &package(Ecosystem::Composer, Some("monolog"), "monolog", "3.5.0"),
                None
            ),
            "pkg:composer/monolog/monolog@3.5.0"
        );
    }

    #[test]
    fn hostile_names_stay_inside_their_part() {
        let hostile = package(Ecosystem::Gem, None, "x?arch=evil#frag/..", "1@2");
        assert_eq!(
            purl(&hostile, None),
            "pkg:gem/x%3Farch%3Devil%23frag%2F..@1%402"
        );
    }
}
