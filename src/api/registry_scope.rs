//! The server's registry credentials, scoped to the registries they were given for.
//! `serve --creds` (and the credential files of the server's user) are for the registry
//! of `--push-to`; `--registry-creds HOST=USER:PASS` adds credentials for one more host.
//! Any other registry a request names (`POST /v1/dus` with `docker://elsewhere/x`, a
//! `badger: docker://elsewhere/…`) is reached anonymously: no `--creds`, no credential
//! file, no credential helper. This module picks the client per reference; the registry
//! code itself does the talking.

use crate::image::ImageReference;
use crate::registry::{ClientPerRegistry, Credentials, RegistryClient, RegistryOptions};
use std::collections::HashMap;
use std::path::Path;

/// A registry transport that sends credentials only to their own hosts.
pub struct ScopedRegistry {
    /// The server's options as given, for the `--push-to` host.
    configured: RegistryClient,
    push_host: Option<String>,
    /// `--registry-creds`: host → a client with only those credentials.
    extra: HashMap<String, RegistryClient>,
    /// Everything else.
    anonymous: RegistryClient,
}

fn host_key(host: &str) -> String {
    host.to_ascii_lowercase()
}

impl ScopedRegistry {
    /// `no_credentials_file` is a path that never exists: given as the only credential
    /// file, it makes the registry code read none (a missing `--authfile` means none).
    pub fn new(
        configured: RegistryClient,
        push_host: Option<&str>,
        extra: &[(String, Credentials)],
        no_credentials_file: &Path,
    ) -> ScopedRegistry {
        let anonymous_options = RegistryOptions {
            creds: None,
            authfile: Some(no_credentials_file.to_path_buf()),
            ..configured.options.clone()
        };
        let extra = extra
            .iter()
            .map(|(host, creds)| {
                let options = RegistryOptions {
                    creds: Some(creds.clone()),
                    ..anonymous_options.clone()
                };
                (host_key(host), RegistryClient { options })
            })
            .collect();
        ScopedRegistry {
            configured,
            push_host: push_host.map(host_key),
            extra,
            anonymous: RegistryClient {
                options: anonymous_options,
            },
        }
    }
}

impl ScopedRegistry {
    /// Whether the `--push-to` registry answers (none: no push registry).
    pub fn push_host_reachable(&self) -> Option<Result<(), crate::registry::RegistryError>> {
        let host = self.push_host.as_deref()?;
        Some(crate::registry::credentials::reachable(
            host,
            &self.configured.options,
        ))
    }
}

impl ClientPerRegistry for ScopedRegistry {
    /// The client for the registry `reference` names.
    fn client_for(&self, reference: &ImageReference) -> &RegistryClient {
        let ImageReference::Registry { registry, .. } = reference else {
            return &self.anonymous;
        };
        let host = host_key(registry);
        if self.push_host.as_deref() == Some(host.as_str()) {
            return &self.configured;
        }
        self.extra.get(&host).unwrap_or(&self.anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_only_to_their_hosts() {
        let configured = RegistryClient {
            options: RegistryOptions {
                creds: Some(Credentials::new("push", "secret")),
                ..RegistryOptions::default()
            },
        };
        let scoped = ScopedRegistry::new(
            configured,
            Some("Registry.Example:5000"),
            &[("mirror.example".into(), Credentials::new("m", "pw"))],
            Path::new("/nonexistent/none.json"),
        );
        let user = |text: &str| {
            let reference: ImageReference = text.parse().unwrap();
            let options = &scoped.client_for(&reference).options;
            (
                options.creds.as_ref().map(|c| format!("{c:?}")),
                options.authfile.clone(),
            )
        };
        assert!(user("docker://registry.example:5000/apps/x:1").0.is_some());
        assert!(user("docker://registry.example:5000/apps/x:1").1.is_none());
        let (creds, authfile) = user("docker://attacker.example:5901/x:1");
        assert!(creds.is_none());
        assert_eq!(authfile.unwrap(), Path::new("/nonexistent/none.json"));
        // The same host on another port is another registry.
        assert!(user("docker://registry.example:5001/x:1").0.is_none());
        let (creds, _) = user("docker://mirror.example/b:1");
        assert!(creds.unwrap().contains("\"m\""));
    }
}
