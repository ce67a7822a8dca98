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
use branchline_core::model::{FieldPath, activity, member_file, petition};
use branchline_protocol::{BranchId, DeviceId, DocId, Heads, MemberId};
use rusqlite::{Connection, OptionalExtension, params};

use super::writer::CompactOutcome;
use crate::access::{DocAttributes, DocClass};
use crate::db::{self, parse_id, parse_opt_id};
use crate::error::{Error, Result};

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

/// The next position in the order of document writes.
fn next_seq(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(change_seq), 0) + 1 FROM documents")?
        .query_row([], |r| r.get(0))?)
}

fn shared_with_json(attrs: &DocAttributes) -> String {
    let ids: Vec<String> = attrs.shared_with.iter().map(|b| b.to_string()).collect();
    serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())
}

/// Stores a document new to the server as a snapshot; returns its write
/// position.
pub(crate) fn insert(
    conn: &Connection,
    doc_id: DocId,
    attrs: &DocAttributes,
    snapshot: &[u8],
    heads: &[ChangeHash],
) -> Result<i64> {
    let seq = next_seq(conn)?;
    let now = db::now_ms();
    if row(conn, doc_id)?.is_some() {
        // Another process stored it first.
        return Err(Error::Stale(doc_id));
    }
    conn.prepare_cached(
        "INSERT INTO documents (doc_id, kind, branch_id, shared_with, owner_member,
             submitter_member, subject_member, creator_device, heads, snapshot, snapshot_len,
             change_seq, created_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
    )?
    .execute(params![
        doc_id.to_string(),
        attrs.kind,
        attrs.branch.to_string(),
        shared_with_json(attrs),
        attrs.owner.map(|m| m.to_string()),
        attrs.submitter.map(|m| m.to_string()),
        attrs.subject.map(|m| m.to_string()),
        attrs.creator.map(|d| d.to_string()),
        encode_heads(heads),
        snapshot,
        snapshot.len() as i64,
        seq,
        now,
    ])?;
    Ok(seq)
}

/// Appends a chunk of changes made on top of `base` (the heads the writer
/// loaded) to a stored document and updates its heads and attributes;
/// returns its write position. Fails with [`Error::Stale`] if the stored
/// heads are no longer `base` (another process wrote meanwhile), so a
/// writer holding an old copy can never overwrite newer heads.
pub(crate) fn append(
    conn: &Connection,
    doc_id: DocId,
    attrs: &DocAttributes,
    chunk: &[u8],
    base: &[ChangeHash],
    heads: &[ChangeHash],
) -> Result<i64> {
    let key = doc_id.to_string();
    let (next_chunk, stored): (i64, Vec<u8>) = conn
        .prepare_cached("SELECT next_chunk, heads FROM documents WHERE doc_id = ?1")?
        .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if stored != encode_heads(base) {
        return Err(Error::Stale(doc_id));
    }
    conn.prepare_cached("INSERT INTO doc_chunks (doc_id, seq, data) VALUES (?1, ?2, ?3)")?
        .execute(params![key, next_chunk, chunk])?;
    let seq = next_seq(conn)?;
    conn.prepare_cached(
        "UPDATE documents SET chunks_len = chunks_len + ?2, next_chunk = ?3, heads = ?4,
             shared_with = ?5, owner_member = ?6, submitter_member = ?7, subject_member = ?8,
             change_seq = ?9, updated_at_ms = ?10
         WHERE doc_id = ?1",
    )?
    .execute(params![
        key,
        chunk.len() as i64,
        next_chunk + 1,
        encode_heads(heads),
        shared_with_json(attrs),
        attrs.owner.map(|m| m.to_string()),
        attrs.submitter.map(|m| m.to_string()),
        attrs.subject.map(|m| m.to_string()),
        seq,
        db::now_ms(),
    ])?;
    Ok(seq)
}

/// The stored bytes of a document (snapshot then chunks, which
/// `Automerge::load` reads as one), read in one transaction so compaction
/// cannot interleave.
pub(crate) fn load_bytes(conn: &mut Connection, doc_id: DocId) -> Result<Option<Vec<u8>>> {
    let tx = conn.transaction()?;
    let bytes = read_bytes(&tx, doc_id)?;
    tx.finish()?;
    Ok(bytes)
}

