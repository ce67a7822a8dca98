//! Dropping local changes a server rejected, while keeping the honest edits made
//! after them.
//!
//! The server checks every change a device sends against the device's role, and
//! tells the device which changes of a document it refused, each with a stable code
//! (`rule.not_own_entry`…). A rejected change is never stored or forwarded by the
//! server, so only this device has it, and only this device has the changes made
//! after it: an automerge change names its predecessors by hash, so every later local
//! change of the document depends on the rejected one, and the server cannot accept
//! those either ("blocked", not refused on their own merits).
//!
//! [`Store::drop_rejected`] therefore rebuilds the document without the rejected
//! changes and everything descending from them, then **replays** each blocked
//! descendant as a new local change. The descendants cannot simply be kept: their
//! hashes commit to the rejected change as a dependency, so keeping them keeps the
//! rejected change, and re-sending them would be refused again forever. Replaying
//! re-expresses their effect (the patches each one made to the document as it stood
//! before it) on the rebuilt document, under this device's actor, so the next sync
//! sends fresh changes the server can judge on their own merits.
//!
//! Replay is faithful where the descendant's edit does not touch what the rejected
//! change made, and degrades predictably where it does:
//!
//! - An edit inside an object the rejected change created is skipped: that object
//!   was refused, so is everything put into it.
//! - Objects created by the replayed edit itself (a new sign-in entry, say) are
//!   created afresh and later edits are pointed at the new object.
//! - Sequence and text positions are taken as they were and clamped to the rebuilt
//!   length: if the rejected change inserted text before the position, the replayed
//!   text lands that much earlier.
//! - A counter increment whose counter the rejected change created starts a new
//!   counter with the increment, so awarded points are not lost.
//! - A value the descendant wrote at a key where, originally, a concurrent value
//!   stood beside it becomes a plain overwrite (the concurrency is gone with the
//!   original change).
//!
//! Each blocked descendant becomes one new change (with its original message and
//! time), in causal order: the server judges each honest edit separately, so one that
//! is refused in turn does not drag the others with it. A descendant whose whole
//! effect was inside rejected objects produces no change at all.
//!
//! If nothing is left (the rejected change created the document), the document and
//! everything derived from it is removed. Every rejection is recorded in the
//! `rejections` table for the app to show ("your edit to the roster was refused:
//! rule.not_own_entry").

use std::collections::{HashMap, HashSet};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, AutomergeError, Change, ChangeHash, ObjId, ObjType, Patch, PatchAction,
    Prop, ReadDoc, ScalarValue, Value,
};
use rusqlite::{Connection, Transaction, params};

use super::{Store, index, load, record_unacked, write_snapshot};
use crate::error::{Error, Result};
use crate::ids::DocId;
use crate::model::{self, Timestamp};

/// A change of one document the server refused, as the server reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedChange {
    /// The refused change.
    pub hash: ChangeHash,
    /// The server's stable reason code, e.g. `rule.not_own_entry`.
    pub code: String,
    /// The server's explanation, in English, for logs and support.
    pub message: String,
}

/// A refused change as recorded on the device: what the app shows the person whose
/// edit it was.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// The record's id, increasing: see [`Store::rejections`].
    pub id: i64,
    /// The document the change was made to.
    pub doc_id: DocId,
    /// The document's kind (`roster`, `activity`…), kept because the document may be
    /// gone.
    pub kind: String,
    /// The refused change.
    #[serde(serialize_with = "hash_as_hex")]
    pub change: ChangeHash,
    /// The server's stable reason code.
    pub code: String,
    /// The server's explanation.
    pub message: String,
    /// When the device dropped the change, by the store's clock.
    pub at: Timestamp,
    /// Changes dropped because of this one: itself and every local change made after
    /// it in the same document (a change after two refused ones counts for both).
    pub dropped_changes: usize,
    /// How many of the changes made after it were replayed as new changes.
    pub replayed_changes: usize,
    /// The refused change created the document, which is therefore gone.
    pub document_removed: bool,
}

fn hash_as_hex<S: serde::Serializer>(hash: &ChangeHash, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(hash)
}

/// What rebuilding a document without its refused changes produced.
struct Rebuilt {
    /// The rebuilt document, or `None` if nothing of it is left.
    doc: Option<AutoCommit>,
    /// Every dropped change: the refused ones and their descendants.
    dropped: HashSet<ChangeHash>,
    /// The new local changes that replay blocked descendants.
    replayed: Vec<ChangeHash>,
    /// Per refused change held by the document (in the order given, without
    /// repeats): the input, how many changes it dropped and how many it replayed.
    per_rejection: Vec<(RejectedChange, usize, usize)>,
}

