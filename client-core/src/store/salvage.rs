//! A damaged store: noticed when it opens, rebuilt from what can still be read.
//!
//! Phones lose power mid-write, cheap flash wears out, and a page of the database
//! file can come back as garbage. [`Store::open`] runs SQLite's `quick_check` and
//! refuses such a file with [`Error::StoreDamaged`] rather than serve wrong lists or
//! fail later. [`Store::salvage`] then moves the file aside and builds a new store
//! in its place from what the old one still yields, document by document: the
//! device's id and account (so it reconnects as itself), and every document whose
//! row can be read, with all its changes. Every change the device wrote itself is
//! counted as not yet acknowledged; the first sync acknowledges those the server
//! already holds and sends the others, and brings back whole every document that
//! could not be read. What is lost is only what the device wrote and the damage
//! made unreadable before any server received it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use automerge::{ActorId, AutoCommit};
use rusqlite::{Connection, OpenFlags};

use super::{Origin, Store, insert_document, record_unacked, set_info};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, DocId};
use crate::model;

/// What [`Store::salvage`] rebuilt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Salvage {
    /// Documents read back whole, with every change they held.
    pub documents: usize,
    /// Of those, read without the changes appended after their last snapshot
    /// (the appended part was unreadable).
    pub partial: usize,
    /// Documents the old store listed that could not be read at all; the server
    /// sends them again.
    pub unreadable: usize,
    /// Changes this device wrote, kept to send (or to be acknowledged).
    pub own_changes: usize,
    /// Whether the device's account (its enrollment) was read back.
    pub account: bool,
    /// Where the damaged file was moved.
    pub damaged_copy: PathBuf,
}

impl Store {
    /// Runs SQLite's quick check over the whole file; a damaged page is
    /// [`Error::StoreDamaged`].
    pub fn check_integrity(&self) -> Result<()> {
        quick_check(&self.conn)
    }

    /// Rebuilds the damaged store at `path` (see the module documentation): the
    /// file (and its journal) is moved to `<path>.damaged-<ms>` and a new store is
    /// written at `path` from what could be read.
    pub fn salvage(path: impl AsRef<Path>) -> Result<(Store, Salvage)> {
        let path = path.as_ref();
        let stamp = model::Timestamp::now().0;
        let damaged_copy = path.with_extension(format!("damaged-{stamp}"));
        std::fs::rename(path, &damaged_copy)
            .map_err(|e| Error::NotAStore(format!("moving the damaged store aside: {e}")))?;
        for suffix in ["-wal", "-shm"] {
            let journal = PathBuf::from(format!("{}{suffix}", path.display()));
            if journal.exists() {
                let moved = PathBuf::from(format!("{}{suffix}", damaged_copy.display()));
                std::fs::rename(&journal, moved).map_err(|e| {
                    Error::NotAStore(format!("moving the damaged store's journal aside: {e}"))
                })?;
            }
        }
        let old = Connection::open_with_flags(&damaged_copy, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut read = Readable::of(&old);
        read.account = read_account(&damaged_copy);

        let mut store = Store::open(path)?;
        let tx = store.conn.transaction()?;
        if let Some(device) = read.device {
            set_info(&tx, "device_id", &device.to_string())?;
        }
        tx.commit()?;
        if let Some(device) = read.device {
            store.device = device;
        }
        if let Some(account) = &read.account {
            store.save_account(account)?;
        }
        let actor = ActorId::from(store.device.as_bytes().as_slice());
        let mut report = Salvage {
            documents: 0,
            partial: 0,
            unreadable: read.unreadable,
            own_changes: 0,
            account: read.account.is_some(),
            damaged_copy,
        };
        for (id, bytes, whole) in read.documents(&old) {
            let Some(mut doc) = AutoCommit::load(&bytes)
                .ok()
                .filter(|d| model::read_meta(d).is_ok_and(|m| m.id == id))
            else {
                report.unreadable += 1;
                continue;
            };
            let tx = store.conn.transaction()?;
            insert_document(&tx, &mut doc, Origin::Remote)?;
            let own: Vec<automerge::ChangeHash> = doc
                .get_changes(&[])
                .iter()
                .filter(|c| *c.actor_id() == actor)
                .map(|c| c.hash())
                .collect();
            record_unacked(&tx, id, &own)?;
            tx.commit()?;
            report.own_changes += own.len();
            report.documents += 1;
            report.partial += usize::from(!whole);
        }
        tracing::warn!(?report, "rebuilt a damaged store");
        Ok((store, report))
    }
}

/// A damaged store's parts that can still be read.
struct Readable {
    device: Option<DeviceId>,
    account: Option<super::Account>,
    ids: BTreeSet<DocId>,
    /// Rows listed whose id could not be read.
    unreadable: usize,
}

impl Readable {
    fn of(conn: &Connection) -> Readable {
        let device = conn
            .query_row(
                "SELECT value FROM store_info WHERE key = 'device_id'",
                [],
                |r| r.get::<_, String>(0),
            )
            .ok()
            .and_then(|id| id.parse().ok());
        // A damaged table page ends a scan early: scan from both ends.
        let mut ids = BTreeSet::new();
        let mut unreadable = 0;
        for order in ["ASC", "DESC"] {
            let sql = format!("SELECT doc_id FROM documents ORDER BY rowid {order}");
            let Ok(mut stmt) = conn.prepare(&sql) else {
                continue;
            };
            let Ok(mut rows) = stmt.query([]) else {
                continue;
            };
            while let Ok(Some(row)) = rows.next() {
                match row.get::<_, String>(0).ok().and_then(|t| t.parse().ok()) {
                    Some(id) => {
                        ids.insert(id);
                    }
                    None if order == "ASC" => unreadable += 1,
                    None => {}
                }
            }
        }
        Readable {
            device,
            account: None,
            ids,
            unreadable,
        }
    }

