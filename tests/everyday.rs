//! Issue 12, the first day of a new user, on the command line: a relative `--store` works
//! for the sandbox steps, an empty folder is a new store, a folder's DU is not dated 1970,
//! a search without a match says so, ports may be written as text, and the scripts work
//! from outside the checkout. As root and again as `tester`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::*;

/// An app folder `dir/NAME` and its app file `dir/NAME.yaml` (source `./NAME`).
fn folder_app(dir: &Path, name: &str, ports: &str) -> std::path::PathBuf {
    let source = dir.join(name);
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("build"), "#!/bin/sh\necho built > /app/out\n").unwrap();
    std::fs::set_permissions(source.join("build"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "version: 1\nname: {name}\nbadger: badgers/shell\nsource:\n  repository: ./{name}\n\
             workflow_config:\n  run_cmd: cat /app/out\nports: {ports}\n"
        ),
    )
    .unwrap();
    file
}

/// `--store store` (relative) used to fail at the sandbox with "host path
/// store/cache/apps/… must be absolute"; every path a user gives is made absolute once.
#[test]
fn a_relative_store_builds_and_runs() {
    let dir = temp_dir();
    busybox_store(dir.path(), &dir.path().join("store"), &["shell"]);
    folder_app(dir.path(), "relapp", "[8080]");
    Cmd::solum_without_store()
        .args(["--store", "store", "build", "relapp.yaml"])
        .current_dir(dir.path())
        .run()
        .ok();
    let ran = Cmd::solum_without_store()
        .args(["--store", "./store", "run", "relapp"])
        .current_dir(dir.path())
        .run()
        .ok();
    assert_eq!(ran.stdout, "built\n", "{}", ran.text());
    // The same through SOLUM_BUILD_STORE.
    Cmd::solum_without_store()
        .args(["run", "relapp", "--", "true"])
        .env("SOLUM_BUILD_STORE", "store")
        .current_dir(dir.path())
        .run()
        .ok();
}

/// `mkdir s; solum-build --store s images` said "s is not an OCI image layout (no
/// oci-layout file, and the folder is not empty)".
#[test]
fn an_empty_folder_is_a_new_empty_store() {
    let dir = temp_dir();
    let store = dir.path().join("s");
    std::fs::create_dir(&store).unwrap();
    let listed = Cmd::solum(&store).arg("images").run().ok();
    assert!(
        !listed.stderr.contains("not an OCI image layout"),
        "{}",
        listed.text()
    );
    assert_eq!(
        listed.stdout.lines().count(),
        1,
        "only the header: {}",
        listed.text()
    );
    assert!(store.join("oci-layout").is_file());
    Cmd::solum(&store).args(["badger", "list"]).run().ok();
}

/// A folder source's DU was created "1970-01-01" (podman: "56 years ago"). Without
/// SOURCE_DATE_EPOCH it is now the newest mtime of the source's files: the same folder
/// still gives the same digest.
#[test]
fn a_folder_du_is_dated_by_its_newest_source_file() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    let app_file = folder_app(dir.path(), "dated", "[\"8080\", \"53/udp\"]");
    let newest = 1_700_000_000; // 2023-11-14T22:13:20Z
    std::fs::write(dir.path().join("dated").join("README"), "dated\n").unwrap();
    for (name, secs) in [("build", newest - 86_400), ("README", newest)] {
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("dated").join(name))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }
    let build = || {
        let mut command = Cmd::solum(&store)
            .arg("build")
            .arg(&app_file)
            .arg("--no-cache")
            .into_command();
        command.env_remove("SOURCE_DATE_EPOCH");
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout.lines().last().unwrap().to_string()
    };
    let first = build();
    assert_eq!(build(), first, "the same folder gives the same DU");
    let inspected = Cmd::solum(&store).args(["inspect", "dated"]).run().ok();
    let inspect: serde_json::Value = serde_json::from_str(&inspected.stdout).unwrap();
    assert_eq!(
        inspect["config"]["created"], "2023-11-14T22:13:20Z",
        "{inspect:#}"
    );
    // Ports written as text, as EXPOSE writes them.
    let exposed = inspect["config"]["config"]["ExposedPorts"]
        .as_object()
        .unwrap();
    assert!(
        exposed.contains_key("8080/tcp") && exposed.contains_key("53/udp"),
        "{exposed:?}"
    );
}

