//! One device's connection: Hello, manifest reconciliation, live notices on
//! the control stream, and the document and request streams it opens.
//!
//! Every failure a client can cause ends in an `Error` with a stable code on
//! the stream it concerns: a bad document stream ends that stream, a bad
//! control stream ends the connection. Nothing a client sends can end
//! another connection or the server.

use std::sync::Arc;
use std::time::Duration;

use branchline_protocol::bundle;
use branchline_protocol::manifest::MAX_RANGES_PER_REQUEST;
use branchline_protocol::{
    Credentials, DecodeError, DeviceId, DocId, ErrorCode, FrameCodec, Message, negotiate,
};
use futures_util::{SinkExt as _, StreamExt as _};
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, warn};

use crate::access::{self, Principal};
use crate::audit::{self, AuditRecord};
use crate::auth::{self, AuthFailure};
use crate::config::limits;
use crate::db;
use crate::endpoint::{ServerState, close_code};
use crate::storage::{ChangeNotice, StepContext};
use crate::submissions::{self, PetitionFields};

type Reader = FramedRead<RecvStream, FrameCodec>;
type Writer = FramedWrite<SendStream, FrameCodec>;

/// A write to the control stream that takes longer than this means the
/// client stopped reading; the connection is closed.
const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

fn error(code: ErrorCode, message: impl Into<String>, doc_id: Option<DocId>) -> Message {
    Message::Error {
        code,
        message: message.into(),
        doc_id,
    }
}

/// What ended the control loop.
enum End {
    /// The server is shutting down.
    Shutdown,
    /// The device was revoked.
    Revoked,
    /// The client broke the protocol; an Error was sent.
    ProtocolError,
    /// The client finished the control stream or closed the connection.
    ClientLeft,
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve_connection(state: Arc<ServerState>, conn: Connection) {
    let span = tracing::info_span!(
        "connection",
        remote = %conn.remote_address(),
        device = tracing::field::Empty,
        branch = tracing::field::Empty,
    );
    serve(state, conn).instrument(span).await;
}

async fn serve(state: Arc<ServerState>, conn: Connection) {
    let alpn_ok = conn
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol)
        .is_some_and(|protocol| protocol == branchline_protocol::ALPN);
    if !alpn_ok {
        conn.close(close_code::PROTOCOL_ERROR.into(), b"wrong ALPN");
        return;
    }
    let opened = tokio::select! {
        opened = tokio::time::timeout(limits::CONTROL_STREAM_OPEN, conn.accept_bi()) => opened,
        () = state.shutdown.cancelled() => {
            conn.close(close_code::SHUTDOWN.into(), b"server shutting down");
            return;
        }
    };
    let (send, recv) = match opened {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => {
            debug!(error = %e, "connection ended before the control stream");
            return;
        }
        Err(_) => {
            conn.close(close_code::PROTOCOL_ERROR.into(), b"no control stream");
            return;
        }
    };
    let mut reader = FramedRead::new(
        recv,
        FrameCodec::with_max_frame_len(limits::MAX_CONTROL_FRAME),
    );
    let mut writer = FramedWrite::new(send, FrameCodec::new());

    let said_hello = tokio::select! {
        said = hello(&state, &mut reader, &mut writer) => said,
        () = state.shutdown.cancelled() => {
            conn.close(close_code::SHUTDOWN.into(), b"server shutting down");
            return;
        }
    };
    let (principal, version) = match said_hello {
        Ok(hello) => hello,
        Err(()) => {
            refuse(&conn, writer, close_code::AUTH_FAILED).await;
            return;
        }
    };
    let span = tracing::Span::current();
    span.record("device", tracing::field::display(principal.device));
    span.record("branch", tracing::field::display(principal.branch));

    let id = state.hub.next_id();
    let revoked = state.hub.register(id, principal.device);
    // A revocation that landed between the credential check and the
    // registration would otherwise be missed.
    let device = principal.device;
    let still_valid = state
        .blocking(move |state| state.storage.read(|c| auth::device(c, device)))
        .await
        .ok()
        .flatten()
        .is_some_and(|record| !record.revoked);
    if !still_valid {
        revoked.cancel();
    }
    info!(role = %principal.role, "device connected");

