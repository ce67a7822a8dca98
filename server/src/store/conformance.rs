//! The conformance suite every storage backend runs.
//!
//! Each check is a function over a [`Harness`], which knows how to make a
//! fresh backend with a branch in it, reopen it over the same data, and
//! read back what the traits do not expose (the audit log, an integrity
//! check). [`backend_conformance!`] turns every check into a `#[test]` for
//! one backend; SQLite runs it in `storage::tests`, and a new backend passes
//! the same checks before it serves a device.
//!
//! The checks speak only the traits, through the same calls the server core
//! makes, with real automerge documents and a real enrolled device, and the
//! time passed in as the core passes it.

use std::io::BufRead as _;
use std::time::Duration;

use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc as _};
use branchline_core::model::{
    self, Activity, Applicant, Collection, DocKind, FeedbackBox, LibraryEntry, NewActivity,
    NewLibraryEntry, Timestamp,
};
use branchline_protocol::{BranchId, DeviceId, DocId, ErrorCode, Heads, MemberId, Role};

use super::{Backend, CreateGuard, NoticeEvent, StepContext};
use crate::access::{DocAttributes, Principal};
use crate::audit::{AuditRecord, event};

use crate::auth::AuthFailure;
use crate::error::Error;

/// A backend under test and the branch it was given.
pub(crate) struct Fixture {
    pub backend: Box<dyn Backend>,
    /// A branch that exists in the backend, with its roster.
    pub branch: BranchId,
    /// An invite code for a secretary of `branch`, unused.
    pub secretary_invite: String,
    /// Whatever keeps the data alive (a temporary directory).
    pub keep: Box<dyn std::any::Any>,
}

/// What a backend provides to be tested.
pub(crate) trait Harness {
    /// A fresh backend with one branch and a secretary invite.
    fn fresh(&self) -> Fixture;
    /// The same data opened again after `fixture`'s backend was dropped
    /// without a shutdown.
    fn reopen(&self, fixture: Fixture) -> Fixture;
    /// Another backend over the same data, as a second server process
    /// would open it.
    fn second(&self, fixture: &Fixture) -> Box<dyn Backend>;
    /// The audit log, oldest first.
    fn audit_events(&self, fixture: &Fixture) -> Vec<crate::AuditEntry>;
    /// Whether the stored data passes the backend's own integrity check.
    fn integrity_ok(&self, fixture: &Fixture) -> bool;
    /// Runs `child` in a separate process with the fixture's data, kills the
    /// process once it printed `lines` lines, and reopens the data.
    fn kill_after(&self, fixture: Fixture, child: &str, lines: usize) -> (Fixture, Vec<String>);
    /// In the child process [`Harness::kill_after`] started: the fixture
    /// over the parent's data. `None` in any other process.
    fn child(&self) -> Option<Fixture>;
}

/// A time in the suite's world: 2026-03-01 plus `secs`.
fn at(secs: i64) -> i64 {
    1_772_323_200_000 + secs * 1_000
}

/// Enrolls a secretary with the fixture's invite; returns the principal
/// and the automerge actor its edits carry.
fn secretary(f: &Fixture, actor: &[u8]) -> Principal {
    let (record, _) = f
        .backend
        .enroll(at(0), &f.secretary_invite, "Secretary's phone", actor, 30)
        .expect("enrollment runs")
        .expect("the invite is valid");
    Principal {
        device: record.device_id,
        role: record.role,
        branch: record.branch,
        member: record.member,
    }
}

/// A new activity in `branch`, written by `actor`.
fn new_activity(branch: BranchId, actor: &[u8], title: &str) -> (DocId, AutoCommit) {
    let plan = NewActivity {
        kind: "branch_meeting".to_owned(),
        title: title.to_owned(),
        starts_at: "2026-03-05T14:30".parse().ok(),
        ends_at: "2026-03-05T16:30".parse().ok(),
        ..NewActivity::default()
    };
    let activity = Activity::new(branch.into(), plan).expect("a valid plan");
    let doc =
        model::create_document(&activity, automerge::ActorId::from(actor)).expect("a new document");
    (activity.meta.id.into(), doc)
}

