//! Documents in the database: a snapshot plus appended change chunks, with the
//! access attributes and heads in columns so listing never loads a document.
//!
//! Write paths run inside the writer's per-job savepoint (or the admin's
//! transaction); read paths run on a pooled read connection.
//!
//! Stored documents came from peers, so automerge is only ever run on them
//! through `parsed`: a panic while loading or saving one becomes an error
//! for that document, and the writer goes on with the next.

use std::collections::HashSet;

use automerge::{Automerge, ChangeHash, ObjType, ReadDoc, Value};
use branchline_core::model::{FieldPath, activity, applicant, library, member_file, petition};
use branchline_protocol::{BranchId, DeviceId, DocId, Heads, MemberId};
use rusqlite::Connection;

use super::writer::CompactOutcome;
use crate::access::{DocAttributes, DocClass};
use crate::db::{self, parse_id, parse_opt_id};
use crate::error::{Error, Result};
use crate::sql::{Dialect, Row, Sql};

/// A document's row without its content.
#[derive(Debug, Clone)]
pub(crate) struct DocRow {
    pub doc_id: DocId,
    pub attrs: DocAttributes,
    pub heads: Heads,
    pub seq: i64,
}

/// Heads as one blob of 32-byte hashes.
pub(crate) fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn decode_heads(bytes: &[u8]) -> Result<Heads> {
    if !bytes.len().is_multiple_of(32) {
        return Err(Error::Corrupt("stored heads".into()));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| <[u8; 32]>::try_from(c).unwrap_or_default())
        .collect())
}

/// Automerge heads as protocol heads.
pub(crate) fn to_heads(heads: &[ChangeHash]) -> Heads {
    heads.iter().map(|h| h.0).collect()
}

/// How a write sets a document's position in the order of document writes.
///
/// SQLite has one writer, so the next position is one more than the
/// highest. PostgreSQL takes it from a sequence and records the writing
/// transaction's id beside it: transactions may commit in another order
/// than they drew positions, and a reader uses the id to know which
/// positions may still appear below the highest it saw (docs/sync-design.md).
fn next_seq(conn: &dyn Sql) -> &'static str {
    match conn.dialect() {
        Dialect::Sqlite => "(SELECT coalesce(max(change_seq), 0) + 1 FROM documents)",
        Dialect::Postgres => "nextval('change_seq')",
    }
}

/// What else a write stamps on the document row (PostgreSQL: the writing
/// transaction).
fn write_stamp(conn: &dyn Sql) -> &'static str {
    match conn.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => ", change_xid = pg_current_xact_id()",
    }
}

fn shared_with_json(attrs: &DocAttributes) -> String {
    let ids: Vec<String> = attrs.shared_with.iter().map(|b| b.to_string()).collect();
    serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())
}

/// Stores a document new to the server as a snapshot; returns its write
/// position.
pub(crate) fn insert(
    conn: &dyn Sql,
    doc_id: DocId,
    attrs: &DocAttributes,
    snapshot: &[u8],
    heads: &[ChangeHash],
) -> Result<i64> {
    let now = db::now_ms();
    if row(conn, doc_id)?.is_some() {
        // Another process stored it first.
        return Err(Error::Stale(doc_id));
    }
    let inserted = conn.query_opt(
        &format!(
            "INSERT INTO documents (doc_id, kind, branch_id, shared_with, owner_member,
                 submitter_member, subject_member, creator_device, heads, snapshot, snapshot_len,
                 shared_down, change_seq, created_at_ms, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?13, {}, ?12, ?12)
             ON CONFLICT (doc_id) DO NOTHING
             RETURNING change_seq",
            next_seq(conn)
        ),
        crate::sql::params![
            &doc_id.to_string(),
            attrs.kind.as_str(),
            &attrs.branch.to_string(),
            &shared_with_json(attrs),
            &attrs.owner.map(|m| m.to_string()),
            &attrs.submitter.map(|m| m.to_string()),
            &attrs.subject.map(|m| m.to_string()),
            &attrs.creator.map(|d| d.to_string()),
            &encode_heads(heads),
            snapshot,
            snapshot.len() as i64,
            now,
            i64::from(attrs.shared_down),
        ],
    )?;
    let Some(inserted) = inserted else {
        // Another node stored it between the check and the insert.
        return Err(Error::Stale(doc_id));
    };
    crate::postgres::announce(conn)?;
    inserted.int(0)
}

