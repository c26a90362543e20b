//! Which registry, repository and tag or digest a pull or push talks about, and the URLs of
//! the distribution API built from them. Pure: no I/O.

use super::RegistryError;
use crate::image::{Digest, ImageReference};
use std::fmt;

/// `HOST[:PORT]/REPO[:TAG|@DIGEST]` of a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryTarget {
    /// `host[:port]` as written; `docker.io` is reached at `registry-1.docker.io`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RegistryTarget {
    pub fn new(registry: &str, repository: &str, tag: Option<&str>) -> RegistryTarget {
        RegistryTarget {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_owned),
            digest: None,
        }
    }

    /// What to put after `/manifests/`: the digest when there is one (it pins the content),
    /// else the tag, else `latest`.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The host the API lives on.
    pub(crate) fn api_host(&self) -> &str {
        api_host(&self.registry)
    }
}

/// Docker Hub's name differs from its API host; every other registry is its own host.
pub(crate) fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// `localhost`, `127.0.0.0/8` and `::1`: docker treats them as insecure registries.
pub(crate) fn is_loopback(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl TryFrom<&ImageReference> for RegistryTarget {
    type Error = RegistryError;

    fn try_from(reference: &ImageReference) -> Result<RegistryTarget, RegistryError> {
        let ImageReference::Registry {
            registry,
            repository,
            tag,
            digest,
        } = reference
        else {
            return Err(RegistryError::NotARegistry {
                reference: reference.to_string(),
            });
        };
        let digest = match digest {
            Some(text) => {
                Some(
                    text.parse::<Digest>()
                        .map_err(|_| RegistryError::NotARegistry {
                            reference: reference.to_string(),
                        })?,
                )
            }
            None => None,
        };
        // Docker Hub's official images live under `library/`.
        let repository = if api_host(registry) != registry.as_str() && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.clone()
        };
        Ok(RegistryTarget {
            registry: registry.clone(),
            repository,
            tag: tag.clone(),
            digest,
        })
    }
}

impl fmt::Display for RegistryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "docker://{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_from_a_registry_reference_and_picks_the_manifest_reference() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let reference: ImageReference = format!("docker://127.0.0.1:5000/org/app:1.0@{digest}")
            .parse()
            .unwrap();
        let target = RegistryTarget::try_from(&reference).unwrap();
        assert_eq!(target.registry, "127.0.0.1:5000");
        assert_eq!(target.repository, "org/app");
        assert_eq!(target.reference(), digest);
        assert_eq!(
            target.to_string(),
            format!("docker://127.0.0.1:5000/org/app:1.0@{digest}")
        );
        let untagged = RegistryTarget::new("r.example", "x", None);
        assert_eq!(untagged.reference(), "latest");
        let hub: ImageReference = "docker://docker.io/busybox".parse().unwrap();
        let hub = RegistryTarget::try_from(&hub).unwrap();
        assert_eq!(
            (hub.api_host(), hub.repository.as_str()),
            ("registry-1.docker.io", "library/busybox")
        );
        let store: ImageReference = "name:tag".parse().unwrap();
        assert!(RegistryTarget::try_from(&store).is_err());
    }

    #[test]
    fn loopback_hosts_are_recognised_with_and_without_ports() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["registry.example:5000", "10.0.0.1", "localhost.example"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
