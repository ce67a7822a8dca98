//! The server's side of the protocol, written once and without I/O.
//!
//! [`ServerCore`] answers everything a device says, one event at a time:
//! the `Hello` that opens a connection, messages on its control stream, the
//! first message of every stream it opens (a document sync, a request for
//! whole documents, an invite, a revocation, a submission), later messages
//! on a document stream, the end of a stream, and change notices from
//! other connections. Each event returns the messages to send and whether
//! the stream ends ([`Answer`]). The core has no sockets, tasks or clocks:
//! the caller passes the time in, and every write the core asks of the
//! [`Backend`] has committed when the call returns, so a caller that drops
//! the core between two calls has crashed it with exactly what the store
//! holds.
//!
//! Two callers drive it: the QUIC session (`crate::session`), which runs
//! each call on the blocking pool, and the deterministic simulation and
//! fuzz tests, which step it in memory. Both therefore prove the same code.
//!
//! What stays with the caller is what needs a clock or a socket: the time
//! limits on a first message and on idle streams, decoding frames, and the
//! registry of live connections a revocation closes ([`Answer::revoked`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use automerge::sync;
use branchline_protocol::manifest::{MAX_RANGES_PER_REQUEST, Manifest};
use branchline_protocol::{
    Credentials, DecodeError, DeviceId, DocId, ErrorCode, InviteLink, MemberId, Message, Role,
    bundle, negotiate,
};
use tracing::{debug, info, warn};

use crate::access::{self, Principal};
use crate::audit::{self, AuditRecord};
use crate::auth::AuthFailure;
use crate::config::limits;
use crate::error::Error;
use crate::store::{
    Backend, CreateGuard, Millis, NoticeEvent, Notices, StepContext, StepError, StepOutcome,
};
use crate::submissions::{self, PetitionFields};

/// The settings the core answers by.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// The `host:port` written into invite and submission links.
    pub public_addr: String,
    /// The SHA-256 of the server's certificate, which links carry.
    pub cert_sha256: [u8; 32],
    /// Residents a branch's submission code may register per hour.
    pub resident_registrations_per_hour: u32,
    /// Petitions, and separately suggestions, one device may submit per day.
    pub submissions_per_device_per_day: u32,
}

impl CoreSettings {
    /// The default limits, for a server reached at `public_addr`.
    pub fn new(public_addr: String, cert_sha256: [u8; 32]) -> Self {
        CoreSettings {
            public_addr,
            cert_sha256,
            resident_registrations_per_hour: crate::config::DEFAULT_RESIDENTS_PER_HOUR,
            submissions_per_device_per_day: crate::config::DEFAULT_SUBMISSIONS_PER_DAY,
        }
    }
}

/// The server's protocol logic over a storage backend; see the
/// [module docs](self).
pub struct ServerCore {
    backend: Box<dyn Backend>,
    settings: CoreSettings,
    next_connection: AtomicU64,
}

impl std::fmt::Debug for ServerCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// One device's connection, after a welcomed `Hello`.
#[derive(Debug, Clone)]
pub struct Peer {
    principal: Principal,
    connection: u64,
    version: u16,
    /// The newest write position this connection was told about.
    last_seq: i64,
}

impl Peer {
    /// The device, its role, branch and member.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The connection's id, unique within this core.
    pub fn connection(&self) -> u64 {
        self.connection
    }

    /// The protocol version agreed at `Hello`.
    pub fn version(&self) -> u16 {
        self.version
    }
}

/// A stream the core keeps state for between events.
#[derive(Debug)]
pub enum Stream {
    /// A document sync.
    Doc(DocStream),
    /// Whole documents to send, a bundle per [`ServerCore::next_bundle`].
    Bundles(BundleCursor),
}

/// One document stream of a connection.
#[derive(Debug)]
pub struct DocStream {
    doc_id: DocId,
    state: sync::State,
}

impl DocStream {
    /// The document the stream syncs.
    pub fn doc_id(&self) -> DocId {
        self.doc_id
    }
}

