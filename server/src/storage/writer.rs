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
//!
//! A panic never ends the thread: jobs run automerge over what devices sent,
//! and one bad document must not stop every write of the server. A job that
//! panics fails alone ([`Error::Internal`]) with its savepoint rolled back;
//! the rest of its group still commits. A panic in a commit hook, in work
//! between batches or in compaction is logged, and the thread carries on
//! with the connection outside any transaction.

use std::any::Any;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
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
/// Compact one document every this many batches even when never idle, so
/// chunks cannot grow without bound.
pub(crate) const FORCE_COMPACT_EVERY: u64 = 64;
/// How long a writer (this thread, or a PostgreSQL node's queue thread)
/// waits for work before compacting.
pub(crate) const IDLE_TICK: Duration = Duration::from_millis(200);
/// After compaction hits trouble `n` times in a row (it panicked, or on
/// PostgreSQL the database failed it), the next `2^n` chances to compact
/// (up to `2^MAX_COMPACT_REST`, some three minutes of idle ticks) are
/// skipped. Trouble does not say which document caused it, so the same one
/// would come first every time.
pub(crate) const MAX_COMPACT_REST: u32 = 10;

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
                if let Ok(value) = &result
                    && let Err(panic) = catch_unwind(AssertUnwindSafe(|| on_commit(value)))
                {
                    // The write is durable, so the waiter still hears it
                    // went through; what the hook keeps in memory may now
                    // lag the database until the server restarts.
                    tracing::error!(panic = panic_message(&*panic), "a commit hook panicked");
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

/// Runs `work` in its own savepoint of the group transaction. A panic in
/// `work` becomes its error: the savepoint is rolled back like any failed
/// job's, so what `work` wrote before panicking is undone and the other jobs
/// of the group are unaffected.
fn in_savepoint<T>(
    tx: &mut rusqlite::Transaction<'_>,
    work: impl FnOnce(&Savepoint<'_>) -> Result<T>,
) -> Result<T> {
    let savepoint = tx.savepoint()?;
    // Unwind safety: after a panic nothing `work` touched is used again
    // except the savepoint, which is rolled back below.
    let outcome = catch_unwind(AssertUnwindSafe(|| work(&savepoint))).unwrap_or_else(|panic| {
        let reason = panic_message(&*panic);
        tracing::error!(
            panic = reason,
            "a writer job panicked; its writes are rolled back"
        );
        Err(Error::Internal(format!("writer job panicked: {reason}")))
    });
    if outcome.is_ok() {
        savepoint.commit()?;
    }
    // Dropping an uncommitted savepoint rolls it back.
    outcome
}

/// What a panic said, for the log.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Runs `work` on the connection outside a batch; a panic is logged and any
/// transaction it left open is rolled back, so the next batch can begin.
fn contained(conn: &mut Connection, what: &str, work: impl FnOnce(&mut Connection)) -> bool {
    let Err(panic) = catch_unwind(AssertUnwindSafe(|| work(&mut *conn))) else {
        return true;
    };
    tracing::error!(panic = panic_message(&*panic), "{what} panicked");
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(error = %e, "cannot roll back after the panic");
    }
    false
}

/// When a writer compacts: a chance after each [`IDLE_TICK`] without work
/// and after every [`FORCE_COMPACT_EVERY`] batches, except while it rests
/// after trouble (see [`MAX_COMPACT_REST`]). Shared by the SQLite writer
/// thread and each PostgreSQL node's queue thread, so both pace alike.
#[derive(Debug, Default)]
pub(crate) struct CompactionPace {
    batches: u64,
    troubles_in_a_row: u32,
    rest: u64,
}

impl CompactionPace {
    /// Counts one batch of writes; `true` when it is time for a chance to
    /// compact even though the writer is not idle.
    pub(crate) fn after_batch(&mut self) -> bool {
        self.batches += 1;
        self.batches.is_multiple_of(FORCE_COMPACT_EVERY)
    }

    /// Whether this chance to compact is taken; a chance passed over while
    /// resting shortens the rest.
    pub(crate) fn due(&mut self) -> bool {
        if self.rest > 0 {
            self.rest -= 1;
            return false;
        }
        true
    }

    /// The pass ran (whether or not it found a document to compact).
    pub(crate) fn went_fine(&mut self) {
        self.troubles_in_a_row = 0;
    }

    /// The pass hit trouble that is not one document's: rest for twice as
    /// many chances as after the last trouble in a row.
    pub(crate) fn hit_trouble(&mut self) {
        self.troubles_in_a_row = self.troubles_in_a_row.saturating_add(1);
        self.rest = 1 << self.troubles_in_a_row.min(MAX_COMPACT_REST);
    }
}

/// Compacts one document at a time, remembering documents that failed and
/// resting after panics.
struct Compaction<F> {
    compact: F,
    failed: HashSet<String>,
    pace: CompactionPace,
}

impl<F: FnMut(&mut Connection, &HashSet<String>) -> CompactOutcome> Compaction<F> {
    fn new(compact: F) -> Self {
        Compaction {
            compact,
            failed: HashSet::new(),
            pace: CompactionPace::default(),
        }
    }

    /// One chance to compact a document.
    fn one(&mut self, conn: &mut Connection) {
        if !self.pace.due() {
            return;
        }
        let mut outcome = CompactOutcome::Nothing;
        let compact = &mut self.compact;
        let failed = &self.failed;
        if contained(conn, "compaction", |conn| outcome = compact(conn, failed)) {
            self.pace.went_fine();
            if let CompactOutcome::Failed(doc) = outcome {
                self.failed.insert(doc);
            }
        } else {
            self.pace.hit_trouble();
        }
    }
}

fn run(
    conn: &mut Connection,
    queue: mpsc::Receiver<Command>,
    compact: impl FnMut(&mut Connection, &HashSet<String>) -> CompactOutcome,
    commits: &AtomicU64,
) {
    let mut compaction = Compaction::new(compact);
    let mut stopping = false;
    while !stopping {
        let first = match queue.recv_timeout(IDLE_TICK) {
            Ok(command) => command,
            Err(RecvTimeoutError::Timeout) => {
                compaction.one(conn);
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
        }
        for work in between {
            contained(conn, "work between batches", work);
        }
        if wrote && compaction.pace.after_batch() && !stopping {
            compaction.one(conn);
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc::Receiver;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(30);

    /// A database file in `dir` with one table of numbers.
    fn database(dir: &tempfile::TempDir) -> (std::path::PathBuf, Connection) {
        let path = dir.path().join("writer.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE numbers (n INTEGER);")
            .unwrap();
        (path, conn)
    }

    fn numbers(path: &std::path::Path) -> Vec<i64> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn.prepare("SELECT n FROM numbers ORDER BY n").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn insert(writer: &Writer, n: i64, then_panic: bool) -> oneshot::Receiver<Result<()>> {
        writer
            .submit(move |sp| {
                sp.execute("INSERT INTO numbers VALUES (?1)", [n])?;
                assert!(!then_panic, "job {n} panics after writing");
                Ok(())
            })
            .unwrap()
    }

    /// Holds the writer thread inside a job until the returned sender is
    /// used, so that jobs submitted meanwhile form the next group commit.
    fn hold(writer: &Writer) -> (mpsc::Sender<()>, oneshot::Receiver<Result<()>>) {
        let (started_tx, started): (_, Receiver<()>) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let done = writer
            .submit(move |sp| {
                started_tx.send(()).unwrap();
                release_rx.recv_timeout(PATIENCE).unwrap();
                sp.execute("INSERT INTO numbers VALUES (0)", [])?;
                Ok(())
            })
            .unwrap();
        started.recv_timeout(PATIENCE).unwrap();
        (release, done)
    }

    /// How many chances `pace` passes over before it takes one.
    fn chances_passed_over(pace: &mut CompactionPace) -> u64 {
        let mut passed = 0;
        while !pace.due() {
            passed += 1;
            assert!(passed <= 1 << MAX_COMPACT_REST, "the rest never ends");
        }
        passed
    }

    #[test]
    fn compaction_pace_rests_twice_as_long_after_each_trouble_in_a_row() {
        let mut pace = CompactionPace::default();
        assert_eq!(chances_passed_over(&mut pace), 0, "no rest before trouble");
        for n in 1..=MAX_COMPACT_REST + 2 {
            pace.hit_trouble();
            assert_eq!(
                chances_passed_over(&mut pace),
                1 << n.min(MAX_COMPACT_REST),
                "after {n} troubles in a row"
            );
        }
        pace.went_fine();
        pace.hit_trouble();
        assert_eq!(
            chances_passed_over(&mut pace),
            2,
            "a pass that went fine starts the count again"
        );
    }

    #[test]
    fn compaction_pace_forces_a_chance_every_so_many_batches() {
        let mut pace = CompactionPace::default();
        let forced: Vec<u64> = (1..=3 * FORCE_COMPACT_EVERY)
            .filter(|_| pace.after_batch())
            .collect();
        assert_eq!(
            forced,
            [
                FORCE_COMPACT_EVERY,
                2 * FORCE_COMPACT_EVERY,
                3 * FORCE_COMPACT_EVERY
            ]
        );
    }

    #[test]
    fn a_panicking_job_fails_alone_and_the_writer_keeps_serving() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = database(&dir);
        let writer = Writer::start(conn, |_, _| CompactOutcome::Nothing).unwrap();

        let (release, held) = hold(&writer);
        let before = insert(&writer, 1, false);
        let panics = insert(&writer, 2, true);
        let after = insert(&writer, 3, false);
        release.send(()).unwrap();

        held.blocking_recv().unwrap().unwrap();
        before.blocking_recv().unwrap().unwrap();
        match panics.blocking_recv().unwrap() {
            Err(e @ Error::Internal(_)) => {
                assert!(e.to_string().contains("writer job panicked"), "{e}");
                assert_eq!(e.code(), "server.internal");
            }
            other => panic!("expected the panicking job to fail, got {other:?}"),
        }
        after.blocking_recv().unwrap().unwrap();
        assert_eq!(
            writer.commits(),
            2,
            "jobs 1 to 3 were one group commit after the held one"
        );

        insert(&writer, 4, false).blocking_recv().unwrap().unwrap();
        assert_eq!(writer.commits(), 3);
        writer.stop();
        assert_eq!(
            numbers(&path),
            [0, 1, 3, 4],
            "what the panicking job wrote was rolled back, nothing else"
        );
    }

    #[test]
    fn panics_in_compaction_and_between_batches_leave_the_writer_serving() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = database(&dir);
        let (compacting, compacted) = mpsc::channel();
        let writer = Writer::start(conn, move |conn, _| {
            // Left open by the panic: the writer must roll it back, or its
            // next group transaction could not begin.
            conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO numbers VALUES (99);")
                .unwrap();
            let _ = compacting.send(());
            panic!("compaction panics");
        })
        .unwrap();

        compacted.recv_timeout(PATIENCE).unwrap();
        insert(&writer, 1, false).blocking_recv().unwrap().unwrap();

        writer
            .between(|conn| {
                conn.execute_batch("BEGIN; INSERT INTO numbers VALUES (98);")
                    .unwrap();
                panic!("work between batches panics");
            })
            .unwrap();
        insert(&writer, 2, false).blocking_recv().unwrap().unwrap();
        insert(&writer, 3, false).blocking_recv().unwrap().unwrap();
        writer.stop();
        assert_eq!(numbers(&path), [1, 2, 3]);
    }
}