/// Appends a chunk of changes made on top of `base` (the heads the writer
/// loaded) to a stored document and updates its heads and attributes;
/// returns its write position. Fails with [`Error::Stale`] if the stored
/// heads are no longer `base` (another process wrote meanwhile), so a
/// writer holding an old copy can never overwrite newer heads.
pub(crate) fn append(
    conn: &dyn Sql,
    doc_id: DocId,
    attrs: &DocAttributes,
    chunk: &[u8],
    base: &[ChangeHash],
    heads: &[ChangeHash],
) -> Result<i64> {
    let key = doc_id.to_string();
    // On PostgreSQL the row stays locked until the transaction ends, so two
    // nodes cannot both append on the same heads.
    let lock = match conn.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    };
    let stored = conn.query_one(
        &format!("SELECT next_chunk, heads FROM documents WHERE doc_id = ?1{lock}"),
        crate::sql::params![&key],
    )?;
    let next_chunk = stored.int(0)?;
    if stored.blob(1)? != encode_heads(base) {
        return Err(Error::Stale(doc_id));
    }
    conn.execute(
        "INSERT INTO doc_chunks (doc_id, seq, data) VALUES (?1, ?2, ?3)",
        crate::sql::params![&key, next_chunk, chunk],
    )?;
    crate::postgres::announce(conn)?;
    conn.query_one(
        &format!(
            "UPDATE documents SET chunks_len = chunks_len + ?2, next_chunk = ?3, heads = ?4,
                 shared_with = ?5, owner_member = ?6, submitter_member = ?7, subject_member = ?8,
                 shared_down = ?10, change_seq = {}, updated_at_ms = ?9{}
             WHERE doc_id = ?1
             RETURNING change_seq",
            next_seq(conn),
            write_stamp(conn)
        ),
        crate::sql::params![
            &key,
            chunk.len() as i64,
            next_chunk + 1,
            &encode_heads(heads),
            &shared_with_json(attrs),
            &attrs.owner.map(|m| m.to_string()),
            &attrs.submitter.map(|m| m.to_string()),
            &attrs.subject.map(|m| m.to_string()),
            db::now_ms(),
            i64::from(attrs.shared_down),
        ],
    )?
    .int(0)
}

/// The stored bytes of a document (snapshot then chunks, which
/// `Automerge::load` reads as one). Run inside a transaction, so compaction
/// cannot interleave.
pub(crate) fn read_bytes(conn: &dyn Sql, doc_id: DocId) -> Result<Option<Vec<u8>>> {
    let key = doc_id.to_string();
    let Some(mut row) = conn.query_opt(
        "SELECT snapshot, chunks_len FROM documents WHERE doc_id = ?1",
        crate::sql::params![&key],
    )?
    else {
        return Ok(None);
    };
    let chunks_len = row.int(1)?;
    let mut bytes = row.take_blob(0)?;
    if chunks_len > 0 {
        bytes.reserve(chunks_len as usize);
        for mut chunk in conn.query(
            "SELECT data FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq",
            crate::sql::params![&key],
        )? {
            bytes.extend_from_slice(&chunk.take_blob(0)?);
        }
    }
    Ok(Some(bytes))
}

/// Loads a stored document with its attributes, or `None` if the server has
/// no such document. Run inside a transaction.
pub(crate) fn load(conn: &dyn Sql, doc_id: DocId) -> Result<Option<(Automerge, DocRow)>> {
    let Some(bytes) = read_bytes(conn, doc_id)? else {
        return Ok(None);
    };
    let row = row(conn, doc_id)?.ok_or_else(|| Error::CorruptDocument {
        doc: doc_id,
        reason: "row vanished".into(),
    })?;
    let doc = parsed(doc_id, "load", || Automerge::load(&bytes))?;
    Ok(Some((doc, row)))
}

