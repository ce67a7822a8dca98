//! What the fuzz targets share: the record format their inputs are read in,
//! the long-lived server and client they feed, and the honest inputs the
//! seed corpus starts from (`examples/make_corpus.rs`).
//!
//! The stateful targets read their input as a sequence of [`Record`]s, so a
//! mutation of one record's bytes stays inside it and the fuzzer can keep a
//! valid first message while it damages a later one. A target meets one
//! long-lived server or store, as a running server meets many connections:
//! state carries from input to input, which is what a real process sees.

use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

use automerge::sync::SyncDoc as _;
use branchline_core::model::{self, Activity, Level, NewActivity};
use branchline_core::{BranchId, Store};
use branchline_protocol::{Credentials, DeviceId, DeviceSecret, DocId, Message, Role, encode};
use branchline_server::Admin;
use branchline_server::server_core::{CoreSettings, Peer, ServerCore, Stream};

/// One record of a stateful target's input: `op`, then a little-endian
/// `u16` length, then that many bytes. A record cut short by the end of the
/// input is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Which operation the target performs with the bytes.
    pub op: u8,
    /// Its bytes.
    pub bytes: &'a [u8],
}

/// Splits `input` into records.
pub fn records(mut input: &[u8]) -> Vec<Record<'_>> {
    let mut out = Vec::new();
    while let [op, lo, hi, rest @ ..] = input {
        let len = usize::from(u16::from_le_bytes([*lo, *hi]));
        if rest.len() < len {
            break;
        }
        let (bytes, tail) = rest.split_at(len);
        out.push(Record { op: *op, bytes });
        input = tail;
    }
    out
}

/// Writes records in the format [`records`] reads.
pub fn write_records<'a>(records: impl IntoIterator<Item = (u8, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (op, bytes) in records {
        let len = u16::try_from(bytes.len()).expect("a seed record fits in 64 KiB");
        out.push(op);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// The time, as the QUIC session passes it to the core.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// A directory in memory where there is one: the targets commit to SQLite on
/// every accepted write, and a disk's fsyncs would slow them a hundredfold.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("a directory in /dev/shm")
    } else {
        tempfile::tempdir().expect("a temporary directory")
    }
}

/// The meeting every honest seed document is.
pub fn activity_plan() -> NewActivity {
    NewActivity {
        kind: "branch_meeting".to_owned(),
        title: "Branch meeting 支部大会".to_owned(),
        starts_at: "2026-11-20T19:00".parse().ok(),
        ends_at: "2026-11-20T21:00".parse().ok(),
        ..NewActivity::default()
    }
}

/// A server with one branch, its admin, and a committee device enrolled on
/// it: the server side of the stateful targets.
pub struct ServerTarget {
    /// The data directory's admin, for invites, imports and checks.
    pub admin: Admin,
    /// The core every message goes to.
    pub core: ServerCore,
    /// The branch.
    pub branch: BranchId,
    /// The enrolled device's connection.
    pub peer: Peer,
    /// The enrolled device and its secret, for a `Hello` that resumes.
    pub device: (DeviceId, DeviceSecret),
    /// The branch's roster, stored on the server.
    pub roster: DocId,
    /// Inputs run so far, for checks made now and then.
    pub inputs: u64,
    // Dropped last: the core and the admin hold files in it.
    _dir: tempfile::TempDir,
}

