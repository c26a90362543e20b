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
/// The managed repository's config key holding its watched branch.
const WATCHED_KEY: &str = "solum.watched";
/// The most ref updates of one push that are read for messages (a push names a few).
const MAX_REF_UPDATES: usize = 1000;
/// The trigger secret's file inside a managed repository, read by the hook.
const SECRET_FILE: &str = "solum-trigger-secret";

pub fn routes(max_upload: usize) -> Router<Arc<Shared>> {
    Router::new()
        .route("/git/{repo}/{*rest}", any(serve_git))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_upload))
}

/// The managed repository of an app.
pub fn repository_path(git_root: &std::path::Path, app: &str) -> PathBuf {
    git_root.join(format!("{app}.git"))
}

/// The branch whose pushes build: the app file's `source.revision` when it names a
/// branch; else the first branch ever pushed to the managed repository (kept in its config
/// as `solum.watched`); else `main`.
pub fn watched_branch(git_root: &std::path::Path, app: &AppRecord) -> String {
    named_branch(app)
        .or_else(|| recorded_branch(&repository_path(git_root, &app.name)))
        .unwrap_or_else(|| "main".to_string())
}

/// The branch the app file names as its `source.revision`, if it names one (not a commit).
fn named_branch(app: &AppRecord) -> Option<String> {
    super::routes_apps::parse_app_file(&app.app_file)
        .ok()
        .and_then(|(file, _)| file.source.revision)
        .filter(|r| !(r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit())))
        .map(|r| r.trim_start_matches("refs/heads/").to_string())
}

