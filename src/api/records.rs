//! The server's records: apps, workflows with every state transition, and DUs, in the
//! database `db` opens (SQLite on one host, PostgreSQL on many), through one set of queries.
//!
//! This module owns the schema (its migrations) and the statements of apps, workflows and
//! DUs, and nothing else: it never runs a build, reads a store or decides what a state
//! means (`report::State` says which states are terminal). The queue's statements (claims,
//! leases, workers, cancels) are in `queue`, the logs' in `logs`. Every statement is short
//! (an index lookup or one small write); what reads and then writes runs in one transaction.

use super::db::{params, Database, DbError, Exec, Row};
use crate::report::State;
use serde::Serialize;

/// Why a record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot open the database")]
    Open(#[source] DbError),
    #[error("cannot {what} in the database")]
    Sql {
        what: &'static str,
        #[source]
        source: DbError,
    },
    #[error("the stored {field} of workflow {id} is not valid JSON")]
    Corrupt {
        id: i64,
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

pub(super) fn sql(what: &'static str) -> impl FnOnce(DbError) -> RecordError {
    move |source| RecordError::Sql { what, source }
}

/// Now, as stored: RFC 3339 in UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An app as stored: its validated app file text and its webhook credentials.
#[derive(Clone, Debug, Serialize)]
pub struct AppRecord {
    pub name: String,
    pub app_file: String,
    /// The app file has no source of its own: builds use the managed git repository.
    pub managed_source: bool,
    pub trigger_id: String,
    #[serde(skip)]
    pub trigger_secret: String,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

/// One state change of a workflow.
#[derive(Clone, Debug, Serialize)]
pub struct Transition {
    pub state: State,
    pub at: String,
    pub detail: String,
}

/// What a new workflow builds.
#[derive(Clone, Debug, Default)]
pub struct NewWorkflow {
    pub app: String,
    pub actions: Vec<String>,
    pub revision: Option<String>,
    /// Where the request came from: `api`, `git`, `webhook`, `artifact`.
    pub origin: String,
    /// A source that replaces the app file's (the managed repository).
    pub source: Option<String>,
    /// An uploaded artifact that replaces the app file's source.
    pub artifact: Option<String>,
}

/// A workflow as stored, with its transitions in order.
#[derive(Clone, Debug, Serialize)]
pub struct WorkflowRecord {
    pub id: i64,
    pub app: String,
    pub actions: Vec<String>,
    pub revision: Option<String>,
    pub origin: String,
    #[serde(skip)]
    pub source: Option<String>,
    #[serde(skip)]
    pub artifact: Option<String>,
    pub state: State,
    pub reason: Option<String>,
    pub du_digest: Option<String>,
    pub pushed_to: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub transitions: Vec<Transition>,
}

/// A DU the server knows: built by a workflow or registered by reference.
#[derive(Clone, Debug, Serialize)]
pub struct DuRecord {
    pub id: i64,
    pub name: String,
    pub digest: String,
    /// The store name it is kept under.
    pub store_name: String,
    pub origin: String,
    pub workflow: Option<i64>,
    pub pushed_to: Option<String>,
    pub created_at: String,
}

/// The schema, as numbered migrations in the shared dialect (`db`). The first is the
/// schema of the SQLite-only versions (`IF NOT EXISTS`: their databases take it as it is);
/// the second adds the queue of many hosts: leases, workers, logs and shared images.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    app_file TEXT NOT NULL,
    managed_source BIGINT NOT NULL,
    trigger_id TEXT NOT NULL UNIQUE,
    trigger_secret TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE TABLE IF NOT EXISTS workflows (
    id {id},
    app TEXT NOT NULL REFERENCES apps(name),
    actions TEXT NOT NULL,
    revision TEXT,
    origin TEXT NOT NULL,
    source TEXT,
    artifact TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    du_digest TEXT,
    pushed_to TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS workflows_by_app ON workflows(app, id);
CREATE INDEX IF NOT EXISTS workflows_by_state ON workflows(state, id);
CREATE TABLE IF NOT EXISTS transitions (
    workflow BIGINT NOT NULL REFERENCES workflows(id),
    seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (workflow, seq)
);
CREATE TABLE IF NOT EXISTS dus (
    id {id},
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    store_name TEXT NOT NULL,
    origin TEXT NOT NULL,
    workflow BIGINT,
    pushed_to TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    app TEXT NOT NULL,
    key TEXT NOT NULL,
    workflow BIGINT NOT NULL,
    received BIGINT NOT NULL,
    PRIMARY KEY (app, key)
);
",
    ),
    (
        2,
        "
ALTER TABLE workflows ADD COLUMN worker TEXT;
ALTER TABLE workflows ADD COLUMN lease_until BIGINT;
ALTER TABLE workflows ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workflows ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS workflows_by_worker ON workflows(worker, state);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS log_chunks (
    workflow BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (workflow, seq)
);
CREATE TABLE IF NOT EXISTS shared_images (
    store_name TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    location TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
",
    ),
];

pub(super) const WORKFLOW_COLUMNS: &str = "id, app, actions, revision, origin, source, \
     artifact, state, reason, du_digest, pushed_to, created_at, started_at, finished_at";

/// `'READY', 'BUILD_FAILED', …`: the terminal states as SQL text (constants, not input).
pub(super) fn terminal_list() -> String {
    State::TERMINAL
        .iter()
        .map(|state| format!("'{}'", state.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The records, on their database.
pub struct Records {
    pub(super) db: Database,
}

impl Records {
    /// Opens the database at `url` (`sqlite://PATH`, `postgres://…`) and brings its schema
    /// up to date.
    pub fn open_url(url: &str) -> Result<Records, RecordError> {
        let db = Database::open(url).map_err(RecordError::Open)?;
        db.migrate(MIGRATIONS).map_err(RecordError::Open)?;
        Ok(Records { db })
    }

    /// Opens (or creates) the SQLite database at `path`.
    #[cfg(test)]
    pub fn open(path: &std::path::Path) -> Result<Records, RecordError> {
        Records::open_url(&format!("sqlite://{}", path.display()))
    }

    /// Whether this is one host's SQLite file (restarts end what was running: no one else
    /// could have been running it).
    pub fn is_single_host(&self) -> bool {
        self.db.dialect() == super::db::Dialect::Sqlite
    }

    /// Where the records are, for messages (no password).
    pub fn shown_url(&self) -> &str {
        &self.db.shown_url
    }

    /// The PostgreSQL connection settings, for a node's own listening connection.
    pub fn postgres_config(&self) -> Option<&postgres::Config> {
        self.db.postgres_config()
    }

    /// Whether the database answers now.
    pub fn ping(&self) -> Result<(), DbError> {
        self.db.ping()
    }

    // ---- apps ----

    /// Stores a new app, or replaces a soft-deleted one of the same name. Returns `false`
    /// when a live app has the name.
    pub fn create_app(&self, app: &AppRecord) -> Result<bool, RecordError> {
        self.db
            .transaction(|db| {
                let live = db.query_opt("SELECT deleted_at FROM apps WHERE name = $1", params![&app.name])?;
                match live {
                    Some(row) if row.opt_text(0)?.is_none() => Ok(false),
                    Some(_) => {
                        db.execute(
                            "UPDATE apps SET app_file = $2, managed_source = $3, updated_at = $4, \
                             deleted_at = NULL WHERE name = $1",
                            params![&app.name, &app.app_file, app.managed_source, &app.updated_at],
                        )?;
                        Ok(true)
                    }
                    None => {
                        db.execute(
                            "INSERT INTO apps (name, app_file, managed_source, trigger_id, \
                             trigger_secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                            params![
                                &app.name,
                                &app.app_file,
                                app.managed_source,
                                &app.trigger_id,
                                &app.trigger_secret,
                                &app.created_at,
                                &app.updated_at
                            ],
                        )?;
                        Ok(true)
                    }
                }
            })
            .map_err(sql("store an app"))
    }

    fn app_from(row: &Row) -> Result<AppRecord, DbError> {
        Ok(AppRecord {
            name: row.text(0)?,
            app_file: row.text(1)?,
            managed_source: row.bool(2)?,
            trigger_id: row.text(3)?,
            trigger_secret: row.text(4)?,
            created_at: row.text(5)?,
            updated_at: row.text(6)?,
            deleted_at: row.opt_text(7)?,
        })
    }

    const APP_COLUMNS: &'static str = "name, app_file, managed_source, trigger_id, \
        trigger_secret, created_at, updated_at, deleted_at";

    fn one_app(&self, column: &str, value: &str) -> Result<Option<AppRecord>, DbError> {
        let query = format!(
            "SELECT {} FROM apps WHERE {column} = $1 AND deleted_at IS NULL",
            Self::APP_COLUMNS
        );
        self.db
            .run(|db| db.query_opt(&query, params![value]))?
            .map(|row| Self::app_from(&row))
            .transpose()
    }

    /// A live app by name (soft-deleted apps are not found).
    pub fn app(&self, name: &str) -> Result<Option<AppRecord>, RecordError> {
        self.one_app("name", name).map_err(sql("read an app"))
    }

    /// A live app by its webhook id.
    pub fn app_by_trigger(&self, trigger_id: &str) -> Result<Option<AppRecord>, RecordError> {
        self.one_app("trigger_id", trigger_id)
            .map_err(sql("read an app by trigger"))
    }

    /// Every live app, by name.
    pub fn apps(&self) -> Result<Vec<AppRecord>, RecordError> {
        let query = format!(
            "SELECT {} FROM apps WHERE deleted_at IS NULL ORDER BY name",
            Self::APP_COLUMNS
        );
        self.db
            .run(|db| db.query(&query, &[]))
            .and_then(|rows| rows.iter().map(Self::app_from).collect())
            .map_err(sql("list apps"))
    }

    /// Replaces a live app's file. Returns `false` when there is no such app.
    pub fn update_app(
        &self,
        name: &str,
        app_file: &str,
        managed_source: bool,
    ) -> Result<bool, RecordError> {
        let at = now();
        let changed = self
            .db
            .run(|db| {
                db.execute(
                    "UPDATE apps SET app_file = $2, managed_source = $3, updated_at = $4 \
                     WHERE name = $1 AND deleted_at IS NULL",
                    params![name, app_file, managed_source, at.as_str()],
                )
            })
            .map_err(sql("update an app"))?;
        Ok(changed == 1)
    }

    /// Soft delete: the app disappears from the listings, its workflows stay.
    pub fn delete_app(&self, name: &str) -> Result<bool, RecordError> {
        let at = now();
        let changed = self
            .db
            .run(|db| {
                db.execute(
                    "UPDATE apps SET deleted_at = $2 WHERE name = $1 AND deleted_at IS NULL",
                    params![name, at.as_str()],
                )
            })
            .map_err(sql("delete an app"))?;
        Ok(changed == 1)
    }

    // ---- workflows ----

    /// Stores a new workflow in state QUEUED and returns its id.
    pub fn create_workflow(&self, new: &NewWorkflow) -> Result<i64, RecordError> {
        self.db
            .transaction(|db| Self::insert_workflow(db, new))
            .map_err(sql("store a workflow"))
    }

    /// A webhook delivery: the workflow it started if any of `keys` (its delivery id, its
    /// body digest) was seen for the app within the last `window` seconds (`Err(id)`),
    /// else a new workflow recorded under those keys (`Ok(id)`). One transaction (and the
    /// keys' primary key), so two copies of a delivery arriving at once, on one node or
    /// two, start one workflow.
    pub fn create_delivered_workflow(
        &self,
        new: &NewWorkflow,
        keys: &[String],
        window: i64,
    ) -> Result<Result<i64, i64>, RecordError> {
        self.db
            .transaction(|db| {
                let received = chrono::Utc::now().timestamp();
                db.execute(
                    "DELETE FROM deliveries WHERE received < $1",
                    params![received - window],
                )?;
                for key in keys {
                    let seen = db.query_opt(
                        "SELECT workflow FROM deliveries WHERE app = $1 AND key = $2",
                        params![&new.app, key],
                    )?;
                    if let Some(row) = seen {
                        return Ok(Err(row.int(0)?));
                    }
                }
                let id = Self::insert_workflow(db, new)?;
                for key in keys {
                    db.execute(
                        "INSERT INTO deliveries (app, key, workflow, received) VALUES ($1, $2, $3, $4)",
                        params![&new.app, key, id, received],
                    )?;
                }
                Ok(Ok(id))
            })
            .map_err(sql("store a delivered workflow"))
    }

    fn insert_workflow(db: &mut dyn Exec, new: &NewWorkflow) -> Result<i64, DbError> {
        let at = now();
        let actions = serde_json::to_string(&new.actions).unwrap_or_else(|_| "[]".into());
        let id = db
            .query_opt(
                "INSERT INTO workflows (app, actions, revision, origin, source, artifact, state, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                params![
                    &new.app,
                    actions.as_str(),
                    &new.revision,
                    &new.origin,
                    &new.source,
                    &new.artifact,
                    State::Queued,
                    at.as_str()
                ],
            )?
            .map(|row| row.int(0))
            .transpose()?
            .unwrap_or_default();
        db.execute(
            "INSERT INTO transitions (workflow, seq, state, at, detail) VALUES ($1, 0, $2, $3, $4)",
            params![id, State::Queued, at.as_str(), &new.origin],
        )?;
        Ok(id)
    }

    fn workflow_from(row: &Row) -> Result<(WorkflowRecord, String), DbError> {
        Ok((
            WorkflowRecord {
                id: row.int(0)?,
                app: row.text(1)?,
                actions: Vec::new(),
                revision: row.opt_text(3)?,
                origin: row.text(4)?,
                source: row.opt_text(5)?,
                artifact: row.opt_text(6)?,
                state: row.state(7)?,
                reason: row.opt_text(8)?,
                du_digest: row.opt_text(9)?,
                pushed_to: row.opt_text(10)?,
                created_at: row.text(11)?,
                started_at: row.opt_text(12)?,
                finished_at: row.opt_text(13)?,
                transitions: Vec::new(),
            },
            row.text(2)?,
        ))
    }

    fn finish_workflow(
        db: &mut dyn Exec,
        row: &Row,
    ) -> Result<Result<WorkflowRecord, RecordError>, DbError> {
        let (mut record, actions) = Self::workflow_from(row)?;
        record.actions = match serde_json::from_str(&actions) {
            Ok(actions) => actions,
            Err(source) => {
                return Ok(Err(RecordError::Corrupt {
                    id: record.id,
                    field: "actions",
                    source,
                }))
            }
        };
        record.transitions = db
            .query(
                "SELECT state, at, detail FROM transitions WHERE workflow = $1 ORDER BY seq",
                params![record.id],
            )?
            .iter()
            .map(|r| {
                Ok(Transition {
                    state: r.state(0)?,
                    at: r.text(1)?,
                    detail: r.text(2)?,
                })
            })
            .collect::<Result<_, DbError>>()?;
        Ok(Ok(record))
    }

    /// One workflow with its transitions.
    pub fn workflow(&self, id: i64) -> Result<Option<WorkflowRecord>, RecordError> {
        let query = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = $1");
        let found = self
            .db
            .run(|db| match db.query_opt(&query, params![id])? {
                Some(row) => Self::finish_workflow(db, &row).map(Some),
                None => Ok(None),
            })
            .map_err(sql("read a workflow"))?;
        found.transpose()
    }

    /// Only the state of a workflow (the log follower polls it).
    pub fn workflow_state(&self, id: i64) -> Result<Option<State>, RecordError> {
        self.db
            .run(|db| {
                db.query_opt("SELECT state FROM workflows WHERE id = $1", params![id])?
                    .map(|row| row.state(0))
                    .transpose()
            })
            .map_err(sql("read a workflow state"))
    }

    /// An app's workflows, newest first, at most `limit`.
    pub fn workflows(&self, app: &str, limit: u32) -> Result<Vec<WorkflowRecord>, RecordError> {
        let query = format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE app = $1 ORDER BY id DESC LIMIT $2"
        );
        let found = self
            .db
            .run(|db| {
                let rows = db.query(&query, params![app, i64::from(limit)])?;
                rows.iter()
                    .map(|row| Self::finish_workflow(db, row))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(sql("list workflows"))?;
        found.into_iter().collect()
    }

    /// Records a transition (and the new state) unless the workflow is already in that
    /// state or finished, or — with `owner` — no longer held by that worker (a worker whose
    /// lease ran out and whose workflow went to another must not write over it). Returns
    /// whether it was recorded.
    pub fn transition(
        &self,
        id: i64,
        state: State,
        detail: &str,
        owner: Option<&str>,
    ) -> Result<bool, RecordError> {
        self.db
            .transaction(|db| Self::transition_in(db, id, state, detail, owner))
            .map_err(sql("record a transition"))
    }

    /// [`Records::transition`] inside a transaction.
    pub(super) fn transition_in(
        db: &mut dyn Exec,
        id: i64,
        state: State,
        detail: &str,
        owner: Option<&str>,
    ) -> Result<bool, DbError> {
        let Some(row) = db.query_opt(
            "SELECT state, worker FROM workflows WHERE id = $1 {for_update}",
            params![id],
        )?
        else {
            return Ok(false);
        };
        let current = row.state(0)?;
        if current == state || current.is_terminal() {
            return Ok(false);
        }
        if let Some(owner) = owner {
            if row.opt_text(1)?.as_deref() != Some(owner) {
                return Ok(false);
            }
        }
        Self::record_transition(db, id, state, detail)?;
        Ok(true)
    }

    /// Writes the new state and its transition row (no checks).
    pub(super) fn record_transition(
        db: &mut dyn Exec,
        id: i64,
        state: State,
        detail: &str,
    ) -> Result<(), DbError> {
        let at = now();
        let finished = state.is_terminal().then_some(at.as_str());
        // A failure's detail is also its reason, so that the list shows why.
        let reason = state.is_failure().then_some(detail);
        db.execute(
            "UPDATE workflows SET state = $2, finished_at = COALESCE($3, finished_at), \
             reason = COALESCE($4, reason) WHERE id = $1",
            params![id, state, finished, reason],
        )?;
        db.execute(
            "INSERT INTO transitions (workflow, seq, state, at, detail) VALUES ($1, \
             (SELECT COALESCE(MAX(seq), -1) + 1 FROM transitions WHERE workflow = $1), $2, $3, $4)",
            params![id, state, at.as_str(), detail],
        )?;
        Ok(())
    }

    /// Sets the DU digest (and where it was pushed) of a workflow, while `owner` still
    /// holds it: a worker whose lease ran out must not write its result over the result
    /// of the worker that took the workflow next. Returns whether it was written.
    pub fn set_result(
        &self,
        id: i64,
        digest: &str,
        pushed_to: Option<&str>,
        owner: &str,
    ) -> Result<bool, RecordError> {
        let changed = self
            .db
            .run(|db| {
                db.execute(
                    "UPDATE workflows SET du_digest = $2, pushed_to = COALESCE($3, pushed_to) \
                     WHERE id = $1 AND worker = $4",
                    params![id, digest, pushed_to, owner],
                )
            })
            .map_err(sql("store a workflow result"))?;
        Ok(changed == 1)
    }

    /// After a restart of a one-host server: every workflow it had started and not
    /// finished was cut off by the stop. Each is marked ERROR with the stage it was in;
    /// returns their ids. Queued, unstarted workflows are left for the workers. (On many
    /// hosts a stopped worker's workflows go back to the queue when its lease runs out:
    /// `queue`.)
    pub fn fail_interrupted(&self) -> Result<Vec<i64>, RecordError> {
        let query = format!(
            "SELECT id, state FROM workflows WHERE started_at IS NOT NULL \
             AND state NOT IN ({})",
            terminal_list()
        );
        let interrupted = self
            .db
            .run(|db| {
                db.query(&query, &[])?
                    .iter()
                    .map(|row| Ok((row.int(0)?, row.state(1)?)))
                    .collect::<Result<Vec<_>, DbError>>()
            })
            .map_err(sql("find interrupted work"))?;
        for (id, state) in &interrupted {
            self.transition(
                *id,
                State::Error,
                &format!("interrupted: the server stopped while the workflow was {state}"),
                None,
            )?;
        }
        Ok(interrupted.into_iter().map(|(id, _)| id).collect())
    }

    // ---- DUs ----

    /// Records a DU.
    pub fn add_du(&self, du: &DuRecord) -> Result<i64, RecordError> {
        self.db
            .run(|db| {
                db.query_opt(
                    "INSERT INTO dus (name, digest, store_name, origin, workflow, pushed_to, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    params![
                        &du.name,
                        &du.digest,
                        &du.store_name,
                        &du.origin,
                        du.workflow,
                        &du.pushed_to,
                        &du.created_at
                    ],
                )?
                .map(|row| row.int(0))
                .transpose()
            })
            .map(Option::unwrap_or_default)
            .map_err(sql("insert a DU"))
    }

    /// Every DU, newest first.
    pub fn dus(&self) -> Result<Vec<DuRecord>, RecordError> {
        self.db
            .run(|db| {
                db.query(
                    "SELECT id, name, digest, store_name, origin, workflow, pushed_to, created_at \
                     FROM dus ORDER BY id DESC",
                    &[],
                )?
                .iter()
                .map(|r| {
                    Ok(DuRecord {
                        id: r.int(0)?,
                        name: r.text(1)?,
                        digest: r.text(2)?,
                        store_name: r.text(3)?,
                        origin: r.text(4)?,
                        workflow: r.opt_int(5)?,
                        pushed_to: r.opt_text(6)?,
                        created_at: r.text(7)?,
                    })
                })
                .collect()
            })
            .map_err(sql("list DUs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> AppRecord {
        AppRecord {
            name: name.into(),
            app_file: "version: 1".into(),
            managed_source: false,
            trigger_id: format!("t-{name}"),
            trigger_secret: "s".into(),
            created_at: now(),
            updated_at: now(),
            deleted_at: None,
        }
    }

    #[test]
    fn workflow_lifecycle_and_restart_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let records = Records::open(&path).unwrap();
        assert!(records.create_app(&app("one")).unwrap());
        assert!(
            !records.create_app(&app("one")).unwrap(),
            "a live name is taken"
        );
        let new = |origin: &str| NewWorkflow {
            app: "one".into(),
            actions: vec!["build".into()],
            origin: origin.into(),
            ..NewWorkflow::default()
        };
        let first = records.create_workflow(&new("api")).unwrap();
        let second = records.create_workflow(&new("git")).unwrap();
        let claimed = records.claim_next("w", 60_000).unwrap().unwrap();
        assert_eq!(claimed.id, first);
        assert!(records
            .transition(first, State::Building, "x", None)
            .unwrap());
        assert!(!records
            .transition(first, State::Building, "again", None)
            .unwrap());
        drop(records);

        // A restart: the started one is cut off, the queued one waits for a worker.
        let records = Records::open(&path).unwrap();
        assert_eq!(records.fail_interrupted().unwrap(), vec![first]);
        let failed = records.workflow(first).unwrap().unwrap();
        assert_eq!(failed.state, State::Error);
        assert!(failed.reason.unwrap().contains("BUILDING"));
        let states: Vec<_> = failed.transitions.iter().map(|t| t.state).collect();
        assert_eq!(states, [State::Queued, State::Building, State::Error]);
        assert!(
            !records
                .transition(first, State::Ready, "late", None)
                .unwrap(),
            "terminal"
        );
        assert_eq!(records.claim_next("w", 60_000).unwrap().unwrap().id, second);
        assert!(records.claim_next("w", 60_000).unwrap().is_none());

        // Soft delete keeps the history.
        assert!(records.delete_app("one").unwrap());
        assert!(records.app("one").unwrap().is_none());
        assert_eq!(records.workflows("one", 10).unwrap().len(), 2);
        assert!(
            records.create_app(&app("one")).unwrap(),
            "a deleted name is reused"
        );
        assert_eq!(records.app("one").unwrap().unwrap().trigger_id, "t-one");
    }
}
