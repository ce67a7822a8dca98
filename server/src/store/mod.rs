//! What the server core needs from storage, as small traits a backend
//! implements.
//!
//! [`crate::core::ServerCore`] speaks only these traits, so a backend is
//! chosen once, when the server opens its data: the embedded SQLite
//! backend (`crate::storage`) now, PostgreSQL next. No database type
//! appears in them, and every backend runs the one conformance suite
//! (`store::conformance`, in the tests).
//!
//! The promises every backend keeps:
//!
//! - **Durable before it is told.** A call that stores something returns
//!   only after the write committed (for SQLite: the group commit's fsync),
//!   so the core never acknowledges what a crash could take back. The few
//!   writes marked *queued* (audit rows for refusals, a device's last-seen
//!   time) may be lost in a crash; nothing a device relies on depends on
//!   them.
//! - **Invariants in the store.** "One feedback box per branch" and "at
//!   most N petitions per device per day" hold however many requests (or
//!   server processes) race: the check and the write are one transaction
//!   ([`CreateGuard`]). Heads only move forward: a write built on heads
//!   the store no longer holds fails instead of overwriting them.
//! - **Every change announced.** Each stored document change gets a write
//!   position and reaches every subscriber of [`ChangeFeed`] once, in the
//!   order of those positions; a subscriber that falls behind is told so
//!   and catches up with [`ChangeFeed::changed_since`].
//! - **No panic escapes.** Automerge work on bytes a device sent is
//!   contained; it fails the one document or job.

#[cfg(test)]
pub(crate) mod conformance;

use std::sync::Arc;
use std::time::Duration;

use automerge::{ActorId, AutoCommit, sync};
use branchline_protocol::manifest::Manifest;
use branchline_protocol::{
    BranchId, ChangeRejection, DeviceId, DeviceSecret, DocId, ErrorCode, Heads, MemberId, Message,
    Role,
};
use tokio::sync::broadcast;

use crate::access::{Access, DocAttributes, Principal};
pub use crate::audit::AuditRecord;
pub use crate::auth::{AuthFailure, DeviceRecord, NewInvite};
use crate::error::Result;

/// Milliseconds since the Unix epoch: the time the core passes in.
pub type Millis = i64;

/// Documents and their catalog: heads and access attributes of every
/// document, sync states, and the sync step that stores a device's changes.
pub trait DocumentStore: Send + Sync {
    /// One step of a document sync: applies the device's `payload` (an
    /// encoded automerge sync message, or empty) for `state`, judges new
    /// changes by access and the rules, stores the accepted ones durably,
    /// and returns the heads to acknowledge, the refusals and the reply.
    fn sync_step(
        &self,
        cx: &StepContext,
        state: &mut sync::State,
        payload: &[u8],
    ) -> std::result::Result<StepOutcome, StepError>;

    /// The saved sync state of `(device, doc)`, or a fresh one.
    fn sync_state(&self, device: DeviceId, doc_id: DocId) -> sync::State;

    /// Saves the sync state of `(device, doc)`; committed when it returns.
    fn save_sync_state(&self, device: DeviceId, doc_id: DocId, state: &sync::State) -> Result<()>;

    /// The next bundle of whole stored documents of `doc_ids` that `who`
    /// may read, from index `from` on, and where the next bundle starts;
    /// `None` when nothing is left.
    fn next_bundle(
        &self,
        who: &Principal,
        doc_ids: &[DocId],
        from: usize,
    ) -> Result<Option<(Vec<u8>, usize)>>;

    /// Every document `who` may read, with its heads.
    fn readable_manifest(&self, who: &Principal) -> Manifest;

    /// What `who` may do with a document whose attributes are `attrs`.
    fn decide(&self, who: &Principal, attrs: &DocAttributes) -> Access;

    /// The stored documents of `kind` in `branch`, lowest id first.
    fn documents_of_kind(&self, branch: BranchId, kind: &str) -> Vec<DocId>;

    /// The automerge actor of the server's own changes.
    fn server_actor(&self) -> ActorId;

    /// Stores a new document the server wrote as [`Self::server_actor`]
    /// for `creator` (the device access treats as its creator), with
    /// `audit` rows, if `guard` holds in the same transaction.
    fn create_as_server(
        &self,
        doc: AutoCommit,
        creator: Option<DeviceId>,
        audit: Vec<AuditRecord>,
        guard: CreateGuard,
    ) -> Result<(DocId, Heads)>;

