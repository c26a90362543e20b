//! The tool inside a container, as CI runners and Kubernetes pods run it: `podman run
//! --runtime runc` of a plain Debian root filesystem (the cached `debian-python3` base
//! tarball, imported once as [`DEBIAN_IMAGE`]) with the binary under test bind-mounted
//! read-only at `/usr/local/bin/solum-build`, in one of the [`Confinement`]s the issue
//! names. Host folders (a store, an app) are bound in at paths of the caller's choosing.
//! Needs root (podman as root); the callers skip their rootless re-run.

use std::path::{Path, PathBuf};

use super::cmd::{bin, Cmd, Run, SOURCE_DATE_EPOCH};
use super::fixtures::{base_tarball, repo_dir};

/// The podman image made from the cached Debian base tarball.
pub const DEBIAN_IMAGE: &str = "localhost/solum-test-debian-python3";

/// How the container is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    /// Root with podman's default seccomp profile and capabilities.
    PodmanDefault,
    /// Root with Docker's default seccomp profile (`testdata/seccomp/docker-default.json`):
    /// no new namespaces.
    DockerSeccomp,
    /// Root with every capability dropped and `no-new-privileges`.
    NoCapabilities,
}

impl Confinement {
    /// The `podman run` options that make it.
    pub fn podman_args(self) -> Vec<String> {
        match self {
            Confinement::PodmanDefault => Vec::new(),
            Confinement::DockerSeccomp => vec![
                "--security-opt".into(),
                format!(
                    "seccomp={}",
                    repo_dir()
                        .join("testdata/seccomp/docker-default.json")
                        .display()
                ),
            ],
            Confinement::NoCapabilities => vec![
                "--cap-drop=ALL".into(),
                "--security-opt".into(),
                "no-new-privileges".into(),
            ],
        }
    }
}

/// A host path seen inside the container.
pub struct Bind<'a> {
    pub host: &'a Path,
    pub inner: &'a str,
    pub read_only: bool,
}

/// Imports [`DEBIAN_IMAGE`] once (podman keeps it between test runs).
pub fn debian_image() -> &'static str {
    static IMPORTED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    IMPORTED.get_or_init(|| {
        let exists = Cmd::program("podman")
            .args(["image", "exists", DEBIAN_IMAGE])
            .run();
        if exists.code != 0 {
            Cmd::program("podman")
                .arg("import")
                .arg(base_tarball("debian-python3"))
                .arg(DEBIAN_IMAGE)
                .run()
                .ok();
        }
    });
    DEBIAN_IMAGE
}

/// `sh -c SCRIPT` in a fresh container of [`DEBIAN_IMAGE`] confined as `confinement`, with
/// no network, the binary under test on `PATH`, and `binds`. `dir` holds podman's
/// containers.conf for this run (runc may not raise the open-file limit podman asks for
/// on this host). Returns however it ended.
pub fn run_in_container(
    dir: &Path,
    confinement: Confinement,
    binds: &[Bind<'_>],
    script: &str,
) -> Run {
    let conf = dir.join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=20000:20000\",\"nproc=32768:32768\"]\nnetns = \"none\"\n",
    )
    .unwrap();
    let mut cmd = Cmd::program("podman")
        .env("CONTAINERS_CONF", &conf)
        .args(["run", "--rm", "--runtime", "runc", "--network", "none"])
        .args(confinement.podman_args())
        .args(["-e", &format!("SOURCE_DATE_EPOCH={SOURCE_DATE_EPOCH}")])
        .arg("-v")
        .arg(format!("{}:/usr/local/bin/solum-build:ro", bin()));
    for bind in binds {
        let mode = if bind.read_only { ":ro" } else { "" };
        cmd = cmd
            .arg("-v")
            .arg(format!("{}:{}{mode}", bind.host.display(), bind.inner));
    }
    cmd.arg(debian_image()).args(["sh", "-c", script]).run()
}

/// A copy of `store` made with `cp -a` in `dir/NAME`, for one container to write to.
pub fn store_copy(dir: &Path, store: &Path, name: &str) -> PathBuf {
    let copy = dir.join(name);
    Cmd::program("cp")
        .arg("-a")
        .arg(store)
        .arg(&copy)
        .run()
        .ok();
    copy
}