/// Syncs `client` with the backend as `who` until neither side has more to
/// say; returns the last heads acknowledged.
fn sync_doc(
    backend: &dyn Backend,
    who: &Principal,
    connection: u64,
    doc_id: DocId,
    client: &mut AutoCommit,
) -> Option<Heads> {
    let cx = StepContext {
        principal: who.clone(),
        connection,
        doc_id,
    };
    let mut client_state = sync::State::new();
    let mut server_state = backend.sync_state(who.device, doc_id);
    let mut acked = None;
    for _ in 0..20 {
        let payload = client
            .sync()
            .generate_sync_message(&mut client_state)
            .map(sync::Message::encode)
            .unwrap_or_default();
        let sent = !payload.is_empty();
        let outcome = backend
            .sync_step(&cx, &mut server_state, &payload)
            .unwrap_or_else(|e| panic!("sync refused: {} {}", e.code, e.message));
        assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
        acked = outcome.ack.or(acked);
        if outcome.reply.is_empty() {
            if !sent {
                backend
                    .save_sync_state(who.device, doc_id, &server_state)
                    .expect("sync state saved");
                return acked;
            }
        } else {
            let message = sync::Message::decode(&outcome.reply).expect("a valid reply");
            client
                .sync()
                .receive_sync_message(&mut client_state, message)
                .expect("the reply applies");
        }
    }
    panic!("the sync did not settle");
}

/// Adds an anonymous suggestion to a feedback box document.
fn suggest(doc: &mut AutoCommit, text: &str) -> crate::Result<()> {
    let on = model::Date(chrono::NaiveDate::from_ymd_opt(2026, 3, 1).expect("a date"));
    model::edit(doc, |feedback: &mut FeedbackBox| {
        feedback.add_suggestion(branchline_core::ids::SuggestionId::random(), text, None, on)
    })
    .map_err(Into::into)
}

fn heads_of(doc: &mut AutoCommit) -> Heads {
    crate::storage::documents::to_heads(&doc.get_heads())
}

/// A document a device syncs is acknowledged with its heads, listed in
/// the manifest, sent whole in a bundle, and all of it is there after a
/// reopen.
pub(crate) fn documents_are_durable(h: &dyn Harness) {
    let f = h.fresh();
    let who = secretary(&f, b"conformance-1");
    let (id, mut doc) = new_activity(f.branch, b"conformance-1", "March meeting");
    let acked = sync_doc(&*f.backend, &who, 1, id, &mut doc).expect("acknowledged");
    assert_eq!(acked, heads_of(&mut doc));
    assert_eq!(
        f.backend.readable_manifest(&who).get(id).unwrap().heads,
        acked
    );

    let f = h.reopen(f);
    assert_eq!(
        f.backend.readable_manifest(&who).get(id).unwrap().heads,
        acked
    );
    let (bundle, next) = f
        .backend
        .next_bundle(&who, &[id], 0)
        .expect("readable")
        .expect("one bundle");
    assert_eq!(next, 1);
    let unpacked = branchline_protocol::bundle::unpack(&bundle).expect("a valid bundle");
    assert_eq!(unpacked[0].doc_id, id);
    let mut stored = AutoCommit::load(&unpacked[0].data).expect("loads");
    assert_eq!(heads_of(&mut stored), acked);
    // A later edit on the reopened backend appends to what was stored.
    model::edit(&mut doc, |a: &mut Activity| {
        a.title = "March branch meeting".into();
        Ok(())
    })
    .unwrap();
    let acked = sync_doc(&*f.backend, &who, 2, id, &mut doc).expect("acknowledged");
    let f = h.reopen(f);
    assert_eq!(
        f.backend.readable_manifest(&who).get(id).unwrap().heads,
        acked
    );
    assert!(h.integrity_ok(&f));
}

/// The catalog knows each document's kind, branch and access without
/// loading it: another branch's member sees nothing of it.
pub(crate) fn the_catalog_decides_access(h: &dyn Harness) {
    let f = h.fresh();
    let who = secretary(&f, b"conformance-2");
    let (id, mut doc) = new_activity(f.branch, b"conformance-2", "Theme day");
    sync_doc(&*f.backend, &who, 1, id, &mut doc).expect("acknowledged");
    let listed = f
        .backend
        .documents_of_kind(f.branch, DocKind::Activity.as_str());
    assert_eq!(listed, vec![id]);
    let stranger = Principal {
        device: DeviceId::new_random(),
        role: Role::Secretary,
        branch: BranchId::new_random(),
        member: None,
    };
    assert!(f.backend.readable_manifest(&stranger).get(id).is_none());
    assert_eq!(
        f.backend.next_bundle(&stranger, &[id], 0).unwrap(),
        None,
        "a bundle leaves out what the device may not read"
    );
    let mut state = sync::State::new();
    let cx = StepContext {
        principal: stranger,
        connection: 9,
        doc_id: id,
    };
    let refused = f.backend.sync_step(&cx, &mut state, &[]).unwrap_err();
    assert_eq!(refused.code, ErrorCode::AccessDenied);
}