    /// Each readable document's bytes, and whether its appended chunks came too.
    fn documents<'a>(
        &'a self,
        conn: &'a Connection,
    ) -> impl Iterator<Item = (DocId, Vec<u8>, bool)> + 'a {
        self.ids.iter().filter_map(move |id| {
            let key = id.to_string();
            let snapshot: Vec<u8> = conn
                .query_row(
                    "SELECT snapshot FROM documents WHERE doc_id = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .ok()?;
            let chunks: Option<Vec<u8>> = (|| {
                let mut stmt = conn
                    .prepare("SELECT data FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")
                    .ok()?;
                let mut rows = stmt.query([&key]).ok()?;
                let mut out = Vec::new();
                loop {
                    match rows.next() {
                        Ok(Some(row)) => out.extend(row.get::<_, Vec<u8>>(0).ok()?),
                        Ok(None) => return Some(out),
                        Err(_) => return None,
                    }
                }
            })();
            match chunks {
                Some(chunks) => {
                    let mut whole = snapshot.clone();
                    whole.extend(chunks);
                    if AutoCommit::load(&whole).is_ok() {
                        Some((*id, whole, true))
                    } else {
                        Some((*id, snapshot, false))
                    }
                }
                None => Some((*id, snapshot, false)),
            }
        })
    }
}

/// The account row of the damaged file, read by `Store::account` over a
/// read-only connection that is never migrated or written.
fn read_account(path: &Path) -> Option<super::Account> {
    let view = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    let store = Store {
        conn: view,
        device: DeviceId::from_bytes([0; 16]),
        clock: Box::new(model::Timestamp::now),
        clock_offset_ms: 0,
        listener: None,
        docs: super::cache::DocCache::default(),
    };
    store.account().ok().flatten()
}

/// SQLite's `quick_check`: `ok`, or the first problems it found.
pub(super) fn quick_check(conn: &Connection) -> Result<()> {
    let damaged = |what: String| Error::StoreDamaged(what);
    let mut stmt = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(|e| damaged(e.to_string()))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| damaged(e.to_string()))?;
    if rows == ["ok"] {
        Ok(())
    } else {
        Err(damaged(rows.join("; ")))
    }
}