/// [`load_bytes`] inside a transaction the caller holds.
pub(crate) fn read_bytes(conn: &Connection, doc_id: DocId) -> Result<Option<Vec<u8>>> {
    let key = doc_id.to_string();
    let row = conn
        .prepare_cached("SELECT snapshot, chunks_len FROM documents WHERE doc_id = ?1")?
        .query_row([&key], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
        })
        .optional()?;
    let Some((mut bytes, chunks_len)) = row else {
        return Ok(None);
    };
    if chunks_len > 0 {
        bytes.reserve(chunks_len as usize);
        let mut stmt =
            conn.prepare_cached("SELECT data FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
        let mut rows = stmt.query([&key])?;
        while let Some(row) = rows.next()? {
            bytes.extend_from_slice(row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?);
        }
    }
    Ok(Some(bytes))
}

/// Loads a stored document with its attributes, or `None` if the server has
/// no such document.
pub(crate) fn load(conn: &mut Connection, doc_id: DocId) -> Result<Option<(Automerge, DocRow)>> {
    let tx = conn.transaction()?;
    let Some(bytes) = read_bytes(&tx, doc_id)? else {
        return Ok(None);
    };
    let row = row(&tx, doc_id)?.ok_or_else(|| Error::CorruptDocument {
        doc: doc_id,
        reason: "row vanished".into(),
    })?;
    tx.finish()?;
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
    subject_member, creator_device, heads, change_seq";

type RawRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<u8>,
    i64,
);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn parse_row(raw: RawRow) -> Result<DocRow> {
    let (doc_id, kind, branch, shared, owner, submitter, subject, creator, heads, seq) = raw;
    let shared: Vec<String> = serde_json::from_str(&shared)
        .map_err(|e| Error::Corrupt(format!("shared_with of {doc_id}: {e}")))?;
    Ok(DocRow {
        doc_id: parse_id(&doc_id)?,
        attrs: DocAttributes {
            kind,
            branch: parse_id(&branch)?,
            shared_with: shared.iter().map(|b| parse_id(b)).collect::<Result<_>>()?,
            owner: parse_opt_id(owner)?,
            submitter: parse_opt_id(submitter)?,
            subject: parse_opt_id(subject)?,
            creator: parse_opt_id(creator)?,
        },
        heads: decode_heads(&heads)?,
        seq,
    })
}

/// One document's row.
pub(crate) fn row(conn: &Connection, doc_id: DocId) -> Result<Option<DocRow>> {
    conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM documents WHERE doc_id = ?1"
    ))?
    .query_row([doc_id.to_string()], raw_row)
    .optional()?
    .map(parse_row)
    .transpose()
}

/// Every document written at a position after `after`, in write order.
pub(crate) fn rows_since(conn: &Connection, after: i64) -> Result<Vec<DocRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM documents WHERE change_seq > ?1 ORDER BY change_seq"
    ))?;
    let rows = stmt.query_map([after], raw_row)?;
    rows.map(|raw| parse_row(raw?)).collect()
}

/// Every document id, in ascending order.
pub(crate) fn ids(conn: &Connection) -> Result<Vec<DocId>> {
    let mut stmt = conn.prepare("SELECT doc_id FROM documents ORDER BY doc_id")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|id| parse_id(&id?)).collect()
}

/// Rewrites the snapshot of one document whose chunks outgrew it (skipping
/// ids in `skip`), in its own transaction.
pub(crate) fn compact_one(conn: &mut Connection, skip: &HashSet<String>) -> CompactOutcome {
    match try_compact_one(conn, skip) {
        Ok(Some(_)) => CompactOutcome::Compacted,
        Ok(None) => CompactOutcome::Nothing,
        Err((doc, e)) => {
            tracing::error!(doc = %doc, error = %e, "compaction failed");
            CompactOutcome::Failed(doc)
        }
    }
}

