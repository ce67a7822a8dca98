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

use sha2::{Digest as _, Sha256};

use crate::ids::{DocId, Heads};

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

fn xor_into(acc: &mut [u8; 32], other: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a ^= b;
    }
}

#[cfg(test)]
mod tests {
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

    proptest! {
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
