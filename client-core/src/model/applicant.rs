//! `Applicant`: one per person on the way to membership (入党流程), from the
//! application to full membership.
//!
//! Each step's date is an entry of a map keyed by the step, so the organizing
//! committee member recording the activist step and the secretary recording the
//! introducers offline both keep theirs. Steps follow in order, each on or after the
//! one before, with the waiting times the process sets: a year as an activist before
//! becoming a development candidate, a year of probation before full membership, and
//! two introducers before probation. Thought reports are kept with the branch's
//! points ([`super::PointsBook`]), where they earn points.
//!
//! Only the committee and the applicant read the file (enforced by the server).

use std::collections::BTreeMap;

use autosurgeon::{Hydrate, Reconcile};
use chrono::Months;

use super::scalar::{Date, vocabulary};
use super::{DocKind, FieldPath, Meta, Record, optional};
use crate::error::{Error, Result};
use crate::ids::{BranchId, MemberId};

vocabulary! {
    /// A step of the way to membership, in order.
    Stage, "applicant stage" {
        /// 递交入党申请书.
        Applied = "applied",
        /// 确定为入党积极分子.
        Activist = "activist",
        /// 确定为发展对象.
        Candidate = "candidate",
        /// 接收为预备党员.
        Probationary = "probationary",
        /// 转为正式党员.
        Full = "full",
    }
}

impl Stage {
    /// The step before this one.
    pub fn previous(self) -> Option<Stage> {
        let at = Stage::ALL.iter().position(|s| *s == self)?;
        at.checked_sub(1).map(|i| Stage::ALL[i])
    }

    /// The step after this one.
    pub fn next(self) -> Option<Stage> {
        let at = Stage::ALL.iter().position(|s| *s == self)?;
        Stage::ALL.get(at + 1).copied()
    }

    /// Months that must pass after the previous step before this one, and
    /// whether the step is then due (a reminder) rather than only allowed.
    fn wait(self) -> (u32, bool) {
        match self {
            Stage::Applied => (0, false),
            // The branch talks with an applicant within a month.
            Stage::Activist => (1, true),
            Stage::Candidate => (12, false),
            // Training and review take their time; no fixed wait.
            Stage::Probationary => (0, false),
            // Probation lasts a year, then the branch decides.
            Stage::Full => (12, true),
        }
    }
}

/// The day a step was taken.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct StageEntry {
    /// The day.
    pub on: Date,
    /// A note (the meeting that decided it, …).
    #[autosurgeon(missing = "Default::default")]
    pub note: Option<String>,
}

/// Introducers (入党介绍人) a candidate needs before probation.
pub const INTRODUCERS_NEEDED: usize = 2;

/// One per applicant: the steps taken and the introducers.
#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile)]
pub struct Applicant {
    /// Document header.
    pub meta: Meta,
    /// The person, on the branch's roster.
    pub member: MemberId,
    /// Steps taken, keyed by [`Stage`] name.
    #[autosurgeon(missing = "Default::default")]
    pub stages: BTreeMap<String, StageEntry>,
    /// Introducers, a set of member ids (the value is `true`).
    #[autosurgeon(missing = "Default::default")]
    pub introducers: BTreeMap<String, bool>,
}

/// Where the fields the server reads live in an applicant's document.
pub mod paths {
    use super::FieldPath;

    /// [`super::Applicant::member`], whose file it is.
    pub const MEMBER: FieldPath = FieldPath::new(&["member"]);
}

impl Record for Applicant {
    const KIND: DocKind = DocKind::Applicant;
    const PATHS: &'static [FieldPath] = &[paths::MEMBER];

    fn meta(&self) -> &Meta {
        &self.meta
    }
}

/// A step that is due, or allowed, and not taken yet.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NextStep {
    /// The step.
    pub stage: Stage,
    /// The first day it may be taken.
    pub from: Date,
    /// Whether it is due by `from` (a reminder) rather than only allowed.
    pub due: bool,
}

fn add_months(day: Date, months: u32) -> Date {
    Date(
        day.0
            .checked_add_months(Months::new(months))
            .unwrap_or(day.0),
    )
}

impl Applicant {
    /// A file for `member` of `branch` who applied on `applied`.
    pub fn new(branch: BranchId, member: MemberId, applied: Date) -> Self {
        Applicant {
            meta: Meta::new(DocKind::Applicant, branch),
            member,
            stages: BTreeMap::from([(
                Stage::Applied.as_str().to_owned(),
                StageEntry {
                    on: applied,
                    note: None,
                },
            )]),
            introducers: BTreeMap::new(),
        }
    }

    /// The day `stage` was taken, if it was.
    pub fn date_of(&self, stage: Stage) -> Option<Date> {
        self.stages.get(stage.as_str()).map(|e| e.on)
    }

    /// The furthest step taken.
    pub fn stage(&self) -> Stage {
        Stage::ALL
            .iter()
            .rev()
            .copied()
            .find(|s| self.date_of(*s).is_some())
            .unwrap_or(Stage::Applied)
    }

    /// The introducers, in id order.
    pub fn introducers(&self) -> Vec<MemberId> {
        self.introducers
            .iter()
            .filter(|(_, on)| **on)
            .filter_map(|(id, _)| id.parse().ok())
            .collect()
    }

