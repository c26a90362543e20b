//! The image configuration (`application/vnd.oci.image.config.v1+json`) as the one editor
//! every writer of a config goes through: typed getters and setters for what the builder
//! reads and changes (Env, Entrypoint, Cmd, WorkingDir, ExposedPorts, Labels, User, created,
//! architecture, os, rootfs.diff_ids, history), and the environment rules (the default
//! `PATH`, merging `KEY=VALUE` entries). It performs no I/O.
//!
//! Why a `serde_json::Map` underneath and not oci-spec's `ImageConfiguration`: a DU extends
//! its badger's config, and that config is someone else's document. oci-spec's type drops
//! every field it does not model (Docker's `container_config`, `docker_version`,
//! `config.Healthcheck`, `config.OnBuild`, `x-` extensions…) and writes its own defaults;
//! either would change a badger's document behind its author's back and the DU's digest
//! with it. The map keeps every field it is not told to change, byte for byte after
//! canonical serialization. Reading a config for its values (`run`, `images`) may still use
//! oci-spec's type.

use serde_json::{json, Map, Value};

/// `PATH` when an image sets none: the one the OCI runtimes and Docker use. The sandbox
/// owns the value (it looks commands up with it), this is the same constant by name.
pub const DEFAULT_PATH: &str = runtime::spec::DEFAULT_PATH;

/// What makes a document not a config this editor can change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the image config is not a JSON object")]
    Json(#[source] serde_json::Error),
    #[error("the image config's `config` section is not a JSON object")]
    SectionNotAnObject,
}

/// One image config document; fields it does not know are kept as they are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageConfig {
    document: Map<String, Value>,
}

/// One `history` entry.
#[derive(Clone, Debug)]
pub struct HistoryEntry<'a> {
    pub created: &'a str,
    pub created_by: &'a str,
    pub comment: Option<&'a str>,
}

impl ImageConfig {
    /// An empty config (for an image made from nothing, e.g. an import).
    pub fn new() -> ImageConfig {
        ImageConfig::default()
    }

