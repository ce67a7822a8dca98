//! The PostgreSQL backend under the conformance suite, on a private
//! PostgreSQL cluster each fixture starts for itself
//! ([`crate::pg_cluster::TempCluster`]), and the change sequence's
//! promise: a write that commits after a later-numbered one is not passed
//! over.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable as _;
use automerge::{AutoCommit, Automerge, ChangeHash, ROOT, ReadDoc as _};
use branchline_core::model::{Activity, Level};
use branchline_protocol::{BranchId, DocId, Heads, Role};

use crate::access::DocAttributes;
use crate::admin::Admin;
use crate::db;
use crate::pg_cluster::TempCluster;
use crate::sql::params;
use crate::storage::documents;
use crate::storage::{CacheOptions, Storage};
use crate::store::CreateGuard;
use crate::store::conformance::{self, Fixture, Harness};

/// Set in the child process of a kill test: the database URL and branch.
const CHILD_URL: &str = "BRANCHLINE_CONFORMANCE_PG_URL";
const CHILD_BRANCH: &str = "BRANCHLINE_CONFORMANCE_PG_BRANCH";

/// What keeps a fixture's database alive.
struct Kept {
    url: String,
    /// The data directory (certificate, `database.url`) the admin reads.
    dir: tempfile::TempDir,
    /// The cluster (none in a kill test's child, which borrows the
    /// parent's).
    _cluster: Option<TempCluster>,
}

fn options() -> CacheOptions {
    CacheOptions {
        idle_unload: Duration::from_secs(300),
        max_loaded: 1_000,
        validate_changes: true,
    }
}

/// A fresh private cluster with the Branchline schema, and a data
/// directory naming it.
pub(crate) fn fresh_database() -> (TempCluster, tempfile::TempDir, String) {
    let cluster = TempCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(db::DATABASE_URL_FILE), &url).unwrap();
    (cluster, dir, url)
}

struct Postgres;

impl Postgres {
    fn open(&self, url: &str, branch: BranchId, keep: Box<dyn std::any::Any>) -> Fixture {
        let storage = Storage::open_postgres(url, options()).unwrap();
        Fixture {
            backend: Box::new(storage),
            branch,
            secretary_invite: String::new(),
            keep,
        }
    }

    fn kept(fixture: &Fixture) -> &Kept {
        fixture
            .keep
            .downcast_ref::<Kept>()
            .expect("a PostgreSQL fixture keeps its database")
    }
}

impl Harness for Postgres {
    fn fresh(&self) -> Fixture {
        let (cluster, dir, url) = fresh_database();
        let admin = Admin::open(dir.path()).unwrap();
        let branch = admin
            .add_branch("Riverside Community", Level::Branch, None)
            .unwrap();
        let invite = admin
            .create_invite(branch, Role::Secretary, None, Duration::from_secs(3600))
            .unwrap();
        drop(admin);
        let keep = Kept {
            url: url.clone(),
            dir,
            _cluster: Some(cluster),
        };
        let mut fixture = self.open(&url, branch.into(), Box::new(keep));
        fixture.secretary_invite = invite.code;
        fixture
    }

    fn reopen(&self, fixture: Fixture) -> Fixture {
        let Fixture {
            backend,
            branch,
            secretary_invite,
            keep,
        } = fixture;
        drop(backend);
        let url = keep.downcast_ref::<Kept>().expect("kept").url.clone();
        let mut fixture = self.open(&url, branch, keep);
        fixture.secretary_invite = secretary_invite;
        fixture
    }

    fn second(&self, fixture: &Fixture) -> Box<dyn crate::store::Backend> {
        self.open(&Self::kept(fixture).url, fixture.branch, Box::new(()))
            .backend
    }

    fn audit_events(&self, fixture: &Fixture) -> Vec<crate::AuditEntry> {
        let mut entries = Admin::open(Self::kept(fixture).dir.path())
            .unwrap()
            .audit(10_000)
            .unwrap();
        entries.reverse();
        entries
    }

