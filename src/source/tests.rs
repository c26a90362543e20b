//! Tests of naming sources, redaction, directory copies, artifacts and the tree digest.
//! Git fetches are in `git_tests.rs`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;

/// Records what a fetch reports, one line per event: `Verb subject` or `warning: …`.
#[derive(Default)]
pub(super) struct Recorder(std::sync::Mutex<Vec<String>>);

impl Recorder {
    pub(super) fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl crate::report::Reporter for Recorder {
    fn status(&self, verb: &str, subject: &str) {
        self.0.lock().unwrap().push(format!("{verb} {subject}"));
    }

    fn warning(&self, message: &str) {
        self.0.lock().unwrap().push(format!("warning: {message}"));
    }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn parse_tells_directories_repositories_and_urls_apart() {
    let base = tempfile::tempdir().unwrap();
    let base = base.path();
    fs::create_dir(base.join("plain")).unwrap();
    // A work tree: `.git` holds HEAD.
    write(&base.join("tree/.git/HEAD"), "ref: refs/heads/main\n");
    // A bare repository.
    write(&base.join("bare.git/HEAD"), "ref: refs/heads/main\n");
    fs::create_dir_all(base.join("bare.git/objects")).unwrap();
    fs::create_dir_all(base.join("bare.git/refs")).unwrap();
    // A `.git` folder that is no repository does not make one.
    fs::create_dir_all(base.join("fake/.git")).unwrap();
    write(&base.join("file.tar"), "x");
    let real = base.canonicalize().unwrap();

    let parse = |text: &str| SourceSpec::parse(text, base);
    assert_eq!(
        parse("plain").unwrap(),
        SourceSpec::Directory(real.join("plain"))
    );
    assert_eq!(
        parse("./fake").unwrap(),
        SourceSpec::Directory(real.join("fake"))
    );
    // A checkout named as a folder builds its working tree; with a revision, a commit.
    let tree = real.join("tree").to_str().unwrap().to_string();
    assert_eq!(
        parse("tree").unwrap(),
        SourceSpec::WorkTree(real.join("tree"))
    );
    assert_eq!(
        parse(&tree).unwrap(),
        SourceSpec::WorkTree(real.join("tree"))
    );
    assert_eq!(
        parse("tree").unwrap().with_revision("main").unwrap(),
        SourceSpec::Git {
            url: tree.clone(),
            revision: Some("main".to_string())
        }
    );
    assert!(
        matches!(parse("bare.git").unwrap(), SourceSpec::Git { url, .. } if url.ends_with("/bare.git"))
    );
    // file:// is a repository when it names one, a directory otherwise.
    let file_url = format!("file://{}", real.join("bare.git").display());
    assert_eq!(
        parse(&file_url).unwrap(),
        SourceSpec::Git {
            url: file_url.clone(),
            revision: None
        }
    );
    let plain_url = format!("file://{}", real.join("plain").display());
    assert_eq!(
        parse(&plain_url).unwrap(),
        SourceSpec::Directory(real.join("plain"))
    );
    for url in [
        "https://git.example.org/org/app.git",
        "http://git.example.org/app",
        "ssh://git@git.example.org:2222/org/app.git",
        "git://127.0.0.1:9418/app.git",
        "git@github.com:org/app.git",
        "github.com:org/app.git",
    ] {
        assert_eq!(
            parse(url).unwrap(),
            SourceSpec::Git {
                url: url.to_string(),
                revision: None
            },
            "{url}"
        );
    }
    assert!(matches!(
        parse("file.tar"),
        Err(SourceError::IsAFile { path }) if path.ends_with("file.tar")
    ));
    assert!(matches!(
        parse("missing"),
        Err(SourceError::NotFound { text, .. }) if text == "missing"
    ));
    assert!(matches!(
        parse("ftp://example.org/x"),
        Err(SourceError::UnsupportedUrl { .. })
    ));
    assert!(matches!(
        parse("ext::sh -c touch% /tmp/pwned"),
        Err(SourceError::UnsupportedUrl { .. })
    ));
    assert!(matches!(
        parse("file://otherhost/srv/repo"),
        Err(SourceError::UnsupportedUrl { .. })
    ));
}

#[test]
fn option_like_urls_hosts_and_revisions_are_refused() {
    let base = tempfile::tempdir().unwrap();
    let parse = |text: &str| SourceSpec::parse(text, base.path());
    assert!(matches!(
        parse("--upload-pack=touch /tmp/pwned"),
        Err(SourceError::OptionLike { what: "source", .. })
    ));
    assert!(matches!(
        parse("ssh://-oProxyCommand=touch%20x/repo"),
        Err(SourceError::OptionLike { what: "host", .. })
    ));
    assert!(matches!(
        parse("-oProxyCommand=x@host:repo"),
        Err(SourceError::OptionLike { .. })
    ));
    let git = parse("https://example.org/app.git").unwrap();
    assert!(matches!(
        git.clone().with_revision("--upload-pack=x"),
        Err(SourceError::OptionLike { what: "revision", value }) if value == "--upload-pack=x"
    ));
    assert!(matches!(
        git.clone().with_revision("main branch"),
        Err(SourceError::InvalidRevision { .. })
    ));
    assert_eq!(
        git.with_revision("v1.0").unwrap(),
        SourceSpec::Git {
            url: "https://example.org/app.git".into(),
            revision: Some("v1.0".into())
        }
    );
    fs::create_dir(base.path().join("dir")).unwrap();
    assert!(matches!(
        parse("dir").unwrap().with_revision("main"),
        Err(SourceError::RevisionWithoutGit { revision, .. }) if revision == "main"
    ));
}

#[test]
fn credentials_are_redacted_from_urls_and_debug_output() {
    assert_eq!(
        redact_url("https://user:t0ken@git.example.org/org/app.git"),
        "https://user:<redacted>@git.example.org/org/app.git"
    );
    assert_eq!(
        redact_url("https://ghp_abc123@github.com/org/app.git"),
        "https://<redacted>@github.com/org/app.git"
    );
    assert_eq!(
        redact_url("https://example.org/app.git?private_token=s3cret#frag"),
        "https://example.org/app.git?<redacted>#frag"
    );
    // An ssh user name is not a secret; a password is.
    assert_eq!(
        redact_url("ssh://git@example.org/app.git"),
        "ssh://git@example.org/app.git"
    );
    assert_eq!(
        redact_url("ssh://git:pw@example.org/app.git"),
        "ssh://git:<redacted>@example.org/app.git"
    );
    assert_eq!(
        redact_url("git@github.com:o/a.git"),
        "git@github.com:o/a.git"
    );
    let (_, secrets) = spec::redact("https://u:p%40ss@h/r");
    assert!(secrets.contains(&"p%40ss".to_string()));
    assert!(secrets.contains(&"p@ss".to_string()));
    assert_eq!(
        spec::scrub("unable to access 'https://u:p@ss@h/r'", &secrets),
        "unable to access 'https://u:<redacted>@h/r'"
    );

    let spec = SourceSpec::Git {
        url: "https://user:t0ken@example.org/a.git".into(),
        revision: Some("main".into()),
    };
    assert!(!format!("{spec:?}").contains("t0ken"));
    assert!(!spec.to_string().contains("t0ken"));
    assert!(spec.to_string().contains("<redacted>"));
}

#[test]
fn directory_copy_keeps_modes_links_and_times_and_skips_git() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("bin/run.sh"), "#!/bin/sh\necho hi\n");
    fs::set_permissions(src.join("bin/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    write(&src.join("data/readme.txt"), "hello");
    fs::set_permissions(
        src.join("data/readme.txt"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    fs::hard_link(src.join("data/readme.txt"), src.join("data/same.txt")).unwrap();
    std::os::unix::fs::symlink("readme.txt", src.join("data/link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("outside")).unwrap();
    std::os::unix::fs::symlink("../../../../..", src.join("up")).unwrap();
    write(&src.join(".git/HEAD"), "ref: refs/heads/main\n");
    write(&src.join("vendor/lib/.git/config"), "[core]\n");
    write(&src.join("vendor/lib/lib.py"), "x = 1\n");
    nix::unistd::mkfifo(
        &src.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    // A socket cannot be copied: it is left out with a warning.
    let _socket = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    // A read-only directory must still be filled, and keep its mode.
    write(&src.join("ro/file"), "r");
    fs::set_permissions(src.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(src.join("bin/run.sh"))
        .unwrap()
        .set_modified(old)
        .unwrap();

    let dest = tmp.path().join("dest");
    let recorder = Recorder::default();
    let info = fetch(
        &SourceSpec::Directory(src.clone()),
        &dest,
        &tmp.path().join("cache"),
        &recorder,
    )
    .unwrap();

    assert!(!dest.join(".git").exists());
    assert!(!dest.join("vendor/lib/.git").exists());
    assert_eq!(
        fs::read_to_string(dest.join("vendor/lib/lib.py")).unwrap(),
        "x = 1\n"
    );
    let meta = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap();
    assert_eq!(meta("bin/run.sh").mode() & 0o7777, 0o755);
    assert_eq!(meta("bin/run.sh").mtime(), 1_000_000);
    assert_eq!(meta("data/readme.txt").mode() & 0o7777, 0o640);
    assert_eq!(meta("data/readme.txt").ino(), meta("data/same.txt").ino());
    assert_eq!(
        fs::read_link(dest.join("data/link")).unwrap(),
        Path::new("readme.txt")
    );
    // Links are copied as links, never followed, wherever they point.
    assert_eq!(
        fs::read_link(dest.join("outside")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        fs::read_link(dest.join("up")).unwrap(),
        Path::new("../../../../..")
    );
    assert!(meta("pipe").file_type().is_fifo());
    assert_eq!(meta("ro").mode() & 0o7777, 0o555);
    assert_eq!(fs::read_to_string(dest.join("ro/file")).unwrap(), "r");

    assert_eq!(info.repository, src.display().to_string());
    assert_eq!(info.revision, None);
    assert_eq!(info.commit_time, None);
    // The digest of the copy is the digest of the source (whose `.git` is skipped too).
    assert_eq!(info.tree_digest, tree_digest(&src).unwrap());
    assert!(!dest.join("sock").exists());
    assert_eq!(
        recorder.lines(),
        vec![
            format!("Copying {}", src.display()),
            format!(
                "warning: skipping {}: a socket cannot be copied",
                src.canonicalize().unwrap().join("sock").display()
            ),
        ]
    );
    // Let the temp dir be removed.
    fs::set_permissions(src.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(dest.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn destination_must_be_empty_and_outside_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("a"), "a");
    let dest = tmp.path().join("dest");
    write(&dest.join("left-over"), "x");
    let cache = tmp.path().join("cache");
    let spec = SourceSpec::Directory(src.clone());
    assert!(matches!(
        fetch(&spec, &dest, &cache, &crate::report::Silent),
        Err(SourceError::DestNotEmpty { path }) if path == dest
    ));
    assert!(matches!(
        fetch(&spec, &src.join("app"), &cache, &crate::report::Silent),
        Err(SourceError::DestInsideSource { .. })
    ));
}

#[test]
fn tree_digest_follows_content_modes_and_links_but_not_times() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    write(&a.join("x/file"), "one");
    std::os::unix::fs::symlink("x/file", a.join("link")).unwrap();
    let first = tree_digest(&a).unwrap();
    assert_eq!(first, tree_digest(&a).unwrap());

    // Times do not count.
    fs::File::options()
        .write(true)
        .open(a.join("x/file"))
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH)
        .unwrap();
    assert_eq!(first, tree_digest(&a).unwrap());

    // Content, modes, link targets and names do.
    fs::write(a.join("x/file"), "two").unwrap();
    let content = tree_digest(&a).unwrap();
    assert_ne!(first, content);
    fs::set_permissions(a.join("x/file"), fs::Permissions::from_mode(0o600)).unwrap();
    let mode = tree_digest(&a).unwrap();
    assert_ne!(content, mode);
    fs::remove_file(a.join("link")).unwrap();
    std::os::unix::fs::symlink("x/other", a.join("link")).unwrap();
    let link = tree_digest(&a).unwrap();
    assert_ne!(mode, link);
    fs::rename(a.join("x"), a.join("y")).unwrap();
    assert_ne!(link, tree_digest(&a).unwrap());

    // Moving bytes between a name and its content changes the digest (lengths are framed).
    let b = tmp.path().join("b");
    let c = tmp.path().join("c");
    write(&b.join("ab"), "c");
    write(&c.join("a"), "bc");
    assert_ne!(tree_digest(&b).unwrap(), tree_digest(&c).unwrap());
}

#[test]
fn tree_summary_gives_the_newest_mtime_of_files_not_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    write(&a.join("x/old"), "one");
    write(&a.join("new"), "two");
    let at = |name: &str, secs: u64| {
        fs::File::options()
            .write(true)
            .open(a.join(name))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    };
    at("x/old", 1_600_000_000);
    at("new", 1_700_000_000);
    // The folders were just made (now): they do not count.
    let (digest, newest) = tree_summary(&a).unwrap();
    assert_eq!(newest, Some(1_700_000_000));
    assert_eq!(digest, tree_digest(&a).unwrap());
    let empty = tmp.path().join("empty");
    fs::create_dir_all(empty.join("sub")).unwrap();
    assert_eq!(tree_summary(&empty).unwrap().1, None);
}

/// A tar built by hand, so that it can hold entries a well-behaved writer refuses.
fn raw_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[test]
fn artifact_tarballs_unpack_and_hostile_entries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("app.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw_tar(&[("bin/app", b"#!/bin/sh\n"), ("README", b"hi")]))
        .unwrap();
    fs::write(&good, gz.finish().unwrap()).unwrap();
    let spec = SourceSpec::artifact("app.tar.gz", tmp.path()).unwrap();
    assert_eq!(spec, SourceSpec::Artifact(good.clone()));
    let dest = tmp.path().join("dest");
    let info = fetch(
        &spec,
        &dest,
        &tmp.path().join("cache"),
        &crate::report::Silent,
    )
    .unwrap();
    assert_eq!(fs::read(dest.join("bin/app")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(fs::read(dest.join("README")).unwrap(), b"hi");
    assert_eq!(info.repository, good.display().to_string());
    assert_eq!(info.tree_digest, tree_digest(&dest).unwrap());

    let evil = tmp.path().join("evil.tar");
    fs::write(
        &evil,
        raw_tar(&[("ok", b"fine"), ("../escaped", b"gotcha")]),
    )
    .unwrap();
    let dest = tmp.path().join("dest2");
    let error = fetch(
        &SourceSpec::Artifact(evil.clone()),
        &dest,
        &tmp.path().join("cache"),
        &crate::report::Silent,
    )
    .unwrap_err();
    let message = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(message.contains("evil.tar"), "{message}");
    assert!(message.contains("../escaped"), "{message}");
    assert!(!tmp.path().join("escaped").exists());

    assert!(matches!(
        SourceSpec::artifact("missing.tar", tmp.path()),
        Err(SourceError::Io(error)) if error.path().ends_with("missing.tar")
    ));
}

#[test]
fn a_folder_source_leaves_out_what_its_ignore_file_names() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("app.py"), "print(1)\n");
    write(&src.join(".env"), "SECRET=1\n");
    write(&src.join("node_modules/left-pad/index.js"), "x");
    write(&src.join(".venv/bin/python"), "x");
    write(&src.join("logs/a.log"), "x");
    write(&src.join("logs/keep.log"), "x");
    write(
        &src.join(".dockerignore"),
        "# docker's file, read when there is no .solumignore\n.env\n",
    );
    let fetch_into = |name: &str| {
        let dest = tmp.path().join(name);
        let recorder = Recorder::default();
        let info = fetch(
            &SourceSpec::Directory(src.clone()),
            &dest,
            &tmp.path().join("cache"),
            &recorder,
        )
        .unwrap();
        (dest, info, recorder.lines())
    };

    let (dest, _, lines) = fetch_into("docker");
    assert!(!dest.join(".env").exists());
    assert!(dest.join("node_modules/left-pad/index.js").exists());
    assert!(lines.contains(&"Ignored 1 path matched by .dockerignore".to_string()));

    write(
        &src.join(".solumignore"),
        ".env\nnode_modules/\n.venv/\n*.log\n!keep.log\n",
    );
    let (dest, first, lines) = fetch_into("solum");
    for gone in [".env", "node_modules", ".venv", "logs/a.log"] {
        assert!(dest.join(gone).symlink_metadata().is_err(), "{gone}");
    }
    assert!(dest.join("logs/keep.log").exists());
    assert!(dest.join("app.py").exists());
    assert!(dest.join(".solumignore").exists());
    assert!(lines.contains(&"Ignored 4 paths matched by .solumignore".to_string()));

    // Only ignored files change: the same tree, the same digest (a build cache hit).
    write(&src.join(".env"), "SECRET=2\n");
    write(&src.join("node_modules/new/index.js"), "y");
    let (_, second, _) = fetch_into("again");
    assert_eq!(first.tree_digest, second.tree_digest);
    assert_eq!(first.newest_mtime, second.newest_mtime);
}
