//! The environment of a build's steps: the build contract's variables over the badger's
//! `Env`, the app's build-only variables, and the shell a step's command runs through. The
//! same at every isolation level, so that the same inputs make the same DU.

use crate::image::config::{ensure_path, merge_env};
use crate::image::ImageConfig;
use crate::manifest::AppFile;
use crate::source::SourceInfo;
use std::collections::BTreeMap;

/// The build contract's environment: the base image's Env (with the badgers'
/// environments), the app's, then `SOLUM_APP_NAME`, `SOLUM_SOURCE_REVISION`, `HOME` and
/// `SOURCE_DATE_EPOCH` (the build's epoch, for tools that write times into files).
pub(super) fn build_env(
    app: &AppFile,
    config: &ImageConfig,
    info: &SourceInfo,
    epoch: i64,
) -> Vec<String> {
    let mut env = config.env();
    ensure_path(&mut env);
    let mut extra: Vec<String> = app
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    extra.push(format!("SOLUM_APP_NAME={}", app.name));
    extra.push(format!(
        "SOLUM_SOURCE_REVISION={}",
        info.revision.clone().unwrap_or_default()
    ));
    extra.push("HOME=/root".to_string());
    extra.push(format!("SOURCE_DATE_EPOCH={epoch}"));
    merge_env(&mut env, &extra);
    env
}

/// `env` with the app's `build_environment` merged in (the build steps see it; the image
/// never does).
pub(super) fn with_build_environment(env: &[String], app: &AppFile) -> Vec<String> {
    let mut env = env.to_vec();
    merge_env(&mut env, &env_entries(&app.build_environment));
    env
}

/// `KEY=VALUE` entries of an environment map, in key order.
pub(super) fn env_entries(environment: &BTreeMap<String, String>) -> Vec<String> {
    environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

pub(super) fn shell(command: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), command.into()]
}
