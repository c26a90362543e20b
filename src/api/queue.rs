//! The queue's records: which worker holds which workflow, for how long, and what became of
//! a worker that stopped. Any number of workers (one process or many hosts) share it.
//!
//! The order of a workflow's life in the queue: QUEUED with no worker → a claim (one
//! statement: the oldest free workflow, `FOR UPDATE SKIP LOCKED` on PostgreSQL so that
//! claimers never wait on each other or take the same row) sets the worker, a lease
//! deadline and the attempt count → the worker's heartbeat moves the deadline of all its
//! workflows on → the workflow ends in a terminal state, written only while that worker
//! still holds it (`Records::transition` with an owner). A worker that stops heartbeating
//! loses its workflows to the reaper, which any worker runs: back to QUEUED (a new
//! attempt, on any worker), or ERROR once the attempts are used up. Cancel is a flag every
//! worker reads on its heartbeat (and at once through NOTIFY on PostgreSQL, `notify`).

use super::db::{params, DbError, Exec};
use super::records::{sql, terminal_list, RecordError, Records, WorkflowRecord};
use crate::report::State;
use serde::Serialize;

/// Milliseconds since the epoch (leases and heartbeats compare these).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A worker as the records know it.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerRecord {
    pub id: String,
    pub role: String,
    pub host: String,
    pub started_at: String,
    pub heartbeat_at: String,
    /// Its heartbeat is recent (within one lease).
    pub alive: bool,
    /// The workflows it holds now, oldest first.
    pub workflows: Vec<i64>,
    /// The first of them (the one a one-slot worker runs).
    pub workflow: Option<i64>,
}

/// What the reaper did with one workflow whose worker stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reaped {
    Requeued { id: i64, worker: String },
    Failed { id: i64, worker: String },
}

impl Records {
    /// Takes the oldest queued workflow no worker holds and that nobody cancelled, for
    /// `worker`, with a lease of `lease_ms`.
    pub fn claim_next(
        &self,
        worker: &str,
        lease_ms: i64,
    ) -> Result<Option<WorkflowRecord>, RecordError> {
        let id = self
            .db
            .run(|db| {
                let now = now_ms();
                db.query_opt(
                    "UPDATE workflows SET worker = $1, lease_until = $2, attempts = attempts + 1, \
                     started_at = $3 WHERE id = (SELECT id FROM workflows WHERE state = $4 \
                     AND worker IS NULL AND started_at IS NULL AND cancel_requested = 0 \
                     ORDER BY id LIMIT 1 {skip_locked}) AND worker IS NULL RETURNING id",
                    params![
                        worker,
                        now + lease_ms,
                        super::records::now().as_str(),
                        State::Queued
                    ],
                )?
                .map(|row| row.int(0))
                .transpose()
            })
            .map_err(sql("claim queued work"))?;
        match id {
            Some(id) => self.workflow(id),
            None => Ok(None),
        }
    }

    /// A worker's heartbeat: its own row (made on the first), and the leases of the
    /// workflows it holds and still runs (`running`) moved to `lease_ms` from now. Returns
    /// the workflows it holds that someone asked to cancel.
    ///
    /// Only the running ones: a workflow whose run ended without a recorded end (the final
    /// state could not be written) is held but no longer run, and its lease must run out so
    /// that the reaper returns it to the queue, rather than be renewed for ever.
    pub fn heartbeat(
        &self,
        worker: &str,
        role: &str,
        host: &str,
        started_at: &str,
        lease_ms: i64,
        running: &[i64],
    ) -> Result<Vec<i64>, RecordError> {
        let terminal = terminal_list();
        self.db
            .transaction(|db| {
                let now = now_ms();
                db.execute(
                    "INSERT INTO workers (id, role, host, started_at, heartbeat_at, heartbeat_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
                     heartbeat_at = $5, heartbeat_ms = $6",
                    params![
                        worker,
                        role,
                        host,
                        started_at,
                        super::records::now().as_str(),
                        now
                    ],
                )?;
                for id in running {
                    db.execute(
                        &format!(
                            "UPDATE workflows SET lease_until = $2 WHERE id = $3 AND worker = $1 \
                             AND state NOT IN ({terminal})"
                        ),
                        params![worker, now + lease_ms, *id],
                    )?;
                }
                db.query(
                    &format!(
                        "SELECT id FROM workflows WHERE worker = $1 AND cancel_requested <> 0 \
                         AND state NOT IN ({terminal})"
                    ),
                    params![worker],
                )?
                .iter()
                .map(|row| row.int(0))
                .collect()
            })
            .map_err(sql("record a heartbeat"))
    }