    let end = control_loop(
        &state,
        &conn,
        id,
        &principal,
        version,
        &revoked,
        reader,
        &mut writer,
    )
    .await;
    state.hub.unregister(id);
    match end {
        End::Shutdown => {
            let _ = writer.get_mut().finish();
            conn.close(close_code::SHUTDOWN.into(), b"server shutting down");
        }
        End::Revoked => {
            info!("device revoked; closing its connection");
            let revoked = error(ErrorCode::DeviceRevoked, "this device was revoked", None);
            let _ = tokio::time::timeout(limits::ERROR_FLUSH, writer.send(revoked)).await;
            refuse(&conn, writer, close_code::REVOKED).await;
        }
        End::ProtocolError => refuse(&conn, writer, close_code::PROTOCOL_ERROR).await,
        End::ClientLeft => {
            let _ = writer.get_mut().finish();
            conn.close(close_code::NORMAL.into(), b"bye");
        }
    }
    info!("connection ended");
}

/// Finishes the control stream, gives the last message a moment to reach
/// the client, and closes the connection with `code`.
async fn refuse(conn: &Connection, mut writer: Writer, code: u32) {
    let send = writer.get_mut();
    if send.finish().is_ok() {
        let _ = tokio::time::timeout(limits::ERROR_FLUSH, send.stopped()).await;
    }
    conn.close(code.into(), b"");
}

async fn send_control(writer: &mut Writer, message: Message) -> Result<(), ()> {
    match tokio::time::timeout(CONTROL_WRITE_TIMEOUT, writer.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            debug!(error = %e, "control write failed");
            Err(())
        }
        Err(_) => {
            warn!("client stopped reading the control stream");
            Err(())
        }
    }
}

/// Reads and answers Hello; `Err` means an Error was sent and the
/// connection must close.
async fn hello(
    state: &Arc<ServerState>,
    reader: &mut Reader,
    writer: &mut Writer,
) -> Result<(Principal, u16), ()> {
    let first = tokio::time::timeout(limits::FIRST_MESSAGE, reader.next()).await;
    let (version, min_version, credentials) = match first {
        Err(_) => {
            let _ = send_control(
                writer,
                error(ErrorCode::Unauthenticated, "no Hello within 10 s", None),
            )
            .await;
            return Err(());
        }
        Ok(None) => return Err(()),
        Ok(Some(Err(e))) => {
            let _ = send_control(writer, decode_error(&e, None)).await;
            return Err(());
        }
        Ok(Some(Ok(Message::Hello {
            version,
            min_version,
            credentials,
        }))) => (version, min_version, credentials),
        Ok(Some(Ok(other))) => {
            let _ = send_control(
                writer,
                error(
                    ErrorCode::Unauthenticated,
                    format!("the first message must be Hello, not {}", other.name()),
                    None,
                ),
            )
            .await;
            return Err(());
        }
    };
    let version = match negotiate(min_version, version) {
        Ok(version) => version,
        Err(code) => {
            let message = format!(
                "this server speaks protocol versions {}..={}",
                branchline_protocol::MIN_SUPPORTED_VERSION,
                branchline_protocol::PROTOCOL_VERSION
            );
            let _ = send_control(writer, error(code, message, None)).await;
            return Err(());
        }
    };
    let outcome = match credentials {
        Credentials::Enroll {
            invite_code,
            device_name,
            actor_id,
        } => {
            if actor_id.is_empty() || actor_id.len() > limits::MAX_ACTOR_ID {
                let _ = send_control(
                    writer,
                    error(ErrorCode::Malformed, "actor id must be 1 to 64 bytes", None),
                )
                .await;
                return Err(());
            }
            let residents_per_hour = state.resident_registrations_per_hour;
            state
                .storage
                .writer()
                .run(move |conn| {
                    auth::enroll(
                        conn,
                        &invite_code,
                        &device_name,
                        &actor_id,
                        residents_per_hour,
                    )
                })
                .await
                .map(|outcome| outcome.map(|(record, secret)| (record, Some(secret))))
        }
        Credentials::Device { device_id, secret } => {
            let checked = state
                .blocking(move |state| {
                    state
                        .storage
                        .read(|conn| auth::check_device(conn, device_id, &secret))
                })
                .await;
            if let Ok(Err(failure)) = &checked {
                audit_auth_failure(state, device_id, *failure);
            }
            checked.map(|outcome| outcome.map(|record| (record, None)))
        }
    };
    let (record, secret) = match outcome {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(failure)) => {
            info!(code = %failure.code(), "hello refused");
            let _ = send_control(writer, error(failure.code(), auth_message(failure), None)).await;
            return Err(());
        }
        Err(e) => {
            warn!(error = %e, "cannot check credentials");
            let _ = send_control(
                writer,
                error(
                    ErrorCode::Internal,
                    "the server cannot check credentials now",
                    None,
                ),
            )
            .await;
            return Err(());
        }
    };
    let device_id = record.device_id;
    let _ = state
        .storage
        .writer()
        .submit(move |conn| auth::touch(conn, device_id));
    let principal = Principal {
        device: record.device_id,
        role: record.role,
        branch: record.branch,
        member: record.member,
    };
    let welcome = Message::Welcome {
        version,
        server_time_ms: db::now_ms(),
        device_id: record.device_id,
        member_id: record.member,
        branch_id: record.branch,
        role: record.role,
        device_secret: secret,
    };
    send_control(writer, welcome).await?;
    Ok((principal, version))
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

