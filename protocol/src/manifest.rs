//! The manifest digest: a short summary of a set of documents and their
//! heads, so two sides can tell whether they agree without listing
//! everything.
//!
//! # Definition
//!
//! Each document contributes an *entry digest*:
//!
//! ```text
//! entry_digest(doc, heads) = SHA-256("branchline/manifest-entry/1" || doc (16 bytes)
//!                                    || heads[0] || heads[1] || … (32 bytes each, sorted))
//! ```
//!
//! The digest of a set of documents is the XOR of their entry digests (all
//! zeros for the empty set), sent together with the number of documents.
//! The document kind is not part of the digest: it never changes for a
//! given document, so it cannot tell two replicas apart.
//!
//! XOR makes the digest independent of the order documents are visited in,
//! and lets it be kept up to date incrementally (a document whose heads
//! move from `a` to `b` changes the digest by `entry(a) ^ entry(b)`). It
//! also means the digest of a range is the XOR of the digests of its
//! sub-ranges, which is what lets [`crate::Message::ManifestRanges`] narrow
//! a difference down step by step. XOR would let the same entry counted
//! twice cancel out, which is why the document count travels with it.
//! This is a check between honest replicas, not a defence against a
//! malicious peer; access control is the server's job.

use std::collections::BTreeMap;
use std::ops::Bound;

use sha2::{Digest as _, Sha256};

use crate::ids::{DocId, Heads};
use crate::message::{ManifestEntry, Message, RangeSummary};

/// How many sub-ranges a differing range is split into at each step.
pub const FANOUT: usize = 16;

/// A differing range holding at most this many documents (on the answering
/// side) is listed in full instead of split further.
pub const LEAF_SIZE: u64 = 32;

/// The most ranges one [`Message::ManifestRanges`] request may hold; an
/// honest client never needs more than a few hundred, and the cap bounds
/// the work one request can ask of the server.
pub const MAX_RANGES_PER_REQUEST: usize = 4096;

/// Separates entry digests from any other SHA-256 use, and names the
/// definition's version so it can change without ambiguity.
const ENTRY_DOMAIN: &[u8] = b"branchline/manifest-entry/1";

/// The entry digest of one document with these heads.
pub fn entry_digest(doc_id: DocId, heads: &Heads) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(ENTRY_DOMAIN);
    hasher.update(doc_id.as_bytes());
    for hash in heads.as_slice() {
        hasher.update(hash);
    }
    hasher.finalize().into()
}

/// A running count and digest over a set of documents.
///
/// Build one per scope (or per range) by [`add`](Self::add)ing each
/// document; the result is what [`crate::Message::ManifestDigest`] and
/// [`crate::RangeSummary`] carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ManifestTally {
    doc_count: u64,
    digest: [u8; 32],
}

impl ManifestTally {
    /// The tally of no documents: count zero, digest all zeros.
    pub const EMPTY: Self = Self {
        doc_count: 0,
        digest: [0; 32],
    };

    /// How many documents have been added.
    pub const fn doc_count(&self) -> u64 {
        self.doc_count
    }

    /// The XOR of the entry digests of every document added.
    pub const fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Counts one document with these heads.
    ///
    /// Each document must be added at most once; use
    /// [`replace`](Self::replace) when its heads change.
    pub fn add(&mut self, doc_id: DocId, heads: &Heads) {
        self.doc_count += 1;
        xor_into(&mut self.digest, &entry_digest(doc_id, heads));
    }

    /// Takes away a document previously added with exactly these heads.
    pub fn remove(&mut self, doc_id: DocId, heads: &Heads) {
        debug_assert!(self.doc_count > 0, "removing from an empty tally");
        self.doc_count = self.doc_count.saturating_sub(1);
        xor_into(&mut self.digest, &entry_digest(doc_id, heads));
    }

    /// Updates a document already counted whose heads moved from `old` to
    /// `new`.
    pub fn replace(&mut self, doc_id: DocId, old: &Heads, new: &Heads) {
        xor_into(&mut self.digest, &entry_digest(doc_id, old));
        xor_into(&mut self.digest, &entry_digest(doc_id, new));
    }