/// A failed step's output was streamed, then printed again as "last lines of its output":
/// now once, streamed, or once in the error where nothing was streamed (`--quiet`).
#[test]
fn a_failed_step_s_output_is_shown_once() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    let app_file = folder_app(dir.path(), "failing", "[]");
    std::fs::write(
        dir.path().join("failing").join("build"),
        "#!/bin/sh
echo one-of-a-kind-line
exit 3
",
    )
    .unwrap();
    for quiet in [false, true] {
        let mut command = Cmd::solum(&store);
        if quiet {
            command = command.arg("--quiet");
        }
        let failed = command.arg("build").arg(&app_file).run().fails_with(1);
        assert_eq!(
            failed.stderr.matches("one-of-a-kind-line").count(),
            1,
            "quiet: {quiet}\n{}",
            failed.text()
        );
    }
}

/// Without an app file or --name, every build of a folder was named `app`, so builds of
/// two folders overwrote each other: a build is now named after its folder.
#[test]
fn a_folder_build_is_named_after_its_folder() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    for folder in ["first_site", "Second Site"] {
        let source = dir.path().join(folder);
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("build"), "#!/bin/sh\ntrue\n").unwrap();
        std::fs::set_permissions(source.join("build"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        Cmd::solum(&store)
            .args(["build", "--badger", "badgers/shell", "--source", folder])
            .current_dir(dir.path())
            .run()
            .ok();
    }
    let images = Cmd::solum(&store).arg("images").run().ok();
    for name in ["first_site", "second-site"] {
        assert!(
            images
                .stdout
                .lines()
                .any(|line| line.starts_with(&format!("{name} "))),
            "{name}: {}",
            images.stdout
        );
    }
}

/// `echo hi | solum-build run IMG -- sh -c 'read x; echo $x'` printed nothing: stdin was
/// /dev/null. With `-i` the command reads ours; without it, still /dev/null.
#[test]
fn run_i_gives_the_command_our_stdin() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &[]);
    let command = ["base/busybox", "--", "sh", "-c", "read x; echo got:$x"];
    let ran = Cmd::solum(&store)
        .args(["run", "-i"])
        .args(command)
        .run_with_input(b"hi\n")
        .ok();
    assert_eq!(ran.stdout, "got:hi\n", "{}", ran.text());
    let ran = Cmd::solum(&store)
        .arg("run")
        .args(command)
        .run_with_input(b"hi\n")
        .ok();
    assert_eq!(ran.stdout, "got:\n", "{}", ran.text());

    // Hostile: the command gets a pipe, never our file description. With a file (or a
    // folder) as our stdin it could otherwise reopen /proc/self/fd/0 with our rights:
    // append to the file, or walk out of its root through the folder.
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "mine\n").unwrap();
    for stdin in [victim.clone(), dir.path().to_path_buf()] {
        let output = Cmd::solum(&store)
            .args(["run", "-i", "base/busybox", "--", "sh", "-c"])
            .arg("readlink /proc/self/fd/0; echo INJECTED >> /proc/self/fd/0; ls /proc/self/fd/0/ 2>&1")
            .into_command()
            .stdin(std::fs::File::open(&stdin).unwrap())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.starts_with("pipe:"), "{}: {stdout}", stdin.display());
        assert!(!stdout.contains("victim.txt"), "{stdout}");
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "mine\n");
}

/// No `-t`: no debugging shell. With it the command has a terminal of its own (even when
/// ours is not one), and with `-it` what we type reaches it.
#[test]
fn run_t_gives_the_command_a_terminal_of_its_own() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &[]);
    let ran = Cmd::solum(&store)
        .args(["run", "-t", "base/busybox", "--", "sh", "-c"])
        .arg("test -t 0 && test -t 1 && test -t 2 && echo on-a-terminal")
        .run()
        .ok();
    assert!(ran.stdout.contains("on-a-terminal"), "{}", ran.text());
    let ran = Cmd::solum(&store)
        .args([
            "run",
            "-it",
            "base/busybox",
            "--",
            "sh",
            "-c",
            "read x; echo got:$x",
        ])
        .run_with_input(b"typed\n")
        .ok();
    assert!(ran.stdout.contains("got:typed"), "{}", ran.text());
    // Without -t the command's output is not a terminal.
    let ran = Cmd::solum(&store)
        .args([
            "run",
            "base/busybox",
            "--",
            "sh",
            "-c",
            "test -t 1 || echo no-terminal",
        ])
        .run()
        .ok();
    assert_eq!(ran.stdout, "no-terminal\n");
}

