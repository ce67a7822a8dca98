//! The PostgreSQL backend: the server's storage on a PostgreSQL server, so
//! several stateless Branchline nodes can share one database.
//!
//! [`PgDb`] implements [`Database`] with a `deadpool-postgres` pool over
//! `tokio-postgres`, driven by a small runtime of its own: storage calls
//! are blocking (the core runs on blocking threads), and each statement is
//! a `block_on` on that runtime. Everything above it (the catalog, the
//! document cache, the sync step, credentials and audit) is the code the
//! SQLite backend runs, through [`crate::sql`].
//!
//! - **Durable before it is told**: a write returns after `COMMIT`, which
//!   with `synchronous_commit = on` (the default, checked at open) waits
//!   for the WAL flush; only then may the core send an `Ack`.
//! - **Invariants across nodes**: writes lock what they check (the
//!   document row for the heads compare-and-set, the invite or submission
//!   code row for enrollment, an advisory lock for "one of a kind" and the
//!   petition quota), so the same invariants hold between nodes as between
//!   the writer thread's jobs.
//! - **Change notices between nodes**: a write of a document or a
//!   revocation sends `NOTIFY branchline_changes` in its transaction, which
//!   PostgreSQL delivers at commit. The notice only wakes the other nodes;
//!   what changed is read from the durable change sequence with a
//!   transaction horizon ([`snapshot_horizon`]), so a missed notice or a
//!   lost listener connection costs latency, never a change: see
//!   docs/sync-design.md, "Several nodes".
//! - **Compaction off the Ack path**: each node's queue thread, when it has
//!   nothing queued, folds one document's appended chunks into a new
//!   snapshot, with the code the SQLite writer runs
//!   ([`documents::compact_first`], which says how nodes keep out of each
//!   other's way and spare a chunk appended meanwhile). Changes commit on
//!   other connections and never wait for automerge rebuilding a snapshot;
//!   an append to the very document being compacted waits at most for the
//!   compaction's last update, delete and commit.

mod migrations;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt as _;
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{AsyncMessage, IsolationLevel, NoTls};

use crate::error::{Error, Result};
use crate::sql::{Dialect, Param, Row, Sql, Value, params, to_postgres};
use crate::storage::documents::{self, Folded};
use crate::storage::writer::{CompactionPace, IDLE_TICK};
use crate::storage::{Database, FirstRead};

/// The channel change notices go out on.
pub(crate) const CHANNEL: &str = "branchline_changes";

/// How long a node waits for a pooled connection before a write fails.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// Connections per node.
const POOL_SIZE: usize = 16;

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => Error::Database(format!("{} ({})", db.message(), db.code().code())),
            None => Error::Database(format!("{e}: {}", source_chain(&e))),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => Error::from(e),
            other => Error::Database(format!("no database connection: {other}")),
        }
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut at = e.source();
    while let Some(cause) = at {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause.to_string());
        at = cause.source();
    }
    out
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mismatch = || format!("parameter {self:?} cannot be sent as {ty}").into();
        match *self {
            Param::Int(None) | Param::Text(None) | Param::Blob(None) => Ok(IsNull::Yes),
            Param::Int(Some(v)) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(v).map_err(|e| e.to_string())?.to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Param::Text(Some(v)) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => v.to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Param::Blob(Some(v)) => match *ty {
                Type::BYTEA => v.to_sql(ty, out),
                _ => Err(mismatch()),
            },
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::TEXT
                | Type::VARCHAR
                | Type::NAME
                | Type::BPCHAR
                | Type::BYTEA
        )
    }

    to_sql_checked!();
}

/// A row as the storage code reads it.
fn to_row(row: &tokio_postgres::Row) -> Result<Row> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = match *column.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
                row.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            ref other => {
                return Err(Error::Database(format!(
                    "column {} has type {other}, which the server does not read",
                    column.name()
                )));
            }
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

/// Statements on one PostgreSQL transaction, from a blocking thread.
struct PgSql<'a> {
    tx: &'a deadpool_postgres::Transaction<'a>,
    runtime: &'a tokio::runtime::Handle,
}

impl PgSql<'_> {
    fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement> {
        Ok(self
            .runtime
            .block_on(self.tx.prepare_cached(&to_postgres(sql)))?)
    }
}

fn arguments<'p>(params: &'p [Param<'p>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Sql for PgSql<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let statement = self.prepared(sql)?;
        Ok(self
            .runtime
            .block_on(self.tx.execute(&statement, &arguments(params)))?)
    }

    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let statement = self.prepared(sql)?;
        let rows = self
            .runtime
            .block_on(self.tx.query(&statement, &arguments(params)))?;
        rows.iter().map(to_row).collect()
    }
}