fn try_compact_one(
    conn: &mut Connection,
    skip: &HashSet<String>,
) -> std::result::Result<Option<String>, (String, Error)> {
    let candidates: Vec<String> = (|| -> Result<Vec<String>> {
        let mut stmt = conn.prepare_cached(
            "SELECT doc_id FROM documents WHERE chunks_len > snapshot_len LIMIT 64",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })()
    .map_err(|e| (String::new(), e))?;
    let Some(key) = candidates.into_iter().find(|id| !skip.contains(id)) else {
        return Ok(None);
    };
    let fail = |e: Error| (key.clone(), e);
    let doc_id: DocId = parse_id(&key).map_err(fail)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| fail(e.into()))?;
    let bytes = read_bytes(&tx, doc_id)
        .map_err(fail)?
        .ok_or_else(|| fail(Error::Corrupt("vanished".into())))?;
    let snapshot =
        parsed(doc_id, "compaction", || Ok(Automerge::load(&bytes)?.save())).map_err(fail)?;
    (|| -> Result<()> {
        tx.execute("DELETE FROM doc_chunks WHERE doc_id = ?1", [&key])?;
        tx.execute(
            "UPDATE documents SET snapshot = ?2, snapshot_len = ?3, chunks_len = 0
             WHERE doc_id = ?1",
            params![key, snapshot, snapshot.len() as i64],
        )?;
        Ok(())
    })()
    .map_err(fail)?;
    tx.commit().map_err(|e| fail(e.into()))?;
    tracing::debug!(doc = %key, bytes = snapshot.len(), "compacted");
    Ok(Some(key))
}

/// Saves the sync state of `(device, doc)`.
pub(crate) fn save_sync_state(
    conn: &Connection,
    device: DeviceId,
    doc: DocId,
    state: &[u8],
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sync_states (device_id, doc_id, state, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (device_id, doc_id) DO UPDATE SET state = excluded.state,
             updated_at_ms = excluded.updated_at_ms",
    )?
    .execute(params![
        device.to_string(),
        doc.to_string(),
        state,
        db::now_ms()
    ])?;
    Ok(())
}

/// The saved sync state of `(device, doc)`.
pub(crate) fn sync_state(
    conn: &Connection,
    device: DeviceId,
    doc: DocId,
) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT state FROM sync_states WHERE device_id = ?1 AND doc_id = ?2")?
        .query_row(params![device.to_string(), doc.to_string()], |r| r.get(0))
        .optional()?)
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
            if let Some(shared) = read_map(doc, activity::paths::SHARED_WITH) {
                let mut partners: Vec<BranchId> = doc
                    .keys(&shared)
                    .filter(|key| {
                        matches!(doc.get(&shared, key.as_str()), Ok(Some((Value::Scalar(v), _))) if v.as_bool() == Some(true))
                    })
                    .filter_map(|key| key.parse().ok())
                    .collect();
                partners.sort();
                partners.dedup();
                attrs.shared_with = partners;
            }
        }
        DocClass::Petition => {
            attrs.owner = read_member(doc, petition::paths::OWNER);
            attrs.submitter = read_member(doc, petition::paths::SUBMITTER_MEMBER);
        }
        DocClass::MemberFile => attrs.subject = read_member(doc, member_file::paths::MEMBER),
        DocClass::BranchProfile
        | DocClass::Roster
        | DocClass::FeedbackBox
        | DocClass::FeedbackDrafts
        | DocClass::Other => {}
    }
    attrs
}

/// The lowest-id document of `kind` in `branch` other than `except`.
pub(crate) fn first_of_kind(
    conn: &Connection,
    branch: BranchId,
    kind: &str,
    except: DocId,
) -> Result<Option<DocId>> {
    let found: Option<String> = conn
        .prepare_cached(
            "SELECT doc_id FROM documents WHERE branch_id = ?1 AND kind = ?2 AND doc_id != ?3
             ORDER BY doc_id LIMIT 1",
        )?
        .query_row(
            rusqlite::params![branch.to_string(), kind, except.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    found.map(|id| parse_id(&id)).transpose()
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
