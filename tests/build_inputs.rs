//! Issue 13, item 5: build-time inputs that never reach the image, as root and as
//! `tester`. `build_environment` and `--build-env` are seen by the build and test steps and
//! by nothing the DU keeps; a secret is readable (not writable) at /run/secrets/NAME, masked
//! in every line of output, and a build that copies it into the image makes no DU; the
//! `--ca-cert` bundle and its variables are there for the steps only; the host's proxy
//! variables reach `--network host` builds only; a network failure without network ends
//! with the hint. "Nothing the DU keeps" is checked on the bytes: every blob of the store
//! (gzip layers unpacked) is searched for the value.

mod support;

use std::path::{Path, PathBuf};
use support::inputs::*;
use support::*;

/// An app file (outside the source, which goes into the DU) for `source`; `extra` is more
/// of it, `workflow_config` included.
fn app_file(dir: &Path, name: &str, source: &Path, extra: &str) -> PathBuf {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "version: 1\nname: {name}\nbadger: badgers/shell\nsource: {{repository: {}}}\n{extra}",
            source.display()
        ),
    )
    .unwrap();
    file
}

#[test]
fn build_environment_reaches_the_steps_and_nothing_the_du_keeps() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let source = dir.path().join("src");
    source_with_build_script(&source, "echo \"build sees FOO=$FOO BAR=$BAR\"");
    let file = app_file(
        dir.path(),
        "envapp",
        &source,
        "environment: {KEPT: run-value}\n\
         build_environment: {FOO: file-foo-4471, BAR: file-bar-5582}\n\
         workflow_config: {run_cmd: 'true', test_cmd: 'echo \"test sees BAR=$BAR\"'}\n",
    );
    let built = Cmd::solum(&store)
        .arg("build")
        .arg(&file)
        .args(["--build-env", "FOO=flag-foo-9913"])
        .run()
        .ok();
    let text = built.text();
    assert!(
        text.contains("build sees FOO=flag-foo-9913 BAR=file-bar-5582"),
        "{text}"
    );
    assert!(text.contains("test sees BAR=file-bar-5582"), "{text}");

    let inspect = Cmd::solum(&store).args(["inspect", "envapp"]).run().ok();
    assert!(
        inspect.stdout.contains("KEPT=run-value"),
        "{}",
        inspect.stdout
    );
    for value in ["flag-foo-9913", "file-foo-4471", "file-bar-5582"] {
        assert!(!inspect.stdout.contains(value), "{}", inspect.stdout);
        assert_in_no_blob(&store, value);
    }
    let run = Cmd::solum(&store)
        .args(["run", "envapp", "--", "sh", "-c", "echo \"[$FOO$BAR]\""])
        .run()
        .ok();
    assert_eq!(run.stdout.trim(), "[]");

    // A bad name is bad input naming the flag.
    let bad = Cmd::solum(&store)
        .arg("build")
        .arg(&file)
        .args(["--build-env", "1X=y"])
        .run()
        .fails_with(2);
    assert!(bad.stderr.contains("--build-env"), "{}", bad.text());
}

#[test]
fn a_build_env_change_is_a_new_build() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let source = dir.path().join("src");
    source_with_build_script(&source, "echo \"mode=$MODE\"");
    let build = |mode: &str| {
        Cmd::solum(&store)
            .args([
                "build",
                "--badger",
                "badgers/shell",
                "--name",
                "keyed",
                "--source",
            ])
            .arg(&source)
            .args(["--build-env", &format!("MODE={mode}")])
            .run()
            .ok()
            .text()
    };
    assert!(build("one").contains("mode=one"));
    assert!(build("two").contains("mode=two"));
    assert!(build("two").contains("cached"));
}

const SECRET: &str = "tok-3f9a-SECRET-77e1";

