//! Image references in the words skopeo and podman use: a store name, `oci:`,
//! `oci-archive:`, `docker-archive:` and `docker://`. Parsing is pure; opening the image a
//! reference names is the job of `transport`.

use crate::error_class::{Classify, ErrorClass};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Why a reference was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid image name {name:?} in {reference:?}: {reason}")]
    InvalidName {
        reference: String,
        name: String,
        reason: &'static str,
    },
    #[error("{reference:?} names no path: write {transport}PATH[:TAG]")]
    MissingPath {
        reference: String,
        transport: &'static str,
    },
    #[error("invalid registry reference {reference:?}: {reason} (expected docker://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST])")]
    InvalidRegistry {
        reference: String,
        reason: &'static str,
    },
    #[error("unknown transport {transport:?} in {reference:?}: use NAME[:TAG], oci:, oci-archive:, docker-archive: or docker://")]
    UnknownTransport {
        reference: String,
        transport: String,
    },
}

impl Classify for ReferenceError {
    fn class(&self) -> ErrorClass {
        match self {
            ReferenceError::Empty
            | ReferenceError::InvalidName { .. }
            | ReferenceError::MissingPath { .. }
            | ReferenceError::InvalidRegistry { .. }
            | ReferenceError::UnknownTransport { .. } => ErrorClass::Input,
        }
    }
}

/// Where an image lives, and which one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageReference {
    /// `NAME[:TAG]` in the local store; the name is kept exactly as written.
    Store { name: String },
    /// `oci:DIR[:NAME]`: an OCI image layout directory; no name means the only image in it.
    Layout { path: PathBuf, name: Option<String> },
    /// `oci-archive:FILE[:NAME]`: a tar of an OCI image layout.
    OciArchive { path: PathBuf, name: Option<String> },
    /// `docker-archive:FILE[:NAME:TAG]`: what `docker save` writes and `podman load` reads.
    DockerArchive { path: PathBuf, name: Option<String> },
    /// `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`.
    Registry {
        registry: String,
        repository: String,
        tag: Option<String>,
        digest: Option<String>,
    },
}

impl ImageReference {
    /// A short word for the transport, for messages.
    pub fn transport(&self) -> &'static str {
        match self {
            ImageReference::Store { .. } => "store",
            ImageReference::Layout { .. } => "oci",
            ImageReference::OciArchive { .. } => "oci-archive",
            ImageReference::DockerArchive { .. } => "docker-archive",
            ImageReference::Registry { .. } => "docker",
        }
    }
}

/// Checks a store or layout image name: `[a-zA-Z0-9._-]` components joined by `/`, an
/// optional `:tag`, the characters `org.opencontainers.image.ref.name` allows, and nothing
/// that could be read as a path or an option.
pub fn validate_name(reference: &str, name: &str) -> Result<(), ReferenceError> {
    let invalid = |reason| ReferenceError::InvalidName {
        reference: reference.to_string(),
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name.len() > 255 {
        return Err(invalid("the name is longer than 255 characters"));
    }
    if name.starts_with('-') {
        return Err(invalid("a name may not start with '-'"));
    }
    let (path, tag) = match name.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, Some(tag)),
        _ => (name, None),
    };
    for component in path.split('/') {
        if component.is_empty() {
            return Err(invalid("empty path component"));
        }
        if component == "." || component == ".." {
            return Err(invalid("'.' and '..' are not names"));
        }
        if !component
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(invalid(
                "names use letters, digits, '.', '_', '-' and '/' between components",
            ));
        }
    }
    if let Some(tag) = tag {
        if tag.is_empty()
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(invalid(
                "a tag uses letters, digits, '.', '_' and '-' and is not empty",
            ));
        }
    }
    Ok(())
}

/// A registry host as the distribution reference grammar has it: DNS labels of letters,
/// digits and `-` joined by `.`, or a bracketed IPv6 address, then an optional `:port`.
/// Nothing that could change the URL it is put in (`/`, `@`, `?`, `#`, spaces).
pub fn validate_host(host: &str) -> Result<(), &'static str> {
    const BAD: &str =
        "the host is DNS labels (letters, digits, '-') or [IPv6], with an optional :port";
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or(BAD)?;
        if address.is_empty()
            || !address
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b":.".contains(&b))
        {
            return Err(BAD);
        }
        match after {
            "" => return Ok(()),
            _ => ("ipv6", after.strip_prefix(':').ok_or(BAD)?),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, port),
            None => (host, "0"),
        }
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BAD);
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(BAD);
    }
    Ok(())
}

