//! Observers: how the app hears about sync status, arriving changes, conflicts,
//! refused changes and errors without polling.
//!
//! The app registers an object implementing one of the callback interfaces below and
//! keeps the returned [`ObserverHandle`]; `cancel` unregisters it, and dropping the
//! client drops every observer. Callbacks run on one of the library's threads (only
//! the current status, told at registration, comes on the registering thread): they
//! should hand the news to the UI thread and return quickly.
//!
//! The [`Hub`] holds the observers and the status line. Its locks only guard plain
//! values (lists, the last status), which stay consistent even if a thread panicked
//! while holding them, so a poisoned lock is recovered rather than reported: there
//! is no caller to report it to.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

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
    /// Unregisters the observer; it hears nothing more. Calling it twice is harmless.
    pub fn cancel(&self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.remove(self.id);
        }
    }
}

type List<T> = Mutex<Vec<(u64, Arc<T>)>>;

/// The registered observers and the status line they are told about.
pub(crate) struct Hub {
    next_id: AtomicU64,
    status_observers: List<dyn SyncStatusObserver>,
    document_observers: List<dyn DocumentsObserver>,
    conflict_observers: List<dyn ConflictsObserver>,
    error_observers: List<dyn ErrorObserver>,
    rejection_observers: List<dyn RejectionsObserver>,
    status: Mutex<SyncStatus>,
    last_conflicts: Mutex<Option<Vec<Conflict>>>,
    /// Wakes the task that recomputes the status line.
    pub(crate) refresh: Notify,
}

fn guard<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Calls every observer of a list, outside the lock; a panicking observer is
/// skipped, so it cannot stop the others or the task calling them.
fn each<T: ?Sized>(list: &List<T>, call: impl Fn(&T)) {
    let observers: Vec<Arc<T>> = guard(list).iter().map(|(_, o)| Arc::clone(o)).collect();
    for observer in observers {
        if catch_unwind(AssertUnwindSafe(|| call(&observer))).is_err() {
            tracing::warn!("an observer panicked");
        }
    }
}

impl Hub {
    /// A hub for a client whose store holds `pending_changes` and was last in
    /// sync at `last_sync_ms` (kept in the store across restarts).
    pub(crate) fn new(pending_changes: u64, last_sync_ms: Option<i64>) -> Self {
        Hub {
            next_id: AtomicU64::new(1),
            status_observers: Mutex::default(),
            document_observers: Mutex::default(),
            conflict_observers: Mutex::default(),
            error_observers: Mutex::default(),
            rejection_observers: Mutex::default(),
            status: Mutex::new(SyncStatus {
                state: SyncState::Stopped,
                pending_changes,
                last_sync_ms,
            }),
            last_conflicts: Mutex::default(),
            refresh: Notify::new(),
        }
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

    pub(crate) fn add_status(
        self: &Arc<Self>,
        observer: Arc<dyn SyncStatusObserver>,
    ) -> Arc<ObserverHandle> {
        let id = self.next_id();
        guard(&self.status_observers).push((id, Arc::clone(&observer)));
        let status = self.status();
        if catch_unwind(AssertUnwindSafe(|| observer.on_status(status))).is_err() {
            tracing::warn!("an observer panicked");
        }
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

    fn remove(&self, id: u64) {
        guard(&self.status_observers).retain(|(i, _)| *i != id);
        guard(&self.document_observers).retain(|(i, _)| *i != id);
        guard(&self.conflict_observers).retain(|(i, _)| *i != id);
        guard(&self.error_observers).retain(|(i, _)| *i != id);
        guard(&self.rejection_observers).retain(|(i, _)| *i != id);
    }

    /// Drops every observer, releasing the app's objects.
    pub(crate) fn clear(&self) {
        guard(&self.status_observers).clear();
        guard(&self.document_observers).clear();
        guard(&self.conflict_observers).clear();
        guard(&self.error_observers).clear();
        guard(&self.rejection_observers).clear();
    }

    /// The status line as last computed.
    pub(crate) fn status(&self) -> SyncStatus {
        guard(&self.status).clone()
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

    /// Updates the pending count and tells status observers if anything changed
    /// since they were last told.
    pub(crate) fn publish_status(&self, pending_changes: u64, told: &mut Option<SyncStatus>) {
        let status = {
            let mut status = guard(&self.status);
            status.pending_changes = pending_changes;
            status.clone()
        };
        if told.as_ref() != Some(&status) {
            *told = Some(status.clone());
            each(&self.status_observers, |o| o.on_status(status.clone()));
        }
    }

    pub(crate) fn documents_changed(&self, doc_ids: Vec<String>) {
        each(&self.document_observers, |o| {
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
        each(&self.conflict_observers, |o| {
            o.on_conflicts(conflicts.clone())
        });
    }

    pub(crate) fn error(&self, error: BranchlineError) {
        each(&self.error_observers, |o| {
            o.on_error(error.clone());
        });
    }

    pub(crate) fn rejected(&self, rejection: Rejection) {
        each(&self.rejection_observers, |o| {
            o.on_rejected(rejection.clone());
        });
    }
}