#[test]
fn a_secret_printed_and_copied_is_in_no_layer_config_annotation_or_log() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let flag = secret_flag(dir.path(), SECRET);

    // Printed, three ways, and read by the tests: masked, and the DU holds none of it.
    let source = dir.path().join("printing");
    source_with_build_script(
        &source,
        "cat /run/secrets/token\necho \"value: $(cat /run/secrets/token)\"\n\
         echo \"$(cat /run/secrets/token)\" >&2\n\
         if echo x > /run/secrets/token; then echo WRITABLE; exit 7; fi\n\
         if touch /run/secrets/new; then echo WRITABLE; exit 7; fi\n\
         echo done",
    );
    let file = app_file(
        dir.path(),
        "printing",
        &source,
        "workflow_config: {run_cmd: 'true', test_cmd: 'cat /run/secrets/token'}\n",
    );
    for format in ["text", "json"] {
        let built = Cmd::solum(&store)
            .arg("build")
            .arg(&file)
            .args(["--no-cache", "--secret", &flag, "--log-format", format])
            .run()
            .ok();
        let text = built.text();
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("value: ****"), "{text}");
        assert!(
            !text.contains("WRITABLE") && text.contains("done"),
            "{text}"
        );
    }
    let inspect = Cmd::solum(&store).args(["inspect", "printing"]).run().ok();
    assert!(!inspect.stdout.contains(SECRET));
    assert_in_no_blob(&store, SECRET);
    let run = Cmd::solum(&store)
        .args(["run", "printing", "--", "sh", "-c"])
        .arg("test -e /run/secrets && echo PRESENT || echo ABSENT")
        .run()
        .ok();
    assert_eq!(run.stdout.trim(), "ABSENT");

    // Copied into the image: no DU, and the message names the secret and the file only.
    let source = dir.path().join("copying");
    source_with_build_script(
        &source,
        "mkdir -p /app/deep && cp /run/secrets/token /app/deep/leak && echo copied",
    );
    let file = app_file(
        dir.path(),
        "copying",
        &source,
        "workflow_config: {run_cmd: 'true'}\n",
    );
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&file)
        .args(["--secret", &flag])
        .run()
        .fails_with(1);
    let text = failed.text();
    assert!(!text.contains(SECRET), "{text}");
    assert!(
        text.contains("\"token\"") && text.contains("/app/deep/leak"),
        "{text}"
    );
    Cmd::solum(&store)
        .args(["inspect", "copying"])
        .run()
        .fails_with(2);
    assert_in_no_blob(&store, SECRET);

    // A failing step's last lines (shown in the error when output was not streamed).
    let source = dir.path().join("failing");
    source_with_build_script(&source, "echo \"got $(cat /run/secrets/token)\"; exit 3");
    let file = app_file(
        dir.path(),
        "failing",
        &source,
        "workflow_config: {run_cmd: 'true'}\n",
    );
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&file)
        .args(["--secret", &flag, "--log-format", "json"])
        .run()
        .fails_with(1);
    let text = failed.text();
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("got ****"), "{text}");
}

#[test]
fn secret_flags_are_checked_before_any_work() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    let missing = dir.path().join("missing");
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; (1 << 20) + 1]).unwrap();
    for flag in [
        format!("id=token,src={}", missing.display()),
        format!("id=token,src={}", big.display()),
        format!("id=../up,src={}", big.display()),
        "token".to_string(),
    ] {
        let run = Cmd::solum(&store)
            .args(["build", "--badger", "badgers/shell", "--source", "."])
            .args(["--secret", &flag])
            .run()
            .fails_with(2);
        assert!(run.stderr.contains("--secret"), "{}", run.text());
    }
    assert!(!store.exists(), "a refused build created the store");
}

