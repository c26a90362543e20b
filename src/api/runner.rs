//! Running one workflow: the stored app file, checked again, becomes a delivery
//! (`pipeline::delivery`) whose states are recorded as transitions and whose every line of
//! progress is appended to the workflow's log in the database (`logs`), where any API node
//! reads it.
//!
//! The order: read the app and check its file again (a failure here ends the workflow in
//! ERROR), lay the workflow's source, revision or artifact over the file's, and run the
//! delivery, with the push destination when the actions ask for a push. The delivery
//! reports each state as it comes (BUILDING before UNIT_TESTING: tests run on the built
//! filesystem, see formats.md "Build states"; then BUILT, PUSHING and its final state) and
//! this module's reporter records each one; its ledger records the DU's digest once built,
//! and the DU itself before READY. This module runs on a blocking thread and never touches
//! HTTP.

use super::records::{DuRecord, WorkflowRecord};
use super::Shared;
use crate::image::{Digest, ImageReference};
use crate::manifest::Overrides;
use crate::pipeline::build::{AppInput, BuildRequest, Built};
use crate::pipeline::delivery::{self, deliver, Delivered, Delivery, Ledger, LedgerError, PushTo};
use crate::report::Reporter;
use crate::report::State;
use runtime::CancelHandle;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::pipeline::delivery::error_chain;
/// The log file of a workflow.
pub fn log_path(data: &Path, id: i64) -> PathBuf {
    data.join("logs").join(format!("{id}.log"))
}

/// Records states and appends lines to the workflow's log.
pub struct WorkflowReporter<'a> {
    shared: &'a Shared,
    id: i64,
    log: Arc<super::logs::LogWriter>,
}