impl Store {
    /// Drops the changes of document `id` the server refused, with every local change
    /// made after them, and replays those later changes as new local changes; records
    /// each refusal and returns the records.
    ///
    /// The later changes cannot be kept as they are: each names its predecessors by
    /// hash, so it commits to the refused change and the server would refuse it too.
    /// Replaying re-applies what each one did to the document as it stood before it,
    /// one new change per original, in causal order; whatever it did inside objects
    /// the refused change created is skipped, because that part was refused.
    ///
    /// Everything happens in one transaction: the document is saved as a fresh
    /// snapshot (or removed, if a refused change created it), its unacknowledged
    /// changes, index rows and conflicts are rewritten, and its sync states are
    /// forgotten, so the next sync starts from what the device now has.
    ///
    /// Hashes the document does not hold are ignored (dropped already, or never
    /// here), so this is idempotent: a repeated call, or a call for a document no
    /// longer stored, writes nothing and returns an empty list. The change listener
    /// hears about the document once the transaction is committed.
    pub fn drop_rejected(
        &mut self,
        id: DocId,
        rejected: &[RejectedChange],
    ) -> Result<Vec<Rejection>> {
        let actor = self.actor();
        let at = self.now();
        let tx = self.conn.transaction()?;
        let mut loaded = match load(&tx, &self.docs, id, Some(actor.clone())) {
            Ok(loaded) => loaded,
            Err(Error::DocNotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let Some(rebuilt) = rebuild(id, &mut loaded.doc, rejected, actor)? else {
            return Ok(Vec::new());
        };
        let removed = rebuilt.doc.is_none();
        match rebuilt.doc {
            None => remove_document(&tx, id)?,
            Some(mut doc) => {
                write_snapshot(&tx, id, &mut doc)?;
                let key = id.to_string();
                let mut forget =
                    tx.prepare("DELETE FROM unacked_changes WHERE doc_id = ?1 AND hash = ?2")?;
                for hash in &rebuilt.dropped {
                    forget.execute(params![key, hash.as_ref()])?;
                }
                drop(forget);
                record_unacked(&tx, id, &rebuilt.replayed)?;
                index::reindex(&tx, &loaded.meta, &doc)?;
                // The saved states remember hashes the device no longer has.
                tx.execute("DELETE FROM sync_states WHERE doc_id = ?1", [&key])?;
            }
        }
        let mut records = Vec::with_capacity(rebuilt.per_rejection.len());
        for (change, dropped, replayed) in rebuilt.per_rejection {
            let mut record = Rejection {
                id: 0,
                doc_id: id,
                kind: loaded.meta.kind.clone(),
                change: change.hash,
                code: change.code,
                message: change.message,
                at,
                dropped_changes: dropped,
                replayed_changes: replayed,
                document_removed: removed,
            };
            record.id = insert_rejection(&tx, &record)?;
            records.push(record);
        }
        tx.commit()?;
        tracing::info!(
            doc = %id,
            refused = records.len(),
            dropped = rebuilt.dropped.len(),
            replayed = rebuilt.replayed.len(),
            removed,
            "dropped changes the server refused"
        );
        self.changed_locally(id);
        Ok(records)
    }

    /// The recorded refusals, oldest first; with `since`, only those recorded after
    /// the one with that id.
    pub fn rejections(&self, since: Option<i64>) -> Result<Vec<Rejection>> {
        read_rejections(&self.conn, since.unwrap_or(i64::MIN))
    }
}

/// Rebuilds `old` without the refused changes it holds and their descendants, and
/// replays the blocked descendants. `None` if it holds none of them.
fn rebuild(
    id: DocId,
    old: &mut AutoCommit,
    rejected: &[RejectedChange],
    actor: ActorId,
) -> Result<Option<Rebuilt>> {
    // Causal order: every change comes after its dependencies.
    let changes = old.get_changes(&[]);
    let held: HashSet<ChangeHash> = changes.iter().map(Change::hash).collect();
    let mut refused: Vec<&RejectedChange> = Vec::new();
    for r in rejected {
        if held.contains(&r.hash) && !refused.iter().any(|seen| seen.hash == r.hash) {
            refused.push(r);
        }
    }
    if refused.is_empty() {
        return Ok(None);
    }
    let refused_hashes: HashSet<ChangeHash> = refused.iter().map(|r| r.hash).collect();
    let dropped = descendants(&changes, &refused_hashes);
    let kept: Vec<Change> = changes
        .iter()
        .filter(|c| !dropped.contains(&c.hash()))
        .cloned()
        .collect();

    // A replayed change can come out identical to a dropped one, hash and all: a
    // second award of the points a refused award created is replayed as that very
    // award, at the same place in the history. Its time is then moved on by a
    // second and the replay redone, so no dropped hash comes back.
    let mut nudged: HashMap<ChangeHash, i64> = HashMap::new();
    let Replayed {
        doc,
        new: mut replayed,
        from: replayed_from,
    } = loop {
        match replay_all(
            old,
            &changes,
            &kept,
            &dropped,
            &refused_hashes,
            &actor,
            &nudged,
        )? {
            Attempt::Done(replayed) => break *replayed,
            Attempt::Collided(original) => *nudged.entry(original).or_default() += 1,
        }
    };
    // The header is what makes it a document of the store.
    let doc = doc.filter(|doc| model::read_meta(doc).is_ok_and(|meta| meta.id == id));

    let per_rejection = refused
        .into_iter()
        .map(|r| {
            let mine = descendants(&changes, &HashSet::from([r.hash]));
            let replayed = if doc.is_some() {
                mine.intersection(&replayed_from).count()
            } else {
                0
            };
            (r.clone(), mine.len(), replayed)
        })
        .collect();
    if doc.is_none() {
        replayed.clear();
    }
    Ok(Some(Rebuilt {
        doc,
        dropped,
        replayed,
        per_rejection,
    }))
}

/// What a replay made.
struct Replayed {
    /// The rebuilt document, `None` if nothing is kept.
    doc: Option<AutoCommit>,
    /// The new changes.
    new: Vec<ChangeHash>,
    /// The originals they replay.
    from: HashSet<ChangeHash>,
}

/// The outcome of one replay attempt.
enum Attempt {
    Done(Box<Replayed>),
    /// Replaying this original made a change identical to a dropped one.
    Collided(ChangeHash),
}

/// Applies the `kept` changes to a new document and replays each blocked descendant
/// on it, with its time moved on by `nudged` seconds where given.
fn replay_all(
    old: &mut AutoCommit,
    changes: &[Change],
    kept: &[Change],
    dropped: &HashSet<ChangeHash>,
    refused: &HashSet<ChangeHash>,
    actor: &ActorId,
    nudged: &HashMap<ChangeHash, i64>,
) -> Result<Attempt> {
    let mut new = Vec::new();
    let mut from = HashSet::new();
    if kept.is_empty() {
        return Ok(Attempt::Done(Box::new(Replayed {
            doc: None,
            new,
            from,
        })));
    }
    let mut doc = AutoCommit::new().with_actor(actor.clone());
    doc.apply_changes(kept.iter().cloned())?;
    let mut replay = Replay {
        doc: &mut doc,
        dropped_ops: dropped_ops(changes, dropped),
        created: HashMap::new(),
    };
    for change in changes
        .iter()
        .filter(|c| dropped.contains(&c.hash()) && !refused.contains(&c.hash()))
    {
        let patches = old.diff(change.deps(), &[change.hash()]);
        replay.apply_all(patches);
        let time = change.timestamp() + nudged.get(&change.hash()).copied().unwrap_or(0);
        let mut options = CommitOptions::default().with_time(time);
        if let Some(message) = change.message() {
            options = options.with_message(message);
        }
        if let Some(hash) = replay.doc.commit_with(options) {
            if dropped.contains(&hash) {
                return Ok(Attempt::Collided(change.hash()));
            }
            new.push(hash);
            from.insert(change.hash());
        }
    }
    let doc = Some(doc);
    Ok(Attempt::Done(Box::new(Replayed { doc, new, from })))
}

/// The changes in `roots` and every change that depends on one of them, directly or
/// not. `changes` must be in causal order.
fn descendants(changes: &[Change], roots: &HashSet<ChangeHash>) -> HashSet<ChangeHash> {
    let mut found = HashSet::new();
    for c in changes {
        if roots.contains(&c.hash()) || c.deps().iter().any(|d| found.contains(d)) {
            found.insert(c.hash());
        }
    }
    found
}

/// The operation counters of the dropped changes, by actor: an object whose id falls
/// in one was created by a dropped change and is not in the rebuilt document.
fn dropped_ops(
    changes: &[Change],
    dropped: &HashSet<ChangeHash>,
) -> HashMap<ActorId, Vec<(u64, u64)>> {
    let mut ops: HashMap<ActorId, Vec<(u64, u64)>> = HashMap::new();
    for c in changes.iter().filter(|c| dropped.contains(&c.hash())) {
        if !c.is_empty() {
            ops.entry(c.actor_id().clone())
                .or_default()
                .push((c.start_op().get(), c.max_op()));
        }
    }
    ops
}

/// Re-expresses patches of the old document on the rebuilt one.
struct Replay<'a> {
    doc: &'a mut AutoCommit,
    /// See [`dropped_ops`].
    dropped_ops: HashMap<ActorId, Vec<(u64, u64)>>,
    /// Objects created while replaying: old id to new id.
    created: HashMap<ObjId, ObjId>,
}

/// Where a patch goes in the rebuilt document.
enum Target {
    /// This object.
    Object(ObjId),
    /// An object a dropped change created, not (yet) recreated by the replay.
    Dropped,
}

impl Replay<'_> {
    /// Applies one descendant's patches. A patch into an object created by a dropped
    /// change waits until the replay has recreated that object (a patch that creates
    /// it may come later in the list); if it never is, the patch was part of what the
    /// server refused and is skipped.
    fn apply_all(&mut self, patches: Vec<Patch>) {
        let mut waiting = patches;
        loop {
            let before = waiting.len();
            let mut next = Vec::new();
            for patch in waiting {
                match self.target(&patch.obj) {
                    Target::Object(obj) => {
                        if let Err(e) = self.apply(&obj, patch.action) {
                            // Only this patch's part of the edit is lost.
                            tracing::debug!(error = %e, "a replayed patch does not apply");
                        }
                    }
                    Target::Dropped => next.push(patch),
                }
            }
            if next.is_empty() || next.len() == before {
                if !next.is_empty() {
                    tracing::debug!(skipped = next.len(), "patches into refused objects");
                }
                return;
            }
            waiting = next;
        }
    }

