//! TLS settings for one registry: the system's roots plus the CAs of a cert dir (the
//! containers `certs.d` layout), an optional client certificate from the same folder, or no
//! verification at all when asked. It reads certificate files and nothing else; whether to
//! use TLS at all is the client's decision.

use super::RegistryOptions;
use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use std::fs;
use std::path::{Path, PathBuf};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

/// A certificate folder or file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Io(#[from] IoAt),
    #[error("{path}: not a PEM file of certificates or a private key")]
    BadPem {
        path: PathBuf,
        #[source]
        source: ureq::Error,
    },
    #[error("{cert}: client certificate without its key {key}")]
    MissingKey { cert: PathBuf, key: PathBuf },
}

impl Classify for TlsError {
    fn class(&self) -> ErrorClass {
        match self {
            TlsError::Io(_) | TlsError::BadPem { .. } | TlsError::MissingKey { .. } => {
                ErrorClass::Failure
            }
        }
    }
}

/// The cert dir for a registry: the option, else the system's `certs.d` folder for the
/// host if there is one (containers' first, then docker's).
pub(crate) fn cert_dir(registry: &str, options: &RegistryOptions) -> Option<PathBuf> {
    if let Some(dir) = &options.cert_dir {
        return Some(dir.clone());
    }
    ["/etc/containers/certs.d", "/etc/docker/certs.d"]
        .iter()
        .map(|base| Path::new(base).join(registry))
        .find(|dir| dir.is_dir())
}

/// The TLS configuration for `registry`.
pub(crate) fn tls_config(registry: &str, options: &RegistryOptions) -> Result<TlsConfig, TlsError> {
    let mut builder = TlsConfig::builder();
    if options.tls_verify == Some(false) {
        builder = builder.disable_verification(true);
    }
    let mut extra_roots = Vec::new();
    if let Some(dir) = cert_dir(registry, options) {
        let (roots, client) = read_cert_dir(&dir)?;
        extra_roots = roots;
        builder = builder.client_cert(client);
    }
    // The system's bundle is preferred over ureq's compiled-in one (a corporate CA added
    // with `update-ca-certificates` lives only there); the compiled-in one stays for hosts
    // with no bundle at all.
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    if system_bundle_present() || !extra_roots.is_empty() {
        roots.extend(
            rustls_native_certs::load_native_certs()
                .certs
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned()),
        );
    }
    roots.extend(extra_roots);
    if !roots.is_empty() {
        builder = builder.root_certs(RootCerts::new_with_certs(&roots));
    }
    Ok(builder.build())
}

/// Whether the host has a CA bundle of its own.
fn system_bundle_present() -> bool {
    std::env::var_os("SSL_CERT_FILE").is_some()
        || Path::new("/etc/ssl/certs/ca-certificates.crt").is_file()
        || Path::new("/etc/pki/tls/certs/ca-bundle.crt").is_file()
}

/// Reads a `certs.d/HOST` folder: every `*.crt` is a CA to trust; `NAME.cert` with
/// `NAME.key` is the client certificate (the first one by name, as containers/image does).
fn read_cert_dir(dir: &Path) -> Result<(Vec<Certificate<'static>>, Option<ClientCert>), TlsError> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(IoAt::at(dir, "read the certificate folder"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    names.sort();
    let mut roots = Vec::new();
    let mut client = None;
    for path in names {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => roots.extend(read_certs(&path)?),
            Some("cert") if client.is_none() => {
                let key_path = path.with_extension("key");
                if !key_path.is_file() {
                    return Err(TlsError::MissingKey {
                        cert: path,
                        key: key_path,
                    });
                }
                let chain = read_certs(&path)?;
                let key = read_key(&key_path)?;
                client = Some(ClientCert::new_with_certs(&chain, key));
            }
            _ => {}
        }
    }
    Ok((roots, client))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    Ok(fs::read(path).map_err(IoAt::at(path, "read"))?)
}

fn read_certs(path: &Path) -> Result<Vec<Certificate<'static>>, TlsError> {
    let pem = read(path)?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(source) => {
                return Err(TlsError::BadPem {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKey<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKey::from_pem(&pem).map_err(|source| TlsError::BadPem {
        path: path.to_path_buf(),
        source,
    })
}