    /// Combines the tally of a disjoint set of documents into this one,
    /// e.g. two adjacent ranges into the range that spans both.
    pub fn merge(&mut self, other: &Self) {
        self.doc_count += other.doc_count;
        xor_into(&mut self.digest, &other.digest);
    }
}

impl<'a> FromIterator<(DocId, &'a Heads)> for ManifestTally {
    fn from_iter<I: IntoIterator<Item = (DocId, &'a Heads)>>(entries: I) -> Self {
        let mut tally = Self::EMPTY;
        for (doc_id, heads) in entries {
            tally.add(doc_id, heads);
        }
        tally
    }
}

/// Splits the id range `[start, end)` (`end == None`: to the end of the id
/// space) into [`FANOUT`] adjacent sub-ranges of (nearly) equal width, or
/// `None` if it holds fewer than [`FANOUT`] ids and cannot be split.
///
/// Ids are compared as 128-bit big-endian numbers, which is also their
/// byte order, so sub-ranges come out in ascending order.
pub fn split(start: DocId, end: Option<DocId>) -> Option<Vec<(DocId, Option<DocId>)>> {
    let lo = u128::from_be_bytes(*start.as_bytes());
    // The last id in the range, so the width of the whole space (2^128)
    // never has to be represented.
    let last = match end {
        Some(end) => u128::from_be_bytes(*end.as_bytes()).checked_sub(1)?,
        None => u128::MAX,
    };
    let span_minus_one = last.checked_sub(lo)?;
    let fanout = FANOUT as u128;
    // floor(span / FANOUT), computed from span - 1 without overflow.
    let step = span_minus_one / fanout + u128::from(span_minus_one % fanout == fanout - 1);
    if step == 0 {
        return None;
    }
    let bound = |i: u128| DocId::from_bytes((lo + i * step).to_be_bytes());
    Some(
        (0..fanout)
            .map(|i| {
                (
                    bound(i),
                    if i + 1 == fanout {
                        end
                    } else {
                        Some(bound(i + 1))
                    },
                )
            })
            .collect(),
    )
}

/// One side's documents and their heads, ready to summarise and compare
/// range by range.
///
/// Each document's entry digest is computed once, when it is inserted, so
/// summarising a range costs one XOR per document in it.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    entries: BTreeMap<DocId, (ManifestEntry, [u8; 32])>,
}

impl Manifest {
    /// An empty manifest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a document, or replaces its entry; returns the entry it replaced.
    pub fn insert(&mut self, entry: ManifestEntry) -> Option<ManifestEntry> {
        let digest = entry_digest(entry.doc_id, &entry.heads);
        self.entries
            .insert(entry.doc_id, (entry, digest))
            .map(|(old, _)| old)
    }

    /// Removes a document; returns its entry if it was there.
    pub fn remove(&mut self, doc_id: DocId) -> Option<ManifestEntry> {
        self.entries.remove(&doc_id).map(|(entry, _)| entry)
    }

    /// The entry of one document.
    pub fn get(&self, doc_id: DocId) -> Option<&ManifestEntry> {
        self.entries.get(&doc_id).map(|(entry, _)| entry)
    }

    /// How many documents the manifest holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the manifest holds no documents.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in ascending order of id.
    pub fn iter(&self) -> impl Iterator<Item = &ManifestEntry> {
        self.entries.values().map(|(entry, _)| entry)
    }

    /// The tally of every document.
    pub fn tally(&self) -> ManifestTally {
        self.tally_range(DocId::MIN, None)
    }

    /// The [`Message::ManifestDigest`] of every document.
    pub fn digest_message(&self) -> Message {
        let tally = self.tally();
        Message::ManifestDigest {
            doc_count: tally.doc_count(),
            digest: tally.digest(),
        }
    }

    /// The tally of the documents in `[start, end)`.
    pub fn tally_range(&self, start: DocId, end: Option<DocId>) -> ManifestTally {
        let mut tally = ManifestTally::EMPTY;
        for (_, digest) in self.range(start, end) {
            tally.doc_count += 1;
            xor_into(&mut tally.digest, digest);
        }
        tally
    }