    fn target(&self, old: &ObjId) -> Target {
        if let Some(new) = self.created.get(old) {
            return Target::Object(new.clone());
        }
        match old {
            ObjId::Root => Target::Object(ObjId::Root),
            ObjId::Id(counter, actor, _) => {
                let dropped = self.dropped_ops.get(actor).is_some_and(|ranges| {
                    ranges
                        .iter()
                        .any(|(start, end)| (*start..=*end).contains(counter))
                });
                if dropped {
                    Target::Dropped
                } else {
                    Target::Object(old.clone())
                }
            }
        }
    }

    fn apply(&mut self, obj: &ObjId, action: PatchAction) -> Result<(), AutomergeError> {
        let len = self.doc.length(obj);
        match action {
            PatchAction::PutMap {
                key,
                value: (value, old_id),
                ..
            } => self.put(obj, Prop::Map(key), value, old_id),
            PatchAction::PutSeq {
                index,
                value: (value, old_id),
                ..
            } => {
                if index < len {
                    self.put(obj, Prop::Seq(index), value, old_id)
                } else {
                    self.insert(obj, len, value, old_id)
                }
            }
            PatchAction::Insert { index, values } => {
                let start = index.min(len);
                for (offset, (value, old_id, _)) in values.iter().enumerate() {
                    self.insert(obj, start + offset, value.clone(), old_id.clone())?;
                }
                Ok(())
            }
            PatchAction::SpliceText { index, value, .. } => {
                self.doc
                    .splice_text(obj, index.min(len), 0, &value.make_string())
            }
            PatchAction::Increment { prop, value } => {
                let prop = match prop {
                    Prop::Seq(index) if index >= len => return Ok(()),
                    prop => prop,
                };
                if self.doc.get(obj, prop.clone())?.is_none() {
                    // The counter was created by a refused change: keep the amount.
                    return self.doc.put(obj, prop, ScalarValue::counter(value));
                }
                self.doc.increment(obj, prop, value)
            }
            PatchAction::DeleteMap { key } => {
                if self.doc.get(obj, key.as_str())?.is_some() {
                    self.doc.delete(obj, key.as_str())?;
                }
                Ok(())
            }
            PatchAction::DeleteSeq { index, length } => {
                let start = index.min(len);
                let n = length.min(len - start);
                if n == 0 {
                    return Ok(());
                }
                if self.doc.object_type(obj)? == ObjType::Text {
                    self.doc.splice_text(obj, start, n as isize, "")
                } else {
                    self.doc
                        .splice(obj, start, n as isize, Vec::<ScalarValue>::new())
                }
            }
            // Marks are not used by the records; a conflict patch only reports what
            // the put patches already carry.
            PatchAction::Mark { .. } | PatchAction::Conflict { .. } => Ok(()),
        }
    }