    /// No chunk without its document, and every document loads whole with
    /// the heads its row records.
    fn integrity_ok(&self, fixture: &Fixture) -> bool {
        let (database, _) = super::PgDb::open(&Self::kept(fixture).url).unwrap();
        database
            .transaction(true, |conn| {
                let orphans = conn
                    .query_one(
                        "SELECT count(*) FROM doc_chunks c
                         WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.doc_id = c.doc_id)",
                        params![],
                    )?
                    .int(0)?;
                let mut whole = orphans == 0;
                for id in crate::storage::documents::ids(conn)? {
                    let bytes =
                        crate::storage::documents::read_bytes(conn, id)?.unwrap_or_default();
                    let row = crate::storage::documents::row(conn, id)?;
                    let loads = Automerge::load(&bytes)
                        .ok()
                        .zip(row)
                        .is_some_and(|(doc, row)| {
                            crate::storage::documents::to_heads(&doc.get_heads()) == row.heads
                        });
                    whole &= loads;
                }
                Ok(whole)
            })
            .unwrap()
    }

    fn kill_after(&self, fixture: Fixture, child: &str, lines: usize) -> (Fixture, Vec<String>) {
        let url = Self::kept(&fixture).url.clone();
        let branch = fixture.branch.to_string();
        let env = [(CHILD_URL, url.as_ref()), (CHILD_BRANCH, branch.as_ref())];
        let printed = conformance::kill_child_after(child, &env, lines);
        (self.reopen(fixture), printed)
    }

    fn child(&self) -> Option<Fixture> {
        let url = std::env::var(CHILD_URL).ok()?;
        let branch = std::env::var(CHILD_BRANCH).ok()?.parse().ok()?;
        Some(self.open(&url, branch, Box::new(())))
    }
}

conformance::backend_conformance!(Postgres);

/// Two transactions draw change positions 1 and 2; the one with 2 commits
/// first and a poll sees it; then the one with 1 commits. The next poll
/// must still report it, though its position is below what was seen.
#[test]
fn a_change_committed_late_below_a_seen_position_is_not_skipped() {
    let (_cluster, dir, url) = fresh_database();
    let admin = Admin::open(dir.path()).unwrap();
    let branch: BranchId = admin
        .add_branch("Riverside Community", Level::Branch, None)
        .unwrap()
        .into();
    drop(admin);
    let reader = Storage::open_postgres(&url, options()).unwrap();
    let (writers, _) = super::PgDb::open(&url).unwrap();
    let doc = |title: &str| {
        let plan = branchline_core::model::NewActivity {
            kind: "branch_meeting".to_owned(),
            title: title.to_owned(),
            starts_at: "2026-03-05T14:30".parse().ok(),
            ends_at: "2026-03-05T16:30".parse().ok(),
            ..Default::default()
        };
        let activity = branchline_core::model::Activity::new(branch.into(), plan).unwrap();
        let doc = branchline_core::model::create_document(
            &activity,
            automerge::ActorId::from(b"writer".as_slice()),
        )
        .unwrap();
        (branchline_protocol::DocId::from(activity.meta.id), doc)
    };
    let (early_id, mut early) = doc("Drew its position first");
    let (late_id, mut late) = doc("Drew its position second");
    let attrs = crate::access::DocAttributes::new("activity", branch);

    // The first writer draws its position and waits, uncommitted.
    let (drawn, wait_drawn) = std::sync::mpsc::channel();
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    let first = std::thread::scope(|scope| {
        let attrs = &attrs;
        let writers = &writers;
        let early = &mut early;
        let first = scope.spawn(move || {
            writers.transaction(false, |conn| {
                let seq = crate::storage::documents::insert(
                    conn,
                    early_id,
                    attrs,
                    &early.save(),
                    &early.get_heads(),
                )?;
                drawn.send(seq).unwrap();
                wait_go.recv().unwrap();
                Ok(seq)
            })
        });
        let early_seq = wait_drawn.recv().unwrap();
        // The second commits at once, with the higher position.
        let late_seq = writers
            .transaction(false, |conn| {
                crate::storage::documents::insert(
                    conn,
                    late_id,
                    attrs,
                    &late.save(),
                    &late.get_heads(),
                )
            })
            .unwrap();
        assert!(late_seq > early_seq);
        reader.poll().unwrap();
        assert!(reader.knows(late_id), "the committed write is seen");
        assert!(!reader.knows(early_id), "the open one cannot be");
        go.send(()).unwrap();
        first.join().unwrap()
    });
    first.unwrap();
    reader.poll().unwrap();
    assert!(
        reader.knows(early_id),
        "the write that committed late, below a position already seen, was skipped"
    );
}

// --- compaction across nodes ----------------------------------------------------------

/// A document stored as a snapshot and `chunks` appended chunks, written
/// through `database` as a node writes; returns it with its id.
fn chunked_document(
    database: &super::PgDb,
    attrs: &DocAttributes,
    chunks: usize,
) -> (DocId, AutoCommit) {
    let id = DocId::new_random();
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "title", "Minutes").unwrap();
    let (snapshot, heads) = (doc.save(), doc.get_heads());
    database
        .transaction(false, |conn| {
            documents::insert(conn, id, attrs, &snapshot, &heads)
        })
        .unwrap();
    for n in 0..chunks {
        append_line(database, attrs, id, &mut doc, n);
    }
    (id, doc)
}

