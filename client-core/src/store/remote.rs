//! What the store does for the sync engine: per-document sync states, the manifest,
//! and applying and generating automerge sync messages.
//!
//! Received changes go through the same incremental save path as local edits
//! (chunks, compaction, index, conflicts), in one transaction with the sync state
//! they advanced, marked as remote so they never count as unacknowledged.
//!
//! Changes that cannot be stored yet are kept in `sync_pending` as the raw chunks
//! they arrived in: the changes of a new document whose header has not arrived, and
//! changes whose dependencies are missing (automerge queues those in memory, and the
//! document is loaded afresh for every message). They are replayed into the document
//! each time it is loaded for sync, and dropped once everything applied.
//!
//! Every automerge call over what the server sent runs through [`contain`]: a
//! panic inside automerge becomes [`Error::Corrupt`] for that document, like
//! bytes automerge refuses, instead of ending the sync task. What the call was
//! working on is then thrown away: documents loaded here are copies (the cache
//! hands out clones), and the transaction is rolled back.

use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, AutoCommit, ChangeHash};
use branchline_protocol::manifest::Manifest;
use branchline_protocol::{Heads, ManifestEntry};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::cache::DocCache;
use super::{Loaded, Origin, Store, decode_heads, insert_document, insert_saved, load, save};
use crate::error::{Error, Result};
use crate::ids::DocId;
use crate::model::{self, Meta};

/// What applying one received sync message did to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The document's heads afterwards (empty if it is not stored yet).
    pub heads: Vec<ChangeHash>,
    /// New changes were stored.
    pub changed: bool,
    /// The document was new here and is now stored.
    pub created: bool,
    /// Some received changes could not be stored yet (no header, or missing
    /// dependencies) and are kept until the rest arrives.
    pub pending: bool,
}

/// Automerge change hashes as wire heads.
pub(crate) fn wire_heads(heads: &[ChangeHash]) -> Heads {
    heads.iter().map(|h| h.0).collect()
}

/// Wire heads as automerge change hashes.
pub(crate) fn change_hashes(heads: &Heads) -> Vec<ChangeHash> {
    heads.as_slice().iter().map(|h| ChangeHash(*h)).collect()
}

/// A document loaded for sync: stored already, or known so far only from changes
/// received (possibly none).
enum Replica {
    Stored(Loaded),
    New(AutoCommit),
}

impl Replica {
    fn doc(&mut self) -> &mut AutoCommit {
        match self {
            Replica::Stored(loaded) => &mut loaded.doc,
            Replica::New(doc) => doc,
        }
    }
}

/// Runs `call`, an automerge call over data the server sent for document `id`,
/// turning a panic into [`Error::Corrupt`]. The caller must drop whatever `call`
/// mutated when this fails: after a panic it may be half-changed.
fn contain<T>(id: DocId, what: &str, call: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(call)).map_err(|_| {
        tracing::warn!(doc = %id, "automerge panicked {what}");
        Error::Corrupt(format!("{id}: automerge panicked {what}"))
    })
}

/// Loads document `id` as the store has it, or an empty one if it has none.
fn load_stored(conn: &Connection, cache: &DocCache, id: DocId, actor: ActorId) -> Result<Replica> {
    match load(conn, cache, id, Some(actor.clone())) {
        Ok(loaded) => Ok(Replica::Stored(loaded)),
        Err(Error::DocNotFound(_)) => Ok(Replica::New(AutoCommit::new().with_actor(actor))),
        Err(e) => Err(e),
    }
}

/// Loads document `id` as the store has it plus any pending changes; returns whether
/// there were pending changes.
fn load_replica(
    conn: &Connection,
    cache: &DocCache,
    id: DocId,
    actor: ActorId,
) -> Result<(Replica, bool)> {
    let mut replica = load_stored(conn, cache, id, actor.clone())?;
    let pending = pending_chunks(conn, id)?;
    for chunk in &pending {
        // Each chunk loaded once already, when it arrived.
        match contain(id, "replaying pending changes", || {
            replica.doc().load_incremental(chunk)
        }) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(doc = %id, error = %e, "pending changes no longer load");
            }
            Err(_) => {
                // The replay may have left the document half-changed: go on
                // from what is stored, without the pending changes. The server
                // sends them again, as the heads this device announces lack them.
                replica = load_stored(conn, cache, id, actor)?;
                break;
            }
        }
    }
    Ok((replica, !pending.is_empty()))
}