    fn put(
        &mut self,
        obj: &ObjId,
        prop: Prop,
        value: Value<'static>,
        old_id: ObjId,
    ) -> Result<(), AutomergeError> {
        match value {
            Value::Object(kind) => {
                let new = self.doc.put_object(obj, prop, kind)?;
                self.created.insert(old_id, new);
                Ok(())
            }
            Value::Scalar(scalar) => self.doc.put(obj, prop, fresh(scalar.into_owned())),
        }
    }

    fn insert(
        &mut self,
        obj: &ObjId,
        index: usize,
        value: Value<'static>,
        old_id: ObjId,
    ) -> Result<(), AutomergeError> {
        match value {
            Value::Object(kind) => {
                let new = self.doc.insert_object(obj, index, kind)?;
                self.created.insert(old_id, new);
                Ok(())
            }
            Value::Scalar(scalar) => self.doc.insert(obj, index, fresh(scalar.into_owned())),
        }
    }
}

/// A scalar to write anew: a counter starts at the value it showed.
fn fresh(value: ScalarValue) -> ScalarValue {
    match value {
        ScalarValue::Counter(c) => ScalarValue::counter(i64::from(&c)),
        other => other,
    }
}

/// Removes document `id` and everything derived from it.
fn remove_document(tx: &Transaction, id: DocId) -> Result<()> {
    let key = id.to_string();
    // Every index table has a `doc_id` column; listing them from the schema keeps
    // this right when index tables are added.
    let tables: Vec<String> = tx
        .prepare(
            "SELECT m.name FROM sqlite_master m
             WHERE m.type = 'table' AND m.name LIKE 'idx\\_%' ESCAPE '\\'
               AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) p WHERE p.name = 'doc_id')",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for table in tables {
        tx.execute(&format!("DELETE FROM {table} WHERE doc_id = ?1"), [&key])?;
    }
    for table in [
        "sync_states",
        "sync_pending",
        "unacked_changes",
        "doc_chunks",
        "documents",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE doc_id = ?1"), [&key])?;
    }
    Ok(())
}

