//! Managed git repositories (workflow b): every app gets a bare repository at
//! `DATA/git/{app}.git`, served over smart HTTP at `/git/{app}.git/...` by running
//! `git http-backend` as a CGI program, with the API token as the basic-auth password (or
//! a bearer token).
//!
//! How a push becomes a build: for a `git-receive-pack` request the watched branch's commit
//! is read before and after the CGI program runs; when it changed, a workflow for the new
//! commit is queued. This was chosen over a hook that calls back into the server because
//! it needs no credentials in the repository, cannot lose the call (the server itself sees
//! the ref move), and happens only after git has written and locked the ref. Pushes to the
//! repository as a local path (`git push /DATA/git/app.git`) do not pass through the
//! server: for them a `post-receive` hook runs `solum-build trigger`, which signs a
//! GitHub-style push event with the app's trigger secret (kept 0600 inside the repository).
//! The hook does nothing when the push came through HTTP, so no push builds twice.
//!
//! The whole request and response bodies are held in memory (bounded by the upload limit):
//! simple and enough for app sources, at the cost of memory for huge repositories.

use super::records::{AppRecord, NewWorkflow};
use super::routes_workflows::{checked_actions, enqueue};
use super::{ApiError, Shared};
use crate::io_at::IoAt;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Set for `git http-backend`, so that the post-receive hook knows the server saw the push.
const VIA_HTTP: &str = "SOLUM_SERVE_HTTP_PUSH";
/// The trigger secret's file inside a managed repository, read by the hook.
const SECRET_FILE: &str = "solum-trigger-secret";

pub fn routes(max_upload: usize) -> Router<Arc<Shared>> {
    Router::new()
        .route("/git/{repo}/{*rest}", any(serve_git))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_upload))
}

/// The managed repository of an app.
pub fn repository_path(data: &std::path::Path, app: &str) -> PathBuf {
    data.join("git").join(format!("{app}.git"))
}

/// The branch whose pushes build: the app file's `source.revision` when it names a
/// branch, else `main`.
pub fn watched_branch(app: &AppRecord) -> String {
    super::routes_apps::parse_app_file(&app.app_file)
        .ok()
        .and_then(|(file, _)| file.source.revision)
        .filter(|r| !(r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit())))
        .map_or_else(
            || "main".to_string(),
            |r| r.trim_start_matches("refs/heads/").to_string(),
        )
}

fn git(args: &[&str], dir: &std::path::Path) -> Result<String, ApiError> {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(IoAt::at(dir, "run git in"))?;
    if !output.status.success() {
        return Err(ApiError::Failed {
            what: format!("git {} in {}", args.join(" "), dir.display()),
            reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Makes the app's bare repository (kept as it is when it exists: a re-created app finds
/// its code again) and its hook.
pub fn create_repository(shared: &Shared, name: &str) -> Result<(), ApiError> {
    let path = repository_path(&shared.data, name);
    if !path.join("HEAD").is_file() {
        std::fs::create_dir_all(&path).map_err(IoAt::at(&path, "create"))?;
        git(
            &["init", "--quiet", "--bare", "--initial-branch=main"],
            &path,
        )?;
        // Smart HTTP pushes need receive-pack enabled; the server did the authentication.
        git(&["config", "http.receivepack", "true"], &path)?;
    }
    let app = shared.records.app(name)?.ok_or(ApiError::NotFound {
        what: "app",
        id: name.to_string(),
    })?;
    let address = shared.bound.get().copied().unwrap_or(shared.options.listen);
    write_hook(&path, &app, address)
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn write_hook(
    repo: &std::path::Path,
    app: &AppRecord,
    address: SocketAddr,
) -> Result<(), ApiError> {
    let secret = repo.join(SECRET_FILE);
    super::write_private(&secret, &app.trigger_secret)?;
    let exe = std::env::current_exe().map_err(IoAt::at(repo, "find the binary for the hook of"))?;
    let hook = repo.join("hooks/post-receive");
    let script = format!(
        "#!/bin/sh\n\
         # solum-build serve: a push to this repository on disk starts the app's workflow.\n\
         # Pushes through the server's /git/ URL are seen by the server itself.\n\
         [ -n \"${VIA_HTTP}\" ] && exit 0\n\
         exec {} trigger {} --secret-file {} --managed\n",
        shell_quote(&exe.display().to_string()),
        shell_quote(&format!("http://{address}/v1/triggers/{}", app.trigger_id)),
        shell_quote(&secret.display().to_string()),
    );
    if let Some(parent) = hook.parent() {
        std::fs::create_dir_all(parent).map_err(IoAt::at(parent, "create"))?;
    }
    std::fs::write(&hook, script).map_err(IoAt::at(&hook, "write"))?;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
        .map_err(IoAt::at(&hook, "chmod"))?;
    Ok(())
}

/// At start: the hooks name the server's address, which may have changed.
pub fn install_hooks(shared: &Shared, address: SocketAddr) -> Result<(), ApiError> {
    let _ = shared.bound.set(address);
    for app in shared.records.apps()? {
        let repo = repository_path(&shared.data, &app.name);
        if repo.join("HEAD").is_file() {
            write_hook(&repo, &app, address)?;
        }
    }
    Ok(())
}

/// The commit a branch points at, if any.
fn branch_commit(repo: &std::path::Path, branch: &str) -> Option<String> {
    git(
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}^{{commit}}"),
        ],
        repo,
    )
    .ok()
    .filter(|s| !s.is_empty())
}

fn unauthorized() -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"solum-build git\""),
    );
    response
}

