//! How [`super::Storage`] reaches its database: reads, durable writes,
//! queued writes, and work that must not interleave with this process's
//! writes. The embedded SQLite database ([`SqliteDb`]) and a PostgreSQL
//! server ([`crate::postgres::PgDb`]) implement it; everything above it
//! (the catalog, the document cache, the sync step, the rules) is one code.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;
use tokio::sync::Notify;

use super::documents;
use super::writer::Writer;
use crate::db;
use crate::error::{Error, Result};
use crate::sql::Sql;

/// A database the storage runs on.
pub(crate) trait Database: Send + Sync + 'static {
    /// Runs `f` in a read-only transaction: one consistent snapshot.
    fn read<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T>;

    /// Runs `work` in a write transaction and returns once it committed
    /// durably. `on_commit` runs right after the commit, before this
    /// returns; on SQLite, in the order of the commits.
    fn write_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Sql) -> Result<T> + Send + 'static,
        on_commit: impl FnOnce(&T) + Send + 'static,
    ) -> Result<T>;

    /// [`Database::write_with`] with nothing to run after the commit.
    fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Sql) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.write_with(work, |_| {})
    }

    /// Queues a write nobody waits for; a crash may lose it.
    fn queue(&self, work: impl FnOnce(&dyn Sql) -> Result<()> + Send + 'static);

    /// Runs `work` in a read transaction that no write of this process
    /// interleaves with (SQLite: on the writer thread, between batches),
    /// for picking up what other processes wrote.
    fn between<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Sql) -> Result<T> + Send + 'static,
    ) -> Result<T>;

    /// Finishes queued writes and stops background work (blocking).
    fn stop(&self);

    /// Fires when another process may have written: poll soon. `None`
    /// when only the interval tells (SQLite: the admin CLI's writes).
    fn woken(&self) -> Option<Arc<Notify>> {
        None
    }
}

/// The embedded SQLite database: one writer thread with group commit, and
/// pooled read connections.
pub(crate) struct SqliteDb {
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
}

impl SqliteDb {
    /// Opens (creating and migrating) the database at `path`; returns it
    /// with a connection for the first reads.
    pub(crate) fn open(path: &Path) -> Result<(SqliteDb, Connection)> {
        let conn = db::open(path)?;
        let writer = Writer::start(db::open(path)?, documents::compact_one)?;
        Ok((
            SqliteDb {
                writer,
                readers: Mutex::new(Vec::new()),
                path: path.to_owned(),
            },
            conn,
        ))
    }

    /// The writer thread.
    #[cfg(test)]
    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }
}

impl Database for SqliteDb {
    fn read<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => db::open_reader(&self.path)?,
        };
        let result = (|| {
            let tx = conn.transaction()?;
            let out = f(&tx)?;
            tx.finish()?;
            Ok(out)
        })();
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < 16 {
            readers.push(conn);
        }
        result
    }

    fn write_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Sql) -> Result<T> + Send + 'static,
        on_commit: impl FnOnce(&T) + Send + 'static,
    ) -> Result<T> {
        self.writer
            .submit_with(move |savepoint| work(savepoint), on_commit)?
            .blocking_recv()
            .map_err(|_| Error::WriterStopped)?
    }

    fn queue(&self, work: impl FnOnce(&dyn Sql) -> Result<()> + Send + 'static) {
        let _ = self.writer.submit(move |savepoint| work(savepoint));
    }

    fn between<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Sql) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.writer.between(move |conn| {
            let _ = reply.send(work(conn));
        })?;
        outcome.blocking_recv().map_err(|_| Error::WriterStopped)?
    }

    fn stop(&self) {
        self.writer.stop();
    }
}
