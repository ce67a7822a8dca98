//! Durable document storage, the in-memory catalog, and the document cache.
//!
//! - **Database**: documents are a snapshot plus appended change chunks
//!   ([`documents`]); every write goes through the one [`writer`] thread with
//!   group commit, and a write's result is only delivered after its commit
//!   reached the disk. Compaction runs on that thread when it is idle.
//! - **Catalog**: every document's access attributes and heads, kept in
//!   memory (a few hundred bytes each, so 10,000 documents cost a few MB).
//!   Manifests and access checks read only the catalog, never documents.
//!   It is updated on the writer thread right after each commit, and picks up
//!   documents written by other processes (the admin CLI) when polled.
//! - **Cache**: loaded automerge documents, loaded on demand and unloaded
//!   when idle or when more than the configured number are loaded; a
//!   document in use by a stream is never unloaded.
//!
//! A document sync step ([`Storage::sync_step`]) applies a client's sync
//! message under the document's lock, checks access and the header, stores
//! the new changes durably, and only then reports the heads to acknowledge.
//! Anything that fails after changes were applied in memory throws the
//! in-memory document away, so memory never holds what the disk does not.

mod backend;
pub(crate) mod database;
pub(crate) mod documents;
pub(crate) mod writer;

use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc as _};
use automerge::{ActorId, AutoCommit, Automerge, ChangeHash};
use branchline_protocol::bundle;
use branchline_protocol::manifest::Manifest;
use branchline_protocol::{
    BranchId, ChangeRejection, DeviceId, DocId, ErrorCode, Heads, ManifestEntry,
};
use tokio::sync::broadcast;

use crate::access::{self, Access, DocAttributes, Principal};
use crate::audit::{AuditRecord, event};
use crate::auth;
use crate::db;
use crate::error::{Error, Result};
use crate::rules;
use crate::sql::Sql;
use crate::store::{
    ChangeNotice, CreateGuard, Notices, PollOutcome, StepContext, StepError, StepOutcome,
};
pub(crate) use database::{Database, SqliteDb};
use documents::DocRow;

/// One document as the catalog knows it.
#[derive(Debug, Clone)]
struct CatalogEntry {
    attrs: Arc<DocAttributes>,
    heads: Heads,
    /// Its write position in the database.
    seq: i64,
    /// Its position in this process's feed ([`ChangeNotice::seq`]).
    position: i64,
}

/// Every stored document's attributes and heads.
///
/// The catalog numbers the writes it learns of in the order it learns
/// them: that is the order of the change feed, which subscribers catch up
/// by. With one SQLite writer it is the database's order too; with several
/// nodes on one PostgreSQL, writes of other nodes arrive after this node's
/// later ones, and a feed ordered by database position would let a
/// subscriber that catches up pass over them.
#[derive(Debug, Default)]
struct Catalog {
    docs: HashMap<DocId, CatalogEntry>,
    /// Feed position → document, so "what changed since" is a range query.
    by_position: BTreeMap<i64, DocId>,
    /// The newest write position applied.
    newest_seq: i64,
}

impl Catalog {
    /// Records a write; returns false if the catalog already knew it (or a
    /// newer write of the document).
    fn apply(&mut self, row: &DocRow) -> bool {
        if let Some(old) = self.docs.get(&row.doc_id) {
            if old.seq >= row.seq {
                return false;
            }
            self.by_position.remove(&old.position);
        }
        let position = self.last_position() + 1;
        self.by_position.insert(position, row.doc_id);
        self.newest_seq = self.newest_seq.max(row.seq);
        self.docs.insert(
            row.doc_id,
            CatalogEntry {
                attrs: Arc::new(row.attrs.clone()),
                heads: row.heads.clone(),
                seq: row.seq,
                position,
            },
        );
        true
    }

    fn last_position(&self) -> i64 {
        self.by_position.keys().next_back().copied().unwrap_or(0)
    }
}

/// How often a write is tried on a document other processes keep writing.
const MAX_STALE_RETRIES: u32 = 4;

/// Runs automerge work on a document, turning a panic (automerge on bytes a
/// device sent) into an error for that document.
fn contained<T>(doc_id: DocId, what: &str, work: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|_| {
        tracing::error!(doc = %doc_id, what, "automerge panicked");
        Error::CorruptDocument {
            doc: doc_id,
            reason: format!("{what} failed"),
        }
    })
}

/// Tuning for the document cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheOptions {
    pub idle_unload: Duration,
    pub max_loaded: usize,
    /// Check every incoming change against the rules ([`crate::rules`]).
    /// Off only to measure what the check costs.
    pub validate_changes: bool,
}

/// A loaded document and what the disk holds of it.
struct LoadedDoc {
    doc: Automerge,
    /// Heads durably stored; new chunks are `save_after` these.
    stored_heads: Vec<ChangeHash>,
    /// Attributes as stored, or `None` for a document not stored yet (an
    /// unknown id a device is about to create).
    attrs: Option<DocAttributes>,
}

/// One cache slot: the document (if loaded) behind its lock.
pub(crate) struct DocSlot {
    doc: Mutex<Option<LoadedDoc>>,
    last_used: Mutex<Instant>,
}

/// Shared between the storage handle and the writer thread.
struct Shared {
    catalog: RwLock<Catalog>,
    hierarchy: RwLock<HashMap<BranchId, Option<BranchId>>>,
    changes: broadcast::Sender<Arc<ChangeNotice>>,
}