async fn serve_git(
    State(shared): State<Arc<Shared>>,
    Path((repo, rest)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    if !super::auth::has_token(request.headers(), &shared.token) {
        return Ok(unauthorized());
    }
    let name = repo.strip_suffix(".git").unwrap_or("");
    let app = super::routes_apps::find(&shared, name)?;
    // Only the smart-HTTP endpoints: nothing else of the repository is served.
    if !matches!(
        rest.as_str(),
        "info/refs" | "git-upload-pack" | "git-receive-pack"
    ) {
        return Err(ApiError::NotFound {
            what: "git endpoint",
            id: rest,
        });
    }
    let repo_path = repository_path(&shared.data, &app.name);
    let branch = watched_branch(&app);
    let before = if rest == "git-receive-pack" {
        let (path, branch) = (repo_path.clone(), branch.clone());
        tokio::task::spawn_blocking(move || branch_commit(&path, &branch))
            .await
            .ok()
            .flatten()
    } else {
        None
    };

    let (parts, body) = request.into_parts();
    let header = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let body = axum::body::to_bytes(body, shared.options.max_upload)
        .await
        .map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", shared.data.join("git"))
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{}.git/{rest}", app.name))
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header(header::CONTENT_ENCODING))
        .env(
            "GIT_PROTOCOL",
            header(header::HeaderName::from_static("git-protocol")),
        )
        .env("REMOTE_USER", "solum")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env(VIA_HTTP, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(IoAt::at(&repo_path, "run git http-backend for"))?;
    let mut stdin = child.stdin.take();
    // Feed the request while the output is read: a large push would fill both pipes.
    let feeder = tokio::spawn(async move {
        if let Some(stdin) = stdin.as_mut() {
            let _ = stdin.write_all(&body).await;
        }
        drop(stdin);
    });
    let output = child
        .wait_with_output()
        .await
        .map_err(IoAt::at(&repo_path, "run git http-backend for"))?;
    let _ = feeder.await;
    let response = cgi_response(&output.stdout).ok_or_else(|| ApiError::Failed {
        what: format!("git http-backend for {}", app.name),
        reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })?;

    if rest == "git-receive-pack" {
        let (path, watched) = (repo_path.clone(), branch.clone());
        let after = tokio::task::spawn_blocking(move || branch_commit(&path, &watched))
            .await
            .ok()
            .flatten();
        if let Some(after) = after.filter(|a| Some(a) != before.as_ref()) {
            // The push itself succeeded: its answer is git's, the workflow is in the list.
            let _queued = enqueue(
                &shared,
                NewWorkflow {
                    app: app.name.clone(),
                    actions: checked_actions(&shared, None)?,
                    revision: Some(after),
                    origin: "git".into(),
                    source: Some(repo_path.display().to_string()),
                    artifact: None,
                },
            )?;
        }
    }
    Ok(response)
}

/// A CGI program's output as an HTTP response: `Status:` and headers, a blank line, body.
fn cgi_response(output: &[u8]) -> Option<Response> {
    let (head_end, body_start) = if let Some(at) = output.windows(4).position(|w| w == b"\r\n\r\n")
    {
        (at, at + 4)
    } else {
        let at = output.windows(2).position(|w| w == b"\n\n")?;
        (at, at + 2)
    };
    let head = std::str::from_utf8(&output[..head_end]).ok()?;
    let mut builder = Response::builder().status(StatusCode::OK);
    for line in head.lines() {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value.split_whitespace().next()?.parse().ok()?;
            builder = builder.status(code);
        } else {
            builder = builder.header(name.trim(), value);
        }
    }
    builder
        .body(Body::from(Bytes::copy_from_slice(&output[body_start..])))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_output_becomes_a_response() {
        let response =
            cgi_response(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope").unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["content-type"], "text/plain");
        let plain = cgi_response(b"Content-Type: application/x-git\n\nPACK").unwrap();
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(cgi_response(b"no header end").is_none());
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }
}