/// Appends one change to `doc` and stores it as a chunk.
fn append_line(
    database: &super::PgDb,
    attrs: &DocAttributes,
    id: DocId,
    doc: &mut AutoCommit,
    n: usize,
) {
    let (chunk, base, heads) = next_chunk(doc, n);
    database
        .transaction(false, |conn| {
            documents::append(conn, id, attrs, &chunk, &base, &heads)
        })
        .unwrap();
}

/// One more change on `doc`: its bytes, the heads before and after.
fn next_chunk(doc: &mut AutoCommit, n: usize) -> (Vec<u8>, Vec<ChangeHash>, Vec<ChangeHash>) {
    let base = doc.get_heads();
    doc.put(ROOT, format!("line {n}"), "the committee met and agreed")
        .unwrap();
    doc.commit();
    (doc.save_after(&base), base, doc.get_heads())
}

/// What the database holds of a document: its snapshot length, its
/// counted chunk bytes, the bytes its chunk rows hold, and their numbers.
fn layout(database: &super::PgDb, id: DocId) -> (i64, i64, i64, Vec<i64>) {
    database
        .transaction(true, |conn| {
            let key = id.to_string();
            let row = conn.query_one(
                "SELECT snapshot_len, chunks_len, length(snapshot)::bigint,
                     (SELECT coalesce(sum(length(data)), 0)::bigint FROM doc_chunks
                      WHERE doc_id = ?1)
                 FROM documents WHERE doc_id = ?1",
                params![&key],
            )?;
            assert_eq!(row.int(0)?, row.int(2)?, "snapshot_len is the snapshot's");
            let seqs = conn
                .query(
                    "SELECT seq FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq",
                    params![&key],
                )?
                .iter()
                .map(|r| r.int(0))
                .collect::<crate::Result<_>>()?;
            Ok((row.int(0)?, row.int(1)?, row.int(3)?, seqs))
        })
        .unwrap()
}

/// The stored document, loaded, and the heads its row records.
fn stored(database: &super::PgDb, id: DocId) -> (Automerge, Heads) {
    database
        .transaction(true, |conn| {
            let bytes = documents::read_bytes(conn, id)?.expect("stored");
            let row = documents::row(conn, id)?.expect("stored");
            Ok((Automerge::load(&bytes).expect("loads"), row.heads))
        })
        .unwrap()
}

/// Waits until `done` holds, for at most a minute.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "waited a minute for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Node A compacts a document while node B appends a chunk to it and
/// commits between A's read of the chunks and A's delete of them (A's
/// update waits for B's row lock meanwhile): B's chunk is neither deleted
/// nor uncounted, and the document loads with B's change.
#[test]
fn a_chunk_appended_during_a_compaction_is_kept() {
    let (_cluster, _dir, url) = fresh_database();
    let (database, _) = super::PgDb::open_without_compaction(&url).unwrap();
    let attrs = DocAttributes::new("activity", BranchId::new_random());
    let (id, mut doc) = chunked_document(&database, &attrs, 20);
    let before = layout(&database, id);
    assert_eq!(before.3.len(), 20);
    assert!(before.1 > before.0, "the chunks outgrew the snapshot");

    let (chunk, base, heads) = next_chunk(&mut doc, 20);
    let (appended, wait_appended) = mpsc::channel();
    let (commit, wait_commit) = mpsc::channel::<()>();
    let folded = std::thread::scope(|scope| {
        let database = &database;
        let attrs = &attrs;
        let appender = scope.spawn(move || {
            database.transaction(false, |conn| {
                documents::append(conn, id, attrs, &chunk, &base, &heads)?;
                appended.send(()).unwrap();
                // Committed once A waits for the row (or A is gone).
                let _ = wait_commit.recv();
                Ok(())
            })
        });
        wait_appended.recv().unwrap();
        let compactor = scope.spawn(move || {
            database.transaction(false, |conn| {
                documents::compact_first(conn, &[id.to_string()]).map_err(|(_, e)| e)
            })
        });
        wait_for("the compaction to wait for the appender's row lock", || {
            database
                .transaction(true, |conn| {
                    conn.query_one(
                        "SELECT count(*) FROM pg_stat_activity
                         WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE documents SET snapshot%'",
                        params![],
                    )?
                    .int(0)
                })
                .unwrap()
                == 1
        });
        commit.send(()).unwrap();
        appender.join().unwrap().unwrap();
        compactor.join().unwrap().unwrap()
    });
    let folded = folded.expect("compacted");
    assert_eq!(folded.chunks, 20, "what A read, and no more");
    assert_eq!(
        folded.before as i64,
        before.0 + before.1,
        "the snapshot and the chunks"
    );
    let (snapshot_len, chunks_len, chunk_bytes, seqs) = layout(&database, id);
    assert_eq!(
        seqs,
        vec![20],
        "B's chunk is kept, the folded ones are gone"
    );
    assert_eq!(chunks_len, chunk_bytes, "and counted");
    assert_eq!(snapshot_len, folded.after as i64);
    let (loaded, row_heads) = stored(&database, id);
    assert_eq!(loaded.get_heads(), doc.get_heads(), "no change lost");
    assert_eq!(row_heads, documents::to_heads(&doc.get_heads()));
    assert!(loaded.get(ROOT, "line 20").unwrap().is_some());
}