    /// Parses a config blob. A `config` section must be an object (a `null` one counts as
    /// absent).
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        let document: Map<String, Value> =
            serde_json::from_slice(bytes).map_err(ConfigError::Json)?;
        match document.get("config") {
            None | Some(Value::Null | Value::Object(_)) => Ok(ImageConfig { document }),
            Some(_) => Err(ConfigError::SectionNotAnObject),
        }
    }

    /// The document as canonical JSON (sorted keys): the bytes to store and digest.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        super::canonical_json(&self.document)
    }

    /// The `config` section (`Env`, `Cmd`, …), created when absent or `null`.
    fn section_mut(&mut self) -> &mut Map<String, Value> {
        let section = self.document.entry("config").or_insert_with(|| json!({}));
        if !section.is_object() {
            // `parse` refuses any other kind: only `null` gets here.
            *section = json!({});
        }
        section.as_object_mut().expect("made an object above")
    }

    /// A field of the `config` section, if present and of the type asked for.
    fn section_field<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let value = self.document.get("config")?.get(key)?;
        serde_json::from_value(value.clone()).ok()
    }

    /// `Env` (`KEY=VALUE` entries); empty when absent or malformed.
    pub fn env(&self) -> Vec<String> {
        self.section_field("Env").unwrap_or_default()
    }

    pub fn set_env(&mut self, env: &[String]) {
        self.section_mut().insert("Env".into(), json!(env));
    }

    /// Sets `entries` on top of `Env` with [`merge_env`]; writes `Env` even when both are
    /// empty.
    pub fn merge_env(&mut self, entries: &[String]) {
        let mut env = self.env();
        merge_env(&mut env, entries);
        self.set_env(&env);
    }

    pub fn entrypoint(&self) -> Vec<String> {
        self.section_field("Entrypoint").unwrap_or_default()
    }

    pub fn cmd(&self) -> Vec<String> {
        self.section_field("Cmd").unwrap_or_default()
    }

    /// What the image runs: `Entrypoint` followed by `Cmd`.
    pub fn command(&self) -> Vec<String> {
        let mut command = self.entrypoint();
        command.extend(self.cmd());
        command
    }

    pub fn set_cmd(&mut self, cmd: &[String]) {
        self.section_mut().insert("Cmd".into(), json!(cmd));
    }

    /// `None` removes `Entrypoint`, so that a new `Cmd` is the whole command.
    pub fn set_entrypoint(&mut self, entrypoint: Option<&[String]>) {
        match entrypoint {
            Some(entrypoint) => {
                self.section_mut()
                    .insert("Entrypoint".into(), json!(entrypoint));
            }
            None => {
                self.section_mut().remove("Entrypoint");
            }
        }
    }

    pub fn working_dir(&self) -> Option<String> {
        self.section_field("WorkingDir")
    }

    pub fn set_working_dir(&mut self, dir: &str) {
        self.section_mut().insert("WorkingDir".into(), json!(dir));
    }

    pub fn user(&self) -> Option<String> {
        self.section_field("User")
    }

    pub fn set_user(&mut self, user: &str) {
        self.section_mut().insert("User".into(), json!(user));
    }

    /// The keys of `ExposedPorts` (`8080/tcp`), sorted.
    pub fn exposed_ports(&self) -> Vec<String> {
        self.section_field::<Map<String, Value>>("ExposedPorts")
            .map(|ports| ports.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds `ports` (`8080/tcp` keys) to `ExposedPorts`, keeping those there. An
    /// `ExposedPorts` that is not an object is left alone.
    pub fn expose_ports(&mut self, ports: &[String]) {
        if ports.is_empty() {
            return;
        }
        let exposed = self
            .section_mut()
            .entry("ExposedPorts")
            .or_insert_with(|| json!({}));
        if let Some(exposed) = exposed.as_object_mut() {
            for port in ports {
                exposed.insert(port.clone(), json!({}));
            }
        }
    }

    /// `Labels`, sorted by key; empty when absent or malformed.
    pub fn labels(&self) -> std::collections::BTreeMap<String, String> {
        self.section_field("Labels").unwrap_or_default()
    }

    /// Sets one label. `Labels` that is not an object is replaced.
    pub fn set_label(&mut self, key: &str, value: &str) {
        let labels = self
            .section_mut()
            .entry("Labels")
            .or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        labels[key] = json!(value);
    }

    pub fn created(&self) -> Option<String> {
        self.top_field("created")
    }

    pub fn set_created(&mut self, created: &str) {
        self.document.insert("created".into(), json!(created));
    }

    pub fn architecture(&self) -> Option<String> {
        self.top_field("architecture")
    }

    pub fn os(&self) -> Option<String> {
        self.top_field("os")
    }

    /// Sets `architecture` and `os` where the document has none; a base's own values stay.
    pub fn default_platform(&mut self, architecture: &str, os: &str) {
        self.document
            .entry("architecture")
            .or_insert(json!(architecture));
        self.document.entry("os").or_insert(json!(os));
    }

    /// `rootfs.diff_ids`; empty when absent or malformed.
    pub fn diff_ids(&self) -> Vec<String> {
        self.document
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(|d| serde_json::from_value(d.clone()).ok())
            .unwrap_or_default()
    }

    /// Replaces `rootfs` with a `layers` rootfs of `diff_ids`.
    pub fn set_diff_ids(&mut self, diff_ids: &[String]) {
        self.document.insert(
            "rootfs".into(),
            json!({ "type": "layers", "diff_ids": diff_ids }),
        );
    }

    /// The number of `history` entries (0 when absent or malformed).
    pub fn history_len(&self) -> usize {
        self.document
            .get("history")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }

    /// Appends a `history` entry. A `history` that is not a list is left alone.
    pub fn push_history(&mut self, entry: &HistoryEntry<'_>) {
        let history = self.document.entry("history").or_insert_with(|| json!([]));
        if let Some(history) = history.as_array_mut() {
            let mut item = json!({ "created": entry.created, "created_by": entry.created_by });
            if let Some(comment) = entry.comment {
                item["comment"] = json!(comment);
            }
            history.push(item);
        }
    }

    fn top_field(&self, key: &str) -> Option<String> {
        self.document.get(key)?.as_str().map(str::to_string)
    }
}

/// The key of a `KEY=VALUE` entry: what comes before the first `=`, if that is not empty.
pub fn env_key(entry: &str) -> Option<&str> {
    entry
        .split_once('=')
        .map(|(key, _)| key)
        .filter(|k| !k.is_empty())
}

/// Sets `KEY=VALUE` entries in an Env list in order: an entry whose key is there replaces
/// it in place (the list keeps its order), a new key goes to the end. An entry without
/// `=` counts as its own key.
pub fn merge_env(env: &mut Vec<String>, entries: &[String]) {
    for entry in entries {
        let key = entry.split('=').next().unwrap_or_default();
        let prefix = format!("{key}=");
        match env.iter_mut().find(|e| e.starts_with(&prefix)) {
            Some(existing) => existing.clone_from(entry),
            None => env.push(entry.clone()),
        }
    }
}

/// `PATH=…` with [`DEFAULT_PATH`] appended when `env` names no `PATH`.
pub fn ensure_path(env: &mut Vec<String>) {
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_an_edit() {
        let bytes = br#"{"architecture":"arm64","os":"linux","docker_version":"24.0",
            "container_config":{"Hostname":"x"},"x-vendor":{"k":[1,2]},
            "config":{"Env":["A=1"],"Healthcheck":{"Test":["CMD","true"]},"OnBuild":null},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created_by":"base"}]}"#;
        let mut config = ImageConfig::parse(bytes).unwrap();
        config.merge_env(&["B=2".into(), "A=3".into()]);
        config.set_cmd(&["run".into()]);
        config.set_diff_ids(&["sha256:aa".into(), "sha256:bb".into()]);
        config.push_history(&HistoryEntry {
            created: "2026-01-01T00:00:00Z",
            created_by: "build",
            comment: None,
        });
        config.default_platform("amd64", "linux");
        let back: Value = serde_json::from_slice(&config.to_canonical_json()).unwrap();
        assert_eq!(back["docker_version"], "24.0");
        assert_eq!(back["container_config"]["Hostname"], "x");
        assert_eq!(back["x-vendor"]["k"], json!([1, 2]));
        assert_eq!(back["config"]["Healthcheck"]["Test"][1], "true");
        assert!(back["config"].as_object().unwrap().contains_key("OnBuild"));
        assert_eq!(back["config"]["Env"], json!(["A=3", "B=2"]));
        assert_eq!(back["architecture"], "arm64", "a base's own platform stays");
        assert_eq!(config.diff_ids().len(), 2);
        assert_eq!(config.history_len(), 2);
    }

    #[test]
    fn getters_read_what_setters_write() {
        let mut config = ImageConfig::new();
        assert!(config.env().is_empty() && config.command().is_empty());
        config.set_entrypoint(Some(&["/bin/sh".into(), "-c".into()]));
        config.set_cmd(&["echo hi".into()]);
        assert_eq!(config.command(), ["/bin/sh", "-c", "echo hi"]);
        config.set_entrypoint(None);
        assert_eq!(config.command(), ["echo hi"]);
        config.set_working_dir("/app");
        config.set_user("1000:1000");
        config.set_label("org.example", "yes");
        config.expose_ports(&["8080/tcp".into(), "53/udp".into()]);
        config.expose_ports(&["8443/tcp".into()]);
        config.set_created("2026-01-01T00:00:00Z");
        assert_eq!(config.working_dir().as_deref(), Some("/app"));
        assert_eq!(config.user().as_deref(), Some("1000:1000"));
        assert_eq!(config.labels()["org.example"], "yes");
        assert_eq!(config.exposed_ports(), ["53/udp", "8080/tcp", "8443/tcp"]);
        assert_eq!(config.created().as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(config.architecture(), None);
    }

    #[test]
    fn a_config_section_must_be_an_object_or_null() {
        assert!(ImageConfig::parse(b"[]").is_err());
        assert!(matches!(
            ImageConfig::parse(br#"{"config":"x"}"#),
            Err(ConfigError::SectionNotAnObject)
        ));
        let mut config = ImageConfig::parse(br#"{"config":null}"#).unwrap();
        config.set_env(&["A=1".into()]);
        assert_eq!(config.env(), ["A=1"]);
    }

    #[test]
    fn env_entries_replace_in_place_and_path_defaults_once() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        merge_env(
            &mut env,
            &["A=2".into(), "B=x=y".into(), "PATH=/usr/bin".into()],
        );
        assert_eq!(env, ["PATH=/usr/bin", "A=2", "B=x=y"]);
        ensure_path(&mut env);
        assert_eq!(env.len(), 3);
        let mut bare = Vec::new();
        ensure_path(&mut bare);
        assert_eq!(bare, [format!("PATH={DEFAULT_PATH}")]);
        assert_eq!(env_key("A=1"), Some("A"));
        assert_eq!(env_key("=1"), None);
        assert_eq!(env_key("A"), None);
    }
}
