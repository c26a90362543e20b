//! Git sources: one bare mirror per repository under `cache/git/`, fetched on every build,
//! a revision resolved to its commit there, and that commit's tree exported like
//! `git archive` (through the layer unpacker) into the destination.
//!
//! In order: lock the mirror (two builds of one repository must not fetch into it at
//! once), create it if new, fetch branches and tags (and `HEAD` when no revision is
//! given), resolve the revision with `git rev-parse --verify REV^{commit}` (a full sha
//! that no branch or tag reaches is fetched by itself, if the server allows it), read the
//! commit time, then stream `git archive` into [`crate::layer::unpack_layer`].
//!
//! Git always runs with a cleared environment plus an explicit list, never in the user's
//! repository (only in the mirror), with `--` or `--end-of-options` before user data. The
//! URL is never written into the mirror's config: it is passed on each fetch, so a token in
//! it stays in memory and in git's arguments only. Network commands see the host's git
//! configuration and ssh agent (credential helpers, `insteadOf`, proxies, CA bundles);
//! commands that only read the mirror see no configuration at all, so the exported tree
//! does not depend on the host (`core.autocrlf`, `tar.umask`, global attributes).

use crate::io_at::IoAt;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use super::spec::{check_revision, redact, scrub};
use super::SourceError;
use crate::image::digest::Digest;
use crate::layer::LayerCompression;
use crate::report::Reporter;
use runtime::CancelHandle;
use std::os::unix::process::CommandExt;
use std::process::Child;
use std::time::Duration;

/// The ref that holds the remote's `HEAD` when no revision is given.
const HEAD_REF: &str = "refs/solum/HEAD";
/// Where a commit fetched by its sha is kept, so that it stays reachable in the mirror.
const COMMIT_REFS: &str = "refs/solum/commits/";
/// How much of git's stderr an error keeps (the end, where the reason is).
const STDERR_TAIL: usize = 2000;

/// Host variables a network git command may need: where to find programs and the user's
/// configuration, the ssh agent and ssh overrides, proxies and CA bundles. Everything else
/// — notably `GIT_DIR`, `GIT_CONFIG_PARAMETERS`, `GIT_ALTERNATE_OBJECT_DIRECTORIES` — is
/// dropped, because it could point git somewhere other than the mirror.
/// The part of [`PASSED_ENV`] that carries the host user's identity (configuration with
/// credential helpers, the ssh agent and ssh overrides, askpass programs): withheld from an
/// anonymous fetch.
const IDENTITY_ENV: &[&str] = &[
    "HOME",
    "XDG_CONFIG_HOME",
    "GIT_CONFIG_GLOBAL",
    "SSH_AUTH_SOCK",
    "SSH_ASKPASS",
    "GIT_ASKPASS",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_SSH_VARIANT",
];

const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "GIT_CONFIG_GLOBAL",
    "GIT_EXEC_PATH",
    "SSH_AUTH_SOCK",
    "SSH_ASKPASS",
    "GIT_ASKPASS",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_SSH_VARIANT",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// The resolved commit of a fetch.
pub(super) struct Commit {
    pub(super) sha: String,
    pub(super) time: i64,
}

/// Fetches `url` into its mirror under `cache`, resolves `revision` (else `HEAD`) and
/// exports that commit's tree into `dest`, unpacked as `privilege` says.
#[allow(clippy::too_many_arguments)]
pub(super) fn fetch(
    url: &str,
    revision: Option<&str>,
    dest: &Path,
    cache: &Path,
    cancel: &CancelHandle,
    rules: &super::FetchRules,
    privilege: crate::privilege::Privilege,
    reporter: &dyn Reporter,
) -> Result<Commit, SourceError> {
    let limit = rules.limit.as_ref();
    let (commit, ()) = in_mirror(url, revision, cache, cancel, rules, reporter, |git, sha| {
        if let Some(limit) = limit {
            // Counted before anything is written: a pack may delta a huge tree to nothing.
            git.check_size(sha, limit)?;
        }
        reporter.status("Exporting", &format!("commit {sha}"));
        git.archive(sha, dest, limit, privilege)
    })?;
    Ok(commit)
}

