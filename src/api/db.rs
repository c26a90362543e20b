//! The database under the server's records: SQLite for one host (embedded, the default) or
//! PostgreSQL for many (`serve --database postgres://…`), behind one small interface so
//! that `records` holds a single set of queries.
//!
//! Queries are written once, in PostgreSQL's form: `$1`-numbered parameters (SQLite reads
//! them as `?1`, the same numbered parameter), integers as 64-bit, booleans as integers,
//! times as RFC 3339 text. The few places where the engines differ are named fragments
//! ([`Dialect`]): the id column of the schema, and the row locks `FOR UPDATE [SKIP LOCKED]`,
//! which only PostgreSQL has (SQLite's single writer makes the same steps atomic).
//!
//! Clients: `rusqlite` (bundled SQLite, as before) and `postgres`, the synchronous face of
//! `tokio-postgres`, the maintained PostgreSQL driver of the Rust ecosystem. Synchronous,
//! because every caller of the records is synchronous (build threads and short handler
//! calls); sqlx would have meant async records and a second SQLite driver. The `postgres`
//! client runs its own small runtime, which may not be started from a tokio worker thread,
//! so each call leaves the server's runtime with `block_in_place` first ([`off_runtime`]).
//! Migrations are a numbered list applied in one transaction under a lock; they are few
//! and plain SQL, and the migration crates bind to driver versions of their own (refinery
//! pins rusqlite), so the forty lines are here.
//!
//! Losing PostgreSQL: every operation that fails because the connection broke is retried on
//! a new connection, with backoff, for up to [`RECONNECT_FOR`]; then it fails. A whole
//! transaction is retried, never a part of one, so nothing is half-written.

use crate::report::State;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long an operation waits for a lost PostgreSQL to come back before it fails.
pub const RECONNECT_FOR: Duration = Duration::from_secs(45);

/// Connections to PostgreSQL a node keeps at most.
const POOL_SIZE: usize = 6;

/// Why the database could not be opened or a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{url:?} is not a database URL: use sqlite://PATH or postgres://USER@HOST:PORT/NAME")]
    Url { url: String },
    #[error("cannot open the SQLite database {path}")]
    SqliteOpen {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot reach the database {url}")]
    Connect {
        url: String,
        #[source]
        source: postgres::Error,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    #[error("column {index} holds {found}, not {wanted}")]
    Type {
        index: usize,
        found: String,
        wanted: &'static str,
    },
    #[error("the stored state {text:?} is not a workflow state")]
    State { text: String },
    #[error("migration {version} failed")]
    Migration {
        version: i64,
        #[source]
        source: Box<DbError>,
    },
    #[error("the database schema is at version {found}, newer than this server's {known}: upgrade the server")]
    Newer { found: i64, known: i64 },
}

impl DbError {
    /// The connection broke (as opposed to a statement the server refused): worth a retry on
    /// a new connection.
    fn is_connection_lost(&self) -> bool {
        match self {
            DbError::Postgres(error) => {
                error.is_closed()
                    || error.as_db_error().is_some_and(|db| {
                        // admin_shutdown, crash_shutdown, cannot_connect_now
                        matches!(db.code().code(), "57P01" | "57P02" | "57P03")
                    })
                    || std::error::Error::source(error)
                        .is_some_and(|inner| inner.downcast_ref::<std::io::Error>().is_some())
            }
            DbError::Connect { .. } => true,
            _ => false,
        }
    }
}

/// One parameter of a statement. Nulls carry their type: PostgreSQL checks it.
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    Int(i64),
    Text(&'a str),
    OptInt(Option<i64>),
    OptText(Option<&'a str>),
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}
impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Param::Int(i64::from(value))
    }
}
impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(value)
    }
}
impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Param::Text(value)
    }
}
impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Param::OptText(value)
    }
}
impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Param::OptText(value.as_deref())
    }
}
impl From<Option<i64>> for Param<'_> {
    fn from(value: Option<i64>) -> Self {
        Param::OptInt(value)
    }
}
impl From<State> for Param<'_> {
    fn from(value: State) -> Self {
        Param::Text(value.as_str())
    }
}

/// `params![a, b]`: a slice of [`Param`]s.
macro_rules! params {
    ($($value:expr),* $(,)?) => { &[$($crate::api::db::Param::from($value)),*][..] };
}
pub(crate) use params;

/// One value read back.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// One row read back, by column index.
#[derive(Clone, Debug)]
pub struct Row(Vec<Value>);

impl Row {
    fn at(&self, index: usize) -> &Value {
        self.0.get(index).unwrap_or(&Value::Null)
    }

