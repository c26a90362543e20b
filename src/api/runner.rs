//! Running one workflow: the app file as stored, the build of the pipeline, then the push,
//! with every stage recorded as a transition and every line of progress appended to the
//! workflow's log file (`DATA/logs/{id}.log`).
//!
//! The order: write the stored app file to a scratch folder (the build reads a file), build
//! with the workflow's source, revision or artifact laid over the file's, record the DU,
//! push when the actions ask for it, and only then READY. The pipeline calls `stage()` with
//! BUILDING before UNIT_TESTING (tests run on the built filesystem, see formats.md "Build
//! states"); those calls become transitions as they come. This module runs on a blocking
//! thread and never touches HTTP.

use super::records::{self, DuRecord, Records, WorkflowRecord};
use super::Shared;
use crate::image::{Digest, ImageReference};
use crate::manifest::Overrides;
use crate::pipeline::build::{build, BuildError, BuildRequest};
use crate::report::Reporter;
use runtime::CancelHandle;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The log file of a workflow.
pub fn log_path(data: &Path, id: i64) -> PathBuf {
    data.join("logs").join(format!("{id}.log"))
}

/// Records stages and appends lines to the workflow's log.
pub struct WorkflowReporter<'a> {
    records: &'a Records,
    id: i64,
    log: Mutex<Option<std::fs::File>>,
}

impl<'a> WorkflowReporter<'a> {
    pub fn new(records: &'a Records, data: &Path, id: i64) -> WorkflowReporter<'a> {
        use std::os::unix::fs::OpenOptionsExt;
        // Build output may show anything of the app: private, like the rest of DATA.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log_path(data, id))
            .ok();
        WorkflowReporter {
            records,
            id,
            log: Mutex::new(log),
        }
    }

    /// One line, written at once (the log follower reads the file while it grows).
    pub fn line(&self, text: &str) {
        let mut guard = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = guard.as_mut() {
            let stamp = chrono::Utc::now().format("%H:%M:%S%.3f");
            let _ = writeln!(file, "{stamp} {text}");
        }
    }

    /// A state change: recorded, and written to the log.
    pub fn record(&self, state: &str, detail: &str) {
        self.line(&format!("==> {state} {detail}"));
        if let Err(error) = self.records.transition(self.id, state, detail) {
            self.line(&format!("warning: cannot record {state}: {error}"));
        }
    }
}

impl Reporter for WorkflowReporter<'_> {
    fn status(&self, verb: &str, subject: &str) {
        self.line(&format!("{verb:>12} {subject}"));
    }
    fn blob_start(&self, digest: &Digest, size: Option<u64>) {
        let size = size.map(|s| format!(" ({s} bytes)")).unwrap_or_default();
        self.line(&format!("{:>12} blob {}{size}", "Copying", digest.short()));
    }
    fn warning(&self, message: &str) {
        self.line(&format!("warning: {message}"));
    }
    fn stage(&self, stage: &str, detail: &str) {
        match stage {
            // The record already says QUEUED; the pipeline's QUEUED only names the build.
            records::QUEUED => self.line(&format!("==> {stage} {detail}")),
            // READY is the workflow's to set, after the push (if any).
            records::READY => self.record(records::BUILT, detail),
            records::BUILDING | records::UNIT_TESTING | records::BUILT => {
                self.record(stage, detail)
            }
            _ => self.line(&format!("==> {stage} {detail}")),
        }
    }
    fn output_line(&self, _stage: &str, line: &str, _stderr: bool) {
        self.line(&format!("    | {line}"));
    }
}

/// The registry reference a workflow's DU is pushed to: `PREFIX/APP:wf-ID`.
pub fn push_destination(push_to: &str, app: &str, id: i64) -> String {
    format!("{}/{app}:wf-{id}", push_to.trim_end_matches('/'))
}

/// Runs a claimed workflow to a terminal state. Never panics on a failed build: every
/// outcome is a recorded state.
pub fn run_workflow(shared: &Shared, workflow: &WorkflowRecord, cancel: &CancelHandle) {
    let reporter = WorkflowReporter::new(&shared.records, &shared.data, workflow.id);
    reporter.line(&format!(
        "workflow {} of {} ({}), actions {:?}",
        workflow.id, workflow.app, workflow.origin, workflow.actions
    ));
    match execute(shared, workflow, cancel, &reporter) {
        Ok(()) => {}
        Err((state, reason)) => {
            // A stop of the server cancels running builds; that is not the user's cancel.
            let state = if state == records::CANCELLED && shared.is_stopping() {
                records::ERROR
            } else {
                state
            };
            let reason = if state == records::ERROR && shared.is_stopping() {
                format!("interrupted: the server stopped ({reason})")
            } else {
                reason
            };
            reporter.record(state, &reason);
        }
    }
    // An uploaded artifact is only ever built once.
    if let Some(artifact) = &workflow.artifact {
        if workflow.origin == "artifact" {
            let _ = std::fs::remove_file(artifact);
        }
    }
}

