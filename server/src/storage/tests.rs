//! Storage: durability across reopen, group commit, compaction, unloading,
//! and the checks a sync step makes before it stores anything.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc as _};
use automerge::transaction::Transactable as _;
use automerge::{ActorId, AutoCommit, ROOT, ReadDoc as _};
use branchline_core::model::{DocKind, Level, Meta};
use branchline_protocol::{BranchId, DeviceId, DocId, ErrorCode, MemberId, Role};

use super::*;
use crate::admin::Admin;

struct Fixture {
    dir: tempfile::TempDir,
    storage: Storage,
    branch: BranchId,
    roster: DocId,
}

/// These tests are about storage (durability, cache, access, headers) and
/// write with made-up actor ids, so the role rules, which want registered
/// actors, are off; `rules.rs` and the integration tests cover them.
fn options() -> CacheOptions {
    CacheOptions {
        idle_unload: Duration::from_secs(300),
        max_loaded: 100,
        validate_changes: false,
    }
}

fn fixture_with(options: CacheOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let branch = Admin::open(dir.path())
        .unwrap()
        .add_branch("第一支部", Level::Branch, None)
        .unwrap()
        .into();
    let storage = Storage::open(&dir.path().join(db::FILE_NAME), options).unwrap();
    let roster = kind_of(&storage, "roster");
    Fixture {
        dir,
        storage,
        branch,
        roster,
    }
}

fn fixture() -> Fixture {
    fixture_with(options())
}

fn kind_of(storage: &Storage, kind: &str) -> DocId {
    storage
        .read(|conn| {
            let row = conn.query_one(
                "SELECT doc_id FROM documents WHERE kind = ?1",
                crate::sql::params![kind],
            )?;
            db::parse_id(&row.text(0)?)
        })
        .unwrap()
}

fn principal(role: Role, branch: BranchId) -> Principal {
    Principal {
        device: DeviceId::new_random(),
        role,
        branch,
        member: (role != Role::Resident).then(MemberId::new_random),
    }
}

fn cx(who: &Principal, doc_id: DocId) -> StepContext {
    StepContext {
        principal: who.clone(),
        connection: 1,
        doc_id,
    }
}

/// Runs the automerge sync protocol between `client` and the storage until
/// both have nothing more to say; returns the last acknowledged heads.
fn sync_with(
    storage: &Storage,
    cx: &StepContext,
    client: &mut AutoCommit,
) -> std::result::Result<Option<Heads>, StepError> {
    let mut client_state = sync::State::new();
    let mut server_state = sync::State::new();
    let mut acked = None;
    for _ in 0..20 {
        let payload = client
            .sync()
            .generate_sync_message(&mut client_state)
            .map(sync::Message::encode)
            .unwrap_or_default();
        let sent = !payload.is_empty();
        let outcome = storage.sync_step(cx, &mut server_state, &payload)?;
        if let Some(refused) = outcome.rejected.first() {
            return Err(StepError::new(
                refused.code.clone(),
                refused.message.clone(),
            ));
        }
        if outcome.ack.is_some() {
            acked = outcome.ack;
        }
        if outcome.reply.is_empty() {
            if !sent {
                return Ok(acked);
            }
        } else {
            let message = sync::Message::decode(&outcome.reply).unwrap();
            client
                .sync()
                .receive_sync_message(&mut client_state, message)
                .unwrap();
        }
    }
    panic!("sync did not finish");
}

/// A copy of a stored document, as a device would hold it after a sync.
fn client_copy(storage: &Storage, doc_id: DocId, actor: &[u8]) -> AutoCommit {
    let mut client = AutoCommit::new().with_actor(ActorId::from(actor));
    // Read it straight from disk: access is not what this helper tests.
    let bytes = storage
        .read(|conn| documents::read_bytes(conn, doc_id))
        .unwrap()
        .unwrap();
    client.load_incremental(&bytes).unwrap();
    client
}

