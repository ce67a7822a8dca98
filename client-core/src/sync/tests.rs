//! The session stepped against an in-memory reference responder.
//!
//! [`Responder`] stands in for the server only so the state machine can be stepped:
//! raw automerge documents, the manifest answer of `branchline-protocol`, and the
//! document sync rules of `docs/sync-design.md` (an `Ack` before the reply whenever a
//! `SyncDoc` brought new changes; exactly one `SyncDoc` reply per `SyncDoc`). The real
//! server is tested end to end in `tests/`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, AutoCommit};
use branchline_protocol::manifest::Manifest;
use branchline_protocol::{
    self as protocol, Credentials, DeviceSecret, ErrorCode, InviteLink, ManifestEntry, Message,
    RangeSummary, Role,
};
use proptest::prelude::*;

use super::*;
use crate::model::{
    self, Level, MemberUpdate, NewMember, NewPetition, Petition, Record, Roster, Submitter,
    Timestamp,
};
use crate::store::query::MemberFilter;
use crate::workload::{self, WorkloadSpec};

const INVITE_CODE: &str = "K7QX-M2PA-9RTD";
const CERT: [u8; 32] = [0xc3; 32];
const NOW: Timestamp = Timestamp(1_741_132_800_000); // 2025-03-05

// --- the reference responder ---------------------------------------------------------

/// The server's side of one device's sessions, in memory.
struct Responder {
    docs: BTreeMap<protocol::DocId, AutoCommit>,
    /// The actor of "another device" whose edits reach the server directly.
    actor: ActorId,
    branch: protocol::BranchId,
    device: protocol::DeviceId,
    secret: DeviceSecret,
    enrolled: bool,
    revoked: bool,
    /// Sync states with the device, persisted when a document stream ends.
    saved: HashMap<protocol::DocId, Vec<u8>>,
    /// Sync states of the document streams open now.
    live: HashMap<protocol::DocId, sync::State>,
    /// Documents the device may not sync: answered with `access.denied`.
    deny: HashSet<protocol::DocId>,
    /// Documents whose replies are garbage.
    garbage: HashSet<protocol::DocId>,
    /// Documents sent cut in half when asked for whole (a sync gets them intact).
    truncated: HashSet<protocol::DocId>,
    /// Answer every `GetDocuments` with one more bundle that does not unpack.
    junk_bundle: bool,
    /// Every document asked for whole, in the order asked.
    asked_whole: Vec<DocId>,
    /// Store changes but never say so (an Ack lost with the connection).
    drop_acks: bool,
}

impl Responder {
    fn new(branch: BranchId) -> Self {
        Responder {
            docs: BTreeMap::new(),
            actor: ActorId::random(),
            branch: branch.into(),
            device: protocol::DeviceId::new_random(),
            secret: DeviceSecret::from_bytes([0x5e; 32]),
            enrolled: false,
            revoked: false,
            saved: HashMap::new(),
            live: HashMap::new(),
            deny: HashSet::new(),
            garbage: HashSet::new(),
            truncated: HashSet::new(),
            junk_bundle: false,
            asked_whole: Vec::new(),
            drop_acks: false,
        }
    }

    fn invite(&self) -> InviteLink {
        InviteLink {
            server: "branch.example.org:4433".into(),
            code: INVITE_CODE.into(),
            cert_sha256: CERT,
        }
    }

    /// Stores a whole document, as if another device had synced it.
    fn insert(&mut self, bytes: &[u8]) -> DocId {
        let doc = AutoCommit::load(bytes).unwrap();
        let id = model::read_meta(&doc).unwrap().id;
        self.docs.insert(id.into(), doc);
        id
    }

    /// Creates a document on the server, by another device.
    fn create<R: Record>(&mut self, record: &R) -> DocId {
        let mut doc = model::create_document(record, self.actor.clone()).unwrap();
        self.insert(&doc.save())
    }

    /// Runs a workflow operation on a server document, by another device; returns
    /// the heads after it.
    fn edit<R: Record, T>(
        &mut self,
        id: DocId,
        op: impl FnOnce(&mut R) -> crate::Result<T>,
    ) -> protocol::Heads {
        let doc = self.docs.get_mut(&id.into()).unwrap();
        doc.set_actor(self.actor.clone());
        model::edit(doc, op).unwrap();
        doc.commit();
        wire_heads(&doc.get_heads())
    }

    fn get<R: Record>(&self, id: DocId) -> R {
        model::hydrate(&self.docs[&id.into()]).unwrap()
    }

    fn manifest(&mut self) -> Manifest {
        self.docs
            .iter_mut()
            .filter(|(_, doc)| !doc.is_empty())
            .map(|(id, doc)| ManifestEntry {
                doc_id: *id,
                kind: model::read_meta(doc).map(|m| m.kind).unwrap_or_default(),
                heads: wire_heads(&doc.get_heads()),
            })
            .collect()
    }

    /// Everything the server says in answer to one message.
    fn handle(&mut self, message: Message) -> Vec<Message> {
        match message {
            Message::Hello { credentials, .. } => self.hello(credentials),
            // The client's digest needs no answer: the client compares.
            Message::ManifestDigest { .. } => Vec::new(),
            Message::ManifestRanges { ranges } => self.manifest().respond(&ranges),
            Message::SyncDoc { doc_id, payload } => self.sync_doc(doc_id, payload),
            Message::GetDocuments { doc_ids } => self.get_documents(doc_ids),
            // The client ended a document stream with an error.
            Message::Error {
                doc_id: Some(_), ..
            } => Vec::new(),
            other => panic!("the responder got {other:?}"),
        }
    }

    fn hello(&mut self, credentials: Credentials) -> Vec<Message> {
        let refuse = |code| {
            vec![Message::Error {
                code,
                message: "refused".into(),
                doc_id: None,
            }]
        };
        let secret = match credentials {
            Credentials::Enroll { invite_code, .. } => {
                if invite_code != INVITE_CODE || self.enrolled {
                    return refuse(ErrorCode::InviteInvalid);
                }
                self.enrolled = true;
                Some(self.secret.clone())
            }
            Credentials::Device { device_id, secret } => {
                if self.revoked {
                    return refuse(ErrorCode::DeviceRevoked);
                }
                if device_id != self.device || secret != self.secret {
                    return refuse(ErrorCode::Unauthenticated);
                }
                None
            }
        };
        vec![
            Message::Welcome {
                version: protocol::PROTOCOL_VERSION,
                server_time_ms: NOW.0,
                device_id: self.device,
                member_id: None,
                branch_id: self.branch,
                role: Role::Secretary,
                device_secret: secret,
                branch_name: Some("幸福里".into()),
            },
            self.manifest().digest_message(),
        ]
    }

