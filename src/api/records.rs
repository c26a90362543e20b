//! The server's records: apps, workflows with every state transition, and DUs, in one
//! SQLite database (`DATA/solum.db`, WAL mode, so a crash loses at most the transaction
//! being written and readers never block the writer).
//!
//! This module owns the schema and every SQL statement, and nothing else: it never runs a
//! build, reads a store or decides what a state means (`report::State` says which states
//! are terminal). One connection behind a mutex serves the whole server; every statement
//! is short (an index lookup or one small write), so a request waits microseconds for it,
//! and a claim of queued work is atomic without SQL-level locking tricks.

use crate::report::State;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Why a record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot open the database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot {what} in the database")]
    Sql {
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the stored {field} of workflow {id} is not valid JSON")]
    Corrupt {
        id: i64,
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> RecordError {
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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    app_file TEXT NOT NULL,
    managed_source INTEGER NOT NULL,
    trigger_id TEXT NOT NULL UNIQUE,
    trigger_secret TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE TABLE IF NOT EXISTS workflows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    workflow INTEGER NOT NULL REFERENCES workflows(id),
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (workflow, seq)
);
CREATE TABLE IF NOT EXISTS dus (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    store_name TEXT NOT NULL,
    origin TEXT NOT NULL,
    workflow INTEGER,
    pushed_to TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    app TEXT NOT NULL,
    key TEXT NOT NULL,
    workflow INTEGER NOT NULL,
    received INTEGER NOT NULL,
    PRIMARY KEY (app, key)
);
";

const WORKFLOW_COLUMNS: &str = "id, app, actions, revision, origin, source, artifact, state, \
     reason, du_digest, pushed_to, created_at, started_at, finished_at";

/// The database.
pub struct Records {
    conn: Mutex<Connection>,
}

impl Records {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Records, RecordError> {
        let open = |source| RecordError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open)?;
        // WAL: readers do not block the writer and a crash keeps every committed write;
        // NORMAL sync is durable across a process crash (only power loss may lose the
        // last commits), which is what `kill -9` tests.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open)?;
        conn.execute_batch(SCHEMA).map_err(open)?;
        Ok(Records {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (each statement is its
        // own transaction or an explicit one that rolls back on drop): keep serving.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // ---- apps ----

    /// Stores a new app, or replaces a soft-deleted one of the same name. Returns `false`
    /// when a live app has the name.
    pub fn create_app(&self, app: &AppRecord) -> Result<bool, RecordError> {
        let conn = self.lock();
        let live: Option<Option<String>> = conn
            .query_row(
                "SELECT deleted_at FROM apps WHERE name = ?1",
                [&app.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("look up an app"))?;
        match live {
            Some(None) => Ok(false),
            Some(Some(_)) => {
                conn.execute(
                    "UPDATE apps SET app_file = ?2, managed_source = ?3, updated_at = ?4, \
                     deleted_at = NULL WHERE name = ?1",
                    params![app.name, app.app_file, app.managed_source, app.updated_at],
                )
                .map_err(sql("revive an app"))?;
                Ok(true)
            }
            None => {
                conn.execute(
                    "INSERT INTO apps (name, app_file, managed_source, trigger_id, \
                     trigger_secret, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        app.name,
                        app.app_file,
                        app.managed_source,
                        app.trigger_id,
                        app.trigger_secret,
                        app.created_at,
                        app.updated_at
                    ],
                )
                .map_err(sql("insert an app"))?;
                Ok(true)
            }
        }
    }

    fn app_from(row: &Row<'_>) -> rusqlite::Result<AppRecord> {
        Ok(AppRecord {
            name: row.get(0)?,
            app_file: row.get(1)?,
            managed_source: row.get(2)?,
            trigger_id: row.get(3)?,
            trigger_secret: row.get(4)?,
            created_at: row.get(5)?,
            updated_at: row.get(6)?,
            deleted_at: row.get(7)?,
        })
    }

    const APP_COLUMNS: &'static str = "name, app_file, managed_source, trigger_id, \
        trigger_secret, created_at, updated_at, deleted_at";

    /// A live app by name (soft-deleted apps are not found).
    pub fn app(&self, name: &str) -> Result<Option<AppRecord>, RecordError> {
        self.lock()
            .query_row(
                &format!(
                    "SELECT {} FROM apps WHERE name = ?1 AND deleted_at IS NULL",
                    Self::APP_COLUMNS
                ),
                [name],
                Self::app_from,
            )
            .optional()
            .map_err(sql("read an app"))
    }

    /// A live app by its webhook id.
    pub fn app_by_trigger(&self, trigger_id: &str) -> Result<Option<AppRecord>, RecordError> {
        self.lock()
            .query_row(
                &format!(
                    "SELECT {} FROM apps WHERE trigger_id = ?1 AND deleted_at IS NULL",
                    Self::APP_COLUMNS
                ),
                [trigger_id],
                Self::app_from,
            )
            .optional()
            .map_err(sql("read an app by trigger"))
    }

    /// Every live app, by name.
    pub fn apps(&self) -> Result<Vec<AppRecord>, RecordError> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT {} FROM apps WHERE deleted_at IS NULL ORDER BY name",
                Self::APP_COLUMNS
            ))
            .map_err(sql("list apps"))?;
        let rows = statement
            .query_map([], Self::app_from)
            .map_err(sql("list apps"))?;
        rows.collect::<Result<_, _>>().map_err(sql("list apps"))
    }

    /// Replaces a live app's file. Returns `false` when there is no such app.
    pub fn update_app(
        &self,
        name: &str,
        app_file: &str,
        managed_source: bool,
    ) -> Result<bool, RecordError> {
        let changed = self
            .lock()
            .execute(
                "UPDATE apps SET app_file = ?2, managed_source = ?3, updated_at = ?4 \
                 WHERE name = ?1 AND deleted_at IS NULL",
                params![name, app_file, managed_source, now()],
            )
            .map_err(sql("update an app"))?;
        Ok(changed == 1)
    }

    /// Soft delete: the app disappears from the listings, its workflows stay.
    pub fn delete_app(&self, name: &str) -> Result<bool, RecordError> {
        let changed = self
            .lock()
            .execute(
                "UPDATE apps SET deleted_at = ?2 WHERE name = ?1 AND deleted_at IS NULL",
                params![name, now()],
            )
            .map_err(sql("delete an app"))?;
        Ok(changed == 1)
    }

    // ---- workflows ----

    /// Stores a new workflow in state QUEUED and returns its id.
    pub fn create_workflow(&self, new: &NewWorkflow) -> Result<i64, RecordError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(sql("begin a transaction"))?;
        let id = Self::insert_workflow(&tx, new)?;
        tx.commit().map_err(sql("commit a workflow"))?;
        Ok(id)
    }

    /// A webhook delivery: the workflow it started if any of `keys` (its delivery id, its
    /// body digest) was seen for the app within the last `window` seconds (`Err(id)`),
    /// else a new workflow recorded under those keys (`Ok(id)`). One transaction, so two
    /// copies of a delivery arriving at once start one workflow.
    pub fn create_delivered_workflow(
        &self,
        new: &NewWorkflow,
        keys: &[String],
        window: i64,
    ) -> Result<Result<i64, i64>, RecordError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(sql("begin a transaction"))?;
        let received = chrono::Utc::now().timestamp();
        tx.execute(
            "DELETE FROM deliveries WHERE received < ?1",
            params![received - window],
        )
        .map_err(sql("forget old deliveries"))?;
        for key in keys {
            let seen: Option<i64> = tx
                .query_row(
                    "SELECT workflow FROM deliveries WHERE app = ?1 AND key = ?2",
                    params![new.app, key],
                    |row| row.get(0),
                )
                .optional()
                .map_err(sql("look up a delivery"))?;
            if let Some(id) = seen {
                return Ok(Err(id));
            }
        }
        let id = Self::insert_workflow(&tx, new)?;
        for key in keys {
            tx.execute(
                "INSERT INTO deliveries (app, key, workflow, received) VALUES (?1, ?2, ?3, ?4)",
                params![new.app, key, id, received],
            )
            .map_err(sql("record a delivery"))?;
        }
        tx.commit().map_err(sql("commit a workflow"))?;
        Ok(Ok(id))
    }

    fn insert_workflow(
        tx: &rusqlite::Transaction<'_>,
        new: &NewWorkflow,
    ) -> Result<i64, RecordError> {
        let at = now();
        let actions = serde_json::to_string(&new.actions).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO workflows (app, actions, revision, origin, source, artifact, state, \
             created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                new.app,
                actions,
                new.revision,
                new.origin,
                new.source,
                new.artifact,
                State::Queued,
                at
            ],
        )
        .map_err(sql("insert a workflow"))?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO transitions (workflow, seq, state, at, detail) VALUES (?1, 0, ?2, ?3, ?4)",
            params![id, State::Queued, at, new.origin],
        )
        .map_err(sql("insert a transition"))?;
        Ok(id)
    }

    fn workflow_from(row: &Row<'_>) -> rusqlite::Result<(WorkflowRecord, String)> {
        Ok((
            WorkflowRecord {
                id: row.get(0)?,
                app: row.get(1)?,
                actions: Vec::new(),
                revision: row.get(3)?,
                origin: row.get(4)?,
                source: row.get(5)?,
                artifact: row.get(6)?,
                state: row.get(7)?,
                reason: row.get(8)?,
                du_digest: row.get(9)?,
                pushed_to: row.get(10)?,
                created_at: row.get(11)?,
                started_at: row.get(12)?,
                finished_at: row.get(13)?,
                transitions: Vec::new(),
            },
            row.get(2)?,
        ))
    }

    fn finish_workflow(
        conn: &Connection,
        (mut record, actions): (WorkflowRecord, String),
    ) -> Result<WorkflowRecord, RecordError> {
        record.actions = serde_json::from_str(&actions).map_err(|source| RecordError::Corrupt {
            id: record.id,
            field: "actions",
            source,
        })?;
        let mut statement = conn
            .prepare_cached(
                "SELECT state, at, detail FROM transitions WHERE workflow = ?1 ORDER BY seq",
            )
            .map_err(sql("read transitions"))?;
        record.transitions = statement
            .query_map([record.id], |r| {
                Ok(Transition {
                    state: r.get(0)?,
                    at: r.get(1)?,
                    detail: r.get(2)?,
                })
            })
            .map_err(sql("read transitions"))?
            .collect::<Result<_, _>>()
            .map_err(sql("read transitions"))?;
        Ok(record)
    }

    /// One workflow with its transitions.
    pub fn workflow(&self, id: i64) -> Result<Option<WorkflowRecord>, RecordError> {
        let conn = self.lock();
        let row = conn
            .prepare_cached(&format!(
                "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?1"
            ))
            .map_err(sql("read a workflow"))?
            .query_row([id], Self::workflow_from)
            .optional()
            .map_err(sql("read a workflow"))?;
        row.map(|row| Self::finish_workflow(&conn, row)).transpose()
    }

    /// Only the state of a workflow (the log follower polls it).
    pub fn workflow_state(&self, id: i64) -> Result<Option<State>, RecordError> {
        self.lock()
            .prepare_cached("SELECT state FROM workflows WHERE id = ?1")
            .map_err(sql("read a workflow state"))?
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(sql("read a workflow state"))
    }

    /// An app's workflows, newest first, at most `limit`.
    pub fn workflows(&self, app: &str, limit: u32) -> Result<Vec<WorkflowRecord>, RecordError> {
        let conn = self.lock();
        let rows: Vec<_> = conn
            .prepare_cached(&format!(
                "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE app = ?1 ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(sql("list workflows"))?
            .query_map(params![app, limit], Self::workflow_from)
            .map_err(sql("list workflows"))?
            .collect::<Result<_, _>>()
            .map_err(sql("list workflows"))?;
        rows.into_iter()
            .map(|row| Self::finish_workflow(&conn, row))
            .collect()
    }

    /// Records a transition (and the new state) unless the workflow is already in that
    /// state or finished. Returns whether it was recorded.
    pub fn transition(&self, id: i64, state: State, detail: &str) -> Result<bool, RecordError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(sql("begin a transaction"))?;
        let current: Option<State> = tx
            .query_row("SELECT state FROM workflows WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql("read a workflow state"))?;
        let Some(current) = current else {
            return Ok(false);
        };
        if current == state || current.is_terminal() {
            return Ok(false);
        }
        let at = now();
        let finished = state.is_terminal().then_some(at.clone());
        // A failure's detail is also its reason, so that the list shows why.
        let reason = state.is_failure().then_some(detail);
        tx.execute(
            "UPDATE workflows SET state = ?2, finished_at = COALESCE(?3, finished_at), \
             reason = COALESCE(?4, reason) WHERE id = ?1",
            params![id, state, finished, reason],
        )
        .map_err(sql("update a workflow state"))?;
        tx.execute(
            "INSERT INTO transitions (workflow, seq, state, at, detail) VALUES (?1, \
             (SELECT COALESCE(MAX(seq), -1) + 1 FROM transitions WHERE workflow = ?1), ?2, ?3, ?4)",
            params![id, state, at, detail],
        )
        .map_err(sql("insert a transition"))?;
        tx.commit().map_err(sql("commit a transition"))?;
        Ok(true)
    }

    /// Sets the DU digest (and where it was pushed) of a workflow.
    pub fn set_result(
        &self,
        id: i64,
        digest: &str,
        pushed_to: Option<&str>,
    ) -> Result<(), RecordError> {
        self.lock()
            .execute(
                "UPDATE workflows SET du_digest = ?2, pushed_to = COALESCE(?3, pushed_to) \
                 WHERE id = ?1",
                params![id, digest, pushed_to],
            )
            .map_err(sql("store a workflow result"))?;
        Ok(())
    }

    /// Takes the oldest queued workflow no worker has started, marking it started.
    pub fn claim_next(&self) -> Result<Option<WorkflowRecord>, RecordError> {
        let id: Option<i64> = {
            let conn = self.lock();
            let id = conn
                .query_row(
                    "SELECT id FROM workflows WHERE state = ?1 AND started_at IS NULL \
                     ORDER BY id LIMIT 1",
                    [State::Queued],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql("find queued work"))?;
            if let Some(id) = id {
                conn.execute(
                    "UPDATE workflows SET started_at = ?2 WHERE id = ?1",
                    params![id, now()],
                )
                .map_err(sql("claim queued work"))?;
            }
            id
        };
        match id {
            Some(id) => self.workflow(id),
            None => Ok(None),
        }
    }

    /// After a restart: every workflow a worker had started and not finished was cut off
    /// by the stop. Each is marked ERROR with the stage it was in; returns their ids.
    /// Queued, unstarted workflows are left for the workers.
    pub fn fail_interrupted(&self) -> Result<Vec<i64>, RecordError> {
        let interrupted: Vec<(i64, State)> = {
            let conn = self.lock();
            let terminal = vec!["?"; State::TERMINAL.len()].join(", ");
            let mut statement = conn
                .prepare(&format!(
                    "SELECT id, state FROM workflows WHERE started_at IS NOT NULL \
                     AND state NOT IN ({terminal})"
                ))
                .map_err(sql("find interrupted work"))?;
            let rows = statement
                .query_map(params_from_iter(State::TERMINAL), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(sql("find interrupted work"))?;
            rows.collect::<Result<_, _>>()
                .map_err(sql("find interrupted work"))?
        };
        for (id, state) in &interrupted {
            self.transition(
                *id,
                State::Error,
                &format!("interrupted: the server stopped while the workflow was {state}"),
            )?;
        }
        Ok(interrupted.into_iter().map(|(id, _)| id).collect())
    }

    // ---- DUs ----

    /// Records a DU.
    pub fn add_du(&self, du: &DuRecord) -> Result<i64, RecordError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO dus (name, digest, store_name, origin, workflow, pushed_to, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                du.name,
                du.digest,
                du.store_name,
                du.origin,
                du.workflow,
                du.pushed_to,
                du.created_at
            ],
        )
        .map_err(sql("insert a DU"))?;
        Ok(conn.last_insert_rowid())
    }

    /// Every DU, newest first.
    pub fn dus(&self) -> Result<Vec<DuRecord>, RecordError> {
        let conn = self.lock();
        let mut statement = conn
            .prepare_cached(
                "SELECT id, name, digest, store_name, origin, workflow, pushed_to, created_at \
                 FROM dus ORDER BY id DESC",
            )
            .map_err(sql("list DUs"))?;
        let rows = statement
            .query_map([], |r| {
                Ok(DuRecord {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    digest: r.get(2)?,
                    store_name: r.get(3)?,
                    origin: r.get(4)?,
                    workflow: r.get(5)?,
                    pushed_to: r.get(6)?,
                    created_at: r.get(7)?,
                })
            })
            .map_err(sql("list DUs"))?;
        rows.collect::<Result<_, _>>().map_err(sql("list DUs"))
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
        let claimed = records.claim_next().unwrap().unwrap();
        assert_eq!(claimed.id, first);
        assert!(records.transition(first, State::Building, "x").unwrap());
        assert!(!records.transition(first, State::Building, "again").unwrap());
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
            !records.transition(first, State::Ready, "late").unwrap(),
            "terminal"
        );
        assert_eq!(records.claim_next().unwrap().unwrap().id, second);
        assert!(records.claim_next().unwrap().is_none());

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