/// The access attributes a document's content gives it (partner branches,
/// `shared_down`, the member a file describes) are stored with it, on
/// creation and on every later write, and read back the same after a
/// reopen and by a second process; access after the reopen follows them.
pub(crate) fn access_attributes_are_stored(h: &dyn Harness) {
    let f = h.fresh();
    let backend = &*f.backend;
    let partner = BranchId::new_random();
    let mut entry = LibraryEntry::new(
        f.branch.into(),
        NewLibraryEntry {
            collection: Collection::Case,
            title: "Night patrol rota".into(),
            problem: "Nobody kept the rota".into(),
            solution: "A shared sign-up sheet".into(),
            tags: Vec::new(),
            written_on: "2026-03-01".parse().expect("a date"),
        },
    )
    .expect("a valid entry");
    entry.share_with(partner.into()).expect("another branch");
    let doc = model::create_document(&entry, backend.server_actor()).unwrap();
    let (library, _) = backend
        .create_as_server(doc, None, Vec::new(), CreateGuard::Always)
        .unwrap();
    // Shared down by a later write, which stores the attributes again.
    let mut share_down = |doc: &mut AutoCommit| {
        model::edit(doc, |e: &mut LibraryEntry| {
            e.share_down(true);
            Ok(())
        })
        .map_err(Into::into)
    };
    backend
        .edit_as_server(library, Vec::new(), &mut share_down)
        .unwrap();
    let who = secretary(&f, b"conformance-attrs");
    let subject = MemberId::new_random();
    let file = Applicant::new(
        f.branch.into(),
        subject.into(),
        "2026-01-05".parse().expect("a date"),
    );
    let applicant: DocId = file.meta.id.into();
    let mut doc =
        model::create_document(&file, automerge::ActorId::from(&b"conformance-attrs"[..])).unwrap();
    sync_doc(backend, &who, 1, applicant, &mut doc).expect("acknowledged");

    let attrs_in = |backend: &dyn Backend, id: DocId| -> DocAttributes {
        let notice = backend
            .changed_since(0)
            .into_iter()
            .find(|n| n.doc_id == id)
            .expect("the document is in the catalog");
        (*notice.attrs).clone()
    };
    let mut want_library = DocAttributes::new(DocKind::LibraryEntry.as_str(), f.branch);
    want_library.shared_with = vec![partner];
    want_library.shared_down = true;
    let mut want_applicant = DocAttributes::new(DocKind::Applicant.as_str(), f.branch);
    want_applicant.subject = Some(subject);
    want_applicant.creator = Some(who.device);
    assert_eq!(attrs_in(backend, library), want_library);
    assert_eq!(attrs_in(backend, applicant), want_applicant);

    let second = h.second(&f);
    assert_eq!(
        attrs_in(&*second, library),
        want_library,
        "a second process"
    );
    assert_eq!(attrs_in(&*second, applicant), want_applicant);
    drop(second);
    let f = h.reopen(f);
    assert_eq!(
        attrs_in(&*f.backend, library),
        want_library,
        "after a reopen"
    );
    assert_eq!(attrs_in(&*f.backend, applicant), want_applicant);
    let member = |branch: BranchId, member: Option<MemberId>| Principal {
        device: DeviceId::new_random(),
        role: Role::Member,
        branch,
        member,
    };
    let guest = f.backend.readable_manifest(&member(partner, None));
    assert!(guest.get(library).is_some(), "the partner branch reads it");
    let own = f
        .backend
        .readable_manifest(&member(f.branch, Some(subject)));
    assert!(
        own.get(applicant).is_some(),
        "the applicant reads their file"
    );
    let other = f
        .backend
        .readable_manifest(&member(f.branch, Some(MemberId::new_random())));
    assert!(other.get(applicant).is_none(), "nobody else's file");
}