/// The branch recorded as watched in the managed repository's config (the first pushed).
fn recorded_branch(repo: &std::path::Path) -> Option<String> {
    git(&["config", "--get", WATCHED_KEY], repo)
        .ok()
        .filter(|branch| !branch.is_empty())
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
    let path = repository_path(&shared.git_root, name);
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
        let repo = repository_path(&shared.git_root, &app.name);
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
    let repo_path = repository_path(&shared.git_root, &app.name);
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
    let pushing = rest == "git-receive-pack";
    // What the push names, for the answer's messages; the build itself follows the ref.
    let push = if pushing {
        pushed_refs(&body)
    } else {
        PushRequest::default()
    };
    // For a push, the watched branch: named by the app file, recorded, or else this first
    // push's. Adopted only by a repository's very first push: one that already holds
    // branches (made before the watched branch was recorded) keeps building `main`.
    let (named, recorded, empty) = if pushing {
        let (app, path) = (app.clone(), repo_path.clone());
        tokio::task::spawn_blocking(move || {
            let empty = git(&["for-each-ref", "--count=1", "refs/heads/"], &path)
                .is_ok_and(|out| out.is_empty());
            (named_branch(&app), recorded_branch(&path), empty)
        })
        .await
        .unwrap_or((None, None, false))
    } else {
        (None, None, false)
    };
    let adopting = pushing && named.is_none() && recorded.is_none() && empty;
    let branch = named
        .or(recorded)
        .or_else(|| push.first_branch().filter(|_| adopting))
        .unwrap_or_else(|| "main".to_string());
    let before = if pushing {
        let (path, branch) = (repo_path.clone(), branch.clone());
        tokio::task::spawn_blocking(move || branch_commit(&path, &branch))
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", &shared.git_root)
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
    let failed = || ApiError::Failed {
        what: format!("git http-backend for {}", app.name),
        reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    };
    let extra = if pushing {
        let base = super::public_base(&shared.options, &parts.headers);
        let pushed = Pushed {
            request: push,
            branch,
            before,
            adopting,
        };
        Some(answer_push(&shared, &app.name, &repo_path, pushed, &base).await?)
    } else {
        None
    };
    cgi_response(&output.stdout, extra.as_deref()).ok_or_else(failed)
}

/// A receive-pack request, and what the repository's watched branch was before it ran.
struct Pushed {
    request: PushRequest,
    branch: String,
    before: Option<String>,
    /// No branch is named or recorded: the one this push made is adopted.
    adopting: bool,
}

/// After git took a push: queues a workflow when the watched branch moved, and returns
/// what the pusher is told, as side-band pkt-lines (empty when the client reads none).
async fn answer_push(
    shared: &Shared,
    app: &str,
    repo_path: &std::path::Path,
    pushed: Pushed,
    base: &str,
) -> Result<Vec<u8>, ApiError> {
    let (path, watched) = (repo_path.to_path_buf(), pushed.branch.clone());
    let adopting = pushed.adopting;
    let after = tokio::task::spawn_blocking(move || {
        let after = branch_commit(&path, &watched);
        // The first branch pushed to a repository whose app names none is the one built.
        if adopting && after.is_some() {
            let _ = git(&["config", WATCHED_KEY, &watched], &path);
        }
        after
    })
    .await
    .ok()
    .flatten();
    let mut queued = None;
    if let Some(after) = after.filter(|a| Some(a) != pushed.before.as_ref()) {
        // The push itself succeeded: its answer is git's, the workflow is in the list.
        let (_, answer) = enqueue(
            shared,
            NewWorkflow {
                app: app.to_string(),
                actions: checked_actions(shared, None)?,
                revision: Some(after),
                origin: "git".into(),
                source: Some(repo_path.display().to_string()),
                artifact: None,
            },
            base,
        )?;
        queued = answer["id"].as_i64();
    }
    // Said on git's side-band, so the pusher sees `remote: …` lines.
    let messages = push_messages(
        &pushed.request,
        &pushed.branch,
        queued,
        &format!("{base}/v1/apps/{app}"),
    );
    Ok(if pushed.request.side_band {
        side_band_messages(&messages)
    } else {
        Vec::new()
    })
}

/// What a receive-pack request names: its ref updates (up to [`MAX_REF_UPDATES`]) and
/// whether the client reads side-band messages. Read from its pkt-lines up to the first
/// flush; anything unexpected ends the reading (the push itself is git's to judge).
#[derive(Debug, Default)]
struct PushRequest {
    /// `(new commit, ref name)` of each update.
    updates: Vec<(String, String)>,
    side_band: bool,
}

impl PushRequest {
    fn first_branch(&self) -> Option<String> {
        self.updates
            .iter()
            .find_map(|(_, name)| name.strip_prefix("refs/heads/"))
            .map(str::to_owned)
    }
}

fn pushed_refs(body: &[u8]) -> PushRequest {
    let mut push = PushRequest::default();
    let mut at = 0;
    while at + 4 <= body.len() && push.updates.len() < MAX_REF_UPDATES {
        let Some(length) = std::str::from_utf8(&body[at..at + 4])
            .ok()
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())
        else {
            break;
        };
        // 0000 is the flush that ends the commands; a length below 4 or past the end is
        // not a pkt-line of a well-formed request.
        if length < 4 || at + length > body.len() {
            break;
        }
        let line = &body[at + 4..at + length];
        at += length;
        let (command, capabilities) = match line.iter().position(|b| *b == 0) {
            Some(nul) => (&line[..nul], Some(&line[nul + 1..])),
            None => (line, None),
        };
        if let Some(capabilities) = capabilities {
            push.side_band = capabilities
                .split(u8::is_ascii_whitespace)
                .any(|c| c == b"side-band-64k" || c == b"side-band");
        }
        let text = String::from_utf8_lossy(command);
        let mut fields = text.split_whitespace();
        if let (Some(_old), Some(new), Some(name)) = (fields.next(), fields.next(), fields.next()) {
            push.updates.push((new.to_string(), name.to_string()));
        }
    }
    push
}

/// The lines a pusher is told: per pushed ref, whether it builds and where to follow it.
fn push_messages(
    push: &PushRequest,
    branch: &str,
    queued: Option<i64>,
    app_url: &str,
) -> Vec<String> {
    let watched = format!("refs/heads/{branch}");
    let mut messages = Vec::new();
    for (new, name) in &push.updates {
        let deleted = new.bytes().all(|b| b == b'0');
        // A ref name is the pusher's text, up to 64 KiB and not checked by git before the
        // hook: only printable ASCII, and a short one, goes back to a terminal.
        let shown: String = name
            .strip_prefix("refs/heads/")
            .unwrap_or(name)
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .take(200)
            .collect();
        if name != &watched {
            messages.push(format!(
                "{shown} is not built: this app builds branch {branch}"
            ));
        } else if deleted {
            messages.push(format!("branch {branch} deleted: nothing is built"));
        } else if let Some(id) = queued {
            messages.push(format!("workflow {id} queued: {app_url}/workflows/{id}"));
        } else {
            messages.push(format!("branch {branch} did not move: nothing is built"));
        }
    }
    messages
}

