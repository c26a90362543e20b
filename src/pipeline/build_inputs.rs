//! Build-time inputs that never reach the image: the app's `build_environment` (and
//! `--build-env`), secrets (`--secret id=NAME,src=FILE`), extra CA certificates
//! (`--ca-cert FILE`, `serve --ca-cert FILE`) and, for `--network host` builds, the host's
//! proxy variables. They go into the environment and the mounts of the build and test steps
//! only: the DU's config, its DU annotation and its Heat snippet are made from the app's
//! `environment` alone, and the mounts are kept out of the diff like every mount point the
//! sandbox creates.
//!
//! In order: the CLI reads and checks the secret and certificate files once, at start
//! ([`Secret::from_flag`], [`CaCertificates::read`]); when the sandbox is prepared,
//! [`stage`] writes them into a private folder of the build's scratch (secrets at
//! `/run/secrets/NAME`, the bundle of the image's system certificates and the given ones at
//! [`CA_BUNDLE`]), both bound read-only, and returns the environment the steps get on top
//! of the build contract's. What a step prints is redacted (see [`super::redaction`]).
//!
//! The build cache key: `build_environment` is part of the app file, which the key digests;
//! of the secrets only their names count (like BuildKit, a changed secret value reuses the
//! recorded DU: the value must not decide the image); certificates and proxies change how
//! the network is reached, not what is built, and are not part of it. A proxy URL's
//! password is masked in what the build prints ([`host_proxy_passwords`]).

use super::workspace::Workspace;
use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use crate::manifest::AppFile;
use crate::report::Reporter;
use base64::Engine;
use runtime::BindMount;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The largest secret file `--secret` reads.
pub const MAX_SECRET_SIZE: u64 = 1 << 20;
/// The largest certificate file `--ca-cert` reads.
pub const MAX_CA_FILE_SIZE: u64 = 1 << 20;
/// Where secrets are mounted in the build and test steps, one file per secret.
pub const SECRETS_DIR: &str = "/run/secrets";
/// The folder holding [`CA_BUNDLE`], mounted read-only.
pub const CA_DIR: &str = "/run/solum";
/// The bundle of the image's system certificates and the given ones.
pub const CA_BUNDLE: &str = "/run/solum/ca-certificates.crt";
/// Where images keep their system bundle, in the order looked for: Debian, Ubuntu, Alpine;
/// Fedora, RHEL (the file its `/etc/pki/tls/certs/ca-bundle.crt` links to); openSUSE.
/// Only a regular file counts: a symlink is not followed (see [`Workspace::read_file`]).
const SYSTEM_BUNDLES: &[&str] = &[
    "etc/ssl/certs/ca-certificates.crt",
    "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "etc/ssl/ca-bundle.pem",
];

/// The variables the usual tools read for a CA bundle, all set to [`CA_BUNDLE`]: OpenSSL
/// and everything on it (Go, Ruby and bundler, PHP, git's OpenSSL builds), pip, requests,
/// curl, Node (added to its own roots), npm and yarn, git, composer, cargo, the AWS SDKs.
/// Maven reads no variable (its trust store is a JKS file given in `MAVEN_OPTS`).
const CA_VARIABLES: &[&str] = &[
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "npm_config_cafile",
    "GIT_SSL_CAINFO",
    "COMPOSER_CAFILE",
    "CARGO_HTTP_CAINFO",
    "AWS_CA_BUNDLE",
];

/// The host's proxy variables a `--network host` build gets, in both spellings, like
/// BuildKit's predefined proxy arguments.
const PROXY_VARIABLES: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "FTP_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "ftp_proxy",
];

