//! Issue 4 on the python badger: a python app with a `test_cmd` — failing, no DU and exit
//! 1; passing, a DU without the test's files — whose requirements install offline from a
//! vendored wheelhouse; and `python` (Solum v1's `run_cmd: python app.py`) is Python 3. The
//! debian-python3 root filesystem comes from the cache `scripts/make-base-images.sh --only
//! debian-python3 --no-import` fills (the test command does that first); without it this
//! test fails and says how to make it.

mod support;

use std::path::{Path, PathBuf};
use support::apps::PodmanImage;
use support::*;

/// A pure-python wheel made by hand (a zip with the dist-info pip needs), so the app can
/// vendor its dependency and build with no network.
fn make_wheel(dir: &Path) {
    let script = r#"
import base64, hashlib, sys, zipfile, os
out = sys.argv[1]
files = {
    "greeting/__init__.py": b"def greet(name):\n    return 'hello ' + name\n",
    "greeting-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: greeting\nVersion: 1.0\n",
    "greeting-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for name, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{name},sha256={digest},{len(data)}")
record.append("greeting-1.0.dist-info/RECORD,,")
files["greeting-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(os.path.join(out, "greeting-1.0-py3-none-any.whl"), "w") as z:
    for name, data in files.items():
        z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
"#;
    Cmd::program("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.join("wheelhouse"))
        .run()
        .ok();
}

#[test]
fn python_app_test_gate_and_offline_requirements() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    import_tree(
        &store,
        &base_tarball("debian-python3"),
        "base/debian-python3",
    );
    let badger = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("badgers/python");
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(&badger)
        .run()
        .ok();

    let app = dir.path().join("src");
    std::fs::create_dir_all(&app).unwrap();
    make_wheel(&app);
    std::fs::write(app.join("requirements.txt"), "greeting==1.0\n").unwrap();
    std::fs::write(
        app.join("app.py"),
        "from greeting import greet\nprint(greet('from the python DU'))\n",
    )
    .unwrap();
    std::fs::write(
        app.join("test_app.py"),
        "import subprocess, sys\nout = subprocess.run([sys.executable, 'app.py'], capture_output=True, text=True).stdout\nopen('/app/test-output.txt', 'w').write(out)\nassert 'hello from the python DU' in out, out\nprint('python tests passed')\n",
    )
    .unwrap();
    let app_file = |test_cmd: &str| {
        format!(
            "version: 1\nname: pyapp\nlanguagepack: python3\nsource: {{repository: ./src}}\n\
             workflow_config:\n  run_cmd: python3 app.py\n  test_cmd: {test_cmd}\n"
        )
    };
    std::fs::write(
        dir.path().join("failing.yaml"),
        app_file("python3 -c 'raise SystemExit(4)'"),
    )
    .unwrap();
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(dir.path().join("failing.yaml"))
        .run()
        .fails_with(1);
    assert!(failed.stderr.contains("exited with 4"), "{}", failed.text());
    let images = Cmd::solum(&store).args(["images", "--json"]).run().ok();
    assert!(
        !images.stdout.contains("\"pyapp\""),
        "a failed test left a DU"
    );

    std::fs::write(dir.path().join("app.yaml"), app_file("python3 test_app.py")).unwrap();
    let built = Cmd::solum(&store)
        .arg("build")
        .arg(dir.path().join("app.yaml"))
        .run()
        .ok();
    // The requirements were installed by the failed build's dependency step, offline; the
    // passing build reuses that layer (the inputs did not change).
    assert!(
        failed.stderr.contains("offline from wheelhouse"),
        "{}",
        failed.text()
    );
    assert!(
        built.stderr.contains("dependencies: reused"),
        "{}",
        built.text()
    );
    assert!(
        built.stderr.contains("python tests passed"),
        "{}",
        built.text()
    );
    let run = Cmd::solum(&store).args(["run", "pyapp"]).run().ok();
    assert_eq!(run.stdout.trim(), "hello from the python DU");
    let check = Cmd::solum(&store)
        .args([
            "run",
            "pyapp",
            "--",
            "sh",
            "-c",
            "test ! -e /app/test-output.txt && echo absent",
        ])
        .run()
        .ok();
    assert_eq!(
        check.stdout.trim(),
        "absent",
        "the test's file reached the DU"
    );
    // Solum v1 app files say `run_cmd: python app.py`: `python` is Python 3 in the badger.
    let python = Cmd::solum(&store)
        .args(["run", "pyapp", "--", "python", "app.py"])
        .run()
        .ok();
    assert_eq!(python.stdout.trim(), "hello from the python DU");
}

/// testdata/apps/python-web copied to `dir/python-web` as a git repository (one commit).
fn python_web_checkout(dir: &Path) -> PathBuf {
    let app = dir.join("python-web");
    Cmd::program("cp")
        .arg("-a")
        .arg(repo_dir().join("testdata/apps/python-web"))
        .arg(&app)
        .run()
        .ok();
    git(&app, &["init", "-q"]);
    git(&app, &["add", "-A"]);
    git(&app, &["commit", "-qm", "python-web"]);
    app
}

/// `GET path` on 127.0.0.1:port, retried while the server starts: the response text.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    for _ in 0..100 {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
            stream.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if !response.is_empty() {
                return response;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("nothing answered on port {port}");
}

/// Issue 13 on the python badger: a Flask app with 16 vendored wheels builds offline, its
/// tests (pip included) pass in the gate, the DU serves HTTP on PORT under our `run` and
/// podman; the same commit gives the same digest; a code change reuses the dependency
/// layer; a changed requirements.txt makes it again; the app layer holds no standard
/// library `.pyc`.
#[test]
fn python_web_app_dependency_layer_and_reproducible_builds() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    import_tree(
        &store,
        &base_tarball("debian-python3"),
        "base/debian-python3",
    );
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(repo_dir().join("badgers/python"))
        .run()
        .ok();
    let app = python_web_checkout(dir.path());
    let build = |extra: &[&str]| {
        Cmd::solum(&store)
            .arg("build")
            .arg(app.join("app.yaml"))
            .args(extra)
            .run()
            .ok()
    };
    let first = build(&[]);
    for said in [
        "dependencies: installing (first install)",
        "installing requirements.txt offline from wheelhouse/",
        "test_pip_works_in_the_tests",
        "Ran 3 tests",
    ] {
        assert!(first.stderr.contains(said), "{said}: {}", first.text());
    }
    let built = layer_digests(&store, "python-web");
    let app_layer = store.join("blobs/sha256").join(&built.last().unwrap()[7..]);
    let listing = Cmd::program("tar")
        .arg("-tzf")
        .arg(&app_layer)
        .run()
        .ok()
        .stdout;
    assert!(!listing.contains("usr/lib/python3"), "{listing}");
    assert!(!listing.contains("opt/venv"), "{listing}");
    assert!(listing.contains("app/notes/__pycache__/"), "{listing}");

    // The same commit again, without any cache: the same DU.
    let again = build(&["--no-cache"]);
    assert_eq!(first.last_line(), again.last_line(), "{}", again.text());

    // It serves HTTP on PORT, under our run and under podman.
    let port = support::registry::free_port();
    let mut server = Cmd::solum(&store)
        .args(["run", "--network", "host", "--env"])
        .arg(format!("PORT={port}"))
        .arg("python-web")
        .spawn();
    let page = http_get(port, "/");
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        page.contains("200 OK") && page.contains("ship it"),
        "{page}"
    );
    if is_root() {
        let image = PodmanImage::push(dir.path(), &store, "python-web", "python-web", "");
        let port = support::registry::free_port();
        let container = image.serve_on(port);
        let health = http_get(port, "/health");
        drop(container);
        assert!(health.ends_with("ok\n"), "{health}");
    }

    // A one-line code change: the dependency layer is reused, only the app layer differs.
    let init = app.join("notes/__init__.py");
    let code = std::fs::read_to_string(&init).unwrap();
    std::fs::write(&init, code.replace("VERSION = \"1\"", "VERSION = \"2\"")).unwrap();
    git(&app, &["commit", "-qam", "version 2"]);
    let changed = build(&[]);
    assert!(
        changed.stderr.contains("dependencies: reused") && !changed.stderr.contains("offline from"),
        "{}",
        changed.text()
    );
    let after_code = layer_digests(&store, "python-web");
    let below_app = built.len() - 1;
    assert_eq!(after_code[..below_app], built[..below_app]);
    assert_ne!(after_code[below_app], built[below_app]);

    // A changed requirements.txt (waitress dropped): the dependency step runs again.
    let requirements = app.join("requirements.txt");
    let text = std::fs::read_to_string(&requirements).unwrap();
    std::fs::write(&requirements, text.replace("waitress==3.0.0\n", "")).unwrap();
    git(&app, &["commit", "-qam", "no waitress"]);
    let relocked = build(&[]);
    assert!(
        relocked
            .stderr
            .contains("dependencies: installing (requirements.txt changed)"),
        "{}",
        relocked.text()
    );
    let after_lock = layer_digests(&store, "python-web");
    assert_ne!(after_lock[below_app - 1], built[below_app - 1]);
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
