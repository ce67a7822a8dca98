//! The branch's records as automerge documents.
//!
//! A document is the unit of storage, access and sharing. Each one is a map whose
//! `meta` entry names its kind, schema version, owning branch and id; the rest is the
//! record, mapped to and from typed Rust structs with autosurgeon.
//!
//! The kinds ([`DocKind`]), one module each:
//! - [`profile`]: `BranchProfile`, one per branch, its place and its rules;
//! - [`roster`]: `Roster`, one per branch, its members;
//! - [`member_file`]: `MemberFile`, one per member, confidential growth records;
//! - [`activity`]: `Activity`, one per meeting, lecture or other activity;
//! - [`petition`]: `Petition`, one per request brought to the branch;
//! - [`feedback`]: `FeedbackBox`, one per branch, suggestions (anonymous if the
//!   member wishes) and the branch's published answers;
//! - [`dues`]: `DuesLedger`, one per branch and year, dues paid and spent;
//! - [`points`]: `PointsBook`, one per branch and year, awards and thought reports;
//! - [`applicant`]: `Applicant`, one per person on the way to membership;
//! - [`library`]: `LibraryEntry`, one per entry of the problem library or the case
//!   collection, shared with allied branches or down the hierarchy.
//!
//! Merge semantics are chosen field by field:
//! - collections people add to concurrently (members, sign-ins, leave requests,
//!   evaluations, suggestions) are maps keyed by a stable id, so two devices adding
//!   different entries both win and two devices adding the same entry meet at one key;
//! - lists that only grow (progress notes, commendations) are automerge lists;
//! - text people write together (agenda, minutes, a petition's description) is
//!   automerge text, merged character by character;
//! - ledgers (dues payments, spending, points awards, thought reports) are maps keyed
//!   by a random entry id, so entries recorded on two devices all count; an award is
//!   an entry, not a counter, because two devices creating a member's first counter
//!   concurrently would conflict and one award would be lost;
//! - documents a branch keeps one of per year (a dues ledger, a points book) may be
//!   opened twice offline; queries read every document of the year as one;
//! - every other field is a register: concurrent writes keep one deterministic winner,
//!   and [`crate::conflict`] reports the losers so a person can settle them;
//! - registers that only make sense together (an activity's start and end) are
//!   written together: an edit that writes one of them writes all of them again, in
//!   the same change and in the order the kind declares
//!   ([`Record::WRITTEN_TOGETHER`]), so concurrent edits never merge into one
//!   writer's start and another's end (see [`edit`] for why that holds).
//!
//! Every workflow is a method on the typed record that validates and then mutates it;
//! [`edit`] hydrates the record, runs the method, and reconciles only what changed
//! back into the document. Unknown keys (written by a newer schema) are never touched.
//!
//! Code that reads documents field by field instead of hydrating them (the server's
//! rule tables and access attributes) names fields only through the [`FieldPath`]s
//! each kind declares in its `paths` module (the header's are in [`paths`]). A unit
//! test writes every kind's record and finds each declared path in the document, so
//! renaming a field without its declaration fails there, not in an end-to-end test.

pub mod activity;
pub mod applicant;
pub mod dues;
pub mod feedback;
pub mod library;
pub mod member_file;
pub mod petition;
pub mod points;
pub mod profile;
pub mod roster;
pub mod scalar;

use std::fmt;

use automerge::{AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value};
use autosurgeon::{Hydrate, Reconcile};

use crate::error::{Error, Result};
use crate::ids::{BranchId, DocId};

pub use activity::{Activity, ActivityStatus, Leave, NewActivity, SignIn, SignInMode};
pub use applicant::{Applicant, NextStep, Stage, StageEntry};
pub use dues::{DuesLedger, Payment, Spending, SpendingCategory, Void};
pub use feedback::{Answer, FeedbackBox, FeedbackDrafts, MAX_SUGGESTION_CHARS, Suggestion};
pub use library::{Collection, LibraryEntry, NewLibraryEntry};
pub use member_file::{Commendation, Evaluation, EvaluationGrade, MemberFile, Training};
pub use petition::{
    NewPetition, Petition, PetitionStatus, ProgressNote, Rating, Resolution, Submitter,
};
pub use points::{Award, PointsBook, THOUGHT_REPORT_RULE, ThoughtReport};
pub use profile::{
    ActivityKindRule, BranchProfile, Frequency, Indicator, IndicatorRule, Level, PointRule, Term,
};
pub use roster::{Category, Gender, Member, MemberStatus, MemberUpdate, NewMember, Roster};
pub use scalar::{Date, LocalDateTime, Timestamp};

