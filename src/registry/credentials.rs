//! Credentials for a registry, found where podman and docker keep them: `--creds`, then
//! `--authfile` (alone, when given), else `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json` and docker's
//! `config.json` (`$DOCKER_CONFIG` or `~/.docker`), in that order. In each file
//! `credHelpers[host]`, then `auths[host].auth` (base64 `user:pass`), then `credsStore`
//! are consulted; helpers are run as `docker-credential-NAME get`. `login` writes and
//! `logout` removes an `auths` entry in podman's `auth.json` format, which docker reads too.
//! Secrets never appear in `Debug` output or in error messages.

use super::client::Client;
use super::target::RegistryTarget;
use super::{RegistryError, RegistryOptions};
use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A credential file or helper that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("--creds must be USER:PASS (or USER alone with an empty password is refused)")]
    BadCreds,
    /// Reading or writing a credential file failed.
    #[error(transparent)]
    Io(#[from] IoAt),
    #[error("{path}: not a JSON auth file (expected {{\"auths\": {{...}}}})")]
    Malformed {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: the `auth` entry for {registry} is not base64 of USER:PASS")]
    BadAuthEntry { path: PathBuf, registry: String },
    #[error(
        "credential helper docker-credential-{helper} (named in {path}) for {registry} cannot run"
    )]
    HelperSpawn {
        helper: String,
        path: PathBuf,
        registry: String,
        #[source]
        source: io::Error,
    },
    #[error("credential helper docker-credential-{helper} failed for {registry}: {message}")]
    HelperFailed {
        helper: String,
        registry: String,
        message: String,
    },
    #[error("no place to keep credentials: set $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR or $HOME, or pass --authfile")]
    NoAuthFile,
}

impl Classify for CredentialError {
    fn class(&self) -> ErrorClass {
        match self {
            CredentialError::BadCreds
            | CredentialError::Io(_)
            | CredentialError::Malformed { .. }
            | CredentialError::BadAuthEntry { .. }
            | CredentialError::HelperSpawn { .. }
            | CredentialError::HelperFailed { .. }
            | CredentialError::NoAuthFile => ErrorClass::Failure,
        }
    }
}

/// A user name and its password (or token). `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    /// Parses `--creds USER:PASS`; the password may contain colons.
    pub fn parse(text: &str) -> Result<Credentials, CredentialError> {
        match text.split_once(':') {
            Some((user, pass)) if !user.is_empty() && !pass.is_empty() => {
                Ok(Credentials::new(user, pass))
            }
            _ => Err(CredentialError::BadCreds),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The value of a basic `Authorization` header.
    pub(crate) fn basic_header(&self) -> String {
        format!("Basic {}", self.encoded())
    }

    /// base64 of `user:pass`, as in `auths.HOST.auth`.
    fn encoded(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The files to read, in order.
fn auth_files(options: &RegistryOptions) -> Vec<PathBuf> {
    if let Some(file) = &options.authfile {
        return vec![file.clone()];
    }
    let home = env_path("HOME");
    let mut files = Vec::new();
    files.extend(env_path("REGISTRY_AUTH_FILE"));
    files.extend(env_path("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    files.extend(
        env_path("XDG_CONFIG_HOME")
            .or_else(|| home.as_ref().map(|h| h.join(".config")))
            .map(|d| d.join("containers/auth.json")),
    );
    files.extend(
        env_path("DOCKER_CONFIG")
            .or_else(|| home.as_ref().map(|h| h.join(".docker")))
            .map(|d| d.join("config.json")),
    );
    files
}

/// The file `login` writes and `logout` edits: `--authfile`, `$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json`, else `~/.config/containers/auth.json` (podman's
/// choices, in its order).
pub fn auth_file_for_write(authfile: Option<&Path>) -> Result<PathBuf, CredentialError> {
    if let Some(file) = authfile {
        return Ok(file.to_path_buf());
    }
    env_path("REGISTRY_AUTH_FILE")
        .or_else(|| env_path("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")))
        .or_else(|| env_path("HOME").map(|h| h.join(".config/containers/auth.json")))
        .ok_or(CredentialError::NoAuthFile)
}

/// The keys an auth file may use for a registry, most specific first: `host/repo/…`
/// prefixes (podman), the host, and docker's legacy URL forms.
fn candidate_keys(registry: &str, repository: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let parts: Vec<&str> = repository.split('/').collect();
    for n in (1..=parts.len()).rev() {
        keys.push(format!("{registry}/{}", parts[..n].join("/")));
    }
    keys.push(registry.to_string());
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        keys.push("https://index.docker.io/v1/".to_string());
        keys.push("docker.io".to_string());
        keys.push("index.docker.io".to_string());
    }
    keys
}

/// An `auths` key normalized to `host[/path]`: docker writes `https://host/v1/` and the like.
fn normalize_key(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    key.strip_suffix("/v1")
        .or_else(|| key.strip_suffix("/v2"))
        .unwrap_or(key)
}

/// Finds the credentials for `target`'s registry, or `None` to go anonymous.
pub(crate) fn lookup(
    target: &RegistryTarget,
    options: &RegistryOptions,
) -> Result<Option<Credentials>, CredentialError> {
    if let Some(creds) = &options.creds {
        return Ok(Some(creds.clone()));
    }
    let keys = candidate_keys(&target.registry, &target.repository);
    for path in auth_files(options) {
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            // A missing default file is normal; a missing --authfile means "no credentials"
            // too, as podman treats it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(IoAt::new(path, "read the credential file", source).into()),
        };
        let file: Value =
            serde_json::from_slice(&text).map_err(|source| CredentialError::Malformed {
                path: path.clone(),
                source,
            })?;
        if let Some(found) = lookup_in_file(&path, &file, &keys, &target.registry)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn lookup_in_file(
    path: &Path,
    file: &Value,
    keys: &[String],
    registry: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let helpers = file.get("credHelpers").and_then(Value::as_object);
    let auths = file.get("auths").and_then(Value::as_object);
    for key in keys {
        if let Some(helper) = helpers.and_then(|h| h.get(key)).and_then(Value::as_str) {
            return run_helper(helper, path, key);
        }
        let entry = auths.and_then(|auths| {
            auths
                .iter()
                .find(|(k, _)| normalize_key(k) == key.as_str())
                .map(|(_, v)| v)
        });
        if let Some(entry) = entry {
            if let Some(found) = decode_entry(path, entry, registry)? {
                return Ok(Some(found));
            }
        }
    }
    if let Some(store) = file.get("credsStore").and_then(Value::as_str) {
        return run_helper(store, path, registry);
    }
    Ok(None)
}

fn decode_entry(
    path: &Path,
    entry: &Value,
    registry: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let bad = || CredentialError::BadAuthEntry {
        path: path.to_path_buf(),
        registry: registry.to_string(),
    };
    if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
        if auth.is_empty() {
            return Ok(None);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, pass) = decoded.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credentials::new(user, pass)));
    }
    // Older docker files keep the two fields apart.
    match (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        (Some(user), Some(pass)) => Ok(Some(Credentials::new(user, pass))),
        _ => Ok(None),
    }
}

