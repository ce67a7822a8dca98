//! Bookkeeping for manifest reconciliation: which ranges each outstanding
//! `ManifestRanges` request asked about, and what has arrived of its answer.
//!
//! The server answers a request with a `ManifestEntries` for each range it lists,
//! then one `ManifestRanges` with the sub-range summaries of the ranges it split.
//! A range asked about that got neither matched our summary: its documents are at
//! the same heads on both sides, so their local changes are safe on the server.

use std::collections::HashSet;

use branchline_protocol::manifest::Manifest;
use branchline_protocol::{DocId as WireDocId, ManifestEntry, RangeSummary};

use crate::error::Result;
use crate::ids::DocId;
use crate::store::Store;

/// A range of document ids, `[start, end)`; `end == None` runs to the end of the space.
pub(super) type Range = (WireDocId, Option<WireDocId>);

/// True if `id` lies in `[start, end)`.
pub(super) fn in_range(id: WireDocId, start: WireDocId, end: Option<WireDocId>) -> bool {
    start <= id && end.is_none_or(|end| id < end)
}

/// True if the range `inner` lies within `outer`.
fn within(inner: &RangeSummary, (start, end): Range) -> bool {
    let ends_inside = match (inner.end, end) {
        (_, None) => true,
        (Some(inner_end), Some(end)) => inner_end <= end,
        (None, Some(_)) => false,
    };
    start <= inner.start && ends_inside
}

/// One `ManifestRanges` request the server has not finished answering.
pub(super) struct Request {
    ranges: Vec<Range>,
    /// Our documents in those ranges that had unacknowledged changes when we asked,
    /// at the heads our summaries counted.
    unacked: Vec<ManifestEntry>,
}

impl Request {
    /// The request made of our summaries `ours`.
    pub(super) fn new(ours: &[RangeSummary], local: &Manifest, unacked: &HashSet<DocId>) -> Self {
        let ranges: Vec<Range> = ours.iter().map(|s| (s.start, s.end)).collect();
        let unacked = ranges
            .iter()
            .flat_map(|&(start, end)| local.entries_in(start, end))
            .filter(|e| unacked.contains(&e.doc_id.into()))
            .cloned()
            .collect();
        Request { ranges, unacked }
    }

    /// True if the request asked about exactly `[start, end)`.
    pub(super) fn asked(&self, start: WireDocId, end: Option<WireDocId>) -> bool {
        self.ranges.contains(&(start, end))
    }

    /// True if `sub` lies within a range the request asked about and is smaller
    /// than it, so every round narrows the difference down (a server that answered
    /// a range with itself could otherwise keep the session asking forever).
    pub(super) fn covers(&self, sub: &RangeSummary) -> bool {
        self.ranges
            .iter()
            .any(|&range| within(sub, range) && (sub.start, sub.end) != range)
    }

    /// The ranges asked about that were neither listed nor split: they matched.
    pub(super) fn unanswered(&self, listed: &[Range], split: &[RangeSummary]) -> Vec<Range> {
        self.ranges
            .iter()
            .copied()
            .filter(|range| !listed.contains(range) && !split.iter().any(|s| within(s, *range)))
            .collect()
    }

    /// Our documents with unacknowledged changes, as they were when we asked, in
    /// `ranges`.
    pub(super) fn unacked_in<'a>(
        &'a self,
        ranges: &'a [Range],
    ) -> impl Iterator<Item = &'a ManifestEntry> + 'a {
        self.unacked.iter().filter(move |e| {
            ranges
                .iter()
                .any(|&(start, end)| in_range(e.doc_id, start, end))
        })
    }
}

/// What has arrived so far of the answer to the oldest request, with the local view
/// it is compared against (read once per answer: a range answer can hold many
/// `ManifestEntries`).
pub(super) struct Answer {
    pub(super) local: Manifest,
    pub(super) unacked: HashSet<DocId>,
    /// The ranges listed in full so far.
    pub(super) listed: Vec<Range>,
}

impl Answer {
    pub(super) fn new(store: &Store) -> Result<Self> {
        Ok(Answer {
            local: store.manifest()?,
            unacked: store.unacknowledged()?.into_iter().collect(),
            listed: Vec::new(),
        })
    }
}