    /// Returns to the queue the workflows whose worker's lease ran out, or ends them in
    /// ERROR when `max_attempts` claims were made already. Any worker may run it; the rows
    /// it handles are locked, so two reapers never handle one twice.
    pub fn reap_expired(&self, max_attempts: i64) -> Result<Vec<Reaped>, RecordError> {
        let terminal = terminal_list();
        self.db
            .transaction(|db| {
                let now = now_ms();
                let expired = db.query(
                    &format!(
                        "SELECT id, worker, attempts, state FROM workflows WHERE worker IS NOT NULL \
                         AND state NOT IN ({terminal}) AND lease_until < $1 ORDER BY id {{skip_locked}}"
                    ),
                    params![now],
                )?;
                let mut reaped = Vec::new();
                for row in &expired {
                    let (id, worker) = (row.int(0)?, row.text(1)?);
                    let (attempts, state) = (row.int(2)?, row.state(3)?);
                    if attempts >= max_attempts {
                        let detail = format!(
                            "worker {worker} stopped while the workflow was {state}; \
                             {attempts} of {max_attempts} attempts used"
                        );
                        Records::record_transition(db, id, State::Error, &detail)?;
                        reaped.push(Reaped::Failed { id, worker });
                    } else {
                        requeue(db, id, &format!(
                            "requeued: worker {worker} stopped heartbeating while the workflow \
                             was {state} (attempt {attempts} of {max_attempts})"
                        ))?;
                        reaped.push(Reaped::Requeued { id, worker });
                    }
                }
                Ok(reaped)
            })
            .map_err(sql("return expired work to the queue"))
    }

    /// A worker stopping on purpose gives its unfinished workflows back at once (no wait
    /// for the lease). Returns their ids.
    pub fn release(&self, worker: &str, why: &str) -> Result<Vec<i64>, RecordError> {
        let terminal = terminal_list();
        self.db
            .transaction(|db| {
                let held = db.query(
                    &format!(
                        "SELECT id FROM workflows WHERE worker = $1 AND state NOT IN ({terminal}) \
                         {{for_update}}"
                    ),
                    params![worker],
                )?;
                let mut ids = Vec::new();
                for row in &held {
                    let id = row.int(0)?;
                    requeue(db, id, &format!("requeued: {why}"))?;
                    ids.push(id);
                }
                db.execute("DELETE FROM workers WHERE id = $1", params![worker])?;
                Ok(ids)
            })
            .map_err(sql("release a worker's workflows"))
    }

    /// Marks a workflow as asked to cancel; a worker holding it sees the flag. Returns
    /// whether the workflow exists and has not ended.
    pub fn request_cancel(&self, id: i64) -> Result<bool, RecordError> {
        let query = format!(
            "UPDATE workflows SET cancel_requested = 1 WHERE id = $1 AND state NOT IN ({})",
            terminal_list()
        );
        let changed = self
            .db
            .run(|db| db.execute(&query, params![id]))
            .map_err(sql("ask for a cancel"))?;
        Ok(changed == 1)
    }