fn audit_auth_failure(state: &ServerState, device: DeviceId, failure: AuthFailure) {
    let mut record = crate::audit::AuditRecord::new(crate::audit::event::AUTH_REFUSED);
    record.device = Some(device);
    record.code = Some(failure.code().as_str().to_owned());
    let _ = state
        .storage
        .writer()
        .submit(move |conn| record.insert(conn));
}

fn decode_error(e: &DecodeError, doc_id: Option<DocId>) -> Message {
    error(e.code(), e.to_string(), doc_id)
}

/// Runs the control stream after Welcome until the connection ends.
#[allow(clippy::too_many_arguments)]
async fn control_loop(
    state: &Arc<ServerState>,
    conn: &Connection,
    id: u64,
    principal: &Principal,
    version: u16,
    revoked: &CancellationToken,
    mut reader: Reader,
    writer: &mut Writer,
) -> End {
    crate::endpoint::catch_up(state).await;
    // Subscribe before the manifest is taken, so no change falls between.
    let mut notices = state.storage.subscribe();
    let mut last_seq = state.storage.last_seq();
    let who = principal.clone();
    let Ok(manifest) = state
        .blocking(move |state| Ok(state.storage.readable_manifest(&who)))
        .await
    else {
        return End::Shutdown;
    };
    // A client that finishes or stops reading its control stream keeps its
    // document and request streams; it only stops hearing notices.
    let mut control = ControlState {
        readable: true,
        writable: true,
    };
    control.send(writer, manifest.digest_message()).await;

    let streams_done = CancellationToken::new();
    let mut streams = JoinSet::new();
    let end = loop {
        tokio::select! {
            biased;
            () = state.shutdown.cancelled() => break End::Shutdown,
            () = revoked.cancelled() => break End::Revoked,
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
            message = reader.next(), if control.readable => match message {
                None => {
                    debug!("the client finished its control stream");
                    control.readable = false;
                }
                Some(Err(e)) => {
                    warn!(error = %e, "bad frame on the control stream");
                    control.send(writer, decode_error(&e, None)).await;
                    break End::ProtocolError;
                }
                Some(Ok(Message::ManifestDigest { .. })) => {
                    // The client's digest; the client compares ours with it.
                }
                Some(Ok(Message::ManifestRanges { ranges })) => {
                    if ranges.len() > MAX_RANGES_PER_REQUEST {
                        control.send(writer, error(
                            ErrorCode::Malformed,
                            format!("at most {MAX_RANGES_PER_REQUEST} ranges per request"),
                            None,
                        )).await;
                        break End::ProtocolError;
                    }
                    let who = principal.clone();
                    let answer = state
                        .blocking(move |state| {
                            Ok(state.storage.readable_manifest(&who).respond(&ranges))
                        })
                        .await;
                    let Ok(answer) = answer else { break End::Shutdown };
                    for message in answer {
                        control.send(writer, message).await;
                    }
                }
                Some(Ok(other)) => {
                    control.send(writer, error(
                        ErrorCode::Malformed,
                        format!("{} does not belong on the control stream", other.name()),
                        None,
                    )).await;
                    break End::ProtocolError;
                }
            },
            notice = notices.recv(), if control.writable => {
                let batch = match notice {
                    Ok(notice) => vec![notice],
                    Err(RecvError::Lagged(missed)) => {
                        debug!(missed, "fell behind the change broadcast; catching up");
                        state.storage.changed_since(last_seq)
                    }
                    Err(RecvError::Closed) => break End::Shutdown,
                };
                for notice in batch {
                    last_seq = last_seq.max(notice.seq);
                    if let Some(message) = notice_for(state, id, principal, &notice) {
                        control.send(writer, message).await;
                    }
                }
            }
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let stream = StreamTask {
                        state: state.clone(),
                        principal: principal.clone(),
                        version,
                        connection: id,
                        stop: streams_done.clone(),
                    };
                    streams.spawn(stream.run(send, recv).in_current_span());
                }
                Err(_) => break End::ClientLeft,
            },
        }
    };
    // In-flight document steps finish (their changes are stored and
    // acknowledged); streams then stop at their next message.
    streams_done.cancel();
    let drained = tokio::time::timeout(limits::SHUTDOWN_GRACE, async {
        while streams.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("streams did not finish in time");
        streams.abort_all();
    }
    end
}