impl Shared {
    /// Applies committed rows to the catalog and announces the new ones.
    fn publish(&self, rows: &[DocRow], origin: Option<u64>) {
        let mut catalog = self.catalog.write().unwrap_or_else(PoisonError::into_inner);
        for row in rows {
            if catalog.apply(row) {
                let entry = &catalog.docs[&row.doc_id];
                let notice = ChangeNotice {
                    doc_id: row.doc_id,
                    heads: row.heads.clone(),
                    attrs: entry.attrs.clone(),
                    seq: entry.position,
                    origin,
                };
                // No receivers (no connections) is fine.
                let _ = self.changes.send(Arc::new(notice));
            }
        }
    }

    fn ancestors(&self, branch: BranchId) -> Vec<BranchId> {
        let hierarchy = self
            .hierarchy
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        let mut at = branch;
        // The admin CLI only adds branches under existing ones, so there are
        // no cycles; the bound is a guard, not a rule.
        while let Some(Some(parent)) = hierarchy.get(&at) {
            if out.contains(parent) || out.len() > 64 {
                break;
            }
            out.push(*parent);
            at = *parent;
        }
        out
    }
}

/// The changes of one sync message, sorted by the rules.
#[derive(Debug, Default)]
struct Judgement {
    /// Changes that may be stored, in causal order.
    accepted: Vec<automerge::Change>,
    /// Changes refused on their own.
    rejected: Vec<ChangeRejection>,
    /// How many changes depend on a refused one (not stored, not listed).
    blocked: usize,
}

/// Where polls for other processes' writes have looked up to.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PollMarks {
    /// The newest document write position seen.
    pub(crate) docs: i64,
    /// The newest revocation position seen.
    pub(crate) revoked: i64,
    /// PostgreSQL: the oldest transaction that was still running when the
    /// last poll looked; its writes (and younger ones) are read again.
    pub(crate) horizon: Option<i64>,
}

/// The server's storage: database, catalog, cache.
pub(crate) struct Storage<D: Database = SqliteDb> {
    shared: Arc<Shared>,
    db: D,
    cache: Mutex<HashMap<DocId, Arc<DocSlot>>>,
    options: CacheOptions,
    /// Where polls have looked up to.
    poll_marks: Arc<Mutex<PollMarks>>,
    /// The automerge actor the server writes its own changes as: the one in
    /// `server_info`, made when the database was created, plus a suffix of
    /// this process's own.
    server_actor: ActorId,
    /// Suggestions per device in the last day, in memory only (see
    /// [`crate::store::RateLimits`]).
    suggestions: crate::submissions::RateWindow,
}

impl Storage<SqliteDb> {
    /// Opens the SQLite database at `path` and starts the writer thread.
    pub(crate) fn open(path: &Path, options: CacheOptions) -> Result<Storage> {
        let (database, conn) = SqliteDb::open(path)?;
        let first = FirstRead::of(&conn, None)?;
        drop(conn);
        Ok(Storage::start(database, first, options))
    }

    /// The writer thread.
    #[cfg(test)]
    pub(crate) fn writer(&self) -> &writer::Writer {
        self.db.writer()
    }
}

impl Storage<crate::postgres::PgDb> {
    /// Opens the PostgreSQL database at `url` (migrating it if needed).
    pub(crate) fn open_postgres(url: &str, options: CacheOptions) -> Result<Self> {
        let (database, first) = crate::postgres::PgDb::open(url)?;
        Ok(Storage::start(database, first, options))
    }
}

/// What storage reads from its database before it serves.
pub(crate) struct FirstRead {
    rows: Vec<DocRow>,
    server_actor: Vec<u8>,
    revoked_mark: i64,
    hierarchy: HashMap<BranchId, Option<BranchId>>,
    horizon: Option<i64>,
}

impl FirstRead {
    /// Reads it in one transaction; `horizon` is the PostgreSQL snapshot's
    /// oldest running transaction, read in the same transaction.
    pub(crate) fn of(conn: &dyn Sql, horizon: Option<i64>) -> Result<FirstRead> {
        Ok(FirstRead {
            rows: documents::rows_since(conn, 0)?,
            server_actor: db::get_info(conn, "actor_id")?
                .ok_or_else(|| Error::Corrupt("no server actor id".into()))?,
            revoked_mark: auth::revoked_since(conn, 0)?.1,
            hierarchy: branch_parents(conn)?,
            horizon,
        })
    }
}

impl<D: Database> Storage<D> {
    /// Storage over `database`, whose content `first` read.
    pub(crate) fn start(database: D, first: FirstRead, options: CacheOptions) -> Storage<D> {
        let mut catalog = Catalog::default();
        for row in &first.rows {
            catalog.apply(row);
        }
        let mut server_actor = first.server_actor;
        // Each process that opens the store writes under an actor of its own:
        // two server processes editing one document as one actor would give
        // two different changes the same sequence number, which automerge
        // refuses.
        server_actor.extend_from_slice(&rand::random::<[u8; 8]>());
        let server_actor = ActorId::from(server_actor);
        let marks = PollMarks {
            docs: catalog.newest_seq,
            revoked: first.revoked_mark,
            horizon: first.horizon,
        };
        let (changes, _) = broadcast::channel(crate::config::limits::BROADCAST_CAPACITY);
        let shared = Arc::new(Shared {
            catalog: RwLock::new(catalog),
            hierarchy: RwLock::new(first.hierarchy),
            changes,
        });
        Storage {
            shared,
            db: database,
            cache: Mutex::new(HashMap::new()),
            options,
            poll_marks: Arc::new(Mutex::new(marks)),
            server_actor,
            suggestions: crate::submissions::RateWindow::new(crate::submissions::DAY),
        }
    }

    /// The database.
    pub(crate) fn database(&self) -> &D {
        &self.db
    }

    /// Whether the catalog knows the document.
    #[cfg(test)]
    pub(crate) fn knows(&self, doc_id: DocId) -> bool {
        self.shared
            .catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .docs
            .contains_key(&doc_id)
    }