fn new_document(kind: DocKind, branch: BranchId, actor: &[u8]) -> (DocId, AutoCommit) {
    let core_branch = branchline_core::BranchId::from_bytes(*branch.as_bytes());
    let meta = Meta::new(kind, core_branch);
    let id = DocId::from_bytes(*meta.id.as_bytes());
    let mut doc = AutoCommit::new().with_actor(ActorId::from(actor));
    autosurgeon::reconcile_prop(&mut doc, ROOT, "meta", &meta).unwrap();
    doc.put(ROOT, "title", "路灯坏了").unwrap();
    doc.commit();
    (id, doc)
}

#[test]
fn a_committee_edit_is_durable_across_reopen() {
    let Fixture {
        dir,
        storage,
        branch,
        roster,
    } = fixture();
    let secretary = principal(Role::Secretary, branch);
    let mut client = client_copy(&storage, roster, b"secretary");
    client.put(ROOT, "note", "会议室在二楼").unwrap();
    client.commit();
    let acked = sync_with(&storage, &cx(&secretary, roster), &mut client).unwrap();
    let heads = documents::to_heads(&client.get_heads());
    assert_eq!(acked, Some(heads.clone()));
    assert_eq!(
        storage
            .readable_manifest(&secretary)
            .get(roster)
            .unwrap()
            .heads,
        heads
    );
    storage.shutdown();
    drop(storage);

    let reopened = Storage::open(&dir.path().join(db::FILE_NAME), options()).unwrap();
    let manifest = reopened.readable_manifest(&secretary);
    assert_eq!(manifest.get(roster).unwrap().heads, heads);
    let stored = client_copy(&reopened, roster, b"reader");
    assert_eq!(
        stored.get(ROOT, "note").unwrap().unwrap().0.as_str(),
        Some("会议室在二楼")
    );
    // The change is in the audit log, attributed to the delivering device
    // (its actor was never enrolled).
    let audit = reopened
        .read(|conn| crate::audit::recent(conn, 10))
        .unwrap();
    let accepted = audit
        .iter()
        .find(|e| e.event == event::CHANGE_ACCEPTED)
        .unwrap();
    assert_eq!(accepted.doc, Some(roster.into()));
    assert_eq!(accepted.device, Some(secretary.device));
    assert_eq!(accepted.actor.as_deref(), Some(&b"secretary"[..]));
}

#[test]
fn a_member_may_read_the_roster_but_not_change_it() {
    let f = fixture();
    let member = principal(Role::Member, f.branch);
    let before = f
        .storage
        .readable_manifest(&member)
        .get(f.roster)
        .unwrap()
        .heads
        .clone();

    // Reading works.
    let mut reader = AutoCommit::new();
    sync_with(&f.storage, &cx(&member, f.roster), &mut reader).unwrap();
    assert_eq!(documents::to_heads(&reader.get_heads()), before);

    // Writing is refused, and nothing reaches the disk or the memory.
    reader.put(ROOT, "note", "改一下").unwrap();
    reader.commit();
    let refused = sync_with(&f.storage, &cx(&member, f.roster), &mut reader).unwrap_err();
    assert_eq!(refused.code, ErrorCode::ReadOnly);
    let secretary = principal(Role::Secretary, f.branch);
    let mut fresh = AutoCommit::new();
    sync_with(&f.storage, &cx(&secretary, f.roster), &mut fresh).unwrap();
    assert_eq!(documents::to_heads(&fresh.get_heads()), before);

    // A resident may not even read it.
    let resident = principal(Role::Resident, f.branch);
    let denied =
        sync_with(&f.storage, &cx(&resident, f.roster), &mut AutoCommit::new()).unwrap_err();
    assert_eq!(denied.code, ErrorCode::AccessDenied);
}