/// Why a build-time input could not be read or given to the build.
#[derive(Debug, thiserror::Error)]
pub enum BuildInputError {
    #[error("--secret {given:?}: {reason}")]
    SecretFlag { given: String, reason: String },
    #[error("--secret id={id}: cannot read {path}")]
    SecretRead {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--secret id={id}: {path} is larger than {} KiB", MAX_SECRET_SIZE >> 10)]
    SecretTooLarge { id: String, path: PathBuf },
    #[error("--secret id={id} is given twice")]
    SecretTwice { id: String },
    #[error("{flag} {path}: cannot read it")]
    CaRead {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{flag} {path}: {reason}")]
    CaInvalid {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot give the build its secrets and certificates")]
    Stage(#[source] IoAt),
}

impl Classify for BuildInputError {
    fn class(&self) -> ErrorClass {
        match self {
            BuildInputError::Stage(inner) => inner.class(),
            _ => ErrorClass::Input,
        }
    }
}

/// Everything a build gets that its DU must not keep, besides the app file's
/// `build_environment` (which the app file carries).
#[derive(Clone, Debug, Default)]
pub struct BuildInputs {
    pub secrets: Vec<Secret>,
    pub ca_certificates: Option<CaCertificates>,
}

impl BuildInputs {
    /// Adds `secret`, refusing a second one of the same name.
    pub fn add_secret(&mut self, secret: Secret) -> Result<(), BuildInputError> {
        if self.secrets.iter().any(|s| s.id == secret.id) {
            return Err(BuildInputError::SecretTwice { id: secret.id });
        }
        self.secrets.push(secret);
        Ok(())
    }

    /// What of these inputs goes into the build cache key: the names of the secrets
    /// (sorted), never their values; `None` without secrets, so that the key of a build
    /// without any stays what it was.
    pub fn key_part(&self) -> Option<Vec<String>> {
        let mut names: Vec<String> = self.secrets.iter().map(|s| s.id.clone()).collect();
        names.sort();
        (!names.is_empty()).then_some(names)
    }
}

/// A secret: its name and value, read once. Its `Debug` shows the name only.
#[derive(Clone)]
pub struct Secret {
    pub id: String,
    value: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("id", &self.id)
            .field("value", &"****")
            .finish()
    }
}

impl Secret {
    /// `id=NAME,src=FILE` (`source=` too), as `--secret` takes it: NAME is
    /// `[A-Za-z0-9_.-]{1,64}` (not `.` or `..`), FILE is read here, at most
    /// [`MAX_SECRET_SIZE`] bytes.
    pub fn from_flag(given: &str) -> Result<Secret, BuildInputError> {
        let refused = |reason: &str| BuildInputError::SecretFlag {
            given: given.to_string(),
            reason: reason.to_string(),
        };
        let (mut id, mut src) = (None, None);
        for part in given.split(',') {
            match part.split_once('=') {
                Some(("id", value)) => id = Some(value),
                Some(("src" | "source", value)) => src = Some(value),
                Some(("type", "file")) => {}
                _ => return Err(refused("expected id=NAME,src=FILE")),
            }
        }
        let (Some(id), Some(src)) = (id, src) else {
            return Err(refused("expected id=NAME,src=FILE"));
        };
        if !valid_secret_name(id) {
            return Err(refused(
                "the name must be 1 to 64 of A-Z a-z 0-9 _ . - (not . or ..)",
            ));
        }
        let path = PathBuf::from(src);
        let value = read_bounded(&path, MAX_SECRET_SIZE)
            .map_err(|source| BuildInputError::SecretRead {
                id: id.to_string(),
                path: path.clone(),
                source,
            })?
            .ok_or_else(|| BuildInputError::SecretTooLarge {
                id: id.to_string(),
                path: path.clone(),
            })?;
        Ok(Secret {
            id: id.to_string(),
            value,
        })
    }

    /// A secret made from its parts (tests and callers with the value in hand).
    pub fn new(id: &str, value: &[u8]) -> Option<Secret> {
        valid_secret_name(id).then(|| Secret {
            id: id.to_string(),
            value: value.to_vec(),
        })
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

fn valid_secret_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Up to `limit` bytes of the file at `path`; `None` when it is longer. Anything but a
/// regular file (a FIFO that would block, a folder) is refused.
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// Extra CA certificates, checked: only the PEM `CERTIFICATE` blocks of the given files,
/// each base64 that decodes to a DER sequence, written out again one after another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaCertificates {
    pem: String,
    count: usize,
}

impl CaCertificates {
    /// Reads and checks `paths` (for the message: given by `flag`). A file without a
    /// certificate, or with a block that is not one, is refused.
    pub fn read(paths: &[PathBuf], flag: &'static str) -> Result<Option<Self>, BuildInputError> {
        let mut all = CaCertificates::default();
        for path in paths {
            let invalid = |reason: String| BuildInputError::CaInvalid {
                flag,
                path: path.clone(),
                reason,
            };
            let bytes = read_bounded(path, MAX_CA_FILE_SIZE)
                .map_err(|source| BuildInputError::CaRead {
                    flag,
                    path: path.clone(),
                    source,
                })?
                .ok_or_else(|| invalid(format!("larger than {} KiB", MAX_CA_FILE_SIZE >> 10)))?;
            let text =
                String::from_utf8(bytes).map_err(|_| invalid("not a PEM text file".into()))?;
            let found = pem_certificates(&text).map_err(invalid)?;
            if found.is_empty() {
                return Err(invalid("no -----BEGIN CERTIFICATE----- block in it".into()));
            }
            all.count += found.len();
            for block in found {
                all.pem.push_str(&block);
            }
        }
        Ok((all.count > 0).then_some(all))
    }

    /// The checked certificates, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

/// The `CERTIFICATE` blocks of a PEM text, re-encoded; an error names the first bad one.
fn pem_certificates(text: &str) -> Result<Vec<String>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let end = after
            .find(END)
            .ok_or_else(|| format!("certificate {} has no END line", blocks.len() + 1))?;
        let body: String = after[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&body)
            .map_err(|_| format!("certificate {} is not base64", blocks.len() + 1))?;
        // A certificate is a DER SEQUENCE; anything else is not one.
        if der.len() < 64 || der[0] != 0x30 {
            return Err(format!(
                "certificate {} is not a DER certificate",
                blocks.len() + 1
            ));
        }
        let mut block = String::from(BEGIN);
        block.push('\n');
        let encoded = base64::engine::general_purpose::STANDARD.encode(&der);
        for line in encoded.as_bytes().chunks(64) {
            block.push_str(&String::from_utf8_lossy(line));
            block.push('\n');
        }
        block.push_str(END);
        block.push('\n');
        blocks.push(block);
        rest = &after[end + END.len()..];
    }
    Ok(blocks)
}

/// The inputs written where the steps see them: kept for the build's life, removed with
/// it.
pub struct Staged {
    _dir: Option<tempfile::TempDir>,
    /// On top of the build contract's environment, in this order: `build_environment`,
    /// the proxies, the certificate variables.
    pub env: Vec<String>,
    pub mounts: Vec<BindMount>,
}

/// Writes `inputs` into a private folder of the workspace's scratch (so that a killed
/// build's are swept with it) and says how the steps get them (see the module's text).
/// `workspace` is read for the image's system bundle; a bundle without one is said to
/// `reporter`.
pub fn stage(
    inputs: &BuildInputs,
    app: &AppFile,
    workspace: &Workspace,
    network_host: bool,
    reporter: &dyn Reporter,
) -> Result<Staged, BuildInputError> {
    let mut env: Vec<String> = app
        .build_environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if network_host {
        env.extend(host_proxies(|name| std::env::var(name).ok()));
    }
    if inputs.secrets.is_empty() && inputs.ca_certificates.is_none() {
        return Ok(Staged {
            _dir: None,
            env,
            mounts: Vec::new(),
        });
    }
    let io = |path: &Path, action| {
        let path = path.to_path_buf();
        move |e| BuildInputError::Stage(IoAt::new(path, action, e))
    };
    let parent = workspace.scratch_dir();
    // 0700: the values are this user's alone (the sandbox's root is this user). Asked for
    // here: a temp folder is 0777 less the umask, and the scratch may be a shared folder
    // ($SOLUM_BUILD_SCRATCH).
    let dir = tempfile::Builder::new()
        .prefix(".inputs-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .map_err(io(parent, "create a folder in"))?;
    let mut mounts = Vec::new();
    if !inputs.secrets.is_empty() {
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).map_err(io(&secrets, "create"))?;
        for secret in &inputs.secrets {
            write_private(&secrets.join(&secret.id), &secret.value)?;
        }
        mounts.push(read_only(secrets, SECRETS_DIR));
    }
    if let Some(extra) = &inputs.ca_certificates {
        let trust = dir.path().join("trust");
        std::fs::create_dir(&trust).map_err(io(&trust, "create"))?;
        let system = SYSTEM_BUNDLES
            .iter()
            .find_map(|inner| workspace.read_file(inner));
        if system.is_none() {
            reporter.warning(
                "the badger has no CA bundle of its own (as a regular file at \
                 /etc/ssl/certs/ca-certificates.crt or the like): the build trusts the \
                 --ca-cert certificates alone",
            );
        }
        let mut bundle = system.unwrap_or_default();
        if !bundle.is_empty() && !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(extra.pem().as_bytes());
        write_private(&trust.join("ca-certificates.crt"), &bundle)?;
        mounts.push(read_only(trust, CA_DIR));
        env.extend(
            CA_VARIABLES
                .iter()
                .map(|name| format!("{name}={CA_BUNDLE}")),
        );
    }
    Ok(Staged {
        _dir: Some(dir),
        env,
        mounts,
    })
}

/// `NAME=VALUE` for each proxy variable `lookup` finds set (and not empty).
fn host_proxies(lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    PROXY_VARIABLES
        .iter()
        .filter_map(|name| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .map(|v| format!("{name}={v}"))
        })
        .collect()
}

/// The passwords in the host's proxy URLs (`http://user:PASSWORD@proxy:3128`) a
/// `--network host` build gets: what the build prints is masked of them like of a secret's
/// value (see [`super::redaction`]); none without `--network host`.
pub fn host_proxy_passwords(network_host: bool) -> Vec<String> {
    if !network_host {
        return Vec::new();
    }
    host_proxies(|name| std::env::var(name).ok())
        .iter()
        .filter_map(|entry| proxy_password(entry.split_once('=')?.1))
        .collect()
}

/// The password of the userinfo of `url`, if it has one.
fn proxy_password(url: &str) -> Option<String> {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    // The authority ends at the first `/`, `?` or `#`; the userinfo at its last `@`.
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_string())
}

fn read_only(source: PathBuf, target: &str) -> BindMount {
    BindMount {
        source,
        target: PathBuf::from(target),
        read_only: true,
        work: None,
    }
}

/// A file only this user can read, created new.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BuildInputError> {
    use std::io::Write;
    let failed = |action| {
        let path = path.to_path_buf();
        move |e| BuildInputError::Stage(IoAt::new(path, action, e))
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .map_err(failed("create"))?;
    file.write_all(bytes).map_err(failed("write"))?;
    // The mode asked for is masked by the umask; 0400 is what it must be.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400))
        .map_err(failed("set the mode of"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate's worth of DER: a SEQUENCE and enough bytes after it.
    fn fake_certificate() -> String {
        let mut der = vec![0x30, 0x82, 0x01, 0x00];
        der.extend(std::iter::repeat_n(7u8, 100));
        let body = base64::engine::general_purpose::STANDARD.encode(&der);
        format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    }

    #[test]
    fn a_secret_flag_is_id_and_src() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cr3t\n").unwrap();
        let secret = Secret::from_flag(&format!("id=token,src={}", file.display())).unwrap();
        assert_eq!(
            (secret.id.as_str(), secret.value()),
            ("token", &b"s3cr3t\n"[..])
        );
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        for bad in [
            "id=token".to_string(),
            format!("src={}", file.display()),
            format!("id=../x,src={}", file.display()),
            format!("id=..,src={}", file.display()),
            format!("id={},src={}", "a".repeat(65), file.display()),
            format!("id=a b,src={}", file.display()),
            format!("id=t,src={},mode=0644", file.display()),
        ] {
            let error = Secret::from_flag(&bad).unwrap_err();
            assert!(matches!(error, BuildInputError::SecretFlag { .. }), "{bad}");
        }
    }

    #[test]
    fn a_missing_or_large_secret_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let error = Secret::from_flag(&format!("id=t,src={}", missing.display())).unwrap_err();
        assert!(error.to_string().contains("--secret id=t"), "{error}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; (MAX_SECRET_SIZE + 1) as usize]).unwrap();
        let error = Secret::from_flag(&format!("id=t,src={}", big.display())).unwrap_err();
        assert!(matches!(error, BuildInputError::SecretTooLarge { .. }));
        assert_eq!(error.class(), ErrorClass::Input);
        let error = Secret::from_flag(&format!("id=t,src={}", dir.path().display())).unwrap_err();
        assert!(matches!(error, BuildInputError::SecretRead { .. }));
    }

    #[test]
    fn a_secret_twice_is_refused_and_only_names_are_keyed() {
        let mut inputs = BuildInputs::default();
        assert_eq!(inputs.key_part(), None);
        inputs
            .add_secret(Secret::new("b", b"one").unwrap())
            .unwrap();
        inputs
            .add_secret(Secret::new("a", b"two").unwrap())
            .unwrap();
        assert!(inputs.add_secret(Secret::new("a", b"x").unwrap()).is_err());
        assert_eq!(inputs.key_part(), Some(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn certificates_are_checked_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(
            &good,
            format!("junk\n{}{}", fake_certificate(), fake_certificate()),
        )
        .unwrap();
        let read = CaCertificates::read(std::slice::from_ref(&good), "--ca-cert")
            .unwrap()
            .unwrap();
        assert_eq!(read.count(), 2);
        assert!(!read.pem().contains("junk"));
        for (name, text) in [
            ("empty.pem", String::new()),
            (
                "key.pem",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            ),
            (
                "bad.pem",
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".into(),
            ),
            ("open.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n".into()),
            (
                "short.pem",
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let error = CaCertificates::read(&[path], "--ca-cert").unwrap_err();
            assert!(error.to_string().starts_with("--ca-cert "), "{error}");
        }
        assert_eq!(CaCertificates::read(&[], "--ca-cert").unwrap(), None);
    }

    #[test]
    fn proxies_are_both_spellings_and_skip_empty_ones() {
        let found = host_proxies(|name| match name {
            "HTTPS_PROXY" => Some("http://proxy:3128".into()),
            "no_proxy" => Some("localhost".into()),
            "HTTP_PROXY" => Some(String::new()),
            _ => None,
        });
        assert_eq!(
            found,
            vec!["HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost"]
        );
    }

    #[test]
    fn a_proxy_password_is_found_in_its_url() {
        for (url, password) in [
            ("http://user:pa55-word@proxy:3128", Some("pa55-word")),
            ("http://user:p@ss@proxy:3128/path@x", Some("p@ss")),
            ("socks5://u:secret@[::1]:1080", Some("secret")),
            ("user:bare-pass@proxy:3128", Some("bare-pass")),
            ("http://user@proxy:3128", None),
            ("http://proxy:3128", None),
            ("http://proxy:3128/a:b@c", None),
            ("http://user:@proxy", None),
        ] {
            assert_eq!(proxy_password(url).as_deref(), password, "{url}");
        }
        assert!(host_proxy_passwords(false).is_empty());
    }
}