impl<'a> WorkflowReporter<'a> {
    pub fn new(shared: &'a Shared, id: i64) -> WorkflowReporter<'a> {
        WorkflowReporter {
            shared,
            id,
            log: super::logs::LogWriter::start(shared.records.clone(), id),
        }
    }

    /// One line, stamped (written within a fraction of a second: the log follower reads
    /// the database while it grows).
    pub fn line(&self, text: &str) {
        let stamp = chrono::Utc::now().format("%H:%M:%S%.3f");
        self.log.line(&format!("{stamp} {text}"));
    }

    /// A state change: recorded (while this worker still holds the workflow), and written
    /// to the log at once.
    fn record(&self, state: State, detail: &str) {
        self.line(&format!("==> {state} {detail}"));
        match self
            .shared
            .records
            .transition(self.id, state, detail, Some(&self.shared.worker_id))
        {
            // BUILDING again: the pickup recorded it already.
            Ok(true) => {}
            Ok(false) if state == State::Building => {}
            // Held by another worker now (this one's lease ran out), or already ended.
            Ok(false) => self.line(&format!(
                "note: {state} not recorded: the workflow moved on"
            )),
            Err(error) => self.line(&format!("warning: cannot record {state}: {error}")),
        }
        self.log.flush();
    }
}

impl Drop for WorkflowReporter<'_> {
    fn drop(&mut self) {
        self.log.close();
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
    fn stage(&self, state: State, detail: &str) {
        match state {
            // The record already says QUEUED; the pipeline's QUEUED only names the build.
            State::Queued => self.line(&format!("==> {state} {detail}")),
            // On many hosts a stopping worker hands its workflows back (`api::run`): the
            // cancel of the stop is not the workflow's end.
            State::Cancelled | State::Error
                if self.shared.is_stopping() && !self.shared.records.is_single_host() =>
            {
                self.line(&format!("==> stopped: the worker stops ({detail})"));
            }
            // A stop of the server cancels running builds: that is not the user's cancel,
            // and what failed then failed because the server stopped.
            State::Cancelled | State::Error if self.shared.is_stopping() => self.record(
                State::Error,
                &format!("interrupted: the server stopped ({detail})"),
            ),
            _ => self.record(state, detail),
        }
    }
    fn output_line(&self, _state: State, line: &str, _stderr: bool) {
        self.line(&format!("    | {line}"));
    }
}

/// The registry reference a workflow's DU is pushed to: `PREFIX/APP:wf-ID`.
pub fn push_destination(push_to: &str, app: &str, id: i64) -> String {
    format!("{}/{app}:wf-{id}", push_to.trim_end_matches('/'))
}

/// Untags the app's workflow DUs (`APP:wf-N`) past the newest `--keep` (0 keeps all), then
/// collects the blobs no name reaches, if no build holds the store right now (else the next
/// workflow's call does). Returns what it did, for the workflow's log.
fn keep_newest(shared: &Shared, app: &str) -> Result<Vec<String>, LedgerError> {
    let keep = shared.options.keep;
    if keep == 0 {
        return Ok(Vec::new());
    }
    let layout = crate::store::Layout::open(&shared.store)?;
    let prefix = format!("{app}:wf-");
    let mut numbered: Vec<(i64, String)> = layout
        .names()?
        .into_iter()
        .filter_map(|name| Some((name.strip_prefix(&prefix)?.parse().ok()?, name)))
        .collect();
    numbered.sort_unstable_by_key(|(id, _)| std::cmp::Reverse(*id));
    let mut notes = Vec::new();
    for (id, name) in numbered.into_iter().skip(keep) {
        // A workflow still under way (pushing its DU by this name) keeps it until it ends.
        let ended = shared
            .records
            .workflow(id)?
            .is_none_or(|workflow| workflow.state.is_terminal());
        if ended && layout.untag(&name)? {
            notes.push(format!("removed {name} (--keep {keep})"));
        }
    }
    if !notes.is_empty() {
        match layout.try_exclusive_lease()? {
            Some(held) => {
                let report = layout.gc(&held)?;
                if let Ok(root) = crate::store::cache::cache_root(layout.root()) {
                    crate::pipeline::record_prune::prune_stale_records(&layout, &root);
                }
                notes.push(format!(
                    "gc: {} blobs, {} bytes freed",
                    report.removed.len(),
                    report.freed
                ));
            }
            None => notes.push("gc: later, builds hold the store".into()),
        }
    }
    Ok(notes)
}

/// The moving tag pushed beside each workflow's own: `PREFIX/APP:latest`.
pub fn moving_destination(push_to: &str, app: &str) -> String {
    format!("{}/{app}:latest", push_to.trim_end_matches('/'))
}

/// Runs a claimed workflow to a terminal state. Never panics on a failed build: every
/// outcome is a recorded state.
pub fn run_workflow(shared: &Shared, workflow: &WorkflowRecord, cancel: &CancelHandle) {
    let reporter = WorkflowReporter::new(shared, workflow.id);
    reporter.line(&format!(
        "workflow {} of {} ({}), actions {:?}",
        workflow.id, workflow.app, workflow.origin, workflow.actions
    ));
    // BUILDING from the moment a worker holds it (Solum's meaning: a build job runs), so
    // that the record shows the pickup at once; the pipeline's own BUILDING, once the
    // source and badgers are laid out, is the same state and adds a log line only.
    reporter.stage(
        State::Building,
        &format!("taken by worker {}", shared.worker_id),
    );
    // The local store is a cache an operator may delete at any time: made again if gone.
    if let Err(error) = crate::store::Layout::open_or_create(&shared.store) {
        reporter.stage(State::Error, &error_chain(&error));
        return;
    }
    // Badgers named by store name that another node built: from the registry, by digest.
    if let Err(reason) = super::shared_images::pull_badgers(shared, &workflow.app, &reporter) {
        reporter.stage(State::Error, &reason);
        return;
    }
    match prepare(shared, workflow) {
        Ok((delivery, ledger)) => {
            // The delivery reports its final state itself; the error is in the record.
            let registry = Some(&shared.registry as &dyn crate::transport::RegistryTransport);
            let delivered = deliver(
                &delivery,
                &shared.store,
                registry,
                cancel,
                &reporter,
                &ledger,
            );
            if delivered.is_ok() {
                // Housekeeping after READY: its failure is logged, never the workflow's.
                match keep_newest(shared, &workflow.app) {
                    Ok(note) => note.into_iter().for_each(|line| reporter.line(&line)),
                    Err(error) => reporter.line(&format!(
                        "warning: cannot remove older DUs of {}: {}",
                        workflow.app,
                        error_chain(error.as_ref())
                    )),
                }
            }
        }
        Err(reason) => reporter.stage(State::Error, &reason),
    }
    // An uploaded artifact is only ever built once.
    if let Some(artifact) = &workflow.artifact {
        if workflow.origin == "artifact" {
            let _ = std::fs::remove_file(artifact);
        }
    }
}

/// The workflow's delivery, and the ledger that records it; or why there is none.
fn prepare<'a>(
    shared: &'a Shared,
    workflow: &'a WorkflowRecord,
) -> Result<(Delivery, WorkflowLedger<'a>), String> {
    let app = shared
        .records
        .app(&workflow.app)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the app {} was deleted", workflow.app))?;

    // Checked again at run time: the app may have been stored before a check existed, and
    // an allowed local folder may have changed since. A local folder is built from its
    // resolved path, the one that was checked.
    let (file, _) =
        super::routes_apps::parse_app_file(&app.app_file).map_err(|e| error_chain(&e))?;
    let uses_own_source =
        !app.managed_source && workflow.source.is_none() && workflow.artifact.is_none();
    let checked_local = super::policy::check_app(&file, !uses_own_source, &shared.sources)
        .map_err(|e| error_chain(&e))?;
    let managed = super::git::repository_path(&shared.git_root, &app.name);
    let source = workflow
        .source
        .clone()
        .or_else(|| {
            (app.managed_source && workflow.artifact.is_none())
                .then(|| managed.display().to_string())
        })
        .or_else(|| checked_local.map(|path| path.display().to_string()));
    let build = BuildRequest {
        app: AppInput::Text {
            text: app.app_file,
            origin: format!("the app file of {}", app.name),
        },
        overrides: Overrides {
            source,
            revision: workflow.revision.clone(),
            artifact: workflow.artifact.clone(),
            ..Overrides::default()
        },
        tag: Some(format!("{}:wf-{}", app.name, workflow.id)),
        network_host: shared.options.network_host,
        isolation: shared.options.isolation,
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
        inputs: crate::pipeline::build_inputs::BuildInputs {
            secrets: Vec::new(),
            ca_certificates: shared.options.ca_certificates.clone(),
        },
        registry_cache: shared.options.registry_cache.clone(),
    };

    let mut destination = None;
    let mut also_push = Vec::new();
    // Solum's `trigger_actions: [.., deploy]` is a push wherever the server has a target.
    let deploy = file.asks_deploy() && shared.options.push_to.is_some();
    let push = if !deploy && !workflow.actions.iter().any(|a| a == "push") {
        PushTo::Nowhere
    } else if let Some(push_to) = &shared.options.push_to {
        let text = push_destination(push_to, &app.name, workflow.id);
        let parsed = text.parse::<ImageReference>();
        destination = Some(text);
        // The moving tag a deployer follows: the newest DU pushed.
        if let Ok(latest) = moving_destination(push_to, &app.name).parse::<ImageReference>() {
            also_push.push(latest);
        }
        match parsed {
            Ok(reference) => PushTo::Destination(reference),
            Err(e) => PushTo::Refused(error_chain(&e)),
        }
    } else {
        PushTo::Refused("the server has no --push-to destination".into())
    };
    let ledger = WorkflowLedger {
        shared,
        workflow,
        app: app.name,
        destination,
    };
    Ok((
        Delivery {
            build,
            push,
            also_push,
            attest: shared.options.attest.clone(),
            builder: crate::attest::provenance::Builder::Server,
            invocation_id: Some(format!("apps/{}/workflows/{}", workflow.app, workflow.id)),
        },
        ledger,
    ))
}