#[test]
fn header_changes_and_forbidden_creations_are_invalid() {
    let f = fixture();
    let secretary = principal(Role::Secretary, f.branch);
    let mut client = client_copy(&f.storage, f.roster, b"s");
    let (_, meta) = client.get(ROOT, "meta").unwrap().unwrap();
    client.put(&meta, "kind", "petition").unwrap();
    client.commit();
    let refused = sync_with(&f.storage, &cx(&secretary, f.roster), &mut client).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidDocument);

    // A member may create a petition but not an activity.
    let member = principal(Role::Member, f.branch);
    let (activity, mut doc) = new_document(DocKind::Activity, f.branch, b"m");
    let refused = sync_with(&f.storage, &cx(&member, activity), &mut doc).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidDocument);
    let (petition, mut doc) = new_document(DocKind::Petition, f.branch, b"m");
    assert!(
        sync_with(&f.storage, &cx(&member, petition), &mut doc)
            .unwrap()
            .is_some()
    );
    // Its creator keeps access; another member does not get it.
    assert!(f.storage.access(&member, petition).unwrap().write);
    let other = principal(Role::Member, f.branch);
    assert!(!f.storage.access(&other, petition).unwrap().read);
    assert!(
        f.storage.access(&member, activity).is_none(),
        "never stored"
    );

    // A document whose header names another id is invalid.
    let (_, mut doc) = new_document(DocKind::Petition, f.branch, b"m");
    let refused = sync_with(&f.storage, &cx(&member, DocId::new_random()), &mut doc).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidDocument);

    // Changes without any header are invalid too.
    let mut headless = AutoCommit::new();
    headless.put(ROOT, "x", 1).unwrap();
    headless.commit();
    let refused = sync_with(
        &f.storage,
        &cx(&secretary, DocId::new_random()),
        &mut headless,
    )
    .unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidDocument);
}

#[test]
fn garbage_payloads_are_invalid_sync_payloads() {
    let f = fixture();
    let secretary = principal(Role::Secretary, f.branch);
    let mut state = sync::State::new();
    for garbage in [&[0x42, 0xff, 0xff][..], b"hello", &[0x43; 40][..]] {
        let refused = f
            .storage
            .sync_step(&cx(&secretary, f.roster), &mut state, garbage)
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidSyncPayload, "{garbage:?}");
    }
    // The document is intact afterwards.
    let mut fresh = AutoCommit::new();
    sync_with(&f.storage, &cx(&secretary, f.roster), &mut fresh).unwrap();
    assert!(!fresh.get_heads().is_empty());
}

#[test]
fn concurrent_writes_share_one_commit_and_failures_stay_isolated() {
    let f = fixture();
    let writer = f.storage.writer();
    let (release, hold) = mpsc::channel::<()>();
    let (started, running) = mpsc::channel::<()>();
    let before = writer.commits();
    // The first job holds the writer until everything else is queued.
    let first = writer
        .submit(move |_| {
            started.send(()).ok();
            hold.recv_timeout(Duration::from_secs(10)).ok();
            Ok(())
        })
        .unwrap();
    running.recv_timeout(Duration::from_secs(10)).unwrap();
    let queued: Vec<_> = (0..50)
        .map(|i| {
            writer
                .submit(move |conn| {
                    if i == 7 {
                        // One failing job must not take the others down.
                        conn.execute(
                            "INSERT INTO no_such_table VALUES (1)",
                            crate::sql::params![],
                        )?;
                    }
                    let mut record = AuditRecord::new(event::BRANCH_ADDED);
                    record.detail = format!("job {i}");
                    record.insert(conn)?;
                    Ok(i)
                })
                .unwrap()
        })
        .collect();
    release.send(()).unwrap();
    first.blocking_recv().unwrap().unwrap();
    let mut ok = 0;
    for (i, receiver) in queued.into_iter().enumerate() {
        match receiver.blocking_recv().unwrap() {
            Ok(n) => {
                assert_eq!(n, i);
                ok += 1;
            }
            Err(_) => assert_eq!(i, 7),
        }
    }
    assert_eq!(ok, 49);
    assert_eq!(
        writer.commits() - before,
        2,
        "one commit for the first job, one for the rest"
    );
    let rows: i64 = f
        .storage
        .read(|conn| {
            conn.query_one(
                "SELECT count(*) FROM audit WHERE detail LIKE 'job %'",
                crate::sql::params![],
            )?
            .int(0)
        })
        .unwrap();
    assert_eq!(rows, 49);
}