    /// The automerge actor of the server's own changes.
    pub(crate) fn server_actor(&self) -> &ActorId {
        &self.server_actor
    }

    /// The stored documents of `kind` in `branch`, by id (from the catalog).
    pub(crate) fn documents_of_kind(&self, branch: BranchId, kind: &str) -> Vec<DocId> {
        let catalog = self
            .shared
            .catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<DocId> = catalog
            .docs
            .iter()
            .filter(|(_, entry)| entry.attrs.branch == branch && entry.attrs.kind == kind)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// Stores a document the server wrote itself (`doc` made with
    /// [`Storage::server_actor`]): durably, in the catalog, and announced to
    /// connected devices that may read it. `creator` is the device the
    /// server wrote it for (access treats it as the document's creator);
    /// `audit` rows are written in the same transaction, with the document
    /// filled in. Fails if the server already holds the document.
    /// Blocking: call from a blocking thread.
    pub(crate) fn create_as_server(
        &self,
        mut doc: AutoCommit,
        creator: Option<DeviceId>,
        audit: Vec<AuditRecord>,
        condition: CreateGuard,
    ) -> Result<(DocId, Heads)> {
        let meta = branchline_core::model::read_meta(doc.document())?;
        let doc_id = DocId::from_bytes(*meta.id.as_bytes());
        let slot = self.slot(doc_id);
        let mut guard = slot.lock();
        let loaded = self
            .loaded(&mut guard, doc_id)
            .map_err(|e| Error::Internal(e.message))?;
        if loaded.attrs.is_some() || !loaded.doc.get_heads().is_empty() {
            return Err(Error::Invalid {
                what: "document",
                reason: format!("the server already stores document {doc_id}"),
            });
        }
        doc.commit();
        let branch = BranchId::from_bytes(*meta.branch.as_bytes());
        let new = doc.document().clone();
        let attrs = documents::attributes_of(&new, &meta.kind, branch, creator);
        let stored = LoadedDoc {
            doc: new,
            stored_heads: Vec::new(),
            attrs: None,
        };
        *loaded = stored;
        match self.store_server_changes(doc_id, loaded, attrs, audit, condition) {
            Ok(heads) => Ok((doc_id, heads)),
            Err(e) => {
                *guard = None;
                Err(e)
            }
        }
    }

    /// Applies `edit` to a stored document as the server's own actor, and
    /// stores the new changes as [`Storage::create_as_server`] does. The
    /// edit sees the document as stored, including changes synced a moment
    /// ago: it runs under the document's lock, like a sync step.
    /// Blocking: call from a blocking thread.
    pub(crate) fn edit_as_server<T>(
        &self,
        doc_id: DocId,
        audit: Vec<AuditRecord>,
        edit: impl FnOnce(&mut AutoCommit) -> Result<T>,
    ) -> Result<T> {
        let slot = self.slot(doc_id);
        let mut guard = slot.lock();
        let loaded = self
            .loaded(&mut guard, doc_id)
            .map_err(|e| Error::Internal(e.message))?;
        let Some(attrs) = loaded.attrs.clone() else {
            // Not stored: forget the empty placeholder.
            *guard = None;
            return Err(Error::Invalid {
                what: "document",
                reason: format!("the server stores no document {doc_id}"),
            });
        };
        let corrupt = |e: automerge::AutomergeError| Error::CorruptDocument {
            doc: doc_id,
            reason: e.to_string(),
        };
        let old_heads = loaded.doc.get_heads();
        let mut working = AutoCommit::load(&loaded.doc.save())
            .map_err(corrupt)?
            .with_actor(self.server_actor.clone());
        let out = edit(&mut working)?;
        working.commit();
        let changes = working.get_changes(&old_heads);
        if changes.is_empty() {
            return Ok(out);
        }
        if let Err(e) = loaded.doc.apply_changes(changes) {
            *guard = None;
            return Err(corrupt(e));
        }
        let attrs = documents::attributes_of(&loaded.doc, &attrs.kind, attrs.branch, attrs.creator);
        match self.store_server_changes(doc_id, loaded, attrs, audit, CreateGuard::Always) {
            Ok(_) => Ok(out),
            Err(e) => {
                // Memory must not hold what the disk does not.
                *guard = None;
                Err(e)
            }
        }
    }

    /// Writes what `loaded` holds beyond its stored heads with `attrs`, runs
    /// `audit` in the same transaction, waits for the commit, and publishes
    /// the row as coming from connection `origin` (none: the server wrote it,
    /// so every connection that may read the document hears of it).
    ///
    /// If another process wrote the document since it was loaded (the store
    /// refuses a write on heads it no longer holds), the document is loaded
    /// again, the new changes applied on top, and the write tried again.
    fn persist(
        &self,
        doc_id: DocId,
        loaded: &mut LoadedDoc,
        attrs: DocAttributes,
        origin: Option<u64>,
        audit: impl Fn(&dyn Sql) -> Result<()> + Send + Sync + 'static,
    ) -> Result<Heads> {
        let audit = Arc::new(audit);
        let mut attrs = attrs;
        for attempt in 1.. {
            let audit = audit.clone();
            match self.persist_once(doc_id, loaded, attrs.clone(), origin, move |conn| {
                audit(conn)
            }) {
                Err(Error::Stale(_)) if attempt < MAX_STALE_RETRIES => {
                    tracing::debug!(doc = %doc_id, attempt, "stored meanwhile by another process; merging");
                    self.refresh(doc_id, loaded)?;
                    attrs = documents::attributes_of(
                        &loaded.doc,
                        &attrs.kind,
                        attrs.branch,
                        attrs.creator,
                    );
                }
                outcome => return outcome,
            }
        }
        unreachable!("the loop returns")
    }

    fn persist_once(
        &self,
        doc_id: DocId,
        loaded: &mut LoadedDoc,
        attrs: DocAttributes,
        origin: Option<u64>,
        audit: impl FnOnce(&dyn Sql) -> Result<()> + Send + 'static,
    ) -> Result<Heads> {
        let is_new = loaded.attrs.is_none();
        let base = loaded.stored_heads.clone();
        let doc = &loaded.doc;
        let bytes = contained(doc_id, "save", || {
            if is_new {
                doc.save()
            } else {
                doc.save_after(&base)
            }
        })?;
        let heads = loaded.doc.get_heads();
        let row_attrs = attrs.clone();
        let row_heads = heads.clone();
        let shared = self.shared.clone();
        let row = self.db.write_with(
            move |conn| {
                let seq = if is_new {
                    documents::insert(conn, doc_id, &row_attrs, &bytes, &row_heads)?
                } else {
                    documents::append(conn, doc_id, &row_attrs, &bytes, &base, &row_heads)?
                };
                audit(conn)?;
                Ok(DocRow {
                    doc_id,
                    attrs: row_attrs,
                    heads: documents::to_heads(&row_heads),
                    seq,
                })
            },
            move |row| shared.publish(std::slice::from_ref(row), origin),
        )?;
        loaded.stored_heads = heads;
        loaded.attrs = Some(attrs);
        Ok(row.heads)
    }

    /// Replaces `loaded` with what the store holds now plus the changes
    /// `loaded` had beyond what it thought was stored.
    fn refresh(&self, doc_id: DocId, loaded: &mut LoadedDoc) -> Result<()> {
        let ours = loaded.doc.get_changes(&loaded.stored_heads);
        let mut fresh = self.load(doc_id).map_err(|e| Error::Internal(e.message))?;
        let doc = &mut fresh.doc;
        contained(doc_id, "merge", || doc.apply_changes(ours))?.map_err(|e| {
            Error::CorruptDocument {
                doc: doc_id,
                reason: e.to_string(),
            }
        })?;
        *loaded = fresh;
        Ok(())
    }

    /// [`Storage::persist`] for changes the server wrote itself, with
    /// `audit` rows for the document.
    fn store_server_changes(
        &self,
        doc_id: DocId,
        loaded: &mut LoadedDoc,
        attrs: DocAttributes,
        audit: Vec<AuditRecord>,
        guard: CreateGuard,
    ) -> Result<Heads> {
        let branch = attrs.branch;
        let kind = attrs.kind.clone();
        self.persist(doc_id, loaded, attrs, None, move |conn| {
            // The guard is checked in the transaction that writes, on the one
            // writer thread, so racing requests cannot both pass it.
            match &guard {
                CreateGuard::Always => {}
                CreateGuard::OnlyOneOfKind => {
                    crate::postgres::lock(conn, &format!("one {kind} in {branch}"))?;
                    if let Some(existing) = documents::first_of_kind(conn, branch, &kind, doc_id)? {
                        return Err(Error::AlreadyExists(existing));
                    }
                }
                CreateGuard::PetitionQuota {
                    device,
                    since,
                    limit,
                } => {
                    crate::postgres::lock(conn, &format!("petitions of {device}"))?;
                    let sent =
                        crate::submissions::petitions_submitted_since(conn, *device, *since)?;
                    if sent >= u64::from(*limit) {
                        return Err(Error::LimitReached(*limit));
                    }
                }
            }
            for record in &audit {
                let mut record = record.clone();
                record.doc = Some(doc_id);
                record.insert(conn)?;
            }
            Ok(())
        })
    }

    /// Runs `f` in a read transaction (blocking).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        self.db.read(f)
    }