type Failure = (&'static str, String);

fn execute(
    shared: &Shared,
    workflow: &WorkflowRecord,
    cancel: &CancelHandle,
    reporter: &WorkflowReporter<'_>,
) -> Result<(), Failure> {
    let error = |e: &dyn std::fmt::Display| (records::ERROR, e.to_string());
    let app = shared
        .records
        .app(&workflow.app)
        .map_err(|e| error(&e))?
        .ok_or((
            records::ERROR,
            format!("the app {} was deleted", workflow.app),
        ))?;

    // The build reads an app file: the stored text goes to a scratch folder of its own.
    let scratch = tempfile::Builder::new()
        .prefix(&format!("wf-{}-", workflow.id))
        .tempdir_in(shared.data.join("work"))
        .map_err(|e| error(&e))?;
    let app_path = scratch.path().join("app.yaml");
    std::fs::write(&app_path, &app.app_file).map_err(|e| error(&e))?;

    // Checked again at run time: the app may have been stored before a check existed, and
    // an allowed local folder may have changed since. A local folder is built from its
    // resolved path, the one that was checked.
    let (file, _) =
        super::routes_apps::parse_app_file(&app.app_file).map_err(|e| error(&error_chain(&e)))?;
    let uses_own_source =
        !app.managed_source && workflow.source.is_none() && workflow.artifact.is_none();
    let checked_local = super::policy::check_app(&file, !uses_own_source, &shared.sources)
        .map_err(|e| error(&error_chain(&e)))?;
    let managed = super::git::repository_path(&shared.data, &app.name);
    let source = workflow
        .source
        .clone()
        .or_else(|| {
            (app.managed_source && workflow.artifact.is_none())
                .then(|| managed.display().to_string())
        })
        .or_else(|| checked_local.map(|path| path.display().to_string()));
    let request = BuildRequest {
        app_file: Some(app_path),
        name: None,
        overrides: Overrides {
            source,
            revision: workflow.revision.clone(),
            artifact: workflow.artifact.clone(),
            ..Overrides::default()
        },
        tag: Some(format!("{}:wf-{}", app.name, workflow.id)),
        network_host: shared.options.network_host,
        timeout: Some(shared.options.build_timeout),
        no_cache: false,
        compression: crate::layer::LayerCompression::Gzip,
        epoch: crate::pipeline::source_date_epoch(),
        run_tests: workflow.actions.iter().any(|a| a == "unittest"),
        source_rules: crate::source::FetchRules {
            limit: Some(super::source_limit(&shared.options)),
            anonymous: true,
        },
        privilege: shared.privilege,
    };
    let built = build(
        &request,
        &shared.store,
        Some(&shared.registry),
        cancel,
        reporter,
    );
    if cancel.is_cancelled() {
        return Err((records::CANCELLED, "cancelled".into()));
    }
    let built = built.map_err(|e| {
        let state = match &e {
            BuildError::BuildFailed { .. } => records::BUILD_FAILED,
            BuildError::TestsFailed { .. } => records::UNIT_TESTING_FAILED,
            BuildError::Cancelled => records::CANCELLED,
            _ => records::ERROR,
        };
        (state, error_chain(&e))
    })?;
    let digest = built.manifest_digest.to_string();
    reporter.record(records::BUILT, &format!("{} {digest}", built.tag));
    shared
        .records
        .set_result(workflow.id, &digest, None)
        .map_err(|e| error(&e))?;

    let mut pushed_to = None;
    if workflow.actions.iter().any(|a| a == "push") {
        let Some(push_to) = &shared.options.push_to else {
            return Err((
                records::PUSH_FAILED,
                "the server has no --push-to destination".into(),
            ));
        };
        let destination = push_destination(push_to, &app.name, workflow.id);
        reporter.record(records::PUSHING, &destination);
        push(shared, &built.tag, &destination, reporter).map_err(|e| (records::PUSH_FAILED, e))?;
        shared
            .records
            .set_result(workflow.id, &digest, Some(&destination))
            .map_err(|e| error(&e))?;
        pushed_to = Some(destination);
    }
    shared
        .records
        .add_du(&DuRecord {
            id: 0,
            name: app.name.clone(),
            digest: digest.clone(),
            store_name: built.tag.clone(),
            origin: workflow.origin.clone(),
            workflow: Some(workflow.id),
            pushed_to,
            created_at: records::now(),
        })
        .map_err(|e| error(&e))?;
    reporter.record(records::READY, &digest);
    Ok(())
}

/// Copies a store image to a destination reference; the error as one line.
pub fn push(
    shared: &Shared,
    store_name: &str,
    destination: &str,
    reporter: &dyn Reporter,
) -> Result<Digest, String> {
    let destination: ImageReference = destination.parse().map_err(|e| error_chain(&e))?;
    let source = ImageReference::Store {
        name: store_name.to_string(),
    };
    let registry = Some(&shared.registry as &dyn crate::transport::RegistryTransport);
    let opened = crate::transport::open_image(&source, &shared.store, registry, reporter)
        .map_err(|e| error_chain(&e))?;
    crate::transport::write_image(&opened, &destination, &shared.store, registry, reporter)
        .map_err(|e| error_chain(&e))
}

/// An error and its causes on one line, for records and HTTP answers.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