/// Keeps a workflow's result in the records: its DU's digest once built, where it was
/// pushed, and the DU itself.
struct WorkflowLedger<'a> {
    shared: &'a Shared,
    workflow: &'a WorkflowRecord,
    app: String,
    /// The push destination as the server wrote it (recorded as `pushed_to`).
    destination: Option<String>,
}

impl WorkflowLedger<'_> {
    /// The result, stored while this worker holds the workflow; an error when it no longer
    /// does (its lease ran out and the workflow went back to the queue or to another
    /// worker), which stops the delivery before its push and its DU record.
    fn record_result(&self, digest: &str, pushed_to: Option<&str>) -> Result<(), LedgerError> {
        let held = self.shared.records.set_result(
            self.workflow.id,
            digest,
            pushed_to,
            &self.shared.worker_id,
        )?;
        if held {
            Ok(())
        } else {
            Err(format!(
                "workflow {} is no longer held by worker {}: its lease ran out",
                self.workflow.id, self.shared.worker_id
            )
            .into())
        }
    }
}

impl Ledger for WorkflowLedger<'_> {
    fn built(&self, built: &Built) -> Result<(), LedgerError> {
        let digest = built.manifest_digest.to_string();
        self.record_result(&digest, None)
    }

    fn delivered(&self, delivered: &Delivered) -> Result<(), LedgerError> {
        let built = &delivered.built;
        let digest = built.manifest_digest.to_string();
        let pushed_to = delivered.pushed_to.as_ref().and(self.destination.clone());
        if let Some(pushed_to) = &pushed_to {
            self.record_result(&digest, Some(pushed_to))?;
        }
        self.shared.records.add_du(&DuRecord {
            id: 0,
            name: self.app.clone(),
            digest,
            store_name: built.tag.clone(),
            origin: self.workflow.origin.clone(),
            workflow: Some(self.workflow.id),
            pushed_to,
            created_at: super::records::now(),
        })?;
        Ok(())
    }
}

/// Copies a store image to a destination reference; the error as one line.
pub fn push(
    shared: &Shared,
    store_name: &str,
    destination: &str,
    reporter: &dyn Reporter,
) -> Result<Digest, String> {
    let destination: ImageReference = destination.parse().map_err(|e| error_chain(&e))?;
    push_reference(shared, store_name, &destination, reporter)
}

/// [`push`] to a parsed destination.
pub fn push_reference(
    shared: &Shared,
    store_name: &str,
    destination: &ImageReference,
    reporter: &dyn Reporter,
) -> Result<Digest, String> {
    let registry = Some(&shared.registry as &dyn crate::transport::RegistryTransport);
    delivery::push(&shared.store, registry, store_name, destination, reporter)
        .map_err(|e| error_chain(&e))
}