    /// The next bundle of whole documents for `who`: the stored bytes of `doc_ids`
    /// from `from` on, as many as fill about [`bundle::TARGET_UNPACKED_LEN`], packed;
    /// and where the next bundle starts. `None` when nothing is left to send.
    ///
    /// Documents the server does not hold or `who` may not read are left out, as is
    /// one too big for a frame even alone: the device syncs those the ordinary way,
    /// which says why. The bytes are read from the database, so only what is stored
    /// durably leaves the server, as with every sync.
    pub(crate) fn next_bundle(
        &self,
        who: &Principal,
        doc_ids: &[DocId],
        from: usize,
    ) -> Result<Option<(Vec<u8>, usize)>> {
        self.read(|tx| {
            let mut docs = Vec::new();
            let mut unpacked = 0;
            let mut next = doc_ids.len();
            for (i, &id) in doc_ids.iter().enumerate().skip(from) {
                if !self.access(who, id).is_some_and(|a| a.read) {
                    continue;
                }
                let Some(bytes) = documents::read_bytes(tx, id)? else {
                    continue;
                };
                if !docs.is_empty() && unpacked + bytes.len() > bundle::TARGET_UNPACKED_LEN {
                    // It starts the next bundle (alone, if it is big).
                    next = i;
                    break;
                }
                unpacked += bytes.len();
                docs.push((id, bytes));
            }
            if docs.is_empty() {
                return Ok(None);
            }
            let mut packed = bundle::pack(docs.iter().map(|(id, b)| (*id, b.as_slice())));
            // Over the target only when alone; the tag and lengths need a few bytes.
            if packed.len() + 16 > branchline_protocol::MAX_FRAME_LEN {
                let (id, bytes) = &docs[0];
                tracing::warn!(doc = %id, len = bytes.len(), "too big to send whole");
                packed = bundle::pack([]);
            }
            Ok(Some((packed, next)))
        })
    }

    /// Subscribes to document changes.
    pub(crate) fn subscribe(&self) -> Notices {
        Notices::new(self.shared.changes.subscribe())
    }