impl ServerTarget {
    /// A fresh server in a scratch directory, with a device enrolled.
    pub fn new() -> ServerTarget {
        let dir = scratch_dir();
        let admin = Admin::open(dir.path()).expect("a data directory");
        let branch = admin
            .add_branch("Riverside", Level::Branch, None)
            .expect("a branch");
        let settings = CoreSettings::new("127.0.0.1:4433".into(), [0; 32]);
        let core = ServerCore::open_sqlite(dir.path(), settings).expect("a core");
        let code = fresh_invite(&admin, branch);
        let hello = enroll_hello(&code, b"fuzzer", &[0xf0; 16]);
        let (mut peer, welcome) = core.hello(now(), hello).expect("the invite is valid");
        let Message::Welcome {
            device_id,
            device_secret: Some(secret),
            ..
        } = welcome
        else {
            panic!("an enrollment is welcomed with a secret, not {welcome:?}");
        };
        core.connected(&mut peer).expect("connected");
        let roster = admin
            .document_ids()
            .expect("documents")
            .into_iter()
            .find(|id| {
                admin
                    .document_bytes(*id)
                    .ok()
                    .flatten()
                    .and_then(|b| automerge::AutoCommit::load(&b).ok())
                    .and_then(|d| model::read_meta(&d).ok())
                    .is_some_and(|m| m.kind == "roster")
            })
            .expect("a new branch has a roster");
        ServerTarget {
            admin,
            core,
            branch,
            peer,
            device: (device_id, secret),
            roster: DocId::from(roster),
            inputs: 0,
            _dir: dir,
        }
    }

    /// A new one-time invite into the branch.
    pub fn fresh_invite(&self) -> String {
        fresh_invite(&self.admin, self.branch)
    }

    /// Hands one decoded message to the core as the first message of a new
    /// stream of `peer`, ends the stream as an honest device would, and
    /// checks the answers' shape.
    pub fn open_stream(&self, peer: &Peer, message: Message) -> Option<Stream> {
        let syncs = matches!(message, Message::SyncDoc { .. });
        let (stream, answer) = self.core.open_stream(now(), peer, message);
        if !syncs {
            assert!(
                stream.is_some() || (answer.end && answer.messages.len() == 1),
                "a request gets one answer and its stream ends: {:?}",
                answer.messages
            );
        }
        for m in &answer.messages {
            assert!(
                !syncs
                    || matches!(
                        m,
                        Message::Ack { .. }
                            | Message::SyncDoc { .. }
                            | Message::Rejected { .. }
                            | Message::Error { .. }
                    ),
                "a document stream carries only Ack, SyncDoc, Rejected and Error, not {}",
                m.name()
            );
        }
        match stream {
            Some(Stream::Bundles(mut cursor)) => {
                while let Some(bundle) = self.core.next_bundle(peer, &mut cursor) {
                    assert!(
                        matches!(bundle, Message::Documents { .. } | Message::Error { .. }),
                        "a fetch carries only Documents, not {}",
                        bundle.name()
                    );
                }
                None
            }
            other => other,
        }
    }

    /// Hands a control-stream message to the core; a control stream that
    /// ends, ends with an `Error`.
    pub fn control(&self, peer: &Peer, message: Message) {
        let answer = self.core.control(peer, message);
        if answer.end {
            assert!(
                matches!(answer.messages.last(), Some(Message::Error { .. })),
                "a control stream ends with an Error: {:?}",
                answer.messages
            );
        }
    }

    /// The document stored as `id` loads and its header names it.
    pub fn check_stored(&self, id: DocId) {
        let Some(bytes) = self.admin.document_bytes(id.into()).expect("readable") else {
            return;
        };
        let doc = automerge::AutoCommit::load(&bytes).expect("a stored document loads");
        let meta = model::read_meta(&doc).expect("a stored document has a header");
        assert_eq!(
            DocId::from(meta.id),
            id,
            "a stored header names another document"
        );
    }
}

impl Default for ServerTarget {
    fn default() -> Self {
        Self::new()
    }
}

fn fresh_invite(admin: &Admin, branch: BranchId) -> String {
    admin
        .create_invite(branch, Role::Committee, None, Duration::from_secs(86_400))
        .expect("an invite")
        .code
}

/// The `Hello` of a device enrolling with `code`.
pub fn enroll_hello(code: &str, device_name: &[u8], actor_id: &[u8]) -> Message {
    Message::Hello {
        version: branchline_protocol::PROTOCOL_VERSION,
        min_version: branchline_protocol::MIN_SUPPORTED_VERSION,
        credentials: Credentials::Enroll {
            invite_code: code.to_owned(),
            device_name: String::from_utf8_lossy(device_name).into_owned(),
            actor_id: actor_id.to_vec(),
        },
    }
}