/// A repository path by the distribution spec: components of `[a-z0-9]+` joined by one
/// `.`, one or two `_`, or any number of `-`, separated by `/`; at most 255 characters.
/// So never `..`, `.`, an empty component, or anything a URL would read as syntax.
pub fn validate_repository(repository: &str) -> Result<(), &'static str> {
    const BAD: &str = "a repository is components of lowercase letters and digits, joined inside by '.', '_', '__' or '-', separated by '/' (no '.' or '..')";
    if repository.is_empty() || repository.len() > 255 {
        return Err(BAD);
    }
    for component in repository.split('/') {
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err(BAD);
        }
        // Runs of separators between alphanumerics: `.`, `_`, `__` or `-+`.
        let mut run: &[u8] = &[];
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if alnum(b) {
                if !run.is_empty() {
                    let ok = run == b"."
                        || run == b"_"
                        || run == b"__"
                        || run.iter().all(|&c| c == b'-');
                    if !ok {
                        return Err(BAD);
                    }
                    run = &[];
                }
                start = i + 1;
            } else if b"._-".contains(&b) {
                run = &bytes[start..=i];
            } else {
                return Err(BAD);
            }
        }
    }
    Ok(())
}

/// A tag by the distribution spec: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), &'static str> {
    const BAD: &str =
        "a tag is 1 to 128 of letters, digits, '.', '_', '-', not starting with '.' or '-'";
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
    if ok {
        Ok(())
    } else {
        Err(BAD)
    }
}