    /// The entries in `[start, end)`, in ascending order of id.
    pub fn entries_in(
        &self,
        start: DocId,
        end: Option<DocId>,
    ) -> impl Iterator<Item = &ManifestEntry> {
        self.range(start, end).map(|(entry, _)| entry)
    }

    /// The summary of `[start, end)`.
    pub fn summary(&self, start: DocId, end: Option<DocId>) -> RangeSummary {
        let tally = self.tally_range(start, end);
        RangeSummary {
            start,
            end,
            doc_count: tally.doc_count(),
            digest: tally.digest(),
        }
    }

    /// The summaries of several ranges, in the order given.
    pub fn summaries(&self, ranges: &[(DocId, Option<DocId>)]) -> Vec<RangeSummary> {
        ranges
            .iter()
            .map(|&(start, end)| self.summary(start, end))
            .collect()
    }

    /// The answer to a [`Message::ManifestRanges`] request holding the
    /// requester's summaries: for each range whose summary differs from
    /// ours, either a [`Message::ManifestEntries`] listing all our
    /// documents there (at most [`LEAF_SIZE`] of them, or a range too
    /// small to split) or our summaries of its [`FANOUT`] sub-ranges; then
    /// one [`Message::ManifestRanges`] with all those sub-range summaries,
    /// which ends the answer. Ranges that agree get nothing.
    ///
    /// A range with `end <= start` holds no ids and is compared as empty,
    /// so no request, however odd, can make this panic.
    pub fn respond(&self, request: &[RangeSummary]) -> Vec<Message> {
        let mut answer = Vec::new();
        let mut sub_ranges = Vec::new();
        for theirs in request {
            let ours = self.summary(theirs.start, theirs.end);
            if ours.doc_count == theirs.doc_count && ours.digest == theirs.digest {
                continue;
            }
            let parts = if ours.doc_count > LEAF_SIZE {
                split(theirs.start, theirs.end)
            } else {
                None
            };
            match parts {
                Some(parts) => sub_ranges.extend(self.summaries(&parts)),
                None => answer.push(Message::ManifestEntries {
                    start: theirs.start,
                    end: theirs.end,
                    entries: self.entries_in(theirs.start, theirs.end).cloned().collect(),
                }),
            }
        }
        answer.push(Message::ManifestRanges { ranges: sub_ranges });
        answer
    }

    fn range(
        &self,
        start: DocId,
        end: Option<DocId>,
    ) -> impl Iterator<Item = &(ManifestEntry, [u8; 32])> {
        // BTreeMap::range panics on an inverted range, so an inverted range
        // becomes the empty range [start, start).
        let upper = match end {
            Some(end) => Bound::Excluded(end.max(start)),
            None => Bound::Unbounded,
        };
        self.entries
            .range((Bound::Included(start), upper))
            .map(|(_, value)| value)
    }
}

impl FromIterator<ManifestEntry> for Manifest {
    fn from_iter<I: IntoIterator<Item = ManifestEntry>>(entries: I) -> Self {
        let mut manifest = Self::new();
        for entry in entries {
            manifest.insert(entry);
        }
        manifest
    }
}

