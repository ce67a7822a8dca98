//! `LibraryEntry`: one per entry of the problem library and the case collection
//! (问题库 / 案例集), shared between branches.
//!
//! A branch's committee writes its entries; its members read them, and so do the
//! members of the allied branches it shares an entry with (a set of branch ids, as
//! a joint activity's partners) and, when it shares an entry down the hierarchy, of
//! every branch below it. The problem and the solution are automerge text, so two
//! committee members improving one entry offline both keep their words; tags are a
//! set.

use std::collections::BTreeMap;

use autosurgeon::{Hydrate, Reconcile, Text};

use super::scalar::{Date, vocabulary};
use super::{DocKind, FieldPath, Meta, Record, required};
use crate::error::{Error, Result};
use crate::ids::BranchId;

vocabulary! {
    /// Which collection an entry belongs to.
    Collection, "library collection" {
        /// 问题库: a common problem and how it was solved.
        Problem = "problem",
        /// 案例集: a good practice worth copying.
        Case = "case",
    }
}

/// What is needed to write a new entry.
#[derive(Clone, Debug)]
pub struct NewLibraryEntry {
    /// Problem or case.
    pub collection: Collection,
    /// Its title.
    pub title: String,
    /// The problem (or the situation, for a case).
    pub problem: String,
    /// How it was solved (or what was done).
    pub solution: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The day it was written.
    pub written_on: Date,
}

/// One entry, owned by the branch that wrote it (its header's branch).
#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile)]
pub struct LibraryEntry {
    /// Document header.
    pub meta: Meta,
    /// Problem or case.
    pub collection: Collection,
    /// Its title.
    pub title: String,
    /// The problem, edited together.
    pub problem: Text,
    /// The solution, edited together.
    pub solution: Text,
    /// Tags, a set (the value is `true`).
    #[autosurgeon(missing = "Default::default")]
    pub tags: BTreeMap<String, bool>,
    /// The day it was written.
    pub written_on: Date,
    /// Allied branches it is shared with, a set of branch ids.
    #[autosurgeon(missing = "Default::default")]
    pub shared_with: BTreeMap<String, bool>,
    /// Whether every branch below the author's reads it.
    #[autosurgeon(missing = "Default::default")]
    pub shared_down: bool,
}

/// Where the fields the server reads and rules on live in an entry's document.
pub mod paths {
    use super::FieldPath;

    /// [`super::LibraryEntry::shared_with`], keyed by branch id.
    pub const SHARED_WITH: FieldPath = FieldPath::new(&["shared_with"]);
    /// [`super::LibraryEntry::shared_down`].
    pub const SHARED_DOWN: FieldPath = FieldPath::new(&["shared_down"]);
}

impl Record for LibraryEntry {
    const KIND: DocKind = DocKind::LibraryEntry;
    const PATHS: &'static [FieldPath] = &[paths::SHARED_WITH, paths::SHARED_DOWN];

    fn meta(&self) -> &Meta {
        &self.meta
    }
}

fn clean_tags(tags: &[String]) -> BTreeMap<String, bool> {
    tags.iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| (t.to_owned(), true))
        .collect()
}

impl LibraryEntry {
    /// A new entry written by `branch`.
    pub fn new(branch: BranchId, new: NewLibraryEntry) -> Result<Self> {
        Ok(LibraryEntry {
            meta: Meta::new(DocKind::LibraryEntry, branch),
            collection: new.collection,
            title: required("title", &new.title)?,
            problem: Text::with_value(required("problem", &new.problem)?),
            solution: Text::with_value(required("solution", &new.solution)?),
            tags: clean_tags(&new.tags),
            written_on: new.written_on,
            shared_with: BTreeMap::new(),
            shared_down: false,
        })
    }

    /// Rewrites the texts; only the characters that differ are edited.
    pub fn revise(
        &mut self,
        title: Option<&str>,
        problem: Option<&str>,
        solution: Option<&str>,
    ) -> Result<()> {
        if let Some(title) = title {
            self.title = required("title", title)?;
        }
        if let Some(problem) = problem {
            self.problem.update(required("problem", problem)?);
        }
        if let Some(solution) = solution {
            self.solution.update(required("solution", solution)?);
        }
        Ok(())
    }

    /// Adds tags.
    pub fn tag(&mut self, tags: &[String]) {
        self.tags.extend(clean_tags(tags));
    }

    /// The tags, in order.
    pub fn tags(&self) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, on)| **on)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Shares the entry with an allied branch (the server checks the alliance).
    pub fn share_with(&mut self, branch: BranchId) -> Result<()> {
        if branch == self.meta.branch {
            return Err(Error::invalid(
                "partner branch (it wrote the entry)",
                branch.to_string(),
            ));
        }
        self.shared_with.insert(branch.to_string(), true);
        Ok(())
    }

    /// Shares the entry with every branch below the author's, or stops.
    pub fn share_down(&mut self, shared: bool) {
        self.shared_down = shared;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> NewLibraryEntry {
        NewLibraryEntry {
            collection: Collection::Problem,
            title: "路灯坏了没人管".into(),
            problem: "老旧小区路灯".into(),
            solution: "联系街道，结对单位出资".into(),
            tags: vec![" 路灯 ".into(), "".into(), "老旧小区".into()],
            written_on: "2026-05-01".parse().unwrap(),
        }
    }

    #[test]
    fn an_entry_needs_its_texts_and_keeps_clean_tags() {
        let branch = BranchId::random();
        let mut e = LibraryEntry::new(branch, entry()).unwrap();
        assert_eq!(e.tags(), vec!["老旧小区".to_owned(), "路灯".to_owned()]);
        let blank = NewLibraryEntry {
            solution: " ".into(),
            ..entry()
        };
        assert_eq!(
            LibraryEntry::new(branch, blank).unwrap_err().code(),
            "input.empty"
        );
        assert_eq!(e.share_with(branch).unwrap_err().code(), "input.invalid");
        e.share_with(BranchId::random()).unwrap();
        e.share_down(true);
        e.revise(None, None, Some("街道出资修好")).unwrap();
        assert_eq!(e.solution.as_str(), "街道出资修好");
        assert_eq!(
            e.revise(Some(""), None, None).unwrap_err().code(),
            "input.empty"
        );
        super::super::assert_declared_paths_exist(&e);
    }
}