#[test]
fn chunks_are_compacted_off_the_ack_path() {
    let f = fixture();
    let secretary = principal(Role::Secretary, f.branch);
    let mut client = client_copy(&f.storage, f.roster, b"s");
    for i in 0..40 {
        client
            .put(ROOT, format!("note{i}"), "一些文字，让块比快照大".repeat(4))
            .unwrap();
        client.commit();
        sync_with(&f.storage, &cx(&secretary, f.roster), &mut client).unwrap();
    }
    let expected = documents::to_heads(&client.get_heads());
    let sizes = || {
        f.storage
            .read(|conn| {
                let row = conn.query_one(
                    "SELECT snapshot_len, chunks_len, (SELECT count(*) FROM doc_chunks WHERE doc_id = ?1)
                     FROM documents WHERE doc_id = ?1",
                    crate::sql::params![&f.roster.to_string()],
                )?;
                Ok((row.int(0)?, row.int(1)?, row.int(2)?))
            })
            .unwrap()
    };
    // The writer compacts when idle; wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (snapshot, chunks, _) = sizes();
        if chunks <= snapshot {
            break;
        }
        assert!(Instant::now() < deadline, "no compaction: {:?}", sizes());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (snapshot, chunks, rows) = sizes();
    assert!(snapshot > 0 && chunks <= snapshot, "{snapshot} {chunks}");
    assert!(
        rows < 40,
        "chunks were folded into the snapshot ({rows} left)"
    );
    let mut stored = client_copy(&f.storage, f.roster, b"r");
    assert_eq!(documents::to_heads(&stored.get_heads()), expected);
    assert_eq!(
        stored
            .get(ROOT, "note39")
            .unwrap()
            .unwrap()
            .0
            .as_str()
            .map(str::len),
        Some("一些文字，让块比快照大".repeat(4).len())
    );
    // Writes after a compaction append to the new snapshot.
    client.put(ROOT, "after", "compaction").unwrap();
    client.commit();
    sync_with(&f.storage, &cx(&secretary, f.roster), &mut client).unwrap();
    let mut stored = client_copy(&f.storage, f.roster, b"r");
    assert_eq!(stored.get_heads(), client.get_heads());
}

#[test]
fn documents_are_unloaded_when_idle_or_over_the_cap() {
    let f = fixture_with(CacheOptions {
        idle_unload: Duration::from_millis(50),
        max_loaded: 3,
        ..options()
    });
    let secretary = principal(Role::Secretary, f.branch);
    let mut ids = Vec::new();
    for _ in 0..8 {
        let (id, mut doc) = new_document(DocKind::Activity, f.branch, b"s");
        sync_with(&f.storage, &cx(&secretary, id), &mut doc).unwrap();
        ids.push(id);
        assert!(
            f.storage.loaded_count() <= 3,
            "{}",
            f.storage.loaded_count()
        );
    }
    // A document in use is never unloaded, even over the cap.
    let held = f.storage.slot(ids[0]);
    for id in &ids[1..] {
        let _ = f.storage.slot(*id);
    }
    assert!(f.storage.cache.lock().unwrap().contains_key(&ids[0]));
    drop(held);
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(f.storage.unload_idle(), 0);
    // Manifests never needed them loaded.
    let manifest = f.storage.readable_manifest(&secretary);
    assert!(ids.iter().all(|id| manifest.get(*id).is_some()));
    assert_eq!(f.storage.loaded_count(), 0);
    // And an unloaded document loads again on demand.
    let mut reader = AutoCommit::new();
    sync_with(&f.storage, &cx(&secretary, ids[3]), &mut reader).unwrap();
    assert_eq!(
        documents::to_heads(&reader.get_heads()),
        manifest.get(ids[3]).unwrap().heads
    );
}

#[test]
fn changes_are_announced_with_their_attributes() {
    let f = fixture();
    let mut notices = f.storage.subscribe();
    let secretary = principal(Role::Secretary, f.branch);
    let partner = BranchId::new_random();
    let (id, mut doc) = new_document(DocKind::Activity, f.branch, b"s");
    let shared = doc
        .put_object(ROOT, "shared_with", automerge::ObjType::Map)
        .unwrap();
    doc.put(&shared, partner.to_string(), true).unwrap();
    doc.commit();
    let acked = sync_with(&f.storage, &cx(&secretary, id), &mut doc)
        .unwrap()
        .unwrap();
    let Some(crate::store::NoticeEvent::Changed(notice)) = notices.try_next() else {
        panic!("the change was not announced");
    };
    assert_eq!(notice.doc_id, id);
    assert_eq!(notice.heads, acked);
    assert_eq!(notice.origin, Some(1));
    assert_eq!(notice.attrs.shared_with, vec![partner]);
    assert_eq!(notice.attrs.creator, Some(secretary.device));
    // A member of the partner branch may now read it.
    let guest = principal(Role::Member, partner);
    assert!(f.storage.access(&guest, id).unwrap().read);
    assert_eq!(f.storage.changed_since(notice.seq - 1).len(), 1);
}

