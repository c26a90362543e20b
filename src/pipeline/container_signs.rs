//! Whether this process runs inside a container, for `--isolation none`: that level runs
//! the build script unsandboxed, as this user, in the filesystem this process sees, and
//! only a container around it makes that a boundary. Run on a bare host by mistake (or on
//! a CI runner's own shell executor), it would hand the host to the build script, so it is
//! refused where no container is recognised. Recognised: the files container engines put
//! in the root (`/.dockerenv` by Docker and the CI runners built on it, `/run/.containerenv`
//! by podman, buildah and CRI-O), the environment Kubernetes gives every pod
//! (`KUBERNETES_SERVICE_HOST`) and the `container` variable of podman, LXC and
//! systemd-nspawn. A container none of these name is declared with
//! `SOLUM_BUILD_IN_CONTAINER=1`.

use std::ffi::OsString;
use std::path::Path;

/// The variable that declares a container no sign names.
pub const DECLARED: &str = "SOLUM_BUILD_IN_CONTAINER";

/// The signs of a container found for the root `root` and the environment `env`; empty
/// on a bare host.
pub fn container_signs(root: &Path, env: &dyn Fn(&str) -> Option<OsString>) -> Vec<String> {
    let mut signs = Vec::new();
    for file in [".dockerenv", "run/.containerenv"] {
        // A sign is a file the engine made; a symlink or folder is no sign.
        if std::fs::symlink_metadata(root.join(file)).is_ok_and(|m| m.is_file()) {
            signs.push(format!("/{file}"));
        }
    }
    for variable in ["KUBERNETES_SERVICE_HOST", "container"] {
        if env(variable).is_some_and(|v| !v.is_empty()) {
            signs.push(format!("${variable}"));
        }
    }
    if env(DECLARED).is_some_and(|v| v == "1") {
        signs.push(format!("${DECLARED}=1"));
    }
    signs
}

/// [`container_signs`] of this process (`/` and its environment).
pub fn this_container_signs() -> Vec<String> {
    container_signs(Path::new("/"), &|name| std::env::var_os(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn a_bare_root_has_no_sign_and_each_engine_s_file_or_variable_is_one() {
        let root = tempfile::tempdir().unwrap();
        assert!(container_signs(root.path(), &no_env).is_empty());

        std::fs::create_dir_all(root.path().join("run/.containerenv")).unwrap();
        assert!(
            container_signs(root.path(), &no_env).is_empty(),
            "a folder is no sign"
        );
        std::fs::write(root.path().join(".dockerenv"), "").unwrap();
        assert_eq!(container_signs(root.path(), &no_env), ["/.dockerenv"]);

        let bare = tempfile::tempdir().unwrap();
        let kubernetes =
            |name: &str| (name == "KUBERNETES_SERVICE_HOST").then(|| "10.0.0.1".into());
        assert_eq!(
            container_signs(bare.path(), &kubernetes),
            ["$KUBERNETES_SERVICE_HOST"]
        );
        let declared = |name: &str| (name == DECLARED).then(|| "1".into());
        assert_eq!(
            container_signs(bare.path(), &declared),
            [format!("${DECLARED}=1")]
        );
        let not_declared = |name: &str| (name == DECLARED).then(|| "0".into());
        assert!(container_signs(bare.path(), &not_declared).is_empty());
    }
}