fn pending_chunks(conn: &Connection, id: DocId) -> Result<Vec<Vec<u8>>> {
    let mut stmt =
        conn.prepare_cached("SELECT data FROM sync_pending WHERE doc_id = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([id.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn add_pending(tx: &Transaction, id: DocId, chunks: &[Vec<u8>]) -> Result<()> {
    let key = id.to_string();
    let next: i64 = tx.query_row(
        "SELECT coalesce(max(seq) + 1, 0) FROM sync_pending WHERE doc_id = ?1",
        [&key],
        |r| r.get(0),
    )?;
    let mut stmt =
        tx.prepare_cached("INSERT INTO sync_pending (doc_id, seq, data) VALUES (?1, ?2, ?3)")?;
    for (seq, chunk) in (next..).zip(chunks) {
        stmt.execute(params![key, seq, chunk])?;
    }
    Ok(())
}

fn write_sync_state(tx: &Transaction, peer: &str, id: DocId, encoded: &[u8]) -> Result<()> {
    tx.execute(
        "INSERT INTO sync_states (peer, doc_id, state) VALUES (?1, ?2, ?3)
         ON CONFLICT (peer, doc_id) DO UPDATE SET state = excluded.state",
        params![peer, id.to_string(), encoded],
    )?;
    Ok(())
}

/// Refuses a stored document whose header received changes removed or altered.
fn check_header_kept(id: DocId, before: &Meta, doc: &AutoCommit) -> Result<()> {
    let refuse = |reason: String| Error::InvalidHeader { doc: id, reason };
    let after = model::read_meta(doc).map_err(|e| refuse(e.to_string()))?;
    if after.kind != before.kind || after.branch != before.branch || after.id != before.id {
        return Err(refuse(format!(
            "the header would change from {} of branch {} to {} {} of branch {}",
            before.kind, before.branch, after.kind, after.id, after.branch
        )));
    }
    Ok(())
}

/// Checks the header of a document about to enter the store from a sync.
fn check_new_header(id: DocId, kind_hint: Option<&str>, meta: &Meta) -> Result<()> {
    let refuse = |reason: String| Error::InvalidHeader { doc: id, reason };
    if meta.id != id {
        return Err(refuse(format!("it names itself {}", meta.id)));
    }
    if let Some(kind) = kind_hint
        && kind != meta.kind
    {
        return Err(refuse(format!("listed as a {kind}, it is a {}", meta.kind)));
    }
    Ok(())
}

impl Store {
    /// The persisted sync state with `peer` for document `id`: decoded, or a fresh
    /// one if there is none (or it no longer decodes).
    pub fn sync_state(&self, peer: &str, id: DocId) -> Result<sync::State> {
        let stored: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT state FROM sync_states WHERE peer = ?1 AND doc_id = ?2")?
            .query_row(params![peer, id.to_string()], |r| r.get(0))
            .optional()?;
        Ok(match stored {
            Some(bytes) => sync::State::decode(&bytes).unwrap_or_else(|e| {
                tracing::warn!(doc = %id, error = %e, "stored sync state unreadable; starting afresh");
                sync::State::new()
            }),
            None => sync::State::new(),
        })
    }

    /// Persists the sync state with `peer` for document `id` (what
    /// [`sync::State::encode`] keeps: the heads both sides are known to share).
    pub fn save_sync_state(&mut self, peer: &str, id: DocId, state: &sync::State) -> Result<()> {
        self.replayable(|conn, _| {
            let tx = conn.transaction()?;
            write_sync_state(&tx, peer, id, &state.encode())?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Every stored document with its kind and heads, read from the document table
    /// without loading any document.
    pub fn manifest(&self) -> Result<Manifest> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT doc_id, kind, heads FROM documents")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (id, kind, heads) = row?;
            Ok(ManifestEntry {
                doc_id: id.parse::<DocId>()?.into(),
                kind,
                heads: wire_heads(&decode_heads(&heads)?),
            })
        })
        .collect()
    }

    /// The stored heads of document `id`, or `None` if the store does not have it.
    pub fn heads(&self, id: DocId) -> Result<Option<Vec<ChangeHash>>> {
        let heads: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT heads FROM documents WHERE doc_id = ?1")?
            .query_row([id.to_string()], |r| r.get(0))
            .optional()?;
        heads.map(|h| decode_heads(&h)).transpose()
    }

    /// Documents with local changes no server has acknowledged yet.
    pub fn unacknowledged(&self) -> Result<Vec<DocId>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT doc_id FROM unacked_changes ORDER BY doc_id")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|id| id?.parse()).collect()
    }

    /// The next automerge sync message for document `id`, or `None` if there is
    /// nothing to say. Works for a document the store does not have (yet): it then
    /// speaks for an empty document, asking for everything.
    pub fn generate_sync_message(
        &self,
        id: DocId,
        state: &mut sync::State,
    ) -> Result<Option<sync::Message>> {
        let (mut replica, _) = load_replica(&self.conn, &self.docs, id, self.actor())?;
        // On a copy, so a panic halfway leaves `state` as it was.
        let mut next = state.clone();
        let message = contain(id, "generating a sync message", || {
            replica.doc().sync().generate_sync_message(&mut next)
        })?;
        *state = next;
        Ok(message)
    }

    /// Applies a sync message received from `peer` for document `id`, and stores what
    /// changed, with the advanced sync state, in one transaction.
    ///
    /// A document new to the store is stored once its header has arrived; until then
    /// its changes are kept pending. `kind_hint` is the kind the server listed it as,
    /// if any; a new document of another kind is refused. Changes that would remove or
    /// alter an existing document's header are refused with
    /// [`Error::InvalidHeader`]; changes automerge cannot read with
    /// [`Error::Corrupt`]. When this fails, nothing was written and `state` is as it
    /// was.
    pub fn apply_sync_message(
        &mut self,
        peer: &str,
        id: DocId,
        kind_hint: Option<&str>,
        state: &mut sync::State,
        message: sync::Message,
    ) -> Result<Applied> {
        let actor = self.actor();
        self.replayable(|conn, docs| {
            let tx = conn.transaction()?;
            let (mut replica, had_pending) = load_replica(&tx, docs, id, actor)?;
            let chunks: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
            let state_before = state.encode();
            let mut next = state.clone();
            contain(id, "applying a sync message", || {
                replica
                    .doc()
                    .sync()
                    .receive_sync_message(&mut next, message)
            })?
            .map_err(|e| Error::Corrupt(format!("{id}: {e}")))?;
            let mut applied = Applied {
                heads: Vec::new(),
                changed: false,
                created: false,
                pending: false,
            };
            // Reading the header, saving and indexing all walk the received
            // changes too. A panic there leaves rows half-written in `tx`,
            // which is dropped (rolled back) by the early return.
            let waiting = contain(id, "storing received changes", || -> Result<bool> {
                let waiting = !replica.doc().get_missing_deps(&[]).is_empty();
                match &mut replica {
                    Replica::Stored(loaded) => {
                        check_header_kept(id, &loaded.meta, &loaded.doc)?;
                        applied.changed = save(&tx, docs, loaded, Origin::Remote)?;
                        applied.heads = loaded.stored.heads.clone();
                    }
                    Replica::New(doc) => match model::read_meta(doc) {
                        Ok(meta) => {
                            check_new_header(id, kind_hint, &meta)?;
                            insert_document(&tx, doc, Origin::Remote)?;
                            applied.heads = doc.get_heads();
                            applied.changed = true;
                            applied.created = true;
                        }
                        // Changes without a header (or no changes at all) so far.
                        Err(_) => applied.pending = !doc.is_empty(),
                    },
                }
                Ok(waiting)
            })??;
            if waiting || applied.pending {
                add_pending(&tx, id, &chunks)?;
                applied.pending = true;
            } else if had_pending {
                tx.execute(
                    "DELETE FROM sync_pending WHERE doc_id = ?1",
                    [id.to_string()],
                )?;
            }
            let state_after = next.encode();
            if state_after != state_before {
                write_sync_state(&tx, peer, id, &state_after)?;
            }
            tx.commit()?;
            *state = next;
            Ok(applied)
        })
    }

    /// Stores documents received whole (the `Documents` bundles of a first sync),
    /// all in one transaction, so a first sync of hundreds of documents costs a few
    /// commits rather than one each.
    ///
    /// Each document is checked like one arriving through a sync: it must load, and
    /// its header must name `id` and, if the server listed it, that kind. One that
    /// fails is left out with its error and the others are stored. A document the
    /// store holds already is merged; any changes of it waiting for their
    /// dependencies are dropped, the whole document having them.
    pub fn receive_documents(
        &mut self,
        docs: Vec<(DocId, Option<&str>, Vec<u8>)>,
    ) -> Result<Vec<(DocId, Result<Applied>)>> {
        let actor = self.actor();
        self.replayable(|conn, cache| {
            let tx = conn.transaction()?;
            let mut results = Vec::with_capacity(docs.len());
            for (id, kind_hint, bytes) in docs {
                // Everything that can go wrong with one document is found before it
                // writes anything; an error while writing is the store's. Except a
                // panic in automerge while saving or indexing it: that is this
                // document's, so its rows alone are rolled back.
                let result = match whole(&tx, cache, id, kind_hint, &bytes, &actor) {
                    Ok(replica) => {
                        tx.execute_batch("SAVEPOINT whole_document")?;
                        match contain(id, "storing a received document", || {
                            store_whole(&tx, cache, id, replica, &bytes)
                        }) {
                            Ok(stored) => {
                                tx.execute_batch("RELEASE whole_document")?;
                                Ok(stored?)
                            }
                            Err(e) => {
                                tx.execute_batch(
                                    "ROLLBACK TO whole_document; RELEASE whole_document",
                                )?;
                                Err(e)
                            }
                        }
                    }
                    Err(e) => Err(e),
                };
                results.push((id, result));
            }
            tx.commit()?;
            Ok(results)
        })
    }
}