/// The SQLite backend under the conformance suite every backend runs.
struct Sqlite;

/// Set in the child process of a kill test: the data directory, and the
/// branch in it.
const CHILD_DIR: &str = "BRANCHLINE_CONFORMANCE_DIR";
const CHILD_BRANCH: &str = "BRANCHLINE_CONFORMANCE_BRANCH";

impl Sqlite {
    fn open(
        &self,
        dir: &std::path::Path,
        branch: BranchId,
        keep: Box<dyn std::any::Any>,
    ) -> Fixture2 {
        let options = CacheOptions {
            validate_changes: true,
            ..options()
        };
        let storage = Storage::open(&dir.join(db::FILE_NAME), options).unwrap();
        Fixture2 {
            backend: Box::new(storage),
            branch,
            secretary_invite: String::new(),
            keep,
        }
    }

    fn dir(fixture: &Fixture2) -> std::path::PathBuf {
        fixture
            .keep
            .downcast_ref::<tempfile::TempDir>()
            .expect("the SQLite fixture keeps its directory")
            .path()
            .to_owned()
    }
}

use crate::store::conformance::{self, Fixture as Fixture2, Harness};

impl Harness for Sqlite {
    fn fresh(&self) -> Fixture2 {
        let dir = tempfile::tempdir().unwrap();
        let admin = Admin::open(dir.path()).unwrap();
        let branch = admin
            .add_branch("Riverside Community", Level::Branch, None)
            .unwrap();
        let invite = admin
            .create_invite(branch, Role::Secretary, None, Duration::from_secs(3600))
            .unwrap();
        let path = dir.path().to_owned();
        let mut fixture = self.open(&path, branch.into(), Box::new(dir));
        fixture.secretary_invite = invite.code;
        fixture
    }

    fn reopen(&self, fixture: Fixture2) -> Fixture2 {
        let Fixture2 {
            backend,
            branch,
            secretary_invite,
            keep,
        } = fixture;
        // Dropped without a shutdown, as a crash would; the writer finishes
        // what it was given, which every caller already waited for.
        drop(backend);
        let dir = keep
            .downcast_ref::<tempfile::TempDir>()
            .expect("a directory")
            .path()
            .to_owned();
        let mut fixture = self.open(&dir, branch, keep);
        fixture.secretary_invite = secretary_invite;
        fixture
    }

    fn second(&self, fixture: &Fixture2) -> Box<dyn crate::store::Backend> {
        self.open(&Self::dir(fixture), fixture.branch, Box::new(()))
            .backend
    }

    fn audit_events(&self, fixture: &Fixture2) -> Vec<crate::AuditEntry> {
        let mut entries = Admin::open(Self::dir(fixture))
            .unwrap()
            .audit(10_000)
            .unwrap();
        entries.reverse();
        entries
    }

    fn integrity_ok(&self, fixture: &Fixture2) -> bool {
        let conn = db::open_reader(&Self::dir(fixture).join(db::FILE_NAME)).unwrap();
        let verdict: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        verdict == "ok"
    }

    fn kill_after(&self, fixture: Fixture2, child: &str, lines: usize) -> (Fixture2, Vec<String>) {
        let dir = Self::dir(&fixture);
        let branch = fixture.branch.to_string();
        let env = [
            (CHILD_DIR, dir.as_os_str()),
            (CHILD_BRANCH, branch.as_ref()),
        ];
        let printed = conformance::kill_child_after(child, &env, lines);
        (self.reopen(fixture), printed)
    }

    fn child(&self) -> Option<Fixture2> {
        let dir = std::path::PathBuf::from(std::env::var_os(CHILD_DIR)?);
        let branch = std::env::var(CHILD_BRANCH).ok()?.parse().ok()?;
        Some(self.open(&dir, branch, Box::new(())))
    }
}

conformance::backend_conformance!(Sqlite);
