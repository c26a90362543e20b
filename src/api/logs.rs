//! Workflow logs in the database, so that every API node can stream a build that runs on
//! any worker: the worker appends chunks of lines (numbered per workflow), a reader asks
//! for the chunks after the last one it has.
//!
//! The writer ([`LogWriter`]) collects lines and writes them as one chunk at most every
//! [`FLUSH_EVERY`] (and at once on a state change and at the end), so that a build's
//! thousands of output lines cost a few inserts a second, not one each. A workflow's log is
//! bounded ([`LOG_LIMIT`]): past it, one line says so and the rest is dropped. Text only:
//! NUL (which PostgreSQL's text refuses) becomes U+FFFD.

use super::db::params;
use super::records::{sql, RecordError, Records};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How often buffered lines are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The most log text one workflow keeps.
pub const LOG_LIMIT: usize = 32 << 20;

/// A chunk is written at this size even before [`FLUSH_EVERY`].
const CHUNK_BYTES: usize = 256 << 10;

impl Records {
    /// Appends one chunk to a workflow's log.
    pub fn append_log(&self, workflow: i64, body: &str) -> Result<(), RecordError> {
        self.db
            .run(|db| {
                db.execute(
                    "INSERT INTO log_chunks (workflow, seq, body) VALUES ($1, \
                     (SELECT COALESCE(MAX(seq), -1) + 1 FROM log_chunks WHERE workflow = $1), $2)",
                    params![workflow, body],
                )
            })
            .map_err(sql("append to a log"))?;
        Ok(())
    }

    /// The chunks of a workflow's log after `after` (-1: from the start), at most `limit`,
    /// with their numbers.
    pub fn log_chunks(
        &self,
        workflow: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, RecordError> {
        self.db
            .run(|db| {
                db.query(
                    "SELECT seq, body FROM log_chunks WHERE workflow = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                    params![workflow, after, limit],
                )?
                .iter()
                .map(|row| Ok((row.int(0)?, row.text(1)?)))
                .collect()
            })
            .map_err(sql("read a log"))
    }
}

#[derive(Default)]
struct Pending {
    text: String,
    written: usize,
    truncated: bool,
    closed: bool,
}

/// Lines of one workflow on their way to the database.
pub struct LogWriter {
    records: Arc<Records>,
    workflow: i64,
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Held from taking buffered text until it is written, so chunks keep their order.
    writing: Mutex<()>,
}

impl LogWriter {
    /// A writer, and the thread that writes its chunks; [`LogWriter::close`] ends it.
    pub fn start(records: Arc<Records>, workflow: i64) -> Arc<LogWriter> {
        let writer = Arc::new(LogWriter {
            records,
            workflow,
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            writing: Mutex::new(()),
        });
        let flusher = writer.clone();
        std::thread::spawn(move || flusher.run());
        writer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds one line (a newline is added).
    pub fn line(&self, text: &str) {
        let mut pending = self.lock();
        if pending.closed || pending.truncated {
            return;
        }
        if pending.written + pending.text.len() + text.len() + 1 > LOG_LIMIT {
            pending.truncated = true;
            pending
                .text
                .push_str("warning: the log reached its limit; later lines are not kept\n");
        } else {
            pending
                .text
                .extend(text.chars().map(|c| if c == '\0' { '\u{fffd}' } else { c }));
            pending.text.push('\n');
        }
        if pending.text.len() >= CHUNK_BYTES {
            self.wake.notify_one();
        }
    }

    /// Writes what is buffered now (a state change: a follower should see it at once).
    pub fn flush(&self) {
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let text = std::mem::take(&mut self.lock().text);
        self.write(text);
    }

    fn write(&self, text: String) {
        if text.is_empty() {
            return;
        }
        let length = text.len();
        // A database that is away longer than the records' retries loses these lines; the
        // build goes on (its states are recorded by their own, retried, statements).
        if self.records.append_log(self.workflow, &text).is_ok() {
            self.lock().written += length;
        }
    }

    fn run(&self) {
        loop {
            let closed = {
                let pending = self.lock();
                let (pending, _) = self
                    .wake
                    .wait_timeout(pending, FLUSH_EVERY)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                pending.closed
            };
            if closed {
                return;
            }
            self.flush();
        }
    }

    /// Writes the rest and ends the writer's thread.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_arrive_in_order_in_few_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let records = Arc::new(Records::open(&dir.path().join("db")).unwrap());
        let writer = LogWriter::start(records.clone(), 7);
        for n in 0..1000 {
            writer.line(&format!("line {n}\0"));
        }
        writer.close();
        let chunks = records.log_chunks(7, -1, 1000).unwrap();
        assert!(chunks.len() < 10, "{} chunks", chunks.len());
        let text: String = chunks.into_iter().map(|(_, body)| body).collect();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert_eq!(lines[999], "line 999\u{fffd}");
        assert!(records.log_chunks(7, 1 << 40, 10).unwrap().is_empty());
    }
}
