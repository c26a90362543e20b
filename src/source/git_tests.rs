//! Git sources against real git: local work trees, bare repositories, `file://` and
//! `git://` (through `git daemon` on a free loopback port), every kind of revision, the
//! mirror cache, and the refusals (missing revisions, option injection, tokens in URLs).

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tests::Recorder;
use super::*;

/// Runs git in `dir` with no host configuration and fixed identities, so that the test
/// repositories are the same on every machine. Returns trimmed stdout.
fn git(dir: &Path, args: &[&str], time: i64) -> String {
    let date = format!("@{time} +0000");
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "A U Thor")
        .env("GIT_AUTHOR_EMAIL", "author@example.org")
        .env("GIT_COMMITTER_NAME", "C O Mitter")
        .env("GIT_COMMITTER_EMAIL", "committer@example.org")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Writes `files` into the work tree `dir`, commits them all at `time`, returns the sha.
fn commit(dir: &Path, files: &[(&str, &str)], time: i64) -> String {
    for (name, text) in files {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    git(dir, &["add", "-A"], time);
    git(dir, &["commit", "-q", "-m", &format!("at {time}")], time);
    git(dir, &["rev-parse", "HEAD"], time)
}

/// A work tree with history:
/// main: A (tags v1 annotated, v1-light) ─ B (HEAD); feature: A ─ C.
struct Repo {
    _tmp: tempfile::TempDir,
    work: PathBuf,
    a: String,
    b: String,
    c: String,
}

const TIME_A: i64 = 1_600_000_000;
const TIME_B: i64 = 1_600_000_100;
const TIME_C: i64 = 1_600_000_200;

fn repo() -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"], TIME_A);
    fs::create_dir_all(work.join("bin")).unwrap();
    fs::write(work.join("bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(work.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("version", work.join("link")).unwrap();
    let a = commit(&work, &[("version", "1\n")], TIME_A);
    git(&work, &["tag", "-a", "v1", "-m", "release 1"], TIME_A);
    git(&work, &["tag", "v1-light"], TIME_A);
    let b = commit(&work, &[("version", "2\n")], TIME_B);
    git(&work, &["checkout", "-q", "-b", "feature", &a], TIME_C);
    let c = commit(&work, &[("version", "feature\n")], TIME_C);
    git(&work, &["checkout", "-q", "main"], TIME_C);
    // Uncommitted changes in the work tree never reach the export.
    fs::write(work.join("version"), "dirty\n").unwrap();
    fs::write(work.join("untracked"), "u\n").unwrap();
    Repo {
        _tmp: tmp,
        work,
        a,
        b,
        c,
    }
}

fn fetch_at(
    url: &str,
    revision: Option<&str>,
    dest: &Path,
    cache: &Path,
) -> Result<SourceInfo, SourceError> {
    let spec = SourceSpec::Git {
        url: url.to_string(),
        revision: revision.map(str::to_string),
    };
    fetch(&spec, dest, cache, &crate::report::Silent)
}

fn version(dest: &Path) -> String {
    fs::read_to_string(dest.join("version")).unwrap()
}

#[test]
fn every_kind_of_revision_resolves_to_its_commit_and_exports_its_tree() {
    let repo = repo();
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("cache");
    let spec = SourceSpec::parse("work", repo.work.parent().unwrap()).unwrap();
    let SourceSpec::WorkTree(path) = &spec else {
        panic!("a work tree named as a folder is built as one: {spec:?}");
    };
    // Its commits, through the mirror, as `--revision` asks for them.
    let url = &path.to_str().unwrap().to_string();
    let short_c = &repo.c[..7];
    let cases: &[(Option<&str>, &str, &str, i64)] = &[
        (None, &repo.b, "2\n", TIME_B),
        (Some("HEAD"), &repo.b, "2\n", TIME_B),
        (Some("main"), &repo.b, "2\n", TIME_B),
        (Some("v1"), &repo.a, "1\n", TIME_A),
        (Some("v1-light"), &repo.a, "1\n", TIME_A),
        (Some("feature"), &repo.c, "feature\n", TIME_C),
        (Some(&repo.a), &repo.a, "1\n", TIME_A),
        (Some(short_c), &repo.c, "feature\n", TIME_C),
    ];
    for (i, (revision, sha, content, time)) in cases.iter().enumerate() {
        let dest = out.path().join(format!("dest{i}"));
        let info = fetch_at(url, *revision, &dest, &cache).unwrap();
        assert_eq!(info.revision.as_deref(), Some(*sha), "{revision:?}");
        assert_eq!(info.commit_time, Some(*time), "{revision:?}");
        assert_eq!(info.repository, *url);
        assert_eq!(version(&dest), *content, "{revision:?}");
        assert!(!dest.join(".git").exists());
        assert!(!dest.join("untracked").exists());
        assert_eq!(info.tree_digest, tree_digest(&dest).unwrap());
        // The export is pinned to 0755/0644 whatever the host's configuration, carries the
        // symlink as a link and the commit time as mtimes.
        let tool = fs::metadata(dest.join("bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o755);
        assert_eq!(tool.mtime(), *time);
        let version_meta = fs::metadata(dest.join("version")).unwrap();
        assert_eq!(version_meta.mode() & 0o7777, 0o644);
        assert_eq!(
            fs::read_link(dest.join("link")).unwrap(),
            Path::new("version")
        );
    }
    // One mirror served all of them, and the URL was never written into its config.
    let mirrors: Vec<_> = fs::read_dir(cache.join("git"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| {
            std::path::Path::new(name)
                .extension()
                .is_some_and(|e| e == "git")
        })
        .collect();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    let mirror = git::mirror_path(&cache, url);
    let config = fs::read_to_string(mirror.join("config")).unwrap();
    assert!(!config.contains(url.as_str()), "{config}");
    // The same tree exported twice has one digest; different trees have different ones.
    let again = fetch_at(url, Some("v1-light"), &out.path().join("again"), &cache).unwrap();
    let v1 = fetch_at(url, Some("v1"), &out.path().join("v1"), &cache).unwrap();
    let main = fetch_at(url, Some("main"), &out.path().join("main"), &cache).unwrap();
    assert_eq!(again.tree_digest, v1.tree_digest);
    assert_ne!(main.tree_digest, v1.tree_digest);
}

#[test]
fn a_missing_revision_names_the_repository_and_the_revision() {
    let repo = repo();
    let out = tempfile::tempdir().unwrap();
    let url = repo.work.to_str().unwrap();
    let error = fetch_at(
        url,
        Some("no-such-branch"),
        &out.path().join("dest"),
        &out.path().join("cache"),
    )
    .unwrap_err();
    assert!(
        matches!(&error, SourceError::RevisionNotFound { repository, revision }
            if repository == url && revision == "no-such-branch"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(url) && message.contains("no-such-branch"));
    // A full sha that the server will not hand out is missing too.
    let error = fetch_at(
        url,
        Some(&"0".repeat(40)),
        &out.path().join("dest2"),
        &out.path().join("cache"),
    )
    .unwrap_err();
    assert!(
        matches!(error, SourceError::RevisionNotFound { .. }),
        "{error:?}"
    );
}

#[test]
fn option_like_revisions_and_urls_never_reach_git() {
    let repo = repo();
    let out = tempfile::tempdir().unwrap();
    let marker = out.path().join("pwned");
    let injected = format!("--upload-pack=touch {}", marker.display());
    let url = repo.work.to_str().unwrap();
    let cache = out.path().join("cache");
    let error = fetch_at(url, Some(&injected), &out.path().join("d1"), &cache).unwrap_err();
    assert!(
        matches!(
            &error,
            SourceError::OptionLike {
                what: "revision",
                ..
            }
        ),
        "{error:?}"
    );
    let error = fetch_at(&injected, None, &out.path().join("d2"), &cache).unwrap_err();
    assert!(
        matches!(&error, SourceError::OptionLike { .. }),
        "{error:?}"
    );
    assert!(!marker.exists());
    // Refused before any git ran: no mirror was even made.
    assert!(!cache.join("git").exists());
}

#[test]
fn bare_repositories_and_file_urls_are_fetched() {
    let repo = repo();
    let bare = repo.work.parent().unwrap().join("bare.git");
    git(
        repo.work.parent().unwrap(),
        &["clone", "-q", "--bare", "work", "bare.git"],
        TIME_C,
    );
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("cache");

    let spec = SourceSpec::parse(bare.to_str().unwrap(), Path::new("/")).unwrap();
    let spec = spec.with_revision("v1").unwrap();
    let dest = out.path().join("bare");
    let info = fetch(&spec, &dest, &cache, &crate::report::Silent).unwrap();
    assert_eq!(info.revision.as_deref(), Some(repo.a.as_str()));
    assert_eq!(version(&dest), "1\n");

    let url = format!("file://{}", bare.display());
    let spec = SourceSpec::parse(&url, Path::new("/")).unwrap();
    assert!(matches!(&spec, SourceSpec::Git { url: u, .. } if *u == url));
    let dest = out.path().join("file-url");
    let info = fetch(&spec, &dest, &cache, &crate::report::Silent).unwrap();
    assert_eq!(info.revision.as_deref(), Some(repo.b.as_str()));
    assert_eq!(info.repository, url);
    assert_eq!(version(&dest), "2\n");
    assert!(!dest.join(".git").exists());
}

#[test]
fn the_mirror_is_reused_and_updated_by_later_fetches() {
    let repo = repo();
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("cache");
    let url = repo.work.to_str().unwrap();
    let spec = SourceSpec::Git {
        url: url.to_string(),
        revision: Some("main".into()),
    };
    let recorder = Recorder::default();
    let first = fetch(&spec, &out.path().join("d1"), &cache, &recorder).unwrap();
    assert_eq!(first.revision.as_deref(), Some(repo.b.as_str()));
    assert_eq!(
        recorder.lines(),
        vec![
            format!("Cloning {url}"),
            format!("Resolved main to commit {}", repo.b),
            format!("Exporting commit {}", repo.b),
        ]
    );

    // A new commit on main, and a branch deleted upstream.
    git(&repo.work, &["checkout", "-q", "--", "version"], TIME_C);
    let d = commit(&repo.work, &[("version", "3\n")], TIME_C + 100);
    git(&repo.work, &["branch", "-q", "-D", "feature"], TIME_C + 100);
    let recorder = Recorder::default();
    let dest = out.path().join("d2");
    let second = fetch(&spec, &dest, &cache, &recorder).unwrap();
    assert_eq!(second.revision.as_deref(), Some(d.as_str()));
    assert_eq!(version(&dest), "3\n");
    assert_eq!(recorder.lines()[0], format!("Fetching {url}"));
    // The mirror was pruned: the deleted branch no longer resolves.
    let error = fetch_at(url, Some("feature"), &out.path().join("d3"), &cache).unwrap_err();
    assert!(
        matches!(error, SourceError::RevisionNotFound { .. }),
        "{error:?}"
    );
    assert_eq!(
        fs::read_dir(cache.join("git")).unwrap().count(),
        2,
        "a mirror and its lock"
    );
}

#[test]
fn a_commit_no_ref_reaches_is_fetched_by_its_full_sha() {
    let repo = repo();
    git(&repo.work, &["checkout", "-q", "-b", "tmp"], TIME_C);
    git(&repo.work, &["checkout", "-q", "--", "version"], TIME_C);
    let dangling = commit(&repo.work, &[("version", "dangling\n")], TIME_C + 50);
    git(&repo.work, &["checkout", "-q", "main"], TIME_C);
    git(&repo.work, &["branch", "-q", "-D", "tmp"], TIME_C);
    git(
        &repo.work,
        &["config", "uploadpack.allowAnySHA1InWant", "true"],
        TIME_C,
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("dest");
    let info = fetch_at(
        repo.work.to_str().unwrap(),
        Some(&dangling),
        &dest,
        &out.path().join("cache"),
    )
    .unwrap();
    assert_eq!(info.revision.as_deref(), Some(dangling.as_str()));
    assert_eq!(version(&dest), "dangling\n");
}

#[test]
fn a_token_in_the_url_never_shows_in_errors_or_the_cache() {
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("cache");
    // Port 1 on loopback: the connection is refused at once. Git drops the user part from
    // the URL it quotes, but not the query string: that one is scrubbed by us.
    let cases = [
        (
            "http://builder:s3cr3t-t0ken@127.0.0.1:1/org/app.git",
            "http://builder:<redacted>@127.0.0.1:1/org/app.git",
        ),
        (
            "http://127.0.0.1:1/org/app.git?private_token=s3cr3t-t0ken",
            "http://127.0.0.1:1/org/app.git?<redacted>",
        ),
    ];
    for (i, (url, redacted)) in cases.iter().enumerate() {
        let dest = out.path().join(format!("dest{i}"));
        let error = fetch_at(url, Some("main"), &dest, &cache).unwrap_err();
        let SourceError::GitFailed {
            repository,
            command: "fetch",
            stderr,
            ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(repository, redacted);
        // Git's own message was kept, minus the secret.
        assert!(stderr.contains("127.0.0.1"), "{stderr}");
        let message = format!("{error} {error:?}");
        assert!(!message.contains("s3cr3t-t0ken"), "{message}");
    }
    for entry in walkdir::WalkDir::new(&cache) {
        let entry = entry.unwrap();
        assert!(!entry.path().to_string_lossy().contains("s3cr3t"));
        if entry.file_type().is_file() {
            let bytes = fs::read(entry.path()).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains("s3cr3t"),
                "{}",
                entry.path().display()
            );
        }
    }
}

/// `git daemon` on a free loopback port, stopped on drop.
struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git_daemon(base: &Path) -> Daemon {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("git")
        .args([
            "daemon",
            "--export-all",
            "--reuseaddr",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon starts");
    let daemon = Daemon { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "git daemon did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}

#[test]
fn git_urls_are_fetched_through_git_daemon() {
    let repo = repo();
    let base = repo.work.parent().unwrap();
    git(
        base,
        &["clone", "-q", "--bare", "work", "served.git"],
        TIME_C,
    );
    let daemon = git_daemon(base);
    let url = format!("git://127.0.0.1:{}/served.git", daemon.port);
    let spec = SourceSpec::parse(&url, Path::new("/"))
        .unwrap()
        .with_revision("feature")
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("dest");
    let info = fetch(
        &spec,
        &dest,
        &out.path().join("cache"),
        &crate::report::Silent,
    )
    .unwrap();
    assert_eq!(info.revision.as_deref(), Some(repo.c.as_str()));
    assert_eq!(info.repository, url);
    assert_eq!(version(&dest), "feature\n");
    assert!(!dest.join(".git").exists());
}

#[test]
fn two_builds_of_one_repository_at_once_share_the_mirror_safely() {
    let repo = repo();
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("cache");
    let url = repo.work.to_str().unwrap();
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let dest = out.path().join(format!("dest{i}"));
                let cache = &cache;
                scope.spawn(move || fetch_at(url, Some("feature"), &dest, cache))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for result in results {
        assert_eq!(result.unwrap().revision.as_deref(), Some(repo.c.as_str()));
    }
    assert_eq!(version(&out.path().join("dest0")), "feature\n");
    assert_eq!(version(&out.path().join("dest1")), "feature\n");
}

/// The working tree of `work` (or of its `subdirectory`), fetched into a new `dest`.
fn fetch_work_tree(
    work: &Path,
    subdirectory: Option<&str>,
    dest: &Path,
    cache: &Path,
) -> Result<(SourceInfo, Vec<String>), SourceError> {
    let spec = SourceSpec::parse(work.to_str().unwrap(), Path::new("/")).unwrap();
    assert!(matches!(spec, SourceSpec::WorkTree(_)), "{spec:?}");
    let recorder = Recorder::default();
    let info = fetch_cancellable(
        &spec,
        subdirectory,
        dest,
        cache,
        &CancelHandle::new(),
        &FetchRules::default(),
        crate::privilege::Privilege::of_this_process(),
        &recorder,
    )?;
    Ok((info, recorder.lines()))
}

#[test]
fn a_checkout_builds_its_working_tree_marked_dirty() {
    let repo = repo();
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("cache");
    fs::create_dir_all(repo.work.join("wheelhouse")).unwrap();
    fs::write(repo.work.join("wheelhouse/pkg.whl"), "wheel").unwrap();
    // `.gitignore` does not apply (as in `docker build .`); `.solumignore` does.
    fs::write(
        repo.work.join(".gitignore"),
        "wheelhouse/
",
    )
    .unwrap();
    fs::write(
        repo.work.join(".env"),
        "SECRET=1
",
    )
    .unwrap();
    fs::write(
        repo.work.join(".solumignore"),
        ".env
",
    )
    .unwrap();

    let dest = out.path().join("dirty");
    let (info, lines) = fetch_work_tree(&repo.work, None, &dest, &cache).unwrap();
    assert!(
        lines.contains(&"Ignored 1 path matched by .solumignore".to_string()),
        "{lines:?}"
    );
    let compared = lines.iter().find(|l| l.starts_with("Compared")).unwrap();
    // `version` edited; `untracked`, `.gitignore`, `.solumignore` and the wheel added.
    assert!(
        compared.contains("5 uncommitted changes (1 modified, 4 added, 0 deleted)"),
        "{compared}"
    );
    assert_eq!(version(&dest), "dirty\n");
    assert!(dest.join("untracked").exists());
    assert!(dest.join("wheelhouse/pkg.whl").exists());
    assert!(!dest.join(".env").exists());
    assert!(!dest.join(".git").exists());
    assert_eq!(
        info.revision.as_deref(),
        Some(format!("{}{DIRTY_MARK}", repo.b).as_str())
    );
    // Not a commit: the created time is the newest file's.
    assert_eq!(info.commit_time, None);
    assert!(info.newest_mtime.is_some());

    // Committed (the ignored `.env` left aside), the working tree is its HEAD again.
    fs::remove_file(repo.work.join(".env")).unwrap();
    fs::remove_dir_all(repo.work.join("wheelhouse")).unwrap();
    let head = commit(&repo.work, &[], TIME_C);
    fs::write(repo.work.join(".env"), "SECRET=2\n").unwrap();
    let dest = out.path().join("clean");
    let (info, _) = fetch_work_tree(&repo.work, None, &dest, &cache).unwrap();
    assert_eq!(info.revision.as_deref(), Some(head.as_str()));
    assert_eq!(info.commit_time, Some(TIME_C));
    assert!(!dest.join(".env").exists());
}

#[test]
fn source_path_builds_a_subdirectory_and_refuses_to_leave_the_source() {
    let repo = repo();
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("cache");
    let outside = out.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "s").unwrap();
    commit(
        &repo.work,
        &[("services/api/main.py", "api\n"), ("services/web/x", "w")],
        TIME_C,
    );
    fs::write(repo.work.join("services/api/edited"), "e").unwrap();
    std::os::unix::fs::symlink(&outside, repo.work.join("escape")).unwrap();
    std::os::unix::fs::symlink("services/api", repo.work.join("api-link")).unwrap();
    std::os::unix::fs::symlink(".git", repo.work.join("git-link")).unwrap();

    // A working tree's subdirectory: compared with HEAD's same folder only.
    let dest = out.path().join("tree-sub");
    let (info, _) = fetch_work_tree(&repo.work, Some("services/api"), &dest, &cache).unwrap();
    assert_eq!(fs::read_to_string(dest.join("main.py")).unwrap(), "api\n");
    assert!(dest.join("edited").exists());
    assert!(!dest.join("version").exists());
    assert!(info.revision.unwrap().ends_with(DIRTY_MARK));
    // A symlink that stays inside is followed.
    let dest = out.path().join("tree-link");
    fetch_work_tree(&repo.work, Some("api-link"), &dest, &cache).unwrap();
    assert!(dest.join("main.py").exists());

    // A commit's subdirectory.
    let url = repo.work.to_str().unwrap();
    let spec = SourceSpec::parse(url, Path::new("/"))
        .unwrap()
        .with_revision("main")
        .unwrap();
    let dest = out.path().join("commit-sub");
    let fetch_sub = |sub: &str, dest: &Path| {
        fetch_cancellable(
            &spec,
            Some(sub),
            dest,
            &cache,
            &CancelHandle::new(),
            &FetchRules::default(),
            crate::privilege::Privilege::of_this_process(),
            &crate::report::Silent,
        )
    };
    fetch_sub("services/api", &dest).unwrap();
    assert_eq!(fs::read_to_string(dest.join("main.py")).unwrap(), "api\n");
    assert!(!dest.join("edited").exists());

    // The repository's own folder is never a source: its config, hooks and objects stay out.
    for sub in [".git", "./.git", ".git/hooks", "git-link"] {
        let dest = out
            .path()
            .join(format!("dot-git-{}", sub.replace('/', "-")));
        let text = fetch_work_tree(&repo.work, Some(sub), &dest, &cache)
            .unwrap_err()
            .to_string();
        assert!(text.contains("`.git`"), "{sub:?}: {text}");
        assert!(!dest.join("config").exists(), "{sub:?}");
    }

    for (sub, reason) in [
        ("../outside", "climb out"),
        ("/etc", "relative"),
        ("escape", "symlink on the way"),
        ("nothing/here", "no such folder"),
        ("version", "not a folder"),
        ("", "empty"),
    ] {
        for work_tree in [true, false] {
            let dest = out.path().join(format!("bad-{work_tree}-{}", sub.len()));
            let err = if work_tree {
                fetch_work_tree(&repo.work, Some(sub), &dest, &cache).unwrap_err()
            } else {
                fetch_sub(sub, &dest).unwrap_err()
            };
            let text = err.to_string();
            // A committed `escape` does not exist: only the working tree has the link.
            if !work_tree && sub == "escape" {
                assert!(text.contains("no such folder"), "{text}");
                continue;
            }
            assert!(text.starts_with("source.path"), "{text}");
            assert!(text.contains(reason), "{sub:?}: {text}");
            assert!(!dest.join("secret").exists());
        }
    }
}

#[test]
fn a_bounded_fetch_builds_a_checkout_s_commit() {
    let repo = repo();
    let out = tempfile::tempdir().unwrap();
    let spec = SourceSpec::parse(repo.work.to_str().unwrap(), Path::new("/")).unwrap();
    let rules = FetchRules {
        limit: Some(ExpansionLimit {
            bytes: 1 << 30,
            entries: 10_000,
        }),
        anonymous: false,
    };
    let dest = out.path().join("dest");
    let info = fetch_cancellable(
        &spec,
        None,
        &dest,
        &out.path().join("cache"),
        &CancelHandle::new(),
        &rules,
        crate::privilege::Privilege::of_this_process(),
        &crate::report::Silent,
    )
    .unwrap();
    assert_eq!(info.revision.as_deref(), Some(repo.b.as_str()));
    assert_eq!(version(&dest), "2\n");
    assert!(!dest.join("untracked").exists());
}

#[test]
fn a_checkout_without_a_commit_builds_as_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("new");
    fs::create_dir(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"], TIME_A);
    fs::write(work.join("app.sh"), "echo\n").unwrap();
    let dest = tmp.path().join("dest");
    let (info, lines) = fetch_work_tree(&work, None, &dest, &tmp.path().join("cache")).unwrap();
    assert!(dest.join("app.sh").exists());
    assert_eq!(info.revision, None);
    assert_eq!(info.commit_time, None);
    assert!(
        lines.iter().any(|l| l.contains("no commit yet")),
        "{lines:?}"
    );
}
