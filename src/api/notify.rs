//! PostgreSQL's LISTEN/NOTIFY between the nodes: a queued workflow wakes an idle worker
//! on any host at once (polling every two seconds stays as the fallback), and a cancel
//! reaches the worker that runs the build without waiting for its next heartbeat.
//!
//! Each node keeps one connection of its own for listening, on a plain thread (a
//! notification arrives on the connection that listens, so it cannot be a pooled one); it
//! reconnects with backoff when the database goes away. On SQLite (one host) there is
//! nothing to listen to: the process wakes its own workers.

use super::db::params;
use super::records::Records;
use super::Shared;
use postgres::fallible_iterator::FallibleIterator;
use std::sync::Arc;
use std::time::Duration;

/// A workflow was queued (or requeued).
pub const QUEUE: &str = "solum_queue";
/// A workflow was asked to cancel; the payload is its id.
pub const CANCEL: &str = "solum_cancel";

impl Records {
    /// Sends a notification to every node (PostgreSQL); nothing on SQLite. A failure is
    /// not an error: the nodes poll.
    pub fn notify(&self, channel: &str, payload: &str) {
        if self.is_single_host() {
            return;
        }
        let _ = self.db.run(|db| {
            db.query("SELECT pg_notify($1, $2)", params![channel, payload])
                .map(drop)
        });
    }
}

/// Starts the listening thread of a node on PostgreSQL.
pub fn listen(shared: Arc<Shared>) {
    let Some(config) = shared.records.postgres_config().cloned() else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("solum-listen".into())
        .spawn(move || {
            let mut pause = Duration::from_millis(200);
            while !shared.is_stopping() {
                match config.connect(postgres::NoTls) {
                    Ok(mut client) => {
                        pause = Duration::from_millis(200);
                        if client
                            .batch_execute(&format!("LISTEN {QUEUE}; LISTEN {CANCEL};"))
                            .is_ok()
                        {
                            // Work queued while this node was not listening.
                            shared.wake.notify_one();
                            receive(&shared, &mut client);
                        }
                    }
                    Err(_) => {
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    // Without the thread the node still works, by polling.
    drop(spawned);
}

/// Hands each notification on until the connection breaks or the node stops.
fn receive(shared: &Shared, client: &mut postgres::Client) {
    while !shared.is_stopping() && !client.is_closed() {
        let mut notifications = client.notifications();
        let mut batch = notifications.timeout_iter(Duration::from_secs(1));
        loop {
            match batch.next() {
                Ok(Some(notification)) => match notification.channel() {
                    QUEUE => shared.wake.notify_one(),
                    CANCEL => {
                        if let Ok(id) = notification.payload().parse() {
                            shared.cancel(id);
                        }
                    }
                    _ => {}
                },
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}
