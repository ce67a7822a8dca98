//! The documents the store loaded or saved last, kept parsed.
//!
//! An edit and the sync that follows it touch one document several times in a row
//! (edit, first sync message, the server's answer, its acknowledgement), and
//! `AutoCommit::load` parses the whole history each time: for a long-lived activity
//! that is most of the cost of an edit. The cache keeps the last few documents parsed.
//!
//! An entry is used only while the document's row still says what it said when the
//! entry was made: the same heads, snapshot length, chunk bytes and next chunk. A write
//! that was rolled back, a compaction, or another connection's write therefore never
//! shows a stale document; it only makes the next load parse again.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use automerge::{AutoCommit, ChangeHash};

use crate::ids::DocId;

/// How many documents stay parsed.
const CAPACITY: usize = 8;

/// What a document's row says about its stored form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stored {
    pub(super) heads: Vec<ChangeHash>,
    pub(super) snapshot_len: usize,
    pub(super) chunks_len: usize,
    pub(super) next_chunk: i64,
}

/// See the [module docs](self).
#[derive(Default)]
pub(super) struct DocCache {
    /// Most recently used first.
    entries: Mutex<VecDeque<(DocId, Stored, AutoCommit)>>,
}

impl DocCache {
    /// A copy of document `id` if the cache holds it as `stored` describes.
    pub(super) fn get(&self, id: DocId, stored: &Stored) -> Option<AutoCommit> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let at = entries.iter().position(|(i, _, _)| *i == id)?;
        let entry = entries.remove(at)?;
        if entry.1 != *stored {
            return None;
        }
        let doc = entry.2.clone();
        entries.push_front(entry);
        Some(doc)
    }

    /// Remembers document `id` as stored now.
    pub(super) fn put(&self, id: DocId, stored: Stored, doc: &AutoCommit) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|(i, _, _)| *i != id);
        entries.push_front((id, stored, doc.clone()));
        entries.truncate(CAPACITY);
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable as _;

    use super::*;

    fn stored(n: usize) -> Stored {
        Stored {
            heads: Vec::new(),
            snapshot_len: n,
            chunks_len: 0,
            next_chunk: 0,
        }
    }

    #[test]
    fn an_entry_is_used_only_while_the_row_matches_and_the_oldest_goes_first() {
        let cache = DocCache::default();
        let mut doc = AutoCommit::new();
        doc.put(automerge::ROOT, "k", 1).unwrap();
        let id = DocId::random();
        cache.put(id, stored(10), &doc);
        assert!(cache.get(id, &stored(10)).is_some());
        assert!(cache.get(id, &stored(11)).is_none(), "the row changed");
        assert!(cache.get(id, &stored(10)).is_none(), "a mismatch drops it");
        cache.put(id, stored(10), &doc);
        for _ in 0..CAPACITY {
            cache.put(DocId::random(), stored(1), &doc);
        }
        assert!(cache.get(id, &stored(10)).is_none(), "pushed out");
    }
}