    /// Records (or corrects the date of) `stage`, taken on `on`. The step before
    /// must be recorded, long enough before; the step after, if recorded, must
    /// not come before this one; probation needs two introducers.
    pub fn record_stage(&mut self, stage: Stage, on: Date, note: Option<&str>) -> Result<()> {
        if let Some(previous) = stage.previous() {
            let Some(before) = self.date_of(previous) else {
                return Err(Error::StageOutOfOrder {
                    stage: stage.as_str(),
                    missing: previous.as_str(),
                });
            };
            let (months, _) = stage.wait();
            let earliest = add_months(before, months);
            if on < earliest && !(stage == Stage::Activist && on >= before) {
                return Err(Error::StageTooEarly {
                    stage: stage.as_str(),
                    earliest,
                });
            }
        }
        if let Some(after) = stage.next().and_then(|next| self.date_of(next))
            && on > after
        {
            return Err(Error::invalid(
                "date (after the next step's)",
                on.to_string(),
            ));
        }
        if stage == Stage::Probationary && self.introducers().len() < INTRODUCERS_NEEDED {
            return Err(Error::IntroducersMissing {
                needed: INTRODUCERS_NEEDED,
            });
        }
        self.stages.insert(
            stage.as_str().to_owned(),
            StageEntry {
                on,
                note: optional(note),
            },
        );
        Ok(())
    }

    /// Names an introducer; there are at most two, and they are not the applicant.
    pub fn add_introducer(&mut self, member: MemberId) -> Result<()> {
        if member == self.member {
            return Err(Error::invalid(
                "introducer (the applicant)",
                member.to_string(),
            ));
        }
        let current = self.introducers();
        if current.contains(&member) {
            return Ok(());
        }
        if current.len() >= INTRODUCERS_NEEDED {
            return Err(Error::invalid(
                "introducer (there are two already)",
                member.to_string(),
            ));
        }
        self.introducers.insert(member.to_string(), true);
        Ok(())
    }

    /// Removes an introducer.
    pub fn remove_introducer(&mut self, member: MemberId) -> Result<()> {
        self.introducers
            .remove(&member.to_string())
            .map(|_| ())
            .ok_or(Error::UnknownMember(member))
    }

    /// The next step and the first day it may be taken; `None` once a full member.
    pub fn next_step(&self) -> Option<NextStep> {
        let stage = self.stage().next()?;
        let before = self.date_of(self.stage())?;
        let (months, due) = stage.wait();
        Some(NextStep {
            stage,
            from: add_months(before, months),
            due,
        })
    }

    /// The next step, if it is due by `as_of` (a reminder for the committee).
    pub fn reminder(&self, as_of: Date) -> Option<NextStep> {
        self.next_step()
            .filter(|next| next.due && next.from <= as_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Date {
        text.parse().unwrap()
    }

    #[test]
    fn steps_follow_in_order_with_their_waiting_times() {
        let mut a = Applicant::new(BranchId::random(), MemberId::random(), day("2024-03-01"));
        assert_eq!(a.stage(), Stage::Applied);
        assert_eq!(
            a.record_stage(Stage::Candidate, day("2025-06-01"), None)
                .unwrap_err()
                .code(),
            "applicant.out_of_order"
        );
        assert_eq!(
            a.reminder(day("2024-04-01")).map(|n| n.stage),
            Some(Stage::Activist)
        );
        assert_eq!(a.reminder(day("2024-03-31")), None);
        a.record_stage(Stage::Activist, day("2024-03-20"), Some("支委会"))
            .unwrap();
        assert_eq!(
            a.record_stage(Stage::Candidate, day("2025-03-19"), None)
                .unwrap_err()
                .code(),
            "applicant.too_early"
        );
        // Allowed from a year on, never a reminder: the branch decides.
        assert_eq!(a.reminder(day("2026-01-01")), None);
        a.record_stage(Stage::Candidate, day("2025-03-20"), None)
            .unwrap();
        assert_eq!(
            a.record_stage(Stage::Probationary, day("2025-07-01"), None)
                .unwrap_err()
                .code(),
            "applicant.introducers_missing"
        );
        let (x, y) = (MemberId::random(), MemberId::random());
        a.add_introducer(x).unwrap();
        a.add_introducer(x).unwrap();
        a.add_introducer(y).unwrap();
        assert_eq!(
            a.add_introducer(MemberId::random()).unwrap_err().code(),
            "input.invalid"
        );
        assert_eq!(
            a.add_introducer(a.member).unwrap_err().code(),
            "input.invalid"
        );
        a.record_stage(Stage::Probationary, day("2025-07-01"), None)
            .unwrap();
        let next = a.next_step().unwrap();
        assert_eq!(
            (next.stage, next.from, next.due),
            (Stage::Full, day("2026-07-01"), true)
        );
        assert_eq!(a.reminder(day("2026-06-30")), None);
        assert!(a.reminder(day("2026-07-01")).is_some());
        // A correction may not move a step past the next one.
        assert_eq!(
            a.record_stage(Stage::Activist, day("2025-04-01"), None)
                .unwrap_err()
                .code(),
            "input.invalid"
        );
        a.record_stage(Stage::Full, day("2026-07-01"), None)
            .unwrap();
        assert_eq!(a.stage(), Stage::Full);
        assert_eq!(a.next_step(), None);
        super::super::assert_declared_paths_exist(&a);
    }
}
