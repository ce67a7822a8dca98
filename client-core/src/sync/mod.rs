//! The client sync engine, sans I/O: one [`Session`] per connection to the branch
//! server, following `docs/sync-design.md`.
//!
//! The session is a state machine with no sockets, clocks or threads. The transport
//! feeds it every message the server sends ([`Session::handle`]) and writes out what
//! it returns ([`Outgoing`]): messages for the control stream, and messages for one
//! document stream per document being synced. What happened along the way (enrolled,
//! a document updated, a local change acknowledged…) is collected as [`SyncEvent`]s.
//! Tests step a session against an in-memory server the same way.
//!
//! A session goes through three stages:
//!
//! 1. **Handshake.** `Hello` and, pipelined behind it, the digest of every document in
//!    the store. The server answers `Welcome` (with the device secret, on enrollment)
//!    and its own digest.
//! 2. **Reconciliation.** Equal digests: in sync after one round trip. Otherwise the
//!    session narrows the difference down range by range (`ManifestRanges`) until the
//!    server lists the documents of the ranges that differ (`ManifestEntries`). Every
//!    document whose heads differ from the server's, or that the server lacks, is
//!    synced; ranges found equal acknowledge the local changes in them.
//! 3. **Document syncs**, all at once, one stream each: automerge sync messages in
//!    strict turns (the server answers every `SyncDoc` with exactly one), until
//!    neither side has anything to say. Sync states are loaded when a document sync
//!    starts and saved when it ends, so the next session only exchanges what changed.
//!    Documents the device holds nothing of are instead asked for whole (protocol 3,
//!    `GetDocuments`), once per manifest answer: the server sends them as it stores
//!    them, compressed together, and the store takes each bundle in one transaction.
//!    A document asked for but not sent, or that does not check out, is synced the
//!    ordinary way; so is one whose heads moved on meanwhile.
//!
//! While connected, `DocChanged` from the server and local edits
//! ([`Session::local_change`]) start further document syncs.

mod reconcile;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use automerge::ChangeHash;
use automerge::sync;
use branchline_protocol::bundle;
use branchline_protocol::manifest::{self, Manifest};
use branchline_protocol::{
    ChangeRejection, Credentials, DocId as WireDocId, ErrorCode, Heads, InviteLink,
    MIN_SUPPORTED_VERSION, ManifestEntry, Message, PROTOCOL_VERSION, RangeSummary, Role,
};

use crate::error::Error;
use crate::ids::{BranchId, DocId, MemberId};
use crate::store::{Account, RejectedChange, Rejection, Store, change_hashes, hex, wire_heads};

use reconcile::{Answer, Request};

/// The most automerge messages one document sync may exchange before the session
/// gives up on it. Two well-behaved replicas need a handful; this only stops a
/// server that never lets an exchange end.
const MAX_ROUNDS: u32 = 64;

/// How a session identifies the device to the server.
#[derive(Clone, Debug)]
pub enum Join {
    /// First connection: enroll with an invite.
    Enroll {
        /// The invite link a secretary gave out.
        invite: InviteLink,
        /// A name the member will recognise in the device list, e.g. "Maria's phone".
        device_name: String,
    },
    /// A device that enrolled before.
    Resume(Account),
}

/// A message for the transport to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// On the control stream.
    Control(Message),
    /// On the document stream of `doc` (opened on first use); `finish` = this is the
    /// last message, finish the send side after writing it.
    ///
    /// After a `finish`, a later `Doc` for the same document opens a new stream.
    Doc {
        /// The document the stream syncs.
        doc: DocId,
        /// The message to write, if any (`None` with `finish`: just finish).
        message: Option<Message>,
        /// Finish the send side of the stream after writing `message`.
        finish: bool,
    },
    /// On a new stream: `GetDocuments` for these documents, which the device holds
    /// nothing of. The transport hands each `Documents` answer to
    /// [`Session::handle`] and reports the stream's end to
    /// [`Session::fetch_closed`] with the same list.
    Fetch {
        /// The documents asked for.
        docs: Vec<DocId>,
    },
}