/// The newest document schema this build reads and writes.
///
/// Additive changes (a new optional field) keep the version: older builds ignore the
/// field and leave it untouched. A change older builds would misread bumps it, and
/// they then refuse to edit such documents (but still store and sync them).
pub const SCHEMA_VERSION: u64 = 1;

scalar::vocabulary! {
    /// The kinds of document this build understands.
    DocKind, "document kind" {
        /// One per branch: its name, place in the hierarchy and rules.
        BranchProfile = "branch_profile",
        /// One per branch: its members.
        Roster = "roster",
        /// One per member: confidential details and growth records.
        MemberFile = "member_file",
        /// One per meeting, lecture, theme day or other activity.
        Activity = "activity",
        /// One per resident or member request.
        Petition = "petition",
        /// One per branch: members' suggestions and the branch's published answers.
        FeedbackBox = "feedback_box",
        /// One per branch, the committee's only: answers not yet published.
        FeedbackDrafts = "feedback_drafts",
        /// One per branch and year: dues payments and spending.
        DuesLedger = "dues_ledger",
        /// One per branch and year: points awards and thought reports.
        PointsBook = "points_book",
        /// One per person on the way to membership.
        Applicant = "applicant",
        /// One per entry of the problem library or the case collection.
        LibraryEntry = "library_entry",
    }
}

/// The header every document carries under the `meta` key.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Meta {
    /// The document's kind, kept as text so kinds from newer builds still load.
    pub kind: String,
    /// The schema version that created the document.
    pub schema: u64,
    /// The branch that owns the document.
    pub branch: BranchId,
    /// The document's own id.
    pub id: DocId,
}

impl Meta {
    /// A header for a new document of `kind` owned by `branch`.
    pub fn new(kind: DocKind, branch: BranchId) -> Self {
        Meta {
            kind: kind.as_str().to_owned(),
            schema: SCHEMA_VERSION,
            branch,
            id: DocId::random(),
        }
    }
}

/// Where a field lives in a document: the map keys that lead to it from the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldPath(&'static [&'static str]);