#[test]
fn ca_certificates_are_trusted_by_the_steps_and_absent_from_the_du() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let cert = certificate(dir.path());
    let source = dir.path().join("src");
    source_with_build_script(
        &source,
        "echo \"SSL_CERT_FILE=$SSL_CERT_FILE PIP_CERT=$PIP_CERT\"\n\
         echo \"NODE=$NODE_EXTRA_CA_CERTS GIT=$GIT_SSL_CAINFO\"\n\
         echo \"certificates: $(grep -c 'BEGIN CERTIFICATE' \"$REQUESTS_CA_BUNDLE\")\"\n\
         if echo x >> /run/solum/ca-certificates.crt; then echo WRITABLE; exit 7; fi",
    );
    let file = app_file(
        dir.path(),
        "trusting",
        &source,
        "workflow_config: {run_cmd: 'true', test_cmd: 'test -s \"$CURL_CA_BUNDLE\"'}\n",
    );
    let built = Cmd::solum(&store)
        .arg("build")
        .arg(&file)
        .arg("--ca-cert")
        .arg(&cert)
        .run()
        .ok();
    let text = built.text();
    let bundle = "/run/solum/ca-certificates.crt";
    assert!(
        text.contains(&format!("SSL_CERT_FILE={bundle} PIP_CERT={bundle}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("NODE={bundle} GIT={bundle}")),
        "{text}"
    );
    assert!(text.contains("certificates: 1"), "{text}");
    assert!(text.contains("has no CA bundle of its own"), "{text}");
    assert!(!text.contains("WRITABLE"), "{text}");
    let inspect = Cmd::solum(&store).args(["inspect", "trusting"]).run().ok();
    assert!(!inspect.stdout.contains("/run/solum"), "{}", inspect.stdout);
    assert!(
        !inspect.stdout.contains("SSL_CERT_FILE"),
        "{}",
        inspect.stdout
    );
    let body = std::fs::read_to_string(&cert).unwrap();
    let line = body.lines().nth(3).unwrap();
    assert_in_no_blob(&store, line);
    let run = Cmd::solum(&store)
        .args(["run", "trusting", "--", "sh", "-c"])
        .arg("test -e /run/solum && echo PRESENT || echo ABSENT")
        .run()
        .ok();
    assert_eq!(run.stdout.trim(), "ABSENT");

    // Not a certificate: bad input naming the flag and the file.
    let key = dir.path().join("ca.key");
    let bad = Cmd::solum(&store)
        .arg("build")
        .arg(&file)
        .arg("--ca-cert")
        .arg(&key)
        .run()
        .fails_with(2);
    assert!(
        bad.stderr.contains("--ca-cert") && bad.stderr.contains("ca.key"),
        "{}",
        bad.text()
    );
}

/// A badger whose base has a system bundle: the steps' bundle is that one, then the given
/// certificates.
#[test]
fn the_bundle_is_the_image_s_own_then_the_given_certificates() {
    let dir = temp_dir();
    let system = dir.path().join("system");
    let store = store_with_shell_on(dir.path(), |rootfs| {
        std::fs::create_dir_all(rootfs.join("etc/ssl/certs")).unwrap();
        std::fs::copy(
            certificate(&system),
            rootfs.join("etc/ssl/certs/ca-certificates.crt"),
        )
        .unwrap();
    });
    let source = dir.path().join("src");
    source_with_build_script(
        &source,
        "echo \"certificates: $(grep -c 'BEGIN CERTIFICATE' \"$SSL_CERT_FILE\")\"\n\
         head -3 \"$SSL_CERT_FILE\" | tail -1",
    );
    let built = Cmd::solum(&store)
        .args(["build", "--badger", "badgers/shell", "--source"])
        .arg(&source)
        .arg("--ca-cert")
        .arg(certificate(dir.path()))
        .run()
        .ok();
    let text = built.text();
    assert!(text.contains("certificates: 2"), "{text}");
    assert!(!text.contains("has no CA bundle"), "{text}");
    // The system certificate comes first.
    let system_line = std::fs::read_to_string(system.join("ca.pem")).unwrap();
    let system_line = system_line.lines().nth(2).unwrap();
    assert!(text.contains(&format!("| {system_line}")), "{text}");
}

#[test]
fn host_proxies_reach_network_host_builds_only() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let source = dir.path().join("src");
    source_with_build_script(
        &source,
        "echo \"proxy=[$HTTPS_PROXY] lower=[$http_proxy] no=[$no_proxy]\"",
    );
    let build = |network: &str| {
        Cmd::solum(&store)
            .args(["build", "--badger", "badgers/shell", "--name", "proxied"])
            .arg("--source")
            .arg(&source)
            .args(["--network", network])
            .env("HTTPS_PROXY", "http://proxy.invalid:3128")
            .env("http_proxy", "http://proxy.invalid:8080")
            .env("no_proxy", "localhost,.internal")
            .run()
            .ok()
            .text()
    };
    let host = build("host");
    assert!(
        host.contains(
            "proxy=[http://proxy.invalid:3128] lower=[http://proxy.invalid:8080] \
             no=[localhost,.internal]"
        ),
        "{host}"
    );
    let none = build("none");
    assert!(none.contains("proxy=[] lower=[] no=[]"), "{none}");
    assert_in_no_blob(&store, "proxy.invalid");
}