/// Where a `GetDocuments` answer has got to.
#[derive(Debug)]
pub struct BundleCursor {
    doc_ids: Vec<DocId>,
    from: usize,
    sent: usize,
}

/// What the server does after one event.
#[derive(Debug, Default)]
pub struct Answer {
    /// Messages to send on the same stream, in order.
    pub messages: Vec<Message>,
    /// The server ends the stream (finishes its send side) after them; on
    /// the control stream this closes the connection.
    pub end: bool,
    /// A device whose live connections must close now (it was revoked).
    pub revoked: Option<DeviceId>,
}

impl Answer {
    fn reply(messages: Vec<Message>) -> Self {
        Answer {
            messages,
            ..Answer::default()
        }
    }

    /// One message, then the stream ends.
    fn last(message: Message) -> Self {
        Answer {
            messages: vec![message],
            end: true,
            revoked: None,
        }
    }

    fn fail(code: ErrorCode, message: impl Into<String>, doc_id: Option<DocId>) -> Self {
        Answer::last(error(code, message, doc_id))
    }
}

/// Why a connection's `Hello` (or its registration) was refused: what the
/// `Error` sent before closing says.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The stable code.
    pub code: ErrorCode,
    /// Why, for people.
    pub message: String,
}

impl Refusal {
    /// The `Error` to send.
    pub fn into_message(self) -> Message {
        error(self.code, self.message, None)
    }
}

/// An `Error` message.
pub(crate) fn error(code: ErrorCode, message: impl Into<String>, doc_id: Option<DocId>) -> Message {
    Message::Error {
        code,
        message: message.into(),
        doc_id,
    }
}

/// The `Error` for a frame that did not decode.
pub fn decode_error(e: &DecodeError, doc_id: Option<DocId>) -> Message {
    error(e.code(), e.to_string(), doc_id)
}

/// Why a petition was not written.
enum PetitionRefused {
    /// The device reached its daily limit (the limit).
    RateLimited(u32),
    /// The model refused the fields.
    Invalid(String),
    /// Storage failed.
    Failed(Error),
}

impl ServerCore {
    /// A core over `backend`.
    pub fn new(backend: Box<dyn Backend>, settings: CoreSettings) -> Self {
        ServerCore {
            backend,
            settings,
            next_connection: AtomicU64::new(1),
        }
    }