impl FieldPath {
    /// The path through `keys`, outermost first; there must be at least one.
    pub const fn new(keys: &'static [&'static str]) -> Self {
        assert!(!keys.is_empty(), "a field path names at least one key");
        FieldPath(keys)
    }

    /// The keys, outermost first.
    pub const fn keys(self) -> &'static [&'static str] {
        self.0
    }

    /// The field's own key, inside its parent map.
    pub const fn key(self) -> &'static str {
        self.0[self.0.len() - 1]
    }

    /// The value at this path in `doc` as of `heads` (now, if `None`), with its
    /// object id; `Ok(None)` if a key is missing or a parent is not a map.
    pub fn get<'d, D: ReadDoc>(
        self,
        doc: &'d D,
        heads: Option<&[ChangeHash]>,
    ) -> std::result::Result<Option<(Value<'d>, ObjId)>, automerge::AutomergeError> {
        let read = |obj: &ObjId, key: &str| match heads {
            Some(heads) => doc.get_at(obj, key, heads),
            None => doc.get(obj, key),
        };
        let (last, parents) = self.0.split_last().expect("at least one key");
        let mut obj = ROOT;
        for key in parents {
            match read(&obj, key)? {
                Some((Value::Object(ObjType::Map), child)) => obj = child,
                _ => return Ok(None),
            }
        }
        read(&obj, last)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

/// The paths of the header every document carries.
pub mod paths {
    use super::FieldPath;

    /// The header itself.
    pub const META: FieldPath = FieldPath::new(&["meta"]);
    /// The document's kind.
    pub const META_KIND: FieldPath = FieldPath::new(&["meta", "kind"]);
    /// The branch that owns the document.
    pub const META_BRANCH: FieldPath = FieldPath::new(&["meta", "branch"]);
    /// Every header path, present in every document.
    pub const HEADER: &[FieldPath] = &[META, META_KIND, META_BRANCH];
}

/// A typed record stored as one document.
pub trait Record: Hydrate + Reconcile + Clone + fmt::Debug {
    /// The kind of document that holds this record.
    const KIND: DocKind;

    /// Every path of this kind that code outside the record reads or rules on
    /// (besides the header's, [`paths::HEADER`]).
    const PATHS: &'static [FieldPath];

    /// Registers that every edit writes together or not at all, in this order
    /// (see [`edit`]); all must be scalars. Empty for most kinds.
    const WRITTEN_TOGETHER: &'static [FieldPath] = &[];

    /// The record's header.
    fn meta(&self) -> &Meta;
}

/// Reads the header of a document without hydrating the rest.
pub fn read_meta(doc: &impl autosurgeon::ReadDoc) -> Result<Meta> {
    autosurgeon::hydrate_prop(doc, &ROOT, paths::META.key())
        .map_err(|e| Error::Malformed(format!("document header: {e}")))
}

/// Reads and checks the header of a document expected to hold a `kind` record.
pub fn check_meta(doc: &impl autosurgeon::ReadDoc, kind: DocKind) -> Result<Meta> {
    let meta = read_meta(doc)?;
    if meta.kind != kind.as_str() {
        return Err(Error::WrongKind {
            expected: kind.as_str(),
            found: meta.kind,
        });
    }
    if meta.schema > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found: meta.schema,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(meta)
}

/// Hydrates the typed record held by `doc`.
pub fn hydrate<R: Record>(doc: &impl autosurgeon::ReadDoc) -> Result<R> {
    check_meta(doc, R::KIND)?;
    Ok(autosurgeon::hydrate(doc)?)
}

/// A new document holding `record`, written by `actor`.
pub fn create_document<R: Record>(record: &R, actor: automerge::ActorId) -> Result<AutoCommit> {
    let mut doc = AutoCommit::new().with_actor(actor);
    autosurgeon::reconcile(&mut doc, record)?;
    Ok(doc)
}

/// Runs one workflow operation on the record in `doc`.
///
/// `op` validates and mutates the hydrated record; only the fields it changed are
/// written back. If `op` fails, the document is left exactly as it was.
///
/// If the edit wrote any of the kind's [`Record::WRITTEN_TOGETHER`] registers, all
/// of them are written again at the end of the change, in the declared order, each
/// as a delete of what is there followed by a put of the value it should hold. Why
/// that makes concurrent edits keep one writer's values: automerge numbers the
/// operations of one change consecutively, and of several concurrent values of a
/// key it keeps the one whose operation id (counter, then actor) is greatest. Each
/// writer's last puts on the group's keys then sit at counters `s`, `s + 2`, `s + 4`,
/// … of its own change, so comparing two writers' ids gives the same answer on
/// every key of the group, and the writer that wins one key wins them all. A plain
/// put would not do: automerge writes nothing when the value is unchanged, so an
/// edit that moves only the start would leave the end to whoever wrote it last.
pub fn edit<R: Record, T>(doc: &mut AutoCommit, op: impl FnOnce(&mut R) -> Result<T>) -> Result<T> {
    let before = visible_ops(doc, R::WRITTEN_TOGETHER)?;
    let mut record: R = hydrate(doc)?;
    let out = op(&mut record)?;
    let written = autosurgeon::reconcile(doc, &record)
        .map_err(Error::from)
        .and_then(|()| {
            if visible_ops(doc, R::WRITTEN_TOGETHER)? != before {
                write_together(doc, R::WRITTEN_TOGETHER)?;
            }
            Ok(())
        });
    if let Err(e) = written {
        doc.rollback();
        return Err(e);
    }
    Ok(out)
}

/// The ids of the operations holding the current values of each of `paths`; they
/// change whenever a key is written, even with the value it had.
fn visible_ops(doc: &AutoCommit, paths: &[FieldPath]) -> Result<Vec<Vec<ObjId>>> {
    paths
        .iter()
        .map(|path| {
            let Some(parent) = parent_map(doc, *path)? else {
                return Ok(Vec::new());
            };
            Ok(doc
                .get_all(&parent, path.key())?
                .into_iter()
                .map(|(_, op)| op)
                .collect())
        })
        .collect()
}

/// Writes each of `paths` again with its current value, in order, as a delete and a
/// put, so each key's value is held by a new operation of the pending change at a
/// fixed distance from the others (see [`edit`]). Every path must hold a scalar.
pub fn write_together(doc: &mut AutoCommit, paths: &[FieldPath]) -> Result<()> {
    use automerge::transaction::Transactable as _;
    for path in paths {
        let missing = || Error::Malformed(format!("{path} is not a value"));
        let parent = parent_map(doc, *path)?.ok_or_else(missing)?;
        let value = match doc.get(&parent, path.key())? {
            Some((Value::Scalar(value), _)) => value.into_owned(),
            _ => return Err(missing()),
        };
        doc.delete(&parent, path.key())?;
        doc.put(&parent, path.key(), value)?;
    }
    Ok(())
}

/// The map that holds `path`'s own key, if every key above it is a map.
fn parent_map(doc: &AutoCommit, path: FieldPath) -> Result<Option<ObjId>> {
    let (_, parents) = path.keys().split_last().expect("at least one key");
    let mut obj = ROOT;
    for key in parents {
        match doc.get(&obj, *key)? {
            Some((Value::Object(ObjType::Map), child)) => obj = child,
            _ => return Ok(None),
        }
    }
    Ok(Some(obj))
}

/// Trims `value` and fails with [`Error::EmptyField`] if nothing is left.
pub(crate) fn required(field: &'static str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        Err(Error::EmptyField { field })
    } else {
        Ok(value.to_owned())
    }
}

