//! The client side of `serve`: `app create|list|show|delete`, `workflow
//! start|list|show|logs|cancel`, and `trigger` (what a managed repository's post-receive
//! hook runs), against `--server URL` with `--token` (or $SOLUM_BUILD_TOKEN). Results go
//! to stdout as JSON or one line per item; `workflow start` prints the workflow id last,
//! `workflow logs --follow` exits 0 only when the workflow ended READY. A 4xx answer is an
//! input error (exit 2), anything else that fails is exit 1.

use super::exit::{UsageError, FAILURE, SUCCESS};
use super::output::{copy_to_stdout, result_line};
use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

/// Where the server is and the token to show it.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerFlags {
    /// The server's base URL.
    #[arg(
        long,
        env = "SOLUM_BUILD_SERVER",
        default_value = "http://127.0.0.1:9777",
        value_name = "URL",
        global = true
    )]
    server: String,
    /// The API token.
    #[arg(
        long,
        env = "SOLUM_BUILD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        global = true
    )]
    token: Option<String>,
}

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}")]
    Request {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error(transparent)]
    Read(#[from] IoAt),
}

impl Classify for ClientError {
    fn class(&self) -> ErrorClass {
        match self {
            ClientError::Request { .. } | ClientError::Status { .. } | ClientError::Read(_) => {
                ErrorClass::Failure
            }
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {
    /// Create an app from an app file (YAML or JSON).
    Create { file: PathBuf },
    /// List the apps.
    List,
    /// Show an app (JSON), with its trigger URL and secret and its git URL.
    Show { app: String },
    /// Replace an app's file (same name).
    Update { app: String, file: PathBuf },
    /// Delete an app (its history is kept).
    Delete { app: String },
    /// Upload ready-made binaries (a tarball, gzip or plain) and build them on the app's
    /// badger (workflow c); prints the workflow's id.
    Upload { app: String, tarball: PathBuf },
}

#[derive(Debug, clap::Args)]
pub struct AppArgs {
    #[command(subcommand)]
    command: AppCommand,
    #[command(flatten)]
    server: ServerFlags,
}

#[derive(Debug, clap::Subcommand)]
pub enum WorkflowCommand {
    /// Queue a workflow; prints its id.
    Start {
        app: String,
        /// unittest, build, push (comma-separated; default: all the server can do).
        #[arg(long, value_delimiter = ',')]
        actions: Option<Vec<String>>,
        /// A branch, tag or commit instead of the app file's.
        #[arg(long)]
        revision: Option<String>,
    },
    /// List an app's workflows, newest first.
    List { app: String },
    /// Show a workflow (JSON): state, transitions, DU digest.
    Show { app: String, wf: i64 },
    /// Print a workflow's log; --follow waits for the end (exit 0 only when READY).
    Logs {
        app: String,
        wf: i64,
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a queued or running workflow.
    Cancel { app: String, wf: i64 },
}

#[derive(Debug, clap::Args)]
pub struct WorkflowArgs {
    #[command(subcommand)]
    command: WorkflowCommand,
    #[command(flatten)]
    server: ServerFlags,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Without --revision, reads post-receive lines (OLD NEW REF) from stdin \
    and sends one push event per line, signed with X-Hub-Signature-256."
)]
pub struct TriggerArgs {
    /// The trigger: its URL (http://HOST/v1/triggers/ID, as `app show` gives it), its path
    /// (/v1/triggers/ID) or its ID, the last two on --server.
    url: String,
    #[command(flatten)]
    server: ServerFlags,
    #[arg(
        long,
        conflicts_with = "secret_file",
        env = "SOLUM_BUILD_TRIGGER_SECRET",
        hide_env_values = true
    )]
    secret: Option<String>,
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// The pushed commit (else read from stdin).
    #[arg(long)]
    revision: Option<String>,
    /// The pushed ref (with --revision).
    #[arg(long = "ref", default_value = "refs/heads/main")]
    reference: String,
    /// The commits are in the app's managed repository.
    #[arg(long)]
    managed: bool,
}

fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(timeout)
        .build()
        .into()
}

