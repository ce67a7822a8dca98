//! `PointsBook`: one per branch and year, the points (积分 / 先锋岗) that do not come
//! from attendance: bonus and base awards, and the thought reports received.
//!
//! Attendance points are not stored: they follow from an activity's sign-ins and the
//! points its kind is worth in the branch profile. Everything here is an entry of a
//! map keyed by a random [`EntryId`], so awards recorded on two devices offline both
//! count, whoever syncs first; nothing is a counter that two devices could create
//! twice. A branch may end up with two books for one year (two devices each opened
//! the year offline): every query reads the union of the year's books, and the store
//! writes to the first.

use std::collections::BTreeMap;

use autosurgeon::{Hydrate, Reconcile};

use super::scalar::Date;
use super::{DocKind, FieldPath, Meta, Record, optional};
use crate::error::{Error, Result};
use crate::ids::{BranchId, EntryId, MemberId};

/// The base point rule a thought report handed in on time earns (see
/// [`super::BranchProfile::point_rules`]).
pub const THOUGHT_REPORT_RULE: &str = "thought_report";

/// Points given to one member, for a rule of the branch or a reason of its own.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Award {
    /// Who receives them.
    pub member: MemberId,
    /// How many (negative to deduct).
    pub points: i64,
    /// The branch's point rule this award applies, if any.
    #[autosurgeon(missing = "Default::default")]
    pub rule: Option<String>,
    /// Why, in words.
    #[autosurgeon(missing = "Default::default")]
    pub reason: Option<String>,
    /// The day it counts for (rankings go by this day).
    pub on: Date,
}

/// One thought report (思想汇报) the committee received.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct ThoughtReport {
    /// Who wrote it.
    pub member: MemberId,
    /// The day it was due.
    pub due: Date,
    /// The day it was handed in.
    pub received: Date,
}

impl ThoughtReport {
    /// Whether it came in by its due day.
    pub fn on_time(&self) -> bool {
        self.received <= self.due
    }
}

/// One per branch and year: awards and thought reports.
#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile)]
pub struct PointsBook {
    /// Document header.
    pub meta: Meta,
    /// The calendar year it covers.
    pub year: i64,
    /// Awards keyed by entry id.
    #[autosurgeon(missing = "Default::default")]
    pub awards: BTreeMap<String, Award>,
    /// Thought reports received, keyed by entry id.
    #[autosurgeon(missing = "Default::default")]
    pub thought_reports: BTreeMap<String, ThoughtReport>,
}

/// Where the fields code outside the record reads live in a points book.
pub mod paths {
    use super::FieldPath;

    /// [`super::PointsBook::year`].
    pub const YEAR: FieldPath = FieldPath::new(&["year"]);
}

impl Record for PointsBook {
    const KIND: DocKind = DocKind::PointsBook;
    const PATHS: &'static [FieldPath] = &[paths::YEAR];

    fn meta(&self) -> &Meta {
        &self.meta
    }
}

/// Fails unless `day` falls in `year`.
pub(crate) fn check_year(year: i64, day: Date) -> Result<()> {
    use chrono::Datelike as _;
    if i64::from(day.0.year()) == year {
        Ok(())
    } else {
        Err(Error::OutsideYear { year, day })
    }
}

impl PointsBook {
    /// An empty book of `branch` for `year`.
    pub fn new(branch: BranchId, year: i64) -> Self {
        PointsBook {
            meta: Meta::new(DocKind::PointsBook, branch),
            year,
            awards: BTreeMap::new(),
            thought_reports: BTreeMap::new(),
        }
    }

    /// Records an award as entry `id`; it must have points, a rule or a reason, and
    /// fall in the book's year. The caller checks the rule against the profile (the
    /// store does).
    pub fn award(
        &mut self,
        id: EntryId,
        member: MemberId,
        points: i64,
        rule: Option<&str>,
        reason: Option<&str>,
        on: Date,
    ) -> Result<()> {
        if points == 0 {
            return Err(Error::invalid("points", "0"));
        }
        let rule = optional(rule);
        let reason = optional(reason);
        if rule.is_none() && reason.is_none() {
            return Err(Error::EmptyField { field: "reason" });
        }
        check_year(self.year, on)?;
        self.awards.insert(
            id.to_string(),
            Award {
                member,
                points,
                rule,
                reason,
                on,
            },
        );
        Ok(())
    }

    /// Takes back an award recorded by mistake.
    pub fn withdraw_award(&mut self, id: EntryId) -> Result<Award> {
        self.awards
            .remove(&id.to_string())
            .ok_or(Error::UnknownEntry(id))
    }

    /// Records a thought report received on `received`, due on `due`, as entry `id`.
    pub fn receive_thought_report(
        &mut self,
        id: EntryId,
        member: MemberId,
        due: Date,
        received: Date,
    ) -> Result<()> {
        check_year(self.year, received)?;
        self.thought_reports.insert(
            id.to_string(),
            ThoughtReport {
                member,
                due,
                received,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Date {
        text.parse().unwrap()
    }

    #[test]
    fn awards_need_points_a_reason_and_the_books_year() {
        let mut book = PointsBook::new(BranchId::random(), 2026);
        let m = MemberId::random();
        let on = day("2026-04-01");
        assert_eq!(
            book.award(EntryId::random(), m, 0, None, Some("task"), on)
                .unwrap_err()
                .code(),
            "input.invalid"
        );
        assert_eq!(
            book.award(EntryId::random(), m, 5, None, Some("  "), on)
                .unwrap_err()
                .code(),
            "input.empty"
        );
        assert_eq!(
            book.award(
                EntryId::random(),
                m,
                5,
                Some("major_task"),
                None,
                day("2025-12-31")
            )
            .unwrap_err()
            .code(),
            "ledger.outside_year"
        );
        let id = EntryId::random();
        book.award(id, m, 5, Some("major_task"), None, on).unwrap();
        assert_eq!(book.awards.len(), 1);
        assert_eq!(book.withdraw_award(id).unwrap().points, 5);
        assert_eq!(
            book.withdraw_award(id).unwrap_err().code(),
            "ledger.unknown_entry"
        );
    }

    #[test]
    fn a_thought_report_is_on_time_by_its_due_day() {
        let mut book = PointsBook::new(BranchId::random(), 2026);
        let m = MemberId::random();
        book.receive_thought_report(EntryId::random(), m, day("2026-03-31"), day("2026-03-31"))
            .unwrap();
        book.receive_thought_report(EntryId::random(), m, day("2026-06-30"), day("2026-07-02"))
            .unwrap();
        let on_time: Vec<bool> = book.thought_reports.values().map(|r| r.on_time()).collect();
        assert_eq!(on_time.iter().filter(|t| **t).count(), 1);
        super::super::assert_declared_paths_exist(&book);
    }
}