/// The oldest transaction still running in the snapshot `conn` reads from:
/// every transaction older than it has committed or aborted, so every
/// write it does not show was made by a transaction at least this new.
pub(crate) fn snapshot_horizon(conn: &dyn Sql) -> Result<i64> {
    let text = conn
        .query_one(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text",
            params![],
        )?
        .text(0)?;
    text.parse()
        .map_err(|_| Error::Database(format!("transaction id {text:?}")))
}

/// Devices revoked after position `after`, or by a transaction at least as
/// new as `horizon` (it may have drawn a lower position and committed after
/// the last look), with the newest position.
pub(crate) fn revoked_since(
    conn: &dyn Sql,
    after: i64,
    horizon: i64,
) -> Result<(Vec<branchline_protocol::DeviceId>, i64)> {
    let rows = conn.query(
        "SELECT device_id, revoked_seq FROM devices
         WHERE revoked_seq > ?1 OR revoked_xid >= ?2::text::xid8
         ORDER BY revoked_seq",
        params![after, &horizon.to_string()],
    )?;
    let mut newest = after;
    let mut devices = Vec::with_capacity(rows.len());
    for row in rows {
        devices.push(crate::db::parse_id(&row.text(0)?)?);
        newest = newest.max(row.int(1)?);
    }
    Ok((devices, newest))
}

/// Tells the other nodes, at commit, that something they hold changed.
pub(crate) fn announce(conn: &dyn Sql) -> Result<()> {
    if conn.dialect() == Dialect::Postgres {
        conn.execute(&format!("NOTIFY {CHANNEL}"), params![])?;
    }
    Ok(())
}

/// Holds a lock on `key` until the transaction ends, on PostgreSQL (SQLite
/// has one writer, which needs none).
pub(crate) fn lock(conn: &dyn Sql, key: &str) -> Result<()> {
    if conn.dialect() == Dialect::Postgres {
        // The lock function returns void, which no getter reads: the
        // statement's rows are not looked at.
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))",
            params![key],
        )?;
    }
    Ok(())
}

/// Holds a lock on `key` until the transaction ends if no other
/// transaction holds it, and says whether it got it; on SQLite, whose one
/// writer needs no lock, always.
pub(crate) fn try_lock(conn: &dyn Sql, key: &str) -> Result<bool> {
    if conn.dialect() != Dialect::Postgres {
        return Ok(true);
    }
    let got = conn
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(?1, 0))",
            params![key],
        )?
        .int(0)?;
    Ok(got != 0)
}

type Queued = Box<dyn FnOnce(&dyn Sql) -> Result<()> + Send>;

/// What a node's compaction has done since it opened the database.
#[derive(Debug, Default)]
struct CompactionCounts {
    /// Documents compacted.
    compacted: AtomicU64,
    /// Documents that could not be compacted and are skipped from then on.
    skipped: AtomicU64,
}

/// A PostgreSQL database, from blocking threads.
pub(crate) struct PgDb {
    pool: Pool,
    runtime: Mutex<Option<Runtime>>,
    handle: tokio::runtime::Handle,
    queue: Mutex<Option<mpsc::Sender<Queued>>>,
    queue_thread: Mutex<Option<JoinHandle<()>>>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    woken: Arc<Notify>,
    #[cfg_attr(not(test), allow(dead_code))]
    compactions: Arc<CompactionCounts>,
}

impl std::fmt::Debug for PgDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDb").finish_non_exhaustive()
    }
}

impl PgDb {
    /// Connects to the database at `url` (a `postgres://` URL), migrates it
    /// if needed (several nodes starting at once take turns), and starts
    /// listening for other nodes' changes. Blocking.
    pub(crate) fn open(url: &str) -> Result<(PgDb, FirstRead)> {
        off_worker(|| Self::open_here(url, true))
    }

    /// [`PgDb::open`] without compaction, for a test that compacts by hand.
    #[cfg(test)]
    pub(crate) fn open_without_compaction(url: &str) -> Result<(PgDb, FirstRead)> {
        off_worker(|| Self::open_here(url, false))
    }