fn split_path_and_name(
    reference: &str,
    rest: &str,
    transport: &'static str,
) -> Result<(PathBuf, Option<String>), ReferenceError> {
    // The first colon separates the path from the name, as in containers/image: a path
    // cannot hold a colon, a name (`badgers/python3:3.11`) can.
    let (path, name) = match rest.split_once(':') {
        Some((path, name)) => (path, Some(name)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(ReferenceError::MissingPath {
            reference: reference.to_string(),
            transport,
        });
    }
    let name = match name {
        Some("") | None => None,
        Some(name) => {
            validate_name(reference, name)?;
            Some(name.to_string())
        }
    };
    Ok((PathBuf::from(path), name))
}

fn parse_registry(reference: &str, rest: &str) -> Result<ImageReference, ReferenceError> {
    let invalid = |reason| ReferenceError::InvalidRegistry {
        reference: reference.to_string(),
        reason,
    };
    let rest = rest.trim_start_matches("//");
    let (host, path) = rest
        .split_once('/')
        .ok_or_else(|| invalid("no repository after the host"))?;
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    let (path, digest) = match path.split_once('@') {
        Some((path, digest)) => {
            digest
                .parse::<crate::image::Digest>()
                .map_err(|_| invalid("the digest is not sha256:<64 hex digits>"))?;
            (path, Some(digest.to_string()))
        }
        None => (path, None),
    };
    let (repository, tag) = match path.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag.to_string())),
        _ => (path, None),
    };
    validate_host(host).map_err(invalid)?;
    validate_repository(repository).map_err(invalid)?;
    if let Some(tag) = &tag {
        validate_tag(tag).map_err(invalid)?;
    }
    Ok(ImageReference::Registry {
        registry: host.to_string(),
        repository: repository.to_string(),
        tag,
        digest,
    })
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(reference: &str) -> Result<ImageReference, ReferenceError> {
        if reference.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if let Some(rest) = reference.strip_prefix("oci-archive:") {
            let (path, name) = split_path_and_name(reference, rest, "oci-archive:")?;
            return Ok(ImageReference::OciArchive { path, name });
        }
        if let Some(rest) = reference.strip_prefix("oci:") {
            let (path, name) = split_path_and_name(reference, rest, "oci:")?;
            return Ok(ImageReference::Layout { path, name });
        }
        if let Some(rest) = reference.strip_prefix("docker-archive:") {
            let (path, name) = split_path_and_name(reference, rest, "docker-archive:")?;
            return Ok(ImageReference::DockerArchive { path, name });
        }
        if let Some(rest) = reference.strip_prefix("docker:") {
            return parse_registry(reference, rest);
        }
        // `scheme:…` with an unknown scheme is a typo, not a store name with a tag: a store
        // name's colon is followed by a tag, never by `/`.
        if let Some((scheme, rest)) = reference.split_once(':') {
            if rest.starts_with('/')
                || ["containers-storage", "dir", "docker-daemon"].contains(&scheme)
            {
                return Err(ReferenceError::UnknownTransport {
                    reference: reference.to_string(),
                    transport: scheme.to_string(),
                });
            }
        }
        validate_name(reference, reference)?;
        Ok(ImageReference::Store {
            name: reference.to_string(),
        })
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_name =
            |f: &mut fmt::Formatter<'_>, prefix: &str, path: &PathBuf, name: &Option<String>| {
                write!(f, "{prefix}{}", path.display())?;
                if let Some(name) = name {
                    write!(f, ":{name}")?;
                }
                Ok(())
            };
        match self {
            ImageReference::Store { name } => write!(f, "{name}"),
            ImageReference::Layout { path, name } => with_name(f, "oci:", path, name),
            ImageReference::OciArchive { path, name } => with_name(f, "oci-archive:", path, name),
            ImageReference::DockerArchive { path, name } => {
                with_name(f, "docker-archive:", path, name)
            }
            ImageReference::Registry {
                registry,
                repository,
                tag,
                digest,
            } => {
                write!(f, "docker://{registry}/{repository}")?;
                if let Some(tag) = tag {
                    write!(f, ":{tag}")?;
                }
                if let Some(digest) = digest {
                    write!(f, "@{digest}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ImageReference {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn store_names_keep_their_tag() {
        assert_eq!(
            parse("badgers/python3:3.11"),
            ImageReference::Store {
                name: "badgers/python3:3.11".into()
            }
        );
        assert_eq!(parse("helloworld").to_string(), "helloworld");
    }

    #[test]
    fn layout_and_archive_references_split_at_the_first_colon() {
        assert_eq!(
            parse("oci:/tmp/layout:badgers/python3:3.11"),
            ImageReference::Layout {
                path: "/tmp/layout".into(),
                name: Some("badgers/python3:3.11".into())
            }
        );
        assert_eq!(
            parse("oci-archive:img.tar"),
            ImageReference::OciArchive {
                path: "img.tar".into(),
                name: None
            }
        );
        assert_eq!(
            parse("docker-archive:out.tar:hello:1.0").to_string(),
            "docker-archive:out.tar:hello:1.0"
        );
    }

    #[test]
    fn registry_references_parse_host_repo_tag_and_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse(&format!("docker://127.0.0.1:5000/org/app:1.0@{digest}")),
            ImageReference::Registry {
                registry: "127.0.0.1:5000".into(),
                repository: "org/app".into(),
                tag: Some("1.0".into()),
                digest: Some(digest)
            }
        );
        assert!("docker://host".parse::<ImageReference>().is_err());
        assert!("docker://host/Upper".parse::<ImageReference>().is_err());
        assert_eq!(
            parse("docker://[::1]:5000/a.b/c__d/e---f:v1.0_x").to_string(),
            "docker://[::1]:5000/a.b/c__d/e---f:v1.0_x"
        );
    }

    /// Issue 10 W10: repository paths, tags and hosts follow the distribution grammar, so
    /// nothing a URL reads as syntax (`..`, `?`, `#`, `@`) reaches a request.
    #[test]
    fn registry_references_follow_the_distribution_grammar() {
        for bad in [
            "docker://host/../../x/..:1",
            "docker://host/..",
            "docker://host/a/./b",
            "docker://host/a/.b",
            "docker://host/a./b",
            "docker://host/a..b",
            "docker://host/a___b",
            "docker://host/a_-b",
            "docker://host/a%2e%2e/b",
            "docker://host/a?x=1",
            "docker://host/a#b",
            "docker://host/a:.tag",
            "docker://host/a:-tag",
            "docker://host/a:t?g",
            "docker://host/a:../b",
            "docker://ho st/a",
            "docker://host:/a",
            "docker://host:99999x/a",
            "docker://user@host/a",
            "docker://-host/a",
            "docker://[zz]/a",
        ] {
            let error = bad.parse::<ImageReference>().unwrap_err();
            assert!(
                matches!(error, ReferenceError::InvalidRegistry { .. }),
                "{bad:?}: {error}"
            );
            assert!(error.to_string().contains(bad), "{error}");
        }
        let long_tag = format!("docker://host/a:{}", "t".repeat(129));
        assert!(long_tag.parse::<ImageReference>().is_err());
        for good in [
            "docker://localhost:5000/a-b/c_d:Latest",
            "docker://r.example/x:_1",
        ] {
            parse(good);
        }
    }

    #[test]
    fn hostile_or_malformed_names_are_rejected() {
        for bad in [
            "",
            "../x",
            "a//b",
            "a/./b",
            "-rf",
            "name:",
            "na me",
            "oci:",
            "ftp://x/y",
        ] {
            assert!(bad.parse::<ImageReference>().is_err(), "{bad:?} accepted");
        }
    }
}