/// While node A compacts a document (its transaction still open), node B
/// passes it over instead of compacting it too or waiting; once A
/// committed, B finds nothing left to do.
#[test]
fn a_document_is_compacted_by_one_node_at_a_time() {
    let (_cluster, _dir, url) = fresh_database();
    let (database, _) = super::PgDb::open_without_compaction(&url).unwrap();
    let attrs = DocAttributes::new("activity", BranchId::new_random());
    let (id, mut doc) = chunked_document(&database, &attrs, 20);
    let key = id.to_string();
    let (compacted, wait_compacted) = mpsc::channel();
    let (commit, wait_commit) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let database = &database;
        let key = &key;
        let node_a = scope.spawn(move || {
            database.transaction(false, |conn| {
                let folded = documents::compact_first(conn, std::slice::from_ref(key))
                    .map_err(|(_, e)| e)?;
                compacted.send(folded.is_some()).unwrap();
                let _ = wait_commit.recv();
                Ok(())
            })
        });
        assert!(wait_compacted.recv().unwrap(), "node A compacted it");
        let (tried, wait_tried) = mpsc::channel();
        let node_b = scope.spawn(move || {
            let folded = database.transaction(false, |conn| {
                documents::compact_first(conn, std::slice::from_ref(key)).map_err(|(_, e)| e)
            });
            tried.send(()).unwrap();
            folded
        });
        let passed_over = wait_tried.recv_timeout(Duration::from_secs(30)).is_ok();
        commit.send(()).unwrap();
        node_a.join().unwrap().unwrap();
        assert!(
            passed_over,
            "node B waited for node A instead of passing over"
        );
        assert_eq!(node_b.join().unwrap().unwrap(), None, "node B left it to A");
    });
    let again = database
        .transaction(false, |conn| {
            documents::compact_first(conn, &[key]).map_err(|(_, e)| e)
        })
        .unwrap();
    assert_eq!(again, None, "compacted once, nothing is left");
    let (_, chunks_len, chunk_bytes, seqs) = layout(&database, id);
    assert!(seqs.is_empty() && chunks_len == 0 && chunk_bytes == 0);
    assert_eq!(stored(&database, id).0.get_heads(), doc.get_heads());
}