/// Runs `docker-credential-NAME get` with the server on stdin, as docker does. "Not found"
/// (any non-zero exit whose message says so) means no credentials, not an error.
fn run_helper(
    helper: &str,
    path: &Path,
    server: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CredentialError::HelperSpawn {
            helper: helper.to_string(),
            path: path.to_path_buf(),
            registry: server.to_string(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is answered by its exit status.
        let _ = stdin.write_all(server.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|source| CredentialError::HelperSpawn {
            helper: helper.to_string(),
            path: path.to_path_buf(),
            registry: server.to_string(),
            source,
        })?;
    let failed = |message: String| CredentialError::HelperFailed {
        helper: helper.to_string(),
        registry: server.to_string(),
        message,
    };
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stdout).trim().to_string()
            + String::from_utf8_lossy(&output.stderr).trim();
        if message.to_lowercase().contains("not found") {
            return Ok(None);
        }
        return Err(failed(format!("{}: {message}", output.status)));
    }
    #[derive(serde::Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|_| failed("its answer is not {\"Username\", \"Secret\"} JSON".to_string()))?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::new(&answer.username, &answer.secret)))
}

fn read_object(path: &Path) -> Result<Map<String, Value>, CredentialError> {
    match std::fs::read(path) {
        Ok(text) => match serde_json::from_slice::<Value>(&text).map_err(|source| {
            CredentialError::Malformed {
                path: path.to_path_buf(),
                source,
            }
        })? {
            Value::Object(map) => Ok(map),
            _ => Ok(Map::new()),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Map::new()),
        Err(source) => Err(IoAt::new(path, "read the credential file", source).into()),
    }
}

/// Writes the file whole through a 0600 temp file and a rename, so that a reader never sees
/// half of it and the secret is never readable by others, even for a moment.
fn write_object(path: &Path, object: Map<String, Value>) -> Result<(), CredentialError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let write_error =
        |source| CredentialError::from(IoAt::new(path, "write the credential file", source));
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_error)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".auth.json-")
        .tempfile_in(dir)
        .map_err(write_error)?;
    let bytes = serde_json::to_vec_pretty(&Value::Object(object)).expect("JSON serializes");
    temp.write_all(&bytes)
        .and_then(|()| temp.write_all(b"\n"))
        .and_then(|()| {
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))
        })
        .and_then(|()| temp.as_file().sync_all())
        .map_err(write_error)?;
    temp.persist(path).map_err(|e| write_error(e.error))?;
    Ok(())
}

/// Records credentials for `registry` in the auth file (see [`auth_file_for_write`]).
pub fn store(
    registry: &str,
    credentials: &Credentials,
    authfile: Option<&Path>,
) -> Result<PathBuf, CredentialError> {
    let path = auth_file_for_write(authfile)?;
    let mut object = read_object(&path)?;
    let auths = object
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let auths = auths.as_object_mut().expect("made an object above");
    auths.insert(
        registry.to_string(),
        serde_json::json!({ "auth": credentials.encoded() }),
    );
    write_object(&path, object)?;
    Ok(path)
}