    /// What `who` may do with a stored document, or `None` if the server
    /// has no such document.
    pub(crate) fn access(&self, who: &Principal, doc_id: DocId) -> Option<Access> {
        let attrs = {
            let catalog = self
                .shared
                .catalog
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            catalog.docs.get(&doc_id)?.attrs.clone()
        };
        Some(self.decide(who, &attrs))
    }

    /// The access decision for a document with `attrs`. The device's own
    /// ancestors are looked up only for the few documents that need them
    /// (a library entry shared down): manifests decide every document.
    pub(crate) fn decide(&self, who: &Principal, attrs: &DocAttributes) -> Access {
        let viewer_ancestors = if access::needs_viewer_ancestors(who, attrs) {
            self.shared.ancestors(who.branch)
        } else {
            Vec::new()
        };
        access::decide(
            who,
            attrs,
            &self.shared.ancestors(attrs.branch),
            &viewer_ancestors,
        )
    }

    /// The manifest of every document `who` may read.
    pub(crate) fn readable_manifest(&self, who: &Principal) -> Manifest {
        let catalog = self
            .shared
            .catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        catalog
            .docs
            .iter()
            .filter(|(_, entry)| self.decide(who, &entry.attrs).read)
            .map(|(doc_id, entry)| ManifestEntry {
                doc_id: *doc_id,
                kind: entry.attrs.kind.clone(),
                heads: entry.heads.clone(),
            })
            .collect()
    }

    /// The newest write position the catalog knows.
    pub(crate) fn last_seq(&self) -> i64 {
        self.shared
            .catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .last_position()
    }

    /// Documents written after position `after`, as notices (for a
    /// connection that fell behind the broadcast).
    pub(crate) fn changed_since(&self, after: i64) -> Vec<Arc<ChangeNotice>> {
        let catalog = self
            .shared
            .catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        catalog
            .by_position
            .range(after + 1..)
            .filter_map(|(seq, doc_id)| {
                let entry = catalog.docs.get(doc_id)?;
                Some(Arc::new(ChangeNotice {
                    doc_id: *doc_id,
                    heads: entry.heads.clone(),
                    attrs: entry.attrs.clone(),
                    seq: *seq,
                    origin: None,
                }))
            })
            .collect()
    }

    /// Looks for what other processes wrote: documents (announced as
    /// changes), branches, and revocations (returned). Runs on the writer
    /// thread between batches, so it never races the server's own writes.
    pub(crate) fn poll(&self) -> Result<PollOutcome> {
        let shared = self.shared.clone();
        let marks = self.poll_marks.clone();
        self.db.between(move |conn| {
            let mut marks = marks.lock().unwrap_or_else(PoisonError::into_inner);
            // Everything is read before any mark moves: a read that fails
            // (the database going away mid-poll) leaves the marks where
            // they were, so the next poll reads the same rows again.
            let horizon = marks.horizon;
            // Read in the same snapshot as the rows, so every write it does
            // not show belongs to a transaction at or past the new horizon,
            // which the next poll reads again.
            let next_horizon = match horizon {
                Some(_) => Some(crate::postgres::snapshot_horizon(conn)?),
                None => None,
            };
            let rows = match horizon {
                None => documents::rows_since(conn, marks.docs)?,
                Some(horizon) => documents::rows_since_horizon(conn, marks.docs, horizon)?,
            };
            let parents = branch_parents(conn)?;
            let (revoked, revoked_mark) = match horizon {
                None => auth::revoked_since(conn, marks.revoked)?,
                Some(horizon) => crate::postgres::revoked_since(conn, marks.revoked, horizon)?,
            };
            marks.horizon = next_horizon;
            if let Some(newest) = rows.iter().map(|row| row.seq).max() {
                marks.docs = marks.docs.max(newest);
            }
            marks.revoked = revoked_mark;
            *shared
                .hierarchy
                .write()
                .unwrap_or_else(PoisonError::into_inner) = parents;
            shared.publish(&rows, None);
            Ok(PollOutcome { revoked })
        })
    }