    /// A core over the SQLite database in `data_dir` (created if needed),
    /// with the default cache settings.
    pub fn open_sqlite(data_dir: &std::path::Path, settings: CoreSettings) -> crate::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let options = crate::storage::CacheOptions {
            idle_unload: Duration::from_secs(300),
            max_loaded: 1_000,
            validate_changes: true,
        };
        let storage = crate::storage::Storage::open(&data_dir.join(crate::db::FILE_NAME), options)?;
        Ok(ServerCore::new(Box::new(storage), settings))
    }

    /// A core over the PostgreSQL database at `url` (migrated if needed),
    /// with the default cache settings.
    pub fn open_postgres(url: &str, settings: CoreSettings) -> crate::Result<Self> {
        let options = crate::storage::CacheOptions {
            idle_unload: Duration::from_secs(300),
            max_loaded: 1_000,
            validate_changes: true,
        };
        let storage = crate::storage::Storage::open_postgres(url, options)?;
        Ok(ServerCore::new(Box::new(storage), settings))
    }

    /// The backend.
    pub(crate) fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// The settings it answers by.
    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// Answers the first message of a connection's control stream: a
    /// welcomed `Hello` gives the peer and `Welcome`; anything else the
    /// `Error` to send before closing. Follow a welcome with
    /// [`ServerCore::connected`].
    pub fn hello(&self, now: Millis, message: Message) -> Result<(Peer, Message), Refusal> {
        let refuse = |code: ErrorCode, message: String| Refusal { code, message };
        let Message::Hello {
            version,
            min_version,
            credentials,
        } = message
        else {
            return Err(refuse(
                ErrorCode::Unauthenticated,
                format!("the first message must be Hello, not {}", message.name()),
            ));
        };
        let version = negotiate(min_version, version).map_err(|code| {
            refuse(
                code,
                format!(
                    "this server speaks protocol versions {}..={}",
                    branchline_protocol::MIN_SUPPORTED_VERSION,
                    branchline_protocol::PROTOCOL_VERSION
                ),
            )
        })?;
        let outcome = match credentials {
            Credentials::Enroll {
                invite_code,
                device_name,
                actor_id,
            } => {
                if actor_id.is_empty() || actor_id.len() > limits::MAX_ACTOR_ID {
                    return Err(refuse(
                        ErrorCode::Malformed,
                        "actor id must be 1 to 64 bytes".into(),
                    ));
                }
                self.backend
                    .enroll(
                        now,
                        &invite_code,
                        &device_name,
                        &actor_id,
                        self.settings.resident_registrations_per_hour,
                    )
                    .map(|outcome| outcome.map(|(record, secret)| (record, Some(secret))))
            }
            Credentials::Device { device_id, secret } => {
                let checked = self.backend.check_device(device_id, &secret);
                if let Ok(Err(failure)) = &checked {
                    let mut record = AuditRecord::new(audit::event::AUTH_REFUSED);
                    record.device = Some(device_id);
                    record.code = Some(failure.code().as_str().to_owned());
                    self.backend.record(record);
                }
                checked.map(|outcome| outcome.map(|record| (record, None)))
            }
        };
        let (record, secret) = match outcome {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(failure)) => {
                info!(code = %failure.code(), "hello refused");
                return Err(refuse(failure.code(), auth_message(failure).into()));
            }
            Err(e) => {
                warn!(error = %e, "cannot check credentials");
                return Err(refuse(
                    e.wire_code(),
                    "the server cannot check credentials now".into(),
                ));
            }
        };
        self.backend.touch(record.device_id, now);
        let principal = Principal {
            device: record.device_id,
            role: record.role,
            branch: record.branch,
            member: record.member,
        };
        let welcome = Message::Welcome {
            version,
            server_time_ms: now,
            device_id: record.device_id,
            member_id: record.member,
            branch_id: record.branch,
            role: record.role,
            device_secret: secret,
            branch_name: Some(record.branch_name),
        };
        let peer = Peer {
            principal,
            connection: self.next_connection.fetch_add(1, Ordering::Relaxed),
            version,
            last_seq: 0,
        };
        Ok((peer, welcome))
    }

    /// Starts a welcomed connection's session: checks once more that the
    /// device was not revoked since its `Hello` (a caller registers the
    /// connection for revocations first, so none falls in between),
    /// subscribes it to change notices and gives the server's manifest
    /// digest. Notices are taken before the manifest, so no change falls
    /// between the two.
    pub fn connected(&self, peer: &mut Peer) -> Result<(Notices, Message), Refusal> {
        let device = peer.principal.device;
        let still_valid = self
            .backend
            .device(device)
            .ok()
            .flatten()
            .is_some_and(|record| !record.revoked);
        if !still_valid {
            return Err(Refusal {
                code: ErrorCode::DeviceRevoked,
                message: "this device was revoked".into(),
            });
        }
        let notices = self.backend.subscribe();
        peer.last_seq = self.backend.last_seq();
        let digest = self
            .backend
            .readable_manifest(&peer.principal)
            .digest_message();
        Ok((notices, digest))
    }

    /// Picks up what other processes wrote (the admin CLI); returns the
    /// devices revoked meanwhile, whose connections must close.
    pub fn poll(&self) -> crate::Result<Vec<DeviceId>> {
        Ok(self.backend.poll()?.revoked)
    }

    /// Answers a message on the control stream after `Welcome`.
    pub fn control(&self, peer: &Peer, message: Message) -> Answer {
        match message {
            // The client's digest; the client compares ours with it.
            Message::ManifestDigest { .. } => Answer::default(),
            Message::ManifestRanges { ranges } => {
                if ranges.len() > MAX_RANGES_PER_REQUEST {
                    return Answer::fail(
                        ErrorCode::Malformed,
                        format!("at most {MAX_RANGES_PER_REQUEST} ranges per request"),
                        None,
                    );
                }
                let manifest = self.backend.readable_manifest(&peer.principal);
                Answer::reply(manifest.respond(&ranges))
            }
            other => Answer::fail(
                ErrorCode::Malformed,
                format!("{} does not belong on the control stream", other.name()),
                None,
            ),
        }
    }

    /// `DocChanged` messages for `peer` about the changes in `events` that
    /// other connections made to documents it may read.
    pub fn notices(
        &self,
        peer: &mut Peer,
        events: impl IntoIterator<Item = NoticeEvent>,
    ) -> Vec<Message> {
        let mut out = Vec::new();
        for event in events {
            let batch = match event {
                NoticeEvent::Changed(notice) => vec![notice],
                NoticeEvent::Missed => {
                    debug!("fell behind the change feed; catching up");
                    self.backend.changed_since(peer.last_seq)
                }
                NoticeEvent::Closed => Vec::new(),
            };
            for notice in batch {
                peer.last_seq = peer.last_seq.max(notice.seq);
                if notice.origin == Some(peer.connection) {
                    continue;
                }
                if self.backend.decide(&peer.principal, &notice.attrs).read {
                    out.push(Message::DocChanged {
                        doc_id: notice.doc_id,
                        heads: notice.heads.clone(),
                    });
                }
            }
        }
        out
    }

    /// Every document `peer`'s device may read, with its heads.
    pub fn readable(&self, peer: &Peer) -> Manifest {
        self.backend.readable_manifest(&peer.principal)
    }

    /// Answers the first message of a new stream. A `SyncDoc` opens a
    /// document stream and `GetDocuments` a bundle cursor (both returned
    /// when the stream stays open); every request is answered and ends its
    /// stream.
    pub fn open_stream(
        &self,
        now: Millis,
        peer: &Peer,
        message: Message,
    ) -> (Option<Stream>, Answer) {
        let answer = match message {
            Message::SyncDoc { doc_id, payload } => {
                let mut stream = DocStream {
                    doc_id,
                    state: self.backend.sync_state(peer.principal.device, doc_id),
                };
                let answer = self.step(peer, &mut stream, &payload);
                let open = (!answer.end).then_some(Stream::Doc(stream));
                return (open, answer);
            }
            Message::GetDocuments { doc_ids } => {
                if peer.version < 3 {
                    Answer::fail(
                        ErrorCode::Malformed,
                        "GetDocuments needs protocol version 3",
                        None,
                    )
                } else if doc_ids.len() > bundle::MAX_DOCS_PER_REQUEST {
                    self.refused(
                        peer,
                        ErrorCode::InvalidRequest,
                        &format!(
                            "at most {} documents per request",
                            bundle::MAX_DOCS_PER_REQUEST
                        ),
                    )
                } else {
                    let cursor = BundleCursor {
                        doc_ids,
                        from: 0,
                        sent: 0,
                    };
                    return (Some(Stream::Bundles(cursor)), Answer::default());
                }
            }
            Message::CreateInvite {
                role,
                member_id,
                valid_for_secs,
            } => self.create_invite(now, peer, role, member_id, valid_for_secs),
            Message::RevokeDevice { device_id } => self.revoke_device(peer, device_id),
            Message::GetSubmissionCode => self.submission_code(peer),
            Message::SubmitPetition {
                category,
                title,
                description,
                location,
                name,
                contact,
            } => {
                let fields = PetitionFields::validate(
                    &category,
                    &title,
                    &description,
                    location.as_deref(),
                    name.as_deref(),
                    contact.as_deref(),
                );
                match fields {
                    Ok(fields) => self.submit_petition(now, peer, fields),
                    Err(invalid) => {
                        self.refused(peer, ErrorCode::InvalidRequest, &invalid.to_string())
                    }
                }
            }
            Message::SubmitSuggestion { text, anonymous } => {
                self.submit_suggestion(now, peer, &text, anonymous)
            }
            other => Answer::fail(
                ErrorCode::Malformed,
                format!("a stream cannot start with {}", other.name()),
                None,
            ),
        };
        (None, answer)
    }

    /// The next `Documents` bundle for a `GetDocuments` cursor, or `None`
    /// when all are sent (the stream then ends). A storage failure gives
    /// an `Error` and ends the cursor.
    pub fn next_bundle(&self, peer: &Peer, cursor: &mut BundleCursor) -> Option<Message> {
        if cursor.from >= cursor.doc_ids.len() {
            return None;
        }
        match self
            .backend
            .next_bundle(&peer.principal, &cursor.doc_ids, cursor.from)
        {
            Ok(Some((bundle, next))) => {
                cursor.from = next;
                cursor.sent += 1;
                Some(Message::Documents { bundle })
            }
            Ok(None) => {
                debug!(
                    asked = cursor.doc_ids.len(),
                    bundles = cursor.sent,
                    "sent documents whole"
                );
                cursor.from = cursor.doc_ids.len();
                None
            }
            Err(e) => {
                warn!(error = %e, "cannot read documents to send whole");
                cursor.from = cursor.doc_ids.len();
                Some(error(
                    ErrorCode::Internal,
                    "cannot read the documents",
                    None,
                ))
            }
        }
    }

    /// Answers a later message on an open document stream.
    pub fn doc_message(&self, peer: &Peer, stream: &mut DocStream, message: Message) -> Answer {
        match message {
            Message::SyncDoc { doc_id, payload } if doc_id == stream.doc_id => {
                self.step(peer, stream, &payload)
            }
            other => Answer::fail(
                ErrorCode::Malformed,
                format!("{} does not belong on this document stream", other.name()),
                Some(stream.doc_id),
            ),
        }
    }

    /// The client finished a document stream: the sync is complete and its
    /// state is saved (committed when this returns).
    pub fn finish_stream(&self, peer: &Peer, stream: DocStream) {
        self.save_state(peer, &stream);
    }

    /// Finishes queued writes and stops the backend (blocking).
    pub fn shutdown(&self) {
        self.backend.shutdown();
    }

    fn save_state(&self, peer: &Peer, stream: &DocStream) {
        let saved =
            self.backend
                .save_sync_state(peer.principal.device, stream.doc_id, &stream.state);
        if let Err(e) = saved {
            debug!(doc = %stream.doc_id, error = %e, "sync state not saved");
        }
    }

    fn step(&self, peer: &Peer, stream: &mut DocStream, payload: &[u8]) -> Answer {
        let cx = StepContext {
            principal: peer.principal.clone(),
            connection: peer.connection,
            doc_id: stream.doc_id,
        };
        let stepped: Result<StepOutcome, StepError> =
            self.backend.sync_step(&cx, &mut stream.state, payload);
        match stepped {
            Ok(outcome) => {
                let (messages, end) = outcome.into_messages(stream.doc_id, peer.version);
                if end {
                    // Changes were refused: this sync is over, and the
                    // device starts the document afresh.
                    self.save_state(peer, stream);
                }
                Answer {
                    messages,
                    end,
                    revoked: None,
                }
            }
            Err(refused) => {
                info!(doc = %stream.doc_id, code = %refused.code, reason = %refused.message, "document sync refused");
                self.audit_refusal(peer, Some(stream.doc_id), &refused.code, &refused.message);
                Answer::fail(refused.code, refused.message, Some(stream.doc_id))
            }
        }
    }

    /// Records a refused request in the audit log.
    fn audit_refusal(&self, peer: &Peer, doc: Option<DocId>, code: &ErrorCode, detail: &str) {
        let who = &peer.principal;
        let mut record = AuditRecord::new(audit::event::REQUEST_REFUSED);
        record.device = Some(who.device);
        record.member = who.member;
        record.branch = Some(who.branch);
        record.doc = doc;
        record.code = Some(code.as_str().to_owned());
        record.detail = detail.to_owned();
        self.backend.record(record);
    }

    /// A refused request: audited, then its `Error`.
    fn refused(&self, peer: &Peer, code: ErrorCode, message: &str) -> Answer {
        self.audit_refusal(peer, None, &code, message);
        Answer::fail(code, message, None)
    }

    fn link(&self, code: String) -> InviteLink {
        InviteLink {
            server: self.settings.public_addr.clone(),
            code,
            cert_sha256: self.settings.cert_sha256,
        }
    }

    fn create_invite(
        &self,
        now: Millis,
        peer: &Peer,
        role: Role,
        member: Option<MemberId>,
        valid_for_secs: u32,
    ) -> Answer {
        let who = &peer.principal;
        if !access::may_invite(who, role) {
            return self.refused(
                peer,
                ErrorCode::AccessDenied,
                &format!("a {} may not invite a {role}", who.role),
            );
        }
        if valid_for_secs == 0 {
            return Answer::fail(
                ErrorCode::Malformed,
                "an invite must be valid for some time",
                None,
            );
        }
        let valid_for = Duration::from_secs(valid_for_secs.into()).min(limits::MAX_INVITE_VALIDITY);
        match self
            .backend
            .create_invite(now, who.branch, role, member, valid_for, Some(who.device))
        {
            Ok(invite) => {
                info!(%role, "invite created");
                Answer::last(Message::InviteCreated {
                    invite: self.link(invite.code).to_string(),
                    expires_at_ms: invite.expires_at_ms,
                })
            }
            Err(e) => {
                warn!(error = %e, "cannot create an invite");
                Answer::fail(
                    ErrorCode::Internal,
                    "the server could not create the invite",
                    None,
                )
            }
        }
    }

    /// `GetSubmissionCode`: the branch's public submission link (created on
    /// first use), for the committee to print or show as a QR code.
    fn submission_code(&self, peer: &Peer) -> Answer {
        if !peer.principal.is_committee() {
            return self.refused(
                peer,
                ErrorCode::AccessDenied,
                "only the committee may see the branch's submission code",
            );
        }
        match self.backend.submission_code(peer.principal.branch) {
            Ok(code) => Answer::last(Message::SubmissionCode {
                link: self.link(code).to_string(),
            }),
            Err(e) => {
                warn!(error = %e, "cannot read the submission code");
                Answer::fail(
                    ErrorCode::Internal,
                    "the server could not read the submission code",
                    None,
                )
            }
        }
    }

    fn revoke_device(&self, peer: &Peer, device: DeviceId) -> Answer {
        let target = match self.backend.device(device) {
            Ok(target) => target,
            Err(e) => {
                warn!(error = %e, "cannot read the device");
                return Answer::fail(
                    ErrorCode::Internal,
                    "the server could not read the device",
                    None,
                );
            }
        };
        // An unknown device and a device of another branch look the same.
        let allowed = target
            .as_ref()
            .is_some_and(|record| access::may_revoke(&peer.principal, record.branch));
        if !allowed {
            return self.refused(
                peer,
                ErrorCode::AccessDenied,
                "only the secretary of the device's branch may revoke it",
            );
        }
        if let Err(e) = self.backend.revoke(device, Some(peer.principal.device)) {
            warn!(error = %e, "cannot revoke the device");
            return Answer::fail(
                ErrorCode::Internal,
                "the server could not revoke the device",
                None,
            );
        }
        info!(revoked = %device, "device revoked");
        Answer {
            messages: vec![Message::DeviceRevoked { device_id: device }],
            end: true,
            revoked: Some(device),
        }
    }

    /// `SubmitPetition` (validated): the server writes the petition as its
    /// own actor, for this device, unless the device reached its daily limit
    /// (checked by the store in the transaction that writes it).
    fn submit_petition(&self, now: Millis, peer: &Peer, fields: PetitionFields) -> Answer {
        match self.write_petition(now, &peer.principal, fields) {
            Ok(doc_id) => {
                info!(doc = %doc_id, "petition submitted");
                Answer::last(Message::PetitionSubmitted { doc_id })
            }
            Err(PetitionRefused::RateLimited(limit)) => self.refused(
                peer,
                ErrorCode::RateLimited,
                &format!("at most {limit} petitions per device in 24 hours"),
            ),
            Err(PetitionRefused::Invalid(reason)) => {
                self.refused(peer, ErrorCode::InvalidRequest, &reason)
            }
            Err(PetitionRefused::Failed(e)) => {
                warn!(error = %e, "cannot store a petition");
                Answer::fail(
                    ErrorCode::Internal,
                    "the server could not store the petition",
                    None,
                )
            }
        }
    }

    fn write_petition(
        &self,
        now: Millis,
        who: &Principal,
        fields: PetitionFields,
    ) -> Result<DocId, PetitionRefused> {
        use branchline_core::model::{self, NewPetition, Petition, Submitter, Timestamp};

        let new = NewPetition {
            category: fields.category,
            title: fields.title,
            description: fields.description,
            location: fields.location,
            submitter: Submitter {
                name: fields.name,
                contact: fields.contact,
                member: who.member.map(Into::into),
            },
        };
        let petition = Petition::submit(who.branch.into(), new, Timestamp(now))
            .map_err(|e| PetitionRefused::Invalid(e.to_string()))?;
        let doc = model::create_document(&petition, self.backend.server_actor())
            .map_err(|e| PetitionRefused::Failed(e.into()))?;
        let mut record = AuditRecord::new(audit::event::PETITION_SUBMITTED);
        record.device = Some(who.device);
        record.member = who.member;
        record.branch = Some(who.branch);
        // The quota counts these rows by the time it is judged by.
        record.at_ms = Some(now);
        let limit = self.settings.submissions_per_device_per_day;
        let guard = CreateGuard::PetitionQuota {
            device: who.device,
            since: now - submissions::DAY.as_millis() as i64,
            limit,
        };
        match self
            .backend
            .create_as_server(doc, Some(who.device), vec![record], guard)
        {
            Ok((doc_id, _)) => Ok(doc_id),
            Err(Error::LimitReached(limit)) => Err(PetitionRefused::RateLimited(limit)),
            Err(e) => Err(PetitionRefused::Failed(e)),
        }
    }

    /// `SubmitSuggestion`: the server puts the suggestion in the branch's
    /// feedback box (creating the box if the branch has none) as its own
    /// actor, with the day only.
    ///
    /// For an anonymous suggestion nothing that names this device is
    /// written or logged at info level or above: refusals are not audited
    /// (a refusal row would name the device), the audit row names only the
    /// branch and the box, and a storage failure is logged outside the
    /// connection's span (which carries the device id).
    fn submit_suggestion(&self, now: Millis, peer: &Peer, text: &str, anonymous: bool) -> Answer {
        let refuse = |code: ErrorCode, message: &str| {
            if anonymous {
                Answer::fail(code, message, None)
            } else {
                self.refused(peer, code, message)
            }
        };
        let who = &peer.principal;
        if who.role == Role::Resident {
            return refuse(
                ErrorCode::AccessDenied,
                "the feedback box is for the branch's members",
            );
        }
        if !anonymous && who.member.is_none() {
            return refuse(
                ErrorCode::InvalidRequest,
                "this device belongs to no member: send the suggestion anonymously",
            );
        }
        let text = match submissions::validate_suggestion(text) {
            Ok(text) => text,
            Err(invalid) => return refuse(ErrorCode::InvalidRequest, &invalid.to_string()),
        };
        let limit = self.settings.submissions_per_device_per_day;
        if !self.backend.take_suggestion(who.device, limit, now) {
            return refuse(
                ErrorCode::RateLimited,
                &format!("at most {limit} suggestions per device in 24 hours"),
            );
        }
        match self.write_suggestion(now, who, &text, anonymous) {
            Ok((doc_id, suggestion_id)) => {
                if !anonymous {
                    info!(doc = %doc_id, "suggestion submitted");
                }
                Answer::last(Message::SuggestionSubmitted {
                    doc_id,
                    suggestion_id,
                })
            }
            Err(e) => {
                if anonymous {
                    warn!(parent: None, error = %e, "cannot store an anonymous suggestion");
                } else {
                    warn!(error = %e, "cannot store a suggestion");
                }
                Answer::fail(
                    ErrorCode::Internal,
                    "the server could not store the suggestion",
                    None,
                )
            }
        }
    }

    /// Puts a suggestion in `who`'s branch's feedback box, creating the box
    /// if the branch has none. Returns the box and the suggestion's id.
    fn write_suggestion(
        &self,
        now: Millis,
        who: &Principal,
        text: &str,
        anonymous: bool,
    ) -> crate::Result<(DocId, String)> {
        use branchline_core::ids::SuggestionId;
        use branchline_core::model::{self, Date, DocKind, FeedbackBox};

        let id = SuggestionId::random();
        let author = if anonymous {
            None
        } else {
            who.member.map(Into::into)
        };
        // The day only, in the server's time zone (the branch's, in
        // practice): a time of day could be matched to who was connected
        // when.
        let on = Date(local_date(now));
        let record = if anonymous {
            AuditRecord {
                branch: Some(who.branch),
                ..AuditRecord::new(audit::event::SUGGESTION_ANONYMOUS_ACCEPTED)
            }
        } else {
            AuditRecord {
                device: Some(who.device),
                member: who.member,
                branch: Some(who.branch),
                detail: format!("suggestion {id}"),
                ..AuditRecord::new(audit::event::SUGGESTION_ACCEPTED)
            }
        };
        let add = |feedback: &mut FeedbackBox| feedback.add_suggestion(id, text, author, on);
        // Lowest id first: if two boxes ever exist, the lowest is the
        // branch's, the rule devices follow too.
        let existing = self
            .backend
            .documents_of_kind(who.branch, DocKind::FeedbackBox.as_str())
            .first()
            .copied();
        let existing = match existing {
            Some(doc_id) => doc_id,
            None => {
                let mut feedback = FeedbackBox::new(who.branch.into());
                add(&mut feedback)?;
                let doc = model::create_document(&feedback, self.backend.server_actor())?;
                // No creator: the box is the branch's, not the first sender's.
                match self.backend.create_as_server(
                    doc,
                    None,
                    vec![record.clone()],
                    CreateGuard::OnlyOneOfKind,
                ) {
                    Ok((doc_id, _)) => return Ok((doc_id, id.to_string())),
                    // Another request created the branch's box meanwhile:
                    // the suggestion goes into that one.
                    Err(Error::AlreadyExists(doc_id)) => doc_id,
                    Err(e) => return Err(e),
                }
            }
        };
        let mut edit = |doc: &mut automerge::AutoCommit| {
            model::edit(doc, |feedback: &mut FeedbackBox| add(feedback)).map_err(Into::into)
        };
        self.backend
            .edit_as_server(existing, vec![record], &mut edit)?;
        Ok((existing, id.to_string()))
    }
}

/// The calendar day of `now` in the server's time zone.
fn local_date(now: Millis) -> chrono::NaiveDate {
    use chrono::TimeZone as _;
    chrono::Local
        .timestamp_millis_opt(now)
        .single()
        .map(|time| time.date_naive())
        .unwrap_or_default()
}

fn auth_message(failure: AuthFailure) -> &'static str {
    match failure {
        AuthFailure::InviteInvalid => "no such invite code",
        AuthFailure::InviteExpired => "the invite has expired; ask for a new one",
        AuthFailure::InviteUsed => "the invite was already used; ask for a new one",
        AuthFailure::Unauthenticated => "unknown device or wrong secret",
        AuthFailure::DeviceRevoked => "this device was revoked; enroll again with a new invite",
        AuthFailure::RateLimited => {
            "this submission code registered too many phones in the last hour; try again later"
        }
    }
}
