//! `MemberFile`: one per member, the confidential archive (党员档案).
//!
//! Only the committee and the member read it (enforced by the server), which is why
//! it is a document of its own rather than part of the roster every member reads.

use std::collections::BTreeMap;

use autosurgeon::{Hydrate, Reconcile};

use super::scalar::{Date, vocabulary};
use super::{DocKind, FieldPath, Meta, Record, optional, required};
use crate::error::{Error, Result};
use crate::ids::{BranchId, MemberId};

vocabulary! {
    /// The grade of an annual democratic evaluation (民主评议).
    EvaluationGrade, "evaluation grade" {
        /// 优秀.
        Excellent = "excellent",
        /// 合格.
        Qualified = "qualified",
        /// 基本合格.
        BasicallyQualified = "basically_qualified",
        /// 不合格.
        Unqualified = "unqualified",
    }
}

/// One training attended.
#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile)]
pub struct Training {
    /// The day of the training.
    pub date: Date,
    /// What it was about.
    pub topic: String,
    /// Length in hours.
    pub hours: f64,
}

/// One commendation received.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Commendation {
    /// The day it was given.
    pub date: Date,
    /// Its title.
    pub title: String,
    /// Who gave it.
    #[autosurgeon(missing = "Default::default")]
    pub issuer: Option<String>,
}

/// The outcome of one year's democratic evaluation.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Evaluation {
    /// The grade.
    pub grade: EvaluationGrade,
    /// A comment, if any.
    #[autosurgeon(missing = "Default::default")]
    pub comment: Option<String>,
}

/// One per member: confidential details and growth records.
#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile)]
pub struct MemberFile {
    /// Document header.
    pub meta: Meta,
    /// Whose file this is.
    pub member: MemberId,
    /// National ID number.
    #[autosurgeon(missing = "Default::default")]
    pub id_number: Option<String>,
    /// Home address.
    #[autosurgeon(missing = "Default::default")]
    pub address: Option<String>,
    /// Trainings attended, in the order recorded.
    #[autosurgeon(missing = "Default::default")]
    pub trainings: Vec<Training>,
    /// Commendations received.
    #[autosurgeon(missing = "Default::default")]
    pub commendations: Vec<Commendation>,
    /// Annual evaluations keyed by year, so each year has one grade.
    #[autosurgeon(missing = "Default::default")]
    pub evaluations: BTreeMap<String, Evaluation>,
}

/// Where the fields the server reads live in a member file's document.
pub mod paths {
    use super::FieldPath;

    /// [`super::MemberFile::member`], whose file it is.
    pub const MEMBER: FieldPath = FieldPath::new(&["member"]);
}

impl Record for MemberFile {
    const KIND: DocKind = DocKind::MemberFile;
    const PATHS: &'static [FieldPath] = &[paths::MEMBER];

    fn meta(&self) -> &Meta {
        &self.meta
    }
}

impl MemberFile {
    /// An empty file for `member` of `branch`.
    pub fn new(branch: BranchId, member: MemberId) -> Self {
        MemberFile {
            meta: Meta::new(DocKind::MemberFile, branch),
            member,
            id_number: None,
            address: None,
            trainings: Vec::new(),
            commendations: Vec::new(),
            evaluations: BTreeMap::new(),
        }
    }

    /// Sets the confidential personal details; `None` leaves a field as it is.
    pub fn set_details(&mut self, id_number: Option<&str>, address: Option<&str>) {
        if id_number.is_some() {
            self.id_number = optional(id_number);
        }
        if address.is_some() {
            self.address = optional(address);
        }
    }

    /// Records a training of `hours` hours.
    pub fn add_training(&mut self, date: Date, topic: &str, hours: f64) -> Result<()> {
        if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 30.0) {
            return Err(Error::invalid("training hours", hours.to_string()));
        }
        self.trainings.push(Training {
            date,
            topic: required("topic", topic)?,
            hours,
        });
        Ok(())
    }

    /// Total training hours on file.
    pub fn training_hours(&self) -> f64 {
        self.trainings.iter().map(|t| t.hours).sum()
    }

    /// Records a commendation.
    pub fn add_commendation(
        &mut self,
        date: Date,
        title: &str,
        issuer: Option<&str>,
    ) -> Result<()> {
        self.commendations.push(Commendation {
            date,
            title: required("title", title)?,
            issuer: optional(issuer),
        });
        Ok(())
    }

    /// Records (or corrects) the evaluation of `year`.
    pub fn set_evaluation(
        &mut self,
        year: i32,
        grade: EvaluationGrade,
        comment: Option<&str>,
    ) -> Result<()> {
        if !(1921..=9999).contains(&year) {
            return Err(Error::invalid("year", year.to_string()));
        }
        self.evaluations.insert(
            year.to_string(),
            Evaluation {
                grade,
                comment: optional(comment),
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_path_is_in_the_document() {
        let mut file = MemberFile::new(BranchId::random(), MemberId::random());
        super::super::assert_declared_paths_exist(&file);
        file.set_details(Some("110101199001011234"), None);
        super::super::assert_declared_paths_exist(&file);
    }
}
