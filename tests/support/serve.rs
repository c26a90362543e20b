//! The `solum-build serve` harness of the server's integration tests: a server on a free
//! loopback port with a temp data folder (killed on drop), a data folder whose store holds
//! a busybox base and the shell badger, badger folders, app-file text.

use super::cmd::Cmd;
use super::fixtures::busybox_store;
use super::registry::{free_port, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-0123456789";

/// A badger no server has, for tests whose workflows are meant to fail: a registry badger
/// passes the check at app creation (registries are asked only when a build pulls), and
/// nothing listens on loopback port 9, so the pull fails at once.
pub const ABSENT_BADGER: &str = "docker://127.0.0.1:9/absent:1";

/// Whether this run of the server tests is against PostgreSQL: `SOLUM_TEST_DATABASE=postgres`,
/// as `scripts/test.sh` sets for its second pass over the `serve*` files.
pub fn on_postgres() -> bool {
    std::env::var("SOLUM_TEST_DATABASE").as_deref() == Ok("postgres")
}

/// `--database URL` for the server of `data`: on PostgreSQL ([`on_postgres`]) a database of
/// the test binary's shared cluster named after the data folder (made on first use, so a
/// restarted server finds its records); else nothing (SQLite in the data folder).
pub fn database_args(data: &Path) -> Vec<String> {
    if !on_postgres() {
        return Vec::new();
    }
    let cluster = super::postgres::PgCluster::shared()
        .expect("SOLUM_TEST_DATABASE=postgres: PostgreSQL must be installed");
    let name = database_name(data);
    static MADE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut made = MADE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !made.contains(&name) {
        cluster.create_database(&name);
        made.push(name.clone());
    }
    vec!["--database".to_string(), cluster.url(&name)]
}

/// The PostgreSQL database of the server of `data` ([`database_args`]).
pub fn database_name(data: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    format!("serve_{:016x}", hasher.finish())
}

/// A running server, killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Server {
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Server::start_env(data, extra, &[])
    }

    /// [`Server::start`] with extra environment variables for the server.
    pub fn start_env(data: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Server {
        let port = free_port();
        let token_file = data.with_extension("token");
        std::fs::write(&token_file, TOKEN).unwrap();
        let log = data.with_extension("log");
        let child = Cmd::solum_without_store()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data")
            .arg(data)
            .arg("--token-file")
            .arg(&token_file)
            .args(["--workers", "1"])
            .args(database_args(data))
            .args(extra)
            .envs(env.iter().copied())
            .into_command()
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port);
        Server { child, port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn call(&self, method: &str, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
        self.call_with(
            method,
            path,
            body,
            &[("Authorization", &format!("Bearer {TOKEN}"))],
        )
    }

    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent.run(request.body(body.to_vec()).unwrap()).unwrap();
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Starts a workflow of `app` with `actions` (a JSON list) and waits for its final
    /// state: its id and record.
    pub fn run_workflow(&self, app: &str, actions: &str) -> (i64, serde_json::Value) {
        let body = format!("{{\"actions\":{actions}}}");
        let (status, started) = self.call(
            "POST",
            &format!("/v1/apps/{app}/workflows"),
            body.as_bytes(),
        );
        assert_eq!(status, 202, "{started}");
        let id = started["id"].as_i64().unwrap();
        (id, self.wait_final(app, id))
    }

    /// Waits for a workflow to reach a final state and returns its record.
    pub fn wait_final(&self, app: &str, id: i64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (status, record) = self.call("GET", &format!("/v1/apps/{app}/workflows/{id}"), b"");
            assert_eq!(status, 200, "{record}");
            let state = record["state"].as_str().unwrap().to_string();
            if [
                "READY",
                "BUILD_FAILED",
                "UNIT_TESTING_FAILED",
                "PUSH_FAILED",
                "ERROR",
                "CANCELLED",
            ]
            .contains(&state.as_str())
            {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "workflow {id} stuck: {record}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data folder whose store has a busybox base (and, with `badger`, the shell badger).
pub fn data_with_base(dir: &Path, badger: bool) -> PathBuf {
    let data = dir.join("data");
    let badgers: &[&str] = if badger { &["shell"] } else { &[] };
    busybox_store(dir, &data.join("store"), badgers);
    data
}

/// A badger folder with this manifest text (and a build.sh when `script` is given).
pub fn badger_folder(dir: &Path, manifest: &str, script: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("badger.yaml"), manifest).unwrap();
    if let Some(script) = script {
        std::fs::write(dir.join("build.sh"), script).unwrap();
    }
    dir.to_path_buf()
}

/// An app file building `source` on `badger`.
pub fn app_text(name: &str, badger: &str, source: &str) -> String {
    format!(
        "version: 1\nname: {name}\nbadger: {badger}\nsource:\n{source}\nworkflow_config:\n  \
         run_cmd: cat /app/built\n"
    )
}
