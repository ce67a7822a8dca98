//! The PostgreSQL backend under the conformance suite, on a private
//! PostgreSQL cluster each fixture starts for itself
//! ([`crate::pg_cluster::TempCluster`]), and the change sequence's
//! promise: a write that commits after a later-numbered one is not passed
//! over.

use std::time::Duration;

use automerge::Automerge;
use branchline_core::model::Level;
use branchline_protocol::{BranchId, Role};

use crate::admin::Admin;
use crate::db;
use crate::pg_cluster::TempCluster;
use crate::sql::params;
use crate::storage::{CacheOptions, Storage};
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
