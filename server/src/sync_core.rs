//! The server's sync logic without sockets, tasks or clocks: what the server
//! answers to each message of one device's connection.
//!
//! The QUIC session (`session`) and this core call the same storage, access
//! and credential functions: `auth::enroll` and `auth::check_device` for
//! `Hello`, the readable manifest and its `respond` for reconciliation,
//! [`Storage::sync_step`] for every `SyncDoc` (access, header checks, durable
//! store before the `Ack`), and the same access decision for `DocChanged`.
//! Only the I/O differs: here every call runs to completion on the caller's
//! thread, and every write it makes has committed when it returns (the sync
//! state saved at the end of a document stream too), so a caller that drops
//! the core at any point between two calls has crashed it with exactly what
//! the disk holds.
//!
//! Left out, because no sync outcome depends on them: the audit entries for
//! refused requests and failed sign-ins, the device's last-seen time, the
//! invite and revocation requests, and the polling for what the admin CLI
//! wrote (a core sees the documents the CLI wrote as of its opening).
//!
//! Deterministic simulations and fuzz tests drive it (`tests/`); it is not
//! meant for serving real devices.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use automerge::sync;
use branchline_protocol::bundle;
use branchline_protocol::manifest::MAX_RANGES_PER_REQUEST;
use branchline_protocol::{Credentials, DocId, ErrorCode, Message, negotiate};
use tokio::sync::broadcast;

use crate::access::Principal;
use crate::auth;
use crate::db;
use crate::error::{Error, Result};
use crate::storage::{CacheOptions, ChangeNotice, StepContext, Storage};

/// The server's sync logic over its data directory; see the [module docs](self).
pub struct SyncCore {
    storage: Storage,
    next_connection: u64,
}

/// One device's connection as the core sees it, after a welcomed `Hello`.
pub struct Peer {
    principal: Principal,
    connection: u64,
    notices: broadcast::Receiver<Arc<ChangeNotice>>,
    last_seq: i64,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("principal", &self.principal)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// The device, its role, branch and member.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
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

/// What the server does with one message on a stream.
#[derive(Debug)]
pub struct Answer {
    /// Messages to send on the same stream, in order.
    pub messages: Vec<Message>,
    /// The server ends the stream (finishes its send side) after them; on the
    /// control stream this closes the connection.
    pub end: bool,
}

impl Answer {
    fn reply(messages: Vec<Message>) -> Self {
        Answer {
            messages,
            end: false,
        }
    }