    fn wrong(&self, index: usize, wanted: &'static str) -> DbError {
        DbError::Type {
            index,
            found: format!("{:?}", self.at(index)),
            wanted,
        }
    }

    pub fn int(&self, index: usize) -> Result<i64, DbError> {
        match self.at(index) {
            Value::Int(value) => Ok(*value),
            _ => Err(self.wrong(index, "an integer")),
        }
    }

    pub fn opt_int(&self, index: usize) -> Result<Option<i64>, DbError> {
        match self.at(index) {
            Value::Null => Ok(None),
            _ => self.int(index).map(Some),
        }
    }

    pub fn bool(&self, index: usize) -> Result<bool, DbError> {
        self.int(index).map(|value| value != 0)
    }

    pub fn text(&self, index: usize) -> Result<String, DbError> {
        match self.at(index) {
            Value::Text(value) => Ok(value.clone()),
            _ => Err(self.wrong(index, "text")),
        }
    }

    pub fn opt_text(&self, index: usize) -> Result<Option<String>, DbError> {
        match self.at(index) {
            Value::Null => Ok(None),
            _ => self.text(index).map(Some),
        }
    }

    pub fn state(&self, index: usize) -> Result<State, DbError> {
        let text = self.text(index)?;
        text.parse().map_err(|_| DbError::State { text })
    }
}

/// Which engine a statement goes to: the fragments that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `{id}`, `{skip_locked}` replaced by this engine's words, and `$N` made `?N` for SQLite.
    fn render(self, sql: &str) -> String {
        let (id, skip_locked, for_update) = match self {
            Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "", ""),
            Dialect::Postgres => (
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                "FOR UPDATE SKIP LOCKED",
                "FOR UPDATE",
            ),
        };
        let sql = sql
            .replace("{id}", id)
            .replace("{skip_locked}", skip_locked)
            .replace("{for_update}", for_update);
        match self {
            Dialect::Sqlite => sql.replace('$', "?"),
            Dialect::Postgres => sql,
        }
    }
}

/// Runs statements: a connection, or a transaction on one.
pub trait Exec {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError>;
    /// Runs a query; every row.
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError>;
    /// Runs several statements without parameters (the schema).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;

    /// The first row, if any.
    fn query_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

struct SqliteExec<'a>(&'a rusqlite::Connection);

fn sqlite_params<'a>(params: &'a [Param<'a>]) -> Vec<&'a dyn rusqlite::ToSql> {
    params
        .iter()
        .map(|param| -> &dyn rusqlite::ToSql {
            match param {
                Param::Int(value) => value,
                Param::Text(value) => value,
                Param::OptInt(value) => value,
                Param::OptText(value) => value,
            }
        })
        .collect()
}

impl Exec for SqliteExec<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        let sql = Dialect::Sqlite.render(sql);
        let changed = self
            .0
            .prepare_cached(&sql)?
            .execute(sqlite_params(params).as_slice())?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        use rusqlite::types::ValueRef;
        let sql = Dialect::Sqlite.render(sql);
        let mut statement = self.0.prepare_cached(&sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(sqlite_params(params).as_slice())?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for index in 0..columns {
                values.push(match row.get_ref(index)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(value) => Value::Int(value),
                    // Never stored by this schema; read as text rather than refused.
                    ValueRef::Real(value) => Value::Text(value.to_string()),
                    ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                        Value::Text(String::from_utf8_lossy(bytes).into_owned())
                    }
                });
            }
            found.push(Row(values));
        }
        Ok(found)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.0.execute_batch(&Dialect::Sqlite.render(sql))?)
    }
}

struct PgExec<'a, C: postgres::GenericClient>(&'a mut C);

fn pg_params<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|param| -> &(dyn postgres::types::ToSql + Sync) {
            match param {
                Param::Int(value) => value,
                Param::Text(value) => value,
                Param::OptInt(value) => value,
                Param::OptText(value) => value,
            }
        })
        .collect()
}