/// Checks the credentials against the registry (`GET /v2/`, through the token server when
/// the registry uses one), then records them. Returns the file written.
pub fn login(
    registry: &str,
    credentials: &Credentials,
    authfile: Option<&Path>,
    options: &RegistryOptions,
) -> Result<PathBuf, RegistryError> {
    let mut options = options.clone();
    options.creds = Some(credentials.clone());
    let target = RegistryTarget::new(registry, "login-check", None);
    let client = Client::connect(&target, &options, &super::NoProgress)?;
    client.verify_login()?;
    Ok(store(registry, credentials, authfile)?)
}

/// Whether `registry` answers its API (`GET /v2/`, which also settles https versus plain
/// http): a health check, with the options' credentials and no repository.
pub fn reachable(registry: &str, options: &RegistryOptions) -> Result<(), RegistryError> {
    let target = RegistryTarget::new(registry, "health-check", None);
    Client::connect(&target, options, &super::NoProgress).map(drop)
}

/// Removes `registry` from the auth file. Returns whether there was an entry.
pub fn logout(registry: &str, authfile: Option<&Path>) -> Result<bool, CredentialError> {
    let path = auth_file_for_write(authfile)?;
    let mut object = read_object(&path)?;
    let removed = match object.get_mut("auths").and_then(Value::as_object_mut) {
        Some(auths) => {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| normalize_key(k) == registry)
                .cloned()
                .collect();
            for key in &keys {
                auths.remove(key);
            }
            !keys.is_empty()
        }
        None => false,
    };
    if removed {
        write_object(&path, object)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options_with(file: &Path) -> RegistryOptions {
        RegistryOptions {
            authfile: Some(file.to_path_buf()),
            ..RegistryOptions::default()
        }
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let creds = Credentials::parse("alice:s3cr:et").unwrap();
        assert_eq!(creds.password(), "s3cr:et");
        let shown = format!("{creds:?}");
        assert!(
            shown.contains("alice") && !shown.contains("s3cr"),
            "{shown}"
        );
        assert!(Credentials::parse("alice").is_err());
        assert!(Credentials::parse(":pw").is_err());
    }

    #[test]
    fn store_then_lookup_then_logout_round_trips_and_keeps_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/auth.json");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            r#"{"auths":{"other.example":{"auth":"eDp5"}},"keep":1}"#,
        )
        .unwrap();
        let creds = Credentials::new("bob", "pw:1");
        store("r.example:5000", &creds, Some(&file)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let target = RegistryTarget::new("r.example:5000", "a/b", None);
        let found = lookup(&target, &options_with(&file)).unwrap();
        assert_eq!(found, Some(creds));
        let other = RegistryTarget::new("other.example", "a", None);
        assert_eq!(
            lookup(&other, &options_with(&file)).unwrap(),
            Some(Credentials::new("x", "y"))
        );
        assert!(logout("r.example:5000", Some(&file)).unwrap());
        assert!(!logout("r.example:5000", Some(&file)).unwrap());
        assert_eq!(lookup(&target, &options_with(&file)).unwrap(), None);
        let left: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(left["keep"], 1);
        assert!(left["auths"]["other.example"].is_object());
    }

    #[test]
    fn docker_style_keys_and_repository_scoped_keys_are_matched() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &file,
            serde_json::json!({"auths": {
                "https://r.example/v1/": {"auth": enc("host:level")},
                "r.example/team": {"auth": enc("team:level")},
            }})
            .to_string(),
        )
        .unwrap();
        let options = options_with(&file);
        let team = RegistryTarget::new("r.example", "team/app", None);
        let elsewhere = RegistryTarget::new("r.example", "other/app", None);
        assert_eq!(lookup(&team, &options).unwrap().unwrap().username, "team");
        assert_eq!(
            lookup(&elsewhere, &options).unwrap().unwrap().username,
            "host"
        );
    }

    #[test]
    fn credential_helpers_are_run_and_their_answer_used() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-testhelper");
        // A real helper program, reached through PATH as docker finds them.
        std::fs::write(
            &helper,
            "#!/bin/sh\nread host\nif [ \"$host\" = r.example ]; then\n  printf '{\"ServerURL\":\"%s\",\"Username\":\"helped\",\"Secret\":\"tok\"}' \"$host\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, r#"{"credsStore":"testhelper"}"#).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // Helpers are found through PATH; prepending a folder leaves every other program
        // other tests run where it was.
        std::env::set_var("PATH", &path);
        let options = options_with(&file);
        let found = lookup(&RegistryTarget::new("r.example", "x", None), &options).unwrap();
        assert_eq!(found, Some(Credentials::new("helped", "tok")));
        let none = lookup(&RegistryTarget::new("s.example", "x", None), &options).unwrap();
        assert_eq!(none, None);
    }
}