    /// Cancels a workflow that no worker holds yet; `false` when one does (its worker
    /// cancels it) or it ended.
    pub fn cancel_queued(&self, id: i64, detail: &str) -> Result<bool, RecordError> {
        self.db
            .transaction(|db| {
                let free = db
                    .query_opt(
                        "SELECT state FROM workflows WHERE id = $1 AND worker IS NULL {for_update}",
                        params![id],
                    )?
                    .map(|row| row.state(0))
                    .transpose()?;
                match free {
                    Some(State::Queued) => {
                        Records::record_transition(db, id, State::Cancelled, detail)?;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            })
            .map_err(sql("cancel a queued workflow"))
    }

    /// Every worker that has heartbeated, newest first, with what it holds; `alive` when
    /// its last heartbeat is younger than `lease_ms`.
    pub fn workers(&self, lease_ms: i64) -> Result<Vec<WorkerRecord>, RecordError> {
        let terminal = terminal_list();
        self.db
            .run(|db| {
                let now = now_ms();
                let rows = db.query(
                    "SELECT id, role, host, started_at, heartbeat_at, heartbeat_ms FROM workers \
                     ORDER BY heartbeat_ms DESC, id LIMIT 1000",
                    &[],
                )?;
                let mut workers = Vec::with_capacity(rows.len());
                for row in &rows {
                    let id = row.text(0)?;
                    let workflows: Vec<i64> = db
                        .query(
                            &format!(
                                "SELECT id FROM workflows WHERE worker = $1 \
                                 AND state NOT IN ({terminal}) ORDER BY id"
                            ),
                            params![id.as_str()],
                        )?
                        .iter()
                        .map(|r| r.int(0))
                        .collect::<Result<_, _>>()?;
                    workers.push(WorkerRecord {
                        role: row.text(1)?,
                        host: row.text(2)?,
                        started_at: row.text(3)?,
                        heartbeat_at: row.text(4)?,
                        alive: now - row.int(5)? <= lease_ms,
                        workflow: workflows.first().copied(),
                        workflows,
                        id,
                    });
                }
                Ok(workers)
            })
            .map_err(sql("list workers"))
    }

    /// Forgets workers whose last heartbeat is older than `older_than_ms` and that hold
    /// nothing (the list would otherwise keep every pod that ever ran).
    pub fn forget_workers(&self, older_than_ms: i64) -> Result<u64, RecordError> {
        let terminal = terminal_list();
        self.db
            .run(|db| {
                db.execute(
                    &format!(
                        "DELETE FROM workers WHERE heartbeat_ms < $1 AND id NOT IN \
                         (SELECT worker FROM workflows WHERE worker IS NOT NULL \
                         AND state NOT IN ({terminal}))"
                    ),
                    params![now_ms() - older_than_ms],
                )
            })
            .map_err(sql("forget old workers"))
    }

    /// The queued workflows no worker holds, oldest first (the tests' view of the queue).
    #[cfg(test)]
    pub fn queued(&self, limit: i64) -> Result<Vec<i64>, RecordError> {
        let query =
            "SELECT id FROM workflows WHERE state = $1 AND worker IS NULL ORDER BY id LIMIT $2";
        self.db
            .run(|db| {
                db.query(query, params![State::Queued, limit])?
                    .iter()
                    .map(|row| row.int(0))
                    .collect()
            })
            .map_err(sql("list queued work"))
    }

    /// Records where a shared image (a badger pushed by an API node) sits in the registry,
    /// by its store name.
    pub fn record_shared_image(
        &self,
        store_name: &str,
        digest: &str,
        location: &str,
    ) -> Result<(), RecordError> {
        let at = super::records::now();
        self.db
            .run(|db| {
                db.execute(
                    "INSERT INTO shared_images (store_name, digest, location, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (store_name) DO UPDATE SET \
                     digest = $2, location = $3, updated_at = $4",
                    params![store_name, digest, location, at.as_str()],
                )
            })
            .map_err(sql("record a shared image"))?;
        Ok(())
    }

    /// A shared image by store name: its digest and registry location.
    pub fn shared_image(&self, store_name: &str) -> Result<Option<(String, String)>, RecordError> {
        self.db
            .run(|db| {
                db.query_opt(
                    "SELECT digest, location FROM shared_images WHERE store_name = $1",
                    params![store_name],
                )?
                .map(|row| Ok((row.text(0)?, row.text(1)?)))
                .transpose()
            })
            .map_err(sql("read a shared image"))
    }
}

/// Back to QUEUED with no worker: the claim conditions hold again.
fn requeue(db: &mut dyn Exec, id: i64, detail: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE workflows SET worker = NULL, lease_until = NULL, started_at = NULL WHERE id = $1",
        params![id],
    )?;
    Records::record_transition(db, id, State::Queued, detail)
}

#[cfg(test)]
mod tests {
    use super::super::records::NewWorkflow;
    use super::*;

    /// Records in `dir` holding one app, `one`.
    fn records_with_app(dir: &std::path::Path) -> Records {
        let records = Records::open(&dir.join("db")).unwrap();
        records
            .create_app(&super::super::records::AppRecord {
                name: "one".into(),
                app_file: "version: 1".into(),
                managed_source: false,
                trigger_id: "t".into(),
                trigger_secret: "s".into(),
                created_at: super::super::records::now(),
                updated_at: super::super::records::now(),
                deleted_at: None,
            })
            .unwrap();
        records
    }