/// Runs automerge on the stored document `doc` (`what` it does, for the
/// log): its error, or a panic, becomes [`Error::CorruptDocument`].
fn parsed<T>(
    doc: DocId,
    what: &str,
    work: impl FnOnce() -> std::result::Result<T, automerge::AutomergeError>,
) -> Result<T> {
    super::contained(doc, what, work)?.map_err(|e| Error::CorruptDocument {
        doc,
        reason: e.to_string(),
    })
}

const ROW_COLUMNS: &str = "doc_id, kind, branch_id, shared_with, owner_member, submitter_member,
    subject_member, creator_device, heads, change_seq, shared_down";

fn parse_row(raw: &Row) -> Result<DocRow> {
    let doc_id = raw.text(0)?;
    let shared: Vec<String> = serde_json::from_str(&raw.text(3)?)
        .map_err(|e| Error::Corrupt(format!("shared_with of {doc_id}: {e}")))?;
    Ok(DocRow {
        doc_id: parse_id(&doc_id)?,
        attrs: DocAttributes {
            kind: raw.text(1)?,
            branch: parse_id(&raw.text(2)?)?,
            shared_with: shared.iter().map(|b| parse_id(b)).collect::<Result<_>>()?,
            shared_down: raw.int(10)? != 0,
            owner: parse_opt_id(raw.opt_text(4)?)?,
            submitter: parse_opt_id(raw.opt_text(5)?)?,
            subject: parse_opt_id(raw.opt_text(6)?)?,
            creator: parse_opt_id(raw.opt_text(7)?)?,
        },
        heads: decode_heads(&raw.blob(8)?)?,
        seq: raw.int(9)?,
    })
}

/// One document's row.
pub(crate) fn row(conn: &dyn Sql, doc_id: DocId) -> Result<Option<DocRow>> {
    conn.query_opt(
        &format!("SELECT {ROW_COLUMNS} FROM documents WHERE doc_id = ?1"),
        crate::sql::params![&doc_id.to_string()],
    )?
    .as_ref()
    .map(parse_row)
    .transpose()
}

/// Every document written at a position after `after`, in write order.
pub(crate) fn rows_since(conn: &dyn Sql, after: i64) -> Result<Vec<DocRow>> {
    conn.query(
        &format!("SELECT {ROW_COLUMNS} FROM documents WHERE change_seq > ?1 ORDER BY change_seq"),
        crate::sql::params![after],
    )?
    .iter()
    .map(parse_row)
    .collect()
}

/// Every document written at a position after `after`, or by a
/// transaction whose id is at least `horizon` (one that may still have
/// been running when the reader last looked), in write order. PostgreSQL
/// only: see [`next_seq`].
pub(crate) fn rows_since_horizon(conn: &dyn Sql, after: i64, horizon: i64) -> Result<Vec<DocRow>> {
    conn.query(
        &format!(
            "SELECT {ROW_COLUMNS} FROM documents
             WHERE change_seq > ?1 OR change_xid >= ?2::text::xid8
             ORDER BY change_seq"
        ),
        crate::sql::params![after, &horizon.to_string()],
    )?
    .iter()
    .map(parse_row)
    .collect()
}

/// Every document id, in ascending order.
pub(crate) fn ids(conn: &dyn Sql) -> Result<Vec<DocId>> {
    conn.query(
        "SELECT doc_id FROM documents ORDER BY doc_id",
        crate::sql::params![],
    )?
    .iter()
    .map(|row| parse_id(&row.text(0)?))
    .collect()
}