#[test]
fn a_network_failure_without_network_ends_with_the_hint() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let hint = "hint: the build has no network; vendor the dependencies \
                (wheelhouse/, vendor/, ...) or build with --network host";
    let source = dir.path().join("fetching");
    // busybox's nc (its wget crashes without a resolver): `nc: bad address 'example.com'`.
    source_with_build_script(&source, "nc -w 5 example.com 80 </dev/null");
    let failed = Cmd::solum(&store)
        .args(["build", "--badger", "badgers/shell", "--source"])
        .arg(&source)
        .run()
        .fails_with(1);
    assert!(
        failed.stderr.trim_end().ends_with(hint),
        "{}",
        failed.text()
    );

    // The same words from a test step, and with --network host: the hint only without.
    let source = dir.path().join("saying");
    source_with_build_script(&source, "true");
    for (network, hinted) in [("none", true), ("host", false)] {
        let failed = Cmd::solum(&store)
            .args(["build", "--badger", "badgers/shell", "--source"])
            .arg(&source)
            .args(["--network", network])
            .args([
                "--test-cmd",
                "echo 'curl: (6) Could not resolve host: pypi.org'; false",
            ])
            .run()
            .fails_with(1);
        let text = failed.text();
        assert_eq!(text.trim_end().ends_with(hint), hinted, "{text}");
        assert!(text.contains("tests"), "{text}");
    }
}

#[test]
fn the_server_gives_its_certificates_and_the_app_file_s_build_environment_to_workflows() {
    let dir = temp_dir();
    let data = support::serve::data_with_base(dir.path(), true);
    let cert = certificate(dir.path());
    let source = dir.path().join("source");
    source_with_build_script(
        &source,
        "echo \"trust=$SSL_CERT_FILE mode=$MODE\"\necho built > /app/built",
    );
    let server = support::serve::Server::start(
        &data,
        &[
            "--allow-local-source",
            dir.path().to_str().unwrap(),
            "--ca-cert",
            cert.to_str().unwrap(),
        ],
    );
    let text = format!(
        "{}build_environment: {{MODE: served-7731}}\n",
        support::serve::app_text(
            "served",
            "badgers/shell",
            &format!("  repository: {}", source.display())
        )
    );
    let (status, answer) = server.call("POST", "/v1/apps", text.as_bytes());
    assert_eq!(status, 201, "{answer}");
    let (id, record) = server.run_workflow("served", r#"["build"]"#);
    assert_eq!(record["state"], "READY", "{record}\n{}", server.log());
    // The workflow's log, as the API streams it (kept in the server's database).
    let (status, log) = server.call("GET", &format!("/v1/apps/served/workflows/{id}/logs"), b"");
    assert_eq!(status, 200, "{log}");
    let log = log.as_str().unwrap_or_default().to_string();
    assert!(
        log.contains("trust=/run/solum/ca-certificates.crt mode=served-7731"),
        "{log}"
    );
    assert_in_no_blob(&data.join("store"), "served-7731");

    // A file that is not a certificate stops the server before it listens.
    let refused = Cmd::solum_without_store()
        .args(["serve", "--data"])
        .arg(dir.path().join("other"))
        .arg("--ca-cert")
        .arg(dir.path().join("ca.key"))
        .run()
        .fails_with(2);
    assert!(refused.stderr.contains("--ca-cert"), "{}", refused.text());
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