/// Whether the control stream can still be read and written.
struct ControlState {
    readable: bool,
    writable: bool,
}

impl ControlState {
    /// Sends on the control stream unless it failed before; a failure (the
    /// client stopped reading) turns further sends off.
    async fn send(&mut self, writer: &mut Writer, message: Message) {
        if self.writable && send_control(writer, message).await.is_err() {
            self.writable = false;
        }
    }
}

/// The `DocChanged` for `principal` about `notice`, if it concerns it.
fn notice_for(
    state: &ServerState,
    id: u64,
    principal: &Principal,
    notice: &ChangeNotice,
) -> Option<Message> {
    if notice.origin == Some(id) {
        return None;
    }
    state
        .storage
        .decide(principal, &notice.attrs)
        .read
        .then(|| Message::DocChanged {
            doc_id: notice.doc_id,
            heads: notice.heads.clone(),
        })
}

/// One document or request stream.
struct StreamTask {
    state: Arc<ServerState>,
    principal: Principal,
    /// The protocol version agreed at Hello.
    version: u16,
    connection: u64,
    stop: CancellationToken,
}

impl StreamTask {
    async fn run(self, send: SendStream, recv: RecvStream) {
        let mut reader =
            FramedRead::new(recv, FrameCodec::with_max_frame_len(limits::MAX_DOC_FRAME));
        let mut writer = FramedWrite::new(send, FrameCodec::new());
        let first = tokio::select! {
            () = self.stop.cancelled() => return,
            first = tokio::time::timeout(limits::FIRST_MESSAGE, reader.next()) => first,
        };
        let reply = match first {
            Err(_) => Some(error(ErrorCode::Malformed, "no message within 10 s", None)),
            Ok(None) => None,
            Ok(Some(Err(e))) => Some(decode_error(&e, None)),
            Ok(Some(Ok(Message::SyncDoc { doc_id, payload }))) => {
                let span = tracing::debug_span!("doc", doc = %doc_id);
                self.sync_document(doc_id, payload, &mut reader, &mut writer)
                    .instrument(span)
                    .await;
                None
            }
            Ok(Some(Ok(Message::GetDocuments { doc_ids }))) => {
                self.send_documents(doc_ids, &mut writer).await
            }
            Ok(Some(Ok(Message::CreateInvite {
                role,
                member_id,
                valid_for_secs,
            }))) => Some(self.create_invite(role, member_id, valid_for_secs).await),
            Ok(Some(Ok(Message::RevokeDevice { device_id }))) => {
                Some(self.revoke_device(device_id).await)
            }
            Ok(Some(Ok(Message::GetSubmissionCode))) => Some(self.get_submission_code().await),
            Ok(Some(Ok(Message::SubmitPetition {
                category,
                title,
                description,
                location,
                name,
                contact,
            }))) => {
                let fields = PetitionFields::validate(
                    &category,
                    &title,
                    &description,
                    location.as_deref(),
                    name.as_deref(),
                    contact.as_deref(),
                );
                Some(match fields {
                    Ok(fields) => self.submit_petition(fields).await,
                    Err(invalid) => self.refused(ErrorCode::InvalidRequest, &invalid.to_string()),
                })
            }
            Ok(Some(Ok(Message::SubmitSuggestion { text, anonymous }))) => {
                Some(self.submit_suggestion(&text, anonymous).await)
            }
            Ok(Some(Ok(other))) => Some(error(
                ErrorCode::Malformed,
                format!("a stream cannot start with {}", other.name()),
                None,
            )),
        };
        if let Some(reply) = reply {
            let _ = tokio::time::timeout(limits::STREAM_IDLE, writer.send(reply)).await;
        }
        let _ = writer.get_mut().finish();
    }