// --- compaction -------------------------------------------------------------------
//
// A document's appended chunks are folded into a new snapshot once they
// outgrow it, off the Ack path: by the SQLite writer when idle
// ([`compact_one`]), by each PostgreSQL node's queue thread when idle
// (`crate::postgres`). Both run [`compact_first`] in a write transaction.
//
// On PostgreSQL several nodes compact one database, beside nodes that
// append. A node claims a document with an advisory lock held to the end
// of its transaction (another node passes it over); appends never take
// that lock, so they go on while automerge rebuilds the snapshot, and the
// document row is locked only from the final update to the commit. The
// update subtracts the bytes folded rather than zeroing the count, and the
// delete spares every chunk past the last one folded: a chunk another node
// appended meanwhile stays, and is still counted. (The claim saves work;
// the delete must remove exactly the chunks read or nothing commits, so
// even two nodes folding one document at once could not lose a chunk.)

/// One document's chunks folded into its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Folded {
    /// The document.
    pub doc: DocId,
    /// How many chunks were folded.
    pub chunks: usize,
    /// Stored bytes of what was folded (the old snapshot and the chunks).
    pub before: usize,
    /// Bytes of the new snapshot.
    pub after: usize,
}

/// Documents whose chunks outgrew their snapshot (a few, not all), except
/// those in `skip`.
pub(crate) fn compaction_candidates(conn: &dyn Sql, skip: &HashSet<String>) -> Result<Vec<String>> {
    Ok(conn
        .query(
            "SELECT doc_id FROM documents WHERE chunks_len > snapshot_len LIMIT 64",
            crate::sql::params![],
        )?
        .iter()
        .map(|row| row.text(0))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|id| !skip.contains(id))
        .collect())
}

/// Folds the chunks of the first of `candidates` this process may compact
/// (on PostgreSQL: that no other node is compacting) into a new snapshot,
/// in the caller's write transaction, which must commit for it to count.
/// `None` if none of them needs it any more. An error names the document it
/// is about; after one, the transaction must be rolled back.
pub(crate) fn compact_first(
    conn: &dyn Sql,
    candidates: &[String],
) -> std::result::Result<Option<Folded>, (String, Error)> {
    for key in candidates {
        let folded = parse_id(key)
            .and_then(|doc_id| fold(conn, doc_id))
            .map_err(|e| (key.clone(), e))?;
        if folded.is_some() {
            return Ok(folded);
        }
    }
    Ok(None)
}

/// Folds one document's chunks into its snapshot, unless another node is
/// at it or did it since it was listed.
fn fold(conn: &dyn Sql, doc_id: DocId) -> Result<Option<Folded>> {
    let key = doc_id.to_string();
    if !crate::postgres::try_lock(conn, &format!("compaction {key}"))? {
        return Ok(None);
    }
    // Read after the claim: another node may have compacted it between the
    // listing and the claim.
    let Some(mut row) = conn.query_opt(
        "SELECT snapshot, snapshot_len, chunks_len FROM documents WHERE doc_id = ?1",
        crate::sql::params![&key],
    )?
    else {
        return Ok(None);
    };
    if row.int(2)? <= row.int(1)? {
        return Ok(None);
    }
    let mut bytes = row.take_blob(0)?;
    let mut chunks = conn.query(
        "SELECT seq, data FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq",
        crate::sql::params![&key],
    )?;
    let Some(last) = chunks.last().map(|c| c.int(0)).transpose()? else {
        return Err(Error::CorruptDocument {
            doc: doc_id,
            reason: "its row counts chunks that are not stored".into(),
        });
    };
    let snapshot_len = bytes.len();
    for chunk in &mut chunks {
        bytes.extend_from_slice(&chunk.take_blob(1)?);
    }
    let folded_len = (bytes.len() - snapshot_len) as i64;
    let snapshot = parsed(doc_id, "compaction", || Ok(Automerge::load(&bytes)?.save()))?;
    // The row first: on PostgreSQL this waits for an append of another
    // node in flight, whose chunk (past `last`) the delete then spares.
    conn.execute(
        "UPDATE documents SET snapshot = ?2, snapshot_len = ?3, chunks_len = chunks_len - ?4
         WHERE doc_id = ?1",
        crate::sql::params![&key, &snapshot, snapshot.len() as i64, folded_len],
    )?;
    let deleted = conn.execute(
        "DELETE FROM doc_chunks WHERE doc_id = ?1 AND seq <= ?2",
        crate::sql::params![&key, last],
    )?;
    if deleted != chunks.len() as u64 {
        // Only compaction deletes chunks, and it holds the claim: this
        // cannot happen, and must not commit if it does.
        return Err(Error::Database(format!(
            "compaction of {key} read {} chunks but would delete {deleted}",
            chunks.len()
        )));
    }
    Ok(Some(Folded {
        doc: doc_id,
        chunks: chunks.len(),
        before: bytes.len(),
        after: snapshot.len(),
    }))
}