/// PostgreSQL's text holds no NUL (SQLite's does): each is stored as U+FFFD, as the logs
/// store theirs, so that a failure's detail or a webhook's revision that names one is
/// recorded rather than failing its statement (a refused final state would leave the
/// workflow without its end). The copies made, by parameter; `None` where none was needed.
fn nul_free_copies(params: &[Param<'_>]) -> Vec<Option<String>> {
    params
        .iter()
        .map(|param| match param {
            Param::Text(text) | Param::OptText(Some(text)) if text.contains('\0') => {
                Some(text.replace('\0', "\u{fffd}"))
            }
            _ => None,
        })
        .collect()
}

/// `params` with the copies of [`nul_free_copies`] in place of their originals.
fn nul_free<'b>(params: &[Param<'b>], copies: &'b [Option<String>]) -> Vec<Param<'b>> {
    params
        .iter()
        .zip(copies)
        .map(|(param, copy)| match (param, copy) {
            (Param::Text(_), Some(copy)) => Param::Text(copy),
            (Param::OptText(_), Some(copy)) => Param::OptText(Some(copy)),
            (param, _) => *param,
        })
        .collect()
}

fn pg_value(row: &postgres::Row, index: usize) -> Result<Value, DbError> {
    use postgres::types::Type;
    let kind = row.columns()[index].type_().clone();
    let value = if kind == Type::INT8 {
        row.try_get::<_, Option<i64>>(index)?.map(Value::Int)
    } else if kind == Type::INT4 {
        row.try_get::<_, Option<i32>>(index)?
            .map(|v| Value::Int(v.into()))
    } else if kind == Type::INT2 {
        row.try_get::<_, Option<i16>>(index)?
            .map(|v| Value::Int(v.into()))
    } else if kind == Type::BOOL {
        row.try_get::<_, Option<bool>>(index)?
            .map(|v| Value::Int(v.into()))
    } else if [Type::TEXT, Type::VARCHAR, Type::NAME, Type::BPCHAR].contains(&kind) {
        row.try_get::<_, Option<String>>(index)?.map(Value::Text)
    } else {
        return Err(DbError::Type {
            index,
            found: kind.name().to_string(),
            wanted: "an integer or text column",
        });
    };
    Ok(value.unwrap_or(Value::Null))
}

impl<C: postgres::GenericClient> Exec for PgExec<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        let sql = Dialect::Postgres.render(sql);
        let copies = nul_free_copies(params);
        let params = nul_free(params, &copies);
        Ok(self.0.execute(sql.as_str(), &pg_params(&params))?)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        let sql = Dialect::Postgres.render(sql);
        let copies = nul_free_copies(params);
        let params = nul_free(params, &copies);
        let rows = self.0.query(sql.as_str(), &pg_params(&params))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| pg_value(row, index))
                    .collect::<Result<_, _>>()
                    .map(Row)
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.0.batch_execute(&Dialect::Postgres.render(sql))?)
    }
}

/// Runs `work` where a blocking call is allowed: off the tokio worker thread when called
/// from one (the `postgres` client starts a runtime of its own, which tokio forbids there).
pub fn off_runtime<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for messages.
///
/// The credentials are what the driver reads as such: everything before the first `@`,
/// even past a `/` (`postgres://u:pa/ss@host/db` has the password `pa/ss`), so that no
/// part of a password ever shows.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (credentials, location) = match rest.split_once('@') {
        Some((credentials, location)) => (Some(credentials), location),
        None => (None, rest),
    };
    let shown = credentials.map(|credentials| {
        let (name, secret) = match credentials.split_once(':') {
            Some((name, _)) => (name, true),
            None => (credentials, false),
        };
        // A name with a path or a query in it is no plain user name: shown as hidden.
        let name = if name.contains(['/', '?']) {
            "***"
        } else {
            name
        };
        if secret {
            format!("{name}:***@")
        } else {
            format!("{name}@")
        }
    });
    // Query parameters may carry a password too (`?password=`).
    let location = location.split('?').next().unwrap_or(location);
    format!("{scheme}://{}{location}", shown.unwrap_or_default())
}

/// A small pool of PostgreSQL connections, made on demand and replaced when they break.
struct PgPool {
    config: postgres::Config,
    shown_url: String,
    idle: Mutex<(Vec<postgres::Client>, usize)>,
    returned: Condvar,
}

impl PgPool {
    fn connect(&self) -> Result<postgres::Client, DbError> {
        self.config
            .connect(postgres::NoTls)
            .map_err(|source| DbError::Connect {
                url: self.shown_url.clone(),
                source,
            })
    }

