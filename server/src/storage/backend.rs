//! [`Storage`], over either database, behind the traits the server core
//! speaks.
//!
//! Every write is waited for, so it has committed (fsync) when the call
//! returns. The two queued writes (audit rows, a device's last-seen time)
//! are only submitted.

use std::sync::Arc;
use std::time::Duration;

use automerge::{ActorId, AutoCommit, sync};
use branchline_protocol::manifest::Manifest;
use branchline_protocol::{BranchId, DeviceId, DeviceSecret, DocId, Heads, MemberId, Role};

use super::{Database, Storage};
use crate::access::{Access, DocAttributes, Principal};
use crate::audit::AuditRecord;
use crate::auth::{self, AuthFailure, DeviceRecord, NewInvite};
use crate::error::Result;
use crate::store::{
    AuditLog, Backend, ChangeFeed, ChangeNotice, CreateGuard, CredentialStore, DocumentStore,
    Millis, Notices, PollOutcome, RateLimits, StepContext, StepError, StepOutcome,
};

impl<D: Database> DocumentStore for Storage<D> {
    fn sync_step(
        &self,
        cx: &StepContext,
        state: &mut sync::State,
        payload: &[u8],
    ) -> std::result::Result<StepOutcome, StepError> {
        Storage::sync_step(self, cx, state, payload)
    }

    fn sync_state(&self, device: DeviceId, doc_id: DocId) -> sync::State {
        Storage::sync_state(self, device, doc_id)
    }

    fn save_sync_state(&self, device: DeviceId, doc_id: DocId, state: &sync::State) -> Result<()> {
        Storage::save_sync_state(self, device, doc_id, state)
    }

    fn next_bundle(
        &self,
        who: &Principal,
        doc_ids: &[DocId],
        from: usize,
    ) -> Result<Option<(Vec<u8>, usize)>> {
        Storage::next_bundle(self, who, doc_ids, from)
    }

    fn readable_manifest(&self, who: &Principal) -> Manifest {
        Storage::readable_manifest(self, who)
    }

    fn decide(&self, who: &Principal, attrs: &DocAttributes) -> Access {
        Storage::decide(self, who, attrs)
    }

    fn documents_of_kind(&self, branch: BranchId, kind: &str) -> Vec<DocId> {
        Storage::documents_of_kind(self, branch, kind)
    }

    fn server_actor(&self) -> ActorId {
        Storage::server_actor(self).clone()
    }

    fn create_as_server(
        &self,
        doc: AutoCommit,
        creator: Option<DeviceId>,
        audit: Vec<AuditRecord>,
        guard: CreateGuard,
    ) -> Result<(DocId, Heads)> {
        Storage::create_as_server(self, doc, creator, audit, guard)
    }

    fn edit_as_server(
        &self,
        doc_id: DocId,
        audit: Vec<AuditRecord>,
        edit: &mut dyn FnMut(&mut AutoCommit) -> Result<()>,
    ) -> Result<()> {
        Storage::edit_as_server(self, doc_id, audit, edit)
    }
}

impl<D: Database> CredentialStore for Storage<D> {
    fn enroll(
        &self,
        now: Millis,
        invite_code: &str,
        device_name: &str,
        actor_id: &[u8],
        residents_per_hour: u32,
    ) -> Result<std::result::Result<(DeviceRecord, DeviceSecret), AuthFailure>> {
        let (code, name, actor) = (
            invite_code.to_owned(),
            device_name.to_owned(),
            actor_id.to_vec(),
        );
        self.write(move |conn| auth::enroll(conn, now, &code, &name, &actor, residents_per_hour))
    }

    fn check_device(
        &self,
        device: DeviceId,
        secret: &DeviceSecret,
    ) -> Result<std::result::Result<DeviceRecord, AuthFailure>> {
        self.read(|conn| auth::check_device(conn, device, secret))
    }

    fn device(&self, device: DeviceId) -> Result<Option<DeviceRecord>> {
        self.read(|conn| auth::device(conn, device))
    }

    fn touch(&self, device: DeviceId, now: Millis) {
        self.database()
            .queue(move |conn| auth::touch(conn, device, now));
    }

    fn create_invite(
        &self,
        now: Millis,
        branch: BranchId,
        role: Role,
        member: Option<MemberId>,
        valid_for: Duration,
        created_by: Option<DeviceId>,
    ) -> Result<NewInvite> {
        self.write(move |conn| {
            auth::create_invite(conn, now, branch, role, member, valid_for, created_by)
        })
    }

    fn submission_code(&self, branch: BranchId) -> Result<String> {
        self.write(move |conn| auth::submission_code(conn, branch, false))
    }

    fn revoke(&self, device: DeviceId, by: Option<DeviceId>) -> Result<()> {
        self.write(move |conn| auth::revoke(conn, device, by))
    }
}

impl<D: Database> AuditLog for Storage<D> {
    fn record(&self, record: AuditRecord) {
        self.database().queue(move |conn| record.insert(conn));
    }
}

impl<D: Database> RateLimits for Storage<D> {
    fn take_suggestion(&self, device: DeviceId, limit: u32, now: Millis) -> bool {
        self.suggestions.try_take(device, limit, now)
    }
}

impl<D: Database> ChangeFeed for Storage<D> {
    fn subscribe(&self) -> Notices {
        Storage::subscribe(self)
    }

    fn last_seq(&self) -> i64 {
        Storage::last_seq(self)
    }

    fn changed_since(&self, after: i64) -> Vec<Arc<ChangeNotice>> {
        Storage::changed_since(self, after)
    }

    fn poll(&self) -> Result<PollOutcome> {
        Storage::poll(self)
    }

    fn woken(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.database().woken()
    }
}

impl<D: Database> Backend for Storage<D> {
    fn unload_idle(&self) -> usize {
        Storage::unload_idle(self)
    }

    fn loaded_documents(&self) -> usize {
        Storage::loaded_count(self)
    }

    fn shutdown(&self) {
        Storage::shutdown(self);
    }
}