/// Every stored change is announced once to subscribers, with its write
/// position and the connection it came from, and can be caught up on.
pub(crate) fn changes_are_announced_in_order(h: &dyn Harness) {
    let f = h.fresh();
    let who = secretary(&f, b"conformance-3");
    let mut notices = f.backend.subscribe();
    let before = f.backend.last_seq();
    let (first, mut a) = new_activity(f.branch, b"conformance-3", "One");
    let (second, mut b) = new_activity(f.branch, b"conformance-3", "Two");
    sync_doc(&*f.backend, &who, 7, first, &mut a).expect("acknowledged");
    let acked = sync_doc(&*f.backend, &who, 8, second, &mut b).expect("acknowledged");
    let mut seen = Vec::new();
    while let Some(event) = notices.try_next() {
        match event {
            NoticeEvent::Changed(notice) => seen.push(notice),
            other => panic!("unexpected {other:?}"),
        }
    }
    let ids: Vec<DocId> = seen.iter().map(|n| n.doc_id).collect();
    assert_eq!(ids, vec![first, second]);
    assert!(seen[0].seq > before && seen[1].seq > seen[0].seq);
    assert_eq!(seen[0].origin, Some(7));
    assert_eq!(seen[1].heads, acked);
    assert_eq!(f.backend.last_seq(), seen[1].seq);
    let caught_up: Vec<DocId> = f
        .backend
        .changed_since(before)
        .iter()
        .map(|n| n.doc_id)
        .collect();
    assert_eq!(caught_up, vec![first, second]);
    assert!(f.backend.changed_since(seen[1].seq).is_empty());
}

/// Invites are one-time and expire by the time passed in; secrets are
/// checked; a revoked device is refused at once and reported by a poll.
pub(crate) fn credentials_and_revocation(h: &dyn Harness) {
    let f = h.fresh();
    let backend = &*f.backend;
    let (record, secret) = backend
        .enroll(at(0), &f.secretary_invite, "Phone", b"conformance-4", 30)
        .unwrap()
        .unwrap();
    assert_eq!(record.role, Role::Secretary);
    assert_eq!(record.branch, f.branch);
    let again = backend.enroll(at(1), &f.secretary_invite, "Other", b"x", 30);
    assert_eq!(again.unwrap().unwrap_err(), AuthFailure::InviteUsed);
    let unknown = backend.enroll(at(1), "NOPE-NOPE-NOPE-NOPE", "Other", b"x", 30);
    assert_eq!(unknown.unwrap().unwrap_err(), AuthFailure::InviteInvalid);

    let invite = backend
        .create_invite(
            at(0),
            f.branch,
            Role::Member,
            None,
            Duration::from_secs(60),
            Some(record.device_id),
        )
        .unwrap();
    assert_eq!(invite.expires_at_ms, at(60));
    let late = backend.enroll(at(61), &invite.code, "Late", b"y", 30);
    assert_eq!(late.unwrap().unwrap_err(), AuthFailure::InviteExpired);

    let checked = backend.check_device(record.device_id, &secret).unwrap();
    assert_eq!(checked.unwrap(), record);
    let wrong = branchline_protocol::DeviceSecret::from_bytes([7; 32]);
    let refused = backend.check_device(record.device_id, &wrong).unwrap();
    assert_eq!(refused.unwrap_err(), AuthFailure::Unauthenticated);

    backend.poll().unwrap();
    backend.revoke(record.device_id, None).unwrap();
    let revoked = backend.check_device(record.device_id, &secret).unwrap();
    assert_eq!(revoked.unwrap_err(), AuthFailure::DeviceRevoked);
    assert!(backend.device(record.device_id).unwrap().unwrap().revoked);
    assert_eq!(backend.poll().unwrap().revoked, vec![record.device_id]);
    assert!(backend.poll().unwrap().revoked.is_empty(), "reported once");

    let f = h.reopen(f);
    let revoked = f.backend.check_device(record.device_id, &secret).unwrap();
    assert_eq!(revoked.unwrap_err(), AuthFailure::DeviceRevoked);
}