    fn fail(code: ErrorCode, message: impl Into<String>, doc_id: Option<DocId>) -> Self {
        Answer {
            messages: vec![Message::Error {
                code,
                message: message.into(),
                doc_id,
            }],
            end: true,
        }
    }
}

impl SyncCore {
    /// Opens the server database in `data_dir` (created if needed).
    pub fn open(data_dir: &Path) -> Result<SyncCore> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Internal(format!("data directory: {e}")))?;
        let options = CacheOptions {
            idle_unload: Duration::from_secs(300),
            max_loaded: 1_000,
            validate_changes: true,
        };
        let storage = Storage::open(&data_dir.join(db::FILE_NAME), options)?;
        Ok(SyncCore {
            storage,
            next_connection: 1,
        })
    }

    /// Answers the first message of a connection's control stream: a
    /// welcomed `Hello` gives the peer and `Welcome` plus the server's
    /// digest; anything else gives the `Error` to send before closing.
    // The refusal is the message to send as it is; boxing it would only
    // move the allocation to every caller.
    #[allow(clippy::result_large_err)]
    pub fn hello(
        &mut self,
        message: Message,
    ) -> std::result::Result<(Peer, Vec<Message>), Message> {
        let refuse = |code: ErrorCode, why: &str| Message::Error {
            code,
            message: why.to_owned(),
            doc_id: None,
        };
        let Message::Hello {
            version,
            min_version,
            credentials,
        } = message
        else {
            return Err(refuse(
                ErrorCode::Unauthenticated,
                "the first message must be Hello",
            ));
        };
        let version = negotiate(min_version, version).map_err(|code| refuse(code, "version"))?;
        let outcome = match credentials {
            Credentials::Enroll {
                invite_code,
                device_name,
                actor_id,
            } => {
                if actor_id.is_empty() || actor_id.len() > crate::config::limits::MAX_ACTOR_ID {
                    return Err(refuse(
                        ErrorCode::Malformed,
                        "actor id must be 1 to 64 bytes",
                    ));
                }
                self.write(move |conn| {
                    auth::enroll(
                        conn,
                        &invite_code,
                        &device_name,
                        &actor_id,
                        crate::config::DEFAULT_RESIDENTS_PER_HOUR,
                    )
                })
                .map(|outcome| outcome.map(|(record, secret)| (record, Some(secret))))
            }
            Credentials::Device { device_id, secret } => self
                .storage
                .read(|conn| auth::check_device(conn, device_id, &secret))
                .map(|outcome| outcome.map(|record| (record, None))),
        };
        let (record, secret) = match outcome {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(failure)) => return Err(refuse(failure.code(), "refused")),
            Err(_) => return Err(refuse(ErrorCode::Internal, "cannot check credentials")),
        };
        let principal = Principal {
            device: record.device_id,
            role: record.role,
            branch: record.branch,
            member: record.member,
        };
        let connection = self.next_connection;
        self.next_connection += 1;
        // Subscribe before the manifest is taken, as the session does.
        let notices = self.storage.subscribe();
        let last_seq = self.storage.last_seq();
        let digest = self.storage.readable_manifest(&principal).digest_message();
        let welcome = Message::Welcome {
            version,
            server_time_ms: db::now_ms(),
            device_id: record.device_id,
            member_id: record.member,
            branch_id: record.branch,
            role: record.role,
            device_secret: secret,
        };
        let peer = Peer {
            principal,
            connection,
            notices,
            last_seq,
        };
        Ok((peer, vec![welcome, digest]))
    }

    /// Answers a message on the control stream after `Welcome`.
    pub fn control(&self, peer: &Peer, message: Message) -> Answer {
        match message {
            Message::ManifestDigest { .. } => Answer::reply(Vec::new()),
            Message::ManifestRanges { ranges } => {
                if ranges.len() > MAX_RANGES_PER_REQUEST {
                    return Answer::fail(
                        ErrorCode::Malformed,
                        format!("at most {MAX_RANGES_PER_REQUEST} ranges per request"),
                        None,
                    );
                }
                let manifest = self.storage.readable_manifest(&peer.principal);
                Answer::reply(manifest.respond(&ranges))
            }
            other => Answer::fail(
                ErrorCode::Malformed,
                format!("{} does not belong on the control stream", other.name()),
                None,
            ),
        }
    }

    /// Answers the first message of a new stream: a `SyncDoc` opens a
    /// document stream; `GetDocuments` is answered with its bundles and the
    /// stream ends; anything else ends the stream with an `Error` (requests
    /// for invites and revocations are not part of the core).
    pub fn open_stream(&self, peer: &Peer, message: Message) -> (Option<DocStream>, Answer) {
        match message {
            Message::SyncDoc { doc_id, payload } => {
                let mut stream = DocStream {
                    doc_id,
                    state: self.storage.sync_state(peer.principal.device, doc_id),
                };
                let answer = self.step(peer, &mut stream, &payload);
                let open = (!answer.end).then_some(stream);
                (open, answer)
            }
            Message::GetDocuments { doc_ids } => (None, self.documents(peer, &doc_ids)),
            other => (
                None,
                Answer::fail(
                    ErrorCode::Malformed,
                    format!("a stream cannot start with {}", other.name()),
                    None,
                ),
            ),
        }
    }

    /// The bundles answering `GetDocuments`, as the QUIC server sends them.
    fn documents(&self, peer: &Peer, doc_ids: &[DocId]) -> Answer {
        if doc_ids.len() > bundle::MAX_DOCS_PER_REQUEST {
            return Answer::fail(ErrorCode::InvalidRequest, "too many documents", None);
        }
        let mut messages = Vec::new();
        let mut from = 0;
        loop {
            match self.storage.next_bundle(&peer.principal, doc_ids, from) {
                Ok(Some((bundle, next))) => {
                    messages.push(Message::Documents { bundle });
                    from = next;
                }
                Ok(None) => break,
                Err(e) => return Answer::fail(ErrorCode::Internal, e.to_string(), None),
            }
        }
        Answer {
            messages,
            end: true,
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

    /// The client finished a document stream: the sync state is saved
    /// (committed when this returns).
    pub fn finish_stream(&self, peer: &Peer, stream: DocStream) {
        let bytes = stream.state.encode();
        let device = peer.principal.device;
        let doc_id = stream.doc_id;
        let _ = self.write(move |conn| {
            crate::storage::documents::save_sync_state(conn, device, doc_id, &bytes)
        });
    }

    /// `DocChanged` notices for `peer` about documents other connections
    /// changed since the last call.
    pub fn notices(&self, peer: &mut Peer) -> Vec<Message> {
        let mut batch = Vec::new();
        loop {
            match peer.notices.try_recv() {
                Ok(notice) => batch.push(notice),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    batch.extend(self.storage.changed_since(peer.last_seq));
                    break;
                }
                Err(_) => break,
            }
        }
        let mut out = Vec::new();
        for notice in batch {
            peer.last_seq = peer.last_seq.max(notice.seq);
            if notice.origin == Some(peer.connection) {
                continue;
            }
            if self.storage.decide(&peer.principal, &notice.attrs).read {
                out.push(Message::DocChanged {
                    doc_id: notice.doc_id,
                    heads: notice.heads.clone(),
                });
            }
        }
        out
    }

    /// Every document `peer`'s device may read, with its heads, in id order.
    pub fn readable(&self, peer: &Peer) -> branchline_protocol::manifest::Manifest {
        self.storage.readable_manifest(&peer.principal)
    }

    /// Waits until every queued write has committed, then stops the writer.
    pub fn shutdown(self) {
        self.storage.shutdown();
    }

    fn step(&self, peer: &Peer, stream: &mut DocStream, payload: &[u8]) -> Answer {
        let cx = StepContext {
            principal: peer.principal.clone(),
            connection: peer.connection,
            doc_id: stream.doc_id,
        };
        match self.storage.sync_step(&cx, &mut stream.state, payload) {
            Ok(outcome) => {
                let (messages, end) =
                    outcome.into_messages(stream.doc_id, branchline_protocol::PROTOCOL_VERSION);
                if end {
                    self.storage.save_sync_state(
                        peer.principal.device,
                        stream.doc_id,
                        &stream.state,
                    );
                }
                Answer { messages, end }
            }
            Err(refused) => Answer::fail(refused.code, refused.message, Some(stream.doc_id)),
        }
    }

    /// Runs `work` on the writer thread and waits for its commit.
    fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Savepoint<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.storage
            .writer()
            .submit(work)?
            .blocking_recv()
            .map_err(|_| Error::WriterStopped)?
    }
}