    #[test]
    fn leases_expire_into_the_queue_then_into_error() {
        let dir = tempfile::tempdir().unwrap();
        let records = records_with_app(dir.path());
        let id = records
            .create_workflow(&NewWorkflow {
                app: "one".into(),
                origin: "api".into(),
                ..NewWorkflow::default()
            })
            .unwrap();
        // A lease already over: the reaper takes it back at once.
        let claimed = records.claim_next("w1", -1).unwrap().unwrap();
        assert_eq!(claimed.id, id);
        assert!(records.claim_next("w2", 10_000).unwrap().is_none(), "held");
        assert!(records
            .transition(id, State::Building, "b", Some("w1"))
            .unwrap());
        assert_eq!(
            records.reap_expired(2).unwrap(),
            [Reaped::Requeued {
                id,
                worker: "w1".into()
            }]
        );
        // The stopped worker's late writes no longer count.
        assert!(!records
            .transition(id, State::Ready, "late", Some("w1"))
            .unwrap());
        assert!(!records
            .set_result(id, "sha256:late", Some("docker://r/late"), "w1")
            .unwrap());
        assert_eq!(records.claim_next("w2", -1).unwrap().unwrap().id, id);
        // Nor once another worker holds it: its result stands.
        assert!(records
            .set_result(id, "sha256:second", Some("docker://r/second"), "w2")
            .unwrap());
        assert!(!records
            .set_result(id, "sha256:late", Some("docker://r/late"), "w1")
            .unwrap());
        let held = records.workflow(id).unwrap().unwrap();
        assert_eq!(held.du_digest.as_deref(), Some("sha256:second"));
        assert_eq!(held.pushed_to.as_deref(), Some("docker://r/second"));
        assert_eq!(
            records.reap_expired(2).unwrap(),
            [Reaped::Failed {
                id,
                worker: "w2".into()
            }]
        );
        let record = records.workflow(id).unwrap().unwrap();
        assert_eq!(record.state, State::Error);
        assert!(record.reason.unwrap().contains("2 of 2 attempts"));
        let states: Vec<_> = record.transitions.iter().map(|t| t.state).collect();
        assert_eq!(
            states,
            [State::Queued, State::Building, State::Queued, State::Error]
        );
    }

    #[test]
    fn cancel_reaches_the_holder_through_its_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let records = records_with_app(dir.path());
        let new = NewWorkflow {
            app: "one".into(),
            origin: "api".into(),
            ..NewWorkflow::default()
        };
        let (held, free) = (
            records.create_workflow(&new).unwrap(),
            records.create_workflow(&new).unwrap(),
        );
        records.claim_next("w1", 60_000).unwrap().unwrap();
        assert!(records.request_cancel(held).unwrap());
        assert!(!records.cancel_queued(held, "x").unwrap(), "w1 holds it");
        let started = super::super::records::now();
        assert_eq!(
            records
                .heartbeat("w1", "worker", "h", &started, 60_000, &[held])
                .unwrap(),
            [held]
        );
        assert!(records.request_cancel(free).unwrap());
        assert!(records
            .cancel_queued(free, "cancelled while queued")
            .unwrap());
        assert!(records.claim_next("w2", 60_000).unwrap().is_none());
        let workers = records.workers(60_000).unwrap();
        assert_eq!(workers.len(), 1);
        assert_eq!(workers[0].workflow, Some(held));
        assert!(workers[0].alive);
        assert_eq!(records.release("w1", "stopping").unwrap(), [held]);
        assert!(records.workers(60_000).unwrap().is_empty());
    }

    #[test]
    fn a_held_workflow_no_longer_running_is_not_renewed_for_ever() {
        let dir = tempfile::tempdir().unwrap();
        let records = records_with_app(dir.path());
        let new = NewWorkflow {
            app: "one".into(),
            origin: "api".into(),
            ..NewWorkflow::default()
        };
        let (ended, running) = (
            records.create_workflow(&new).unwrap(),
            records.create_workflow(&new).unwrap(),
        );
        // Both claimed with leases already over; the run of the first ended while its
        // final state could not be written, so it stays BUILDING and held.
        records.claim_next("w1", -1).unwrap().unwrap();
        records.claim_next("w1", -1).unwrap().unwrap();
        assert!(records
            .transition(ended, State::Building, "b", Some("w1"))
            .unwrap());
        let started = super::super::records::now();
        records
            .heartbeat("w1", "worker", "h", &started, 60_000, &[running])
            .unwrap();
        // The live worker's heartbeat kept the lease of the one it runs only: the other
        // goes back to the queue for a new attempt.
        assert_eq!(
            records.reap_expired(3).unwrap(),
            [Reaped::Requeued {
                id: ended,
                worker: "w1".into()
            }]
        );
        assert_eq!(records.queued(10).unwrap(), [ended]);
    }
}