    /// Applies `edit` to a stored document as the server's own actor and
    /// stores the new changes, with `audit` rows. The edit sees every change
    /// stored before it.
    fn edit_as_server(
        &self,
        doc_id: DocId,
        audit: Vec<AuditRecord>,
        edit: &mut dyn FnMut(&mut AutoCommit) -> Result<()>,
    ) -> Result<()>;
}

/// A condition checked in the same transaction that stores a new document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateGuard {
    /// None.
    Always,
    /// No document of this kind exists in the document's branch yet;
    /// otherwise [`crate::Error::AlreadyExists`] names the one that does.
    OnlyOneOfKind,
    /// `device` had fewer than `limit` petitions written for it since
    /// `since`; otherwise [`crate::Error::LimitReached`].
    PetitionQuota {
        /// The submitting device.
        device: DeviceId,
        /// The start of the window.
        since: Millis,
        /// Petitions allowed in the window.
        limit: u32,
    },
}

/// Enrolled devices, their credentials, invites and submission codes.
pub trait CredentialStore: Send + Sync {
    /// Enrolls a device with an invite code or a branch's submission code;
    /// a submission code that registered `residents_per_hour` devices in
    /// the hour before `now` refuses. Refusals are audited.
    fn enroll(
        &self,
        now: Millis,
        invite_code: &str,
        device_name: &str,
        actor_id: &[u8],
        residents_per_hour: u32,
    ) -> Result<std::result::Result<(DeviceRecord, DeviceSecret), AuthFailure>>;

    /// Checks a device's id and secret.
    fn check_device(
        &self,
        device: DeviceId,
        secret: &DeviceSecret,
    ) -> Result<std::result::Result<DeviceRecord, AuthFailure>>;

    /// The device's record, revoked or not.
    fn device(&self, device: DeviceId) -> Result<Option<DeviceRecord>>;

    /// Records that the device connected at `now` (queued).
    fn touch(&self, device: DeviceId, now: Millis);

    /// Stores a new one-time invite into `branch`.
    fn create_invite(
        &self,
        now: Millis,
        branch: BranchId,
        role: Role,
        member: Option<MemberId>,
        valid_for: Duration,
        created_by: Option<DeviceId>,
    ) -> Result<NewInvite>;

    /// The branch's public submission code, created on first use.
    fn submission_code(&self, branch: BranchId) -> Result<String>;

    /// Revokes the device (audited); its credentials stop working at once.
    fn revoke(&self, device: DeviceId, by: Option<DeviceId>) -> Result<()>;
}

/// The audit log.
pub trait AuditLog: Send + Sync {
    /// Appends `record` (queued).
    fn record(&self, record: AuditRecord);
}

/// Rate limits on what devices submit.
pub trait RateLimits: Send + Sync {
    /// Counts one suggestion by `device` at `now` and returns true, unless
    /// it already sent `limit` in the day before `now`.
    ///
    /// Suggestions may be anonymous, so a backend keeps this count where
    /// it cannot link a device to a suggestion later: in memory, not in
    /// the database.
    fn take_suggestion(&self, device: DeviceId, limit: u32, now: Millis) -> bool;
}

/// Change notices: what was stored, in order, for every connection to hear.
pub trait ChangeFeed: Send + Sync {
    /// Subscribes to every change stored from now on.
    fn subscribe(&self) -> Notices;

    /// The newest write position.
    fn last_seq(&self) -> i64;

    /// Every document written after position `after`, newest state each.
    fn changed_since(&self, after: i64) -> Vec<Arc<ChangeNotice>>;

    /// Picks up what other processes wrote (the admin CLI, other nodes):
    /// documents are announced to subscribers, revocations returned.
    fn poll(&self) -> Result<PollOutcome>;