    fn open_here(url: &str, compacts: bool) -> Result<(PgDb, FirstRead)> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::Database(format!("database URL: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("branchline-pg")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Database(format!("connection pool: {e}")))?;
        let woken = Arc::new(Notify::new());
        let (queue, queued) = mpsc::channel::<Queued>();
        let compactions = Arc::new(CompactionCounts::default());
        let database = PgDb {
            pool,
            runtime: Mutex::new(Some(runtime)),
            handle,
            queue: Mutex::new(Some(queue)),
            queue_thread: Mutex::new(None),
            listener: Mutex::new(None),
            woken: woken.clone(),
            compactions: compactions.clone(),
        };
        database.migrate()?;
        let listener = database.handle.spawn(listen(config, woken));
        *database
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(listener);
        let writer = database.pool.clone();
        let handle = database.handle.clone();
        let compaction = compacts.then(|| Compaction::new(compactions));
        let thread = std::thread::Builder::new()
            .name("branchline-pg-queue".into())
            .spawn(move || run_queue(&writer, &handle, &queued, compaction))?;
        *database
            .queue_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(thread);
        let first = database.read(|conn| {
            let horizon = snapshot_horizon(conn)?;
            FirstRead::of(conn, Some(horizon))
        })?;
        Ok((database, first))
    }

    fn migrate(&self) -> Result<()> {
        let mut client = self.handle.block_on(self.pool.get())?;
        let on: String = self
            .handle
            .block_on(client.query_one("SHOW synchronous_commit", &[]))?
            .try_get(0)?;
        if on == "off" {
            return Err(Error::Database(
                "synchronous_commit is off: a committed change could be lost in a crash \
                 after its Ack; turn it on for the Branchline database"
                    .into(),
            ));
        }
        self.handle
            .block_on(migrations::run(&mut client))
            .map_err(Error::from)?;
        let tx = self.handle.block_on(client.transaction())?;
        let sql = PgSql {
            tx: &tx,
            runtime: &self.handle,
        };
        if crate::db::get_info(&sql, "actor_id")?.is_none() {
            let actor: [u8; 16] = rand::random();
            sql.execute(
                "INSERT INTO server_info (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params!["actor_id", actor.as_slice()],
            )?;
        }
        self.handle.block_on(tx.commit())?;
        Ok(())
    }

    /// Runs `work` in one transaction (read-only: a repeatable-read
    /// snapshot) and commits it.
    pub(crate) fn transaction<T>(
        &self,
        read_only: bool,
        work: impl FnOnce(&dyn Sql) -> Result<T>,
    ) -> Result<T> {
        off_worker(|| self.transaction_here(read_only, work))
    }

    fn transaction_here<T>(
        &self,
        read_only: bool,
        work: impl FnOnce(&dyn Sql) -> Result<T>,
    ) -> Result<T> {
        let mut client = self.handle.block_on(self.pool.get())?;
        let builder = client.build_transaction();
        let builder = if read_only {
            builder
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
        } else {
            builder
        };
        let tx = self.handle.block_on(builder.start())?;
        let out = work(&PgSql {
            tx: &tx,
            runtime: &self.handle,
        })?;
        self.handle.block_on(tx.commit())?;
        Ok(out)
    }

    /// How many documents this node compacted, and how many it gave up on.
    #[cfg(test)]
    pub(crate) fn compactions(&self) -> (u64, u64) {
        (
            self.compactions.compacted.load(Ordering::Relaxed),
            self.compactions.skipped.load(Ordering::Relaxed),
        )
    }
}

impl Database for PgDb {
    fn read<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        self.transaction(true, f)
    }

    fn write_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Sql) -> Result<T> + Send + 'static,
        on_commit: impl FnOnce(&T) + Send + 'static,
    ) -> Result<T> {
        let out = self.transaction(false, work)?;
        on_commit(&out);
        Ok(out)
    }

    fn queue(&self, work: impl FnOnce(&dyn Sql) -> Result<()> + Send + 'static) {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = queue.as_ref() {
            let _ = queue.send(Box::new(work));
        }
    }

    fn between<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Sql) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.transaction(true, work)
    }

    fn woken(&self) -> Option<Arc<Notify>> {
        Some(self.woken.clone())
    }

    fn stop(&self) {
        drop(
            self.queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .queue_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the PostgreSQL queue thread panicked");
        }
        if let Some(listener) = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            listener.abort();
        }
        self.pool.close();
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        self.stop();
        // May run inside another runtime (a test's): never block there.
        if let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            runtime.shutdown_background();
        }
    }
}

