//! Observers: how the app hears about sync status, arriving changes, conflicts,
//! refused changes and errors without polling.
//!
//! The app registers an object implementing one of the callback interfaces below and
//! keeps the returned [`ObserverHandle`]; `cancel` unregisters it, and dropping the
//! client drops every observer. Callbacks run on one of the library's threads, never
//! on the caller's thread inside a call (the current status, told at registration,
//! comes a moment later like any other): they should hand the news to the UI thread
//! and return quickly.
//!
//! The [`Hub`] holds the observers and the status line. Its locks only guard plain
//! values (lists, the last status), which stay consistent even if a thread panicked
//! while holding them, so a poisoned lock is recovered rather than reported: there
//! is no caller to report it to.
//!
//! Closing the hub (when the client is dropped) stops every callback for good,
//! waits for those under way, and releases the app's objects on the closing thread.
//! That matters when the app's runtime is going away: a Python interpreter that is
//! finalizing ends any other thread that calls into it, and ending a library thread
//! that way aborts the process, so no callback may start once the client is being
//! dropped, and no library thread may hold the last reference to an observer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::error::BranchlineError;
use crate::records::{Conflict, Rejection, SyncState, SyncStatus};

/// Told every change of the sync status line.
#[uniffi::export(callback_interface)]
pub trait SyncStatusObserver: Send + Sync {
    /// The status changed (also called once with the current status on registration).
    fn on_status(&self, status: SyncStatus);
}

/// Told when documents changed through sync (changes from other devices).
#[uniffi::export(callback_interface)]
pub trait DocumentsObserver: Send + Sync {
    /// These documents were updated with changes from the server; reload what shows
    /// them. Edits made through this client are not reported: the call that made
    /// them has returned.
    fn on_documents_changed(&self, doc_ids: Vec<String>);
}

/// Told when the list of conflicts to settle changed.
#[uniffi::export(callback_interface)]
pub trait ConflictsObserver: Send + Sync {
    /// The full, current list of conflicts (empty once all are settled).
    fn on_conflicts(&self, conflicts: Vec<Conflict>);
}

/// Told about failures in the background, where no call can return them.
#[uniffi::export(callback_interface)]
pub trait ErrorObserver: Send + Sync {
    /// A background failure: a document the server refused, a lost connection, the
    /// device being refused for good.
    fn on_error(&self, error: BranchlineError);
}

/// Told when the server refused a change made on this device, and the device
/// dropped it.
#[uniffi::export(callback_interface)]
pub trait RejectionsObserver: Send + Sync {
    /// A change was refused and dropped (the document now lacks it); the same
    /// record is in `rejections()` after a restart. Error observers hear it too,
    /// as a `Refused` error with the same code.
    fn on_rejected(&self, rejection: Rejection);
}

/// The app's registration of one observer.
#[derive(uniffi::Object)]
pub struct ObserverHandle {
    hub: Weak<Hub>,
    id: u64,
}

#[uniffi::export]
impl ObserverHandle {
    /// Unregisters the observer; it hears nothing more. Once this returns, no
    /// callback of the client is still under way either (it waits for one that had
    /// started, a few seconds at most), so the app may let go of the observer, or
    /// exit, without a library thread calling into it later. Called from a callback
    /// it cannot wait for that callback, and does not. Calling it twice is harmless.
    pub fn cancel(&self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.remove(self.id);
            if tokio::runtime::Handle::try_current().is_err() {
                hub.settle(CANCEL_PATIENCE);
            }
        }
    }
}

type List<T> = Mutex<Vec<(u64, Arc<T>)>>;

/// How long `cancel` waits for callbacks under way to return.
const CANCEL_PATIENCE: Duration = Duration::from_secs(5);

/// A status observer, and whether it has been told the status since it registered.
struct StatusEntry {
    id: u64,
    observer: Arc<dyn SyncStatusObserver>,
    told: bool,
}

/// Rounds of callbacks under way (by number, in the order they started), and
/// whether the hub still makes them.
#[derive(Default)]
struct Calls {
    next: u64,
    under_way: Vec<u64>,
    closed: bool,
}

/// One round of callbacks, counted as under way until it is dropped.
struct Round<'a> {
    hub: &'a Hub,
    number: u64,
}

impl Drop for Round<'_> {
    fn drop(&mut self) {
        guard(&self.hub.calls)
            .under_way
            .retain(|n| *n != self.number);
        self.hub.calls_done.notify_all();
    }
}

/// The registered observers and the status line they are told about.
pub(crate) struct Hub {
    next_id: AtomicU64,
    status_observers: Mutex<Vec<StatusEntry>>,
    document_observers: List<dyn DocumentsObserver>,
    conflict_observers: List<dyn ConflictsObserver>,
    error_observers: List<dyn ErrorObserver>,
    rejection_observers: List<dyn RejectionsObserver>,
    status: Mutex<SyncStatus>,
    last_conflicts: Mutex<Option<Vec<Conflict>>>,
    /// Wakes the task that recomputes the status line.
    pub(crate) refresh: Notify,
    calls: Mutex<Calls>,
    calls_done: Condvar,
}