/// Trims an optional text field; blank becomes `None`.
pub(crate) fn optional(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Test support: asserts that every path `R` declares is in the document that
/// holds `record`, so a declaration cannot outlive a renamed field.
#[cfg(test)]
pub(crate) fn assert_declared_paths_exist<R: Record>(record: &R) {
    let doc = create_document(record, automerge::ActorId::random()).unwrap();
    hydrate::<R>(&doc).unwrap();
    let saved = automerge::Automerge::load(&doc.clone().save()).unwrap();
    let heads = saved.get_heads();
    for path in paths::HEADER.iter().chain(R::PATHS) {
        assert!(
            matches!(path.get(&saved, None), Ok(Some(_))),
            "{} declares {path}, which its document does not have",
            R::KIND
        );
        assert!(
            matches!(path.get(&saved, Some(&heads)), Ok(Some(_))),
            "{path} at heads"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_path_walks_maps_only() {
        let mut doc = AutoCommit::new();
        let meta = Meta::new(DocKind::Roster, BranchId::random());
        autosurgeon::reconcile_prop(&mut doc, ROOT, paths::META.key(), &meta).unwrap();
        automerge::transaction::Transactable::put(&mut doc, ROOT, "flat", "text").unwrap();
        assert!(matches!(
            paths::META_KIND.get(&doc, None),
            Ok(Some((Value::Scalar(kind), _))) if kind.as_str() == Some("roster")
        ));
        assert!(matches!(
            FieldPath::new(&["flat", "kind"]).get(&doc, None),
            Ok(None)
        ));
        assert!(matches!(
            FieldPath::new(&["meta", "nothing"]).get(&doc, None),
            Ok(None)
        ));
        assert_eq!(paths::META_BRANCH.to_string(), "meta/branch");
        assert_eq!(paths::META_BRANCH.key(), "branch");
    }

    #[test]
    fn every_kind_has_its_header_where_it_is_declared() {
        let branch = BranchId::random();
        assert_declared_paths_exist(&Roster::new(branch));
        assert_declared_paths_exist(&FeedbackBox::new(branch));
    }
}