    /// Serves `SyncDoc` messages for `doc_id` until the client finishes.
    async fn sync_document(
        &self,
        doc_id: DocId,
        mut payload: Vec<u8>,
        reader: &mut Reader,
        writer: &mut Writer,
    ) {
        let device = self.principal.device;
        let Ok(mut sync_state) = self
            .state
            .blocking(move |state| Ok(state.storage.sync_state(device, doc_id)))
            .await
        else {
            return;
        };
        let cx = StepContext {
            principal: self.principal.clone(),
            connection: self.connection,
            doc_id,
        };
        loop {
            let step_cx = cx.clone();
            let stepped = self
                .state
                .blocking(move |state| {
                    let outcome = state.storage.sync_step(&step_cx, &mut sync_state, &payload);
                    Ok((outcome, sync_state))
                })
                .await;
            let Ok((outcome, state_back)) = stepped else {
                let _ = writer
                    .send(error(
                        ErrorCode::Internal,
                        "the server is stopping",
                        Some(doc_id),
                    ))
                    .await;
                return;
            };
            sync_state = state_back;
            match outcome {
                Ok(outcome) => {
                    let (messages, end) = outcome.into_messages(doc_id, self.version);
                    for message in messages {
                        if self.send(writer, message).await.is_err() {
                            return;
                        }
                    }
                    if end {
                        // Changes were refused: this sync is over, and the
                        // device starts the document afresh.
                        self.state
                            .storage
                            .save_sync_state(device, doc_id, &sync_state);
                        return;
                    }
                }
                Err(refused) => {
                    info!(code = %refused.code, reason = %refused.message, "document sync refused");
                    self.state.storage.audit_refusal(
                        Some(&self.principal),
                        Some(doc_id),
                        &refused.code,
                        refused.message.clone(),
                    );
                    let _ = self
                        .send(writer, error(refused.code, refused.message, Some(doc_id)))
                        .await;
                    return;
                }
            }
            let next = tokio::select! {
                () = self.stop.cancelled() => return,
                next = tokio::time::timeout(limits::STREAM_IDLE, reader.next()) => next,
            };
            payload = match next {
                Err(_) => {
                    let _ = self
                        .send(
                            writer,
                            error(ErrorCode::Malformed, "stream idle too long", Some(doc_id)),
                        )
                        .await;
                    return;
                }
                Ok(None) => {
                    // The client finished: the sync is complete.
                    let storage = &self.state.storage;
                    storage.save_sync_state(device, doc_id, &sync_state);
                    return;
                }
                Ok(Some(Err(e))) => {
                    let _ = self.send(writer, decode_error(&e, Some(doc_id))).await;
                    return;
                }
                Ok(Some(Ok(Message::SyncDoc {
                    doc_id: other,
                    payload,
                }))) if other == doc_id => payload,
                Ok(Some(Ok(other))) => {
                    let _ = self
                        .send(
                            writer,
                            error(
                                ErrorCode::Malformed,
                                format!("{} does not belong on this document stream", other.name()),
                                Some(doc_id),
                            ),
                        )
                        .await;
                    return;
                }
            };
        }
    }