/// Fetches the local repository `url` into its mirror and lists the tree of its `HEAD`
/// commit (`git ls-tree -r -z`): what a working tree is compared with. `None` when `HEAD`
/// has no commit yet (a `git init` with nothing committed).
pub(super) fn head_listing(
    url: &str,
    cache: &Path,
    cancel: &CancelHandle,
    rules: &super::FetchRules,
    reporter: &dyn Reporter,
) -> Result<Option<(Commit, Vec<u8>)>, SourceError> {
    let listed = in_mirror(url, None, cache, cancel, rules, reporter, |git, sha| {
        git.list_tree(sha)
    });
    match listed {
        Ok(listed) => Ok(Some(listed)),
        // git's words for an unborn `HEAD` (it runs with `LC_ALL=C`).
        Err(SourceError::GitFailed {
            command: "fetch",
            stderr,
            ..
        }) if stderr.contains("couldn't find remote ref HEAD") => Ok(None),
        Err(error) => Err(error),
    }
}

/// The steps every git source shares, in order: check the URL and revision, lock the
/// mirror, create it if new, fetch, resolve the revision, read its commit time; then
/// `then` runs on the resolved sha while the mirror is still locked.
fn in_mirror<T>(
    url: &str,
    revision: Option<&str>,
    cache: &Path,
    cancel: &CancelHandle,
    rules: &super::FetchRules,
    reporter: &dyn Reporter,
    then: impl FnOnce(&Git<'_>, &str) -> Result<T, SourceError>,
) -> Result<(Commit, T), SourceError> {
    if url.starts_with('-') {
        return Err(SourceError::OptionLike {
            what: "repository URL",
            value: super::redact_url(url),
        });
    }
    if let Some(revision) = revision {
        check_revision(revision)?;
    }
    let (repository, secrets) = redact(url);
    let root = cache.join("git");
    fs::create_dir_all(&root).map_err(IoAt::at(&root, "create the git cache"))?;
    // One mirror per repository, named by the redacted URL: a new token for the same
    // repository reuses the mirror, and no secret appears in a file name.
    let key = Digest::of_bytes(repository.as_bytes());
    let mirror = root.join(format!("{}.git", key.hex()));
    let _lock = lock(&root.join(format!("{}.lock", key.hex())))?;

    let git = Git {
        mirror: &mirror,
        repository: &repository,
        secrets: &secrets,
        cancel,
        anonymous_home: rules.anonymous.then_some(root.as_path()),
    };
    let first = !mirror.join("HEAD").is_file();
    if first {
        git.create(&root)?;
    }
    let verb = if first { "Cloning" } else { "Fetching" };
    reporter.status(verb, &repository);
    let mut refspecs = vec![
        "+refs/heads/*:refs/heads/*".to_string(),
        "+refs/tags/*:refs/tags/*".to_string(),
    ];
    let wanted = match revision {
        None | Some("HEAD") => {
            refspecs.push(format!("+HEAD:{HEAD_REF}"));
            HEAD_REF
        }
        Some(revision) => revision,
    };
    git.fetch(url, &refspecs)?;

    let sha = match git.resolve(wanted)? {
        Some(sha) => sha,
        // A commit that no branch or tag reaches (a pull request's head, a rewritten
        // branch) can still be fetched by its full sha where the server allows it.
        None if is_full_sha(wanted) => {
            let refspec = format!("+{wanted}:{COMMIT_REFS}{wanted}");
            // The server's refusal is not the interesting error: the missing revision is.
            let _ = git.fetch(url, &[refspec]);
            git.resolve(wanted)?
                .ok_or_else(|| not_found(&repository, revision))?
        }
        None => return Err(not_found(&repository, revision)),
    };
    reporter.status(
        "Resolved",
        &format!("{} to commit {sha}", revision.unwrap_or("HEAD")),
    );
    let time = git.commit_time(&sha)?;
    let result = then(&git, &sha)?;
    Ok((Commit { sha, time }, result))
}

fn not_found(repository: &str, revision: Option<&str>) -> SourceError {
    SourceError::RevisionNotFound {
        repository: repository.to_string(),
        revision: revision.unwrap_or("HEAD").to_string(),
    }
}

fn is_full_sha(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_hex_sha(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An exclusive `flock` held until the file is dropped.
fn lock(path: &Path) -> Result<File, SourceError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(IoAt::at(path, "open the mirror lock"))?;
    file.lock().map_err(IoAt::at(path, "lock the mirror"))?;
    Ok(file)
}

/// Git commands on one mirror.
struct Git<'a> {
    mirror: &'a Path,
    /// The redacted URL, for errors.
    repository: &'a str,
    /// Secrets of the URL, scrubbed from git's stderr.
    secrets: &'a [String],
    /// Set when the build is cancelled: git and its helpers are killed.
    cancel: &'a CancelHandle,
    /// For a fetch with no identity of this host ([`super::FetchRules::anonymous`]): the
    /// `HOME` git gets, a private folder holding no configuration.
    anonymous_home: Option<&'a Path>,
}

impl Git<'_> {
    /// A git command with a cleared environment. `network` commands also get the host's
    /// configuration and credentials; the others read only the mirror.
    fn command(&self, network: bool) -> Command {
        let mut command = Command::new("git");
        command.env_clear();
        for name in PASSED_ENV {
            if self.anonymous_home.is_some() && IDENTITY_ENV.contains(name) {
                continue;
            }
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        if let Some(home) = self.anonymous_home {
            // No credential helper, `insteadOf` or `url.*` rewrite of the host's, no key or
            // agent: a server fetches for its callers as nobody.
            command
                .env("HOME", home)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_ASKPASS", "/bin/false")
                .env("SSH_ASKPASS", "/bin/false")
                .env(
                    "GIT_SSH_COMMAND",
                    "ssh -F /dev/null -o BatchMode=yes -o IdentityAgent=none \
                     -o IdentitiesOnly=yes -o IdentityFile=/dev/null",
                );
        }
        command
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GCM_INTERACTIVE", "never")
            .env("GIT_PAGER", "cat")
            .env("PAGER", "cat")
            .env("LC_ALL", "C")
            .env("GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .stdin(Stdio::null());
        if !network {
            command
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_ATTR_NOSYSTEM", "1");
        }
        command.arg("--git-dir").arg(self.mirror);
        command
    }

    /// Starts git in a process group of its own, so that a cancel kills its helpers too
    /// (`git-remote-https`, `ssh`), not only git.
    fn spawn(&self, command: &mut Command) -> Result<Child, SourceError> {
        command
            .process_group(0)
            .spawn()
            .map_err(|source| SourceError::GitSpawn {
                repository: self.repository.to_string(),
                source,
            })
    }

    /// Waits for `child`, polling the cancel flag; on cancel the whole group is killed.
    fn wait(&self, child: &mut Child) -> Result<ExitStatus, SourceError> {
        let spawn_error = |source| SourceError::GitSpawn {
            repository: self.repository.to_string(),
            source,
        };
        loop {
            if let Some(status) = child.try_wait().map_err(spawn_error)? {
                return Ok(status);
            }
            if self.cancel.is_cancelled() {
                kill_group(child);
                let _ = child.wait();
                return Err(SourceError::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a command to its end and returns its stdout, or the failure with git's stderr.
    fn run(&self, name: &'static str, mut command: Command) -> Result<Output, SourceError> {
        if self.cancel.is_cancelled() {
            return Err(SourceError::Cancelled);
        }
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.spawn(&mut command)?;
        // Both pipes drained on threads of their own while the status is polled.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let status = self.wait(&mut child)?;
        Ok(Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            name,
        })
    }

    fn failed(&self, name: &'static str, status: ExitStatus, stderr: &[u8]) -> SourceError {
        let text = String::from_utf8_lossy(stderr);
        let text = text.trim();
        let start = text.len().saturating_sub(STDERR_TAIL);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        SourceError::GitFailed {
            repository: self.repository.to_string(),
            command: name,
            status: status.to_string(),
            stderr: scrub(&text[start..], self.secrets),
        }
    }

    /// A new bare repository, made under a temporary name and renamed into place, so that
    /// an interrupted clone never leaves a half-made mirror behind.
    fn create(&self, root: &Path) -> Result<(), SourceError> {
        let temp = tempfile::Builder::new()
            .prefix(".new-mirror-")
            .tempdir_in(root)
            .map_err(IoAt::at(root, "create a temporary mirror in"))?;
        let mut command = Command::new("git");
        command
            .env_clear()
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .args([
                "-c",
                "init.defaultBranch=main",
                "init",
                "--bare",
                "--quiet",
                "--",
            ])
            .arg(temp.path());
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        self.run("init", command)?.check(self)?;
        if self.mirror.exists() {
            fs::remove_dir_all(self.mirror)
                .map_err(IoAt::at(self.mirror, "remove the broken mirror"))?;
        }
        let temp = temp.keep();
        fs::rename(&temp, self.mirror).map_err(IoAt::at(self.mirror, "move the new mirror to"))?;
        Ok(())
    }

    fn fetch(&self, url: &str, refspecs: &[String]) -> Result<(), SourceError> {
        let mut command = self.command(true);
        command
            .args([
                "fetch",
                "--quiet",
                "--prune",
                "--no-tags",
                "--no-write-fetch-head",
                "--no-recurse-submodules",
                "--",
            ])
            .arg(url)
            .args(refspecs);
        self.run("fetch", command)?.check(self)?;
        Ok(())
    }

    /// The full sha of the commit `revision` names, or `None` if it names none.
    fn resolve(&self, revision: &str) -> Result<Option<String>, SourceError> {
        let mut command = self.command(false);
        command
            .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
            .arg(format!("{revision}^{{commit}}"));
        let output = self.run("rev-parse", command)?;
        if !output.status.success() {
            // `--verify --quiet` exits 1 without a word for a missing or non-commit name;
            // anything on stderr (an ambiguous short sha, a broken mirror) is worth showing.
            if output.stderr.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            return Err(self.failed(output.name, output.status, &output.stderr));
        }
        let sha = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !is_hex_sha(&sha) {
            return Ok(None);
        }
        Ok(Some(sha))
    }

    /// The committer time of `sha`, read from the raw commit object (no format options,
    /// so no configuration can change it).
    fn commit_time(&self, sha: &str) -> Result<i64, SourceError> {
        let mut command = self.command(false);
        command.args(["cat-file", "commit", sha]);
        let output = self.run("cat-file", command)?.check(self)?;
        let text = String::from_utf8_lossy(&output);
        text.lines()
            .take_while(|line| !line.is_empty())
            .find_map(|line| {
                let rest = line.strip_prefix("committer ")?;
                // `committer NAME <EMAIL> SECONDS ZONE`
                let mut fields = rest.rsplitn(3, ' ');
                let _zone = fields.next()?;
                fields.next()?.parse().ok()
            })
            .ok_or_else(|| SourceError::GitFailed {
                repository: self.repository.to_string(),
                command: "cat-file",
                status: "success".to_string(),
                stderr: format!("commit {sha} has no readable committer time"),
            })
    }

    /// `git ls-tree -r -z` of `sha`: `MODE TYPE OID\tPATH\0` for every blob and
    /// submodule of its tree.
    fn list_tree(&self, sha: &str) -> Result<Vec<u8>, SourceError> {
        let mut command = self.command(false);
        command.args([
            "ls-tree",
            "-r",
            "-z",
            "--full-tree",
            "--end-of-options",
            sha,
        ]);
        self.run("ls-tree", command)?.check(self)
    }

    /// Reads `git archive` of `sha` once through the expansion check, writing nothing.
    fn check_size(&self, sha: &str, limit: &super::ExpansionLimit) -> Result<(), SourceError> {
        let mut command = self.archive_command(sha);
        command.stderr(Stdio::null());
        let mut child = self.spawn(&mut command)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let what = format!("commit {sha} of {}", self.repository);
        let reader = super::CancelReader {
            inner: stdout,
            cancel: self.cancel,
        };
        let checked = super::bounds::check_tar(reader, limit, &what);
        // Stopped early or not, git is done with: a refused tree leaves no git behind.
        kill_group(&child);
        let _ = child.wait();
        if self.cancel.is_cancelled() {
            return Err(SourceError::Cancelled);
        }
        checked
    }

    fn archive_command(&self, sha: &str) -> Command {
        let mut command = self.command(false);
        command
            .args([
                "-c",
                "tar.umask=0022",
                "-c",
                "core.autocrlf=false",
                "-c",
                "core.eol=lf",
                "archive",
                "--format=tar",
                sha,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Streams `git archive` of `sha` into `dest`. Pinned settings keep the tree the same on
    /// every host: modes 0644/0755 (`tar.umask`), no line-ending conversion.
    fn archive(
        &self,
        sha: &str,
        dest: &Path,
        limit: Option<&super::ExpansionLimit>,
        privilege: crate::privilege::Privilege,
    ) -> Result<(), SourceError> {
        let mut command = self.archive_command(sha);
        if self.cancel.is_cancelled() {
            return Err(SourceError::Cancelled);
        }
        let mut child = self.spawn(&mut command)?;
        // stderr is drained on its own thread: a git that fills the stderr pipe while we
        // wait on stdout would otherwise hang both.
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr_reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            text
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        // On cancel the reader fails at its next read and git is killed; a git that
        // stalls without writing is killed by the watcher.
        let done = std::sync::atomic::AtomicBool::new(false);
        let pid = child.id();
        let unpacked = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    if self.cancel.is_cancelled() {
                        kill_pid_group(pid);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let reader = super::CancelReader {
                inner: stdout,
                cancel: self.cancel,
            };
            let unpacked = crate::layer::unpack_layer(
                reader,
                Some(LayerCompression::None),
                dest,
                &super::bounds::unpack_options(limit, privilege),
            );
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            unpacked
        });
        if self.cancel.is_cancelled() {
            kill_group(&child);
            let _ = child.wait();
            return Err(SourceError::Cancelled);
        }
        // The pipe is closed by now (unpack_layer owned it), so a git still writing gets
        // EPIPE and ends; its status says whether a failed unpack was git's fault.
        let status = self.wait(&mut child)?;
        let stderr = stderr_reader.join().unwrap_or_default();
        if !status.success() && !stderr.is_empty() {
            return Err(self.failed("archive", status, &stderr));
        }
        unpacked.map_err(|source| SourceError::Export {
            repository: self.repository.to_string(),
            commit: sha.to_string(),
            source,
        })?;
        if !status.success() {
            return Err(self.failed("archive", status, &stderr));
        }
        Ok(())
    }
}

/// Kills git's process group (it leads it: spawned with `process_group(0)`).
fn kill_group(child: &Child) {
    kill_pid_group(child.id());
}

fn kill_pid_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    name: &'static str,
}

impl Output {
    fn check(self, git: &Git<'_>) -> Result<Vec<u8>, SourceError> {
        if self.status.success() {
            Ok(self.stdout)
        } else {
            Err(git.failed(self.name, self.status, &self.stderr))
        }
    }
}

/// The mirror folder a repository URL uses under `cache`.
#[cfg(test)]
pub(super) fn mirror_path(cache: &Path, url: &str) -> std::path::PathBuf {
    let key = Digest::of_bytes(super::redact_url(url).as_bytes());
    cache.join("git").join(format!("{}.git", key.hex()))
}
