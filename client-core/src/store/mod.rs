//! The local store: one SQLite database on the device.
//!
//! Documents are persisted incrementally: a document is a snapshot plus the change
//! chunks appended since; when the chunks outgrow the snapshot they are compacted into
//! a new one. Every operation runs in one SQLite transaction (WAL mode, `synchronous =
//! FULL`) that writes the changes, the query index and the acknowledgement bookkeeping
//! together, so an operation that returned `Ok` is on disk with everything derived
//! from it, and a failed one left nothing behind. What the server can send again
//! (received changes, sync states, acknowledgements) is committed without its own
//! flush (`synchronous = NORMAL`): see `Store::replayable`.
//!
//! Write paths take a `&Transaction`, read paths a `&Connection`, so transaction
//! boundaries are visible in the types.
//!
//! The device's automerge actor id is its [`DeviceId`]: every change names the device
//! that made it, which is how conflicts say "which device".

mod account;
pub mod branch_work;
mod cache;
mod feedback;
mod index;
pub mod query;
mod reject;
mod remote;
mod salvage;
pub(crate) mod schema;

use std::path::Path;

use automerge::{ActorId, AutoCommit, ChangeHash};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use cache::{DocCache, Stored};

use crate::conflict::{self, Conflict};
use crate::error::{Error, Result};
use crate::ids::{BranchId, DeviceId, DocId, MemberId};
use crate::model::{
    self, Activity, BranchProfile, Date, DocKind, Level, MemberFile, MemberUpdate, Meta,
    NewActivity, NewMember, NewPetition, Petition, Record, Roster, SignInMode, Timestamp,
};

pub(crate) use account::hex;
pub use account::{Account, Revocation};
pub use reject::{RejectedChange, Rejection};
pub use remote::Applied;
pub(crate) use remote::{change_hashes, wire_heads};
pub use salvage::Salvage;

/// A source of the current time, replaceable in tests and simulations.
pub type Clock = Box<dyn Fn() -> Timestamp + Send>;

/// Told the id of every document a local operation changed, once the change is on
/// disk; see [`Store::set_change_listener`].
pub type ChangeListener = Box<dyn Fn(DocId) + Send>;

/// Where a change to a document came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// Made on this device: counts as not yet acknowledged by a server.
    Local,
    /// Received from elsewhere.
    Remote,
}

/// A document loaded from the store, with what is needed to save it again.
struct Loaded {
    id: DocId,
    doc: AutoCommit,
    meta: Meta,
    /// The stored form `doc` was read from (and is kept in step with by `save`).
    stored: Stored,
}

/// Summary of a document as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocSummary {
    /// The document.
    pub id: DocId,
    /// Its kind, as recorded (possibly a kind from a newer build).
    pub kind: String,
    /// Its owning branch.
    pub branch: BranchId,
    /// Its current heads.
    pub heads: Vec<ChangeHash>,
    /// Bytes on disk (snapshot plus pending chunks).
    pub stored_bytes: usize,
    /// Local changes a server has not yet acknowledged.
    pub unacked_changes: usize,
}