fn xor_into(acc: &mut [u8; 32], other: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a ^= b;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use proptest::prelude::*;

    fn doc(n: u8) -> DocId {
        DocId::from_bytes([n; 16])
    }

    #[test]
    fn entry_digest_is_pinned() {
        // A change to this value changes every digest on the wire, so the
        // definition in the module docs must change (and be versioned) too.
        // Expected value computed independently, with Python's hashlib:
        // sha256(b"branchline/manifest-entry/1" + bytes([1]*16)
        //        + bytes([2]*32) + bytes([3]*32)).hexdigest()
        let digest = entry_digest(doc(1), &Heads::new(vec![[3; 32], [2; 32]]));
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "f1b56bb640778a10ecbfe712ea8fdd024c5a8d2fe6f8676c3cb1f73d8d153c69"
        );
    }

    #[test]
    fn entry_digest_depends_on_doc_and_heads() {
        let heads = Heads::new(vec![[7; 32]]);
        assert_ne!(entry_digest(doc(1), &heads), entry_digest(doc(2), &heads));
        assert_ne!(
            entry_digest(doc(1), &heads),
            entry_digest(doc(1), &Heads::default())
        );
        assert_eq!(heads.digest(doc(1)), entry_digest(doc(1), &heads));
    }

    #[test]
    fn empty_tally_is_zero() {
        let tally: ManifestTally = std::iter::empty().collect();
        assert_eq!(tally, ManifestTally::EMPTY);
        assert_eq!(tally.digest(), [0; 32]);
    }

    #[test]
    fn replace_equals_remove_then_add() {
        let (old, new) = (Heads::new(vec![[1; 32]]), Heads::new(vec![[2; 32]]));
        let mut replaced = ManifestTally::EMPTY;
        replaced.add(doc(5), &old);
        replaced.add(doc(6), &old);
        let mut rebuilt = replaced;
        replaced.replace(doc(5), &old, &new);
        rebuilt.remove(doc(5), &old);
        rebuilt.add(doc(5), &new);
        assert_eq!(replaced, rebuilt);
        assert_eq!(replaced.doc_count(), 2);
    }

    fn arb_entries() -> impl Strategy<Value = Vec<(DocId, Heads)>> {
        prop::collection::btree_map(
            any::<[u8; 16]>().prop_map(DocId::from_bytes),
            prop::collection::vec(any::<[u8; 32]>(), 0..3).prop_map(Heads::new),
            0..20,
        )
        .prop_map(|entries| entries.into_iter().collect())
    }

    #[test]
    fn split_of_the_whole_space_follows_the_first_nibble() {
        let parts = split(DocId::MIN, None).unwrap();
        assert_eq!(parts.len(), FANOUT);
        assert_eq!(parts[0].0, DocId::MIN);
        for (i, (start, end)) in parts.iter().enumerate() {
            assert_eq!(start.as_bytes()[0], (i as u8) << 4);
            assert!(start.as_bytes()[1..].iter().all(|&b| b == 0));
            match end {
                Some(end) => assert_eq!(*end, parts[i + 1].0),
                None => assert_eq!(i, FANOUT - 1),
            }
        }
    }

    #[test]
    fn tiny_and_inverted_ranges_do_not_split_or_panic() {
        let at = |n: u128| DocId::from_bytes(n.to_be_bytes());
        assert!(split(at(10), Some(at(25))).is_none(), "15 ids");
        assert_eq!(split(at(10), Some(at(26))).unwrap().len(), FANOUT);
        assert!(split(at(10), Some(at(10))).is_none());
        assert!(split(at(10), Some(at(3))).is_none());
        assert!(split(DocId::MAX, None).is_none());

        let manifest: Manifest = [entry(at(12), 1)].into_iter().collect();
        assert_eq!(
            manifest.tally_range(at(20), Some(at(5))),
            ManifestTally::EMPTY
        );
        assert_eq!(
            manifest.tally_range(at(12), Some(at(12))),
            ManifestTally::EMPTY
        );
        let odd = RangeSummary {
            start: at(20),
            end: Some(at(5)),
            doc_count: 3,
            digest: [9; 32],
        };
        let answer = manifest.respond(&[odd]);
        assert!(
            matches!(&answer[0], Message::ManifestEntries { entries, .. } if entries.is_empty())
        );
    }

    fn entry(doc_id: DocId, version: u8) -> ManifestEntry {
        ManifestEntry {
            doc_id,
            kind: "activity".to_owned(),
            heads: Heads::new(vec![[version; 32]]),
        }
    }

    /// Runs the client side of the range refinement against `server`, as
    /// the sync design describes, and returns the documents found to
    /// differ and the number of round trips after the digest exchange.
    fn reconcile(client: &Manifest, server: &Manifest) -> (BTreeSet<DocId>, usize) {
        let mut differ = BTreeSet::new();
        if client.tally() == server.tally() {
            return (differ, 0);
        }
        let mut request = client.summaries(&split(DocId::MIN, None).unwrap());
        let mut round_trips = 0;
        while !request.is_empty() {
            round_trips += 1;
            let mut next = Vec::new();
            for message in server.respond(&request) {
                match message {
                    Message::ManifestEntries {
                        start,
                        end,
                        entries,
                    } => {
                        let listed: BTreeSet<DocId> = entries.iter().map(|e| e.doc_id).collect();
                        for theirs in &entries {
                            if client.get(theirs.doc_id).map(|e| &e.heads) != Some(&theirs.heads) {
                                differ.insert(theirs.doc_id);
                            }
                        }
                        differ.extend(
                            client
                                .entries_in(start, end)
                                .map(|e| e.doc_id)
                                .filter(|id| !listed.contains(id)),
                        );
                    }
                    Message::ManifestRanges { ranges } => {
                        for theirs in ranges {
                            let ours = client.summary(theirs.start, theirs.end);
                            if ours != theirs {
                                next.push(ours);
                            }
                        }
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            request = next;
        }
        (differ, round_trips)
    }

    fn arb_manifest_pair() -> impl Strategy<Value = (Manifest, Manifest, BTreeSet<DocId>)> {
        // Shared documents, some with other heads on one side, plus
        // documents only one side has.
        (
            prop::collection::btree_set(any::<[u8; 16]>().prop_map(DocId::from_bytes), 0..400),
            prop::collection::vec(0u8..4, 400),
        )
            .prop_map(|(ids, fates)| {
                let (mut client, mut server, mut differ) =
                    (Manifest::new(), Manifest::new(), BTreeSet::new());
                for (id, fate) in ids.into_iter().zip(fates) {
                    match fate {
                        0 => {
                            client.insert(entry(id, 1));
                            server.insert(entry(id, 1));
                        }
                        1 => {
                            client.insert(entry(id, 1));
                            server.insert(entry(id, 2));
                            differ.insert(id);
                        }
                        2 => {
                            client.insert(entry(id, 1));
                            differ.insert(id);
                        }
                        _ => {
                            server.insert(entry(id, 1));
                            differ.insert(id);
                        }
                    }
                }
                (client, server, differ)
            })
    }

    #[test]
    fn one_change_among_a_thousand_is_found_in_a_few_small_round_trips() {
        let ids: Vec<DocId> = (0..1000u32)
            .map(|n| DocId::from_bytes(Sha256::digest(n.to_be_bytes())[..16].try_into().unwrap()))
            .collect();
        let server: Manifest = ids.iter().map(|&id| entry(id, 1)).collect();
        let mut client = server.clone();
        client.insert(entry(ids[500], 2));
        let (differ, round_trips) = reconcile(&client, &server);
        assert_eq!(differ, BTreeSet::from([ids[500]]));
        assert!(round_trips <= 2, "{round_trips} round trips");
    }

    proptest! {
        #[test]
        fn refinement_finds_exactly_the_documents_that_differ(
            (client, server, differ) in arb_manifest_pair()
        ) {
            let (found, _) = reconcile(&client, &server);
            prop_assert_eq!(found, differ);
        }

        #[test]
        fn tally_ignores_order_and_splits_at_any_point(
            entries in arb_entries(),
            split in any::<prop::sample::Index>(),
        ) {
            let whole: ManifestTally = entries.iter().map(|(d, h)| (*d, h)).collect();
            let reversed: ManifestTally = entries.iter().rev().map(|(d, h)| (*d, h)).collect();
            prop_assert_eq!(whole, reversed);

            let at = split.index(entries.len() + 1);
            let mut left: ManifestTally = entries[..at].iter().map(|(d, h)| (*d, h)).collect();
            let right: ManifestTally = entries[at..].iter().map(|(d, h)| (*d, h)).collect();
            left.merge(&right);
            prop_assert_eq!(left, whole);
            prop_assert_eq!(whole.doc_count(), entries.len() as u64);
        }

        #[test]
        fn removing_everything_returns_to_empty(entries in arb_entries()) {
            let mut tally: ManifestTally = entries.iter().map(|(d, h)| (*d, h)).collect();
            for (doc_id, heads) in &entries {
                tally.remove(*doc_id, heads);
            }
            prop_assert_eq!(tally, ManifestTally::EMPTY);
        }
    }
}