/// A branch's submission code is stable and registers residents up to
/// the hourly limit, which frees up an hour later by the time passed in.
pub(crate) fn submission_codes_and_resident_limits(h: &dyn Harness) {
    let f = h.fresh();
    let backend = &*f.backend;
    let code = backend.submission_code(f.branch).unwrap();
    assert_eq!(backend.submission_code(f.branch).unwrap(), code);
    let later = crate::db::now_ms() + 2 * 3_600_000;
    for (i, actor) in [b"r1", b"r2"].iter().enumerate() {
        let (record, _) = backend
            .enroll(later, &code, &format!("Resident {i}"), *actor, 2)
            .unwrap()
            .unwrap();
        assert_eq!(record.role, Role::Resident);
        assert_eq!(record.branch, f.branch);
    }
    let third = backend
        .enroll(later, &code, "Resident 3", b"r3", 2)
        .unwrap();
    assert_eq!(third.unwrap_err(), AuthFailure::RateLimited);
    let next_hour = backend
        .enroll(later + 3_600_001, &code, "Resident 3", b"r3", 2)
        .unwrap();
    assert!(next_hour.is_ok(), "{next_hour:?}");
}

/// The store, not the caller, keeps a branch to one feedback box and a
/// device to its petition quota; a refused write stores nothing.
pub(crate) fn invariants_hold_in_the_store(h: &dyn Harness) {
    let f = h.fresh();
    let backend = &*f.backend;
    let device = DeviceId::new_random();
    let feedback_box = || {
        let feedback = FeedbackBox::new(f.branch.into());
        model::create_document(&feedback, backend.server_actor()).unwrap()
    };
    let (first, _) = backend
        .create_as_server(feedback_box(), None, Vec::new(), CreateGuard::OnlyOneOfKind)
        .unwrap();
    let second =
        backend.create_as_server(feedback_box(), None, Vec::new(), CreateGuard::OnlyOneOfKind);
    assert!(matches!(second, Err(Error::AlreadyExists(id)) if id == first));
    let boxes = backend.documents_of_kind(f.branch, DocKind::FeedbackBox.as_str());
    assert_eq!(boxes, vec![first]);

    let petition = |n: u32| {
        let new = model::NewPetition {
            category: "roads".into(),
            title: format!("Street light {n}"),
            description: "Dark for two weeks".into(),
            location: None,
            submitter: model::Submitter::default(),
        };
        let petition = model::Petition::submit(f.branch.into(), new, Timestamp(at(0))).unwrap();
        model::create_document(&petition, backend.server_actor()).unwrap()
    };
    let quota = CreateGuard::PetitionQuota {
        device,
        since: crate::db::now_ms() - 60_000,
        limit: 2,
    };
    for n in 0..2 {
        let mut record = AuditRecord::new(event::PETITION_SUBMITTED);
        record.device = Some(device);
        backend
            .create_as_server(petition(n), Some(device), vec![record], quota.clone())
            .unwrap();
    }
    let mut record = AuditRecord::new(event::PETITION_SUBMITTED);
    record.device = Some(device);
    let third = backend.create_as_server(petition(3), Some(device), vec![record], quota);
    assert!(matches!(third, Err(Error::LimitReached(2))), "{third:?}");
    let stored = backend.documents_of_kind(f.branch, DocKind::Petition.as_str());
    assert_eq!(stored.len(), 2, "the refused petition was not stored");
    let audited = h
        .audit_events(&f)
        .iter()
        .filter(|r| r.event == event::PETITION_SUBMITTED)
        .count();
    assert_eq!(audited, 2, "nor audited");
}

/// A server edit sees every change stored before it and is stored with its
/// audit rows.
pub(crate) fn server_edits_build_on_what_is_stored(h: &dyn Harness) {
    let f = h.fresh();
    let backend = &*f.backend;
    let feedback = FeedbackBox::new(f.branch.into());
    let doc = model::create_document(&feedback, backend.server_actor()).unwrap();
    let (id, created) = backend
        .create_as_server(doc, None, Vec::new(), CreateGuard::Always)
        .unwrap();
    let mut record = AuditRecord::new(event::SUGGESTION_ANONYMOUS_ACCEPTED);
    record.branch = Some(f.branch);
    let mut edit = |doc: &mut AutoCommit| suggest(doc, "Hold the lecture on a Saturday");
    backend.edit_as_server(id, vec![record], &mut edit).unwrap();
    let missing = backend.edit_as_server(DocId::new_random(), Vec::new(), &mut |_| Ok(()));
    assert!(missing.is_err(), "an edit of an unknown document fails");
    let f = h.reopen(f);
    let who = Principal {
        device: DeviceId::new_random(),
        role: Role::Secretary,
        branch: f.branch,
        member: None,
    };
    let heads = f
        .backend
        .readable_manifest(&who)
        .get(id)
        .unwrap()
        .heads
        .clone();
    assert_ne!(heads, created);
    let audit = h.audit_events(&f);
    let row = audit
        .iter()
        .find(|r| r.event == event::SUGGESTION_ANONYMOUS_ACCEPTED)
        .expect("audited");
    assert_eq!(row.doc, Some(id.into()));
    assert_eq!(row.device, None, "an anonymous suggestion names no device");
}

