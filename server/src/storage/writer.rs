//! The one thread that writes to the database, with group commit.
//!
//! Every write is a job sent to this thread. The thread takes everything
//! queued, runs each job in its own savepoint inside one transaction, commits
//! once (one fsync for the whole group), and only then tells each waiter how
//! its job went. A job that fails rolls back its own savepoint and leaves the
//! others alone. After a commit, jobs' `on_commit` hooks run on this thread,
//! in commit order, which is how the in-memory catalog and the change
//! broadcast stay in the order of the database.
//!
//! When the queue is empty the thread compacts documents whose appended
//! chunks outgrew their snapshot, one at a time, so compaction never delays
//! an `Ack`. Under constant load it still compacts one document every
//! [`FORCE_COMPACT_EVERY`] batches, so chunks cannot grow without bound.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, Savepoint, TransactionBehavior};
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Runs after the group commit: `Ok` if the job's savepoint was committed.
type Finisher = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job: runs inside the group transaction and returns what to do after
/// the commit.
type Job = Box<dyn FnOnce(&mut rusqlite::Transaction<'_>) -> Finisher + Send>;
/// Work that must see the database between batches, outside any
/// transaction (polling for rows written by other processes).
type Between = Box<dyn FnOnce(&mut Connection) + Send>;

enum Command {
    Job(Job),
    Between(Between),
    Stop,
}

/// The largest number of jobs committed together.
const MAX_BATCH: usize = 512;
/// Compact one document every this many batches even when never idle.
const FORCE_COMPACT_EVERY: u64 = 64;
/// How long the thread waits for work before compacting.
const IDLE_TICK: Duration = Duration::from_millis(200);

/// A handle to the writer thread.
pub(crate) struct Writer {
    commands: mpsc::Sender<Command>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Group commits so far (one per batch of jobs).
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer thread on `conn`; `compact` compacts one document
    /// and says whether there was one to compact.
    pub(crate) fn start(
        mut conn: Connection,
        compact: impl FnMut(&mut Connection, &HashSet<String>) -> CompactOutcome + Send + 'static,
    ) -> Result<Writer> {
        let (commands, queue) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        let thread = std::thread::Builder::new()
            .name("branchline-writer".into())
            .spawn(move || run(&mut conn, queue, compact, &counter))?;
        Ok(Writer {
            commands,
            thread: std::sync::Mutex::new(Some(thread)),
            commits,
        })
    }

    /// How many group commits the writer has made.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Queues `work` and returns where its result will arrive, after the
    /// commit that made it durable. `on_commit` runs on the writer thread
    /// right after that commit, before the result is delivered.
    pub(crate) fn submit_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Savepoint<'_>) -> Result<T> + Send + 'static,
        on_commit: impl FnOnce(&T) + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T>>> {
        let (reply, receiver) = oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let outcome = in_savepoint(tx, work);
            Box::new(move |committed| {
                let result = match committed {
                    Ok(()) => outcome,
                    Err(e) => outcome.and(Err(Error::CommitFailed(e))),
                };
                if let Ok(value) = &result {
                    on_commit(value);
                }
                // The waiter may have given up (its connection closed); the
                // write is durable all the same.
                let _ = reply.send(result);
            })
        });
        self.commands
            .send(Command::Job(job))
            .map_err(|_| Error::WriterStopped)?;
        Ok(receiver)
    }

    /// Queues `work` with no commit hook.
    pub(crate) fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Savepoint<'_>) -> Result<T> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T>>> {
        self.submit_with(work, |_| {})
    }

    /// Runs `work` on the writer thread between two batches.
    pub(crate) fn between(
        &self,
        work: impl FnOnce(&mut Connection) + Send + 'static,
    ) -> Result<()> {
        self.commands
            .send(Command::Between(Box::new(work)))
            .map_err(|_| Error::WriterStopped)
    }

    /// Finishes every queued job, then stops the thread and waits for it.
    pub(crate) fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the storage writer thread panicked");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What one compaction attempt found.
pub(crate) enum CompactOutcome {
    /// Nothing needed compacting.
    Nothing,
    /// One document was compacted.
    Compacted,
    /// This document could not be compacted; do not try it again.
    Failed(String),
}

fn in_savepoint<T>(
    tx: &mut rusqlite::Transaction<'_>,
    work: impl FnOnce(&Savepoint<'_>) -> Result<T>,
) -> Result<T> {
    let savepoint = tx.savepoint()?;
    let outcome = work(&savepoint);
    if outcome.is_ok() {
        savepoint.commit()?;
    }
    // Dropping an uncommitted savepoint rolls it back.
    outcome
}

fn run(
    conn: &mut Connection,
    queue: mpsc::Receiver<Command>,
    mut compact: impl FnMut(&mut Connection, &HashSet<String>) -> CompactOutcome,
    commits: &AtomicU64,
) {
    let mut failed_compactions = HashSet::new();
    let mut compact_one = |conn: &mut Connection| -> bool {
        match compact(conn, &failed_compactions) {
            CompactOutcome::Nothing => false,
            CompactOutcome::Compacted => true,
            CompactOutcome::Failed(doc) => {
                failed_compactions.insert(doc);
                true
            }
        }
    };
    let mut batches: u64 = 0;
    let mut stopping = false;
    while !stopping {
        let first = match queue.recv_timeout(IDLE_TICK) {
            Ok(command) => command,
            Err(RecvTimeoutError::Timeout) => {
                compact_one(conn);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut jobs = Vec::new();
        let mut between = Vec::new();
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Job(job) => jobs.push(job),
                Command::Between(work) => between.push(work),
                Command::Stop => stopping = true,
            }
            if jobs.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        let wrote = !jobs.is_empty();
        if wrote {
            commit_group(conn, jobs, commits);
            batches += 1;
        }
        for work in between {
            work(conn);
        }
        if !stopping && wrote && batches.is_multiple_of(FORCE_COMPACT_EVERY) {
            compact_one(conn);
        }
    }
    // Jobs queued after Stop are dropped with the queue: their waiters see
    // the writer as stopped.
}

fn commit_group(conn: &mut Connection, jobs: Vec<Job>, commits: &AtomicU64) {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            // Dropping the jobs drops their reply channels: every waiter
            // gets an error and nothing was acknowledged.
            tracing::error!(error = %e, dropped = jobs.len(), "cannot begin a write transaction");
            return;
        }
    };
    let finishers: Vec<Finisher> = jobs.into_iter().map(|job| job(&mut tx)).collect();
    let committed = tx.commit().map_err(|e| {
        tracing::error!(error = %e, "group commit failed");
        e.to_string()
    });
    // Counted before any waiter hears back, so a waiter sees its commit.
    commits.fetch_add(1, Ordering::Relaxed);
    for finish in finishers {
        finish(committed.clone());
    }
}