/// `messages` as pkt-lines on side-band 2 (progress), which git prints as `remote: …`.
fn side_band_messages(messages: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        // `side-band` packets carry at most 999 bytes of data: every message fits.
        let payload: String = message.chars().take(900).chain(['\n']).collect();
        // Length: the 4 length bytes, the band byte, the payload.
        out.extend_from_slice(format!("{:04x}", 5 + payload.len()).as_bytes());
        out.push(2);
        out.extend_from_slice(payload.as_bytes());
    }
    out
}

/// A CGI program's output as an HTTP response: `Status:` and headers, a blank line, body.
/// `before_flush`, when given, goes in before the body's closing flush-pkt (`0000`), the
/// last place a receive-pack answer may carry side-band messages.
fn cgi_response(output: &[u8], before_flush: Option<&[u8]>) -> Option<Response> {
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
    let mut body = output[body_start..].to_vec();
    if let Some(extra) = before_flush.filter(|_| body.ends_with(b"0000")) {
        body.splice(body.len() - 4..body.len() - 4, extra.iter().copied());
    }
    builder.body(Body::from(Bytes::from(body))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_output_becomes_a_response() {
        let response = cgi_response(
            b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope",
            None,
        )
        .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["content-type"], "text/plain");
        let plain = cgi_response(b"Content-Type: application/x-git\n\nPACK", None).unwrap();
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(cgi_response(b"no header end", None).is_none());
    }

    #[test]
    fn a_push_request_names_its_refs_and_side_band() {
        let first = "0000000000000000000000000000000000000000 1111111111111111111111111111111111111111 refs/heads/master\0report-status side-band-64k agent=git/2\n";
        let second = "2222222222222222222222222222222222222222 0000000000000000000000000000000000000000 refs/heads/old\n";
        let mut body = Vec::new();
        for line in [first, second] {
            body.extend_from_slice(format!("{:04x}", line.len() + 4).as_bytes());
            body.extend_from_slice(line.as_bytes());
        }
        body.extend_from_slice(b"0000PACK...");
        let push = pushed_refs(&body);
        assert!(push.side_band);
        assert_eq!(push.first_branch().as_deref(), Some("master"));
        assert_eq!(
            push_messages(&push, "master", Some(7), "http://h/v1/apps/a"),
            [
                "workflow 7 queued: http://h/v1/apps/a/workflows/7",
                "old is not built: this app builds branch master",
            ]
        );
        // A hostile ref name reaches the pusher's terminal printable and short.
        let hostile = PushRequest {
            updates: vec![(
                "1".repeat(40),
                format!("refs/heads/\u{1b}[2J{}", "x".repeat(70_000)),
            )],
            side_band: true,
        };
        let said = push_messages(&hostile, "main", None, "http://h/v1/apps/a");
        assert!(
            said[0].starts_with("?[2Jxxx") && said[0].len() < 300,
            "{}",
            said[0]
        );
        assert!(side_band_messages(&said).len() < 1000);
        // Garbage is no request: nothing is read from it.
        assert!(pushed_refs(b"zzzz").updates.is_empty());
        assert!(pushed_refs(b"0003").updates.is_empty());
    }

    #[test]
    fn messages_go_on_band_two_before_the_closing_flush() {
        let band = side_band_messages(&["hi".to_string()]);
        assert_eq!(band, b"0008\x02hi\n");
        let response = cgi_response(b"Content-Type: x\n\n0009\x01abcd0000", Some(&band)).unwrap();
        let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
            response.into_body(),
            1 << 10,
        ))
        .unwrap()
        .unwrap();
        assert_eq!(&body[..], b"0009\x01abcd0008\x02hi\n0000");
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }
}