    /// Unloads documents idle longer than the configured time (never one in
    /// use). Returns how many stay loaded.
    pub(crate) fn unload_idle(&self) -> usize {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = self.options.idle_unload;
        cache.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.idle_for() < idle);
        cache.len()
    }

    /// How many documents are loaded (or reserved by a stream).
    pub(crate) fn loaded_count(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The cache slot of a document, created if needed; unloads the least
    /// recently used idle documents when the cache is over its cap.
    fn slot(&self, doc_id: DocId) -> Arc<DocSlot> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = cache.get(&doc_id) {
            slot.touch();
            return slot.clone();
        }
        let slot = Arc::new(DocSlot {
            doc: Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
        });
        cache.insert(doc_id, slot.clone());
        if cache.len() > self.options.max_loaded {
            let mut idle: Vec<(Instant, DocId)> = cache
                .iter()
                .filter(|(_, slot)| Arc::strong_count(slot) == 1)
                .map(|(id, slot)| (slot.last_used(), *id))
                .collect();
            idle.sort_unstable();
            let excess = cache.len() - self.options.max_loaded;
            for (_, id) in idle.into_iter().take(excess) {
                cache.remove(&id);
            }
        }
        slot
    }

    /// The saved sync state of `(device, doc)`, or a fresh one.
    pub(crate) fn sync_state(&self, device: DeviceId, doc_id: DocId) -> sync::State {
        let saved = self.read(|conn| documents::sync_state(conn, device, doc_id));
        match saved {
            Ok(Some(bytes)) => sync::State::decode(&bytes).unwrap_or_else(|e| {
                tracing::warn!(doc = %doc_id, error = %e, "unreadable sync state; starting fresh");
                sync::State::new()
            }),
            Ok(None) => sync::State::new(),
            Err(e) => {
                tracing::warn!(doc = %doc_id, error = %e, "cannot read sync state; starting fresh");
                sync::State::new()
            }
        }
    }

    /// Saves the sync state of `(device, doc)` and waits for the commit.
    pub(crate) fn save_sync_state(
        &self,
        device: DeviceId,
        doc_id: DocId,
        state: &sync::State,
    ) -> Result<()> {
        let bytes = state.encode();
        self.write(move |conn| documents::save_sync_state(conn, device, doc_id, &bytes))
    }

    /// Runs `work` in a write transaction and waits for its commit
    /// (blocking).
    pub(crate) fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Sql) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.db.write(work)
    }

    /// Records a refused change in the audit log (queued; not waited for).
    fn audit_refusal(
        &self,
        who: Option<&Principal>,
        doc: Option<DocId>,
        code: &ErrorCode,
        detail: String,
    ) {
        let mut record = AuditRecord::new(event::REQUEST_REFUSED);
        record.device = who.map(|p| p.device);
        record.member = who.and_then(|p| p.member);
        record.branch = who.map(|p| p.branch);
        record.doc = doc;
        record.code = Some(code.as_str().to_owned());
        record.detail = detail;
        self.db.queue(move |conn| record.insert(conn));
    }

    /// One step of a document sync: applies the client's `payload` (an
    /// encoded automerge sync message, or empty) to the document for
    /// `sync_state`, stores new changes durably, and returns the heads to
    /// acknowledge and the reply. Blocking: call from a blocking thread.
    pub(crate) fn sync_step(
        &self,
        cx: &StepContext,
        sync_state: &mut sync::State,
        payload: &[u8],
    ) -> std::result::Result<StepOutcome, StepError> {
        let denied = || {
            StepError::new(
                ErrorCode::AccessDenied,
                "this device may not read this document",
            )
        };
        if let Some(access) = self.access(&cx.principal, cx.doc_id)
            && !access.read
        {
            return Err(denied());
        }
        let message = if payload.is_empty() {
            None
        } else {
            Some(sync::Message::decode(payload).map_err(|e| {
                StepError::new(ErrorCode::InvalidSyncPayload, format!("sync message: {e}"))
            })?)
        };

        let slot = self.slot(cx.doc_id);
        let mut guard = slot.lock();
        let outcome = self.step_locked(cx, &mut guard, sync_state, message);
        if outcome.is_err() {
            // Memory must not hold what the disk does not: whatever failed
            // (the database gone mid-step, say), the next step starts from
            // what is stored.
            *guard = None;
        }
        outcome
    }

    /// [`Storage::sync_step`] on the document's locked cache slot.
    fn step_locked(
        &self,
        cx: &StepContext,
        guard: &mut Option<LoadedDoc>,
        sync_state: &mut sync::State,
        message: Option<sync::Message>,
    ) -> std::result::Result<StepOutcome, StepError> {
        let denied = || {
            StepError::new(
                ErrorCode::AccessDenied,
                "this device may not read this document",
            )
        };
        let loaded = self.loaded(guard, cx.doc_id)?;
        if let Some(attrs) = &loaded.attrs
            && !self.decide(&cx.principal, attrs).read
        {
            return Err(denied());
        }

        let old_heads = loaded.doc.get_heads();
        if let Some(message) = message {
            let doc = &mut loaded.doc;
            let applied = catch_unwind(AssertUnwindSafe(|| {
                doc.receive_sync_message(sync_state, message)
            }));
            let failure = match applied {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("cannot apply sync message: {e}")),
                Err(_) => Some("cannot apply sync message".to_owned()),
            };
            if let Some(reason) = failure {
                return Err(StepError::new(ErrorCode::InvalidSyncPayload, reason));
            }
        }
        let new_heads = loaded.doc.get_heads();
        let mut ack = None;
        let mut rejected = Vec::new();
        if new_heads != old_heads {
            let judgement = self.judge(cx, loaded, &old_heads)?;
            if !judgement.rejected.is_empty() {
                self.audit_rejections(cx, &judgement);
                // Start again from what the disk holds, plus what passed.
                *guard = Some(self.load(cx.doc_id)?);
                let Some(reloaded) = guard.as_mut() else {
                    return Err(StepError::new(ErrorCode::Internal, "document not loaded"));
                };
                if let Err(e) = reloaded.doc.apply_changes(judgement.accepted) {
                    tracing::error!(doc = %cx.doc_id, error = %e, "cannot reapply accepted changes");
                    return Err(StepError::new(
                        ErrorCode::Internal,
                        "cannot apply the changes",
                    ));
                }
                // The device forgets its state for this document too, so the
                // next sync starts from what each side really holds.
                *sync_state = sync::State::new();
                rejected = judgement.rejected;
            }
            let Some(loaded) = guard.as_mut() else {
                return Err(StepError::new(ErrorCode::Internal, "document not loaded"));
            };
            if loaded.doc.get_heads() != old_heads {
                ack = Some(self.store_new_changes(cx, loaded, &old_heads)?);
            }
            if !rejected.is_empty() {
                return Ok(StepOutcome {
                    ack,
                    reply: Vec::new(),
                    rejected,
                });
            }
        }
        let Some(loaded) = guard.as_mut() else {
            return Err(StepError::new(ErrorCode::Internal, "document not loaded"));
        };
        let doc = &mut loaded.doc;
        let reply = catch_unwind(AssertUnwindSafe(|| doc.generate_sync_message(sync_state)));
        let reply = match reply {
            Ok(Some(message)) => message.encode(),
            Ok(None) => Vec::new(),
            Err(_) => {
                return Err(StepError::new(
                    ErrorCode::Internal,
                    "cannot generate a reply",
                ));
            }
        };
        Ok(StepOutcome {
            ack,
            reply,
            rejected,
        })
    }

    /// Sorts the changes applied since `old_heads` into accepted, refused
    /// and blocked (depending on a refused one), by the sender's write
    /// access and the rules of the document's kind.
    ///
    /// A rule that needs the database (who owns an actor id, which branches
    /// are allied) and cannot read it fails the step instead: refusing the
    /// change would make the device drop an edit that is allowed.
    fn judge(
        &self,
        cx: &StepContext,
        loaded: &LoadedDoc,
        old_heads: &[ChangeHash],
    ) -> std::result::Result<Judgement, StepError> {
        let changes = loaded.doc.get_changes(old_heads);
        let mut judgement = Judgement::default();
        let who = &cx.principal;
        let refuse_all = |code: ErrorCode, why: &str| Judgement {
            accepted: Vec::new(),
            rejected: changes
                .iter()
                .map(|change| ChangeRejection {
                    change: change.hash().0,
                    code: code.clone(),
                    message: why.to_owned(),
                })
                .collect(),
            blocked: 0,
        };
        if let Some(attrs) = &loaded.attrs {
            let access = self.decide(who, attrs);
            if !access.write {
                return Ok(if access.read {
                    refuse_all(
                        ErrorCode::ReadOnly,
                        "this device may only read this document",
                    )
                } else {
                    refuse_all(
                        ErrorCode::AccessDenied,
                        "this device may not change this document",
                    )
                });
            }
        }
        if !self.options.validate_changes {
            judgement.accepted = changes;
            return Ok(judgement);
        }
        let (kind, home) = match (
            &loaded.attrs,
            branchline_core::model::read_meta(&loaded.doc),
        ) {
            (Some(attrs), _) => (attrs.kind.clone(), Some(attrs.branch)),
            (None, Ok(meta)) => (meta.kind, Some(BranchId::from(meta.branch))),
            (None, Err(_)) => (String::new(), None),
        };
        // The first lookup that failed; the answer given meanwhile is moot.
        let unread = std::cell::RefCell::new(None::<Error>);
        let looked_up = |found: Result<bool>| {
            found.unwrap_or_else(|e| {
                unread.borrow_mut().get_or_insert(e);
                false
            })
        };
        let allied = |partner: &str| {
            let (Some(home), Ok(partner)) = (home, partner.parse::<BranchId>()) else {
                return false;
            };
            looked_up(self.read(|conn| db::allied(conn, home, partner)))
        };
        let device = who.device;
        // A message's changes nearly all carry the same actor: look each
        // actor up once, not once per change.
        let owners = std::cell::RefCell::new(HashMap::<Vec<u8>, bool>::new());
        let actor_is_senders = |actor: &[u8]| {
            if let Some(known) = owners.borrow().get(actor) {
                return *known;
            }
            let senders = looked_up(
                self.read(|conn| auth::device_of_actor(conn, actor))
                    .map(|owner| owner.is_some_and(|(owner, _)| owner == device)),
            );
            owners.borrow_mut().insert(actor.to_vec(), senders);
            senders
        };
        let subject = rules::Subject {
            who,
            actor_is_senders: &actor_is_senders,
            stored: loaded.attrs.as_ref(),
            kind: &kind,
            allied: &allied,
        };
        let mut refused: std::collections::HashSet<ChangeHash> = Default::default();
        for change in changes {
            if change.deps().iter().any(|dep| refused.contains(dep)) {
                refused.insert(change.hash());
                judgement.blocked += 1;
                continue;
            }
            match rules::check_change(&loaded.doc, &change, &subject) {
                Ok(()) => judgement.accepted.push(change),
                Err(violation) => {
                    refused.insert(change.hash());
                    judgement.rejected.push(ChangeRejection {
                        change: change.hash().0,
                        code: violation.code,
                        message: violation.message,
                    });
                }
            }
        }
        if let Some(e) = unread.into_inner() {
            tracing::error!(doc = %cx.doc_id, error = %e, "cannot judge changes");
            return Err(StepError::new(
                e.wire_code(),
                "the server cannot check the changes now",
            ));
        }
        Ok(judgement)
    }

    /// Records refused changes in the audit log (queued; not waited for).
    fn audit_rejections(&self, cx: &StepContext, judgement: &Judgement) {
        tracing::info!(
            rejected = judgement.rejected.len(),
            blocked = judgement.blocked,
            "changes refused by the rules"
        );
        for rejection in &judgement.rejected {
            self.audit_refusal(
                Some(&cx.principal),
                Some(cx.doc_id),
                &rejection.code,
                format!(
                    "change {}: {}",
                    ChangeHash(rejection.change),
                    rejection.message
                ),
            );
        }
    }

    /// The document in a locked cache slot, loaded first if it is not in
    /// memory, or loaded again if the store holds changes the cached copy
    /// lacks (another node wrote it: its poll raised the catalog's heads).
    fn loaded<'g>(
        &self,
        slot: &'g mut Option<LoadedDoc>,
        doc_id: DocId,
    ) -> std::result::Result<&'g mut LoadedDoc, StepError> {
        match slot {
            None => *slot = Some(self.load(doc_id)?),
            Some(cached) if self.is_behind(doc_id, cached) => {
                tracing::debug!(doc = %doc_id, "written by another node; reading its changes");
                let mut fresh = self.load(doc_id)?;
                // Merged, not replaced: changes the copy holds back until
                // their dependencies come stay where a sync put them.
                let merged = contained(doc_id, "merge", || cached.doc.merge(&mut fresh.doc));
                if matches!(merged, Ok(Ok(_))) {
                    cached.stored_heads = fresh.stored_heads;
                    cached.attrs = fresh.attrs;
                } else {
                    *cached = fresh;
                }
            }
            Some(_) => {}
        }
        slot.as_mut()
            .ok_or_else(|| StepError::new(ErrorCode::Internal, "document not loaded"))
    }

    /// The catalog names a stored head of `doc_id` that `cached` lacks.
    fn is_behind(&self, doc_id: DocId, cached: &LoadedDoc) -> bool {
        let catalog = self
            .shared
            .catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        catalog.docs.get(&doc_id).is_some_and(|entry| {
            let heads: Vec<ChangeHash> = entry
                .heads
                .as_slice()
                .iter()
                .map(|h| ChangeHash(*h))
                .collect();
            // Missing dependencies of queued changes count too; only the
            // stored heads matter here.
            automerge::ReadDoc::get_missing_deps(&cached.doc, &heads)
                .iter()
                .any(|missing| heads.contains(missing))
        })
    }

    /// Loads a document for the cache: from the database, or empty for an
    /// id the server does not hold (a creation).
    fn load(&self, doc_id: DocId) -> std::result::Result<LoadedDoc, StepError> {
        let loaded = self
            .read(|conn| documents::load(conn, doc_id))
            .map_err(|e| {
                tracing::error!(doc = %doc_id, error = %e, "cannot load document");
                StepError::new(e.wire_code(), "cannot load the document")
            })?;
        Ok(match loaded {
            Some((doc, row)) => LoadedDoc {
                stored_heads: doc.get_heads(),
                doc,
                attrs: Some(row.attrs),
            },
            None => LoadedDoc {
                doc: Automerge::new(),
                stored_heads: Vec::new(),
                attrs: None,
            },
        })
    }

    /// Checks and durably stores the changes just applied to `loaded`;
    /// returns the heads now stored.
    fn store_new_changes(
        &self,
        cx: &StepContext,
        loaded: &mut LoadedDoc,
        old_heads: &[ChangeHash],
    ) -> std::result::Result<Heads, StepError> {
        // Write access was settled when the changes were judged.
        let who = &cx.principal;
        let invalid = |why: String| StepError::new(ErrorCode::InvalidDocument, why);
        let meta = branchline_core::model::read_meta(&loaded.doc)
            .map_err(|e| invalid(format!("document header: {e}")))?;
        let kind = meta.kind.clone();
        let branch = BranchId::from_bytes(*meta.branch.as_bytes());
        if *meta.id.as_bytes() != *cx.doc_id.as_bytes() {
            return Err(invalid(format!("the header names document {}", meta.id)));
        }
        let creator = match &loaded.attrs {
            Some(attrs) => {
                if attrs.kind != kind || attrs.branch != branch {
                    return Err(invalid("the changes alter the document header".into()));
                }
                attrs.creator
            }
            None => {
                if !access::may_create(who, &kind, branch) {
                    return Err(invalid(format!(
                        "a {} device may not create a {kind} document in branch {branch}",
                        who.role
                    )));
                }
                Some(who.device)
            }
        };
        let attrs = documents::attributes_of(&loaded.doc, &kind, branch, creator);
        let changes: Vec<([u8; 32], Vec<u8>)> = loaded
            .doc
            .get_changes_meta(old_heads)
            .iter()
            .map(|change| (change.hash.0, change.actor.to_bytes().to_vec()))
            .collect();
        let doc_id = cx.doc_id;
        let delivered_by = who.clone();
        let branch = attrs.branch;
        let audit = move |conn: &dyn Sql| {
            for (hash, actor) in &changes {
                let (device, member) = match auth::device_of_actor(conn, actor)? {
                    Some(known) => known,
                    None => (delivered_by.device, delivered_by.member),
                };
                let mut record = AuditRecord::new(event::CHANGE_ACCEPTED);
                record.device = Some(device);
                record.member = member;
                record.branch = Some(branch);
                record.doc = Some(doc_id);
                record.change_hash = Some(*hash);
                record.actor = Some(actor.clone());
                if device != delivered_by.device {
                    record.detail = format!("delivered by {}", delivered_by.device);
                }
                record.insert(conn)?;
            }
            Ok(())
        };
        self.persist(doc_id, loaded, attrs, Some(cx.connection), audit)
            .map_err(|e| {
                tracing::error!(doc = %doc_id, reason = %e, "cannot store changes");
                StepError::new(e.wire_code(), "the server could not store the changes")
            })
    }

    /// Finishes queued writes and stops the writer thread (blocking).
    pub(crate) fn shutdown(&self) {
        self.db.stop();
    }
}

impl DocSlot {
    /// Locks the document; a lock poisoned by a panic drops the document,
    /// so it is reloaded from disk.
    fn lock(&self) -> MutexGuard<'_, Option<LoadedDoc>> {
        self.touch();
        match self.doc.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                self.doc.clear_poison();
                let mut guard = poisoned.into_inner();
                *guard = None;
                guard
            }
        }
    }

    fn touch(&self) {
        *self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn last_used(&self) -> Instant {
        *self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn idle_for(&self) -> Duration {
        self.last_used().elapsed()
    }
}

/// Every branch and its parent.
fn branch_parents(conn: &dyn Sql) -> Result<HashMap<BranchId, Option<BranchId>>> {
    conn.query(
        "SELECT branch_id, parent_id FROM branches",
        crate::sql::params![],
    )?
    .iter()
    .map(|row| {
        Ok((
            db::parse_id(&row.text(0)?)?,
            db::parse_opt_id(row.opt_text(1)?)?,
        ))
    })
    .collect()
}

#[cfg(test)]
mod tests;