pub(super) struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub(super) fn new(flags: &ServerFlags) -> Client {
        Client {
            base: flags.server.trim_end_matches('/').to_string(),
            token: flags.token.clone(),
            agent: agent(Some(Duration::from_secs(600))),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = match body {
            Some((content_type, bytes)) => {
                let request = request.header("Content-Type", content_type).body(bytes);
                request
                    .map_err(|e| ClientError::Request {
                        url: url.clone(),
                        source: Box::new(e.into()),
                    })
                    .and_then(|r| {
                        self.agent.run(r).map_err(|e| ClientError::Request {
                            url: url.clone(),
                            source: Box::new(e),
                        })
                    })
            }
            None => request
                .body(())
                .map_err(|e| ClientError::Request {
                    url: url.clone(),
                    source: Box::new(e.into()),
                })
                .and_then(|r| {
                    self.agent.run(r).map_err(|e| ClientError::Request {
                        url: url.clone(),
                        source: Box::new(e),
                    })
                }),
        }?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let error = v["error"].as_str()?.to_string();
                let problems: Vec<String> = v["problems"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                Some(if problems.is_empty() {
                    error
                } else {
                    format!("{error}:\n  {}", problems.join("\n  "))
                })
            })
            .unwrap_or(text);
        let message = if status == 401 {
            let given = match self.token {
                Some(_) => "the token given was refused",
                None => "no token was given",
            };
            format!(
                "{message} ({given}: pass the server's token with --token or SOLUM_BUILD_TOKEN; \
                 the server keeps it in DATA/token, or in its --token-file, and prints where when \
                 it starts)"
            )
        } else {
            message
        };
        Err(ClientError::Status {
            url,
            status,
            message,
        })
    }

    pub(super) fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<serde_json::Value> {
        let response = self.call(method, path, body).map_err(input_error)?;
        let text = response
            .into_body()
            .read_to_string()
            .map_err(|e| ClientError::Request {
                url: format!("{}{path}", self.base),
                source: Box::new(e),
            })?;
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_str(&text)?)
    }
}

/// A 4xx answer is the user's input at fault: exit 2.
fn input_error(error: ClientError) -> anyhow::Error {
    match &error {
        ClientError::Status { status, .. } if (400..500).contains(status) => {
            UsageError(error.to_string()).into()
        }
        _ => error.into(),
    }
}

pub(super) fn read(path: &PathBuf) -> Result<Vec<u8>, ClientError> {
    Ok(std::fs::read(path).map_err(IoAt::at(path, "read"))?)
}

pub(super) fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    result_line(serde_json::to_string_pretty(value)?)?;
    Ok(())
}

pub fn app(args: AppArgs) -> anyhow::Result<i32> {
    let client = Client::new(&args.server);
    match args.command {
        AppCommand::Create { file } => {
            let created =
                client.json("POST", "/v1/apps", Some(("application/yaml", read(&file)?)))?;
            print_json(&created)?;
        }
        AppCommand::List => {
            let list = client.json("GET", "/v1/apps", None)?;
            for app in list["apps"].as_array().into_iter().flatten() {
                let source = if app["managed_source"] == true {
                    format!("managed {}", app["git"].as_str().unwrap_or(""))
                } else {
                    app["source"]["repository"]
                        .as_str()
                        .or(app["source"]["artifact"].as_str())
                        .unwrap_or("")
                        .to_string()
                };
                result_line(format_args!(
                    "{}\t{}\t{source}",
                    app["name"].as_str().unwrap_or(""),
                    app["badger"].as_str().unwrap_or("")
                ))?;
            }
        }
        AppCommand::Show { app } => {
            print_json(&client.json("GET", &format!("/v1/apps/{app}"), None)?)?;
        }
        AppCommand::Update { app, file } => print_json(&client.json(
            "PATCH",
            &format!("/v1/apps/{app}"),
            Some(("application/yaml", read(&file)?)),
        )?)?,
        AppCommand::Delete { app } => {
            client.json("DELETE", &format!("/v1/apps/{app}"), None)?;
        }
        AppCommand::Upload { app, tarball } => {
            let queued = client.json(
                "POST",
                &format!("/v1/apps/{app}/artifacts"),
                Some(("application/x-tar", read(&tarball)?)),
            )?;
            result_line(&queued["id"])?;
        }
    }
    Ok(SUCCESS)
}