fn guard<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the entries of `list` that `matches` out of it.
fn take_out<T>(list: &Mutex<Vec<T>>, matches: impl Fn(&T) -> bool) -> Vec<T> {
    let mut list = guard(list);
    let (gone, kept) = std::mem::take(&mut *list).into_iter().partition(matches);
    *list = kept;
    gone
}

/// Calls `observers` one by one; a panicking observer is skipped, so it cannot stop
/// the others or the task calling them.
fn call_each<T: ?Sized>(observers: &[Arc<T>], call: impl Fn(&T)) {
    for observer in observers {
        if catch_unwind(AssertUnwindSafe(|| call(observer))).is_err() {
            tracing::warn!("an observer panicked");
        }
    }
}

impl Hub {
    /// A hub for a client whose store holds `pending_changes`, was last in sync at
    /// `last_sync_ms` and was revoked at `revoked_at_ms`, if it was (all kept in the
    /// store across restarts).
    pub(crate) fn new(
        pending_changes: u64,
        last_sync_ms: Option<i64>,
        revoked_at_ms: Option<i64>,
    ) -> Self {
        Hub {
            next_id: AtomicU64::new(1),
            status_observers: Mutex::default(),
            document_observers: Mutex::default(),
            conflict_observers: Mutex::default(),
            error_observers: Mutex::default(),
            rejection_observers: Mutex::default(),
            status: Mutex::new(SyncStatus {
                state: SyncState::Stopped { failure: None },
                pending_changes,
                last_sync_ms,
                revoked_at_ms,
            }),
            last_conflicts: Mutex::default(),
            refresh: Notify::new(),
            calls: Mutex::default(),
            calls_done: Condvar::new(),
        }
    }