/// Rewrites the snapshot of one document whose chunks outgrew it (skipping
/// ids in `skip`), in its own transaction: the SQLite writer's idle work.
pub(crate) fn compact_one(conn: &mut Connection, skip: &HashSet<String>) -> CompactOutcome {
    let candidates = match compaction_candidates(&*conn, skip) {
        Ok(candidates) => candidates,
        Err(e) => {
            tracing::error!(error = %e, "cannot list documents to compact");
            return CompactOutcome::Failed(String::new());
        }
    };
    // One candidate: nothing else compacts on SQLite, so it still needs it.
    let Some(key) = candidates.into_iter().next() else {
        return CompactOutcome::Nothing;
    };
    let compacted = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| (key.clone(), e.into()))
        .and_then(|tx| {
            let folded = compact_first(&tx, std::slice::from_ref(&key))?;
            tx.commit().map_err(|e| (key.clone(), e.into()))?;
            Ok(folded)
        });
    match compacted {
        Ok(Some(folded)) => {
            log_folded(&folded);
            CompactOutcome::Compacted
        }
        Ok(None) => CompactOutcome::Nothing,
        Err((doc, e)) => {
            tracing::error!(doc = %doc, error = %e, "compaction failed");
            CompactOutcome::Failed(doc)
        }
    }
}

/// Logs a compaction.
pub(crate) fn log_folded(folded: &Folded) {
    tracing::debug!(
        doc = %folded.doc,
        chunks = folded.chunks,
        before = folded.before,
        after = folded.after,
        "compacted"
    );
}

/// Saves the sync state of `(device, doc)`.
pub(crate) fn save_sync_state(
    conn: &dyn Sql,
    device: DeviceId,
    doc: DocId,
    state: &[u8],
) -> Result<()> {
    conn.execute(
        "INSERT INTO sync_states (device_id, doc_id, state, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (device_id, doc_id) DO UPDATE SET state = excluded.state,
             updated_at_ms = excluded.updated_at_ms",
        crate::sql::params![&device.to_string(), &doc.to_string(), state, db::now_ms()],
    )?;
    Ok(())
}

/// The saved sync state of `(device, doc)`.
pub(crate) fn sync_state(conn: &dyn Sql, device: DeviceId, doc: DocId) -> Result<Option<Vec<u8>>> {
    conn.query_opt(
        "SELECT state FROM sync_states WHERE device_id = ?1 AND doc_id = ?2",
        crate::sql::params![&device.to_string(), &doc.to_string()],
    )?
    .map(|mut row| row.take_blob(0))
    .transpose()
}

// --- attributes from content ------------------------------------------------------

fn read_str(doc: &Automerge, field: FieldPath) -> Option<String> {
    match field.get(doc, None).ok()?? {
        (Value::Scalar(scalar), _) => scalar.as_str().map(str::to_owned),
        _ => None,
    }
}

fn read_map(doc: &Automerge, field: FieldPath) -> Option<automerge::ObjId> {
    match field.get(doc, None).ok()?? {
        (Value::Object(ObjType::Map), id) => Some(id),
        _ => None,
    }
}