/// `badger search node` without a match printed an empty table.
#[test]
fn a_search_without_a_match_says_so() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    let searched = Cmd::solum(&store)
        .args(["badger", "search", "no-such-language"])
        .run()
        .fails_with(1);
    assert_eq!(searched.stdout, "");
    assert!(
        searched.stderr.contains("no badger in")
            && searched.stderr.contains("\"no-such-language\""),
        "{}",
        searched.text()
    );
}

/// `sh scripts/make-base-images.sh` outside the checkout failed after minutes of
/// debootstrap with "cannot find the repository root": it now finds solum-build on PATH,
/// and says it cannot before any long work.
#[test]
fn the_base_image_script_works_from_outside_the_checkout() {
    let dir = temp_dir();
    let copy = dir.path().join("elsewhere");
    Cmd::program("cp")
        .arg("-r")
        .arg(repo_dir().join("scripts"))
        .arg(&copy)
        .run()
        .ok();
    let cache = dir.path().join("cache");
    let store = dir.path().join("store");
    let script = copy.join("make-base-images.sh");
    // No binary anywhere: refused at once, and no tarball made.
    let missing = Cmd::program("sh")
        .arg(&script)
        .args(["--only", "busybox"])
        .arg(&store)
        .env("SOLUM_BASE_CACHE", &cache)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir(dir.path())
        .run()
        .fails_with(1);
    assert!(
        missing.stderr.contains("cannot find solum-build"),
        "{}",
        missing.text()
    );
    assert!(!cache.join("busybox.tar").exists());
    // On PATH: found, and the image imported.
    let bin_dir = Path::new(bin()).parent().unwrap();
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display());
    Cmd::program("sh")
        .arg(&script)
        .args(["--only", "busybox"])
        .arg(&store)
        .env("SOLUM_BASE_CACHE", &cache)
        .env("PATH", &path)
        .current_dir(dir.path())
        .run()
        .ok();
    let images = Cmd::solum(&store).arg("images").run().ok();
    assert!(images.stdout.contains("base/busybox"), "{}", images.text());
}

/// `solum-build app list --help` offered `--store`, which the client commands ignore (they
/// talk to a server): `--store` is now an option of the commands that use a store only, taken
/// before or after their name, and refused on the others.
#[test]
fn only_the_commands_that_use_a_store_take_store() {
    let help = |args: &[&str]| {
        let shown = Cmd::solum_without_store()
            .args(args)
            .arg("--help")
            .run()
            .ok();
        shown.stdout
    };
    for client in [
        &["app", "list"][..],
        &["workflow", "start"],
        &["du", "list"],
        &["du", "register"],
        &["badger", "upload"],
        &["trigger"],
        &["login"],
    ] {
        assert!(
            !help(client).contains("--store"),
            "{client:?} offers --store"
        );
    }
    for local in [
        &["build"][..],
        &["run"],
        &["images"],
        &["badger", "build"],
        &["badger", "search"],
    ] {
        assert!(help(local).contains("--store"), "{local:?} lacks --store");
    }
    let dir = temp_dir();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    // After the command's name, as before it.
    Cmd::solum_without_store()
        .arg("images")
        .arg("--store")
        .arg(&store)
        .run()
        .ok();
    assert!(store.join("oci-layout").is_file());
    let refused = Cmd::solum(&store)
        .args(["app", "list", "--server", "http://127.0.0.1:9"])
        .run()
        .fails_with(2);
    assert!(
        refused.stderr.contains("leave out --store"),
        "{}",
        refused.text()
    );
    let twice = Cmd::solum(&store)
        .args(["images", "--store", "/elsewhere"])
        .run()
        .fails_with(2);
    assert!(twice.stderr.contains("give it once"), "{}", twice.text());
}

/// A binary replaced while it builds (a package upgrade under a running `serve`, a rebuild
/// under a long build) used to fail the next sandbox step with "No such file or directory":
/// each step starts the sandbox from the file the process runs, not from its old path.
#[test]
fn a_build_goes_on_when_its_binary_is_replaced() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    let app = folder_app(dir.path(), "upgraded", "[8080]");
    let copy = dir.path().join("bin/solum-build");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(bin(), &copy).unwrap();
    let child = Cmd::program(copy.to_str().unwrap())
        .arg("--store")
        .arg(&store)
        .arg("build")
        .arg(&app)
        .args(["--test-cmd", "cat /app/out", "--no-cache"])
        .spawn();
    // Gone once the process runs it (spawn returns after the exec), before any sandbox step.
    std::fs::remove_file(&copy).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("UNIT_TESTING"), "{stderr}");
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