    fn sync_doc(&mut self, id: protocol::DocId, payload: Vec<u8>) -> Vec<Message> {
        if self.deny.contains(&id) {
            return vec![Message::Error {
                code: ErrorCode::AccessDenied,
                message: "not in this device's scope".into(),
                doc_id: Some(id),
            }];
        }
        if self.garbage.contains(&id) {
            return vec![Message::SyncDoc {
                doc_id: id,
                payload: vec![0x42, 0xff, 0xff, 0xff, 0x13, 0x37],
            }];
        }
        let saved = &self.saved;
        let state = self.live.entry(id).or_insert_with(|| {
            saved
                .get(&id)
                .and_then(|bytes| sync::State::decode(bytes).ok())
                .unwrap_or_default()
        });
        let doc = self.docs.entry(id).or_default();
        let mut out = Vec::new();
        if !payload.is_empty() {
            let message = sync::Message::decode(&payload).unwrap();
            let before = doc.get_heads();
            doc.sync().receive_sync_message(state, message).unwrap();
            let after = doc.get_heads();
            if after != before && !self.drop_acks {
                out.push(Message::Ack {
                    doc_id: id,
                    heads: wire_heads(&after),
                });
            }
        }
        let reply = doc.sync().generate_sync_message(state);
        out.push(Message::SyncDoc {
            doc_id: id,
            payload: reply.map(sync::Message::encode).unwrap_or_default(),
        });
        out
    }

    /// Documents whole, in one bundle, leaving out those denied.
    fn get_documents(&mut self, ids: Vec<protocol::DocId>) -> Vec<Message> {
        let mut docs = Vec::new();
        for id in ids {
            self.asked_whole.push(id.into());
            if self.deny.contains(&id) {
                continue;
            }
            if self.garbage.contains(&id) {
                docs.push((id, vec![0x42, 0xff, 0xff, 0xff, 0x13, 0x37]));
            } else if let Some(doc) = self.docs.get_mut(&id) {
                let mut bytes = doc.save();
                if self.truncated.contains(&id) {
                    bytes.truncate(bytes.len() / 2);
                }
                docs.push((id, bytes));
            }
        }
        let bundle = protocol::bundle::pack(docs.iter().map(|(id, b)| (*id, b.as_slice())));
        let mut replies = vec![Message::Documents { bundle }];
        if self.junk_bundle {
            replies.push(Message::Documents {
                bundle: b"not a bundle".to_vec(),
            });
        }
        replies
    }

    /// The client finished its side of a document stream.
    fn finished(&mut self, id: protocol::DocId) {
        if let Some(state) = self.live.remove(&id) {
            self.saved.insert(id, state.encode());
        }
    }

    /// `DocChanged` for one of the server's documents.
    fn doc_changed(&mut self, id: DocId) -> Message {
        Message::DocChanged {
            doc_id: id.into(),
            heads: wire_heads(&self.docs.get_mut(&id.into()).unwrap().get_heads()),
        }
    }
}

// --- driving a session ---------------------------------------------------------------

/// What went over the wire in one session.
#[derive(Default, Debug)]
struct Trace {
    /// Encoded control-stream frames, both directions.
    control_bytes: usize,
    /// Automerge payload bytes, both directions.
    sync_bytes: usize,
    /// The payload sizes of every `SyncDoc` the client sent, per document.
    sent: HashMap<DocId, Vec<usize>>,
    /// Errors the client sent on document streams.
    doc_errors: Vec<(DocId, ErrorCode)>,
    events: Vec<SyncEvent>,
    /// Document streams the client finished, whose end the server has not
    /// reported yet (it reports them when the rest is quiet, unless held).
    closing: Vec<DocId>,
    /// Keep stream ends in `closing` rather than reporting them.
    hold_closes: bool,
}

impl Trace {
    fn sent_by_client(&mut self, message: &Message) {
        match message {
            Message::SyncDoc { doc_id, payload } => {
                self.sync_bytes += payload.len();
                self.sent
                    .entry((*doc_id).into())
                    .or_default()
                    .push(payload.len());
            }
            Message::Error {
                code,
                doc_id: Some(doc),
                ..
            } => self.doc_errors.push(((*doc).into(), code.clone())),
            _ => self.control_bytes += protocol::encode(message).unwrap().len(),
        }
    }

    fn sent_by_server(&mut self, message: &Message) {
        match message {
            Message::SyncDoc { payload, .. } => self.sync_bytes += payload.len(),
            Message::Ack { .. }
            | Message::Error {
                doc_id: Some(_), ..
            } => {}
            _ => self.control_bytes += protocol::encode(message).unwrap().len(),
        }
    }