/// A document received whole, checked and ready to store: new, or merged into the
/// stored one.
fn whole(
    tx: &Connection,
    cache: &DocCache,
    id: DocId,
    kind_hint: Option<&str>,
    bytes: &[u8],
    actor: &ActorId,
) -> Result<Replica> {
    let mut incoming = contain(id, "loading a received document", || {
        AutoCommit::load(bytes)
    })?
    .map_err(|e| Error::Corrupt(format!("{id}: {e}")))?;
    let meta = contain(id, "reading a received document's header", || {
        model::read_meta(&incoming)
    })?
    .map_err(|e| Error::InvalidHeader {
        doc: id,
        reason: e.to_string(),
    })?;
    check_new_header(id, kind_hint, &meta)?;
    match load(tx, cache, id, Some(actor.clone())) {
        Ok(mut loaded) => {
            contain(id, "merging a received document", || {
                loaded.doc.merge(&mut incoming)?;
                check_header_kept(id, &loaded.meta, &loaded.doc)
            })??;
            Ok(Replica::Stored(loaded))
        }
        Err(Error::DocNotFound(_)) => {
            incoming.set_actor(actor.clone());
            Ok(Replica::New(incoming))
        }
        Err(e) => Err(e),
    }
}

/// Writes a document [`whole`] prepared.
/// `bytes` are what a new document was loaded from, stored as they are.
fn store_whole(
    tx: &Transaction,
    cache: &DocCache,
    id: DocId,
    replica: Replica,
    bytes: &[u8],
) -> Result<Applied> {
    tx.execute(
        "DELETE FROM sync_pending WHERE doc_id = ?1",
        [id.to_string()],
    )?;
    Ok(match replica {
        Replica::Stored(mut loaded) => Applied {
            changed: save(tx, cache, &mut loaded, Origin::Remote)?,
            heads: loaded.stored.heads,
            created: false,
            pending: false,
        },
        Replica::New(mut doc) => {
            insert_saved(tx, &mut doc, bytes, Origin::Remote)?;
            Applied {
                heads: doc.get_heads(),
                changed: true,
                created: true,
                pending: false,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_automerge_is_the_documents_corrupt_error() {
        let id = DocId::random();
        let error = contain(id, "applying a sync message", || -> u8 {
            panic!("automerge broke")
        })
        .unwrap_err();
        assert_eq!(error.code(), "doc.corrupt");
        assert!(error.to_string().contains(&id.to_string()), "{error}");
        assert_eq!(contain(id, "doing nothing", || 7).unwrap(), 7);
    }
}