/// Something that happened in a session, for the app to show or act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncEvent {
    /// The device enrolled; the account (already saved in the store) is what it will
    /// reconnect with.
    Enrolled(Account),
    /// The server accepted the device.
    Welcomed {
        /// The branch whose records the device syncs.
        branch: BranchId,
        /// What the device's member may do in the branch.
        role: Role,
        /// The member the device belongs to, if any.
        member: Option<MemberId>,
        /// The server's clock, in milliseconds since the Unix epoch.
        server_time_ms: i64,
        /// How far the device's clock is behind the server's (ms; negative when
        /// ahead), 0 when within a minute: the store now stamps records by the
        /// server's time, and the app should ask the person to set the date.
        clock_offset_ms: i64,
    },
    /// Changes from the server were stored in this document (it may be new).
    DocUpdated(DocId),
    /// The server stored this document's changes durably.
    Acknowledged(DocId),
    /// Syncing this document failed; the other documents go on.
    DocFailed {
        /// The document.
        doc: DocId,
        /// Why, as a stable code.
        code: ErrorCode,
        /// An explanation for logs.
        message: String,
    },
    /// The server refused a change made on this device: it was dropped here
    /// (with its effect), and later changes were replayed on top of what
    /// remains. The app shows the operation as rejected, with the reason.
    Rejected(Rejection),
    /// Reconciliation is over and no document sync is in flight.
    InSync,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The server refused the device or ended the session (`Error` without a
    /// document on the control stream). Do not retry blindly: an invite or device
    /// error needs a person. On `auth.device_revoked` the session has already
    /// forgotten the account.
    #[error("the server refused the session: {code}: {message}")]
    Rejected {
        /// Why, as a stable code.
        code: ErrorCode,
        /// The server's explanation, for logs.
        message: String,
    },
    /// The server broke the sync contract (an unexpected message, say).
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    /// The local store failed.
    #[error("the local store failed: {0}")]
    Store(#[from] Error),
}

/// Figures about one session, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Manifest round trips: the digest exchange, plus one per `ManifestRanges`
    /// request answered.
    pub manifest_round_trips: u32,
    /// Document syncs that ran to completion.
    pub docs_synced: u32,
    /// Document syncs that failed.
    pub docs_failed: u32,
    /// Documents received that were new to the store.
    pub docs_created: u32,
    /// Documents received whole (protocol 3), not through automerge sync messages.
    pub docs_received_whole: u32,
    /// Bundle bytes received with them (compressed, as on the wire).
    pub bundle_bytes_received: u64,
    /// `SyncDoc` messages sent.
    pub sync_messages_sent: u64,
    /// `SyncDoc` messages received.
    pub sync_messages_received: u64,
    /// Automerge payload bytes sent.
    pub sync_bytes_sent: u64,
    /// Automerge payload bytes received.
    pub sync_bytes_received: u64,
    /// Local changes the server refused (each dropped here).
    pub changes_rejected: u64,
}

/// Where a session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// [`Session::start`] not called yet.
    New,
    /// Hello sent; waiting for Welcome.
    Hello,
    /// Welcomed; waiting for the server's digest.
    Digest,
    /// Digests compared: reconciling while requests are outstanding, then live.
    Live,
    /// The session failed; nothing more is accepted.
    Ended,
}

/// One document being synced: always waiting for the server's answer to our last
/// `SyncDoc` (the turns are strict).
struct DocSync {
    state: sync::State,
    /// The state's encoding as last persisted, so an unchanged one is not rewritten.
    saved: Vec<u8>,
    /// Messages received so far.
    rounds: u32,
    /// Heads the server announced for the document while this sync ran.
    announced: Option<Heads>,
}