fn read_member(doc: &Automerge, field: FieldPath) -> Option<MemberId> {
    read_str(doc, field).and_then(|text| text.parse().ok())
}

/// Whether `field` holds `true`; anything else (absent, not a bool) is false.
fn read_bool(doc: &Automerge, field: FieldPath) -> bool {
    matches!(field.get(doc, None), Ok(Some((Value::Scalar(v), _))) if v.as_bool() == Some(true))
}

/// The branches of a set kept as a map from branch id to `true` (an
/// activity's or a library entry's partners), sorted, each once; keys that
/// are not branch ids, or whose value is not `true`, are left out.
fn read_branch_set(doc: &Automerge, field: FieldPath) -> Vec<BranchId> {
    let Some(set) = read_map(doc, field) else {
        return Vec::new();
    };
    let mut branches: Vec<BranchId> = doc
        .keys(&set)
        .filter(|key| {
            matches!(doc.get(&set, key.as_str()), Ok(Some((Value::Scalar(v), _))) if v.as_bool() == Some(true))
        })
        .filter_map(|key| key.parse().ok())
        .collect();
    branches.sort();
    branches.dedup();
    branches
}

/// The access attributes of a document whose header says `kind` and
/// `branch`, read from its content; `creator` is the device that delivered
/// it first.
///
/// Fields are read one by one, at the paths each kind declares, rather than
/// by hydrating the whole record, so a record from a newer schema, or one
/// with a malformed field elsewhere, still yields what access control needs.
pub(crate) fn attributes_of(
    doc: &Automerge,
    kind: &str,
    branch: BranchId,
    creator: Option<DeviceId>,
) -> DocAttributes {
    let mut attrs = DocAttributes::new(kind, branch);
    attrs.creator = creator;
    match DocClass::of(kind) {
        DocClass::Activity => {
            attrs.shared_with = read_branch_set(doc, activity::paths::SHARED_WITH)
        }
        DocClass::Petition => {
            attrs.owner = read_member(doc, petition::paths::OWNER);
            attrs.submitter = read_member(doc, petition::paths::SUBMITTER_MEMBER);
        }
        DocClass::MemberFile => attrs.subject = read_member(doc, member_file::paths::MEMBER),
        DocClass::Applicant => attrs.subject = read_member(doc, applicant::paths::MEMBER),
        DocClass::LibraryEntry => {
            attrs.shared_with = read_branch_set(doc, library::paths::SHARED_WITH);
            attrs.shared_down = read_bool(doc, library::paths::SHARED_DOWN);
        }
        DocClass::BranchProfile
        | DocClass::Roster
        | DocClass::FeedbackBox
        | DocClass::FeedbackDrafts
        | DocClass::DuesLedger
        | DocClass::PointsBook
        | DocClass::Other => {}
    }
    attrs
}

/// The lowest-id document of `kind` in `branch` other than `except`.
pub(crate) fn first_of_kind(
    conn: &dyn Sql,
    branch: BranchId,
    kind: &str,
    except: DocId,
) -> Result<Option<DocId>> {
    conn.query_opt(
        "SELECT doc_id FROM documents WHERE branch_id = ?1 AND kind = ?2 AND doc_id != ?3
         ORDER BY doc_id LIMIT 1",
        crate::sql::params![&branch.to_string(), kind, &except.to_string()],
    )?
    .map(|row| parse_id(&row.text(0)?))
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_automerge_is_an_error_for_that_document() {
        let doc = DocId::new_random();
        let panicked = parsed(doc, "compaction", || -> std::result::Result<(), _> {
            panic!("automerge fell over")
        });
        assert!(matches!(panicked, Err(Error::CorruptDocument { doc: d, .. }) if d == doc));
        let garbage = parsed(doc, "load", || Automerge::load(b"not a document"));
        assert!(matches!(garbage, Err(Error::CorruptDocument { doc: d, .. }) if d == doc));
        let fine = parsed(doc, "compaction", || Ok(Automerge::new().save()));
        assert!(fine.is_ok());
    }
}