    /// Answers `GetDocuments`: the documents the device may read, whole, in
    /// bundles; then the caller finishes the stream. An error message if the
    /// request is refused outright.
    async fn send_documents(&self, doc_ids: Vec<DocId>, writer: &mut Writer) -> Option<Message> {
        if self.version < 3 {
            return Some(error(
                ErrorCode::Malformed,
                "GetDocuments needs protocol version 3",
                None,
            ));
        }
        if doc_ids.len() > bundle::MAX_DOCS_PER_REQUEST {
            return Some(self.refused(
                ErrorCode::InvalidRequest,
                &format!(
                    "at most {} documents per request",
                    bundle::MAX_DOCS_PER_REQUEST
                ),
            ));
        }
        let doc_ids: Arc<[DocId]> = doc_ids.into();
        let mut from = 0;
        let mut sent = 0;
        loop {
            let principal = self.principal.clone();
            let ids = Arc::clone(&doc_ids);
            let next = self
                .state
                .blocking(move |state| state.storage.next_bundle(&principal, &ids, from))
                .await;
            let (bundle, after) = match next {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "cannot read documents to send whole");
                    return Some(error(
                        ErrorCode::Internal,
                        "cannot read the documents",
                        None,
                    ));
                }
            };
            sent += 1;
            if self
                .send(writer, Message::Documents { bundle })
                .await
                .is_err()
            {
                return None;
            }
            from = after;
        }
        debug!(
            asked = doc_ids.len(),
            bundles = sent,
            "sent documents whole"
        );
        None
    }

    async fn send(&self, writer: &mut Writer, message: Message) -> Result<(), ()> {
        match tokio::time::timeout(limits::STREAM_IDLE, writer.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    fn refused(&self, code: ErrorCode, message: &str) -> Message {
        self.state
            .storage
            .audit_refusal(Some(&self.principal), None, &code, message.to_owned());
        error(code, message, None)
    }

    async fn create_invite(
        &self,
        role: branchline_protocol::Role,
        member: Option<branchline_protocol::MemberId>,
        valid_for_secs: u32,
    ) -> Message {
        if !access::may_invite(&self.principal, role) {
            return self.refused(
                ErrorCode::AccessDenied,
                &format!("a {} may not invite a {role}", self.principal.role),
            );
        }
        if valid_for_secs == 0 {
            return error(
                ErrorCode::Malformed,
                "an invite must be valid for some time",
                None,
            );
        }
        let valid_for = Duration::from_secs(valid_for_secs.into()).min(limits::MAX_INVITE_VALIDITY);
        let branch = self.principal.branch;
        let by = self.principal.device;
        let created = self
            .state
            .storage
            .writer()
            .run(move |conn| auth::create_invite(conn, branch, role, member, valid_for, Some(by)))
            .await;
        match created {
            Ok(invite) => {
                info!(%role, "invite created");
                Message::InviteCreated {
                    invite: self.state.link(invite.code).to_string(),
                    expires_at_ms: invite.expires_at_ms,
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot create an invite");
                error(
                    ErrorCode::Internal,
                    "the server could not create the invite",
                    None,
                )
            }
        }
    }

    /// `GetSubmissionCode`: the branch's public submission link (created on
    /// first use), for the committee to print or show as a QR code.
    async fn get_submission_code(&self) -> Message {
        if !self.principal.is_committee() {
            return self.refused(
                ErrorCode::AccessDenied,
                "only the committee may see the branch's submission code",
            );
        }
        let branch = self.principal.branch;
        let code = self
            .state
            .storage
            .writer()
            .run(move |conn| auth::submission_code(conn, branch, false))
            .await;
        match code {
            Ok(code) => Message::SubmissionCode {
                link: self.state.link(code).to_string(),
            },
            Err(e) => {
                warn!(error = %e, "cannot read the submission code");
                error(
                    ErrorCode::Internal,
                    "the server could not read the submission code",
                    None,
                )
            }
        }
    }

    /// `SubmitPetition` (already validated): the server writes the petition
    /// as its own actor, for this device, unless the device reached its
    /// daily limit.
    async fn submit_petition(&self, fields: PetitionFields) -> Message {
        let who = self.principal.clone();
        let written = self
            .state
            .blocking(move |state| Ok(write_petition(state, &who, fields)))
            .await
            .unwrap_or_else(|e| Err(PetitionRefused::Failed(e)));
        match written {
            Ok(doc_id) => {
                info!(doc = %doc_id, "petition submitted");
                Message::PetitionSubmitted { doc_id }
            }
            Err(PetitionRefused::RateLimited(limit)) => self.refused(
                ErrorCode::RateLimited,
                &format!("at most {limit} petitions per device in 24 hours"),
            ),
            Err(PetitionRefused::Invalid(reason)) => {
                self.refused(ErrorCode::InvalidRequest, &reason)
            }
            Err(PetitionRefused::Failed(e)) => {
                warn!(error = %e, "cannot store a petition");
                error(
                    ErrorCode::Internal,
                    "the server could not store the petition",
                    None,
                )
            }
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
    async fn submit_suggestion(&self, text: &str, anonymous: bool) -> Message {
        let refuse = |code: ErrorCode, message: &str| {
            if anonymous {
                error(code, message, None)
            } else {
                self.refused(code, message)
            }
        };
        if self.principal.role == branchline_protocol::Role::Resident {
            return refuse(
                ErrorCode::AccessDenied,
                "the feedback box is for the branch's members",
            );
        }
        if !anonymous && self.principal.member.is_none() {
            return refuse(
                ErrorCode::InvalidRequest,
                "this device belongs to no member: send the suggestion anonymously",
            );
        }
        let text = match submissions::validate_suggestion(text) {
            Ok(text) => text,
            Err(invalid) => return refuse(ErrorCode::InvalidRequest, &invalid.to_string()),
        };
        let limit = self.state.submissions_per_device_per_day;
        if !self
            .state
            .suggestions
            .try_take(self.principal.device, limit, std::time::Instant::now())
        {
            return refuse(
                ErrorCode::RateLimited,
                &format!("at most {limit} suggestions per device in 24 hours"),
            );
        }
        let who = self.principal.clone();
        let written = self
            .state
            .blocking(move |state| write_suggestion(state, &who, &text, anonymous))
            .await;
        match written {
            Ok((doc_id, suggestion_id)) => {
                if !anonymous {
                    info!(doc = %doc_id, "suggestion submitted");
                }
                Message::SuggestionSubmitted {
                    doc_id,
                    suggestion_id,
                }
            }
            Err(e) => {
                if anonymous {
                    warn!(parent: None, error = %e, "cannot store an anonymous suggestion");
                } else {
                    warn!(error = %e, "cannot store a suggestion");
                }
                error(
                    ErrorCode::Internal,
                    "the server could not store the suggestion",
                    None,
                )
            }
        }
    }

    async fn revoke_device(&self, device: DeviceId) -> Message {
        let target = self
            .state
            .blocking(move |state| state.storage.read(|conn| auth::device(conn, device)))
            .await;
        let target = match target {
            Ok(target) => target,
            Err(e) => {
                warn!(error = %e, "cannot read the device");
                return error(
                    ErrorCode::Internal,
                    "the server could not read the device",
                    None,
                );
            }
        };
        // An unknown device and a device of another branch look the same.
        let allowed = target
            .as_ref()
            .is_some_and(|record| access::may_revoke(&self.principal, record.branch));
        if !allowed {
            return self.refused(
                ErrorCode::AccessDenied,
                "only the secretary of the device's branch may revoke it",
            );
        }
        let by = self.principal.device;
        let revoked = self
            .state
            .storage
            .writer()
            .run(move |conn| auth::revoke(conn, device, Some(by)))
            .await;
        if let Err(e) = revoked {
            warn!(error = %e, "cannot revoke the device");
            return error(
                ErrorCode::Internal,
                "the server could not revoke the device",
                None,
            );
        }
        let closed = self.state.hub.revoke(device);
        info!(revoked = %device, connections = closed, "device revoked");
        Message::DeviceRevoked { device_id: device }
    }
}

/// Why a petition was not written.
enum PetitionRefused {
    /// The device reached its daily limit (the limit).
    RateLimited(u32),
    /// The model refused the fields.
    Invalid(String),
    /// Storage failed.
    Failed(crate::error::Error),
}

/// Checks the device's daily limit and writes its petition (blocking).
fn write_petition(
    state: &ServerState,
    who: &Principal,
    fields: PetitionFields,
) -> Result<DocId, PetitionRefused> {
    use branchline_core::model::{self, NewPetition, Petition, Submitter, Timestamp};

    let _one_at_a_time = state
        .petition_lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let limit = state.submissions_per_device_per_day;
    let since = db::now_ms() - submissions::DAY.as_millis() as i64;
    let device = who.device;
    let sent = state
        .storage
        .read(|conn| submissions::petitions_submitted_since(conn, device, since))
        .map_err(PetitionRefused::Failed)?;
    if sent >= u64::from(limit) {
        return Err(PetitionRefused::RateLimited(limit));
    }
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
    let petition = Petition::submit(who.branch.into(), new, Timestamp::now())
        .map_err(|e| PetitionRefused::Invalid(e.to_string()))?;
    let doc = model::create_document(&petition, state.storage.server_actor().clone())
        .map_err(|e| PetitionRefused::Failed(e.into()))?;
    let mut record = AuditRecord::new(audit::event::PETITION_SUBMITTED);
    record.device = Some(who.device);
    record.member = who.member;
    record.branch = Some(who.branch);
    let (doc_id, _) = state
        .storage
        .create_as_server(doc, Some(who.device), vec![record])
        .map_err(PetitionRefused::Failed)?;
    Ok(doc_id)
}

/// Puts a suggestion in `who`'s branch's feedback box, creating the box if
/// the branch has none (blocking). Returns the box and the suggestion's id.
fn write_suggestion(
    state: &ServerState,
    who: &Principal,
    text: &str,
    anonymous: bool,
) -> crate::error::Result<(DocId, String)> {
    use branchline_core::ids::SuggestionId;
    use branchline_core::model::{self, Date, FeedbackBox};

    // One box per branch: finding and creating it must not interleave.
    let _one_at_a_time = state
        .feedback_lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let id = SuggestionId::random();
    let author = if anonymous {
        None
    } else {
        who.member.map(Into::into)
    };
    // The day only, in the server's time zone (the branch's, in practice):
    // a time of day could be matched to who was connected when.
    let on = Date(chrono::Local::now().date_naive());
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
    let storage = &state.storage;
    // Lowest id first: if two boxes ever exist, the lowest is the branch's,
    // the rule devices follow too.
    let existing = storage
        .documents_of_kind(
            who.branch,
            branchline_core::model::DocKind::FeedbackBox.as_str(),
        )
        .first()
        .copied();
    let doc_id = match existing {
        Some(doc_id) => {
            storage.edit_as_server(doc_id, vec![record], |doc| {
                model::edit(doc, |feedback: &mut FeedbackBox| {
                    feedback.add_suggestion(id, text, author, on)
                })
                .map_err(Into::into)
            })?;
            doc_id
        }
        None => {
            let mut feedback = FeedbackBox::new(who.branch.into());
            feedback.add_suggestion(id, text, author, on)?;
            let doc = model::create_document(&feedback, storage.server_actor().clone())?;
            // No creator: the box is the branch's, not the first sender's.
            storage.create_as_server(doc, None, vec![record])?.0
        }
    };
    Ok((doc_id, id.to_string()))
}
