//! The work the commands do, assembled from the store, the layer codec and the sandbox:
//! importing a root filesystem as a base image, unpacking an image into a directory or the
//! shared rootfs cache, and running an image in the sandbox. Each step reports through a
//! [`Reporter`](crate::report::Reporter) and never prints; the CLI and the API server decide
//! how progress looks.

pub mod app_input;
pub mod badger_files;
pub mod badger_image;
pub mod badger_stack;
pub mod build;
pub mod build_cache;
pub mod build_env;
pub mod build_error;
pub mod build_inputs;
pub mod cache_bound;
pub mod cache_mounts;
pub mod commit;
pub mod confined;
pub mod container_signs;
pub mod delivery;
pub mod dependency_cache;
pub mod dependency_layer;
pub mod detect;
pub mod import;
pub mod network_hint;
pub mod process_shield;
pub mod record_prune;
pub mod redaction;
pub mod registry_cache;
pub mod run;
pub mod snapshot;
pub mod stacked;
pub mod start_check;
pub mod step_survivors;
pub mod store_guard;
pub mod unpack;
pub mod workspace;

/// The image configuration's `created` and history timestamps: `SOURCE_DATE_EPOCH` when
/// given (reproducible), else now. RFC 3339 in UTC with second precision.
pub fn timestamp(epoch: Option<i64>) -> String {
    let time = match epoch {
        Some(seconds) => chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default(),
        None => chrono::Utc::now(),
    };
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `SOURCE_DATE_EPOCH` from the environment, if set and a number.
pub fn source_date_epoch() -> Option<i64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}

/// The architecture word of the OCI platform for this host.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