/// The device's store of branch records.
pub struct Store {
    conn: Connection,
    device: DeviceId,
    clock: Clock,
    /// How far the device's clock is behind the server's (ms), when it is off by
    /// more than [`CLOCK_TOLERANCE_MS`]; 0 otherwise. [`Store::now`] adds it.
    clock_offset_ms: i64,
    listener: Option<ChangeListener>,
    /// The documents loaded or saved last, parsed.
    docs: DocCache,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in the SQLite file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = Connection::open_with_flags(path.as_ref(), flags)?;
        Self::from_connection(conn, schema::STORE_VERSION)
    }

    /// Opens a store that lives only in memory (tests, simulations).
    pub fn open_in_memory() -> Result<Self> {
        Self::from_connection(Connection::open_in_memory()?, schema::STORE_VERSION)
    }

    fn from_connection(mut conn: Connection, version: i64) -> Result<Self> {
        let not_ours = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => {
                Error::NotAStore("the file is not an SQLite database".into())
            }
            _ => Error::Sqlite(e),
        };
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(not_ours)?;
        salvage::quick_check(&conn)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let tx = conn.transaction()?;
        let migrated = schema::migrate(&tx, version)?;
        let device = match info(&tx, "device_id")? {
            Some(id) => id
                .parse()
                .map_err(|_| Error::NotAStore("the device id is unreadable".into()))?,
            None => {
                let id = DeviceId::random();
                set_info(&tx, "device_id", &id.to_string())?;
                id
            }
        };
        if migrated.rebuild_index {
            index::rebuild_all(&tx)?;
        }
        // An unreadable offset is forgotten: the next Welcome measures it again.
        let clock_offset_ms = info(&tx, CLOCK_OFFSET_KEY)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        tx.commit()?;
        Ok(Store {
            conn,
            device,
            clock: Box::new(Timestamp::now),
            clock_offset_ms,
            listener: None,
            docs: DocCache::default(),
        })
    }

    /// This device's id, also its automerge actor id.
    pub fn device_id(&self) -> DeviceId {
        self.device
    }

    fn actor(&self) -> ActorId {
        ActorId::from(self.device.as_bytes().as_slice())
    }

    /// Replaces the clock used to stamp sign-ins, notes and resolutions.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The current time: the store's clock, corrected by the server's when a
    /// server found it off (cheap phones lose the date after a battery change).
    /// Sign-ins, notes and resolutions are stamped with it.
    pub fn now(&self) -> Timestamp {
        Timestamp((self.clock)().0.saturating_add(self.clock_offset_ms))
    }

    /// Today, in the device's time zone, by [`Store::now`]: what overdue flags,
    /// reminders and reports should count from.
    pub fn today(&self) -> crate::model::Date {
        let now = chrono::DateTime::from_timestamp_millis(self.now().0).unwrap_or_default();
        crate::model::Date(now.with_timezone(&chrono::Local).date_naive())
    }

    /// How far (ms) the device's clock was behind the server's when last seen
    /// (negative when ahead), if by more than [`CLOCK_TOLERANCE_MS`]: the app
    /// should tell the person to set the date.
    pub fn clock_offset(&self) -> Option<i64> {
        (self.clock_offset_ms != 0).then_some(self.clock_offset_ms)
    }

    /// Takes the server's clock (`server_ms`, read from its Welcome) as the
    /// reference: an offset beyond [`CLOCK_TOLERANCE_MS`] is kept, and persisted,
    /// until a server finds the clock right again. Returns the offset now in force.
    pub fn observe_server_time(&mut self, server_ms: i64) -> Result<i64> {
        let offset = server_ms.saturating_sub((self.clock)().0);
        let offset = if offset.abs() > CLOCK_TOLERANCE_MS {
            offset
        } else {
            0
        };
        if offset != self.clock_offset_ms {
            let tx = self.conn.transaction()?;
            set_info(&tx, CLOCK_OFFSET_KEY, &offset.to_string())?;
            tx.commit()?;
            self.clock_offset_ms = offset;
            if offset != 0 {
                tracing::warn!(
                    offset_ms = offset,
                    "the device's clock is off; using the server's"
                );
            }
        }
        Ok(offset)
    }

    /// Sets (or, with `None`, removes) the function told about every committed local
    /// change: document creations, workflow operations and settled conflicts, never
    /// changes received from elsewhere. A connected transport uses it to push edits at
    /// once; it runs on the thread that made the change, so it should only hand the
    /// id on (to a channel, say).
    pub fn set_change_listener(&mut self, listener: Option<ChangeListener>) {
        self.listener = listener;
    }

    fn changed_locally(&self, id: DocId) {
        if let Some(listener) = &self.listener {
            listener(id);
        }
    }

    /// The underlying connection, for queries and reports.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    // --- documents -------------------------------------------------------------

    /// Stores a new document holding `record`.
    pub fn create<R: Record>(&mut self, record: &R) -> Result<DocId> {
        let mut doc = model::create_document(record, self.actor())?;
        let tx = self.conn.transaction()?;
        let id = insert_document(&tx, &mut doc, Origin::Local)?;
        tx.commit()?;
        self.changed_locally(id);
        Ok(id)
    }

    /// The typed record in document `id`.
    pub fn get<R: Record>(&self, id: DocId) -> Result<R> {
        let loaded = load(&self.conn, &self.docs, id, None)?;
        model::hydrate(&loaded.doc)
    }

    /// Runs a workflow operation on the record in document `id` and saves the result.
    ///
    /// `op` sees the current record; if it fails nothing is written.
    pub fn update<R: Record, T>(
        &mut self,
        id: DocId,
        op: impl FnOnce(&mut R) -> Result<T>,
    ) -> Result<T> {
        let actor = self.actor();
        let tx = self.conn.transaction()?;
        let mut loaded = load(&tx, &self.docs, id, Some(actor))?;
        let out = model::edit(&mut loaded.doc, op)?;
        let changed = save(&tx, &self.docs, &mut loaded, Origin::Local)?;
        tx.commit()?;
        if changed {
            self.changed_locally(id);
        }
        Ok(out)
    }

    /// The whole document `id`, compacted, as automerge bytes.
    pub fn export(&self, id: DocId) -> Result<Vec<u8>> {
        Ok(load_raw(&self.conn, &self.docs, id)?.0.save())
    }

    /// The document `id` as loaded from disk, for sync and inspection.
    pub fn load_document(&self, id: DocId) -> Result<AutoCommit> {
        Ok(load_raw(&self.conn, &self.docs, id)?.0)
    }

    /// Merges automerge bytes received from elsewhere (a whole document, or changes
    /// of one), creating the document if it is new here. Returns its id.
    ///
    /// The bytes must carry a document header; documents of kinds or schema versions
    /// this build does not know are kept and synced untouched, but not indexed.
    pub fn merge(&mut self, bytes: &[u8]) -> Result<DocId> {
        let actor = self.actor();
        let tx = self.conn.transaction()?;
        let id = merge_bytes(&tx, &self.docs, bytes, &actor)?;
        tx.commit()?;
        Ok(id)
    }

    /// Every document in the store, with its size and unacknowledged changes.
    pub fn documents(&self) -> Result<Vec<DocSummary>> {
        let mut stmt = self.conn.prepare(
            "SELECT d.doc_id, d.kind, d.branch_id, d.heads, length(d.snapshot) + d.chunks_len,
                    (SELECT count(*) FROM unacked_changes u WHERE u.doc_id = d.doc_id)
             FROM documents d ORDER BY d.doc_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (id, kind, branch, heads, bytes, unacked) = row?;
            Ok(DocSummary {
                id: id.parse()?,
                kind,
                branch: branch.parse()?,
                heads: decode_heads(&heads)?,
                stored_bytes: bytes as usize,
                unacked_changes: unacked as usize,
            })
        })
        .collect()
    }

    /// Local changes of document `id` no server has acknowledged yet.
    pub fn unacked_changes(&self, id: DocId) -> Result<usize> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM unacked_changes WHERE doc_id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// Local changes, over all documents, no server has acknowledged yet: what
    /// the app shows as "pending".
    pub fn pending_changes(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM unacked_changes", [], |r| r.get(0))?;
        Ok(n as usize)
    }

    /// When this device was last in sync with its server, if ever.
    pub fn last_synced(&self) -> Result<Option<Timestamp>> {
        info(&self.conn, LAST_SYNCED_KEY)?
            .map(|ms| {
                ms.parse()
                    .map(Timestamp)
                    .map_err(|_| Error::Corrupt(format!("{LAST_SYNCED_KEY} = {ms:?}")))
            })
            .transpose()
    }

    /// Records that this device was in sync with its server at `at`.
    pub fn record_synced(&mut self, at: Timestamp) -> Result<()> {
        let tx = self.conn.transaction()?;
        set_info(&tx, LAST_SYNCED_KEY, &at.0.to_string())?;
        tx.commit()?;
        Ok(())
    }

    /// Runs `f` with commits that are not flushed to disk one by one
    /// (`synchronous = NORMAL`), for writes the server can repeat: changes it sent,
    /// sync states, acknowledgements. WAL keeps them atomic and in order, so a power
    /// cut loses at most the last few of them, which the next sync fetches again (the
    /// sync state rolls back with the changes it describes), and an app crash loses
    /// nothing. The next local edit's commit (`FULL`) flushes them with it. Local edits
    /// are never written this way: only this device has them.
    fn replayable<T>(
        &mut self,
        f: impl FnOnce(&mut Connection, &DocCache) -> Result<T>,
    ) -> Result<T> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = f(&mut self.conn, &self.docs);
        let restored = self.conn.pragma_update(None, "synchronous", "FULL");
        let value = result?;
        restored?;
        Ok(value)
    }

    /// Records that a server durably stored document `id` up to `heads`: every local
    /// change those heads include is acknowledged.
    pub fn mark_acknowledged(&mut self, id: DocId, heads: &[ChangeHash]) -> Result<()> {
        self.replayable(|conn, docs| {
            let tx = conn.transaction()?;
            let mut loaded = load(&tx, docs, id, None)?;
            let known: Vec<ChangeHash> = heads
                .iter()
                .copied()
                .filter(|h| loaded.doc.get_change_by_hash(h).is_some())
                .collect();
            if known.is_empty() {
                return Ok(());
            }
            let not_covered: std::collections::HashSet<ChangeHash> = loaded
                .doc
                .get_changes(&known)
                .iter()
                .map(|c| c.hash())
                .collect();
            let pending = unacked_hashes(&tx, id)?;
            let mut delete =
                tx.prepare("DELETE FROM unacked_changes WHERE doc_id = ?1 AND hash = ?2")?;
            for hash in pending.iter().filter(|h| !not_covered.contains(h)) {
                delete.execute(params![id.to_string(), hash.as_ref()])?;
            }
            drop(delete);
            tx.commit()?;
            Ok(())
        })
    }

    // --- conflicts -------------------------------------------------------------

    /// Fields edited concurrently on two devices, in every document, for a person
    /// to settle.
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT doc_id FROM idx_conflicts ORDER BY doc_id")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut all = Vec::new();
        for id in ids {
            let id = id.parse()?;
            all.extend(conflict::find(id, &load_raw(&self.conn, &self.docs, id)?.0));
        }
        Ok(all)
    }

    /// Settles the conflict at `path` of document `id` by keeping value `keep` (an
    /// index into [`Conflict::values`]).
    pub fn settle_conflict(&mut self, id: DocId, path: &str, keep: usize) -> Result<()> {
        let actor = self.actor();
        let tx = self.conn.transaction()?;
        let mut loaded = load(&tx, &self.docs, id, Some(actor))?;
        if loaded.meta.kind == DocKind::Activity.as_str() {
            conflict::settle_activity(&mut loaded.doc, path, keep)?;
        } else {
            conflict::settle(&mut loaded.doc, path, keep)?;
        }
        let changed = save(&tx, &self.docs, &mut loaded, Origin::Local)?;
        tx.commit()?;
        if changed {
            self.changed_locally(id);
        }
        Ok(())
    }

    // --- workflows: branch and roster -------------------------------------------

    /// Sets up a branch: its profile and its (empty) roster. Returns its id.
    pub fn create_branch(
        &mut self,
        name: &str,
        level: Level,
        parent: Option<BranchId>,
    ) -> Result<BranchId> {
        let branch = BranchId::random();
        let profile = BranchProfile::new(branch, name, level, parent)?;
        let roster = Roster::new(branch);
        let actor = self.actor();
        let tx = self.conn.transaction()?;
        let profile = insert_document(
            &tx,
            &mut model::create_document(&profile, actor.clone())?,
            Origin::Local,
        )?;
        let roster = insert_document(
            &tx,
            &mut model::create_document(&roster, actor)?,
            Origin::Local,
        )?;
        tx.commit()?;
        self.changed_locally(profile);
        self.changed_locally(roster);
        Ok(branch)
    }

    /// The document of `kind` a branch has exactly one of (profile, roster).
    pub fn branch_document(&self, branch: BranchId, kind: DocKind) -> Result<DocId> {
        let id: Option<String> = self
            .conn
            .query_row(
                "SELECT doc_id FROM documents WHERE kind = ?1 AND branch_id = ?2
                 ORDER BY doc_id LIMIT 1",
                params![kind.as_str(), branch.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        id.ok_or(Error::MissingBranchDocument(kind.as_str()))?
            .parse()
    }

    /// The branch's profile.
    pub fn profile(&self, branch: BranchId) -> Result<BranchProfile> {
        self.get(self.branch_document(branch, DocKind::BranchProfile)?)
    }

    /// Changes the branch's profile (rules, term, groups…).
    pub fn update_profile<T>(
        &mut self,
        branch: BranchId,
        op: impl FnOnce(&mut BranchProfile) -> Result<T>,
    ) -> Result<T> {
        let id = self.branch_document(branch, DocKind::BranchProfile)?;
        self.update(id, op)
    }

    /// Adds a member to the branch's roster.
    pub fn add_member(&mut self, branch: BranchId, new: NewMember) -> Result<MemberId> {
        let id = self.branch_document(branch, DocKind::Roster)?;
        self.update(id, |roster: &mut Roster| roster.add_member(new))
    }

    /// Changes a member's roster entry.
    pub fn update_member(&mut self, member: MemberId, update: MemberUpdate) -> Result<()> {
        let roster = self.roster_of(member)?;
        self.update(roster, |r: &mut Roster| r.update_member(member, update))
    }

    /// Records that a member moved to another branch.
    pub fn transfer_out(&mut self, member: MemberId, on: Date) -> Result<()> {
        let roster = self.roster_of(member)?;
        self.update(roster, |r: &mut Roster| r.transfer_out(member, on))
    }

    /// Records that a member passed away.
    pub fn mark_deceased(&mut self, member: MemberId, on: Date) -> Result<()> {
        let roster = self.roster_of(member)?;
        self.update(roster, |r: &mut Roster| r.mark_deceased(member, on))
    }

    fn roster_of(&self, member: MemberId) -> Result<DocId> {
        let doc: Option<String> = self
            .conn
            .query_row(
                "SELECT doc_id FROM idx_members WHERE member_id = ?1",
                [member.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        doc.ok_or(Error::UnknownMember(member))?.parse()
    }

    /// Fails unless `member` is an active member of one of `branches`.
    fn check_active_member(&self, member: MemberId, branches: &[BranchId]) -> Result<()> {
        let row = query::member_status(&self.conn, member)?;
        match row {
            Some((branch, status)) if branches.contains(&branch) => {
                if status == model::MemberStatus::Active {
                    Ok(())
                } else {
                    Err(Error::MemberNotActive(member))
                }
            }
            _ => Err(Error::UnknownMember(member)),
        }
    }

    /// The member's confidential file, created empty on first use.
    pub fn member_file(&mut self, member: MemberId) -> Result<DocId> {
        let existing: Option<String> = self
            .conn
            .query_row(
                "SELECT doc_id FROM idx_member_files WHERE member_id = ?1 ORDER BY doc_id LIMIT 1",
                [member.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            return id.parse();
        }
        let (branch, _) =
            query::member_status(&self.conn, member)?.ok_or(Error::UnknownMember(member))?;
        self.create(&MemberFile::new(branch, member))
    }

    // --- workflows: activities ----------------------------------------------------

    /// Plans an activity; its kind must be configured in the branch profile.
    pub fn create_activity(&mut self, branch: BranchId, new: NewActivity) -> Result<DocId> {
        let profile = self.profile(branch)?;
        profile.activity_kind(&new.kind)?;
        if let Some(organizer) = new.organizer {
            self.check_active_member(organizer, &[branch])?;
        }
        let activity = Activity::new(branch, new)?;
        self.create(&activity)
    }

    fn activity_branches(&self, activity: DocId) -> Result<Vec<BranchId>> {
        let branches = query::activity_branches(&self.conn, activity)?;
        if branches.is_empty() {
            // Not indexed: either missing or not an activity; loading says which.
            let a: Activity = self.get(activity)?;
            return Ok(vec![a.meta.branch]);
        }
        Ok(branches)
    }

    /// Signs `member` in to an activity of their branch (or of a partner branch it is
    /// shared with).
    pub fn sign_in(&mut self, activity: DocId, member: MemberId, mode: SignInMode) -> Result<()> {
        let branches = self.activity_branches(activity)?;
        self.check_active_member(member, &branches)?;
        let at = self.now();
        self.update(activity, |a: &mut Activity| a.sign_in(member, at, mode))
    }

    /// Records `member`'s request for leave from an activity.
    pub fn request_leave(&mut self, activity: DocId, member: MemberId, reason: &str) -> Result<()> {
        let branches = self.activity_branches(activity)?;
        self.check_active_member(member, &branches)?;
        let at = self.now();
        self.update(activity, |a: &mut Activity| {
            a.request_leave(member, reason, at)
        })
    }

    /// Replaces an activity's minutes (only changed characters are written).
    pub fn write_minutes(&mut self, activity: DocId, minutes: &str) -> Result<()> {
        self.update(activity, |a: &mut Activity| a.write_minutes(minutes))
    }

    /// Awards bonus points to a member for an activity.
    pub fn award_points(&mut self, activity: DocId, member: MemberId, points: i64) -> Result<()> {
        let branches = self.activity_branches(activity)?;
        self.check_active_member(member, &branches)?;
        self.update(activity, |a: &mut Activity| a.award_points(member, points))
    }

    /// Shares a joint activity with a partner branch.
    pub fn share_activity(&mut self, activity: DocId, partner: BranchId) -> Result<()> {
        self.update(activity, |a: &mut Activity| a.share_with(partner))
    }

    /// Closes an activity: attendance and minutes become final.
    pub fn close_activity(&mut self, activity: DocId) -> Result<()> {
        self.update(activity, Activity::close)
    }

    // --- workflows: petitions -----------------------------------------------------

    /// Records a new petition to `branch`.
    pub fn submit_petition(&mut self, branch: BranchId, new: NewPetition) -> Result<DocId> {
        if let Some(member) = new.submitter.member {
            self.check_active_member(member, &[branch])?;
        }
        let petition = Petition::submit(branch, new, self.now())?;
        self.create(&petition)
    }

    fn petition_branch(&self, petition: DocId) -> Result<BranchId> {
        match query::petition_branch(&self.conn, petition)? {
            Some(branch) => Ok(branch),
            None => Ok(self.get::<Petition>(petition)?.meta.branch),
        }
    }

    /// Gives a petition an owner and a deadline.
    pub fn assign_petition(
        &mut self,
        petition: DocId,
        owner: MemberId,
        deadline: Date,
    ) -> Result<()> {
        let branch = self.petition_branch(petition)?;
        self.check_active_member(owner, &[branch])?;
        self.update(petition, |p: &mut Petition| p.assign(owner, deadline))
    }

    /// Adds a progress note to a petition.
    pub fn add_progress(
        &mut self,
        petition: DocId,
        author: Option<MemberId>,
        text: &str,
    ) -> Result<()> {
        if let Some(author) = author {
            self.check_active_member(author, &[self.petition_branch(petition)?])?;
        }
        let at = self.now();
        self.update(petition, |p: &mut Petition| {
            p.add_progress(author, text, at)
        })
    }

    /// Resolves a petition.
    pub fn resolve_petition(
        &mut self,
        petition: DocId,
        by: Option<MemberId>,
        summary: &str,
    ) -> Result<()> {
        if let Some(by) = by {
            self.check_active_member(by, &[self.petition_branch(petition)?])?;
        }
        let at = self.now();
        self.update(petition, |p: &mut Petition| p.resolve(by, summary, at))
    }

    /// Records the submitter's satisfaction rating (1 to 5).
    pub fn rate_petition(
        &mut self,
        petition: DocId,
        score: u8,
        comment: Option<&str>,
    ) -> Result<()> {
        let at = self.now();
        self.update(petition, |p: &mut Petition| p.rate(score, comment, at))
    }

    /// Reopens a resolved petition.
    pub fn reopen_petition(
        &mut self,
        petition: DocId,
        author: Option<MemberId>,
        reason: &str,
    ) -> Result<()> {
        let at = self.now();
        self.update(petition, |p: &mut Petition| p.reopen(author, reason, at))
    }

    // --- bulk ----------------------------------------------------------------------

    /// Stores many documents (automerge bytes) in one transaction: a first sync or a
    /// generated workload. Existing documents are merged.
    pub fn import_all<'a>(
        &mut self,
        documents: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<usize> {
        let actor = self.actor();
        let tx = self.conn.transaction()?;
        let mut n = 0;
        for bytes in documents {
            merge_bytes(&tx, &self.docs, bytes, &actor)?;
            n += 1;
        }
        tx.commit()?;
        Ok(n)
    }
}

// --- persistence ---------------------------------------------------------------------

/// How far a device's clock may be from the server's before the store corrects
/// it: a minute, well above network delay and ordinary drift, well below a wrong
/// day.
pub const CLOCK_TOLERANCE_MS: i64 = 60_000;

/// The `store_info` key of the clock offset.
const CLOCK_OFFSET_KEY: &str = "clock_offset_ms";

/// The `store_info` key of the last time the device was in sync.
const LAST_SYNCED_KEY: &str = "last_synced_ms";

fn info(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM store_info WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?)
}

fn set_info(tx: &Transaction, key: &str, value: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO store_info (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

fn exists(conn: &Connection, id: DocId) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM documents WHERE doc_id = ?1",
            [id.to_string()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub(crate) fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

pub(crate) fn decode_heads(bytes: &[u8]) -> Result<Vec<ChangeHash>> {
    bytes
        .chunks(32)
        .map(|c| ChangeHash::try_from(c).map_err(|_| Error::Corrupt("stored heads".into())))
        .collect()
}

fn unacked_hashes(conn: &Connection, id: DocId) -> Result<Vec<ChangeHash>> {
    let mut stmt = conn.prepare("SELECT hash FROM unacked_changes WHERE doc_id = ?1")?;
    let rows = stmt.query_map([id.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
    rows.map(|h| {
        ChangeHash::try_from(h?.as_slice()).map_err(|_| Error::Corrupt("stored change hash".into()))
    })
    .collect()
}

/// Loads document `id` as snapshot plus chunks, in one `AutoCommit::load`, without
/// reading its header: the header was checked when the document entered the store.
/// A copy from `cache` when it holds the document as its row describes it.
fn load_raw(conn: &Connection, cache: &DocCache, id: DocId) -> Result<(AutoCommit, Stored)> {
    let key = id.to_string();
    let row = conn
        .prepare_cached(
            "SELECT length(snapshot), chunks_len, next_chunk, heads FROM documents
             WHERE doc_id = ?1",
        )?
        .query_row([&key], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .optional()?;
    let (snapshot_len, chunks_len, next_chunk, heads) = row.ok_or(Error::DocNotFound(id))?;
    let stored = Stored {
        heads: decode_heads(&heads)?,
        snapshot_len: snapshot_len as usize,
        chunks_len: chunks_len as usize,
        next_chunk,
    };
    if let Some(doc) = cache.get(id, &stored) {
        return Ok((doc, stored));
    }
    let mut bytes: Vec<u8> = conn
        .prepare_cached("SELECT snapshot FROM documents WHERE doc_id = ?1")?
        .query_row([&key], |r| r.get(0))?;
    if chunks_len > 0 {
        bytes.reserve(chunks_len as usize);
        let mut stmt =
            conn.prepare_cached("SELECT data FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
        let mut rows = stmt.query([&key])?;
        while let Some(row) = rows.next()? {
            bytes.extend_from_slice(row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?);
        }
    }
    let doc = AutoCommit::load(&bytes).map_err(|e| Error::Corrupt(format!("{id}: {e}")))?;
    cache.put(id, stored.clone(), &doc);
    Ok((doc, stored))
}

/// Loads document `id` for an edit or a merge, with its header checked.
fn load(conn: &Connection, cache: &DocCache, id: DocId, actor: Option<ActorId>) -> Result<Loaded> {
    let (mut doc, stored) = load_raw(conn, cache, id)?;
    if let Some(actor) = actor {
        doc.set_actor(actor);
    }
    let meta = model::read_meta(&doc)?;
    if meta.id != id {
        return Err(Error::Corrupt(format!(
            "document {id} holds document {}",
            meta.id
        )));
    }
    Ok(Loaded {
        id,
        doc,
        meta,
        stored,
    })
}

/// Merges automerge bytes from elsewhere into the document they name, or stores
/// them as a new document.
fn merge_bytes(tx: &Transaction, cache: &DocCache, bytes: &[u8], actor: &ActorId) -> Result<DocId> {
    let mut incoming = AutoCommit::load(bytes).map_err(|e| Error::Corrupt(e.to_string()))?;
    let meta = model::read_meta(&incoming)?;
    if !exists(tx, meta.id)? {
        return insert_document(tx, &mut incoming, Origin::Remote);
    }
    let mut loaded = load(tx, cache, meta.id, Some(actor.clone()))?;
    if loaded.meta.kind != meta.kind || loaded.meta.branch != meta.branch {
        return Err(Error::Corrupt(format!(
            "document {} changed its header in a merge",
            meta.id
        )));
    }
    loaded.doc.merge(&mut incoming)?;
    save(tx, cache, &mut loaded, Origin::Remote)?;
    Ok(meta.id)
}

/// Stores a document not yet in the store, as a snapshot.
fn insert_document(tx: &Transaction, doc: &mut AutoCommit, origin: Origin) -> Result<DocId> {
    let snapshot = doc.save();
    insert_saved(tx, doc, &snapshot, origin)
}

/// Stores a document not yet in the store with `saved`, bytes `doc` was loaded from
/// (a server's stored form is kept as it came: saving it again would only spend
/// time; the next compaction rewrites it).
fn insert_saved(
    tx: &Transaction,
    doc: &mut AutoCommit,
    saved: &[u8],
    origin: Origin,
) -> Result<DocId> {
    let meta = model::read_meta(doc)?;
    let heads = doc.get_heads();
    tx.execute(
        "INSERT INTO documents (doc_id, kind, branch_id, schema, snapshot, heads, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, strftime('%s', 'now'))",
        params![
            meta.id.to_string(),
            meta.kind,
            meta.branch.to_string(),
            meta.schema as i64,
            saved,
            encode_heads(&heads),
        ],
    )?;
    if origin == Origin::Local {
        let changes: Vec<ChangeHash> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
        record_unacked(tx, meta.id, &changes)?;
    }
    index::reindex(tx, &meta, doc)?;
    Ok(meta.id)
}

fn record_unacked(tx: &Transaction, id: DocId, hashes: &[ChangeHash]) -> Result<()> {
    let mut stmt =
        tx.prepare_cached("INSERT OR IGNORE INTO unacked_changes (doc_id, hash) VALUES (?1, ?2)")?;
    for hash in hashes {
        stmt.execute(params![id.to_string(), hash.as_ref()])?;
    }
    Ok(())
}

/// Replaces the stored snapshot of document `id` with the whole of `doc` and drops
/// its chunks; returns the snapshot's size.
fn write_snapshot(tx: &Transaction, id: DocId, doc: &mut AutoCommit) -> Result<usize> {
    let key = id.to_string();
    let snapshot = doc.save();
    tx.execute("DELETE FROM doc_chunks WHERE doc_id = ?1", [&key])?;
    tx.execute(
        "UPDATE documents SET snapshot = ?2, chunks_len = 0, heads = ?3,
         updated_at = strftime('%s', 'now') WHERE doc_id = ?1",
        params![key, snapshot, encode_heads(&doc.get_heads())],
    )?;
    Ok(snapshot.len())
}

/// Appends what changed since `loaded` was read, compacting when the appended chunks
/// outgrow the snapshot, then refreshes the index and keeps the document parsed in
/// `cache`. Returns whether anything changed.
fn save(tx: &Transaction, cache: &DocCache, loaded: &mut Loaded, origin: Origin) -> Result<bool> {
    if origin == Origin::Local {
        // Each local change names the member who made it, so every device can
        // say who wrote a value (a conflict's writers, by name).
        if let Some(member) = account::member_of_device(tx)? {
            let message = crate::conflict::author_message(member);
            loaded.doc.commit_with(
                automerge::transaction::CommitOptions::default().with_message(message),
            );
        }
    }
    let stored = &mut loaded.stored;
    let chunk = loaded.doc.save_after(&stored.heads);
    let heads = loaded.doc.get_heads();
    if chunk.is_empty() || heads == stored.heads {
        return Ok(false);
    }
    if origin == Origin::Local {
        let ours = loaded.doc.get_actor().clone();
        let new: Vec<ChangeHash> = loaded
            .doc
            .get_changes(&stored.heads)
            .iter()
            .filter(|c| *c.actor_id() == ours)
            .map(|c| c.hash())
            .collect();
        record_unacked(tx, loaded.id, &new)?;
    }
    let id = loaded.id.to_string();
    if stored.chunks_len + chunk.len() > stored.snapshot_len {
        stored.snapshot_len = write_snapshot(tx, loaded.id, &mut loaded.doc)?;
        stored.chunks_len = 0;
    } else {
        tx.execute(
            "INSERT INTO doc_chunks (doc_id, seq, data) VALUES (?1, ?2, ?3)",
            params![id, stored.next_chunk, chunk],
        )?;
        stored.chunks_len += chunk.len();
        stored.next_chunk += 1;
        tx.execute(
            "UPDATE documents SET chunks_len = ?2, next_chunk = ?3, heads = ?4,
             updated_at = strftime('%s', 'now') WHERE doc_id = ?1",
            params![
                id,
                stored.chunks_len as i64,
                stored.next_chunk,
                encode_heads(&heads)
            ],
        )?;
    }
    stored.heads = heads;
    index::reindex(tx, &loaded.meta, &loaded.doc)?;
    cache.put(loaded.id, loaded.stored.clone(), &loaded.doc);
    Ok(true)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod branch_work_tests;