pub fn workflow(args: WorkflowArgs) -> anyhow::Result<i32> {
    let client = Client::new(&args.server);
    match args.command {
        WorkflowCommand::Start {
            app,
            actions,
            revision,
        } => {
            let body = serde_json::json!({ "actions": actions, "revision": revision });
            let started = client.json(
                "POST",
                &format!("/v1/apps/{app}/workflows"),
                Some(("application/json", serde_json::to_vec(&body)?)),
            )?;
            result_line(&started["id"])?;
        }
        WorkflowCommand::List { app } => {
            let list = client.json("GET", &format!("/v1/apps/{app}/workflows"), None)?;
            for wf in list["workflows"].as_array().into_iter().flatten() {
                result_line(format_args!(
                    "{}\t{}\t{}\t{}",
                    wf["id"],
                    wf["state"].as_str().unwrap_or(""),
                    wf["created_at"].as_str().unwrap_or(""),
                    wf["du_digest"].as_str().unwrap_or("-")
                ))?;
            }
        }
        WorkflowCommand::Show { app, wf } => {
            print_json(&client.json("GET", &format!("/v1/apps/{app}/workflows/{wf}"), None)?)?;
        }
        WorkflowCommand::Logs { app, wf, follow } => {
            // A follow lasts as long as the build: no response timeout.
            let streaming = Client {
                agent: agent(None),
                ..Client::new(&args.server)
            };
            let path = format!(
                "/v1/apps/{app}/workflows/{wf}/logs{}",
                if follow { "?follow=1" } else { "" }
            );
            let response = streaming.call("GET", &path, None).map_err(input_error)?;
            copy_to_stdout(&mut response.into_body().into_reader())?;
            if follow {
                let record = client.json("GET", &format!("/v1/apps/{app}/workflows/{wf}"), None)?;
                let state = record["state"].as_str().unwrap_or("");
                eprintln!("workflow {wf}: {state}");
                let ready = state == crate::report::State::Ready.as_str();
                return Ok(if ready { SUCCESS } else { FAILURE });
            }
        }
        WorkflowCommand::Cancel { app, wf } => {
            client.json(
                "POST",
                &format!("/v1/apps/{app}/workflows/{wf}/cancel"),
                None,
            )?;
        }
    }
    Ok(SUCCESS)
}

/// What a trigger's answer says, in words: the workflow queued and where to follow it, or
/// why nothing was built.
fn trigger_outcome(answer: &str) -> String {
    let Ok(answer) = serde_json::from_str::<serde_json::Value>(answer) else {
        return answer.trim().to_string();
    };
    let url = answer["url"].as_str().unwrap_or_default();
    match (&answer["id"], &answer["ignored"], &answer["duplicate"]) {
        (_, serde_json::Value::String(why), _) => format!("not built: {why}"),
        (id, _, serde_json::Value::String(_)) if id.is_i64() => {
            format!("received before: workflow {id} ({url})")
        }
        (id, _, _) if id.is_i64() => format!("workflow {id} queued: {url}"),
        _ => answer.to_string(),
    }
}

/// The URL a trigger argument names: a URL as given, a path or a bare id on `server`.
fn trigger_url(given: &str, server: &str) -> String {
    let server = server.trim_end_matches('/');
    let lower = given.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        given.to_string()
    } else if given.starts_with('/') {
        format!("{server}{given}")
    } else {
        format!("{server}/v1/triggers/{given}")
    }
}

pub fn trigger(mut args: TriggerArgs) -> anyhow::Result<i32> {
    args.url = trigger_url(&args.url, &args.server.server);
    let secret = match (&args.secret, &args.secret_file) {
        (Some(secret), _) => secret.clone(),
        (None, Some(path)) => String::from_utf8_lossy(&read(path)?).trim().to_string(),
        (None, None) => return Err(UsageError("give --secret or --secret-file".into()).into()),
    };
    let events: Vec<serde_json::Value> = match &args.revision {
        Some(revision) => vec![serde_json::json!({ "ref": args.reference, "after": revision })],
        None => std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let (before, after, reference) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({ "ref": reference, "before": before, "after": after }))
            })
            .collect(),
    };
    let agent = agent(Some(Duration::from_secs(60)));
    let mut code = SUCCESS;
    for mut event in events {
        // In the signed body, not a header: the server trusts only what is signed.
        if args.managed {
            event["source"] = serde_json::json!("managed");
        }
        let body = serde_json::to_vec(&event)?;
        let request = ureq::http::Request::builder()
            .method("POST")
            .uri(&args.url)
            .header("Content-Type", "application/json")
            .header(
                "X-Hub-Signature-256",
                crate::webhook::signature(&secret, &body),
            );
        let response = agent
            .run(request.body(body)?)
            .map_err(|e| ClientError::Request {
                url: args.url.clone(),
                source: Box::new(e),
            })?;
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap_or_default();
        if (200..300).contains(&status) {
            // One line a pushed ref, which a post-receive hook's pusher reads as `remote: …`.
            result_line(format_args!(
                "{}: {}",
                event["ref"].as_str().unwrap_or(""),
                trigger_outcome(&text)
            ))?;
        } else {
            eprintln!("error: {} answered {status}: {}", args.url, text.trim());
            code = FAILURE;
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_trigger_is_a_url_a_path_or_an_id() {
        let server = "http://127.0.0.1:9777/";
        for (given, url) in [
            (
                "https://ci.example/v1/triggers/ab",
                "https://ci.example/v1/triggers/ab",
            ),
            ("/v1/triggers/ab", "http://127.0.0.1:9777/v1/triggers/ab"),
            ("ab", "http://127.0.0.1:9777/v1/triggers/ab"),
        ] {
            assert_eq!(super::trigger_url(given, server), url);
        }
    }
}