    fn failed(&self) -> Vec<(DocId, ErrorCode)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SyncEvent::DocFailed { doc, code, .. } => Some((*doc, code.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Delivers `first` and everything that follows until neither side has anything
/// left to send. Streams interleave: every message goes to the back of one queue.
/// Like the real transport, the end of every finished document stream is reported
/// to the session, late (once all else is quiet).
fn drive(
    session: &mut Session,
    store: &mut Store,
    server: &mut Responder,
    first: Vec<Outgoing>,
    trace: &mut Trace,
) -> Result<(), SessionError> {
    let mut queue: VecDeque<Outgoing> = first.into();
    loop {
        let Some(out) = queue.pop_front() else {
            if trace.hold_closes || trace.closing.is_empty() {
                return Ok(());
            }
            for doc in std::mem::take(&mut trace.closing) {
                queue.extend(session.doc_stream_closed(store, doc));
            }
            trace.events.extend(session.take_events());
            continue;
        };
        let replies = match out {
            Outgoing::Control(message) => {
                trace.sent_by_client(&message);
                server.handle(message)
            }
            Outgoing::Doc {
                doc,
                message,
                finish,
            } => {
                let replies = match message {
                    Some(message) => {
                        trace.sent_by_client(&message);
                        server.handle(message)
                    }
                    None => Vec::new(),
                };
                if finish {
                    server.finished(doc.into());
                    trace.closing.push(doc);
                }
                replies
            }
            Outgoing::Fetch { docs } => {
                let request = Message::GetDocuments {
                    doc_ids: docs.iter().map(|d| (*d).into()).collect(),
                };
                trace.sent_by_client(&request);
                for reply in server.handle(request) {
                    trace.sent_by_server(&reply);
                    let out = session.handle(store, reply);
                    trace.events.extend(session.take_events());
                    queue.extend(out?);
                }
                // The stream ends after the last bundle.
                queue.extend(session.fetch_closed(store, &docs)?);
                trace.events.extend(session.take_events());
                Vec::new()
            }
        };
        for reply in replies {
            trace.sent_by_server(&reply);
            let out = session.handle(store, reply);
            trace.events.extend(session.take_events());
            queue.extend(out?);
        }
    }
}

/// One whole session: start, run until quiet; the session must end in sync.
fn run(store: &mut Store, server: &mut Responder, join: Join) -> (Session, Trace) {
    let mut session = Session::new(join);
    let mut trace = Trace::default();
    let first = session.start(store).unwrap();
    drive(&mut session, store, server, first, &mut trace).unwrap();
    assert!(session.is_in_sync(), "{session:?}");
    assert!(trace.closing.is_empty());
    assert_eq!(
        trace.events.iter().rev().find(|e| **e == SyncEvent::InSync),
        Some(&SyncEvent::InSync)
    );
    (session, trace)
}

/// A session of the enrolled device.
fn reconnect(store: &mut Store, server: &mut Responder) -> (Session, Trace) {
    let join = resume(store);
    run(store, server, join)
}

fn enroll(server: &Responder) -> Join {
    Join::Enroll {
        invite: server.invite(),
        device_name: "王秀英的手机".into(),
    }
}

fn resume(store: &Store) -> Join {
    Join::Resume(store.account().unwrap().expect("enrolled"))
}

/// Both sides hold the same documents at the same heads.
fn assert_converged(store: &Store, server: &mut Responder) {
    let ours: Vec<ManifestEntry> = store.manifest().unwrap().iter().cloned().collect();
    let theirs: Vec<ManifestEntry> = server.manifest().iter().cloned().collect();
    assert_eq!(ours.len(), theirs.len(), "document counts");
    assert_eq!(ours, theirs);
}

fn member(name: &str) -> NewMember {
    NewMember {
        name: name.into(),
        phone: Some("13800000000".into()),
        ..Default::default()
    }
}

fn petition(title: &str) -> NewPetition {
    NewPetition {
        category: "道路交通".into(),
        title: title.into(),
        description: "小区北门路灯坏了两周".into(),
        location: Some("北门".into()),
        submitter: Submitter {
            name: Some("张大爷".into()),
            contact: None,
            member: None,
        },
    }
}

fn new_store() -> Store {
    let mut store = Store::open_in_memory().unwrap();
    store.set_clock(Box::new(|| NOW));
    store
}

/// A device with a branch of its own (profile, roster, two members, one petition),
/// enrolled and synced with an otherwise empty server.
struct Synced {
    store: Store,
    server: Responder,
    branch: BranchId,
    roster: DocId,
    members: Vec<MemberId>,
    petition: DocId,
}

fn synced_branch() -> Synced {
    let mut store = new_store();
    let branch = store
        .create_branch("幸福里第一党支部", Level::Branch, None)
        .unwrap();
    let members = vec![
        store.add_member(branch, member("王秀英")).unwrap(),
        store.add_member(branch, member("李建国")).unwrap(),
    ];
    let petition = store.submit_petition(branch, petition("路灯损坏")).unwrap();
    store
        .assign_petition(petition, members[0], "2025-04-01".parse().unwrap())
        .unwrap();
    let roster = store
        .branch_document(branch, model::DocKind::Roster)
        .unwrap();
    let mut server = Responder::new(branch);
    let join = enroll(&server);
    run(&mut store, &mut server, join);
    assert_converged(&store, &mut server);
    Synced {
        store,
        server,
        branch,
        roster,
        members,
        petition,
    }
}

// --- scenarios -------------------------------------------------------------------------

#[test]
fn first_sync_fills_an_empty_store_with_the_generated_branch() {
    let generated = workload::generate(&WorkloadSpec::default()).unwrap();
    let mut server = Responder::new(generated.branch);
    for doc in &generated.documents {
        server.insert(&doc.bytes);
    }
    let mut store = new_store();
    let join = enroll(&server);
    let (session, trace) = run(&mut store, &mut server, join);

    let stats = session.stats();
    let n = generated.documents.len();
    // 458 records of meetings, petitions and people, and 12 of the branch work
    // (two years of dues and points, six applicants, two library entries).
    assert_eq!(n, 470);
    assert_eq!(stats.docs_created as usize, n);
    // Every document came whole, none through automerge sync messages.
    assert_eq!(stats.docs_received_whole as usize, n);
    assert_eq!(stats.docs_synced, 0);
    assert!(trace.sent.is_empty(), "no SyncDoc sent");
    assert_eq!(stats.docs_failed, 0);
    // Compressed together they are well under the sum of their saved sizes.
    let floor: usize = generated.documents.iter().map(|d| d.bytes.len()).sum();
    let bundle = stats.bundle_bytes_received as usize;
    assert!(
        bundle * 10 < floor * 7,
        "bundle {bundle} B, saved {floor} B"
    );
    assert_converged(&store, &mut server);
    // The index was written as the documents arrived.
    let members = store
        .list_members(generated.branch, &MemberFilter::default())
        .unwrap();
    assert_eq!(members.len(), generated.roster.members.len());
    assert!(store.unacknowledged().unwrap().is_empty());

    let account = store
        .account()
        .unwrap()
        .expect("enrollment saved the account");
    assert_eq!(account.branch, generated.branch);
    assert_eq!(
        account.branch_name.as_deref(),
        Some("幸福里"),
        "the Welcome's branch name is kept"
    );
    assert_eq!(account.cert_sha256, CERT);
    assert_eq!(trace.events[0], SyncEvent::Enrolled(account.clone()));
    assert!(matches!(
        trace.events[1],
        SyncEvent::Welcomed {
            role: Role::Secretary,
            ..
        }
    ));
    let updated = trace
        .events
        .iter()
        .filter(|e| matches!(e, SyncEvent::DocUpdated(_)))
        .count();
    assert_eq!(updated, n);
    eprintln!(
        "figure: first sync of the generated branch ({n} documents): {} control bytes, \
         {} sync payload bytes, {} manifest round trips, {} SyncDoc sent, {} received",
        trace.control_bytes,
        trace.sync_bytes,
        stats.manifest_round_trips,
        stats.sync_messages_sent,
        stats.sync_messages_received
    );

    // Reconnecting right away: one round trip, no document sync.
    let (again, trace) = run(&mut store, &mut server, Join::Resume(account));
    assert_eq!(again.stats().manifest_round_trips, 1);
    assert_eq!(again.stats().sync_messages_sent, 0);
    assert!(trace.sent.is_empty());
}

#[test]
fn a_reconnect_with_no_changes_is_one_small_round_trip_for_a_thousand_documents() {
    let mut store = new_store();
    let branch = store
        .create_branch("大院支部", Level::Branch, None)
        .unwrap();
    let owner = store.add_member(branch, member("王秀英")).unwrap();
    for i in 0..998 {
        let p = store
            .submit_petition(branch, petition(&format!("诉求 {i}")))
            .unwrap();
        if i % 2 == 0 {
            // Half have an owner, so progress can be noted on them.
            store
                .assign_petition(p, owner, "2025-04-01".parse().unwrap())
                .unwrap();
        }
    }
    let mut server = Responder::new(branch);
    let join = enroll(&server);
    let (first, _) = run(&mut store, &mut server, join);
    assert_eq!(first.stats().docs_synced, 1000);
    assert_converged(&store, &mut server);
    assert!(store.unacknowledged().unwrap().is_empty());

    let (again, trace) = reconnect(&mut store, &mut server);
    assert_eq!(again.stats().manifest_round_trips, 1);
    assert_eq!(again.stats().sync_messages_sent, 0);
    assert!(
        trace.control_bytes < 2048,
        "{} control bytes",
        trace.control_bytes
    );
    eprintln!(
        "figure: no-change reconnect with 1000 documents: {} control bytes, {} round trip",
        trace.control_bytes,
        again.stats().manifest_round_trips
    );

    // A few documents changed on each side: the ranges narrow down to them.
    let docs: Vec<DocId> = store
        .documents()
        .unwrap()
        .into_iter()
        .filter(|d| d.kind == "petition")
        .map(|d| d.id)
        .filter(|&id| store.get::<Petition>(id).unwrap().owner.is_some())
        .collect();
    let server_side = [docs[10], docs[250], docs[490]];
    for &doc in &server_side {
        server.edit(doc, |p: &mut Petition| {
            p.add_progress(None, "已到现场查看", NOW)
        });
    }
    let client_side = [docs[11], docs[300]];
    for &doc in &client_side {
        store.add_progress(doc, None, "已电话联系居民").unwrap();
    }
    let (narrowed, trace) = reconnect(&mut store, &mut server);
    let mut synced: Vec<DocId> = trace.sent.keys().copied().collect();
    synced.sort();
    let mut changed: Vec<DocId> = server_side.iter().chain(&client_side).copied().collect();
    changed.sort();
    assert_eq!(synced, changed, "only the changed documents are synced");
    assert!(narrowed.stats().manifest_round_trips <= 3);
    assert_converged(&store, &mut server);
    assert!(store.unacknowledged().unwrap().is_empty());
    eprintln!(
        "figure: reconnect with 5 of 1000 documents changed: {} control bytes, \
         {} manifest round trips, {} sync payload bytes",
        trace.control_bytes,
        narrowed.stats().manifest_round_trips,
        trace.sync_bytes
    );
}

#[test]
fn offline_edits_on_both_sides_converge() {
    let mut s = synced_branch();
    // Offline, on the phone…
    let zhao = s.store.add_member(s.branch, member("赵春生")).unwrap();
    s.store
        .update_member(
            s.members[0],
            MemberUpdate {
                phone: Some("13911112222".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let local_petition = s
        .store
        .submit_petition(s.branch, petition("电梯故障"))
        .unwrap();
    // …and on the server, from another device.
    let mut chen = None;
    s.server.edit(s.roster, |r: &mut Roster| {
        chen = Some(r.add_member(member("陈海燕"))?);
        Ok(())
    });
    let chen = chen.unwrap();
    let remote_petition = s
        .server
        .create(&Petition::submit(s.branch, petition("噪音扰民"), NOW).unwrap());
    s.server.edit(s.petition, |p: &mut Petition| {
        p.add_progress(None, "已协调物业公司处理", NOW)
    });

    let (session, trace) = reconnect(&mut s.store, &mut s.server);
    assert_converged(&s.store, &mut s.server);
    assert_eq!(session.stats().docs_failed, 0);
    assert!(trace.events.contains(&SyncEvent::DocUpdated(s.roster)));

    let roster: Roster = s.store.get(s.roster).unwrap();
    for id in [s.members[0], s.members[1], zhao, chen] {
        assert!(roster.members.contains_key(&id.to_string()), "{id} lost");
    }
    assert_eq!(
        roster.members[&s.members[0].to_string()].phone.as_deref(),
        Some("13911112222")
    );
    assert_eq!(s.server.get::<Roster>(s.roster), roster);
    let listed = s
        .store
        .list_members(s.branch, &MemberFilter::default())
        .unwrap();
    assert_eq!(listed.len(), 4);
    let p: Petition = s.store.get(remote_petition).unwrap();
    assert_eq!(p.title, "噪音扰民");
    assert_eq!(
        s.store.get::<Petition>(s.petition).unwrap().progress.len(),
        1
    );
    assert_eq!(s.server.get::<Petition>(local_petition).title, "电梯故障");
}

#[test]
fn persisted_sync_states_keep_reconnect_messages_small() {
    // A roster with a long history: 600 changes (what they hold does not matter
    // here, so they are cheap raw writes by another device).
    let mut store = new_store();
    let branch = store
        .create_branch("大院支部", Level::Branch, None)
        .unwrap();
    let roster = store
        .branch_document(branch, model::DocKind::Roster)
        .unwrap();
    let wang = store.add_member(branch, member("王秀英")).unwrap();
    let mut history = store.load_document(roster).unwrap();
    history.set_actor(ActorId::random());
    for i in 0..600_i64 {
        automerge::transaction::Transactable::put(&mut history, automerge::ROOT, "tally", i)
            .unwrap();
        history.commit();
    }
    store.merge(&history.save()).unwrap();
    let mut server = Responder::new(branch);
    let join = enroll(&server);
    let (_, first) = run(&mut store, &mut server, join);
    assert_converged(&store, &mut server);
    // With no shared history yet, the first message summarises every change.
    let first_sync = first.sent[&roster][0];

    let change = |store: &mut Store, phone: &str| {
        let update = MemberUpdate {
            phone: Some(phone.into()),
            ..Default::default()
        };
        store.update_member(wang, update).unwrap()
    };
    change(&mut store, "13700000001");
    let (_, reconnect) = reconnect(&mut store, &mut server);
    assert_converged(&store, &mut server);
    let small = reconnect.sent[&roster][0];
    assert!(
        small * 8 < first_sync,
        "first payload {small} bytes after one change, {first_sync} on the first sync"
    );

    // The same with the sync states forgotten (another peer name): large again.
    change(&mut store, "13700000002");
    let forgetful = Account {
        cert_sha256: [0x99; 32],
        ..store.account().unwrap().unwrap()
    };
    let (_, fresh) = run(&mut store, &mut server, Join::Resume(forgetful));
    assert_converged(&store, &mut server);
    let forgotten = fresh.sent[&roster][0];
    assert!(forgotten > small * 8);
    eprintln!(
        "figure: first SyncDoc payload for a roster with 600 changes: first sync {first_sync} B; \
         reconnect after one change {small} B ({} B for the whole exchange); \
         the same without persisted state {forgotten} B ({} B)",
        reconnect.sync_bytes, fresh.sync_bytes
    );
}

#[test]
fn acknowledgements_clear_unacknowledged_changes() {
    let mut store = new_store();
    let branch = store.create_branch("幸福里", Level::Branch, None).unwrap();
    let wang = store.add_member(branch, member("王秀英")).unwrap();
    let p = store.submit_petition(branch, petition("路灯损坏")).unwrap();
    store
        .assign_petition(p, wang, "2025-04-01".parse().unwrap())
        .unwrap();
    assert_eq!(store.unacknowledged().unwrap().len(), 3);
    assert!(store.unacked_changes(p).unwrap() > 0);

    let mut server = Responder::new(branch);
    let join = enroll(&server);
    let (_, trace) = run(&mut store, &mut server, join);
    assert!(store.unacknowledged().unwrap().is_empty());
    assert!(trace.events.contains(&SyncEvent::Acknowledged(p)));

    // The server stores changes but the Acks are lost with the connection…
    store.add_progress(p, None, "已到现场查看").unwrap();
    server.drop_acks = true;
    reconnect(&mut store, &mut server);
    assert_eq!(store.unacknowledged().unwrap(), vec![p]);
    // …so the next session's equal digests acknowledge them.
    server.drop_acks = false;
    let (again, _) = reconnect(&mut store, &mut server);
    assert_eq!(again.stats().manifest_round_trips, 1);
    assert!(store.unacknowledged().unwrap().is_empty());

    // Same, with another document changed meanwhile: the ranges found equal or
    // listed at our heads acknowledge.
    store.add_progress(p, None, "施工队已进场").unwrap();
    server.drop_acks = true;
    reconnect(&mut store, &mut server);
    server.drop_acks = false;
    assert_eq!(store.unacknowledged().unwrap(), vec![p]);
    let roster = store
        .branch_document(branch, model::DocKind::Roster)
        .unwrap();
    server.edit(roster, |r: &mut Roster| r.add_member(member("赵春生")));
    let (again, _) = reconnect(&mut store, &mut server);
    assert!(again.stats().manifest_round_trips >= 2);
    assert!(store.unacknowledged().unwrap().is_empty());

    // A change that reaches the server while a session is live but not through
    // it (late packets of a connection the device gave up on): the session's
    // `DocChanged` at our own heads acknowledges it.
    let (mut live, _) = reconnect(&mut store, &mut server);
    store.add_progress(p, None, "路灯已修好").unwrap();
    let mut late = AutoCommit::load(&store.export(p).unwrap()).unwrap();
    server
        .docs
        .get_mut(&p.into())
        .unwrap()
        .merge(&mut late)
        .unwrap();
    assert_eq!(store.unacknowledged().unwrap(), vec![p]);
    let notice = server.doc_changed(p);
    assert!(live.handle(&mut store, notice).unwrap().is_empty());
    assert!(store.unacknowledged().unwrap().is_empty());
    assert!(live.take_events().contains(&SyncEvent::Acknowledged(p)));
}

#[test]
fn doc_changed_pulls_the_change() {
    let mut s = synced_branch();
    let (mut live, _) = reconnect(&mut s.store, &mut s.server);

    s.server
        .edit(s.roster, |r: &mut Roster| r.add_member(member("陈海燕")));
    let notice = s.server.doc_changed(s.roster);
    let out = live.handle(&mut s.store, notice).unwrap();
    assert_eq!(out.len(), 1, "one SyncDoc opens the roster's stream");
    assert!(!live.is_in_sync());
    let mut trace = Trace::default();
    drive(&mut live, &mut s.store, &mut s.server, out, &mut trace).unwrap();
    assert!(trace.events.contains(&SyncEvent::DocUpdated(s.roster)));
    assert_eq!(trace.events.last(), Some(&SyncEvent::InSync));
    assert!(live.is_in_sync());
    assert_converged(&s.store, &mut s.server);
    assert_eq!(
        s.store
            .list_members(s.branch, &MemberFilter::default())
            .unwrap()
            .len(),
        3
    );

    // A notice about heads we have already starts nothing.
    let notice = s.server.doc_changed(s.roster);
    assert!(live.handle(&mut s.store, notice).unwrap().is_empty());

    // A notice while the document is syncing: it is synced again after.
    s.store.add_member(s.branch, member("赵春生")).unwrap();
    let out = live.local_change(&mut s.store, s.roster).unwrap();
    assert_eq!(out.len(), 1);
    let Outgoing::Doc {
        message: Some(first),
        ..
    } = out.into_iter().next().unwrap()
    else {
        panic!("a SyncDoc")
    };
    let replies = s.server.handle(first);
    s.server
        .edit(s.roster, |r: &mut Roster| r.add_member(member("孙立新")));
    let notice = s.server.doc_changed(s.roster);
    assert!(live.handle(&mut s.store, notice).unwrap().is_empty());
    let mut queue = Vec::new();
    for reply in replies {
        queue.extend(live.handle(&mut s.store, reply).unwrap());
    }
    let mut trace = Trace::default();
    drive(&mut live, &mut s.store, &mut s.server, queue, &mut trace).unwrap();
    assert!(live.is_in_sync());
    assert_converged(&s.store, &mut s.server);
    assert_eq!(
        s.store
            .list_members(s.branch, &MemberFilter::default())
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn an_old_stream_ending_late_does_not_fail_a_new_sync_of_the_same_document() {
    let mut s = synced_branch();
    let (mut live, _) = reconnect(&mut s.store, &mut s.server);
    let mut trace = Trace {
        hold_closes: true,
        ..Trace::default()
    };
    s.store.add_member(s.branch, member("赵春生")).unwrap();
    let out = live.local_change(&mut s.store, s.roster).unwrap();
    drive(&mut live, &mut s.store, &mut s.server, out, &mut trace).unwrap();
    assert_eq!(
        trace.closing,
        vec![s.roster],
        "finished, its end not reported yet"
    );

    // A new sync of the roster starts before the old stream's end is reported.
    s.store.add_member(s.branch, member("孙立新")).unwrap();
    let out = live.local_change(&mut s.store, s.roster).unwrap();
    assert_eq!(out.len(), 1);
    let old = trace.closing.remove(0);
    assert!(live.doc_stream_closed(&mut s.store, old).is_empty());
    assert!(
        !live
            .take_events()
            .iter()
            .any(|e| matches!(e, SyncEvent::DocFailed { .. })),
        "the old stream's end is no failure of the new sync"
    );
    trace.hold_closes = false;
    drive(&mut live, &mut s.store, &mut s.server, out, &mut trace).unwrap();
    assert!(live.is_in_sync());
    assert_eq!(live.stats().docs_failed, 0);
    assert_converged(&s.store, &mut s.server);
}

#[test]
fn local_changes_are_pushed_while_connected() {
    let mut s = synced_branch();
    let (mut live, _) = reconnect(&mut s.store, &mut s.server);
    let (tx, rx) = std::sync::mpsc::channel();
    s.store
        .set_change_listener(Some(Box::new(move |doc| tx.send(doc).unwrap())));
    let p = s
        .store
        .submit_petition(s.branch, petition("宠物扰邻"))
        .unwrap();
    let changed: Vec<DocId> = rx.try_iter().collect();
    assert_eq!(changed, vec![p]);
    let out = live.local_change(&mut s.store, p).unwrap();
    let mut trace = Trace::default();
    drive(&mut live, &mut s.store, &mut s.server, out, &mut trace).unwrap();
    assert!(live.is_in_sync());
    assert!(trace.events.contains(&SyncEvent::Acknowledged(p)));
    assert_converged(&s.store, &mut s.server);
    assert_eq!(s.store.unacked_changes(p).unwrap(), 0);
}

#[test]
fn a_server_error_for_one_document_does_not_stop_the_others() {
    let mut s = synced_branch();
    let denied = s
        .store
        .submit_petition(s.branch, petition("楼上漏水"))
        .unwrap();
    let allowed = s
        .store
        .submit_petition(s.branch, petition("门禁失灵"))
        .unwrap();
    s.store.add_member(s.branch, member("赵春生")).unwrap();
    s.server.deny.insert(denied.into());

    let (session, trace) = reconnect(&mut s.store, &mut s.server);
    assert_eq!(trace.failed(), vec![(denied, ErrorCode::AccessDenied)]);
    assert_eq!(session.stats().docs_failed, 1);
    assert_eq!(session.stats().docs_synced, 2);
    assert!(s.server.docs.contains_key(&allowed.into()));
    assert_eq!(s.server.get::<Roster>(s.roster).members.len(), 3);
    // The refused document's changes stay unacknowledged, for a later try.
    assert_eq!(s.store.unacknowledged().unwrap(), vec![denied]);
}

#[test]
fn garbage_sync_bytes_fail_that_document_only() {
    let mut s = synced_branch();
    s.store.add_member(s.branch, member("赵春生")).unwrap();
    s.store
        .add_progress(s.petition, None, "已电话联系居民")
        .unwrap();
    s.server.garbage.insert(s.roster.into());

    let (session, trace) = reconnect(&mut s.store, &mut s.server);
    assert_eq!(
        trace.failed(),
        vec![(s.roster, ErrorCode::InvalidSyncPayload)]
    );
    assert_eq!(
        trace.doc_errors,
        vec![(s.roster, ErrorCode::InvalidSyncPayload)],
        "the client tells the server why it ends the stream"
    );
    assert_eq!(session.stats().docs_synced, 1);
    assert_eq!(s.server.get::<Petition>(s.petition).progress.len(), 1);
}

#[test]
fn changes_that_alter_a_header_are_refused() {
    let mut s = synced_branch();
    let before = s.store.export(s.petition).unwrap();
    let doc = s.server.docs.get_mut(&s.petition.into()).unwrap();
    doc.set_actor(ActorId::random());
    let meta = match automerge::ReadDoc::get(doc, automerge::ROOT, "meta").unwrap() {
        Some((_, id)) => id,
        None => panic!("a header"),
    };
    automerge::transaction::Transactable::put(doc, &meta, "kind", "roster").unwrap();
    doc.commit();

    let (session, trace) = reconnect(&mut s.store, &mut s.server);
    assert_eq!(
        trace.failed(),
        vec![(s.petition, ErrorCode::InvalidDocument)]
    );
    assert_eq!(session.stats().docs_failed, 1);
    assert_eq!(
        s.store.export(s.petition).unwrap(),
        before,
        "nothing stored"
    );
}

#[test]
fn refused_and_revoked_devices_end_the_session() {
    let mut store = new_store();
    let branch = store.create_branch("幸福里", Level::Branch, None).unwrap();
    let mut server = Responder::new(branch);
    let wrong = Join::Enroll {
        invite: InviteLink {
            code: "NOT-THE-CODE".into(),
            ..server.invite()
        },
        device_name: "phone".into(),
    };
    let mut session = Session::new(wrong);
    let first = session.start(&mut store).unwrap();
    let mut trace = Trace::default();
    let err = drive(&mut session, &mut store, &mut server, first, &mut trace).unwrap_err();
    assert!(matches!(
        err,
        SessionError::Rejected {
            code: ErrorCode::InviteInvalid,
            ..
        }
    ));
    assert_eq!(store.account().unwrap(), None);
    // The session is over.
    assert!(matches!(
        session.handle(&mut store, server.manifest().digest_message()),
        Err(SessionError::Protocol(_))
    ));

    let join = enroll(&server);
    run(&mut store, &mut server, join);
    server.revoked = true;
    let mut session = Session::new(resume(&store));
    let first = session.start(&mut store).unwrap();
    let err = drive(&mut session, &mut store, &mut server, first, &mut trace).unwrap_err();
    assert!(matches!(
        err,
        SessionError::Rejected {
            code: ErrorCode::DeviceRevoked,
            ..
        }
    ));
    assert_eq!(
        store.account().unwrap(),
        None,
        "a revoked device forgets its account"
    );
    assert_eq!(store.documents().unwrap().len(), 2, "but keeps its records");
}

/// A welcomed session and the server's digest of `server`, not yet delivered.
fn welcomed(store: &mut Store, server: &mut Responder) -> (Session, Message) {
    let join = enroll(server);
    let mut session = Session::new(join);
    let mut replies = Vec::new();
    for out in session.start(store).unwrap() {
        let Outgoing::Control(message) = out else {
            panic!("control messages first")
        };
        replies.extend(server.handle(message));
    }
    let digest = replies.pop().unwrap();
    for reply in replies {
        assert!(session.handle(store, reply).unwrap().is_empty());
    }
    (session, digest)
}

#[test]
fn messages_out_of_place_are_protocol_errors() {
    let id = DocId::random();
    let sync_doc = Message::SyncDoc {
        doc_id: id.into(),
        payload: Vec::new(),
    };
    let cases: Vec<(&str, Vec<Message>)> = vec![
        ("a SyncDoc before Welcome", vec![sync_doc.clone()]),
        (
            "a ManifestEntries before Welcome",
            vec![Message::ManifestEntries {
                start: protocol::DocId::MIN,
                end: None,
                entries: Vec::new(),
            }],
        ),
        (
            "a Hello from the server",
            vec![Message::Hello {
                version: 1,
                min_version: 1,
                credentials: Credentials::Device {
                    device_id: protocol::DeviceId::MIN,
                    secret: DeviceSecret::from_bytes([0; 32]),
                },
            }],
        ),
    ];
    for (what, messages) in cases {
        let mut store = new_store();
        let mut session = Session::new(Join::Enroll {
            invite: Responder::new(BranchId::random()).invite(),
            device_name: "phone".into(),
        });
        session.start(&mut store).unwrap();
        let mut result = Ok(Vec::new());
        for message in messages {
            result = session.handle(&mut store, message);
        }
        assert!(
            matches!(result, Err(SessionError::Protocol(_))),
            "{what}: {result:?}"
        );
    }

    let mut store = new_store();
    let branch = store.create_branch("幸福里", Level::Branch, None).unwrap();
    let mut server = Responder::new(branch);
    let (mut session, digest) = welcomed(&mut store, &mut server);
    // A second Welcome.
    let welcome = Message::Welcome {
        version: 1,
        server_time_ms: 0,
        device_id: server.device,
        member_id: None,
        branch_id: branch.into(),
        role: Role::Member,
        device_secret: None,
        branch_name: None,
    };
    let out = session.handle(&mut store, digest).unwrap();
    assert_eq!(out.len(), 1, "our summaries of the 16 ranges");
    assert!(matches!(
        session.handle(&mut store, welcome),
        Err(SessionError::Protocol(_))
    ));

    // Entries for a range nobody asked about; a reply on a stream not open.
    for stray in [
        Message::ManifestEntries {
            start: protocol::DocId::MIN,
            end: Some(protocol::DocId::from_bytes([
                0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ])),
            entries: Vec::new(),
        },
        sync_doc,
    ] {
        let mut store = new_store();
        let branch = store.create_branch("幸福里", Level::Branch, None).unwrap();
        let mut server = Responder::new(branch);
        let (mut session, digest) = welcomed(&mut store, &mut server);
        session.handle(&mut store, digest).unwrap();
        let result = session.handle(&mut store, stray);
        assert!(
            matches!(result, Err(SessionError::Protocol(_))),
            "{result:?}"
        );
    }
}

#[test]
fn a_stream_closed_early_fails_its_document() {
    let mut s = synced_branch();
    s.store.add_member(s.branch, member("赵春生")).unwrap();
    let mut live = Session::new(resume(&s.store));
    let mut queue: VecDeque<Outgoing> = live.start(&mut s.store).unwrap().into();
    let mut closed = false;
    while let Some(out) = queue.pop_front() {
        let message = match out {
            Outgoing::Control(m) => m,
            Outgoing::Doc {
                doc,
                message: Some(m),
                ..
            } if doc == s.roster && !closed => {
                // The server resets the roster's stream instead of answering.
                closed = true;
                drop(m);
                queue.extend(live.doc_stream_closed(&mut s.store, doc));
                continue;
            }
            Outgoing::Doc {
                message,
                doc,
                finish,
            } => {
                if finish {
                    s.server.finished(doc.into());
                }
                match message {
                    Some(m) => m,
                    None => continue,
                }
            }
            Outgoing::Fetch { .. } => panic!("the store holds every document"),
        };
        for reply in s.server.handle(message) {
            queue.extend(live.handle(&mut s.store, reply).unwrap());
        }
    }
    assert!(closed);
    assert!(live.is_in_sync());
    let events = live.take_events();
    assert!(events.iter().any(|e| matches!(
        e,
        SyncEvent::DocFailed { doc, code: ErrorCode::Internal, .. } if *doc == s.roster
    )));
    assert_eq!(live.stats().docs_failed, 1);
}

// --- properties --------------------------------------------------------------------------

/// One offline edit, on the phone or on the server (by another device).
#[derive(Clone, Debug)]
enum Edit {
    /// A member joins.
    AddMember { on_server: bool, name: u8 },
    /// One of the two original members gets a new phone number.
    Phone {
        on_server: bool,
        member: usize,
        phone: u16,
    },
    /// A new petition.
    Petition { on_server: bool, title: u8 },
    /// A progress note on the original petition.
    Progress { on_server: bool, text: u8 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<bool>(), any::<u8>())
            .prop_map(|(on_server, name)| Edit::AddMember { on_server, name }),
        (any::<bool>(), 0..2usize, any::<u16>()).prop_map(|(on_server, member, phone)| {
            Edit::Phone {
                on_server,
                member,
                phone,
            }
        }),
        (any::<bool>(), any::<u8>())
            .prop_map(|(on_server, title)| Edit::Petition { on_server, title }),
        (any::<bool>(), any::<u8>())
            .prop_map(|(on_server, text)| Edit::Progress { on_server, text }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_offline_edits_on_both_sides_converge_after_one_session(
        edits in prop::collection::vec(edit(), 0..16),
    ) {
        let mut s = synced_branch();
        let mut members = s.members.clone();
        let mut petitions = vec![s.petition];
        let mut notes = 0;
        for edit in edits {
            match edit {
                Edit::AddMember { on_server: false, name } => {
                    members.push(s.store.add_member(s.branch, member(&format!("成员{name}"))).unwrap());
                }
                Edit::AddMember { on_server: true, name } => {
                    let mut id = None;
                    s.server.edit(s.roster, |r: &mut Roster| {
                        id = Some(r.add_member(member(&format!("居民{name}")))?);
                        Ok(())
                    });
                    members.push(id.unwrap());
                }
                Edit::Phone { on_server, member, phone } => {
                    let update = MemberUpdate { phone: Some(format!("139{phone:08}")), ..Default::default() };
                    let id = s.members[member];
                    if on_server {
                        s.server.edit(s.roster, |r: &mut Roster| r.update_member(id, update));
                    } else {
                        s.store.update_member(id, update).unwrap();
                    }
                }
                Edit::Petition { on_server: false, title } => {
                    petitions.push(s.store.submit_petition(s.branch, petition(&format!("诉求{title}"))).unwrap());
                }
                Edit::Petition { on_server: true, title } => {
                    let p = Petition::submit(s.branch, petition(&format!("来访{title}")), NOW).unwrap();
                    petitions.push(s.server.create(&p));
                }
                Edit::Progress { on_server, text } => {
                    let text = format!("进展{text}");
                    if on_server {
                        s.server.edit(s.petition, |p: &mut Petition| p.add_progress(None, &text, NOW));
                    } else {
                        s.store.add_progress(s.petition, None, &text).unwrap();
                    }
                    notes += 1;
                }
            }
        }

        let (session, _) = reconnect(&mut s.store, &mut s.server);
        prop_assert_eq!(session.stats().docs_failed, 0);
        assert_converged(&s.store, &mut s.server);
        // Nothing lost: every member, petition and note from either side is there.
        let roster: Roster = s.store.get(s.roster).unwrap();
        for id in &members {
            prop_assert!(roster.members.contains_key(&id.to_string()));
        }
        prop_assert_eq!(roster.members.len(), members.len());
        for id in &petitions {
            prop_assert!(s.store.get::<Petition>(*id).is_ok());
        }
        prop_assert_eq!(s.store.get::<Petition>(s.petition).unwrap().progress.len(), notes);
        prop_assert!(s.store.unacknowledged().unwrap().is_empty());
    }

    #[test]
    fn any_reply_bytes_fail_one_document_without_panicking(
        payload in prop::collection::vec(any::<u8>(), 1..200),
        sync_prefix in any::<bool>(),
    ) {
        let mut s = synced_branch();
        s.store.add_member(s.branch, member("赵春生")).unwrap();
        let mut live = Session::new(resume(&s.store));
        let mut queue: VecDeque<Outgoing> = live.start(&mut s.store).unwrap().into();
        let mut payload = payload;
        if sync_prefix {
            // Past the first byte check, into the parser proper.
            payload.insert(0, 0x42);
        }
        while let Some(out) = queue.pop_front() {
            let message = match out {
                Outgoing::Control(m) => m,
                Outgoing::Doc { doc, message, finish } => {
                    if finish {
                        s.server.finished(doc.into());
                    }
                    match message {
                        Some(Message::SyncDoc { doc_id, .. }) if doc_id == s.roster.into() => {
                            // Whatever the client said, the "server" answers these bytes.
                            let reply = Message::SyncDoc { doc_id, payload: payload.clone() };
                            match live.handle(&mut s.store, reply) {
                                Ok(out) => queue.extend(out),
                                Err(e) => panic!("{e}"),
                            }
                            continue;
                        }
                        Some(m) => m,
                        None => continue,
                    }
                }
                Outgoing::Fetch { .. } => panic!("the store holds every document"),
            };
            for reply in s.server.handle(message) {
                queue.extend(live.handle(&mut s.store, reply).unwrap());
            }
        }
        prop_assert!(live.is_in_sync());
    }
}

#[test]
fn ranges_from_a_request_are_tracked_until_answered() {
    // The unit under the reconciliation: which ranges of a request matched.
    let local: Manifest = (1..=3u8)
        .map(|n| ManifestEntry {
            doc_id: protocol::DocId::from_bytes([n * 0x40; 16]),
            kind: "petition".into(),
            heads: protocol::Heads::new(vec![[n; 32]]),
        })
        .collect();
    let whole = protocol::manifest::split(protocol::DocId::MIN, None).unwrap();
    let ours: Vec<RangeSummary> = local.summaries(&whole);
    let unacked: HashSet<DocId> = [protocol::DocId::from_bytes([0x40; 16]).into()].into();
    let request = reconcile::Request::new(&ours, &local, &unacked);
    assert!(request.asked(whole[4].0, whole[4].1));
    assert!(!request.asked(whole[4].0, whole[5].1));
    let listed = vec![whole[8]];
    let split = protocol::manifest::split(whole[12].0, whole[12].1).unwrap();
    let theirs = Manifest::new().summaries(&split);
    assert!(theirs.iter().all(|s| request.covers(s)));
    let matched = request.unanswered(&listed, &theirs);
    assert_eq!(matched.len(), 14);
    let settled: Vec<_> = request.unacked_in(&matched).collect();
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].doc_id, protocol::DocId::from_bytes([0x40; 16]));
}

#[test]
fn documents_not_sent_whole_or_broken_are_synced_the_ordinary_way() {
    let mut s = synced_branch();
    let whole = s
        .server
        .create(&Petition::submit(s.branch, petition("路灯不亮"), NOW).unwrap());
    let denied = s
        .server
        .create(&Petition::submit(s.branch, petition("井盖缺失"), NOW).unwrap());
    let broken = s
        .server
        .create(&Petition::submit(s.branch, petition("楼道堆物"), NOW).unwrap());
    s.server.deny.insert(denied.into());
    // Half a document in the bundle, then a bundle that does not unpack.
    s.server.truncated.insert(broken.into());
    s.server.junk_bundle = true;

    let (session, trace) = reconnect(&mut s.store, &mut s.server);
    let mut fetched = s.server.asked_whole.clone();
    fetched.sort();
    let mut expected = vec![whole, denied, broken];
    expected.sort();
    assert_eq!(
        fetched, expected,
        "the three new documents were asked for whole"
    );
    let stats = session.stats();
    assert_eq!(stats.docs_received_whole, 1, "only `whole` came whole");
    assert_eq!(trace.failed(), vec![(denied, ErrorCode::AccessDenied)]);
    assert!(s.store.heads(denied).unwrap().is_none());
    // `broken` was refused whole (half a document) and then synced.
    assert_eq!(stats.docs_synced, 1);
    assert_eq!(s.store.get::<Petition>(broken).unwrap().title, "楼道堆物");
    assert_eq!(s.store.get::<Petition>(whole).unwrap().title, "路灯不亮");
}

#[test]
fn a_phone_whose_clock_lost_years_stamps_records_by_the_servers_time() {
    // A cheap phone after a battery change: its clock says 2022, the server's 2025.
    let behind = 3 * 365 * 24 * 3600 * 1000;
    let mut store = Store::open_in_memory().unwrap();
    store.set_clock(Box::new(move || Timestamp(NOW.0 - behind)));
    let branch = store
        .create_branch("幸福里第一党支部", Level::Branch, None)
        .unwrap();
    let mut server = Responder::new(branch);
    let join = enroll(&server);
    let (_, trace) = run(&mut store, &mut server, join);
    assert!(trace.events.iter().any(|e| matches!(
        e,
        SyncEvent::Welcomed { clock_offset_ms, .. } if *clock_offset_ms == behind
    )));
    assert_eq!(store.clock_offset(), Some(behind));
    assert_eq!(store.now(), NOW, "records are stamped by the server's time");
    assert_eq!(store.today().0.format("%Y").to_string(), "2025");
    let petition = store
        .submit_petition(
            branch,
            NewPetition {
                category: "道路交通".into(),
                title: "路灯损坏".into(),
                description: "北门路灯不亮".into(),
                submitter: Submitter::default(),
                ..Default::default()
            },
        )
        .unwrap();
    let stored: Petition = store.get(petition).unwrap();
    assert_eq!(stored.submitted_at, NOW);

    // Once the person sets the date, the next Welcome clears the correction.
    store.set_clock(Box::new(|| Timestamp(NOW.0 + 20_000)));
    assert_eq!(store.observe_server_time(NOW.0).unwrap(), 0);
    assert_eq!(store.clock_offset(), None, "20 s apart is within tolerance");
    assert_eq!(store.now(), Timestamp(NOW.0 + 20_000));
}

#[test]
fn the_clock_correction_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let ahead = -40 * 24 * 3600 * 1000;
    {
        let mut store = Store::open(&path).unwrap();
        store.set_clock(Box::new(move || Timestamp(NOW.0 - ahead)));
        store.observe_server_time(NOW.0).unwrap();
        assert_eq!(store.clock_offset(), Some(ahead));
    }
    let mut store = Store::open(&path).unwrap();
    store.set_clock(Box::new(move || Timestamp(NOW.0 - ahead)));
    assert_eq!(store.clock_offset(), Some(ahead));
    assert_eq!(store.now(), NOW);
}