/// Two server processes writing one document: the one holding an old
/// copy does not overwrite the other's heads; both edits are kept and the
/// stored heads are the document's.
pub(crate) fn stale_writers_never_overwrite_heads(h: &dyn Harness) {
    let f = h.fresh();
    let node_a = &*f.backend;
    let feedback = FeedbackBox::new(f.branch.into());
    let doc = model::create_document(&feedback, node_a.server_actor()).unwrap();
    let (id, _) = node_a
        .create_as_server(doc, None, Vec::new(), CreateGuard::Always)
        .unwrap();
    let node_b = h.second(&f);
    node_b
        .edit_as_server(id, Vec::new(), &mut |doc| suggest(doc, "from node B"))
        .unwrap();
    // Node A still holds the document as it created it.
    node_a
        .edit_as_server(id, Vec::new(), &mut |doc| suggest(doc, "from node A"))
        .unwrap();
    drop(node_b);
    let f = h.reopen(f);
    let who = Principal {
        device: DeviceId::new_random(),
        role: Role::Secretary,
        branch: f.branch,
        member: None,
    };
    let listed = f
        .backend
        .readable_manifest(&who)
        .get(id)
        .unwrap()
        .heads
        .clone();
    let (bundle, _) = f.backend.next_bundle(&who, &[id], 0).unwrap().unwrap();
    let unpacked = branchline_protocol::bundle::unpack(&bundle).unwrap();
    let mut stored = AutoCommit::load(&unpacked[0].data).unwrap();
    assert_eq!(
        listed,
        heads_of(&mut stored),
        "the stored heads are the document's"
    );
    let feedback: FeedbackBox = model::hydrate(&stored).unwrap();
    let texts: Vec<String> = feedback
        .suggestions
        .values()
        .map(|s| s.text.as_str().to_owned())
        .collect();
    assert!(
        texts.iter().any(|t| t == "from node A") && texts.iter().any(|t| t == "from node B"),
        "{texts:?}"
    );
}

/// Sync states are kept per device and document, across a reopen.
pub(crate) fn sync_states_are_kept(h: &dyn Harness) {
    let f = h.fresh();
    let who = secretary(&f, b"conformance-5");
    let (id, mut doc) = new_activity(f.branch, b"conformance-5", "Kept");
    sync_doc(&*f.backend, &who, 1, id, &mut doc).expect("acknowledged");
    let saved = f.backend.sync_state(who.device, id);
    assert!(!saved.shared_heads.is_empty(), "the sync's state was saved");
    let f = h.reopen(f);
    assert_eq!(
        f.backend.sync_state(who.device, id).shared_heads,
        saved.shared_heads
    );
    let fresh = f.backend.sync_state(DeviceId::new_random(), id);
    assert!(fresh.shared_heads.is_empty());
}

/// Suggestion limits count per device over a day of the time passed in.
pub(crate) fn suggestion_limits(h: &dyn Harness) {
    let f = h.fresh();
    let (a, b) = (DeviceId::new_random(), DeviceId::new_random());
    assert!(f.backend.take_suggestion(a, 2, at(0)));
    assert!(f.backend.take_suggestion(a, 2, at(10)));
    assert!(!f.backend.take_suggestion(a, 2, at(20)));
    assert!(f.backend.take_suggestion(b, 2, at(20)));
    assert!(f.backend.take_suggestion(a, 2, at(24 * 3600)));
}

/// A stored document as its pieces: for each automerge chunk of the bytes
/// the store sends whole (its snapshot, then what was appended), its type
/// (0 a whole document, 1 or 2 a change) and its length. This is how the
/// store keeps it, read through the traits: the first piece is the stored
/// snapshot, the rest are the appended chunks.
fn stored_pieces(bytes: &[u8]) -> Vec<(u8, usize)> {
    // A chunk is 4 magic bytes, a 4-byte checksum, its type, the length of
    // its data (ULEB128) and the data (the automerge binary format).
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        assert_eq!(
            bytes.get(at..at + 4),
            Some(&[0x85, 0x6f, 0x4a, 0x83][..]),
            "an automerge chunk starts at byte {at}"
        );
        let kind = bytes[at + 8];
        at += 9;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let byte = bytes[at];
            at += 1;
            len |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        at += len;
        pieces.push((kind, at - start));
    }
    assert_eq!(at, bytes.len(), "the last chunk ends with the bytes");
    pieces
}