/// The `Hello` of an enrolled device.
pub fn resume_hello(device_id: DeviceId, secret: DeviceSecret) -> Message {
    Message::Hello {
        version: branchline_protocol::PROTOCOL_VERSION,
        min_version: branchline_protocol::MIN_SUPPORTED_VERSION,
        credentials: Credentials::Device { device_id, secret },
    }
}

/// Runs `f` on this thread's long-lived `T`, made on first use. libFuzzer
/// calls a target from one thread.
pub fn with_target<T: 'static, R>(
    key: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    make: impl FnOnce() -> T,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    key.with(|cell| {
        let mut slot = cell.borrow_mut();
        f(slot.get_or_insert_with(make))
    })
}

/// An honest activity document and the first sync message a device sends
/// for it, the seeds of the automerge inputs.
pub fn honest_activity(branch: BranchId) -> (DocId, Vec<u8>, Vec<u8>) {
    let activity = Activity::new(branch, activity_plan()).expect("an activity");
    let mut doc = model::create_document(&activity, automerge::ActorId::from(&[0xf0; 16][..]))
        .expect("a document");
    let mut state = automerge::sync::State::new();
    let first = doc
        .sync()
        .generate_sync_message(&mut state)
        .expect("a new document has something to say");
    (activity.meta.id.into(), doc.save(), first.encode())
}

/// A client store with one activity and minutes: what the client target's
/// merges and the seed documents start from.
pub fn store_with_activity(branch: BranchId) -> (Store, Vec<u8>) {
    let mut store = Store::open_in_memory().expect("a store");
    let activity = Activity::new(branch, activity_plan()).expect("an activity");
    let id = store.create(&activity).expect("stored");
    store
        .write_minutes(id, "Minutes of the meeting: 会议记录")
        .expect("minutes");
    let bytes = store.export(id).expect("export");
    (store, bytes)
}

/// Valid frames of every kind a device or server sends, for the seed corpus.
pub fn honest_frames(branch: BranchId, roster: DocId) -> Vec<Vec<u8>> {
    let (doc_id, saved, first) = honest_activity(branch);
    let mut messages = vec![
        enroll_hello("k7Qx2mP9", b"Maria's phone", &[0xf0; 16]),
        resume_hello(
            DeviceId::from_bytes([4; 16]),
            DeviceSecret::from_bytes([5; 32]),
        ),
        Message::SyncDoc {
            doc_id,
            payload: first,
        },
        Message::SyncDoc {
            doc_id: roster,
            payload: Vec::new(),
        },
        Message::ManifestDigest {
            doc_count: 3,
            digest: [1; 32],
        },
        Message::GetDocuments {
            doc_ids: vec![roster, doc_id],
        },
        Message::Documents {
            bundle: branchline_protocol::bundle::pack([(doc_id, saved.as_slice())]),
        },
        Message::DocChanged {
            doc_id: roster,
            heads: branchline_protocol::Heads::new(Vec::new()),
        },
        Message::GetSubmissionCode,
        Message::SubmitSuggestion {
            text: "More benches by the river".into(),
            anonymous: true,
        },
        Message::SubmitPetition {
            category: "infrastructure".into(),
            title: "Street light out".into(),
            description: "The light at No. 3 has been out for a week".into(),
            location: Some("No. 3, River Lane".into()),
            name: None,
            contact: None,
        },
        Message::CreateInvite {
            role: Role::Member,
            member_id: None,
            valid_for_secs: 3600,
        },
        Message::RevokeDevice {
            device_id: DeviceId::from_bytes([4; 16]),
        },
    ];
    let whole = branchline_protocol::manifest::split(DocId::MIN, None).expect("splits");
    messages.push(Message::ManifestRanges {
        ranges: whole
            .iter()
            .map(|(start, end)| branchline_protocol::RangeSummary {
                start: *start,
                end: *end,
                doc_count: 1,
                digest: [7; 32],
            })
            .collect(),
    });
    messages
        .iter()
        .map(|m| encode(m).expect("an honest message encodes"))
        .collect()
}