    /// Starts a round of callbacks, unless the hub is closed.
    fn round(&self) -> Option<Round<'_>> {
        let mut calls = guard(&self.calls);
        if calls.closed {
            return None;
        }
        let number = calls.next;
        calls.next += 1;
        calls.under_way.push(number);
        Some(Round { hub: self, number })
    }

    /// Waits (`patience` at most) until the rounds of callbacks under way now have
    /// returned; rounds that start meanwhile are not waited for.
    fn settle(&self, patience: Duration) {
        let calls = guard(&self.calls);
        self.settle_from(calls, patience);
    }

    fn settle_from(&self, mut calls: MutexGuard<'_, Calls>, patience: Duration) {
        let mark = calls.next;
        let deadline = Instant::now() + patience;
        while calls.under_way.iter().any(|n| *n < mark) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("an observer did not return in time; not waiting for it");
                return;
            }
            calls = self
                .calls_done
                .wait_timeout(calls, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Calls every observer of a list, outside the lock, unless the hub is closed.
    fn each<T: ?Sized>(&self, list: &List<T>, call: impl Fn(&T)) {
        let Some(round) = self.round() else {
            return;
        };
        let observers: Vec<Arc<T>> = guard(list).iter().map(|(_, o)| Arc::clone(o)).collect();
        call_each(&observers, call);
        // Before the round ends: once the hub is closed, the last reference to an
        // observer must be released by the thread that closed it.
        drop(observers);
        drop(round);
    }

    fn handle(self: &Arc<Self>, id: u64) -> Arc<ObserverHandle> {
        Arc::new(ObserverHandle {
            hub: Arc::downgrade(self),
            id,
        })
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a status observer; the task that refreshes the status line tells
    /// it the current status, on a library thread, before any later change.
    pub(crate) fn add_status(
        self: &Arc<Self>,
        observer: Arc<dyn SyncStatusObserver>,
    ) -> Arc<ObserverHandle> {
        let id = self.next_id();
        guard(&self.status_observers).push(StatusEntry {
            id,
            observer,
            told: false,
        });
        self.refresh.notify_one();
        self.handle(id)
    }

    pub(crate) fn add_documents(
        self: &Arc<Self>,
        observer: Arc<dyn DocumentsObserver>,
    ) -> Arc<ObserverHandle> {
        let id = self.next_id();
        guard(&self.document_observers).push((id, observer));
        self.handle(id)
    }

    pub(crate) fn add_conflicts(
        self: &Arc<Self>,
        observer: Arc<dyn ConflictsObserver>,
    ) -> Arc<ObserverHandle> {
        let id = self.next_id();
        guard(&self.conflict_observers).push((id, observer));
        self.handle(id)
    }

    pub(crate) fn add_errors(
        self: &Arc<Self>,
        observer: Arc<dyn ErrorObserver>,
    ) -> Arc<ObserverHandle> {
        let id = self.next_id();
        guard(&self.error_observers).push((id, observer));
        self.handle(id)
    }

    pub(crate) fn add_rejections(
        self: &Arc<Self>,
        observer: Arc<dyn RejectionsObserver>,
    ) -> Arc<ObserverHandle> {
        let id = self.next_id();
        guard(&self.rejection_observers).push((id, observer));
        self.handle(id)
    }

    /// Unregisters observer `id`, releasing it outside the locks: releasing an
    /// app's object calls into the app.
    fn remove(&self, id: u64) {
        let status = take_out(&self.status_observers, |e| e.id == id);
        let documents = take_out(&self.document_observers, |(i, _)| *i == id);
        let conflicts = take_out(&self.conflict_observers, |(i, _)| *i == id);
        let errors = take_out(&self.error_observers, |(i, _)| *i == id);
        let rejections = take_out(&self.rejection_observers, |(i, _)| *i == id);
        drop((status, documents, conflicts, errors, rejections));
    }

    /// Stops every callback for good and drops every observer, releasing the app's
    /// objects on this thread. With `patience`, first waits (that long at most) for
    /// callbacks under way to return; a thread that may itself be making one must
    /// not wait.
    pub(crate) fn close(&self, patience: Option<Duration>) {
        let mut calls = guard(&self.calls);
        calls.closed = true;
        match patience {
            Some(patience) => self.settle_from(calls, patience),
            None => drop(calls),
        }
        // Taken out under the lock, dropped outside it: releasing an app's object
        // calls into the app.
        let status = std::mem::take(&mut *guard(&self.status_observers));
        let documents = std::mem::take(&mut *guard(&self.document_observers));
        let conflicts = std::mem::take(&mut *guard(&self.conflict_observers));
        let errors = std::mem::take(&mut *guard(&self.error_observers));
        let rejections = std::mem::take(&mut *guard(&self.rejection_observers));
        drop((status, documents, conflicts, errors, rejections));
    }

    /// The status line as last computed.
    pub(crate) fn status(&self) -> SyncStatus {
        guard(&self.status).clone()
    }

    /// Records when the server revoked this device (none: it was not, or it
    /// enrolled again); observers hear of it at the next publish.
    pub(crate) fn set_revoked(&self, revoked_at_ms: Option<i64>) {
        guard(&self.status).revoked_at_ms = revoked_at_ms;
    }

    /// Records what sync is doing; observers hear of it at the next refresh.
    pub(crate) fn set_state(&self, state: SyncState, now_ms: i64) {
        let mut status = guard(&self.status);
        if state == SyncState::Idle {
            status.last_sync_ms = Some(now_ms);
        }
        status.state = state;
        drop(status);
        self.refresh.notify_one();
    }

    /// Updates the pending count (unless it could not be counted) and tells status
    /// observers if anything changed since they were last told, and observers that
    /// registered since the last time the current status. Only the task that
    /// refreshes the status line calls this, so observers hear statuses in order.
    pub(crate) fn publish_status(
        &self,
        pending_changes: Option<u64>,
        told: &mut Option<SyncStatus>,
    ) {
        let Some(round) = self.round() else {
            return;
        };
        let status = {
            let mut status = guard(&self.status);
            if let Some(pending) = pending_changes {
                status.pending_changes = pending;
            }
            status.clone()
        };
        let changed = told.as_ref() != Some(&status);
        let observers: Vec<Arc<dyn SyncStatusObserver>> = guard(&self.status_observers)
            .iter_mut()
            .filter_map(|entry| {
                let call = changed || !entry.told;
                entry.told = true;
                call.then(|| Arc::clone(&entry.observer))
            })
            .collect();
        *told = Some(status.clone());
        call_each(&observers, |o| o.on_status(status.clone()));
        drop(observers);
        drop(round);
    }

    pub(crate) fn documents_changed(&self, doc_ids: Vec<String>) {
        self.each(&self.document_observers, |o| {
            o.on_documents_changed(doc_ids.clone())
        });
    }

    /// Tells conflict observers the current list, if it differs from the last one.
    pub(crate) fn conflicts(&self, conflicts: Vec<Conflict>) {
        {
            let mut last = guard(&self.last_conflicts);
            if last.as_ref() == Some(&conflicts) {
                return;
            }
            *last = Some(conflicts.clone());
        }
        self.each(&self.conflict_observers, |o| {
            o.on_conflicts(conflicts.clone())
        });
    }

    pub(crate) fn error(&self, error: BranchlineError) {
        self.each(&self.error_observers, |o| {
            o.on_error(error.clone());
        });
    }

    pub(crate) fn rejected(&self, rejection: Rejection) {
        self.each(&self.rejection_observers, |o| {
            o.on_rejected(rejection.clone());
        });
    }
}