    /// Fires when other processes may have written, so the server polls at
    /// once instead of at its next interval (PostgreSQL: another node's
    /// notice). `None` for a backend that only the interval tells.
    fn woken(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

/// Everything the server core needs: one value a backend implements.
pub trait Backend: DocumentStore + CredentialStore + AuditLog + RateLimits + ChangeFeed {
    /// Unloads documents idle longer than the configured time; returns how
    /// many stay loaded.
    fn unload_idle(&self) -> usize;

    /// How many documents are loaded in memory.
    fn loaded_documents(&self) -> usize;

    /// Finishes queued writes and stops background work (blocking).
    fn shutdown(&self);
}

/// A document changed on the server.
#[derive(Debug, Clone)]
pub struct ChangeNotice {
    /// The document.
    pub doc_id: DocId,
    /// Its heads now.
    pub heads: Heads,
    /// Its access attributes now.
    pub attrs: Arc<DocAttributes>,
    /// Its write position.
    pub seq: i64,
    /// The connection whose sync made the change, if any.
    pub origin: Option<u64>,
}

/// One subscription to a [`ChangeFeed`].
#[derive(Debug)]
pub struct Notices(broadcast::Receiver<Arc<ChangeNotice>>);

/// What a subscription delivers next.
#[derive(Debug, Clone)]
pub enum NoticeEvent {
    /// A stored change.
    Changed(Arc<ChangeNotice>),
    /// The subscriber fell behind and missed notices: catch up from the
    /// last position it saw.
    Missed,
    /// The feed stopped (the server is shutting down).
    Closed,
}

impl Notices {
    /// Wraps a broadcast receiver.
    pub(crate) fn new(receiver: broadcast::Receiver<Arc<ChangeNotice>>) -> Self {
        Notices(receiver)
    }

    /// Waits for the next event.
    pub async fn next(&mut self) -> NoticeEvent {
        match self.0.recv().await {
            Ok(notice) => NoticeEvent::Changed(notice),
            Err(broadcast::error::RecvError::Lagged(_)) => NoticeEvent::Missed,
            Err(broadcast::error::RecvError::Closed) => NoticeEvent::Closed,
        }
    }

    /// The next event if one is waiting.
    pub fn try_next(&mut self) -> Option<NoticeEvent> {
        match self.0.try_recv() {
            Ok(notice) => Some(NoticeEvent::Changed(notice)),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(NoticeEvent::Missed),
            Err(broadcast::error::TryRecvError::Closed) => Some(NoticeEvent::Closed),
            Err(broadcast::error::TryRecvError::Empty) => None,
        }
    }
}

/// What a poll found that other processes wrote.
#[derive(Debug, Default)]
pub struct PollOutcome {
    /// Devices revoked since the last poll.
    pub revoked: Vec<DeviceId>,
}

/// Who is syncing which document, for one step.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The sending device.
    pub principal: Principal,
    /// Its connection, so its own changes are not announced back to it.
    pub connection: u64,
    /// The document.
    pub doc_id: DocId,
}

/// Why one document sync step failed: the code sent to the client.
#[derive(Debug, Clone)]
pub struct StepError {
    /// The stable code.
    pub code: ErrorCode,
    /// What failed, for people.
    pub message: String,
}

impl StepError {
    /// A failure with `code`.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        StepError {
            code,
            message: message.into(),
        }
    }
}

/// What one document sync step produced.
#[derive(Debug)]
pub struct StepOutcome {
    /// Heads to acknowledge, when new changes were stored durably.
    pub ack: Option<Heads>,
    /// The reply payload (empty: nothing to say).
    pub reply: Vec<u8>,
    /// Changes refused by the rules; when there are any, the document sync
    /// ends after the `Ack` of what was accepted.
    pub rejected: Vec<ChangeRejection>,
}

impl StepOutcome {
    /// The messages that answer the step on a connection speaking protocol
    /// `version`, and whether the stream ends after them.
    pub(crate) fn into_messages(self, doc_id: DocId, version: u16) -> (Vec<Message>, bool) {
        let mut messages = Vec::new();
        if let Some(heads) = self.ack {
            messages.push(Message::Ack { doc_id, heads });
        }
        let Some(first) = self.rejected.first() else {
            messages.push(Message::SyncDoc {
                doc_id,
                payload: self.reply,
            });
            return (messages, false);
        };
        messages.push(if version >= 2 {
            Message::Rejected {
                doc_id,
                rejections: self.rejected,
            }
        } else {
            // A version-1 device only understands an error for the document.
            Message::Error {
                code: first.code.clone(),
                message: first.message.clone(),
                doc_id: Some(doc_id),
            }
        });
        (messages, true)
    }
}
