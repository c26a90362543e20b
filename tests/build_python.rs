//! Issue 4 on the python3 badger: a python app with a `test_cmd` — failing, no DU and exit
//! 1; passing, a DU without the test's files — whose requirements install offline from a
//! vendored wheelhouse; and `python` (Solum v1's `run_cmd: python app.py`) is Python 3. The
//! debian-python3 root filesystem comes from the cache `scripts/make-base-images.sh --only
//! debian-python3 --no-import` fills (the test command does that first); without it this
//! test fails and says how to make it.

mod support;

use std::path::{Path, PathBuf};
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
    let badger = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("badgers/python3");
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
    assert!(
        built.stderr.contains("offline from wheelhouse"),
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

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