/// The bytes of one stored document that `who` may read.
fn stored_bytes(backend: &dyn Backend, who: &Principal, id: DocId) -> Vec<u8> {
    let (bundle, _) = backend
        .next_bundle(who, &[id], 0)
        .expect("readable")
        .expect("one bundle");
    let mut unpacked = branchline_protocol::bundle::unpack(&bundle).expect("a valid bundle");
    unpacked.remove(0).data
}

/// Changes stored one sync at a time are folded into the document's
/// snapshot in the background, off the Ack path, until what is appended is
/// no bigger than the snapshot; the document reads back with the heads
/// acknowledged, and an edit after the compaction is stored on top of it.
pub(crate) fn appended_changes_are_compacted(h: &dyn Harness) {
    const EDITS: usize = 40;
    let f = h.fresh();
    let who = secretary(&f, b"conformance-6");
    let (id, mut doc) = new_activity(f.branch, b"conformance-6", "Minutes, line by line");
    sync_doc(&*f.backend, &who, 1, id, &mut doc).expect("acknowledged");
    let add_line = |doc: &mut AutoCommit, n: usize| {
        model::edit(doc, |a: &mut Activity| {
            let len = a.minutes.as_str().len();
            let line = format!("{n}: the committee will meet again on the first Monday.\n");
            a.minutes.splice(len, 0, &line);
            Ok(())
        })
        .unwrap();
    };
    let mut acked = None;
    for n in 0..EDITS {
        add_line(&mut doc, n);
        acked = sync_doc(&*f.backend, &who, 1, id, &mut doc).or(acked);
    }
    let acked = acked.expect("acknowledged");
    assert_eq!(acked, heads_of(&mut doc));

    // Uncompacted, the document would be its first snapshot and one piece
    // per edit, the edits outweighing the snapshot.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let pieces = loop {
        let pieces = stored_pieces(&stored_bytes(&*f.backend, &who, id));
        let appended: usize = pieces[1..].iter().map(|(_, len)| len).sum();
        if pieces.len() <= EDITS && appended <= pieces[0].1 {
            break pieces;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not compacted: {} pieces, {appended} bytes appended to a snapshot of {}",
            pieces.len(),
            pieces[0].1
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(pieces[0].0, 0, "the snapshot is a whole document");
    assert!(
        pieces[1..].iter().all(|(kind, _)| matches!(kind, 1 | 2)),
        "what follows it are changes: {pieces:?}"
    );
    let stored = AutoCommit::load(&stored_bytes(&*f.backend, &who, id)).expect("loads");
    let minutes = model::hydrate::<Activity>(&stored).unwrap().minutes;
    assert_eq!(minutes.as_str().lines().count(), EDITS, "no change lost");
    let mut stored = stored;
    assert_eq!(heads_of(&mut stored), acked);
    assert_eq!(
        f.backend.readable_manifest(&who).get(id).unwrap().heads,
        acked
    );

    // The store still appends to the compacted document.
    add_line(&mut doc, EDITS);
    let acked = sync_doc(&*f.backend, &who, 2, id, &mut doc).expect("acknowledged");
    assert_eq!(acked, heads_of(&mut doc));
    let f = h.reopen(f);
    let mut stored = AutoCommit::load(&stored_bytes(&*f.backend, &who, id)).expect("loads");
    assert_eq!(heads_of(&mut stored), acked);
    assert_eq!(
        f.backend.readable_manifest(&who).get(id).unwrap().heads,
        acked
    );
    assert!(h.integrity_ok(&f));
}

/// The child of [`acknowledged_writes_survive_a_kill`]: creates documents
/// as fast as it can and prints each one's id once the store returned.
pub(crate) fn write_until_killed(f: Fixture) {
    let backend = &*f.backend;
    for n in 0.. {
        let feedback = FeedbackBox::new(f.branch.into());
        let mut doc = model::create_document(&feedback, backend.server_actor()).unwrap();
        suggest(&mut doc, &format!("suggestion {n} {}", "x".repeat(1_500))).unwrap();
        let (id, _) = backend
            .create_as_server(doc, None, Vec::new(), CreateGuard::Always)
            .unwrap();
        println!("{id}");
    }
}

/// A process killed while it writes loses nothing the store had returned:
/// every document reported stored is there after a reopen, and the data
/// passes its integrity check.
pub(crate) fn acknowledged_writes_survive_a_kill(h: &dyn Harness) {
    let f = h.fresh();
    let (f, printed) = h.kill_after(f, "write_until_killed", 40);
    assert!(printed.len() >= 40, "the child wrote {}", printed.len());
    assert!(h.integrity_ok(&f));
    let stored = f
        .backend
        .documents_of_kind(f.branch, DocKind::FeedbackBox.as_str());
    for line in &printed {
        let id: DocId = line.parse().expect("a document id");
        assert!(stored.contains(&id), "acknowledged document {id} was lost");
    }
    // The reopened store takes new writes.
    let feedback = FeedbackBox::new(f.branch.into());
    let doc = model::create_document(&feedback, f.backend.server_actor()).unwrap();
    f.backend
        .create_as_server(doc, None, Vec::new(), CreateGuard::Always)
        .unwrap();
}

/// Runs the ignored test `child` of this test binary in a process of its
/// own with `env`, reads the document ids it prints until `lines` arrived
/// (or it ended), then SIGKILLs it mid-write (it writes as fast as it can)
/// and reaps it: the kill half of [`Harness::kill_after`].
pub(crate) fn kill_child_after(
    child: &str,
    env: &[(&str, &std::ffi::OsStr)],
    lines: usize,
) -> Vec<String> {
    let mut process = std::process::Command::new(std::env::current_exe().unwrap())
        .args([child, "--ignored", "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let printed = read_lines(&mut process, lines);
    process.kill().unwrap();
    process.wait().unwrap();
    printed
}

/// Reads the lines a child prints until `lines` arrived or it ended.
fn read_lines(child: &mut std::process::Child, lines: usize) -> Vec<String> {
    let Some(out) = child.stdout.take() else {
        return Vec::new();
    };
    let mut got = Vec::new();
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        // libtest prints its own lines around the test's.
        if line.parse::<DocId>().is_ok() {
            got.push(line);
        }
        if got.len() >= lines {
            break;
        }
    }
    got
}

/// One `#[test]` per conformance check, for the backend `$harness` builds.
macro_rules! backend_conformance {
    ($harness:expr) => {
        mod conformance_suite {
            use super::*;
            use $crate::store::conformance as check;

            #[test]
            fn documents_are_durable() {
                check::documents_are_durable(&$harness);
            }

            #[test]
            fn the_catalog_decides_access() {
                check::the_catalog_decides_access(&$harness);
            }

            #[test]
            fn access_attributes_are_stored() {
                check::access_attributes_are_stored(&$harness);
            }

            #[test]
            fn changes_are_announced_in_order() {
                check::changes_are_announced_in_order(&$harness);
            }

            #[test]
            fn credentials_and_revocation() {
                check::credentials_and_revocation(&$harness);
            }

            #[test]
            fn submission_codes_and_resident_limits() {
                check::submission_codes_and_resident_limits(&$harness);
            }

            #[test]
            fn invariants_hold_in_the_store() {
                check::invariants_hold_in_the_store(&$harness);
            }

            #[test]
            fn server_edits_build_on_what_is_stored() {
                check::server_edits_build_on_what_is_stored(&$harness);
            }

            #[test]
            fn stale_writers_never_overwrite_heads() {
                check::stale_writers_never_overwrite_heads(&$harness);
            }

            #[test]
            fn sync_states_are_kept() {
                check::sync_states_are_kept(&$harness);
            }

            #[test]
            fn suggestion_limits() {
                check::suggestion_limits(&$harness);
            }

            #[test]
            fn appended_changes_are_compacted() {
                check::appended_changes_are_compacted(&$harness);
            }

            #[test]
            fn acknowledged_writes_survive_a_kill() {
                check::acknowledged_writes_survive_a_kill(&$harness);
            }

            /// Not a check: the process [`acknowledged_writes_survive_a_kill`]
            /// starts and kills (it runs only when the harness asks for it).
            #[test]
            #[ignore = "the child process of acknowledged_writes_survive_a_kill"]
            fn write_until_killed() {
                if let Some(fixture) = check::Harness::child(&$harness) {
                    check::write_until_killed(fixture);
                }
            }
        }
    };
}
pub(crate) use backend_conformance;