fn insert_rejection(tx: &Transaction, r: &Rejection) -> Result<i64> {
    tx.execute(
        "INSERT INTO rejections
         (doc_id, kind, change_hash, code, message, at, dropped, replayed, removed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            r.doc_id.to_string(),
            r.kind,
            r.change.as_ref(),
            r.code,
            r.message,
            r.at.0,
            r.dropped_changes as i64,
            r.replayed_changes as i64,
            r.document_removed,
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

fn read_rejections(conn: &Connection, after: i64) -> Result<Vec<Rejection>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, doc_id, kind, change_hash, code, message, at, dropped, replayed, removed
         FROM rejections WHERE id > ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([after], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, i64>(8)?,
            r.get::<_, bool>(9)?,
        ))
    })?;
    rows.map(|row| {
        let (id, doc, kind, hash, code, message, at, dropped, replayed, removed) = row?;
        Ok(Rejection {
            id,
            doc_id: doc.parse()?,
            kind,
            change: ChangeHash::try_from(hash.as_slice())
                .map_err(|_| Error::Corrupt("stored rejected change hash".into()))?,
            code,
            message,
            at: Timestamp(at),
            dropped_changes: dropped as usize,
            replayed_changes: replayed as usize,
            document_removed: removed,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use automerge::sync;
    use proptest::prelude::*;

    use super::*;
    use crate::ids::{BranchId, MemberId};
    use crate::model::{
        Activity, DocKind, Level, MemberUpdate, NewActivity, NewMember, Roster, SignInMode,
    };
    use crate::store::query::MemberFilter;

    fn member(name: &str) -> NewMember {
        NewMember {
            name: name.into(),
            ..Default::default()
        }
    }

    fn theme_day() -> NewActivity {
        NewActivity {
            kind: "theme_day".into(),
            title: "三月主题党日".into(),
            starts_at: "2025-03-05T14:30".parse().ok(),
            ends_at: "2025-03-05T16:30".parse().ok(),
            ..Default::default()
        }
    }

    fn phone(number: &str) -> MemberUpdate {
        MemberUpdate {
            phone: Some(number.into()),
            ..Default::default()
        }
    }

    fn open(path: &Path) -> (Store, BranchId) {
        let mut store = Store::open(path).unwrap();
        store.set_clock(Box::new(|| Timestamp(1_741_132_800_000)));
        let branch = store
            .create_branch("幸福里第一党支部", Level::Branch, None)
            .unwrap();
        (store, branch)
    }

    fn refused(hash: ChangeHash, code: &str) -> RejectedChange {
        RejectedChange {
            hash,
            code: code.into(),
            message: format!("refused: {code}"),
        }
    }

    /// The document's single head: local edits make a linear history.
    fn head(store: &Store, id: DocId) -> ChangeHash {
        let heads = store.heads(id).unwrap().unwrap();
        assert_eq!(heads.len(), 1);
        heads[0]
    }

    fn hashes(store: &Store, id: DocId) -> HashSet<ChangeHash> {
        let mut doc = store.load_document(id).unwrap();
        doc.get_changes(&[]).iter().map(Change::hash).collect()
    }

    fn integrity(path: &Path) {
        let conn = Connection::open(path).unwrap();
        let verdict: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(verdict, "ok");
    }

    fn rows(store: &Store, sql: &str, id: DocId) -> i64 {
        store
            .conn()
            .query_row(sql, [id.to_string()], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_refused_roster_edit_goes_and_the_honest_edits_after_it_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let (mut store, branch) = open(&path);
        let wang = store.add_member(branch, member("王秀英")).unwrap();
        let li = store.add_member(branch, member("李强")).unwrap();
        let roster = store.branch_document(branch, DocKind::Roster).unwrap();
        let a = store.create_activity(branch, theme_day()).unwrap();
        let b = store.create_activity(branch, theme_day()).unwrap();
        store
            .mark_acknowledged(roster, &[head(&store, roster)])
            .unwrap();
        store
            .save_sync_state("server", roster, &sync::State::new())
            .unwrap();

        // Allowed: a sign-in. Forbidden: changing someone else's roster entry.
        store.sign_in(a, li, SignInMode::OnSite).unwrap();
        store.update_member(wang, phone("13800000000")).unwrap();
        let x = head(&store, roster);
        // Allowed, after it: a leave request, minutes elsewhere, the member's own entry.
        store.request_leave(b, wang, "在外地务工").unwrap();
        store.write_minutes(b, "会议学习了文件。").unwrap();
        store.update_member(li, phone("13911111111")).unwrap();
        let blocked = head(&store, roster);
        assert_eq!(store.unacked_changes(roster).unwrap(), 2);
        let (tx, rx) = std::sync::mpsc::channel();
        store.set_change_listener(Some(Box::new(move |id| tx.send(id).unwrap())));

        let records = store
            .drop_rejected(roster, &[refused(x, "rule.not_own_entry")])
            .unwrap();

        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(
            (r.doc_id, r.kind.as_str(), r.change, r.code.as_str()),
            (roster, "roster", x, "rule.not_own_entry")
        );
        assert_eq!((r.dropped_changes, r.replayed_changes), (2, 1));
        assert!(!r.document_removed);
        assert_eq!(r.at, Timestamp(1_741_132_800_000));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![roster]);

        let roster_now: Roster = store.get(roster).unwrap();
        assert_eq!(roster_now.member(wang).unwrap().phone, None, "X is undone");
        assert_eq!(
            roster_now.member(li).unwrap().phone.as_deref(),
            Some("13911111111"),
            "the later honest edit is replayed"
        );
        let now = hashes(&store, roster);
        assert!(!now.contains(&x) && !now.contains(&blocked));
        let heads = store.heads(roster).unwrap().unwrap();
        assert!(!heads.contains(&x));
        assert_eq!(
            store.unacked_changes(roster).unwrap(),
            1,
            "only the replayed change waits for the server"
        );
        assert_eq!(
            rows(
                &store,
                "SELECT count(*) FROM sync_states WHERE doc_id = ?1",
                roster
            ),
            0,
            "the next sync starts afresh"
        );
        // The other documents are untouched.
        let activity: Activity = store.get(a).unwrap();
        assert!(activity.sign_ins.contains_key(&li.to_string()));
        let other: Activity = store.get(b).unwrap();
        assert!(other.leaves.contains_key(&wang.to_string()));
        assert_eq!(other.minutes.as_str(), "会议学习了文件。");
        drop(store);

        integrity(&path);
        let store = Store::open(&path).unwrap();
        let listed = store
            .list_members(branch, &MemberFilter::default())
            .unwrap();
        let phone_of = |m: MemberId| listed.iter().find(|r| r.id == m).unwrap().phone.clone();
        assert_eq!(phone_of(wang), None, "the index follows the rebuilt roster");
        assert_eq!(phone_of(li).as_deref(), Some("13911111111"));
        assert_eq!(store.rejections(None).unwrap(), records);
        assert_eq!(store.rejections(Some(r.id)).unwrap(), vec![]);
        assert_eq!(head(&store, roster), heads[0]);
    }

    #[test]
    fn replay_recreates_objects_splices_text_and_adds_points() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, branch) = open(&dir.path().join("store.db"));
        let wang = store.add_member(branch, member("王秀英")).unwrap();
        let li = store.add_member(branch, member("李强")).unwrap();
        let zhao = store.add_member(branch, member("赵刚")).unwrap();
        let a = store.create_activity(branch, theme_day()).unwrap();
        store.write_minutes(a, "第一段。").unwrap();
        store.award_points(a, zhao, 2).unwrap();
        let kept_unacked = store.unacked_changes(a).unwrap();

        // Refused: points for wang, and a sentence in the middle of the minutes.
        store
            .update(a, |act: &mut Activity| {
                act.award_points(wang, 5)?;
                act.write_minutes("第一段。不该写的。")
            })
            .unwrap();
        let x = head(&store, a);
        // Honest, after it.
        store
            .write_minutes(a, "开头：第一段。不该写的。第二段。")
            .unwrap();
        store.sign_in(a, li, SignInMode::Remote).unwrap();
        store.award_points(a, zhao, 3).unwrap();
        store.award_points(a, wang, 1).unwrap();
        store.request_leave(a, zhao, "出差").unwrap();

        let records = store
            .drop_rejected(a, &[refused(x, "rule.points_need_committee")])
            .unwrap();
        assert_eq!(
            (records[0].dropped_changes, records[0].replayed_changes),
            (6, 5)
        );

        let act: Activity = store.get(a).unwrap();
        let sign_in = &act.sign_ins[&li.to_string()];
        assert_eq!(
            sign_in.mode,
            SignInMode::Remote,
            "a new map entry is recreated"
        );
        assert_eq!(act.leaves[&zhao.to_string()].reason, "出差");
        assert_eq!(
            act.bonus_points_of(zhao),
            5,
            "the increment adds to the kept counter"
        );
        assert_eq!(
            act.bonus_points_of(wang),
            1,
            "the refused 5 are gone, the honest 1 stays"
        );
        assert_eq!(
            act.minutes.as_str(),
            "开头：第一段。第二段。",
            "the refused words are gone, the later ones kept (clamped where they followed)"
        );
        // The replayed changes are ordinary local changes, waiting for the server.
        assert_eq!(store.unacked_changes(a).unwrap(), kept_unacked + 5);
    }

    #[test]
    fn edits_inside_what_the_refused_change_created_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, branch) = open(&dir.path().join("store.db"));
        let wang = store.add_member(branch, member("王秀英")).unwrap();
        let a = store.create_activity(branch, theme_day()).unwrap();
        let unacked = store.unacked_changes(a).unwrap();
        store.sign_in(a, wang, SignInMode::OnSite).unwrap();
        let x = head(&store, a);
        // Only inside the refused sign-in: nothing of it is left to replay.
        store
            .update(a, |act: &mut Activity| {
                act.sign_ins.get_mut(&wang.to_string()).unwrap().mode = SignInMode::Remote;
                Ok(())
            })
            .unwrap();
        store.write_minutes(a, "补记。").unwrap();

        let records = store
            .drop_rejected(a, &[refused(x, "rule.not_own_entry")])
            .unwrap();

        assert_eq!(
            (records[0].dropped_changes, records[0].replayed_changes),
            (3, 1)
        );
        let act: Activity = store.get(a).unwrap();
        assert!(act.sign_ins.is_empty(), "the refused sign-in stays refused");
        assert_eq!(act.minutes.as_str(), "补记。");
        assert_eq!(store.unacked_changes(a).unwrap(), unacked + 1);
        let rows = store.list_activities(branch, &Default::default()).unwrap();
        assert_eq!(rows[0].sign_ins, 0, "the index follows");
    }

    #[test]
    fn a_refused_creation_removes_the_document() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let (mut store, branch) = open(&path);
        let wang = store.add_member(branch, member("王秀英")).unwrap();
        let a = store.create_activity(branch, theme_day()).unwrap();
        let created = head(&store, a);
        store.sign_in(a, wang, SignInMode::OnSite).unwrap();
        store
            .save_sync_state("server", a, &sync::State::new())
            .unwrap();
        let before = store.pending_changes().unwrap();

        let records = store
            .drop_rejected(a, &[refused(created, "rule.cannot_create")])
            .unwrap();

        assert_eq!(records.len(), 1);
        assert!(records[0].document_removed);
        assert_eq!(
            (records[0].kind.as_str(), records[0].dropped_changes),
            ("activity", 2)
        );
        assert_eq!(records[0].replayed_changes, 0);
        assert_eq!(
            store.get::<Activity>(a).unwrap_err().code(),
            "doc.not_found"
        );
        assert_eq!(store.heads(a).unwrap(), None);
        assert!(
            store
                .list_activities(branch, &Default::default())
                .unwrap()
                .is_empty()
        );
        for sql in [
            "SELECT count(*) FROM idx_attendance WHERE doc_id = ?1",
            "SELECT count(*) FROM idx_activity_branches WHERE doc_id = ?1",
            "SELECT count(*) FROM unacked_changes WHERE doc_id = ?1",
            "SELECT count(*) FROM sync_states WHERE doc_id = ?1",
        ] {
            assert_eq!(rows(&store, sql, a), 0, "{sql}");
        }
        assert_eq!(store.pending_changes().unwrap(), before - 2);
        // Again, for a document no longer here: nothing to do.
        let again = store
            .drop_rejected(a, &[refused(created, "rule.cannot_create")])
            .unwrap();
        assert!(again.is_empty());
        drop(store);
        integrity(&path);
        assert_eq!(
            Store::open(&path).unwrap().rejections(None).unwrap(),
            records
        );
    }

    #[test]
    fn dropping_twice_or_an_unknown_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, branch) = open(&dir.path().join("store.db"));
        let wang = store.add_member(branch, member("王秀英")).unwrap();
        let roster = store.branch_document(branch, DocKind::Roster).unwrap();
        store.update_member(wang, phone("13800000000")).unwrap();
        let x = head(&store, roster);
        let unknown = refused(ChangeHash([7; 32]), "rule.not_own_entry");

        let first = store
            .drop_rejected(roster, &[refused(x, "rule.not_own_entry"), unknown.clone()])
            .unwrap();
        assert_eq!(first.len(), 1, "the unknown hash is ignored");
        let bytes = store.export(roster).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        store.set_change_listener(Some(Box::new(move |id| tx.send(id).unwrap())));

        let second = store
            .drop_rejected(roster, &[refused(x, "rule.not_own_entry")])
            .unwrap();
        assert!(second.is_empty());
        assert!(store.drop_rejected(roster, &[unknown]).unwrap().is_empty());
        assert!(store.drop_rejected(roster, &[]).unwrap().is_empty());
        assert_eq!(store.export(roster).unwrap(), bytes);
        assert_eq!(store.rejections(None).unwrap(), first);
        assert_eq!(rx.try_iter().count(), 0, "nothing changed, nobody is told");
    }

    #[test]
    fn repeated_hashes_count_once_and_each_rejection_counts_its_own_descendants() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, branch) = open(&dir.path().join("store.db"));
        let wang = store.add_member(branch, member("王秀英")).unwrap();
        let li = store.add_member(branch, member("李强")).unwrap();
        let roster = store.branch_document(branch, DocKind::Roster).unwrap();
        store.update_member(wang, phone("1")).unwrap();
        let x1 = head(&store, roster);
        store.update_member(li, phone("2")).unwrap();
        store.update_member(wang, phone("3")).unwrap();
        let x2 = head(&store, roster);
        store.update_member(li, phone("4")).unwrap();

        let records = store
            .drop_rejected(
                roster,
                &[
                    refused(x2, "rule.b"),
                    refused(x1, "rule.a"),
                    refused(x2, "rule.b"),
                ],
            )
            .unwrap();
        let summary: Vec<_> = records
            .iter()
            .map(|r| (r.code.as_str(), r.dropped_changes, r.replayed_changes))
            .collect();
        assert_eq!(summary, vec![("rule.b", 2, 1), ("rule.a", 4, 2)]);
        assert!(records[0].id < records[1].id);
        let roster_now: Roster = store.get(roster).unwrap();
        assert_eq!(roster_now.member(wang).unwrap().phone, None);
        assert_eq!(roster_now.member(li).unwrap().phone.as_deref(), Some("4"));
        assert_eq!(store.rejections(Some(records[0].id)).unwrap(), records[1..]);
    }

    /// One edit in the property test.
    #[derive(Clone, Debug)]
    enum Edit {
        SignIn(usize),
        Leave(usize),
        Minutes(String),
        Points(usize, i64),
        /// Another device edits the minutes of its copy (taking a copy first if it
        /// has none).
        Elsewhere(String),
        /// This device merges the other device's copy.
        Merge,
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0..3usize).prop_map(Edit::SignIn),
            (0..3usize).prop_map(Edit::Leave),
            "[ab甲乙。]{0,6}".prop_map(Edit::Minutes),
            (0..3usize, -3..4i64).prop_map(|(m, p)| Edit::Points(m, p)),
            "[xy丙]{0,4}".prop_map(Edit::Elsewhere),
            Just(Edit::Merge),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn only_the_refused_change_and_its_descendants_go(
            edits in prop::collection::vec(edit(), 1..14),
            pick in any::<prop::sample::Index>(),
        ) {
            drop_and_check(&edits, |len| pick.index(len))?;
        }
    }

    /// A case the property test found: two equal awards, then the later one refused.
    #[test]
    fn a_repeated_edit_after_the_refused_one_is_replayed() {
        let edits = [
            Edit::Leave(0),
            Edit::Points(2, -1),
            Edit::Points(2, -1),
            Edit::Minutes(String::new()),
            Edit::SignIn(0),
            Edit::SignIn(1),
        ];
        // Refuse each local change in turn.
        for i in 0..8 {
            drop_and_check(&edits, |len| i % len).unwrap();
        }
    }

    /// Makes `edits`, refuses the local change `pick` chooses (given how many there
    /// are), and checks that exactly
    /// it and its descendants are gone and the store is consistent.
    fn drop_and_check(edits: &[Edit], pick: impl Fn(usize) -> usize) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let (mut store, branch) = open(&path);
        let members: Vec<MemberId> = ["王秀英", "李强", "赵刚"]
            .iter()
            .map(|n| store.add_member(branch, member(n)).unwrap())
            .collect();
        let a = store.create_activity(branch, theme_day()).unwrap();
        let mut elsewhere: Option<AutoCommit> = None;
        for e in edits {
            // Edits the model refuses (a second sign-in…) just do nothing.
            let _ = match e {
                Edit::SignIn(m) => store.sign_in(a, members[*m], SignInMode::OnSite),
                Edit::Leave(m) => store.request_leave(a, members[*m], "出差"),
                Edit::Minutes(text) => store.write_minutes(a, text),
                Edit::Points(m, p) => store.award_points(a, members[*m], *p),
                Edit::Elsewhere(text) => {
                    let doc = elsewhere.get_or_insert_with(|| {
                        let mut d = store.load_document(a).unwrap();
                        d.set_actor(ActorId::random());
                        d
                    });
                    model::edit(doc, |act: &mut Activity| act.write_minutes(text))
                }
                Edit::Merge => match &mut elsewhere {
                    Some(doc) => store.merge(&doc.save()).map(|_| ()),
                    None => Ok(()),
                },
            };
        }
        let mut before = store.load_document(a).unwrap();
        let changes = before.get_changes(&[]);
        let ours = store.actor();
        let local: Vec<&Change> = changes.iter().filter(|c| *c.actor_id() == ours).collect();
        let x = local[pick(local.len())].hash();
        let gone = descendants(&changes, &HashSet::from([x]));

        let records = store.drop_rejected(a, &[refused(x, "rule.test")]).unwrap();
        prop_assert_eq!(records.len(), 1);
        prop_assert_eq!(records[0].dropped_changes, gone.len());
        drop(store);

        integrity(&path);
        let store = Store::open(&path).unwrap();
        if records[0].document_removed {
            prop_assert_eq!(x, changes[0].hash(), "only the creation removes it");
            prop_assert!(store.heads(a).unwrap().is_none());
        } else {
            let now = hashes(&store, a);
            for c in &changes {
                prop_assert_eq!(now.contains(&c.hash()), !gone.contains(&c.hash()));
            }
            prop_assert_eq!(
                now.len(),
                changes.len() - gone.len() + records[0].replayed_changes
            );
            let act: Activity = store.get(a).unwrap();
            prop_assert_eq!(act.meta.id, a);
            // Unacknowledged changes are all in the document.
            let unacked = super::super::unacked_hashes(store.conn(), a).unwrap();
            prop_assert!(unacked.iter().all(|h| now.contains(h)));
            let local_gone = local.iter().filter(|c| gone.contains(&c.hash())).count();
            prop_assert_eq!(
                store.unacked_changes(a).unwrap(),
                local.len() - local_gone + records[0].replayed_changes
            );
        }
        Ok(())
    }
}