/// Runs `work`, which blocks on the database runtime, where blocking is
/// allowed. The server calls storage on blocking threads; a caller on a
/// worker of a multi-threaded runtime (an async test using the admin API)
/// hands that worker's other tasks to the rest of its runtime meanwhile.
/// (A current-thread runtime cannot: call storage from `spawn_blocking`
/// there.)
fn off_worker<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Runs queued writes (audit rows for refusals, last-seen times), as many
/// as are waiting in one transaction, until the queue closes; compacts a
/// document as the SQLite writer does, paced by [`CompactionPace`].
fn run_queue(
    pool: &Pool,
    handle: &tokio::runtime::Handle,
    queued: &mpsc::Receiver<Queued>,
    mut compaction: Option<Compaction>,
) {
    loop {
        let first = match queued.recv_timeout(IDLE_TICK) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                if let Some(compaction) = &mut compaction {
                    compaction.one(pool, handle);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        batch.extend(queued.try_iter().take(255));
        let ran = (|| -> Result<()> {
            let mut client = handle.block_on(pool.get())?;
            let tx = handle.block_on(client.transaction())?;
            let sql = PgSql {
                tx: &tx,
                runtime: handle,
            };
            for job in batch {
                job(&sql)?;
            }
            handle.block_on(tx.commit())?;
            Ok(())
        })();
        if let Err(e) = ran {
            tracing::warn!(error = %e, "queued writes lost");
        }
        if let Some(compaction) = &mut compaction
            && compaction.pace.after_batch()
        {
            compaction.one(pool, handle);
        }
    }
}

/// One node's compaction, one document per chance: documents that cannot
/// be compacted (corrupt bytes) are logged once and skipped from then on;
/// after the database fails it, or it panics, it rests (see
/// [`CompactionPace`]).
struct Compaction {
    failed: HashSet<String>,
    pace: CompactionPace,
    counts: Arc<CompactionCounts>,
}

impl Compaction {
    fn new(counts: Arc<CompactionCounts>) -> Self {
        Compaction {
            failed: HashSet::new(),
            pace: CompactionPace::default(),
            counts,
        }
    }

    /// One chance to compact a document.
    fn one(&mut self, pool: &Pool, handle: &tokio::runtime::Handle) {
        if !self.pace.due() {
            return;
        }
        // Unwind safety: a panic leaves nothing behind but the
        // transaction, which is rolled back as it is dropped.
        let attempt = catch_unwind(AssertUnwindSafe(|| compact_one(pool, handle, &self.failed)));
        match attempt {
            Ok(Ok(folded)) => {
                self.pace.went_fine();
                if let Some(folded) = folded {
                    documents::log_folded(&folded);
                    self.counts.compacted.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Err((doc, e @ (Error::CorruptDocument { .. } | Error::Corrupt(_))))) => {
                self.pace.went_fine();
                tracing::error!(doc = %doc, error = %e, "cannot compact; skipping the document");
                self.failed.insert(doc);
                self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err((doc, e))) => {
                tracing::warn!(doc = %doc, error = %e, "compaction could not run");
                self.pace.hit_trouble();
            }
            Err(_) => {
                tracing::error!("compaction panicked");
                self.pace.hit_trouble();
            }
        }
    }
}

/// Compacts the first document (not in `skip`) whose chunks outgrew its
/// snapshot and that no other node is compacting, in one transaction of
/// its own. Read committed, whatever the database's default: its final
/// update must see, and keep, what other nodes appended meanwhile
/// (repeatable read would fail it instead).
fn compact_one(
    pool: &Pool,
    handle: &tokio::runtime::Handle,
    skip: &HashSet<String>,
) -> std::result::Result<Option<Folded>, (String, Error)> {
    let no_doc = |e: Error| (String::new(), e);
    let mut client = handle.block_on(pool.get()).map_err(|e| no_doc(e.into()))?;
    let tx = handle
        .block_on(
            client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start(),
        )
        .map_err(|e| no_doc(e.into()))?;
    let sql = PgSql {
        tx: &tx,
        runtime: handle,
    };
    let candidates = documents::compaction_candidates(&sql, skip).map_err(no_doc)?;
    let folded = documents::compact_first(&sql, &candidates)?;
    handle.block_on(tx.commit()).map_err(|e| {
        let doc = folded
            .as_ref()
            .map(|f| f.doc.to_string())
            .unwrap_or_default();
        (doc, e.into())
    })?;
    Ok(folded)
}

/// Listens for other nodes' change notices, waking `woken` for each, and
/// once more after every (re)connection, since notices sent while no
/// listener was connected are gone.
async fn listen(config: tokio_postgres::Config, woken: Arc<Notify>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (messages, mut incoming) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut stream =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = stream.next().await {
                        match message {
                            Ok(message) => {
                                if messages.send(message).is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "change listener lost its connection");
                                break;
                            }
                        }
                    }
                });
                if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    tracing::warn!(error = %e, "cannot listen for changes");
                } else {
                    backoff = Duration::from_millis(100);
                    // Whatever was sent while nobody listened.
                    woken.notify_one();
                    while let Some(message) = incoming.recv().await {
                        if let AsyncMessage::Notification(_) = message {
                            woken.notify_one();
                        }
                    }
                }
                driver.abort();
                drop(client);
            }
            Err(e) => tracing::debug!(error = %e, "change listener cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