/// One connection's sync session; see the [module docs](self).
pub struct Session {
    join: Join,
    peer: String,
    phase: Phase,
    /// Kinds the server listed documents as, for documents new to the store.
    kinds: HashMap<DocId, String>,
    /// The document syncs in flight.
    docs: HashMap<DocId, DocSync>,
    /// The protocol version agreed at Welcome.
    version: u16,
    /// Documents asked for whole, with the heads the server last gave for them.
    fetching: HashMap<DocId, Heads>,
    /// Documents to ask for whole once the current manifest answer is complete.
    to_fetch: Vec<DocId>,
    /// Document streams this side finished whose end the transport has not reported
    /// yet, per document: a report then is a normal end, not a failure.
    finished: HashMap<DocId, u32>,
    /// Outstanding `ManifestRanges` requests, oldest first (answers come in order).
    requests: VecDeque<Request>,
    /// What has arrived of the answer to the oldest request.
    answer: Option<Answer>,
    events: Vec<SyncEvent>,
    stats: SessionStats,
    reported_in_sync: bool,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("phase", &self.phase)
            .field("docs_in_flight", &self.docs.len())
            .field("requests", &self.requests.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session that will join as `join` says; nothing is sent before
    /// [`start`](Self::start).
    pub fn new(join: Join) -> Self {
        let cert = match &join {
            Join::Enroll { invite, .. } => invite.cert_sha256,
            Join::Resume(account) => account.cert_sha256,
        };
        Session {
            join,
            peer: hex(&cert),
            phase: Phase::New,
            kinds: HashMap::new(),
            docs: HashMap::new(),
            version: MIN_SUPPORTED_VERSION,
            fetching: HashMap::new(),
            to_fetch: Vec::new(),
            finished: HashMap::new(),
            requests: VecDeque::new(),
            answer: None,
            events: Vec::new(),
            stats: SessionStats::default(),
            reported_in_sync: false,
        }
    }

    /// The key sync states are persisted under: the server's certificate
    /// fingerprint in hex.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The session's opening: `Hello`, then the digest of every stored document,
    /// both on the control stream. Only the first call sends anything.
    pub fn start(&mut self, store: &mut Store) -> crate::Result<Vec<Outgoing>> {
        if self.phase != Phase::New {
            return Ok(Vec::new());
        }
        let credentials = match &self.join {
            Join::Enroll {
                invite,
                device_name,
            } => Credentials::Enroll {
                invite_code: invite.code.clone(),
                device_name: device_name.clone(),
                actor_id: store.device_id().as_bytes().to_vec(),
            },
            Join::Resume(account) => Credentials::Device {
                device_id: account.device_id,
                secret: account.secret.clone(),
            },
        };
        let digest = store.manifest()?.digest_message();
        self.phase = Phase::Hello;
        Ok(vec![
            Outgoing::Control(Message::Hello {
                version: PROTOCOL_VERSION,
                min_version: MIN_SUPPORTED_VERSION,
                credentials,
            }),
            Outgoing::Control(digest),
        ])
    }

    /// Takes in one message from the server, from any stream, and returns what to
    /// send in answer.
    ///
    /// After an error the session is over: the transport should close the
    /// connection, and further calls fail with [`SessionError::Protocol`].
    pub fn handle(
        &mut self,
        store: &mut Store,
        message: Message,
    ) -> Result<Vec<Outgoing>, SessionError> {
        if self.phase == Phase::Ended {
            return Err(SessionError::Protocol(format!(
                "{} after the session ended",
                message.name()
            )));
        }
        tracing::trace!(message = message.name(), "received");
        let out = self.dispatch(store, message);
        if out.is_err() {
            self.phase = Phase::Ended;
        }
        self.note_in_sync();
        out
    }

    /// The receive side of a document stream of `doc` ended. Report every end, the
    /// normal ones too: an end after the session finished that stream is expected;
    /// any other (the server reset the stream, or ended it without answering) fails
    /// the document's sync in flight, and the other documents go on.
    ///
    /// Streams of one document end in the order they were opened, so an old
    /// stream's end reported after a new sync of the same document started is still
    /// told apart from the new stream's.
    pub fn doc_stream_closed(&mut self, _store: &mut Store, doc: DocId) -> Vec<Outgoing> {
        if let Some(pending) = self.finished.get_mut(&doc) {
            *pending -= 1;
            if *pending == 0 {
                self.finished.remove(&doc);
            }
        } else if self.docs.remove(&doc).is_some() {
            self.failed(
                doc,
                ErrorCode::Internal,
                "the server closed the document stream before the sync finished".into(),
            );
        }
        self.note_in_sync();
        Vec::new()
    }

    /// Pushes a local edit of `doc` while connected: starts its sync, unless one is
    /// running (which then carries the edit) or the session is not welcomed yet
    /// (reconciliation will find it).
    pub fn local_change(&mut self, store: &mut Store, doc: DocId) -> crate::Result<Vec<Outgoing>> {
        if !matches!(self.phase, Phase::Digest | Phase::Live) || self.docs.contains_key(&doc) {
            return Ok(Vec::new());
        }
        let out = self.start_doc(store, doc);
        self.note_in_sync();
        out
    }

    /// Welcomed, reconciliation over, and no document sync in flight.
    pub fn is_in_sync(&self) -> bool {
        self.phase == Phase::Live
            && self.requests.is_empty()
            && self.docs.is_empty()
            && self.fetching.is_empty()
    }

    /// A `GetDocuments` stream (asking for `docs`) ended: documents it did not
    /// deliver are synced the ordinary way, which also says why if the server
    /// refuses them.
    pub fn fetch_closed(
        &mut self,
        store: &mut Store,
        docs: &[DocId],
    ) -> crate::Result<Vec<Outgoing>> {
        let mut out = Vec::new();
        for doc in docs {
            if self.fetching.remove(doc).is_some() {
                tracing::debug!(%doc, "not received whole; syncing it");
                out.extend(self.start_doc(store, *doc)?);
            }
        }
        self.note_in_sync();
        Ok(out)
    }

    /// The events since the last call.
    pub fn take_events(&mut self) -> Vec<SyncEvent> {
        std::mem::take(&mut self.events)
    }

    /// Figures about the session so far.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    // --- dispatch ------------------------------------------------------------------

    fn dispatch(
        &mut self,
        store: &mut Store,
        message: Message,
    ) -> Result<Vec<Outgoing>, SessionError> {
        let welcomed = matches!(self.phase, Phase::Digest | Phase::Live);
        match message {
            Message::Error {
                code,
                message,
                doc_id: None,
            } => {
                if code == ErrorCode::DeviceRevoked
                    && let Join::Resume(ours) = &self.join
                    && store
                        .account()?
                        .is_some_and(|stored| stored.device_id == ours.device_id)
                {
                    tracing::warn!(device = %ours.device_id, "device revoked; account forgotten");
                    store.forget_account()?;
                }
                Err(SessionError::Rejected { code, message })
            }
            Message::Error {
                code,
                message,
                doc_id: Some(doc),
            } if welcomed => {
                let doc = DocId::from(doc);
                tracing::debug!(%doc, %code, %message, "document sync refused");
                if self.docs.remove(&doc).is_some() {
                    self.failed(doc, code, message);
                    Ok(vec![self.finish(doc, None)])
                } else {
                    // Not syncing it (any more): nothing to end, but worth telling.
                    self.events
                        .push(SyncEvent::DocFailed { doc, code, message });
                    Ok(Vec::new())
                }
            }
            Message::Welcome {
                version,
                server_time_ms,
                device_id,
                member_id,
                branch_id,
                role,
                device_secret,
                branch_name,
            } if self.phase == Phase::Hello => {
                let welcome = Welcome {
                    version,
                    server_time_ms,
                    device_id,
                    member: member_id.map(MemberId::from),
                    branch: branch_id.into(),
                    role,
                    device_secret,
                    branch_name,
                };
                self.welcomed(store, welcome)?;
                Ok(Vec::new())
            }
            Message::ManifestDigest { doc_count, digest } if self.phase == Phase::Digest => {
                self.server_digest(store, doc_count, digest)
            }
            Message::ManifestEntries {
                start,
                end,
                entries,
            } if self.phase == Phase::Live && !self.requests.is_empty() => {
                self.entries(store, start, end, entries)
            }
            Message::ManifestRanges { ranges }
                if self.phase == Phase::Live && !self.requests.is_empty() =>
            {
                self.ranges(store, ranges)
            }
            Message::SyncDoc { doc_id, payload }
                if welcomed && self.docs.contains_key(&doc_id.into()) =>
            {
                self.reply(store, doc_id.into(), payload)
            }
            Message::Ack { doc_id, heads } if welcomed => {
                acknowledge(store, &mut self.events, [(doc_id, &heads)])?;
                Ok(Vec::new())
            }
            Message::DocChanged { doc_id, heads } if welcomed => {
                let doc = DocId::from(doc_id);
                self.announced(store, doc, heads)
            }
            Message::Rejected { doc_id, rejections } if welcomed => {
                Ok(self.rejected(store, doc_id.into(), rejections)?)
            }
            Message::Documents { bundle } if welcomed && !self.fetching.is_empty() => {
                Ok(self.received_whole(store, &bundle)?)
            }
            other => Err(SessionError::Protocol(format!(
                "unexpected {} ({:?})",
                other.name(),
                self.phase
            ))),
        }
    }

    // --- handshake ---------------------------------------------------------------

    fn welcomed(&mut self, store: &mut Store, welcome: Welcome) -> Result<(), SessionError> {
        let version = welcome.version;
        branchline_protocol::negotiate_between(
            MIN_SUPPORTED_VERSION..=PROTOCOL_VERSION,
            version..=version,
        )
        .map_err(|_| SessionError::Protocol(format!("the server chose version {version}")))?;
        let account = match &self.join {
            Join::Enroll {
                invite,
                device_name,
            } => {
                let secret = welcome.device_secret.clone().ok_or_else(|| {
                    SessionError::Protocol("the enrollment Welcome has no device secret".into())
                })?;
                let account = Account {
                    server: invite.server.clone(),
                    cert_sha256: invite.cert_sha256,
                    device_id: welcome.device_id,
                    secret,
                    branch: welcome.branch,
                    member: welcome.member,
                    role: welcome.role,
                    device_name: device_name.clone(),
                    branch_name: welcome.branch_name.clone(),
                };
                store.save_account(&account)?;
                self.events.push(SyncEvent::Enrolled(account.clone()));
                account
            }
            Join::Resume(account) => {
                if welcome.device_secret.is_some() {
                    return Err(SessionError::Protocol(
                        "the server sent a device secret to an enrolled device".into(),
                    ));
                }
                if welcome.device_id != account.device_id {
                    return Err(SessionError::Protocol(format!(
                        "the server welcomed device {} instead of {}",
                        welcome.device_id, account.device_id
                    )));
                }
                let updated = Account {
                    branch: welcome.branch,
                    member: welcome.member,
                    role: welcome.role,
                    // An older server does not name the branch: keep the name known.
                    branch_name: welcome.branch_name.clone().or_else(|| {
                        (account.branch == welcome.branch)
                            .then(|| account.branch_name.clone())
                            .flatten()
                    }),
                    ..account.clone()
                };
                if updated != *account {
                    store.save_account(&updated)?;
                }
                updated
            }
        };
        self.join = Join::Resume(account);
        self.version = version;
        let clock_offset_ms = store.observe_server_time(welcome.server_time_ms)?;
        self.events.push(SyncEvent::Welcomed {
            branch: welcome.branch,
            role: welcome.role,
            member: welcome.member,
            server_time_ms: welcome.server_time_ms,
            clock_offset_ms,
        });
        self.phase = Phase::Digest;
        Ok(())
    }

    // --- reconciliation ----------------------------------------------------------

    fn server_digest(
        &mut self,
        store: &mut Store,
        doc_count: u64,
        digest: [u8; 32],
    ) -> Result<Vec<Outgoing>, SessionError> {
        self.stats.manifest_round_trips += 1;
        self.phase = Phase::Live;
        let local = store.manifest()?;
        let unacked = unacked(store)?;
        let tally = local.tally();
        if tally.doc_count() == doc_count && tally.digest() == digest {
            // Same documents at the same heads: the server holds every local change.
            let settled = local
                .iter()
                .filter(|e| unacked.contains(&e.doc_id.into()))
                .map(heads_of);
            acknowledge(store, &mut self.events, settled)?;
            return Ok(Vec::new());
        }
        let whole = manifest::split(WireDocId::MIN, None)
            .ok_or_else(|| SessionError::Protocol("the id space does not split".into()))?;
        Ok(self.request(&local, &unacked, local.summaries(&whole)))
    }

    /// Sends our summaries of `ranges` as one or more requests.
    fn request(
        &mut self,
        local: &Manifest,
        unacked: &HashSet<DocId>,
        ours: Vec<RangeSummary>,
    ) -> Vec<Outgoing> {
        ours.chunks(manifest::MAX_RANGES_PER_REQUEST)
            .map(|chunk| {
                self.requests.push_back(Request::new(chunk, local, unacked));
                Outgoing::Control(Message::ManifestRanges {
                    ranges: chunk.to_vec(),
                })
            })
            .collect()
    }

    fn entries(
        &mut self,
        store: &mut Store,
        start: WireDocId,
        end: Option<WireDocId>,
        entries: Vec<ManifestEntry>,
    ) -> Result<Vec<Outgoing>, SessionError> {
        let request = self.requests.front().ok_or_else(|| {
            SessionError::Protocol("ManifestEntries with no request outstanding".into())
        })?;
        if !request.asked(start, end) {
            return Err(SessionError::Protocol(format!(
                "ManifestEntries for [{start}, {end:?}), a range not asked about"
            )));
        }
        if let Some(stray) = entries
            .iter()
            .find(|e| !reconcile::in_range(e.doc_id, start, end))
        {
            return Err(SessionError::Protocol(format!(
                "ManifestEntries for [{start}, {end:?}) lists {}",
                stray.doc_id
            )));
        }
        if self.answer.is_none() {
            self.answer = Some(Answer::new(store)?);
        }
        let Some(answer) = self.answer.as_mut() else {
            return Ok(Vec::new());
        };
        answer.listed.push((start, end));

        let mut settled = Vec::new();
        let mut to_sync = Vec::new();
        let listed: HashSet<WireDocId> = entries.iter().map(|e| e.doc_id).collect();
        for entry in &entries {
            let doc = DocId::from(entry.doc_id);
            self.kinds.insert(doc, entry.kind.clone());
            let ours = answer.local.get(entry.doc_id);
            if ours.is_some() && answer.unacked.contains(&doc) {
                // The server only lists what it stored durably: whatever of ours those
                // heads include is safe.
                settled.push(entry);
            }
            if ours.is_none() && self.version >= 3 && !self.docs.contains_key(&doc) {
                if self.fetching.insert(doc, entry.heads.clone()).is_none() {
                    self.to_fetch.push(doc);
                }
            } else if ours.is_none_or(|ours| ours.heads != entry.heads) {
                to_sync.push((doc, Some(entry.heads.clone())));
            }
        }
        for ours in answer.local.entries_in(start, end) {
            if !listed.contains(&ours.doc_id) {
                to_sync.push((ours.doc_id.into(), None));
            }
        }
        acknowledge(store, &mut self.events, settled.into_iter().map(heads_of))?;
        let mut out = Vec::new();
        for (doc, heads) in to_sync {
            out.extend(self.sync_doc(store, doc, heads)?);
        }
        if self.to_fetch.len() >= bundle::MAX_DOCS_PER_REQUEST {
            out.extend(self.fetch());
        }
        Ok(out)
    }

    /// Asks for the documents gathered in `to_fetch`.
    fn fetch(&mut self) -> Vec<Outgoing> {
        let wanted = std::mem::take(&mut self.to_fetch);
        wanted
            .chunks(bundle::MAX_DOCS_PER_REQUEST)
            .map(|docs| Outgoing::Fetch {
                docs: docs.to_vec(),
            })
            .collect()
    }

    /// A bundle of documents asked for whole.
    fn received_whole(
        &mut self,
        store: &mut Store,
        bundle: &[u8],
    ) -> Result<Vec<Outgoing>, SessionError> {
        self.stats.bundle_bytes_received += bundle.len() as u64;
        let docs = match bundle::unpack(bundle) {
            Ok(docs) => docs,
            Err(e) => {
                // Its documents are synced the ordinary way when the stream ends.
                tracing::warn!(error = %e, "a bundle of documents does not unpack");
                return Ok(Vec::new());
            }
        };
        let (fetching, kinds) = (&self.fetching, &self.kinds);
        let batch = docs
            .into_iter()
            .filter_map(|saved| {
                let doc = DocId::from(saved.doc_id);
                if !fetching.contains_key(&doc) {
                    tracing::warn!(%doc, "received whole but not asked for");
                    return None;
                }
                Some((doc, kinds.get(&doc).map(String::as_str), saved.data))
            })
            .collect();
        let results = store.receive_documents(batch)?;
        let mut out = Vec::new();
        for (doc, result) in results {
            let Some(expected) = self.fetching.remove(&doc) else {
                continue;
            };
            match result {
                Ok(applied) => {
                    self.stats.docs_received_whole += 1;
                    if applied.created {
                        self.stats.docs_created += 1;
                    }
                    if applied.changed {
                        self.events.push(SyncEvent::DocUpdated(doc));
                    }
                    if wire_heads(&applied.heads) != expected {
                        // The server moved on since it listed it.
                        out.extend(self.start_doc(store, doc)?);
                    }
                }
                Err(e) => {
                    let (code, why) = doc_level(e)?;
                    tracing::warn!(%doc, %code, %why, "a document received whole was refused; syncing it");
                    out.extend(self.start_doc(store, doc)?);
                }
            }
        }
        Ok(out)
    }

    fn ranges(
        &mut self,
        store: &mut Store,
        theirs: Vec<RangeSummary>,
    ) -> Result<Vec<Outgoing>, SessionError> {
        let request = self.requests.pop_front().ok_or_else(|| {
            SessionError::Protocol("ManifestRanges with no request outstanding".into())
        })?;
        self.stats.manifest_round_trips += 1;
        let answer = match self.answer.take() {
            Some(answer) => answer,
            None => Answer::new(store)?,
        };
        if let Some(stray) = theirs.iter().find(|s| !request.covers(s)) {
            return Err(SessionError::Protocol(format!(
                "sub-range [{}, {:?}) lies in no range asked about",
                stray.start, stray.end
            )));
        }
        // Ranges the server neither listed nor split matched our summaries.
        let matched = request.unanswered(&answer.listed, &theirs);
        acknowledge(
            store,
            &mut self.events,
            request.unacked_in(&matched).map(heads_of),
        )?;

        let mut differing = Vec::new();
        let mut settled = Vec::new();
        for summary in &theirs {
            let ours = answer.local.summary(summary.start, summary.end);
            if ours.doc_count == summary.doc_count && ours.digest == summary.digest {
                settled.extend(
                    answer
                        .local
                        .entries_in(summary.start, summary.end)
                        .filter(|e| answer.unacked.contains(&e.doc_id.into())),
                );
            } else {
                differing.push(ours);
            }
        }
        acknowledge(store, &mut self.events, settled.into_iter().map(heads_of))?;
        let mut out = self.request(&answer.local, &answer.unacked, differing);
        out.extend(self.fetch());
        Ok(out)
    }

    // --- document syncs ----------------------------------------------------------

    /// Syncs `doc` because the server has it at `heads` (or lacks it, with `None`),
    /// unless our heads are those; if it is syncing already, syncs it again after.
    fn announced(
        &mut self,
        store: &mut Store,
        doc: DocId,
        heads: Heads,
    ) -> Result<Vec<Outgoing>, SessionError> {
        if let Some(expected) = self.fetching.get_mut(&doc) {
            // On its way whole; compared with these heads when it arrives.
            *expected = heads;
            return Ok(Vec::new());
        }
        let ours = store.heads(doc)?.map(|h| wire_heads(&h));
        if ours.as_ref() == Some(&heads) {
            // The server announces only heads it has stored durably, so equal
            // heads acknowledge our changes: an Ack lost with an earlier
            // connection (whose late packets still delivered the changes) is
            // made good here rather than at the next session.
            if store.unacked_changes(doc)? > 0 {
                acknowledge(store, &mut self.events, [(doc.into(), &heads)])?;
            }
            return Ok(Vec::new());
        }
        self.sync_doc(store, doc, Some(heads))
    }

    fn sync_doc(
        &mut self,
        store: &mut Store,
        doc: DocId,
        server_heads: Option<Heads>,
    ) -> Result<Vec<Outgoing>, SessionError> {
        if let Some(running) = self.docs.get_mut(&doc) {
            if server_heads.is_some() {
                running.announced = server_heads;
            }
            return Ok(Vec::new());
        }
        Ok(self.start_doc(store, doc)?)
    }

    /// Opens a document sync: loads the sync state and sends the first message.
    fn start_doc(&mut self, store: &mut Store, doc: DocId) -> crate::Result<Vec<Outgoing>> {
        let mut state = store.sync_state(&self.peer, doc)?;
        let saved = state.encode();
        let first = match store.generate_sync_message(doc, &mut state) {
            Ok(first) => first,
            Err(e) => {
                let (code, why) = doc_level(e)?;
                self.failed(doc, code, why);
                return Ok(Vec::new());
            }
        };
        tracing::debug!(%doc, "document sync started");
        self.docs.insert(
            doc,
            DocSync {
                state,
                saved,
                rounds: 0,
                announced: None,
            },
        );
        Ok(vec![self.send(doc, first)])
    }

    /// The server's answer to our last `SyncDoc` for `doc`.
    fn reply(
        &mut self,
        store: &mut Store,
        doc: DocId,
        payload: Vec<u8>,
    ) -> Result<Vec<Outgoing>, SessionError> {
        self.stats.sync_messages_received += 1;
        self.stats.sync_bytes_received += payload.len() as u64;
        let Some(mut sync) = self.docs.remove(&doc) else {
            return Ok(Vec::new());
        };
        sync.rounds += 1;
        let said_something = !payload.is_empty();
        if said_something {
            let decoded = std::panic::catch_unwind(|| sync::Message::decode(&payload));
            let Ok(Ok(message)) = decoded else {
                return Ok(self.refuse(
                    doc,
                    ErrorCode::InvalidSyncPayload,
                    "the sync message does not decode".into(),
                ));
            };
            let kind = self.kinds.get(&doc).map(String::as_str);
            match store.apply_sync_message(&self.peer, doc, kind, &mut sync.state, message) {
                Ok(applied) => {
                    if applied.created {
                        self.stats.docs_created += 1;
                    }
                    if applied.changed {
                        self.events.push(SyncEvent::DocUpdated(doc));
                    }
                }
                Err(e) => {
                    let (code, why) = doc_level(e)?;
                    return Ok(self.refuse(doc, code, why));
                }
            }
        }
        let next = match store.generate_sync_message(doc, &mut sync.state) {
            Ok(next) => next,
            Err(e) => {
                let (code, why) = doc_level(e)?;
                return Ok(self.refuse(doc, code, why));
            }
        };
        if next.is_none() && !said_something {
            return Ok(self.complete(store, doc, sync)?);
        }
        if sync.rounds >= MAX_ROUNDS {
            return Ok(self.refuse(
                doc,
                ErrorCode::Malformed,
                format!("the sync did not end after {MAX_ROUNDS} rounds"),
            ));
        }
        self.docs.insert(doc, sync);
        Ok(vec![self.send(doc, next)])
    }

    /// A document sync ended with nothing left to say on either side.
    fn complete(
        &mut self,
        store: &mut Store,
        doc: DocId,
        sync: DocSync,
    ) -> crate::Result<Vec<Outgoing>> {
        if sync.state.encode() != sync.saved {
            store.save_sync_state(&self.peer, doc, &sync.state)?;
        }
        self.stats.docs_synced += 1;
        tracing::debug!(%doc, rounds = sync.rounds, "document sync complete");
        let mut out = vec![self.finish(doc, None)];
        if let Some(announced) = sync.announced {
            let ours = store.heads(doc)?.map(|h| wire_heads(&h));
            if ours.as_ref() != Some(&announced) {
                out.extend(self.start_doc(store, doc)?);
            }
        }
        Ok(out)
    }

    /// The server refused changes of `doc`: the sync of `doc` is over; the
    /// store drops them (replaying later local changes as new ones) and, if
    /// anything is left to send, a fresh sync of `doc` starts.
    fn rejected(
        &mut self,
        store: &mut Store,
        doc: DocId,
        rejections: Vec<ChangeRejection>,
    ) -> crate::Result<Vec<Outgoing>> {
        let mut out = Vec::new();
        if self.docs.remove(&doc).is_some() {
            out.push(self.finish(doc, None));
        }
        let refused: Vec<RejectedChange> = rejections
            .into_iter()
            .map(|r| RejectedChange {
                hash: ChangeHash(r.change),
                code: r.code.as_str().to_owned(),
                message: r.message,
            })
            .collect();
        tracing::info!(%doc, refused = refused.len(), "the server refused changes");
        match store.drop_rejected(doc, &refused) {
            Ok(dropped) => {
                self.stats.changes_rejected += dropped.len() as u64;
                self.events
                    .extend(dropped.into_iter().map(SyncEvent::Rejected));
            }
            Err(e) => {
                let (code, why) = doc_level(e)?;
                self.failed(doc, code, why);
                return Ok(out);
            }
        }
        if store.unacked_changes(doc).unwrap_or(0) > 0 {
            out.extend(self.start_doc(store, doc)?);
        }
        Ok(out)
    }

    /// A `SyncDoc` for `doc` carrying `message` (or nothing to say).
    fn send(&mut self, doc: DocId, message: Option<sync::Message>) -> Outgoing {
        let payload = message.map(sync::Message::encode).unwrap_or_default();
        self.stats.sync_messages_sent += 1;
        self.stats.sync_bytes_sent += payload.len() as u64;
        Outgoing::Doc {
            doc,
            message: Some(Message::SyncDoc {
                doc_id: doc.into(),
                payload,
            }),
            finish: false,
        }
    }

    /// Fails the sync of `doc` (already out of `docs`) for a reason found on this
    /// side, telling the server why as the stream's last message.
    fn refuse(&mut self, doc: DocId, code: ErrorCode, why: String) -> Vec<Outgoing> {
        tracing::warn!(%doc, %code, %why, "document sync failed");
        let message = Message::Error {
            code: code.clone(),
            message: why.clone(),
            doc_id: Some(doc.into()),
        };
        self.failed(doc, code, why);
        vec![self.finish(doc, Some(message))]
    }

    /// Finishes the document stream of `doc`, after `message` if any.
    fn finish(&mut self, doc: DocId, message: Option<Message>) -> Outgoing {
        *self.finished.entry(doc).or_default() += 1;
        Outgoing::Doc {
            doc,
            message,
            finish: true,
        }
    }

    fn failed(&mut self, doc: DocId, code: ErrorCode, message: String) {
        self.stats.docs_failed += 1;
        self.events
            .push(SyncEvent::DocFailed { doc, code, message });
    }

    fn note_in_sync(&mut self) {
        let now = self.is_in_sync();
        if now && !self.reported_in_sync {
            self.events.push(SyncEvent::InSync);
        }
        self.reported_in_sync = now;
    }
}

/// The fields of a `Welcome`, in core types where there are some.
struct Welcome {
    version: u16,
    server_time_ms: i64,
    device_id: branchline_protocol::DeviceId,
    member: Option<MemberId>,
    branch: BranchId,
    role: Role,
    device_secret: Option<branchline_protocol::DeviceSecret>,
    branch_name: Option<String>,
}

/// Documents with local changes no server has acknowledged.
fn unacked(store: &Store) -> crate::Result<HashSet<DocId>> {
    Ok(store.unacknowledged()?.into_iter().collect())
}

/// A manifest entry's document and heads.
fn heads_of(entry: &ManifestEntry) -> (WireDocId, &Heads) {
    (entry.doc_id, &entry.heads)
}

/// Acknowledges, in each document, the local changes the server's heads include.
fn acknowledge<'a>(
    store: &mut Store,
    events: &mut Vec<SyncEvent>,
    settled: impl IntoIterator<Item = (WireDocId, &'a Heads)>,
) -> Result<(), SessionError> {
    for (doc, heads) in settled {
        let doc = DocId::from(doc);
        match store.mark_acknowledged(doc, &change_hashes(heads)) {
            Ok(()) => events.push(SyncEvent::Acknowledged(doc)),
            Err(e) => {
                let (_, why) = doc_level(e)?;
                tracing::warn!(%doc, %why, "acknowledgement not applied");
            }
        }
    }
    Ok(())
}

/// Splits store errors into those about one document (its sync fails, with the code
/// to report) and those of the store itself (the session fails).
fn doc_level(error: Error) -> crate::Result<(ErrorCode, String)> {
    let code = match &error {
        Error::Sqlite(_) | Error::NotAStore(_) | Error::StoreTooNew { .. } => return Err(error),
        Error::Corrupt(_) => ErrorCode::InvalidSyncPayload,
        _ => ErrorCode::InvalidDocument,
    };
    Ok((code, error.to_string()))
}