/// Two nodes compact in the background while a third stores a stream of
/// edits to a few documents: every edit is in the stored documents, each
/// row counts exactly the chunk bytes it holds, and both nodes compacted.
#[test]
fn two_nodes_compacting_beside_a_writer_lose_no_change() {
    const DOCS: usize = 4;
    let (_cluster, dir, url) = fresh_database();
    let branch: BranchId = Admin::open(dir.path())
        .unwrap()
        .add_branch("Riverside Community", Level::Branch, None)
        .unwrap()
        .into();
    let (database, first) = super::PgDb::open_without_compaction(&url).unwrap();
    let writer = Storage::start(database, first, options());
    let (node_a, _) = super::PgDb::open(&url).unwrap();
    let (node_b, _) = super::PgDb::open(&url).unwrap();
    let (reader, _) = super::PgDb::open_without_compaction(&url).unwrap();

    let ids: Vec<DocId> = (0..DOCS)
        .map(|n| {
            let plan = branchline_core::model::NewActivity {
                kind: "branch_meeting".to_owned(),
                title: format!("Meeting {n}"),
                starts_at: "2026-03-05T14:30".parse().ok(),
                ends_at: "2026-03-05T16:30".parse().ok(),
                ..Default::default()
            };
            let activity = Activity::new(branch.into(), plan).unwrap();
            let doc =
                branchline_core::model::create_document(&activity, writer.server_actor().clone())
                    .unwrap();
            writer
                .create_as_server(doc, None, Vec::new(), CreateGuard::Always)
                .unwrap()
                .0
        })
        .collect();
    let chunk_rows = || {
        reader
            .transaction(true, |conn| {
                conn.query_one("SELECT count(*) FROM doc_chunks", params![])?
                    .int(0)
            })
            .unwrap()
    };
    // Write rounds of one edit per document until both nodes have
    // compacted and compactions committed between the writer's edits
    // several times.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut rounds = 0;
    let mut folded_while_writing = 0;
    let mut rows = chunk_rows();
    while rounds < 20
        || folded_while_writing < 5
        || node_a.compactions().0 == 0
        || node_b.compactions().0 == 0
    {
        assert!(
            Instant::now() < deadline,
            "after {rounds} rounds: {folded_while_writing} compactions seen, nodes {:?} and {:?}",
            node_a.compactions(),
            node_b.compactions()
        );
        for &id in &ids {
            writer
                .edit_as_server(id, Vec::new(), |doc| {
                    branchline_core::model::edit(doc, |a: &mut Activity| {
                        let len = a.minutes.as_str().len();
                        a.minutes.splice(len, 0, format!("round {rounds}\n"));
                        Ok(())
                    })
                    .map_err(Into::into)
                })
                .unwrap();
        }
        let now = chunk_rows();
        if now < rows + DOCS as i64 {
            folded_while_writing += 1;
        }
        rows = now;
        rounds += 1;
    }
    drop(node_a);
    drop(node_b);
    let expected: String = (0..rounds).map(|r| format!("round {r}\n")).collect();
    for &id in &ids {
        let (loaded, row_heads) = stored(&reader, id);
        let activity: Activity = branchline_core::model::hydrate(&loaded).unwrap();
        assert_eq!(
            activity.minutes.as_str(),
            expected,
            "every edit of {id} is stored"
        );
        assert_eq!(row_heads, documents::to_heads(&loaded.get_heads()));
        let (_, chunks_len, chunk_bytes, _) = layout(&reader, id);
        assert_eq!(chunks_len, chunk_bytes, "{id} counts the chunks it holds");
    }
    // Writes after all that still build on what is stored.
    writer
        .edit_as_server(ids[0], Vec::new(), |doc| {
            branchline_core::model::edit(doc, |a: &mut Activity| {
                a.title = "Meeting 0, moved".into();
                Ok(())
            })
            .map_err(Into::into)
        })
        .unwrap();
    let (loaded, row_heads) = stored(&reader, ids[0]);
    let activity: Activity = branchline_core::model::hydrate(&loaded).unwrap();
    assert_eq!(activity.title, "Meeting 0, moved");
    assert_eq!(activity.minutes.as_str(), expected);
    assert_eq!(row_heads, documents::to_heads(&loaded.get_heads()));
}

/// A document whose stored bytes do not load cannot be compacted: the
/// node logs it once and skips it from then on, compacting the others,
/// rather than trying it again at every chance.
#[test]
fn a_document_that_cannot_be_compacted_is_skipped() {
    let (_cluster, _dir, url) = fresh_database();
    let (setup, _) = super::PgDb::open_without_compaction(&url).unwrap();
    let attrs = DocAttributes::new("activity", BranchId::new_random());
    let corrupt = DocId::new_random();
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "title", "Broken").unwrap();
    let heads = doc.get_heads();
    setup
        .transaction(false, |conn| {
            documents::insert(conn, corrupt, &attrs, &doc.save(), &heads)?;
            documents::append(conn, corrupt, &attrs, &[0xAB; 2_000], &heads, &heads)
        })
        .unwrap();
    let corrupt_before = layout(&setup, corrupt);
    let (good, mut good_doc) = chunked_document(&setup, &attrs, 20);

    let (node, _) = super::PgDb::open(&url).unwrap();
    wait_for("the good document to be compacted", || {
        node.compactions().0 >= 1
    });
    assert_eq!(layout(&setup, good).3, Vec::<i64>::new());
    assert_eq!(stored(&setup, good).0.get_heads(), good_doc.get_heads());
    // Chances pass: another document comes and is compacted too.
    let (later, mut later_doc) = chunked_document(&setup, &attrs, 20);
    wait_for("the later document to be compacted", || {
        node.compactions().0 >= 2
    });
    assert_eq!(stored(&setup, later).0.get_heads(), later_doc.get_heads());
    assert_eq!(node.compactions(), (2, 1), "the corrupt one was tried once");
    assert_eq!(
        layout(&setup, corrupt),
        corrupt_before,
        "and left as it was"
    );
}