    /// A connection: an idle one, a new one while fewer than [`POOL_SIZE`] exist, else the
    /// next one returned.
    fn take(&self) -> Result<postgres::Client, DbError> {
        let mut guard = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(client) = guard.0.pop() {
                return Ok(client);
            }
            if guard.1 < POOL_SIZE {
                guard.1 += 1;
                drop(guard);
                let made = self.connect();
                if made.is_err() {
                    self.forget();
                }
                return made;
            }
            guard = self
                .returned
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn give_back(&self, client: postgres::Client) {
        if client.is_closed() {
            drop(client);
            self.forget();
            return;
        }
        let mut guard = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.0.push(client);
        self.returned.notify_one();
    }

    /// A connection that will not come back (broken, or never made).
    fn forget(&self) {
        let mut guard = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.1 = guard.1.saturating_sub(1);
        self.returned.notify_one();
    }
}

enum Engine {
    Sqlite(Mutex<rusqlite::Connection>),
    // Boxed: the pool is three times the size of the SQLite connection.
    Postgres(Box<PgPool>),
}

/// The database a server's records live in.
pub struct Database {
    engine: Engine,
    /// The URL as shown in messages (no password).
    pub shown_url: String,
}

impl Database {
    /// Opens `url`: `sqlite://PATH` (created if missing) or `postgres://…` (connected once
    /// now, so that a wrong URL or a database that is down fails the start).
    pub fn open(url: &str) -> Result<Database, DbError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Database::open_sqlite(std::path::Path::new(path));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let shown_url = redact_url(url);
            let mut config: postgres::Config = url.parse().map_err(|_| DbError::Url {
                url: shown_url.clone(),
            })?;
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(Duration::from_secs(5));
            }
            config.application_name("solum-build");
            let pool = PgPool {
                config,
                shown_url: shown_url.clone(),
                idle: Mutex::new((Vec::new(), 0)),
                returned: Condvar::new(),
            };
            // Connected now: a database that is down fails the start with its reason.
            let first = off_runtime(|| pool.take())?;
            off_runtime(|| pool.give_back(first));
            return Ok(Database {
                engine: Engine::Postgres(Box::new(pool)),
                shown_url,
            });
        }
        Err(DbError::Url {
            url: redact_url(url),
        })
    }

    /// Opens (or creates) an SQLite database file in WAL mode.
    pub fn open_sqlite(path: &std::path::Path) -> Result<Database, DbError> {
        let open = |source| DbError::SqliteOpen {
            path: path.display().to_string(),
            source,
        };
        let conn = rusqlite::Connection::open(path).map_err(open)?;
        // WAL: readers do not block the writer and a crash keeps every committed write;
        // NORMAL sync is durable across a process crash (only power loss may lose the
        // last commits), which is what `kill -9` tests.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(open)?;
        Ok(Database {
            engine: Engine::Sqlite(Mutex::new(conn)),
            shown_url: format!("sqlite://{}", path.display()),
        })
    }

    pub fn dialect(&self) -> Dialect {
        match self.engine {
            Engine::Sqlite(_) => Dialect::Sqlite,
            Engine::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The PostgreSQL connection settings (for the listener's own connection).
    pub fn postgres_config(&self) -> Option<&postgres::Config> {
        match &self.engine {
            Engine::Postgres(pool) => Some(&pool.config),
            Engine::Sqlite(_) => None,
        }
    }

    /// Runs `work` on a connection, each statement on its own (autocommit).
    pub fn run<R>(
        &self,
        mut work: impl FnMut(&mut dyn Exec) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        match &self.engine {
            Engine::Sqlite(conn) => {
                let conn = conn
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                work(&mut SqliteExec(&conn))
            }
            Engine::Postgres(pool) => Self::with_retry(pool, |client| work(&mut PgExec(client))),
        }
    }

    /// Runs `work` in one transaction: committed when it returns `Ok`, rolled back on `Err`.
    pub fn transaction<R>(
        &self,
        mut work: impl FnMut(&mut dyn Exec) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        match &self.engine {
            Engine::Sqlite(conn) => {
                let mut conn = conn
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // IMMEDIATE: the write lock first, so that a read-then-write cannot be
                // overtaken by another process's write (two nodes on one file).
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let result = work(&mut SqliteExec(&tx))?;
                tx.commit()?;
                Ok(result)
            }
            Engine::Postgres(pool) => Self::with_retry(pool, |client| {
                let mut tx = client.transaction()?;
                let result = work(&mut PgExec(&mut tx))?;
                tx.commit()?;
                Ok(result)
            }),
        }
    }

    /// Runs `work` on a pooled connection; when the connection broke, again on a new one,
    /// with backoff, until [`RECONNECT_FOR`] has passed.
    fn with_retry<R>(
        pool: &PgPool,
        mut work: impl FnMut(&mut postgres::Client) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        off_runtime(|| {
            let started = Instant::now();
            let mut pause = Duration::from_millis(100);
            loop {
                let outcome = pool.take().and_then(|mut client| {
                    let result = work(&mut client);
                    pool.give_back(client);
                    result
                });
                match outcome {
                    Err(error)
                        if error.is_connection_lost() && started.elapsed() < RECONNECT_FOR =>
                    {
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                    other => return other,
                }
            }
        })
    }

    /// Whether the database answers now (for `/v1/health`): no retries.
    pub fn ping(&self) -> Result<(), DbError> {
        match &self.engine {
            Engine::Sqlite(_) => self.run(|db| db.query("SELECT 1", &[]).map(drop)),
            Engine::Postgres(pool) => off_runtime(|| {
                let mut client = pool.take()?;
                let result = client.simple_query("SELECT 1").map(drop);
                pool.give_back(client);
                result.map_err(DbError::from)
            }),
        }
    }

    /// Applies the migrations this database has not had, in order, in one transaction that
    /// holds a lock, so that nodes starting together apply each once.
    pub fn migrate(&self, migrations: &[(i64, &str)]) -> Result<(), DbError> {
        let known = migrations.last().map_or(0, |(version, _)| *version);
        self.transaction(|db| {
            if db.dialect() == Dialect::Postgres {
                // One lock key for the whole schema; released at commit.
                db.execute("SELECT pg_advisory_xact_lock(5375286)", &[])?;
            }
            db.batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version BIGINT PRIMARY KEY,
                    applied_at TEXT NOT NULL
                )",
            )?;
            let current = db
                .query_opt("SELECT MAX(version) FROM schema_migrations", &[])?
                .map(|row| row.opt_int(0))
                .transpose()?
                .flatten()
                .unwrap_or(0);
            if current > known {
                return Err(DbError::Newer {
                    found: current,
                    known,
                });
            }
            for (version, sql) in migrations.iter().filter(|(v, _)| *v > current) {
                db.batch(sql).map_err(|source| DbError::Migration {
                    version: *version,
                    source: Box::new(source),
                })?;
                db.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    params![*version, super::records::now().as_str()],
                )?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_fragments_render_per_engine() {
        let sql = "SELECT id FROM t WHERE a = $1 AND b = $2 {skip_locked}";
        assert_eq!(
            Dialect::Sqlite.render(sql),
            "SELECT id FROM t WHERE a = ?1 AND b = ?2 "
        );
        assert_eq!(
            Dialect::Postgres.render(sql),
            "SELECT id FROM t WHERE a = $1 AND b = $2 FOR UPDATE SKIP LOCKED"
        );
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://solum:s3cret@db:5432/solum?password=x"),
            "postgres://solum:***@db:5432/solum"
        );
        assert_eq!(
            redact_url("postgres://solum@db/solum"),
            "postgres://solum@db/solum"
        );
        assert_eq!(
            redact_url("postgres://db:5432/solum"),
            "postgres://db:5432/solum"
        );
        // The driver reads credentials up to the first `@`, past a `/`: the password
        // here is `pa/ss?x`, and none of it may show.
        let url = "postgres://solum:pa/ss?x@db:5432/solum";
        let parsed: postgres::Config = url.parse().unwrap();
        assert_eq!(parsed.get_password(), Some(&b"pa/ss?x"[..]));
        assert_eq!(redact_url(url), "postgres://solum:***@db:5432/solum");
        assert_eq!(
            redact_url("postgres://db/solum?password=x@y"),
            "postgres://***@y"
        );
    }

    #[test]
    fn sqlite_runs_the_shared_queries_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let db =
            Database::open(&format!("sqlite://{}", dir.path().join("x.db").display())).unwrap();
        let migrations = [
            (1, "CREATE TABLE t (id {id}, name TEXT NOT NULL, n BIGINT)"),
            (2, "ALTER TABLE t ADD COLUMN note TEXT"),
        ];
        db.migrate(&migrations).unwrap();
        db.migrate(&migrations).unwrap();
        let id = db
            .transaction(|db| {
                let row = db
                    .query_opt(
                        "INSERT INTO t (name, n, note) VALUES ($1, $2, $3) RETURNING id",
                        params!["a", 7i64, None::<&str>],
                    )?
                    .unwrap();
                row.int(0)
            })
            .unwrap();
        let row = db
            .run(|db| db.query_opt("SELECT name, n, note FROM t WHERE id = $1", params![id]))
            .unwrap()
            .unwrap();
        assert_eq!(row.text(0).unwrap(), "a");
        assert_eq!(row.int(1).unwrap(), 7);
        assert_eq!(row.opt_text(2).unwrap(), None);
        assert!(matches!(
            db.migrate(&migrations[..1]),
            Err(DbError::Newer { found: 2, known: 1 })
        ));
    }
}
